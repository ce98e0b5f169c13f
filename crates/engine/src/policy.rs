//! The policy file: one TOML document shared by the Lambda and the CLI, validated once.

use crate::principal::valid_account;
use crate::time::Millis;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// A validated policy. Build it with [`Policy::from_toml`]; every field is already checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Distinct instances within `window` that make a burst.
    pub threshold: u32,
    /// The sliding window of CloudTrail `eventTime`.
    pub window: Millis,
    /// The threshold when the chain behind the caller began in another account; unset,
    /// the same threshold as any other call (hub-and-spoke CI reaches production from a
    /// tooling account on every deploy).
    pub cross_account_threshold: Option<u32>,
    /// The service lane: distinct instances by one service-linked role or AWS service
    /// identity; alert only. Off when unset.
    pub service_threshold: Option<u32>,
    /// The attempt lane: failed calls by one principal; alert only. Off when unset.
    pub attempt_threshold: Option<u32>,
    /// The account lane: distinct instances by every counted principal in one account;
    /// alert only. Off when unset.
    pub account_threshold: Option<u32>,
    /// Accounts where terminations are never counted (e.g. sandboxes, CI).
    pub allowed_accounts: BTreeSet<String>,
    /// Principals never counted, on top of AWS service roles.
    pub ignore_principals: Vec<Glob>,
    /// Principals that are alerted on but never contained.
    pub protected_principals: Vec<Glob>,
    /// What containment does when a burst is found.
    pub containment: Mode,
    /// Actions the containment policy denies outright.
    pub deny_actions: Vec<String>,
    /// Containing an IAM user also deactivates the long-term access keys its burst used.
    pub deactivate_keys: bool,
    /// The tripwire's KMS keys (ARNs or key IDs): disabling one or scheduling its
    /// deletion is tampering.
    pub tripwire_keys: Vec<String>,
    /// The tripwire's SNS topics (ARNs): deleting one or unsubscribing from it is tampering.
    pub tripwire_topics: Vec<String>,
    /// The tripwire's service control policies (IDs, `p-…`): detaching, deleting or
    /// changing one is tampering (the records name a policy by its ID only).
    pub tripwire_scps: Vec<String>,
    /// When someone lifts a tripwire policy from a contained principal, write it back,
    /// once per incident.
    pub recontain: bool,
    /// The account brake's service control policy (its ID, `p-…`), which the management
    /// account's delegation template creates and lets the security account attach: the
    /// stack passes it. Unset, no plan brakes an account.
    pub account_brake_policy: Option<String>,
    /// The principals IAM cannot contain whose bursts brake their account instead
    /// (`root`, `identity_center`, `control_tower`), where containment is on for them.
    pub account_brake_for: BTreeSet<BrakeFor>,
    /// The member stacks' containment role's name (their `ContainmentRoleName`; the
    /// central stack passes it): changes to it page `tamper` like the fixed names'.
    pub containment_role: String,
    /// Per-account threshold overrides, keyed by the account where instances die.
    pub accounts: BTreeMap<String, AccountOverride>,
    /// Per-principal rules, in file order; the first whose glob matches applies.
    pub principals: Vec<PrincipalRule>,
    /// Per-resource-type rules (`[resources."rds:db"]`), over the catalogue's defaults.
    pub resources: BTreeMap<String, ResourceRule>,
    /// Planned work during which a principal's terminations are not counted.
    pub change_windows: Vec<ChangeWindow>,
    /// The shutdown-wave lane: distinct instances EC2 reports going away
    /// (`shutting-down`, `terminated`) in one account and region, whatever ended them;
    /// alert only. On by default (50); `0` turns it off.
    pub state_change_threshold: Option<u32>,
    /// The shutdown-wave lane's window.
    pub state_change_window: Millis,
    /// How late CloudTrail and EventBridge may deliver a call and it still lead to
    /// containment: a burst whose newest call is older than its window plus this (an
    /// archive replay, a late redrive) pages, alert-only, and contains no one.
    pub max_delivery_delay: Millis,
}

/// `[principals."GLOB"]`: a principal's own threshold, window and containment, for
/// routine bursts (a node autoscaler consolidating nightly, a cluster service role)
/// that must stay visible without paging on every run.
#[derive(Debug, Clone, PartialEq)]
pub struct PrincipalRule {
    /// Which principals.
    pub glob: Glob,
    /// Overrides the account's and the default threshold.
    pub threshold: Option<u32>,
    /// Overrides the cross-account threshold.
    pub cross_account_threshold: Option<u32>,
    /// Overrides the window.
    pub window: Option<Millis>,
    /// Overrides the containment mode.
    pub containment: Option<Mode>,
}

/// `[resources."TYPE"]`: a resource type's own threshold, window and containment, over
/// the catalogue's defaults for it (for `ec2:instance`, over `threshold` and `window`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceRule {
    /// Overrides the type's threshold.
    pub threshold: Option<u32>,
    /// Overrides the type's window.
    pub window: Option<Millis>,
    /// Overrides the containment mode for bursts of this type.
    pub containment: Option<Mode>,
}

/// `[[change_windows]]`: a principal's terminations, in an optional account, between
/// `from` and `until` are planned work, counted as `not_counted.change_window`.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeWindow {
    /// Which principals.
    pub principal: Glob,
    /// Where the instances die; any account when unset.
    pub account: Option<String>,
    /// Start, inclusive.
    pub from: Millis,
    /// End, inclusive.
    pub until: Millis,
}

/// The longest change window: a planned change is hours, not an open-ended exemption.
pub const MAX_CHANGE_WINDOW: Millis = 24 * 3600 * 1000;

/// Containment modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Alert only.
    Off,
    /// Deny the culprit everything (narrowed to its instance or session where the calls
    /// show one) and brake every session of the principal.
    Revoke,
    /// Brake only: every session of the principal is denied the watched actions and
    /// undoing containment, and keeps every other permission.
    Brake,
    /// Deny everything.
    Quarantine,
    /// Attach the account brake's service control policy to the principal's account:
    /// for principals no IAM policy binds. Only a `[principals]` rule may choose it.
    #[serde(rename = "account_brake")]
    AccountBrake,
}

/// The principals IAM cannot contain that `account_brake_for` may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BrakeFor {
    /// The root user, and federation tokens it issued.
    Root,
    /// IAM Identity Center's roles (`AWSReservedSSO_*`) and its users.
    IdentityCenter,
    /// AWS Control Tower's roles, which its own SCP forbids editing.
    ControlTower,
}

impl BrakeFor {
    /// As `account_brake_for` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            BrakeFor::Root => "root",
            BrakeFor::IdentityCenter => "identity_center",
            BrakeFor::ControlTower => "control_tower",
        }
    }
}

/// Per-account overrides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountOverride {
    /// Threshold for this account.
    pub threshold: Option<u32>,
    /// Cross-account threshold for this account.
    pub cross_account_threshold: Option<u32>,
}

/// A policy error that names the offending key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy key `{key}`: {message}")]
pub struct PolicyError {
    /// Dotted key path, e.g. `accounts.333333333333.threshold`.
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

/// An ARN glob: `*` matches any run of characters (slashes included, as in IAM), `?` one.
/// A glob that starts `arn:aws:` matches that ARN in every partition (`aws-us-gov`,
/// `aws-cn`, …): an organization writes its globs once, and a GovCloud break-glass role
/// is protected as its commercial twin is. A glob naming another partition matches only
/// that one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: String,
    /// As written, for passing on to IAM (which compares resource ARNs case-sensitively).
    written: String,
    case_insensitive: bool,
    any_partition: bool,
}

/// The prefix that makes a glob partition-agnostic.
pub const ANY_PARTITION_PREFIX: &str = "arn:aws:";

impl Glob {
    /// A glob; `case_insensitive` folds ASCII case on both sides.
    pub fn new(pattern: &str, case_insensitive: bool) -> Self {
        let written = pattern;
        let pattern = if case_insensitive {
            pattern.to_ascii_lowercase()
        } else {
            pattern.to_owned()
        };
        Glob {
            any_partition: pattern.starts_with(ANY_PARTITION_PREFIX),
            pattern,
            written: written.to_owned(),
            case_insensitive,
        }
    }

    /// Whether the glob matches ARNs in every partition.
    pub fn any_partition(&self) -> bool {
        self.any_partition
    }

    /// Whether `text` matches.
    pub fn matches(&self, text: &str) -> bool {
        let folded;
        let mut text = if self.case_insensitive {
            folded = text.to_ascii_lowercase();
            folded.as_str()
        } else {
            text
        };
        let rewritten;
        if self.any_partition {
            // `arn:aws-us-gov:rest` is compared as `arn:aws:rest`; only AWS partitions.
            if let Some((_, rest)) = text
                .strip_prefix("arn:")
                .and_then(|r| r.split_once(':'))
                .filter(|(p, _)| p.starts_with("aws-"))
            {
                rewritten = format!("{ANY_PARTITION_PREFIX}{rest}");
                text = rewritten.as_str();
            }
        }
        glob_match(self.pattern.as_bytes(), text.as_bytes())
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.written)
    }
}

/// Iterative wildcard match with single backtracking point: linear in practice, and no
/// recursion for a hostile pattern to blow the stack with.
fn glob_match(p: &[u8], t: &[u8]) -> bool {
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default = "default_threshold")]
    threshold: i64,
    #[serde(default = "default_window")]
    window: String,
    cross_account_threshold: Option<i64>,
    service_threshold: Option<i64>,
    attempt_threshold: Option<i64>,
    account_threshold: Option<i64>,
    #[serde(default)]
    allowed_accounts: Vec<String>,
    #[serde(default)]
    ignore_principals: Vec<String>,
    #[serde(default)]
    protected_principals: Vec<String>,
    #[serde(default = "default_mode")]
    containment: Mode,
    #[serde(default = "default_deny_actions")]
    deny_actions: Vec<String>,
    #[serde(default)]
    deactivate_keys: bool,
    #[serde(default)]
    tripwire_keys: Vec<String>,
    #[serde(default)]
    tripwire_topics: Vec<String>,
    #[serde(default)]
    tripwire_scps: Vec<String>,
    #[serde(default)]
    recontain: bool,
    account_brake_policy: Option<String>,
    #[serde(default)]
    account_brake_for: BTreeSet<BrakeFor>,
    #[serde(default = "default_containment_role")]
    containment_role: String,
    #[serde(default)]
    accounts: BTreeMap<String, RawOverride>,
    /// Kept as a table to keep file order: the first matching rule wins.
    #[serde(default)]
    principals: toml::Table,
    #[serde(default)]
    resources: BTreeMap<String, RawResourceRule>,
    #[serde(default)]
    change_windows: Vec<RawChangeWindow>,
    #[serde(default = "default_max_delivery_delay")]
    max_delivery_delay: String,
    #[serde(default = "default_state_change_threshold")]
    state_change_threshold: i64,
    #[serde(default = "default_window")]
    state_change_window: String,
}

/// A wave of 50 instances in five minutes: what no single scale-in of a modest group
/// reaches, and what a wipe passes within seconds.
fn default_state_change_threshold() -> i64 {
    50
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOverride {
    threshold: Option<i64>,
    cross_account_threshold: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrincipalRule {
    threshold: Option<i64>,
    cross_account_threshold: Option<i64>,
    window: Option<String>,
    containment: Option<Mode>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResourceRule {
    threshold: Option<i64>,
    window: Option<String>,
    containment: Option<Mode>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChangeWindow {
    principal: String,
    account: Option<String>,
    from: String,
    until: String,
}

fn default_containment_role() -> String {
    crate::names::DEFAULT_CONTAINMENT_ROLE.into()
}
fn default_threshold() -> i64 {
    10
}
fn default_window() -> String {
    "5m".into()
}
fn default_max_delivery_delay() -> String {
    "1h".into()
}
fn default_mode() -> Mode {
    // Alert-only until a team has watched and backtested: containment is opt-in.
    Mode::Off
}
fn default_deny_actions() -> Vec<String> {
    crate::catalogue::every()
        .map(|w| w.deny_action.to_owned())
        .collect()
}

/// Organizations' pattern for a policy ID.
fn is_policy_id(v: &str) -> bool {
    v.strip_prefix("p-").is_some_and(|id| {
        (8..=128).contains(&id.len()) && id.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
    })
}

/// Largest accepted threshold; far above the 1000 IDs one call can carry.
const MAX_THRESHOLD: i64 = 1_000_000;
/// Longest accepted window: the window state lives in DynamoDB items with a TTL.
const MAX_WINDOW: Millis = 24 * 3600 * 1000;

impl Policy {
    /// Parses and validates a policy; every error names its key.
    pub fn from_toml(text: &str) -> Result<Policy, PolicyError> {
        let raw: RawPolicy = toml::from_str(text).map_err(|e| PolicyError {
            key: toml_error_key(&e),
            message: e.message().to_owned(),
        })?;
        let err = |key: &str, message: String| PolicyError {
            key: key.to_owned(),
            message,
        };
        let threshold = check_threshold("threshold", raw.threshold)?;
        let optional = |key: &str, v: Option<i64>| v.map(|t| check_threshold(key, t)).transpose();
        let cross_account_threshold =
            optional("cross_account_threshold", raw.cross_account_threshold)?;
        let service_threshold = optional("service_threshold", raw.service_threshold)?;
        let attempt_threshold = optional("attempt_threshold", raw.attempt_threshold)?;
        let account_threshold = optional("account_threshold", raw.account_threshold)?;
        let window = parse_duration(&raw.window).map_err(|m| err("window", m))?;
        if !(1000..=MAX_WINDOW).contains(&window) {
            return Err(err(
                "window",
                format!("`{}` must be between 1s and 24h", raw.window),
            ));
        }
        let state_change_threshold = match raw.state_change_threshold {
            0 => None,
            t => Some(check_threshold("state_change_threshold", t)?),
        };
        let state_change_window =
            parse_duration(&raw.state_change_window).map_err(|m| err("state_change_window", m))?;
        if !(1000..=MAX_WINDOW).contains(&state_change_window) {
            return Err(err(
                "state_change_window",
                format!("`{}` must be between 1s and 24h", raw.state_change_window),
            ));
        }
        let max_delivery_delay =
            parse_duration(&raw.max_delivery_delay).map_err(|m| err("max_delivery_delay", m))?;
        if !(1000..=MAX_WINDOW).contains(&max_delivery_delay) {
            return Err(err(
                "max_delivery_delay",
                format!("`{}` must be between 1s and 24h", raw.max_delivery_delay),
            ));
        }
        let mut allowed_accounts = BTreeSet::new();
        for (i, a) in raw.allowed_accounts.iter().enumerate() {
            if !valid_account(a) {
                return Err(err(
                    &format!("allowed_accounts[{i}]"),
                    format!("`{a}` is not a 12-digit account ID"),
                ));
            }
            allowed_accounts.insert(a.clone());
        }
        let globs = |key: &str, list: &[String], ci: bool| -> Result<Vec<Glob>, PolicyError> {
            list.iter()
                .enumerate()
                .map(|(i, g)| arn_glob(&format!("{key}[{i}]"), g, ci))
                .collect()
        };
        // Ignoring is exact-case (ignore no more than asked); protecting is case-insensitive
        // because IAM names are unique regardless of case.
        let ignore_principals = globs("ignore_principals", &raw.ignore_principals, false)?;
        let protected_principals = globs("protected_principals", &raw.protected_principals, true)?;
        if raw.deny_actions.is_empty() {
            return Err(err("deny_actions", "must list at least one action".into()));
        }
        for (i, a) in raw.deny_actions.iter().enumerate() {
            let ok = a.split_once(':').is_some_and(|(svc, act)| {
                !svc.is_empty()
                    && svc
                        .bytes()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
                    && !act.is_empty()
                    && act.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'*')
            });
            if !ok {
                return Err(err(
                    &format!("deny_actions[{i}]"),
                    format!(
                        "`{a}` is not an IAM action like `{}`",
                        crate::catalogue::TERMINATE_INSTANCES.deny_action
                    ),
                ));
            }
        }
        for (key, values, shape) in [
            (
                "tripwire_keys",
                &raw.tripwire_keys,
                "a KMS key ARN (arn:PARTITION:kms:REGION:ACCOUNT:key/ID) or key ID",
            ),
            (
                "tripwire_topics",
                &raw.tripwire_topics,
                "an SNS topic ARN (arn:PARTITION:sns:REGION:ACCOUNT:NAME)",
            ),
            (
                "tripwire_scps",
                &raw.tripwire_scps,
                "a service control policy ID (p- and 8 to 128 letters, digits or _)",
            ),
        ] {
            for (i, v) in values.iter().enumerate() {
                let ok = match key {
                    "tripwire_keys" => {
                        v.starts_with("arn:") && v.contains(":key/")
                            || (!v.is_empty()
                                && v.bytes().all(|c| c.is_ascii_hexdigit() || c == b'-'))
                    }
                    "tripwire_topics" => {
                        v.starts_with("arn:") && v.split(':').count() == 6 && v.contains(":sns:")
                    }
                    _ => is_policy_id(v),
                };
                if !ok {
                    return Err(err(&format!("{key}[{i}]"), format!("`{v}` is not {shape}")));
                }
            }
        }
        let mut accounts = BTreeMap::new();
        for (acct, o) in raw.accounts {
            if !valid_account(&acct) {
                return Err(err(
                    &format!("accounts.{acct}"),
                    "account ID must be 12 digits".into(),
                ));
            }
            let over = AccountOverride {
                threshold: o
                    .threshold
                    .map(|t| check_threshold(&format!("accounts.{acct}.threshold"), t))
                    .transpose()?,
                cross_account_threshold: o
                    .cross_account_threshold
                    .map(|t| {
                        check_threshold(&format!("accounts.{acct}.cross_account_threshold"), t)
                    })
                    .transpose()?,
            };
            accounts.insert(acct, over);
        }
        let window_of = |key: &str, w: &str| -> Result<Millis, PolicyError> {
            parse_duration(w).map_err(|m| err(key, m)).and_then(|ms| {
                (1000..=MAX_WINDOW)
                    .contains(&ms)
                    .then_some(ms)
                    .ok_or_else(|| err(key, format!("`{w}` must be between 1s and 24h")))
            })
        };
        let mut principals = Vec::new();
        for (glob, value) in raw.principals {
            let key = format!("principals.\"{glob}\"");
            let r: RawPrincipalRule = value
                .try_into()
                .map_err(|e: toml::de::Error| err(&key, e.message().to_owned()))?;
            let threshold = |name: &str, v: Option<i64>| {
                v.map(|t| check_threshold(&format!("{key}.{name}"), t))
                    .transpose()
            };
            principals.push(PrincipalRule {
                glob: arn_glob(&key, &glob, true)?,
                threshold: threshold("threshold", r.threshold)?,
                cross_account_threshold: threshold(
                    "cross_account_threshold",
                    r.cross_account_threshold,
                )?,
                window: r
                    .window
                    .as_deref()
                    .map(|w| window_of(&format!("{key}.window"), w))
                    .transpose()?,
                containment: r.containment,
            });
        }
        let mut resources = BTreeMap::new();
        for (kind, r) in raw.resources {
            let key = format!("resources.\"{kind}\"");
            if !crate::catalogue::kinds().contains(&kind.as_str()) {
                return Err(err(
                    &key,
                    format!(
                        "`{kind}` is not a watched resource type (`tripwire check-policy` lists them: {})",
                        crate::catalogue::kinds().join(", ")
                    ),
                ));
            }
            if r.containment == Some(Mode::AccountBrake) {
                return Err(err(
                    &format!("{key}.containment"),
                    "`account_brake` stops every principal of an account; choose it per principal under [principals]".into(),
                ));
            }
            if kind == crate::catalogue::PRECURSOR && r.containment.is_some() {
                return Err(err(
                    &format!("{key}.containment"),
                    "precursors destroy nothing and their lane never contains; set only `threshold` and `window`".into(),
                ));
            }
            let rule = ResourceRule {
                threshold: r
                    .threshold
                    .map(|t| check_threshold(&format!("{key}.threshold"), t))
                    .transpose()?,
                window: r
                    .window
                    .as_deref()
                    .map(|w| window_of(&format!("{key}.window"), w))
                    .transpose()?,
                containment: r.containment,
            };
            resources.insert(kind, rule);
        }
        let mut change_windows = Vec::new();
        for (i, c) in raw.change_windows.iter().enumerate() {
            let key = format!("change_windows[{i}]");
            let time = |name: &str, v: &str| {
                crate::time::parse_event_time(v).ok_or_else(|| {
                    err(
                        &format!("{key}.{name}"),
                        format!("`{v}` is not an RFC 3339 time like 2026-12-01T22:00:00Z"),
                    )
                })
            };
            let (from, until) = (time("from", &c.from)?, time("until", &c.until)?);
            if until <= from {
                return Err(err(&key, "`until` must be after `from`".into()));
            }
            if until - from > MAX_CHANGE_WINDOW {
                return Err(err(
                    &key,
                    "a change window lasts at most 24 hours; declare each change on its own".into(),
                ));
            }
            if let Some(a) = c.account.as_deref().filter(|a| !valid_account(a)) {
                return Err(err(
                    &format!("{key}.account"),
                    format!("`{a}` is not a 12-digit account ID"),
                ));
            }
            change_windows.push(ChangeWindow {
                // Exact case, as `ignore_principals`: exempt no more than asked.
                principal: arn_glob(&format!("{key}.principal"), &c.principal, false)?,
                account: c.account.clone(),
                from,
                until,
            });
        }
        if !crate::principal::valid_iam_name(&raw.containment_role) {
            return Err(err(
                "containment_role",
                format!("`{}` is not an IAM role name", raw.containment_role),
            ));
        }
        let containment_role = raw.containment_role;
        if raw.containment == Mode::AccountBrake {
            return Err(err(
                "containment",
                "`account_brake` stops every principal of an account; choose it per principal under [principals] or with account_brake_for".into(),
            ));
        }
        if let Some(id) = raw
            .account_brake_policy
            .as_deref()
            .filter(|id| !is_policy_id(id))
        {
            return Err(err(
                "account_brake_policy",
                format!("`{id}` is not a service control policy ID (p- and 8 to 128 letters, digits or _)"),
            ));
        }
        Ok(Policy {
            threshold,
            window,
            cross_account_threshold,
            service_threshold,
            attempt_threshold,
            account_threshold,
            allowed_accounts,
            ignore_principals,
            protected_principals,
            containment: raw.containment,
            deny_actions: raw.deny_actions,
            deactivate_keys: raw.deactivate_keys,
            tripwire_keys: raw.tripwire_keys,
            tripwire_topics: raw.tripwire_topics,
            tripwire_scps: raw.tripwire_scps,
            recontain: raw.recontain,
            account_brake_policy: raw.account_brake_policy,
            account_brake_for: raw.account_brake_for,
            containment_role,
            accounts,
            principals,
            resources,
            change_windows,
            state_change_threshold,
            state_change_window,
            max_delivery_delay,
        })
    }

    /// The first `[principals]` rule matching `arn`.
    pub fn rule_for(&self, arn: &str) -> Option<&PrincipalRule> {
        self.principals.iter().find(|r| r.glob.matches(arn))
    }

    /// The threshold for `arn` destroying resources of `kind` in `account`,
    /// cross-account or not: the principal's rule, else the type's `[resources]` rule,
    /// else (instances) the account's override and the default, or (every other type)
    /// the catalogue's default for the type. A cross-account threshold set nowhere is the
    /// same-account one; it applies to instances only, as the account overrides do.
    pub fn threshold_for(&self, arn: &str, account: &str, cross_account: bool, kind: &str) -> u32 {
        let rule = self.rule_for(arn);
        let by_type = self.resources.get(kind);
        let instances = kind == crate::catalogue::EC2_INSTANCE;
        let o = self.accounts.get(account).filter(|_| instances);
        let base = match crate::catalogue::of_kind(kind).resource.default {
            Some((t, _)) if !instances => t,
            _ => o.and_then(|o| o.threshold).unwrap_or(self.threshold),
        };
        let same = rule
            .and_then(|r| r.threshold)
            .or(by_type.and_then(|r| r.threshold))
            .unwrap_or(base);
        if cross_account && instances {
            rule.and_then(|r| r.cross_account_threshold)
                .or(o.and_then(|o| o.cross_account_threshold))
                .or(self.cross_account_threshold)
                .unwrap_or(same)
        } else {
            same
        }
    }

    /// The window `arn` is counted in for resources of `kind`: the principal's rule,
    /// else the type's, else the default (the catalogue's for types other than instances).
    pub fn window_for(&self, arn: &str, kind: &str) -> Millis {
        let default = match crate::catalogue::of_kind(kind).resource.default {
            Some((_, w)) if kind != crate::catalogue::EC2_INSTANCE => w,
            _ => self.window,
        };
        self.rule_for(arn)
            .and_then(|r| r.window)
            .or(self.resources.get(kind).and_then(|r| r.window))
            .unwrap_or(default)
    }

    /// The containment mode for `arn`'s burst of `kind`: the principal's rule, else the
    /// type's, else the policy's.
    pub fn containment_for(&self, arn: &str, kind: &str) -> Mode {
        self.rule_for(arn)
            .and_then(|r| r.containment)
            .or(self.resources.get(kind).and_then(|r| r.containment))
            .unwrap_or(self.containment)
    }

    /// Whether a termination by `arn` in `account` at `t` is inside a change window.
    pub fn in_change_window(&self, arn: &str, account: &str, t: Millis) -> bool {
        self.change_windows.iter().any(|c| {
            c.from <= t
                && t <= c.until
                && !matches!(c.account.as_deref(), Some(a) if a != account)
                && c.principal.matches(arn)
        })
    }

    /// Whether `arn` is protected: alerted on, never contained.
    pub fn is_protected(&self, arn: &str) -> bool {
        self.protected_principals.iter().any(|g| g.matches(arn))
    }

    /// Whether `arn` is ignored outright.
    pub fn is_ignored(&self, arn: &str) -> bool {
        self.ignore_principals.iter().any(|g| g.matches(arn))
    }
}

/// An ARN glob from the policy, checked.
fn arn_glob(key: &str, g: &str, case_insensitive: bool) -> Result<Glob, PolicyError> {
    if !g.starts_with("arn:") || g.len() > 2048 || g.chars().any(char::is_control) {
        Err(PolicyError {
            key: key.into(),
            message: format!("`{g}` is not an ARN glob (must start with `arn:`)"),
        })
    } else {
        Ok(Glob::new(g, case_insensitive))
    }
}

fn check_threshold(key: &str, v: i64) -> Result<u32, PolicyError> {
    if (1..=MAX_THRESHOLD).contains(&v) {
        Ok(v as u32)
    } else {
        Err(PolicyError {
            key: key.into(),
            message: format!("{v} must be between 1 and {MAX_THRESHOLD}"),
        })
    }
}

/// `toml` reports unknown or mistyped keys in its message; pull the key out for the error.
fn toml_error_key(e: &toml::de::Error) -> String {
    let msg = e.message();
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        return rest.split('`').next().unwrap_or("?").to_owned();
    }
    // Point at the line so a type error is still findable.
    match e.span() {
        Some(span) => format!("at byte {}", span.start),
        None => "(document)".into(),
    }
}

/// Parses `90s`, `5m`, `1h30m`, `250ms` into milliseconds.
pub fn parse_duration(s: &str) -> Result<Millis, String> {
    let mut total: Millis = 0;
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err("empty duration; write e.g. `5m` or `90s`".into());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 9 {
            return Err(format!(
                "`{s}` is not a duration like `5m`, `90s` or `1h30m`"
            ));
        }
        let n: Millis = rest[..digits]
            .parse()
            .map_err(|_| format!("`{s}` is not a duration"))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            u => return Err(format!("`{s}`: unknown unit `{u}` (use ms, s, m or h)")),
        };
        rest = &rest[unit_len..];
        total = total.saturating_add(n.saturating_mul(unit));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_brake_for_reads_each_name_as_the_plan_spells_it() {
        for what in [
            BrakeFor::Root,
            BrakeFor::IdentityCenter,
            BrakeFor::ControlTower,
        ] {
            let toml = format!("account_brake_for = [\"{}\"]", what.as_str());
            let p = Policy::from_toml(&toml).unwrap();
            assert_eq!(p.account_brake_for.into_iter().collect::<Vec<_>>(), [what]);
        }
    }

    #[test]
    fn the_documented_example_parses() {
        let p = Policy::from_toml(
            r#"
threshold = 10
window = "5m"
cross_account_threshold = 1
allowed_accounts = ["111111111111"]
ignore_principals = []
protected_principals = ["arn:aws:iam::*:role/BreakGlass*"]
containment = "revoke"
[accounts."333333333333"]
threshold = 3
"#,
        )
        .unwrap();
        assert_eq!(p.window, 300_000);
        let arn = "arn:aws:iam::333333333333:role/app";
        assert_eq!(
            p.threshold_for(arn, "333333333333", false, "ec2:instance"),
            3
        );
        assert_eq!(
            p.threshold_for(arn, "333333333333", true, "ec2:instance"),
            1
        );
        assert_eq!(
            p.threshold_for(arn, "222222222222", false, "ec2:instance"),
            10
        );
        assert!(p.is_protected("arn:aws:iam::222222222222:role/breakglass-admin"));
        assert!(!p.is_protected("arn:aws:iam::222222222222:role/vendor/cleanup-task"));
        assert_eq!(p.containment, Mode::Revoke);
    }

    #[test]
    fn every_key_has_a_default_and_containment_defaults_to_off() {
        let p = Policy::from_toml("").unwrap();
        assert_eq!(
            (p.threshold, p.window, p.cross_account_threshold),
            (10, 300_000, None)
        );
        // Unset, a cross-account chain counts like any other call.
        assert_eq!(
            p.threshold_for("arn:aws:iam::1:role/x", "2", true, "ec2:instance"),
            10
        );
        assert_eq!(p.containment, Mode::Off);
        // The brake stops every door: each watched call's action, the seed's first.
        assert_eq!(p.deny_actions.len(), crate::catalogue::every().count());
        assert_eq!(p.deny_actions[0], "ec2:TerminateInstances");
        assert!(p.deny_actions.contains(&"rds:DeleteDBInstance".to_string()));
    }

    #[test]
    fn errors_name_the_offending_key() {
        let cases = [
            ("threshold = 0", "threshold"),
            ("treshold = 3", "treshold"),
            ("window = \"5 minutes\"", "window"),
            ("window = \"0s\"", "window"),
            ("window = \"48h\"", "window"),
            ("cross_account_threshold = -1", "cross_account_threshold"),
            ("allowed_accounts = [\"1234\"]", "allowed_accounts[0]"),
            (
                "protected_principals = [\"BreakGlass*\"]",
                "protected_principals[0]",
            ),
            ("deny_actions = [\"terminate\"]", "deny_actions[0]"),
            ("deny_actions = []", "deny_actions"),
            ("[accounts.\"12\"]\nthreshold = 3", "accounts.12"),
            (
                "[accounts.\"333333333333\"]\nthreshold = 0",
                "accounts.333333333333.threshold",
            ),
            ("[accounts.\"333333333333\"]\nthreshhold = 3", "threshhold"),
            (
                "[principals.\"role/karpenter\"]\nthreshold = 3",
                "principals.\"role/karpenter\"",
            ),
            (
                "[principals.\"arn:aws:iam::*:role/k\"]\nthreshold = 0",
                "principals.\"arn:aws:iam::*:role/k\".threshold",
            ),
            (
                "[principals.\"arn:aws:iam::*:role/k\"]\nwindow = \"2d\"",
                "principals.\"arn:aws:iam::*:role/k\".window",
            ),
            (
                "[principals.\"arn:aws:iam::*:role/k\"]\nthreshhold = 3",
                "principals.\"arn:aws:iam::*:role/k\"",
            ),
            (
                "[[change_windows]]\nprincipal = \"arn:aws:iam::1:role/x\"\nfrom = \"2026-12-01T20:00:00Z\"\nuntil = \"2026-12-03T20:00:00Z\"",
                "change_windows[0]",
            ),
            (
                "[[change_windows]]\nprincipal = \"arn:aws:iam::1:role/x\"\nfrom = \"2026-12-01T20:00:00Z\"\nuntil = \"2026-12-01T19:00:00Z\"",
                "change_windows[0]",
            ),
            (
                "[[change_windows]]\nprincipal = \"arn:aws:iam::1:role/x\"\nfrom = \"tonight\"\nuntil = \"2026-12-01T19:00:00Z\"",
                "change_windows[0].from",
            ),
            (
                "[[change_windows]]\nprincipal = \"*\"\nfrom = \"2026-12-01T20:00:00Z\"\nuntil = \"2026-12-01T21:00:00Z\"",
                "change_windows[0].principal",
            ),
            (
                "[[change_windows]]\nprincipal = \"arn:aws:iam::1:role/x\"\naccount = \"42\"\nfrom = \"2026-12-01T20:00:00Z\"\nuntil = \"2026-12-01T21:00:00Z\"",
                "change_windows[0].account",
            ),
            // The account brake stops a whole account: only per principal.
            ("containment = \"account_brake\"", "containment"),
            (
                "[resources.\"rds:db\"]\ncontainment = \"account_brake\"",
                "resources.\"rds:db\".containment",
            ),
            ("account_brake_policy = \"scp-1\"", "account_brake_policy"),
        ];
        for (text, key) in cases {
            let e = Policy::from_toml(text).unwrap_err();
            assert_eq!(e.key, key, "{text}: {e}");
        }
        let e = Policy::from_toml("containment = \"nuke\"").unwrap_err();
        assert!(e.message.contains("nuke"), "{e}");
        let e = Policy::from_toml("[[change_windows]]\nprincipal = \"arn:aws:iam::1:role/x\"\nfrom = \"2026-12-01T20:00:00Z\"\nuntil = \"2026-12-01T20:00:00Z\"").unwrap_err();
        assert!(e.message.contains("after"), "{e}");
    }

    #[test]
    fn resource_rules_sit_between_principal_rules_and_the_catalogues_defaults() {
        let p = Policy::from_toml(
            r#"threshold = 10
containment = "revoke"
[accounts."333333333333"]
threshold = 3
[principals."arn:aws:iam::*:role/teardown"]
threshold = 100
[resources."rds:db"]
threshold = 1
window = "1h"
containment = "brake"
"#,
        )
        .unwrap();
        let (app, teardown) = (
            "arn:aws:iam::222222222222:role/app",
            "arn:aws:iam::222222222222:role/teardown",
        );
        // The type's rule over the catalogue's default (3 in 10 minutes), under the
        // principal's rule, which applies to every type.
        assert_eq!(p.threshold_for(app, "222222222222", false, "rds:db"), 1);
        assert_eq!(p.window_for(app, "rds:db"), 3_600_000);
        assert_eq!(p.containment_for(app, "rds:db"), Mode::Brake);
        assert_eq!(
            p.threshold_for(teardown, "222222222222", false, "rds:db"),
            100
        );
        // Another type keeps the catalogue's default; instances keep the policy's, and
        // the account override applies to instances only.
        assert_eq!(
            p.threshold_for(app, "222222222222", false, "ec2:volume"),
            20
        );
        assert_eq!(p.window_for(app, "ec2:volume"), 600_000);
        assert_eq!(p.containment_for(app, "ec2:volume"), Mode::Revoke);
        assert_eq!(
            p.threshold_for(app, "333333333333", false, "ec2:instance"),
            3
        );
        assert_eq!(
            p.threshold_for(app, "333333333333", false, "ec2:volume"),
            20
        );
        assert_eq!(p.window_for(app, "ec2:instance"), 300_000);
        // A type the catalogue does not watch is an error that names its key.
        for (text, key) in [
            (
                "[resources.\"rds:dbx\"]\nthreshold = 2",
                "resources.\"rds:dbx\"",
            ),
            (
                "[resources.\"rds:db\"]\nthreshold = 0",
                "resources.\"rds:db\".threshold",
            ),
            (
                "[resources.\"rds:db\"]\nwindow = \"2d\"",
                "resources.\"rds:db\".window",
            ),
            ("[resources.\"rds:db\"]\nsize = 2", "size"),
            (
                "[resources.\"precursor\"]\ncontainment = \"revoke\"",
                "resources.\"precursor\".containment",
            ),
        ] {
            let e = Policy::from_toml(text).unwrap_err();
            assert!(e.key.starts_with(key), "{text}: {e}");
        }
    }

    #[test]
    fn principal_rules_apply_in_file_order() {
        // BTreeMap order would put `arn:aws:iam::*:role/a*` first; file order wins.
        let p = Policy::from_toml(
            "threshold = 10\n[principals.\"arn:aws:iam::*:role/ab*\"]\nthreshold = 7\n[principals.\"arn:aws:iam::*:role/a*\"]\nthreshold = 5\ncontainment = \"quarantine\"",
        )
        .unwrap();
        let ab = "arn:aws:iam::222222222222:role/abc";
        let a = "arn:aws:iam::222222222222:role/axe";
        assert_eq!(
            p.threshold_for(ab, "222222222222", false, "ec2:instance"),
            7
        );
        assert_eq!(p.threshold_for(a, "222222222222", false, "ec2:instance"), 5);
        assert_eq!(p.containment_for(ab, "ec2:instance"), Mode::Off);
        assert_eq!(p.containment_for(a, "ec2:instance"), Mode::Quarantine);
        assert_eq!(
            p.threshold_for(
                "arn:aws:iam::222222222222:role/z",
                "222222222222",
                false,
                "ec2:instance"
            ),
            10
        );
    }

    #[test]
    fn globs_match_like_iam() {
        let g = Glob::new("arn:aws:iam::*:role/ci/*", false);
        assert!(g.matches("arn:aws:iam::111111111111:role/ci/deployer"));
        assert!(g.matches("arn:aws:iam::111111111111:role/ci/a/b"));
        assert!(!g.matches("arn:aws:iam::111111111111:role/CI/deployer"));
        assert!(Glob::new("arn:aws:iam::*:role/ci/*", true).matches("arn:aws:iam::1:role/CI/x"));
        assert!(Glob::new("a?c", false).matches("abc"));
        // `arn:aws:` globs cover every partition; a named partition only itself.
        let any = Glob::new("arn:aws:iam::*:role/BreakGlass*", true);
        for arn in [
            "arn:aws:iam::111111111111:role/BreakGlassAdmin",
            "arn:aws-us-gov:iam::111111111111:role/BreakGlassAdmin",
            "arn:aws-cn:iam::111111111111:role/breakglass",
            "arn:aws-iso-b:iam::111111111111:role/BreakGlass",
        ] {
            assert!(any.matches(arn), "{arn}");
        }
        assert!(!any.matches("arn:other:iam::111111111111:role/BreakGlass"));
        assert!(!any.matches("arn:aws-us-gov:iam::111111111111:role/app"));
        let gov = Glob::new("arn:aws-us-gov:iam::*:role/BreakGlass*", true);
        assert!(gov.matches("arn:aws-us-gov:iam::111111111111:role/BreakGlass"));
        assert!(!gov.matches("arn:aws:iam::111111111111:role/BreakGlass"));
        assert!(!gov.matches("arn:aws-cn:iam::111111111111:role/BreakGlass"));
        assert!(!Glob::new("a?c", false).matches("ac"));
        let long = "a".repeat(2000);
        assert!(!Glob::new("*a*a*a*a*a*b", false).matches(&long));
    }

    #[test]
    fn durations_are_written_as_they_are_read() {
        for ms in [
            1, 250, 1000, 90_000, 300_000, 5_400_000, 3_600_000, 3_661_000,
        ] {
            let text = crate::time::format_duration(ms);
            assert_eq!(parse_duration(&text), Ok(ms), "{text}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration("250ms"), Ok(250));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5d").is_err());
    }
}
