//! Runs every scenario in `tests/scenarios/*.toml` through the real path: records are
//! rendered as CloudTrail JSON, scanned, and replayed. A failure names the scenario.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use tripwire_engine::replay::replay_events;
use tripwire_engine::time::parse_event_time;
use tripwire_engine::{policy::parse_duration, scan_events, Events, Policy, ScanCounts, Target};
use tripwire_synth::{
    assume_role_record, initiator_record, set_session_context, terminate_record, Assume, Call,
    Caller,
};

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
    /// `AssumeRole*` records, rendered before the calls.
    #[serde(default)]
    assume: Vec<AssumeRun>,
    /// Initiator calls (`DeleteAutoScalingGroup`, …), rendered before the calls.
    #[serde(default)]
    initiate: Vec<InitRun>,
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
    /// The session name (default `session`).
    session: Option<String>,
    /// Session names the calls take in turn (overrides `session`).
    sessions: Option<Vec<String>>,
    /// `sessionContext.sourceIdentity` on every call.
    source_identity: Option<String>,
    /// Instance-profile credentials (`sessionContext.ec2RoleDelivery`).
    #[serde(default)]
    instance_profile: bool,
    /// The access key tail after `ASIA` (default `EXAMPLEEXAMPLE00`).
    key: Option<String>,
    /// A watched call other than TerminateInstances, by its event name
    /// (`DeleteDBInstance`): each call destroys one of `ids`.
    call: Option<String>,
    /// `awsRegion` (default `us-east-1`).
    region: Option<String>,
    /// `sourceIPAddress` (default `198.51.100.7`).
    source_ip: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AssumeRun {
    who: String,
    /// The caller's own access key tail, for a role session assuming another role.
    caller_key: Option<String>,
    role: String,
    session: String,
    key: String,
    at: String,
    source_identity: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InitRun {
    who: String,
    at: String,
    source: String,
    name: String,
    /// Its `requestParameters` (default: a forced deletion of group `web`).
    params: Option<serde_json::Value>,
    /// Its region (default `us-east-1`, the calls' region).
    region: Option<String>,
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
    /// `role:NAME@ACCOUNT`, `user:NAME@ACCOUNT` or `account:ACCOUNT`.
    target: Option<String>,
    /// A phrase the containment reason must contain.
    reason: Option<String>,
    /// `burst` unless given.
    #[serde(default = "burst")]
    kind: String,
    /// The origin's account, when the incident has one.
    origin_account: Option<String>,
    /// The initiator's principal, when the incident has one.
    initiator: Option<String>,
    /// The service whose terminations were credited to the principal, when they were.
    via: Option<String>,
    /// What the incident's calls destroyed (`ec2:instance` unless given).
    #[serde(default = "instances")]
    resource_type: String,
    /// How many contributing principals an account burst lists.
    #[serde(default)]
    principals: usize,
    /// The event names of the precursors the incident lists, in time order, when given.
    precursors: Option<Vec<String>>,
    /// The regions and source IPs the incident describes, when given.
    regions: Option<Vec<String>>,
    source_ips: Option<Vec<String>>,
    /// The containment scope, when given.
    scope: Option<String>,
    /// The scope's condition as `KEY=VALUE`, when given (`none` for no condition).
    condition: Option<String>,
    /// The managed policies containment attaches, when given.
    managed: Option<Vec<String>>,
    /// The access keys containment deactivates, when given.
    deactivate_keys: Option<Vec<String>>,
    /// The chain's origin the plan brakes too, as `role:NAME@ACCOUNT` (`none` for no
    /// brake), when given.
    origin_brake: Option<String>,
}

/// `role:NAME@ACCOUNT`, `user:NAME@ACCOUNT` or `account:ACCOUNT`.
fn target_of(r: &tripwire_engine::containment::Restriction) -> String {
    match &r.target {
        Target::Role(n) => format!("role:{n}@{}", r.account),
        Target::User(n) => format!("user:{n}@{}", r.account),
        Target::Account(a) => format!("account:{a}"),
    }
}

fn burst() -> String {
    "burst".into()
}

fn instances() -> String {
    "ec2:instance".into()
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
    calls_with_origin: Option<u64>,
    credited_calls: Option<u64>,
    precursor_calls: Option<u64>,
    provenance_skipped: Option<BTreeMap<String, u64>>,
}

fn time_of(at: &str) -> i64 {
    let at = if at.len() <= 12 {
        format!("2018-01-09T{at}Z")
    } else {
        at.to_owned()
    };
    parse_event_time(&at).unwrap_or_else(|| panic!("bad time {at}"))
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
    for (k, a) in s.assume.iter().enumerate() {
        let caller = Caller::parse(&a.who).unwrap();
        let id = format!("assume-{k}");
        lines.push(
            assume_role_record(&Assume {
                caller: &caller,
                caller_key: a.caller_key.as_deref().unwrap_or("CALLERCALLER0000"),
                role_arn: &a.role,
                session: &a.session,
                access_key: &a.key,
                time: time_of(&a.at),
                event_id: &id,
                source_identity: a.source_identity.as_deref(),
            })
            .to_string(),
        );
    }
    for (k, i) in s.initiate.iter().enumerate() {
        let caller = Caller::parse(&i.who).unwrap();
        let account = caller.account().expect("account").to_owned();
        let id = format!("init-{k}");
        let mut record =
            initiator_record(&caller, &account, time_of(&i.at), &i.source, &i.name, &id);
        if let Some(p) = &i.params {
            record["requestParameters"] = p.clone();
        }
        if let Some(r) = &i.region {
            record["awsRegion"] = r.as_str().into();
        }
        lines.push(record.to_string());
    }
    let mut serial = 0;
    for (r, run) in s.calls.iter().enumerate() {
        let caller = Caller::parse(&run.who).unwrap();
        let account = run
            .account
            .clone()
            .or(caller.account().map(str::to_owned))
            .expect("account");
        let start = time_of(&run.at);
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
            if let Some(name) = &run.call {
                let w = tripwire_engine::catalogue::every()
                    .find(|w| w.event_name == name)
                    .unwrap_or_else(|| panic!("{name} is not a watched call"));
                let line = tripwire_synth::destroy_record(
                    w,
                    &caller,
                    &account,
                    run.region.as_deref().unwrap_or("us-east-1"),
                    start + k * step,
                    ids.first().map_or("", String::as_str),
                    &event_id,
                    run.error.as_deref(),
                )
                .to_string();
                if run.duplicate {
                    lines.push(line.clone());
                }
                lines.push(line);
                continue;
            }
            let call = Call {
                caller: &caller,
                account: &account,
                region: run.region.as_deref().unwrap_or("us-east-1"),
                time: start + k * step,
                instance_ids: &ids,
                event_id: &event_id,
                error: run.error.as_deref(),
                source_ip: run.source_ip.as_deref().unwrap_or("198.51.100.7"),
                user_agent: "scenario",
                invoked_by: run.invoked_by.as_deref(),
                already_terminated: run.already_terminated,
                session: match &run.sessions {
                    Some(names) => &names[k as usize % names.len()],
                    None => run.session.as_deref().unwrap_or("session"),
                },
                access_key: run.key.as_deref().unwrap_or("EXAMPLEEXAMPLE00"),
            };
            let mut record = terminate_record(&call);
            set_session_context(
                &mut record,
                run.source_identity.as_deref(),
                run.instance_profile,
            );
            let line = record.to_string();
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
    let mut events = Events::default();
    scan_events(&text, &mut counts, &mut events).map_err(|e| e.to_string())?;
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
    let result = replay_events(&policy, events);
    let got: Vec<Expect> = result
        .incidents
        .iter()
        .map(|i| {
            let c = &i.containment;
            Expect {
                principal: i.principal_arn().unwrap_or_default().to_owned(),
                kind: i.kind().kind().to_owned(),
                origin_account: i.origin.as_ref().and_then(|o| o.account.clone()),
                initiator: i.initiator.as_ref().map(|n| n.principal_arn.clone()),
                via: i.via.as_ref().map(|v| v.service.clone()),
                resource_type: i.resource_type.clone(),
                principals: i.principals.len(),
                account: i.account.clone(),
                instances: i.instances(),
                trigger_count: i.trigger_count,
                containment: serde_json::to_value(c.action)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                cross_account: i.cross_account,
                attempts: i.attempts,
                instances_unconfirmed: i.unconfirmed_ids.len(),
                target: c.restriction.as_ref().map(target_of),
                origin_brake: Some(
                    c.origin
                        .as_ref()
                        .and_then(|o| o.restriction.as_ref())
                        .map_or_else(|| "none".into(), target_of),
                ),
                reason: Some(c.reason.clone()),
                scope: c.scope().map(|s| s.as_str().to_owned()),
                condition: Some(match c.condition() {
                    Some(c) => format!("{}={}", c.key, c.values.join(",")),
                    None => "none".into(),
                }),
                managed: Some(c.managed.clone()),
                deactivate_keys: Some(c.deactivate_keys.clone()),
                precursors: Some(i.precursors.iter().map(|p| p.event_name.clone()).collect()),
                regions: Some(i.regions.iter().cloned().collect()),
                source_ips: Some(i.source_ips.iter().cloned().collect()),
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
        let target_ok = (e.target.is_none() || e.target == g.target)
            && (e.origin_brake.is_none() || e.origin_brake == g.origin_brake)
            && (e.precursors.is_none() || e.precursors == g.precursors)
            && (e.regions.is_none() || e.regions == g.regions)
            && (e.source_ips.is_none() || e.source_ips == g.source_ips);
        let scope_ok = (e.scope.is_none() || e.scope == g.scope)
            && (e.condition.is_none() || e.condition == g.condition)
            && (e.managed.is_none() || e.managed == g.managed)
            && (e.deactivate_keys.is_none() || e.deactivate_keys == g.deactivate_keys);
        let same = (
            &g.principal,
            &g.account,
            g.instances,
            g.trigger_count,
            &g.containment,
            g.cross_account,
            g.attempts,
            g.instances_unconfirmed,
            (
                &g.kind,
                &g.origin_account,
                &g.initiator,
                g.principals,
                &g.via,
            ),
        ) == (
            &e.principal,
            &e.account,
            e.instances,
            e.trigger_count,
            &e.containment,
            e.cross_account,
            e.attempts,
            e.instances_unconfirmed,
            (
                &e.kind,
                &e.origin_account,
                &e.initiator,
                e.principals,
                &e.via,
            ),
        );
        if !(same && reason_ok && target_ok && scope_ok) {
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
            (
                "calls_with_origin",
                want.calls_with_origin,
                c.calls_with_origin,
            ),
            ("credited_calls", want.credited_calls, c.credited_calls),
            ("precursor_calls", want.precursor_calls, c.precursor_calls),
        ];
        for (name, w, g) in pairs {
            if w.is_some_and(|w| w != g) {
                return Err(format!("{name}: expected {w:?}, got {g}"));
            }
        }
        if let Some(ps) = &want.provenance_skipped {
            let got: BTreeMap<String, u64> = c
                .provenance_skipped
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect();
            if &got != ps {
                return Err(format!("provenance_skipped: expected {ps:?}, got {got:?}"));
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

/// With `TRIPWIRE_SCENARIO_DUMP=DIR`, writes each scenario's records and policy there, so
/// `scripts/golden.sh` can run the backtest on exactly what this test decides on.
fn dump(file: &std::path::Path, k: usize, s: &Scenario) {
    let Some(dir) = std::env::var_os("TRIPWIRE_SCENARIO_DUMP") else {
        return;
    };
    let stem = file.file_stem().unwrap().to_string_lossy();
    let dir = PathBuf::from(dir).join(format!("{stem}-{k:03}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("records.jsonl"), render(s)).unwrap();
    std::fs::write(dir.join("policy.toml"), &s.policy).unwrap();
}

#[test]
fn every_scenario_produces_exactly_its_expected_incidents() {
    let mut failures = Vec::new();
    let mut ran = 0;
    for file in scenario_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let parsed: File =
            toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for (k, s) in parsed.scenario.iter().enumerate() {
            ran += 1;
            dump(&file, k, s);
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
