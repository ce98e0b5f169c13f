//! The tripwire's own names: the roles its stacks create, the policies it writes and
//! attaches, the canary's role and instance, the forwarding rules' prefix. Every check
//! that recognises the tripwire's own parts (tamper, refusal, release) reads them here.

/// Inline policy names earlier releases wrote (a per-incident cutoff, a per-incident
/// scope, an action deny, a deny of everything). The tripwire writes no inline policy
/// now (the containment role may not); `tripwire release` still lifts these.
pub const LEGACY_INLINE_POLICIES: [&str; 4] = [
    "tripwire-revoke-older-sessions",
    "tripwire-contain-scope",
    "tripwire-deny-actions",
    "tripwire-quarantine",
];

/// The prefix of every principal tag containment sets. The containment role may set
/// only tags under it (`aws:TagKeys`), the release role remove only those, and the SCP
/// reserves it (tags and session tags) for them.
pub const CONTAIN_TAG_PREFIX: &str = "tripwire-contain-";
/// Principal tag naming the instance whose role credentials the scope denies.
pub const INSTANCE_TAG: &str = "tripwire-contain-instance";
/// Principal tag naming the source identity the scope denies.
pub const SOURCE_IDENTITY_TAG: &str = "tripwire-contain-source-identity";
/// Principal tag naming the role session (`aws:userid`) the scope denies.
pub const SESSION_TAG: &str = "tripwire-contain-session";
/// Every tag containment sets; `tripwire release` removes these.
pub const ALL_CONTAIN_TAGS: [&str; 3] = [INSTANCE_TAG, SOURCE_IDENTITY_TAG, SESSION_TAG];

/// The roles every member stack creates under these fixed names (with the containment
/// role, whose name is a parameter). A role name is unique in its account whatever its
/// path, and the SCP keeps anyone but StackSets from creating these, so the name alone
/// identifies them; nothing else named `tripwire-*` is exempt.
pub const MEMBER_ROLES: [&str; 3] = ["tripwire-forwarder", "tripwire-release", "tripwire-canary"];

/// The role the containment drill contains in every member account, weekly, through the
/// responder's real path: it holds no permission, the SCP lets only StackSets create or
/// edit it, and its calls are never counted. Not a member role: it must be containable.
pub const DRILL_ROLE: &str = "tripwire-drill";

/// The source identity the drill's plan names (the scope a person's session would get).
pub const DRILL_SOURCE_IDENTITY: &str = "tripwire-drill";

/// The containment role's name unless a deployment chose another
/// (`ContainmentRoleName`).
pub const DEFAULT_CONTAINMENT_ROLE: &str = "tripwire-containment";

/// Whether the role `name` is one of the member stacks' own (the containment role by its
/// default name). IAM role names are case-insensitive.
pub fn is_member_role(name: &str) -> bool {
    MEMBER_ROLES
        .iter()
        .chain(std::iter::once(&DEFAULT_CONTAINMENT_ROLE))
        .any(|n| name.eq_ignore_ascii_case(n))
}

/// The IAM path of the managed policies each member stack creates. The containment role
/// may attach exactly these (`iam:PolicyARN` pinned), so what it attaches is fixed by the
/// stack, not by the code that calls it.
pub const MANAGED_PATH: &str = "/tripwire/";
/// Managed policy: every session of the principal is denied `deny_actions`, the calls
/// that decide terminations, and undoing containment.
pub const BRAKE_POLICY: &str = "tripwire-brake";
/// The account brake's service control policy, as the delegation template names it.
pub const ACCOUNT_BRAKE_SCP: &str = "tripwire-account-brake";
/// Managed policy: every session of the principal is denied everything.
pub const QUARANTINE_MANAGED_POLICY: &str = "tripwire-quarantine";
/// Managed policy: the culprit alone (an instance, a source identity, a session) is
/// denied everything. Static: its statements read whom from the principal's
/// `tripwire-contain-*` tags through policy variables, so no document is written per
/// incident and the containment role needs no permission that could write an Allow.
pub const SCOPE_POLICY: &str = "tripwire-contain-scope";
/// Every managed policy the tripwire attaches; `tripwire release` detaches these.
pub const ALL_MANAGED_POLICIES: [&str; 3] = [BRAKE_POLICY, QUARANTINE_MANAGED_POLICY, SCOPE_POLICY];

/// The ARN of one of the tripwire's managed policies in `account`.
pub fn managed_policy_arn(partition: &str, account: &str, name: &str) -> String {
    format!("arn:{partition}:iam::{account}:policy{MANAGED_PATH}{name}")
}

/// The member stacks' canary role: it may only call TerminateInstances with DryRun on
/// [`CANARY_INSTANCE`].
pub const CANARY_ROLE: &str = "tripwire-canary";
/// The security account's functions, by their fixed names.
pub const FUNCTIONS: [&str; 4] = [
    "tripwire-detector",
    "tripwire-responder",
    "tripwire-watchdog",
    "tripwire-findings",
];

/// The EventBridge Scheduler schedules the stacks create under fixed names: the canary's
/// in every member region, the watchdog's and the drill's in the security account.
pub const SCHEDULES: [&str; 3] = ["tripwire-canary", "tripwire-watchdog", "tripwire-drill"];
/// Those of [`SCHEDULES`] the central stack creates in the security account.
pub const SECURITY_SCHEDULES: [&str; 2] = ["tripwire-watchdog", "tripwire-drill"];
/// The instance the canary asks for: an ID of EC2's form that is never allocated, so
/// even a canary that lost its DryRun flag terminates nothing.
pub const CANARY_INSTANCE: &str = "i-0000000000000dead";
/// The member stacks' forwarding rules are named with this prefix.
pub const FORWARD_RULE_PREFIX: &str = "tripwire-forward";
/// Every rule of the tripwire's is named with this prefix: the member stacks' by name,
/// the central stack's by CloudFormation after the stack (`tripwire-Detector…`).
pub const RULE_PREFIX: &str = "tripwire-";
/// The central stack's event buses: the organization's, and the alerts'.
pub const BUSES: [&str; 2] = ["tripwire", "tripwire-alerts"];
/// The central stack's table and alarms are named with this prefix (the table by
/// CloudFormation after the stack, `tripwire-Table-…`; the alarms by name).
pub const CENTRAL_PREFIX: &str = "tripwire-";
/// The published policy's SSM parameters live under this path.
pub const PARAMETER_PATH: &str = "/tripwire/";
/// The member StackSet (scripts/deploy-members.sh).
pub const MEMBER_STACKSET: &str = "tripwire-member";
