//! Scenario tests of the TURN server state machine: a scripted client, a
//! fake clock, no sockets.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use telenode_signaling::creds;
use telenode_turn::stun::{
    self, Class, Encoder, FRAME_HEADROOM, FRAME_TAILROOM, Message, attr, method,
};
use telenode_turn::{
    AllocId, Cidr, ClientAction, FiveTuple, Now, Output, PeerPolicy, Quotas, Server, ServerConfig,
    Transport,
};

const SECRET: &[u8] = b"test-secret";
const REALM: &str = "telenode.test";
const T0: u64 = 1_700_000_000;

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

struct World {
    s: Server,
    now: Now,
    out: Vec<u8>,
    relay_port: u16,
}

/// A client holding a TURN REST credential.
#[derive(Clone)]
struct Client {
    five: FiveTuple,
    username: String,
    password: String,
    nonce: Vec<u8>,
    txid: u8,
}

impl World {
    fn new(allow: &[&str], quotas: Quotas) -> Self {
        let mut cfg = ServerConfig::new(REALM.into(), SECRET.to_vec(), [9; 44]);
        cfg.policy = PeerPolicy::new(
            allow.iter().map(|c| c.parse::<Cidr>().unwrap()).collect(),
            vec![sa("192.0.2.1:3478")],
        );
        cfg.quotas = quotas;
        World {
            s: Server::new(cfg),
            now: Now {
                instant: Instant::now(),
                unix_secs: T0,
            },
            out: Vec::new(),
            relay_port: 50000,
        }
    }

    fn advance(&mut self, d: Duration) {
        self.now.instant += d;
        self.now.unix_secs += d.as_secs();
        self.s.handle_timeout(self.now.instant);
    }

    fn client(&self, addr: &str, id: &str, expires: u64) -> Client {
        let c = creds::mint_turn_credential(SECRET, expires, &[0; 12]);
        let username = c.username.replace("AAAAAAAAAAAAAAAA", id);
        Client {
            five: FiveTuple {
                transport: Transport::Udp,
                client: sa(addr),
                server: sa("192.0.2.1:3478"),
            },
            password: creds::turn_password(SECRET, &username),
            username,
            nonce: Vec::new(),
            txid: 0,
        }
    }

    /// Sends a request built by `build`, authenticated when the client has
    /// a nonce; gives the action and the parsed reply (if any).
    fn request(
        &mut self,
        c: &mut Client,
        m: u16,
        build: impl Fn(&mut Encoder<'_>),
    ) -> (Option<u16>, Vec<u8>) {
        c.txid = c.txid.wrapping_add(1);
        let txid = [c.txid; 12];
        let mut req = Vec::new();
        {
            let mut e = Encoder::new(&mut req, m, Class::Request, &txid);
            build(&mut e);
            if !c.nonce.is_empty() {
                let key = stun::long_term_key(&c.username, REALM, &c.password);
                e.attr(attr::USERNAME, c.username.as_bytes())
                    .attr(attr::REALM, REALM.as_bytes())
                    .attr(attr::NONCE, &c.nonce)
                    .integrity(&key);
            }
        }
        let action = self.s.handle_client(self.now, c.five, &req, &mut self.out);
        match action {
            ClientAction::Reply => {}
            ClientAction::Allocate(p) => {
                self.relay_port += 1;
                let relay = SocketAddr::from(([192, 0, 2, 1], self.relay_port));
                self.s
                    .allocation_bound(self.now, p, Some(relay), &mut self.out);
            }
            other => panic!("unexpected {other:?}"),
        }
        let reply = Message::parse(&self.out).unwrap();
        assert_eq!(reply.transaction_id(), txid);
        if let Some(n) = reply.get(attr::NONCE) {
            c.nonce = n.to_vec();
        }
        let code = reply
            .get(attr::ERROR_CODE)
            .map(|v| stun::error_code(v).unwrap().0);
        if reply.class() == Class::Success && m != method::BINDING {
            let key = stun::long_term_key(&c.username, REALM, &c.password);
            assert!(reply.verify_integrity(&key), "success without integrity");
        }
        (code, self.out.clone())
    }

    /// Allocate with the 401 challenge round; gives the error code, if any.
    fn allocate(&mut self, c: &mut Client) -> Option<u16> {
        let udp = |e: &mut Encoder<'_>| {
            e.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]);
        };
        if c.nonce.is_empty() {
            let (code, reply) = self.request(c, method::ALLOCATE, udp);
            assert_eq!(code, Some(401));
            let m = Message::parse(&reply).unwrap();
            assert_eq!(m.get(attr::REALM), Some(REALM.as_bytes()));
        }
        self.request(c, method::ALLOCATE, udp).0
    }

    fn permit(&mut self, c: &mut Client, peer: &str) -> Option<u16> {
        let peer = sa(peer);
        self.request(c, method::CREATE_PERMISSION, |e| {
            e.xor_address(attr::XOR_PEER_ADDRESS, peer);
        })
        .0
    }

    fn bind(&mut self, c: &mut Client, channel: u16, peer: &str) -> Option<u16> {
        let peer = sa(peer);
        self.request(c, method::CHANNEL_BIND, |e| {
            e.u32(attr::CHANNEL_NUMBER, u32::from(channel) << 16)
                .xor_address(attr::XOR_PEER_ADDRESS, peer);
        })
        .0
    }

    fn alloc_of(&self, c: &Client) -> AllocId {
        self.s.allocation_of(&c.five).unwrap()
    }

    /// A datagram from `peer` on the relay of `c`; the frame for the client.
    fn peer_sends(&mut self, c: &Client, peer: &str, payload: &[u8]) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; FRAME_HEADROOM + payload.len() + FRAME_TAILROOM];
        buf[FRAME_HEADROOM..FRAME_HEADROOM + payload.len()].copy_from_slice(payload);
        let id = self.alloc_of(c);
        let (five, r) = self
            .s
            .handle_peer(self.now, id, sa(peer), &mut buf, payload.len())?;
        assert_eq!(five, c.five);
        Some(buf[r].to_vec())
    }
}

fn allocated(allow: &[&str]) -> (World, Client) {
    let mut w = World::new(allow, Quotas::default());
    let mut c = w.client("203.0.113.10:40000", "alice", T0 + 3600);
    assert_eq!(w.allocate(&mut c), None);
    (w, c)
}

#[test]
fn binding_request_answers_mapped_address() {
    let mut w = World::new(&[], Quotas::default());
    let mut c = w.client("203.0.113.10:40000", "alice", T0 + 60);
    let (code, reply) = w.request(&mut c, method::BINDING, |_| {});
    assert_eq!(code, None);
    let m = Message::parse(&reply).unwrap();
    let a = stun::xor_address(
        m.get(attr::XOR_MAPPED_ADDRESS).unwrap(),
        &m.transaction_id(),
        0,
    );
    assert_eq!(a, Ok(sa("203.0.113.10:40000")));
}

#[test]
fn allocate_with_rest_credential_succeeds() {
    let (w, c) = allocated(&[]);
    let m = Message::parse(&w.out).unwrap();
    assert_eq!(m.class(), Class::Success);
    let relay = stun::xor_address(
        m.get(attr::XOR_RELAYED_ADDRESS).unwrap(),
        &m.transaction_id(),
        0,
    )
    .unwrap();
    assert_eq!(Some(relay), w.s.relay_addr(w.alloc_of(&c)));
    let life = stun::u32_value(m.get(attr::LIFETIME).unwrap(), attr::LIFETIME).unwrap();
    assert_eq!(life, 600);
}

#[test]
fn expired_credential_refused() {
    let mut w = World::new(&[], Quotas::default());
    let mut c = w.client("203.0.113.10:40000", "alice", T0);
    assert_eq!(w.allocate(&mut c), Some(401));
    let mut c = w.client("203.0.113.10:40000", "alice", T0 - 1);
    assert_eq!(w.allocate(&mut c), Some(401));
    assert_eq!(w.s.allocation_count(), 0);
    assert_eq!(w.s.stats().unauthorized, 2);
}

#[test]
fn forged_credential_refused() {
    let mut w = World::new(&[], Quotas::default());
    // Password made with another secret.
    let mut c = w.client("203.0.113.10:40000", "alice", T0 + 60);
    c.password = creds::turn_password(b"guess", &c.username);
    assert_eq!(w.allocate(&mut c), Some(401));
    // Expiry extended by the holder.
    let mut c = w.client("203.0.113.10:40000", "alice", T0 + 60);
    c.username = c
        .username
        .replacen(&(T0 + 60).to_string(), &(T0 + 99_999).to_string(), 1);
    assert_eq!(w.allocate(&mut c), Some(401));
    // Not a REST username at all.
    let mut c = w.client("203.0.113.10:40000", "alice", T0 + 60);
    c.username = "alice".into();
    c.password = creds::turn_password(SECRET, "alice");
    assert_eq!(w.allocate(&mut c), Some(401));
    assert_eq!(w.s.allocation_count(), 0);
}

#[test]
fn stale_nonce_gets_438_then_works() {
    let mut w = World::new(&[], Quotas::default());
    let mut c = w.client("203.0.113.10:40000", "alice", T0 + 7200);
    let udp = |e: &mut Encoder<'_>| {
        e.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]);
    };
    assert_eq!(w.request(&mut c, method::ALLOCATE, udp).0, Some(401));
    w.advance(Duration::from_secs(601));
    assert_eq!(w.request(&mut c, method::ALLOCATE, udp).0, Some(438));
    assert_eq!(w.request(&mut c, method::ALLOCATE, udp).0, None);
    // A nonce made for another client address is stale for this one.
    let mut other = w.client("203.0.113.11:40000", "bob", T0 + 7200);
    other.nonce = c.nonce.clone();
    assert_eq!(w.request(&mut other, method::ALLOCATE, udp).0, Some(438));
}

#[test]
fn relay_to_127_0_0_1_refused() {
    let (mut w, mut c) = allocated(&[]);
    for peer in [
        "127.0.0.1:5000",
        "10.0.0.1:5000",
        "169.254.169.254:80",
        "[::ffff:127.0.0.1]:5000",
        "[::1]:5000",
        "[64:ff9b::a9fe:a9fe]:80",
        "[2002:7f00:1::]:5000",
    ] {
        assert_eq!(w.permit(&mut c, peer), Some(403), "permission {peer}");
        assert_eq!(w.bind(&mut c, 0x4000, peer), Some(403), "channel {peer}");
    }
    // The node's own TURN port, even on its public address.
    assert_eq!(w.permit(&mut c, "192.0.2.1:3478"), Some(403));
    assert_eq!(w.s.stats().forbidden, 15);
    // And nothing from such a peer reaches the client.
    assert_eq!(w.peer_sends(&c, "127.0.0.1:5000", b"x"), None);
}

#[test]
fn allow_list_permits_loopback() {
    let (mut w, mut c) = allocated(&["127.0.0.0/8"]);
    assert_eq!(w.permit(&mut c, "127.0.0.1:5000"), None);
    assert_eq!(w.permit(&mut c, "10.0.0.1:5000"), Some(403));
    // A public IPv6 peer on an IPv4 relay: family mismatch.
    assert_eq!(w.permit(&mut c, "[2001:4860::1]:5000"), Some(443));
}

#[test]
fn send_and_data_indications_relay_with_permission() {
    let (mut w, mut c) = allocated(&[]);
    let peer = sa("198.51.100.7:9000");
    let send = |txid: u8| {
        let mut b = Vec::new();
        Encoder::new(&mut b, method::SEND, Class::Indication, &[txid; 12])
            .xor_address(attr::XOR_PEER_ADDRESS, peer)
            .attr(attr::DATA, b"hello");
        b
    };
    // No permission yet: dropped both ways.
    let msg = send(1);
    assert_eq!(
        w.s.handle_client(w.now, c.five, &msg, &mut w.out),
        ClientAction::Drop
    );
    assert_eq!(w.peer_sends(&c, "198.51.100.7:9000", b"back"), None);
    assert_eq!(w.permit(&mut c, "198.51.100.7:1"), None);
    let msg = send(2);
    let id = w.alloc_of(&c);
    assert_eq!(
        w.s.handle_client(w.now, c.five, &msg, &mut w.out),
        ClientAction::Relay {
            alloc: id,
            peer,
            data: b"hello"
        }
    );
    // Permission is per IP: any port of that peer may answer.
    let frame = w.peer_sends(&c, "198.51.100.7:9001", b"back").unwrap();
    let m = Message::parse(&frame).unwrap();
    assert_eq!((m.method(), m.class()), (method::DATA, Class::Indication));
    assert_eq!(m.get(attr::DATA), Some(&b"back"[..]));
    // Permissions expire after 300 s.
    w.advance(Duration::from_secs(301));
    assert_eq!(w.peer_sends(&c, "198.51.100.7:9001", b"late"), None);
}

#[test]
fn channel_bind_and_channel_data_relay_both_ways() {
    let (mut w, mut c) = allocated(&[]);
    assert_eq!(w.bind(&mut c, 0x4001, "198.51.100.7:9000"), None);
    let id = w.alloc_of(&c);
    let cd = [0x40, 0x01, 0x00, 0x03, 1, 2, 3, 0];
    assert_eq!(
        w.s.handle_client(w.now, c.five, &cd, &mut w.out),
        ClientAction::Relay {
            alloc: id,
            peer: sa("198.51.100.7:9000"),
            data: &[1, 2, 3]
        }
    );
    // Unbound channel: dropped.
    let cd2 = [0x40, 0x02, 0x00, 0x01, 1, 0, 0, 0];
    assert_eq!(
        w.s.handle_client(w.now, c.five, &cd2, &mut w.out),
        ClientAction::Drop
    );
    let frame = w.peer_sends(&c, "198.51.100.7:9000", &[9, 9]).unwrap();
    assert_eq!(frame, [0x40, 0x01, 0x00, 0x02, 9, 9]);
    // Re-binding the same pair refreshes; a conflicting one is refused.
    assert_eq!(w.bind(&mut c, 0x4001, "198.51.100.7:9000"), None);
    assert_eq!(w.bind(&mut c, 0x4001, "198.51.100.8:9000"), Some(400));
    assert_eq!(w.bind(&mut c, 0x4002, "198.51.100.7:9000"), Some(400));
    assert_eq!(w.bind(&mut c, 0x3FFF, "198.51.100.9:9000"), Some(400));
    assert_eq!(w.bind(&mut c, 0x7FFF, "198.51.100.9:9000"), Some(400));
}

#[test]
fn allocations_per_user_quota_gives_486() {
    let quotas = Quotas {
        max_allocations_per_user: 2,
        ..Quotas::default()
    };
    let mut w = World::new(&[], quotas);
    for port in 1..=2 {
        let mut c = w.client(&format!("203.0.113.10:{port}"), "alice", T0 + 60);
        assert_eq!(w.allocate(&mut c), None);
    }
    let mut c = w.client("203.0.113.10:3", "alice", T0 + 60);
    assert_eq!(w.allocate(&mut c), Some(486));
    // Another credential is not affected.
    let mut c = w.client("203.0.113.10:4", "bobby", T0 + 60);
    assert_eq!(w.allocate(&mut c), None);
    assert_eq!(w.s.stats().over_quota, 1);
}

#[test]
fn total_allocations_quota_gives_486() {
    let quotas = Quotas {
        max_allocations: 2,
        ..Quotas::default()
    };
    let mut w = World::new(&[], quotas);
    for (port, id) in [(1, "user1"), (2, "user2")] {
        let mut c = w.client(&format!("203.0.113.10:{port}"), id, T0 + 60);
        assert_eq!(w.allocate(&mut c), None);
    }
    let mut c = w.client("203.0.113.10:3", "user3", T0 + 60);
    assert_eq!(w.allocate(&mut c), Some(486));
}

#[test]
fn bandwidth_quota_drops_excess() {
    let quotas = Quotas {
        bandwidth_per_allocation: 1000,
        ..Quotas::default()
    };
    let mut w = World::new(&[], quotas);
    let mut c = w.client("203.0.113.10:1", "alice", T0 + 600);
    assert_eq!(w.allocate(&mut c), None);
    assert_eq!(w.bind(&mut c, 0x4000, "198.51.100.7:9000"), None);
    let mut cd = vec![0x40, 0x00, 0x01, 0x90];
    cd.resize(4 + 400, 0);
    let relayed = |w: &mut World| {
        matches!(
            w.s.handle_client(w.now, c.five, &cd, &mut w.out),
            ClientAction::Relay { .. }
        )
    };
    assert!(relayed(&mut w));
    assert!(relayed(&mut w));
    assert!(!relayed(&mut w), "over 1000 B/s must be dropped");
    assert_eq!(w.peer_sends(&c, "198.51.100.7:9000", &[0; 300]), None);
    w.advance(Duration::from_secs(1));
    assert!(relayed(&mut w));
}

#[test]
fn refresh_zero_deletes_and_expiry_closes() {
    let (mut w, mut c) = allocated(&[]);
    let id = w.alloc_of(&c);
    let (code, _) = w.request(&mut c, method::REFRESH, |e| {
        e.u32(attr::LIFETIME, 0);
    });
    assert_eq!(code, None);
    assert_eq!(w.s.poll_output(), Some(Output::AllocationClosed(id)));
    assert_eq!(w.s.allocation_count(), 0);
    // A new one expires after its lifetime unless refreshed.
    assert_eq!(w.allocate(&mut c), None);
    let id = w.alloc_of(&c);
    w.advance(Duration::from_secs(500));
    let (code, _) = w.request(&mut c, method::REFRESH, |e| {
        e.u32(attr::LIFETIME, 600);
    });
    assert_eq!(code, None);
    w.advance(Duration::from_secs(500));
    assert_eq!(w.s.poll_output(), None);
    w.advance(Duration::from_secs(101));
    assert_eq!(w.s.poll_output(), Some(Output::AllocationClosed(id)));
}

#[test]
fn allocation_never_outlives_its_credential() {
    let mut w = World::new(&[], Quotas::default());
    let mut c = w.client("203.0.113.10:1", "alice", T0 + 30);
    assert_eq!(w.allocate(&mut c), None);
    let m = Message::parse(&w.out).unwrap();
    let life = stun::u32_value(m.get(attr::LIFETIME).unwrap(), attr::LIFETIME).unwrap();
    assert_eq!(life, 30);
}

#[test]
fn other_credential_on_same_allocation_gets_441_and_unknown_allocation_437() {
    let (mut w, c) = allocated(&[]);
    let mut mallory = w.client("203.0.113.10:40000", "mallory", T0 + 60);
    mallory.nonce = c.nonce.clone();
    assert_eq!(w.permit(&mut mallory, "198.51.100.7:1"), Some(441));
    let mut stranger = w.client("203.0.113.99:1", "stranger", T0 + 60);
    let (code, _) = w.request(&mut stranger, method::REFRESH, |_| {});
    assert_eq!(code, Some(401));
    assert_eq!(w.permit(&mut stranger, "198.51.100.7:1"), Some(437));
}

#[test]
fn unknown_required_attribute_gets_420() {
    let mut w = World::new(&[], Quotas::default());
    let mut c = w.client("203.0.113.10:1", "alice", T0 + 60);
    let (code, reply) = w.request(&mut c, method::ALLOCATE, |e| {
        e.attr(attr::RESERVATION_TOKEN, &[0; 8]);
    });
    assert_eq!(code, Some(420));
    let m = Message::parse(&reply).unwrap();
    assert_eq!(m.get(attr::UNKNOWN_ATTRIBUTES), Some(&[0x00, 0x22][..]));
}

#[test]
fn stream_client_gets_padded_channel_data_and_closing_frees() {
    let mut w = World::new(&[], Quotas::default());
    let mut c = w.client("203.0.113.10:1", "alice", T0 + 600);
    c.five.transport = Transport::Tcp;
    assert_eq!(w.allocate(&mut c), None);
    assert_eq!(w.bind(&mut c, 0x4000, "198.51.100.7:9000"), None);
    let frame = w
        .peer_sends(&c, "198.51.100.7:9000", &[1, 2, 3, 4, 5])
        .unwrap();
    assert_eq!(frame.len(), 12);
    let id = w.alloc_of(&c);
    w.s.client_closed(&c.five);
    assert_eq!(w.s.poll_output(), Some(Output::AllocationClosed(id)));
}
