//! Calls across networks where the direct path is blocked, built from
//! network namespaces by the test itself (root only):
//!
//! ```text
//!   patient (this test, Chromium)      node (telenode serve)      doctor (telenode doctor --headless)
//!   10.77.1.2  ──── veth ────  10.77.1.1 | 10.77.2.1  ──── veth ────  10.77.2.2
//! ```
//!
//! The node's namespace does not forward, so patient and doctor cannot reach
//! each other at all: only the node's addresses are reachable from both
//! sides, and the call must go through its TURN relay. The second case also
//! drops every UDP datagram the patient sends (a policy route to a
//! blackhole for protocol 17), so the patient has to reach the relay over
//! TCP; the third drops TCP to the relay's plain port as well, so only TURN
//! over TLS (`turns:`, the node's certificate) gets through.
//!
//! Each case re-runs itself under `unshare --net`: the test's own network
//! namespace becomes the patient's, and nothing of the host's network is
//! touched. The node is reached over HTTPS with a certificate from a CA the
//! test makes (the doctor trusts it with `--ca-file`).

mod common;

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::browser::{Chromium, READ_STATS, eval, join_as_patient, wait_true};
use common::process::{EXE, NodeProcess, admin_add_doctor};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// Set in the re-run inside the private namespace.
const INNER: &str = "TELENODE_NETNS_INNER";
const NODE_P: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 1);
const PATIENT: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 2);
const NODE_D: Ipv4Addr = Ipv4Addr::new(10, 77, 2, 1);
const DOCTOR: Ipv4Addr = Ipv4Addr::new(10, 77, 2, 2);
const TURN_PORT: u16 = 3478;
const TURN_TLS_PORT: u16 = 5349;

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
        Block::Direct,
    );
}

#[test]
fn a_patient_without_udp_reaches_the_relay_over_tcp() {
    isolated(
        "a_patient_without_udp_reaches_the_relay_over_tcp",
        Block::DirectAndPatientUdp,
    );
}

#[test]
fn a_patient_with_only_tls_reaches_the_relay_over_tls() {
    isolated(
        "a_patient_with_only_tls_reaches_the_relay_over_tls",
        Block::DirectUdpAndPlainTurn,
    );
}

/// Runs the scenario in a private network namespace: re-runs this very
/// test under `unshare --net`, where it does the work.
fn isolated(name: &str, block: Block) {
    if std::env::var_os(INNER).is_some() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        return rt.block_on(scenario(block));
    }
    assert!(
        rustix::process::geteuid().is_root(),
        "network-namespace tests need root (CI runs as root)"
    );
    let status = std::process::Command::new("unshare")
        .args(["--net", "--"])
        .arg(std::env::current_exe().expect("test binary"))
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(INNER, "1")
        .status()
        .expect("unshare (util-linux) runs");
    assert!(status.success(), "the isolated run failed: {status}");
}

fn ip(args: &[&str]) {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .expect("ip (iproute2) runs");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The node's and the doctor's namespaces, removed on drop. The patient's
/// is the one this process runs in.
struct Lab {
    node: String,
    doctor: String,
}

impl Lab {
    fn build(block: Block) -> Lab {
        let tag = format!("tn{}", std::process::id());
        let lab = Lab {
            node: format!("{tag}n"),
            doctor: format!("{tag}d"),
        };
        let (n, d) = (lab.node.as_str(), lab.doctor.as_str());
        let (p_if, pn_if, dn_if, d_if) = (
            format!("{tag}p"),
            format!("{tag}pn"),
            format!("{tag}dn"),
            format!("{tag}dd"),
        );
        ip(&["link", "set", "lo", "up"]);
        ip(&["netns", "add", n]);
        ip(&["netns", "add", d]);
        // Patient ↔ node.
        ip(&["link", "add", &p_if, "type", "veth", "peer", "name", &pn_if]);
        ip(&["link", "set", &pn_if, "netns", n]);
        ip(&["addr", "add", &format!("{PATIENT}/24"), "dev", &p_if]);
        ip(&["link", "set", &p_if, "up"]);
        ip(&["route", "add", "default", "via", &NODE_P.to_string()]);
        ip(&["-n", n, "link", "set", "lo", "up"]);
        ip(&[
            "-n",
            n,
            "addr",
            "add",
            &format!("{NODE_P}/24"),
            "dev",
            &pn_if,
        ]);
        ip(&["-n", n, "link", "set", &pn_if, "up"]);
        // Node ↔ doctor.
        ip(&[
            "-n", n, "link", "add", &dn_if, "type", "veth", "peer", "name", &d_if,
        ]);
        ip(&["-n", n, "link", "set", &d_if, "netns", d]);
        ip(&[
            "-n",
            n,
            "addr",
            "add",
            &format!("{NODE_D}/24"),
            "dev",
            &dn_if,
        ]);
        ip(&["-n", n, "link", "set", &dn_if, "up"]);
        ip(&["-n", d, "link", "set", "lo", "up"]);
        ip(&[
            "-n",
            d,
            "addr",
            "add",
            &format!("{DOCTOR}/24"),
            "dev",
            &d_if,
        ]);
        ip(&["-n", d, "link", "set", &d_if, "up"]);
        ip(&[
            "-n",
            d,
            "route",
            "add",
            "default",
            "via",
            &NODE_D.to_string(),
        ]);
        // A fresh namespace does not forward; say so explicitly anyway.
        ip(&["netns", "exec", n, "sysctl", "-qw", "net.ipv4.ip_forward=0"]);
        if block != Block::Direct {
            // Every UDP datagram not for this host itself goes nowhere.
            ip(&[
                "rule", "add", "ipproto", "udp", "lookup", "7717", "pref", "100",
            ]);
            ip(&["route", "add", "blackhole", "default", "table", "7717"]);
        }
        if block == Block::DirectUdpAndPlainTurn {
            let port = TURN_PORT.to_string();
            ip(&[
                "rule", "add", "ipproto", "tcp", "dport", &port, "lookup", "7717", "pref", "101",
            ]);
        }
        lab
    }

    /// `ip netns exec NS EXE`, to start the binary in a namespace.
    fn exe_in(ns: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, EXE]);
        c
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in [&self.node, &self.doctor] {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", ns])
                .status();
        }
    }
}

/// Whether a TCP connection to `addr` gets any answer (even a refusal)
/// within a second.
async fn answers(addr: (Ipv4Addr, u16)) -> bool {
    match tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => true,
        Ok(Err(e)) => e.kind() == std::io::ErrorKind::ConnectionRefused,
        Err(_) => false,
    }
}

/// A CA and a certificate for the node's patient-side address, as PEM
/// files in `dir`: (ca, cert, key).
fn certificates(dir: &Path) -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().expect("key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("CA");
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().expect("key");
    let cert = CertificateParams::new(vec![NODE_P.to_string()])
        .expect("params")
        .signed_by(&key, &issuer)
        .expect("certificate");
    let write = |name: &str, pem: String| {
        let path = dir.join(name);
        std::fs::write(&path, pem).expect("write");
        path.to_str().expect("utf-8").to_owned()
    };
    (
        write("ca.pem", ca.pem()),
        write("cert.pem", cert.pem()),
        write("key.pem", key.serialize_pem()),
    )
}

async fn scenario(block: Block) {
    let lab = Lab::build(block);
    let node_ns = lab.node.clone();

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
    let (ca, cert, key) = certificates(dir.path());
    let data = dir.path().join("data");
    let totp = admin_add_doctor(&data, "dr-netz", "Dr. Netz").await;
    let listen = format!("{NODE_P}:8443");
    let admin = format!("{NODE_P}:9090");
    let node = NodeProcess::start_with(
        Lab::exe_in(&node_ns),
        &listen,
        &admin,
        |c| {
            c.args(["--tls-cert", &cert, "--tls-key", &key])
                .args(["--turn-listen", &format!("{NODE_P}:{TURN_PORT}")])
                .args(["--turn-tls-listen", &format!("{NODE_P}:{TURN_TLS_PORT}")])
                .args(["--turn-allow-peer", "10.77.0.0/16"])
                .arg("--data-dir")
                .arg(&data);
        },
        "info",
    )
    .await;
    let base = format!("https://{listen}");

    let mut doctor = Lab::exe_in(&lab.doctor)
        .args(["doctor", "--headless", "--node", &base, "--ca-file", &ca])
        .args(["--login", "dr-netz", "--video", "320x240@30"])
        .args(["new-consultation", "--auto-admit"])
        .env("TELENODE_PASSWORD", common::PASSWORD)
        .env("TELENODE_TOTP_SECRET", &totp)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("doctor starts");
    let mut lines = BufReader::new(doctor.stdout.take().expect("stdout")).lines();
    let mut next_event = async || -> serde_json::Value {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("doctor event in time")
            .expect("read")
            .expect("doctor still running");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {line}: {e}"))
    };
    let link = next_event().await;
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
        let ev = next_event().await;
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
    let metrics = reqwest::get(format!("http://{admin}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body");
    let relayed: f64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("telenode_turn_relayed_bytes_total ")?
                .parse()
                .ok()
        })
        .expect("relayed bytes series");
    assert!(relayed > 100_000.0, "relayed {relayed} bytes");

    page.find_element("#btn-hangup")
        .await
        .expect("hang-up")
        .click()
        .await
        .expect("click");
    loop {
        let ev = next_event().await;
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
    let status = tokio::time::timeout(Duration::from_secs(10), doctor.wait())
        .await
        .expect("doctor exits")
        .expect("wait");
    assert!(status.success(), "doctor exit status {status}");
    chromium.close().await;
    drop(node);
    drop(lab);
}
