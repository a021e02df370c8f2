//! The inode table: stable inode numbers for paths, and each inode's cached metadata.
//!
//! An inode number is given to a (parent, name) pair the first time it is seen and is kept
//! for the life of the mount, even after the kernel forgets the inode, so a path always
//! maps to the same number. Metadata (kind, size, ETag) is refreshed from listings and
//! lookups and carries the instant it was last confirmed by the service.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Instant, SystemTime};

/// The FUSE root inode.
pub const ROOT_INO: u64 = 1;

/// What a path is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File {
        size: u64,
        etag: String,
        mtime: SystemTime,
    },
}

/// A path and its cached metadata.
#[derive(Clone, Debug)]
pub struct Inode {
    pub ino: u64,
    pub parent: u64,
    /// Full blob path without a trailing `/` (for the root: the mount prefix, trimmed).
    pub key: Arc<str>,
    pub kind: Kind,
    /// When the service last confirmed `kind`.
    pub validated: Instant,
    /// Known to be out of date (the blob changed): ask the service before trusting `kind`.
    pub stale: bool,
}

impl Inode {
    /// The listing prefix of a directory: its key plus `/` (empty for a container root).
    pub fn dir_prefix(&self) -> String {
        if self.key.is_empty() {
            String::new()
        } else {
            format!("{}/", self.key)
        }
    }

    /// The key of child `name`.
    pub fn child_key(&self, name: &str) -> String {
        format!("{}{name}", self.dir_prefix())
    }
}

struct Inner {
    nodes: HashMap<u64, Inode>,
    by_name: HashMap<(u64, Arc<str>), u64>,
    lookups: HashMap<u64, u64>,
    next_ino: u64,
}

/// All inodes of one mount.
pub struct InodeTable {
    inner: RwLock<Inner>,
}

impl InodeTable {
    /// A table holding only the root, whose key is `root_key`.
    pub fn new(root_key: &str) -> Self {
        let root = Inode {
            ino: ROOT_INO,
            parent: ROOT_INO,
            key: Arc::from(root_key),
            kind: Kind::Dir,
            validated: Instant::now(),
            stale: false,
        };
        InodeTable {
            inner: RwLock::new(Inner {
                nodes: HashMap::from([(ROOT_INO, root)]),
                by_name: HashMap::new(),
                lookups: HashMap::new(),
                next_ino: ROOT_INO + 1,
            }),
        }
    }

    pub fn get(&self, ino: u64) -> Option<Inode> {
        self.inner.read().unwrap().nodes.get(&ino).cloned()
    }

    /// The child `name` of `parent`, if it was ever seen.
    pub fn child(&self, parent: u64, name: &str) -> Option<Inode> {
        let inner = self.inner.read().unwrap();
        let ino = inner.by_name.get(&(parent, Arc::from(name)))?;
        inner.nodes.get(ino).cloned()
    }

    /// Records that `parent/name` exists as `kind` (confirmed now); returns its inode.
    pub fn upsert(&self, parent: u64, name: &str, key: &str, kind: Kind) -> Inode {
        let mut inner = self.inner.write().unwrap();
        let name: Arc<str> = Arc::from(name);
        let ino = match inner.by_name.get(&(parent, name.clone())) {
            Some(&ino) => ino,
            None => {
                let ino = inner.next_ino;
                inner.next_ino += 1;
                inner.by_name.insert((parent, name), ino);
                ino
            }
        };
        let node = Inode {
            ino,
            parent,
            key: Arc::from(key),
            kind,
            validated: Instant::now(),
            stale: false,
        };
        inner.nodes.insert(ino, node.clone());
        node
    }

    /// Marks `ino`'s metadata as out of date, so the next use asks the service.
    pub fn invalidate(&self, ino: u64) {
        if let Some(node) = self.inner.write().unwrap().nodes.get_mut(&ino) {
            node.stale = true;
        }
    }

    /// Counts one kernel reference (a lookup answered with this inode).
    pub fn remember(&self, ino: u64) {
        *self.inner.write().unwrap().lookups.entry(ino).or_default() += 1;
    }

    /// Drops `n` kernel references. The number stays bound to its path.
    pub fn forget(&self, ino: u64, n: u64) {
        let mut inner = self.inner.write().unwrap();
        if let Some(count) = inner.lookups.get_mut(&ino) {
            *count = count.saturating_sub(n);
            if *count == 0 {
                inner.lookups.remove(&ino);
            }
        }
    }

    /// Kernel references held on `ino`.
    pub fn lookup_count(&self, ino: u64) -> u64 {
        self.inner
            .read()
            .unwrap()
            .lookups
            .get(&ino)
            .copied()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_stable_per_path_and_survive_forget() {
        let t = InodeTable::new("");
        let a = t.upsert(ROOT_INO, "a", "a", Kind::Dir);
        let b = t.upsert(a.ino, "b", "a/b", Kind::Dir);
        assert_ne!(a.ino, b.ino);
        t.remember(b.ino);
        t.forget(b.ino, 1);
        assert_eq!(t.lookup_count(b.ino), 0);
        let again = t.upsert(a.ino, "b", "a/b", Kind::Dir);
        assert_eq!(again.ino, b.ino);
        assert_eq!(t.child(a.ino, "b").unwrap().ino, b.ino);
        assert_eq!(t.get(ROOT_INO).unwrap().dir_prefix(), "");
        assert_eq!(a.child_key("x"), "a/x");
    }
}
