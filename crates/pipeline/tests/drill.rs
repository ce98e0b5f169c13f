//! The containment drill in-process: the watchdog asks the responder to drill in every
//! account the member StackSet lists but the allowed ones; the responder contains the
//! drill role through its real path, reads it back, lifts it and records what it found;
//! a failed drill pages `containment_unproven` once, on the alarm channel.

mod support;

use std::sync::{Arc, Mutex};
use support::{Rig, POLICY, T0};
use tripwire_engine::armed::Deployed;
use tripwire_engine::drill::{DrillRequest, Drilled};
use tripwire_pipeline::watchdog::{Paged, Watchdog};
use tripwire_pipeline::{Deployments, DrillQueue, Drills, Error, ResponderOutcome};

const PROD: &str = "222222222222";
const DRILL_ARN: &str = "arn:aws:iam::222222222222:role/tripwire-drill";
const MINUTE: i64 = 60_000;

async fn drill(rig: &Rig) -> Drilled {
    match rig
        .responder
        .handle_event(r#"{"drill": {"account": "222222222222"}}"#)
        .await
        .unwrap()
    {
        Some(ResponderOutcome::Drilled { drilled }) => drilled,
        other => panic!("not a drill: {other:?}"),
    }
}

#[tokio::test]
async fn the_drill_contains_its_role_as_an_incident_would_reads_it_back_and_lifts_it() {
    let rig = Rig::new(POLICY);
    *rig.contain.simulator.lock().unwrap() = Some(true);
    let d = drill(&rig).await;
    assert!(d.ok, "{d:?}");
    assert_eq!((d.reason.clone(), d.simulated), (None, Some(true)));
    // The real path: the plan an incident gets, through the containment port.
    let applied = rig.contain.applied();
    assert_eq!(applied.len(), 1);
    assert_eq!(applied[0].principal_arn(), Some(DRILL_ARN));
    assert_eq!(
        applied[0].managed,
        ["tripwire-brake", "tripwire-contain-scope"]
    );
    // Lifted: the drill never leaves its role contained.
    assert!(rig.contain.held.lock().unwrap().get(DRILL_ARN).is_none());
    // Recorded beside the heartbeats; no incident, no page.
    assert_eq!(rig.store.drills().await.unwrap(), [d]);
    assert!(rig.alerts.kinds().is_empty());
}

#[tokio::test]
async fn a_failed_drill_is_recorded_with_the_reason_and_never_leaves_the_role_contained() {
    // IAM refuses (the containment role's trust is broken).
    let rig = Rig::new(POLICY);
    *rig.contain.refuse.lock().unwrap() =
        Some("AccessDenied: not authorized to perform sts:AssumeRole".into());
    let d = drill(&rig).await;
    assert!(!d.ok);
    assert!(
        d.reason
            .as_deref()
            .unwrap()
            .starts_with("containment did not land: AccessDenied"),
        "{d:?}"
    );
    // IAM does not hold what was put in place.
    let rig = Rig::new(POLICY);
    rig.contain
        .forgets
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let d = drill(&rig).await;
    assert!(d.reason.as_deref().unwrap().contains("missing"), "{d:?}");
    assert_eq!(d.simulated, None, "no simulation of what is not there");
    // The simulator says the deny is not in effect.
    let rig = Rig::new(POLICY);
    *rig.contain.simulator.lock().unwrap() = Some(false);
    let d = drill(&rig).await;
    assert!(d.reason.as_deref().unwrap().contains("simulator"), "{d:?}");
    assert!(
        rig.contain.held.lock().unwrap().get(DRILL_ARN).is_none(),
        "lifted"
    );
    // A transient failure is an error, so Lambda retries: nothing is recorded.
    let rig = Rig::new(POLICY);
    rig.store.faults.fail_next("record_drill", 1);
    assert!(rig
        .responder
        .handle_event(r#"{"drill": {"account": "222222222222"}}"#)
        .await
        .is_err());
    assert!(rig.store.drills().await.unwrap().is_empty());
    // Not a drill request: ignored, and nothing happens.
    let rig = Rig::new(POLICY);
    assert_eq!(
        rig.responder
            .handle_event(r#"{"drill": {"account": "222222222222"}, "extra": 1}"#)
            .await
            .unwrap(),
        None
    );
    assert!(rig.contain.applied().is_empty());
}

/// The member StackSet's instances and an account the organization only expects.
struct Listed;

impl Deployments for Listed {
    async fn deployed(&self) -> Result<Vec<Deployed>, Error> {
        let d = |account: &str, region: &str, stack_instance| Deployed {
            account: account.into(),
            region: region.into(),
            status: "CURRENT".into(),
            stack_instance,
        };
        Ok(vec![
            d(PROD, "us-east-1", true),
            d(PROD, "eu-west-1", true),
            d("111111111111", "us-east-1", true),
            d("333333333333", "us-east-1", false),
        ])
    }
}

#[derive(Default, Clone)]
struct Queue(Arc<Mutex<Vec<DrillRequest>>>);

impl DrillQueue for Queue {
    async fn request_drill(&self, r: &DrillRequest) -> Result<(), Error> {
        self.0.lock().unwrap().push(r.clone());
        Ok(())
    }
}

#[tokio::test]
async fn the_watchdog_drills_each_stackset_account_once_and_pages_each_failure_once() {
    let rig = Rig::new(POLICY);
    let dog = Watchdog::new(
        rig.store.clone(),
        rig.alerts.clone(),
        rig.clock.clone(),
        10 * MINUTE,
    )
    .with_deployments(Listed, 0)
    .with_allowed_accounts(["111111111111".to_owned()].into());
    let queue = Queue::default();
    // One request per account with a stack instance, never an allowed account (nothing
    // is contained there) nor one the organization only expects (no member stack).
    assert_eq!(dog.drill(&queue, "aws").await.unwrap(), [PROD]);
    assert_eq!(
        queue.0.lock().unwrap().as_slice(),
        [DrillRequest {
            account: PROD.into(),
            partition: "aws".into()
        }]
    );
    // The responder's drill fails: the next run pages once, on the alarm channel.
    *rig.contain.refuse.lock().unwrap() = Some("AccessDenied".into());
    let failed = drill(&rig).await;
    // (The listed instances that never spoke page `never_seen` beside it.)
    let unproven = |paged: Vec<Paged>| -> Vec<Paged> {
        paged
            .into_iter()
            .filter(|p| matches!(p, Paged::ContainmentUnproven { .. }))
            .collect()
    };
    rig.clock.set(T0 + 10 * MINUTE);
    let paged = unproven(dog.run(T0 + 11 * MINUTE).await.unwrap());
    assert_eq!(
        paged,
        [Paged::ContainmentUnproven {
            account: PROD.into(),
            reason: failed.reason.clone().unwrap()
        }]
    );
    let sent = rig.alerts.sent();
    let page = sent
        .iter()
        .find(|a| a.kind.as_str() == "containment_unproven")
        .unwrap();
    assert!(page.kind.is_own_alarm());
    assert_eq!(
        unproven(dog.run(T0 + 16 * MINUTE).await.unwrap()),
        [],
        "once"
    );
    // Fixed: the next drill passes and nothing more pages.
    *rig.contain.refuse.lock().unwrap() = None;
    assert!(drill(&rig).await.ok);
    assert_eq!(unproven(dog.run(T0 + 21 * MINUTE).await.unwrap()), []);
    let kinds = rig.alerts.kinds();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == "containment_unproven")
            .count(),
        1
    );
}
