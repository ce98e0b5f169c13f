//! `DR` / `<account>`: each account's last containment drill (`doc`, JSON), beside the
//! heartbeats: the responder writes it, the watchdog pages a failure, `tripwire status`
//! shows it.

use super::{get_s, s, WindowStore};
use crate::error::{aws_error, Error, Port};
use tripwire_engine::drill::Drilled;

const DRILL_PK: &str = "DR";

impl tripwire_pipeline::Drills for WindowStore {
    async fn record_drill(&self, d: &Drilled) -> Result<(), Error> {
        let doc = serde_json::to_string(d).map_err(|e| Error::encoding("drill", e))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(DRILL_PK))
            .item("sk", s(&d.account))
            .item("doc", s(doc))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_error(Port::State, "dynamodb:PutItem", e))
    }

    async fn drills(&self) -> Result<Vec<Drilled>, Error> {
        let items = self.range(DRILL_PK.into(), "0".into(), "~".into()).await?;
        items
            .iter()
            .map(|item| {
                serde_json::from_str(get_s(item, "doc")?)
                    .map_err(|e| Error::Stored(format!("a drill item does not read: {e}")))
            })
            .collect()
    }
}
