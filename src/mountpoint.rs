//! Mountpoints: checking one before mounting, finding mounts, and unmounting.

use std::io;
use std::path::{Path, PathBuf};

/// Why a mountpoint cannot be used (or unmounted); each message names the fix.
#[derive(Debug, thiserror::Error)]
pub enum MountpointError {
    #[error("mountpoint {0} does not exist: create it with 'mkdir -p {0}'")]
    Missing(String),
    #[error("mountpoint {0} is not a directory: give an empty directory")]
    NotADirectory(String),
    #[error(
        "mountpoint {0} is already mounted ({1}): unmount it first with 'blobmount unmount {0}'"
    )]
    AlreadyMounted(String, String),
    #[error(
        "mountpoint {0} holds a dead mount (Transport endpoint is not connected): clean it up with 'blobmount unmount {0}'"
    )]
    DeadMount(String),
    #[error("mountpoint {0}: {1}")]
    Io(String, io::Error),
    #[error("{0} is a {1} mount, not a blobmount one: use umount for it")]
    NotOurs(String, String),
    #[error("{0} is not mounted: nothing to unmount")]
    NotMounted(String),
    #[error("{0} is busy: a process still uses it (see 'fuser -vm {0}'); close it and retry")]
    Busy(String),
}

/// One line of /proc/self/mountinfo that matters here.
#[derive(Debug, Clone)]
pub struct MountEntry {
    pub target: PathBuf,
    pub fstype: String,
    pub source: String,
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && let Some(v) = std::str::from_utf8(&bytes[i + 1..i + 4])
                .ok()
                .and_then(|d| u8::from_str_radix(d, 8).ok())
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every current mount, from /proc/self/mountinfo.
pub fn mounts() -> Vec<MountEntry> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines().filter_map(parse_mountinfo_line).collect()
}

fn parse_mountinfo_line(line: &str) -> Option<MountEntry> {
    let (left, right) = line.split_once(" - ")?;
    let target = left.split(' ').nth(4)?;
    let mut r = right.split(' ');
    let fstype = r.next()?.to_string();
    let source = r.next().unwrap_or_default().to_string();
    Some(MountEntry {
        target: PathBuf::from(unescape(target)),
        fstype,
        source: unescape(&source),
    })
}

/// The mount whose target is exactly `path`, if any (the last one wins, as in the kernel).
pub fn mount_at(path: &Path) -> Option<MountEntry> {
    mounts().into_iter().rev().find(|m| m.target == path)
}

/// A mountpoint ready to be mounted on.
#[derive(Debug)]
pub struct Prepared {
    /// Its absolute path.
    pub path: PathBuf,
    /// Set when a dead mount (its daemon gone) had to be cleared away first.
    pub cleared: Option<String>,
}

/// Checks that `path` can be mounted on. A dead FUSE mount left by a daemon that was
/// killed ("Transport endpoint is not connected") is detached first.
pub fn check_for_mount(path: &Path) -> Result<Prepared, MountpointError> {
    let shown = path.display().to_string();
    let mut cleared = None;
    let abs = match std::fs::canonicalize(path) {
        Ok(p) => p,
        Err(e) if is_dead_error(&e) => {
            let abs = absolute(path);
            detach_dead(&abs).map_err(|_| MountpointError::DeadMount(shown.clone()))?;
            cleared = Some(format!(
                "cleared a dead mount at {} (its daemon had exited): mounting again",
                abs.display()
            ));
            abs
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(MountpointError::Missing(shown));
        }
        Err(e) => return Err(MountpointError::Io(shown, e)),
    };
    if !abs.is_dir() {
        return Err(MountpointError::NotADirectory(shown));
    }
    if let Some(m) = mount_at(&abs) {
        // The kernel may still answer a stat from its cache: a directory read cannot be.
        let dead = m.fstype.starts_with("fuse")
            && std::fs::read_dir(&abs)
                .err()
                .is_some_and(|e| is_dead_error(&e));
        if !dead {
            return Err(MountpointError::AlreadyMounted(
                abs.display().to_string(),
                format!("{} from {}", m.fstype, m.source),
            ));
        }
        detach_dead(&abs).map_err(|_| MountpointError::DeadMount(shown.clone()))?;
        cleared = Some(format!(
            "cleared a dead mount at {} (its daemon had exited): mounting again",
            abs.display()
        ));
    }
    Ok(Prepared { path: abs, cleared })
}

/// What the kernel answers on a FUSE mount whose daemon is gone: ENOTCONN ("Transport
/// endpoint is not connected") or, once the connection was aborted, ECONNABORTED.
fn is_dead_error(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOTCONN | libc::ECONNABORTED))
}

/// Lazily detaches the dead FUSE mount at `path`.
fn detach_dead(path: &Path) -> io::Result<()> {
    match mount_at(path) {
        Some(m) if m.fstype.starts_with("fuse") => {}
        _ => return Err(io::Error::from_raw_os_error(libc::ENOTCONN)),
    }
    if unsafe { libc::geteuid() } == 0 {
        umount2(path, libc::MNT_DETACH)
    } else {
        let out = std::process::Command::new("fusermount3")
            .arg("-uz")
            .arg(path)
            .output()?;
        if out.status.success() {
            Ok(())
        } else {
            Err(io::Error::other(
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ))
        }
    }
}

/// Unmounts `path`: directly as root, else through `fusermount3 -u`.
pub fn unmount(path: &Path) -> Result<(), MountpointError> {
    let abs = absolute(path);
    let shown = abs.display().to_string();
    match mount_at(&abs) {
        None => return Err(MountpointError::NotMounted(shown)),
        Some(m) if !m.fstype.starts_with("fuse") => {
            return Err(MountpointError::NotOurs(shown, m.fstype));
        }
        Some(_) => {}
    }
    let result = if unsafe { libc::geteuid() } == 0 {
        umount2(&abs, 0)
    } else {
        fusermount_u(&abs)
    };
    match result {
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => Err(MountpointError::Busy(shown)),
        Err(e) => Err(MountpointError::Io(shown, e)),
        Ok(()) => Ok(()),
    }
}

/// `path` made absolute without touching it (a dead mount cannot be canonicalized).
fn absolute(path: &Path) -> PathBuf {
    std::fs::canonicalize(path)
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf())
}

/// The umount2(2) system call.
pub fn umount2(path: &Path, flags: libc::c_int) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    if unsafe { libc::umount2(c.as_ptr(), flags) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn fusermount_u(path: &Path) -> io::Result<()> {
    let out = std::process::Command::new("fusermount3")
        .arg("-u")
        .arg(path)
        .output()?;
    if out.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&out.stderr);
    if text.contains("busy") {
        Err(io::Error::from_raw_os_error(libc::EBUSY))
    } else {
        Err(io::Error::other(text.trim().to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mountinfo_with_escapes() {
        let line =
            "36 35 0:31 / /mnt/my\\040data rw,nosuid - fuse.blobmount http://h/c rw,user_id=0";
        let m = parse_mountinfo_line(line).unwrap();
        assert_eq!(m.target, PathBuf::from("/mnt/my data"));
        assert_eq!(m.fstype, "fuse.blobmount");
        assert_eq!(m.source, "http://h/c");
    }

    #[test]
    fn refuses_missing_and_non_directories() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        assert!(matches!(
            check_for_mount(&missing),
            Err(MountpointError::Missing(_))
        ));
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        assert!(matches!(
            check_for_mount(&file),
            Err(MountpointError::NotADirectory(_))
        ));
        assert!(check_for_mount(dir.path()).unwrap().cleared.is_none());
        assert!(matches!(
            check_for_mount(Path::new("/proc")),
            Err(MountpointError::AlreadyMounted(..))
        ));
    }
}
