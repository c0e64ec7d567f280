//! The video bitrate follows the network: a call through the node's relay
//! whose allocations may carry only 80 kB/s (both directions) (the relay's own per-allocation
//! quota drops the excess, as a congested link would) makes both senders
//! back off from 600 kbit/s, what the encoder sends follows, and the video
//! recovers at the lower rate. The same call without the quota stays at
//! 600 kbit/s.

mod common;

use std::time::Duration;

use common::{Node, patient_options, wait_for};
use telenode::client::{AgentEvent, CallAgent, parse_link};
use telenode::peer::VideoSource;
use telenode::peer::stats::MediaStats;

/// Runs a relayed 640x480@30 call for `secs` and returns the doctor's and
/// the patient's stats, one per second.
async fn relayed_call(node: &Node, secs: usize) -> (Vec<MediaStats>, Vec<MediaStats>) {
    node.add_doctor("dr-netz", "Dr. Netz");
    let api = node.login("dr-netz").await;
    let link = api.new_consultation(None).await.expect("consultation");
    let (_, token, key) = parse_link(&link.url).expect("link");
    let video = VideoSource::Synthetic {
        width: 640,
        height: 480,
        fps: 30,
    };
    let mut d_opts = common::doctor_options(&api, &link);
    d_opts.auto_admit = true;
    d_opts.force_relay = true;
    d_opts.video = video.clone();
    let mut p_opts = patient_options(node.ws_url(), token, None, key);
    p_opts.force_relay = true;
    p_opts.video = video;
    let (doctor, mut d_events) = CallAgent::start(d_opts).await.expect("doctor");
    let (patient, mut p_events) = CallAgent::start(p_opts).await.expect("patient");
    let stats = |e: &AgentEvent| match e {
        AgentEvent::Stats(s) => Some(*s),
        _ => None,
    };
    let (mut d, mut p) = (Vec::new(), Vec::new());
    while d.len() < secs {
        d.push(
            wait_for(&mut d_events, Duration::from_secs(20), stats)
                .await
                .expect("doctor stats"),
        );
        while let Ok(Some(s)) = tokio::time::timeout(Duration::ZERO, async {
            wait_for(&mut p_events, Duration::from_millis(1), stats)
                .await
                .ok()
        })
        .await
        {
            p.push(s);
        }
    }
    doctor.hang_up();
    doctor.join().await;
    patient.join().await;
    (d, p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_congested_relay_makes_the_senders_back_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start_with(dir, |c| {
        c.turn_allow_peer = vec!["127.0.0.0/8".parse().expect("cidr")];
        c.turn_bandwidth_per_allocation = 80_000;
    })
    .await;
    let (d, p) = relayed_call(&node, 24).await;
    let metrics = node.metrics().await;
    for l in metrics.lines().filter(|l| l.starts_with("telenode_turn")) {
        eprintln!("{l}");
    }
    let targets: Vec<u64> = d.iter().map(|s| s.video_target_kbps).collect();
    let sent: Vec<u64> = d
        .windows(2)
        .map(|w| (w[1].video_bytes_sent - w[0].video_bytes_sent) * 8 / 1000)
        .collect();
    let keys: Vec<u64> = d.iter().map(|s| s.video_keyframes_sent).collect();
    eprintln!("doctor's video target, kbit/s, per second: {targets:?}");
    eprintln!("doctor's video sent, kbit/s, per second: {sent:?}; keyframes {keys:?}");
    let show = |v: &[MediaStats]| -> Vec<(u64, u64, u64)> {
        v.iter()
            .map(|s| (s.video_target_kbps, s.video_frames_decoded, s.packets_lost))
            .collect()
    };
    eprintln!("doctor (target, decoded, lost): {:?}", show(&d));
    eprintln!("patient (target, decoded, lost): {:?}", show(&p));
    assert!(
        targets[..3].contains(&600),
        "starts at the resolution's bitrate (0 until video flows): {targets:?}"
    );
    let lowest = *targets[3..].iter().min().expect("stats");
    assert!(lowest < 400, "backed off to what fits: {targets:?}");
    assert!(
        targets[targets.len() - 5..].iter().all(|&t| t < 600),
        "and stays below the uncongested rate: {targets:?}"
    );
    // What the encoder really sends follows the target (it drops frames
    // rather than overshoot), over the last five seconds.
    let n = d.len();
    let sent_kbps = (d[n - 1].video_bytes_sent - d[n - 6].video_bytes_sent) * 8 / 1000 / 5;
    let aimed = targets[n - 6..].iter().sum::<u64>() / 6;
    assert!(
        sent_kbps < aimed * 3 / 2 + 20,
        "sent {sent_kbps} kbit/s against a target of {aimed}"
    );
    // The patient's sender backs off too.
    let patient_lowest = p[3..].iter().map(|s| s.video_target_kbps).min();
    assert!(
        patient_lowest.is_some_and(|t| t < 400),
        "the patient's sender too: {patient_lowest:?}"
    );
    // Having backed off, the call recovers: video decodes again on both
    // sides after the first loss, audio keeps arriving.
    let recovered = |v: &[MediaStats]| {
        let first_loss = v.iter().position(|s| s.packets_lost > 0).unwrap_or(0);
        let (from, end) = (&v[first_loss], &v[v.len() - 1]);
        end.video_frames_decoded >= from.video_frames_decoded + 20
            && end.audio_packets_received > from.audio_packets_received
    };
    assert!(recovered(&d), "the doctor decodes again");
    assert!(recovered(&p), "the patient decodes again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uncongested_relay_keeps_the_full_bitrate() {
    let node = Node::start_relaying().await;
    let (d, _) = relayed_call(&node, 8).await;
    let targets: Vec<u64> = d.iter().map(|s| s.video_target_kbps).collect();
    eprintln!("doctor's video target, kbit/s, per second: {targets:?}");
    assert!(
        targets[targets.len() - 3..].iter().all(|&t| t == 600),
        "{targets:?}"
    );
}
