//! The account brake through Organizations. The responder (and `tripwire release`) in
//! the security account attach and detach the brake's service control policy as the
//! management account's delegation policy allows (`infra/delegation.yaml`): no
//! management-account credentials at run time, and no call that creates or edits a
//! policy (the delegation stack creates the brake; the security account may only attach
//! and detach it).

use crate::error::{aws_error, refusal};
use crate::{Error, Port};
use aws_sdk_organizations::types::PolicyType;
use aws_sdk_organizations::Client;
use tripwire_engine::containment::BrakeTarget;
use tripwire_engine::names::ACCOUNT_BRAKE_SCP;
use tripwire_pipeline::{AccountBrakes, Refused};

/// Organizations, as the security account sees it through the delegation.
#[derive(Debug, Clone)]
pub struct Organizations {
    client: Client,
}

impl Organizations {
    /// Organizations through `client` (the caller's own credentials).
    pub fn new(client: Client) -> Self {
        Organizations { client }
    }

    /// The SCPs attached to `account` directly: (ID, name).
    async fn attached(&self, account: &str) -> Result<Vec<(String, String)>, Error> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_policies_for_target()
                .target_id(account)
                .filter(PolicyType::ServiceControlPolicy)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| {
                    aws_error(Port::Containment, "organizations:ListPoliciesForTarget", e)
                })?;
            for p in page.policies() {
                out.push((
                    p.id().unwrap_or_default().to_owned(),
                    p.name().unwrap_or_default().to_owned(),
                ));
            }
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                return Ok(out);
            }
        }
    }
}

/// What Organizations' refusals mean to the one paged, where the code says more than
/// its message: the meaning, then the error itself.
fn explain(e: &Error) -> Option<String> {
    let meaning = match e.code()? {
        "AccessDeniedException" => "the delegation policy in the management account does not allow the security account this, or its role lacks the IAM permission: deploy infra/delegation.yaml there (docs/operations.md#the-account-brake)",
        "AccessDeniedForDependencyException" => "Organizations could not reach a service it needs on the caller's behalf",
        "AWSOrganizationsNotInUseException" => "this account is not in an organization",
        "PolicyTypeNotEnabledException" => "service control policies are not enabled in the organization's root",
        "ConstraintViolationException" => "an Organizations limit (SCPs per target, or a minimum of one SCP)",
        "TargetNotFoundException" | "AccountNotFoundException" => "the account is not in this organization",
        "PolicyNotFoundException" => "the brake's SCP no longer exists: deploy the delegation stack again",
        _ => return None,
    };
    Some(format!("{meaning} ({e})"))
}

/// A transient failure stays an error, worth a retry; any other is a refusal, in words.
fn classify<T>(result: Result<T, Error>) -> Result<Result<T, Refused>, Error> {
    refusal(result, explain)
}

impl AccountBrakes for Organizations {
    async fn target(
        &self,
        account: &str,
        policy_id: &str,
    ) -> Result<Result<BrakeTarget, Refused>, Error> {
        let read = async {
            let org = self
                .client
                .describe_organization()
                .send()
                .await
                .map_err(|e| {
                    aws_error(Port::Containment, "organizations:DescribeOrganization", e)
                })?;
            let management_account = org
                .organization()
                .and_then(|o| o.master_account_id())
                .unwrap_or_default()
                .to_owned();
            let policy = self
                .client
                .describe_policy()
                .policy_id(policy_id)
                .send()
                .await
                .map_err(|e| aws_error(Port::Containment, "organizations:DescribePolicy", e))?;
            let content = policy
                .policy()
                .and_then(|p| p.content())
                .unwrap_or_default()
                .to_owned();
            let attached = self
                .attached(account)
                .await?
                .into_iter()
                .map(|(id, _)| id)
                .collect();
            Ok(BrakeTarget {
                management_account,
                attached,
                content,
            })
        };
        classify(read.await)
    }

    async fn attach(&self, account: &str, policy_id: &str) -> Result<Result<(), Refused>, Error> {
        let done = self
            .client
            .attach_policy()
            .policy_id(policy_id)
            .target_id(account)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_error(Port::Containment, "organizations:AttachPolicy", e));
        match done {
            // Attached meanwhile (another container, a redelivery): what was asked holds.
            Err(e) if e.code() == Some("DuplicatePolicyAttachmentException") => Ok(Ok(())),
            other => classify(other),
        }
    }

    async fn detach(&self, account: &str) -> Result<Option<String>, Error> {
        let Some((id, _)) = self
            .attached(account)
            .await?
            .into_iter()
            .find(|(_, name)| name == ACCOUNT_BRAKE_SCP)
        else {
            return Ok(None);
        };
        let done = self
            .client
            .detach_policy()
            .policy_id(&id)
            .target_id(account)
            .send()
            .await
            .map_err(|e| aws_error(Port::Containment, "organizations:DetachPolicy", e));
        match done {
            Ok(_) => Ok(Some(id)),
            // Detached meanwhile: nothing left to lift.
            Err(e) if e.code() == Some("PolicyNotAttachedException") => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_organizations::error::ErrorMetadata;
    use aws_sdk_organizations::operation::attach_policy::{AttachPolicyError, AttachPolicyOutput};
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    fn refusing(code: &'static str) -> impl Fn() -> AttachPolicyError {
        move || AttachPolicyError::generic(ErrorMetadata::builder().code(code).message("m").build())
    }

    async fn attach_answering(code: Option<&'static str>) -> Result<Result<(), Refused>, Error> {
        let call = mock!(Client::attach_policy).match_requests(|r| {
            r.policy_id() == Some("p-brake0001") && r.target_id() == Some("222222222222")
        });
        let call = match code {
            Some(code) => call.then_error(refusing(code)),
            None => call.then_output(|| AttachPolicyOutput::builder().build()),
        };
        let client = mock_client!(aws_sdk_organizations, RuleMode::Sequential, [&call]);
        Organizations::new(client)
            .attach("222222222222", "p-brake0001")
            .await
    }

    #[tokio::test]
    async fn attaching_succeeds_once_attached_refuses_in_words_and_retries_what_passes() {
        assert!(matches!(attach_answering(None).await, Ok(Ok(()))));
        // Attached meanwhile: what was asked holds.
        assert!(matches!(
            attach_answering(Some("DuplicatePolicyAttachmentException")).await,
            Ok(Ok(()))
        ));
        match attach_answering(Some("AccessDeniedException")).await {
            Ok(Err(Refused::Iam(why))) => {
                assert!(why.contains("delegation policy"), "{why}");
                assert!(why.contains("organizations:AttachPolicy"), "{why}");
            }
            other => panic!("not a refusal: {other:?}"),
        }
        match attach_answering(Some("ConstraintViolationException")).await {
            Ok(Err(Refused::Iam(why))) => assert!(why.contains("limit"), "{why}"),
            other => panic!("not a refusal: {other:?}"),
        }
        // Another change under way, or throttling: an error, so Lambda retries.
        for code in [
            "ConcurrentModificationException",
            "TooManyRequestsException",
        ] {
            assert!(
                matches!(
                    attach_answering(Some(code)).await,
                    Err(Error::Aws {
                        transient: true,
                        ..
                    })
                ),
                "{code}"
            );
        }
    }
}
