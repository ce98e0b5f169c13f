//! `tripwire check-policy` as a user runs it, piped into a reader that stops early.

use std::process::{Command, Stdio};

#[test]
fn a_reader_that_closed_the_pipe_is_no_failure_and_no_panic() {
    let policy = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/policy.toml");
    // The reader is gone before the first byte is written (`| head -0`): every write
    // fails with a broken pipe.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_tripwire"))
        .args(["check-policy", policy])
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
