//! Why a record or a call was not used, and what a scan counted: the names are part
//! of the backtest's JSON output and the detector's logs.

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
    /// A successful destructive call (other than TerminateInstances) whose request does
    /// not name what it destroyed.
    NoResourceId,
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
    /// The containment drill's role (`tripwire-drill`): it holds no permission, only
    /// StackSets may create it, and the drill contains it weekly on purpose.
    DrillRole,
    /// An `AssumeRole*` record without a usable access key or role: joins nothing.
    BadAssumeRole,
    /// An EC2 state-change event without a usable instance ID, state, region or ID.
    BadStateChange,
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
            SkipReason::NoResourceId => "no_resource_id",
            SkipReason::BadRequestParameters => "bad_request_parameters",
            SkipReason::AllowedAccount => "allowed_account",
            SkipReason::ServiceLinkedRole => "service_linked_role",
            SkipReason::AwsService => "aws_service",
            SkipReason::IgnoredPrincipal => "ignored_principal",
            SkipReason::AlreadyTerminated => "already_terminated",
            SkipReason::TooManyInstances => "too_many_instances",
            SkipReason::ChangeWindow => "change_window",
            SkipReason::DrillRole => "drill_role",
            SkipReason::BadAssumeRole => "bad_assume_role",
            SkipReason::BadStateChange => "bad_state_change",
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
