//! tripwire's pipelines: the detector (one CloudTrail event in; the shared window, at
//! most one incident per burst, the alert and the containment request out) and the
//! responder (a containment request in; checked, applied, recorded, alerted), the
//! watchdog (coverage from the canary's heartbeats) and the release (containment lifted,
//! the incident closed, the page resolved).
//!
//! Boundary: no AWS SDK. The pipelines are generic over the ports below; `tripwire-aws`
//! implements them on DynamoDB, SNS, Lambda and IAM/STS, and the tests on memory. What
//! the ports promise (conditional writes, idempotent flags) is written on each method,
//! because the pipelines' exactly-once arguments rest on it.

pub mod alerting;
pub mod detector;
pub mod error;
pub mod release;
pub mod responder;
pub mod watchdog;

pub use alerting::{Alerting, Broadcast, Page};
pub use detector::{Detector, Outcome};
pub use error::{Error, Port};
pub use release::{Lift, Release, Released};
pub use responder::{Responder, ResponderOutcome};

/// Publishes the page `render` makes for the one-off step `step` (claimed at `now` until
/// the lease's end) unless it went out already or is going out elsewhere; a failed page
/// gives the step up, so the retry sends it. `render` runs only once the step is ours.
/// Whether the page went out now.
pub(crate) async fn page_once<S: Steps, A: Alerts>(
    store: &S,
    alerter: &A,
    step: &str,
    (now, lease_until): (Millis, Millis),
    render: impl Future<Output = Result<Alert, Error>>,
) -> Result<bool, Error> {
    if store.claim_once(step, now, lease_until).await? == Recorded::Duplicate {
        return Ok(false);
    }
    let sent = async { alerter.publish(&render.await?).await }.await;
    match sent {
        Ok(_) => store.settle_once(step, true).await.map(|()| true),
        Err(e) => {
            let _ = store.settle_once(step, false).await;
            Err(e)
        }
    }
}

/// How long a recorded initiator call is kept: beyond any lookback that can name it.
pub const INITIATOR_RETENTION_MS: Millis = 24 * 3600 * 1000;

use std::future::Future;
use tripwire_engine::alert::{Alert, ContainmentState};
use tripwire_engine::containment::{self, ContainmentRequest, Plan};
use tripwire_engine::provenance::Issued;
use tripwire_engine::record::StateChange;
use tripwire_engine::time::Millis;
use tripwire_engine::{
    Incident, Initiation, Key, OpenIncident, SkipReason, Termination, WindowEvent,
};

/// What the store knows of a session's access key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssueState {
    /// The `AssumeRole*` call that issued it, with its resolved origin.
    Issued(Box<Issued>),
    /// Two different issues named this key: no call made with it gets an origin.
    Conflicted,
}

impl IssueState {
    /// A key's state once `new` is recorded over `existing`, and whether `new` stood:
    /// the same issue again (or a fuller copy) is kept once, a different one makes the
    /// key conflicting for good. Every store records by this.
    pub fn after(
        existing: Option<&IssueState>,
        new: &Issued,
    ) -> (IssueState, Result<(), SkipReason>) {
        let next = match existing {
            None => Ok(new.clone()),
            Some(IssueState::Issued(old)) => tripwire_engine::provenance::merge(old, new),
            Some(IssueState::Conflicted) => Err(SkipReason::AccessKeyReused),
        };
        match next {
            Ok(kept) => (IssueState::Issued(Box::new(kept)), Ok(())),
            Err(r) => (IssueState::Conflicted, Err(r)),
        }
    }
}

/// Outcome of recording a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// First delivery.
    New,
    /// Delivered before, and finished or still in flight elsewhere: acknowledge and stop.
    Duplicate,
    /// Delivered before, not finished, and no longer being worked on (a retry): process
    /// again; every step is idempotent.
    Unfinished,
}

/// A one-way flag on an incident: set once a step succeeded, so a retry skips it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// The DETECTED alert went out.
    Alerted,
    /// The responder was asked to contain.
    Invoked,
}

impl Flag {
    /// The flag's attribute name in the incident item.
    pub fn as_str(self) -> &'static str {
        match self {
            Flag::Alerted => "alerted",
            Flag::Invoked => "invoked",
        }
    }
}

/// A key's current incident as stored.
#[derive(Debug, Clone)]
pub struct StoredIncident {
    /// What the window rule needs.
    pub open: OpenIncident,
    /// The incident, with its running instance set and counters.
    pub incident: Incident,
    /// The DETECTED alert went out.
    pub alerted: bool,
    /// The responder was invoked.
    pub invoked: bool,
    /// The containment state whose alert went out, if one did.
    pub containment_alerted: Option<ContainmentState>,
    /// Where containment stands, as last recorded (`released` after `tripwire release`).
    pub containment_state: Option<ContainmentState>,
    /// When the detector opened it, by its clock (unknown for items older than the field).
    pub opened_at: Option<Millis>,
    /// Spans of the key's earlier, closed incidents (the latest few): a late delivery
    /// that falls inside one of them belongs to it and must not open a new incident.
    pub history: Vec<OpenIncident>,
}

impl StoredIncident {
    /// A freshly opened incident, before any of its steps.
    pub fn opened(incident: Incident) -> Self {
        StoredIncident {
            open: incident.as_open(),
            incident,
            alerted: false,
            invoked: false,
            containment_alerted: None,
            containment_state: None,
            opened_at: None,
            history: Vec::new(),
        }
    }

    /// The key's history once this incident is replaced: this one, then its own
    /// history, newest first, at most [`HISTORY`] spans.
    pub fn history_after(&self) -> Vec<OpenIncident> {
        std::iter::once(&self.open)
            .chain(&self.history)
            .take(HISTORY)
            .cloned()
            .collect()
    }
}

/// How many closed incident spans a key remembers.
pub const HISTORY: usize = 20;

// The shared state, split by capability: each pipeline asks only for what it uses
// (the detector for most, the responder for incidents and contained principals, the
// watchdog for heartbeats and steps). What each method promises (conditional writes,
// idempotent flags) is written on it, because the pipelines' exactly-once arguments rest
// on it.

/// The calls each key counted, deduplicated by eventID, with a lease on each while one
/// detector works on it: the window the burst rule reads.
pub trait Calls: Send + Sync {
    /// Records a call (counted, or a failed attempt), deduplicating by eventID. A call
    /// seen before is taken over only when unfinished and its lease has run out.
    fn record(
        &self,
        key: &Key,
        t: &Termination,
        now: Millis,
        lease_until: Millis,
    ) -> impl Future<Output = Result<Recorded, Error>> + Send;

    /// Gives up the lease after a failed attempt, so Lambda's retry can take over at once.
    fn release_lease(
        &self,
        key: &Key,
        t: &Termination,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Marks a call fully processed, so a redelivery is acknowledged as a duplicate.
    fn mark_done(
        &self,
        key: &Key,
        t: &Termination,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// The key's counted calls with eventTime in `[from, to]`, including every write
    /// that finished before the read began.
    fn window(
        &self,
        key: &Key,
        from: Millis,
        to: Millis,
    ) -> impl Future<Output = Result<Vec<WindowEvent>, Error>> + Send;
}

/// Each key's current incident and its running counts. Every write that names an
/// incident `id` succeeds only while that incident is the key's current one; a write
/// whose condition fails is `Ok(false)`/`Ok(None)`.
pub trait Incidents: Send + Sync {
    /// The key's current incident, if any (live or stale: the caller asks `admits`).
    fn incident(
        &self,
        key: &Key,
    ) -> impl Future<Output = Result<Option<StoredIncident>, Error>> + Send;

    /// Opens `incident` unless the key's current incident is no longer `replacing` (or,
    /// with `None`, unless one exists); the replaced one joins the history. Returns
    /// whether this call opened it: of racing callers, exactly one does.
    fn open_incident(
        &self,
        key: &Key,
        incident: &Incident,
        replacing: Option<&StoredIncident>,
        now: Millis,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Adds a counted call to incident `id`: its instances (a set: idempotent), and its
    /// time to the span. `None` when `id` is no longer current.
    fn join_incident(
        &self,
        key: &Key,
        id: &str,
        t: &Termination,
    ) -> impl Future<Output = Result<Option<StoredIncident>, Error>> + Send;

    /// Counts a failed call against incident `id`.
    fn add_attempt(&self, key: &Key, id: &str) -> impl Future<Output = Result<(), Error>> + Send;

    /// Takes the update-alert slot if incident `id` was alerted and its last alert is at
    /// least `gap` old. Opening an incident starts the gap.
    fn claim_update_slot(
        &self,
        key: &Key,
        id: &str,
        now: Millis,
        gap: Millis,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Sets `flag` on incident `id`.
    fn set_flag(
        &self,
        key: &Key,
        id: &str,
        flag: Flag,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Holds incident `id` for the responder until `until`, unless it is being released
    /// or was: `Ok(false)` then, and nothing may be put in place. Release marks an
    /// incident only while no hold is live, so nothing is put in place after the mark.
    fn hold_for_containment(
        &self,
        key: &Key,
        id: &str,
        until: Millis,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Records the responder's containment outcome on incident `id` and ends its hold;
    /// never over `releasing` or `released` (`Ok(false)` then).
    fn record_containment(
        &self,
        key: &Key,
        id: &str,
        state: ContainmentState,
        detail: &str,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Marks incident `id` `releasing` (with `detail`), unless a responder's hold on it
    /// is live at `now`: `Ok(false)` then, or when `id` is no longer current.
    fn mark_releasing(
        &self,
        key: &Key,
        id: &str,
        now: Millis,
        detail: &str,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Closes the key's incident after a release: its span ends long ago, so the next
    /// burst opens a new incident. Returns whether one existed.
    fn close(&self, key: &Key, now: Millis) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Notes that the alert for containment `state` of incident `id` went out.
    fn mark_containment_alerted(
        &self,
        key: &Key,
        id: &str,
        state: ContainmentState,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

/// Where sessions came from (the `AssumeRole*` issue behind each access key) and who
/// decided the terminations a service carried out (initiator calls).
pub trait Sessions: Send + Sync {
    /// The issue of the session behind `access_key`, if recorded and not expired.
    fn issued(
        &self,
        access_key: &str,
    ) -> impl Future<Output = Result<Option<IssueState>, Error>> + Send;

    /// Records the issue of `access_key`'s session, kept until the session expires. The
    /// same issue again is a no-op; a different one marks the key conflicting and is
    /// `Ok(Err(AccessKeyReused))`.
    fn record_issue(
        &self,
        access_key: &str,
        issued: &Issued,
    ) -> impl Future<Output = Result<Result<(), SkipReason>, Error>> + Send;

    /// Records an initiator call (idempotent by eventID).
    fn record_initiation(
        &self,
        initiation: &Initiation,
        now: Millis,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// The initiator calls in `account` and `region` with eventTime in `[from, to]`.
    fn initiations(
        &self,
        account: &str,
        region: &str,
        from: Millis,
        to: Millis,
    ) -> impl Future<Output = Result<Vec<Initiation>, Error>> + Send;

    /// Settles which initiator call a service's termination `event_id` is credited to
    /// (`None`: the service's own lane). The first decision stands and is returned to
    /// every later one, so a redelivery that finds an initiator the first delivery did
    /// not counts where the first did, never in two lanes.
    fn settle_credit(
        &self,
        event_id: &str,
        credit: Option<&Initiation>,
        now: Millis,
    ) -> impl Future<Output = Result<Option<Initiation>, Error>> + Send;
}

/// The canary's heartbeats per account and region, and the StackSet instances not
/// heard from yet: what the watchdog pages coverage on.
pub trait Heartbeats: Send + Sync {
    /// Records a canary heartbeat that arrived at `now`: the (account, region)'s last
    /// heartbeat, and its delivery latency in the day's histogram. A heartbeat older than
    /// the last one recorded (or the same again) changes nothing.
    fn record_heartbeat(
        &self,
        h: &tripwire_engine::armed::Heartbeat,
        now: Millis,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// The last heartbeat of every (account, region) that ever sent one.
    fn heartbeat_states(
        &self,
    ) -> impl Future<Output = Result<Vec<tripwire_engine::armed::HeartbeatState>, Error>> + Send;

    /// Every StackSet instance the watchdog listed that has sent no heartbeat yet.
    fn listed(
        &self,
    ) -> impl Future<Output = Result<Vec<tripwire_engine::armed::Listed>, Error>> + Send;

    /// Writes `l` (replacing the pair's earlier one).
    fn put_listed(
        &self,
        l: &tripwire_engine::armed::Listed,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Forgets a listed pair: it spoke, or it left the StackSet.
    fn forget_listed(
        &self,
        account: &str,
        region: &str,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Notes that `coverage_lost` went out for the silence after heartbeat `last`
    /// (`Some`), or that `coverage_restored` did (`None`).
    fn set_lost_paged(
        &self,
        account: &str,
        region: &str,
        last: Option<Millis>,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

/// A shutdown wave as stored: the wave (its `instance_ids` a sample, its `instances` and
/// `claimed_by` whole; `unclaimed` left for the page to fill), and its page's state.
#[derive(Debug, Clone)]
pub struct StoredWave {
    /// The wave.
    pub wave: tripwire_engine::wave::Wave,
    /// The event that opened it: its retry finishes the opening.
    pub trigger_event_id: String,
    /// The first page went out.
    pub alerted: bool,
    /// Instances CloudTrail has named a caller for.
    pub claimed: usize,
    /// The span of the pair's wave before this one: a late event inside it opens nothing.
    pub previous: Option<(Millis, Millis)>,
}

/// Each account and region's state-change events and its wave. Each instance counts
/// once (its first event, whichever), each instance's caller is the first CloudTrail
/// record that named it, and each instance is credited to at most one wave, once.
pub trait Waves: Send + Sync {
    /// Records an instance's first state-change event with a lease, as
    /// [`Calls::record`] does for calls: a later event for the same instance, or a
    /// redelivery, is `Duplicate` once the first is done.
    fn record_change(
        &self,
        c: &StateChange,
        now: Millis,
        lease_until: Millis,
    ) -> impl Future<Output = Result<Recorded, Error>> + Send;

    /// Settles an instance's event: done, or the lease given up for the retry.
    fn settle_change(
        &self,
        c: &StateChange,
        done: bool,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// The pair's instances whose first event lies in `[from, to]`: (time, instance).
    fn changes(
        &self,
        account: &str,
        region: &str,
        from: Millis,
        to: Millis,
    ) -> impl Future<Output = Result<Vec<(Millis, String)>, Error>> + Send;

    /// Whether any instance of the pair had its first event in `[from, to]` (one item
    /// read at most).
    fn any_change(
        &self,
        account: &str,
        region: &str,
        from: Millis,
        to: Millis,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// The pair's current wave, live or not.
    fn wave(
        &self,
        account: &str,
        region: &str,
    ) -> impl Future<Output = Result<Option<StoredWave>, Error>> + Send;

    /// Makes `w` (counted from zero) the pair's wave if its current one is still
    /// `replacing` (by ID; `None`: none), and lists it as open. `Ok(false)` when another
    /// container won.
    fn open_wave(
        &self,
        w: &tripwire_engine::wave::Wave,
        trigger_event_id: &str,
        replacing: Option<&str>,
        now: Millis,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Credits each of `instances` (recorded) to wave `id` once, and its caller to the
    /// wave if a record named one; widens the wave's span to `t`. The wave after, or
    /// `None` when it is no longer the pair's current one.
    fn join_wave(
        &self,
        account: &str,
        region: &str,
        id: &str,
        instances: &[String],
        t: Millis,
    ) -> impl Future<Output = Result<Option<StoredWave>, Error>> + Send;

    /// Names `principal_arn` the caller of each of `instances` that no record named
    /// already, and credits the wave each joined. Returns the waves (IDs, each once)
    /// where this principal is the caller of an instance that joined one; again on a
    /// redelivery, so a failed page is retried.
    fn name_callers(
        &self,
        account: &str,
        region: &str,
        instances: &[String],
        principal_arn: &str,
        t: Millis,
    ) -> impl Future<Output = Result<Vec<String>, Error>> + Send;

    /// Records that wave `id`'s first page went out at `now` (the update gap starts).
    fn set_wave_alerted(
        &self,
        account: &str,
        region: &str,
        id: &str,
        now: Millis,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Takes wave `id`'s growth-page slot once its first page went out, if its last
    /// page is at least `gap` old.
    fn claim_wave_page(
        &self,
        account: &str,
        region: &str,
        id: &str,
        now: Millis,
        gap: Millis,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    /// The waves opened and not yet closed, as (account, region, wave ID): what the
    /// watchdog looks at for waves past their bound.
    fn open_waves(
        &self,
    ) -> impl Future<Output = Result<Vec<(String, String, String)>, Error>> + Send;

    /// Takes wave `id` off the open list (idempotent).
    fn forget_wave(
        &self,
        account: &str,
        region: &str,
        id: &str,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// The callers records named for `instances` (those that have one).
    fn callers(
        &self,
        account: &str,
        region: &str,
        instances: &[String],
    ) -> impl Future<Output = Result<std::collections::HashMap<String, String>, Error>> + Send;
}

/// One-off steps (paging a tamper event, a watchdog page), claimed once across every
/// container.
pub trait Steps: Send + Sync {
    /// Claims the one-off step `id` (paging a tamper event): `New` the first time,
    /// `Unfinished` when an earlier attempt gave it up or its lease ran out, else
    /// `Duplicate`, as [`Calls::record`] does for calls.
    fn claim_once(
        &self,
        id: &str,
        now: Millis,
        lease_until: Millis,
    ) -> impl Future<Output = Result<Recorded, Error>> + Send;

    /// Settles step `id`: done, so a redelivery is a duplicate; or not, giving up the
    /// lease so Lambda's retry takes over at once.
    fn settle_once(&self, id: &str, done: bool) -> impl Future<Output = Result<(), Error>> + Send;
}

/// Which incident each contained principal was last contained for, so a lifted tripwire
/// policy can be written back.
pub trait ContainedPrincipals: Send + Sync {
    /// Records that `entity` (`role/NAME` or `user/NAME`) in `account` is contained for
    /// the incident `request` names, so a lifted tripwire policy can be written back.
    fn point_contained(
        &self,
        account: &str,
        entity: &str,
        request: &ContainmentRequest,
        now: Millis,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// The incident `entity` in `account` was last contained for, if any.
    fn contained_by(
        &self,
        account: &str,
        entity: &str,
    ) -> impl Future<Output = Result<Option<ContainmentRequest>, Error>> + Send;
}

/// Where the member stacks are deployed or expected, where that is knowable (the
/// StackSet's instances; the organization's accounts in the enabled regions).
pub trait Deployments: Send + Sync {
    /// Every (account, region) that should send heartbeats, with what is known of it.
    fn deployed(
        &self,
    ) -> impl Future<Output = Result<Vec<tripwire_engine::armed::Deployed>, Error>> + Send;
}

/// No list of deployments: the watchdog pages only pairs that have spoken.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDeployments;

impl Deployments for NoDeployments {
    async fn deployed(&self) -> Result<Vec<tripwire_engine::armed::Deployed>, Error> {
        Ok(Vec::new())
    }
}

/// A list that may not be configured.
impl<D: Deployments> Deployments for Option<D> {
    async fn deployed(&self) -> Result<Vec<tripwire_engine::armed::Deployed>, Error> {
        match self {
            Some(d) => d.deployed().await,
            None => Ok(Vec::new()),
        }
    }
}

/// Two lists: every pair either names, once; the first's entry (its status) wins.
impl<A: Deployments, B: Deployments> Deployments for (A, B) {
    async fn deployed(&self) -> Result<Vec<tripwire_engine::armed::Deployed>, Error> {
        let mut out = self.0.deployed().await?;
        let seen: std::collections::BTreeSet<(String, String)> = out
            .iter()
            .map(|d| (d.account.clone(), d.region.clone()))
            .collect();
        for d in self.1.deployed().await? {
            if !seen.contains(&(d.account.clone(), d.region.clone())) {
                out.push(d);
            }
        }
        Ok(out)
    }
}

/// Where alerts go.
pub trait Alerts: Send + Sync {
    /// Publishes `alert`; returns the message ID.
    fn publish(&self, alert: &Alert) -> impl Future<Output = Result<String, Error>> + Send;
}

/// The queue to the responder: delivered at least once, never waited on.
pub trait ContainmentQueue: Send + Sync {
    /// Queues `request` for the responder.
    fn request(
        &self,
        request: &ContainmentRequest,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

/// Why containment did not happen, in words an on-call engineer can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// IAM or STS said no; the message explains.
    Iam(String),
}

/// Containment itself: writes a plan's deny policies on its target.
pub trait Contain: Send + Sync {
    /// The target's ARN as IAM has it now (with its path): records may omit a role's
    /// path, and protection is decided on the full ARN. `Ok(Err(_))` when IAM refuses
    /// or the entity is gone.
    fn current_arn(
        &self,
        plan: &Plan,
    ) -> impl Future<Output = Result<Result<String, Refused>, Error>> + Send;

    /// Writes the plan's policies. `Ok(Err(_))` is a refusal that retrying will not fix;
    /// `Err(_)` is a transient failure worth a retry.
    fn apply(&self, plan: &Plan)
        -> impl Future<Output = Result<Result<(), Refused>, Error>> + Send;
}

/// The account brake: the security account attaches the brake's service control policy
/// to an account through Organizations, as the management account's delegation allows.
pub trait AccountBrakes: Send + Sync {
    /// What Organizations shows of `account` and the brake `policy_id` before attaching.
    /// `Ok(Err(_))` when Organizations refuses (the delegation does not allow it, the
    /// account is not in the organization).
    fn target(
        &self,
        account: &str,
        policy_id: &str,
    ) -> impl Future<Output = Result<Result<containment::BrakeTarget, Refused>, Error>> + Send;

    /// Attaches `policy_id` to `account`; attaching it again succeeds.
    fn attach(
        &self,
        account: &str,
        policy_id: &str,
    ) -> impl Future<Output = Result<Result<(), Refused>, Error>> + Send;

    /// Detaches the brake (the SCP named [`tripwire_engine::names::ACCOUNT_BRAKE_SCP`])
    /// from `account`: its ID, when it was attached.
    fn detach(&self, account: &str) -> impl Future<Output = Result<Option<String>, Error>> + Send;
}

/// What the drill reads back and lifts through the containment role: only the drill
/// role (`tripwire-drill`) is ever read or lifted this way.
pub trait DrillTarget: Send + Sync {
    /// Drops any session the containment port keeps for `account` and assumes the
    /// containment role anew: a session from before a broken trust would hide it for
    /// up to an hour.
    fn fresh_session(
        &self,
        partition: &str,
        account: &str,
    ) -> impl Future<Output = Result<Result<(), Refused>, Error>> + Send;

    /// What IAM holds on the plan's target (the drill role) now.
    fn held(
        &self,
        plan: &Plan,
    ) -> impl Future<Output = Result<Result<tripwire_engine::drill::Held, Refused>, Error>> + Send;

    /// Whether IAM's policy simulator shows `action` explicitly denied to the drill's
    /// session under the plan; `None` where the simulator did not answer.
    fn simulate(
        &self,
        plan: &Plan,
        action: &str,
    ) -> impl Future<Output = Result<Option<bool>, Error>> + Send;

    /// Takes what the plan put on the drill role off again.
    fn lift_drill(
        &self,
        plan: &Plan,
    ) -> impl Future<Output = Result<Result<(), Refused>, Error>> + Send;
}

/// What each account's last drill found, beside the heartbeats.
pub trait Drills: Send + Sync {
    /// Records `d` as its account's last drill.
    fn record_drill(
        &self,
        d: &tripwire_engine::drill::Drilled,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Every account's last drill.
    fn drills(
        &self,
    ) -> impl Future<Output = Result<Vec<tripwire_engine::drill::Drilled>, Error>> + Send;
}

/// The way to the responder for drills: one asynchronous request per account.
pub trait DrillQueue: Send + Sync {
    /// Asks the responder to drill in `request`'s account.
    fn request_drill(
        &self,
        request: &tripwire_engine::drill::DrillRequest,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

/// No Organizations client: every account brake is refused with the reason, and
/// release finds none attached.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoBrakes;

impl NoBrakes {
    fn refused<T>() -> Result<Result<T, Refused>, Error> {
        Ok(Err(Refused::Iam(
            "this deployment has no Organizations client for the account brake".into(),
        )))
    }
}

impl AccountBrakes for NoBrakes {
    async fn target(
        &self,
        _: &str,
        _: &str,
    ) -> Result<Result<containment::BrakeTarget, Refused>, Error> {
        Self::refused()
    }

    async fn attach(&self, _: &str, _: &str) -> Result<Result<(), Refused>, Error> {
        Self::refused()
    }

    async fn detach(&self, _: &str) -> Result<Option<String>, Error> {
        Ok(None)
    }
}

/// Wall-clock milliseconds; tests pass a clock they move by hand.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now(&self) -> Millis;
}

/// The production clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as Millis)
    }
}
