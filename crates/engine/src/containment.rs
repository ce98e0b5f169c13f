//! The containment plan, as data: whom to restrict, where, and the exact policy JSON.
//! It is executed elsewhere (the responder); nothing here calls AWS.

use crate::names::{
    ACCOUNT_BRAKE_SCP, BRAKE_POLICY, INSTANCE_TAG, QUARANTINE_MANAGED_POLICY, SCOPE_POLICY,
    SESSION_TAG, SOURCE_IDENTITY_TAG,
};
use crate::policy::{BrakeFor, Mode, Policy};
use crate::principal::service_role;
use crate::principal::{FederationIssuer, Principal, PrincipalKind};
use crate::time::Millis;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What containment does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Nothing; `reason` says why.
    None,
    /// Deny the one culprit the calls name (an instance, a source identity, a session)
    /// everything, and brake every session of the principal.
    Revoke,
    /// Brake only: every session of the principal is denied `deny_actions`, the calls
    /// that decide terminations, and undoing containment.
    Brake,
    /// Deny every session of the principal everything.
    Quarantine,
    /// Attach the account brake's SCP to the principal's account: every principal there
    /// but the protected ones and the tripwire's own is denied the watched calls.
    #[serde(rename = "account_brake")]
    AccountBrake,
}

/// Whom a plan's deny of everything reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// One EC2 instance's role credentials (`ec2:SourceInstanceARN`).
    Instance,
    /// One role session (`aws:SourceIdentity` or `aws:userid`).
    Session,
    /// Every session of the role.
    Role,
    /// An IAM user, with the sessions it issued.
    User,
    /// Every principal of the account, through a service control policy.
    Account,
}

impl Scope {
    /// The name the JSON and the alerts use.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Instance => "instance",
            Scope::Session => "session",
            Scope::Role => "role",
            Scope::User => "user",
            Scope::Account => "account",
        }
    }
}

/// The IAM condition keys a scope narrows on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConditionKey {
    /// The instance whose role credentials made the call.
    #[serde(rename = "ec2:SourceInstanceARN")]
    SourceInstanceArn,
    /// The session's source identity, which survives role chaining.
    #[serde(rename = "aws:SourceIdentity")]
    SourceIdentity,
    /// The role session (`ROLEID:SESSION`).
    #[serde(rename = "aws:userid")]
    UserId,
}

impl ConditionKey {
    /// The key as IAM spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionKey::SourceInstanceArn => "ec2:SourceInstanceARN",
            ConditionKey::SourceIdentity => "aws:SourceIdentity",
            ConditionKey::UserId => "aws:userid",
        }
    }

    /// The principal tag that carries the culprit's value for this key.
    pub fn tag(self) -> &'static str {
        match self {
            ConditionKey::SourceInstanceArn => INSTANCE_TAG,
            ConditionKey::SourceIdentity => SOURCE_IDENTITY_TAG,
            ConditionKey::UserId => SESSION_TAG,
        }
    }

    /// The tag's value for the condition value `v`: an instance's ARN is tagged by its
    /// ID (the scope policy rebuilds the ARN around it in any region).
    fn tag_value(self, v: &str) -> String {
        match self {
            ConditionKey::SourceInstanceArn => v.rsplit('/').next().unwrap_or(v).to_owned(),
            ConditionKey::SourceIdentity | ConditionKey::UserId => v.to_owned(),
        }
    }
}

/// Whether IAM accepts `v` as a tag value: at most 256 characters of letters, digits,
/// spaces and `_ . : / = + - @`. A session name or source identity may also hold `,`,
/// which no tag can, so such a culprit cannot be named by tag.
pub fn is_tag_value(v: &str) -> bool {
    v.chars().count() <= 256
        && v.chars()
            .all(|c| c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c))
}

impl std::fmt::Display for ConditionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ConditionKey {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            ConditionKey::SourceInstanceArn,
            ConditionKey::SourceIdentity,
            ConditionKey::UserId,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| format!("`{s}` is not a condition key containment narrows on"))
    }
}

/// The IAM condition that narrows a scope: `key` is one of `values`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condition {
    /// Which key.
    pub key: ConditionKey,
    /// What the key must be.
    pub values: Vec<String>,
}

/// What a plan restricts: an IAM entity by name without path (as `AttachRolePolicy` and
/// `TagRole` take it), or an account by its ID. In JSON: `role_name` or `user_name`,
/// never both, or neither with scope `account`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An IAM role.
    Role(String),
    /// An IAM user.
    User(String),
    /// An account, through the account brake's SCP.
    Account(String),
}

impl Target {
    /// The entity's name, or the account's ID.
    pub fn name(&self) -> &str {
        match self {
            Target::Role(n) | Target::User(n) | Target::Account(n) => n,
        }
    }

    /// Whether it is a role.
    pub fn is_role(&self) -> bool {
        matches!(self, Target::Role(_))
    }

    /// `role/NAME` or `user/NAME`, as a tamper event names what a policy was lifted from.
    pub fn entity(&self) -> String {
        match self {
            Target::Role(n) => format!("role/{n}"),
            Target::User(n) => format!("user/{n}"),
            Target::Account(a) => format!("account/{a}"),
        }
    }
}

/// Whom a plan restricts, and how far its deny of everything reaches. Every plan that
/// acts has one; an alert-only plan has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restriction {
    /// The role or user to restrict.
    pub target: Target,
    /// The principal's own account: where its IAM entity lives.
    pub account: String,
    /// Whom the deny of everything reaches.
    pub scope: Scope,
    /// The condition that narrows the scope to the culprit (instance and session).
    pub condition: Option<Condition>,
    /// Partition of the target, for building the containment role ARN (not in the
    /// summary the backtest and the alerts show).
    pub partition: Option<String>,
    /// The ARN of the principal the plan is for; the responder re-checks it (not in
    /// the summary).
    pub principal_arn: Option<String>,
}

/// A containment plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PlanJson", into = "PlanJson")]
pub struct Plan {
    /// What to do.
    pub action: Action,
    /// Whom, when the plan acts.
    pub restriction: Option<Restriction>,
    /// Why this action and scope (or why none).
    pub reason: String,
    /// The tripwire's managed policies to attach, by name (see [`managed_policy_arn`]),
    /// in order: the brake (or quarantine) first.
    pub managed: Vec<String>,
    /// The `tripwire-contain-*` tags that name the culprit to [`SCOPE_POLICY`]; set
    /// after the first managed policy and before the scope policy.
    pub tags: BTreeMap<String, String>,
    /// An IAM user's long-term access keys seen in the burst, to deactivate
    /// (`deactivate_keys = true`); written after the policies, so the deny lands first.
    pub deactivate_keys: Vec<String>,
    /// The brake for the principal the burst's session chain began with (provenance),
    /// in its own account: a runaway whose role was assumed from another would
    /// otherwise assume it again. Kept whole in the summary: release lifts it by its ARN.
    pub origin: Option<Box<Plan>>,
}

/// A plan's JSON: the backtest's and the alerts' stable shape.
#[derive(Serialize, Deserialize)]
struct PlanJson {
    action: Action,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    scope: Option<Scope>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    condition: Option<Condition>,
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
    managed_policies: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    principal_tags: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    deactivate_access_keys: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    origin_brake: Option<Box<Plan>>,
}

impl TryFrom<PlanJson> for Plan {
    type Error = &'static str;
    fn try_from(j: PlanJson) -> Result<Self, Self::Error> {
        let target = match (j.role_name, j.user_name, j.scope, &j.target_account) {
            (Some(r), None, _, _) => Some(Target::Role(r)),
            (None, Some(u), _, _) => Some(Target::User(u)),
            (None, None, Some(Scope::Account), Some(a)) => Some(Target::Account(a.clone())),
            (None, None, _, _) => None,
            (Some(_), Some(_), _, _) => return Err("a plan names a role or a user, not both"),
        };
        if j.scope == Some(Scope::Account) && !matches!(target, Some(Target::Account(_))) {
            return Err("an account-wide plan names no role or user");
        }
        let restriction = match (target, j.target_account, j.scope) {
            (Some(target), Some(account), Some(scope)) => Some(Restriction {
                target,
                account,
                scope,
                condition: j.condition,
                partition: j.partition,
                principal_arn: j.principal_arn,
            }),
            (None, None, None) if j.condition.is_none() => None,
            _ => return Err("a plan that restricts names its target, its account and its scope"),
        };
        if (j.action == Action::None) != restriction.is_none() {
            return Err("a plan restricts someone exactly when it acts");
        }
        Ok(Plan {
            action: j.action,
            restriction,
            reason: j.reason,
            managed: j.managed_policies,
            tags: j.principal_tags,
            deactivate_keys: j.deactivate_access_keys,
            origin: j.origin_brake,
        })
    }
}

impl From<Plan> for PlanJson {
    fn from(p: Plan) -> Self {
        let (target, target_account, scope, condition, partition, principal_arn) =
            match p.restriction {
                Some(r) => (
                    Some(r.target),
                    Some(r.account),
                    Some(r.scope),
                    r.condition,
                    r.partition,
                    r.principal_arn,
                ),
                None => (None, None, None, None, None, None),
            };
        let (role_name, user_name) = match target {
            Some(Target::Role(r)) => (Some(r), None),
            Some(Target::User(u)) => (None, Some(u)),
            Some(Target::Account(_)) | None => (None, None),
        };
        PlanJson {
            action: p.action,
            scope,
            condition,
            target_account,
            partition,
            role_name,
            user_name,
            principal_arn,
            reason: p.reason,
            managed_policies: p.managed,
            principal_tags: p.tags,
            deactivate_access_keys: p.deactivate_keys,
            origin_brake: p.origin,
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
            restriction: None,
            reason: reason.into(),
            managed: Vec::new(),
            tags: BTreeMap::new(),
            deactivate_keys: Vec::new(),
            origin: None,
        }
    }

    /// The plan without what only the responder needs: what the backtest and alerts show.
    pub fn summary(&self) -> Plan {
        Plan {
            tags: BTreeMap::new(),
            restriction: self.restriction.clone().map(|r| Restriction {
                partition: None,
                principal_arn: None,
                ..r
            }),
            ..self.clone()
        }
    }

    /// Whom the deny of everything reaches, when the plan acts.
    pub fn scope(&self) -> Option<Scope> {
        self.restriction.as_ref().map(|r| r.scope)
    }

    /// The role or user restricted, when the plan acts.
    pub fn target(&self) -> Option<&Target> {
        self.restriction.as_ref().map(|r| &r.target)
    }

    /// The ARN of the principal a full plan is for (a summary omits it).
    pub fn principal_arn(&self) -> Option<&str> {
        self.restriction
            .as_ref()
            .and_then(|r| r.principal_arn.as_deref())
    }

    /// The condition narrowing the scope, if any.
    pub fn condition(&self) -> Option<&Condition> {
        self.restriction.as_ref().and_then(|r| r.condition.as_ref())
    }

    /// Every policy the plan attaches, by name, in order.
    pub fn policy_names(&self) -> Vec<String> {
        self.managed.clone()
    }
}

/// Control Tower's roles, which its own SCP forbids anyone else to edit.
fn is_control_tower_role(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name == "awscontroltowerexecution" || name.starts_with("aws-controltower-")
}

/// Why a principal is not contained for a burst of `kind` whose calls show `c`, or
/// `None` if it may be.
pub fn refusal(policy: &Policy, p: &Principal, kind: &str, c: &Culprit) -> Option<String> {
    // A `[principals]` rule that sets containment is the operator's explicit choice,
    // and overrides the service-role defaults below (never the checks before them).
    let explicit = policy
        .rule_for(&p.arn)
        .is_some_and(|r| r.containment.is_some());
    if policy.containment_for(&p.arn, kind) == Mode::Off {
        return Some("containment is off (alert-only mode)".into());
    }
    if let Some(why) = never_contained(policy, p) {
        return Some(why);
    }
    if let (PrincipalKind::Role { name, .. }, false) = (&p.kind, explicit) {
        // Exempt only when the service made every counted call: the name alone anyone
        // with iam:CreateRole can take, and a person using the role is contained.
        if let Some((service, hosts)) = service_role(name) {
            let by_service = c.without_invoked_by == 0
                && !c.invoked_by.is_empty()
                && c.invoked_by.iter().all(|h| hosts.contains(&h.as_str()));
            if by_service {
                return Some(format!(
                    "an AWS service role that only {service} assumes, and {service} made every counted call: containing it would stop {service} for everyone; alert only (a [principals] rule with `containment` overrides this)"
                ));
            }
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

/// Why `p` is never contained, by any means: protected, an anomalous identity, or one of
/// the tripwire's own member roles.
fn never_contained(policy: &Policy, p: &Principal) -> Option<String> {
    if policy.is_protected(&p.arn) {
        return Some("protected principal: alert only, never contained".into());
    }
    if let Some(a) = p.anomaly {
        return Some(format!("not contained: {a}"));
    }
    // The member stack's own roles: the responder refuses them by name (and the
    // containment role may not touch them), so a plan would promise what cannot happen.
    if let PrincipalKind::Role { name, .. } = &p.kind {
        if crate::names::is_member_role(name) {
            return Some(format!(
                "`{name}` is one of the tripwire's own member roles, which it never contains: a burst by it means its credentials are misused; handle it as tampering (rotate, and check the member stack); this page also goes to the alarm channel"
            ));
        }
    }
    None
}

/// Which of the principals IAM cannot contain `p` is, as `account_brake_for` names them.
fn brake_for(p: &Principal) -> Option<BrakeFor> {
    match &p.kind {
        PrincipalKind::Root
        | PrincipalKind::FederatedUser {
            issuer: FederationIssuer::Root,
        } => Some(BrakeFor::Root),
        PrincipalKind::IdentityCenterUser => Some(BrakeFor::IdentityCenter),
        PrincipalKind::Role { .. } if p.is_identity_center_role() => Some(BrakeFor::IdentityCenter),
        PrincipalKind::Role { name, .. } if is_control_tower_role(name) => {
            Some(BrakeFor::ControlTower)
        }
        _ => None,
    }
}

/// The account brake for `p`'s burst of `kind`, when the policy chooses it (a
/// `[principals]` rule, or `account_brake_for` naming what `p` is): the plan, or the
/// alert-only plan that says why it cannot be. `None` when the policy does not choose it.
fn account_brake(policy: &Policy, p: &Principal, kind: &str) -> Option<Plan> {
    let mode = policy.containment_for(&p.arn, kind);
    let chosen = match mode {
        Mode::AccountBrake => "a [principals] rule chooses the account brake for it".to_owned(),
        Mode::Off => return None,
        _ => {
            let what = brake_for(p).filter(|w| policy.account_brake_for.contains(w))?;
            format!(
                "IAM cannot contain it, and account_brake_for names `{}`",
                what.as_str()
            )
        }
    };
    if let Some(why) = never_contained(policy, p) {
        return Some(Plan::none(why));
    }
    if p.is_service_linked_role() {
        return Some(Plan::none(
            "a service-linked role: no SCP binds it, so the account brake would not stop it; alert only",
        ));
    }
    let account = match (&p.kind, &p.account) {
        (PrincipalKind::AwsService | PrincipalKind::Other(_), _) | (_, None) => {
            return Some(Plan::none(
                "the account brake binds an account's own principals, and the record names none",
            ))
        }
        (_, Some(a)) => a.clone(),
    };
    let Some(id) = policy.account_brake_policy.as_deref() else {
        return Some(Plan::none(format!(
            "{chosen}, but no account_brake_policy is deployed (the delegation template's output): alert only"
        )));
    };
    Some(Plan {
        action: Action::AccountBrake,
        restriction: Some(Restriction {
            target: Target::Account(account.clone()),
            account: account.clone(),
            scope: Scope::Account,
            condition: None,
            partition: Some(p.partition.clone()),
            principal_arn: Some(p.arn.clone()),
        }),
        reason: format!(
            "account brake: {chosen}; the service control policy {ACCOUNT_BRAKE_SCP} ({id}) on account {account} denies every principal there but the protected ones and the tripwire's own {} and the calls that set services destroying capacity",
            policy.deny_actions.join(", ")
        ),
        managed: vec![ACCOUNT_BRAKE_SCP.to_owned()],
        tags: BTreeMap::new(),
        deactivate_keys: Vec::new(),
        origin: None,
    })
}

/// The name an incident counts the sessions beyond its kept ones under.
pub const OTHER_SESSIONS: &str = "(other sessions)";

/// What an incident's counted calls show about who made them: the evidence a scope is
/// chosen on. Built from the incident, so the detector and the responder choose alike.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Culprit {
    /// Session names with the instances each terminated; [`OTHER_SESSIONS`]
    /// stands for names beyond those kept.
    pub sessions: Vec<String>,
    /// `userIdentity.principalId` values seen (role ID and session name).
    pub principal_ids: Vec<String>,
    /// `sourceIdentity` values seen.
    pub source_identities: Vec<String>,
    /// Counted calls that carried no `sourceIdentity`.
    pub without_source_identity: u64,
    /// Any call used instance-profile credentials (`ec2RoleDelivery`).
    pub instance_profile: bool,
    /// Counted calls made without them.
    pub without_instance_profile: u64,
    /// The services that made counted calls (`invokedBy`).
    pub invoked_by: Vec<String>,
    /// Counted calls no service made.
    pub without_invoked_by: u64,
    /// The source identity the identity provider set where the session chain began
    /// (a SAML assertion, a web identity token), as provenance joined it; a source
    /// identity a caller chose (`sts:SetSourceIdentity`) is not one.
    pub provider_source_identity: Option<String>,
    /// `userIdentity.accessKeyId` values seen.
    pub access_keys: Vec<String>,
    /// The principal the session chain began with, when provenance names its ARN.
    pub origin_principal: Option<String>,
}

impl Culprit {
    /// The evidence one call holds by itself.
    pub fn of_call(t: &crate::termination::Termination) -> Self {
        let s = &t.session;
        Culprit {
            sessions: s.name.iter().cloned().collect(),
            principal_ids: s.principal_id.iter().cloned().collect(),
            source_identities: s.source_identity.iter().cloned().collect(),
            without_source_identity: u64::from(s.source_identity.is_none()),
            instance_profile: s.ec2_role_delivery.is_some(),
            without_instance_profile: u64::from(s.ec2_role_delivery.is_none()),
            invoked_by: s.invoked_by.iter().cloned().collect(),
            without_invoked_by: u64::from(s.invoked_by.is_none()),
            provider_source_identity: t
                .origin
                .as_ref()
                .and_then(|o| o.provider_source_identity())
                .map(str::to_owned),
            access_keys: s.access_key_id.iter().cloned().collect(),
            origin_principal: t.origin.as_ref().and_then(|o| o.principal_arn.clone()),
        }
    }
}

use crate::record::is_instance_id;

/// Why a session name does not identify one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Volatile {
    /// One constant every run of a tool uses: the name is everyone's.
    Constant,
    /// Generated by an SDK per session: the runaway's next session has another.
    Generated,
    /// A timestamp or a counter.
    Numeric,
    /// A UUID or a long run of digits.
    Unique,
}

impl Volatile {
    fn as_str(self) -> &'static str {
        match self {
            Volatile::Constant => "a constant every run of the tool uses",
            Volatile::Generated => "generated by an SDK for each session",
            Volatile::Numeric => "numeric (a timestamp or counter)",
            Volatile::Unique => "unique per run (a UUID or a timestamp)",
        }
    }
}

/// Session names that do not identify one run: generated per session by SDKs and tools
/// (so the runaway's next session has another), or one constant every run uses (so the
/// name is everyone's, and denying it would deny every run).
fn volatile_session(name: &str) -> Option<Volatile> {
    // Defaults of widely used tools, shared by every run that does not set a name.
    const CONSTANT: [&str; 3] = [
        "GitHubActions", // aws-actions/configure-aws-credentials
        "aws-go-sdk",
        "botocore-session",
    ];
    // Prefixes SDKs put before a timestamp or a random number.
    const GENERATED: [&str; 6] = [
        "botocore-session-",
        "aws-go-sdk-",
        "aws-sdk-java-",
        "aws-sdk-js-",
        "aws-sdk-rust-",
        "Boto3Session",
    ];
    if CONSTANT.contains(&name) {
        return Some(Volatile::Constant);
    }
    if GENERATED.iter().any(|p| name.starts_with(p)) {
        return Some(Volatile::Generated);
    }
    let digits = name.bytes().filter(u8::is_ascii_digit).count();
    if !name.is_empty() && digits == name.len() {
        return Some(Volatile::Numeric);
    }
    // A UUID or a long run of digits: unique per run.
    let hexdash = name.len() == 36
        && name.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit())
        && name.bytes().filter(|b| *b == b'-').count() == 4;
    if hexdash
        || name
            .as_bytes()
            .windows(10)
            .any(|w| w.iter().all(u8::is_ascii_digit))
    {
        return Some(Volatile::Unique);
    }
    None
}

/// The scope a role's containment narrows to, its condition, and why.
fn role_scope(p: &Principal, c: &Culprit) -> (Scope, Option<Condition>, String) {
    let account = p.account.as_deref().unwrap_or_default();
    // A source identity scopes containment only when the identity provider set it: one
    // a caller chose with sts:SetSourceIdentity could be a colleague's, and the deny
    // would land on them while the caller's own sessions went on.
    if let [one] = c.source_identities.as_slice() {
        if c.without_source_identity == 0 && c.provider_source_identity.as_ref() == Some(one) {
            return (
                Scope::Session,
                Some(Condition {
                    key: ConditionKey::SourceIdentity,
                    values: vec![one.clone()],
                }),
                format!("every counted call carried source identity `{one}`, set by the identity provider where the session chain began; it survives role chaining and new sessions"),
            );
        }
    }
    let [name] = c.sessions.as_slice() else {
        return (
            Scope::Role,
            None,
            if c.sessions.is_empty() {
                "the calls name no session".into()
            } else {
                format!("{} sessions made the counted calls", c.sessions.len())
            },
        );
    };
    if name == OTHER_SESSIONS {
        return (Scope::Role, None, "too many sessions to name one".into());
    }
    // Why the session's own deny reaches less than one might think, if it does.
    let caveat = if is_instance_id(name) {
        if c.instance_profile && c.without_instance_profile == 0 {
            return (
                Scope::Instance,
                Some(Condition {
                    key: ConditionKey::SourceInstanceArn,
                    values: vec![format!("arn:{}:ec2:*:{account}:instance/{name}", p.partition)],
                }),
                format!(
                    "every counted call used instance {name}'s role credentials (ec2RoleDelivery); the deny holds across credential rotation"
                ),
            );
        }
        // An instance's role credentials carry its ID as the session name and
        // `ec2RoleDelivery`; a session merely named like an instance is anyone's choice,
        // and an instance deny would miss its calls and cut off the real instance.
        Some(format!("session `{name}` is named like an instance, but not every counted call carried ec2RoleDelivery: a name any caller can choose, so the session, not an instance"))
    } else if c.instance_profile {
        Some(format!(
            "instance-profile credentials under session `{name}`, which is not an instance ID"
        ))
    } else {
        match volatile_session(name) {
            // Every run's name: denying it would deny every run of the tool.
            Some(why @ Volatile::Constant) => {
                return (
                    Scope::Role,
                    None,
                    format!("session name `{name}` is {}", why.as_str()),
                )
            }
            Some(why) => Some(format!(
                "session name `{name}` is {}: its next session is braked, not denied",
                why.as_str()
            )),
            None => None,
        }
    };
    let suffix = format!(":{name}");
    match c.principal_ids.as_slice() {
        [id] if id.ends_with(&suffix) && id.len() > suffix.len() => (
            Scope::Session,
            Some(Condition {
                key: ConditionKey::UserId,
                values: vec![id.clone()],
            }),
            match caveat {
                Some(caveat) => {
                    format!("one session, `{name}`, made every counted call ({caveat})")
                }
                None => format!("one stable session, `{name}`, made every counted call"),
            },
        ),
        _ => (
            Scope::Role,
            None,
            format!("session `{name}` has no single principal ID to deny"),
        ),
    }
}

/// Why a burst of `kind` by `arn` whose newest call was made at `newest` is history at
/// `now`, not something to contain, if it is: replayed from an EventBridge archive, or
/// older than its window plus `max_delivery_delay` (a late redrive). A session issued
/// since then would be revoked for what happened before it existed.
pub fn stale(
    policy: &Policy,
    arn: &str,
    kind: &str,
    newest: Millis,
    now: Millis,
    replay: Option<&str>,
) -> Option<String> {
    if let Some(name) = replay {
        return Some(format!(
            "replayed from an EventBridge archive (`{name}`): history is never contained"
        ));
    }
    let limit = policy
        .window_for(arn, kind)
        .saturating_add(policy.max_delivery_delay);
    let age = now.saturating_sub(newest);
    (age > limit).then(|| {
        format!(
            "the burst's newest call is {} min old, past its window plus max_delivery_delay ({} min): a late delivery is never contained",
            age / 60_000,
            limit / 60_000
        )
    })
}

/// Renders the plan for `p`, whose incident's calls (destroying resources of `kind`)
/// show `culprit`.
pub fn plan(policy: &Policy, p: &Principal, culprit: &Culprit, kind: &str) -> Plan {
    if let Some(brake) = account_brake(policy, p, kind) {
        return brake;
    }
    if let Some(reason) = refusal(policy, p, kind, culprit) {
        return Plan::none(reason);
    }
    let (target, account) = match (&p.kind, &p.account) {
        (PrincipalKind::Role { name, .. }, Some(a)) => (Target::Role(name.clone()), a),
        (
            PrincipalKind::User { name, .. }
            | PrincipalKind::FederatedUser {
                issuer: FederationIssuer::User { name, .. },
            },
            Some(a),
        ) => (Target::User(name.clone()), a),
        // `refusal` already named a reason for every other kind.
        _ => return Plan::none("nothing to restrict"),
    };
    let (scope, condition, why) = if target.is_role() {
        role_scope(p, culprit)
    } else if matches!(p.kind, PrincipalKind::FederatedUser { .. }) {
        (
            Scope::User,
            None,
            "federation tokens are bound by the IAM user that issued them".into(),
        )
    } else {
        (
            Scope::User,
            None,
            "an IAM user: its keys and the sessions they issue are one identity to IAM".into(),
        )
    };
    let whole = if target.is_role() { "role" } else { "user" };
    let brake = format!(
        "every session of the {whole} is denied {} and undoing containment ({BRAKE_POLICY})",
        policy.deny_actions.join(", ")
    );
    let mode = policy.containment_for(&p.arn, kind);
    let whole_scope = if target.is_role() {
        Scope::Role
    } else {
        Scope::User
    };
    let (action, scope, condition, managed, tags, what) = match mode {
        Mode::Quarantine => (
            Action::Quarantine,
            whole_scope,
            None,
            vec![QUARANTINE_MANAGED_POLICY.to_string()],
            BTreeMap::new(),
            format!("quarantine: every session of the {whole} is denied everything ({QUARANTINE_MANAGED_POLICY})"),
        ),
        Mode::Brake => (
            Action::Brake,
            whole_scope,
            None,
            vec![BRAKE_POLICY.to_string()],
            BTreeMap::new(),
            format!("brake: {brake}"),
        ),
        _ => match condition.as_ref().map(|c| (c, scope_tags(c))) {
            Some((c, Ok(tags))) => (
                Action::Revoke,
                scope,
                Some(c.clone()),
                vec![BRAKE_POLICY.to_string(), SCOPE_POLICY.to_string()],
                tags,
                format!(
                    "revoke, scope {}: {why}; it is denied everything ({SCOPE_POLICY}, through its {} tag), and {brake}",
                    scope.as_str(),
                    c.key.tag()
                ),
            ),
            // No single culprit to name: the whole principal is only braked. IAM takes
            // no date from a tag (policy variables are for string and ARN operators), so
            // "sessions issued before now" would need a document written per incident,
            // and a role that may write documents may write an Allow.
            unnamed => (
                Action::Brake,
                whole_scope,
                None,
                vec![BRAKE_POLICY.to_string()],
                BTreeMap::new(),
                format!(
                    "brake: no single culprit can be denied everything ({}); {brake}; set containment = \"quarantine\" for it under [principals] to deny it everything",
                    match unnamed {
                        Some((_, Err(e))) => e,
                        _ => why,
                    }
                ),
            ),
        },
    };
    // Only an IAM user's own long-term keys (`AKIA`): session keys (`ASIA`) cannot be
    // deactivated (the brake reaches them), and a federated user's keys belong to the
    // broker's sessions, not to a key of the user's own.
    let deactivate_keys: Vec<String> =
        if policy.deactivate_keys && matches!(p.kind, PrincipalKind::User { .. }) {
            culprit
                .access_keys
                .iter()
                .filter(|k| k.starts_with("AKIA"))
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
    let what = if deactivate_keys.is_empty() {
        what
    } else {
        format!(
            "{what}; access keys {} deactivated",
            deactivate_keys.join(", ")
        )
    };
    let (origin, what) = match culprit
        .origin_principal
        .as_deref()
        .filter(|o| !o.eq_ignore_ascii_case(&p.arn))
    {
        None => (None, what),
        Some(arn) => match origin_brake(policy, arn, kind) {
            Ok(o) => (
                Some(Box::new(o)),
                format!("{what}; the session chain began with {arn}, which is braked too ({BRAKE_POLICY})"),
            ),
            Err(why) => (
                None,
                format!("{what}; the session chain began with {arn}, which is not braked: {why}"),
            ),
        },
    };
    Plan {
        action,
        restriction: Some(Restriction {
            target,
            account: account.clone(),
            scope,
            condition,
            partition: Some(p.partition.clone()),
            principal_arn: Some(p.arn.clone()),
        }),
        reason: what,
        managed,
        tags,
        deactivate_keys,
        origin,
    }
}

/// The brake for `arn`, the principal a burst's session chain began with: it did not
/// make the calls, so it is only braked (its doors closed: it cannot assume the role
/// again), under the same refusals as any principal.
fn origin_brake(policy: &Policy, arn: &str, kind: &str) -> Result<Plan, String> {
    let e = crate::principal::iam_entity(arn)?;
    let op =
        crate::principal::principal_of(arn, if e.is_role { "AssumedRole" } else { "IAMUser" })?;
    if let Some(why) = refusal(policy, &op, kind, &Culprit::default()) {
        return Err(why);
    }
    let (target, scope) = if e.is_role {
        (Target::Role(e.name), Scope::Role)
    } else {
        (Target::User(e.name), Scope::User)
    };
    Ok(Plan {
        action: Action::Brake,
        reason: format!(
            "brake: the burst's session chain began with it; every session of it is denied {} and the doors around them ({BRAKE_POLICY})",
            policy.deny_actions.join(", ")
        ),
        restriction: Some(Restriction {
            target,
            account: e.account,
            scope,
            condition: None,
            partition: Some(e.partition),
            principal_arn: Some(arn.to_owned()),
        }),
        managed: vec![BRAKE_POLICY.to_string()],
        tags: BTreeMap::new(),
        deactivate_keys: Vec::new(),
        origin: None,
    })
}

#[derive(Serialize)]
struct Document<'a> {
    #[serde(rename = "Version")]
    version: &'static str,
    #[serde(rename = "Statement")]
    statement: Vec<Statement<'a>>,
}

#[derive(Serialize)]
struct Statement<'a> {
    #[serde(rename = "Sid")]
    sid: &'static str,
    #[serde(rename = "Effect")]
    effect: &'static str,
    #[serde(rename = "Action")]
    action: Vec<&'a str>,
    #[serde(rename = "Resource")]
    resource: &'a str,
    #[serde(rename = "Condition", skip_serializing_if = "Option::is_none")]
    condition: Option<serde_json::Value>,
}

fn deny<'a>(
    sid: &'static str,
    action: Vec<&'a str>,
    resource: &'a str,
    condition: Option<serde_json::Value>,
) -> Statement<'a> {
    Statement {
        sid,
        effect: "Deny",
        action,
        resource,
        condition,
    }
}

fn render(statement: Vec<Statement<'_>>) -> String {
    serde_json::to_string(&Document {
        version: "2012-10-17",
        statement,
    })
    .unwrap_or_default()
}

/// The tags that name `c`'s culprit to the scope policy, or why no tag can.
fn scope_tags(c: &Condition) -> Result<BTreeMap<String, String>, String> {
    let [value] = c.values.as_slice() else {
        return Err(format!("{} values of {} to deny", c.values.len(), c.key));
    };
    let tagged = c.key.tag_value(value);
    if !is_tag_value(&tagged) {
        return Err(format!(
            "`{tagged}` ({}) holds a character no IAM tag value can",
            c.key
        ));
    }
    Ok(BTreeMap::from([(c.key.tag().to_owned(), tagged)]))
}

/// The managed scope policy: whoever the principal's `tripwire-contain-*` tags name (an
/// instance, a source identity, a session) is denied everything. IAM substitutes a
/// policy variable in a string condition at request time; each statement also requires
/// its tag, so an untagged principal is denied nothing by it. Static, so the member
/// stack creates it once per account. An instance is tagged by its ID: its role
/// credentials may call any region, and its ARN names the region it runs in.
pub fn scope_document() -> String {
    let by = |sid: &'static str, key: ConditionKey, value: String, tag: &str| {
        // Wildcards only in the instance's ARN: no tag value can hold one.
        let op = match key {
            ConditionKey::SourceInstanceArn => "StringLike",
            _ => "StringEquals",
        };
        deny(
            sid,
            vec!["*"],
            "*",
            Some(serde_json::json!({
                op: { key.as_str(): value },
                "Null": { format!("aws:PrincipalTag/{tag}"): "false" },
            })),
        )
    };
    let var = |tag: &str| format!("${{aws:PrincipalTag/{tag}}}");
    render(vec![
        by(
            "TripwireContainInstance",
            ConditionKey::SourceInstanceArn,
            format!(
                "arn:*:ec2:*:${{aws:PrincipalAccount}}:instance/{}",
                var(INSTANCE_TAG)
            ),
            INSTANCE_TAG,
        ),
        by(
            "TripwireContainSourceIdentity",
            ConditionKey::SourceIdentity,
            var(SOURCE_IDENTITY_TAG),
            SOURCE_IDENTITY_TAG,
        ),
        by(
            "TripwireContainSession",
            ConditionKey::UserId,
            var(SESSION_TAG),
            SESSION_TAG,
        ),
    ])
}

/// IAM calls that would undo containment: policies, boundaries, trust, tags and keys.
/// Denied on every resource, not only the principal itself: a braked principal that
/// may edit another role it can assume would otherwise walk around its brake.
pub const UNDO_ACTIONS: [&str; 28] = [
    "iam:PutRolePolicy",
    "iam:DeleteRolePolicy",
    "iam:AttachRolePolicy",
    "iam:DetachRolePolicy",
    "iam:PutRolePermissionsBoundary",
    "iam:DeleteRolePermissionsBoundary",
    "iam:UpdateAssumeRolePolicy",
    "iam:UpdateRole",
    "iam:TagRole",
    "iam:UntagRole",
    "iam:DeleteRole",
    "iam:PutUserPolicy",
    "iam:DeleteUserPolicy",
    "iam:AttachUserPolicy",
    "iam:DetachUserPolicy",
    "iam:PutUserPermissionsBoundary",
    "iam:DeleteUserPermissionsBoundary",
    "iam:TagUser",
    "iam:UntagUser",
    "iam:DeleteUser",
    "iam:CreateAccessKey",
    "iam:UpdateAccessKey",
    "iam:CreateLoginProfile",
    "iam:UpdateLoginProfile",
    // The brake itself is a managed policy: no new version of it, no deleting it.
    "iam:CreatePolicyVersion",
    "iam:SetDefaultPolicyVersion",
    "iam:DeletePolicyVersion",
    "iam:DeletePolicy",
];

/// Doors the watched calls leave open: another identity (assuming a role, minting a
/// federation token, creating a user, role, group or provider and attaching policy to
/// it), a service acting with a role or on instances (passing a role, SSM commands and
/// automation, a function's code, stack writes), and the calls that make a service
/// destroy capacity without deciding terminations by name (health, refreshes, scaling
/// policies, warm pools, compute environments). A braked session that could make any of
/// these would walk out through it. The price: every session of a braked principal,
/// the innocent ones of a shared role included, loses them until `tripwire release`.
pub const DOOR_ACTIONS: [&str; 42] = [
    "sts:AssumeRole",
    "sts:GetFederationToken",
    "iam:PassRole",
    "iam:CreateUser",
    "iam:CreateRole",
    "iam:CreateGroup",
    "iam:AddUserToGroup",
    "iam:PutGroupPolicy",
    "iam:AttachGroupPolicy",
    "iam:CreatePolicy",
    "iam:CreateInstanceProfile",
    "iam:AddRoleToInstanceProfile",
    "iam:CreateOpenIDConnectProvider",
    "iam:CreateSAMLProvider",
    "iam:UpdateSAMLProvider",
    "ssm:SendCommand",
    "ssm:StartAutomationExecution",
    "ssm:StartSession",
    "ssm:CreateAssociation",
    "ssm:UpdateAssociation",
    "ssm:StartChangeRequestExecution",
    "lambda:UpdateFunctionCode",
    "lambda:CreateFunction",
    "autoscaling:SetInstanceHealth",
    "autoscaling:StartInstanceRefresh",
    "autoscaling:ExecutePolicy",
    "autoscaling:PutScalingPolicy",
    "autoscaling:PutScheduledUpdateGroupAction",
    "autoscaling:DeleteWarmPool",
    "autoscaling:PutWarmPool",
    "batch:UpdateComputeEnvironment",
    "cloudformation:CreateStack",
    "cloudformation:UpdateStack",
    "cloudformation:CreateChangeSet",
    "cloudformation:ExecuteChangeSet",
    "cloudformation:UpdateStackSet",
    "cloudformation:CreateStackInstances",
    "cloudformation:UpdateStackInstances",
    "cloudformation:DeleteStackInstances",
    "cloudformation:DeleteStackSet",
    "eks:CreateAccessEntry",
    "eks:AssociateAccessPolicy",
];

/// The managed brake: every session of the principal it is attached to is denied
/// `deny_actions` and the calls that decide terminations, the doors around them
/// ([`DOOR_ACTIONS`]), and undoing containment. Static, so the member stack creates it
/// once per account.
pub fn brake_document(deny_actions: &[String]) -> String {
    let initiators = crate::catalogue::initiator_actions();
    let mut stop: Vec<&str> = deny_actions.iter().map(String::as_str).collect();
    stop.extend(
        initiators
            .iter()
            .map(String::as_str)
            .filter(|a| !deny_actions.iter().any(|d| d == a)),
    );
    render(vec![
        deny("TripwireBrake", stop, "*", None),
        deny(
            "TripwireNoUndoingContainment",
            UNDO_ACTIONS.to_vec(),
            "*",
            None,
        ),
        deny(
            "TripwireBrakeClosesTheDoors",
            DOOR_ACTIONS
                .iter()
                .copied()
                .filter(|a| !deny_actions.iter().any(|d| d == a))
                .collect(),
            "*",
            None,
        ),
    ])
}

/// The calls among [`DOOR_ACTIONS`] that make a service destroy capacity without naming
/// instances: what the account brake denies beside the calls that decide terminations,
/// since no SCP binds the service-linked role that then carries them out.
pub const CAPACITY_ACTIONS: [&str; 8] = [
    "autoscaling:SetInstanceHealth",
    "autoscaling:StartInstanceRefresh",
    "autoscaling:ExecutePolicy",
    "autoscaling:PutScalingPolicy",
    "autoscaling:PutScheduledUpdateGroupAction",
    "autoscaling:DeleteWarmPool",
    "autoscaling:PutWarmPool",
    "batch:UpdateComputeEnvironment",
];

/// The most characters a service control policy may hold (Organizations' quota).
pub const SCP_MAX_CHARS: usize = 5120;

/// The account brake's service control policy: every principal of the account it is
/// attached to (the root user, Identity Center and Control Tower roles included, whom no
/// IAM policy binds) is denied the policy's `deny_actions`, the calls that decide
/// terminations and the calls that make services destroy capacity; the protected
/// principals and the tripwire's own member roles are not. SCPs never bind service-linked
/// roles, hence the calls that set them to work. Minified, so the size is the one
/// Organizations counts; an error names the size when it passes the quota.
pub fn account_brake_scp(policy: &Policy) -> Result<String, String> {
    let mut stop: Vec<&str> = Vec::new();
    let initiators = crate::catalogue::initiator_actions();
    for a in policy
        .deny_actions
        .iter()
        .map(String::as_str)
        .chain(initiators.iter().map(String::as_str))
        .chain(CAPACITY_ACTIONS)
    {
        if !stop.contains(&a) {
            stop.push(a);
        }
    }
    // The exemptions, as IAM matches them (case-sensitively, ARN part by ARN part): a
    // protected glob written for `arn:aws:` covers every partition, as the policy reads
    // it; the member roles by name, at any path, in any partition.
    let mut exempt: Vec<String> = policy
        .protected_principals
        .iter()
        .map(|g| {
            let written = g.to_string();
            match written.strip_prefix(crate::policy::ANY_PARTITION_PREFIX) {
                Some(rest) if g.any_partition() => format!("arn:*:{rest}"),
                _ => written,
            }
        })
        .collect();
    let containment = policy.containment_role.as_str();
    for name in crate::names::MEMBER_ROLES
        .iter()
        .copied()
        .chain([containment])
    {
        for arn in [
            format!("arn:*:iam::*:role/{name}"),
            format!("arn:*:iam::*:role/*/{name}"),
        ] {
            if !exempt.contains(&arn) {
                exempt.push(arn);
            }
        }
    }
    let doc = render(vec![deny(
        "TripwireAccountBrake",
        stop,
        "*",
        Some(serde_json::json!({ "ArnNotLike": { "aws:PrincipalArn": exempt } })),
    )]);
    let chars = doc.chars().count();
    if chars > SCP_MAX_CHARS {
        return Err(format!(
            "the account brake's SCP is {chars} characters, over Organizations' {SCP_MAX_CHARS}: fewer deny_actions or protected_principals"
        ));
    }
    Ok(doc)
}

/// Organizations' most service control policies attached directly to one account.
pub const SCP_MAX_PER_TARGET: usize = 5;

/// What Organizations shows before the account brake is attached to an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrakeTarget {
    /// The organization's management account, which no SCP binds.
    pub management_account: String,
    /// The IDs of the SCPs attached directly to the account.
    pub attached: Vec<String>,
    /// The brake policy's content as Organizations holds it.
    pub content: String,
}

/// What braking an account takes, once Organizations has been read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrakeStep {
    /// The brake is already attached (a redelivery, or another incident's brake).
    Attached,
    /// Attach it.
    Attach,
}

/// Whether `account` can be braked with the policy's brake as `t` shows it, or why not:
/// never past Organizations' limits (the brake detaches nothing of the organization's),
/// never the management account (no SCP binds it), and never a brake whose content is
/// not this policy's (its exemptions would be someone else's).
pub fn brake_step(policy: &Policy, account: &str, t: &BrakeTarget) -> Result<BrakeStep, String> {
    let id = policy
        .account_brake_policy
        .as_deref()
        .ok_or("no account_brake_policy is deployed")?;
    if account == t.management_account {
        return Err(format!(
            "account {account} is the organization's management account, which no SCP binds: rotate its root credentials and remove the caller by hand"
        ));
    }
    let want: serde_json::Value = serde_json::from_str(&account_brake_scp(policy)?)
        .map_err(|e| format!("the brake SCP does not render: {e}"))?;
    let have: Option<serde_json::Value> = serde_json::from_str(&t.content).ok();
    if have.as_ref() != Some(&want) {
        return Err(format!(
            "{id} ({ACCOUNT_BRAKE_SCP}) is not the policy's brake (its statements differ from `tripwire check-policy --get account_brake_scp`): update the delegation stack's BrakePolicyContent, so the brake exempts whom the policy protects"
        ));
    }
    if t.attached.iter().any(|a| a == id) {
        return Ok(BrakeStep::Attached);
    }
    if t.attached.len() >= SCP_MAX_PER_TARGET {
        return Err(format!(
            "account {account} has {} SCPs attached directly ({}), Organizations' most: the brake detaches none of the organization's; attach it to the account's OU by hand, or detach one",
            t.attached.len(),
            t.attached.join(", ")
        ));
    }
    Ok(BrakeStep::Attach)
}

/// The managed quarantine: deny everything.
pub fn quarantine_document() -> String {
    render(vec![deny("TripwireQuarantine", vec!["*"], "*", None)])
}

/// What the detector asks the responder to do: contain the principal of the incident
/// it recorded. Only the key and the ID: the responder reads the incident from the
/// table and plans from its own policy, so a forged request can name nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainmentRequest {
    /// The incident's ID.
    pub incident_id: String,
    /// The incident key's principal.
    pub principal_arn: String,
    /// The incident key's account (where the instances died).
    pub account: String,
    /// The incident key's resource type (requests written before other types were
    /// counted are instances').
    #[serde(default = "instances")]
    pub resource_type: String,
}

fn instances() -> String {
    crate::catalogue::EC2_INSTANCE.to_owned()
}

impl ContainmentRequest {
    /// The key of the incident it names.
    pub fn key(&self) -> crate::window::Key {
        crate::window::Key::of(
            crate::window::Lane::Burst,
            &self.principal_arn,
            &self.account,
            &self.resource_type,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_account_brake_scp_denies_the_doors_and_exempts_the_protected_and_our_roles() {
        let policy = Policy::from_toml(
            "protected_principals = [\"arn:aws:iam::*:role/BreakGlass*\", \"arn:aws-us-gov:iam::*:role/Gov*\"]",
        )
        .unwrap();
        let doc: serde_json::Value =
            serde_json::from_str(&account_brake_scp(&policy).unwrap()).unwrap();
        let st = &doc["Statement"][0];
        assert_eq!(
            (st["Effect"].as_str(), st["Resource"].as_str()),
            (Some("Deny"), Some("*"))
        );
        let actions: Vec<&str> = st["Action"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        for a in [
            "ec2:TerminateInstances",
            "autoscaling:DeleteAutoScalingGroup",
            "autoscaling:SetInstanceHealth",
            "rds:DeleteDBCluster",
        ] {
            assert!(actions.contains(&a), "{a}");
        }
        let mut unique = actions.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), actions.len(), "each action once");
        let exempt = st["Condition"]["ArnNotLike"]["aws:PrincipalArn"]
            .as_array()
            .unwrap();
        // `arn:aws:` covers every partition, as the policy reads it; a named one only itself.
        assert_eq!(exempt[0], "arn:*:iam::*:role/BreakGlass*");
        assert_eq!(exempt[1], "arn:aws-us-gov:iam::*:role/Gov*");
        assert!(exempt.contains(&"arn:*:iam::*:role/tripwire-containment".into()));
        assert!(
            !exempt
                .iter()
                .any(|e| e.as_str().unwrap().contains("tripwire-*")),
            "no name but ours"
        );
        // Past Organizations' quota, it says so rather than shipping a policy AWS refuses.
        let many: Vec<String> = (0..200)
            .map(|k| format!("\"arn:aws:iam::*:role/protected-{k:03}\""))
            .collect();
        let huge =
            Policy::from_toml(&format!("protected_principals = [{}]", many.join(","))).unwrap();
        let err = account_brake_scp(&huge).unwrap_err();
        assert!(err.contains("over Organizations' 5120"), "{err}");
    }
    use crate::names::managed_policy_arn;

    #[test]
    fn the_brake_attaches_once_within_the_limits_and_never_a_brake_not_the_policys() {
        let policy = Policy::from_toml("account_brake_policy = \"p-brake0001\"").unwrap();
        let ours = account_brake_scp(&policy).unwrap();
        let t = |attached: &[&str], content: &str| BrakeTarget {
            management_account: "111111111111".into(),
            attached: attached.iter().map(|a| (*a).to_owned()).collect(),
            content: content.to_owned(),
        };
        let full = ["p-FullAWSAccess", "p-a0000001", "p-a0000002", "p-a0000003"];
        // Pretty-printed by someone's console, it is the same document.
        let pretty = serde_json::to_string_pretty(
            &serde_json::from_str::<serde_json::Value>(&ours).unwrap(),
        )
        .unwrap();
        assert_eq!(
            brake_step(&policy, "222222222222", &t(&full, &pretty)),
            Ok(BrakeStep::Attach)
        );
        let mut with = full.to_vec();
        with.push("p-brake0001");
        assert_eq!(
            brake_step(&policy, "222222222222", &t(&with, &ours)),
            Ok(BrakeStep::Attached)
        );
        let mut five = full.to_vec();
        five.push("p-a0000004");
        let err = brake_step(&policy, "222222222222", &t(&five, &ours)).unwrap_err();
        assert!(
            err.contains("5 SCPs") && err.contains("detaches none"),
            "{err}"
        );
        let err = brake_step(&policy, "111111111111", &t(&[], &ours)).unwrap_err();
        assert!(err.contains("management account"), "{err}");
        // A brake with other exemptions (a stale template) is never attached.
        let other = Policy::from_toml(
            "account_brake_policy = \"p-brake0001\"\nprotected_principals = [\"arn:aws:iam::*:role/Other\"]",
        )
        .unwrap();
        let stale = account_brake_scp(&other).unwrap();
        let err = brake_step(&policy, "222222222222", &t(&[], &stale)).unwrap_err();
        assert!(err.contains("not the policy's brake"), "{err}");
        let err = brake_step(&policy, "222222222222", &t(&[], "not json")).unwrap_err();
        assert!(err.contains("not the policy's brake"), "{err}");
        // No brake deployed: nothing to attach.
        let none = Policy::from_toml("").unwrap();
        assert!(brake_step(&none, "222222222222", &t(&[], &ours)).is_err());
    }

    #[test]
    fn an_account_plan_round_trips_and_names_no_role_or_user() {
        let j = serde_json::json!({"action": "account_brake", "reason": "r", "scope": "account",
            "target_account": "222222222222", "managed_policies": ["tripwire-account-brake"]});
        let plan: Plan = serde_json::from_value(j.clone()).unwrap();
        assert_eq!(plan.target(), Some(&Target::Account("222222222222".into())));
        assert_eq!(serde_json::to_value(&plan).unwrap(), j);
        let mut both = j.clone();
        both["role_name"] = "app".into();
        assert!(serde_json::from_value::<Plan>(both).is_err());
    }

    #[test]
    fn a_plan_restricts_someone_exactly_when_it_acts() {
        let read = |j: serde_json::Value| serde_json::from_value::<Plan>(j).map(|p| p.action);
        let whom = serde_json::json!({"action": "revoke", "reason": "r", "scope": "role",
            "target_account": "222222222222", "role_name": "app"});
        assert_eq!(read(whom.clone()).unwrap(), Action::Revoke);
        // Acting on nobody, or naming someone without acting, is refused.
        assert!(read(serde_json::json!({"action": "revoke", "reason": "r"})).is_err());
        let mut idle = whom.clone();
        idle["action"] = "none".into();
        assert!(read(idle).is_err());
        // Half a target is no target.
        for missing in ["scope", "target_account", "role_name"] {
            let mut half = whom.clone();
            half.as_object_mut().unwrap().remove(missing);
            assert!(read(half).is_err(), "{missing}");
        }
        let none = Plan::alert_only("off");
        assert_eq!(
            serde_json::to_value(&none).unwrap(),
            serde_json::json!({"action": "none", "reason": "off"})
        );
        assert!(none.target().is_none() && none.scope().is_none());
    }

    fn role_plan(mode: &str, culprit: &Culprit) -> Plan {
        let policy = Policy::from_toml(&format!("containment = \"{mode}\"")).unwrap();
        let p = Principal {
            arn: "arn:aws:iam::222222222222:role/app".into(),
            kind: PrincipalKind::Role {
                name: "app".into(),
                path: "/".into(),
                path_known: true,
            },
            account: Some("222222222222".into()),
            partition: "aws-us-gov".into(),
            anomaly: None,
        };
        plan(&policy, &p, culprit, crate::catalogue::EC2_INSTANCE)
    }

    #[test]
    fn the_culprit_is_named_by_tag_and_the_documents_are_exactly_what_iam_stores() {
        let one = Culprit {
            sessions: vec!["i-0a1b2c3d4e5f60718".into()],
            instance_profile: true,
            ..Culprit::default()
        };
        let p = role_plan("revoke", &one);
        assert_eq!(p.action, Action::Revoke);
        assert_eq!(p.managed, [BRAKE_POLICY, SCOPE_POLICY]);
        assert_eq!(
            p.tags,
            BTreeMap::from([(INSTANCE_TAG.into(), "i-0a1b2c3d4e5f60718".into())])
        );
        // The summary keeps the condition, not the tags that carry it.
        assert!(p.summary().tags.is_empty() && p.summary().condition().is_some());
        // As values: a condition's key order depends on serde_json's features.
        let doc = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap();
        assert_eq!(
            doc(&scope_document()),
            doc(
                r#"{"Version":"2012-10-17","Statement":[{"Sid":"TripwireContainInstance","Effect":"Deny","Action":["*"],"Resource":"*","Condition":{"Null":{"aws:PrincipalTag/tripwire-contain-instance":"false"},"StringLike":{"ec2:SourceInstanceARN":"arn:*:ec2:*:${aws:PrincipalAccount}:instance/${aws:PrincipalTag/tripwire-contain-instance}"}}},{"Sid":"TripwireContainSourceIdentity","Effect":"Deny","Action":["*"],"Resource":"*","Condition":{"Null":{"aws:PrincipalTag/tripwire-contain-source-identity":"false"},"StringEquals":{"aws:SourceIdentity":"${aws:PrincipalTag/tripwire-contain-source-identity}"}}},{"Sid":"TripwireContainSession","Effect":"Deny","Action":["*"],"Resource":"*","Condition":{"Null":{"aws:PrincipalTag/tripwire-contain-session":"false"},"StringEquals":{"aws:userid":"${aws:PrincipalTag/tripwire-contain-session}"}}}]}"#
            )
        );
        assert_eq!(
            managed_policy_arn("aws-us-gov", "222222222222", BRAKE_POLICY),
            "arn:aws-us-gov:iam::222222222222:policy/tripwire/tripwire-brake"
        );
    }

    #[test]
    fn without_one_culprit_to_name_revoke_brakes_and_says_why() {
        // No session at all: nothing to deny everything to, and no cutoff to write.
        let p = role_plan("revoke", &Culprit::default());
        assert_eq!((p.action, p.scope()), (Action::Brake, Some(Scope::Role)));
        assert_eq!(p.managed, [BRAKE_POLICY]);
        assert!(p.tags.is_empty() && p.condition().is_none());
        assert!(
            p.reason.contains("the calls name no session"),
            "{}",
            p.reason
        );
        // A session name with a comma is a valid name but no tag value.
        let comma = Culprit {
            sessions: vec!["ops,night".into()],
            principal_ids: vec!["AROA222222222222:ops,night".into()],
            ..Culprit::default()
        };
        let p = role_plan("revoke", &comma);
        assert_eq!(p.action, Action::Brake);
        assert!(p.reason.contains("no IAM tag value can"), "{}", p.reason);
        assert!(is_tag_value("AROA222222222222:jane@example.com") && !is_tag_value("a,b"));
        assert!(!is_tag_value(&"x".repeat(257)) && is_tag_value(&"x".repeat(256)));
    }

    #[test]
    fn the_brake_denies_the_actions_the_initiators_and_undoing_itself() {
        let doc: serde_json::Value =
            serde_json::from_str(&brake_document(&["ec2:TerminateInstances".into()])).unwrap();
        let st = doc["Statement"].as_array().unwrap();
        assert!(st.iter().all(|s| s["Effect"] == "Deny"));
        let actions = |i: usize| -> Vec<&str> {
            st[i]["Action"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|a| a.as_str())
                .collect()
        };
        assert_eq!(actions(0)[0], "ec2:TerminateInstances");
        for a in [
            "autoscaling:DeleteAutoScalingGroup",
            "eks:DeleteNodegroup",
            "cloudformation:DeleteStack",
        ] {
            assert!(actions(0).contains(&a), "{a}");
        }
        assert!(
            actions(1).contains(&"iam:DeleteRolePolicy")
                && actions(1).contains(&"iam:DetachRolePolicy")
        );
        assert_eq!(st[1]["Resource"], "*");
        for a in [
            "sts:AssumeRole",
            "iam:PassRole",
            "ssm:SendCommand",
            "cloudformation:UpdateStack",
        ] {
            assert!(actions(2).contains(&a), "{a}");
        }
        // Given twice, an action is listed once.
        let twice = brake_document(&["ec2:DeleteFleets".into(), "iam:PassRole".into()]);
        assert_eq!(twice.matches("ec2:DeleteFleets").count(), 1);
        assert_eq!(twice.matches("\"iam:PassRole\"").count(), 1);
        // Every door once, none already an undo or an initiator.
        let doors: std::collections::BTreeSet<&str> = DOOR_ACTIONS.iter().copied().collect();
        assert_eq!(doors.len(), DOOR_ACTIONS.len());
        let initiators = crate::catalogue::initiator_actions();
        assert!(DOOR_ACTIONS
            .iter()
            .all(|a| !UNDO_ACTIONS.contains(a) && !initiators.iter().any(|i| i == a)));
    }

    #[test]
    fn the_chains_origin_is_braked_beside_the_culprit_or_the_plan_says_why_not() {
        let from = |origin: &str| Culprit {
            origin_principal: Some(origin.into()),
            ..Culprit::default()
        };
        let p = role_plan("revoke", &from("arn:aws:iam::111111111111:role/dev/tool"));
        let o = p.origin.as_deref().expect("the origin braked");
        assert_eq!(
            (o.action, o.managed.as_slice()),
            (Action::Brake, &[BRAKE_POLICY.to_string()][..])
        );
        assert_eq!(o.target(), Some(&Target::Role("tool".into())));
        assert_eq!(
            o.principal_arn(),
            Some("arn:aws:iam::111111111111:role/dev/tool")
        );
        // Kept whole in the summary: release lifts it by its ARN.
        assert_eq!(p.summary().origin, p.origin);
        let json = serde_json::to_value(p.summary()).unwrap();
        assert_eq!(json["origin_brake"]["role_name"], "tool");
        assert_eq!(serde_json::from_value::<Plan>(json).unwrap(), p.summary());
        // The root user, the principal itself, or no named origin: nothing more.
        for (origin, why) in [
            ("arn:aws:iam::111111111111:root", "names neither a role nor a user"),
            ("arn:aws:iam::111111111111:role/aws-service-role/x.amazonaws.com/AWSServiceRoleForX", "service-linked"),
        ] {
            let p = role_plan("revoke", &from(origin));
            assert!(p.origin.is_none(), "{origin}");
            assert!(p.reason.contains("which is not braked"), "{}", p.reason);
            assert!(p.reason.contains(why), "{origin}: {}", p.reason);
        }
        let own = role_plan("revoke", &from("arn:aws:iam::222222222222:role/app"));
        assert!(own.origin.is_none() && !own.reason.contains("chain"));
    }

    #[test]
    fn volatile_and_instance_session_names() {
        for name in [
            "1515535740",
            "botocore-session-1515535740",
            "GitHubActions",
            "3f2504e0-4f89-11d3-9a0c-0305e82c3301",
            "deploy-20180109221500",
        ] {
            assert!(volatile_session(name).is_some(), "{name}");
        }
        for name in ["jane@example.com", "cleanup", "i-0a1b2c3d"] {
            assert!(volatile_session(name).is_none(), "{name}");
        }
        assert!(is_instance_id("i-0a1b2c3d") && is_instance_id("i-0a1b2c3d4e5f60718"));
        assert!(
            !is_instance_id("i-0A1B2C3D")
                && !is_instance_id("i-0a1b2c3d4")
                && !is_instance_id("session")
        );
    }
}
