//! Where a session came from. EC2 has no resource-based policies, so whoever
//! terminates an instance holds credentials *in* its account: a development principal
//! that chained into a production role shows up as that production role. The origin is
//! only in the `AssumeRole*` record that issued the session, joined to later calls on
//! the access key it returned (the `ASIA…` key in their `userIdentity.accessKeyId`).
//!
//! The join is pure: [`resolve`] turns an assumption (and the issue of the session it
//! was made with, for chains) into an [`Issued`]; [`join`] checks a call against
//! the issue its key names. The backtest keeps issues in memory ([`Provenance`]), the
//! detector in DynamoDB; both decide with these functions.

use crate::catalogue::ContextCall;
use crate::principal::{self, sanitize, Arn, Principal, PrincipalKind};
use crate::record::{Document, Lenient, SessionContext, UserIdentity};
use crate::skip::SkipReason;
use crate::time::Millis;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Session lifetime when the request does not say (STS's default), and the longest.
const DEFAULT_SESSION_MS: Millis = 3600 * 1000;
const MAX_SESSION_MS: Millis = 12 * 3600 * 1000;

/// Where the chain of sessions behind a call began.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Origin {
    /// The account the chain began in, when an AWS principal began it.
    pub account: Option<String>,
    /// The principal that began it, when a record names it (a cross-account
    /// `AssumeRole` record in the role's account gives only the account and principal ID).
    pub principal_arn: Option<String>,
    /// `userIdentity.principalId` of the first caller.
    pub principal_id: Option<String>,
    /// The call that began the chain: `AssumeRole`, `AssumeRoleWithWebIdentity`, `AssumeRoleWithSAML`.
    pub via: String,
    /// The federated subject (OIDC `sub`, SAML `NameID`), for web-identity and SAML chains.
    pub subject: Option<String>,
    /// The identity provider, for web-identity and SAML chains.
    pub provider: Option<String>,
    /// The source identity set on the chain, which survives every hop.
    pub source_identity: Option<String>,
    /// Whether the identity provider set `source_identity` (the SAML assertion or the web
    /// identity token that began the chain) rather than a caller who chose it with
    /// `sts:SetSourceIdentity`: only then may containment be scoped to it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub source_identity_by_provider: bool,
    /// Role assumptions between the origin and the caller (1: assumed directly).
    pub hops: u32,
}

impl Origin {
    /// The source identity the identity provider set where the chain began, if it did:
    /// the only one containment may be scoped to.
    pub fn provider_source_identity(&self) -> Option<&str> {
        self.source_identity
            .as_deref()
            .filter(|_| self.source_identity_by_provider)
    }
}

/// One successful `AssumeRole*` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assumption {
    /// eventID.
    pub event_id: String,
    /// eventTime.
    pub event_time: Millis,
    /// The access key of the session it issued.
    pub access_key_id: String,
    /// The role it issued a session of: its account and lower-cased name.
    pub role: RoleRef,
    /// The role's path, from the requested role ARN (a session ARN carries none).
    pub role_path: Option<String>,
    /// When the issued session expires.
    pub expires: Millis,
    /// The caller as an origin, before any chain is followed.
    pub caller: Origin,
    /// The caller's own access key, when the caller was itself a role session.
    pub caller_key: Option<String>,
}

/// An IAM role by account and name; names are unique per account regardless of case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RoleRef {
    /// The role's account.
    pub account: String,
    /// The role's name, lower-cased.
    pub name: String,
}

/// A session's issue, as the join keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issued {
    /// The role the session belongs to.
    pub role: RoleRef,
    /// Where its chain began.
    pub origin: Origin,
    /// The `AssumeRole*` call that issued it.
    pub event_id: String,
    /// When it was issued.
    pub issued: Millis,
    /// When it expires.
    pub expires: Millis,
}

/// Reads a successful `AssumeRole*` record; `Ok(None)` when the record is another call.
pub fn from_record(
    doc: &Document<'_>,
    call: &ContextCall,
) -> Result<Option<Assumption>, SkipReason> {
    let via = call.event_name;
    if doc.error_code.get().is_some() {
        return Ok(None);
    }
    let event_time = doc.time()?;
    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase")]
    struct Request<'a> {
        #[serde(borrow, default)]
        role_arn: Lenient<'a>,
        #[serde(borrow, default)]
        duration_seconds: Lenient<'a>,
        #[serde(borrow, default)]
        source_identity: Lenient<'a>,
    }
    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase")]
    struct Response<'a> {
        #[serde(borrow, default)]
        credentials: Option<Credentials<'a>>,
        #[serde(borrow, default)]
        assumed_role_user: Option<AssumedRoleUser<'a>>,
        #[serde(borrow, default)]
        source_identity: Lenient<'a>,
        #[serde(borrow, default)]
        subject_from_web_identity_token: Lenient<'a>,
        #[serde(borrow, default)]
        provider: Lenient<'a>,
        #[serde(borrow, default)]
        subject: Lenient<'a>,
        #[serde(borrow, default)]
        issuer: Lenient<'a>,
    }
    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase")]
    struct Credentials<'a> {
        #[serde(borrow, default)]
        access_key_id: Lenient<'a>,
    }
    #[derive(Deserialize, Default)]
    struct AssumedRoleUser<'a> {
        #[serde(borrow, default)]
        arn: Lenient<'a>,
    }
    let req: Request = doc
        .request_parameters
        .map(|r| serde_json::from_str(r.get()))
        .transpose()
        .map_err(|_| SkipReason::BadRequestParameters)?
        .unwrap_or_default();
    let resp: Response = doc
        .response_elements
        .map(|r| serde_json::from_str(r.get()))
        .transpose()
        .map_err(|_| SkipReason::BadAssumeRole)?
        .unwrap_or_default();
    let access_key_id = resp
        .credentials
        .as_ref()
        .and_then(|c| c.access_key_id.get())
        .filter(|k| valid_access_key(k))
        .ok_or(SkipReason::BadAssumeRole)?
        .to_owned();
    // The session ARN names the role exactly; the requested ARN is the fallback.
    let role = resp
        .assumed_role_user
        .as_ref()
        .and_then(|u| u.arn.get())
        .and_then(Arn::parse)
        .and_then(|a| {
            let name = a
                .resource
                .strip_prefix("assumed-role/")?
                .split('/')
                .next()?;
            Some(RoleRef {
                account: a.account.to_owned(),
                name: name.to_ascii_lowercase(),
            })
        })
        .or_else(|| role_ref(req.role_arn.get()?))
        .filter(|r| principal::valid_account(&r.account) && principal::valid_iam_name(&r.name))
        .ok_or(SkipReason::BadAssumeRole)?;
    let duration = req
        .duration_seconds
        .get()
        .and_then(|d| d.parse::<i64>().ok())
        .map_or(DEFAULT_SESSION_MS, |s| s.saturating_mul(1000))
        .clamp(0, MAX_SESSION_MS);
    let ui: UserIdentity = doc
        .user_identity
        .and_then(|raw| serde_json::from_str(raw.get()).ok())
        .ok_or(SkipReason::NoUserIdentity)?;
    let text = |l: &Lenient<'_>| l.get().map(sanitize);
    let caller_ctx_source = ui
        .session_context
        .and_then(|raw| serde_json::from_str::<SessionContext>(raw.get()).ok())
        .and_then(|c| text(&c.source_identity));
    let mut caller = Origin {
        via: (*via).to_owned(),
        principal_id: text(&ui.principal_id),
        source_identity: text(&resp.source_identity)
            .or_else(|| text(&req.source_identity))
            .or(caller_ctx_source),
        hops: 1,
        ..Origin::default()
    };
    let mut caller_key = None;
    match ui.kind.get().unwrap_or("") {
        "AWSAccount" => caller.account = text(&ui.account_id),
        "WebIdentityUser" => {
            caller.subject =
                text(&resp.subject_from_web_identity_token).or_else(|| text(&ui.user_name));
            caller.provider = text(&resp.provider).or_else(|| text(&ui.identity_provider));
            caller.source_identity_by_provider = caller.source_identity.is_some();
        }
        "SAMLUser" => {
            caller.subject = text(&resp.subject).or_else(|| text(&ui.user_name));
            caller.provider = text(&ui.identity_provider).or_else(|| text(&resp.issuer));
            caller.source_identity_by_provider = caller.source_identity.is_some();
        }
        "AWSService" => caller.principal_id = text(&ui.invoked_by).or(caller.principal_id),
        _ => {
            let p = principal::resolve(&ui).map_err(|_| SkipReason::NoUserIdentity)?;
            caller.account = p.account.clone();
            caller.principal_arn = Some(p.arn);
            if matches!(p.kind, PrincipalKind::Role { .. }) {
                caller_key = text(&ui.access_key_id);
            }
        }
    }
    let event_id = text(&doc.event_id).unwrap_or_else(|| {
        crate::record::content_id(&["assume", &access_key_id, doc.event_time.get().unwrap_or("")])
    });
    let role_path = req
        .role_arn
        .get()
        .and_then(Arn::parse)
        .and_then(|a| {
            let rest = a.resource.strip_prefix("role")?;
            Some(rest[..=rest.rfind('/')?].to_owned())
        })
        .filter(|p| principal::valid_iam_path(p))
        .filter(|_| req.role_arn.get().and_then(role_ref).as_ref() == Some(&role));
    Ok(Some(Assumption {
        event_id,
        event_time,
        access_key_id,
        role,
        role_path,
        expires: event_time.saturating_add(duration),
        caller,
        caller_key,
    }))
}

/// STS session keys are `ASIA` and 16–128 characters of `[A-Z0-9]` in all; anything
/// else (a redacted sample, an empty string) joins nothing.
fn valid_access_key(k: &str) -> bool {
    k.starts_with("ASIA")
        && (16..=128).contains(&k.len())
        && k.bytes()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// `arn:aws:iam::ACCOUNT:role/path/NAME` → the role's account and lower-cased name.
pub fn role_ref(arn: &str) -> Option<RoleRef> {
    let a = Arn::parse(arn).filter(|a| a.service == "iam")?;
    let name = a.resource.strip_prefix("role/")?.rsplit('/').next()?;
    Some(RoleRef {
        account: a.account.to_owned(),
        name: name.to_ascii_lowercase(),
    })
}

/// The issue of a session from its assumption and, for a chain, the issue of the
/// session that made the call (`parent`, looked up on the assumption's `caller_key`).
pub fn resolve(a: &Assumption, parent: Option<&Issued>) -> Result<Issued, SkipReason> {
    if a.caller_key.as_deref() == Some(a.access_key_id.as_str()) {
        // A session cannot have issued itself: the record was made up.
        return Err(SkipReason::OriginLoop);
    }
    let origin = match parent {
        // A chain: the origin is where the parent's chain began, one hop further.
        // A source identity set at a later hop was the caller's choice, not the provider's.
        Some(p) if p.issued <= a.event_time && a.event_time <= p.expires => Origin {
            hops: p.origin.hops.saturating_add(1),
            source_identity: p
                .origin
                .source_identity
                .clone()
                .or(a.caller.source_identity.clone()),
            source_identity_by_provider: p.origin.source_identity.is_some()
                && p.origin.source_identity_by_provider,
            ..p.origin.clone()
        },
        _ => a.caller.clone(),
    };
    Ok(Issued {
        role: a.role.clone(),
        origin,
        event_id: a.event_id.clone(),
        issued: a.event_time,
        expires: a.expires,
    })
}

/// Two issues recorded for one access key. A cross-account assumption is logged in both
/// accounts (one `sharedEventID`, two eventIDs): the same role at the same moment is
/// one session, kept with the fuller origin. Two different sessions behind one key is
/// no record STS writes.
pub fn merge(existing: &Issued, new: &Issued) -> Result<Issued, SkipReason> {
    if existing.role != new.role || (existing.issued - new.issued).abs() > 1000 {
        return Err(SkipReason::AccessKeyReused);
    }
    let fuller = |o: &Origin| o.principal_arn.is_some() as u8;
    Ok(if fuller(&new.origin) > fuller(&existing.origin) {
        new.clone()
    } else {
        existing.clone()
    })
}

/// The origin of a termination made with the session `issued` (looked up on its access
/// key): `Err` when the record's caller is not the role that session belongs to.
pub fn join(
    principal: &Principal,
    at: Millis,
    issued: Option<&Issued>,
) -> Result<Option<Origin>, SkipReason> {
    let Some(i) = issued else {
        return Ok(None);
    };
    let caller = match &principal.kind {
        PrincipalKind::Role { name, .. } => principal.account.as_deref().map(|a| RoleRef {
            account: a.to_owned(),
            name: name.to_ascii_lowercase(),
        }),
        _ => None,
    };
    if caller.as_ref() != Some(&i.role) || at < i.issued {
        return Err(SkipReason::OriginMismatch);
    }
    // An expired session's key authenticates nothing; a call after expiry is someone
    // else's record. Five minutes of slack for CloudTrail's clock.
    if at > i.expires.saturating_add(300_000) {
        return Err(SkipReason::OriginMismatch);
    }
    Ok(Some(i.origin.clone()))
}

/// The backtest's issues, by access key; conflicting keys are remembered as such, so no
/// call made with them is ever given an origin.
#[derive(Debug, Default)]
pub struct Provenance {
    issued: HashMap<String, Option<Issued>>,
}

impl Provenance {
    /// Records an assumption; call in eventTime order.
    pub fn learn(&mut self, a: &Assumption) -> Result<(), SkipReason> {
        let parent = a
            .caller_key
            .as_deref()
            .and_then(|k| self.issued.get(k))
            .and_then(Option::as_ref);
        let new = resolve(a, parent)?;
        match self.issued.get(&a.access_key_id) {
            None => {
                self.issued.insert(a.access_key_id.clone(), Some(new));
                Ok(())
            }
            Some(None) => Err(SkipReason::AccessKeyReused),
            Some(Some(old)) => match merge(old, &new) {
                Ok(kept) => {
                    self.issued.insert(a.access_key_id.clone(), Some(kept));
                    Ok(())
                }
                Err(e) => {
                    self.issued.insert(a.access_key_id.clone(), None);
                    Err(e)
                }
            },
        }
    }

    /// The issue `key` names, if it is known and not conflicting.
    pub fn issued(&self, key: &str) -> Option<&Issued> {
        self.issued.get(key).and_then(Option::as_ref)
    }

    /// The origin of a call `principal` made at `at` with the access key `key`.
    pub fn origin(
        &self,
        principal: &Principal,
        key: Option<&str>,
        at: Millis,
    ) -> Result<Option<Origin>, SkipReason> {
        match key {
            Some(k) => join(principal, at, self.issued(k)),
            None => Ok(None),
        }
    }
}
