//! What reading an archive shares, from disk or from S3: which keys and files to read
//! (the CloudTrail key layout narrowed by day, account and region), each file's scan,
//! the running totals and the progress bar.

use anyhow::Result;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use tripwire_engine::catalogue::TERMINATE_INSTANCES;
use tripwire_engine::{scan_events, Events, ScanCounts};

const EXTENSIONS: [&str; 4] = [".json", ".jsonl", ".json.gz", ".jsonl.gz"];

/// A file that could not be read completely.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CorruptFile {
    /// The file.
    pub path: String,
    /// What went wrong.
    pub error: String,
}

/// Whether a file or key is one the backtest reads, by its name.
pub fn wanted_name(name: &str) -> bool {
    let name = name.rsplit('/').next().unwrap_or(name);
    EXTENSIONS.iter().any(|e| name.ends_with(e))
}

/// A UTC day, as `YYYYMMDD`.
type Day = u32;

/// What `--since`, `--until`, `--accounts` and `--regions` keep, read from the CloudTrail
/// key layout `AWSLogs/[o-ID/]ACCOUNT/CloudTrail/REGION/YYYY/MM/DD/…`. A key without
/// that layout is kept: there is nothing to narrow it by. Within the layout only the
/// `CloudTrail` folder is read (not `CloudTrail-Digest` or `CloudTrail-Insight`).
#[derive(Debug, Clone, Default)]
pub struct Narrow {
    /// The first day kept.
    pub since: Option<Day>,
    /// The last day kept.
    pub until: Option<Day>,
    /// Accounts kept (every one when empty).
    pub accounts: BTreeSet<String>,
    /// Regions kept (every one when empty).
    pub regions: BTreeSet<String>,
}

/// Parses `YYYY-MM-DD` into a [`Day`].
pub fn parse_day(s: &str) -> Result<Day> {
    let bad = || anyhow::anyhow!("`{s}` is not a day (YYYY-MM-DD)");
    let mut it = s.split('-');
    let (y, m, d) = (
        it.next().ok_or_else(bad)?,
        it.next().ok_or_else(bad)?,
        it.next().ok_or_else(bad)?,
    );
    if it.next().is_some() || y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return Err(bad());
    }
    let (y, m, d): (u32, u32, u32) = (
        y.parse().map_err(|_| bad())?,
        m.parse().map_err(|_| bad())?,
        d.parse().map_err(|_| bad())?,
    );
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    Ok(y * 10_000 + m * 100 + d)
}

/// The parts of a key the layout names, as far as the key goes.
#[derive(Debug, Default, PartialEq, Eq)]
struct Parts<'a> {
    account: Option<&'a str>,
    service: Option<&'a str>,
    region: Option<&'a str>,
    /// Year, month, day, as far as known.
    date: Vec<u32>,
}

fn parts(key: &str) -> Option<Parts<'_>> {
    let mut it = key
        .split('/')
        .filter(|c| !c.is_empty())
        .skip_while(|c| *c != "AWSLogs");
    it.next()?;
    let mut it = it.peekable();
    if it.peek().is_some_and(|c| c.starts_with("o-")) {
        it.next();
    }
    let mut p = Parts {
        account: it.next(),
        service: it.next(),
        region: it.next(),
        date: Vec::new(),
    };
    for c in it.take(3) {
        match c.parse::<u32>() {
            Ok(n) if c.len() <= 4 => p.date.push(n),
            _ => break,
        }
    }
    Some(p)
}

impl Narrow {
    /// Nothing to narrow by.
    pub fn is_empty(&self) -> bool {
        self.since.is_none()
            && self.until.is_none()
            && self.accounts.is_empty()
            && self.regions.is_empty()
    }

    /// Whether `key` (a prefix or a whole key) can hold what the filters keep.
    pub fn admits(&self, key: &str) -> bool {
        let Some(p) = parts(key) else {
            return true;
        };
        if p.account
            .is_some_and(|a| !self.accounts.is_empty() && !self.accounts.contains(a))
        {
            return false;
        }
        if p.service.is_some_and(|s| s != "CloudTrail") {
            return false;
        }
        if p.region
            .is_some_and(|r| !self.regions.is_empty() && !self.regions.contains(r))
        {
            return false;
        }
        // The days this much of the date spans, against the kept range.
        let (first, last) = match p.date[..] {
            [] => return true,
            [y] => (y * 10_000 + 101, y * 10_000 + 1231),
            [y, m] => (y * 10_000 + m * 100 + 1, y * 10_000 + m * 100 + 31),
            [y, m, d, ..] => {
                let day = y * 10_000 + m * 100 + d;
                (day, day)
            }
        };
        !matches!(self.since, Some(s) if last < s) && !matches!(self.until, Some(u) if first > u)
    }

    /// Whether everything under the prefix `key` is kept or ruled out by the key alone
    /// from here on, so it can be listed without a delimiter.
    pub fn settled(&self, key: &str) -> bool {
        let Some(p) = parts(key) else {
            // Outside the layout: walk down until AWSLogs shows, unless nothing narrows.
            return self.is_empty() && !key.is_empty();
        };
        let dated = self.since.is_some() || self.until.is_some();
        match (dated, self.regions.is_empty()) {
            (true, _) => p.date.len() >= 3,
            (false, false) => p.region.is_some(),
            (false, true) => p.service.is_some(),
        }
    }
}

/// Counts shown while a backtest runs: on a terminal only (stderr; nothing on a pipe).
pub struct Progress {
    bar: indicatif::ProgressBar,
    bytes: AtomicU64,
    records: AtomicU64,
    calls: AtomicU64,
}

impl Progress {
    /// A progress bar on stderr, hidden unless stderr is a terminal.
    pub fn new() -> Self {
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(0),
            indicatif::ProgressDrawTarget::stderr(),
        );
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:20}] {pos}/{len} files, {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        Progress {
            bar,
            bytes: AtomicU64::new(0),
            records: AtomicU64::new(0),
            calls: AtomicU64::new(0),
        }
    }

    /// More files to read.
    pub fn add_files(&self, n: usize) {
        self.bar.inc_length(n as u64);
    }

    /// One file read.
    pub fn file_done(&self, s: &FileScan) {
        let bytes = self.bytes.fetch_add(s.bytes, Ordering::Relaxed) + s.bytes;
        let records =
            self.records.fetch_add(s.counts.records, Ordering::Relaxed) + s.counts.records;
        let n = s.events.terminations.len() as u64;
        let calls = self.calls.fetch_add(n, Ordering::Relaxed) + n;
        self.bar.set_message(format!(
            "{:.1} MB, {records} records, {calls} {}",
            bytes as f64 / 1e6,
            TERMINATE_INSTANCES.event_name
        ));
        self.bar.inc(1);
    }

    /// Done scanning: the bar gives way to the summary line.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// One file's scan.
pub struct FileScan {
    pub bytes: u64,
    pub counts: ScanCounts,
    pub events: Events,
    pub corrupt: Option<CorruptFile>,
}

/// What every file read so far adds up to: files are folded in as they are read, so
/// memory holds the calls, never a list of the archive's files.
#[derive(Default)]
pub struct Totals {
    pub files: usize,
    pub bytes: u64,
    pub counts: ScanCounts,
    pub events: Events,
    pub corrupt: Vec<CorruptFile>,
}

impl Totals {
    /// Folds in one file.
    pub fn add(mut self, s: FileScan) -> Self {
        self.files += 1;
        self.bytes += s.bytes;
        self.counts.merge(&s.counts);
        self.merge_events(s.events);
        self.corrupt.extend(s.corrupt);
        self
    }

    /// Folds in another total.
    pub fn merge(mut self, other: Totals) -> Self {
        self.files += other.files;
        self.bytes += other.bytes;
        self.counts.merge(&other.counts);
        self.merge_events(other.events);
        self.corrupt.extend(other.corrupt);
        self
    }

    fn merge_events(&mut self, e: Events) {
        // Every field named, so a new kind of event cannot be dropped here unseen.
        let Events {
            terminations,
            assumptions,
            initiations,
            heartbeats,
            tampers,
            destructive_tampers,
            state_changes,
        } = e;
        self.events.terminations.extend(terminations);
        self.events.assumptions.extend(assumptions);
        self.events.initiations.extend(initiations);
        self.events.heartbeats.extend(heartbeats);
        self.events.tampers.extend(tampers);
        self.events.destructive_tampers += destructive_tampers;
        self.events.state_changes.extend(state_changes);
    }
}

/// Scans one file's bytes (or why they could not be read), named `name`.
pub fn scan_text(name: &str, bytes: Result<Vec<u8>, String>) -> FileScan {
    let mut fs = FileScan {
        bytes: 0,
        counts: ScanCounts::default(),
        events: Events::default(),
        corrupt: None,
    };
    let corrupt = |error: String| {
        Some(CorruptFile {
            path: name.to_owned(),
            error,
        })
    };
    let text = bytes.and_then(|b| {
        String::from_utf8(b)
            .map_err(|e| format!("not UTF-8 at byte {}", e.utf8_error().valid_up_to()))
    });
    match text {
        Ok(text) => {
            fs.bytes = text.len() as u64;
            if let Err(e) = scan_events(&text, &mut fs.counts, &mut fs.events) {
                fs.corrupt = corrupt(format!("JSON: {e}"));
            }
        }
        Err(e) => fs.corrupt = corrupt(e),
    }
    fs
}
