//! Any bytes, as any input form: no panic, nothing lost, and every termination the
//! engine extracts is internally consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tripwire_engine::{scan, ScanCounts};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut counts = ScanCounts::default();
    let mut terms = Vec::new();
    let _ = scan(text, &mut counts, &mut terms);
    // Nothing lost: every record found is a termination, another event, or a named skip.
    let skipped: u64 = counts.skipped.values().sum();
    assert_eq!(counts.records, terms.len() as u64 + counts.other_events + skipped);
    for t in &terms {
        assert!(t.event_time >= 0);
        let mut ids = t.instance_ids.clone();
        ids.dedup();
        assert_eq!(ids.len(), t.instance_ids.len(), "instance IDs are distinct");
        assert!(!t.event_id.is_empty());
    }
});
