//! Two native peers in one process, on 127.0.0.1, signalling through plain
//! channels: ICE, DTLS, and real VP8/Opus media both ways.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use telenode::peer::{
    AudioSource, CandidateKind, DeviceKind, MediaStats, MediaTap, Peer, PeerEvent, PeerOptions,
    VideoFrame, VideoSource,
};
use tokio::sync::mpsc::UnboundedReceiver;

const DEADLINE: Duration = Duration::from_secs(20);

fn loopback(video: VideoSource, audio: AudioSource) -> PeerOptions {
    PeerOptions {
        bind_ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        video,
        audio,
        ..PeerOptions::default()
    }
}

/// Forwards one side's candidates to the other and records its events.
fn pump(
    mut events: UnboundedReceiver<PeerEvent>,
    other: Arc<Peer>,
    log: Arc<Mutex<Vec<(Duration, PeerEvent)>>>,
    t0: Instant,
) {
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let PeerEvent::LocalCandidate(c) = &event {
                other
                    .add_remote_candidate(c.clone())
                    .await
                    .expect("remote candidate accepted");
            }
            log.lock().expect("log").push((t0.elapsed(), event));
        }
    });
}

type Log = Arc<Mutex<Vec<(Duration, PeerEvent)>>>;

fn find<T>(log: &Log, f: impl Fn(&PeerEvent) -> Option<T>) -> Option<(Duration, T)> {
    log.lock()
        .expect("log")
        .iter()
        .find_map(|(t, e)| f(e).map(|v| (*t, v)))
}

fn connected(e: &PeerEvent) -> Option<(CandidateKind, CandidateKind)> {
    match e {
        PeerEvent::Connected { local, remote } => Some((*local, *remote)),
        _ => None,
    }
}

fn first_video(e: &PeerEvent) -> Option<(u32, u32)> {
    match e {
        PeerEvent::FirstVideoFrame { width, height } => Some((*width, *height)),
        _ => None,
    }
}

struct Pair {
    offerer: Arc<Peer>,
    answerer: Arc<Peer>,
    offerer_log: Log,
    answerer_log: Log,
    t0: Instant,
}

/// Starts both peers and runs offer/answer; candidates trickle through the
/// pumps, some of them before the answerer has the offer (they are queued).
async fn connect(offerer: PeerOptions, answerer: PeerOptions) -> Pair {
    let t0 = Instant::now();
    let (a, a_events) = Peer::start(offerer).await.expect("offerer starts");
    let (b, b_events) = Peer::start(answerer).await.expect("answerer starts");
    let (a, b) = (Arc::new(a), Arc::new(b));
    let (a_log, b_log): (Log, Log) = Default::default();
    pump(a_events, Arc::clone(&b), Arc::clone(&a_log), t0);
    pump(b_events, Arc::clone(&a), Arc::clone(&b_log), t0);

    let offer = a.create_offer(false).await.expect("offer");
    assert!(
        offer.contains("a=fingerprint:"),
        "offer carries a DTLS fingerprint"
    );
    let answer = b.apply_offer(&offer).await.expect("answer");
    a.apply_answer(&answer).await.expect("answer applied");

    let (a_fps, b_fps) = (a.fingerprints().await, b.fingerprints().await);
    assert!(a_fps.0.is_some() && a_fps.1.is_some());
    assert_eq!(
        a_fps.0, b_fps.1,
        "offerer's fingerprint is what the answerer saw"
    );
    assert_eq!(
        a_fps.1, b_fps.0,
        "answerer's fingerprint is what the offerer saw"
    );

    Pair {
        offerer: a,
        answerer: b,
        offerer_log: a_log,
        answerer_log: b_log,
        t0,
    }
}

async fn wait_until(what: &str, t0: Instant, mut done: impl FnMut() -> bool) {
    while !done() {
        assert!(t0.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn media_flowing(s: &MediaStats) -> bool {
    s.video_frames_decoded > 100 && s.audio_packets_received > 200 && s.audio_frames_decoded > 200
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_native_peers_exchange_vp8_and_opus_on_loopback() {
    let opts = || {
        loopback(
            VideoSource::Synthetic {
                width: 640,
                height: 480,
                fps: 30,
            },
            AudioSource::Tone { hz: 440.0 },
        )
    };
    let pair = connect(opts(), opts()).await;
    let (a, b, t0) = (&pair.offerer, &pair.answerer, pair.t0);

    wait_until("both sides connected", t0, || {
        find(&pair.offerer_log, connected).is_some()
            && find(&pair.answerer_log, connected).is_some()
    })
    .await;
    let (t_a, (a_local, _)) = find(&pair.offerer_log, connected).expect("offerer connected");
    let (t_b, (b_local, _)) = find(&pair.answerer_log, connected).expect("answerer connected");
    assert_eq!(a_local, CandidateKind::Host);
    assert_eq!(b_local, CandidateKind::Host);

    wait_until("media flowing both ways", t0, || {
        media_flowing(&a.stats()) && media_flowing(&b.stats())
    })
    .await;
    let t_media = t0.elapsed();

    for (name, log) in [
        ("offerer", &pair.offerer_log),
        ("answerer", &pair.answerer_log),
    ] {
        let (_, size) = find(log, first_video).expect("first video frame event");
        assert_eq!(size, (640, 480), "{name} decoded full-size frames");
        assert!(
            find(log, |e| matches!(e, PeerEvent::GatheringComplete)
                .then_some(()))
            .is_some(),
            "{name} finished gathering"
        );
    }
    let (sa, sb) = (a.stats(), b.stats());
    assert!(sa.video_frames_sent > 100 && sb.audio_packets_sent > 200);
    eprintln!(
        "connected: offerer {t_a:?}, answerer {t_b:?}; thresholds met at {t_media:?}\n\
         offerer {sa:?}\nanswerer {sb:?}"
    );

    // A keyframe request (PLI) from the offerer makes the answerer's
    // encoder produce a keyframe well before the periodic one (10 s).
    let before = b.stats().video_keyframes_sent;
    assert!(before >= 1, "the first frame was a keyframe");
    let asked = Instant::now();
    a.request_keyframe();
    wait_until("a requested keyframe", t0, || {
        b.stats().video_keyframes_sent > before
    })
    .await;
    let answered = asked.elapsed();
    assert!(
        answered < Duration::from_secs(2),
        "keyframe after {answered:?}"
    );
    eprintln!("keyframe request answered in {answered:?}");

    // RTT comes from RTCP or ICE within a few seconds; best effort, but on
    // loopback it should be there and tiny.
    wait_until("an RTT estimate", t0, || a.stats().rtt_ms.is_some()).await;
    let rtt = a.stats().rtt_ms.expect("rtt");
    assert!(rtt < 200.0, "loopback RTT {rtt} ms");

    a.close().await;
    b.close().await;
    a.close().await; // idempotent
    let after = a.stats();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        a.stats().video_frames_sent,
        after.video_frames_sent,
        "media tasks stop on close"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_only_peer_gets_the_requested_resolution() {
    let sender = loopback(
        VideoSource::Synthetic {
            width: 320,
            height: 240,
            fps: 15,
        },
        AudioSource::Tone { hz: 1000.0 },
    );
    let receiver = loopback(VideoSource::None, AudioSource::None);
    // The receive-only side offers, so its recvonly transceivers are tested.
    let pair = connect(receiver, sender).await;
    let (rx, tx, t0) = (&pair.offerer, &pair.answerer, pair.t0);

    wait_until("first video frame", t0, || {
        find(&pair.offerer_log, first_video).is_some()
    })
    .await;
    let (t_first, size) = find(&pair.offerer_log, first_video).expect("first frame");
    assert_eq!(size, (320, 240));
    wait_until("some media", t0, || {
        let s = rx.stats();
        s.video_frames_decoded >= 30 && s.audio_frames_decoded >= 50
    })
    .await;
    let (srx, stx) = (rx.stats(), tx.stats());
    assert_eq!(srx.video_frames_sent, 0);
    assert_eq!(srx.audio_packets_sent, 0);
    assert_eq!(stx.video_frames_decoded, 0);
    eprintln!("first 320x240 frame at {t_first:?}; receiver {srx:?}");
    rx.close().await;
    tx.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ice_restart_keeps_media_flowing() {
    let opts = || {
        loopback(
            VideoSource::Synthetic {
                width: 160,
                height: 120,
                fps: 15,
            },
            AudioSource::Tone { hz: 300.0 },
        )
    };
    let pair = connect(opts(), opts()).await;
    let (a, b, t0) = (&pair.offerer, &pair.answerer, pair.t0);
    wait_until("first frames", t0, || {
        a.stats().video_frames_decoded > 5 && b.stats().video_frames_decoded > 5
    })
    .await;
    let connects = |log: &Log| {
        log.lock()
            .expect("log")
            .iter()
            .filter(|(_, e)| matches!(e, PeerEvent::Connected { .. }))
            .count()
    };

    let restart = Instant::now();
    let offer = a.create_offer(true).await.expect("restart offer");
    let answer = b.apply_offer(&offer).await.expect("restart answer");
    a.apply_answer(&answer)
        .await
        .expect("restart answer applied");

    let (va, vb) = (
        a.stats().video_frames_decoded,
        b.stats().video_frames_decoded,
    );
    wait_until("media after the restart", t0, || {
        a.stats().video_frames_decoded > va + 30 && b.stats().video_frames_decoded > vb + 30
    })
    .await;
    let failed = |log: &Log| {
        log.lock()
            .expect("log")
            .iter()
            .any(|(_, e)| matches!(e, PeerEvent::Failed { .. }))
    };
    assert!(!failed(&pair.offerer_log) && !failed(&pair.answerer_log));
    eprintln!(
        "ICE restart: media resumed within {:?}; Connected events: offerer {}, answerer {}",
        restart.elapsed(),
        connects(&pair.offerer_log),
        connects(&pair.answerer_log)
    );
    a.close().await;
    b.close().await;
}

/// The tap a window reads: remote and self-view pictures arrive; camera off
/// sends black pictures, mute keeps the audio stream flowing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_tap_shows_pictures_and_camera_off_sends_black() {
    let (tap_a, tap_b) = (MediaTap::new(), MediaTap::new());
    let opts = |tap: &MediaTap| PeerOptions {
        tap: Some(tap.clone()),
        ..loopback(
            VideoSource::Synthetic {
                width: 320,
                height: 240,
                fps: 30,
            },
            AudioSource::Tone { hz: 440.0 },
        )
    };
    let pair = connect(opts(&tap_a), opts(&tap_b)).await;
    let t0 = pair.t0;
    wait_until("pictures in the tap", t0, || {
        tap_b.latest_remote().is_some_and(|(n, _)| n > 10)
    })
    .await;
    let (_, remote) = tap_b.latest_remote().expect("remote picture");
    assert_eq!((remote.width, remote.height), (320, 240));
    assert_eq!(remote.i420.len(), VideoFrame::i420_len(320, 240));
    let luma_spread = |f: &VideoFrame| {
        let y = &f.i420[..(f.width * f.height) as usize];
        let (lo, hi) = (y.iter().min(), y.iter().max());
        hi.copied().unwrap_or(0) - lo.copied().unwrap_or(0)
    };
    assert!(
        luma_spread(&remote) > 100,
        "the test pattern, not a flat picture"
    );
    let (_, own) = tap_a.latest_local().expect("self view");
    assert!(luma_spread(&own) > 100);
    assert_eq!(own.to_rgba().len(), 320 * 240 * 4);

    tap_a.set_video_muted(true);
    tap_a.set_audio_muted(true);
    wait_until("black pictures", t0, || {
        tap_b
            .latest_remote()
            .is_some_and(|(_, f)| f.i420[..320 * 240].iter().all(|&y| y <= 40))
    })
    .await;
    let before = pair.answerer.stats().audio_packets_received;
    wait_until("audio keeps flowing while muted", t0, || {
        pair.answerer.stats().audio_packets_received > before + 20
    })
    .await;
    pair.offerer.close().await;
    pair.answerer.close().await;
}

/// A peer asking for a microphone and a 320x240 camera that do not exist.
fn without_devices(fps: u32) -> PeerOptions {
    PeerOptions {
        audio: AudioSource::Microphone {
            device: Some("no such microphone".to_owned()),
        },
        video: VideoSource::Camera {
            device: Some("/dev/no-such-camera".to_owned()),
            width: 320,
            height: 240,
            fps,
        },
        ..loopback(VideoSource::None, AudioSource::None)
    }
}

/// Without a microphone or camera the peer still calls: it sends silence
/// and a still picture, and says so. Silence goes out as Opus DTX: the
/// frames left out move the next packet's timestamp but not its sequence
/// number, so the receiver sees pauses, not loss (the vendored webrtc's
/// DTX-gap patch), and conceals nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_devices_silence_goes_out_as_dtx_and_the_receiver_sees_no_loss() {
    let missing = without_devices(15);
    let receiver = loopback(VideoSource::None, AudioSource::None);
    let pair = connect(missing, receiver).await;
    let (tx, rx, t0) = (&pair.offerer, &pair.answerer, pair.t0);

    wait_until("six seconds of silence and pictures", t0, || {
        let s = tx.stats();
        s.audio_frames_dtx >= 250 && rx.stats().video_frames_decoded >= 60
    })
    .await;
    let (stx, srx) = (tx.stats(), rx.stats());
    eprintln!("sender {stx:?}\nreceiver {srx:?}");
    // Both devices were reported missing, with what is sent instead.
    let devices: Vec<(DeviceKind, bool, String)> = pair
        .offerer_log
        .lock()
        .expect("log")
        .iter()
        .filter_map(|(_, e)| match e {
            PeerEvent::Device {
                kind,
                working,
                detail,
            } => Some((*kind, *working, detail.clone())),
            _ => None,
        })
        .collect();
    let said = |kind: DeviceKind, words: &str| {
        devices
            .iter()
            .any(|(k, working, d)| *k == kind && !working && d.contains(words))
    };
    assert!(
        said(DeviceKind::Microphone, "no microphone called")
            && said(DeviceKind::Microphone, "silence"),
        "{devices:?}"
    );
    assert!(
        said(DeviceKind::Camera, "/dev/no-such-camera")
            && said(DeviceKind::Camera, "still picture"),
        "{devices:?}"
    );
    // DTX: a comfort-noise update every 400 ms and the DTX frame after it
    // go out, one frame in ten (plus the encoder's first few frames).
    assert!(
        stx.audio_packets_sent * 5 < stx.audio_frames_dtx,
        "DTX leaves most silent frames out: {stx:?}"
    );
    assert!(srx.audio_packets_received > 5, "{srx:?}");
    // Pauses are not losses: nothing lost, nothing rebuilt, and at most a
    // frame or two concealed (a DTX marker later than the playout delay on
    // a busy machine); without the DTX handling every paused frame would
    // be concealed (hundreds).
    assert_eq!(srx.packets_lost, 0, "{srx:?}");
    assert!(srx.audio_frames_concealed <= 3, "{srx:?}");
    assert_eq!(srx.audio_frames_recovered, 0, "{srx:?}");
    tx.close().await;
    rx.close().await;
}

/// Devices switched during the call through the tap: the running tasks
/// reopen what was chosen, keep the stream's size, and report it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_switch_during_the_call() {
    let (tap_a, tap_b) = (MediaTap::new(), MediaTap::new());
    let a = PeerOptions {
        tap: Some(tap_a.clone()),
        ..without_devices(30)
    };
    let b = PeerOptions {
        tap: Some(tap_b.clone()),
        ..loopback(VideoSource::None, AudioSource::None)
    };
    let pair = connect(a, b).await;
    let t0 = pair.t0;
    let luma_spread = |f: &VideoFrame| {
        let y = &f.i420[..(f.width * f.height) as usize];
        y.iter().max().copied().unwrap_or(0) - y.iter().min().copied().unwrap_or(0)
    };
    // The still picture first: flat.
    wait_until("the placeholder arrives", t0, || {
        tap_b.latest_remote().is_some_and(|(n, _)| n > 5)
    })
    .await;
    let (_, still) = tap_b.latest_remote().expect("picture");
    assert!(luma_spread(&still) < 5, "a flat still picture");

    // Switch to the test pattern (a size the call does not send is ignored)
    // and to the tone.
    tap_a.switch_camera(VideoSource::Synthetic {
        width: 64,
        height: 64,
        fps: 5,
    });
    tap_a.switch_microphone(AudioSource::Tone { hz: 440.0 });
    wait_until("the pattern arrives", t0, || {
        tap_b
            .latest_remote()
            .is_some_and(|(_, f)| luma_spread(&f) > 100 && (f.width, f.height) == (320, 240))
    })
    .await;
    // Silence went out as DTX (a few packets a second); the tone goes out
    // as a packet every 20 ms.
    let (sent, dtx) = {
        let s = pair.offerer.stats();
        (s.audio_packets_sent, s.audio_frames_dtx)
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let s = pair.offerer.stats();
    assert!(
        s.audio_packets_sent >= sent + 35 && s.audio_frames_dtx <= dtx + 2,
        "the tone is sent, not DTX silence: {sent}/{dtx} then {s:?}"
    );

    // A speaker that is not there: the switch is tried and reported.
    tap_b.switch_speaker(telenode::peer::AudioOutput::Speaker {
        device: Some("no such speaker".to_owned()),
    });
    wait_until("the speaker switch is reported", t0, || {
        pair.answerer_log.lock().expect("log").iter().any(|(_, e)| {
            matches!(e, PeerEvent::Device { kind: DeviceKind::Speaker, working: false, detail }
                if detail.contains("no speaker called"))
        })
    })
    .await;
    pair.offerer.close().await;
    pair.answerer.close().await;
}
