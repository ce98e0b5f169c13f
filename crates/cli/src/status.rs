//! `tripwire status`: is the tripwire armed in every account and region? From the
//! canary's heartbeats in the table: each pair's last heartbeat, its age and state, and
//! its delivery latency over the last day. And does it run the policy in the file? The
//! policy each function recorded at its cold start beside the local file's. Standard
//! credential chain; honours `AWS_ENDPOINT_URL*`.

use anyhow::{Context, Result};
use std::collections::BTreeMap;
use tripwire_aws::config::{process_env, TABLE};
use tripwire_aws::store::{LoadedRecord, WindowStore};
use tripwire_engine::alert::ContainmentState;
use tripwire_engine::armed::{quantile, Armed, HeartbeatState};
use tripwire_engine::deployed::{differing_keys, policy_hash};
use tripwire_engine::drill::{self, Drilled};
use tripwire_engine::time::{format_millis, Millis};
use tripwire_pipeline::{Clock, Drills, Heartbeats, SystemClock};

const DAY: Millis = 24 * 3600 * 1000;

/// One (account, region): the `status` JSON line.
#[derive(serde::Serialize)]
struct Row {
    #[serde(rename = "type")]
    record_type: &'static str,
    account: String,
    region: String,
    state: &'static str,
    last: Option<String>,
    age_s: Option<i64>,
    latency_p50_ms: Option<Millis>,
    latency_p99_ms: Option<Millis>,
    heartbeats: u64,
    /// Incidents with a call there in the last day, not released.
    open_incidents: u64,
    /// The account's last containment drill: `ok`, `failed REASON` or `never`.
    drill: String,
    /// When it ran: a drill long past its schedule means the schedule stopped.
    drill_at: Option<String>,
}

/// One function's loaded policy beside the local file: the `policy` JSON line.
#[derive(Debug, serde::Serialize, PartialEq)]
struct PolicyRow {
    #[serde(rename = "type")]
    record_type: &'static str,
    function: String,
    deployed_sha256: String,
    source: String,
    loaded: String,
    local_sha256: Option<String>,
    local_file: Option<String>,
    /// Whether the deployed file is the local one, byte for byte.
    in_sync: Option<bool>,
    /// The keys whose values differ (empty when only comments or layout do).
    differing_keys: Vec<String>,
}

fn policy_rows(loaded: &[LoadedRecord], local: Option<(&str, &str)>) -> Vec<PolicyRow> {
    let local_hash = local.map(|(_, text)| policy_hash(text));
    loaded
        .iter()
        .map(|l| {
            let in_sync = local_hash.as_ref().map(|h| *h == l.sha256);
            let differing_keys = match local {
                Some((_, text)) if in_sync == Some(false) => differing_keys(&l.text, text)
                    .unwrap_or_else(|e| vec![format!("(unreadable: {e})")]),
                _ => Vec::new(),
            };
            PolicyRow {
                record_type: "policy",
                function: l.function.clone(),
                deployed_sha256: l.sha256.clone(),
                source: l.source.clone(),
                loaded: format_millis(l.loaded),
                local_sha256: local_hash.clone(),
                local_file: local.map(|(path, _)| path.to_owned()),
                in_sync,
                differing_keys,
            }
        })
        .collect()
}

/// The rows for `states` at `now`, with `histograms` (the last day's, summed) and the
/// pairs expected (the operator's and the StackSet instances the watchdog listed), which
/// are `never_seen` when they never sent one.
fn rows(
    states: &[HeartbeatState],
    histograms: &BTreeMap<(String, String), [u64; 10]>,
    incidents: &BTreeMap<(String, String), u64>,
    drills: &BTreeMap<String, Drilled>,
    expect: &[(String, String)],
    now: Millis,
    interval: Millis,
) -> Vec<Row> {
    let mut by: BTreeMap<(String, String), Option<&HeartbeatState>> = expect
        .iter()
        .chain(incidents.keys())
        .map(|pair| (pair.clone(), None))
        .collect();
    for s in states {
        by.insert((s.account.clone(), s.region.clone()), Some(s));
    }
    by.into_iter()
        .map(|((account, region), s)| {
            let h = histograms
                .get(&(account.clone(), region.clone()))
                .copied()
                .unwrap_or_default();
            Row {
                record_type: "status",
                state: Armed::of(s.map(|s| s.last), now, interval).as_str(),
                last: s.map(|s| format_millis(s.last)),
                age_s: s.map(|s| (now - s.last) / 1000),
                latency_p50_ms: quantile(&h, 0.5),
                latency_p99_ms: quantile(&h, 0.99),
                heartbeats: s.map_or(0, |s| s.heartbeats),
                open_incidents: incidents
                    .get(&(account.clone(), region.clone()))
                    .copied()
                    .unwrap_or(0),
                drill: drill::status_word(drills.get(&account)),
                drill_at: drills.get(&account).map(|d| format_millis(d.at)),
                account,
                region,
            }
        })
        .collect()
}

/// How `status` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The matrix.
    Table,
    /// JSON lines.
    Json,
    /// One self-contained HTML page.
    Html,
}

/// The POLICY line's comparison with the local file, in words.
fn in_words(p: &PolicyRow) -> String {
    match (&p.local_file, &p.local_sha256, p.in_sync) {
        (Some(f), Some(h), Some(true)) => format!("= {f} ({}): in sync", &h[..12]),
        (Some(f), Some(h), _) if p.differing_keys.is_empty() => {
            format!("!= {f} ({}): DRIFT in comments or layout only", &h[..12])
        }
        (Some(f), Some(h), _) => format!(
            "!= {f} ({}): DRIFT in {}",
            &h[..12],
            p.differing_keys.join(", ")
        ),
        _ => "no local policy file to compare (--policy)".to_owned(),
    }
}

/// The HTML page: each function's policy line and the heatmap of the rows.
fn html(policies: &[PolicyRow], rows: &[Row], now: Millis) -> String {
    let policies: Vec<(String, String)> = policies
        .iter()
        .map(|p| {
            (
                p.function.clone(),
                format!(
                    "{} ({}, loaded {}) {}",
                    &p.deployed_sha256[..12],
                    p.source,
                    p.loaded,
                    in_words(p)
                ),
            )
        })
        .collect();
    let cells: Vec<crate::report::Cell> = rows
        .iter()
        .map(|r| crate::report::Cell {
            account: r.account.clone(),
            region: r.region.clone(),
            class: r.state,
            title: format!(
                "{} {}: {}, last heartbeat {}, {} heartbeats, {} open incident(s), drill: {}",
                r.account,
                r.region,
                r.state,
                r.last.as_deref().unwrap_or("never"),
                r.heartbeats,
                r.open_incidents,
                r.drill
            ),
        })
        .collect();
    crate::report::status_page(
        &policies,
        &cells,
        &format!("The table's view at {}.", format_millis(now)),
    )
}

/// Prints the matrix (or JSON lines, or the HTML page).
pub fn run(
    table: Option<String>,
    policy: Option<std::path::PathBuf>,
    interval_minutes: u32,
    expect: &[String],
    format: Format,
) -> Result<()> {
    let table = table
        .or_else(|| process_env(TABLE))
        .with_context(|| format!("pass --table or set {TABLE}"))?;
    let expect = expect
        .iter()
        .map(|e| {
            e.split_once(':')
                .map(|(a, r)| (a.to_owned(), r.to_owned()))
                .with_context(|| format!("--expect `{e}`: ACCOUNT:REGION"))
        })
        .collect::<Result<Vec<_>>>()?;
    let default_policy = std::path::Path::new("config/policy.toml");
    let policy = match policy {
        Some(p) => Some(p),
        None => default_policy.exists().then(|| default_policy.to_owned()),
    };
    let local = policy
        .map(|p| {
            std::fs::read_to_string(&p)
                .map(|text| (p.display().to_string(), text))
                .with_context(|| format!("reading policy {}", p.display()))
        })
        .transpose()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let sdk = tripwire_aws::load_sdk_config(tripwire_aws::TlsRoots::System).await?;
        let store = WindowStore::new(tripwire_aws::client(&sdk), table);
        let now = SystemClock.now();
        let states = store.heartbeat_states().await?;
        let policies = policy_rows(
            &store.loaded_policies().await?,
            local.as_ref().map(|(p, t)| (p.as_str(), t.as_str())),
        );
        // The StackSet instances the watchdog listed that never spoke are expected too.
        let mut expect = expect;
        expect.extend(
            store
                .listed()
                .await?
                .into_iter()
                .map(|l| (l.account, l.region)),
        );
        // The last day: today's and yesterday's histograms (days by eventTime, UTC).
        let mut histograms: BTreeMap<(String, String), [u64; 10]> = BTreeMap::new();
        for day in [now, now - DAY] {
            for (pair, h) in store.latency_histograms(&format_millis(day)[..10]).await? {
                let sum = histograms.entry(pair).or_default();
                for (s, c) in sum.iter_mut().zip(h) {
                    *s += c;
                }
            }
        }
        // Open: a call in the last day, and not released.
        let mut incidents: BTreeMap<(String, String), u64> = BTreeMap::new();
        for s in store.current_incidents().await? {
            let i = &s.incident;
            if s.containment_state == Some(ContainmentState::Released)
                || i.last_event_time < now - DAY
            {
                continue;
            }
            for region in &i.regions {
                *incidents
                    .entry((i.account.clone(), region.clone()))
                    .or_default() += 1;
            }
        }
        let drills: BTreeMap<String, Drilled> = store
            .drills()
            .await?
            .into_iter()
            .map(|d| (d.account.clone(), d))
            .collect();
        let rows = rows(
            &states,
            &histograms,
            &incidents,
            &drills,
            &expect,
            now,
            Millis::from(interval_minutes) * 60_000,
        );
        if format == Format::Html {
            print!("{}", html(&policies, &rows, now));
            return Ok(());
        }
        if format == Format::Json {
            for p in &policies {
                println!("{}", serde_json::to_string(p)?);
            }
            for r in &rows {
                println!("{}", serde_json::to_string(r)?);
            }
            return Ok(());
        }
        for p in &policies {
            println!(
                "POLICY {:<10} {} ({}, loaded {}) {}",
                p.function,
                &p.deployed_sha256[..12],
                p.source,
                p.loaded,
                in_words(p)
            );
        }
        let ms = |v: Option<Millis>| v.map_or("-".to_owned(), |v| format!("<={}s", v / 1000));
        println!(
            "{:<13} {:<15} {:<10} {:>9} {:>8} {:>8} {:>10} {:>9}  DRILL",
            "ACCOUNT", "REGION", "STATE", "AGE", "P50", "P99", "HEARTBEATS", "INCIDENTS"
        );
        for r in &rows {
            println!(
                "{:<13} {:<15} {:<10} {:>9} {:>8} {:>8} {:>10} {:>9}  drill: {}",
                r.account,
                r.region,
                r.state,
                r.age_s.map_or("-".to_owned(), |a| format!("{a}s")),
                ms(r.latency_p50_ms),
                ms(r.latency_p99_ms),
                r.heartbeats,
                r.open_incidents,
                r.drill
            );
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(text: &str) -> LoadedRecord {
        LoadedRecord {
            function: "detector".into(),
            sha256: policy_hash(text),
            text: text.into(),
            source: "/tripwire/policy:2".into(),
            loaded: 0,
        }
    }

    #[test]
    fn a_deployed_policy_is_in_sync_only_byte_for_byte_and_drift_names_its_keys() {
        let file = "threshold = 10\n";
        let rows = policy_rows(&[loaded(file)], Some(("p.toml", file)));
        assert_eq!(rows[0].in_sync, Some(true));
        assert!(rows[0].differing_keys.is_empty());
        let rows = policy_rows(&[loaded("threshold = 3\n")], Some(("p.toml", file)));
        assert_eq!(rows[0].in_sync, Some(false));
        assert_eq!(rows[0].differing_keys, ["threshold"]);
        let rows = policy_rows(&[loaded("# c\nthreshold = 10\n")], Some(("p.toml", file)));
        assert_eq!(
            (rows[0].in_sync, rows[0].differing_keys.len()),
            (Some(false), 0)
        );
        let rows = policy_rows(&[loaded(file)], None);
        assert_eq!(
            (rows[0].in_sync, rows[0].local_sha256.as_deref()),
            (None, None)
        );
    }
}
