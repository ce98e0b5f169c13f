//! A CloudTrail archive in S3, for the backtest: listings a level at a time and objects
//! gunzipped as they stream in. Standard credential chain and endpoint settings
//! (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_S3`, profiles, SSO); with a custom endpoint,
//! path-style addressing (what S3-compatible servers expect).

use async_compression::tokio::bufread::GzipDecoder;
use aws_sdk_s3::operation::list_objects_v2::{ListObjectsV2Error, ListObjectsV2Output};
use aws_sdk_s3::Client;
use aws_smithy_async::future::pagination_stream::PaginationStream;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

/// The archive's S3 client.
#[derive(Clone)]
pub struct Archive {
    s3: Client,
}

/// One page of a listing: keys, and the prefixes one level below when delimited.
#[derive(Debug, Default)]
pub struct Page {
    /// Object keys.
    pub keys: Vec<String>,
    /// Common prefixes (only with a delimiter).
    pub prefixes: Vec<String>,
}

/// A listing, page by page.
pub struct Pages {
    bucket: String,
    prefix: String,
    stream:
        PaginationStream<Result<ListObjectsV2Output, SdkError<ListObjectsV2Error, HttpResponse>>>,
}

impl Pages {
    /// The next page, or `None` at the end.
    pub async fn next(&mut self) -> Option<Result<Page, String>> {
        let page = self.stream.next().await?;
        Some(
            page.map(|p| Page {
                keys: p
                    .contents()
                    .iter()
                    .filter_map(|o| o.key())
                    .map(str::to_owned)
                    .collect(),
                prefixes: p
                    .common_prefixes()
                    .iter()
                    .filter_map(|c| c.prefix())
                    .map(str::to_owned)
                    .collect(),
            })
            .map_err(|e| {
                format!(
                    "listing s3://{}/{}: {}",
                    self.bucket,
                    self.prefix,
                    aws_sdk_s3::error::DisplayErrorContext(e)
                )
            }),
        )
    }
}

impl Archive {
    /// A client from the standard chain, path-style when the endpoint is custom.
    pub async fn connect() -> Result<Self, crate::Error> {
        let sdk = crate::load_sdk_config(crate::TlsRoots::System).await?;
        let custom_endpoint =
            sdk.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
        let conf = aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(custom_endpoint)
            .build();
        Ok(Archive {
            s3: Client::from_conf(conf),
        })
    }

    /// Lists `prefix` in `bucket`: one level (delimiter `/`) when `delimited`, else every
    /// key below.
    pub fn list(&self, bucket: &str, prefix: &str, delimited: bool) -> Pages {
        Pages {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            stream: self
                .s3
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .set_delimiter(delimited.then(|| "/".to_owned()))
                .into_paginator()
                .send(),
        }
    }

    /// Reads one object, gunzipping it as it streams in (gzip is known by its magic
    /// bytes).
    pub async fn read(&self, bucket: &str, key: &str) -> Result<Vec<u8>, String> {
        let got = self
            .s3
            .get_object()
            .bucket(bucket)
            .key(key)
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
}
