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

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use rand::RngCore;
use telenode_turn::stun::{self, FRAME_HEADROOM, FRAME_TAILROOM};
use telenode_turn::{
    AllocId, Cidr, ClientAction, FiveTuple, Now, Output, PeerPolicy, PendingAllocation, Quotas,
    Server, ServerConfig, Transport,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
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
/// TCP clients at once.
const MAX_TCP_CLIENTS: usize = 1024;

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
            .finish()
    }
}

/// A running relay; dropping it stops it.
#[derive(Debug)]
pub struct TurnHandle {
    /// The bound UDP address.
    pub udp_addr: SocketAddr,
    /// The bound TCP address.
    pub tcp_addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    core: JoinHandle<()>,
    acceptor: JoinHandle<()>,
}

impl TurnHandle {
    /// Stops the relay and waits for its core task.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.acceptor.abort();
        let _ = (&mut self.core).await;
    }
}

impl Drop for TurnHandle {
    fn drop(&mut self) {
        self.acceptor.abort();
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
    let udp =
        udp_socket(cfg.listen).with_context(|| format!("turn: binding UDP {}", cfg.listen))?;
    let udp_addr = udp.local_addr()?;
    // TCP on the same port as UDP (port 0: whatever the kernel gives).
    let tcp = TcpListener::bind(SocketAddr::new(cfg.listen.ip(), udp_addr.port()))
        .await
        .with_context(|| format!("turn: binding TCP {}", cfg.listen))?;
    let tcp_addr = tcp.local_addr()?;

    let mut own = cfg.own_addrs.clone();
    own.extend([udp_addr, tcp_addr]);
    let mut random = [0u8; 44];
    rand::rng().fill_bytes(&mut random);
    let mut scfg = ServerConfig::new(cfg.realm.clone(), cfg.secret.clone(), random);
    scfg.policy = PeerPolicy::new(cfg.allow_peers.clone(), own);
    scfg.quotas = cfg.quotas;

    let (tx, rx) = mpsc::channel(QUEUE);
    let (stop_tx, stop_rx) = oneshot::channel();
    let acceptor = tokio::spawn(accept_loop(tcp, tcp_addr, tx.clone()));
    let core = Core {
        server: Server::new(scfg),
        udp: Arc::new(udp),
        udp_addr,
        relay_ip,
        tx,
        relays: HashMap::new(),
        tcp: HashMap::new(),
        out: Vec::with_capacity(1500),
    };
    let task = tokio::spawn(core.run(rx, stop_rx));
    tracing::info!(udp = %udp_addr.port(), tcp = %tcp_addr.port(), "TURN relay listening");
    Ok(TurnHandle {
        udp_addr,
        tcp_addr,
        shutdown: Some(stop_tx),
        core: task,
        acceptor,
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
    tcp: HashMap<FiveTuple, mpsc::Sender<Bytes>>,
    out: Vec<u8>,
}

impl Core {
    async fn run(mut self, mut rx: mpsc::Receiver<Event>, mut stop: oneshot::Receiver<()>) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let udp = Arc::clone(&self.udp);
        loop {
            let deadline = self
                .server
                .poll_timeout()
                .map(tokio::time::Instant::from_std)
                .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                _ = &mut stop => break,
                r = udp.recv_from(&mut buf) => match r {
                    Ok((n, from)) => {
                        let five = FiveTuple {
                            transport: Transport::Udp,
                            client: from,
                            server: self.udp_addr,
                        };
                        self.client_input(five, &buf[..n]).await;
                    }
                    // ICMP errors surface as recv errors on some systems.
                    Err(e) => tracing::debug!(error = %e, "turn: UDP receive"),
                },
                Some(ev) = rx.recv() => self.event(ev).await,
                _ = tokio::time::sleep_until(deadline) => {
                    self.server.handle_timeout(Instant::now());
                }
            }
            self.drain_outputs();
        }
        for (_, r) in self.relays.drain() {
            r.reader.abort();
        }
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

    async fn client_input(&mut self, five: FiveTuple, input: &[u8]) {
        let mut out = std::mem::take(&mut self.out);
        let action = self.server.handle_client(now(), five, input, &mut out);
        match action {
            ClientAction::Drop => self.out = out,
            ClientAction::Reply => {
                self.out = out;
                self.reply(five).await;
            }
            ClientAction::Relay { alloc, peer, data } => {
                if let Some(r) = self.relays.get(&alloc)
                    && let Err(e) = r.sock.try_send_to(data, peer)
                {
                    tracing::trace!(alloc = %alloc, error = %e, "turn: send to peer dropped");
                }
                self.out = out;
            }
            ClientAction::Allocate(p) => {
                self.out = out;
                self.allocate(p).await;
            }
        }
    }

    async fn allocate(&mut self, p: PendingAllocation) {
        let five = p.five_tuple();
        let mut bound =
            udp_socket(SocketAddr::new(self.relay_ip, 0)).and_then(|s| Ok((s.local_addr()?, s)));
        // EVEN-PORT: retry until the kernel hands out an even port.
        for _ in 0..32 {
            match &bound {
                Ok((a, _)) if p.even_port() && a.port() % 2 == 1 => {
                    bound = udp_socket(SocketAddr::new(self.relay_ip, 0))
                        .and_then(|s| Ok((s.local_addr()?, s)));
                }
                _ => break,
            }
        }
        let (addr, sock) = match bound {
            Ok((a, s)) => (Some(a), Some(s)),
            Err(e) => {
                tracing::warn!(error = %e, "turn: cannot bind a relay socket");
                (None, None)
            }
        };
        let mut out = std::mem::take(&mut self.out);
        let id = self.server.allocation_bound(now(), p, addr, &mut out);
        self.out = out;
        if let (Some(id), Some(sock)) = (id, sock) {
            let sock = Arc::new(sock);
            let reader = tokio::spawn(relay_reader(id, Arc::clone(&sock), self.tx.clone()));
            self.relays.insert(id, Relay { sock, reader });
            tracing::debug!(alloc = %id, "turn: allocation created");
        }
        self.reply(five).await;
    }
}

/// Receives peer datagrams on one relay socket into a shared slab.
async fn relay_reader(alloc: AllocId, sock: Arc<UdpSocket>, tx: mpsc::Sender<Event>) {
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
            Err(mpsc::error::TrySendError::Full(_)) => {}
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}

async fn accept_loop(listener: TcpListener, local: SocketAddr, tx: mpsc::Sender<Event>) {
    let open = Arc::new(tokio::sync::Semaphore::new(MAX_TCP_CLIENTS));
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
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
        tokio::spawn(async move {
            tcp_client(stream, five, tx).await;
            drop(permit);
        });
    }
}

/// Cuts a TCP client's stream into frames for the core; writes what the
/// core sends back.
async fn tcp_client(stream: TcpStream, five: FiveTuple, tx: mpsc::Sender<Event>) {
    let (mut rd, mut wr) = stream.into_split();
    let (out_tx, mut out_rx) = mpsc::channel::<Bytes>(TCP_QUEUE);
    if tx.send(Event::TcpOpen { five, tx: out_tx }).await.is_err() {
        return;
    }
    let writer = tokio::spawn(async move {
        while let Some(b) = out_rx.recv().await {
            if wr.write_all(&b).await.is_err() {
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
