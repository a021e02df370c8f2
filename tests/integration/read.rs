//! SEMANTICS "Reading": byte-exact content, directories, prefixes, consistency.

use std::io::Read;

use crate::common::*;

#[test]
fn reading_large_and_many_small_blobs_is_byte_exact() {
    let c = Container::new("bytes");
    let big = random_bytes(100 * 1024 * 1024 + 12345, 1);
    c.put("big/blob.bin", &big);
    let small: Vec<(String, Vec<u8>)> = (0..300)
        .map(|i| {
            (
                format!("small/f{i:03}.dat"),
                random_bytes(i * 97 % 70_000, i as u64 + 10),
            )
        })
        .collect();
    c.put_many(small.clone(), 16);
    let m = mount(&c.url, &[]);

    let read_big = std::fs::read(m.p("big/blob.bin")).unwrap();
    assert_eq!(read_big.len(), big.len());
    assert_eq!(sha256(&read_big), sha256(&big));
    for (name, data) in &small {
        let got = std::fs::read(m.p(name)).unwrap();
        assert_eq!(sha256(&got), sha256(data), "{name}");
    }
    let listed = list_names(&m.p("small"));
    assert_eq!(listed.len(), 300);
}

#[test]
fn nested_virtual_directories_and_folder_markers() {
    let c = Container::new("dirs");
    c.put("a/b/c/deep.txt", b"deep");
    c.put("a/top.txt", b"top");
    c.put_with_metadata("empty-dir", b"", &[("hdi_isfolder", "true")]);
    c.put_with_metadata("marked", b"", &[("hdi_isfolder", "true")]);
    c.put("marked/inside.txt", b"inside");
    let m = mount(&c.url, &[]);

    assert_eq!(std::fs::read(m.p("a/b/c/deep.txt")).unwrap(), b"deep");
    assert!(m.p("a/b").is_dir());
    assert!(m.p("a/b/c").is_dir());
    assert!(
        m.p("empty-dir").is_dir(),
        "hdi_isfolder marker is a directory"
    );
    assert_eq!(std::fs::read_dir(m.p("empty-dir")).unwrap().count(), 0);
    assert!(m.p("marked").is_dir());
    assert_eq!(std::fs::read(m.p("marked/inside.txt")).unwrap(), b"inside");
    let root = list_names(&m.path);
    assert_eq!(root, names_set(&["a", "empty-dir", "marked"]));
    let meta = std::fs::metadata(m.p("a/top.txt")).unwrap();
    assert_eq!(meta.len(), 3);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o7777, 0o444);
    assert_eq!(
        std::fs::metadata(m.p("a")).unwrap().permissions().mode() & 0o7777,
        0o555
    );
}

#[test]
fn a_directory_of_12000_entries_lists_completely() {
    let c = Container::new("wide");
    let blobs: Vec<(String, Vec<u8>)> = (0..12_000)
        .map(|i| (format!("wide/e{i:05}"), vec![b'x'; i % 7]))
        .collect();
    c.put_many(blobs, 32);
    // Mounted at the prefix: Azurite lists a level that collapses 12,000 blobs into one
    // prefix in minutes (quadratic), which real Azure does not.
    let m = mount(&c.source_with_prefix("wide"), &[]);
    let names = list_names(&m.path);
    assert_eq!(names.len(), 12_000);
    assert!(names.contains("e00000") && names.contains("e11999"));
    assert_eq!(std::fs::metadata(m.p("e00006")).unwrap().len(), 6);
}

#[test]
fn a_prefix_mount_shows_only_the_prefix() {
    let c = Container::new("prefix");
    c.put("data/train/x.txt", b"x");
    c.put("data/train/sub/y.txt", b"y");
    c.put("data/trainer.txt", b"no");
    c.put("other.txt", b"no");
    let m = mount(&c.source_with_prefix("data/train"), &[]);
    let root = list_names(&m.path);
    assert_eq!(root, names_set(&["sub", "x.txt"]));
    assert_eq!(std::fs::read(m.p("sub/y.txt")).unwrap(), b"y");
    assert!(!m.p("other.txt").exists());
}

#[test]
fn a_blob_overwritten_after_open_gives_eio_not_mixed_bytes() {
    let c = Container::new("etag");
    // Larger than read-ahead can reach before the overwrite.
    let old = vec![b'o'; 48 * 1024 * 1024];
    c.put("f.bin", &old);
    let m = mount(&c.url, &["--metadata-ttl", "1"]);
    let mut file = std::fs::File::open(m.p("f.bin")).unwrap();
    let mut first = vec![0u8; 64 * 1024];
    file.read_exact(&mut first).unwrap();
    assert!(first.iter().all(|b| *b == b'o'));
    c.put("f.bin", &vec![b'n'; 48 * 1024 * 1024]);
    let mut rest = Vec::new();
    let err = file.read_to_end(&mut rest).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    assert!(
        !rest.contains(&b'n'),
        "no byte of the new version was returned"
    );
    assert!(m.log_text().contains("ConditionNotMet") || m.log_text().contains("changed"));
    // A new open sees the new version.
    drop(file);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let now = std::fs::read(m.p("f.bin")).unwrap();
    assert!(now.iter().all(|b| *b == b'n'));
}

#[test]
fn unmount_leaves_no_process_and_no_mount() {
    let c = Container::new("unmount");
    c.put("x", b"x");
    let m = mount(&c.url, &[]);
    assert!(is_mounted(&m.path));
    assert!(!daemon_pids(&m.path).is_empty());
    let out = m.unmount();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!is_mounted(&m.path));
    assert!(wait_until(std::time::Duration::from_secs(10), || {
        daemon_pids(&m.path).is_empty()
    }));
}

#[test]
fn foreground_daemon_unmounts_cleanly_on_sigterm() {
    let c = Container::new("sigterm");
    c.put("x", b"x");
    let dir = tempfile::tempdir().unwrap();
    let mp = dir.path().join("mnt");
    std::fs::create_dir(&mp).unwrap();
    let mut child = spawn_foreground(&c.url, &mp, &read_sas());
    assert!(wait_until(
        std::time::Duration::from_secs(20),
        || is_mounted(&mp) && std::fs::read(mp.join("x")).is_ok()
    ));
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(!is_mounted(&mp));
}

#[test]
fn several_threads_reading_through_the_cache_get_exact_bytes() {
    use std::io::{Seek, SeekFrom};
    let c = Container::new("threads");
    let data = std::sync::Arc::new(random_bytes(24 * 1024 * 1024 + 333, 5));
    c.put("shared.bin", &data);
    let m = mount(&c.url, &["--cache-mem", "64M"]);
    let path = m.p("shared.bin");
    let workers: Vec<_> = (0..6u64)
        .map(|t| {
            let (path, data) = (path.clone(), data.clone());
            std::thread::spawn(move || {
                let mut f = std::fs::File::open(&path).unwrap();
                if t % 2 == 0 {
                    let mut all = Vec::new();
                    f.read_to_end(&mut all).unwrap();
                    assert_eq!(sha256(&all), sha256(&data), "thread {t} sequential");
                } else {
                    for i in 0..40u64 {
                        let off = (i * 7919 * 1031 + t * 4099) % (data.len() as u64 - 70_000);
                        let mut buf = vec![0u8; 65_536 + i as usize];
                        f.seek(SeekFrom::Start(off)).unwrap();
                        f.read_exact(&mut buf).unwrap();
                        assert_eq!(
                            &buf[..],
                            &data[off as usize..off as usize + buf.len()],
                            "thread {t}"
                        );
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
}

#[test]
fn systemd_notify_ready_once_serving_and_stopping_on_sigterm() {
    use std::os::unix::net::UnixDatagram;
    let c = Container::new("notify");
    c.put("x", b"x");
    let dir = tempfile::tempdir().unwrap();
    let mp = dir.path().join("mnt");
    std::fs::create_dir(&mp).unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut child = std::process::Command::new(blobmount_bin())
        .args(["mount", &c.url])
        .arg(&mp)
        .arg("--foreground")
        .env("AZURE_STORAGE_SAS_TOKEN", read_sas())
        .env("NOTIFY_SOCKET", &sock_path)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 256];
    let n = sock.recv(&mut buf).expect("READY=1 within 30 s");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("READY=1"));
    // READY means serving: the mount answers at once.
    assert!(is_mounted(&mp));
    assert_eq!(std::fs::read(mp.join("x")).unwrap(), b"x");
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let n = sock.recv(&mut buf).expect("STOPPING=1");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1"));
    assert!(child.wait().unwrap().success());
    assert!(!is_mounted(&mp));
}

#[test]
fn after_kill_9_mounting_again_clears_the_dead_mount() {
    let c = Container::new("killed");
    c.put("x", b"x");
    let m = mount(&c.url, &[]);
    let pids = daemon_pids(&m.path);
    assert_eq!(pids.len(), 1, "{pids:?}");
    unsafe { libc::kill(pids[0] as i32, libc::SIGKILL) };
    assert!(wait_until(std::time::Duration::from_secs(10), || {
        daemon_pids(&m.path).is_empty()
    }));
    let err = std::fs::read_dir(&m.path).unwrap_err();
    let dead = [Some(libc::ENOTCONN), Some(libc::ECONNABORTED)];
    assert!(dead.contains(&err.raw_os_error()), "{err}");
    let sas = read_sas();
    let out = blobmount(Some(&sas), |cmd| {
        cmd.arg("mount")
            .arg(&c.url)
            .arg(&m.path)
            .arg("--log-file")
            .arg(&m.log);
    });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(m.p("x")).unwrap(), b"x");
    assert!(
        m.log_text().contains("cleared a dead mount"),
        "{}",
        m.log_text()
    );
}
