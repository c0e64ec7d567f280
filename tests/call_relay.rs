//! Two native peers call each other through the node's embedded TURN relay
//! (`force_relay`: relay candidates only), with credentials the node minted
//! into `welcome.ice_servers`; media is decoded both ways and the relay's
//! metrics move. Without the operator's allow-list, relaying to 127.0.0.1 is
//! refused (403) and counted.

mod common;

use std::time::{Duration, Instant};

use common::{Node, metric, patient_options, wait_end, wait_for};
use telenode::client::{AgentEvent, CallAgent, EndCause, parse_link};

/// Starts doctor and patient with `force_relay` on `node`.
async fn relay_call(
    node: &Node,
) -> (
    (CallAgent, tokio::sync::mpsc::UnboundedReceiver<AgentEvent>),
    (CallAgent, tokio::sync::mpsc::UnboundedReceiver<AgentEvent>),
) {
    node.add_doctor("dr-relay", "Dr. Relay");
    let api = node.login("dr-relay").await;
    let link = api.new_consultation(None).await.expect("consultation");
    let (_, token, key) = parse_link(&link.url).expect("link");
    let mut d_opts = common::doctor_options(&api, &link);
    d_opts.auto_admit = true;
    d_opts.force_relay = true;
    let mut p_opts = patient_options(node.ws_url(), token, None, key);
    p_opts.force_relay = true;
    let doctor = CallAgent::start(d_opts).await.expect("doctor");
    let patient = CallAgent::start(p_opts).await.expect("patient");
    (doctor, patient)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_peers_call_through_the_embedded_relay() {
    let node = Node::start_relaying().await;
    let before = node.metrics().await;
    assert_eq!(metric(&before, "telenode_turn_allocations"), 0.0);
    assert_eq!(metric(&before, "telenode_turn_relayed_bytes_total"), 0.0);

    let started = Instant::now();
    let ((doctor, mut d_events), (patient, mut p_events)) = relay_call(&node).await;
    let admitted = wait_for(&mut d_events, Duration::from_secs(10), |e| {
        matches!(e, AgentEvent::Admitted).then(Instant::now)
    })
    .await
    .expect("doctor admits");

    let pair = |(local, remote, _sas): (String, String, String)| (local, remote);
    let d_conn = common::wait_connected(&mut d_events, Duration::from_secs(20))
        .await
        .map(pair)
        .expect("doctor connects");
    let p_conn = common::wait_connected(&mut p_events, Duration::from_secs(20))
        .await
        .map(pair)
        .expect("patient connects");
    assert_eq!(d_conn, ("relay".into(), "relay".into()), "doctor's pair");
    assert_eq!(p_conn, ("relay".into(), "relay".into()), "patient's pair");
    let first_frame = wait_for(&mut d_events, Duration::from_secs(10), |e| {
        matches!(e, AgentEvent::FirstVideoFrame { .. }).then(Instant::now)
    })
    .await
    .expect("doctor decodes a frame");
    let setup = first_frame - admitted;

    let during = node.metrics().await;
    assert!(
        metric(&during, "telenode_turn_allocations") >= 2.0,
        "{during}"
    );
    assert!(metric(&during, "telenode_turn_allocations_created_total") >= 2.0);

    let enough = |e: &AgentEvent| match e {
        AgentEvent::Stats(s) if s.video_frames_decoded > 60 && s.audio_frames_decoded > 100 => {
            Some(*s)
        }
        _ => None,
    };
    let d_stats = wait_for(&mut d_events, Duration::from_secs(20), enough)
        .await
        .expect("doctor decodes media");
    let p_stats = wait_for(&mut p_events, Duration::from_secs(20), enough)
        .await
        .expect("patient decodes media");
    eprintln!(
        "relay call: admit -> first frame {setup:?} (total {:?})\n\
         doctor: {d_stats:?}\npatient: {p_stats:?}",
        started.elapsed()
    );

    let after = node.metrics().await;
    assert!(
        metric(&after, "telenode_turn_relayed_packets_total") > 200.0,
        "{after}"
    );
    assert!(metric(&after, "telenode_turn_relayed_bytes_total") > 50_000.0);
    assert_eq!(
        metric(&after, "telenode_turn_refused_total{code=\"403\"}"),
        0.0
    );
    assert_eq!(
        metric(&after, "telenode_turn_refused_total{code=\"401\"}"),
        0.0
    );
    assert!(!after.contains("127.0.0.1"), "no addresses in metrics");
    // Both peers reported a relayed path with `connected`.
    assert_eq!(
        metric(&after, "telenode_calls_connected_total{path=\"relay\"}"),
        1.0,
        "{after}"
    );
    assert_eq!(
        metric(&after, "telenode_calls_connected_total{path=\"direct\"}"),
        0.0
    );

    doctor.hang_up();
    assert_eq!(
        wait_end(&mut d_events, Duration::from_secs(5)).await,
        Some(EndCause::Completed)
    );
    wait_end(&mut p_events, Duration::from_secs(5)).await;
    doctor.join().await;
    patient.join().await;
    assert!(
        setup < Duration::from_secs(2),
        "relay call set-up (admit -> first decoded frame) took {setup:?}"
    );
    node.stop().await;
}

/// No allow-list: the relay refuses permissions toward 127.0.0.1 (the other
/// peer's relayed address is on loopback) with 403, and counts them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_to_loopback_refused_without_allow_list() {
    let node = Node::start().await;
    let ((doctor, mut d_events), (patient, _p_events)) = relay_call(&node).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let refused = loop {
        let text = node.metrics().await;
        let refused = metric(&text, "telenode_turn_refused_total{code=\"403\"}");
        if refused > 0.0 || Instant::now() > deadline {
            break refused;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(refused > 0.0, "no 403 counted");
    let text = node.metrics().await;
    assert_eq!(metric(&text, "telenode_turn_relayed_packets_total"), 0.0);
    // The call cannot connect over the relay.
    while let Ok(ev) = d_events.try_recv() {
        assert!(
            !matches!(ev, AgentEvent::Connected { .. }),
            "connected although relaying is refused"
        );
    }
    doctor.hang_up();
    doctor.join().await;
    drop(patient);
    node.stop().await;
}
