//! The responder pipeline in-process, on the in-memory ports: it plans from the recorded
//! incident and its own policy, refuses every request that does not name a recorded,
//! containable incident, braked alone when it names no single culprit, and pages once
//! per outcome.

mod support;

use support::{key, Rig, OWN_ROLE, POLICY, T0};
use tripwire_engine::alert::ContainmentState;
use tripwire_engine::containment::{Action, ContainmentRequest, Scope};
use tripwire_engine::names::{BRAKE_POLICY, SCOPE_POLICY};
use tripwire_engine::Target;
use tripwire_pipeline::ResponderOutcome;
use tripwire_synth::Burst;

const PROD: &str = "222222222222";

/// Drives `burst` through the detector and returns the request it queued.
async fn request_of(rig: &Rig, burst: Burst) -> ContainmentRequest {
    for r in rig.deliver(&burst.envelopes()).await {
        r.expect("delivered");
    }
    let mut queued = rig.queue.queued();
    assert_eq!(queued.len(), 1, "one request");
    queued.remove(0)
}

async fn request_for(rig: &Rig, who: &str) -> ContainmentRequest {
    request_of(rig, Burst::new(who, "resp").account(PROD).calls(10)).await
}

fn refused(out: &ResponderOutcome) -> &str {
    match out {
        ResponderOutcome::Refused { reason, .. } => reason,
        o => panic!("not refused: {o:?}"),
    }
}

#[tokio::test]
async fn the_request_names_the_incident_only_and_the_responder_plans_from_the_table() {
    let rig = Rig::new(POLICY);
    let req = request_for(&rig, "role/vendor/cleanup-task@222222222222").await;
    // What the detector sends: nothing a forger could use to say what to write.
    let wire = serde_json::to_value(&req).unwrap();
    let mut fields: Vec<&str> = wire
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        ["account", "incident_id", "principal_arn", "resource_type"]
    );
    let out = rig.responder.handle(req.clone()).await.unwrap();
    assert_eq!(
        out,
        ResponderOutcome::Contained {
            incident: req.incident_id.clone(),
            policies: vec![BRAKE_POLICY.into(), SCOPE_POLICY.into()],
        }
    );
    // One stable session name made every call: the session alone is denied everything.
    let applied = rig.contain.applied();
    assert_eq!(applied[0].scope(), Some(Scope::Session));
    let c = applied[0].condition().unwrap();
    assert_eq!(
        (c.key.as_str(), c.values.as_slice()),
        ("aws:userid", &["AROA222222222222:session".to_string()][..])
    );
    let k = key(&req.principal_arn, PROD);
    assert_eq!(
        rig.store.containment(&k).unwrap().0,
        ContainmentState::Contained
    );
    assert_eq!(rig.alerts.kinds(), ["detected", "contained"]);
    // Lambda delivers an asynchronous invoke at least once: the repeat re-applies the
    // (idempotent) policies and pages nobody.
    let again = rig.responder.handle(req).await.unwrap();
    assert!(matches!(again, ResponderOutcome::Contained { .. }));
    assert_eq!(rig.contain.applied().len(), 2);
    assert_eq!(rig.alerts.kinds(), ["detected", "contained"]);
}

#[tokio::test]
async fn without_one_culprit_the_role_is_braked_and_nothing_names_a_session() {
    let rig = Rig::new(POLICY);
    let burst = Burst::new("role/KarpenterController@222222222222", "k")
        .calls(10)
        .sessions(&["a", "b"]);
    let req = request_of(&rig, burst).await;
    rig.clock.set(T0 + 90_000);
    let out = rig.responder.handle(req).await.unwrap();
    assert!(
        matches!(&out, ResponderOutcome::Contained { policies, .. } if policies == &["tripwire-brake"]),
        "{out:?}"
    );
    let plan = &rig.contain.applied()[0];
    assert_eq!(
        (plan.action, plan.scope()),
        (Action::Brake, Some(Scope::Role))
    );
    assert!(plan.tags.is_empty() && plan.condition().is_none());
    assert!(
        plan.reason.contains("2 sessions made the counted calls"),
        "{}",
        plan.reason
    );
}

#[tokio::test]
async fn iam_users_and_token_brokers_get_the_brake() {
    for (who, name) in [
        ("user/ops/alice@222222222222", "alice"),
        (
            "federated/session-7+user/brokers/token-broker@222222222222",
            "token-broker",
        ),
    ] {
        let rig = Rig::new(POLICY);
        let req = request_for(&rig, who).await;
        let out = rig.responder.handle(req).await.unwrap();
        assert!(
            matches!(&out, ResponderOutcome::Contained { policies, .. } if policies == &["tripwire-brake"]),
            "{who}: {out:?}"
        );
        let plan = &rig.contain.applied()[0];
        assert_eq!(plan.target(), Some(&Target::User(name.into())), "{who}");
        assert_eq!(plan.scope(), Some(Scope::User), "{who}");
    }
}

#[tokio::test]
async fn forged_replayed_and_released_requests_contain_no_one() {
    let rig = Rig::new(POLICY);
    let good = request_for(&rig, "role/vendor/cleanup-task@222222222222").await;
    let forged = |f: &dyn Fn(&mut ContainmentRequest)| {
        let mut r = good.clone();
        f(&mut r);
        r
    };
    let cases: Vec<(&str, ContainmentRequest, &str)> = vec![
        (
            "unrecorded incident",
            forged(&|r| r.incident_id = "inc-0000000000000000".into()),
            "no incident inc-0000000000000000 is recorded",
        ),
        (
            "someone else under a real ID",
            forged(&|r| r.principal_arn = "arn:aws:iam::222222222222:role/app".into()),
            "is recorded for",
        ),
        (
            "another account",
            forged(&|r| r.account = "333333333333".into()),
            "is recorded for",
        ),
    ];
    for (name, req, reason) in cases {
        let out = rig.responder.handle(req).await.unwrap();
        assert!(refused(&out).contains(reason), "{name}: {out:?}");
    }
    assert!(rig.contain.applied().is_empty(), "a refusal writes nothing");
    // Nothing recorded, so no page: there is no incident to page about.
    assert_eq!(rig.alerts.kinds(), ["detected"]);
    // A day later the same, real request is a replay.
    rig.clock.set(T0 + 25 * 3_600_000);
    let out = rig.responder.handle(good.clone()).await.unwrap();
    assert!(
        refused(&out).contains("a request for it is a replay"),
        "{out:?}"
    );
    // Two hours on, within a day of the opening but past the burst's own window plus
    // max_delivery_delay: the burst's times decide, not the incident's opening.
    rig.clock.set(T0 + 2 * 3_600_000);
    let out = rig.responder.handle(good.clone()).await.unwrap();
    assert!(
        refused(&out).contains("past its window plus max_delivery_delay"),
        "{out:?}"
    );
    // Released, it is a replay whenever it comes.
    rig.clock.set(T0 + 60_000);
    rig.store.release(&key(&good.principal_arn, PROD));
    let out = rig.responder.handle(good).await.unwrap();
    assert!(refused(&out).contains("was released"), "{out:?}");
    assert!(rig.contain.applied().is_empty());
}

#[tokio::test]
async fn the_responders_own_policy_decides_and_off_contains_no_one() {
    // The detector planned a revoke; the responder's configuration says off.
    let rig = Rig::with_responder_policy(POLICY, &POLICY.replace("\"revoke\"", "\"off\""));
    let req = request_for(&rig, "role/vendor/cleanup-task@222222222222").await;
    let out = rig.responder.handle(req).await.unwrap();
    assert!(refused(&out).contains("containment is off"), "{out:?}");
    assert!(rig.contain.applied().is_empty());
    // The detector in off mode records no plan; a request for its incident is refused.
    let rig = Rig::new(&POLICY.replace("\"revoke\"", "\"off\""));
    for r in rig
        .deliver(
            &Burst::new("role/app@222222222222", "off")
                .calls(10)
                .envelopes(),
        )
        .await
    {
        r.unwrap();
    }
    assert!(rig.queue.queued().is_empty(), "off mode asks for nothing");
    let k = key("arn:aws:iam::222222222222:role/app", PROD);
    let stored = rig.store.current(&k).unwrap();
    let req = ContainmentRequest {
        incident_id: stored.open.id,
        principal_arn: stored
            .incident
            .principal_arn()
            .unwrap_or_default()
            .to_owned(),
        account: PROD.into(),
        resource_type: stored.incident.resource_type.clone(),
    };
    let out = rig.responder.handle(req).await.unwrap();
    assert!(
        refused(&out).contains("the detector decided not to contain"),
        "{out:?}"
    );
    assert!(rig.contain.applied().is_empty());
}

#[tokio::test]
async fn protected_own_and_member_roles_are_never_contained_and_look_alikes_are() {
    let cases = [
        (
            "role/BreakGlassAdmin@222222222222",
            Some("protected principal"),
        ),
        (
            "role/tripwire-containment@222222222222",
            Some("member roles"),
        ),
        ("role/tripwire-release@222222222222", Some("member roles")),
        (
            "role/tripwire-responder@123456789012",
            Some("the tripwire's own roles"),
        ),
        // Only the exact ARN is the tripwire's: a role named like it is contained.
        ("role/tripwire-responder@222222222222", None),
        ("role/tripwire-anything@222222222222", None),
    ];
    for (who, refusal) in cases {
        let rig = Rig::new(POLICY);
        let account = who.rsplit('@').next().unwrap();
        for r in rig
            .deliver(
                &Burst::new(who, "guard")
                    .account(account)
                    .calls(10)
                    .envelopes(),
            )
            .await
        {
            r.unwrap();
        }
        let name = who.split_once('/').unwrap().1.split('@').next().unwrap();
        let arn = format!("arn:aws:iam::{account}:role/{name}");
        let stored = rig.store.current(&key(&arn, account)).expect("an incident");
        let req = ContainmentRequest {
            incident_id: stored.open.id,
            principal_arn: arn,
            account: account.into(),
            resource_type: "ec2:instance".into(),
        };
        let out = rig.responder.handle(req).await.unwrap();
        match refusal {
            Some(reason) => {
                assert!(refused(&out).contains(reason), "{who}: {out:?}");
                assert!(rig.contain.applied().is_empty(), "{who}");
            }
            None => assert!(
                matches!(out, ResponderOutcome::Contained { .. }),
                "{who}: {out:?}"
            ),
        }
    }
    assert!(OWN_ROLE.ends_with("role/tripwire-responder"));
}

#[tokio::test]
async fn an_iam_refusal_is_a_failure_paged_once_and_a_transient_error_is_retried() {
    let rig = Rig::new(POLICY);
    let req = request_for(&rig, "role/vendor/cleanup-task@222222222222").await;
    let k = key(&req.principal_arn, PROD);
    // A transient failure returns the error, so Lambda retries; nothing is recorded.
    rig.contain.faults.fail_next("apply", 1);
    assert!(rig.responder.handle(req.clone()).await.is_err());
    assert_eq!(
        rig.store.containment(&k).unwrap().0,
        ContainmentState::Pending
    );
    assert_eq!(rig.alerts.kinds(), ["detected"]);
    // IAM refuses: a failure, recorded and paged, and a repeat does not page again.
    *rig.contain.refuse.lock().unwrap() = Some("the role no longer exists (NoSuchEntity)".into());
    for _ in 0..2 {
        let out = rig.responder.handle(req.clone()).await.unwrap();
        assert!(
            matches!(&out, ResponderOutcome::Failed { reason, .. } if reason.contains("NoSuchEntity"))
        );
    }
    let (state, detail) = rig.store.containment(&k).unwrap();
    assert_eq!(
        (state, detail.as_deref()),
        (
            ContainmentState::Failed,
            Some("the role no longer exists (NoSuchEntity)")
        )
    );
    assert_eq!(rig.alerts.kinds(), ["detected", "containment_failed"]);
    // Fixed by hand, the next delivery contains, and that outcome pages.
    *rig.contain.refuse.lock().unwrap() = None;
    assert!(matches!(
        rig.responder.handle(req).await.unwrap(),
        ResponderOutcome::Contained { .. }
    ));
    assert_eq!(
        rig.alerts.kinds(),
        ["detected", "containment_failed", "contained"]
    );
}

#[tokio::test]
async fn a_failed_page_is_retried_not_lost() {
    let rig = Rig::new(POLICY);
    let req = request_for(&rig, "role/vendor/cleanup-task@222222222222").await;
    rig.alerts.faults.fail_next("publish", 1);
    assert!(rig.responder.handle(req.clone()).await.is_err());
    assert_eq!(rig.alerts.kinds(), ["detected"]);
    rig.responder.handle(req).await.unwrap();
    assert_eq!(rig.alerts.kinds(), ["detected", "contained"]);
}

#[tokio::test]
async fn containment_done_as_a_later_burst_replaces_the_incident_still_pages_once() {
    let rig = Rig::new(POLICY);
    let req = request_for(&rig, "role/vendor/cleanup-task@222222222222").await;
    let k = key(&req.principal_arn, PROD);
    let store = rig.store.clone();
    let later = k.clone();
    *rig.contain.during_apply.lock().unwrap() =
        Some(Box::new(move || store.replace(&later, "inc-later")));
    let out = rig.responder.handle(req.clone()).await.unwrap();
    assert!(matches!(out, ResponderOutcome::Contained { .. }), "{out:?}");
    // The policies are on the principal: the replaced incident's page says so.
    assert_eq!(rig.alerts.kinds(), ["detected", "contained"]);
    // The replacement's own state is untouched, and a redelivery pages no one.
    assert_eq!(
        rig.store.containment(&k).unwrap().0,
        ContainmentState::Pending
    );
    let again = rig.responder.handle(req).await.unwrap();
    assert!(refused(&again).contains("no incident"), "{again:?}");
    assert_eq!(rig.alerts.kinds(), ["detected", "contained"]);
}

#[tokio::test]
async fn containment_done_as_the_incident_is_released_pages_nothing_more() {
    let rig = Rig::new(POLICY);
    let req = request_for(&rig, "role/vendor/cleanup-task@222222222222").await;
    let k = key(&req.principal_arn, PROD);
    let store = rig.store.clone();
    *rig.contain.during_apply.lock().unwrap() = Some(Box::new(move || store.release(&k)));
    let out = rig.responder.handle(req).await.unwrap();
    assert!(matches!(out, ResponderOutcome::Contained { .. }), "{out:?}");
    // The release is an operator's decision, on its own page.
    assert_eq!(rig.alerts.kinds(), ["detected"]);
}

#[tokio::test]
async fn an_event_that_is_not_a_containment_request_is_ignored() {
    let rig = Rig::new(POLICY);
    // The last is the old request shape, which carried the documents to write.
    for event in [
        "{}",
        "[]",
        "not json",
        r#"{"incident":{},"plan":{"action":"quarantine"}}"#,
    ] {
        assert_eq!(
            rig.responder.handle_event(event).await.unwrap(),
            None,
            "{event}"
        );
    }
    assert!(rig.contain.applied().is_empty());
    let good = request_for(&rig, "role/vendor/cleanup-task@222222222222").await;
    let out = rig
        .responder
        .handle_event(&serde_json::to_string(&good).unwrap())
        .await
        .unwrap();
    assert!(matches!(out, Some(ResponderOutcome::Contained { .. })));
}

#[tokio::test]
async fn a_path_the_records_omitted_is_confirmed_with_iam_and_a_protected_role_is_refused() {
    let rig = Rig::new(&POLICY.replace(
        "role/BreakGlass*\"]",
        "role/BreakGlass*\", \"arn:aws:iam::*:role/breakglass/*\"]",
    ));
    // The records carry no session issuer, so no path: the incident names `role/oncall`.
    let req = request_for(&rig, "session/oncall@222222222222").await;
    assert_eq!(req.principal_arn, "arn:aws:iam::222222222222:role/oncall");
    rig.contain.paths.lock().unwrap().insert(
        "arn:aws:iam::222222222222:role/oncall".into(),
        "arn:aws:iam::222222222222:role/breakglass/oncall".into(),
    );
    let out = rig.responder.handle(req).await.unwrap();
    assert!(
        refused(&out).contains("breakglass/oncall is a protected principal"),
        "{out:?}"
    );
    assert!(rig.contain.applied().is_empty(), "nothing written");
}

/// `n` deletions of DB instances by `who`, a minute apart, as EventBridge delivers them.
fn db_deletions(who: &str, n: i64) -> Vec<serde_json::Value> {
    let caller = tripwire_synth::Caller::parse(who).unwrap();
    let w = tripwire_engine::catalogue::WATCHED
        .iter()
        .find(|w| w.event_name == "DeleteDBInstance")
        .unwrap();
    (0..n)
        .map(|k| {
            let r = tripwire_synth::destroy_record(
                w,
                &caller,
                PROD,
                "us-east-1",
                T0 + k * 60_000,
                &format!("db-{k}"),
                &format!("del-db-{k}"),
                None,
            );
            tripwire_synth::eventbridge_envelope(&r, &format!("eb-db-{k}"))
        })
        .collect()
}

#[tokio::test]
async fn a_burst_through_another_door_is_contained_under_its_type() {
    let rig = Rig::new(POLICY);
    for r in rig.deliver(&db_deletions("role/app@222222222222", 3)).await {
        r.expect("delivered");
    }
    let queued = rig.queue.queued();
    assert_eq!(queued.len(), 1, "rds:db pages at three");
    let req = queued[0].clone();
    assert_eq!(req.resource_type, "rds:db");
    // The instances' key holds nothing: the incident is the type's.
    let arn = "arn:aws:iam::222222222222:role/app";
    assert!(rig.store.current(&key(arn, PROD)).is_none());
    let out = rig.responder.handle(req.clone()).await.unwrap();
    assert!(matches!(out, ResponderOutcome::Contained { .. }), "{out:?}");
    let stored = rig.store.current(&req.key()).unwrap();
    assert_eq!(stored.incident.resource_type, "rds:db");
    assert_eq!(stored.incident.instances(), 3);
    assert_eq!(stored.containment_state, Some(ContainmentState::Contained));
    // The page names what was destroyed.
    assert!(rig
        .alerts
        .sent()
        .iter()
        .any(|a| a.subject.contains("3 DB instances deleted by role/app")));
    // A request naming the instances' key for the same incident finds nothing to act on.
    let wrong = ContainmentRequest {
        resource_type: "ec2:instance".into(),
        ..req
    };
    assert!(!refused(&rig.responder.handle(wrong).await.unwrap()).is_empty());
}
