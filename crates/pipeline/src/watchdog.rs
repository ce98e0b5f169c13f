//! The watchdog: on a schedule, pages `coverage_lost` once when an account and region
//! that has sent canary heartbeats falls silent for three canary intervals, or when an
//! instance of the member StackSet has sent none a grace period after the watchdog first
//! listed it, and `coverage_restored` once when either speaks. It also closes shutdown
//! waves past their bound, paging once the instances no record claimed.

use crate::{
    Alerts, Clock, Deployments, DrillQueue, Drills, Error, Heartbeats, NoDeployments, Steps, Waves,
};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use tripwire_engine::alert::{render_coverage, render_never_seen, Alert, AlertKind, WaveStage};
use tripwire_engine::armed::{Armed, HeartbeatState, Listed};
use tripwire_engine::time::Millis;

/// What one run paged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "paged", rename_all = "snake_case")]
pub enum Paged {
    /// `coverage_lost` for a pair that has spoken before.
    CoverageLost {
        /// The account.
        account: String,
        /// The region.
        region: String,
    },
    /// `coverage_lost` for a StackSet instance that never sent a heartbeat.
    NeverSeen {
        /// The account.
        account: String,
        /// The region.
        region: String,
    },
    /// `coverage_restored`.
    CoverageRestored {
        /// The account.
        account: String,
        /// The region.
        region: String,
    },
    /// A shutdown wave past its bound with instances no record claimed.
    WaveClosed {
        /// The account.
        account: String,
        /// The region.
        region: String,
        /// The wave.
        wave: String,
        /// Its unclaimed instances.
        unclaimed: usize,
    },
    /// `containment_unproven`: an account's drill failed.
    ContainmentUnproven {
        /// The account.
        account: String,
        /// Why the drill failed.
        reason: String,
    },
}

/// The watchdog over its ports.
pub struct Watchdog<S, A, C, D = NoDeployments> {
    store: S,
    alerter: A,
    clock: C,
    interval: Millis,
    deployments: D,
    grace: Millis,
    allowed: BTreeSet<String>,
    wave_bound: Millis,
}

impl<S, A, C> Watchdog<S, A, C> {
    /// A watchdog for canaries that call every `interval` ms, over the pairs that have
    /// spoken.
    pub fn new(store: S, alerter: A, clock: C, interval: Millis) -> Self {
        Watchdog {
            store,
            alerter,
            clock,
            interval,
            deployments: NoDeployments,
            grace: 0,
            allowed: BTreeSet::new(),
            wave_bound: 3_600_000,
        }
    }

    /// Also pages the instances `deployments` lists that have sent no heartbeat `grace`
    /// ms after the first run that listed them.
    pub fn with_deployments<D>(self, deployments: D, grace: Millis) -> Watchdog<S, A, C, D> {
        Watchdog {
            store: self.store,
            alerter: self.alerter,
            clock: self.clock,
            interval: self.interval,
            deployments,
            grace,
            allowed: self.allowed,
            wave_bound: self.wave_bound,
        }
    }
}

impl<S, A, C, D> Watchdog<S, A, C, D> {
    /// The policy's allowed accounts: the member stacks filter their canaries like any
    /// termination there, so no heartbeat is expected from them and their silence pages
    /// nothing. A member stack that drops more than the policy allows stays expected, and
    /// its silence pages.
    pub fn with_allowed_accounts(mut self, allowed: BTreeSet<String>) -> Self {
        self.allowed = allowed;
        self
    }

    /// How long after a shutdown wave's last instance its records may still arrive (the
    /// policy's `max_delivery_delay`): then the wave closes, and its unclaimed
    /// instances are paged once.
    pub fn with_wave_bound(mut self, bound: Millis) -> Self {
        self.wave_bound = bound;
        self
    }
}

impl<S: Heartbeats + Steps + Waves + Drills, A: Alerts, C: Clock, D: Deployments>
    Watchdog<S, A, C, D>
{
    /// Checks every (account, region). A failed page fails the run, and the next run
    /// (or Lambda's retry) pages it; a page that went out is never repeated.
    pub async fn run(&self, lease_until: Millis) -> Result<Vec<Paged>, Error> {
        let now = self.clock.now();
        let mut paged = Vec::new();
        let states = self.store.heartbeat_states().await?;
        for s in &states {
            let mut lost_paged = s.lost_paged;
            if let Some(before) = lost_paged.filter(|&before| s.last > before) {
                let step = format!("coverage_restored#{}#{}#{before}", s.account, s.region);
                let sent = self
                    .page(
                        &step,
                        self.coverage(AlertKind::CoverageRestored, s, now),
                        now,
                        lease_until,
                    )
                    .await?;
                self.store
                    .set_lost_paged(&s.account, &s.region, None)
                    .await?;
                lost_paged = None;
                if sent {
                    paged.push(Paged::CoverageRestored {
                        account: s.account.clone(),
                        region: s.region.clone(),
                    });
                }
            }
            if lost_paged.is_none()
                && !self.allowed.contains(&s.account)
                && Armed::of(Some(s.last), now, self.interval) == Armed::Lost
            {
                let step = format!("coverage_lost#{}#{}#{}", s.account, s.region, s.last);
                let sent = self
                    .page(
                        &step,
                        self.coverage(AlertKind::CoverageLost, s, now),
                        now,
                        lease_until,
                    )
                    .await?;
                self.store
                    .set_lost_paged(&s.account, &s.region, Some(s.last))
                    .await?;
                if sent {
                    paged.push(Paged::CoverageLost {
                        account: s.account.clone(),
                        region: s.region.clone(),
                    });
                }
            }
        }
        self.never_seen(&states, now, lease_until, &mut paged)
            .await?;
        self.close_waves(now, lease_until, &mut paged).await?;
        self.unproven(now, lease_until, &mut paged).await?;
        Ok(paged)
    }

    /// Asks the responder to drill in every account the member StackSet lists (where
    /// its stack contains) but the allowed ones, where nothing is ever contained: one
    /// request per account, naming the schedule's `run` so a retried schedule drills
    /// once. The accounts asked, sorted.
    pub async fn drill<Q: DrillQueue>(
        &self,
        queue: &Q,
        partition: &str,
        run: Option<&str>,
    ) -> Result<Vec<String>, Error> {
        let accounts: BTreeSet<String> = self
            .deployments
            .deployed()
            .await?
            .into_iter()
            .filter(|d| d.stack_instance && !self.allowed.contains(&d.account))
            .map(|d| d.account)
            .collect();
        for account in &accounts {
            queue
                .request_drill(&tripwire_engine::drill::DrillRequest {
                    account: account.clone(),
                    partition: partition.to_owned(),
                    run: run.map(str::to_owned),
                })
                .await?;
        }
        Ok(accounts.into_iter().collect())
    }

    /// Pages each failed drill once, on the alarm channel.
    async fn unproven(
        &self,
        now: Millis,
        lease_until: Millis,
        paged: &mut Vec<Paged>,
    ) -> Result<(), Error> {
        for d in self.store.drills().await?.into_iter().filter(|d| !d.ok) {
            let step = format!("containment_unproven#{}#{}", d.account, d.at);
            let alert = tripwire_engine::drill::render_unproven(&d, now);
            if self.page(&step, alert, now, lease_until).await? {
                paged.push(Paged::ContainmentUnproven {
                    account: d.account.clone(),
                    reason: d.reason.clone().unwrap_or_default(),
                });
            }
        }
        Ok(())
    }

    /// Closes each open wave `wave_bound` after its last instance: a wave some of whose
    /// instances no record claimed by then pages once with them (`closed`); every
    /// instance went some other way than a watched call. A wave all claimed closes
    /// quietly: its pages said who.
    async fn close_waves(
        &self,
        now: Millis,
        lease_until: Millis,
        paged: &mut Vec<Paged>,
    ) -> Result<(), Error> {
        for (account, region, id) in self.store.open_waves().await? {
            let current = self
                .store
                .wave(&account, &region)
                .await?
                .filter(|w| w.wave.id == id);
            if let Some(w) = &current {
                if now < w.wave.last_event_time.saturating_add(self.wave_bound) {
                    continue;
                }
                let unclaimed = w.wave.instances.saturating_sub(w.claimed);
                if unclaimed > 0 {
                    let alert = crate::detector::wave_page(
                        &self.store,
                        w,
                        WaveStage::Closed,
                        self.wave_bound,
                        now,
                    )
                    .await?;
                    if self
                        .page(&format!("wave_closed#{id}"), alert, now, lease_until)
                        .await?
                    {
                        paged.push(Paged::WaveClosed {
                            account: account.clone(),
                            region: region.clone(),
                            wave: id.clone(),
                            unclaimed,
                        });
                    }
                }
            }
            // Closed, or replaced by a later wave (whose own entry stands).
            self.store.forget_wave(&account, &region, &id).await?;
        }
        Ok(())
    }

    /// The StackSet's instances that have not spoken: each is listed on the first run
    /// that sees it, paged once when the grace period has passed, and forgotten when it
    /// speaks (paging `coverage_restored` if it was paged) or leaves the StackSet. The
    /// list failing fails the run, after the pages for pairs that have spoken.
    async fn never_seen(
        &self,
        states: &[HeartbeatState],
        now: Millis,
        lease_until: Millis,
        paged: &mut Vec<Paged>,
    ) -> Result<(), Error> {
        let deployed = self.deployments.deployed().await?;
        let heard: BTreeMap<(&str, &str), &HeartbeatState> = states
            .iter()
            .map(|s| ((s.account.as_str(), s.region.as_str()), s))
            .collect();
        let listed: BTreeMap<(String, String), Listed> = self
            .store
            .listed()
            .await?
            .into_iter()
            .map(|l| ((l.account.clone(), l.region.clone()), l))
            .collect();
        let mut present = BTreeSet::new();
        for d in &deployed {
            let pair = (d.account.as_str(), d.region.as_str());
            present.insert(pair);
            if heard.contains_key(&pair) || self.allowed.contains(&d.account) {
                continue;
            }
            match listed.get(&(d.account.clone(), d.region.clone())) {
                None => {
                    self.store
                        .put_listed(&Listed {
                            account: d.account.clone(),
                            region: d.region.clone(),
                            listed: now,
                            paged: false,
                        })
                        .await?
                }
                Some(l) if !l.paged && now - l.listed >= self.grace => {
                    let step = format!(
                        "coverage_never_seen#{}#{}#{}",
                        l.account, l.region, l.listed
                    );
                    let alert = render_never_seen(d, l.listed, now);
                    let sent = self.page(&step, alert, now, lease_until).await?;
                    self.store
                        .put_listed(&Listed {
                            paged: true,
                            ..l.clone()
                        })
                        .await?;
                    if sent {
                        paged.push(Paged::NeverSeen {
                            account: l.account.clone(),
                            region: l.region.clone(),
                        });
                    }
                }
                Some(_) => {}
            }
        }
        for l in listed.values() {
            let pair = (l.account.as_str(), l.region.as_str());
            match heard.get(&pair) {
                Some(s) if l.paged => {
                    let step = format!(
                        "coverage_restored#{}#{}#listed{}",
                        l.account, l.region, l.listed
                    );
                    let alert = self.coverage(AlertKind::CoverageRestored, s, now);
                    if self.page(&step, alert, now, lease_until).await? {
                        paged.push(Paged::CoverageRestored {
                            account: l.account.clone(),
                            region: l.region.clone(),
                        });
                    }
                }
                // Spoke before it was paged: nothing to say.
                Some(_) => {}
                // Still deployed, still silent: kept.
                None if present.contains(&pair) => continue,
                // Left the StackSet without a word.
                None => {}
            }
            self.store.forget_listed(&l.account, &l.region).await?;
        }
        Ok(())
    }

    fn coverage(&self, kind: AlertKind, s: &HeartbeatState, now: Millis) -> Alert {
        render_coverage(kind, s, now, self.interval)
    }

    /// Publishes `alert` for `step` unless it already went out; whether it did now.
    async fn page(
        &self,
        step: &str,
        alert: Alert,
        now: Millis,
        lease_until: Millis,
    ) -> Result<bool, Error> {
        crate::page_once(
            &self.store,
            &self.alerter,
            step,
            (now, lease_until),
            async { Ok(alert) },
        )
        .await
    }
}
