//! Runs a whole call against `telenode serve` (a separate process, debug
//! logging) and fails if the node's log shows a token, a link key, an SDP
//! line, a candidate address, the patient's name or the doctor's password.

mod common;

use std::time::Duration;

use common::process::free_port;
use common::{patient_options, wait_end, wait_for};
use telenode::client::{AgentEvent, CallAgent, EndCause, parse_link, ws_url};

const PATIENT_NAME: &str = "Zacharias Privatperson";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_log_holds_no_secrets_addresses_or_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");

    let totp = common::process::admin_add_doctor(&data, "dr-quiet", "Dr. Quiet").await;
    // The relay runs (and may relay on loopback) so its logs are checked too.
    let node = common::process::NodeProcess::start(
        &data,
        free_port().await,
        free_port().await,
        &["--turn-allow-peer", "127.0.0.0/8"],
        "debug",
    )
    .await;
    let (listen, admin_listen) = (node.listen.clone(), node.admin_listen.clone());

    let base = format!("http://{listen}");
    let api = common::login_with_secret(&base, "dr-quiet", &totp).await;
    let session = api.session();
    let link = api.new_consultation(None).await.expect("consultation");
    let (_, token, key) = parse_link(&link.url).expect("link");
    let link_key_text = key.to_b64u();

    let mut d_opts = common::doctor_options(&api, &link);
    d_opts.auto_admit = true;
    d_opts.call_duration = Some(Duration::from_secs(2));
    let (doctor, mut d_events) = CallAgent::start(d_opts).await.expect("doctor");
    let p_opts = patient_options(ws_url(&base), token.clone(), Some(PATIENT_NAME), key);
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

    let mut child = node.child;
    let _ = child.start_kill();
    let _ = child.wait().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = node.log.lock().expect("lock").clone();
    assert!(log.contains("state"), "the node did log the call:\n{log}");

    let forbidden = [
        ("join token", token.as_str()),
        ("link key", link_key_text.as_str()),
        ("doctor session", session.as_str()),
        ("TOTP secret", totp.as_str()),
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
