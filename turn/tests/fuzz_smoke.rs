//! The fuzz target bodies (`telenode_turn::fuzzing`) over many
//! pseudo-random inputs, on stable, in `cargo test`; plus named regression
//! inputs.
#![allow(clippy::unwrap_used)]

use telenode_turn::fuzzing;
use telenode_turn::stun::{Class, Encoder, attr, method};

/// Inputs that once broke a target, by name.
const REGRESSIONS: &[(&str, &[u8])] = &[
    (
        "attribute_header_at_end",
        &[
            0, 1, 0, 4, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0, 6, 0, 0,
        ],
    ),
    ("channel_data_len_past_end", &[0x40, 0, 0xff, 0xff, 1]),
];

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn byte(&mut self) -> u8 {
        (self.next() >> 32) as u8
    }
}

/// Valid messages to mutate from.
fn seeds() -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    for (m, c) in [
        (method::ALLOCATE, Class::Request),
        (method::SEND, Class::Indication),
        (method::CHANNEL_BIND, Class::Request),
        (method::BINDING, Class::Success),
    ] {
        let mut b = Vec::new();
        Encoder::new(&mut b, m, c, &[5; 12])
            .attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0])
            .xor_address(attr::XOR_PEER_ADDRESS, "198.51.100.1:7".parse().unwrap())
            .u32(attr::CHANNEL_NUMBER, 0x4000_0000)
            .attr(attr::USERNAME, b"1:x")
            .attr(attr::DATA, b"payload")
            .integrity(b"k")
            .fingerprint();
        v.push(b);
    }
    v.push(vec![0x40, 0x00, 0x00, 0x02, 7, 7, 0, 0]);
    v
}

#[test]
fn decode_smoke() {
    for (name, input) in REGRESSIONS {
        eprintln!("regression {name}");
        fuzzing::decode(input);
    }
    let seeds = seeds();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for i in 0..20_000 {
        let mut input = seeds[i % seeds.len()].clone();
        match rng.next() % 4 {
            // Random bytes.
            0 => {
                let n = (rng.next() % 120) as usize;
                input = (0..n).map(|_| rng.byte()).collect();
                if n > 8 && rng.next().is_multiple_of(2) {
                    input[0] &= 0x3f;
                    input[4..8].copy_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
                }
            }
            // Flip bytes of a valid message.
            1 => {
                for _ in 0..=(rng.next() % 4) {
                    let at = (rng.next() as usize) % input.len();
                    input[at] = rng.byte();
                }
            }
            // Truncate.
            2 => {
                let n = (rng.next() as usize) % (input.len() + 1);
                input.truncate(n);
            }
            // Valid as is.
            _ => {}
        }
        fuzzing::decode(&input);
    }
}

/// Authenticated requests (kinds 0x80–0x9F) with well-formed attributes
/// reach the allocation tables: allocate, then bind and permit.
#[test]
fn server_smoke_authenticated() {
    let mut rng = Rng(0x0123_4567_89AB_CDEF);
    // XOR-PEER-ADDRESS of 198.51.100.1:7 for txid-independent IPv4, a
    // REQUESTED-TRANSPORT and a CHANNEL-NUMBER, as (type, len, value).
    let peer = [0x00, 0x12, 8, 0, 1, 0x21, 0x15, 0xe7, 0x21, 0xc0, 0x43];
    let udp = [0x00, 0x19, 4, 17, 0, 0, 0];
    let channel = [0x00, 0x0c, 4, 0x40, 0x00, 0, 0];
    let (mut allocations, mut relayed, mut forbidden) = (0, 0, 0);
    for _ in 0..500 {
        let mut input = Vec::new();
        let mut chunk = |kind: u8, body: &[u8]| {
            input.push(kind);
            input.extend_from_slice(&(body.len() as u16).to_be_bytes());
            input.extend_from_slice(body);
        };
        let c = rng.byte() & 3;
        chunk(0x80 | c, &udp);
        chunk(0x90 | c, &peer);
        chunk(0x98 | c, &[&channel[..], &peer[..]].concat());
        for _ in 0..(rng.next() % 6) {
            let mut body = [&channel[..], &peer[..], &udp[..]].concat();
            let at = (rng.next() as usize) % body.len();
            body[at] = rng.byte();
            chunk(0x80 | (rng.byte() & 0x1F), &body);
            chunk(0x40 | c, &[0x40, 0x00, 0x00, 0x02, 1, 2]);
            chunk(0xA0 | c, b"peer data");
        }
        chunk(0xF0, &[rng.byte()]);
        let st = fuzzing::server(&input);
        allocations += st.allocations;
        relayed += st.relayed_packets;
        forbidden += st.forbidden;
    }
    // The smoke test must actually reach the tables, not stop at the MAC.
    assert!(allocations > 400, "{allocations}");
    assert!(relayed > 100, "{relayed}");
    assert!(forbidden > 0 || relayed > 0);
}

#[test]
fn server_smoke() {
    let seeds = seeds();
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    for _ in 0..2_000 {
        let mut input = Vec::new();
        for _ in 0..(rng.next() % 12) {
            let kind = rng.byte();
            let mut body = seeds[(rng.next() as usize) % seeds.len()].clone();
            if rng.next().is_multiple_of(2) {
                let at = (rng.next() as usize) % body.len();
                body[at] = rng.byte();
            }
            input.push(kind);
            input.extend_from_slice(&(body.len() as u16).to_be_bytes());
            input.extend_from_slice(&body);
        }
        let _ = fuzzing::server(&input);
    }
}
