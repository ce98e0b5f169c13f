//! The detector Lambda: EventBridge "AWS API Call via CloudTrail" TerminateInstances
//! events in; window, incident, alert and containment request out. Wiring only.

use lambda_runtime::{run, service_fn, Diagnostic, Error, LambdaEvent};
use serde_json::value::RawValue;
use tripwire_aws::config::process_env;
use tripwire_aws::stages::Invocation;

// One thread: Lambda hands a function one event at a time and the work is waiting on
// AWS, so worker threads add nothing but their start-up to every cold start (README
// "Performance").
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    tripwire_aws::init_logging();
    // A bad configuration fails the cold start, naming the variable.
    let detector = tripwire_aws::detector_from_env(&process_env).await?;
    let detector = &detector;
    // The raw event goes to the engine's own tolerant parser: one CloudTrail model, and
    // a malformed event is acknowledged instead of failing deserialization and retrying.
    run(service_fn(move |event: LambdaEvent<Box<RawValue>>| async move {
        let timing = Invocation::start();
        // The lease on each call lasts until this invocation's deadline.
        let deadline = event.context.deadline as i64;
        let result = detector.handle(event.payload.get(), deadline).await;
        let t = timing.finish();
        let request_id = &event.context.request_id;
        match &result {
            Ok(outcomes) => outcomes.iter().for_each(|o| {
                tracing::info!(outcome = ?o, total_ms = t.total_ms, own_ms = t.own_ms, aws_ms = %t.aws_ms, deadline, request_id = %request_id, "event processed")
            }),
            Err(e) => tracing::warn!(error = %e, total_ms = t.total_ms, request_id = %request_id, "event not finished; Lambda will retry it"),
        }
        result.map_err(|e| Diagnostic { error_type: e.kind().into(), error_message: e.to_string() })
    }))
    .await
}
