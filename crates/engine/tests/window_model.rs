//! The window and incident logic against a brute-force model, under random delivery
//! order and duplication.
//!
//! 1. The backtest replay equals a naive O(n²) model computed from the distinct events.
//! 2. The detector's path (the pure `decide` over whatever has arrived so far, in any
//!    order) never opens an incident the final data does not justify, and never misses
//!    a key the model says burst.

use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use tripwire_engine::replay::replay;
use tripwire_engine::window::{
    classify, decide, lanes, Classification, Decision, Key, Lane, OpenIncident, WindowEvent,
};
use tripwire_engine::{scan, Policy, ScanCounts, Termination};
use tripwire_synth::{terminate_record, Call, Caller};

#[derive(Debug, Clone)]
struct Ev {
    who: usize,
    account: usize,
    secs: i64,
    ids: Vec<u8>,
    failed: bool,
}

const WHO: [&str; 3] = [
    "role/a@222222222222",
    "role/b/c@222222222222",
    "user/u@333333333333",
];
const ACCOUNTS: [&str; 2] = ["222222222222", "333333333333"];

fn ev() -> impl Strategy<Value = Ev> {
    (
        0..3usize,
        0..2usize,
        0..1800i64,
        prop::collection::vec(0..40u8, 1..4),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(who, account, secs, ids, failed)| Ev {
            who,
            account,
            secs,
            ids,
            failed,
        })
}

/// Renders events as CloudTrail records and parses them back: the real input path.
fn terminations(events: &[Ev], delivery: &[usize]) -> Vec<Termination> {
    let lines: Vec<String> = delivery
        .iter()
        .map(|&i| {
            let e = &events[i];
            let caller = Caller::parse(WHO[e.who]).unwrap();
            let ids: Vec<String> = e.ids.iter().map(|n| format!("i-{n:08x}")).collect();
            let id = format!("ev-{i}");
            terminate_record(&Call {
                caller: &caller,
                account: ACCOUNTS[e.account],
                region: "us-east-1",
                time: 1_515_535_740_000 + e.secs * 1000,
                instance_ids: &ids,
                event_id: &id,
                error: e.failed.then_some("Client.UnauthorizedOperation"),
                source_ip: "198.51.100.7",
                user_agent: "proptest",
                invoked_by: None,
                already_terminated: 0,
                session: "session",
                access_key: "EXAMPLEEXAMPLE00",
            })
            .to_string()
        })
        .collect();
    let mut counts = ScanCounts::default();
    let mut out = Vec::new();
    scan(&lines.join("\n"), &mut counts, &mut out).unwrap();
    assert_eq!(out.len(), delivery.len(), "every record parsed: {counts:?}");
    out
}

/// (key, trigger_count, instances, first, trigger, last) per incident.
type ModelIncident = (Key, u32, BTreeSet<String>, i64, i64, i64);

/// What `lane` counts of `t`: its key, threshold and the IDs it adds (the call itself
/// for the attempt lane), straight from the definitions.
fn counted_in(policy: &Policy, t: &Termination, lane: Lane) -> Option<(Key, u32, Vec<String>)> {
    let primary = classify(policy, t);
    if lane == Lane::Burst {
        let Classification::Counted { key, threshold, .. } = primary else {
            return None;
        };
        return Some((key, threshold, t.instance_ids.clone()));
    }
    lanes(policy, t, &primary)
        .into_iter()
        .find(|l| l.key.lane == lane)
        .map(|l| {
            let ids = if lane == Lane::Attempt {
                vec![t.event_id.clone()]
            } else {
                t.instance_ids.clone()
            };
            (l.key, l.threshold, ids)
        })
}

/// The naive model: per key, sort, and at every event recount its window from scratch.
fn model(policy: &Policy, distinct: &[Termination]) -> (Vec<ModelIncident>, BTreeMap<Key, u32>) {
    model_lane(policy, distinct, Lane::Burst)
}

fn model_lane(
    policy: &Policy,
    distinct: &[Termination],
    lane: Lane,
) -> (Vec<ModelIncident>, BTreeMap<Key, u32>) {
    type Calls<'a> = Vec<(&'a Termination, Vec<String>)>;
    let mut by_key: BTreeMap<Key, (u32, Calls)> = BTreeMap::new();
    for t in distinct {
        if let Some((key, threshold, ids)) = counted_in(policy, t, lane) {
            by_key
                .entry(key)
                .or_insert((threshold, Vec::new()))
                .1
                .push((t, ids));
        }
    }
    let mut incidents = Vec::new();
    let mut peaks = BTreeMap::new();
    for (key, (threshold, mut evs)) in by_key {
        evs.sort_by(|a, b| (a.0.event_time, &a.0.event_id).cmp(&(b.0.event_time, &b.0.event_id)));
        let mut open: Option<usize> = None;
        let mut peak = 0;
        for (i, (e, e_ids)) in evs.iter().enumerate() {
            let window: Vec<&(&Termination, Vec<String>)> = evs[..=i]
                .iter()
                .filter(|f| f.0.event_time >= e.event_time - policy.window)
                .collect();
            let ids: BTreeSet<String> = window.iter().flat_map(|f| f.1.iter().cloned()).collect();
            let count = ids.len() as u32;
            peak = peak.max(count);
            match open {
                Some(j) if e.event_time <= incidents_last(&incidents, j) + policy.window => {
                    let inc: &mut ModelIncident = &mut incidents[j];
                    inc.2.extend(e_ids.iter().cloned());
                    inc.5 = e.event_time;
                }
                _ if count >= threshold => {
                    let first = window.iter().map(|f| f.0.event_time).min().unwrap();
                    incidents.push((key.clone(), count, ids, first, e.event_time, e.event_time));
                    open = Some(incidents.len() - 1);
                }
                _ => {}
            }
        }
        peaks.insert(key, peak);
    }
    (incidents, peaks)
}

fn incidents_last(incidents: &[ModelIncident], j: usize) -> i64 {
    incidents[j].5
}

fn policy(threshold: u32, window_secs: u32) -> Policy {
    Policy::from_toml(&format!("threshold = {threshold}\nwindow = \"{window_secs}s\"\ncross_account_threshold = {threshold}\ncontainment = \"revoke\"")).unwrap()
}

/// The same, with the attempt and account lanes on.
fn lane_policy(threshold: u32, window_secs: u32) -> Policy {
    Policy::from_toml(&format!("threshold = {threshold}\nwindow = \"{window_secs}s\"\nattempt_threshold = {}\naccount_threshold = {}\ncontainment = \"revoke\"", threshold.div_ceil(3).max(2), threshold + 2)).unwrap()
}

/// A delivery: a permutation of every event plus some duplicates.
fn delivery(n: usize) -> impl Strategy<Value = Vec<usize>> {
    (
        Just((0..n).collect::<Vec<_>>()).prop_shuffle(),
        prop::collection::vec(0..n, 0..n.max(1)),
    )
        .prop_map(|(perm, dups)| perm.into_iter().chain(dups).collect::<Vec<_>>())
        .prop_shuffle()
}

fn case() -> impl Strategy<Value = (Vec<Ev>, Vec<usize>, u32, u32)> {
    (prop::collection::vec(ev(), 1..60), 2..8u32, 30..600u32).prop_flat_map(|(events, th, w)| {
        let n = events.len();
        (Just(events), delivery(n), Just(th), Just(w))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn backtest_equals_the_brute_force_model((events, order, threshold, window) in case()) {
        let policy = policy(threshold, window);
        let delivered = terminations(&events, &order);
        let distinct = terminations(&events, &(0..events.len()).collect::<Vec<_>>());
        let result = replay(&policy, delivered);
        let (want, want_peaks) = model(&policy, &distinct);
        let got: Vec<ModelIncident> = result.incidents.iter().map(|i| (
            i.key(),
            i.trigger_count,
            i.instance_ids.clone(),
            i.first_event_time,
            i.trigger_time,
            i.last_event_time,
        )).collect();
        let mut got_sorted = got.clone();
        got_sorted.sort();
        let mut want_sorted = want.clone();
        want_sorted.sort();
        prop_assert_eq!(got_sorted, want_sorted);
        let got_peaks: BTreeMap<Key, u32> = result.peaks.iter().map(|p| (Key::new(Lane::Burst, &p.principal_arn, &p.account), p.peak)).collect();
        prop_assert_eq!(got_peaks, want_peaks);
        prop_assert_eq!(result.counts.duplicates as usize, order.len() - events.len());
        prop_assert_eq!(result.counts.attempts as usize, events.iter().filter(|e| e.failed).count());
    }

    #[test]
    fn the_alert_only_lanes_equal_the_brute_force_model((events, order, threshold, window) in case()) {
        let policy = lane_policy(threshold, window);
        let delivered = terminations(&events, &order);
        let distinct = terminations(&events, &(0..events.len()).collect::<Vec<_>>());
        let result = replay(&policy, delivered);
        for lane in [Lane::Burst, Lane::Attempt, Lane::Account] {
            let (want, _) = model_lane(&policy, &distinct, lane);
            let mut got: Vec<ModelIncident> = result.incidents.iter().filter(|i| i.kind() == lane).map(|i| (
                i.key(),
                i.trigger_count,
                i.instance_ids.clone(),
                i.first_event_time,
                i.trigger_time,
                i.last_event_time,
            )).collect();
            let mut want: Vec<ModelIncident> = want.into_iter().map(|mut m| {
                // An attempt burst counts calls; it names no instance.
                if lane == Lane::Attempt { m.2.clear(); }
                m
            }).collect();
            got.sort();
            want.sort();
            prop_assert_eq!(&got, &want, "{:?}", lane);
            for i in result.incidents.iter().filter(|i| i.kind() == lane) {
                let json = serde_json::to_value(i).unwrap();
                prop_assert_eq!(json["kind"].as_str(), Some(lane.kind()));
                match lane {
                    Lane::Account => {
                        prop_assert!(json["principal_arn"].is_null());
                        prop_assert!(!i.principals.is_empty());
                        prop_assert_eq!(&i.containment.action, &tripwire_engine::Action::None);
                    }
                    Lane::Attempt => {
                        prop_assert_eq!(json["instances"].as_u64(), Some(0));
                        prop_assert!(i.attempts >= u64::from(i.trigger_count));
                        prop_assert!(i.error_codes.contains("Client.UnauthorizedOperation"));
                    }
                    _ => {}
                }
            }
        }
    }

    #[test]
    fn detector_path_never_opens_without_a_burst_and_never_misses_one((events, order, threshold, window) in case()) {
        let policy = policy(threshold, window);
        let delivered = terminations(&events, &order);
        let distinct = terminations(&events, &(0..events.len()).collect::<Vec<_>>());
        let (want, _) = model(&policy, &distinct);
        let burst_keys: HashSet<Key> = want.iter().map(|m| m.0.clone()).collect();

        let mut seen = HashSet::new();
        let mut store: HashMap<Key, Vec<WindowEvent>> = HashMap::new();
        let mut open: HashMap<Key, OpenIncident> = HashMap::new();
        let mut opened: HashMap<Key, usize> = HashMap::new();
        for t in &delivered {
            if !seen.insert(t.event_id.clone()) {
                continue;
            }
            let Classification::Counted { key, threshold, .. } = classify(&policy, t) else { continue };
            let evs = store.entry(key.clone()).or_default();
            evs.push(WindowEvent::of(t, Lane::Burst));
            let near: Vec<WindowEvent> = evs.iter().filter(|e| (e.event_time - t.event_time).abs() <= policy.window).cloned().collect();
            match decide(t.event_time, threshold, policy.window, &near, open.get(&key)) {
                Decision::Open(w) => {
                    // Never without a burst: the window it saw really holds `threshold` instances.
                    prop_assert!(w.count >= threshold);
                    prop_assert!(burst_keys.contains(&key), "opened for {key:?}, which never burst");
                    open.insert(key.clone(), OpenIncident { id: t.event_id.clone(), first_time: w.first_time.min(t.event_time), last_time: t.event_time });
                    *opened.entry(key).or_default() += 1;
                }
                Decision::Join(_) => {
                    let inc = open.get_mut(&key).unwrap();
                    inc.first_time = inc.first_time.min(t.event_time);
                    inc.last_time = inc.last_time.max(t.event_time);
                }
                Decision::Counted(_) => {}
            }
        }
        for key in &burst_keys {
            prop_assert!(opened.contains_key(key), "missed the burst by {key:?}");
        }
    }
}
