//! Runs a whole call against `telenode serve` (a separate process, debug
//! logging) and fails if the node's log shows a token, a link key, an SDP
//! line, a candidate address, the patient's name or the doctor's password.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{call_options, wait_end, wait_for};
use telenode::client::{AgentEvent, ApiClient, CallAgent, EndCause, Seat, parse_link, ws_url};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

const PATIENT_NAME: &str = "Zacharias Privatperson";

async fn free_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    l.local_addr().expect("addr").port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_log_holds_no_secrets_addresses_or_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let exe = env!("CARGO_BIN_EXE_telenode");

    let mut add = Command::new(exe)
        .args(["admin", "--data-dir"])
        .arg(&data)
        .args([
            "doctor",
            "add",
            "--login",
            "dr-quiet",
            "--display-name",
            "Dr. Quiet",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("admin runs");
    let mut stdin = add.stdin.take().expect("stdin");
    stdin
        .write_all(format!("{}\n", common::PASSWORD).as_bytes())
        .await
        .expect("write");
    drop(stdin);
    assert!(add.wait().await.expect("admin").success());

    let port = free_port().await;
    let listen = format!("127.0.0.1:{port}");
    let admin_listen = format!("127.0.0.1:{}", free_port().await);
    let mut node = Command::new(exe)
        .args([
            "serve",
            "--listen",
            &listen,
            "--admin-listen",
            &admin_listen,
            // The relay runs (and may relay on loopback) so its logs are
            // checked too.
            "--turn-listen",
            "127.0.0.1:0",
            "--turn-allow-peer",
            "127.0.0.0/8",
            "--data-dir",
        ])
        .arg(&data)
        .env("RUST_LOG", "debug")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node starts");
    let mut stderr = BufReader::new(node.stderr.take().expect("stderr")).lines();
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = log.clone();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut ready = Some(ready_tx);
        while let Ok(Some(line)) = stderr.next_line().await {
            if line.contains("listening")
                && let Some(tx) = ready.take()
            {
                let _ = tx.send(());
            }
            let mut l = sink.lock().expect("lock");
            l.push_str(&line);
            l.push('\n');
        }
    });
    tokio::time::timeout(Duration::from_secs(20), ready_rx)
        .await
        .expect("node listens in time")
        .expect("node started");

    let base = format!("http://{listen}");
    let api = ApiClient::login(&base, "dr-quiet", common::PASSWORD)
        .await
        .expect("login");
    let link = api.new_consultation(None).await.expect("consultation");
    let (_, token, key) = parse_link(&link.url).expect("link");
    let link_key_text = key.to_b64u();

    let mut d_opts = common::doctor_options(&api, &link);
    d_opts.auto_admit = true;
    d_opts.call_duration = Some(Duration::from_secs(2));
    let (doctor, mut d_events) = CallAgent::start(d_opts).await.expect("doctor");
    let p_opts = call_options(
        ws_url(&base),
        Seat::Patient {
            token: token.clone(),
            name: Some(PATIENT_NAME.into()),
        },
        key,
    );
    let (patient, mut p_events) = CallAgent::start(p_opts).await.expect("patient");
    wait_for(&mut d_events, Duration::from_secs(20), |e| {
        matches!(e, AgentEvent::Connected { .. }).then_some(())
    })
    .await
    .expect("call connects");
    assert_eq!(
        wait_end(&mut d_events, Duration::from_secs(15)).await,
        Some(EndCause::Completed)
    );
    wait_end(&mut p_events, Duration::from_secs(5)).await;
    doctor.join().await;
    patient.join().await;
    api.logout().await.expect("logout");

    let _ = node.start_kill();
    let _ = node.wait().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = log.lock().expect("lock").clone();
    assert!(log.contains("state"), "the node did log the call:\n{log}");

    let forbidden = [
        ("join token", token.as_str()),
        ("link key", link_key_text.as_str()),
        ("doctor session", api.session()),
        ("patient name", PATIENT_NAME),
        ("password", common::PASSWORD),
        ("consultation id", link.consultation.id.as_str()),
        ("SDP", "v=0"),
        ("SDP", "a=fingerprint"),
        ("SDP", "a=ice-ufrag"),
        ("candidate", "candidate:"),
        ("candidate", "typ host"),
    ];
    for (what, needle) in forbidden {
        assert!(
            !log.contains(needle),
            "the node's log contains a {what}: {needle}\n{log}"
        );
    }
    // The only addresses allowed are those the operator told the node to
    // listen on.
    let without_listen = log
        .replace(&listen, "LISTEN")
        .replace(&admin_listen, "ADMIN");
    assert!(
        !without_listen.contains("127.0.0.1"),
        "the node's log contains an IP address:\n{without_listen}"
    );
}
