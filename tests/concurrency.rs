//! Many containers, many deliveries, duplicates, any order: the detector must end with
//! exactly the incidents `tripwire backtest` finds in the same events, and contain each
//! incident exactly once.

use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::Semaphore;
use tripwire_localstack::{Options, Stack, OTHER, POLICY, PROD};
use tripwire_synth::{eventbridge_envelope, terminate_record, Call, Caller, SplitMix};

/// Ten minutes ago, on a whole minute: the real functions read the system clock, and a
/// burst older than its window plus `max_delivery_delay` is history they never contain.
static BASE: std::sync::LazyLock<i64> = std::sync::LazyLock::new(tripwire_localstack::recent);
const DELIVERIES: usize = 500;
const IN_FLIGHT: usize = 50;

/// (caller, account where instances die, calls, ms between calls, instances per call, offset ms)
const RUNS: &[(&str, &str, i64, i64, usize, i64)] = &[
    ("role/conc/fast@222222222222", PROD, 60, 2_000, 1, 0),
    ("role/conc/slow@222222222222", PROD, 60, 70_000, 1, 0),
    ("role/conc/twice@222222222222", PROD, 20, 1_000, 1, 0),
    (
        "role/conc/twice@222222222222",
        PROD,
        20,
        1_000,
        1,
        30 * 60_000,
    ),
    ("user/conc/bob@222222222222", PROD, 15, 10_000, 2, 0),
    ("role/conc/xacct@444444444444", PROD, 5, 5_000, 1, 0),
];

fn events() -> Vec<Value> {
    let mut out = Vec::new();
    for (r, (who, account, calls, step, per_call, offset)) in RUNS.iter().enumerate() {
        let caller = Caller::parse(who).unwrap();
        for k in 0..*calls {
            let ids: Vec<String> = (0..*per_call)
                .map(|j| format!("i-{r:02x}{k:06x}{j:09x}"))
                .collect();
            let id = format!("conc-{r}-{k}");
            let rec = terminate_record(&Call {
                caller: &caller,
                account,
                region: "us-east-1",
                time: *BASE + offset + k * step,
                instance_ids: &ids,
                event_id: &id,
                error: None,
                source_ip: "10.0.0.9",
                user_agent: "concurrency-test",
                invoked_by: None,
                already_terminated: 0,
                session: "session",
                access_key: "EXAMPLEEXAMPLE00",
            });
            out.push(eventbridge_envelope(&rec, &format!("eb-{id}")));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_deliveries_find_exactly_the_backtest_incidents() {
    let stack = Arc::new(
        Stack::start(Options {
            detectors: 10,
            responders: 3,
            ..Options::default()
        })
        .await,
    );
    for (account, path, name) in [
        (PROD, "/conc/", "fast"),
        (PROD, "/conc/", "slow"),
        (PROD, "/conc/", "twice"),
        (OTHER, "/conc/", "xacct"),
    ] {
        stack
            .iam_in(account)
            .create_role()
            .role_name(name)
            .path(path)
            .assume_role_policy_document("{}")
            .send()
            .await
            .unwrap();
    }
    stack
        .iam_in(PROD)
        .create_user()
        .user_name("bob")
        .path("/conc/")
        .send()
        .await
        .unwrap();

    // Every event once, then duplicates up to 500 deliveries, in a shuffled order.
    let events = events();
    let mut rng = SplitMix(7);
    let mut order: Vec<usize> = (0..events.len()).collect();
    while order.len() < DELIVERIES {
        order.push(rng.below(events.len() as u64) as usize);
    }
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }

    // What the backtest says about the same events.
    let file = stack.logs.join("events.jsonl");
    std::fs::write(
        &file,
        order
            .iter()
            .map(|&i| events[i].to_string())
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .unwrap();
    let policy = stack.logs.join("policy.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let out = std::process::Command::new(tripwire_localstack::binary("tripwire"))
        .args(["backtest", "--json", "--policy"])
        .arg(&policy)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut expected: BTreeMap<String, usize> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        if v["type"] == "incident" {
            *expected
                .entry(v["principal_arn"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    assert_eq!(
        expected.values().sum::<usize>(),
        5,
        "the scenario itself: {expected:?}"
    );

    let gate = Arc::new(Semaphore::new(IN_FLIGHT));
    let tasks: Vec<_> = order
        .iter()
        .map(|&i| {
            let (stack, gate, event) = (stack.clone(), gate.clone(), events[i].clone());
            tokio::spawn(async move {
                let _permit = gate.acquire_owned().await.unwrap();
                stack.invoke(&event).await
            })
        })
        .collect();
    let mut opened: BTreeMap<String, usize> = BTreeMap::new();
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for t in tasks {
        let out = t.await.unwrap().expect("every delivery succeeds");
        let o = &out[0];
        *outcomes
            .entry(o["outcome"].as_str().unwrap_or("?").to_owned())
            .or_default() += 1;
        if o["outcome"] == "opened" {
            let event_id = o["event_id"].as_str().unwrap();
            let event = events
                .iter()
                .find(|e| e["detail"]["eventID"] == event_id)
                .unwrap();
            let principal = event["detail"]["userIdentity"]["sessionContext"]["sessionIssuer"]
                ["arn"]
                .as_str()
                .or(event["detail"]["userIdentity"]["arn"].as_str())
                .unwrap()
                .to_owned();
            *opened.entry(principal).or_default() += 1;
        }
    }
    assert_eq!(opened, expected, "outcomes: {outcomes:?}");
    assert_eq!(
        outcomes["duplicate"],
        DELIVERIES - events.len(),
        "{outcomes:?}"
    );

    let alerts = stack.alerts().await;
    let mut contained: BTreeMap<String, usize> = BTreeMap::new();
    for a in alerts
        .iter()
        .filter(|a| a.attributes["kind"] == "contained")
    {
        *contained
            .entry(a.body["principal_arn"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(contained, expected, "exactly one containment per incident");
    let detected = alerts
        .iter()
        .filter(|a| a.attributes["kind"] == "detected")
        .count();
    assert_eq!(detected, 5);
}

/// A wave's events and its caller's records, all at once from many containers, each
/// delivered more than once: one wave, one first page, one page naming the caller, and
/// every instance counted and credited exactly once, as the backtest counts them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wave_raced_by_many_containers_counts_and_credits_each_instance_once() {
    use tripwire_pipeline::Waves;
    let stack = Arc::new(
        Stack::start(Options {
            detectors: 10,
            ..Options::default()
        })
        .await,
    );
    let burst = tripwire_localstack::Burst::new("role/conc/wiper@222222222222", "conc-wave")
        .at(*BASE)
        .calls(40)
        .ids_per_call(2)
        .step(1000);
    let mut events = burst.state_changes("shutting-down", 1500);
    events.extend(burst.state_changes("terminated", 40_000));
    events.extend(burst.envelopes());
    let mut rng = SplitMix(11);
    let mut order: Vec<usize> = (0..events.len()).collect();
    order.extend((0..60).map(|_| rng.below(events.len() as u64) as usize));
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    // EC2's first event for the pair comes first, as it does seconds after a
    // termination (a record before any of its pair's events names no one).
    let mut results: BTreeMap<String, usize> = BTreeMap::new();
    stack.invoke(&events[0]).await.unwrap();
    let gate = Arc::new(Semaphore::new(IN_FLIGHT));
    let tasks: Vec<_> = order
        .iter()
        .map(|&i| {
            let (stack, gate, event) = (stack.clone(), gate.clone(), events[i].clone());
            tokio::spawn(async move {
                let _permit = gate.acquire_owned().await.unwrap();
                stack.invoke(&event).await
            })
        })
        .collect();
    for t in tasks {
        let out = t.await.unwrap().expect("every delivery succeeds");
        for o in out.as_array().unwrap() {
            if let Some(r) = o["result"].as_str() {
                *results.entry(r.to_owned()).or_default() += 1;
            }
        }
    }
    assert_eq!(results.get("opened"), Some(&1), "{results:?}");
    let store = tripwire_aws::store::WindowStore::new(
        aws_sdk_dynamodb::Client::new(&stack.sdk),
        &stack.table,
    );
    let wave = store.wave(PROD, "us-east-1").await.unwrap().unwrap();
    assert_eq!((wave.wave.instances, wave.claimed), (80, 80));
    assert_eq!(wave.wave.claimed_by.len(), 1);
    assert_eq!(wave.wave.claimed_by[0].instances, 80);
    let pages: Vec<String> = stack
        .alerts()
        .await
        .iter()
        .filter(|a| a.attributes["kind"] == "shutdown_wave")
        .map(|a| a.body["stage"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        pages.iter().filter(|s| *s == "opened").count(),
        1,
        "{pages:?}"
    );
    assert_eq!(
        pages.iter().filter(|s| *s == "claimed").count(),
        1,
        "{pages:?}"
    );
}
