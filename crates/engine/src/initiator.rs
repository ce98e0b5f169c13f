//! Who decided terminations that a service carried out. `DeleteAutoScalingGroup
//! --force-delete`, `DeleteNodegroup`, CloudFormation `DeleteStack` through a service
//! role: the TerminateInstances records name a service-linked or execution role, and the
//! principal who decided appears only in the earlier call. The engine keeps those calls
//! and names the latest plausible one on an incident whose terminations a service made.

use crate::catalogue::ContextCall;
use crate::principal::{sanitize, Principal, PrincipalKind};
use crate::record::Document;
use crate::skip::SkipReason;
use crate::termination::Termination;
use crate::time::Millis;
use serde::{Deserialize, Serialize};

/// How long before an incident's first termination its initiator may lie: deleting a
/// stack or a node group reaches its instances within minutes, not hours.
pub const LOOKBACK_MS: Millis = 30 * 60 * 1000;

/// One call that decides terminations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Initiation {
    /// eventID.
    pub event_id: String,
    /// eventTime.
    #[serde(with = "crate::time::rfc3339")]
    pub event_time: Millis,
    /// The account it was made in (`recipientAccountId`).
    pub account: String,
    /// `awsRegion`.
    pub region: String,
    /// e.g. `autoscaling.amazonaws.com`.
    pub event_source: String,
    /// e.g. `DeleteAutoScalingGroup`.
    pub event_name: String,
    /// Who made it (the role for a role session, as everywhere).
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

/// Reads a successful initiator call; `Ok(None)` for any other record.
pub fn from_record(
    doc: &Document<'_>,
    call: &ContextCall,
) -> Result<Option<Initiation>, SkipReason> {
    let (source, name) = (call.event_source, call.event_name);
    if doc.error_code.get().is_some() {
        return Ok(None);
    }
    let event_time = doc.time()?;
    let (p, account) = crate::principal::caller(doc)?;
    Ok(Some(Initiation {
        event_id: doc.event_id.get().map(sanitize).unwrap_or_else(|| {
            crate::record::content_id(&[name, &p.arn, doc.event_time.get().unwrap_or("")])
        }),
        event_time,
        account: sanitize(&account),
        region: sanitize(doc.aws_region.get().unwrap_or("unknown")),
        event_source: (*source).to_owned(),
        event_name: (*name).to_owned(),
        principal_arn: p.arn,
    }))
}

/// The service that carried out a termination, if one did: `invokedBy`, an AWS
/// service identity, a service-linked role, or a customer-managed service role.
pub fn carried_out_by(t: &Termination) -> Option<&'static str> {
    let p: &Principal = &t.principal;
    let by_name = |s: &str| -> &'static str {
        let s = s.to_ascii_lowercase();
        SERVICES
            .iter()
            .find(|(needle, _)| s.contains(needle))
            .map_or("unknown", |(_, svc)| *svc)
    };
    if let Some(via) = t.session.invoked_by.as_deref() {
        return Some(by_name(via));
    }
    match &p.kind {
        PrincipalKind::AwsService => Some(by_name(&p.arn)),
        PrincipalKind::Role { name, .. }
            if p.is_service_linked_role() || crate::principal::aws_service_role(name).is_some() =>
        {
            Some(by_name(name))
        }
        _ => None,
    }
}

/// Service names as they appear in `invokedBy` and role names, and the initiator event
/// source each maps to. Order matters: the first match wins.
const SERVICES: [(&str, &str); 9] = [
    ("autoscaling", "autoscaling.amazonaws.com"),
    ("eks", "eks.amazonaws.com"),
    ("cloudformation", "cloudformation.amazonaws.com"),
    ("elasticmapreduce", "elasticmapreduce.amazonaws.com"),
    ("emr", "elasticmapreduce.amazonaws.com"),
    ("batch", "batch.amazonaws.com"),
    ("spot", "ec2.amazonaws.com"),
    ("fleet", "ec2.amazonaws.com"),
    ("ec2", "ec2.amazonaws.com"),
];

/// Which initiators can lead to terminations carried out by `service`: a node group or
/// a compute environment is deleted through Auto Scaling, any stack through CloudFormation.
fn upstream(service: &str) -> &'static [&'static str] {
    match service {
        "autoscaling.amazonaws.com" => &[
            "autoscaling.amazonaws.com",
            "eks.amazonaws.com",
            "batch.amazonaws.com",
            "cloudformation.amazonaws.com",
        ],
        "ec2.amazonaws.com" => &[
            "ec2.amazonaws.com",
            "batch.amazonaws.com",
            "cloudformation.amazonaws.com",
        ],
        "eks.amazonaws.com" => &["eks.amazonaws.com", "cloudformation.amazonaws.com"],
        "elasticmapreduce.amazonaws.com" => &[
            "elasticmapreduce.amazonaws.com",
            "cloudformation.amazonaws.com",
        ],
        "batch.amazonaws.com" => &["batch.amazonaws.com", "cloudformation.amazonaws.com"],
        "cloudformation.amazonaws.com" => &["cloudformation.amazonaws.com"],
        _ => &[
            "autoscaling.amazonaws.com",
            "ec2.amazonaws.com",
            "eks.amazonaws.com",
            "cloudformation.amazonaws.com",
            "elasticmapreduce.amazonaws.com",
            "batch.amazonaws.com",
        ],
    }
}

/// The initiator of terminations that `service` carried out in `account` and `region`
/// between `first` and `until`: the latest upstream call at most [`LOOKBACK_MS`] before
/// `first` and no later than `until`. `candidates` in any order.
pub fn pick<'a>(
    candidates: impl IntoIterator<Item = &'a Initiation>,
    service: &str,
    account: &str,
    region: &str,
    first: Millis,
    until: Millis,
) -> Option<Initiator> {
    let up = upstream(service);
    candidates
        .into_iter()
        .filter(|c| c.account == account && c.region == region)
        .filter(|c| c.event_time >= first - LOOKBACK_MS && c.event_time <= until)
        .filter(|c| up.contains(&c.event_source.as_str()))
        .max_by(|a, b| (a.event_time, &a.event_id).cmp(&(b.event_time, &b.event_id)))
        .map(|c| Initiator {
            principal_arn: c.principal_arn.clone(),
            event_name: c.event_name.clone(),
            event_time: c.event_time,
            event_id: c.event_id.clone(),
        })
}
