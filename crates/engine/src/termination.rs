//! From a CloudTrail record to a [`Termination`]: the only event the engine decides on.

use crate::principal::{self, sanitize, Principal};
use crate::record::{Document, Envelope, Found, TerminateParameters, UserIdentity};
use crate::time::{parse_event_time, Millis};
use crate::SkipReason;
use serde::Serialize;

/// One `ec2:TerminateInstances` call, successful or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Termination {
    /// CloudTrail `eventID`, the deduplication key (a content hash when absent).
    pub event_id: String,
    /// CloudTrail `eventTime`.
    pub event_time: Millis,
    /// Who made the call.
    pub principal: Principal,
    /// Where the instances die (`recipientAccountId`).
    pub account: String,
    /// `awsRegion`.
    pub region: String,
    /// Distinct instance IDs asked for, sorted.
    pub instance_ids: Vec<String>,
    /// Set when the call failed (denied, dry run, …): then nothing was terminated.
    pub error_code: Option<String>,
    /// `sourceIPAddress`.
    pub source_ip: Option<String>,
    /// `userAgent`.
    pub user_agent: Option<String>,
}

impl Termination {
    /// A failed call terminated nothing; it only counts as an attempt.
    pub fn is_attempt(&self) -> bool {
        self.error_code.is_some()
    }
}

/// What a record turned out to be.
#[derive(Debug)]
pub enum Extracted {
    /// A TerminateInstances call.
    Termination(Box<Termination>),
    /// A usable record of another API call.
    OtherEvent,
    /// Unusable, with the reason.
    Skip(SkipReason),
}

/// The one event this engine watches.
pub const EVENT_SOURCE: &str = "ec2.amazonaws.com";
/// The one call this engine watches.
pub const EVENT_NAME: &str = "TerminateInstances";

/// Turns a found record into a termination, another event, or a named skip.
pub fn extract(found: Found<'_>) -> Extracted {
    match found {
        Found::Skip(r) => Extracted::Skip(r),
        Found::Record(doc, envelope) => match from_record(&doc, envelope.as_ref()) {
            Ok(Some(t)) => Extracted::Termination(Box::new(t)),
            Ok(None) => Extracted::OtherEvent,
            Err(r) => Extracted::Skip(r),
        },
    }
}

fn from_record(
    doc: &Document<'_>,
    envelope: Option<&Envelope<'_>>,
) -> Result<Option<Termination>, SkipReason> {
    if doc.event_source.get() != Some(EVENT_SOURCE) || doc.event_name.get() != Some(EVENT_NAME) {
        return Ok(None);
    }
    let recipient = doc.recipient_account_id.get();
    if let Some(env) = envelope {
        // Only AWS can emit `aws.*` sources, and EventBridge stamps the emitting account:
        // a record that disagrees with its envelope was crafted, so it is never acted on.
        if env.source.get() != Some("aws.ec2") {
            return Err(SkipReason::EnvelopeMismatch);
        }
        if let (Some(a), Some(r)) = (env.account.get(), recipient) {
            if a != r {
                return Err(SkipReason::EnvelopeMismatch);
            }
        }
    }
    let time = doc.event_time.get().ok_or(SkipReason::MissingEventTime)?;
    // Before 1970 is no CloudTrail time, and window keys sort times as unsigned digits.
    let event_time = parse_event_time(time)
        .filter(|t| *t >= 0)
        .ok_or(SkipReason::BadEventTime)?;
    let ui_raw = doc.user_identity.ok_or(SkipReason::NoUserIdentity)?;
    let ui: UserIdentity =
        serde_json::from_str(ui_raw.get()).map_err(|_| SkipReason::NoUserIdentity)?;
    let principal = principal::resolve(&ui).map_err(|_| SkipReason::NoUserIdentity)?;
    let account = recipient
        .or(envelope.and_then(|e| e.account.get()))
        .or(principal.account.as_deref())
        .ok_or(SkipReason::NoAccount)?;
    let error_code = doc.error_code.get().map(sanitize);
    let instance_ids = instance_ids(doc)?;
    if instance_ids.is_empty() && error_code.is_none() {
        return Err(SkipReason::NoInstances);
    }
    let event_id = match doc.event_id.get() {
        Some(id) => sanitize(id),
        None => content_id(&[
            doc.request_id.get().unwrap_or(""),
            time,
            account,
            &principal.arn,
            &instance_ids.join(","),
            error_code.as_deref().unwrap_or(""),
        ]),
    };
    Ok(Some(Termination {
        event_id,
        event_time,
        account: sanitize(account),
        region: sanitize(doc.aws_region.get().unwrap_or("unknown")),
        instance_ids,
        error_code,
        source_ip: doc.source_ip_address.get().map(sanitize),
        user_agent: doc.user_agent.get().map(sanitize),
        principal,
    }))
}

fn instance_ids(doc: &Document<'_>) -> Result<Vec<String>, SkipReason> {
    let Some(raw) = doc.request_parameters else {
        return Ok(Vec::new());
    };
    let params: TerminateParameters =
        serde_json::from_str(raw.get()).map_err(|_| SkipReason::BadRequestParameters)?;
    let mut ids: Vec<String> = params
        .instances_set
        .and_then(|s| s.items)
        .unwrap_or_default()
        .iter()
        .filter_map(|i| i.instance_id.get())
        // Real IDs are i- plus 8 or 17 hex digits; anything longer is not an instance.
        .filter(|id| id.len() <= 64)
        .map(sanitize)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// A stable stand-in ID for records without `eventID`, from the fields a redelivery
/// repeats (not the raw bytes: an envelope or a log file may re-indent the record).
fn content_id(parts: &[&str]) -> String {
    format!("content-{:016x}", crate::fnv1a(parts))
}
