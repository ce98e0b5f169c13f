"""What `tripwire render` prints for each destination, checked against that destination's
schema where one exists offline (botocore's Security Hub model for ASFF) and against the
documented required fields otherwise (Amazon Q Developer in chat applications' custom
notifications, PagerDuty's Events API v2); and the central stack's integrations."""

import json
import os
import pathlib
import subprocess

import botocore.session
import pytest
from botocore.validate import ParamValidator
from cfnlint.decode import cfn_yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
TRIPWIRE = TARGET / "debug" / "tripwire"
CENTRAL = cfn_yaml.load(str(ROOT / "infra" / "template.yaml"))


def _tripwire(*args, stdin=None):
    if not TRIPWIRE.exists():
        pytest.skip("no tripwire binary; `make test` builds it first")
    out = subprocess.run([str(TRIPWIRE), *args], input=stdin, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture(scope="module")
def alert_lines(tmp_path_factory):
    """The seed incident's alert JSON as the detector sends it, and as release sends it."""
    archive = tmp_path_factory.mktemp("archive")
    _tripwire("generate", "--out", str(archive), "--size-mb", "1")
    backtest = _tripwire("backtest", "--json", "--policy", str(ROOT / "config" / "policy.toml"), str(archive))
    incident = next(line for line in backtest.splitlines() if json.loads(line)["type"] == "incident")
    detected = json.loads(_tripwire("render", "--format", "json", stdin=incident + "\n"))
    released = dict(detected, kind="released", containment_status={"state": "released", "detail": "lifted"})
    return [json.dumps(detected), json.dumps(released)]


def _render(fmt, lines):
    account = ["--finding-account", "123456789012"] if fmt == "asff" else []
    out = _tripwire("render", "--format", fmt, *account, stdin="\n".join(lines) + "\n")
    return [json.loads(line) for line in out.splitlines()]


ASFF_NAMESPACES = {"Software and Configuration Checks", "TTPs", "Effects", "Unusual Behaviors",
                   "Sensitive Data Identifications"}


def test_each_finding_is_a_valid_batch_import_findings_request(alert_lines):
    model = botocore.session.get_session().get_service_model("securityhub")
    shape = model.operation_model("BatchImportFindings").input_shape
    findings = _render("asff", alert_lines)
    assert len(findings) == 2
    report = ParamValidator().validate({"Findings": findings}, shape)
    assert not report.has_errors(), report.generate_report()
    detected, released = findings
    assert detected["Id"] == released["Id"] and detected["CreatedAt"] == released["CreatedAt"]
    assert (detected["RecordState"], released["RecordState"]) == ("ACTIVE", "ARCHIVED")
    # The limits the API states in prose (BatchImportFindings refuses a finding past them).
    for f in findings:
        assert len(f["Title"]) <= 256 and len(f["Description"]) <= 1024
        assert len(f["Remediation"]["Recommendation"]["Text"]) <= 512
        assert all(t.split("/")[0] in ASFF_NAMESPACES for t in f["FindingProviderFields"]["Types"])
        assert f["ProductArn"].endswith(f":product/{f['AwsAccountId']}/default")
        assert len(json.dumps(f)) < 240 * 1024
        # Fields a provider may not change on an existing finding are not sent.
        assert not {"Workflow", "Note", "Severity", "Types"} & set(f)


def test_each_chat_card_has_the_custom_notification_fields(alert_lines):
    for card in _render("chatbot", alert_lines):
        assert card["version"] == "1.0" and card["source"] == "custom"
        content, metadata = card["content"], card["metadata"]
        assert content["textType"] == "client-markdown"
        assert content["title"] and content["description"]
        assert all(isinstance(s, str) for s in content["nextSteps"] + content["keywords"])
        assert isinstance(metadata["threadId"], str) and metadata["threadId"]
        assert all(isinstance(v, str) for v in metadata["additionalContext"].values())
    a, b = _render("chatbot", alert_lines)
    assert a["metadata"]["threadId"] == b["metadata"]["threadId"], "one thread per incident"


def test_each_page_has_the_events_api_v2_fields_and_a_release_resolves_it(alert_lines):
    trigger, resolve = _render("pagerduty", alert_lines)
    assert trigger["event_action"] == "trigger" and resolve["event_action"] == "resolve"
    assert trigger["dedup_key"] == resolve["dedup_key"] and len(trigger["dedup_key"]) <= 255
    p = trigger["payload"]
    assert p["summary"] and len(p["summary"]) <= 1024 and p["source"]
    assert p["severity"] in {"critical", "error", "warning", "info"}
    assert "routing_key" not in trigger, "the EventBridge connection adds it"


# ---- the central stack's integrations -------------------------------------------------

def _rules_on_the_alert_bus():
    for name, res in CENTRAL["Resources"].items():
        if res["Type"] == "AWS::Events::Rule" and res["Properties"].get("EventBusName") == {"Ref": "AlertBus"}:
            yield name, res["Properties"]["EventPattern"]
        for event in res.get("Properties", {}).get("Events", {}).values():
            if event["Properties"].get("EventBusName") == {"Ref": "AlertBus"}:
                yield name, event["Properties"]["Pattern"]


def test_only_this_account_puts_on_the_alert_bus_and_every_rule_reads_only_its_events():
    assert not [r for r in CENTRAL["Resources"].values() if r["Type"] == "AWS::Events::EventBusPolicy"
                and r["Properties"]["EventBusName"] == {"Ref": "AlertBus"}]
    rules = dict(_rules_on_the_alert_bus())
    assert set(rules) == {"ChatRule", "PagerDutyRule", "Findings"}
    for name, pattern in rules.items():
        assert pattern["source"] == ["tripwire"], name
        assert pattern["account"] == [{"Ref": "AWS::AccountId"}], name


def test_the_routing_key_is_never_in_the_template():
    conn = CENTRAL["Resources"]["PagerDutyConnection"]["Properties"]["AuthParameters"]
    secret = {"Fn::Sub": "{{resolve:secretsmanager:${PagerDutyRoutingKeySecret}}}"}
    assert conn["ApiKeyAuthParameters"]["ApiKeyValue"] == secret
    body = conn["InvocationHttpParameters"]["BodyParameters"]
    assert body == [{"Key": "routing_key", "Value": secret, "IsValueSecret": True}]
    assert CENTRAL["Parameters"]["PagerDutyRoutingKeySecret"]["Default"] == ""
    target = CENTRAL["Resources"]["PagerDutyRule"]["Properties"]["Targets"][0]
    assert target["InputPath"] == "$.detail.destinations.pagerduty"
    chat = CENTRAL["Resources"]["ChatRule"]["Properties"]["Targets"][0]
    assert chat["InputPath"] == "$.detail.destinations.chatbot"
