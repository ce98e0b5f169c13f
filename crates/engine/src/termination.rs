//! From a watched call's CloudTrail record to a [`Termination`]: what it destroyed, who
//! called, from which session.

use crate::catalogue::{self, Ids, Watched, Weakens};
use crate::principal::{self, sanitize, Arn, Principal};
use crate::record::{
    Document, Envelope, InstancesSet, Lenient, SessionContext, TerminateParameters, UserIdentity,
};
use crate::skip::SkipReason;
use crate::time::Millis;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::HashMap;

/// One watched call (`ec2:TerminateInstances`, `rds:DeleteDBInstance`, …), successful
/// or not. The name is the seed's door's; the fields speak of instances because that is
/// what most calls carry, and `call` says what the IDs are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Termination {
    /// The watched call it is (what it destroys, `call.resource.kind`: bursts are
    /// counted per principal and type).
    #[serde(skip)]
    pub call: &'static Watched,
    /// CloudTrail `eventID`, the deduplication key (a content hash when absent).
    pub event_id: String,
    /// CloudTrail `eventTime`.
    pub event_time: Millis,
    /// Who made the call.
    pub principal: Principal,
    /// Where the instances die (`recipientAccountId`).
    pub account: String,
    /// `awsRegion`.
    pub region: String,
    /// Distinct IDs of what this call destroyed, sorted: for instances, those it asked
    /// for, less any that `responseElements` shows were already shutting down or
    /// terminated; for the other types, the one the request names.
    pub instance_ids: Vec<String>,
    /// How many of the IDs asked for were already shutting down or terminated.
    pub already_terminated: u32,
    /// Set when the call failed (denied, dry run, …): then nothing was terminated,
    /// unless the call is [`unconfirmed`](Termination::unconfirmed).
    pub error_code: Option<String>,
    /// `OperationNotPermitted`: termination protection stopped one of the instances,
    /// yet EC2 terminates the others (in other Availability Zones). CloudTrail does not
    /// say which, so every ID asked for counts, reported as unconfirmed.
    pub unconfirmed: bool,
    /// `sourceIPAddress`.
    pub source_ip: Option<String>,
    /// `userAgent`.
    pub user_agent: Option<String>,
    /// What identifies the session behind the call.
    pub session: Session,
    /// Where the chain of sessions behind the call began, once joined to the
    /// `AssumeRole*` record that issued its access key (see [`crate::provenance`]).
    pub origin: Option<crate::provenance::Origin>,
    /// Set when a service carried the call out for a principal's earlier call: then
    /// `principal`, `session`, `source_ip` and `user_agent` are that principal's, and
    /// this keeps the service and the call (see `initiator::credit`).
    pub credit: Option<Box<Credit>>,
    /// The EventBridge archive replay that delivered it (`replay-name`): history, never
    /// a reason to contain anyone now.
    pub replay: Option<String>,
}

/// A service's termination counted for the principal whose call made the service act.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Credit {
    /// The service and the role it terminated with.
    pub via: Via,
    /// The principal's call.
    pub initiator: Initiator,
}

/// The service that carried terminations out, and the service-linked role (or AWS
/// service identity) its records name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Via {
    /// e.g. `autoscaling.amazonaws.com`.
    pub service: String,
    /// e.g. `arn:aws:iam::…:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling`.
    pub principal_arn: String,
}

/// The initiator an incident names: who decided, with which call, when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Initiator {
    /// The principal that made the call.
    pub principal_arn: String,
    /// The call.
    pub event_name: String,
    /// When.
    #[serde(with = "crate::time::rfc3339")]
    pub event_time: Millis,
    /// Its eventID.
    pub event_id: String,
}

/// What a record says about the session behind a call: evidence for the on-call
/// engineer (which person behind a shared role, which network), never a decision input.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Session {
    /// The role session name (`assumed-role/ROLE/NAME`), or the federated user's name.
    pub name: Option<String>,
    /// `userIdentity.principalId`.
    pub principal_id: Option<String>,
    /// `sessionContext.sourceIdentity`, which survives role chaining.
    pub source_identity: Option<String>,
    /// `userIdentity.accessKeyId`: joins the call to the `AssumeRole*` that issued it.
    pub access_key_id: Option<String>,
    /// `vpcEndpointId`: the call came through this endpoint (a network, not the internet).
    pub vpc_endpoint_id: Option<String>,
    /// `sessionContext.webIdFederationData.federatedProvider`.
    pub web_identity_provider: Option<String>,
    /// `sessionCredentialFromConsole`.
    pub from_console: bool,
    /// `sessionContext.ec2RoleDelivery`: instance-profile credentials from the instance
    /// metadata service (every instance sharing the profile holds them).
    pub ec2_role_delivery: Option<String>,
    /// `userIdentity.invokedBy`: a service made the call on the principal's behalf.
    pub invoked_by: Option<String>,
}

impl Session {
    fn from_record(
        doc: &Document<'_>,
        ui: &UserIdentity<'_>,
        ctx: Option<&SessionContext<'_>>,
    ) -> Self {
        let default = SessionContext::default();
        let ctx = ctx.unwrap_or(&default);
        let text = |l: &crate::record::Lenient<'_>| l.get().map(sanitize);
        // `assumed-role/ROLE/SESSION` and `federated-user/NAME` end in the session's name.
        let name = ui.arn.get().and_then(Arn::parse).and_then(|a| {
            let rest = a
                .resource
                .strip_prefix("assumed-role/")
                .and_then(|r| r.split_once('/').map(|(_, s)| s))
                .or_else(|| a.resource.strip_prefix("federated-user/"))?;
            (!rest.is_empty()).then(|| sanitize(rest))
        });
        Session {
            name,
            principal_id: text(&ui.principal_id),
            source_identity: text(&ctx.source_identity),
            access_key_id: text(&ui.access_key_id),
            vpc_endpoint_id: text(&doc.vpc_endpoint_id),
            web_identity_provider: ctx
                .web_id_federation_data
                .as_ref()
                .and_then(|w| text(&w.federated_provider)),
            from_console: doc.session_credential_from_console.get() == Some("true"),
            ec2_role_delivery: text(&ctx.ec2_role_delivery),
            invoked_by: text(&ui.invoked_by),
        }
    }
}

impl Termination {
    /// What it destroys (`ec2:instance`, `rds:db`).
    pub fn kind(&self) -> &'static str {
        self.call.resource.kind
    }

    /// A failed call terminated nothing; it only counts as an attempt.
    pub fn is_attempt(&self) -> bool {
        self.error_code.is_some() && !self.unconfirmed
    }
}

/// The error of a call that still destroyed some of its resources.
fn is_partial_failure(w: &Watched, code: &str) -> bool {
    let code = code.strip_prefix("Client.").unwrap_or(code);
    w.resource.partial_failure.contains(&code)
}

/// Who made `doc`'s call, and what its record says of the session: the one reading of
/// `userIdentity` that watched calls and the initiator calls credited with them share.
pub fn caller_of(doc: &Document<'_>) -> Result<(Principal, Session), SkipReason> {
    let raw = doc.user_identity.ok_or(SkipReason::NoUserIdentity)?;
    let ui: UserIdentity =
        serde_json::from_str(raw.get()).map_err(|_| SkipReason::NoUserIdentity)?;
    let ctx = principal::session_context(&ui);
    let p = principal::resolve_in(&ui, ctx.as_ref()).map_err(|_| SkipReason::NoUserIdentity)?;
    let session = Session::from_record(doc, &ui, ctx.as_ref());
    Ok((p, session))
}

/// Reads a watched call's record into a [`Termination`]; `Ok(None)` for any other call.
pub fn from_record(
    doc: &Document<'_>,
    envelope: Option<&Envelope<'_>>,
) -> Result<Option<Termination>, SkipReason> {
    let (Some(source), Some(name)) = (doc.event_source.get(), doc.event_name.get()) else {
        return Ok(None);
    };
    let Some(w) = catalogue::watched(source, name) else {
        return Ok(None);
    };
    if envelope.is_some_and(|env| env.disagrees(doc, Some(w.source))) {
        return Err(SkipReason::EnvelopeMismatch);
    }
    // A precursor is recorded only when it succeeded in taking a protection away; any
    // other call of its name (an instance type changed, storage grown) is another event.
    if let Some(how) = w.precursor {
        if doc.error_code.get().is_some() || !weakens(how, doc)? {
            return Ok(None);
        }
    }
    let recipient = doc.recipient_account_id.get();
    let event_time = doc.time()?;
    let time = doc.event_time.get().unwrap_or_default();
    let (principal, session) = caller_of(doc)?;
    let account = recipient
        .or(envelope.and_then(|e| e.account.get()))
        .or(principal.account.as_deref())
        .ok_or(SkipReason::NoAccount)?;
    let error_code = doc.error_code.get().map(sanitize);
    let asked = match w.resource.ids {
        Ids::InstancesSet => instance_ids(w, doc)?,
        Ids::Param(key) => param_id(w, doc, key)?,
        Ids::Recipient => vec![sanitize(account)],
    };
    if asked.is_empty() && error_code.is_none() {
        return Err(match w.resource.ids {
            Ids::InstancesSet => SkipReason::NoInstances,
            _ => SkipReason::NoResourceId,
        });
    }
    let unconfirmed = error_code
        .as_deref()
        .is_some_and(|c| is_partial_failure(w, c));
    // Only a successful call has `responseElements`; an absent or unreadable one leaves
    // the request's IDs counted.
    let dead = if error_code.is_none() && w.resource.ids == Ids::InstancesSet {
        already_dead(w, doc)
    } else {
        Vec::new()
    };
    let (instance_ids, already): (Vec<String>, Vec<String>) = asked
        .into_iter()
        .partition(|id| dead.binary_search(id).is_err());
    let event_id = match doc.event_id.get() {
        Some(id) => sanitize(id),
        None => crate::record::content_id(&[
            doc.request_id.get().unwrap_or(""),
            time,
            account,
            &principal.arn,
            &instance_ids.join(","),
            error_code.as_deref().unwrap_or(""),
        ]),
    };
    Ok(Some(Termination {
        call: w,
        event_id,
        event_time,
        account: sanitize(account),
        region: sanitize(doc.aws_region.get().unwrap_or("unknown")),
        already_terminated: u32::try_from(already.len()).unwrap_or(u32::MAX),
        instance_ids,
        error_code,
        unconfirmed,
        source_ip: doc.source_ip_address.get().map(sanitize),
        user_agent: doc.user_agent.get().map(sanitize),
        session,
        origin: None,
        credit: None,
        replay: envelope.and_then(|e| e.replay_name.get()).map(sanitize),
        principal,
    }))
}

/// Whether a precursor's request takes the protection away, as `how` reads it.
fn weakens(how: Weakens, doc: &Document<'_>) -> Result<bool, SkipReason> {
    use serde_json::Value;
    let Some(raw) = doc.request_parameters else {
        return Ok(false);
    };
    let params: Value =
        serde_json::from_str(raw.get()).map_err(|_| SkipReason::BadRequestParameters)?;
    // EC2 logs an attribute as `{"value": …}`; the other services log it bare. Booleans
    // may arrive as strings from query-protocol services.
    let bare = |v: &Value| -> Value {
        match v.get("value") {
            Some(inner) => inner.clone(),
            None => v.clone(),
        }
    };
    let is_false = |v: &Value| matches!(bare(v), Value::Bool(false)) || bare(v) == "false";
    Ok(match how {
        Weakens::Off(key) => params.get(key).is_some_and(is_false),
        Weakens::InstanceProtection => {
            let shutdown_terminates = |v: &Value| {
                bare(v)
                    .as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case("terminate"))
            };
            params.get("disableApiTermination").is_some_and(is_false)
                || params
                    .get("instanceInitiatedShutdownBehavior")
                    .is_some_and(shutdown_terminates)
                // The older form: `attribute` names it, `value` sets it.
                || match (params.get("attribute").and_then(Value::as_str), params.get("value")) {
                    (Some("disableApiTermination"), Some(v)) => is_false(v),
                    (Some("instanceInitiatedShutdownBehavior"), Some(v)) => shutdown_terminates(v),
                    _ => false,
                }
        }
        Weakens::ShortLifecycle => {
            let event_time = doc.time()?;
            let rules = params
                .pointer("/LifecycleConfiguration/Rule")
                .map(|r| match r {
                    Value::Array(rules) => rules.iter().collect(),
                    rule => vec![rule],
                })
                .unwrap_or_default();
            rules.into_iter().any(|r| expires_soon(r, event_time))
        }
    })
}

/// Whether an S3 lifecycle rule (as CloudTrail logs the XML: numbers may be strings) is
/// enabled and expires current objects or noncurrent versions within
/// [`catalogue::LIFECYCLE_DAYS`], or on a date no later than that after `now`.
fn expires_soon(rule: &serde_json::Value, now: Millis) -> bool {
    use serde_json::Value;
    let number = |v: Option<&Value>| -> Option<u64> {
        match v? {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    };
    let soon = |days: Option<u64>| days.is_some_and(|d| d <= catalogue::LIFECYCLE_DAYS);
    let enabled = rule.get("Status").and_then(Value::as_str) == Some("Enabled");
    let expiration = rule.get("Expiration");
    let by_date = expiration
        .and_then(|e| e.get("Date"))
        .and_then(Value::as_str)
        .and_then(crate::time::parse_event_time)
        .is_some_and(|d| d <= now + catalogue::LIFECYCLE_DAYS as Millis * 86_400_000);
    enabled
        && (soon(number(expiration.and_then(|e| e.get("Days"))))
            || by_date
            || soon(number(
                rule.pointer("/NoncurrentVersionExpiration/NoncurrentDays"),
            )))
}

fn instance_ids(w: &Watched, doc: &Document<'_>) -> Result<Vec<String>, SkipReason> {
    let Some(raw) = doc.request_parameters else {
        return Ok(Vec::new());
    };
    let params: TerminateParameters =
        serde_json::from_str(raw.get()).map_err(|_| SkipReason::BadRequestParameters)?;
    let mut ids: Vec<String> = params
        .instances_set
        .and_then(|s| s.items)
        .unwrap_or_default()
        .iter()
        .filter_map(|i| i.instance_id.get())
        .filter(|id| id.len() <= w.resource.max_id_len)
        .map(sanitize)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.len() > w.resource.max_ids {
        return Err(SkipReason::TooManyInstances);
    }
    Ok(ids)
}

/// The one ID request parameter `key` names (an empty list when it names none, as a
/// failed call's request may not). Read into borrowed scalars, not a `Value` tree.
fn param_id(w: &Watched, doc: &Document<'_>, key: &str) -> Result<Vec<String>, SkipReason> {
    let Some(raw) = doc.request_parameters else {
        return Ok(Vec::new());
    };
    // `null` (no parameters) names nothing; objects and arrays inside read as absent.
    let params: Option<HashMap<Cow<'_, str>, Lenient<'_>>> =
        serde_json::from_str(raw.get()).map_err(|_| SkipReason::BadRequestParameters)?;
    Ok(params
        .as_ref()
        .and_then(|p| p.get(key))
        .and_then(Lenient::get)
        .filter(|id| id.len() <= w.resource.max_id_len)
        .map(|id| vec![sanitize(id)])
        .unwrap_or_default())
}

/// The IDs `responseElements` shows were already shutting down or terminated, sorted.
fn already_dead(w: &Watched, doc: &Document<'_>) -> Vec<String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Response<'a> {
        #[serde(borrow, default)]
        instances_set: Option<InstancesSet<'a>>,
    }
    let Some(raw) = doc.response_elements else {
        return Vec::new();
    };
    let Ok(resp) = serde_json::from_str::<Response>(raw.get()) else {
        return Vec::new();
    };
    let mut dead: Vec<String> = resp
        .instances_set
        .and_then(|s| s.items)
        .unwrap_or_default()
        .iter()
        .filter(|i| {
            i.previous_state
                .as_ref()
                .and_then(|s| s.name.get())
                .is_some_and(|n| w.resource.already_gone.contains(&n))
        })
        .filter_map(|i| i.instance_id.get())
        .map(sanitize)
        .collect();
    dead.sort_unstable();
    dead
}

#[cfg(test)]
mod tests {
    use crate::scan::{scan_events, Events};
    use serde_json::json;

    /// Whether a successful call of `name` with `params` at noon on 2026-11-30 is read
    /// as a precursor.
    fn precursor(source: &str, name: &str, params: serde_json::Value) -> bool {
        let record = json!({"eventVersion": "1.09", "eventTime": "2026-11-30T12:00:00Z",
            "eventSource": source, "eventName": name, "awsRegion": "eu-west-1",
            "eventID": "e1", "recipientAccountId": "444455556666",
            "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::444455556666:user/u",
                "accountId": "444455556666", "principalId": "AIDAEXAMPLE"},
            "requestParameters": params});
        let mut events = Events::default();
        scan_events(&record.to_string(), &mut Default::default(), &mut events).unwrap();
        !events.terminations.is_empty()
    }

    #[test]
    fn lifecycle_rules_that_empty_a_bucket_by_tomorrow_are_precursors() {
        let rules = |rule: serde_json::Value| {
            precursor(
                "s3.amazonaws.com",
                "PutBucketLifecycle",
                json!({"bucketName": "b", "LifecycleConfiguration": {"Rule": rule}}),
            )
        };
        let enabled = |e: serde_json::Value| {
            let mut r = json!({"Status": "Enabled"});
            r.as_object_mut()
                .unwrap()
                .extend(e.as_object().unwrap().clone());
            r
        };
        // Several rules, one of them short; days as XML text.
        assert!(rules(json!([
            enabled(json!({"Expiration": {"Days": 365}})),
            enabled(json!({"Expiration": {"Days": "1"}}))
        ])));
        // Noncurrent versions, the bucket's undo, gone in a day.
        assert!(rules(enabled(
            json!({"NoncurrentVersionExpiration": {"NoncurrentDays": 1}})
        )));
        // A date already past, or tomorrow.
        assert!(rules(enabled(
            json!({"Expiration": {"Date": "2026-01-01T00:00:00.000Z"}})
        )));
        assert!(rules(enabled(
            json!({"Expiration": {"Date": "2026-12-01T00:00:00Z"}})
        )));
        assert!(!rules(enabled(
            json!({"Expiration": {"Date": "2027-01-01T00:00:00Z"}})
        )));
        assert!(!rules(enabled(json!({"Expiration": {"Days": 2}}))));
        assert!(!rules(
            json!({"Status": "Disabled", "Expiration": {"Days": 1}})
        ));
        assert!(!rules(enabled(json!({"Transition": {"Days": 0}}))));
        assert!(!precursor(
            "s3.amazonaws.com",
            "PutBucketLifecycle",
            json!({"bucketName": "b"})
        ));
    }

    #[test]
    fn an_instance_attribute_is_read_in_either_form_ec2_accepts() {
        let ec2 = |p| precursor("ec2.amazonaws.com", "ModifyInstanceAttribute", p);
        assert!(ec2(
            json!({"instanceId": "i-1", "attribute": "disableApiTermination", "value": "false"})
        ));
        assert!(ec2(
            json!({"instanceId": "i-1", "attribute": "instanceInitiatedShutdownBehavior", "value": "Terminate"})
        ));
        assert!(!ec2(
            json!({"instanceId": "i-1", "attribute": "disableApiTermination", "value": "true"})
        ));
        assert!(!ec2(
            json!({"instanceId": "i-1", "attribute": "instanceType", "value": "false"})
        ));
        assert!(!ec2(
            json!({"instanceId": "i-1", "disableApiStop": {"value": false}})
        ));
        // Deletion protection is a bare boolean elsewhere; a string is read too.
        assert!(precursor(
            "rds.amazonaws.com",
            "ModifyDBInstance",
            json!({"dBInstanceIdentifier": "db", "deletionProtection": "false"})
        ));
        assert!(!precursor(
            "rds.amazonaws.com",
            "ModifyDBInstance",
            json!({"dBInstanceIdentifier": "db", "deletionProtection": null})
        ));
    }
}
