//! `make bench-scale`: the worst day on the local stack. The release detector, two
//! containers, takes one principal terminating 100, 10,000 and 100,000 instances (calls
//! of [`IDS_PER_CALL`], a burst of ten then five a second by eventTime, every tenth call
//! delivered twice), then a storm of 1,000 principals at once. For each run it reports
//! what the detector's own logs say per call (DynamoDB items read, which moto cannot
//! report, and time), the count the incident ends with, its export, and the largest item
//! in the table by DynamoDB's size rules; `target/bench-scale.json` and a table.
//! Then routine traffic below the threshold, counted and not, for the cost per call.
//! `SIZES=100,10000` picks the sizes; `STORM=N` sets the storm's principals and
//! `ROUTINE=N` the routine run's (0 skips either).

use futures_util::stream::{self, StreamExt};
use serde_json::{json, Value};
use tripwire_localstack::{Burst, Options, Stack, PROD};

/// Instances per call: the same in every run, so per-call figures compare.
const IDS_PER_CALL: usize = 100;
/// Deliveries in flight, as EventBridge's concurrent invocations.
const IN_FLIGHT: usize = 4;
/// Ten minutes ago, on a whole minute: the real functions read the system clock, and a
/// burst older than its window plus `max_delivery_delay` is history they never contain.
static BASE: std::sync::LazyLock<i64> = std::sync::LazyLock::new(tripwire_localstack::recent);

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[(((v.len() - 1) as f64) * p).round() as usize]
}

/// The detector's log lines for processed calls (not duplicates), from every container.
fn processed(stack: &Stack, detectors: usize) -> Vec<Value> {
    (0..detectors)
        .flat_map(|k| {
            std::fs::read_to_string(stack.logs.join(format!("detector-{k}.log")))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter(|v| v["fields"]["message"] == "event processed")
                .filter(|v| {
                    !v["fields"]["outcome"]
                        .as_str()
                        .unwrap_or("")
                        .starts_with("Duplicate")
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Delivers `events`, each retried twice on failure as Lambda does for an asynchronous
/// invocation; returns (first-attempt errors, events that failed all three: the DLQ's),
/// and the outcomes.
async fn deliver(stack: &Stack, events: Vec<Value>) -> (usize, usize, Vec<Value>) {
    let results: Vec<(usize, bool, Value)> = stream::iter(events)
        .map(|e| async move {
            let mut errors = 0;
            for _ in 0..3 {
                match stack.invoke(&e).await {
                    Ok(out) => return (errors, false, out),
                    Err(_) => errors += 1,
                }
            }
            (errors, true, Value::Null)
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let errors = results.iter().filter(|r| r.0 > 0).count();
    let dlq = results.iter().filter(|r| r.1).count();
    (errors, dlq, results.into_iter().map(|r| r.2).collect())
}

async fn wipe(instances: usize) -> Value {
    let detectors = 2;
    let stack = Stack::start(Options {
        detectors,
        ..Options::default()
    })
    .await;
    let calls = instances.div_ceil(IDS_PER_CALL);
    let mut events = Vec::new();
    for (k, mut e) in Burst::new(&format!("role/vendor/cleanup-task@{PROD}"), "scale")
        .calls(calls as i64)
        .ids_per_call(IDS_PER_CALL)
        .envelopes()
        .into_iter()
        .enumerate()
    {
        // EC2's throttle shape: a burst, then five calls a second.
        let at = *BASE
            + if k < 10 {
                k as i64 * 10
            } else {
                100 + (k as i64 - 10) * 200
            };
        let time = tripwire_engine::time::format_millis(at);
        e["time"] = json!(time[..19].to_owned() + "Z");
        e["detail"]["eventTime"] = json!(time[..19].to_owned() + "Z");
        if k % 10 == 9 {
            events.push(e.clone());
        }
        events.push(e);
    }
    let started = std::time::Instant::now();
    let (errors, dlq, outcomes) = deliver(&stack, events).await;
    let wall_s = started.elapsed().as_secs_f64();
    let counted = outcomes
        .iter()
        .filter_map(|o| o[0]["instances"].as_u64().or(o[0]["window_count"].as_u64()))
        .max()
        .unwrap_or(0);
    let lines = processed(&stack, detectors);
    let mut reads: Vec<f64> = lines
        .iter()
        .filter_map(|v| v["fields"]["items_read"].as_f64())
        .collect();
    let mut ms: Vec<f64> = lines
        .iter()
        .filter_map(|v| v["fields"]["total_ms"].as_f64())
        .collect();
    let largest = stack.largest_items().await;
    let (item, max_item_bytes) = tripwire_localstack::largest_of(&largest);
    // Each kind's largest item: an update bills the item's whole size, so these say
    // what each write on the principal's partitions costs.
    let largest_by_kind: serde_json::Map<String, Value> = largest
        .into_iter()
        .map(|(kind, (_, size))| (kind, json!(size)))
        .collect();
    let (written, write_requests) = stack.dynamodb_items_written("detector").await;
    let deliveries = calls + calls / 10;
    let id = stack
        .alerts()
        .await
        .first()
        .map(|a| a.body["id"].as_str().unwrap_or("").to_owned());
    let exported = match id {
        Some(id) => {
            let out = stack
                .cli()
                .args(["incident", "export", "--format", "jsonl", &id])
                .output()
                .expect("tripwire runs");
            String::from_utf8_lossy(&out.stdout).lines().count()
        }
        None => 0,
    };
    json!({
        "instances": instances,
        "calls": calls,
        "deliveries": deliveries,
        "errors": errors,
        "dlq": dlq,
        "incident_instances": counted,
        "exported": exported,
        "items_read_per_call_p50": percentile(&mut reads, 0.5),
        "items_read_per_call_p99": percentile(&mut reads, 0.99),
        "detector_ms_p50": percentile(&mut ms, 0.5),
        "detector_ms_p99": percentile(&mut ms, 0.99),
        // Every delivery's, redeliveries included: what the table is billed for.
        "items_written_per_delivery": written as f64 / deliveries as f64,
        "write_requests_per_delivery": write_requests as f64 / deliveries as f64,
        "max_item_bytes": max_item_bytes,
        "largest_item": item,
        "largest_item_bytes_by_kind": largest_by_kind,
        "wall_s": wall_s,
    })
}

/// Routine traffic, the bulk of any month: `principals` principals each terminating one
/// instance a minute for five minutes (below the threshold), and as many calls by Auto
/// Scaling's service-linked role, which the policy never counts. What each costs in
/// DynamoDB, per delivery, is what the cost table in docs/operations.md multiplies.
async fn routine(principals: usize) -> Value {
    let mut out = serde_json::Map::new();
    for (name, who) in [
        ("counted", "role/karpenter/controller-{p}"),
        (
            "service_linked_role",
            "role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling",
        ),
    ] {
        let stack = Stack::start(Options::default()).await;
        let events: Vec<Value> = (0..principals)
            .flat_map(|p| {
                let who = format!("{}@{PROD}", who.replace("{p}", &p.to_string()));
                Burst::new(&who, &format!("{name}{p}"))
                    .at(*BASE + p as i64 * 300_000)
                    .calls(5)
                    .step(60_000)
                    .envelopes()
            })
            .collect();
        let deliveries = events.len();
        let (errors, dlq, outcomes) = deliver(&stack, events).await;
        let lines = processed(&stack, 1);
        let mut reads: Vec<f64> = lines
            .iter()
            .filter_map(|v| v["fields"]["items_read"].as_f64())
            .collect();
        let (written, _) = stack.dynamodb_items_written("detector").await;
        let mut outcome_counts = std::collections::BTreeMap::<String, usize>::new();
        for o in &outcomes {
            let o = o[0]["outcome"].as_str().unwrap_or("error").to_owned();
            *outcome_counts.entry(o).or_default() += 1;
        }
        out.insert(
            name.into(),
            json!({
                "deliveries": deliveries,
                "errors": errors,
                "dlq": dlq,
                "outcomes": outcome_counts,
                "items_read_per_delivery_p50": percentile(&mut reads, 0.5),
                "items_read_per_delivery_p99": percentile(&mut reads, 0.99),
                "items_written_per_delivery": written as f64 / deliveries as f64,
            }),
        );
    }
    Value::Object(out)
}

/// 1,000 principals at once, two calls each of ten instances: a thousand incidents
/// opening together, within the detector's reserved concurrency (here, the containers).
async fn storm(principals: usize) -> Value {
    let detectors = 4;
    let stack = Stack::start(Options {
        detectors,
        ..Options::default()
    })
    .await;
    let events: Vec<Value> = (0..principals)
        .flat_map(|p| {
            Burst::new(&format!("role/asg/node-{p}@{PROD}"), &format!("storm{p}"))
                .calls(2)
                .ids_per_call(10)
                .envelopes()
        })
        .collect();
    let started = std::time::Instant::now();
    let (errors, dlq, outcomes) = deliver(&stack, events).await;
    let opened = outcomes
        .iter()
        .filter(|o| o[0]["outcome"] == "opened")
        .count();
    json!({
        "principals": principals,
        "deliveries": principals * 2,
        "errors": errors,
        "dlq": dlq,
        "incidents_opened": opened,
        "detected_alerts": stack
            .alerts()
            .await
            .iter()
            .filter(|a| a.attributes.get("kind").map(String::as_str) == Some("detected"))
            .count(),
        "wall_s": started.elapsed().as_secs_f64(),
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let sizes: Vec<usize> = std::env::var("SIZES")
        .unwrap_or_else(|_| "100,10000,100000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let mut runs = Vec::new();
    println!("| instances | calls | errors | dlq | counted | exported | items read p50/p99 | items written per delivery | detector ms p50/p99 | largest item |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for n in sizes {
        eprintln!("wipe of {n} instances...");
        let r = wipe(n).await;
        println!(
            "| {} | {} | {} | {} | {} | {} | {}/{} | {:.1} | {:.0}/{:.0} | {} B |",
            r["instances"],
            r["calls"],
            r["errors"],
            r["dlq"],
            r["incident_instances"],
            r["exported"],
            r["items_read_per_call_p50"],
            r["items_read_per_call_p99"],
            r["items_written_per_delivery"].as_f64().unwrap_or(0.0),
            r["detector_ms_p50"].as_f64().unwrap_or(0.0),
            r["detector_ms_p99"].as_f64().unwrap_or(0.0),
            r["max_item_bytes"]
        );
        runs.push(r);
    }
    let principals = principals_from_env("STORM", 1000);
    let storm = if principals == 0 {
        Value::Null
    } else {
        eprintln!("storm of {principals} principals...");
        let s = storm(principals).await;
        println!("\nstorm: {s}");
        s
    };
    let routine = match principals_from_env("ROUTINE", 100) {
        0 => Value::Null,
        n => {
            eprintln!("routine traffic of {n} principals...");
            let r = routine(n).await;
            println!("\nroutine: {r}");
            r
        }
    };
    let report = json!({"runs": runs, "storm": storm, "routine": routine,
                        "ids_per_call": IDS_PER_CALL, "machine": machine()});
    let path = tripwire_localstack::target_dir().join("bench-scale.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&report).unwrap_or_default(),
    )
    .expect("target/bench-scale.json");
    eprintln!("wrote {}", path.display());
    let n = |v: &Value, k: &str| v[k].as_u64().unwrap_or(u64::MAX);
    let failed = runs.iter().any(|r| {
        n(r, "errors") != 0
            || n(r, "dlq") != 0
            || n(r, "incident_instances") != n(r, "instances")
            || n(r, "exported") != n(r, "instances")
    }) || (storm != Value::Null
        && (n(&storm, "dlq") != 0
            || n(&storm, "incidents_opened") != principals as u64
            || n(&storm, "detected_alerts") != principals as u64))
        || routine
            .as_object()
            .is_some_and(|r| r.values().any(|g| n(g, "dlq") != 0 || n(g, "errors") != 0));
    if failed {
        eprintln!("bench-scale: a run lost, failed or miscounted events");
        std::process::exit(1);
    }
}

/// A count from the environment (`0` skips that part), else `default`.
fn principals_from_env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpu
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_default();
    format!(
        "{} x {model}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    )
}
