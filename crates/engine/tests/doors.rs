//! Every door, from a record: each watched call is read from a real public record (or,
//! where none is public, one built from its API reference, tests/fixtures/destroy) into
//! a destruction of its resource type naming the ID the record names; look-alikes from
//! other services are not. The expectations are data (tests/fixtures/doors.toml).

use serde::Deserialize;
use std::path::PathBuf;
use tripwire_engine::catalogue::WATCHED;
use tripwire_engine::{scan_events, Events};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Doors {
    door: Vec<Door>,
    not_a_door: Vec<NotADoor>,
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
