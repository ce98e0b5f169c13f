//! What the CLI tests share: the binary as a user runs it, the repository, a scratch
//! folder, and JSON lines.

// Each test crate uses its own share of these.
#![allow(dead_code)]

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

/// Runs `tripwire ARGS`: (success, stdout, stderr).
pub fn tripwire(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tripwire"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// The repository's root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A fresh, empty folder for one test of this process.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tripwire-cli-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Each line of `stdout` as JSON.
pub fn json_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// The shipped policy file.
pub fn policy() -> String {
    repo().join("config/policy.toml").display().to_string()
}

/// Runs `tripwire ARGS`, which must succeed: its stdout.
pub fn run(args: &[&str]) -> String {
    let (ok, out, err) = tripwire(args);
    assert!(ok, "tripwire {}: {err}", args.join(" "));
    out
}

/// A generated 30-day history under `dir` (a node autoscaler's nightly scale-ins, the
/// seed wipe on the last day, the canary, a tamper call and EC2's state-change events):
/// its path.
pub fn history(dir: &std::path::Path) -> String {
    let archive = dir.join("archive").display().to_string();
    run(&[
        "generate",
        "--out",
        &archive,
        "--size-mb",
        "1",
        "--days",
        "30",
    ]);
    archive
}
