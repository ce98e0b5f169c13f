//! The baseline for cold-start benchmarks: the smallest `lambda_runtime` function,
//! built with the same profile as the real ones. By default it starts the runtime the
//! way `#[tokio::main]` does (worker threads); `HELLO_RUNTIME=current_thread` starts
//! the one-thread runtime the functions use, so the bench can compare like with like.

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::value::RawValue;

fn main() -> Result<(), Error> {
    let runtime = match std::env::var("HELLO_RUNTIME").as_deref() {
        Ok("current_thread") => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    }
    .enable_all()
    .build()?;
    runtime.block_on(run(service_fn(
        |event: LambdaEvent<Box<RawValue>>| async move { Ok::<_, Error>(event.payload) },
    )))
}
