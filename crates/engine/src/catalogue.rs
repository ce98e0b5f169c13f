//! The calls tripwire watches, as data: the destructive calls it counts into bursts
//! ([`WATCHED`]) and the context calls it reads to tell their story ([`CONTEXT`]: where
//! sessions came from, who decided a service's terminations, who disarmed the tripwire).
//!
//! Everything that names a watched call reads it here: the extraction, the alert's words,
//! the default `deny_actions`, and the EventBridge patterns both stacks forward and
//! match on ([`event_patterns`], printed by `tripwire check-policy --get event_patterns`
//! and compared with the templates by `tests/infra`). Adding a call is one entry here,
//! one fixture and one scenario.

use crate::record::CLOUDTRAIL_DETAIL_TYPE;
use serde_json::{json, Value};

/// A destructive call, counted into bursts.
#[derive(Debug)]
pub struct Watched {
    /// The EventBridge `source` its CloudTrail events arrive with (`aws.ec2`).
    pub source: &'static str,
    /// CloudTrail `eventSource`.
    pub event_source: &'static str,
    /// CloudTrail `eventName`.
    pub event_name: &'static str,
    /// The IAM action the brake denies to stop it.
    pub deny_action: &'static str,
    /// What it destroys.
    pub resource: Resource,
    /// How the alerts speak of it.
    pub words: Words,
    /// The runbook's first look: where on-call sees these calls for themselves
    /// (`{region}` and `{start}` are the incident's).
    pub runbook: &'static str,
}

/// What a watched call destroys, and how a record says which.
#[derive(Debug)]
pub struct Resource {
    /// The CloudFormation resource type (`AWS::EC2::Instance`).
    pub resource_type: &'static str,
    /// Where the request names the IDs (documentation; the reader is the extractor's).
    pub request_ids: &'static str,
    /// Where the response confirms each one's state before the call.
    pub confirmed_by: &'static str,
    /// States before the call that mean "already gone": nothing died.
    pub already_gone: &'static [&'static str],
    /// Error codes after which the service still destroyed some of the IDs asked for.
    pub partial_failure: &'static [&'static str],
    /// The most IDs one call can carry; more is not a record the service wrote.
    pub max_ids: usize,
    /// The longest ID the service issues, with room to spare; longer is not an ID.
    pub max_id_len: usize,
}

/// How the alerts speak of a watched call.
#[derive(Debug)]
pub struct Words {
    /// One resource (`instance`).
    pub noun: &'static str,
    /// Several (`instances`).
    pub nouns: &'static str,
    /// What happened to them (`terminated`).
    pub verb: &'static str,
    /// A burst of them, in a sentence (`EC2 instance terminations`).
    pub burst: &'static str,
}

/// `ec2:TerminateInstances`, the call the 2018 wipe made.
pub const TERMINATE_INSTANCES: Watched = Watched {
    source: "aws.ec2",
    event_source: "ec2.amazonaws.com",
    event_name: "TerminateInstances",
    deny_action: "ec2:TerminateInstances",
    resource: Resource {
        resource_type: "AWS::EC2::Instance",
        request_ids: "requestParameters.instancesSet.items[].instanceId",
        confirmed_by: "responseElements.instancesSet.items[].previousState.name",
        // TerminateInstances is idempotent: an instance already going is not a kill.
        already_gone: &["shutting-down", "terminated"],
        // Termination protection on one instance fails the call, yet EC2 terminates the
        // others (in other Availability Zones).
        partial_failure: &["OperationNotPermitted"],
        max_ids: 1000,
        // Real IDs are i- plus 8 or 17 hex digits.
        max_id_len: 64,
    },
    words: Words {
        noun: "instance",
        nouns: "instances",
        verb: "terminated",
        burst: "EC2 instance terminations",
    },
    runbook: "aws cloudtrail lookup-events --region {region} --lookup-attributes AttributeKey=EventName,AttributeValue=TerminateInstances --start-time {start}",
};

/// Every destructive call the engine counts.
pub const WATCHED: [&Watched; 1] = [&TERMINATE_INSTANCES];

/// The watched call a record's `eventSource` and `eventName` name, if any.
pub fn watched(event_source: &str, event_name: &str) -> Option<&'static Watched> {
    WATCHED
        .iter()
        .copied()
        .find(|w| w.event_source == event_source && w.event_name == event_name)
}

/// What a context call tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// It issued a session: where later calls made with its key came from.
    Assumption,
    /// It decides terminations a service then carries out, as its request shows.
    Initiator(Decides),
    /// It may disarm one of the tripwire's parts, named by this request parameter.
    Tamper(TamperTarget),
}

/// When an initiator call decides terminations, read from its request: only such a call
/// is credited with the instances a service then terminates (see `initiator::credit`).
/// A call that decides none is still kept, to name as a service burst's initiator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decides {
    /// Whenever it succeeds (a node group, a stack, a job flow deleted).
    Always,
    /// When this boolean request parameter is `true` (`forceDelete`: without it, Auto
    /// Scaling refuses to delete a group that still has instances).
    WhenTrue(&'static str),
    /// When the request sets one of these parameters (a capacity change; a call that
    /// only edits a launch template or a health check decides nothing).
    WhenSet(&'static [&'static str]),
    /// Exactly the instance this request parameter names.
    Instance(&'static str),
}

/// Which part of the tripwire a tamper call may touch, and so which request parameter
/// names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TamperTarget {
    /// A trail, by `name`.
    Trail,
    /// A trail's event selectors, by `trailName`.
    TrailSelectors,
    /// A forwarding rule, by `name`.
    Rule,
    /// A forwarding rule's targets, by `rule`.
    RuleTargets,
    /// An IAM role, user or policy of the tripwire's (see `armed`).
    Iam,
    /// A KMS key, by `keyId` (an ID or an ARN).
    Key,
    /// An SNS subscription, by `subscriptionArn`.
    Subscription,
    /// An SNS topic, by `topicArn`.
    Topic,
}

/// A call read for context, never counted.
#[derive(Debug)]
pub struct ContextCall {
    /// CloudTrail `eventSource`.
    pub event_source: &'static str,
    /// CloudTrail `eventName`.
    pub event_name: &'static str,
    /// What it tells.
    pub role: Role,
}

const fn call(event_source: &'static str, event_name: &'static str, role: Role) -> ContextCall {
    ContextCall {
        event_source,
        event_name,
        role,
    }
}

const STS: &str = "sts.amazonaws.com";
const ASG: &str = "autoscaling.amazonaws.com";
const EC2: &str = "ec2.amazonaws.com";
const TRAIL: &str = "cloudtrail.amazonaws.com";
const EVENTS: &str = "events.amazonaws.com";
const IAM: &str = "iam.amazonaws.com";
const KMS: &str = "kms.amazonaws.com";
const SNS: &str = "sns.amazonaws.com";
const EKS: &str = "eks.amazonaws.com";
const EMR: &str = "elasticmapreduce.amazonaws.com";

use Decides::{Always, Instance, WhenSet, WhenTrue};
use Role::{Assumption, Initiator, Tamper};
use TamperTarget as T;

/// Every context call, in the order the templates' patterns list them.
pub const CONTEXT: [ContextCall; 46] = [
    call(STS, "AssumeRole", Assumption),
    call(STS, "AssumeRoleWithWebIdentity", Assumption),
    call(STS, "AssumeRoleWithSAML", Assumption),
    // Auto Scaling logs its request parameters in lower camel case, as the public
    // `DeleteAutoScalingGroup` record in the fixtures shows (`forceDelete`).
    call(
        ASG,
        "DeleteAutoScalingGroup",
        Initiator(WhenTrue("forceDelete")),
    ),
    call(
        ASG,
        "UpdateAutoScalingGroup",
        Initiator(WhenSet(&["desiredCapacity", "maxSize"])),
    ),
    call(ASG, "SetDesiredCapacity", Initiator(Always)),
    call(
        ASG,
        "TerminateInstanceInAutoScalingGroup",
        Initiator(Instance("instanceId")),
    ),
    // EC2's fleet records are not read for their flags (no public record shows their
    // request shape): any successful call counts as deciding.
    call(EC2, "DeleteFleets", Initiator(Always)),
    call(EC2, "CancelSpotFleetRequests", Initiator(Always)),
    call(EC2, "ModifyFleet", Initiator(Always)),
    call(EC2, "ModifySpotFleetRequest", Initiator(Always)),
    call(EKS, "DeleteNodegroup", Initiator(Always)),
    call(
        EKS,
        "UpdateNodegroupConfig",
        Initiator(WhenSet(&["scalingConfig"])),
    ),
    call(
        "cloudformation.amazonaws.com",
        "DeleteStack",
        Initiator(Always),
    ),
    call(EMR, "TerminateJobFlows", Initiator(Always)),
    call(EMR, "ModifyInstanceGroups", Initiator(Always)),
    call(
        "batch.amazonaws.com",
        "DeleteComputeEnvironment",
        Initiator(Always),
    ),
    call(TRAIL, "StopLogging", Tamper(T::Trail)),
    call(TRAIL, "DeleteTrail", Tamper(T::Trail)),
    call(TRAIL, "UpdateTrail", Tamper(T::Trail)),
    call(TRAIL, "PutEventSelectors", Tamper(T::TrailSelectors)),
    call(EVENTS, "DisableRule", Tamper(T::Rule)),
    call(EVENTS, "DeleteRule", Tamper(T::Rule)),
    call(EVENTS, "PutRule", Tamper(T::Rule)),
    call(EVENTS, "PutTargets", Tamper(T::RuleTargets)),
    call(EVENTS, "RemoveTargets", Tamper(T::RuleTargets)),
    call(IAM, "DeleteRolePolicy", Tamper(T::Iam)),
    call(IAM, "DeleteUserPolicy", Tamper(T::Iam)),
    call(IAM, "DetachRolePolicy", Tamper(T::Iam)),
    call(IAM, "DetachUserPolicy", Tamper(T::Iam)),
    call(IAM, "DeletePolicy", Tamper(T::Iam)),
    call(IAM, "CreatePolicyVersion", Tamper(T::Iam)),
    call(IAM, "SetDefaultPolicyVersion", Tamper(T::Iam)),
    call(IAM, "DeletePolicyVersion", Tamper(T::Iam)),
    call(IAM, "DeleteRole", Tamper(T::Iam)),
    call(IAM, "UpdateAssumeRolePolicy", Tamper(T::Iam)),
    call(IAM, "UpdateRole", Tamper(T::Iam)),
    call(IAM, "PutRolePolicy", Tamper(T::Iam)),
    call(IAM, "AttachRolePolicy", Tamper(T::Iam)),
    call(IAM, "PutRolePermissionsBoundary", Tamper(T::Iam)),
    call(IAM, "DeleteRolePermissionsBoundary", Tamper(T::Iam)),
    call(IAM, "TagRole", Tamper(T::Iam)),
    call(KMS, "DisableKey", Tamper(T::Key)),
    call(KMS, "ScheduleKeyDeletion", Tamper(T::Key)),
    call(SNS, "Unsubscribe", Tamper(T::Subscription)),
    call(SNS, "DeleteTopic", Tamper(T::Topic)),
];

/// The context call a record's `eventSource` and `eventName` name, if any.
pub fn context(event_source: &str, event_name: &str) -> Option<&'static ContextCall> {
    CONTEXT
        .iter()
        .find(|c| c.event_source == event_source && c.event_name == event_name)
}

/// The context calls of one kind (`Tamper` of any target counts as one kind).
pub fn context_calls(kind: fn(Role) -> bool) -> impl Iterator<Item = &'static ContextCall> {
    CONTEXT.iter().filter(move |c| kind(c.role))
}

/// The IAM actions of the initiator calls: a braked principal may not make a service
/// terminate for it.
pub fn initiator_actions() -> Vec<String> {
    context_calls(|r| matches!(r, Initiator(_)))
        .map(|c| {
            let service = c
                .event_source
                .strip_suffix(".amazonaws.com")
                .unwrap_or(c.event_source);
            format!("{service}:{}", c.event_name)
        })
        .collect()
}

/// `values` in first-seen order, each once.
fn distinct<'a>(values: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for v in values {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

fn calls_pattern(calls: &[&ContextCall]) -> Value {
    json!({
        "detail-type": [CLOUDTRAIL_DETAIL_TYPE],
        "detail": {
            "eventSource": distinct(calls.iter().map(|c| c.event_source)),
            "eventName": calls.iter().map(|c| c.event_name).collect::<Vec<_>>(),
        },
    })
}

/// The EventBridge patterns both stacks forward and match on, by rule family:
/// `terminations` (the member rule adds its own `$or` filter on top), `session_issues`,
/// `initiators` and `tamper`.
pub fn event_patterns() -> Value {
    let terminations = json!({
        "source": distinct(WATCHED.iter().map(|w| w.source)),
        "detail-type": [CLOUDTRAIL_DETAIL_TYPE],
        "detail": {
            "eventSource": distinct(WATCHED.iter().map(|w| w.event_source)),
            "eventName": WATCHED.iter().map(|w| w.event_name).collect::<Vec<_>>(),
        },
    });
    let assumptions: Vec<&ContextCall> = context_calls(|r| r == Assumption).collect();
    let issues = json!({
        "source": ["aws.sts"],
        "detail-type": [CLOUDTRAIL_DETAIL_TYPE],
        "detail": {
            "eventSource": distinct(assumptions.iter().map(|c| c.event_source)),
            "eventName": assumptions.iter().map(|c| c.event_name).collect::<Vec<_>>(),
            // Only sessions issued from outside the account: a chain from within it
            // shows up as the account's own role anyway.
            "userIdentity": { "type": ["AWSAccount", "WebIdentityUser", "SAMLUser"] },
            "errorCode": [{ "exists": false }],
        },
    });
    let mut initiators =
        calls_pattern(&context_calls(|r| matches!(r, Initiator(_))).collect::<Vec<_>>());
    // A failed initiator call decided nothing.
    initiators["detail"]["errorCode"] = json!([{ "exists": false }]);
    // A failed tamper call is an attempt, worth a page: no errorCode filter.
    let tamper = calls_pattern(&context_calls(|r| matches!(r, Tamper(_))).collect::<Vec<_>>());
    json!({
        "terminations": terminations,
        "session_issues": issues,
        "initiators": initiators,
        "tamper": tamper,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_call_is_listed_once() {
        let mut seen = std::collections::BTreeSet::new();
        for c in &CONTEXT {
            assert!(
                seen.insert((c.event_source, c.event_name)),
                "{}",
                c.event_name
            );
        }
        for w in WATCHED {
            assert!(
                seen.insert((w.event_source, w.event_name)),
                "{}",
                w.event_name
            );
            assert!(context(w.event_source, w.event_name).is_none());
        }
    }

    #[test]
    fn lookups_find_the_entries_and_nothing_else() {
        assert_eq!(
            watched("ec2.amazonaws.com", "TerminateInstances").map(|w| w.deny_action),
            Some("ec2:TerminateInstances")
        );
        assert!(watched("ec2.amazonaws.com", "StopInstances").is_none());
        assert!(watched("autoscaling.amazonaws.com", "TerminateInstances").is_none());
        assert_eq!(
            context("kms.amazonaws.com", "ScheduleKeyDeletion").map(|c| c.role),
            Some(Role::Tamper(TamperTarget::Key))
        );
        assert!(context("kms.amazonaws.com", "Decrypt").is_none());
    }

    #[test]
    fn the_patterns_name_each_call_of_their_family() {
        let p = event_patterns();
        assert_eq!(
            p["terminations"]["detail"]["eventName"],
            json!(["TerminateInstances"])
        );
        assert_eq!(p["terminations"]["source"], json!(["aws.ec2"]));
        assert_eq!(
            p["initiators"]["detail"]["eventName"]
                .as_array()
                .unwrap()
                .len(),
            14
        );
        assert_eq!(
            p["tamper"]["detail"]["eventName"].as_array().unwrap().len(),
            29
        );
        assert!(p["tamper"]["detail"].get("errorCode").is_none());
        assert_eq!(
            p["initiators"]["detail"]["eventSource"][0],
            json!("autoscaling.amazonaws.com")
        );
    }

    #[test]
    fn initiator_actions_are_iam_actions() {
        let a = initiator_actions();
        assert_eq!(a[0], "autoscaling:DeleteAutoScalingGroup");
        assert!(a.contains(&"elasticmapreduce:TerminateJobFlows".to_string()));
        assert_eq!(a.len(), 14);
    }
}
