//! Lifting containment (`tripwire release`): the tripwire's policies come off the
//! principal through the member stack's release role (the containment role may only add
//! denies), the keys the incident deactivated come back only when asked, the incident is
//! closed so the next burst opens a new one, and the `released` alert resolves the page.

use crate::responder::HOLD_MS;
use crate::{AccountBrakes, Alerts, Clock, Error, Incidents, NoBrakes, StoredIncident};
use std::future::Future;
use tripwire_engine::alert::{render, AlertKind, ContainmentState, ContainmentStatus};
use tripwire_engine::catalogue;
use tripwire_engine::containment::Target;
use tripwire_engine::principal::{iam_entity, IamEntity};
use tripwire_engine::time::Millis;
use tripwire_engine::window::{Key, Lane};

/// What only the release role may do.
pub trait Lift: Send + Sync {
    /// Detaches the tripwire's managed policies from `entity` and deletes its inline
    /// ones; returns the names removed (none is not an error).
    fn lift(&self, entity: &IamEntity) -> impl Future<Output = Result<Vec<String>, Error>> + Send;

    /// Sets `keys` of the IAM user `entity` active again.
    fn reactivate_keys(
        &self,
        entity: &IamEntity,
        keys: &[String],
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

/// What a release did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Released {
    /// The policies removed.
    pub removed: Vec<String>,
    /// The access keys the incident's plan deactivated.
    pub keys: Vec<String>,
    /// Whether those keys were set active again.
    pub keys_reactivated: bool,
    /// Whether an incident was recorded and is now closed (any type's).
    pub closed: bool,
    /// The first `released` alert's message ID, when one went out (one per incident
    /// closed).
    pub alert: Option<String>,
}

/// The release use case, over its ports. Without an alert destination the release still
/// happens; the caller says that no alert went out.
pub struct Release<L, S, A, C, B = NoBrakes> {
    lift: L,
    brakes: B,
    store: S,
    alerts: Option<A>,
    clock: C,
    /// The policy's window, only for the alert's threshold sentence.
    window: Millis,
}

impl<L, S, A, C> Release<L, S, A, C> {
    /// A release over its ports.
    pub fn new(lift: L, store: S, alerts: Option<A>, clock: C, window: Millis) -> Self {
        Release {
            lift,
            brakes: NoBrakes,
            store,
            alerts,
            clock,
            window,
        }
    }

    /// The same release, detaching account brakes through `brakes`.
    pub fn with_brakes<B: AccountBrakes>(self, brakes: B) -> Release<L, S, A, C, B> {
        Release {
            lift: self.lift,
            brakes,
            store: self.store,
            alerts: self.alerts,
            clock: self.clock,
            window: self.window,
        }
    }
}

impl<L: Lift, S: Incidents, A: Alerts, C: Clock, B: AccountBrakes> Release<L, S, A, C, B> {
    /// Releases `principal` (a role or user ARN, or the root user's) for its incidents
    /// in `account` (where the resources died): the policies are the principal's,
    /// whichever door its bursts came through, so every type's open incident is closed,
    /// and an incident that braked an account detaches the brake from it. The incidents
    /// are marked `releasing` first, then the policies come off: a failure there leaves
    /// the incidents open, so the release can simply be run again.
    pub async fn run(
        &self,
        account: &str,
        principal: &str,
        reactivate_keys: bool,
    ) -> Result<Released, Error> {
        // The root user has no IAM entity: only an account brake can have held it.
        let entity = match iam_entity(principal) {
            Ok(e) => Some(e),
            Err(_) if is_root(principal) => None,
            Err(e) => return Err(Error::Config(e)),
        };
        // The principal's incidents of every type, marked first: a responder retry or a
        // `recontain` that reads one while the policies come off refuses, instead of
        // writing them back.
        let mut incidents = Vec::new();
        for kind in catalogue::kinds() {
            let key = Key::of(Lane::Burst, principal, account, kind);
            if let Some(s) = self.mark(&key).await? {
                incidents.push((key, s));
            }
        }
        let mut removed = match &entity {
            Some(e) => self.lift.lift(e).await?,
            None => Vec::new(),
        };
        // The accounts the incidents braked.
        let mut braked: Vec<&str> = incidents
            .iter()
            .filter_map(|(_, s)| s.incident.containment.restriction.as_ref())
            .filter_map(|r| match &r.target {
                Target::Account(a) => Some(a.as_str()),
                _ => None,
            })
            .collect();
        braked.sort_unstable();
        braked.dedup();
        for a in braked {
            if let Some(id) = self.brakes.detach(a).await? {
                removed.push(format!(
                    "{} ({id}, from account {a})",
                    tripwire_engine::names::ACCOUNT_BRAKE_SCP
                ));
            }
        }
        // The principals the bursts' session chains began with, braked beside it.
        let mut origins: Vec<&str> = incidents
            .iter()
            .filter_map(|(_, s)| s.incident.containment.origin.as_ref())
            .filter_map(|o| o.principal_arn())
            .collect();
        origins.sort_unstable();
        origins.dedup();
        for arn in origins {
            let origin = iam_entity(arn).map_err(Error::Config)?;
            for lifted in self.lift.lift(&origin).await? {
                removed.push(format!("{lifted} (from {arn})"));
            }
        }
        let now = self.clock.now();
        let (mut keys, mut closed, mut alert) = (Vec::new(), false, None);
        for (key, s) in &incidents {
            // The keys the incident's plan deactivated.
            for k in &s.incident.containment.deactivate_keys {
                if !keys.contains(k) {
                    keys.push(k.clone());
                }
            }
            let this = self.store.close(key, now).await?;
            closed |= this;
            if let (true, Some(alerts)) = (this, &self.alerts) {
                let status = ContainmentStatus {
                    state: ContainmentState::Released,
                    detail: "tripwire release lifted containment and closed the incident.".into(),
                };
                let a = render(
                    AlertKind::Released,
                    &s.incident,
                    &status,
                    self.window,
                    now,
                    false,
                );
                let id = alerts.publish(&a).await?;
                alert.get_or_insert(id);
            }
        }
        let keys_reactivated = match &entity {
            Some(entity) if reactivate_keys && !keys.is_empty() => {
                self.lift.reactivate_keys(entity, &keys).await?;
                true
            }
            _ => false,
        };
        Ok(Released {
            removed,
            keys,
            keys_reactivated,
            closed,
            alert,
        })
    }

    /// Marks the key's incident `releasing`, waiting while a responder holds it (it is
    /// putting containment in place: lifting now would race it). The incident marked,
    /// or `None` when the key has none.
    async fn mark(&self, key: &Key) -> Result<Option<StoredIncident>, Error> {
        let give_up = self.clock.now() + HOLD_MS + 10_000;
        loop {
            let Some(s) = self.store.incident(key).await? else {
                return Ok(None);
            };
            let now = self.clock.now();
            if self
                .store
                .mark_releasing(
                    key,
                    &s.open.id,
                    now,
                    "tripwire release is lifting containment",
                )
                .await?
            {
                return Ok(Some(s));
            }
            if now > give_up {
                return Err(Error::Config(format!(
                    "incident {} stayed held by a responder for over {} s; run the release again",
                    s.open.id,
                    (HOLD_MS + 10_000) / 1000
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    }
}

/// Whether `arn` is an account's root user (`arn:PARTITION:iam::ACCOUNT:root`).
fn is_root(arn: &str) -> bool {
    tripwire_engine::principal::principal_of(arn, "Root").is_ok()
}
