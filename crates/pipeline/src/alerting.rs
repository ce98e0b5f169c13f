//! The one alerting rule, for every pipeline: the page must go out (its failure fails the
//! alert, so the event is retried), and every other destination is best effort after it.
//! A retry after the page went out would page twice, so a destination that refuses or
//! does not answer in time is logged and counted (`alert_bus_failed`, the
//! `tripwire/AlertBusFailures` metric the central stack alarms on), never retried.
//! Which destinations exist, and what each receives, is the engine's registry
//! (`tripwire_engine::destination::DESTINATIONS`).

use crate::{Alerts, Clock, Error, Port, SystemClock};
use std::future::Future;
use std::time::Duration;
use tripwire_engine::alert::Alert;

/// The destination an alert must reach (the SNS topic): returns its message ID.
pub trait Page: Send + Sync {
    /// Sends the page.
    fn page(&self, alert: &Alert) -> impl Future<Output = Result<String, Error>> + Send;
}

/// A best-effort destination after the page (the alert bus, and what its rules carry on
/// to chat, PagerDuty and Security Hub).
pub trait Broadcast: Send + Sync {
    /// Sends `alert` on.
    fn broadcast(&self, alert: &Alert) -> impl Future<Output = Result<(), Error>> + Send;
}

/// No broadcast configured.
impl<B: Broadcast> Broadcast for Option<B> {
    async fn broadcast(&self, alert: &Alert) -> Result<(), Error> {
        match self {
            Some(b) => b.broadcast(alert).await,
            None => Ok(()),
        }
    }
}

/// How long an alert waits on the broadcast after its page went out: below the SDK's own
/// 12 s, because the caller records the page as sent only once this returns, and a slow
/// destination must not turn into a second page.
pub const BROADCAST_DEADLINE: Duration = Duration::from_secs(4);

/// A page and what follows it, under the rule.
#[derive(Debug, Clone)]
pub struct Alerting<P, B> {
    page: P,
    rest: B,
    deadline: Duration,
}

impl<P, B> Alerting<P, B> {
    /// `page` first, then `rest`, each alert waiting on `rest` at most
    /// [`BROADCAST_DEADLINE`].
    pub fn new(page: P, rest: B) -> Self {
        Alerting {
            page,
            rest,
            deadline: BROADCAST_DEADLINE,
        }
    }

    /// The page and what follows it, to build on.
    pub fn into_parts(self) -> (P, B) {
        (self.page, self.rest)
    }
}

impl<P: Page, B: Broadcast> Alerts for Alerting<P, B> {
    async fn publish(&self, alert: &Alert) -> Result<String, Error> {
        let id = self.page.page(alert).await?;
        let sent = tokio::time::timeout(self.deadline, self.rest.broadcast(alert))
            .await
            .unwrap_or_else(|_| {
                // The broadcast's own call never answered; which call is the adapter's.
                Err(Error::Aws {
                    port: Port::Alerts,
                    op: "broadcast",
                    code: "Timeout".into(),
                    message: format!("no answer in {:?}", self.deadline),
                    transient: true,
                })
            });
        if let Err(e) = sent {
            tracing::warn!(
                outcome = "alert_bus_failed",
                kind = alert.kind.as_str(),
                error = %e,
                "the page went out; the alert bus refused its event"
            );
            // A metric line, which the central stack alarms on; no API call.
            println!(
                "{}",
                tripwire_engine::destination::bus_failure_metric(alert.kind, SystemClock.now())
            );
        }
        Ok(id)
    }
}
