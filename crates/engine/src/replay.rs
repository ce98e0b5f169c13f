//! Replaying a history of terminations through the burst rule, in memory: the backtest.
//!
//! Input order does not matter: calls are deduplicated by eventID and replayed in
//! eventTime order, so the result is the same whichever file or thread read them first.

use crate::incident::Incident;
use crate::initiator::Initiation;
use crate::lifecycle::{self, Routed};
use crate::policy::Policy;
use crate::principal::PrincipalKind;
use crate::provenance::{Provenance, RoleRef};
use crate::scan::Events;
use crate::termination::Termination;
use crate::time::Millis;
use crate::window::{decide, Classification, Decision, Key, Lane, WindowEvent};
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
    /// `AssumeRole*` records read, and calls given an origin through them.
    pub assume_role_records: u64,
    /// Calls joined to the `AssumeRole*` record that issued their access key.
    pub calls_with_origin: u64,
    /// Records and calls the provenance join refused, by reason.
    pub provenance_skipped: BTreeMap<&'static str, u64>,
    /// Initiator calls (`DeleteAutoScalingGroup`, `DeleteStack`, …) read.
    pub initiator_records: u64,
    /// Service-linked roles' terminations credited to the principal whose call decided
    /// them, and counted as that principal's.
    pub credited_calls: u64,
    /// Precursors counted (calls that took a protection away), among `counted_calls`.
    pub precursor_calls: u64,
    /// Calls whose identity fields disagree (or name nothing IAM could hold), by why:
    /// counted, never contained.
    pub identity_anomalies: BTreeMap<&'static str, u64>,
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
    /// Heartbeats per (account, region): where the tripwire was armed, and its gaps.
    pub coverage: Vec<crate::armed::Coverage>,
    /// Calls that disarmed part of the tripwire, in eventTime order, each once.
    pub tampers: Vec<crate::armed::Tamper>,
    /// Every burst key's window count at each of its calls, in eventTime order: what
    /// `tripwire tune` and the report read.
    pub series: Vec<Series>,
    /// Shutdown waves from EC2's state-change events, joined to the calls' principals.
    pub waves: Vec<crate::wave::Wave>,
    /// What the shutdown-wave lane counted.
    pub wave_counts: crate::wave::WaveCounts,
    /// Each account and region's busiest wave window per day: what tune reads.
    pub wave_peaks: Vec<crate::wave::DailyPeak>,
}

/// One burst key's history: the window count each counted call brought it to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    /// The key.
    pub key: Key,
    /// The principal as incidents name it.
    pub principal_arn: String,
    /// The threshold the policy applies to it.
    pub threshold: u32,
    /// The window it is counted in.
    pub window: Millis,
    /// (eventTime, distinct resources in the busiest window holding that call).
    pub samples: Vec<(Millis, u32)>,
}

struct KeyState {
    events: VecDeque<WindowEvent>,
    open: Option<usize>,
    peak: (u32, Millis),
    threshold: u32,
    window: Millis,
    samples: Vec<(Millis, u32)>,
    /// The principal as the incident names it (a role with its path when known).
    display: String,
}

/// Replays `terms` (any order, duplicates allowed) under `policy`.
pub fn replay(policy: &Policy, terms: Vec<Termination>) -> ReplayResult {
    replay_events(
        policy,
        Events {
            terminations: terms,
            ..Events::default()
        },
    )
}

/// One record of the merged history, in the order the replay reads it.
enum Step {
    Assume(usize),
    Initiate(usize),
    Terminate(usize),
}

/// Replays terminations, role assumptions and initiator calls (any order, duplicates
/// allowed) under `policy`. Each call is joined only to what came before it in
/// eventTime, as the detector can only join what has arrived.
pub fn replay_events(policy: &Policy, events: Events) -> ReplayResult {
    let Events {
        terminations: mut terms,
        assumptions,
        initiations,
        heartbeats,
        mut tampers,
        destructive_tampers: _,
        state_changes,
    } = events;
    // Which principal's call named each instance: what a shutdown wave is joined to.
    let mut named: Vec<crate::wave::Named> = Vec::new();
    let mut out = ReplayResult {
        coverage: crate::armed::coverage(&heartbeats),
        ..ReplayResult::default()
    };
    // A reactivated key is a lift only for a user production contains, which an
    // archive does not say: the detector asks its table; the replay leaves them out.
    tampers.retain(|t| t.is_ours(policy) && !t.reactivated_key());
    tampers.sort_by(|a, b| (a.event_time, &a.event_id).cmp(&(b.event_time, &b.event_id)));
    tampers.dedup_by(|a, b| a.event_id == b.event_id);
    out.tampers = tampers;
    learn_role_paths(&mut terms, &assumptions);
    let mut steps: Vec<(Millis, u8, String, Step)> =
        Vec::with_capacity(terms.len() + assumptions.len() + initiations.len());
    for (i, a) in assumptions.iter().enumerate() {
        steps.push((a.event_time, 0, a.event_id.clone(), Step::Assume(i)));
    }
    for (i, n) in initiations.iter().enumerate() {
        steps.push((n.event_time, 1, n.event_id.clone(), Step::Initiate(i)));
    }
    for (i, t) in terms.iter().enumerate() {
        steps.push((t.event_time, 2, t.event_id.clone(), Step::Terminate(i)));
    }
    steps.sort_by(|a, b| (a.0, a.1, &a.2).cmp(&(b.0, b.1, &b.2)));
    let mut seen: HashSet<String> = HashSet::new();
    let mut seen_other: HashSet<(u8, String)> = HashSet::new();
    let mut keys: HashMap<Key, KeyState> = HashMap::new();
    let mut provenance = Provenance::default();
    let mut initiated: HashMap<&str, Vec<&Initiation>> = HashMap::new();
    // Every precursor counted, by its key, for the incidents that list them: a lane's
    // window keeps only its own span.
    let mut precursors: HashMap<Key, Vec<WindowEvent>> = HashMap::new();
    for (_, order, event_id, step) in steps {
        let mut t = match step {
            Step::Assume(i) => {
                if seen_other.insert((order, event_id)) {
                    out.counts.assume_role_records += 1;
                    if let Err(r) = provenance.learn(&assumptions[i]) {
                        *out.counts.provenance_skipped.entry(r.as_str()).or_default() += 1;
                    }
                }
                continue;
            }
            Step::Initiate(i) => {
                if seen_other.insert((order, event_id)) {
                    out.counts.initiator_records += 1;
                    let n = &initiations[i];
                    initiated.entry(n.account.as_str()).or_default().push(n);
                }
                continue;
            }
            Step::Terminate(i) => terms[i].clone(),
        };
        if !seen.insert(t.event_id.clone()) {
            out.counts.duplicates += 1;
            continue;
        }
        out.counts.terminate_calls += 1;
        // A service's termination one principal's earlier call decided counts as theirs
        // (`credit` asks nothing of any other call).
        let candidates = initiated.get(t.account.as_str());
        if let Some(i) = crate::initiator::credit(candidates.into_iter().flatten().copied(), &t) {
            t = i.credited(t);
            out.counts.credited_calls += 1;
        }
        match provenance.origin(
            &t.principal,
            t.session.access_key_id.as_deref(),
            t.event_time,
        ) {
            Ok(origin) => {
                out.counts.calls_with_origin += u64::from(origin.is_some());
                t.origin = origin;
            }
            Err(r) => *out.counts.provenance_skipped.entry(r.as_str()).or_default() += 1,
        }
        if !state_changes.is_empty()
            && t.kind() == crate::catalogue::EC2_INSTANCE
            && !t.is_attempt()
        {
            named.extend(t.instance_ids.iter().map(|id| crate::wave::Named {
                account: t.account.clone(),
                instance_id: id.clone(),
                principal_arn: t.principal.arn.clone(),
                event_time: t.event_time,
            }));
        }
        out.counts.already_terminated_instances += u64::from(t.already_terminated);
        if let Some(why) = t.principal.anomaly {
            *out.counts.identity_anomalies.entry(why).or_default() += 1;
        }
        let Routed {
            primary,
            lanes,
            cross_account: cross,
            window,
        } = lifecycle::route(policy, &t);
        let mut ctx = Ctx {
            policy,
            keys: &mut keys,
            incidents: &mut out.incidents,
            initiated: &initiated,
            precursors: &mut precursors,
        };
        match primary {
            Classification::NotCounted(reason) => {
                *out.counts.not_counted.entry(reason.as_str()).or_default() += 1
            }
            Classification::Attempt(key) => {
                out.counts.attempts += 1;
                let open = ctx
                    .keys
                    .get(&key)
                    .and_then(|k| k.open)
                    .map(|i| &mut ctx.incidents[i]);
                if let Some(inc) =
                    open.filter(|i| lifecycle::attempt_joins(&i.as_open(), &t, window))
                {
                    inc.attempts += 1;
                }
            }
            Classification::Counted {
                key,
                threshold,
                cross_account,
            } => {
                out.counts.counted_calls += 1;
                let event = WindowEvent::of(&t, key.lane);
                if key.lane == Lane::Precursor {
                    out.counts.precursor_calls += 1;
                    ctx.precursors
                        .entry(key.clone())
                        .or_default()
                        .push(event.clone());
                }
                ctx.count(&t, key, threshold, cross_account, window, event);
            }
        }
        for lane in lanes {
            ctx.count(&t, lane.key, lane.threshold, cross, window, lane.event);
        }
    }
    let mut peaks = Vec::new();
    for (key, s) in keys.into_iter().filter(|(k, _)| k.lane == Lane::Burst) {
        peaks.push(Peak {
            record_type: "peak",
            principal_arn: s.display.clone(),
            account: key.account.clone(),
            peak: s.peak.0,
            peak_time: s.peak.1,
            threshold: s.threshold,
        });
        out.series.push(Series {
            key,
            principal_arn: s.display,
            threshold: s.threshold,
            window: s.window,
            samples: s.samples,
        });
    }
    out.series
        .sort_by(|a, b| (&a.principal_arn, &a.key).cmp(&(&b.principal_arn, &b.key)));
    let lane = crate::wave::waves(policy, &state_changes, &named);
    (out.waves, out.wave_counts, out.wave_peaks) = (lane.waves, lane.counts, lane.daily_peaks);
    peaks.sort_by(|a, b| {
        b.peak
            .cmp(&a.peak)
            .then_with(|| (&a.principal_arn, &a.account).cmp(&(&b.principal_arn, &b.account)))
    });
    out.peaks = peaks;
    out
}

/// What counting one call in one lane touches.
struct Ctx<'a, 'b> {
    policy: &'a Policy,
    keys: &'a mut HashMap<Key, KeyState>,
    incidents: &'a mut Vec<Incident>,
    initiated: &'a HashMap<&'b str, Vec<&'b Initiation>>,
    precursors: &'a mut HashMap<Key, Vec<WindowEvent>>,
}

impl Ctx<'_, '_> {
    fn count(
        &mut self,
        t: &Termination,
        key: Key,
        threshold: u32,
        cross_account: bool,
        window: Millis,
        event: WindowEvent,
    ) {
        let state = self.keys.entry(key.clone()).or_insert_with(|| KeyState {
            events: VecDeque::new(),
            open: None,
            peak: (0, t.event_time),
            threshold,
            window,
            samples: Vec::new(),
            display: t.principal.arn.clone(),
        });
        // Sorted replay: nothing older than one window can matter again.
        while state
            .events
            .front()
            .is_some_and(|e| e.event_time < t.event_time - window)
        {
            state.events.pop_front();
        }
        state.events.push_back(event);
        let open = state.open.map(|i| self.incidents[i].as_open());
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
        if key.lane == Lane::Burst {
            state.samples.push((t.event_time, w.count));
        }
        match decision {
            Decision::Counted(_) => {}
            Decision::Join(_) => {
                if let Some(i) = state.open {
                    self.incidents[i].absorb(t);
                }
            }
            Decision::Open(w) => {
                let (mut inc, search) = lifecycle::open(
                    self.policy,
                    &key,
                    t,
                    w,
                    threshold,
                    cross_account,
                    state.events.make_contiguous(),
                    t.event_time,
                );
                if let Some(search) = search {
                    let candidates = self.initiated.get(key.account.as_str());
                    lifecycle::name_initiator(
                        &mut inc,
                        &search,
                        candidates.into_iter().flatten().copied(),
                    );
                }
                if let Some(search) = lifecycle::precursor_search(self.policy, &inc, t.event_time) {
                    search.list(
                        &mut inc,
                        self.precursors.get(&search.key).into_iter().flatten(),
                    );
                }
                state.open = Some(self.incidents.len());
                self.incidents.push(inc);
            }
        }
    }
}

/// Fills in the path of roles whose records omitted it, from any termination or
/// `AssumeRole*` record that carried it (a role's name is unique in its account).
fn learn_role_paths(terms: &mut [Termination], assumptions: &[crate::provenance::Assumption]) {
    let mut paths: HashMap<RoleRef, String> = HashMap::new();
    for t in terms.iter() {
        if let PrincipalKind::Role {
            name,
            path,
            path_known: true,
        } = &t.principal.kind
        {
            if let Some(account) = &t.principal.account {
                paths
                    .entry(RoleRef {
                        account: account.clone(),
                        name: name.to_ascii_lowercase(),
                    })
                    .or_insert_with(|| path.clone());
            }
        }
    }
    for a in assumptions {
        if let Some(p) = &a.role_path {
            paths.entry(a.role.clone()).or_insert_with(|| p.clone());
        }
    }
    for t in terms.iter_mut() {
        if let (
            PrincipalKind::Role {
                name,
                path_known: false,
                ..
            },
            Some(account),
        ) = (&t.principal.kind, &t.principal.account)
        {
            let role = RoleRef {
                account: account.clone(),
                name: name.to_ascii_lowercase(),
            };
            if let Some(p) = paths.get(&role) {
                let p = p.clone();
                t.principal.with_learned_path(&p);
            }
        }
    }
}
