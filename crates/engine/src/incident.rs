//! An incident: one burst by one key, from the event that crossed the threshold until
//! the key's window count falls to zero. Its JSON form is the backtest's stable output.

use crate::containment::{self, Culprit, Plan, OTHER_SESSIONS};
use crate::initiator::{Initiator, Via};
use crate::policy::Policy;
use crate::provenance::Origin;
use crate::termination::Termination;
use crate::time::Millis;
use crate::window::{events_in, Described, Key, Lane, OpenIncident, WindowCount, WindowEvent};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::{BTreeMap, BTreeSet};

/// One incident. Its JSON adds `instances`, the count of `instance_ids`: derived when
/// written, never stored beside the set (see [`Incident::view`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Incident {
    /// Always `"incident"`: the JSON-lines record type.
    #[serde(rename = "type")]
    pub record_type: String,
    /// Stable ID, derived from the key and the trigger event.
    pub id: String,
    /// Which rule opened it, and whose burst it is. In JSON: `kind` (`burst`,
    /// `service_burst`, `attempt_burst`, `account_burst`; an alert's JSON, whose `kind`
    /// is the alert's, carries it as `incident_kind`) and `principal_arn` (`null` for an
    /// account burst, which lists its `principals`).
    #[serde(flatten, deserialize_with = "subject_from_json")]
    pub subject: Subject,
    /// CloudTrail `userIdentity.type`.
    pub principal_type: String,
    /// The principal's own account.
    pub principal_account: Option<String>,
    /// What its calls destroyed (`ec2:instance`, `rds:db`, …).
    #[serde(default = "instances_kind")]
    pub resource_type: String,
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
    /// Instances counted but not listed in the two sets: the live store keeps a sample
    /// of a large incident's IDs (every ID stays in its calls' items, for
    /// `tripwire incident export`).
    #[serde(skip)]
    pub unlisted: Unlisted,
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
    /// Where the chain of sessions behind the trigger call began, when joined.
    #[serde(default)]
    pub origin: Option<Origin>,
    /// Who decided the terminations a service carried out, when known.
    #[serde(default)]
    pub initiator: Option<Initiator>,
    /// When the incident's trigger was a service's termination credited to its
    /// initiator (the incident's principal): the service and the role it terminated with.
    #[serde(default)]
    pub via: Option<Via>,
    /// Instances per session name (counted per call), at most [`SESSIONS_KEPT`] names;
    /// the JSON lists the top ten.
    #[serde(default, deserialize_with = "sessions_from_json")]
    pub sessions: BTreeMap<String, u64>,
    /// Account bursts: the principals that contributed (at most [`PRINCIPALS_KEPT`]).
    #[serde(default)]
    pub principals: BTreeSet<String>,
    /// Attempt bursts: the error codes seen.
    #[serde(default)]
    pub error_codes: BTreeSet<String>,
    /// What identified the sessions behind the calls.
    #[serde(default)]
    pub attribution: Attribution,
    /// The principal's precursors (protections it removed) from one precursor window
    /// before the incident's first call up to its trigger, oldest first (at most
    /// [`PRECURSORS_KEPT`]); for a `precursor_burst`, its own calls.
    #[serde(default)]
    pub precursors: Vec<Precursor>,
}

/// One precursor an incident lists: a call that removed a protection.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Precursor {
    /// When (first: the list is in time order).
    #[serde(with = "crate::time::rfc3339")]
    pub event_time: Millis,
    /// `ModifyInstanceAttribute`, `ModifyDBInstance`, …
    pub event_name: String,
    /// What it left unprotected.
    pub resources: Vec<String>,
    /// Its eventID.
    pub event_id: String,
}

/// How many precursors an incident lists.
pub const PRECURSORS_KEPT: usize = 50;

fn instances_kind() -> String {
    crate::catalogue::EC2_INSTANCE.to_owned()
}

/// Instances an incident counts beyond the IDs it lists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unlisted {
    /// Confirmed instances not in `instance_ids`.
    pub confirmed: u64,
    /// Unconfirmed instances not in `unconfirmed_ids`.
    pub unconfirmed: u64,
}

/// The identifiers seen on an incident's calls (each set at most [`SAMPLE`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribution {
    /// `userIdentity.principalId`.
    #[serde(default)]
    pub principal_ids: BTreeSet<String>,
    /// `sourceIdentity`.
    #[serde(default)]
    pub source_identities: BTreeSet<String>,
    /// `userIdentity.accessKeyId`.
    #[serde(default)]
    pub access_key_ids: BTreeSet<String>,
    /// `vpcEndpointId`: the calls came from inside a network through this endpoint.
    #[serde(default)]
    pub vpc_endpoint_ids: BTreeSet<String>,
    /// `webIdFederationData.federatedProvider`.
    #[serde(default)]
    pub web_identity_providers: BTreeSet<String>,
    /// `invokedBy`: services that made calls on the principal's behalf.
    #[serde(default)]
    pub invoked_by: BTreeSet<String>,
    /// Any call made with console session credentials.
    #[serde(default)]
    pub from_console: bool,
    /// Any call made with instance-profile credentials (`ec2RoleDelivery`): every
    /// instance sharing the profile holds them.
    #[serde(default)]
    pub instance_profile: bool,
    /// Counted calls that carried no `sourceIdentity`: a scope by source identity needs
    /// every call to carry one.
    #[serde(default)]
    pub without_source_identity: u64,
    /// Counted calls made without instance-profile credentials: the instance scope needs
    /// every call to carry `ec2RoleDelivery` (a session name alone anyone can choose).
    #[serde(default)]
    pub without_instance_profile: u64,
    /// Counted calls no service made (no `invokedBy`): a service role is exempt only
    /// when its service made every call.
    #[serde(default)]
    pub without_invoked_by: u64,
}

/// Adds `v` to `set` while it holds fewer than [`SAMPLE`].
fn sample(set: &mut BTreeSet<String>, v: &Option<String>) {
    if let Some(v) = v {
        if set.len() < SAMPLE {
            set.insert(v.clone());
        }
    }
}

impl Attribution {
    /// Adds what one counted call's session shows.
    pub fn add(&mut self, d: &Described) {
        sample(&mut self.principal_ids, &d.principal_id);
        sample(&mut self.vpc_endpoint_ids, &d.vpc_endpoint_id);
        sample(&mut self.web_identity_providers, &d.web_identity_provider);
        sample(&mut self.invoked_by, &d.invoked_by);
        self.from_console |= d.from_console;
        self.instance_profile |= d.instance_profile;
        self.without_instance_profile += u64::from(!d.instance_profile);
        self.without_invoked_by += u64::from(d.invoked_by.is_none());
    }

    /// Adds one counted call's source identity (or its absence).
    pub fn add_source_identity(&mut self, source_identity: Option<&String>) {
        match source_identity {
            Some(v)
                if self.source_identities.len() < SAMPLE || self.source_identities.contains(v) =>
            {
                self.source_identities.insert(v.clone());
            }
            // Past the sample, a new identity still means more than one.
            Some(_) => {}
            None => self.without_source_identity += 1,
        }
    }
}

/// How many session names an incident counts instances for; later names are summed
/// under [`OTHER_SESSIONS`], so a script minting a session per call cannot grow it.
pub const SESSIONS_KEPT: usize = 100;
/// How many sessions the JSON lists.
pub const SESSIONS_LISTED: usize = 10;
/// How many contributing principals an account burst lists.
pub const PRINCIPALS_KEPT: usize = 50;

/// Whose burst an incident is, by lane: every lane but the account's counts one
/// principal, and an account burst has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// One principal's distinct instances: the lane that contains.
    Burst(String),
    /// One service-linked role's or AWS service identity's.
    Service(String),
    /// One principal's failed calls.
    Attempt(String),
    /// Every counted principal's in one account.
    Account,
    /// One principal's removed protections.
    Precursor(String),
}

impl Subject {
    /// The subject of `lane` for `principal_arn` (ignored for the account lane).
    pub fn new(lane: Lane, principal_arn: &str) -> Subject {
        match lane {
            Lane::Burst => Subject::Burst(principal_arn.to_owned()),
            Lane::Service => Subject::Service(principal_arn.to_owned()),
            Lane::Attempt => Subject::Attempt(principal_arn.to_owned()),
            Lane::Account => Subject::Account,
            Lane::Precursor => Subject::Precursor(principal_arn.to_owned()),
        }
    }

    /// The lane.
    pub fn lane(&self) -> Lane {
        match self {
            Subject::Burst(_) => Lane::Burst,
            Subject::Service(_) => Lane::Service,
            Subject::Attempt(_) => Lane::Attempt,
            Subject::Account => Lane::Account,
            Subject::Precursor(_) => Lane::Precursor,
        }
    }

    /// The principal, for every lane but the account's.
    pub fn principal_arn(&self) -> Option<&str> {
        match self {
            Subject::Burst(p)
            | Subject::Service(p)
            | Subject::Attempt(p)
            | Subject::Precursor(p) => Some(p),
            Subject::Account => None,
        }
    }
}

/// The JSON fields a [`Subject`] is read from.
#[derive(Deserialize)]
struct SubjectJson {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    incident_kind: Option<Lane>,
    #[serde(default)]
    principal_arn: Option<String>,
}

fn subject_from_json<'de, D: Deserializer<'de>>(d: D) -> Result<Subject, D::Error> {
    let j = SubjectJson::deserialize(d)?;
    // An alert's `kind` is the alert's (`detected`, …): then the lane is `incident_kind`.
    // Items written before lanes existed have no kind: bursts.
    let lane = j
        .incident_kind
        .or_else(|| {
            j.kind
                .and_then(|k| serde_json::from_value(serde_json::Value::String(k)).ok())
        })
        .unwrap_or_default();
    match (lane, j.principal_arn) {
        (Lane::Account, _) => Ok(Subject::Account),
        (lane, Some(p)) if !p.is_empty() => Ok(Subject::new(lane, &p)),
        (lane, _) => Err(serde::de::Error::custom(format!(
            "an incident of the {} lane names its principal",
            lane.kind()
        ))),
    }
}

/// A session and its instances, as the JSON lists it.
#[derive(Serialize, Deserialize)]
struct SessionCount {
    name: String,
    instances: u64,
}

fn sessions_from_json<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, u64>, D::Error> {
    Ok(Vec::<SessionCount>::deserialize(d)?
        .into_iter()
        .map(|s| (s.name, s.instances))
        .collect())
}

fn top_sessions<S: Serializer>(m: &&BTreeMap<String, u64>, s: S) -> Result<S::Ok, S::Error> {
    let mut v: Vec<(&String, &u64)> = m.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    s.collect_seq(
        v.into_iter()
            .take(SESSIONS_LISTED)
            .map(|(n, i)| SessionCount {
                name: n.clone(),
                instances: *i,
            }),
    )
}

/// The incident's JSON, field for field; `sample` caps how many instance IDs it lists
/// (an alert must fit in an SNS message) while `instances` stays the full count.
#[derive(Serialize)]
pub struct View<'a> {
    #[serde(rename = "type")]
    record_type: &'a str,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<Lane>,
    /// In an alert, whose own `kind` is the alert's.
    #[serde(skip_serializing_if = "Option::is_none")]
    incident_kind: Option<Lane>,
    principal_arn: Option<&'a str>,
    principal_type: &'a str,
    principal_account: &'a Option<String>,
    resource_type: &'a str,
    account: &'a str,
    region: &'a str,
    regions: &'a BTreeSet<String>,
    instances: usize,
    instances_unconfirmed: usize,
    #[serde(serialize_with = "first_ids")]
    instance_ids: (&'a BTreeSet<String>, &'a BTreeSet<String>, usize),
    /// The same IDs under the name every type shares.
    #[serde(serialize_with = "first_ids")]
    resources: (&'a BTreeSet<String>, &'a BTreeSet<String>, usize),
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
    origin: &'a Option<Origin>,
    initiator: &'a Option<Initiator>,
    via: &'a Option<Via>,
    #[serde(serialize_with = "top_sessions")]
    sessions: &'a BTreeMap<String, u64>,
    principals: &'a BTreeSet<String>,
    error_codes: &'a BTreeSet<String>,
    attribution: &'a Attribution,
    precursors: &'a [Precursor],
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
    format!(
        "inc-{:016x}",
        crate::record::fnv1a(&[&key.id(), trigger_event_id])
    )
}

impl Incident {
    /// The evidence this incident holds: what its containment scope is chosen on.
    pub fn culprit(&self) -> Culprit {
        let a = &self.attribution;
        Culprit {
            sessions: self.sessions.keys().cloned().collect(),
            principal_ids: a.principal_ids.iter().cloned().collect(),
            source_identities: a.source_identities.iter().cloned().collect(),
            without_source_identity: a.without_source_identity,
            instance_profile: a.instance_profile,
            without_instance_profile: a.without_instance_profile,
            invoked_by: a.invoked_by.iter().cloned().collect(),
            without_invoked_by: a.without_invoked_by,
            provider_source_identity: self
                .origin
                .as_ref()
                .and_then(|o| o.provider_source_identity())
                .map(str::to_owned),
            access_keys: a.access_key_ids.iter().cloned().collect(),
            origin_principal: self.origin.as_ref().and_then(|o| o.principal_arn.clone()),
        }
    }

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
            subject: Subject::new(key.lane, &t.principal.arn),
            principal_type: t.principal.kind.type_name().to_owned(),
            principal_account: t.principal.account.clone(),
            resource_type: t.kind().to_owned(),
            account: key.account.clone(),
            region: t.region.clone(),
            regions: BTreeSet::new(),
            instance_ids: BTreeSet::new(),
            unconfirmed_ids: BTreeSet::new(),
            unlisted: Unlisted::default(),
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
            origin: t.origin.clone(),
            initiator: t.credit.as_ref().map(|c| c.initiator.clone()),
            via: t.credit.as_ref().map(|c| c.via.clone()),
            sessions: BTreeMap::new(),
            principals: BTreeSet::new(),
            error_codes: BTreeSet::new(),
            attribution: Attribution::default(),
            precursors: Vec::new(),
        };
        inc.absorb(t);
        inc
    }

    /// Adds a termination that belongs to this incident.
    pub fn absorb(&mut self, t: &Termination) {
        self.count(&WindowEvent::of(t, self.kind()));
        self.first_event_time = self.first_event_time.min(t.event_time);
        self.last_event_time = self.last_event_time.max(t.event_time);
        // A session key (`ASIA…`) identifies the run; the window keeps only users' keys.
        sample(
            &mut self.attribution.access_key_ids,
            &t.session.access_key_id,
        );
        if self.origin.is_none() {
            self.origin.clone_from(&t.origin);
        }
    }

    /// Counts one call as the incident's lane does: where it came from (whatever the
    /// lane), its instances (attempts for the attempt lane), its session, and for an
    /// account burst its principal.
    pub fn count(&mut self, e: &WindowEvent) {
        let d = &e.described;
        if let Some(r) = &d.region {
            self.regions.insert(r.clone());
        }
        sample(&mut self.source_ips, &d.source_ip);
        sample(&mut self.user_agents, &d.user_agent);
        self.attribution.add(d);
        if self.kind() == Lane::Attempt {
            self.attempts += 1;
            if let Some(code) = &e.error_code {
                self.error_codes.insert(code.clone());
            }
            return;
        }
        self.add_instances(&e.instance_ids, e.unconfirmed);
        self.attribution
            .add_source_identity(e.source_identity.as_ref());
        sample(&mut self.attribution.access_key_ids, &e.access_key);
        if let Some(name) = &e.session {
            self.add_session(name, e.instance_ids.len() as u64);
        }
        if let Some(p) = &e.principal {
            if self.principals.len() < PRINCIPALS_KEPT {
                self.principals.insert(p.clone());
            }
        }
        if self.kind() == Lane::Precursor {
            self.add_precursors(std::iter::once(e));
        }
    }

    /// Lists the precursors among `events` (window events of the principal's precursor
    /// lane), each once, in time order, at most [`PRECURSORS_KEPT`] (the earliest).
    pub fn add_precursors<'e>(&mut self, events: impl IntoIterator<Item = &'e WindowEvent>) {
        for e in events {
            let Some(name) = &e.event_name else { continue };
            if self.precursors.iter().any(|p| p.event_id == e.event_id) {
                continue;
            }
            self.precursors.push(Precursor {
                event_time: e.event_time,
                event_name: name.clone(),
                resources: e.instance_ids.clone(),
                event_id: e.event_id.clone(),
            });
        }
        self.precursors.sort();
        self.precursors.truncate(PRECURSORS_KEPT);
    }

    /// Adds `instances` to session `name`'s count.
    pub fn add_session(&mut self, name: &str, instances: u64) {
        let name = if self.sessions.contains_key(name) || self.sessions.len() < SESSIONS_KEPT {
            name
        } else {
            OTHER_SESSIONS
        };
        *self.sessions.entry(name.to_owned()).or_default() += instances;
    }

    /// Opens the incident that `t` triggers, `peak` being the window that crossed the
    /// threshold: the containment plan for its principal (revoking sessions issued before
    /// `plan_time`; none for the alert-only lanes), and every call that filled that
    /// window. The one way an incident opens, in the backtest and the detector alike.
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
        let mut inc = Incident::open(key, t, peak, threshold, cross_account, Plan::alert_only(""));
        for e in events_in(events, peak).filter(|e| e.event_id != t.event_id) {
            inc.count(e);
        }
        // The scope is chosen on every call that filled the window.
        inc.containment = match key.lane {
            Lane::Burst => match containment::stale(
                policy,
                &t.principal.arn,
                &inc.resource_type,
                t.event_time,
                plan_time,
                t.replay.as_deref(),
            ) {
                Some(why) => Plan::alert_only(why),
                None => containment::plan(policy, &t.principal, &inc.culprit(), &inc.resource_type),
            },
            lane => Plan::alert_only(format!(
                "alert only: the {} lane never contains",
                lane.kind()
            )),
        };
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
        self.instance_ids.len() + self.unconfirmed_ids.len() + self.unlisted_sum()
    }

    /// Unconfirmed instances, listed or not.
    pub fn instances_unconfirmed(&self) -> usize {
        self.unconfirmed_ids.len()
            + usize::try_from(self.unlisted.unconfirmed).unwrap_or(usize::MAX)
    }

    fn unlisted_sum(&self) -> usize {
        usize::try_from(
            self.unlisted
                .confirmed
                .saturating_add(self.unlisted.unconfirmed),
        )
        .unwrap_or(usize::MAX)
    }

    /// The incident's JSON with at most `sample` instance IDs listed.
    pub fn view(&self, sample: usize) -> View<'_> {
        View {
            record_type: &self.record_type,
            id: &self.id,
            kind: Some(self.kind()),
            incident_kind: None,
            principal_arn: self.subject.principal_arn(),
            principal_type: &self.principal_type,
            principal_account: &self.principal_account,
            resource_type: &self.resource_type,
            account: &self.account,
            region: &self.region,
            regions: &self.regions,
            instances: self.instances(),
            instances_unconfirmed: self.instances_unconfirmed(),
            instance_ids: (&self.instance_ids, &self.unconfirmed_ids, sample),
            resources: (&self.instance_ids, &self.unconfirmed_ids, sample),
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
            origin: &self.origin,
            initiator: &self.initiator,
            via: &self.via,
            sessions: &self.sessions,
            principals: &self.principals,
            error_codes: &self.error_codes,
            attribution: &self.attribution,
            precursors: &self.precursors,
        }
    }

    /// [`Incident::view`] for an alert's JSON, where `kind` is the alert's and the
    /// incident's is `incident_kind`.
    pub fn alert_view(&self, sample: usize) -> View<'_> {
        View {
            kind: None,
            incident_kind: Some(self.kind()),
            ..self.view(sample)
        }
    }

    /// The window key this incident was counted under.
    pub fn key(&self) -> Key {
        Key::of(
            self.kind(),
            self.principal_arn().unwrap_or_default(),
            &self.account,
            &self.resource_type,
        )
    }

    /// The lane that opened it.
    pub fn kind(&self) -> Lane {
        self.subject.lane()
    }

    /// Whose burst it is; `None` for an account burst.
    pub fn principal_arn(&self) -> Option<&str> {
        self.subject.principal_arn()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// An incident line with `kind`, `principal_arn` and, for an alert, `incident_kind`.
    fn incident(fields: serde_json::Value) -> Result<Incident, String> {
        let mut v = serde_json::json!({"type": "incident", "id": "inc-1",
            "principal_type": "AssumedRole", "principal_account": null, "account": "1",
            "region": "r", "regions": [], "instance_ids": [], "trigger_count": 1,
            "threshold": 1, "cross_account": false,
            "first_event_time": "2018-01-09T22:09:00Z", "trigger_time": "2018-01-09T22:09:00Z",
            "last_event_time": "2018-01-09T22:09:00Z", "trigger_event_id": "e",
            "attempts": 0, "source_ips": [], "user_agents": [],
            "containment": {"action": "none", "reason": "off"}});
        for (k, x) in fields.as_object().unwrap() {
            v[k] = x.clone();
        }
        serde_json::from_value::<Incident>(v).map_err(|e| e.to_string())
    }

    fn read(fields: serde_json::Value) -> Result<Subject, String> {
        incident(fields).map(|i| i.subject)
    }

    #[test]
    fn an_incident_reads_whose_burst_it_is_from_its_lane() {
        let arn = "arn:aws:iam::1:role/app";
        assert_eq!(
            read(serde_json::json!({"kind": "burst", "principal_arn": arn})),
            Ok(Subject::Burst(arn.into()))
        );
        assert_eq!(
            read(serde_json::json!({"kind": "account_burst", "principal_arn": null})),
            Ok(Subject::Account)
        );
        // An alert's kind is the alert's; its incident's lane is `incident_kind`.
        assert_eq!(
            read(
                serde_json::json!({"kind": "detected", "incident_kind": "service_burst", "principal_arn": arn})
            ),
            Ok(Subject::Service(arn.into()))
        );
        // Written before lanes existed: a burst.
        assert_eq!(
            read(serde_json::json!({"principal_arn": arn})),
            Ok(Subject::Burst(arn.into()))
        );
        // A burst names its principal.
        let err =
            read(serde_json::json!({"kind": "attempt_burst", "principal_arn": null})).unwrap_err();
        assert!(
            err.contains("attempt_burst lane names its principal"),
            "{err}"
        );
        assert!(read(serde_json::json!({"kind": "burst", "principal_arn": ""})).is_err());
    }

    #[test]
    fn the_json_keeps_kind_and_principal_arn() {
        for (kind, arn) in [
            ("account_burst", None),
            ("attempt_burst", Some("arn:aws:iam::1:user/u")),
        ] {
            let i = incident(serde_json::json!({"kind": kind, "principal_arn": arn})).unwrap();
            let v = serde_json::to_value(&i).unwrap();
            assert_eq!(v["kind"], kind);
            assert_eq!(v["principal_arn"].as_str(), arn);
            assert_eq!(i.principal_arn(), arn);
        }
    }
}
