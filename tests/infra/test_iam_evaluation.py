"""Containment and its guards, checked by an IAM evaluator that is not ours:
principalmapper's local policy simulation, which evaluates condition operators against a
request context the test states (moto ignores conditions, so on moto a scoped deny stops
every session).

The documents are what the end-to-end tests left behind (target/iam-documents: the
policies moto's IAM has attached and the tags it holds), the member stack's roles and
managed policies, and the SCP. Where the evaluator cannot model something, the test says
so and names what covers it: principalmapper does not substitute policy variables in
conditions, so `_substitute` does what IAM documents for string conditions (the request's
value of the key in its place) before the evaluator sees the document."""

import collections
import collections.abc
import copy
import functools
import json
import pathlib

import pytest

# principalmapper 1.1.5 predates Python 3.10's removal of these aliases.
collections.Mapping = collections.abc.Mapping
collections.MutableMapping = collections.abc.MutableMapping

from principalmapper.common import Node, Policy  # noqa: E402
from principalmapper.querying.local_policy_simulation import policy_has_matching_statement  # noqa: E402
from principalmapper.querying.query_interface import _prepare_condition_context, local_check_authorization_full  # noqa: E402

from test_templates import CENTRAL, MEMBER, ROOT, TARGET, _resolve, _tripwire  # noqa: E402

PROD = "222222222222"
NOW = "2026-12-02T12:00:00Z"
BEFORE = "2000-01-01T00:00:00Z"
ADMIN = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
SCP = json.loads((ROOT / "infra" / "scp-protect-tripwire.json").read_text())
FULL_ACCESS = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


def _stored():
    path = TARGET / "iam-documents" / "scopes.json"
    if not path.exists():
        pytest.skip("no end-to-end run in this checkout; `make test` runs one first")
    return json.loads(path.read_text())


def _managed():
    return json.loads(_tripwire("managed-policies", str(ROOT / "config" / "policy.toml")))


def _node(arn, docs, role_id="AROA222222222222"):
    """A principal with administrator rights plus the given policies."""
    policies = [Policy(arn, "admin", copy.deepcopy(ADMIN))]
    policies += [Policy(f"arn:aws:iam::{PROD}:policy/tripwire/{name}", name, doc) for name, doc in docs.items()]
    is_role = ":role/" in arn
    return Node(arn, role_id if is_role else "AIDA222222222222", policies, [],
                {"Version": "2012-10-17", "Statement": []} if is_role else None,
                None, 0, False, True, None, False, None)


def _substitute(doc, ctx):
    """`${key}` in every string replaced by the request's value of `key`; a key the
    request lacks is left as written, which matches nothing (each scope statement also
    requires its tag with a Null check)."""
    if isinstance(doc, dict):
        return {k: _substitute(v, ctx) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_substitute(v, ctx) for v in doc]
    if isinstance(doc, str):
        for key, value in ctx.items():
            if isinstance(value, str):
                doc = doc.replace("${" + key + "}", value)
    return doc


class Contained:
    """A contained principal: its attached managed policies, read with its tags."""

    def __init__(self, name):
        entry = _stored()[name]
        self.arn, self.attached = entry["arn"], entry["attached"]
        # The principal's tags are in every request of its sessions (a session tag of
        # the same key would override one: the SCP reserves tripwire-* session tags).
        self.tags = {f"aws:PrincipalTag/{k}": v for k, v in entry["tags"].items()}
        self.managed = _managed()

    def allowed(self, action, resource, ctx):
        ctx = {**self.tags, **ctx}
        docs = {n: _substitute(self.managed[n], ctx) for n in self.attached}
        return local_check_authorization_full(_node(self.arn, docs), action, resource, ctx)


def _contained(name):
    c = Contained(name)
    return c.arn, c


def _allowed(node, action, resource, context):
    if isinstance(node, Contained):
        return node.allowed(action, resource, context)
    return local_check_authorization_full(node, action, resource, context)


def _role_session(role, session, issued, **extra):
    return {"aws:userid": f"AROA222222222222:{session}", "aws:TokenIssueTime": issued,
            "aws:PrincipalArn": f"arn:aws:iam::{PROD}:role/{role}", "aws:PrincipalAccount": PROD,
            "aws:CurrentTime": NOW, **extra}


def _instance(i):
    return f"arn:aws:ec2:us-east-1:{PROD}:instance/{i}"


TERMINATE = ("ec2:TerminateInstances", f"arn:aws:ec2:us-east-1:{PROD}:instance/i-0123456789abcdef0")
READ = ("s3:GetObject", "arn:aws:s3:::app-bucket/key")


def _undo(arn):
    return ("iam:UntagRole" if ":role/" in arn else "iam:UntagUser", arn)


# Each case: the contained principal, the culprit's sessions (also a fresh one) and the
# others that must keep working.
SCOPES = {
    "web-fleet": {
        "culprit": [
            _role_session("web-fleet", "i-0a1b2c3d4e5f60718", BEFORE, **{"ec2:SourceInstanceARN": _instance("i-0a1b2c3d4e5f60718")}),
            # The instance's credentials rotate: a fresh session of the same instance.
            _role_session("web-fleet", "i-0a1b2c3d4e5f60718", NOW, **{"ec2:SourceInstanceARN": _instance("i-0a1b2c3d4e5f60718")}),
        ],
        "others": [_role_session("web-fleet", "i-0fffffffffffffff0", BEFORE, **{"ec2:SourceInstanceARN": _instance("i-0fffffffffffffff0")})],
    },
    "OpsAdmin": {
        "culprit": [_role_session("OpsAdmin", "jane@example.com", BEFORE),
                    # Signing in again under the same name.
                    _role_session("OpsAdmin", "jane@example.com", NOW)],
        "others": [_role_session("OpsAdmin", "oncall@example.com", BEFORE)],
    },
    "KarpenterController": {
        # No single culprit (two sessions made the calls): no session is denied
        # everything, every session is braked, the burst's own included.
        "culprit": [],
        "others": [_role_session("KarpenterController", "1515535740000000001", BEFORE),
                   _role_session("KarpenterController", "1515535740000000009", "2099-01-01T00:00:00Z")],
    },
    "token-broker": {
        # An IAM user and the federation tokens it issued: braked, none denied everything.
        "culprit": [],
        "others": [{"aws:userid": f"{PROD}:session-7", "aws:TokenIssueTime": BEFORE,
                    "aws:PrincipalArn": f"arn:aws:sts::{PROD}:federated-user/session-7", "aws:CurrentTime": NOW},
                   {"aws:userid": "AIDA222222222222", "aws:PrincipalArn": f"arn:aws:iam::{PROD}:user/brokers/token-broker",
                    "aws:CurrentTime": NOW}],
    },
}


@pytest.mark.parametrize("name", sorted(n for n in SCOPES if SCOPES[n]["culprit"]))
def test_the_culprit_is_denied_everything_and_cannot_undo_it(name):
    arn, node = _contained(name)
    for ctx in SCOPES[name]["culprit"]:
        for action, resource in (TERMINATE, READ, _undo(arn)):
            assert not _allowed(node, action, resource, ctx), (name, action, ctx)


@pytest.mark.parametrize("name", sorted(SCOPES))
def test_the_rest_of_the_principal_keeps_working_but_is_braked(name):
    arn, node = _contained(name)
    for ctx in SCOPES[name]["others"]:
        assert _allowed(node, *READ, ctx), (name, "other sessions keep their permissions", ctx)
        assert not _allowed(node, *TERMINATE, ctx), (name, "the brake holds for every session", ctx)
        assert not _allowed(node, *_undo(arn), ctx), (name, "no session may lift the brake", ctx)
        assert not _allowed(node, "autoscaling:DeleteAutoScalingGroup", "*", ctx), name
    # Without containment the same sessions could do all of it: the denies decide.
    free = _node(arn, {})
    for ctx in SCOPES[name]["others"] + SCOPES[name]["culprit"]:
        assert _allowed(free, *TERMINATE, ctx) and _allowed(free, *READ, ctx)


# Doors around the watched calls, each with a resource it applies to: another identity,
# a service acting with a role or on instances, stack writes, capacity changes, and the
# precursors that set a resource to destroy itself later.
DOORS = [
    ("sts:AssumeRole", f"arn:aws:iam::{PROD}:role/admin"),
    ("sts:GetFederationToken", f"arn:aws:sts::{PROD}:federated-user/escape"),
    ("iam:PassRole", f"arn:aws:iam::{PROD}:role/admin"),
    ("iam:CreateUser", f"arn:aws:iam::{PROD}:user/escape"),
    ("iam:CreateRole", f"arn:aws:iam::{PROD}:role/escape"),
    ("iam:AddUserToGroup", f"arn:aws:iam::{PROD}:group/admins"),
    ("iam:AttachGroupPolicy", f"arn:aws:iam::{PROD}:group/admins"),
    ("iam:CreateSAMLProvider", f"arn:aws:iam::{PROD}:saml-provider/escape"),
    ("ssm:SendCommand", _instance("i-0fffffffffffffff0")),
    ("ssm:StartAutomationExecution", f"arn:aws:ssm:us-east-1:{PROD}:automation-definition/AWS-TerminateEC2Instance:$DEFAULT"),
    ("ssm:StartSession", _instance("i-0fffffffffffffff0")),
    ("lambda:UpdateFunctionCode", f"arn:aws:lambda:us-east-1:{PROD}:function:admin-task"),
    ("cloudformation:UpdateStack", f"arn:aws:cloudformation:us-east-1:{PROD}:stack/app/0a1b2c3d"),
    ("cloudformation:ExecuteChangeSet", f"arn:aws:cloudformation:us-east-1:{PROD}:stack/app/0a1b2c3d"),
    ("autoscaling:SetInstanceHealth", "*"),
    ("autoscaling:StartInstanceRefresh", "*"),
    ("autoscaling:ExecutePolicy", "*"),
    ("autoscaling:DeleteWarmPool", "*"),
    ("ec2:ModifyFleet", "*"),
    ("ec2:ModifySpotFleetRequest", "*"),
    ("eks:UpdateNodegroupConfig", f"arn:aws:eks:us-east-1:{PROD}:nodegroup/prod/web/0a1b2c3d"),
    ("elasticmapreduce:ModifyInstanceGroups", "*"),
    ("batch:UpdateComputeEnvironment", f"arn:aws:batch:us-east-1:{PROD}:compute-environment/jobs"),
    ("ec2:ModifyInstanceAttribute", _instance("i-0fffffffffffffff0")),
    ("s3:PutLifecycleConfiguration", "arn:aws:s3:::app-bucket"),
    ("rds:ModifyDBInstance", f"arn:aws:rds:us-east-1:{PROD}:db:orders"),
]


@pytest.mark.parametrize("name", sorted(SCOPES))
def test_every_door_around_the_brake_is_closed_for_a_fresh_session(name):
    """A braked principal's sessions the scope spares (a fresh session, the fleet's other
    instances) keep their work but cannot walk around the brake: each door is open to the
    same session without containment, and shut under it."""
    arn, node = _contained(name)
    free = _node(arn, {})
    for ctx in SCOPES[name]["others"]:
        for action, resource in DOORS:
            assert _allowed(free, action, resource, ctx), (name, action, "open without containment")
            assert not _allowed(node, action, resource, ctx), (name, action, "open under the brake")


# ---- the containment role may only add the tripwire's denies ------------------------

def _member_role(resource):
    docs = {p["PolicyName"]: _resolve(p["PolicyDocument"], MEMBER)
            for p in MEMBER["Resources"][resource]["Properties"]["Policies"]}
    arn = f"arn:aws:iam::123456789012:role/{MEMBER['Resources'][resource]['Properties']['RoleName']}"
    if isinstance(MEMBER["Resources"][resource]["Properties"]["RoleName"], dict):
        arn = "arn:aws:iam::123456789012:role/tripwire-containment"
    policies = [Policy(arn, n, d) for n, d in docs.items()]
    return Node(arn, "AROACONTAIN", policies, [], {"Version": "2012-10-17", "Statement": []},
                None, 0, False, False, None, False, None)


ACCOUNT = "123456789012"  # the account _resolve renders the member stack in
BRAKE_ARN = f"arn:aws:iam::{ACCOUNT}:policy/tripwire/BrakePolicy"  # _resolve's name for Ref BrakePolicy
APP = f"arn:aws:iam::{ACCOUNT}:role/app"
UNTOUCHABLE = [f"arn:aws:iam::{ACCOUNT}:role/{r}" for r in (
    "tripwire-containment", "tripwire-forwarder", "tripwire-release", "tripwire-canary", "stacksets-exec-0123abcd",
    "AWSControlTowerExecution", "aws-controltower-AdministratorExecutionRole", "BreakGlassAdmin",
    "OrganizationAccountAccessRole")] + [f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"]


SCOPE_ARN = f"arn:aws:iam::{ACCOUNT}:policy/tripwire/ScopePolicy"
CONTAIN_TAG = {"aws:TagKeys": ["tripwire-contain-session"]}


def test_the_containment_role_can_only_add_the_tripwires_denies_and_never_grant():
    node = _member_role("ContainmentRole")
    ctx = {"aws:PrincipalArn": node.arn}
    for mine in (BRAKE_ARN, SCOPE_ARN):
        assert _allowed(node, "iam:AttachRolePolicy", APP, {**ctx, "iam:PolicyARN": mine})
    for other in ("arn:aws:iam::aws:policy/AdministratorAccess", f"arn:aws:iam::{ACCOUNT}:policy/customer-admin"):
        assert not _allowed(node, "iam:AttachRolePolicy", APP, {**ctx, "iam:PolicyARN": other}), other
    # It names the culprit by tag, under the tripwire's keys only.
    assert _allowed(node, "iam:TagRole", APP, {**ctx, **CONTAIN_TAG})
    for keys in (["team"], ["tripwire-contain-session", "team"], ["tripwire-release"]):
        assert not _allowed(node, "iam:TagRole", APP, {**ctx, "aws:TagKeys": keys}), keys
    # No document of its own making (no inline policy, no policy version, no new
    # policy), so no Allow; nothing of the customer's removed or loosened.
    for action in ("iam:PutRolePolicy", "iam:PutUserPolicy", "iam:CreatePolicyVersion", "iam:CreatePolicy",
                   "iam:SetDefaultPolicyVersion", "iam:PutRolePermissionsBoundary", "iam:UpdateAssumeRolePolicy",
                   "iam:DeleteRolePolicy", "iam:DetachRolePolicy", "iam:UntagRole", "iam:DeleteRole",
                   "iam:DeleteUserPolicy", "iam:CreateAccessKey", "iam:UpdateAccessKey"):
        for resource in (APP, f"arn:aws:iam::{ACCOUNT}:policy/tripwire/BrakePolicy"):
            assert not _allowed(node, action, resource, {**ctx, "iam:PolicyARN": BRAKE_ARN, **CONTAIN_TAG}), action


@pytest.mark.parametrize("target", UNTOUCHABLE + [f"arn:aws:iam::{ACCOUNT}:role/tripwire-{r}"
                                                  for r in ("detector", "responder", "watchdog", "findings")])
def test_the_containment_role_cannot_touch_protected_tripwire_or_aws_roles(target):
    """The security account's tripwire roles included: the StackSet deploys this role there too."""
    node = _member_role("ContainmentRole")
    ctx = {"aws:PrincipalArn": node.arn, "iam:PolicyARN": BRAKE_ARN, **CONTAIN_TAG}
    for action in ("iam:AttachRolePolicy", "iam:TagRole", "iam:PutRolePolicy"):
        assert not _allowed(node, action, target, ctx), (action, target)


DRILL = f"arn:aws:iam::{ACCOUNT}:role/tripwire-drill"


def test_the_containment_role_lifts_the_tripwires_denies_from_the_drill_role_and_no_other():
    node = _member_role("ContainmentRole")
    ctx = {"aws:PrincipalArn": node.arn}
    assert _allowed(node, "iam:AttachRolePolicy", DRILL, {**ctx, "iam:PolicyARN": BRAKE_ARN})
    assert _allowed(node, "iam:DetachRolePolicy", DRILL, {**ctx, "iam:PolicyARN": BRAKE_ARN})
    assert _allowed(node, "iam:UntagRole", DRILL, {**ctx, **CONTAIN_TAG})
    assert _allowed(node, "iam:ListAttachedRolePolicies", DRILL, ctx)
    assert _allowed(node, "iam:SimulatePrincipalPolicy", DRILL, ctx)
    # Never another's containment, nor anything the drill role did not get from it.
    assert not _allowed(node, "iam:DetachRolePolicy", APP, {**ctx, "iam:PolicyARN": BRAKE_ARN})
    assert not _allowed(node, "iam:UntagRole", APP, {**ctx, **CONTAIN_TAG})
    assert not _allowed(node, "iam:DetachRolePolicy", DRILL,
                        {**ctx, "iam:PolicyARN": "arn:aws:iam::aws:policy/SecurityAudit"})
    for action in ("iam:PutRolePolicy", "iam:UpdateAssumeRolePolicy", "iam:DeleteRole"):
        assert not _allowed(node, action, DRILL, ctx), action
    assert not _allowed(node, "iam:AttachRolePolicy", DRILL,
                        {**ctx, "iam:PolicyARN": "arn:aws:iam::aws:policy/AdministratorAccess"})


def test_the_release_role_detaches_only_the_tripwires_policies():
    node = _member_role("ReleaseRole")
    ctx = {"aws:PrincipalArn": node.arn}
    assert _allowed(node, "iam:DetachRolePolicy", APP, {**ctx, "iam:PolicyARN": BRAKE_ARN})
    assert _allowed(node, "iam:UntagRole", APP, {**ctx, **CONTAIN_TAG})
    assert not _allowed(node, "iam:UntagRole", APP, {**ctx, "aws:TagKeys": ["team"]})
    assert not _allowed(node, "iam:DetachRolePolicy", APP, {**ctx, "iam:PolicyARN": "arn:aws:iam::aws:policy/SecurityAudit"})
    assert not _allowed(node, "iam:AttachRolePolicy", APP, {**ctx, "iam:PolicyARN": BRAKE_ARN})
    assert not _allowed(node, "iam:PutRolePolicy", APP, ctx)
    for target in UNTOUCHABLE:
        assert not _allowed(node, "iam:DeleteRolePolicy", target, ctx), target


def test_the_canary_may_only_dry_run_a_termination_of_an_instance_that_never_exists():
    node = _member_role("CanaryRole")
    ctx = {"aws:PrincipalArn": node.arn}
    canary = f"arn:aws:ec2:eu-west-1:{ACCOUNT}:instance/i-0000000000000dead"
    assert _allowed(node, "ec2:TerminateInstances", canary, ctx)
    for action, resource in [
        ("ec2:TerminateInstances", f"arn:aws:ec2:eu-west-1:{ACCOUNT}:instance/i-0123456789abcdef0"),
        ("ec2:TerminateInstances", "arn:aws:ec2:eu-west-1:444444444444:instance/i-0000000000000dead"),
        ("ec2:TerminateInstances", "*"),
        ("ec2:StopInstances", canary),
        ("ec2:RunInstances", "*"),
        ("iam:PutRolePolicy", f"arn:aws:iam::{ACCOUNT}:role/tripwire-canary"),
        ("sts:AssumeRole", "*"),
    ]:
        assert not _allowed(node, action, resource, ctx), (action, resource)
    trust = MEMBER["Resources"]["CanaryRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert [t["Principal"] for t in trust] == [{"Service": "scheduler.amazonaws.com"}]


# ---- the SCP: a member account's administrator cannot disarm the tripwire -----------

def _member_admin(arn=f"arn:aws:iam::{PROD}:role/Admin"):
    return Node(arn, "AROAADMIN", [Policy(arn, "admin", copy.deepcopy(ADMIN))], [],
                {"Version": "2012-10-17", "Statement": []}, None, 0, False, True, None, False, None)


def _under_scp(node, action, resource):
    scps = [[Policy("arn:aws:organizations::1:policy/p-full", "FullAWSAccess", FULL_ACCESS),
             Policy("arn:aws:organizations::1:policy/p-tripwire", "protect-tripwire", copy.deepcopy(SCP))]]
    ctx = {"aws:PrincipalArn": node.arn}
    return local_check_authorization_full(node, action, resource, ctx, service_control_policy_groups=scps)


DISARM = [
    ("iam:DeleteRole", f"arn:aws:iam::{PROD}:role/tripwire-containment"),
    ("iam:PutRolePolicy", f"arn:aws:iam::{PROD}:role/tripwire-forwarder"),
    ("iam:UpdateAssumeRolePolicy", f"arn:aws:iam::{PROD}:role/tripwire-release"),
    ("iam:CreateRole", f"arn:aws:iam::{PROD}:role/stacksets-exec-x"),
    # The same names under another path: a role exempt by name would be anyone's.
    ("iam:CreateRole", f"arn:aws:iam::{PROD}:role/p/stacksets-exec-x"),
    ("iam:CreateRole", f"arn:aws:iam::{PROD}:role/ops/tripwire-release"),
    # Passing the tripwire's member roles lets another service act as them.
    ("iam:PassRole", f"arn:aws:iam::{PROD}:role/tripwire-canary"),
    ("iam:PassRole", f"arn:aws:iam::{PROD}:role/tripwire-forwarder"),
    ("iam:UpdateAssumeRolePolicy", f"arn:aws:iam::{PROD}:role/stacksets-exec-0123abcd"),
    ("sts:AssumeRole", f"arn:aws:iam::{PROD}:role/stacksets-exec-0123abcd"),
    ("iam:CreatePolicyVersion", f"arn:aws:iam::{PROD}:policy/tripwire/tripwire-brake"),
    ("iam:DeletePolicy", f"arn:aws:iam::{PROD}:policy/tripwire/tripwire-brake"),
    ("events:DisableRule", f"arn:aws:events:us-east-1:{PROD}:rule/tripwire-forward-terminate-instances"),
    ("events:RemoveTargets", f"arn:aws:events:eu-west-1:{PROD}:rule/tripwire-forward-session-issues"),
    ("cloudtrail:StopLogging", f"arn:aws:cloudtrail:us-east-1:{PROD}:trail/org-trail"),
    ("iam:DeleteRole", f"arn:aws:iam::{PROD}:role/tripwire-canary"),
    ("scheduler:DeleteSchedule", f"arn:aws:scheduler:eu-west-1:{PROD}:schedule/default/tripwire-canary"),
    ("scheduler:UpdateSchedule", f"arn:aws:scheduler:us-east-1:{PROD}:schedule/default/tripwire-canary"),
    ("cloudtrail:PutEventSelectors", f"arn:aws:cloudtrail:us-east-1:{PROD}:trail/org-trail"),
    ("cloudtrail:DeleteTrail", f"arn:aws:cloudtrail:us-east-1:{PROD}:trail/org-trail"),
    ("cloudtrail:UpdateTrail", f"arn:aws:cloudtrail:us-east-1:{PROD}:trail/org-trail"),
    # The same in GovCloud: the SCP names every partition.
    ("iam:DeleteRole", f"arn:aws-us-gov:iam::{PROD}:role/tripwire-containment"),
    ("events:DisableRule", f"arn:aws-us-gov:events:us-gov-west-1:{PROD}:rule/tripwire-forward-terminate-instances"),
]


@pytest.mark.parametrize("action,resource", DISARM, ids=[f"{a} {r.split(':', 5)[-1]}" for a, r in DISARM])
def test_a_member_admin_under_the_scp_cannot_disarm_the_tripwire(action, resource):
    admin = _member_admin()
    assert _allowed(admin, action, resource, {"aws:PrincipalArn": admin.arn}), "without the SCP it could"
    assert not _under_scp(admin, action, resource)


def test_the_scp_leaves_stacksets_and_everyday_work_alone():
    stacksets = _member_admin(f"arn:aws:iam::{PROD}:role/stacksets-exec-0123abcd")
    assert _under_scp(stacksets, "iam:PutRolePolicy", f"arn:aws:iam::{PROD}:role/tripwire-containment")
    assert _under_scp(stacksets, "events:PutRule", f"arn:aws:events:us-east-1:{PROD}:rule/tripwire-forward-terminate-instances")
    admin = _member_admin()
    for action, resource in (("iam:CreateRole", f"arn:aws:iam::{PROD}:role/app"),
                             ("iam:CreateRole", f"arn:aws:iam::{PROD}:role/tripwire-cleanup"),
                             ("events:PutRule", f"arn:aws:events:us-east-1:{PROD}:rule/app"),
                             ("ec2:TerminateInstances", TERMINATE[1])):
        assert _under_scp(admin, action, resource), (action, resource)


# Names the tripwire protects or refuses by name: a member administrator who could create
# one (or edit or pass it) would wipe through it, paged but never contained.
RESERVED = [
    ("iam:CreateRole", f"arn:aws:iam::{PROD}:role/BreakGlass-tmp"),
    ("iam:CreateRole", f"arn:aws:iam::{PROD}:role/breakglass-tmp"),
    ("iam:CreateRole", f"arn:aws:iam::{PROD}:role/breakglass/oncall"),
    ("iam:UpdateAssumeRolePolicy", f"arn:aws:iam::{PROD}:role/BreakGlassAdmin"),
    ("iam:PutRolePolicy", f"arn:aws:iam::{PROD}:role/BreakGlassAdmin"),
    ("iam:AttachRolePolicy", f"arn:aws:iam::{PROD}:role/OrganizationAccountAccessRole"),
    ("iam:PassRole", f"arn:aws:iam::{PROD}:role/BreakGlassAdmin"),
    ("iam:CreateRole", f"arn:aws:iam::{PROD}:role/OrganizationAccountAccessRole"),
    ("iam:CreateRole", f"arn:aws:iam::{PROD}:role/AWSControlTowerExecution"),
    ("iam:CreateRole", f"arn:aws:iam::{PROD}:role/aws-controltower-ops"),
    ("iam:CreateRole", f"arn:aws:iam::{PROD}:role/service-role/aws-controltower-ops"),
    ("iam:CreateRole", f"arn:aws-us-gov:iam::{PROD}:role/BreakGlass-tmp"),
]


@pytest.mark.parametrize("action,resource", RESERVED, ids=[f"{a} {r.split(':', 5)[-1]}" for a, r in RESERVED])
def test_a_member_admin_cannot_take_a_name_the_tripwire_never_contains(action, resource):
    admin = _member_admin()
    assert _allowed(admin, action, resource, {"aws:PrincipalArn": admin.arn}), "without the SCP it could"
    assert not _under_scp(admin, action, resource)


def test_the_drill_role_is_the_stacksets_to_make_and_the_containment_roles_to_drill():
    """Its calls are never counted, so it must hold nothing: no member administrator may
    create, trust, grant or pass it."""
    drill = f"arn:aws:iam::{PROD}:role/tripwire-drill"
    admin = _member_admin()
    for action in ("iam:CreateRole", "iam:UpdateAssumeRolePolicy", "iam:PutRolePolicy", "iam:AttachRolePolicy",
                   "iam:PassRole", "iam:DeleteRole", "iam:TagRole"):
        for resource in (drill, f"arn:aws:iam::{PROD}:role/ops/tripwire-drill"):
            assert _allowed(admin, action, resource, {"aws:PrincipalArn": admin.arn}), "without the SCP it could"
            assert not _under_scp(admin, action, resource), (action, resource)
    stacksets = _member_admin(f"arn:aws:iam::{PROD}:role/stacksets-exec-0123abcd")
    assert _under_scp(stacksets, "iam:CreateRole", drill)
    containment = _member_admin(f"arn:aws:iam::{PROD}:role/tripwire-containment")
    for action in ("iam:AttachRolePolicy", "iam:TagRole", "iam:DetachRolePolicy", "iam:UntagRole"):
        assert _under_scp(containment, action, drill), action


def test_the_deployers_still_create_the_reserved_roles_and_admins_their_own():
    stacksets = _member_admin(f"arn:aws:iam::{PROD}:role/stacksets-exec-0123abcd")
    assert _under_scp(stacksets, "iam:CreateRole", f"arn:aws:iam::{PROD}:role/BreakGlassAdmin")
    control_tower = _member_admin(f"arn:aws:iam::{PROD}:role/AWSControlTowerExecution")
    assert _under_scp(control_tower, "iam:CreateRole", f"arn:aws:iam::{PROD}:role/aws-controltower-ops")
    admin = _member_admin()
    for name in ("app", "glass-breaker", "ops/BreakGlass-notes"):
        assert _under_scp(admin, "iam:CreateRole", f"arn:aws:iam::{PROD}:role/{name}"), name
    # Using a break-glass role is what it is for.
    assert _under_scp(admin, "sts:AssumeRole", f"arn:aws:iam::{PROD}:role/BreakGlassAdmin")


def test_only_the_tripwires_roles_set_or_remove_its_containment_tags():
    """A tripwire-contain-* tag names the culprit the scope policy denies: set by anyone
    else it would aim the deny at an innocent session; removed, it lifts the deny; and a
    session tag of the same key overrides the role's (the culprit's own session dodging
    its deny). The SCP reserves the keys for the containment and release roles."""
    scps = [[Policy("arn:aws:organizations::1:policy/p-full", "FullAWSAccess", FULL_ACCESS),
             Policy("arn:aws:organizations::1:policy/p-tripwire", "protect-tripwire", copy.deepcopy(SCP))]]

    def under_scp(node, action, resource, keys):
        ctx = {"aws:PrincipalArn": node.arn, "aws:TagKeys": keys}
        return local_check_authorization_full(node, action, resource, ctx, service_control_policy_groups=scps)

    app = f"arn:aws:iam::{PROD}:role/app"
    admin = _member_admin()
    for action, resource in (("iam:TagRole", app), ("iam:UntagRole", app), ("iam:TagUser", f"arn:aws:iam::{PROD}:user/alice"),
                             ("iam:UntagUser", f"arn:aws:iam::{PROD}:user/alice"), ("sts:TagSession", app)):
        assert _allowed(admin, action, resource, {"aws:PrincipalArn": admin.arn}), "without the SCP it could"
        assert not under_scp(admin, action, resource, ["tripwire-contain-session"]), action
        # IAM's tag keys are case-insensitive, so a key in other case is the same tag.
        assert not under_scp(admin, action, resource, ["team", "TRIPWIRE-CONTAIN-Instance"]), action
        assert under_scp(admin, action, resource, ["team"]), (action, "other tags stay the admin's")
    containment = _member_admin(f"arn:aws:iam::{PROD}:role/tripwire-containment")
    assert under_scp(containment, "iam:TagRole", app, ["tripwire-contain-session"])
    release = _member_admin(f"arn:aws:iam::{PROD}:role/tripwire-release")
    assert under_scp(release, "iam:UntagRole", app, ["tripwire-contain-session"])


def test_the_scp_fits_the_organizations_size_limit():
    # SCPs are at most 5,120 characters; the deploy walkthrough submits it minified.
    assert len(json.dumps(SCP, separators=(",", ":"))) <= 5120


# ---- the security account: only the deploying principal changes the functions ------

GUARD = json.loads((ROOT / "infra" / "scp-protect-security-account.json").read_text())
SECURITY = "999999999999"
GUARDED = [
    ("lambda:UpdateFunctionCode", f"arn:aws:lambda:us-east-1:{SECURITY}:function:tripwire-responder"),
    ("lambda:UpdateFunctionConfiguration", f"arn:aws:lambda:us-east-1:{SECURITY}:function:tripwire-detector"),
    ("lambda:DeleteFunctionCodeSigningConfig", f"arn:aws:lambda:us-east-1:{SECURITY}:function:tripwire-responder"),
    ("iam:PutRolePolicy", f"arn:aws:iam::{SECURITY}:role/tripwire-responder"),
    # Running other code as the responder: a new function given its role.
    ("iam:PassRole", f"arn:aws:iam::{SECURITY}:role/tripwire-responder"),
    ("iam:UpdateAssumeRolePolicy", f"arn:aws:iam::{SECURITY}:role/tripwire-responder"),
    ("sts:AssumeRole", f"arn:aws:iam::{SECURITY}:role/tripwire-responder"),
    # The watchdog's schedule: stopped, lost coverage would never page.
    ("scheduler:DeleteSchedule", f"arn:aws:scheduler:us-east-1:{SECURITY}:schedule/default/tripwire-watchdog"),
    ("scheduler:UpdateSchedule", f"arn:aws:scheduler:us-east-1:{SECURITY}:schedule/default/tripwire-watchdog"),
    # The quiet disarms: the organization bus, its rules and targets; the alert channels
    # and their subscriptions; the table and the alarms; the published policy; and the
    # member StackSet (an AllowedAccounts of every account).
    ("events:DisableRule", f"arn:aws:events:us-east-1:{SECURITY}:rule/tripwire/tripwire-DetectorOrganizationBus-1A2B3C"),
    ("events:DisableRule", f"arn:aws:events:us-east-1:{SECURITY}:rule/tripwire-DetectorCentralAccountTamper-1A2B3C"),
    ("events:RemoveTargets", f"arn:aws:events:us-east-1:{SECURITY}:rule/tripwire/tripwire-DetectorOrganizationBus-1A2B3C"),
    ("events:RemovePermission", f"arn:aws:events:us-east-1:{SECURITY}:event-bus/tripwire"),
    ("events:DeleteEventBus", f"arn:aws:events:us-east-1:{SECURITY}:event-bus/tripwire-alerts"),
    ("sns:SetSubscriptionAttributes", f"arn:aws:sns:us-east-1:{SECURITY}:tripwire-alarms:0b2f9f5e-6f2a-4d7b-9b7e-1c2d3e4f5a6b"),
    ("sns:Unsubscribe", f"arn:aws:sns:us-east-1:{SECURITY}:tripwire-alerts:0b2f9f5e-6f2a-4d7b-9b7e-1c2d3e4f5a6b"),
    ("sns:SetTopicAttributes", f"arn:aws:sns:us-east-1:{SECURITY}:tripwire-alerts"),
    ("sns:DeleteTopic", f"arn:aws:sns:us-east-1:{SECURITY}:tripwire-alarms"),
    ("dynamodb:DeleteResourcePolicy", f"arn:aws:dynamodb:us-east-1:{SECURITY}:table/tripwire-Table-1A2B3C4D5E6F"),
    ("dynamodb:DeleteTable", f"arn:aws:dynamodb:us-east-1:{SECURITY}:table/tripwire-Table-1A2B3C4D5E6F"),
    ("cloudwatch:DisableAlarmActions", f"arn:aws:cloudwatch:us-east-1:{SECURITY}:alarm:tripwire-watchdog-silent"),
    ("cloudwatch:DeleteAlarms", f"arn:aws:cloudwatch:us-east-1:{SECURITY}:alarm:tripwire-detector-silent"),
    ("ssm:PutParameter", f"arn:aws:ssm:us-east-1:{SECURITY}:parameter/tripwire/policy"),
    ("cloudformation:UpdateStackSet", f"arn:aws:cloudformation:us-east-1:{SECURITY}:stackset/tripwire-member:1a2b3c4d-5e6f-7a8b-9c0d-1e2f3a4b5c6d"),
    ("cloudformation:DeleteStackInstances", f"arn:aws:cloudformation:us-east-1:{SECURITY}:stackset/tripwire-member:1a2b3c4d-5e6f-7a8b-9c0d-1e2f3a4b5c6d"),
    ("lambda:PutFunctionConcurrency", f"arn:aws:lambda:us-east-1:{SECURITY}:function:tripwire-detector"),
    ("lambda:RemovePermission", f"arn:aws:lambda:us-east-1:{SECURITY}:function:tripwire-detector"),
]


def _guarded(node, action, resource):
    scps = [[Policy("arn:aws:organizations::1:policy/p-full", "FullAWSAccess", FULL_ACCESS),
             Policy("arn:aws:organizations::1:policy/p-guard", "protect-security-account", copy.deepcopy(GUARD))]]
    return local_check_authorization_full(node, action, resource, {"aws:PrincipalArn": node.arn},
                                          service_control_policy_groups=scps)


@pytest.mark.parametrize("action,resource", GUARDED, ids=[a for a, _ in GUARDED])
def test_only_the_deployer_changes_the_security_accounts_functions_and_roles(action, resource):
    admin = _member_admin(f"arn:aws:iam::{SECURITY}:role/Admin")
    assert _allowed(admin, action, resource, {"aws:PrincipalArn": admin.arn}), "without the guard it could"
    assert not _guarded(admin, action, resource)
    deployer = _member_admin(f"arn:aws:iam::{SECURITY}:role/tripwire-deployer")
    assert _guarded(deployer, action, resource)


def test_the_guard_leaves_the_security_accounts_own_work_alone():
    admin = _member_admin(f"arn:aws:iam::{SECURITY}:role/Admin")
    for action, resource in (
            ("events:DisableRule", f"arn:aws:events:us-east-1:{SECURITY}:rule/app-nightly"),
            ("sns:DeleteTopic", f"arn:aws:sns:us-east-1:{SECURITY}:app-alerts"),
            ("sns:Subscribe", f"arn:aws:sns:us-east-1:{SECURITY}:tripwire-alerts"),
            ("dynamodb:DeleteTable", f"arn:aws:dynamodb:us-east-1:{SECURITY}:table/app"),
            ("cloudwatch:DeleteAlarms", f"arn:aws:cloudwatch:us-east-1:{SECURITY}:alarm:app-latency"),
            ("ssm:PutParameter", f"arn:aws:ssm:us-east-1:{SECURITY}:parameter/app/config"),
            ("cloudformation:UpdateStackSet", f"arn:aws:cloudformation:us-east-1:{SECURITY}:stackset/app:1a2b3c4d-5e6f-7a8b-9c0d-1e2f3a4b5c6d")):
        assert _guarded(admin, action, resource), (action, resource)


def test_only_the_deployer_changes_a_key_the_stack_tagged_as_the_tripwires():
    """The keys have no fixed ARN; the stack tags them `tripwire=guarded`, and the guard
    denies changing (and untagging) a key with that tag to all but the deployer."""
    scps = [[Policy("arn:aws:organizations::1:policy/p-full", "FullAWSAccess", FULL_ACCESS),
             Policy("arn:aws:organizations::1:policy/p-guard", "protect-security-account", copy.deepcopy(GUARD))]]
    key = f"arn:aws:kms:us-east-1:{SECURITY}:key/1234abcd-12ab-34cd-56ef-1234567890ab"

    def may(node, action, tags):
        ctx = {"aws:PrincipalArn": node.arn, **{f"aws:ResourceTag/{k}": v for k, v in tags.items()}}
        return local_check_authorization_full(node, action, key, ctx, service_control_policy_groups=scps)

    admin = _member_admin(f"arn:aws:iam::{SECURITY}:role/Admin")
    deployer = _member_admin(f"arn:aws:iam::{SECURITY}:role/tripwire-deployer")
    for action in ("kms:PutKeyPolicy", "kms:ScheduleKeyDeletion", "kms:DisableKey", "kms:UntagResource"):
        assert not may(admin, action, {"tripwire": "guarded"}), action
        assert may(deployer, action, {"tripwire": "guarded"}), action
        assert may(admin, action, {"team": "app"}), (action, "another key stays the admin's")
    tags = {r: CENTRAL["Resources"][r]["Properties"]["Tags"] for r in ("Key", "AlarmKey")}
    assert all(t == [{"Key": "tripwire", "Value": "guarded"}] for t in tags.values()), tags


def test_the_guard_fits_the_organizations_size_limit():
    assert len(json.dumps(GUARD, separators=(",", ":"))) <= 5120


def test_every_alarm_has_a_name_the_guard_reserves():
    alarms = {n: r["Properties"].get("AlarmName") for n, r in CENTRAL["Resources"].items()
              if r["Type"] == "AWS::CloudWatch::Alarm"}
    assert alarms and all(isinstance(a, str) and a.startswith("tripwire-") for a in alarms.values()), alarms


CONTAINING = [f"arn:aws:lambda:us-east-1:{SECURITY}:function:tripwire-detector",
              f"arn:aws:lambda:us-east-1:{SECURITY}:function:tripwire-responder"]


@pytest.mark.parametrize("function", CONTAINING, ids=lambda f: f.rsplit(":", 1)[-1])
def test_no_administrator_hands_the_functions_that_contain_a_forged_event(function):
    """On a direct invoke an envelope's `source` and `account` are plain JSON: whoever may
    invoke the detector could name any unprotected role. Only EventBridge (a service
    principal, which SCPs do not bind), the detector (which asks the responder) and the
    deployer may invoke them."""
    admin = _member_admin(f"arn:aws:iam::{SECURITY}:role/Admin")
    for action in ("lambda:InvokeFunction", "lambda:InvokeAsync"):
        assert _allowed(admin, action, function, {"aws:PrincipalArn": admin.arn}), "without the guard it could"
        assert not _guarded(admin, action, function), action
    detector = _member_admin(f"arn:aws:iam::{SECURITY}:role/tripwire-detector")
    assert _guarded(detector, "lambda:InvokeFunction", CONTAINING[1])
    deployer = _member_admin(f"arn:aws:iam::{SECURITY}:role/tripwire-deployer")
    assert _guarded(deployer, "lambda:InvokeFunction", function)
    # The watchdog asks the responder for the drill.
    watchdog = _member_admin(f"arn:aws:iam::{SECURITY}:role/tripwire-watchdog")
    assert _guarded(watchdog, "lambda:InvokeFunction", CONTAINING[1])
    # The watchdog and the findings function contain no one: their invokers are left alone.
    assert _guarded(admin, "lambda:InvokeFunction", f"arn:aws:lambda:us-east-1:{SECURITY}:function:tripwire-watchdog")


def _central_role(name):
    """The central stack's role `name` as the evaluator's principal, and its ARN."""
    role = CENTRAL["Resources"][name]
    docs = {p["PolicyName"]: _resolve(p["PolicyDocument"], CENTRAL) for p in role["Properties"]["Policies"]}
    arn = f"arn:aws:iam::123456789012:role/{role['Properties']['RoleName']}"
    return arn, Node(arn, "AROA" + name.upper(), [Policy(arn, n, d) for n, d in docs.items()], [],
                     {"Version": "2012-10-17", "Statement": []}, None, 0, False, False, None, False, None)


TABLE_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/Table"


def test_the_responder_writes_only_the_pointer_from_a_contained_principal():
    arn, node = _central_role("ResponderRole")
    table = TABLE_ARN
    ctx = {"aws:PrincipalArn": arn}
    for key in ("P#222222222222#role/app", "DR", "O#drill#222222222222#2026-12-07T00:00:00Z"):
        assert _allowed(node, "dynamodb:PutItem", table, {**ctx, "dynamodb:LeadingKeys": [key]}), key
    for key in ("W#222222222222|arn:aws:iam::222222222222:role/app", "I#222222222222|x", "H", "O#tamper#1",
                "O#containment_unproven#222222222222#1"):
        assert not _allowed(node, "dynamodb:PutItem", table, {**ctx, "dynamodb:LeadingKeys": [key]}), key


def test_the_watchdog_touches_only_heartbeat_state_and_its_own_pages():
    arn, node = _central_role("WatchdogRole")
    ctx = {"aws:PrincipalArn": arn}
    for action, key in (("dynamodb:Query", "H"), ("dynamodb:PutItem", "H"), ("dynamodb:DeleteItem", "H"),
                        ("dynamodb:UpdateItem", "H"), ("dynamodb:UpdateItem", "O#coverage_lost#1#r#2"),
                        ("dynamodb:PutItem", "O#coverage_never_seen#1#r#2")):
        assert _allowed(node, action, TABLE_ARN, {**ctx, "dynamodb:LeadingKeys": [key]}), (action, key)
    for key in ("I#222222222222|x", "W#222222222222|x", "P#222222222222#role/app", "O#tamper#1", "O#step#1"):
        for action in ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"):
            assert not _allowed(node, action, TABLE_ARN, {**ctx, "dynamodb:LeadingKeys": [key]}), (action, key)
    # The StackSet lives in the management account, whichever account lists it.
    listed = "arn:aws:cloudformation:us-east-1:999999999999:stackset/tripwire-member:0a1b2c3d"
    assert _allowed(node, "cloudformation:ListStackInstances", listed, ctx)
    for action, resource in (("cloudformation:ListStackInstances", listed.replace("tripwire-member", "other")),
                             ("cloudformation:UpdateStackSet", listed),
                             ("cloudformation:DescribeStacks", "arn:aws:cloudformation:us-east-1:1:stack/x/y")):
        assert not _allowed(node, action, resource, ctx), (action, resource)


# ---- the security account: only the tripwire writes its incidents -------------------

TABLE = "arn:aws:dynamodb:us-east-1:123456789012:table/tripwire-Table-0A1B2C3D"


def _table_policy():
    return _resolve(CENTRAL["Resources"]["Table"]["Properties"]["ResourcePolicy"]["PolicyDocument"], CENTRAL)


def _writes_table(node, action):
    return local_check_authorization_full(node, action, TABLE, {"aws:PrincipalArn": node.arn},
                                          resource_policy=_table_policy(), resource_owner="123456789012")


@pytest.mark.parametrize("action", ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem",
                                    "dynamodb:BatchWriteItem", "dynamodb:PartiQLUpdate", "dynamodb:DeleteTable",
                                    "dynamodb:DeleteResourcePolicy"])
def test_no_administrator_writes_an_incident_the_responder_would_act_on(action):
    """An incident written by hand, with the responder invoked on it, would contain
    whoever it names; one marked released or deleted would undo the refusals. The
    table's own policy denies every writer but the functions, the release operators and
    the deployer, administrators of the security account included."""
    admin = _member_admin("arn:aws:iam::123456789012:role/Admin")
    assert _allowed(admin, action, TABLE, {"aws:PrincipalArn": admin.arn}), "without the table's policy it could"
    assert not _writes_table(admin, action), action
    for writer in ("tripwire-detector", "tripwire-responder", "tripwire-watchdog", "tripwire-deployer",
                   "security-operator"):
        assert _writes_table(_member_admin(f"arn:aws:iam::123456789012:role/{writer}"), action), writer
    # Reading stays the administrators': the runbook reads incidents.
    assert _writes_table(admin, "dynamodb:GetItem")


def test_only_the_member_forwarders_put_events_on_the_organization_bus():
    """Anyone in the organization allowed events:PutEvents could otherwise flood the
    detector (its concurrency is capped) and delay real events behind theirs."""
    policy = _resolve(CENTRAL["Resources"]["BusPolicy"]["Properties"]["Statement"], CENTRAL)
    bus_policy = {"Version": "2012-10-17", "Statement": [policy]}
    bus = policy["Resource"]
    org = {"aws:PrincipalOrgID": _resolve({"Ref": "OrgId"}, CENTRAL)}

    def puts(arn):
        node = _member_admin(arn)
        return local_check_authorization_full(node, "events:PutEvents", bus, {"aws:PrincipalArn": arn, **org},
                                              resource_policy=bus_policy, resource_owner="123456789012")

    assert puts(f"arn:aws:iam::{PROD}:role/tripwire-forwarder")
    for other in (f"arn:aws:iam::{PROD}:role/Admin", f"arn:aws:iam::{PROD}:role/ops/tripwire-forwarder",
                  f"arn:aws:iam::{PROD}:role/tripwire-forwarder-x"):
        assert not puts(other), other


# The account brake: the SCP the security account attaches to one member account when
# IAM cannot contain (`tripwire check-policy --get account_brake_scp`), judged by
# principalmapper's evaluator with Organizations' FullAWSAccess beside it.
OTHER = "444444444444"


@functools.cache
def _brake_scp_text():
    return _tripwire("check-policy", str(ROOT / "config" / "policy.toml"), "--get", "account_brake_scp").strip()


def _brake_scps(braked):
    scps = [Policy("arn:aws:organizations::1:policy/p-full", "FullAWSAccess", FULL_ACCESS)]
    if braked:
        scps.append(Policy("arn:aws:organizations::1:policy/p-brake", "tripwire-account-brake",
                           json.loads(_brake_scp_text())))
    return scps


def _braked(who, action, resource, braked=True):
    """Whether `who` (an administrator of its account) may make the call with the brake
    attached to PROD (`braked`) or not. principalmapper's Node models users and roles
    only, so the root user (whom IAM grants everything and only an SCP can bind) is
    judged by the SCP step of the same evaluator: no Deny matches, an Allow does."""
    scps = _brake_scps(braked)
    ctx = {"aws:PrincipalArn": who, "aws:PrincipalAccount": who.split(":")[4]}
    if who.endswith(":root"):
        keys = _prepare_condition_context(copy.deepcopy(ctx))
        return (not any(policy_has_matching_statement(p, "Deny", action, resource, keys) for p in scps)
                and any(policy_has_matching_statement(p, "Allow", action, resource, keys) for p in scps))
    return local_check_authorization_full(_member_admin(who), action, resource, ctx, service_control_policy_groups=[scps])


BRAKED_CALLS = [
    ("ec2:TerminateInstances", f"arn:aws:ec2:us-east-1:{PROD}:instance/i-0123456789abcdef0"),
    ("rds:DeleteDBCluster", f"arn:aws:rds:us-east-1:{PROD}:cluster:prod"),
    ("s3:DeleteBucket", "arn:aws:s3:::prod-data"),
    # The calls that set a service-linked role to destroy capacity: no SCP binds the role.
    ("autoscaling:DeleteAutoScalingGroup", f"arn:aws:autoscaling:us-east-1:{PROD}:autoScalingGroup:x:autoScalingGroupName/web"),
    ("autoscaling:SetDesiredCapacity", f"arn:aws:autoscaling:us-east-1:{PROD}:autoScalingGroup:x:autoScalingGroupName/web"),
    ("eks:DeleteNodegroup", f"arn:aws:eks:us-east-1:{PROD}:nodegroup/prod/ng/x"),
]

WHOM_IAM_CANNOT_CONTAIN = [
    f"arn:aws:iam::{PROD}:root",
    f"arn:aws:iam::{PROD}:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_AdministratorAccess_0123456789abcdef",
    f"arn:aws:iam::{PROD}:role/AWSControlTowerExecution",
]


@pytest.mark.parametrize("who", WHOM_IAM_CANNOT_CONTAIN, ids=["root", "identity-center", "control-tower"])
@pytest.mark.parametrize("action,resource", BRAKED_CALLS, ids=[a for a, _ in BRAKED_CALLS])
def test_under_the_account_brake_root_identity_center_and_control_tower_are_denied_the_watched_calls(who, action, resource):
    assert _braked(who, action, resource, braked=False), "without the brake it could"
    assert not _braked(who, action, resource)


def test_the_account_brake_spares_protected_principals_our_roles_other_calls_and_other_accounts():
    action, resource = BRAKED_CALLS[0]
    for arn in (f"arn:aws:iam::{PROD}:role/BreakGlassAdmin", f"arn:aws:iam::{PROD}:role/tripwire-containment",
                f"arn:aws:iam::{PROD}:role/tripwire-release"):
        assert _braked(arn, action, resource), arn
    # A look-alike of a protected name is not protected.
    assert not _braked(f"arn:aws:iam::{PROD}:role/NotBreakGlass", action, resource)
    root = f"arn:aws:iam::{PROD}:root"
    for other_call in [("s3:GetObject", "arn:aws:s3:::prod-data/x"), ("ec2:DescribeInstances", "*"),
                       ("iam:ListRoles", "*")]:
        assert _braked(root, *other_call), other_call
    # The brake is attached to the one account: another account's admin keeps its calls.
    other = f"arn:aws:iam::{OTHER}:root"
    assert _braked(other, "ec2:TerminateInstances", f"arn:aws:ec2:us-east-1:{OTHER}:instance/i-0123456789abcdef0",
                   braked=False)


def test_the_account_brake_fits_organizations_quota():
    assert len(_brake_scp_text()) <= 5120, len(_brake_scp_text())
