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
use aws_smithy_runtime_api::client::http::SharedHttpClient;
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

/// The Amazon Trust Services roots that the `aws` partition's service endpoints chain
/// to; see `certs/PROVENANCE.md`.
const AMAZON_ROOTS: &[u8] = include_bytes!("../certs/amazon-trust-services.pem");

/// Which root certificates the HTTPS client trusts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsRoots {
    /// The five Amazon Trust Services roots, compiled in. The functions' default: no
    /// filesystem scan at cold start, and no other CA can vouch for an AWS endpoint.
    Amazon,
    /// The platform's store (`SSL_CERT_FILE`, `/etc/ssl/certs`, ...): for operators'
    /// machines behind TLS-inspecting proxies, and partitions whose endpoints do not
    /// chain to Amazon Trust Services.
    System,
}

/// The HTTPS client every SDK client shares.
fn https_client(roots: TlsRoots) -> Result<SharedHttpClient, Error> {
    use aws_smithy_http_client::tls;
    let store = match roots {
        TlsRoots::Amazon => tls::TrustStore::empty().with_pem_certificate(AMAZON_ROOTS),
        TlsRoots::System => tls::TrustStore::default(),
    };
    let context = tls::TlsContext::builder()
        .with_trust_store(store)
        .build()
        .map_err(|e| Error::Config(format!("TLS context: {e}")))?;
    Ok(aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .tls_context(context)
        .build_https())
}

/// Without these the SDK waits on a hung connection until Lambda kills the function
/// (found by the fault proxy); with them a stuck attempt is retried in time.
fn timeouts() -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(std::time::Duration::from_secs(2))
        .operation_attempt_timeout(std::time::Duration::from_secs(3))
        .operation_timeout(std::time::Duration::from_secs(12))
        .build()
}

/// Loads the standard AWS configuration: credential chain, region, and the
/// `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>` overrides. No network call.
pub async fn load_sdk_config(roots: TlsRoots) -> Result<aws_config::SdkConfig, Error> {
    Ok(aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(https_client(roots)?)
        .timeout_config(timeouts())
        .load()
        .await)
}

/// The services the functions call, by SDK service id: the `<SERVICE>` of
/// `AWS_ENDPOINT_URL_<SERVICE>` is the id upper-cased, spaces as underscores.
const SERVICE_IDS: [&str; 5] = ["DynamoDB", "SNS", "Lambda", "IAM", "STS"];

/// Per-service endpoint overrides, read once from the environment.
#[derive(Debug)]
struct EndpointOverrides(Vec<(&'static str, String)>);

impl aws_types::service_config::LoadServiceConfig for EndpointOverrides {
    fn load_config(&self, key: aws_types::service_config::ServiceConfigKey<'_>) -> Option<String> {
        // The generic `AWS_ENDPOINT_URL` is the SdkConfig's own endpoint, which every
        // service falls back to; only the per-service ones are answered here.
        (key.env() == "AWS_ENDPOINT_URL")
            .then(|| self.0.iter().find(|(id, _)| *id == key.service_id()))
            .flatten()
            .map(|(_, url)| url.clone())
    }
}

/// A boolean SDK setting: unset means false; anything but true/false is an error.
fn env_flag(env: config::Env<'_>, name: &str) -> Result<bool, Error> {
    match env(name).as_deref().map(str::trim) {
        None | Some("") => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => Err(Error::Config(format!("{name}={v}: expected true or false"))),
    }
}

/// The functions' AWS configuration, built straight from what Lambda puts in the
/// environment: the region, the execution role's credentials, and the standard
/// `AWS_ENDPOINT_URL*`, `AWS_USE_FIPS_ENDPOINT` and `AWS_USE_DUALSTACK_ENDPOINT`
/// settings. The default chain also builds providers for profile files, SSO, web
/// identity, containers and instance metadata, none of which a function uses; skipping
/// it is a quarter of the SDK's share of the cold start (README "Performance"). The
/// chain tries environment credentials first, so with them set both agree; without
/// them (a function run outside Lambda) this is the chain.
pub async fn function_sdk_config(
    env: config::Env<'_>,
    roots: TlsRoots,
) -> Result<aws_config::SdkConfig, Error> {
    let set = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let (Some(key), Some(secret)) = (set("AWS_ACCESS_KEY_ID"), set("AWS_SECRET_ACCESS_KEY")) else {
        return load_sdk_config(roots).await;
    };
    let region = set("AWS_REGION")
        .or_else(|| set("AWS_DEFAULT_REGION"))
        .ok_or_else(|| Error::Config("AWS_REGION is not set".into()))?;
    let credentials = aws_credential_types::Credentials::new(
        key,
        secret,
        set("AWS_SESSION_TOKEN"),
        None,
        "Environment",
    );
    let mut sdk = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region))
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(credentials),
        )
        .http_client(https_client(roots)?)
        .timeout_config(timeouts())
        .retry_config(aws_config::retry::RetryConfig::standard())
        .sleep_impl(aws_smithy_async::rt::sleep::TokioSleep::new())
        .time_source(aws_smithy_async::time::SystemTimeSource::new())
        .use_fips(env_flag(env, "AWS_USE_FIPS_ENDPOINT")?)
        .use_dual_stack(env_flag(env, "AWS_USE_DUALSTACK_ENDPOINT")?);
    if !env_flag(env, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")? {
        sdk.set_endpoint_url(set("AWS_ENDPOINT_URL"));
        let overrides = SERVICE_IDS
            .iter()
            .filter_map(|id| {
                Some((
                    *id,
                    set(&format!("AWS_ENDPOINT_URL_{}", id.to_uppercase()))?,
                ))
            })
            .collect();
        sdk = sdk.service_config(EndpointOverrides(overrides));
    }
    Ok(sdk.build())
}

/// The detector, built from the environment and [`function_sdk_config`].
pub async fn detector_from_env(env: config::Env<'_>) -> Result<detector::Detector, Error> {
    let cfg = config::DetectorConfig::from_env(env)?;
    let sdk = function_sdk_config(env, cfg.tls_roots).await?;
    Ok(detector::Detector::new(
        cfg.policy,
        store::WindowStore::new(client!(aws_sdk_dynamodb, &sdk), cfg.table),
        alerter::Alerter::new(client!(aws_sdk_sns, &sdk), cfg.topic_arn),
        invoke::ResponderInvoker::new(client!(aws_sdk_lambda, &sdk), cfg.responder_function),
        system_clock,
    ))
}

/// The responder, built from the environment and [`function_sdk_config`].
pub async fn responder_from_env(env: config::Env<'_>) -> Result<responder::Responder, Error> {
    let cfg = config::ResponderConfig::from_env(env)?;
    let sdk = function_sdk_config(env, cfg.tls_roots).await?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;

    /// SHA-256 of each root's DER, in file order; `certs/PROVENANCE.md` lists the same.
    const FINGERPRINTS: [&str; 5] = [
        "8ecde6884f3d87b1125ba31ac3fcb13d7016de7f57cc904fe1cb97c6ae98196e",
        "1ba5b2aa8c65401a82960118f80bec4f62304d83cec4713a19c39c011ea46db4",
        "18ce6cfe7bf14e60b2e347b8dfe868cb31d02ebb3ada271569f50343b46db3a4",
        "e35d28419ed02025cfa69038cd623962458da5c695fbdea3c22b0bfb25897092",
        "568d6905a2c88708a4b3025190edcfedb1974a606a13c6e5290fcb2ae63edab5",
    ];

    #[test]
    fn the_compiled_in_roots_are_the_amazon_trust_services_roots() {
        let certs = CertificateDer::pem_slice_iter(AMAZON_ROOTS)
            .collect::<Result<Vec<_>, _>>()
            .expect("PEM");
        let got: Vec<String> = certs
            .iter()
            .map(|c| {
                aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, c)
                    .as_ref()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect()
            })
            .collect();
        assert_eq!(got, FINGERPRINTS);
        for c in &certs {
            webpki::anchor_from_trusted_cert(c).expect("a usable trust anchor");
        }
        assert!(https_client(TlsRoots::Amazon).is_ok());
    }

    type Vars = &'static [(&'static str, &'static str)];

    /// What Lambda sets; each case adds its own variables.
    const LAMBDA: Vars = &[
        ("AWS_REGION", "eu-west-1"),
        ("AWS_ACCESS_KEY_ID", "ASIAEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
        ("AWS_SESSION_TOKEN", "token"),
    ];

    /// The endpoint a service client would get: its own override, else the generic one.
    fn endpoint(sdk: &aws_config::SdkConfig, service_id: &str) -> Option<String> {
        let key = aws_types::service_config::ServiceConfigKey::builder()
            .service_id(service_id)
            .env("AWS_ENDPOINT_URL")
            .profile("endpoint_url")
            .build()
            .unwrap();
        sdk.service_config()
            .and_then(|c| c.load_config(key))
            .or_else(|| sdk.endpoint_url().map(str::to_owned))
    }

    #[tokio::test]
    async fn the_functions_config_comes_from_the_lambda_environment() {
        // (extra variables, expected DynamoDB endpoint, expected Lambda endpoint, FIPS)
        let cases: &[(Vars, Option<&str>, Option<&str>, bool)] = &[
            (&[], None, None, false),
            (
                &[("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")],
                Some("http://127.0.0.1:5000"),
                Some("http://127.0.0.1:5000"),
                false,
            ),
            (
                &[
                    ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
                    ("AWS_ENDPOINT_URL_LAMBDA", "http://127.0.0.1:9001"),
                ],
                Some("http://127.0.0.1:5000"),
                Some("http://127.0.0.1:9001"),
                false,
            ),
            (
                &[("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:8000")],
                Some("http://127.0.0.1:8000"),
                None,
                false,
            ),
            (
                &[
                    ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
                    ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"),
                ],
                None,
                None,
                false,
            ),
            (&[("AWS_USE_FIPS_ENDPOINT", "TRUE")], None, None, true),
        ];
        for (extra, dynamodb, lambda, fips) in cases {
            let env = config::env(&[LAMBDA, extra].concat());
            let sdk = function_sdk_config(&env, TlsRoots::Amazon).await.unwrap();
            assert_eq!(
                sdk.region().map(|r| r.as_ref()),
                Some("eu-west-1"),
                "{extra:?}"
            );
            assert_eq!(
                endpoint(&sdk, "DynamoDB").as_deref(),
                *dynamodb,
                "{extra:?}"
            );
            assert_eq!(endpoint(&sdk, "Lambda").as_deref(), *lambda, "{extra:?}");
            assert_eq!(sdk.use_fips(), Some(*fips), "{extra:?}");
            use aws_credential_types::provider::ProvideCredentials;
            let creds = sdk
                .credentials_provider()
                .unwrap()
                .provide_credentials()
                .await
                .unwrap();
            assert_eq!(
                (
                    creds.access_key_id(),
                    creds.secret_access_key(),
                    creds.session_token()
                ),
                ("ASIAEXAMPLE", "secret", Some("token"))
            );
        }
    }

    #[tokio::test]
    async fn a_bad_sdk_setting_fails_naming_the_variable() {
        let cases: &[(Vars, &str)] = &[
            (
                &[("AWS_USE_FIPS_ENDPOINT", "yes")],
                "AWS_USE_FIPS_ENDPOINT=yes",
            ),
            (
                &[("AWS_USE_DUALSTACK_ENDPOINT", "1")],
                "AWS_USE_DUALSTACK_ENDPOINT=1",
            ),
            (&[("AWS_REGION", "")], "AWS_REGION is not set"),
        ];
        for (extra, expected) in cases {
            // Later pairs win, so a case can blank out one of Lambda's.
            let env = config::env(&[LAMBDA, extra].concat());
            let err = function_sdk_config(&env, TlsRoots::Amazon)
                .await
                .unwrap_err();
            assert!(err.to_string().contains(expected), "{extra:?}: {err}");
        }
    }
}
