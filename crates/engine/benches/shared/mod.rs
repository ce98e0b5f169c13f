//! The decision benchmark's input and work, shared by the criterion bench (time) and
//! the instruction-count run under callgrind (`make bench-decision`), so both measure
//! the same thing.

use tripwire_engine::containment::{plan, Culprit};
use tripwire_engine::window::{classify, decide, Classification, WindowEvent};
use tripwire_engine::{scan, Policy, ScanCounts};
use tripwire_synth::{eventbridge_envelope, terminate_record, Call, Caller};

/// One typical TerminateInstances event and the window it lands in.
pub struct Input {
    pub policy: Policy,
    pub event: String,
    pub window: Vec<WindowEvent>,
    /// A call no catalogue entry names (`ec2:DescribeInstances`, the bulk of a trail).
    pub other: String,
}

pub fn input() -> Input {
    let policy = Policy::from_toml(include_str!("../../../../config/policy.toml")).unwrap();
    let caller = Caller::parse("role/vendor/cleanup-task@222222222222").unwrap();
    let ids = vec!["i-0123456789abcdef0".to_string()];
    let call = Call {
        caller: &caller,
        account: "222222222222",
        region: "us-east-1",
        time: 1_515_535_753_500,
        instance_ids: &ids,
        event_id: "0b1e4f0c-6b8e-4a5c-9c55-2f7d2a1f7f10",
        error: None,
        source_ip: "10.20.0.15",
        user_agent: "vendor-cleanup/2.3 aws-sdk-go/1.12.0",
        invoked_by: None,
        already_terminated: 0,
        session: "session",
        access_key: "EXAMPLEEXAMPLE00",
    };
    let event = eventbridge_envelope(&terminate_record(&call), "eb-1").to_string();
    // Nine earlier calls in the window: the tenth crosses the threshold.
    let window = (0..10)
        .map(|k| WindowEvent {
            event_id: format!("e{k}"),
            event_time: call.time - k * 1500,
            instance_ids: vec![format!("i-{k:017x}")],
            unconfirmed: false,
            session: None,
            source_identity: None,
            access_key: None,
            principal: None,
            error_code: None,
            event_name: None,
            described: Default::default(),
        })
        .collect();
    let other = tripwire_synth::api_envelope(
        "ec2.amazonaws.com",
        "DescribeInstances",
        "role/vendor/cleanup-task@222222222222",
        &serde_json::json!({"instancesSet": {}, "filterSet": {}}),
        "eb-2",
        call.time,
    )
    .to_string();
    Input {
        policy,
        event,
        window,
        other,
    }
}

/// A call of no catalogued kind: parsed, looked up, and counted as another event.
pub fn other(i: &Input) -> ScanCounts {
    let mut counts = ScanCounts::default();
    let mut terms = Vec::new();
    scan(std::hint::black_box(&i.other), &mut counts, &mut terms).unwrap();
    assert_eq!(counts.other_events, 1);
    counts
}

/// Parse, classify, decide and plan: the detector's own work on one event.
pub fn decision(i: &Input) -> impl Sized {
    let mut counts = ScanCounts::default();
    let mut terms = Vec::with_capacity(1);
    scan(std::hint::black_box(&i.event), &mut counts, &mut terms).unwrap();
    let t = &terms[0];
    match classify(&i.policy, t) {
        Classification::Counted { threshold, .. } => Some((
            decide(t.event_time, threshold, i.policy.window, &i.window, None),
            plan(&i.policy, &t.principal, &Culprit::of_call(t), t.kind()),
        )),
        _ => None,
    }
}

/// The baseline: parsing the same event into a `serde_json::Value`, nothing more.
pub fn baseline(i: &Input) -> serde_json::Value {
    serde_json::from_str(std::hint::black_box(&i.event)).unwrap()
}
