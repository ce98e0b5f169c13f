//! What both functions do around their pipeline: run under the Lambda runtime, time the
//! invocation, log its outcome with the request ID, and report a failure to Lambda as
//! the error's stable kind, so the retry and the on-failure destination apply.

use crate::stages::{Invocation, Timing};
use crate::Error;
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde::Serialize;
use serde_json::value::RawValue;
use std::future::Future;
use tripwire_engine::time::Millis;
use tripwire_pipeline::{Outcome, ResponderOutcome};

/// An invocation's result, logged one line per outcome.
pub trait Logged: Serialize {
    /// Logs the outcomes with the invocation's timing.
    fn log(&self, t: &Timing, deadline: Millis, request_id: &str);
}

impl Logged for Vec<Outcome> {
    fn log(&self, t: &Timing, deadline: Millis, request_id: &str) {
        for o in self {
            tracing::info!(outcome = ?o, total_ms = t.total_ms, own_ms = t.own_ms, aws_ms = %t.aws_ms, items_read = t.items_read, deadline, request_id, "event processed");
            // The delivery latency as a metric: a line of its own that CloudWatch Logs
            // reads as embedded metric format, no API call on the hot path.
            if let Outcome::Heartbeat {
                account,
                region,
                latency_ms,
                ..
            } = o
            {
                let now = tripwire_pipeline::Clock::now(&tripwire_pipeline::SystemClock);
                println!(
                    "{}",
                    tripwire_engine::armed::latency_metric(account, region, *latency_ms, now)
                );
            }
        }
    }
}

impl Logged for crate::WatchdogRun {
    fn log(&self, t: &Timing, _deadline: Millis, request_id: &str) {
        match self {
            crate::WatchdogRun::Checked(paged) => {
                tracing::info!(paged = ?paged, total_ms = t.total_ms, own_ms = t.own_ms, aws_ms = %t.aws_ms, request_id, "coverage checked")
            }
            crate::WatchdogRun::Drilled { drill } => {
                tracing::info!(drill = ?drill, total_ms = t.total_ms, aws_ms = %t.aws_ms, request_id, "drill asked of the responder")
            }
        }
    }
}

impl Logged for crate::findings::Recorded {
    fn log(&self, t: &Timing, _deadline: Millis, request_id: &str) {
        tracing::info!(recorded = ?self, total_ms = t.total_ms, aws_ms = %t.aws_ms, request_id, "alert recorded in Security Hub");
    }
}

impl Logged for Option<ResponderOutcome> {
    fn log(&self, t: &Timing, _deadline: Millis, request_id: &str) {
        match self {
            Some(o) => {
                tracing::info!(outcome = ?o, total_ms = t.total_ms, own_ms = t.own_ms, aws_ms = %t.aws_ms, request_id, "containment request handled")
            }
            None => tracing::error!(request_id, "not a containment request; ignored"),
        }
    }
}

/// Serves `handler` (the raw event and the invocation's deadline in) until the runtime
/// stops. `unfinished` names what a failure leaves undone, for its log line.
pub async fn run<F, Fut, R>(
    unfinished: &'static str,
    handler: F,
) -> Result<(), lambda_runtime::Error>
where
    F: Fn(Box<RawValue>, Millis) -> Fut,
    Fut: Future<Output = Result<R, Error>>,
    R: Logged,
{
    let handler = &handler;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<Box<RawValue>>| async move {
            let timing = Invocation::start();
            let deadline = event.context.deadline as Millis;
            let request_id = event.context.request_id;
            let result = handler(event.payload, deadline).await;
            let t = timing.finish();
            match &result {
                Ok(r) => r.log(&t, deadline, &request_id),
                Err(e) => tracing::warn!(error = %e, kind = e.kind(), total_ms = t.total_ms, request_id = %request_id, "{unfinished} not finished; Lambda will retry it"),
            }
            result.map_err(Diagnostic::from)
        },
    ))
    .await
}
