//! Where the member stacks are deployed: the member StackSet's instances, listed through
//! CloudFormation as the organization's management account or the StackSets delegated
//! administrator (service-managed StackSets live in the management account either way).

use crate::error::aws_error;
use crate::{Error, Port};
use aws_sdk_cloudformation::types::CallAs;
use aws_sdk_cloudformation::Client;
use tripwire_engine::armed::Deployed;
use tripwire_pipeline::Deployments;

/// The member StackSet's instances.
#[derive(Debug, Clone)]
pub struct StackInstances {
    client: Client,
    stack_set: String,
    call_as: CallAs,
}

impl StackInstances {
    /// The instances of `stack_set`, listed as `call_as`.
    pub fn new(client: Client, stack_set: String, call_as: CallAs) -> Self {
        StackInstances {
            client,
            stack_set,
            call_as,
        }
    }
}

impl Deployments for StackInstances {
    async fn deployed(&self) -> Result<Vec<Deployed>, Error> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_stack_instances()
                .stack_set_name(&self.stack_set)
                .call_as(self.call_as.clone())
                .max_results(100)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| {
                    aws_error(Port::Deployments, "cloudformation:ListStackInstances", e)
                })?;
            for s in page.summaries() {
                let (Some(account), Some(region)) = (s.account(), s.region()) else {
                    return Err(Error::Stored(format!(
                        "a stack instance of {} without an account or region",
                        self.stack_set
                    )));
                };
                let mut status = s.status().map_or("UNKNOWN", |s| s.as_str()).to_owned();
                if let Some(d) = s.stack_instance_status().and_then(|d| d.detailed_status()) {
                    status = format!("{status} {}", d.as_str());
                }
                if let Some(r) = s.status_reason().filter(|r| !r.is_empty()) {
                    status = format!("{status}: {r}");
                }
                out.push(Deployed {
                    account: account.to_owned(),
                    region: region.to_owned(),
                    status,
                });
            }
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                return Ok(out);
            }
        }
    }
}
