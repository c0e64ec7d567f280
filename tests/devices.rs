//! The doctor's real sound devices in a call with a Chromium patient: the
//! microphone (a PulseAudio sine source) reaches the patient's page, and
//! the patient's audio comes out of the speaker (a PulseAudio null sink
//! whose monitor the test records), through cpal, ALSA's pulse plugin,
//! Opus and the playout jitter buffer.

mod common;

use std::time::{Duration, Instant};

use common::Node;
use common::browser::{Chromium, READ_STATS, eval, hang_up, join_as_patient};
use common::process::{HeadlessDoctor, headless_doctor_command};
use common::pulse::{Pulse, rms};
use tokio::process::Command;

fn doctor_command(node: &Node, totp: &str, devices: &[&str]) -> Command {
    let mut args = vec!["--video", "320x240@15"];
    args.extend_from_slice(devices);
    args.extend(["new-consultation", "--auto-admit"]);
    headless_doctor_command(&node.base, "dr-weber", totp, &args)
}

/// Reads doctor events until `done` holds for a stats event (or 40 s);
/// returns the device events and the last stats.
async fn run_until(
    doctor: &mut HeadlessDoctor,
    done: impl Fn(&serde_json::Value) -> bool,
) -> (Vec<serde_json::Value>, serde_json::Value) {
    let mut devices = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(40);
    while Instant::now() < deadline {
        let ev = doctor.next_event().await;
        match ev["event"].as_str() {
            Some("device") => devices.push(ev),
            Some("stats") if done(&ev) => return (devices, ev),
            Some("ended") => panic!("the call ended early: {ev}"),
            _ => {}
        }
    }
    panic!("the call did not get there in 40 s; devices: {devices:?}");
}

fn device<'a>(devices: &'a [serde_json::Value], kind: &str) -> &'a serde_json::Value {
    devices
        .iter()
        .rev()
        .find(|d| d["device"] == kind)
        .unwrap_or_else(|| panic!("no {kind} event in {devices:?}"))
}

async fn end_call(page: &chromiumoxide::Page, doctor: &mut HeadlessDoctor) {
    hang_up(page).await;
    loop {
        if doctor.next_event().await["event"] == "ended" {
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_doctors_microphone_reaches_the_patient_and_the_patient_comes_out_of_the_speaker() {
    let pulse = Pulse::start(660);
    let node = Node::start().await;
    let totp = node.add_doctor("dr-weber", "Dr. Weber");
    let mut command = doctor_command(
        &node,
        &totp,
        &["--microphone", "default", "--speaker", "default"],
    );
    command.env("PULSE_SERVER", pulse.server());
    let mut doctor = HeadlessDoctor::spawn(command);
    let link = doctor.next_event().await;
    let url = link["url"].as_str().expect("url").to_owned();

    let chromium = Chromium::launch().await;
    let page = chromium.page().await;
    join_as_patient(&page, &url, "Erika M.").await;

    let (devices, _) = run_until(&mut doctor, |s| {
        s["audio_frames_decoded"].as_u64() > Some(100)
    })
    .await;
    for kind in ["microphone", "speaker"] {
        let d = device(&devices, kind);
        assert_eq!(d["working"], true, "{d}");
    }

    // The speaker plays the patient's audio (Chromium's fake microphone
    // beeps): record three seconds of it.
    let recording = pulse.record_speaker();
    let s1 = eval(&page, READ_STATS).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let s2 = eval(&page, READ_STATS).await;
    let played = recording.finish();
    let (_, stats) = run_until(&mut doctor, |_| true).await;
    eprintln!(
        "speaker: {} samples, rms {:.0}; browser {s1} then {s2}; doctor {stats}",
        played.len(),
        rms(&played)
    );
    assert!(
        played.len() > 48_000 * 2,
        "the speaker ran for the recording: {} samples",
        played.len()
    );
    assert!(
        rms(&played) > 300.0,
        "the patient's audio comes out of the speaker (rms {:.0})",
        rms(&played)
    );
    // The patient hears the microphone: the page's received audio carries
    // energy (silence would be DTX, with none).
    let energy = |s: &serde_json::Value| s["audio_energy"].as_f64().unwrap_or(0.0);
    assert!(
        energy(&s2) - energy(&s1) > 0.01,
        "the microphone's sine reaches the page: {s1} {s2}"
    );
    // The jitter buffer plays nearly everything it received as it came.
    let decoded = stats["audio_frames_decoded"].as_u64().unwrap_or(0);
    let concealed = stats["audio_frames_concealed"]
        .as_u64()
        .expect("audio_frames_concealed in the stats");
    assert!(
        concealed.saturating_mul(10) < decoded,
        "few frames concealed: {stats}"
    );
    let delay = stats["audio_jitter_delay_ms"].as_u64().unwrap_or(0);
    assert!((40..=400).contains(&delay), "playout delay {delay} ms");

    end_call(&page, &mut doctor).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_devices_the_call_goes_on_and_the_doctor_is_told() {
    let node = Node::start().await;
    let totp = node.add_doctor("dr-weber", "Dr. Weber");
    let mut doctor = HeadlessDoctor::spawn(doctor_command(
        &node,
        &totp,
        &[
            "--microphone",
            "no such microphone",
            "--speaker",
            "no such speaker",
            "--camera",
            "/dev/no-such-camera",
        ],
    ));
    let link = doctor.next_event().await;
    let url = link["url"].as_str().expect("url").to_owned();
    let chromium = Chromium::launch().await;
    let page = chromium.page().await;
    join_as_patient(&page, &url, "Erika M.").await;

    let (devices, stats) = run_until(&mut doctor, |s| {
        s["audio_frames_decoded"].as_u64() > Some(50) && s["audio_frames_dtx"].as_u64() > Some(50)
    })
    .await;
    for (kind, words) in [
        ("microphone", "the other side hears silence"),
        ("speaker", "the other side cannot be heard"),
        ("camera", "the other side sees a still picture"),
    ] {
        let d = device(&devices, kind);
        assert_eq!(d["working"], false, "{d}");
        let detail = d["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(words), "{detail}");
    }
    // The patient still gets pictures (the placeholder) and the call runs.
    let mut s = eval(&page, READ_STATS).await;
    for _ in 0..50 {
        if s["video_frames_decoded"].as_u64() > Some(20) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        s = eval(&page, READ_STATS).await;
    }
    assert!(s["video_frames_decoded"].as_u64() > Some(20), "{s}");
    eprintln!("doctor {stats}; browser {s}");
    end_call(&page, &mut doctor).await;
}
