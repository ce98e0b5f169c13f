//! The responder Lambda: a containment request in; IAM inline policies written in the
//! principal's account through the containment role; the outcome recorded and alerted.
//! The only tripwire function allowed to touch IAM. Wiring only.

use lambda_runtime::{run, service_fn, Diagnostic, Error, LambdaEvent};
use serde_json::value::RawValue;
use tripwire_aws::config::process_env;
use tripwire_aws::responder::ResponderOutcome;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tripwire_aws::init_logging();
    let responder = tripwire_aws::responder_from_env(&process_env).await?;
    let responder = &responder;
    run(service_fn(
        move |event: LambdaEvent<Box<RawValue>>| async move {
            // A request that is not a containment request is refused loudly, never retried.
            let request = match serde_json::from_str(event.payload.get()) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "not a containment request; ignored");
                    return Ok(None);
                }
            };
            let outcome: ResponderOutcome = responder
                .handle(request)
                .await
                .inspect_err(|e| {
                    tracing::warn!(error = %e, "containment not finished; Lambda will retry it");
                })
                .map_err(|e| Diagnostic {
                    error_type: e.kind().into(),
                    error_message: e.to_string(),
                })?;
            tracing::info!(outcome = ?outcome, "containment request handled");
            Ok::<_, Diagnostic>(Some(outcome))
        },
    ))
    .await
}
