//! Runs the fuzz target bodies (`telenode_signaling::fuzzing`, shared with
//! the cargo-fuzz crate in `signaling/fuzz/`) on stable Rust over a few
//! thousand deterministic inputs: pseudo-random bytes, and valid frames
//! mutated byte by byte. A failure prints the input; add it to
//! `REGRESSIONS` below once fixed.

use serde_json::Value;
use telenode_signaling::fuzzing;
use telenode_signaling::msg::{
    ClientMsg, EndReason, ErrorCode, Hello, IceServer, Role, SealedEnvelope, ServerMsg, State,
    encode_client, encode_server,
};
use telenode_signaling::seal::{Direction, LinkKey, Sealer};

/// Marsaglia's xorshift64*: deterministic, no dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// Bytes that make JSON-ish mutations likely to stay interesting.
const DICT: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b":",
    b",",
    b"null",
    b"true",
    b"1",
    b"-1",
    b"2",
    b"1.0",
    b"9007199254740992",
    b"1e999",
    b"\\u0000",
    b"\\ud800",
    b"\"v\"",
    b"\"type\"",
    b"\"seq\"",
    b"\"epoch\"",
    b"\"ct\"",
    b"\"resume\"",
    b"\"role\"",
    b"\"patient\"",
    b"\"doctor\"",
    b"=",
    b"+",
    b"/",
    b"\xff",
    b"\xc3\xa9",
    b" ",
];

/// Byte-level mutations: flips, deletions, dictionary words, duplicated
/// slices, random bytes.
fn mutate_bytes(rng: &mut XorShift, seed: &[u8]) -> Vec<u8> {
    let mut data = seed.to_vec();
    let rounds = if rng.below(2) == 0 {
        1
    } else {
        1 + rng.below(4)
    };
    for _ in 0..rounds {
        let at = rng.below(data.len() + 1);
        match rng.below(6) {
            0 if !data.is_empty() => {
                let i = at.min(data.len() - 1);
                // Mostly stay within ASCII so the frame stays UTF-8.
                let bits = if rng.below(8) == 0 { 8 } else { 7 };
                data[i] ^= 1 << rng.below(bits);
            }
            1 if !data.is_empty() => {
                let end = (at + 1 + rng.below(8)).min(data.len());
                data.drain(at.min(end)..end);
            }
            2 => {
                let word = DICT[rng.below(DICT.len())];
                data.splice(at..at, word.iter().copied());
            }
            3 if !data.is_empty() => {
                let i = at.min(data.len() - 1);
                data[i] = b' ' + (rng.next() % 95) as u8;
            }
            4 if data.len() > 2 => {
                // Duplicate a slice (duplicate keys, repeated values).
                let start = rng.below(data.len());
                let end = (start + 1 + rng.below(16)).min(data.len());
                let piece: Vec<u8> = data[start..end].to_vec();
                data.splice(at..at, piece);
            }
            _ => {
                let len = rng.below(4) + 1;
                let extra = rng.bytes(len);
                data.splice(at..at, extra);
            }
        }
    }
    data
}

/// A JSON value of a random shape.
fn random_value(rng: &mut XorShift) -> Value {
    match rng.below(12) {
        0 => Value::Null,
        1 => Value::Bool(rng.below(2) == 0),
        2 => Value::from(rng.below(4) as u64),
        3 => Value::from(-1),
        4 => Value::from((1u64 << 53) - 1 + rng.below(3) as u64),
        5 => Value::from(1.5),
        6 => Value::Array(vec![Value::from("stun:example.org")]),
        7 => Value::Object(Default::default()),
        8 => Value::from(["patient", "doctor", "1", "sealed", "ping"][rng.below(5)]),
        _ => {
            // base64url-ish text of a random length (16-byte epochs are 22).
            let len = [0, 21, 22, 23, 43, 44][rng.below(6)];
            let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            let s: String = (0..len)
                .map(|_| alphabet[rng.below(alphabet.len())] as char)
                .collect();
            Value::from(s)
        }
    }
}

/// Structure-aware mutations of a JSON object: drop, retype, add or edit a
/// field. These mostly stay valid JSON and often stay valid messages.
fn mutate_json(rng: &mut XorShift, seed: &[u8]) -> Vec<u8> {
    let Ok(Value::Object(mut map)) = serde_json::from_slice::<Value>(seed) else {
        return seed.to_vec();
    };
    for _ in 0..=rng.below(2) {
        let keys: Vec<String> = map.keys().cloned().collect();
        let key = keys[rng.below(keys.len())].clone();
        match rng.below(5) {
            0 => {
                map.remove(&key);
            }
            1 => {
                map.insert(key, random_value(rng));
            }
            2 => {
                let name = [
                    "resume",
                    "v",
                    "type",
                    "seq",
                    "extra",
                    "ice_servers",
                    "reason",
                ][rng.below(7)];
                map.insert(name.to_owned(), random_value(rng));
            }
            3 => {
                if let Some(Value::String(s)) = map.get_mut(&key) {
                    if rng.below(2) == 0 {
                        s.pop();
                    } else {
                        s.push(['A', 'g', '-', '=', 'é', '\0'][rng.below(6)]);
                    }
                }
            }
            _ => {
                if let Some(Value::Number(n)) = map.get(&key).cloned() {
                    let v = n.as_u64().unwrap_or(0);
                    map.insert(key, Value::from(v.wrapping_add(rng.below(3) as u64)));
                }
            }
        }
    }
    serde_json::to_vec(&map).expect("serialise")
}

fn mutate(rng: &mut XorShift, seed: &[u8]) -> Vec<u8> {
    match rng.below(3) {
        0 => mutate_bytes(rng, seed),
        1 => mutate_json(rng, seed),
        _ => {
            let data = mutate_json(rng, seed);
            mutate_bytes(rng, &data)
        }
    }
}

fn envelope() -> SealedEnvelope {
    let key = LinkKey::from_bytes([0x11; 32]);
    Sealer::new(
        &key,
        "ZnV6ei1jb25zdWx0YXRpb24",
        Direction::DoctorToPatient,
        [1; 16],
    )
    .seal(b"{\"kind\":\"chat\",\"text\":\"seed\"}")
    .expect("seal")
}

fn client_seeds() -> Vec<Vec<u8>> {
    [
        ClientMsg::Hello(Hello::Patient {
            token: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8".into(),
            resume: Some("cmVzdW1l".into()),
        }),
        ClientMsg::Hello(Hello::Doctor {
            consultation: "AAECAwQFBgcICQoLDA0ODw".into(),
            session: "s".into(),
        }),
        ClientMsg::Sealed(envelope()),
        ClientMsg::Admit,
        ClientMsg::Connected { path: None },
        ClientMsg::End,
        ClientMsg::Leave,
        ClientMsg::Ping,
    ]
    .iter()
    .map(|m| encode_client(m).into_bytes())
    .collect()
}

fn server_seeds() -> Vec<Vec<u8>> {
    let mut msgs = vec![
        ServerMsg::Welcome {
            role: Role::Patient,
            consultation: "c".into(),
            state: State::Waiting,
            peer_present: false,
            resume: Some("r".into()),
            ice_servers: vec![IceServer {
                urls: vec!["turn:example.org?transport=tcp".into()],
                username: Some("u".into()),
                credential: Some("p".into()),
            }],
        },
        ServerMsg::PatientWaiting,
        ServerMsg::Admitted {
            ice_servers: vec![],
        },
        ServerMsg::PeerJoined,
        ServerMsg::PeerLeft,
        ServerMsg::Sealed(envelope()),
        ServerMsg::Ended {
            reason: EndReason::DoctorEnded,
        },
        ServerMsg::Pong,
    ];
    msgs.extend(ErrorCode::ALL.map(ErrorCode::to_server_msg));
    msgs.iter().map(|m| encode_server(m).into_bytes()).collect()
}

/// Crashes found earlier, kept as named regressions.
const REGRESSIONS: &[(&str, &[u8])] = &[
    ("duplicate key", br#"{"v":1,"type":"ping","v":1}"#),
    ("deep nesting", b"{\"v\":1,\"x\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["),
    ("lone surrogate", br#"{"v":1,"type":"hello","role":"patient","token":"\ud800"}"#),
    ("huge seq", br#"{"v":1,"type":"sealed","epoch":"AQEBAQEBAQEBAQEBAQEBAQ","seq":1e400,"ct":"AAAAAAAAAAAAAAAAAAAAAA"}"#),
];

fn run(name: &str, target: fn(&[u8]), seeds: &[Vec<u8>], iterations: usize, seed: u64) {
    let mut rng = XorShift(seed);
    let check = |data: &[u8]| {
        let result = std::panic::catch_unwind(|| target(data));
        assert!(
            result.is_ok(),
            "{name} panicked on input {:?}",
            String::from_utf8_lossy(data)
        );
    };
    for (_, data) in REGRESSIONS {
        check(data);
    }
    for s in seeds {
        check(s);
    }
    for i in 0..iterations {
        let data = if i % 4 == 0 || seeds.is_empty() {
            let len = rng.below(200);
            rng.bytes(len)
        } else {
            let seed = &seeds[rng.below(seeds.len())];
            let mut data = mutate(&mut rng, seed);
            if i % 16 == 1 {
                // Splice two seeds.
                let other = &seeds[rng.below(seeds.len())];
                let cut = rng.below(other.len());
                data.extend_from_slice(&other[cut..]);
            }
            data
        };
        check(&data);
    }
}

#[test]
fn fuzz_smoke_decode_client() {
    run(
        "decode_client",
        fuzzing::decode_client,
        &client_seeds(),
        4000,
        0x9e37_79b9_7f4a_7c15,
    );
}

#[test]
fn fuzz_smoke_decode_server() {
    run(
        "decode_server",
        fuzzing::decode_server,
        &server_seeds(),
        4000,
        0xd1b5_4a32_d192_ed03,
    );
}

#[test]
fn fuzz_smoke_open_envelope() {
    // Random op streams, plus mutated sealed frames for the raw path.
    let seeds: Vec<Vec<u8>> = client_seeds()
        .into_iter()
        .chain((0..8u8).map(|i| (0..64).map(|j| i.wrapping_mul(31) ^ j).collect()))
        .collect();
    run(
        "open_envelope",
        fuzzing::open_envelope,
        &seeds,
        2000,
        0x8cb9_2ba7_2f3d_8dd7,
    );
}

#[test]
fn fuzz_smoke_room() {
    run("room", fuzzing::room, &[], 2000, 0xa076_1d64_78bd_642f);
}

#[test]
fn oversized_frame_is_refused_without_panicking() {
    let mut big = encode_client(&ClientMsg::Ping).into_bytes();
    big.resize(64 * 1024 + 1, b' ');
    fuzzing::decode_client(&big);
    fuzzing::decode_server(&big);
}
