//! Running in the background: fork before any thread exists, and tell the parent when the
//! mount serves (or why it failed), so `blobmount mount` exits 0 only on a working mount.
//!
//! Also owns readiness for systemd (`READY=1` with `Type=notify`) and where logs go.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// How the serving process reports its start-up outcome.
pub enum Readiness {
    /// Foreground: nobody waits but (maybe) systemd.
    Foreground,
    /// Background child: the write end of the pipe the parent reads.
    Child(File),
}

impl Readiness {
    /// The mount serves: tell the parent or systemd.
    /// In the background, stdin and stdout are then let go of.
    pub fn ready(self) {
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
        if let Readiness::Child(mut pipe) = self {
            let _ = pipe.write_all(b"K");
            redirect_stdin_stdout();
        }
    }

    /// Start-up failed with `message` (one line, no secret): tell the parent.
    pub fn failed(self, message: &str) {
        if let Readiness::Child(mut pipe) = self {
            let _ = pipe.write_all(format!("E{message}").as_bytes());
        }
    }
}

/// Forks. Must be called while the process has a single thread.
/// In the parent, waits for the child's outcome and returns the exit code to exit with;
/// in the child, sends stderr (the logs) to `log` or /dev/null (the parent reports
/// start-up errors) and returns the [`Readiness`] to report through.
pub fn fork_and_wait(log: Option<&File>) -> std::io::Result<Result<i32, Readiness>> {
    let mut fds = [0; 2];
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let (read_end, write_end) = unsafe {
        (
            File::from(OwnedFd::from_raw_fd(fds[0])),
            File::from(OwnedFd::from_raw_fd(fds[1])),
        )
    };
    match unsafe { libc::fork() } {
        -1 => Err(std::io::Error::last_os_error()),
        0 => {
            drop(read_end);
            unsafe { libc::setsid() };
            redirect_stderr(log);
            Ok(Err(Readiness::Child(write_end)))
        }
        _child => {
            drop(write_end);
            Ok(Ok(wait_for_child(read_end)))
        }
    }
}

fn wait_for_child(mut pipe: File) -> i32 {
    let mut text = String::new();
    let _ = pipe.read_to_string(&mut text);
    match text.chars().next() {
        Some('K') => 0,
        Some('E') => {
            eprintln!("blobmount: {}", &text[1..]);
            1
        }
        _ => {
            eprintln!(
                "blobmount: the daemon exited before the mount was ready: run with --foreground or --log-file to see why"
            );
            1
        }
    }
}

/// Points stderr (where logs go) at `log`, or at /dev/null.
pub fn redirect_stderr(log: Option<&File>) {
    let null = File::options().write(true).open("/dev/null");
    let target = log.or(null.as_ref().ok());
    if let Some(f) = target {
        unsafe { libc::dup2(f.as_raw_fd(), 2) };
    }
}

fn redirect_stdin_stdout() {
    if let Ok(null) = File::options().read(true).write(true).open("/dev/null") {
        unsafe {
            libc::dup2(null.as_raw_fd(), 0);
            libc::dup2(null.as_raw_fd(), 1);
        }
    }
}

/// Opens (creating, appending) a log file.
pub fn open_log(path: &Path) -> std::io::Result<File> {
    File::options().create(true).append(true).open(path)
}

/// Sends logs (tracing) to stderr, filtered by RUST_LOG or `level`.
pub fn init_logging(level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("warn,blobmount={level}")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}
