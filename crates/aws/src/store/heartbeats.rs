//! The heartbeat partition (`H`): each pair's state, daily latency histograms and the
//! StackSet instances not heard from yet.

use super::keys::*;
use super::*;

impl WindowStore {
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
}

impl Heartbeats for WindowStore {
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
}
