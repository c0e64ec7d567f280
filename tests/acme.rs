//! Automatic certificates end to end against a real ACME server on loopback:
//! Debian's `pebble` (RFC 8555 test CA) with `pebble-challtestsrv` as its DNS
//! (every name resolves to 127.0.0.1). The node answers pebble's
//! TLS-ALPN-01 validation on its own listener, obtains a certificate, serves
//! it, keeps it across a restart without the CA, and reports a CA that cannot
//! validate it without going down.
//!
//! pebble is a hard requirement: `scripts/test-all` installs it.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::process::{NodeProcess, free_port};
use tokio::process::{Child, Command};

const DOMAIN: &str = "video.clinic.test";

fn tool(name: &str) -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!("{name} not found: install Debian's pebble (`apt-get install -y pebble`; scripts/test-all does)")
    })
}

/// A pebble CA and its DNS, killed on drop.
struct Pebble {
    _ca: Child,
    _dns: Child,
    /// The ACME directory URL.
    directory: String,
    /// Trust root of pebble's own HTTPS listeners (not of what it issues).
    https_root: PathBuf,
    management: u16,
    log: PathBuf,
}

impl Pebble {
    /// Starts pebble validating TLS-ALPN-01 on `tls_port` of 127.0.0.1.
    async fn start(dir: &Path, tls_port: u16) -> Pebble {
        let (listen, management, dns, http) = (
            free_port().await,
            free_port().await,
            free_port().await,
            free_port().await,
        );
        let id = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
            .expect("pebble's HTTPS certificate");
        let (cert, key) = (dir.join("pebble.pem"), dir.join("pebble.key"));
        std::fs::write(&cert, id.cert.pem()).expect("write");
        std::fs::write(&key, id.signing_key.serialize_pem()).expect("write");
        let config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{listen}"),
                "managementListenAddress": format!("127.0.0.1:{management}"),
                "certificate": cert,
                "privateKey": key,
                "httpPort": http,
                "tlsPort": tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false
            }
        });
        let config_file = dir.join("pebble.json");
        std::fs::write(&config_file, config.to_string()).expect("write");
        let log = dir.join("pebble.log");
        let out = || {
            std::fs::File::options()
                .create(true)
                .append(true)
                .open(&log)
                .expect("log")
        };
        let dns_server = Command::new(tool("pebble-challtestsrv"))
            .args(["-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{}", free_port().await)])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .stdout(out())
            .stderr(out())
            .kill_on_drop(true)
            .spawn()
            .expect("pebble-challtestsrv starts");
        let ca = Command::new(tool("pebble"))
            .arg("-config")
            .arg(&config_file)
            .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
            // Validate at once instead of after a random pause; never refuse
            // a nonce at random (instant-acme retries a bad nonce, but only once).
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(out())
            .stderr(out())
            .kill_on_drop(true)
            .spawn()
            .expect("pebble starts");
        let pebble = Pebble {
            _ca: ca,
            _dns: dns_server,
            directory: format!("https://127.0.0.1:{listen}/dir"),
            https_root: cert,
            management,
            log,
        };
        let up = common::eventually(Duration::from_secs(20), || async {
            tokio::net::TcpStream::connect(("127.0.0.1", listen))
                .await
                .is_ok()
                && tokio::net::TcpStream::connect(("127.0.0.1", management))
                    .await
                    .is_ok()
        })
        .await;
        assert!(up, "pebble listens; its log:\n{}", pebble.log());
        pebble
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The root certificate pebble issues under (random per run).
    async fn issuing_root(&self) -> reqwest::Certificate {
        let pem = https_client(&self.https_root)
            .get(format!("https://127.0.0.1:{}/roots/0", self.management))
            .send()
            .await
            .expect("pebble management")
            .text()
            .await
            .expect("root");
        reqwest::Certificate::from_pem(pem.as_bytes()).expect("root PEM")
    }
}

fn https_client(root: &Path) -> reqwest::Client {
    let pem = std::fs::read(root).expect("root");
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("pem"))
        .build()
        .expect("client")
}

async fn start_node(data: &Path, port: u16, admin: u16, directory: &str, ca: &Path) -> NodeProcess {
    let ca = ca.to_str().expect("utf-8 path");
    NodeProcess::start(
        data,
        port,
        admin,
        &[
            "--acme-domain",
            DOMAIN,
            "--acme-directory",
            directory,
            "--acme-contact",
            "mailto:it@clinic.test",
            "--acme-ca-file",
            ca,
        ],
        "info",
    )
    .await
}

async fn readyz(admin: u16) -> u16 {
    match reqwest::get(format!("http://127.0.0.1:{admin}/readyz")).await {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

/// GET /healthz over HTTPS by name, trusting only `root`; the status and HSTS.
async fn fetch_page(port: u16, root: reqwest::Certificate) -> reqwest::Result<(u16, bool)> {
    let client = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(root)
        .resolve(DOMAIN, ([127, 0, 0, 1], port).into())
        .build()?;
    let res = client
        .get(format!("https://{DOMAIN}:{port}/healthz"))
        .send()
        .await?;
    Ok((
        res.status().as_u16(),
        res.headers().contains_key("strict-transport-security"),
    ))
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_obtains_serves_and_keeps_a_certificate_from_pebble() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let (port, admin) = (free_port().await, free_port().await);
    let pebble = Pebble::start(dir.path(), port).await;
    let node = start_node(&data, port, admin, &pebble.directory, &pebble.https_root).await;

    let ready = common::eventually(Duration::from_secs(60), || async {
        readyz(admin).await == 200
    })
    .await;
    assert!(
        ready,
        "no certificate within 60 s; node log:\n{}\npebble log:\n{}",
        node.log(),
        pebble.log()
    );
    let root = pebble.issuing_root().await;
    let (status, hsts) = fetch_page(port, root.clone())
        .await
        .expect("HTTPS with the certificate pebble issued");
    assert_eq!(status, 200);
    assert!(hsts, "HSTS on the ACME listener");
    assert!(
        node.log().contains("certificate obtained"),
        "{}",
        node.log()
    );
    #[cfg(unix)]
    for f in ["account.json", "cert.pem", "key.pem"] {
        assert_eq!(mode(&data.join("acme").join(f)), 0o600, "{f}");
    }

    // Restart without the CA: the stored certificate is served at once.
    let (directory, ca) = (pebble.directory.clone(), pebble.https_root.clone());
    drop(node);
    drop(pebble);
    let node = start_node(&data, port, admin, &directory, &ca).await;
    assert_eq!(readyz(admin).await, 200, "{}", node.log());
    let (status, _) = fetch_page(port, root)
        .await
        .expect("the stored certificate after a restart");
    assert_eq!(status, 200);
    assert!(
        node.log().contains("serving the stored certificate"),
        "{}",
        node.log()
    );
    assert!(
        !node.log().contains("obtaining a certificate failed"),
        "a valid stored certificate is not renewed early: {}",
        node.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_validation_is_reported_and_the_node_stays_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let (port, admin) = (free_port().await, free_port().await);
    // pebble validates on a port where nothing answers.
    let pebble = Pebble::start(dir.path(), free_port().await).await;
    let node = start_node(&data, port, admin, &pebble.directory, &pebble.https_root).await;
    let failed = common::eventually(Duration::from_secs(60), || async {
        node.log().contains("obtaining a certificate failed")
    })
    .await;
    assert!(failed, "{}", node.log());
    let log = node.log();
    assert!(log.contains("retry_in_secs"), "{log}");
    assert!(
        log.contains("tls-alpn-01") && log.contains("unauthorized"),
        "the CA's verdict is named: {log}"
    );
    assert_eq!(readyz(admin).await, 503, "not ready without a certificate");
    assert!(
        !data.join("acme").join("cert.pem").exists(),
        "nothing is stored"
    );
    // The operations listener answers; the public one refuses handshakes.
    let health = reqwest::get(format!("http://127.0.0.1:{admin}/healthz"))
        .await
        .expect("healthz");
    assert_eq!(health.status().as_u16(), 200);
    assert!(
        fetch_page(port, pebble.issuing_root().await).await.is_err(),
        "no certificate, no handshake"
    );
}
