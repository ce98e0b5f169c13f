//! An incident: one burst by one key, from the event that crossed the threshold until
//! the key's window count falls to zero. Its JSON form is the backtest's stable output.

use crate::containment::{self, Plan};
use crate::policy::Policy;
use crate::termination::Termination;
use crate::time::Millis;
use crate::window::{events_in, Key, OpenIncident, WindowCount, WindowEvent};
use serde::{Deserialize, Serialize, Serializer};
use std::collections::BTreeSet;

/// One incident. Its JSON adds `instances`, the count of `instance_ids`: derived when
/// written, never stored beside the set (see [`Incident::view`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Incident {
    /// Always `"incident"`: the JSON-lines record type.
    #[serde(rename = "type")]
    pub record_type: String,
    /// Stable ID, derived from the key and the trigger event.
    pub id: String,
    /// The principal (role ARN with path, user ARN, …).
    pub principal_arn: String,
    /// CloudTrail `userIdentity.type`.
    pub principal_type: String,
    /// The principal's own account.
    pub principal_account: Option<String>,
    /// Where the instances died.
    pub account: String,
    /// Region of the trigger event.
    pub region: String,
    /// Every region the incident's calls were made in.
    pub regions: BTreeSet<String>,
    /// The distinct instances terminated over the whole incident, sorted (confirmed:
    /// named by a call that succeeded).
    pub instance_ids: BTreeSet<String>,
    /// Instances named only by `OperationNotPermitted` calls: counted as terminated,
    /// but CloudTrail does not confirm which died. Disjoint from `instance_ids`; the
    /// JSON lists both in `instance_ids` and counts these in `instances_unconfirmed`.
    #[serde(skip)]
    pub unconfirmed_ids: BTreeSet<String>,
    /// The window count when the incident opened.
    pub trigger_count: u32,
    /// The threshold that applied.
    pub threshold: u32,
    /// Whether the caller came from another account.
    pub cross_account: bool,
    /// eventTime of the first termination in the triggering window.
    #[serde(with = "crate::time::rfc3339")]
    pub first_event_time: Millis,
    /// eventTime of the event that crossed the threshold.
    #[serde(with = "crate::time::rfc3339")]
    pub trigger_time: Millis,
    /// eventTime of the latest termination in the incident.
    #[serde(with = "crate::time::rfc3339")]
    pub last_event_time: Millis,
    /// eventID of the event that crossed the threshold.
    pub trigger_event_id: String,
    /// Failed (denied, dry-run) calls by the key during the incident.
    pub attempts: u64,
    /// Source IPs seen (at most [`SAMPLE`]).
    pub source_ips: BTreeSet<String>,
    /// User agents seen (at most [`SAMPLE`]).
    pub user_agents: BTreeSet<String>,
    /// The containment plan; its JSON is the summary, without policy documents.
    pub containment: Plan,
}

/// The incident's JSON, field for field; `sample` caps how many instance IDs it lists
/// (an alert must fit in an SNS message) while `instances` stays the full count.
#[derive(Serialize)]
pub struct View<'a> {
    #[serde(rename = "type")]
    record_type: &'a str,
    id: &'a str,
    principal_arn: &'a str,
    principal_type: &'a str,
    principal_account: &'a Option<String>,
    account: &'a str,
    region: &'a str,
    regions: &'a BTreeSet<String>,
    instances: usize,
    instances_unconfirmed: usize,
    #[serde(serialize_with = "first_ids")]
    instance_ids: (&'a BTreeSet<String>, &'a BTreeSet<String>, usize),
    trigger_count: u32,
    threshold: u32,
    cross_account: bool,
    #[serde(with = "crate::time::rfc3339")]
    first_event_time: Millis,
    #[serde(with = "crate::time::rfc3339")]
    trigger_time: Millis,
    #[serde(with = "crate::time::rfc3339")]
    last_event_time: Millis,
    trigger_event_id: &'a str,
    attempts: u64,
    source_ips: &'a BTreeSet<String>,
    user_agents: &'a BTreeSet<String>,
    #[serde(serialize_with = "as_summary")]
    containment: &'a Plan,
}

/// The first `n` of two disjoint sorted sets, merged in order.
fn first_ids<S: Serializer>(
    ids: &(&BTreeSet<String>, &BTreeSet<String>, usize),
    s: S,
) -> Result<S::Ok, S::Error> {
    let (a, b, n) = *ids;
    let (mut a, mut b) = (a.iter().peekable(), b.iter().peekable());
    s.collect_seq(
        std::iter::from_fn(|| match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x <= y => a.next(),
            (Some(_), Some(_)) => b.next(),
            (Some(_), None) => a.next(),
            (None, _) => b.next(),
        })
        .take(n),
    )
}

impl Serialize for Incident {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.view(usize::MAX).serialize(s)
    }
}

/// How many distinct source IPs and user agents an incident keeps.
pub const SAMPLE: usize = 5;

fn as_summary<S: Serializer>(p: &&Plan, s: S) -> Result<S::Ok, S::Error> {
    p.summary().serialize(s)
}

/// A stable incident ID: the same burst gets the same ID in the backtest and the detector.
pub fn incident_id(key: &Key, trigger_event_id: &str) -> String {
    format!("inc-{:016x}", crate::fnv1a(&[&key.id(), trigger_event_id]))
}

impl Incident {
    /// Opens an incident on the event `t` that crossed `threshold`.
    pub fn open(
        key: &Key,
        t: &Termination,
        peak: WindowCount,
        threshold: u32,
        cross_account: bool,
        plan: Plan,
    ) -> Self {
        let mut inc = Incident {
            record_type: "incident".into(),
            id: incident_id(key, &t.event_id),
            principal_arn: key.principal_arn.clone(),
            principal_type: t.principal.kind.type_name().to_owned(),
            principal_account: t.principal.account.clone(),
            account: key.account.clone(),
            region: t.region.clone(),
            regions: BTreeSet::new(),
            instance_ids: BTreeSet::new(),
            unconfirmed_ids: BTreeSet::new(),
            trigger_count: peak.count,
            threshold,
            cross_account,
            first_event_time: peak.first_time,
            trigger_time: t.event_time,
            last_event_time: t.event_time,
            trigger_event_id: t.event_id.clone(),
            attempts: 0,
            source_ips: BTreeSet::new(),
            user_agents: BTreeSet::new(),
            containment: plan,
        };
        inc.absorb(t);
        inc
    }

    /// Adds a termination that belongs to this incident.
    pub fn absorb(&mut self, t: &Termination) {
        self.add_instances(&t.instance_ids, t.unconfirmed);
        self.first_event_time = self.first_event_time.min(t.event_time);
        self.last_event_time = self.last_event_time.max(t.event_time);
        self.regions.insert(t.region.clone());
        for (set, v) in [
            (&mut self.source_ips, &t.source_ip),
            (&mut self.user_agents, &t.user_agent),
        ] {
            if let Some(v) = v {
                if set.len() < SAMPLE {
                    set.insert(v.clone());
                }
            }
        }
    }

    /// Opens the incident that `t` triggers, `peak` being the window that crossed the
    /// threshold: the containment plan for its principal (revoking sessions issued before
    /// `plan_time`), and the instances of every call that filled that window. The one
    /// way an incident opens, in the backtest and the detector alike.
    #[allow(clippy::too_many_arguments)]
    pub fn trigger(
        policy: &Policy,
        key: &Key,
        t: &Termination,
        peak: WindowCount,
        threshold: u32,
        cross_account: bool,
        events: &[WindowEvent],
        plan_time: Millis,
    ) -> Self {
        let plan = containment::plan(policy, &t.principal, plan_time);
        let mut inc = Incident::open(key, t, peak, threshold, cross_account, plan);
        for e in events_in(events, peak) {
            inc.add_instances(&e.instance_ids, e.unconfirmed);
        }
        inc
    }

    /// Adds a call's instances; `unconfirmed` for an `OperationNotPermitted` call. The
    /// result does not depend on the order calls arrive in: an instance is unconfirmed
    /// while no successful call has named it.
    pub fn add_instances(&mut self, ids: &[String], unconfirmed: bool) {
        for id in ids {
            if unconfirmed {
                if !self.instance_ids.contains(id) {
                    self.unconfirmed_ids.insert(id.clone());
                }
            } else {
                self.unconfirmed_ids.remove(id);
                self.instance_ids.insert(id.clone());
            }
        }
    }

    /// Distinct instances terminated over the whole incident, unconfirmed included.
    pub fn instances(&self) -> usize {
        self.instance_ids.len() + self.unconfirmed_ids.len()
    }

    /// The incident's JSON with at most `sample` instance IDs listed.
    pub fn view(&self, sample: usize) -> View<'_> {
        View {
            record_type: &self.record_type,
            id: &self.id,
            principal_arn: &self.principal_arn,
            principal_type: &self.principal_type,
            principal_account: &self.principal_account,
            account: &self.account,
            region: &self.region,
            regions: &self.regions,
            instances: self.instances(),
            instances_unconfirmed: self.unconfirmed_ids.len(),
            instance_ids: (&self.instance_ids, &self.unconfirmed_ids, sample),
            trigger_count: self.trigger_count,
            threshold: self.threshold,
            cross_account: self.cross_account,
            first_event_time: self.first_event_time,
            trigger_time: self.trigger_time,
            last_event_time: self.last_event_time,
            trigger_event_id: &self.trigger_event_id,
            attempts: self.attempts,
            source_ips: &self.source_ips,
            user_agents: &self.user_agents,
            containment: &self.containment,
        }
    }

    /// The part of this incident the window rule needs.
    pub fn as_open(&self) -> OpenIncident {
        OpenIncident {
            id: self.id.clone(),
            first_time: self.first_event_time,
            last_time: self.last_event_time,
        }
    }
}
