//! Backtests straight from S3: list what the CloudTrail key layout admits, then read
//! objects in parallel, gunzipping each as it streams in. Standard credential chain and
//! endpoint settings (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_S3`, profiles, SSO); with a
//! custom endpoint, path-style addressing (what S3-compatible servers expect).

use crate::backtest::{scan_text, Narrow, Progress, Totals};
use anyhow::{Context, Result};
use async_compression::tokio::bufread::GzipDecoder;
use aws_sdk_s3::Client;
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

/// Listings and reads in flight at once.
const CONCURRENCY: usize = 32;

/// An `s3://BUCKET/PREFIX` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri {
    /// The bucket.
    pub bucket: String,
    /// The key prefix (may be empty).
    pub prefix: String,
}

impl Uri {
    /// Parses `s3://BUCKET[/PREFIX]`; `None` when `s` is not an S3 URI.
    pub fn parse(s: &str) -> Option<Result<Uri>> {
        let rest = s.strip_prefix("s3://")?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Some(Err(anyhow::anyhow!("{s}: no bucket")));
        }
        Some(Ok(Uri {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        }))
    }
}

/// An object to read.
struct Object {
    bucket: String,
    key: String,
}

async fn client() -> Result<Client> {
    let sdk = tripwire_aws::load_sdk_config(tripwire_aws::TlsRoots::System).await?;
    let custom_endpoint =
        sdk.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
    let conf = aws_sdk_s3::config::Builder::from(&sdk)
        .force_path_style(custom_endpoint)
        .build();
    Ok(Client::from_conf(conf))
}

/// One listing: with `/` as delimiter while the layout can still narrow, or every key
/// below once it cannot. Keys go to `found` page by page, as they are listed; the
/// prefixes below are returned, to list next. Returns how many keys it sent.
async fn list_level(
    s3: &Client,
    bucket: &str,
    prefix: String,
    narrow: &Narrow,
    progress: &Progress,
    found: &tokio::sync::mpsc::Sender<Object>,
) -> Result<(usize, Vec<String>)> {
    let flat = narrow.settled(&prefix);
    let mut sent = 0;
    let mut below = Vec::new();
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(&prefix)
        .set_delimiter((!flat).then(|| "/".to_owned()))
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.with_context(|| format!("listing s3://{bucket}/{prefix}"))?;
        let keys: Vec<&str> = page
            .contents()
            .iter()
            .filter_map(|o| o.key())
            .filter(|k| crate::backtest::wanted_name(k) && narrow.admits(k))
            .collect();
        progress.add_files(keys.len());
        for key in keys {
            let o = Object {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            };
            // The readers stop early only when the run has failed.
            if found.send(o).await.is_err() {
                return Ok((sent, below));
            }
            sent += 1;
        }
        below.extend(
            page.common_prefixes()
                .iter()
                .filter_map(|p| p.prefix())
                .filter(|p| narrow.admits(p))
                .map(str::to_owned),
        );
    }
    Ok((sent, below))
}

/// Sends every object under `uri` the layout admits to `found`; prefixes it rules out
/// are never listed. Returns how many it sent.
async fn list(
    s3: &Client,
    uri: &Uri,
    narrow: &Narrow,
    progress: &Progress,
    found: &tokio::sync::mpsc::Sender<Object>,
) -> Result<usize> {
    let mut queue = vec![uri.prefix.clone()];
    let mut running = FuturesUnordered::new();
    let mut n = 0;
    loop {
        while running.len() < CONCURRENCY {
            let Some(p) = queue.pop() else { break };
            running.push(list_level(s3, &uri.bucket, p, narrow, progress, found));
        }
        let Some(done) = running.next().await else {
            break;
        };
        let (sent, below) = done?;
        n += sent;
        queue.extend(below);
    }
    Ok(n)
}

/// Reads one object, gunzipping it as it streams in (gzip is known by its magic bytes).
async fn read(s3: &Client, o: &Object) -> std::result::Result<Vec<u8>, String> {
    let got = s3
        .get_object()
        .bucket(&o.bucket)
        .key(&o.key)
        .send()
        .await
        .map_err(|e| format!("GetObject: {}", aws_sdk_s3::error::DisplayErrorContext(e)))?;
    let mut body = BufReader::new(got.body.into_async_read());
    let gzip = body
        .fill_buf()
        .await
        .map_err(|e| e.to_string())?
        .starts_with(&[0x1f, 0x8b]);
    let mut bytes = Vec::new();
    if gzip {
        let mut d = GzipDecoder::new(body);
        d.multiple_members(true);
        d.read_to_end(&mut bytes).await
    } else {
        body.read_to_end(&mut bytes).await
    }
    .map_err(|e| format!("reading: {e}"))?;
    Ok(bytes)
}

/// Lists and scans every object under `uris`, reading while the listing goes on, and
/// folds each file into the totals as it is scanned.
pub fn scan(uris: &[Uri], narrow: &Narrow, progress: &Progress) -> Result<Totals> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let s3 = client().await?;
        let s3 = &s3;
        let (found, objects) = tokio::sync::mpsc::channel::<Object>(4 * CONCURRENCY);
        let listing = async move {
            for u in uris {
                if list(s3, u, narrow, progress, &found).await? == 0 {
                    eprintln!(
                        "s3://{}/{}: no CloudTrail files {}",
                        u.bucket,
                        u.prefix,
                        if narrow.is_empty() {
                            "there"
                        } else {
                            "the filters admit there"
                        }
                    );
                }
            }
            // Dropping the sender ends the readers' stream.
            anyhow::Ok(())
        };
        let objects = futures_util::stream::unfold(objects, |mut rx| async move {
            rx.recv().await.map(|o| (o, rx))
        });
        let reading = objects
            .map(|o| async move {
                let name = format!("s3://{}/{}", o.bucket, o.key);
                let bytes = read(s3, &o).await;
                // Scanning is CPU work: off the runtime's threads.
                tokio::task::spawn_blocking(move || scan_text(&name, bytes))
                    .await
                    .map_err(|e| anyhow::anyhow!("a scan panicked: {e}"))
            })
            .buffer_unordered(CONCURRENCY)
            .fold(Ok(Totals::default()), |t: Result<Totals>, s| async move {
                let s = s?;
                progress.file_done(&s);
                Ok(t?.add(s))
            });
        let (listed, totals) = tokio::join!(listing, reading);
        listed?;
        totals
    })
}
