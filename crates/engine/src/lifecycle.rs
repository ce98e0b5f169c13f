//! One lifecycle for a watched call, shared by the detector and the backtest: which lanes
//! it counts in, whether a failed call joins an open incident as an attempt, how a
//! burst that crossed its threshold opens an incident (its initiator included), and the
//! degraded open when the window store is down. The detector keeps the windows in
//! DynamoDB and the backtest in memory; both decide with these functions, so the backtest
//! predicts the detector.
//!
//! It opens incidents, so it stands on the decisions floor, at its bottom: counting
//! (`window`) only counts.

use crate::incident::Incident;
use crate::initiator::{self, Initiation};
use crate::policy::Policy;
use crate::termination::Termination;
use crate::time::Millis;
use crate::window::{
    classify, lanes, Classification, Key, LaneCount, OpenIncident, WindowCount, WindowEvent,
};

/// Where one call counts: its primary classification, the alert-only lanes it also
/// counts in, and the two facts every lane shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    /// The burst lane's verdict.
    pub primary: Classification,
    /// The alert-only lanes (`service`, `attempt`, `account`) it also counts in.
    pub lanes: Vec<LaneCount>,
    /// Whether the chain behind the call began outside the account (every lane
    /// reports what the primary found).
    pub cross_account: bool,
    /// The principal's window.
    pub window: Millis,
}

/// Routes one call through the policy.
pub fn route(policy: &Policy, t: &Termination) -> Routed {
    let primary = classify(policy, t);
    let lanes = lanes(policy, t, &primary);
    let cross_account = matches!(
        primary,
        Classification::Counted {
            cross_account: true,
            ..
        }
    );
    Routed {
        primary,
        lanes,
        cross_account,
        window: policy.window_for(&t.principal.arn, t.kind()),
    }
}

/// Where the calls a service's termination may be credited to lie: its account and
/// region, up to [`initiator::LOOKBACK_MS`] before it. `None` when `t` is not a
/// service-linked role's (or AWS service's) successful termination. The choice among
/// the calls found is [`initiator::credit`]'s; the detector settles it once per eventID
/// (`Sessions::settle_credit`), so a redelivery counts where the first delivery did.
pub fn credit_search(t: &Termination) -> Option<InitiatorSearch> {
    let service = initiator::creditable(t)?;
    Some(InitiatorSearch {
        service,
        account: t.account.clone(),
        region: t.region.clone(),
        from: t.event_time - initiator::LOOKBACK_MS,
        to: t.event_time,
    })
}

/// Whether a failed call adds to the open incident of its key as an attempt.
pub fn attempt_joins(open: &OpenIncident, t: &Termination, window: Millis) -> bool {
    open.admits(t.event_time, window)
}

/// Where to look for the initiator of an incident a service's terminations opened: the
/// service, and the account, region and time span its deciding call must lie in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitiatorSearch {
    /// The service that carried the terminations out.
    pub service: &'static str,
    /// The account.
    pub account: String,
    /// The region.
    pub region: String,
    /// The earliest time a deciding call may have.
    pub from: Millis,
    /// The latest (the call that opened the incident).
    pub to: Millis,
}

/// An incident opened by `t`, the call whose window count `peak` crossed `threshold`,
/// from the calls in `events` (the key's window around it). `now` dates the plan. The
/// initiator is not named yet: when a service carried the calls out, the returned
/// [`InitiatorSearch`] says where its deciding call lies, for [`name_initiator`].
#[allow(clippy::too_many_arguments)]
pub fn open(
    policy: &Policy,
    key: &Key,
    t: &Termination,
    peak: WindowCount,
    threshold: u32,
    cross_account: bool,
    events: &[WindowEvent],
    now: Millis,
) -> (Incident, Option<InitiatorSearch>) {
    let incident = Incident::trigger(policy, key, t, peak, threshold, cross_account, events, now);
    // A credited call names its initiator already.
    let search = (t.credit.is_none())
        .then(|| initiator::carried_out_by(t))
        .flatten()
        .map(|service| InitiatorSearch {
            service,
            account: key.account.clone(),
            region: t.region.clone(),
            from: incident.first_event_time - initiator::LOOKBACK_MS,
            to: t.event_time,
        });
    (incident, search)
}

/// Names the latest plausible initiator among `candidates` (any superset of the calls
/// in the search's account, region and span).
pub fn name_initiator<'a>(
    incident: &mut Incident,
    search: &InitiatorSearch,
    candidates: impl IntoIterator<Item = &'a Initiation>,
) {
    incident.initiator = initiator::pick(
        candidates,
        search.service,
        &search.account,
        &search.region,
        incident.first_event_time,
        search.to,
    );
}

/// Where the precursors an incident lists lie: its principal's precursor lane in its
/// account, from one precursor window before its first call up to `to` (its trigger).
/// `None` for the lanes that list none: a precursor burst lists its own calls, and the
/// service and account lanes count no one principal's preparation.
pub fn precursor_search(
    policy: &Policy,
    incident: &Incident,
    to: Millis,
) -> Option<PrecursorSearch> {
    let lane = incident.kind();
    let principal = incident.principal_arn()?;
    if !matches!(
        lane,
        crate::window::Lane::Burst | crate::window::Lane::Attempt
    ) {
        return None;
    }
    let window = policy.window_for(principal, crate::catalogue::PRECURSOR);
    Some(PrecursorSearch {
        key: Key::of(
            crate::window::Lane::Precursor,
            principal,
            &incident.account,
            crate::catalogue::PRECURSOR,
        ),
        from: incident.first_event_time - window,
        to,
    })
}

/// A principal's precursor lane, and the span an incident lists it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrecursorSearch {
    /// The precursor lane's key.
    pub key: Key,
    /// The earliest eventTime listed.
    pub from: Millis,
    /// The latest.
    pub to: Millis,
}

impl PrecursorSearch {
    /// Lists on `incident` the precursors among `events` (any superset of the key's
    /// calls in the span).
    pub fn list<'e>(
        &self,
        incident: &mut Incident,
        events: impl IntoIterator<Item = &'e WindowEvent>,
    ) {
        incident.add_precursors(
            events
                .into_iter()
                .filter(|e| e.event_time >= self.from && e.event_time <= self.to),
        );
    }
}

/// With the window store down, what one call proves by itself: an incident when it alone
/// reaches the threshold (one cross-account instance, a call with many IDs), else
/// `None`. Its containment is planned but waits for the incident to be recorded.
pub fn degraded(
    policy: &Policy,
    key: &Key,
    t: &Termination,
    threshold: u32,
    cross_account: bool,
    now: Millis,
) -> Option<Incident> {
    let count = u32::try_from(t.instance_ids.len()).unwrap_or(u32::MAX);
    if count < threshold {
        return None;
    }
    let alone = WindowCount {
        count,
        first_time: t.event_time,
        last_time: t.event_time,
    };
    Some(Incident::trigger(
        policy,
        key,
        t,
        alone,
        threshold,
        cross_account,
        &[],
        now,
    ))
}
