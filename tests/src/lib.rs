//! The local AWS stack, with real parts: moto server on loopback for DynamoDB, SNS, SQS,
//! IAM and STS, and cargo-lambda's runtime emulator running the real detector and
//! responder binaries.
//!
//! - [`stack`]: the processes and the resources, and invoking the functions;
//! - [`probe`]: what tests read back (alerts, IAM policies, the actions each caller made);
//! - [`events`]: what tests send, built by `tripwire-synth`;
//! - [`runaway`]: a real runaway through moto's EC2 with IAM enforced.

pub mod events;
pub mod member;
pub mod probe;
pub mod runaway;
pub mod stack;

pub use events::Burst;
pub use probe::{largest_of, percent_decode, Received};
pub use stack::*;

/// Ten minutes ago, on a whole minute, once per process: when the tests' bursts begin.
/// The real functions read the system clock, and a burst older than its window plus the
/// policy's `max_delivery_delay` is history they page about and never contain.
pub fn recent() -> i64 {
    static AT: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *AT.get_or_init(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        (now / 60_000 - 10) * 60_000
    })
}
