//! Crash safety: the real `telenode serve` is killed with SIGKILL at random
//! moments while doctors create and end consultations through its API; after
//! every kill the database must open cleanly, pass SQLite's integrity check
//! and the audit chain, and hold every write the node had acknowledged.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::{Rng, SeedableRng};
use telenode::store::{SqliteStore, Store, keyfile};
use telenode_signaling::msg::State;

const BIN: &str = env!("CARGO_BIN_EXE_telenode");
const ROUNDS: usize = 50;
const PASSWORD: &str = "crash test password";

/// Starts the node and returns it with its base URL.
fn start(data: &Path) -> (Child, String) {
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(data)
        .env("RUST_LOG", "info")
        .env_remove("TELENODE_MASTER_KEY_FILE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.split("listening on http://").nth(1)
                && let Some(tx) = tx.take()
            {
                let addr: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                    .collect();
                let _ = tx.send(format!("http://{addr}"));
            }
        }
    });
    let base = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the node starts");
    (child, base)
}

#[derive(Default)]
struct Acked {
    created: Vec<(String, [u8; 32])>,
    ended: Vec<String>,
}

async fn writer(http: reqwest::Client, base: String, session: String, acked: Arc<Mutex<Acked>>) {
    let mut n = 0u32;
    loop {
        let token: [u8; 32] = rand::random();
        let hash = telenode_signaling::creds::token_hash(&token);
        let res = http
            .post(format!("{base}/api/v1/consultations"))
            .bearer_auth(&session)
            .json(&serde_json::json!({"token_hash": URL_SAFE_NO_PAD.encode(hash)}))
            .send()
            .await;
        let Ok(res) = res else { return };
        if res.status() != reqwest::StatusCode::CREATED {
            return;
        }
        let Ok(body) = res.json::<serde_json::Value>().await else {
            return;
        };
        let id = body["id"].as_str().unwrap().to_owned();
        acked.lock().unwrap().created.push((id.clone(), hash));
        n += 1;
        if n.is_multiple_of(3) {
            let res = http
                .post(format!("{base}/api/v1/consultations/{id}/end"))
                .bearer_auth(&session)
                .send()
                .await;
            match res {
                Ok(r) if r.status().is_success() => acked.lock().unwrap().ended.push(id),
                _ => return,
            }
        }
    }
}

const TOTP_SECRET: &[u8] = b"store-crash-totp-key";

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_no_acknowledged_write() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key_file = keyfile::default_key_file(&data);
    {
        let s = SqliteStore::open(&data, &key_file).unwrap();
        let hash = telenode::auth::new_password_hash(PASSWORD).unwrap();
        let id = s.add_doctor("dr-crash", "Dr. Crash", &hash, 0).unwrap();
        let factor = telenode::store::SecondFactor {
            totp_secret: TOTP_SECRET.to_vec(),
            totp_last_step: 0,
            recovery_hashes: Vec::new(),
        };
        s.set_credentials(id, None, &factor, 0).unwrap();
    }
    let seed: u64 = rand::random();
    eprintln!("seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let http = reqwest::Client::new();
    let acked = Arc::new(Mutex::new(Acked::default()));
    let mut session: Option<String> = None;

    for round in 0..ROUNDS {
        let (mut child, base) = start(&data);
        // One login for the whole test: the session itself must survive kills.
        let session = match &session {
            Some(s) => s.clone(),
            None => {
                let res: serde_json::Value = http
                    .post(format!("{base}/api/v1/login"))
                    .json(&serde_json::json!({
                        "login": "dr-crash",
                        "password": PASSWORD,
                        "code": telenode::totp::code_at(TOTP_SECRET, now_secs()),
                    }))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let s = res["session"].as_str().unwrap().to_owned();
                session = Some(s.clone());
                s
            }
        };
        let tasks: Vec<_> = (0..2)
            .map(|_| {
                tokio::spawn(writer(
                    http.clone(),
                    base.clone(),
                    session.clone(),
                    acked.clone(),
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(rng.random_range(20..300))).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        for t in tasks {
            t.await.unwrap();
        }

        // After the crash: opens, is consistent, has everything acknowledged.
        let s = SqliteStore::open(&data, &key_file).unwrap();
        let db = rusqlite::Connection::open(telenode::store::db_path(&data)).unwrap();
        let check: String = db
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok", "round {round}");
        drop(db);
        let acked = acked.lock().unwrap();
        for (id, hash) in &acked.created {
            let c = s.consultation_by_token(hash).unwrap();
            assert_eq!(
                c.map(|c| c.id).as_deref(),
                Some(id.as_str()),
                "round {round}"
            );
        }
        for id in &acked.ended {
            assert_eq!(
                s.consultation(id).unwrap().unwrap().state,
                State::Ended,
                "round {round}"
            );
        }
        s.verify_audit()
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
    }
    let acked = acked.lock().unwrap();
    eprintln!(
        "{ROUNDS} kills, {} creates and {} ends acknowledged, in {:?}",
        acked.created.len(),
        acked.ended.len(),
        started.elapsed()
    );
    assert!(
        acked.created.len() >= ROUNDS,
        "writes happened between kills"
    );
}
