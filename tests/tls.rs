//! `telenode serve` with a certificate: HTTPS with TLS 1.2+/AEAD suites only,
//! HSTS on every response, and a signalling call over `wss://`.

use std::sync::Arc;
use std::time::Duration;

use telenode::config::Config;
use telenode::server;
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
    let store =
        Arc::new(SqliteStore::open(&tls.config.data_dir, &tls.config.key_file()).expect("store"));
    let running = server::start(tls.config.clone(), store as Arc<dyn Store>)
        .await
        .expect("starts");
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
    let store =
        Arc::new(SqliteStore::open(&tls.config.data_dir, &tls.config.key_file()).expect("store"));
    let running = server::start(tls.config.clone(), store as Arc<dyn Store>)
        .await
        .expect("starts");
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
