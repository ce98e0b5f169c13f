//! The SDK configuration every client is built from, and the one way to build a
//! client: [`client!`](crate::client), with the stage timer attached.

use crate::config;
use crate::stages::StageTimer;
use crate::tls::{https_client, TlsRoots};
use crate::Error;
use aws_config::SdkConfig;

/// A service client the project builds from an [`SdkConfig`].
pub trait FromSdk {
    /// The client, with the stage timer attached.
    fn from_sdk(sdk: &SdkConfig) -> Self;
}

macro_rules! from_sdk {
    ($($svc:ident),*) => {$(
        impl FromSdk for $svc::Client {
            fn from_sdk(sdk: &SdkConfig) -> Self {
                $svc::Client::from_conf($svc::config::Builder::from(sdk).interceptor(StageTimer).build())
            }
        }
    )*};
}
from_sdk!(
    aws_sdk_dynamodb,
    aws_sdk_sns,
    aws_sdk_lambda,
    aws_sdk_iam,
    aws_sdk_sts,
    aws_sdk_cloudformation,
    aws_sdk_eventbridge,
    aws_sdk_securityhub,
    aws_sdk_ssm,
    aws_sdk_organizations
);

/// The one way to build a client: from `sdk`, with the stage timer, so every AWS call
/// shows in the invocation's timing.
pub fn client<C: FromSdk>(sdk: &SdkConfig) -> C {
    C::from_sdk(sdk)
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
/// it is a quarter of the SDK's share of the cold start (docs/testing.md, "Performance"). The
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

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
