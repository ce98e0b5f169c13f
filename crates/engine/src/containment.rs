//! The containment plan, as data: whom to restrict, where, and the exact policy JSON.
//! It is executed elsewhere (the responder); nothing here calls AWS.

use crate::policy::{Mode, Policy};
use crate::principal::{FederationIssuer, Principal, PrincipalKind};
use crate::time::{format_millis, Millis};
use serde::{Deserialize, Serialize};

/// Inline policy name for the "revoke older sessions" deny; fixed, so a retry overwrites.
pub const REVOKE_SESSIONS_POLICY: &str = "tripwire-revoke-older-sessions";
/// Inline policy name for the unconditional deny of the watched actions.
pub const DENY_ACTIONS_POLICY: &str = "tripwire-deny-actions";
/// Inline policy name for quarantine (deny everything).
pub const QUARANTINE_POLICY: &str = "tripwire-quarantine";
/// Every inline policy name the tripwire may write; `tripwire release` removes these.
pub const ALL_POLICY_NAMES: [&str; 3] = [
    REVOKE_SESSIONS_POLICY,
    DENY_ACTIONS_POLICY,
    QUARANTINE_POLICY,
];

/// What containment does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Nothing; `reason` says why.
    None,
    /// Revoke sessions and deny the watched actions.
    Revoke,
    /// Deny everything.
    Quarantine,
}

/// One inline policy to attach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InlinePolicy {
    /// Fixed policy name.
    pub name: String,
    /// The policy document, exactly as it will be stored.
    pub document: String,
}

/// The IAM entity a plan restricts, by name without path (as `PutRolePolicy` and
/// `PutUserPolicy` take it). In JSON: `role_name` or `user_name`, never both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An IAM role.
    Role(String),
    /// An IAM user.
    User(String),
}

impl Target {
    /// The entity's name.
    pub fn name(&self) -> &str {
        match self {
            Target::Role(n) | Target::User(n) => n,
        }
    }

    /// Whether it is a role.
    pub fn is_role(&self) -> bool {
        matches!(self, Target::Role(_))
    }
}

/// A containment plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PlanJson", into = "PlanJson")]
pub struct Plan {
    /// What to do.
    pub action: Action,
    /// The principal's own account: where its IAM entity lives.
    pub target_account: Option<String>,
    /// Partition of the target, for building the containment role ARN.
    pub partition: Option<String>,
    /// The role or user to restrict; `None` when the plan restricts nobody.
    pub target: Option<Target>,
    /// The ARN of the principal the plan is for; the responder re-checks it.
    pub principal_arn: Option<String>,
    /// Why this action (or why none).
    pub reason: String,
    /// Policies to attach, in order.
    pub policies: Vec<InlinePolicy>,
}

/// A plan's JSON: the backtest's and the containment request's stable shape.
#[derive(Serialize, Deserialize)]
struct PlanJson {
    action: Action,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    target_account: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    partition: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    role_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    user_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    principal_arn: Option<String>,
    reason: String,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    policies: Vec<InlinePolicy>,
}

impl TryFrom<PlanJson> for Plan {
    type Error = &'static str;
    fn try_from(j: PlanJson) -> Result<Self, Self::Error> {
        let target = match (j.role_name, j.user_name) {
            (Some(r), None) => Some(Target::Role(r)),
            (None, Some(u)) => Some(Target::User(u)),
            (None, None) => None,
            (Some(_), Some(_)) => return Err("a plan names a role or a user, not both"),
        };
        Ok(Plan {
            action: j.action,
            target_account: j.target_account,
            partition: j.partition,
            target,
            principal_arn: j.principal_arn,
            reason: j.reason,
            policies: j.policies,
        })
    }
}

impl From<Plan> for PlanJson {
    fn from(p: Plan) -> Self {
        let (role_name, user_name) = match p.target {
            Some(Target::Role(r)) => (Some(r), None),
            Some(Target::User(u)) => (None, Some(u)),
            None => (None, None),
        };
        PlanJson {
            action: p.action,
            target_account: p.target_account,
            partition: p.partition,
            role_name,
            user_name,
            principal_arn: p.principal_arn,
            reason: p.reason,
            policies: p.policies,
        }
    }
}

impl Plan {
    /// A plan that restricts nobody, with the reason.
    pub fn alert_only(reason: impl Into<String>) -> Plan {
        Plan::none(reason)
    }

    fn none(reason: impl Into<String>) -> Plan {
        Plan {
            action: Action::None,
            target_account: None,
            partition: None,
            target: None,
            principal_arn: None,
            reason: reason.into(),
            policies: Vec::new(),
        }
    }

    /// The plan without its policy documents: what the backtest and alerts show.
    pub fn summary(&self) -> Plan {
        Plan {
            policies: Vec::new(),
            partition: None,
            principal_arn: None,
            ..self.clone()
        }
    }
}

/// Customer-managed roles that only an AWS service assumes, created under these names by
/// the services' consoles and CLIs: containing one breaks the service for everyone
/// (every EMR cluster, every Spot Fleet), so they are alerted on, never contained,
/// unless a `[principals]` rule sets their containment. Names as IAM compares them.
const AWS_SERVICE_ROLES: [(&str, &str); 7] = [
    ("emr_defaultrole", "Amazon EMR"),
    ("emr_defaultrole_v2", "Amazon EMR"),
    (
        "emr_autoscaling_defaultrole",
        "Amazon EMR automatic scaling",
    ),
    ("aws-ec2-spot-fleet-tagging-role", "EC2 Spot Fleet"),
    ("awsbatchservicerole", "AWS Batch"),
    ("aws-elasticbeanstalk-service-role", "AWS Elastic Beanstalk"),
    ("datapipelinedefaultrole", "AWS Data Pipeline"),
];

/// The AWS service a customer-managed service role belongs to, by its name.
pub fn aws_service_role(name: &str) -> Option<&'static str> {
    let name = name.to_ascii_lowercase();
    AWS_SERVICE_ROLES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, service)| *service)
}

/// Control Tower's roles, which its own SCP forbids anyone else to edit.
fn is_control_tower_role(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name == "awscontroltowerexecution" || name.starts_with("aws-controltower-")
}

/// Why a principal is not contained, or `None` if it may be.
pub fn refusal(policy: &Policy, p: &Principal) -> Option<String> {
    // A `[principals]` rule that sets containment is the operator's explicit choice,
    // and overrides the service-role defaults below (never the checks before them).
    let explicit = policy
        .rule_for(&p.arn)
        .is_some_and(|r| r.containment.is_some());
    if policy.containment_for(&p.arn) == Mode::Off {
        return Some("containment is off (alert-only mode)".into());
    }
    if policy.is_protected(&p.arn) {
        return Some("protected principal: alert only, never contained".into());
    }
    if let Some(a) = p.anomaly {
        return Some(format!("not contained: {a}"));
    }
    if let (PrincipalKind::Role { name, .. }, false) = (&p.kind, explicit) {
        if let Some(service) = aws_service_role(name) {
            return Some(format!(
                "an AWS service role that only {service} assumes: containing it would stop {service} for everyone; alert only (a [principals] rule with `containment` overrides this)"
            ));
        }
        if is_control_tower_role(name) {
            return Some(
                "an AWS Control Tower role: Control Tower's own SCP forbids editing it, so containment in that account goes through an SCP on the account (a [principals] rule with `containment` overrides this)".into(),
            );
        }
    }
    if p.is_service_linked_role() {
        return Some("AWS service-linked roles cannot be edited".into());
    }
    if p.is_identity_center_role() {
        return Some(
            "IAM Identity Center roles cannot be edited in IAM; remove the assignment in IAM Identity Center".into(),
        );
    }
    match &p.kind {
        PrincipalKind::Role { .. } | PrincipalKind::User { .. } => None,
        PrincipalKind::Root => Some("root cannot be restricted by IAM policies; use an SCP and rotate root credentials".into()),
        PrincipalKind::FederatedUser { issuer: FederationIssuer::User { .. } } => None,
        PrincipalKind::FederatedUser { issuer: FederationIssuer::Root } => Some(
            "the federation token was issued by the root user, which IAM policies cannot restrict; use an SCP and rotate root credentials".into(),
        ),
        PrincipalKind::FederatedUser { issuer: FederationIssuer::Unknown } => Some(
            "the record does not name the IAM user that issued this federated-user token (sessionContext.sessionIssuer); find it with CloudTrail's GetFederationToken events and revoke it by hand".into(),
        ),
        PrincipalKind::IdentityCenterUser => Some("IAM Identity Center users have no IAM entity to restrict".into()),
        PrincipalKind::AwsService => Some("AWS service principals cannot be restricted".into()),
        PrincipalKind::Other(t) => Some(format!("unknown identity type `{t}`: nothing safe to restrict")),
    }
}

/// Renders the plan for `p`. `now` is when sessions count as "older" for revocation.
pub fn plan(policy: &Policy, p: &Principal, now: Millis) -> Plan {
    if let Some(reason) = refusal(policy, p) {
        return Plan::none(reason);
    }
    let target = match &p.kind {
        PrincipalKind::Role { name, .. } => Target::Role(name.clone()),
        PrincipalKind::User { name, .. }
        | PrincipalKind::FederatedUser {
            issuer: FederationIssuer::User { name, .. },
        } => Target::User(name.clone()),
        // `refusal` already named a reason for every other kind.
        _ => return Plan::none("nothing to restrict"),
    };
    let deny = InlinePolicy {
        name: DENY_ACTIONS_POLICY.into(),
        document: deny_actions_document(&policy.deny_actions),
    };
    let (action, policies, reason) = match policy.containment_for(&p.arn) {
        Mode::Quarantine => (
            Action::Quarantine,
            vec![InlinePolicy {
                name: QUARANTINE_POLICY.into(),
                document: quarantine_document(),
            }],
            "quarantine: every action denied".to_string(),
        ),
        _ if target.is_role() => (
            Action::Revoke,
            vec![
                InlinePolicy {
                    name: REVOKE_SESSIONS_POLICY.into(),
                    document: revoke_sessions_document(now),
                },
                deny,
            ],
            format!(
                "revoke: sessions issued before {} denied, and {} denied for new sessions",
                format_millis(now),
                policy.deny_actions.join(", ")
            ),
        ),
        // Long-term user keys have no token issue time, so only the action deny applies.
        _ => (
            Action::Revoke,
            vec![deny],
            format!("revoke: {} denied", policy.deny_actions.join(", ")),
        ),
    };
    Plan {
        action,
        target_account: p.account.clone(),
        partition: Some(p.partition.clone()),
        target: Some(target),
        principal_arn: Some(p.arn.clone()),
        reason,
        policies,
    }
}

#[derive(Serialize)]
struct Document<'a> {
    #[serde(rename = "Version")]
    version: &'static str,
    #[serde(rename = "Statement")]
    statement: [Statement<'a>; 1],
}

#[derive(Serialize)]
struct Statement<'a> {
    #[serde(rename = "Sid")]
    sid: &'static str,
    #[serde(rename = "Effect")]
    effect: &'static str,
    #[serde(rename = "Action")]
    action: &'a [String],
    #[serde(rename = "Resource")]
    resource: [&'static str; 1],
    #[serde(rename = "Condition", skip_serializing_if = "Option::is_none")]
    condition: Option<serde_json::Value>,
}

fn render(sid: &'static str, action: &[String], condition: Option<serde_json::Value>) -> String {
    let doc = Document {
        version: "2012-10-17",
        statement: [Statement {
            sid,
            effect: "Deny",
            action,
            resource: ["*"],
            condition,
        }],
    };
    serde_json::to_string(&doc).unwrap_or_default()
}

/// The AWS "revoke older sessions" deny: every session issued before `now` loses all access.
pub fn revoke_sessions_document(now: Millis) -> String {
    let when = format_millis(now);
    let cond = serde_json::json!({ "DateLessThan": { "aws:TokenIssueTime": when } });
    render(
        "TripwireRevokeOlderSessions",
        &["*".to_string()],
        Some(cond),
    )
}

/// Unconditional deny of the watched actions: covers sessions issued after the revocation.
pub fn deny_actions_document(actions: &[String]) -> String {
    render("TripwireDenyActions", actions, None)
}

/// Deny everything.
pub fn quarantine_document() -> String {
    render("TripwireQuarantine", &["*".to_string()], None)
}

/// What the detector asks the responder to do: the plan, and the incident it is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainmentRequest {
    /// The incident, as alerted.
    pub incident: crate::incident::Incident,
    /// The full plan, with policy documents.
    pub plan: Plan,
}
