//! The real [`BlobStore`]: Blob REST requests sent through the Azure SDK's `azure_core`
//! pipeline (retry policy, user agent, request ids, the credential's policy, reqwest transport).
//!
//! The generated `azure_storage_blob` clients are not used for the read path: their listing
//! has no `delimiter`, and a ranged, ETag-pinned read needs raw status, headers and body.
//! Building the three requests ourselves on the same pipeline keeps one mechanism for all.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use azure_core::http::headers::{HeaderName, Headers};
use azure_core::http::{
    ClientOptions, Context, ExponentialRetryOptions, Method, Pipeline, PipelineStreamOptions,
    Request, RetryOptions, StatusCode, Transport, Url,
};
use bytes::Bytes;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;

use super::list_xml::{is_folder_metadata, parse_http_date, parse_list_page};
use super::{BlobInfo, BlobStore, ListPage, StoreError};
use crate::auth::Credential;
use crate::redact::scrub;
use crate::source::ContainerSource;

/// The REST API version we speak (bearer tokens need 2017-11-09 or newer).
const API_VERSION: &str = "2021-08-06";

/// Query values: everything but unreserved characters is escaped (a space is `%20`).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Timeouts and retries for storage calls.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
    /// Longest wait for the next bytes of an answer.
    pub read_timeout: Duration,
    /// Retries of transient failures (408, 429, 5xx, connection errors).
    pub max_retries: u32,
    /// Bound on the whole call, retries included.
    pub max_elapsed: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            max_retries: 4,
            max_elapsed: Duration::from_secs(60),
        }
    }
}

/// A container (or prefix of it) reached over HTTP(S).
#[derive(Debug, Clone)]
pub struct AzureBlobStore {
    source: Arc<ContainerSource>,
    pipeline: Pipeline,
}

impl AzureBlobStore {
    pub fn new(
        source: ContainerSource,
        credential: Arc<dyn Credential>,
        options: &StoreOptions,
    ) -> Result<Self, StoreError> {
        let http = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .read_timeout(options.read_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(64)
            .tls_certs_merge(extra_roots()?)
            .build()
            .map_err(|e| StoreError::Protocol(format!("cannot build the HTTP client: {e}")))?;
        let client_options = ClientOptions {
            transport: Some(Transport::new(Arc::new(http))),
            retry: RetryOptions::exponential(ExponentialRetryOptions {
                initial_delay: azure_core::time::Duration::milliseconds(200),
                max_retries: options.max_retries,
                max_total_elapsed: azure_core::time::Duration::try_from(options.max_elapsed)
                    .unwrap_or(azure_core::time::Duration::seconds(60)),
                max_delay: azure_core::time::Duration::seconds(8),
            }),
            ..ClientOptions::default()
        };
        let per_try = credential.policy().into_iter().collect();
        let pipeline = Pipeline::new(
            Some("blobmount"),
            Some(env!("CARGO_PKG_VERSION")),
            client_options,
            Vec::new(),
            per_try,
            None,
        );
        Ok(AzureBlobStore {
            source: Arc::new(source),
            pipeline,
        })
    }

    pub fn source(&self) -> &ContainerSource {
        &self.source
    }

    /// Sends `request`; a non-success status becomes a [`StoreError`].
    async fn send(
        &self,
        mut request: Request,
    ) -> Result<(StatusCode, Headers, azure_core::http::AsyncResponseBody), StoreError> {
        request.insert_header("x-ms-version", API_VERSION);
        let ctx = Context::new();
        let options = PipelineStreamOptions {
            skip_checks: true,
            ..Default::default()
        };
        let rsp = self
            .pipeline
            .stream(&ctx, &mut request, Some(options))
            .await
            .map_err(|e| self.transport_error(&e))?;
        let (status, headers, body) = rsp.deconstruct();
        if status.is_success() {
            return Ok((status, headers, body));
        }
        let text = body.collect().await.unwrap_or_default();
        Err(service_error(status, &headers, &text))
    }

    fn transport_error(&self, err: &azure_core::Error) -> StoreError {
        let mut reason = err.to_string();
        let mut credential = matches!(err.kind(), azure_core::error::ErrorKind::Credential);
        let mut source = std::error::Error::source(err);
        while let Some(s) = source {
            if let Some(inner) = s.downcast_ref::<azure_core::Error>() {
                credential |= matches!(inner.kind(), azure_core::error::ErrorKind::Credential);
            }
            let text = s.to_string();
            if !reason.contains(&text) {
                reason.push_str(": ");
                reason.push_str(&text);
            }
            source = s.source();
        }
        if credential {
            return StoreError::Credential(scrub(&reason));
        }
        StoreError::Transport {
            endpoint: self.source.container_url().origin().ascii_serialization(),
            reason: scrub(&reason),
        }
    }

    /// A List Blobs URL; `delimited` asks for one level (`delimiter=/`, with metadata).
    fn list_url(
        &self,
        prefix: &str,
        marker: Option<&str>,
        max_results: Option<u32>,
        delimited: bool,
    ) -> Url {
        let mut query = format!(
            "restype=container&comp=list&prefix={}",
            utf8_percent_encode(prefix, QUERY_VALUE)
        );
        if delimited {
            query.push_str("&delimiter=%2F&include=metadata");
        }
        if let Some(m) = max_results {
            query.push_str(&format!("&maxresults={m}"));
        }
        if let Some(m) = marker {
            query.push_str(&format!("&marker={}", utf8_percent_encode(m, QUERY_VALUE)));
        }
        let mut url = self.source.container_url().clone();
        url.set_query(Some(&query));
        url
    }
}

impl BlobStore for AzureBlobStore {
    async fn list(
        &self,
        prefix: &str,
        marker: Option<&str>,
        max_results: Option<u32>,
    ) -> Result<ListPage, StoreError> {
        self.list_page(self.list_url(prefix, marker, max_results, true))
            .await
    }

    async fn any_under(&self, prefix: &str) -> Result<bool, StoreError> {
        Ok(self.first_blob(prefix).await?.is_some())
    }

    async fn properties(&self, name: &str) -> Result<BlobInfo, StoreError> {
        let request = Request::new(self.source.blob_url(name), Method::Head);
        let (_, headers, _) = self.send(request).await?;
        let size = header(&headers, "content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let is_folder_marker = size == 0
            && is_folder_metadata(headers.iter().filter_map(|(k, v)| {
                k.as_str()
                    .strip_prefix("x-ms-meta-")
                    .map(|key| (key, v.as_str()))
            }));
        Ok(BlobInfo {
            name: name.to_string(),
            size,
            etag: header(&headers, "etag").unwrap_or_default().to_string(),
            last_modified: parse_http_date(header(&headers, "last-modified")),
            is_folder_marker,
        })
    }

    async fn read(&self, name: &str, range: Range<u64>, etag: &str) -> Result<Bytes, StoreError> {
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        let mut request = Request::new(self.source.blob_url(name), Method::Get);
        request.insert_header(
            "x-ms-range",
            format!("bytes={}-{}", range.start, range.end - 1),
        );
        request.insert_header("if-match", etag.to_string());
        let (_, _, body) = self.send(request).await?;
        let want = range.end - range.start;
        let bytes = collect_sized(body, want as usize)
            .await
            .map_err(|e| self.transport_error(&e))?;
        if bytes.len() as u64 != want {
            return Err(StoreError::Protocol(format!(
                "asked for {want} bytes of '{name}' at offset {}, got {}",
                range.start,
                bytes.len()
            )));
        }
        Ok(bytes)
    }
}

impl AzureBlobStore {
    /// The first blob whose name starts with `prefix` (a flat listing of one item).
    pub async fn first_blob(&self, prefix: &str) -> Result<Option<BlobInfo>, StoreError> {
        let page = self
            .list_page(self.list_url(prefix, None, Some(1), false))
            .await?;
        Ok(page.blobs.into_iter().next())
    }

    async fn list_page(&self, url: Url) -> Result<ListPage, StoreError> {
        let (_, _, body) = self.send(Request::new(url, Method::Get)).await?;
        let bytes = body.collect().await.map_err(|e| self.transport_error(&e))?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| StoreError::Protocol("List Blobs answer is not UTF-8".into()))?;
        parse_list_page(text)
    }
}

/// Extra trusted roots from `SSL_CERT_FILE` (a PEM bundle) and `SSL_CERT_DIR` (PEM files),
/// as OpenSSL reads them: for TLS-inspecting proxies, and for the emulator in tests.
fn extra_roots() -> Result<Vec<reqwest::Certificate>, StoreError> {
    let mut files: Vec<std::path::PathBuf> = Vec::new();
    if let Some(f) = std::env::var_os("SSL_CERT_FILE") {
        files.push(f.into());
    }
    if let Some(dirs) = std::env::var_os("SSL_CERT_DIR") {
        for dir in std::env::split_paths(&dirs) {
            if let Ok(entries) = std::fs::read_dir(&dir) {
                files.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_file()));
            }
        }
    }
    let mut roots = Vec::new();
    for f in files {
        let pem = std::fs::read(&f).map_err(|e| {
            StoreError::Protocol(format!(
                "cannot read {} (SSL_CERT_FILE/SSL_CERT_DIR): {e}",
                f.display()
            ))
        })?;
        match reqwest::Certificate::from_pem_bundle(&pem) {
            Ok(certs) => roots.extend(certs),
            Err(e) => tracing::warn!("ignoring {}: not PEM certificates ({e})", f.display()),
        }
    }
    Ok(roots)
}

/// Collects a body of about `size` bytes with one allocation and one copy (the SDK's own
/// `collect` grows its buffer chunk by chunk, copying the body several times).
async fn collect_sized(
    mut body: azure_core::http::AsyncResponseBody,
    size: usize,
) -> azure_core::Result<Bytes> {
    use futures::StreamExt;
    let mut buf = bytes::BytesMut::with_capacity(size);
    while let Some(chunk) = body.next().await {
        buf.extend_from_slice(&chunk?);
    }
    Ok(buf.freeze())
}

fn header<'a>(headers: &'a Headers, name: &'static str) -> Option<&'a str> {
    headers.get_optional_str(&HeaderName::from_static(name))
}

#[derive(Deserialize, Default)]
struct ErrorXml {
    #[serde(rename = "Code", default)]
    code: String,
    #[serde(rename = "Message", default)]
    message: String,
}

/// Builds the error for a non-success answer from its headers and (possibly empty) body.
fn service_error(status: StatusCode, headers: &Headers, body: &[u8]) -> StoreError {
    let parsed: ErrorXml = std::str::from_utf8(body)
        .ok()
        .and_then(|t| quick_xml::de::from_str(t.trim_start_matches('\u{feff}')).ok())
        .unwrap_or_default();
    let code = header(headers, "x-ms-error-code")
        .map(str::to_string)
        .filter(|c| !c.is_empty())
        .unwrap_or(parsed.code);
    let request_id = header(headers, "x-ms-request-id")
        .unwrap_or("none")
        .to_string();
    let status = u16::from(status);
    let message = scrub(parsed.message.lines().next().unwrap_or_default());
    match status {
        404 => StoreError::NotFound {
            code: if code.is_empty() {
                "NotFound".into()
            } else {
                code
            },
            request_id,
        },
        412 => StoreError::PreconditionFailed { request_id },
        _ => StoreError::Service {
            status,
            code,
            message,
            request_id,
        },
    }
}
