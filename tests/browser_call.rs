//! The patient in headless Chromium (fake camera and microphone) goes through
//! the page's own controls and is admitted by `telenode doctor --headless`;
//! both sides decode the other's audio and video and show the same SAS.

mod common;

use std::time::{Duration, Instant};

use common::Node;
use common::browser::{Chromium, READ_STATS, eval, hang_up, join_as_patient, page_sas, wait_true};
use common::process::{HeadlessDoctor, headless_doctor_command};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_patient_and_headless_doctor_see_and_hear_each_other() {
    let node = Node::start().await;
    let totp = node.add_doctor("dr-weber", "Dr. Weber");

    let mut doctor = HeadlessDoctor::spawn(headless_doctor_command(
        &node.base,
        "dr-weber",
        &totp,
        &["--video", "320x240@30", "new-consultation", "--auto-admit"],
    ));
    let link = doctor.next_event().await;
    assert_eq!(link["event"], "link");
    let url = link["url"].as_str().expect("url").to_owned();

    let chromium = Chromium::launch().await;
    let page = chromium.page().await;
    let opened = Instant::now();
    join_as_patient(&page, &url, "Erika M.").await;

    // The doctor sees the patient and the name they typed, admits, connects.
    let mut knock_name = None;
    let mut doctor_sas = None;
    let mut doctor_stats = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(40);
    while Instant::now() < deadline {
        let ev = doctor.next_event().await;
        match ev["event"].as_str() {
            Some("knock") => knock_name = ev["name"].as_str().map(str::to_owned),
            Some("connected") => doctor_sas = ev["sas"].as_str().map(str::to_owned),
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
    assert_eq!(
        knock_name.as_deref(),
        Some("Erika M."),
        "doctor saw the typed name"
    );
    let doctor_sas = doctor_sas.expect("doctor connected");
    let last = doctor_stats.last().expect("doctor stats");
    assert!(
        last["video_frames_decoded"].as_u64() > Some(60),
        "doctor decodes the browser's video: {doctor_stats:?}"
    );
    // Rising, not a single reading.
    let first = &doctor_stats[0];
    assert!(last["video_frames_decoded"].as_u64() > first["video_frames_decoded"].as_u64());

    // The browser decodes the doctor's video and audio, rising.
    let s1 = eval(&page, READ_STATS).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let s2 = eval(&page, READ_STATS).await;
    eprintln!(
        "browser stats: {s1} then {s2}; page opened {:?} ago",
        opened.elapsed()
    );
    let frames = |s: &serde_json::Value| s["video_frames_decoded"].as_u64().unwrap_or(0);
    let audio = |s: &serde_json::Value| s["audio_packets_received"].as_u64().unwrap_or(0);
    assert!(
        frames(&s2) > frames(&s1) && frames(&s2) > 30,
        "browser framesDecoded rises: {s1} {s2}"
    );
    assert!(
        audio(&s2) > audio(&s1) && audio(&s2) > 50,
        "browser audio rises: {s1} {s2}"
    );
    assert_eq!(s2["pair"], "host");

    // Same short authentication string on both sides.
    let digits = page_sas(&page).await;
    assert_eq!(digits, doctor_sas, "SAS on the page: {digits}");

    // The patient hangs up through the page; the doctor's call ends cleanly.
    hang_up(&page).await;
    loop {
        let ev = doctor.next_event().await;
        if ev["event"] == "ended" {
            assert_eq!(ev["reason"], "peer_hung_up");
            break;
        }
    }
    let status = tokio::time::timeout(Duration::from_secs(10), doctor.child.wait())
        .await
        .expect("doctor exits")
        .expect("wait");
    assert!(status.success(), "doctor exit status {status}");
    assert!(
        wait_true(
            &page,
            "!document.querySelector('#screen-ended').hidden",
            Duration::from_secs(5)
        )
        .await
    );

    // The page made no request to any origin but the node.
    let requests = chromium.requests.lock().expect("lock").clone();
    assert!(!requests.is_empty());
    for r in &requests {
        assert!(
            r.starts_with(&format!("{}/", node.base))
                || r.starts_with("data:")
                || r.starts_with("blob:")
                || r == "about:blank",
            "request to a foreign origin: {r}"
        );
    }
    chromium.close().await;
    node.stop().await;
}
