"""Checks on infra/: the templates lint clean, the event pattern matches exactly the
TerminateInstances events (with EventBridge's own matching, via moto), and the roles
grant exactly what the Rust code was seen calling in the end-to-end tests."""

import json
import os
import pathlib
import socket
import subprocess
import time

import boto3
import pytest
from cfnlint.decode import cfn_yaml
from parliament import analyze_policy_string

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(os.environ.get("TRIPWIRE_VENV_BIN", ROOT / ".venv" / "bin"))
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
CENTRAL = cfn_yaml.load(str(ROOT / "infra" / "template.yaml"))
MEMBER = cfn_yaml.load(str(ROOT / "infra" / "member.yaml"))
DELEGATION = cfn_yaml.load(str(ROOT / "infra" / "delegation.yaml"))
FIXTURES = ROOT / "tests" / "fixtures" / "cloudtrail-corpus"


def test_cfn_lint_finds_no_errors():
    out = subprocess.run(
        [str(BIN / "cfn-lint"), "--format", "json", "infra/template.yaml", "infra/member.yaml",
         "infra/delegation.yaml"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    findings = json.loads(out.stdout or "[]")
    errors = [f for f in findings if f["Level"] == "Error"]
    assert not errors, json.dumps(errors, indent=1)


# infra/delegation.yaml has only Organizations resources, for which checkov has no check
# (it reports none run); cfn-lint and the tests below judge it.
@pytest.mark.parametrize("template", ["infra/template.yaml", "infra/member.yaml"])
def test_checkov_finds_no_failed_check(template):
    out = subprocess.run(
        [str(BIN / "checkov"), "-f", template, "--framework", "cloudformation", "--quiet",
         "--skip-download", "-o", "json"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    report = json.loads(out.stdout)
    summary = report["summary"]
    assert summary["failed"] == 0, json.dumps(report["results"]["failed_checks"], indent=1)[:4000]
    assert summary["passed"] > 0


def test_every_checkov_skip_says_why():
    for tpl in (CENTRAL, MEMBER, DELEGATION):
        for name, res in tpl["Resources"].items():
            for skip in res.get("Metadata", {}).get("checkov", {}).get("skip", []):
                assert len(skip.get("comment", "")) > 20, f"{name}: {skip}"


# ---- the event pattern, matched by a real EventBridge implementation ----------------

def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    port = _free_port()
    logs = tmp_path_factory.mktemp("moto")
    proc = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            cwd=logs, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert time.time() < deadline, "moto_server did not start"
            time.sleep(0.05)
    yield dict(endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
               aws_access_key_id="testing", aws_secret_access_key="testing")
    proc.terminate()
    proc.wait(timeout=10)


MOTO_ACCOUNT = "123456789012"


def _member_pattern(moto, rule="tripwire-forward-terminate-instances", **params):
    """The member stack's forwarding pattern (of `rule`) as CloudFormation (moto's)
    resolves it with `params`, in moto's account."""
    cf = boto3.client("cloudformation", **moto)
    name = "member-" + "-".join(f"{k}{v}".replace(",", "") for k, v in sorted(params.items())) if params else "member"
    given = {"OrgId": "o-abcdefghij", "ResponderRoleArn": "arn:aws:iam::999999999999:role/tripwire-responder",
             "CentralEventBusArn": "arn:aws:events:us-east-1:999999999999:event-bus/tripwire", **params}
    cf.create_stack(StackName=name, TemplateBody=(ROOT / "infra" / "member.yaml").read_text(),
                    Capabilities=["CAPABILITY_NAMED_IAM"],
                    Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in given.items()])
    assert cf.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    events = boto3.client("events", **moto)
    pattern = json.loads(events.describe_rule(Name=rule)["EventPattern"])
    cf.delete_stack(StackName=name)
    return pattern


def _patterns(moto):
    events = CENTRAL["Resources"]["Detector"]["Properties"]["Events"]
    return {
        "central bus": events["OrganizationBus"]["Properties"]["Pattern"],
        "central default bus": events["CentralAccountDefaultBus"]["Properties"]["Pattern"],
        "member forwarding rule": _member_pattern(moto),
    }


def _envelopes(path):
    text = path.read_text()
    docs = [json.loads(line) for line in text.splitlines() if line.strip()] if path.suffix == ".jsonl" else [json.loads(text)]
    return [d for d in docs if isinstance(d, dict) and "detail-type" in d and isinstance(d.get("detail"), dict)]


def _cases():
    positives = [e for p in sorted((FIXTURES / "terminate").glob("*.eventbridge.json")) for e in _envelopes(p)]
    negatives = []
    for p in sorted((FIXTURES / "mixed").glob("*.jsonl")):
        if "eventbridge" in p.name:
            negatives += _envelopes(p)
    base = positives[0]
    for field, value in [("detail-type", "AWS Service Event via CloudTrail"), ("source", "custom.ec2"),
                         ("detail.eventName", "StopInstances"), ("detail.eventSource", "ecs.amazonaws.com")]:
        e = json.loads(json.dumps(base))
        if field.startswith("detail."):
            e["detail"][field.split(".")[1]] = value
        else:
            e[field] = value
        negatives.append(e)
    assert len(positives) == len(list((FIXTURES / "terminate").glob("*.eventbridge.json"))) >= 9
    assert len(negatives) > 150
    return positives, negatives


def _rule_on_moto(moto, bus, pattern):
    """A rule with `pattern` on a fresh bus of moto's EventBridge, delivering to SQS; returns
    a function that puts an envelope on the bus and says how many deliveries it made."""
    events = boto3.client("events", **moto)
    sqs = boto3.client("sqs", **moto)
    events.create_event_bus(Name=bus)
    queue = sqs.create_queue(QueueName=bus)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="r", EventBusName=bus, EventPattern=json.dumps(pattern))
    events.put_targets(Rule="r", EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])

    def matched(envelope):
        events.put_events(Entries=[{"EventBusName": bus, "Source": envelope["source"],
                                    "DetailType": envelope["detail-type"], "Detail": json.dumps(envelope["detail"])}])
        got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        for m in got:
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
        return len(got)

    return matched


@pytest.mark.parametrize("which", ["central bus", "central default bus", "member forwarding rule"])
def test_the_event_pattern_matches_every_terminate_event_and_nothing_else(moto, which):
    matched = _rule_on_moto(moto, f"bus-{abs(hash(which))}", _patterns(moto)[which])
    positives, negatives = _cases()
    assert [matched(e) for e in positives] == [1] * len(positives)
    missed = [(e["source"], e["detail-type"], e["detail"].get("eventName")) for e in negatives if matched(e)]
    assert not missed


def _door_envelopes():
    """Every watched call's record from tests/fixtures/doors.toml (the engine reads each
    into a destruction or a precursor: crates/engine/tests/doors.rs; a precursor's call is
    forwarded whatever its request, and the engine reads it), and the look-alikes it lists, as
    EventBridge delivers CloudTrail events: `source` aws.SERVICE."""
    import tomllib
    doors = tomllib.loads((ROOT / "tests" / "fixtures" / "doors.toml").read_text())

    def records(file, keep):
        text = (ROOT / "tests" / "fixtures" / file).read_text()
        try:
            docs = [json.loads(text)]
        except json.JSONDecodeError:
            docs = [json.loads(line) for line in text.splitlines() if line.strip().startswith("{")]
        docs = [d.get("detail") if isinstance(d.get("detail"), dict) else d for d in docs]
        return [d for d in docs if keep(d)]

    def envelope(r):
        service = r["eventSource"].removesuffix(".amazonaws.com")
        return {"source": f"aws.{service}", "detail-type": "AWS API Call via CloudTrail", "detail": r}

    doors_ = [envelope(records(d["file"], lambda r, d=d: r.get("eventName") == d["call"]
                               and r.get("eventID", d.get("event_id")) == d.get("event_id", r.get("eventID")))[0])
              for d in doors["door"] + doors["precursor"]]
    look_alikes = [envelope(r) for n in doors["not_a_door"]
                   for r in records(n["file"], lambda r, n=n: (r.get("eventName"), r.get("eventSource")) == (n["event_name"], n["event_source"]))]
    return doors_, look_alikes


@pytest.mark.parametrize("which", ["central bus", "central default bus", "member forwarding rule"])
def test_every_door_is_forwarded_from_its_record_and_look_alikes_are_not(moto, which):
    matched = _rule_on_moto(moto, f"doors-{abs(hash(which))}", _patterns(moto)[which])
    doors, look_alikes = _door_envelopes()
    names = _catalogue_patterns()["terminations"]["detail"]["eventName"]
    assert len({d["detail"]["eventName"] for d in doors}) == len(names) >= 27
    assert len({d["source"] for d in doors}) >= 13, "every service's own source"
    assert {d["detail"]["eventName"]: matched(d) for d in doors} == {d["detail"]["eventName"]: 1 for d in doors}
    assert look_alikes and [matched(e) for e in look_alikes] == [0] * len(look_alikes)


def _canary(envelope):
    """`envelope` as the member stack's canary makes it: its role, a dry run."""
    e = json.loads(json.dumps(envelope))
    role = f"arn:aws:iam::{MOTO_ACCOUNT}:role/tripwire-canary"
    e["detail"]["userIdentity"] = {
        "type": "AssumedRole", "arn": f"arn:aws:sts::{MOTO_ACCOUNT}:assumed-role/tripwire-canary/scheduler",
        "accountId": MOTO_ACCOUNT, "sessionContext": {"sessionIssuer": {
            "type": "Role", "arn": role, "accountId": MOTO_ACCOUNT, "userName": "tripwire-canary"}}}
    e["detail"]["errorCode"] = "DryRunOperation"
    return e


def _service_variants(envelope):
    """Calls only the service lane counts, beside the real service-linked-role record: an
    AWS service itself, and a service-linked role in another partition."""
    by_service = json.loads(json.dumps(envelope))
    by_service["detail"]["userIdentity"] = {"type": "AWSService", "invokedBy": "autoscaling.amazonaws.com"}
    gov = json.loads(json.dumps(envelope).replace('"arn:aws:', '"arn:aws-us-gov:'))
    return [by_service, gov]


def _never_counted_by_the_service_lane_off():
    import tomllib
    expect = tomllib.loads((ROOT / "tests" / "fixtures" / "corpus-expectations.toml").read_text())["terminate"]
    return {name for name, e in expect.items() if e.get("not_counted") in ("service_linked_role", "aws_service")}


@pytest.mark.parametrize("allowed,service_lane", [("", "true"), ("111111111111", "false"),
                                                 (f"111111111111,{MOTO_ACCOUNT}", "true"), (MOTO_ACCOUNT, "false")])
def test_the_member_rule_keeps_home_only_what_the_policy_never_counts(moto, allowed, service_lane):
    """Filtering at the source must never drop an event the engine would count: each real
    record is kept home only where corpus-expectations.toml (checked against the engine by
    crates/engine/tests/corpus.rs) says the policy cannot count it. The canary is filtered
    exactly like a termination by a role, and the negatives are never forwarded."""
    pattern = _member_pattern(moto, AllowedAccounts=allowed, ServiceLane=service_lane)
    matched = _rule_on_moto(moto, f"filter-{abs(hash((allowed, service_lane)))}", pattern)
    positives, negatives = _cases()
    names = [p.name.removesuffix(".eventbridge.json")
             for p in sorted((FIXTURES / "terminate").glob("*.eventbridge.json"))]
    assert len(names) == len(positives)
    service_only = _never_counted_by_the_service_lane_off()
    assert service_only, "the corpus holds a service-linked-role termination"
    service_variants = _service_variants(positives[names.index(sorted(service_only)[0])])
    here_allowed = MOTO_ACCOUNT in allowed.split(",")
    lane_off = service_lane == "false"
    want = [0 if here_allowed or (lane_off and n in service_only) else 1 for n in names]
    assert [matched(e) for e in positives] == want
    assert [matched(e) for e in service_variants] == [0 if here_allowed or lane_off else 1] * 2
    # No branch of its own: where the account's terminations stay home, so does the
    # canary, and the watchdog pages the silence.
    assert [matched(_canary(e)) for e in positives] == [0 if here_allowed else 1] * len(positives)
    assert not [e["detail"].get("eventName") for e in negatives if matched(e)]


def _context_patterns():
    events = CENTRAL["Resources"]["Detector"]["Properties"]["Events"]
    member = MEMBER["Resources"]
    return {
        "issues": [member["ForwardSessionIssues"]["Properties"]["EventPattern"],
                   events["OrganizationBusSessionIssues"]["Properties"]["Pattern"],
                   events["CentralAccountSessionIssues"]["Properties"]["Pattern"]],
        "initiators": [member["ForwardInitiators"]["Properties"]["EventPattern"],
                       events["OrganizationBusInitiators"]["Properties"]["Pattern"],
                       events["CentralAccountInitiators"]["Properties"]["Pattern"]],
        "tamper": [member["ForwardTamper"]["Properties"]["EventPattern"],
                   events["OrganizationBusTamper"]["Properties"]["Pattern"],
                   events["CentralAccountTamper"]["Properties"]["Pattern"]],
        # Parts only the security account has: its own trail, its own rule.
        "security_tamper": [events["CentralAccountSecurityTamper"]["Properties"]["Pattern"]],
    }


def _call(source, event_source, name, identity, error=None):
    detail = {"eventSource": event_source, "eventName": name, "userIdentity": {"type": identity}}
    if error:
        detail["errorCode"] = error
    return {"source": source, "detail-type": "AWS API Call via CloudTrail", "detail": detail}


# What the detector reads for provenance and initiators, and what it must not be sent.
CONTEXT_CASES = {
    "issues": (
        [_call("aws.sts", "sts.amazonaws.com", "AssumeRole", "AWSAccount"),
         _call("aws.sts", "sts.amazonaws.com", "AssumeRoleWithWebIdentity", "WebIdentityUser"),
         _call("aws.sts", "sts.amazonaws.com", "AssumeRoleWithSAML", "SAMLUser")],
        # Same-account assumptions are most of STS's traffic and carry no origin.
        [_call("aws.sts", "sts.amazonaws.com", "AssumeRole", "AssumedRole"),
         _call("aws.sts", "sts.amazonaws.com", "AssumeRole", "AWSService"),
         _call("aws.sts", "sts.amazonaws.com", "AssumeRole", "AWSAccount", error="AccessDenied"),
         _call("aws.sts", "sts.amazonaws.com", "GetCallerIdentity", "AWSAccount"),
         _call("custom.sts", "sts.amazonaws.com", "AssumeRole", "AWSAccount")],
    ),
    "initiators": (
        [_call("aws.autoscaling", "autoscaling.amazonaws.com", "DeleteAutoScalingGroup", "IAMUser"),
         _call("aws.eks", "eks.amazonaws.com", "DeleteNodegroup", "AssumedRole"),
         _call("aws.cloudformation", "cloudformation.amazonaws.com", "DeleteStack", "AssumedRole"),
         _call("aws.ec2", "ec2.amazonaws.com", "DeleteFleets", "AssumedRole")],
        [_call("aws.autoscaling", "autoscaling.amazonaws.com", "DeleteAutoScalingGroup", "IAMUser",
               error="AccessDenied"),
         _call("aws.ec2", "ec2.amazonaws.com", "TerminateInstances", "AssumedRole"),
         _call("aws.cloudformation", "cloudformation.amazonaws.com", "CreateStack", "AssumedRole")],
    ),
    # Failed attempts too; the engine decides which touched the tripwire.
    "tamper": (
        [_call("aws.cloudtrail", "cloudtrail.amazonaws.com", "StopLogging", "AssumedRole"),
         _call("aws.cloudtrail", "cloudtrail.amazonaws.com", "PutEventSelectors", "IAMUser", error="AccessDenied"),
         _call("aws.events", "events.amazonaws.com", "DisableRule", "AssumedRole"),
         _call("aws.iam", "iam.amazonaws.com", "DeleteRolePolicy", "AssumedRole"),
         _call("aws.iam", "iam.amazonaws.com", "UpdateAssumeRolePolicy", "AssumedRole"),
         _call("aws.kms", "kms.amazonaws.com", "ScheduleKeyDeletion", "AssumedRole"),
         _call("aws.sns", "sns.amazonaws.com", "Unsubscribe", "IAMUser")],
        [_call("aws.cloudtrail", "cloudtrail.amazonaws.com", "StartLogging", "AssumedRole"),
         _call("aws.iam", "iam.amazonaws.com", "CreateRole", "AssumedRole"),
         _call("aws.kms", "kms.amazonaws.com", "Decrypt", "AssumedRole"),
         _call("aws.sns", "sns.amazonaws.com", "Publish", "AssumedRole"),
         _call("aws.ec2", "ec2.amazonaws.com", "TerminateInstances", "AssumedRole")],
    ),
    "security_tamper": (
        [_call("aws.events", "events.amazonaws.com", "RemovePermission", "AssumedRole"),
         _call("aws.dynamodb", "dynamodb.amazonaws.com", "DeleteResourcePolicy", "AssumedRole"),
         _call("aws.monitoring", "monitoring.amazonaws.com", "DisableAlarmActions", "AssumedRole"),
         _call("aws.ssm", "ssm.amazonaws.com", "PutParameter", "AssumedRole", error="AccessDenied"),
         _call("aws.cloudformation", "cloudformation.amazonaws.com", "UpdateStackSet", "AssumedRole")],
        [_call("aws.ssm", "ssm.amazonaws.com", "GetParameter", "AssumedRole"),
         _call("aws.dynamodb", "dynamodb.amazonaws.com", "PutItem", "AssumedRole"),
         _call("aws.cloudformation", "cloudformation.amazonaws.com", "CreateStackSet", "AssumedRole"),
         _call("custom.ssm", "ssm.amazonaws.com", "PutParameter", "AssumedRole")],
    ),
}


def test_the_member_and_central_context_patterns_are_one_pattern():
    for name, patterns in _context_patterns().items():
        assert all(p == patterns[0] for p in patterns), name


def test_the_tamper_pattern_forwards_every_call_the_engine_watches():
    # The engine's tamper calls are the catalogue's (crates/engine/src/catalogue.rs);
    # armed.rs's unit tests check that every call it recognises is listed there.
    pattern = _context_patterns()["tamper"][0]["detail"]
    want = _catalogue_patterns()["tamper"]["detail"]
    assert set(want["eventName"]) <= set(pattern["eventName"]), sorted(set(want["eventName"]) - set(pattern["eventName"]))
    assert set(want["eventSource"]) == set(pattern["eventSource"])


def _catalogue_patterns():
    return json.loads(_tripwire("check-policy", POLICY, "--get", "event_patterns"))


@pytest.mark.parametrize("family,ours", [("session_issues", "issues"), ("initiators", "initiators"), ("tamper", "tamper"),
                                         ("security_tamper", "security_tamper")])
def test_every_context_pattern_is_the_catalogues(family, ours):
    want = _catalogue_patterns()[family]
    for p in _context_patterns()[ours]:
        assert p == want, (family, p, want)


def test_every_termination_pattern_is_the_catalogues():
    want = _catalogue_patterns()["terminations"]
    events = CENTRAL["Resources"]["Detector"]["Properties"]["Events"]
    assert events["OrganizationBus"]["Properties"]["Pattern"] == want
    assert events["CentralAccountDefaultBus"]["Properties"]["Pattern"] == want
    # The member rule adds the allowed accounts and the service lane, and nothing of the
    # canary's own.
    member = dict(MEMBER["Resources"]["ForwardTerminateInstances"]["Properties"]["EventPattern"])
    assert set(member) == set(want) | {"account", "$or"}
    member.pop("account")
    member.pop("$or")
    assert member == want


@pytest.mark.parametrize("which", ["issues", "initiators", "tamper", "security_tamper"])
def test_the_context_patterns_forward_what_the_detector_joins_and_nothing_else(moto, which):
    matched = _rule_on_moto(moto, f"ctx-{which}", _context_patterns()[which][0])
    positives, negatives = CONTEXT_CASES[which]
    assert [matched(e) for e in positives] == [1] * len(positives)
    assert [matched(e) for e in negatives] == [0] * len(negatives)


def _state_change_patterns(moto):
    events = CENTRAL["Resources"]["Detector"]["Properties"]["Events"]
    return {
        "central bus": events["OrganizationBusStateChanges"]["Properties"]["Pattern"],
        "central default bus": events["CentralAccountStateChanges"]["Properties"]["Pattern"],
        "member forwarding rule": _member_pattern(moto, rule="tripwire-forward-state-changes"),
    }


def test_every_state_change_pattern_is_the_catalogues(moto):
    want = _catalogue_patterns()["state_changes"]
    patterns = _state_change_patterns(moto)
    member = dict(patterns.pop("member forwarding rule"))
    # The member rule adds the allowed accounts, as for terminations, and nothing else.
    assert set(member.pop("account")[0]) == {"anything-but"}
    assert member == want
    for where, p in patterns.items():
        assert p == want, where


def _state_changes():
    """EC2's state-change events in the corpus (AWS's documentation and public
    samples): the ones for instances going away, and every other."""
    found = [e for p in sorted((FIXTURES / "mixed").glob("*.jsonl")) for e in _envelopes(p)
             if e["detail-type"] == "EC2 Instance State-change Notification"]
    going = [e for e in found if e["detail"].get("state") in ("shutting-down", "terminated")]
    return going, [e for e in found if e not in going]


@pytest.mark.parametrize("which", ["central bus", "central default bus", "member forwarding rule"])
def test_the_state_change_pattern_forwards_instances_going_away_and_nothing_else(moto, which):
    matched = _rule_on_moto(moto, f"sc-{abs(hash(which))}", _state_change_patterns(moto)[which])
    going, others = _state_changes()
    assert going and others, "the corpus holds both"
    shutting = json.loads(json.dumps(going[0]))
    shutting["detail"]["state"] = "shutting-down"
    forged = json.loads(json.dumps(going[0]))
    forged["source"] = "custom.ec2"
    spot = {**going[0], "detail-type": "EC2 Spot Instance Interruption Warning"}
    assert [matched(e) for e in going + [shutting]] == [1] * (len(going) + 1)
    assert [matched(e) for e in others + [forged, spot]] == [0] * (len(others) + 2)


def _rendered_policy(cross_account_threshold, service_threshold="", account_threshold=""):
    """The central stack's TRIPWIRE_POLICY as CloudFormation renders it with the default
    parameters, `cross_account_threshold`, `service_threshold` and `account_threshold`."""
    # Without a published policy (PolicyParameter empty): the If's second branch.
    sub = CENTRAL["Globals"]["Function"]["Environment"]["Variables"]["TRIPWIRE_POLICY"]["Fn::If"][2]["Fn::Sub"]
    text, names = sub[0], dict(sub[1])
    params = {k: str(v.get("Default", "")) for k, v in CENTRAL["Parameters"].items()}
    params["CrossAccountThreshold"] = cross_account_threshold
    quoted = lambda name: ", ".join(f'"{v}"' for v in _default(CENTRAL, name))
    values = {**params, "Allowed": "", "Protected": quoted("ProtectedPrincipals"), "Deny": quoted("DenyActions"),
              "CrossAccount": f"cross_account_threshold = {cross_account_threshold}" if cross_account_threshold else "",
              "Service": f"service_threshold = {service_threshold}" if service_threshold else "",
              "Account": f"account_threshold = {account_threshold}" if account_threshold else "",
              "Brake": ""}
    assert set(names) == {"CrossAccount", "Service", "Account", "Allowed", "Protected", "Deny", "Brake"}, names
    assert names["Service"] == {"Fn::If": ["HasServiceThreshold", {"Fn::Sub": "service_threshold = ${ServiceThreshold}"}, ""]}
    assert names["Account"] == {"Fn::If": ["HasAccountThreshold", {"Fn::Sub": "account_threshold = ${AccountThreshold}"}, ""]}
    # What CloudFormation puts for the stack's own resources.
    values.update({
        "Key.Arn": "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "AlarmKey.Arn": "arn:aws:kms:us-east-1:123456789012:key/5678abcd-12ab-34cd-56ef-1234567890ab",
        "Topic": "arn:aws:sns:us-east-1:123456789012:tripwire-alerts",
        "AlarmTopic": "arn:aws:sns:us-east-1:123456789012:tripwire-alarms",
    })
    for k, v in values.items():
        text = text.replace("${" + k + "}", v)
    assert "${" not in text, text
    return text


def test_with_a_published_policy_the_stack_passes_only_its_own_keys_and_the_switch():
    """With PolicyParameter set the functions read the whole file from SSM; the stack adds
    only what the file cannot know, as lists the engine joins to the file's own
    (crates/engine/src/deployed.rs, STACK_LIST_KEYS), and ContainmentMode, the switch the
    deploy guide turns: never another key that would override the file."""
    import tomllib
    env = CENTRAL["Globals"]["Function"]["Environment"]["Variables"]
    assert env["TRIPWIRE_POLICY_PARAMETER"] == {"Fn::If": ["HasPolicyParameter", {"Ref": "PolicyParameter"}, {"Ref": "AWS::NoValue"}]}
    cond, published, _ = env["TRIPWIRE_POLICY"]["Fn::If"]
    assert cond == "HasPolicyParameter"
    text, names = published["Fn::Sub"]
    # The account brake's SCP, when the delegation stack made one: its ID, and a
    # tripwire SCP whose changes page tamper.
    cond, brake, otherwise = names.pop("Brake")["Fn::If"]
    assert (cond, otherwise, names) == ("HasAccountBrake", "", {})
    text = text.replace("${Brake}", brake["Fn::Sub"].replace("${AccountBrakePolicyId}", "p-brake0001"))
    for name in ["Key.Arn", "AlarmKey.Arn", "Topic", "AlarmTopic"]:
        text = text.replace("${" + name + "}", f"value-of-{name}")
    text = text.replace("${ContainmentMode}", "off").replace("${ContainmentRoleName}", "ops-containment")
    assert "${" not in text
    stack_keys = tomllib.loads(text)
    # ContainmentMode is the switch (off keeps the file alert-only); the containment
    # role's name is the member stacks' (its changes page tamper); the rest are lists.
    assert stack_keys.pop("containment") == "off"
    assert stack_keys.pop("containment_role") == "ops-containment"
    assert stack_keys.pop("account_brake_policy") == "p-brake0001"
    assert stack_keys["tripwire_scps"] == ["p-brake0001"]
    assert set(stack_keys) <= {"tripwire_keys", "tripwire_topics", "tripwire_scps"}
    assert all(isinstance(v, list) for v in stack_keys.values())
    # Every function that reads the policy may read the published parameter, and only it.
    for role in ["DetectorRole", "ResponderRole", "WatchdogRole"]:
        stmts = CENTRAL["Resources"][role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
        ssm = [s for s in stmts if "ssm" in json.dumps(s.get("Action"))]
        assert [(s["Action"], s["Resource"]) for s in ssm] == [("ssm:GetParameter", {"Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/tripwire/policy"})], role


@pytest.mark.parametrize("cross", ["", "1"])
def test_the_rendered_policy_is_valid_and_cross_account_defaults_to_the_threshold(cross, tmp_path):
    tripwire = TARGET / "debug" / "tripwire"
    if not tripwire.exists():
        pytest.skip("no tripwire binary; `make test` builds it first")
    path = tmp_path / "policy.toml"
    path.write_text(_rendered_policy(cross))
    out = subprocess.run([str(tripwire), "check-policy", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    want = "(cross-account the same)" if not cross else f"(cross-account {cross})"
    assert want in out.stdout, out.stdout


@pytest.mark.parametrize("threshold", ["", "200"])
def test_the_central_stacks_lane_thresholds_are_the_policys_and_members_always_forward_services(threshold, tmp_path):
    """The central stack's ServiceThreshold and AccountThreshold default to the shipped
    policy's (both lanes on), reach the detector's policy as set, and the member stacks
    forward services' terminations with the service lane off too: the detector credits
    them to the principal whose call decided them."""
    for key, param in (("service_threshold", "ServiceThreshold"), ("account_threshold", "AccountThreshold")):
        shipped = _tripwire("check-policy", POLICY, "--get", key).strip()
        assert shipped and _default(CENTRAL, param) == shipped, (key, shipped)
    path = tmp_path / "policy.toml"
    path.write_text(_rendered_policy("", threshold, threshold))
    assert _tripwire("check-policy", str(path), "--get", "service_threshold").strip() == threshold
    assert _tripwire("check-policy", str(path), "--get", "account_threshold").strip() == threshold
    assert _tripwire("check-policy", str(path), "--get", "service_lane").strip() == "true"


# ---- IAM: granted exactly what the code calls -----------------------------------------

# Calls made on the functions' behalf, which moto cannot see: the Lambda service writes
# logs and dead letters, KMS serves the encrypted topic and environment, and the detector's
# invoke goes to the runtime emulator in the end-to-end tests.
SERVICE_SIDE = {
    "logs:CreateLogStream", "logs:PutLogEvents", "sqs:SendMessage", "kms:Decrypt", "kms:GenerateDataKey",
}
# Lambda Invoke goes to cargo-lambda's emulator, not moto: the detector's containment
# request and the watchdog's drill requests, both to the responder.
NOT_ON_MOTO = {"detector": {"lambda:InvokeFunction"}, "responder": set(), "watchdog": {"lambda:InvokeFunction"},
               "findings": set()}
READ_PREFIXES = ("Get", "List", "Describe", "Query", "Scan", "BatchGet")


def _allowed(role, conditional=False):
    """The actions `role` allows; with `conditional`, also those of statements a
    parameter turns on."""
    actions = set()
    for policy in role["Properties"]["Policies"]:
        for st in policy["PolicyDocument"]["Statement"]:
            if conditional and isinstance(st, dict) and "Fn::If" in st:
                st = st["Fn::If"][1]
            if isinstance(st, dict) and st.get("Effect") == "Allow":
                a = st["Action"]
                actions.update([a] if isinstance(a, str) else a)
    return actions


OBSERVED = ROOT / "infra" / "observed-aws-actions.json"


def _recorded_run():
    """The union of what the last end-to-end run recorded, by caller."""
    seen = {}
    for f in sorted((TARGET / "aws-actions").glob("*.json")):
        for caller, actions in json.loads(f.read_text()).items():
            seen.setdefault(caller, set()).update(actions)
    return seen


def _observed():
    doc = json.loads(OBSERVED.read_text())
    return {k: set(v) for k, v in doc.items() if not k.startswith("_")}


def test_the_committed_actions_match_the_last_end_to_end_run():
    run = _recorded_run()
    if not run:
        pytest.skip("no end-to-end run in this checkout; `make test` runs one first")
    assert run == _observed(), (
        f"the code now calls {json.dumps({k: sorted(v) for k, v in run.items()}, indent=1)}; "
        f"update {OBSERVED.relative_to(ROOT)} and the roles in infra/"
    )


def _iam_names(action):
    # The wire name of lambda:Invoke is the IAM action lambda:InvokeFunction; a
    # transaction is authorized as the item writes it holds (the tripwire's join: a put
    # and an update).
    return {"lambda:Invoke": ["lambda:InvokeFunction"],
            "dynamodb:TransactWriteItems": ["dynamodb:PutItem", "dynamodb:UpdateItem"]}.get(action, [action])


@pytest.mark.parametrize("function,role", [("detector", "DetectorRole"), ("responder", "ResponderRole"),
                                           ("watchdog", "WatchdogRole"), ("findings", "FindingsRole")])
def test_each_function_role_grants_what_it_calls_and_no_other_write(function, role):
    seen = {n for a in _observed().get(function, set()) for n in _iam_names(a)} | NOT_ON_MOTO[function]
    # MemberStackSetName is set by default: the watchdog's listing counts as granted.
    granted = _allowed(CENTRAL["Resources"][role], conditional=True)
    assert seen, f"no calls recorded for {function}"
    assert seen <= granted, f"{function} calls {sorted(seen - granted)} that {role} does not grant"
    extra_writes = {a for a in granted - seen - SERVICE_SIDE if not a.split(":")[1].startswith(READ_PREFIXES)}
    assert not extra_writes, f"{role} grants writes the code never makes: {sorted(extra_writes)}"
    assert not any(a.startswith("iam:") for a in granted), f"{role} must not touch IAM"


def _statements(role):
    for policy in role["Properties"]["Policies"]:
        yield from policy["PolicyDocument"]["Statement"]


def _key_status_grant(role, sid):
    """The statement granting iam:UpdateAccessKey, present only with DeactivateKeys=true."""
    grants = [st["Fn::If"] for st in _statements(role) if "Fn::If" in st and st["Fn::If"][1].get("Sid") == sid]
    assert len(grants) == 1, f"{sid}: one conditional statement"
    condition, statement, otherwise = grants[0]
    assert condition == "DeactivatesKeys" and otherwise == {"Ref": "AWS::NoValue"}
    assert statement["Effect"] == "Allow" and statement["Action"] == "iam:UpdateAccessKey"
    assert statement["Resource"] == {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:user/*"}
    return {"iam:UpdateAccessKey"}


def test_the_containment_role_may_only_add_the_tripwires_denies():
    seen = _observed().get("containment-role", set())
    role = MEMBER["Resources"]["ContainmentRole"]
    granted = _allowed(role)
    assert {"iam:AttachRolePolicy", "iam:AttachUserPolicy", "iam:TagRole"} <= seen, seen
    # deactivate_keys, where a deployment turns it on.
    assert seen <= granted | _key_status_grant(role, "DeactivateTheBurstsAccessKeys"), sorted(seen - granted)
    drill = {"iam:ListAttachedRolePolicies", "iam:SimulatePrincipalPolicy", "iam:UntagRole", "iam:DetachRolePolicy"}
    assert granted == {"iam:AttachRolePolicy", "iam:AttachUserPolicy", "iam:TagRole", "iam:TagUser",
                       "iam:GetRole", "iam:GetUser"} | drill
    # Nothing that writes a document or loosens anything: no Put, no policy versions,
    # no Delete; and it removes only the tripwire's denies from the drill role.
    assert not [a for a in granted if a.split(":")[1].startswith(
        ("Put", "Create", "SetDefault", "Delete", "Update"))]
    for st in _statements(role):
        if isinstance(st, dict) and st.get("Effect") == "Allow" and set(
                [st["Action"]] if isinstance(st["Action"], str) else st["Action"]) & drill:
            assert st["Resource"] == {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/tripwire-drill"}, st
            if st["Action"] == "iam:DetachRolePolicy":
                assert st["Condition"] == {"ArnEquals": {"iam:PolicyARN": [
                    {"Ref": "BrakePolicy"}, {"Ref": "QuarantinePolicy"}, {"Ref": "ScopePolicy"}]}}
    attach = next(st for st in _statements(role) if isinstance(st, dict) and "iam:AttachRolePolicy" in st["Action"]
                  and st["Effect"] == "Allow")
    assert attach["Condition"] == {"ArnEquals": {"iam:PolicyARN": [
        {"Ref": "BrakePolicy"}, {"Ref": "QuarantinePolicy"}, {"Ref": "ScopePolicy"}]}}
    tag = next(st for st in _statements(role) if isinstance(st, dict) and "iam:TagRole" in st["Action"]
               and st["Effect"] == "Allow")
    assert tag["Condition"] == {"ForAllValues:StringLike": {"aws:TagKeys": "tripwire-contain-*"},
                                "Null": {"aws:TagKeys": "false"}}
    trust = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert [t["Principal"] for t in trust] == [{"AWS": {"Ref": "ResponderRoleArn"}}]


def test_the_release_role_is_the_operators_and_lifts_only_what_release_lifts():
    seen = _observed().get("release-role", set())
    role = MEMBER["Resources"]["ReleaseRole"]
    granted = _allowed(role)
    assert {"iam:DetachRolePolicy", "iam:UntagRole", "iam:ListRoleTags"} <= seen, seen
    assert seen <= granted | _key_status_grant(role, "ReactivateKeysOnRequest"), sorted(seen - granted)
    assert granted == {"iam:DetachRolePolicy", "iam:DetachUserPolicy", "iam:UntagRole", "iam:UntagUser",
                       "iam:ListRoleTags", "iam:ListUserTags", "iam:DeleteRolePolicy", "iam:DeleteUserPolicy"}
    detach = next(st for st in _statements(role) if "iam:DetachRolePolicy" in st["Action"] and st["Effect"] == "Allow")
    assert detach["Condition"] == {"ArnEquals": {"iam:PolicyARN": [
        {"Ref": "BrakePolicy"}, {"Ref": "QuarantinePolicy"}, {"Ref": "ScopePolicy"}]}}
    untag = next(st for st in _statements(role) if "iam:UntagRole" in st["Action"] and st["Effect"] == "Allow")
    assert untag["Condition"] == {"ForAllValues:StringLike": {"aws:TagKeys": "tripwire-contain-*"},
                                  "Null": {"aws:TagKeys": "false"}}
    trust = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert [t["Principal"] for t in trust] == [{"AWS": {"Ref": "ReleasePrincipals"}}]
    assert role["Condition"] == "CreatesReleaseRole"


def _tripwire(*args):
    tripwire = TARGET / "debug" / "tripwire"
    if not tripwire.exists():
        pytest.skip("no tripwire binary; `make test` builds it first")
    return subprocess.run([str(tripwire), *args], capture_output=True, text=True, check=True).stdout


def _default(tpl, name):
    param = tpl["Parameters"][name]
    return [v for v in param["Default"].split(",") if v] if param["Type"] == "CommaDelimitedList" else param["Default"]


POLICY = str(ROOT / "config" / "policy.toml")


@pytest.mark.parametrize("key,param", [("protected_principals", "ProtectedPrincipals"), ("deny_actions", "DenyActions")])
def test_one_list_for_both_stacks_and_the_policy(key, param):
    want = _tripwire("check-policy", POLICY, "--get", key).strip().split(",")
    assert _default(CENTRAL, param) == want, f"infra/template.yaml {param} differs from {key} in config/policy.toml"
    assert _default(MEMBER, param) == want, f"infra/member.yaml {param} differs from {key} in config/policy.toml"


def test_deactivate_keys_is_one_setting_for_both_stacks_and_the_policy():
    want = _tripwire("check-policy", POLICY, "--get", "deactivate_keys").strip()
    assert _default(CENTRAL, "DeactivateKeys") == want
    assert _default(MEMBER, "DeactivateKeys") == want
    assert f"deactivate_keys = {want}" in _rendered_policy("")


def test_the_deploy_script_passes_the_policys_filters_and_the_member_defaults_filter_nothing(tmp_path):
    """A member stack keeps home only what the policy never counts: the deploy script
    gives it the policy's allowed accounts and service lane, and without them (a stack
    deployed by hand) it forwards everything."""
    assert _default(MEMBER, "AllowedAccounts") == [] and _default(MEMBER, "ServiceLane") == "true"
    tripwire = TARGET / "debug" / "tripwire"
    if not tripwire.exists():
        pytest.skip("no tripwire binary; `make test` builds it first")
    # Both "true": services' terminations are forwarded to be credited, lane on or off.
    for extra, lane in (("", "true"), ("service_threshold = 200\n", "true")):
        policy = tmp_path / f"policy-{bool(extra)}.toml"
        policy.write_text(f'threshold = 10\nwindow = "5m"\n{extra}allowed_accounts = ["111111111111", "222222222222"]\n')
        out = subprocess.run(["scripts/deploy-members.sh"], cwd=ROOT, capture_output=True, text=True, check=True,
                             env={**os.environ, "POLICY": str(policy), "TRIPWIRE": str(tripwire), "REGIONS": "us-east-1"}).stdout
        stack_set, management = out.splitlines()[0], out.splitlines()[3]
        assert r"ParameterKey=AllowedAccounts,ParameterValue='111111111111\,222222222222'" in stack_set
        assert f"ParameterKey=ServiceLane,ParameterValue={lane} " in stack_set
        assert "'AllowedAccounts=111111111111,222222222222'" in management and f"ServiceLane={lane} " in management


def test_the_member_stacks_managed_policies_are_what_the_engine_renders():
    want = json.loads(_tripwire("managed-policies", POLICY))
    for res, name in (("BrakePolicy", "tripwire-brake"), ("QuarantinePolicy", "tripwire-quarantine"),
                      ("ScopePolicy", "tripwire-contain-scope")):
        p = MEMBER["Resources"][res]["Properties"]
        assert (p["ManagedPolicyName"], p["Path"]) == (name, "/tripwire/")
        assert _resolve(p["PolicyDocument"], MEMBER) == want[name], name


# ---- lint the identity policies with parliament ---------------------------------------

ARN_OF = {
    "AWS::DynamoDB::Table": "arn:aws:dynamodb:us-east-1:123456789012:table/{}",
    "AWS::SNS::Topic": "arn:aws:sns:us-east-1:123456789012:{}",
    "AWS::SQS::Queue": "arn:aws:sqs:us-east-1:123456789012:{}",
    "AWS::KMS::Key": "arn:aws:kms:us-east-1:123456789012:key/{}",
    "AWS::Logs::LogGroup": "arn:aws:logs:us-east-1:123456789012:log-group:{}",
    "AWS::Events::EventBus": "arn:aws:events:us-east-1:123456789012:event-bus/{}",
    "AWS::Events::ApiDestination": "arn:aws:events:us-east-1:123456789012:api-destination/{}/0a1b2c3d",
    "AWS::IAM::ManagedPolicy": "arn:aws:iam::123456789012:policy/tripwire/{}",
}
PARAMS = {"CentralEventBusArn": "arn:aws:events:us-east-1:123456789012:event-bus/tripwire",
          "ResponderRoleArn": "arn:aws:iam::123456789012:role/tripwire-responder",
          # The shipped list, as the deploy scripts pass it.
          "ProtectedPrincipals": MEMBER["Parameters"]["ProtectedPrincipals"]["Default"].split(","),
          "DenyActions": MEMBER["Parameters"]["DenyActions"]["Default"].split(","),
          "ReleasePrincipals": ["arn:aws:iam::123456789012:role/security-operator"]}


def _resolve(node, tpl):
    """Intrinsic functions to plausible literal ARNs, so policies can be linted."""
    if isinstance(node, list):
        return [_resolve(n, tpl) for n in node]
    if not isinstance(node, dict):
        return node
    if "Ref" in node or "Fn::GetAtt" in node:
        name = node.get("Ref") or node["Fn::GetAtt"][0]
        if name in PARAMS:
            return PARAMS[name]
        res = tpl["Resources"].get(name)
        return ARN_OF.get(res["Type"], "arn:aws:iam::123456789012:x/{}").format(name) if res else name
    if "Fn::Sub" in node:
        s = node["Fn::Sub"] if isinstance(node["Fn::Sub"], str) else node["Fn::Sub"][0]
        for k, v in {"AWS::Partition": "aws", "AWS::AccountId": "123456789012", "AWS::Region": "us-east-1",
                     "ContainmentRoleName": "tripwire-containment", "OrgId": "o-exampleorg1",
                     "AccountBrakePolicyId": "p-examplebrake", "DetectorLogs.Arn": ARN_OF["AWS::Logs::LogGroup"].format("/aws/lambda/tripwire-detector"),
                     "ResponderLogs.Arn": ARN_OF["AWS::Logs::LogGroup"].format("/aws/lambda/tripwire-responder"),
                     "WatchdogLogs.Arn": ARN_OF["AWS::Logs::LogGroup"].format("/aws/lambda/tripwire-watchdog"),
                     "FindingsLogs.Arn": ARN_OF["AWS::Logs::LogGroup"].format("/aws/lambda/tripwire-findings")}.items():
            s = s.replace("${" + k + "}", v)
        for k, v in tpl["Parameters"].items():
            if isinstance(v.get("Default"), str):
                s = s.replace("${" + k + "}", v["Default"])
        return s
    if "Fn::If" in node:
        return _resolve(node["Fn::If"][1], tpl)
    if "Fn::Join" in node:
        sep, parts = node["Fn::Join"]
        return sep.join(_resolve(parts, tpl))
    if "Fn::Split" in node:
        sep, text = node["Fn::Split"]
        return _resolve(text, tpl).split(sep)
    return {k: _resolve(v, tpl) for k, v in node.items()}


def _identity_policies():
    for tpl, roles in ((CENTRAL, ["DetectorRole", "ResponderRole", "WatchdogRole", "FindingsRole", "PagerDutyRole"]),
                       (MEMBER, ["ForwarderRole", "ContainmentRole", "ReleaseRole"])):
        for role in roles:
            for p in tpl["Resources"][role]["Properties"]["Policies"]:
                yield f"{role}/{p['PolicyName']}", _resolve(p["PolicyDocument"], tpl)
    for res in ("BrakePolicy", "QuarantinePolicy"):
        yield res, _resolve(MEMBER["Resources"][res]["Properties"]["PolicyDocument"], MEMBER)
    yield "scp-protect-tripwire", json.loads((ROOT / "infra" / "scp-protect-tripwire.json").read_text())
    yield "scp-protect-security-account", json.loads((ROOT / "infra" / "scp-protect-security-account.json").read_text())


@pytest.mark.parametrize("name,doc", list(_identity_policies()), ids=lambda v: v if isinstance(v, str) else "")
def test_parliament_finds_nothing(name, doc):
    findings = analyze_policy_string(json.dumps(doc)).findings
    assert not findings, [(f.issue, f.detail, f.location) for f in findings]


def test_the_canary_calls_what_the_detector_recognizes():
    import re
    armed = (ROOT / "crates" / "engine" / "src" / "names.rs").read_text()  # the tripwire's own names
    instance = re.search(r'pub const CANARY_INSTANCE: &str = "([^"]+)"', armed).group(1)
    role = re.search(r'pub const CANARY_ROLE: &str = "([^"]+)"', armed).group(1)
    schedule = MEMBER["Resources"]["CanarySchedule"]["Properties"]
    target = schedule["Target"]
    assert json.loads(target["Input"]) == {"InstanceIds": [instance], "DryRun": True}
    assert target["Arn"] == {"Fn::Sub": "arn:${AWS::Partition}:scheduler:::aws-sdk:ec2:terminateInstances"}
    assert target["RoleArn"] == {"Fn::Sub": f"arn:${{AWS::Partition}}:iam::${{AWS::AccountId}}:role/{role}"}
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 0}
    assert schedule["ScheduleExpression"] == {"Fn::Sub": "rate(${CanaryInterval} minutes)"}
    assert MEMBER["Resources"]["CanaryRole"]["Properties"]["RoleName"] == role
    # The member stacks forward TerminateInstances already: the canary needs no rule of its own.
    forward = [r["Properties"]["EventPattern"] for r in MEMBER["Resources"].values()
               if r["Type"] == "AWS::Events::Rule" and "TerminateInstances" in json.dumps(r["Properties"].get("EventPattern", {}))]
    assert forward, "a rule forwards TerminateInstances"


def test_the_drill_schedule_names_its_run_so_a_retried_run_drills_once():
    # Scheduler replaces the context attribute with the run's scheduled time, the same on
    # each of its retries; the watchdog passes it on and the responder claims each
    # account's drill for that run once.
    drill = CENTRAL["Resources"]["Watchdog"]["Properties"]["Events"]["Drill"]["Properties"]
    assert json.loads(drill["Input"]) == {"drill": True, "scheduled": "<aws.scheduler.scheduled-time>"}
    assert drill["RetryPolicy"]["MaximumRetryAttempts"] > 0, "a retry is what the run's claim is for"


@pytest.mark.parametrize("alarm,function,silent_minutes", [("WatchdogSilent", "Watchdog", 15),
                                                          ("DetectorSilent", "Detector", 60)])
def test_a_function_that_stops_running_pages_the_alarm_channel(alarm, function, silent_minutes):
    """A stopped schedule or a detector nothing reaches raises no error: the alarm is on
    invocations, and missing data (no invocation at all) is breaching."""
    p = CENTRAL["Resources"][alarm]["Properties"]
    assert (p["Namespace"], p["MetricName"], p["Statistic"]) == ("AWS/Lambda", "Invocations", "Sum")
    assert p["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": function}}]
    assert (p["ComparisonOperator"], p["Threshold"], p["TreatMissingData"]) == ("LessThanThreshold", 1, "breaching")
    assert p["Period"] * p["EvaluationPeriods"] == silent_minutes * 60
    assert p["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    # The detector's window covers the longest canary interval the stacks allow.
    if function == "Detector":
        assert p["Period"] >= CENTRAL["Parameters"]["CanaryInterval"]["MaxValue"] * 60
    else:
        assert "rate(5 minutes)" in json.dumps(CENTRAL["Resources"]["Watchdog"]["Properties"]["Events"])


def test_a_flood_of_custom_events_on_the_organization_bus_never_reaches_the_detector(moto):
    """Anyone the bus policy admits can put events on it, but only AWS's own events wake
    the detector: every rule the central stack puts on the organization bus matches
    `source` prefix `aws.` (PutEvents refuses that prefix to callers), so a flood of
    look-alikes, every field but the source copied from real records, is dropped by
    EventBridge before it costs an invocation. One real record beside them still goes."""
    events = boto3.client("events", **moto)
    sqs = boto3.client("sqs", **moto)
    bus = "flood-org-bus"
    events.create_event_bus(Name=bus)
    queue = sqs.create_queue(QueueName=bus)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rules = {name: e["Properties"]["Pattern"] for name, e in CENTRAL["Resources"]["Detector"]["Properties"]["Events"].items()
             if e["Properties"].get("EventBusName") == {"Ref": "Bus"}}
    assert len(rules) >= 4, rules
    for name, pattern in rules.items():
        events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps(pattern))
        events.put_targets(Rule=name, EventBusName=bus, Targets=[{"Id": "detector", "Arn": arn}])
    positives, _ = _cases()
    look_alikes = [c for which in CONTEXT_CASES.values() for c in which[0]] + positives
    flood = []
    for i in range(1000):
        e = look_alikes[i % len(look_alikes)]
        flood.append({"EventBusName": bus, "Source": e["source"].replace("aws.", "custom.", 1) if i % 2 else "tripwire." + e["source"],
                      "DetailType": e["detail-type"], "Detail": json.dumps(e["detail"])})
    for k in range(0, len(flood), 10):
        out = events.put_events(Entries=flood[k:k + 10])
        assert out["FailedEntryCount"] == 0
    real = positives[0]
    events.put_events(Entries=[{"EventBusName": bus, "Source": real["source"], "DetailType": real["detail-type"],
                                "Detail": json.dumps(real["detail"])}])
    got = []
    while True:
        batch = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not batch:
            break
        got += [json.loads(m["Body"]) for m in batch]
        for m in batch:
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
    assert [(g["source"], g["detail"].get("eventID")) for g in got] == [(real["source"], real["detail"].get("eventID"))]


# ---- the account brake's delegation, in the management account ----------------------

def test_the_delegation_lets_the_security_account_attach_the_brake_and_nothing_else():
    statements = DELEGATION["Resources"]["Delegation"]["Properties"]["Content"]["Statement"]
    granted = {a for st in statements for a in st["Action"]}
    # No way to create, change or delete a policy, nor to leave the brake's one type.
    assert granted == {"organizations:DescribeOrganization", "organizations:DescribePolicy",
                       "organizations:ListPoliciesForTarget", "organizations:AttachPolicy",
                       "organizations:DetachPolicy"}
    for st in statements:
        assert st["Effect"] == "Allow"
        assert st["Principal"] == {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${SecurityAccountId}:root"}}
    attach = next(st for st in statements if "organizations:AttachPolicy" in st["Action"])
    # The brake by its own ARN, on accounts of this organization only, of its one type.
    assert attach["Resource"][0] == {"Fn::GetAtt": ["BrakePolicy", "Arn"]}
    assert attach["Resource"][1]["Fn::Sub"].endswith(":account/${OrgId}/*")
    assert attach["Condition"] == {"StringEquals": {"organizations:PolicyType": "SERVICE_CONTROL_POLICY"}}
    brake = DELEGATION["Resources"]["BrakePolicy"]["Properties"]
    assert (brake["Name"], brake["Type"]) == ("tripwire-account-brake", "SERVICE_CONTROL_POLICY")
    assert "TargetIds" not in brake, "created attached to nothing"


def test_the_shipped_brake_fits_the_delegation_stacks_parameter():
    scp = _tripwire("check-policy", POLICY, "--get", "account_brake_scp").strip()
    assert len(scp) <= DELEGATION["Parameters"]["BrakePolicyContent"]["MaxLength"], len(scp)


def test_the_responder_may_attach_only_the_brake_and_only_when_one_is_deployed():
    stmts = CENTRAL["Resources"]["ResponderRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    braking = [s for s in stmts if isinstance(s, dict) and "Fn::If" in s]
    assert {s["Fn::If"][0] for s in braking} == {"HasAccountBrake"}
    attach = next(s["Fn::If"][1] for s in braking if s["Fn::If"][1]["Sid"] == "AccountBrakeAttach")
    assert attach["Action"] == "organizations:AttachPolicy", "release detaches with the operator's credentials"
    assert attach["Resource"][0]["Fn::Sub"].endswith("/service_control_policy/${AccountBrakePolicyId}")
    every = {a for s in stmts if isinstance(s, dict) and "Action" in s
             for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert not {a for a in every if a.startswith("organizations:")}, "only under HasAccountBrake"
