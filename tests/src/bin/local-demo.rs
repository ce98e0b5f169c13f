//! `make demo`: the seed incident as it happens. A vendor's cleanup task
//! (tests/demo/cleanup_task.py) terminates production instances through moto's EC2 with
//! IAM enforced, one call at a time; each call reaches the real detector as the CloudTrail
//! record EventBridge would deliver; the responder's denies land in IAM, and the task's
//! calls start failing with AccessDenied. The demo shows what died, what survived, and the
//! times as measured. Then the same task through another door, on a fresh stack: it
//! force-deletes the production Auto Scaling groups, Auto Scaling's service-linked role
//! terminates their instances, and those count as the task's own.

use std::sync::Arc;
use std::time::Instant;
use tripwire_engine::destination::alert_from_json;
use tripwire_engine::time::format_millis;
use tripwire_localstack::runaway::{self, Door, ROLE, SESSION};
use tripwire_localstack::{Options, Stack, CENTRAL, POLICY, PROD};
use tripwire_synth::{eventbridge_envelope, seed_scenario};

/// Production instances the task will find.
const FLEET: usize = 60;
/// The task's pace: one TerminateInstances call every PACE_MS.
const PACE_MS: u64 = 100;
/// The groups door: production Auto Scaling groups, and instances in each.
const GROUPS: usize = 12;
const GROUP_SIZE: usize = 5;

fn since(from: Instant, to: Option<Instant>) -> String {
    to.map_or("not seen".into(), |t| {
        format!(
            "+{:>7.1} ms",
            t.saturating_duration_since(from).as_secs_f64() * 1000.0
        )
    })
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("    {l}\n")).collect()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    println!("Starting the local stack: moto server (IAM enforced), cargo-lambda's runtime emulator, the detector and responder binaries...");
    let stack = Arc::new(
        Stack::start(Options {
            enforce_iam: true,
            ..Options::default()
        })
        .await,
    );
    println!("Policy:\n{}", indent(POLICY));
    // CloudTrail's own delivery delay is seconds in AWS (best effort); by default the
    // records go to the detector as soon as each call returns.
    let delivery_ms: u64 = std::env::var("TRIPWIRE_DEMO_DELIVERY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);

    // The rest of that morning first: an Auto Scaling scale-in, the same tool in the
    // development account and a rolling deploy, none of which may page.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let (mut counted, mut not_counted) = (0, 0);
    for (i, (_, rec)) in seed_scenario(now - 95_000)
        .into_iter()
        .filter(|(_, r)| r["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"] != ROLE)
        .enumerate()
    {
        let out = stack
            .invoke(&eventbridge_envelope(&rec, &format!("background-{i}")))
            .await
            .unwrap_or_else(|e| panic!("background event {i}: {e:?}"));
        match out[0]["outcome"].as_str() {
            Some("not_counted") => not_counted += 1,
            _ => counted += 1,
        }
    }
    println!("{FLEET} production instances run in {PROD}. The vendor's cleanup task starts from a development VM");
    println!("as {ROLE} (session {SESSION}), one TerminateInstances call every {PACE_MS} ms,");
    println!(
        "each delivered to the detector {} after the call returns.\n",
        if delivery_ms == 0 {
            "at once".to_owned()
        } else {
            format!("{delivery_ms} ms")
        }
    );
    let run = runaway::run(
        stack.clone(),
        Door::Instances { fleet: FLEET },
        PACE_MS,
        delivery_ms,
    )
    .await;
    let calls = &run.calls;

    // The timeline, from when the first call returned (the task's clock and ours agree
    // on a call's duration, not on the instant it began).
    let Some(first) = calls.first() else {
        println!("The task found no instances to terminate.");
        return;
    };
    let mut terminated = 0;
    let threshold = calls.iter().find(|c| {
        terminated += if c.ok { c.ids.len() } else { 0 };
        terminated >= 10
    });
    let refused: Vec<&runaway::Call> = calls.iter().filter(|c| !c.ok).collect();
    let last_ok = calls.iter().rev().find(|c| c.ok);
    let eventtime = format!("eventTime {}", format_millis(first.at_ms));
    let incident = format!(
        "opened {}; it waits for the responder's answer",
        run.opened.as_ref().map_or("no incident", |o| o.1.as_str())
    );
    let iam_read = format!("ListAttachedRolePolicies in {PROD}");
    let mut rows = vec![
        (
            "first termination",
            Some(first.returned),
            eventtime.as_str(),
        ),
        (
            "10th instance terminated",
            threshold.map(|c| c.returned),
            "",
        ),
        (
            "detector returned",
            run.opened.as_ref().map(|o| o.0),
            incident.as_str(),
        ),
        (
            "alert in the queue",
            run.alert_seen,
            "the topic's SQS subscriber",
        ),
        (
            "brake attached in IAM",
            run.brake_seen.map(|b| b.0),
            iam_read.as_str(),
        ),
        (
            "first call refused",
            refused.first().map(|c| c.returned),
            refused
                .first()
                .and_then(|c| c.error.as_deref())
                .unwrap_or("none refused"),
        ),
        ("last termination", last_ok.map(|c| c.returned), ""),
    ];
    // In the order they happened; what never happened last.
    rows.sort_by_key(|&(_, t, _)| (t.is_none(), t));
    println!("Timeline (measured; +0 is when the task's first termination returned; the observer");
    println!("polls the queue and IAM every 10 ms, so what it saw may trail what the task met)");
    for (what, t, note) in rows {
        let line = format!("  {what:<25} {}   {note}", since(first.returned, t));
        println!("{}", line.trim_end());
    }
    if let (Some(t), Some((b, _))) = (threshold, run.brake_seen) {
        println!(
            "  threshold to brake        {:>8.1} ms",
            b.saturating_duration_since(t.returned).as_secs_f64() * 1000.0
        );
    }
    println!(
        "\nThe task made {} calls: {} terminated an instance, {} were refused.",
        calls.len(),
        calls.len() - refused.len(),
        refused.len()
    );
    let state = |s: &str| run.states.get(s).copied().unwrap_or(0);
    println!(
        "Production, as EC2 reports it now: {} terminated, {} still running, of {}.",
        state("terminated"),
        state("running"),
        run.fleet
    );
    println!(
        "Earlier that morning: {counted} other calls counted, {not_counted} never counted (Auto Scaling, allowed account).\n"
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
        // The text body e-mail and pagers got, read back from the JSON the queue got
        // (`tripwire render --format text` does the same).
        let alert = alert_from_json(&d.body, 300_000).expect("the detected alert's JSON");
        println!(
            "\nThe DETECTED alert as e-mail and pagers get it:\n{}",
            indent(&alert.text)
        );
    }
    // What the alert bus's rules send on, as the detector put it there.
    let events = stack.bus_events().await;
    match events.iter().find(|e| e["detail-type"] == "detected") {
        Some(e) => {
            let pretty =
                |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
            let d = &e["detail"]["destinations"];
            println!(
                "The same alert in chat: the custom notification the chat rule publishes to the\nchat topic for Amazon Q Developer in chat applications (threaded by incident):\n{}",
                indent(&pretty(&d["chatbot"]))
            );
            println!(
                "And in PagerDuty: the Events API v2 event the PagerDuty rule posts (the\nconnection adds routing_key; containment updates it, release resolves it):\n{}",
                indent(&pretty(&d["pagerduty"]))
            );
        }
        None => println!(
            "No detected event reached the alert bus (the detector logs alert_bus_failed).\n"
        ),
    }
    println!(
        "Managed policies attached to {ROLE} (every session): {}",
        stack.attached(PROD, "role/cleanup-task").await.join(", ")
    );
    println!("Tags now on {ROLE}, naming the culprit to tripwire-contain-scope:");
    for (key, value) in stack.tags(PROD, "role/cleanup-task").await {
        if key.starts_with(tripwire_engine::names::CONTAIN_TAG_PREFIX) {
            println!("  {key} = {value}");
        }
    }
    println!("(The containment role wrote no policy document: it may only attach the tripwire's");
    println!("managed denies and set tripwire-contain-* tags.)");
    println!(
        "\nmoto enforces IAM by action and resource and ignores conditions, so here the session's"
    );
    println!(
        "scoped deny stops every session of the role; tests/infra/test_iam_evaluation.py shows"
    );
    println!(
        "with conditions that in AWS only this session is denied everything and the rest of the"
    );
    println!("role only the brake. The functions ran as users holding exactly the actions the");
    println!("end-to-end tests record for them, in the security account {CENTRAL}.");
    println!("\nLift it with: tripwire release --account {PROD} --principal {ROLE}");
    drop(stack);
    groups_door(delivery_ms).await;
    println!("Local stack stopped.");
}

/// The same task through the Auto Scaling door, on a fresh stack.
async fn groups_door(delivery_ms: u64) {
    println!("\n--- Another door: the groups ---\n");
    println!("A fresh stack. {GROUPS} production Auto Scaling groups of {GROUP_SIZE} instances run in {PROD}; the same");
    println!(
        "task now force-deletes the groups, one DeleteAutoScalingGroup every {PACE_MS} ms. Each"
    );
    println!(
        "group's instances are terminated by Auto Scaling's service-linked role, whose records"
    );
    println!("name no one; the detector credits them to the principal whose call decided them.\n");
    let stack = Arc::new(
        Stack::start(Options {
            enforce_iam: true,
            ..Options::default()
        })
        .await,
    );
    let run = runaway::run(
        stack.clone(),
        Door::Groups {
            groups: GROUPS,
            size: GROUP_SIZE,
        },
        PACE_MS,
        delivery_ms,
    )
    .await;
    let (ok, refused): (Vec<&runaway::Call>, Vec<&runaway::Call>) =
        run.calls.iter().partition(|c| c.ok);
    println!(
        "The task made {} calls: {} deleted a group ({} instances with them), {} were refused ({}).",
        run.calls.len(),
        ok.len(),
        ok.iter().map(|c| c.ids.len()).sum::<usize>(),
        refused.len(),
        refused
            .first()
            .and_then(|c| c.error.as_deref())
            .unwrap_or("none")
    );
    let state = |s: &str| run.states.get(s).copied().unwrap_or(0);
    println!(
        "Production, as EC2 reports it now: {} terminated, {} still running, of {}.",
        state("terminated"),
        state("running"),
        run.fleet
    );
    for a in stack.alerts().await {
        let text = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_owned();
        println!(
            "SNS alert  kind={} incident_kind={}",
            a.attributes["kind"],
            text(&a.body["incident_kind"])
        );
        println!("  Subject: {}", a.subject);
        if a.attributes["kind"] == "detected" {
            println!(
                "  principal {}\n  via       {} ({})\n  decided by its {} at {}",
                text(&a.body["principal_arn"]),
                text(&a.body["via"]["service"]),
                text(&a.body["via"]["principal_arn"]),
                text(&a.body["initiator"]["event_name"]),
                text(&a.body["initiator"]["event_time"])
            );
        }
    }
    println!(
        "Managed policies attached to {ROLE}: {}",
        stack.attached(PROD, "role/cleanup-task").await.join(", ")
    );
    println!("(the brake denies the calls that make services terminate, DeleteAutoScalingGroup among them)");
}
