//! Replaying a history of terminations through the burst rule, in memory: the backtest.
//!
//! Input order does not matter: calls are deduplicated by eventID and replayed in
//! eventTime order, so the result is the same whichever file or thread read them first.

use crate::incident::Incident;
use crate::policy::Policy;
use crate::termination::Termination;
use crate::time::Millis;
use crate::window::{classify, decide, Classification, Decision, Key, WindowEvent};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

/// A key's highest window count over the history: set the threshold above the highest
/// legitimate one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Peak {
    /// Always `"peak"`.
    #[serde(rename = "type")]
    pub record_type: &'static str,
    /// The principal.
    pub principal_arn: String,
    /// Where the instances died.
    pub account: String,
    /// The highest distinct-instance count in one window.
    pub peak: u32,
    /// When that window ended.
    #[serde(with = "crate::time::rfc3339")]
    pub peak_time: Millis,
    /// The threshold that applies to this key.
    pub threshold: u32,
}

/// What the replay counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReplayCounts {
    /// Distinct TerminateInstances calls (after deduplication).
    pub terminate_calls: u64,
    /// Redeliveries of an eventID already seen.
    pub duplicates: u64,
    /// Failed calls (with an errorCode): attempts that terminated nothing.
    pub attempts: u64,
    /// Calls counted toward a window.
    pub counted_calls: u64,
    /// Calls never counted, by reason.
    pub not_counted: BTreeMap<&'static str, u64>,
    /// Instances that successful calls named but that were already shutting down or
    /// terminated (`responseElements`), so were not counted.
    pub already_terminated_instances: u64,
}

/// The outcome of a replay.
#[derive(Debug, Clone, Default)]
pub struct ReplayResult {
    /// Incidents, in trigger order.
    pub incidents: Vec<Incident>,
    /// Every counted key's peak, highest first.
    pub peaks: Vec<Peak>,
    /// Counters.
    pub counts: ReplayCounts,
}

struct KeyState {
    events: VecDeque<WindowEvent>,
    open: Option<usize>,
    peak: (u32, Millis),
    threshold: u32,
}

/// Replays `terms` (any order, duplicates allowed) under `policy`.
pub fn replay(policy: &Policy, mut terms: Vec<Termination>) -> ReplayResult {
    terms.sort_by(|a, b| (a.event_time, &a.event_id).cmp(&(b.event_time, &b.event_id)));
    let mut out = ReplayResult::default();
    let mut seen: HashSet<String> = HashSet::with_capacity(terms.len());
    let mut keys: HashMap<Key, KeyState> = HashMap::new();
    for t in terms {
        if !seen.insert(t.event_id.clone()) {
            out.counts.duplicates += 1;
            continue;
        }
        out.counts.terminate_calls += 1;
        let window = policy.window_for(&t.principal.arn);
        out.counts.already_terminated_instances += u64::from(t.already_terminated);
        match classify(policy, &t) {
            Classification::NotCounted(reason) => {
                *out.counts.not_counted.entry(reason.as_str()).or_default() += 1
            }
            Classification::Attempt(key) => {
                out.counts.attempts += 1;
                let open = keys
                    .get(&key)
                    .and_then(|k| k.open)
                    .map(|i| &mut out.incidents[i]);
                if let Some(inc) = open.filter(|i| i.as_open().admits(t.event_time, window)) {
                    inc.attempts += 1;
                }
            }
            Classification::Counted {
                key,
                threshold,
                cross_account,
            } => {
                out.counts.counted_calls += 1;
                let state = keys.entry(key.clone()).or_insert_with(|| KeyState {
                    events: VecDeque::new(),
                    open: None,
                    peak: (0, t.event_time),
                    threshold,
                });
                // Sorted replay: nothing older than one window can matter again.
                while state
                    .events
                    .front()
                    .is_some_and(|e| e.event_time < t.event_time - window)
                {
                    state.events.pop_front();
                }
                state.events.push_back(WindowEvent {
                    event_id: t.event_id.clone(),
                    event_time: t.event_time,
                    instance_ids: t.instance_ids.clone(),
                    unconfirmed: t.unconfirmed,
                });
                let open = state.open.map(|i| out.incidents[i].as_open());
                let decision = decide(
                    t.event_time,
                    threshold,
                    window,
                    state.events.make_contiguous(),
                    open.as_ref(),
                );
                let (Decision::Counted(w) | Decision::Open(w) | Decision::Join(w)) = &decision;
                if w.count > state.peak.0 {
                    state.peak = (w.count, t.event_time);
                }
                match decision {
                    Decision::Counted(_) => {}
                    Decision::Join(_) => {
                        if let Some(i) = state.open {
                            out.incidents[i].absorb(&t);
                        }
                    }
                    Decision::Open(w) => {
                        let inc = Incident::trigger(
                            policy,
                            &key,
                            &t,
                            w,
                            threshold,
                            cross_account,
                            state.events.make_contiguous(),
                            t.event_time,
                        );
                        state.open = Some(out.incidents.len());
                        out.incidents.push(inc);
                    }
                }
            }
        }
    }
    let mut peaks: Vec<Peak> = keys
        .into_iter()
        .map(|(k, s)| Peak {
            record_type: "peak",
            principal_arn: k.principal_arn,
            account: k.account,
            peak: s.peak.0,
            peak_time: s.peak.1,
            threshold: s.threshold,
        })
        .collect();
    peaks.sort_by(|a, b| {
        b.peak
            .cmp(&a.peak)
            .then_with(|| (&a.principal_arn, &a.account).cmp(&(&b.principal_arn, &b.account)))
    });
    out.peaks = peaks;
    out
}
