//! Backtests straight from S3: list what the CloudTrail key layout admits, then read
//! objects in parallel as the listing goes on (the client is the adapter's
//! [`Archive`]).

use crate::reading::{scan_text, wanted_name, Narrow, Progress, Totals};
use anyhow::Result;
use futures_util::stream::{FuturesUnordered, StreamExt};
use tripwire_aws::archive::Archive;

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

/// One listing: with `/` as delimiter while the layout can still narrow, or every key
/// below once it cannot. Keys go to `found` page by page, as they are listed; the
/// prefixes below are returned, to list next. Returns how many keys it sent.
async fn list_level(
    s3: &Archive,
    bucket: &str,
    prefix: String,
    narrow: &Narrow,
    progress: &Progress,
    found: &tokio::sync::mpsc::Sender<Object>,
) -> Result<(usize, Vec<String>)> {
    let flat = narrow.settled(&prefix);
    let mut sent = 0;
    let mut below = Vec::new();
    let mut pages = s3.list(bucket, &prefix, !flat);
    while let Some(page) = pages.next().await {
        let page = page.map_err(anyhow::Error::msg)?;
        let keys: Vec<&String> = page
            .keys
            .iter()
            .filter(|k| wanted_name(k) && narrow.admits(k))
            .collect();
        progress.add_files(keys.len());
        for key in keys {
            let o = Object {
                bucket: bucket.to_owned(),
                key: key.clone(),
            };
            // The readers stop early only when the run has failed.
            if found.send(o).await.is_err() {
                return Ok((sent, below));
            }
            sent += 1;
        }
        below.extend(page.prefixes.into_iter().filter(|p| narrow.admits(p)));
    }
    Ok((sent, below))
}

/// Sends every object under `uri` the layout admits to `found`; prefixes it rules out
/// are never listed. Returns how many it sent.
async fn list(
    s3: &Archive,
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

/// Lists and scans every object under `uris`, reading while the listing goes on, and
/// folds each file into the totals as it is scanned.
pub fn scan(uris: &[Uri], narrow: &Narrow, progress: &Progress) -> Result<Totals> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let s3 = Archive::connect().await?;
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
                let bytes = s3.read(&o.bucket, &o.key).await;
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
