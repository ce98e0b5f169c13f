//! The tripwire's own names: the roles its stacks create, the policies it writes and
//! attaches, the canary's role and instance, the forwarding rules' prefix. Every check
//! that recognises the tripwire's own parts (tamper, refusal, release) reads them here.

/// Inline policy name for the "revoke older sessions" deny of a role or user; fixed, so
/// a retry overwrites. Written per incident: its cutoff is the time the responder acts.
pub const REVOKE_SESSIONS_POLICY: &str = "tripwire-revoke-older-sessions";
/// Inline policy name for the deny of everything to the culprit alone (an instance, a
/// session): its condition names the culprit, so it is written per incident.
pub const SCOPE_POLICY: &str = "tripwire-contain-scope";
/// Inline policy name of the unconditional action deny that earlier releases wrote;
/// kept so `tripwire release` still lifts it.
pub const DENY_ACTIONS_POLICY: &str = "tripwire-deny-actions";
/// Inline policy name of the deny-everything policy that earlier releases wrote.
pub const QUARANTINE_POLICY: &str = "tripwire-quarantine";
/// Every inline policy name the tripwire may write; `tripwire release` removes these.
pub const ALL_POLICY_NAMES: [&str; 4] = [
    REVOKE_SESSIONS_POLICY,
    SCOPE_POLICY,
    DENY_ACTIONS_POLICY,
    QUARANTINE_POLICY,
];

/// The roles every member stack creates under these fixed names (with the containment
/// role, whose name is a parameter). A role name is unique in its account whatever its
/// path, and the SCP keeps anyone but StackSets from creating these, so the name alone
/// identifies them; nothing else named `tripwire-*` is exempt.
pub const MEMBER_ROLES: [&str; 3] = ["tripwire-forwarder", "tripwire-release", "tripwire-canary"];

/// The containment role's name unless a deployment chose another
/// (`ContainmentRoleName`).
pub const DEFAULT_CONTAINMENT_ROLE: &str = "tripwire-containment";

/// The IAM path of the managed policies each member stack creates. The containment role
/// may attach exactly these (`iam:PolicyARN` pinned), so what it attaches is fixed by the
/// stack, not by the code that calls it.
pub const MANAGED_PATH: &str = "/tripwire/";
/// Managed policy: every session of the principal is denied `deny_actions`, the calls
/// that decide terminations, and undoing containment.
pub const BRAKE_POLICY: &str = "tripwire-brake";
/// Managed policy: every session of the principal is denied everything.
pub const QUARANTINE_MANAGED_POLICY: &str = "tripwire-quarantine";
/// Every managed policy the tripwire attaches; `tripwire release` detaches these.
pub const ALL_MANAGED_POLICIES: [&str; 2] = [BRAKE_POLICY, QUARANTINE_MANAGED_POLICY];

/// The ARN of one of the tripwire's managed policies in `account`.
pub fn managed_policy_arn(partition: &str, account: &str, name: &str) -> String {
    format!("arn:{partition}:iam::{account}:policy{MANAGED_PATH}{name}")
}

/// The member stacks' canary role: it may only call TerminateInstances with DryRun on
/// [`CANARY_INSTANCE`].
pub const CANARY_ROLE: &str = "tripwire-canary";
/// The instance the canary asks for: an ID of EC2's form that is never allocated, so
/// even a canary that lost its DryRun flag terminates nothing.
pub const CANARY_INSTANCE: &str = "i-0000000000000dead";
/// The member stacks' forwarding rules are named with this prefix.
pub const FORWARD_RULE_PREFIX: &str = "tripwire-forward";
