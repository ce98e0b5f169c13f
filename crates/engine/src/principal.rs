//! Who made the call: the one place `userIdentity.type` is interpreted.
//!
//! The key the engine counts by is the *principal that holds the permissions*: for an
//! assumed role that is the role (with its path), not the session, because a runaway
//! script that assumes its role again is still the same principal.

use crate::record::{Document, SessionContext, UserIdentity};
use crate::skip::SkipReason;
use serde::Serialize;

/// The resolved caller.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Principal {
    /// Role ARN with path, user ARN, root ARN, or the identity as CloudTrail gave it.
    pub arn: String,
    /// What kind of principal this is.
    pub kind: PrincipalKind,
    /// The principal's own account, which can differ from where the instances die.
    pub account: Option<String>,
    /// `aws`, `aws-cn`, `aws-us-gov`, …
    pub partition: String,
    /// Why this identity is not trustworthy enough to act on, if it is not.
    pub anomaly: Option<&'static str>,
}

/// The kinds of caller CloudTrail reports.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub enum PrincipalKind {
    /// An IAM role, reached through an assumed-role session.
    Role {
        /// Role name, without path (what `PutRolePolicy` takes).
        name: String,
        /// Role path, `/` when the record did not carry it.
        path: String,
        /// Whether the record carried the path (a session issuer); when not, the backtest
        /// learns it from other records and the responder asks IAM before acting.
        path_known: bool,
    },
    /// An IAM user.
    User {
        /// User name, without path.
        name: String,
        /// User path.
        path: String,
    },
    /// The account root user.
    Root,
    /// A `GetFederationToken` session, keyed by whoever issued the token: the name a
    /// caller picks for the session is not an identity, so a token broker minting many
    /// names still counts as one principal.
    FederatedUser {
        /// Who called `GetFederationToken` (`sessionContext.sessionIssuer`).
        issuer: FederationIssuer,
    },
    /// An IAM Identity Center user acting directly.
    IdentityCenterUser,
    /// An AWS service acting on its own behalf.
    AwsService,
    /// Any other or unknown `userIdentity.type`, kept as given (sanitised).
    Other(String),
}

/// The issuer of a federation token.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub enum FederationIssuer {
    /// An IAM user: the principal is that user, and containing it binds its sessions.
    User {
        /// User name, without path.
        name: String,
        /// User path.
        path: String,
    },
    /// The account root user, which IAM policies cannot restrict.
    Root,
    /// The record does not say.
    Unknown,
}

impl PrincipalKind {
    /// The CloudTrail `userIdentity.type` this kind came from.
    pub fn type_name(&self) -> &str {
        match self {
            PrincipalKind::Role { .. } => "AssumedRole",
            PrincipalKind::User { .. } => "IAMUser",
            PrincipalKind::Root => "Root",
            PrincipalKind::FederatedUser { .. } => "FederatedUser",
            PrincipalKind::IdentityCenterUser => "IdentityCenterUser",
            PrincipalKind::AwsService => "AWSService",
            PrincipalKind::Other(t) => t,
        }
    }
}

impl Principal {
    /// The role with the path another record showed, when this record omitted it.
    pub fn with_learned_path(&mut self, learned: &str) {
        if let PrincipalKind::Role {
            name,
            path,
            path_known: path_known @ false,
        } = &mut self.kind
        {
            if valid_iam_path(learned) {
                *path = learned.to_owned();
                *path_known = true;
                self.arn = format!(
                    "arn:{}:iam::{}:role{}{}",
                    self.partition,
                    self.account.as_deref().unwrap_or_default(),
                    path,
                    name
                );
            }
        }
    }

    /// AWS service-linked roles, e.g. Auto Scaling scale-in: never counted.
    pub fn is_service_linked_role(&self) -> bool {
        matches!(&self.kind, PrincipalKind::Role { path, .. } if path.starts_with("/aws-service-role/"))
    }

    /// IAM Identity Center permission-set roles, which IAM does not let anyone edit.
    pub fn is_identity_center_role(&self) -> bool {
        matches!(&self.kind, PrincipalKind::Role { path, .. } if path.starts_with("/aws-reserved/sso.amazonaws.com/"))
    }
}

/// An ARN split into the parts the engine uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arn<'a> {
    /// Partition.
    pub partition: &'a str,
    /// Service, e.g. `iam` or `sts`.
    pub service: &'a str,
    /// Account ID (may be empty or short in sanitised records).
    pub account: &'a str,
    /// Everything after the fifth colon.
    pub resource: &'a str,
}

impl<'a> Arn<'a> {
    /// Splits `arn:partition:service:region:account:resource`.
    pub fn parse(s: &'a str) -> Option<Self> {
        let mut it = s.splitn(6, ':');
        if it.next()? != "arn" {
            return None;
        }
        let partition = it.next()?;
        let service = it.next()?;
        let _region = it.next()?;
        let account = it.next()?;
        let resource = it.next()?;
        valid_partition(partition).then_some(Arn {
            partition,
            service,
            account,
            resource,
        })
    }
}

/// `aws`, `aws-cn`, `aws-us-gov`, `aws-iso-b`, …: lower-case words joined by dashes.
fn valid_partition(p: &str) -> bool {
    p.starts_with("aws")
        && p.len() <= 16
        && p.split('-')
            .all(|w| !w.is_empty() && w.bytes().all(|c| c.is_ascii_lowercase()))
}

/// Splits `role/path/name` (or `user/…`) into a checked path and name.
fn path_and_name<'a>(resource: &'a str, prefix: &str) -> Option<(&'a str, &'a str)> {
    let rest = resource.strip_prefix(prefix)?.strip_prefix('/')?;
    let (path, name) = match rest.rfind('/') {
        Some(i) => (
            &resource[prefix.len()..prefix.len() + 1 + i + 1],
            &rest[i + 1..],
        ),
        None => ("/", rest),
    };
    Some((path, name))
}

/// IAM names: 1–64 of `[A-Za-z0-9+=,.@_-]`; anything else (wildcards, slashes) is refused.
pub fn valid_iam_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"+=,.@_-".contains(&c))
}

/// IAM paths: `/` or `/seg/…/`, printable ASCII, no wildcards, no empty, `.` or `..` segments.
pub fn valid_iam_path(path: &str) -> bool {
    path.len() <= 512
        && path.starts_with('/')
        && path.ends_with('/')
        && (path == "/"
            || path[1..path.len() - 1].split('/').all(|seg| {
                !seg.is_empty()
                    && seg != "."
                    && seg != ".."
                    && seg
                        .bytes()
                        .all(|c| c.is_ascii_graphic() && c != b'*' && c != b'?')
            }))
}

pub use crate::record::valid_account;

/// Why a principal could not be resolved at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unidentifiable;

/// Resolves `userIdentity` to the principal that holds the permissions.
pub fn resolve(ui: &UserIdentity<'_>) -> Result<Principal, Unidentifiable> {
    resolve_in(ui, session_context(ui).as_ref())
}

/// `userIdentity.sessionContext`, parsed; `None` when absent or malformed (a malformed
/// one must not cost the rest of the identity).
pub fn session_context<'a>(ui: &UserIdentity<'a>) -> Option<SessionContext<'a>> {
    ui.session_context
        .and_then(|raw| serde_json::from_str::<SessionContext>(raw.get()).ok())
}

/// [`resolve`] with the session context already parsed (the termination path reads it
/// once for the principal and the session evidence).
pub fn resolve_in(
    ui: &UserIdentity<'_>,
    ctx: Option<&SessionContext<'_>>,
) -> Result<Principal, Unidentifiable> {
    let kind = ui.kind.get().unwrap_or("");
    let arn = ui.arn.get().and_then(Arn::parse);
    let own_account = ui.account_id.get().map(str::to_owned);
    let partition = arn.map_or("aws", |a| a.partition).to_owned();
    let as_given = |kind: PrincipalKind, anomaly| -> Result<Principal, Unidentifiable> {
        let ident = ui
            .arn
            .get()
            .or(ui.principal_id.get())
            .or(ui.invoked_by.get())
            .or(ui.account_id.get())
            .ok_or(Unidentifiable)?;
        Ok(Principal {
            arn: sanitize(ident),
            kind,
            account: own_account.clone(),
            partition: partition.clone(),
            anomaly,
        })
    };
    match kind {
        "AssumedRole" => resolve_role(ctx, arn).map_or_else(
            || {
                as_given(
                    PrincipalKind::Other("AssumedRole".into()),
                    Some("the role could not be determined from the record"),
                )
            },
            Ok,
        ),
        "IAMUser" => match arn.and_then(|a| Some((a, path_and_name(a.resource, "user")?))) {
            Some((a, (path, name))) if a.service == "iam" => Ok(Principal {
                arn: sanitize(ui.arn.get().unwrap_or_default()),
                anomaly: identity_anomaly(a.account, path, name).or_else(|| {
                    ui.account_id
                        .get()
                        .is_some_and(|own| own != a.account)
                        .then_some("the record's accountId disagrees with the user ARN's account")
                }),
                kind: PrincipalKind::User {
                    name: name.into(),
                    path: path.into(),
                },
                account: Some(a.account.to_owned()),
                partition,
            }),
            _ => as_given(
                PrincipalKind::Other("IAMUser".into()),
                Some("the user ARN is missing or malformed"),
            ),
        },
        "Root" => match (arn, ui.account_id.get()) {
            (Some(a), _) => Ok(Principal {
                arn: sanitize(ui.arn.get().unwrap_or_default()),
                kind: PrincipalKind::Root,
                account: Some(a.account.to_owned()),
                partition,
                anomaly: None,
            }),
            (None, Some(acct)) => Ok(Principal {
                arn: sanitize(&format!("arn:aws:iam::{acct}:root")),
                kind: PrincipalKind::Root,
                account: own_account.clone(),
                partition,
                anomaly: None,
            }),
            (None, None) => Err(Unidentifiable),
        },
        "FederatedUser" => resolve_federated(ui, ctx).map_or_else(
            || {
                as_given(
                    PrincipalKind::FederatedUser {
                        issuer: FederationIssuer::Unknown,
                    },
                    None,
                )
            },
            Ok,
        ),
        "IdentityCenterUser" => as_given(PrincipalKind::IdentityCenterUser, None),
        "AWSService" => as_given(PrincipalKind::AwsService, None),
        "" => as_given(PrincipalKind::Other("Unknown".into()), None),
        other => as_given(PrincipalKind::Other(sanitize(other)), None),
    }
}

/// An assumed-role session resolves to its role: from the session issuer when present,
/// else derived from the `assumed-role` ARN (which carries no path).
fn resolve_role(ctx: Option<&SessionContext<'_>>, session: Option<Arn<'_>>) -> Option<Principal> {
    let issuer = ctx.and_then(|c| c.session_issuer.as_ref());
    let issuer_arn_text = issuer.as_ref().and_then(|i| i.arn.get().map(str::to_owned));
    let from_issuer = issuer_arn_text.as_deref().and_then(|t| {
        let a = Arn::parse(t)?;
        let (path, name) = path_and_name(a.resource, "role")?;
        (a.service == "iam").then(|| (a, path.to_owned(), name.to_owned(), t.to_owned()))
    });
    // assumed-role/NAME/SESSION in sts, the role's account.
    let from_session = session.and_then(|a| {
        let rest = a.resource.strip_prefix("assumed-role/")?;
        let name = rest.split('/').next()?;
        (a.service == "sts").then_some((a, name))
    });
    let path_known = from_issuer.is_some();
    let (partition, account, path, name, arn, mut anomaly) = match (from_issuer, from_session) {
        (Some((a, path, name, text)), session) => {
            let disagrees =
                session.is_some_and(|(s, sname)| sname != name || s.account != a.account);
            let anomaly =
                disagrees.then_some("the session issuer and the session ARN name different roles");
            (
                a.partition.to_owned(),
                a.account.to_owned(),
                path,
                name,
                text,
                anomaly,
            )
        }
        (None, Some((s, name))) => {
            let arn = format!("arn:{}:iam::{}:role/{}", s.partition, s.account, name);
            (
                s.partition.to_owned(),
                s.account.to_owned(),
                "/".to_owned(),
                name.to_owned(),
                arn,
                None,
            )
        }
        (None, None) => return None,
    };
    anomaly = anomaly.or(identity_anomaly(&account, &path, &name));
    Some(Principal {
        arn: sanitize(&arn),
        kind: PrincipalKind::Role {
            name,
            path,
            path_known,
        },
        account: Some(account),
        partition,
        anomaly,
    })
}

/// A federation session resolves to the IAM user (or root) that issued its token, from
/// `sessionContext.sessionIssuer`; `None` when the record does not name it.
fn resolve_federated(ui: &UserIdentity<'_>, ctx: Option<&SessionContext<'_>>) -> Option<Principal> {
    let issuer = ctx.and_then(|c| c.session_issuer.as_ref())?;
    let text = issuer.arn.get()?;
    let a = Arn::parse(text)?;
    if a.service != "iam" {
        return None;
    }
    let (kind, anomaly) = match (issuer.kind.get(), path_and_name(a.resource, "user")) {
        (Some("IAMUser"), Some((path, name))) => (
            FederationIssuer::User {
                name: name.into(),
                path: path.into(),
            },
            identity_anomaly(a.account, path, name),
        ),
        (Some("Root"), _) if a.resource == "root" => (FederationIssuer::Root, None),
        _ => return None,
    };
    // A session of one account issued by another's user is no record STS writes.
    let anomaly = anomaly.or_else(|| {
        ui.account_id
            .get()
            .is_some_and(|own| own != a.account)
            .then_some("the session and its issuer are in different accounts")
    });
    Some(Principal {
        arn: sanitize(text),
        kind: PrincipalKind::FederatedUser { issuer: kind },
        account: Some(a.account.to_owned()),
        partition: a.partition.to_owned(),
        anomaly,
    })
}

/// Refuses to act on identities no real IAM entity could have.
fn identity_anomaly(account: &str, path: &str, name: &str) -> Option<&'static str> {
    if !valid_account(account) {
        Some("the principal's account ID is not 12 digits")
    } else if !valid_iam_name(name) {
        Some("the IAM name has characters IAM does not allow")
    } else if !valid_iam_path(path) {
        Some("the IAM path is malformed")
    } else {
        None
    }
}

/// Caps length and drops control characters: identities end up in pager subjects and logs.
pub fn sanitize(s: &str) -> String {
    // Nearly every field is short and clean: a byte scan (C0 controls and DEL are ASCII;
    // C1 controls are U+0080..U+009F, encoded 0xC2 0x80..0x9F) settles it and copies once.
    let bytes = s.as_bytes();
    let clean = s.len() <= 512
        && !bytes.iter().any(|&b| b < 0x20 || b == 0x7f)
        && !bytes
            .windows(2)
            .any(|w| w[0] == 0xc2 && (0x80..=0x9f).contains(&w[1]));
    if clean {
        return s.to_owned();
    }
    s.chars().filter(|c| !c.is_control()).take(512).collect()
}

/// An IAM role or user the tripwire may have restricted, named by its ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IamEntity {
    /// Partition.
    pub partition: String,
    /// The entity's account.
    pub account: String,
    /// `true` for a role, `false` for a user.
    pub is_role: bool,
    /// Path, `/` at least.
    pub path: String,
    /// Name without path.
    pub name: String,
}

/// Reads a role or user ARN (`arn:aws:iam::111111111111:role/path/name`), refusing
/// anything IAM could not have issued.
pub fn iam_entity(arn: &str) -> Result<IamEntity, String> {
    let a = Arn::parse(arn)
        .filter(|a| a.service == "iam")
        .ok_or_else(|| format!("`{arn}` is not an IAM ARN"))?;
    let (is_role, (path, name)) = match (
        path_and_name(a.resource, "role"),
        path_and_name(a.resource, "user"),
    ) {
        (Some(pn), _) => (true, pn),
        (None, Some(pn)) => (false, pn),
        _ => return Err(format!("`{arn}` names neither a role nor a user")),
    };
    if let Some(why) = identity_anomaly(a.account, path, name) {
        return Err(format!("`{arn}`: {why}"));
    }
    Ok(IamEntity {
        partition: a.partition.into(),
        account: a.account.into(),
        is_role,
        path: path.into(),
        name: name.into(),
    })
}

/// The principal an incident names, rebuilt from what the table keeps (its role or user
/// ARN and the record's identity type), so the responder can plan for itself.
pub fn principal_of(arn: &str, principal_type: &str) -> Result<Principal, String> {
    // The root user has no IAM entity: only the account brake can hold it.
    if principal_type == "Root" {
        let a = Arn::parse(arn)
            .filter(|a| a.service == "iam" && a.resource == "root" && valid_account(a.account))
            .ok_or_else(|| format!("a Root incident cannot name {arn}"))?;
        return Ok(Principal {
            arn: arn.to_owned(),
            kind: PrincipalKind::Root,
            account: Some(a.account.into()),
            partition: a.partition.into(),
            anomaly: None,
        });
    }
    let e = iam_entity(arn)?;
    let (name, path) = (e.name, e.path);
    let kind = match (e.is_role, principal_type) {
        (true, "AssumedRole") => PrincipalKind::Role {
            name,
            path,
            path_known: true,
        },
        (false, "IAMUser") => PrincipalKind::User { name, path },
        (false, "FederatedUser") => PrincipalKind::FederatedUser {
            issuer: FederationIssuer::User { name, path },
        },
        _ => return Err(format!("a {principal_type} incident cannot name {arn}")),
    };
    Ok(Principal {
        arn: arn.to_owned(),
        kind,
        account: Some(e.account),
        partition: e.partition,
        anomaly: None,
    })
}

/// Customer-managed roles that only an AWS service assumes, created under these names by
/// the services' consoles and CLIs: containing one breaks the service for everyone
/// (every EMR cluster, every Spot Fleet), so they are alerted on, never contained,
/// unless a `[principals]` rule sets their containment. Names as IAM compares them.
/// Customer-managed roles an AWS service assumes by a fixed name, the service, and the
/// hosts its calls name as `invokedBy` (as the public EMR records in the fixtures show:
/// `elasticmapreduce.amazonaws.com`).
const AWS_SERVICE_ROLES: [(&str, &str, &[&str]); 7] = [
    (
        "emr_defaultrole",
        "Amazon EMR",
        &["elasticmapreduce.amazonaws.com"],
    ),
    (
        "emr_defaultrole_v2",
        "Amazon EMR",
        &["elasticmapreduce.amazonaws.com"],
    ),
    (
        "emr_autoscaling_defaultrole",
        "Amazon EMR automatic scaling",
        &[
            "elasticmapreduce.amazonaws.com",
            "application-autoscaling.amazonaws.com",
        ],
    ),
    (
        "aws-ec2-spot-fleet-tagging-role",
        "EC2 Spot Fleet",
        &["spotfleet.amazonaws.com"],
    ),
    ("awsbatchservicerole", "AWS Batch", &["batch.amazonaws.com"]),
    (
        "aws-elasticbeanstalk-service-role",
        "AWS Elastic Beanstalk",
        &["elasticbeanstalk.amazonaws.com"],
    ),
    (
        "datapipelinedefaultrole",
        "AWS Data Pipeline",
        &["datapipeline.amazonaws.com"],
    ),
];

/// The AWS service a customer-managed service role belongs to, by its name.
pub fn aws_service_role(name: &str) -> Option<&'static str> {
    service_role(name).map(|(service, _)| service)
}

/// The AWS service a customer-managed service role belongs to, and the hosts its calls
/// carry as `invokedBy`: a name alone anyone with `iam:CreateRole` can take.
pub fn service_role(name: &str) -> Option<(&'static str, &'static [&'static str])> {
    let name = name.to_ascii_lowercase();
    AWS_SERVICE_ROLES
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, service, hosts)| (*service, *hosts))
}

/// Who made the call, and the account it was made in (`recipientAccountId`, else
/// the caller's own): a record without either is a named skip.
pub fn caller(doc: &Document<'_>) -> Result<(Principal, String), SkipReason> {
    let ui: UserIdentity = doc
        .user_identity
        .and_then(|raw| serde_json::from_str(raw.get()).ok())
        .ok_or(SkipReason::NoUserIdentity)?;
    let p = resolve(&ui).map_err(|_| SkipReason::NoUserIdentity)?;
    let account = doc
        .recipient_account_id
        .get()
        .or(p.account.as_deref())
        .ok_or(SkipReason::NoAccount)?
        .to_owned();
    Ok((p, account))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_drops_every_control_character_and_caps_the_length() {
        for (input, want) in [
            ("role/x", "role/x".to_owned()),
            ("a\u{0}b\nc\u{7f}d\u{85}e\u{9f}f", "abcdef".to_owned()),
            ("é€ok", "é€ok".to_owned()),
        ] {
            assert_eq!(sanitize(input), want, "{input:?}");
        }
        let long = "x".repeat(600);
        assert_eq!(sanitize(&long).len(), 512);
        // Whatever the input, the fast path and the definition agree.
        for s in ["\u{c2}", "a\u{80}", "ÿ\u{9f}", "\u{a0}\u{c2}"] {
            let slow: String = s.chars().filter(|c| !c.is_control()).take(512).collect();
            assert_eq!(sanitize(s), slow, "{s:?}");
        }
    }

    #[test]
    fn iam_entities_from_arns() {
        let r = iam_entity("arn:aws:iam::222222222222:role/vendor/cleanup-task").unwrap();
        assert_eq!(
            (r.account.as_str(), r.is_role, r.name.as_str()),
            ("222222222222", true, "cleanup-task")
        );
        let u = iam_entity("arn:aws-us-gov:iam::222222222222:user/alice").unwrap();
        assert_eq!((u.partition.as_str(), u.is_role), ("aws-us-gov", false));
        for bad in [
            "arn:aws:iam::222222222222:role/*",
            "arn:aws:sts::222222222222:assumed-role/x/y",
            "arn:aws:iam::12:role/x",
            "arn:aws:iam::222222222222:root",
            "nope",
        ] {
            assert!(iam_entity(bad).is_err(), "{bad}");
        }
    }
}

#[cfg(test)]
mod identity_tests {
    use super::*;

    fn user(account_id: &str) -> Principal {
        let raw = serde_json::json!({"type": "IAMUser", "principalId": "AIDAEXAMPLE",
            "arn": "arn:aws:iam::222222222222:user/ops/jane", "accountId": account_id})
        .to_string();
        let ui: UserIdentity = serde_json::from_str(&raw).unwrap();
        resolve_in(&ui, None).unwrap()
    }

    #[test]
    fn a_user_record_whose_account_disagrees_with_its_arn_carries_an_anomaly() {
        assert_eq!(user("222222222222").anomaly, None);
        assert_eq!(
            user("333333333333").anomaly,
            Some("the record's accountId disagrees with the user ARN's account")
        );
    }
}
