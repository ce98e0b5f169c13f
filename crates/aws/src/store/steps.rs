//! One-off steps (`O#<step>`), claimed once across every container.

use super::keys::*;
use super::*;

impl WindowStore {
    /// An update of one-off step `id`'s item.
    pub(super) fn update_once(&self, id: &str) -> Update {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(once_pk(id)))
            .key("sk", s("O"))
    }
}

impl Steps for WindowStore {
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
}
