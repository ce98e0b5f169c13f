//! The shutdown-wave lane in-process, on the in-memory ports: EC2's state-change events
//! page before CloudTrail says who; the records, late, shuffled and redelivered, name
//! the caller on the wave's page while the caller's own burst is contained as usual; a
//! wave no record claims stays alert-only; each instance counts once.

mod support;

use serde_json::Value;
use support::{Rig, POLICY};
use tripwire_pipeline::Outcome;
use tripwire_synth::Burst;

const CLEANUP: &str = "role/vendor/cleanup-task@222222222222";
const CLEANUP_ARN: &str = "arn:aws:iam::222222222222:role/vendor/cleanup-task";
const PROD: &str = "222222222222";

fn policy() -> String {
    format!("{POLICY}state_change_threshold = 20\nstate_change_window = \"5m\"\n")
}

/// The wipe: 30 calls of 2 instances, a second apart.
fn wipe() -> Burst {
    Burst::new(CLEANUP, "wave")
        .calls(30)
        .ids_per_call(2)
        .step(1000)
}

/// The `result` of each state-change outcome, in order.
async fn deliver_changes(rig: &Rig, events: &[Value]) -> Vec<&'static str> {
    let mut out = Vec::new();
    for e in events {
        for o in rig.deliver_one(e).await.expect("delivered") {
            match o {
                Outcome::StateChange { result, .. } => out.push(result),
                other => panic!("{other:?}"),
            }
        }
    }
    out
}

fn json(a: &tripwire_engine::alert::Alert) -> Value {
    serde_json::from_str(&a.json).unwrap()
}

/// A fixed shuffle: odd positions backwards, then even ones forwards.
fn shuffled<T: Clone>(v: &[T]) -> Vec<T> {
    let odd = v.iter().skip(1).step_by(2).rev();
    let even = v.iter().step_by(2);
    odd.chain(even).cloned().collect()
}

#[tokio::test]
async fn a_wave_pages_before_cloudtrail_and_its_page_names_the_caller_the_records_contain() {
    let rig = Rig::new(&policy());
    let burst = wipe();
    let changes = burst.state_changes("shutting-down", 2000);
    let results = deliver_changes(&rig, &changes).await;
    assert_eq!(results[..19], ["counted"; 19]);
    assert_eq!(results[19], "opened");
    assert_eq!(results[20..], ["joined"; 40]);
    // Only the first page: the clock stands still, so the update gap never passes.
    assert_eq!(rig.alerts.kinds(), ["shutdown_wave"]);
    let page = json(&rig.alerts.sent()[0]);
    assert_eq!(page["stage"], "opened");
    assert_eq!(page["kind"], "shutdown_wave");
    assert_eq!(
        (page["instances"].as_u64(), page["unclaimed_count"].as_u64()),
        (Some(20), Some(20))
    );
    assert_eq!(page["claimed_by"], serde_json::json!([]));
    assert!(rig.queue.queued().is_empty(), "a wave contains no one");

    // EC2's `terminated` events for the same instances, and a redelivery: each instance
    // counted once.
    let again: Vec<Value> = burst
        .state_changes("terminated", 30_000)
        .into_iter()
        .chain(changes.iter().take(5).cloned())
        .collect();
    assert_eq!(deliver_changes(&rig, &again).await, ["repeat"; 65]);
    let wave = rig.store.wave_of(PROD, "us-east-1").unwrap();
    assert_eq!(wave.wave.instances, 60);

    // CloudTrail, late, shuffled, each record twice.
    let records = burst.envelopes();
    let late: Vec<Value> = shuffled(&records)
        .into_iter()
        .chain(records.clone())
        .collect();
    let mut claimed = Vec::new();
    for e in &late {
        for o in rig.deliver_one(e).await.unwrap() {
            if let Outcome::WaveClaimed { wave, page, .. } = o {
                claimed.push((wave, page));
            }
        }
    }
    assert!(claimed.iter().all(|(w, _)| *w == wave.wave.id));
    assert_eq!(
        claimed.iter().filter(|(_, page)| *page).count(),
        1,
        "{claimed:?}"
    );
    // The first record names the caller on the wave's page, before the caller's own
    // burst crosses its threshold; then that burst's page and containment.
    assert_eq!(
        rig.alerts.kinds(),
        ["shutdown_wave", "shutdown_wave", "detected"]
    );
    let named = json(&rig.alerts.sent()[1]);
    assert_eq!(named["stage"], "claimed");
    assert_eq!(named["claimed_by"][0]["principal_arn"], CLEANUP_ARN);
    let queued = rig.queue.queued();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].principal_arn, CLEANUP_ARN);
    let wave = rig.store.wave_of(PROD, "us-east-1").unwrap();
    assert_eq!((wave.wave.instances, wave.claimed), (60, 60));
    assert_eq!(wave.wave.claimed_by.len(), 1);
    assert_eq!(wave.wave.claimed_by[0].instances, 60);
}

#[tokio::test]
async fn records_before_their_instances_events_are_credited_when_the_instances_join() {
    let rig = Rig::new(&policy());
    let burst = wipe();
    let changes = burst.state_changes("shutting-down", 2000);
    // Before any of the pair's events, a record names no one: one read, no writes.
    let early = Burst::new(CLEANUP, "early").calls(1).ids_per_call(3);
    rig.deliver_one(&early.envelopes()[0]).await.unwrap();
    // EC2's first event for the pair, then CloudTrail ahead of the rest: the first ten
    // calls' records, before their instances' events.
    deliver_changes(&rig, &changes[..1]).await;
    for e in burst.envelopes().iter().take(10) {
        rig.deliver_one(e).await.unwrap();
    }
    deliver_changes(&rig, &shuffled(&changes[1..])).await;
    deliver_changes(&rig, &early.state_changes("shutting-down", 0)).await;
    let wave = rig.store.wave_of(PROD, "us-east-1").unwrap();
    assert_eq!((wave.wave.instances, wave.claimed), (63, 20));
    let opened = rig
        .alerts
        .sent()
        .into_iter()
        .find(|a| a.kind.as_str() == "shutdown_wave")
        .unwrap();
    let page = json(&opened);
    assert_eq!(
        page["instances"].as_u64().unwrap() as usize,
        page["instance_ids"].as_array().unwrap().len()
    );
    let claimed_on_page = page["claimed_by"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["instances"].as_u64().unwrap())
        .sum::<u64>();
    assert_eq!(
        claimed_on_page + page["unclaimed_count"].as_u64().unwrap(),
        page["instances"].as_u64().unwrap()
    );
}

#[tokio::test]
async fn a_wave_no_record_claims_stays_alert_only_and_names_its_instances_unclaimed() {
    let rig = Rig::new(&policy());
    let burst = Burst::new("role/web@333333333333", "spot")
        .calls(25)
        .step(500);
    let results = deliver_changes(&rig, &burst.state_changes("terminated", 0)).await;
    assert_eq!(results.iter().filter(|r| **r == "opened").count(), 1);
    let page = json(&rig.alerts.sent()[0]);
    assert_eq!(page["account"], "333333333333");
    assert_eq!(page["unclaimed_count"], 20);
    assert_eq!(page["unclaimed"].as_array().unwrap().len(), 20);
    assert!(rig.alerts.sent()[0]
        .text
        .contains("no CloudTrail record has named a caller yet"));
    assert!(rig.queue.queued().is_empty());
}

#[tokio::test]
async fn allowed_accounts_and_a_lane_turned_off_count_nothing() {
    let rig = Rig::new(&policy());
    let allowed = Burst::new("role/x@111111111111", "allowed").calls(30);
    let results = deliver_changes(&rig, &allowed.state_changes("shutting-down", 0)).await;
    assert_eq!(results, ["allowed"; 30]);
    let off = Rig::new(&format!("{POLICY}state_change_threshold = 0\n"));
    let results = deliver_changes(&off, &wipe().state_changes("shutting-down", 0)).await;
    assert_eq!(results, ["off"; 60]);
    assert!(rig.alerts.sent().is_empty() && off.alerts.sent().is_empty());
}

#[tokio::test]
async fn a_failed_first_page_is_retried_by_the_same_event_and_goes_out_once() {
    let rig = Rig::new(&policy());
    let changes = wipe().state_changes("shutting-down", 2000);
    deliver_changes(&rig, &changes[..19]).await;
    rig.alerts.faults.fail_next("publish", 1);
    assert!(rig.deliver_one(&changes[19]).await.is_err());
    assert!(rig.alerts.sent().is_empty());
    // Lambda's retry of the same event: its lease was given up.
    assert_eq!(
        deliver_changes(&rig, &changes[19..21]).await,
        ["joined", "joined"]
    );
    assert_eq!(rig.alerts.kinds(), ["shutdown_wave"]);
    assert_eq!(
        rig.store.wave_of(PROD, "us-east-1").unwrap().wave.instances,
        21
    );
}

#[tokio::test]
async fn grown_waves_are_paged_again_at_most_once_a_minute() {
    let rig = Rig::new(&policy());
    let changes = wipe().state_changes("shutting-down", 2000);
    deliver_changes(&rig, &changes[..30]).await;
    rig.clock
        .advance(tripwire_pipeline::detector::UPDATE_GAP_MS);
    deliver_changes(&rig, &changes[30..]).await;
    assert_eq!(rig.alerts.kinds(), ["shutdown_wave", "shutdown_wave"]);
    assert_eq!(json(&rig.alerts.sent()[1])["stage"], "grew");
}

#[tokio::test]
async fn the_detector_and_the_backtest_report_the_same_wave() {
    let rig = Rig::new(&policy());
    let burst = wipe();
    let changes = burst.state_changes("shutting-down", 2000);
    deliver_changes(&rig, &changes).await;
    for e in burst.envelopes() {
        rig.deliver_one(&e).await.unwrap();
    }
    let live = rig.store.wave_of(PROD, "us-east-1").unwrap();
    let mut events = tripwire_engine::Events::default();
    for e in changes.iter().chain(&burst.envelopes()) {
        tripwire_engine::scan_events(&e.to_string(), &mut Default::default(), &mut events).unwrap();
    }
    let policy = tripwire_engine::Policy::from_toml(&policy()).unwrap();
    let replay = tripwire_engine::replay::replay_events(&policy, events);
    assert_eq!(replay.waves.len(), 1);
    let b = &replay.waves[0];
    assert_eq!(
        (
            &b.id,
            b.instances,
            b.trigger_count,
            b.trigger_time,
            b.first_event_time
        ),
        (
            &live.wave.id,
            live.wave.instances,
            live.wave.trigger_count,
            live.wave.trigger_time,
            live.wave.first_event_time
        )
    );
    assert_eq!(b.claimed_by, live.wave.claimed_by);
    assert!(b.unclaimed.is_empty() && live.claimed == live.wave.instances);
}

#[tokio::test]
async fn past_its_bound_a_wave_pages_its_unclaimed_instances_once_and_a_claimed_one_closes_quietly()
{
    use tripwire_pipeline::watchdog::{Paged, Watchdog};
    let rig = Rig::new(&format!("{}max_delivery_delay = \"10m\"\n", policy()));
    let dog = Watchdog::new(
        rig.store.clone(),
        rig.alerts.clone(),
        rig.clock.clone(),
        600_000,
    )
    .with_wave_bound(600_000);
    // One wave half claimed (records for the first 15 calls' 30 instances), one never.
    let burst = wipe();
    deliver_changes(&rig, &burst.state_changes("shutting-down", 2000)).await;
    for e in burst.envelopes().iter().take(15) {
        rig.deliver_one(e).await.unwrap();
    }
    let quiet = Burst::new("role/web@222222222222", "quiet")
        .region("eu-west-1")
        .calls(25)
        .step(500);
    deliver_changes(&rig, &quiet.state_changes("terminated", 0)).await;
    // A third, all claimed.
    let claimed = Burst::new("role/ci@333333333333", "claimed")
        .calls(25)
        .step(500);
    deliver_changes(&rig, &claimed.state_changes("terminated", 1000)).await;
    for e in claimed.envelopes() {
        rig.deliver_one(&e).await.unwrap();
    }
    let before = rig.alerts.sent().len();
    // The last instances went at T0 + 31 s (the wipe), + 12 s and + 13 s: within the
    // bound nothing closes.
    let run = |at: i64| {
        rig.clock.set(support::T0 + at);
        dog.run(support::T0 + at + 60_000)
    };
    assert_eq!(run(600_000).await.unwrap(), []);
    rig.alerts.faults.fail_next("publish", 1);
    assert!(run(640_000).await.is_err(), "a failed page fails the run");
    let paged = run(640_000).await.unwrap();
    let mut closed: Vec<(String, usize)> = paged
        .iter()
        .map(|p| match p {
            Paged::WaveClosed {
                region, unclaimed, ..
            } => (region.clone(), *unclaimed),
            other => panic!("{other:?}"),
        })
        .collect();
    closed.sort();
    assert_eq!(
        closed,
        [("eu-west-1".to_owned(), 25), ("us-east-1".to_owned(), 30)]
    );
    let pages: Vec<Value> = rig.alerts.sent()[before..].iter().map(json).collect();
    assert_eq!(pages.len(), 2, "the all-claimed wave closed quietly");
    assert!(pages.iter().all(|p| p["stage"] == "closed"));
    let us = pages.iter().find(|p| p["region"] == "us-east-1").unwrap();
    assert_eq!(us["unclaimed_count"], 30);
    assert_eq!(us["claimed_by"][0]["instances"], 30);
    assert!(rig
        .alerts
        .sent()
        .last()
        .unwrap()
        .subject
        .starts_with("TRIPWIRE SHUTDOWN WAVE CLOSED: "));
    // Closed once: the next run has nothing left.
    assert_eq!(run(900_000).await.unwrap(), []);
}

/// Every step of the lane failing once, at every point of a wave's life: Lambda's retry
/// of the failed event finishes it, and the wave ends exactly as without the faults:
/// every instance counted and credited once, one first page, one page per caller.
#[tokio::test]
async fn a_fault_at_any_step_is_finished_by_the_retry_and_counts_nothing_twice() {
    const OPS: &[(&str, bool)] = &[
        ("record_change", false),
        ("changes", false),
        ("any_change", false),
        ("wave", false),
        ("open_wave", false),
        ("join_wave", false),
        ("name_callers", false),
        ("set_wave_alerted", false),
        ("claim_wave_page", false),
        ("callers", false),
        ("claim_once", false),
        ("settle_change", false),
        ("publish", true),
    ];
    let burst = wipe();
    let mut events = burst.state_changes("shutting-down", 2000);
    // The records interleaved with the later events.
    let records = burst.envelopes();
    for (k, r) in records.iter().enumerate() {
        events.insert(30 + 2 * k, r.clone());
    }
    for &(op, alerts) in OPS {
        for at in [0, 19, 25, 40, 70] {
            let rig = Rig::new(&policy());
            for (k, e) in events.iter().enumerate() {
                if k == at {
                    if alerts {
                        rig.alerts.faults.fail_next(op, 1);
                    } else {
                        rig.store.faults.fail_next(op, 1);
                    }
                }
                let mut tries = 0;
                while rig.deliver_one(e).await.is_err() {
                    // Lambda's retry comes after the invocation's lease ran out.
                    rig.clock.advance(61_000);
                    tries += 1;
                    assert!(tries < 3, "{op} at {at}: still failing");
                }
            }
            let wave = rig.store.wave_of(PROD, "us-east-1").expect("a wave");
            assert_eq!(
                (wave.wave.instances, wave.claimed),
                (60, 60),
                "{op} at {at}"
            );
            let stages: Vec<String> = rig
                .alerts
                .sent()
                .iter()
                .filter(|a| a.kind.as_str() == "shutdown_wave")
                .map(|a| json(a)["stage"].as_str().unwrap().to_owned())
                .collect();
            let n = |s: &str| stages.iter().filter(|x| *x == s).count();
            assert_eq!(
                (n("opened"), n("claimed")),
                (1, 1),
                "{op} at {at}: {stages:?}"
            );
        }
    }
}
