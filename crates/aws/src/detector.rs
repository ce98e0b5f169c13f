//! The detector pipeline: one EventBridge event in; the shared window updated; at most
//! one incident opened per burst across every container; the alert and the responder
//! fired together. Every step is idempotent, so a retried event finishes what a failed
//! attempt started and counts nothing twice.

use crate::alerter::Alerter;
use crate::invoke::ResponderInvoker;
use crate::store::{Recorded, StoredIncident, WindowStore};
use crate::Error;
use serde::Serialize;
use tripwire_engine::alert::{render, AlertKind, ContainmentStatus};
use tripwire_engine::containment::{self, ContainmentRequest, Plan};
use tripwire_engine::time::Millis;
use tripwire_engine::window::{classify, decide, instances_in, Classification, Decision, Key};
use tripwire_engine::{scan, Action, Incident, Policy, ScanCounts, Termination};

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

/// The detector.
pub struct Detector {
    policy: Policy,
    store: WindowStore,
    alerter: Alerter,
    invoker: ResponderInvoker,
    clock: fn() -> Millis,
}

impl Detector {
    /// A detector over its adapters; `clock` gives wall-clock milliseconds.
    pub fn new(
        policy: Policy,
        store: WindowStore,
        alerter: Alerter,
        invoker: ResponderInvoker,
        clock: fn() -> Millis,
    ) -> Self {
        Detector {
            policy,
            store,
            alerter,
            invoker,
            clock,
        }
    }

    /// Handles one event (normally one EventBridge envelope).
    pub async fn handle(&self, event: &str) -> Result<Vec<Outcome>, Error> {
        let mut counts = ScanCounts::default();
        let mut terms = Vec::new();
        if scan(event, &mut counts, &mut terms).is_err() {
            return Ok(vec![Outcome::Skipped {
                reason: "malformed_record",
            }]);
        }
        let mut out: Vec<Outcome> = counts
            .skipped
            .iter()
            .flat_map(|(reason, n)| std::iter::repeat_n(Outcome::Skipped { reason }, *n as usize))
            .collect();
        out.extend(std::iter::repeat_n(
            Outcome::OtherEvent,
            counts.other_events as usize,
        ));
        for t in terms {
            out.push(self.process(t).await?);
        }
        Ok(out)
    }

    async fn process(&self, t: Termination) -> Result<Outcome, Error> {
        let now = (self.clock)();
        let event_id = t.event_id.clone();
        match classify(&self.policy, &t) {
            Classification::NotCounted(r) => Ok(Outcome::NotCounted {
                reason: r.as_str(),
                event_id,
            }),
            Classification::Attempt(key) => {
                match self.store.record(&key, &t, now).await? {
                    Recorded::Duplicate => return Ok(Outcome::Duplicate { event_id }),
                    // Only a first delivery adds to the count: a retry may already have.
                    Recorded::New => {
                        if let Some(cur) = self.store.incident(&key).await? {
                            if cur.open.admits(t.event_time, self.policy.window) {
                                self.store.add_attempt(&key, &cur.open.id).await?;
                            }
                        }
                    }
                    Recorded::Unfinished => {}
                }
                self.store.mark_done(&key, &t).await?;
                Ok(Outcome::Attempt { event_id })
            }
            Classification::Counted {
                key,
                threshold,
                cross_account,
            } => {
                if self.store.record(&key, &t, now).await? == Recorded::Duplicate {
                    return Ok(Outcome::Duplicate { event_id });
                }
                let outcome = self
                    .counted(&key, &t, threshold, cross_account, now)
                    .await?;
                self.store.mark_done(&key, &t).await?;
                Ok(outcome)
            }
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
        let w = self.policy.window;
        let events = self
            .store
            .window(key, t.event_time - w, t.event_time + w)
            .await?;
        let current = self.store.incident(key).await?;
        let plan = || containment::plan(&self.policy, &t.principal, now);
        // A retry of the call that opened the incident finishes what it started.
        if let Some(cur) = current
            .as_ref()
            .filter(|c| c.incident.trigger_event_id == t.event_id && c.open.admits(t.event_time, w))
        {
            let requested = self.finish_open(key, cur, &plan(), now).await?;
            let window_count = cur.incident.trigger_count;
            return Ok(Outcome::Opened {
                event_id: t.event_id.clone(),
                incident: cur.open.id.clone(),
                window_count,
                containment_requested: requested,
            });
        }
        match decide(
            t.event_time,
            threshold,
            w,
            &events,
            current.as_ref().map(|c| &c.open),
        ) {
            Decision::Counted(wc) => Ok(Outcome::Counted {
                event_id: t.event_id.clone(),
                window_count: wc.count,
                threshold,
            }),
            Decision::Join(_) => {
                let id = current.map(|c| c.open.id).unwrap_or_default();
                self.join(key, &id, t, now).await
            }
            Decision::Open(wc) => {
                let plan = plan();
                let mut incident =
                    Incident::open(key, t, wc, threshold, cross_account, plan.summary());
                incident
                    .instance_ids
                    .extend(instances_in(&events, wc).cloned());
                incident.instances = incident.instance_ids.len();
                if self
                    .store
                    .open_incident(key, &incident, t.event_time, w, now)
                    .await?
                {
                    let stored = StoredIncident {
                        open: incident.as_open(),
                        incident,
                        alerted: false,
                        invoked: false,
                    };
                    let requested = self.finish_open(key, &stored, &plan, now).await?;
                    Ok(Outcome::Opened {
                        event_id: t.event_id.clone(),
                        incident: stored.open.id,
                        window_count: wc.count,
                        containment_requested: requested,
                    })
                } else {
                    // Another container opened it first: this call belongs to that incident.
                    let cur =
                        self.store.incident(key).await?.ok_or_else(|| {
                            Error::Data("incident vanished after a lost race".into())
                        })?;
                    self.join(key, &cur.open.id, t, now).await
                }
            }
        }
    }

    /// Sends the DETECTED alert and asks the responder to contain, concurrently: a page
    /// must not wait on containment, nor containment on SNS. Each success is recorded,
    /// so a retry repeats only what failed. Returns whether containment was requested.
    async fn finish_open(
        &self,
        key: &Key,
        stored: &StoredIncident,
        plan: &Plan,
        now: Millis,
    ) -> Result<bool, Error> {
        let incident = &stored.incident;
        let wants_containment = plan.action != Action::None;
        let alert = async {
            if !stored.alerted {
                let status = ContainmentStatus::from_plan(incident);
                let a = render(
                    AlertKind::Detected,
                    incident,
                    &status,
                    self.policy.window,
                    now,
                    false,
                );
                self.alerter.publish(&a).await?;
                self.store.set_flag(key, &incident.id, "alerted").await?;
            }
            Ok::<_, Error>(())
        };
        let contain = async {
            if wants_containment && !stored.invoked {
                self.invoker
                    .invoke(&ContainmentRequest {
                        incident: incident.clone(),
                        plan: plan.clone(),
                    })
                    .await?;
                self.store.set_flag(key, &incident.id, "invoked").await?;
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
    ) -> Result<Outcome, Error> {
        let Some(stored) = self.store.join_incident(key, id, t).await? else {
            return Err(Error::Data(format!(
                "incident {id} was replaced while joining; retrying"
            )));
        };
        let update_alert = self
            .store
            .claim_update_slot(key, id, now, UPDATE_GAP_MS)
            .await?;
        if update_alert {
            let status = ContainmentStatus {
                state: "see_earlier_alerts".into(),
                detail: "containment was reported in its own alert".into(),
            };
            let a = render(
                AlertKind::Update,
                &stored.incident,
                &status,
                self.policy.window,
                now,
                false,
            );
            self.alerter.publish(&a).await?;
        }
        Ok(Outcome::Joined {
            event_id: t.event_id.clone(),
            incident: id.to_owned(),
            instances: stored.incident.instances,
            update_alert,
        })
    }
}
