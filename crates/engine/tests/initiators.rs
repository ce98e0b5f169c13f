//! Crediting a service's terminations to the principal whose call decided them, on real
//! public records: the Auto Scaling service-linked role's termination and a forced
//! `DeleteAutoScalingGroup` (both in `tests/fixtures/cloudtrail-corpus`, with their
//! provenance), and the identities containment must never act on.

use std::path::PathBuf;
use tripwire_engine::containment::plan;
use tripwire_engine::initiator::{credit, creditable, Initiation};
use tripwire_engine::{scan_events, Action, Events, Policy, PrincipalKind, Termination};

fn fixture(rel: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/cloudtrail-corpus")
        .join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn events(text: &str) -> Events {
    let mut events = Events::default();
    scan_events(text, &mut Default::default(), &mut events).unwrap();
    events
}

/// The real Auto Scaling scale-in termination (us-west-2, 111222333444, 2021-10-29).
fn asg_termination() -> Termination {
    let mut e = events(&fixture(
        "terminate/assumed_role_autoscaling_service_linked_role_invokedby.json",
    ));
    assert_eq!(e.terminations.len(), 1);
    e.terminations.remove(0)
}

/// The real forced `DeleteAutoScalingGroup` (an IAM user's console session), moved to
/// the termination's account, region and a minute before it, as if it had decided it.
fn forced_delete(t: &Termination) -> Initiation {
    let text = fixture("mixed/aws_spotlight_test_datas.jsonl");
    let line = text
        .lines()
        .find(|l| l.contains(r#""eventName":"DeleteAutoScalingGroup""#))
        .expect("the public DeleteAutoScalingGroup record");
    let mut e = events(line);
    assert_eq!(e.initiations.len(), 1);
    let mut i = e.initiations.remove(0);
    i.account = t.account.clone();
    i.region = t.region.clone();
    i.event_time = t.event_time - 60_000;
    i
}

#[test]
fn the_public_forced_deletion_decides_and_keeps_the_callers_session() {
    let t = asg_termination();
    let i = forced_delete(&t);
    assert!(i.decides, "forceDelete is true in the record");
    assert_eq!(i.event_name, "DeleteAutoScalingGroup");
    assert_eq!(i.principal_type, "IAMUser");
    assert_eq!(
        i.principal_arn,
        "arn:aws:iam::999999999999:user/test001@test.com"
    );
    assert_eq!(i.source_ip.as_deref(), Some("202.32.14.177"));
    assert_eq!(
        i.session.access_key_id.as_deref(),
        Some("ASIA2KEX3JLIQSMB72U3")
    );
    assert!(i.anomaly.is_none());
}

#[test]
fn the_service_linked_roles_termination_becomes_the_deleters_and_keeps_the_service() {
    let t = asg_termination();
    assert_eq!(creditable(&t), Some("autoscaling.amazonaws.com"));
    let i = forced_delete(&t);
    let chosen = credit([&i], &t).expect("one deciding call, upstream, in the lookback");
    let c = chosen.credited(t.clone());
    assert_eq!(c.principal.arn, i.principal_arn);
    assert!(matches!(c.principal.kind, PrincipalKind::User { .. }));
    assert_eq!(c.instance_ids, t.instance_ids);
    assert_eq!(c.event_id, t.event_id);
    assert_eq!(c.source_ip.as_deref(), Some("202.32.14.177"));
    let credit = c.credit.as_ref().unwrap();
    assert_eq!(credit.via.service, "autoscaling.amazonaws.com");
    assert_eq!(credit.via.principal_arn, t.principal.arn);
    assert_eq!(credit.initiator.event_id, i.event_id);
    // A credited call is never credited again.
    assert!(creditable(&c).is_none());
    // The user is contained as if it had terminated the instance itself: an IAM user,
    // so braked (no session of its own to deny everything to).
    let policy = Policy::from_toml("threshold = 1\ncontainment = \"revoke\"").unwrap();
    let p = plan(
        &policy,
        &c.principal,
        &tripwire_engine::containment::Culprit::of_call(&c),
        c.kind(),
    );
    assert_eq!(p.action, Action::Brake);
    assert_eq!(p.principal_arn(), Some(i.principal_arn.as_str()));
}

#[test]
fn what_is_never_credited() {
    let t = asg_termination();
    let i = forced_delete(&t);
    let none = |i: &Initiation, t: &Termination| credit([i], t).map(|c| c.event_id.clone());
    // The same call without force decided nothing.
    assert!(none(
        &Initiation {
            decides: false,
            ..i.clone()
        },
        &t
    )
    .is_none());
    // After the termination, before the lookback, elsewhere.
    for moved in [
        Initiation {
            event_time: t.event_time + 1,
            ..i.clone()
        },
        Initiation {
            event_time: t.event_time - 31 * 60_000,
            ..i.clone()
        },
        Initiation {
            region: "eu-west-1".into(),
            ..i.clone()
        },
        Initiation {
            account: "123456789012".into(),
            ..i.clone()
        },
        // Not upstream of Auto Scaling.
        Initiation {
            event_source: "elasticmapreduce.amazonaws.com".into(),
            ..i.clone()
        },
        // It named another instance.
        Initiation {
            instance_ids: vec!["i-0000000000000000a".into()],
            ..i.clone()
        },
    ] {
        assert!(none(&moved, &t).is_none(), "{moved:?}");
    }
    // Two principals' deciding calls: neither.
    let other = Initiation {
        principal_arn: "arn:aws:iam::111222333444:role/deploy".into(),
        principal_type: "AssumedRole".into(),
        event_id: "other".into(),
        ..i.clone()
    };
    assert!(credit([&i, &other], &t).is_none());
    // The one that named the instance wins over time order.
    let named = Initiation {
        instance_ids: t.instance_ids.clone(),
        event_id: "named".into(),
        ..other.clone()
    };
    assert_eq!(
        credit([&i, &named], &t).map(|c| c.event_id.as_str()),
        Some("named")
    );
    // A customer role a service assumes stays its own principal's (EMR_DefaultRole).
    let text = fixture("terminate/assumed_role_autoscaling_service_linked_role_invokedby.json")
        .replace("aws-service-role/autoscaling.amazonaws.com/", "")
        .replace("AWSServiceRoleForAutoScaling", "EMR_DefaultRole")
        .replace(
            "autoscaling.amazonaws.com",
            "elasticmapreduce.amazonaws.com",
        );
    let emr = events(&text).terminations.remove(0);
    assert!(creditable(&emr).is_none());
    // A failed call terminated nothing.
    let failed = Termination {
        error_code: Some("Client.UnauthorizedOperation".into()),
        ..t.clone()
    };
    assert!(creditable(&failed).is_none());
}

#[test]
fn an_initiator_containment_must_not_act_on_is_counted_but_never_contained() {
    let t = asg_termination();
    let policy = Policy::from_toml("threshold = 1\ncontainment = \"revoke\"").unwrap();
    let i = forced_delete(&t);
    for (who, kind) in [
        (
            Initiation {
                anomaly: Some("the session issuer and the session ARN name different roles".into()),
                ..i.clone()
            },
            "disagreeing identity",
        ),
        (
            Initiation {
                principal_arn: "arn:aws:iam::111222333444:root".into(),
                principal_type: "Root".into(),
                ..i.clone()
            },
            "root",
        ),
    ] {
        let c = who.credited(t.clone());
        let p = plan(
            &policy,
            &c.principal,
            &tripwire_engine::containment::Culprit::of_call(&c),
            c.kind(),
        );
        assert_eq!(p.action, Action::None, "{kind}: {}", p.reason);
        assert_eq!(c.principal.arn, who.principal_arn, "{kind}");
    }
}

/// The shipped policy, as a user deploys it.
fn shipped(extra: &str) -> Policy {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config/policy.toml");
    let text = std::fs::read_to_string(&p).unwrap();
    Policy::from_toml(&format!("{text}\n{extra}")).unwrap()
}

fn replay_lines(
    policy: &Policy,
    lines: &[serde_json::Value],
) -> tripwire_engine::replay::ReplayResult {
    let text: Vec<String> = lines.iter().map(ToString::to_string).collect();
    tripwire_engine::replay::replay_events(policy, events(&text.join("\n")))
}

const ASG: &str =
    "role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling@222222222222";
const NIGHT: i64 = 1_515_542_400_000; // 2018-01-10T00:00:00Z

#[test]
fn the_shipped_policy_contains_a_forced_deletion_of_500_and_lets_the_nights_scale_ins_be() {
    // A cleanup script force-deletes the production groups: Auto Scaling terminates 500
    // instances in batches of 50 over a minute and a half.
    let script = tripwire_synth::Caller::parse("role/vendor/cleanup-task@222222222222").unwrap();
    let mut delete = tripwire_synth::initiator_record(
        &script,
        "222222222222",
        NIGHT + 3_600_000,
        "autoscaling.amazonaws.com",
        "DeleteAutoScalingGroup",
        "delete-web",
    );
    delete["requestParameters"] =
        serde_json::json!({ "autoScalingGroupName": "web", "forceDelete": true });
    let mut wipe = vec![delete];
    wipe.extend(
        tripwire_synth::Burst::new(ASG, "wipe")
            .at(NIGHT + 3_610_000)
            .calls(10)
            .step(10_000)
            .ids_per_call(50)
            .invoked_by("autoscaling.amazonaws.com")
            .records(),
    );
    let policy = shipped("");
    let r = replay_lines(&policy, &wipe);
    // Not a second page from the service lane; the account lane counts the credited
    // calls too, and 500 reaches its threshold.
    let kinds: Vec<&str> = r.incidents.iter().map(|i| i.kind().kind()).collect();
    assert_eq!(kinds, ["burst", "account_burst"]);
    let i = &r.incidents[0];
    assert_eq!(
        i.principal_arn(),
        Some("arn:aws:iam::222222222222:role/vendor/cleanup-task")
    );
    assert_eq!(i.instances(), 500);
    assert_eq!(i.containment.action, Action::Revoke);
    assert_eq!(
        i.via.as_ref().map(|v| v.service.as_str()),
        Some("autoscaling.amazonaws.com")
    );
    assert_eq!(r.counts.credited_calls, 10);

    // The nights: Auto Scaling's scheduled scale-in of 800 with no principal's call
    // behind it, and Karpenter consolidating 400 nodes under its own rule (as the
    // policy file's example sets it), in the same account and the same window.
    let mut nights = tripwire_synth::Burst::new(ASG, "night")
        .at(NIGHT)
        .calls(16)
        .step(15_000)
        .ids_per_call(50)
        .invoked_by("autoscaling.amazonaws.com")
        .records();
    nights.extend(
        tripwire_synth::Burst::new(
            "role/KarpenterControllerRole-prod@222222222222",
            "karpenter",
        )
        .at(NIGHT)
        .calls(40)
        .step(7_000)
        .ids_per_call(10)
        .records(),
    );
    let karpenter = "[principals.\"arn:aws:iam::*:role/KarpenterControllerRole-*\"]\nthreshold = 600\nwindow = \"10m\"\ncontainment = \"off\"";
    let r = replay_lines(&shipped(karpenter), &nights);
    assert!(r.incidents.is_empty(), "{:#?}", r.incidents);
    assert_eq!(r.counts.credited_calls, 0);
    // The lanes did count them: just below their thresholds.
    let peak = |who: &str| {
        r.peaks
            .iter()
            .find(|p| p.principal_arn.contains(who))
            .map(|p| p.peak)
    };
    assert_eq!(peak("Karpenter"), Some(400));
}
