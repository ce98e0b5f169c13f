//! Executes containment plans in member accounts: assume the containment role there,
//! attach the tripwire's managed policies and write its fixed-name inline policies; or,
//! through the release role, detach and delete them again.

use crate::error::{aws_error, Error, Port};
use crate::sdk::client;
use aws_config::SdkConfig;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_iam::config::{Credentials, Region};
use aws_sdk_iam::types::StatusType;
use std::collections::HashMap;
use std::time::{Duration, SystemTime};
use tokio::sync::Mutex;
use tripwire_engine::containment::{fits_quota, policy_size, Plan, Target};
use tripwire_engine::names::{managed_policy_arn, ALL_MANAGED_POLICIES, ALL_POLICY_NAMES};
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
    session_name: &'static str,
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
        Self::via(base, role_name.into(), "tripwire-containment")
    }

    /// Release via `role_name` (the member stacks' release role) in each account.
    pub fn release_via(base: &SdkConfig, role_name: impl Into<String>) -> Self {
        Self::via(base, role_name.into(), "tripwire-release")
    }

    fn via(base: &SdkConfig, role_name: String, session_name: &'static str) -> Self {
        Containment {
            base: base.clone(),
            sts: client(base),
            role_name,
            session_name,
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
            .role_session_name(self.session_name)
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

    /// Detaches every tripwire managed policy from `entity` and removes every tripwire
    /// inline policy; returns the names removed.
    pub async fn release(&self, entity: &IamEntity) -> Result<Vec<String>, Error> {
        let iam = self.iam(&entity.partition, &entity.account).await?;
        let mut removed = Vec::new();
        for name in ALL_MANAGED_POLICIES {
            let arn = managed_policy_arn(&entity.partition, &entity.account, name);
            let res = if entity.is_role {
                iam.detach_role_policy()
                    .role_name(&entity.name)
                    .policy_arn(&arn)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| aws_error(Port::Containment, "iam:DetachRolePolicy", e))
            } else {
                iam.detach_user_policy()
                    .user_name(&entity.name)
                    .policy_arn(&arn)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| aws_error(Port::Containment, "iam:DetachUserPolicy", e))
            };
            match res {
                Ok(()) => removed.push(name.to_owned()),
                Err(e) if e.code() == Some("NoSuchEntity") => {}
                Err(e) => return Err(e),
            }
        }
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

    /// Sets the status of `user`'s access key `key` (deactivated by containment,
    /// reactivated by `tripwire release --reactivate-keys`).
    pub async fn set_key_status(
        &self,
        iam: &aws_sdk_iam::Client,
        user: &str,
        key: &str,
        status: StatusType,
    ) -> Result<(), Error> {
        iam.update_access_key()
            .user_name(user)
            .access_key_id(key)
            .status(status)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_error(Port::Containment, "iam:UpdateAccessKey", e))
    }

    /// Reactivates `keys` of the IAM user `entity` through the release role.
    pub async fn reactivate_keys(&self, entity: &IamEntity, keys: &[String]) -> Result<(), Error> {
        let iam = self.iam(&entity.partition, &entity.account).await?;
        for key in keys {
            self.set_key_status(&iam, &entity.name, key, StatusType::Active)
                .await?;
        }
        Ok(())
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

    /// Puts the plan in place: the managed policies attached first (the brake matters
    /// most, and needs none of the inline quota a principal may have filled to pre-empt
    /// containment), then the inline quota checked, then the inline policies written.
    /// `Ok(Err(_))` is a refusal that retrying will not fix, saying what landed; `Err(_)`
    /// is a transient failure worth a retry.
    async fn apply(&self, plan: &Plan) -> Result<Result<(), Refused>, Error> {
        let Some((account, partition, target)) = target_of(plan) else {
            return Ok(Err(Refused::Iam(
                "the plan names no target account or entity".into(),
            )));
        };
        let result = async {
            let iam = self.iam(partition, account).await?;
            for name in &plan.managed {
                let arn = managed_policy_arn(partition, account, name);
                // Attaching an attached policy succeeds, so retries are harmless.
                match target {
                    Target::Role(role) => iam
                        .attach_role_policy()
                        .role_name(role)
                        .policy_arn(&arn)
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| aws_error(Port::Containment, "iam:AttachRolePolicy", e))?,
                    Target::User(user) => iam
                        .attach_user_policy()
                        .user_name(user)
                        .policy_arn(&arn)
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| aws_error(Port::Containment, "iam:AttachUserPolicy", e))?,
                }
            }
            let existing = inline_sizes(&iam, target).await?;
            if let Err(reason) = fits_quota(plan, &existing) {
                let landed = if plan.managed.is_empty() {
                    "nothing is attached".to_owned()
                } else {
                    format!(
                        "{} attached, so every session is braked",
                        plan.managed.join(", ")
                    )
                };
                return Ok(Err(Refused::Iam(format!("{landed}; but {reason}"))));
            }
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
            // Last: the denies already stop the keys, and deactivating is the one step
            // an operator may not want undone on release (see `tripwire release`).
            if let Target::User(user) = target {
                for key in &plan.deactivate_keys {
                    match self
                        .set_key_status(&iam, user, key, StatusType::Inactive)
                        .await
                    {
                        // Deleted since the burst: nothing left to deactivate.
                        Err(e) if e.code() == Some("NoSuchEntity") => {}
                        other => other?,
                    }
                }
            }
            Ok(Ok(()))
        }
        .await;
        match result {
            Ok(r) => Ok(r),
            Err(e) => classify(Err(e)),
        }
    }
}

/// The names and sizes (as IAM counts them) of `target`'s inline policies.
async fn inline_sizes(
    iam: &aws_sdk_iam::Client,
    target: &Target,
) -> Result<Vec<(String, usize)>, Error> {
    let mut out = Vec::new();
    match target {
        Target::Role(role) => {
            let mut pages = iam
                .list_role_policies()
                .role_name(role)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page =
                    page.map_err(|e| aws_error(Port::Containment, "iam:ListRolePolicies", e))?;
                for name in page.policy_names() {
                    let doc = iam
                        .get_role_policy()
                        .role_name(role)
                        .policy_name(name)
                        .send()
                        .await
                        .map_err(|e| aws_error(Port::Containment, "iam:GetRolePolicy", e))?;
                    out.push((
                        name.clone(),
                        policy_size(&percent_decode(doc.policy_document())),
                    ));
                }
            }
        }
        Target::User(user) => {
            let mut pages = iam
                .list_user_policies()
                .user_name(user)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page =
                    page.map_err(|e| aws_error(Port::Containment, "iam:ListUserPolicies", e))?;
                for name in page.policy_names() {
                    let doc = iam
                        .get_user_policy()
                        .user_name(user)
                        .policy_name(name)
                        .send()
                        .await
                        .map_err(|e| aws_error(Port::Containment, "iam:GetUserPolicy", e))?;
                    out.push((
                        name.clone(),
                        policy_size(&percent_decode(doc.policy_document())),
                    ));
                }
            }
        }
    }
    Ok(out)
}

/// IAM returns policy documents URL-encoded (RFC 3986); sizes count the document itself.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The plan's target: its account, partition and entity. A plan that acts always names
/// its target and account; only a summary (what the alerts show) lacks the partition.
fn target_of(plan: &Plan) -> Option<(&str, &str, &Target)> {
    let r = plan.restriction.as_ref()?;
    Some((&r.account, r.partition.as_deref()?, &r.target))
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

/// The release role's half of containment, for the release use case.
impl tripwire_pipeline::Lift for Containment {
    async fn lift(&self, entity: &IamEntity) -> Result<Vec<String>, Error> {
        self.release(entity).await
    }

    async fn reactivate_keys(&self, entity: &IamEntity, keys: &[String]) -> Result<(), Error> {
        Containment::reactivate_keys(self, entity, keys).await
    }
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn documents_come_back_decoded() {
        assert_eq!(
            percent_decode("%7B%22Version%22%3A%222012-10-17%22%7D"),
            r#"{"Version":"2012-10-17"}"#
        );
        // Not an escape: kept as it is.
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
