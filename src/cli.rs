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
    Serve(ServeArgs),
    /// The doctor's client.
    Doctor(DoctorArgs),
    /// Administer accounts in the data directory (works while the node runs).
    Admin(AdminArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML configuration file (see examples/node.toml).
    #[arg(long, env = "TELENODE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:8080.
    #[arg(long, env = "TELENODE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory for the metadata database.
    #[arg(long, env = "TELENODE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// PEM certificate chain (required off loopback).
    #[arg(long, env = "TELENODE_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key.
    #[arg(long, env = "TELENODE_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Validate the configuration, print what would be served, and exit.
    #[arg(long)]
    pub check_config: bool,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Run without a window, printing one JSON event per line (automation).
    #[arg(long)]
    pub headless: bool,
    /// The node's base URL, e.g. `https://telenode.example.org`.
    #[arg(long, env = "TELENODE_NODE")]
    pub node: String,
    /// The doctor's login.
    #[arg(long, env = "TELENODE_LOGIN")]
    pub login: String,
    /// File holding the password (otherwise TELENODE_PASSWORD).
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    /// Bind the media sockets to this address only (e.g. 127.0.0.1).
    #[arg(long)]
    pub bind_ip: Option<IpAddr>,
    /// Synthetic camera size and rate, WIDTHxHEIGHT@FPS.
    #[arg(long, default_value = "640x480@30")]
    pub video: String,
    #[command(subcommand)]
    pub action: DoctorAction,
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
}

#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Data directory of the node.
    #[arg(long, env = "TELENODE_DATA_DIR", default_value = "telenode-data")]
    pub data_dir: PathBuf,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Doctor accounts.
    #[command(subcommand)]
    Doctor(DoctorAdmin),
}

#[derive(Debug, Subcommand)]
pub enum DoctorAdmin {
    /// Create an account.
    Add {
        #[arg(long)]
        login: String,
        #[arg(long)]
        display_name: String,
        /// Read the password from standard input (one line).
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
}
