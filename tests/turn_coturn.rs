//! The embedded TURN relay against coturn's own clients (Debian package
//! `coturn`): `turnutils_uclient` with TURN REST credentials relays through
//! us to a `turnutils_peer` with zero loss when the peer's range is allowed,
//! and is refused when it is not.
//!
//! coturn's tools are a hard requirement: without them these tests fail
//! with a message saying how to install them (`scripts/test-all` does).
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use telenode::turn::{self, TurnConfig, TurnHandle};
use telenode_turn::Quotas;
use tokio::process::{Child, Command};

const SECRET: &str = "coturn-interop-secret";

fn require(tool: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()));
    assert!(
        found,
        "{tool} not found: install coturn's client tools (`apt-get install -y coturn`; \
         scripts/test-all installs it)"
    );
}

/// A child process killed when the guard is dropped (also on panic).
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn relay(allow: &[&str]) -> TurnHandle {
    relay_with_tls(allow, None).await
}

async fn relay_with_tls(allow: &[&str], tls: Option<Arc<rustls::ServerConfig>>) -> TurnHandle {
    let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
    turn::start(TurnConfig {
        listen,
        relay_ip: None,
        secret: SECRET.as_bytes().to_vec(),
        realm: "telenode.test".into(),
        allow_peers: allow.iter().map(|c| c.parse().unwrap()).collect(),
        quotas: Quotas::default(),
        own_addrs: Vec::new(),
        relay_ports: None,
        tls: tls.map(|c| (listen, c)),
    })
    .await
    .unwrap()
}

/// Starts `turnutils_peer` (a UDP echo) on 127.0.0.1; gives its port.
async fn peer() -> (Guard, u16) {
    require("turnutils_peer");
    let port = free_udp_port();
    let child = Command::new("turnutils_peer")
        .args(["-L", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Give it a moment to bind.
    tokio::time::sleep(Duration::from_millis(300)).await;
    (Guard(child), port)
}

struct Run {
    success: bool,
    output: String,
}

/// Runs `turnutils_uclient` against the relay and collects its output.
async fn uclient(server: SocketAddr, peer_port: u16, extra: &[&str]) -> Run {
    require("turnutils_uclient");
    let port = server.port().to_string();
    let peer_port = peer_port.to_string();
    let mut args = vec![
        "-u",
        "doctor",
        "-W",
        SECRET,
        "-e",
        "127.0.0.1",
        "-r",
        &peer_port,
        "-p",
        &port,
        // No RTCP allocations (they would ask for EVEN-PORT pairs).
        "-c",
        "-n",
        "50",
        "-l",
        "120",
        "-m",
        "2",
        "-z",
        "5",
    ];
    args.extend_from_slice(extra);
    args.push("127.0.0.1");
    let child = Command::new("turnutils_uclient")
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("turnutils_uclient did not finish in 60 s")
        .unwrap();
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Run {
        success: out.status.success(),
        output,
    }
}

/// `(sent, received, lost)` from uclient's summary.
fn totals(output: &str) -> (u64, u64, u64) {
    let field = |key: &str| -> u64 {
        output
            .lines()
            .rev()
            .find_map(|l| {
                let i = l.find(key)?;
                l[i + key.len()..]
                    .trim_start_matches([':', '=', ' '])
                    .split(|c: char| !c.is_ascii_digit())
                    .next()?
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no {key:?} in uclient output:\n{output}"))
    };
    (
        field("tot_send_msgs"),
        field("tot_recv_msgs"),
        field("Total lost packets"),
    )
}

async fn relays_with_zero_loss(extra: &[&str]) {
    let relay = relay(&["127.0.0.0/8"]).await;
    let (_peer, peer_port) = peer().await;
    let run = uclient(relay.udp_addr, peer_port, extra).await;
    assert!(run.success, "uclient failed:\n{}", run.output);
    let (sent, received, lost) = totals(&run.output);
    assert_eq!(sent, 100, "{}", run.output);
    assert_eq!(received, sent, "{}", run.output);
    assert_eq!(lost, 0, "{}", run.output);
    relay.shutdown().await;
}

#[tokio::test]
async fn coturn_uclient_udp_channels_zero_loss() {
    relays_with_zero_loss(&[]).await;
}

#[tokio::test]
async fn coturn_uclient_udp_send_indications_zero_loss() {
    relays_with_zero_loss(&["-s"]).await;
}

#[tokio::test]
async fn coturn_uclient_tcp_zero_loss() {
    relays_with_zero_loss(&["-t"]).await;
}

/// TURN over TLS (`turns:`), the node's certificate files, uclient's `-S`.
#[tokio::test]
async fn coturn_uclient_tls_zero_loss() {
    let dir = tempfile::tempdir().unwrap();
    let id = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, id.cert.pem()).unwrap();
    std::fs::write(&key, id.signing_key.serialize_pem()).unwrap();
    let tls = telenode::server::tls::from_files(&cert, &key).unwrap();
    let relay = relay_with_tls(&["127.0.0.0/8"], Some(Arc::new(tls))).await;
    let tls_addr = relay.tls_addr.expect("TLS listener");
    assert_ne!(tls_addr, relay.tcp_addr);
    let (_peer, peer_port) = peer().await;
    let run = uclient(tls_addr, peer_port, &["-t", "-S"]).await;
    assert!(run.success, "uclient failed:\n{}", run.output);
    let (sent, received, lost) = totals(&run.output);
    assert_eq!((sent, received, lost), (100, 100, 0), "{}", run.output);
    // Plain TCP on the TLS port gets nowhere.
    let plain = uclient(tls_addr, peer_port, &["-t"]).await;
    assert!(
        !plain.success || totals(&plain.output).1 == 0,
        "plain TCP relayed on the TLS port:\n{}",
        plain.output
    );
    relay.shutdown().await;
}

/// Without an allow-list entry, relaying to 127.0.0.1 is refused.
#[tokio::test]
async fn coturn_uclient_relay_to_127_0_0_1_refused() {
    let relay = relay(&[]).await;
    let (_peer, peer_port) = peer().await;
    let run = uclient(relay.udp_addr, peer_port, &[]).await;
    assert!(
        run.output.contains("403"),
        "expected a 403 refusal:\n{}",
        run.output
    );
    assert!(
        !run.success || totals(&run.output).1 == 0,
        "nothing may be relayed:\n{}",
        run.output
    );
    relay.shutdown().await;
}
