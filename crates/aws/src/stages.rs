//! Where an invocation's time goes: one SDK interceptor, attached to every client, times
//! each AWS operation (retries included) and adds it to a per-process tally that the
//! function logs with its outcome. A Lambda container runs one invocation at a time, so
//! a process-wide tally is the invocation's tally.

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

static TALLY: Mutex<BTreeMap<String, Duration>> = Mutex::new(BTreeMap::new());

#[derive(Debug, Clone, Copy)]
struct Started(Instant);

impl Storable for Started {
    type Storer = StoreReplace<Self>;
}

/// The interceptor; attach it with each client's config builder.
#[derive(Debug, Clone, Copy, Default)]
pub struct StageTimer;

impl Intercept for StageTimer {
    fn name(&self) -> &'static str {
        "StageTimer"
    }

    fn read_before_execution(
        &self,
        _: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        cfg.interceptor_state().store_put(Started(Instant::now()));
        Ok(())
    }

    fn read_after_execution(
        &self,
        _: &FinalizerInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let (Some(Started(t)), Some(m)) = (cfg.load::<Started>(), cfg.load::<Metadata>()) {
            let name = format!("{}:{}", m.service().to_ascii_lowercase(), m.name());
            if let Ok(mut tally) = TALLY.lock() {
                *tally.entry(name).or_default() += t.elapsed();
            }
        }
        Ok(())
    }
}

/// Clears the tally: call at the start of an invocation.
pub fn reset() {
    if let Ok(mut t) = TALLY.lock() {
        t.clear();
    }
}

/// The tally since [`reset`], in milliseconds per `service:Operation`.
pub fn take() -> BTreeMap<String, f64> {
    TALLY
        .lock()
        .map(|mut t| {
            std::mem::take(&mut *t)
                .into_iter()
                .map(|(k, v)| (k, v.as_secs_f64() * 1000.0))
                .collect()
        })
        .unwrap_or_default()
}

/// One invocation's timing: wall time, and AWS time per operation.
#[derive(Debug)]
pub struct Invocation(Instant);

impl Invocation {
    /// Starts timing an invocation (and clears the tally).
    pub fn start() -> Self {
        reset();
        Invocation(Instant::now())
    }

    /// Wall milliseconds since [`Invocation::start`], and the AWS tally as JSON.
    pub fn finish(self) -> (f64, String) {
        let total = self.0.elapsed().as_secs_f64() * 1000.0;
        (total, serde_json::to_string(&take()).unwrap_or_default())
    }
}
