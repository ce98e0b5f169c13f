//! The detector pipeline in-process, on the in-memory ports: redelivery, the race to
//! open, lease takeover, degraded mode, late calls, update throttling, attempts.

mod support;

use serde_json::Value;
use support::{key, Rig, POLICY, T0};
use tripwire_engine::Termination;
use tripwire_pipeline::detector::UPDATE_GAP_MS;
use tripwire_pipeline::{Incidents, Outcome};
use tripwire_synth::Burst;

const CLEANUP: &str = "role/vendor/cleanup-task@222222222222";
const CLEANUP_ARN: &str = "arn:aws:iam::222222222222:role/vendor/cleanup-task";
const PROD: &str = "222222222222";

/// The single outcome of delivering one event.
async fn one(rig: &Rig, e: &Value) -> Outcome {
    let mut out = rig.deliver_one(e).await.expect("delivered");
    assert_eq!(out.len(), 1, "{out:?}");
    out.remove(0)
}

fn opened(outcomes: &[Outcome]) -> Vec<&Outcome> {
    outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Opened { .. }))
        .collect()
}

fn termination(e: &Value) -> Termination {
    let mut out = Vec::new();
    tripwire_engine::scan(&e.to_string(), &mut Default::default(), &mut out).unwrap();
    out.remove(0)
}

#[tokio::test]
async fn a_burst_opens_one_incident_pages_once_and_asks_for_containment() {
    let rig = Rig::new(POLICY);
    let events = Burst::new(CLEANUP, "seed").calls(12).step(1500).envelopes();
    let mut outcomes = Vec::new();
    for e in &events {
        outcomes.push(one(&rig, e).await);
    }
    for (k, o) in outcomes.iter().take(9).enumerate() {
        assert!(
            matches!(o, Outcome::Counted { window_count, threshold: 10, .. } if *window_count == k as u32 + 1),
            "{k}: {o:?}"
        );
    }
    assert!(
        matches!(
            &outcomes[9],
            Outcome::Opened {
                window_count: 10,
                containment_requested: true,
                ..
            }
        ),
        "{:?}",
        outcomes[9]
    );
    assert!(matches!(
        &outcomes[10],
        Outcome::Joined { instances: 11, .. }
    ));
    assert_eq!(rig.alerts.kinds(), ["detected"]);
    let queued = rig.queue.queued();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].principal_arn, CLEANUP_ARN);
    let stored = rig.store.current(&key(CLEANUP_ARN, PROD)).unwrap();
    assert_eq!(queued[0].incident_id, stored.open.id);
    assert!(stored.alerted && stored.invoked);
    assert_eq!(stored.incident.instances(), 12);
}

#[tokio::test]
async fn a_redelivered_call_counts_nothing_twice_and_pages_nobody_again() {
    let rig = Rig::new(POLICY);
    let events = Burst::new(CLEANUP, "redeliver").calls(10).envelopes();
    rig.deliver(&events).await;
    for e in &events {
        assert!(
            matches!(one(&rig, e).await, Outcome::Duplicate { .. }),
            "a finished call is a duplicate"
        );
    }
    assert_eq!(rig.alerts.kinds(), ["detected"]);
    assert_eq!(rig.queue.queued().len(), 1);
    // A call inside the window delivered twice still adds one instance.
    let more = Burst::new(CLEANUP, "more").at(T0 + 20_000).envelopes();
    rig.deliver(&more).await;
    rig.deliver(&more).await;
    let stored = rig.store.current(&key(CLEANUP_ARN, PROD)).unwrap();
    assert_eq!(stored.incident.instances(), 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_many_tasks_racing_over_the_threshold_exactly_one_opens_the_incident() {
    for round in 0..20 {
        let rig = Rig::new(POLICY);
        let tag = format!("race{round}");
        let events = Burst::new(CLEANUP, &tag).calls(40).step(100).envelopes();
        let tasks: Vec<_> = events
            .into_iter()
            .map(|e| {
                let detector = rig.detector.clone();
                let deadline = T0 + 65_000;
                tokio::spawn(async move { detector.handle(&e.to_string(), deadline).await })
            })
            .collect();
        let mut outcomes = Vec::new();
        for t in tasks {
            outcomes.extend(t.await.unwrap().expect("no errors"));
        }
        assert_eq!(opened(&outcomes).len(), 1, "round {round}: {outcomes:?}");
        assert_eq!(rig.alerts.kinds(), ["detected"], "round {round}");
        assert_eq!(rig.queue.queued().len(), 1, "round {round}");
        let stored = rig.store.current(&key(CLEANUP_ARN, PROD)).unwrap();
        assert_eq!(
            stored.incident.instances(),
            40,
            "round {round}: every instance joins"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_concurrent_duplicate_leaves_the_live_attempt_alone() {
    let rig = Rig::new(POLICY);
    let events = Burst::new(CLEANUP, "dup").calls(10).envelopes();
    rig.deliver(&events[..9]).await;
    // The threshold-crossing call, delivered eight times at once.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let detector = rig.detector.clone();
            let e = events[9].to_string();
            tokio::spawn(async move { detector.handle(&e, T0 + 65_000).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.extend(t.await.unwrap().unwrap());
    }
    let dups = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Duplicate { .. }))
        .count();
    assert_eq!((opened(&outcomes).len(), dups), (1, 7), "{outcomes:?}");
    assert_eq!(rig.alerts.kinds(), ["detected"]);
}

#[tokio::test]
async fn a_failed_attempt_gives_up_its_lease_and_the_retry_finishes_without_repeating_steps() {
    let rig = Rig::new(POLICY);
    let events = Burst::new(CLEANUP, "lease").calls(10).envelopes();
    rig.deliver(&events[..9]).await;
    // SNS fails on the opening call: the request was queued, the page was not.
    rig.alerts.faults.fail_next("publish", 1);
    let err = rig.deliver_one(&events[9]).await.unwrap_err();
    assert!(err.to_string().contains("publish"), "{err}");
    assert_eq!(rig.queue.queued().len(), 1);
    // Lambda's retry takes over at once (the lease was released) and only pages.
    assert!(matches!(
        one(&rig, &events[9]).await,
        Outcome::Opened {
            containment_requested: true,
            ..
        }
    ));
    assert_eq!(rig.alerts.kinds(), ["detected"]);
    assert_eq!(rig.queue.queued().len(), 1, "the request is not repeated");
    let t = termination(&events[9]);
    assert!(rig.store.done(&key(CLEANUP_ARN, PROD), &t));
}

#[tokio::test]
async fn a_lease_that_was_never_released_is_taken_over_only_after_it_runs_out() {
    let rig = Rig::new(POLICY);
    let events = Burst::new(CLEANUP, "crash").calls(10).envelopes();
    rig.deliver(&events[..9]).await;
    // The queue fails, and so does the lease release: as if the container died.
    rig.queue.faults.fail_next("request", 1);
    rig.store.faults.fail_next("release_lease", 1);
    assert!(rig.deliver_one(&events[9]).await.is_err());
    assert!(
        matches!(one(&rig, &events[9]).await, Outcome::Duplicate { .. }),
        "lease still held"
    );
    rig.clock.advance(61_000);
    assert!(matches!(
        one(&rig, &events[9]).await,
        Outcome::Opened { .. }
    ));
    assert_eq!(rig.alerts.kinds(), ["detected"], "the page went out once");
    assert_eq!(rig.queue.queued().len(), 1);
}

#[tokio::test]
async fn with_the_window_store_down_a_call_that_alone_crosses_the_threshold_still_pages() {
    let rig = Rig::new(POLICY);
    rig.store.faults.down();
    let big = Burst::new(CLEANUP, "big").ids_per_call(12).envelopes();
    let err = rig.deliver_one(&big[0]).await.unwrap_err();
    assert!(err.is_window_store(), "{err}");
    let sent = rig.alerts.sent();
    assert_eq!(rig.alerts.kinds(), ["detected"]);
    let body: Value = serde_json::from_str(&sent[0].json).unwrap();
    assert_eq!(body["window_degraded"], true);
    assert_eq!(body["instances"], 12);
    assert_eq!(body["containment_status"]["state"], "not_attempted");
    assert!(
        rig.queue.queued().is_empty(),
        "containment waits for a recorded incident"
    );
    // One call below the threshold: no page, still an error so Lambda retries it.
    let small = Burst::new(CLEANUP, "small").envelopes();
    assert!(rig.deliver_one(&small[0]).await.is_err());
    assert_eq!(rig.alerts.sent().len(), 1);
    // Once the store is back, the retry is counted and opens the incident for real.
    rig.store.faults.up();
    assert!(matches!(one(&rig, &big[0]).await, Outcome::Opened { .. }));
    assert_eq!(rig.queue.queued().len(), 1);
}

#[tokio::test]
async fn a_late_call_inside_a_closed_incident_belongs_to_it_and_opens_nothing() {
    let rig = Rig::new(POLICY);
    let first = Burst::new(CLEANUP, "first")
        .calls(10)
        .step(1000)
        .envelopes();
    rig.deliver(&first).await;
    let first_id = rig.store.current(&key(CLEANUP_ARN, PROD)).unwrap().open.id;
    // An hour later, a second burst opens a new incident; the first joins the history.
    let later = T0 + 3_600_000;
    rig.clock.set(later);
    let second = Burst::new(CLEANUP, "second")
        .at(later)
        .calls(10)
        .envelopes();
    let outcomes: Vec<Outcome> = rig
        .deliver(&second)
        .await
        .into_iter()
        .flat_map(Result::unwrap)
        .collect();
    assert_eq!(opened(&outcomes).len(), 1);
    // A call from the first burst's span, delivered late.
    let late = Burst::new(CLEANUP, "late").at(T0 + 4_500).envelopes();
    match one(&rig, &late[0]).await {
        Outcome::LateForClosedIncident { incident, .. } => assert_eq!(incident, first_id),
        o => panic!("{o:?}"),
    }
    assert_eq!(rig.alerts.kinds(), ["detected", "detected"]);
    let stored = rig.store.current(&key(CLEANUP_ARN, PROD)).unwrap();
    assert_eq!(stored.history.len(), 1);
    assert_eq!(stored.history[0].id, first_id);
}

#[tokio::test]
async fn update_alerts_go_out_at_most_once_a_minute() {
    let rig = Rig::new(POLICY);
    let burst = Burst::new(CLEANUP, "upd").calls(10).envelopes();
    rig.deliver(&burst).await;
    let mut updates = Vec::new();
    for k in 0..6 {
        // Two joins every 30 s of wall clock: an update at most every UPDATE_GAP_MS.
        rig.clock.advance(UPDATE_GAP_MS / 2);
        let more = Burst::new(CLEANUP, &format!("upd{k}"))
            .at(T0 + 10_000 + k * 1000)
            .calls(2)
            .envelopes();
        for o in rig
            .deliver(&more)
            .await
            .into_iter()
            .flat_map(Result::unwrap)
        {
            match o {
                Outcome::Joined { update_alert, .. } => updates.push(update_alert),
                o => panic!("{o:?}"),
            }
        }
    }
    assert_eq!(
        updates,
        [false, false, true, false, false, false, true, false, false, false, true, false]
    );
    assert_eq!(
        rig.alerts.kinds(),
        ["detected", "update", "update", "update"]
    );
}

#[tokio::test]
async fn failed_calls_are_attempts_counted_on_the_incident_once() {
    let rig = Rig::new(POLICY);
    rig.deliver(&Burst::new(CLEANUP, "att").calls(10).envelopes())
        .await;
    let denied = Burst::new(CLEANUP, "denied")
        .at(T0 + 12_000)
        .calls(3)
        .error("Client.UnauthorizedOperation")
        .envelopes();
    for e in &denied {
        assert!(matches!(one(&rig, e).await, Outcome::Attempt { .. }));
    }
    assert!(matches!(
        one(&rig, &denied[0]).await,
        Outcome::Duplicate { .. }
    ));
    let stored = rig.store.current(&key(CLEANUP_ARN, PROD)).unwrap();
    assert_eq!(
        (stored.incident.attempts, stored.incident.instances()),
        (3, 10)
    );
    // An attempt on its own opens nothing.
    let other = Rig::new(POLICY);
    let many = Burst::new(CLEANUP, "denied-only")
        .calls(20)
        .error("Client.UnauthorizedOperation")
        .envelopes();
    other.deliver(&many).await;
    assert!(other.store.current(&key(CLEANUP_ARN, PROD)).is_none());
    assert!(other.alerts.sent().is_empty());
}

#[tokio::test]
async fn allowed_accounts_service_roles_and_bad_input_are_named_skips() {
    let rig = Rig::new(POLICY);
    let dev = Burst::new("role/vendor/cleanup-task@111111111111", "dev")
        .calls(20)
        .envelopes();
    for e in &dev {
        assert!(matches!(
            one(&rig, e).await,
            Outcome::NotCounted {
                reason: "allowed_account",
                ..
            }
        ));
    }
    let asg = Burst::new(
        "role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling@222222222222",
        "asg",
    )
    .envelopes();
    assert!(matches!(
        one(&rig, &asg[0]).await,
        Outcome::NotCounted {
            reason: "service_linked_role",
            ..
        }
    ));
    let out = rig.detector.handle("{not json", T0).await.unwrap();
    assert_eq!(
        out,
        [Outcome::Skipped {
            reason: "malformed_record"
        }]
    );
    let other = serde_json::json!({"version": "0", "detail-type": "EC2 Spot Instance Interruption Warning", "source": "aws.ec2", "detail": {}});
    let out = rig.detector.handle(&other.to_string(), T0).await.unwrap();
    assert_eq!(
        out,
        [Outcome::Skipped {
            reason: "not_cloudtrail"
        }]
    );
    // EC2's state-change events count in the wave lane (tests/waves.rs); a look-alike
    // of one is named.
    let change = tripwire_synth::state_change_event(
        "222222222222",
        "us-east-1",
        "i-1234567890abcdef0",
        "terminated",
        T0,
        "sc-1",
    );
    let out = rig.detector.handle(&change.to_string(), T0).await.unwrap();
    assert!(
        matches!(
            &out[..],
            [Outcome::StateChange {
                result: "counted",
                instances: 1,
                ..
            }]
        ),
        "{out:?}"
    );
    let mut forged = change.clone();
    forged["source"] = "custom.ec2".into();
    let out = rig.detector.handle(&forged.to_string(), T0).await.unwrap();
    assert_eq!(
        out,
        [Outcome::Skipped {
            reason: "envelope_mismatch"
        }]
    );
    assert!(rig.alerts.sent().is_empty());
}

#[tokio::test]
async fn in_alert_only_mode_the_detector_pages_and_asks_for_nothing() {
    let rig = Rig::new(&POLICY.replace("containment = \"revoke\"", "containment = \"off\""));
    let outcomes: Vec<Outcome> = rig
        .deliver(&Burst::new(CLEANUP, "off").calls(10).envelopes())
        .await
        .into_iter()
        .flat_map(Result::unwrap)
        .collect();
    assert!(matches!(
        opened(&outcomes)[..],
        [Outcome::Opened {
            containment_requested: false,
            ..
        }]
    ));
    assert_eq!(rig.alerts.kinds(), ["detected"]);
    assert!(rig.queue.queued().is_empty());
    let body: Value = serde_json::from_str(&rig.alerts.sent()[0].json).unwrap();
    assert_eq!(body["containment_status"]["state"], "not_attempted");
}

#[tokio::test]
async fn one_cross_account_instance_is_a_burst() {
    let rig = Rig::new(POLICY);
    let e = Burst::new("role/deployer@444444444444", "xacct")
        .account(PROD)
        .envelopes();
    assert!(matches!(
        one(&rig, &e[0]).await,
        Outcome::Opened {
            window_count: 1,
            ..
        }
    ));
}

#[tokio::test]
async fn the_detector_and_the_backtest_open_the_same_incident() {
    let policy = tripwire_engine::Policy::from_toml(POLICY).unwrap();
    let rig = Rig::new(POLICY);
    let events = Burst::new(CLEANUP, "same").calls(15).step(2000).envelopes();
    rig.deliver(&events).await;
    let terms: Vec<Termination> = events.iter().map(termination).collect();
    let replayed = tripwire_engine::replay::replay(&policy, terms);
    let stored = rig.store.current(&key(CLEANUP_ARN, PROD)).unwrap().incident;
    let backtest = &replayed.incidents[0];
    assert_eq!(
        (
            &stored.id,
            stored.trigger_count,
            &stored.trigger_event_id,
            stored.instances()
        ),
        (
            &backtest.id,
            backtest.trigger_count,
            &backtest.trigger_event_id,
            backtest.instances()
        )
    );
    assert_eq!(stored.instance_ids, backtest.instance_ids);
    // The incident document keeps only the summary (no tags), and the request carries none.
    assert_eq!(rig.queue.queued()[0].incident_id, stored.id);
    assert!(stored.containment.tags.is_empty());
    let _ = rig
        .store
        .incident(&key(CLEANUP_ARN, PROD))
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_reaper_re_terminating_dead_instances_is_never_counted() {
    let rig = Rig::new(POLICY);
    let reaper = Burst::new(CLEANUP, "reaper")
        .calls(30)
        .already_terminated(1)
        .envelopes();
    for e in &reaper {
        assert!(
            matches!(
                one(&rig, e).await,
                Outcome::NotCounted {
                    reason: "already_terminated",
                    ..
                }
            ),
            "a dead instance died before this call"
        );
    }
    assert!(rig.store.current(&key(CLEANUP_ARN, PROD)).is_none());
    assert!(rig.alerts.sent().is_empty() && rig.queue.queued().is_empty());
}

#[tokio::test]
async fn unconfirmed_instances_are_counted_and_reported_as_the_backtest_does() {
    let policy = tripwire_engine::Policy::from_toml(POLICY).unwrap();
    // Termination protection on one instance: EC2 refuses the call yet terminates the
    // others. Then successful calls name half of the same instances again.
    let refused = Burst::new(CLEANUP, "prot")
        .ids_per_call(6)
        .error("Client.OperationNotPermitted")
        .envelopes();
    let mut confirmed = Burst::new(CLEANUP, "prot")
        .at(T0 + 1000)
        .calls(1)
        .ids_per_call(3)
        .envelopes();
    // Same tag: its IDs are the refused call's first three; a new event ID.
    confirmed[0]["detail"]["eventID"] = "prot-confirmed".into();
    let more = Burst::new(CLEANUP, "more")
        .at(T0 + 2000)
        .calls(5)
        .envelopes();
    let events: Vec<Value> = refused.into_iter().chain(confirmed).chain(more).collect();
    for forwards in [true, false] {
        let rig = Rig::new(POLICY);
        let order: Vec<Value> = if forwards {
            events.clone()
        } else {
            events.iter().rev().cloned().collect()
        };
        rig.deliver(&order).await.into_iter().for_each(|r| {
            r.unwrap();
        });
        let stored = rig
            .store
            .current(&key(CLEANUP_ARN, PROD))
            .expect("an incident");
        assert_eq!(
            (
                stored.incident.instances(),
                stored.incident.unconfirmed_ids.len()
            ),
            (11, 3),
            "forwards {forwards}"
        );
        let body: Value = serde_json::from_str(&rig.alerts.sent()[0].json).unwrap();
        // The page went out when the incident opened (10 or 11 instances, by order).
        assert_eq!(body["instances_unconfirmed"], 3, "forwards {forwards}");
        assert_eq!(
            body["instance_ids"].as_array().unwrap().len() as u64,
            body["instances"].as_u64().unwrap()
        );
        let replayed =
            tripwire_engine::replay::replay(&policy, events.iter().map(termination).collect());
        assert_eq!(replayed.incidents[0].instances(), 11);
        assert_eq!(
            replayed.incidents[0].unconfirmed_ids,
            stored.incident.unconfirmed_ids
        );
    }
}

#[tokio::test]
async fn principal_rules_and_change_windows_decide_as_in_the_backtest() {
    let policy_text = format!(
        "{POLICY}\n[principals.\"arn:aws:iam::*:role/emr/*\"]\nthreshold = 5\nwindow = \"1m\"\ncontainment = \"off\"\n\n[[change_windows]]\nprincipal = \"arn:aws:iam::222222222222:role/deploy/ci-deployer\"\nfrom = \"2018-01-09T22:00:00Z\"\nuntil = \"2018-01-09T23:00:00Z\"\n"
    );
    let policy = tripwire_engine::Policy::from_toml(&policy_text).unwrap();
    let rig = Rig::new(&policy_text);
    // Every 20 s: at most four in the rule's one-minute window, though 8 in five minutes.
    let slow = Burst::new("role/emr/EMR_DefaultRole_V2@222222222222", "emr")
        .calls(8)
        .step(20_000)
        .envelopes();
    // Five in ten seconds: the rule's threshold, alert only.
    let fast = Burst::new("role/emr/EMR_DefaultRole_V2@222222222222", "emr-fast")
        .at(T0 + 600_000)
        .calls(5)
        .step(2000)
        .envelopes();
    let planned = Burst::new("role/deploy/ci-deployer@222222222222", "planned")
        .calls(20)
        .envelopes();
    let events: Vec<Value> = slow.into_iter().chain(fast).chain(planned).collect();
    let outcomes: Vec<Outcome> = rig
        .deliver(&events)
        .await
        .into_iter()
        .flat_map(Result::unwrap)
        .collect();
    let opened: Vec<&Outcome> = opened(&outcomes);
    assert!(
        matches!(
            opened[..],
            [Outcome::Opened {
                window_count: 5,
                containment_requested: false,
                ..
            }]
        ),
        "{outcomes:?}"
    );
    let planned_skips = outcomes
        .iter()
        .filter(|o| {
            matches!(
                o,
                Outcome::NotCounted {
                    reason: "change_window",
                    ..
                }
            )
        })
        .count();
    assert_eq!(planned_skips, 20);
    let replayed =
        tripwire_engine::replay::replay(&policy, events.iter().map(termination).collect());
    assert_eq!(replayed.incidents.len(), 1);
    let emr = "arn:aws:iam::222222222222:role/emr/EMR_DefaultRole_V2";
    let stored = rig.store.current(&key(emr, PROD)).unwrap().incident;
    assert_eq!(
        (stored.id, stored.trigger_count),
        (
            replayed.incidents[0].id.clone(),
            replayed.incidents[0].trigger_count
        )
    );
    assert_eq!(replayed.counts.not_counted.get("change_window"), Some(&20));
}

/// An `AssumeRole` envelope as the role's account delivers it.
fn assume(who: &str, role: &str, session: &str, key: &str, at: i64, caller_key: &str) -> Value {
    let caller = tripwire_synth::Caller::parse(who).unwrap();
    let rec = tripwire_synth::assume_role_record(&tripwire_synth::Assume {
        caller: &caller,
        caller_key,
        role_arn: role,
        session,
        access_key: key,
        time: at,
        event_id: &format!("assume-{key}"),
        source_identity: Some("alice@example.com"),
    });
    tripwire_synth::eventbridge_envelope(&rec, &format!("eb-assume-{key}"))
}

const CHAIN_POLICY: &str = r#"
threshold = 10
cross_account_threshold = 1
allowed_accounts = ["111111111111"]
containment = "revoke"
"#;

#[tokio::test]
async fn a_chain_from_another_account_is_joined_across_invocations_and_pages_at_the_cross_account_threshold(
) {
    let rig = Rig::new(CHAIN_POLICY);
    let role = "arn:aws:iam::222222222222:role/ops/admin";
    let a = assume(
        "account/AROADEVTOOL:cleanup@111111111111",
        role,
        "cleanup",
        "PRODADMIN0000001",
        T0 - 60_000,
        "",
    );
    assert!(
        matches!(
            one(&rig, &a).await,
            Outcome::Provenance { recorded: true, .. }
        ),
        "the issue is recorded"
    );
    // A later invocation: the join comes from the store, not from memory.
    let calls = Burst::new("role/ops/admin@222222222222", "chain")
        .session("cleanup")
        .access_key("PRODADMIN0000001")
        .envelopes();
    let out = one(&rig, &calls[0]).await;
    assert!(
        matches!(
            out,
            Outcome::Opened {
                window_count: 1,
                ..
            }
        ),
        "one instance is a burst from another account: {out:?}"
    );
    let stored = rig.store.current(&key(role, PROD)).unwrap().incident;
    let origin = stored.origin.expect("origin");
    assert_eq!(origin.account.as_deref(), Some("111111111111"));
    assert_eq!(origin.via, "AssumeRole");
    assert_eq!(origin.source_identity.as_deref(), Some("alice@example.com"));
    assert!(stored.cross_account);
    let alert = &rig.alerts.sent()[0];
    assert!(
        alert
            .text
            .contains("origin      AROADEVTOOL:cleanup in 111111111111 via AssumeRole"),
        "{}",
        alert.text
    );
    // The same call by a role the key was not issued to gets no origin and counts as
    // its own principal at the ordinary threshold.
    let stolen = Burst::new("role/victim@222222222222", "stolen")
        .access_key("PRODADMIN0000001")
        .envelopes();
    assert!(matches!(
        one(&rig, &stolen[0]).await,
        Outcome::Counted { threshold: 10, .. }
    ));
}

#[tokio::test]
async fn a_reused_access_key_is_refused_and_poisons_the_join() {
    let rig = Rig::new(CHAIN_POLICY);
    let first = assume(
        "account/AROAA:a@111111111111",
        "arn:aws:iam::222222222222:role/a",
        "a",
        "REUSED0000000001",
        T0 - 60_000,
        "",
    );
    let second = assume(
        "account/AROAB:b@111111111111",
        "arn:aws:iam::222222222222:role/b",
        "b",
        "REUSED0000000001",
        T0 - 30_000,
        "",
    );
    assert!(matches!(
        one(&rig, &first).await,
        Outcome::Provenance { recorded: true, .. }
    ));
    assert!(matches!(
        one(&rig, &second).await,
        Outcome::Provenance {
            recorded: false,
            reason: Some("access_key_reused"),
            ..
        }
    ));
    // Even the first role's calls now count without an origin.
    let calls = Burst::new("role/a@222222222222", "a")
        .access_key("REUSED0000000001")
        .envelopes();
    assert!(matches!(
        one(&rig, &calls[0]).await,
        Outcome::Counted { threshold: 10, .. }
    ));
}

#[tokio::test]
async fn the_alert_only_lanes_page_with_their_kind_and_never_ask_for_containment() {
    let rig = Rig::new(
        r#"
threshold = 10
account_threshold = 12
attempt_threshold = 5
service_threshold = 20
containment = "revoke"
"#,
    );
    let mut out = Vec::new();
    for (who, tag, at) in [
        ("role/a@222222222222", "a", T0),
        ("role/b@222222222222", "b", T0 + 30_000),
        ("role/c@222222222222", "c", T0 + 60_000),
    ] {
        for e in Burst::new(who, tag).at(at).calls(5).step(5000).envelopes() {
            out.extend(rig.deliver_one(&e).await.unwrap());
        }
    }
    let lane_opened: Vec<&str> = out
        .iter()
        .filter_map(|o| match o {
            Outcome::Lane { kind, result }
                if matches!(
                    **result,
                    Outcome::Opened {
                        containment_requested: false,
                        ..
                    }
                ) =>
            {
                Some(*kind)
            }
            _ => None,
        })
        .collect();
    assert_eq!(lane_opened, ["account_burst"]);
    for e in Burst::new("role/recon@222222222222", "recon")
        .at(T0 + 100_000)
        .calls(6)
        .error("Client.DryRunOperation")
        .envelopes()
    {
        out.extend(rig.deliver_one(&e).await.unwrap());
    }
    // A group deleted without force (it decided no termination, so it is named, not
    // credited), then the service-linked role scaling in.
    let alice = tripwire_synth::Caller::parse("user/alice@222222222222").unwrap();
    let mut init = tripwire_synth::initiator_record(
        &alice,
        PROD,
        T0 + 110_000,
        "autoscaling.amazonaws.com",
        "DeleteAutoScalingGroup",
        "init-1",
    );
    init["requestParameters"] = serde_json::json!({ "autoScalingGroupName": "web" });
    let init = tripwire_synth::eventbridge_envelope(&init, "eb-init-1");
    assert!(matches!(one(&rig, &init).await, Outcome::Initiator { .. }));
    for e in Burst::new(
        "role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling@222222222222",
        "asg",
    )
    .at(T0 + 120_000)
    .calls(2)
    .ids_per_call(10)
    .invoked_by("autoscaling.amazonaws.com")
    .envelopes()
    {
        out.extend(rig.deliver_one(&e).await.unwrap());
    }
    assert!(
        rig.queue.queued().is_empty(),
        "no lane asks for containment"
    );
    let kinds: Vec<String> = rig
        .alerts
        .sent()
        .iter()
        .map(|a| {
            serde_json::from_str::<Value>(&a.json).unwrap()["incident_kind"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(kinds, ["account_burst", "attempt_burst", "service_burst"]);
    let svc = rig
        .store
        .current(&tripwire_engine::Key::new(
            tripwire_engine::window::Lane::Service,
            "arn:aws:iam::222222222222:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling",
            PROD,
        ))
        .unwrap()
        .incident;
    assert_eq!(
        svc.initiator.map(|i| (i.principal_arn, i.event_name)),
        Some((
            "arn:aws:iam::222222222222:user/alice".to_owned(),
            "DeleteAutoScalingGroup".to_owned()
        ))
    );
    let attempts = rig
        .store
        .current(&tripwire_engine::Key::new(
            tripwire_engine::window::Lane::Attempt,
            "arn:aws:iam::222222222222:role/recon",
            PROD,
        ))
        .unwrap()
        .incident;
    assert_eq!(
        (attempts.attempts, attempts.instances()),
        (6, 0),
        "five opened it, the sixth joined"
    );
}

const ASG_ROLE: &str =
    "role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling@222222222222";

/// Alice's forced deletion of group `web`, as EventBridge delivers it.
fn forced_delete(at: i64, id: &str) -> Value {
    let alice = tripwire_synth::Caller::parse("user/alice@222222222222").unwrap();
    let mut r = tripwire_synth::initiator_record(
        &alice,
        PROD,
        at,
        "autoscaling.amazonaws.com",
        "DeleteAutoScalingGroup",
        id,
    );
    r["requestParameters"] =
        serde_json::json!({ "autoScalingGroupName": "web", "forceDelete": true });
    tripwire_synth::eventbridge_envelope(&r, &format!("eb-{id}"))
}

#[tokio::test]
async fn a_forced_group_deletion_is_the_deleters_burst_contained_with_one_page() {
    let rig = Rig::new(
        r#"
threshold = 10
service_threshold = 20
containment = "revoke"
"#,
    );
    assert!(matches!(
        one(&rig, &forced_delete(T0, "init-force")).await,
        Outcome::Initiator { .. }
    ));
    let scale_in = Burst::new(ASG_ROLE, "force")
        .at(T0 + 60_000)
        .calls(5)
        .ids_per_call(10)
        .invoked_by("autoscaling.amazonaws.com")
        .envelopes();
    let mut out = Vec::new();
    for e in &scale_in {
        out.extend(rig.deliver_one(e).await.unwrap());
    }
    assert!(
        !out.iter().any(|o| matches!(
            o,
            Outcome::Lane {
                kind: "service_burst",
                ..
            }
        )),
        "credited calls leave the service lane: {out:?}"
    );
    assert_eq!(rig.alerts.kinds(), ["detected"], "one page, not two");
    let queued = rig.queue.queued();
    assert_eq!(queued.len(), 1);
    assert_eq!(
        queued[0].principal_arn,
        "arn:aws:iam::222222222222:user/alice"
    );
    let stored = rig
        .store
        .current(&key("arn:aws:iam::222222222222:user/alice", PROD))
        .unwrap();
    assert_eq!(stored.incident.instances(), 50);
    let via = stored.incident.via.clone().unwrap();
    assert_eq!(via.service, "autoscaling.amazonaws.com");
    assert!(via.principal_arn.ends_with("/AWSServiceRoleForAutoScaling"));
    assert_eq!(
        stored
            .incident
            .initiator
            .as_ref()
            .map(|i| i.event_id.as_str()),
        Some("init-force")
    );
    // The page says who, and through which service.
    let page: Value = serde_json::from_str(&rig.alerts.sent()[0].json).unwrap();
    assert_eq!(page["via"]["service"], "autoscaling.amazonaws.com");
    assert_eq!(
        page["principal_arn"],
        "arn:aws:iam::222222222222:user/alice"
    );
}

#[tokio::test]
async fn a_service_termination_counts_where_its_first_delivery_did_when_the_initiator_arrives_late()
{
    let rig = Rig::new(
        r#"
threshold = 10
service_threshold = 20
containment = "revoke"
"#,
    );
    let scale_in = Burst::new(ASG_ROLE, "late")
        .at(T0 + 60_000)
        .calls(3)
        .ids_per_call(10)
        .invoked_by("autoscaling.amazonaws.com")
        .envelopes();
    // The first delivery finds no initiator: the service lane.
    for e in &scale_in {
        let out = rig.deliver_one(e).await.unwrap();
        assert!(
            matches!(
                out[0],
                Outcome::NotCounted {
                    reason: "service_linked_role",
                    ..
                }
            ),
            "{out:?}"
        );
    }
    // The deleter's record arrives late (it was made before the terminations), then
    // EventBridge redelivers the terminations: they stay where they were counted.
    one(&rig, &forced_delete(T0, "init-late")).await;
    for e in &scale_in {
        let out = rig.deliver_one(e).await.unwrap();
        assert!(
            matches!(&out[1], Outcome::Lane { kind: "service_burst", result } if matches!(**result, Outcome::Duplicate { .. })),
            "{out:?}"
        );
    }
    assert!(rig
        .store
        .current(&key("arn:aws:iam::222222222222:user/alice", PROD))
        .is_none());
    assert!(rig.queue.queued().is_empty());
    // A later termination, delivered after the deleter's record, is credited.
    let next = Burst::new(ASG_ROLE, "late-next")
        .at(T0 + 90_000)
        .ids_per_call(10)
        .invoked_by("autoscaling.amazonaws.com")
        .envelopes();
    let out = rig.deliver_one(&next[0]).await.unwrap();
    assert!(
        matches!(
            out[0],
            Outcome::Counted {
                window_count: 10,
                ..
            } | Outcome::Opened { .. }
        ),
        "{out:?}"
    );
}

#[tokio::test]
async fn the_lambda_path_takes_only_eventbridge_envelopes_that_agree_with_their_record() {
    let rig = Rig::new(POLICY);
    let deadline = T0 + 60_000;
    let envelope = Burst::new("role/app@222222222222", "eb")
        .envelopes()
        .remove(0);
    let record = envelope["detail"].clone();
    let mut other_region = envelope.clone();
    other_region["region"] = "eu-west-1".into();
    let mut other_account = envelope.clone();
    other_account["account"] = "333333333333".into();
    let mut unstamped = envelope.clone();
    unstamped.as_object_mut().unwrap().remove("region");
    let cases = [
        ("a bare record", record.clone(), "not_an_eventbridge_event"),
        (
            "an array of records",
            Value::Array(vec![record.clone(), record]),
            "not_an_eventbridge_event",
        ),
        (
            "an envelope without a region",
            unstamped,
            "not_an_eventbridge_event",
        ),
        (
            "another region than the record's",
            other_region,
            "envelope_mismatch",
        ),
        (
            "another account than the record's",
            other_account,
            "envelope_mismatch",
        ),
    ];
    for (name, event, reason) in cases {
        let out = rig
            .detector
            .handle_eventbridge(&event.to_string(), deadline)
            .await
            .unwrap();
        assert_eq!(out, [Outcome::Skipped { reason }], "{name}");
    }
    // The envelope as EventBridge delivers it counts.
    let out = rig
        .detector
        .handle_eventbridge(&envelope.to_string(), deadline)
        .await
        .unwrap();
    assert!(matches!(out[..], [Outcome::Counted { .. }]), "{out:?}");
}

#[tokio::test]
async fn the_canarys_calls_are_heartbeats_with_their_delivery_delay_and_never_attempts() {
    // With the attempt lane at its lowest, a canary counted as a failed call would page.
    let rig = Rig::new(&format!("attempt_threshold = 1\n{POLICY}"));
    let envelopes: Vec<Value> = (0..12)
        .map(|k| {
            let id = format!("canary-{k}");
            let rec = tripwire_synth::canary_record(PROD, "us-east-1", T0 + k * 600_000, &id);
            tripwire_synth::eventbridge_envelope(&rec, &id)
        })
        .collect();
    for e in &envelopes {
        let time = tripwire_engine::time::parse_event_time(e["time"].as_str().unwrap()).unwrap();
        rig.clock.set(time + 2_500);
        match one(&rig, e).await {
            Outcome::Heartbeat {
                account,
                region,
                latency_ms,
                ..
            } => assert_eq!(
                (account.as_str(), region.as_str(), latency_ms),
                (PROD, "us-east-1", 2_500)
            ),
            other => panic!("{other:?}"),
        }
    }
    assert!(rig.alerts.kinds().is_empty(), "{:?}", rig.alerts.kinds());
    // A redelivery of the last one is answered, and recorded once.
    one(&rig, envelopes.last().unwrap()).await;
    let last = tripwire_engine::time::parse_event_time(
        envelopes.last().unwrap()["time"].as_str().unwrap(),
    )
    .unwrap();
    assert_eq!(
        rig.store.heartbeats(),
        [((PROD.to_owned(), "us-east-1".to_owned()), (last, 12))].into()
    );
    // The same call on any other instance is the canary role failing a real call: an
    // attempt, which this policy pages on.
    let mut real = envelopes[0].clone();
    real["detail"]["requestParameters"]["instancesSet"]["items"] =
        serde_json::json!([{ "instanceId": "i-0123456789abcdef0" }]);
    real["detail"]["eventID"] = "not-the-canary".into();
    let out = rig.deliver_one(&real).await.unwrap();
    assert!(
        matches!(out[..], [Outcome::Attempt { .. }, Outcome::Lane { .. }]),
        "{out:?}"
    );
    assert_eq!(rig.alerts.kinds(), ["detected"]);
}

fn eventbridge(source: &str, name: &str, who: &str, params: Value, id: &str) -> Value {
    tripwire_synth::api_envelope(source, name, who, &params, id, T0)
}

#[tokio::test]
async fn a_call_that_disarms_the_tripwire_pages_once_and_a_failed_page_is_retried() {
    let key_arn = "arn:aws:kms:us-east-1:222222222222:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let rig = Rig::new(&format!("tripwire_keys = [\"{key_arn}\"]\n{POLICY}"));
    let stop = eventbridge(
        "cloudtrail.amazonaws.com",
        "StopLogging",
        "role/Admin@222222222222",
        serde_json::json!({"name": "org-trail"}),
        "stop-1",
    );
    rig.alerts.faults.fail_next("publish", 1);
    assert!(
        rig.deliver_one(&stop).await.is_err(),
        "a failed page fails the invocation"
    );
    assert_eq!(
        one(&rig, &stop).await,
        Outcome::Tamper {
            event_id: "stop-1".into()
        }
    );
    assert_eq!(
        one(&rig, &stop).await,
        Outcome::Duplicate {
            event_id: "stop-1".into()
        }
    );
    let sent = rig.alerts.sent();
    assert_eq!(rig.alerts.kinds(), ["tamper"]);
    assert_eq!(
        sent[0].subject,
        "TRIPWIRE TAMPER: StopLogging on org-trail in 222222222222 by role/Admin"
    );
    let body: Value = serde_json::from_str(&sent[0].json).unwrap();
    assert_eq!(
        (&body["type"], &body["principal_arn"], &body["target"]),
        (
            &"tamper".into(),
            &"arn:aws:iam::222222222222:role/Admin".into(),
            &"org-trail".into()
        )
    );
    // The tripwire's own key, named by the policy, and someone else's.
    for (id, key, paged) in [
        ("kms-1", key_arn, true),
        ("kms-2", "ffffffff-12ab-34cd-56ef-1234567890ab", false),
    ] {
        let e = eventbridge(
            "kms.amazonaws.com",
            "DisableKey",
            "role/Admin@222222222222",
            serde_json::json!({ "keyId": key }),
            id,
        );
        let got = one(&rig, &e).await;
        assert_eq!(
            matches!(got, Outcome::Tamper { .. }),
            paged,
            "{id}: {got:?}"
        );
    }
    // The release role lifting the tripwire's own policy is no tampering.
    let release = eventbridge(
        "iam.amazonaws.com",
        "DeleteRolePolicy",
        "role/tripwire-release@222222222222",
        serde_json::json!({"roleName": "cleanup-task", "policyName": "tripwire-contain-scope"}),
        "release-1",
    );
    assert_eq!(one(&rig, &release).await, Outcome::OtherEvent);
    assert_eq!(rig.alerts.kinds(), ["tamper", "tamper"]);
}

#[tokio::test]
async fn recontain_writes_a_lifted_policy_back_once_per_incident() {
    let lift = |id: &str| {
        eventbridge(
            "iam.amazonaws.com",
            "DeleteRolePolicy",
            "role/Admin@222222222222",
            serde_json::json!({"roleName": "cleanup-task", "policyName": "tripwire-contain-scope"}),
            id,
        )
    };
    for (recontain, requests) in [(true, 2), (false, 1)] {
        let policy = format!("recontain = {recontain}\n{POLICY}");
        let rig = Rig::new(&policy);
        for e in Burst::new(CLEANUP, "seed").calls(10).step(1000).envelopes() {
            one(&rig, &e).await;
        }
        let first = rig.queue.queued().remove(0);
        rig.responder.handle(first.clone()).await.unwrap();
        assert_eq!(rig.alerts.kinds(), ["detected", "contained"]);
        // Someone deletes the tripwire's deny, twice.
        for id in ["lift-1", "lift-2"] {
            assert!(matches!(one(&rig, &lift(id)).await, Outcome::Tamper { .. }));
        }
        let queued = rig.queue.queued();
        assert_eq!(queued.len(), requests, "recontain = {recontain}");
        assert!(queued.iter().all(|q| *q == first), "the same incident");
        let texts: Vec<String> = rig
            .alerts
            .sent()
            .into_iter()
            .filter(|a| a.kind.as_str() == "tamper")
            .map(|a| a.text)
            .collect();
        if recontain {
            assert!(texts[0].contains("Recontain requested"), "{}", texts[0]);
            assert!(
                texts[1].contains("Recontain done once already"),
                "{}",
                texts[1]
            );
            // The responder re-applies the plan and pages nothing new for it.
            rig.responder.handle(queued[1].clone()).await.unwrap();
            assert_eq!(
                rig.alerts.kinds(),
                ["detected", "contained", "tamper", "tamper"]
            );
        } else {
            assert!(texts.iter().all(|t| !t.contains("Recontain")), "{texts:?}");
        }
    }
}

/// A catalogued call (a destruction or a precursor) by `who` at `at` naming `id`, as
/// EventBridge delivers it.
fn catalogued(name: &str, who: &str, at: i64, id: &str, event_id: &str) -> Value {
    let caller = tripwire_synth::Caller::parse(who).unwrap();
    let w = tripwire_engine::catalogue::every()
        .find(|w| w.event_name == name)
        .unwrap();
    let r = tripwire_synth::destroy_record(w, &caller, PROD, "us-east-1", at, id, event_id, None);
    tripwire_synth::eventbridge_envelope(&r, &format!("eb-{event_id}"))
}

#[tokio::test]
async fn precursors_are_listed_on_the_wipe_that_follows_and_a_burst_of_them_alone_only_pages() {
    let rig = Rig::new(POLICY);
    let app = "role/app@222222222222";
    // Two databases' deletion protection off; one record delivered twice.
    let first = catalogued("ModifyDBInstance", app, T0, "orders", "pre-0");
    for e in [&first, &first] {
        rig.deliver_one(e).await.unwrap();
    }
    let second = catalogued("ModifyDBInstance", app, T0 + 60_000, "billing", "pre-1");
    assert!(matches!(
        one(&rig, &second).await,
        Outcome::Counted {
            window_count: 2,
            threshold: 10,
            ..
        }
    ));
    assert!(rig.alerts.kinds().is_empty(), "two precursors page nobody");
    // Then the wipe: rds:db pages at three, listing what its principal prepared.
    for k in 0..3 {
        let e = catalogued(
            "DeleteDBInstance",
            app,
            T0 + (5 + k) * 60_000,
            &format!("db-{k}"),
            &format!("del-{k}"),
        );
        rig.deliver_one(&e).await.unwrap();
    }
    assert_eq!(rig.alerts.kinds(), ["detected"]);
    let wipe = &rig.alerts.sent()[0];
    let page: Value = serde_json::from_str(&wipe.json).unwrap();
    assert_eq!(page["resource_type"], "rds:db");
    let listed: Vec<(&str, &str)> = page["precursors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["event_name"].as_str().unwrap(),
                p["resources"][0].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("ModifyDBInstance", "orders"),
            ("ModifyDBInstance", "billing")
        ],
        "each once, oldest first"
    );
    assert!(wipe
        .text
        .contains("Precursors: protections the principal removed (2)"));
    assert_eq!(rig.queue.queued().len(), 1, "the wipe is contained");

    // Ten protections removed by another principal within the hour, and nothing else:
    // one alert-only page, no containment asked for.
    let ops = "role/ops@222222222222";
    for k in 0..10 {
        let e = catalogued(
            "ModifyInstanceAttribute",
            ops,
            T0 + k * 60_000,
            &format!("i-{k:017x}"),
            &format!("ops-{k}"),
        );
        rig.deliver_one(&e).await.unwrap();
    }
    assert_eq!(rig.alerts.kinds(), ["detected", "detected"]);
    let burst = &rig.alerts.sent()[1];
    let page: Value = serde_json::from_str(&burst.json).unwrap();
    assert_eq!(page["incident_kind"], "precursor_burst");
    assert_eq!(page["resource_type"], "precursor");
    assert_eq!(page["instances"], 10);
    assert_eq!(page["precursors"].as_array().unwrap().len(), 10);
    assert_eq!(page["containment"]["action"], "none");
    assert!(
        burst.subject.contains("10 protections removed"),
        "{}",
        burst.subject
    );
    assert_eq!(
        rig.queue.queued().len(),
        1,
        "a precursor burst never contains"
    );
}

#[tokio::test]
async fn a_burst_delivered_late_or_replayed_from_an_archive_pages_and_contains_no_one() {
    for (name, late, replay) in [
        ("two hours late", 2 * 3_600_000, None),
        ("replayed on time", 0, Some("org-trail-replay")),
    ] {
        let rig = Rig::new(POLICY);
        rig.clock.set(T0 + 5_000 + late);
        for mut e in Burst::new(CLEANUP, "old").calls(10).envelopes() {
            if let Some(r) = replay {
                e["replay-name"] = r.into();
            }
            rig.deliver_one(&e).await.unwrap();
        }
        assert_eq!(rig.alerts.kinds(), ["detected"], "{name}: still paged");
        let page: Value = serde_json::from_str(&rig.alerts.sent()[0].json).unwrap();
        assert_eq!(page["containment"]["action"], "none", "{name}");
        let reason = page["containment"]["reason"].as_str().unwrap();
        let want = if replay.is_some() {
            "replayed from an EventBridge archive (`org-trail-replay`)"
        } else {
            "past its window plus max_delivery_delay (65 min)"
        };
        assert!(reason.contains(want), "{name}: {reason}");
        assert!(
            rig.queue.queued().is_empty(),
            "{name}: no containment asked for"
        );
    }
    // An hour late is within the default max_delivery_delay: contained as usual.
    let rig = Rig::new(POLICY);
    rig.clock.set(T0 + 3_600_000);
    for e in Burst::new(CLEANUP, "late-but-live").calls(10).envelopes() {
        rig.deliver_one(&e).await.unwrap();
    }
    assert_eq!(rig.queue.queued().len(), 1);
}

#[tokio::test]
async fn the_responder_brakes_the_role_a_chain_began_with_beside_the_culprit() {
    let rig = Rig::new(CHAIN_POLICY);
    let role = "arn:aws:iam::222222222222:role/ops/admin";
    // The origin account's own record of the assumption names the role it came from.
    let a = assume(
        "role/dev-tool@333333333333",
        role,
        "cleanup",
        "PRODADMIN0000002",
        T0 - 60_000,
        "ASIADEVTOOL00001",
    );
    one(&rig, &a).await;
    let calls = Burst::new("role/ops/admin@222222222222", "chained")
        .session("cleanup")
        .access_key("PRODADMIN0000002")
        .envelopes();
    assert!(matches!(one(&rig, &calls[0]).await, Outcome::Opened { .. }));
    let req = rig.queue.queued()[0].clone();
    rig.responder.handle(req).await.unwrap();
    let applied = rig.contain.applied();
    let whom: Vec<Option<&str>> = applied.iter().map(|p| p.principal_arn()).collect();
    assert_eq!(
        whom,
        [Some(role), Some("arn:aws:iam::333333333333:role/dev-tool")],
        "the culprit first, then the chain's origin"
    );
    assert_eq!(applied[1].managed, ["tripwire-brake"]);
    let detail = contained_detail(&rig);
    assert!(
        detail.contains(
            "the chain's origin arn:aws:iam::333333333333:role/dev-tool: tripwire-brake in place"
        ),
        "{detail}"
    );
    // IAM refusing the origin leaves the culprit contained and says so.
    let rig = Rig::new(CHAIN_POLICY);
    one(&rig, &a).await;
    one(&rig, &calls[0]).await;
    rig.contain.paths.lock().unwrap().insert(
        "arn:aws:iam::333333333333:role/dev-tool".into(),
        "arn:aws:iam::333333333333:role/renamed".into(),
    );
    let req = rig.queue.queued()[0].clone();
    let out = rig.responder.handle(req).await.unwrap();
    assert!(
        matches!(out, tripwire_pipeline::ResponderOutcome::Contained { .. }),
        "{out:?}"
    );
    assert_eq!(rig.contain.applied().len(), 1);
    let detail = contained_detail(&rig);
    assert!(detail.contains("was not braked: IAM names"), "{detail}");
}

/// What the last `contained` alert says landed.
fn contained_detail(rig: &Rig) -> String {
    let sent = rig.alerts.sent();
    let alert = sent
        .iter()
        .rev()
        .find(|a| a.kind == tripwire_engine::alert::AlertKind::Contained)
        .expect("a contained alert");
    let json: Value = serde_json::from_str(&alert.json).unwrap();
    json["containment_status"]["detail"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn a_reactivated_access_key_pages_only_for_a_user_the_tripwire_contains() {
    let rig = Rig::new(POLICY);
    for e in Burst::new("user/alice@222222222222", "seed")
        .calls(10)
        .step(1000)
        .envelopes()
    {
        one(&rig, &e).await;
    }
    let first = rig.queue.queued().remove(0);
    rig.responder.handle(first).await.unwrap();
    assert_eq!(rig.alerts.kinds(), ["detected", "contained"]);
    // IAM logs UpdateAccessKey's members in lower camel case (userName, accessKeyId,
    // status), as its API names them.
    let update = |user: &str, status: &str, id: &str| {
        eventbridge(
            "iam.amazonaws.com",
            "UpdateAccessKey",
            "role/Admin@222222222222",
            serde_json::json!({"userName": user, "accessKeyId": "AKIAIOSFODNN7EXAMPLE", "status": status}),
            id,
        )
    };
    assert!(matches!(
        one(&rig, &update("alice", "Active", "k-1")).await,
        Outcome::Tamper { .. }
    ));
    // Another user's key, and a key made inactive, are the account's own business.
    assert_eq!(
        one(&rig, &update("bob", "Active", "k-2")).await,
        Outcome::OtherEvent
    );
    assert_eq!(
        one(&rig, &update("alice", "Inactive", "k-3")).await,
        Outcome::OtherEvent
    );
    assert_eq!(rig.alerts.kinds(), ["detected", "contained", "tamper"]);
    let tamper = rig.alerts.sent().pop().unwrap();
    assert!(
        tamper
            .subject
            .contains("user/alice policy/key/AKIAIOSFODNN7EXAMPLE"),
        "{}",
        tamper.subject
    );
}
