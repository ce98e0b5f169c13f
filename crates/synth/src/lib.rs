//! Synthetic CloudTrail records, shaped like real ones, for the demo, the scenario
//! tests, the local-stack tests, `tripwire generate` and the benchmarks: one record
//! template, so every consumer feeds the engine the same shape.
//!
//! Boundary: test data only. The engine never depends on this crate.

use serde_json::{json, Value};
use std::fmt::Write as _;
use tripwire_engine::catalogue::{Ids, Watched, Weakens, TERMINATE_INSTANCES};
use tripwire_engine::time::{format_millis, Millis};

/// Who makes a call, written `role/PATH/NAME@ACCOUNT`, `user/PATH/NAME@ACCOUNT`,
/// `root@ACCOUNT`, `federated/NAME@ACCOUNT` (a federation session whose record does not
/// name its issuer), `federated/NAME+user/PATH/USER@ACCOUNT` or `federated/NAME+root@ACCOUNT`
/// (issued by that IAM user, or by root), or `awsservice:HOST`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// An assumed-role session of `arn:aws:iam::{account}:role{path}{name}`.
    Role {
        /// The role's account.
        account: String,
        /// `/` or `/a/b/`.
        path: String,
        /// Role name.
        name: String,
    },
    /// An IAM user.
    User {
        /// The user's account.
        account: String,
        /// `/` or `/a/b/`.
        path: String,
        /// User name.
        name: String,
    },
    /// The root user.
    Root {
        /// The account.
        account: String,
    },
    /// A federated-user session.
    Federated {
        /// The account.
        account: String,
        /// Federated user name (the caller's choice).
        name: String,
        /// `sessionContext.sessionIssuer`: `Some(None)` root, `Some(Some((path, user)))`
        /// an IAM user, `None` absent.
        issuer: Option<Option<(String, String)>>,
    },
    /// Another account's principal, as the role's account logs a cross-account
    /// `AssumeRole` (`userIdentity.type` `AWSAccount`): `account/PRINCIPALID@ACCOUNT`.
    OtherAccount {
        /// The caller's account.
        account: String,
        /// Its `principalId` (`AROA…:session`).
        principal_id: String,
    },
    /// A web-identity (OIDC) or SAML caller of `AssumeRoleWith*`:
    /// `webidentity/PROVIDER+SUBJECT` or `saml/PROVIDER+SUBJECT`.
    Federation {
        /// `WebIdentityUser` or `SAMLUser`.
        kind: &'static str,
        /// `identityProvider`.
        provider: String,
        /// The token's subject (`userName`).
        subject: String,
    },
    /// An AWS service.
    Service {
        /// e.g. `ec2.amazonaws.com`.
        host: String,
    },
}

impl Caller {
    /// Parses the spec syntax above.
    pub fn parse(spec: &str) -> Result<Caller, String> {
        if let Some(host) = spec.strip_prefix("awsservice:") {
            return Ok(Caller::Service { host: host.into() });
        }
        for (prefix, kind) in [("webidentity/", "WebIdentityUser"), ("saml/", "SAMLUser")] {
            if let Some(rest) = spec.strip_prefix(prefix) {
                let (provider, subject) = rest
                    .split_once('+')
                    .ok_or_else(|| format!("`{spec}`: PROVIDER+SUBJECT"))?;
                return Ok(Caller::Federation {
                    kind,
                    provider: provider.into(),
                    subject: subject.into(),
                });
            }
        }
        let (who, account) = spec
            .rsplit_once('@')
            .ok_or_else(|| format!("`{spec}`: missing @ACCOUNT"))?;
        let account = account.to_string();
        let split = |rest: &str| match rest.rfind('/') {
            Some(i) => (format!("/{}/", &rest[..i]), rest[i + 1..].to_string()),
            None => ("/".to_string(), rest.to_string()),
        };
        if who == "root" {
            Ok(Caller::Root { account })
        } else if let Some(rest) = who.strip_prefix("role/") {
            let (path, name) = split(rest);
            Ok(Caller::Role {
                account,
                path,
                name,
            })
        } else if let Some(rest) = who.strip_prefix("user/") {
            let (path, name) = split(rest);
            Ok(Caller::User {
                account,
                path,
                name,
            })
        } else if let Some(name) = who.strip_prefix("session/") {
            // A service-invoked session whose record has no `sessionIssuer`: the role's
            // path is nowhere in it (an empty path marks that).
            Ok(Caller::Role {
                account,
                path: String::new(),
                name: name.into(),
            })
        } else if let Some(principal_id) = who.strip_prefix("account/") {
            Ok(Caller::OtherAccount {
                account,
                principal_id: principal_id.into(),
            })
        } else if let Some(rest) = who.strip_prefix("federated/") {
            let (name, issuer) = match rest.split_once('+') {
                None => (rest, None),
                Some((name, "root")) => (name, Some(None)),
                Some((name, user)) => match user.strip_prefix("user/") {
                    Some(u) => (name, Some(Some(split(u)))),
                    None => return Err(format!("`{spec}`: the issuer is root or user/NAME")),
                },
            };
            Ok(Caller::Federated {
                account,
                name: name.into(),
                issuer,
            })
        } else {
            Err(format!("`{spec}`: unknown caller kind"))
        }
    }

    /// The caller's own account, if it has one.
    pub fn account(&self) -> Option<&str> {
        match self {
            Caller::Role { account, .. }
            | Caller::User { account, .. }
            | Caller::Root { account }
            | Caller::Federated { account, .. }
            | Caller::OtherAccount { account, .. } => Some(account),
            Caller::Service { .. } | Caller::Federation { .. } => None,
        }
    }

    /// Writes the `userIdentity` object; `key` is the access key ID's tail.
    fn write_user_identity(&self, b: &mut String, session: &str, key: &str, by: Option<&str>) {
        match self {
            Caller::Role {
                account,
                path,
                name,
            } if path.is_empty() => {
                let _ = write!(
                    b,
                    r#"{{"type":"AssumedRole","principalId":"AROA{a}:{s}","arn":"arn:aws:sts::{a}:assumed-role/{n}/{s}","accountId":"{a}","accessKeyId":"ASIA{key}","sessionContext":{{"attributes":{{"creationDate":"2018-01-09T20:00:00Z","mfaAuthenticated":"false"}}}}"#,
                    a = esc(account),
                    s = esc(session),
                    n = esc(name),
                );
            }
            Caller::Role {
                account,
                path,
                name,
            } => {
                let _ = write!(
                    b,
                    r#"{{"type":"AssumedRole","principalId":"AROA{a}:{s}","arn":"arn:aws:sts::{a}:assumed-role/{n}/{s}","accountId":"{a}","accessKeyId":"ASIA{key}","sessionContext":{{"sessionIssuer":{{"type":"Role","principalId":"AROA{a}","arn":"arn:aws:iam::{a}:role{p}{n}","accountId":"{a}","userName":"{n}"}},"webIdFederationData":{{}},"attributes":{{"creationDate":"2018-01-09T20:00:00Z","mfaAuthenticated":"false"}}}}"#,
                    a = esc(account),
                    s = esc(session),
                    n = esc(name),
                    p = esc(path),
                );
            }
            Caller::User {
                account,
                path,
                name,
            } => {
                let _ = write!(
                    b,
                    r#"{{"type":"IAMUser","principalId":"AIDA{key}","arn":"arn:aws:iam::{a}:user{p}{n}","accountId":"{a}","accessKeyId":"AKIA{key}","userName":"{n}""#,
                    a = esc(account),
                    n = esc(name),
                    p = esc(path),
                );
            }
            Caller::Root { account } => {
                let _ = write!(
                    b,
                    r#"{{"type":"Root","principalId":"{a}","arn":"arn:aws:iam::{a}:root","accountId":"{a}","accessKeyId":"ASIA{key}""#,
                    a = esc(account),
                );
            }
            Caller::Federated {
                account,
                name,
                issuer,
            } => {
                let _ = write!(
                    b,
                    r#"{{"type":"FederatedUser","principalId":"{a}:{n}","arn":"arn:aws:sts::{a}:federated-user/{n}","accountId":"{a}","accessKeyId":"ASIA{key}""#,
                    a = esc(account),
                    n = esc(name),
                );
                let attributes = r#""attributes":{"creationDate":"2018-01-09T20:00:00Z","mfaAuthenticated":"false"}"#;
                match issuer {
                    None => {}
                    Some(None) => {
                        let _ = write!(
                            b,
                            r#","sessionContext":{{"sessionIssuer":{{"type":"Root","principalId":"{a}","arn":"arn:aws:iam::{a}:root","accountId":"{a}"}},{attributes}}}"#,
                            a = esc(account),
                        );
                    }
                    Some(Some((path, user))) => {
                        let _ = write!(
                            b,
                            r#","sessionContext":{{"sessionIssuer":{{"type":"IAMUser","principalId":"AIDA{key}","arn":"arn:aws:iam::{a}:user{p}{u}","accountId":"{a}","userName":"{u}"}},{attributes}}}"#,
                            a = esc(account),
                            p = esc(path),
                            u = esc(user),
                        );
                    }
                }
            }
            Caller::Service { host } => {
                let _ = write!(b, r#"{{"type":"AWSService","invokedBy":"{}""#, esc(host));
            }
            Caller::OtherAccount {
                account,
                principal_id,
            } => {
                let _ = write!(
                    b,
                    r#"{{"type":"AWSAccount","principalId":"{}","accountId":"{}""#,
                    esc(principal_id),
                    esc(account)
                );
            }
            Caller::Federation {
                kind,
                provider,
                subject,
            } => {
                let _ = write!(
                    b,
                    r#"{{"type":"{kind}","principalId":"{p}:{s}","userName":"{s}","identityProvider":"{p}""#,
                    p = esc(provider),
                    s = esc(subject),
                );
            }
        }
        if let Some(by) = by.filter(|_| !matches!(self, Caller::Service { .. })) {
            let _ = write!(b, r#","invokedBy":"{}""#, esc(by));
        }
        b.push('}');
    }
}

/// A string's JSON escaping, without the quotes.
fn esc(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(|c| c == '"' || c == '\\' || c.is_control()) {
        return s.into();
    }
    let quoted = serde_json::to_string(s).unwrap_or_default();
    quoted[1..quoted.len() - 1].to_owned().into()
}

/// Any CloudTrail management-event record: the one template every synthetic record,
/// TerminateInstances or background noise, is written from.
#[derive(Debug, Clone)]
pub struct ApiCall<'a> {
    /// Who.
    pub caller: &'a Caller,
    /// recipientAccountId.
    pub account: &'a str,
    /// awsRegion.
    pub region: &'a str,
    /// eventTime.
    pub time: Millis,
    /// eventSource, e.g. `ec2.amazonaws.com`.
    pub event_source: &'a str,
    /// eventName.
    pub event_name: &'a str,
    /// requestParameters, as JSON text.
    pub request_parameters: &'a str,
    /// responseElements, as JSON text (`null` for none).
    pub response_elements: &'a str,
    /// requestID.
    pub request_id: &'a str,
    /// eventID.
    pub event_id: &'a str,
    /// errorCode and errorMessage, for a failed call.
    pub error: Option<(&'a str, &'a str)>,
    /// sourceIPAddress.
    pub source_ip: &'a str,
    /// userAgent.
    pub user_agent: &'a str,
    /// userIdentity.invokedBy, for calls made through a service.
    pub invoked_by: Option<&'a str>,
    /// The session name of an assumed role.
    pub session: &'a str,
    /// The access key ID's tail (16 characters), so records can differ in it.
    pub access_key: &'a str,
    /// readOnly.
    pub read_only: bool,
}

/// Appends the record of `c` to `b`, as CloudTrail writes it.
pub fn write_record(b: &mut String, c: &ApiCall<'_>) {
    b.push_str(r#"{"eventVersion":"1.08","userIdentity":"#);
    c.caller
        .write_user_identity(b, c.session, c.access_key, c.invoked_by);
    let _ = write!(
        b,
        r#","eventTime":"{time}","eventSource":"{source}","eventName":"{name}","awsRegion":"{region}","sourceIPAddress":"{ip}","userAgent":"{ua}","requestParameters":{req},"responseElements":{resp},"requestID":"{rid}","eventID":"{ev}","readOnly":{ro},"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"{a}","eventCategory":"Management""#,
        time = format_millis(c.time),
        source = esc(c.event_source),
        name = esc(c.event_name),
        region = esc(c.region),
        ip = esc(c.source_ip),
        ua = esc(c.user_agent),
        req = c.request_parameters,
        resp = c.response_elements,
        rid = esc(c.request_id),
        ev = esc(c.event_id),
        ro = c.read_only,
        a = esc(c.account),
    );
    if let Some((code, message)) = c.error {
        let _ = write!(
            b,
            r#","errorCode":"{}","errorMessage":"{}""#,
            esc(code),
            esc(message)
        );
    }
    let _ = write!(
        b,
        r#","tlsDetails":{{"tlsVersion":"TLSv1.2","cipherSuite":"ECDHE-RSA-AES128-GCM-SHA256","clientProvidedHostHeader":"{}"}}}}"#,
        esc(c.event_source)
    );
}

/// One TerminateInstances call to render.
#[derive(Debug, Clone)]
pub struct Call<'a> {
    /// Who.
    pub caller: &'a Caller,
    /// Where the instances die.
    pub account: &'a str,
    /// Region.
    pub region: &'a str,
    /// eventTime.
    pub time: Millis,
    /// Instances asked for.
    pub instance_ids: &'a [String],
    /// eventID.
    pub event_id: &'a str,
    /// errorCode, for a failed call.
    pub error: Option<&'a str>,
    /// sourceIPAddress.
    pub source_ip: &'a str,
    /// userAgent.
    pub user_agent: &'a str,
    /// userIdentity.invokedBy, for calls made through a service.
    pub invoked_by: Option<&'a str>,
    /// How many of the first IDs were already shutting down before the call
    /// (`responseElements` `previousState`): a re-termination.
    pub already_terminated: usize,
    /// The role session name (or federated user's), in the session ARN.
    pub session: &'a str,
    /// The access key ID's tail after `ASIA` (`AKIA` for a user).
    pub access_key: &'a str,
}

/// The CloudTrail record of `call`, as CloudTrail writes a TerminateInstances event.
pub fn terminate_record(call: &Call<'_>) -> Value {
    let mut buf = String::new();
    write_terminate(&mut buf, call);
    serde_json::from_str(&buf).unwrap_or_default()
}

/// Appends the TerminateInstances record of `call` to `b`.
pub fn write_terminate(b: &mut String, call: &Call<'_>) {
    let items = |with_states: bool| {
        let mut out = String::from(r#"{"instancesSet":{"items":["#);
        for (k, i) in call.instance_ids.iter().enumerate() {
            if k > 0 {
                out.push(',');
            }
            let _ = write!(out, r#"{{"instanceId":"{}""#, esc(i));
            if with_states {
                out.push_str(if k < call.already_terminated {
                    r#","currentState":{"code":32,"name":"shutting-down"},"previousState":{"code":32,"name":"shutting-down"}"#
                } else {
                    r#","currentState":{"code":32,"name":"shutting-down"},"previousState":{"code":16,"name":"running"}"#
                });
            }
            out.push('}');
        }
        out.push_str("]}}");
        out
    };
    let request_id = format!("req-{}", call.event_id);
    let response = match call.error {
        Some(_) => "null".to_owned(),
        None => {
            let states = items(true);
            format!(r#"{{"requestId":"{}",{}"#, esc(&request_id), &states[1..])
        }
    };
    write_record(
        b,
        &ApiCall {
            caller: call.caller,
            account: call.account,
            region: call.region,
            time: call.time,
            event_source: TERMINATE_INSTANCES.event_source,
            event_name: TERMINATE_INSTANCES.event_name,
            request_parameters: &items(false),
            response_elements: &response,
            request_id: &request_id,
            event_id: call.event_id,
            error: call
                .error
                .map(|code| (code, "You are not authorized to perform this operation.")),
            source_ip: call.source_ip,
            user_agent: call.user_agent,
            invoked_by: call.invoked_by,
            session: call.session,
            access_key: call.access_key,
            read_only: false,
        },
    );
}

/// One `AssumeRole*` call to render, as the role's account logs it.
#[derive(Debug, Clone)]
pub struct Assume<'a> {
    /// Who assumed it (a role session, another account, a web identity, SAML).
    pub caller: &'a Caller,
    /// The caller's own access key tail, for a role session (role chaining).
    pub caller_key: &'a str,
    /// The role assumed, with its path.
    pub role_arn: &'a str,
    /// Its session name.
    pub session: &'a str,
    /// The tail after `ASIA` of the access key it returns.
    pub access_key: &'a str,
    /// eventTime.
    pub time: Millis,
    /// eventID.
    pub event_id: &'a str,
    /// A source identity set on the session.
    pub source_identity: Option<&'a str>,
}

/// The CloudTrail record of an `AssumeRole*` call (by the caller's kind).
pub fn assume_role_record(a: &Assume<'_>) -> Value {
    let account = a.role_arn.split(':').nth(4).unwrap_or_default();
    let name = a.role_arn.rsplit('/').next().unwrap_or_default();
    let event_name = match a.caller {
        Caller::Federation {
            kind: "WebIdentityUser",
            ..
        } => "AssumeRoleWithWebIdentity",
        Caller::Federation { .. } => "AssumeRoleWithSAML",
        _ => "AssumeRole",
    };
    let source = a
        .source_identity
        .map(|s| format!(r#","sourceIdentity":"{}""#, esc(s)))
        .unwrap_or_default();
    let subject = match a.caller {
        Caller::Federation {
            kind: "WebIdentityUser",
            provider,
            subject,
        } => format!(
            r#","subjectFromWebIdentityToken":"{}","provider":"{}","audience":"sts.amazonaws.com""#,
            esc(subject),
            esc(provider)
        ),
        Caller::Federation { subject, .. } => {
            format!(
                r#","subject":"{}","subjectType":"persistent""#,
                esc(subject)
            )
        }
        _ => String::new(),
    };
    let request = format!(
        r#"{{"roleArn":"{}","roleSessionName":"{}","durationSeconds":3600{source}}}"#,
        esc(a.role_arn),
        esc(a.session)
    );
    let response = format!(
        r#"{{"credentials":{{"accessKeyId":"ASIA{k}","sessionToken":"x","expiration":"Jan 9, 2018, 10:00:00 PM"}},"assumedRoleUser":{{"assumedRoleId":"AROA{acct}:{s}","arn":"arn:aws:sts::{acct}:assumed-role/{n}/{s}"}}{source}{subject}}}"#,
        k = esc(a.access_key),
        acct = esc(account),
        n = esc(name),
        s = esc(a.session),
    );
    let mut b = String::new();
    write_record(
        &mut b,
        &ApiCall {
            caller: a.caller,
            account,
            region: "us-east-1",
            time: a.time,
            event_source: "sts.amazonaws.com",
            event_name,
            request_parameters: &request,
            response_elements: &response,
            request_id: a.event_id,
            event_id: a.event_id,
            error: None,
            source_ip: "198.51.100.9",
            user_agent: "aws-cli/2.13.0",
            invoked_by: None,
            session: a.session,
            access_key: a.caller_key,
            read_only: true,
        },
    );
    serde_json::from_str(&b).unwrap_or_default()
}

/// The CloudTrail record of a call that decides terminations (`DeleteAutoScalingGroup`,
/// `DeleteStack`, …) by `caller` in `account`.
pub fn initiator_record(
    caller: &Caller,
    account: &str,
    time: Millis,
    event_source: &str,
    event_name: &str,
    event_id: &str,
) -> Value {
    let mut b = String::new();
    write_record(
        &mut b,
        &ApiCall {
            caller,
            account,
            region: "us-east-1",
            time,
            event_source,
            event_name,
            request_parameters: r#"{"autoScalingGroupName":"web","forceDelete":true}"#,
            response_elements: "null",
            request_id: event_id,
            event_id,
            error: None,
            source_ip: "198.51.100.9",
            user_agent: "aws-cli/2.13.0",
            invoked_by: None,
            session: "operator",
            access_key: "OPERATOROPERATOR",
            read_only: false,
        },
    );
    serde_json::from_str(&b).unwrap_or_default()
}

/// The record of `w` (a watched call that names one resource, or none) destroying `id`
/// by `caller` in `account`, or failing with `error`.
#[allow(clippy::too_many_arguments)]
pub fn destroy_record(
    w: &Watched,
    caller: &Caller,
    account: &str,
    region: &str,
    time: Millis,
    id: &str,
    event_id: &str,
    error: Option<&str>,
) -> Value {
    let mut params = match w.resource.ids {
        Ids::Param(key) => json!({ key: id }),
        Ids::Recipient | Ids::InstancesSet => Value::Null,
    };
    // A precursor's request takes its protection away, as the service logs it.
    match w.precursor {
        Some(Weakens::InstanceProtection) => {
            params["disableApiTermination"] = json!({ "value": false })
        }
        Some(Weakens::Off(key)) => params[key] = json!(false),
        Some(Weakens::ShortLifecycle) => {
            params["LifecycleConfiguration"] = json!({
                "Rule": { "ID": "expire", "Status": "Enabled", "Filter": { "Prefix": "" }, "Expiration": { "Days": 1 } }
            })
        }
        None => {}
    }
    let params = params.to_string();
    let mut b = String::new();
    write_record(
        &mut b,
        &ApiCall {
            caller,
            account,
            region,
            time,
            event_source: w.event_source,
            event_name: w.event_name,
            request_parameters: &params,
            response_elements: "null",
            request_id: event_id,
            event_id,
            error: error.map(|e| (e, "denied")),
            source_ip: "198.51.100.7",
            user_agent: "scenario",
            invoked_by: None,
            session: "session",
            access_key: "EXAMPLEEXAMPLE00",
            read_only: false,
        },
    );
    serde_json::from_str(&b).unwrap_or_default()
}

/// Wraps a record the way EventBridge delivers it ("AWS API Call via CloudTrail"), with
/// the `source` EventBridge gives its service (`aws.ec2`, `aws.rds`, …).
pub fn eventbridge_envelope(record: &Value, id: &str) -> Value {
    let service = record["eventSource"]
        .as_str()
        .and_then(|s| s.strip_suffix(".amazonaws.com"))
        .unwrap_or("ec2");
    json!({
        "version": "0",
        "id": id,
        "detail-type": tripwire_engine::record::CLOUDTRAIL_DETAIL_TYPE,
        "source": format!("aws.{service}"),
        "account": record["recipientAccountId"],
        "time": record["eventTime"],
        "region": record["awsRegion"],
        "resources": [],
        "detail": record
    })
}

/// EC2's own `EC2 Instance State-change Notification` for `instance` entering `state`
/// at `time`, in the shape the EC2 User Guide shows (no caller: EC2 sends one whatever
/// ended the instance).
pub fn state_change_event(
    account: &str,
    region: &str,
    instance: &str,
    state: &str,
    time: Millis,
    id: &str,
) -> Value {
    json!({
        "version": "0",
        "id": id,
        "detail-type": tripwire_engine::record::STATE_CHANGE_DETAIL_TYPE,
        "source": "aws.ec2",
        "account": account,
        "time": format_millis(time - time.rem_euclid(1000)),
        "region": region,
        "resources": [format!("arn:aws:ec2:{region}:{account}:instance/{instance}")],
        "detail": {"instance-id": instance, "state": state}
    })
}

/// The canary's call in `account` and `region` at `time`, as CloudTrail records it: the
/// account's `tripwire-canary` role, DryRun on the canary instance.
pub fn canary_record(account: &str, region: &str, time: Millis, event_id: &str) -> Value {
    let caller = Caller::Role {
        account: account.into(),
        path: "/".into(),
        name: tripwire_engine::names::CANARY_ROLE.into(),
    };
    terminate_record(&Call {
        caller: &caller,
        account,
        region,
        time,
        instance_ids: &[tripwire_engine::names::CANARY_INSTANCE.to_owned()],
        event_id,
        error: Some("Client.DryRunOperation"),
        source_ip: "scheduler.amazonaws.com",
        user_agent: "scheduler.amazonaws.com",
        invoked_by: None,
        already_terminated: 0,
        session: "canary",
        access_key: "CANARYCANARY0000",
    })
}

/// The EventBridge envelope of a `name` call to `source` (`cloudtrail.amazonaws.com`)
/// by `who` in production at `time`, with `params` as its requestParameters.
pub fn api_envelope(
    source: &str,
    name: &str,
    who: &str,
    params: &Value,
    id: &str,
    time: Millis,
) -> Value {
    let caller = Caller::parse(who).unwrap_or(Caller::Root {
        account: PROD.into(),
    });
    let mut b = String::new();
    write_record(
        &mut b,
        &ApiCall {
            caller: &caller,
            account: PROD,
            region: "us-east-1",
            time,
            event_source: source,
            event_name: name,
            request_parameters: &params.to_string(),
            response_elements: "null",
            request_id: &format!("req-{id}"),
            event_id: id,
            error: None,
            source_ip: "203.0.113.7",
            user_agent: "aws-cli/2.15.0",
            invoked_by: None,
            session: "session",
            access_key: "EXAMPLEEXAMPLE00",
            read_only: false,
        },
    );
    let record: Value = serde_json::from_str(&b).unwrap_or_default();
    let mut e = eventbridge_envelope(&record, id);
    e["source"] = format!("aws.{}", source.split('.').next().unwrap_or_default()).into();
    e
}

/// splitmix64: a tiny deterministic generator, so synthetic data is the same every run.
#[derive(Debug, Clone)]
pub struct SplitMix(pub u64);

impl SplitMix {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// `len` lowercase hex digits.
    pub fn hex(&mut self, len: usize) -> String {
        let mut s = String::with_capacity(len + 16);
        while s.len() < len {
            let _ = write!(s, "{:016x}", self.next_u64());
        }
        s.truncate(len);
        s
    }

    /// A UUID-shaped string.
    pub fn uuid(&mut self) -> String {
        let h = self.hex(32);
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }

    /// A real-looking instance ID (`i-` and 17 hex digits).
    pub fn instance_id(&mut self) -> String {
        format!("i-{}", self.hex(17))
    }
}

/// Adds `sessionContext.sourceIdentity` and (for instance-profile credentials)
/// `sessionContext.ec2RoleDelivery` `2.0` to a role session's record, where CloudTrail
/// writes them.
pub fn set_session_context(
    record: &mut Value,
    source_identity: Option<&str>,
    ec2_role_delivery: bool,
) {
    if let Some(ctx) = record
        .pointer_mut("/userIdentity/sessionContext")
        .and_then(Value::as_object_mut)
    {
        if let Some(id) = source_identity {
            ctx.insert("sourceIdentity".into(), id.into());
        }
        if ec2_role_delivery {
            ctx.insert("ec2RoleDelivery".into(), "2.0".into());
        }
    }
}

/// A run of TerminateInstances calls by one caller, as the detector receives them:
/// `calls` calls `step` ms apart from `at`, each naming `ids_per_call` instances that
/// are distinct per tag and call. Event IDs are `{tag}-{k}`, so a test can redeliver one.
#[derive(Debug, Clone)]
pub struct Burst {
    caller: Caller,
    account: String,
    region: String,
    at: Millis,
    calls: i64,
    step: Millis,
    ids_per_call: usize,
    already_terminated: usize,
    session: String,
    sessions: Vec<String>,
    source_identity: Option<String>,
    ec2_role_delivery: bool,
    access_key: String,
    invoked_by: Option<String>,
    error: Option<String>,
    tag: String,
}

impl Burst {
    /// One call by `who` (a [`Caller`] spec) in its own account, at the seed incident's
    /// first termination.
    ///
    /// # Panics
    /// On a bad caller spec or a caller with no account: test data is written by hand.
    pub fn new(who: &str, tag: &str) -> Self {
        let caller = Caller::parse(who).expect("caller spec");
        let account = caller.account().unwrap_or(PROD).to_owned();
        Burst {
            caller,
            account,
            region: "us-east-1".into(),
            at: 1_515_535_740_000,
            calls: 1,
            step: 1000,
            ids_per_call: 1,
            already_terminated: 0,
            session: "session".into(),
            sessions: Vec::new(),
            source_identity: None,
            ec2_role_delivery: false,
            access_key: "EXAMPLEEXAMPLE00".into(),
            invoked_by: None,
            error: None,
            tag: tag.into(),
        }
    }

    /// Where the instances die (default: the caller's own account).
    pub fn account(mut self, account: &str) -> Self {
        self.account = account.into();
        self
    }

    /// The region (default `us-east-1`).
    pub fn region(mut self, region: &str) -> Self {
        self.region = region.into();
        self
    }

    /// The first call's eventTime.
    pub fn at(mut self, at: Millis) -> Self {
        self.at = at;
        self
    }

    /// How many calls.
    pub fn calls(mut self, calls: i64) -> Self {
        self.calls = calls;
        self
    }

    /// Milliseconds between calls.
    pub fn step(mut self, step: Millis) -> Self {
        self.step = step;
        self
    }

    /// Instances per call.
    pub fn ids_per_call(mut self, n: usize) -> Self {
        self.ids_per_call = n;
        self
    }

    /// The first `n` instances of each call were already shutting down
    /// (`responseElements` `previousState`): a re-termination.
    pub fn already_terminated(mut self, n: usize) -> Self {
        self.already_terminated = n;
        self
    }

    /// The session name in the session ARN (default `session`).
    pub fn session(mut self, name: &str) -> Self {
        self.session = name.into();
        self
    }

    /// Calls take these session names in turn (overrides [`Burst::session`]).
    pub fn sessions(mut self, names: &[&str]) -> Self {
        self.sessions = names.iter().map(|n| (*n).to_owned()).collect();
        self
    }

    /// `sessionContext.sourceIdentity` on every call.
    pub fn source_identity(mut self, id: &str) -> Self {
        self.source_identity = Some(id.into());
        self
    }

    /// Instance-profile credentials: `sessionContext.ec2RoleDelivery` `2.0` on every
    /// call (set the session to the instance ID, as EC2 does).
    pub fn instance_profile(mut self) -> Self {
        self.ec2_role_delivery = true;
        self
    }

    /// The access key ID's tail after `ASIA` (default `EXAMPLEEXAMPLE00`): what joins
    /// the calls to the `AssumeRole` that issued the session.
    pub fn access_key(mut self, tail: &str) -> Self {
        self.access_key = tail.into();
        self
    }

    /// `userIdentity.invokedBy`: a service made the calls on the caller's behalf.
    pub fn invoked_by(mut self, host: &str) -> Self {
        self.invoked_by = Some(host.into());
        self
    }

    /// Every call fails with `code` (an attempt).
    pub fn error(mut self, code: &str) -> Self {
        self.error = Some(code.into());
        self
    }

    /// The CloudTrail records.
    pub fn records(&self) -> Vec<Value> {
        let tag_hash = tripwire_engine::fnv1a(&[&self.tag]);
        (0..self.calls)
            .map(|k| {
                let ids: Vec<String> = (0..self.ids_per_call)
                    .map(|j| {
                        let n = (k as u64) * self.ids_per_call as u64 + j as u64;
                        format!("i-{:017x}", (tag_hash >> 8).wrapping_add(n))
                    })
                    .collect();
                let event_id = format!("{}-{k}", self.tag);
                let session = match self.sessions.len() {
                    0 => &self.session,
                    n => &self.sessions[k as usize % n],
                };
                let mut record = terminate_record(&Call {
                    caller: &self.caller,
                    account: &self.account,
                    region: &self.region,
                    time: self.at + k * self.step,
                    instance_ids: &ids,
                    event_id: &event_id,
                    error: self.error.as_deref(),
                    source_ip: "10.20.0.15",
                    user_agent: "vendor-cleanup/2.3 aws-sdk-go/1.12.0",
                    invoked_by: self.invoked_by.as_deref(),
                    already_terminated: self.already_terminated,
                    session,
                    access_key: &self.access_key,
                });
                set_session_context(
                    &mut record,
                    self.source_identity.as_deref(),
                    self.ec2_role_delivery,
                );
                record
            })
            .collect()
    }

    /// EC2's `state` events (`shutting-down`, `terminated`) for every instance the calls
    /// name, `delay` ms after its call (IDs `sc-{state}-{instance}`): what EC2 sends
    /// whoever ended the instances.
    pub fn state_changes(&self, state: &str, delay: Millis) -> Vec<Value> {
        self.records()
            .iter()
            .flat_map(|r| {
                let time = r["eventTime"]
                    .as_str()
                    .and_then(tripwire_engine::time::parse_event_time)
                    .unwrap_or(self.at)
                    + delay;
                r["requestParameters"]["instancesSet"]["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|i| i["instanceId"].as_str())
                    .map(|id| {
                        state_change_event(
                            &self.account,
                            &self.region,
                            id,
                            state,
                            time,
                            &format!("sc-{state}-{id}"),
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The records in EventBridge envelopes (`eb-{eventID}`): what the detector receives.
    pub fn envelopes(&self) -> Vec<Value> {
        self.records()
            .iter()
            .map(|r| {
                let id = format!("eb-{}", r["eventID"].as_str().unwrap_or_default());
                eventbridge_envelope(r, &id)
            })
            .collect()
    }
}

/// The policy the tests run with unless one says otherwise: 10 instances in 5 minutes,
/// any cross-account instance, development allowed, break-glass roles protected, revoke.
pub const TEST_POLICY: &str = r#"threshold = 10
window = "5m"
cross_account_threshold = 1
allowed_accounts = ["111111111111"]
protected_principals = ["arn:aws:iam::*:role/BreakGlass*"]
containment = "revoke"
"#;

/// The containment role's name in every member account, in the tests.
pub const CONTAINMENT_ROLE: &str = "tripwire-containment";

/// Production: where the seed incident happens.
pub const PROD: &str = "222222222222";
/// Development: where the same tool runs legitimately (an allowed account).
pub const DEV: &str = "111111111111";

/// A run of TerminateInstances calls by one role, in the seed scenario.
struct SeedRun {
    account: &'static str,
    path: &'static str,
    role: &'static str,
    /// First call, relative to the incident's first termination.
    offset: Millis,
    calls: i64,
    step: Millis,
    per_call: usize,
    ip: &'static str,
    ua: &'static str,
}

const VENDOR_UA: &str = "vendor-cleanup/2.3 aws-sdk-go/1.12.0";
const ASG: &str = "autoscaling.amazonaws.com";

/// The seed incident and the look-alikes that must not fire.
const SEED: [SeedRun; 4] = [
    // A rolling deploy in production: 3 instances every 10 minutes, for three hours.
    SeedRun {
        account: PROD,
        path: "/deploy/",
        role: "ci-deployer",
        offset: -2 * 3_600_000,
        calls: 18,
        step: 600_000,
        per_call: 3,
        ip: "203.0.113.10",
        ua: "aws-cli/1.14.20 Python/3.6.3",
    },
    // The same vendor tool in the development account: allowed, must not fire.
    SeedRun {
        account: DEV,
        path: "/vendor/",
        role: "cleanup-task",
        offset: -40 * 60_000,
        calls: 40,
        step: 1500,
        per_call: 1,
        ip: "10.20.0.15",
        ua: VENDOR_UA,
    },
    // Auto Scaling scale-in in production: a service-linked role, must not fire.
    SeedRun {
        account: PROD,
        path: "/aws-service-role/autoscaling.amazonaws.com/",
        role: "AWSServiceRoleForAutoScaling",
        offset: -9 * 60_000,
        calls: 15,
        step: 8000,
        per_call: 1,
        ip: ASG,
        ua: ASG,
    },
    // The incident: the cleanup task with production credentials, 60 instances in 90 s.
    SeedRun {
        account: PROD,
        path: "/vendor/",
        role: "cleanup-task",
        offset: 0,
        calls: 60,
        step: 1500,
        per_call: 1,
        ip: "10.20.0.15",
        ua: VENDOR_UA,
    },
];

/// The seed scenario with its first incident termination at `base`: (account, record)
/// for every call, burst by burst. Deterministic: the same IDs every run.
pub fn seed_scenario(base: Millis) -> Vec<(&'static str, Value)> {
    let mut rng = SplitMix(20_180_109);
    let mut out = Vec::new();
    for b in &SEED {
        let caller = Caller::Role {
            account: b.account.into(),
            path: b.path.into(),
            name: b.role.into(),
        };
        for k in 0..b.calls {
            let ids: Vec<String> = (0..b.per_call).map(|_| rng.instance_id()).collect();
            let call = Call {
                caller: &caller,
                account: b.account,
                region: "us-east-1",
                time: base + b.offset + k * b.step,
                instance_ids: &ids,
                event_id: &rng.uuid(),
                error: None,
                source_ip: b.ip,
                user_agent: b.ua,
                invoked_by: (b.ip == ASG).then_some(ASG),
                already_terminated: 0,
                session: "session",
                access_key: "EXAMPLEEXAMPLE00",
            };
            out.push((b.account, terminate_record(&call)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_caller_writes_a_record_the_engine_reads() {
        let ids = vec!["i-0123456789abcdef0".to_string()];
        for spec in [
            "role/vendor/cleanup-task@222222222222",
            "user/ops/al\"ice@222222222222",
            "root@222222222222",
            "federated/bob@222222222222",
            "federated/bob+user/brokers/token-broker@222222222222",
            "federated/bob+root@222222222222",
            "awsservice:ec2.amazonaws.com",
        ] {
            let caller = Caller::parse(spec).unwrap();
            for error in [None, Some("Client.UnauthorizedOperation")] {
                let mut text = String::new();
                write_terminate(
                    &mut text,
                    &Call {
                        caller: &caller,
                        account: PROD,
                        region: "us-east-1",
                        time: 1_515_535_740_000,
                        instance_ids: &ids,
                        event_id: "ev-1",
                        error,
                        source_ip: "10.0.0.1",
                        user_agent: "test",
                        invoked_by: None,
                        already_terminated: 0,
                        session: "session",
                        access_key: "EXAMPLEEXAMPLE00",
                    },
                );
                let v: Value =
                    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{spec}: {e}\n{text}"));
                assert_eq!(v["eventName"], "TerminateInstances", "{spec}");
                assert_eq!(v["errorCode"].as_str(), error, "{spec}");
                let mut out = Vec::new();
                tripwire_engine::scan(&text, &mut Default::default(), &mut out).unwrap();
                assert_eq!(out.len(), 1, "{spec}");
            }
        }
    }
}
