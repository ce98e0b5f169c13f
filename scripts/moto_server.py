"""moto_server as the local stack runs it, with fixes where moto differs from AWS in a
way the tripwire's tests measure.

1. Transactions. Before a TransactWriteItems, moto backs up every table it touches with a
deep copy, so a transaction's cost grows with the table (seconds once a wipe has marked
100,000 instances) where DynamoDB's is the items'. Here the backup is of the items the
transaction names, and a cancelled transaction puts exactly those back; the conditions,
the cancellation reasons and the writes are moto's own.

2. SigV4 (only with IAM enforced, `make demo`). moto checks a request's signature
against the form body as it re-encodes it from the parsed parameters, with `+` for a
space (werkzeug has consumed the bytes by then). AWS
checks the bytes that were sent, and the Rust SDK sends a space as `%20`, so every call
with a space in a parameter (an SNS alert's text) fails with SignatureDoesNotMatch on
moto only. Here a form body that fails that check is checked once more, encoded as
RFC 3986 percent-encoding (the SDK's); a wrong key or secret still fails both.

3. Security Hub's BatchUpdateFindings, which moto lacks (it has BatchImportFindings and
GetFindings). Here it sets the workflow status and the note of the findings it names,
as the API reference describes, and reports an unknown finding as unprocessed.

4. EventBridge's `account`. moto delivers an event to a target without the `account`
field every EventBridge event carries (its default input template leaves it out);
here it keeps it, so a rule's target can check where an event came from.

5. Isolated transactions. moto serves requests on threads, and its DynamoDB reads an
item, changes it and stores it back with no lock: two transactions adding to one
counts item at once can lose an increment, and a cancelled transaction's restore (1.)
can undo a transaction made meanwhile. DynamoDB isolates transactions. Here every
transaction holds one lock (the tripwire's counts change only in transactions; plain
writes stay concurrent, as the wipe's per-instance marks need).

6. Role trust (only with IAM enforced). moto's AssumeRole never reads the role's trust
policy: any caller may assume any role. AWS refuses a caller the role's trust does not
name (AccessDenied). Here, once IAM is enforced, an existing role whose trust names AWS
principals admits only a caller it names: its ARN, its account's root, `*`, or for a
role session the role's ARN (any path); service and federated principals are left to
moto, as is a role that does not exist.
Arguments are moto_server's.
"""

import copy
import datetime
import json
import sys
import threading
from urllib.parse import quote, urlencode

from moto.dynamodb import models as dynamodb_models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table
from moto.iam import access_control
from moto.events.utils import EventTemplateParser
from moto.securityhub import urls as securityhub_urls
from moto.securityhub.models import SecurityHubBackend
from moto.securityhub.responses import SecurityHubResponse
from moto.server import main

Base = access_control.IAMRequestBase
_create_aws_request = Base._create_aws_request
_check_signature = Base.check_signature


def create_aws_request(self):
    request = _create_aws_request(self)
    if getattr(self, "_rfc3986_form", False) and not self._body and isinstance(self._data, dict):
        request.data = urlencode(self._data, doseq=True, quote_via=quote)
    return request


def check_signature(self):
    try:
        _check_signature(self)
    except Exception:
        if self._body or not isinstance(self._data, dict):
            raise
        self._rfc3986_form = True
        _check_signature(self)


Base._create_aws_request = create_aws_request
Base.check_signature = check_signature


class _NoTableCopy:
    """The `copy` module as moto's DynamoDB backend sees it: a Table is not deep-copied
    while a transaction's own backup (below) is in force; everything else is."""

    _local = threading.local()

    def __getattr__(self, name):
        return getattr(copy, name)

    def deepcopy(self, x, memo=None):
        if getattr(self._local, "in_transaction", False) and isinstance(x, Table):
            return x
        return copy.deepcopy(x, memo)


_no_table_copy = _NoTableCopy()
dynamodb_models.copy = _no_table_copy
_transact_write_items = DynamoDBBackend.transact_write_items


def transact_write_items(self, transact_items):
    saved = []
    for entry in transact_items:
        _, op = next(iter(entry.items()))
        table = self.get_table(op["TableName"])
        key = op.get("Key") or {
            k: op["Item"][k] for k in (table.hash_key_attr, table.range_key_attr) if k
        }
        current = self.get_item(op["TableName"], key)
        saved.append((op["TableName"], key, current.to_json()["Attributes"] if current else None))
    _no_table_copy._local.in_transaction = True
    try:
        return _transact_write_items(self, transact_items)
    except Exception:
        # Cancelled (or refused part-way): what moto wrote is undone, item by item.
        for table_name, key, attrs in saved:
            if attrs is None:
                self.delete_item(table_name, key)
            else:
                self.put_item(table_name, attrs)
        raise
    finally:
        _no_table_copy._local.in_transaction = False


DynamoDBBackend.transact_write_items = transact_write_items

_transactions = threading.Lock()


def _atomic(write):
    def locked(*args, **kwargs):
        with _transactions:
            return write(*args, **kwargs)

    return locked


DynamoDBBackend.transact_write_items = _atomic(DynamoDBBackend.transact_write_items)

WORKFLOW_STATUSES = {"NEW", "NOTIFIED", "RESOLVED", "SUPPRESSED"}


def batch_update_findings(self, identifiers, workflow, note):
    processed, unprocessed = [], []
    now = datetime.datetime.now(datetime.timezone.utc).isoformat()
    for ident in identifiers:
        found = next((f for f in self.findings if f.id == ident.get("Id")
                      and f.data.get("ProductArn") == ident.get("ProductArn")), None)
        status = (workflow or {}).get("Status")
        if found is None or (status and status not in WORKFLOW_STATUSES):
            unprocessed.append({"FindingIdentifier": ident, "ErrorCode": "FindingNotFound" if found is None
                                else "InvalidInput", "ErrorMessage": "no such finding" if found is None
                                else f"workflow status {status}"})
            continue
        if status:
            found.data["Workflow"] = {"Status": status}
            found.data["WorkflowState"] = status
        if note:
            found.data["Note"] = {"Text": note.get("Text"), "UpdatedBy": note.get("UpdatedBy"), "UpdatedAt": now}
        found.data["UpdatedAt"] = now
        processed.append(ident)
    return processed, unprocessed


def batch_update_findings_response(self):
    body = json.loads(self.body.decode("utf-8") if isinstance(self.body, bytes) else self.body)
    processed, unprocessed = self.securityhub_backend.batch_update_findings(
        body.get("FindingIdentifiers", []), body.get("Workflow"), body.get("Note"))
    return json.dumps({"ProcessedFindings": processed, "UnprocessedFindings": unprocessed})


EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE = EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE.replace(
    '"version": "0",', '"version": "0", "account": "<account>",')
assert '"account": "<account>"' in EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE
SecurityHubBackend.batch_update_findings = batch_update_findings
SecurityHubResponse.batch_update_findings = batch_update_findings_response
securityhub_urls.url_paths["{0}/findings/batchupdate$"] = SecurityHubResponse.dispatch

from moto import settings
from moto.core.authorization import ActionAuthenticatorMixin
from moto.iam.models import iam_backends
from moto.sts.exceptions import STSClientError
from moto.sts.responses import TokenResponse

_assume_role = TokenResponse.assume_role


def _names(principal, caller):
    if principal == "*" or principal == caller:
        return True
    parts = caller.split(":", 5)
    if len(parts) < 6:
        return False
    account, resource = parts[4], parts[5]
    if principal == f"arn:{parts[1]}:iam::{account}:root":
        return True
    if resource.startswith("assumed-role/"):
        role = resource.split("/")[1]
        return principal.startswith(f"arn:{parts[1]}:iam::{account}:role/") and principal.rsplit("/", 1)[-1] == role
    return False


def _trusts(document, caller):
    statements = json.loads(document).get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    named_aws = False
    for st in statements:
        actions = st.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        aws = (st.get("Principal") or {}).get("AWS", []) if isinstance(st.get("Principal"), dict) else []
        aws = [aws] if isinstance(aws, str) else aws
        named_aws |= bool(aws)
        if st.get("Effect") == "Allow" and any(a in ("sts:AssumeRole", "sts:*", "*") for a in actions):
            if any(_names(p, caller) for p in aws):
                return True
    return not named_aws


def assume_role(self):
    if ActionAuthenticatorMixin.request_count >= settings.INITIAL_NO_AUTH_ACTION_COUNT:
        role_arn = self._get_param("RoleArn")
        _, caller, _ = self.backend.get_caller_identity(self.get_access_key(), self.region)
        account = role_arn.split(":")[4] if role_arn.count(":") >= 5 else ""
        role = None
        try:
            role = iam_backends[account]["aws"].get_role_by_arn(role_arn)
        except Exception:  # moto lets a role that does not exist be assumed
            role = None
        if role is not None and not _trusts(role.assume_role_policy_document, caller):
            raise STSClientError(
                "AccessDenied",
                f"User: {caller} is not authorized to perform: sts:AssumeRole on resource: {role_arn}")
    return _assume_role(self)


TokenResponse.assume_role = assume_role

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
