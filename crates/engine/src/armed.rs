//! Is the tripwire armed? Two kinds of record answer: the canary's heartbeats, which prove
//! that a TerminateInstances call in an account and region reaches the detector by the
//! path a real one takes, and calls that disarm the tripwire's own parts (its policies on
//! a contained principal, its roles, its forwarding rules, the trail, its key, its topic).

use crate::catalogue::{self, ContextCall, Role, TamperTarget};
use crate::names::{
    CANARY_INSTANCE, CANARY_ROLE, CONTAIN_TAG_PREFIX, FORWARD_RULE_PREFIX, RULE_PREFIX,
};
use crate::principal::{sanitize, PrincipalKind};
use crate::record::Document;
use crate::skip::SkipReason;
use crate::termination::Termination;
use crate::time::Millis;
use serde::{Deserialize, Serialize};

/// A canary call seen: the path from CloudTrail to the detector works in `account` and
/// `region`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// eventID.
    pub event_id: String,
    /// The account the canary ran in.
    pub account: String,
    /// `awsRegion`.
    pub region: String,
    /// eventTime: arrival minus this is the delivery latency.
    #[serde(with = "crate::time::rfc3339")]
    pub event_time: Millis,
}

/// The errors of a canary call that reached EC2: the dry run succeeded, or (should EC2
/// look the instance up first) the instance does not exist. Anything else (denied, say)
/// is not a heartbeat, and the call is decided on like any other.
const CANARY_ERRORS: [&str; 2] = ["DryRunOperation", "InvalidInstanceID.NotFound"];

/// The heartbeat `t` is, if it is the canary's: its own account's `tripwire-canary`
/// role, asking only for [`CANARY_INSTANCE`], refused as a dry run.
pub fn heartbeat_of(t: &Termination) -> Option<Heartbeat> {
    let PrincipalKind::Role { name, .. } = &t.principal.kind else {
        return None;
    };
    let code = t.error_code.as_deref()?;
    let code = code.strip_prefix("Client.").unwrap_or(code);
    let canary = name == CANARY_ROLE
        && t.principal.account.as_deref() == Some(t.account.as_str())
        && t.instance_ids == [CANARY_INSTANCE]
        && CANARY_ERRORS.contains(&code);
    canary.then(|| Heartbeat {
        event_id: t.event_id.clone(),
        account: t.account.clone(),
        region: t.region.clone(),
        event_time: t.event_time,
    })
}

/// Upper bounds (ms) of the delivery-latency histogram's buckets; the last is open. Ten
/// counters per (account, region) and day keep it small.
pub const LATENCY_BUCKETS_MS: [Millis; 10] = [
    1_000,
    2_000,
    5_000,
    10_000,
    30_000,
    60_000,
    120_000,
    300_000,
    900_000,
    Millis::MAX,
];

/// The bucket of a delivery latency (a negative one, from a skewed clock, is the first).
pub fn latency_bucket(ms: Millis) -> usize {
    LATENCY_BUCKETS_MS
        .iter()
        .position(|&b| ms <= b)
        .unwrap_or(LATENCY_BUCKETS_MS.len() - 1)
}

/// The `q` quantile (0 to 1) of a histogram, as its bucket's upper bound (`None` for
/// the open bucket and for an empty histogram).
pub fn quantile(counts: &[u64], q: f64) -> Option<Millis> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, c) in counts.iter().enumerate() {
        seen += c;
        if seen >= rank {
            return LATENCY_BUCKETS_MS
                .get(i)
                .copied()
                .filter(|&b| b != Millis::MAX);
        }
    }
    None
}

/// The heartbeat's delivery latency as a CloudWatch metric (`tripwire` /
/// `DeliveryLatency` by `Region`) in embedded metric format: one log line, which
/// CloudWatch Logs turns into the metric without an API call on the hot path.
pub fn latency_metric(account: &str, region: &str, latency_ms: Millis, now: Millis) -> String {
    serde_json::json!({
        "_aws": {
            "Timestamp": now,
            "CloudWatchMetrics": [{
                "Namespace": "tripwire",
                "Dimensions": [["Region"]],
                "Metrics": [{"Name": "DeliveryLatency", "Unit": "Milliseconds"}]
            }]
        },
        "Region": region,
        "Account": account,
        "DeliveryLatency": latency_ms,
    })
    .to_string()
}

/// The last heartbeat recorded for an (account, region).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatState {
    /// The account.
    pub account: String,
    /// The region.
    pub region: String,
    /// The last heartbeat's eventTime.
    #[serde(with = "crate::time::rfc3339")]
    pub last: Millis,
    /// When it arrived.
    #[serde(with = "crate::time::rfc3339")]
    pub arrived: Millis,
    /// Heartbeats recorded, each once.
    pub heartbeats: u64,
    /// The last heartbeat before the silence the watchdog paged `coverage_lost` for,
    /// until it pages `coverage_restored`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost_paged: Option<Millis>,
}

/// An instance of the member StackSet, as CloudFormation lists it: where a canary
/// should be calling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployed {
    /// The account.
    pub account: String,
    /// The region.
    pub region: String,
    /// The instance's status and, when CloudFormation gives one, its detailed status
    /// and reason (`OUTDATED FAILED: ...`): a failed deployment is why a pair never speaks.
    pub status: String,
    /// Listed by the member StackSet (where its stack contains): the drill runs there.
    /// An account the organization lists but no instance names is only expected.
    #[serde(default)]
    pub stack_instance: bool,
}

/// A StackSet instance that has not sent a heartbeat yet, as the watchdog keeps it: from
/// the first run that listed it until its first heartbeat or its removal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listed {
    /// The account.
    pub account: String,
    /// The region.
    pub region: String,
    /// When the watchdog first listed it: the grace period runs from here.
    #[serde(with = "crate::time::rfc3339")]
    pub listed: Millis,
    /// Whether `coverage_lost` went out for it (then its first heartbeat pages
    /// `coverage_restored`).
    pub paged: bool,
}

/// Where an (account, region) stands, by its last heartbeat's age.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Armed {
    /// A heartbeat within one and a half canary intervals.
    Armed,
    /// None for longer, up to three intervals.
    Late,
    /// Silent for three intervals: the watchdog pages `coverage_lost`.
    Lost,
    /// Never heard from.
    NeverSeen,
}

impl Armed {
    /// The state of a pair whose last heartbeat's eventTime is `last`.
    pub fn of(last: Option<Millis>, now: Millis, interval: Millis) -> Armed {
        match last.map(|t| now - t) {
            None => Armed::NeverSeen,
            Some(age) if age * 2 <= interval * 3 => Armed::Armed,
            Some(age) if age <= interval * 3 => Armed::Late,
            Some(_) => Armed::Lost,
        }
    }

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Armed::Armed => "armed",
            Armed::Late => "late",
            Armed::Lost => "lost",
            Armed::NeverSeen => "never_seen",
        }
    }
}

/// What a tamper call touched. Its JSON (`target`) is the name as a string, as before;
/// which kind it is follows from the call that touched it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Touched {
    /// A part the tripwire knows by its name: a trail, a forwarding rule, one of its
    /// managed policies (by ARN), a member stack role (`role/NAME`).
    Named(String),
    /// One of the tripwire's policies lifted from a principal (`role/NAME` or
    /// `user/NAME`), by policy name or ARN.
    Lifted {
        /// `role/NAME` or `user/NAME`.
        entity: String,
        /// The policy's name (inline) or ARN (managed).
        policy: String,
    },
    /// A KMS key, by ID or ARN: the tripwire's if `tripwire_keys` lists it.
    Key(String),
    /// An SNS subscription's ARN: the tripwire's if its topic is.
    Subscription(String),
    /// An SNS topic's ARN: the tripwire's if `tripwire_topics` lists it.
    Topic(String),
    /// A service control policy's ID: the tripwire's if `tripwire_scps` lists it.
    Scp(String),
}

impl Touched {
    /// How the call names it (`role/NAME policy/P` for a lifted policy).
    pub fn name(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Touched::Named(n)
            | Touched::Key(n)
            | Touched::Subscription(n)
            | Touched::Topic(n)
            | Touched::Scp(n) => n.as_str().into(),
            Touched::Lifted { entity, policy } => format!("{entity} policy/{policy}").into(),
        }
    }

    /// What `name` names, for the call `event_source`/`event_name` (reading a `target`
    /// back from JSON).
    fn of(event_source: &str, event_name: &str, name: &str) -> Touched {
        match catalogue::context(event_source, event_name).map(|c| c.role) {
            Some(Role::Tamper(TamperTarget::Key)) => Touched::Key(name.into()),
            Some(Role::Tamper(TamperTarget::Subscription)) => Touched::Subscription(name.into()),
            Some(Role::Tamper(TamperTarget::Topic)) => Touched::Topic(name.into()),
            Some(Role::Tamper(TamperTarget::Scp)) => Touched::Scp(name.into()),
            _ => match name.split_once(" policy/") {
                Some((entity, policy)) => Touched::Lifted {
                    entity: entity.into(),
                    policy: policy.into(),
                },
                None => Touched::Named(name.into()),
            },
        }
    }
}

impl std::fmt::Display for Touched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

/// A call that disarms part of the tripwire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "TamperJson", into = "TamperJson")]
pub struct Tamper {
    /// eventID.
    pub event_id: String,
    /// e.g. `StopLogging`.
    pub event_name: String,
    /// e.g. `cloudtrail.amazonaws.com`.
    pub event_source: String,
    /// Who made it (the role for a role session).
    pub principal_arn: String,
    /// Where (`recipientAccountId`).
    pub account: String,
    /// `awsRegion`.
    pub region: String,
    /// What it touched.
    pub target: Touched,
    /// eventTime.
    pub event_time: Millis,
    /// Set when the call failed: an attempt, still worth a page.
    pub error_code: Option<String>,
}

/// A tamper call's JSON: the backtest's `tamper` line and the alert's fields.
#[derive(Serialize, Deserialize)]
struct TamperJson {
    event_id: String,
    event_name: String,
    event_source: String,
    principal_arn: String,
    account: String,
    region: String,
    target: String,
    #[serde(with = "crate::time::rfc3339")]
    event_time: Millis,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    error_code: Option<String>,
    /// For a tripwire policy lifted from a principal: `role/NAME` or `user/NAME`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    lifted_from: Option<String>,
}

impl From<Tamper> for TamperJson {
    fn from(t: Tamper) -> Self {
        TamperJson {
            target: t.target.to_string(),
            lifted_from: t.lifted_from().map(str::to_owned),
            event_id: t.event_id,
            event_name: t.event_name,
            event_source: t.event_source,
            principal_arn: t.principal_arn,
            account: t.account,
            region: t.region,
            event_time: t.event_time,
            error_code: t.error_code,
        }
    }
}

impl TryFrom<TamperJson> for Tamper {
    type Error = &'static str;
    fn try_from(j: TamperJson) -> Result<Self, Self::Error> {
        let target = Touched::of(&j.event_source, &j.event_name, &j.target);
        if j.lifted_from.is_some() && j.lifted_from.as_deref() != Tamper::lifted(&target) {
            return Err("`lifted_from` disagrees with `target`");
        }
        Ok(Tamper {
            target,
            event_id: j.event_id,
            event_name: j.event_name,
            event_source: j.event_source,
            principal_arn: j.principal_arn,
            account: j.account,
            region: j.region,
            event_time: j.event_time,
            error_code: j.error_code,
        })
    }
}

/// The request parameters the watched calls name their target by.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Params<'a> {
    #[serde(borrow)]
    name: Option<&'a str>,
    trail_name: Option<&'a str>,
    rule: Option<&'a str>,
    role_name: Option<&'a str>,
    user_name: Option<&'a str>,
    policy_name: Option<&'a str>,
    policy_arn: Option<&'a str>,
    function_name: Option<&'a str>,
    policy_id: Option<&'a str>,
    #[serde(borrow, default)]
    tag_keys: Vec<std::borrow::Cow<'a, str>>,
    /// `TagRole`'s and `TagUser`'s tags.
    #[serde(borrow, default)]
    tags: Vec<TagParam<'a>>,
    key_id: Option<&'a str>,
    subscription_arn: Option<&'a str>,
    topic_arn: Option<&'a str>,
    event_bus_name: Option<&'a str>,
    table_name: Option<&'a str>,
    resource_arn: Option<&'a str>,
    alarm_name: Option<&'a str>,
    #[serde(borrow, default)]
    alarm_names: Vec<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    names: Vec<std::borrow::Cow<'a, str>>,
    stack_set_name: Option<&'a str>,
    status: Option<&'a str>,
    access_key_id: Option<&'a str>,
}

/// One tag of a `TagRole` or `TagUser` call.
#[derive(Deserialize)]
struct TagParam<'a> {
    #[serde(borrow)]
    key: std::borrow::Cow<'a, str>,
}

/// How a reactivated access key shows as a lift: `user/NAME policy/key/AKIA…`.
const KEY_LIFT: &str = "key/";

/// The targets only the security account has, as [`target`] names them.
const SECURITY_ONLY: [&str; 5] = ["event-bus/", "table/", "alarm/", "parameter/", "stackset/"];

/// IAM calls that change a role: on a member stack role, they disarm it.
const ROLE_CHANGES: [&str; 10] = [
    "DeleteRole",
    "UpdateAssumeRolePolicy",
    "UpdateRole",
    "PutRolePolicy",
    "DeleteRolePolicy",
    "AttachRolePolicy",
    "DetachRolePolicy",
    "PutRolePermissionsBoundary",
    "DeleteRolePermissionsBoundary",
    "TagRole",
];

/// The tripwire's managed policies live under this path (see
/// [`crate::names::MANAGED_PATH`]).
fn is_tripwire_managed(arn: &str) -> bool {
    arn.contains(":policy/tripwire/")
}

/// What a watched call touched, if it is (or, for a key or a topic, may be: see
/// [`Tamper::is_ours`]) one of the tripwire's parts.
fn target(name: &str, on: TamperTarget, p: &Params<'_>) -> Option<Touched> {
    let entity = || {
        p.role_name
            .map(|r| format!("role/{r}"))
            .or_else(|| p.user_name.map(|u| format!("user/{u}")))
    };
    let named = |n: &str| Touched::Named(sanitize(n));
    match on {
        TamperTarget::Trail => p.name.map(named),
        TamperTarget::TrailSelectors => p.trail_name.map(named),
        TamperTarget::Rule => p.name.filter(|n| n.starts_with(RULE_PREFIX)).map(named),
        TamperTarget::RuleTargets => p.rule.filter(|n| n.starts_with(RULE_PREFIX)).map(named),
        TamperTarget::Bus => p
            .name
            .or(p.event_bus_name)
            .filter(|b| crate::names::BUSES.contains(b))
            .map(|b| named(&format!("event-bus/{b}"))),
        TamperTarget::Table => p
            .table_name
            .or_else(|| {
                p.resource_arn
                    .and_then(|a| a.split_once(":table/").map(|t| t.1))
            })
            .filter(|t| t.starts_with(crate::names::CENTRAL_PREFIX))
            .map(|t| named(&format!("table/{t}"))),
        TamperTarget::Alarm => p
            .alarm_name
            .into_iter()
            .chain(p.alarm_names.iter().map(|a| a.as_ref()))
            .find(|a| a.starts_with(crate::names::CENTRAL_PREFIX))
            .map(|a| named(&format!("alarm/{a}"))),
        TamperTarget::Parameter => p
            .name
            .into_iter()
            .chain(p.names.iter().map(|n| n.as_ref()))
            .find(|n| n.starts_with(crate::names::PARAMETER_PATH))
            .map(|n| named(&format!("parameter{n}"))),
        // A name, or a name and an ID (`tripwire-member:1a2b…`).
        TamperTarget::StackSet => p
            .stack_set_name
            .filter(|n| n.split(':').next() == Some(crate::names::MEMBER_STACKSET))
            .map(|n| named(&format!("stackset/{n}"))),
        TamperTarget::Iam => {
            // A user's access key made active again: a lift when containment deactivated
            // it (`deactivate_keys`), which only the table knows; the detector pages it
            // only for a principal still contained (`Tamper::reactivated_key`).
            if name == "UpdateAccessKey" {
                return (p.status == Some("Active"))
                    .then(|| p.user_name.zip(p.access_key_id))
                    .flatten()
                    .map(|(user, key)| Touched::Lifted {
                        entity: sanitize(&format!("user/{user}")),
                        policy: sanitize(&format!("{KEY_LIFT}{key}")),
                    });
            }
            // The tripwire's own denies, lifted from a contained principal; or, by
            // overwriting one an earlier release wrote inline, emptied in place.
            let inline = matches!(
                name,
                "DeleteRolePolicy" | "DeleteUserPolicy" | "PutRolePolicy" | "PutUserPolicy"
            ) && p.policy_name.is_some_and(|n| n.starts_with("tripwire-"));
            let managed = matches!(name, "DetachRolePolicy" | "DetachUserPolicy")
                && p.policy_arn.is_some_and(is_tripwire_managed);
            // The drill contains its role and lifts it weekly: the tripwire's own denies
            // and tags on and off the one role that holds no permission change nothing.
            // Any other change to it (trust, an inline or another managed policy) is
            // tampering: its calls are never counted.
            let drill = p
                .role_name
                .is_some_and(|r| r.eq_ignore_ascii_case(crate::names::DRILL_ROLE));
            let keys: Vec<&str> = p
                .tag_keys
                .iter()
                .map(|k| k.as_ref())
                .chain(p.tags.iter().map(|t| t.key.as_ref()))
                .collect();
            let drill_tags = !keys.is_empty()
                && keys.iter().all(|k| {
                    k.get(..CONTAIN_TAG_PREFIX.len())
                        .is_some_and(|h| h.eq_ignore_ascii_case(CONTAIN_TAG_PREFIX))
                });
            if drill
                && (managed
                    || (name == "AttachRolePolicy"
                        && p.policy_arn.is_some_and(is_tripwire_managed))
                    || (matches!(name, "TagRole" | "UntagRole") && drill_tags))
            {
                return None;
            }
            if inline || managed {
                let policy = sanitize(p.policy_name.or(p.policy_arn).unwrap_or_default());
                return entity().map(|e| Touched::Lifted {
                    entity: sanitize(&e),
                    policy,
                });
            }
            // The tags that name the culprit to the scope policy, removed.
            let untagged = matches!(name, "UntagRole" | "UntagUser")
                .then(|| {
                    // IAM's tag keys are case-insensitive.
                    p.tag_keys.iter().find(|k| {
                        k.get(..CONTAIN_TAG_PREFIX.len())
                            .is_some_and(|h| h.eq_ignore_ascii_case(CONTAIN_TAG_PREFIX))
                    })
                })
                .flatten();
            if let Some(key) = untagged {
                return entity().map(|e| Touched::Lifted {
                    entity: sanitize(&e),
                    policy: sanitize(&format!("tag/{key}")),
                });
            }
            // The brake and quarantine documents themselves.
            if matches!(
                name,
                "DeletePolicy"
                    | "CreatePolicyVersion"
                    | "SetDefaultPolicyVersion"
                    | "DeletePolicyVersion"
            ) {
                return p.policy_arn.filter(|a| is_tripwire_managed(a)).map(named);
            }
            // The member stacks' roles: who changes them, other than a deployment,
            // disarms the tripwire in that account. Any role is a candidate: the
            // containment role's name is the policy's (`is_ours`).
            ROLE_CHANGES
                .contains(&name)
                .then(|| p.role_name.map(|r| named(&format!("role/{r}"))))
                .flatten()
        }
        // keyId is a key ID or an ARN; these calls take no alias.
        TamperTarget::Key => p.key_id.map(|k| Touched::Key(sanitize(k))),
        TamperTarget::Subscription => p
            .subscription_arn
            .map(|s| Touched::Subscription(sanitize(s))),
        TamperTarget::Topic => p.topic_arn.map(|t| Touched::Topic(sanitize(t))),
        TamperTarget::Schedule => p
            .name
            .filter(|n| crate::names::SCHEDULES.contains(n))
            .map(named),
        // A name, or an ARN (`arn:…:function:NAME`, maybe with a qualifier).
        TamperTarget::Function => p
            .function_name
            .map(|f| {
                f.split_once(":function:")
                    .map_or(f, |(_, rest)| rest.split(':').next().unwrap_or(rest))
            })
            .filter(|n| crate::names::FUNCTIONS.contains(n))
            .map(|n| named(&format!("function/{n}"))),
        TamperTarget::Scp => p.policy_id.map(|id| Touched::Scp(sanitize(id))),
    }
}

/// A KMS key's ID, from its ID or its ARN (`arn:…:key/ID`).
fn key_id(k: &str) -> &str {
    k.split_once(":key/").map_or(k, |(_, id)| id)
}

impl Tamper {
    /// Whether it touched the tripwire: a key or a topic only the policy's
    /// `tripwire_keys` and `tripwire_topics` identify; every other target is the
    /// tripwire's by its name.
    pub fn is_ours(&self, policy: &crate::policy::Policy) -> bool {
        match &self.target {
            // KMS takes a key by ID or ARN, whichever the policy lists: compare IDs.
            Touched::Key(t) => policy.tripwire_keys.iter().any(|k| key_id(k) == key_id(t)),
            // A subscription's ARN is its topic's, a colon and an ID.
            Touched::Subscription(t) => policy.tripwire_topics.iter().any(|topic| {
                t.strip_prefix(topic.as_str())
                    .is_some_and(|r| r.starts_with(':'))
            }),
            Touched::Topic(t) => policy.tripwire_topics.iter().any(|topic| topic == t),
            Touched::Scp(t) => policy.tripwire_scps.iter().any(|id| id == t),
            // Parts only the security account has: there, by name. Its account is the
            // one the stack's own topics are in; a policy without them (a backtest)
            // takes the name anywhere.
            Touched::Named(n) if SECURITY_ONLY.iter().any(|p| n.starts_with(p)) => {
                let mut home = policy
                    .tripwire_topics
                    .iter()
                    .filter_map(|t| t.split(':').nth(4))
                    .peekable();
                home.peek().is_none() || home.any(|a| a == self.account)
            }
            // A member stack role by its fixed name, or the containment role by the
            // policy's (IAM role names are case-insensitive).
            Touched::Named(n) if n.starts_with("role/") => {
                let name = &n["role/".len()..];
                crate::names::is_member_role(name)
                    || name.eq_ignore_ascii_case(&policy.containment_role)
                    || name.eq_ignore_ascii_case(crate::names::DRILL_ROLE)
            }
            Touched::Named(_) | Touched::Lifted { .. } => true,
        }
    }

    /// For a tripwire policy lifted from a principal: `role/NAME` or `user/NAME`.
    pub fn lifted_from(&self) -> Option<&str> {
        Tamper::lifted(&self.target)
    }

    /// An access key made active again (`UpdateAccessKey`): the tripwire's lift only
    /// when its user is contained, which the caller asks the table.
    pub fn reactivated_key(&self) -> bool {
        matches!(&self.target, Touched::Lifted { policy, .. } if policy.starts_with(KEY_LIFT))
    }

    fn lifted(target: &Touched) -> Option<&str> {
        match target {
            Touched::Lifted { entity, .. } => Some(entity),
            _ => None,
        }
    }
}

/// Who may change the tripwire's parts: a deployment (StackSets' execution roles), and
/// the release role lifting the tripwire's own policies. By the exact name at the root
/// path, as StackSets and the member stack create them (`stacksets-exec-` and 32 hex
/// digits): a role merely named like one, or the same name under another path, is
/// anyone's.
fn is_tripwire_itself(kind: &PrincipalKind) -> bool {
    let PrincipalKind::Role {
        name,
        path,
        path_known,
    } = kind
    else {
        return false;
    };
    let stacksets = name.strip_prefix("stacksets-exec-").is_some_and(|h| {
        h.len() == 32 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    });
    *path_known
        && path == "/"
        && (stacksets
            || name == "AWSCloudFormationStackSetExecutionRole"
            || name == "tripwire-release")
}

/// The tamper call `doc` is, if it is one.
pub fn tamper_of(
    doc: &Document<'_>,
    call: &ContextCall,
    on: TamperTarget,
) -> Result<Option<Tamper>, SkipReason> {
    let (source, name) = (call.event_source, call.event_name);
    let params: Params<'_> = doc
        .request_parameters
        .and_then(|raw| serde_json::from_str(raw.get()).ok())
        .unwrap_or_default();
    let Some(target) = target(name, on, &params) else {
        return Ok(None);
    };
    let event_time = doc.time()?;
    let (p, account) = crate::principal::caller(doc)?;
    // The tripwire's own roles in the account the call changed: a role of the same name
    // in another account, reaching in through a resource policy, is anyone's.
    let home = p.account.as_deref() == Some(account.as_str());
    // And only for what a deployment or a release changes: the member stacks' roles,
    // policies, rules and schedule. No StackSet touches a trail, a key, a topic or an
    // SCP, and in the management account, where no SCP binds anyone, anyone may create
    // a role of those names.
    let deployment_part = matches!(
        on,
        TamperTarget::Iam | TamperTarget::Rule | TamperTarget::RuleTargets | TamperTarget::Schedule
    );
    if home && deployment_part && is_tripwire_itself(&p.kind) {
        return Ok(None);
    }
    // The security account's deployer updates its functions and the watchdog's schedule
    // (CloudFormation calls as it); nothing else it touches is exempt, as a member
    // account's role may take the name.
    let deployer =
        matches!(&p.kind, PrincipalKind::Role { name, .. } if name == "tripwire-deployer");
    let security_parts = match on {
        TamperTarget::Function
        | TamperTarget::Bus
        | TamperTarget::Table
        | TamperTarget::Alarm
        | TamperTarget::Parameter
        | TamperTarget::StackSet
        | TamperTarget::Key
        | TamperTarget::Topic
        | TamperTarget::Subscription => true,
        TamperTarget::Schedule => crate::names::SECURITY_SCHEDULES
            .iter()
            .any(|s| target == Touched::Named((*s).into())),
        // The central stack's rules; a member's forwarding rules are StackSets' alone.
        TamperTarget::Rule | TamperTarget::RuleTargets => {
            !target.name().starts_with(FORWARD_RULE_PREFIX)
        }
        _ => false,
    };
    if home && deployer && security_parts {
        return Ok(None);
    }
    Ok(Some(Tamper {
        event_id: doc.event_id.get().map(sanitize).unwrap_or_else(|| {
            crate::record::content_id(&[name, &p.arn, doc.event_time.get().unwrap_or("")])
        }),
        event_name: sanitize(name),
        event_source: sanitize(source),
        principal_arn: p.arn,
        account: sanitize(&account),
        region: sanitize(doc.aws_region.get().unwrap_or("unknown")),
        target,
        event_time,
        error_code: doc.error_code.get().map(sanitize),
    }))
}

/// Heartbeats of one (account, region): the backtest's `coverage` line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Coverage {
    #[serde(rename = "type")]
    record_type: &'static str,
    /// The account.
    pub account: String,
    /// The region.
    pub region: String,
    /// Distinct heartbeats.
    pub heartbeats: u64,
    /// The first heartbeat's eventTime.
    #[serde(with = "crate::time::rfc3339")]
    pub first: Millis,
    /// The last heartbeat's eventTime.
    #[serde(with = "crate::time::rfc3339")]
    pub last: Millis,
    /// The longest silence between two heartbeats, in seconds.
    pub max_gap_s: i64,
}

/// Coverage per (account, region), sorted, from heartbeats in any order (redeliveries
/// counted once).
pub fn coverage(heartbeats: &[Heartbeat]) -> Vec<Coverage> {
    let mut by: std::collections::BTreeMap<(&str, &str), Vec<(Millis, &str)>> = Default::default();
    for h in heartbeats {
        by.entry((&h.account, &h.region))
            .or_default()
            .push((h.event_time, &h.event_id));
    }
    by.into_iter()
        .map(|((account, region), mut beats)| {
            beats.sort_unstable();
            beats.dedup_by(|a, b| a.1 == b.1);
            let max_gap = beats.windows(2).map(|w| w[1].0 - w[0].0).max().unwrap_or(0);
            Coverage {
                record_type: "coverage",
                account: account.to_owned(),
                region: region.to_owned(),
                heartbeats: beats.len() as u64,
                first: beats[0].0,
                last: beats[beats.len() - 1].0,
                max_gap_s: max_gap / 1000,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tamper_line_reads_back_as_what_it_touched() {
        let line = |source: &str, name: &str, target: &str, lifted: Option<&str>| {
            let mut v = serde_json::json!({"event_id": "e", "event_name": name,
                "event_source": source, "principal_arn": "arn:aws:iam::1:role/x",
                "account": "1", "region": "r", "target": target,
                "event_time": "2018-01-09T22:09:00Z"});
            if let Some(l) = lifted {
                v["lifted_from"] = l.into();
            }
            v
        };
        let lifted = line(
            "iam.amazonaws.com",
            "DeleteRolePolicy",
            "role/app policy/tripwire-brake",
            Some("role/app"),
        );
        let t: Tamper = serde_json::from_value(lifted.clone()).unwrap();
        assert_eq!(t.lifted_from(), Some("role/app"));
        assert_eq!(
            serde_json::to_value(&t).unwrap(),
            lifted,
            "the line round-trips"
        );
        let key: Tamper =
            serde_json::from_value(line("kms.amazonaws.com", "DisableKey", "k-1", None)).unwrap();
        assert_eq!(key.target, Touched::Key("k-1".into()));
        // A `lifted_from` the target does not carry is a forged line.
        let forged = line(
            "iam.amazonaws.com",
            "DeleteRolePolicy",
            "role/app policy/p",
            Some("role/other"),
        );
        assert!(serde_json::from_value::<Tamper>(forged).is_err());
    }

    #[test]
    fn every_iam_call_target_recognises_is_a_catalogued_tamper_call() {
        // `target` looks a call up in the catalogue first: a name it matches on but the
        // catalogue lacks would never be forwarded nor recognised.
        let named = ROLE_CHANGES.iter().chain(&[
            "DeleteUserPolicy",
            "DetachUserPolicy",
            "DeletePolicy",
            "CreatePolicyVersion",
            "SetDefaultPolicyVersion",
            "DeletePolicyVersion",
        ]);
        for name in named {
            assert_eq!(
                catalogue::context("iam.amazonaws.com", name).map(|c| c.role),
                Some(Role::Tamper(TamperTarget::Iam)),
                "{name}"
            );
        }
    }

    #[test]
    fn latency_buckets_quantiles_and_states() {
        assert_eq!(
            [-5, 0, 1_000, 1_001, 2_500, 899_999, 900_001].map(latency_bucket),
            [0, 0, 0, 1, 2, 8, 9]
        );
        let mut h = [0u64; 10];
        for ms in [
            800, 900, 1_500, 1_600, 1_700, 4_000, 4_000, 4_000, 4_000, 50_000,
        ] {
            h[latency_bucket(ms)] += 1;
        }
        assert_eq!(quantile(&h, 0.5), Some(2_000));
        assert_eq!(quantile(&h, 0.6), Some(5_000));
        assert_eq!(quantile(&h, 0.2), Some(1_000));
        assert_eq!(quantile(&h, 0.99), Some(60_000));
        assert_eq!(quantile(&[0; 10], 0.5), None);
        h[9] = 100;
        assert_eq!(quantile(&h, 0.99), None, "past the last bound: unknown");
        let m = 60_000;
        let now = 100 * m;
        let state = |last: Option<Millis>| Armed::of(last, now, 10 * m);
        assert_eq!(
            [
                None,
                Some(now - 9 * m),
                Some(now - 15 * m),
                Some(now - 16 * m),
                Some(now - 30 * m),
                Some(now - 31 * m)
            ]
            .map(state),
            [
                Armed::NeverSeen,
                Armed::Armed,
                Armed::Armed,
                Armed::Late,
                Armed::Late,
                Armed::Lost
            ]
        );
    }

    #[test]
    fn the_latency_metric_is_one_embedded_metric_format_line() {
        let line = latency_metric("222222222222", "eu-west-1", 2_500, 3_500);
        assert!(!line.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let m = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(
            (m["Namespace"].as_str(), &m["Dimensions"]),
            (Some("tripwire"), &serde_json::json!([["Region"]]))
        );
        assert_eq!(m["Metrics"][0]["Name"], "DeliveryLatency");
        assert_eq!(
            (
                v["Region"].as_str(),
                v["DeliveryLatency"].as_i64(),
                v["_aws"]["Timestamp"].as_i64()
            ),
            (Some("eu-west-1"), Some(2_500), Some(3_500))
        );
    }
    use crate::record::{walk_stream, Found};
    use crate::scan::{extract, Extracted};

    fn extracted(record: &serde_json::Value) -> Extracted {
        let text = record.to_string();
        let mut out = None;
        walk_stream(&text, &mut |f: Found<'_>| out = Some(extract(f))).unwrap();
        out.unwrap()
    }

    /// A role session; `name` may carry a path (`ops/NAME`), as the issuer's ARN does.
    fn role(name: &str, account: &str) -> serde_json::Value {
        let short = name.rsplit('/').next().unwrap_or(name);
        serde_json::json!({"type": "AssumedRole", "principalId": "AROAEXAMPLE:s",
            "arn": format!("arn:aws:sts::{account}:assumed-role/{short}/s"), "accountId": account,
            "accessKeyId": "ASIAEXAMPLE",
            "sessionContext": {"sessionIssuer": {"type": "Role", "principalId": "AROAEXAMPLE",
                "arn": format!("arn:aws:iam::{account}:role/{name}"), "accountId": account,
                "userName": short}}})
    }

    fn call(
        source: &str,
        name: &str,
        who: serde_json::Value,
        params: serde_json::Value,
    ) -> serde_json::Value {
        serde_json::json!({"eventVersion": "1.08", "eventTime": "2026-03-01T10:00:00Z",
            "eventSource": source, "eventName": name, "awsRegion": "eu-west-1",
            "eventID": format!("{name}-1"), "recipientAccountId": "222222222222",
            "userIdentity": who, "requestParameters": params})
    }

    fn canary(who: serde_json::Value, id: &str, error: Option<&str>) -> serde_json::Value {
        let mut r = call(
            "ec2.amazonaws.com",
            "TerminateInstances",
            who,
            serde_json::json!({"instancesSet": {"items": [{"instanceId": id}]}}),
        );
        if let Some(e) = error {
            r["errorCode"] = e.into();
        }
        r
    }

    #[test]
    fn only_the_accounts_own_canary_dry_run_on_the_canary_instance_is_a_heartbeat() {
        let me = || role(CANARY_ROLE, "222222222222");
        let dry = Some("Client.DryRunOperation");
        for (r, heartbeat) in [
            (canary(me(), CANARY_INSTANCE, dry), true),
            // Should EC2 look the instance up before the dry run.
            (
                canary(
                    me(),
                    CANARY_INSTANCE,
                    Some("Client.InvalidInstanceID.NotFound"),
                ),
                true,
            ),
            // Denied: the canary lost its permission; decided on like any failed call.
            (
                canary(me(), CANARY_INSTANCE, Some("Client.UnauthorizedOperation")),
                false,
            ),
            (canary(me(), "i-0123456789abcdef0", dry), false),
            (
                canary(role(CANARY_ROLE, "333333333333"), CANARY_INSTANCE, dry),
                false,
            ),
            (
                canary(
                    role("tripwire-canary2", "222222222222"),
                    CANARY_INSTANCE,
                    dry,
                ),
                false,
            ),
        ] {
            let got = matches!(extracted(&r), Extracted::Heartbeat(_));
            assert_eq!(got, heartbeat, "{r}");
        }
        let Extracted::Heartbeat(h) = extracted(&canary(me(), CANARY_INSTANCE, dry)) else {
            unreachable!()
        };
        assert_eq!(
            (h.account.as_str(), h.region.as_str(), h.event_id.as_str()),
            ("222222222222", "eu-west-1", "TerminateInstances-1")
        );
    }

    #[test]
    fn each_disarming_call_names_its_target_and_others_are_left_alone() {
        let admin = || role("Admin", "222222222222");
        let cases: Vec<(serde_json::Value, Option<&str>)> = vec![
            (
                call(
                    "events.amazonaws.com",
                    "DisableRule",
                    admin(),
                    serde_json::json!({"name": "tripwire-forward-terminate-instances"}),
                ),
                Some("tripwire-forward-terminate-instances"),
            ),
            (
                call(
                    "events.amazonaws.com",
                    "RemoveTargets",
                    admin(),
                    serde_json::json!({"rule": "tripwire-forward-initiators", "ids": ["x"]}),
                ),
                Some("tripwire-forward-initiators"),
            ),
            // EventBridge Scheduler's records name the schedule as `name`, as the public
            // DeleteSchedule record in tests/fixtures/cloudtrail-corpus/mixed/
            // aws_spotlight_test_datas.jsonl does (`{"name": "EC2-Stop-…"}`).
            (
                call(
                    "scheduler.amazonaws.com",
                    "DeleteSchedule",
                    admin(),
                    serde_json::json!({"name": "tripwire-canary", "clientToken": "e1db22ef"}),
                ),
                Some("tripwire-canary"),
            ),
            (
                call(
                    "scheduler.amazonaws.com",
                    "UpdateSchedule",
                    admin(),
                    serde_json::json!({"name": "tripwire-watchdog", "state": "DISABLED"}),
                ),
                Some("tripwire-watchdog"),
            ),
            (
                call(
                    "scheduler.amazonaws.com",
                    "DeleteSchedule",
                    admin(),
                    serde_json::json!({"name": "EC2-Stop-i-06f8415851cf64313", "clientToken": "e1db22ef"}),
                ),
                None,
            ),
            (
                call(
                    "lambda.amazonaws.com",
                    "PutFunctionConcurrency20171031",
                    admin(),
                    serde_json::json!({"functionName": "tripwire-detector", "reservedConcurrentExecutions": 0}),
                ),
                Some("function/tripwire-detector"),
            ),
            (
                call(
                    "lambda.amazonaws.com",
                    "UpdateFunctionConfiguration20150331v2",
                    admin(),
                    serde_json::json!({"functionName": "arn:aws:lambda:us-east-1:123456789012:function:tripwire-responder:live", "timeout": 1}),
                ),
                Some("function/tripwire-responder"),
            ),
            (
                call(
                    "lambda.amazonaws.com",
                    "UpdateFunctionCode20150331v2",
                    admin(),
                    serde_json::json!({"functionName": "orders-api", "publish": true}),
                ),
                None,
            ),
            // A deployment of the security account's stack is not tampering; the same
            // name elsewhere exempts nothing else.
            (
                {
                    let mut r = call(
                        "lambda.amazonaws.com",
                        "UpdateFunctionCode20150331v2",
                        role("tripwire-deployer", "123456789012"),
                        serde_json::json!({"functionName": "tripwire-detector", "publish": true}),
                    );
                    r["recipientAccountId"] = "123456789012".into();
                    r
                },
                None,
            ),
            (
                call(
                    "scheduler.amazonaws.com",
                    "DeleteSchedule",
                    role("tripwire-deployer", "222222222222"),
                    serde_json::json!({"name": "tripwire-canary"}),
                ),
                Some("tripwire-canary"),
            ),
            (
                call(
                    "events.amazonaws.com",
                    "DisableRule",
                    admin(),
                    serde_json::json!({"name": "nightly-report"}),
                ),
                None,
            ),
            (
                call(
                    "iam.amazonaws.com",
                    "DeleteRolePolicy",
                    admin(),
                    serde_json::json!({"roleName": "cleanup-task", "policyName": "tripwire-contain-scope"}),
                ),
                Some("role/cleanup-task policy/tripwire-contain-scope"),
            ),
            (
                call(
                    "iam.amazonaws.com",
                    "UntagRole",
                    admin(),
                    serde_json::json!({"roleName": "cleanup-task", "tagKeys": ["team", "Tripwire-Contain-Session"]}),
                ),
                Some("role/cleanup-task policy/tag/Tripwire-Contain-Session"),
            ),
            (
                call(
                    "iam.amazonaws.com",
                    "UntagUser",
                    admin(),
                    serde_json::json!({"userName": "alice", "tagKeys": ["team", "é-tripwire"]}),
                ),
                None,
            ),
            (
                call(
                    "iam.amazonaws.com",
                    "DetachUserPolicy",
                    admin(),
                    serde_json::json!({"userName": "alice", "policyArn": "arn:aws:iam::222222222222:policy/tripwire/tripwire-brake"}),
                ),
                Some("user/alice policy/arn:aws:iam::222222222222:policy/tripwire/tripwire-brake"),
            ),
            (
                call(
                    "iam.amazonaws.com",
                    "DeleteRolePolicy",
                    admin(),
                    serde_json::json!({"roleName": "app", "policyName": "app-inline"}),
                ),
                None,
            ),
            (
                call(
                    "iam.amazonaws.com",
                    "CreatePolicyVersion",
                    admin(),
                    serde_json::json!({"policyArn": "arn:aws:iam::222222222222:policy/tripwire/tripwire-brake", "setAsDefault": true}),
                ),
                Some("arn:aws:iam::222222222222:policy/tripwire/tripwire-brake"),
            ),
            (
                call(
                    "iam.amazonaws.com",
                    "UpdateAssumeRolePolicy",
                    admin(),
                    serde_json::json!({"roleName": "tripwire-containment"}),
                ),
                Some("role/tripwire-containment"),
            ),
            (
                call(
                    "iam.amazonaws.com",
                    "UpdateAssumeRolePolicy",
                    admin(),
                    serde_json::json!({"roleName": "app"}),
                ),
                None,
            ),
            (
                call(
                    "cloudtrail.amazonaws.com",
                    "StopLogging",
                    admin(),
                    serde_json::json!({"name": "org-trail"}),
                ),
                Some("org-trail"),
            ),
            (
                call(
                    "cloudtrail.amazonaws.com",
                    "PutEventSelectors",
                    admin(),
                    serde_json::json!({"trailName": "org-trail", "eventSelectors": []}),
                ),
                Some("org-trail"),
            ),
            (
                call(
                    "cloudtrail.amazonaws.com",
                    "StartLogging",
                    admin(),
                    serde_json::json!({"name": "org-trail"}),
                ),
                None,
            ),
            // A deployment, and the release role lifting the tripwire's own policies.
            (
                call(
                    "iam.amazonaws.com",
                    "UpdateAssumeRolePolicy",
                    role(
                        "stacksets-exec-899a82a2cb437e970934262f85c7628a",
                        "222222222222",
                    ),
                    serde_json::json!({"roleName": "tripwire-containment"}),
                ),
                None,
            ),
            // Merely named like one, or the name under another path: anyone's.
            (
                call(
                    "cloudtrail.amazonaws.com",
                    "StopLogging",
                    role("stacksets-exec-mine", "111111111111"),
                    serde_json::json!({"name": "org-trail"}),
                ),
                Some("org-trail"),
            ),
            (
                call(
                    "cloudtrail.amazonaws.com",
                    "StopLogging",
                    role("ops/tripwire-release", "222222222222"),
                    serde_json::json!({"name": "org-trail"}),
                ),
                Some("org-trail"),
            ),
            (
                call(
                    "iam.amazonaws.com",
                    "DeleteRolePolicy",
                    role("tripwire-release", "222222222222"),
                    serde_json::json!({"roleName": "cleanup-task", "policyName": "tripwire-contain-scope"}),
                ),
                None,
            ),
            // (Only StackSets may create roles of those names: the SCP. So the name is
            // trusted.) But only in the account the call changed, and never for a trail:
            // in the management account anyone may create a role of that exact name.
            (
                call(
                    "cloudtrail.amazonaws.com",
                    "StopLogging",
                    role(
                        "stacksets-exec-899a82a2cb437e970934262f85c7628a",
                        "222222222222",
                    ),
                    serde_json::json!({"name": "org-trail"}),
                ),
                Some("org-trail"),
            ),
            (
                {
                    let mut r = call(
                        "cloudtrail.amazonaws.com",
                        "StopLogging",
                        role(
                            "stacksets-exec-899a82a2cb437e970934262f85c7628a",
                            "999999999999",
                        ),
                        serde_json::json!({"name": "org-trail"}),
                    );
                    r["recipientAccountId"] = "222222222222".into();
                    r
                },
                Some("org-trail"),
            ),
            // Who may invoke the functions; Lambda's event names carry the API version.
            (
                call(
                    "lambda.amazonaws.com",
                    "AddPermission20150331v2",
                    admin(),
                    serde_json::json!({"functionName": "tripwire-detector", "statementId": "x", "action": "lambda:InvokeFunction", "principal": "*"}),
                ),
                Some("function/tripwire-detector"),
            ),
            // Overwriting an inline deny an earlier release wrote empties it in place.
            (
                call(
                    "iam.amazonaws.com",
                    "PutUserPolicy",
                    admin(),
                    serde_json::json!({"userName": "alice", "policyName": "tripwire-brake", "policyDocument": "{}"}),
                ),
                Some("user/alice policy/tripwire-brake"),
            ),
            // A key made active again (the detector pages it only for a contained user).
            (
                call(
                    "iam.amazonaws.com",
                    "UpdateAccessKey",
                    admin(),
                    serde_json::json!({"userName": "alice", "accessKeyId": "AKIAIOSFODNN7EXAMPLE", "status": "Active"}),
                ),
                Some("user/alice policy/key/AKIAIOSFODNN7EXAMPLE"),
            ),
            (
                call(
                    "iam.amazonaws.com",
                    "UpdateAccessKey",
                    admin(),
                    serde_json::json!({"userName": "alice", "accessKeyId": "AKIAIOSFODNN7EXAMPLE", "status": "Inactive"}),
                ),
                None,
            ),
        ];
        let policy = crate::Policy::from_toml("").unwrap();
        for (r, want) in cases {
            let got = match extracted(&r) {
                Extracted::Tamper(t) if t.is_ours(&policy) => Some(t.target.to_string()),
                _ => None,
            };
            assert_eq!(got.as_deref(), want, "{r}");
        }
    }

    #[test]
    fn a_containment_role_of_another_name_is_the_tripwires_when_the_policy_names_it() {
        let custom = crate::Policy::from_toml(r#"containment_role = "ops-Containment""#).unwrap();
        let default = crate::Policy::from_toml("").unwrap();
        let change = |role: &str| {
            let r = call(
                "iam.amazonaws.com",
                "UpdateAssumeRolePolicy",
                super::tests::role("Admin", "222222222222"),
                serde_json::json!({"roleName": role}),
            );
            match extracted(&r) {
                Extracted::Tamper(t) => t,
                other => panic!("{r}: a candidate, not {other:?}"),
            }
        };
        // IAM role names are case-insensitive.
        assert!(change("OPS-containment").is_ours(&custom));
        assert!(!change("ops-containment").is_ours(&default));
        assert!(change("tripwire-forwarder").is_ours(&custom));
        assert!(!change("app").is_ours(&custom));
        assert!(crate::Policy::from_toml(r#"containment_role = "role/x""#).is_err());
    }

    #[test]
    fn the_security_accounts_own_parts_page_there_by_name_and_the_deployer_changes_them() {
        // The security account is where the stack's topics are.
        let policy = crate::Policy::from_toml(
            r#"tripwire_topics = ["arn:aws:sns:us-east-1:123456789012:tripwire-alerts"]
tripwire_keys = ["arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"]"#,
        )
        .unwrap();
        let at = |account: &str, who: serde_json::Value, source: &str, name: &str, params| {
            let mut r = call(source, name, who, params);
            r["recipientAccountId"] = account.into();
            r
        };
        let sec = "123456789012";
        let admin = || role("Admin", "123456789012");
        // Request parameters are the API's members in lower camel case, as CloudTrail
        // logs them (`alarmNames` as public DeleteAlarms records show).
        let cases = [
            (
                at(
                    sec,
                    admin(),
                    "events.amazonaws.com",
                    "RemovePermission",
                    serde_json::json!({"statementId": "org", "eventBusName": "tripwire"}),
                ),
                Some("event-bus/tripwire"),
            ),
            (
                at(
                    sec,
                    admin(),
                    "events.amazonaws.com",
                    "DeleteEventBus",
                    serde_json::json!({"name": "tripwire-alerts"}),
                ),
                Some("event-bus/tripwire-alerts"),
            ),
            (
                at(
                    sec,
                    admin(),
                    "events.amazonaws.com",
                    "DisableRule",
                    serde_json::json!({"name": "tripwire-DetectorOrganizationBus-1A2B3C", "eventBusName": "tripwire"}),
                ),
                Some("tripwire-DetectorOrganizationBus-1A2B3C"),
            ),
            (
                at(
                    sec,
                    admin(),
                    "dynamodb.amazonaws.com",
                    "DeleteResourcePolicy",
                    serde_json::json!({"resourceArn": "arn:aws:dynamodb:us-east-1:123456789012:table/tripwire-Table-1A2B3C"}),
                ),
                Some("table/tripwire-Table-1A2B3C"),
            ),
            (
                at(
                    sec,
                    admin(),
                    "dynamodb.amazonaws.com",
                    "UpdateTimeToLive",
                    serde_json::json!({"tableName": "tripwire-Table-1A2B3C", "timeToLiveSpecification": {"enabled": false, "attributeName": "expires"}}),
                ),
                Some("table/tripwire-Table-1A2B3C"),
            ),
            (
                at(
                    sec,
                    admin(),
                    "monitoring.amazonaws.com",
                    "DeleteAlarms",
                    serde_json::json!({"alarmNames": ["app-latency", "tripwire-watchdog-silent"]}),
                ),
                Some("alarm/tripwire-watchdog-silent"),
            ),
            (
                at(
                    sec,
                    admin(),
                    "monitoring.amazonaws.com",
                    "PutMetricAlarm",
                    serde_json::json!({"alarmName": "tripwire-detector-silent", "threshold": 0.0}),
                ),
                Some("alarm/tripwire-detector-silent"),
            ),
            (
                at(
                    sec,
                    admin(),
                    "monitoring.amazonaws.com",
                    "DisableAlarmActions",
                    serde_json::json!({"alarmNames": ["app-latency"]}),
                ),
                None,
            ),
            (
                at(
                    sec,
                    admin(),
                    "ssm.amazonaws.com",
                    "PutParameter",
                    serde_json::json!({"name": "/tripwire/policy", "type": "String", "overwrite": true, "tier": "Intelligent-Tiering"}),
                ),
                Some("parameter/tripwire/policy"),
            ),
            (
                at(
                    sec,
                    admin(),
                    "ssm.amazonaws.com",
                    "DeleteParameters",
                    serde_json::json!({"names": ["/app/db", "/tripwire/policy"]}),
                ),
                Some("parameter/tripwire/policy"),
            ),
            (
                at(
                    sec,
                    admin(),
                    "cloudformation.amazonaws.com",
                    "UpdateStackSet",
                    serde_json::json!({"stackSetName": "tripwire-member", "callAs": "DELEGATED_ADMIN"}),
                ),
                Some("stackset/tripwire-member"),
            ),
            (
                at(
                    sec,
                    admin(),
                    "cloudformation.amazonaws.com",
                    "DeleteStackInstances",
                    serde_json::json!({"stackSetName": "tripwire-member:1a2b3c4d-5e6f-7a8b-9c0d-1e2f3a4b5c6d", "retainStacks": false}),
                ),
                Some("stackset/tripwire-member:1a2b3c4d-5e6f-7a8b-9c0d-1e2f3a4b5c6d"),
            ),
            (
                at(
                    sec,
                    admin(),
                    "cloudformation.amazonaws.com",
                    "UpdateStackSet",
                    serde_json::json!({"stackSetName": "tripwire-member-old"}),
                ),
                None,
            ),
            (
                at(
                    sec,
                    admin(),
                    "sns.amazonaws.com",
                    "SetSubscriptionAttributes",
                    serde_json::json!({"subscriptionArn": "arn:aws:sns:us-east-1:123456789012:tripwire-alerts:0b2f9f5e", "attributeName": "FilterPolicy", "attributeValue": "{\"never\": [\"x\"]}"}),
                ),
                Some("arn:aws:sns:us-east-1:123456789012:tripwire-alerts:0b2f9f5e"),
            ),
            (
                at(
                    sec,
                    admin(),
                    "kms.amazonaws.com",
                    "PutKeyPolicy",
                    serde_json::json!({"keyId": "1234abcd-12ab-34cd-56ef-1234567890ab", "policyName": "default"}),
                ),
                Some("1234abcd-12ab-34cd-56ef-1234567890ab"),
            ),
            // The deploying principal changes them (CloudFormation calls as it).
            (
                at(
                    sec,
                    role("tripwire-deployer", sec),
                    "ssm.amazonaws.com",
                    "PutParameter",
                    serde_json::json!({"name": "/tripwire/policy", "overwrite": true}),
                ),
                None,
            ),
            (
                at(
                    sec,
                    role("tripwire-deployer", sec),
                    "events.amazonaws.com",
                    "PutRule",
                    serde_json::json!({"name": "tripwire-DetectorOrganizationBus-1A2B3C"}),
                ),
                None,
            ),
            // A member's forwarding rule is StackSets' alone, whatever the role's name.
            (
                at(
                    "222222222222",
                    role("tripwire-deployer", "222222222222"),
                    "events.amazonaws.com",
                    "DisableRule",
                    serde_json::json!({"name": "tripwire-forward-tamper"}),
                ),
                Some("tripwire-forward-tamper"),
            ),
        ];
        for (r, want) in cases {
            let got = match extracted(&r) {
                Extracted::Tamper(t) | Extracted::DestroyedAndTamper(_, t) => {
                    assert!(t.is_ours(&policy), "{r}");
                    Some(t.target.to_string())
                }
                _ => None,
            };
            assert_eq!(got.as_deref(), want, "{r}");
        }
        // The same names in a member account are its own, not the tripwire's: paged
        // only where the stack's topics are (and anywhere when no topic is known).
        let elsewhere = at(
            "222222222222",
            role("Admin", "222222222222"),
            "dynamodb.amazonaws.com",
            "DeleteTable",
            serde_json::json!({"tableName": "tripwire-Table-1A2B3C"}),
        );
        let Extracted::DestroyedAndTamper(_, t) = extracted(&elsewhere) else {
            panic!("DeleteTable is a door and a tamper candidate");
        };
        assert!(!t.is_ours(&policy));
        assert!(t.is_ours(&crate::Policy::from_toml("").unwrap()));
    }

    #[test]
    fn the_drills_own_denies_on_and_off_its_role_page_nothing_any_other_change_pages() {
        let policy = crate::Policy::from_toml("").unwrap();
        let brake = "arn:aws:iam::222222222222:policy/tripwire/tripwire-brake";
        let containment = || role("tripwire-containment", "222222222222");
        let tag = "tripwire-contain-source-identity";
        for (name, who, params, pages) in [
            // The drill: attach, tag, then detach and untag, by the containment role.
            (
                "AttachRolePolicy",
                containment(),
                serde_json::json!({"roleName": "tripwire-drill", "policyArn": brake}),
                false,
            ),
            (
                "TagRole",
                containment(),
                serde_json::json!({"roleName": "tripwire-drill", "tags": [{"key": tag, "value": "tripwire-drill"}]}),
                false,
            ),
            (
                "DetachRolePolicy",
                containment(),
                serde_json::json!({"roleName": "tripwire-drill", "policyArn": brake}),
                false,
            ),
            (
                "UntagRole",
                containment(),
                serde_json::json!({"roleName": "tripwire-drill", "tagKeys": [tag]}),
                false,
            ),
            // Anything that could make the uncounted role act: trust, permissions, tags.
            (
                "UpdateAssumeRolePolicy",
                role("admin", "222222222222"),
                serde_json::json!({"roleName": "tripwire-drill", "policyDocument": "{}"}),
                true,
            ),
            (
                "AttachRolePolicy",
                role("admin", "222222222222"),
                serde_json::json!({"roleName": "tripwire-drill", "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}),
                true,
            ),
            (
                "PutRolePolicy",
                containment(),
                serde_json::json!({"roleName": "tripwire-drill", "policyName": "allow", "policyDocument": "{}"}),
                true,
            ),
            (
                "TagRole",
                role("admin", "222222222222"),
                serde_json::json!({"roleName": "tripwire-drill", "tags": [{"key": "team", "value": "x"}]}),
                true,
            ),
            // A deny lifted from anyone else is still a lift.
            (
                "DetachRolePolicy",
                containment(),
                serde_json::json!({"roleName": "app", "policyArn": brake}),
                true,
            ),
        ] {
            let r = call("iam.amazonaws.com", name, who, params);
            let paged = match extracted(&r) {
                Extracted::Tamper(t) => t.is_ours(&policy),
                _ => false,
            };
            assert_eq!(paged, pages, "{r}");
        }
    }

    #[test]
    fn the_tripwires_scp_detached_deleted_or_changed_pages_only_when_the_policy_names_it() {
        let policy = crate::Policy::from_toml(r#"tripwire_scps = ["p-tripwire1"]"#).unwrap();
        let admin = || role("OrgAdmin", "111111111111");
        for (name, params, ours) in [
            (
                "DetachPolicy",
                serde_json::json!({"policyId": "p-tripwire1", "targetId": "r-abcd"}),
                true,
            ),
            (
                "DeletePolicy",
                serde_json::json!({"policyId": "p-tripwire1"}),
                true,
            ),
            (
                "UpdatePolicy",
                serde_json::json!({"policyId": "p-tripwire1", "content": "{}"}),
                true,
            ),
            (
                "DetachPolicy",
                serde_json::json!({"policyId": "p-someoneelse", "targetId": "r-abcd"}),
                false,
            ),
        ] {
            let r = call("organizations.amazonaws.com", name, admin(), params);
            let Extracted::Tamper(t) = extracted(&r) else {
                panic!("{r}: a candidate");
            };
            assert_eq!(t.target, Touched::Scp(t.target.name().into_owned()));
            assert_eq!(t.is_ours(&policy), ours, "{r}");
            assert!(!t.is_ours(&crate::Policy::from_toml("").unwrap()), "{r}");
        }
        // IAM's DeletePolicy is still IAM's.
        let iam = call(
            "iam.amazonaws.com",
            "DeletePolicy",
            admin(),
            serde_json::json!({"policyArn": "arn:aws:iam::111111111111:policy/tripwire/tripwire-brake"}),
        );
        assert!(
            matches!(extracted(&iam), Extracted::Tamper(t) if matches!(t.target, Touched::Named(_)))
        );
        assert!(crate::Policy::from_toml(r#"tripwire_scps = ["scp-1"]"#).is_err());
    }

    #[test]
    fn keys_and_topics_are_the_tripwires_only_when_the_policy_names_them() {
        let policy = crate::Policy::from_toml(
            r#"tripwire_keys = ["arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"]
tripwire_topics = ["arn:aws:sns:us-east-1:123456789012:tripwire-alerts"]"#,
        )
        .unwrap();
        let admin = || role("Admin", "123456789012");
        for (r, ours) in [
            (
                call(
                    "kms.amazonaws.com",
                    "DisableKey",
                    admin(),
                    serde_json::json!({"keyId": "1234abcd-12ab-34cd-56ef-1234567890ab"}),
                ),
                true,
            ),
            (
                call(
                    "kms.amazonaws.com",
                    "ScheduleKeyDeletion",
                    admin(),
                    serde_json::json!({"keyId": "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab", "pendingWindowInDays": 7}),
                ),
                true,
            ),
            (
                call(
                    "kms.amazonaws.com",
                    "DisableKey",
                    admin(),
                    serde_json::json!({"keyId": "ffffffff-12ab-34cd-56ef-1234567890ab"}),
                ),
                false,
            ),
            (
                call(
                    "sns.amazonaws.com",
                    "Unsubscribe",
                    admin(),
                    serde_json::json!({"subscriptionArn": "arn:aws:sns:us-east-1:123456789012:tripwire-alerts:0b1c2d3e-aaaa-bbbb-cccc-000000000000"}),
                ),
                true,
            ),
            (
                call(
                    "sns.amazonaws.com",
                    "Unsubscribe",
                    admin(),
                    serde_json::json!({"subscriptionArn": "arn:aws:sns:us-east-1:123456789012:tripwire-alerts-x:0b1c2d3e"}),
                ),
                false,
            ),
            (
                call(
                    "sns.amazonaws.com",
                    "DeleteTopic",
                    admin(),
                    serde_json::json!({"topicArn": "arn:aws:sns:us-east-1:123456789012:tripwire-alerts"}),
                ),
                true,
            ),
        ] {
            // ScheduleKeyDeletion is also a watched call: a destruction and a candidate.
            let t = match extracted(&r) {
                Extracted::Tamper(t) | Extracted::DestroyedAndTamper(_, t) => t,
                _ => panic!("{r}: a candidate"),
            };
            assert_eq!(t.is_ours(&policy), ours, "{r}");
            assert!(!t.is_ours(&crate::Policy::from_toml("").unwrap()), "{r}");
            // The policy may list the key by its ID while the call names its ARN.
            if matches!(t.target, Touched::Key(_)) {
                let by_id = crate::Policy::from_toml(
                    r#"tripwire_keys = ["1234abcd-12ab-34cd-56ef-1234567890ab"]"#,
                )
                .unwrap();
                assert_eq!(t.is_ours(&by_id), ours, "{r}");
            }
        }
    }

    #[test]
    fn coverage_counts_each_heartbeat_once_and_measures_the_longest_silence() {
        let hb = |id: &str, region: &str, t: Millis| Heartbeat {
            event_id: id.into(),
            account: "222222222222".into(),
            region: region.into(),
            event_time: t,
        };
        let got = coverage(&[
            hb("c", "eu-west-1", 1_800_000),
            hb("a", "eu-west-1", 0),
            hb("b", "eu-west-1", 600_000),
            hb("b", "eu-west-1", 600_000),
            hb("z", "us-east-1", 42_000),
        ]);
        let rows: Vec<_> = got
            .iter()
            .map(|c| {
                (
                    c.region.as_str(),
                    c.heartbeats,
                    c.first,
                    c.last,
                    c.max_gap_s,
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("eu-west-1", 3, 0, 1_800_000, 1200),
                ("us-east-1", 1, 42_000, 42_000, 0)
            ]
        );
        assert!(coverage(&[]).is_empty());
    }
}
