//! Operations: the admin listener's health, readiness and Prometheus metrics
//! after a real call, and a graceful SIGTERM during a call whose media keeps
//! flowing peer to peer.

mod common;

use std::time::{Duration, Instant};

use common::process::{NodeProcess, free_port};
use common::{Node, patient_options, wait_end, wait_for};
use telenode::client::{AgentEvent, ApiClient, CallAgent, EndCause, Trust, parse_link, ws_url};
use tokio::process::Command;

const PATIENT_NAME: &str = "Martha Metrik";

async fn get(url: &str) -> (u16, String) {
    let res = reqwest::get(url).await.expect("request");
    let status = res.status().as_u16();
    (status, res.text().await.expect("body"))
}

/// Parses Prometheus text format 0.0.4: every sample line is
/// `name{labels} value`, every family announced by HELP and TYPE.
fn parse_prometheus(text: &str) -> Vec<(String, f64)> {
    let mut samples = Vec::new();
    let mut typed = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let name = parts.next().expect("family name");
            let kind = parts.next().expect("family type");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "bad type line: {line}"
            );
            typed.insert(name.to_owned());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample has a value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        let name = series.split('{').next().expect("name");
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name: {line}"
        );
        if let Some(labels) = series.strip_prefix(name)
            && !labels.is_empty()
        {
            assert!(
                labels.starts_with('{') && labels.ends_with('}'),
                "bad labels: {line}"
            );
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| typed.contains(*f)))
            .unwrap_or(name);
        assert!(typed.contains(family), "sample without TYPE: {line}");
        samples.push((series.to_owned(), value));
    }
    samples
}

fn value(samples: &[(String, f64)], series: &str) -> f64 {
    samples
        .iter()
        .find(|(s, _)| s == series)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("no series {series}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_after_a_call_and_hold_no_personal_data() {
    let node = Node::start().await;
    let admin = format!(
        "http://{}",
        node.running.as_ref().expect("running").admin_addr
    );
    assert_eq!(get(&format!("{admin}/healthz")).await, (200, "ok".into()));
    assert_eq!(get(&format!("{admin}/readyz")).await.0, 200);
    let (_, before) = get(&format!("{admin}/metrics")).await;
    let before = parse_prometheus(&before);
    assert_eq!(
        value(&before, "telenode_calls_connected_total{path=\"direct\"}"),
        0.0
    );

    node.add_doctor("dr-metrik", "Dr. Metrik");
    let api = node.login("dr-metrik").await;
    assert!(
        ApiClient::login(
            &Trust::default(),
            &node.base,
            "dr-metrik",
            "wrong password!!",
            "000000"
        )
        .await
        .is_err()
    );
    let link = api.new_consultation(None).await.expect("consultation");
    let (_, token, key) = parse_link(&link.url).expect("link");
    let mut d_opts = common::doctor_options(&api, &link);
    d_opts.auto_admit = true;
    d_opts.call_duration = Some(Duration::from_secs(1));
    let (doctor, mut d_events) = CallAgent::start(d_opts).await.expect("doctor");
    let p_opts = patient_options(node.ws_url(), token.clone(), Some(PATIENT_NAME), key);
    let (patient, mut p_events) = CallAgent::start(p_opts).await.expect("patient");
    assert_eq!(
        wait_end(&mut d_events, Duration::from_secs(25)).await,
        Some(EndCause::Completed)
    );
    wait_end(&mut p_events, Duration::from_secs(5)).await;
    doctor.join().await;
    patient.join().await;

    let (status, text) = get(&format!("{admin}/metrics")).await;
    assert_eq!(status, 200);
    let after = parse_prometheus(&text);
    assert_eq!(
        value(&after, "telenode_calls_connected_total{path=\"direct\"}"),
        1.0,
        "{text}"
    );
    assert_eq!(value(&after, "telenode_consultations_created_total"), 1.0);
    assert_eq!(value(&after, "telenode_logins_total{result=\"ok\"}"), 1.0);
    assert_eq!(
        value(&after, "telenode_logins_total{result=\"failed\"}"),
        1.0
    );
    assert!(value(&after, "telenode_store_operation_seconds_count") >= 3.0);
    assert_eq!(
        value(&after, "telenode_consultations{state=\"in_call\"}"),
        0.0
    );

    for (what, needle) in [
        ("token", token.as_str()),
        ("consultation id", link.consultation.id.as_str()),
        ("patient name", PATIENT_NAME),
        ("doctor login", "dr-metrik"),
        ("doctor name", "Dr. Metrik"),
        ("address", "127.0.0.1"),
    ] {
        assert!(!text.contains(needle), "metrics contain a {what}:\n{text}");
    }
    // The public listener does not serve the operations endpoints.
    assert_eq!(get(&format!("{}/metrics", node.base)).await.0, 404);
    node.stop().await;
}

/// The newest decoded-frame count among the events queued so far; fails if
/// the agent ended.
fn latest_frames(events: &mut tokio::sync::mpsc::UnboundedReceiver<AgentEvent>) -> u64 {
    let mut last = 0;
    while let Ok(ev) = events.try_recv() {
        match ev {
            AgentEvent::Stats(s) => last = s.video_frames_decoded,
            AgentEvent::Ended(c) => panic!("the call ended: {c:?}"),
            _ => {}
        }
    }
    last
}

/// Sends SIGTERM to a child process (through kill(1): no unsafe here).
async fn sigterm(pid: u32) {
    let ok = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await
        .expect("kill runs");
    assert!(ok.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_call_exits_in_time_and_the_media_keeps_flowing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let totp = common::process::admin_add_doctor(&data, "dr-term", "Dr. Term").await;
    let (port, admin_port) = (free_port().await, free_port().await);
    let mut node = NodeProcess::start(&data, port, admin_port, &[], "info").await;
    let base = format!("http://127.0.0.1:{port}");

    let api = common::login_with_secret(&base, "dr-term", &totp).await;
    let link = api.new_consultation(None).await.expect("consultation");
    let (_, token, key) = parse_link(&link.url).expect("link");
    let mut d_opts = common::doctor_options(&api, &link);
    d_opts.auto_admit = true;
    let (doctor, mut d_events) = CallAgent::start(d_opts).await.expect("doctor");
    let p_opts = patient_options(ws_url(&base), token, None, key);
    let (patient, mut p_events) = CallAgent::start(p_opts).await.expect("patient");
    let frames = |e: &AgentEvent| match e {
        AgentEvent::Stats(s) if s.video_frames_decoded > 30 => Some(s.video_frames_decoded),
        _ => None,
    };
    wait_for(&mut d_events, Duration::from_secs(20), frames)
        .await
        .expect("doctor media");
    wait_for(&mut p_events, Duration::from_secs(20), frames)
        .await
        .expect("patient media");

    // SIGTERM: the node must be gone within its shutdown bound.
    let pid = node.child.id().expect("pid");
    let sent = Instant::now();
    sigterm(pid).await;
    let status = tokio::time::timeout(
        telenode::server::SHUTDOWN_GRACE + Duration::from_secs(3),
        node.child.wait(),
    )
    .await
    .expect("node exits within its shutdown bound")
    .expect("wait");
    eprintln!("node exited in {:?} with {status}", sent.elapsed());
    assert!(status.success(), "clean exit: {status}");

    // Signalling is gone, the peer-to-peer media is not.
    let at = |e: &AgentEvent| match e {
        AgentEvent::Stats(s) => Some(s.video_frames_decoded),
        _ => None,
    };
    let d1 = wait_for(&mut d_events, Duration::from_secs(3), at)
        .await
        .expect("doctor stats");
    let p1 = wait_for(&mut p_events, Duration::from_secs(3), at)
        .await
        .expect("patient stats");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let d2 = latest_frames(&mut d_events);
    let p2 = latest_frames(&mut p_events);
    assert!(
        d2 > d1 + 30,
        "doctor still decodes video after the node left: {d1} -> {d2}"
    );
    assert!(
        p2 > p1 + 30,
        "patient still decodes video after the node left: {p1} -> {p2}"
    );

    // The node comes back on the same data: the store is consistent, the
    // agents reconnect their signalling, and the peers hang up normally.
    let mut node = NodeProcess::start(&data, port, admin_port, &[], "info").await;
    let ready = get(&format!("http://127.0.0.1:{admin_port}/readyz")).await;
    assert_eq!(ready.0, 200, "{ready:?}");
    let listed = api
        .consultations()
        .await
        .expect("the session survived the restart");
    assert_eq!(listed.len(), 1);
    assert!(
        ["admitted", "in_call"].contains(&listed[0].state.as_str()),
        "{listed:?}"
    );
    // Both agents reconnect; the patient (whose resume secret died with the
    // old process) is admitted again and the doctor renegotiates with an ICE
    // restart on the running peer.
    wait_for(&mut p_events, Duration::from_secs(15), |e| {
        matches!(e, AgentEvent::Joined { .. }).then_some(())
    })
    .await
    .expect("patient signalling reconnects");
    wait_for(&mut d_events, Duration::from_secs(15), |e| {
        matches!(e, AgentEvent::Connected { .. }).then_some(())
    })
    .await
    .expect("doctor reconnects, re-admits and renegotiates");
    let before = latest_frames(&mut p_events);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = latest_frames(&mut p_events);
    assert!(
        after > before,
        "media still flows after renegotiation: {before} -> {after}"
    );
    doctor.hang_up();
    let d_end = wait_end(&mut d_events, Duration::from_secs(10)).await;
    assert_eq!(d_end, Some(EndCause::Completed));
    let p_end = wait_end(&mut p_events, Duration::from_secs(10)).await;
    assert!(
        matches!(p_end, Some(EndCause::PeerHungUp | EndCause::DoctorEnded)),
        "{p_end:?}"
    );
    doctor.join().await;
    patient.join().await;
    let _ = node.child.start_kill();
}
