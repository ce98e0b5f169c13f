//! The responder pipeline in-process, on the in-memory ports: what it contains, every
//! refusal, IAM's refusals, retries, and a repeated request paging once.

mod support;

use support::{key, Rig, POLICY};
use tripwire_engine::alert::ContainmentState;
use tripwire_engine::containment::{ContainmentRequest, InlinePolicy};
use tripwire_engine::Target;
use tripwire_pipeline::ResponderOutcome;
use tripwire_synth::Burst;

const PROD: &str = "222222222222";

/// Drives a burst by `who` through the detector and returns the request it queued.
async fn request_for(rig: &Rig, who: &str) -> ContainmentRequest {
    let events = Burst::new(who, "resp").account(PROD).calls(10).envelopes();
    for r in rig.deliver(&events).await {
        r.expect("delivered");
    }
    let mut queued = rig.queue.queued();
    assert_eq!(queued.len(), 1, "{who}: one request");
    queued.remove(0)
}

#[tokio::test]
async fn a_recorded_incident_is_contained_recorded_and_paged_once() {
    let rig = Rig::new(POLICY);
    let req = request_for(&rig, "role/vendor/cleanup-task@222222222222").await;
    let out = rig.responder.handle(req.clone()).await.unwrap();
    assert_eq!(
        out,
        ResponderOutcome::Contained {
            incident: req.incident.id.clone(),
            policies: vec![
                "tripwire-revoke-older-sessions".into(),
                "tripwire-deny-actions".into()
            ],
        }
    );
    assert_eq!(rig.contain.applied(), std::slice::from_ref(&req.plan));
    let k = key(&req.incident.principal_arn, PROD);
    assert_eq!(
        rig.store.containment(&k).unwrap().0,
        ContainmentState::Contained
    );
    assert_eq!(rig.alerts.kinds(), ["detected", "contained"]);
    // Lambda delivers an asynchronous invoke at least once: the repeat re-applies the
    // (idempotent) policies and pages nobody.
    let again = rig.responder.handle(req.clone()).await.unwrap();
    assert!(matches!(again, ResponderOutcome::Contained { .. }));
    assert_eq!(rig.contain.applied().len(), 2);
    assert_eq!(rig.alerts.kinds(), ["detected", "contained"]);
}

#[tokio::test]
async fn an_iam_user_gets_the_action_deny_only() {
    let rig = Rig::new(POLICY);
    let req = request_for(&rig, "user/ops/alice@222222222222").await;
    assert_eq!(req.plan.target, Some(Target::User("alice".into())));
    let out = rig.responder.handle(req).await.unwrap();
    assert!(
        matches!(&out, ResponderOutcome::Contained { policies, .. } if policies == &["tripwire-deny-actions"]),
        "{out:?}"
    );
}

#[tokio::test]
async fn every_forged_or_inconsistent_request_is_refused_and_nothing_is_written() {
    let rig = Rig::new(POLICY);
    let good = request_for(&rig, "role/vendor/cleanup-task@222222222222").await;
    let mut cases: Vec<(&str, ContainmentRequest, &str)> = Vec::new();
    let mut unrecorded = good.clone();
    unrecorded.incident.id = "inc-0000000000000000".into();
    cases.push((
        "unrecorded incident",
        unrecorded,
        "no incident inc-0000000000000000 is recorded",
    ));
    let mut other_account = good.clone();
    other_account.plan.target_account = Some("333333333333".into());
    cases.push(("target account", other_account, "does not match"));
    let mut other_name = good.clone();
    other_name.plan.target = Some(Target::Role("admin".into()));
    cases.push(("target name", other_name, "does not match"));
    let mut user_not_role = good.clone();
    user_not_role.plan.target = Some(Target::User("cleanup-task".into()));
    cases.push(("user for a role", user_not_role, "does not match"));
    let mut no_target = good.clone();
    no_target.plan.target = None;
    cases.push(("no target", no_target, "names no role or user"));
    let mut other_principal = good.clone();
    other_principal.plan.principal_arn = Some("arn:aws:iam::222222222222:role/app".into());
    cases.push((
        "plan for someone else",
        other_principal,
        "is not the incident's",
    ));
    let mut grants = good.clone();
    grants.plan.policies[1].document =
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#
            .into();
    cases.push(("grants", grants, "grants something"));
    let mut foreign = good.clone();
    foreign.plan.policies.push(InlinePolicy {
        name: "AdministratorAccess".into(),
        document: good.plan.policies[0].document.clone(),
    });
    cases.push((
        "foreign policy name",
        foreign,
        "is not a tripwire policy name",
    ));
    let mut empty = good.clone();
    empty.plan.policies.clear();
    cases.push(("no policy", empty, "carries no policy"));
    let mut none = good.clone();
    none.plan.action = tripwire_engine::Action::None;
    cases.push(("no action", none, "asks for no containment"));
    for (name, req, reason) in cases {
        match rig.responder.handle(req).await.unwrap() {
            ResponderOutcome::Refused { reason: got, .. } => {
                assert!(got.contains(reason), "{name}: {got}")
            }
            o => panic!("{name}: {o:?}"),
        }
    }
    assert!(rig.contain.applied().is_empty(), "a refusal writes nothing");
    let k = key(&good.incident.principal_arn, PROD);
    assert_eq!(
        rig.store.containment(&k).unwrap().0,
        ContainmentState::Refused
    );
    // Refused the same way each time: one page for the recorded incident's refusal,
    // one for the unrecorded request (it has no incident to remember the page on).
    assert_eq!(
        rig.alerts.kinds(),
        ["detected", "containment_failed", "containment_failed"]
    );
}

#[tokio::test]
async fn protected_own_and_containment_roles_are_never_contained() {
    for name in [
        "BreakGlassAdmin",
        "tripwire-detector",
        "tripwire-containment",
    ] {
        let rig = Rig::new(POLICY);
        let events = Burst::new(&format!("role/{name}@{PROD}"), "guard")
            .calls(10)
            .envelopes();
        rig.deliver(&events).await;
        let arn = format!("arn:aws:iam::{PROD}:role/{name}");
        let stored = rig.store.current(&key(&arn, PROD)).expect("an incident");
        // The detector plans (or not) by the policy; the responder re-checks whatever
        // it is sent, so a forged revoke plan for the same principal is refused too.
        let principal = tripwire_engine::Principal {
            arn,
            kind: tripwire_engine::PrincipalKind::Role {
                name: name.into(),
                path: "/".into(),
                path_known: true,
            },
            account: Some(PROD.into()),
            partition: "aws".into(),
            anomaly: None,
        };
        let revoke = tripwire_engine::Policy::from_toml("containment = \"revoke\"").unwrap();
        let req = ContainmentRequest {
            incident: stored.incident.clone(),
            plan: tripwire_engine::containment::plan(&revoke, &principal, 0),
        };
        let out = rig.responder.handle(req).await.unwrap();
        assert!(
            matches!(out, ResponderOutcome::Refused { .. }),
            "{name}: {out:?}"
        );
        assert!(rig.contain.applied().is_empty(), "{name}");
    }
}

#[tokio::test]
async fn an_iam_refusal_is_a_failure_paged_once_and_a_transient_error_is_retried() {
    let rig = Rig::new(POLICY);
    let req = request_for(&rig, "role/vendor/cleanup-task@222222222222").await;
    let k = key(&req.incident.principal_arn, PROD);
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
async fn an_event_that_is_not_a_containment_request_is_ignored() {
    let rig = Rig::new(POLICY);
    for event in ["{}", "[]", "not json", r#"{"incident":{},"plan":{}}"#] {
        assert_eq!(
            rig.responder.handle_event(event).await.unwrap(),
            None,
            "{event}"
        );
    }
    // A plan that names both a role and a user is not a plan.
    let good = request_for(&rig, "role/vendor/cleanup-task@222222222222").await;
    let mut both: serde_json::Value = serde_json::to_value(&good).unwrap();
    both["plan"]["user_name"] = "alice".into();
    assert_eq!(
        rig.responder.handle_event(&both.to_string()).await.unwrap(),
        None
    );
    assert!(rig.contain.applied().is_empty());
    assert_eq!(rig.alerts.kinds(), ["detected"]);
    // The same request unforged is contained.
    let out = rig
        .responder
        .handle_event(&serde_json::to_string(&good).unwrap())
        .await
        .unwrap();
    assert!(matches!(out, Some(ResponderOutcome::Contained { .. })));
}

#[tokio::test]
async fn a_token_brokers_sessions_are_contained_as_the_user_that_issued_them() {
    let rig = Rig::new(POLICY);
    let req = request_for(
        &rig,
        "federated/session-7+user/brokers/token-broker@222222222222",
    )
    .await;
    assert_eq!(
        req.incident.principal_arn,
        "arn:aws:iam::222222222222:user/brokers/token-broker"
    );
    assert_eq!(req.plan.target, Some(Target::User("token-broker".into())));
    let out = rig.responder.handle(req).await.unwrap();
    assert!(
        matches!(&out, ResponderOutcome::Contained { policies, .. } if policies == &["tripwire-deny-actions"]),
        "{out:?}"
    );
}

#[tokio::test]
async fn a_path_the_records_omitted_is_confirmed_with_iam_and_a_protected_role_is_refused() {
    let rig = Rig::new(&POLICY.replace(
        "role/BreakGlass*\"]",
        "role/BreakGlass*\", \"arn:aws:iam::*:role/breakglass/*\"]",
    ));
    // The records carry no session issuer, so no path: the plan names `role/oncall`.
    let req = request_for(&rig, "session/oncall@222222222222").await;
    assert_eq!(
        req.plan.principal_arn.as_deref(),
        Some("arn:aws:iam::222222222222:role/oncall")
    );
    rig.contain.paths.lock().unwrap().insert(
        "arn:aws:iam::222222222222:role/oncall".into(),
        "arn:aws:iam::222222222222:role/breakglass/oncall".into(),
    );
    let out = rig.responder.handle(req).await.unwrap();
    assert!(
        matches!(&out, ResponderOutcome::Refused { reason, .. } if reason.contains("breakglass/oncall is a protected principal")),
        "{out:?}"
    );
    assert!(rig.contain.applied().is_empty(), "nothing written");
}
