//! The watchdog Lambda: on a schedule, pages `coverage_lost` and `coverage_restored`
//! from the canary heartbeats the detector records, and failed drills; on the drill
//! schedule, asks the responder to drill in every member account. Wiring only.

#![recursion_limit = "256"]

use tripwire_aws::config::process_env;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    tripwire_aws::init_logging();
    let watchdog = tripwire_aws::watchdog_from_env(&process_env).await?;
    let watchdog = &watchdog;
    // The five-minute schedule's event carries nothing the watchdog needs; the drill
    // schedule's says `{"drill": true, "scheduled": TIME}`. A page claimed by this run is held until the
    // deadline.
    tripwire_aws::function::run("coverage check", |event, deadline| async move {
        watchdog.handle(event.get(), deadline).await
    })
    .await
}
