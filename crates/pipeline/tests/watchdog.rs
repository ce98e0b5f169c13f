//! The watchdog in-process, on the in-memory ports: a silent account and region pages
//! `coverage_lost` once, `coverage_restored` once when it speaks again, and a failed
//! page is paged by the next run.

mod support;

use support::{Rig, POLICY, T0};
use tripwire_pipeline::watchdog::{Paged, Watchdog};
use tripwire_synth::{canary_record, eventbridge_envelope};

const PROD: &str = "222222222222";
const MINUTE: i64 = 60_000;

async fn heartbeat(rig: &Rig, region: &str, at: i64) {
    let id = format!("canary-{region}-{at}");
    rig.clock.set(at + 3_000);
    rig.deliver_one(&eventbridge_envelope(
        &canary_record(PROD, region, at, &id),
        &id,
    ))
    .await
    .unwrap();
}

fn lost(region: &str) -> Paged {
    Paged::CoverageLost {
        account: PROD.into(),
        region: region.into(),
    }
}

#[tokio::test]
async fn a_silent_region_pages_lost_once_and_restored_once() {
    let rig = Rig::new(POLICY);
    let dog = Watchdog::new(
        rig.store.clone(),
        rig.alerts.clone(),
        rig.clock.clone(),
        10 * MINUTE,
    );
    let run = |at: i64| {
        rig.clock.set(at);
        dog.run(at + MINUTE)
    };
    heartbeat(&rig, "us-east-1", T0).await;
    heartbeat(&rig, "eu-west-1", T0).await;
    heartbeat(&rig, "us-east-1", T0 + 20 * MINUTE).await;
    assert_eq!(run(T0 + 25 * MINUTE).await.unwrap(), [], "late is not lost");
    // Three intervals: eu-west-1 is lost; us-east-1 spoke eleven minutes ago.
    rig.alerts.faults.fail_next("publish", 1);
    assert!(
        run(T0 + 31 * MINUTE).await.is_err(),
        "the failed page fails the run"
    );
    assert_eq!(run(T0 + 36 * MINUTE).await.unwrap(), [lost("eu-west-1")]);
    assert_eq!(run(T0 + 41 * MINUTE).await.unwrap(), [], "paged once");
    let sent = rig.alerts.sent();
    assert_eq!(rig.alerts.kinds(), ["coverage_lost"]);
    assert_eq!(
        sent[0].subject,
        "TRIPWIRE COVERAGE LOST: 222222222222 eu-west-1 silent for 36 min"
    );
    // It speaks again: restored, once; us-east-1 has meanwhile gone silent too.
    heartbeat(&rig, "eu-west-1", T0 + 50 * MINUTE).await;
    heartbeat(&rig, "us-east-1", T0 + 50 * MINUTE).await;
    assert_eq!(
        run(T0 + 52 * MINUTE).await.unwrap(),
        [Paged::CoverageRestored {
            account: PROD.into(),
            region: "eu-west-1".into()
        }]
    );
    assert_eq!(run(T0 + 53 * MINUTE).await.unwrap(), []);
    // A new silence is a new page.
    assert_eq!(
        run(T0 + 81 * MINUTE).await.unwrap(),
        [lost("eu-west-1"), lost("us-east-1")]
    );
    assert_eq!(
        rig.alerts.kinds(),
        [
            "coverage_lost",
            "coverage_restored",
            "coverage_lost",
            "coverage_lost"
        ]
    );
}
