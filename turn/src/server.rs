//! The TURN server state machine (RFC 8656), sans-IO.
//!
//! The runtime feeds it what arrives and does what it says:
//!
//! - [`Server::handle_client`]: a STUN message or ChannelData from a client
//!   (UDP datagram or one TCP/TLS frame). Gives a [`ClientAction`]: reply
//!   with the bytes written to `out`, relay a borrowed slice of the input
//!   to a peer from an allocation's relay socket, bind a relay socket for a
//!   new allocation ([`Server::allocation_bound`] finishes it), or drop.
//! - [`Server::handle_peer`]: a datagram that arrived on a relay socket,
//!   received into a buffer with [`FRAME_HEADROOM`] bytes in front; it is
//!   framed in place for the client (ChannelData or Data indication), or
//!   dropped (no permission, over the bandwidth quota).
//! - [`Server::handle_timeout`] / [`Server::poll_timeout`]: expiry of
//!   allocations, permissions and channels; [`Server::poll_output`] then
//!   says which relay sockets to close.
//! - [`Server::client_closed`]: a TCP/TLS client went away.
//!
//! Time comes in as [`Now`] (monotonic for lifetimes, unix seconds for
//! credential expiry and nonces); randomness (the nonce key) comes in
//! [`ServerConfig`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;
use telenode_signaling::creds;

use crate::policy::PeerPolicy;
use crate::stun::{
    self, CHANNEL_MAX, CHANNEL_MIN, Class, Encoder, FRAME_HEADROOM, Message, attr, method,
};

/// Time as the runtime sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time, for lifetimes.
    pub instant: Instant,
    /// Wall-clock unix seconds, for credential expiry and nonces.
    pub unix_secs: u64,
}

/// How a client reached the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP (STUN and ChannelData framed on the stream).
    Tcp,
    /// TLS over TCP.
    Tls,
}

impl Transport {
    /// Whether ChannelData is padded to four bytes (stream transports).
    pub fn is_stream(self) -> bool {
        !matches!(self, Transport::Udp)
    }
}

/// The client side of an allocation: transport, client address, and the
/// relay's own address it was reached on (RFC 8656 §2, "5-tuple").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FiveTuple {
    /// Transport.
    pub transport: Transport,
    /// The client's address.
    pub client: SocketAddr,
    /// The relay's listening address.
    pub server: SocketAddr,
}

/// Opaque id of an allocation (never an address: safe to log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AllocId(pub u64);

impl std::fmt::Display for AllocId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a{}", self.0)
    }
}

/// Limits; over them a request gets `486 Allocation Quota Reached` (or
/// `508 Insufficient Capacity` for permissions and channels), relayed
/// traffic over the bandwidth is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    /// Allocations held at once, in total.
    pub max_allocations: usize,
    /// Allocations held at once per username (credential).
    pub max_allocations_per_user: usize,
    /// Bytes per second relayed per allocation, both directions together
    /// (0: unlimited). Bursts of one second are allowed.
    pub bandwidth_per_allocation: u64,
    /// Permissions per allocation.
    pub max_permissions: usize,
    /// Channels per allocation.
    pub max_channels: usize,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            max_allocations: 1000,
            max_allocations_per_user: 8,
            // 4 Mbit/s: a 720p video call and audio, with margin.
            bandwidth_per_allocation: 500_000,
            max_permissions: 32,
            max_channels: 32,
        }
    }
}

/// What the server needs to know.
#[derive(Clone)]
pub struct ServerConfig {
    /// REALM.
    pub realm: String,
    /// The TURN REST secret shared with whoever mints credentials.
    pub secret: Vec<u8>,
    /// Peer-address policy.
    pub policy: PeerPolicy,
    /// Quotas.
    pub quotas: Quotas,
    /// Random key for nonces (fresh at every start).
    pub nonce_key: [u8; 32],
    /// Random bytes for the transaction ids of Data indications.
    pub txid_seed: [u8; 12],
    /// Allocation lifetime when the client asks for less (RFC: 600 s).
    pub default_lifetime: Duration,
    /// Longest allocation lifetime granted (RFC: 3600 s).
    pub max_lifetime: Duration,
    /// How long a nonce stays fresh.
    pub nonce_lifetime: Duration,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("realm", &self.realm)
            .field("secret", &"***")
            .field("policy", &self.policy)
            .field("quotas", &self.quotas)
            .finish_non_exhaustive()
    }
}

impl ServerConfig {
    /// Defaults around a realm, a secret and fresh random bytes.
    pub fn new(realm: String, secret: Vec<u8>, random: [u8; 44]) -> Self {
        let mut nonce_key = [0; 32];
        nonce_key.copy_from_slice(&random[..32]);
        let mut txid_seed = [0; 12];
        txid_seed.copy_from_slice(&random[32..]);
        ServerConfig {
            realm,
            secret,
            policy: PeerPolicy::default(),
            quotas: Quotas::default(),
            nonce_key,
            txid_seed,
            default_lifetime: Duration::from_secs(600),
            max_lifetime: Duration::from_secs(3600),
            nonce_lifetime: Duration::from_secs(600),
        }
    }
}

/// Permission lifetime (RFC 8656 §9).
pub const PERMISSION_LIFETIME: Duration = Duration::from_secs(300);
/// Channel binding lifetime (RFC 8656 §12).
pub const CHANNEL_LIFETIME: Duration = Duration::from_secs(600);
/// IANA protocol number of UDP (REQUESTED-TRANSPORT).
pub const PROTO_UDP: u8 = 17;

/// Attributes this server understands in requests and indications; other
/// comprehension-required ones (below 0x8000) get `420`.
const KNOWN: [u16; 12] = [
    attr::EVEN_PORT,
    attr::USERNAME,
    attr::REALM,
    attr::NONCE,
    attr::LIFETIME,
    attr::XOR_PEER_ADDRESS,
    attr::DATA,
    attr::REQUESTED_TRANSPORT,
    attr::DONT_FRAGMENT,
    attr::CHANNEL_NUMBER,
    attr::REQUESTED_ADDRESS_FAMILY,
    attr::PRIORITY,
];

/// What to do with a client's message.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub enum ClientAction<'a> {
    /// Nothing (dropped: malformed, no permission, over quota, …).
    Drop,
    /// Send the bytes written to `out` back to the client.
    Reply,
    /// Send `data` from the relay socket of `alloc` to `peer`.
    Relay {
        /// The allocation whose relay socket sends.
        alloc: AllocId,
        /// Where to.
        peer: SocketAddr,
        /// The application data (a slice of the input).
        data: &'a [u8],
    },
    /// Bind a UDP relay socket (IPv4), then call
    /// [`Server::allocation_bound`].
    Allocate(PendingAllocation),
}

/// An Allocate request that passed every check and waits for its relay
/// socket.
#[derive(Debug, PartialEq, Eq)]
pub struct PendingAllocation {
    five: FiveTuple,
    txid: [u8; 12],
    username: String,
    key: [u8; 16],
    lifetime: Duration,
    fingerprint: bool,
    even_port: bool,
}

impl PendingAllocation {
    /// The client this is for.
    pub fn five_tuple(&self) -> FiveTuple {
        self.five
    }

    /// Whether the client asked for an even relay port (EVEN-PORT; no
    /// reservation of the next port is made even if asked).
    pub fn even_port(&self) -> bool {
        self.even_port
    }
}

/// Events for the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// The allocation is gone (expired, refreshed to zero, client closed):
    /// close its relay socket.
    AllocationClosed(AllocId),
}

/// Counters (monotonic).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Allocations created.
    pub allocations: u64,
    /// Requests refused with 403 (peer policy).
    pub forbidden: u64,
    /// Requests refused with 401 (credentials).
    pub unauthorized: u64,
    /// Requests refused with 486 (quota).
    pub over_quota: u64,
    /// Packets relayed, either direction.
    pub relayed_packets: u64,
    /// Application bytes relayed (payloads, without TURN framing), either
    /// direction.
    pub relayed_bytes: u64,
    /// Packets dropped (no permission or channel, over bandwidth).
    pub dropped_packets: u64,
}

#[derive(Debug)]
struct Bucket {
    rate: u64,
    tokens: u64,
    last: Instant,
}

impl Bucket {
    fn take(&mut self, now: Instant, n: usize) -> bool {
        if self.rate == 0 {
            return true;
        }
        let elapsed = now.saturating_duration_since(self.last);
        if !elapsed.is_zero() {
            let add = (elapsed.as_micros() as u64).saturating_mul(self.rate) / 1_000_000;
            if add > 0 {
                self.tokens = (self.tokens.saturating_add(add)).min(self.rate);
                self.last = now;
            }
        }
        let n = n as u64;
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }
}

#[derive(Debug)]
struct Channel {
    number: u16,
    peer: SocketAddr,
    expires: Instant,
}

#[derive(Debug)]
struct Allocation {
    five: FiveTuple,
    username: String,
    key: [u8; 16],
    txid: [u8; 12],
    relay: SocketAddr,
    expires: Instant,
    permissions: Vec<(IpAddr, Instant)>,
    channels: Vec<Channel>,
    bucket: Bucket,
}

impl Allocation {
    fn permitted(&self, now: Instant, ip: IpAddr) -> bool {
        self.permissions
            .iter()
            .any(|&(p, exp)| p == ip && exp > now)
    }
}

/// Outcome of authenticating a request.
enum Auth {
    Ok {
        username: String,
        key: [u8; 16],
    },
    /// An error response was written to `out`.
    Refused,
}

/// The TURN server state machine.
#[derive(Debug)]
pub struct Server {
    cfg: ServerConfig,
    allocs: HashMap<AllocId, Allocation>,
    by_five: HashMap<FiveTuple, AllocId>,
    per_user: HashMap<String, usize>,
    pending: HashSet<FiveTuple>,
    next_id: u64,
    txid_counter: u64,
    outputs: VecDeque<Output>,
    stats: Stats,
    /// When [`Server::handle_timeout`] next has something to do: never
    /// later than the earliest expiry held, possibly earlier (an expiry
    /// moved later or removed since the last [`Server::handle_timeout`]).
    next_timeout: Option<Instant>,
}

impl Server {
    /// A server with no allocations.
    pub fn new(cfg: ServerConfig) -> Self {
        Server {
            cfg,
            allocs: HashMap::new(),
            by_five: HashMap::new(),
            per_user: HashMap::new(),
            pending: HashSet::new(),
            next_id: 1,
            txid_counter: 0,
            outputs: VecDeque::new(),
            stats: Stats::default(),
            next_timeout: None,
        }
    }

    /// Notes an expiry just set: the cached timeout becomes the earlier of
    /// the two.
    fn arm(&mut self, t: Instant) {
        self.next_timeout = Some(self.next_timeout.map_or(t, |n| n.min(t)));
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Allocations held now.
    pub fn allocation_count(&self) -> usize {
        self.allocs.len()
    }

    /// The relay address of an allocation.
    pub fn relay_addr(&self, id: AllocId) -> Option<SocketAddr> {
        self.allocs.get(&id).map(|a| a.relay)
    }

    /// The allocation of a client, if any.
    pub fn allocation_of(&self, five: &FiveTuple) -> Option<AllocId> {
        self.by_five.get(five).copied()
    }

    /// Handles one message from a client. Replies are appended to `out`
    /// (cleared first).
    pub fn handle_client<'a>(
        &mut self,
        now: Now,
        five: FiveTuple,
        input: &'a [u8],
        out: &mut Vec<u8>,
    ) -> ClientAction<'a> {
        out.clear();
        if stun::is_channel_data(input) {
            return self.channel_data(now, five, input);
        }
        let Ok(msg) = Message::parse(input) else {
            return ClientAction::Drop;
        };
        match (msg.class(), msg.method()) {
            (Class::Indication, method::SEND) => self.send_indication(now, five, &msg),
            (Class::Request, m) => {
                if let Some(unknown) = first_unknown(&msg) {
                    let mut e = Encoder::new(out, m, Class::Error, &msg.transaction_id());
                    e.error_code(420, "Unknown Attribute")
                        .attr(attr::UNKNOWN_ATTRIBUTES, &unknown.to_be_bytes());
                    return ClientAction::Reply;
                }
                match m {
                    method::BINDING => {
                        let mut e = Encoder::new(
                            out,
                            method::BINDING,
                            Class::Success,
                            &msg.transaction_id(),
                        );
                        e.xor_address(attr::XOR_MAPPED_ADDRESS, five.client)
                            .fingerprint_if(msg.has_fingerprint());
                        ClientAction::Reply
                    }
                    method::ALLOCATE => self.allocate(now, five, &msg, out),
                    method::REFRESH | method::CREATE_PERMISSION | method::CHANNEL_BIND => {
                        self.allocation_request(now, five, &msg, out)
                    }
                    _ => {
                        error(out, &msg, 400, "Bad Request", None);
                        ClientAction::Reply
                    }
                }
            }
            _ => ClientAction::Drop,
        }
    }

    fn channel_data<'a>(&mut self, now: Now, five: FiveTuple, input: &'a [u8]) -> ClientAction<'a> {
        let Ok(cd) = stun::parse_channel_data(input) else {
            return ClientAction::Drop;
        };
        let Some(&id) = self.by_five.get(&five) else {
            return ClientAction::Drop;
        };
        let Some(a) = self.allocs.get_mut(&id) else {
            return ClientAction::Drop;
        };
        let t = now.instant;
        let peer = match a
            .channels
            .iter()
            .find(|c| c.number == cd.channel && c.expires > t)
        {
            Some(c) if a.permitted(t, c.peer.ip()) => c.peer,
            _ => {
                self.stats.dropped_packets += 1;
                return ClientAction::Drop;
            }
        };
        if !a.bucket.take(t, cd.data.len()) {
            self.stats.dropped_packets += 1;
            return ClientAction::Drop;
        }
        self.stats.relayed_packets += 1;
        self.stats.relayed_bytes += cd.data.len() as u64;
        ClientAction::Relay {
            alloc: id,
            peer,
            data: cd.data,
        }
    }

    fn send_indication<'a>(
        &mut self,
        now: Now,
        five: FiveTuple,
        msg: &Message<'a>,
    ) -> ClientAction<'a> {
        let Some(&id) = self.by_five.get(&five) else {
            return ClientAction::Drop;
        };
        let txid = msg.transaction_id();
        let (Some(p), Some(data)) = (msg.get(attr::XOR_PEER_ADDRESS), msg.get(attr::DATA)) else {
            return ClientAction::Drop;
        };
        let Ok(peer) = stun::xor_address(p, &txid, attr::XOR_PEER_ADDRESS) else {
            return ClientAction::Drop;
        };
        let Some(a) = self.allocs.get_mut(&id) else {
            return ClientAction::Drop;
        };
        // The permission was checked against the policy for its IP; the
        // policy is checked again for the port (own sockets).
        if !a.permitted(now.instant, peer.ip())
            || self.cfg.policy.check(peer).is_err()
            || !a.bucket.take(now.instant, data.len())
        {
            self.stats.dropped_packets += 1;
            return ClientAction::Drop;
        }
        self.stats.relayed_packets += 1;
        self.stats.relayed_bytes += data.len() as u64;
        ClientAction::Relay {
            alloc: id,
            peer,
            data,
        }
    }

    /// Long-term credential check (RFC 8489 §9.2) with TURN REST
    /// usernames. On refusal an error response is in `out`.
    fn authenticate(
        &mut self,
        now: Now,
        five: &FiveTuple,
        msg: &Message<'_>,
        out: &mut Vec<u8>,
    ) -> Auth {
        if !msg.has_integrity() {
            self.challenge(now, five, msg, out, 401, "Unauthorized");
            return Auth::Refused;
        }
        let fields = (
            msg.get(attr::USERNAME),
            msg.get(attr::REALM),
            msg.get(attr::NONCE),
        );
        let (Some(user), Some(realm), Some(nonce)) = fields else {
            error(out, msg, 400, "Bad Request", None);
            return Auth::Refused;
        };
        if !self.nonce_valid(now, five, nonce) {
            self.challenge(now, five, msg, out, 438, "Stale Nonce");
            return Auth::Refused;
        }
        let Some((user, key)) = self.verify_credentials(now, msg, user, realm) else {
            self.stats.unauthorized += 1;
            self.challenge(now, five, msg, out, 401, "Unauthorized");
            return Auth::Refused;
        };
        Auth::Ok {
            username: user.to_owned(),
            key,
        }
    }

    /// The username (UTF-8) and realm (ours), a TURN REST credential not
    /// expired, and MESSAGE-INTEGRITY under its key: the username and key.
    fn verify_credentials<'u>(
        &self,
        now: Now,
        msg: &Message<'_>,
        user: &'u [u8],
        realm: &[u8],
    ) -> Option<(&'u str, [u8; 16])> {
        let user = stun::text(user, attr::USERNAME).ok()?;
        if realm != self.cfg.realm.as_bytes() {
            return None;
        }
        let password = creds::turn_expected_password(&self.cfg.secret, user, now.unix_secs).ok()?;
        let key = stun::long_term_key(user, &self.cfg.realm, &password);
        msg.verify_integrity(&key).then_some((user, key))
    }

    /// A 401 / 438 carrying REALM and a fresh NONCE.
    fn challenge(
        &self,
        now: Now,
        five: &FiveTuple,
        msg: &Message<'_>,
        out: &mut Vec<u8>,
        code: u16,
        reason: &str,
    ) {
        let nonce = self.make_nonce(now, five);
        let mut e = Encoder::new(out, msg.method(), Class::Error, &msg.transaction_id());
        e.error_code(code, reason)
            .attr(attr::REALM, self.cfg.realm.as_bytes())
            .attr(attr::NONCE, &nonce)
            .fingerprint_if(msg.has_fingerprint());
    }

    /// Stateless nonce: 16 hex digits of its expiry (unix seconds) and 24
    /// hex digits of HMAC-SHA1(nonce key, expiry ‖ client address).
    fn make_nonce(&self, now: Now, five: &FiveTuple) -> [u8; 40] {
        let expiry = now
            .unix_secs
            .saturating_add(self.cfg.nonce_lifetime.as_secs());
        let mac = self.nonce_mac(expiry, five);
        let mut n = [0u8; 40];
        hex(&expiry.to_be_bytes(), &mut n[..16]);
        hex(&mac, &mut n[16..]);
        n
    }

    fn nonce_mac(&self, expiry: u64, five: &FiveTuple) -> [u8; 12] {
        let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(&self.cfg.nonce_key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(&expiry.to_be_bytes());
        match five.client.ip() {
            IpAddr::V4(ip) => mac.update(&ip.octets()),
            IpAddr::V6(ip) => mac.update(&ip.octets()),
        }
        let full: [u8; 20] = mac.finalize().into_bytes().into();
        let mut t = [0; 12];
        t.copy_from_slice(&full[..12]);
        t
    }

    fn nonce_valid(&self, now: Now, five: &FiveTuple, nonce: &[u8]) -> bool {
        if nonce.len() != 40 {
            return false;
        }
        let mut exp = [0u8; 8];
        let mut mac = [0u8; 12];
        if !unhex(&nonce[..16], &mut exp) || !unhex(&nonce[16..], &mut mac) {
            return false;
        }
        let expiry = u64::from_be_bytes(exp);
        let ok: bool = self.nonce_mac(expiry, five).ct_eq(&mac).into();
        ok && now.unix_secs < expiry
    }

    fn allocate<'a>(
        &mut self,
        now: Now,
        five: FiveTuple,
        msg: &Message<'_>,
        out: &mut Vec<u8>,
    ) -> ClientAction<'a> {
        if self.pending.contains(&five) {
            // A retransmission while the relay socket is being bound.
            return ClientAction::Drop;
        }
        let (username, key) = match self.authenticate(now, &five, msg, out) {
            Auth::Ok { username, key } => (username, key),
            Auth::Refused => return ClientAction::Reply,
        };
        let txid = msg.transaction_id();
        let fp = msg.has_fingerprint();
        if let Some(&id) = self.by_five.get(&five) {
            let Some(a) = self.allocs.get(&id) else {
                return ClientAction::Drop;
            };
            if a.txid == txid && a.username == username {
                // Retransmission of the request that created it.
                let life = a.expires.saturating_duration_since(now.instant);
                let relay = a.relay;
                self.allocate_success(out, &txid, five, relay, life, &key, fp);
            } else {
                error(out, msg, 437, "Allocation Mismatch", Some(&key));
            }
            return ClientAction::Reply;
        }
        match msg
            .get(attr::REQUESTED_TRANSPORT)
            .map(stun::requested_transport)
        {
            None | Some(Err(_)) => {
                error(out, msg, 400, "Bad Request", Some(&key));
                return ClientAction::Reply;
            }
            Some(Ok(PROTO_UDP)) => {}
            Some(Ok(_)) => {
                error(out, msg, 442, "Unsupported Transport Protocol", Some(&key));
                return ClientAction::Reply;
            }
        }
        if let Some(f) = msg.get(attr::REQUESTED_ADDRESS_FAMILY)
            && f.first() != Some(&0x01)
        {
            error(out, msg, 440, "Address Family not Supported", Some(&key));
            return ClientAction::Reply;
        }
        let q = self.cfg.quotas;
        let held = self.per_user.get(&username).copied().unwrap_or(0);
        if self.allocs.len() + self.pending.len() >= q.max_allocations
            || held >= q.max_allocations_per_user
        {
            self.stats.over_quota += 1;
            error(out, msg, 486, "Allocation Quota Reached", Some(&key));
            return ClientAction::Reply;
        }
        let lifetime = self.lifetime(now, requested_lifetime(msg), &username);
        self.pending.insert(five);
        ClientAction::Allocate(PendingAllocation {
            five,
            txid,
            username,
            key,
            lifetime,
            fingerprint: fp,
            even_port: msg.get(attr::EVEN_PORT).is_some(),
        })
    }

    /// Lifetime for Allocate / Refresh: the requested LIFETIME (default if
    /// absent) within `[default, max]`, and never past the credential's
    /// expiry.
    fn lifetime(&self, now: Now, requested: Option<u32>, username: &str) -> Duration {
        let asked = requested
            .map(|s| Duration::from_secs(u64::from(s)))
            .unwrap_or(self.cfg.default_lifetime);
        let life = asked.clamp(self.cfg.default_lifetime, self.cfg.max_lifetime);
        let cred_left = creds::turn_username_expiry(username)
            .map(|e| Duration::from_secs(e.saturating_sub(now.unix_secs)))
            .unwrap_or(Duration::ZERO);
        life.min(cred_left)
    }

    #[allow(clippy::too_many_arguments)]
    fn allocate_success(
        &self,
        out: &mut Vec<u8>,
        txid: &[u8; 12],
        five: FiveTuple,
        relay: SocketAddr,
        life: Duration,
        key: &[u8],
        fp: bool,
    ) {
        out.clear();
        let mut e = Encoder::new(out, method::ALLOCATE, Class::Success, txid);
        e.xor_address(attr::XOR_RELAYED_ADDRESS, relay)
            .xor_address(attr::XOR_MAPPED_ADDRESS, five.client)
            .u32(attr::LIFETIME, secs(life))
            .integrity(key)
            .fingerprint_if(fp);
    }

    /// Finishes an allocation once the runtime has bound its relay socket
    /// (`Some(address)`) or failed to (`None`: `508 Insufficient
    /// Capacity`). The response for the client is in `out`.
    pub fn allocation_bound(
        &mut self,
        now: Now,
        p: PendingAllocation,
        relay: Option<SocketAddr>,
        out: &mut Vec<u8>,
    ) -> Option<AllocId> {
        out.clear();
        self.pending.remove(&p.five);
        let Some(relay) = relay else {
            let mut e = Encoder::new(out, method::ALLOCATE, Class::Error, &p.txid);
            e.error_code(508, "Insufficient Capacity").integrity(&p.key);
            return None;
        };
        let id = AllocId(self.next_id);
        self.next_id += 1;
        self.allocate_success(
            out,
            &p.txid,
            p.five,
            relay,
            p.lifetime,
            &p.key,
            p.fingerprint,
        );
        *self.per_user.entry(p.username.clone()).or_insert(0) += 1;
        self.by_five.insert(p.five, id);
        let expires = now.instant + p.lifetime;
        self.allocs.insert(
            id,
            Allocation {
                five: p.five,
                username: p.username,
                key: p.key,
                txid: p.txid,
                relay,
                expires,
                permissions: Vec::new(),
                channels: Vec::new(),
                bucket: Bucket {
                    rate: self.cfg.quotas.bandwidth_per_allocation,
                    tokens: self.cfg.quotas.bandwidth_per_allocation,
                    last: now.instant,
                },
            },
        );
        self.arm(expires);
        self.stats.allocations += 1;
        Some(id)
    }

    /// Refresh, CreatePermission, ChannelBind: authenticated, on an
    /// existing allocation of the same username.
    fn allocation_request<'a>(
        &mut self,
        now: Now,
        five: FiveTuple,
        msg: &Message<'_>,
        out: &mut Vec<u8>,
    ) -> ClientAction<'a> {
        let (username, key) = match self.authenticate(now, &five, msg, out) {
            Auth::Ok { username, key } => (username, key),
            Auth::Refused => return ClientAction::Reply,
        };
        let Some(&id) = self.by_five.get(&five) else {
            error(out, msg, 437, "Allocation Mismatch", Some(&key));
            return ClientAction::Reply;
        };
        let relay = match self.allocs.get(&id) {
            Some(a) if a.username == username => a.relay,
            _ => {
                error(out, msg, 441, "Wrong Credentials", Some(&key));
                return ClientAction::Reply;
            }
        };
        match msg.method() {
            method::REFRESH => self.refresh(now, id, msg, out, &key, &username),
            method::CREATE_PERMISSION => self.create_permission(now, id, relay, msg, out, &key),
            _ => self.channel_bind(now, id, relay, msg, out, &key),
        }
        ClientAction::Reply
    }

    fn refresh(
        &mut self,
        now: Now,
        id: AllocId,
        msg: &Message<'_>,
        out: &mut Vec<u8>,
        key: &[u8],
        username: &str,
    ) {
        let requested = requested_lifetime(msg);
        let life = if requested == Some(0) {
            self.remove(id);
            Duration::ZERO
        } else {
            let life = self.lifetime(now, requested, username);
            let expires = now.instant + life;
            if let Some(a) = self.allocs.get_mut(&id) {
                a.expires = expires;
                self.arm(expires);
            }
            life
        };
        let mut e = Encoder::new(out, method::REFRESH, Class::Success, &msg.transaction_id());
        e.u32(attr::LIFETIME, secs(life))
            .integrity(key)
            .fingerprint_if(msg.has_fingerprint());
    }

    /// Checks a peer address from a request against the relay's family and
    /// the policy; on refusal writes the error (403 or 443).
    fn check_peer(
        &mut self,
        msg: &Message<'_>,
        value: &[u8],
        relay: SocketAddr,
        out: &mut Vec<u8>,
        key: &[u8],
    ) -> Option<SocketAddr> {
        let Ok(peer) = stun::xor_address(value, &msg.transaction_id(), attr::XOR_PEER_ADDRESS)
        else {
            error(out, msg, 400, "Bad Request", Some(key));
            return None;
        };
        // Policy first: a denied address is refused as such whatever its
        // family (::1 on an IPv4 relay is 403, not 443).
        if self.cfg.policy.check(peer).is_err() {
            self.stats.forbidden += 1;
            error(out, msg, 403, "Forbidden", Some(key));
            return None;
        }
        if peer.is_ipv4() != relay.is_ipv4() {
            error(out, msg, 443, "Peer Address Family Mismatch", Some(key));
            return None;
        }
        Some(peer)
    }

    fn create_permission(
        &mut self,
        now: Now,
        id: AllocId,
        relay: SocketAddr,
        msg: &Message<'_>,
        out: &mut Vec<u8>,
        key: &[u8],
    ) {
        let mut peers: [Option<IpAddr>; 8] = [None; 8];
        let mut n = 0;
        for (t, v) in msg.attributes() {
            if t != attr::XOR_PEER_ADDRESS {
                continue;
            }
            let Some(peer) = self.check_peer(msg, v, relay, out, key) else {
                return;
            };
            let Some(slot) = peers.get_mut(n) else {
                error(out, msg, 508, "Insufficient Capacity", Some(key));
                return;
            };
            *slot = Some(peer.ip());
            n += 1;
        }
        if n == 0 {
            error(out, msg, 400, "Bad Request", Some(key));
            return;
        }
        let max = self.cfg.quotas.max_permissions;
        let Some(a) = self.allocs.get_mut(&id) else {
            return;
        };
        let t = now.instant;
        a.permissions.retain(|&(_, exp)| exp > t);
        let new = peers[..n]
            .iter()
            .flatten()
            .filter(|ip| !a.permissions.iter().any(|(p, _)| p == *ip))
            .count();
        if a.permissions.len() + new > max {
            error(out, msg, 508, "Insufficient Capacity", Some(key));
            return;
        }
        for ip in peers[..n].iter().flatten() {
            install_permission(a, *ip, t);
        }
        self.arm(t + PERMISSION_LIFETIME);
        success(out, msg, key);
    }

    fn channel_bind(
        &mut self,
        now: Now,
        id: AllocId,
        relay: SocketAddr,
        msg: &Message<'_>,
        out: &mut Vec<u8>,
        key: &[u8],
    ) {
        let number = match msg.get(attr::CHANNEL_NUMBER).map(stun::channel_number) {
            Some(Ok(c)) if (CHANNEL_MIN..=CHANNEL_MAX).contains(&c) => c,
            _ => {
                error(out, msg, 400, "Bad Request", Some(key));
                return;
            }
        };
        let Some(v) = msg.get(attr::XOR_PEER_ADDRESS) else {
            error(out, msg, 400, "Bad Request", Some(key));
            return;
        };
        let Some(peer) = self.check_peer(msg, v, relay, out, key) else {
            return;
        };
        let q = self.cfg.quotas;
        let Some(a) = self.allocs.get_mut(&id) else {
            return;
        };
        let t = now.instant;
        a.channels.retain(|c| c.expires > t);
        a.permissions.retain(|&(_, exp)| exp > t);
        // RFC 8656 §12.2: a number is bound to one peer and a peer to one
        // number for the binding's life.
        let by_number = a.channels.iter().position(|c| c.number == number);
        let by_peer = a.channels.iter().position(|c| c.peer == peer);
        match (by_number, by_peer) {
            (Some(i), Some(j)) if i == j => a.channels[i].expires = t + CHANNEL_LIFETIME,
            (None, None) => {
                let new_perm = !a.permissions.iter().any(|(p, _)| *p == peer.ip());
                if a.channels.len() >= q.max_channels
                    || (new_perm && a.permissions.len() >= q.max_permissions)
                {
                    error(out, msg, 508, "Insufficient Capacity", Some(key));
                    return;
                }
                a.channels.push(Channel {
                    number,
                    peer,
                    expires: t + CHANNEL_LIFETIME,
                });
            }
            _ => {
                error(out, msg, 400, "Bad Request", Some(key));
                return;
            }
        }
        install_permission(a, peer.ip(), t);
        self.arm(t + CHANNEL_LIFETIME);
        self.arm(t + PERMISSION_LIFETIME);
        success(out, msg, key);
    }

    /// Handles a datagram from `from` on the relay socket of `alloc`. The
    /// payload is `buf[FRAME_HEADROOM..FRAME_HEADROOM + len]` and `buf`
    /// has [`stun::FRAME_TAILROOM`] bytes after it; on success the frame
    /// for the client is written in place and its range and destination
    /// are returned.
    pub fn handle_peer(
        &mut self,
        now: Now,
        alloc: AllocId,
        from: SocketAddr,
        buf: &mut [u8],
        len: usize,
    ) -> Option<(FiveTuple, Range<usize>)> {
        let a = self.allocs.get_mut(&alloc)?;
        let t = now.instant;
        if !a.permitted(t, from.ip()) || !a.bucket.take(t, len) {
            self.stats.dropped_packets += 1;
            return None;
        }
        let five = a.five;
        let channel = a
            .channels
            .iter()
            .find(|c| c.peer == from && c.expires > t)
            .map(|c| c.number);
        let range = match channel {
            Some(n) => stun::frame_channel_data_in_place(
                buf,
                FRAME_HEADROOM,
                len,
                n,
                five.transport.is_stream(),
            ),
            None => {
                self.txid_counter = self.txid_counter.wrapping_add(1);
                let mut txid = self.cfg.txid_seed;
                for (x, c) in txid[4..].iter_mut().zip(self.txid_counter.to_be_bytes()) {
                    *x ^= c;
                }
                stun::frame_data_indication_in_place(buf, FRAME_HEADROOM, len, &txid, from)
            }
        };
        match range {
            Some(r) => {
                self.stats.relayed_packets += 1;
                self.stats.relayed_bytes += len as u64;
                Some((five, r))
            }
            None => {
                self.stats.dropped_packets += 1;
                None
            }
        }
    }

    /// A stream client (TCP/TLS) disconnected: its allocation goes.
    pub fn client_closed(&mut self, five: &FiveTuple) {
        self.pending.remove(five);
        if let Some(&id) = self.by_five.get(five) {
            self.remove(id);
        }
    }

    fn remove(&mut self, id: AllocId) {
        if let Some(a) = self.allocs.remove(&id) {
            self.by_five.remove(&a.five);
            if let Some(n) = self.per_user.get_mut(&a.username) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.per_user.remove(&a.username);
                }
            }
            self.outputs.push_back(Output::AllocationClosed(id));
        }
    }

    /// Expires allocations, permissions and channels due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let expired: Vec<AllocId> = self
            .allocs
            .iter()
            .filter(|(_, a)| a.expires <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.remove(id);
        }
        for a in self.allocs.values_mut() {
            a.permissions.retain(|&(_, exp)| exp > now);
            a.channels.retain(|c| c.expires > now);
        }
        self.next_timeout = self.scan_timeout();
    }

    /// When [`Server::handle_timeout`] next has something to do (possibly
    /// earlier: then it finds nothing due and this moves on).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_timeout
    }

    /// The earliest expiry held, by a walk over every allocation,
    /// permission and channel.
    pub(crate) fn scan_timeout(&self) -> Option<Instant> {
        self.allocs
            .values()
            .flat_map(|a| {
                std::iter::once(a.expires)
                    .chain(a.permissions.iter().map(|p| p.1))
                    .chain(a.channels.iter().map(|c| c.expires))
            })
            .min()
    }

    /// The next event for the runtime.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The integrity key of an allocation (tests).
    #[doc(hidden)]
    pub fn allocation_key(&self, id: AllocId) -> Option<[u8; 16]> {
        self.allocs.get(&id).map(|a| a.key)
    }
}

fn install_permission(a: &mut Allocation, ip: IpAddr, now: Instant) {
    let exp = now + PERMISSION_LIFETIME;
    match a.permissions.iter_mut().find(|(p, _)| *p == ip) {
        Some(p) => p.1 = exp,
        None => a.permissions.push((ip, exp)),
    }
}

/// The request's LIFETIME in seconds, if present and well-formed.
fn requested_lifetime(msg: &Message<'_>) -> Option<u32> {
    msg.get(attr::LIFETIME)
        .and_then(|v| stun::u32_value(v, attr::LIFETIME).ok())
}

fn first_unknown(msg: &Message<'_>) -> Option<u16> {
    msg.attributes()
        .map(|(t, _)| t)
        .find(|&t| t < 0x8000 && !KNOWN.contains(&t))
}

fn secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

fn error(out: &mut Vec<u8>, msg: &Message<'_>, code: u16, reason: &str, key: Option<&[u8]>) {
    out.clear();
    let mut e = Encoder::new(out, msg.method(), Class::Error, &msg.transaction_id());
    e.error_code(code, reason);
    if let Some(k) = key {
        e.integrity(k);
    }
    e.fingerprint_if(msg.has_fingerprint());
}

fn success(out: &mut Vec<u8>, msg: &Message<'_>, key: &[u8]) {
    out.clear();
    let mut e = Encoder::new(out, msg.method(), Class::Success, &msg.transaction_id());
    e.integrity(key).fingerprint_if(msg.has_fingerprint());
}

fn hex(src: &[u8], dst: &mut [u8]) {
    const D: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in src.iter().enumerate() {
        dst[2 * i] = D[usize::from(b >> 4)];
        dst[2 * i + 1] = D[usize::from(b & 15)];
    }
}

fn unhex(src: &[u8], dst: &mut [u8]) -> bool {
    fn nib(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    if src.len() != 2 * dst.len() {
        return false;
    }
    for (i, d) in dst.iter_mut().enumerate() {
        match (nib(src[2 * i]), nib(src[2 * i + 1])) {
            (Some(h), Some(l)) => *d = (h << 4) | l,
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const REALM: &str = "timeout.test";
    const SECRET: &[u8] = b"secret";

    struct T {
        s: Server,
        now: Now,
        five: FiveTuple,
        out: Vec<u8>,
        txid: u8,
    }

    impl T {
        fn new() -> Self {
            let mut cfg = ServerConfig::new(REALM.into(), SECRET.to_vec(), [3; 44]);
            let all = crate::Cidr::new([0, 0, 0, 0].into(), 0)
                .into_iter()
                .collect();
            cfg.policy = PeerPolicy::new(all, vec![]);
            T {
                s: Server::new(cfg),
                now: Now {
                    instant: Instant::now(),
                    unix_secs: 1_700_000_000,
                },
                five: FiveTuple {
                    transport: Transport::Udp,
                    client: SocketAddr::from(([10, 0, 0, 1], 5000)),
                    server: SocketAddr::from(([10, 0, 0, 2], 3478)),
                },
                out: Vec::new(),
                txid: 0,
            }
        }

        /// An authenticated request (nonce from a 401 first); asserts
        /// success.
        fn request(&mut self, m: u16, build: impl Fn(&mut Encoder<'_>)) {
            self.txid += 1;
            let txid = [self.txid; 12];
            let mut probe = Vec::new();
            Encoder::new(&mut probe, m, Class::Request, &txid);
            let _ = self
                .s
                .handle_client(self.now, self.five, &probe, &mut self.out);
            let nonce = Message::parse(&self.out)
                .unwrap()
                .get(attr::NONCE)
                .unwrap()
                .to_vec();
            // One credential throughout, valid for two hours from the start.
            let username = "1700007200:t";
            let password = creds::turn_password(SECRET, username);
            let key = stun::long_term_key(username, REALM, &password);
            let mut req = Vec::new();
            let mut e = Encoder::new(&mut req, m, Class::Request, &txid);
            build(&mut e);
            e.attr(attr::USERNAME, username.as_bytes())
                .attr(attr::REALM, REALM.as_bytes())
                .attr(attr::NONCE, &nonce)
                .integrity(&key);
            match self
                .s
                .handle_client(self.now, self.five, &req, &mut self.out)
            {
                ClientAction::Allocate(p) => {
                    let relay = Some(SocketAddr::from(([10, 0, 0, 2], 40000)));
                    self.s.allocation_bound(self.now, p, relay, &mut self.out);
                }
                ClientAction::Reply => {}
                other => panic!("unexpected {other:?}"),
            }
            let reply = Message::parse(&self.out).unwrap();
            assert_eq!(reply.class(), Class::Success, "method {m:#x}");
        }

        fn advance(&mut self, secs: u64) {
            self.now.instant += Duration::from_secs(secs);
            self.now.unix_secs += secs;
            self.s.handle_timeout(self.now.instant);
        }
    }

    fn peer(e: &mut Encoder<'_>) {
        e.xor_address(attr::XOR_PEER_ADDRESS, SocketAddr::from(([8, 8, 8, 8], 9)));
    }

    fn other_peer(e: &mut Encoder<'_>) {
        e.xor_address(attr::XOR_PEER_ADDRESS, SocketAddr::from(([8, 8, 4, 4], 9)));
    }

    #[test]
    fn poll_timeout_matches_the_full_scan() {
        let mut t = T::new();
        assert_eq!(t.s.poll_timeout(), None);
        let start = t.now.instant;

        t.request(method::ALLOCATE, |e| {
            e.attr(attr::REQUESTED_TRANSPORT, &[PROTO_UDP, 0, 0, 0]);
        });
        assert_eq!(t.s.poll_timeout(), Some(start + Duration::from_secs(600)));
        assert_eq!(t.s.poll_timeout(), t.s.scan_timeout());

        t.advance(10);
        t.request(method::CREATE_PERMISSION, peer);
        let first_permission = t.now.instant + PERMISSION_LIFETIME;
        assert_eq!(t.s.poll_timeout(), Some(first_permission));
        assert_eq!(t.s.poll_timeout(), t.s.scan_timeout());

        t.advance(10);
        t.request(method::CHANNEL_BIND, |e| {
            e.attr(attr::CHANNEL_NUMBER, &[0x40, 0, 0, 0]);
            other_peer(e);
        });
        assert_eq!(t.s.poll_timeout(), Some(first_permission));
        assert_eq!(t.s.poll_timeout(), t.s.scan_timeout());

        t.advance(10);
        t.request(method::REFRESH, |e| {
            e.u32(attr::LIFETIME, 1200);
        });
        assert_eq!(t.s.poll_timeout(), t.s.scan_timeout());

        // Nothing due: a no-op that leaves the same answer.
        t.advance(1);
        assert_eq!(t.s.poll_timeout(), t.s.scan_timeout());

        // Refreshing the earliest permission moves it later: the cached
        // timeout is early until the next wake-up recomputes it.
        t.request(method::CREATE_PERMISSION, peer);
        assert_eq!(t.s.poll_timeout(), Some(first_permission));
        assert!(t.s.poll_timeout() < t.s.scan_timeout());
        t.s.handle_timeout(t.now.instant);
        assert_eq!(t.s.poll_timeout(), t.s.scan_timeout());

        // The permissions expire; the channel (600 s) outlives them.
        t.advance(300);
        assert_eq!(t.s.allocation_count(), 1);
        assert_eq!(t.s.poll_timeout(), t.s.scan_timeout());
        assert!(t.s.poll_timeout().is_some());

        // Deleting the allocation leaves an early timeout, until the
        // (no-op) wake-up clears it.
        t.request(method::REFRESH, |e| {
            e.u32(attr::LIFETIME, 0);
        });
        assert_eq!(t.s.scan_timeout(), None);
        assert!(t.s.poll_timeout().is_some());
        t.s.handle_timeout(t.now.instant);
        assert_eq!(t.s.poll_timeout(), None);
        assert_eq!(t.s.poll_timeout(), t.s.scan_timeout());
    }
}
