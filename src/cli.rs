//! Command-line interface: `telenode serve | doctor | admin`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// telenode: peer-to-peer, end-to-end encrypted video consultations.
#[derive(Debug, Parser)]
#[command(name = "telenode", version, about)]
pub struct Cli {
    /// Log format on standard error.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "TELENODE_LOG_FORMAT")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the node: doctor API, signalling, patient page.
    Serve(Box<ServeArgs>),
    /// The doctor's client.
    Doctor(DoctorArgs),
    /// Administer accounts in the data directory (works while the node runs).
    Admin(AdminArgs),
    /// Exit 0 when the node's readiness endpoint answers 200 (for container
    /// health checks).
    Healthcheck {
        /// Readiness URL of the operations listener.
        #[arg(long, default_value = "http://127.0.0.1:9090/readyz")]
        url: String,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML configuration file (see examples/node.toml).
    #[arg(long, env = "TELENODE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:8080.
    #[arg(long, env = "TELENODE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Address of the operations listener (/healthz, /readyz, /metrics).
    #[arg(long, env = "TELENODE_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,
    /// Directory for the metadata database.
    #[arg(long, env = "TELENODE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// PEM certificate chain (required off loopback).
    #[arg(long, env = "TELENODE_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key.
    #[arg(long, env = "TELENODE_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Domain name to obtain a certificate for over ACME, TLS-ALPN-01 on the
    /// listen port (repeatable; comma-separated in the environment).
    #[arg(long, env = "TELENODE_ACME_DOMAINS", value_delimiter = ',')]
    pub acme_domain: Vec<String>,
    /// ACME directory URL (default: Let's Encrypt).
    #[arg(long, env = "TELENODE_ACME_DIRECTORY")]
    pub acme_directory: Option<String>,
    /// Contact for the ACME account, e.g. mailto:it@clinic.example
    /// (repeatable; comma-separated in the environment).
    #[arg(long, env = "TELENODE_ACME_CONTACT", value_delimiter = ',')]
    pub acme_contact: Vec<String>,
    /// PEM root certificate of a private ACME CA to trust for the directory.
    #[arg(long, env = "TELENODE_ACME_CA_FILE")]
    pub acme_ca_file: Option<PathBuf>,
    /// Master key file of the store (default: master.key in the data directory).
    #[arg(long, env = "TELENODE_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// Embedded TURN relay (UDP and TCP on one port): ADDR, `auto` (the
    /// listen IP, port 3478) or `off`.
    #[arg(long, env = "TELENODE_TURN_LISTEN")]
    pub turn_listen: Option<crate::config::TurnListen>,
    /// IP the relay's sockets bind to and advertise (required when
    /// --turn-listen is a wildcard address).
    #[arg(long, env = "TELENODE_TURN_RELAY_IP")]
    pub turn_relay_ip: Option<IpAddr>,
    /// TURN over TLS (`turns:`) on this address too, with the node's
    /// certificate (e.g. 0.0.0.0:5349).
    #[arg(long, env = "TELENODE_TURN_TLS_LISTEN")]
    pub turn_tls_listen: Option<SocketAddr>,
    /// UDP ports for relayed media, FIRST-LAST (default: any free port).
    #[arg(long, env = "TELENODE_TURN_RELAY_PORTS")]
    pub turn_relay_ports: Option<crate::config::PortRange>,
    /// Host name in the `turns:` URLs (must match the certificate; default
    /// the first ACME domain, else the relay address).
    #[arg(long, env = "TELENODE_TURN_TLS_NAME")]
    pub turn_tls_name: Option<String>,
    /// TURN REST secret file (created with mode 0600 if absent; default:
    /// turn.secret in the data directory).
    #[arg(long, env = "TELENODE_TURN_SECRET_FILE")]
    pub turn_secret_file: Option<PathBuf>,
    /// Peer range the relay may reach despite its deny-by-default policy
    /// (repeatable; comma-separated in the environment).
    #[arg(long, env = "TELENODE_TURN_ALLOW_PEER", value_delimiter = ',')]
    pub turn_allow_peer: Vec<telenode_turn::Cidr>,
    /// STUN/TURN URL given to the peers instead of the embedded relay's
    /// (repeatable; comma-separated in the environment).
    #[arg(long, env = "TELENODE_TURN_URLS", value_delimiter = ',')]
    pub turn_url: Vec<String>,
    /// Validate the configuration, print what would be served, and exit.
    #[arg(long)]
    pub check_config: bool,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Run without a window, printing one JSON event per line (automation).
    #[arg(long)]
    pub headless: bool,
    /// The node's base URL, e.g. `https://telenode.example.org` (required
    /// with --headless; the window remembers the last one).
    #[arg(long, env = "TELENODE_NODE")]
    pub node: Option<String>,
    /// The doctor's login (required with --headless).
    #[arg(long, env = "TELENODE_LOGIN")]
    pub login: Option<String>,
    /// File holding the password (otherwise TELENODE_PASSWORD).
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    /// Bind the media sockets to this address only (e.g. 127.0.0.1).
    #[arg(long)]
    pub bind_ip: Option<IpAddr>,
    /// Video size and rate, WIDTHxHEIGHT@FPS: of the camera, or of the
    /// test pattern sent without one.
    #[arg(long, default_value = "640x480@30")]
    pub video: String,
    /// Camera: a path from `telenode doctor devices` (e.g. /dev/video0),
    /// `default` (the first camera), `none` (send no video) or `pattern`
    /// (the moving test pattern). Without it the window uses the saved
    /// choice (at first the first camera) and --headless the pattern.
    #[arg(long, env = "TELENODE_CAMERA")]
    pub camera: Option<String>,
    /// Microphone: an id or name from `telenode doctor devices`, `default`,
    /// `none` (send no audio) or `tone` (a 440 Hz test tone). Without it
    /// the window uses the saved choice (at first the system's default)
    /// and --headless the tone.
    #[arg(long, env = "TELENODE_MICROPHONE")]
    pub microphone: Option<String>,
    /// Speaker: an id or name from `telenode doctor devices`, `default` or
    /// `none` (decode without playing). Without it the window uses the
    /// saved choice (at first the system's default) and --headless plays
    /// nothing.
    #[arg(long, env = "TELENODE_SPEAKER")]
    pub speaker: Option<String>,
    /// Use relay candidates only (all media through the node's TURN relay).
    #[arg(long)]
    pub force_relay: bool,
    /// Also trust the CA certificates in this PEM file, for a node whose
    /// certificate comes from the clinic's own CA.
    #[arg(long, env = "TELENODE_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// What to do (with --headless; the window ignores it).
    #[command(subcommand)]
    pub action: Option<DoctorAction>,
}

impl DoctorArgs {
    /// The video `--camera` and `--video` ask for; `saved` (the window's
    /// setting) when `--camera` is absent, else the test pattern.
    pub fn video_source(&self, saved: Option<&str>) -> anyhow::Result<crate::peer::VideoSource> {
        use anyhow::Context;
        let (width, height, fps) =
            parse_video(&self.video).context("--video must look like 640x480@30")?;
        let choice = self.camera.as_deref().or(saved).unwrap_or("pattern");
        Ok(DeviceChoice::parse(choice).video(width, height, fps))
    }

    /// The audio `--microphone` asks for; `saved` when it is absent, else
    /// the test tone.
    pub fn audio_source(&self, saved: Option<&str>) -> crate::peer::AudioSource {
        DeviceChoice::parse(self.microphone.as_deref().or(saved).unwrap_or("tone")).audio()
    }

    /// Where `--speaker` plays; `saved` when it is absent, else nowhere.
    pub fn audio_output(&self, saved: Option<&str>) -> crate::peer::AudioOutput {
        DeviceChoice::parse(self.speaker.as_deref().or(saved).unwrap_or("none")).output()
    }

    /// The certificates to trust: the public web PKI, plus `--ca-file`.
    pub fn trust(&self) -> anyhow::Result<crate::client::Trust> {
        use anyhow::Context;
        match &self.ca_file {
            Some(path) => crate::client::Trust::with_ca_file(path).context("--ca-file"),
            None => Ok(crate::client::Trust::default()),
        }
    }
}

/// A device as `--camera`, `--microphone` and `--speaker` (and the
/// window's settings) name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceChoice {
    /// The system's default (the first camera).
    Default,
    /// None: send nothing, play nothing.
    None,
    /// The test pattern or tone.
    Test,
    /// This device (id, name or path).
    Named(String),
}

impl DeviceChoice {
    /// `default` or empty, `none`, `pattern`/`tone`, or a device.
    pub fn parse(text: &str) -> DeviceChoice {
        match text.trim() {
            "" | "default" => DeviceChoice::Default,
            "none" => DeviceChoice::None,
            "pattern" | "tone" => DeviceChoice::Test,
            other => DeviceChoice::Named(other.to_owned()),
        }
    }

    /// As a camera: the pattern for `Test`, a camera at this size otherwise.
    pub fn video(self, width: u32, height: u32, fps: u32) -> crate::peer::VideoSource {
        use crate::peer::VideoSource;
        let camera = |device| VideoSource::Camera {
            device,
            width,
            height,
            fps,
        };
        match self {
            DeviceChoice::Test => VideoSource::Synthetic { width, height, fps },
            DeviceChoice::None => VideoSource::None,
            DeviceChoice::Default => camera(None),
            DeviceChoice::Named(device) => camera(Some(device)),
        }
    }

    /// As a microphone: the 440 Hz tone for `Test`.
    pub fn audio(self) -> crate::peer::AudioSource {
        use crate::peer::AudioSource;
        match self {
            DeviceChoice::Test => AudioSource::Tone { hz: 440.0 },
            DeviceChoice::None => AudioSource::None,
            DeviceChoice::Default => AudioSource::Microphone { device: None },
            DeviceChoice::Named(device) => AudioSource::Microphone {
                device: Some(device),
            },
        }
    }

    /// As a speaker: nothing is played for `Test` and `None`.
    pub fn output(self) -> crate::peer::AudioOutput {
        use crate::peer::AudioOutput;
        match self {
            DeviceChoice::Test | DeviceChoice::None => AudioOutput::None,
            DeviceChoice::Default => AudioOutput::Speaker { device: None },
            DeviceChoice::Named(device) => AudioOutput::Speaker {
                device: Some(device),
            },
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum DoctorAction {
    /// Create a consultation, print its patient link and run the call.
    NewConsultation {
        /// Admit the first patient who arrives (otherwise type `admit`).
        #[arg(long)]
        auto_admit: bool,
        /// Hang up this many seconds after the media connected.
        #[arg(long)]
        duration: Option<u64>,
        /// Lifetime of the link in seconds.
        #[arg(long)]
        ttl: Option<u64>,
    },
    /// List this doctor's consultations as JSON lines.
    List,
    /// List the cameras, microphones and speakers as JSON lines (no node
    /// needed).
    Devices,
}

#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Data directory of the node.
    #[arg(long, env = "TELENODE_DATA_DIR", default_value = "telenode-data")]
    pub data_dir: PathBuf,
    /// Master key file of the store (default: master.key in the data directory).
    #[arg(long, env = "TELENODE_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Doctor accounts.
    #[command(subcommand)]
    Doctor(DoctorAdmin),
    /// The store's master key.
    #[command(subcommand)]
    Keys(KeysAdmin),
    /// Delete what is past retention now (the node also does this hourly).
    Purge {
        /// Days to keep consultations and audit entries after they close (1..=90).
        #[arg(long, env = "TELENODE_RETENTION_DAYS", default_value_t = 14)]
        retention_days: u32,
    },
    /// Write a consistent, still-encrypted copy of the database to PATH
    /// (without the master key).
    Backup {
        /// Where to write the copy; must not exist.
        path: PathBuf,
    },
    /// The audit log of security events.
    #[command(subcommand)]
    Audit(AuditAdmin),
}

#[derive(Debug, Subcommand)]
pub enum KeysAdmin {
    /// Make a new master key and re-wrap the data key under it (no downtime;
    /// the old key no longer opens the database).
    Rotate,
}

#[derive(Debug, Subcommand)]
pub enum AuditAdmin {
    /// Check that no entry was deleted or altered.
    Verify,
}

#[derive(Debug, Subcommand)]
pub enum DoctorAdmin {
    /// Create an account and enrol its second factor: prints the otpauth
    /// URI (and a QR code on a terminal) for the doctor's authenticator app,
    /// and one-time recovery codes.
    Add {
        #[arg(long)]
        login: String,
        #[arg(long)]
        display_name: String,
        /// Read the password from standard input (one line); without it,
        /// the password is asked for on the terminal.
        #[arg(long)]
        password_stdin: bool,
    },
    /// New password and new second factor (lost phone, forgotten password):
    /// prints the new otpauth URI and recovery codes; ends every session.
    Reset {
        #[arg(long)]
        login: String,
        /// Read the new password from standard input (one line).
        #[arg(long)]
        password_stdin: bool,
    },
    /// List accounts.
    List,
    /// Disable an account and end its sessions.
    Disable {
        #[arg(long)]
        login: String,
    },
    /// Re-enable an account.
    Enable {
        #[arg(long)]
        login: String,
    },
}

/// Parses `640x480@30`.
pub fn parse_video(s: &str) -> Option<(u32, u32, u32)> {
    let (size, fps) = s.split_once('@')?;
    let (w, h) = size.split_once('x')?;
    let (w, h, fps) = (w.parse().ok()?, h.parse().ok()?, fps.parse().ok()?);
    ((16..=1920).contains(&w) && (16..=1080).contains(&h) && (1..=60).contains(&fps))
        .then_some((w, h, fps))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn video_spec() {
        assert_eq!(parse_video("640x480@30"), Some((640, 480, 30)));
        assert_eq!(parse_video("640x480"), None);
        assert_eq!(parse_video("0x480@30"), None);
    }

    #[test]
    fn operator_contract_parses() {
        let c = Cli::try_parse_from([
            "telenode",
            "admin",
            "--data-dir",
            "d",
            "doctor",
            "add",
            "--login",
            "a",
            "--display-name",
            "Dr A",
            "--password-stdin",
        ])
        .expect("parses");
        assert!(matches!(c.command, Command::Admin(_)));
        let c = Cli::try_parse_from([
            "telenode",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            "d",
        ])
        .expect("parses");
        assert!(matches!(c.command, Command::Serve(_)));
    }

    #[test]
    fn turn_flags_parse() {
        let c = Cli::try_parse_from([
            "telenode",
            "serve",
            "--turn-listen",
            "127.0.0.1:0",
            "--turn-secret-file",
            "/run/secrets/turn",
            "--turn-allow-peer",
            "127.0.0.0/8",
            "--turn-allow-peer",
            "10.1.0.0/16",
        ])
        .expect("parses");
        let Command::Serve(a) = c.command else {
            panic!("serve")
        };
        assert_eq!(a.turn_allow_peer.len(), 2);
        assert!(a.turn_listen.is_some());
        assert!(Cli::try_parse_from(["telenode", "serve", "--turn-listen", "off"]).is_ok());
        assert!(Cli::try_parse_from(["telenode", "serve", "--turn-allow-peer", "x/99"]).is_err());
    }

    #[test]
    fn store_admin_commands_parse() {
        for args in [
            &["telenode", "admin", "keys", "rotate"][..],
            &["telenode", "admin", "purge", "--retention-days", "30"],
            &["telenode", "admin", "backup", "/tmp/x.db"],
            &[
                "telenode",
                "admin",
                "--master-key-file",
                "k",
                "audit",
                "verify",
            ],
        ] {
            Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        }
    }
}
