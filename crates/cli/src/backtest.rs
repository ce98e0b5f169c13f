//! Reading an archive: walk folders and S3 prefixes, decompress and scan files in
//! parallel, then hand the terminations to the engine's replay. Memory holds one file per
//! worker plus the (small) TerminateInstances calls, never the whole archive.

use crate::reading::{scan_text, wanted_name, CorruptFile, Narrow, Progress, Totals};
use anyhow::Result;
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tripwire_engine::replay::{replay_events, ReplayResult};
use tripwire_engine::{Policy, ScanCounts};

/// Everything a backtest found.
pub struct Report {
    pub files: usize,
    pub bytes: u64,
    pub scan: ScanCounts,
    pub corrupt_files: Vec<CorruptFile>,
    pub result: ReplayResult,
    pub elapsed: Duration,
}

fn walk(path: &Path, narrow: &Narrow, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if path.is_dir() {
        if !narrow.admits(&path.to_string_lossy()) {
            return Ok(());
        }
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for e in entries {
            walk(&e, narrow, out)?;
        }
    } else {
        let name = path.to_string_lossy();
        if wanted_name(&name) && narrow.admits(&name) {
            out.push(path.to_owned());
        }
    }
    Ok(())
}

/// Reads one file; gzip is recognised by its magic bytes, not its name.
fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    let raw = std::fs::read(path).map_err(|e| e.to_string())?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        crate::gunzip::gunzip(&raw)
    } else {
        Ok(raw)
    }
}

/// Runs a backtest over `inputs` (local files and folders, `s3://` URIs), keeping what
/// `narrow` admits.
pub fn run(policy: &Policy, inputs: &[PathBuf], narrow: &Narrow) -> Result<Report> {
    let start = Instant::now();
    let progress = Progress::new();
    let mut files = Vec::new();
    let mut uris = Vec::new();
    for p in inputs {
        if let Some(uri) = crate::s3::Uri::parse(&p.to_string_lossy()) {
            uris.push(uri?);
            continue;
        }
        if !p.exists() {
            anyhow::bail!("{}: no such file or folder", p.display());
        }
        walk(p, narrow, &mut files)?;
    }
    progress.add_files(files.len());
    let mut totals = files
        .par_iter()
        .fold(Totals::default, |t, p| {
            let s = scan_text(&p.display().to_string(), read_file(p));
            progress.file_done(&s);
            t.add(s)
        })
        .reduce(Totals::default, Totals::merge);
    if !uris.is_empty() {
        totals = totals.merge(crate::s3::scan(&uris, narrow, &progress)?);
    }
    progress.finish();
    let result = replay_events(policy, totals.events);
    Ok(Report {
        files: totals.files,
        bytes: totals.bytes,
        scan: totals.counts,
        corrupt_files: totals.corrupt,
        result,
        elapsed: start.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reading::parse_day;

    fn narrow(since: &str, until: &str, accounts: &[&str], regions: &[&str]) -> Narrow {
        Narrow {
            since: (!since.is_empty()).then(|| parse_day(since).unwrap()),
            until: (!until.is_empty()).then(|| parse_day(until).unwrap()),
            accounts: accounts.iter().map(|a| a.to_string()).collect(),
            regions: regions.iter().map(|r| r.to_string()).collect(),
        }
    }

    #[test]
    fn the_layout_narrows_by_account_region_and_day_and_keeps_what_it_cannot_read() {
        let n = narrow(
            "2018-01-09",
            "2018-01-10",
            &["111111111111"],
            &["us-east-1"],
        );
        let key =
            "logs/AWSLogs/o-abc123def4/111111111111/CloudTrail/us-east-1/2018/01/09/f.json.gz";
        for (k, want) in [
            (key, true),
            (
                "logs/AWSLogs/o-abc123def4/111111111111/CloudTrail/us-east-1/2018/01/11/f.json.gz",
                false,
            ),
            (
                "logs/AWSLogs/o-abc123def4/111111111111/CloudTrail/us-east-1/2018/01/",
                true,
            ),
            (
                "logs/AWSLogs/o-abc123def4/111111111111/CloudTrail/us-east-1/2018/02/",
                false,
            ),
            (
                "logs/AWSLogs/o-abc123def4/111111111111/CloudTrail/us-east-1/2017/",
                false,
            ),
            (
                "logs/AWSLogs/o-abc123def4/111111111111/CloudTrail/eu-west-1/",
                false,
            ),
            ("logs/AWSLogs/o-abc123def4/222222222222/", false),
            (
                "logs/AWSLogs/o-abc123def4/111111111111/CloudTrail-Digest/",
                false,
            ),
            (
                "AWSLogs/111111111111/CloudTrail/us-east-1/2018/01/10/x.json.gz",
                true,
            ),
            ("logs/", true),
            ("logs/AWSLogs/", true),
            ("elsewhere/file.json", true),
        ] {
            assert_eq!(n.admits(k), want, "{k}");
        }
        assert!(!n.settled("logs/AWSLogs/o-abc123def4/111111111111/CloudTrail/us-east-1/2018/01/"));
        assert!(
            n.settled("logs/AWSLogs/o-abc123def4/111111111111/CloudTrail/us-east-1/2018/01/09/")
        );
        let regions_only = narrow("", "", &[], &["us-east-1"]);
        assert!(regions_only.settled("AWSLogs/111111111111/CloudTrail/us-east-1/"));
        assert!(!regions_only.settled("AWSLogs/111111111111/CloudTrail/"));
        let nothing = Narrow::default();
        assert!(nothing.settled("AWSLogs/111111111111/CloudTrail/"));
        assert!(
            !nothing.settled("AWSLogs/111111111111/"),
            "Digest folders are never read"
        );
        assert!(nothing.settled("some/prefix/"));
    }

    #[test]
    fn days_are_checked() {
        assert_eq!(parse_day("2018-01-09").unwrap(), 20180109);
        for bad in [
            "2018-1-9",
            "2018-13-01",
            "20180109",
            "2018-01-09-01",
            "yyyy-mm-dd",
        ] {
            assert!(parse_day(bad).is_err(), "{bad}");
        }
    }
}
