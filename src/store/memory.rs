//! An in-memory [`BlobStore`] with the service's listing and ETag semantics, for unit tests.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use bytes::Bytes;

use super::{BlobInfo, BlobStore, ListPage, StoreError};

struct Entry {
    data: Bytes,
    etag: String,
    folder_marker: bool,
}

/// Blobs held in a sorted map; every write gets a new ETag.
#[derive(Default)]
pub struct MemoryStore {
    blobs: Mutex<BTreeMap<String, Entry>>,
    next_etag: AtomicU64,
    /// Counts of calls, for tests that check how much was fetched.
    pub list_calls: AtomicU64,
    pub read_calls: AtomicU64,
    pub bytes_read: AtomicU64,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates or replaces a blob.
    pub fn put(&self, name: &str, data: impl Into<Bytes>) {
        self.insert(name, data.into(), false);
    }

    /// Creates a zero-length `hdi_isfolder=true` directory marker.
    pub fn put_folder_marker(&self, name: &str) {
        self.insert(name, Bytes::new(), true);
    }

    fn insert(&self, name: &str, data: Bytes, folder_marker: bool) {
        let etag = format!(
            "\"0x{:X}\"",
            self.next_etag.fetch_add(1, Ordering::Relaxed) + 1
        );
        let entry = Entry {
            data,
            etag,
            folder_marker,
        };
        self.blobs.lock().unwrap().insert(name.to_string(), entry);
    }

    fn info(name: &str, e: &Entry) -> BlobInfo {
        BlobInfo {
            name: name.to_string(),
            size: e.data.len() as u64,
            etag: e.etag.clone(),
            last_modified: SystemTime::UNIX_EPOCH,
            is_folder_marker: e.folder_marker,
        }
    }
}

/// One listing item: a blob or a common prefix, ordered by name as the service does.
enum Item {
    Blob(BlobInfo),
    Prefix(String),
}

impl BlobStore for MemoryStore {
    async fn list(
        &self,
        prefix: &str,
        marker: Option<&str>,
        max_results: Option<u32>,
    ) -> Result<ListPage, StoreError> {
        self.list_calls.fetch_add(1, Ordering::Relaxed);
        let max = max_results.unwrap_or(5000).min(5000) as usize;
        let blobs = self.blobs.lock().unwrap();
        let mut items: Vec<(String, Item)> = Vec::new();
        for (name, entry) in blobs.range(prefix.to_string()..) {
            let Some(rest) = name.strip_prefix(prefix) else {
                break;
            };
            match rest.find('/') {
                Some(i) => {
                    let p = format!("{prefix}{}", &rest[..=i]);
                    if items.last().map(|(n, _)| n) != Some(&p) {
                        items.push((p.clone(), Item::Prefix(p)));
                    }
                }
                None => items.push((name.clone(), Item::Blob(Self::info(name, entry)))),
            }
        }
        let start = marker.map_or(0, |m| items.partition_point(|(n, _)| n.as_str() < m));
        let mut page = ListPage::default();
        for (_, item) in items.iter().skip(start).take(max) {
            match item {
                Item::Blob(b) => page.blobs.push(b.clone()),
                Item::Prefix(p) => page.prefixes.push(p.clone()),
            }
        }
        page.next_marker = items.get(start + max).map(|(n, _)| n.clone());
        Ok(page)
    }

    async fn any_under(&self, prefix: &str) -> Result<bool, StoreError> {
        self.list_calls.fetch_add(1, Ordering::Relaxed);
        let blobs = self.blobs.lock().unwrap();
        Ok(blobs
            .range(prefix.to_string()..)
            .next()
            .is_some_and(|(name, _)| name.starts_with(prefix)))
    }

    async fn properties(&self, name: &str) -> Result<BlobInfo, StoreError> {
        let blobs = self.blobs.lock().unwrap();
        blobs
            .get(name)
            .map(|e| Self::info(name, e))
            .ok_or_else(|| StoreError::NotFound {
                code: "BlobNotFound".into(),
                request_id: "memory".into(),
            })
    }

    async fn read(&self, name: &str, range: Range<u64>, etag: &str) -> Result<Bytes, StoreError> {
        self.read_calls.fetch_add(1, Ordering::Relaxed);
        let blobs = self.blobs.lock().unwrap();
        let entry = blobs.get(name).ok_or_else(|| StoreError::NotFound {
            code: "BlobNotFound".into(),
            request_id: "memory".into(),
        })?;
        if entry.etag != etag {
            return Err(StoreError::PreconditionFailed {
                request_id: "memory".into(),
            });
        }
        let len = entry.data.len() as u64;
        let (start, end) = (range.start.min(len), range.end.min(len));
        self.bytes_read.fetch_add(end - start, Ordering::Relaxed);
        Ok(entry.data.slice(start as usize..end as usize))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hierarchical_listing_pages_through_prefixes_and_blobs() {
        let s = MemoryStore::new();
        for n in ["a", "a-b", "a/x", "a/y/z", "b", "c/d"] {
            s.put(n, "1");
        }
        let p1 = s.list("", None, Some(3)).await.unwrap();
        assert_eq!(
            p1.blobs.iter().map(|b| b.name.as_str()).collect::<Vec<_>>(),
            ["a", "a-b"]
        );
        assert_eq!(p1.prefixes, ["a/"]);
        let p2 = s
            .list("", p1.next_marker.as_deref(), Some(3))
            .await
            .unwrap();
        assert_eq!(p2.blobs[0].name, "b");
        assert_eq!(p2.prefixes, ["c/"]);
        assert!(p2.next_marker.is_none());
        let sub = s.list("a/", None, None).await.unwrap();
        assert_eq!(sub.blobs[0].name, "a/x");
        assert_eq!(sub.prefixes, ["a/y/"]);
    }
}
