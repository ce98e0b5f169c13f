//! The shared window and incident state, in DynamoDB, so every concurrent detector
//! container sees the same counts.
//!
//! One table, string keys `pk`/`sk`, TTL on `expires`:
//! - `W#<key>` / `E#<eventTime>#<eventID>`: a counted call (`ids`, `t`, `done`);
//!   `A#…` for a failed call. Written with `attribute_not_exists`: the write *is* the
//!   deduplication, and `done` tells a redelivery from a retry of unfinished work.
//! - `I#<key>` / `CURRENT`: the key's incident. Opening is one conditional put that only
//!   succeeds when no live incident exists, so exactly one container opens it. It keeps
//!   counts (`n` confirmed, `un` unconfirmed instances), bounds and a sample of at most
//!   [`INCIDENT_SAMPLE`] instance IDs, so it stays small whatever the incident's size.
//! - `M#<incident id>#<instance>` / `M`: an instance counted for an incident (`e`, the
//!   call that first named it; `c`, confirmed; `ce`, the call that confirmed it): one
//!   small item per instance, spread over partitions, so counting stays exact and flat.
//! - `X#<incident id>` / `X`: where the incident and its calls are, for
//!   `tripwire incident export`.
//! - `K#<access key>` / `ISSUE`: the `AssumeRole*` call that issued a session, with its
//!   resolved origin (`doc`), or `conflict`; it expires with the session.
//! - `N#<account>#<region>` / `<eventTime>#<eventID>`: an initiator call (`doc`).

use crate::error::{aws_error, Error, Port};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::{put_item::PutItemError, update_item::UpdateItemError};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_sdk_dynamodb::Client;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use std::collections::{BTreeMap, HashMap};
use tripwire_engine::alert::ContainmentState;
use tripwire_engine::armed::{latency_bucket, Heartbeat, HeartbeatState, Listed};
use tripwire_engine::containment::ContainmentRequest;
use tripwire_engine::incident::Unlisted;
use tripwire_engine::provenance::Issued;
use tripwire_engine::time::format_millis;
use tripwire_engine::time::Millis;
use tripwire_engine::window::Lane;
use tripwire_engine::{
    Incident, Initiation, Key, OpenIncident, SkipReason, Termination, WindowEvent,
};
use tripwire_pipeline::{Flag, IncidentStore, IssueState, INITIATOR_RETENTION_MS};
pub use tripwire_pipeline::{Recorded, StoredIncident};

type Item = HashMap<String, AttributeValue>;

/// Items outlive the window by this much, so late deliveries still find their window.
const RETENTION_MS: Millis = 24 * 3600 * 1000;

/// At most this many instance IDs are listed on an incident's item (alerts list up to
/// 500); the rest are counted, and every one stays in its call's item.
pub const INCIDENT_SAMPLE: usize = 500;
/// Instance marks one container writes at once.
const MARKS_IN_FLIGHT: usize = 32;

fn mark_pk(incident_id: &str, instance: &str) -> String {
    format!("M#{incident_id}#{instance}")
}
fn count_pk(incident_id: &str) -> String {
    format!("C#{incident_id}")
}
fn index_pk(incident_id: &str) -> String {
    format!("X#{incident_id}")
}
fn join_pk(incident_id: &str, event_id: &str) -> String {
    format!("J#{incident_id}#{event_id}")
}

/// What marking one instance says about the call that marked it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    /// This call is the first to name it (now or on an earlier attempt).
    Created,
    /// Unconfirmed calls had named it; this confirmed call confirms it.
    Confirmed,
    /// Counted already by another call.
    Seen,
}

/// The mark's meaning, from its attributes before this call's update (`old`): the
/// update itself is idempotent, and a retry of the same call reads its own earlier
/// update, so a call's marks say the same on every attempt.
fn mark_of(old: &Item, event_id: &str, confirmed: bool) -> Mark {
    let attr = |k: &str| old.get(k).and_then(|v| v.as_s().ok()).map(String::as_str);
    if old.is_empty() || attr("e") == Some(event_id) {
        return Mark::Created;
    }
    let was_confirmed = get_bool(old, "c");
    if confirmed && (!was_confirmed || attr("ce") == Some(event_id)) {
        return Mark::Confirmed;
    }
    Mark::Seen
}

/// The instances one call adds to its incident.
#[derive(Debug, Default)]
struct Added {
    /// New, named by a call that succeeded.
    confirmed: Vec<String>,
    /// New, named only by an unconfirmed call.
    unconfirmed: Vec<String>,
    /// Counted as unconfirmed before; confirmed by this call.
    moved: Vec<String>,
}

/// DynamoDB-backed window store.
#[derive(Debug, Clone)]
pub struct WindowStore {
    client: Client,
    table: String,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}
fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}
fn get_s<'a>(item: &'a Item, k: &str) -> Result<&'a str, Error> {
    item.get(k)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .ok_or_else(|| Error::Stored(format!("missing {k}")))
}
fn get_n(item: &Item, k: &str) -> Result<Millis, Error> {
    item.get(k)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| Error::Stored(format!("missing number {k}")))
}
fn get_bool(item: &Item, k: &str) -> bool {
    item.get(k)
        .and_then(|v| v.as_bool().ok())
        .copied()
        .unwrap_or(false)
}

pub fn window_pk(key: &Key) -> String {
    format!("W#{}", key.id())
}
pub fn incident_pk(key: &Key) -> String {
    format!("I#{}", key.id())
}
/// The sort key of a call: `E#` counted, `A#` a failed attempt on the burst lane (the
/// attempt lane counts failed calls, so they are its `E#` items).
pub fn call_sk(key: &Key, t: &Termination) -> String {
    let attempt = t.is_attempt() && key.lane != Lane::Attempt;
    event_sk(if attempt { 'A' } else { 'E' }, t.event_time, &t.event_id)
}

/// Every (account, region)'s heartbeat state (`S#`), daily latency histograms (`D#`)
/// and, for StackSet instances not heard from yet, the watchdog's listing (`L#`): one
/// small partition (a few hundred pairs), read whole by the watchdog and `tripwire status`.
const HEARTBEAT_PK: &str = "H";
/// How long the pointer from a contained principal to its incident is kept: a
/// contained principal stays so until `tripwire release`, usually within days.
const POINTER_RETENTION_MS: Millis = 30 * 24 * 3600 * 1000;
/// How long a day's latency histogram is kept.
const HISTOGRAM_RETENTION_MS: Millis = 3 * 24 * 3600 * 1000;

/// A one-off step's item (see [`IncidentStore::claim_once`]).
fn once_pk(id: &str) -> String {
    format!("O#{id}")
}

type Update = aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;

/// A step seen before: unfinished work whose lease ran out (its attempt failed or was
/// killed) is taken over; work still in flight elsewhere, or finished, is a duplicate.
/// Without the lease a concurrent duplicate would redo a live attempt's steps, and could
/// page twice.
async fn take_over(update: Update, now: Millis, lease_until: Millis) -> Result<Recorded, Error> {
    let claim = update
        .update_expression("SET lease = :until")
        .condition_expression("done = :no AND lease < :now")
        .expression_attribute_values(":until", n(lease_until))
        .expression_attribute_values(":now", n(now))
        .expression_attribute_values(":no", AttributeValue::Bool(false))
        .send()
        .await;
    Ok(if conditional("dynamodb:UpdateItem", claim)?.is_some() {
        Recorded::Unfinished
    } else {
        Recorded::Duplicate
    })
}
fn issue_pk(access_key: &str) -> String {
    format!("K#{access_key}")
}
fn initiator_pk(account: &str, region: &str) -> String {
    format!("N#{account}#{region}")
}

/// Fixed-width times sort as strings; event times are never negative (the engine checks).
pub fn event_sk(prefix: char, t: Millis, event_id: &str) -> String {
    format!("{prefix}#{t:015}#{event_id}")
}

fn expires(now: Millis) -> AttributeValue {
    n((now + RETENTION_MS) / 1000)
}

/// One instance an incident terminated: a line of its recovery manifest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Terminated {
    /// The instance.
    pub instance_id: String,
    /// eventTime of the first call in the incident that named it.
    #[serde(with = "tripwire_engine::time::rfc3339")]
    pub terminated_at: Millis,
    /// `awsRegion` of that call (empty for calls recorded before regions were kept).
    pub region: String,
    /// That call's eventID.
    pub event_id: String,
    /// Who made it.
    pub principal_arn: String,
    /// Where the instance was.
    pub account: String,
    /// Whether a call that succeeded named it (otherwise only `OperationNotPermitted`
    /// calls did: counted, not confirmed).
    pub confirmed: bool,
}

impl WindowStore {
    /// Every instance incident `incident_id` terminated, in termination order, from its
    /// calls' items (kept a day after the window, like every call): `None` when no
    /// incident has that ID here. Read page by page; never on the hot path.
    pub async fn export(&self, incident_id: &str) -> Result<Option<Vec<Terminated>>, Error> {
        let Some(index) = self.get(index_pk(incident_id), "X").await? else {
            return Ok(None);
        };
        let Some(item) = self
            .get(get_s(&index, "ipk")?.to_owned(), "CURRENT")
            .await?
        else {
            return Ok(None);
        };
        let current = stored_incident(&item, None)?;
        // The span: the current incident's, or a closed one's from the history.
        let span = std::iter::once(&current.open)
            .chain(&current.history)
            .find(|o| o.id == incident_id)
            .cloned();
        let Some(span) = span else {
            return Ok(None);
        };
        let wpk = get_s(&index, "wpk")?.to_owned();
        let calls = self
            .range(
                wpk,
                event_sk('E', span.first_time.max(0), ""),
                event_sk('E', span.last_time.saturating_add(1), ""),
            )
            .await?;
        let mut by_instance: BTreeMap<String, Terminated> = BTreeMap::new();
        for c in &calls {
            let event_id = get_s(c, "sk")?.splitn(3, '#').nth(2).unwrap_or_default();
            let t = get_n(c, "t")?;
            let confirmed = !get_bool(c, "u");
            let principal = get_s(c, "p").unwrap_or(&current.incident.principal_arn);
            for id in c
                .get("ids")
                .and_then(|v| v.as_ss().ok())
                .into_iter()
                .flatten()
            {
                let row = Terminated {
                    instance_id: id.clone(),
                    terminated_at: t,
                    region: get_s(c, "r").unwrap_or_default().to_owned(),
                    event_id: event_id.to_owned(),
                    principal_arn: principal.to_owned(),
                    account: current.incident.account.clone(),
                    confirmed,
                };
                match by_instance.get_mut(id) {
                    Some(seen) => {
                        let confirmed = seen.confirmed || confirmed;
                        if (t, event_id) < (seen.terminated_at, seen.event_id.as_str()) {
                            *seen = row;
                        }
                        seen.confirmed = confirmed;
                    }
                    None => {
                        by_instance.insert(id.clone(), row);
                    }
                }
            }
        }
        let mut rows: Vec<Terminated> = by_instance.into_values().collect();
        rows.sort_by(|a, b| {
            (a.terminated_at, &a.instance_id).cmp(&(b.terminated_at, &b.instance_id))
        });
        Ok(Some(rows))
    }

    /// Every key's current incident, live or closed, by a scan of the table (for an
    /// operator's `tripwire status`, never on the hot path).
    pub async fn current_incidents(&self) -> Result<Vec<StoredIncident>, Error> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("sk = :c AND begins_with(pk, :i)")
                .expression_attribute_values(":c", s("CURRENT"))
                .expression_attribute_values(":i", s("I#"))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| aws_error(Port::State, "dynamodb:Scan", e))?;
            for item in page.items.unwrap_or_default() {
                out.push(stored_incident(&item, None)?);
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    /// The delivery-latency histogram of each (account, region) on `day` (`YYYY-MM-DD`,
    /// by eventTime).
    pub async fn latency_histograms(
        &self,
        day: &str,
    ) -> Result<BTreeMap<(String, String), [u64; 10]>, Error> {
        let items = self
            .range(
                HEARTBEAT_PK.into(),
                format!("D#{day}#"),
                format!("D#{day}$"),
            )
            .await?;
        let mut out = BTreeMap::new();
        for item in &items {
            let mut counts = [0u64; 10];
            for (i, c) in counts.iter_mut().enumerate() {
                *c = get_n(item, &format!("h{i}")).unwrap_or(0) as u64;
            }
            out.insert(
                (
                    get_s(item, "account")?.to_owned(),
                    get_s(item, "region")?.to_owned(),
                ),
                counts,
            );
        }
        Ok(out)
    }

    /// An update of one-off step `id`'s item.
    fn update_once(&self, id: &str) -> Update {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(once_pk(id)))
            .key("sk", s("O"))
    }

    /// A store on `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        WindowStore {
            client,
            table: table.into(),
        }
    }

    /// One item, read consistently.
    async fn get(&self, pk: String, sk: &str) -> Result<Option<Item>, Error> {
        let got = self.get_uncounted(pk, sk).await?;
        crate::stages::count_items_read(usize::from(got.is_some()));
        Ok(got)
    }

    async fn get_uncounted(&self, pk: String, sk: &str) -> Result<Option<Item>, Error> {
        let got = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| aws_error(Port::State, "dynamodb:GetItem", e))?;
        Ok(got.item)
    }

    /// Every item of `pk` with a sort key in `[from, to]`, read consistently, page by page.
    async fn range(&self, pk: String, from: String, to: String) -> Result<Vec<Item>, Error> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND sk BETWEEN :a AND :b")
                .expression_attribute_values(":pk", s(&pk))
                .expression_attribute_values(":a", s(&from))
                .expression_attribute_values(":b", s(&to))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| aws_error(Port::State, "dynamodb:Query", e))?;
            let items = page.items.unwrap_or_default();
            crate::stages::count_items_read(items.len());
            out.extend(items);
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    /// Marks `instances` as counted for incident `incident_id` by the call `event_id`,
    /// [`MARKS_IN_FLIGHT`] at a time, and says what each mark means for that call.
    async fn mark<'a>(
        &self,
        incident_id: &str,
        instances: impl IntoIterator<Item = &'a String>,
        event_id: &str,
        confirmed: bool,
        now: Millis,
    ) -> Result<Vec<(String, Mark)>, Error> {
        use futures_util::stream::{self, StreamExt, TryStreamExt};
        // Owned IDs: a stream of borrowed ones makes the future's lifetimes too general
        // for the functions' `Send` bound.
        let unique: std::collections::BTreeSet<String> = instances.into_iter().cloned().collect();
        stream::iter(unique)
            .map(|instance| async move {
                let update = self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .key("pk", s(mark_pk(incident_id, &instance)))
                    .key("sk", s("M"))
                    .expression_attribute_values(":e", s(event_id))
                    .expression_attribute_values(":exp", expires(now))
                    .return_values(ReturnValue::AllOld);
                // A confirmed call confirms the instance; an unconfirmed one never
                // unconfirms it.
                let update = if confirmed {
                    update
                        .update_expression("SET e = if_not_exists(e, :e), c = :c, ce = if_not_exists(ce, :e), expires = :exp")
                        .expression_attribute_values(":c", AttributeValue::Bool(true))
                } else {
                    update
                        .update_expression("SET e = if_not_exists(e, :e), c = if_not_exists(c, :c), expires = :exp")
                        .expression_attribute_values(":c", AttributeValue::Bool(false))
                };
                let old = update
                    .send()
                    .await
                    .map_err(|e| aws_error(Port::State, "dynamodb:UpdateItem", e))?
                    .attributes
                    .unwrap_or_default();
                let mark = mark_of(&old, event_id, confirmed);
                Ok::<_, Error>((instance, mark))
            })
            .buffer_unordered(MARKS_IN_FLIGHT)
            .try_collect()
            .await
    }

    /// Adds what `t` added to incident `id`'s counts, once per call: a small item of
    /// its own (`J#<id>#<eventID>`) says the call joined, written in the same
    /// transaction as the counts. Not an attribute of the call's item: a transaction
    /// bills twice the size of each item it writes, and a 1,000-ID call's item is some
    /// 20 KB on the principal's one partition. The counts live in an item of their own
    /// (`C#<id>`), so the transaction never conflicts with the alert path's updates of
    /// the incident item; two joins' transactions can, and then the later one tries
    /// again.
    async fn apply_join(
        &self,
        key: &Key,
        id: &str,
        t: &Termination,
        added: &Added,
        now: Millis,
    ) -> Result<(), Error> {
        use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
        use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};
        let build = |e: aws_sdk_dynamodb::error::BuildError| Error::encoding("a join", e);
        let call = Put::builder()
            .table_name(&self.table)
            .item("pk", s(join_pk(id, &t.event_id)))
            .item("sk", s("J"))
            .item("expires", expires(now))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(build)?;
        let moved = added.moved.len() as i64;
        let counts = Update::builder()
            .table_name(&self.table)
            .key("pk", s(count_pk(id)))
            .key("sk", s("C"))
            .update_expression("ADD n :c, un :u, attempt_calls :a")
            .expression_attribute_values(":c", n(added.confirmed.len() as i64 + moved))
            .expression_attribute_values(":u", n(added.unconfirmed.len() as i64 - moved))
            .expression_attribute_values(":a", n(i64::from(key.lane == Lane::Attempt)))
            .build()
            .map_err(build)?;
        let mut attempt = 0u64;
        loop {
            let res = self
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().put(call.clone()).build())
                .transact_items(TransactWriteItem::builder().update(counts.clone()).build())
                .send()
                .await;
            let err = match res {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            let reasons: Vec<&str> = match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(c)) => c
                    .cancellation_reasons()
                    .iter()
                    .map(|r| r.code().unwrap_or("None"))
                    .collect(),
                _ => Vec::new(),
            };
            if reasons.first() == Some(&"ConditionalCheckFailed") {
                // An earlier attempt of this call added it already.
                return Ok(());
            }
            if reasons.contains(&"TransactionConflict") && attempt < 8 {
                // Another join holds the counts: back off a few milliseconds, by the
                // call's own eventID so racing joins spread out.
                let jitter = t.event_id.bytes().fold(attempt, |h, b| {
                    h.wrapping_mul(31).wrapping_add(u64::from(b))
                });
                tokio::time::sleep(std::time::Duration::from_millis(
                    5 * (attempt + 1) + jitter % 10,
                ))
                .await;
                attempt += 1;
                continue;
            }
            return Err(aws_error(Port::State, "dynamodb:TransactWriteItems", err));
        }
    }

    /// Lists what `added` added on the incident item while it lists fewer than
    /// [`INCIDENT_SAMPLE`] IDs, and unlists unconfirmed IDs that `added` confirmed; sets
    /// are idempotent, so a retry changes nothing. `incident` (as just read) follows.
    async fn add_to_sample(
        &self,
        key: &Key,
        id: &str,
        incident: &mut Incident,
        added: &Added,
    ) -> Result<(), Error> {
        let counted = (
            incident.instance_ids.len() as u64 + incident.unlisted.confirmed,
            incident.unconfirmed_ids.len() as u64 + incident.unlisted.unconfirmed,
        );
        let mut room = INCIDENT_SAMPLE
            .saturating_sub(incident.instance_ids.len() + incident.unconfirmed_ids.len());
        let mut take = |ids: &[String]| -> Vec<String> {
            let out: Vec<String> = ids.iter().take(room).cloned().collect();
            room -= out.len();
            out
        };
        let confirmed = take(&[added.moved.as_slice(), added.confirmed.as_slice()].concat());
        let unconfirmed = take(&added.unconfirmed);
        let unlist: Vec<String> = added
            .moved
            .iter()
            .filter(|i| incident.unconfirmed_ids.contains(*i))
            .cloned()
            .collect();
        let mut parts = Vec::new();
        let mut update = self.update_incident(key).condition_expression("id = :id");
        for (attr, ids, verb) in [
            ("ids", &confirmed, "ADD"),
            ("uids", &unconfirmed, "ADD"),
            ("uids", &unlist, "DELETE"),
        ] {
            if ids.is_empty() {
                continue;
            }
            let v = format!(":{verb}{attr}").to_lowercase();
            parts.push((verb, format!("{attr} {v}")));
            update = update.expression_attribute_values(v, AttributeValue::Ss(ids.clone()));
        }
        if parts.is_empty() {
            return Ok(());
        }
        let mut expr = String::new();
        for verb in ["ADD", "DELETE"] {
            let clauses: Vec<&str> = parts
                .iter()
                .filter(|(v, _)| *v == verb)
                .map(|(_, c)| c.as_str())
                .collect();
            if !clauses.is_empty() {
                expr = format!("{expr} {verb} {}", clauses.join(", "));
            }
        }
        let res = update
            .update_expression(expr.trim())
            .expression_attribute_values(":id", s(id))
            .send()
            .await;
        if conditional("dynamodb:UpdateItem", res)?.is_none() {
            return Ok(());
        }
        incident.instance_ids.extend(confirmed);
        for i in &unlist {
            incident.unconfirmed_ids.remove(i);
        }
        incident.unconfirmed_ids.extend(unconfirmed);
        incident.unlisted = Unlisted {
            confirmed: counted.0.saturating_sub(incident.instance_ids.len() as u64),
            unconfirmed: counted
                .1
                .saturating_sub(incident.unconfirmed_ids.len() as u64),
        };
        Ok(())
    }

    /// An update of the key's incident item.
    fn update_incident(
        &self,
        key: &Key,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(incident_pk(key)))
            .key("sk", s("CURRENT"))
    }

    /// An update of one call's window item.
    fn update_call(
        &self,
        key: &Key,
        t: &Termination,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(window_pk(key)))
            .key("sk", s(call_sk(key, t)))
    }
}

impl IncidentStore for WindowStore {
    /// Records a call (counted, or a failed attempt), deduplicating by eventID.
    async fn record(
        &self,
        key: &Key,
        t: &Termination,
        now: Millis,
        lease_until: Millis,
    ) -> Result<Recorded, Error> {
        let sk = call_sk(key, t);
        let event = WindowEvent::of(t, key.lane);
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(window_pk(key)))
            .item("sk", s(&sk))
            .item("t", n(t.event_time))
            .item("r", s(&t.region))
            .item("done", AttributeValue::Bool(false))
            .item("lease", n(lease_until))
            .item("expires", expires(now))
            .condition_expression("attribute_not_exists(pk)");
        if !event.instance_ids.is_empty() {
            put = put.item("ids", AttributeValue::Ss(event.instance_ids.clone()));
        }
        if event.unconfirmed {
            put = put.item("u", AttributeValue::Bool(true));
        }
        for (attr, v) in [
            ("s", &event.session),
            ("si", &event.source_identity),
            ("ak", &event.access_key),
            ("p", &event.principal),
            ("ec", &event.error_code),
        ] {
            if let Some(v) = v {
                put = put.item(attr, s(v));
            }
        }
        if conditional("dynamodb:PutItem", put.send().await)?.is_some() {
            return Ok(Recorded::New);
        }
        take_over(self.update_call(key, t), now, lease_until).await
    }

    /// Gives up the lease after a failed attempt, so Lambda's retry can take over at once.
    async fn release_lease(&self, key: &Key, t: &Termination) -> Result<(), Error> {
        let res = self
            .update_call(key, t)
            .update_expression("SET lease = :zero")
            .condition_expression("done = :no")
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":no", AttributeValue::Bool(false))
            .send()
            .await;
        conditional("dynamodb:UpdateItem", res).map(|_| ())
    }

    /// Marks a call fully processed, so a redelivery is acknowledged as a duplicate.
    async fn mark_done(&self, key: &Key, t: &Termination) -> Result<(), Error> {
        self.update_call(key, t)
            .update_expression("SET done = :t")
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .send()
            .await
            .map_err(|e| aws_error(Port::State, "dynamodb:UpdateItem", e))?;
        Ok(())
    }

    /// The key's counted calls with eventTime in `[from, to]`, read consistently so a
    /// container sees every write that finished before it asked.
    async fn window(&self, key: &Key, from: Millis, to: Millis) -> Result<Vec<WindowEvent>, Error> {
        let items = self
            .range(
                window_pk(key),
                event_sk('E', from.max(0), ""),
                // Exclusive of the next millisecond: every event ID at `to`, whatever its characters.
                event_sk('E', to.saturating_add(1), ""),
            )
            .await?;
        items
            .iter()
            .map(|item| {
                let sk = get_s(item, "sk")?;
                Ok(WindowEvent {
                    event_id: sk.splitn(3, '#').nth(2).unwrap_or_default().to_owned(),
                    event_time: get_n(item, "t")?,
                    instance_ids: item
                        .get("ids")
                        .and_then(|v| v.as_ss().ok())
                        .cloned()
                        .unwrap_or_default(),
                    unconfirmed: get_bool(item, "u"),
                    session: get_s(item, "s").ok().map(str::to_owned),
                    source_identity: get_s(item, "si").ok().map(str::to_owned),
                    access_key: get_s(item, "ak").ok().map(str::to_owned),
                    principal: get_s(item, "p").ok().map(str::to_owned),
                    error_code: get_s(item, "ec").ok().map(str::to_owned),
                })
            })
            .collect()
    }

    /// The key's current incident, if any (live or stale: the caller asks `admits`).
    async fn incident(&self, key: &Key) -> Result<Option<StoredIncident>, Error> {
        let Some(item) = self.get(incident_pk(key), "CURRENT").await? else {
            return Ok(None);
        };
        let counts = self.get(count_pk(get_s(&item, "id")?), "C").await?;
        stored_incident(&item, counts.as_ref()).map(Some)
    }

    /// Opens `incident` for `key` unless a live one exists (one that admits `t`).
    /// Returns whether this call opened it: of racing containers, exactly one does.
    async fn open_incident(
        &self,
        key: &Key,
        incident: &Incident,
        replacing: Option<&StoredIncident>,
        now: Millis,
    ) -> Result<bool, Error> {
        // Before the incident can be seen, so no join can count its instances again:
        // its marks, its counts and its index. A container that loses the race leaves
        // them under an ID no incident has (they expire).
        self.mark(
            &incident.id,
            &incident.instance_ids,
            &incident.trigger_event_id,
            true,
            now,
        )
        .await?;
        self.mark(
            &incident.id,
            &incident.unconfirmed_ids,
            &incident.trigger_event_id,
            false,
            now,
        )
        .await?;
        for (pk, sk, attrs) in [
            (
                count_pk(&incident.id),
                "C",
                vec![
                    ("n", n(incident.instance_ids.len())),
                    ("un", n(incident.unconfirmed_ids.len())),
                    ("attempt_calls", n(0)),
                ],
            ),
            (
                index_pk(&incident.id),
                "X",
                vec![("ipk", s(incident_pk(key))), ("wpk", s(window_pk(key)))],
            ),
        ] {
            let mut put = self
                .client
                .put_item()
                .table_name(&self.table)
                .item("pk", s(pk))
                .item("sk", s(sk))
                .item("expires", expires(now));
            for (k, v) in attrs {
                put = put.item(k, v);
            }
            put.send()
                .await
                .map_err(|e| aws_error(Port::State, "dynamodb:PutItem", e))?;
        }
        // The item lists a sample; the counts above are the incident's.
        let sample = |ids: &std::collections::BTreeSet<String>, room: usize| {
            ids.iter()
                .take(room)
                .cloned()
                .collect::<std::collections::BTreeSet<String>>()
        };
        let listed = Incident {
            instance_ids: sample(&incident.instance_ids, INCIDENT_SAMPLE),
            unconfirmed_ids: sample(
                &incident.unconfirmed_ids,
                INCIDENT_SAMPLE.saturating_sub(incident.instance_ids.len()),
            ),
            ..incident.clone()
        };
        let incident = &listed;
        let doc =
            serde_json::to_string(incident).map_err(|e| Error::encoding("the incident", e))?;
        // The replaced incident joins the history, so its late calls still find it.
        let history: Vec<AttributeValue> = replacing
            .map(|old| {
                old.history_after()
                    .iter()
                    .map(|h| s(format!("{}:{}:{}", h.first_time, h.last_time, h.id)))
                    .collect()
            })
            .unwrap_or_default();
        // `ids`: confirmed instances; `uids`: those only unconfirmed calls named (string
        // sets cannot be empty, so each is written only when it has members).
        let set = |ids: &std::collections::BTreeSet<String>| {
            (!ids.is_empty()).then(|| AttributeValue::Ss(ids.iter().cloned().collect()))
        };
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(incident_pk(key)))
            .item("sk", s("CURRENT"))
            .item("id", s(&incident.id))
            .item("first", n(incident.first_event_time))
            .item("last", n(incident.last_event_time))
            // The attempt lane opens with its window's calls; the others with none.
            .item("attempts", n(incident.attempts))
            .item("doc", s(doc))
            .item("alerted", AttributeValue::Bool(false))
            .item("invoked", AttributeValue::Bool(false))
            // Updates are throttled from the moment of detection.
            .item("last_update_alert", n(now))
            // When the detector opened it: the responder refuses requests long after.
            .item("opened_at", n(now))
            .item("containment_state", s(ContainmentState::Pending.as_str()))
            .item("expires", expires(now))
            .item("history", AttributeValue::L(history));
        for (attr, ids) in [
            ("ids", &incident.instance_ids),
            ("uids", &incident.unconfirmed_ids),
        ] {
            if let Some(v) = set(ids) {
                put = put.item(attr, v);
            }
        }
        // Replace exactly the (closed) incident the caller read, or create the first:
        // of containers racing to open the same burst, one write succeeds.
        let put = match replacing {
            Some(old) => put
                .condition_expression("id = :old")
                .expression_attribute_values(":old", s(&old.open.id)),
            None => put.condition_expression("attribute_not_exists(pk)"),
        };
        Ok(conditional("dynamodb:PutItem", put.send().await)?.is_some())
    }

    /// Adds a counted call to the incident `id`: its instances, and its time to the span.
    /// The cost is the call's own instances (one small mark each) and a few small items,
    /// whatever the incident's size.
    async fn join_incident(
        &self,
        key: &Key,
        id: &str,
        t: &Termination,
    ) -> Result<Option<StoredIncident>, Error> {
        let now = tripwire_pipeline::Clock::now(&tripwire_pipeline::SystemClock);
        let mut added = Added::default();
        // The attempt lane counts calls, not instances.
        if key.lane != Lane::Attempt {
            let confirmed = !t.unconfirmed;
            for (instance, mark) in self
                .mark(id, &t.instance_ids, &t.event_id, confirmed, now)
                .await?
            {
                match mark {
                    Mark::Created if confirmed => added.confirmed.push(instance),
                    Mark::Created => added.unconfirmed.push(instance),
                    Mark::Confirmed => added.moved.push(instance),
                    Mark::Seen => {}
                }
            }
        }
        self.apply_join(key, id, t, &added, now).await?;
        let Some(mut cur) = self.incident(key).await?.filter(|c| c.open.id == id) else {
            // Replaced meanwhile.
            return Ok(None);
        };
        // DynamoDB has no max(): widen the span with conditional sets, which lose no race.
        if t.event_time > cur.open.last_time {
            self.set_if(
                key,
                id,
                "SET #a = :t",
                "#a < :t AND id = :id",
                "last",
                n(t.event_time),
            )
            .await?;
            cur.open.last_time = t.event_time;
            cur.incident.last_event_time = t.event_time;
        }
        if t.event_time < cur.open.first_time {
            self.set_if(
                key,
                id,
                "SET #a = :t",
                "#a > :t AND id = :id",
                "first",
                n(t.event_time),
            )
            .await?;
            cur.open.first_time = t.event_time;
            cur.incident.first_event_time = t.event_time;
        }
        self.add_to_sample(key, id, &mut cur.incident, &added)
            .await?;
        Ok(Some(cur))
    }

    /// Counts a failed call against the incident `id`.
    async fn add_attempt(&self, key: &Key, id: &str) -> Result<(), Error> {
        self.set_if(key, id, "ADD #a :t", "id = :id", "attempts", n(1))
            .await
            .map(|_| ())
    }

    /// Takes the update-alert slot if the last alert for `id` is at least `gap` old.
    async fn claim_update_slot(
        &self,
        key: &Key,
        id: &str,
        now: Millis,
        gap: Millis,
    ) -> Result<bool, Error> {
        let res = self
            .update_incident(key)
            .update_expression("SET last_update_alert = :now")
            .condition_expression("id = :id AND alerted = :yes AND last_update_alert <= :before")
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":before", n(now - gap))
            .expression_attribute_values(":id", s(id))
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .send()
            .await;
        Ok(conditional("dynamodb:UpdateItem", res)?.is_some())
    }

    /// Sets a boolean flag (`alerted`, `invoked`) on incident `id`.
    async fn set_flag(&self, key: &Key, id: &str, flag: Flag) -> Result<(), Error> {
        self.set_if(
            key,
            id,
            "SET #a = :t",
            "id = :id",
            flag.as_str(),
            AttributeValue::Bool(true),
        )
        .await
        .map(|_| ())
    }

    async fn issued(&self, access_key: &str) -> Result<Option<IssueState>, Error> {
        let got = self.get(issue_pk(access_key), "ISSUE").await?;
        let Some(item) = got else {
            return Ok(None);
        };
        if get_bool(&item, "conflict") {
            return Ok(Some(IssueState::Conflicted));
        }
        let issued: Issued = serde_json::from_str(get_s(&item, "doc")?)
            .map_err(|e| Error::Stored(format!("issue doc: {e}")))?;
        Ok(Some(IssueState::Issued(Box::new(issued))))
    }

    async fn record_issue(
        &self,
        access_key: &str,
        issued: &Issued,
    ) -> Result<Result<(), SkipReason>, Error> {
        let doc = serde_json::to_string(issued).map_err(|e| Error::encoding("the issue", e))?;
        // Kept an hour past the session's end: a late call still finds its origin.
        let expires = n((issued.expires + 3_600_000) / 1000);
        let put = |doc: String| {
            self.client
                .put_item()
                .table_name(&self.table)
                .item("pk", s(issue_pk(access_key)))
                .item("sk", s("ISSUE"))
                .item("doc", s(doc))
                .item("expires", expires.clone())
        };
        let first = put(doc.clone())
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        if conditional("dynamodb:PutItem", first)?.is_some() {
            return Ok(Ok(()));
        }
        // Seen before: the same issue again, a fuller copy of it, or a conflict.
        let existing = self.issued(access_key).await?;
        let (state, result) = IssueState::after(existing.as_ref(), issued);
        match (state, existing) {
            (IssueState::Issued(kept), Some(IssueState::Issued(old))) if kept != old => {
                let doc =
                    serde_json::to_string(&kept).map_err(|e| Error::encoding("the issue", e))?;
                // A conflict recorded meanwhile stands.
                let res = put(doc)
                    .condition_expression("attribute_not_exists(conflict)")
                    .send()
                    .await;
                conditional("dynamodb:PutItem", res)?;
            }
            (IssueState::Conflicted, Some(IssueState::Issued(_))) => {
                self.client
                    .update_item()
                    .table_name(&self.table)
                    .key("pk", s(issue_pk(access_key)))
                    .key("sk", s("ISSUE"))
                    .update_expression("SET conflict = :t")
                    .expression_attribute_values(":t", AttributeValue::Bool(true))
                    .send()
                    .await
                    .map_err(|e| aws_error(Port::State, "dynamodb:UpdateItem", e))?;
            }
            _ => {}
        }
        Ok(result)
    }

    async fn record_initiation(&self, i: &Initiation, now: Millis) -> Result<(), Error> {
        let doc = serde_json::to_string(i).map_err(|e| Error::encoding("the initiator", e))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(initiator_pk(&i.account, &i.region)))
            .item("sk", s(event_sk('N', i.event_time, &i.event_id)))
            .item("doc", s(doc))
            .item("expires", n((now + INITIATOR_RETENTION_MS) / 1000))
            .send()
            .await
            .map_err(|e| aws_error(Port::State, "dynamodb:PutItem", e))?;
        Ok(())
    }

    async fn initiations(
        &self,
        account: &str,
        region: &str,
        from: Millis,
        to: Millis,
    ) -> Result<Vec<Initiation>, Error> {
        let items = self
            .range(
                initiator_pk(account, region),
                event_sk('N', from.max(0), ""),
                event_sk('N', to.saturating_add(1), ""),
            )
            .await?;
        items
            .iter()
            .map(|item| {
                serde_json::from_str(get_s(item, "doc")?)
                    .map_err(|e| Error::Stored(format!("initiator doc: {e}")))
            })
            .collect()
    }

    /// Notes that the alert for containment `state` of incident `id` went out.
    async fn mark_containment_alerted(
        &self,
        key: &Key,
        id: &str,
        state: ContainmentState,
    ) -> Result<(), Error> {
        self.set_if(
            key,
            id,
            "SET #a = :t",
            "id = :id",
            "containment_alerted",
            s(state.as_str()),
        )
        .await
        .map(|_| ())
    }

    async fn claim_once(
        &self,
        id: &str,
        now: Millis,
        lease_until: Millis,
    ) -> Result<Recorded, Error> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(once_pk(id)))
            .item("sk", s("O"))
            .item("done", AttributeValue::Bool(false))
            .item("lease", n(lease_until))
            .item("expires", expires(now))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        if conditional("dynamodb:PutItem", put)?.is_some() {
            return Ok(Recorded::New);
        }
        take_over(self.update_once(id), now, lease_until).await
    }

    async fn record_heartbeat(&self, h: &Heartbeat, now: Millis) -> Result<(), Error> {
        let pair = format!("{}#{}", h.account, h.region);
        let state = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(HEARTBEAT_PK))
            .key("sk", s(format!("S#{pair}")))
            .update_expression("SET #l = :t, #w = :now, #a = :a, #r = :r ADD #n :one")
            .condition_expression("attribute_not_exists(#l) OR #l < :t")
            .expression_attribute_names("#l", "last")
            .expression_attribute_names("#w", "arrived")
            .expression_attribute_names("#a", "account")
            .expression_attribute_names("#r", "region")
            .expression_attribute_names("#n", "beats")
            .expression_attribute_values(":t", n(h.event_time))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":a", s(&h.account))
            .expression_attribute_values(":r", s(&h.region))
            .expression_attribute_values(":one", n(1))
            .send()
            .await;
        if conditional("dynamodb:UpdateItem", state)?.is_none() {
            return Ok(());
        }
        let bucket = latency_bucket(now - h.event_time);
        let day = &format_millis(h.event_time)[..10];
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(HEARTBEAT_PK))
            .key("sk", s(format!("D#{day}#{pair}")))
            .update_expression("SET #a = :a, #r = :r, expires = :exp ADD #b :one")
            .expression_attribute_names("#a", "account")
            .expression_attribute_names("#r", "region")
            .expression_attribute_names("#b", format!("h{bucket}"))
            .expression_attribute_values(":a", s(&h.account))
            .expression_attribute_values(":r", s(&h.region))
            .expression_attribute_values(":exp", n((now + HISTOGRAM_RETENTION_MS) / 1000))
            .expression_attribute_values(":one", n(1))
            .send()
            .await;
        res.map(|_| ())
            .map_err(|e| aws_error(Port::State, "dynamodb:UpdateItem", e))
    }

    /// The last heartbeat of every (account, region) that ever sent one.
    async fn heartbeat_states(&self) -> Result<Vec<HeartbeatState>, Error> {
        let items = self
            .range(HEARTBEAT_PK.into(), "S#".into(), "S$".into())
            .await?;
        items
            .iter()
            .map(|item| {
                Ok(HeartbeatState {
                    account: get_s(item, "account")?.to_owned(),
                    region: get_s(item, "region")?.to_owned(),
                    last: get_n(item, "last")?,
                    arrived: get_n(item, "arrived")?,
                    heartbeats: get_n(item, "beats")? as u64,
                    lost_paged: get_n(item, "lost_paged").ok(),
                })
            })
            .collect()
    }

    async fn point_contained(
        &self,
        account: &str,
        entity: &str,
        request: &ContainmentRequest,
        now: Millis,
    ) -> Result<(), Error> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("P#{account}#{entity}")))
            .item("sk", s("P"))
            .item("incident_id", s(&request.incident_id))
            .item("principal_arn", s(&request.principal_arn))
            .item("account", s(&request.account))
            .item("expires", n((now + POINTER_RETENTION_MS) / 1000))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_error(Port::State, "dynamodb:PutItem", e))
    }

    async fn contained_by(
        &self,
        account: &str,
        entity: &str,
    ) -> Result<Option<ContainmentRequest>, Error> {
        let Some(item) = self.get(format!("P#{account}#{entity}"), "P").await? else {
            return Ok(None);
        };
        Ok(Some(ContainmentRequest {
            incident_id: get_s(&item, "incident_id")?.to_owned(),
            principal_arn: get_s(&item, "principal_arn")?.to_owned(),
            account: get_s(&item, "account")?.to_owned(),
        }))
    }

    async fn listed(&self) -> Result<Vec<Listed>, Error> {
        let items = self
            .range(HEARTBEAT_PK.into(), "L#".into(), "L$".into())
            .await?;
        items
            .iter()
            .map(|item| {
                Ok(Listed {
                    account: get_s(item, "account")?.to_owned(),
                    region: get_s(item, "region")?.to_owned(),
                    listed: get_n(item, "listed")?,
                    paged: get_bool(item, "paged"),
                })
            })
            .collect()
    }

    async fn put_listed(&self, l: &Listed) -> Result<(), Error> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(HEARTBEAT_PK))
            .item("sk", s(format!("L#{}#{}", l.account, l.region)))
            .item("account", s(&l.account))
            .item("region", s(&l.region))
            .item("listed", n(l.listed))
            .item("paged", AttributeValue::Bool(l.paged))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_error(Port::State, "dynamodb:PutItem", e))
    }

    async fn forget_listed(&self, account: &str, region: &str) -> Result<(), Error> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(HEARTBEAT_PK))
            .key("sk", s(format!("L#{account}#{region}")))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_error(Port::State, "dynamodb:DeleteItem", e))
    }

    async fn set_lost_paged(
        &self,
        account: &str,
        region: &str,
        last: Option<Millis>,
    ) -> Result<(), Error> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(HEARTBEAT_PK))
            .key("sk", s(format!("S#{account}#{region}")))
            .condition_expression("attribute_exists(pk)");
        let update = match last {
            Some(t) => update
                .update_expression("SET lost_paged = :t")
                .expression_attribute_values(":t", n(t)),
            None => update.update_expression("REMOVE lost_paged"),
        };
        conditional("dynamodb:UpdateItem", update.send().await).map(|_| ())
    }

    async fn settle_once(&self, id: &str, done: bool) -> Result<(), Error> {
        let update = self
            .update_once(id)
            .condition_expression("done = :no")
            .expression_attribute_values(":no", AttributeValue::Bool(false));
        let res = if done {
            update
                .update_expression("SET done = :yes")
                .expression_attribute_values(":yes", AttributeValue::Bool(true))
        } else {
            update
                .update_expression("SET lease = :zero")
                .expression_attribute_values(":zero", n(0))
        }
        .send()
        .await;
        conditional("dynamodb:UpdateItem", res).map(|_| ())
    }

    /// Records the containment outcome on incident `id`.
    async fn record_containment(
        &self,
        key: &Key,
        id: &str,
        state: ContainmentState,
        detail: &str,
    ) -> Result<bool, Error> {
        let res = self
            .update_incident(key)
            .update_expression("SET containment_state = :s, containment_detail = :d")
            .condition_expression("id = :id")
            .expression_attribute_values(":s", s(state.as_str()))
            .expression_attribute_values(":d", s(detail))
            .expression_attribute_values(":id", s(id))
            .send()
            .await;
        Ok(conditional("dynamodb:UpdateItem", res)?.is_some())
    }
}

impl WindowStore {
    /// Closes the key's incident after `tripwire release`. Returns whether one existed.
    pub async fn release(&self, key: &Key, now: Millis) -> Result<bool, Error> {
        let res = self
            .update_incident(key)
            // Closing = its span ends long ago, so the next burst opens a new incident.
            .update_expression(
                "SET containment_state = :r, released_at = :now, #last = :closed, #first = :closed",
            )
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#last", "last")
            .expression_attribute_names("#first", "first")
            .expression_attribute_values(":r", s(ContainmentState::Released.as_str()))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":closed", n(0))
            .send()
            .await;
        Ok(conditional("dynamodb:UpdateItem", res)?.is_some())
    }

    async fn set_if(
        &self,
        key: &Key,
        id: &str,
        update: &str,
        cond: &str,
        attr: &str,
        value: AttributeValue,
    ) -> Result<bool, Error> {
        let res = self
            .update_incident(key)
            .update_expression(update)
            .condition_expression(cond)
            .expression_attribute_names("#a", attr)
            .expression_attribute_values(":t", value)
            .expression_attribute_values(":id", s(id))
            .send()
            .await;
        Ok(conditional("dynamodb:UpdateItem", res)?.is_some())
    }
}

/// A conditional write's outcome: `None` when its condition did not hold.
fn conditional<T, E: ConditionFailed>(
    op: &'static str,
    res: Result<T, SdkError<E, HttpResponse>>,
) -> Result<Option<T>, Error> {
    match res {
        Ok(v) => Ok(Some(v)),
        Err(e)
            if e.as_service_error()
                .is_some_and(ConditionFailed::condition_failed) =>
        {
            Ok(None)
        }
        Err(e) => Err(aws_error(Port::State, op, e)),
    }
}

/// The operations whose condition can fail.
trait ConditionFailed: ProvideErrorMetadata + std::error::Error + 'static {
    fn condition_failed(&self) -> bool;
}
impl ConditionFailed for PutItemError {
    fn condition_failed(&self) -> bool {
        self.is_conditional_check_failed_exception()
    }
}
impl ConditionFailed for UpdateItemError {
    fn condition_failed(&self) -> bool {
        self.is_conditional_check_failed_exception()
    }
}

/// The incident `item` holds, counted by its counts item (`C#<id>`) when there is one.
fn stored_incident(item: &Item, counts: Option<&Item>) -> Result<StoredIncident, Error> {
    let mut incident: Incident = serde_json::from_str(get_s(item, "doc")?)
        .map_err(|e| Error::Stored(format!("doc: {e}")))?;
    let open = OpenIncident {
        id: get_s(item, "id")?.to_owned(),
        first_time: get_n(item, "first")?,
        last_time: get_n(item, "last")?,
    };
    // The attributes are authoritative (joins add to them, not to `doc`).
    let set = |attr: &str| -> std::collections::BTreeSet<String> {
        item.get(attr)
            .and_then(|v| v.as_ss().ok())
            .map(|ids| ids.iter().cloned().collect())
            .unwrap_or_default()
    };
    incident.instance_ids = set("ids");
    incident.unconfirmed_ids = set("uids")
        .difference(&incident.instance_ids)
        .cloned()
        .collect();
    incident.first_event_time = incident.first_event_time.min(open.first_time);
    incident.last_event_time = incident.last_event_time.max(open.last_time);
    incident.attempts = get_n(item, "attempts").unwrap_or(0) as u64;
    if let Some(c) = counts {
        let count = |attr: &str| get_n(c, attr).unwrap_or(0).max(0) as u64;
        incident.unlisted = Unlisted {
            confirmed: count("n").saturating_sub(incident.instance_ids.len() as u64),
            unconfirmed: count("un").saturating_sub(incident.unconfirmed_ids.len() as u64),
        };
        // The attempt lane's joined calls, each once (the join's transaction).
        incident.attempts += count("attempt_calls");
    }
    Ok(StoredIncident {
        open,
        incident,
        alerted: get_bool(item, "alerted"),
        invoked: get_bool(item, "invoked"),
        containment_alerted: item
            .get("containment_alerted")
            .and_then(|v| v.as_s().ok())
            .and_then(|s| ContainmentState::parse(s)),
        opened_at: get_n(item, "opened_at").ok(),
        containment_state: item
            .get("containment_state")
            .and_then(|v| v.as_s().ok())
            .and_then(|s| ContainmentState::parse(s)),
        history: item
            .get("history")
            .and_then(|v| v.as_l().ok())
            .map(|l| {
                l.iter()
                    .filter_map(|v| v.as_s().ok())
                    .filter_map(|h| parse_span(h))
                    .collect()
            })
            .unwrap_or_default(),
    })
}

fn parse_span(h: &str) -> Option<OpenIncident> {
    let mut parts = h.splitn(3, ':');
    let first_time = parts.next()?.parse().ok()?;
    let last_time = parts.next()?.parse().ok()?;
    Some(OpenIncident {
        id: parts.next()?.to_owned(),
        first_time,
        last_time,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::operation::put_item::PutItemOutput;
    use aws_sdk_dynamodb::operation::update_item::UpdateItemOutput;
    use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    use tripwire_pipeline::IncidentStore;
    use tripwire_synth::{terminate_record, Call, Caller};

    fn termination() -> (Key, Termination) {
        let caller = Caller::parse("role/vendor/cleanup-task@222222222222").unwrap();
        let ids = vec!["i-0123456789abcdef0".to_string()];
        let rec = terminate_record(&Call {
            caller: &caller,
            account: "222222222222",
            region: "us-east-1",
            time: 1_515_535_740_000,
            instance_ids: &ids,
            event_id: "ev-1",
            error: None,
            source_ip: "10.0.0.1",
            user_agent: "test",
            invoked_by: None,
            already_terminated: 0,
            session: "session",
            access_key: "EXAMPLEEXAMPLE00",
        });
        let mut out = Vec::new();
        tripwire_engine::scan(&rec.to_string(), &mut Default::default(), &mut out).unwrap();
        let t = out.remove(0);
        (
            Key::new(
                tripwire_engine::window::Lane::Burst,
                &t.principal.arn,
                &t.account,
            ),
            t,
        )
    }

    fn condition_failed() -> PutItemError {
        PutItemError::ConditionalCheckFailedException(
            ConditionalCheckFailedException::builder()
                .message("exists")
                .build(),
        )
    }

    #[tokio::test]
    async fn a_first_delivery_is_one_conditional_put_on_the_event_key() {
        let put = mock!(Client::put_item)
            .match_requests(|r| {
                r.table_name() == Some("tw")
                    && r.condition_expression() == Some("attribute_not_exists(pk)")
                    && r.item()
                        .and_then(|i| i.get("pk"))
                        .and_then(|v| v.as_s().ok())
                        .map(String::as_str)
                        // One key per role: account and name, whatever path a record shows.
                        == Some("W#222222222222|arn:aws:iam::222222222222:role/cleanup-task")
                    && r.item()
                        .and_then(|i| i.get("sk"))
                        .and_then(|v| v.as_s().ok())
                        .map(String::as_str)
                        == Some("E#001515535740000#ev-1")
                    && r.item()
                        .and_then(|i| i.get("ids"))
                        .and_then(|v| v.as_ss().ok())
                        .map(|v| v.len())
                        == Some(1)
            })
            .then_output(|| PutItemOutput::builder().build());
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&put]);
        let (key, t) = termination();
        assert_eq!(
            WindowStore::new(client, "tw")
                .record(&key, &t, 0, 30_000)
                .await
                .unwrap(),
            Recorded::New
        );
        assert_eq!(put.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_redelivery_takes_over_only_an_expired_lease() {
        // The claim succeeds only on unfinished work whose lease ran out; otherwise the
        // delivery is a duplicate (finished, or in flight in another container).
        for (claimed, want) in [(false, Recorded::Duplicate), (true, Recorded::Unfinished)] {
            let put = mock!(Client::put_item).then_error(condition_failed);
            let matches = |r: &aws_sdk_dynamodb::operation::update_item::UpdateItemInput| {
                r.condition_expression() == Some("done = :no AND lease < :now")
                    && r.expression_attribute_values()
                        .and_then(|v| v.get(":until"))
                        .and_then(|v| v.as_n().ok())
                        .map(String::as_str)
                        == Some("30000")
            };
            let claim = if claimed {
                mock!(Client::update_item)
                    .match_requests(matches)
                    .then_output(|| UpdateItemOutput::builder().build())
            } else {
                mock!(Client::update_item)
                    .match_requests(matches)
                    .then_error(|| {
                        UpdateItemError::ConditionalCheckFailedException(
                            ConditionalCheckFailedException::builder()
                                .message("leased")
                                .build(),
                        )
                    })
            };
            let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&put, &claim]);
            let (key, t) = termination();
            assert_eq!(
                WindowStore::new(client, "tw")
                    .record(&key, &t, 0, 30_000)
                    .await
                    .unwrap(),
                want
            );
        }
    }

    #[tokio::test]
    async fn the_first_incident_is_a_conditional_put_and_a_lost_race_is_not_an_error() {
        let (key, t) = termination();
        let policy = tripwire_engine::Policy::from_toml("").unwrap();
        let plan = tripwire_engine::containment::plan(
            &policy,
            &t.principal,
            &tripwire_engine::containment::Culprit::of_call(&t),
            0,
        );
        let w = tripwire_engine::window::WindowCount {
            count: 10,
            first_time: t.event_time,
            last_time: t.event_time,
        };
        let inc = Incident::open(&key, &t, w, 10, false, plan);
        // Before the put, so no join can count them again: the instances' marks, the
        // counts and the index, under the would-be incident's ID.
        let mark = format!("M#{}#i-0123456789abcdef0", inc.id);
        let marked = mock!(Client::update_item)
            .match_requests(move |r| {
                r.key()
                    .and_then(|k| k.get("pk"))
                    .and_then(|v| v.as_s().ok())
                    == Some(&mark)
            })
            .then_output(|| {
                aws_sdk_dynamodb::operation::update_item::UpdateItemOutput::builder().build()
            });
        let counts = mock!(Client::put_item)
            .match_requests(|r| {
                r.condition_expression().is_none()
                    && r.item().and_then(|i| i.get("n")) == Some(&AttributeValue::N("1".into()))
            })
            .then_output(|| {
                aws_sdk_dynamodb::operation::put_item::PutItemOutput::builder().build()
            });
        let index = mock!(Client::put_item)
            .match_requests(|r| r.condition_expression().is_none())
            .then_output(|| {
                aws_sdk_dynamodb::operation::put_item::PutItemOutput::builder().build()
            });
        let lost = mock!(Client::put_item)
            .match_requests(|r| r.condition_expression() == Some("attribute_not_exists(pk)"))
            .then_error(condition_failed);
        let client = mock_client!(
            aws_sdk_dynamodb,
            RuleMode::Sequential,
            [&marked, &counts, &index, &lost]
        );
        let opened = WindowStore::new(client, "tw")
            .open_incident(&key, &inc, None, 0)
            .await
            .unwrap();
        assert!(!opened);
        assert_eq!(
            (
                marked.num_calls(),
                counts.num_calls(),
                index.num_calls(),
                lost.num_calls()
            ),
            (1, 1, 1, 1)
        );
    }

    #[test]
    fn a_mark_says_whether_this_call_counts_the_instance() {
        let item = |pairs: &[(&str, AttributeValue)]| -> Item {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect()
        };
        let (yes, no) = (AttributeValue::Bool(true), AttributeValue::Bool(false));
        let cases = [
            // (old mark, this call, confirmed?) -> what it means
            (item(&[]), "e1", true, Mark::Created),
            (
                item(&[("e", s("e1")), ("c", yes.clone())]),
                "e1",
                true,
                Mark::Created,
            ),
            (
                item(&[("e", s("e0")), ("c", yes.clone()), ("ce", s("e0"))]),
                "e1",
                true,
                Mark::Seen,
            ),
            (
                item(&[("e", s("e0")), ("c", no.clone())]),
                "e1",
                true,
                Mark::Confirmed,
            ),
            // This call confirmed it on an earlier attempt.
            (
                item(&[("e", s("e0")), ("c", yes.clone()), ("ce", s("e1"))]),
                "e1",
                true,
                Mark::Confirmed,
            ),
            (
                item(&[("e", s("e0")), ("c", no.clone())]),
                "e1",
                false,
                Mark::Seen,
            ),
            // Created unconfirmed by this call, confirmed since by another: still this
            // call's to count as unconfirmed (the other moved it).
            (
                item(&[("e", s("e1")), ("c", yes), ("ce", s("e2"))]),
                "e1",
                false,
                Mark::Created,
            ),
            (item(&[]), "e1", false, Mark::Created),
        ];
        for (old, event, confirmed, want) in cases {
            assert_eq!(
                mark_of(&old, event, confirmed),
                want,
                "{old:?} {event} {confirmed}"
            );
        }
    }

    #[tokio::test]
    async fn throttling_is_a_transient_error() {
        let throttled = mock!(Client::put_item).then_http_response(|| {
            aws_smithy_runtime_api::http::Response::new(
                aws_smithy_runtime_api::http::StatusCode::try_from(400).unwrap(),
                aws_smithy_types::body::SdkBody::from(r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"slow down"}"#),
            )
        });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&throttled]);
        let (key, t) = termination();
        let err = WindowStore::new(client, "tw")
            .record(&key, &t, 0, 30_000)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Aws { transient: true, code, .. } if code == "ThrottlingException"),
            "{err:?}"
        );
    }
}
