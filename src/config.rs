//! Node configuration: one `Config`, layered defaults → TOML file → `TELENODE_*`
//! environment → command-line flags, validated once at start-up.
//!
//! The environment and the flags arrive together through clap (a flag wins over
//! its `TELENODE_*` variable); [`Config::load`] lays them over the TOML file,
//! which lies over the defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Longest lifetime a consultation link may be given: 24 hours.
pub const MAX_CONSULTATION_TTL: Duration = Duration::from_secs(24 * 3600);

/// Everything `telenode serve` needs to run.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address and port the HTTPS / WebSocket listener binds.
    pub listen: SocketAddr,
    /// Directory holding the metadata database.
    pub data_dir: PathBuf,
    /// PEM certificate chain; required unless `listen` is a loopback address.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key matching `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Default lifetime of a new consultation link, in seconds (max 86400).
    pub consultation_ttl_secs: u64,
    /// A signalling connection that sends nothing for this long is closed.
    pub idle_timeout_secs: u64,
    /// How long a doctor's login session lasts, in seconds.
    pub session_ttl_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("telenode-data"),
            tls_cert: None,
            tls_key: None,
            consultation_ttl_secs: 4 * 3600,
            idle_timeout_secs: 60,
            session_ttl_secs: 12 * 3600,
        }
    }
}

/// Values given on the command line or through `TELENODE_*` variables; each
/// one that is set overrides the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
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
        if let Some(v) = &o.data_dir {
            self.data_dir = v.clone();
        }
        if let Some(v) = &o.tls_cert {
            self.tls_cert = Some(v.clone());
        }
        if let Some(v) = &o.tls_key {
            self.tls_key = Some(v.clone());
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
            (None, None) if !self.listen.ip().is_loopback() => {
                return invalid(
                    "listen",
                    format!(
                        "{} is not a loopback address: plain HTTP is only allowed on loopback; \
                         set tls_cert and tls_key",
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
        if !(60..=7 * 24 * 3600).contains(&self.session_ttl_secs) {
            return invalid(
                "session_ttl_secs",
                format!("{} is out of range 60..=604800", self.session_ttl_secs),
            );
        }
        Ok(())
    }

    /// Whether the listener speaks TLS.
    pub fn tls(&self) -> bool {
        self.tls_cert.is_some()
    }
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
