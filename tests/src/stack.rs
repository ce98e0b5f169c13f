//! Process supervision and resources: moto server, the runtime emulators, the real
//! function binaries polling them, and the table, topic, queue and IAM principals the
//! tests use. Each [`Stack`] owns its own processes on free ports, so tests run in
//! parallel without sharing state, and everything stops when it drops.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use serde_json::Value;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The account the functions run in (moto's default for any plain credentials).
pub const CENTRAL: &str = "123456789012";
pub use tripwire_synth::{DEV, PROD};
/// Another member account, for cross-account principals.
pub const OTHER: &str = "444444444444";
use tripwire_engine::{containment, names};
pub use tripwire_synth::{CONTAINMENT_ROLE, TEST_POLICY as POLICY};
/// The member StackSet, as scripts/deploy-members.sh names it.
pub const MEMBER_STACKSET: &str = "tripwire-member";
/// The member stacks' release role, which `tripwire release` assumes.
pub const RELEASE_ROLE: &str = "tripwire-release";
/// The operator the release roles trust (the member stack's `ReleasePrincipals`).
pub const OPERATOR_ARN: &str = "arn:aws:iam::123456789012:role/security-operator";

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
    /// Also run the watchdog behind its own emulator ([`Stack::invoke_watchdog`]), for
    /// canaries that call every ten minutes.
    pub watchdog: bool,
    /// moto enforces IAM once the stack is set up (`/moto-api/reset-auth`): every caller
    /// signs with a key IAM issued and holds only what its policies allow; the functions
    /// and the member roles exactly the actions the end-to-end tests recorded for them
    /// (infra/observed-aws-actions.json). moto ignores conditions, so a scoped deny
    /// denies every session of the role.
    pub enforce_iam: bool,
    /// Also run the findings function behind its own emulator ([`Stack::invoke_findings`]).
    pub findings: bool,
    /// The watchdog's expected regions for every account of the organization
    /// (`TRIPWIRE_EXPECTED_REGIONS`, comma-separated); empty expects only the StackSet's
    /// instances.
    pub expected_regions: String,
    /// An organization this account manages, with one member account and the account
    /// brake's SCP as `infra/delegation.yaml` creates it; the policy gets its ID
    /// (`account_brake_policy`). See [`Stack::brake`].
    pub account_brake: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            policy: POLICY.into(),
            detectors: 1,
            responders: 1,
            faults: false,
            hello: false,
            watchdog: false,
            enforce_iam: false,
            findings: false,
            expected_regions: String::new(),
            account_brake: false,
        }
    }
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
    /// The watchdog's Invoke endpoint, with [`Options::watchdog`].
    pub watchdog_url: String,
    /// `hello-lambda`'s Invoke endpoint, with [`Options::hello`].
    pub hello_url: String,
    /// The findings function's Invoke endpoint, with [`Options::findings`].
    pub findings_url: String,
    /// The alert bus the functions put every alert on, and its SQS subscriber (a rule
    /// matching `source` `tripwire`).
    pub alert_bus: String,
    pub(crate) bus_queue_url: String,
    /// SDK configuration pointed at moto, as the central account.
    pub sdk: SdkConfig,
    /// DynamoDB table.
    pub table: String,
    /// SNS topic.
    pub topic_arn: String,
    pub(crate) queue_url: String,
    /// The second channel: its topic, and its SQS subscriber.
    pub alarm_topic_arn: String,
    pub(crate) alarm_queue_url: String,
    /// The functions' policy TOML.
    pub policy: String,
    /// With [`Options::account_brake`]: the organization's member account and the
    /// brake's SCP ID.
    pub brake: Option<(String, String)>,
    children: Vec<Child>,
    /// Where process logs go (outside the workspace: the emulator restarts on writes).
    pub logs: PathBuf,
    pub(crate) http: reqwest::Client,
    /// Keys by caller (`detector`, `responder`, `operator`, `harness@ACCOUNT`), when
    /// moto enforces IAM; otherwise every caller uses a fixed key moto never checks.
    pub(crate) keys: std::collections::HashMap<String, (String, String)>,
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

/// Cargo's target directory, where tests leave what later checks read.
pub fn target_dir() -> PathBuf {
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
    assert!(path.exists(), "{} is missing: build it first (`make test` does: cargo build -p detector -p responder -p watchdog -p tripwire-cli)", path.display());
    path
}

/// A free loopback port, never one this process was given before: the kernel can hand
/// the same port to two binds in a row once the first listener is dropped, and a stack
/// that got one port for moto and an emulator talked to the emulator as moto and hung.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        if GIVEN.lock().map_or(true, |mut g| g.insert(port)) {
            return port;
        }
    }
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
pub(crate) const HARNESS_KEY: &str = "AKIAHARNESS";
pub(crate) const OPERATOR_KEY: &str = "AKIAOPERATOR";
pub(crate) fn function_key(name: &str) -> String {
    format!("AKIA{}", name.to_uppercase())
}

/// Environment every process talking to moto gets.
fn aws_env(cmd: &mut Command, moto: &str, (key, secret): (&str, &str)) {
    cmd.env("AWS_ENDPOINT_URL", moto)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", key)
        .env("AWS_SECRET_ACCESS_KEY", secret)
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
        let (moto_port, det_port, resp_port, hello_port, dog_port, findings_port) = (
            free_port(),
            free_port(),
            free_port(),
            free_port(),
            free_port(),
            free_port(),
        );
        // Each function: its emulator's port and how many containers poll it.
        let functions: Vec<(&str, u16, usize)> = [
            ("detector", det_port, opts.detectors),
            ("responder", resp_port, opts.responders),
            ("hello-lambda", hello_port, usize::from(opts.hello)),
            ("watchdog", dog_port, usize::from(opts.watchdog)),
            ("findings", findings_port, usize::from(opts.findings)),
        ]
        .into_iter()
        .filter(|&(_, _, count)| count > 0)
        .collect();
        let moto = format!("http://127.0.0.1:{moto_port}");
        let mut children = Vec::new();
        // moto_server with its transactions' cost made the items' and its SigV4 check
        // fixed for the Rust SDK's form bodies (scripts/moto_server.py says why).
        children.push(
            Command::new(bin.join("python"))
                .arg(repo().join("scripts/moto_server.py"))
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
            watchdog_url: format!("http://127.0.0.1:{dog_port}/2015-03-31/functions/_/invocations"),
            findings_url: format!(
                "http://127.0.0.1:{findings_port}/2015-03-31/functions/_/invocations"
            ),
            alert_bus: "tripwire-alerts".into(),
            bus_queue_url: String::new(),
            table: "tripwire".into(),
            topic_arn: String::new(),
            queue_url: String::new(),
            alarm_topic_arn: String::new(),
            alarm_queue_url: String::new(),
            policy: opts.policy.clone(),
            brake: None,
            children,
            logs,
            http: reqwest::Client::new(),
            keys: Default::default(),
        };
        wait_for_port(moto_port, "moto_server", &stack.logs);
        for &(name, port, _) in &functions {
            wait_for_port(port, &format!("the {name} emulator"), &stack.logs);
        }
        // Something else on moto's port answers as well as moto: fail here, not hang.
        if let Ok(Some(status)) = stack.children[0].try_wait() {
            panic!(
                "moto_server exited ({status}); see {}",
                stack.logs.display()
            );
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
        if opts.account_brake {
            stack.organization_with_brake().await;
        }
        // Published as `make deploy` publishes it: the functions read the pinned version.
        let pinned = stack.publish_policy(&stack.policy);
        if opts.enforce_iam {
            stack.enforce_iam().await;
        }
        stack.moto_api("recorder/reset-recording").await;
        stack.moto_api("recorder/start-recording").await;
        for &(name, port, count) in &functions {
            for k in 0..count {
                let mut cmd = Command::new(binary(name));
                let key = function_key(name);
                aws_env(
                    &mut cmd,
                    &stack.functions_endpoint,
                    stack.key_of(name, &key),
                );
                cmd.env(
                    "AWS_LAMBDA_RUNTIME_API",
                    format!("http://127.0.0.1:{port}/.rt"),
                )
                .env("AWS_LAMBDA_FUNCTION_NAME", name)
                .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
                .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
                .env("TRIPWIRE_POLICY_PARAMETER", &pinned)
                .env("TRIPWIRE_TABLE", &stack.table)
                .env("TRIPWIRE_TOPIC_ARN", &stack.topic_arn)
                .env("TRIPWIRE_ALARM_TOPIC_ARN", &stack.alarm_topic_arn)
                .env("TRIPWIRE_ALERT_BUS", &stack.alert_bus)
                .env("TRIPWIRE_FINDINGS_ACCOUNT", CENTRAL)
                .env("TRIPWIRE_PARTITION", "aws")
                .env("TRIPWIRE_CONTAINMENT_ROLE", CONTAINMENT_ROLE)
                .env("TRIPWIRE_CANARY_INTERVAL_MINUTES", "10")
                .env("TRIPWIRE_MEMBER_STACKSET", MEMBER_STACKSET)
                // No grace: the first run that lists an instance notes it, the next pages it.
                .env("TRIPWIRE_NEVER_SEEN_GRACE_MINUTES", "0")
                .env("TRIPWIRE_EXPECTED_REGIONS", &opts.expected_regions)
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

    /// The organization (this account manages it, as moto's Organizations keeps one
    /// organization per calling account), a member account, and the brake's SCP created
    /// from the policy as the delegation stack creates it, attached to nothing. The
    /// policy names the brake's ID first, as the stack's keys do.
    async fn organization_with_brake(&mut self) {
        use aws_sdk_organizations::types::{OrganizationFeatureSet, PolicyType};
        let org = aws_sdk_organizations::Client::new(&self.sdk);
        org.create_organization()
            .feature_set(OrganizationFeatureSet::All)
            .send()
            .await
            .expect("CreateOrganization");
        let status = org
            .create_account()
            .email("member@example.com")
            .account_name("member")
            .send()
            .await
            .expect("CreateAccount");
        let member = status
            .create_account_status()
            .and_then(|s| s.account_id())
            .expect("the member's ID")
            .to_owned();
        let policy = tripwire_engine::Policy::from_toml(&self.policy).expect("the stack's policy");
        let content = tripwire_engine::containment::account_brake_scp(&policy).expect("the brake");
        let created = org
            .create_policy()
            .name(tripwire_engine::names::ACCOUNT_BRAKE_SCP)
            .description("tripwire's account brake")
            .r#type(PolicyType::ServiceControlPolicy)
            .content(content)
            .send()
            .await
            .expect("CreatePolicy");
        let id = created
            .policy()
            .and_then(|p| p.policy_summary())
            .and_then(|s| s.id())
            .expect("the brake's ID")
            .to_owned();
        self.policy = format!("account_brake_policy = \"{id}\"\n{}", self.policy);
        // A member stack there too, so the drill runs in it as in any member account.
        self.member_roles(&member).await;
        self.brake = Some((member, id));
    }

    /// The SCPs attached to `account` directly, by name, in Organizations' order.
    pub async fn scps(&self, account: &str) -> Vec<String> {
        let org = aws_sdk_organizations::Client::new(&self.sdk);
        org.list_policies_for_target()
            .target_id(account)
            .filter(aws_sdk_organizations::types::PolicyType::ServiceControlPolicy)
            .send()
            .await
            .expect("ListPoliciesForTarget")
            .policies()
            .iter()
            .filter_map(|p| p.name().map(str::to_owned))
            .collect()
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
        // The alert topic and the second channel, each with an SQS subscriber.
        let sns = aws_sdk_sns::Client::new(&self.sdk);
        let sqs = aws_sdk_sqs::Client::new(&self.sdk);
        let mut channels = Vec::new();
        for name in ["tripwire-alerts", "tripwire-alarms"] {
            let topic = sns
                .create_topic()
                .name(name)
                .send()
                .await
                .expect("CreateTopic")
                .topic_arn
                .unwrap();
            let queue = sqs
                .create_queue()
                .queue_name(format!("{name}-subscriber"))
                .send()
                .await
                .expect("CreateQueue")
                .queue_url
                .unwrap();
            sns.subscribe()
                .topic_arn(&topic)
                .protocol("sqs")
                .endpoint(format!("arn:aws:sqs:us-east-1:{CENTRAL}:{name}-subscriber"))
                .send()
                .await
                .expect("Subscribe");
            channels.push((topic, queue));
        }
        let mut channels = channels.into_iter();
        (self.topic_arn, self.queue_url) = channels.next().unwrap();
        (self.alarm_topic_arn, self.alarm_queue_url) = channels.next().unwrap();
        // The alert bus, with an SQS subscriber standing in for the chat, PagerDuty and
        // findings rules: it receives each event as EventBridge delivers it.
        let events = aws_sdk_eventbridge::Client::new(&self.sdk);
        events
            .create_event_bus()
            .name(&self.alert_bus)
            .send()
            .await
            .expect("CreateEventBus");
        self.bus_queue_url = sqs
            .create_queue()
            .queue_name("tripwire-alert-bus-subscriber")
            .send()
            .await
            .expect("CreateQueue")
            .queue_url
            .unwrap();
        events
            .put_rule()
            .name("tripwire-alerts-to-sqs")
            .event_bus_name(&self.alert_bus)
            .event_pattern(r#"{"source": ["tripwire"]}"#)
            .send()
            .await
            .expect("PutRule");
        events
            .put_targets()
            .rule("tripwire-alerts-to-sqs")
            .event_bus_name(&self.alert_bus)
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("sqs")
                    .arn(format!(
                        "arn:aws:sqs:us-east-1:{CENTRAL}:tripwire-alert-bus-subscriber"
                    ))
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .expect("PutTargets");
        for account in [PROD, OTHER, DEV] {
            self.member_roles(account).await;
        }
        let trust = trusting(&[&format!("arn:aws:iam::{CENTRAL}:root")]);
        let principals: &[(&str, &str, &str)] = &[
            (PROD, "/vendor/", "cleanup-task"),
            (PROD, "/", "BreakGlassAdmin"),
            (PROD, "/deploy/", "ci-deployer"),
            (PROD, "/ops/", "admin"),
            (PROD, "/breakglass/", "oncall"),
            (PROD, "/", "web-fleet"),
            (PROD, "/", "OpsAdmin"),
            (PROD, "/", "KarpenterController"),
            (PROD, "/", "crowded"),
            (OTHER, "/ops/", "fleet-admin"),
            (DEV, "/vendor/", "cleanup-task"),
        ];
        for (account, path, name) in principals {
            let iam = self.iam_in(account);
            iam.create_role()
                .role_name(*name)
                .path(*path)
                .assume_role_policy_document(&trust)
                .send()
                .await
                .expect("CreateRole");
        }
        let iam = self.iam_in(PROD);
        iam.create_user()
            .user_name("token-broker")
            .path("/brokers/")
            .send()
            .await
            .expect("CreateUser");
        let iam = self.iam_in(PROD);
        iam.create_user()
            .user_name("alice")
            .path("/ops/")
            .send()
            .await
            .expect("CreateUser");
        // The member StackSet the watchdog lists, with no instances until a test adds them
        // ([`Stack::deploy_members`]). moto ignores CallAs, and takes accounts only from a
        // self-managed StackSet; the real one is service-managed.
        aws_sdk_cloudformation::Client::new(&self.sdk)
            .create_stack_set()
            .stack_set_name(MEMBER_STACKSET)
            .template_body(r#"{"Resources": {"Marker": {"Type": "AWS::CloudFormation::WaitConditionHandle"}}}"#)
            .permission_model(aws_sdk_cloudformation::types::PermissionModels::SelfManaged)
            .send()
            .await
            .expect("CreateStackSet");
    }

    /// The tripwire's member roles and managed policies in `account`, as
    /// infra/member.yaml creates them in every member account: the containment role
    /// trusts only the responder's role, the release role only the operators the stack
    /// names, and the drill role (no permission at all) only the responder. With IAM
    /// enforced the responder and the operator sign as IAM users of the same names
    /// (enforce_iam), which moto then holds to the trust (scripts/moto_server.py, 6.): the
    /// trusts name those stand-ins beside the real principals.
    async fn member_roles(&self, account: &str) {
        let responder = format!("arn:aws:iam::{CENTRAL}:role/tripwire-responder");
        let responder_stand_in = format!("arn:aws:iam::{CENTRAL}:user/responder");
        let operator_stand_in = format!("arn:aws:iam::{CENTRAL}:user/operator");
        let policy = tripwire_engine::Policy::from_toml(&self.policy).expect("the stack's policy");
        let iam = self.iam_in(account);
        for (name, trust) in [
            (
                CONTAINMENT_ROLE,
                trusting(&[&responder, &responder_stand_in]),
            ),
            (RELEASE_ROLE, trusting(&[OPERATOR_ARN, &operator_stand_in])),
            (names::DRILL_ROLE, trusting(&[&responder])),
        ] {
            iam.create_role()
                .role_name(name)
                .assume_role_policy_document(trust)
                .send()
                .await
                .expect("CreateRole");
        }
        for (name, document) in [
            (
                names::BRAKE_POLICY,
                containment::brake_document(&policy.deny_actions),
            ),
            (
                names::QUARANTINE_MANAGED_POLICY,
                containment::quarantine_document(),
            ),
            (names::SCOPE_POLICY, containment::scope_document()),
        ] {
            iam.create_policy()
                .policy_name(name)
                .path(names::MANAGED_PATH)
                .policy_document(document)
                .send()
                .await
                .expect("CreatePolicy");
        }
    }

    /// Adds instances of the member StackSet in `accounts` x `regions`, as the deploy
    /// script does for the organization.
    pub async fn deploy_members(&self, accounts: &[&str], regions: &[&str]) {
        aws_sdk_cloudformation::Client::new(&self.sdk)
            .create_stack_instances()
            .stack_set_name(MEMBER_STACKSET)
            .set_accounts(Some(accounts.iter().map(|a| a.to_string()).collect()))
            .set_regions(Some(regions.iter().map(|r| r.to_string()).collect()))
            .send()
            .await
            .expect("CreateStackInstances");
    }

    /// The key `caller` signs with: IAM's, when moto enforces it, else `fixed`.
    pub(crate) fn key_of<'a>(&'a self, caller: &str, fixed: &'a str) -> (&'a str, &'a str) {
        self.keys
            .get(caller)
            .map_or((fixed, "testing"), |(k, s)| (k.as_str(), s.as_str()))
    }

    /// The key and secret IAM issued `caller` (`harness@ACCOUNT`, ...), with
    /// [`Options::enforce_iam`].
    pub fn key(&self, caller: &str) -> (String, String) {
        self.keys
            .get(caller)
            .cloned()
            .unwrap_or_else(|| panic!("no key for {caller}: start the stack with enforce_iam"))
    }

    /// Gives every caller a key IAM issued and policies, then turns enforcement on.
    async fn enforce_iam(&mut self) {
        let observed: Value = serde_json::from_str(
            &std::fs::read_to_string(repo().join("infra/observed-aws-actions.json"))
                .expect("infra/observed-aws-actions.json"),
        )
        .expect("observed actions JSON");
        let allow = |actions: &Value| {
            serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Action": actions, "Resource": "*"}]})
            .to_string()
        };
        let mut users = vec![
            ("detector", CENTRAL, allow(&observed["detector"])),
            ("responder", CENTRAL, allow(&observed["responder"])),
            ("operator", CENTRAL, allow(&observed["operator"])),
            ("watchdog", CENTRAL, allow(&observed["watchdog"])),
        ];
        // The harness sets up and observes, as an administrator in each account.
        let harness: Vec<String> = [CENTRAL, PROD, OTHER, DEV]
            .iter()
            .map(|a| format!("harness@{a}"))
            .collect();
        for (name, account) in harness.iter().zip([CENTRAL, PROD, OTHER, DEV]) {
            users.push((name.as_str(), account, allow(&"*".into())));
        }
        for (caller, account, policy) in users {
            let iam = self.iam_in(account);
            let user = caller.split('@').next().unwrap_or(caller);
            iam.create_user()
                .user_name(user)
                .send()
                .await
                .expect("CreateUser");
            iam.put_user_policy()
                .user_name(user)
                .policy_name("observed")
                .policy_document(policy)
                .send()
                .await
                .expect("PutUserPolicy");
            let key = iam
                .create_access_key()
                .user_name(user)
                .send()
                .await
                .expect("CreateAccessKey");
            let key = key.access_key().expect("an access key");
            self.keys.insert(
                caller.to_owned(),
                (
                    key.access_key_id().to_owned(),
                    key.secret_access_key().to_owned(),
                ),
            );
        }
        for account in [PROD, OTHER, DEV] {
            let iam = self.iam_in(account);
            for (role, caller) in [
                (CONTAINMENT_ROLE, "containment-role"),
                (RELEASE_ROLE, "release-role"),
            ] {
                iam.put_role_policy()
                    .role_name(role)
                    .policy_name("observed")
                    .policy_document(allow(&observed[caller]))
                    .send()
                    .await
                    .expect("PutRolePolicy");
            }
        }
        let (key, secret) = self.keys[&format!("harness@{CENTRAL}")].clone();
        self.sdk = self
            .sdk
            .to_builder()
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(
                    aws_sdk_sts::config::Credentials::new(key, secret, None, None, "harness"),
                ),
            )
            .build();
        let url = format!("{}/moto-api/reset-auth", self.moto);
        let res = self.http.post(&url).body("0").send().await;
        assert!(
            res.is_ok_and(|r| r.status().is_success()),
            "{url}: enforcement did not turn on"
        );
    }

    /// Delivers `event` to the detector as the Lambda Invoke API would. The body is the
    /// detector's answer; an `Err` carries the status and body of a failed invocation.
    pub async fn invoke(&self, event: &Value) -> Result<Value, (u16, String)> {
        self.invoke_at(&self.detector_url, event).await
    }

    /// Runs the watchdog once (see [`Options::watchdog`]), as its schedule would.
    pub async fn invoke_watchdog(&self) -> Result<Value, (u16, String)> {
        let scheduled = serde_json::json!({"version": "0", "id": "watchdog-run",
            "detail-type": "Scheduled Event", "source": "aws.events", "account": CENTRAL,
            "region": "us-east-1", "resources": [], "detail": {}});
        self.invoke_at(&self.watchdog_url, &scheduled).await
    }

    /// Invokes the watchdog with `event` (the drill schedule's `{"drill": true}`).
    pub async fn invoke_watchdog_with(&self, event: &Value) -> Result<Value, (u16, String)> {
        self.invoke_at(&self.watchdog_url, event).await
    }

    /// Invokes `hello-lambda` (see [`Options::hello`]), which echoes `event`.
    pub async fn invoke_hello(&self, event: &Value) -> Result<Value, (u16, String)> {
        self.invoke_at(&self.hello_url, event).await
    }

    /// Delivers `event` to the findings function, as its rule would.
    pub async fn invoke_findings(&self, event: &Value) -> Result<Value, (u16, String)> {
        self.invoke_at(&self.findings_url, event).await
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

    /// Publishes `policy` as the deploying principal does (`tripwire publish-policy`);
    /// the pinned `NAME:VERSION` it printed.
    pub fn publish_policy(&self, policy: &str) -> String {
        let file = self.logs.join(format!("policy-{}.toml", free_port()));
        std::fs::write(&file, policy).unwrap();
        let mut cmd = Command::new(binary("tripwire"));
        aws_env(&mut cmd, &self.moto, (HARNESS_KEY, "testing"));
        let out = cmd
            .arg("publish-policy")
            .arg(&file)
            .stdin(Stdio::null())
            .output()
            .expect("tripwire publish-policy runs");
        assert!(
            out.status.success(),
            "publish-policy: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// Environment for running the `tripwire` CLI against this stack.
    pub fn cli(&self) -> Command {
        let mut cmd = Command::new(binary("tripwire"));
        aws_env(&mut cmd, &self.moto, self.key_of("operator", OPERATOR_KEY));
        cmd.env("TRIPWIRE_TABLE", &self.table)
            .env("TRIPWIRE_TOPIC_ARN", &self.topic_arn)
            .env("TRIPWIRE_ALERT_BUS", &self.alert_bus)
            .env("TRIPWIRE_CONTAINMENT_ROLE", CONTAINMENT_ROLE)
            .stdin(Stdio::null());
        cmd
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

/// A trust policy that lets `who` assume the role.
fn trusting(who: &[&str]) -> String {
    serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": who}, "Action": "sts:AssumeRole"}]})
    .to_string()
}
