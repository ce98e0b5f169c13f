//! The detector Lambda: EventBridge "AWS API Call via CloudTrail" TerminateInstances
//! events in; window, incident, alert and containment request out. Wiring only.

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
    // A bad configuration fails the cold start, naming the variable.
    let detector = tripwire_aws::detector_from_env(&process_env).await?;
    let detector = &detector;
    // The raw event is read in the handler, not by the runtime: only an EventBridge
    // envelope that agrees with its record is processed, the record by the engine's own
    // tolerant parser, and anything malformed is acknowledged instead of failing
    // deserialization and retrying. The lease on each call lasts until the deadline.
    tripwire_aws::function::run("event", |event, deadline| async move {
        detector.handle_eventbridge(event.get(), deadline).await
    })
    .await
}
