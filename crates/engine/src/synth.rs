//! Synthetic CloudTrail records, shaped like real ones, for the demo, the scenario
//! tests, the local-stack tests and the benchmarks: one builder, so every consumer
//! feeds the engine the same shape.

use crate::time::{format_millis, Millis};
use serde_json::{json, Value};

/// Who makes a call, written `role/PATH/NAME@ACCOUNT`, `user/PATH/NAME@ACCOUNT`,
/// `root@ACCOUNT`, `federated/NAME@ACCOUNT` or `awsservice:HOST`.
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
        /// Federated user name.
        name: String,
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
        } else if let Some(name) = who.strip_prefix("federated/") {
            Ok(Caller::Federated {
                account,
                name: name.into(),
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
            | Caller::Federated { account, .. } => Some(account),
            Caller::Service { .. } => None,
        }
    }

    /// The `userIdentity` CloudTrail writes for this caller.
    pub fn user_identity(&self, session: &str) -> Value {
        match self {
            Caller::Role {
                account,
                path,
                name,
            } => json!({
                "type": "AssumedRole",
                "principalId": format!("AROA{account}:{session}"),
                "arn": format!("arn:aws:sts::{account}:assumed-role/{name}/{session}"),
                "accountId": account,
                "accessKeyId": "ASIAEXAMPLEEXAMPLE00",
                "sessionContext": {
                    "sessionIssuer": {
                        "type": "Role",
                        "principalId": format!("AROA{account}"),
                        "arn": format!("arn:aws:iam::{account}:role{path}{name}"),
                        "accountId": account,
                        "userName": name
                    },
                    "webIdFederationData": {},
                    "attributes": { "creationDate": "2018-01-09T20:00:00Z", "mfaAuthenticated": "false" }
                }
            }),
            Caller::User {
                account,
                path,
                name,
            } => json!({
                "type": "IAMUser",
                "principalId": "AIDAEXAMPLEEXAMPLE00",
                "arn": format!("arn:aws:iam::{account}:user{path}{name}"),
                "accountId": account,
                "accessKeyId": "AKIAEXAMPLEEXAMPLE00",
                "userName": name
            }),
            Caller::Root { account } => json!({
                "type": "Root",
                "principalId": account,
                "arn": format!("arn:aws:iam::{account}:root"),
                "accountId": account,
                "accessKeyId": "ASIAEXAMPLEEXAMPLE00"
            }),
            Caller::Federated { account, name } => json!({
                "type": "FederatedUser",
                "principalId": format!("{account}:{name}"),
                "arn": format!("arn:aws:sts::{account}:federated-user/{name}"),
                "accountId": account
            }),
            Caller::Service { host } => json!({ "type": "AWSService", "invokedBy": host }),
        }
    }
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
}

/// The CloudTrail record of `call`, as CloudTrail writes a TerminateInstances event.
pub fn terminate_record(call: &Call<'_>) -> Value {
    let items: Vec<Value> = call
        .instance_ids
        .iter()
        .map(|i| json!({ "instanceId": i }))
        .collect();
    let mut identity = call.caller.user_identity("session");
    if let Some(by) = call.invoked_by {
        identity["invokedBy"] = json!(by);
    }
    let mut rec = json!({
        "eventVersion": "1.08",
        "userIdentity": identity,
        "eventTime": format_millis(call.time),
        "eventSource": "ec2.amazonaws.com",
        "eventName": "TerminateInstances",
        "awsRegion": call.region,
        "sourceIPAddress": call.source_ip,
        "userAgent": call.user_agent,
        "requestParameters": { "instancesSet": { "items": items } },
        "responseElements": null,
        "requestID": format!("req-{}", call.event_id),
        "eventID": call.event_id,
        "readOnly": false,
        "eventType": "AwsApiCall",
        "managementEvent": true,
        "recipientAccountId": call.account,
        "eventCategory": "Management"
    });
    match call.error {
        Some(code) => {
            rec["errorCode"] = json!(code);
            rec["errorMessage"] = json!("You are not authorized to perform this operation.");
        }
        None => {
            let states: Vec<Value> = call
                .instance_ids
                .iter()
                .map(|i| json!({ "instanceId": i, "currentState": {"code": 32, "name": "shutting-down"}, "previousState": {"code": 16, "name": "running"} }))
                .collect();
            rec["responseElements"] = json!({ "requestId": format!("req-{}", call.event_id), "instancesSet": { "items": states } });
        }
    }
    rec
}

/// Wraps a record the way EventBridge delivers it ("AWS API Call via CloudTrail").
pub fn eventbridge_envelope(record: &Value, id: &str) -> Value {
    json!({
        "version": "0",
        "id": id,
        "detail-type": crate::record::CLOUDTRAIL_DETAIL_TYPE,
        "source": "aws.ec2",
        "account": record["recipientAccountId"],
        "time": record["eventTime"],
        "region": record["awsRegion"],
        "resources": [],
        "detail": record
    })
}
