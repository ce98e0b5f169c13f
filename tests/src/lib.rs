//! The local AWS stack, with real parts: moto server on loopback for DynamoDB, SNS, SQS,
//! IAM and STS, and cargo-lambda's runtime emulator running the real detector and
//! responder binaries.
//!
//! - [`stack`]: the processes and the resources, and invoking the functions;
//! - [`probe`]: what tests read back (alerts, IAM policies, the actions each caller made);
//! - [`events`]: what tests send, built by `tripwire-synth`;
//! - [`runaway`]: a real runaway through moto's EC2 with IAM enforced.

pub mod events;
pub mod probe;
pub mod runaway;
pub mod stack;

pub use events::Burst;
pub use probe::{largest_of, percent_decode, Received};
pub use stack::*;
