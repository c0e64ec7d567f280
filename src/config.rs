//! Node configuration: one `Config`, layered defaults → TOML file → `TELENODE_*`
//! environment → command-line flags, validated once at start-up.
//!
//! The environment and the flags arrive together through clap (a flag wins over
//! its `TELENODE_*` variable); [`Config::load`] lays them over the TOML file,
//! which lies over the defaults.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use telenode_turn::Cidr;

/// Longest retention of consultation metadata: 90 days (the German
/// video-consultation rules: deleted within three months at the latest).
pub const MAX_RETENTION_DAYS: u32 = 90;

/// Longest lifetime a consultation link may be given: 24 hours.
pub const MAX_CONSULTATION_TTL: Duration = Duration::from_secs(24 * 3600);

/// Everything `telenode serve` needs to run.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address and port the HTTPS / WebSocket listener binds.
    pub listen: SocketAddr,
    /// Address of the operations listener (`/healthz`, `/readyz`, `/metrics`);
    /// loopback by default, never serves personal data.
    pub admin_listen: SocketAddr,
    /// Directory holding the metadata database.
    pub data_dir: PathBuf,
    /// Directory with the operator's legal pages as HTML fragments:
    /// `imprint.html`, `privacy.html`, `terms.html` (German by default).
    pub legal_dir: Option<PathBuf>,
    /// PEM certificate chain; required unless `listen` is a loopback address.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key matching `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Domain names to obtain a certificate for over ACME (TLS-ALPN-01 on
    /// `listen`); empty means no ACME. Excludes `tls_cert` / `tls_key`.
    pub acme_domains: Vec<String>,
    /// The ACME directory URL (https).
    pub acme_directory: String,
    /// Contact URLs for the ACME account (`mailto:`), optional.
    pub acme_contact: Vec<String>,
    /// PEM root certificate to trust for the ACME directory instead of the
    /// system's roots (a private ACME CA).
    pub acme_ca_file: Option<PathBuf>,
    /// Default lifetime of a new consultation link, in seconds (max 86400).
    pub consultation_ttl_secs: u64,
    /// A signalling connection that sends nothing for this long is closed.
    pub idle_timeout_secs: u64,
    /// How long a doctor's login session lasts, in seconds (rotated past
    /// half of it).
    pub session_ttl_secs: u64,
    /// A session unused for this long ends, in seconds.
    pub session_idle_secs: u64,
    /// Multiplies every rate limit (per source and global) and the cap on
    /// concurrent connections per source; raise it when many patients share
    /// one address (a hospital's NAT).
    pub rate_limit_scale: f64,
    /// The master key file (wraps the store's data key); `None` means
    /// `<data_dir>/master.key`.
    pub master_key_file: Option<PathBuf>,
    /// Days consultation metadata and audit entries are kept after a
    /// consultation ends or expires (1..=90).
    pub retention_days: u32,
    /// Where the embedded TURN relay listens (UDP and TCP on one port):
    /// `auto`, `off` or an address.
    pub turn_listen: TurnListen,
    /// IP the relay's per-allocation sockets bind to and advertise; default
    /// the `turn_listen` IP (required when that is unspecified, 0.0.0.0).
    pub turn_relay_ip: Option<IpAddr>,
    /// Where the relay also listens for TURN over TLS (`turns:`), with the
    /// node's certificate; `None`: no TLS relay. For patients behind
    /// firewalls that only let TLS out (port 443 on an address of its own,
    /// or 5349).
    pub turn_tls_listen: Option<SocketAddr>,
    /// UDP ports the relay's per-allocation sockets use, `FIRST-LAST`;
    /// `None`: any the kernel hands out. Set it to publish them from a
    /// container, or to open exactly these in a firewall.
    pub turn_relay_ports: Option<PortRange>,
    /// Host name in the `turns:` URL handed to the peers (it must match
    /// the certificate); default the first of `acme_domains`, else
    /// `turn_relay_ip`.
    pub turn_tls_name: Option<String>,
    /// The TURN REST secret shared with whoever mints or checks credentials;
    /// `None` means `<data_dir>/turn.secret`. Created (mode 0600) when absent.
    pub turn_secret_file: Option<PathBuf>,
    /// Peer ranges the relay may reach despite its deny-by-default policy.
    #[serde(deserialize_with = "de_cidrs")]
    pub turn_allow_peer: Vec<Cidr>,
    /// TURN REALM.
    pub turn_realm: String,
    /// STUN/TURN URLs given to the peers; empty means the embedded relay's
    /// own (`stun:`, `turn:` UDP and TCP at `turn_relay_ip`). With
    /// `turn_listen = "off"` they name an external TURN sharing the secret.
    pub turn_urls: Vec<String>,
    /// Allocations held at once, in total.
    pub turn_max_allocations: usize,
    /// Allocations held at once per credential (one participant).
    pub turn_max_allocations_per_user: usize,
    /// Bytes per second relayed per allocation (0: unlimited).
    pub turn_bandwidth_per_allocation: u64,
}

/// Let's Encrypt's production ACME directory, the default.
pub const LETS_ENCRYPT_DIRECTORY: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// Port of the TURN relay when `turn_listen` is `auto` (RFC 8656).
pub const TURN_DEFAULT_PORT: u16 = 3478;

/// Where the TURN relay listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TurnListen {
    /// The `listen` IP, port 3478 (port 0, ephemeral, when `listen` has
    /// port 0).
    #[default]
    Auto,
    /// No embedded relay.
    Off,
    /// This address.
    Addr(SocketAddr),
}

impl FromStr for TurnListen {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(TurnListen::Auto),
            "off" => Ok(TurnListen::Off),
            _ => s.parse().map(TurnListen::Addr).map_err(|_| {
                format!("{s:?} is not \"auto\", \"off\" or an address like 0.0.0.0:3478")
            }),
        }
    }
}

impl std::fmt::Display for TurnListen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TurnListen::Auto => f.write_str("auto"),
            TurnListen::Off => f.write_str("off"),
            TurnListen::Addr(a) => write!(f, "{a}"),
        }
    }
}

impl<'de> Deserialize<'de> for TurnListen {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A range of ports, `FIRST-LAST` (both included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl FromStr for PortRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a port range such as 49160-49200");
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let (first, last): (u16, u16) = (
            a.trim().parse().map_err(|_| bad())?,
            b.trim().parse().map_err(|_| bad())?,
        );
        if first == 0 || first > last {
            return Err(bad());
        }
        Ok(PortRange { first, last })
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

fn de_cidrs<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Cidr>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|s| s.parse().map_err(serde::de::Error::custom))
        .collect()
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            data_dir: PathBuf::from("telenode-data"),
            legal_dir: None,
            tls_cert: None,
            tls_key: None,
            acme_domains: Vec::new(),
            acme_directory: LETS_ENCRYPT_DIRECTORY.to_owned(),
            acme_contact: Vec::new(),
            acme_ca_file: None,
            consultation_ttl_secs: 4 * 3600,
            idle_timeout_secs: 60,
            session_ttl_secs: 12 * 3600,
            session_idle_secs: 3600,
            rate_limit_scale: 1.0,
            master_key_file: None,
            retention_days: 14,
            turn_listen: TurnListen::Auto,
            turn_relay_ip: None,
            turn_tls_listen: None,
            turn_relay_ports: None,
            turn_tls_name: None,
            turn_secret_file: None,
            turn_allow_peer: Vec::new(),
            turn_realm: "telenode".to_owned(),
            turn_urls: Vec::new(),
            turn_max_allocations: 1000,
            turn_max_allocations_per_user: 8,
            turn_bandwidth_per_allocation: 500_000,
        }
    }
}

/// Values given on the command line or through `TELENODE_*` variables; each
/// one that is set overrides the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub admin_listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Replaces the file's list when not empty.
    pub acme_domains: Vec<String>,
    pub acme_directory: Option<String>,
    /// Replaces the file's list when not empty.
    pub acme_contact: Vec<String>,
    pub acme_ca_file: Option<PathBuf>,
    pub master_key_file: Option<PathBuf>,
    pub turn_listen: Option<TurnListen>,
    pub turn_relay_ip: Option<IpAddr>,
    pub turn_tls_listen: Option<SocketAddr>,
    pub turn_relay_ports: Option<PortRange>,
    pub turn_tls_name: Option<String>,
    pub turn_secret_file: Option<PathBuf>,
    /// Replaces the file's list when not empty.
    pub turn_allow_peer: Vec<Cidr>,
    /// Replaces the file's list when not empty.
    pub turn_urls: Vec<String>,
}

/// A configuration that cannot be used, naming the key at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("reading config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{key}: {message}")]
    Invalid { key: &'static str, message: String },
}

impl Config {
    /// Builds the configuration from an optional TOML file and the overrides,
    /// then validates it.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let mut config = match file {
            Some(path) => Self::from_file(path)?,
            None => Config::default(),
        };
        config.apply(overrides);
        config.validate()?;
        Ok(config)
    }

    fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses TOML text; unknown keys are an error that names them.
    pub fn from_toml(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())
    }

    fn apply(&mut self, o: &Overrides) {
        if let Some(v) = o.listen {
            self.listen = v;
        }
        if let Some(v) = o.admin_listen {
            self.admin_listen = v;
        }
        if let Some(v) = &o.data_dir {
            self.data_dir = v.clone();
        }
        if let Some(v) = &o.tls_cert {
            self.tls_cert = Some(v.clone());
        }
        if let Some(v) = &o.tls_key {
            self.tls_key = Some(v.clone());
        }
        if !o.acme_domains.is_empty() {
            self.acme_domains = o.acme_domains.clone();
        }
        if let Some(v) = &o.acme_directory {
            self.acme_directory = v.clone();
        }
        if !o.acme_contact.is_empty() {
            self.acme_contact = o.acme_contact.clone();
        }
        if let Some(v) = &o.acme_ca_file {
            self.acme_ca_file = Some(v.clone());
        }
        if let Some(v) = &o.master_key_file {
            self.master_key_file = Some(v.clone());
        }
        if let Some(v) = o.turn_listen {
            self.turn_listen = v;
        }
        if let Some(v) = o.turn_relay_ip {
            self.turn_relay_ip = Some(v);
        }
        if let Some(v) = o.turn_tls_listen {
            self.turn_tls_listen = Some(v);
        }
        if let Some(v) = o.turn_relay_ports {
            self.turn_relay_ports = Some(v);
        }
        if let Some(v) = &o.turn_tls_name {
            self.turn_tls_name = Some(v.clone());
        }
        if let Some(v) = &o.turn_secret_file {
            self.turn_secret_file = Some(v.clone());
        }
        if !o.turn_allow_peer.is_empty() {
            self.turn_allow_peer = o.turn_allow_peer.clone();
        }
        if !o.turn_urls.is_empty() {
            self.turn_urls = o.turn_urls.clone();
        }
    }

    /// Checks what types alone cannot; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: String| Err(ConfigError::Invalid { key, message });
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => {
                return invalid("tls_key", "tls_cert is set but tls_key is not".into());
            }
            (None, Some(_)) => {
                return invalid("tls_cert", "tls_key is set but tls_cert is not".into());
            }
            (Some(_), Some(_)) if !self.acme_domains.is_empty() => {
                return invalid(
                    "acme_domains",
                    "set either tls_cert and tls_key or acme_domains, not both".into(),
                );
            }
            (None, None) if !self.listen.ip().is_loopback() && self.acme_domains.is_empty() => {
                return invalid(
                    "listen",
                    format!(
                        "{} is not a loopback address: plain HTTP is only allowed on loopback; \
                         set tls_cert and tls_key, or acme_domains",
                        self.listen
                    ),
                );
            }
            _ => {}
        }
        for (key, path) in [("tls_cert", &self.tls_cert), ("tls_key", &self.tls_key)] {
            if let Some(path) = path
                && !path.is_file()
            {
                return invalid(key, format!("{} is not a readable file", path.display()));
            }
        }
        if let Some(dir) = &self.legal_dir
            && !dir.is_dir()
        {
            return invalid("legal_dir", format!("{} is not a directory", dir.display()));
        }
        if self.admin_listen == self.listen && self.listen.port() != 0 {
            return invalid(
                "admin_listen",
                format!(
                    "{} is also `listen`; give the operations listener its own port",
                    self.admin_listen
                ),
            );
        }
        if self.consultation_ttl_secs == 0
            || self.consultation_ttl_secs > MAX_CONSULTATION_TTL.as_secs()
        {
            return invalid(
                "consultation_ttl_secs",
                format!(
                    "{} is out of range 1..={}",
                    self.consultation_ttl_secs,
                    MAX_CONSULTATION_TTL.as_secs()
                ),
            );
        }
        if !(5..=3600).contains(&self.idle_timeout_secs) {
            return invalid(
                "idle_timeout_secs",
                format!("{} is out of range 5..=3600", self.idle_timeout_secs),
            );
        }
        if !(0.1..=1000.0).contains(&self.rate_limit_scale) {
            return invalid(
                "rate_limit_scale",
                format!("{} is out of range 0.1..=1000", self.rate_limit_scale),
            );
        }
        if !(60..=7 * 24 * 3600).contains(&self.session_ttl_secs) {
            return invalid(
                "session_ttl_secs",
                format!("{} is out of range 60..=604800", self.session_ttl_secs),
            );
        }
        if !(300..=86_400).contains(&self.session_idle_secs) {
            return invalid(
                "session_idle_secs",
                format!("{} is out of range 300..=86400", self.session_idle_secs),
            );
        }
        validate_retention_days(self.retention_days)?;
        self.validate_acme()?;
        self.validate_turn()?;
        Ok(())
    }

    fn validate_acme(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: String| Err(ConfigError::Invalid { key, message });
        for name in &self.acme_domains {
            if let Err(why) = check_domain_name(name) {
                return invalid("acme_domains", format!("{name:?} {why}"));
            }
        }
        if !self.acme_directory.starts_with("https://") {
            return invalid(
                "acme_directory",
                format!("{:?} is not an https:// URL", self.acme_directory),
            );
        }
        for contact in &self.acme_contact {
            if !contact.starts_with("mailto:") || contact.len() <= "mailto:".len() {
                return invalid(
                    "acme_contact",
                    format!("{contact:?} is not a mailto: URL (mailto:it@clinic.example)"),
                );
            }
        }
        if let Some(path) = &self.acme_ca_file
            && !path.is_file()
        {
            return invalid(
                "acme_ca_file",
                format!("{} is not a readable file", path.display()),
            );
        }
        Ok(())
    }

    fn validate_turn(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: String| Err(ConfigError::Invalid { key, message });
        if let Some(listen) = self.turn_listen_addr() {
            let relay = self.turn_relay_ip.unwrap_or(listen.ip());
            if relay.is_unspecified() {
                return invalid(
                    "turn_relay_ip",
                    format!(
                        "turn_listen {listen} is a wildcard: set turn_relay_ip to the address \
                         relayed media should use (the host's public IP)"
                    ),
                );
            }
            if !relay.is_ipv4() {
                return invalid(
                    "turn_relay_ip",
                    format!("{relay}: only IPv4 relay addresses are supported for now"),
                );
            }
            if listen.port() != 0 && (listen == self.listen || listen == self.admin_listen) {
                return invalid(
                    "turn_listen",
                    format!("{listen} is already the HTTP or operations listener"),
                );
            }
        }
        if let Some(tls) = self.turn_tls_listen {
            if self.turn_listen_addr().is_none() {
                return invalid(
                    "turn_tls_listen",
                    "TURN over TLS is part of the embedded relay, and turn_listen is off".into(),
                );
            }
            if !self.tls() {
                return invalid(
                    "turn_tls_listen",
                    "needs the node's certificate: set tls_cert and tls_key, or acme_domains"
                        .into(),
                );
            }
            if self.turn_tls_name.is_none() && !self.acme() {
                return invalid(
                    "turn_tls_name",
                    "set the name the certificate is for: peers check it on turns: URLs".into(),
                );
            }
            let taken = [
                Some(self.listen),
                Some(self.admin_listen),
                self.turn_listen_addr(),
            ];
            if tls.port() != 0 && taken.contains(&Some(tls)) {
                return invalid(
                    "turn_tls_listen",
                    format!("{tls} is already another listener of the node"),
                );
            }
        }
        if let (Some(range), Some(listen)) = (self.turn_relay_ports, self.turn_listen_addr())
            && (range.first..=range.last).contains(&listen.port())
        {
            return invalid(
                "turn_relay_ports",
                format!("{range} includes the relay's own port {}", listen.port()),
            );
        }
        if let Some(name) = &self.turn_tls_name
            && name.parse::<IpAddr>().is_err()
            && let Err(why) = check_domain_name(name)
        {
            return invalid("turn_tls_name", format!("{name:?} {why}"));
        }
        if self.turn_realm.is_empty()
            || self.turn_realm.len() > 127
            || self.turn_realm.chars().any(|c| c.is_control() || c == '"')
        {
            return invalid(
                "turn_realm",
                format!("{:?} must be 1..=127 printable characters", self.turn_realm),
            );
        }
        for url in &self.turn_urls {
            let ok = ["stun:", "turn:", "turns:"]
                .iter()
                .any(|p| url.starts_with(p) && url.len() > p.len());
            if !ok || url.chars().any(char::is_whitespace) {
                return invalid(
                    "turn_urls",
                    format!("{url:?} is not a stun:, turn: or turns: URL"),
                );
            }
        }
        if self.turn_max_allocations == 0 || self.turn_max_allocations_per_user == 0 {
            return invalid(
                "turn_max_allocations",
                "allocation quotas must be at least 1".into(),
            );
        }
        Ok(())
    }

    /// Where the embedded TURN relay listens; `None` when it is off.
    pub fn turn_listen_addr(&self) -> Option<SocketAddr> {
        match self.turn_listen {
            TurnListen::Off => None,
            TurnListen::Addr(a) => Some(a),
            TurnListen::Auto => {
                let port = if self.listen.port() == 0 {
                    0
                } else {
                    TURN_DEFAULT_PORT
                };
                Some(SocketAddr::new(self.listen.ip(), port))
            }
        }
    }

    /// Whether peers get TURN credentials (embedded relay or external URLs).
    pub fn turn_enabled(&self) -> bool {
        self.turn_listen != TurnListen::Off || !self.turn_urls.is_empty()
    }

    /// The host in `turns:` URLs: `turn_tls_name`, else the first ACME
    /// domain, else the relay's address.
    pub fn turn_tls_name(&self, relay_ip: IpAddr) -> String {
        self.turn_tls_name
            .clone()
            .or_else(|| self.acme_domains.first().cloned())
            .unwrap_or_else(|| relay_ip.to_string())
    }

    /// Where the TURN REST secret is.
    pub fn turn_secret_path(&self) -> PathBuf {
        match &self.turn_secret_file {
            Some(p) => p.clone(),
            None => self.data_dir.join("turn.secret"),
        }
    }

    /// Where the master key file is.
    pub fn key_file(&self) -> PathBuf {
        match &self.master_key_file {
            Some(p) => p.clone(),
            None => crate::store::keyfile::default_key_file(&self.data_dir),
        }
    }

    /// Retention in seconds.
    pub fn retention_secs(&self) -> i64 {
        i64::from(self.retention_days) * crate::store::DAY_SECS
    }

    /// Whether the listener speaks TLS.
    pub fn tls(&self) -> bool {
        self.tls_cert.is_some() || self.acme()
    }

    /// Whether certificates come from ACME.
    pub fn acme(&self) -> bool {
        !self.acme_domains.is_empty()
    }
}

/// A name ACME can validate over TLS-ALPN-01: a fully qualified DNS name,
/// not an address and not a wildcard.
fn check_domain_name(name: &str) -> Result<(), &'static str> {
    if name.parse::<IpAddr>().is_ok() {
        return Err("is an address; ACME certificates here are for domain names");
    }
    if name.starts_with("*.") {
        return Err("is a wildcard; TLS-ALPN-01 cannot validate wildcards");
    }
    if name.len() > 253 || !name.contains('.') {
        return Err("is not a fully qualified domain name");
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if !name.split('.').all(label_ok) {
        return Err("is not a valid domain name (letters, digits, hyphens, dots)");
    }
    Ok(())
}

/// Checks `retention_days` (also used by `telenode admin purge`).
pub fn validate_retention_days(days: u32) -> Result<(), ConfigError> {
    if !(1..=MAX_RETENTION_DAYS).contains(&days) {
        return Err(ConfigError::Invalid {
            key: "retention_days",
            message: format!(
                "{days} is out of range 1..={MAX_RETENTION_DAYS}: metadata must be deleted \
                 within three months at the latest"
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_loopback() {
        let c = Config::default();
        c.validate().expect("defaults validate");
        assert!(c.listen.ip().is_loopback());
    }

    #[test]
    fn misspelt_key_is_named() {
        let err = Config::from_toml("lisen = \"127.0.0.1:1\"").expect_err("unknown key");
        assert!(err.contains("lisen"), "{err}");
    }

    #[test]
    fn file_then_overrides() {
        let mut c = Config::from_toml("listen = \"127.0.0.1:9000\"\nidle_timeout_secs = 30")
            .expect("parses");
        c.apply(&Overrides {
            listen: Some("127.0.0.1:9100".parse().expect("addr")),
            ..Overrides::default()
        });
        assert_eq!(c.listen.port(), 9100);
        assert_eq!(c.idle_timeout_secs, 30);
    }

    #[test]
    fn public_bind_without_tls_is_refused_naming_listen() {
        let c = Config {
            listen: "0.0.0.0:8443".parse().expect("addr"),
            ..Config::default()
        };
        let err = c.validate().expect_err("needs TLS");
        assert!(err.to_string().starts_with("listen:"), "{err}");
    }

    #[test]
    fn acme_allows_a_public_bind_and_checks_its_keys() {
        let mut c = Config {
            listen: "0.0.0.0:443".parse().expect("addr"),
            acme_domains: vec!["video.clinic.example".into()],
            turn_listen: TurnListen::Off,
            ..Config::default()
        };
        c.validate()
            .expect("ACME stands in for the certificate files");
        assert!(c.tls());
        for (bad, key) in [
            ("*.clinic.example", "acme_domains"),
            ("192.0.2.1", "acme_domains"),
            ("localhost", "acme_domains"),
            ("bad_name.example", "acme_domains"),
        ] {
            c.acme_domains = vec![bad.into()];
            let err = c.validate().expect_err(bad).to_string();
            assert!(err.starts_with(key), "{bad}: {err}");
        }
        c.acme_domains = vec!["video.clinic.example".into()];
        c.acme_directory = "http://acme.example/dir".into();
        assert!(
            c.validate()
                .expect_err("http")
                .to_string()
                .starts_with("acme_directory:")
        );
        c.acme_directory = LETS_ENCRYPT_DIRECTORY.into();
        c.acme_contact = vec!["it@clinic.example".into()];
        assert!(
            c.validate()
                .expect_err("contact")
                .to_string()
                .starts_with("acme_contact:")
        );
        c.acme_contact = vec!["mailto:it@clinic.example".into()];
        c.validate().expect("valid");
        c.tls_cert = Some("Cargo.toml".into());
        c.tls_key = Some("Cargo.toml".into());
        assert!(
            c.validate()
                .expect_err("both")
                .to_string()
                .starts_with("acme_domains:")
        );
    }

    #[test]
    fn missing_certificate_file_is_named() {
        let c = Config {
            tls_cert: Some("/nonexistent/cert.pem".into()),
            tls_key: Some("/nonexistent/key.pem".into()),
            ..Config::default()
        };
        let err = c.validate().expect_err("missing file");
        assert!(err.to_string().starts_with("tls_cert:"), "{err}");
    }

    #[test]
    fn retention_above_90_days_is_refused_naming_the_key() {
        let c = Config::from_toml("retention_days = 91").expect("parses");
        let err = c.validate().expect_err("too long");
        assert!(err.to_string().starts_with("retention_days: 91"), "{err}");
        let c = Config::from_toml("retention_days = 90").expect("parses");
        c.validate().expect("90 days is allowed");
        assert!(validate_retention_days(0).is_err());
    }

    #[test]
    fn master_key_file_defaults_into_the_data_dir() {
        let c = Config::default();
        assert_eq!(c.key_file(), PathBuf::from("telenode-data/master.key"));
        let c =
            Config::from_toml("master_key_file = \"/run/secrets/telenode.key\"").expect("parses");
        assert_eq!(c.key_file(), PathBuf::from("/run/secrets/telenode.key"));
    }

    #[test]
    fn turn_listen_forms() {
        let c = Config::default();
        assert_eq!(
            c.turn_listen_addr(),
            Some("127.0.0.1:3478".parse().expect("addr"))
        );
        let c = Config {
            listen: "127.0.0.1:0".parse().expect("addr"),
            ..Config::default()
        };
        assert_eq!(c.turn_listen_addr().map(|a| a.port()), Some(0));
        let c = Config::from_toml("turn_listen = \"off\"").expect("parses");
        assert_eq!(c.turn_listen_addr(), None);
        assert!(!c.turn_enabled());
        let c = Config::from_toml("turn_listen = \"127.0.0.2:5349\"").expect("parses");
        assert_eq!(
            c.turn_listen,
            TurnListen::Addr("127.0.0.2:5349".parse().expect("a"))
        );
        let err = Config::from_toml("turn_listen = \"sometimes\"").expect_err("bad");
        assert!(err.contains("turn_listen"), "{err}");
    }

    #[test]
    fn turn_wildcard_without_relay_ip_is_named() {
        let c = Config::from_toml("turn_listen = \"0.0.0.0:3478\"").expect("parses");
        let err = c.validate().expect_err("needs turn_relay_ip");
        assert!(err.to_string().starts_with("turn_relay_ip:"), "{err}");
        let c = Config::from_toml("turn_listen = \"0.0.0.0:3478\"\nturn_relay_ip = \"192.0.2.1\"")
            .expect("parses");
        c.validate().expect("valid");
    }

    #[test]
    fn turn_allow_peer_and_urls_are_checked() {
        let c =
            Config::from_toml("turn_allow_peer = [\"127.0.0.0/8\", \"fd00::/8\"]").expect("parses");
        assert_eq!(c.turn_allow_peer.len(), 2);
        let err = Config::from_toml("turn_allow_peer = [\"127.0.0.0/99\"]").expect_err("bad");
        assert!(err.contains("turn_allow_peer"), "{err}");
        let c = Config::from_toml("turn_urls = [\"http://x\"]").expect("parses");
        let err = c.validate().expect_err("bad url");
        assert!(err.to_string().starts_with("turn_urls:"), "{err}");
        let c = Config::from_toml(
            "turn_listen = \"off\"\nturn_urls = [\"turn:turn.example.org:3478?transport=udp\"]",
        )
        .expect("parses");
        c.validate().expect("external TURN");
        assert!(c.turn_enabled());
    }

    #[test]
    fn turn_on_the_http_port_is_refused() {
        let c = Config::from_toml("turn_listen = \"127.0.0.1:8080\"").expect("parses");
        let err = c.validate().expect_err("clash");
        assert!(err.to_string().starts_with("turn_listen:"), "{err}");
    }

    #[test]
    fn turn_over_tls_needs_the_relay_and_a_certificate() {
        let key = |toml: &str| {
            Config::from_toml(toml)
                .expect("parses")
                .validate()
                .expect_err("invalid")
                .to_string()
        };
        // No certificate on the loopback default.
        let err = key("turn_tls_listen = \"127.0.0.1:5349\"");
        assert!(err.starts_with("turn_tls_listen:"), "{err}");
        assert!(err.contains("certificate"), "{err}");
        let err = key(
            "turn_tls_listen = \"127.0.0.1:5349\"\nturn_listen = \"off\"\nacme_domains = [\"a.example.org\"]",
        );
        assert!(err.starts_with("turn_tls_listen:"), "{err}");
        let err = key("turn_tls_listen = \"127.0.0.1:3478\"\nacme_domains = [\"a.example.org\"]");
        assert!(err.contains("already another listener"), "{err}");
        let err = key("turn_tls_name = \"not a name\"");
        assert!(err.starts_with("turn_tls_name:"), "{err}");
        // With certificate files (no ACME domain to take it from), the
        // name must be given.
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, pem_key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&cert, "x").expect("write");
        std::fs::write(&pem_key, "x").expect("write");
        let files = format!(
            "turn_tls_listen = \"127.0.0.1:5349\"\ntls_cert = {:?}\ntls_key = {:?}",
            cert.display().to_string(),
            pem_key.display().to_string()
        );
        let err = key(&files);
        assert!(err.starts_with("turn_tls_name:"), "{err}");
        let named = Config::from_toml(&format!(
            "{files}\nturn_tls_name = \"video.clinic.example\""
        ))
        .expect("parses");
        named.validate().expect("valid with a name");

        let c = Config::from_toml(
            "turn_tls_listen = \"127.0.0.1:5349\"\nacme_domains = [\"a.example.org\"]",
        )
        .expect("parses");
        c.validate().expect("valid");
        let relay: IpAddr = "192.0.2.1".parse().expect("ip");
        assert_eq!(c.turn_tls_name(relay), "a.example.org");
        assert_eq!(Config::default().turn_tls_name(relay), "192.0.2.1");
    }

    #[test]
    fn turn_relay_ports_are_a_range_apart_from_the_relay_port() {
        let c = Config::from_toml("turn_relay_ports = \"49160-49200\"").expect("parses");
        assert_eq!(
            c.turn_relay_ports,
            Some(PortRange {
                first: 49160,
                last: 49200
            })
        );
        c.validate().expect("valid");
        for bad in ["49200-49160", "0-10", "49160", "a-b", "1-70000"] {
            let err =
                Config::from_toml(&format!("turn_relay_ports = \"{bad}\"")).expect_err("bad range");
            assert!(err.contains("turn_relay_ports"), "{bad}: {err}");
        }
        let c = Config::from_toml("turn_relay_ports = \"3000-4000\"").expect("parses");
        let err = c.validate().expect_err("includes 3478").to_string();
        assert!(err.starts_with("turn_relay_ports:"), "{err}");
    }

    #[test]
    fn ttl_out_of_range_is_named() {
        let c = Config {
            consultation_ttl_secs: 90_000,
            ..Config::default()
        };
        let err = c.validate().expect_err("too long");
        assert!(
            err.to_string().starts_with("consultation_ttl_secs:"),
            "{err}"
        );
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    /// The documented example must stay valid and equal to the defaults.
    #[test]
    fn example_config_is_valid_and_matches_defaults() {
        let text = include_str!("../examples/node.toml");
        let c = Config::from_toml(text).expect("examples/node.toml parses");
        c.validate().expect("examples/node.toml validates");
        assert_eq!(c, Config::default());
    }
}
