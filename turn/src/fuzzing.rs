//! Bodies of the fuzz targets, shared by the cargo-fuzz crate in
//! `turn/fuzz/` and by the stable smoke test `tests/fuzz_smoke.rs`.
//!
//! - `decode`: parsing a STUN message, ChannelData or a stream frame never
//!   panics; every typed attribute decoder accepts or refuses any value
//!   without panicking; a parsed message re-encodes (same method, class,
//!   transaction id and attributes) to bytes that parse to the same.
//! - `server`: a [`Server`] fed arbitrary client messages and peer
//!   datagrams never panics and keeps its tables consistent; its cached
//!   [`Server::poll_timeout`] is never later than the earliest expiry.
//!
//! Not part of the stable API.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::server::{ClientAction, FiveTuple, Now, Server, ServerConfig, Transport};
use crate::stun::{self, Encoder, Message};

/// Decode, check typed decoders, and if it parses, the round trip.
pub fn decode(data: &[u8]) {
    let _ = stun::parse_channel_data(data);
    let _ = stun::stream_frame_len(data);
    let Ok(msg) = Message::parse(data) else {
        return;
    };
    let txid = msg.transaction_id();
    for (t, v) in msg.attributes() {
        let _ = stun::xor_address(v, &txid, t);
        let _ = stun::u32_value(v, t);
        let _ = stun::error_code(v);
        let _ = stun::channel_number(v);
        let _ = stun::requested_transport(v);
        let _ = stun::text(v, t);
    }
    let _ = msg.verify_integrity(b"key");
    let mut buf = Vec::new();
    let mut e = Encoder::new(&mut buf, msg.method(), msg.class(), &txid);
    for (t, v) in msg.attributes() {
        e.attr(t, v);
    }
    let again = match Message::parse(&buf) {
        Ok(m) => m,
        Err(err) => panic!("re-encoded message does not parse: {err}"),
    };
    assert_eq!(again.method(), msg.method());
    assert_eq!(again.class(), msg.class());
    assert_eq!(again.transaction_id(), txid);
    assert!(
        again.attributes().eq(msg.attributes()),
        "attributes changed in the round trip"
    );
}

/// Feed a server arbitrary input as chunks `kind, len (u16 BE), bytes`:
/// `kind` picks what a chunk is (client message on UDP/TCP from one of four
/// clients, peer datagram for one of four allocations, time step).
pub fn server(data: &[u8]) -> crate::server::Stats {
    let start = Instant::now();
    let mut cfg = ServerConfig::new("fuzz.invalid".into(), b"secret".to_vec(), [7; 44]);
    // Everything allowed, so that fuzzed peers get past the policy.
    let all = crate::Cidr::new([0, 0, 0, 0].into(), 0)
        .into_iter()
        .collect();
    cfg.policy = crate::PeerPolicy::new(all, vec![]);
    let mut s = Server::new(cfg);
    let mut now = Now {
        instant: start,
        unix_secs: 1_000,
    };
    let server_addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 3478));
    let mut out = Vec::new();
    let mut buf = vec![0u8; stun::FRAME_HEADROOM + 2048 + stun::FRAME_TAILROOM];
    let mut data = data;
    while let [kind, hi, lo, tail @ ..] = data {
        let n = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
        let (rest, next) = tail.split_at(n);
        data = next;
        let kind = *kind;
        let client = SocketAddr::from(([10, 0, 0, kind & 3], 5000));
        let transport = if kind & 4 == 0 {
            Transport::Udp
        } else {
            Transport::Tcp
        };
        let five = FiveTuple {
            transport,
            client,
            server: server_addr,
        };
        // Kinds 0x80..=0x9F: `rest` becomes the attributes of a correctly
        // authenticated request (bits 3–4: Allocate, Refresh,
        // CreatePermission, ChannelBind), so the fuzzer reaches
        // allocations, permissions and channels without forging MACs.
        let authed;
        let rest = if kind >> 5 == 4 {
            authed = authenticated(now, five, kind, rest, &mut s, &mut out);
            &authed[..]
        } else {
            rest
        };
        match kind >> 4 {
            0..=9 => match s.handle_client(now, five, rest, &mut out) {
                ClientAction::Allocate(p) => {
                    let relay = SocketAddr::from(([127, 0, 0, 1], 40000 + u16::from(kind)));
                    let _ = s.allocation_bound(now, p, Some(relay), &mut out);
                }
                ClientAction::Relay { data, .. } => assert!(data.len() <= rest.len()),
                ClientAction::Reply => {
                    assert!(Message::parse(&out).is_ok(), "reply does not parse");
                }
                ClientAction::Drop => {}
            },
            10..=13 => {
                let len = rest.len().min(2048);
                buf[stun::FRAME_HEADROOM..stun::FRAME_HEADROOM + len].copy_from_slice(&rest[..len]);
                let from = SocketAddr::from(([8, 8, 8, kind & 3], 6000));
                let _ = s.handle_peer(
                    now,
                    crate::AllocId(u64::from(kind & 3)),
                    from,
                    &mut buf,
                    len,
                );
            }
            _ => {
                let step = u64::from(rest.first().copied().unwrap_or(1));
                now.instant += Duration::from_secs(step * 10);
                now.unix_secs += step * 10;
                s.handle_timeout(now.instant);
                while s.poll_output().is_some() {}
            }
        }
        // The cached timeout may be early, never late.
        if let Some(due) = s.scan_timeout() {
            assert!(
                s.poll_timeout().is_some_and(|t| t <= due),
                "poll_timeout later than the earliest expiry"
            );
        }
    }
    s.stats()
}

/// Builds a request with the given attribute bytes (added as one raw blob
/// when they form whole attributes), completed with USERNAME, REALM, a
/// NONCE obtained from the server, and a valid MESSAGE-INTEGRITY.
fn authenticated(
    now: Now,
    five: FiveTuple,
    kind: u8,
    attrs: &[u8],
    s: &mut Server,
    out: &mut Vec<u8>,
) -> Vec<u8> {
    use crate::stun::{Class, attr, method};
    let m = [
        method::ALLOCATE,
        method::REFRESH,
        method::CREATE_PERMISSION,
        method::CHANNEL_BIND,
    ][usize::from((kind >> 3) & 3)];
    let txid = [kind; 12];
    // Ask for a nonce: an unauthenticated request gets 401 with one.
    let mut probe = Vec::new();
    Encoder::new(&mut probe, m, Class::Request, &txid);
    let _ = s.handle_client(now, five, &probe, out);
    let nonce = Message::parse(out)
        .ok()
        .and_then(|r| r.get(attr::NONCE).map(<[u8]>::to_vec))
        .unwrap_or_default();
    let username = format!("{}:fuzz", now.unix_secs + 3600);
    let password = telenode_signaling::creds::turn_password(b"secret", &username);
    let key = stun::long_term_key(&username, "fuzz.invalid", &password);
    let mut req = Vec::new();
    let mut e = Encoder::new(&mut req, m, Class::Request, &txid);
    // Split the fuzz bytes into attributes: type (2), length (1), value.
    let mut rest = attrs;
    while let [t0, t1, l, tail @ ..] = rest {
        let n = usize::from(*l).min(tail.len());
        e.attr(u16::from_be_bytes([*t0, *t1]) & 0x7FFF, &tail[..n]);
        rest = &tail[n..];
    }
    e.attr(attr::USERNAME, username.as_bytes())
        .attr(attr::REALM, b"fuzz.invalid")
        .attr(attr::NONCE, &nonce)
        .integrity(&key);
    req
}
