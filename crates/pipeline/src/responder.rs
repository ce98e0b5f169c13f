//! The responder pipeline: check the plan (defense in depth), apply it through the
//! containment role, record the outcome on the incident, and say so in an alert.

use crate::{Alerts, Clock, Contain, Error, IncidentStore, Refused};
use serde::Serialize;
use tripwire_engine::alert::{render, AlertKind, ContainmentState, ContainmentStatus};
use tripwire_engine::containment::{ContainmentRequest, ALL_POLICY_NAMES};
use tripwire_engine::policy::Glob;
use tripwire_engine::principal::iam_entity;
use tripwire_engine::{Action, Policy};

/// What the responder did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ResponderOutcome {
    /// The policies are in place.
    Contained {
        /// The incident.
        incident: String,
        /// Policy names written.
        policies: Vec<String>,
    },
    /// IAM or STS refused.
    Failed {
        /// The incident.
        incident: String,
        /// Why, in words.
        reason: String,
    },
    /// The responder itself refused the plan.
    Refused {
        /// The incident.
        incident: String,
        /// Why.
        reason: String,
    },
}

/// The responder, over its ports.
pub struct Responder<K, S, A, C> {
    policy: Policy,
    own_roles: Vec<Glob>,
    containment_role: String,
    containment: K,
    store: S,
    alerter: A,
    clock: C,
}

impl<K: Contain, S: IncidentStore, A: Alerts, C: Clock> Responder<K, S, A, C> {
    /// A responder over its ports. `own_roles` and `containment_role` are never contained.
    pub fn new(
        policy: Policy,
        own_roles: Vec<Glob>,
        containment_role: String,
        containment: K,
        store: S,
        alerter: A,
        clock: C,
    ) -> Self {
        Responder {
            policy,
            own_roles,
            containment_role,
            containment,
            store,
            alerter,
            clock,
        }
    }

    /// Handles one event as Lambda delivers it: `None` when it is not a containment
    /// request at all (refused loudly by the caller's log, never retried).
    pub async fn handle_event(&self, event: &str) -> Result<Option<ResponderOutcome>, Error> {
        match serde_json::from_str(event) {
            Ok(req) => self.handle(req).await.map(Some),
            Err(e) => {
                tracing::error!(error = %e, "not a containment request; ignored");
                Ok(None)
            }
        }
    }

    /// Handles one containment request.
    pub async fn handle(&self, req: ContainmentRequest) -> Result<ResponderOutcome, Error> {
        let incident = req.incident.id.clone();
        let key = req.incident.key();
        // Only an incident the detector recorded can be contained: a request that names
        // anything else did not come from the detector.
        let stored = self
            .store
            .incident(&key)
            .await?
            .filter(|s| s.open.id == req.incident.id);
        let recorded = stored.is_some();
        let checked = if recorded {
            check_plan(&self.policy, &self.own_roles, &self.containment_role, &req)
        } else {
            Err(format!(
                "no incident {} is recorded for {} in {}",
                req.incident.id, key.principal_arn, key.account
            ))
        };
        // Records may omit a role's path; what IAM says decides protection.
        let checked = match checked {
            Ok(()) => match self.containment.current_arn(&req.plan).await? {
                Ok(arn) => check_current(&self.policy, &self.own_roles, &req, &arn),
                Err(Refused::Iam(reason)) => Err(format!(
                    "IAM could not confirm the principal's ARN, so nothing was changed: {reason}"
                )),
            },
            Err(e) => Err(e),
        };
        let outcome = match checked {
            Err(reason) => ResponderOutcome::Refused { incident, reason },
            Ok(()) => match self.containment.apply(&req.plan).await? {
                Ok(()) => ResponderOutcome::Contained {
                    incident,
                    policies: req.plan.policies.iter().map(|p| p.name.clone()).collect(),
                },
                Err(Refused::Iam(reason)) => ResponderOutcome::Failed { incident, reason },
            },
        };
        let (kind, status) = match &outcome {
            ResponderOutcome::Contained { policies, .. } => (
                AlertKind::Contained,
                ContainmentStatus {
                    state: ContainmentState::Contained,
                    detail: format!(
                        "{}; inline policies {} in place",
                        req.plan.reason,
                        policies.join(", ")
                    ),
                },
            ),
            ResponderOutcome::Failed { reason, .. } => (
                AlertKind::ContainmentFailed,
                ContainmentStatus {
                    state: ContainmentState::Failed,
                    detail: reason.clone(),
                },
            ),
            ResponderOutcome::Refused { reason, .. } => (
                AlertKind::ContainmentFailed,
                ContainmentStatus {
                    state: ContainmentState::Refused,
                    detail: format!("the responder refused: {reason}"),
                },
            ),
        };
        self.store
            .record_containment(&key, &req.incident.id, status.state, &status.detail)
            .await?;
        // Lambda delivers an asynchronous invoke at least once: a repeated request
        // re-applies the (idempotent) policies but does not page again for the same
        // outcome. Marked after publishing, so a failed publish is retried, not lost.
        if stored.as_ref().and_then(|s| s.containment_alerted) == Some(status.state) {
            return Ok(outcome);
        }
        // The recorded incident is the authority (its counts are current, and what a
        // request carries is only what the detector sent); an unrecorded one has only
        // the request.
        let incident = stored.as_ref().map_or(&req.incident, |s| &s.incident);
        let alert = render(
            kind,
            incident,
            &status,
            self.policy.window_for(&incident.principal_arn),
            self.clock.now(),
            false,
        );
        self.alerter.publish(&alert).await?;
        if recorded {
            self.store
                .mark_containment_alerted(&key, &req.incident.id, status.state)
                .await?;
        }
        Ok(outcome)
    }
}

/// Whether a plan may be executed. The detector already decided; this re-checks it, so a
/// forged or buggy request can never restrict anyone it should not.
/// Checks the plan again against the ARN IAM has for its target (`current`, with the
/// path a record may have omitted): the same entity, and neither protected nor ours.
pub fn check_current(
    policy: &Policy,
    own_roles: &[Glob],
    req: &ContainmentRequest,
    current: &str,
) -> Result<(), String> {
    let want = iam_entity(req.plan.principal_arn.as_deref().unwrap_or_default())?;
    let got = iam_entity(current).map_err(|e| format!("IAM returned an unexpected ARN: {e}"))?;
    if (got.is_role, &got.account, got.name.to_ascii_lowercase())
        != (want.is_role, &want.account, want.name.to_ascii_lowercase())
    {
        return Err(format!(
            "IAM names {current}, not the plan's {}",
            req.incident.principal_arn
        ));
    }
    if policy.is_protected(current) {
        return Err(format!(
            "{current} is a protected principal (its path confirmed with IAM)"
        ));
    }
    if own_roles.iter().any(|g| g.matches(current)) {
        return Err(format!("{current} is one of the tripwire's own roles"));
    }
    Ok(())
}

pub fn check_plan(
    policy: &Policy,
    own_roles: &[Glob],
    containment_role: &str,
    req: &ContainmentRequest,
) -> Result<(), String> {
    let plan = &req.plan;
    if plan.action == Action::None {
        return Err("the plan asks for no containment".into());
    }
    let arn = plan
        .principal_arn
        .as_deref()
        .ok_or("the plan names no principal")?;
    if arn != req.incident.principal_arn {
        return Err(format!(
            "the plan's principal {arn} is not the incident's {}",
            req.incident.principal_arn
        ));
    }
    if policy.is_protected(arn) {
        return Err(format!("{arn} is a protected principal"));
    }
    if own_roles.iter().any(|g| g.matches(arn)) {
        return Err(format!("{arn} is one of the tripwire's own roles"));
    }
    let entity = iam_entity(arn)?;
    if entity.is_role && entity.name.eq_ignore_ascii_case(containment_role) {
        return Err(format!("{arn} is the containment role"));
    }
    let target = plan
        .target
        .as_ref()
        .ok_or("the plan names no role or user")?;
    if target.name() != entity.name
        || target.is_role() != entity.is_role
        || plan.target_account.as_deref() != Some(&entity.account)
        || plan.partition.as_deref() != Some(&entity.partition)
    {
        return Err(format!("the plan's target does not match {arn}"));
    }
    if plan.policies.is_empty() {
        return Err("the plan carries no policy".into());
    }
    for p in &plan.policies {
        if !ALL_POLICY_NAMES.contains(&p.name.as_str()) {
            return Err(format!("`{}` is not a tripwire policy name", p.name));
        }
        if !deny_only(&p.document) {
            return Err(format!(
                "policy `{}` grants something: the responder only writes denies",
                p.name
            ));
        }
    }
    Ok(())
}

/// A policy document whose every statement is a Deny.
fn deny_only(document: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Doc {
        #[serde(rename = "Statement")]
        statement: Vec<Stmt>,
    }
    #[derive(serde::Deserialize)]
    struct Stmt {
        #[serde(rename = "Effect")]
        effect: String,
    }
    serde_json::from_str::<Doc>(document)
        .is_ok_and(|d| !d.statement.is_empty() && d.statement.iter().all(|s| s.effect == "Deny"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tripwire_engine::containment::{plan, InlinePolicy};
    use tripwire_engine::principal::{Principal, PrincipalKind};

    fn request(arn: &str, name: &str, account: &str, mode: &str) -> ContainmentRequest {
        let policy = Policy::from_toml(&format!("containment = \"{mode}\"")).unwrap();
        let p = Principal {
            arn: arn.into(),
            kind: PrincipalKind::Role {
                name: name.into(),
                path: "/".into(),
                path_known: true,
            },
            account: Some(account.into()),
            partition: "aws".into(),
            anomaly: None,
        };
        let plan = plan(&policy, &p, 0);
        let w = tripwire_engine::window::WindowCount {
            count: 10,
            first_time: 0,
            last_time: 0,
        };
        let key = tripwire_engine::Key::new(tripwire_engine::window::Lane::Burst, arn, account);
        let t = tripwire_engine::Termination {
            event_id: "e".into(),
            event_time: 0,
            principal: p,
            account: account.into(),
            region: "us-east-1".into(),
            instance_ids: vec!["i-1".into()],
            already_terminated: 0,
            error_code: None,
            unconfirmed: false,
            source_ip: None,
            user_agent: None,
            session: Default::default(),
            origin: None,
        };
        ContainmentRequest {
            incident: tripwire_engine::Incident::open(&key, &t, w, 10, false, plan.summary()),
            plan,
        }
    }

    fn check(req: &ContainmentRequest) -> Result<(), String> {
        let policy =
            Policy::from_toml("protected_principals = [\"arn:aws:iam::*:role/BreakGlass*\"]")
                .unwrap();
        let own = vec![Glob::new("arn:*:iam::*:role/tripwire-*", true)];
        check_plan(&policy, &own, "sec-containment", req)
    }

    #[test]
    fn a_plan_the_detector_would_make_passes() {
        assert_eq!(
            check(&request(
                "arn:aws:iam::222222222222:role/app",
                "app",
                "222222222222",
                "revoke"
            )),
            Ok(())
        );
        assert_eq!(
            check(&request(
                "arn:aws:iam::222222222222:role/app",
                "app",
                "222222222222",
                "quarantine"
            )),
            Ok(())
        );
    }

    #[test]
    fn forged_or_inconsistent_plans_are_refused() {
        let ok = || {
            request(
                "arn:aws:iam::222222222222:role/app",
                "app",
                "222222222222",
                "revoke",
            )
        };
        let mut cases: Vec<(&str, ContainmentRequest)> = vec![
            (
                "protected",
                request(
                    "arn:aws:iam::222222222222:role/BreakGlassAdmin",
                    "BreakGlassAdmin",
                    "222222222222",
                    "revoke",
                ),
            ),
            (
                "own role",
                request(
                    "arn:aws:iam::222222222222:role/tripwire-detector",
                    "tripwire-detector",
                    "222222222222",
                    "revoke",
                ),
            ),
            (
                "containment role",
                request(
                    "arn:aws:iam::222222222222:role/sec-containment",
                    "sec-containment",
                    "222222222222",
                    "revoke",
                ),
            ),
            (
                "no plan",
                request(
                    "arn:aws:iam::222222222222:role/app",
                    "app",
                    "222222222222",
                    "off",
                ),
            ),
        ];
        let mut other_account = ok();
        other_account.plan.target_account = Some("333333333333".into());
        cases.push(("target account is not the principal's", other_account));
        let mut other_name = ok();
        other_name.plan.target = Some(tripwire_engine::Target::Role("admin".into()));
        cases.push(("name is not the principal's", other_name));
        let mut allow = ok();
        allow.plan.policies[0].document = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#.into();
        cases.push(("grants", allow));
        let mut odd_name = ok();
        odd_name.plan.policies.push(InlinePolicy {
            name: "AdministratorAccess".into(),
            document: odd_name.plan.policies[0].document.clone(),
        });
        cases.push(("foreign policy name", odd_name));
        let mut elsewhere = ok();
        elsewhere.incident.principal_arn = "arn:aws:iam::222222222222:role/other".into();
        cases.push(("incident is about someone else", elsewhere));
        for (name, req) in cases {
            assert!(check(&req).is_err(), "{name} was accepted");
        }
    }
}
