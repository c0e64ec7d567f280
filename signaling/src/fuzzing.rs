//! Bodies of the fuzz targets, shared by the cargo-fuzz crate in
//! `signaling/fuzz/` and by the stable smoke test `tests/fuzz_smoke.rs`.
//!
//! Each body must never panic on any input, except through its own
//! assertions, which state the properties being checked:
//!
//! - `decode_client` / `decode_server`: decoding never panics; whatever
//!   decodes re-encodes to a frame that decodes to the same message and
//!   re-encodes identically (round trip).
//! - `open_envelope`: opening never panics; an [`Opener`] agrees, envelope by
//!   envelope, with a small reference model of the receiving rules, and a
//!   rejected envelope never changes its state.
//! - `room`: no input sequence panics the room or breaks its invariants (at
//!   most one connection per seat, no connection in a terminal state,
//!   `waiting` exactly when a patient sits unadmitted, state changes
//!   reported exactly).
//!
//! Not part of the stable API.

use std::collections::HashSet;
use std::fmt;
use std::time::{Duration, Instant};

use crate::msg::{self, ClientMsg, Hello, Role, SealedEnvelope, ServerMsg, State};
use crate::room::{ConnId, Input, Output, Room, RoomConfig, Seat};
use crate::seal::{Direction, LinkKey, Opener, Sealer};

/// Decode, and if that succeeds, check the round trip.
pub fn decode_client(data: &[u8]) {
    round_trip("client", data, msg::decode_client, msg::encode_client);
}

/// Decode, and if that succeeds, check the round trip.
pub fn decode_server(data: &[u8]) {
    round_trip("server", data, msg::decode_server, msg::encode_server);
}

/// The body of both decode targets; `side` names the messages in failures.
fn round_trip<M: PartialEq + fmt::Debug>(
    side: &str,
    data: &[u8],
    decode: fn(&str) -> Result<M, msg::DecodeError>,
    encode: fn(&M) -> String,
) {
    let Ok(frame) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(msg) = decode(frame) else {
        return;
    };
    let encoded = encode(&msg);
    match decode(&encoded) {
        Ok(again) => {
            assert_eq!(again, msg, "{side} round trip changed the message");
            assert_eq!(encode(&again), encoded, "encoding unstable");
        }
        Err(e) => panic!("re-encoded {side} message does not decode: {e}"),
    }
}

const FUZZ_CONSULTATION: &str = "ZnV6ei1jb25zdWx0YXRpb24";

/// The receiving rules, written out plainly (`PROTOCOL.md`).
#[derive(Default)]
struct Model {
    current: Option<(String, u64)>,
    seen: HashSet<String>,
}

impl Model {
    /// The expected outcome: `Ok(())` or the error kind. `genuine` says
    /// whether the envelope was sealed with the right key, direction,
    /// consultation, epoch and seq and not altered.
    fn expect(&self, env: &SealedEnvelope, genuine: bool) -> Result<(), &'static str> {
        if env.validate().is_err() {
            return Err("malformed");
        }
        match &self.current {
            Some((epoch, last)) if *epoch == env.epoch => {
                if env.seq <= *last {
                    return Err("replay");
                }
                if env.seq > last + 1 {
                    return Err("out_of_order");
                }
            }
            _ => {
                if self.seen.contains(&env.epoch) {
                    return Err("reused_epoch");
                }
                if env.seq != 0 {
                    return Err("epoch_not_at_zero");
                }
            }
        }
        if genuine { Ok(()) } else { Err("integrity") }
    }

    fn accept(&mut self, env: &SealedEnvelope) {
        self.seen.insert(env.epoch.clone());
        self.current = Some((env.epoch.clone(), env.seq));
    }
}

/// Feeds an [`Opener`] genuine, replayed, reordered, tampered, reflected and
/// relabelled envelopes chosen by `data`, checking each outcome against the
/// model. Then opens `data` itself if it decodes as a `sealed` frame.
pub fn open_envelope(data: &[u8]) {
    let key = LinkKey::from_bytes([0x11; 32]);
    let dir = Direction::DoctorToPatient;
    let mut sealers: Vec<Sealer> = (1..=3u8)
        .map(|i| Sealer::new(&key, FUZZ_CONSULTATION, dir, [i; 16]))
        .collect();
    let mut next_epoch = 3u8;
    // Same epoch bytes as sealer 0, but the other direction, the wrong
    // consultation, or the wrong key.
    let mut impostors = [
        Sealer::new(&key, FUZZ_CONSULTATION, dir.opposite(), [1; 16]),
        Sealer::new(&key, "another-consultation", dir, [1; 16]),
        Sealer::new(
            &LinkKey::from_bytes([0x22; 32]),
            FUZZ_CONSULTATION,
            dir,
            [1; 16],
        ),
    ];
    let mut opener = Opener::new(&key, FUZZ_CONSULTATION, dir);
    let mut model = Model::default();
    let mut sent: Vec<(SealedEnvelope, Vec<u8>)> = Vec::new();

    let mut bytes = data.iter().copied();
    let mut steps = 0;
    while let (Some(op), Some(arg)) = (bytes.next(), bytes.next()) {
        steps += 1;
        if steps > 256 {
            break;
        }
        let pick = |n: usize| usize::from(arg) % n.max(1);
        let (env, plaintext): (SealedEnvelope, Option<Vec<u8>>) = match op % 8 {
            // A genuine, new envelope from one of the senders.
            0..=2 => {
                let pt = vec![op, arg, steps as u8];
                let Ok(env) = sealers[pick(3)].seal(&pt) else {
                    continue;
                };
                sent.push((env.clone(), pt.clone()));
                (env, Some(pt))
            }
            // A genuine envelope sent before: replay, reorder, or a first
            // delivery after others.
            3 => match sent.get(pick(sent.len())) {
                Some((env, pt)) => (env.clone(), Some(pt.clone())),
                None => continue,
            },
            // An altered ciphertext.
            4 => {
                let Some((env, _)) = sent.get(pick(sent.len())) else {
                    continue;
                };
                let Some(mut ct) = env.ct_bytes() else {
                    continue;
                };
                let i = usize::from(op >> 3) % ct.len();
                ct[i] ^= 1 << (arg % 8);
                let ct = base64_encode(&ct);
                (SealedEnvelope { ct, ..env.clone() }, None)
            }
            // An impostor's envelope.
            5 => {
                let Ok(env) = impostors[pick(3)].seal(b"impostor") else {
                    continue;
                };
                (env, None)
            }
            // A genuine ciphertext under another seq or epoch.
            6 => {
                let Some((env, _)) = sent.get(pick(sent.len())) else {
                    continue;
                };
                let mut env = env.clone();
                if arg & 1 == 0 {
                    env.seq = env.seq.wrapping_add(u64::from(op >> 3) + 1) % msg::SEQ_LIMIT;
                } else {
                    let other = sealers[pick(3)].epoch().to_owned();
                    if other == env.epoch {
                        continue;
                    }
                    env.epoch = other;
                }
                (env, None)
            }
            // A sender starts a new epoch (as on reconnect or peer_joined).
            _ => {
                next_epoch = next_epoch.wrapping_add(1);
                if next_epoch <= 3 {
                    // Never hand out an epoch twice.
                    break;
                }
                sealers[pick(3)].rekey([next_epoch; 16]);
                continue;
            }
        };
        let expected = model.expect(&env, plaintext.is_some());
        let before = (opener.current_epoch().map(str::to_owned), opener.last_seq());
        match (expected, opener.open(&env)) {
            (Ok(()), Ok(got)) => {
                assert_eq!(Some(got), plaintext, "opened to the wrong plaintext");
                model.accept(&env);
            }
            (Err(kind), Err(e)) => {
                assert_eq!(e.kind(), kind, "wrong rejection: {e}");
                let after = (opener.current_epoch().map(str::to_owned), opener.last_seq());
                assert_eq!(before, after, "a rejected envelope changed the opener");
            }
            (Ok(()), Err(e)) => panic!("genuine envelope rejected: {e}"),
            (Err(kind), Ok(_)) => panic!("envelope accepted, expected {kind}"),
        }
    }

    // The raw input as a wire frame: whatever it is, opening must not panic,
    // and without the key (used nowhere else) it cannot succeed.
    if let Ok(frame) = std::str::from_utf8(data)
        && let Ok(ClientMsg::Sealed(env)) = msg::decode_client(frame)
    {
        let secret = LinkKey::from_bytes(*b"raw-path key, used nowhere else!");
        let mut fresh = Opener::new(&secret, FUZZ_CONSULTATION, dir);
        assert!(fresh.open(&env).is_err(), "forged envelope accepted");
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Drives a [`Room`] with inputs chosen by `data` and checks its invariants
/// after every step.
pub fn room(data: &[u8]) {
    let t0 = Instant::now();
    let mut now = t0;
    let config = RoomConfig {
        idle_timeout: Duration::from_secs(60),
        max_knocks: 3,
        rate_per_sec: 5,
        rate_burst: 8,
    };
    let initial = match data.first().map(|b| b % 8) {
        Some(1) => State::Admitted,
        Some(2) => State::InCall,
        Some(3) => State::Waiting,
        Some(4) => State::Ended,
        Some(5) => State::Expired,
        _ => State::Created,
    };
    let mut room = Room::new(
        "fuzz".into(),
        initial,
        t0 + Duration::from_secs(600),
        config,
    );
    let mut state = initial;
    let mut next_conn = 0u64;
    let mut resumes: Vec<String> = Vec::new();
    let mut steps = 0;

    let mut bytes = data.iter().copied().skip(1);
    while let (Some(op), Some(arg)) = (bytes.next(), bytes.next()) {
        steps += 1;
        if steps > 512 {
            break;
        }
        let conns: Vec<ConnId> = room.connections().collect();
        // Any connection, including one that never existed or was closed.
        let any_conn = || {
            conns
                .get(usize::from(arg) % (conns.len() + 1))
                .copied()
                .unwrap_or(ConnId(u64::from(arg % 8)))
        };
        match op % 8 {
            0 | 1 => {
                next_conn += 1;
                let seat = match (op % 2, arg % 3) {
                    (0, _) => Seat::Doctor,
                    (_, 0) => Seat::Patient { resume: None },
                    (_, 1) => Seat::Patient {
                        resume: resumes.last().cloned(),
                    },
                    _ => Seat::Patient {
                        resume: Some("not-a-resume".into()),
                    },
                };
                let joined = room.handle_input(
                    now,
                    Input::Join {
                        conn: ConnId(1000 + next_conn),
                        seat,
                        fresh_resume: format!("resume-{next_conn}"),
                        ice_servers: vec![],
                    },
                );
                assert!(joined.is_ok(), "fresh connection refused: {joined:?}");
            }
            2..=5 => {
                let conn = any_conn();
                let msg = match arg % 9 {
                    0 => ClientMsg::Ping,
                    1 => ClientMsg::Admit,
                    2 => ClientMsg::Connected { path: None },
                    3 => ClientMsg::End,
                    4 => ClientMsg::Leave,
                    5 => ClientMsg::Hello(Hello::Patient {
                        token: "t".into(),
                        resume: None,
                    }),
                    _ => ClientMsg::Sealed(SealedEnvelope {
                        epoch: "AAAAAAAAAAAAAAAAAAAAAA".into(),
                        seq: u64::from(op),
                        ct: "AAAAAAAAAAAAAAAAAAAAAA".into(),
                    }),
                };
                let known = room.seat_of(conn).is_some();
                let res = room.handle_input(now, Input::Message { conn, msg });
                // Expiry may close the connection first.
                if res.is_err() {
                    assert!(
                        !known || room.state().is_terminal(),
                        "known connection refused"
                    );
                }
            }
            6 => {
                let conn = any_conn();
                assert!(room.handle_input(now, Input::Closed { conn }).is_ok());
            }
            _ => {
                now += Duration::from_millis(u64::from(arg) * 250);
                if let Some(t) = room.poll_timeout() {
                    assert!(!room.state().is_terminal());
                    if t <= now {
                        room.handle_timeout(now);
                    }
                }
            }
        }

        // Drain and check the outputs.
        while let Some(out) = room.poll_output() {
            match out {
                Output::StateChanged(s) => {
                    assert_ne!(s, state, "StateChanged without a change");
                    state = s;
                }
                Output::Close { conn } => {
                    assert!(room.seat_of(conn).is_none(), "closed but still seated");
                }
                Output::Send {
                    msg:
                        ServerMsg::Welcome {
                            resume: Some(r), ..
                        },
                    ..
                } => resumes.push(r),
                Output::Send { .. } => {}
            }
        }
        assert_eq!(state, room.state(), "state change not reported");

        // Invariants.
        let seated: Vec<Role> = room.connections().filter_map(|c| room.seat_of(c)).collect();
        let doctors = seated.iter().filter(|r| **r == Role::Doctor).count();
        let patients = seated.iter().filter(|r| **r == Role::Patient).count();
        assert!(doctors <= 1 && patients <= 1, "two connections in one seat");
        if room.state().is_terminal() {
            assert!(seated.is_empty(), "connections left in a terminal state");
            assert!(room.is_finished());
        }
        assert_eq!(
            room.state() == State::Waiting,
            patients == 1 && !room.state().is_admitted() && !room.state().is_terminal(),
            "waiting iff an unadmitted patient is seated"
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn bodies_accept_trivial_inputs() {
        for data in [&b""[..], b"{}", b"\xff", br#"{"v":1,"type":"ping"}"#] {
            super::decode_client(data);
            super::decode_server(data);
            super::open_envelope(data);
            super::room(data);
        }
    }
}
