//! The one tolerant CloudTrail model, borrowed from the input buffer.
//!
//! Real records are messy: fields go missing or arrive as `null`, booleans arrive as
//! strings, sanitised account IDs arrive as numbers. Every scalar is therefore a
//! [`Lenient`] string and the large nested objects stay raw until a record turns out to
//! be a `TerminateInstances` call, so the common case (any other API call) costs one scan.

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

/// A scalar read as text whatever its JSON type; objects and arrays read as absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lenient<'a>(pub Option<Cow<'a, str>>);

impl<'a> Lenient<'a> {
    /// The text, if the field was a non-empty scalar.
    pub fn get(&self) -> Option<&str> {
        self.0.as_deref().filter(|s| !s.is_empty())
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Lenient<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Lenient<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Lenient(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Lenient(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Lenient(Some(Cow::Owned(v))))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Lenient(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Lenient(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Lenient(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Lenient(Some(Cow::Borrowed(if v {
                    "true"
                } else {
                    "false"
                }))))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Lenient(None))
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(Lenient(None))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                d.deserialize_any(self)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Lenient(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Lenient(None))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// One JSON document of any accepted shape: a CloudTrail record, an EventBridge
/// envelope, or a log file. One struct covers all three so a document is scanned once.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Document<'a> {
    /// Present on a CloudTrail log file (and on S3 notifications, which are rejected later).
    #[serde(rename = "Records", borrow, default)]
    pub records: Option<Vec<&'a RawValue>>,
    /// Present on a CloudTrail `LookupEvents` response (`aws cloudtrail lookup-events`).
    #[serde(rename = "Events", borrow, default)]
    pub lookup_events: Option<Vec<LookupEvent<'a>>>,
    /// Present on an EventBridge envelope.
    #[serde(rename = "detail-type", borrow, default)]
    pub detail_type: Lenient<'a>,
    /// EventBridge envelope source, e.g. `aws.ec2`.
    #[serde(borrow, default)]
    pub source: Lenient<'a>,
    /// Set by EventBridge on an event replayed from an archive: the replay's name.
    #[serde(rename = "replay-name", borrow, default)]
    pub replay_name: Lenient<'a>,
    /// EventBridge envelope ID: an event's own ID (a state-change event has no other).
    #[serde(borrow, default)]
    pub id: Lenient<'a>,
    /// EventBridge envelope time: when a state-change event happened.
    #[serde(borrow, default)]
    pub time: Lenient<'a>,
    /// EventBridge envelope account: where the event was emitted.
    #[serde(borrow, default)]
    pub account: Lenient<'a>,
    /// EventBridge envelope region: where the event was emitted.
    #[serde(borrow, default)]
    pub region: Lenient<'a>,
    /// The CloudTrail record inside an EventBridge envelope.
    #[serde(borrow, default)]
    pub detail: Option<&'a RawValue>,
    /// CloudTrail `eventVersion`; with the fields below, marks a bare record.
    #[serde(borrow, default)]
    pub event_version: Lenient<'a>,
    #[serde(borrow, default)]
    pub event_time: Lenient<'a>,
    #[serde(borrow, default)]
    pub event_source: Lenient<'a>,
    #[serde(borrow, default)]
    pub event_name: Lenient<'a>,
    #[serde(borrow, default)]
    pub aws_region: Lenient<'a>,
    #[serde(rename = "sourceIPAddress", borrow, default)]
    pub source_ip_address: Lenient<'a>,
    #[serde(borrow, default)]
    pub user_agent: Lenient<'a>,
    #[serde(borrow, default)]
    pub error_code: Lenient<'a>,
    #[serde(rename = "eventID", borrow, default)]
    pub event_id: Lenient<'a>,
    #[serde(borrow, default)]
    pub recipient_account_id: Lenient<'a>,
    #[serde(rename = "requestID", borrow, default)]
    pub request_id: Lenient<'a>,
    #[serde(borrow, default)]
    pub user_identity: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub request_parameters: Option<&'a RawValue>,
    /// Kept raw: only TerminateInstances records read it.
    #[serde(borrow, default)]
    pub response_elements: Option<&'a RawValue>,
    /// Set when the call came through a VPC endpoint: which network it came from.
    #[serde(borrow, default)]
    pub vpc_endpoint_id: Lenient<'a>,
    /// `true` when the session's credentials came from the console.
    #[serde(borrow, default)]
    pub session_credential_from_console: Lenient<'a>,
}

impl Document<'_> {
    /// `eventTime` in milliseconds: missing, unparsable, and before 1970 (window keys sort
    /// times as unsigned digits) are named skips.
    pub fn time(&self) -> Result<crate::time::Millis, crate::skip::SkipReason> {
        let text = self
            .event_time
            .get()
            .ok_or(crate::skip::SkipReason::MissingEventTime)?;
        crate::time::parse_event_time(text)
            .filter(|t| *t >= 0)
            .ok_or(crate::skip::SkipReason::BadEventTime)
    }
}

/// A stable stand-in ID for records without `eventID`, from the fields a redelivery
/// repeats (not the raw bytes: an envelope or a log file may re-indent the record).
pub fn content_id(parts: &[&str]) -> String {
    format!("content-{:016x}", fnv1a(parts))
}

/// One `Events[]` entry of a `LookupEvents` response: the record is a JSON string.
#[derive(Debug, Default, Deserialize)]
pub struct LookupEvent<'a> {
    /// The CloudTrail record, serialised.
    #[serde(rename = "CloudTrailEvent", borrow, default)]
    pub cloudtrail_event: Lenient<'a>,
}

/// `userIdentity`, every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserIdentity<'a> {
    /// `AssumedRole`, `IAMUser`, `Root`, … or anything else AWS adds later.
    #[serde(rename = "type", borrow, default)]
    pub kind: Lenient<'a>,
    #[serde(borrow, default)]
    pub principal_id: Lenient<'a>,
    #[serde(borrow, default)]
    pub arn: Lenient<'a>,
    #[serde(borrow, default)]
    pub account_id: Lenient<'a>,
    #[serde(borrow, default)]
    pub user_name: Lenient<'a>,
    #[serde(borrow, default)]
    pub invoked_by: Lenient<'a>,
    /// The credentials' access key (`ASIA…` for a session): what joins a session to
    /// the `AssumeRole*` call that created it.
    #[serde(borrow, default)]
    pub access_key_id: Lenient<'a>,
    /// `SAMLUser` and `WebIdentityUser`: the identity provider.
    #[serde(borrow, default)]
    pub identity_provider: Lenient<'a>,
    /// Kept raw: a malformed session context must not cost us the rest of the identity.
    #[serde(borrow, default)]
    pub session_context: Option<&'a RawValue>,
}

/// `userIdentity.sessionContext`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionContext<'a> {
    #[serde(borrow, default)]
    pub session_issuer: Option<SessionIssuer<'a>>,
    /// The source identity set when the role was assumed (it survives role chaining).
    #[serde(borrow, default)]
    pub source_identity: Lenient<'a>,
    #[serde(borrow, default)]
    pub web_id_federation_data: Option<WebIdFederationData<'a>>,
    /// Set on instance-profile credentials delivered by the instance metadata service.
    #[serde(borrow, default)]
    pub ec2_role_delivery: Lenient<'a>,
}

/// `userIdentity.sessionContext.webIdFederationData`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebIdFederationData<'a> {
    #[serde(borrow, default)]
    pub federated_provider: Lenient<'a>,
}

/// `userIdentity.sessionContext.sessionIssuer`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionIssuer<'a> {
    #[serde(rename = "type", borrow, default)]
    pub kind: Lenient<'a>,
    #[serde(borrow, default)]
    pub arn: Lenient<'a>,
    #[serde(borrow, default)]
    pub account_id: Lenient<'a>,
    #[serde(borrow, default)]
    pub user_name: Lenient<'a>,
}

/// The part of `requestParameters` a TerminateInstances call carries.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TerminateParameters<'a> {
    #[serde(borrow, default)]
    pub instances_set: Option<InstancesSet<'a>>,
}

/// `requestParameters.instancesSet`.
#[derive(Debug, Default, Deserialize)]
pub struct InstancesSet<'a> {
    #[serde(borrow, default)]
    pub items: Option<Vec<InstanceItem<'a>>>,
}

/// One `instancesSet.items[]` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceItem<'a> {
    #[serde(borrow, default)]
    pub instance_id: Lenient<'a>,
    /// In `responseElements`: the state before this call.
    #[serde(borrow, default)]
    pub previous_state: Option<InstanceState<'a>>,
}

/// An instance state (`{"code": 16, "name": "running"}`).
#[derive(Debug, Default, Deserialize)]
pub struct InstanceState<'a> {
    #[serde(borrow, default)]
    pub name: Lenient<'a>,
}

/// The EventBridge envelope a record arrived in, kept to cross-check the record.
#[derive(Debug, Clone, Default)]
pub struct Envelope<'a> {
    /// `source`, which only AWS can set to `aws.*`.
    pub source: Lenient<'a>,
    /// `account`, the account that emitted the event.
    pub account: Lenient<'a>,
    /// `region`, the region that emitted the event.
    pub region: Lenient<'a>,
    /// `replay-name`: the event was replayed from an EventBridge archive.
    pub replay_name: Lenient<'a>,
}

impl Envelope<'_> {
    /// Whether the envelope disagrees with the record it carries: a source that is not
    /// `source` (or not `aws.*` when `None`), or another account or region. Only AWS can
    /// emit `aws.*` sources, and EventBridge stamps the emitting account and region, so a
    /// record that disagrees with its envelope was crafted and is never acted on.
    pub fn disagrees(&self, doc: &Document<'_>, source: Option<&str>) -> bool {
        let bad_source = match (self.source.get(), source) {
            (Some(s), Some(want)) => s != want,
            (Some(s), None) => !s.starts_with("aws."),
            (None, _) => true,
        };
        let differs =
            |a: Option<&str>, b: Option<&str>| matches!((a, b), (Some(a), Some(b)) if a != b);
        bad_source
            || differs(self.account.get(), doc.recipient_account_id.get())
            || differs(self.region.get(), doc.aws_region.get())
    }
}

/// One CloudTrail record found in a document, or why a document part was unusable.
#[derive(Debug)]
pub enum Found<'a> {
    /// A record and the envelope it came in, if any.
    Record(Box<Document<'a>>, Option<Envelope<'a>>),
    /// EC2's own event for an instance that changed state: no caller, any cause.
    StateChange(Box<StateChange>),
    /// A part that is not a usable CloudTrail record.
    Skip(crate::skip::SkipReason),
}

/// The detail-type EventBridge gives CloudTrail management events.
pub const CLOUDTRAIL_DETAIL_TYPE: &str = "AWS API Call via CloudTrail";

/// Real account IDs are 12 digits; anything else can be counted but never acted on.
pub fn valid_account(a: &str) -> bool {
    a.len() == 12 && a.bytes().all(|c| c.is_ascii_digit())
}

/// An EC2 instance ID, as EC2 writes it: `i-` and 8 or 17 lowercase hex digits (also
/// the session name of an instance's role credentials).
pub fn is_instance_id(s: &str) -> bool {
    s.strip_prefix("i-").is_some_and(|h| {
        (h.len() == 8 || h.len() == 17) && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// The detail-type of EC2's own instance state-change events (source `aws.ec2`).
pub const STATE_CHANGE_DETAIL_TYPE: &str = "EC2 Instance State-change Notification";

/// An `EC2 Instance State-change Notification`, as the EC2 documentation shows it:
/// `{"id","detail-type","source":"aws.ec2","account","time","region","resources",
/// "detail":{"instance-id","state"}}`. It names no caller: whatever ended the instance
/// (a call, a service, Spot, the OS shutting down with behaviour `terminate`) sends one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    /// The event's ID (a redelivery repeats it).
    pub event_id: String,
    /// Where the instance lives.
    pub account: String,
    /// Its region.
    pub region: String,
    /// The instance.
    pub instance_id: String,
    /// `pending`, `running`, `stopping`, `stopped`, `shutting-down` or `terminated`.
    pub state: String,
    /// When it changed state (the envelope's `time`).
    pub time: crate::time::Millis,
}

impl StateChange {
    /// Whether the instance is going away (`shutting-down`) or gone (`terminated`).
    pub fn ending(&self) -> bool {
        matches!(self.state.as_str(), "shutting-down" | "terminated")
    }
}

#[derive(Deserialize)]
struct StateDetail<'a> {
    #[serde(rename = "instance-id", borrow, default)]
    instance_id: Lenient<'a>,
    #[serde(borrow, default)]
    state: Lenient<'a>,
}

/// Reads a state-change event. Only EC2 can send `aws.ec2`: any other source is a
/// look-alike; a missing or odd field is named, never guessed.
fn state_change<'a>(doc: &Document<'a>, detail: &'a RawValue) -> Found<'a> {
    use crate::skip::SkipReason as R;
    if doc.source.get() != Some("aws.ec2") {
        return Found::Skip(R::EnvelopeMismatch);
    }
    let Ok(d) = serde_json::from_str::<StateDetail>(detail.get()) else {
        return Found::Skip(R::BadStateChange);
    };
    let Some(account) = doc.account.get().filter(|a| valid_account(a)) else {
        return Found::Skip(R::NoAccount);
    };
    let instance = d.instance_id.get().filter(|i| is_instance_id(i));
    let (Some(instance), Some(state), Some(region), Some(id)) =
        (instance, d.state.get(), doc.region.get(), doc.id.get())
    else {
        return Found::Skip(R::BadStateChange);
    };
    let Some(time) = doc.time.get() else {
        return Found::Skip(R::MissingEventTime);
    };
    let Some(time) = crate::time::parse_event_time(time) else {
        return Found::Skip(R::BadEventTime);
    };
    Found::StateChange(Box::new(StateChange {
        event_id: id.to_owned(),
        account: account.to_owned(),
        region: region.to_owned(),
        instance_id: instance.to_owned(),
        state: state.to_owned(),
        time,
    }))
}

/// Walks one JSON document of any accepted shape and yields its records.
pub fn walk_document<F: for<'b> FnMut(Found<'b>)>(raw: &str, out: &mut F) {
    if raw.trim_start().starts_with('[') {
        // Some exports write a bare JSON array of records or envelopes. One level only:
        // recursing into nested arrays would let a hostile document exhaust the stack.
        match serde_json::from_str::<Vec<&RawValue>>(raw) {
            Ok(items) => items.iter().for_each(|i| walk_object(i.get(), out)),
            Err(_) => out(Found::Skip(crate::skip::SkipReason::MalformedRecord)),
        }
    } else {
        walk_object(raw, out)
    }
}

/// Walks one JSON object: a log file, a LookupEvents response, an envelope or a record.
fn walk_object<F: for<'b> FnMut(Found<'b>)>(raw: &str, out: &mut F) {
    use crate::skip::SkipReason as R;
    if let Some(found) = log_file_fast(raw) {
        return found.into_iter().for_each(out);
    }
    if !raw.trim_start().starts_with('{') {
        return out(Found::Skip(R::NotCloudTrail));
    }
    let Ok(doc) = serde_json::from_str::<Document>(raw) else {
        return out(Found::Skip(R::MalformedRecord));
    };
    dispatch(doc, out)
}

/// What a parsed object is: a log file, a LookupEvents response, an envelope or a record.
fn dispatch<'a, F: for<'b> FnMut(Found<'b>)>(doc: Document<'a>, out: &mut F) {
    use crate::skip::SkipReason as R;
    if let Some(records) = doc.records {
        for rec in records {
            out(inner_record(rec.get(), None));
        }
    } else if let Some(events) = doc.lookup_events {
        for e in events {
            match e.cloudtrail_event.get() {
                Some(text) => out(inner_record(text, None)),
                None => out(Found::Skip(R::MalformedRecord)),
            }
        }
    } else if doc.detail_type.get().is_some() || doc.detail.is_some() {
        match (doc.detail_type.get(), doc.detail) {
            (Some(STATE_CHANGE_DETAIL_TYPE), Some(detail)) => out(state_change(&doc, detail)),
            (Some(CLOUDTRAIL_DETAIL_TYPE), Some(detail)) => {
                let envelope = Envelope {
                    source: doc.source,
                    account: doc.account,
                    region: doc.region,
                    replay_name: doc.replay_name,
                };
                out(inner_record(detail.get(), Some(envelope)))
            }
            _ => out(Found::Skip(R::NotCloudTrail)),
        }
    } else if is_record(&doc) {
        out(Found::Record(Box::new(doc), None))
    } else {
        out(Found::Skip(R::NotCloudTrail))
    }
}

/// A record nested in a log file or an envelope: it must be a record, not another wrapper.
fn inner_record<'a>(raw: &'a str, envelope: Option<Envelope<'a>>) -> Found<'a> {
    if !raw.starts_with('{') {
        return Found::Skip(crate::skip::SkipReason::NotCloudTrail);
    }
    match serde_json::from_str::<Document<'a>>(raw) {
        Ok(r) => nested(r, envelope),
        Err(_) => Found::Skip(crate::skip::SkipReason::MalformedRecord),
    }
}

/// A parsed nested part is a record only if it is not another wrapper.
fn nested<'a>(r: Document<'a>, envelope: Option<Envelope<'a>>) -> Found<'a> {
    if r.records.is_none() && r.detail.is_none() && r.lookup_events.is_none() && is_record(&r) {
        Found::Record(Box::new(r), envelope)
    } else {
        Found::Skip(crate::skip::SkipReason::NotCloudTrail)
    }
}

/// Log files (`{"Records":[…]}`, the S3 archive format and the backtest's bulk) in one
/// pass instead of two. `None` when the document is anything else or any record would
/// need the tolerant per-record path; the caller then walks it that way, so the outcome
/// is the same either way, and nothing is emitted twice (the result is buffered).
fn log_file_fast(raw: &str) -> Option<Vec<Found<'_>>> {
    if !raw.trim_start().starts_with("{\"Records\"") {
        return None;
    }
    let mut de = serde_json::Deserializer::from_str(raw);
    let found = de.deserialize_map(LogFileVisitor).ok()?;
    de.end().ok()?;
    Some(found)
}

struct LogFileVisitor;

impl<'de> Visitor<'de> for LogFileVisitor {
    type Value = Vec<Found<'de>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a CloudTrail log file")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match (&*key, &found) {
                ("Records", None) => found = Some(map.next_value::<FastRecords<'de>>()?.0),
                ("Records", Some(_)) => return Err(de::Error::custom("duplicate Records")),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        found.ok_or_else(|| de::Error::custom("no Records"))
    }
}

struct FastRecords<'de>(Vec<Found<'de>>);

impl<'de> Deserialize<'de> for FastRecords<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FastRecords<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of records")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(1024));
                while let Some(FastRecord(f)) = seq.next_element()? {
                    out.push(f);
                }
                Ok(FastRecords(out))
            }
        }
        d.deserialize_seq(V)
    }
}

/// One element of `Records`: an object is read as a record; anything else is not one.
struct FastRecord<'de>(Found<'de>);

impl<'de> Deserialize<'de> for FastRecord<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FastRecord<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a record")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let doc = Document::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(FastRecord(nested(doc, None)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(not_a_record())
            }
            fn visit_borrowed_str<E>(self, _: &'de str) -> Result<Self::Value, E> {
                Ok(not_a_record())
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(not_a_record())
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(not_a_record())
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(not_a_record())
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(not_a_record())
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(not_a_record())
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(not_a_record())
            }
        }
        d.deserialize_any(V)
    }
}

fn not_a_record<'de>() -> FastRecord<'de> {
    FastRecord(Found::Skip(crate::skip::SkipReason::NotCloudTrail))
}

/// CloudTrail API-call records name an `*.amazonaws.com` event source; S3 event
/// notifications, which also come as `{"Records":[…]}`, say `aws:s3` and are not records.
fn is_record(d: &Document<'_>) -> bool {
    d.event_name.get().is_some()
        && d.event_source
            .get()
            .is_some_and(|s| s.ends_with(".amazonaws.com"))
}

/// Most buffers are one object (a Lambda event, a log file): parsed once, without the
/// stream's extra pass over it. `false`, having emitted nothing, when the buffer is
/// anything else (JSON lines, an array, malformed): the stream walker takes it, at the
/// cost of one document parsed twice.
fn walk_single<F: for<'b> FnMut(Found<'b>)>(text: &str, out: &mut F) -> bool {
    if !text.trim_start().starts_with('{') {
        return false;
    }
    if let Some(found) = log_file_fast(text) {
        found.into_iter().for_each(out);
        return true;
    }
    match serde_json::from_str::<Document>(text) {
        Ok(doc) => {
            dispatch(doc, out);
            true
        }
        Err(_) => false,
    }
}

/// Walks a buffer holding any number of JSON documents (one, or JSON lines).
///
/// Returns the number of documents read, or the first syntax error with how many
/// documents came before it: a truncated file still yields its intact prefix.
pub fn walk_stream<F: for<'b> FnMut(Found<'b>)>(
    text: &str,
    out: &mut F,
) -> Result<usize, (usize, serde_json::Error)> {
    if walk_single(text, out) {
        return Ok(1);
    }
    let mut n = 0;
    for doc in serde_json::Deserializer::from_str(text).into_iter::<&RawValue>() {
        match doc {
            Ok(raw) => {
                n += 1;
                walk_document(raw.get(), out);
            }
            Err(e) => return Err((n, e)),
        }
    }
    Ok(n)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A comparable summary of what was found.
    fn outline(found: &[Found<'_>]) -> Vec<String> {
        found
            .iter()
            .map(|f| match f {
                Found::Record(d, _) => {
                    format!("record {:?} {:?}", d.event_id.get(), d.event_name.get())
                }
                Found::Skip(r) => format!("skip {}", r.as_str()),
                Found::StateChange(c) => format!("state {} {}", c.instance_id, c.state),
            })
            .collect()
    }

    /// The shape of EC2's state-change event as the EC2 User Guide shows it
    /// ("State change events for Amazon EC2 instances"), with `state` and `source` varied.
    fn state_event(source: &str, state: &str, instance: &str) -> String {
        format!(
            r#"{{"version":"0","id":"7bf73129-1428-4cd3-a780-95db273d1602","detail-type":"EC2 Instance State-change Notification","source":"{source}","account":"123456789012","time":"2021-11-11T21:29:54Z","region":"us-east-1","resources":["arn:aws:ec2:us-east-1:123456789012:instance/{instance}"],"detail":{{"instance-id":"{instance}","state":"{state}"}}}}"#
        )
    }

    #[test]
    fn ec2_state_change_events_are_read_and_look_alikes_are_named() {
        let found = |text: &str| {
            let mut out = Vec::new();
            walk_document(text, &mut |f| out.push(outline(&[f]).remove(0)));
            out
        };
        let id = "i-1234567890abcdef0";
        assert_eq!(
            found(&state_event("aws.ec2", "shutting-down", id)),
            [format!("state {id} shutting-down")]
        );
        let mut got = None;
        walk_document(&state_event("aws.ec2", "terminated", id), &mut |f| {
            if let Found::StateChange(c) = f {
                got = Some(*c);
            }
        });
        let c = got.unwrap();
        assert!(c.ending());
        assert_eq!(
            (
                c.account.as_str(),
                c.region.as_str(),
                c.time,
                c.event_id.as_str()
            ),
            (
                "123456789012",
                "us-east-1",
                1_636_666_194_000,
                "7bf73129-1428-4cd3-a780-95db273d1602"
            )
        );
        for (text, want) in [
            // Only EC2 sends aws.ec2; a custom source is a look-alike.
            (
                state_event("custom.ec2", "terminated", id),
                "skip envelope_mismatch",
            ),
            (
                state_event("aws.ec2", "terminated", "not-an-instance"),
                "skip bad_state_change",
            ),
            (
                state_event("aws.ec2", "terminated", id).replace("2021-11-11T21:29:54Z", "soon"),
                "skip bad_event_time",
            ),
            (
                state_event("aws.ec2", "terminated", id).replace("\"123456789012\"", "\"12\""),
                "skip no_account",
            ),
        ] {
            assert_eq!(found(&text), [want], "{text}");
        }
    }

    fn slow(raw: &str) -> Vec<Found<'_>> {
        let doc: Document = serde_json::from_str(raw).unwrap();
        doc.records
            .unwrap()
            .into_iter()
            .map(|r| inner_record(r.get(), None))
            .collect()
    }

    #[test]
    fn a_single_document_is_walked_as_the_stream_walks_it() {
        let rec = r#"{"eventVersion":"1.08","eventSource":"ec2.amazonaws.com","eventName":"TerminateInstances","eventID":"a","userIdentity":{"type":"Root"}}"#;
        let env = format!(
            r#"{{"detail-type":"AWS API Call via CloudTrail","source":"aws.ec2","account":"1","detail":{rec}}}"#
        );
        for text in [
            rec.to_owned(),
            format!("  {env}\n"),
            format!(r#"{{"Records":[{rec}]}}"#),
            format!("{rec}\n{env}"),
            format!("{rec}{rec}"),
            r#"{"eventName":"A","eventName":"B"}"#.to_owned(),
            "{\"detail\": 1}".to_owned(),
            format!("[{rec}]"),
        ] {
            let mut got = Vec::new();
            let r = walk_stream(&text, &mut |f: Found<'_>| got.push(outline(&[f]).remove(0)));
            let mut want = Vec::new();
            let mut n = 0;
            for doc in serde_json::Deserializer::from_str(&text).into_iter::<&RawValue>() {
                n += 1;
                walk_document(doc.unwrap().get(), &mut |f: Found<'_>| {
                    want.push(outline(&[f]).remove(0))
                });
            }
            assert_eq!((got, r.unwrap()), (want, n), "{text}");
        }
    }

    #[test]
    fn the_log_file_fast_path_finds_exactly_what_the_tolerant_path_finds() {
        let rec = r#"{"eventVersion":"1.08","eventSource":"ec2.amazonaws.com","eventName":"TerminateInstances","eventID":"a","userIdentity":{"type":"Root"}}"#;
        let files = [
            format!(r#"{{"Records":[{rec},{rec}]}}"#),
            format!(
                r#"{{"Records":[{rec}, 1, "x", null, true, [1,[2]], {{"Records":[]}}, {{"eventName":"X"}}, {{"eventSource":"aws:s3","eventName":"Put"}}]}}"#
            ),
            format!(r#"{{"Records":[{rec}],"Digest":{{"a":[1,2]}}}}"#),
            include_str!(
                "../../../tests/fixtures/cloudtrail-corpus/mixed/grycap_cloudtrail_log_file.json"
            )
            .to_string(),
        ];
        for f in &files {
            let fast = log_file_fast(f).expect("fast path applies");
            assert_eq!(outline(&fast), outline(&slow(f)), "{f:.200}");
        }
        // A record the fast path cannot take whole (duplicate key) falls back.
        let dup = format!(r#"{{"Records":[{rec},{{"eventName":"A","eventName":"B"}}]}}"#);
        assert!(log_file_fast(&dup).is_none());
        let mut via_walk = Vec::new();
        walk_document(&dup, &mut |f: Found<'_>| {
            via_walk.push(outline(&[f]).remove(0))
        });
        assert_eq!(via_walk, outline(&slow(&dup)));
        assert_eq!(via_walk[1], "skip malformed_record");
    }
}
