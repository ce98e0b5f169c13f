//! The detector pipeline: one EventBridge event in; the shared window updated; at most
//! one incident opened per burst across every container; the alert and the responder
//! fired together. Every step is idempotent, so a retried event finishes what a failed
//! attempt started and counts nothing twice.

use crate::{
    Alerts, Calls, Clock, ContainedPrincipals, ContainmentQueue, Error, Flag, Heartbeats,
    Incidents, IssueState, Recorded, Sessions, Steps, StoredIncident, StoredWave, Waves,
};
use serde::Serialize;
use serde_json::value::RawValue;
use tripwire_engine::alert::{
    render, render_tamper, render_wave, AlertKind, ContainmentState, ContainmentStatus, WaveStage,
};
use tripwire_engine::armed::Tamper;
use tripwire_engine::containment::ContainmentRequest;
use tripwire_engine::lifecycle::{self, Routed};
use tripwire_engine::record::{StateChange, CLOUDTRAIL_DETAIL_TYPE, STATE_CHANGE_DETAIL_TYPE};
use tripwire_engine::time::Millis;
use tripwire_engine::window::{decide, Classification, Decision, Key, Lane};
use tripwire_engine::{
    provenance, scan_events, Action, Assumption, Events, Policy, ScanCounts, Termination,
};

/// The lease on a call: the invocation's deadline. Some runtime emulators pass the
/// timeout itself (e.g. 600000) instead of an epoch deadline; then a minute from now.
pub fn lease_end(deadline: Millis, now: Millis) -> Millis {
    if deadline > now {
        deadline
    } else {
        now + 60_000
    }
}

/// The skip reason for a Lambda event that is not an EventBridge CloudTrail envelope.
pub const NOT_EVENTBRIDGE: &str = "not_an_eventbridge_event";

/// Update alerts for one incident go out at most this often.
pub const UPDATE_GAP_MS: Millis = 60_000;

/// What the detector did with one call; logged, and returned to the invoker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Not a usable record; acknowledged so it is never retried.
    Skipped {
        /// The engine's skip reason.
        reason: &'static str,
    },
    /// A CloudTrail record of another API call.
    OtherEvent,
    /// A termination the policy never counts.
    NotCounted {
        /// Why.
        reason: &'static str,
        /// eventID.
        event_id: String,
    },
    /// A redelivery of a call already processed.
    Duplicate {
        /// eventID.
        event_id: String,
    },
    /// A failed call: an attempt.
    Attempt {
        /// eventID.
        event_id: String,
    },
    /// Counted; below the threshold.
    Counted {
        /// eventID.
        event_id: String,
        /// The key's window count.
        window_count: u32,
        /// Its threshold.
        threshold: u32,
    },
    /// This call opened an incident.
    Opened {
        /// eventID.
        event_id: String,
        /// The incident.
        incident: String,
        /// The window count that crossed the threshold.
        window_count: u32,
        /// Whether the responder was asked to contain.
        containment_requested: bool,
    },
    /// A late call inside an incident that already closed: counted, nothing reopened.
    LateForClosedIncident {
        /// eventID.
        event_id: String,
        /// The closed incident it belongs to.
        incident: String,
    },
    /// An `AssumeRole*` call: the origin of the session it issued, kept for its calls.
    Provenance {
        /// eventID.
        event_id: String,
        /// Whether it was recorded; otherwise `reason` says why not.
        recorded: bool,
        /// The named skip, when not recorded.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<&'static str>,
    },
    /// A call that decides terminations a service carries out, kept for their incidents.
    Initiator {
        /// eventID.
        event_id: String,
    },
    /// A call that disarmed part of the tripwire: paged (`tamper` alert).
    Tamper {
        /// eventID.
        event_id: String,
    },
    /// The canary's call: the path from this account and region works. Never counted.
    Heartbeat {
        /// eventID.
        event_id: String,
        /// Where the canary ran.
        account: String,
        /// Its region.
        region: String,
        /// Arrival minus eventTime: CloudTrail's and EventBridge's delivery delay.
        latency_ms: Millis,
    },
    /// The same call in an alert-only lane (`service_burst`, `attempt_burst`,
    /// `account_burst`).
    Lane {
        /// The lane's incident kind.
        kind: &'static str,
        /// What the lane did with it.
        result: Box<Outcome>,
    },
    /// An EC2 state-change event in the shutdown-wave lane.
    StateChange {
        /// The event's ID.
        event_id: String,
        /// The instance.
        instance_id: String,
        /// `counted` (below the threshold), `opened`, `joined`, `late` (inside the pair's
        /// wave before the current one), `repeat` (the instance counted already, or a
        /// redelivery), `allowed` (an allowed account), `off` (the lane is off).
        result: &'static str,
        /// The wave it opened or joined.
        #[serde(skip_serializing_if = "Option::is_none")]
        wave: Option<String>,
        /// Instances in the window (counted) or in the wave.
        instances: usize,
        /// Whether a page went out.
        page: bool,
    },
    /// A CloudTrail call named instances of a shutdown wave: their caller is credited.
    WaveClaimed {
        /// The call's eventID.
        event_id: String,
        /// The wave.
        wave: String,
        /// Whether a page naming the caller went out.
        page: bool,
    },
    /// This call joined an open incident.
    Joined {
        /// eventID.
        event_id: String,
        /// The incident.
        incident: String,
        /// Distinct instances in the incident so far.
        instances: usize,
        /// Whether an update alert went out.
        update_alert: bool,
    },
}

/// The detector, over its ports.
pub struct Detector<S, A, Q, C> {
    policy: Policy,
    store: S,
    alerter: A,
    invoker: Q,
    clock: C,
}

impl<S, A, Q, C> Detector<S, A, Q, C>
where
    S: Calls + Incidents + Sessions + Heartbeats + Steps + ContainedPrincipals + Waves,
    A: Alerts,
    Q: ContainmentQueue,
    C: Clock,
{
    /// A detector over its ports.
    pub fn new(policy: Policy, store: S, alerter: A, invoker: Q, clock: C) -> Self {
        Detector {
            policy,
            store,
            alerter,
            invoker,
            clock,
        }
    }

    /// Handles one event as the Lambda path receives it: only an EventBridge envelope of
    /// a CloudTrail API call, with the account and region EventBridge stamps (the engine
    /// then checks that the record agrees with them). A bare record or an array has no
    /// envelope to check, so it is a named skip, acknowledged and never retried; the
    /// backtest keeps every input form through [`Detector::handle`].
    pub async fn handle_eventbridge(
        &self,
        event: &str,
        deadline: Millis,
    ) -> Result<Vec<Outcome>, Error> {
        type Envelope = aws_lambda_events::eventbridge::EventBridgeEvent<Box<RawValue>>;
        let stamped = serde_json::from_str::<Envelope>(event).is_ok_and(|e| {
            [CLOUDTRAIL_DETAIL_TYPE, STATE_CHANGE_DETAIL_TYPE].contains(&e.detail_type.as_str())
                && e.account.is_some()
                && e.region.is_some()
        });
        if !stamped {
            return Ok(vec![Outcome::Skipped {
                reason: NOT_EVENTBRIDGE,
            }]);
        }
        self.handle(event, deadline).await
    }

    /// Pages a call that disarmed part of the tripwire, once per eventID: a redelivery,
    /// or a concurrent one, is a duplicate; a failed page is given up for the retry.
    async fn tamper(&self, t: &Tamper, lease_until: Millis) -> Result<Outcome, Error> {
        if !t.is_ours(&self.policy) {
            return Ok(Outcome::OtherEvent);
        }
        // A key made active again is a lift only for a user the tripwire contains: any
        // other reactivation is the account's own business.
        if t.reactivated_key() {
            let entity = t.lifted_from().unwrap_or_default();
            if self.store.contained_by(&t.account, entity).await?.is_none() {
                return Ok(Outcome::OtherEvent);
            }
        }
        let step = format!("tamper#{}", t.event_id);
        let event_id = t.event_id.clone();
        if self
            .store
            .claim_once(&step, self.clock.now(), lease_until)
            .await?
            == Recorded::Duplicate
        {
            return Ok(Outcome::Duplicate { event_id });
        }
        let recontain = self.recontain(t, lease_until).await?;
        match self
            .alerter
            .publish(&render_tamper(t, recontain, self.clock.now()))
            .await
        {
            Ok(_) => {
                self.store.settle_once(&step, true).await?;
                Ok(Outcome::Tamper { event_id })
            }
            Err(e) => {
                let _ = self.store.settle_once(&step, false).await;
                Err(e)
            }
        }
    }

    /// With `recontain = true`, a tripwire policy lifted from a principal still contained
    /// is written back (the responder re-applies the incident's plan), once per incident,
    /// so the tripwire never fights another tool over it. What happened, for the alert.
    async fn recontain(
        &self,
        t: &Tamper,
        lease_until: Millis,
    ) -> Result<Option<&'static str>, Error> {
        let Some(entity) = t.lifted_from().filter(|_| self.policy.recontain) else {
            return Ok(None);
        };
        let Some(req) = self.store.contained_by(&t.account, entity).await? else {
            return Ok(None);
        };
        let key = req.key();
        let contained = self.store.incident(&key).await?.is_some_and(|s| {
            s.open.id == req.incident_id && s.containment_state == Some(ContainmentState::Contained)
        });
        if !contained {
            return Ok(None);
        }
        let step = format!("recontain#{}", req.incident_id);
        if self
            .store
            .claim_once(&step, self.clock.now(), lease_until)
            .await?
            == Recorded::Duplicate
        {
            // Also a retry of this very event after its page failed: either way the
            // policies were written back once for this incident.
            return Ok(Some(
                "done once already for this incident (by this lift or an earlier one); further lifts are left to a person",
            ));
        }
        if let Err(e) = self.invoker.request(&req).await {
            let _ = self.store.settle_once(&step, false).await;
            return Err(e);
        }
        self.store.settle_once(&step, true).await?;
        Ok(Some(
            "requested: the tripwire writes the incident's policies back (once per incident)",
        ))
    }

    /// Handles one event (normally one EventBridge envelope). `deadline` is the
    /// invocation's: until then, a concurrent duplicate leaves this call alone.
    pub async fn handle(&self, event: &str, deadline: Millis) -> Result<Vec<Outcome>, Error> {
        let mut counts = ScanCounts::default();
        let mut events = Events::default();
        if scan_events(event, &mut counts, &mut events).is_err() {
            return Ok(vec![Outcome::Skipped {
                reason: "malformed_record",
            }]);
        }
        let mut out: Vec<Outcome> = counts
            .skipped
            .iter()
            .flat_map(|(reason, n)| std::iter::repeat_n(Outcome::Skipped { reason }, *n as usize))
            .collect();
        let others = counts.other_events as usize
            - events.assumptions.len()
            - events.initiations.len()
            - events.heartbeats.len()
            - (events.tampers.len() - events.destructive_tampers)
            - events.state_changes.len();
        out.extend(std::iter::repeat_n(Outcome::OtherEvent, others));
        let lease_until = lease_end(deadline, self.clock.now());
        for a in &events.assumptions {
            out.push(self.assumption(a).await?);
        }
        for i in &events.initiations {
            self.store.record_initiation(i, self.clock.now()).await?;
            out.push(Outcome::Initiator {
                event_id: i.event_id.clone(),
            });
        }
        for t in &events.tampers {
            out.push(self.tamper(t, lease_until).await?);
        }
        for h in events.heartbeats {
            // One arrival time: the histogram's bucket and the answer agree.
            let arrived = self.clock.now();
            self.store.record_heartbeat(&h, arrived).await?;
            out.push(Outcome::Heartbeat {
                latency_ms: arrived - h.event_time,
                event_id: h.event_id,
                account: h.account,
                region: h.region,
            });
        }
        for c in &events.state_changes {
            out.push(self.state_change(c, lease_until).await?);
        }
        for t in events.terminations {
            let mut t = self.credit(t).await?;
            self.join_origin(&mut t).await;
            let Routed {
                primary,
                lanes,
                cross_account: cross,
                window,
            } = lifecycle::route(&self.policy, &t);
            out.push(self.process(&t, primary, window, lease_until).await?);
            for lane in lanes {
                let kind = lane.key.lane.kind();
                let result = self
                    .count_call(&t, lane.key, lane.threshold, cross, lease_until)
                    .await?;
                out.push(Outcome::Lane {
                    kind,
                    result: Box::new(result),
                });
            }
            out.extend(self.claim_wave(&t, lease_until).await?);
        }
        Ok(out)
    }

    /// One instance's EC2 state-change event, in the shutdown-wave lane: counted once
    /// per instance, a wave opened or joined, paged. Deduplicated like a call: a retry
    /// after a failure finishes what the first attempt started.
    async fn state_change(&self, c: &StateChange, lease_until: Millis) -> Result<Outcome, Error> {
        let answer = |result, wave: Option<&StoredWave>, instances, page| Outcome::StateChange {
            event_id: c.event_id.clone(),
            instance_id: c.instance_id.clone(),
            result,
            wave: wave.map(|w| w.wave.id.clone()),
            instances,
            page,
        };
        if self.policy.allowed_accounts.contains(&c.account) {
            return Ok(answer("allowed", None, 0, false));
        }
        if self.policy.state_change_threshold.is_none() {
            return Ok(answer("off", None, 0, false));
        }
        if self
            .store
            .record_change(c, self.clock.now(), lease_until)
            .await?
            == Recorded::Duplicate
        {
            return Ok(answer("repeat", None, 0, false));
        }
        let result = self.wave_step(c, lease_until).await;
        let _ = self.store.settle_change(c, result.is_ok()).await;
        let (result, wave, instances, page) = result?;
        Ok(answer(result, wave.as_ref(), instances, page))
    }

    /// Joins the pair's live wave, or opens one if the instances around this event
    /// reach the threshold. Races are settled as for incidents: read, decide, write
    /// conditionally, and read again if another container wrote first.
    async fn wave_step(
        &self,
        c: &StateChange,
        lease_until: Millis,
    ) -> Result<(&'static str, Option<StoredWave>, usize, bool), Error> {
        let window = self.policy.state_change_window;
        let now = self.clock.now();
        for _ in 0..3 {
            let current = self.store.wave(&c.account, &c.region).await?;
            if let Some(cur) = current
                .as_ref()
                .filter(|w| tripwire_engine::wave::admits(&w.wave, c.time, window))
            {
                let Some(joined) = self
                    .store
                    .join_wave(
                        &c.account,
                        &c.region,
                        &cur.wave.id,
                        std::slice::from_ref(&c.instance_id),
                        c.time,
                    )
                    .await?
                else {
                    continue;
                };
                // The opener's retry finishes the opening (its page, if that failed, and
                // the window's credits), as does any event of a wave whose page never
                // went out; the others page growth.
                let page = if joined.alerted && joined.trigger_event_id != c.event_id {
                    self.page_growth(&joined, now).await?
                } else {
                    self.finish_wave_open(&joined, now, lease_until).await?
                };
                let n = joined.wave.instances;
                return Ok(("joined", Some(joined), n, page));
            }
            if current
                .as_ref()
                .and_then(|w| w.previous)
                .is_some_and(|(first, last)| c.time >= first - window && c.time <= last + window)
            {
                return Ok(("late", current, 0, false));
            }
            let entries = self
                .store
                .changes(&c.account, &c.region, c.time - window, c.time + window)
                .await?;
            let Some(w) = tripwire_engine::wave::open_live(
                &self.policy,
                &c.account,
                &c.region,
                c.time,
                &entries,
            ) else {
                let count = entries
                    .iter()
                    .filter(|(t, _)| (c.time - window..=c.time).contains(t))
                    .count();
                return Ok(("counted", None, count, false));
            };
            let replacing = current.as_ref().map(|w| w.wave.id.as_str());
            if !self
                .store
                .open_wave(&w, &c.event_id, replacing, now)
                .await?
            {
                continue;
            }
            let Some(opened) = self.store.wave(&c.account, &c.region).await? else {
                continue;
            };
            let page = self.finish_wave_open(&opened, now, lease_until).await?;
            let n = opened.wave.instances.max(w.instances);
            return Ok(("opened", Some(opened), n, page));
        }
        Err(Error::Contention)
    }

    /// Sends a wave's first page, once across every container, then credits the
    /// opening window's instances to it (each once, whoever does it). The page does not
    /// wait on the credits: at the opening the window's instances are the whole wave,
    /// so its callers are read straight from the records' names.
    async fn finish_wave_open(
        &self,
        stored: &StoredWave,
        now: Millis,
        lease_until: Millis,
    ) -> Result<bool, Error> {
        let w = &stored.wave;
        // The step, not the wave's flag, says whether the page went out: a page whose
        // flag failed to stick is not sent again by the retry.
        let paged = crate::page_once(
            &self.store,
            &self.alerter,
            &format!("wave#{}", w.id),
            (now, lease_until),
            self.wave_alert(stored, WaveStage::Opened, now),
        )
        .await?;
        if !stored.alerted {
            self.store
                .set_wave_alerted(&w.account, &w.region, &w.id, now)
                .await?;
        }
        self.store
            .join_wave(
                &w.account,
                &w.region,
                &w.id,
                &w.instance_ids,
                w.first_event_time,
            )
            .await?;
        Ok(paged)
    }

    /// Pages wave `stored`'s growth if its last page is a minute old. The page is
    /// rendered before the slot is taken; a publish that fails after it leaves the news
    /// to the next minute's page, as the incidents' updates do.
    async fn page_growth(&self, stored: &StoredWave, now: Millis) -> Result<bool, Error> {
        let w = &stored.wave;
        let alert = self.wave_alert(stored, WaveStage::Grew, now).await?;
        if !self
            .store
            .claim_wave_page(&w.account, &w.region, &w.id, now, UPDATE_GAP_MS)
            .await?
        {
            return Ok(false);
        }
        self.alerter.publish(&alert).await?;
        Ok(true)
    }

    /// Pages wave `stored` naming `caller`, once per caller: a step of its own, so a
    /// failed page is sent by the retry and a sent one never again.
    async fn page_caller(
        &self,
        stored: &StoredWave,
        caller: &str,
        now: Millis,
        lease_until: Millis,
    ) -> Result<bool, Error> {
        crate::page_once(
            &self.store,
            &self.alerter,
            &format!("wave#{}#by#{caller}", stored.wave.id),
            (now, lease_until),
            self.wave_alert(stored, WaveStage::Claimed, now),
        )
        .await
    }

    /// The page for `stored`, as [`wave_page`] renders it.
    async fn wave_alert(
        &self,
        stored: &StoredWave,
        stage: WaveStage,
        now: Millis,
    ) -> Result<tripwire_engine::alert::Alert, Error> {
        wave_page(
            &self.store,
            stored,
            stage,
            self.policy.max_delivery_delay,
            now,
        )
        .await
    }

    /// A counted call's instances, named to the waves they joined: the wave's page says
    /// who terminated them, once per caller. Evidence for the wave only: the call's own
    /// burst is counted and contained as every call's is.
    async fn claim_wave(
        &self,
        t: &Termination,
        lease_until: Millis,
    ) -> Result<Vec<Outcome>, Error> {
        if self.policy.state_change_threshold.is_none()
            || t.kind() != tripwire_engine::catalogue::EC2_INSTANCE
            || t.is_attempt()
            || t.instance_ids.is_empty()
            || self.policy.allowed_accounts.contains(&t.account)
        {
            return Ok(Vec::new());
        }
        // Naming costs a write per instance: only where EC2's events have been seen
        // within the records' delay, so an account and region that forwards none (or a
        // wipe whose events never came) pays one read per call, not one write per
        // instance. A record that comes before any of its pair's events names no one.
        let bound = self.policy.max_delivery_delay;
        if !self
            .store
            .any_change(
                &t.account,
                &t.region,
                t.event_time - bound,
                t.event_time + bound,
            )
            .await?
        {
            return Ok(Vec::new());
        }
        let waves = self
            .store
            .name_callers(
                &t.account,
                &t.region,
                &t.instance_ids,
                &t.principal.arn,
                t.event_time,
            )
            .await?;
        let mut out = Vec::new();
        for id in waves {
            let Some(stored) = self
                .store
                .wave(&t.account, &t.region)
                .await?
                .filter(|w| w.wave.id == id)
            else {
                continue;
            };
            let page = self
                .page_caller(&stored, &t.principal.arn, self.clock.now(), lease_until)
                .await?;
            out.push(Outcome::WaveClaimed {
                event_id: t.event_id.clone(),
                wave: id,
                page,
            });
        }
        Ok(out)
    }

    /// Records the issue of an `AssumeRole*` call's session, its origin resolved
    /// through the caller's own session for a chain.
    async fn assumption(&self, a: &Assumption) -> Result<Outcome, Error> {
        let parent = match &a.caller_key {
            Some(k) => match self.store.issued(k).await? {
                Some(IssueState::Issued(i)) => Some(*i),
                _ => None,
            },
            None => None,
        };
        let recorded = match provenance::resolve(a, parent.as_ref()) {
            Ok(issued) => self.store.record_issue(&a.access_key_id, &issued).await?,
            Err(r) => Err(r),
        };
        if let Err(r) = recorded {
            tracing::warn!(event_id = %a.event_id, reason = r.as_str(), "AssumeRole record not used for provenance");
        }
        Ok(Outcome::Provenance {
            event_id: a.event_id.clone(),
            recorded: recorded.is_ok(),
            reason: recorded.err().map(|r| r.as_str()),
        })
    }

    /// A service-linked role's termination, credited to the one principal whose call
    /// decided it when there is one (as the backtest does); the choice is settled once
    /// per eventID, so a redelivery that finds a later-arriving initiator still counts
    /// where the first delivery did.
    async fn credit(&self, t: Termination) -> Result<Termination, Error> {
        let Some(search) = lifecycle::credit_search(&t) else {
            return Ok(t);
        };
        let candidates = self
            .store
            .initiations(&search.account, &search.region, search.from, search.to)
            .await?;
        let found = tripwire_engine::initiator::credit(&candidates, &t);
        Ok(
            match self
                .store
                .settle_credit(&t.event_id, found, self.clock.now())
                .await?
            {
                Some(i) => i.credited(t),
                None => t,
            },
        )
    }

    /// Joins a termination to the issue of its access key, as the backtest does.
    async fn join_origin(&self, t: &mut Termination) {
        // Only session keys (`ASIA…`) come from an `AssumeRole*`; a user's long-term
        // `AKIA…` key has no issue to look up.
        let Some(k) = t
            .session
            .access_key_id
            .clone()
            .filter(|k| k.starts_with("ASIA"))
        else {
            return;
        };
        // Provenance is evidence and a threshold choice, never a reason to go blind: with
        // the store down the call is counted as its own principal (and the degraded
        // path still pages on it).
        let issued = match self.store.issued(&k).await {
            Ok(Some(IssueState::Issued(i))) => Some(*i),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(event_id = %t.event_id, error = %e, "session issue unavailable; counted without an origin");
                None
            }
        };
        match provenance::join(&t.principal, t.event_time, issued.as_ref()) {
            Ok(origin) => t.origin = origin,
            Err(r) => {
                tracing::warn!(event_id = %t.event_id, reason = r.as_str(), "call not joined to its session's issue; counted as its own principal")
            }
        }
    }

    async fn process(
        &self,
        t: &Termination,
        classification: Classification,
        window: Millis,
        lease_until: Millis,
    ) -> Result<Outcome, Error> {
        let now = self.clock.now();
        let event_id = t.event_id.clone();
        match classification {
            Classification::NotCounted(r) => Ok(Outcome::NotCounted {
                reason: r.as_str(),
                event_id,
            }),
            Classification::Attempt(key) => {
                let result = async {
                    match self.store.record(&key, t, now, lease_until).await? {
                        Recorded::Duplicate => {
                            return Ok(Outcome::Duplicate {
                                event_id: event_id.clone(),
                            })
                        }
                        // Only a first delivery adds to the count: a retry may already have.
                        Recorded::New => {
                            if let Some(cur) = self.store.incident(&key).await? {
                                if lifecycle::attempt_joins(&cur.open, t, window) {
                                    self.store.add_attempt(&key, &cur.open.id).await?;
                                }
                            }
                        }
                        Recorded::Unfinished => {}
                    }
                    self.store.mark_done(&key, t).await?;
                    Ok::<_, Error>(Outcome::Attempt {
                        event_id: event_id.clone(),
                    })
                }
                .await;
                if result.is_err() {
                    let _ = self.store.release_lease(&key, t).await;
                }
                result
            }
            Classification::Counted {
                key,
                threshold,
                cross_account,
            } => {
                self.count_call(t, key, threshold, cross_account, lease_until)
                    .await
            }
        }
    }

    /// Counts a call under `key` (any lane), deduplicated by eventID.
    async fn count_call(
        &self,
        t: &Termination,
        key: Key,
        threshold: u32,
        cross_account: bool,
        lease_until: Millis,
    ) -> Result<Outcome, Error> {
        let now = self.clock.now();
        let event_id = t.event_id.clone();
        let result = async {
            if self.store.record(&key, t, now, lease_until).await? == Recorded::Duplicate {
                return Ok(Outcome::Duplicate {
                    event_id: event_id.clone(),
                });
            }
            let outcome = self.counted(&key, t, threshold, cross_account, now).await?;
            self.store.mark_done(&key, t).await?;
            Ok::<_, Error>(outcome)
        }
        .await;
        if let Err(e) = &result {
            if e.is_window_store() && key.lane == Lane::Burst {
                self.degraded(&key, t, threshold, cross_account, now).await;
            }
            // Best effort: if DynamoDB itself is down the lease simply runs out, which
            // happens before Lambda's first retry (a minute later).
            let _ = self.store.release_lease(&key, t).await;
        }
        result
    }

    /// The window store is down: alert on what this one call proves by itself (it alone
    /// reaches the threshold, e.g. one cross-account instance or a call with many IDs),
    /// saying the window is degraded. The caller still returns the error, so the event is
    /// retried and, once the store is back, counted; a retry may repeat this alert, which
    /// beats going blind. Containment waits: the responder acts only on recorded incidents.
    async fn degraded(
        &self,
        key: &Key,
        t: &Termination,
        threshold: u32,
        cross_account: bool,
        now: Millis,
    ) {
        let Some(incident) =
            lifecycle::degraded(&self.policy, key, t, threshold, cross_account, now)
        else {
            tracing::warn!(event_id = %t.event_id, "window store unavailable; this call alone is below the threshold");
            return;
        };
        let status = ContainmentStatus {
            state: ContainmentState::NotAttempted,
            detail: "the window store is unavailable; containment waits until the incident can be recorded".into(),
        };
        let alert = render(
            AlertKind::Detected,
            &incident,
            &status,
            self.policy.window_for(&t.principal.arn, t.kind()),
            now,
            true,
        );
        if let Err(e) = self.alerter.publish(&alert).await {
            tracing::error!(error = %e, event_id = %t.event_id, "degraded alert failed too: neither the window store nor SNS is reachable");
        }
    }

    async fn counted(
        &self,
        key: &Key,
        t: &Termination,
        threshold: u32,
        cross_account: bool,
        now: Millis,
    ) -> Result<Outcome, Error> {
        let w = self.policy.window_for(&t.principal.arn, t.kind());
        let event_id = t.event_id.clone();
        // The incident first: a call that joins one never reads the window, so during a
        // wipe each call costs the same whatever the incident's size. The window is read
        // only to decide whether to open one, and before an incident it holds only calls
        // below the threshold.
        let mut events: Option<Vec<tripwire_engine::WindowEvent>> = None;
        // Another container may open or replace the incident between our read and our
        // write; then read again and decide again. Three rounds settle any real race.
        for _ in 0..3 {
            let current = self.store.incident(key).await?;
            let live = current.as_ref().filter(|c| c.open.admits(t.event_time, w));
            // A retry of the call that opened the incident finishes what it started.
            if let Some(cur) = live.filter(|c| c.incident.trigger_event_id == event_id) {
                let requested = self.finish_open(key, cur, now).await?;
                let window_count = cur.incident.trigger_count;
                return Ok(Outcome::Opened {
                    event_id,
                    incident: cur.open.id.clone(),
                    window_count,
                    containment_requested: requested,
                });
            }
            // A late delivery inside an incident that already closed belongs to it:
            // counted in the window, but it opens nothing new and pages nobody twice.
            if live.is_none() {
                if let Some(closed) = current
                    .as_ref()
                    .and_then(|c| c.history.iter().find(|h| h.admits(t.event_time, w)))
                {
                    return Ok(Outcome::LateForClosedIncident {
                        event_id,
                        incident: closed.id.clone(),
                    });
                }
            }
            if let Some(cur) = live {
                if let Some(joined) = self.join(key, &cur.open.id, t, now).await? {
                    return Ok(joined);
                }
                // Replaced meanwhile: the next round reads what replaced it.
                continue;
            }
            let events = match &mut events {
                Some(e) => e,
                None => events.insert(
                    self.store
                        .window(key, t.event_time - w, t.event_time + w)
                        .await?,
                ),
            };
            // No live incident to join: the rule decides between counting and opening.
            match decide(t.event_time, threshold, w, events, None) {
                Decision::Counted(wc) | Decision::Join(wc) => {
                    return Ok(Outcome::Counted {
                        event_id,
                        window_count: wc.count,
                        threshold,
                    })
                }
                Decision::Open(wc) => {
                    let (mut incident, search) = lifecycle::open(
                        &self.policy,
                        key,
                        t,
                        wc,
                        threshold,
                        cross_account,
                        events,
                        now,
                    );
                    if let Some(search) = search {
                        let candidates = self
                            .store
                            .initiations(&search.account, &search.region, search.from, search.to)
                            .await?;
                        lifecycle::name_initiator(&mut incident, &search, &candidates);
                    }
                    if let Some(search) =
                        lifecycle::precursor_search(&self.policy, &incident, t.event_time)
                    {
                        // Evidence, not a reason to hold the page: without the store's
                        // answer the incident opens listing none.
                        match self.store.window(&search.key, search.from, search.to).await {
                            Ok(events) => search.list(&mut incident, &events),
                            Err(e) => {
                                tracing::warn!(event_id = %t.event_id, error = %e, "precursors unavailable; the incident lists none")
                            }
                        }
                    }
                    if self
                        .store
                        .open_incident(key, &incident, current.as_ref(), now)
                        .await?
                    {
                        let stored = StoredIncident::opened(incident);
                        let requested = self.finish_open(key, &stored, now).await?;
                        return Ok(Outcome::Opened {
                            event_id,
                            incident: stored.open.id,
                            window_count: wc.count,
                            containment_requested: requested,
                        });
                    }
                    // Lost the race: the next round sees the winner and joins it.
                }
            }
        }
        Err(Error::Contention)
    }

    /// Sends the DETECTED alert and asks the responder to contain, concurrently: a page
    /// must not wait on containment, nor containment on SNS. Each success is recorded,
    /// so a retry repeats only what failed. Returns whether containment was requested.
    async fn finish_open(
        &self,
        key: &Key,
        stored: &StoredIncident,
        now: Millis,
    ) -> Result<bool, Error> {
        let incident = &stored.incident;
        let wants_containment = incident.containment.action != Action::None;
        let alert = async {
            if !stored.alerted {
                let status = ContainmentStatus::from_plan(incident);
                let a = render(
                    AlertKind::Detected,
                    incident,
                    &status,
                    self.policy.window_for(
                        incident.principal_arn().unwrap_or_default(),
                        &incident.resource_type,
                    ),
                    now,
                    false,
                );
                self.alerter.publish(&a).await?;
                self.store
                    .set_flag(key, &incident.id, Flag::Alerted)
                    .await?;
            }
            Ok::<_, Error>(())
        };
        let contain = async {
            if wants_containment && !stored.invoked {
                self.invoker
                    .request(&ContainmentRequest {
                        incident_id: incident.id.clone(),
                        principal_arn: incident.principal_arn().unwrap_or_default().to_owned(),
                        account: incident.account.clone(),
                        resource_type: incident.resource_type.clone(),
                    })
                    .await?;
                self.store
                    .set_flag(key, &incident.id, Flag::Invoked)
                    .await?;
            }
            Ok::<_, Error>(())
        };
        let (a, c) = tokio::join!(alert, contain);
        a.and(c)?;
        Ok(wants_containment)
    }

    async fn join(
        &self,
        key: &Key,
        id: &str,
        t: &Termination,
        now: Millis,
    ) -> Result<Option<Outcome>, Error> {
        // None: the incident was replaced between our read and this write.
        let Some(stored) = self.store.join_incident(key, id, t).await? else {
            return Ok(None);
        };
        let update_alert = self
            .store
            .claim_update_slot(key, id, now, UPDATE_GAP_MS)
            .await?;
        if update_alert {
            let status = ContainmentStatus {
                state: ContainmentState::SeeEarlierAlerts,
                detail: "containment was reported in its own alert".into(),
            };
            let a = render(
                AlertKind::Update,
                &stored.incident,
                &status,
                self.policy.window_for(&t.principal.arn, t.kind()),
                now,
                false,
            );
            self.alerter.publish(&a).await?;
        }
        Ok(Some(Outcome::Joined {
            event_id: t.event_id.clone(),
            incident: id.to_owned(),
            instances: stored.incident.instances(),
            update_alert,
        }))
    }
}

/// A wave's page: its sample's unclaimed instances looked up in `store`. At the opening
/// the sample is the whole wave, not yet credited, so its callers are tallied here.
pub(crate) async fn wave_page<S: Waves>(
    store: &S,
    stored: &StoredWave,
    stage: WaveStage,
    bound: Millis,
    now: Millis,
) -> Result<tripwire_engine::alert::Alert, Error> {
    let mut w = stored.wave.clone();
    let callers = store
        .callers(&w.account, &w.region, &w.instance_ids)
        .await?;
    w.unclaimed = w
        .instance_ids
        .iter()
        .filter(|i| !callers.contains_key(*i))
        .cloned()
        .collect();
    w.instances = w.instances.max(w.instance_ids.len());
    let mut claimed = stored.claimed;
    if stage == WaveStage::Opened {
        w.claimed_by = tripwire_engine::wave::tally(callers.values());
        claimed = callers.len();
    }
    Ok(render_wave(
        &w,
        stage,
        w.instances.saturating_sub(claimed),
        bound,
        now,
    ))
}
