//! TLS for the listener: rustls with TLS 1.2 and 1.3 and AEAD suites only
//! (BSI TR-02102-2), handshakes done in their own tasks so a slow client
//! cannot hold up the others.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::server::ResolvesServerCert;
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::server::TlsStream;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads a PEM certificate chain and private key into a signing identity.
fn load_identity(
    provider: &rustls::crypto::CryptoProvider,
    cert: &Path,
    key: &Path,
) -> anyhow::Result<Arc<CertifiedKey>> {
    let certs = rustls_pemfile::certs(&mut io::BufReader::new(
        std::fs::File::open(cert)
            .with_context(|| format!("tls_cert: opening {}", cert.display()))?,
    ))
    .collect::<Result<Vec<_>, _>>()
    .with_context(|| format!("tls_cert: reading {}", cert.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "tls_cert: no certificate in {}",
        cert.display()
    );
    let key_der = rustls_pemfile::private_key(&mut io::BufReader::new(
        std::fs::File::open(key).with_context(|| format!("tls_key: opening {}", key.display()))?,
    ))
    .with_context(|| format!("tls_key: reading {}", key.display()))?
    .with_context(|| format!("tls_key: no private key in {}", key.display()))?;
    let signing = provider
        .key_provider
        .load_private_key(key_der)
        .with_context(|| format!("tls_key: unsupported key in {}", key.display()))?;
    let identity = CertifiedKey::new(certs, signing);
    identity
        .keys_match()
        .context("tls_cert / tls_key: the key does not match the certificate")?;
    Ok(Arc::new(identity))
}

/// The current certificate, swapped in place when the files change.
#[derive(Debug)]
pub struct ReloadingCert {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}

/// How often the certificate files are checked for changes.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(2);

fn modified(paths: [&Path; 2]) -> Option<[std::time::SystemTime; 2]> {
    let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    Some([m(paths[0])?, m(paths[1])?])
}

/// A rustls server configuration: TLS 1.2 and 1.3 with ECDHE and AEAD suites
/// only (BSI TR-02102-2), whose certificate and key are reloaded without a
/// restart when their files change (e.g. after a renewal). A reload that fails
/// keeps the previous certificate and logs why.
pub fn server_config(cert: &Path, key: &Path) -> anyhow::Result<ServerConfig> {
    let mut provider = rustls::crypto::ring::default_provider();
    // TR-02102-2: ECDHE with AES-GCM (and the TLS 1.3 suites); no CBC, no RSA kx.
    provider.cipher_suites.retain(|s| {
        use rustls::CipherSuite::*;
        matches!(
            s.suite(),
            TLS13_AES_256_GCM_SHA384
                | TLS13_AES_128_GCM_SHA256
                | TLS13_CHACHA20_POLY1305_SHA256
                | TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
                | TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
                | TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
                | TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        )
    });
    let provider = Arc::new(provider);
    let resolver = Arc::new(ReloadingCert {
        current: RwLock::new(load_identity(&provider, cert, key)?),
    });
    let mut config = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_cert_resolver(resolver.clone());
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

    let (cert, key) = (cert.to_owned(), key.to_owned());
    let weak = Arc::downgrade(&resolver);
    tokio::spawn(async move {
        let mut seen = modified([&cert, &key]);
        loop {
            tokio::time::sleep(RELOAD_INTERVAL).await;
            let Some(resolver) = weak.upgrade() else {
                return;
            };
            let now = modified([&cert, &key]);
            if now == seen || now.is_none() {
                continue;
            }
            seen = now;
            match load_identity(&provider, &cert, &key) {
                Ok(identity) => {
                    *resolver.current.write().unwrap_or_else(|p| p.into_inner()) = identity;
                    tracing::info!("TLS certificate reloaded");
                }
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "TLS certificate reload failed; keeping the previous one")
                }
            }
        }
    });
    Ok(config)
}

/// A listener handing axum connections whose TLS handshake has completed.
#[derive(Debug)]
pub struct TlsListener {
    local: SocketAddr,
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, config: ServerConfig) -> io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = match tcp.accept().await {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::debug!(error = %e, "accept");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let ready = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = ready.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                });
                if tx.is_closed() {
                    return;
                }
            }
        });
        Ok(TlsListener { local, rx })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(v) => v,
            // The accept task ended: nothing more will ever arrive.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}
