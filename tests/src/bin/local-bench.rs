//! `make bench-local`: the figures that need processes and the local stack, each beside
//! its baseline in the same run.
//!
//! 1. Cold start: process start to the first `/runtime/invocation/next` request, for the
//!    detector, the responder and a hello-world `lambda_runtime` binary, all release
//!    builds, against one minimal Runtime API on loopback; peak RSS and zip size.
//! 2. Time to containment: from invoking the threshold-crossing event to the policy
//!    being readable in IAM, over many runs, beside the same AWS calls made alone.
//! 3. Runaway: a cleanup script at the EC2 API's default throttle, until it is denied.

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tripwire_localstack::{binary, burst, Options, Stack, PROD};

const BASE: i64 = 1_515_535_740_000;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v
}

/// Reads one HTTP/1.1 request: (request line, body).
fn read_request(r: &mut BufReader<TcpStream>) -> Option<(String, Vec<u8>)> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut len = 0;
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        if h == "\r\n" || h.is_empty() {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some((line, body))
}

fn peak_rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmHWM:")
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// One cold start: (ms to the first /next, peak RSS in kB after serving one event).
fn cold_start(bin: &Path, env: &[(&str, String)]) -> (f64, u64) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut cmd = Command::new(bin);
    cmd.env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", format!("http://127.0.0.1:{port}"))
        .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "bench")
        .env("AWS_SECRET_ACCESS_KEY", "bench")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let start = Instant::now();
    let mut child = cmd.spawn().unwrap();
    let (mut init, mut nexts) = (None, 0);
    'serve: for stream in listener.incoming() {
        let stream = stream.unwrap();
        let mut w = stream.try_clone().unwrap();
        let mut r = BufReader::new(stream);
        while let Some((line, _)) = read_request(&mut r) {
            if line.contains("/runtime/invocation/next") {
                nexts += 1;
                if nexts == 1 {
                    init = Some(start.elapsed());
                    // One event that needs no AWS call, so RSS covers a real invocation.
                    let body = br#"{"hello":"tripwire"}"#;
                    let deadline = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_millis()
                        + 30_000;
                    let _ = write!(w, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: req-1\r\nLambda-Runtime-Deadline-Ms: {deadline}\r\nLambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:bench\r\nContent-Length: {}\r\n\r\n", body.len());
                    let _ = w.write_all(body);
                } else {
                    break 'serve;
                }
            } else {
                let _ = w.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n");
            }
        }
    }
    let rss = peak_rss_kb(child.id());
    let _ = child.kill();
    let _ = child.wait();
    (init.map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0), rss)
}

fn zip_size(bin: &Path) -> u64 {
    let out = std::env::temp_dir().join(format!(
        "tripwire-bench-{}.zip",
        bin.file_name().unwrap().to_string_lossy()
    ));
    let status = Command::new("python3")
        .args(["-c", "import sys, zipfile; zipfile.ZipFile(sys.argv[2], 'w', zipfile.ZIP_DEFLATED).write(sys.argv[1], 'bootstrap')"])
        .arg(bin)
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0)
}

fn cold_starts(runs: usize) -> Vec<String> {
    let config = [
        ("TRIPWIRE_POLICY", "threshold = 10".to_string()),
        ("TRIPWIRE_TABLE", "tripwire".into()),
        (
            "TRIPWIRE_TOPIC_ARN",
            "arn:aws:sns:us-east-1:123456789012:tripwire".into(),
        ),
        ("TRIPWIRE_RESPONDER_FUNCTION", "tripwire-responder".into()),
        ("TRIPWIRE_CONTAINMENT_ROLE", "tripwire-containment".into()),
    ];
    let mut rows = Vec::new();
    let mut hello_p50 = f64::NAN;
    for name in ["hello-lambda", "detector", "responder"] {
        let bin = binary(name);
        let mut inits = Vec::new();
        let mut rss = 0;
        // Interleaving would be fairer still; runs are many and short, and the
        // baseline runs first so a warm page cache favours the functions least.
        for _ in 0..runs {
            let (ms, kb) = cold_start(&bin, &config);
            inits.push(ms);
            rss = rss.max(kb);
        }
        let s = sorted(inits);
        let p50 = percentile(&s, 0.5);
        if name == "hello-lambda" {
            hello_p50 = p50;
        }
        rows.push(format!(
            "| cold start: {name} | {:.2} ms | {:.2} ms | {:.2}× | {:.1} MB | {:.2} MB |",
            p50,
            percentile(&s, 0.99),
            p50 / hello_p50,
            rss as f64 / 1024.0,
            zip_size(&bin) as f64 / 1_048_576.0
        ));
    }
    rows
}

/// Reads the last JSON log line containing `message` from a process log.
fn last_log(path: &Path, message: &str) -> Option<Value> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["fields"]["message"] == message)
}

fn aws_ms(v: &Value) -> Vec<(String, f64)> {
    let tally: Value =
        serde_json::from_str(v["fields"]["aws_ms"].as_str().unwrap_or("{}")).unwrap_or_default();
    tally
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_f64().unwrap_or(0.0)))
                .collect()
        })
        .unwrap_or_default()
}

/// The AWS calls of one containment, made alone by plain SDK clients against the same
/// moto, with the same shape: detector calls in order, then the alert beside the
/// responder's calls. Returns milliseconds.
async fn raw_calls(stack: &Stack, i: usize, assume: bool) -> f64 {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    let ddb = aws_sdk_dynamodb::Client::new(&stack.sdk);
    let sns = aws_sdk_sns::Client::new(&stack.sdk);
    let sts = aws_sdk_sts::Client::new(&stack.sdk);
    let iam = stack.iam_in(PROD);
    let pk = format!("RAW#{i}");
    let start = Instant::now();
    let put = |sk: &str| {
        ddb.put_item()
            .table_name(&stack.table)
            .item("pk", A::S(pk.clone()))
            .item("sk", A::S(sk.into()))
            .item("t", A::N("1".into()))
            .send()
    };
    put("E#1").await.unwrap();
    ddb.query()
        .table_name(&stack.table)
        .key_condition_expression("pk = :p")
        .expression_attribute_values(":p", A::S(pk.clone()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    ddb.get_item()
        .table_name(&stack.table)
        .key("pk", A::S(pk.clone()))
        .key("sk", A::S("CURRENT".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    put("CURRENT").await.unwrap();
    let update = |attr: &'static str| {
        ddb.update_item()
            .table_name(&stack.table)
            .key("pk", A::S(pk.clone()))
            .key("sk", A::S("CURRENT".into()))
            .update_expression(format!("SET {attr} = :t"))
            .expression_attribute_values(":t", A::Bool(true))
            .send()
    };
    let alert = async {
        sns.publish()
            .topic_arn(&stack.topic_arn)
            .subject("raw")
            .message("raw")
            .send()
            .await
            .unwrap();
        update("alerted").await.unwrap();
    };
    let contain = async {
        ddb.get_item()
            .table_name(&stack.table)
            .key("pk", A::S(pk.clone()))
            .key("sk", A::S("CURRENT".into()))
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        // The responder caches assumed-role credentials per account: only its first
        // containment in an account pays for AssumeRole, and so does the baseline.
        if assume {
            sts.assume_role()
                .role_arn(format!("arn:aws:iam::{PROD}:role/tripwire-containment"))
                .role_session_name("raw")
                .send()
                .await
                .unwrap();
        }
        for name in ["raw-a", "raw-b"] {
            iam.put_role_policy()
                .role_name(format!("bench-{i}"))
                .policy_name(name)
                .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*"}]}"#)
                .send()
                .await
                .unwrap();
        }
        update("contained").await.unwrap();
        sns.publish()
            .topic_arn(&stack.topic_arn)
            .subject("raw")
            .message("raw")
            .send()
            .await
            .unwrap();
        update("invoked").await.unwrap();
    };
    tokio::join!(alert, contain);
    update("done").await.unwrap();
    start.elapsed().as_secs_f64() * 1000.0
}

async fn containment(runs: usize) -> Vec<String> {
    let stack = Stack::start(Options::default()).await;
    for i in 0..runs {
        stack
            .iam_in(PROD)
            .create_role()
            .role_name(format!("bench-{i}"))
            .path("/bench/")
            .assume_role_policy_document("{}")
            .send()
            .await
            .unwrap();
    }
    let (mut totals, mut raws, mut overheads) = (Vec::new(), Vec::new(), Vec::new());
    let mut stages: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    for i in 0..runs {
        let events = burst(
            &format!("role/bench/bench-{i}@{PROD}"),
            None,
            BASE,
            10,
            1000,
            &format!("b{i}"),
        );
        for e in &events[..9] {
            stack.invoke(e).await.unwrap();
        }
        let start = Instant::now();
        let out = stack.invoke(&events[9]).await.unwrap();
        assert_eq!(out[0]["outcome"], "opened", "{out}");
        while stack
            .role_policies(PROD, &format!("bench-{i}"))
            .await
            .is_empty()
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let total = start.elapsed().as_secs_f64() * 1000.0;
        let raw = raw_calls(&stack, i, i == 0).await;
        totals.push(total);
        raws.push(raw);
        overheads.push(total - raw);
        let det =
            last_log(&stack.logs.join("detector-0.log"), "event processed").expect("detector log");
        let resp = last_log(
            &stack.logs.join("responder-0.log"),
            "containment request handled",
        )
        .expect("responder log");
        let (det_total, resp_total) = (
            det["fields"]["total_ms"].as_f64().unwrap_or(0.0),
            resp["fields"]["total_ms"].as_f64().unwrap_or(0.0),
        );
        let resp_aws: Vec<(String, f64)> = aws_ms(&resp);
        for (k, v) in aws_ms(&det).into_iter().chain(resp_aws.iter().cloned()) {
            let stage = match k.as_str() {
                k if k.starts_with("dynamodb") => "DynamoDB (both functions)",
                k if k.starts_with("sns") => "SNS publish (both functions)",
                k if k.starts_with("lambda") => {
                    "invoke (detector → responder, includes the responder)"
                }
                k if k.starts_with("sts") => "AssumeRole",
                k if k.starts_with("iam") => "PutRolePolicy",
                _ => "other AWS",
            };
            stages.entry(stage.into()).or_default().push(v);
        }
        // Wall time inside each function; the detector's includes the responder, since
        // the emulator runs the "asynchronous" invoke inline.
        stages
            .entry("detector, wall (handler start to return)".into())
            .or_default()
            .push(det_total);
        stages
            .entry("responder, wall".into())
            .or_default()
            .push(resp_total);
        let resp_compute = resp_total - resp_aws.iter().map(|(_, v)| v).sum::<f64>();
        stages
            .entry("responder compute (wall − its AWS calls)".into())
            .or_default()
            .push(resp_compute.max(0.0));
    }
    let (t, r, o) = (sorted(totals), sorted(raws), sorted(overheads));
    let mut rows = vec![
        format!("| time to containment (invoke → policy readable), {runs} runs | p50 {:.1} ms | p99 {:.1} ms | | | |", percentile(&t, 0.5), percentile(&t, 0.99)),
        format!("| the same AWS calls made alone (baseline) | p50 {:.1} ms | p99 {:.1} ms | | | |", percentile(&r, 0.5), percentile(&r, 0.99)),
        format!("| **project overhead** (total − baseline) | p50 {:.1} ms | p99 {:.1} ms | | | |", percentile(&o, 0.5), percentile(&o, 0.99)),
    ];
    for (stage, v) in stages {
        let s = sorted(v);
        rows.push(format!(
            "| stage: {stage} | p50 {:.2} ms | p99 {:.2} ms | | | |",
            percentile(&s, 0.5),
            percentile(&s, 0.99)
        ));
    }
    rows
}

/// A cleanup script at the EC2 API's default throttle (a bucket of 100 calls refilled at
/// 5/s), one instance per call, `call_ms` per API call, until its calls are denied.
async fn runaway(call_ms: u64) -> String {
    let stack = std::sync::Arc::new(Stack::start(Options::default()).await);
    stack
        .iam_in(PROD)
        .create_role()
        .role_name("runaway")
        .path("/vendor/")
        .assume_role_policy_document("{}")
        .send()
        .await
        .unwrap();
    let (mut tokens, mut refilled) = (100.0f64, Instant::now());
    let (mut terminated, mut crossed_at) = (0usize, None);
    let mut deliveries = Vec::new();
    loop {
        tokens = (tokens + refilled.elapsed().as_secs_f64() * 5.0).min(100.0);
        refilled = Instant::now();
        if tokens < 1.0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        tokens -= 1.0;
        tokio::time::sleep(Duration::from_millis(call_ms)).await;
        // EC2 checks IAM: once the deny is in place, the call fails and the script stops.
        if !stack.role_policies(PROD, "runaway").await.is_empty() {
            break;
        }
        terminated += 1;
        if terminated == 10 {
            crossed_at = Some(terminated);
        }
        // CloudTrail hands the call to EventBridge, which delivers it on its own.
        let e = burst(
            &format!("role/vendor/runaway@{PROD}"),
            None,
            BASE + terminated as i64 * 200,
            1,
            1,
            &format!("run{terminated}"),
        )
        .remove(0);
        let s = stack.clone();
        deliveries.push(tokio::spawn(async move { s.invoke(&e).await }));
        if terminated > 1000 {
            break;
        }
    }
    for d in deliveries {
        let _ = d.await;
    }
    let after = terminated - crossed_at.unwrap_or(terminated);
    format!(
        "| runaway script, {call_ms} ms per call | {after} terminated after the threshold | ({terminated} in all) | {} | | |",
        if after == 0 { "contained before its next call" } else { "not before its next call" }
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let mut rows = vec![
        "| measure | p50 | p99 | ratio to baseline | peak RSS | zip |".to_string(),
        "|---|---:|---:|---:|---:|---:|".to_string(),
    ];
    eprintln!("cold starts ({runs} each)...");
    rows.extend(cold_starts(runs));
    eprintln!("time to containment ({runs} runs)...");
    rows.extend(containment(runs).await);
    eprintln!("runaway simulations...");
    for call_ms in [0, 50, 150] {
        rows.push(runaway(call_ms).await);
    }
    let report = rows.join("\n");
    println!("{report}");
    let out = tripwire_localstack::repo().join(".work");
    let _ = std::fs::create_dir_all(&out);
    let _ = std::fs::write(out.join("bench-local.md"), &report);
}
