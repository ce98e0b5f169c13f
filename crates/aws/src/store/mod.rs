//! The shared window and incident state, in DynamoDB, so every concurrent detector
//! container sees the same counts. One table; its key schema is [`keys`], and each item
//! kind's reads and writes are a file of their own, implementing the pipeline's port for
//! that capability: calls and windows ([`calls`]), incidents ([`incidents`]), sessions
//! and initiations ([`sessions`]), heartbeats ([`heartbeats`]), one-off steps
//! ([`steps`]), contained principals ([`contained`]) and shutdown waves ([`waves`]).

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
use tripwire_pipeline::{
    Calls, ContainedPrincipals, Flag, Heartbeats, Incidents, IssueState, Sessions, Steps,
    INITIATOR_RETENTION_MS,
};
pub use tripwire_pipeline::{Recorded, StoredIncident};

mod calls;
mod contained;
mod drills;
mod heartbeats;
mod incidents;
pub mod keys;
mod loaded;
mod sessions;
mod steps;
mod waves;

pub use incidents::{Terminated, INCIDENT_SAMPLE};
pub use keys::{call_sk, event_sk, incident_pk, window_pk};
pub use loaded::LoadedRecord;

type Item = HashMap<String, AttributeValue>;

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

type Update = aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;

/// How a transaction ended.
pub(super) enum Tx {
    Done,
    /// A condition no longer held: read again and decide again.
    Changed,
}

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

impl WindowStore {
    /// A store on `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        WindowStore {
            client,
            table: table.into(),
        }
    }

    /// One item, read consistently.
    pub(super) async fn get(&self, pk: String, sk: &str) -> Result<Option<Item>, Error> {
        let got = self.get_uncounted(pk, sk).await?;
        crate::stages::count_items_read(usize::from(got.is_some()));
        Ok(got)
    }

    pub(super) async fn get_uncounted(&self, pk: String, sk: &str) -> Result<Option<Item>, Error> {
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
    pub(super) async fn range(
        &self,
        pk: String,
        from: String,
        to: String,
    ) -> Result<Vec<Item>, Error> {
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

    /// Runs a transaction; one that conflicts with another writer's (both add to one
    /// counts item) backs off a few milliseconds, spread by `salt`, and tries again, up
    /// to eight times; after that the conflict is the error, and Lambda's retry
    /// follows. `Changed` when a condition no longer held.
    pub(super) async fn transact(
        &self,
        items: Vec<aws_sdk_dynamodb::types::TransactWriteItem>,
        salt: &str,
    ) -> Result<Tx, Error> {
        use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
        let mut attempt = 0u64;
        loop {
            let res = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            let Err(err) = res else {
                return Ok(Tx::Done);
            };
            let reasons: Vec<&str> = match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(c)) => c
                    .cancellation_reasons()
                    .iter()
                    .map(|r| r.code().unwrap_or("None"))
                    .collect(),
                _ => Vec::new(),
            };
            if reasons.contains(&"ConditionalCheckFailed") {
                return Ok(Tx::Changed);
            }
            if reasons.contains(&"TransactionConflict") && attempt < 8 {
                let jitter = salt.bytes().fold(attempt, |h, b| {
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

    pub(super) async fn set_if(
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

#[cfg(test)]
mod tests {
    use super::incidents::*;
    use super::*;
    use aws_sdk_dynamodb::operation::put_item::PutItemOutput;
    use aws_sdk_dynamodb::operation::update_item::UpdateItemOutput;
    use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
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
            t.kind(),
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
