//! Session issues (`K#<access key>`), initiator calls (`N#<account>#<region>`) and the
//! credits of services' terminations to them (`R#<eventID>`).

use super::keys::*;
use super::*;

impl Sessions for WindowStore {
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

    async fn settle_credit(
        &self,
        event_id: &str,
        credit: Option<&Initiation>,
        now: Millis,
    ) -> Result<Option<Initiation>, Error> {
        let doc = serde_json::to_string(&credit).map_err(|e| Error::encoding("the credit", e))?;
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(credit_pk(event_id)))
            .item("sk", s("R"))
            .item("doc", s(doc))
            .item("expires", expires(now))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        if conditional("dynamodb:PutItem", put)?.is_some() {
            return Ok(credit.cloned());
        }
        // Settled by an earlier delivery: its choice stands.
        let item = self
            .get(credit_pk(event_id), "R")
            .await?
            .ok_or_else(|| Error::Stored(format!("credit of {event_id} vanished")))?;
        serde_json::from_str(get_s(&item, "doc")?)
            .map_err(|e| Error::Stored(format!("credit doc: {e}")))
    }
}
