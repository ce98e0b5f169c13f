//! The engine's decisions over fuzzed records: whatever the input, a containment plan
//! only ever targets the caller's own account and name, ignored or protected principals
//! never get one, and no count exceeds the distinct instance IDs seen.
#![no_main]

include!("../checks.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        check_decide(text);
    }
});
