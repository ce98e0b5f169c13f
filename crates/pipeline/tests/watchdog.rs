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

/// The member StackSet's instances, as a test sets them.
#[derive(Clone, Default)]
struct Instances(std::sync::Arc<std::sync::Mutex<Vec<(&'static str, &'static str)>>>);

impl Instances {
    fn set(&self, pairs: &[(&'static str, &'static str)]) {
        *self.0.lock().unwrap() = pairs.to_vec();
    }
}

impl tripwire_pipeline::Deployments for Instances {
    async fn deployed(
        &self,
    ) -> Result<Vec<tripwire_engine::armed::Deployed>, tripwire_pipeline::Error> {
        Ok(self
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|(a, r)| tripwire_engine::armed::Deployed {
                account: (*a).into(),
                region: (*r).into(),
                status: "OUTDATED FAILED: Account 222222222222 should have 'AWSCloudFormationStackSetExecutionRole'".into(),
                stack_instance: true,
            })
            .collect())
    }
}

#[tokio::test]
async fn a_stackset_instance_that_never_speaks_is_paged_once_after_the_grace_period() {
    let rig = Rig::new(POLICY);
    let instances = Instances::default();
    let dog = Watchdog::new(
        rig.store.clone(),
        rig.alerts.clone(),
        rig.clock.clone(),
        10 * MINUTE,
    )
    .with_deployments(instances.clone(), 60 * MINUTE);
    let run = |at: i64| {
        rig.clock.set(at);
        dog.run(at + MINUTE)
    };
    let never = |region: &str| Paged::NeverSeen {
        account: PROD.into(),
        region: region.into(),
    };
    heartbeat(&rig, "us-east-1", T0).await;
    instances.set(&[
        (PROD, "us-east-1"),
        (PROD, "eu-west-1"),
        (PROD, "ap-south-1"),
    ]);
    // The grace period runs from the first run that lists an instance, not from T0.
    assert_eq!(run(T0 + 5 * MINUTE).await.unwrap(), []);
    heartbeat(&rig, "us-east-1", T0 + 60 * MINUTE).await;
    assert_eq!(
        run(T0 + 64 * MINUTE).await.unwrap(),
        [],
        "59 minutes listed"
    );
    rig.alerts.faults.fail_next("publish", 1);
    assert!(
        run(T0 + 65 * MINUTE).await.is_err(),
        "the failed page fails the run"
    );
    assert_eq!(
        run(T0 + 66 * MINUTE).await.unwrap(),
        [never("eu-west-1"), never("ap-south-1")],
        "the next run pages both, the failed one included"
    );
    assert_eq!(run(T0 + 70 * MINUTE).await.unwrap(), [], "paged once");
    let sent = rig.alerts.sent();
    assert_eq!(rig.alerts.kinds(), ["coverage_lost", "coverage_lost"]);
    assert_eq!(
        sent[0].subject,
        "TRIPWIRE COVERAGE LOST: 222222222222 eu-west-1 never sent a heartbeat (61 min)"
    );
    assert!(sent[0].text.contains("OUTDATED FAILED"), "{}", sent[0].text);
    let json: serde_json::Value = serde_json::from_str(&sent[0].json).unwrap();
    assert_eq!(
        (json["kind"].as_str(), json["state"].as_str()),
        (Some("coverage_lost"), Some("never_seen"))
    );
    // eu-west-1 speaks at last: restored once; ap-south-1 leaves the StackSet and is
    // forgotten without a page, and a new instance starts its own grace period.
    heartbeat(&rig, "eu-west-1", T0 + 75 * MINUTE).await;
    instances.set(&[
        (PROD, "us-east-1"),
        (PROD, "eu-west-1"),
        (PROD, "sa-east-1"),
    ]);
    assert_eq!(
        run(T0 + 76 * MINUTE).await.unwrap(),
        [Paged::CoverageRestored {
            account: PROD.into(),
            region: "eu-west-1".into()
        }]
    );
    assert_eq!(run(T0 + 80 * MINUTE).await.unwrap(), []);
    instances.set(&[
        (PROD, "us-east-1"),
        (PROD, "eu-west-1"),
        (PROD, "sa-east-1"),
        (PROD, "ap-south-1"),
    ]);
    assert_eq!(
        run(T0 + 81 * MINUTE).await.unwrap(),
        [],
        "relisted: a new grace period"
    );
    heartbeat(&rig, "us-east-1", T0 + 130 * MINUTE).await;
    heartbeat(&rig, "eu-west-1", T0 + 130 * MINUTE).await;
    assert_eq!(run(T0 + 136 * MINUTE).await.unwrap(), [never("sa-east-1")]);
    assert_eq!(run(T0 + 141 * MINUTE).await.unwrap(), [never("ap-south-1")]);
    assert_eq!(
        rig.alerts.kinds(),
        [
            "coverage_lost",
            "coverage_lost",
            "coverage_restored",
            "coverage_lost",
            "coverage_lost"
        ]
    );
}

#[tokio::test]
async fn an_allowed_account_is_never_expected_and_its_silence_pages_nothing() {
    const SANDBOX: &str = "333333333333";
    let rig = Rig::new(POLICY);
    let instances = Instances::default();
    let dog = Watchdog::new(
        rig.store.clone(),
        rig.alerts.clone(),
        rig.clock.clone(),
        10 * MINUTE,
    )
    .with_deployments(instances.clone(), 0)
    .with_allowed_accounts([SANDBOX.to_owned()].into());
    let run = |at: i64| {
        rig.clock.set(at);
        dog.run(at + MINUTE)
    };
    // The member stacks filter an allowed account's canary like its terminations: its
    // instance never speaks, and PROD's us-east-1 spoke once and fell silent.
    instances.set(&[(PROD, "us-east-1"), (SANDBOX, "us-east-1")]);
    heartbeat(&rig, "us-east-1", T0).await;
    assert_eq!(run(T0 + MINUTE).await.unwrap(), []);
    assert_eq!(
        run(T0 + 31 * MINUTE).await.unwrap(),
        [lost("us-east-1")],
        "only the account the policy counts in is expected"
    );
    assert_eq!(rig.alerts.kinds(), ["coverage_lost"]);
}
