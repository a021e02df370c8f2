//! The superblock: every filesystem operation, expressed over a [`BlobStore`].
//!
//! Owns the [`InodeTable`], directory listing (one level at a time, every page followed),
//! the name rules' application, and the read path of open files (ranged reads pinned to the
//! ETag seen at open). It knows nothing of FUSE: the adapter in `fuse.rs` only translates.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tracing::{debug, warn};

use super::inode::{Inode, InodeTable, Kind, ROOT_INO};
use super::names::invalid_reason;
use crate::cache::DataCache;
use crate::prefetch::{BlockFetcher, Prefetcher, ReadConfig};
use crate::store::diagnose::explain;
use crate::store::{BlobInfo, BlobStore, StoreError};

/// Why a filesystem operation failed; each maps to one errno.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("no such file or directory")]
    NotFound,
    #[error("not a directory")]
    NotADirectory,
    #[error("is a directory")]
    IsADirectory,
    #[error("unknown inode {0}")]
    StaleInode(u64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl FsError {
    pub fn errno(&self) -> i32 {
        match self {
            FsError::NotFound => libc::ENOENT,
            FsError::NotADirectory => libc::ENOTDIR,
            FsError::IsADirectory => libc::EISDIR,
            FsError::StaleInode(_) => libc::ESTALE,
            FsError::Store(e) => e.errno(),
        }
    }
}

/// One directory entry, as handed to readdir.
#[derive(Clone, Debug)]
pub struct DirEntry {
    pub name: String,
    pub inode: Inode,
}

/// A file opened for reading: the blob and the version it is pinned to.
#[derive(Clone, Debug)]
pub struct OpenFile {
    pub ino: u64,
    pub key: Arc<str>,
    pub etag: Arc<str>,
    pub size: u64,
}

/// Metadata lifetime, and where and how content is read.
#[derive(Clone)]
pub struct SuperblockConfig {
    /// How long cached metadata is trusted before the service is asked again.
    pub metadata_ttl: Duration,
    pub read: ReadConfig,
    pub cache: Arc<dyn DataCache>,
}

/// One mount's filesystem state.
pub struct Superblock<S: BlobStore> {
    store: Arc<S>,
    fetcher: Arc<BlockFetcher<S>>,
    inodes: InodeTable,
    config: SuperblockConfig,
    /// Names already warned about, so each problem is logged once.
    warned: Mutex<HashSet<String>>,
}

impl<S: BlobStore> Superblock<S> {
    /// `prefix` is the mount's blob prefix: empty or ending with `/`.
    pub fn new(store: S, prefix: &str, config: SuperblockConfig) -> Self {
        let store = Arc::new(store);
        Superblock {
            fetcher: BlockFetcher::new(store.clone(), config.cache.clone(), config.read.clone()),
            store,
            inodes: InodeTable::new(prefix.trim_end_matches('/')),
            config,
            warned: Mutex::new(HashSet::new()),
        }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// GETs sent and bytes received for file content so far.
    pub fn read_stats(&self) -> (u64, u64) {
        self.fetcher.stats()
    }

    pub fn inodes(&self) -> &InodeTable {
        &self.inodes
    }

    fn inode(&self, ino: u64) -> Result<Inode, FsError> {
        self.inodes.get(ino).ok_or(FsError::StaleInode(ino))
    }

    fn dir(&self, ino: u64) -> Result<Inode, FsError> {
        let node = self.inode(ino)?;
        match node.kind {
            Kind::Dir => Ok(node),
            Kind::File { .. } => Err(FsError::NotADirectory),
        }
    }

    fn fresh(&self, node: &Inode) -> bool {
        !node.stale && node.validated.elapsed() < self.config.metadata_ttl
    }

    /// Logs `message` once per `key` for the life of the mount.
    fn warn_once(&self, key: &str, message: impl FnOnce() -> String) {
        if self.warned.lock().unwrap().insert(key.to_string()) {
            warn!("{}", message());
        }
    }

    /// Logs a failed storage call with its cause and fix (not-found is no failure).
    fn logged(&self, what: &str, key: &str, e: StoreError) -> FsError {
        if !matches!(e, StoreError::NotFound { .. }) {
            warn!("{what} of '{key}' failed: {}", explain(&e, key));
        }
        e.into()
    }

    /// Finds `name` in directory `parent`, asking the service unless the cache is fresh.
    pub async fn lookup(&self, parent: u64, name: &str) -> Result<Inode, FsError> {
        let dir = self.dir(parent)?;
        if invalid_reason(name).is_some() {
            return Err(FsError::NotFound);
        }
        if let Some(child) = self.inodes.child(parent, name).filter(|c| self.fresh(c)) {
            return Ok(child);
        }
        let key = dir.child_key(name);
        let children = format!("{key}/");
        let (props, listing) =
            tokio::join!(self.store.properties(&key), self.store.any_under(&children),);
        let has_children = match listing {
            Ok(any) => any,
            Err(StoreError::NotFound { .. }) => false,
            Err(e) => return Err(self.logged("lookup", &key, e)),
        };
        let blob = match props {
            Ok(info) => Some(info),
            Err(StoreError::NotFound { .. }) => None,
            Err(e) if has_children => {
                debug!("properties of '{key}' failed ({e}); it is a directory anyway");
                None
            }
            Err(e) => return Err(self.logged("lookup", &key, e)),
        };
        let kind = match (has_children, blob) {
            (true, Some(b)) if !b.is_folder_marker => {
                self.warn_clash(&key);
                Kind::Dir
            }
            (true, _) => Kind::Dir,
            (false, Some(b)) => kind_of(&b),
            (false, None) => return Err(FsError::NotFound),
        };
        Ok(self.inodes.upsert(parent, name, &key, kind))
    }

    fn warn_clash(&self, key: &str) {
        self.warn_once(key, || {
            format!("blob '{key}' has the same name as a directory: the directory is shown, the blob is hidden")
        });
    }

    /// Attributes of `ino`, revalidated with the service when older than the TTL.
    pub async fn getattr(&self, ino: u64) -> Result<Inode, FsError> {
        let node = self.inode(ino)?;
        if ino == ROOT_INO || self.fresh(&node) {
            return Ok(node);
        }
        let parent = self.inode(node.parent)?;
        let name = node
            .key
            .strip_prefix(parent.dir_prefix().as_str())
            .unwrap_or(&node.key)
            .to_string();
        self.lookup(node.parent, &name).await
    }

    /// Every entry of directory `ino`: one listing level, every page followed.
    /// Invalid names are skipped; a directory hides a blob of the same name.
    pub async fn read_dir(&self, ino: u64) -> Result<Vec<DirEntry>, FsError> {
        let dir = self.dir(ino)?;
        let prefix = dir.dir_prefix();
        let mut entries: BTreeMap<String, Kind> = BTreeMap::new();
        let mut marker: Option<String> = None;
        loop {
            let page = self
                .store
                .list(&prefix, marker.as_deref(), None)
                .await
                .map_err(|e| self.logged("listing", &prefix, e))?;
            for p in &page.prefixes {
                let rel = &p[prefix.len()..];
                let name = rel.strip_suffix('/').unwrap_or(rel);
                self.add_entry(&mut entries, p, name, Kind::Dir);
            }
            for b in &page.blobs {
                self.add_entry(&mut entries, &b.name, &b.name[prefix.len()..], kind_of(b));
            }
            marker = page.next_marker;
            if marker.is_none() {
                break;
            }
        }
        Ok(entries
            .into_iter()
            .map(|(name, kind)| {
                let key = dir.child_key(&name);
                let inode = self.inodes.upsert(ino, &name, &key, kind);
                DirEntry { name, inode }
            })
            .collect())
    }

    /// Adds `name` (from listing item `full`, a blob name or a prefix) to a listing.
    fn add_entry(&self, entries: &mut BTreeMap<String, Kind>, full: &str, name: &str, kind: Kind) {
        if let Some(reason) = invalid_reason(name) {
            self.warn_once(full, || format!("skipping '{full}': {reason}"));
            return;
        }
        let is_dir = kind == Kind::Dir;
        match entries.get(name) {
            None => {
                entries.insert(name.to_string(), kind);
            }
            Some(Kind::Dir) if is_dir => {}
            Some(Kind::Dir) => self.warn_clash(full.trim_end_matches('/')),
            Some(Kind::File { .. }) => {
                if is_dir {
                    self.warn_clash(full.trim_end_matches('/'));
                }
                entries.insert(name.to_string(), kind);
            }
        }
    }

    /// Opens `ino` for reading, pinning the blob's current ETag.
    pub async fn open(&self, ino: u64) -> Result<OpenFile, FsError> {
        let node = self.inode(ino)?;
        if node.kind == Kind::Dir {
            return Err(FsError::IsADirectory);
        }
        let node = if self.fresh(&node) {
            node
        } else {
            let info = self
                .store
                .properties(&node.key)
                .await
                .map_err(|e| self.logged("open", &node.key, e))?;
            let parent = self.inode(node.parent)?;
            let name = node.key[parent.dir_prefix().len()..].to_string();
            self.inodes
                .upsert(node.parent, &name, &node.key, kind_of(&info))
        };
        match node.kind {
            Kind::File { size, etag, .. } => Ok(OpenFile {
                ino,
                key: node.key.clone(),
                etag: Arc::from(etag),
                size,
            }),
            Kind::Dir => Err(FsError::IsADirectory),
        }
    }

    /// Up to `size` bytes at `offset` of an open file; fewer at the end of the file.
    /// A blob replaced since open fails (EIO) rather than mixing versions.
    pub async fn read(
        &self,
        file: &OpenFile,
        prefetcher: &Prefetcher,
        offset: u64,
        size: u32,
    ) -> Result<Bytes, FsError> {
        match prefetcher.read(&self.fetcher, file, offset, size).await {
            Ok(bytes) => Ok(bytes),
            Err(e) => {
                if matches!(e, StoreError::PreconditionFailed { .. }) {
                    // The next open asks the service for the new version.
                    self.inodes.invalidate(file.ino);
                }
                warn!(
                    "read of '{}' at {offset}+{size} failed: {}",
                    file.key,
                    explain(&e, &file.key)
                );
                Err(e.into())
            }
        }
    }
}

fn kind_of(info: &BlobInfo) -> Kind {
    if info.is_folder_marker {
        Kind::Dir
    } else {
        Kind::File {
            size: info.size,
            etag: info.etag.clone(),
            mtime: info.last_modified,
        }
    }
}

/// The modification time shown for an inode (directories: the mount's start).
pub fn mtime_of(node: &Inode, mounted_at: SystemTime) -> SystemTime {
    match &node.kind {
        Kind::File { mtime, .. } => *mtime,
        Kind::Dir => mounted_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn sb(store: MemoryStore, prefix: &str) -> Superblock<MemoryStore> {
        Superblock::new(
            store,
            prefix,
            SuperblockConfig {
                metadata_ttl: Duration::from_secs(60),
                read: ReadConfig::for_cache(64 << 20, 1 << 20),
                cache: Arc::new(crate::cache::MemoryBlockCache::new(48 << 20)),
            },
        )
    }

    async fn names(sb: &Superblock<MemoryStore>, ino: u64) -> Vec<String> {
        sb.read_dir(ino)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect()
    }

    #[tokio::test]
    async fn invalid_segments_are_skipped_and_siblings_kept() {
        let store = MemoryStore::new();
        let long = "x".repeat(256);
        for n in [
            "d//empty".to_string(),
            "d/./dot".to_string(),
            "d/../dotdot".to_string(),
            format!("d/{long}"),
            format!("d/{long}/under"),
            "d/trail/".to_string(),
            "d/ok".to_string(),
        ] {
            store.put(&n, "x");
        }
        let sb = sb(store, "");
        let d = sb.lookup(ROOT_INO, "d").await.unwrap();
        assert_eq!(names(&sb, d.ino).await, ["ok", "trail"]);
        let trail = sb.lookup(d.ino, "trail").await.unwrap();
        assert!(names(&sb, trail.ino).await.is_empty());
        for bad in [".", "..", "", long.as_str()] {
            assert!(matches!(
                sb.lookup(d.ino, bad).await,
                Err(FsError::NotFound)
            ));
        }
        let warned = sb.warned.lock().unwrap().clone();
        for key in [
            "d//".to_string(),
            "d/./".to_string(),
            "d/../".to_string(),
            format!("d/{long}"),
            format!("d/{long}/"),
            "d/trail/".to_string(),
        ] {
            assert!(warned.contains(&key), "{key} not in {warned:?}");
        }
    }

    #[tokio::test]
    async fn directory_wins_over_blob_and_markers_are_directories() {
        let store = MemoryStore::new();
        store.put("a", "blob");
        store.put("a/child", "c");
        store.put_folder_marker("m");
        store.put_folder_marker("n");
        store.put("n/inside", "i");
        store.put("f", "file");
        let sb = sb(store, "");
        assert_eq!(names(&sb, ROOT_INO).await, ["a", "f", "m", "n"]);
        for dir in ["a", "m", "n"] {
            assert_eq!(
                sb.lookup(ROOT_INO, dir).await.unwrap().kind,
                Kind::Dir,
                "{dir}"
            );
        }
        assert!(matches!(
            sb.lookup(ROOT_INO, "f").await.unwrap().kind,
            Kind::File { size: 4, .. }
        ));
        assert!(sb.warned.lock().unwrap().contains("a"));
    }

    #[tokio::test]
    async fn listing_follows_every_page_and_inode_numbers_are_stable() {
        let store = MemoryStore::new();
        for i in 0..12_000 {
            store.put(&format!("big/{i:05}"), "");
        }
        let sb = sb(store, "big/");
        let first = sb.read_dir(ROOT_INO).await.unwrap();
        assert_eq!(first.len(), 12_000);
        assert!(
            sb.store()
                .list_calls
                .load(std::sync::atomic::Ordering::Relaxed)
                >= 3
        );
        let again = sb.read_dir(ROOT_INO).await.unwrap();
        assert!(
            first
                .iter()
                .zip(&again)
                .all(|(a, b)| a.inode.ino == b.inode.ino)
        );
        let looked = sb.lookup(ROOT_INO, "00042").await.unwrap();
        assert_eq!(looked.ino, first[42].inode.ino);
    }

    #[tokio::test]
    async fn reads_are_pinned_to_the_etag_seen_at_open() {
        let store = MemoryStore::new();
        let len = 3 << 20;
        store.put("f", vec![1u8; len]);
        let sb = sb(store, "");
        let node = sb.lookup(ROOT_INO, "f").await.unwrap();
        let file = sb.open(node.ino).await.unwrap();
        let pf = Prefetcher::default();
        let tail = sb.read(&file, &pf, len as u64 - 10, 100).await.unwrap();
        assert_eq!(&tail[..], &[1u8; 10]);
        assert!(
            sb.read(&file, &pf, len as u64, 100)
                .await
                .unwrap()
                .is_empty()
        );
        sb.store().put("f", vec![2u8; len]);
        // Block 0 was never fetched for the old version: it cannot be served any more.
        let err = sb.read(&file, &pf, 0, 100).await.unwrap_err();
        assert_eq!(err.errno(), libc::EIO);
    }
}
