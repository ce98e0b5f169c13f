//! tripwire's detection engine: reads any CloudTrail shape, resolves who terminated
//! which instances, applies the burst rule and renders the containment plan.
//!
//! Boundary: no AWS SDK, no clock, no I/O. Time and window state are arguments, so
//! the same code runs in the Lambda functions, the backtest and the property tests.

pub mod alert;
pub mod armed;
pub mod containment;
pub mod destination;
pub mod incident;
pub mod initiator;
pub mod policy;
pub mod principal;
pub mod provenance;
pub mod record;
pub mod replay;
pub mod termination;
pub mod time;
pub mod window;

pub use containment::{Action, Plan, Target};
pub use incident::Incident;
pub use initiator::{Initiation, Initiator};
pub use policy::{Mode, Policy, PolicyError};
pub use principal::{Principal, PrincipalKind};
pub use provenance::{Assumption, Origin};
pub use termination::{Extracted, Session, Termination};
pub use window::{Classification, Decision, Key, OpenIncident, WindowEvent};

use serde::Serialize;
use std::collections::BTreeMap;

/// Why a record or a termination was not used. The names are part of the backtest's
/// JSON output and the detector's logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SkipReason {
    /// Not valid JSON of the expected shape.
    MalformedRecord,
    /// Valid JSON, but not a CloudTrail API-call record (other detail-types, S3 notifications, …).
    NotCloudTrail,
    /// The EventBridge envelope disagrees with the record it carries (source or account).
    EnvelopeMismatch,
    /// No `eventTime`.
    MissingEventTime,
    /// An `eventTime` that is not a date.
    BadEventTime,
    /// No usable `userIdentity`.
    NoUserIdentity,
    /// No account to attribute the terminations to.
    NoAccount,
    /// A successful call that names no instance.
    NoInstances,
    /// `requestParameters` of an unexpected shape.
    BadRequestParameters,
    /// Terminated inside an allowed account.
    AllowedAccount,
    /// An AWS service-linked role (e.g. Auto Scaling scale-in).
    ServiceLinkedRole,
    /// An `AWSService` identity.
    AwsService,
    /// Matched `ignore_principals`.
    IgnoredPrincipal,
    /// Every instance the call named was already shutting down or terminated
    /// (TerminateInstances is idempotent): nothing died.
    AlreadyTerminated,
    /// More instance IDs than EC2 takes in one call (1,000): not a record EC2 wrote.
    TooManyInstances,
    /// Inside a declared `[[change_windows]]` entry: planned work.
    ChangeWindow,
    /// An `AssumeRole*` record without a usable access key or role: joins nothing.
    BadAssumeRole,
    /// An `AssumeRole*` record whose session issued itself.
    OriginLoop,
    /// Two different sessions behind one access key: no call made with it gets an origin.
    AccessKeyReused,
    /// A call whose access key was issued to another role (or outside its lifetime):
    /// counted as its own principal, without an origin.
    OriginMismatch,
}

impl SkipReason {
    /// The stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::MalformedRecord => "malformed_record",
            SkipReason::NotCloudTrail => "not_cloudtrail",
            SkipReason::EnvelopeMismatch => "envelope_mismatch",
            SkipReason::MissingEventTime => "missing_event_time",
            SkipReason::BadEventTime => "bad_event_time",
            SkipReason::NoUserIdentity => "no_user_identity",
            SkipReason::NoAccount => "no_account",
            SkipReason::NoInstances => "no_instances",
            SkipReason::BadRequestParameters => "bad_request_parameters",
            SkipReason::AllowedAccount => "allowed_account",
            SkipReason::ServiceLinkedRole => "service_linked_role",
            SkipReason::AwsService => "aws_service",
            SkipReason::IgnoredPrincipal => "ignored_principal",
            SkipReason::AlreadyTerminated => "already_terminated",
            SkipReason::TooManyInstances => "too_many_instances",
            SkipReason::ChangeWindow => "change_window",
            SkipReason::BadAssumeRole => "bad_assume_role",
            SkipReason::OriginLoop => "origin_loop",
            SkipReason::AccessKeyReused => "access_key_reused",
            SkipReason::OriginMismatch => "origin_mismatch",
        }
    }
}

/// Counters for what a scan read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ScanCounts {
    /// Records (and record-like parts) read.
    pub records: u64,
    /// Usable records of other API calls.
    pub other_events: u64,
    /// Unusable records, by reason.
    pub skipped: BTreeMap<&'static str, u64>,
}

impl ScanCounts {
    /// Adds another scan's counts.
    pub fn merge(&mut self, other: &ScanCounts) {
        self.records += other.records;
        self.other_events += other.other_events;
        for (k, v) in &other.skipped {
            *self.skipped.entry(k).or_default() += v;
        }
    }
}

/// Every record the engine decides on, from one scan.
#[derive(Debug, Clone, Default)]
pub struct Events {
    /// TerminateInstances calls.
    pub terminations: Vec<Termination>,
    /// `AssumeRole*` calls: where sessions came from.
    pub assumptions: Vec<Assumption>,
    /// Calls that decide terminations a service carries out.
    pub initiations: Vec<Initiation>,
    /// The canary's calls: the tripwire is armed where they come from.
    pub heartbeats: Vec<armed::Heartbeat>,
    /// Calls that may disarm the tripwire (see [`armed::Tamper::is_ours`]).
    pub tampers: Vec<armed::Tamper>,
}

/// Scans a buffer of JSON documents (one, or JSON lines) and collects its terminations,
/// role assumptions and initiator calls.
///
/// On a syntax error the documents before it are kept and the error is returned.
pub fn scan_events(
    text: &str,
    counts: &mut ScanCounts,
    out: &mut Events,
) -> Result<(), serde_json::Error> {
    let mut on_found = |found: record::Found<'_>| {
        counts.records += 1;
        match termination::extract(found) {
            Extracted::Termination(t) => out.terminations.push(*t),
            Extracted::Assumption(a) => {
                counts.other_events += 1;
                out.assumptions.push(*a)
            }
            Extracted::Initiation(i) => {
                counts.other_events += 1;
                out.initiations.push(*i)
            }
            Extracted::Heartbeat(h) => {
                counts.other_events += 1;
                out.heartbeats.push(*h)
            }
            Extracted::Tamper(t) => {
                counts.other_events += 1;
                out.tampers.push(*t)
            }
            Extracted::OtherEvent => counts.other_events += 1,
            Extracted::Skip(r) => *counts.skipped.entry(r.as_str()).or_default() += 1,
        }
    };
    record::walk_stream(text, &mut on_found)
        .map(|_| ())
        .map_err(|(_, e)| e)
}

/// [`scan_events`], keeping only the terminations.
pub fn scan(
    text: &str,
    counts: &mut ScanCounts,
    out: &mut Vec<Termination>,
) -> Result<(), serde_json::Error> {
    let mut events = Events::default();
    let result = scan_events(text, counts, &mut events);
    out.append(&mut events.terminations);
    result
}

/// FNV-1a over `parts`, NUL-separated: stable across runs and platforms (unlike std's
/// randomised hasher), for IDs that the backtest and the detector must agree on.
pub fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, part) in parts.iter().enumerate() {
        let sep: &[u8] = if i == 0 { &[] } else { &[0] };
        for &b in sep.iter().chain(part.as_bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}
