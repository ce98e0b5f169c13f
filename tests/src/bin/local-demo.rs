//! `make demo`: the seed incident replayed through the real functions on the local stack,
//! with a timeline of measured latencies, the alert as sent and the policies as stored.

use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use tripwire_engine::alert::{render, AlertKind, ContainmentStatus};
use tripwire_engine::time::parse_event_time;
use tripwire_engine::Incident;
use tripwire_localstack::{Options, Stack, POLICY, PROD};
use tripwire_synth::{eventbridge_envelope, seed_scenario};

const CLEANUP_ROLE: &str = "arn:aws:iam::222222222222:role/vendor/cleanup-task";

/// When each thing first became visible to an outside observer.
#[derive(Default)]
struct Seen {
    alert: Option<Instant>,
    policy: Option<Instant>,
}

fn after(from: Instant, to: Option<Instant>) -> String {
    to.map_or("not seen".into(), |t| {
        format!(
            "+{:.1} ms",
            t.saturating_duration_since(from).as_secs_f64() * 1000.0
        )
    })
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("    {l}\n")).collect()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    println!("Starting the local stack: moto server, cargo-lambda's runtime emulator, the detector and responder binaries...");
    let stack = Arc::new(Stack::start(Options::default()).await);
    println!("Policy:\n{}", indent(POLICY));

    // The incident happens now: event times are the wall clock, as they would be live.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    // The burst has just finished: its 60 calls ran over the last 90 seconds.
    let mut events: Vec<_> = seed_scenario(now - 95_000)
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    events.sort_by_key(|r| {
        parse_event_time(r["eventTime"].as_str().unwrap_or_default()).unwrap_or_default()
    });
    println!("Replaying {} CloudTrail events: a vendor cleanup role terminating 60 production instances in 90 s,", events.len());
    println!("alongside an Auto Scaling scale-in, the same tool in the development account, and a rolling deploy.\n");

    // An observer polls what a human would see: the topic's subscriber queue and IAM.
    let seen = Arc::new(Mutex::new(Seen::default()));
    let watcher = {
        let (stack, seen) = (stack.clone(), seen.clone());
        tokio::spawn(async move {
            loop {
                let alert = stack.alerts_waiting().await > 0;
                let policy = !stack.role_policies(PROD, "cleanup-task").await.is_empty();
                let mut s = seen.lock().await;
                let t = Instant::now();
                if alert && s.alert.is_none() {
                    s.alert = Some(t);
                }
                if policy && s.policy.is_none() {
                    s.policy = Some(t);
                }
                if s.alert.is_some() && s.policy.is_some() {
                    return;
                }
                drop(s);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };

    let (mut crossing, mut counted, mut not_counted) = (None, 0, 0);
    for (i, rec) in events.iter().enumerate() {
        let sent = Instant::now();
        let out = stack
            .invoke(&eventbridge_envelope(rec, &format!("demo-{i}")))
            .await
            .unwrap_or_else(|e| panic!("event {i}: {e:?}"));
        let returned = Instant::now();
        match out[0]["outcome"].as_str() {
            Some("opened") => crossing = Some((rec.clone(), out[0].clone(), sent, returned)),
            Some("not_counted") => not_counted += 1,
            _ => counted += 1,
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), watcher).await;
    let (trigger, result, sent, returned) = crossing.expect("the seed incident opens an incident");
    let seen = seen.lock().await;
    let first = events
        .iter()
        .find(|r| r["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"] == CLEANUP_ROLE)
        .expect("cleanup calls");
    println!("Timeline");
    println!(
        "  first termination    {}   (CloudTrail eventTime)",
        first["eventTime"].as_str().unwrap_or_default()
    );
    println!(
        "  threshold crossed    {}   (10th instance; incident {})",
        trigger["eventTime"].as_str().unwrap_or_default(),
        result["incident"].as_str().unwrap_or_default()
    );
    println!(
        "  detector answered    {}   after that event was delivered",
        after(sent, Some(returned))
    );
    println!(
        "  alert in the queue   {}   (the topic's SQS subscriber)",
        after(sent, seen.alert)
    );
    println!(
        "  policy in place      {}   (GetRolePolicy on the role in {PROD})",
        after(sent, seen.policy)
    );
    println!(
        "  other events         {} counted, {} never counted (Auto Scaling, allowed account)\n",
        counted, not_counted
    );

    let alerts = stack.alerts().await;
    for a in &alerts {
        println!(
            "SNS alert  kind={} severity={} account={}",
            a.attributes["kind"], a.attributes["severity"], a.attributes["account"]
        );
        println!("  Subject: {}", a.subject);
    }
    if let Some(d) = alerts.iter().find(|a| a.attributes["kind"] == "detected") {
        // The text body e-mail and pagers got, rendered from the JSON the queue got: the
        // renderer is deterministic, so this is the same text.
        let incident: Incident = serde_json::from_value(d.body.clone()).expect("incident JSON");
        let status: ContainmentStatus =
            serde_json::from_value(d.body["containment_status"].clone()).expect("status");
        let at =
            parse_event_time(d.body["alert_time"].as_str().unwrap_or_default()).unwrap_or_default();
        let text = render(AlertKind::Detected, &incident, &status, 300_000, at, false).text;
        println!(
            "\nThe DETECTED alert as e-mail and pagers get it:\n{}",
            indent(&text)
        );
    }
    println!(
        "Managed policies attached to {CLEANUP_ROLE} (every session): {}",
        stack.attached(PROD, "role/cleanup-task").await.join(", ")
    );
    println!("Inline policies now on {CLEANUP_ROLE}, as IAM stores them:");
    for (name, doc) in stack.role_policies(PROD, "cleanup-task").await {
        println!("  {name}: {doc}");
    }
    println!("\nLift it with: tripwire release --account {PROD} --principal {CLEANUP_ROLE}");
    println!("Local stack stopped.");
}
