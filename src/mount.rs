//! The `mount` command: check everything that can be checked, then serve until unmounted.
//!
//! Order: flags and SOURCE, credential, mountpoint (all before forking, so mistakes are
//! reported at once), then in the serving process: a first listing of the container (so a
//! wrong URL or credential fails the command with its cause and fix), the FUSE session, a
//! probe that the mount answers, readiness, and a clean unmount on SIGTERM/SIGINT.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fuser::{Config, MountOption, SessionACL};
use tracing::{error, info, warn};

use crate::auth::{self, Credential, IdentitySelector, SasToken};
use crate::cache::MemoryBlockCache;
use crate::cli::{AuthArgs, MountArgs};
use crate::daemon::{self, Readiness};
use crate::fs::{AttrConfig, FuseAdapter, Superblock, SuperblockConfig};
use crate::mountpoint::{self, umount2};
use crate::prefetch::ReadConfig;
use crate::source::ContainerSource;
use crate::store::diagnose::explain;
use crate::store::{AzureBlobStore, BlobStore, StoreOptions};

/// Everything decided before serving.
struct MountPlan {
    source: ContainerSource,
    credential: Arc<dyn Credential>,
    why: &'static str,
    mountpoint: PathBuf,
    /// What was done to a dead mount found at the mountpoint, to log.
    cleared: Option<String>,
    attrs: AttrConfig,
    metadata_ttl: Duration,
    allow_other: bool,
    cache_mem: u64,
    block_size: u64,
}

impl MountPlan {
    fn prepare(args: &MountArgs) -> Result<Self, String> {
        let (source, credential, why) = source_and_credential(&args.source, &args.auth)?;
        let prepared = mountpoint::check_for_mount(&args.mountpoint).map_err(|e| e.to_string())?;
        let attrs = AttrConfig {
            uid: args.uid.unwrap_or_else(|| unsafe { libc::getuid() }),
            gid: args.gid.unwrap_or_else(|| unsafe { libc::getgid() }),
            file_mode: args.file_mode,
            dir_mode: args.dir_mode,
            ttl: args.metadata_ttl,
        };
        Ok(MountPlan {
            source,
            credential,
            why,
            mountpoint: prepared.path,
            cleared: prepared.cleared,
            attrs,
            metadata_ttl: args.metadata_ttl,
            allow_other: args.allow_other,
            cache_mem: args.cache_mem,
            block_size: args.block_size,
        })
    }
}

/// Parses SOURCE and picks the credential the flags and environment ask for.
pub fn source_and_credential(
    source: &str,
    args: &AuthArgs,
) -> Result<(ContainerSource, Arc<dyn Credential>, &'static str), String> {
    let (source, sas_in_url) = ContainerSource::parse(source).map_err(|e| e.to_string())?;
    let from_flag = args.sas_token.as_deref().map(SasToken::new);
    let (credential, why) =
        auth::resolve(args.auth, [from_flag, sas_in_url], &identity_options(args))
            .map_err(|e| e.to_string())?;
    if credential.is_bearer() && source.container_url().scheme() != "https" {
        return Err(format!(
            "{} sends bearer tokens, which only travel over https: give an https:// SOURCE",
            credential.describe()
        ));
    }
    Ok((source, credential, why))
}

fn identity_options(args: &AuthArgs) -> auth::IdentityOptions {
    let selector = match (&args.client_id, &args.object_id, &args.resource_id) {
        (Some(id), _, _) => IdentitySelector::ClientId(id.clone()),
        (_, Some(id), _) => IdentitySelector::ObjectId(id.clone()),
        (_, _, Some(id)) => IdentitySelector::ResourceId(id.clone()),
        _ => IdentitySelector::System,
    };
    auth::IdentityOptions {
        endpoint: args.identity_endpoint.clone(),
        selector,
        env: auth::IdentityEnv::from_process(),
    }
}

/// Runs `blobmount mount`; returns the process exit code.
pub fn run(args: MountArgs) -> i32 {
    daemon::init_logging(&args.log_level);
    let plan = match MountPlan::prepare(&args) {
        Ok(plan) => plan,
        Err(message) => {
            eprintln!("blobmount: {message}");
            return 2;
        }
    };
    let log = match args.log_file.as_deref().map(daemon::open_log).transpose() {
        Ok(log) => log,
        Err(e) => {
            eprintln!(
                "blobmount: cannot open the log file: {e}: give a writable path to --log-file"
            );
            return 2;
        }
    };
    let readiness = if args.foreground {
        Readiness::Foreground
    } else {
        match daemon::fork_and_wait(log.as_ref()) {
            Ok(Ok(code)) => return code,
            Ok(Err(child)) => child,
            Err(e) => {
                eprintln!("blobmount: cannot start the background daemon: {e}");
                return 1;
            }
        }
    };
    if args.foreground && log.is_some() {
        daemon::redirect_stderr(log.as_ref());
    }
    serve(plan, readiness)
}

fn serve(plan: MountPlan, readiness: Readiness) -> i32 {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("blobmount-io")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(readiness, &format!("cannot start the runtime: {e}")),
    };
    let what = plan.source.display_name();
    if let Some(note) = &plan.cleared {
        warn!("{note}");
    }
    info!(
        "mounting {what} at {} with {} ({})",
        plan.mountpoint.display(),
        plan.credential.describe(),
        plan.why
    );
    let store = match AzureBlobStore::new(
        plan.source.clone(),
        plan.credential.clone(),
        &StoreOptions::default(),
    ) {
        Ok(store) => store,
        Err(e) => return fail(readiness, &e.to_string()),
    };
    if let Err(e) = rt.block_on(preflight(&store, &plan.source.prefix)) {
        return fail(
            readiness,
            &format!("cannot list {what}: {}", explain(&e, &what)),
        );
    }
    let superblock = Arc::new(Superblock::new(
        store,
        &plan.source.prefix,
        superblock_config(&plan),
    ));
    let adapter = FuseAdapter::new(superblock.clone(), rt.handle().clone(), plan.attrs.clone());
    let mut session = match fuser::Session::new(
        adapter,
        &plan.mountpoint,
        &fuse_config(&plan, &what),
    ) {
        Ok(s) => s,
        Err(e) => {
            return fail(
                readiness,
                &format!(
                    "cannot mount at {}: {e}: check that /dev/fuse exists and fuse3 is installed (fusermount3)",
                    plan.mountpoint.display()
                ),
            );
        }
    };
    let unmounter = session.unmount_callable();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("blobmount-fuse".into())
        .spawn(move || {
            let result = session.run();
            let _ = done_tx.send(());
            result
        });
    let thread = match thread {
        Ok(t) => t,
        Err(e) => return fail(readiness, &format!("cannot start the FUSE thread: {e}")),
    };
    if let Err(e) = probe(&plan.mountpoint, Duration::from_secs(30)) {
        let _ = umount2(&plan.mountpoint, libc::MNT_DETACH);
        return fail(readiness, &format!("the mount did not answer: {e}"));
    }
    raise_kernel_readahead(&plan.mountpoint);
    info!("mounted {what} at {}", plan.mountpoint.display());
    readiness.ready();
    let stop = rt.block_on(wait_for_stop(done_rx));
    if let Some(signal) = stop {
        info!(
            "{signal} received: unmounting {}",
            plan.mountpoint.display()
        );
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        unmount_gracefully(unmounter, &plan.mountpoint);
    }
    let (gets, bytes) = superblock.read_stats();
    info!("content fetched: {bytes} bytes in {gets} GETs");
    match thread.join() {
        Ok(Ok(())) => {
            info!("unmounted {}", plan.mountpoint.display());
            0
        }
        Ok(Err(e)) => {
            error!("the FUSE session ended with an error: {e}");
            1
        }
        Err(_) => 1,
    }
}

/// Memory kept out of the block cache for demand reads in flight and their buffers.
const IN_FLIGHT_RESERVE: u64 = 32 << 20;

/// The cache takes `--cache-mem` less the read-ahead budget and the in-flight reserve, so
/// that all three together stay within it.
fn superblock_config(plan: &MountPlan) -> SuperblockConfig {
    let read = ReadConfig::for_cache(plan.cache_mem, plan.block_size);
    let cache_bytes = plan
        .cache_mem
        .saturating_sub(read.prefetch_budget + IN_FLIGHT_RESERVE)
        .max(plan.block_size);
    SuperblockConfig {
        metadata_ttl: plan.metadata_ttl,
        read,
        cache: Arc::new(MemoryBlockCache::new(cache_bytes)),
    }
}

fn fail(readiness: Readiness, message: &str) -> i32 {
    error!("{message}");
    readiness.failed(message);
    1
}

/// One listing call: proves the endpoint, the credential and the container.
async fn preflight(store: &AzureBlobStore, prefix: &str) -> Result<(), crate::store::StoreError> {
    let any = store.any_under(prefix).await?;
    if !prefix.is_empty() && !any {
        warn!("no blob starts with the prefix '{prefix}': the mount is empty for now");
    }
    Ok(())
}

fn fuse_config(plan: &MountPlan, what: &str) -> Config {
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::RO,
        MountOption::NoDev,
        MountOption::NoSuid,
        MountOption::NoAtime,
        MountOption::DefaultPermissions,
        MountOption::FSName(what.replace([',', ' '], "_")),
        MountOption::Subtype("blobmount".into()),
    ];
    if plan.allow_other {
        config.acl = SessionACL::All;
    }
    // Two threads take requests from the kernel, each on its own cloned /dev/fuse fd; the
    // work itself runs as tasks on the runtime.
    config.n_threads = Some(2);
    config.clone_fd = true;
    config
}

/// Kernel read-ahead for the mount, in KiB: FUSE reads then arrive 1 MiB at a time
/// instead of 128 KiB (the kernel's default, which the FUSE handshake cannot raise).
const KERNEL_READAHEAD_KB: u32 = 1024;

/// Raises the mount's read-ahead through its backing device info in sysfs (needs root;
/// best effort: without it reads are smaller, not wrong).
fn raise_kernel_readahead(mountpoint: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(mountpoint) else {
        return;
    };
    let (major, minor) = (libc::major(meta.dev()), libc::minor(meta.dev()));
    let path = format!("/sys/class/bdi/{major}:{minor}/read_ahead_kb");
    match std::fs::write(&path, KERNEL_READAHEAD_KB.to_string()) {
        Ok(()) => tracing::debug!("kernel read-ahead set to {KERNEL_READAHEAD_KB} KiB ({path})"),
        Err(e) => tracing::debug!("kernel read-ahead left as is: {path}: {e}"),
    }
}

/// Waits until the mount answers a stat of its root.
fn probe(mountpoint: &Path, timeout: Duration) -> Result<(), String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let path = mountpoint.to_path_buf();
    std::thread::spawn(move || {
        let _ = tx.send(std::fs::metadata(&path).map(|_| ()));
    });
    match rx.recv_timeout(timeout) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

/// Resolves with the signal's name, or `None` when the session ended (unmounted from outside).
async fn wait_for_stop(done: tokio::sync::oneshot::Receiver<()>) -> Option<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        let _ = done.await;
        return None;
    };
    tokio::select! {
        _ = term.recv() => Some("SIGTERM"),
        _ = int.recv() => Some("SIGINT"),
        _ = done => None,
    }
}

/// Unmounts, waiting up to 10 s for open files to close, then detaching lazily.
fn unmount_gracefully(mut unmounter: fuser::SessionUnmounter, mountpoint: &Path) {
    for _ in 0..20 {
        match unmounter.unmount() {
            Ok(()) => return,
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => {
                warn!("unmount failed ({e}); detaching lazily");
                break;
            }
        }
    }
    if let Err(e) = umount2(mountpoint, libc::MNT_DETACH) {
        error!("lazy unmount of {} failed: {e}", mountpoint.display());
    }
}
