//! `blobmount check`: each step's outcome, and each failure class explained. The 403 classes
//! Azurite never produces come from a small server answering with a chosen error.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::Output;

use crate::common::*;

/// Answers every request with `status` and `x-ms-error-code: code`.
fn canned_server(status: u16, code: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line.trim() != "" {
                line.clear();
            }
            let body = format!(
                "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{code}</Code><Message>canned {code}</Message></Error>"
            );
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nx-ms-error-code: {code}\r\nx-ms-request-id: req-{code}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

fn check(source: &str, envs: &[(&str, &str)], args: &[&str]) -> (Output, String) {
    let out = blobmount(None, |c| {
        c.arg("check")
            .arg(source)
            .args(args)
            .envs(envs.iter().copied());
    });
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    (out, text)
}

#[test]
fn check_passes_every_step_with_a_sas() {
    let c = Container::new("check-ok");
    c.put("data/first.bin", &[7u8; 10_000]);
    let sas = read_sas();
    let (out, text) = check(
        &c.source_with_prefix("data"),
        &[("AZURE_STORAGE_SAS_TOKEN", &sas)],
        &[],
    );
    assert!(out.status.success(), "{text}");
    for line in [
        "[ ok ] source:",
        "[ ok ] credential: SAS token",
        "[ ok ] list: first blob: data/first.bin",
        "[ ok ] read: 4096 bytes",
    ] {
        assert!(text.contains(line), "{line} in {text}");
    }
    assert!(!text.contains("sig="), "no secret printed");
}

#[test]
fn check_explains_each_failure_class() {
    let cases: [(u16, &str, &str); 8] = [
        (
            403,
            "AuthorizationPermissionMismatch",
            "Storage Blob Data Reader",
        ),
        (403, "AuthorizationFailure", "network"),
        (403, "AuthenticationFailed", "clock"),
        (
            401,
            "InvalidAuthenticationInfo",
            "https://storage.azure.com/",
        ),
        (404, "ContainerNotFound", "container not found"),
        (503, "ServerBusy", "throttling"),
        (429, "TooManyRequests", "throttling"),
        (500, "InternalError", "transiently"),
    ];
    for (status, code, needle) in cases {
        let port = canned_server(status, code);
        let source = format!("http://127.0.0.1:{port}/devstoreaccount1/cont");
        let (out, text) = check(&source, &[], &["--auth", "anonymous"]);
        assert!(!out.status.success(), "{code}: {text}");
        assert!(text.contains("[FAIL] list:"), "{code}: {text}");
        assert!(
            text.contains(code) && text.contains(needle),
            "{code} / {needle}: {text}"
        );
        assert!(
            text.contains(&format!("x-ms-request-id: req-{code}")),
            "{text}"
        );
        assert!(text.contains("[skip] read"), "{text}");
        if code == "AuthorizationPermissionMismatch" {
            assert!(text.contains("az role assignment create"), "{text}");
        }
    }
}

#[test]
fn check_names_an_unreachable_endpoint_and_a_missing_identity() {
    let (out, text) = check(
        "http://127.0.0.1:9/devstoreaccount1/cont",
        &[],
        &["--auth", "anonymous"],
    );
    assert!(!out.status.success());
    assert!(text.contains("cannot reach http://127.0.0.1:9"), "{text}");
    let az = oauth_azurite();
    let url = az.seed("check-noid", &[("x", b"x")]);
    let cert = az.cert_pem.to_str().unwrap().to_string();
    let envs = [
        ("SSL_CERT_FILE", cert.as_str()),
        ("BLOBMOUNT_IDENTITY_ENDPOINT", "http://127.0.0.1:9/token"),
    ];
    let (out, text) = check(&url, &envs, &["--auth", "managed-identity"]);
    assert!(!out.status.success());
    assert!(text.contains("[FAIL] token:"), "{text}");
    assert!(text.contains("no managed identity is available"), "{text}");
}
