//! The release use case in-process: a contained principal's policies come off through
//! the release port, its keys come back only when asked, the incident closes (the next
//! burst opens a new one), and the `released` alert goes out once.

mod support;

use support::{key, MemoryLift, Rig};
use tripwire_engine::alert::ContainmentState;
use tripwire_pipeline::{Clock, Incidents, Outcome, Release, Released};
use tripwire_synth::Burst;

const POLICY: &str = r#"
threshold = 10
containment = "revoke"
deactivate_keys = true
"#;
const USER: &str = "user/ops@222222222222";
const USER_ARN: &str = "arn:aws:iam::222222222222:user/ops";
const PROD: &str = "222222222222";

/// A rig whose user burst opened an incident that planned to deactivate its key.
async fn contained() -> Rig {
    let rig = Rig::new(POLICY);
    let events = Burst::new(USER, "rel").calls(12).step(1000).envelopes();
    let out = rig.deliver(&events).await;
    assert!(out
        .iter()
        .flatten()
        .flatten()
        .any(|o| matches!(o, Outcome::Opened { .. })));
    let stored = rig.store.current(&key(USER_ARN, PROD)).unwrap();
    assert!(!stored.incident.containment.deactivate_keys.is_empty());
    rig
}

fn release(
    rig: &Rig,
    lift: &MemoryLift,
) -> Release<MemoryLift, support::MemoryStore, support::MemoryAlerts, support::ManualClock> {
    Release::new(
        lift.clone(),
        rig.store.clone(),
        Some(rig.alerts.clone()),
        rig.clock.clone(),
        300_000,
    )
}

#[tokio::test]
async fn a_release_lifts_closes_and_resolves_once() {
    let rig = contained().await;
    let lift = MemoryLift::default();
    let before = rig.alerts.kinds().len();
    let done: Released = release(&rig, &lift)
        .run(PROD, USER_ARN, false)
        .await
        .unwrap();
    assert_eq!(done.removed.len(), 2);
    assert!(done.closed);
    assert!(!done.keys.is_empty());
    assert!(!done.keys_reactivated, "keys stay inactive unless asked");
    assert_eq!(lift.log.lock().unwrap().as_slice(), ["lift ops"]);
    assert_eq!(rig.alerts.kinds()[before..], ["released"]);
    assert_eq!(
        done.alert.as_deref(),
        Some(format!("m-{}", before + 1).as_str())
    );
    let stored = rig
        .store
        .incident(&key(USER_ARN, PROD))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.containment_state, Some(ContainmentState::Released));

    // Run again with --reactivate-keys: the release is repeatable, and now the keys
    // come back.
    let again = release(&rig, &lift)
        .run(PROD, USER_ARN, true)
        .await
        .unwrap();
    assert!(again.keys_reactivated, "asked, the keys come back");
    assert!(lift.log.lock().unwrap()[2].starts_with("reactivate ops AKIA"));
}

#[tokio::test]
async fn a_failed_lift_leaves_the_incident_open_for_a_second_try() {
    let rig = contained().await;
    let lift = MemoryLift {
        fail: true,
        ..MemoryLift::default()
    };
    let before = rig.alerts.kinds().len();
    let err = release(&rig, &lift)
        .run(PROD, USER_ARN, true)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("AccessDenied"), "{err}");
    let stored = rig.store.current(&key(USER_ARN, PROD)).unwrap();
    assert_eq!(
        stored.containment_state,
        Some(ContainmentState::Releasing),
        "marked before IAM was touched"
    );
    assert_eq!(rig.alerts.kinds().len(), before, "no released alert");
    // A responder retry racing the release writes nothing back.
    let req = rig.queue.queued()[0].clone();
    let applied = rig.contain.applied().len();
    let out = rig.responder.handle(req).await.unwrap();
    assert!(format!("{out:?}").contains("is being released"), "{out:?}");
    assert_eq!(rig.contain.applied().len(), applied);
    assert_eq!(
        rig.alerts.kinds().len(),
        before,
        "the refused retry pages no one: the release is on its way"
    );
    // The second try ends released.
    let done = release(&rig, &MemoryLift::default())
        .run(PROD, USER_ARN, false)
        .await
        .unwrap();
    assert!(done.closed);
    let stored = rig
        .store
        .incident(&key(USER_ARN, PROD))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.containment_state, Some(ContainmentState::Released));
}

#[tokio::test]
async fn nothing_recorded_is_no_page_and_a_bad_arn_is_refused_before_any_call() {
    let rig = Rig::new(POLICY);
    let lift = MemoryLift::default();
    let done = release(&rig, &lift)
        .run(PROD, USER_ARN, false)
        .await
        .unwrap();
    assert!(!done.closed);
    assert!(done.alert.is_none());
    assert!(rig.alerts.kinds().is_empty());
    assert_eq!(
        lift.log.lock().unwrap().len(),
        1,
        "the policies still come off"
    );
    let err = release(&rig, &lift)
        .run(PROD, "arn:aws:s3:::bucket", false)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("not an IAM ARN") || err.to_string().contains("neither"),
        "{err}"
    );
    assert_eq!(
        lift.log.lock().unwrap().len(),
        1,
        "a bad ARN reaches no port"
    );
}

#[tokio::test]
async fn a_release_closes_the_principals_incidents_of_every_type() {
    let rig = contained().await;
    // The same user also deleted three DB instances: a second incident, of its own type.
    let caller = tripwire_synth::Caller::parse(USER).unwrap();
    let w = tripwire_engine::catalogue::WATCHED
        .iter()
        .find(|w| w.event_name == "DeleteDBInstance")
        .unwrap();
    let deletions: Vec<serde_json::Value> = (0..3)
        .map(|k| {
            let r = tripwire_synth::destroy_record(
                w,
                &caller,
                PROD,
                "us-east-1",
                support::T0 + 20_000 + k * 1000,
                &format!("db-{k}"),
                &format!("rel-db-{k}"),
                None,
            );
            tripwire_synth::eventbridge_envelope(&r, &format!("eb-rel-db-{k}"))
        })
        .collect();
    for r in rig.deliver(&deletions).await {
        r.expect("delivered");
    }
    let db = tripwire_engine::Key::of(
        tripwire_engine::window::Lane::Burst,
        USER_ARN,
        PROD,
        "rds:db",
    );
    assert!(rig.store.current(&db).is_some(), "the DB incident opened");
    let before = rig.alerts.kinds().len();
    let done = release(&rig, &MemoryLift::default())
        .run(PROD, USER_ARN, false)
        .await
        .unwrap();
    assert!(done.closed);
    assert_eq!(rig.alerts.kinds()[before..], ["released", "released"]);
    for k in [key(USER_ARN, PROD), db] {
        let stored = rig.store.incident(&k).await.unwrap().unwrap();
        assert_eq!(
            stored.containment_state,
            Some(ContainmentState::Released),
            "{k:?}"
        );
    }
}

#[tokio::test]
async fn release_waits_for_a_responder_putting_containment_in_place_and_then_nothing_is_put_back() {
    let rig = contained().await;
    let k = key(USER_ARN, PROD);
    let id = rig.store.current(&k).unwrap().open.id;
    // A responder retry is attaching policies: it holds the incident.
    let now = rig.clock.now();
    assert!(rig
        .store
        .hold_for_containment(&k, &id, now + tripwire_pipeline::responder::HOLD_MS)
        .await
        .unwrap());
    let lift = MemoryLift::default();
    let releasing = {
        let (rig_store, alerts, clock, lift) = (
            rig.store.clone(),
            rig.alerts.clone(),
            rig.clock.clone(),
            lift.clone(),
        );
        tokio::spawn(async move {
            Release::new(lift, rig_store, Some(alerts), clock, 300_000)
                .run(PROD, USER_ARN, false)
                .await
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    // Release has not marked the incident, and has touched nothing in IAM.
    assert!(lift.log.lock().unwrap().is_empty());
    assert_ne!(
        rig.store.current(&k).unwrap().containment_state,
        Some(ContainmentState::Releasing)
    );
    // The responder finishes and records what it put in place, which ends its hold.
    assert!(rig
        .store
        .record_containment(&k, &id, ContainmentState::Contained, "in place")
        .await
        .unwrap());
    let done = releasing.await.unwrap().unwrap();
    assert!(done.closed);
    assert_eq!(lift.log.lock().unwrap().as_slice(), ["lift ops"]);
    // After the mark nothing may hold it or record over it: a later retry is refused
    // before anything is put in place.
    assert!(!rig
        .store
        .hold_for_containment(&k, &id, now + 1)
        .await
        .unwrap());
    assert!(!rig
        .store
        .record_containment(&k, &id, ContainmentState::Contained, "late")
        .await
        .unwrap());
    assert_eq!(
        rig.store.current(&k).unwrap().containment_state,
        Some(ContainmentState::Released)
    );
}

#[tokio::test]
async fn a_hold_a_responder_never_ended_expires() {
    let rig = contained().await;
    let k = key(USER_ARN, PROD);
    let id = rig.store.current(&k).unwrap().open.id;
    // A responder that died holding the incident: once its hold has passed, release
    // goes ahead.
    let now = rig.clock.now();
    assert!(rig
        .store
        .hold_for_containment(&k, &id, now + 1_000)
        .await
        .unwrap());
    rig.clock.set(now + 2_000);
    let done = release(&rig, &MemoryLift::default())
        .run(PROD, USER_ARN, false)
        .await
        .unwrap();
    assert!(done.closed);
}
