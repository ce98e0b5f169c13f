//! Any bytes, as any input form: no panic, nothing lost, and every termination the
//! engine extracts is internally consistent.
#![no_main]

include!("../checks.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        check_parse(text);
    }
});
