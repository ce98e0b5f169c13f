//! The burst rule: distinct instances per (principal, account) in a sliding window of
//! CloudTrail `eventTime`, and when that opens, joins or leaves an incident.
//!
//! Everything here is a pure function of the events it is given, so the same code
//! serves the in-memory backtest and the DynamoDB-backed detector.

use crate::catalogue::EC2_INSTANCE;
use crate::policy::Policy;
use crate::principal::{Principal, PrincipalKind};
use crate::skip::SkipReason;
use crate::termination::Termination;
use crate::time::Millis;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// What is counted separately: the lane, the principal, and the account where the
/// instances die.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Key {
    /// The principal. A role is keyed by account and name alone (IAM role names are
    /// unique per account regardless of case), so a record that omits the path counts
    /// with one that has it: see [`Key::new`]. Empty for the account lane.
    pub principal_arn: String,
    /// The account where the instances die.
    pub account: String,
    /// Which rule counts it.
    #[serde(default)]
    pub lane: Lane,
    /// What its calls destroy (`ec2:instance` in items written before other types were
    /// counted).
    #[serde(default = "instances", skip_serializing_if = "is_instances")]
    pub kind: String,
}

fn instances() -> String {
    EC2_INSTANCE.to_owned()
}

fn is_instances(kind: &str) -> bool {
    kind == EC2_INSTANCE
}

/// The counting rules. Every lane but `Burst` is off by default and alert-only.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Lane {
    /// Distinct instances by one principal: the rule that contains.
    #[default]
    #[serde(rename = "burst")]
    Burst,
    /// Distinct instances by one service-linked role or AWS service identity.
    #[serde(rename = "service_burst")]
    Service,
    /// Failed calls by one principal.
    #[serde(rename = "attempt_burst")]
    Attempt,
    /// Distinct instances by every counted principal in one account.
    #[serde(rename = "account_burst")]
    Account,
    /// Protections removed by one principal (the catalogue's precursors), whatever
    /// they protected: a wipe being prepared.
    #[serde(rename = "precursor_burst")]
    Precursor,
}

impl Lane {
    /// The incident `kind` this lane opens.
    pub fn kind(self) -> &'static str {
        match self {
            Lane::Burst => "burst",
            Lane::Service => "service_burst",
            Lane::Attempt => "attempt_burst",
            Lane::Account => "account_burst",
            Lane::Precursor => "precursor_burst",
        }
    }
}

impl Key {
    /// The key of `principal_arn` terminating instances in `account` on `lane`.
    pub fn new(lane: Lane, principal_arn: &str, account: &str) -> Self {
        Key::of(lane, principal_arn, account, EC2_INSTANCE)
    }

    /// The key of `principal_arn` destroying resources of `kind` in `account` on `lane`.
    pub fn of(lane: Lane, principal_arn: &str, account: &str, kind: &str) -> Self {
        Key {
            kind: kind.to_owned(),
            principal_arn: if lane == Lane::Account {
                String::new()
            } else {
                canonical(principal_arn)
            },
            account: account.to_owned(),
            lane,
        }
    }

    /// A printable, stable identifier (the DynamoDB partition key). Instances keep the
    /// form they had before other types were counted; another type is a suffix.
    pub fn id(&self) -> String {
        let base = match self.lane {
            Lane::Burst => format!("{}|{}", self.account, self.principal_arn),
            lane => format!("{}|{}|{}", lane.kind(), self.account, self.principal_arn),
        };
        if is_instances(&self.kind) {
            base
        } else {
            format!("{base}|{}", self.kind)
        }
    }
}

/// A role ARN without its path and with its name lower-cased; any other ARN as given.
fn canonical(arn: &str) -> String {
    if let Some(a) = crate::principal::Arn::parse(arn).filter(|a| a.service == "iam") {
        if let Some(rest) = a.resource.strip_prefix("role/") {
            let name = rest.rsplit('/').next().unwrap_or(rest);
            return format!(
                "arn:{}:iam::{}:role/{}",
                a.partition,
                a.account,
                name.to_ascii_lowercase()
            );
        }
    }
    arn.to_owned()
}

/// How a termination is treated by the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classification {
    /// Never counted, for this reason.
    NotCounted(SkipReason),
    /// A failed call: an attempt, counted apart, never toward a burst.
    Attempt(Key),
    /// Counted toward a burst of `threshold`.
    Counted {
        /// The window key.
        key: Key,
        /// The threshold that applies.
        threshold: u32,
        /// Whether the chain behind the call began outside the account where the
        /// instances die (its origin, or the caller's own account).
        cross_account: bool,
    },
}

/// Applies the exclusions and picks the threshold.
pub fn classify(policy: &Policy, t: &Termination) -> Classification {
    let p: &Principal = &t.principal;
    if matches!(p.kind, PrincipalKind::AwsService) {
        return Classification::NotCounted(SkipReason::AwsService);
    }
    if p.is_service_linked_role() {
        return Classification::NotCounted(SkipReason::ServiceLinkedRole);
    }
    if policy.allowed_accounts.contains(&t.account) {
        return Classification::NotCounted(SkipReason::AllowedAccount);
    }
    if policy.is_ignored(&p.arn) {
        return Classification::NotCounted(SkipReason::IgnoredPrincipal);
    }
    if matches!(&p.kind, PrincipalKind::Role { name, .. } if name.eq_ignore_ascii_case(crate::names::DRILL_ROLE))
    {
        return Classification::NotCounted(SkipReason::DrillRole);
    }
    if policy.in_change_window(&p.arn, &t.account, t.event_time) {
        return Classification::NotCounted(SkipReason::ChangeWindow);
    }
    // A precursor counts in its own lane, which never contains: it destroyed nothing.
    let lane = if t.call.precursor.is_some() {
        Lane::Precursor
    } else {
        Lane::Burst
    };
    let key = Key::of(lane, &p.arn, &t.account, t.kind());
    if t.is_attempt() {
        return Classification::Attempt(key);
    }
    if t.instance_ids.is_empty() {
        // Successful, but every instance was already dying: a re-terminating reaper.
        return Classification::NotCounted(SkipReason::AlreadyTerminated);
    }
    let cross_account = p.account.as_deref().is_some_and(|a| a != t.account)
        || t.origin
            .as_ref()
            .and_then(|o| o.account.as_deref())
            .is_some_and(|a| a != t.account);
    Classification::Counted {
        threshold: policy.threshold_for(&p.arn, &t.account, cross_account, t.kind()),
        key,
        cross_account,
    }
}

/// One alert-only lane a termination also counts in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaneCount {
    /// The lane's key.
    pub key: Key,
    /// Its threshold.
    pub threshold: u32,
    /// The call as that lane counts it.
    pub event: WindowEvent,
}

/// The alert-only lanes a termination counts in besides its `primary` classification.
pub fn lanes(policy: &Policy, t: &Termination, primary: &Classification) -> Vec<LaneCount> {
    // The alert-only lanes count instances: their thresholds are numbers of instances.
    if t.kind() != EC2_INSTANCE {
        return Vec::new();
    }
    let allowed = policy.allowed_accounts.contains(&t.account);
    let (lane, threshold) = match primary {
        Classification::NotCounted(SkipReason::ServiceLinkedRole | SkipReason::AwsService)
            if !allowed
                && !policy.is_ignored(&t.principal.arn)
                && !t.instance_ids.is_empty()
                && !t.is_attempt() =>
        {
            (Lane::Service, policy.service_threshold)
        }
        Classification::Attempt(_) => (Lane::Attempt, policy.attempt_threshold),
        Classification::Counted { .. } => (Lane::Account, policy.account_threshold),
        Classification::NotCounted(_) => return Vec::new(),
    };
    let Some(threshold) = threshold else {
        return Vec::new();
    };
    vec![LaneCount {
        key: Key::new(lane, &t.principal.arn, &t.account),
        threshold,
        event: WindowEvent::of(t, lane),
    }]
}

/// One counted call as the window keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowEvent {
    /// CloudTrail eventID.
    pub event_id: String,
    /// CloudTrail eventTime.
    pub event_time: Millis,
    /// Distinct instance IDs.
    pub instance_ids: Vec<String>,
    /// From an `OperationNotPermitted` call: counted, but not confirmed terminated.
    #[serde(default)]
    pub unconfirmed: bool,
    /// The caller's session name, for the incident's `sessions`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// The caller's `sourceIdentity`, for the containment scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_identity: Option<String>,
    /// The caller's long-term access key (`AKIA…`, an IAM user's), which containment
    /// can deactivate; session keys expire by themselves and are not kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key: Option<String>,
    /// The account lane's caller, for the incident's `principals`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// The attempt lane's error code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// A precursor's `eventName`, for the incidents that list it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_name: Option<String>,
    /// Where and how the call was made, so an incident describes every call it counts,
    /// not only those from its trigger on.
    #[serde(default, flatten)]
    pub described: Described,
}

/// What a counted call shows of where it came from: `awsRegion`, `sourceIPAddress`,
/// `userAgent` and the session's identifiers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Described {
    /// `awsRegion`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// `sourceIPAddress`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    /// `userAgent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// `userIdentity.principalId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_id: Option<String>,
    /// `vpcEndpointId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_endpoint_id: Option<String>,
    /// `webIdFederationData.federatedProvider`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_identity_provider: Option<String>,
    /// `userIdentity.invokedBy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoked_by: Option<String>,
    /// Made with console session credentials.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub from_console: bool,
    /// Made with instance-profile credentials (`ec2RoleDelivery`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub instance_profile: bool,
}

impl Described {
    /// What `t`'s record shows.
    pub fn of(t: &Termination) -> Self {
        let s = &t.session;
        Described {
            region: Some(t.region.clone()),
            source_ip: t.source_ip.clone(),
            user_agent: t.user_agent.clone(),
            principal_id: s.principal_id.clone(),
            vpc_endpoint_id: s.vpc_endpoint_id.clone(),
            web_identity_provider: s.web_identity_provider.clone(),
            invoked_by: s.invoked_by.clone(),
            from_console: s.from_console,
            instance_profile: s.ec2_role_delivery.is_some(),
        }
    }
}

impl WindowEvent {
    /// `t` as `lane` counts it: instances, or for the attempt lane the call itself.
    pub fn of(t: &Termination, lane: Lane) -> Self {
        WindowEvent {
            event_id: t.event_id.clone(),
            event_time: t.event_time,
            instance_ids: if lane == Lane::Attempt {
                vec![t.event_id.clone()]
            } else {
                t.instance_ids.clone()
            },
            unconfirmed: t.unconfirmed,
            session: t.session.name.clone(),
            source_identity: t.session.source_identity.clone(),
            access_key: t
                .session
                .access_key_id
                .clone()
                .filter(|k| k.starts_with("AKIA")),
            principal: (lane == Lane::Account).then(|| t.principal.arn.clone()),
            error_code: if lane == Lane::Attempt {
                t.error_code.clone()
            } else {
                None
            },
            event_name: t.call.precursor.map(|_| t.call.event_name.to_owned()),
            described: Described::of(t),
        }
    }
}

/// A window's distinct-instance count and the span it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WindowCount {
    /// Distinct instances.
    pub count: u32,
    /// eventTime of the earliest event in the window.
    pub first_time: Millis,
    /// eventTime of the latest event in the window (its end).
    pub last_time: Millis,
}

/// The largest distinct-instance count over every window of length `window` that
/// contains `t`. `events` is the key's events with eventTime in `[t - window, t + window]`,
/// in any order; an event at the edge counts (windows are closed intervals).
///
/// Late, out-of-order deliveries are why windows *ending after* `t` are considered: a
/// late event can complete a burst whose other events already arrived.
pub fn peak_containing(events: &[WindowEvent], t: Millis, window: Millis) -> WindowCount {
    // One sweep over the events in time order: each candidate window end admits the
    // events up to it and drops those that slid out, keeping a count per instance, so
    // the cost is linear in the events' instances (after the sort) instead of quadratic.
    let horizon = t.saturating_add(window);
    let mut sorted: Vec<&WindowEvent> = events
        .iter()
        .filter(|e| e.event_time >= t - window && e.event_time <= horizon)
        .collect();
    sorted.sort_by_key(|e| e.event_time);
    let ends = std::iter::once(t).chain(sorted.iter().map(|e| e.event_time).filter(|&e| e > t));
    let mut live: HashMap<&str, u32> = HashMap::new();
    let (mut lo, mut hi) = (0, 0);
    let mut best = WindowCount::default();
    let mut last_end = None;
    for end in ends {
        if last_end == Some(end) {
            continue;
        }
        last_end = Some(end);
        while hi < sorted.len() && sorted[hi].event_time <= end {
            for id in &sorted[hi].instance_ids {
                *live.entry(id.as_str()).or_default() += 1;
            }
            hi += 1;
        }
        while lo < hi && sorted[lo].event_time < end - window {
            for id in &sorted[lo].instance_ids {
                if let Some(n) = live.get_mut(id.as_str()) {
                    *n -= 1;
                    if *n == 0 {
                        live.remove(id.as_str());
                    }
                }
            }
            lo += 1;
        }
        let count = u32::try_from(live.len()).unwrap_or(u32::MAX);
        if count > best.count {
            best = WindowCount {
                count,
                first_time: sorted[lo].event_time,
                last_time: sorted[hi - 1].event_time,
            };
        }
    }
    best
}

/// The open incident for a key, as far as the window rule needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenIncident {
    /// Incident ID.
    pub id: String,
    /// Earliest eventTime in the incident.
    pub first_time: Millis,
    /// Latest eventTime in the incident.
    pub last_time: Millis,
}

impl OpenIncident {
    /// An event joins while the key's window count has not fallen to zero since the
    /// incident's events, i.e. it lies within one window of them.
    pub fn admits(&self, t: Millis, window: Millis) -> bool {
        t >= self.first_time - window && t <= self.last_time.saturating_add(window)
    }
}

/// What one counted event does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Counted; the key is below its threshold.
    Counted(WindowCount),
    /// This event crosses the threshold: it opens a new incident.
    Open(WindowCount),
    /// The key has an open incident and this event belongs to it.
    Join(WindowCount),
}

/// The events inside `w`: the calls a newly opened incident starts with.
pub fn events_in(events: &[WindowEvent], w: WindowCount) -> impl Iterator<Item = &WindowEvent> {
    events
        .iter()
        .filter(move |e| e.event_time >= w.first_time && e.event_time <= w.last_time)
}

/// The burst rule for one new (not duplicate) counted event at `t`, given the key's
/// events around it (including this one) and its open incident, if any.
pub fn decide(
    t: Millis,
    threshold: u32,
    window: Millis,
    events: &[WindowEvent],
    open: Option<&OpenIncident>,
) -> Decision {
    let peak = peak_containing(events, t, window);
    match open {
        Some(inc) if inc.admits(t, window) => Decision::Join(peak),
        _ if peak.count >= threshold => Decision::Open(peak),
        _ => Decision::Counted(peak),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: &str, secs: i64, ids: &[&str]) -> WindowEvent {
        WindowEvent {
            event_id: id.into(),
            event_time: secs * 1000,
            instance_ids: ids.iter().map(|s| s.to_string()).collect(),
            unconfirmed: false,
            session: None,
            source_identity: None,
            access_key: None,
            principal: None,
            error_code: None,
            event_name: None,
            described: Described::default(),
        }
    }

    /// The definition, window end by window end: what the sweep must equal.
    fn peak_by_definition(events: &[WindowEvent], t: Millis, window: Millis) -> WindowCount {
        let mut ends: Vec<Millis> = events
            .iter()
            .map(|e| e.event_time)
            .filter(|&e| e >= t && e <= t + window)
            .chain([t])
            .collect();
        ends.sort_unstable();
        ends.dedup();
        let mut best = WindowCount::default();
        for end in ends {
            let inside: Vec<&WindowEvent> = events
                .iter()
                .filter(|e| e.event_time >= end - window && e.event_time <= end)
                .collect();
            let ids: std::collections::HashSet<&String> =
                inside.iter().flat_map(|e| &e.instance_ids).collect();
            if ids.len() as u32 > best.count {
                best = WindowCount {
                    count: ids.len() as u32,
                    first_time: inside.iter().map(|e| e.event_time).min().unwrap(),
                    last_time: inside.iter().map(|e| e.event_time).max().unwrap(),
                };
            }
        }
        best
    }

    #[test]
    fn the_sweep_equals_the_definition() {
        // A small deterministic generator: many overlapping instance IDs and equal times.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for _ in 0..2000 {
            let n = next(30) as usize;
            let events: Vec<WindowEvent> = (0..n)
                .map(|k| WindowEvent {
                    event_id: format!("e{k}"),
                    event_time: next(20) as Millis * 30_000,
                    instance_ids: (0..next(4)).map(|_| format!("i-{}", next(25))).collect(),
                    unconfirmed: false,
                    session: None,
                    source_identity: None,
                    access_key: None,
                    principal: None,
                    error_code: None,
                    event_name: None,
                    described: Default::default(),
                })
                .collect();
            let t = next(20) as Millis * 30_000;
            assert_eq!(
                peak_containing(&events, t, 300_000),
                peak_by_definition(&events, t, 300_000),
                "{events:?} at {t}"
            );
        }
    }

    #[test]
    fn counts_distinct_instances_not_calls() {
        let evs = [
            ev("a", 0, &["i-1", "i-2"]),
            ev("b", 10, &["i-2", "i-3"]),
            ev("c", 20, &["i-1"]),
        ];
        assert_eq!(peak_containing(&evs, 20_000, 300_000).count, 3);
    }

    #[test]
    fn window_is_closed_and_slides() {
        let evs = [
            ev("a", 0, &["i-1"]),
            ev("b", 300, &["i-2"]),
            ev("c", 301, &["i-3"]),
        ];
        assert_eq!(
            peak_containing(&evs, 300_000, 300_000).count,
            2,
            "edge counts"
        );
        assert_eq!(
            peak_containing(&evs, 301_000, 300_000).count,
            2,
            "a slid out"
        );
    }

    #[test]
    fn a_late_event_completes_a_later_window() {
        // b arrived first; a (earlier eventTime) arrives late and completes the burst.
        let evs = [ev("b", 100, &["i-2", "i-3"]), ev("a", 0, &["i-1"])];
        let d = decide(0, 3, 300_000, &evs, None);
        assert_eq!(
            d,
            Decision::Open(WindowCount {
                count: 3,
                first_time: 0,
                last_time: 100_000
            })
        );
    }

    #[test]
    fn joins_until_the_window_empties_then_a_new_burst_opens() {
        let inc = OpenIncident {
            id: "x".into(),
            first_time: 0,
            last_time: 60_000,
        };
        let w = 300_000;
        assert!(inc.admits(360_000, w));
        assert!(!inc.admits(360_001, w));
        let evs = [ev("z", 400, &["i-1", "i-2", "i-3"])];
        assert!(matches!(
            decide(400_000, 3, w, &evs, Some(&inc)),
            Decision::Open(_)
        ));
        assert!(matches!(
            decide(400_000, 4, w, &evs, Some(&inc)),
            Decision::Counted(_)
        ));
    }
}
