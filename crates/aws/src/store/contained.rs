//! Pointers from a contained principal to its incident (`P#<account>#<entity>`).

use super::keys::*;
use super::*;

impl ContainedPrincipals for WindowStore {
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
            .item("kind", s(&request.resource_type))
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
            // Pointers written before other types were counted point at instances'.
            resource_type: get_s(&item, "kind")
                .unwrap_or(tripwire_engine::catalogue::EC2_INSTANCE)
                .to_owned(),
        }))
    }
}
