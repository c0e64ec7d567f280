//! TURN relay throughput: our embedded relay and coturn's `turnserver`
//! under the same `turnutils_uclient` load, in one run.
//!
//! Both servers run as separate processes on loopback, configured alike:
//! TURN REST credentials from one shared secret (coturn:
//! `--use-auth-secret`), relaying to 127.0.0.0/8 allowed, no TLS, no
//! bandwidth or allocation quota in the way (ours: the quotas raised in a
//! config file; coturn has none by default), and **one relay thread each**
//! (`TOKIO_WORKER_THREADS=1` for `telenode serve`, `--relay-threads 1` for
//! coturn). With two CPUs or more, both servers are pinned to one CPU and
//! uclient and the echoing peer to the others (`taskset`): without that,
//! the figures swing with where the scheduler puts the four busy processes.
//! Each load runs against both servers in alternating order,
//! [`Sizes::rounds`] times.
//!
//! Figures, per server and load:
//! - **packets/s**: datagrams relayed for messages that came back to
//!   uclient, two each (client → peer, and the peer's echo back): what got
//!   through, not what was tried. From uclient's per-second counters while
//!   the transfer runs (the staggered start and the wait for stragglers
//!   left out);
//! - **Mbit/s**: the same for payload bytes (`-l` each; ChannelData, UDP
//!   and IP headers not counted);
//! - **loss**: messages sent by uclient that never came back;
//! - **CPU s**: the server process's user + system time
//!   (`/proc/<pid>/stat`) over the whole uclient run, allocations included;
//! - **Mbit/CPU s**: payload relayed (as for Mbit/s: what came back) per
//!   CPU second of the server, over all rounds; the figure the target is
//!   about (ours at least coturn's).
//!
//! Run: `cargo bench --bench turn_throughput`. Under `cargo test` (no
//! `--bench` argument) it is a smoke run with a tiny load that checks both
//! servers relayed and every figure was read. Needs coturn's programs
//! (`apt-get install -y coturn`; `scripts/test-all` installs it).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};

const SECRET: &str = "turn-throughput-bench-secret";
const REALM: &str = "telenode.test";
/// Relay threads of each server (see the module comment).
const THREADS: u32 = 1;
/// The longest one uclient run may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(180);

/// One `turnutils_uclient` load: `clients` allocations over UDP, each
/// sending `messages` ChannelData messages of `length` bytes every
/// `interval_ms` (0: as fast as uclient can, up to 50 per millisecond).
#[derive(Clone, Copy)]
struct Load {
    name: &'static str,
    clients: u32,
    messages: u32,
    length: u32,
    interval_ms: u32,
}

impl Load {
    fn args(&self) -> Vec<String> {
        let mut a = vec!["-u".to_owned(), "bench".to_owned(), "-W".to_owned()];
        a.push(SECRET.to_owned());
        // No RTCP allocations (they would ask for EVEN-PORT pairs).
        a.push("-c".to_owned());
        for (flag, v) in [
            ("-m", self.clients),
            ("-n", self.messages),
            ("-l", self.length),
            ("-z", self.interval_ms),
        ] {
            a.push(flag.to_owned());
            a.push(v.to_string());
        }
        a
    }
}

struct Sizes {
    rounds: usize,
    loads: Vec<Load>,
}

fn sizes(bench: bool) -> Sizes {
    if bench {
        Sizes {
            rounds: 3,
            loads: vec![
                // 20 streams of video-sized packets, 200 a second each:
                // CPU per relayed bit at equal work, far from any limit.
                Load {
                    name: "paced",
                    clients: 20,
                    messages: 2000,
                    length: 1000,
                    interval_ms: 5,
                },
                // 40 streams at 500 packets a second: about the most one
                // uclient sends steadily and without loss.
                Load {
                    name: "heavy",
                    clients: 40,
                    messages: 4000,
                    length: 1000,
                    interval_ms: 2,
                },
                // As fast as one uclient sends (up to 50 messages per client
                // and millisecond, in bursts). The load generator is the
                // limit, and part of the loss is its own: echoes overflow
                // its sockets' receive buffers.
                Load {
                    name: "flood",
                    clients: 10,
                    messages: 15_000,
                    length: 1000,
                    interval_ms: 0,
                },
            ],
        }
    } else {
        Sizes {
            rounds: 1,
            loads: vec![Load {
                name: "smoke",
                clients: 2,
                messages: 50,
                length: 120,
                interval_ms: 5,
            }],
        }
    }
}

fn require(tool: &str) -> anyhow::Result<()> {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()));
    ensure!(
        found,
        "{tool} not found: install coturn (`apt-get install -y coturn`; scripts/test-all installs it)"
    );
    Ok(())
}

/// A port free for both UDP and TCP on 127.0.0.1 (a TURN server listens on
/// both).
fn free_port() -> anyhow::Result<u16> {
    for _ in 0..32 {
        let udp = UdpSocket::bind("127.0.0.1:0")?;
        let port = udp.local_addr()?.port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no port free for both UDP and TCP")
}

/// Clock ticks per second of `/proc/<pid>/stat` times.
fn clock_ticks() -> anyhow::Result<f64> {
    let out = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .context("running getconf CLK_TCK")?;
    let ticks: f64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .context("parsing CLK_TCK")?;
    ensure!(ticks > 0.0, "CLK_TCK is {ticks}");
    Ok(ticks)
}

/// Which CPUs the servers and the load (uclient and the peer) run on:
/// the servers share the last CPU this process may use (one is measured
/// at a time, the other idles), the load gets the others. `None` with a
/// single CPU: nothing is pinned.
struct Pinning {
    server: String,
    load: String,
}

impl Pinning {
    fn detect() -> anyhow::Result<Option<Pinning>> {
        let status = std::fs::read_to_string("/proc/self/status")?;
        let list = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .context("no Cpus_allowed_list in /proc/self/status")?;
        let mut cpus = Vec::new();
        for part in list.trim().split(',') {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            let (a, b): (usize, usize) = (a.parse()?, b.parse()?);
            cpus.extend(a..=b);
        }
        let Some((server, load)) = cpus.split_last().filter(|(_, rest)| !rest.is_empty()) else {
            return Ok(None);
        };
        require("taskset")?;
        let load: Vec<String> = load.iter().map(usize::to_string).collect();
        Ok(Some(Pinning {
            server: server.to_string(),
            load: load.join(","),
        }))
    }
}

/// `program` run on `cpus` (through `taskset`, which execs it: the pid is
/// the program's), or unpinned.
fn command(program: impl AsRef<std::ffi::OsStr>, cpus: Option<&str>) -> Command {
    match cpus {
        Some(cpus) => {
            let mut c = Command::new("taskset");
            c.args(["-c", cpus]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// User + system CPU seconds of a process, all its threads.
fn cpu_seconds(pid: u32, ticks: f64) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name may hold spaces; the fields after it do not.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); utime and stime are fields 14, 15.
    let field = |n: usize| -> anyhow::Result<u64> {
        fields
            .get(n - 3)
            .context("short stat")?
            .parse::<u64>()
            .context("stat field")
    };
    Ok((field(14)? + field(15)?) as f64 / ticks)
}

/// A child process killed when dropped (also on error or panic).
struct Proc {
    name: &'static str,
    child: Child,
    log: std::path::PathBuf,
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails, with the end of its log, if it has exited.
    fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited ({status}); its log ends:\n{}",
                self.name,
                self.log_tail()
            );
        }
        Ok(())
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(name: &'static str, cmd: &mut Command, log: &Path) -> anyhow::Result<Proc> {
    let out = std::fs::File::create(log)?;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    Ok(Proc {
        name,
        child,
        log: log.to_owned(),
    })
}

/// Waits until `check` answers on a fresh UDP socket, while `proc` runs.
fn wait_udp(
    proc: &mut Proc,
    to: SocketAddr,
    request: &[u8],
    check: impl Fn(&[u8]) -> bool,
) -> anyhow::Result<()> {
    let sock = UdpSocket::bind("127.0.0.1:0")?;
    sock.set_read_timeout(Some(Duration::from_millis(100)))?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 2048];
    loop {
        proc.check_alive()?;
        let _ = sock.send_to(request, to);
        if let Ok((n, from)) = sock.recv_from(&mut buf)
            && from == to
            && check(&buf[..n])
        {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{} does not answer on {to}; its log ends:\n{}",
            proc.name,
            proc.log_tail()
        );
    }
}

/// A STUN Binding request (RFC 8489 §5) and a check for its success
/// response: proof that a server's UDP listener is up.
fn wait_stun(proc: &mut Proc, to: SocketAddr) -> anyhow::Result<()> {
    let mut req = [0u8; 20];
    req[..2].copy_from_slice(&0x0001u16.to_be_bytes());
    req[4..8].copy_from_slice(&0x2112_a442u32.to_be_bytes());
    req[8..20].copy_from_slice(b"turn-bench-1");
    let txid = req[8..20].to_vec();
    wait_udp(proc, to, &req, |r| {
        r.len() >= 20 && r[..2] == [0x01, 0x01] && r[8..20] == txid[..]
    })
}

/// `turnutils_peer`, a UDP echo, on 127.0.0.1.
fn start_peer(dir: &Path, cpus: Option<&str>) -> anyhow::Result<(Proc, u16)> {
    let port = free_port()?;
    let mut peer = spawn(
        "turnutils_peer",
        command("turnutils_peer", cpus).args(["-L", "127.0.0.1", "-p", &port.to_string()]),
        &dir.join("peer.log"),
    )?;
    let ping = b"turn-bench-ping";
    wait_udp(&mut peer, ([127, 0, 0, 1], port).into(), ping, |r| {
        r == ping
    })?;
    Ok((peer, port))
}

/// `telenode serve` with the embedded relay on `port`, one tokio worker.
fn start_ours(dir: &Path, port: u16, cpus: Option<&str>) -> anyhow::Result<Proc> {
    let data = dir.join("node");
    std::fs::create_dir_all(&data)?;
    let secret = dir.join("node-turn.secret");
    write_private(&secret, &format!("{SECRET}\n"))?;
    // Quotas have no flags; a config file lifts them, as coturn's defaults
    // have none (no bandwidth cap, no allocation quota). uclient leaves its
    // allocations to expire, so they add up over the runs.
    let config = dir.join("node.toml");
    std::fs::write(
        &config,
        format!(
            "turn_realm = \"{REALM}\"\n\
             turn_bandwidth_per_allocation = 0\n\
             turn_max_allocations = 10000\n\
             turn_max_allocations_per_user = 10000\n"
        ),
    )?;
    let listen = free_port()?;
    let admin = free_port()?;
    let mut node = spawn(
        "telenode serve",
        command(env!("CARGO_BIN_EXE_telenode"), cpus)
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .args(["--listen", &format!("127.0.0.1:{listen}")])
            .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
            .arg("--data-dir")
            .arg(&data)
            .args(["--turn-listen", &format!("127.0.0.1:{port}")])
            .arg("--turn-secret-file")
            .arg(&secret)
            .args(["--turn-allow-peer", "127.0.0.0/8"])
            .env("TOKIO_WORKER_THREADS", THREADS.to_string())
            .env("RUST_LOG", "info"),
        &dir.join("node.log"),
    )?;
    wait_stun(&mut node, ([127, 0, 0, 1], port).into())?;
    Ok(node)
}

/// coturn's `turnserver` configured like ours, writing only into `dir`.
fn start_coturn(dir: &Path, port: u16, cpus: Option<&str>) -> anyhow::Result<Proc> {
    let state = dir.join("coturn");
    std::fs::create_dir_all(&state)?;
    let mut coturn = spawn(
        "turnserver",
        command("turnserver", cpus)
            // No configuration file: everything is on this command line.
            .arg("-n")
            .args(["--listening-ip", "127.0.0.1", "--relay-ip", "127.0.0.1"])
            .args(["--listening-port", &port.to_string()])
            .args(["--use-auth-secret", "--static-auth-secret", SECRET])
            .args(["--realm", REALM])
            .arg("--allow-loopback-peers")
            .args(["--no-tls", "--no-dtls", "--no-cli", "--no-rfc5780"])
            .args(["--relay-threads", &THREADS.to_string()])
            .arg("--userdb")
            .arg(state.join("turndb"))
            .arg("--pidfile")
            .arg(state.join("turnserver.pid"))
            .args(["--log-file", "stdout", "--simple-log"]),
        &dir.join("coturn.log"),
    )?;
    wait_stun(&mut coturn, ([127, 0, 0, 1], port).into())?;
    Ok(coturn)
}

/// Writes a file only its owner may read (the node refuses other modes).
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// uclient's cumulative counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Counters {
    sent: u64,
    received: u64,
    sent_bytes: u64,
    received_bytes: u64,
}

impl Counters {
    /// Datagrams relayed for messages that made the round trip: each
    /// crossed the relay twice (to the peer, and its echo back).
    fn packets(&self) -> u64 {
        2 * self.received
    }

    /// Their payload bytes.
    fn bytes(&self) -> u64 {
        2 * self.received_bytes
    }
}

/// The number after `key` in `line` (`key=12`, `key ~ 12`).
fn field(line: &str, key: &str) -> Option<u64> {
    let i = line.find(key)?;
    line[i + key.len()..]
        .trim_start_matches([' ', '=', '~'])
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// What one uclient run against one server measured.
#[derive(Clone, Copy, Debug)]
struct Measured {
    totals: Counters,
    /// Relayed packets and payload bytes per second while transferring.
    packets_per_s: f64,
    bytes_per_s: f64,
    cpu_s: f64,
}

/// Rates from uclient's once-a-second counter lines: between the first and
/// the last line taken while data flowed (neither idle nor complete); when
/// those do not span a second with data coming back (a tiny load), from
/// the last idle line to the end of the run.
fn rates(
    samples: &[(Instant, Counters)],
    totals: Counters,
    started: Instant,
    ended: Instant,
) -> (f64, f64) {
    let flowing: Vec<&(Instant, Counters)> = samples
        .iter()
        .filter(|(_, c)| c.sent > 0 && c.received < totals.received)
        .collect();
    if let (Some((t0, c0)), Some((t1, c1))) = (flowing.first(), flowing.last()) {
        let secs = t1.duration_since(*t0).as_secs_f64();
        if secs >= 1.0 && c1.received > c0.received {
            return (
                (c1.packets() - c0.packets()) as f64 / secs,
                (c1.bytes() - c0.bytes()) as f64 / secs,
            );
        }
    }
    let from = samples
        .iter()
        .filter(|(_, c)| c.sent == 0)
        .map(|(t, _)| *t)
        .next_back()
        .unwrap_or(started);
    let secs = ended.duration_since(from).as_secs_f64().max(1e-3);
    (totals.packets() as f64 / secs, totals.bytes() as f64 / secs)
}

/// A server under test: its process and UDP port.
struct Server {
    proc: Proc,
    port: u16,
}

/// What every run shares.
struct Rig {
    ticks: f64,
    peer_port: u16,
    /// CPUs of uclient (and the peer), if pinned.
    load_cpus: Option<String>,
}

/// Runs `load` against `server`, reading its CPU time around the run.
fn run(rig: &Rig, server: &mut Server, load: &Load) -> anyhow::Result<Measured> {
    let (ticks, port) = (rig.ticks, server.port);
    let server = &mut server.proc;
    server.check_alive()?;
    let mut cmd = command("turnutils_uclient", rig.load_cpus.as_deref());
    cmd.args(load.args())
        .args(["-e", "127.0.0.1", "-r", &rig.peer_port.to_string()])
        .args(["-p", &port.to_string()])
        .arg("127.0.0.1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let cpu_before = cpu_seconds(server.pid(), ticks)?;
    let started = Instant::now();
    let mut client = cmd.spawn().context("starting turnutils_uclient")?;
    let stdout = client.stdout.take().context("uclient stdout")?;
    let (tx, rx) = mpsc::channel();
    // Lines are timestamped as they arrive (uclient flushes each one).
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    let deadline = started + RUN_TIMEOUT;
    let mut output = String::new();
    let mut samples = Vec::new();
    let mut totals = Counters::default();
    let mut ended = None;
    loop {
        let wait = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok((at, line)) => {
                if line.contains("msz=")
                    && let (Some(sent), Some(received), Some(sent_bytes), Some(received_bytes)) = (
                        field(&line, "tot_send_msgs"),
                        field(&line, "tot_recv_msgs"),
                        field(&line, "tot_send_bytes"),
                        field(&line, "tot_recv_bytes"),
                    )
                {
                    samples.push((
                        at,
                        Counters {
                            sent,
                            received,
                            sent_bytes,
                            received_bytes,
                        },
                    ));
                } else if let (Some(s), Some(r)) =
                    (field(&line, "tot_send_msgs"), field(&line, "tot_recv_msgs"))
                {
                    totals.sent = s;
                    totals.received = r;
                    ended = Some(at);
                } else if let (Some(s), Some(r)) = (
                    field(&line, "tot_send_bytes"),
                    field(&line, "tot_recv_bytes"),
                ) {
                    totals.sent_bytes = s;
                    totals.received_bytes = r;
                }
                output.push_str(&line);
                output.push('\n');
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = client.kill();
                let _ = client.wait();
                bail!(
                    "turnutils_uclient against {} did not finish in {RUN_TIMEOUT:?}",
                    server.name
                );
            }
        }
    }
    let status = client.wait()?;
    let cpu_s = cpu_seconds(server.pid(), ticks)? - cpu_before;
    let _ = reader.join();
    server.check_alive()?;
    let Some(ended) = ended else {
        bail!(
            "no totals from turnutils_uclient against {} ({status}):\n{output}",
            server.name
        );
    };
    ensure!(
        status.success() && totals.sent > 0 && totals.received > 0,
        "turnutils_uclient against {} relayed nothing ({status}):\n{output}",
        server.name
    );
    let (packets_per_s, bytes_per_s) = rates(&samples, totals, started, ended);
    Ok(Measured {
        totals,
        packets_per_s,
        bytes_per_s,
        cpu_s,
    })
}

/// All runs of one server under one load, summed up.
#[derive(Default)]
struct Summary {
    runs: Vec<Measured>,
}

impl Summary {
    fn median(&self, f: impl Fn(&Measured) -> f64) -> f64 {
        let mut v: Vec<f64> = self.runs.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    }

    fn sum(&self, f: impl Fn(&Measured) -> f64) -> f64 {
        self.runs.iter().map(f).sum()
    }

    fn loss_percent(&self) -> f64 {
        let sent = self.sum(|m| m.totals.sent as f64);
        let received = self.sum(|m| m.totals.received as f64);
        100.0 * (sent - received) / sent
    }

    fn cpu_per_run(&self) -> f64 {
        self.sum(|m| m.cpu_s) / self.runs.len() as f64
    }

    /// Payload Mbit relayed per CPU second, over all runs together; `None`
    /// when too little CPU time was used to tell (a tiny load).
    fn mbit_per_cpu_s(&self) -> Option<f64> {
        let cpu = self.sum(|m| m.cpu_s);
        (cpu > 0.0).then(|| self.sum(|m| m.totals.bytes() as f64 * 8e-6) / cpu)
    }

    fn row(&self, server: &str) {
        println!(
            "{server:<10} {:>11.0} {:>9.1} {:>7.2} {:>10.2} {:>12}",
            self.median(|m| m.packets_per_s),
            self.median(|m| m.bytes_per_s * 8e-6),
            self.loss_percent(),
            self.cpu_per_run(),
            self.mbit_per_cpu_s()
                .map_or_else(|| "n/a".to_owned(), |v| format!("{v:.1}")),
        );
    }
}

fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    // `cargo bench` passes `--bench`; anything else is a smoke run.
    let bench = std::env::args().any(|a| a == "--bench");
    for tool in ["turnserver", "turnutils_uclient", "turnutils_peer"] {
        require(tool)?;
    }
    let sizes = sizes(bench);
    let pin = Pinning::detect()?;
    let (server_cpus, load_cpus) = match &pin {
        Some(p) => (Some(p.server.as_str()), Some(p.load.clone())),
        None => (None, None),
    };
    let dir = tempfile::tempdir()?;
    let (_peer, peer_port) = start_peer(dir.path(), load_cpus.as_deref())?;
    let rig = Rig {
        ticks: clock_ticks()?,
        peer_port,
        load_cpus,
    };
    let port = free_port()?;
    let mut ours = Server {
        proc: start_ours(dir.path(), port, server_cpus)?,
        port,
    };
    let port = free_port()?;
    let mut coturn = Server {
        proc: start_coturn(dir.path(), port, server_cpus)?,
        port,
    };

    println!(
        "TURN over UDP on loopback: turnutils_uclient -> relay -> turnutils_peer (echo) -> relay \
         -> uclient; one relay thread per server; {} round(s) per load, order alternating",
        sizes.rounds
    );
    match &pin {
        Some(p) => println!(
            "servers pinned to CPU {}, uclient and peer to CPU {}",
            p.server, p.load
        ),
        None => println!("one CPU: nothing pinned"),
    }
    if !bench {
        println!("smoke run: a tiny load, checking that every figure is read, not the speed");
    }
    let mut ok = true;
    let mut missed = Vec::new();
    for load in &sizes.loads {
        let (mut ours_sum, mut coturn_sum) = (Summary::default(), Summary::default());
        for round in 0..sizes.rounds {
            // Alternate the order so that drift hits both alike.
            if round % 2 == 0 {
                ours_sum.runs.push(run(&rig, &mut ours, load)?);
                coturn_sum.runs.push(run(&rig, &mut coturn, load)?);
            } else {
                coturn_sum.runs.push(run(&rig, &mut coturn, load)?);
                ours_sum.runs.push(run(&rig, &mut ours, load)?);
            }
        }
        println!();
        println!(
            "load {:?}: turnutils_uclient {} (plus -e/-r peer, -p port)",
            load.name,
            load.args()
                .iter()
                .map(|a| if a == SECRET { "<secret>" } else { a.as_str() })
                .collect::<Vec<_>>()
                .join(" ")
        );
        println!(
            "{:<10} {:>11} {:>9} {:>7} {:>10} {:>12}",
            "server", "packets/s", "Mbit/s", "loss %", "CPU s/run", "Mbit/CPU s"
        );
        ours_sum.row("telenode");
        coturn_sum.row("coturn");
        match (ours_sum.mbit_per_cpu_s(), coturn_sum.mbit_per_cpu_s()) {
            (Some(a), Some(b)) => {
                let ratio = a / b;
                let verdict = match (bench, ratio >= 1.0) {
                    (false, _) => "not judged in a smoke run",
                    (true, true) => "met",
                    (true, false) => "MISSED",
                };
                println!(
                    "throughput per CPU second, telenode / coturn: {ratio:.2} (target >= 1.00: {verdict})"
                );
                if bench && ratio < 1.0 {
                    missed.push(load.name);
                }
            }
            // Only a smoke run's tiny load may end here.
            _ => {
                println!("throughput per CPU second: too little CPU time to compare");
                ok &= !bench;
            }
        }
        if !bench {
            // The smoke run checks the measurement, not the speed.
            for (name, s) in [("telenode", &ours_sum), ("coturn", &coturn_sum)] {
                for m in &s.runs {
                    ensure!(
                        m.totals.received * 10 >= m.totals.sent * 9,
                        "{name}: {} of {} messages came back",
                        m.totals.received,
                        m.totals.sent
                    );
                    ensure!(
                        m.packets_per_s > 0.0 && m.bytes_per_s > 0.0 && m.cpu_s >= 0.0,
                        "{name}: figures not read"
                    );
                }
            }
        }
    }
    ensure!(ok, "a server used no measurable CPU time");
    ensure!(
        missed.is_empty(),
        "throughput per CPU second below coturn's for: {}",
        missed.join(", ")
    );
    Ok(())
}
