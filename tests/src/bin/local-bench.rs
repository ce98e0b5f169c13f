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
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tripwire_localstack::{binary_in, Burst, Options, Stack, PROD};

/// Ten minutes ago, on a whole minute: the real functions read the system clock, and a
/// burst older than its window plus `max_delivery_delay` is history they never contain.
static BASE: std::sync::LazyLock<i64> = std::sync::LazyLock::new(tripwire_localstack::recent);

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

/// Serves one Runtime API connection: the first `/next` of the process gets one event
/// needing no AWS call, so RSS covers a real invocation; the second `/next` means that
/// invocation is done. Everything else is acknowledged. Sends the first `/next`'s time and
/// the second's arrival on `tx`.
fn serve_runtime_api(
    stream: TcpStream,
    nexts: &std::sync::atomic::AtomicUsize,
    start: Instant,
    tx: &std::sync::mpsc::Sender<Option<Duration>>,
) {
    let Ok(mut w) = stream.try_clone() else {
        return;
    };
    let mut r = BufReader::new(stream);
    while let Some((line, _)) = read_request(&mut r) {
        if !line.contains("/runtime/invocation/next") {
            let _ = w.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n");
            continue;
        }
        if nexts.fetch_add(1, std::sync::atomic::Ordering::SeqCst) > 0 {
            let _ = tx.send(None);
            return;
        }
        let _ = tx.send(Some(start.elapsed()));
        let body = br#"{"hello":"tripwire"}"#;
        let deadline = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
            + 30_000;
        let _ = write!(w, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: req-1\r\nLambda-Runtime-Deadline-Ms: {deadline}\r\nLambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:bench\r\nContent-Length: {}\r\n\r\n", body.len());
        let _ = w.write_all(body);
    }
}

/// One cold start: (ms to the first /next, peak RSS in kB after serving one event).
/// Each connection is served on its own thread, as the real Runtime API would: the
/// runtime client may open more than one.
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
    let (tx, rx) = std::sync::mpsc::channel();
    let start = Instant::now();
    let mut child = cmd.spawn().unwrap();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let accepting = {
        let done = done.clone();
        std::thread::spawn(move || {
            let nexts = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
            for stream in listener.incoming().flatten() {
                if done.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let (nexts, tx) = (nexts.clone(), tx.clone());
                std::thread::spawn(move || serve_runtime_api(stream, &nexts, start, &tx));
            }
        })
    };
    let timeout = Duration::from_secs(10);
    let init = rx.recv_timeout(timeout).ok().flatten();
    let served = init.is_some() && rx.recv_timeout(timeout).is_ok();
    let rss = peak_rss_kb(child.id());
    let _ = child.kill();
    let _ = child.wait();
    // Wake the accept loop so it ends with this run instead of outliving it.
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = TcpStream::connect(("127.0.0.1", port));
    let _ = accepting.join();
    assert!(
        served,
        "{} did not start and serve one event within {timeout:?}",
        bin.display()
    );
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
    // Several Cargo profiles can be compared in one run (scripts/bench-profiles.sh);
    // each function's ratio is to the hello-world built with the same profile.
    let profiles: Vec<String> = std::env::var("COLD_PROFILES")
        .or_else(|_| std::env::var("TRIPWIRE_PROFILE"))
        .unwrap_or_else(|_| "release".into())
        .split(',')
        .map(str::to_owned)
        .collect();
    // (binary, label, extra environment). The functions run a current-thread runtime;
    // the standard hello-world (`#[tokio::main]`) starts worker threads, so both
    // hello-worlds are measured and each function's ratio is given to both.
    let current_thread = [("HELLO_RUNTIME", "current_thread".to_string())];
    let kinds = [
        ("hello-lambda", "hello-world", &[][..]),
        (
            "hello-lambda",
            "hello-world, current-thread",
            &current_thread,
        ),
        ("detector", "detector", &[]),
        ("responder", "responder", &[]),
    ];
    let bins: Vec<(String, usize, PathBuf)> = profiles
        .iter()
        .flat_map(|p| (0..kinds.len()).map(|k| (p.clone(), k, binary_in(p, kinds[k].0))))
        .collect();
    let mut inits = vec![Vec::new(); bins.len()];
    let mut rss = vec![0u64; bins.len()];
    // Interleaved, one of each in turn, so drift on a noisy machine hits all alike.
    for _ in 0..runs {
        for (i, (_, k, bin)) in bins.iter().enumerate() {
            let env: Vec<(&str, String)> = config.iter().chain(kinds[*k].2).cloned().collect();
            let (ms, kb) = cold_start(bin, &env);
            inits[i].push(ms);
            rss[i] = rss[i].max(kb);
        }
    }
    let inits: Vec<Vec<f64>> = inits.into_iter().map(sorted).collect();
    let p50s: Vec<f64> = inits.iter().map(|s| percentile(s, 0.5)).collect();
    let mut rows = Vec::new();
    for (i, (profile, k, bin)) in bins.iter().enumerate() {
        // The hello-worlds of the same profile: the first two of each group.
        let group = i - k;
        let ratio = match k {
            0 => "1.00×".to_string(),
            1 => format!("{:.2}×", p50s[i] / p50s[group]),
            _ => format!(
                "{:.2}× hello-world; {:.2}× current-thread",
                p50s[i] / p50s[group],
                p50s[i] / p50s[group + 1]
            ),
        };
        let label = if profiles.len() > 1 {
            format!("{} ({profile})", kinds[*k].1)
        } else {
            kinds[*k].1.to_string()
        };
        rows.push(format!(
            "| cold start: {label} | {:.2} ms | {:.2} ms | {ratio} | {:.1} MB | {:.2} MB |",
            p50s[i],
            percentile(&inits[i], 0.99),
            rss[i] as f64 / 1024.0,
            zip_size(bin) as f64 / 1_048_576.0
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

fn aws_ms(v: &Value) -> BTreeMap<String, f64> {
    serde_json::from_str(v["fields"]["aws_ms"].as_str().unwrap_or("{}")).unwrap_or_default()
}

/// The AWS calls of one containment, made alone by plain SDK clients against the same
/// moto, with the same shape and the same end: the delivery and the detector's calls in
/// order (items, conditions and window size as the detector's), then the alert beside
/// the responder's invoke and calls, then the same "is the policy readable" poll. Lambda
/// Invoke hops go to a no-op function through the same emulator. `k` keeps repeated
/// baselines apart. Returns milliseconds; the DynamoDB and SNS calls are tallied by the
/// same stage timer the functions use.
async fn raw_calls(stack: &Stack, i: usize, k: usize, assume: bool) -> f64 {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    use tripwire_aws::store::{event_sk, incident_pk, window_pk};
    // Timed by the same stage timer as the functions' clients.
    let ddb: aws_sdk_dynamodb::Client = tripwire_aws::client(&stack.sdk);
    let sns: aws_sdk_sns::Client = tripwire_aws::client(&stack.sdk);
    let sts = aws_sdk_sts::Client::new(&stack.sdk);
    let iam = stack.iam_in(PROD);
    // The store's own key layout, for a principal of this baseline's own.
    let key = tripwire_engine::Key::new(
        tripwire_engine::window::Lane::Burst,
        &format!("arn:aws:iam::{PROD}:role/bench/raw-{i}-{k}"),
        PROD,
    );
    let (window, incident) = (window_pk(&key), incident_pk(&key));
    let call_sk = |n: usize| event_sk('E', *BASE + n as i64, &format!("raw-{n}"));
    let call = |n: usize| {
        ddb.put_item()
            .table_name(&stack.table)
            .item("pk", A::S(window.clone()))
            .item("sk", A::S(call_sk(n)))
            .item("t", A::N((*BASE as usize + n).to_string()))
            .item("done", A::Bool(false))
            .item("lease", A::N((*BASE).to_string()))
            .item("expires", A::N((*BASE).to_string()))
            .item("ids", A::Ss(vec![format!("i-{n:017x}")]))
            .condition_expression("attribute_not_exists(pk)")
            .send()
    };
    // The window's first nine calls, as the detector's earlier invocations left them.
    for n in 0..9 {
        call(n).await.unwrap();
    }
    tripwire_aws::stages::reset();
    let hop = serde_json::json!({ "raw": i });
    let start = Instant::now();
    // EventBridge's delivery to the detector.
    stack.invoke_hello(&hop).await.unwrap();
    call(9).await.unwrap();
    ddb.query()
        .table_name(&stack.table)
        .key_condition_expression("pk = :p AND sk BETWEEN :a AND :b")
        .expression_attribute_values(":p", A::S(window.clone()))
        .expression_attribute_values(":a", A::S(event_sk('E', *BASE - 300_000, "")))
        .expression_attribute_values(":b", A::S(event_sk('E', *BASE + 300_001, "")))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    let current = || {
        ddb.get_item()
            .table_name(&stack.table)
            .key("pk", A::S(incident.clone()))
            .key("sk", A::S("CURRENT".into()))
            .consistent_read(true)
            .send()
    };
    current().await.unwrap();
    ddb.put_item()
        .table_name(&stack.table)
        .item("pk", A::S(incident.clone()))
        .item("sk", A::S("CURRENT".into()))
        .item("id", A::S(format!("raw-{i}-{k}")))
        .item("first", A::N((*BASE).to_string()))
        .item("last", A::N((*BASE).to_string()))
        .item(
            "ids",
            A::Ss((0..10).map(|n| format!("i-{n:017x}")).collect()),
        )
        .item(
            "principal",
            A::S(format!("arn:aws:iam::{PROD}:role/bench/bench-{i}")),
        )
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await
        .unwrap();
    let update = |attr: &'static str| {
        ddb.update_item()
            .table_name(&stack.table)
            .key("pk", A::S(incident.clone()))
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
        // The detector's invoke of the responder.
        stack.invoke_hello(&hop).await.unwrap();
        current().await.unwrap();
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
    assert!(!stack
        .role_policy_names(PROD, &format!("bench-{i}"))
        .await
        .is_empty());
    let elapsed = start.elapsed().as_secs_f64() * 1000.0;
    // moto slows as the table grows: the baseline leaves nothing behind, so it adds no
    // drift to the runs after it.
    let deletes = (0..10)
        .map(|n| (window.clone(), call_sk(n)))
        .chain([(incident.clone(), "CURRENT".to_string())])
        .map(|(pk, sk)| {
            aws_sdk_dynamodb::types::WriteRequest::builder()
                .delete_request(
                    aws_sdk_dynamodb::types::DeleteRequest::builder()
                        .key("pk", A::S(pk))
                        .key("sk", A::S(sk))
                        .build()
                        .unwrap(),
                )
                .build()
        })
        .collect();
    ddb.batch_write_item()
        .request_items(&stack.table, deletes)
        .send()
        .await
        .unwrap();
    elapsed
}

/// The stage an AWS operation belongs to, in the breakdown.
fn stage_of(op: &str) -> &'static str {
    match op {
        k if k.starts_with("dynamodb") => "DynamoDB (both functions)",
        k if k.starts_with("sns") => "SNS publish (both functions)",
        k if k.starts_with("lambda") => "invoke (detector → responder, includes the responder)",
        k if k.starts_with("sts") => "AssumeRole",
        k if k.starts_with("iam") => "PutRolePolicy",
        _ => "other AWS",
    }
}

/// Sums a `service:Operation` tally by stage.
fn by_stage(tally: impl IntoIterator<Item = (String, f64)>) -> BTreeMap<&'static str, f64> {
    let mut out = BTreeMap::new();
    for (op, ms) in tally {
        *out.entry(stage_of(&op)).or_default() += ms;
    }
    out
}

/// Containment `i` through the functions, then its baseline twice. Returns (total,
/// baseline, second baseline, the functions' own time), and adds to the stage
/// breakdowns.
async fn containment_run(
    stack: &Stack,
    i: usize,
    stages: &mut BTreeMap<&'static str, Vec<f64>>,
    alone: &mut BTreeMap<&'static str, Vec<f64>>,
) -> (f64, f64, f64, f64) {
    let events = Burst::new(&format!("role/bench/bench-{i}@{PROD}"), &format!("b{i}"))
        .at(*BASE)
        .calls(10)
        .step(1000)
        .envelopes();
    for e in &events[..9] {
        stack.invoke(e).await.unwrap();
    }
    let start = Instant::now();
    let out = stack.invoke(&events[9]).await.unwrap();
    assert_eq!(out[0]["outcome"], "opened", "{out}");
    while stack
        .role_policy_names(PROD, &format!("bench-{i}"))
        .await
        .is_empty()
    {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let total = start.elapsed().as_secs_f64() * 1000.0;
    // The baseline twice: its run-to-run difference is the noise floor of a paired
    // difference, below which a per-run overhead cannot be resolved.
    let raw = raw_calls(stack, i, 0, i == 0).await;
    for (stage, ms) in by_stage(tripwire_aws::stages::take()) {
        alone.entry(stage).or_default().push(ms);
    }
    let again = raw_calls(stack, i, 1, false).await;

    let det =
        last_log(&stack.logs.join("detector-0.log"), "event processed").expect("detector log");
    let resp = last_log(
        &stack.logs.join("responder-0.log"),
        "containment request handled",
    )
    .expect("responder log");
    let ms = |v: &Value| v["fields"]["total_ms"].as_f64().unwrap_or(0.0);
    let own = |v: &Value| v["fields"]["own_ms"].as_f64().expect("own_ms in the log");
    for (stage, v) in by_stage(aws_ms(&det).into_iter().chain(aws_ms(&resp))) {
        stages.entry(stage).or_default().push(v);
    }
    // Wall time inside each function; the detector's includes the responder, since the
    // emulator runs the "asynchronous" invoke inline.
    for (stage, v) in [
        ("detector, wall (handler start to return)", ms(&det)),
        ("responder, wall", ms(&resp)),
        ("detector, own time", own(&det)),
        ("responder, own time", own(&resp)),
    ] {
        stages.entry(stage).or_default().push(v);
    }
    (total, raw, again, own(&det) + own(&resp))
}

async fn containment(runs: usize) -> Vec<String> {
    let stack = Stack::start(Options {
        hello: true,
        ..Options::default()
    })
    .await;
    for i in 0..=runs {
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
    let (mut stages, mut alone) = (BTreeMap::new(), BTreeMap::new());
    // The first containment is reported on its own: the responder's first invocation
    // opens its connections and assumes the role, and so does the baseline's.
    let first = containment_run(&stack, 0, &mut stages, &mut alone).await;
    let first_own = first.3;
    let (mut stages, mut alone) = (BTreeMap::new(), BTreeMap::new());
    let (mut totals, mut raws, mut overheads, mut noise, mut owns) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 1..=runs {
        let (total, raw, again, own) = containment_run(&stack, i, &mut stages, &mut alone).await;
        owns.push(own);
        totals.push(total);
        raws.push(raw);
        overheads.push(total - raw);
        noise.push(again - raw);
    }
    let (t, r, o, n) = (
        sorted(totals),
        sorted(raws),
        sorted(overheads),
        sorted(noise),
    );
    let own = sorted(owns);
    let p = |v: &[f64]| (percentile(v, 0.5), percentile(v, 0.99));
    let row = |what: &str, (p50, p99): (f64, f64)| {
        format!("| {what} | p50 {p50:.1} ms | p99 {p99:.1} ms | | | |")
    };
    let mut rows = vec![
        format!(
            "| first containment (responder's first call, AssumeRole) | {:.1} ms | | baseline {:.1} ms; own time {first_own:.1} ms | | |",
            first.0, first.1
        ),
        row(
            &format!("time to containment (invoke → policy readable), next {runs} runs"),
            p(&t),
        ),
        row("the same AWS calls and invokes made alone (baseline)", p(&r)),
        row(
            "**project overhead**, by percentile (total's − baseline's)",
            (p(&t).0 - p(&r).0, p(&t).1 - p(&r).1),
        ),
        row(
            "**project overhead**, measured inside: the functions' own time (wall − time with an AWS call in flight), detector + responder",
            p(&own),
        ),
        row("project overhead, per run (total − that run's baseline)", p(&o)),
        row("noise floor: baseline − baseline, per run", p(&n)),
    ];
    for (stage, v) in stages {
        let (p50, p99) = p(&sorted(v));
        let base = alone.remove(stage).map_or(String::new(), |a| {
            let (b50, b99) = p(&sorted(a));
            format!("alone: p50 {b50:.2} ms, p99 {b99:.2} ms")
        });
        rows.push(format!(
            "| stage: {stage} | p50 {p50:.2} ms | p99 {p99:.2} ms | {base} | | |"
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
        let e = Burst::new(
            &format!("role/vendor/runaway@{PROD}"),
            &format!("run{terminated}"),
        )
        .at(*BASE + terminated as i64 * 200)
        .calls(1)
        .step(1)
        .envelopes()
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

/// The first page's cost to the project: the detector's own time (wall minus the time
/// with an AWS call in flight) on the event that crosses the threshold, for a shutdown
/// wave (EC2's state-change events, 50 instances) beside a CloudTrail burst (10 calls),
/// alert-only both, on one stack, interleaved. The invocation's own time bounds the time
/// from the event to the page's publish call from above.
async fn first_page(runs: usize) -> Vec<String> {
    let stack = Stack::start(Options {
        policy: tripwire_localstack::POLICY
            .replace("containment = \"revoke\"", "containment = \"off\""),
        ..Options::default()
    })
    .await;
    let own = |v: &Value| v["fields"]["own_ms"].as_f64().expect("own_ms in the log");
    let log = stack.logs.join("detector-0.log");
    let (mut wave, mut burst) = (Vec::new(), Vec::new());
    for i in 0..runs {
        // A pair of its own per run: the account's last digits.
        let account = format!("2222222{i:05}");
        let changes = Burst::new(&format!("role/bench/wave@{account}"), &format!("w{i}"))
            .at(*BASE)
            .calls(50)
            .step(200)
            .state_changes("shutting-down", 1000);
        for e in &changes[..49] {
            stack.invoke(e).await.unwrap();
        }
        let out = stack.invoke(&changes[49]).await.unwrap();
        assert_eq!(out[0]["result"], "opened", "{out}");
        wave.push(own(
            &last_log(&log, "event processed").expect("detector log")
        ));
        let calls = Burst::new(&format!("role/bench/burst-{i}@{PROD}"), &format!("c{i}"))
            .at(*BASE)
            .calls(10)
            .step(1000)
            .envelopes();
        for e in &calls[..9] {
            stack.invoke(e).await.unwrap();
        }
        let out = stack.invoke(&calls[9]).await.unwrap();
        assert_eq!(out[0]["outcome"], "opened", "{out}");
        burst.push(own(
            &last_log(&log, "event processed").expect("detector log")
        ));
    }
    let p = |v: &[f64]| (percentile(v, 0.5), percentile(v, 0.99));
    let (w, b) = (p(&sorted(wave)), p(&sorted(burst)));
    vec![
        format!(
            "| first page of a shutdown wave: detector's own time on the crossing event ({runs} runs) | {:.2} ms | {:.2} ms | p99 {:.2}x the CloudTrail burst's | | |",
            w.0, w.1, w.1 / b.1
        ),
        format!(
            "| first page of a CloudTrail burst (alert-only): detector's own time on the crossing call | {:.2} ms | {:.2} ms | baseline | | |",
            b.0, b.1
        ),
    ]
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
    // ONLY=cold,containment,wave,runaway picks parts; all by default.
    let only = std::env::var("ONLY").unwrap_or_default();
    let part = |name: &str| only.is_empty() || only.split(',').any(|p| p.trim() == name);
    if part("cold") {
        eprintln!("cold starts ({runs} each)...");
        rows.extend(cold_starts(runs));
    }
    if part("containment") {
        eprintln!("time to containment ({runs} runs)...");
        rows.extend(containment(runs).await);
    }
    if part("wave") {
        eprintln!("first pages, wave beside burst ({runs} runs)...");
        rows.extend(first_page(runs).await);
    }
    if part("runaway") {
        eprintln!("runaway simulations...");
        for call_ms in [0, 50, 150] {
            rows.push(runaway(call_ms).await);
        }
    }
    let report = rows.join("\n");
    println!("{report}");
    let out = tripwire_localstack::repo().join(".work");
    let _ = std::fs::create_dir_all(&out);
    let _ = std::fs::write(out.join("bench-local.md"), &report);
}
