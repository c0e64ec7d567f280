//! The doctor's network goes away during a call and comes back (the doctor's
//! namespace sends nothing anywhere for a while; see tests/common/netns.rs):
//! the doctor's client restores the media without the patient doing
//! anything, within 5 s of the network's return.
//!
//! Two outages: a short one (past ICE's "disconnected" at 3 s, before its
//! "failed"), which an ICE restart on the running peer repairs; and a long
//! one (past "failed" at 10 s), after which the client starts a fresh peer
//! (new sockets, new DTLS keys) and the short authentication string the
//! patient sees changes along with the doctor's. Without the client's
//! recovery the long outage ends the call.

mod common;

use std::time::{Duration, Instant};

use common::browser::{Chromium, READ_STATS, eval, hang_up, join_as_patient, page_sas};
use common::netns::{Doctor, Lab, isolated};
use serde_json::Value;

#[test]
fn media_comes_back_after_the_doctors_network_returns() {
    isolated(
        "media_comes_back_after_the_doctors_network_returns",
        scenario,
    );
}

/// Events until one satisfies `pred`, or `None` after `within`.
async fn until(
    doctor: &mut Doctor,
    within: Duration,
    mut pred: impl FnMut(&Value) -> bool,
) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let ev = tokio::time::timeout_at(deadline, doctor.next_event())
            .await
            .ok()?;
        assert_ne!(ev["event"], "ended", "the call ended: {ev}");
        if pred(&ev) {
            return Some(ev);
        }
    }
}

fn frames(v: &Value) -> u64 {
    v["video_frames_decoded"].as_u64().unwrap_or(0)
}

/// Cuts the doctor's network for `outage`, restores it, and returns how
/// long after that the media flowed again both ways, and the doctor's SAS
/// if it reconnected with a new one.
async fn outage(
    lab: &Lab,
    doctor: &mut Doctor,
    page: &chromiumoxide::page::Page,
    outage: Duration,
) -> (Duration, Duration, Option<String>) {
    lab.cut_doctor(true);
    let interrupted = until(doctor, outage, |e| e["event"] == "media_interrupted").await;
    assert!(
        interrupted.is_some(),
        "the doctor noticed the outage within {outage:?}"
    );
    let mut sas = None;
    // The rest of the outage: whatever the doctor reports meanwhile.
    let _ = until(
        doctor,
        outage.saturating_sub(Duration::from_secs(3)),
        |_| false,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    lab.cut_doctor(false);
    let restored = Instant::now();

    // The doctor decodes again: two stats readings in a row that rise.
    let mut prev = None;
    let back = until(doctor, Duration::from_secs(15), |e| {
        if e["event"] == "connected" {
            sas = e["sas"].as_str().map(str::to_owned);
        }
        if e["event"] != "stats" {
            return false;
        }
        let rising = prev.is_some_and(|p| frames(e) > p);
        prev = Some(frames(e));
        rising
    })
    .await;
    let doctor_back = restored.elapsed();
    assert!(back.is_some(), "the doctor's media came back");

    // And so does the patient: the newest peer connection decodes more.
    let mut last = frames(&eval(page, READ_STATS).await);
    let patient_back = loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = frames(&eval(page, READ_STATS).await);
        if now > last && now > 0 {
            break restored.elapsed();
        }
        last = now;
        assert!(
            restored.elapsed() < Duration::from_secs(15),
            "the patient's media came back"
        );
    };
    (doctor_back, patient_back, sas)
}

async fn scenario() {
    let lab = Lab::build();
    let dir = tempfile::tempdir().expect("tempdir");
    let node = lab.start_node(dir.path()).await;
    let mut doctor = lab.start_doctor(&node);
    let link = doctor.next_event().await;
    assert_eq!(link["event"], "link", "{link}");
    let url = link["url"].as_str().expect("url").to_owned();

    let chromium = Chromium::launch_with(&["ignore-certificate-errors"]).await;
    let page = chromium.page().await;
    join_as_patient(&page, &url, "Erika M.").await;
    let flowing = until(&mut doctor, Duration::from_secs(45), |e| {
        e["event"] == "stats" && frames(e) > 60
    })
    .await;
    assert!(flowing.is_some(), "the call runs");

    let (doctor_back, patient_back, _) =
        outage(&lab, &mut doctor, &page, Duration::from_secs(5)).await;
    eprintln!("5 s outage: media back after {doctor_back:?} (doctor), {patient_back:?} (patient)");
    assert!(doctor_back < Duration::from_secs(5), "{doctor_back:?}");
    assert!(patient_back < Duration::from_secs(5), "{patient_back:?}");

    let (doctor_back, patient_back, sas) =
        outage(&lab, &mut doctor, &page, Duration::from_secs(13)).await;
    eprintln!("13 s outage: media back after {doctor_back:?} (doctor), {patient_back:?} (patient)");
    assert!(doctor_back < Duration::from_secs(5), "{doctor_back:?}");
    assert!(patient_back < Duration::from_secs(5), "{patient_back:?}");
    // A fresh peer: new keys, and both sides show the same new code.
    let sas = sas.expect("the doctor reconnected with a fresh peer");
    let digits = page_sas(&page).await;
    assert_eq!(digits, sas, "the page shows the doctor's new code");

    hang_up(&page).await;
    loop {
        let ev = doctor.next_event().await;
        if ev["event"] == "ended" {
            assert_eq!(ev["reason"], "peer_hung_up", "{ev}");
            break;
        }
    }
    chromium.close().await;
    drop(node);
    drop(lab);
}
