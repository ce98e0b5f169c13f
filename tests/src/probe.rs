//! What the tests read back from the local stack: the alerts an SQS subscriber of the
//! topic received, the policies IAM holds, and the AWS actions each caller made (moto's
//! request recording), which the infra tests check the templates' IAM against.

use crate::stack::{function_key, target_dir, Stack, HARNESS_KEY, OPERATOR_KEY};
use serde_json::Value;
use std::collections::BTreeMap;

/// The largest of [`Stack::largest_items`]'s items, named `pk / sk`, with its size.
pub fn largest_of(by_kind: &BTreeMap<String, (String, usize)>) -> (String, usize) {
    by_kind
        .values()
        .max_by_key(|(_, size)| *size)
        .cloned()
        .unwrap_or_default()
}

/// One request in moto's recording.
struct Recorded {
    caller: &'static str,
    /// `service:Action`.
    action: String,
    /// The request body, decoded.
    body: String,
}

/// One alert as an SQS subscriber of the topic received it.
#[derive(Debug, Clone)]
pub struct Received {
    /// SNS subject.
    pub subject: String,
    /// The JSON body (the `sqs` entry of the per-protocol message).
    pub body: Value,
    /// Message attributes, name to value.
    pub attributes: BTreeMap<String, String>,
}

impl Stack {
    /// An IAM client acting inside `account`, as an operator there would. moto takes the
    /// account from a header, so no assumed-role credentials muddy the recording.
    pub fn iam_in(&self, account: &str) -> aws_sdk_iam::Client {
        let mut conf = aws_sdk_iam::config::Builder::from(&self.sdk)
            .interceptor(MotoAccount(account.to_owned()));
        // Enforced, moto looks the key up in the account it acts in.
        if let Some((key, secret)) = self.keys.get(&format!("harness@{account}")) {
            conf = conf.credentials_provider(aws_sdk_iam::config::Credentials::new(
                key, secret, None, None, "harness",
            ));
        }
        let conf = conf.build();
        aws_sdk_iam::Client::from_conf(conf)
    }

    pub(crate) async fn moto_api(&self, path: &str) {
        let url = format!("{}/moto-api/{path}", self.moto);
        let res = self
            .http
            .post(&url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        assert!(res.status().is_success(), "{url}: {}", res.status());
    }

    /// The AWS actions each caller made since the stack started, from moto's recording:
    /// `detector`, `responder`, `watchdog`, `operator` (the CLI), and for credentials from
    /// AssumeRole the role they belong to: `containment-role` (the responder's) and
    /// `release-role` (the CLI's).
    pub async fn observed_actions(&self) -> BTreeMap<String, std::collections::BTreeSet<String>> {
        let mut out: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
        for r in self.recorded().await {
            out.entry(r.caller.to_owned()).or_default().insert(r.action);
        }
        out
    }

    /// DynamoDB items `caller` wrote (put, updated or deleted; a transaction's and a
    /// batch's each), and the requests that wrote them: what its writes cost, which
    /// moto's ConsumedCapacity cannot say.
    pub async fn dynamodb_items_written(&self, caller: &str) -> (usize, usize) {
        let (mut items, mut requests) = (0, 0);
        for r in self
            .recorded()
            .await
            .into_iter()
            .filter(|r| r.caller == caller)
        {
            let n = match r.action.as_str() {
                "dynamodb:PutItem" | "dynamodb:UpdateItem" | "dynamodb:DeleteItem" => 1,
                "dynamodb:TransactWriteItems" => serde_json::from_str::<Value>(&r.body)
                    .ok()
                    .and_then(|b| b["TransactItems"].as_array().map(Vec::len))
                    .unwrap_or(0),
                "dynamodb:BatchWriteItem" => serde_json::from_str::<Value>(&r.body)
                    .ok()
                    .and_then(|b| {
                        b["RequestItems"]
                            .as_object()
                            .map(|t| t.values().filter_map(Value::as_array).map(Vec::len).sum())
                    })
                    .unwrap_or(0),
                _ => continue,
            };
            items += n;
            requests += 1;
        }
        (items, requests)
    }

    /// moto's recording since the stack started, entry by entry.
    async fn raw_recording(&self) -> Vec<Value> {
        let url = format!("{}/moto-api/recorder/download-recording", self.moto);
        let text = self
            .http
            .get(&url)
            .send()
            .await
            .expect("recording")
            .text()
            .await
            .expect("recording text");
        // moto's threaded server appends entries without a lock, so two can share a line:
        // read the recording as a stream of JSON values, not as lines.
        serde_json::Deserializer::from_str(&text)
            .into_iter::<Value>()
            .map(|r| r.expect("recording entry"))
            .collect()
    }

    /// moto's recording since the stack started, by caller.
    async fn recorded(&self) -> Vec<Recorded> {
        use base64::Engine as _;
        let mut out = Vec::new();
        let mut assumed: BTreeMap<String, &'static str> = BTreeMap::new();
        for r in self.raw_recording().await {
            let auth = r["headers"]["Authorization"].as_str().unwrap_or_default();
            let Some(scope) = auth.split("Credential=").nth(1) else {
                continue;
            };
            let mut parts = scope.split('/');
            let key = parts.next().unwrap_or_default();
            let service = parts.nth(2).unwrap_or_default().to_owned();
            let body = r["body"].as_str().unwrap_or_default();
            let body = if r["body_encoded"].as_bool() == Some(true) {
                String::from_utf8(
                    base64::engine::general_purpose::STANDARD
                        .decode(body)
                        .unwrap_or_default(),
                )
                .unwrap_or_default()
            } else {
                body.to_owned()
            };
            let url = r["url"].as_str().unwrap_or_default();
            let action = match r["headers"]["X-Amz-Target"].as_str() {
                Some(target) => target.rsplit('.').next().unwrap_or_default().to_owned(),
                None => body
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("Action="))
                    .or_else(|| rest_action(&service, url))
                    .unwrap_or("?")
                    .to_owned(),
            };
            let caller = match key {
                k if k == function_key("detector") => "detector",
                k if k == function_key("responder") => "responder",
                k if k == function_key("watchdog") => "watchdog",
                k if k == function_key("findings") => "findings",
                OPERATOR_KEY => "operator",
                HARNESS_KEY => continue,
                k if k.starts_with("ASIA") => {
                    // The probe's own lookup below, recorded by an earlier call.
                    if action == "GetCallerIdentity" {
                        continue;
                    }
                    match assumed.get(k) {
                        Some(role) => *role,
                        None => {
                            let role = self.assumed_role_of(k).await;
                            assumed.insert(k.to_owned(), role);
                            role
                        }
                    }
                }
                other => panic!("a request signed with an unexpected key {other}"),
            };
            out.push(Recorded {
                caller,
                action: format!("{service}:{action}"),
                body,
            });
        }
        out
    }

    /// The URLs of the requests made to `service` (its SigV4 name: `s3`, ...), in order.
    pub async fn request_urls(&self, service: &str) -> Vec<String> {
        self.raw_recording()
            .await
            .into_iter()
            .filter(|r| {
                r["headers"]["Authorization"]
                    .as_str()
                    .and_then(|a| a.split("Credential=").nth(1))
                    .and_then(|scope| scope.split('/').nth(3))
                    == Some(service)
            })
            .map(|r| r["url"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Which of the tripwire's member roles an AssumeRole key belongs to. moto answers
    /// GetCallerIdentity by the key alone.
    async fn assumed_role_of(&self, key: &str) -> &'static str {
        let creds = aws_sdk_sts::config::Credentials::new(key, "probe", None, None, "probe");
        let conf = aws_sdk_sts::config::Builder::from(&self.sdk)
            .credentials_provider(creds)
            .build();
        let arn = aws_sdk_sts::Client::from_conf(conf)
            .get_caller_identity()
            .send()
            .await
            .expect("GetCallerIdentity")
            .arn
            .unwrap_or_default();
        if arn.contains(&format!(":assumed-role/{}/", crate::stack::RELEASE_ROLE)) {
            "release-role"
        } else if arn.contains(&format!(":assumed-role/{}/", crate::CONTAINMENT_ROLE)) {
            "containment-role"
        } else {
            panic!("credentials of an unexpected role: {arn}")
        }
    }

    /// The largest item in the table and its size by DynamoDB's rules (moto enforces the
    /// 400 KB limit on PutItem but not on UpdateItem, so the tests measure it).
    pub async fn largest_item(&self) -> (String, usize) {
        largest_of(&self.largest_items().await)
    }

    /// The largest item of each kind (the partition key up to its first `#`: `W`, `I`,
    /// `C`, `M`, ...), named `pk / sk`, with its size by DynamoDB's rules.
    pub async fn largest_items(&self) -> BTreeMap<String, (String, usize)> {
        let ddb = aws_sdk_dynamodb::Client::new(&self.sdk);
        let mut best: BTreeMap<String, (String, usize)> = BTreeMap::new();
        let mut start = None;
        loop {
            let page = ddb
                .scan()
                .table_name(&self.table)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .expect("Scan");
            for item in page.items() {
                let key = |k: &str| {
                    item.get(k)
                        .and_then(|v| v.as_s().ok())
                        .cloned()
                        .unwrap_or_default()
                };
                let (pk, size) = (key("pk"), item_size(item));
                let kind = pk.split('#').next().unwrap_or_default().to_owned();
                let entry = best.entry(kind).or_default();
                if size > entry.1 {
                    *entry = (format!("{pk} / {}", key("sk")), size);
                }
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return best,
            }
        }
    }

    /// Appends this stack's observed actions to `target/aws-actions/NAME.json`, which
    /// the infrastructure tests compare with the roles in the templates.
    pub async fn save_observed_actions(&self, name: &str) {
        let dir = target_dir().join("aws-actions");
        std::fs::create_dir_all(&dir).unwrap();
        let json = serde_json::to_string_pretty(&self.observed_actions().await).unwrap();
        std::fs::write(dir.join(format!("{name}.json")), json).unwrap();
    }

    /// How many alerts wait in the subscriber queue, without consuming them.
    pub async fn alerts_waiting(&self) -> usize {
        let sqs = aws_sdk_sqs::Client::new(&self.sdk);
        let got = sqs
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .expect("GetQueueAttributes");
        got.attributes()
            .and_then(|a| {
                a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            })
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// Every alert published so far that the subscriber has not yet read.
    pub async fn alerts(&self) -> Vec<Received> {
        self.received(&self.queue_url).await
    }

    /// Every alarm on the second channel (tamper, coverage) not yet read.
    pub async fn alarms(&self) -> Vec<Received> {
        self.received(&self.alarm_queue_url).await
    }

    /// The events put on the alert bus so far, as its rule delivered them (each once;
    /// they are consumed).
    pub async fn bus_events(&self) -> Vec<Value> {
        self.drain(&self.bus_queue_url)
            .await
            .iter()
            .map(|m| serde_json::from_str(m).expect("an event"))
            .collect()
    }

    /// Every message waiting in `queue_url`, deleted once read.
    pub(crate) async fn drain(&self, queue_url: &str) -> Vec<String> {
        let sqs = aws_sdk_sqs::Client::new(&self.sdk);
        let mut out = Vec::new();
        loop {
            let got = sqs
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .send()
                .await
                .expect("ReceiveMessage");
            let messages = got.messages.unwrap_or_default();
            if messages.is_empty() {
                return out;
            }
            for m in messages {
                out.push(m.body().unwrap_or_default().to_owned());
                sqs.delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .send()
                    .await
                    .expect("DeleteMessage");
            }
        }
    }

    /// Security Hub's findings in the central account: ID, record state, workflow status.
    pub async fn findings(&self) -> Vec<(String, String, String)> {
        let hub = aws_sdk_securityhub::Client::new(&self.sdk);
        let got = hub.get_findings().send().await.expect("GetFindings");
        got.findings()
            .iter()
            .map(|f| {
                (
                    f.id().unwrap_or_default().to_owned(),
                    f.record_state()
                        .map(|s| s.as_str().to_owned())
                        .unwrap_or_default(),
                    f.workflow()
                        .and_then(|w| w.status())
                        .map(|s| s.as_str().to_owned())
                        .unwrap_or_default(),
                )
            })
            .collect()
    }

    async fn received(&self, queue_url: &str) -> Vec<Received> {
        let mut out = Vec::new();
        for m in self.drain(queue_url).await {
            let envelope: Value = serde_json::from_str(&m).expect("SNS envelope");
            let body: Value = serde_json::from_str(envelope["Message"].as_str().unwrap_or("null"))
                .unwrap_or(Value::Null);
            let attributes = envelope["MessageAttributes"]
                .as_object()
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| {
                            (
                                k.clone(),
                                v["Value"].as_str().unwrap_or_default().to_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push(Received {
                subject: envelope["Subject"].as_str().unwrap_or_default().to_owned(),
                body,
                attributes,
            });
        }
        out
    }

    /// The inline policies on a role in `account`, name to document, as IAM stores them.
    pub async fn role_policies(&self, account: &str, role: &str) -> BTreeMap<String, Value> {
        let iam = self.iam_in(account);
        let mut out = BTreeMap::new();
        for name in self.role_policy_names(account, role).await {
            let doc = iam
                .get_role_policy()
                .role_name(role)
                .policy_name(&name)
                .send()
                .await
                .expect("GetRolePolicy")
                .policy_document;
            // IAM returns documents URL-encoded.
            out.insert(
                name,
                serde_json::from_str(&percent_decode(&doc)).expect("policy JSON"),
            );
        }
        out
    }

    /// The managed policies attached to a role (`role/NAME`) or user (`user/NAME`) in
    /// `account`, by name.
    pub async fn attached(&self, account: &str, entity: &str) -> Vec<String> {
        let iam = self.iam_in(account);
        let policies = match entity.split_once('/') {
            Some(("role", name)) => {
                iam.list_attached_role_policies()
                    .role_name(name)
                    .send()
                    .await
                    .expect("ListAttachedRolePolicies")
                    .attached_policies
            }
            Some(("user", name)) => {
                iam.list_attached_user_policies()
                    .user_name(name)
                    .send()
                    .await
                    .expect("ListAttachedUserPolicies")
                    .attached_policies
            }
            _ => panic!("`{entity}`: role/NAME or user/NAME"),
        };
        let mut names: Vec<String> = policies
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| p.policy_name)
            .collect();
        names.sort();
        names
    }

    /// The tags on a role (`role/NAME`) or user (`user/NAME`) in `account`.
    pub async fn tags(&self, account: &str, entity: &str) -> BTreeMap<String, String> {
        let iam = self.iam_in(account);
        let tags = match entity.split_once('/') {
            Some(("role", name)) => {
                iam.list_role_tags()
                    .role_name(name)
                    .send()
                    .await
                    .expect("ListRoleTags")
                    .tags
            }
            Some(("user", name)) => {
                iam.list_user_tags()
                    .user_name(name)
                    .send()
                    .await
                    .expect("ListUserTags")
                    .tags
            }
            _ => panic!("`{entity}`: role/NAME or user/NAME"),
        };
        tags.into_iter().map(|t| (t.key, t.value)).collect()
    }

    /// The names of the inline policies on a role in `account`: one IAM call, so a cheap
    /// poll for "is a policy readable yet".
    pub async fn role_policy_names(&self, account: &str, role: &str) -> Vec<String> {
        self.iam_in(account)
            .list_role_policies()
            .role_name(role)
            .send()
            .await
            .expect("ListRolePolicies")
            .policy_names
    }

    /// The inline policies on a user in `account`.
    pub async fn user_policies(&self, account: &str, user: &str) -> BTreeMap<String, Value> {
        let iam = self.iam_in(account);
        let names = iam
            .list_user_policies()
            .user_name(user)
            .send()
            .await
            .expect("ListUserPolicies")
            .policy_names;
        let mut out = BTreeMap::new();
        for name in names {
            let doc = iam
                .get_user_policy()
                .user_name(user)
                .policy_name(&name)
                .send()
                .await
                .expect("GetUserPolicy")
                .policy_document;
            out.insert(
                name,
                serde_json::from_str(&percent_decode(&doc)).expect("policy JSON"),
            );
        }
        out
    }
}

/// Sets moto's account for a request, as `x-moto-account-id`.
#[derive(Debug)]
struct MotoAccount(String);

impl aws_smithy_runtime_api::client::interceptors::Intercept for MotoAccount {
    fn name(&self) -> &'static str {
        "MotoAccount"
    }

    fn modify_before_signing(
        &self,
        context: &mut aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextMut<'_>,
        _: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        _: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        context
            .request_mut()
            .headers_mut()
            .insert("x-moto-account-id", self.0.clone());
        Ok(())
    }
}

/// IAM returns policy documents URL-encoded (RFC 3986).
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An item's size as DynamoDB counts it: each attribute's name plus its value (strings
/// and binaries by their bytes, numbers about a byte per two digits plus one, booleans
/// and nulls one byte, lists and maps three bytes plus a byte and the size of each
/// element; sets their members).
pub fn item_size(
    item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

fn value_size(v: &aws_sdk_dynamodb::types::AttributeValue) -> usize {
    use aws_sdk_dynamodb::types::AttributeValue as V;
    let number = |n: &str| n.trim_start_matches('-').len().div_ceil(2) + 1;
    match v {
        V::S(s) => s.len(),
        V::N(n) => number(n),
        V::B(b) => b.as_ref().len(),
        V::Bool(_) | V::Null(_) => 1,
        V::Ss(ss) => ss.iter().map(String::len).sum(),
        V::Ns(ns) => ns.iter().map(|n| number(n)).sum(),
        V::Bs(bs) => bs.iter().map(|b| b.as_ref().len()).sum(),
        V::L(l) => 3 + l.iter().map(|e| 1 + value_size(e)).sum::<usize>(),
        V::M(m) => {
            3 + m
                .iter()
                .map(|(k, e)| 1 + k.len() + value_size(e))
                .sum::<usize>()
        }
        _ => 0,
    }
}

/// The action of a REST-JSON call, which names it by its path alone.
fn rest_action(service: &str, url: &str) -> Option<&'static str> {
    let path = url.split('?').next().unwrap_or_default();
    match service {
        "securityhub" if path.ends_with("/findings/import") => Some("BatchImportFindings"),
        "securityhub" if path.ends_with("/findings/batchupdate") => Some("BatchUpdateFindings"),
        _ => None,
    }
}
