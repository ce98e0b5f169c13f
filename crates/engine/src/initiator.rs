//! Who decided terminations that a service carried out. `DeleteAutoScalingGroup
//! --force-delete`, `DeleteNodegroup`, CloudFormation `DeleteStack` through a service
//! role: the TerminateInstances records name a service-linked or execution role, and the
//! principal who decided appears only in the earlier call. The engine keeps those calls,
//! credits a service-linked role's terminations to the one principal whose call decided
//! them ([`credit`]), and otherwise names the latest plausible call on the incident.

use crate::catalogue::{ContextCall, Decides, Role};
use crate::principal::{sanitize, Arn, Principal, PrincipalKind};
use crate::record::Document;
use crate::skip::SkipReason;
use crate::termination::{Credit, Session, Termination};
use crate::time::Millis;
use serde::{Deserialize, Serialize};

pub use crate::termination::{Initiator, Via};

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
    /// Its `userIdentity.type`, to rebuild the principal a credit counts for.
    #[serde(default)]
    pub principal_type: String,
    /// Why the caller's identity is not trustworthy enough to act on, if it is not.
    #[serde(default)]
    pub anomaly: Option<String>,
    /// The caller's session, which credited terminations count as theirs.
    #[serde(default)]
    pub session: Session,
    /// `sourceIPAddress`.
    #[serde(default)]
    pub source_ip: Option<String>,
    /// `userAgent`.
    #[serde(default)]
    pub user_agent: Option<String>,
    /// Whether its request decides terminations (see [`Decides`]); only such a call is
    /// credited with a service's terminations. Calls kept before credits existed read
    /// as `false`: they still name an initiator.
    #[serde(default)]
    pub decides: bool,
    /// The instances it named, sorted (`TerminateInstanceInAutoScalingGroup`): it is
    /// credited with those and no others.
    #[serde(default)]
    pub instance_ids: Vec<String>,
}

/// The anomaly a credited principal carries when its call's identity had one.
const INITIATOR_ANOMALY: &str = "the initiator call's identity fields disagree";

impl Initiation {
    /// The initiator an incident names for this call.
    pub fn initiator(&self) -> Initiator {
        Initiator {
            principal_arn: self.principal_arn.clone(),
            event_name: self.event_name.clone(),
            event_time: self.event_time,
            event_id: self.event_id.clone(),
        }
    }

    /// The principal who made the call, as a termination by it would resolve: a role,
    /// user or federated user when its ARN and type say so; else kept as given, which
    /// containment refuses (root, Identity Center users, identities that disagree).
    pub fn principal(&self) -> Principal {
        if self.anomaly.is_none() {
            if let Ok(p) = crate::principal::principal_of(&self.principal_arn, &self.principal_type)
            {
                return p;
            }
        }
        let arn = Arn::parse(&self.principal_arn);
        Principal {
            arn: self.principal_arn.clone(),
            kind: match self.principal_type.as_str() {
                "Root" if self.anomaly.is_none() => PrincipalKind::Root,
                "IdentityCenterUser" => PrincipalKind::IdentityCenterUser,
                other => PrincipalKind::Other(if other.is_empty() {
                    "Unknown".into()
                } else {
                    other.to_owned()
                }),
            },
            account: arn.map(|a| a.account.to_owned()).filter(|a| !a.is_empty()),
            partition: arn.map_or("aws", |a| a.partition).to_owned(),
            anomaly: self.anomaly.as_ref().map(|_| INITIATOR_ANOMALY),
        }
    }

    /// `t`, a service's termination this call decided, counted as the caller's own: its
    /// principal, session, source IP and user agent, with the service and this call kept
    /// in [`Termination::credit`]. The origin is joined afresh, from the caller's key.
    pub fn credited(&self, t: Termination) -> Termination {
        let via = Via {
            service: carried_out_by(&t).unwrap_or("unknown").to_owned(),
            principal_arn: t.principal.arn.clone(),
        };
        Termination {
            principal: self.principal(),
            session: self.session.clone(),
            source_ip: self.source_ip.clone(),
            user_agent: self.user_agent.clone(),
            origin: None,
            credit: Some(Box::new(Credit {
                via,
                initiator: self.initiator(),
            })),
            ..t
        }
    }
}

/// Whether `call`'s request (`params`) decides terminations, and the instances it
/// names when it names them.
fn decided(how: Decides, params: Option<&serde_json::Value>) -> (bool, Vec<String>) {
    let get = |k: &str| params.and_then(|p| p.get(k)).filter(|v| !v.is_null());
    match how {
        Decides::Always => (true, Vec::new()),
        Decides::WhenTrue(k) => (
            get(k).is_some_and(|v| v.as_bool() == Some(true) || v.as_str() == Some("true")),
            Vec::new(),
        ),
        Decides::WhenSet(keys) => (keys.iter().any(|k| get(k).is_some()), Vec::new()),
        Decides::Instance(k) => match get(k).and_then(|v| v.as_str()) {
            Some(id) if !id.is_empty() && id.len() <= 64 => (true, vec![sanitize(id)]),
            _ => (false, Vec::new()),
        },
    }
}

/// Reads a successful initiator call; `Ok(None)` for any other record.
pub fn from_record(
    doc: &Document<'_>,
    call: &ContextCall,
) -> Result<Option<Initiation>, SkipReason> {
    let (source, name) = (call.event_source, call.event_name);
    let Role::Initiator(how) = call.role else {
        return Ok(None);
    };
    if doc.error_code.get().is_some() {
        return Ok(None);
    }
    let event_time = doc.time()?;
    let (p, session) = crate::termination::caller_of(doc)?;
    let account = doc
        .recipient_account_id
        .get()
        .or(p.account.as_deref())
        .ok_or(SkipReason::NoAccount)?;
    // An unreadable request decides nothing: the call is still kept, to be named.
    let params: Option<serde_json::Value> = doc
        .request_parameters
        .and_then(|raw| serde_json::from_str(raw.get()).ok());
    let (decides, instance_ids) = decided(how, params.as_ref());
    Ok(Some(Initiation {
        event_id: doc.event_id.get().map(sanitize).unwrap_or_else(|| {
            crate::record::content_id(&[name, &p.arn, doc.event_time.get().unwrap_or("")])
        }),
        event_time,
        account: sanitize(account),
        region: sanitize(doc.aws_region.get().unwrap_or("unknown")),
        event_source: (*source).to_owned(),
        event_name: (*name).to_owned(),
        principal_type: p.kind.type_name().to_owned(),
        anomaly: p.anomaly.map(str::to_owned),
        session,
        source_ip: doc.source_ip_address.get().map(sanitize),
        user_agent: doc.user_agent.get().map(sanitize),
        decides,
        instance_ids,
        principal_arn: p.arn,
    }))
}

/// The service whose service-linked role (or own identity) made `t`, when `t` is a
/// termination that could be credited to an initiator: of instances, successful, and
/// not already credited. A customer role a service assumes (a CloudFormation service
/// role, `EMR_DefaultRole`) stays its own principal's burst, so it is never credited.
pub fn creditable(t: &Termination) -> Option<&'static str> {
    let by_service = matches!(t.principal.kind, PrincipalKind::AwsService)
        || t.principal.is_service_linked_role();
    let instances = t.kind() == crate::catalogue::EC2_INSTANCE;
    if !instances
        || !by_service
        || t.credit.is_some()
        || t.is_attempt()
        || t.instance_ids.is_empty()
    {
        return None;
    }
    carried_out_by(t).filter(|s| *s != "unknown")
}

/// The call `t`, a service's termination ([`creditable`]), is credited to among
/// `candidates`: one that decides terminations, upstream of the service, in the same
/// account and region, at most [`LOOKBACK_MS`] before `t` and not after it. A call that
/// named instances (`TerminateInstanceInAutoScalingGroup`) is credited with those only;
/// any other is joined by time order alone, so it is credited only when every such call
/// was made by one principal: two principals' calls, and the terminations stay the
/// service's, never pinned on the wrong one.
pub fn credit<'a>(
    candidates: impl IntoIterator<Item = &'a Initiation>,
    t: &Termination,
) -> Option<&'a Initiation> {
    let service = creditable(t)?;
    let up = upstream(service);
    let eligible: Vec<&Initiation> = candidates
        .into_iter()
        .filter(|c| c.decides && c.account == t.account && c.region == t.region)
        .filter(|c| c.event_time >= t.event_time - LOOKBACK_MS && c.event_time <= t.event_time)
        .filter(|c| up.contains(&c.event_source.as_str()))
        .collect();
    let named: Vec<&Initiation> = eligible
        .iter()
        .copied()
        .filter(|c| {
            c.instance_ids
                .iter()
                .any(|i| t.instance_ids.binary_search(i).is_ok())
        })
        .collect();
    let pool = if named.is_empty() {
        eligible
            .into_iter()
            .filter(|c| c.instance_ids.is_empty())
            .collect()
    } else {
        named
    };
    let first = pool.first()?;
    if pool.iter().any(|c| c.principal_arn != first.principal_arn) {
        return None;
    }
    pool.into_iter()
        .max_by(|a, b| (a.event_time, &a.event_id).cmp(&(b.event_time, &b.event_id)))
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
        .map(Initiation::initiator)
}
