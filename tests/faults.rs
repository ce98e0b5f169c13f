//! Faults on the wire: a proxy on loopback between the functions and moto throttles,
//! fails, stalls and resets AWS calls. Nothing may be lost, nothing counted twice, and
//! alerting and containment must not wait on each other.

use serde_json::{json, Value};
use tripwire_localstack::{Burst, Options, Received, Stack, OTHER, PROD};
use tripwire_synth::{eventbridge_envelope, terminate_record, Call, Caller};

/// Ten minutes ago, on a whole minute: the real functions read the system clock, and a
/// burst older than its window plus `max_delivery_delay` is history they never contain.
static BASE: std::sync::LazyLock<i64> = std::sync::LazyLock::new(tripwire_localstack::recent);

fn with_faults() -> Options {
    Options {
        faults: true,
        ..Options::default()
    }
}

fn kinds(alerts: &[Received]) -> Vec<String> {
    let mut k: Vec<String> = alerts
        .iter()
        .map(|a| a.attributes["kind"].clone())
        .collect();
    k.sort();
    k
}

fn injected(faults: &Value, service: &str, kind: &str) -> u64 {
    faults[service][kind].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_rides_out_throttling_5xx_stalls_and_resets() {
    let stack = Stack::start(with_faults()).await;
    // Each fault is followed by a pass, so the SDK's retry of that call gets through.
    stack
        .set_faults(&json!({
            "dynamodb": ["throttle", "ok", "error500", "ok", "reset", "ok", "throttle", "ok", "timeout", "ok", "error500", "ok", "throttle"],
            "sns": ["throttle", "ok", "error500"],
            "sts": ["throttle"],
            "iam": ["error500", "ok", "reset"]
        }))
        .await;
    let mut opened = 0;
    for e in Burst::new("role/vendor/cleanup-task@222222222222", "retry")
        .at(*BASE)
        .calls(10)
        .step(1000)
        .envelopes()
    {
        let out = stack
            .invoke(&e)
            .await
            .expect("every call succeeds after the SDK's retries");
        opened += usize::from(out[0]["outcome"] == "opened");
    }
    let f = stack.faults().await;
    let expected = [
        ("dynamodb", "throttle", 3),
        ("dynamodb", "error500", 2),
        ("dynamodb", "reset", 1),
        ("dynamodb", "timeout", 1),
        ("sns", "throttle", 1),
        ("sns", "error500", 1),
        ("sts", "throttle", 1),
        ("iam", "error500", 1),
        ("iam", "reset", 1),
    ];
    for (service, kind, n) in expected {
        assert_eq!(injected(&f, service, kind), n, "{service} {kind}: {f}");
    }
    assert_eq!(opened, 1);
    assert_eq!(kinds(&stack.alerts().await), ["contained", "detected"]);
    assert_eq!(stack.tags(PROD, "role/cleanup-task").await.len(), 1);
    assert_eq!(
        stack.attached(PROD, "role/cleanup-task").await,
        ["tripwire-brake", "tripwire-contain-scope"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_event_is_kept_for_retry_and_then_counted_once() {
    let stack = Stack::start(with_faults()).await;
    let events = Burst::new("role/deploy/ci-deployer@222222222222", "kept")
        .at(*BASE)
        .calls(10)
        .step(1000)
        .envelopes();
    stack
        .set_faults(&json!({"dynamodb": {"error500": 1.0}}))
        .await;
    let failed = stack.invoke(&events[0]).await;
    assert!(
        matches!(failed, Err((500, _))),
        "the failure is returned, so Lambda retries and then dead-letters it: {failed:?}"
    );
    stack.set_faults(&json!({})).await;
    // Lambda's retry delivers the same event again.
    let retried = stack.invoke(&events[0]).await.unwrap();
    assert_eq!(retried[0]["outcome"], "counted");
    assert_eq!(retried[0]["window_count"], 1);
    assert_eq!(
        stack.invoke(&events[0]).await.unwrap()[0]["outcome"],
        "duplicate"
    );
    let mut last = Value::Null;
    for e in &events[1..] {
        last = stack.invoke(e).await.unwrap();
    }
    assert_eq!(last[0]["outcome"], "opened");
    assert_eq!(last[0]["window_count"], 10, "nothing was counted twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containment_happens_while_sns_is_down_and_the_alert_follows_once() {
    let stack = Stack::start(with_faults()).await;
    let events = Burst::new("role/vendor/cleanup-task@222222222222", "nosns")
        .at(*BASE)
        .calls(10)
        .step(1000)
        .envelopes();
    for e in &events[..9] {
        stack.invoke(e).await.unwrap();
    }
    stack.set_faults(&json!({"sns": {"error500": 1.0}})).await;
    assert!(
        stack.invoke(&events[9]).await.is_err(),
        "the alert failed, so the event is retried"
    );
    assert_eq!(
        stack.attached(PROD, "role/cleanup-task").await,
        ["tripwire-brake", "tripwire-contain-scope"],
        "contained although SNS is down"
    );
    assert!(stack.alerts().await.is_empty());
    stack.set_faults(&json!({})).await;
    let retried = stack.invoke(&events[9]).await.unwrap();
    assert_eq!(
        retried[0]["outcome"], "opened",
        "the retry finishes what the first attempt started"
    );
    assert_eq!(
        kinds(&stack.alerts().await),
        ["contained", "detected"],
        "one of each"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_go_out_while_sts_or_iam_fail() {
    let stack = Stack::start(with_faults()).await;
    // STS down: the page still goes out; containment is retried later.
    stack.set_faults(&json!({"sts": {"error500": 1.0}})).await;
    let mut results = Vec::new();
    for e in Burst::new("role/vendor/cleanup-task@222222222222", "nosts")
        .at(*BASE)
        .calls(10)
        .step(1000)
        .envelopes()
    {
        results.push(stack.invoke(&e).await);
    }
    assert!(
        results[9].is_err(),
        "containment failed transiently, so the event is retried"
    );
    assert_eq!(kinds(&stack.alerts().await), ["detected"]);
    assert!(stack.attached(PROD, "role/cleanup-task").await.is_empty());
    // IAM refuses (AccessDenied): a permanent failure, reported in words.
    stack.set_faults(&json!({"iam": {"denied": 1.0}})).await;
    for e in Burst::new("role/ops/fleet-admin@444444444444", "denied")
        .account(PROD)
        .at(*BASE)
        .calls(1)
        .step(1000)
        .envelopes()
    {
        stack.invoke(&e).await.unwrap();
    }
    let alerts = stack.alerts().await;
    assert_eq!(kinds(&alerts), ["containment_failed", "detected"]);
    let failed = alerts
        .iter()
        .find(|a| a.attributes["kind"] == "containment_failed")
        .unwrap();
    assert!(
        failed.body["containment_status"]["detail"]
            .as_str()
            .unwrap()
            .contains("AccessDenied"),
        "{}",
        failed.body
    );
    assert!(stack.attached(OTHER, "role/fleet-admin").await.is_empty());
    assert!(stack.tags(OTHER, "role/fleet-admin").await.is_empty());
}

fn one_call(who: &str, account: &str, instances: usize, tag: &str) -> Value {
    let caller = Caller::parse(who).unwrap();
    let ids: Vec<String> = (0..instances).map(|k| format!("i-{tag}{k:012x}")).collect();
    let id = format!("{tag}-1");
    let rec = terminate_record(&Call {
        caller: &caller,
        account,
        region: "us-east-1",
        time: *BASE,
        instance_ids: &ids,
        event_id: &id,
        error: None,
        source_ip: "10.20.0.15",
        user_agent: "fault-test",
        invoked_by: None,
        already_terminated: 0,
        session: "session",
        access_key: "EXAMPLEEXAMPLE00",
    });
    eventbridge_envelope(&rec, &id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_dynamodb_down_the_detector_alerts_on_what_one_call_proves() {
    let stack = Stack::start(with_faults()).await;
    stack
        .set_faults(&json!({"dynamodb": {"error500": 1.0}}))
        .await;
    let cases = [
        (
            one_call("role/vendor/cleanup-task@222222222222", PROD, 12, "a1"),
            true,
        ),
        (
            one_call("role/ops/fleet-admin@444444444444", PROD, 1, "b2"),
            true,
        ),
        (
            one_call("role/deploy/ci-deployer@222222222222", PROD, 1, "c3"),
            false,
        ),
    ];
    for (event, alerts) in cases {
        assert!(
            stack.invoke(&event).await.is_err(),
            "the event is kept for retry"
        );
        let got = stack.alerts().await;
        assert_eq!(got.len(), usize::from(alerts), "{event}");
        if alerts {
            assert_eq!(got[0].body["window_degraded"], true);
            assert_eq!(got[0].body["containment_status"]["state"], "not_attempted");
            assert!(
                got[0].subject.starts_with("TRIPWIRE:"),
                "{}",
                got[0].subject
            );
        }
    }
}
