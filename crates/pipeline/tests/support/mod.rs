//! In-memory ports for the pipelines' tests. Each keeps the promises the port's
//! documentation makes, the way the DynamoDB, SNS, Lambda and IAM adapters keep them:
//! conditional writes on the current incident, an incident document that round-trips
//! through JSON, leases on calls. Every operation yields first, so tasks on a
//! multi-threaded runtime really interleave, and any operation can be made to fail.
//! Each is a handle: clones share one state, so a test keeps one while a pipeline owns
//! another.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use tripwire_engine::alert::{Alert, ContainmentState};
use tripwire_engine::containment::{ContainmentRequest, Plan};
use tripwire_engine::provenance::Issued;
use tripwire_engine::time::Millis;
use tripwire_engine::window::Lane;
use tripwire_engine::{
    Incident, Initiation, Key, OpenIncident, Policy, SkipReason, Termination, WindowEvent,
};
use tripwire_pipeline::{
    AccountBrakes, Alerts, Calls, Clock, Contain, ContainedPrincipals, ContainmentQueue, Detector,
    Error, Flag, Heartbeats, Incidents, IssueState, Port, Recorded, Refused, Responder, Sessions,
    Steps, StoredIncident,
};

/// A transient failure of `port`, as an adapter reports an outage.
pub fn outage(port: Port, op: &'static str) -> Error {
    Error::Aws {
        port,
        op,
        code: "ServiceUnavailable".into(),
        message: "injected".into(),
        transient: true,
    }
}

/// Failures to inject: by operation name, how many of the next calls fail; or all.
#[derive(Default)]
pub struct Faults {
    down: AtomicBool,
    next: Mutex<HashMap<&'static str, u32>>,
}

impl Faults {
    /// Every operation fails until [`Faults::up`].
    pub fn down(&self) {
        self.down.store(true, Ordering::SeqCst);
    }

    /// Operations succeed again.
    pub fn up(&self) {
        self.down.store(false, Ordering::SeqCst);
    }

    /// The next `n` calls of `op` fail.
    pub fn fail_next(&self, op: &'static str, n: u32) {
        self.next.lock().unwrap().insert(op, n);
    }

    fn check(&self, port: Port, op: &'static str) -> Result<(), Error> {
        if self.down.load(Ordering::SeqCst) {
            return Err(outage(port, op));
        }
        let mut next = self.next.lock().unwrap();
        match next.get_mut(op) {
            Some(n) if *n > 0 => {
                *n -= 1;
                Err(outage(port, op))
            }
            _ => Ok(()),
        }
    }
}

#[derive(Debug, Clone)]
struct Call {
    event: WindowEvent,
    attempt: bool,
    done: bool,
    lease: Millis,
}

/// The incident item, attribute for attribute.
#[derive(Debug, Clone)]
struct Item {
    id: String,
    first: Millis,
    last: Millis,
    ids: BTreeSet<String>,
    uids: BTreeSet<String>,
    attempts: u64,
    /// The attempt lane's joined calls.
    calls: BTreeSet<String>,
    doc: String,
    alerted: bool,
    invoked: bool,
    last_update_alert: Millis,
    opened_at: Millis,
    containment_state: ContainmentState,
    containment_detail: Option<String>,
    containment_alerted: Option<ContainmentState>,
    /// Until when a responder holds it (0: not held).
    held_until: Millis,
    history: Vec<OpenIncident>,
}

impl Item {
    fn read(&self) -> StoredIncident {
        let mut incident: Incident = serde_json::from_str(&self.doc).expect("stored doc");
        incident.instance_ids = self.ids.clone();
        incident.unconfirmed_ids = self.uids.difference(&self.ids).cloned().collect();
        incident.first_event_time = incident.first_event_time.min(self.first);
        incident.last_event_time = incident.last_event_time.max(self.last);
        incident.attempts = self.attempts + self.calls.len() as u64;
        StoredIncident {
            open: OpenIncident {
                id: self.id.clone(),
                first_time: self.first,
                last_time: self.last,
            },
            incident,
            alerted: self.alerted,
            invoked: self.invoked,
            containment_alerted: self.containment_alerted,
            containment_state: Some(self.containment_state),
            opened_at: Some(self.opened_at),
            history: self.history.clone(),
        }
    }
}

#[derive(Default)]
struct Tables {
    // Per key: calls by (eventTime, eventID, attempt).
    calls: HashMap<Key, BTreeMap<(Millis, String, bool), Call>>,
    incidents: HashMap<Key, Item>,
    issues: HashMap<String, IssueState>,
    initiations: BTreeMap<(String, String, Millis, String), Initiation>,
    credits: HashMap<String, Option<Initiation>>,
    // One-off steps: (done, lease).
    once: HashMap<String, (bool, Millis)>,
    // Contained principals by (account, entity).
    contained: HashMap<(String, String), ContainmentRequest>,
    // Each account's last drill.
    drills: BTreeMap<String, tripwire_engine::drill::Drilled>,
    // Per (account, region): instances' state changes, and the wave.
    instances: HashMap<(String, String, String), WaveInstance>,
    waves: HashMap<(String, String), WaveItem>,
    open_waves: BTreeSet<(String, String, String)>,
    // Heartbeats by (account, region).
    heartbeats: BTreeMap<(String, String), tripwire_engine::armed::HeartbeatState>,
    // StackSet instances not heard from yet, by (account, region).
    listed: BTreeMap<(String, String), tripwire_engine::armed::Listed>,
}

/// The window and incident state in memory.
#[derive(Default, Clone)]
pub struct MemoryStore {
    tables: Arc<Mutex<Tables>>,
    /// Failure injection.
    pub faults: Arc<Faults>,
}

/// As the DynamoDB sort key: a failed call is an attempt item except on the attempt
/// lane, which counts failed calls.
fn call_key(key: &Key, t: &Termination) -> (Millis, String, bool) {
    let attempt = t.is_attempt() && key.lane != Lane::Attempt;
    (t.event_time, t.event_id.clone(), attempt)
}

impl MemoryStore {
    async fn op(&self, op: &'static str) -> Result<std::sync::MutexGuard<'_, Tables>, Error> {
        tokio::task::yield_now().await;
        self.faults.check(Port::State, op)?;
        Ok(self.tables.lock().unwrap())
    }

    /// Heartbeats recorded: (last eventTime, how many) by (account, region).
    pub fn heartbeats(&self) -> BTreeMap<(String, String), (Millis, u64)> {
        self.tables
            .lock()
            .unwrap()
            .heartbeats
            .iter()
            .map(|(k, s)| (k.clone(), (s.last, s.heartbeats)))
            .collect()
    }

    /// The key's incident item as a reader would see it.
    pub fn current(&self, key: &Key) -> Option<StoredIncident> {
        self.tables
            .lock()
            .unwrap()
            .incidents
            .get(key)
            .map(Item::read)
    }

    /// Every key that has an incident item, sorted.
    pub fn keys_with_incidents(&self) -> Vec<Key> {
        let mut keys: Vec<Key> = self
            .tables
            .lock()
            .unwrap()
            .incidents
            .keys()
            .cloned()
            .collect();
        keys.sort();
        keys
    }

    /// The recorded containment state and detail of the key's incident.
    pub fn containment(&self, key: &Key) -> Option<(ContainmentState, Option<String>)> {
        let t = self.tables.lock().unwrap();
        let i = t.incidents.get(key)?;
        Some((i.containment_state, i.containment_detail.clone()))
    }

    /// Whether the call is marked done.
    pub fn done(&self, key: &Key, t: &Termination) -> bool {
        let tables = self.tables.lock().unwrap();
        tables
            .calls
            .get(key)
            .and_then(|c| c.get(&call_key(key, t)))
            .is_some_and(|c| c.done)
    }

    /// Closes the key's incident, as `tripwire release` does: its span ends long ago.
    pub fn release(&self, key: &Key) {
        close_item(&mut self.tables.lock().unwrap(), key);
    }

    /// Puts incident `id` in the key's place, as the detector does when a later burst
    /// of the same key opens: the one it replaces joins the history.
    pub fn replace(&self, key: &Key, id: &str) {
        let mut tables = self.tables.lock().unwrap();
        let i = tables
            .incidents
            .get_mut(key)
            .expect("an incident to replace");
        let old = i.read();
        i.history = old.history_after();
        i.id = id.to_owned();
        i.containment_state = ContainmentState::Pending;
        i.containment_detail = None;
        i.containment_alerted = None;
        i.held_until = 0;
    }

    fn with_current<T>(
        &self,
        tables: &mut Tables,
        key: &Key,
        id: &str,
        f: impl FnOnce(&mut Item) -> T,
    ) -> Option<T> {
        tables.incidents.get_mut(key).filter(|i| i.id == id).map(f)
    }
}

impl Calls for MemoryStore {
    async fn record(
        &self,
        key: &Key,
        t: &Termination,
        now: Millis,
        lease_until: Millis,
    ) -> Result<Recorded, Error> {
        let mut tables = self.op("record").await?;
        let calls = tables.calls.entry(key.clone()).or_default();
        match calls.get_mut(&call_key(key, t)) {
            None => {
                calls.insert(
                    call_key(key, t),
                    Call {
                        event: WindowEvent::of(t, key.lane),
                        attempt: t.is_attempt() && key.lane != Lane::Attempt,
                        done: false,
                        lease: lease_until,
                    },
                );
                Ok(Recorded::New)
            }
            Some(c) if !c.done && c.lease < now => {
                c.lease = lease_until;
                Ok(Recorded::Unfinished)
            }
            Some(_) => Ok(Recorded::Duplicate),
        }
    }

    async fn release_lease(&self, key: &Key, t: &Termination) -> Result<(), Error> {
        let mut tables = self.op("release_lease").await?;
        if let Some(c) = tables
            .calls
            .get_mut(key)
            .and_then(|c| c.get_mut(&call_key(key, t)))
            .filter(|c| !c.done)
        {
            c.lease = 0;
        }
        Ok(())
    }

    async fn mark_done(&self, key: &Key, t: &Termination) -> Result<(), Error> {
        let mut tables = self.op("mark_done").await?;
        if let Some(c) = tables
            .calls
            .get_mut(key)
            .and_then(|c| c.get_mut(&call_key(key, t)))
        {
            c.done = true;
        }
        Ok(())
    }

    async fn window(&self, key: &Key, from: Millis, to: Millis) -> Result<Vec<WindowEvent>, Error> {
        let tables = self.op("window").await?;
        Ok(tables
            .calls
            .get(key)
            .into_iter()
            .flat_map(|c| c.iter())
            .filter(|((time, _, attempt), _)| !attempt && *time >= from.max(0) && *time <= to)
            .map(|(_, c)| c.event.clone())
            .collect())
    }
}

/// Closes the key's incident as a release does: its span ends long ago. Whether one was
/// there.
fn close_item(tables: &mut Tables, key: &Key) -> bool {
    let Some(i) = tables.incidents.get_mut(key) else {
        return false;
    };
    i.containment_state = ContainmentState::Released;
    i.first = 0;
    i.last = 0;
    true
}

fn releasing(state: ContainmentState) -> bool {
    matches!(
        state,
        ContainmentState::Releasing | ContainmentState::Released
    )
}

impl Incidents for MemoryStore {
    async fn close(&self, key: &Key, _now: Millis) -> Result<bool, Error> {
        let mut tables = self.op("close").await?;
        Ok(close_item(&mut tables, key))
    }

    async fn incident(&self, key: &Key) -> Result<Option<StoredIncident>, Error> {
        let tables = self.op("incident").await?;
        Ok(tables.incidents.get(key).map(Item::read))
    }

    async fn open_incident(
        &self,
        key: &Key,
        incident: &Incident,
        replacing: Option<&StoredIncident>,
        now: Millis,
    ) -> Result<bool, Error> {
        let doc =
            serde_json::to_string(incident).map_err(|e| Error::encoding("the incident", e))?;
        let mut tables = self.op("open_incident").await?;
        let current = tables.incidents.get(key).map(|i| i.id.clone());
        let allowed = match replacing {
            Some(old) => current.as_deref() == Some(old.open.id.as_str()),
            None => current.is_none(),
        };
        if !allowed {
            return Ok(false);
        }
        tables.incidents.insert(
            key.clone(),
            Item {
                id: incident.id.clone(),
                first: incident.first_event_time,
                last: incident.last_event_time,
                ids: incident.instance_ids.clone(),
                uids: incident.unconfirmed_ids.clone(),
                attempts: incident.attempts,
                calls: BTreeSet::new(),
                doc,
                alerted: false,
                invoked: false,
                last_update_alert: now,
                opened_at: now,
                containment_state: ContainmentState::Pending,
                containment_detail: None,
                containment_alerted: None,
                held_until: 0,
                history: replacing
                    .map(StoredIncident::history_after)
                    .unwrap_or_default(),
            },
        );
        Ok(true)
    }

    async fn join_incident(
        &self,
        key: &Key,
        id: &str,
        t: &Termination,
    ) -> Result<Option<StoredIncident>, Error> {
        let mut tables = self.op("join_incident").await?;
        Ok(self.with_current(&mut tables, key, id, |i| {
            if key.lane == Lane::Attempt {
                i.calls.insert(t.event_id.clone());
            } else if t.unconfirmed {
                i.uids.extend(t.instance_ids.iter().cloned());
            } else {
                i.ids.extend(t.instance_ids.iter().cloned());
            }
            i.first = i.first.min(t.event_time);
            i.last = i.last.max(t.event_time);
            i.read()
        }))
    }

    async fn add_attempt(&self, key: &Key, id: &str) -> Result<(), Error> {
        let mut tables = self.op("add_attempt").await?;
        self.with_current(&mut tables, key, id, |i| i.attempts += 1);
        Ok(())
    }

    async fn claim_update_slot(
        &self,
        key: &Key,
        id: &str,
        now: Millis,
        gap: Millis,
    ) -> Result<bool, Error> {
        let mut tables = self.op("claim_update_slot").await?;
        Ok(self
            .with_current(&mut tables, key, id, |i| {
                let free = i.alerted && i.last_update_alert <= now - gap;
                if free {
                    i.last_update_alert = now;
                }
                free
            })
            .unwrap_or(false))
    }

    async fn set_flag(&self, key: &Key, id: &str, flag: Flag) -> Result<(), Error> {
        let mut tables = self.op("set_flag").await?;
        self.with_current(&mut tables, key, id, |i| match flag {
            Flag::Alerted => i.alerted = true,
            Flag::Invoked => i.invoked = true,
        });
        Ok(())
    }

    async fn hold_for_containment(
        &self,
        key: &Key,
        id: &str,
        until: Millis,
    ) -> Result<bool, Error> {
        let mut tables = self.op("hold_for_containment").await?;
        Ok(self
            .with_current(&mut tables, key, id, |i| {
                let free = !releasing(i.containment_state);
                if free {
                    i.held_until = until;
                }
                free
            })
            .unwrap_or(false))
    }

    async fn record_containment(
        &self,
        key: &Key,
        id: &str,
        state: ContainmentState,
        detail: &str,
    ) -> Result<bool, Error> {
        let mut tables = self.op("record_containment").await?;
        Ok(self
            .with_current(&mut tables, key, id, |i| {
                let free = !releasing(i.containment_state);
                if free {
                    i.containment_state = state;
                    i.containment_detail = Some(detail.to_owned());
                    i.held_until = 0;
                }
                free
            })
            .unwrap_or(false))
    }

    async fn mark_releasing(
        &self,
        key: &Key,
        id: &str,
        now: Millis,
        detail: &str,
    ) -> Result<bool, Error> {
        let mut tables = self.op("mark_releasing").await?;
        Ok(self
            .with_current(&mut tables, key, id, |i| {
                let free = i.held_until < now;
                if free {
                    i.containment_state = ContainmentState::Releasing;
                    i.containment_detail = Some(detail.to_owned());
                }
                free
            })
            .unwrap_or(false))
    }

    async fn mark_containment_alerted(
        &self,
        key: &Key,
        id: &str,
        state: ContainmentState,
    ) -> Result<(), Error> {
        let mut tables = self.op("mark_containment_alerted").await?;
        self.with_current(&mut tables, key, id, |i| {
            i.containment_alerted = Some(state)
        });
        Ok(())
    }
}

impl Sessions for MemoryStore {
    async fn issued(&self, access_key: &str) -> Result<Option<IssueState>, Error> {
        let tables = self.op("issued").await?;
        Ok(tables.issues.get(access_key).cloned())
    }

    async fn record_issue(
        &self,
        access_key: &str,
        issued: &Issued,
    ) -> Result<Result<(), SkipReason>, Error> {
        let mut tables = self.op("record_issue").await?;
        let (state, result) = IssueState::after(tables.issues.get(access_key), issued);
        tables.issues.insert(access_key.to_owned(), state);
        Ok(result)
    }

    async fn record_initiation(&self, i: &Initiation, _now: Millis) -> Result<(), Error> {
        let mut tables = self.op("record_initiation").await?;
        tables.initiations.insert(
            (
                i.account.clone(),
                i.region.clone(),
                i.event_time,
                i.event_id.clone(),
            ),
            i.clone(),
        );
        Ok(())
    }

    async fn initiations(
        &self,
        account: &str,
        region: &str,
        from: Millis,
        to: Millis,
    ) -> Result<Vec<Initiation>, Error> {
        let tables = self.op("initiations").await?;
        Ok(tables
            .initiations
            .values()
            .filter(|i| i.account == account && i.region == region)
            .filter(|i| i.event_time >= from && i.event_time <= to)
            .cloned()
            .collect())
    }

    async fn settle_credit(
        &self,
        event_id: &str,
        credit: Option<&Initiation>,
        _now: Millis,
    ) -> Result<Option<Initiation>, Error> {
        let mut tables = self.op("settle_credit").await?;
        Ok(tables
            .credits
            .entry(event_id.to_owned())
            .or_insert_with(|| credit.cloned())
            .clone())
    }
}

impl tripwire_pipeline::Drills for MemoryStore {
    async fn record_drill(&self, d: &tripwire_engine::drill::Drilled) -> Result<(), Error> {
        // Through JSON, as the table keeps it.
        let wire = serde_json::to_string(d).map_err(|e| Error::encoding("drill", e))?;
        let back = serde_json::from_str(&wire).expect("a drill reads back");
        self.op("record_drill")
            .await?
            .drills
            .insert(d.account.clone(), back);
        Ok(())
    }

    async fn drills(&self) -> Result<Vec<tripwire_engine::drill::Drilled>, Error> {
        Ok(self.op("drills").await?.drills.values().cloned().collect())
    }
}

impl Heartbeats for MemoryStore {
    async fn record_heartbeat(
        &self,
        h: &tripwire_engine::armed::Heartbeat,
        now: Millis,
    ) -> Result<(), Error> {
        let mut tables = self.op("record_heartbeat").await?;
        let e = tables
            .heartbeats
            .entry((h.account.clone(), h.region.clone()))
            .or_insert(tripwire_engine::armed::HeartbeatState {
                account: h.account.clone(),
                region: h.region.clone(),
                last: Millis::MIN,
                arrived: now,
                heartbeats: 0,
                lost_paged: None,
            });
        if e.last < h.event_time {
            e.last = h.event_time;
            e.arrived = now;
            e.heartbeats += 1;
        }
        Ok(())
    }

    async fn heartbeat_states(&self) -> Result<Vec<tripwire_engine::armed::HeartbeatState>, Error> {
        let tables = self.op("heartbeat_states").await?;
        Ok(tables.heartbeats.values().cloned().collect())
    }

    async fn listed(&self) -> Result<Vec<tripwire_engine::armed::Listed>, Error> {
        let tables = self.op("listed").await?;
        Ok(tables.listed.values().cloned().collect())
    }

    async fn put_listed(&self, l: &tripwire_engine::armed::Listed) -> Result<(), Error> {
        let mut tables = self.op("put_listed").await?;
        tables
            .listed
            .insert((l.account.clone(), l.region.clone()), l.clone());
        Ok(())
    }

    async fn forget_listed(&self, account: &str, region: &str) -> Result<(), Error> {
        let mut tables = self.op("forget_listed").await?;
        tables
            .listed
            .remove(&(account.to_owned(), region.to_owned()));
        Ok(())
    }

    async fn set_lost_paged(
        &self,
        account: &str,
        region: &str,
        last: Option<Millis>,
    ) -> Result<(), Error> {
        let mut tables = self.op("set_lost_paged").await?;
        if let Some(s) = tables
            .heartbeats
            .get_mut(&(account.to_owned(), region.to_owned()))
        {
            s.lost_paged = last;
        }
        Ok(())
    }
}

impl Steps for MemoryStore {
    async fn claim_once(
        &self,
        id: &str,
        now: Millis,
        lease_until: Millis,
    ) -> Result<Recorded, Error> {
        let mut tables = self.op("claim_once").await?;
        match tables.once.get_mut(id) {
            None => {
                tables.once.insert(id.to_owned(), (false, lease_until));
                Ok(Recorded::New)
            }
            Some((false, lease)) if *lease < now => {
                *lease = lease_until;
                Ok(Recorded::Unfinished)
            }
            Some(_) => Ok(Recorded::Duplicate),
        }
    }

    async fn settle_once(&self, id: &str, done: bool) -> Result<(), Error> {
        let mut tables = self.op("settle_once").await?;
        if let Some(step) = tables.once.get_mut(id).filter(|s| !s.0) {
            *step = if done { (true, step.1) } else { (false, 0) };
        }
        Ok(())
    }
}

/// An instance's item: its first state change (time, lease, done), the wave it was
/// credited to, and the caller a record named.
#[derive(Debug, Clone, Default)]
struct WaveInstance {
    time: Option<Millis>,
    done: bool,
    lease: Millis,
    wave: Option<String>,
    by: Option<String>,
}

/// A pair's wave item and its counts.
#[derive(Debug, Clone)]
struct WaveItem {
    wave: tripwire_engine::wave::Wave,
    trigger_event_id: String,
    alerted: bool,
    last_page: Millis,
    claims: BTreeMap<String, usize>,
    previous: Option<(Millis, Millis)>,
}

impl WaveItem {
    fn read(&self) -> tripwire_pipeline::StoredWave {
        let mut wave = self.wave.clone();
        wave.claimed_by =
            tripwire_engine::wave::claims_of(self.claims.iter().map(|(p, n)| (p.as_str(), *n)));
        tripwire_pipeline::StoredWave {
            wave,
            trigger_event_id: self.trigger_event_id.clone(),
            alerted: self.alerted,
            claimed: self.claims.values().sum(),
            previous: self.previous,
        }
    }
}

fn pair(account: &str, region: &str) -> (String, String) {
    (account.to_owned(), region.to_owned())
}

fn at(account: &str, region: &str, instance: &str) -> (String, String, String) {
    (account.to_owned(), region.to_owned(), instance.to_owned())
}

impl MemoryStore {
    /// The pair's wave as a reader sees it.
    pub fn wave_of(&self, account: &str, region: &str) -> Option<tripwire_pipeline::StoredWave> {
        self.tables
            .lock()
            .unwrap()
            .waves
            .get(&pair(account, region))
            .map(WaveItem::read)
    }
}

impl tripwire_pipeline::Waves for MemoryStore {
    async fn record_change(
        &self,
        c: &tripwire_engine::record::StateChange,
        now: Millis,
        lease_until: Millis,
    ) -> Result<Recorded, Error> {
        let mut tables = self.op("record_change").await?;
        let i = tables
            .instances
            .entry(at(&c.account, &c.region, &c.instance_id))
            .or_default();
        match i.time {
            None => {
                (i.time, i.lease) = (Some(c.time), lease_until);
                Ok(Recorded::New)
            }
            Some(_) if !i.done && i.lease < now => {
                i.lease = lease_until;
                Ok(Recorded::Unfinished)
            }
            Some(_) => Ok(Recorded::Duplicate),
        }
    }

    async fn settle_change(
        &self,
        c: &tripwire_engine::record::StateChange,
        done: bool,
    ) -> Result<(), Error> {
        let mut tables = self.op("settle_change").await?;
        if let Some(i) = tables
            .instances
            .get_mut(&at(&c.account, &c.region, &c.instance_id))
            .filter(|i| !i.done)
        {
            if done {
                i.done = true;
            } else {
                i.lease = 0;
            }
        }
        Ok(())
    }

    async fn changes(
        &self,
        account: &str,
        region: &str,
        from: Millis,
        to: Millis,
    ) -> Result<Vec<(Millis, String)>, Error> {
        let tables = self.op("changes").await?;
        let mut out: Vec<(Millis, String)> = tables
            .instances
            .iter()
            .filter(|((a, r, _), _)| a == account && r == region)
            .filter_map(|((_, _, id), i)| i.time.map(|t| (t, id.clone())))
            .filter(|(t, _)| (from..=to).contains(t))
            .collect();
        out.sort();
        Ok(out)
    }

    async fn any_change(
        &self,
        account: &str,
        region: &str,
        from: Millis,
        to: Millis,
    ) -> Result<bool, Error> {
        let tables = self.op("any_change").await?;
        Ok(tables.instances.iter().any(|((a, r, _), i)| {
            a == account && r == region && i.time.is_some_and(|t| (from..=to).contains(&t))
        }))
    }

    async fn wave(
        &self,
        account: &str,
        region: &str,
    ) -> Result<Option<tripwire_pipeline::StoredWave>, Error> {
        let tables = self.op("wave").await?;
        Ok(tables.waves.get(&pair(account, region)).map(WaveItem::read))
    }

    async fn open_wave(
        &self,
        w: &tripwire_engine::wave::Wave,
        trigger_event_id: &str,
        replacing: Option<&str>,
        _now: Millis,
    ) -> Result<bool, Error> {
        let mut tables = self.op("open_wave").await?;
        let key = pair(&w.account, &w.region);
        let current = tables.waves.get(&key);
        if current.map(|c| c.wave.id.as_str()) != replacing {
            return Ok(false);
        }
        let previous = current.map(|c| (c.wave.first_event_time, c.wave.last_event_time));
        tables
            .open_waves
            .insert((w.account.clone(), w.region.clone(), w.id.clone()));
        let mut wave = w.clone();
        wave.instances = 0;
        tables.waves.insert(
            key,
            WaveItem {
                wave,
                trigger_event_id: trigger_event_id.to_owned(),
                alerted: false,
                last_page: 0,
                claims: BTreeMap::new(),
                previous,
            },
        );
        Ok(true)
    }

    async fn join_wave(
        &self,
        account: &str,
        region: &str,
        id: &str,
        instances: &[String],
        t: Millis,
    ) -> Result<Option<tripwire_pipeline::StoredWave>, Error> {
        let mut guard = self.op("join_wave").await?;
        let tables = &mut *guard;
        let Some(item) = tables
            .waves
            .get_mut(&pair(account, region))
            .filter(|w| w.wave.id == id)
        else {
            return Ok(None);
        };
        for instance in instances {
            let i = tables
                .instances
                .entry(at(account, region, instance))
                .or_default();
            if i.wave.is_some() {
                continue;
            }
            i.wave = Some(id.to_owned());
            item.wave.instances += 1;
            if item.wave.instance_ids.len() < SAMPLE && !item.wave.instance_ids.contains(instance) {
                item.wave.instance_ids.push(instance.clone());
            }
            if let Some(by) = &i.by {
                *item.claims.entry(by.clone()).or_default() += 1;
            }
        }
        item.wave.last_event_time = item.wave.last_event_time.max(t);
        item.wave.first_event_time = item.wave.first_event_time.min(t);
        Ok(Some(item.read()))
    }

    async fn name_callers(
        &self,
        account: &str,
        region: &str,
        instances: &[String],
        principal_arn: &str,
        _t: Millis,
    ) -> Result<Vec<String>, Error> {
        let mut guard = self.op("name_callers").await?;
        let tables = &mut *guard;
        let mut waves = BTreeSet::new();
        for instance in instances {
            let i = tables
                .instances
                .entry(at(account, region, instance))
                .or_default();
            match &i.by {
                Some(by) if by != principal_arn => continue,
                Some(_) => {}
                None => {
                    i.by = Some(principal_arn.to_owned());
                    if let Some(w) = i.wave.as_ref().and_then(|id| {
                        tables
                            .waves
                            .get_mut(&pair(account, region))
                            .filter(|w| &w.wave.id == id)
                    }) {
                        *w.claims.entry(principal_arn.to_owned()).or_default() += 1;
                    }
                }
            }
            if let Some(w) = &i.wave {
                waves.insert(w.clone());
            }
        }
        Ok(waves.into_iter().collect())
    }

    async fn set_wave_alerted(
        &self,
        account: &str,
        region: &str,
        id: &str,
        now: Millis,
    ) -> Result<(), Error> {
        let mut tables = self.op("set_wave_alerted").await?;
        if let Some(w) = tables
            .waves
            .get_mut(&pair(account, region))
            .filter(|w| w.wave.id == id)
        {
            w.alerted = true;
            w.last_page = now;
        }
        Ok(())
    }

    async fn claim_wave_page(
        &self,
        account: &str,
        region: &str,
        id: &str,
        now: Millis,
        gap: Millis,
    ) -> Result<bool, Error> {
        let mut tables = self.op("claim_wave_page").await?;
        let Some(w) = tables
            .waves
            .get_mut(&pair(account, region))
            .filter(|w| w.wave.id == id && w.alerted && w.last_page <= now - gap)
        else {
            return Ok(false);
        };
        w.last_page = now;
        Ok(true)
    }

    async fn open_waves(&self) -> Result<Vec<(String, String, String)>, Error> {
        let tables = self.op("open_waves").await?;
        Ok(tables.open_waves.iter().cloned().collect())
    }

    async fn forget_wave(&self, account: &str, region: &str, id: &str) -> Result<(), Error> {
        let mut tables = self.op("forget_wave").await?;
        tables
            .open_waves
            .remove(&(account.to_owned(), region.to_owned(), id.to_owned()));
        Ok(())
    }

    async fn callers(
        &self,
        account: &str,
        region: &str,
        instances: &[String],
    ) -> Result<HashMap<String, String>, Error> {
        let tables = self.op("callers").await?;
        Ok(instances
            .iter()
            .filter_map(|i| {
                let by = tables.instances.get(&at(account, region, i))?.by.clone()?;
                Some((i.clone(), by))
            })
            .collect())
    }
}

/// How many of a wave's instance IDs its item lists, as the DynamoDB store does.
pub const SAMPLE: usize = tripwire_engine::wave::SAMPLE;

impl ContainedPrincipals for MemoryStore {
    async fn point_contained(
        &self,
        account: &str,
        entity: &str,
        request: &ContainmentRequest,
        _now: Millis,
    ) -> Result<(), Error> {
        let mut tables = self.op("point_contained").await?;
        tables
            .contained
            .insert((account.to_owned(), entity.to_owned()), request.clone());
        Ok(())
    }

    async fn contained_by(
        &self,
        account: &str,
        entity: &str,
    ) -> Result<Option<ContainmentRequest>, Error> {
        let tables = self.op("contained_by").await?;
        Ok(tables
            .contained
            .get(&(account.to_owned(), entity.to_owned()))
            .cloned())
    }
}

/// Alerts kept in order.
#[derive(Default, Clone)]
pub struct MemoryAlerts {
    sent: Arc<Mutex<Vec<Alert>>>,
    /// Failure injection (`publish`).
    pub faults: Arc<Faults>,
}

impl MemoryAlerts {
    /// What was published.
    pub fn sent(&self) -> Vec<Alert> {
        self.sent.lock().unwrap().clone()
    }

    /// The kinds published, in order.
    pub fn kinds(&self) -> Vec<&'static str> {
        self.sent().iter().map(|a| a.kind.as_str()).collect()
    }
}

impl Alerts for MemoryAlerts {
    async fn publish(&self, alert: &Alert) -> Result<String, Error> {
        tokio::task::yield_now().await;
        self.faults.check(Port::Alerts, "publish")?;
        let mut sent = self.sent.lock().unwrap();
        sent.push(alert.clone());
        Ok(format!("m-{}", sent.len()))
    }
}

/// The containment queue, in memory: what the responder would receive.
#[derive(Default, Clone)]
pub struct MemoryQueue {
    queued: Arc<Mutex<Vec<ContainmentRequest>>>,
    /// Failure injection (`request`).
    pub faults: Arc<Faults>,
}

impl MemoryQueue {
    /// What was queued.
    pub fn queued(&self) -> Vec<ContainmentRequest> {
        self.queued.lock().unwrap().clone()
    }
}

impl ContainmentQueue for MemoryQueue {
    async fn request(&self, request: &ContainmentRequest) -> Result<(), Error> {
        tokio::task::yield_now().await;
        self.faults.check(Port::Queue, "request")?;
        // Through JSON, as Lambda carries it.
        let wire = serde_json::to_string(request).map_err(|e| Error::encoding("request", e))?;
        self.queued
            .lock()
            .unwrap()
            .push(serde_json::from_str(&wire).expect("a request reads back"));
        Ok(())
    }
}

/// Containment in memory: the plans applied, and what IAM answers.
#[derive(Default, Clone)]
pub struct MemoryContain {
    applied: Arc<Mutex<Vec<Plan>>>,
    /// When set, IAM refuses with this reason.
    pub refuse: Arc<Mutex<Option<String>>>,
    /// Failure injection (`apply`).
    pub faults: Arc<Faults>,
    /// What IAM says a principal's ARN is, when it differs from the plan's (a path the
    /// records omitted).
    pub paths: Arc<Mutex<std::collections::HashMap<String, String>>>,
    /// Runs once as the next plan is applied: what another container does meanwhile.
    #[allow(clippy::type_complexity)]
    pub during_apply: Arc<Mutex<Option<Box<dyn FnOnce() + Send>>>>,
    /// What IAM holds, by target ARN: what the plans applied put there, less what the
    /// drill lifted.
    pub held: Arc<Mutex<HashMap<String, tripwire_engine::drill::Held>>>,
    /// When set, IAM holds nothing a plan put in place (an SCP or boundary undid it).
    pub forgets: Arc<AtomicBool>,
    /// What IAM's simulator says; `None`: not available.
    pub simulator: Arc<Mutex<Option<bool>>>,
}

impl MemoryContain {
    /// The plans applied, in order.
    pub fn applied(&self) -> Vec<Plan> {
        self.applied.lock().unwrap().clone()
    }
}

impl tripwire_pipeline::DrillTarget for MemoryContain {
    async fn fresh_session(&self, _: &str, _: &str) -> Result<Result<(), Refused>, Error> {
        tokio::task::yield_now().await;
        Ok(Ok(()))
    }

    async fn held(
        &self,
        plan: &Plan,
    ) -> Result<Result<tripwire_engine::drill::Held, Refused>, Error> {
        tokio::task::yield_now().await;
        self.faults.check(Port::Containment, "held")?;
        let arn = plan.principal_arn().unwrap_or_default();
        Ok(Ok(self
            .held
            .lock()
            .unwrap()
            .get(arn)
            .cloned()
            .unwrap_or_default()))
    }

    async fn simulate(&self, _: &Plan, _: &str) -> Result<Option<bool>, Error> {
        tokio::task::yield_now().await;
        Ok(*self.simulator.lock().unwrap())
    }

    async fn lift_drill(&self, plan: &Plan) -> Result<Result<(), Refused>, Error> {
        tokio::task::yield_now().await;
        self.faults.check(Port::Containment, "lift_drill")?;
        let arn = plan.principal_arn().unwrap_or_default();
        self.held.lock().unwrap().remove(arn);
        Ok(Ok(()))
    }
}

impl Contain for MemoryContain {
    async fn current_arn(&self, plan: &Plan) -> Result<Result<String, Refused>, Error> {
        tokio::task::yield_now().await;
        self.faults.check(Port::Containment, "current_arn")?;
        let arn = plan.principal_arn().unwrap_or_default().to_owned();
        Ok(Ok(self
            .paths
            .lock()
            .unwrap()
            .get(&arn)
            .cloned()
            .unwrap_or(arn)))
    }

    async fn apply(&self, plan: &Plan) -> Result<Result<(), Refused>, Error> {
        tokio::task::yield_now().await;
        self.faults.check(Port::Containment, "apply")?;
        if let Some(reason) = self.refuse.lock().unwrap().clone() {
            return Ok(Err(Refused::Iam(reason)));
        }
        self.applied.lock().unwrap().push(plan.clone());
        if !self.forgets.load(Ordering::SeqCst) {
            let mut held = self.held.lock().unwrap();
            let h = held
                .entry(plan.principal_arn().unwrap_or_default().to_owned())
                .or_default();
            for m in &plan.managed {
                if !h.attached.contains(m) {
                    h.attached.push(m.clone());
                }
            }
            h.tags.extend(plan.tags.clone());
        }
        if let Some(meanwhile) = self.during_apply.lock().unwrap().take() {
            meanwhile();
        }
        Ok(Ok(()))
    }
}

/// A clock moved by hand.
#[derive(Default, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// Sets the time.
    pub fn set(&self, t: Millis) {
        self.0.store(t, Ordering::SeqCst);
    }

    /// Moves the time on by `ms`.
    pub fn advance(&self, ms: Millis) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Millis {
        self.0.load(Ordering::SeqCst)
    }
}

/// The detector as the tests run it.
pub type TestDetector = Detector<MemoryStore, MemoryAlerts, MemoryQueue, ManualClock>;
/// The responder as the tests run it.
pub type TestResponder =
    Responder<MemoryContain, MemoryStore, MemoryAlerts, ManualClock, MemoryOrganizations>;

/// A detector and a responder on one set of in-memory ports.
pub struct Rig {
    pub store: MemoryStore,
    pub alerts: MemoryAlerts,
    pub queue: MemoryQueue,
    pub contain: MemoryContain,
    pub organizations: MemoryOrganizations,
    pub clock: ManualClock,
    pub detector: Arc<TestDetector>,
    pub responder: TestResponder,
}

// Each test crate uses its share of these.
#[allow(unused_imports)]
pub use tripwire_synth::{CONTAINMENT_ROLE, TEST_POLICY as POLICY};

/// The responder's own role in the security account, as its configuration names it.
pub const OWN_ROLE: &str = "arn:aws:iam::123456789012:role/tripwire-responder";

/// The seed incident's first termination.
pub const T0: Millis = 1_515_535_740_000;

/// Organizations in memory: the management account, the SCPs attached to each account
/// directly, and each policy's content.
#[derive(Clone)]
pub struct MemoryOrganizations {
    /// The management account.
    pub management: String,
    /// Account → the IDs of the SCPs attached to it directly.
    pub attached: Arc<Mutex<BTreeMap<String, Vec<String>>>>,
    /// Policy ID → (name, content).
    pub policies: Arc<Mutex<BTreeMap<String, (String, String)>>>,
    /// When set, Organizations refuses with this reason (the delegation does not allow).
    pub refuse: Arc<Mutex<Option<String>>>,
    /// Failure injection (`target`, `attach`, `detach`).
    pub faults: Arc<Faults>,
}

impl Default for MemoryOrganizations {
    fn default() -> Self {
        MemoryOrganizations {
            management: "111111111111".into(),
            attached: Arc::default(),
            policies: Arc::default(),
            refuse: Arc::default(),
            faults: Arc::default(),
        }
    }
}

impl MemoryOrganizations {
    /// The SCPs attached to `account` directly.
    pub fn attached_to(&self, account: &str) -> Vec<String> {
        self.attached
            .lock()
            .unwrap()
            .get(account)
            .cloned()
            .unwrap_or_default()
    }
}

impl AccountBrakes for MemoryOrganizations {
    async fn target(
        &self,
        account: &str,
        policy_id: &str,
    ) -> Result<Result<tripwire_engine::containment::BrakeTarget, Refused>, Error> {
        tokio::task::yield_now().await;
        self.faults.check(Port::Containment, "target")?;
        if let Some(reason) = self.refuse.lock().unwrap().clone() {
            return Ok(Err(Refused::Iam(reason)));
        }
        let Some((_, content)) = self.policies.lock().unwrap().get(policy_id).cloned() else {
            return Ok(Err(Refused::Iam(format!("no policy {policy_id}"))));
        };
        Ok(Ok(tripwire_engine::containment::BrakeTarget {
            management_account: self.management.clone(),
            attached: self.attached_to(account),
            content,
        }))
    }

    async fn attach(&self, account: &str, policy_id: &str) -> Result<Result<(), Refused>, Error> {
        tokio::task::yield_now().await;
        self.faults.check(Port::Containment, "attach")?;
        let mut attached = self.attached.lock().unwrap();
        let on = attached.entry(account.to_owned()).or_default();
        if !on.iter().any(|p| p == policy_id) {
            on.push(policy_id.to_owned());
        }
        Ok(Ok(()))
    }

    async fn detach(&self, account: &str) -> Result<Option<String>, Error> {
        tokio::task::yield_now().await;
        self.faults.check(Port::Containment, "detach")?;
        let brake = self
            .policies
            .lock()
            .unwrap()
            .iter()
            .find(|(_, (name, _))| name == tripwire_engine::names::ACCOUNT_BRAKE_SCP)
            .map(|(id, _)| id.clone());
        let mut attached = self.attached.lock().unwrap();
        let on = attached.entry(account.to_owned()).or_default();
        Ok(brake.filter(|id| {
            let was = on.contains(id);
            on.retain(|p| p != id);
            was
        }))
    }
}

impl Rig {
    /// A rig under `policy`, its clock a few seconds after `T0` (CloudTrail's delay).
    pub fn new(policy: &str) -> Self {
        Self::with_responder_policy(policy, policy)
    }

    /// A rig whose responder reads `responder_policy` (its own configuration) while the
    /// detector reads `policy`.
    pub fn with_responder_policy(policy: &str, responder_policy: &str) -> Self {
        let policy = Policy::from_toml(policy).expect("policy");
        let responder_policy = Policy::from_toml(responder_policy).expect("responder policy");
        let store = MemoryStore::default();
        let alerts = MemoryAlerts::default();
        let queue = MemoryQueue::default();
        let contain = MemoryContain::default();
        let clock = ManualClock::default();
        clock.set(T0 + 5_000);
        let detector = Arc::new(Detector::new(
            policy.clone(),
            store.clone(),
            alerts.clone(),
            queue.clone(),
            clock.clone(),
        ));
        let organizations = MemoryOrganizations::default();
        let responder = Responder::new(
            responder_policy,
            vec![OWN_ROLE.to_owned()],
            CONTAINMENT_ROLE.into(),
            contain.clone(),
            store.clone(),
            alerts.clone(),
            clock.clone(),
        )
        .with_brakes(organizations.clone());
        Rig {
            store,
            alerts,
            queue,
            contain,
            organizations,
            clock,
            detector,
            responder,
        }
    }

    /// Delivers each event to the detector in turn, with a deadline a minute on.
    pub async fn deliver(
        &self,
        events: &[serde_json::Value],
    ) -> Vec<Result<Vec<tripwire_pipeline::Outcome>, Error>> {
        let mut out = Vec::new();
        for e in events {
            out.push(self.deliver_one(e).await);
        }
        out
    }

    /// Delivers one event.
    pub async fn deliver_one(
        &self,
        e: &serde_json::Value,
    ) -> Result<Vec<tripwire_pipeline::Outcome>, Error> {
        let deadline = self.clock.now() + 60_000;
        self.detector.handle(&e.to_string(), deadline).await
    }
}

/// The key of a role principal terminating in `account`.
pub fn key(principal_arn: &str, account: &str) -> Key {
    Key::new(tripwire_engine::window::Lane::Burst, principal_arn, account)
}

/// The release role in memory: what it lifted and reactivated.
#[derive(Default, Clone)]
pub struct MemoryLift {
    /// What it lifted and reactivated, in order.
    pub log: Arc<Mutex<Vec<String>>>,
    /// Every lift fails as IAM refusing would.
    pub fail: bool,
}

impl tripwire_pipeline::Lift for MemoryLift {
    async fn lift(
        &self,
        entity: &tripwire_engine::principal::IamEntity,
    ) -> Result<Vec<String>, Error> {
        if self.fail {
            return Err(Error::Aws {
                port: Port::Containment,
                op: "iam:DetachUserPolicy",
                code: "AccessDenied".into(),
                message: "not the release role".into(),
                transient: false,
            });
        }
        self.log
            .lock()
            .unwrap()
            .push(format!("lift {}", entity.name));
        Ok(vec![
            "tripwire-brake".into(),
            "tag:tripwire-contain-session".into(),
        ])
    }

    async fn reactivate_keys(
        &self,
        entity: &tripwire_engine::principal::IamEntity,
        keys: &[String],
    ) -> Result<(), Error> {
        self.log
            .lock()
            .unwrap()
            .push(format!("reactivate {} {}", entity.name, keys.join(",")));
        Ok(())
    }
}
