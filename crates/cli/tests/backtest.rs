//! The `tripwire` binary as a user runs it: real files, real output, the JSON contract.

mod common;

use common::{json_lines, policy, repo, run, scratch, tripwire};

use serde_json::Value;
use std::path::Path;

#[test]
fn the_seed_incident_fires_once_and_its_look_alikes_do_not() {
    let dir = scratch("seed");
    run(&["generate", "--out", dir.to_str().unwrap(), "--size-mb", "2"]);
    let out = run(&[
        "backtest",
        "--policy",
        &policy(),
        "--json",
        dir.to_str().unwrap(),
    ]);
    let out = json_lines(&out);
    let incidents: Vec<&Value> = out.iter().filter(|v| v["type"] == "incident").collect();
    assert_eq!(incidents.len(), 1, "{incidents:#?}");
    let i = incidents[0];
    assert_eq!(
        i["principal_arn"],
        "arn:aws:iam::222222222222:role/vendor/cleanup-task"
    );
    assert_eq!(i["principal_type"], "AssumedRole");
    assert_eq!(
        (
            i["account"].as_str(),
            i["instances"].as_u64(),
            i["trigger_count"].as_u64()
        ),
        (Some("222222222222"), Some(60), Some(10))
    );
    assert_eq!(i["first_event_time"], "2018-01-09T22:09:00Z");
    assert_eq!(i["trigger_time"], "2018-01-09T22:09:13.500Z");
    assert_eq!(i["containment"]["action"], "revoke");
    assert_eq!(i["containment"]["role_name"], "cleanup-task");
    assert_eq!(i["containment"]["target_account"], "222222222222");
    for field in [
        "principal_account",
        "region",
        "trigger_event_id",
        "containment",
    ] {
        assert!(!i[field].is_null(), "{field}");
    }
    let summary = out.last().unwrap();
    assert_eq!(summary["type"], "summary");
    assert_eq!(summary["duplicates"], 10);
    assert_eq!(summary["not_counted"]["allowed_account"], 40);
    assert_eq!(summary["not_counted"]["service_linked_role"], 15);
    assert_eq!(summary["incidents"], 1);
    let deploy = out
        .iter()
        .find(|v| {
            v["type"] == "peak"
                && v["principal_arn"] == "arn:aws:iam::222222222222:role/deploy/ci-deployer"
        })
        .unwrap();
    assert_eq!(
        deploy["peak"], 3,
        "the rolling deploy peaks at 3, below the threshold"
    );
}

#[test]
fn the_real_corpus_is_read_whole_and_the_corrupt_file_reported() {
    let corpus = repo().join("tests/fixtures/cloudtrail-corpus");
    let out = run(&[
        "backtest",
        "--policy",
        &policy(),
        "--json",
        corpus.to_str().unwrap(),
    ]);
    let summary = json_lines(&out).pop().unwrap();
    let corrupt = summary["corrupt_files"].as_array().unwrap();
    assert_eq!(corrupt.len(), 1, "{corrupt:?}");
    assert!(corrupt[0]["path"]
        .as_str()
        .unwrap()
        .ends_with("INVALID_JSON_SerializerTestFileBadJsonFormat.json"));
    assert_eq!(
        summary["files"], 54,
        "20 terminate records, 32 mixed files, 2 gzipped copies"
    );
    let records = summary["records"].as_u64().unwrap();
    let skipped: u64 = summary["skipped"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    let parts = summary["other_events"].as_u64().unwrap()
        + skipped
        + summary["terminate_calls"].as_u64().unwrap()
        + summary["duplicates"].as_u64().unwrap();
    assert_eq!(records, parts);
}

#[test]
fn a_truncated_gzip_file_keeps_the_rest_going() {
    let dir = scratch("corrupt");
    let src = repo().join("tests/fixtures/cloudtrail-corpus/mixed/trailscraper_111111111111_CloudTrail_eu-central-1_20171211T1505Z_A6kvhMoVeCsc7v8U.json.gz");
    let bytes = std::fs::read(&src).unwrap();
    std::fs::write(dir.join("good.json.gz"), &bytes).unwrap();
    std::fs::write(dir.join("truncated.json.gz"), &bytes[..bytes.len() / 2]).unwrap();
    std::fs::write(dir.join("binary.json"), [0xff, 0xfe, 0x00, 0x01]).unwrap();
    std::fs::write(dir.join("ignored.txt"), "not a trail").unwrap();
    let out = run(&[
        "backtest",
        "--policy",
        &policy(),
        "--json",
        dir.to_str().unwrap(),
    ]);
    let summary = json_lines(&out).pop().unwrap();
    assert_eq!(summary["files"], 3);
    assert_eq!(summary["records"], 2, "the good file's two records");
    let corrupt: Vec<&str> = summary["corrupt_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert_eq!(corrupt.len(), 2, "{corrupt:?}");
    assert!(
        corrupt.iter().any(|p| p.ends_with("truncated.json.gz"))
            && corrupt.iter().any(|p| p.ends_with("binary.json"))
    );
}

#[test]
fn check_policy_names_the_bad_key() {
    let dir = scratch("policy");
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "threshold = 10\n[accounts.\"333333333333\"]\nthreshold = 0\n",
    )
    .unwrap();
    let (ok, _, err) = tripwire(&["check-policy", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("accounts.333333333333.threshold"), "{err}");
    let (ok, out, _) = tripwire(&["check-policy", &policy()]);
    assert!(ok && out.starts_with("ok"), "{out}");
    // The example protects `arn:*:` globs, which IAM reads in every partition too.
    assert!(!out.contains("match every partition"), "{out}");
    // An `arn:aws:` glob covers every partition for the engine: it says so.
    let commercial = dir.join("commercial.toml");
    std::fs::write(
        &commercial,
        "protected_principals = [\"arn:aws:iam::*:role/X\"]\n",
    )
    .unwrap();
    let (ok, out, _) = tripwire(&["check-policy", commercial.to_str().unwrap()]);
    assert!(ok && out.contains("match every partition"), "{out}");
    let gov = dir.join("gov.toml");
    std::fs::write(
        &gov,
        "protected_principals = [\"arn:aws-us-gov:iam::*:role/X\"]\n",
    )
    .unwrap();
    let (ok, out, _) = tripwire(&["check-policy", gov.to_str().unwrap()]);
    assert!(ok && !out.contains("every partition"), "{out}");
}

#[test]
fn the_table_names_the_incident_and_the_missing_path_is_an_error() {
    let dir = scratch("table");
    assert!(tripwire(&["generate", "--out", dir.to_str().unwrap(), "--size-mb", "1"]).0);
    let (ok, out, _) = tripwire(&["backtest", "--policy", &policy(), dir.to_str().unwrap()]);
    assert!(ok);
    assert!(out.starts_with("INCIDENTS (1)"), "{out}");
    assert!(out.contains("arn:aws:iam::222222222222:role/vendor/cleanup-task"));
    let (ok, _, err) = tripwire(&[
        "backtest",
        "--policy",
        &policy(),
        Path::new("/nonexistent/trail").to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("no such file"), "{err}");
}

#[test]
fn an_assume_role_in_one_file_gives_calls_in_another_their_origin() {
    let dir = scratch("origin");
    // The role's account logs the cross-account assumption; the calls are in a later
    // log file, as CloudTrail delivers them.
    let caller = tripwire_synth::Caller::parse("account/AROADEVTOOL:cleanup@111111111111").unwrap();
    let assume = tripwire_synth::assume_role_record(&tripwire_synth::Assume {
        caller: &caller,
        caller_key: "",
        role_arn: "arn:aws:iam::222222222222:role/ops/admin",
        session: "cleanup",
        access_key: "PRODADMIN0000001",
        time: 1_515_535_680_000,
        event_id: "assume-1",
        source_identity: None,
    });
    std::fs::write(
        dir.join("b-assume.json"),
        serde_json::json!({ "Records": [assume] }).to_string(),
    )
    .unwrap();
    let calls: Vec<Value> = tripwire_synth::Burst::new("role/ops/admin@222222222222", "x")
        .session("cleanup")
        .access_key("PRODADMIN0000001")
        .records();
    std::fs::write(
        dir.join("a-calls.json"),
        serde_json::json!({ "Records": calls }).to_string(),
    )
    .unwrap();
    let out = run(&[
        "backtest",
        "--policy",
        &policy(),
        "--json",
        dir.to_str().unwrap(),
    ]);
    let out = json_lines(&out);
    let incident = out
        .iter()
        .find(|v| v["type"] == "incident")
        .expect("an incident");
    assert_eq!(incident["kind"], "burst");
    assert_eq!(incident["origin"]["account"], "111111111111");
    assert_eq!(
        incident["cross_account"], true,
        "the example policy's cross-account threshold is 1"
    );
    let summary = out.last().unwrap();
    assert_eq!(
        (
            summary["assume_role_records"].as_u64(),
            summary["calls_with_origin"].as_u64()
        ),
        (Some(1), Some(1))
    );
}

#[test]
fn an_archive_answers_where_the_tripwire_was_armed_and_who_disarmed_it() {
    let dir = scratch("armed");
    // 2026-03-01T10:00:00Z; every ten minutes in eu-west-1 but 10:40, twice in us-east-1.
    let base = 1_772_359_200_000;
    let beats: Vec<(&str, i64)> = [0, 1, 2, 3, 5, 6]
        .iter()
        .map(|k| ("eu-west-1", k * 600_000))
        .chain([("us-east-1", 0), ("us-east-1", 600_000)])
        .collect();
    let mut lines_out = String::new();
    for (k, (region, at)) in beats.iter().enumerate() {
        let rec = tripwire_synth::canary_record(
            "222222222222",
            region,
            base + at,
            &format!("canary-{k}"),
        );
        lines_out.push_str(&format!("{rec}\n"));
        if k == 7 {
            // A redelivery of the last one.
            lines_out.push_str(&format!("{rec}\n"));
        }
    }
    lines_out.push_str(&serde_json::json!({"eventVersion": "1.08", "eventTime": "2026-03-01T10:35:00Z",
        "eventSource": "iam.amazonaws.com", "eventName": "DeleteRolePolicy", "awsRegion": "us-east-1",
        "eventID": "tamper-1", "recipientAccountId": "222222222222",
        "userIdentity": {"type": "IAMUser", "principalId": "AIDAEXAMPLE", "accountId": "222222222222",
            "arn": "arn:aws:iam::222222222222:user/ops/mallory", "userName": "mallory"},
        "requestParameters": {"roleName": "cleanup-task", "policyName": "tripwire-contain-scope"}}).to_string());
    std::fs::write(dir.join("armed.jsonl"), lines_out).unwrap();
    let out = run(&[
        "backtest",
        "--json",
        "--policy",
        &policy(),
        dir.to_str().unwrap(),
    ]);
    let got = json_lines(&out);
    let of = |t: &str| -> Vec<&Value> { got.iter().filter(|l| l["type"] == t).collect() };
    let coverage: Vec<_> = of("coverage")
        .iter()
        .map(|c| {
            (
                c["region"].as_str().unwrap().to_owned(),
                c["heartbeats"].as_u64().unwrap(),
                c["first"].as_str().unwrap().to_owned(),
                c["last"].as_str().unwrap().to_owned(),
                c["max_gap_s"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        coverage,
        [
            (
                "eu-west-1".into(),
                6,
                "2026-03-01T10:00:00Z".into(),
                "2026-03-01T11:00:00Z".into(),
                1200
            ),
            (
                "us-east-1".into(),
                2,
                "2026-03-01T10:00:00Z".into(),
                "2026-03-01T10:10:00Z".into(),
                600
            ),
        ]
    );
    assert!(of("coverage")
        .iter()
        .all(|c| c["account"] == "222222222222"));
    let tamper = of("tamper");
    assert_eq!(tamper.len(), 1);
    for (k, v) in [
        ("event_name", "DeleteRolePolicy"),
        (
            "principal_arn",
            "arn:aws:iam::222222222222:user/ops/mallory",
        ),
        ("account", "222222222222"),
        ("region", "us-east-1"),
        ("target", "role/cleanup-task policy/tripwire-contain-scope"),
        ("event_time", "2026-03-01T10:35:00Z"),
    ] {
        assert_eq!(tamper[0][k], v, "{k}");
    }
    // The canary's calls are neither terminations nor attempts.
    let summary = of("summary")[0];
    for (k, v) in [
        ("terminate_calls", 0),
        ("attempts", 0),
        ("incidents", 0),
        ("heartbeats", 8),
        ("tamper_events", 1),
    ] {
        assert_eq!(summary[k], v, "{k}");
    }
    let (ok, table, _) = tripwire(&["backtest", "--policy", &policy(), dir.to_str().unwrap()]);
    assert!(ok);
    assert!(
        table.contains("COVERAGE (2 account-regions") && table.contains("TAMPER (1)"),
        "{table}"
    );
    assert!(table.contains("DeleteRolePolicy   role/cleanup-task policy/tripwire-contain-scope by arn:aws:iam::222222222222:user/ops/mallory"), "{table}");
}

/// EC2's state-change events beside the CloudTrail records of the seed wipe: one wave,
/// claimed by the caller for all 60 instances, however the events come; and a second
/// wave no record names, unclaimed.
#[test]
fn state_change_events_make_a_shutdown_wave_joined_to_its_caller() {
    use tripwire_synth::{seed_scenario, state_change_event, SplitMix};
    let dir = scratch("waves");
    let base = 1_515_535_740_000; // 2018-01-09T22:09:00Z
    let records = seed_scenario(base);
    let mut lines_out: Vec<String> = records.iter().map(|(_, r)| r.to_string()).collect();
    let wipe: Vec<(String, i64)> = records
        .iter()
        .filter(|(_, r)| {
            r["userIdentity"]["sessionContext"]["sessionIssuer"]["userName"] == "cleanup-task"
                && r["recipientAccountId"] == "222222222222"
        })
        .map(|(_, r)| {
            let id = r["requestParameters"]["instancesSet"]["items"][0]["instanceId"]
                .as_str()
                .unwrap()
                .to_owned();
            let t =
                tripwire_engine::time::parse_event_time(r["eventTime"].as_str().unwrap()).unwrap();
            (id, t)
        })
        .collect();
    assert_eq!(wipe.len(), 60);
    let mut events = Vec::new();
    for (k, (id, t)) in wipe.iter().enumerate() {
        for (state, after) in [("shutting-down", 1_000), ("terminated", 45_000)] {
            let e = state_change_event(
                "222222222222",
                "us-east-1",
                id,
                state,
                t + after,
                &format!("sc-{k}-{state}"),
            );
            events.push(e.to_string());
        }
    }
    // An hour later, 70 instances go with no call behind them (Spot, an OS shutdown).
    for k in 0..70 {
        let id = format!("i-0feed{k:012x}");
        let e = state_change_event(
            "222222222222",
            "us-east-1",
            &id,
            "shutting-down",
            base + 3_600_000 + k * 500,
            &format!("spot-{k}"),
        );
        events.push(e.to_string());
    }
    // Redeliveries, and every event in a shuffled order.
    let again: Vec<String> = events.iter().step_by(7).cloned().collect();
    events.extend(again);
    let mut rng = SplitMix(26);
    for i in (1..events.len()).rev() {
        events.swap(i, rng.below(i as u64 + 1) as usize);
    }
    lines_out.extend(events);
    std::fs::write(dir.join("both.jsonl"), lines_out.join("\n")).unwrap();
    let out = run(&[
        "backtest",
        "--json",
        "--policy",
        &policy(),
        dir.to_str().unwrap(),
    ]);
    let got = json_lines(&out);
    let waves: Vec<&Value> = got
        .iter()
        .filter(|l| l["type"] == "incident" && l["kind"] == "shutdown_wave")
        .collect();
    assert_eq!(waves.len(), 2, "{waves:#?}");
    let (first, second) = (waves[0], waves[1]);
    assert_eq!(
        (first["account"].as_str(), first["region"].as_str()),
        (Some("222222222222"), Some("us-east-1"))
    );
    assert_eq!(first["instances"], 60);
    assert_eq!(first["threshold"], 50);
    assert_eq!(
        first["claimed_by"],
        serde_json::json!([{"principal_arn": "arn:aws:iam::222222222222:role/vendor/cleanup-task", "instances": 60}])
    );
    assert_eq!(first["unclaimed"], serde_json::json!([]));
    assert!(first["principal_arn"].is_null());
    assert_eq!(first["resource_type"], "ec2:instance");
    assert_eq!(first["containment"]["action"], "none");
    assert_eq!(second["instances"], 70);
    assert_eq!(second["claimed_by"], serde_json::json!([]));
    assert_eq!(second["unclaimed"].as_array().unwrap().len(), 70);
    // The principal burst the records make is there as before, and contains.
    let bursts: Vec<&Value> = got
        .iter()
        .filter(|l| l["type"] == "incident" && l["kind"] == "burst")
        .collect();
    assert_eq!(bursts.len(), 1);
    assert_eq!(bursts[0]["containment"]["action"], "revoke");
    let summary = got.last().unwrap();
    assert_eq!(summary["shutdown_waves"], 2);
    assert_eq!(summary["state_change_events"], 190);
    assert_eq!(summary["state_change_duplicates"], 28);
    assert_eq!(summary["state_change_repeats"], 60);
}
