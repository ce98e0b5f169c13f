//! The shutdown-wave lane's items (`V#`, `VI#`, `VC#`): each instance's first
//! state-change event, the pair's window and current wave, and the wave's counts.
//!
//! Exactly once, under any interleaving: an instance is credited to a wave by one
//! transaction that sets its `w` (only if unset) and adds to the wave's counts; its
//! caller by one that sets its `by` (only if unset) and, if it has a `w`, adds to that
//! wave's claims. The state-change side writes `w` after reading `by`, the CloudTrail
//! side `by` after reading `w`, each conditioned on what it read, so whichever comes
//! second credits the claim and a race is retried, never counted twice or lost.

use super::keys::*;
use super::*;
use aws_sdk_dynamodb::types::{KeysAndAttributes, Put, TransactWriteItem, Update as TxUpdate};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use tripwire_engine::record::StateChange;
use tripwire_engine::wave::{Wave, SAMPLE};
use tripwire_pipeline::{StoredWave, Waves};

/// Instances credited or named at once.
const IN_FLIGHT: usize = 16;
/// Reads-and-decides of one instance against racing writers.
const TRIES: u64 = 8;

fn build(e: aws_sdk_dynamodb::error::BuildError) -> Error {
    Error::encoding("a wave transaction", e)
}

impl WindowStore {
    fn update_instance(&self, account: &str, region: &str, instance: &str) -> Update {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(instance_pk(account, region, instance)))
            .key("sk", s("VI"))
    }

    fn update_wave(&self, account: &str, region: &str) -> Update {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(pair_pk(account, region)))
            .key("sk", s("WAVE"))
    }

    /// The counts update crediting a wave with `n` instances and, if named, one claim.
    fn add_counts(
        &self,
        id: &str,
        instances: i64,
        caller: Option<&str>,
    ) -> Result<TransactWriteItem, Error> {
        let mut u = TxUpdate::builder()
            .table_name(&self.table)
            .key("pk", s(wave_counts_pk(id)))
            .key("sk", s("VC"))
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":n", n(instances));
        u = match caller {
            Some(p) => u
                .update_expression(
                    "ADD n :n, claimed :one SET claims.#p = if_not_exists(claims.#p, :zero) + :one",
                )
                .expression_attribute_names("#p", p)
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":zero", n(0)),
            None => u.update_expression("ADD n :n"),
        };
        Ok(TransactWriteItem::builder()
            .update(u.build().map_err(build)?)
            .build())
    }

    /// Credits one recorded instance to wave `id`, and its named caller with it.
    /// Whether this call credited it.
    async fn credit(
        &self,
        account: &str,
        region: &str,
        id: &str,
        instance: &str,
    ) -> Result<bool, Error> {
        for _ in 0..TRIES {
            let Some(item) = self
                .get(instance_pk(account, region, instance), "VI")
                .await?
            else {
                return Ok(false);
            };
            if item.contains_key("w") || !item.contains_key("t") {
                return Ok(false);
            }
            let by = get_s(&item, "by").ok();
            let mut mark = TxUpdate::builder()
                .table_name(&self.table)
                .key("pk", s(instance_pk(account, region, instance)))
                .key("sk", s("VI"))
                .update_expression("SET w = :w")
                .expression_attribute_values(":w", s(id));
            // `by` is one of DynamoDB's reserved words: always by its alias.
            mark = match by {
                Some(p) => mark
                    .condition_expression("attribute_not_exists(w) AND #by = :by")
                    .expression_attribute_values(":by", s(p)),
                None => mark
                    .condition_expression("attribute_not_exists(w) AND attribute_not_exists(#by)"),
            }
            .expression_attribute_names("#by", "by");
            let items = vec![
                TransactWriteItem::builder()
                    .update(mark.build().map_err(build)?)
                    .build(),
                self.add_counts(id, 1, by)?,
            ];
            if let Tx::Done = self.transact(items, instance).await? {
                return Ok(true);
            }
        }
        Err(Error::Stored(format!(
            "instance {instance} changed under every credit"
        )))
    }

    /// Names `principal` the caller of one instance. The wave it joined, if this
    /// principal is its caller.
    async fn name(
        &self,
        account: &str,
        region: &str,
        instance: &str,
        principal: &str,
        t: Millis,
    ) -> Result<Option<String>, Error> {
        for _ in 0..TRIES {
            // A record naming instances already named (a redelivery, a script's retry)
            // learns why from the failed write itself: no read per instance, so such a
            // call costs what its first delivery did.
            let first = self
                .update_instance(account, region, instance)
                .update_expression("SET #by = :p, bt = :t, expires = if_not_exists(expires, :exp)")
                .condition_expression("attribute_not_exists(#by) AND attribute_not_exists(w)")
                .expression_attribute_names("#by", "by")
                .expression_attribute_values(":p", s(principal))
                .expression_attribute_values(":t", n(t))
                .expression_attribute_values(":exp", expires(t.max(0)))
                .return_values_on_condition_check_failure(
                    aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            let item = match first {
                Ok(_) => return Ok(None),
                Err(e) => match e.as_service_error() {
                    Some(UpdateItemError::ConditionalCheckFailedException(c)) => {
                        c.item().cloned().unwrap_or_default()
                    }
                    _ => return Err(aws_error(Port::State, "dynamodb:UpdateItem", e)),
                },
            };
            let wave = get_s(&item, "w").ok();
            match (get_s(&item, "by").ok(), wave) {
                (Some(by), w) => return Ok(w.filter(|_| by == principal).map(str::to_owned)),
                (None, None) => continue,
                (None, Some(w)) => {
                    let mark = TxUpdate::builder()
                        .table_name(&self.table)
                        .key("pk", s(instance_pk(account, region, instance)))
                        .key("sk", s("VI"))
                        .update_expression("SET #by = :p, bt = :t")
                        .condition_expression("attribute_not_exists(#by) AND w = :w")
                        .expression_attribute_names("#by", "by")
                        .expression_attribute_values(":p", s(principal))
                        .expression_attribute_values(":t", n(t))
                        .expression_attribute_values(":w", s(w))
                        .build()
                        .map_err(build)?;
                    let items = vec![
                        TransactWriteItem::builder().update(mark).build(),
                        self.add_counts(w, 0, Some(principal))?,
                    ];
                    if let Tx::Done = self.transact(items, instance).await? {
                        return Ok(Some(w.to_owned()));
                    }
                }
            }
        }
        Err(Error::Stored(format!(
            "instance {instance} changed under every naming"
        )))
    }

    fn read_wave(item: &Item, counts: Option<&Item>) -> Result<StoredWave, Error> {
        let num = |k: &str| get_n(item, k);
        let mut ids: Vec<String> = item
            .get("ids")
            .and_then(|v| v.as_ss().ok())
            .cloned()
            .unwrap_or_default();
        ids.sort_unstable();
        let count = |k: &str| counts.and_then(|c| get_n(c, k).ok()).unwrap_or(0);
        let mut wave = Wave::stored(
            get_s(item, "id")?.to_owned(),
            get_s(item, "account")?.to_owned(),
            get_s(item, "region")?.to_owned(),
            (num("first")?, num("trigger")?, num("last")?),
            u32::try_from(num("tc")?).unwrap_or(u32::MAX),
            u32::try_from(num("thr")?).unwrap_or(u32::MAX),
            get_s(item, "win")?.to_owned(),
            usize::try_from(count("n")).unwrap_or(0),
            ids,
        );
        if let Some(claims) = counts
            .and_then(|c| c.get("claims"))
            .and_then(|v| v.as_m().ok())
        {
            let mut by: Vec<(&str, usize)> = Vec::new();
            for (p, v) in claims {
                let k = v.as_n().ok().and_then(|k| k.parse().ok()).unwrap_or(0);
                by.push((p.as_str(), k));
            }
            wave.claimed_by = tripwire_engine::wave::claims_of(by);
        }
        let previous = match (num("pf"), num("pl")) {
            (Ok(f), Ok(l)) => Some((f, l)),
            _ => None,
        };
        Ok(StoredWave {
            wave,
            trigger_event_id: get_s(item, "te")?.to_owned(),
            alerted: get_bool(item, "alerted"),
            claimed: usize::try_from(count("claimed")).unwrap_or(0),
            previous,
        })
    }
}

impl Waves for WindowStore {
    async fn record_change(
        &self,
        c: &StateChange,
        now: Millis,
        lease_until: Millis,
    ) -> Result<Recorded, Error> {
        let first = self
            .update_instance(&c.account, &c.region, &c.instance_id)
            .update_expression("SET t = :t, done = :no, lease = :l, expires = :exp")
            .condition_expression("attribute_not_exists(t)")
            .expression_attribute_values(":t", n(c.time))
            .expression_attribute_values(":no", AttributeValue::Bool(false))
            .expression_attribute_values(":l", n(lease_until))
            .expression_attribute_values(":exp", expires(now))
            .send()
            .await;
        let recorded = if conditional("dynamodb:UpdateItem", first)?.is_some() {
            Recorded::New
        } else {
            take_over(
                self.update_instance(&c.account, &c.region, &c.instance_id),
                now,
                lease_until,
            )
            .await?
        };
        if recorded != Recorded::Duplicate {
            // The window entry: idempotent, so a retry writes it again harmlessly.
            self.client
                .put_item()
                .table_name(&self.table)
                .item("pk", s(pair_pk(&c.account, &c.region)))
                .item("sk", s(change_sk(c.time, &c.instance_id)))
                .item("expires", expires(now))
                .send()
                .await
                .map_err(|e| aws_error(Port::State, "dynamodb:PutItem", e))?;
        }
        Ok(recorded)
    }

    async fn settle_change(&self, c: &StateChange, done: bool) -> Result<(), Error> {
        let u = self.update_instance(&c.account, &c.region, &c.instance_id);
        let res = if done {
            u.update_expression("SET done = :yes")
                .expression_attribute_values(":yes", AttributeValue::Bool(true))
                .send()
                .await
        } else {
            u.update_expression("SET lease = :zero")
                .condition_expression("done = :no")
                .expression_attribute_values(":zero", n(0))
                .expression_attribute_values(":no", AttributeValue::Bool(false))
                .send()
                .await
        };
        conditional("dynamodb:UpdateItem", res).map(|_| ())
    }

    async fn changes(
        &self,
        account: &str,
        region: &str,
        from: Millis,
        to: Millis,
    ) -> Result<Vec<(Millis, String)>, Error> {
        let items = self
            .range(
                pair_pk(account, region),
                change_sk(from, ""),
                change_sk(to.saturating_add(1), ""),
            )
            .await?;
        items
            .iter()
            .map(|item| {
                let sk = get_s(item, "sk")?;
                let mut parts = sk.splitn(3, '#').skip(1);
                let t = parts.next().and_then(|t| t.parse().ok());
                match (t, parts.next()) {
                    (Some(t), Some(id)) => Ok((t, id.to_owned())),
                    _ => Err(Error::Stored(format!("bad window entry {sk}"))),
                }
            })
            .collect()
    }

    async fn any_change(
        &self,
        account: &str,
        region: &str,
        from: Millis,
        to: Millis,
    ) -> Result<bool, Error> {
        let page = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :a AND :b")
            .expression_attribute_values(":pk", s(pair_pk(account, region)))
            .expression_attribute_values(":a", s(change_sk(from, "")))
            .expression_attribute_values(":b", s(change_sk(to.saturating_add(1), "")))
            .limit(1)
            .send()
            .await
            .map_err(|e| aws_error(Port::State, "dynamodb:Query", e))?;
        let found = page.items.unwrap_or_default().len();
        crate::stages::count_items_read(found);
        Ok(found > 0)
    }

    async fn wave(&self, account: &str, region: &str) -> Result<Option<StoredWave>, Error> {
        let Some(item) = self.get(pair_pk(account, region), "WAVE").await? else {
            return Ok(None);
        };
        let counts = self.get(wave_counts_pk(get_s(&item, "id")?), "VC").await?;
        Self::read_wave(&item, counts.as_ref()).map(Some)
    }

    async fn open_wave(
        &self,
        w: &Wave,
        trigger_event_id: &str,
        replacing: Option<&str>,
        now: Millis,
    ) -> Result<bool, Error> {
        let pk = pair_pk(&w.account, &w.region);
        let old = match replacing {
            Some(_) => self.get(pk.clone(), "WAVE").await?,
            None => None,
        };
        let mut put = Put::builder()
            .table_name(&self.table)
            .item("pk", s(&pk))
            .item("sk", s("WAVE"))
            .item("id", s(&w.id))
            .item("account", s(&w.account))
            .item("region", s(&w.region))
            .item("first", n(w.first_event_time))
            .item("trigger", n(w.trigger_time))
            .item("last", n(w.last_event_time))
            .item("tc", n(w.trigger_count))
            .item("thr", n(w.threshold))
            .item("win", s(&w.window))
            .item("te", s(trigger_event_id))
            .item("alerted", AttributeValue::Bool(false))
            .item("lp", n(0))
            .item("expires", expires(now));
        let sample: Vec<String> = w.instance_ids.iter().take(SAMPLE).cloned().collect();
        if !sample.is_empty() {
            put = put.item("ids", AttributeValue::Ss(sample));
        }
        if let Some(old) = &old {
            put = put
                .item("pf", n(get_n(old, "first")?))
                .item("pl", n(get_n(old, "last")?));
        }
        put = match replacing {
            Some(id) => put
                .condition_expression("id = :old")
                .expression_attribute_values(":old", s(id)),
            None => put.condition_expression("attribute_not_exists(pk)"),
        };
        let counts = Put::builder()
            .table_name(&self.table)
            .item("pk", s(wave_counts_pk(&w.id)))
            .item("sk", s("VC"))
            .item("n", n(0))
            .item("claimed", n(0))
            .item("claims", AttributeValue::M(HashMap::new()))
            .item("expires", expires(now))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(build)?;
        let listed = Put::builder()
            .table_name(&self.table)
            .item("pk", s(OPEN_WAVES))
            .item("sk", s(open_wave_sk(&w.account, &w.region, &w.id)))
            .item("expires", expires(now))
            .build()
            .map_err(build)?;
        let items = vec![
            TransactWriteItem::builder()
                .put(put.build().map_err(build)?)
                .build(),
            TransactWriteItem::builder().put(counts).build(),
            TransactWriteItem::builder().put(listed).build(),
        ];
        Ok(matches!(self.transact(items, &w.id).await?, Tx::Done))
    }

    async fn join_wave(
        &self,
        account: &str,
        region: &str,
        id: &str,
        instances: &[String],
        t: Millis,
    ) -> Result<Option<StoredWave>, Error> {
        let credited: Vec<String> = stream::iter(instances.iter().cloned())
            .map(|instance| async move {
                let done = self.credit(account, region, id, &instance).await?;
                Ok::<_, Error>(done.then_some(instance))
            })
            .buffer_unordered(IN_FLIGHT)
            .try_filter_map(|i| async move { Ok(i) })
            .try_collect()
            .await?;
        // DynamoDB has no max(): widen with conditional sets, which lose no race.
        for (cond, attr) in [("#a < :t", "last"), ("#a > :t", "first")] {
            let res = self
                .update_wave(account, region)
                .update_expression("SET #a = :t")
                .condition_expression(format!("id = :id AND {cond}"))
                .expression_attribute_names("#a", attr)
                .expression_attribute_values(":t", n(t))
                .expression_attribute_values(":id", s(id))
                .send()
                .await;
            conditional("dynamodb:UpdateItem", res)?;
        }
        if !credited.is_empty() {
            // The sample: sets are idempotent, and it stops growing at its size.
            let res = self
                .update_wave(account, region)
                .update_expression("ADD ids :ids")
                .condition_expression(
                    "id = :id AND (attribute_not_exists(ids) OR size(ids) < :cap)",
                )
                .expression_attribute_values(":ids", AttributeValue::Ss(credited))
                .expression_attribute_values(":id", s(id))
                .expression_attribute_values(":cap", n(SAMPLE))
                .send()
                .await;
            conditional("dynamodb:UpdateItem", res)?;
        }
        Ok(self
            .wave(account, region)
            .await?
            .filter(|w| w.wave.id == id))
    }

    async fn name_callers(
        &self,
        account: &str,
        region: &str,
        instances: &[String],
        principal_arn: &str,
        t: Millis,
    ) -> Result<Vec<String>, Error> {
        let unique: std::collections::BTreeSet<String> = instances.iter().cloned().collect();
        let waves: std::collections::BTreeSet<String> = stream::iter(unique)
            .map(|instance| async move {
                self.name(account, region, &instance, principal_arn, t)
                    .await
            })
            .buffer_unordered(IN_FLIGHT)
            .try_filter_map(|w| async move { Ok(w) })
            .try_collect()
            .await?;
        Ok(waves.into_iter().collect())
    }

    async fn set_wave_alerted(
        &self,
        account: &str,
        region: &str,
        id: &str,
        now: Millis,
    ) -> Result<(), Error> {
        let res = self
            .update_wave(account, region)
            .update_expression("SET alerted = :yes, lp = :now")
            .condition_expression("id = :id")
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":id", s(id))
            .send()
            .await;
        conditional("dynamodb:UpdateItem", res).map(|_| ())
    }

    async fn claim_wave_page(
        &self,
        account: &str,
        region: &str,
        id: &str,
        now: Millis,
        gap: Millis,
    ) -> Result<bool, Error> {
        let res = self
            .update_wave(account, region)
            .update_expression("SET lp = :now")
            .condition_expression("id = :id AND alerted = :yes AND lp <= :before")
            .expression_attribute_values(":id", s(id))
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":before", n(now - gap))
            .send()
            .await;
        Ok(conditional("dynamodb:UpdateItem", res)?.is_some())
    }

    async fn open_waves(&self) -> Result<Vec<(String, String, String)>, Error> {
        let items = self
            // Every entry begins with a 12-digit account: '0' to ':' (after '9').
            .range(OPEN_WAVES.into(), "0".into(), ":".into())
            .await?;
        items
            .iter()
            .map(|item| {
                let sk = get_s(item, "sk")?;
                let mut parts = sk.splitn(3, '#');
                match (parts.next(), parts.next(), parts.next()) {
                    (Some(a), Some(r), Some(id)) => Ok((a.to_owned(), r.to_owned(), id.to_owned())),
                    _ => Err(Error::Stored(format!("bad open wave {sk}"))),
                }
            })
            .collect()
    }

    async fn forget_wave(&self, account: &str, region: &str, id: &str) -> Result<(), Error> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(OPEN_WAVES))
            .key("sk", s(open_wave_sk(account, region, id)))
            .send()
            .await
            .map_err(|e| aws_error(Port::State, "dynamodb:DeleteItem", e))?;
        Ok(())
    }

    async fn callers(
        &self,
        account: &str,
        region: &str,
        instances: &[String],
    ) -> Result<HashMap<String, String>, Error> {
        let mut out = HashMap::new();
        for chunk in instances.chunks(100) {
            let mut keys = KeysAndAttributes::builder().consistent_read(true);
            for i in chunk {
                keys = keys.keys(HashMap::from([
                    ("pk".to_owned(), s(instance_pk(account, region, i))),
                    ("sk".to_owned(), s("VI")),
                ]));
            }
            let mut request = Some(HashMap::from([(
                self.table.clone(),
                keys.build().map_err(build)?,
            )]));
            while let Some(items) = request.take().filter(|r| !r.is_empty()) {
                let got = self
                    .client
                    .batch_get_item()
                    .set_request_items(Some(items))
                    .send()
                    .await
                    .map_err(|e| aws_error(Port::State, "dynamodb:BatchGetItem", e))?;
                for item in got.responses.unwrap_or_default().into_values().flatten() {
                    let (Ok(pk), Ok(by)) = (get_s(&item, "pk"), get_s(&item, "by")) else {
                        continue;
                    };
                    if let Some(instance) = pk.rsplit('#').next() {
                        out.insert(instance.to_owned(), by.to_owned());
                    }
                }
                request = got.unprocessed_keys;
            }
        }
        Ok(out)
    }
}
