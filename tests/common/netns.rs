//! Patient, node and doctor on networks of their own, built from network
//! namespaces by the test itself (root only):
//!
//! ```text
//!   patient (the test, Chromium)       node (telenode serve)      doctor (telenode doctor --headless)
//!   10.77.1.2  ──── veth ────  10.77.1.1 | 10.77.2.1  ──── veth ────  10.77.2.2
//! ```
//!
//! The node's namespace does not forward, so patient and doctor cannot reach
//! each other at all: only the node's addresses are reachable from both
//! sides, and calls go through its TURN relay.
//!
//! A test re-runs itself under `unshare --net` ([`isolated`]): its own
//! network namespace becomes the patient's, and nothing of the host's
//! network is touched. The node is reached over HTTPS with a certificate
//! from a CA the test makes (the doctor trusts it with `--ca-file`).

use std::future::Future;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use tokio::process::Command;

use super::process::{EXE, NodeProcess, admin_add_doctor};

/// Set in the re-run inside the private namespace.
const INNER: &str = "TELENODE_NETNS_INNER";
pub const NODE_P: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 1);
pub const PATIENT: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 2);
pub const NODE_D: Ipv4Addr = Ipv4Addr::new(10, 77, 2, 1);
pub const DOCTOR: Ipv4Addr = Ipv4Addr::new(10, 77, 2, 2);
pub const TURN_PORT: u16 = 3478;
pub const TURN_TLS_PORT: u16 = 5349;
/// The routing table whose only route is a blackhole.
const NOWHERE: &str = "7717";

/// Runs `scenario` in a private network namespace: re-runs the test `name`
/// (this very test) under `unshare --net`, where it does the work.
pub fn isolated<F: Future<Output = ()>>(name: &str, scenario: impl FnOnce() -> F) {
    if std::env::var_os(INNER).is_some() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        return rt.block_on(scenario());
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

pub fn ip(args: &[&str]) {
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
pub struct Lab {
    pub node: String,
    pub doctor: String,
}

impl Lab {
    pub fn build() -> Lab {
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
        for ns in [None, Some(n), Some(d)] {
            let mut args = ns.map_or(Vec::new(), |ns| vec!["-n", ns]);
            args.extend(["route", "add", "blackhole", "default", "table", NOWHERE]);
            ip(&args);
        }
        lab
    }

    /// Drops every UDP datagram the patient sends to another host.
    pub fn block_patient_udp(&self) {
        ip(&[
            "rule", "add", "ipproto", "udp", "lookup", NOWHERE, "pref", "100",
        ]);
    }

    /// Drops the patient's TCP to the relay's plain port.
    pub fn block_patient_plain_turn(&self) {
        let port = TURN_PORT.to_string();
        ip(&[
            "rule", "add", "ipproto", "tcp", "dport", &port, "lookup", NOWHERE, "pref", "101",
        ]);
    }

    /// Cuts (`true`) or restores the doctor's network: while cut,
    /// everything it sends to another host goes nowhere, and so does
    /// everything the node sends to it.
    pub fn cut_doctor(&self, cut: bool) {
        let verb = if cut { "add" } else { "del" };
        let (d, n) = (self.doctor.as_str(), self.node.as_str());
        ip(&["-n", d, "rule", verb, "lookup", NOWHERE, "pref", "50"]);
        let to = format!("{DOCTOR}/32");
        ip(&[
            "-n", n, "rule", verb, "to", &to, "lookup", NOWHERE, "pref", "50",
        ]);
    }

    /// `ip netns exec NS EXE`, to start the binary in a namespace.
    pub fn exe_in(ns: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, EXE]);
        c
    }

    /// Starts the node in its namespace: HTTPS on 10.77.1.1:8443 with a
    /// certificate from the test's CA, TURN on UDP/TCP 3478 and TLS 5349,
    /// the lab's range allowed as peers, operations on 10.77.1.1:9090; and
    /// a doctor account.
    pub async fn start_node(&self, dir: &Path) -> LabNode {
        let (ca, cert, key) = certificates(dir);
        let data = dir.join("data");
        let totp = admin_add_doctor(&data, "dr-netz", "Dr. Netz").await;
        let listen = format!("{NODE_P}:8443");
        let admin = format!("{NODE_P}:9090");
        let process = NodeProcess::start_with(
            Lab::exe_in(&self.node),
            &listen,
            &admin,
            |c| {
                c.args(["--tls-cert", &cert, "--tls-key", &key])
                    .args(["--turn-listen", &format!("{NODE_P}:{TURN_PORT}")])
                    .args(["--turn-tls-listen", &format!("{NODE_P}:{TURN_TLS_PORT}")])
                    .args(["--turn-tls-name", &NODE_P.to_string()])
                    .args(["--turn-allow-peer", "10.77.0.0/16"])
                    .arg("--data-dir")
                    .arg(&data);
            },
            "info",
        )
        .await;
        LabNode {
            process,
            base: format!("https://{listen}"),
            metrics: format!("http://{admin}/metrics"),
            ca,
            totp,
        }
    }

    /// `telenode doctor --headless … new-consultation --auto-admit` in the
    /// doctor's namespace.
    pub fn start_doctor(&self, node: &LabNode) -> Doctor {
        let mut command = Lab::exe_in(&self.doctor);
        command
            .args(["doctor", "--headless", "--node", &node.base])
            .args(["--ca-file", &node.ca])
            .args(["--login", "dr-netz", "--video", "320x240@30"])
            .args(["new-consultation", "--auto-admit"])
            .env("TELENODE_PASSWORD", super::PASSWORD)
            .env("TELENODE_TOTP_SECRET", &node.totp)
            .env("RUST_LOG", "warn,telenode=info");
        Doctor::spawn(command)
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

/// The node running in the lab.
pub struct LabNode {
    pub process: NodeProcess,
    pub base: String,
    pub metrics: String,
    /// The CA file the doctor trusts.
    pub ca: String,
    /// The doctor account's TOTP secret.
    pub totp: String,
}

impl LabNode {
    /// A counter or gauge from the node's `/metrics`.
    pub async fn metric(&self, series: &str) -> f64 {
        super::metric(&super::metrics_at(&self.metrics).await, series)
    }
}

/// The headless doctor and its JSON events.
pub type Doctor = super::process::HeadlessDoctor;

/// Whether a TCP connection to `addr` gets any answer (even a refusal)
/// within a second.
pub async fn answers(addr: (Ipv4Addr, u16)) -> bool {
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
