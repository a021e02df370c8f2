//! The data cache: fixed-size blocks of blob content, kept in memory, bounded by bytes.
//!
//! Blocks are keyed by (blob, ETag, block index), so a changed blob can never be served
//! from blocks of its old version. Memory is taken only as blocks arrive (nothing is
//! reserved up front) and the least recently used blocks are dropped beyond the capacity.
//! The [`DataCache`] trait keeps the rest of the daemon independent of where blocks live.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use lru::LruCache;

/// Identifies one block of one version of one blob.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BlockKey {
    pub blob: Arc<str>,
    pub etag: Arc<str>,
    pub index: u64,
}

/// Where fetched blocks are kept.
pub trait DataCache: Send + Sync + 'static {
    fn get(&self, key: &BlockKey) -> Option<Bytes>;
    fn put(&self, key: BlockKey, block: Bytes);
    /// Bytes currently held.
    fn held_bytes(&self) -> u64;
}

struct Inner {
    blocks: LruCache<BlockKey, Bytes>,
    bytes: u64,
}

/// An in-memory LRU of blocks, bounded by total bytes.
pub struct MemoryBlockCache {
    capacity: u64,
    inner: Mutex<Inner>,
}

impl MemoryBlockCache {
    pub fn new(capacity_bytes: u64) -> Self {
        MemoryBlockCache {
            capacity: capacity_bytes,
            inner: Mutex::new(Inner {
                blocks: LruCache::unbounded(),
                bytes: 0,
            }),
        }
    }
}

impl DataCache for MemoryBlockCache {
    fn get(&self, key: &BlockKey) -> Option<Bytes> {
        self.inner.lock().unwrap().blocks.get(key).cloned()
    }

    fn put(&self, key: BlockKey, block: Bytes) {
        let len = block.len() as u64;
        if len > self.capacity {
            return;
        }
        let mut inner = self.inner.lock().unwrap();
        if let Some(old) = inner.blocks.put(key, block) {
            inner.bytes -= old.len() as u64;
        }
        inner.bytes += len;
        while inner.bytes > self.capacity {
            match inner.blocks.pop_lru() {
                Some((_, evicted)) => inner.bytes -= evicted.len() as u64,
                None => break,
            }
        }
    }

    fn held_bytes(&self) -> u64 {
        self.inner.lock().unwrap().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(blob: &str, etag: &str, index: u64) -> BlockKey {
        BlockKey {
            blob: Arc::from(blob),
            etag: Arc::from(etag),
            index,
        }
    }

    #[test]
    fn bounded_by_bytes_least_recently_used_goes_first() {
        let cache = MemoryBlockCache::new(30);
        cache.put(key("a", "1", 0), Bytes::from(vec![0; 10]));
        cache.put(key("a", "1", 1), Bytes::from(vec![1; 10]));
        cache.put(key("a", "1", 2), Bytes::from(vec![2; 10]));
        assert!(cache.get(&key("a", "1", 0)).is_some()); // now most recent
        cache.put(key("a", "1", 3), Bytes::from(vec![3; 10]));
        assert_eq!(cache.held_bytes(), 30);
        assert!(cache.get(&key("a", "1", 1)).is_none(), "LRU block evicted");
        assert!(cache.get(&key("a", "1", 0)).is_some());
    }

    #[test]
    fn versions_do_not_mix() {
        let cache = MemoryBlockCache::new(100);
        cache.put(key("a", "1", 0), Bytes::from_static(b"old"));
        assert!(cache.get(&key("a", "2", 0)).is_none());
        cache.put(key("a", "1", 0), Bytes::from_static(b"older!"));
        assert_eq!(cache.held_bytes(), 6);
    }
}
