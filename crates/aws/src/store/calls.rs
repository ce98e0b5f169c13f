//! Call items (`W#<key>`): each counted or failed call once, with its lease; the window
//! the burst rule reads.

use super::keys::*;
use super::*;
use tripwire_engine::window::Described;

impl WindowStore {
    /// An update of one call's window item.
    pub(super) fn update_call(
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

impl Calls for WindowStore {
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
            ("en", &event.event_name),
            ("ip", &event.described.source_ip),
            ("ua", &event.described.user_agent),
            ("pid", &event.described.principal_id),
            ("vpce", &event.described.vpc_endpoint_id),
            ("wip", &event.described.web_identity_provider),
            ("inv", &event.described.invoked_by),
        ] {
            if let Some(v) = v {
                put = put.item(attr, s(v));
            }
        }
        for (attr, v) in [
            ("con", event.described.from_console),
            ("ird", event.described.instance_profile),
        ] {
            if v {
                put = put.item(attr, AttributeValue::Bool(true));
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
                    event_name: get_s(item, "en").ok().map(str::to_owned),
                    described: Described {
                        region: get_s(item, "r").ok().map(str::to_owned),
                        source_ip: get_s(item, "ip").ok().map(str::to_owned),
                        user_agent: get_s(item, "ua").ok().map(str::to_owned),
                        principal_id: get_s(item, "pid").ok().map(str::to_owned),
                        vpc_endpoint_id: get_s(item, "vpce").ok().map(str::to_owned),
                        web_identity_provider: get_s(item, "wip").ok().map(str::to_owned),
                        invoked_by: get_s(item, "inv").ok().map(str::to_owned),
                        from_console: get_bool(item, "con"),
                        instance_profile: get_bool(item, "ird"),
                    },
                })
            })
            .collect()
    }
}
