//! tripwire's AWS adapters: the pipelines' ports on DynamoDB (window and incident
//! state), SNS (alerts), Lambda (the containment queue) and IAM/STS (containment), the
//! functions' configuration from the environment, and the composition root that wires
//! them to the pipelines.
//!
//! Boundary: every SDK type stays in here; the engine and the pipelines never see one,
//! and the function binaries only call [`detector_from_env`] / [`responder_from_env`].

pub mod alerter;
pub mod archive;
pub mod brake;
pub mod bus;
pub mod config;
pub mod contain;
pub mod deployments;
pub mod error;
pub mod findings;
pub mod function;
pub mod invoke;
pub mod logging;
pub mod published;
pub mod sdk;
pub mod stages;
pub mod store;
pub mod tls;

pub use error::{Error, Port};
pub use logging::init_logging;
pub use sdk::{client, function_sdk_config, load_sdk_config};
pub use tls::TlsRoots;
pub use tripwire_pipeline::SystemClock;

/// The detector as the function runs it.
pub type Detector = tripwire_pipeline::Detector<
    store::WindowStore,
    alerter::Alerter,
    invoke::ResponderInvoker,
    SystemClock,
>;

/// The responder as the function runs it.
pub type Responder = tripwire_pipeline::Responder<
    contain::Containment,
    store::WindowStore,
    alerter::Alerter,
    SystemClock,
    brake::Organizations,
>;

/// The watchdog as the function runs it.
pub type Watchdog = tripwire_pipeline::watchdog::Watchdog<
    store::WindowStore,
    alerter::Alerter,
    SystemClock,
    (
        Option<deployments::StackInstances>,
        Option<deployments::OrganizationAccounts>,
    ),
>;

/// The watchdog, built from the environment and [`function_sdk_config`].
pub async fn watchdog_from_env(env: config::Env<'_>) -> Result<WatchdogFunction, Error> {
    let cfg = config::WatchdogConfig::from_env(env)?;
    let sdk = function_sdk_config(env, cfg.tls_roots).await?;
    let store = store::WindowStore::new(client(&sdk), cfg.table);
    let policy = load_policy(&sdk, cfg.policy, "watchdog", &store).await?;
    let drills = cfg.responder_function.map(|f| {
        (
            invoke::ResponderInvoker::new(client(&sdk), f),
            cfg.partition,
        )
    });
    let watchdog = tripwire_pipeline::watchdog::Watchdog::new(
        store,
        alerter::Alerter::new(client(&sdk), cfg.topic_arn)
            .with_alarm_topic(cfg.alarm_topic_arn)
            .with_bus(alert_bus(&sdk, cfg.alert_bus)),
        SystemClock,
        cfg.interval,
    )
    .with_deployments(
        (
            cfg.stack_set.map(|(name, call_as)| {
                deployments::StackInstances::new(client(&sdk), name, call_as)
            }),
            (!cfg.expected_regions.is_empty()).then(|| {
                deployments::OrganizationAccounts::new(client(&sdk), cfg.expected_regions)
            }),
        ),
        cfg.never_seen_grace,
    )
    .with_allowed_accounts(policy.allowed_accounts)
    .with_wave_bound(policy.max_delivery_delay);
    Ok(WatchdogFunction { watchdog, drills })
}

/// The watchdog function: its checks on the five-minute schedule, and on the drill
/// schedule (`{"drill": true, "scheduled": TIME}`) the drill fanned out to the responder.
pub struct WatchdogFunction {
    watchdog: Watchdog,
    /// The way to the responder and the partition, when the stack drills.
    drills: Option<(invoke::ResponderInvoker, String)>,
}

/// What one watchdog invocation did.
#[derive(Debug, serde::Serialize)]
#[serde(untagged)]
pub enum WatchdogRun {
    /// The checks: what they paged.
    Checked(Vec<tripwire_pipeline::watchdog::Paged>),
    /// The drill: the accounts asked.
    Drilled {
        /// The accounts the responder was asked to drill in.
        drill: Vec<String>,
    },
}

impl WatchdogFunction {
    /// Runs the checks, or the drill when the event asks for it.
    pub async fn handle(
        &self,
        event: &str,
        deadline: tripwire_engine::time::Millis,
    ) -> Result<WatchdogRun, Error> {
        // The drill schedule's input, `scheduled` filled in by EventBridge Scheduler (the
        // run's time, the same on each retry); the five-minute schedule's event has no
        // `drill`.
        #[derive(serde::Deserialize, Default)]
        struct Trigger {
            #[serde(default)]
            drill: bool,
            #[serde(default)]
            scheduled: Option<String>,
        }
        let trigger = serde_json::from_str::<Trigger>(event).unwrap_or_default();
        match (&self.drills, trigger.drill) {
            (Some((queue, partition)), true) => Ok(WatchdogRun::Drilled {
                drill: self
                    .watchdog
                    .drill(queue, partition, trigger.scheduled.as_deref())
                    .await?,
            }),
            (None, true) => Err(Error::Config(format!(
                "a drill was asked for, but {} is not set",
                config::RESPONDER_FUNCTION
            ))),
            (_, false) => self.watchdog.run(deadline).await.map(WatchdogRun::Checked),
        }
    }
}

/// The policy `source` names, fetched when it is a published version, logged by its hash
/// and recorded for `tripwire status`; a failed record is logged, never fatal.
async fn load_policy(
    sdk: &aws_config::SdkConfig,
    source: config::PolicySource,
    function: &str,
    store: &store::WindowStore,
) -> Result<tripwire_engine::Policy, Error> {
    use tripwire_pipeline::Clock;
    let loaded = published::resolve(&client(sdk), source).await?;
    tracing::info!(policy_sha256 = %loaded.sha256, source = %loaded.source, "policy loaded");
    if let Err(e) = store
        .record_loaded_policy(function, &loaded, SystemClock.now())
        .await
    {
        tracing::warn!(error = %e, "the loaded policy was not recorded for tripwire status");
    }
    Ok(loaded.policy)
}

/// The detector, built from the environment and [`function_sdk_config`].
pub async fn detector_from_env(env: config::Env<'_>) -> Result<Detector, Error> {
    let cfg = config::DetectorConfig::from_env(env)?;
    let sdk = function_sdk_config(env, cfg.tls_roots).await?;
    let store = store::WindowStore::new(client(&sdk), cfg.table);
    Ok(Detector::new(
        load_policy(&sdk, cfg.policy, "detector", &store).await?,
        store,
        alerter::Alerter::new(client(&sdk), cfg.topic_arn)
            .with_alarm_topic(cfg.alarm_topic_arn)
            .with_bus(alert_bus(&sdk, cfg.alert_bus)),
        invoke::ResponderInvoker::new(client(&sdk), cfg.responder_function),
        SystemClock,
    ))
}

/// The responder, built from the environment and [`function_sdk_config`].
pub async fn responder_from_env(env: config::Env<'_>) -> Result<Responder, Error> {
    let cfg = config::ResponderConfig::from_env(env)?;
    let sdk = function_sdk_config(env, cfg.tls_roots).await?;
    let store = store::WindowStore::new(client(&sdk), cfg.table);
    Ok(tripwire_pipeline::Responder::new(
        load_policy(&sdk, cfg.policy, "responder", &store).await?,
        cfg.own_roles,
        cfg.containment_role.clone(),
        contain::Containment::new(&sdk, cfg.containment_role),
        store,
        alerter::Alerter::new(client(&sdk), cfg.topic_arn).with_bus(alert_bus(&sdk, cfg.alert_bus)),
        SystemClock,
    )
    .with_brakes(brake::Organizations::new(client(&sdk))))
}

fn alert_bus(sdk: &aws_config::SdkConfig, bus: Option<String>) -> Option<bus::AlertBus> {
    bus.map(|b| bus::AlertBus::new(client(sdk), b))
}

/// The findings importer, built from the environment and [`function_sdk_config`].
pub async fn findings_from_env(env: config::Env<'_>) -> Result<findings::Findings, Error> {
    let cfg = config::FindingsConfig::from_env(env)?;
    let sdk = function_sdk_config(env, cfg.tls_roots).await?;
    Ok(findings::Findings::new(client(&sdk), cfg.context))
}
