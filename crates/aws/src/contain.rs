//! Executes containment plans in member accounts: assume the containment role there,
//! then write (or, on release, delete) the tripwire's fixed-name inline policies.

use crate::error::{aws_error, Error, Port};
use crate::sdk::client;
use aws_config::SdkConfig;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_iam::config::{Credentials, Region};
use std::collections::HashMap;
use std::time::{Duration, SystemTime};
use tokio::sync::Mutex;
use tripwire_engine::containment::{Plan, Target, ALL_POLICY_NAMES};
use tripwire_engine::principal::IamEntity;
use tripwire_pipeline::Contain;
pub use tripwire_pipeline::Refused;

/// How long assumed-role credentials are requested for, and how early they are renewed.
const SESSION: Duration = Duration::from_secs(900);
const RENEW_BEFORE: Duration = Duration::from_secs(120);

/// IAM/STS containment through a role of one name in every account.
#[derive(Debug)]
pub struct Containment {
    base: SdkConfig,
    sts: aws_sdk_sts::Client,
    role_name: String,
    // Per account: AssumeRole costs a round trip, and a burst means repeated plans.
    cache: Mutex<HashMap<String, (aws_sdk_iam::Client, SystemTime)>>,
}

/// IAM lives in one region per partition.
fn iam_region(partition: &str) -> &'static str {
    match partition {
        "aws-cn" => "cn-north-1",
        "aws-us-gov" => "us-gov-west-1",
        _ => "us-east-1",
    }
}

/// Clear words for the IAM errors containment can meet.
fn explain(e: &Error) -> Option<String> {
    let code = e.code()?;
    Some(match code {
        "NoSuchEntity" => "the role or user no longer exists (NoSuchEntity)".into(),
        "UnmodifiableEntity" => "the role is protected by AWS, e.g. a service-linked role (UnmodifiableEntity)".into(),
        "LimitExceeded" => "the principal's inline policies are at IAM's size limit, so the deny could not be added (LimitExceeded)".into(),
        "AccessDenied" | "AccessDeniedException" => {
            "the containment role may not do this: check its policy, the SCPs, and its explicit denies (AccessDenied)".into()
        }
        "MalformedPolicyDocument" => "IAM rejected the policy document (MalformedPolicyDocument)".into(),
        _ => return None,
    })
}

impl Containment {
    /// Containment via `role_name` in each target account, using `base` credentials to assume it.
    pub fn new(base: &SdkConfig, role_name: impl Into<String>) -> Self {
        Containment {
            base: base.clone(),
            sts: client(base),
            role_name: role_name.into(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The containment role's ARN in `account`.
    pub fn role_arn(&self, partition: &str, account: &str) -> String {
        format!("arn:{partition}:iam::{account}:role/{}", self.role_name)
    }

    async fn iam(&self, partition: &str, account: &str) -> Result<aws_sdk_iam::Client, Error> {
        let mut cache = self.cache.lock().await;
        if let Some((client, until)) = cache.get(account) {
            if SystemTime::now() + RENEW_BEFORE < *until {
                return Ok(client.clone());
            }
        }
        let out = self
            .sts
            .assume_role()
            .role_arn(self.role_arn(partition, account))
            .role_session_name("tripwire-containment")
            .duration_seconds(SESSION.as_secs() as i32)
            .send()
            .await
            .map_err(|e| aws_error(Port::Containment, "sts:AssumeRole", e))?;
        let c = out.credentials().ok_or_else(|| Error::Aws {
            port: Port::Containment,
            op: "sts:AssumeRole",
            code: "MissingCredentials".into(),
            message: "the response carried no credentials".into(),
            transient: false,
        })?;
        let until =
            SystemTime::try_from(*c.expiration()).unwrap_or_else(|_| SystemTime::now() + SESSION);
        let creds = Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_owned()),
            Some(until),
            "tripwire-assumed-role",
        );
        let assumed = self
            .base
            .to_builder()
            .credentials_provider(SharedCredentialsProvider::new(creds))
            .region(Region::new(iam_region(partition)))
            .build();
        let client: aws_sdk_iam::Client = client(&assumed);
        cache.insert(account.to_owned(), (client.clone(), until));
        Ok(client)
    }

    /// Removes every tripwire inline policy from `entity`; returns the names removed.
    pub async fn release(&self, entity: &IamEntity) -> Result<Vec<String>, Error> {
        let iam = self.iam(&entity.partition, &entity.account).await?;
        let mut removed = Vec::new();
        for name in ALL_POLICY_NAMES {
            let res = if entity.is_role {
                iam.delete_role_policy()
                    .role_name(&entity.name)
                    .policy_name(name)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| aws_error(Port::Containment, "iam:DeleteRolePolicy", e))
            } else {
                iam.delete_user_policy()
                    .user_name(&entity.name)
                    .policy_name(name)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| aws_error(Port::Containment, "iam:DeleteUserPolicy", e))
            };
            match res {
                Ok(()) => removed.push(name.to_owned()),
                // Not there: nothing to lift. Release is idempotent.
                Err(e) if e.code() == Some("NoSuchEntity") => {}
                Err(e) => return Err(e),
            }
        }
        Ok(removed)
    }
}

impl Contain for Containment {
    async fn current_arn(&self, plan: &Plan) -> Result<Result<String, Refused>, Error> {
        let Some((account, partition, target)) = target_of(plan) else {
            return Ok(Err(Refused::Iam(
                "the plan names no target account or entity".into(),
            )));
        };
        let result = async {
            let iam = self.iam(partition, account).await?;
            match target {
                Target::Role(role) => {
                    let out = iam
                        .get_role()
                        .role_name(role)
                        .send()
                        .await
                        .map_err(|e| aws_error(Port::Containment, "iam:GetRole", e))?;
                    Ok(out.role().map(|r| r.arn().to_owned()).unwrap_or_default())
                }
                Target::User(user) => {
                    let out = iam
                        .get_user()
                        .user_name(user)
                        .send()
                        .await
                        .map_err(|e| aws_error(Port::Containment, "iam:GetUser", e))?;
                    Ok(out.user().map(|u| u.arn().to_owned()).unwrap_or_default())
                }
            }
        }
        .await;
        match result {
            Ok(arn) => Ok(Ok(arn)),
            Err(e) => classify(Err(e)).map(|r| r.map(|()| String::new())),
        }
    }

    /// Writes the plan's policies. `Ok(Err(_))` is a refusal that retrying will not fix;
    /// `Err(_)` is a transient failure worth a retry.
    async fn apply(&self, plan: &Plan) -> Result<Result<(), Refused>, Error> {
        let Some((account, partition, target)) = target_of(plan) else {
            return Ok(Err(Refused::Iam(
                "the plan names no target account or entity".into(),
            )));
        };
        let result = async {
            let iam = self.iam(partition, account).await?;
            for p in &plan.policies {
                // Fixed names: writing the same policy again replaces it, so retries are harmless.
                match target {
                    Target::Role(role) => iam
                        .put_role_policy()
                        .role_name(role)
                        .policy_name(&p.name)
                        .policy_document(&p.document)
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| aws_error(Port::Containment, "iam:PutRolePolicy", e))?,
                    Target::User(user) => iam
                        .put_user_policy()
                        .user_name(user)
                        .policy_name(&p.name)
                        .policy_document(&p.document)
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| aws_error(Port::Containment, "iam:PutUserPolicy", e))?,
                }
            }
            Ok(())
        }
        .await;
        classify(result)
    }
}

/// The plan's target: its account, partition and entity, when it names all three.
fn target_of(plan: &Plan) -> Option<(&str, &str, &Target)> {
    Some((
        plan.target_account.as_deref()?,
        plan.partition.as_deref()?,
        plan.target.as_ref()?,
    ))
}

fn classify(result: Result<(), Error>) -> Result<Result<(), Refused>, Error> {
    match result {
        Ok(()) => Ok(Ok(())),
        Err(
            e @ Error::Aws {
                transient: true, ..
            },
        ) => Err(e),
        Err(e) => Ok(Err(Refused::Iam(
            explain(&e).unwrap_or_else(|| e.to_string()),
        ))),
    }
}
