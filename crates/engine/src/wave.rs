//! The shutdown-wave lane: EC2's own `EC2 Instance State-change Notification` events,
//! counted as distinct instances going away per account and region, whatever ended them.
//! They name no caller; the CloudTrail records that named the same instances do, so a
//! wave's instances are joined to those callers by instance ID, and the ones no record
//! claims are said to be unclaimed (Spot, an OS shutdown, a path not yet watched), never
//! guessed. Alert only: containment stays with the principal bursts the records make.
//!
//! Events are best effort and unordered: each eventID counts once, each instance once
//! per account and region (its first event, `shutting-down` or `terminated`).

use crate::policy::Policy;
use crate::record::{fnv1a, StateChange};
use crate::time::{format_duration, Millis};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

/// The incident `kind` a wave opens.
pub const KIND: &str = "shutdown_wave";

/// How many of a live wave's instance IDs its page lists (the counts are whole).
pub const SAMPLE: usize = 100;

/// Instances a CloudTrail call named, for the join: one per (call, instance).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    /// Where the instance lived.
    pub account: String,
    /// The instance.
    pub instance_id: String,
    /// Who made the call (the principal it is credited to, for a service's call).
    pub principal_arn: String,
    /// When.
    pub event_time: Millis,
}

/// One principal's share of a wave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Claim {
    /// The principal whose calls named the instances.
    pub principal_arn: String,
    /// How many of the wave's instances.
    pub instances: usize,
}

/// A shutdown wave: the backtest's `{"type":"incident","kind":"shutdown_wave"}` line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Wave {
    /// Always `"incident"`.
    #[serde(rename = "type")]
    pub record_type: &'static str,
    /// Stable: from the account, region and the first instance's event.
    pub id: String,
    /// Always [`KIND`].
    pub kind: &'static str,
    /// Always `null`: a wave has no one principal (see `claimed_by`).
    pub principal_arn: Option<String>,
    /// Always `ec2:instance`, as the other incidents name what died.
    pub resource_type: &'static str,
    /// Always `{"action":"none","reason":…}`: a wave contains no one; the principal
    /// bursts the same calls make do.
    pub containment: WaveContainment,
    /// Where the instances lived.
    pub account: String,
    /// Their region.
    pub region: String,
    /// Distinct instances in the wave.
    pub instances: usize,
    /// Their IDs.
    pub instance_ids: Vec<String>,
    /// The count in the window that crossed the threshold.
    pub trigger_count: u32,
    /// `state_change_threshold`.
    pub threshold: u32,
    /// `state_change_window`, as the policy writes it.
    pub window: String,
    /// The first instance's event.
    #[serde(with = "crate::time::rfc3339")]
    pub first_event_time: Millis,
    /// The event that crossed the threshold.
    #[serde(with = "crate::time::rfc3339")]
    pub trigger_time: Millis,
    /// The last instance's event.
    #[serde(with = "crate::time::rfc3339")]
    pub last_event_time: Millis,
    /// Who terminated them, from the CloudTrail records naming them, most first.
    pub claimed_by: Vec<Claim>,
    /// The instances no record named within `max_delivery_delay` of the wave.
    pub unclaimed: Vec<String>,
}

impl Wave {
    /// A wave as a store keeps it, rebuilt: `instance_ids` its sample, `instances` the
    /// whole count, `claimed_by` and `unclaimed` for the reader to fill.
    #[allow(clippy::too_many_arguments)]
    pub fn stored(
        id: String,
        account: String,
        region: String,
        (first_event_time, trigger_time, last_event_time): (Millis, Millis, Millis),
        trigger_count: u32,
        threshold: u32,
        window: String,
        instances: usize,
        instance_ids: Vec<String>,
    ) -> Self {
        Wave {
            record_type: "incident",
            id,
            kind: KIND,
            principal_arn: None,
            resource_type: crate::catalogue::EC2_INSTANCE,
            containment: ALERT_ONLY,
            account,
            region,
            instances,
            instance_ids,
            trigger_count,
            threshold,
            window,
            first_event_time,
            trigger_time,
            last_event_time,
            claimed_by: Vec::new(),
            unclaimed: Vec::new(),
        }
    }
}

/// A wave's `containment`, in the shape of the other incidents' alert-only one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WaveContainment {
    /// Always `none`.
    pub action: &'static str,
    /// Why.
    pub reason: &'static str,
}

const ALERT_ONLY: WaveContainment = WaveContainment {
    action: "none",
    reason: "a shutdown wave names no caller and contains no one; the principal bursts the same calls make are contained as usual",
};

/// What the lane counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WaveCounts {
    /// State-change events for instances going away, each eventID once.
    pub state_change_events: u64,
    /// Redeliveries of an eventID already seen.
    pub state_change_duplicates: u64,
    /// Events for an instance already counted (its `terminated` after `shutting-down`).
    pub state_change_repeats: u64,
    /// Events in an allowed account, not counted.
    pub state_change_allowed: u64,
}

/// One account and region's busiest window on one day (UTC): what `tripwire tune`
/// reads to suggest `state_change_threshold`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyPeak {
    /// The account.
    pub account: String,
    /// The region.
    pub region: String,
    /// Days since the epoch.
    pub day: i64,
    /// The most instances in one window that day.
    pub peak: u32,
    /// When that window ended.
    pub time: Millis,
}

/// What the lane found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WaveResult {
    /// The waves, in trigger order.
    pub waves: Vec<Wave>,
    /// What it counted.
    pub counts: WaveCounts,
    /// Each account and region's busiest window per day, whether or not the lane is on.
    pub daily_peaks: Vec<DailyPeak>,
}

/// The waves `changes` make under `policy`, joined to the callers in `named`.
pub fn waves(policy: &Policy, changes: &[StateChange], named: &[Named]) -> WaveResult {
    let mut counts = WaveCounts::default();
    let mut ids = HashSet::new();
    // Each instance once per (account, region), at its first event.
    let mut first: HashMap<(&str, &str, &str), Millis> = HashMap::new();
    for c in changes {
        if !ids.insert(c.event_id.as_str()) {
            counts.state_change_duplicates += 1;
            continue;
        }
        counts.state_change_events += 1;
        if policy.allowed_accounts.contains(&c.account) {
            counts.state_change_allowed += 1;
            continue;
        }
        match first.entry((&c.account, &c.region, &c.instance_id)) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(c.time);
            }
            std::collections::hash_map::Entry::Occupied(mut o) => {
                counts.state_change_repeats += 1;
                let t = o.get_mut();
                *t = (*t).min(c.time);
            }
        }
    }
    // Off, the lane still measures: tune says what turning it on would page.
    let threshold = policy.state_change_threshold.unwrap_or(u32::MAX);
    let window = policy.state_change_window;
    let mut daily: BTreeMap<(&str, &str, i64), (u32, Millis)> = BTreeMap::new();
    let mut groups: BTreeMap<(&str, &str), Vec<(Millis, &str)>> = BTreeMap::new();
    for ((account, region, instance), t) in first {
        groups
            .entry((account, region))
            .or_default()
            .push((t, instance));
    }
    let mut by_instance: HashMap<(&str, &str), Vec<&Named>> = HashMap::new();
    for n in named {
        by_instance
            .entry((&n.account, &n.instance_id))
            .or_default()
            .push(n);
    }
    let mut out = Vec::new();
    for ((account, region), mut events) in groups {
        events.sort_unstable();
        let mut recent: VecDeque<(Millis, &str)> = VecDeque::new();
        let mut open: Option<Wave> = None;
        for (t, instance) in events {
            while recent.front().is_some_and(|&(f, _)| f < t - window) {
                recent.pop_front();
            }
            recent.push_back((t, instance));
            let count = u32::try_from(recent.len()).unwrap_or(u32::MAX);
            let day = daily
                .entry((account, region, t.div_euclid(86_400_000)))
                .or_insert((0, t));
            if count > day.0 {
                *day = (count, t);
            }
            if let Some(w) = open.as_mut().filter(|w| t <= w.last_event_time + window) {
                w.instance_ids.push(instance.to_owned());
                w.last_event_time = t;
                continue;
            }
            if let Some(done) = open.take() {
                out.push(done);
            }
            if count >= threshold {
                let (first_time, first_instance) = recent[0];
                open = Some(Wave {
                    record_type: "incident",
                    id: wave_id(account, region, first_time, first_instance),
                    kind: KIND,
                    principal_arn: None,
                    resource_type: crate::catalogue::EC2_INSTANCE,
                    containment: ALERT_ONLY,
                    account: account.to_owned(),
                    region: region.to_owned(),
                    instances: 0,
                    instance_ids: recent.iter().map(|(_, i)| (*i).to_owned()).collect(),
                    trigger_count: count,
                    threshold,
                    window: format_duration(window),
                    first_event_time: first_time,
                    trigger_time: t,
                    last_event_time: t,
                    claimed_by: Vec::new(),
                    unclaimed: Vec::new(),
                });
            }
        }
        out.extend(open);
    }
    for w in &mut out {
        claim(w, &by_instance, policy.max_delivery_delay);
    }
    out.sort_by(|a, b| (a.trigger_time, &a.id).cmp(&(b.trigger_time, &b.id)));
    let daily_peaks = daily
        .into_iter()
        .map(|((account, region, day), (peak, time))| DailyPeak {
            account: account.to_owned(),
            region: region.to_owned(),
            day,
            peak,
            time,
        })
        .collect();
    WaveResult {
        waves: out,
        counts,
        daily_peaks,
    }
}

/// The wave the detector opens when an account and region's instances (`entries`: each
/// instance's first event time, as the store keeps them, around `t`) reach the threshold
/// in the busiest window holding `t`: the backtest's rule, read over what has arrived so
/// far, so events in order open the same wave with the same ID. `None` below the
/// threshold, or with the lane off.
pub fn open_live(
    policy: &Policy,
    account: &str,
    region: &str,
    t: Millis,
    entries: &[(Millis, String)],
) -> Option<Wave> {
    let threshold = policy.state_change_threshold?;
    let window = policy.state_change_window;
    let mut sorted: Vec<&(Millis, String)> = entries.iter().collect();
    sorted.sort_unstable();
    // Every window ending at an event in [t, t + window] holds t: the busiest of them.
    let mut best: Option<(usize, usize)> = None;
    let mut start = 0;
    for (end, (e, _)) in sorted.iter().enumerate() {
        while sorted[start].0 < e - window {
            start += 1;
        }
        let holds_t = *e >= t && *e <= t + window && sorted[start].0 <= t;
        if holds_t && best.is_none_or(|(s, b)| end - start > b - s) {
            best = Some((start, end));
        }
    }
    let (s, e) = best?;
    let inside = &sorted[s..=e];
    let count = u32::try_from(inside.len()).unwrap_or(u32::MAX);
    if count < threshold {
        return None;
    }
    let (first_time, first_instance) = inside[0];
    let last_time = inside[inside.len() - 1].0;
    let mut instance_ids: Vec<String> = inside.iter().map(|(_, i)| i.clone()).collect();
    instance_ids.sort_unstable();
    Some(Wave {
        record_type: "incident",
        id: wave_id(account, region, *first_time, first_instance),
        kind: KIND,
        principal_arn: None,
        resource_type: crate::catalogue::EC2_INSTANCE,
        containment: ALERT_ONLY,
        account: account.to_owned(),
        region: region.to_owned(),
        instances: instance_ids.len(),
        unclaimed: instance_ids.clone(),
        instance_ids,
        trigger_count: count,
        threshold,
        window: format_duration(window),
        first_event_time: *first_time,
        trigger_time: t,
        last_event_time: last_time.max(t),
        claimed_by: Vec::new(),
    })
}

/// A wave's stable ID: its account, region and first instance's event.
fn wave_id(account: &str, region: &str, first_time: Millis, first_instance: &str) -> String {
    format!(
        "wave-{:016x}",
        fnv1a(&[account, region, &first_time.to_string(), first_instance])
    )
}

/// Whether an instance's event at `t` belongs to the wave `w`: within one window of its
/// events, as the backtest extends a wave.
pub fn admits(w: &Wave, t: Millis, window: Millis) -> bool {
    t >= w.first_event_time - window && t <= w.last_event_time.saturating_add(window)
}

/// Joins each instance of `w` to the earliest call that named it in its account within
/// `bound` of the wave: a call comes before its instance's event, and late records are
/// still the same call.
fn claim(w: &mut Wave, by_instance: &HashMap<(&str, &str), Vec<&Named>>, bound: Millis) {
    w.instance_ids.sort_unstable();
    w.instances = w.instance_ids.len();
    let (from, to) = (w.first_event_time - bound, w.last_event_time + bound);
    let mut claims: BTreeMap<&str, usize> = BTreeMap::new();
    for id in &w.instance_ids {
        let by = by_instance
            .get(&(w.account.as_str(), id.as_str()))
            .into_iter()
            .flatten()
            .filter(|n| (from..=to).contains(&n.event_time))
            .min_by_key(|n| (n.event_time, &n.principal_arn));
        match by {
            Some(n) => *claims.entry(&n.principal_arn).or_default() += 1,
            None => w.unclaimed.push(id.clone()),
        }
    }
    w.claimed_by = claims_of(claims);
}

/// Who claimed how many, most first: one entry per principal in `callers`.
pub fn tally<'a>(callers: impl IntoIterator<Item = &'a String>) -> Vec<Claim> {
    let mut claims: BTreeMap<&str, usize> = BTreeMap::new();
    for p in callers {
        *claims.entry(p).or_default() += 1;
    }
    claims_of(claims)
}

/// Per-principal counts as a wave lists them: most first, then by ARN.
pub fn claims_of<'a>(claims: impl IntoIterator<Item = (&'a str, usize)>) -> Vec<Claim> {
    let mut claimed: Vec<Claim> = claims
        .into_iter()
        .map(|(p, n)| Claim {
            principal_arn: p.to_owned(),
            instances: n,
        })
        .collect();
    claimed.sort_by(|a, b| {
        b.instances
            .cmp(&a.instances)
            .then(a.principal_arn.cmp(&b.principal_arn))
    });
    claimed
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROD: &str = "222222222222";

    fn change(id: &str, instance: &str, state: &str, t: Millis) -> StateChange {
        StateChange {
            event_id: id.into(),
            account: PROD.into(),
            region: "us-east-1".into(),
            instance_id: instance.into(),
            state: state.into(),
            time: t,
        }
    }

    fn instance(k: usize) -> String {
        format!("i-{k:017x}")
    }

    #[test]
    fn a_wave_counts_each_instance_once_and_names_who_claimed_it() {
        let policy =
            Policy::from_toml("state_change_threshold = 5\nstate_change_window = \"1m\"").unwrap();
        let mut changes = Vec::new();
        for k in 0..8 {
            let t = k as Millis * 1000;
            changes.push(change(&format!("s{k}"), &instance(k), "shutting-down", t));
            changes.push(change(
                &format!("t{k}"),
                &instance(k),
                "terminated",
                t + 30_000,
            ));
        }
        // A redelivery, and the events in reverse order.
        changes.push(changes[0].clone());
        changes.reverse();
        let named: Vec<Named> = (0..5)
            .map(|k| Named {
                account: PROD.into(),
                instance_id: instance(k),
                principal_arn: "arn:aws:iam::222222222222:role/vendor/cleanup-task".into(),
                event_time: k as Millis * 1000 - 500,
            })
            .chain([Named {
                // Another account's instance of the same ID is not this one.
                account: "333333333333".into(),
                instance_id: instance(7),
                principal_arn: "arn:aws:iam::333333333333:role/x".into(),
                event_time: 0,
            }])
            .collect();
        let WaveResult {
            waves,
            counts,
            daily_peaks,
        } = waves(&policy, &changes, &named);
        assert_eq!(daily_peaks.len(), 1);
        assert_eq!((daily_peaks[0].peak, daily_peaks[0].time), (8, 7000));
        assert_eq!(waves.len(), 1, "{waves:#?}");
        let w = &waves[0];
        assert_eq!((w.instances, w.trigger_count, w.trigger_time), (8, 5, 4000));
        assert_eq!(
            w.claimed_by,
            [Claim {
                principal_arn: "arn:aws:iam::222222222222:role/vendor/cleanup-task".into(),
                instances: 5
            }]
        );
        assert_eq!(w.unclaimed, [instance(5), instance(6), instance(7)]);
        assert_eq!(
            (
                counts.state_change_events,
                counts.state_change_duplicates,
                counts.state_change_repeats
            ),
            (16, 1, 8)
        );
    }

    #[test]
    fn the_live_opening_is_the_backtests_whatever_the_arrival_order() {
        let policy =
            Policy::from_toml("state_change_threshold = 5\nstate_change_window = \"1m\"").unwrap();
        // Ten instances a second apart; the fifth crosses in time order.
        let changes: Vec<StateChange> = (0..10)
            .map(|k| {
                change(
                    &format!("s{k}"),
                    &instance(k),
                    "shutting-down",
                    k as Millis * 1000,
                )
            })
            .collect();
        let backtest = &waves(&policy, &changes, &[]).waves[0];
        let entries = |ks: &[usize]| -> Vec<(Millis, String)> {
            ks.iter()
                .map(|&k| (k as Millis * 1000, instance(k)))
                .collect()
        };
        // In order: the fifth arrival opens it, with the backtest's ID and counts.
        assert!(open_live(&policy, PROD, "us-east-1", 3000, &entries(&[0, 1, 2, 3])).is_none());
        let live = open_live(&policy, PROD, "us-east-1", 4000, &entries(&[0, 1, 2, 3, 4])).unwrap();
        assert_eq!(
            (
                &live.id,
                live.trigger_count,
                live.trigger_time,
                live.first_event_time
            ),
            (
                &backtest.id,
                backtest.trigger_count,
                backtest.trigger_time,
                backtest.first_event_time
            )
        );
        assert_eq!(live.instance_ids, (0..5).map(instance).collect::<Vec<_>>());
        // Out of order: a late event fills the gap before later ones; the wave opens on
        // the busiest window holding it, and never on a window without it.
        let late = open_live(&policy, PROD, "us-east-1", 1000, &entries(&[0, 2, 3, 4, 1])).unwrap();
        assert_eq!(
            (late.id.as_str(), late.instances),
            (backtest.id.as_str(), 5)
        );
        let far = entries(&[0, 1, 2, 3, 4]);
        assert!(
            open_live(&policy, PROD, "us-east-1", 200_000, &far).is_none(),
            "an event outside every full window opens nothing"
        );
        assert!(admits(&live, 4000 + 60_000, 60_000) && !admits(&live, 4000 + 60_001, 60_000));
        let off = Policy::from_toml("state_change_threshold = 0").unwrap();
        assert!(open_live(&off, PROD, "us-east-1", 4000, &far).is_none());
    }

    #[test]
    fn below_the_threshold_or_apart_or_allowed_or_off_is_no_wave() {
        let policy = Policy::from_toml(
            "state_change_threshold = 3\nstate_change_window = \"1m\"\nallowed_accounts = [\"111111111111\"]",
        )
        .unwrap();
        // Two minutes apart: never three in one window.
        let apart: Vec<StateChange> = (0..6)
            .map(|k| {
                change(
                    &format!("a{k}"),
                    &instance(k),
                    "shutting-down",
                    k as Millis * 120_000,
                )
            })
            .collect();
        assert!(waves(&policy, &apart, &[]).waves.is_empty());
        let mut allowed: Vec<StateChange> = (0..6)
            .map(|k| change(&format!("b{k}"), &instance(k), "shutting-down", k as Millis))
            .collect();
        for c in &mut allowed {
            c.account = "111111111111".into();
        }
        let r = waves(&policy, &allowed, &[]);
        assert!(r.waves.is_empty() && r.daily_peaks.is_empty());
        assert_eq!(r.counts.state_change_allowed, 6);
        let off = Policy::from_toml("state_change_threshold = 0").unwrap();
        let close: Vec<StateChange> = (0..60)
            .map(|k| change(&format!("c{k}"), &instance(k), "shutting-down", k as Millis))
            .collect();
        let r = waves(&off, &close, &[]);
        assert!(r.waves.is_empty());
        assert_eq!(r.daily_peaks[0].peak, 60, "off, it still measures");
        assert_eq!(
            waves(&Policy::from_toml("").unwrap(), &close, &[])
                .waves
                .len(),
            1,
            "on by default at 50"
        );
    }
}
