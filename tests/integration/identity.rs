//! Managed identity end to end: a fake token endpoint (this file) issuing Azure-like JWTs,
//! Azurite over HTTPS with `--oauth basic`, and `blobmount mount --auth managed-identity`.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;

use crate::common::*;

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const OBJECT_ID: &str = "11111111-2222-3333-4444-555555555555";
const CLIENT_ID: &str = "66666666-7777-8888-9999-000000000000";

/// One request the endpoint received.
#[derive(Clone, Debug)]
struct Seen {
    target: String,
    headers: Vec<(String, String)>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn query(&self, key: &str) -> Option<String> {
        let q = self.target.split_once('?')?.1;
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    }
    fn path(&self) -> &str {
        self.target.split('?').next().unwrap()
    }
}

/// A local identity endpoint: answers the scripted statuses first, then tokens that live
/// `lifetime` seconds; while `down`, drops connections unanswered.
struct FakeTokenEndpoint {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Arc<Mutex<VecDeque<u16>>>,
    down: Arc<AtomicBool>,
    issued: Arc<AtomicU64>,
}

impl FakeTokenEndpoint {
    fn start(lifetime: u64, script: &[u16], date_expiry: bool) -> FakeTokenEndpoint {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let ep = FakeTokenEndpoint {
            port,
            seen: Arc::default(),
            script: Arc::new(Mutex::new(script.iter().copied().collect())),
            down: Arc::default(),
            issued: Arc::default(),
        };
        let (seen, script, down, issued) = (
            ep.seen.clone(),
            ep.script.clone(),
            ep.down.clone(),
            ep.issued.clone(),
        );
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let target = line.split(' ').nth(1).unwrap_or_default().to_string();
                let mut headers = Vec::new();
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.trim_end().split_once(':') {
                        headers.push((k.trim().to_string(), v.trim().to_string()));
                    }
                }
                if down.load(Ordering::SeqCst) {
                    continue; // dropped unanswered
                }
                seen.lock().unwrap().push(Seen { target, headers });
                let (status, body) = match script.lock().unwrap().pop_front() {
                    Some(code) => (code, format!("{{\"error\":\"scripted {code}\"}}")),
                    None => {
                        issued.fetch_add(1, Ordering::SeqCst);
                        (200, token_body(lifetime, date_expiry))
                    }
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        ep
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn token_body(lifetime: u64, date_expiry: bool) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = B64URL.encode(r#"{"alg":"RS256","typ":"JWT"}"#);
    let claims = format!(
        r#"{{"aud":"https://storage.azure.com","iss":"https://sts.windows.net/{TENANT}/","iat":{now},"nbf":{},"exp":{},"oid":"{OBJECT_ID}","appid":"{CLIENT_ID}","tid":"{TENANT}"}}"#,
        now - 5,
        now + lifetime
    );
    let jwt = format!(
        "{header}.{}.{}",
        B64URL.encode(claims),
        B64URL.encode("not-verified")
    );
    let expires_on = if date_expiry {
        // Azure ML's 2017-09-01 API may answer a date string.
        let t = time::OffsetDateTime::from_unix_timestamp((now + lifetime) as i64).unwrap();
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    } else {
        (now + lifetime).to_string()
    };
    format!(
        r#"{{"access_token":"{jwt}","expires_on":"{expires_on}","expires_in":"{lifetime}","not_before":"{}","resource":"https://storage.azure.com/","token_type":"Bearer"}}"#,
        now - 5
    )
}

fn mount_mi(url: &str, envs: &[(&str, &str)], extra: &[&str]) -> Mount {
    let cert = oauth_azurite().cert_pem.to_str().unwrap().to_string();
    let mut all: Vec<(&str, &str)> = vec![("SSL_CERT_FILE", cert.as_str())];
    all.extend_from_slice(envs);
    let mut args = vec!["--auth", "managed-identity"];
    args.extend_from_slice(extra);
    match try_mount_env(url, None, &all, &args) {
        Ok(m) => m,
        Err(out) => panic!("mount failed: {}", String::from_utf8_lossy(&out.stderr)),
    }
}

fn data() -> Vec<u8> {
    random_bytes(3 * 1024 * 1024 + 7, 42)
}

/// Mounts a fresh container through a fake endpoint serving at `path`, the environment
/// from `envs(endpoint_url)`; checks the bytes read. Returns the endpoint's first request
/// and the mount's log.
fn read_through(
    container: &str,
    path: &str,
    envs: impl FnOnce(&str) -> Vec<(&'static str, String)>,
    args: &[&str],
    date_expiry: bool,
) -> (Seen, String) {
    let bytes = data();
    let url = oauth_azurite().seed(container, &[("d/a.bin", &bytes)]);
    let ep = FakeTokenEndpoint::start(3600, &[], date_expiry);
    let envs = envs(&ep.url(path));
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let m = mount_mi(&url, &envs, args);
    let got = std::fs::read(m.p("d/a.bin")).unwrap();
    assert_eq!(sha256(&got), sha256(&bytes));
    let log = m.log_text();
    assert!(!log.contains("eyJ"), "no token in the log");
    (ep.seen()[0].clone(), log)
}

#[test]
fn imds_style_mounts_and_reads_byte_exact() {
    let path = "/metadata/identity/oauth2/token";
    let envs = |url: &str| vec![("BLOBMOUNT_IDENTITY_ENDPOINT", url.to_string())];
    let (first, _) = read_through("mi-imds", path, envs, &["--client-id", CLIENT_ID], false);
    assert_eq!(first.path(), path);
    assert_eq!(first.header("Metadata"), Some("true"));
    assert_eq!(first.query("api-version").as_deref(), Some("2018-02-01"));
    let resource = first.query("resource");
    assert_eq!(resource.as_deref(), Some("https://storage.azure.com/"));
    assert_eq!(first.query("client_id").as_deref(), Some(CLIENT_ID));
}

#[test]
fn azure_ml_style_uses_msi_endpoint_secret_and_default_client_id() {
    let envs = |url: &str| {
        vec![
            ("MSI_ENDPOINT", url.to_string()),
            ("MSI_SECRET", "ml-secret-value".to_string()),
            ("DEFAULT_IDENTITY_CLIENT_ID", CLIENT_ID.to_string()),
        ]
    };
    // Azure ML's 2017-09-01 API may give the expiry as a date string.
    let (first, log) = read_through("mi-azureml", "/msi/token", envs, &[], true);
    assert_eq!(first.path(), "/msi/token");
    assert_eq!(first.header("secret"), Some("ml-secret-value"));
    assert_eq!(first.query("api-version").as_deref(), Some("2017-09-01"));
    assert_eq!(first.query("clientid").as_deref(), Some(CLIENT_ID));
    assert!(!log.contains("ml-secret-value"));
}

#[test]
fn app_service_style_uses_identity_endpoint_and_header() {
    let envs = |url: &str| {
        vec![
            ("IDENTITY_ENDPOINT", url.to_string()),
            ("IDENTITY_HEADER", "app-header-value".to_string()),
        ]
    };
    let args = ["--object-id", OBJECT_ID];
    let (first, _) = read_through("mi-appservice", "/msi/identity", envs, &args, false);
    assert_eq!(first.path(), "/msi/identity");
    assert_eq!(first.header("X-IDENTITY-HEADER"), Some("app-header-value"));
    assert_eq!(first.query("api-version").as_deref(), Some("2019-08-01"));
    assert_eq!(first.query("principal_id").as_deref(), Some(OBJECT_ID));
}

#[test]
fn reads_span_several_token_expiries() {
    let az = oauth_azurite();
    let bytes = random_bytes(2 * 1024 * 1024, 7);
    let url = az.seed("mi-expiry", &[("f.bin", &bytes)]);
    // Tokens live 8 s and are refreshed in the background at half their life.
    let ep = FakeTokenEndpoint::start(8, &[], false);
    let token_url = ep.url("/token");
    let m = mount_mi(
        &url,
        &[("BLOBMOUNT_IDENTITY_ENDPOINT", &token_url)],
        &[
            "--metadata-ttl",
            "0",
            "--cache-mem",
            "1M",
            "--block-size",
            "64K",
        ],
    );
    let start = std::time::Instant::now();
    let mut round = 0;
    while start.elapsed() < Duration::from_secs(20) {
        let got = std::fs::read(m.p("f.bin")).unwrap_or_else(|e| {
            let log = m.log_text();
            let tail: Vec<&str> = log.lines().rev().take(12).collect();
            panic!("round {round}: {e}; log tail: {tail:#?}")
        });
        assert_eq!(sha256(&got), sha256(&bytes), "round {round}");
        round += 1;
        std::thread::sleep(Duration::from_millis(700));
    }
    assert!(
        ep.issued.load(Ordering::SeqCst) >= 3,
        "several tokens were needed"
    );
}

#[test]
fn reads_go_on_while_the_endpoint_is_down_and_the_token_valid() {
    let az = oauth_azurite();
    let bytes = random_bytes(1024 * 1024, 8);
    let url = az.seed("mi-down", &[("f.bin", &bytes)]);
    // A 24 s token: its refresh falls due after 12 s, while the endpoint is down.
    let ep = FakeTokenEndpoint::start(24, &[], false);
    let token_url = ep.url("/token");
    let args = [
        "--metadata-ttl",
        "0",
        "--cache-mem",
        "1M",
        "--block-size",
        "64K",
    ];
    let m = mount_mi(&url, &[("BLOBMOUNT_IDENTITY_ENDPOINT", &token_url)], &args);
    assert_eq!(
        sha256(&std::fs::read(m.p("f.bin")).unwrap()),
        sha256(&bytes)
    );
    ep.down.store(true, Ordering::SeqCst);
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(16) {
        let got = std::fs::read(m.p("f.bin")).expect("read while the endpoint is down");
        assert_eq!(sha256(&got), sha256(&bytes));
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(
        ep.issued.load(Ordering::SeqCst),
        1,
        "no new token while down"
    );
    assert!(
        m.log_text().contains("token request failed"),
        "a refresh was tried"
    );
}

#[test]
fn the_mount_waits_through_429_and_410_from_the_endpoint() {
    let az = oauth_azurite();
    let url = az.seed("mi-retry", &[("x.txt", b"x")]);
    let ep = FakeTokenEndpoint::start(3600, &[429, 410], false);
    let token_url = ep.url("/token");
    let m = mount_mi(&url, &[("BLOBMOUNT_IDENTITY_ENDPOINT", &token_url)], &[]);
    assert_eq!(std::fs::read(m.p("x.txt")).unwrap(), b"x");
    assert_eq!(ep.seen().len(), 3);
}

#[test]
fn no_identity_endpoint_is_one_line_with_the_fix() {
    let az = oauth_azurite();
    let url = az.seed("mi-none", &[("x.txt", b"x")]);
    let cert = az.cert_pem.to_str().unwrap().to_string();
    let out = try_mount_env(
        &url,
        None,
        &[
            ("SSL_CERT_FILE", cert.as_str()),
            ("BLOBMOUNT_IDENTITY_ENDPOINT", "http://127.0.0.1:9/token"),
        ],
        &["--auth", "managed-identity"],
    )
    .err()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("no managed identity is available"),
        "{stderr}"
    );
}

#[test]
fn check_names_the_identity_and_explains_an_expired_token() {
    let az = oauth_azurite();
    let url = az.seed("mi-check", &[("x.txt", b"x")]);
    let cert = az.cert_pem.to_str().unwrap().to_string();
    let run = |lifetime: u64| {
        let ep = FakeTokenEndpoint::start(lifetime, &[], false);
        let token_url = ep.url("/token");
        let out = blobmount(None, |c| {
            c.args(["check", &url, "--auth", "managed-identity"])
                .env("SSL_CERT_FILE", &cert)
                .env("BLOBMOUNT_IDENTITY_ENDPOINT", &token_url);
        });
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    let (ok, text) = run(3600);
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!(
            "[ ok ] token: object id {OBJECT_ID}, client id {CLIENT_ID}, tenant {TENANT}"
        )),
        "{text}"
    );
    assert!(!text.contains("eyJ"), "the token itself is never printed");
    // A token that has already expired: Azurite answers 403 AuthenticationFailed.
    let (ok, text) = run(0);
    assert!(!ok, "{text}");
    assert!(
        text.contains("[FAIL] list:") && text.contains("AuthenticationFailed"),
        "{text}"
    );
    assert!(
        text.contains(&format!("identity: object id {OBJECT_ID}")),
        "{text}"
    );
}
