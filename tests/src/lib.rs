//! The local AWS stack, with real parts: moto server on loopback for DynamoDB, SNS, SQS,
//! IAM and STS, and cargo-lambda's runtime emulator running the real detector and
//! responder binaries. Each [`Stack`] owns its own processes on free ports, so tests
//! run in parallel without sharing state, and everything stops when it drops.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The account the functions run in (moto's default for any plain credentials).
pub const CENTRAL: &str = "123456789012";
/// Production: the seed incident's account.
pub const PROD: &str = "222222222222";
/// Development: allowed in the test policy.
pub const DEV: &str = "111111111111";
/// Another member account, for cross-account principals.
pub const OTHER: &str = "444444444444";
/// The containment role's name in every member account.
pub const CONTAINMENT_ROLE: &str = "tripwire-containment";

/// The policy the stack runs with unless a test says otherwise.
pub const POLICY: &str = r#"threshold = 10
window = "5m"
cross_account_threshold = 1
allowed_accounts = ["111111111111"]
protected_principals = ["arn:aws:iam::*:role/BreakGlass*"]
containment = "revoke"
"#;

/// How the stack is started.
#[derive(Debug, Clone)]
pub struct Options {
    /// Policy TOML for both functions.
    pub policy: String,
    /// Concurrent detector containers (bootstrap processes polling one emulator).
    pub detectors: usize,
    /// Concurrent responder containers.
    pub responders: usize,
    /// Put the fault proxy (scripts/fault_proxy.py) between the functions and moto.
    pub faults: bool,
    /// Also run `hello-lambda` behind its own emulator: the benchmarks' no-op function,
    /// so a baseline pays the same Lambda Invoke hops as the real path.
    pub hello: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            policy: POLICY.into(),
            detectors: 1,
            responders: 1,
            faults: false,
            hello: false,
        }
    }
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

/// A running local stack.
pub struct Stack {
    /// moto's endpoint.
    pub moto: String,
    /// Where the functions send AWS calls: moto, or the fault proxy in front of it.
    pub functions_endpoint: String,
    /// The detector's Lambda Invoke endpoint.
    pub detector_url: String,
    /// The responder's Lambda Invoke endpoint.
    pub responder_url: String,
    /// `hello-lambda`'s Invoke endpoint, with [`Options::hello`].
    pub hello_url: String,
    /// SDK configuration pointed at moto, as the central account.
    pub sdk: SdkConfig,
    /// DynamoDB table.
    pub table: String,
    /// SNS topic.
    pub topic_arn: String,
    queue_url: String,
    children: Vec<Child>,
    /// Where process logs go (outside the workspace: the emulator restarts on writes).
    pub logs: PathBuf,
    http: reqwest::Client,
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The project virtualenv's `bin` directory (moto, cargo-lambda).
pub fn venv_bin() -> PathBuf {
    std::env::var_os("TRIPWIRE_VENV_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv/bin"))
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"))
}

/// The built binary `name` (the Makefile builds the functions and the CLI before tests);
/// `TRIPWIRE_PROFILE=release` picks the release builds, as the benchmarks do.
pub fn binary(name: &str) -> PathBuf {
    let profile = std::env::var("TRIPWIRE_PROFILE").unwrap_or_else(|_| "debug".into());
    binary_in(&profile, name)
}

/// The built binary `name` of Cargo profile `profile` (`debug` for the dev profile).
pub fn binary_in(profile: &str, name: &str) -> PathBuf {
    let path = target_dir().join(profile).join(name);
    assert!(path.exists(), "{} is missing: build it first (`make test` does: cargo build -p detector -p responder -p tripwire-cli)", path.display());
    path
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Waits up to a minute for a server to listen on `port`; `logs` is named if it does not.
pub fn wait_for_port(port: u16, what: &str, logs: &Path) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{what} did not start on port {port}; see {}",
            logs.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Access keys by caller, so the recording tells who called what.
const HARNESS_KEY: &str = "AKIAHARNESS";
const OPERATOR_KEY: &str = "AKIAOPERATOR";
fn function_key(name: &str) -> String {
    format!("AKIA{}", name.to_uppercase())
}

/// Environment every process talking to moto gets.
fn aws_env(cmd: &mut Command, moto: &str, key: &str) {
    cmd.env("AWS_ENDPOINT_URL", moto)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", key)
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN");
}

impl Stack {
    /// Starts moto, two emulators (detector, responder), creates the resources, and
    /// starts the function containers.
    pub async fn start(opts: Options) -> Stack {
        let logs = std::env::temp_dir().join(format!(
            "tripwire-stack-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&logs).unwrap();
        let log_dir = logs.clone();
        let log = move |name: &str| std::fs::File::create(log_dir.join(name)).unwrap();
        let bin = venv_bin();
        assert!(
            bin.join("moto_server").exists(),
            "{} has no moto_server: run `make setup`",
            bin.display()
        );
        let (moto_port, det_port, resp_port, hello_port) =
            (free_port(), free_port(), free_port(), free_port());
        // Each function: its emulator's port and how many containers poll it.
        let functions: Vec<(&str, u16, usize)> = [
            ("detector", det_port, opts.detectors),
            ("responder", resp_port, opts.responders),
            ("hello-lambda", hello_port, usize::from(opts.hello)),
        ]
        .into_iter()
        .filter(|&(_, _, count)| count > 0)
        .collect();
        let moto = format!("http://127.0.0.1:{moto_port}");
        let mut children = Vec::new();
        children.push(
            Command::new(bin.join("moto_server"))
                .args(["-H", "127.0.0.1", "-p", &moto_port.to_string()])
                // Records every request, so tests can list the AWS actions each caller used.
                .env("MOTO_ENABLE_RECORDING", "True")
                .env("MOTO_RECORDER_FILEPATH", logs.join("moto-recording"))
                .current_dir(&logs)
                .stdout(log("moto.log"))
                .stderr(log("moto.err"))
                .spawn()
                .expect("moto_server starts"),
        );
        for &(name, port, _) in &functions {
            // The emulator needs a Cargo workspace to stand in; --ignore-changes keeps it
            // from restarting on file writes.
            children.push(
                Command::new(bin.join("cargo-lambda"))
                    .args([
                        "lambda",
                        "watch",
                        "--only-lambda-apis",
                        "--ignore-changes",
                        "-P",
                        &port.to_string(),
                    ])
                    .current_dir(repo())
                    .stdout(log(&format!("emulator-{name}.log")))
                    .stderr(log(&format!("emulator-{name}.err")))
                    .spawn()
                    .expect("cargo-lambda starts"),
            );
        }
        let mut stack = Stack {
            sdk: aws_config::defaults(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .endpoint_url(&moto)
                .credentials_provider(aws_sdk_sts::config::Credentials::new(
                    HARNESS_KEY,
                    "testing",
                    None,
                    None,
                    "localstack",
                ))
                .load()
                .await,
            functions_endpoint: moto.clone(),
            moto,
            detector_url: format!("http://127.0.0.1:{det_port}/2015-03-31/functions/_/invocations"),
            responder_url: format!(
                "http://127.0.0.1:{resp_port}/2015-03-31/functions/_/invocations"
            ),
            hello_url: format!("http://127.0.0.1:{hello_port}/2015-03-31/functions/_/invocations"),
            table: "tripwire".into(),
            topic_arn: String::new(),
            queue_url: String::new(),
            children,
            logs,
            http: reqwest::Client::new(),
        };
        wait_for_port(moto_port, "moto_server", &stack.logs);
        for &(name, port, _) in &functions {
            wait_for_port(port, &format!("the {name} emulator"), &stack.logs);
        }
        if opts.faults {
            let port = free_port();
            stack.children.push(
                Command::new(bin.join("python"))
                    .arg(repo().join("scripts/fault_proxy.py"))
                    .args([port.to_string(), stack.moto.clone()])
                    .stdout(log("fault-proxy.log"))
                    .stderr(log("fault-proxy.err"))
                    .spawn()
                    .expect("the fault proxy starts"),
            );
            wait_for_port(port, "the fault proxy", &stack.logs);
            stack.functions_endpoint = format!("http://127.0.0.1:{port}");
        }
        stack.bootstrap().await;
        stack.moto_api("recorder/reset-recording").await;
        stack.moto_api("recorder/start-recording").await;
        for &(name, port, count) in &functions {
            for k in 0..count {
                let mut cmd = Command::new(binary(name));
                aws_env(&mut cmd, &stack.functions_endpoint, &function_key(name));
                cmd.env(
                    "AWS_LAMBDA_RUNTIME_API",
                    format!("http://127.0.0.1:{port}/.rt"),
                )
                .env("AWS_LAMBDA_FUNCTION_NAME", name)
                .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
                .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
                .env("TRIPWIRE_POLICY", &opts.policy)
                .env("TRIPWIRE_TABLE", &stack.table)
                .env("TRIPWIRE_TOPIC_ARN", &stack.topic_arn)
                .env("TRIPWIRE_CONTAINMENT_ROLE", CONTAINMENT_ROLE)
                // The emulator serves one function per port, always named `_`.
                .env("TRIPWIRE_RESPONDER_FUNCTION", "_")
                .env(
                    "AWS_ENDPOINT_URL_LAMBDA",
                    format!("http://127.0.0.1:{resp_port}"),
                )
                .stdout(log(&format!("{name}-{k}.log")))
                .stderr(log(&format!("{name}-{k}.err")));
                stack
                    .children
                    .push(cmd.spawn().unwrap_or_else(|e| panic!("{name} starts: {e}")));
            }
        }
        stack
    }

    /// An IAM client acting inside `account`, as an operator there would. moto takes the
    /// account from a header, so no assumed-role credentials muddy the recording.
    pub fn iam_in(&self, account: &str) -> aws_sdk_iam::Client {
        let conf = aws_sdk_iam::config::Builder::from(&self.sdk)
            .interceptor(MotoAccount(account.to_owned()))
            .build();
        aws_sdk_iam::Client::from_conf(conf)
    }

    async fn moto_api(&self, path: &str) {
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
    /// `detector`, `responder`, `operator` (the CLI), and `containment-role` (calls made
    /// with credentials from AssumeRole, which only the responder and the CLI obtain).
    pub async fn observed_actions(&self) -> BTreeMap<String, std::collections::BTreeSet<String>> {
        use base64::Engine as _;
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
        let mut out: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let r: Value = serde_json::from_str(line).expect("recording line");
            let auth = r["headers"]["Authorization"].as_str().unwrap_or_default();
            let Some(scope) = auth.split("Credential=").nth(1) else {
                continue;
            };
            let mut parts = scope.split('/');
            let key = parts.next().unwrap_or_default();
            let service = parts.nth(2).unwrap_or_default().to_owned();
            let action = match r["headers"]["X-Amz-Target"].as_str() {
                Some(target) => target.rsplit('.').next().unwrap_or_default().to_owned(),
                None => {
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
                    body.split('&')
                        .find_map(|kv| kv.strip_prefix("Action="))
                        .unwrap_or("?")
                        .to_owned()
                }
            };
            let caller = match key {
                k if k == function_key("detector") => "detector",
                k if k == function_key("responder") => "responder",
                OPERATOR_KEY => "operator",
                HARNESS_KEY => continue,
                k if k.starts_with("ASIA") => "containment-role",
                other => panic!("a request signed with an unexpected key {other}"),
            };
            out.entry(caller.to_owned())
                .or_default()
                .insert(format!("{service}:{action}"));
        }
        out
    }

    /// Appends this stack's observed actions to `target/aws-actions/NAME.json`, which
    /// the infrastructure tests compare with the roles in the templates.
    pub async fn save_observed_actions(&self, name: &str) {
        let dir = target_dir().join("aws-actions");
        std::fs::create_dir_all(&dir).unwrap();
        let json = serde_json::to_string_pretty(&self.observed_actions().await).unwrap();
        std::fs::write(dir.join(format!("{name}.json")), json).unwrap();
    }

    /// Table, topic with an SQS subscriber, and the IAM principals the tests contain.
    async fn bootstrap(&mut self) {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
            TimeToLiveSpecification,
        };
        let ddb = aws_sdk_dynamodb::Client::new(&self.sdk);
        let attr = |n: &str| {
            AttributeDefinition::builder()
                .attribute_name(n)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap()
        };
        let key = |n: &str, t| {
            KeySchemaElement::builder()
                .attribute_name(n)
                .key_type(t)
                .build()
                .unwrap()
        };
        ddb.create_table()
            .table_name(&self.table)
            .attribute_definitions(attr("pk"))
            .attribute_definitions(attr("sk"))
            .key_schema(key("pk", KeyType::Hash))
            .key_schema(key("sk", KeyType::Range))
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .expect("CreateTable");
        ddb.update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name("expires")
                    .enabled(true)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .expect("UpdateTimeToLive");
        let sns = aws_sdk_sns::Client::new(&self.sdk);
        self.topic_arn = sns
            .create_topic()
            .name("tripwire-alerts")
            .send()
            .await
            .expect("CreateTopic")
            .topic_arn
            .unwrap();
        let sqs = aws_sdk_sqs::Client::new(&self.sdk);
        self.queue_url = sqs
            .create_queue()
            .queue_name("tripwire-alerts-subscriber")
            .send()
            .await
            .expect("CreateQueue")
            .queue_url
            .unwrap();
        let queue_arn = format!("arn:aws:sqs:us-east-1:{CENTRAL}:tripwire-alerts-subscriber");
        sns.subscribe()
            .topic_arn(&self.topic_arn)
            .protocol("sqs")
            .endpoint(queue_arn)
            .send()
            .await
            .expect("Subscribe");
        let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"sts:AssumeRole"}]}"#;
        let principals: &[(&str, &str, &str)] = &[
            (PROD, "/", CONTAINMENT_ROLE),
            (PROD, "/vendor/", "cleanup-task"),
            (PROD, "/", "BreakGlassAdmin"),
            (PROD, "/deploy/", "ci-deployer"),
            (OTHER, "/", CONTAINMENT_ROLE),
            (OTHER, "/ops/", "fleet-admin"),
            (DEV, "/", CONTAINMENT_ROLE),
            (DEV, "/vendor/", "cleanup-task"),
        ];
        for (account, path, name) in principals {
            let iam = self.iam_in(account);
            iam.create_role()
                .role_name(*name)
                .path(*path)
                .assume_role_policy_document(trust)
                .send()
                .await
                .expect("CreateRole");
        }
        let iam = self.iam_in(PROD);
        iam.create_user()
            .user_name("alice")
            .path("/ops/")
            .send()
            .await
            .expect("CreateUser");
    }

    /// Delivers `event` to the detector as the Lambda Invoke API would. The body is the
    /// detector's answer; an `Err` carries the status and body of a failed invocation.
    pub async fn invoke(&self, event: &Value) -> Result<Value, (u16, String)> {
        self.invoke_at(&self.detector_url, event).await
    }

    /// Invokes `hello-lambda` (see [`Options::hello`]), which echoes `event`.
    pub async fn invoke_hello(&self, event: &Value) -> Result<Value, (u16, String)> {
        self.invoke_at(&self.hello_url, event).await
    }

    /// Invokes the responder directly, as anything able to call it could.
    pub async fn invoke_responder(&self, request: &Value) -> Result<Value, (u16, String)> {
        self.invoke_at(&self.responder_url, request).await
    }

    async fn invoke_at(&self, url: &str, event: &Value) -> Result<Value, (u16, String)> {
        let res = self
            .http
            .post(url)
            .json(event)
            .send()
            .await
            .map_err(|e| (0, e.to_string()))?;
        let status = res.status().as_u16();
        let body = res.text().await.map_err(|e| (status, e.to_string()))?;
        if status == 200 {
            serde_json::from_str(&body).map_err(|e| (status, format!("{e}: {body}")))
        } else {
            Err((status, body))
        }
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

    /// Sets the fault proxy's rules, e.g. `{"dynamodb": {"throttle": 2}}`.
    pub async fn set_faults(&self, rules: &Value) {
        let url = format!("{}/__faults", self.functions_endpoint);
        let res = self
            .http
            .post(&url)
            .json(rules)
            .send()
            .await
            .expect("fault proxy");
        assert!(res.status().is_success());
    }

    /// What the fault proxy injected and forwarded so far, by service and kind.
    pub async fn faults(&self) -> Value {
        let url = format!("{}/__faults", self.functions_endpoint);
        self.http
            .get(&url)
            .send()
            .await
            .expect("fault proxy")
            .json()
            .await
            .expect("fault counts")
    }

    /// Every alert published so far that the subscriber has not yet read.
    pub async fn alerts(&self) -> Vec<Received> {
        let sqs = aws_sdk_sqs::Client::new(&self.sdk);
        let mut out = Vec::new();
        loop {
            let got = sqs
                .receive_message()
                .queue_url(&self.queue_url)
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
                let envelope: Value =
                    serde_json::from_str(m.body().unwrap_or("{}")).expect("SNS envelope");
                let body: Value =
                    serde_json::from_str(envelope["Message"].as_str().unwrap_or("null"))
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
                sqs.delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .send()
                    .await
                    .expect("DeleteMessage");
            }
        }
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

    /// Environment for running the `tripwire` CLI against this stack.
    pub fn cli(&self) -> Command {
        let mut cmd = Command::new(binary("tripwire"));
        aws_env(&mut cmd, &self.moto, OPERATOR_KEY);
        cmd.env("TRIPWIRE_TABLE", &self.table)
            .env("TRIPWIRE_CONTAINMENT_ROLE", CONTAINMENT_ROLE)
            .stdin(Stdio::null());
        cmd
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

impl Drop for Stack {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Decodes `%XX` escapes (IAM returns policy documents URL-encoded).
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(v) => {
                    out.push(v);
                    i += 3;
                    continue;
                }
                Err(_) => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// EventBridge envelopes of `calls` TerminateInstances calls by `who`, one instance each,
/// `step` ms apart from `base`: the shape the detector receives.
pub fn burst(
    who: &str,
    account: Option<&str>,
    base: i64,
    calls: i64,
    step: i64,
    tag: &str,
) -> Vec<Value> {
    use tripwire_synth::{eventbridge_envelope, terminate_record, Call, Caller};
    let caller = Caller::parse(who).expect("caller spec");
    let account = account.or(caller.account()).expect("account").to_owned();
    (0..calls)
        .map(|k| {
            // Distinct per tag and call: FNV-1a of the tag, plus the call number.
            let tag_hash = tripwire_engine::fnv1a(&[tag]);
            let ids = vec![format!("i-{:017x}", (tag_hash >> 8).wrapping_add(k as u64))];
            let event_id = format!("{tag}-{k}");
            let record = terminate_record(&Call {
                caller: &caller,
                account: &account,
                region: "us-east-1",
                time: base + k * step,
                instance_ids: &ids,
                event_id: &event_id,
                error: None,
                source_ip: "10.20.0.15",
                user_agent: "vendor-cleanup/2.3 aws-sdk-go/1.12.0",
                invoked_by: None,
            });
            eventbridge_envelope(&record, &format!("eb-{event_id}"))
        })
        .collect()
}
