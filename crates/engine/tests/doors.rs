//! Every door, from a record: each watched call is read from a real public record (or,
//! where none is public, one built from its API reference, tests/fixtures/destroy) into
//! a destruction of its resource type naming the ID the record names; look-alikes from
//! other services are not. The expectations are data (tests/fixtures/doors.toml).

use serde::Deserialize;
use std::path::PathBuf;
use tripwire_engine::catalogue::{PRECURSOR, PRECURSORS, WATCHED};
use tripwire_engine::{scan_events, Events};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Doors {
    door: Vec<Door>,
    not_a_door: Vec<NotADoor>,
    precursor: Vec<PrecursorDoor>,
    no_precursor: Vec<NoPrecursor>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PrecursorDoor {
    call: String,
    file: String,
    event_id: String,
    ids: Vec<String>,
}

/// A record of a precursor's call that takes no protection away: by eventID, or by
/// its 1-based line where records share an eventID.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoPrecursor {
    why: String,
    file: String,
    event_id: Option<String>,
    line: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Door {
    call: String,
    file: String,
    event_id: Option<String>,
    kind: String,
    ids: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NotADoor {
    file: String,
    event_name: String,
    event_source: String,
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn doors() -> Doors {
    toml::from_str(&std::fs::read_to_string(fixtures().join("doors.toml")).unwrap()).unwrap()
}

/// The records of `file` (one JSON document, or JSON lines; an EventBridge envelope's
/// `detail` taken out) that `keep` keeps.
fn records(file: &str, keep: impl Fn(&serde_json::Value) -> bool) -> Vec<String> {
    let text = std::fs::read_to_string(fixtures().join(file)).unwrap();
    let docs: Vec<serde_json::Value> = match serde_json::from_str(&text) {
        Ok(v) => vec![v],
        Err(_) => text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect(),
    };
    docs.into_iter()
        .map(|d| {
            if d["detail"].is_object() {
                d["detail"].clone()
            } else {
                d
            }
        })
        .filter(|d| keep(d))
        .map(|d| d.to_string())
        .collect()
}

#[test]
fn every_watched_call_has_a_record_read_into_its_type_and_ids() {
    let doors = doors();
    for w in WATCHED {
        let d = doors
            .door
            .iter()
            .find(|d| d.call == w.event_name)
            .unwrap_or_else(|| panic!("{}: no record in doors.toml", w.event_name));
        let found = records(&d.file, |r| {
            r["eventName"] == w.event_name
                && d.event_id.as_deref().is_none_or(|id| r["eventID"] == id)
        });
        // The first (Panther's two ScheduleKeyDeletion samples share an eventID).
        assert!(
            !found.is_empty(),
            "{}: no record in {}",
            w.event_name,
            d.file
        );
        let mut events = Events::default();
        let mut counts = Default::default();
        scan_events(&found[0], &mut counts, &mut events).unwrap();
        assert_eq!(events.terminations.len(), 1, "{}: {counts:?}", w.event_name);
        let t = &events.terminations[0];
        assert_eq!(
            (t.kind(), &t.instance_ids, t.is_attempt()),
            (d.kind.as_str(), &d.ids, false),
            "{}",
            w.event_name
        );
        assert_eq!(t.kind(), w.resource.kind, "{}", w.event_name);
    }
    assert_eq!(
        doors.door.len(),
        WATCHED.len(),
        "one record per watched call"
    );
}

#[test]
fn look_alikes_from_other_services_are_not_doors() {
    for n in doors().not_a_door {
        let found = records(&n.file, |r| {
            r["eventName"] == n.event_name.as_str() && r["eventSource"] == n.event_source.as_str()
        });
        assert!(
            !found.is_empty(),
            "{} {}: no record",
            n.event_source,
            n.event_name
        );
        for r in found {
            let mut events = Events::default();
            scan_events(&r, &mut Default::default(), &mut events).unwrap();
            assert!(events.terminations.is_empty(), "{r}");
        }
    }
}

/// What scanning `record` finds: its watched calls, and the count of other events.
fn scan(record: &str) -> (Events, u64) {
    let mut events = Events::default();
    let mut counts = tripwire_engine::skip::ScanCounts::default();
    scan_events(record, &mut counts, &mut events).unwrap();
    (events, counts.other_events)
}

#[test]
fn every_precursor_is_read_from_a_record_that_removes_its_protection() {
    let doors = doors();
    for w in &PRECURSORS {
        assert!(
            doors.precursor.iter().any(|p| p.call == w.event_name),
            "{}: no record in doors.toml",
            w.event_name
        );
    }
    for p in &doors.precursor {
        let found = records(&p.file, |r| {
            r["eventName"] == p.call.as_str() && r["eventID"] == p.event_id.as_str()
        });
        let read: Vec<_> = found.iter().flat_map(|r| scan(r).0.terminations).collect();
        assert_eq!(read.len(), 1, "{}: {}", p.call, p.event_id);
        let t = &read[0];
        assert_eq!(
            (t.kind(), t.call.event_name, &t.instance_ids, t.is_attempt()),
            (PRECURSOR, p.call.as_str(), &p.ids, false),
            "{}",
            p.event_id
        );
    }
}

#[test]
fn a_call_that_takes_no_protection_away_is_another_event() {
    for n in doors().no_precursor {
        let text = std::fs::read_to_string(fixtures().join(&n.file)).unwrap();
        let found: Vec<String> = match (&n.event_id, n.line) {
            (_, Some(line)) => vec![text.lines().nth(line - 1).unwrap().to_owned()],
            (Some(id), None) => records(&n.file, |r| {
                r["eventID"] == id.as_str()
                    && PRECURSORS.iter().any(|w| r["eventName"] == w.event_name)
            }),
            (None, None) => panic!("{}: names no record", n.why),
        };
        assert!(!found.is_empty(), "{}: no record", n.why);
        for r in found {
            let v: serde_json::Value = serde_json::from_str(&r).unwrap();
            let is_precursor_call = PRECURSORS
                .iter()
                .any(|w| v["eventName"] == w.event_name && v["eventSource"] == w.event_source);
            assert!(is_precursor_call, "{}: not a precursor's call", n.why);
            let (events, others) = scan(&r);
            assert!(events.terminations.is_empty(), "{}", n.why);
            assert_eq!(others, 1, "{}", n.why);
        }
    }
}
