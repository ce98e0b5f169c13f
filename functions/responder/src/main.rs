//! The responder Lambda: a containment request in; IAM inline policies written in the
//! principal's account through the containment role; the outcome recorded and alerted.
//! The only tripwire function allowed to reach IAM. Wiring only.

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
    let responder = tripwire_aws::responder_from_env(&process_env).await?;
    let responder = &responder;
    run(service_fn(move |event: LambdaEvent<Box<RawValue>>| async move {
        // A request that is not a containment request is refused loudly, never retried.
        let request = match serde_json::from_str(event.payload.get()) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "not a containment request; ignored");
                return Ok(None);
            }
        };
        let timing = Invocation::start();
        let result = responder.handle(request).await;
        let t = timing.finish();
        match &result {
            Ok(outcome) => tracing::info!(outcome = ?outcome, total_ms = t.total_ms, own_ms = t.own_ms, aws_ms = %t.aws_ms, "containment request handled"),
            Err(e) => tracing::warn!(error = %e, total_ms = t.total_ms, "containment not finished; Lambda will retry it"),
        }
        result.map(Some).map_err(|e| Diagnostic { error_type: e.kind().into(), error_message: e.to_string() })
    }))
    .await
}
