//! The responder Lambda: a containment request in; IAM inline policies written in the
//! principal's account through the containment role; the outcome recorded and alerted.
//! The only tripwire function allowed to reach IAM. Wiring only.

// The pipeline's future nests the SDK's deep futures inside the runtime's; its layout
// needs more than the default query depth.
#![recursion_limit = "256"]

use tripwire_aws::config::process_env;

// One thread: Lambda hands a function one event at a time and the work is waiting on
// AWS, so worker threads add nothing but their start-up to every cold start (docs/testing.md,
// "Performance").
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    tripwire_aws::init_logging();
    let responder = tripwire_aws::responder_from_env(&process_env).await?;
    let responder = &responder;
    tripwire_aws::function::run("containment", |event, _| async move {
        responder.handle_event(event.get()).await
    })
    .await
}
