//! Odd and hostile inputs: each is a record plus the outcome it must get. None may panic;
//! none may yield a plan aimed at anyone but the caller.

use serde_json::{json, Value};
use tripwire_engine::containment::{plan, Culprit};
use tripwire_engine::scan::extract;
use tripwire_engine::{record, Action, Extracted, Policy};

/// A plain successful role call; cases override fields of it.
fn base() -> Value {
    json!({
        "eventVersion": "1.08",
        "userIdentity": {
            "type": "AssumedRole",
            "arn": "arn:aws:sts::222222222222:assumed-role/cleanup-task/s1",
            "accountId": "222222222222",
            "sessionContext": { "sessionIssuer": {
                "type": "Role", "arn": "arn:aws:iam::222222222222:role/vendor/cleanup-task", "accountId": "222222222222"
            }, "attributes": { "mfaAuthenticated": "false" } }
        },
        "eventTime": "2018-01-09T22:09:00Z",
        "eventSource": "ec2.amazonaws.com",
        "eventName": "TerminateInstances",
        "awsRegion": "us-east-1",
        "requestParameters": { "instancesSet": { "items": [ { "instanceId": "i-0123456789abcdef0" } ] } },
        "eventID": "e1",
        "recipientAccountId": "222222222222"
    })
}

fn with(patch: &[(&str, Value)]) -> Value {
    let mut v = base();
    for (ptr, val) in patch {
        let (parent, leaf) = ptr.rsplit_once('/').unwrap();
        let target = if parent.is_empty() {
            &mut v
        } else {
            v.pointer_mut(parent).unwrap()
        };
        if val.is_null() && leaf.starts_with('-') {
            target.as_object_mut().unwrap().remove(&leaf[1..]);
        } else {
            target[leaf] = val.clone();
        }
    }
    v
}

fn envelope(detail: Value, source: &str, account: &str) -> Value {
    json!({ "version": "0", "id": "x", "detail-type": "AWS API Call via CloudTrail", "source": source, "account": account, "time": "2018-01-09T22:09:00Z", "region": "us-east-1", "resources": [], "detail": detail })
}

#[derive(Debug)]
enum Want {
    /// A termination by this principal ARN, contained (action) or not.
    Term(&'static str, Action),
    Skip(&'static str),
    Other,
}

fn run(text: &str) -> Vec<Extracted> {
    let mut out = Vec::new();
    let _ = record::walk_stream(text, &mut |f: record::Found<'_>| out.push(extract(f)));
    out
}

#[test]
fn every_case_gets_its_outcome() {
    use Action::{Brake as Contained, None as NoPlan};
    let role = "arn:aws:iam::222222222222:role/vendor/cleanup-task";
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let cases: Vec<(&str, String, Want)> = vec![
        ("plain", base().to_string(), Want::Term(role, Contained)),
        ("fractional seconds", with(&[("/eventTime", json!("2018-01-09T22:09:00.123Z"))]).to_string(), Want::Term(role, Contained)),
        ("boolean as string, unknown extra fields", with(&[("/readOnly", json!("false")), ("/newField", json!({"x": [1]}))]).to_string(), Want::Term(role, Contained)),
        ("account ID as a number", with(&[("/recipientAccountId", json!(222222222222u64))]).to_string(), Want::Term(role, Contained)),
        ("GovCloud partition", with(&[("/userIdentity/sessionContext/sessionIssuer/arn", json!("arn:aws-us-gov:iam::222222222222:role/vendor/cleanup-task")), ("/userIdentity/arn", json!("arn:aws-us-gov:sts::222222222222:assumed-role/cleanup-task/s1"))]).to_string(), Want::Term("arn:aws-us-gov:iam::222222222222:role/vendor/cleanup-task", Contained)),
        ("China partition", with(&[("/userIdentity/sessionContext/sessionIssuer/arn", json!("arn:aws-cn:iam::222222222222:role/vendor/cleanup-task")), ("/userIdentity/arn", json!("arn:aws-cn:sts::222222222222:assumed-role/cleanup-task/s1"))]).to_string(), Want::Term("arn:aws-cn:iam::222222222222:role/vendor/cleanup-task", Contained)),
        ("null session context: role from the session ARN", with(&[("/userIdentity/sessionContext", Value::Null)]).to_string(), Want::Term("arn:aws:iam::222222222222:role/cleanup-task", Contained)),
        ("session issuer of the wrong type", with(&[("/userIdentity/sessionContext", json!("oops"))]).to_string(), Want::Term("arn:aws:iam::222222222222:role/cleanup-task", Contained)),
        ("unknown identity type", with(&[("/userIdentity", json!({"type": "SomethingNew", "principalId": "X1", "accountId": "222222222222"}))]).to_string(), Want::Term("X1", NoPlan)),
        ("the issuer names another role than the session", with(&[("/userIdentity/arn", json!("arn:aws:sts::222222222222:assumed-role/BreakGlass/s1"))]).to_string(), Want::Term(role, NoPlan)),
        ("the issuer is in another account than the session", with(&[("/userIdentity/arn", json!("arn:aws:sts::333333333333:assumed-role/cleanup-task/s1"))]).to_string(), Want::Term(role, NoPlan)),
        ("wildcard role name", with(&[("/userIdentity/sessionContext/sessionIssuer/arn", json!("arn:aws:iam::222222222222:role/*")), ("/userIdentity/arn", json!("arn:aws:sts::222222222222:assumed-role/*/s1"))]).to_string(), Want::Term("arn:aws:iam::222222222222:role/*", NoPlan)),
        ("dot-dot in the role path", with(&[("/userIdentity/sessionContext/sessionIssuer/arn", json!("arn:aws:iam::222222222222:role/a/../cleanup-task"))]).to_string(), Want::Term("arn:aws:iam::222222222222:role/a/../cleanup-task", NoPlan)),
        ("double slash in the role path", with(&[("/userIdentity/sessionContext/sessionIssuer/arn", json!("arn:aws:iam::222222222222:role//cleanup-task"))]).to_string(), Want::Term("arn:aws:iam::222222222222:role//cleanup-task", NoPlan)),
        ("role name with characters IAM forbids", with(&[("/userIdentity/sessionContext/sessionIssuer/arn", json!("arn:aws:iam::222222222222:role/clean up;task")), ("/userIdentity/arn", json!("arn:aws:sts::222222222222:assumed-role/clean up;task/s1"))]).to_string(), Want::Term("arn:aws:iam::222222222222:role/clean up;task", NoPlan)),
        ("short account ID", with(&[("/userIdentity/sessionContext/sessionIssuer/arn", json!("arn:aws:iam::1234:role/x")), ("/userIdentity/arn", json!("arn:aws:sts::1234:assumed-role/x/s"))]).to_string(), Want::Term("arn:aws:iam::1234:role/x", NoPlan)),
        ("missing eventTime", with(&[("/-eventTime", Value::Null)]).to_string(), Want::Skip("missing_event_time")),
        ("garbage eventTime", with(&[("/eventTime", json!("yesterday"))]).to_string(), Want::Skip("bad_event_time")),
        ("no userIdentity", with(&[("/-userIdentity", Value::Null)]).to_string(), Want::Skip("no_user_identity")),
        ("empty userIdentity", with(&[("/userIdentity", json!({}))]).to_string(), Want::Skip("no_user_identity")),
        ("requestParameters is a string", with(&[("/requestParameters", json!("i-1"))]).to_string(), Want::Skip("bad_request_parameters")),
        ("no instances", with(&[("/requestParameters", json!({"instancesSet": {}}))]).to_string(), Want::Skip("no_instances")),
        ("other event", with(&[("/eventName", json!("StopInstances"))]).to_string(), Want::Other),
        ("TerminateInstances from another service", with(&[("/eventSource", json!("evil.example.com"))]).to_string(), Want::Skip("not_cloudtrail")),
        ("enveloped", envelope(base(), "aws.ec2", "222222222222").to_string(), Want::Term(role, Contained)),
        ("a custom source dressed up as CloudTrail", envelope(base(), "custom.ec2", "222222222222").to_string(), Want::Skip("envelope_mismatch")),
        ("recipient account disagrees with the envelope", envelope(base(), "aws.ec2", "999999999999").to_string(), Want::Skip("envelope_mismatch")),
        ("other detail-type", json!({"detail-type": "EC2 Spot Instance Interruption Warning", "source": "aws.ec2", "detail": {"instance-id": "i-1234567890abcdef0", "instance-action": "terminate"}}).to_string(), Want::Skip("not_cloudtrail")),
        ("state change naming no instance", json!({"detail-type": "EC2 Instance State-change Notification", "source": "aws.ec2", "id": "7bf73129-1428-4cd3-a780-95db273d1602", "account": "123456789012", "region": "us-east-1", "time": "2021-11-11T21:29:54Z", "detail": {"state": "terminated"}}).to_string(), Want::Skip("bad_state_change")),
        ("deeply nested arrays", deep.clone(), Want::Skip("not_cloudtrail")),
        ("deep nesting inside a record", format!(r#"{{"eventSource":"ec2.amazonaws.com","eventName":"TerminateInstances","x":{deep}}}"#), Want::Skip("missing_event_time")),
        ("deep nesting inside userIdentity", with(&[("/userIdentity/principalId", serde_json::from_str::<Value>(&format!("{}{}", "[".repeat(100), "]".repeat(100))).unwrap())]).to_string().replace(&format!("{}{}", "[".repeat(100), "]".repeat(100)), &deep), Want::Term(role, Contained)),
        ("a JSON scalar", "42".into(), Want::Skip("not_cloudtrail")),
        ("duplicate keys", r#"{"eventName":"TerminateInstances","eventName":"StopInstances"}"#.into(), Want::Skip("malformed_record")),
    ];
    // Brake: contained, whatever the session evidence a shape keeps.
    let policy = Policy::from_toml("containment = \"brake\"").unwrap();
    for (name, text, want) in cases {
        let got = run(&text);
        assert_eq!(got.len(), 1, "{name}: {got:?}");
        match (&got[0], &want) {
            (Extracted::Termination(t), Want::Term(arn, action)) => {
                assert_eq!(&t.principal.arn, arn, "{name}");
                let p = plan(&policy, &t.principal, &Culprit::of_call(t), t.kind());
                assert_eq!(p.action, *action, "{name}: {}", p.reason);
                if p.action != Action::None {
                    // Only ever the caller: its own name and its own account.
                    assert_eq!(
                        p.target(),
                        Some(&tripwire_engine::Target::Role("cleanup-task".into())),
                        "{name}"
                    );
                    assert_eq!(
                        p.restriction.as_ref().map(|r| r.account.clone()),
                        t.principal.account,
                        "{name}"
                    );
                }
            }
            (Extracted::Skip(r), Want::Skip(w)) => assert_eq!(r.as_str(), *w, "{name}"),
            (Extracted::OtherEvent, Want::Other) => {}
            (g, w) => panic!("{name}: got {g:?}, want {w:?}"),
        }
    }
}

#[test]
fn a_thousand_instances_in_one_call_count_as_a_thousand() {
    let items: Vec<Value> = (0..1000)
        .map(|i| json!({ "instanceId": format!("i-{i:017x}") }))
        .collect();
    let rec = with(&[(
        "/requestParameters",
        json!({ "instancesSet": { "items": items } }),
    )]);
    let env = envelope(rec, "aws.ec2", "222222222222").to_string();
    assert!(env.len() < 256 * 1024, "fits in one EventBridge event");
    match &run(&env)[0] {
        Extracted::Termination(t) => assert_eq!(t.instance_ids.len(), 1000),
        other => panic!("{other:?}"),
    }
}

#[test]
fn truncated_input_at_every_byte_never_panics() {
    let text = envelope(base(), "aws.ec2", "222222222222").to_string();
    for cut in 0..text.len() {
        let _ = run(&text[..cut]);
    }
}

#[test]
fn an_event_near_eventbridges_256_kb_limit_is_read_whole() {
    // 1000 IDs plus a large unrelated field, as a verbose SDK might send.
    let items: Vec<Value> = (0..1000)
        .map(|i| json!({ "instanceId": format!("i-{i:017x}") }))
        .collect();
    let mut rec = with(&[(
        "/requestParameters",
        json!({ "instancesSet": { "items": items } }),
    )]);
    let env = envelope(rec.clone(), "aws.ec2", "222222222222").to_string();
    rec["requestParameters"]["clientToken"] = json!("x".repeat(250 * 1024 - env.len()));
    let env = envelope(rec, "aws.ec2", "222222222222").to_string();
    assert!(
        env.len() > 249 * 1024 && env.len() < 256 * 1024,
        "{}",
        env.len()
    );
    match &run(&env)[0] {
        Extracted::Termination(t) => assert_eq!(t.instance_ids.len(), 1000),
        other => panic!("{other:?}"),
    }
}
