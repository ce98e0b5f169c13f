//! End to end on the local stack: real detector and responder binaries under
//! cargo-lambda's runtime emulator, real DynamoDB/SNS/SQS/IAM/STS APIs from moto.

use serde_json::{json, Value};
use tripwire_engine::containment::ContainmentRequest;
use tripwire_localstack::runaway::{self, Door};
use tripwire_localstack::{Burst, Options, Received, Stack, CONTAINMENT_ROLE, OTHER, PROD};
use tripwire_synth::{eventbridge_envelope, seed_scenario};

/// 2018-01-09T22:09:00Z, when the incident began.
/// Ten minutes ago, on a whole minute: the real functions read the system clock, and a
/// burst older than its window plus `max_delivery_delay` is history they never contain.
static BASE: std::sync::LazyLock<i64> = std::sync::LazyLock::new(tripwire_localstack::recent);

fn outcome(v: &Value) -> &str {
    v[0]["outcome"].as_str().unwrap_or_default()
}

/// Ten calls by `who`, a second apart from [`BASE`]: a burst that crosses the threshold.
async fn deliver_burst(stack: &Stack, who: &str, tag: &str) {
    for e in Burst::new(who, tag)
        .at(*BASE)
        .calls(10)
        .step(1000)
        .envelopes()
    {
        stack.invoke(&e).await.unwrap();
    }
}

/// `tripwire release` of `principal` in production, as an operator runs it; its stdout.
fn release(stack: &Stack, principal: &str, extra: &[&str]) -> String {
    release_in(stack, PROD, principal, extra)
}

/// `tripwire release` of `principal` for its incidents in `account`; its stdout.
fn release_in(stack: &Stack, account: &str, principal: &str, extra: &[&str]) -> String {
    let out = stack
        .cli()
        .args(["release", "--account", account, "--principal", principal])
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn kinds(alerts: &[Received]) -> Vec<String> {
    alerts
        .iter()
        .map(|a| a.attributes.get("kind").cloned().unwrap_or_default())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_incident_is_detected_once_and_the_role_contained() {
    let stack = Stack::start(Options::default()).await;
    let mut events: Vec<(i64, Value)> = seed_scenario(*BASE)
        .into_iter()
        .map(|(_, rec)| {
            (
                rec["eventTime"]
                    .as_str()
                    .map(|t| tripwire_engine::time::parse_event_time(t).unwrap())
                    .unwrap(),
                rec,
            )
        })
        .collect();
    events.sort_by_key(|(t, _)| *t);
    let mut opened = Vec::new();
    for (i, (_, rec)) in events.iter().enumerate() {
        let out = stack
            .invoke(&eventbridge_envelope(rec, &format!("eb-{i}")))
            .await
            .unwrap_or_else(|e| panic!("event {i}: {e:?}"));
        if outcome(&out) == "opened" {
            opened.push(out);
        }
    }
    assert_eq!(opened.len(), 1, "{opened:?}");
    assert_eq!(opened[0][0]["window_count"], 10);
    assert_eq!(opened[0][0]["containment_requested"], true);

    let alerts = stack.alerts().await;
    let k = kinds(&alerts);
    assert_eq!(k.iter().filter(|k| *k == "detected").count(), 1, "{k:?}");
    assert_eq!(k.iter().filter(|k| *k == "contained").count(), 1, "{k:?}");
    assert!(!k.iter().any(|k| k == "containment_failed"), "{k:?}");
    let detected = alerts
        .iter()
        .find(|a| a.attributes["kind"] == "detected")
        .unwrap();
    assert_eq!(
        detected.subject,
        "TRIPWIRE: 10 instances terminated by role/vendor/cleanup-task in 222222222222"
    );
    assert_eq!(detected.attributes["severity"], "critical");
    assert_eq!(detected.attributes["account"], PROD);
    assert_eq!(
        detected.body["principal_arn"],
        "arn:aws:iam::222222222222:role/vendor/cleanup-task"
    );
    let at = |ms: i64| tripwire_engine::time::format_millis(ms);
    assert_eq!(detected.body["first_event_time"], at(*BASE).as_str());
    assert_eq!(detected.body["trigger_time"], at(*BASE + 13_500).as_str());
    assert_eq!(detected.body["containment"]["action"], "revoke");

    // One stable session made every call: the brake on the role, and the session
    // alone denied everything: the scope policy, reading the session from the tag.
    // No inline policy: the containment role may not write one.
    assert_eq!(detected.body["containment"]["scope"], "session");
    assert_eq!(
        stack.attached(PROD, "role/cleanup-task").await,
        ["tripwire-brake", "tripwire-contain-scope"]
    );
    assert_eq!(
        stack.tags(PROD, "role/cleanup-task").await,
        [(
            "tripwire-contain-session".to_string(),
            "AROA222222222222:session".to_string()
        )]
        .into()
    );
    assert!(stack.role_policies(PROD, "cleanup-task").await.is_empty());
    // The look-alikes: nothing on the development account's role of the same name.
    let dev = tripwire_localstack::DEV;
    assert!(stack.attached(dev, "role/cleanup-task").await.is_empty());
    assert!(stack.tags(dev, "role/cleanup-task").await.is_empty());
    // Update alerts are throttled to one a minute: the 50 later calls ran in well under one.
    assert!(k.iter().filter(|k| *k == "update").count() <= 1, "{k:?}");
    stack.save_observed_actions("seed-incident").await;
}

/// Alerts until one of `kind` has arrived (the responder's pages come a moment later).
async fn alerts_until(stack: &Stack, kind: &str) -> Vec<Received> {
    let mut got = Vec::new();
    for _ in 0..40 {
        got.extend(stack.alerts().await);
        if kinds(&got).iter().any(|k| k == kind) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ec2s_own_events_page_a_wave_before_cloudtrail_and_the_late_records_name_and_contain_the_caller(
) {
    let stack = Stack::start(Options::default()).await;
    let cleanup = "arn:aws:iam::222222222222:role/vendor/cleanup-task";
    // 60 instances, 30 calls of two a second apart; EC2's events two seconds after each.
    let burst = Burst::new("role/vendor/cleanup-task@222222222222", "wave")
        .at(*BASE)
        .calls(30)
        .ids_per_call(2)
        .step(1000);
    let mut results = Vec::new();
    for e in burst.state_changes("shutting-down", 2000) {
        let out = stack.invoke(&e).await.unwrap();
        results.push(out[0]["result"].as_str().unwrap_or_default().to_owned());
    }
    // The default threshold: 50 instances in 5 minutes.
    assert_eq!(
        results.iter().filter(|r| *r == "counted").count(),
        49,
        "{results:?}"
    );
    assert_eq!(results[49], "opened");
    assert!(results[50..].iter().all(|r| r == "joined"), "{results:?}");
    let first = stack.alerts().await;
    assert_eq!(kinds(&first), ["shutdown_wave"]);
    assert_eq!(
        first[0].subject,
        "TRIPWIRE SHUTDOWN WAVE: 50 instances going away in 222222222222 us-east-1"
    );
    assert_eq!(first[0].attributes["severity"], "critical");
    let page = &first[0].body;
    assert_eq!(
        (page["stage"].as_str(), page["unclaimed_count"].as_u64()),
        (Some("opened"), Some(50))
    );
    assert_eq!(page["claimed_by"], json!([]));
    let wave = page["id"].as_str().unwrap().to_owned();

    // CloudTrail, late: shuffled, every record twice.
    let records = burst.envelopes();
    let mut late: Vec<Value> = records.iter().rev().step_by(3).cloned().collect();
    late.extend(records.iter().cloned());
    late.extend(records.iter().skip(1).step_by(2).cloned());
    for e in &late {
        stack.invoke(e).await.unwrap();
    }
    let later = alerts_until(&stack, "contained").await;
    let k = kinds(&later);
    assert_eq!(
        k.iter().filter(|k| *k == "shutdown_wave").count(),
        1,
        "{k:?}"
    );
    assert_eq!(k.iter().filter(|k| *k == "detected").count(), 1, "{k:?}");
    assert_eq!(k.iter().filter(|k| *k == "contained").count(), 1, "{k:?}");
    let named = later
        .iter()
        .find(|a| a.attributes["kind"] == "shutdown_wave")
        .unwrap();
    assert_eq!(named.body["id"], wave.as_str());
    assert_eq!(named.body["stage"], "claimed");
    assert_eq!(named.body["claimed_by"][0]["principal_arn"], cleanup);
    assert_eq!(
        named.subject,
        "TRIPWIRE SHUTDOWN WAVE: 60 instances in 222222222222 us-east-1 by role/vendor/cleanup-task"
    );
    assert_eq!(
        stack.attached(PROD, "role/cleanup-task").await,
        ["tripwire-brake", "tripwire-contain-scope"]
    );
    // `tripwire backtest` on the same deliveries, duplicates and all, under the same
    // policy: the same wave, the same caller, the same one burst.
    let delivered = stack.logs.join("wave-events.jsonl");
    let lines: Vec<String> = burst
        .state_changes("shutting-down", 2000)
        .iter()
        .chain(&late)
        .map(Value::to_string)
        .collect();
    std::fs::write(&delivered, lines.join("\n")).unwrap();
    let policy = stack.logs.join("wave-policy.toml");
    std::fs::write(&policy, tripwire_localstack::POLICY).unwrap();
    let out = stack
        .cli()
        .args(["backtest", "--json", "--policy"])
        .arg(&policy)
        .arg(&delivered)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replayed: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let waves: Vec<&Value> = replayed
        .iter()
        .filter(|l| l["kind"] == "shutdown_wave")
        .collect();
    assert_eq!(waves.len(), 1);
    assert_eq!(
        (
            &waves[0]["id"],
            &waves[0]["trigger_count"],
            &waves[0]["instances"]
        ),
        (&page["id"], &page["trigger_count"], &json!(60))
    );
    // The page named the caller at its first record; the table holds the wave now.
    let live = {
        use tripwire_pipeline::Waves;
        tripwire_aws::store::WindowStore::new(
            aws_sdk_dynamodb::Client::new(&stack.sdk),
            &stack.table,
        )
        .wave(PROD, "us-east-1")
        .await
        .unwrap()
        .unwrap()
    };
    assert_eq!((live.wave.instances, live.claimed), (60, 60));
    assert_eq!(
        waves[0]["claimed_by"],
        serde_json::to_value(&live.wave.claimed_by).unwrap()
    );
    assert_eq!(waves[0]["unclaimed"], json!([]));
    let bursts: Vec<&Value> = replayed
        .iter()
        .filter(|l| l["type"] == "incident" && l["kind"] != "shutdown_wave")
        .collect();
    assert_eq!(bursts.len(), 1);
    assert_eq!(bursts[0]["principal_arn"], cleanup);

    // A second wave no record claims (Spot, an OS shutdown): alert-only, every instance
    // named unclaimed.
    let quiet = Burst::new("role/web@222222222222", "quiet")
        .region("eu-west-1")
        .at(*BASE)
        .calls(60)
        .step(500);
    for e in quiet.state_changes("terminated", 0) {
        stack.invoke(&e).await.unwrap();
    }
    let second = stack.alerts().await;
    assert_eq!(kinds(&second), ["shutdown_wave"]);
    assert_eq!(second[0].body["region"], "eu-west-1");
    assert_eq!(second[0].body["unclaimed_count"], 50);
    assert_eq!(second[0].body["unclaimed"].as_array().unwrap().len(), 50);
    assert_eq!(second[0].body["containment"]["action"], "none");
    stack.save_observed_actions("shutdown-wave").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_its_bound_the_watchdog_pages_a_waves_unclaimed_instances_once() {
    // Records may take a second here, so the wave ten minutes ago is past its bound.
    let stack = Stack::start(Options {
        watchdog: true,
        policy: format!(
            "{}max_delivery_delay = \"1s\"\n",
            tripwire_localstack::POLICY
        ),
        ..Options::default()
    })
    .await;
    let quiet = Burst::new("role/web@222222222222", "closing")
        .region("eu-west-1")
        .at(*BASE)
        .calls(55)
        .step(500);
    for e in quiet.state_changes("terminated", 0) {
        stack.invoke(&e).await.unwrap();
    }
    assert_eq!(kinds(&stack.alerts().await), ["shutdown_wave"]);
    let paged = stack.invoke_watchdog().await.unwrap();
    assert_eq!(paged[0]["paged"], "wave_closed", "{paged}");
    assert_eq!(
        (paged[0]["region"].as_str(), paged[0]["unclaimed"].as_u64()),
        (Some("eu-west-1"), Some(55))
    );
    let closed = stack.alerts().await;
    assert_eq!(kinds(&closed), ["shutdown_wave"]);
    assert_eq!(closed[0].body["stage"], "closed");
    assert_eq!(
        closed[0].subject,
        "TRIPWIRE SHUTDOWN WAVE CLOSED: 55 of 55 instances in 222222222222 eu-west-1 unclaimed"
    );
    assert_eq!(stack.invoke_watchdog().await.unwrap(), json!([]), "once");
    stack.save_observed_actions("wave-closed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_deliveries_do_not_double_count() {
    let stack = Stack::start(Options::default()).await;
    let events = Burst::new("role/deploy/ci-deployer@222222222222", "dup")
        .at(*BASE)
        .calls(9)
        .step(1000)
        .envelopes();
    for e in &events {
        for _ in 0..3 {
            stack.invoke(e).await.unwrap();
        }
    }
    // Nine distinct instances, each delivered three times: below the threshold of ten.
    let last = stack.invoke(&events[8]).await.unwrap();
    assert_eq!(outcome(&last), "duplicate");
    let one_more = Burst::new("role/deploy/ci-deployer@222222222222", "more")
        .at(*BASE + 9000)
        .calls(1)
        .step(1000)
        .envelopes();
    let out = stack.invoke(&one_more[0]).await.unwrap();
    assert_eq!(
        outcome(&out),
        "opened",
        "the tenth distinct instance crosses: {out}"
    );
    assert_eq!(out[0]["window_count"], 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thirty_day_old_replay_pages_with_the_reason_and_contains_no_one() {
    // A burst from thirty days ago, redriven now through the real detector: counted and
    // paged, and nothing is attached to the role.
    let stack = Stack::start(Options::default()).await;
    for e in Burst::new("role/vendor/cleanup-task@222222222222", "old")
        .at(*BASE - 30 * 86_400_000)
        .calls(10)
        .envelopes()
    {
        stack.invoke(&e).await.unwrap();
    }
    let alerts = stack.alerts().await;
    assert_eq!(kinds(&alerts), ["detected"]);
    assert_eq!(alerts[0].body["containment"]["action"], "none");
    let reason = alerts[0].body["containment"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("past its window plus max_delivery_delay"),
        "{reason}"
    );
    assert!(stack.attached(PROD, "role/cleanup-task").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_racing_containers_open_exactly_one_incident() {
    let stack = Stack::start(Options {
        detectors: 20,
        ..Options::default()
    })
    .await;
    let events = Burst::new("role/vendor/cleanup-task@222222222222", "race")
        .at(*BASE)
        .calls(30)
        .step(500)
        .envelopes();
    let stack = std::sync::Arc::new(stack);
    let tasks: Vec<_> = events
        .into_iter()
        .map(|e| {
            let s = stack.clone();
            tokio::spawn(async move { s.invoke(&e).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap().expect("every invocation succeeds"));
    }
    let opened = outcomes.iter().filter(|o| outcome(o) == "opened").count();
    assert_eq!(opened, 1, "{outcomes:?}");
    let alerts = stack.alerts().await;
    let k = kinds(&alerts);
    assert_eq!(k.iter().filter(|k| *k == "detected").count(), 1, "{k:?}");
    assert_eq!(k.iter().filter(|k| *k == "contained").count(), 1, "{k:?}");
    assert_eq!(stack.tags(PROD, "role/cleanup-task").await.len(), 1);
    assert_eq!(
        stack.attached(PROD, "role/cleanup-task").await,
        ["tripwire-brake", "tripwire-contain-scope"]
    );
    // The containers really ran side by side: more than one process served events.
    let served = (0..20)
        .filter(|k| {
            std::fs::read_to_string(stack.logs.join(format!("detector-{k}.log")))
                .unwrap_or_default()
                .contains("event processed")
        })
        .count();
    assert!(served > 1, "only {served} detector process served events");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cross_account_principal_is_contained_in_its_home_account() {
    let stack = Stack::start(Options::default()).await;
    let e = Burst::new("role/ops/fleet-admin@444444444444", "xacct")
        .account(PROD)
        .at(*BASE)
        .calls(1)
        .step(1000)
        .envelopes();
    let out = stack.invoke(&e[0]).await.unwrap();
    assert_eq!(outcome(&out), "opened", "{out}");
    assert_eq!(
        stack.attached(OTHER, "role/fleet-admin").await,
        ["tripwire-brake", "tripwire-contain-scope"],
        "contained in 444444444444 through its containment role"
    );
    let alerts = stack.alerts().await;
    let detected = alerts
        .iter()
        .find(|a| a.attributes["kind"] == "detected")
        .unwrap();
    assert_eq!(detected.body["cross_account"], true);
    assert_eq!(detected.body["containment"]["target_account"], OTHER);
    assert_eq!(
        detected.attributes["account"], PROD,
        "the alert is about where instances died"
    );

    // An IAM user: the brake alone, and nothing written on it.
    deliver_burst(&stack, "user/ops/alice@222222222222", "alice").await;
    assert_eq!(stack.attached(PROD, "user/alice").await, ["tripwire-brake"]);
    assert!(stack.user_policies(PROD, "alice").await.is_empty());
    assert!(stack.tags(PROD, "user/alice").await.is_empty());
    stack.save_observed_actions("cross-account-and-user").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_principals_and_root_get_an_alert_only_with_the_reason() {
    let stack = Stack::start(Options::default()).await;
    for (who, tag, reason) in [
        (
            "role/BreakGlassAdmin@222222222222",
            "bg",
            "protected principal",
        ),
        ("root@222222222222", "root", "root cannot be restricted"),
    ] {
        for e in Burst::new(who, tag)
            .at(*BASE)
            .calls(10)
            .step(1000)
            .envelopes()
        {
            stack.invoke(&e).await.unwrap();
        }
        let alerts = stack.alerts().await;
        assert_eq!(kinds(&alerts), ["detected"], "{who}");
        let body = &alerts[0].body;
        assert_eq!(body["containment"]["action"], "none");
        assert_eq!(body["containment_status"]["state"], "not_attempted");
        assert!(
            body["containment"]["reason"]
                .as_str()
                .unwrap()
                .contains(reason),
            "{body}"
        );
    }
    assert!(stack
        .attached(PROD, "role/BreakGlassAdmin")
        .await
        .is_empty());
    assert!(stack.tags(PROD, "role/BreakGlassAdmin").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_account_brake_holds_a_root_burst_in_its_account_and_release_detaches_it() {
    use tripwire_localstack::CENTRAL;
    let stack = Stack::start(Options {
        policy: format!(
            "account_brake_for = [\"root\"]\n{}",
            tripwire_localstack::POLICY
        ),
        account_brake: true,
        ..Options::default()
    })
    .await;
    let (member, brake) = stack.brake.clone().unwrap();
    assert_eq!(stack.scps(&member).await, ["FullAWSAccess"]);
    // The drill shows, ahead of any incident, that the brake would attach there; it
    // attaches nothing.
    let request = json!({"drill": {"account": member}});
    let drill = || stack.invoke_responder(&request);
    let drilled = drill().await.unwrap();
    assert_eq!(
        (&drilled["ok"], &drilled["brake"]),
        (&json!(true), &json!("attachable")),
        "{drilled}"
    );
    assert_eq!(stack.scps(&member).await, ["FullAWSAccess"]);
    deliver_burst(&stack, &format!("root@{member}"), "root").await;
    let alerts = alerts_until(&stack, "contained").await;
    let mut k = kinds(&alerts);
    k.sort();
    assert_eq!(k, ["contained", "detected"]);
    let page = |kind: &str| {
        &alerts
            .iter()
            .find(|a| a.attributes["kind"] == kind)
            .unwrap()
            .body
    };
    let plan = &page("detected")["containment"];
    assert_eq!(
        (&plan["action"], &plan["scope"], &plan["target_account"]),
        (&json!("account_brake"), &json!("account"), &json!(member))
    );
    assert!(
        page("contained")["containment_status"]["detail"]
            .as_str()
            .unwrap()
            .contains("tripwire-account-brake in place"),
        "{}",
        page("contained")
    );
    // Attached beside what the organization had, to that account alone.
    assert_eq!(
        stack.scps(&member).await,
        ["FullAWSAccess", "tripwire-account-brake"]
    );
    assert_eq!(stack.scps(CENTRAL).await, ["FullAWSAccess"]);

    // The management account's root: no SCP binds it, so nothing is attached and the
    // page says why, in Organizations' own terms (its MasterAccountId).
    deliver_burst(&stack, &format!("root@{CENTRAL}"), "mgmt").await;
    let failed = alerts_until(&stack, "containment_failed").await;
    let failed = failed
        .iter()
        .find(|a| a.attributes["kind"] == "containment_failed")
        .expect("a containment_failed page");
    assert!(
        failed.body["containment_status"]["detail"]
            .as_str()
            .unwrap()
            .contains("management account"),
        "{}",
        failed.body
    );
    assert_eq!(stack.scps(CENTRAL).await, ["FullAWSAccess"]);

    let root = format!("arn:aws:iam::{member}:root");
    let out = release_in(&stack, &member, &root, &[]);
    assert!(
        out.contains(&format!(
            "removed tripwire-account-brake ({brake}, from account {member})"
        )),
        "{out}"
    );
    assert_eq!(stack.scps(&member).await, ["FullAWSAccess"]);
    assert_eq!(kinds(&alerts_until(&stack, "released").await), ["released"]);
    // Released again: nothing attached, nothing to remove.
    assert!(release_in(&stack, &member, &root, &[]).contains("no tripwire policies were attached"));
    // Someone narrows the brake in the management account: the next drill fails with
    // the reason, before an incident would find it.
    aws_sdk_organizations::Client::new(&stack.sdk)
        .update_policy()
        .policy_id(&brake)
        .content(
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Deny",
                "Action": "ec2:RunInstances", "Resource": "*"}]})
            .to_string(),
        )
        .send()
        .await
        .expect("UpdatePolicy");
    let drilled = drill().await.unwrap();
    assert_eq!(
        (&drilled["ok"], &drilled["brake"]),
        (&json!(false), &json!("refused")),
        "{drilled}"
    );
    assert!(
        drilled["reason"]
            .as_str()
            .unwrap()
            .contains("is not the policy's brake"),
        "{drilled}"
    );
    assert_eq!(stack.scps(&member).await, ["FullAWSAccess"]);
    stack.save_observed_actions("account-brake").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_door_through_the_real_functions_is_counted_under_its_type_contained_and_released()
{
    // Three DB instances deleted, each call delivered twice (EventBridge is at least
    // once): the real detector counts them under rds:db, the real responder contains the
    // caller from the incident recorded under that type, and release lifts it. First the
    // caller turns one instance's deletion protection off: the page lists it, read back
    // from the real table.
    let stack = Stack::start(Options::default()).await;
    let caller = tripwire_synth::Caller::parse("role/vendor/cleanup-task@222222222222").unwrap();
    let find = |name: &str| {
        tripwire_engine::catalogue::every()
            .find(|w| w.event_name == name)
            .unwrap()
    };
    let w = find("DeleteDBInstance");
    let mut outcomes = Vec::new();
    let unprotect = tripwire_synth::destroy_record(
        find("ModifyDBInstance"),
        &caller,
        PROD,
        "us-east-1",
        *BASE - 60_000,
        "orders-0",
        "unprotect-0",
        None,
    );
    let e = eventbridge_envelope(&unprotect, "eb-unprotect-0");
    for _ in 0..2 {
        outcomes.push(outcome(&stack.invoke(&e).await.unwrap()).to_owned());
    }
    for k in 0..3 {
        let r = tripwire_synth::destroy_record(
            w,
            &caller,
            PROD,
            "us-east-1",
            *BASE + k * 20_000,
            &format!("orders-{k}"),
            &format!("del-db-{k}"),
            None,
        );
        let e = eventbridge_envelope(&r, &format!("eb-db-{k}"));
        for _ in 0..2 {
            outcomes.push(outcome(&stack.invoke(&e).await.unwrap()).to_owned());
        }
    }
    assert_eq!(
        outcomes,
        [
            "counted",
            "duplicate",
            "counted",
            "duplicate",
            "counted",
            "duplicate",
            "opened",
            "duplicate"
        ]
    );
    let alerts = stack.alerts().await;
    let detected = alerts
        .iter()
        .find(|a| a.attributes["kind"] == "detected")
        .expect("a page");
    assert_eq!(
        detected.subject,
        "TRIPWIRE: 3 DB instances deleted by role/vendor/cleanup-task in 222222222222"
    );
    assert_eq!(detected.body["resource_type"], "rds:db");
    assert_eq!(
        detected.body["resources"],
        json!(["orders-0", "orders-1", "orders-2"])
    );
    let precursors = detected.body["precursors"].as_array().unwrap();
    assert_eq!(precursors.len(), 1, "{precursors:?}");
    assert_eq!(precursors[0]["event_name"], "ModifyDBInstance");
    assert_eq!(precursors[0]["resources"], json!(["orders-0"]));
    assert_eq!(
        kinds(&alerts).iter().filter(|k| *k == "detected").count(),
        1,
        "one precursor pages nobody: {:?}",
        kinds(&alerts)
    );
    assert!(
        kinds(&alerts).contains(&"contained".to_owned()),
        "{:?}",
        kinds(&alerts)
    );
    assert_eq!(
        stack.attached(PROD, "role/cleanup-task").await,
        ["tripwire-brake", "tripwire-contain-scope"]
    );
    let stdout = release(
        &stack,
        "arn:aws:iam::222222222222:role/vendor/cleanup-task",
        &[],
    );
    assert!(stdout.contains("closed"), "{stdout}");
    assert!(stack.attached(PROD, "role/cleanup-task").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_removes_the_policies_and_closes_the_incident() {
    let stack = Stack::start(Options::default()).await;
    let events = Burst::new("role/vendor/cleanup-task@222222222222", "rel")
        .at(*BASE)
        .calls(10)
        .step(1000)
        .envelopes();
    for e in &events {
        stack.invoke(e).await.unwrap();
    }
    assert_eq!(stack.tags(PROD, "role/cleanup-task").await.len(), 1);
    assert_eq!(stack.attached(PROD, "role/cleanup-task").await.len(), 2);
    // From the page: its incident ID is all the operator types; the table knows the
    // account and the principal. Through the release role (tripwire-release, trusting
    // the operator), not the containment role, which may not detach or delete anything.
    let id = stack.alerts().await[0].body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let by_id = |id: &str| {
        stack
            .cli()
            .args(["release", "--incident", id])
            .output()
            .unwrap()
    };
    // Where it stands, from the same ID: open, contained, and the page as of now.
    let show = stack
        .cli()
        .args(["incident", "show", &id])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&show.stdout).into_owned();
    assert!(
        show.status.success(),
        "{}",
        String::from_utf8_lossy(&show.stderr)
    );
    assert!(shown.contains(&format!("incident   {id}: open")), "{shown}");
    assert!(shown.contains("containment contained"), "{shown}");
    assert!(
        shown.contains(&format!("tripwire release --incident {id}")),
        "{shown}"
    );
    assert!(shown.contains("Subject: TRIPWIRE"), "{shown}");
    let unknown = by_id("no-such-incident");
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no incident no-such-incident"));
    assert_eq!(stack.attached(PROD, "role/cleanup-task").await.len(), 2);
    let out = by_id(&id);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("arn:aws:iam::222222222222:role/vendor/cleanup-task: removed"),
        "{stdout}"
    );
    assert!(
        stdout.contains("tripwire-brake, tripwire-contain-scope, tag:tripwire-contain-session")
            && stdout.contains("closed"),
        "{stdout}"
    );
    assert!(stack.tags(PROD, "role/cleanup-task").await.is_empty());
    assert!(stack.attached(PROD, "role/cleanup-task").await.is_empty());
    // Closed: the next burst opens a new incident instead of joining the old one.
    let again = Burst::new("role/vendor/cleanup-task@222222222222", "again")
        .at(*BASE + 20_000)
        .calls(10)
        .step(1000)
        .envelopes();
    let mut opened = 0;
    for e in &again {
        opened += usize::from(outcome(&stack.invoke(e).await.unwrap()) == "opened");
    }
    assert_eq!(opened, 1);
    // The old ID now names a closed incident: refused, pointing at the current one.
    let old = by_id(&id);
    assert!(!old.status.success());
    assert!(
        String::from_utf8_lossy(&old.stderr).contains("was closed"),
        "{}",
        String::from_utf8_lossy(&old.stderr)
    );
    stack.save_observed_actions("release").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_refusals_and_forged_plans_end_in_a_clear_containment_failed_alert() {
    let stack = Stack::start(Options::default()).await;
    // A role that does not exist: IAM answers NoSuchEntity.
    deliver_burst(&stack, "role/ghost@222222222222", "ghost").await;
    let alerts = stack.alerts().await;
    let failed = alerts
        .iter()
        .find(|a| a.attributes["kind"] == "containment_failed")
        .expect("a failure alert");
    assert!(
        failed.subject.starts_with("TRIPWIRE CONTAINMENT FAILED"),
        "{}",
        failed.subject
    );
    assert!(
        failed.body["containment_status"]["detail"]
            .as_str()
            .unwrap()
            .contains("NoSuchEntity"),
        "{}",
        failed.body
    );

    // A burst by the tripwire's own containment role: the detector pages with the
    // reason it is never contained, on the alarm channel too (its credentials are being
    // misused), and asks the responder for nothing.
    let _ = stack.alarms().await;
    deliver_burst(&stack, &format!("role/{CONTAINMENT_ROLE}@{PROD}"), "own").await;
    let alarms = stack.alarms().await;
    assert_eq!(
        kinds(&alarms),
        ["detected"],
        "the page, on the alarm channel"
    );
    assert!(alarms[0].body["principal_arn"]
        .as_str()
        .is_some_and(|p| p.ends_with(CONTAINMENT_ROLE)));
    let own = stack.alerts().await;
    let detected = own
        .iter()
        .find(|a| {
            a.attributes["kind"] == "detected"
                && a.body["principal_arn"]
                    .as_str()
                    .is_some_and(|p| p.ends_with(CONTAINMENT_ROLE))
        })
        .expect("a page");
    assert_eq!(detected.body["containment"]["action"], "none");
    assert!(
        detected.body["containment"]["reason"]
            .as_str()
            .unwrap()
            .contains("the tripwire's own member roles"),
        "{}",
        detected.body
    );
    assert!(
        own.iter()
            .all(|a| a.attributes["kind"] != "containment_failed"),
        "nothing was asked for the member role: {:?}",
        kinds(&own)
    );
    let own_role = format!("role/{CONTAINMENT_ROLE}");
    assert!(stack.tags(PROD, &own_role).await.is_empty());
    assert!(stack.attached(PROD, &own_role).await.is_empty());
    // A forged request naming the containment role under a real incident's ID: there
    // is no such incident, so nothing is written and there is nothing to page about.
    let forged = serde_json::to_value(ContainmentRequest {
        incident_id: alerts[0].body["id"].as_str().unwrap().into(),
        principal_arn: format!("arn:aws:iam::{OTHER}:role/fleet-admin"),
        account: OTHER.into(),
        resource_type: "ec2:instance".into(),
    })
    .unwrap();
    let out = stack.invoke_responder(&forged).await.unwrap();
    assert_eq!(out["outcome"], "refused", "{out}");
    assert!(stack.attached(OTHER, "role/fleet-admin").await.is_empty());
    assert!(stack.alerts().await.is_empty());
    stack.save_observed_actions("refusals").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_containment_request_contains_again_but_pages_once() {
    let stack = Stack::start(Options::default()).await;
    deliver_burst(&stack, "role/vendor/cleanup-task@222222222222", "again").await;
    let alerts = stack.alerts().await;
    let mut first = kinds(&alerts);
    first.sort();
    assert_eq!(first, ["contained", "detected"]);
    // The same request again, as a second delivery of the asynchronous invoke would be.
    let detected = alerts
        .iter()
        .find(|a| a.attributes["kind"] == "detected")
        .unwrap();
    let again = serde_json::to_value(ContainmentRequest {
        incident_id: detected.body["id"].as_str().unwrap().into(),
        principal_arn: detected.body["principal_arn"].as_str().unwrap().into(),
        account: PROD.into(),
        resource_type: "ec2:instance".into(),
    })
    .unwrap();
    let out = stack.invoke_responder(&again).await.unwrap();
    assert_eq!(out["outcome"], "contained", "{out}");
    assert_eq!(stack.tags(PROD, "role/cleanup-task").await.len(), 1);
    assert_eq!(stack.attached(PROD, "role/cleanup-task").await.len(), 2);
    assert_eq!(kinds(&stack.alerts().await), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_release_racing_the_responders_retries_ends_released() {
    let stack = Stack::start(Options::default()).await;
    deliver_burst(&stack, "role/vendor/cleanup-task@222222222222", "racing").await;
    let alerts = stack.alerts().await;
    let detected = alerts
        .iter()
        .find(|a| a.attributes["kind"] == "detected")
        .expect("detected");
    let request = serde_json::to_value(ContainmentRequest {
        incident_id: detected.body["id"].as_str().unwrap().into(),
        principal_arn: detected.body["principal_arn"].as_str().unwrap().into(),
        account: PROD.into(),
        resource_type: "ec2:instance".into(),
    })
    .unwrap();
    // An operator releases while redeliveries of the asynchronous invoke keep arriving.
    // Release marks the incident before it touches IAM: a retry before the mark puts
    // back what release is about to lift; one after it is refused.
    let mut child = stack
        .cli()
        .args(["release", "--account", PROD, "--principal"])
        .arg(detected.body["principal_arn"].as_str().unwrap())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut outcomes = Vec::new();
    while child.try_wait().unwrap().is_none() {
        let out = stack.invoke_responder(&request).await.unwrap();
        outcomes.push(out["outcome"].as_str().unwrap_or_default().to_owned());
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("closed"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!outcomes.is_empty(), "no retry raced the release");
    // Released, whatever the interleaving: nothing of the tripwire is left on the role,
    // and every later retry is refused.
    assert!(stack.attached(PROD, "role/cleanup-task").await.is_empty());
    assert!(stack.tags(PROD, "role/cleanup-task").await.is_empty());
    let after = stack.invoke_responder(&request).await.unwrap();
    assert_eq!(after["outcome"], "refused", "{after} after {outcomes:?}");
    assert!(stack.attached(PROD, "role/cleanup-task").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn irrelevant_and_malformed_events_are_acknowledged() {
    let stack = Stack::start(Options::default()).await;
    let cases = [
        (
            json!({"detail-type": "EC2 Instance State-change Notification", "source": "aws.ec2", "detail": {"state": "terminated"}}),
            "skipped",
        ),
        (json!({"hello": "world"}), "skipped"),
        (json!([1, 2, 3]), "skipped"),
        // A bare record has no envelope to check: the Lambda path takes envelopes only.
        (
            Burst::new("role/vendor/cleanup-task@222222222222", "bare").records()[0].clone(),
            "skipped",
        ),
    ];
    for (event, want) in cases {
        let out = stack
            .invoke(&event)
            .await
            .unwrap_or_else(|e| panic!("{event}: {e:?}"));
        assert_eq!(outcome(&out), want, "{event}: {out}");
    }
    assert!(stack.alerts().await.is_empty());
}

#[test]
fn a_bad_configuration_fails_the_cold_start_naming_the_variable() {
    let cases = [
        (
            "TRIPWIRE_POLICY",
            "threshold = 0",
            "TRIPWIRE_POLICY: policy key `threshold`",
        ),
        (
            "TRIPWIRE_TOPIC_ARN",
            "alerts",
            "TRIPWIRE_TOPIC_ARN=`alerts` is not an SNS topic ARN",
        ),
    ];
    for (var, value, want) in cases {
        let mut cmd = std::process::Command::new(tripwire_localstack::binary("detector"));
        cmd.env("TRIPWIRE_POLICY", "threshold = 10")
            .env("TRIPWIRE_TABLE", "tripwire")
            .env(
                "TRIPWIRE_TOPIC_ARN",
                "arn:aws:sns:us-east-1:123456789012:tripwire",
            )
            .env("TRIPWIRE_RESPONDER_FUNCTION", "responder")
            .env(var, value)
            // Nothing listens here: the process must fail before it ever polls.
            .env("AWS_LAMBDA_RUNTIME_API", "http://127.0.0.1:9/.rt");
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{var}: started anyway");
        assert!(stderr.contains(want), "{var}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_real_deaths_count_and_unconfirmed_ones_are_reported() {
    let stack = Stack::start(Options::default()).await;
    // A reaper re-terminating what Auto Scaling already killed: never counted.
    for e in Burst::new("role/ops/reaper@222222222222", "reaper")
        .at(*BASE)
        .calls(12)
        .already_terminated(1)
        .envelopes()
    {
        let out = stack.invoke(&e).await.unwrap();
        assert_eq!(outcome(&out), "not_counted", "{out}");
        assert_eq!(out[0]["reason"], "already_terminated");
    }
    // Termination protection on one of six: EC2 refuses the call and terminates the
    // rest; the window item and the incident keep them apart as unconfirmed.
    let refused = Burst::new("role/vendor/cleanup-task@222222222222", "prot")
        .at(*BASE)
        .ids_per_call(6)
        .error("Client.OperationNotPermitted")
        .envelopes();
    assert_eq!(
        outcome(&stack.invoke(&refused[0]).await.unwrap()),
        "counted"
    );
    let more = Burst::new("role/vendor/cleanup-task@222222222222", "prot-more")
        .at(*BASE + 1000)
        .calls(6)
        .envelopes();
    let mut last = Value::Null;
    for e in &more {
        last = stack.invoke(e).await.unwrap();
    }
    assert_eq!(outcome(&last), "joined", "{last}");
    let detected: Vec<Received> = stack
        .alerts()
        .await
        .into_iter()
        .filter(|a| a.attributes["kind"] == "detected")
        .collect();
    assert_eq!(detected.len(), 1);
    assert_eq!(detected[0].body["instances"], 10);
    assert_eq!(detected[0].body["instances_unconfirmed"], 6);
}

/// A policy with the cross-account threshold, a path-based protected glob, and every
/// alert-only lane on.
const CONTEXT_POLICY: &str = r#"threshold = 10
window = "5m"
cross_account_threshold = 1
allowed_accounts = ["111111111111"]
protected_principals = ["arn:aws:iam::*:role/BreakGlass*", "arn:aws:iam::*:role/breakglass/*"]
containment = "revoke"
service_threshold = 20
attempt_threshold = 5
account_threshold = 12
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provenance_joins_across_invocations_and_the_responder_confirms_paths_with_iam() {
    let stack = Stack::start(Options {
        policy: CONTEXT_POLICY.into(),
        ..Options::default()
    })
    .await;
    // The production account's record of a development tool assuming a production role.
    let caller = tripwire_synth::Caller::parse("account/AROADEVTOOL:cleanup@111111111111").unwrap();
    let assume = tripwire_synth::assume_role_record(&tripwire_synth::Assume {
        caller: &caller,
        caller_key: "",
        role_arn: "arn:aws:iam::222222222222:role/ops/admin",
        session: "cleanup",
        access_key: "PRODADMIN0000001",
        time: *BASE - 60_000,
        event_id: "assume-1",
        source_identity: Some("vendor-tool"),
    });
    let out = stack
        .invoke(&eventbridge_envelope(&assume, "eb-assume-1"))
        .await
        .unwrap();
    assert_eq!(
        (outcome(&out), &out[0]["recorded"]),
        ("provenance", &json!(true)),
        "{out}"
    );
    // A later invocation joins through DynamoDB: one instance is a burst from elsewhere.
    let calls = Burst::new("role/ops/admin@222222222222", "chain")
        .at(*BASE)
        .session("cleanup")
        .access_key("PRODADMIN0000001")
        .envelopes();
    let out = stack.invoke(&calls[0]).await.unwrap();
    assert_eq!(outcome(&out), "opened", "{out}");
    let alerts = stack.alerts().await;
    let detected = alerts
        .iter()
        .find(|a| a.attributes["kind"] == "detected")
        .expect("detected");
    assert_eq!(detected.body["origin"]["account"], "111111111111");
    assert_eq!(
        detected.body["origin"]["principal_id"],
        "AROADEVTOOL:cleanup"
    );
    assert_eq!(detected.body["origin"]["source_identity"], "vendor-tool");
    assert_eq!(detected.body["cross_account"], true);
    assert_eq!(detected.body["incident_kind"], "burst");
    assert_eq!(detected.body["sessions"][0]["name"], "cleanup");
    assert_eq!(
        stack.attached(PROD, "role/admin").await,
        ["tripwire-brake", "tripwire-contain-scope"],
        "contained"
    );
    assert!(stack
        .tags(PROD, "role/admin")
        .await
        .contains_key("tripwire-contain-session"));

    // Records without a session issuer name `role/oncall`; IAM says it is
    // `role/breakglass/oncall`, which is protected: nothing is written.
    for e in Burst::new("session/oncall@222222222222", "oncall")
        .at(*BASE)
        .calls(10)
        .envelopes()
    {
        stack.invoke(&e).await.unwrap();
    }
    let failed: Vec<Received> = stack
        .alerts()
        .await
        .into_iter()
        .filter(|a| a.attributes["kind"] == "containment_failed")
        .collect();
    assert_eq!(failed.len(), 1, "{}", kinds(&failed).join(","));
    let detail = failed[0].body["containment_status"]["detail"]
        .as_str()
        .unwrap_or_default();
    assert!(
        detail.contains("role/breakglass/oncall is a protected principal"),
        "{detail}"
    );
    assert!(stack.attached(PROD, "role/oncall").await.is_empty());
    assert!(stack.tags(PROD, "role/oncall").await.is_empty());
    stack.save_observed_actions("provenance-and-paths").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alert_only_lanes_and_initiators_page_as_the_backtest_decides() {
    let stack = Stack::start(Options {
        policy: CONTEXT_POLICY.into(),
        ..Options::default()
    })
    .await;
    // Three roles at five instances each (no principal burst, an account burst); dry-run
    // probing (an attempt burst); Auto Scaling's service-linked role scaling in a group
    // someone deleted (a service burst with its initiator).
    let roles: Vec<Burst> = [
        ("role/a@222222222222", "a", *BASE),
        ("role/b@222222222222", "b", *BASE + 30_000),
        ("role/c@222222222222", "c", *BASE + 60_000),
    ]
    .into_iter()
    .map(|(who, tag, at)| Burst::new(who, tag).at(at).calls(5).step(5000))
    .collect();
    let recon = Burst::new("role/recon@222222222222", "recon")
        .at(*BASE + 100_000)
        .calls(5)
        .error("Client.DryRunOperation");
    // A group deleted without force: it decided no termination (a forced deletion's
    // are credited to the deleter, as the runaway test shows), so it is named.
    let alice = tripwire_synth::Caller::parse("user/ops/alice@222222222222").unwrap();
    let mut init = tripwire_synth::initiator_record(
        &alice,
        PROD,
        *BASE + 110_000,
        "autoscaling.amazonaws.com",
        "DeleteAutoScalingGroup",
        "init-1",
    );
    init["requestParameters"] = json!({ "autoScalingGroupName": "web" });
    let asg = Burst::new(
        "role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling@222222222222",
        "asg",
    )
    .at(*BASE + 120_000)
    .calls(2)
    .ids_per_call(10)
    .invoked_by("autoscaling.amazonaws.com");

    let mut lane_outcomes = Vec::new();
    for e in roles.iter().flat_map(Burst::envelopes) {
        let out = stack.invoke(&e).await.unwrap();
        assert_eq!(outcome(&out), "counted", "{out}");
        lane_outcomes.push(
            out[1]["result"]["outcome"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    assert_eq!(lane_outcomes.iter().filter(|o| *o == "opened").count(), 1);
    for e in recon.envelopes() {
        stack.invoke(&e).await.unwrap();
    }
    let out = stack
        .invoke(&eventbridge_envelope(&init, "eb-init-1"))
        .await
        .unwrap();
    assert_eq!(outcome(&out), "initiator", "{out}");
    for e in asg.envelopes() {
        let out = stack.invoke(&e).await.unwrap();
        assert_eq!(out[0]["reason"], "service_linked_role", "{out}");
    }
    let alerts = stack.alerts().await;
    let by_kind: Vec<(&str, &Value)> = alerts
        .iter()
        .map(|a| {
            (
                a.body["incident_kind"].as_str().unwrap_or_default(),
                &a.body,
            )
        })
        .collect();
    let kinds_seen: Vec<&str> = by_kind.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        kinds_seen,
        ["account_burst", "attempt_burst", "service_burst"]
    );
    let (_, account) = by_kind[0];
    assert!(account["principal_arn"].is_null());
    assert_eq!(account["principals"].as_array().map(Vec::len), Some(3));
    let (_, attempts) = by_kind[1];
    assert_eq!(
        (
            attempts["instances"].as_u64(),
            attempts["attempts"].as_u64()
        ),
        (Some(0), Some(5))
    );
    assert_eq!(attempts["error_codes"], json!(["Client.DryRunOperation"]));
    let (_, service) = by_kind[2];
    assert_eq!(
        service["initiator"]["principal_arn"],
        "arn:aws:iam::222222222222:user/ops/alice"
    );
    assert_eq!(service["initiator"]["event_name"], "DeleteAutoScalingGroup");
    for (_, body) in &by_kind {
        assert_eq!(body["containment"]["action"], "none", "alert only");
    }
    // The backtest decides the same from the same records.
    let records: Vec<String> = roles
        .iter()
        .chain([&recon])
        .flat_map(Burst::records)
        .chain([init])
        .chain(asg.records())
        .map(|r| r.to_string())
        .collect();
    let mut events = tripwire_engine::Events::default();
    tripwire_engine::scan_events(&records.join("\n"), &mut Default::default(), &mut events)
        .unwrap();
    let policy = tripwire_engine::Policy::from_toml(CONTEXT_POLICY).unwrap();
    let replayed = tripwire_engine::replay::replay_events(&policy, events);
    let backtest: Vec<(&str, String, u32)> = replayed
        .incidents
        .iter()
        .map(|i| (i.kind().kind(), i.id.clone(), i.trigger_count))
        .collect();
    let detector: Vec<(&str, String, u32)> = by_kind
        .iter()
        .map(|(k, b)| {
            (
                *k,
                b["id"].as_str().unwrap_or_default().to_owned(),
                b["trigger_count"].as_u64().unwrap_or_default() as u32,
            )
        })
        .collect();
    assert_eq!(detector, backtest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_scope_is_contained_by_the_tags_and_policies_iam_holds() {
    let stack = Stack::start(Options::default()).await;
    let bursts = [
        // The seed incident as it happens on EC2: the vendor's VM shares the web
        // fleet's instance profile.
        Burst::new("role/web-fleet@222222222222", "fleet")
            .session("i-0a1b2c3d4e5f60718")
            .instance_profile(),
        // A SAML admin role the operations team shares: one person's session.
        Burst::new("role/OpsAdmin@222222222222", "saml").session("jane@example.com"),
        // A node autoscaler: a new session per credential refresh.
        Burst::new("role/KarpenterController@222222222222", "karpenter")
            .sessions(&["1515535740000000001", "1515535740000000002"]),
        // A federation broker: tokens for many names, issued by one IAM user.
        Burst::new(
            "federated/session-7+user/brokers/token-broker@222222222222",
            "broker",
        ),
    ];
    for b in bursts {
        for e in b.at(*BASE).calls(10).step(1000).envelopes() {
            stack.invoke(&e).await.unwrap();
        }
    }
    // Each culprit is named by one tag the scope policy reads; the role and the user,
    // with no single culprit, are braked and carry no tag. Nothing is written inline.
    let tag = |k: &str, v: &str| std::collections::BTreeMap::from([(k.to_owned(), v.to_owned())]);
    let want = [
        (
            "role/web-fleet",
            tag("tripwire-contain-instance", "i-0a1b2c3d4e5f60718"),
        ),
        (
            "role/OpsAdmin",
            tag(
                "tripwire-contain-session",
                "AROA222222222222:jane@example.com",
            ),
        ),
        ("role/KarpenterController", Default::default()),
        ("user/token-broker", Default::default()),
    ];
    // What IAM holds, for the independent evaluator in tests/infra, which checks that
    // the managed documents, read with these tags, deny the culprit and spare the rest.
    let mut stored = serde_json::Map::new();
    for (entity, tags) in want {
        let attached = stack.attached(PROD, entity).await;
        let expect: &[&str] = if tags.is_empty() {
            &["tripwire-brake"]
        } else {
            &["tripwire-brake", "tripwire-contain-scope"]
        };
        assert_eq!(attached, expect, "{entity}");
        assert_eq!(stack.tags(PROD, entity).await, tags, "{entity}");
        let (kind, name) = entity.split_once('/').unwrap();
        let inline = if kind == "role" {
            stack.role_policies(PROD, name).await
        } else {
            stack.user_policies(PROD, name).await
        };
        assert!(inline.is_empty(), "{entity}: {inline:?}");
        let path = if name == "token-broker" {
            "/brokers/"
        } else {
            "/"
        };
        stored.insert(
            name.into(),
            json!({"arn": format!("arn:aws:iam::{PROD}:{kind}{path}{name}"), "attached": attached, "tags": tags}),
        );
    }
    let dir = tripwire_localstack::target_dir().join("iam-documents");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("scopes.json"),
        serde_json::to_string_pretty(&stored).unwrap(),
    )
    .unwrap();
    let alerts = stack.alerts().await;
    let scopes: std::collections::BTreeMap<String, String> = alerts
        .iter()
        .filter(|a| a.attributes["kind"] == "contained")
        .map(|a| {
            (
                a.body["principal_arn"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_owned(),
                a.body["containment_status"]["detail"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect();
    assert_eq!(scopes.len(), 4, "{scopes:?}");
    for (who, phrase) in [
        ("web-fleet", "revoke, scope instance"),
        ("OpsAdmin", "revoke, scope session"),
        ("KarpenterController", "brake: no single culprit"),
        ("token-broker", "brake: no single culprit"),
    ] {
        assert!(scopes[who].starts_with(phrase), "{who}: {}", scopes[who]);
    }
    stack.save_observed_actions("scopes").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_principal_that_filled_its_inline_policy_quota_is_contained_in_full() {
    let stack = Stack::start(Options::default()).await;
    // The role's own inline policies fill IAM's 10,240 characters for a role: once a
    // way to pre-empt containment, now nothing containment needs.
    let padding = "x".repeat(10_100);
    let customer = json!({"Version": "2012-10-17", "Statement": [{"Sid": "Pad", "Effect": "Allow",
        "Action": "s3:GetObject", "Resource": format!("arn:aws:s3:::{padding}/*")}]});
    stack
        .iam_in(PROD)
        .put_role_policy()
        .role_name("crowded")
        .policy_name("customer")
        .policy_document(customer.to_string())
        .send()
        .await
        .expect("PutRolePolicy");
    deliver_burst(&stack, "role/crowded@222222222222", "crowded").await;
    let mut k = kinds(&stack.alerts().await);
    k.sort();
    assert_eq!(k, ["contained", "detected"]);
    assert_eq!(
        stack.attached(PROD, "role/crowded").await,
        ["tripwire-brake", "tripwire-contain-scope"]
    );
    assert!(stack
        .tags(PROD, "role/crowded")
        .await
        .contains_key("tripwire-contain-session"));
    assert_eq!(stack.role_policy_names(PROD, "crowded").await, ["customer"]);
    stack.save_observed_actions("quota").await;
}

/// The status of each of `user`'s access keys in production, by key ID.
async fn key_statuses(stack: &Stack, user: &str) -> Vec<(String, String)> {
    let out = stack
        .iam_in(PROD)
        .list_access_keys()
        .user_name(user)
        .send()
        .await
        .expect("ListAccessKeys");
    out.access_key_metadata()
        .iter()
        .map(|k| {
            (
                k.access_key_id().unwrap_or_default().to_owned(),
                k.status()
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deactivate_keys_deactivates_the_users_burst_key_and_release_reactivates_it_on_request() {
    let stack = Stack::start(Options {
        // Top-level keys go before the policy's tables.
        policy: format!("deactivate_keys = true\n{}", tripwire_localstack::POLICY),
        ..Options::default()
    })
    .await;
    let iam = stack.iam_in(PROD);
    // The user's own inline policy, which containment sizes and release leaves alone.
    iam.put_user_policy()
        .user_name("alice")
        .policy_name("customer")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:*","Resource":"*"}]}"#)
        .send()
        .await
        .expect("PutUserPolicy");
    let mut keys = Vec::new();
    for _ in 0..2 {
        let k = iam
            .create_access_key()
            .user_name("alice")
            .send()
            .await
            .expect("CreateAccessKey");
        keys.push(k.access_key().unwrap().access_key_id().to_owned());
    }
    let (used, unused) = (&keys[0], &keys[1]);
    let tail = used.strip_prefix("AKIA").expect("a long-term key");
    for e in Burst::new("user/ops/alice@222222222222", "alice")
        .at(*BASE)
        .calls(10)
        .step(1000)
        .access_key(tail)
        .envelopes()
    {
        stack.invoke(&e).await.unwrap();
    }
    let status = |want_used: &str| {
        vec![
            (used.clone(), want_used.to_owned()),
            (unused.clone(), "Active".to_owned()),
        ]
    };
    let mut got = key_statuses(&stack, "alice").await;
    got.sort_by_key(|(k, _)| keys.iter().position(|x| x == k));
    // Only the key the burst used; the user's other key was never seen, so it stays.
    assert_eq!(got, status("Inactive"));
    let names = |p: std::collections::BTreeMap<String, Value>| p.into_keys().collect::<Vec<_>>();
    assert_eq!(stack.attached(PROD, "user/alice").await, ["tripwire-brake"]);
    assert_eq!(
        names(stack.user_policies(PROD, "alice").await),
        ["customer"]
    );
    let contained = stack
        .alerts()
        .await
        .into_iter()
        .find(|a| a.attributes["kind"] == "contained")
        .expect("a contained alert");
    assert!(
        contained.body.to_string().contains(used.as_str()),
        "the alert names the deactivated key: {}",
        contained.body
    );
    let stdout = release(
        &stack,
        "arn:aws:iam::222222222222:user/ops/alice",
        &["--reactivate-keys"],
    );
    assert!(
        stdout.contains(&format!("reactivated access keys {used}")),
        "{stdout}"
    );
    let mut got = key_statuses(&stack, "alice").await;
    got.sort_by_key(|(k, _)| keys.iter().position(|x| x == k));
    assert_eq!(got, status("Active"));
    assert_eq!(
        names(stack.user_policies(PROD, "alice").await),
        ["customer"]
    );
    assert!(stack.attached(PROD, "user/alice").await.is_empty());
    stack.save_observed_actions("deactivate-keys").await;
}

/// What every runaway under enforced IAM must show, whatever its door: an incident
/// opened; causality, not timing: no call that began after the brake was visible
/// succeeded; every refusal is IAM's, and from the first refusal on every call is
/// refused. Returns the instances the successful calls destroyed (at least the threshold).
fn refused_once_braked(run: &runaway::Run) -> usize {
    let ok: Vec<_> = run.calls.iter().filter(|c| c.ok).collect();
    let refused: Vec<_> = run.calls.iter().filter(|c| !c.ok).collect();
    assert!(run.opened.is_some(), "the burst opened an incident");
    let died: usize = ok.iter().map(|c| c.ids.len()).sum();
    assert!(died >= 10, "the threshold is 10: {died}");
    let (_, brake_ms) = run.brake_seen.expect("the brake was attached");
    assert!(
        ok.iter().all(|c| c.at_ms <= brake_ms),
        "a call after the brake succeeded"
    );
    assert!(!refused.is_empty(), "the task outlived containment");
    assert!(
        refused
            .iter()
            .all(|c| c.error.as_deref() == Some("AccessDenied")),
        "{:?}",
        refused.iter().map(|c| &c.error).collect::<Vec<_>>()
    );
    let first_refused = run.calls.iter().position(|c| !c.ok).unwrap();
    assert!(run.calls[first_refused..].iter().all(|c| !c.ok));
    died
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_runaway_under_enforced_iam_is_refused_once_the_brake_lands() {
    // The functions and the member roles hold only the actions the other tests record
    // for them, so this also shows those lists suffice for a whole containment.
    let stack = std::sync::Arc::new(
        Stack::start(Options {
            enforce_iam: true,
            ..Options::default()
        })
        .await,
    );
    let run = runaway::run(stack.clone(), Door::Instances { fleet: 80 }, 100, 0).await;
    assert_eq!(run.calls.len(), 80, "one call per running instance");
    // What EC2 says died is exactly what the task's successful calls terminated.
    assert_eq!(
        run.states.get("terminated").copied(),
        Some(refused_once_braked(&run) as i64)
    );
    let kinds = kinds(&stack.alerts().await);
    assert!(kinds.contains(&"contained".to_owned()), "{kinds:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runaway_that_force_deletes_groups_is_contained_and_its_next_deletion_refused() {
    // The same task through the other door: it force-deletes the Auto Scaling groups on
    // moto, whose service-linked role terminates their instances. Those terminations
    // are credited to the task's role, which is contained like the seed's.
    let stack = std::sync::Arc::new(
        Stack::start(Options {
            enforce_iam: true,
            ..Options::default()
        })
        .await,
    );
    let run = runaway::run(
        stack.clone(),
        Door::Groups {
            groups: 12,
            size: 4,
        },
        150,
        0,
    )
    .await;
    assert_eq!(run.calls.len(), 12, "one call per group");
    assert_eq!(run.fleet, 48);
    // What EC2 says died is exactly the deleted groups' instances.
    assert_eq!(
        run.states.get("terminated").copied(),
        Some(refused_once_braked(&run) as i64)
    );
    // One page, the task's, through Auto Scaling: never a service burst beside it.
    let alerts = stack.alerts().await;
    let detected: Vec<_> = alerts
        .iter()
        .filter(|a| a.attributes["kind"] == "detected")
        .collect();
    assert_eq!(detected.len(), 1, "{:?}", kinds(&alerts));
    let d = &detected[0].body;
    assert_eq!(d["incident_kind"], "burst");
    assert_eq!(d["principal_arn"], runaway::ROLE);
    assert_eq!(d["via"]["service"], "autoscaling.amazonaws.com");
    assert_eq!(d["initiator"]["event_name"], "DeleteAutoScalingGroup");
    assert!(kinds(&alerts).contains(&"contained".to_owned()));
    assert_eq!(
        stack.attached(PROD, "role/cleanup-task").await,
        ["tripwire-brake", "tripwire-contain-scope"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_trail_pages_tamper_once_through_the_real_detector() {
    let stack = Stack::start(Options::default()).await;
    let stop = tripwire_synth::api_envelope(
        "cloudtrail.amazonaws.com",
        "StopLogging",
        "role/Admin@222222222222",
        &json!({"name": "org-trail"}),
        "stop-e2e",
        *BASE,
    );
    assert_eq!(outcome(&stack.invoke(&stop).await.unwrap()), "tamper");
    // A redelivery (EventBridge is at least once) pages no one again.
    assert_eq!(outcome(&stack.invoke(&stop).await.unwrap()), "duplicate");
    // On the second channel, which does not depend on the tripwire's key.
    assert!(stack.alerts().await.is_empty());
    let alerts = stack.alarms().await;
    assert_eq!(kinds(&alerts), ["tamper"]);
    assert_eq!(alerts[0].attributes["severity"], "high");
    assert_eq!(alerts[0].body["target"], "org-trail");
    assert_eq!(
        alerts[0].body["principal_arn"],
        "arn:aws:iam::222222222222:role/Admin"
    );
    // The silencers that leave every part intact: the canary's schedule deleted, the
    // detector's reserved concurrency set to 0. Each pages once, with what it touched.
    for (source, name, params, target) in [
        (
            "scheduler.amazonaws.com",
            "DeleteSchedule",
            json!({"name": "tripwire-canary", "clientToken": "c-1"}),
            "tripwire-canary",
        ),
        (
            "lambda.amazonaws.com",
            "PutFunctionConcurrency20171031",
            json!({"functionName": "tripwire-detector", "reservedConcurrentExecutions": 0}),
            "function/tripwire-detector",
        ),
    ] {
        let e = tripwire_synth::api_envelope(
            source,
            name,
            "role/Admin@222222222222",
            &params,
            &format!("silence-{name}"),
            *BASE + 1_000,
        );
        assert_eq!(
            outcome(&stack.invoke(&e).await.unwrap()),
            "tamper",
            "{name}"
        );
        let alarms = stack.alarms().await;
        assert_eq!(kinds(&alarms), ["tamper"], "{name}");
        assert_eq!(alarms[0].body["target"], target);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tripwire_status_shows_where_the_canary_is_heard_and_where_it_is_not() {
    let stack = Stack::start(Options::default()).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let minute = 60_000;
    // (account, region, minutes ago): heard just now, 20 minutes ago, 40 minutes ago.
    let beats = [
        (PROD, "us-east-1", 12),
        (PROD, "us-east-1", 2),
        (PROD, "eu-west-1", 20),
        (OTHER, "us-east-1", 40),
    ];
    for (k, (account, region, ago)) in beats.iter().enumerate() {
        let id = format!("canary-{k}");
        let rec = tripwire_synth::canary_record(account, region, now - ago * minute, &id);
        let out = stack
            .invoke(&eventbridge_envelope(&rec, &id))
            .await
            .unwrap();
        assert_eq!(outcome(&out), "heartbeat", "{out}");
        assert!(out[0]["latency_ms"].as_i64().unwrap() >= ago * minute);
    }
    // A burst in production's us-east-1 a minute ago: an open incident there.
    for e in Burst::new("role/vendor/cleanup-task@222222222222", "st")
        .at(now - minute)
        .calls(10)
        .step(1000)
        .envelopes()
    {
        stack.invoke(&e).await.unwrap();
    }
    let out = stack
        .cli()
        .args(["status", "--json", "--expect", "444444444444:eu-west-1"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<(String, String, String, u64, u64)> = stdout
        .lines()
        .filter(|l| l.contains(r#""type":"status""#))
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["account"].as_str().unwrap().to_owned(),
                v["region"].as_str().unwrap().to_owned(),
                v["state"].as_str().unwrap().to_owned(),
                v["heartbeats"].as_u64().unwrap(),
                v["open_incidents"].as_u64().unwrap(),
            )
        })
        .collect();
    let row = |a: &str, r: &str, s: &str, n: u64, i: u64| {
        (a.to_owned(), r.to_owned(), s.to_owned(), n, i)
    };
    assert_eq!(
        rows,
        [
            row(PROD, "eu-west-1", "late", 1, 0),
            row(PROD, "us-east-1", "armed", 2, 1),
            row(OTHER, "eu-west-1", "never_seen", 0, 0),
            row(OTHER, "us-east-1", "lost", 1, 0),
        ]
    );
    // The delivery latency of production's us-east-1 (12 and 2 minutes) lies in the
    // 15-minute bucket at p99; no heartbeat paged anything.
    let us: Value =
        serde_json::from_str(stdout.lines().find(|l| l.contains("\"armed\"")).unwrap()).unwrap();
    assert_eq!(us["latency_p99_ms"], 900_000);
    // The same rows as a page: one cell per pair, classed by its state, worst first.
    let out = stack
        .cli()
        .args(["status", "--html", "--expect", "444444444444:eu-west-1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = String::from_utf8(out.stdout).unwrap();
    assert!(html.starts_with("<!doctype html>"), "{html}");
    for (state, n) in [("armed", 1), ("late", 1), ("lost", 1), ("never_seen", 1)] {
        assert!(
            html.contains(&format!("data-key=\"cells.{state}\">{n}<")),
            "{state}: {html}"
        );
    }
    assert!(
        html.contains("data-accounts=\"2\" data-regions=\"2\""),
        "{html}"
    );
    let never = html.find("<th>444444444444</th>").unwrap();
    assert!(
        never < html.find("<th>222222222222</th>").unwrap(),
        "worst first"
    );
    assert!(stack.alarms().await.is_empty());
    stack.save_observed_actions("status").await;
}

/// `tripwire status --json --policy FILE`'s policy lines, once both functions have
/// recorded what they loaded at cold start.
async fn policy_lines(stack: &Stack, file: &std::path::Path) -> Vec<Value> {
    for _ in 0..50 {
        let out = stack
            .cli()
            .args(["status", "--json", "--policy"])
            .arg(file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|v| v["type"] == "policy")
            .collect();
        if lines.len() == 2 {
            return lines;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("the functions never recorded the policy they loaded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_the_policy_changed_behind_the_files_back() {
    use tripwire_localstack::POLICY;
    // The file says one thing; the stack was deployed with its threshold and containment
    // changed behind its back.
    let deployed = POLICY
        .replace("threshold = 10", "threshold = 500")
        .replace("containment = \"revoke\"", "containment = \"off\"");
    assert_ne!(deployed, POLICY);
    let stack = Stack::start(Options {
        policy: deployed.clone(),
        ..Options::default()
    })
    .await;
    // What the functions run is the published version, threshold and all: ten calls are
    // no burst under it.
    for e in Burst::new("role/vendor/cleanup-task@222222222222", "st")
        .calls(10)
        .envelopes()
    {
        stack.invoke(&e).await.unwrap();
    }
    assert!(stack.alerts().await.is_empty());
    let file = stack.logs.join("policy.toml");
    std::fs::write(&file, POLICY).unwrap();
    let lines = policy_lines(&stack, &file).await;
    let functions: Vec<&str> = lines
        .iter()
        .map(|l| l["function"].as_str().unwrap())
        .collect();
    assert_eq!(functions, ["detector", "responder"]);
    for l in &lines {
        assert_eq!(l["in_sync"], false, "{l}");
        assert_eq!(
            l["differing_keys"],
            json!(["containment", "threshold"]),
            "{l}"
        );
        assert_eq!(
            l["deployed_sha256"],
            tripwire_engine::deployed::policy_hash(&deployed)
        );
        assert_eq!(
            l["local_sha256"],
            tripwire_engine::deployed::policy_hash(POLICY)
        );
        assert!(
            l["source"]
                .as_str()
                .unwrap()
                .starts_with("/tripwire/policy:"),
            "{l}"
        );
    }
    // Beside the deployed file itself: in sync.
    std::fs::write(&file, &deployed).unwrap();
    for l in policy_lines(&stack, &file).await {
        assert_eq!(
            (l["in_sync"].clone(), l["differing_keys"].clone()),
            (json!(true), json!([]))
        );
    }
    stack.save_observed_actions("policy-drift").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_account_of_the_organization_is_expected_in_every_enabled_region() {
    use tripwire_localstack::CENTRAL;
    let stack = Stack::start(Options {
        watchdog: true,
        expected_regions: "us-east-1,eu-west-1".into(),
        ..Options::default()
    })
    .await;
    // moto's organization: this account manages it, and one member joins. No StackSet
    // instance names either of them.
    let org = aws_sdk_organizations::Client::new(&stack.sdk);
    org.create_organization()
        .feature_set(aws_sdk_organizations::types::OrganizationFeatureSet::All)
        .send()
        .await
        .expect("CreateOrganization");
    org.create_account()
        .email("member@example.com")
        .account_name("member")
        .send()
        .await
        .expect("CreateAccount");
    let mut accounts: Vec<String> = org
        .list_accounts()
        .send()
        .await
        .unwrap()
        .accounts()
        .iter()
        .filter_map(|a| a.id().map(str::to_owned))
        .collect();
    accounts.sort();
    assert_eq!(accounts.len(), 2);
    assert!(
        accounts.contains(&CENTRAL.to_owned()),
        "the management account"
    );
    // The management account's forwarder in us-east-1 spoke; nothing else did.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let rec = tripwire_synth::canary_record(CENTRAL, "us-east-1", now - 60_000, "c-1");
    assert_eq!(
        outcome(
            &stack
                .invoke(&eventbridge_envelope(&rec, "c-1"))
                .await
                .unwrap()
        ),
        "heartbeat"
    );
    // The first run lists the expected pairs; the next (no grace here) pages each silent one.
    assert_eq!(stack.invoke_watchdog().await.unwrap(), json!([]));
    let paged = stack.invoke_watchdog().await.unwrap();
    let mut want = vec![json!({"paged": "never_seen", "account": CENTRAL, "region": "eu-west-1"})];
    for a in accounts.iter().filter(|a| *a != CENTRAL) {
        for r in ["us-east-1", "eu-west-1"] {
            want.push(json!({"paged": "never_seen", "account": a, "region": r}));
        }
    }
    let mut got = paged.as_array().unwrap().clone();
    got.sort_by_key(|v| v.to_string());
    want.sort_by_key(|v| v.to_string());
    assert_eq!(got, want);
    assert_eq!(stack.invoke_watchdog().await.unwrap(), json!([]), "once");
    let alarms = stack.alarms().await;
    assert_eq!(kinds(&alarms), ["coverage_lost"; 3]);
    assert!(
        alarms.iter().all(|a| a.body["state"] == "never_seen"),
        "{alarms:?}"
    );
    // `tripwire status` shows the same set as never_seen.
    let out = stack.cli().args(["status", "--json"]).output().unwrap();
    let never: usize = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(r#""state":"never_seen""#))
        .count();
    assert_eq!(never, 3);
    stack.save_observed_actions("organization-expected").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchdog_pages_a_silent_region_once_and_its_return_once() {
    let stack = Stack::start(Options {
        watchdog: true,
        ..Options::default()
    })
    .await;
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    let beat = |region: &str, ago_min: i64, id: &str| {
        let rec = tripwire_synth::canary_record(PROD, region, now() - ago_min * 60_000, id);
        eventbridge_envelope(&rec, id)
    };
    // us-east-1 spoke two minutes ago; eu-west-1 last spoke 40 minutes ago.
    for e in [beat("us-east-1", 2, "c-1"), beat("eu-west-1", 40, "c-2")] {
        assert_eq!(outcome(&stack.invoke(&e).await.unwrap()), "heartbeat");
    }
    let paged = stack.invoke_watchdog().await.unwrap();
    assert_eq!(
        paged,
        json!([{"paged": "coverage_lost", "account": PROD, "region": "eu-west-1"}])
    );
    assert_eq!(stack.invoke_watchdog().await.unwrap(), json!([]), "once");
    assert!(stack.alerts().await.is_empty());
    let alerts = stack.alarms().await;
    assert_eq!(kinds(&alerts), ["coverage_lost"]);
    assert_eq!(alerts[0].attributes["severity"], "high");
    assert_eq!(alerts[0].body["region"], "eu-west-1");
    // It speaks again.
    assert_eq!(
        outcome(&stack.invoke(&beat("eu-west-1", 0, "c-3")).await.unwrap()),
        "heartbeat"
    );
    assert_eq!(
        stack.invoke_watchdog().await.unwrap(),
        json!([{"paged": "coverage_restored", "account": PROD, "region": "eu-west-1"}])
    );
    assert_eq!(stack.invoke_watchdog().await.unwrap(), json!([]));
    assert_eq!(kinds(&stack.alarms().await), ["coverage_restored"]);
    stack.save_observed_actions("watchdog").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_accounts_change_that_drops_terminations_drops_the_canary_and_pages() {
    use tripwire_localstack::CENTRAL;
    let stack = Stack::start(Options {
        watchdog: true,
        ..Options::default()
    })
    .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let canary = |ago_min: i64, id: &str| {
        let rec = tripwire_synth::canary_record(CENTRAL, "us-east-1", now - ago_min * 60_000, id);
        eventbridge_envelope(&rec, id)
    };
    let termination = |id: &str| {
        Burst::new(&format!("role/ops/cleanup@{CENTRAL}"), id)
            .account(CENTRAL)
            .at(now)
            .calls(1)
            .envelopes()
            .remove(0)
    };
    // The member stack as the policy makes it (this account counts): the canary and a
    // real termination both reach the detector through its rule.
    stack.member_stack("").await;
    for e in [canary(40, "c-old"), termination("t-before")] {
        let got = stack.forwarded(&e).await;
        assert_eq!(got.len(), 1, "forwarded: {e}");
        stack.invoke(&got[0]).await.unwrap();
    }
    // Someone updates the StackSet's AllowedAccounts to this account: its terminations
    // stay home, and the canary's call with them.
    stack.member_stack(CENTRAL).await;
    assert_eq!(
        stack.forwarded(&termination("t-after")).await,
        Vec::<Value>::new()
    );
    assert_eq!(
        stack.forwarded(&canary(0, "c-new")).await,
        Vec::<Value>::new(),
        "the canary has no way around the filter"
    );
    // The watchdog still expects this account (the policy does not allow it): its last
    // heartbeat is 40 minutes old, and the silence pages.
    assert_eq!(
        stack.invoke_watchdog().await.unwrap(),
        json!([{"paged": "coverage_lost", "account": CENTRAL, "region": "us-east-1"}])
    );
    assert_eq!(kinds(&stack.alarms().await), ["coverage_lost"]);
    stack.save_observed_actions("allowed-accounts-change").await;
}

/// A canary heartbeat from `account` in us-east-1 a minute ago, so status shows it.
async fn heartbeat(stack: &Stack, account: &str, id: &str) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let rec = tripwire_synth::canary_record(account, "us-east-1", now - 60_000, id);
    assert_eq!(
        outcome(&stack.invoke(&eventbridge_envelope(&rec, id)).await.unwrap()),
        "heartbeat"
    );
}

/// `tripwire status --json`'s `drill` for each account it shows.
fn drill_words(stack: &Stack) -> std::collections::BTreeMap<String, String> {
    json_lines(stack.cli().args(["status", "--json"]))
        .into_iter()
        .filter(|v| v["type"] == "status")
        .map(|v| {
            (
                v["account"].as_str().unwrap().to_owned(),
                v["drill"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_weekly_drill_contains_the_drill_role_through_the_responder_and_shows_ok() {
    let stack = Stack::start(Options {
        watchdog: true,
        ..Options::default()
    })
    .await;
    stack.deploy_members(&[PROD], &["us-east-1"]).await;
    for (account, id) in [(PROD, "c-1"), (OTHER, "c-2")] {
        heartbeat(&stack, account, id).await;
    }
    assert_eq!(
        drill_words(&stack),
        [
            (PROD.to_owned(), "never".to_owned()),
            (OTHER.to_owned(), "never".to_owned())
        ]
        .into()
    );
    // The drill schedule's event, as Scheduler fills in the stack's input: one request
    // per StackSet account, to the responder, which contains the drill role through the
    // containment role and lifts it again.
    let run = "2026-12-07T00:00:00Z";
    let asked = stack
        .invoke_watchdog_with(&json!({"drill": true, "scheduled": run}))
        .await
        .unwrap();
    assert_eq!(asked, json!({"drill": [PROD]}));
    let mut words = drill_words(&stack);
    for _ in 0..40 {
        if words[PROD] != "never" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        words = drill_words(&stack);
    }
    // moto has no policy simulator: the read-back alone proves it there.
    assert_eq!(words[PROD], "ok", "{words:?}");
    assert_eq!(
        words[OTHER], "never",
        "no StackSet instance there: not drilled"
    );
    assert!(
        stack.attached(PROD, "role/tripwire-drill").await.is_empty(),
        "lifted"
    );
    assert!(
        stack.tags(PROD, "role/tripwire-drill").await.is_empty(),
        "lifted"
    );
    // The same run asked again (Scheduler's retry, Lambda's redelivery): not drilled
    // twice.
    let again = stack
        .invoke_responder(&json!({"drill": {"account": PROD, "run": run}}))
        .await
        .unwrap();
    assert_eq!(
        again,
        json!({"outcome": "drill_duplicate", "account": PROD, "run": run})
    );
    // No incident, no page; the watchdog's next run pages nothing for it.
    assert!(stack.alerts().await.is_empty());
    let paged = stack.invoke_watchdog().await.unwrap();
    assert!(
        !paged.to_string().contains("containment_unproven"),
        "{paged}"
    );
    stack.save_observed_actions("drill").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_against_a_broken_containment_trust_shows_failed_with_the_reason_and_pages_once() {
    // IAM enforced: moto then holds AssumeRole to the role's trust, as AWS does.
    let stack = Stack::start(Options {
        watchdog: true,
        enforce_iam: true,
        ..Options::default()
    })
    .await;
    heartbeat(&stack, PROD, "c-1").await;
    let request = json!({"drill": {"account": PROD}});
    let drill = || stack.invoke_responder(&request);
    assert_eq!(drill().await.unwrap()["ok"], true);
    assert_eq!(drill_words(&stack)[PROD], "ok");
    // Someone rewrites the containment role's trust to name another principal.
    stack
        .iam_in(PROD)
        .update_assume_role_policy()
        .role_name(CONTAINMENT_ROLE)
        .policy_document(
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::999999999999:root"},
                "Action": "sts:AssumeRole"}]})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    let failed = drill().await.unwrap();
    assert_eq!(failed["ok"], false, "{failed}");
    let word = drill_words(&stack)[PROD].clone();
    assert!(
        word.starts_with("failed ")
            && word.contains("AccessDenied")
            && word.contains("sts:AssumeRole"),
        "{word}"
    );
    // The watchdog pages it once, on the alarm channel.
    let paged = stack.invoke_watchdog().await.unwrap();
    assert!(
        paged.to_string().contains("containment_unproven"),
        "{paged}"
    );
    let again = stack.invoke_watchdog().await.unwrap();
    assert!(
        !again.to_string().contains("containment_unproven"),
        "{again}"
    );
    let alarms = stack.alarms().await;
    assert_eq!(kinds(&alarms), ["containment_unproven"]);
    assert!(
        alarms[0].body["reason"]
            .as_str()
            .unwrap()
            .contains("AccessDenied"),
        "{}",
        alarms[0].body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchdog_pages_each_stackset_instance_that_never_speaks_once() {
    let stack = Stack::start(Options {
        watchdog: true,
        ..Options::default()
    })
    .await;
    stack
        .deploy_members(&[PROD, OTHER], &["us-east-1", "eu-west-1"])
        .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let beat = |account: &str, region: &str, id: &str| {
        let rec = tripwire_synth::canary_record(account, region, now - 60_000, id);
        eventbridge_envelope(&rec, id)
    };
    assert_eq!(
        outcome(&stack.invoke(&beat(PROD, "us-east-1", "c-1")).await.unwrap()),
        "heartbeat"
    );
    // The first run lists the instances; the next, past the (test's zero) grace period,
    // pages the three that never spoke, once.
    assert_eq!(stack.invoke_watchdog().await.unwrap(), json!([]));
    let mut paged: Vec<(String, String, String)> = stack
        .invoke_watchdog()
        .await
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let s = |k: &str| p[k].as_str().unwrap().to_owned();
            (s("paged"), s("account"), s("region"))
        })
        .collect();
    paged.sort();
    let never = |a: &str, r: &str| ("never_seen".to_owned(), a.to_owned(), r.to_owned());
    assert_eq!(
        paged,
        [
            never(PROD, "eu-west-1"),
            never(OTHER, "eu-west-1"),
            never(OTHER, "us-east-1")
        ]
    );
    assert_eq!(stack.invoke_watchdog().await.unwrap(), json!([]), "once");
    let alarms = stack.alarms().await;
    assert_eq!(kinds(&alarms), ["coverage_lost"; 3]);
    for a in &alarms {
        assert_eq!(a.body["state"], "never_seen");
        assert_eq!(a.body["stack_instance_status"], "CURRENT SUCCEEDED");
        assert_eq!(a.attributes["severity"], "high");
    }
    // `tripwire status` shows them without being told what to expect.
    let out = stack.cli().args(["status", "--json"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let states: Vec<(String, String, String)> = stdout
        .lines()
        .filter(|l| l.contains(r#""type":"status""#))
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let s = |k: &str| v[k].as_str().unwrap().to_owned();
            (s("account"), s("region"), s("state"))
        })
        .collect();
    let row = |a: &str, r: &str, s: &str| (a.to_owned(), r.to_owned(), s.to_owned());
    assert_eq!(
        states,
        [
            row(PROD, "eu-west-1", "never_seen"),
            row(PROD, "us-east-1", "armed"),
            row(OTHER, "eu-west-1", "never_seen"),
            row(OTHER, "us-east-1", "never_seen"),
        ]
    );
    // One speaks at last: restored once, and no longer listed.
    assert_eq!(
        outcome(
            &stack
                .invoke(&beat(OTHER, "eu-west-1", "c-2"))
                .await
                .unwrap()
        ),
        "heartbeat"
    );
    assert_eq!(
        stack.invoke_watchdog().await.unwrap(),
        json!([{"paged": "coverage_restored", "account": OTHER, "region": "eu-west-1"}])
    );
    assert_eq!(stack.invoke_watchdog().await.unwrap(), json!([]));
    assert_eq!(kinds(&stack.alarms().await), ["coverage_restored"]);
    stack.save_observed_actions("watchdog-stackset").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wipe_past_one_items_size_is_counted_once_per_instance_and_exported_whole() {
    let stack = Stack::start(Options::default()).await;
    // 20 calls of 1,000 instances: 20,000, beyond the ~15,000 IDs one 400 KB item holds.
    let envelopes = Burst::new("role/vendor/cleanup-task@222222222222", "wipe")
        .at(*BASE)
        .calls(20)
        .ids_per_call(1000)
        .step(200)
        .envelopes();
    let mut last = Value::Null;
    for (k, e) in envelopes.iter().enumerate() {
        last = stack.invoke(e).await.unwrap();
        // Every fifth call is delivered twice: the second is a duplicate.
        if k % 5 == 4 {
            assert_eq!(outcome(&stack.invoke(e).await.unwrap()), "duplicate");
        }
    }
    assert_eq!(outcome(&last), "joined", "{last}");
    assert_eq!(last[0]["instances"], 20_000);
    // Another call naming 1,000 instances already counted (a script retrying) adds none.
    let mut again = envelopes[3].clone();
    again["id"] = json!("wipe-again");
    again["detail"]["eventID"] = json!("wipe-again");
    let out = stack.invoke(&again).await.unwrap();
    assert_eq!(
        (outcome(&out), &out[0]["instances"]),
        ("joined", &json!(20_000)),
        "{out}"
    );
    let (item, size) = stack.largest_item().await;
    assert!(size < 100_000, "the largest item ({item}) is {size} bytes");
    // The join reads the same few items at 1,000 instances and at 20,000.
    let reads: Vec<u64> = std::fs::read_to_string(stack.logs.join("detector-0.log"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| {
            v["fields"]["outcome"]
                .as_str()
                .is_some_and(|o| o.starts_with("Joined"))
        })
        .filter_map(|v| v["fields"]["items_read"].as_u64())
        .collect();
    assert_eq!(reads.len(), 20, "19 joins and the retry: {reads:?}");
    assert!(reads.iter().all(|&r| r == reads[0] && r <= 4), "{reads:?}");
    // The recovery manifest lists every instance once, with the call that killed it.
    let id = stack.alerts().await[0].body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = stack
        .cli()
        .args(["incident", "export", "--format", "jsonl", &id])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 20_000);
    let distinct: std::collections::BTreeSet<&str> = rows
        .iter()
        .map(|r| r["instance_id"].as_str().unwrap())
        .collect();
    assert_eq!(distinct.len(), 20_000);
    let fourth = &rows[3000];
    assert_eq!(
        fourth["event_id"], "wipe-3",
        "the first call that named it, not the retry"
    );
    assert_eq!(fourth["region"], "us-east-1");
    assert_eq!(
        fourth["principal_arn"],
        "arn:aws:iam::222222222222:role/vendor/cleanup-task"
    );
    let csv = stack
        .cli()
        .args(["incident", "export", &id])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&csv.stdout);
    assert_eq!(text.lines().count(), 20_001);
    assert!(text.starts_with(
        "instance_id,terminated_at,region,event_id,principal_arn,account,confirmed,resource_type\n"
    ));
    // Every row names what it is.
    assert!(text.lines().skip(1).all(|l| l.ends_with(",ec2:instance")));
    let missing = stack
        .cli()
        .args(["incident", "export", "no-such-incident"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no incident no-such-incident"));
    // The whole incident replayed from a dead-letter queue: every call a duplicate.
    for e in &envelopes {
        assert_eq!(outcome(&stack.invoke(e).await.unwrap()), "duplicate");
    }
    // The 20,001st instance counts once, and nobody is paged as if it were new.
    let last = Burst::new("role/vendor/cleanup-task@222222222222", "wipe-last")
        .at(*BASE + 4_000)
        .envelopes();
    let out = stack.invoke(&last[0]).await.unwrap();
    assert_eq!(
        (outcome(&out), &out[0]["instances"]),
        ("joined", &json!(20_001)),
        "{out}"
    );
    assert_eq!(outcome(&stack.invoke(&last[0]).await.unwrap()), "duplicate");
    assert!(
        !kinds(&stack.alerts().await).contains(&"detected".to_owned()),
        "one incident, paged once"
    );
    stack.save_observed_actions("wipe").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recontain_puts_back_the_tag_someone_removed() {
    let stack = Stack::start(Options {
        policy: format!("recontain = true\n{}", tripwire_localstack::POLICY),
        ..Options::default()
    })
    .await;
    deliver_burst(&stack, "role/vendor/cleanup-task@222222222222", "rc").await;
    let contained = stack.tags(PROD, "role/cleanup-task").await;
    let key = contained
        .keys()
        .next()
        .expect("the tag naming the session")
        .clone();
    // An administrator removes it, which lifts the scope like a detach; CloudTrail
    // records the call.
    stack
        .iam_in(PROD)
        .untag_role()
        .role_name("cleanup-task")
        .tag_keys(&key)
        .send()
        .await
        .expect("UntagRole");
    assert!(stack.tags(PROD, "role/cleanup-task").await.is_empty());
    let lift = tripwire_synth::api_envelope(
        "iam.amazonaws.com",
        "UntagRole",
        "role/Admin@222222222222",
        &json!({"roleName": "cleanup-task", "tagKeys": [key]}),
        "lift-e2e",
        *BASE + 60_000,
    );
    assert_eq!(outcome(&stack.invoke(&lift).await.unwrap()), "tamper");
    // Put back, as IAM holds it, and said so on the second channel.
    assert_eq!(stack.tags(PROD, "role/cleanup-task").await, contained);
    let alarms = stack.alarms().await;
    assert_eq!(kinds(&alarms), ["tamper"]);
    assert_eq!(alarms[0].body["lifted_from"], "role/cleanup-task");
    assert!(
        alarms[0].body["recontain"]
            .as_str()
            .is_some_and(|r| r.starts_with("requested")),
        "{}",
        alarms[0].body
    );
    stack.save_observed_actions("recontain").await;
}

/// `tripwire render --format FORMAT` of one JSON line, as a user runs it.
fn render(format: &str, line: &Value) -> Value {
    use std::io::Write;
    let mut child = std::process::Command::new(tripwire_localstack::binary("tripwire"))
        .args(["render", "--format", format])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{line}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_alert_is_on_the_bus_as_render_prints_it_and_security_hub_follows_the_incident() {
    let stack = Stack::start(Options {
        findings: true,
        ..Default::default()
    })
    .await;
    let principal = "arn:aws:iam::222222222222:role/vendor/cleanup-task";
    deliver_burst(&stack, "role/vendor/cleanup-task@222222222222", "bus").await;
    let stdout = release(&stack, principal, &[]);
    assert!(stdout.contains("released alert sent"), "{stdout}");
    // The page and the containment go out concurrently, so SNS may deliver CONTAINED
    // before DETECTED under load: both lists in the alerts' own time order.
    let mut alerts = stack.alerts().await;
    alerts.sort_by_key(|a| a.body["alert_time"].as_str().unwrap_or_default().to_owned());
    let mut events = stack.bus_events().await;
    events.sort_by_key(|e| {
        e["detail"]["alert_time"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    });
    let detail_types: Vec<&str> = events
        .iter()
        .map(|e| e["detail-type"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(detail_types, ["detected", "contained", "released"]);
    assert_eq!(kinds(&alerts), detail_types, "one event per SNS alert");
    let id = alerts[0].body["id"].as_str().unwrap().to_owned();
    for (e, sns) in events.iter().zip(&alerts) {
        assert_eq!(e["source"], "tripwire");
        assert_eq!(e["account"], tripwire_localstack::CENTRAL);
        assert_eq!(e["resources"], json!([principal]));
        let mut detail = e["detail"].clone();
        let destinations = detail
            .as_object_mut()
            .unwrap()
            .remove("destinations")
            .unwrap();
        // The event carries the SNS JSON as is, and what `tripwire render` prints for it.
        assert_eq!(detail, sns.body);
        assert_eq!(destinations["chatbot"], render("chatbot", &sns.body));
        assert_eq!(destinations["pagerduty"], render("pagerduty", &sns.body));
        assert_eq!(destinations["pagerduty"]["dedup_key"], id.as_str());
        assert_eq!(destinations["chatbot"]["metadata"]["threadId"], id.as_str());
    }
    let actions: Vec<&Value> = events
        .iter()
        .map(|e| &e["detail"]["destinations"]["pagerduty"]["event_action"])
        .collect();
    assert_eq!(actions, ["trigger", "trigger", "resolve"]);

    // Security Hub, through the findings function, one event at a time as its rule
    // delivers them: opened, moved to NOTIFIED on containment, archived on release.
    let finding = format!("tripwire/{id}");
    let mut seen = Vec::new();
    for e in &events {
        let out = stack.invoke_findings(e).await.unwrap();
        assert_eq!(out["finding"], finding.as_str(), "{out}");
        seen.push(stack.findings().await);
    }
    assert_eq!(seen[0].len(), 1, "{seen:?}");
    assert_eq!(
        (seen[0][0].0.as_str(), seen[0][0].1.as_str()),
        (finding.as_str(), "ACTIVE")
    );
    assert_eq!(
        seen[1],
        [(finding.clone(), "ACTIVE".into(), "NOTIFIED".into())]
    );
    assert_eq!(
        seen[2],
        [(finding.clone(), "ARCHIVED".into(), "RESOLVED".into())]
    );

    // Anyone else's event can neither open nor move a finding: another account, or
    // another source, is acknowledged and skipped.
    let mut forged = events[0].clone();
    forged["account"] = json!(OTHER);
    forged["detail"]["id"] = json!("inc-forged");
    let mut spoofed = forged.clone();
    spoofed["account"] = json!(tripwire_localstack::CENTRAL);
    spoofed["source"] = json!("tripwire.fake");
    for (e, why) in [
        (&forged, "not_from_this_account"),
        (&spoofed, "not_from_tripwire"),
    ] {
        let out = stack.invoke_findings(e).await.unwrap();
        assert_eq!(out["skipped"], why, "{out}");
    }
    assert_eq!(stack.findings().await, seen[2]);
    let garbage = stack.invoke_findings(&json!({"source": "tripwire", "account": tripwire_localstack::CENTRAL, "detail": {"type": "summary"}})).await.unwrap();
    assert!(
        garbage["skipped"]
            .as_str()
            .unwrap()
            .starts_with("not_an_alert"),
        "{garbage}"
    );
    stack.save_observed_actions("alert-bus-and-findings").await;
}

/// Uploads every file under `dir` to `s3://BUCKET/PREFIX` with its relative path.
async fn upload(stack: &Stack, dir: &std::path::Path, bucket: &str, prefix: &str) {
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&stack.sdk)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket()
        .bucket(bucket)
        .send()
        .await
        .expect("CreateBucket");
    let mut stack_dirs = vec![dir.to_owned()];
    while let Some(d) = stack_dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack_dirs.push(p);
                continue;
            }
            let key = format!("{prefix}{}", p.strip_prefix(dir).unwrap().display());
            s3.put_object()
                .bucket(bucket)
                .key(key)
                .body(std::fs::read(&p).unwrap().into())
                .send()
                .await
                .expect("PutObject");
        }
    }
}

/// `tripwire backtest --json` over `args`, against the stack's S3; its lines.
fn backtest(stack: &Stack, args: &[&str]) -> Vec<Value> {
    json_lines(
        stack
            .cli()
            .args(["backtest", "--json", "--policy"])
            .arg(tripwire_localstack::repo().join("config/policy.toml"))
            .args(args),
    )
}

/// A CLI command's JSON lines; it must succeed.
fn json_lines(cmd: &mut std::process::Command) -> Vec<Value> {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn summary(lines: &[Value]) -> &Value {
    lines.iter().find(|l| l["type"] == "summary").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backtest_of_the_organizations_bucket_finds_what_the_same_files_on_disk_give() {
    let stack = Stack::start(Options::default()).await;
    let dir = std::env::temp_dir().join(format!("tripwire-s3-archive-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = stack
        .cli()
        .args(["generate", "--size-mb", "2", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    // Another account and day of the same calls under the organization trail's layout,
    // and a digest, which is not records: every one read on disk and in S3 alike.
    let day = dir.join("AWSLogs/222222222222/CloudTrail/us-east-1/2018/01/09");
    let scenario = std::fs::read_dir(&day)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("scenario"))
        .unwrap();
    let other = dir.join("AWSLogs/o-exampleorg1/444444444444/CloudTrail/eu-west-1/2018/01/10");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::copy(
        &scenario,
        other.join("444444444444_CloudTrail_eu-west-1_20180110T2205Z_x.json.gz"),
    )
    .unwrap();
    let digest = dir.join("AWSLogs/222222222222/CloudTrail-Digest/us-east-1/2018/01/09");
    std::fs::create_dir_all(&digest).unwrap();
    std::fs::write(digest.join("d.json.gz"), b"not a gzip, and never read").unwrap();
    upload(&stack, &dir, "org-trail", "logs/").await;
    let local = dir.to_string_lossy().into_owned();

    let on_disk = backtest(&stack, &[&local]);
    let in_s3 = backtest(&stack, &["s3://org-trail/logs/"]);
    assert_eq!(in_s3, on_disk, "the same lines from S3 as from disk");
    let s = summary(&in_s3);
    assert_eq!(s["corrupt_files"], json!([]), "the digest is never read");
    assert!(s["incidents"].as_u64().unwrap() >= 1, "{s}");
    let all_files = s["files"].as_u64().unwrap();

    // Narrowed: one account and region, or from a day on, read one file, and the
    // listing never descends into what the filters rule out.
    // (Each case: the filters, what no listing may name, and what a listing of every
    // key below, without the delimiter, must be inside.)
    for (narrow, skipped, settled) in [
        (
            &["--accounts", "444444444444", "--regions", "eu-west-1"][..],
            "222222222222",
            "eu-west-1",
        ),
        (
            &["--since", "2018-01-10"][..],
            "2018%2F01%2F09",
            "2018%2F01%2F10",
        ),
    ] {
        let before = stack.request_urls("s3").await.len();
        let in_s3 = backtest(&stack, &[narrow, &["s3://org-trail/logs/"]].concat());
        let listed: Vec<String> = stack.request_urls("s3").await[before..]
            .iter()
            .filter(|u| u.contains("list-type=2"))
            .cloned()
            .collect();
        assert!(!listed.is_empty(), "{narrow:?}");
        assert!(
            !listed
                .iter()
                .any(|u| u.contains(skipped) || u.contains(&skipped.replace("%2F", "/"))),
            "{narrow:?} listed what it skips: {listed:#?}"
        );
        let flat = |u: &&String| !u.contains("delimiter=");
        assert!(
            listed
                .iter()
                .filter(flat)
                .all(|u| u.contains(settled) || u.contains(&settled.replace("%2F", "/"))),
            "{narrow:?} listed everything below a prefix it could still narrow: {listed:#?}"
        );
        assert_eq!(
            in_s3,
            backtest(&stack, &[narrow, &[local.as_str()]].concat()),
            "{narrow:?}"
        );
        assert_eq!(summary(&in_s3)["files"], 1, "{narrow:?}");
        assert_eq!(summary(&in_s3)["incidents"], 1, "{narrow:?}");
    }

    // Disk and S3 in one run: every file of both.
    let both = backtest(
        &stack,
        &[&local, "s3://org-trail/logs/AWSLogs/o-exampleorg1/"],
    );
    assert_eq!(summary(&both)["files"].as_u64().unwrap(), all_files + 1);
    // A bucket that is not there is a clear error, not an empty report.
    let out = stack
        .cli()
        .args(["backtest", "--policy"])
        .arg(tripwire_localstack::repo().join("config/policy.toml"))
        .arg("s3://no-such-bucket/")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-bucket"));
    let _ = std::fs::remove_dir_all(&dir);
}
