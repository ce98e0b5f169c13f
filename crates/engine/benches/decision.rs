//! Per-record decision cost: one typical EventBridge TerminateInstances event through
//! parse + classify + window decision + plan, beside baselines measured in the same run.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use tripwire_engine::containment::plan;
use tripwire_engine::window::{classify, decide, Classification, WindowEvent};
use tripwire_engine::{scan, Policy, ScanCounts};
use tripwire_synth::{eventbridge_envelope, terminate_record, Call, Caller};

fn bench(c: &mut Criterion) {
    let policy = Policy::from_toml(include_str!("../../../config/policy.toml")).unwrap();
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
    };
    let event = eventbridge_envelope(&terminate_record(&call), "eb-1").to_string();
    // Nine earlier calls in the window: the tenth crosses the threshold.
    let window: Vec<WindowEvent> = (0..10)
        .map(|k| WindowEvent {
            event_id: format!("e{k}"),
            event_time: call.time - k * 1500,
            instance_ids: vec![format!("i-{k:017x}")],
            unconfirmed: false,
        })
        .collect();

    let mut g = c.benchmark_group("decision");
    g.bench_function("parse+classify+decide+plan", |b| {
        b.iter(|| {
            let mut counts = ScanCounts::default();
            let mut terms = Vec::with_capacity(1);
            scan(black_box(&event), &mut counts, &mut terms).unwrap();
            let t = &terms[0];
            if let Classification::Counted { threshold, .. } = classify(&policy, t) {
                let d = decide(t.event_time, threshold, policy.window, &window, None);
                black_box((d, plan(&policy, &t.principal, t.event_time)));
            }
        })
    });
    g.bench_function("baseline: serde_json::Value parse only", |b| {
        b.iter(|| black_box(serde_json::from_str::<serde_json::Value>(black_box(&event)).unwrap()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
