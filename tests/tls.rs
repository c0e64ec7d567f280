//! `telenode serve` with a certificate: HTTPS with TLS 1.2+/AEAD suites only,
//! HSTS on every response, and a signalling call over `wss://`.

use std::sync::Arc;
use std::time::Duration;

use telenode::config::Config;
use telenode::server::{self, Running};
use telenode::store::{SqliteStore, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

struct Tls {
    _dir: tempfile::TempDir,
    config: Config,
    cert: CertificateDer<'static>,
}

fn tls_config() -> Tls {
    let dir = tempfile::tempdir().expect("tempdir");
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, ck.cert.pem()).expect("write cert");
    std::fs::write(&key_path, ck.signing_key.serialize_pem()).expect("write key");
    let config = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        admin_listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: dir.path().join("data"),
        tls_cert: Some(cert_path),
        tls_key: Some(key_path),
        ..Config::default()
    };
    config.validate().expect("valid TLS config");
    Tls {
        cert: ck.cert.der().clone(),
        config,
        _dir: dir,
    }
}

/// The store in `tls`'s data directory (created on first open).
fn open_store(tls: &Tls) -> SqliteStore {
    SqliteStore::open(&tls.config.data_dir, &tls.config.key_file()).expect("store")
}

/// A node on `tls`'s configuration and data directory.
async fn serve(tls: &Tls) -> Running {
    let store = Arc::new(open_store(tls));
    server::start(tls.config.clone(), store as Arc<dyn Store>)
        .await
        .expect("starts")
}

fn client(
    cert: &CertificateDer<'static>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    roots.add(cert.clone()).expect("root");
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(versions)
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_serves_with_hsts_and_security_headers() {
    let tls = tls_config();
    let running = serve(&tls).await;
    for versions in [
        &[&rustls::version::TLS13][..],
        &[&rustls::version::TLS12][..],
    ] {
        let tcp = tokio::net::TcpStream::connect(running.addr)
            .await
            .expect("tcp");
        let name = ServerName::try_from("localhost").expect("name");
        let mut stream = client(&tls.cert, versions)
            .connect(name, tcp)
            .await
            .expect("TLS handshake");
        stream
            .write_all(
                b"GET /c/some-token HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            )
            .await
            .expect("request");
        let mut response = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response))
            .await
            .expect("in time")
            .ok();
        let response = String::from_utf8_lossy(&response).to_lowercase();
        assert!(response.starts_with("http/1.1 200"), "{response}");
        assert!(
            response.contains("strict-transport-security: max-age="),
            "{response}"
        );
        assert!(
            response.contains("content-security-policy: default-src 'none'"),
            "{response}"
        );
        assert!(response.contains("frame-ancestors 'none'"), "{response}");
        assert!(
            response.contains("referrer-policy: no-referrer"),
            "{response}"
        );
        assert!(
            response.contains("integrity=\"sha384-"),
            "SRI filled in: {response}"
        );
        assert!(!response.contains("{{sri:"), "no placeholder left");
    }
    running.shutdown(Duration::from_secs(2)).await;
}

#[test]
fn public_address_without_certificate_is_refused() {
    let config = Config {
        listen: "0.0.0.0:8443".parse().expect("addr"),
        ..Config::default()
    };
    let err = config.validate().expect_err("refused");
    assert!(err.to_string().starts_with("listen:"), "{err}");
}

/// Completes a handshake trusting only `cert`; Err if the server presents
/// another certificate.
async fn handshake(
    addr: std::net::SocketAddr,
    cert: &CertificateDer<'static>,
) -> Result<(), String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from("localhost").expect("name");
    client(cert, &[&rustls::version::TLS13])
        .connect(name, tcp)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_is_reloaded_when_the_files_change() {
    let tls = tls_config();
    let running = serve(&tls).await;
    handshake(running.addr, &tls.cert)
        .await
        .expect("first certificate");

    // A renewal: new files in place (a broken pair first, which is ignored).
    let renewed = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    let cert_path = tls.config.tls_cert.clone().expect("cert path");
    let key_path = tls.config.tls_key.clone().expect("key path");
    std::fs::write(&cert_path, "not a certificate").expect("write");
    tokio::time::sleep(server::tls::RELOAD_INTERVAL + Duration::from_millis(500)).await;
    handshake(running.addr, &tls.cert)
        .await
        .expect("a broken renewal keeps the old certificate");

    std::fs::write(&cert_path, renewed.cert.pem()).expect("write cert");
    std::fs::write(&key_path, renewed.signing_key.serialize_pem()).expect("write key");
    let renewed_der = renewed.cert.der().clone();
    let deadline = tokio::time::Instant::now() + server::tls::RELOAD_INTERVAL * 4;
    loop {
        if handshake(running.addr, &renewed_der).await.is_ok() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the renewed certificate is served without a restart"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        handshake(running.addr, &tls.cert).await.is_err(),
        "the old certificate is gone"
    );
    running.shutdown(Duration::from_secs(2)).await;
}

/// The value of `name="…"` in one XML tag.
fn xml_attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let len = tag[start..].find('"')?;
    Some(&tag[start..start + len])
}

/// An external scanner (Debian's `sslscan`, installed by scripts/test-all)
/// against `telenode serve` with TLS: no SSL, no TLS 1.0 or 1.1, only ECDHE
/// with AES-GCM or ChaCha20-Poly1305 (BSI TR-02102-2), no renegotiation,
/// no heartbleed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslscan_finds_no_protocol_below_tls12_and_no_weak_suite() {
    let tls = tls_config();
    let running = serve(&tls).await;
    let out = tokio::process::Command::new("sslscan")
        .args(["--no-colour", "--xml=-"])
        .arg(running.addr.to_string())
        .output()
        .await
        .expect("sslscan runs (apt-get install sslscan; scripts/test-all does)");
    let xml = String::from_utf8_lossy(&out.stdout);
    let tags: Vec<&str> = xml.lines().map(str::trim).collect();
    let tag = |kind: &str| -> Vec<&str> {
        tags.iter()
            .copied()
            .filter(|t| t.starts_with(&format!("<{kind} ")))
            .collect()
    };

    let protocols = tag("protocol");
    assert_eq!(protocols.len(), 6, "{xml}");
    for p in &protocols {
        let version = format!(
            "{} {}",
            xml_attr(p, "type").unwrap_or(""),
            xml_attr(p, "version").unwrap_or("")
        );
        let enabled = xml_attr(p, "enabled") == Some("1");
        let wanted = matches!(version.as_str(), "tls 1.2" | "tls 1.3");
        assert_eq!(enabled, wanted, "{version}: {p}");
    }
    let ciphers = tag("cipher");
    assert!(ciphers.len() >= 4, "{xml}");
    for c in &ciphers {
        let version = xml_attr(c, "sslversion").unwrap_or("");
        let name = xml_attr(c, "cipher").unwrap_or("");
        let strength = xml_attr(c, "strength").unwrap_or("");
        assert!(matches!(version, "TLSv1.2" | "TLSv1.3"), "{c}");
        let aead = name.contains("GCM")
            || name.contains("CHACHA20-POLY1305")
            || name.contains("CHACHA20_POLY1305");
        let forward_secret = version == "TLSv1.3" || name.starts_with("ECDHE-");
        assert!(aead && forward_secret, "weak suite offered: {c}");
        assert!(matches!(strength, "strong" | "acceptable"), "{c}");
    }
    for r in tag("renegotiation") {
        assert_eq!(xml_attr(r, "supported"), Some("0"), "{r}");
    }
    for h in tag("heartbleed") {
        assert_eq!(xml_attr(h, "vulnerable"), Some("0"), "{h}");
    }
    running.shutdown(Duration::from_secs(2)).await;
}

/// Every route (and what is not a route), signed in and not, successful and
/// refused: each answer carries the full set of security headers, HSTS
/// included, and nothing is cacheable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_with_the_security_headers() {
    let tls = tls_config();
    let store = open_store(&tls);
    let hash = telenode::auth::new_password_hash("a long doctor password").expect("hash");
    let id = store
        .add_doctor("dr-head", "Dr. Head", &hash, 0)
        .expect("doctor");
    let secret = telenode::auth::new_totp_secret();
    let factor = telenode::store::SecondFactor {
        totp_secret: secret.to_vec(),
        totp_last_step: 0,
        recovery_hashes: Vec::new(),
    };
    store.set_credentials(id, None, &factor, 0).expect("factor");
    drop(store);
    let running = serve(&tls).await;
    let base = format!("https://localhost:{}", running.addr.port());
    let http = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_der(&tls.cert).expect("cert"))
        .resolve("localhost", running.addr)
        .build()
        .expect("client");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let login: serde_json::Value = http
        .post(format!("{base}/api/v1/login"))
        .json(&serde_json::json!({
            "login": "dr-head",
            "password": "a long doctor password",
            "code": telenode::totp::code_at(&secret, now),
        }))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    let session = login["session"].as_str().expect("session").to_owned();
    let token_bytes = telenode::auth::random_bytes::<32>();
    let token = telenode::auth::b64u(&token_bytes);
    let created: serde_json::Value = http
        .post(format!("{base}/api/v1/consultations"))
        .bearer_auth(&session)
        .json(&serde_json::json!({
            "token_hash": telenode::auth::b64u(&telenode_signaling::creds::token_hash(&token_bytes)),
        }))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let id = created["id"].as_str().expect("id").to_owned();

    use reqwest::Method;
    let routes: Vec<(Method, String, bool, &str)> = vec![
        (Method::GET, "/healthz".into(), false, ""),
        (Method::GET, format!("/c/{token}"), false, ""),
        (Method::GET, "/static/app.js".into(), false, ""),
        (Method::GET, "/static/missing.js".into(), false, ""),
        (Method::GET, "/legal/privacy".into(), false, ""),
        (Method::GET, "/legal/missing".into(), false, ""),
        (Method::GET, "/ws".into(), false, ""),
        (Method::GET, "/".into(), false, ""),
        (Method::DELETE, "/healthz".into(), false, ""),
        (
            Method::POST,
            "/api/v1/login".into(),
            false,
            r#"{"login":"x","password":"y","code":"123456"}"#,
        ),
        (Method::POST, "/api/v1/login".into(), false, "not json"),
        (Method::GET, "/api/v1/consultations".into(), false, ""),
        (Method::GET, "/api/v1/consultations".into(), true, ""),
        (Method::POST, "/api/v1/consultations".into(), true, "{}"),
        (Method::GET, format!("/api/v1/consultations/{id}"), true, ""),
        (Method::GET, "/api/v1/consultations/none".into(), true, ""),
        (
            Method::GET,
            format!("/api/v1/consultations/{id}"),
            false,
            "",
        ),
        (
            Method::POST,
            format!("/api/v1/consultations/{id}/end"),
            true,
            "",
        ),
        (Method::POST, "/api/v1/logout".into(), true, ""),
    ];
    let mut statuses = std::collections::BTreeSet::new();
    for (method, path, signed_in, body) in routes {
        let mut req = http
            .request(method.clone(), format!("{base}{path}"))
            .header("content-type", "application/json");
        if signed_in {
            req = req.bearer_auth(&session);
        }
        if !body.is_empty() {
            req = req.body(body);
        }
        let res = req.send().await.expect("answer");
        statuses.insert(res.status().as_u16());
        let h = res.headers();
        let get = |name: &str| {
            h.get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_else(|| panic!("{method} {path}: no {name}"))
                .to_owned()
        };
        let what = format!("{method} {path} ({})", res.status());
        let csp = get("content-security-policy");
        assert!(csp.starts_with("default-src 'none'"), "{what}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{what}"
        );
        assert!(
            get("strict-transport-security").starts_with("max-age="),
            "{what}"
        );
        assert_eq!(get("referrer-policy"), "no-referrer", "{what}");
        assert_eq!(get("x-content-type-options"), "nosniff", "{what}");
        assert_eq!(get("x-frame-options"), "DENY", "{what}");
        assert_eq!(get("cache-control"), "no-store", "{what}");
        let permissions = get("permissions-policy");
        assert!(
            permissions.contains("camera=(self)") && permissions.contains("microphone=(self)"),
            "{what}: {permissions}"
        );
    }
    // Successes and refusals of every kind were among them.
    for s in [200, 204, 400, 401, 404, 405] {
        assert!(statuses.contains(&s), "no {s} among {statuses:?}");
    }
    running.shutdown(Duration::from_secs(2)).await;
}
