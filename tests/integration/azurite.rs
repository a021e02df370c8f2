//! An Azurite endpoint and containers seeded through the Blob REST API, signed with the
//! emulator's well-known account key. Shared by the integration tests and `examples/seed.rs`.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use blobmount::source::ContainerSource;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

pub const ACCOUNT: &str = "devstoreaccount1";
pub const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const VERSION: &str = "2021-08-06";

/// The Blob endpoint (`http://127.0.0.1:PORT/devstoreaccount1`): from
/// `BLOBMOUNT_TEST_BLOB_ENDPOINT` (set by scripts/test.sh), else an Azurite started here.
pub fn endpoint() -> &'static str {
    static EP: OnceLock<String> = OnceLock::new();
    EP.get_or_init(|| match std::env::var("BLOBMOUNT_TEST_BLOB_ENDPOINT") {
        Ok(ep) => ep,
        Err(_) => start_azurite(),
    })
}

fn start_azurite() -> String {
    let port = launch_azurite(&[]);
    format!("http://127.0.0.1:{port}/{ACCOUNT}")
}

/// Starts an in-memory Azurite with `extra` arguments on a free port; returns the port once
/// it accepts connections. It dies with the test process.
fn launch_azurite(extra: &[&std::ffi::OsStr]) -> u16 {
    let bin =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/azurite/node_modules/.bin/azurite-blob");
    assert!(
        bin.exists(),
        "Azurite is missing: run scripts/test.sh (it installs it) or set BLOBMOUNT_TEST_BLOB_ENDPOINT"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = Command::new(bin);
    cmd.args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
        .args([
            "--skipApiVersionCheck",
            "--loose",
            "--inMemoryPersistence",
            "--silent",
            "--disableTelemetry",
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    spawn_tied(cmd);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "Azurite did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    port
}

/// Spawns `cmd` so that it is killed when the test process ends. The parent-death signal
/// follows the spawning *thread*, so the spawn happens on a thread that never exits.
fn spawn_tied(mut cmd: Command) {
    use std::os::unix::process::CommandExt;
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let child = cmd.spawn();
        let ok = child.is_ok();
        tx.send(child.map(|c| c.id())).unwrap();
        if ok {
            loop {
                std::thread::park();
            }
        }
    });
    rx.recv().unwrap().expect("start azurite");
}

fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Runtime::new().unwrap())
}

fn http() -> &'static reqwest::Client {
    static C: OnceLock<reqwest::Client> = OnceLock::new();
    C.get_or_init(reqwest::Client::new)
}

/// An account SAS for the blob service (format of sv=2020-08-04), signed with the account key.
pub fn account_sas(permissions: &str, expiry: time::OffsetDateTime) -> String {
    let se = expiry
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let se = se
        .split('.')
        .next()
        .unwrap()
        .trim_end_matches('Z')
        .to_string()
        + "Z";
    let sv = "2020-08-04";
    let to_sign = format!("{ACCOUNT}\n{permissions}\nb\nsco\n\n{se}\n\n\n{sv}\n");
    let mut mac = Hmac::<Sha256>::new_from_slice(&B64.decode(KEY).unwrap()).unwrap();
    mac.update(to_sign.as_bytes());
    let sig = B64.encode(mac.finalize().into_bytes());
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    format!(
        "sv={sv}&ss=b&srt=sco&sp={permissions}&se={}&sig={}",
        enc(&se),
        enc(&sig)
    )
}

pub fn in_a_day() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc() + time::Duration::days(1)
}

/// A read-only (sp=rl) SAS valid for a day.
pub fn read_sas() -> String {
    account_sas("rl", in_a_day())
}

fn admin_sas() -> &'static str {
    static S: OnceLock<String> = OnceLock::new();
    S.get_or_init(|| account_sas("rwdlac", in_a_day()))
}

/// A fresh container with a unique name.
pub struct Container {
    pub name: String,
    pub url: String,
}

impl Container {
    pub fn new(hint: &str) -> Container {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{hint}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        Container::at(&format!("{}/{name}", endpoint()))
    }

    /// The container at `url` (`<endpoint>/<name>`), created unless it exists.
    pub fn at(url: &str) -> Container {
        let name = url.rsplit('/').next().unwrap().to_string();
        let c = Container {
            name,
            url: url.to_string(),
        };
        let status = rt().block_on(async {
            http()
                .put(format!("{}?restype=container&{}", c.url, admin_sas()))
                .header("x-ms-version", VERSION)
                .send()
                .await
                .unwrap()
                .status()
        });
        assert!(
            status.is_success() || status.as_u16() == 409,
            "create container: {status}"
        );
        c
    }

    fn blob_url(&self, name: &str) -> String {
        let (src, _) = ContainerSource::parse(&self.url).unwrap();
        format!("{}?{}", src.blob_url(name), admin_sas())
    }

    pub fn put(&self, name: &str, data: &[u8]) {
        self.put_with_metadata(name, data, &[]);
    }

    pub fn put_with_metadata(&self, name: &str, data: &[u8], metadata: &[(&str, &str)]) {
        rt().block_on(self.put_async(name, data.to_vec(), metadata));
    }

    async fn put_async(&self, name: &str, data: Vec<u8>, metadata: &[(&str, &str)]) {
        let mut req = http()
            .put(self.blob_url(name))
            .header("x-ms-version", VERSION)
            .header("x-ms-blob-type", "BlockBlob")
            .header("content-length", data.len())
            .body(data);
        for (k, v) in metadata {
            req = req.header(format!("x-ms-meta-{k}"), *v);
        }
        let rsp = req.send().await.unwrap();
        let status = rsp.status();
        assert!(
            status.is_success(),
            "put {name}: {status} {}",
            rsp.text().await.unwrap_or_default()
        );
    }

    /// Uploads many blobs, `parallel` at a time.
    pub fn put_many(&self, blobs: Vec<(String, Vec<u8>)>, parallel: usize) {
        use futures::StreamExt;
        rt().block_on(async {
            futures::stream::iter(blobs)
                .for_each_concurrent(parallel, |(name, data)| async move {
                    self.put_async(&name, data, &[]).await
                })
                .await
        });
    }

    pub fn source_with_prefix(&self, prefix: &str) -> String {
        format!("{}/{prefix}", self.url)
    }
}

pub fn sha256(data: &[u8]) -> String {
    format!("{:x}", Sha256::digest(data))
}

pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    use rand::{RngCore, SeedableRng};
    let mut v = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut v);
    v
}

/// An Azurite over HTTPS with `--oauth basic` (bearer tokens accepted), its self-signed
/// certificate in a PEM file. Started once per test process; dies with it.
pub struct OauthAzurite {
    pub endpoint: String,
    pub cert_pem: std::path::PathBuf,
    client: reqwest::Client,
}

pub fn oauth_azurite() -> &'static OauthAzurite {
    static A: OnceLock<OauthAzurite> = OnceLock::new();
    A.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let ck = rcgen::generate_simple_self_signed(vec![
            "127.0.0.1".to_string(),
            "localhost".to_string(),
        ])
        .unwrap();
        let cert_pem = dir.join("cert.pem");
        let key_pem = dir.join("key.pem");
        std::fs::write(&cert_pem, ck.cert.pem()).unwrap();
        std::fs::write(&key_pem, ck.signing_key.serialize_pem()).unwrap();
        let port = launch_azurite(&[
            "--oauth".as_ref(),
            "basic".as_ref(),
            "--cert".as_ref(),
            cert_pem.as_os_str(),
            "--key".as_ref(),
            key_pem.as_os_str(),
        ]);
        let cert = reqwest::Certificate::from_pem(ck.cert.pem().as_bytes()).unwrap();
        let client = reqwest::Client::builder()
            .tls_certs_merge([cert])
            .build()
            .unwrap();
        OauthAzurite {
            endpoint: format!("https://127.0.0.1:{port}/{ACCOUNT}"),
            cert_pem,
            client,
        }
    })
}

impl OauthAzurite {
    /// Creates container `name` and uploads `blobs` (signed with an account SAS).
    pub fn seed(&self, name: &str, blobs: &[(&str, &[u8])]) -> String {
        let url = format!("{}/{name}", self.endpoint);
        let sas = admin_sas();
        rt().block_on(async {
            let rsp = self
                .client
                .put(format!("{url}?restype=container&{sas}"))
                .header("x-ms-version", VERSION)
                .header("content-length", 0)
                .send()
                .await
                .unwrap();
            assert!(
                rsp.status().is_success() || rsp.status().as_u16() == 409,
                "{}",
                rsp.status()
            );
            let (src, _) = ContainerSource::parse(&url).unwrap();
            for (blob, data) in blobs {
                let rsp = self
                    .client
                    .put(format!("{}?{sas}", src.blob_url(blob)))
                    .header("x-ms-version", VERSION)
                    .header("x-ms-blob-type", "BlockBlob")
                    .header("content-length", data.len())
                    .body(data.to_vec())
                    .send()
                    .await
                    .unwrap();
                assert!(rsp.status().is_success(), "put {blob}: {}", rsp.status());
            }
        });
        url
    }
}
