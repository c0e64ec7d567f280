//! Shared test harness: a real node on 127.0.0.1 with a fresh data directory.
#![allow(dead_code, clippy::unwrap_used)]

pub mod browser;
pub mod netns;
pub mod process;
pub mod pulse;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use telenode::client::{AgentEvent, ApiClient, CallOptions, EndCause, PatientLink, Seat, Trust};
use telenode::config::{Config, TurnListen};
use telenode::peer::{AudioOutput, AudioSource, VideoSource};
use telenode::server::Running;
use telenode::store::{SqliteStore, Store};
use telenode_signaling::seal::LinkKey;
use tokio::sync::mpsc;

pub const PASSWORD: &str = "correct horse battery staple";

/// A node running in this test process.
pub struct Node {
    pub dir: tempfile::TempDir,
    pub store: Arc<SqliteStore>,
    pub running: Option<Running>,
    pub base: String,
    /// TOTP secrets (base32) of the accounts `add_doctor` made.
    pub totp: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

impl Node {
    pub async fn start() -> Node {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir).await
    }

    pub async fn start_in(dir: tempfile::TempDir) -> Node {
        Self::start_with(dir, |_| {}).await
    }

    /// A node whose TURN relay may relay to loopback peers (tests that
    /// need relaying on 127.0.0.1 only).
    pub async fn start_relaying() -> Node {
        let dir = tempfile::tempdir().unwrap();
        Self::start_with(dir, |c| {
            c.turn_allow_peer = vec!["127.0.0.0/8".parse().unwrap()];
        })
        .await
    }

    /// A node on ephemeral loopback ports (HTTP, operations, TURN), with
    /// the TURN policy's defaults unless `adjust` changes them.
    pub async fn start_with(dir: tempfile::TempDir, adjust: impl FnOnce(&mut Config)) -> Node {
        let mut config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            admin_listen: "127.0.0.1:0".parse().unwrap(),
            turn_listen: TurnListen::Addr("127.0.0.1:0".parse().unwrap()),
            data_dir: dir.path().join("data"),
            ..Config::default()
        };
        adjust(&mut config);
        let store = Arc::new(SqliteStore::open(&config.data_dir, &config.key_file()).unwrap());
        let running = telenode::server::start(config, store.clone() as Arc<dyn Store>)
            .await
            .unwrap();
        let base = format!("http://{}", running.addr);
        Node {
            dir,
            store,
            running: Some(running),
            base,
            totp: Default::default(),
        }
    }

    /// Adds an account with [`PASSWORD`] and a TOTP second factor; returns
    /// the TOTP secret (base32, as in the otpauth URI).
    pub fn add_doctor(&self, login: &str, name: &str) -> String {
        let hash = telenode::auth::new_password_hash(PASSWORD).unwrap();
        let id = self.store.add_doctor(login, name, &hash, 0).unwrap();
        let secret = telenode::auth::new_totp_secret().to_vec();
        let factor = telenode::store::SecondFactor {
            totp_secret: secret.clone(),
            totp_last_step: 0,
            recovery_hashes: Vec::new(),
        };
        self.store.set_credentials(id, None, &factor, 0).unwrap();
        let b32 = telenode::totp::base32_encode(&secret);
        self.totp
            .lock()
            .unwrap()
            .insert(login.to_owned(), b32.clone());
        b32
    }

    /// Signs in an account made by [`Node::add_doctor`].
    pub async fn login(&self, login: &str) -> ApiClient {
        let secret = self.totp.lock().unwrap()[login].clone();
        login_with_secret(&self.base, login, &secret).await
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.running.as_ref().unwrap().addr)
    }

    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(r) = self.running.take() {
            r.shutdown(Duration::from_secs(5)).await;
        }
        self.dir
    }
}

/// Options for a native participant on loopback with small synthetic media.
pub fn call_options(ws_url: String, seat: Seat, link_key: LinkKey) -> CallOptions {
    CallOptions {
        ws_url,
        seat,
        link_key,
        auto_admit: false,
        call_duration: None,
        setup_timeout: Duration::from_secs(20),
        bind_ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        video: VideoSource::Synthetic {
            width: 320,
            height: 240,
            fps: 30,
        },
        audio: AudioSource::Tone { hz: 440.0 },
        audio_output: AudioOutput::None,
        force_relay: false,
        media_tap: None,
        trust: Trust::default(),
    }
}

/// Options for a patient joining with `token`, under `name` if given.
pub fn patient_options(
    ws_url: String,
    token: String,
    name: Option<&str>,
    key: LinkKey,
) -> CallOptions {
    call_options(
        ws_url,
        Seat::Patient {
            token,
            name: name.map(str::to_owned),
        },
        key,
    )
}

/// Options for the doctor's seat of `link`, logged in as `api`.
pub fn doctor_options(api: &ApiClient, link: &PatientLink) -> CallOptions {
    call_options(
        api.ws_url(),
        Seat::Doctor {
            consultation: link.consultation.id.clone(),
            session: api.session_handle(),
        },
        link.link_key.clone(),
    )
}

/// Polls `check` every 100 ms until it holds; `false` after `within`.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// The TOTP code of `secret_b32` (base32) for `ahead_secs` from now.
pub fn totp_code(secret_b32: &str, ahead_secs: u64) -> String {
    let key = telenode::totp::base32_decode(secret_b32).expect("base32");
    telenode::totp::code_at(&key, now_secs() + ahead_secs)
}

/// POST /api/v1/login; status and body.
pub async fn raw_login(base: &str, login: &str, password: &str, code: &str) -> (u16, String) {
    let res = reqwest::Client::new()
        .post(format!("{base}/api/v1/login"))
        .json(&serde_json::json!({"login": login, "password": password, "code": code}))
        .send()
        .await
        .expect("request");
    (res.status().as_u16(), res.text().await.expect("body"))
}

/// Signs in with [`PASSWORD`] and a code from `secret`. A code is good
/// once: a second sign-in within the same 30-second step uses the next
/// step's code (accepted as clock skew).
pub async fn login_with_secret(base: &str, login: &str, secret: &str) -> ApiClient {
    let key = telenode::totp::base32_decode(secret).unwrap();
    let now = now_secs();
    let mut last = None;
    for ahead in [0, telenode::totp::STEP_SECS] {
        let code = telenode::totp::code_at(&key, now + ahead);
        match ApiClient::login(&Trust::default(), base, login, PASSWORD, &code).await {
            Ok(api) => return api,
            Err(e) => last = Some(e),
        }
    }
    panic!("login {login}: {:#}", last.unwrap());
}

/// Waits for the first event matching `f`, failing after `within`.
pub async fn wait_for<T>(
    events: &mut mpsc::UnboundedReceiver<AgentEvent>,
    within: Duration,
    mut f: impl FnMut(&AgentEvent) -> Option<T>,
) -> Result<T, String> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(ev)) => {
                if let Some(v) = f(&ev) {
                    return Ok(v);
                }
                if let AgentEvent::Ended(cause) = ev {
                    return Err(format!("ended early: {cause:?}"));
                }
            }
            Ok(None) => return Err("agent gone".into()),
            Err(_) => return Err("timed out".into()),
        }
    }
}

/// The selected pair and SAS of an agent's media connection:
/// (local candidate type, remote candidate type, sas).
pub async fn wait_connected(
    events: &mut mpsc::UnboundedReceiver<AgentEvent>,
    within: Duration,
) -> Result<(String, String, String), String> {
    wait_for(events, within, |e| match e {
        AgentEvent::Connected {
            local_candidate,
            remote_candidate,
            sas,
        } => Some((
            local_candidate.clone(),
            remote_candidate.clone(),
            sas.clone(),
        )),
        _ => None,
    })
    .await
}

/// The name a patient knocked with.
pub async fn wait_knock(
    events: &mut mpsc::UnboundedReceiver<AgentEvent>,
    within: Duration,
) -> Result<Option<String>, String> {
    wait_for(events, within, |e| match e {
        AgentEvent::Knock { name } => Some(name.clone()),
        _ => None,
    })
    .await
}

/// Waits for the agent's end and returns its cause.
pub async fn wait_end(
    events: &mut mpsc::UnboundedReceiver<AgentEvent>,
    within: Duration,
) -> Option<EndCause> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(AgentEvent::Ended(c))) => return Some(c),
            Ok(Some(_)) => {}
            _ => return None,
        }
    }
}

/// The Prometheus text at `url` (an operations listener's /metrics).
pub async fn metrics_at(url: &str) -> String {
    reqwest::get(url)
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body")
}

/// One series' value in Prometheus text.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
}

impl Node {
    /// This node's /metrics.
    pub async fn metrics(&self) -> String {
        let admin = self.running.as_ref().expect("running").admin_addr;
        metrics_at(&format!("http://{admin}/metrics")).await
    }
}
