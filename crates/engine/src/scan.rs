//! The top of the facts floor: one pass over a buffer of JSON documents sorts each record
//! into a watched call, a context call (an assumption, an initiator, a heartbeat, a
//! tamper), another call, or a named skip.

use crate::armed;
use crate::catalogue::{self, Role};
use crate::initiator::{self, Initiation};
use crate::provenance::{self, Assumption};
use crate::record::{self, Document, Envelope, Found};
use crate::skip::{ScanCounts, SkipReason};
use crate::termination::{self, Termination};

/// What a record turned out to be.
#[derive(Debug)]
pub enum Extracted {
    /// A watched call.
    Termination(Box<Termination>),
    /// A successful `AssumeRole*` call.
    Assumption(Box<provenance::Assumption>),
    /// A call that decides terminations a service carries out.
    Initiation(Box<initiator::Initiation>),
    /// The canary's call: never counted.
    Heartbeat(Box<armed::Heartbeat>),
    /// A call that may disarm the tripwire.
    Tamper(Box<armed::Tamper>),
    /// A watched call that may also disarm the tripwire (`ScheduleKeyDeletion`): counted
    /// as a destruction, and read as a tamper call.
    DestroyedAndTamper(Box<Termination>, Box<armed::Tamper>),
    /// EC2's event for an instance going away (`shutting-down`, `terminated`).
    StateChange(Box<crate::record::StateChange>),
    /// A usable record of another API call (or an instance's other state change).
    OtherEvent,
    /// Unusable, with the reason.
    Skip(SkipReason),
}

/// Turns a found record into a termination, another event, or a named skip.
pub fn extract(found: Found<'_>) -> Extracted {
    match found {
        Found::Skip(r) => Extracted::Skip(r),
        Found::StateChange(c) if c.ending() => Extracted::StateChange(c),
        Found::StateChange(_) => Extracted::OtherEvent,
        Found::Record(doc, envelope) => match termination::from_record(&doc, envelope.as_ref()) {
            Ok(Some(t)) => match armed::heartbeat_of(&t) {
                Some(h) => Extracted::Heartbeat(Box::new(h)),
                // A destructive call that may also disarm the tripwire
                // (`ScheduleKeyDeletion` on its key) is both.
                None if catalogue::also_context(t.call) => match other(&doc, envelope.as_ref()) {
                    Extracted::Tamper(tamper) => Extracted::DestroyedAndTamper(Box::new(t), tamper),
                    _ => Extracted::Termination(Box::new(t)),
                },
                None => Extracted::Termination(Box::new(t)),
            },
            Ok(None) => other(&doc, envelope.as_ref()),
            Err(r) => Extracted::Skip(r),
        },
    }
}

/// A record of another call: a context call the catalogue lists (looked up once, then
/// read by its role's reader), or any other.
fn other(doc: &Document<'_>, envelope: Option<&Envelope<'_>>) -> Extracted {
    let (Some(source), Some(name)) = (doc.event_source.get(), doc.event_name.get()) else {
        return Extracted::OtherEvent;
    };
    let Some(call) = catalogue::context(source, name) else {
        return Extracted::OtherEvent;
    };
    let read = match call.role {
        Role::Assumption => provenance::from_record(doc, call)
            .map(|a| a.map(|a| Extracted::Assumption(Box::new(a)))),
        Role::Initiator(_) => {
            initiator::from_record(doc, call).map(|i| i.map(|i| Extracted::Initiation(Box::new(i))))
        }
        Role::Tamper(on) => {
            armed::tamper_of(doc, call, on).map(|t| t.map(|t| Extracted::Tamper(Box::new(t))))
        }
    };
    let found = match read {
        Ok(Some(found)) => found,
        Ok(None) => return Extracted::OtherEvent,
        Err(r) => return Extracted::Skip(r),
    };
    // A provenance or initiator record its envelope disagrees with was crafted to steer
    // an incident's story.
    if envelope.is_some_and(|env| env.disagrees(doc, None)) {
        return Extracted::Skip(SkipReason::EnvelopeMismatch);
    }
    found
}

/// Every record the engine decides on, from one scan.
#[derive(Debug, Clone, Default)]
pub struct Events {
    /// Watched calls.
    pub terminations: Vec<Termination>,
    /// `AssumeRole*` calls: where sessions came from.
    pub assumptions: Vec<Assumption>,
    /// Calls that decide terminations a service carries out.
    pub initiations: Vec<Initiation>,
    /// The canary's calls: the tripwire is armed where they come from.
    pub heartbeats: Vec<armed::Heartbeat>,
    /// Calls that may disarm the tripwire (see [`armed::Tamper::is_ours`]).
    pub tampers: Vec<armed::Tamper>,
    /// How many of `tampers` are also in `terminations` (one record each, counted as the
    /// watched call, not among the other events).
    pub destructive_tampers: usize,
    /// EC2's events for instances going away: the shutdown-wave lane.
    pub state_changes: Vec<crate::record::StateChange>,
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
        match extract(found) {
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
            // One record, counted once: as the watched call it is.
            Extracted::DestroyedAndTamper(t, tamper) => {
                out.terminations.push(*t);
                out.tampers.push(*tamper);
                out.destructive_tampers += 1;
            }
            Extracted::StateChange(c) => {
                counts.other_events += 1;
                out.state_changes.push(*c)
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
