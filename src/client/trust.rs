//! Which certificates the doctor's client trusts when it talks to a node:
//! the public web PKI, plus, for a node with a certificate from the clinic's
//! own CA, the roots in a PEM file (`telenode doctor --ca-file`).
//!
//! One rustls configuration serves both the HTTPS API and the signalling
//! WebSocket, with the node's own TR-02102 cipher suites.

use std::path::Path;
use std::sync::{Arc, LazyLock};

use anyhow::{Context, bail};
use rustls::{ClientConfig, RootCertStore};

/// The TLS trust of a client; cheap to clone.
#[derive(Clone)]
pub struct Trust(Arc<ClientConfig>);

static PUBLIC: LazyLock<Trust> = LazyLock::new(|| Trust::build(web_pki()));

fn web_pki() -> RootCertStore {
    RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

impl Default for Trust {
    /// The public web PKI only.
    fn default() -> Trust {
        PUBLIC.clone()
    }
}

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Trust(..)")
    }
}

impl Trust {
    fn build(roots: RootCertStore) -> Trust {
        let config = ClientConfig::builder_with_provider(crate::server::tls::provider())
            .with_safe_default_protocol_versions()
            .map(|b| b.with_root_certificates(roots).with_no_client_auth())
            // The provider is ring's with fewer suites: it always supports
            // the default versions.
            .unwrap_or_else(|e| unreachable!("TLS versions: {e}"));
        Trust(Arc::new(config))
    }

    /// The public web PKI plus every certificate in the PEM file at `path`
    /// (e.g. the clinic's own CA).
    pub fn with_ca_file(path: &Path) -> anyhow::Result<Trust> {
        let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let mut roots = web_pki();
        let mut added = 0;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.with_context(|| format!("{}: not PEM", path.display()))?;
            roots
                .add(cert)
                .with_context(|| format!("{}: not a usable CA certificate", path.display()))?;
            added += 1;
        }
        if added == 0 {
            bail!("{}: no certificate in it", path.display());
        }
        Ok(Trust::build(roots))
    }

    /// An HTTP client with this trust.
    pub(crate) fn http_client(&self) -> anyhow::Result<reqwest::Client> {
        reqwest::Client::builder()
            .user_agent(concat!("telenode/", env!("CARGO_PKG_VERSION")))
            .use_preconfigured_tls((*self.0).clone())
            .build()
            .context("HTTP client")
    }

    /// The WebSocket connector with this trust.
    pub(crate) fn connector(&self) -> tokio_tungstenite::Connector {
        tokio_tungstenite::Connector::Rustls(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_ca_file_must_hold_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let err = Trust::with_ca_file(&empty).unwrap_err().to_string();
        assert!(err.contains("no certificate"), "{err}");
        let err = Trust::with_ca_file(&dir.path().join("absent.pem"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("reading"), "{err}");

        let ca = rcgen::generate_simple_self_signed(vec!["clinic.internal".into()]).unwrap();
        let good = dir.path().join("ca.pem");
        std::fs::write(&good, ca.cert.pem()).unwrap();
        Trust::with_ca_file(&good).unwrap();
    }
}
