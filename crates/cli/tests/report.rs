//! `tripwire report` opened in a real browser: Debian's headless Chromium loads the file
//! from disk, and the numbers in its DOM must equal the backtest's and tune's JSON lines
//! on the same history; no console error; a screenshot for the docs.

mod common;

use common::{history, json_lines, policy, repo, run, scratch};

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Debian's Chromium (`make setup` installs it), or `$TRIPWIRE_CHROMIUM`.
fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("TRIPWIRE_CHROMIUM") {
        return p.into();
    }
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
            let p = dir.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!("the report is tested in headless Chromium: `make setup` installs Debian's chromium package (or set TRIPWIRE_CHROMIUM)");
}

/// Opens `page` from disk headless: `--dump-dom` gives the DOM after loading, `shot`
/// a screenshot. Returns (DOM, the browser's console messages).
fn browse(page: &Path, shot: Option<&Path>) -> (String, Vec<String>) {
    let profile = page.with_extension("profile");
    let mut cmd = Command::new(chromium());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--hide-scrollbars",
        "--enable-logging=stderr",
        "--v=0",
        "--window-size=1400,2000",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    match shot {
        Some(s) => cmd.arg(format!("--screenshot={}", s.display())),
        None => cmd.arg("--dump-dom"),
    };
    let out = cmd
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let console = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_owned)
        .collect();
    (String::from_utf8(out.stdout).unwrap(), console)
}

/// Every `attr="VALUE"` in `dom`, in order.
fn attr_values<'a>(dom: &'a str, attr: &str) -> Vec<&'a str> {
    let needle = format!(" {attr}=\"");
    dom.match_indices(&needle)
        .map(|(i, _)| {
            let rest = &dom[i + needle.len()..];
            &rest[..rest.find('"').unwrap()]
        })
        .collect()
}

/// The text right after each `data-key="KEY">`.
fn keyed(dom: &str) -> BTreeMap<String, String> {
    dom.match_indices(" data-key=\"")
        .map(|(i, m)| {
            let rest = &dom[i + m.len()..];
            let key = &rest[..rest.find('"').unwrap()];
            let text = &rest[rest.find('>').unwrap() + 1..];
            (key.to_owned(), text[..text.find('<').unwrap()].to_owned())
        })
        .collect()
}

/// The tags carrying `class="CLASS"` (or starting with it), each as its opening tag.
fn tags<'a>(dom: &'a str, open: &str) -> Vec<&'a str> {
    dom.match_indices(open)
        .map(|(i, _)| {
            let rest = &dom[i..];
            &rest[..rest.find('>').unwrap()]
        })
        .collect()
}

fn attr<'a>(tag: &'a str, name: &str) -> &'a str {
    attr_values(tag, name)
        .first()
        .copied()
        .unwrap_or_else(|| panic!("no {name} in {tag}"))
}

#[test]
fn the_report_renders_in_chromium_with_the_backtests_numbers() {
    let dir = scratch("seed");
    let archive = history(&dir);
    let archive = archive.as_str();
    let policy = policy();
    let policy = policy.as_str();
    let page = dir.join("report.html");
    run(&[
        "report",
        "--policy",
        policy,
        "--out",
        page.to_str().unwrap(),
        archive,
    ]);
    let out = run(&["backtest", "--json", "--policy", policy, archive]);
    let lines = json_lines(&out);
    let of = |t: &str| -> Vec<&Value> { lines.iter().filter(|l| l["type"] == t).collect() };
    let out = run(&["tune", "--json", "--policy", policy, archive]);
    let suggestions = json_lines(&out);

    let (dom, console) = browse(&page, None);
    assert!(console.is_empty(), "console: {console:#?}");
    // Self-contained: nothing to fetch, no script.
    assert!(!dom.contains("<script"), "a script in the page");
    assert!(attr_values(&dom, "src").is_empty(), "something fetched");

    // The summary's numbers, each as the JSON line has it.
    let keys = keyed(&dom);
    let summary = of("summary")[0].as_object().unwrap();
    let mut compared = 0;
    for (k, v) in summary {
        match v {
            Value::Number(n) => {
                assert_eq!(keys.get(k), Some(&n.to_string()), "{k}");
                compared += 1;
            }
            Value::Object(m) => {
                for (reason, n) in m {
                    assert_eq!(
                        keys.get(&format!("{k}.{reason}")),
                        Some(&n.to_string()),
                        "{k}.{reason}"
                    );
                    compared += 1;
                }
            }
            _ => {}
        }
    }
    assert!(compared > 15, "{compared} numbers compared");

    // Every incident, with its ID and size; the timeline's marks add up to them.
    let (waves, incidents): (Vec<&Value>, Vec<&Value>) = of("incident")
        .into_iter()
        .partition(|i| i["kind"] == "shutdown_wave");
    assert_eq!(
        incidents.len(),
        61,
        "30 nights in two accounts, and the wipe"
    );
    let want: BTreeSet<(String, String)> = incidents
        .iter()
        .map(|i| {
            (
                i["id"].as_str().unwrap().to_owned(),
                i["instances"].to_string(),
            )
        })
        .collect();
    let rows = tags(&dom, "<tr class=\"incident\"");
    let got: BTreeSet<(String, String)> = rows
        .iter()
        .map(|t| {
            (
                attr(t, "data-id").to_owned(),
                attr(t, "data-instances").to_owned(),
            )
        })
        .collect();
    assert_eq!(rows.len(), incidents.len());
    assert_eq!(got, want);
    assert_eq!(keys["incident_rows"], incidents.len().to_string());
    assert!(dom.contains("<svg id=\"timeline-chart\""));
    let marks: usize = tags(&dom, "<rect class=\"bin\"")
        .iter()
        .map(|t| attr(t, "data-count").parse::<usize>().unwrap())
        .sum();
    assert_eq!(marks, incidents.len());
    let charts = tags(&dom, "<svg class=\"burst\"");
    assert!(!charts.is_empty() && charts.len() <= 12, "{}", charts.len());
    for c in &charts {
        assert!(want.iter().any(|(id, _)| id == attr(c, "data-id")), "{c}");
    }

    // The shutdown waves EC2's events make (each night's in both accounts, and the
    // wipe's), each with its size.
    let nights = waves
        .iter()
        .filter(|w| {
            w["claimed_by"][0]["principal_arn"]
                .as_str()
                .is_some_and(|p| p.ends_with("KarpenterControllerRole"))
        })
        .count();
    assert_eq!((waves.len(), nights), (61, 60));
    let want: BTreeSet<(String, String)> = waves
        .iter()
        .map(|w| {
            (
                w["id"].as_str().unwrap().to_owned(),
                w["instances"].to_string(),
            )
        })
        .collect();
    let got: BTreeSet<(String, String)> = tags(&dom, "<tr class=\"wave\"")
        .iter()
        .map(|t| {
            (
                attr(t, "data-id").to_owned(),
                attr(t, "data-instances").to_owned(),
            )
        })
        .collect();
    assert_eq!(got, want);
    assert_eq!(keys["wave_rows"], waves.len().to_string());

    // Each principal's peak against its threshold, as tune's lines say.
    let bars = tags(&dom, "<g class=\"peak-row\"");
    let want: BTreeSet<(String, String, String)> = suggestions
        .iter()
        .filter(|s| s["principal"] != "*")
        .map(|s| {
            (
                s["principal"].as_str().unwrap().to_owned(),
                s["peak"].to_string(),
                s["threshold"].to_string(),
            )
        })
        .collect();
    let got: BTreeSet<(String, String, String)> = bars
        .iter()
        .map(|t| {
            (
                attr(t, "data-principal").to_owned(),
                attr(t, "data-peak").to_owned(),
                attr(t, "data-threshold").to_owned(),
            )
        })
        .collect();
    assert_eq!(got, want);

    // The heatmap: every (account, region) the canary spoke from, the silent one red.
    let coverage = of("coverage");
    let accounts: BTreeSet<&str> = coverage
        .iter()
        .map(|c| c["account"].as_str().unwrap())
        .collect();
    let regions: BTreeSet<&str> = coverage
        .iter()
        .map(|c| c["region"].as_str().unwrap())
        .collect();
    let heat = tags(&dom, "<table class=\"heat\"")[0];
    assert_eq!(attr(heat, "data-accounts"), accounts.len().to_string());
    assert_eq!(attr(heat, "data-regions"), regions.len().to_string());
    let long_gaps = coverage
        .iter()
        .filter(|c| c["max_gap_s"].as_i64().unwrap() > 6 * 3600)
        .count();
    let amber = coverage
        .iter()
        .filter(|c| (1201..=6 * 3600).contains(&c["max_gap_s"].as_i64().unwrap()))
        .count();
    assert_eq!(
        (keys["cells.long"].as_str(), keys["cells.gap"].as_str()),
        ("0", "1")
    );
    assert_eq!(
        (long_gaps, amber),
        (0, 1),
        "the generator's three-hour silence"
    );
    assert_eq!(keys["cells.ok"], (coverage.len() - 1).to_string());

    // The tamper event.
    assert_eq!(keys["tamper_rows"], of("tamper").len().to_string());
    assert_eq!(tags(&dom, "<tr class=\"tamper\"").len(), 1);

    // The picture the docs show.
    let shot = repo().join("target/report-screenshot.png");
    let _ = std::fs::remove_file(&shot);
    let (_, console) = browse(&page, Some(&shot));
    assert!(console.is_empty(), "console: {console:#?}");
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
}

#[test]
fn the_console_check_sees_a_broken_page() {
    let dir = scratch("broken");
    let page = dir.join("broken.html");
    std::fs::write(
        &page,
        "<html><body><script>noSuchFunction();</script></body></html>",
    )
    .unwrap();
    let (_, console) = browse(&page, None);
    assert!(
        console.iter().any(|l| l.contains("noSuchFunction")),
        "{console:#?}"
    );
}

const REGIONS: [&str; 20] = [
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "ca-central-1",
    "sa-east-1",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-central-1",
    "eu-north-1",
    "eu-south-1",
    "ap-south-1",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-east-1",
    "me-south-1",
];

/// 10,000 incidents over 1,000 accounts, a heartbeat from each of 1,000 accounts × 20
/// regions: the page stays under 5 MB, and every incident is in it.
#[test]
fn ten_thousand_incidents_and_twenty_thousand_cells_stay_under_five_megabytes() {
    use tripwire_synth::{canary_record, terminate_record, Call, Caller};
    let dir = scratch("scale");
    let base = 1_767_225_600_000; // 2026-01-01T00:00:00Z
    let mut text = String::new();
    for k in 0..10_000i64 {
        let account = format!("{}", 500_000_000_000 + k % 1000);
        let caller = Caller::Role {
            account: account.clone(),
            path: "/jobs/".into(),
            name: format!("cleanup-{}", k % 50),
        };
        let ids: Vec<String> = (0..10).map(|j| format!("i-{k:08x}{j:09x}")).collect();
        let rec = terminate_record(&Call {
            caller: &caller,
            account: &account,
            region: REGIONS[(k % 20) as usize],
            time: base + k * 60_000,
            instance_ids: &ids,
            event_id: &format!("scale-{k}"),
            error: None,
            source_ip: "10.0.0.9",
            user_agent: "scale-test",
            invoked_by: None,
            already_terminated: 0,
            session: "s",
            access_key: "EXAMPLEEXAMPLE00",
        });
        text.push_str(&rec.to_string());
        text.push('\n');
    }
    for a in 0..1000i64 {
        for (r, region) in REGIONS.iter().enumerate() {
            let account = format!("{}", 500_000_000_000 + a);
            let rec = canary_record(
                &account,
                region,
                base + r as i64 * 1000,
                &format!("hb-{a}-{r}"),
            );
            text.push_str(&rec.to_string());
            text.push('\n');
        }
    }
    let archive = dir.join("org.jsonl");
    std::fs::write(&archive, text).unwrap();
    let policy = repo().join("config/policy.toml");
    let page = dir.join("report.html");
    run(&[
        "report",
        "--policy",
        policy.to_str().unwrap(),
        "--out",
        page.to_str().unwrap(),
        archive.to_str().unwrap(),
    ]);
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.len() < 5 << 20, "{} bytes", html.len());
    assert_eq!(html.matches("<tr class=\"incident\"").count(), 10_000);
    assert!(html.contains("data-accounts=\"1000\" data-regions=\"20\""));
    // The timeline folds 970 accounts into one row rather than drawing 1,000.
    assert!(html.contains("970 other accounts"), "timeline rows");
    let (dom, console) = browse(&page, None);
    assert!(console.is_empty(), "console: {console:#?}");
    assert_eq!(dom.matches("<tr class=\"incident\"").count(), 10_000);
}

/// A record's strings are text on the page, never markup: an account field that is not
/// an account ID (counted, never acted on) shows escaped wherever the page names it.
#[test]
fn what_records_say_is_escaped() {
    use tripwire_synth::{terminate_record, Call, Caller};
    let dir = scratch("escaped");
    let account = "<b id=x>1</b>";
    let caller = Caller::Role {
        account: "222222222222".into(),
        path: "/".into(),
        name: "cleanup".into(),
    };
    let mut text = String::new();
    for k in 0..12i64 {
        let ids = vec![format!("i-{k:017x}")];
        let rec = terminate_record(&Call {
            caller: &caller,
            account,
            region: "us-east-1",
            time: 1_767_225_600_000 + k * 1000,
            instance_ids: &ids,
            event_id: &format!("esc-{k}"),
            error: None,
            source_ip: "10.0.0.9",
            user_agent: "escape-test",
            invoked_by: None,
            already_terminated: 0,
            session: "s",
            access_key: "EXAMPLEEXAMPLE00",
        });
        text.push_str(&format!("{rec}\n"));
    }
    let archive = dir.join("crafted.jsonl");
    std::fs::write(&archive, text).unwrap();
    let policy = repo().join("config/policy.toml");
    let (policy, archive) = (policy.to_str().unwrap(), archive.to_str().unwrap());
    let out = run(&["backtest", "--json", "--policy", policy, archive]);
    assert!(
        json_lines(&out)
            .iter()
            .any(|l| l["type"] == "incident" && l["account"] == account),
        "the crafted account makes an incident: {out}"
    );
    let page = dir.join("report.html");
    run(&[
        "report",
        "--policy",
        policy,
        "--out",
        page.to_str().unwrap(),
        archive,
    ]);
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(!html.contains("<b id=x>"), "markup from a record");
    assert!(html.contains("&lt;b id=x&gt;1&lt;/b&gt;"));
    let (dom, _) = browse(&page, None);
    assert!(
        !dom.contains("<b id=\"x\">"),
        "the browser made an element of it"
    );
}
