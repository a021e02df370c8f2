//! SEMANTICS "Start-up errors": bad input gets one line naming the problem and the fix.

use std::process::Output;

use crate::common::*;

/// Non-zero exit, exactly one line on stderr containing `needle`, no panic.
fn assert_one_line_error(out: &Output, needle: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "should fail: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains(needle), "expected '{needle}' in: {stderr}");
    stderr
}

#[test]
fn unreachable_endpoint() {
    let out = try_mount(
        "http://127.0.0.1:9/devstoreaccount1/nowhere",
        Some(&read_sas()),
        &[],
    )
    .err()
    .unwrap();
    let line = assert_one_line_error(&out, "cannot reach http://127.0.0.1:9");
    assert!(line.contains("check"), "{line}");
}

#[test]
fn missing_container() {
    let url = format!("{}/no-such-container-here", endpoint());
    let out = try_mount(&url, Some(&read_sas()), &[]).err().unwrap();
    assert_one_line_error(&out, "container not found");
}

#[test]
fn bad_sas_signature() {
    let c = Container::new("badsas");
    c.put("x", b"x");
    let good = read_sas();
    let (head, _) = good.split_once("&sig=").unwrap();
    let secret = "AAAAThisIsNotTheRealSignatureAAAAAAAAAAAAAA%3D";
    let bad = format!("{head}&sig={secret}");
    let out = try_mount(&c.url, Some(&bad), &[]).err().unwrap();
    // Azure answers AuthenticationFailed; Azurite answers AuthorizationFailure.
    let line = assert_one_line_error(&out, "SAS");
    assert!(
        line.contains("AuthenticationFailed") || line.contains("AuthorizationFailure"),
        "{line}"
    );
    assert!(!line.contains("ThisIsNotTheReal"), "the SAS leaked: {line}");
}

#[test]
fn expired_sas() {
    let c = Container::new("oldsas");
    let expired = account_sas(
        "rl",
        time::OffsetDateTime::now_utc() - time::Duration::hours(1),
    );
    let out = try_mount(&c.url, Some(&expired), &[]).err().unwrap();
    assert_one_line_error(&out, "expired");
}

#[test]
fn sas_in_source_url_works_and_stays_out_of_the_mount_table() {
    let c = Container::new("urlsas");
    c.put("x", b"x");
    let sas = read_sas();
    let m = try_mount(&format!("{}?{sas}", c.url), None, &[])
        .ok()
        .unwrap();
    assert_eq!(std::fs::read(m.p("x")).unwrap(), b"x");
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mountinfo.contains("sig="));
    assert!(!m.log_text().contains("sig=") || m.log_text().contains("sig=REDACTED"));
}

#[test]
fn missing_mountpoint() {
    let c = Container::new("nomp");
    let out = blobmount(Some(&read_sas()), |cmd| {
        cmd.args(["mount", &c.url, "/nonexistent/blobmount/mp"]);
    });
    assert_one_line_error(&out, "does not exist: create it with 'mkdir -p");
}

#[test]
fn mountpoint_already_mounted() {
    let c = Container::new("twice");
    c.put("x", b"x");
    let m = mount(&c.url, &[]);
    let out = blobmount(Some(&read_sas()), |cmd| {
        cmd.arg("mount").arg(&c.url).arg(&m.path);
    });
    assert_one_line_error(&out, "already mounted");
    assert_eq!(
        std::fs::read(m.p("x")).unwrap(),
        b"x",
        "the first mount still works"
    );
}

#[test]
fn malformed_source() {
    let out = blobmount(None, |cmd| {
        cmd.args(["mount", "not-a-url", "/tmp"]);
    });
    assert_one_line_error(&out, "is not a URL");
    let out = blobmount(None, |cmd| {
        cmd.args([
            "mount",
            "https://acct.blob.core.windows.net/Bad_Name",
            "/tmp",
        ]);
    });
    assert_one_line_error(&out, "container name 'Bad_Name' is invalid");
}
