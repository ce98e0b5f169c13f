//! Every real public CloudTrail record in tests/fixtures/cloudtrail-corpus goes through
//! the engine; the outcome must match tests/fixtures/corpus-expectations.toml exactly.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use tripwire_engine::containment::{plan, Culprit};
use tripwire_engine::window::{classify, Classification};
use tripwire_engine::{scan, Policy, ScanCounts, Termination};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expectations {
    terminate: BTreeMap<String, TerminateExpect>,
    files: BTreeMap<String, FileExpect>,
    tamper: Vec<TamperExpect>,
}

#[derive(Deserialize, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
struct TamperExpect {
    event_name: String,
    account: String,
    target: String,
    principal_arn: String,
    error_code: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TerminateExpect {
    principal: String,
    #[serde(rename = "type")]
    kind: String,
    principal_account: String,
    account: String,
    instances: usize,
    #[serde(default)]
    cross_account: bool,
    not_counted: Option<String>,
    contain: Option<String>,
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileExpect {
    records: u64,
    terminations: usize,
    other: u64,
    #[serde(default)]
    skipped: BTreeMap<String, u64>,
    #[serde(default)]
    corrupt: bool,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn expectations() -> Expectations {
    let text = std::fs::read_to_string(root().join("corpus-expectations.toml")).unwrap();
    toml::from_str(&text).unwrap()
}

fn read(path: &Path) -> String {
    let raw = std::fs::read(path).unwrap();
    if path.extension().is_some_and(|e| e == "gz") {
        let mut s = String::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_string(&mut s)
            .unwrap();
        s
    } else {
        String::from_utf8(raw).unwrap()
    }
}

fn scan_file(path: &Path) -> (ScanCounts, Vec<Termination>, bool) {
    let mut counts = ScanCounts::default();
    let mut terms = Vec::new();
    let corrupt = scan(&read(path), &mut counts, &mut terms).is_err();
    (counts, terms, corrupt)
}

fn corpus() -> PathBuf {
    root().join("cloudtrail-corpus")
}

#[test]
fn terminate_records_resolve_to_the_right_principal_in_every_shape() {
    let policy = Policy::from_toml("containment = \"revoke\"").unwrap();
    let exp = expectations();
    let dir = corpus().join("terminate");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap();
        let stem = name
            .trim_end_matches(".json")
            .trim_end_matches(".eventbridge");
        let e = exp
            .terminate
            .get(stem)
            .unwrap_or_else(|| panic!("{name}: no expectation"));
        let (counts, terms, corrupt) = scan_file(&path);
        assert!(!corrupt && counts.skipped.is_empty(), "{name}: {counts:?}");
        assert_eq!(terms.len(), 1, "{name}");
        let t = &terms[0];
        let got = (
            &t.principal.arn,
            t.principal.kind.type_name(),
            t.principal.account.as_deref(),
            &t.account,
            t.instance_ids.len(),
        );
        assert_eq!(
            got,
            (
                &e.principal,
                e.kind.as_str(),
                Some(e.principal_account.as_str()),
                &e.account,
                e.instances
            ),
            "{name}"
        );
        match classify(&policy, t) {
            Classification::NotCounted(r) => {
                assert_eq!(Some(r.as_str()), e.not_counted.as_deref(), "{name}")
            }
            Classification::Counted { cross_account, .. } => {
                assert!(e.not_counted.is_none(), "{name} should not be counted");
                assert_eq!(cross_account, e.cross_account, "{name}");
                let p = plan(&policy, &t.principal, &Culprit::of_call(t), t.kind());
                assert_eq!(
                    Some(format!("{:?}", p.action).to_lowercase()),
                    e.contain,
                    "{name}: {}",
                    p.reason
                );
                if let Some(phrase) = &e.reason {
                    assert!(p.reason.contains(phrase.as_str()), "{name}: {}", p.reason);
                }
            }
            Classification::Attempt(_) => panic!("{name}: unexpected attempt"),
        }
        checked += 1;
    }
    assert_eq!(
        checked,
        2 * exp.terminate.len(),
        "every shape, raw and wrapped"
    );
}

#[test]
fn a_record_and_its_eventbridge_envelope_give_the_same_termination() {
    let dir = corpus().join("terminate");
    for stem in expectations().terminate.keys() {
        let (_, raw, _) = scan_file(&dir.join(format!("{stem}.json")));
        let (_, wrapped, _) = scan_file(&dir.join(format!("{stem}.eventbridge.json")));
        assert_eq!(raw, wrapped, "{stem}");
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(&p, out)
        } else if p.extension().is_some_and(|x| x == "json" || x == "jsonl") {
            out.push(p)
        }
    }
}

#[test]
fn every_mixed_file_is_read_exactly_as_expected() {
    let exp = expectations();
    let mut files = Vec::new();
    walk(&corpus().join("mixed"), &mut files);
    assert_eq!(
        files.len(),
        exp.files.len(),
        "every corpus file has an expectation"
    );
    for path in files {
        let rel = path
            .strip_prefix(corpus())
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let e = exp
            .files
            .get(&rel)
            .unwrap_or_else(|| panic!("{rel}: no expectation"));
        let (counts, terms, corrupt) = scan_file(&path);
        let skipped: BTreeMap<String, u64> = counts
            .skipped
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        assert_eq!(
            (
                counts.records,
                terms.len(),
                counts.other_events,
                &skipped,
                corrupt
            ),
            (e.records, e.terminations, e.other, &e.skipped, e.corrupt),
            "{rel}"
        );
        // Nothing is lost: every record is a call, another event, or a named skip.
        assert_eq!(
            counts.records,
            terms.len() as u64 + counts.other_events + skipped.values().sum::<u64>(),
            "{rel}"
        );
    }
}

#[test]
fn gzipped_copies_read_the_same_as_the_originals() {
    for (gz, plain) in [
        ("mixed/aws_cloudtrail_processing_library/SerializerTestFileCompact.json.gz", "mixed/aws_cloudtrail_processing_library/SerializerTestFileCompact.json"),
        (
            "mixed/trailscraper_111111111111_CloudTrail_eu-central-1_20171211T1505Z_A6kvhMoVeCsc7v8U.json.gz",
            "mixed/trailscraper_111111111111_CloudTrail_eu-central-1_20171211T1505Z_A6kvhMoVeCsc7v8U.json",
        ),
    ] {
        let a = scan_file(&corpus().join(gz));
        let b = scan_file(&corpus().join(plain));
        assert_eq!((a.0, a.1), (b.0, b.1), "{gz}");
    }
}

#[test]
fn every_trail_tampering_call_in_the_corpus_is_found_once() {
    let mut files = Vec::new();
    walk(&corpus(), &mut files);
    let mut events = tripwire_engine::Events::default();
    for path in files {
        let _ = tripwire_engine::scan_events(&read(&path), &mut ScanCounts::default(), &mut events);
    }
    assert!(events.heartbeats.is_empty(), "no canary in the corpus");
    let result = tripwire_engine::replay::replay_events(&Policy::from_toml("").unwrap(), events);
    let got: Vec<TamperExpect> = result
        .tampers
        .into_iter()
        .map(|t| TamperExpect {
            event_name: t.event_name,
            account: t.account,
            target: t.target.to_string(),
            principal_arn: t.principal_arn,
            error_code: t.error_code,
        })
        .collect();
    assert_eq!(got, expectations().tamper);
}
