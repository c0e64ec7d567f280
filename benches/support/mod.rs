//! What the call benches share: a node on loopback with one doctor account.

use std::sync::Arc;

use telenode::config::Config;
use telenode::server::Running;
use telenode::store::{SqliteStore, Store};

/// The bench doctor's login and password.
pub const LOGIN: &str = "bench";
pub const PASSWORD: &str = "bench password 123";

/// A running node and what it takes to sign in.
pub struct BenchNode {
    pub running: Running,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The doctor's TOTP secret, base32.
    pub totp: String,
    _dir: tempfile::TempDir,
}

impl BenchNode {
    /// Starts `telenode serve` in-process on ephemeral loopback ports, with
    /// the relay allowed to reach loopback peers, and adds the doctor.
    pub async fn start() -> anyhow::Result<BenchNode> {
        let dir = tempfile::tempdir()?;
        let config = Config {
            listen: "127.0.0.1:0".parse()?,
            admin_listen: "127.0.0.1:0".parse()?,
            data_dir: dir.path().join("data"),
            // The peers live on loopback, which the relay refuses by default.
            turn_allow_peer: vec!["127.0.0.0/8".parse()?],
            ..Config::default()
        };
        let store = Arc::new(SqliteStore::open(&config.data_dir, &config.key_file())?);
        let hash = telenode::auth::new_password_hash(PASSWORD)?;
        let id = store.add_doctor(LOGIN, "Dr. Bench", &hash, 0)?;
        let secret = telenode::auth::new_totp_secret();
        let factor = telenode::store::SecondFactor {
            totp_secret: secret.to_vec(),
            totp_last_step: 0,
            recovery_hashes: Vec::new(),
        };
        store.set_credentials(id, None, &factor, 0)?;
        let running = telenode::server::start(config, store as Arc<dyn Store>).await?;
        let base = format!("http://{}", running.addr);
        Ok(BenchNode {
            running,
            base,
            totp: telenode::totp::base32_encode(&secret),
            _dir: dir,
        })
    }
}
