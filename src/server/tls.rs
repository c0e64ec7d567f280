//! TLS for the listener: rustls with TLS 1.2 and 1.3 and AEAD suites only
//! (BSI TR-02102-2), handshakes done in their own tasks so a slow client
//! cannot hold up the others.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::server::ResolvesServerCert;
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::server::TlsStream;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads a PEM certificate chain and private key file into a signing
/// identity; errors name the configuration keys.
fn load_identity(
    provider: &CryptoProvider,
    cert: &Path,
    key: &Path,
) -> anyhow::Result<Arc<CertifiedKey>> {
    let chain = std::fs::read_to_string(cert)
        .with_context(|| format!("tls_cert: reading {}", cert.display()))?;
    let key_pem = std::fs::read_to_string(key)
        .with_context(|| format!("tls_key: reading {}", key.display()))?;
    identity_from_pem(provider, &chain, &key_pem).with_context(|| {
        format!(
            "tls_cert / tls_key: {} and {}",
            cert.display(),
            key.display()
        )
    })
}

/// ALPN protocol of ACME TLS-ALPN-01 validation handshakes (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// The certificate the listener presents: swapped in place when the files
/// change or ACME renews it. While an ACME TLS-ALPN-01 challenge is pending,
/// a validator's handshake (ALPN `acme-tls/1` only) gets the challenge
/// certificate for the name it asks for instead.
#[derive(Debug, Default)]
pub struct CertResolver {
    current: RwLock<Option<Arc<CertifiedKey>>>,
    challenges: RwLock<HashMap<String, Arc<CertifiedKey>>>,
}

impl CertResolver {
    /// Presents `identity` from now on.
    pub fn set(&self, identity: Arc<CertifiedKey>) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(identity);
    }

    /// Whether there is a certificate to present (ACME may still be working
    /// on the first one).
    pub fn has_certificate(&self) -> bool {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// Answers TLS-ALPN-01 validation for `name` with `challenge`.
    pub fn set_challenge(&self, name: &str, challenge: Arc<CertifiedKey>) {
        self.challenges
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_ascii_lowercase(), challenge);
    }

    /// Forgets every pending challenge.
    pub fn clear_challenges(&self) {
        self.challenges
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let acme = hello
            .alpn()
            .is_some_and(|mut offered| offered.any(|p| p == ACME_TLS_ALPN));
        if acme {
            // Only the challenge certificate answers a validator; no
            // challenge pending means no certificate (the handshake fails).
            let name = hello.server_name()?.to_ascii_lowercase();
            return self
                .challenges
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(&name)
                .cloned();
        }
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// How often the certificate files are checked for changes.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(2);

fn modified(paths: [&Path; 2]) -> Option<[std::time::SystemTime; 2]> {
    let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    Some([m(paths[0])?, m(paths[1])?])
}

/// The crypto provider restricted to BSI TR-02102-2: ECDHE with AES-GCM (and
/// the TLS 1.3 suites); no CBC, no RSA key exchange.
pub fn provider() -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
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
    Arc::new(provider)
}

/// A rustls server configuration with TLS 1.2 and 1.3 and the suites of
/// [`provider`], presenting whatever `resolver` holds. With `acme`, the
/// `acme-tls/1` protocol is offered for TLS-ALPN-01 validation.
pub fn server_config(
    provider: Arc<CryptoProvider>,
    resolver: Arc<CertResolver>,
    acme: bool,
) -> anyhow::Result<ServerConfig> {
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    if acme {
        config.alpn_protocols.push(ACME_TLS_ALPN.to_vec());
    }
    Ok(config)
}

/// A server configuration presenting the certificate and key files, reloaded
/// without a restart when they change (e.g. after a renewal). A reload that
/// fails keeps the previous certificate and logs why.
pub fn from_files(cert: &Path, key: &Path) -> anyhow::Result<ServerConfig> {
    let provider = provider();
    let resolver = Arc::new(CertResolver::default());
    resolver.set(load_identity(&provider, cert, key)?);
    let config = server_config(provider.clone(), resolver.clone(), false)?;

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
                    resolver.set(identity);
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

/// A certificate chain and private key in PEM text as a signing identity.
pub fn identity_from_pem(
    provider: &CryptoProvider,
    chain_pem: &str,
    key_pem: &str,
) -> anyhow::Result<Arc<CertifiedKey>> {
    let certs = rustls_pemfile::certs(&mut chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .context("reading the certificate chain")?;
    anyhow::ensure!(!certs.is_empty(), "no certificate in the chain");
    let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
        .context("reading the private key")?
        .context("no private key")?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .context("unsupported private key")?;
    let identity = CertifiedKey::new(certs, signing);
    identity
        .keys_match()
        .context("the key does not match the certificate")?;
    Ok(Arc::new(identity))
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
                        // A TLS-ALPN-01 validation ends with the handshake.
                        Ok(Ok(tls)) if tls.get_ref().1.alpn_protocol() == Some(ACME_TLS_ALPN) => {
                            tracing::debug!("answered an ACME TLS-ALPN-01 validation");
                        }
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
