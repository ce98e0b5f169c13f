//! The account brake in-process: a burst IAM cannot contain (the root user's) brakes its
//! account through Organizations, once, within Organizations' limits, never the
//! management account and never with a brake whose exemptions are not the policy's;
//! `release` detaches it and resolves the page.

mod support;

use support::{key, MemoryLift, MemoryOrganizations, Rig};
use tripwire_engine::alert::ContainmentState;
use tripwire_engine::containment::{account_brake_scp, Action, ContainmentRequest};
use tripwire_engine::names::ACCOUNT_BRAKE_SCP;
use tripwire_engine::Policy;
use tripwire_pipeline::{Incidents, Release, ResponderOutcome};
use tripwire_synth::Burst;

const POLICY: &str = r#"
threshold = 10
containment = "revoke"
protected_principals = ["arn:aws:iam::*:role/BreakGlass*"]
account_brake_policy = "p-brake0001"
account_brake_for = ["root"]
"#;
const BRAKE: &str = "p-brake0001";
const PROD: &str = "222222222222";
const ROOT: &str = "arn:aws:iam::222222222222:root";

/// A rig whose Organizations holds the brake as the delegation template creates it
/// (`content`: the policy's own brake unless given), and the request root's burst queued.
async fn braking(policy: &str, content: Option<&str>) -> (Rig, ContainmentRequest) {
    let rig = Rig::new(policy);
    let ours = account_brake_scp(&Policy::from_toml(POLICY).unwrap()).unwrap();
    rig.organizations.policies.lock().unwrap().insert(
        BRAKE.into(),
        (
            ACCOUNT_BRAKE_SCP.into(),
            content.unwrap_or(&ours).to_owned(),
        ),
    );
    for r in rig
        .deliver(
            &Burst::new("root@222222222222", "brake")
                .calls(10)
                .envelopes(),
        )
        .await
    {
        r.expect("delivered");
    }
    let mut queued = rig.queue.queued();
    assert_eq!(queued.len(), 1, "root's burst asks for containment");
    (rig, queued.remove(0))
}

fn failed(out: &ResponderOutcome) -> &str {
    match out {
        ResponderOutcome::Failed { reason, .. } => reason,
        o => panic!("not failed: {o:?}"),
    }
}

#[tokio::test]
async fn roots_burst_brakes_its_account_once_and_release_detaches_it() {
    let (rig, req) = braking(POLICY, None).await;
    let stored = rig.store.current(&key(ROOT, PROD)).unwrap();
    assert_eq!(stored.incident.containment.action, Action::AccountBrake);
    // Another SCP the organization attached stays as it is.
    rig.organizations
        .attached
        .lock()
        .unwrap()
        .insert(PROD.into(), vec!["p-FullAWSAccess".into()]);
    let out = rig.responder.handle(req.clone()).await.unwrap();
    assert_eq!(
        out,
        ResponderOutcome::Contained {
            incident: req.incident_id.clone(),
            policies: vec![ACCOUNT_BRAKE_SCP.into()],
        }
    );
    assert_eq!(
        rig.organizations.attached_to(PROD),
        ["p-FullAWSAccess", BRAKE]
    );
    assert!(rig.contain.applied().is_empty(), "IAM is not touched");
    assert!(
        rig.organizations.attached_to("333333333333").is_empty(),
        "no other account"
    );
    assert_eq!(rig.alerts.kinds(), ["detected", "contained"]);
    // A redelivery finds it attached: no second attachment, no second page.
    rig.responder.handle(req).await.unwrap();
    assert_eq!(
        rig.organizations.attached_to(PROD),
        ["p-FullAWSAccess", BRAKE]
    );
    assert_eq!(rig.alerts.kinds(), ["detected", "contained"]);

    let lift = MemoryLift::default();
    let done = Release::new(
        lift.clone(),
        rig.store.clone(),
        Some(rig.alerts.clone()),
        rig.clock.clone(),
        300_000,
    )
    .with_brakes(rig.organizations.clone())
    .run(PROD, ROOT, false)
    .await
    .unwrap();
    assert_eq!(
        done.removed,
        [format!(
            "{ACCOUNT_BRAKE_SCP} ({BRAKE}, from account {PROD})"
        )]
    );
    assert!(done.closed);
    assert!(
        lift.log.lock().unwrap().is_empty(),
        "root has no IAM entity"
    );
    assert_eq!(rig.organizations.attached_to(PROD), ["p-FullAWSAccess"]);
    assert_eq!(rig.alerts.kinds(), ["detected", "contained", "released"]);
    let stored = rig.store.incident(&key(ROOT, PROD)).await.unwrap().unwrap();
    assert_eq!(stored.containment_state, Some(ContainmentState::Released));
}

#[tokio::test]
async fn the_brake_is_refused_with_the_reason_rather_than_detach_or_overreach() {
    // Five SCPs attached directly: Organizations' most. Nothing of theirs is detached.
    let (rig, req) = braking(POLICY, None).await;
    let five: Vec<String> = (1..=5).map(|k| format!("p-org0000{k}")).collect();
    rig.organizations
        .attached
        .lock()
        .unwrap()
        .insert(PROD.into(), five.clone());
    let out = rig.responder.handle(req).await.unwrap();
    assert!(failed(&out).contains("5 SCPs attached directly"), "{out:?}");
    assert_eq!(rig.organizations.attached_to(PROD), five);
    assert_eq!(rig.alerts.kinds(), ["detected", "containment_failed"]);

    // A brake whose exemptions are not the policy's (a stale delegation stack): it
    // would stop a principal the policy protects, so it is never attached.
    let stale = account_brake_scp(
        &Policy::from_toml("protected_principals = [\"arn:aws:iam::*:role/Someone\"]").unwrap(),
    )
    .unwrap();
    let (rig, req) = braking(POLICY, Some(&stale)).await;
    let out = rig.responder.handle(req).await.unwrap();
    assert!(failed(&out).contains("not the policy's brake"), "{out:?}");
    assert!(rig.organizations.attached_to(PROD).is_empty());

    // The delegation does not allow it: Organizations' words reach the page.
    let (rig, req) = braking(POLICY, None).await;
    *rig.organizations.refuse.lock().unwrap() =
        Some("AccessDeniedException: the delegation policy does not allow AttachPolicy".into());
    let out = rig.responder.handle(req).await.unwrap();
    assert!(failed(&out).contains("delegation policy"), "{out:?}");
    assert!(rig.organizations.attached_to(PROD).is_empty());
}

#[tokio::test]
async fn the_management_accounts_root_is_never_braked_no_scp_binds_it() {
    let rig = Rig::new(POLICY);
    let mgmt = MemoryOrganizations::default().management;
    let ours = account_brake_scp(&Policy::from_toml(POLICY).unwrap()).unwrap();
    rig.organizations
        .policies
        .lock()
        .unwrap()
        .insert(BRAKE.into(), (ACCOUNT_BRAKE_SCP.into(), ours));
    for r in rig
        .deliver(
            &Burst::new(&format!("root@{mgmt}"), "mgmt")
                .account(&mgmt)
                .calls(10)
                .envelopes(),
        )
        .await
    {
        r.expect("delivered");
    }
    let req = rig.queue.queued().remove(0);
    let out = rig.responder.handle(req).await.unwrap();
    assert!(failed(&out).contains("management account"), "{out:?}");
    assert!(rig.organizations.attached_to(&mgmt).is_empty());
}
