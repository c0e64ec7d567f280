//! Full consultations through a real node (doctor login, link, join, admit,
//! call with media, end), then every file of the data directory and a backup
//! are scanned for what the node must not keep readable: the doctor's login
//! and name, the patient's name, tokens, link keys, consultation ids as users
//! see them, session tokens, addresses, SDP.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Node, patient_options, wait_end, wait_for};
use telenode::client::{AgentEvent, ApiClient, CallAgent, EndCause, Trust, parse_link, ws_url};

const LOGIN: &str = "dr-scan-7f3a";
const DOCTOR_NAME: &str = "Dr. Scanname Quux";
const PATIENT_NAME: &str = "Patientina Zyxwvut";
const TRIED_LOGIN: &str = "mistyped-secret-login";

/// One consultation from link to hang-up; returns what must not be stored.
async fn consultation(node: &Node, api: &ApiClient) -> Vec<(String, Vec<u8>)> {
    let link = api.new_consultation(None).await.expect("consultation");
    let (base, token, key) = parse_link(&link.url).expect("link parses");
    let mut d_opts = common::doctor_options(api, &link);
    d_opts.auto_admit = true;
    let (doctor, mut d_events) = CallAgent::start(d_opts).await.expect("doctor joins");
    let p_opts = patient_options(ws_url(&base), token.clone(), Some(PATIENT_NAME), key);
    let (patient, mut p_events) = CallAgent::start(p_opts).await.expect("patient joins");
    let knock = common::wait_knock(&mut d_events, Duration::from_secs(10))
        .await
        .expect("knock");
    assert_eq!(knock.as_deref(), Some(PATIENT_NAME));
    let media = |e: &AgentEvent| match e {
        AgentEvent::Stats(s) if s.video_frames_decoded > 10 => Some(()),
        _ => None,
    };
    wait_for(&mut d_events, Duration::from_secs(20), media)
        .await
        .expect("doctor gets media");
    wait_for(&mut p_events, Duration::from_secs(20), media)
        .await
        .expect("patient gets media");
    doctor.hang_up();
    assert_eq!(
        wait_end(&mut d_events, Duration::from_secs(5)).await,
        Some(EndCause::Completed)
    );
    wait_end(&mut p_events, Duration::from_secs(5)).await;
    doctor.join().await;
    patient.join().await;
    let _ = node;

    let raw_token = URL_SAFE_NO_PAD.decode(&token).expect("token");
    let token_hash =
        telenode_signaling::creds::token_hash(&raw_token.clone().try_into().expect("32 bytes"));
    let fragment = link.url.split_once('#').expect("fragment").1.to_owned();
    let id = link.consultation.id.clone();
    vec![
        ("join token".into(), token.into_bytes()),
        ("join token bytes".into(), raw_token),
        ("token hash".into(), token_hash.to_vec()),
        (
            "token hash b64".into(),
            URL_SAFE_NO_PAD.encode(token_hash).into_bytes(),
        ),
        ("link key".into(), fragment.clone().into_bytes()),
        (
            "link key bytes".into(),
            URL_SAFE_NO_PAD.decode(&fragment).expect("key"),
        ),
        ("consultation id".into(), id.clone().into_bytes()),
        (
            "consultation id bytes".into(),
            URL_SAFE_NO_PAD.decode(&id).expect("id"),
        ),
    ]
}

fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).expect("read")));
            }
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_directory_and_backup_hold_nothing_readable() {
    let node = Node::start().await;
    let totp_b32 = node.add_doctor(LOGIN, DOCTOR_NAME);
    let totp_raw = telenode::totp::base32_decode(&totp_b32).expect("base32");
    let failed = ApiClient::login(
        &Trust::default(),
        &node.base,
        TRIED_LOGIN,
        "some password 123",
        "123456",
    )
    .await;
    assert!(failed.is_err());
    let api = node.login(LOGIN).await;
    let mut secrets: Vec<(String, Vec<u8>)> = vec![
        ("doctor login".into(), LOGIN.into()),
        ("doctor name".into(), DOCTOR_NAME.into()),
        ("patient name".into(), PATIENT_NAME.into()),
        (
            "patient name, lower case".into(),
            PATIENT_NAME.to_lowercase().into(),
        ),
        ("tried login".into(), TRIED_LOGIN.into()),
        ("session token".into(), api.session().into()),
        (
            "session hash".into(),
            telenode::auth::session_hash(&api.session()).to_vec(),
        ),
        ("TOTP secret, base32".into(), totp_b32.clone().into()),
        ("TOTP secret".into(), totp_raw),
        ("IPv4 text".into(), b"127.0.0.1".to_vec()),
        ("IPv4 bytes".into(), vec![127, 0, 0, 1]),
        ("SDP".into(), b"a=fingerprint".to_vec()),
        ("ICE candidate".into(), b"typ host".to_vec()),
        ("user agent".into(), b"telenode/0.1".to_vec()),
        ("argon2 hash".into(), b"$argon2id$".to_vec()),
    ];
    for _ in 0..2 {
        secrets.extend(consultation(&node, &api).await);
    }
    // The hub records the end a moment after the hang-up.
    let mut states = Vec::new();
    for _ in 0..50 {
        states = api.consultations().await.expect("list");
        if states.len() == 2 && states.iter().all(|c| c.state == "ended") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let states: Vec<_> = states.iter().map(|c| c.state.clone()).collect();
    assert_eq!(states, ["ended", "ended"]);

    let backup = node.dir.path().join("backup.db");
    node.store.backup_to(&backup).expect("backup");
    let data = node.dir.path().join("data");
    // While the node still runs (WAL and shared-memory files present) and
    // after it stopped.
    let running = files(&data);
    assert!(
        running.iter().any(|(p, _)| p.ends_with("telenode.db-wal")),
        "the WAL is part of the scan"
    );
    scan(running, &backup, &secrets);
    let dir = node.stop().await;
    scan(files(&data), &backup, &secrets);
    drop(dir);
}

fn scan(mut scanned: Vec<(PathBuf, Vec<u8>)>, backup: &Path, secrets: &[(String, Vec<u8>)]) {
    scanned.push((backup.to_owned(), std::fs::read(backup).expect("backup")));
    let names: Vec<_> = scanned
        .iter()
        .map(|(p, b)| format!("{} ({} bytes)", p.display(), b.len()))
        .collect();
    eprintln!("scanned: {names:?}");
    // The scan sees real content: the database header and the key file's tag.
    assert!(
        scanned
            .iter()
            .any(|(_, b)| b.starts_with(b"SQLite format 3"))
    );
    assert!(
        scanned
            .iter()
            .any(|(_, b)| contains(b, b"telenode-master-key-v1"))
    );
    assert!(scanned.iter().map(|(_, b)| b.len()).sum::<usize>() > 8192);
    let mut leaks = Vec::new();
    for (what, needle) in secrets {
        for (path, bytes) in &scanned {
            if contains(bytes, needle) {
                leaks.push(format!("{what} in {}", path.display()));
            }
        }
    }
    assert!(leaks.is_empty(), "readable in the files: {leaks:?}");
}
