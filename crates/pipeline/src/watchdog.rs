//! The watchdog: on a schedule, pages `coverage_lost` once when an account and region
//! that has sent canary heartbeats falls silent for three canary intervals, and
//! `coverage_restored` once when it speaks again.

use crate::{Alerts, Clock, Error, IncidentStore, Recorded};
use serde::Serialize;
use tripwire_engine::alert::{render_coverage, AlertKind};
use tripwire_engine::armed::{Armed, HeartbeatState};
use tripwire_engine::time::Millis;

/// What one run paged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "paged", rename_all = "snake_case")]
pub enum Paged {
    /// `coverage_lost`.
    CoverageLost {
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
}

/// The watchdog over its ports.
pub struct Watchdog<S, A, C> {
    store: S,
    alerter: A,
    clock: C,
    interval: Millis,
}

impl<S: IncidentStore, A: Alerts, C: Clock> Watchdog<S, A, C> {
    /// A watchdog for canaries that call every `interval` ms.
    pub fn new(store: S, alerter: A, clock: C, interval: Millis) -> Self {
        Watchdog {
            store,
            alerter,
            clock,
            interval,
        }
    }

    /// Checks every (account, region). A failed page fails the run, and the next run
    /// (or Lambda's retry) pages it; a page that went out is never repeated.
    pub async fn run(&self, lease_until: Millis) -> Result<Vec<Paged>, Error> {
        let now = self.clock.now();
        let mut paged = Vec::new();
        for s in self.store.heartbeat_states().await? {
            let mut lost_paged = s.lost_paged;
            if let Some(before) = lost_paged.filter(|&before| s.last > before) {
                let step = format!("coverage_restored#{}#{}#{before}", s.account, s.region);
                let sent = self
                    .page(&step, AlertKind::CoverageRestored, &s, now, lease_until)
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
            if lost_paged.is_none() && Armed::of(Some(s.last), now, self.interval) == Armed::Lost {
                let step = format!("coverage_lost#{}#{}#{}", s.account, s.region, s.last);
                let sent = self
                    .page(&step, AlertKind::CoverageLost, &s, now, lease_until)
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
        Ok(paged)
    }

    /// Publishes the alert for `step` unless it already went out; whether it did now.
    async fn page(
        &self,
        step: &str,
        kind: AlertKind,
        s: &HeartbeatState,
        now: Millis,
        lease_until: Millis,
    ) -> Result<bool, Error> {
        if self.store.claim_once(step, now, lease_until).await? == Recorded::Duplicate {
            return Ok(false);
        }
        match self
            .alerter
            .publish(&render_coverage(kind, s, now, self.interval))
            .await
        {
            Ok(_) => self.store.settle_once(step, true).await.map(|()| true),
            Err(e) => {
                let _ = self.store.settle_once(step, false).await;
                Err(e)
            }
        }
    }
}
