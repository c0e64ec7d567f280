//! Two native peers call each other through a real node on 127.0.0.1:
//! signalling sealed end to end, media peer to peer over DTLS-SRTP, really
//! encoded and decoded (VP8, Opus) on both sides.

mod common;

use std::time::{Duration, Instant};

use common::{Node, patient_options, wait_end, wait_for};
use telenode::client::{AgentEvent, CallAgent, EndCause, parse_link, ws_url};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_native_peers_call_through_the_node() {
    let node = Node::start().await;
    node.add_doctor("dr-lind", "Dr. Lind");
    let api = node.login("dr-lind").await;
    let link = api.new_consultation(None).await.expect("consultation");
    let (base, token, key) = parse_link(&link.url).expect("link parses");
    assert_eq!(base, node.base);

    let mut d_opts = common::doctor_options(&api, &link);
    d_opts.auto_admit = true;
    let (doctor, mut d_events) = CallAgent::start(d_opts).await.expect("doctor joins");
    let p_opts = patient_options(ws_url(&base), token, Some("Erika Mustermann"), key);
    let started = Instant::now();
    let (patient, mut p_events) = CallAgent::start(p_opts).await.expect("patient joins");

    let knock = common::wait_knock(&mut d_events, Duration::from_secs(10))
        .await
        .expect("doctor sees the knock");
    assert_eq!(knock.as_deref(), Some("Erika Mustermann"));

    let d_conn = common::wait_connected(&mut d_events, Duration::from_secs(20))
        .await
        .expect("doctor connects");
    let p_conn = common::wait_connected(&mut p_events, Duration::from_secs(20))
        .await
        .expect("patient connects");
    assert_eq!(d_conn.0, "host", "doctor's selected local candidate");
    assert_eq!(p_conn.0, "host", "patient's selected local candidate");
    assert_eq!(d_conn.2, p_conn.2, "both sides show the same SAS");
    assert_eq!(d_conn.2.len(), 6);

    let enough = |e: &AgentEvent| match e {
        AgentEvent::Stats(s) if s.video_frames_decoded > 100 && s.audio_packets_received > 200 => {
            Some(*s)
        }
        _ => None,
    };
    let left = Duration::from_secs(20).saturating_sub(started.elapsed());
    let d_stats = wait_for(&mut d_events, left, enough)
        .await
        .expect("doctor decodes media");
    let left = Duration::from_secs(20).saturating_sub(started.elapsed());
    let p_stats = wait_for(&mut p_events, left, enough)
        .await
        .expect("patient decodes media");
    assert!(d_stats.audio_frames_decoded > 200 && p_stats.audio_frames_decoded > 200);
    assert!(d_stats.video_frames_sent > 100 && p_stats.video_frames_sent > 100);
    eprintln!(
        "doctor: {d_stats:?}\npatient: {p_stats:?}\nin {:?}",
        started.elapsed()
    );

    doctor.hang_up();
    assert_eq!(
        wait_end(&mut d_events, Duration::from_secs(5)).await,
        Some(EndCause::Completed)
    );
    let p_end = wait_end(&mut p_events, Duration::from_secs(5)).await;
    assert!(
        matches!(p_end, Some(EndCause::PeerHungUp | EndCause::DoctorEnded)),
        "{p_end:?}"
    );
    doctor.join().await;
    patient.join().await;

    let stored = api.consultations().await.expect("list");
    assert_eq!(stored[0].state, "ended");
    node.stop().await;
}
