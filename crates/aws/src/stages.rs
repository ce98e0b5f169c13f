//! Where an invocation's time goes: one SDK interceptor, attached to every client, times
//! each AWS operation (retries included) and adds it to a per-process tally that the
//! function logs with its outcome. A Lambda container runs one invocation at a time, so
//! a process-wide tally is the invocation's tally.
//!
//! The tally also keeps the time during which at least one AWS call was in flight, so
//! concurrent calls count once: the invocation's wall time minus that is the project's
//! own time, with no AWS call to wait on.

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

struct Tally {
    ops: BTreeMap<String, Duration>,
    /// DynamoDB items read (returned by GetItem, Query, Scan): what a call costs in
    /// reads, counted here because moto's ConsumedCapacity is a constant.
    items_read: u64,
    in_flight: usize,
    busy_since: Option<Instant>,
    busy: Duration,
}

impl Tally {
    const fn new() -> Self {
        Tally {
            ops: BTreeMap::new(),
            items_read: 0,
            in_flight: 0,
            busy_since: None,
            busy: Duration::ZERO,
        }
    }

    /// An AWS call starts at `now`.
    fn begin(&mut self, now: Instant) {
        if self.in_flight == 0 {
            self.busy_since = Some(now);
        }
        self.in_flight += 1;
    }

    /// An AWS call that started at `started` ends at `now`.
    fn end(&mut self, op: Option<String>, started: Instant, now: Instant) {
        if let Some(op) = op {
            *self.ops.entry(op).or_default() += now.saturating_duration_since(started);
        }
        // Saturating: a call from before the last reset may still report back.
        self.in_flight = self.in_flight.saturating_sub(1);
        if self.in_flight == 0 {
            if let Some(since) = self.busy_since.take() {
                self.busy += now.saturating_duration_since(since);
            }
        }
    }
}

static TALLY: Mutex<Tally> = Mutex::new(Tally::new());

#[derive(Debug, Clone, Copy)]
struct Started(Instant);

impl Storable for Started {
    type Storer = StoreReplace<Self>;
}

/// The interceptor; attach it with each client's config builder.
#[derive(Debug, Clone, Copy, Default)]
pub struct StageTimer;

impl Intercept for StageTimer {
    fn name(&self) -> &'static str {
        "StageTimer"
    }

    fn read_before_execution(
        &self,
        _: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let now = Instant::now();
        if let Ok(mut tally) = TALLY.lock() {
            tally.begin(now);
        }
        cfg.interceptor_state().store_put(Started(now));
        Ok(())
    }

    fn read_after_execution(
        &self,
        _: &FinalizerInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let (Some(Started(t)), Ok(mut tally)) = (cfg.load::<Started>(), TALLY.lock()) {
            let op = cfg
                .load::<Metadata>()
                .map(|m| format!("{}:{}", m.service().to_ascii_lowercase(), m.name()));
            tally.end(op, *t, Instant::now());
        }
        Ok(())
    }
}

/// Clears the tally: call at the start of an invocation. A call abandoned mid-flight
/// (its future dropped) never reports back; clearing keeps that from outliving the
/// invocation.
pub fn reset() {
    if let Ok(mut t) = TALLY.lock() {
        *t = Tally::new();
    }
}

/// Adds `n` DynamoDB items read to the tally.
pub fn count_items_read(n: usize) {
    if let Ok(mut t) = TALLY.lock() {
        t.items_read += n as u64;
    }
}

/// The tally since [`reset`], in milliseconds per `service:Operation`.
pub fn take() -> BTreeMap<String, f64> {
    take_all().0
}

/// The tally since [`reset`], the time with an AWS call in flight and the items read;
/// clears them.
fn take_all() -> (BTreeMap<String, f64>, Duration, u64) {
    let Ok(mut guard) = TALLY.lock() else {
        return Default::default();
    };
    let t = std::mem::replace(&mut *guard, Tally::new());
    // A call still in flight counts as AWS time up to now.
    let busy = t.busy + t.busy_since.map_or(Duration::ZERO, |since| since.elapsed());
    let ops = t
        .ops
        .into_iter()
        .map(|(k, v)| (k, v.as_secs_f64() * 1000.0))
        .collect();
    (ops, busy, t.items_read)
}

/// One invocation's timing: wall time, and AWS time per operation.
#[derive(Debug)]
pub struct Invocation(Instant);

/// What [`Invocation::finish`] reports.
#[derive(Debug, Clone)]
pub struct Timing {
    /// Wall milliseconds of the invocation.
    pub total_ms: f64,
    /// Milliseconds with no AWS call in flight: the project's own time.
    pub own_ms: f64,
    /// Milliseconds per `service:Operation`, as JSON.
    pub aws_ms: String,
    /// DynamoDB items read.
    pub items_read: u64,
}

impl Invocation {
    /// Starts timing an invocation (and clears the tally).
    pub fn start() -> Self {
        reset();
        Invocation(Instant::now())
    }

    /// The invocation's timing; clears the tally.
    pub fn finish(self) -> Timing {
        let wall = self.0.elapsed();
        let (ops, busy, items_read) = take_all();
        Timing {
            total_ms: wall.as_secs_f64() * 1000.0,
            own_ms: wall.saturating_sub(busy).as_secs_f64() * 1000.0,
            aws_ms: serde_json::to_string(&ops).unwrap_or_default(),
            items_read,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_calls_count_once_and_gaps_are_own_time() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut t = Tally::new();
        // [0, 10] and [5, 20] overlap: busy 20 ms, though the calls sum to 25 ms.
        t.begin(at(0));
        t.begin(at(5));
        t.end(Some("sns:Publish".into()), at(0), at(10));
        t.end(Some("lambda:Invoke".into()), at(5), at(20));
        assert_eq!(t.busy, Duration::from_millis(20));
        // A gap of 10 ms, then [30, 35].
        t.begin(at(30));
        t.end(Some("dynamodb:PutItem".into()), at(30), at(35));
        assert_eq!(t.busy, Duration::from_millis(25));
        assert_eq!(t.ops["lambda:Invoke"], Duration::from_millis(15));
        // A stray end after a reset does not underflow or add time.
        t.end(None, at(0), at(40));
        assert_eq!((t.in_flight, t.busy), (0, Duration::from_millis(25)));
    }
}
