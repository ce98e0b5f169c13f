//! Configuration from the environment, read once at cold start. A bad value fails the
//! cold start with a message that names the variable; nothing is read per event.

use crate::{Error, TlsRoots};
use tripwire_engine::principal::valid_iam_name;
use tripwire_engine::time::Millis;
use tripwire_engine::Policy;

/// Inline policy TOML.
pub const POLICY: &str = "TRIPWIRE_POLICY";
/// Path to the policy file; relative paths are inside the package (`LAMBDA_TASK_ROOT`).
pub const POLICY_FILE: &str = "TRIPWIRE_POLICY_FILE";
/// DynamoDB table for windows and incidents.
pub const TABLE: &str = "TRIPWIRE_TABLE";
/// SNS topic ARN for alerts.
pub const TOPIC_ARN: &str = "TRIPWIRE_TOPIC_ARN";
/// The responder function's name or ARN (detector only).
pub const RESPONDER_FUNCTION: &str = "TRIPWIRE_RESPONDER_FUNCTION";
/// The containment role's name in every member account (responder and `tripwire release`).
pub const CONTAINMENT_ROLE: &str = "TRIPWIRE_CONTAINMENT_ROLE";
/// The role `tripwire release` assumes in the principal's account.
pub const RELEASE_ROLE: &str = "TRIPWIRE_RELEASE_ROLE";
/// The member stack's release role name.
pub const DEFAULT_RELEASE_ROLE: &str = "tripwire-release";

/// Comma-separated exact ARNs of the tripwire's own roles in the security account, never
/// contained (responder). The member stacks' roles are refused by their fixed names.
pub const OWN_ROLES: &str = "TRIPWIRE_OWN_ROLES";

/// `amazon` (the default) or `system`: the root certificates the functions trust.
pub const TLS_ROOTS: &str = "TRIPWIRE_TLS_ROOTS";

/// An environment lookup; tests pass a map instead of the process environment.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn required(env: Env, name: &str) -> Result<String, Error> {
    env(name)
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| Error::Config(format!("{name} is not set")))
}

/// The published policy file's SSM parameter, pinned to a version
/// (`/tripwire/policy:3`, `tripwire publish-policy` prints it): read at cold start, with
/// `TRIPWIRE_POLICY` holding only the stack's own keys. A pin, so that writing a new
/// version changes nothing until a deploy names it.
pub const POLICY_PARAMETER: &str = "TRIPWIRE_POLICY_PARAMETER";

/// A policy as a function loaded it: the validated policy, the file's text and hash, and
/// where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedPolicy {
    /// The validated policy (the file with the stack's keys layered on).
    pub policy: Policy,
    /// The file's text as published (without the stack's keys).
    pub text: String,
    /// Its SHA-256 ([`tripwire_engine::deployed::policy_hash`]).
    pub sha256: String,
    /// The variable or parameter version it came from.
    pub source: String,
}

impl LoadedPolicy {
    fn inline(source: String, text: String) -> Result<Self, Error> {
        let policy =
            Policy::from_toml(&text).map_err(|e| Error::Config(format!("{source}: {e}")))?;
        Ok(LoadedPolicy {
            policy,
            sha256: tripwire_engine::deployed::policy_hash(&text),
            text,
            source,
        })
    }
}

/// Where the policy comes from: already read from the environment, or a published
/// version still to fetch ([`crate::published::resolve`]).
#[derive(Debug, Clone, PartialEq)]
pub enum PolicySource {
    /// `TRIPWIRE_POLICY` or `TRIPWIRE_POLICY_FILE`.
    Loaded(Box<LoadedPolicy>),
    /// `TRIPWIRE_POLICY_PARAMETER`, and the stack's keys from `TRIPWIRE_POLICY`.
    Parameter {
        /// `NAME:VERSION`.
        selector: String,
        /// The stack's own keys (TOML), layered on the file.
        stack_keys: String,
    },
}

/// An SSM parameter name and a version: `/tripwire/policy:3`.
fn valid_selector(v: &str) -> bool {
    v.rsplit_once(':').is_some_and(|(name, version)| {
        name.starts_with('/')
            && name.len() <= 1011
            && name
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"_.-/".contains(&c))
            && !version.is_empty()
            && version.len() <= 10
            && version.bytes().all(|c| c.is_ascii_digit())
            && !version.starts_with('0')
    })
}

/// The policy, from `TRIPWIRE_POLICY_PARAMETER` (the published file, the stack's keys in
/// `TRIPWIRE_POLICY`), `TRIPWIRE_POLICY` (inline) or `TRIPWIRE_POLICY_FILE`.
pub fn policy(env: Env) -> Result<PolicySource, Error> {
    let inline = env(POLICY).filter(|v| !v.trim().is_empty());
    if let Some(selector) = env(POLICY_PARAMETER).filter(|v| !v.trim().is_empty()) {
        let selector = selector.trim().to_owned();
        if env(POLICY_FILE).is_some() {
            return Err(Error::Config(format!(
                "set {POLICY_PARAMETER} or {POLICY_FILE}, not both"
            )));
        }
        if !valid_selector(&selector) {
            return Err(Error::Config(format!(
                "{POLICY_PARAMETER}=`{selector}` is not an SSM parameter name and version (/tripwire/policy:3)"
            )));
        }
        let stack_keys = inline.unwrap_or_default();
        // The stack's keys alone must already make a valid policy: a mistake there fails
        // here, naming the variable, before anything is fetched.
        Policy::from_toml(&stack_keys).map_err(|e| Error::Config(format!("{POLICY}: {e}")))?;
        return Ok(PolicySource::Parameter {
            selector,
            stack_keys,
        });
    }
    let (source, text) = match (inline, env(POLICY_FILE)) {
        (Some(_), Some(_)) => {
            return Err(Error::Config(format!(
                "set {POLICY} or {POLICY_FILE}, not both"
            )))
        }
        (Some(inline), None) => (POLICY.to_string(), inline),
        (None, Some(path)) => {
            let full = match env("LAMBDA_TASK_ROOT") {
                Some(root) if !path.starts_with('/') => format!("{root}/{path}"),
                _ => path.clone(),
            };
            let text = std::fs::read_to_string(&full)
                .map_err(|e| Error::Config(format!("{POLICY_FILE}={path}: {e}")))?;
            (format!("{POLICY_FILE}={path}"), text)
        }
        (None, None) => {
            return Err(Error::Config(format!(
                "{POLICY_PARAMETER}, {POLICY} or {POLICY_FILE} must be set"
            )))
        }
    };
    LoadedPolicy::inline(source, text).map(|p| PolicySource::Loaded(Box::new(p)))
}

fn tls_roots(env: Env) -> Result<TlsRoots, Error> {
    match env(TLS_ROOTS).as_deref().map(str::trim) {
        None | Some("") | Some("amazon") => Ok(TlsRoots::Amazon),
        Some("system") => Ok(TlsRoots::System),
        Some(other) => Err(Error::Config(format!(
            "{TLS_ROOTS}=`{other}` is not `amazon` or `system`"
        ))),
    }
}

fn table(env: Env) -> Result<String, Error> {
    let t = required(env, TABLE)?;
    let ok = (3..=255).contains(&t.len())
        && t.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(&c));
    ok.then_some(t.clone())
        .ok_or_else(|| Error::Config(format!("{TABLE}=`{t}` is not a DynamoDB table name")))
}

fn topic_arn(env: Env) -> Result<String, Error> {
    sns_topic(TOPIC_ARN, required(env, TOPIC_ARN)?)
}

fn sns_topic(var: &str, t: String) -> Result<String, Error> {
    let ok =
        t.starts_with("arn:") && t.split(':').nth(2) == Some("sns") && t.split(':').count() == 6;
    ok.then_some(t.clone())
        .ok_or_else(|| Error::Config(format!("{var}=`{t}` is not an SNS topic ARN")))
}

/// The second channel for the tripwire's own alarms: optional.
pub const ALARM_TOPIC_ARN: &str = "TRIPWIRE_ALARM_TOPIC_ARN";

/// Reads the second channel's topic, when set.
pub fn alarm_topic_arn(env: Env) -> Result<Option<String>, Error> {
    env(ALARM_TOPIC_ARN)
        .filter(|t| !t.is_empty())
        .map(|t| sns_topic(ALARM_TOPIC_ARN, t))
        .transpose()
}

/// The alert bus (name or ARN): every alert is also put there as an EventBridge event;
/// optional.
pub const ALERT_BUS: &str = "TRIPWIRE_ALERT_BUS";

/// Reads the alert bus, when set.
pub fn alert_bus(env: Env) -> Result<Option<String>, Error> {
    let Some(b) = env(ALERT_BUS)
        .map(|b| b.trim().to_owned())
        .filter(|b| !b.is_empty())
    else {
        return Ok(None);
    };
    let name = if b.starts_with("arn:") {
        let ok = b.split(':').nth(2) == Some("events") && b.contains(":event-bus/");
        ok.then(|| b.rsplit('/').next().unwrap_or_default().to_owned())
    } else {
        Some(b.clone())
    };
    // EventBridge bus names: 1 to 256 of letters, digits, `.`, `-`, `_`.
    match name {
        Some(n)
            if (1..=256).contains(&n.len())
                && n.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c)) =>
        {
            Ok(Some(b))
        }
        _ => Err(Error::Config(format!(
            "{ALERT_BUS}=`{b}` is not an EventBridge bus name or ARN"
        ))),
    }
}

/// Reads and checks the containment role name.
pub fn containment_role(env: Env) -> Result<String, Error> {
    let r = required(env, CONTAINMENT_ROLE)?;
    valid_iam_name(&r)
        .then_some(r.clone())
        .ok_or_else(|| Error::Config(format!("{CONTAINMENT_ROLE}=`{r}` is not an IAM role name")))
}

/// The release role's name: `TRIPWIRE_RELEASE_ROLE`, else the member stack's.
pub fn release_role(env: Env) -> Result<String, Error> {
    let r = env(RELEASE_ROLE).unwrap_or_else(|| DEFAULT_RELEASE_ROLE.to_owned());
    valid_iam_name(&r)
        .then_some(r.clone())
        .ok_or_else(|| Error::Config(format!("{RELEASE_ROLE}=`{r}` is not an IAM role name")))
}

/// The detector's configuration.
#[derive(Debug, Clone)]
pub struct DetectorConfig {
    /// The validated policy.
    pub policy: PolicySource,
    /// DynamoDB table.
    pub table: String,
    /// SNS topic.
    pub topic_arn: String,
    /// Responder function name or ARN.
    pub responder_function: String,
    /// The second channel for tamper alerts, when set.
    pub alarm_topic_arn: Option<String>,
    /// The alert bus, when set.
    pub alert_bus: Option<String>,
    /// Root certificates for AWS endpoints.
    pub tls_roots: TlsRoots,
}

impl DetectorConfig {
    /// Reads every variable the detector needs.
    pub fn from_env(env: Env) -> Result<Self, Error> {
        Ok(DetectorConfig {
            policy: policy(env)?,
            table: table(env)?,
            topic_arn: topic_arn(env)?,
            responder_function: required(env, RESPONDER_FUNCTION)?,
            alarm_topic_arn: alarm_topic_arn(env)?,
            alert_bus: alert_bus(env)?,
            tls_roots: tls_roots(env)?,
        })
    }
}

/// How often the member stacks' canaries call, in minutes (their `CanaryInterval`).
pub const CANARY_INTERVAL: &str = "TRIPWIRE_CANARY_INTERVAL_MINUTES";

/// The watchdog's configuration.
#[derive(Debug, Clone)]
pub struct WatchdogConfig {
    /// The policy: its allowed accounts send no heartbeats (their canaries are filtered
    /// like any termination there), so none is expected from them.
    pub policy: PolicySource,
    /// DynamoDB table.
    pub table: String,
    /// Where coverage alerts go without a second channel.
    pub topic_arn: String,
    /// The second channel, when set.
    pub alarm_topic_arn: Option<String>,
    /// The alert bus, when set.
    pub alert_bus: Option<String>,
    /// The canary interval, in ms.
    pub interval: Millis,
    /// The member StackSet and how to list its instances, when set: its instances that
    /// never send a heartbeat are paged.
    pub stack_set: Option<(String, aws_sdk_cloudformation::types::CallAs)>,
    /// How long after the watchdog first lists an instance it pages one that never
    /// spoke, in ms.
    pub never_seen_grace: Millis,
    /// The regions every active account of the organization is expected in.
    pub expected_regions: Vec<String>,
    /// The responder, which the drill asks to drill in each account, when set.
    pub responder_function: Option<String>,
    /// The partition the member accounts are in (`aws` unless set).
    pub partition: String,
    /// Root certificates for AWS endpoints.
    pub tls_roots: TlsRoots,
}

/// The member StackSet's name; empty or unset pages no never-seen instances.
pub const MEMBER_STACKSET: &str = "TRIPWIRE_MEMBER_STACKSET";
/// `DELEGATED_ADMIN` (the default) or `SELF` (in the management account).
pub const STACKSET_CALL_AS: &str = "TRIPWIRE_STACKSET_CALL_AS";
/// Minutes a listed instance may stay silent before it is paged (default 60).
pub const NEVER_SEEN_GRACE: &str = "TRIPWIRE_NEVER_SEEN_GRACE_MINUTES";

/// The regions every account of the organization should send heartbeats from
/// (comma-separated; the deploy scripts pass the enabled regions they deployed to).
/// Unset, only the StackSet's instances and the pairs heard from are expected.
pub const EXPECTED_REGIONS: &str = "TRIPWIRE_EXPECTED_REGIONS";

/// `us-east-1`, `ap-southeast-4`, `us-gov-west-1`: lower-case words and a number.
fn valid_region(r: &str) -> bool {
    let mut parts = r.split('-');
    let last = parts.next_back();
    let words: Vec<&str> = parts.collect();
    words.len() >= 2
        && words
            .iter()
            .all(|w| !w.is_empty() && w.bytes().all(|c| c.is_ascii_lowercase()))
        && last
            .is_some_and(|n| !n.is_empty() && n.len() <= 2 && n.bytes().all(|c| c.is_ascii_digit()))
}

/// A whole number of minutes within `range`, in ms.
fn minutes(name: &str, v: &str, range: std::ops::RangeInclusive<u32>) -> Result<Millis, Error> {
    v.parse::<u32>()
        .ok()
        .filter(|m| range.contains(m))
        .map(|m| Millis::from(m) * 60_000)
        .ok_or_else(|| {
            Error::Config(format!(
                "{name}=`{v}` is not a whole number of minutes from {} to {}",
                range.start(),
                range.end()
            ))
        })
}

impl WatchdogConfig {
    /// Reads every variable the watchdog needs.
    pub fn from_env(env: Env) -> Result<Self, Error> {
        use aws_sdk_cloudformation::types::CallAs;
        let interval = minutes(CANARY_INTERVAL, &required(env, CANARY_INTERVAL)?, 2..=60)?;
        let stack_set = match env(MEMBER_STACKSET).filter(|v| !v.trim().is_empty()) {
            None => None,
            Some(name) => {
                let call_as = match env(STACKSET_CALL_AS).as_deref().map(str::trim) {
                    None | Some("") | Some("DELEGATED_ADMIN") => CallAs::DelegatedAdmin,
                    Some("SELF") => CallAs::SelfValue,
                    Some(v) => {
                        return Err(Error::Config(format!(
                            "{STACKSET_CALL_AS}=`{v}` is neither DELEGATED_ADMIN nor SELF"
                        )))
                    }
                };
                Some((name.trim().to_owned(), call_as))
            }
        };
        let never_seen_grace = match env(NEVER_SEEN_GRACE).filter(|v| !v.trim().is_empty()) {
            None => 60 * 60_000,
            // 0 pages at the second run that lists it (the tests' setting).
            Some(v) => minutes(NEVER_SEEN_GRACE, v.trim(), 0..=10_080)?,
        };
        let mut expected_regions = Vec::new();
        for r in env(EXPECTED_REGIONS)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|r| !r.is_empty())
        {
            if !valid_region(r) {
                return Err(Error::Config(format!(
                    "{EXPECTED_REGIONS}: `{r}` is not a region name (us-east-1)"
                )));
            }
            if !expected_regions.iter().any(|e| e == r) {
                expected_regions.push(r.to_owned());
            }
        }
        let partition = partition(
            env(PARTITION)
                .map(|p| p.trim().to_owned())
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "aws".into()),
        )?;
        Ok(WatchdogConfig {
            expected_regions,
            responder_function: env(RESPONDER_FUNCTION)
                .map(|f| f.trim().to_owned())
                .filter(|f| !f.is_empty()),
            partition,
            policy: policy(env)?,
            table: table(env)?,
            topic_arn: topic_arn(env)?,
            alarm_topic_arn: alarm_topic_arn(env)?,
            alert_bus: alert_bus(env)?,
            interval,
            stack_set,
            never_seen_grace,
            tls_roots: tls_roots(env)?,
        })
    }
}

/// The responder's configuration.
#[derive(Debug, Clone)]
pub struct ResponderConfig {
    /// The validated policy (its protected principals are re-checked here).
    pub policy: PolicySource,
    /// DynamoDB table.
    pub table: String,
    /// SNS topic.
    pub topic_arn: String,
    /// The alert bus, when set.
    pub alert_bus: Option<String>,
    /// Containment role name.
    pub containment_role: String,
    /// The tripwire's own roles in the security account (exact ARNs), never contained.
    pub own_roles: Vec<String>,
    /// Root certificates for AWS endpoints.
    pub tls_roots: TlsRoots,
}

impl ResponderConfig {
    /// Reads every variable the responder needs.
    pub fn from_env(env: Env) -> Result<Self, Error> {
        let own = env(OWN_ROLES).unwrap_or_default();
        let mut own_roles = Vec::new();
        // Exact ARNs: a glob such as `tripwire-*` would let anyone who names a role that
        // way escape containment.
        for a in own.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            match tripwire_engine::principal::iam_entity(a) {
                Ok(e) if e.is_role => own_roles.push(a.to_owned()),
                _ => {
                    return Err(Error::Config(format!(
                        "{OWN_ROLES}: `{a}` is not a role ARN (exact, no wildcards)"
                    )))
                }
            }
        }
        Ok(ResponderConfig {
            policy: policy(env)?,
            table: table(env)?,
            topic_arn: topic_arn(env)?,
            alert_bus: alert_bus(env)?,
            containment_role: containment_role(env)?,
            own_roles,
            tls_roots: tls_roots(env)?,
        })
    }
}

/// The account the findings are imported in (the central stack's).
pub const FINDINGS_ACCOUNT: &str = "TRIPWIRE_FINDINGS_ACCOUNT";
/// Its partition (`aws`, `aws-us-gov`, `aws-cn`).
pub const PARTITION: &str = "TRIPWIRE_PARTITION";

/// The findings function's configuration.
#[derive(Debug, Clone)]
pub struct FindingsConfig {
    /// Where findings are imported.
    pub context: tripwire_engine::destination::FindingContext,
    /// Root certificates for AWS endpoints.
    pub tls_roots: TlsRoots,
}

/// `p`, when it is one of AWS's partitions.
fn partition(p: String) -> Result<String, Error> {
    if matches!(p.as_str(), "aws" | "aws-us-gov" | "aws-cn") {
        Ok(p)
    } else {
        Err(Error::Config(format!(
            "{PARTITION}=`{p}` is not aws, aws-us-gov or aws-cn"
        )))
    }
}

impl FindingsConfig {
    /// Reads every variable the findings function needs.
    pub fn from_env(env: Env) -> Result<Self, Error> {
        let account = required(env, FINDINGS_ACCOUNT)?;
        if account.len() != 12 || !account.bytes().all(|c| c.is_ascii_digit()) {
            return Err(Error::Config(format!(
                "{FINDINGS_ACCOUNT}=`{account}` is not an account ID"
            )));
        }
        let partition = partition(required(env, PARTITION)?)?;
        Ok(FindingsConfig {
            context: tripwire_engine::destination::FindingContext {
                account,
                region: required(env, "AWS_REGION")?,
                partition,
            },
            tls_roots: tls_roots(env)?,
        })
    }
}

/// An environment from pairs, for tests.
#[cfg(test)]
pub(crate) fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let m: std::collections::HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| m.get(k).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &[(&str, &str)] = &[
        (POLICY, "threshold = 5"),
        (TABLE, "tripwire"),
        (TOPIC_ARN, "arn:aws:sns:us-east-1:123456789012:tripwire"),
        (RESPONDER_FUNCTION, "tripwire-responder"),
        (CONTAINMENT_ROLE, "tripwire-containment"),
    ];

    #[test]
    fn a_good_environment_loads() {
        let d = DetectorConfig::from_env(&env(GOOD)).unwrap();
        match &d.policy {
            PolicySource::Loaded(p) => {
                assert_eq!(p.policy.threshold, 5);
                assert_eq!(
                    p.sha256,
                    tripwire_engine::deployed::policy_hash("threshold = 5")
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(d.tls_roots, TlsRoots::Amazon);
        let system: Vec<_> = GOOD
            .iter()
            .copied()
            .chain([(TLS_ROOTS, "system")])
            .collect();
        let d = DetectorConfig::from_env(&env(&system)).unwrap();
        assert_eq!(d.tls_roots, TlsRoots::System);
        let r = ResponderConfig::from_env(&env(GOOD)).unwrap();
        assert!(r.own_roles.is_empty());
        assert_eq!(r.alert_bus, None);
        for bus in [
            "tripwire-alerts",
            "arn:aws-us-gov:events:us-gov-west-1:123456789012:event-bus/tripwire-alerts",
        ] {
            let with_bus: Vec<_> = GOOD.iter().copied().chain([(ALERT_BUS, bus)]).collect();
            let d = DetectorConfig::from_env(&env(&with_bus)).unwrap();
            assert_eq!(d.alert_bus.as_deref(), Some(bus));
        }
        let own: Vec<_> = GOOD
            .iter()
            .copied()
            .chain([(
                OWN_ROLES,
                "arn:aws:iam::123456789012:role/tripwire-responder",
            )])
            .collect();
        let r = ResponderConfig::from_env(&env(&own)).unwrap();
        assert_eq!(
            r.own_roles,
            ["arn:aws:iam::123456789012:role/tripwire-responder"]
        );
    }

    #[test]
    fn every_bad_value_names_its_variable() {
        let cases: &[(&str, Option<&str>, &str)] = &[
            (
                POLICY,
                Some("threshold = 0"),
                "TRIPWIRE_POLICY: policy key `threshold`",
            ),
            (
                POLICY,
                None,
                "TRIPWIRE_POLICY_PARAMETER, TRIPWIRE_POLICY or TRIPWIRE_POLICY_FILE must be set",
            ),
            (TABLE, Some("a b"), TABLE),
            (TABLE, None, "TRIPWIRE_TABLE is not set"),
            (TOPIC_ARN, Some("tripwire"), TOPIC_ARN),
            (RESPONDER_FUNCTION, Some(" "), RESPONDER_FUNCTION),
            (CONTAINMENT_ROLE, Some("role/x"), CONTAINMENT_ROLE),
            (OWN_ROLES, Some("tripwire-*"), OWN_ROLES),
            (TLS_ROOTS, Some("native"), TLS_ROOTS),
            (POLICY_PARAMETER, Some("/tripwire/policy"), POLICY_PARAMETER),
            (
                POLICY_PARAMETER,
                Some("tripwire/policy:1"),
                POLICY_PARAMETER,
            ),
            (
                POLICY_PARAMETER,
                Some("/tripwire/policy:01"),
                POLICY_PARAMETER,
            ),
            (
                POLICY_PARAMETER,
                Some("/tripwire/policy:latest"),
                POLICY_PARAMETER,
            ),
            (ALERT_BUS, Some("tripwire alerts"), ALERT_BUS),
            (
                ALERT_BUS,
                Some("arn:aws:sns:us-east-1:123456789012:t"),
                ALERT_BUS,
            ),
        ];
        for (var, value, want) in cases {
            let mut pairs: Vec<(&str, &str)> =
                GOOD.iter().filter(|(k, _)| k != var).copied().collect();
            if let Some(v) = value {
                pairs.push((var, v));
            }
            let e = env(&pairs);
            let err = match *var {
                RESPONDER_FUNCTION => DetectorConfig::from_env(&e).unwrap_err(),
                _ => ResponderConfig::from_env(&e).unwrap_err(),
            };
            assert!(err.to_string().contains(want), "{var}: {err}");
        }
        let file = env(&[
            (POLICY_FILE, "missing.toml"),
            ("LAMBDA_TASK_ROOT", "/nonexistent"),
        ]);
        assert!(policy(&file)
            .unwrap_err()
            .to_string()
            .contains("TRIPWIRE_POLICY_FILE=missing.toml"));
    }

    #[test]
    fn a_published_policy_is_a_pinned_version_with_the_stacks_keys_beside_it() {
        let stack = "tripwire_topics = [\"arn:aws:sns:us-east-1:123456789012:t\"]";
        let e = env(&[(POLICY_PARAMETER, "/tripwire/policy:12"), (POLICY, stack)]);
        assert_eq!(
            policy(&e).unwrap(),
            PolicySource::Parameter {
                selector: "/tripwire/policy:12".into(),
                stack_keys: stack.into()
            }
        );
        let bad_stack = env(&[
            (POLICY_PARAMETER, "/tripwire/policy:1"),
            (POLICY, "threshold = 0"),
        ]);
        assert!(policy(&bad_stack)
            .unwrap_err()
            .to_string()
            .contains("TRIPWIRE_POLICY: policy key `threshold`"));
        let both = env(&[
            (POLICY_PARAMETER, "/tripwire/policy:1"),
            (POLICY_FILE, "p.toml"),
        ]);
        assert!(policy(&both).unwrap_err().to_string().contains("not both"));
    }

    #[test]
    fn the_watchdog_lists_the_stackset_only_when_named() {
        use aws_sdk_cloudformation::types::CallAs;
        let base = [
            (POLICY, "threshold = 5"),
            (TABLE, "tripwire"),
            (TOPIC_ARN, "arn:aws:sns:us-east-1:123456789012:tripwire"),
            (CANARY_INTERVAL, "10"),
        ];
        let with = |extra: &[(&'static str, &'static str)]| {
            let pairs: Vec<_> = base.iter().chain(extra).copied().collect();
            WatchdogConfig::from_env(&env(&pairs))
        };
        let w = with(&[]).unwrap();
        assert_eq!(
            (w.interval, w.stack_set, w.never_seen_grace),
            (600_000, None, 3_600_000)
        );
        let w = with(&[
            (MEMBER_STACKSET, "tripwire-member"),
            (NEVER_SEEN_GRACE, "30"),
        ])
        .unwrap();
        assert_eq!(
            (w.stack_set, w.never_seen_grace),
            (
                Some(("tripwire-member".into(), CallAs::DelegatedAdmin)),
                1_800_000
            )
        );
        let w = with(&[(MEMBER_STACKSET, "m"), (STACKSET_CALL_AS, "SELF")]).unwrap();
        assert_eq!(w.stack_set, Some(("m".into(), CallAs::SelfValue)));
        let w = with(&[(
            EXPECTED_REGIONS,
            "us-east-1, eu-west-1,us-east-1,,us-gov-west-1",
        )])
        .unwrap();
        assert_eq!(
            w.expected_regions,
            ["us-east-1", "eu-west-1", "us-gov-west-1"]
        );
        assert!(with(&[]).unwrap().expected_regions.is_empty());
        for (extra, want) in [
            ((EXPECTED_REGIONS, "us-east-1,useast1"), EXPECTED_REGIONS),
            ((EXPECTED_REGIONS, "US-EAST-1"), EXPECTED_REGIONS),
            ((EXPECTED_REGIONS, "us-east-"), EXPECTED_REGIONS),
            ((STACKSET_CALL_AS, "ADMIN"), STACKSET_CALL_AS),
            ((NEVER_SEEN_GRACE, "10081"), "from 0 to 10080"),
            ((CANARY_INTERVAL, "1"), "from 2 to 60"),
        ] {
            let mut pairs: Vec<_> = base
                .iter()
                .filter(|(k, _)| *k != extra.0)
                .copied()
                .collect();
            pairs.extend([(MEMBER_STACKSET, "m"), extra]);
            let err = WatchdogConfig::from_env(&env(&pairs))
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{extra:?}: {err}");
        }
    }
}
