//! The pipelines' error: what failed, in words on-call can act on, and whether a retry
//! can help. Adapters classify their services' failures into it, once.

/// The port a failure came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// Window and incident state.
    State,
    /// Alerts.
    Alerts,
    /// The queue to the responder.
    Queue,
    /// Containment (and its release).
    Containment,
    /// Where the member stacks are deployed.
    Deployments,
}

/// Errors from the pipelines and their adapters.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An AWS call failed after the SDK's own retries.
    #[error("{op} failed: {code}: {message}")]
    Aws {
        /// The port whose adapter made the call.
        port: Port,
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
    /// Something could not be encoded for sending or storing.
    #[error("encoding {what}: {detail}")]
    Encoding {
        /// What was being encoded.
        what: &'static str,
        /// The encoder's message.
        detail: String,
    },
    /// A stored item that cannot be read back.
    #[error("stored data: {0}")]
    Stored(String),
    /// Other writers kept changing the incident under this call; a retry settles it.
    #[error("the incident kept changing under this call; retrying")]
    Contention,
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
            Error::Encoding { .. } => "tripwire.Encoding",
            Error::Stored(_) => "tripwire.StoredData",
            Error::Contention => "tripwire.Contention",
        }
    }

    /// Whether the window and incident state is what failed.
    pub fn is_window_store(&self) -> bool {
        matches!(
            self,
            Error::Aws {
                port: Port::State,
                ..
            }
        )
    }

    /// The AWS error code, if this is an AWS failure.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Aws { code, .. } => Some(code),
            _ => None,
        }
    }

    /// A JSON encoding failure of `what`.
    pub fn encoding(what: &'static str, e: impl std::fmt::Display) -> Self {
        Error::Encoding {
            what,
            detail: e.to_string(),
        }
    }
}

/// What Lambda records for a failed invocation: the stable kind and the message.
#[cfg(feature = "lambda")]
impl From<Error> for lambda_runtime::Diagnostic {
    fn from(e: Error) -> Self {
        lambda_runtime::Diagnostic {
            error_type: e.kind().into(),
            error_message: e.to_string(),
        }
    }
}
