//! Incident items (`I#<key>`), with their instance marks (`M#`), counts (`C#`), export
//! index (`X#`) and join guards (`J#`): an incident of any size at a flat cost per call.

use super::keys::*;
use super::*;

/// At most this many instance IDs are listed on an incident's item (alerts list up to
/// 500); the rest are counted, and every one stays in its call's item.
pub const INCIDENT_SAMPLE: usize = 500;

/// Instance marks one container writes at once.
pub(super) const MARKS_IN_FLIGHT: usize = 32;

/// What marking one instance says about the call that marked it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mark {
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
pub(super) fn mark_of(old: &Item, event_id: &str, confirmed: bool) -> Mark {
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
pub(super) struct Added {
    /// New, named by a call that succeeded.
    confirmed: Vec<String>,
    /// New, named only by an unconfirmed call.
    unconfirmed: Vec<String>,
    /// Counted as unconfirmed before; confirmed by this call.
    moved: Vec<String>,
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
    /// What it is (`ec2:instance`, `rds:db`, …): `instance_id` is that type's ID.
    pub resource_type: String,
}

/// The incident `item` holds, counted by its counts item (`C#<id>`) when there is one.
pub(super) fn stored_incident(item: &Item, counts: Option<&Item>) -> Result<StoredIncident, Error> {
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

pub(super) fn parse_span(h: &str) -> Option<OpenIncident> {
    let mut parts = h.splitn(3, ':');
    let first_time = parts.next()?.parse().ok()?;
    let last_time = parts.next()?.parse().ok()?;
    Some(OpenIncident {
        id: parts.next()?.to_owned(),
        first_time,
        last_time,
    })
}

impl WindowStore {
    /// Every instance incident `incident_id` terminated, in termination order, from its
    /// calls' items (kept a day after the window, like every call): `None` when no
    /// incident has that ID here. Read page by page; never on the hot path.
    pub async fn export(&self, incident_id: &str) -> Result<Option<Vec<Terminated>>, Error> {
        let Some((index, current)) = self.indexed(incident_id).await? else {
            return Ok(None);
        };
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
            let principal =
                get_s(c, "p").unwrap_or(current.incident.principal_arn().unwrap_or_default());
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
                    resource_type: current.incident.resource_type.clone(),
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

    /// Marks `instances` as counted for incident `incident_id` by the call `event_id`,
    /// [`MARKS_IN_FLIGHT`] at a time, and says what each mark means for that call.
    pub(super) async fn mark<'a>(
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
    pub(super) async fn apply_join(
        &self,
        key: &Key,
        id: &str,
        t: &Termination,
        added: &Added,
        now: Millis,
    ) -> Result<(), Error> {
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
        // Only the guard has a condition: `Changed` means an earlier attempt of this
        // call added it already. Racing joins spread out by the call's own eventID.
        let items = vec![
            TransactWriteItem::builder().put(call).build(),
            TransactWriteItem::builder().update(counts).build(),
        ];
        self.transact(items, &t.event_id).await.map(|_| ())
    }

    /// Lists what `added` added on the incident item while it lists fewer than
    /// [`INCIDENT_SAMPLE`] IDs, and unlists unconfirmed IDs that `added` confirmed; sets
    /// are idempotent, so a retry changes nothing. `incident` (as just read) follows.
    pub(super) async fn add_to_sample(
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
    pub(super) fn update_incident(
        &self,
        key: &Key,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(incident_pk(key)))
            .key("sk", s("CURRENT"))
    }

    /// An update of incident `id` that holds only while it is current and neither being
    /// released nor released: the responder's hold and outcome.
    fn unless_releasing(
        &self,
        key: &Key,
        id: &str,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.update_incident(key)
            .condition_expression(
                "id = :id AND (attribute_not_exists(containment_state) OR NOT (containment_state IN (:releasing, :released)))",
            )
            .expression_attribute_values(":id", s(id))
            .expression_attribute_values(":releasing", s(ContainmentState::Releasing.as_str()))
            .expression_attribute_values(":released", s(ContainmentState::Released.as_str()))
    }
}

impl Incidents for WindowStore {
    async fn close(&self, key: &Key, now: Millis) -> Result<bool, Error> {
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

    async fn hold_for_containment(
        &self,
        key: &Key,
        id: &str,
        until: Millis,
    ) -> Result<bool, Error> {
        let res = self
            .unless_releasing(key, id)
            .update_expression("SET held_until = :u")
            .expression_attribute_values(":u", n(until))
            .send()
            .await;
        Ok(conditional("dynamodb:UpdateItem", res)?.is_some())
    }

    async fn record_containment(
        &self,
        key: &Key,
        id: &str,
        state: ContainmentState,
        detail: &str,
    ) -> Result<bool, Error> {
        let res = self
            .unless_releasing(key, id)
            .update_expression(
                "SET containment_state = :s, containment_detail = :d REMOVE held_until",
            )
            .expression_attribute_values(":s", s(state.as_str()))
            .expression_attribute_values(":d", s(detail))
            .send()
            .await;
        Ok(conditional("dynamodb:UpdateItem", res)?.is_some())
    }

    async fn mark_releasing(
        &self,
        key: &Key,
        id: &str,
        now: Millis,
        detail: &str,
    ) -> Result<bool, Error> {
        let res = self
            .update_incident(key)
            .update_expression("SET containment_state = :s, containment_detail = :d")
            .condition_expression(
                "id = :id AND (attribute_not_exists(held_until) OR held_until < :now)",
            )
            .expression_attribute_values(":s", s(ContainmentState::Releasing.as_str()))
            .expression_attribute_values(":d", s(detail))
            .expression_attribute_values(":id", s(id))
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        Ok(conditional("dynamodb:UpdateItem", res)?.is_some())
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
}

impl WindowStore {
    /// The export index of incident `incident_id` and its key's current incident.
    async fn indexed(&self, incident_id: &str) -> Result<Option<(Item, StoredIncident)>, Error> {
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
        Ok(Some((index, current)))
    }

    /// Incident `incident_id` as the page names it: its key's current incident, and
    /// whether that is the one (`false`: it was closed and another opened since).
    pub async fn incident_by_id(
        &self,
        incident_id: &str,
    ) -> Result<Option<(StoredIncident, bool)>, Error> {
        let Some((_, current)) = self.indexed(incident_id).await? else {
            return Ok(None);
        };
        let is_current = current.open.id == incident_id;
        let known = is_current || current.history.iter().any(|o| o.id == incident_id);
        Ok(known.then_some((current, is_current)))
    }
}
