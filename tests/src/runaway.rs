//! A real runaway on a stack that enforces IAM ([`crate::Options::enforce_iam`]): a
//! vendor's cleanup task (tests/demo/cleanup_task.py) wipes production through one of
//! two doors ([`Door`]) as `role/vendor/cleanup-task`, one call at a time: terminating
//! instances through moto's EC2, or force-deleting Auto Scaling groups through moto's
//! Auto Scaling, whose service-linked role then terminates their instances. Each call
//! reaches the real detector as the CloudTrail records EventBridge would deliver, in
//! order; an observer notes when the alert and the brake become visible.

use crate::stack::{repo, venv_bin, Stack, PROD};
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{mpsc, Mutex};
use tripwire_engine::time::{format_millis, Millis};
use tripwire_synth::{eventbridge_envelope, terminate_record, write_record, ApiCall, Caller};

/// The vendor's role.
pub const ROLE: &str = "arn:aws:iam::222222222222:role/vendor/cleanup-task";
const ROLE_NAME: &str = "cleanup-task";
/// The task's session name.
pub const SESSION: &str = "cleanup-run";
/// The development VM the task runs on (the records' sourceIPAddress).
const SOURCE_IP: &str = "10.20.0.15";

/// How the task wipes production.
#[derive(Debug, Clone, Copy)]
pub enum Door {
    /// `TerminateInstances`, one running instance per call: the seed's door.
    Instances {
        /// Production instances launched first.
        fleet: usize,
    },
    /// `DeleteAutoScalingGroup` with `ForceDelete`, one group per call: Auto Scaling's
    /// service-linked role terminates each group's instances.
    Groups {
        /// Production groups created first.
        groups: usize,
        /// Instances in each.
        size: usize,
    },
}

/// Auto Scaling's service-linked role in production, as its records name it.
const ASG_ROLE: &str =
    "role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling@222222222222";
/// How long after a group's deletion Auto Scaling's termination of its instances is
/// stamped (eventTime): after the call that decided it, as in AWS.
const SERVICE_LAG_MS: Millis = 300;

/// One of the task's calls, as it printed it.
#[derive(Debug, Clone)]
pub struct Call {
    /// When the call began, by the wall clock (its eventTime).
    pub at_ms: Millis,
    /// The instances it asked to terminate, or its group held.
    pub ids: Vec<String>,
    /// The group it deleted (the groups door).
    pub group: Option<String>,
    /// EC2 answered with success.
    pub ok: bool,
    /// The error code EC2 answered with.
    pub error: Option<String>,
    request_id: Option<String>,
    user_agent: String,
    /// When its line reached us, on the monotonic clock.
    pub returned: Instant,
}

/// What a run did and what was seen.
#[derive(Debug)]
pub struct Run {
    /// Instances launched (for the groups door, every group's).
    pub fleet: usize,
    /// Every call the task made, in order.
    pub calls: Vec<Call>,
    /// When the detector returned from the event that opened an incident, and its ID.
    pub opened: Option<(Instant, String)>,
    /// When an alert was first waiting in the topic's subscriber queue.
    pub alert_seen: Option<Instant>,
    /// When the brake was first attached to the role, by both clocks.
    pub brake_seen: Option<(Instant, Millis)>,
    /// Instances by state, as EC2 reports them after the run.
    pub states: BTreeMap<String, i64>,
}

/// What the observer saw first, and when.
#[derive(Default, Clone, Copy)]
struct Seen {
    alert: Option<Instant>,
    brake: Option<(Instant, Millis)>,
}

fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The cleanup task with `creds` (key, secret, session token).
fn task(creds: (&str, &str, Option<&str>), moto: &str, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(venv_bin().join("python"));
    cmd.arg(repo().join("tests/demo/cleanup_task.py"))
        .args(args)
        .env("AWS_ENDPOINT_URL", moto)
        .env("AWS_ACCESS_KEY_ID", creds.0)
        .env("AWS_SECRET_ACCESS_KEY", creds.1)
        .env_remove("AWS_PROFILE")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    match creds.2 {
        Some(token) => cmd.env("AWS_SESSION_TOKEN", token),
        None => cmd.env_remove("AWS_SESSION_TOKEN"),
    };
    cmd
}

async fn output_of(mut cmd: tokio::process::Command) -> Value {
    let out = cmd.output().await.expect("the cleanup task runs");
    assert!(out.status.success(), "the cleanup task failed");
    serde_json::from_slice(&out.stdout).expect("the cleanup task's JSON")
}

/// The session the task runs as: what CloudTrail writes of it.
struct Session {
    key: String,
    role_id: String,
    issued: String,
}

/// Makes `rec` the task's real session's: its access key tail is already the record's;
/// here its role ID and issue time, and the request ID moto answered with.
fn as_session(rec: &mut Value, c: &Call, s: &Session) {
    let ui = &mut rec["userIdentity"];
    ui["principalId"] = format!("{}:{SESSION}", s.role_id).into();
    ui["sessionContext"]["sessionIssuer"]["principalId"] = s.role_id.as_str().into();
    ui["sessionContext"]["attributes"]["creationDate"] = s.issued.as_str().into();
    if let Some(id) = &c.request_id {
        rec["requestID"] = id.as_str().into();
    }
}

fn task_caller() -> Caller {
    Caller::Role {
        account: PROD.into(),
        path: "/vendor/".into(),
        name: ROLE_NAME.into(),
    }
}

/// The CloudTrail records of one of the task's calls, as CloudTrail writes them: the
/// real session's access key, role ID and issue time, and for a refused call the
/// service's error code. A group's deletion is followed by Auto Scaling's termination of
/// its instances, under the service-linked role.
fn records_of(door: Door, c: &Call, s: &Session, rng: &mut tripwire_synth::SplitMix) -> Vec<Value> {
    let caller = task_caller();
    let key = s.key.strip_prefix("ASIA").unwrap_or(&s.key);
    match door {
        Door::Instances { .. } => {
            let mut rec = terminate_record(&tripwire_synth::Call {
                caller: &caller,
                account: PROD,
                region: "us-east-1",
                time: c.at_ms,
                instance_ids: &c.ids,
                event_id: &rng.uuid(),
                error: (!c.ok).then_some("Client.UnauthorizedOperation"),
                source_ip: SOURCE_IP,
                user_agent: &c.user_agent,
                invoked_by: None,
                already_terminated: 0,
                session: SESSION,
                access_key: key,
            });
            as_session(&mut rec, c, s);
            vec![rec]
        }
        Door::Groups { .. } => {
            let params = serde_json::json!({
                "autoScalingGroupName": c.group.as_deref().unwrap_or_default(),
                "forceDelete": true,
            })
            .to_string();
            let (event_id, request_id) = (rng.uuid(), rng.uuid());
            let mut b = String::new();
            write_record(
                &mut b,
                &ApiCall {
                    caller: &caller,
                    account: PROD,
                    region: "us-east-1",
                    time: c.at_ms,
                    event_source: "autoscaling.amazonaws.com",
                    event_name: "DeleteAutoScalingGroup",
                    request_parameters: &params,
                    response_elements: "null",
                    request_id: &request_id,
                    event_id: &event_id,
                    error: (!c.ok).then_some((
                        "AccessDenied",
                        "User is not authorized to perform: autoscaling:DeleteAutoScalingGroup",
                    )),
                    source_ip: SOURCE_IP,
                    user_agent: &c.user_agent,
                    invoked_by: None,
                    session: SESSION,
                    access_key: key,
                    read_only: false,
                },
            );
            let mut delete: Value = serde_json::from_str(&b).expect("the record's JSON");
            as_session(&mut delete, c, s);
            let mut out = vec![delete];
            if c.ok && !c.ids.is_empty() {
                let asg = Caller::parse(ASG_ROLE).expect("the service-linked role");
                out.push(terminate_record(&tripwire_synth::Call {
                    caller: &asg,
                    account: PROD,
                    region: "us-east-1",
                    time: c.at_ms + SERVICE_LAG_MS,
                    instance_ids: &c.ids,
                    event_id: &rng.uuid(),
                    error: None,
                    source_ip: "autoscaling.amazonaws.com",
                    user_agent: "autoscaling.amazonaws.com",
                    invoked_by: Some("autoscaling.amazonaws.com"),
                    already_terminated: 0,
                    session: "AutoScaling",
                    access_key: &rng.hex(16).to_ascii_uppercase(),
                }));
            }
            out
        }
    }
}

/// Launches production (instances, or groups of them), then runs the task through
/// `door` at one call every `pace_ms`, each record delivered `delivery_ms` after its
/// call returned.
pub async fn run(stack: Arc<Stack>, door: Door, pace_ms: u64, delivery_ms: u64) -> Run {
    let (admin_key, admin_secret) = stack.key(&format!("harness@{PROD}"));
    let admin = (admin_key.as_str(), admin_secret.as_str(), None);
    let (setup, command): (Vec<String>, &str) = match door {
        Door::Instances { fleet } => (vec!["launch".into(), fleet.to_string()], "run"),
        Door::Groups { groups, size } => (
            vec!["groups".into(), groups.to_string(), size.to_string()],
            "delete-groups",
        ),
    };
    let setup: Vec<&str> = setup.iter().map(String::as_str).collect();
    output_of(task(admin, &stack.moto, &setup)).await;
    let iam = stack.iam_in(PROD);
    iam.put_role_policy()
        .role_name(ROLE_NAME)
        .policy_name("vendor-cleanup")
        .policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ec2:DescribeInstances","ec2:TerminateInstances","autoscaling:DescribeAutoScalingGroups","autoscaling:DeleteAutoScalingGroup"],"Resource":"*"}]}"#,
        )
        .send()
        .await
        .expect("PutRolePolicy");
    let role_id = iam
        .get_role()
        .role_name(ROLE_NAME)
        .send()
        .await
        .expect("GetRole")
        .role()
        .map(|r| r.role_id().to_owned())
        .unwrap_or_default();
    let assumed = aws_sdk_sts::Client::new(&stack.sdk)
        .assume_role()
        .role_arn(ROLE)
        .role_session_name(SESSION)
        .send()
        .await
        .expect("AssumeRole");
    let creds = assumed.credentials().expect("credentials");
    let session = Session {
        key: creds.access_key_id().to_owned(),
        role_id,
        issued: format_millis(now_ms()),
    };

    // An observer polls what a human would see: the topic's subscriber queue and IAM.
    let seen: Arc<Mutex<Seen>> = Default::default();
    let watcher = {
        let (stack, seen) = (stack.clone(), seen.clone());
        tokio::spawn(async move {
            loop {
                let alert = stack.alerts_waiting().await > 0;
                let brake = !stack.attached(PROD, "role/cleanup-task").await.is_empty();
                let mut s = seen.lock().await;
                if alert && s.alert.is_none() {
                    s.alert = Some(Instant::now());
                }
                if brake && s.brake.is_none() {
                    s.brake = Some((Instant::now(), now_ms()));
                }
                if s.alert.is_some() && s.brake.is_some() {
                    return;
                }
                drop(s);
                // Each poll is two calls to moto, which also serves the functions.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };

    // CloudTrail to EventBridge to the detector, in order, one record after another.
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, Value, Instant)>();
    let delivery = {
        let stack = stack.clone();
        tokio::spawn(async move {
            let mut opened = None;
            while let Some((i, rec, returned)) = rx.recv().await {
                tokio::time::sleep_until((returned + Duration::from_millis(delivery_ms)).into())
                    .await;
                let out = stack
                    .invoke(&eventbridge_envelope(&rec, &format!("runaway-{i}")))
                    .await
                    .unwrap_or_else(|e| panic!("event {i}: {e:?}"));
                if out[0]["outcome"] == "opened" {
                    let id = out[0]["incident"].as_str().unwrap_or_default().to_owned();
                    opened = Some((Instant::now(), id));
                }
            }
            opened
        })
    };

    let mut child = task(
        (
            creds.access_key_id(),
            creds.secret_access_key(),
            Some(creds.session_token()),
        ),
        &stack.moto,
        &[command, &pace_ms.to_string()],
    )
    .stdout(Stdio::piped())
    .spawn()
    .expect("the cleanup task starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut calls: Vec<Call> = Vec::new();
    let mut rng = tripwire_synth::SplitMix(now_ms() as u64);
    let mut sent = 0;
    while let Ok(Some(line)) = lines.next_line().await {
        let v: Value = serde_json::from_str(&line).expect("a call line");
        let c = Call {
            at_ms: v["at_ms"].as_i64().unwrap_or_default(),
            ids: serde_json::from_value(v["ids"].clone()).unwrap_or_default(),
            group: v["group"].as_str().map(str::to_owned),
            ok: v["ok"] == true,
            error: v["error"].as_str().map(str::to_owned),
            request_id: v["request_id"].as_str().map(str::to_owned),
            user_agent: v["user_agent"].as_str().unwrap_or_default().to_owned(),
            returned: Instant::now(),
        };
        for rec in records_of(door, &c, &session, &mut rng) {
            let _ = tx.send((sent, rec, c.returned));
            sent += 1;
        }
        calls.push(c);
    }
    assert!(
        child.wait().await.is_ok_and(|s| s.success()),
        "the cleanup task failed"
    );
    drop(tx);
    let opened = delivery.await.expect("delivery");
    let _ = tokio::time::timeout(Duration::from_secs(10), watcher).await;
    let Seen {
        alert: alert_seen,
        brake: brake_seen,
    } = *seen.lock().await;
    let states: BTreeMap<String, i64> =
        serde_json::from_value(output_of(task(admin, &stack.moto, &["states"])).await)
            .unwrap_or_default();
    Run {
        fleet: states.values().sum::<i64>() as usize,
        calls,
        opened,
        alert_seen,
        brake_seen,
        states,
    }
}
