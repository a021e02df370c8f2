//! The FUSE adapter: translates kernel requests into [`Superblock`] calls and back.
//!
//! Owns only what is FUSE-specific: file and directory handles, attribute formatting
//! (owner, modes, TTLs), readdir offsets, and EROFS for every mutating operation. Each
//! request runs as a task on the tokio runtime, so a slow read never blocks the session.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    KernelConfig, LockOwner, OpenAccMode, OpenFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite,
    ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use tokio::runtime::Handle;

use super::inode::{Inode, Kind};
use super::superblock::{DirEntry, FsError, OpenFile, Superblock, mtime_of};
use crate::prefetch::Prefetcher;
use crate::store::BlobStore;

/// Owner, modes and cache lifetimes shown for every inode.
#[derive(Clone, Debug)]
pub struct AttrConfig {
    pub uid: u32,
    pub gid: u32,
    pub file_mode: u16,
    pub dir_mode: u16,
    /// How long the kernel may cache entries and attributes.
    pub ttl: Duration,
}

type DirSnapshot = Arc<tokio::sync::Mutex<Option<Arc<Vec<DirEntry>>>>>;

/// An open file: the pinned blob version and its read-ahead state.
struct OpenHandle {
    file: OpenFile,
    prefetcher: Prefetcher,
}

/// The `fuser::Filesystem` of one mount.
pub struct FuseAdapter<S: BlobStore> {
    sb: Arc<Superblock<S>>,
    rt: Handle,
    attrs: AttrConfig,
    mounted_at: SystemTime,
    files: Arc<Mutex<HashMap<u64, Arc<OpenHandle>>>>,
    /// ETag each inode had when last opened: the kernel's page cache is kept across opens
    /// only while it is unchanged.
    opened_etags: Arc<Mutex<HashMap<u64, Arc<str>>>>,
    dirs: Arc<Mutex<HashMap<u64, DirSnapshot>>>,
    next_fh: AtomicU64,
}

fn errno(e: &FsError) -> Errno {
    Errno::from_i32(e.errno())
}

impl<S: BlobStore> FuseAdapter<S> {
    pub fn new(sb: Arc<Superblock<S>>, rt: Handle, attrs: AttrConfig) -> Self {
        FuseAdapter {
            sb,
            rt,
            attrs,
            mounted_at: SystemTime::now(),
            files: Arc::default(),
            opened_etags: Arc::default(),
            dirs: Arc::default(),
            next_fh: AtomicU64::new(1),
        }
    }

    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.rt.spawn(task);
    }

    /// A cheap clone of what tasks need.
    fn ctx(&self) -> Ctx<S> {
        Ctx {
            sb: self.sb.clone(),
            attrs: self.attrs.clone(),
            mounted_at: self.mounted_at,
        }
    }

    fn new_fh(&self) -> u64 {
        self.next_fh.fetch_add(1, Ordering::Relaxed)
    }
}

/// What a request task carries.
struct Ctx<S: BlobStore> {
    sb: Arc<Superblock<S>>,
    attrs: AttrConfig,
    mounted_at: SystemTime,
}

impl<S: BlobStore> Ctx<S> {
    fn attr(&self, node: &Inode) -> FileAttr {
        let (kind, size, perm, nlink) = match &node.kind {
            Kind::Dir => (FileType::Directory, 0, self.attrs.dir_mode, 2),
            Kind::File { size, .. } => (FileType::RegularFile, *size, self.attrs.file_mode, 1),
        };
        let time = mtime_of(node, self.mounted_at);
        FileAttr {
            ino: INodeNo(node.ino),
            size,
            blocks: size.div_ceil(512),
            atime: time,
            mtime: time,
            ctime: time,
            crtime: time,
            kind,
            perm,
            nlink,
            uid: self.attrs.uid,
            gid: self.attrs.gid,
            rdev: 0,
            flags: 0,
            blksize: 4096,
        }
    }

    fn reply_entry(&self, node: &Inode, reply: ReplyEntry) {
        self.sb.inodes().remember(node.ino);
        reply.entry(&self.attrs.ttl, &self.attr(node), Generation(0));
    }
}

/// Entry `i` of a listing that starts with "." and "..": its name, inode, and whether the
/// kernel counts it as a lookup (readdirplus). Readdir offsets are `i + 1`.
fn nth_entry<'a>(
    i: usize,
    dir: &'a Inode,
    parent: &'a Inode,
    entries: &'a [DirEntry],
) -> Option<(&'a str, &'a Inode, bool)> {
    match i {
        0 => Some((".", dir, false)),
        1 => Some(("..", parent, false)),
        _ => entries
            .get(i - 2)
            .map(|e| (e.name.as_str(), &e.inode, true)),
    }
}

impl<S: BlobStore> FuseAdapter<S> {
    /// The listing of `fh` for a readdir at `offset`: listed afresh at offset 0.
    async fn snapshot(
        sb: &Superblock<S>,
        slot: DirSnapshot,
        ino: u64,
        offset: u64,
    ) -> Result<Arc<Vec<DirEntry>>, FsError> {
        let mut guard = slot.lock().await;
        if offset == 0 || guard.is_none() {
            *guard = Some(Arc::new(sb.read_dir(ino).await?));
        }
        Ok(guard.clone().unwrap_or_default())
    }

    /// What a readdir at `offset` needs: the directory, its parent, and the listing.
    async fn listing(
        sb: &Superblock<S>,
        slot: DirSnapshot,
        ino: u64,
        offset: u64,
    ) -> Result<(Inode, Inode, Arc<Vec<DirEntry>>), Errno> {
        let entries = Self::snapshot(sb, slot, ino, offset)
            .await
            .map_err(|e| errno(&e))?;
        let dir = sb.inodes().get(ino).ok_or(Errno::ESTALE)?;
        let parent = sb.inodes().get(dir.parent).unwrap_or_else(|| dir.clone());
        Ok((dir, parent, entries))
    }

    fn dir_slot(&self, fh: FileHandle) -> DirSnapshot {
        self.dirs
            .lock()
            .unwrap()
            .get(&fh.0)
            .cloned()
            .unwrap_or_default()
    }
}

impl<S: BlobStore> Filesystem for FuseAdapter<S> {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Accept as much kernel read-ahead as offered (the mount raises it further through
        // sysfs once mounted); ours works on top of it.
        if let Err(max) = config.set_max_readahead(1 << 20) {
            let _ = config.set_max_readahead(max);
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let Some(name) = name.to_str().map(str::to_string) else {
            return reply.error(Errno::ENOENT);
        };
        let ctx = self.ctx();
        self.spawn(async move {
            match ctx.sb.lookup(parent.0, &name).await {
                Ok(node) => ctx.reply_entry(&node, reply),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.sb.inodes().forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let ctx = self.ctx();
        self.spawn(async move {
            match ctx.sb.getattr(ino.0).await {
                Ok(node) => reply.attr(&ctx.attrs.ttl, &ctx.attr(&node)),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.acc_mode() != OpenAccMode::O_RDONLY {
            return reply.error(Errno::EROFS);
        }
        let ctx = self.ctx();
        let files = self.files.clone();
        let opened = self.opened_etags.clone();
        let fh = self.new_fh();
        self.spawn(async move {
            match ctx.sb.open(ino.0).await {
                Ok(file) => {
                    let previous = opened.lock().unwrap().insert(ino.0, file.etag.clone());
                    let flags = if previous.as_ref() == Some(&file.etag) {
                        FopenFlags::FOPEN_KEEP_CACHE
                    } else {
                        FopenFlags::empty()
                    };
                    let handle = OpenHandle {
                        file,
                        prefetcher: Prefetcher::default(),
                    };
                    files.lock().unwrap().insert(fh, Arc::new(handle));
                    reply.opened(FileHandle(fh), flags);
                }
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let Some(handle) = self.files.lock().unwrap().get(&fh.0).cloned() else {
            return reply.error(Errno::EBADF);
        };
        let sb = self.sb.clone();
        self.spawn(async move {
            match sb
                .read(&handle.file, &handle.prefetcher, offset, size)
                .await
            {
                Ok(bytes) => reply.data(&bytes),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.files.lock().unwrap().remove(&fh.0);
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.sb.inodes().get(ino.0).map(|n| n.kind) {
            Some(Kind::Dir) => {
                let fh = self.new_fh();
                self.dirs.lock().unwrap().insert(fh, DirSnapshot::default());
                reply.opened(FileHandle(fh), FopenFlags::empty());
            }
            Some(Kind::File { .. }) => reply.error(Errno::ENOTDIR),
            None => reply.error(Errno::ESTALE),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let ctx = self.ctx();
        let slot = self.dir_slot(fh);
        self.spawn(async move {
            let (dir, parent, entries) = match Self::listing(&ctx.sb, slot, ino.0, offset).await {
                Ok(found) => found,
                Err(e) => return reply.error(e),
            };
            let mut i = offset as usize;
            while let Some((name, node, _)) = nth_entry(i, &dir, &parent, &entries) {
                let kind = match node.kind {
                    Kind::File { .. } => FileType::RegularFile,
                    Kind::Dir => FileType::Directory,
                };
                if reply.add(INodeNo(node.ino), i as u64 + 1, kind, name) {
                    break;
                }
                i += 1;
            }
            reply.ok();
        });
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let ctx = self.ctx();
        let slot = self.dir_slot(fh);
        self.spawn(async move {
            let (dir, parent, entries) = match Self::listing(&ctx.sb, slot, ino.0, offset).await {
                Ok(found) => found,
                Err(e) => return reply.error(e),
            };
            let mut i = offset as usize;
            while let Some((name, node, counted)) = nth_entry(i, &dir, &parent, &entries) {
                let attr = ctx.attr(node);
                let ttl = &ctx.attrs.ttl;
                if reply.add(
                    INodeNo(node.ino),
                    i as u64 + 1,
                    name,
                    ttl,
                    &attr,
                    Generation(0),
                ) {
                    break;
                }
                if counted {
                    ctx.sb.inodes().remember(node.ino);
                }
                i += 1;
            }
            reply.ok();
        });
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.dirs.lock().unwrap().remove(&fh.0);
        reply.ok();
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // Nothing is ever written, so there is nothing to flush.
        reply.ok();
    }

    fn getxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _size: u32,
        reply: ReplyXattr,
    ) {
        // Blobs carry no extended attributes (metadata is not exposed as xattrs).
        reply.error(Errno::NO_XATTR);
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, size: u32, reply: ReplyXattr) {
        if size == 0 {
            reply.size(0);
        } else {
            reply.data(&[]);
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // Object storage has no fixed capacity; report a read-only filesystem with no free space.
        reply.statfs(0, 0, 0, 0, 0, 4096, super::names::NAME_MAX as u32, 4096);
    }

    // Every mutating operation: the mount is read-only.

    fn setattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mknod(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mkdir(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn unlink(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn rmdir(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn symlink(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _link_name: &OsStr,
        _target: &Path,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn rename(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _newparent: INodeNo,
        _newname: &OsStr,
        _flags: fuser::RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn link(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _newparent: INodeNo,
        _newname: &OsStr,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        reply.error(Errno::EROFS);
    }

    fn create(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        reply.error(Errno::EROFS);
    }

    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _length: u64,
        _mode: i32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }
}
