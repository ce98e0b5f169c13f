//! The containment drill, as data: the plan an incident would get, made for the member
//! stack's permissionless `tripwire-drill` role; what IAM must then hold; what the drill
//! found, per account; and the page a failed drill sends. The responder runs it through
//! its real path; nothing here calls AWS.

use crate::alert::{Alert, AlertKind, Card, Rule};
use crate::containment::{self, BrakeStep, BrakeTarget, Culprit, Plan};
use crate::names::{DRILL_ROLE, DRILL_SOURCE_IDENTITY};
use crate::policy::{Mode, Policy};
use crate::principal::{Principal, PrincipalKind};
use crate::time::{format_millis, Millis};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write;

/// What the watchdog asks the responder to do: drill in one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillRequest {
    /// The member account.
    pub account: String,
    /// Its partition.
    #[serde(default = "aws")]
    pub partition: String,
    /// The drill schedule's run (its scheduled time), when the schedule asked: a retried
    /// schedule or a redelivered request of the same run drills once, so two drills never
    /// contain and lift the drill role over each other. Without it, every request drills.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
}

/// The responder's event for a drill, `{"drill": REQUEST}`: the watchdog sends it, the
/// responder tells it from a containment request by its one field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillEvent {
    /// The request.
    pub drill: DrillRequest,
}

impl DrillRequest {
    /// The one-off step a scheduled run's drill in this account is claimed as.
    pub fn step(&self) -> Option<String> {
        self.run
            .as_ref()
            .map(|run| format!("drill#{}#{run}", self.account))
    }
}

fn aws() -> String {
    "aws".into()
}

/// The drill role's ARN in `account`.
pub fn role_arn(partition: &str, account: &str) -> String {
    format!("arn:{partition}:iam::{account}:role/{DRILL_ROLE}")
}

/// The plan a burst by one person's session of the drill role would get: the same
/// policies, brake and scope as an incident, from the same policy. With containment
/// off (alert-only) it is the plan `revoke` would make, so the drill proves what arming
/// would do. Never an account brake: the drill holds one role, not an account.
pub fn plan(policy: &Policy, partition: &str, account: &str) -> Result<Plan, String> {
    let arn = role_arn(partition, account);
    let kind = crate::catalogue::EC2_INSTANCE;
    let mut armed = policy.clone();
    if armed.containment == Mode::Off {
        armed.containment = Mode::Revoke;
    }
    let principal = Principal {
        arn: arn.clone(),
        kind: PrincipalKind::Role {
            name: DRILL_ROLE.into(),
            path: "/".into(),
            path_known: true,
        },
        account: Some(account.into()),
        partition: partition.into(),
        anomaly: None,
    };
    // A person's session: the source identity their identity provider set, as the
    // scope that holds across role chaining would name it.
    let culprit = Culprit {
        sessions: vec![DRILL_SOURCE_IDENTITY.into()],
        source_identities: vec![DRILL_SOURCE_IDENTITY.into()],
        provider_source_identity: Some(DRILL_SOURCE_IDENTITY.into()),
        without_instance_profile: 1,
        without_invoked_by: 1,
        ..Culprit::default()
    };
    let plan = containment::plan(&armed, &principal, &culprit, kind);
    match plan.action {
        crate::containment::Action::None => Err(format!(
            "the policy contains no {DRILL_ROLE} burst: {}",
            plan.reason
        )),
        crate::containment::Action::AccountBrake => Err(format!(
            "the policy chooses the account brake for {DRILL_ROLE}; the drill holds one role, never an account"
        )),
        _ => Ok(plan),
    }
}

/// What IAM holds on the drill role after the plan was put in place: its managed
/// policies by name, and its tags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Held {
    /// Attached managed policies, by name.
    pub attached: Vec<String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

/// Whether IAM holds what `plan` puts in place, or what is missing.
pub fn verify(plan: &Plan, held: &Held) -> Result<(), String> {
    let mut missing: Vec<String> = plan
        .managed
        .iter()
        .filter(|m| !held.attached.contains(m))
        .map(|m| format!("policy {m}"))
        .collect();
    for (k, v) in &plan.tags {
        if held.tags.get(k) != Some(v) {
            missing.push(format!("tag {k}={v}"));
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "IAM does not hold what containment put in place: {} missing",
            missing.join(", ")
        ))
    }
}

/// What a drill in one account found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drilled {
    /// The member account.
    pub account: String,
    /// Whether containment landed, IAM held it and it came off again.
    pub ok: bool,
    /// Why not, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Whether IAM's policy simulator showed the deny in effect (`None` where the
    /// simulator was not available).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simulated: Option<bool>,
    /// Whether the account brake could be attached there, where one is deployed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brake: Option<BrakeReady>,
    /// When it ran.
    #[serde(with = "crate::time::rfc3339")]
    pub at: Millis,
}

/// What the drill found of the account brake in an account, checked as the responder
/// checks before attaching it, without attaching it: the drill holds one role, and a
/// brake stops a whole account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BrakeReady {
    /// A burst that chose the brake would attach it.
    Attachable,
    /// It is attached now (an incident braked the account and was not released).
    Attached,
    /// The organization's management account, which no SCP binds: there is nothing to
    /// prove, and nothing the drill could mend.
    ManagementAccount,
    /// It could not be attached; the drill's reason says why.
    Refused,
}

/// Whether the brake could be attached in `account` as Organizations shows it (`t`), or
/// why not, in the words a `containment_failed` page would use.
pub fn brake_ready(policy: &Policy, account: &str, t: &BrakeTarget) -> Result<BrakeReady, String> {
    if account == t.management_account {
        return Ok(BrakeReady::ManagementAccount);
    }
    match containment::brake_step(policy, account, t) {
        Ok(BrakeStep::Attach) => Ok(BrakeReady::Attachable),
        Ok(BrakeStep::Attached) => Ok(BrakeReady::Attached),
        Err(why) => Err(format!("the account brake could not be attached: {why}")),
    }
}

/// `tripwire status`'s word for an account's last drill: `ok`, `failed REASON` or
/// `never`.
pub fn status_word(d: Option<&Drilled>) -> String {
    match d {
        None => "never".into(),
        Some(d) if d.ok => "ok".into(),
        Some(d) => format!("failed {}", d.reason.as_deref().unwrap_or("(no reason)")),
    }
}

/// The JSON of a `containment_unproven` page.
#[derive(Serialize)]
struct UnprovenJson<'a> {
    #[serde(rename = "type")]
    record_type: &'static str,
    kind: &'static str,
    account: &'a str,
    reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    brake: Option<BrakeReady>,
    #[serde(with = "crate::time::rfc3339")]
    drilled: Millis,
    #[serde(with = "crate::time::rfc3339")]
    alert_time: Millis,
}

/// What to check when a drill failed.
const UNPROVEN_CHECKS: [&str; 4] = [
    "the member stack's containment role exists and trusts the central responder role;",
    "no SCP or permission boundary denies it iam:AttachRolePolicy or iam:TagRole;",
    "the managed policies tripwire-brake and tripwire-contain-scope exist under /tripwire/;",
    "CloudTrail in that account for changes to the tripwire's roles and policies.",
];

/// What to check as well when the account brake could not be attached.
const BRAKE_CHECK: &str = "the brake SCP still matches `tripwire check-policy --get account_brake_scp` (the delegation stack's BrakePolicyContent), the management account's delegation still lets the security account attach it, and the account has room for one more SCP;";

/// Renders `containment_unproven` for a failed drill `d`, on the alarm channel.
pub fn render_unproven(d: &Drilled, now: Millis) -> Alert {
    let reason = d.reason.as_deref().unwrap_or("(no reason)");
    let subject = format!(
        "TRIPWIRE CONTAINMENT UNPROVEN: the drill failed in {}",
        d.account
    );
    let mut text = String::new();
    let _ = writeln!(
        text,
        "TRIPWIRE CONTAINMENT UNPROVEN: the weekly drill could not prove containment in account {} through the responder's real path (its role {DRILL_ROLE}, and the account brake where one is deployed).\n",
        d.account
    );
    let _ = writeln!(
        text,
        "Until a drill there passes, a burst in that account may page without being contained."
    );
    let _ = writeln!(text, "Reason   {reason}");
    let _ = writeln!(text, "Drilled  {}", format_millis(d.at));
    let mut checks: Vec<&str> = UNPROVEN_CHECKS.to_vec();
    if d.brake == Some(BrakeReady::Refused) {
        checks.insert(0, BRAKE_CHECK);
    }
    let _ = writeln!(text, "\nCheck");
    for (i, c) in checks.iter().enumerate() {
        let _ = writeln!(text, "  {}. {c}", i + 1);
    }
    let json = UnprovenJson {
        record_type: "drill_alert",
        kind: AlertKind::ContainmentUnproven.as_str(),
        account: &d.account,
        reason,
        brake: d.brake,
        drilled: d.at,
        alert_time: now,
    };
    let card = Card {
        key: format!("drill-{}", d.account),
        rule: Rule::Coverage,
        title: subject.clone(),
        headline: format!("TRIPWIRE CONTAINMENT UNPROVEN: {}", d.account),
        description: text.split("\n\n").next().unwrap_or_default().to_owned(),
        next_steps: checks.iter().map(|c| (*c).to_owned()).collect(),
        keywords: vec![
            "tripwire".into(),
            "drill".into(),
            "containment".into(),
            d.account.clone(),
        ],
        resources: vec![crate::alert::account_resource(&d.account)],
        context: vec![
            ("account".into(), d.account.clone()),
            ("reason".into(), reason.to_owned()),
        ],
        region: String::new(),
        first_seen: d.at,
        last_seen: d.at,
        opened: d.at,
        time: now,
        resolves: false,
    };
    Alert {
        tamper: false,
        kind: AlertKind::ContainmentUnproven,
        card,
        subject: crate::alert::subject_safe(&subject),
        text: crate::alert::with_runbook(text, AlertKind::ContainmentUnproven),
        json: serde_json::to_string(&json).unwrap_or_default(),
        account: d.account.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_drill_gets_the_plan_an_incident_would_and_checks_what_iam_holds() {
        let policy = Policy::from_toml("").unwrap();
        let plan = plan(&policy, "aws", "222222222222").unwrap();
        // Alert-only, it drills what arming would do: revoke, scoped to the session.
        assert_eq!(plan.action, crate::containment::Action::Revoke);
        assert_eq!(
            plan.principal_arn(),
            Some("arn:aws:iam::222222222222:role/tripwire-drill")
        );
        assert_eq!(plan.managed, ["tripwire-brake", "tripwire-contain-scope"]);
        let held = Held {
            attached: plan.managed.clone(),
            tags: plan.tags.clone(),
        };
        assert_eq!(verify(&plan, &held), Ok(()));
        let err = verify(
            &plan,
            &Held {
                attached: vec!["tripwire-brake".into()],
                tags: BTreeMap::new(),
            },
        )
        .unwrap_err();
        assert!(
            err.contains("policy tripwire-contain-scope")
                && err.contains("tag tripwire-contain-source-identity=tripwire-drill"),
            "{err}"
        );
        // The brake-only policy drills the brake.
        let brake = Policy::from_toml("containment = \"brake\"").unwrap();
        assert_eq!(
            super::plan(&brake, "aws", "222222222222").unwrap().managed,
            ["tripwire-brake"]
        );
        // Never an account brake, and a policy that contains no one says so.
        let acct = Policy::from_toml(
            "containment = \"revoke\"\naccount_brake_policy = \"p-brake0001\"\n[principals.\"arn:aws:iam::*:role/tripwire-drill\"]\ncontainment = \"account_brake\"",
        )
        .unwrap();
        assert!(super::plan(&acct, "aws", "222222222222")
            .unwrap_err()
            .contains("never an account"));
        let protected = Policy::from_toml(
            "containment = \"revoke\"\nprotected_principals = [\"arn:aws:iam::*:role/tripwire-*\"]",
        )
        .unwrap();
        assert!(super::plan(&protected, "aws", "222222222222")
            .unwrap_err()
            .contains("protected"));
    }

    #[test]
    fn the_status_word_and_the_page_name_the_reason() {
        assert_eq!(status_word(None), "never");
        let mut d = Drilled {
            account: "222222222222".into(),
            ok: true,
            reason: None,
            simulated: None,
            brake: None,
            at: 1_700_000_000_000,
        };
        assert_eq!(status_word(Some(&d)), "ok");
        d.ok = false;
        d.reason = Some("AccessDenied on sts:AssumeRole".into());
        assert_eq!(
            status_word(Some(&d)),
            "failed AccessDenied on sts:AssumeRole"
        );
        let a = render_unproven(&d, 1_700_000_060_000);
        assert_eq!(a.kind.as_str(), "containment_unproven");
        assert!(a.kind.is_own_alarm());
        assert!(a.subject.contains("222222222222"), "{}", a.subject);
        assert!(a.text.contains("AccessDenied on sts:AssumeRole"));
        assert!(a.text.contains("docs/runbook.md#containment_unproven"));
        let j: serde_json::Value = serde_json::from_str(&a.json).unwrap();
        assert_eq!(j["reason"], "AccessDenied on sts:AssumeRole");
        // `tripwire render` reads the page back as it was sent.
        let back = crate::destination::alert_from_json(&j, 300_000).unwrap();
        assert_eq!(
            (back.subject, back.text, back.json),
            (a.subject.clone(), a.text.clone(), a.json.clone())
        );
        assert!(!a.text.contains("BrakePolicyContent"), "{}", a.text);
        // A brake that could not be attached adds its own check, and reads back too.
        d.brake = Some(BrakeReady::Refused);
        let b = render_unproven(&d, 1_700_000_060_000);
        assert!(
            b.text.contains("1. the brake SCP still matches"),
            "{}",
            b.text
        );
        let j: serde_json::Value = serde_json::from_str(&b.json).unwrap();
        assert_eq!(j["brake"], "refused");
        let back = crate::destination::alert_from_json(&j, 300_000).unwrap();
        assert_eq!(back.text, b.text);
    }

    #[test]
    fn the_drill_checks_the_brake_as_the_responder_would_without_attaching_it() {
        let policy = Policy::from_toml("account_brake_policy = \"p-brake0001\"").unwrap();
        let ours = containment::account_brake_scp(&policy).unwrap();
        let t = |account: &str, attached: &[&str], content: &str| {
            brake_ready(
                &policy,
                account,
                &BrakeTarget {
                    management_account: "111111111111".into(),
                    attached: attached.iter().map(|a| (*a).to_owned()).collect(),
                    content: content.to_owned(),
                },
            )
        };
        let full = ["p-FullAWSAccess"];
        assert_eq!(t("222222222222", &full, &ours), Ok(BrakeReady::Attachable));
        assert_eq!(
            t("222222222222", &["p-FullAWSAccess", "p-brake0001"], &ours),
            Ok(BrakeReady::Attached)
        );
        // No SCP binds the management account: nothing to prove there, not a failure.
        assert_eq!(
            t("111111111111", &full, &ours),
            Ok(BrakeReady::ManagementAccount)
        );
        // A stale brake and a full account fail the drill with the responder's reason.
        let err = t("222222222222", &full, "{}").unwrap_err();
        assert!(
            err.starts_with("the account brake could not be attached: ")
                && err.contains("not the policy's brake"),
            "{err}"
        );
        let five = ["p-1", "p-2", "p-3", "p-4", "p-5"];
        assert!(t("222222222222", &five, &ours)
            .unwrap_err()
            .contains("5 SCPs"));
    }
}
