//! The embedded TURN relay: a thin tokio runtime around the pure
//! `telenode-turn` state machine.
//!
//! One task owns the [`Server`] state machine and the client-facing UDP
//! socket; everything else talks to it over one channel:
//!
//! - each allocation's relay socket has a reader task that receives peer
//!   datagrams into a shared slab (`BytesMut`) after [`FRAME_HEADROOM`]
//!   bytes, so the core frames them for the client in place — no copy, and
//!   no allocation per packet once the slab is warm;
//! - each TCP client has a reader task that cuts the stream into STUN /
//!   ChannelData frames (RFC 8656 §12.5) the same way, and a writer task.
//!
//! Client → peer data is sent by the core task straight from the received
//! buffer with `try_send_to` on the relay socket (UDP: a full socket buffer
//! drops, as the network would).
//!
//! Logging: allocations appear by their opaque id only; no addresses,
//! usernames or credentials at any level.

pub mod ice;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use rand::{Rng, RngCore};
use telenode_turn::stun::{self, FRAME_HEADROOM, FRAME_TAILROOM};
use telenode_turn::{
    AllocId, Cidr, ClientAction, FiveTuple, Now, Output, PeerPolicy, PendingAllocation, Quotas,
    Server, ServerConfig, Transport,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Largest datagram the relay takes from a peer.
const MAX_DATAGRAM: usize = 65_535;
/// Socket buffer size asked of the kernel for the listener and relays.
const SOCKET_BUFFER: usize = 4 << 20;
/// Slab size for relay readers: many datagrams share one allocation.
const SLAB: usize = 256 << 10;
/// Events queued to the core before readers start dropping.
const QUEUE: usize = 4096;
/// Frames queued to one TCP client; beyond, new ones are dropped.
const TCP_QUEUE: usize = 512;
/// Ready inputs the core handles per wake-up, beyond the one that woke it.
const BATCH: usize = 64;
/// TCP and TLS clients at once (each listener).
const MAX_TCP_CLIENTS: usize = 1024;
/// A TLS client that has not finished its handshake by then is dropped.
const TLS_HANDSHAKE: Duration = Duration::from_secs(10);

/// The relay's configuration.
#[derive(Clone)]
pub struct TurnConfig {
    /// UDP and TCP listening address.
    pub listen: SocketAddr,
    /// IP relay sockets bind to and advertise; defaults to the listening
    /// IP, and must be set when that is unspecified (0.0.0.0).
    pub relay_ip: Option<IpAddr>,
    /// TURN REST secret.
    pub secret: Vec<u8>,
    /// REALM.
    pub realm: String,
    /// Peer ranges allowed despite the default deny list.
    pub allow_peers: Vec<Cidr>,
    /// Quotas.
    pub quotas: Quotas,
    /// Other sockets of the node peers must never reach (the HTTPS
    /// listener); the relay's own listeners are added automatically.
    pub own_addrs: Vec<SocketAddr>,
    /// Ports for relay sockets (both included); `None`: any.
    pub relay_ports: Option<std::ops::RangeInclusive<u16>>,
    /// TURN over TLS (`turns:`): where, and with which server
    /// configuration (the node's certificate).
    pub tls: Option<(SocketAddr, Arc<rustls::ServerConfig>)>,
}

impl std::fmt::Debug for TurnConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnConfig")
            .field("listen", &self.listen)
            .field("relay_ip", &self.relay_ip)
            .field("secret", &"***")
            .field("realm", &self.realm)
            .field("allow_peers", &self.allow_peers)
            .field("quotas", &self.quotas)
            .field("own_addrs", &self.own_addrs)
            .field("relay_ports", &self.relay_ports)
            .field("tls", &self.tls.as_ref().map(|(a, _)| a))
            .finish()
    }
}

/// The relay's counters, published by its core task after every event and
/// read by the metrics endpoint. Aggregates only: nothing names an
/// allocation, a user or an address.
#[derive(Debug, Default)]
pub struct TurnMetrics {
    allocations: AtomicU64,
    allocations_created: AtomicU64,
    relayed_packets: AtomicU64,
    relayed_bytes: AtomicU64,
    dropped_packets: AtomicU64,
    /// Peer datagrams a relay socket's reader could not hand to the core
    /// (its queue was full); counted apart from the core's drops.
    queue_dropped: AtomicU64,
    forbidden: AtomicU64,
    unauthorized: AtomicU64,
    over_quota: AtomicU64,
}

/// A copy of [`TurnMetrics`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TurnMetricsSnapshot {
    /// Allocations held now.
    pub allocations: u64,
    /// Allocations created since start.
    pub allocations_created: u64,
    /// Packets relayed, both directions.
    pub relayed_packets: u64,
    /// Payload bytes relayed, both directions.
    pub relayed_bytes: u64,
    /// Packets dropped (no permission or channel, over bandwidth, the
    /// relay's own queue full).
    pub dropped_packets: u64,
    /// Requests refused with 403 (peer policy).
    pub forbidden: u64,
    /// Requests refused with 401 (bad, forged or expired credentials).
    pub unauthorized: u64,
    /// Requests refused with 486 (quota).
    pub over_quota: u64,
}

impl TurnMetrics {
    fn publish(&self, allocations: usize, s: telenode_turn::server::Stats) {
        let r = Ordering::Relaxed;
        self.allocations.store(allocations as u64, r);
        self.allocations_created.store(s.allocations, r);
        self.relayed_packets.store(s.relayed_packets, r);
        self.relayed_bytes.store(s.relayed_bytes, r);
        self.dropped_packets.store(s.dropped_packets, r);
        self.forbidden.store(s.forbidden, r);
        self.unauthorized.store(s.unauthorized, r);
        self.over_quota.store(s.over_quota, r);
    }

    /// The counters now.
    pub fn snapshot(&self) -> TurnMetricsSnapshot {
        let r = Ordering::Relaxed;
        TurnMetricsSnapshot {
            allocations: self.allocations.load(r),
            allocations_created: self.allocations_created.load(r),
            relayed_packets: self.relayed_packets.load(r),
            relayed_bytes: self.relayed_bytes.load(r),
            dropped_packets: self.dropped_packets.load(r) + self.queue_dropped.load(r),
            forbidden: self.forbidden.load(r),
            unauthorized: self.unauthorized.load(r),
            over_quota: self.over_quota.load(r),
        }
    }
}

/// A running relay; dropping it stops it.
#[derive(Debug)]
pub struct TurnHandle {
    /// The bound UDP address.
    pub udp_addr: SocketAddr,
    /// The bound TCP address.
    pub tcp_addr: SocketAddr,
    /// The bound TLS address, if TURN over TLS is on.
    pub tls_addr: Option<SocketAddr>,
    /// The IP relay sockets bind to and advertise.
    pub relay_ip: IpAddr,
    metrics: Arc<TurnMetrics>,
    shutdown: Option<oneshot::Sender<()>>,
    core: JoinHandle<()>,
    acceptors: Vec<JoinHandle<()>>,
}

impl TurnHandle {
    /// The relay's counters (shared, updated live).
    pub fn metrics(&self) -> Arc<TurnMetrics> {
        Arc::clone(&self.metrics)
    }

    /// Stops the relay and waits for its core task.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.acceptors.iter().for_each(JoinHandle::abort);
        let _ = (&mut self.core).await;
    }
}

impl Drop for TurnHandle {
    fn drop(&mut self) {
        self.acceptors.iter().for_each(JoinHandle::abort);
        self.core.abort();
    }
}

enum Event {
    /// A datagram from a peer on a relay socket: payload at
    /// `buf[FRAME_HEADROOM..FRAME_HEADROOM + len]`.
    Peer {
        alloc: AllocId,
        from: SocketAddr,
        buf: BytesMut,
        len: usize,
    },
    TcpOpen {
        five: FiveTuple,
        tx: mpsc::Sender<Bytes>,
    },
    TcpFrame {
        five: FiveTuple,
        frame: BytesMut,
    },
    TcpClosed {
        five: FiveTuple,
    },
}

fn now() -> Now {
    Now {
        instant: Instant::now(),
        unix_secs: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    }
}

fn udp_socket(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let s = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    // Larger buffers absorb bursts; the kernel caps them at rmem_max.
    let _ = s.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = s.set_send_buffer_size(SOCKET_BUFFER);
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    UdpSocket::from_std(s.into())
}

/// Binds UDP and TCP on one port. With port 0 the kernel picks the UDP
/// port, which TCP may already use: then another is tried.
async fn bind_listeners(listen: SocketAddr) -> anyhow::Result<(UdpSocket, TcpListener)> {
    let attempts = if listen.port() == 0 { 16 } else { 1 };
    let mut last = None;
    for _ in 0..attempts {
        let udp = udp_socket(listen).with_context(|| format!("turn: binding UDP {listen}"))?;
        let port = udp.local_addr()?.port();
        match TcpListener::bind(SocketAddr::new(listen.ip(), port)).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last = Some(e),
        }
    }
    Err(anyhow::Error::from(
        last.unwrap_or_else(|| std::io::ErrorKind::AddrInUse.into()),
    ))
    .with_context(|| format!("turn: binding TCP {listen}"))
}

/// Binds the listeners and starts the relay.
pub async fn start(cfg: TurnConfig) -> anyhow::Result<TurnHandle> {
    let relay_ip = match cfg.relay_ip {
        Some(ip) => ip,
        None if cfg.listen.ip().is_unspecified() => anyhow::bail!(
            "turn: listening on {} needs an explicit relay address",
            cfg.listen
        ),
        None => cfg.listen.ip(),
    };
    anyhow::ensure!(
        relay_ip.is_ipv4(),
        "turn: relay address must be IPv4 for now"
    );
    anyhow::ensure!(!cfg.secret.is_empty(), "turn: empty secret");
    let (udp, tcp) = bind_listeners(cfg.listen).await?;
    let udp_addr = udp.local_addr()?;
    let tcp_addr = tcp.local_addr()?;
    let tls = match cfg.tls {
        Some((addr, config)) => {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("turn: binding TLS {addr}"))?;
            Some((listener, tokio_rustls::TlsAcceptor::from(config)))
        }
        None => None,
    };
    let tls_addr = match &tls {
        Some((l, _)) => Some(l.local_addr()?),
        None => None,
    };

    let mut own = cfg.own_addrs;
    own.extend([udp_addr, tcp_addr]);
    own.extend(tls_addr);
    let mut random = [0u8; 44];
    rand::rng().fill_bytes(&mut random);
    let mut scfg = ServerConfig::new(cfg.realm, cfg.secret, random);
    scfg.policy = PeerPolicy::new(cfg.allow_peers, own);
    scfg.quotas = cfg.quotas;

    let (tx, rx) = mpsc::channel(QUEUE);
    let (stop_tx, stop_rx) = oneshot::channel();
    let metrics = Arc::new(TurnMetrics::default());
    let mut acceptors = vec![tokio::spawn(accept_loop(tcp, None, tx.clone()))];
    if let Some((listener, acceptor)) = tls {
        acceptors.push(tokio::spawn(accept_loop(
            listener,
            Some(acceptor),
            tx.clone(),
        )));
    }
    let core = Core {
        server: Server::new(scfg),
        udp: Arc::new(udp),
        udp_addr,
        relay_ip,
        tx,
        relays: HashMap::new(),
        relay_ports: cfg.relay_ports,
        tcp: HashMap::new(),
        out: Vec::with_capacity(1500),
        metrics: Arc::clone(&metrics),
    };
    let task = tokio::spawn(core.run(rx, stop_rx));
    tracing::info!(
        udp = %udp_addr.port(),
        tcp = %tcp_addr.port(),
        tls = ?tls_addr.map(|a| a.port()),
        "TURN relay listening"
    );
    Ok(TurnHandle {
        udp_addr,
        tcp_addr,
        tls_addr,
        relay_ip,
        metrics,
        shutdown: Some(stop_tx),
        core: task,
        acceptors,
    })
}

struct Relay {
    sock: Arc<UdpSocket>,
    reader: JoinHandle<()>,
}

struct Core {
    server: Server,
    udp: Arc<UdpSocket>,
    udp_addr: SocketAddr,
    relay_ip: IpAddr,
    tx: mpsc::Sender<Event>,
    relays: HashMap<AllocId, Relay>,
    relay_ports: Option<std::ops::RangeInclusive<u16>>,
    tcp: HashMap<FiveTuple, mpsc::Sender<Bytes>>,
    out: Vec<u8>,
    metrics: Arc<TurnMetrics>,
}

impl Core {
    async fn run(mut self, mut rx: mpsc::Receiver<Event>, mut stop: oneshot::Receiver<()>) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let udp = Arc::clone(&self.udp);
        // One timer, moved only when the core's next expiry changes.
        let timer = tokio::time::sleep(Duration::from_secs(3600));
        tokio::pin!(timer);
        loop {
            let deadline = self
                .server
                .poll_timeout()
                .map(tokio::time::Instant::from_std)
                .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            if timer.deadline() != deadline {
                timer.as_mut().reset(deadline);
            }
            tokio::select! {
                _ = &mut stop => break,
                r = udp.recv_from(&mut buf) => match r {
                    Ok((n, from)) => self.udp_input(from, &buf[..n]).await,
                    // ICMP errors surface as recv errors on some systems.
                    Err(e) => tracing::debug!(error = %e, "turn: UDP receive"),
                },
                Some(ev) = rx.recv() => self.event(ev).await,
                () = &mut timer => {
                    self.server.handle_timeout(Instant::now());
                }
            }
            // Whatever else is ready already, up to a batch: one wake-up,
            // one timer update and one metrics update for many packets.
            for _ in 0..BATCH {
                let mut progressed = false;
                if let Ok((n, from)) = udp.try_recv_from(&mut buf) {
                    self.udp_input(from, &buf[..n]).await;
                    progressed = true;
                }
                if let Ok(ev) = rx.try_recv() {
                    self.event(ev).await;
                    progressed = true;
                }
                if !progressed {
                    break;
                }
            }
            self.drain_outputs();
            self.metrics
                .publish(self.server.allocation_count(), self.server.stats());
        }
        for (_, r) in self.relays.drain() {
            r.reader.abort();
        }
        self.metrics.publish(0, self.server.stats());
    }

    fn drain_outputs(&mut self) {
        while let Some(o) = self.server.poll_output() {
            match o {
                Output::AllocationClosed(id) => {
                    if let Some(r) = self.relays.remove(&id) {
                        r.reader.abort();
                    }
                    tracing::debug!(alloc = %id, "turn: allocation closed");
                }
            }
        }
    }

    async fn event(&mut self, ev: Event) {
        match ev {
            Event::Peer {
                alloc,
                from,
                mut buf,
                len,
            } => {
                let Some((five, r)) = self.server.handle_peer(now(), alloc, from, &mut buf, len)
                else {
                    return;
                };
                match five.transport {
                    Transport::Udp => {
                        if let Err(e) = self.udp.try_send_to(&buf[r], five.client) {
                            tracing::trace!(error = %e, "turn: send to client dropped");
                        }
                    }
                    Transport::Tcp | Transport::Tls => {
                        buf.truncate(r.end);
                        buf.advance(r.start);
                        self.send_stream(&five, buf.freeze());
                    }
                }
            }
            Event::TcpOpen { five, tx } => {
                self.tcp.insert(five, tx);
            }
            Event::TcpFrame { five, frame } => self.client_input(five, &frame).await,
            Event::TcpClosed { five } => {
                self.tcp.remove(&five);
                self.server.client_closed(&five);
            }
        }
    }

    fn send_stream(&mut self, five: &FiveTuple, bytes: Bytes) {
        if let Some(tx) = self.tcp.get(five) {
            // A client that does not read loses frames rather than holding
            // the relay up.
            let _ = tx.try_send(bytes);
        }
    }

    async fn reply(&mut self, five: FiveTuple) {
        match five.transport {
            Transport::Udp => {
                let _ = self.udp.send_to(&self.out, five.client).await;
            }
            Transport::Tcp | Transport::Tls => {
                let b = Bytes::copy_from_slice(&self.out);
                self.send_stream(&five, b);
            }
        }
    }

    /// A datagram from a client on the UDP listener.
    async fn udp_input(&mut self, from: SocketAddr, input: &[u8]) {
        let five = FiveTuple {
            transport: Transport::Udp,
            client: from,
            server: self.udp_addr,
        };
        self.client_input(five, input).await;
    }

    async fn client_input(&mut self, five: FiveTuple, input: &[u8]) {
        match self.server.handle_client(now(), five, input, &mut self.out) {
            ClientAction::Drop => {}
            ClientAction::Reply => self.reply(five).await,
            ClientAction::Relay { alloc, peer, data } => {
                if let Some(r) = self.relays.get(&alloc)
                    && let Err(e) = r.sock.try_send_to(data, peer)
                {
                    tracing::trace!(alloc = %alloc, error = %e, "turn: send to peer dropped");
                }
            }
            ClientAction::Allocate(p) => self.allocate(p).await,
        }
    }

    async fn allocate(&mut self, p: PendingAllocation) {
        let five = p.five_tuple();
        let bound = bind_relay(self.relay_ip, self.relay_ports.as_ref(), p.even_port());
        let (addr, sock) = match bound {
            Ok((a, s)) => (Some(a), Some(s)),
            Err(e) => {
                tracing::warn!(error = %e, "turn: cannot bind a relay socket");
                (None, None)
            }
        };
        let id = self.server.allocation_bound(now(), p, addr, &mut self.out);
        if let (Some(id), Some(sock)) = (id, sock) {
            let sock = Arc::new(sock);
            let reader = tokio::spawn(relay_reader(
                id,
                Arc::clone(&sock),
                self.tx.clone(),
                Arc::clone(&self.metrics),
            ));
            self.relays.insert(id, Relay { sock, reader });
            tracing::debug!(alloc = %id, "turn: allocation created");
        }
        self.reply(five).await;
    }
}

/// A relay socket on `ip`: in `ports` (the first free one from a random
/// place on) or any port; an even one for EVEN-PORT.
fn bind_relay(
    ip: IpAddr,
    ports: Option<&std::ops::RangeInclusive<u16>>,
    even: bool,
) -> std::io::Result<(SocketAddr, UdpSocket)> {
    let bind = |port| udp_socket(SocketAddr::new(ip, port)).and_then(|s| Ok((s.local_addr()?, s)));
    let Some(range) = ports else {
        let mut bound = bind(0);
        // EVEN-PORT: retry until the kernel hands out an even port.
        for _ in 0..32 {
            match &bound {
                Ok((a, _)) if even && a.port() % 2 == 1 => bound = bind(0),
                _ => break,
            }
        }
        return bound;
    };
    let start = rand::rng().random_range(range.clone());
    let mut last = std::io::ErrorKind::AddrInUse.into();
    for port in relay_port_order(range.clone(), start).filter(|p| !even || p % 2 == 0) {
        match bind(port) {
            Ok(b) => return Ok(b),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Every port of `range` once, from `start` on, wrapping around.
fn relay_port_order(range: std::ops::RangeInclusive<u16>, start: u16) -> impl Iterator<Item = u16> {
    let (first, last) = (*range.start(), *range.end());
    (start..=last).chain(first..start)
}

/// Receives peer datagrams on one relay socket into a shared slab.
async fn relay_reader(
    alloc: AllocId,
    sock: Arc<UdpSocket>,
    tx: mpsc::Sender<Event>,
    metrics: Arc<TurnMetrics>,
) {
    let mut slab = BytesMut::with_capacity(SLAB);
    loop {
        slab.reserve(FRAME_HEADROOM + MAX_DATAGRAM + FRAME_TAILROOM);
        slab.put_bytes(0, FRAME_HEADROOM);
        let r = sock.recv_buf_from(&mut slab).await;
        let (len, from) = match r {
            Ok((n, from)) => (n, from),
            Err(e) => {
                tracing::trace!(alloc = %alloc, error = %e, "turn: relay receive");
                slab.clear();
                continue;
            }
        };
        slab.put_bytes(0, FRAME_TAILROOM);
        let buf = slab.split();
        match tx.try_send(Event::Peer {
            alloc,
            from,
            buf,
            len,
        }) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics.queue_dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}

/// Accepts stream clients (TCP, or TLS with `tls`) and runs each one.
async fn accept_loop(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    tx: mpsc::Sender<Event>,
) {
    let Ok(local) = listener.local_addr() else {
        return;
    };
    let open = Arc::new(tokio::sync::Semaphore::new(MAX_TCP_CLIENTS));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(v) => v,
            Err(e) => {
                // Out of file descriptors (EMFILE) and the like: retrying
                // at once would spin a core until one is freed.
                tracing::debug!(error = %e, "TURN accept");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&open).try_acquire_owned() else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let five = FiveTuple {
            transport: Transport::Tcp,
            client: peer,
            server: local,
        };
        let tx = tx.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => stream_client(stream, five, tx).await,
                Some(acceptor) => {
                    match tokio::time::timeout(TLS_HANDSHAKE, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => stream_client(stream, five, tx).await,
                        Ok(Err(e)) => tracing::debug!(error = %e, "TURN TLS handshake failed"),
                        Err(_) => tracing::debug!("TURN TLS handshake timed out"),
                    }
                }
            }
            drop(permit);
        });
    }
}

/// Cuts a stream client's bytes (TCP or TLS) into frames for the core;
/// writes what the core sends back.
async fn stream_client<S>(stream: S, five: FiveTuple, tx: mpsc::Sender<Event>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let (out_tx, mut out_rx) = mpsc::channel::<Bytes>(TCP_QUEUE);
    if tx.send(Event::TcpOpen { five, tx: out_tx }).await.is_err() {
        return;
    }
    let writer = tokio::spawn(async move {
        while let Some(b) = out_rx.recv().await {
            if wr.write_all(&b).await.is_err() {
                break;
            }
            // TLS may hold the last record back until flushed.
            if out_rx.is_empty() && wr.flush().await.is_err() {
                break;
            }
        }
    });
    let mut buf = BytesMut::with_capacity(16 << 10);
    'read: loop {
        loop {
            match stun::stream_frame_len(&buf) {
                Ok(Some(n)) if buf.len() >= n => {
                    let frame = buf.split_to(n);
                    if tx.send(Event::TcpFrame { five, frame }).await.is_err() {
                        break 'read;
                    }
                }
                Ok(_) => break,
                // Not STUN or ChannelData: the stream is garbage; close.
                Err(_) => break 'read,
            }
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(16 << 10);
        }
        match rd.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    writer.abort();
    let _ = tx.send(Event::TcpClosed { five }).await;
}

/// Starts what `config` asks for: the embedded relay (unless `turn_listen`
/// is `off`; over TLS too with `turn_tls_listen`, presenting `tls`, the
/// node's certificate) and the provider of ICE servers for the peers (embedded relay
/// URLs, or `turn_urls` for an external TURN sharing the secret). `own` are
/// the node's other listeners, which the relay must never reach.
pub async fn from_config(
    config: &crate::config::Config,
    own: Vec<SocketAddr>,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> anyhow::Result<(Option<TurnHandle>, Option<ice::IceProvider>)> {
    if !config.turn_enabled() {
        return Ok((None, None));
    }
    let secret = ice::load_or_create_secret(&config.turn_secret_path())?;
    let handle = match config.turn_listen_addr() {
        Some(listen) => Some(
            start(TurnConfig {
                listen,
                relay_ip: config.turn_relay_ip,
                secret: secret.bytes().to_vec(),
                realm: config.turn_realm.clone(),
                allow_peers: config.turn_allow_peer.clone(),
                quotas: Quotas {
                    max_allocations: config.turn_max_allocations,
                    max_allocations_per_user: config.turn_max_allocations_per_user,
                    bandwidth_per_allocation: config.turn_bandwidth_per_allocation,
                    ..Quotas::default()
                },
                own_addrs: own,
                relay_ports: config.turn_relay_ports.map(|r| r.first..=r.last),
                tls: config.turn_tls_listen.zip(tls),
            })
            .await
            .context("turn_listen")?,
        ),
        None => None,
    };
    let urls = match (&handle, config.turn_urls.is_empty()) {
        (Some(h), true) => ice::IceProvider::embedded_urls(
            SocketAddr::new(h.relay_ip, h.udp_addr.port()),
            h.tls_addr
                .map(|a| (config.turn_tls_name(h.relay_ip), a.port())),
        ),
        _ => config.turn_urls.clone(),
    };
    Ok((handle, Some(ice::IceProvider::new(secret, &urls))))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn relay_ports_are_tried_once_each_from_the_start_on() {
        let order: Vec<u16> = relay_port_order(10..=14, 12).collect();
        assert_eq!(order, [12, 13, 14, 10, 11]);
        let order: Vec<u16> = relay_port_order(10..=14, 10).collect();
        assert_eq!(order, [10, 11, 12, 13, 14]);
    }

    #[tokio::test]
    async fn relay_sockets_stay_in_their_range_until_it_is_full() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let range = 47_811..=47_814;
        let mut held = Vec::new();
        for _ in 0..4 {
            let (addr, sock) = bind_relay(ip, Some(&range), false).unwrap();
            assert!(range.contains(&addr.port()), "{addr}");
            held.push(sock);
        }
        let mut ports: Vec<u16> = held
            .iter()
            .map(|s| s.local_addr().unwrap().port())
            .collect();
        ports.sort_unstable();
        assert_eq!(ports, [47_811, 47_812, 47_813, 47_814]);
        // Full: an error, not a port outside the range.
        assert!(bind_relay(ip, Some(&range), false).is_err());
        drop(held);
        // EVEN-PORT within the range.
        for _ in 0..8 {
            let (addr, _) = bind_relay(ip, Some(&range), true).unwrap();
            assert_eq!(addr.port() % 2, 0, "{addr}");
        }
    }
}
