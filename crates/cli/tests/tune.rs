//! `tripwire tune` as a user runs it: on a generated 30-day history with a node
//! autoscaler's nightly scale-ins and the seed wipe, the rules it suggests, appended to
//! the policy as they are, keep the nights quiet and still page the wipe.

mod common;

use common::{history, json_lines, policy, run, scratch, tripwire};

/// The incidents' principals, as the backtest's JSON lines name them.
fn paged(policy: &str, archive: &str) -> Vec<String> {
    let out = run(&["backtest", "--json", "--policy", policy, archive]);
    json_lines(&out)
        .iter()
        .filter(|v| v["type"] == "incident" && v["kind"] == "burst")
        .map(|v| v["principal_arn"].as_str().unwrap().to_owned())
        .collect()
}

const AUTOSCALER: &str = "role/KarpenterControllerRole";
const WIPE: &str = "arn:aws:iam::222222222222:role/vendor/cleanup-task";

#[test]
fn suggested_rules_page_the_wipe_and_not_the_nights() {
    let dir = scratch("history");
    let archive = history(&dir);
    let archive = archive.as_str();
    let policy = policy();
    let policy = policy.as_str();

    // Untuned, every night pages in both accounts the autoscaler works in.
    let before = paged(policy, archive);
    assert_eq!(
        before.iter().filter(|p| p.ends_with(AUTOSCALER)).count(),
        60
    );
    assert_eq!(before.iter().filter(|p| *p == WIPE).count(), 1);

    let out = run(&["tune", "--json", "--policy", policy, archive]);
    let lines = json_lines(&out);
    assert!(lines.iter().all(|l| l["type"] == "suggestion"), "{out}");
    let by = |principal: &str| {
        lines
            .iter()
            .find(|l| l["principal"] == principal && l["resource_type"] == "ec2:instance")
            .unwrap_or_else(|| panic!("no line for {principal}: {out}"))
    };
    let night = by(&format!("arn:aws:iam::*:{AUTOSCALER}"));
    // The busiest night is the generator's: 340 instances in production.
    assert_eq!(night["peak"], 340, "{night}");
    assert_eq!(night["window"], "5m");
    assert_eq!(night["suggested_threshold"], 500);
    assert_eq!(
        (night["days_paged"].as_u64(), night["days_active"].as_u64()),
        (Some(30), Some(30))
    );
    let wipe = by(WIPE);
    assert_eq!(wipe["peak"], 60);
    assert!(wipe["suggested_threshold"].is_null(), "{wipe}");

    // The fragment is only [principals]/[resources] tables, check-policy accepts the
    // policy with it appended as it is, and the same history then pages the wipe alone.
    let fragment = run(&["tune", "--toml", "--policy", policy, archive]);
    for line in fragment.lines().filter(|l| l.starts_with('[')) {
        assert!(
            line.starts_with("[principals.") || line.starts_with("[resources."),
            "{line}"
        );
    }
    let tuned = dir.join("tuned.toml");
    let text = format!("{}\n{fragment}", std::fs::read_to_string(policy).unwrap());
    std::fs::write(&tuned, text).unwrap();
    let tuned = tuned.to_str().unwrap();
    run(&["check-policy", tuned]);
    assert_eq!(paged(tuned, archive), [WIPE]);

    // EC2's own events wave every night too: the wave lane's threshold is suggested
    // above the routine nights, as a comment (a top-level key cannot follow tables).
    let waves = |policy: &str| {
        let out = run(&["backtest", "--json", "--policy", policy, archive]);
        json_lines(&out)
            .iter()
            .filter(|v| v["kind"] == "shutdown_wave")
            .count()
    };
    assert_eq!(
        waves(tuned),
        61,
        "every night in both accounts, and the wipe"
    );
    let lane = lines
        .iter()
        .find(|l| l["rule"] == "state_change_threshold")
        .unwrap_or_else(|| panic!("no wave suggestion: {out}"));
    assert_eq!(
        (lane["peak"].as_u64(), lane["suggested_threshold"].as_u64()),
        (Some(340), Some(500))
    );
    let set = "state_change_threshold = 500";
    assert!(fragment.contains(set), "{fragment}");
    let with_lane = dir.join("with-lane.toml");
    std::fs::write(
        &with_lane,
        format!("{set}\n{}", std::fs::read_to_string(tuned).unwrap()),
    )
    .unwrap();
    let with_lane = with_lane.to_str().unwrap();
    assert_eq!(
        waves(with_lane),
        0,
        "no night waves; the wipe's 63 is under it too"
    );
    assert_eq!(
        paged(with_lane, archive),
        [WIPE],
        "the burst lane still pages the wipe"
    );

    // The table says the same in words.
    let table = run(&["tune", "--policy", policy, archive]);
    assert!(
        table.contains("a rule at 500 keeps a 47% margin"),
        "{table}"
    );
    assert!(table.contains("a burst, not a routine"), "{table}");
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = scratch("bad");
    let policy = policy();
    let policy = policy.as_str();
    let missing = dir.join("nothing-here");
    let (ok, _, err) = tripwire(&["tune", "--policy", policy, missing.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("no such file or folder"), "{err}");
    let (ok, _, err) = tripwire(&[
        "tune",
        "--min-days",
        "0",
        "--policy",
        policy,
        dir.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(err.contains("--min-days"), "{err}");
    let (ok, _, err) = tripwire(&[
        "tune",
        "--json",
        "--toml",
        "--policy",
        policy,
        dir.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(err.contains("cannot be used with"), "{err}");
}
