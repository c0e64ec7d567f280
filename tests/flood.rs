//! A bounded flood on loopback: 5,000 connection attempts in one burst from
//! ten other addresses (127.0.2.x) against `telenode serve` as its own
//! process: connections held open without a word, half-sent requests, page
//! loads with made-up tokens, signalling upgrades and logins. Meanwhile a
//! doctor uses the API and fifty patients, each from their own address, load
//! their page and join their waiting room: every one of them is served, p99
//! under 200 ms, and the node is still up afterwards.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::process::{NodeProcess, admin_add_doctor, free_port};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;

const ATTEMPTS: usize = 5_000;
const FLOOD_SOURCES: u8 = 10;
const PATIENTS: u8 = 50;

/// Lets this process (and the node it starts) hold the flood's sockets:
/// the soft open-file limit raised to the hard one.
fn raise_fd_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut lim = getrlimit(Resource::Nofile);
    lim.current = lim.maximum;
    let _ = setrlimit(Resource::Nofile, lim);
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// A TCP connection to `to` from the loopback address `from`.
async fn connect_from(from: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::V4(from), 0))?;
    socket.connect(to).await
}

/// One flood attempt of kind `i % 5`; never fails the test (refusals and
/// resets are what a flood gets).
async fn attempt(i: usize, node: SocketAddr, hold: Duration) {
    let from = Ipv4Addr::new(127, 0, 2, 1 + (i % usize::from(FLOOD_SOURCES)) as u8);
    let Ok(mut tcp) = connect_from(from, node).await else {
        return;
    };
    let request: &[u8] = match i % 5 {
        // Connect and say nothing.
        0 => b"",
        // Half a request, never finished.
        1 => b"GET /c/AAAA HTTP/1.1\r\nHost: x\r\n",
        2 => b"GET /c/bm90LWEtdG9rZW4tYXQtYWxsLWp1c3QtZmxvb2Q HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        3 => b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        _ => b"POST /api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 52\r\nConnection: close\r\n\r\n{\"login\":\"x\",\"password\":\"yyyyyyyyyyyy\",\"code\":\"1\"}  ",
    };
    if tcp.write_all(request).await.is_err() {
        return;
    }
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(hold, async {
        while let Ok(n) = tcp.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

fn p99(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[(samples.len() * 99).div_ceil(100) - 1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_leaves_doctors_and_patients_served() {
    let limit = raise_fd_limit();
    assert!(
        limit >= 2 * ATTEMPTS as u64 + 1024,
        "the open-file limit {limit} is too low for the flood"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let totp = admin_add_doctor(&data, "dr-flood", "Dr. Flood").await;
    let node = NodeProcess::start(&data, free_port().await, free_port().await, &[], "info").await;
    let base = node.base();
    let addr: SocketAddr = node.listen.parse().expect("addr");
    let api = common::login_with_secret(&base, "dr-flood", &totp).await;
    let mut links = Vec::new();
    for _ in 0..PATIENTS {
        links.push(api.new_consultation(None).await.expect("consultation"));
    }

    // The burst: every attempt started at once; held ones stay open 10 s.
    let started = Instant::now();
    let flood: Vec<_> = (0..ATTEMPTS)
        .map(|i| tokio::spawn(attempt(i, addr, Duration::from_secs(10))))
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Legitimate use during the flood.
    let mut samples = Vec::new();
    for (n, link) in links.iter().enumerate() {
        let t = Instant::now();
        api.consultations().await.expect("the doctor is served");
        samples.push(t.elapsed());

        let from = Ipv4Addr::new(127, 0, 3, 1 + n as u8);
        let (_, token, _) = telenode::client::parse_link(&link.url).expect("link");
        let http = reqwest::Client::builder()
            .local_address(IpAddr::V4(from))
            .build()
            .expect("client");
        let t = Instant::now();
        let page = http
            .get(format!("{base}/c/{token}"))
            .send()
            .await
            .expect("the patient page is served");
        assert_eq!(page.status().as_u16(), 200, "patient {n}'s page");
        page.bytes().await.expect("page body");
        samples.push(t.elapsed());

        let t = Instant::now();
        let tcp = connect_from(from, addr).await.expect("patient connects");
        let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/ws"), tcp)
            .await
            .expect("the signalling upgrade is served");
        let hello = serde_json::json!({"v": 1, "type": "hello", "role": "patient", "token": token});
        ws.send(Message::Text(hello.to_string().into()))
            .await
            .expect("hello");
        let welcome = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("an answer in time")
            .expect("an answer")
            .expect("a frame");
        assert!(
            welcome.to_string().contains("\"welcome\""),
            "patient {n} joins: {welcome}"
        );
        samples.push(t.elapsed());
        let _ = ws.close(None).await;
    }
    let during = started.elapsed();
    let worst = *samples.iter().max().expect("samples");
    let p99 = p99(samples.clone());
    eprintln!(
        "flood: {ATTEMPTS} attempts from {FLOOD_SOURCES} addresses; {} legitimate requests in {:.1} s: p99 {:.1} ms, max {:.1} ms",
        samples.len(),
        during.as_secs_f64(),
        p99.as_secs_f64() * 1e3,
        worst.as_secs_f64() * 1e3
    );
    assert!(
        during < Duration::from_secs(10),
        "the legitimate requests ran while the flood held its connections"
    );
    assert!(p99 < Duration::from_millis(200), "p99 {p99:?}");

    for f in flood {
        let _ = f.await;
    }
    // Still up, still answering.
    let health = reqwest::get(format!("{base}/healthz"))
        .await
        .expect("healthz");
    assert_eq!(health.status().as_u16(), 200);
    api.consultations().await.expect("served after the flood");
    let log = node.log();
    assert!(!log.contains("panicked"), "{log}");
}
