//! Every input the fuzzers ever crashed on, kept in tests/fixtures/fuzz-regressions and
//! run through the same invariant checks the fuzz targets assert, on stable Rust.

include!("../../../fuzz/checks.rs");

#[test]
fn every_past_fuzz_crash_now_holds_every_invariant() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/fuzz-regressions");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        check_parse(&text);
        check_decide(&text);
        n += 1;
    }
    assert!(n > 0, "no regression inputs in {}", dir.display());
}
