//! Calls across networks where the direct path is blocked (see
//! tests/common/netns.rs for the namespaces: patient and doctor cannot reach
//! each other, only the node): the call goes through the node's TURN relay.
//! The second case also drops every UDP datagram the patient sends (a policy
//! route to a blackhole for protocol 17), so the patient has to reach the
//! relay over TCP; the third drops TCP to the relay's plain port as well, so
//! only TURN over TLS (`turns:`, the node's certificate) gets through.

mod common;

use std::time::{Duration, Instant};

use common::browser::{Chromium, READ_STATS, eval, hang_up, join_as_patient, wait_true};
use common::netns::{DOCTOR, Lab, NODE_D, NODE_P, PATIENT, TURN_PORT, TURN_TLS_PORT};
use common::netns::{answers, isolated};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    /// No route between patient and doctor.
    Direct,
    /// That, and no UDP out of the patient's namespace.
    DirectAndPatientUdp,
    /// That, and no TCP to the relay's plain port either: only TLS gets
    /// out (a firewall that passes nothing but TLS).
    DirectUdpAndPlainTurn,
}

#[test]
fn the_call_goes_through_the_relay_when_no_direct_path_exists() {
    isolated(
        "the_call_goes_through_the_relay_when_no_direct_path_exists",
        || scenario(Block::Direct),
    );
}

#[test]
fn a_patient_without_udp_reaches_the_relay_over_tcp() {
    isolated("a_patient_without_udp_reaches_the_relay_over_tcp", || {
        scenario(Block::DirectAndPatientUdp)
    });
}

#[test]
fn a_patient_with_only_tls_reaches_the_relay_over_tls() {
    isolated("a_patient_with_only_tls_reaches_the_relay_over_tls", || {
        scenario(Block::DirectUdpAndPlainTurn)
    });
}

async fn scenario(block: Block) {
    let lab = Lab::build();
    if block != Block::Direct {
        lab.block_patient_udp();
    }
    if block == Block::DirectUdpAndPlainTurn {
        lab.block_patient_plain_turn();
    }

    // The network is what this test says it is.
    assert!(answers((NODE_P, 9)).await, "the node's side is reachable");
    assert!(
        answers((NODE_D, 9)).await,
        "both node addresses are reachable"
    );
    assert!(
        !answers((DOCTOR, 9)).await,
        "the doctor must not be reachable from the patient"
    );
    let udp = std::net::UdpSocket::bind((PATIENT, 0)).expect("udp");
    let udp_out = udp.send_to(b"x", (NODE_P, TURN_PORT));
    match block {
        Block::Direct => assert!(udp_out.is_ok(), "UDP leaves: {udp_out:?}"),
        _ => assert!(udp_out.is_err(), "UDP is dropped"),
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let node = lab.start_node(dir.path()).await;
    let mut doctor = lab.start_doctor(&node);
    let link = doctor.next_event().await;
    assert_eq!(link["event"], "link", "{link}");
    let url = link["url"].as_str().expect("url").to_owned();

    // The certificate comes from the test's CA, which Chromium does not know.
    let chromium = Chromium::launch_with(&["ignore-certificate-errors"]).await;
    let page = chromium.page().await;
    let admitted = Instant::now();
    join_as_patient(&page, &url, "Erika M.").await;

    let mut doctor_pair = None;
    let mut doctor_stats = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(45);
    while Instant::now() < deadline {
        let ev = doctor.next_event().await;
        match ev["event"].as_str() {
            Some("connected") => {
                eprintln!("doctor connected after {:?}: {ev}", admitted.elapsed());
                doctor_pair = Some((
                    ev["local_candidate"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    ev["remote_candidate"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                ));
            }
            Some("stats") => {
                doctor_stats.push(ev.clone());
                if ev["video_frames_decoded"].as_u64() > Some(60)
                    && ev["audio_packets_received"].as_u64() > Some(100)
                {
                    break;
                }
            }
            Some("ended") => panic!("doctor ended early: {ev}"),
            _ => {}
        }
    }
    let (d_local, d_remote) = doctor_pair.expect("the doctor connected");
    let last = doctor_stats.last().expect("doctor stats");
    assert!(
        last["video_frames_decoded"].as_u64() > Some(60)
            && last["audio_packets_received"].as_u64() > Some(100),
        "the doctor decodes the patient's media: {doctor_stats:?}"
    );

    let s1 = eval(&page, READ_STATS).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let s2 = eval(&page, READ_STATS).await;
    eprintln!("browser: {s1} then {s2}; doctor pair {d_local}/{d_remote}");
    let frames = |s: &serde_json::Value| s["video_frames_decoded"].as_u64().unwrap_or(0);
    let audio = |s: &serde_json::Value| s["audio_packets_received"].as_u64().unwrap_or(0);
    assert!(
        frames(&s2) > frames(&s1) && frames(&s2) > 30,
        "the browser decodes the doctor's video: {s1} {s2}"
    );
    assert!(
        audio(&s2) > audio(&s1) && audio(&s2) > 50,
        "the browser receives the doctor's audio: {s1} {s2}"
    );
    // The selected pair runs through the relay, as both sides see it.
    assert!(
        d_local == "relay" || d_remote == "relay",
        "doctor's pair {d_local}/{d_remote}"
    );
    assert!(
        s2["pair"] == "relay" || s2["remote"] == "relay",
        "browser's pair: {s2}"
    );
    match block {
        Block::Direct => {}
        Block::DirectAndPatientUdp => {
            assert_eq!(s2["pair"], "relay", "the patient itself relays: {s2}");
            assert_eq!(s2["relay_protocol"], "tcp", "over TCP: {s2}");
        }
        Block::DirectUdpAndPlainTurn => {
            assert!(!answers((NODE_P, TURN_PORT)).await, "plain TURN is blocked");
            assert!(answers((NODE_P, TURN_TLS_PORT)).await);
            assert_eq!(s2["pair"], "relay", "the patient itself relays: {s2}");
            assert_eq!(s2["relay_protocol"], "tls", "over TLS: {s2}");
        }
    }

    // The relay carried it.
    let relayed = node.metric("telenode_turn_relayed_bytes_total").await;
    assert!(relayed > 100_000.0, "relayed {relayed} bytes");

    hang_up(&page).await;
    loop {
        let ev = doctor.next_event().await;
        if ev["event"] == "ended" {
            assert_eq!(ev["reason"], "peer_hung_up", "{ev}");
            break;
        }
    }
    assert!(
        wait_true(
            &page,
            "!document.querySelector('#screen-ended').hidden",
            Duration::from_secs(5)
        )
        .await
    );
    let status = tokio::time::timeout(Duration::from_secs(10), doctor.child.wait())
        .await
        .expect("doctor exits")
        .expect("wait");
    assert!(status.success(), "doctor exit status {status}");
    chromium.close().await;
    drop(node);
    drop(lab);
}
