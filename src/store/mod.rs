//! The object store seen by the filesystem: one small trait, [`BlobStore`], with the real
//! Azure client ([`AzureBlobStore`]) and an in-memory fake ([`MemoryStore`]) for unit tests.
//!
//! Owns the three read-path operations (hierarchical list, properties, ranged read pinned to
//! an ETag), their result types, and [`StoreError`], which keeps the service's error code and
//! request id so that callers can explain failures (see [`diagnose`]).

mod azure;
pub mod diagnose;
mod list_xml;
mod memory;

use std::future::Future;
use std::ops::Range;
use std::time::SystemTime;

use bytes::Bytes;

pub use azure::{AzureBlobStore, StoreOptions};
pub use memory::MemoryStore;

/// One blob as seen in a listing or a properties call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobInfo {
    /// Full blob name inside the container.
    pub name: String,
    pub size: u64,
    pub etag: String,
    pub last_modified: SystemTime,
    /// Zero-length blob with metadata `hdi_isfolder=true`: a directory marker.
    pub is_folder_marker: bool,
}

/// One page of a hierarchical (`delimiter=/`) listing.
#[derive(Clone, Debug, Default)]
pub struct ListPage {
    pub blobs: Vec<BlobInfo>,
    /// Common prefixes (virtual directories), each ending with `/`.
    pub prefixes: Vec<String>,
    /// Continuation marker; `None` on the last page.
    pub next_marker: Option<String>,
}

/// A read-only view of one container.
pub trait BlobStore: Send + Sync + 'static {
    /// Lists one level under `prefix` (delimiter `/`), one page from `marker`.
    /// `max_results` caps the page (the service caps it at 5000).
    fn list(
        &self,
        prefix: &str,
        marker: Option<&str>,
        max_results: Option<u32>,
    ) -> impl Future<Output = Result<ListPage, StoreError>> + Send;

    /// Whether any blob name starts with `prefix` (a flat listing of one item: cheaper than a
    /// delimited listing, which must collapse everything under `prefix` into one entry).
    fn any_under(&self, prefix: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Properties of one blob; `NotFound` when it does not exist.
    fn properties(&self, name: &str) -> impl Future<Output = Result<BlobInfo, StoreError>> + Send;

    /// Bytes `range` of blob `name`, only if its ETag is still `etag`
    /// (`PreconditionFailed` otherwise).
    fn read(
        &self,
        name: &str,
        range: Range<u64>,
        etag: &str,
    ) -> impl Future<Output = Result<Bytes, StoreError>> + Send;
}

/// A failed storage call. Messages carry no secret.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// 404: container, blob or path does not exist.
    #[error("not found ({code}, request id {request_id})")]
    NotFound { code: String, request_id: String },
    /// 412: the blob changed since the ETag the caller holds.
    #[error("blob changed since it was opened (ConditionNotMet, request id {request_id})")]
    PreconditionFailed { request_id: String },
    /// Any other answer from the service.
    #[error("HTTP {status} {code}: {message} (request id {request_id})")]
    Service {
        status: u16,
        code: String,
        message: String,
        request_id: String,
    },
    /// No answer: connection refused, DNS, timeout, reset.
    #[error("cannot reach {endpoint}: {reason}")]
    Transport { endpoint: String, reason: String },
    /// No credential could be had (e.g. the identity endpoint refused or is unreachable).
    #[error("no token: {0}")]
    Credential(String),
    /// An answer we could not understand (bad XML, short body).
    #[error("unexpected answer from the service: {0}")]
    Protocol(String),
}

impl StoreError {
    /// The errno a filesystem call should answer with.
    pub fn errno(&self) -> i32 {
        match self {
            StoreError::NotFound { .. } => libc::ENOENT,
            StoreError::Service {
                status: 401 | 403, ..
            } => libc::EACCES,
            StoreError::Service {
                status: 429 | 503, ..
            } => libc::EAGAIN,
            _ => libc::EIO,
        }
    }

    /// The service's error code, when there is one.
    pub fn code(&self) -> Option<&str> {
        match self {
            StoreError::NotFound { code, .. } | StoreError::Service { code, .. } => Some(code),
            StoreError::PreconditionFailed { .. } => Some("ConditionNotMet"),
            _ => None,
        }
    }
}
