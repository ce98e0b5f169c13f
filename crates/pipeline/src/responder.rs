//! The responder pipeline: read the incident the request names from the table, plan
//! containment from the responder's own policy, confirm the target with IAM, apply the
//! plan through the containment role, record the outcome and say so in an alert.
//!
//! The request carries the incident's key and ID only. Whoever can invoke the responder
//! can at most ask it to contain a principal the detector recorded an incident for, as
//! the responder's own policy says; never someone else, never with documents of theirs.

use crate::{
    AccountBrakes, Alerts, Clock, Contain, ContainedPrincipals, DrillTarget, Drills, Error,
    Incidents, NoBrakes, Recorded, Refused, Steps, StoredIncident,
};
use serde::Serialize;
use tripwire_engine::alert::{render, AlertKind, ContainmentState, ContainmentStatus};
use tripwire_engine::containment::{self, BrakeStep, ContainmentRequest, Plan, Target};
use tripwire_engine::drill::{self, BrakeReady, DrillEvent, DrillRequest, Drilled};
use tripwire_engine::principal::{iam_entity, principal_of};
use tripwire_engine::time::Millis;
use tripwire_engine::{Action, Policy};

/// How long after its trigger an incident may still be contained: Lambda retries an
/// asynchronous invoke for up to six hours, and an operator may redrive the dead-letter
/// queue after that; a request older than this is a replay.
pub const MAX_REQUEST_AGE_MS: Millis = 24 * 3600 * 1000;

/// How long the responder holds an incident while it puts containment in place: longer
/// than the function's timeout (60 s), so a responder that dies frees it, and release,
/// which waits for a live hold, never lifts policies a responder is still attaching.
pub const HOLD_MS: Millis = 90_000;

/// What the responder did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ResponderOutcome {
    /// The policies are in place.
    Contained {
        /// The incident.
        incident: String,
        /// Policy names attached or written.
        policies: Vec<String>,
    },
    /// IAM or STS refused.
    Failed {
        /// The incident.
        incident: String,
        /// Why, in words.
        reason: String,
    },
    /// The responder itself refused.
    Refused {
        /// The incident.
        incident: String,
        /// Why.
        reason: String,
    },
    /// A drill ran in an account (and is recorded there).
    Drilled {
        /// What it found.
        #[serde(flatten)]
        drilled: Drilled,
    },
    /// The scheduled run's drill in this account is done or under way: not drilled
    /// again.
    DrillDuplicate {
        /// The member account.
        account: String,
        /// The schedule's run.
        run: String,
    },
}

/// The responder, over its ports.
pub struct Responder<K, S, A, C, B = NoBrakes> {
    policy: Policy,
    own_roles: Vec<String>,
    containment_role: String,
    containment: K,
    store: S,
    alerter: A,
    clock: C,
    brakes: B,
}

impl<K, S, A, C> Responder<K, S, A, C> {
    /// A responder over its ports. `own_roles` (exact role ARNs) and every role named
    /// `containment_role` are never contained.
    pub fn new(
        policy: Policy,
        own_roles: Vec<String>,
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
            brakes: NoBrakes,
        }
    }

    /// The same responder, braking accounts through `brakes`.
    pub fn with_brakes<B: AccountBrakes>(self, brakes: B) -> Responder<K, S, A, C, B> {
        Responder {
            policy: self.policy,
            own_roles: self.own_roles,
            containment_role: self.containment_role,
            containment: self.containment,
            store: self.store,
            alerter: self.alerter,
            clock: self.clock,
            brakes,
        }
    }
}

impl<
        K: Contain + DrillTarget,
        S: Incidents + ContainedPrincipals + Drills + Steps,
        A: Alerts,
        C: Clock,
        B: AccountBrakes,
    > Responder<K, S, A, C, B>
{
    /// Handles one event as Lambda delivers it: a containment request, or a drill
    /// request (`{"drill": {"account": …}}`); `None` when it is neither (refused loudly
    /// by the caller's log, never retried).
    pub async fn handle_event(&self, event: &str) -> Result<Option<ResponderOutcome>, Error> {
        if let Ok(DrillEvent { drill }) = serde_json::from_str(event) {
            return self.drill_once(&drill).await.map(Some);
        }
        match serde_json::from_str(event) {
            Ok(req) => self.handle(req).await.map(Some),
            Err(e) => {
                tracing::error!(error = %e, "not a containment or drill request; ignored");
                Ok(None)
            }
        }
    }

    /// Drills once per scheduled run in an account ([`DrillRequest::step`], claimed with a
    /// lease past the function's timeout): a retried schedule or a redelivered request
    /// finds the run's drill done or under way and does nothing, so two drills never
    /// contain and lift the drill role over each other. A failed attempt gives the claim
    /// up for Lambda's retry. A request without a run (asked by hand) always drills.
    pub async fn drill_once(&self, req: &DrillRequest) -> Result<ResponderOutcome, Error> {
        let drilled = |drilled| ResponderOutcome::Drilled { drilled };
        let Some(step) = req.step() else {
            return self.drill(req).await.map(drilled);
        };
        let now = self.clock.now();
        if self.store.claim_once(&step, now, now + HOLD_MS).await? == Recorded::Duplicate {
            tracing::info!(account = %req.account, run = ?req.run, "this run's drill is done or under way");
            return Ok(ResponderOutcome::DrillDuplicate {
                account: req.account.clone(),
                run: req.run.clone().unwrap_or_default(),
            });
        }
        match self.drill(req).await {
            Ok(d) => {
                self.store.settle_once(&step, true).await?;
                Ok(drilled(d))
            }
            Err(e) => {
                let _ = self.store.settle_once(&step, false).await;
                Err(e)
            }
        }
    }

    /// Drills in one account: the plan an incident would get, for the drill role, put
    /// in place through the containment role as an incident's is, read back from IAM
    /// (and, where available, IAM's simulator), then lifted; and, where an account brake
    /// is deployed, whether Organizations would let it be attached there (it is not). What
    /// it found is recorded beside the heartbeats. No incident and no page: the watchdog
    /// pages a failure.
    pub async fn drill(&self, req: &DrillRequest) -> Result<Drilled, Error> {
        let (role, simulated) = self.run_drill(req).await?;
        let brake = self.drill_brake(&req.account).await?;
        let reasons: Vec<String> = role
            .err()
            .into_iter()
            .chain(brake.clone().and_then(Result::err))
            .collect();
        let drilled = Drilled {
            account: req.account.clone(),
            ok: reasons.is_empty(),
            reason: (!reasons.is_empty()).then(|| reasons.join("; ")),
            simulated,
            brake: brake.map(|b| b.unwrap_or(BrakeReady::Refused)),
            at: self.clock.now(),
        };
        self.store.record_drill(&drilled).await?;
        tracing::info!(account = %drilled.account, ok = drilled.ok, reason = ?drilled.reason, "drill");
        Ok(drilled)
    }

    /// The drill's steps: what failed, in words, and what the simulator said.
    async fn run_drill(
        &self,
        req: &DrillRequest,
    ) -> Result<(Result<(), String>, Option<bool>), Error> {
        let plan = match drill::plan(&self.policy, &req.partition, &req.account) {
            Ok(p) => p,
            Err(why) => return Ok((Err(why), None)),
        };
        if let Err(Refused::Iam(why)) = self
            .containment
            .fresh_session(&req.partition, &req.account)
            .await?
        {
            return Ok((Err(why), None));
        }
        match self.containment.current_arn(&plan).await? {
            Ok(arn) => {
                if let Err(why) = check_current(&self.policy, &self.own_roles, &plan, &arn) {
                    return Ok((Err(why), None));
                }
            }
            Err(Refused::Iam(why)) => {
                return Ok((
                    Err(format!("IAM could not confirm the drill role: {why}")),
                    None,
                ))
            }
        }
        let held = match self.containment.apply(&plan).await? {
            Err(Refused::Iam(why)) => Err(format!("containment did not land: {why}")),
            Ok(()) => match self.containment.held(&plan).await? {
                Ok(h) => drill::verify(&plan, &h),
                Err(Refused::Iam(why)) => Err(format!("IAM could not be read back: {why}")),
            },
        };
        // The first action the brake denies: every plan's first policy is the brake (or
        // quarantine, which denies everything).
        let simulated = match (&held, self.policy.deny_actions.first()) {
            (Ok(()), Some(action)) => self.containment.simulate(&plan, action).await?,
            _ => None,
        };
        // Lifted whatever landed, even when not all of it did: a drill never leaves its
        // role contained.
        let lifted = self.containment.lift_drill(&plan).await?;
        let outcome = match (held, simulated, lifted) {
            (Err(why), _, _) => Err(why),
            (Ok(()), Some(false), _) => Err(
                "IAM's policy simulator does not show the deny in effect for the drill's session"
                    .into(),
            ),
            (Ok(()), _, Err(Refused::Iam(why))) => Err(format!(
                "containment landed and held, but the drill could not lift it: {why}"
            )),
            (Ok(()), _, Ok(())) => Ok(()),
        };
        Ok((outcome, simulated))
    }

    /// The account brake in `account`, where one is deployed: read from Organizations and
    /// checked as [`Self::brake_account`] checks it before attaching, never attached.
    async fn drill_brake(
        &self,
        account: &str,
    ) -> Result<Option<Result<BrakeReady, String>>, Error> {
        let Some(id) = self.policy.account_brake_policy.as_deref() else {
            return Ok(None);
        };
        Ok(Some(match self.brakes.target(account, id).await? {
            Ok(t) => drill::brake_ready(&self.policy, account, &t),
            Err(Refused::Iam(why)) => Err(format!("the account brake could not be checked: {why}")),
        }))
    }

    /// Handles one containment request.
    pub async fn handle(&self, req: ContainmentRequest) -> Result<ResponderOutcome, Error> {
        let incident = req.incident_id.clone();
        let key = req.key();
        // Only an incident the detector recorded can be contained: a request that names
        // anything else did not come from the detector, and there is no one to page
        // about it but the log.
        let Some(stored) = self
            .store
            .incident(&key)
            .await?
            .filter(|s| s.open.id == req.incident_id)
        else {
            let reason = format!(
                "no incident {} is recorded for {} in {}",
                req.incident_id, req.principal_arn, req.account
            );
            tracing::error!(%reason, "containment request refused");
            return Ok(ResponderOutcome::Refused { incident, reason });
        };
        let now = self.clock.now();
        // Staleness is judged by the responder's clock as it acts.
        let planned = self.plan(&stored, now);
        let planned = match planned {
            // Organizations holds the account brake: there is no IAM entity to confirm.
            Ok(plan) if plan.action == Action::AccountBrake => Ok(plan),
            Ok(plan) => match self.containment.current_arn(&plan).await? {
                // Records may omit a role's path; what IAM says decides protection.
                Ok(arn) => check_current(&self.policy, &self.own_roles, &plan, &arn).map(|()| plan),
                Err(Refused::Iam(reason)) => Err(format!(
                    "IAM could not confirm the principal's ARN, so nothing was changed: {reason}"
                )),
            },
            Err(e) => Err(e),
        };
        let (outcome, detail) = match planned {
            Err(reason) => (
                ResponderOutcome::Refused {
                    incident,
                    reason: reason.clone(),
                },
                format!("the responder refused: {reason}"),
            ),
            Ok(_)
                if !self
                    .store
                    .hold_for_containment(&key, &req.incident_id, now + HOLD_MS)
                    .await? =>
            {
                let reason = format!(
                    "incident {} is being released; nothing is put in place while the policies come off",
                    req.incident_id
                );
                (
                    ResponderOutcome::Refused {
                        incident,
                        reason: reason.clone(),
                    },
                    format!("the responder refused: {reason}"),
                )
            }
            Ok(plan) => match self.put_in_place(&plan).await? {
                Ok(()) => {
                    // So that a tripwire policy someone lifts can be written back.
                    if let Some(r) = plan
                        .restriction
                        .as_ref()
                        .filter(|r| !matches!(r.target, Target::Account(_)))
                    {
                        self.store
                            .point_contained(&r.account, &r.target.entity(), &req, now)
                            .await?;
                    }
                    let policies = plan.policy_names();
                    let mut detail = format!("{}; {} in place", plan.reason, policies.join(", "));
                    if let Some(origin) = &plan.origin {
                        detail.push_str(&self.brake_origin(origin).await?);
                    }
                    (ResponderOutcome::Contained { incident, policies }, detail)
                }
                Err(Refused::Iam(reason)) => (
                    ResponderOutcome::Failed {
                        incident,
                        reason: reason.clone(),
                    },
                    reason,
                ),
            },
        };
        let (kind, state) = match &outcome {
            ResponderOutcome::Contained { .. } => {
                (AlertKind::Contained, ContainmentState::Contained)
            }
            ResponderOutcome::Failed { .. } => {
                (AlertKind::ContainmentFailed, ContainmentState::Failed)
            }
            ResponderOutcome::Refused { .. } => {
                (AlertKind::ContainmentFailed, ContainmentState::Refused)
            }
            // A drill is answered by `drill`, never here.
            ResponderOutcome::Drilled { .. } | ResponderOutcome::DrillDuplicate { .. } => {
                return Ok(outcome)
            }
        };
        let status = ContainmentStatus { state, detail };
        let recorded = self
            .store
            .record_containment(&key, &req.incident_id, status.state, &status.detail)
            .await?;
        // Not recorded: the incident is being released (an operator's decision, already
        // on its page), or a later burst of the same key replaced it while we worked.
        // Replaced, what IAM did to the principal still stands and its detected page
        // awaits an outcome: that page goes out, with no record left to mark. A
        // redelivery finds the replacement at its first read and is refused unpaged.
        if !recorded {
            let replaced = self
                .store
                .incident(&key)
                .await?
                .is_none_or(|s| s.open.id != req.incident_id);
            if !replaced || matches!(outcome, ResponderOutcome::Refused { .. }) {
                tracing::info!(
                    ?outcome,
                    replaced,
                    "outcome not recorded: the incident is being released or was replaced"
                );
                return Ok(outcome);
            }
        }
        // Lambda delivers an asynchronous invoke at least once: a repeated request
        // re-applies the (idempotent) policies but does not page again for the same
        // outcome. Marked after publishing, so a failed publish is retried, not lost.
        if stored.containment_alerted == Some(status.state) {
            return Ok(outcome);
        }
        let alert = render(
            kind,
            &stored.incident,
            &status,
            self.policy.window_for(
                stored.incident.principal_arn().unwrap_or_default(),
                &stored.incident.resource_type,
            ),
            now,
            false,
        );
        self.alerter.publish(&alert).await?;
        if recorded {
            self.store
                .mark_containment_alerted(&key, &req.incident_id, status.state)
                .await?;
        }
        Ok(outcome)
    }

    /// Puts the plan in place: an account brake through Organizations, anything else
    /// through the containment role.
    async fn put_in_place(&self, plan: &Plan) -> Result<Result<(), Refused>, Error> {
        match plan.restriction.as_ref().map(|r| &r.target) {
            Some(Target::Account(account)) => self.brake_account(account).await,
            _ => self.containment.apply(plan).await,
        }
    }

    /// Attaches the account brake to `account`, once Organizations shows it may: within
    /// its limits, not the management account, and the brake the policy renders.
    async fn brake_account(&self, account: &str) -> Result<Result<(), Refused>, Error> {
        let Some(id) = self.policy.account_brake_policy.as_deref() else {
            return Ok(Err(Refused::Iam(
                "no account_brake_policy is deployed".into(),
            )));
        };
        let target = match self.brakes.target(account, id).await? {
            Ok(t) => t,
            Err(refused) => return Ok(Err(refused)),
        };
        match containment::brake_step(&self.policy, account, &target) {
            Err(why) => Ok(Err(Refused::Iam(format!("nothing was attached: {why}")))),
            Ok(BrakeStep::Attached) => Ok(Ok(())),
            Ok(BrakeStep::Attach) => self.brakes.attach(account, id).await,
        }
    }

    /// Brakes the principal the burst's session chain began with, checked with IAM like
    /// the culprit; what happened, for the alert. Its failure leaves the culprit's
    /// containment standing and is said, not retried.
    async fn brake_origin(&self, origin: &Plan) -> Result<String, Error> {
        let arn = origin.principal_arn().unwrap_or_default();
        let checked = match self.containment.current_arn(origin).await? {
            Ok(current) => check_current(&self.policy, &self.own_roles, origin, &current),
            Err(Refused::Iam(reason)) => Err(format!("IAM could not confirm it: {reason}")),
        };
        let done = match checked {
            Ok(()) => self.containment.apply(origin).await?,
            Err(reason) => Err(Refused::Iam(reason)),
        };
        Ok(match done {
            Ok(()) => format!(
                "; the chain's origin {arn}: {} in place",
                origin.managed.join(", ")
            ),
            Err(Refused::Iam(reason)) => {
                format!("; the chain's origin {arn} was not braked: {reason}")
            }
        })
    }

    /// The plan for a recorded incident, from the responder's own policy, or why none.
    fn plan(&self, stored: &StoredIncident, now: Millis) -> Result<Plan, String> {
        let incident = &stored.incident;
        if stored.containment_state == Some(ContainmentState::Released) {
            return Err(format!(
                "incident {} was released; a request for it is a replay",
                incident.id
            ));
        }
        if stored.containment_state == Some(ContainmentState::Releasing) {
            return Err(format!(
                "incident {} is being released; nothing is written back while the policies come off",
                incident.id
            ));
        }
        // An item without its opening time is older than the field: too old to act on.
        if stored
            .opened_at
            .is_none_or(|at| now.saturating_sub(at) > MAX_REQUEST_AGE_MS)
        {
            return Err(format!(
                "incident {} opened more than {} hours ago (or says not when); a request for it is a replay",
                incident.id,
                MAX_REQUEST_AGE_MS / 3_600_000
            ));
        }
        // The burst's own times, not when the incident was opened: an old burst opened
        // late (a redrive) is never contained.
        if let Some(why) = containment::stale(
            &self.policy,
            incident.principal_arn().unwrap_or_default(),
            &incident.resource_type,
            incident.last_event_time,
            now,
            None,
        ) {
            return Err(why);
        }
        if incident.containment.action == Action::None {
            return Err(format!(
                "the detector decided not to contain: {}",
                incident.containment.reason
            ));
        }
        let arn = incident.principal_arn().unwrap_or_default();
        if self.own_roles.iter().any(|r| r.eq_ignore_ascii_case(arn)) {
            return Err(format!("{arn} is one of the tripwire's own roles"));
        }
        // The root user has no IAM entity (the account brake holds it); every role is
        // checked against the member roles by name.
        if let Ok(entity) = iam_entity(arn) {
            if entity.is_role
                && std::iter::once(self.containment_role.as_str())
                    .chain(tripwire_engine::names::MEMBER_ROLES)
                    .any(|n| entity.name.eq_ignore_ascii_case(n))
            {
                return Err(format!("{arn} is one of the tripwire's member roles"));
            }
        }
        let principal = principal_of(arn, &incident.principal_type)?;
        let plan = containment::plan(
            &self.policy,
            &principal,
            &incident.culprit(),
            &incident.resource_type,
        );
        if plan.action == Action::None {
            return Err(plan.reason);
        }
        Ok(plan)
    }
}

/// Checks the plan again against the ARN IAM has for its target (`current`, with the
/// path a record may have omitted): the same entity, and neither protected nor ours.
pub fn check_current(
    policy: &Policy,
    own_roles: &[String],
    plan: &Plan,
    current: &str,
) -> Result<(), String> {
    let planned = plan.principal_arn().unwrap_or_default();
    let want = iam_entity(planned)?;
    let got = iam_entity(current).map_err(|e| format!("IAM returned an unexpected ARN: {e}"))?;
    if (got.is_role, &got.account, got.name.to_ascii_lowercase())
        != (want.is_role, &want.account, want.name.to_ascii_lowercase())
    {
        return Err(format!("IAM names {current}, not the plan's {planned}"));
    }
    if policy.is_protected(current) {
        return Err(format!(
            "{current} is a protected principal (its path confirmed with IAM)"
        ));
    }
    if own_roles.iter().any(|r| r.eq_ignore_ascii_case(current)) {
        return Err(format!("{current} is one of the tripwire's own roles"));
    }
    Ok(())
}
