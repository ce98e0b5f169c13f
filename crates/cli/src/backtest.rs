//! Reading an archive: walk folders, decompress and scan files in parallel, then hand
//! the terminations to the engine's replay. Memory holds one file per worker plus the
//! (small) TerminateInstances calls, never the whole archive.

use anyhow::Result;
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tripwire_engine::replay::{replay_events, ReplayResult};
use tripwire_engine::{scan_events, Events, Policy, ScanCounts};

/// A file that could not be read completely.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CorruptFile {
    /// The file.
    pub path: String,
    /// What went wrong.
    pub error: String,
}

/// Everything a backtest found.
pub struct Report {
    pub files: usize,
    pub bytes: u64,
    pub scan: ScanCounts,
    pub corrupt_files: Vec<CorruptFile>,
    pub result: ReplayResult,
    pub elapsed: Duration,
}

const EXTENSIONS: [&str; 4] = [".json", ".jsonl", ".json.gz", ".jsonl.gz"];

fn wanted(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    EXTENSIONS.iter().any(|e| name.ends_with(e))
}

fn walk(path: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for e in entries {
            walk(&e, out)?;
        }
    } else if wanted(path) {
        out.push(path.to_owned());
    }
    Ok(())
}

struct FileScan {
    bytes: u64,
    counts: ScanCounts,
    events: Events,
    corrupt: Option<CorruptFile>,
}

/// Reads one file; gzip is recognised by its magic bytes, not its name.
fn read_text(path: &Path) -> Result<String, String> {
    let raw = std::fs::read(path).map_err(|e| e.to_string())?;
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        crate::gunzip::gunzip(&raw)?
    } else {
        raw
    };
    String::from_utf8(bytes)
        .map_err(|e| format!("not UTF-8 at byte {}", e.utf8_error().valid_up_to()))
}

fn scan_file(path: &Path) -> FileScan {
    let mut fs = FileScan {
        bytes: 0,
        counts: ScanCounts::default(),
        events: Events::default(),
        corrupt: None,
    };
    let corrupt = |error: String| {
        Some(CorruptFile {
            path: path.display().to_string(),
            error,
        })
    };
    match read_text(path) {
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

/// Runs a backtest over `paths`.
pub fn run(policy: &Policy, paths: &[PathBuf]) -> Result<Report> {
    let start = Instant::now();
    let mut files = Vec::new();
    for p in paths {
        if !p.exists() {
            anyhow::bail!("{}: no such file or folder", p.display());
        }
        walk(p, &mut files)?;
    }
    let scans: Vec<FileScan> = files.par_iter().map(|p| scan_file(p)).collect();
    let mut scan_counts = ScanCounts::default();
    let mut events = Events::default();
    let mut corrupt_files = Vec::new();
    let mut bytes = 0;
    for s in scans {
        bytes += s.bytes;
        scan_counts.merge(&s.counts);
        events.terminations.extend(s.events.terminations);
        events.assumptions.extend(s.events.assumptions);
        events.initiations.extend(s.events.initiations);
        events.heartbeats.extend(s.events.heartbeats);
        events.tampers.extend(s.events.tampers);
        corrupt_files.extend(s.corrupt);
    }
    let result = replay_events(policy, events);
    Ok(Report {
        files: files.len(),
        bytes,
        scan: scan_counts,
        corrupt_files,
        result,
        elapsed: start.elapsed(),
    })
}
