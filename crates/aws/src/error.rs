//! The one place AWS failures are classified: an SDK error becomes the pipelines'
//! [`Error`], naming the port, the operation and whether a retry can help.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
pub use tripwire_pipeline::{Error, Port};

/// What a call's failure means to the one who asked: a transient failure stays an
/// error, worth a retry; any other is a refusal, in the words `explain` gives where it
/// says more than the error's own.
pub(crate) fn refusal<T>(
    result: Result<T, Error>,
    explain: impl Fn(&Error) -> Option<String>,
) -> Result<Result<T, tripwire_pipeline::Refused>, Error> {
    match result {
        Ok(v) => Ok(Ok(v)),
        Err(
            e @ Error::Aws {
                transient: true, ..
            },
        ) => Err(e),
        Err(e) => Ok(Err(tripwire_pipeline::Refused::Iam(
            explain(&e).unwrap_or_else(|| e.to_string()),
        ))),
    }
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
    // Organizations: another change to the same policy or target is under way.
    "ConcurrentModificationException",
];

/// The one place AWS failures are classified.
pub(crate) fn aws_error<E>(port: Port, op: &'static str, err: SdkError<E, HttpResponse>) -> Error
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
                port,
                op,
                code,
                message,
                transient,
            }
        }
        SdkError::TimeoutError(_) => Error::Aws {
            port,
            op,
            code: "Timeout".into(),
            message: err.to_string(),
            transient: true,
        },
        SdkError::DispatchFailure(d) => Error::Aws {
            port,
            op,
            code: "DispatchFailure".into(),
            message: format!("{:?}", d.as_connector_error()),
            transient: true,
        },
        SdkError::ResponseError(_) => Error::Aws {
            port,
            op,
            code: "ResponseError".into(),
            message: err.to_string(),
            transient: true,
        },
        _ => Error::Aws {
            port,
            op,
            code: "ConstructionFailure".into(),
            message: err.to_string(),
            transient: false,
        },
    }
}
