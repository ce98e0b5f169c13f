//! tripwire's AWS adapters: the DynamoDB window, the SNS alerter, the responder
//! invoker, IAM/STS containment, configuration from the environment, and the detector
//! and responder pipelines that join them to the engine.
//!
//! Boundary: every SDK type stays in here; the engine never sees one, and the function
//! binaries only wire these together.

/// A service client from an `SdkConfig`, with the stage timer attached. Defined before
/// the modules so every one of them can use it.
macro_rules! client {
    ($svc:ident, $sdk:expr) => {
        $svc::Client::from_conf(
            $svc::config::Builder::from($sdk)
                .interceptor($crate::stages::StageTimer)
                .build(),
        )
    };
}

pub mod alerter;
pub mod config;
pub mod contain;
pub mod detector;
pub mod invoke;
pub mod responder;
pub mod stages;
pub mod store;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use tripwire_engine::time::Millis;

/// Errors from the adapters.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An AWS call failed after the SDK's own retries.
    #[error("{op} failed: {code}: {message}")]
    Aws {
        /// The operation, e.g. `dynamodb:PutItem`.
        op: &'static str,
        /// The AWS error code, or the transport failure kind.
        code: String,
        /// The message AWS (or the transport) gave.
        message: String,
        /// Throttling, 5xx, timeouts, dropped connections: worth retrying later.
        transient: bool,
    },
    /// A configuration problem, naming the variable.
    #[error("{0}")]
    Config(String),
    /// A stored item that cannot be read back.
    #[error("stored data: {0}")]
    Data(String),
}

/// AWS error codes that mean "try again later".
const TRANSIENT_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestThrottled",
    "InternalServerError",
    "InternalFailure",
    "InternalError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
];

/// The one place AWS failures are classified.
pub(crate) fn aws_error<E>(op: &'static str, err: SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match &err {
        SdkError::ServiceError(s) => {
            let code = s.err().code().unwrap_or("Unknown").to_owned();
            let message = s.err().message().unwrap_or_default().to_owned();
            let transient =
                TRANSIENT_CODES.contains(&code.as_str()) || s.raw().status().is_server_error();
            Error::Aws {
                op,
                code,
                message,
                transient,
            }
        }
        SdkError::TimeoutError(_) => Error::Aws {
            op,
            code: "Timeout".into(),
            message: err.to_string(),
            transient: true,
        },
        SdkError::DispatchFailure(d) => Error::Aws {
            op,
            code: "DispatchFailure".into(),
            message: format!("{:?}", d.as_connector_error()),
            transient: true,
        },
        SdkError::ResponseError(_) => Error::Aws {
            op,
            code: "ResponseError".into(),
            message: err.to_string(),
            transient: true,
        },
        _ => Error::Aws {
            op,
            code: "ConstructionFailure".into(),
            message: err.to_string(),
            transient: false,
        },
    }
}

impl Error {
    /// A stable name for the kind of failure (the Lambda `errorType`).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Aws {
                transient: true, ..
            } => "tripwire.AwsTransient",
            Error::Aws { .. } => "tripwire.AwsFailure",
            Error::Config(_) => "tripwire.Config",
            Error::Data(_) => "tripwire.Data",
        }
    }

    /// Whether this is a failure of the DynamoDB window store.
    pub fn is_window_store(&self) -> bool {
        matches!(self, Error::Aws { op, .. } if op.starts_with("dynamodb:"))
    }

    /// The AWS error code, if this is an AWS failure.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Aws { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// Wall-clock milliseconds: the production clock; tests pass their own.
pub fn system_clock() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
}

/// Loads the standard AWS configuration: credential chain, region, and the
/// `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>` overrides. No network call.
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    // Without these the SDK waits on a hung connection until Lambda kills the function
    // (found by the fault proxy); with them a stuck attempt is retried in time.
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(std::time::Duration::from_secs(2))
        .operation_attempt_timeout(std::time::Duration::from_secs(3))
        .operation_timeout(std::time::Duration::from_secs(12))
        .build();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(timeouts)
        .load()
        .await
}

/// The detector, built from the environment and the standard AWS configuration.
pub async fn detector_from_env(env: config::Env<'_>) -> Result<detector::Detector, Error> {
    let cfg = config::DetectorConfig::from_env(env)?;
    let sdk = load_sdk_config().await;
    Ok(detector::Detector::new(
        cfg.policy,
        store::WindowStore::new(client!(aws_sdk_dynamodb, &sdk), cfg.table),
        alerter::Alerter::new(client!(aws_sdk_sns, &sdk), cfg.topic_arn),
        invoke::ResponderInvoker::new(client!(aws_sdk_lambda, &sdk), cfg.responder_function),
        system_clock,
    ))
}

/// The responder, built from the environment and the standard AWS configuration.
pub async fn responder_from_env(env: config::Env<'_>) -> Result<responder::Responder, Error> {
    let cfg = config::ResponderConfig::from_env(env)?;
    let sdk = load_sdk_config().await;
    Ok(responder::Responder::new(
        cfg.policy,
        cfg.own_roles,
        cfg.containment_role.clone(),
        contain::Containment::new(&sdk, cfg.containment_role),
        store::WindowStore::new(client!(aws_sdk_dynamodb, &sdk), cfg.table),
        alerter::Alerter::new(client!(aws_sdk_sns, &sdk), cfg.topic_arn),
        system_clock,
    ))
}

/// Structured JSON logs for the functions: fields first, then a sentence.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .without_time()
        .try_init();
}
