//! Test fixtures: real mounts of containers seeded with `azurite.rs`.

#![allow(dead_code)]

pub use crate::azurite::*;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn blobmount_bin() -> &'static str {
    env!("CARGO_BIN_EXE_blobmount")
}

/// A live mount in a temporary directory; unmounted (and its daemon gone) on drop.
pub struct Mount {
    pub path: PathBuf,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

/// Runs `blobmount mount SOURCE <tmp>/mnt ARGS` with the SAS in the environment.
pub fn try_mount(source: &str, sas: Option<&str>, args: &[&str]) -> Result<Mount, Output> {
    try_mount_env(source, sas, &[], args)
}

/// Like [`try_mount`], with extra environment variables.
pub fn try_mount_env(
    source: &str,
    sas: Option<&str>,
    envs: &[(&str, &str)],
    args: &[&str],
) -> Result<Mount, Output> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mnt");
    std::fs::create_dir(&path).unwrap();
    let log = dir.path().join("blobmount.log");
    let out = blobmount(sas, |c| {
        c.arg("mount")
            .arg(source)
            .arg(&path)
            .arg("--log-file")
            .arg(&log)
            .args(args)
            .envs(envs.iter().copied());
    });
    if out.status.success() {
        Ok(Mount {
            path,
            log,
            _dir: dir,
        })
    } else {
        Err(out)
    }
}

pub fn mount(source: &str, args: &[&str]) -> Mount {
    match try_mount(source, Some(&read_sas()), args) {
        Ok(m) => m,
        Err(out) => panic!("mount failed: {}", String::from_utf8_lossy(&out.stderr)),
    }
}

/// Runs the blobmount binary to completion (stdin closed), SAS given through the environment.
pub fn blobmount(sas: Option<&str>, build: impl FnOnce(&mut Command)) -> Output {
    let mut cmd = Command::new(blobmount_bin());
    for var in [
        "AZURE_STORAGE_SAS_TOKEN",
        "RUST_LOG",
        "MSI_ENDPOINT",
        "MSI_SECRET",
        "IDENTITY_ENDPOINT",
        "IDENTITY_HEADER",
        "DEFAULT_IDENTITY_CLIENT_ID",
        "BLOBMOUNT_IDENTITY_ENDPOINT",
    ] {
        cmd.env_remove(var);
    }
    if let Some(s) = sas {
        cmd.env("AZURE_STORAGE_SAS_TOKEN", s);
    }
    build(&mut cmd);
    cmd.stdin(Stdio::null()).output().unwrap()
}

impl Mount {
    pub fn p(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn unmount(&self) -> Output {
        blobmount(None, |c| {
            c.arg("unmount").arg(&self.path);
        })
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if is_mounted(&self.path) {
            let _ = self.unmount();
        }
        wait_until(Duration::from_secs(10), || {
            daemon_pids(&self.path).is_empty()
        });
    }
}

pub fn is_mounted(path: &Path) -> bool {
    blobmount::mountpoint::mount_at(path).is_some()
}

/// Processes whose command line names `mountpoint` (our daemons).
pub fn daemon_pids(mountpoint: &Path) -> Vec<u32> {
    let needle = mountpoint.as_os_str().as_encoded_bytes();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let is_ours = cmdline.split(|b| *b == 0).any(|arg| arg == needle)
            && cmdline.windows(5).any(|w| w == b"mount");
        if is_ours {
            pids.push(pid);
        }
    }
    pids
}

pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    cond()
}

pub fn spawn_foreground(source: &str, mountpoint: &Path, sas: &str) -> Child {
    Command::new(blobmount_bin())
        .arg("mount")
        .arg(source)
        .arg(mountpoint)
        .arg("--foreground")
        .env("AZURE_STORAGE_SAS_TOKEN", sas)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The names in directory `dir`.
pub fn list_names(dir: &Path) -> std::collections::BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

pub fn names_set(names: &[&str]) -> std::collections::BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}
