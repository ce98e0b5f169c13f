//! tripwire's detection engine: reads any CloudTrail shape, resolves who terminated
//! which instances, applies the burst rule and renders the containment plan.
//!
//! Boundary: no AWS SDK, no clock, no I/O. Time and window state are arguments, so
//! the same code runs in the Lambda functions, the backtest and the property tests.

// The floors, bottom to top (docs/architecture.md); a module imports only its own floor
// and those below, checked by tests/floors.rs.
// 1. Names and records.
pub mod catalogue;
pub mod deployed;
pub mod names;
pub mod policy;
pub mod principal;
pub mod record;
pub mod skip;
pub mod time;
// 2. Facts.
pub mod armed;
pub mod initiator;
pub mod provenance;
pub mod scan;
pub mod termination;
// 3. Counting.
pub mod window;
// 4. Decisions.
pub mod alert;
pub mod containment;
pub mod destination;
pub mod drill;
pub mod incident;
pub mod lifecycle;
pub mod replay;
pub mod tune;
pub mod wave;

pub use containment::{Action, Plan, Target};
pub use incident::Incident;
pub use initiator::{Initiation, Initiator};
pub use policy::{Mode, Policy, PolicyError};
pub use principal::{Principal, PrincipalKind};
pub use provenance::{Assumption, Origin};
pub use record::fnv1a;
pub use scan::{scan, scan_events, Events, Extracted};
pub use skip::{ScanCounts, SkipReason};
pub use termination::{Session, Termination};
pub use window::{Classification, Decision, Key, OpenIncident, WindowEvent};
