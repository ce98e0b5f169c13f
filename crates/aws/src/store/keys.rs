//! The table's key schema: every item kind's partition and sort key, and how long each
//! is kept. One table, string keys `pk`/`sk`, TTL on `expires`; each kind's reads and
//! writes live in the module named beside it.
//!
//! - `W#<key>` / `E#<eventTime>#<eventID>`: a counted call (`ids`, `t`, `done`);
//!   `A#…` for a failed call. Written with `attribute_not_exists`: the write *is* the
//!   deduplication, and `done` tells a redelivery from a retry of unfinished work.
//! - `I#<key>` / `CURRENT`: the key's incident. Opening is one conditional put that only
//!   succeeds when no live incident exists, so exactly one container opens it. It keeps
//!   counts (`n` confirmed, `un` unconfirmed instances), bounds and a sample of at most
//!   [`super::INCIDENT_SAMPLE`] instance IDs, so it stays small whatever the incident's size.
//! - `M#<incident id>#<instance>` / `M`: an instance counted for an incident (`e`, the
//!   call that first named it; `c`, confirmed; `ce`, the call that confirmed it): one
//!   small item per instance, spread over partitions, so counting stays exact and flat.
//! - `C#<incident id>` / `C`: the incident's counts, added by each joining call in one
//!   transaction with the conditional put of its guard `J#<incident id>#<eventID>` /
//!   `J`, so a retried call adds nothing twice.
//! - `X#<incident id>` / `X`: where the incident and its calls are, for
//!   `tripwire incident export`.
//! - `K#<access key>` / `ISSUE`: the `AssumeRole*` call that issued a session, with its
//!   resolved origin (`doc`), or `conflict`; it expires with the session.
//! - `N#<account>#<region>` / `<eventTime>#<eventID>`: an initiator call (`doc`).
//! - `R#<eventID>` / `R`: the initiator call a service's termination was credited to
//!   (`doc`, JSON `null` for none), settled by its first delivery.
//! - `O#<step>` / `O`: a one-off step (`done`, `lease`) (steps.rs).
//! - `H` / `S#<account>#<region>`: a pair's heartbeat state; `D#<day>#<account>#<region>`:
//!   its day's latency histogram; `L#<account>#<region>`: a StackSet instance not heard
//!   from yet (heartbeats.rs).
//! - `P#<account>#<entity>` / `P`: the incident a contained principal was last contained
//!   for (contained.rs).
//! - `PL` / `<function>`: the policy a function loaded at its last cold start (loaded.rs).
//! - `DR` / `<account>`: the account's last containment drill (`doc`) (drills.rs).
//! - `V#<account>#<region>` / `E#<time>#<instance>`: an instance's first state-change
//!   event, the window the wave lane reads; `WAVE`: the pair's current wave (bounds, a
//!   sample of [`tripwire_engine::wave::SAMPLE`] IDs, page state, the previous wave's
//!   span) (waves.rs).
//! - `VI#<account>#<region>#<instance>` / `VI`: an instance (`t`, `done`, `lease` for its
//!   first event; `w`, the wave it was credited to; `by`, the caller the first record
//!   naming it names), one small item per instance, spread over partitions.
//! - `VW` / `<account>#<region>#<wave id>`: a wave not yet closed, for the watchdog,
//!   which pages its unclaimed instances once `max_delivery_delay` has passed.
//! - `VC#<wave id>` / `VC`: a wave's counts (`n`, `claimed`, `claims` by principal),
//!   added in one transaction with the instance's `w` or `by`, so nothing counts twice.
//!
//! Calls (`W#`) are calls.rs; incidents, marks, counts and export indexes (`I#`, `M#`,
//! `C#`, `X#`, `J#`) incidents.rs; issues, initiators and credits (`K#`, `N#`, `R#`) sessions.rs.

use super::n;
use aws_sdk_dynamodb::types::AttributeValue;
use tripwire_engine::time::Millis;
use tripwire_engine::window::Lane;
use tripwire_engine::{Key, Termination};

/// Items outlive the window by this much, so late deliveries still find their window.
pub(super) const RETENTION_MS: Millis = 24 * 3600 * 1000;

pub(super) fn mark_pk(incident_id: &str, instance: &str) -> String {
    format!("M#{incident_id}#{instance}")
}

pub(super) fn count_pk(incident_id: &str) -> String {
    format!("C#{incident_id}")
}

pub(super) fn index_pk(incident_id: &str) -> String {
    format!("X#{incident_id}")
}

pub(super) fn join_pk(incident_id: &str, event_id: &str) -> String {
    format!("J#{incident_id}#{event_id}")
}

pub fn window_pk(key: &Key) -> String {
    format!("W#{}", key.id())
}

pub fn incident_pk(key: &Key) -> String {
    format!("I#{}", key.id())
}

/// The sort key of a call: `E#` counted, `A#` a failed attempt on the burst lane (the
/// attempt lane counts failed calls, so they are its `E#` items).
pub fn call_sk(key: &Key, t: &Termination) -> String {
    let attempt = t.is_attempt() && key.lane != Lane::Attempt;
    event_sk(if attempt { 'A' } else { 'E' }, t.event_time, &t.event_id)
}

/// Every (account, region)'s heartbeat state (`S#`), daily latency histograms (`D#`)
/// and, for StackSet instances not heard from yet, the watchdog's listing (`L#`): one
/// small partition (a few hundred pairs), read whole by the watchdog and `tripwire status`.
pub(super) const HEARTBEAT_PK: &str = "H";

/// How long the pointer from a contained principal to its incident is kept: a
/// contained principal stays so until `tripwire release`, usually within days.
pub(super) const POINTER_RETENTION_MS: Millis = 30 * 24 * 3600 * 1000;

/// How long a day's latency histogram is kept.
pub(super) const HISTOGRAM_RETENTION_MS: Millis = 3 * 24 * 3600 * 1000;

/// A one-off step's item (see [`IncidentStore::claim_once`]).
pub(super) fn once_pk(id: &str) -> String {
    format!("O#{id}")
}

pub(super) fn issue_pk(access_key: &str) -> String {
    format!("K#{access_key}")
}

pub(super) fn credit_pk(event_id: &str) -> String {
    format!("R#{event_id}")
}

pub(super) fn initiator_pk(account: &str, region: &str) -> String {
    format!("N#{account}#{region}")
}

/// Fixed-width times sort as strings; event times are never negative (the engine checks).
pub fn event_sk(prefix: char, t: Millis, event_id: &str) -> String {
    format!("{prefix}#{t:015}#{event_id}")
}

pub(super) fn expires(now: Millis) -> AttributeValue {
    n((now + RETENTION_MS) / 1000)
}

/// The partition listing the waves not yet closed, for the watchdog.
pub(super) const OPEN_WAVES: &str = "VW";

pub(super) fn open_wave_sk(account: &str, region: &str, id: &str) -> String {
    format!("{account}#{region}#{id}")
}

pub(super) fn pair_pk(account: &str, region: &str) -> String {
    format!("V#{account}#{region}")
}

pub(super) fn instance_pk(account: &str, region: &str, instance: &str) -> String {
    format!("VI#{account}#{region}#{instance}")
}

pub(super) fn wave_counts_pk(id: &str) -> String {
    format!("VC#{id}")
}

/// A state-change window entry: the time zero-padded so the order is the time's.
pub(super) fn change_sk(t: Millis, instance: &str) -> String {
    format!("E#{:013}#{instance}", t.max(0))
}
