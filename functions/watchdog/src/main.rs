//! The watchdog Lambda: on a schedule, pages `coverage_lost` and `coverage_restored`
//! from the canary heartbeats the detector records. Wiring only.

#![recursion_limit = "256"]

use tripwire_aws::config::process_env;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    tripwire_aws::init_logging();
    let watchdog = tripwire_aws::watchdog_from_env(&process_env).await?;
    let watchdog = &watchdog;
    // The scheduled event carries nothing the watchdog needs; a page claimed by this
    // run is held until the deadline.
    tripwire_aws::function::run("coverage check", |_event, deadline| async move {
        watchdog.run(deadline).await
    })
    .await
}
