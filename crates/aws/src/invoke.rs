//! Hands a containment plan to the responder: an asynchronous Lambda invoke, so the
//! detector never waits on IAM and only the responder holds IAM permissions.

use crate::error::{aws_error, Error, Port};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use aws_sdk_lambda::Client;
use tripwire_engine::containment::ContainmentRequest;
use tripwire_pipeline::ContainmentQueue;

/// The responder invoker.
#[derive(Debug, Clone)]
pub struct ResponderInvoker {
    client: Client,
    function: String,
}

impl ResponderInvoker {
    /// An invoker for `function` (name or ARN).
    pub fn new(client: Client, function: impl Into<String>) -> Self {
        ResponderInvoker {
            client,
            function: function.into(),
        }
    }
}

impl ResponderInvoker {
    /// Invokes the responder with `payload` asynchronously (`InvocationType=Event`).
    async fn invoke_async(&self, payload: Vec<u8>) -> Result<(), Error> {
        let out = self
            .client
            .invoke()
            .function_name(&self.function)
            .invocation_type(InvocationType::Event)
            .payload(Blob::new(payload))
            .send()
            .await
            .map_err(|e| aws_error(Port::Queue, "lambda:Invoke", e))?;
        // Real Lambda answers 202 and never runs the function inline; an emulator may run
        // it synchronously and report its error here. Either way the request was delivered.
        if let Some(err) = out.function_error() {
            tracing::warn!(
                function_error = err,
                "responder reported an error; its own retries apply"
            );
        }
        Ok(())
    }
}

impl ContainmentQueue for ResponderInvoker {
    /// Queues `request` for the responder.
    async fn request(&self, request: &ContainmentRequest) -> Result<(), Error> {
        let payload = serde_json::to_vec(request)
            .map_err(|e| Error::encoding("the containment request", e))?;
        self.invoke_async(payload).await
    }
}

impl tripwire_pipeline::DrillQueue for ResponderInvoker {
    /// Asks the responder to drill in one account: each account's drill runs in its own
    /// invocation, within the responder's timeout.
    async fn request_drill(
        &self,
        request: &tripwire_engine::drill::DrillRequest,
    ) -> Result<(), Error> {
        let event = tripwire_engine::drill::DrillEvent {
            drill: request.clone(),
        };
        let payload =
            serde_json::to_vec(&event).map_err(|e| Error::encoding("the drill request", e))?;
        self.invoke_async(payload).await
    }
}
