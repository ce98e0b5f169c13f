//! Executes containment plans in member accounts: assume the containment role there,
//! attach the tripwire's managed policies and set its `tripwire-contain-*` tags; or,
//! through the release role, detach and remove them again.

use crate::error::{aws_error, Error, Port};
use crate::sdk::client;
use aws_config::SdkConfig;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_iam::config::{Credentials, Region};
use aws_sdk_iam::types::{StatusType, Tag};
use std::collections::HashMap;
use std::time::{Duration, SystemTime};
use tokio::sync::Mutex;
use tripwire_engine::containment::{Plan, Target};
use tripwire_engine::drill::Held;
use tripwire_engine::names::{
    managed_policy_arn, ALL_CONTAIN_TAGS, ALL_MANAGED_POLICIES, LEGACY_INLINE_POLICIES,
};
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
    if let (
        Error::Aws {
            op: "sts:AssumeRole",
            ..
        },
        "AccessDenied",
    ) = (e, code)
    {
        return Some("the responder may not assume the containment role: its trust no longer names the responder's role, or an SCP denies it (AccessDenied on sts:AssumeRole)".into());
    }
    Some(match code {
        "NoSuchEntity" => "the role or user no longer exists (NoSuchEntity)".into(),
        "UnmodifiableEntity" => "the role is protected by AWS, e.g. a service-linked role (UnmodifiableEntity)".into(),
        "LimitExceeded" => "the principal is at an IAM quota: its attached managed policies or its tags (LimitExceeded)".into(),
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

    /// Detaches every tripwire managed policy from `entity`, removes its
    /// `tripwire-contain-*` tags and any inline policy earlier releases wrote; returns
    /// what it removed (tags as `tag:KEY`).
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
                // Not attached: nothing to lift. Release is idempotent.
                Err(e) if e.code() == Some("NoSuchEntity") => {}
                Err(e) => return Err(e),
            }
        }
        let tagged = self.contain_tags(&iam, entity).await?;
        if !tagged.is_empty() {
            if entity.is_role {
                iam.untag_role()
                    .role_name(&entity.name)
                    .set_tag_keys(Some(tagged.clone()))
                    .send()
                    .await
                    .map_err(|e| aws_error(Port::Containment, "iam:UntagRole", e))?;
            } else {
                iam.untag_user()
                    .user_name(&entity.name)
                    .set_tag_keys(Some(tagged.clone()))
                    .send()
                    .await
                    .map_err(|e| aws_error(Port::Containment, "iam:UntagUser", e))?;
            }
            removed.extend(tagged.into_iter().map(|k| format!("tag:{k}")));
        }
        for name in LEGACY_INLINE_POLICIES {
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
                Err(e) if e.code() == Some("NoSuchEntity") => {}
                Err(e) => return Err(e),
            }
        }
        Ok(removed)
    }

    /// Which of the tripwire's containment tags `entity` carries.
    async fn contain_tags(
        &self,
        iam: &aws_sdk_iam::Client,
        entity: &IamEntity,
    ) -> Result<Vec<String>, Error> {
        let keys: Vec<String> = if entity.is_role {
            let mut pages = iam
                .list_role_tags()
                .role_name(&entity.name)
                .into_paginator()
                .items()
                .send();
            let mut keys = Vec::new();
            while let Some(tag) = pages.next().await {
                let tag = tag.map_err(|e| aws_error(Port::Containment, "iam:ListRoleTags", e))?;
                keys.push(tag.key().to_owned());
            }
            keys
        } else {
            let mut pages = iam
                .list_user_tags()
                .user_name(&entity.name)
                .into_paginator()
                .items()
                .send();
            let mut keys = Vec::new();
            while let Some(tag) = pages.next().await {
                let tag = tag.map_err(|e| aws_error(Port::Containment, "iam:ListUserTags", e))?;
                keys.push(tag.key().to_owned());
            }
            keys
        };
        // IAM's tag keys are case-insensitive; the containment role may set only these.
        Ok(keys
            .into_iter()
            .filter(|k| ALL_CONTAIN_TAGS.iter().any(|t| t.eq_ignore_ascii_case(k)))
            .collect())
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
                "the plan names no IAM entity in a target account".into(),
            )));
        };
        let result = async {
            let iam = self.iam(partition, account).await?;
            match target {
                Entity::Role(role) => {
                    let out = iam
                        .get_role()
                        .role_name(role)
                        .send()
                        .await
                        .map_err(|e| aws_error(Port::Containment, "iam:GetRole", e))?;
                    Ok(out.role().map(|r| r.arn().to_owned()).unwrap_or_default())
                }
                Entity::User(user) => {
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
        classify(result)
    }

    /// Puts the plan in place: the first managed policy (the brake, or quarantine)
    /// attached before anything else, as it needs nothing a principal could have used up
    /// but one attachment slot; then the tags that name the culprit; then the scope
    /// policy that reads them. `Ok(Err(_))` is a refusal that retrying will not fix,
    /// saying what landed; `Err(_)` is a transient failure worth a retry.
    async fn apply(&self, plan: &Plan) -> Result<Result<(), Refused>, Error> {
        let Some((account, partition, target)) = target_of(plan) else {
            return Ok(Err(Refused::Iam(
                "the plan names no IAM entity in a target account".into(),
            )));
        };
        let mut landed: Vec<String> = Vec::new();
        let result = async {
            let iam = self.iam(partition, account).await?;
            let (first, rest) = plan
                .managed
                .split_first()
                .map_or((None, &[][..]), |(f, r)| (Some(f), r));
            if let Some(name) = first {
                attach(&iam, target, &managed_policy_arn(partition, account, name)).await?;
                landed.push(format!("{name} attached"));
            }
            if !plan.tags.is_empty() {
                let tags: Vec<Tag> = plan
                    .tags
                    .iter()
                    .map(|(k, v)| Tag::builder().key(k).value(v).build())
                    .collect::<Result<_, _>>()
                    .map_err(|e| Error::Aws {
                        port: Port::Containment,
                        op: "iam:TagRole",
                        code: "InvalidTag".into(),
                        message: e.to_string(),
                        transient: false,
                    })?;
                // Setting a tag again overwrites it, so retries are harmless.
                match target {
                    Entity::Role(role) => iam
                        .tag_role()
                        .role_name(role)
                        .set_tags(Some(tags))
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| aws_error(Port::Containment, "iam:TagRole", e))?,
                    Entity::User(user) => iam
                        .tag_user()
                        .user_name(user)
                        .set_tags(Some(tags))
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| aws_error(Port::Containment, "iam:TagUser", e))?,
                }
                landed.push(format!(
                    "tagged {}",
                    plan.tags.keys().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
            for name in rest {
                attach(&iam, target, &managed_policy_arn(partition, account, name)).await?;
                landed.push(format!("{name} attached"));
            }
            // Last: the denies already stop the keys, and deactivating is the one step
            // an operator may not want undone on release (see `tripwire release`).
            if let Entity::User(user) = target {
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
            Ok(())
        }
        .await;
        match classify(result) {
            // What landed before the refusal, so the page says exactly that.
            Ok(Err(Refused::Iam(why))) => Ok(Err(Refused::Iam(if landed.is_empty() {
                format!("nothing landed: {why}")
            } else {
                format!("{} landed; then {why}", landed.join(", "))
            }))),
            other => other,
        }
    }
}

/// Attaches the tripwire's managed policy `arn` to `target`. Attaching an attached
/// policy succeeds, so retries are harmless.
async fn attach(iam: &aws_sdk_iam::Client, target: Entity<'_>, arn: &str) -> Result<(), Error> {
    match target {
        Entity::Role(role) => iam
            .attach_role_policy()
            .role_name(role)
            .policy_arn(arn)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_error(Port::Containment, "iam:AttachRolePolicy", e)),
        Entity::User(user) => iam
            .attach_user_policy()
            .user_name(user)
            .policy_arn(arn)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_error(Port::Containment, "iam:AttachUserPolicy", e)),
    }
}

/// The IAM entity a plan restricts, by name.
#[derive(Clone, Copy)]
enum Entity<'a> {
    Role(&'a str),
    User(&'a str),
}

/// The plan's target: its account, partition and IAM entity. A plan that acts always
/// names its target and account; only a summary (what the alerts show) lacks the
/// partition, and an account brake names no IAM entity (Organizations holds it).
fn target_of(plan: &Plan) -> Option<(&str, &str, Entity<'_>)> {
    let r = plan.restriction.as_ref()?;
    let entity = match &r.target {
        Target::Role(n) => Entity::Role(n),
        Target::User(n) => Entity::User(n),
        Target::Account(_) => return None,
    };
    Some((&r.account, r.partition.as_deref()?, entity))
}

/// A transient failure stays an error, worth a retry; any other is a refusal, in words.
fn classify<T>(result: Result<T, Error>) -> Result<Result<T, Refused>, Error> {
    crate::error::refusal(result, explain)
}

/// The drill role's name in the plan, or a refusal: the drill reads and lifts that one
/// role, never another (the containment role may lift nothing else).
fn drill_role(plan: &Plan) -> Result<(&str, &str, &str), Refused> {
    match target_of(plan) {
        Some((account, partition, Entity::Role(name)))
            if name == tripwire_engine::names::DRILL_ROLE =>
        {
            Ok((account, partition, name))
        }
        _ => Err(Refused::Iam(
            "the drill reads and lifts only the tripwire-drill role".into(),
        )),
    }
}

/// The drill's half: read back and lift the drill role through the containment role,
/// which may do so on that role alone.
impl tripwire_pipeline::DrillTarget for Containment {
    async fn fresh_session(
        &self,
        partition: &str,
        account: &str,
    ) -> Result<Result<(), Refused>, Error> {
        self.cache.lock().await.remove(account);
        classify(self.iam(partition, account).await.map(|_| ()))
    }

    async fn held(&self, plan: &Plan) -> Result<Result<Held, Refused>, Error> {
        let (account, partition, role) = match drill_role(plan) {
            Ok(r) => r,
            Err(refused) => return Ok(Err(refused)),
        };
        let read = async {
            let iam = self.iam(partition, account).await?;
            let got = iam
                .get_role()
                .role_name(role)
                .send()
                .await
                .map_err(|e| aws_error(Port::Containment, "iam:GetRole", e))?;
            let tags = got
                .role()
                .map(|r| {
                    r.tags()
                        .iter()
                        .map(|t| (t.key().to_owned(), t.value().to_owned()))
                        .collect()
                })
                .unwrap_or_default();
            let attached = iam
                .list_attached_role_policies()
                .role_name(role)
                .send()
                .await
                .map_err(|e| aws_error(Port::Containment, "iam:ListAttachedRolePolicies", e))?
                .attached_policies()
                .iter()
                .filter_map(|p| p.policy_name().map(str::to_owned))
                .collect();
            Ok(Held { attached, tags })
        };
        classify(read.await)
    }

    async fn simulate(&self, plan: &Plan, action: &str) -> Result<Option<bool>, Error> {
        let Ok((account, partition, role)) = drill_role(plan) else {
            return Ok(None);
        };
        let iam = self.iam(partition, account).await?;
        // The drill's session, as the scope names it: its source identity.
        let context = aws_sdk_iam::types::ContextEntry::builder()
            .context_key_name("aws:SourceIdentity")
            .context_key_type(aws_sdk_iam::types::ContextKeyTypeEnum::String)
            .context_key_values(tripwire_engine::names::DRILL_SOURCE_IDENTITY)
            .build();
        let out = iam
            .simulate_principal_policy()
            .policy_source_arn(format!("arn:{partition}:iam::{account}:role/{role}"))
            .action_names(action)
            .context_entries(context)
            // One try: the simulator only adds to the read-back, and a drill that could
            // not ask it this week is not a failed one.
            .customize()
            .config_override(
                aws_sdk_iam::config::Builder::default()
                    .retry_config(aws_config::retry::RetryConfig::disabled()),
            )
            .send()
            .await;
        match out {
            Ok(o) => Ok(Some(
                !o.evaluation_results().is_empty()
                    && o.evaluation_results().iter().all(|r| {
                        r.eval_decision()
                            == &aws_sdk_iam::types::PolicyEvaluationDecisionType::ExplicitDeny
                    }),
            )),
            // Not available (a stand-in without the simulator, no permission for it, a
            // passing fault): the read-back stands alone, and the log says why.
            Err(e) => {
                let e = aws_error(Port::Containment, "iam:SimulatePrincipalPolicy", e);
                tracing::info!(error = %e, "IAM's policy simulator did not answer the drill");
                Ok(None)
            }
        }
    }

    async fn lift_drill(&self, plan: &Plan) -> Result<Result<(), Refused>, Error> {
        let (account, partition, role) = match drill_role(plan) {
            Ok(r) => r,
            Err(refused) => return Ok(Err(refused)),
        };
        let lift = async {
            let iam = self.iam(partition, account).await?;
            for name in &plan.managed {
                let res = iam
                    .detach_role_policy()
                    .role_name(role)
                    .policy_arn(managed_policy_arn(partition, account, name))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| aws_error(Port::Containment, "iam:DetachRolePolicy", e));
                match res {
                    // Never attached (the drill failed before it): nothing to lift.
                    Err(e) if e.code() == Some("NoSuchEntity") => {}
                    other => other?,
                }
            }
            if !plan.tags.is_empty() {
                iam.untag_role()
                    .role_name(role)
                    .set_tag_keys(Some(plan.tags.keys().cloned().collect()))
                    .send()
                    .await
                    .map_err(|e| aws_error(Port::Containment, "iam:UntagRole", e))?;
            }
            Ok(())
        };
        classify(lift.await)
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
