//! Where the member stacks are deployed: the member StackSet's instances, listed through
//! CloudFormation as the organization's management account or the StackSets delegated
//! administrator (service-managed StackSets live in the management account either way).
//! And where they should be: every active account of the organization, the management
//! account included, in every region the deploy enabled, so a region or an account the
//! StackSet never reached still pages `never_seen`.

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
                    stack_instance: true,
                });
            }
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                return Ok(out);
            }
        }
    }
}

/// Every active account of the organization in each expected region.
#[derive(Debug, Clone)]
pub struct OrganizationAccounts {
    client: aws_sdk_organizations::Client,
    regions: Vec<String>,
}

impl OrganizationAccounts {
    /// The organization's accounts (listed as the management account or a delegated
    /// administrator) in `regions`.
    pub fn new(client: aws_sdk_organizations::Client, regions: Vec<String>) -> Self {
        OrganizationAccounts { client, regions }
    }
}

impl Deployments for OrganizationAccounts {
    async fn deployed(&self) -> Result<Vec<Deployed>, Error> {
        use aws_sdk_organizations::types::AccountState;
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_accounts()
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| aws_error(Port::Deployments, "organizations:ListAccounts", e))?;
            for a in page.accounts() {
                let Some(id) = a.id() else {
                    return Err(Error::Stored(
                        "an account of the organization without an ID".into(),
                    ));
                };
                // A suspended or closing account sends nothing and needs no page.
                if a.state().is_some_and(|s| *s != AccountState::Active) {
                    continue;
                }
                for region in &self.regions {
                    out.push(Deployed {
                        account: id.to_owned(),
                        region: region.clone(),
                        status: "expected: an active account of the organization in an enabled region, with no member stack instance listed there".into(),
                        stack_instance: false,
                    });
                }
            }
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                return Ok(out);
            }
        }
    }
}
