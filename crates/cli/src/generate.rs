//! A synthetic CloudTrail archive in the S3 delivery layout, for the demo and the
//! throughput benchmark. Deterministic: the same size gives the same bytes.
//!
//! Besides background noise it holds the scenario the project exists for (a vendor
//! cleanup role terminating 60 production instances in 90 s) and the look-alikes that
//! must not fire: an Auto Scaling scale-in, the same tool in the development account,
//! and a rolling deploy that replaces a few instances at a time. With `days`, the nights
//! before it hold a node autoscaler's routine: what `tripwire tune` learns from.

use anyhow::Result;
use flate2::{write::GzEncoder, Compression};
use rayon::prelude::*;
use std::io::Write;
use std::path::Path;
use tripwire_engine::catalogue::TERMINATE_INSTANCES as T;
use tripwire_engine::time::{format_millis, parse_event_time, Millis};
use tripwire_synth::{
    canary_record, seed_scenario, state_change_event, terminate_record, write_record, ApiCall,
    Call, Caller, SplitMix, DEV, PROD,
};

const ACCOUNTS: [&str; 3] = [PROD, DEV, "333333333333"];
const REGIONS: [&str; 2] = ["us-east-1", "eu-west-1"];
/// Uncompressed bytes per noise file; real CloudTrail files are a few MB at most.
const FILE_BYTES: usize = 4 << 20;
/// Each noise file covers five minutes, as CloudTrail delivers.
const FILE_SPAN: Millis = 5 * 60_000;

/// Background API calls, written straight to text for speed.
fn noise(rng: &mut SplitMix, t: Millis, account: &str, region: &str, buf: &mut String) {
    const CALLS: [(&str, &str, &str); 8] = [
        (
            "ec2.amazonaws.com",
            "DescribeInstances",
            r#"{"instancesSet":{},"filterSet":{"items":[{"name":"tag:Name","valueSet":{"items":[{"value":"web"}]}}]}}"#,
        ),
        (
            "s3.amazonaws.com",
            "GetObject",
            r#"{"bucketName":"app-assets","Host":"app-assets.s3.amazonaws.com","key":"static/app.js"}"#,
        ),
        (
            "sts.amazonaws.com",
            "AssumeRole",
            r#"{"roleArn":"arn:aws:iam::222222222222:role/app","roleSessionName":"app","durationSeconds":3600}"#,
        ),
        (
            "logs.amazonaws.com",
            "CreateLogStream",
            r#"{"logGroupName":"/aws/lambda/api","logStreamName":"2018/01/09/[$LATEST]abc"}"#,
        ),
        (
            "kms.amazonaws.com",
            "Decrypt",
            r#"{"encryptionAlgorithm":"SYMMETRIC_DEFAULT"}"#,
        ),
        (
            "dynamodb.amazonaws.com",
            "DescribeTable",
            r#"{"tableName":"sessions"}"#,
        ),
        (
            "ec2.amazonaws.com",
            "RunInstances",
            r#"{"instancesSet":{"items":[{"imageId":"ami-0abcdef1","minCount":1,"maxCount":1}]},"instanceType":"m5.large"}"#,
        ),
        (T.event_source, T.event_name, ""),
    ];
    let pick = rng.below(10_000);
    // About one call in 2,000 is a lone TerminateInstances: background for the peak view.
    let (source, name, params) = if pick < 5 {
        CALLS[7]
    } else {
        CALLS[(pick % 7) as usize]
    };
    let caller = Caller::Role {
        account: account.into(),
        path: "/".into(),
        name: format!("app-{}", rng.below(20)),
    };
    let terminate_params;
    let params = if name == T.event_name {
        terminate_params = format!(
            r#"{{"instancesSet":{{"items":[{{"instanceId":"i-{}"}}]}}}}"#,
            rng.hex(17)
        );
        terminate_params.as_str()
    } else {
        params
    };
    let (session, key) = (rng.hex(12), rng.hex(16).to_uppercase());
    let user_agent = format!(
        "aws-sdk-java/1.11.{} Linux/4.9.75 OpenJDK_64-Bit_Server_VM/25.151-b12 java/1.8.0_151",
        rng.below(300)
    );
    let source_ip = format!("10.0.{}.{}", rng.below(256), rng.below(256));
    let (request_id, event_id) = (rng.uuid(), rng.uuid());
    write_record(
        buf,
        &ApiCall {
            caller: &caller,
            account,
            region,
            time: t,
            event_source: source,
            event_name: name,
            request_parameters: params,
            response_elements: "null",
            request_id: &request_id,
            event_id: &event_id,
            error: None,
            source_ip: &source_ip,
            user_agent: &user_agent,
            invoked_by: None,
            session: &session,
            access_key: &key,
            read_only: name.starts_with("Describe") || name.starts_with("Get"),
        },
    );
}

fn file_name(account: &str, region: &str, t: Millis, tag: &str) -> String {
    let ts = format_millis(t);
    let (date, clock) = (&ts[0..10], &ts[11..16]);
    format!(
        "AWSLogs/{account}/CloudTrail/{region}/{}/{account}_CloudTrail_{region}_{}T{}Z_{tag}.json.gz",
        date.replace('-', "/"),
        date.replace('-', ""),
        clock.replace(':', "")
    )
}

fn write_gz(path: &Path, body: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut gz = GzEncoder::new(std::fs::File::create(path)?, Compression::default());
    gz.write_all(body.as_bytes())?;
    gz.finish()?;
    Ok(())
}

fn log_file(records: &[&str]) -> String {
    format!("{{\"Records\":[{}]}}", records.join(","))
}

/// The nightly routine: a node autoscaler (Karpenter's controller role, one per cluster)
/// consolidating at about 02:00 UTC, up to 340 instances in three minutes in production
/// and up to 120 in the third account, on each of the `days` days up to the seed's, with
/// EC2's state-change event for each instance.
fn nights(out: &Path, days: u32) -> Result<()> {
    const AUTOSCALER: &str = "KarpenterControllerRole";
    const UA: &str = "aws-sdk-go-v2/1.24.1 os/linux lang/go#1.21.6 md/GOOS#linux md/GOARCH#amd64 api/ec2#1.142.1 karpenter.sh-v0.33.1";
    let seed_day = parse_event_time("2018-01-09T00:00:00Z").unwrap_or_default();
    (0..days).into_par_iter().try_for_each(|d| -> Result<()> {
        let night = seed_day - Millis::from(days - 1 - d) * 86_400_000;
        for (account, most) in [(PROD, 340u64), (ACCOUNTS[2], 120)] {
            let mut rng = SplitMix(0x6e69_6768 ^ (u64::from(d) << 8) ^ most);
            let caller = Caller::Role {
                account: account.into(),
                path: "/".into(),
                name: AUTOSCALER.into(),
            };
            let t0 = night + 2 * 3_600_000 + rng.below(20 * 60_000) as Millis;
            // Most nights come near the peak; the busiest reaches it.
            let total = if d == days / 2 {
                most
            } else {
                most * 3 / 5 + rng.below(most * 2 / 5)
            };
            let (mut left, mut t) = (total, t0);
            let (mut records, mut changes) = (Vec::new(), Vec::new());
            while left > 0 {
                let n = (1 + rng.below(10)).min(left);
                left -= n;
                let ids: Vec<String> = (0..n).map(|_| rng.instance_id()).collect();
                changes.extend(shutting_down(account, &ids, t));
                let source_ip = format!("10.1.{}.{}", rng.below(256), rng.below(256));
                records.push(
                    terminate_record(&Call {
                        caller: &caller,
                        account,
                        region: "us-east-1",
                        time: t,
                        instance_ids: &ids,
                        event_id: &rng.uuid(),
                        error: None,
                        source_ip: &source_ip,
                        user_agent: UA,
                        invoked_by: None,
                        already_terminated: 0,
                        session: "1705283922457",
                        access_key: "ASIAEXAMPLEKARPNTR",
                    })
                    .to_string(),
                );
                t += 2_000 + rng.below(4_000) as Millis;
            }
            let refs: Vec<&str> = records.iter().map(String::as_str).collect();
            write_gz(
                &out.join(file_name(
                    account,
                    "us-east-1",
                    t0,
                    &format!("nightly{d:03}"),
                )),
                &log_file(&refs),
            )?;
            write_gz(
                &out.join(format!(
                    "EventBridge/ec2-instance-state-change-{account}-night{d:03}.jsonl.gz"
                )),
                &changes.join("\n"),
            )?;
        }
        Ok(())
    })
}

/// EC2's own `shutting-down` event for each of `ids`, a second after the call at `t`.
fn shutting_down<'a>(
    account: &'a str,
    ids: &'a [impl AsRef<str>],
    t: Millis,
) -> impl Iterator<Item = String> + 'a {
    ids.iter().map(move |id| {
        let id = id.as_ref();
        state_change_event(
            account,
            "us-east-1",
            id,
            "shutting-down",
            t + 1000,
            &format!("sc-{id}"),
        )
        .to_string()
    })
}

/// EC2's own state-change events for every instance production's scenario terminated,
/// a second after each call, as an EventBridge archive export (JSON lines) holds them.
fn state_changes(out: &Path) -> Result<()> {
    let base = parse_event_time("2018-01-09T22:09:00Z").unwrap_or_default();
    let mut lines = Vec::new();
    for (account, record) in seed_scenario(base).iter().filter(|(a, _)| *a == PROD) {
        let t = record["eventTime"]
            .as_str()
            .and_then(parse_event_time)
            .unwrap_or_default();
        let items = record["requestParameters"]["instancesSet"]["items"].as_array();
        let ids: Vec<&str> = items
            .into_iter()
            .flatten()
            .filter_map(|i| i["instanceId"].as_str())
            .collect();
        lines.extend(shutting_down(account, &ids, t));
    }
    let path = out.join("EventBridge/ec2-instance-state-change-2018-01-09.jsonl.gz");
    write_gz(&path, &lines.join("\n"))
}

/// What the tripwire itself leaves in the trail on the scenario's day: the canary's
/// heartbeat every ten minutes in every account and region, silent for three hours in
/// one of them, and after the wipe someone lifting the containment policy by hand.
fn armed(out: &Path) -> Result<()> {
    let day = parse_event_time("2018-01-09T00:00:00Z").unwrap_or_default();
    for account in ACCOUNTS {
        for region in REGIONS {
            let beats: Vec<String> = (0..144)
                .filter(|k| {
                    !(account == ACCOUNTS[2] && region == REGIONS[1] && (60..78).contains(k))
                })
                .map(|k| {
                    canary_record(
                        account,
                        region,
                        day + k * 600_000,
                        &format!("canary-{account}-{region}-{k}"),
                    )
                    .to_string()
                })
                .collect();
            let refs: Vec<&str> = beats.iter().map(String::as_str).collect();
            write_gz(
                &out.join(file_name(account, region, day, "canary")),
                &log_file(&refs),
            )?;
        }
    }
    let lifted = serde_json::json!({
        "eventVersion": "1.08", "eventTime": "2018-01-09T22:31:07Z",
        "eventSource": "iam.amazonaws.com", "eventName": "DeleteRolePolicy",
        "awsRegion": "us-east-1", "eventID": "5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a",
        "eventType": "AwsApiCall", "recipientAccountId": PROD,
        "sourceIPAddress": "10.20.0.15", "userAgent": "aws-cli/1.14.20 Python/3.6.3",
        "userIdentity": {"type": "IAMUser", "principalId": "AIDAEXAMPLEVENDOR01", "accountId": PROD,
            "arn": format!("arn:aws:iam::{PROD}:user/vendor/integration"), "userName": "integration"},
        "requestParameters": {"roleName": "cleanup-task", "policyName": "tripwire-contain-scope"},
        "responseElements": null
    })
    .to_string();
    let t = parse_event_time("2018-01-09T22:30:00Z").unwrap_or_default();
    write_gz(
        &out.join(file_name(PROD, "us-east-1", t, "lifted")),
        &log_file(&[&lifted]),
    )
}

/// Writes the archive: noise files up to `size_mb`, the scenario, a redelivery, and
/// with `days`, that many nights of an autoscaler's routine up to the scenario's day, the
/// tripwire's own traces on it, and EC2's state-change events for production's instances.
pub fn run(out: &Path, size_mb: u64, days: u32) -> Result<()> {
    if days > 0 {
        nights(out, days)?;
        armed(out)?;
        state_changes(out)?;
    }
    let start = parse_event_time("2018-01-09T20:00:00Z").unwrap_or_default();
    let files = ((size_mb as usize) << 20).div_ceil(FILE_BYTES).max(1);
    (0..files).into_par_iter().try_for_each(|n| -> Result<()> {
        let mut rng = SplitMix(0x7269_7077 ^ n as u64);
        let (account, region) = (ACCOUNTS[n % 3], REGIONS[(n / 3) % 2]);
        let t0 = start + (n / 6) as Millis * FILE_SPAN;
        let mut body = String::with_capacity(FILE_BYTES + 4096);
        body.push_str("{\"Records\":[");
        let mut t = t0;
        while body.len() < FILE_BYTES {
            if body.len() > 12 {
                body.push(',');
            }
            t = (t + rng.below(400) as Millis).min(t0 + FILE_SPAN - 1);
            noise(&mut rng, t, account, region, &mut body);
        }
        body.push_str("]}");
        write_gz(
            &out.join(file_name(account, region, t0, &format!("n{n:05}"))),
            &body,
        )
    })?;
    let base = parse_event_time("2018-01-09T22:09:00Z").unwrap_or_default();
    let scenario: Vec<(&str, String)> = seed_scenario(base)
        .into_iter()
        .map(|(a, r)| (a, r.to_string()))
        .collect();
    let records: Vec<&str> = scenario.iter().map(|(_, r)| r.as_str()).collect();
    for account in [PROD, DEV] {
        let mine: Vec<&str> = scenario
            .iter()
            .filter(|(a, _)| *a == account)
            .map(|(_, r)| r.as_str())
            .collect();
        let t = parse_event_time("2018-01-09T22:05:00Z").unwrap_or_default();
        write_gz(
            &out.join(file_name(account, "us-east-1", t, "scenario")),
            &log_file(&mine),
        )?;
    }
    // CloudTrail may deliver a record more than once; the last ten incident calls again.
    let redelivered = &records[records.len() - 10..];
    let t = parse_event_time("2018-01-09T22:15:00Z").unwrap_or_default();
    write_gz(
        &out.join(file_name(PROD, "us-east-1", t, "redelivery")),
        &log_file(redelivered),
    )?;
    eprintln!(
        "wrote {files} noise files (~{size_mb} MB uncompressed), {days} nights of routine and the scenario to {}",
        out.display()
    );
    Ok(())
}
