//! Automatic certificates over ACME (RFC 8555), validated with TLS-ALPN-01
//! (RFC 8737) on the node's own HTTPS listener: no port 80, no web server
//! beside the node. The certificate is renewed two thirds into its validity
//! and swapped in without a restart.
//!
//! State lives in `<data_dir>/acme/`, every file mode 0600: `account.json`
//! (the ACME account key and the directory it belongs to), `cert.pem` and
//! `key.pem`. None of it is personal data: the names are the clinic's.
//! A restart serves the stored certificate at once and talks to the CA only
//! when it is due.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::sign::CertifiedKey;

use super::tls::{CertResolver, identity_from_pem};
use crate::config::Config;
use crate::secret_file::{replace_private, write_private};

/// What the ACME task needs from the configuration.
#[derive(Debug, Clone)]
pub struct AcmeSettings {
    pub domains: Vec<String>,
    pub directory: String,
    pub contact: Vec<String>,
    pub ca_file: Option<PathBuf>,
    /// Where the account, certificate and key are kept.
    pub state_dir: PathBuf,
}

impl AcmeSettings {
    /// The settings when `config` asks for ACME.
    pub fn from_config(config: &Config) -> Option<AcmeSettings> {
        config.acme().then(|| AcmeSettings {
            domains: config.acme_domains.clone(),
            directory: config.acme_directory.clone(),
            contact: config.acme_contact.clone(),
            ca_file: config.acme_ca_file.clone(),
            state_dir: config.data_dir.join("acme"),
        })
    }

    fn cert_file(&self) -> PathBuf {
        self.state_dir.join("cert.pem")
    }

    fn key_file(&self) -> PathBuf {
        self.state_dir.join("key.pem")
    }

    fn account_file(&self) -> PathBuf {
        self.state_dir.join("account.json")
    }
}

/// When a certificate valid from `not_before` to `not_after` is renewed: two
/// thirds into its validity (30 days before the end of a 90-day one).
pub fn renew_at(not_before: SystemTime, not_after: SystemTime) -> SystemTime {
    let validity = not_after
        .duration_since(not_before)
        .unwrap_or(Duration::ZERO);
    not_before + validity * 2 / 3
}

/// The pause after `failures` consecutive failed attempts: one minute,
/// doubling, at most six hours (well inside the CA's rate limits).
pub fn retry_delay(failures: u32) -> Duration {
    const MAX: Duration = Duration::from_secs(6 * 3600);
    Duration::from_secs(60)
        .checked_mul(1u32.checked_shl(failures).unwrap_or(u32::MAX))
        .map_or(MAX, |d| d.min(MAX))
}

/// A certificate in use, with what decides its renewal.
struct Issued {
    identity: Arc<CertifiedKey>,
    not_before: SystemTime,
    not_after: SystemTime,
}

impl Issued {
    fn from_pem(provider: &CryptoProvider, chain: &str, key: &str) -> anyhow::Result<Issued> {
        let identity = identity_from_pem(provider, chain, key)?;
        let leaf = identity.end_entity_cert()?;
        let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
            .map_err(|e| anyhow::anyhow!("parsing the certificate: {e}"))?;
        let time = |t: i64| SystemTime::UNIX_EPOCH + Duration::from_secs(t.max(0) as u64);
        let validity = cert.validity();
        Ok(Issued {
            not_before: time(validity.not_before.timestamp()),
            not_after: time(validity.not_after.timestamp()),
            identity: identity.clone(),
        })
    }

    /// Whether it names every domain in `domains` (the configuration may
    /// have changed since it was issued).
    fn covers(&self, domains: &[String]) -> bool {
        let Ok(leaf) = self.identity.end_entity_cert() else {
            return false;
        };
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(leaf.as_ref()) else {
            return false;
        };
        let names: Vec<String> = match cert.subject_alternative_name() {
            Ok(Some(san)) => san
                .value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => {
                        Some(d.to_ascii_lowercase())
                    }
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        domains
            .iter()
            .all(|d| names.contains(&d.to_ascii_lowercase()))
    }
}

/// The stored certificate when it is usable for `settings`; why not
/// otherwise (logged by the caller).
fn load_stored(settings: &AcmeSettings, provider: &CryptoProvider) -> anyhow::Result<Issued> {
    let chain = std::fs::read_to_string(settings.cert_file())?;
    let key = std::fs::read_to_string(settings.key_file())?;
    let issued = Issued::from_pem(provider, &chain, &key)?;
    if !issued.covers(&settings.domains) {
        bail!("the stored certificate does not name every domain in acme_domains");
    }
    if issued.not_after <= SystemTime::now() {
        bail!("the stored certificate has expired");
    }
    Ok(issued)
}

/// Starts the certificate task: presents the stored certificate at once if
/// there is a usable one, then obtains or renews whenever it is due, until
/// `shutdown`.
pub fn spawn(
    settings: AcmeSettings,
    provider: Arc<CryptoProvider>,
    resolver: Arc<CertResolver>,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let mut current = match load_stored(&settings, &provider) {
        Ok(issued) => {
            resolver.set(issued.identity.clone());
            tracing::info!("ACME: serving the stored certificate");
            Some(issued)
        }
        Err(e) => {
            tracing::info!(reason = %format!("{e:#}"), "ACME: no usable stored certificate; requesting one");
            None
        }
    };
    tokio::spawn(async move {
        let mut failures = 0u32;
        loop {
            let due = current
                .as_ref()
                .map_or(SystemTime::now(), |c| renew_at(c.not_before, c.not_after));
            let wait = due
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO);
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            let attempt = obtain(&settings, &provider, &resolver).await;
            resolver.clear_challenges();
            match attempt {
                Ok(issued) => {
                    resolver.set(issued.identity.clone());
                    tracing::info!("ACME: certificate obtained and in use");
                    current = Some(issued);
                    failures = 0;
                }
                Err(e) => {
                    let pause = retry_delay(failures);
                    failures = failures.saturating_add(1);
                    tracing::error!(
                        error = %format!("{e:#}"),
                        retry_in_secs = pause.as_secs(),
                        "ACME: obtaining a certificate failed"
                    );
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        _ = shutdown.wait_for(|stop| *stop) => return,
                    }
                }
            }
        }
    })
}

/// The account file: credentials and the directory they belong to.
#[derive(Serialize, Deserialize)]
struct StoredAccount {
    directory: String,
    credentials: AccountCredentials,
}

fn builder(settings: &AcmeSettings) -> anyhow::Result<instant_acme::AccountBuilder> {
    Ok(match &settings.ca_file {
        Some(ca) => Account::builder_with_root(ca)
            .with_context(|| format!("acme_ca_file: {}", ca.display()))?,
        None => Account::builder().context("system root certificates")?,
    })
}

/// The account for this directory: the stored one, or a new one (stored).
async fn account(settings: &AcmeSettings) -> anyhow::Result<Account> {
    let path = settings.account_file();
    if let Ok(text) = std::fs::read_to_string(&path) {
        match serde_json::from_str::<StoredAccount>(&text) {
            Ok(stored) if stored.directory == settings.directory => {
                return builder(settings)?
                    .from_credentials(stored.credentials)
                    .await
                    .context("restoring the ACME account");
            }
            Ok(_) => tracing::info!("ACME: the directory changed; creating a new account"),
            Err(e) => {
                tracing::warn!(error = %e, "ACME: unreadable account file; creating a new account")
            }
        }
    }
    let contact: Vec<&str> = settings.contact.iter().map(String::as_str).collect();
    let (account, credentials) = builder(settings)?
        .create(
            &NewAccount {
                contact: &contact,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            settings.directory.clone(),
            None,
        )
        .await
        .with_context(|| format!("creating an account at {}", settings.directory))?;
    let stored = StoredAccount {
        directory: settings.directory.clone(),
        credentials,
    };
    write_private(&path, &serde_json::to_string(&stored)?, false)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(account)
}

/// The self-signed certificate that answers a TLS-ALPN-01 validation for
/// `name`: the name as its only SAN and the key authorization's digest in
/// the critical acmeIdentifier extension (RFC 8737 section 3).
fn challenge_identity(
    provider: &CryptoProvider,
    name: &str,
    digest: &[u8],
) -> anyhow::Result<Arc<CertifiedKey>> {
    let mut params = rcgen::CertificateParams::new(vec![name.to_owned()])?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    let signing = provider
        .key_provider
        .load_private_key(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            key.serialize_der(),
        )))
        .context("challenge key")?;
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone()],
        signing,
    )))
}

/// One issuance: order, answer every challenge over TLS-ALPN-01, finalize,
/// store, and return the certificate.
async fn obtain(
    settings: &AcmeSettings,
    provider: &CryptoProvider,
    resolver: &CertResolver,
) -> anyhow::Result<Issued> {
    let account = account(settings).await?;
    let identifiers: Vec<Identifier> = settings
        .domains
        .iter()
        .map(|d| Identifier::Dns(d.clone()))
        .collect();
    let mut order = account
        .new_order(&NewOrder::new(&identifiers))
        .await
        .context("placing the order")?;

    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz.context("reading an authorization")?;
        match authz.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            other => bail!("authorization is {other:?}"),
        }
        let mut challenge = authz
            .challenge(ChallengeType::TlsAlpn01)
            .context("the CA offers no tls-alpn-01 challenge")?;
        let name = challenge.identifier().to_string();
        let digest = challenge.key_authorization().digest();
        resolver.set_challenge(&name, challenge_identity(provider, &name, digest.as_ref())?);
        challenge
            .set_ready()
            .await
            .with_context(|| format!("answering the challenge for {name}"))?;
    }

    let retries = RetryPolicy::new().timeout(Duration::from_secs(120));
    let status = order
        .poll_ready(&retries)
        .await
        .context("waiting for validation")?;
    if status != OrderStatus::Ready {
        let mut reasons = Vec::new();
        let mut authorizations = order.authorizations();
        while let Some(Ok(authz)) = authorizations.next().await {
            for c in &authz.challenges {
                if let Some(e) = &c.error {
                    reasons.push(e.to_string());
                }
            }
        }
        bail!("the order is {status:?}: {}", reasons.join("; "));
    }
    let key_pem = order.finalize().await.context("finalizing the order")?;
    let chain_pem = order
        .poll_certificate(&retries)
        .await
        .context("downloading the certificate")?;
    let issued = Issued::from_pem(provider, &chain_pem, &key_pem)
        .context("the CA's certificate does not fit the key")?;
    store_pair(settings, &chain_pem, &key_pem)?;
    Ok(issued)
}

/// Replaces key, then certificate, each atomically, so a crash leaves
/// either the old pair or the new one (a mismatched pair is refused at start
/// and simply obtained again).
fn store_pair(settings: &AcmeSettings, chain: &str, key: &str) -> anyhow::Result<()> {
    for (path, text) in [(settings.key_file(), key), (settings.cert_file(), chain)] {
        replace_private(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renews_two_thirds_into_validity() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let end = start + Duration::from_secs(90 * 86_400);
        assert_eq!(
            renew_at(start, end),
            start + Duration::from_secs(60 * 86_400)
        );
        // A certificate whose end precedes its start is due at once.
        assert_eq!(renew_at(end, start), end);
    }

    #[test]
    fn retry_delay_doubles_up_to_six_hours() {
        assert_eq!(retry_delay(0), Duration::from_secs(60));
        assert_eq!(retry_delay(1), Duration::from_secs(120));
        assert_eq!(retry_delay(5), Duration::from_secs(1920));
        assert_eq!(retry_delay(9), Duration::from_secs(6 * 3600));
        assert_eq!(retry_delay(40), Duration::from_secs(6 * 3600));
    }

    #[test]
    fn challenge_certificate_names_the_domain_and_carries_the_digest() {
        let provider = super::super::tls::provider();
        let digest = [0xab; 32];
        let ck = challenge_identity(&provider, "video.clinic.example", &digest).expect("cert");
        let leaf = ck.end_entity_cert().expect("leaf");
        let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).expect("parses");
        let ext = cert
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
            .expect("acmeIdentifier");
        assert!(ext.critical, "RFC 8737: the extension is critical");
        // An OCTET STRING (0x04, length 32) holding the digest.
        assert_eq!(&ext.value[..2], &[0x04, 32]);
        assert_eq!(&ext.value[2..], &digest);
        let issued = Issued {
            identity: ck.clone(),
            not_before: SystemTime::now(),
            not_after: SystemTime::now(),
        };
        assert!(issued.covers(&["VIDEO.clinic.example".into()]));
        assert!(!issued.covers(&["other.clinic.example".into()]));
    }
}
