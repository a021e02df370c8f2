//! SEMANTICS "Reading" under an outage: with the server gone, reads fail with EIO within a
//! bounded time; when it returns, reads succeed again without a remount.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// A disk-backed Azurite on a fixed port, so it can be stopped and started with its data.
struct RestartableAzurite {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl RestartableAzurite {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap().keep();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut a = RestartableAzurite {
            port,
            dir,
            child: None,
        };
        a.start();
        a
    }

    fn start(&mut self) {
        let bin = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(".tools/azurite/node_modules/.bin/azurite-blob");
        let child = Command::new(bin)
            .args([
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                &self.port.to_string(),
            ])
            .args([
                "--skipApiVersionCheck",
                "--loose",
                "--silent",
                "--disableTelemetry",
                "--location",
            ])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "Azurite did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops it with SIGTERM, so that it saves its metadata for the next start.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{ACCOUNT}", self.port)
    }
}

impl Drop for RestartableAzurite {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn reads_fail_with_eio_in_bounded_time_while_the_server_is_gone_and_recover() {
    let mut az = RestartableAzurite::new();
    let c = Container::at(&format!("{}/outage", az.endpoint()));
    c.put("a.txt", b"first");
    c.put("b.txt", b"second");
    let m = mount(&c.url, &["--cache-mem", "8M"]);
    assert_eq!(std::fs::read(m.p("a.txt")).unwrap(), b"first");
    az.stop();
    let start = Instant::now();
    let err = std::fs::read(m.p("b.txt")).unwrap_err();
    let took = start.elapsed();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    assert!(took < Duration::from_secs(90), "failed after {took:?}");
    eprintln!("EIO after {took:?} with the server gone");
    assert!(m.log_text().contains("cannot reach"), "{}", m.log_text());
    az.start();
    assert_eq!(
        std::fs::read(m.p("b.txt")).unwrap(),
        b"second",
        "no remount needed"
    );
}
