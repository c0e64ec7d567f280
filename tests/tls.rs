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
