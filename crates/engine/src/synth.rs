//! Synthetic CloudTrail records, shaped like real ones, for the demo, the scenario
//! tests, the local-stack tests and the benchmarks: one builder, so every consumer
//! feeds the engine the same shape.

use crate::time::{format_millis, Millis};
use serde_json::{json, Value};
use std::fmt::Write as _;

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

/// Production: where the seed incident happens.
pub const PROD: &str = "222222222222";
/// Development: where the same tool runs legitimately (an allowed account).
pub const DEV: &str = "111111111111";

/// A run of TerminateInstances calls by one role.
struct Burst {
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
const SEED: [Burst; 4] = [
    // A rolling deploy in production: 3 instances every 10 minutes, for three hours.
    Burst {
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
    Burst {
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
    Burst {
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
    Burst {
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
            };
            out.push((b.account, terminate_record(&call)));
        }
    }
    out
}
