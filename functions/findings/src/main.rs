//! The findings Lambda: the alert bus's incident alerts in, one Security Hub finding per
//! incident out (imported, updated, its workflow set, archived on release). Wiring only.

#![recursion_limit = "256"]

use tripwire_aws::config::process_env;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    tripwire_aws::init_logging();
    // A bad configuration fails the cold start, naming the variable.
    let findings = tripwire_aws::findings_from_env(&process_env).await?;
    let findings = &findings;
    tripwire_aws::function::run("finding", |event, _deadline| async move {
        findings.handle_event(event.get()).await
    })
    .await
}
