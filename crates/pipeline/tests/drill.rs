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
    let run = "2026-12-07T00:00:00Z";
    assert_eq!(dog.drill(&queue, "aws", Some(run)).await.unwrap(), [PROD]);
    assert_eq!(
        queue.0.lock().unwrap().as_slice(),
        [DrillRequest {
            account: PROD.into(),
            partition: "aws".into(),
            run: Some(run.into()),
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

#[tokio::test]
async fn where_a_brake_is_deployed_the_drill_checks_it_would_attach_and_never_attaches_it() {
    use tripwire_engine::containment::account_brake_scp;
    use tripwire_engine::drill::BrakeReady;
    use tripwire_engine::names::ACCOUNT_BRAKE_SCP;
    let policy = format!("account_brake_policy = \"p-brake0001\"\n{POLICY}");
    let rig = Rig::new(&policy);
    let ours = account_brake_scp(&tripwire_engine::Policy::from_toml(&policy).unwrap()).unwrap();
    let hold = |content: &str| {
        rig.organizations.policies.lock().unwrap().insert(
            "p-brake0001".into(),
            (ACCOUNT_BRAKE_SCP.into(), content.to_owned()),
        );
    };
    hold(&ours);
    let d = drill(&rig).await;
    assert_eq!(
        (d.ok, d.brake),
        (true, Some(BrakeReady::Attachable)),
        "{d:?}"
    );
    assert!(
        rig.organizations.attached_to(PROD).is_empty(),
        "a drill never brakes an account"
    );
    // The brake's content drifted from the policy (the delegation stack was not
    // redeployed): the drill fails with the reason an incident's page would give, ahead
    // of the incident, and the role's own drill still passed.
    hold("{\"Version\": \"2012-10-17\", \"Statement\": []}");
    let d = drill(&rig).await;
    assert_eq!((d.ok, d.brake), (false, Some(BrakeReady::Refused)));
    let reason = d.reason.unwrap();
    assert!(
        reason.starts_with("the account brake could not be attached: ")
            && reason.contains("not the policy's brake"),
        "{reason}"
    );
    assert_eq!(
        rig.contain.applied().len(),
        2,
        "the role was drilled both times"
    );
    // Both fail: both reasons, the role's first.
    *rig.contain.refuse.lock().unwrap() = Some("AccessDenied".into());
    *rig.organizations.refuse.lock().unwrap() = Some("AccessDeniedException".into());
    let reason = drill(&rig).await.reason.unwrap();
    assert!(
        reason.starts_with("containment did not land: AccessDenied; ")
            && reason.ends_with("the account brake could not be checked: AccessDeniedException"),
        "{reason}"
    );
    // No brake deployed: nothing of Organizations is read, and nothing recorded of it.
    let rig = Rig::new(POLICY);
    *rig.organizations.refuse.lock().unwrap() = Some("never asked".into());
    let d = drill(&rig).await;
    assert_eq!((d.ok, d.brake), (true, None));
}

#[tokio::test]
async fn a_scheduled_runs_drill_happens_once_per_account_however_often_it_is_asked() {
    let rig = Rig::new(POLICY);
    let ask = |run: &str| {
        let event = match run {
            "" => r#"{"drill": {"account": "222222222222"}}"#.to_owned(),
            run => format!(r#"{{"drill": {{"account": "222222222222", "run": "{run}"}}}}"#),
        };
        let responder = &rig.responder;
        async move { responder.handle_event(&event).await }
    };
    let run = "2026-12-07T00:00:00Z";
    assert!(matches!(
        ask(run).await.unwrap(),
        Some(ResponderOutcome::Drilled { .. })
    ));
    // The schedule retried, or Lambda redelivered: the run's drill is done.
    assert_eq!(
        ask(run).await.unwrap(),
        Some(ResponderOutcome::DrillDuplicate {
            account: PROD.into(),
            run: run.into()
        })
    );
    assert_eq!(rig.contain.applied().len(), 1, "drilled once");
    // The next week's run drills; a drill asked by hand (no run) always does.
    ask("2026-12-14T00:00:00Z").await.unwrap();
    ask("").await.unwrap();
    ask("").await.unwrap();
    assert_eq!(rig.contain.applied().len(), 4);
    // A failed attempt gives its claim up: Lambda's retry drills.
    let rig = Rig::new(POLICY);
    rig.store.faults.fail_next("record_drill", 1);
    let ask = |run: &str| {
        let event = format!(r#"{{"drill": {{"account": "222222222222", "run": "{run}"}}}}"#);
        let responder = &rig.responder;
        async move { responder.handle_event(&event).await }
    };
    assert!(ask(run).await.is_err());
    assert!(matches!(
        ask(run).await.unwrap(),
        Some(ResponderOutcome::Drilled { .. })
    ));
    assert_eq!(rig.store.drills().await.unwrap().len(), 1);
}
