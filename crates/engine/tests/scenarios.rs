//! Runs every scenario in `tests/scenarios/*.toml` through the real path: records are
//! rendered as CloudTrail JSON, scanned, and replayed. A failure names the scenario.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use tripwire_engine::replay::replay;
use tripwire_engine::time::parse_event_time;
use tripwire_engine::{policy::parse_duration, scan, Policy, ScanCounts, Target};
use tripwire_synth::{terminate_record, Call, Caller};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    scenario: Vec<Scenario>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Scenario {
    name: String,
    policy: String,
    #[serde(default)]
    deliver: Option<String>,
    calls: Vec<Run>,
    expect: Vec<Expect>,
    #[serde(default)]
    counts: Option<Counts>,
    /// Records the scan must skip, by reason (none unless listed).
    #[serde(default)]
    skipped: BTreeMap<String, u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Run {
    who: String,
    account: Option<String>,
    at: String,
    #[serde(default = "one")]
    calls: i64,
    #[serde(default = "second")]
    every: String,
    #[serde(default)]
    ids: Ids,
    error: Option<String>,
    #[serde(default)]
    duplicate: bool,
    invoked_by: Option<String>,
    /// How many of each call's IDs `responseElements` shows as already shutting down
    /// (a reaper re-terminating what Auto Scaling already killed).
    #[serde(default)]
    already_terminated: usize,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Ids {
    Count(usize),
    List(Vec<String>),
}

impl Default for Ids {
    fn default() -> Self {
        Ids::Count(1)
    }
}

fn one() -> i64 {
    1
}
fn second() -> String {
    "1s".into()
}

#[derive(Deserialize, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
struct Expect {
    principal: String,
    account: String,
    instances: usize,
    trigger_count: u32,
    containment: String,
    #[serde(default)]
    cross_account: bool,
    #[serde(default)]
    attempts: u64,
    #[serde(default)]
    instances_unconfirmed: usize,
    /// `role:NAME@ACCOUNT` or `user:NAME@ACCOUNT`.
    target: Option<String>,
    /// A phrase the containment reason must contain.
    reason: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Counts {
    terminate_calls: Option<u64>,
    duplicates: Option<u64>,
    attempts: Option<u64>,
    counted_calls: Option<u64>,
    not_counted: Option<BTreeMap<String, u64>>,
    already_terminated_instances: Option<u64>,
}

fn scenario_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no scenario files in {}", dir.display());
    files
}

/// Renders the scenario's calls as JSON lines, in delivery order.
fn render(s: &Scenario) -> String {
    let mut lines = Vec::new();
    let mut serial = 0;
    for (r, run) in s.calls.iter().enumerate() {
        let caller = Caller::parse(&run.who).unwrap();
        let account = run
            .account
            .clone()
            .or(caller.account().map(str::to_owned))
            .expect("account");
        let at = if run.at.len() <= 12 {
            format!("2018-01-09T{}Z", run.at)
        } else {
            run.at.clone()
        };
        let start = parse_event_time(&at).unwrap_or_else(|| panic!("bad time {at}"));
        let step = parse_duration(&run.every).unwrap();
        for k in 0..run.calls {
            let ids: Vec<String> = match &run.ids {
                Ids::Count(n) => (0..*n)
                    .map(|_| {
                        serial += 1;
                        format!("i-{r:02x}{serial:015x}")
                    })
                    .collect(),
                Ids::List(l) => l.clone(),
            };
            let event_id = format!("ev-{r}-{k}");
            let call = Call {
                caller: &caller,
                account: &account,
                region: "us-east-1",
                time: start + k * step,
                instance_ids: &ids,
                event_id: &event_id,
                error: run.error.as_deref(),
                source_ip: "198.51.100.7",
                user_agent: "scenario",
                invoked_by: run.invoked_by.as_deref(),
                already_terminated: run.already_terminated,
            };
            let line = terminate_record(&call).to_string();
            if run.duplicate {
                lines.push(line.clone());
            }
            lines.push(line);
        }
    }
    match s.deliver.as_deref() {
        None => {}
        Some("reversed") => lines.reverse(),
        Some(other) => panic!("unknown delivery order {other}"),
    }
    lines.join("\n")
}

fn check(s: &Scenario) -> Result<(), String> {
    let policy = Policy::from_toml(&s.policy).map_err(|e| e.to_string())?;
    let text = render(s);
    let mut counts = ScanCounts::default();
    let mut terms = Vec::new();
    scan(&text, &mut counts, &mut terms).map_err(|e| e.to_string())?;
    let skipped: BTreeMap<String, u64> = counts
        .skipped
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect();
    if skipped != s.skipped {
        return Err(format!(
            "skipped: expected {:?}, got {skipped:?}",
            s.skipped
        ));
    }
    let result = replay(&policy, terms);
    let got: Vec<Expect> = result
        .incidents
        .iter()
        .map(|i| {
            let c = &i.containment;
            Expect {
                principal: i.principal_arn.clone(),
                account: i.account.clone(),
                instances: i.instances(),
                trigger_count: i.trigger_count,
                containment: format!("{:?}", c.action).to_lowercase(),
                cross_account: i.cross_account,
                attempts: i.attempts,
                instances_unconfirmed: i.unconfirmed_ids.len(),
                target: match (&c.target, &c.target_account) {
                    (Some(Target::Role(r)), Some(a)) => Some(format!("role:{r}@{a}")),
                    (Some(Target::User(u)), Some(a)) => Some(format!("user:{u}@{a}")),
                    _ => None,
                },
                reason: Some(c.reason.clone()),
            }
        })
        .collect();
    if got.len() != s.expect.len() {
        return Err(format!(
            "expected {} incidents, got {}: {got:#?}",
            s.expect.len(),
            got.len()
        ));
    }
    for (g, e) in got.iter().zip(&s.expect) {
        let reason_ok = match &e.reason {
            Some(phrase) => g
                .reason
                .as_deref()
                .is_some_and(|r| r.contains(phrase.as_str())),
            None => true,
        };
        let target_ok = e.target.is_none() || e.target == g.target;
        let same = (
            &g.principal,
            &g.account,
            g.instances,
            g.trigger_count,
            &g.containment,
            g.cross_account,
            g.attempts,
            g.instances_unconfirmed,
        ) == (
            &e.principal,
            &e.account,
            e.instances,
            e.trigger_count,
            &e.containment,
            e.cross_account,
            e.attempts,
            e.instances_unconfirmed,
        );
        if !(same && reason_ok && target_ok) {
            return Err(format!("expected {e:#?}\ngot {g:#?}"));
        }
    }
    if let Some(want) = &s.counts {
        let c = &result.counts;
        let pairs = [
            ("terminate_calls", want.terminate_calls, c.terminate_calls),
            ("duplicates", want.duplicates, c.duplicates),
            ("attempts", want.attempts, c.attempts),
            ("counted_calls", want.counted_calls, c.counted_calls),
            (
                "already_terminated_instances",
                want.already_terminated_instances,
                c.already_terminated_instances,
            ),
        ];
        for (name, w, g) in pairs {
            if w.is_some_and(|w| w != g) {
                return Err(format!("{name}: expected {w:?}, got {g}"));
            }
        }
        if let Some(nc) = &want.not_counted {
            let got: BTreeMap<String, u64> = c
                .not_counted
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect();
            if &got != nc {
                return Err(format!("not_counted: expected {nc:?}, got {got:?}"));
            }
        }
    }
    Ok(())
}

#[test]
fn every_scenario_produces_exactly_its_expected_incidents() {
    let mut failures = Vec::new();
    let mut ran = 0;
    for file in scenario_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let parsed: File =
            toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for s in &parsed.scenario {
            ran += 1;
            if let Err(e) = check(s) {
                failures.push(format!("--- {} :: {}\n{e}", file.display(), s.name));
            }
        }
    }
    assert!(ran >= 20, "only {ran} scenarios ran");
    assert!(
        failures.is_empty(),
        "{} of {ran} scenarios failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
