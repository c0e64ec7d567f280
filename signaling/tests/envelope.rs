//! Security behaviour of sealed envelopes: every way a relay could steer a
//! call (tamper, replay, reflect, reorder, drop, inject, re-use an epoch)
//! must be rejected, and a rejection must leave the receiver unchanged.

#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use telenode_signaling::msg::{MAX_PLAINTEXT_BYTES, SealedEnvelope};
use telenode_signaling::seal::{Direction, LinkKey, Opener, Payload, SealError, Sealer};

const CONS: &str = "Q29uc3VsdGF0aW9uIGlk";
const D2P: Direction = Direction::DoctorToPatient;
const P2D: Direction = Direction::PatientToDoctor;

fn key() -> LinkKey {
    LinkKey::from_bytes(*b"0123456789abcdef0123456789abcdef")
}

fn pair(dir: Direction, epoch: u8) -> (Sealer, Opener) {
    (
        Sealer::new(&key(), CONS, dir, [epoch; 16]),
        Opener::new(&key(), CONS, dir),
    )
}

/// The opener's observable state.
fn snapshot(o: &Opener) -> (Option<String>, Option<u64>) {
    (o.current_epoch().map(str::to_owned), o.last_seq())
}

/// Opening `env` must fail with `kind` and leave the opener unchanged.
fn rejects(o: &mut Opener, env: &SealedEnvelope, kind: &str) {
    let before = snapshot(o);
    let err = o.open(env).expect_err("must be rejected");
    assert_eq!(err.kind(), kind, "{err}");
    assert_eq!(snapshot(o), before, "state changed by a rejected envelope");
}

fn flip_ct(env: &SealedEnvelope, byte: usize) -> SealedEnvelope {
    let mut ct = URL_SAFE_NO_PAD.decode(&env.ct).unwrap();
    ct[byte] ^= 0x80;
    SealedEnvelope {
        ct: URL_SAFE_NO_PAD.encode(ct),
        ..env.clone()
    }
}

#[test]
fn tampered_ciphertext_fails_closed() {
    let (mut s, mut o) = pair(D2P, 1);
    let env = s.seal(b"{\"kind\":\"offer\",\"sdp\":\"v=0\"}").unwrap();
    let len = URL_SAFE_NO_PAD.decode(&env.ct).unwrap().len();
    for byte in [0, len / 2, len - 16, len - 1] {
        rejects(&mut o, &flip_ct(&env, byte), "integrity");
    }
    // The genuine envelope still opens afterwards.
    o.open(&env).unwrap();
}

#[test]
fn swapped_fingerprint_fails_closed() {
    // A relay that swaps the SDP (and so the DTLS fingerprint) must forge a
    // new envelope; without the link key it cannot.
    let (mut s, mut o) = pair(D2P, 1);
    let genuine = s
        .seal_payload(&Payload::Offer {
            sdp: "a=fingerprint:sha-256 AA:BB".into(),
        })
        .unwrap();
    let mut attacker = Sealer::new(&LinkKey::from_bytes([0x42; 32]), CONS, D2P, [1; 16]);
    let forged = attacker
        .seal_payload(&Payload::Offer {
            sdp: "a=fingerprint:sha-256 EE:FF".into(),
        })
        .unwrap();
    assert_eq!(
        (forged.epoch.as_str(), forged.seq),
        (genuine.epoch.as_str(), 0)
    );
    rejects(&mut o, &forged, "integrity");
    assert_eq!(
        o.open_payload(&genuine).unwrap(),
        Payload::Offer {
            sdp: "a=fingerprint:sha-256 AA:BB".into()
        }
    );
}

#[test]
fn replayed_envelope_rejected() {
    let (mut s, mut o) = pair(P2D, 2);
    let e0 = s.seal(b"0").unwrap();
    let e1 = s.seal(b"1").unwrap();
    o.open(&e0).unwrap();
    rejects(&mut o, &e0, "replay");
    o.open(&e1).unwrap();
    rejects(&mut o, &e1, "replay");
    rejects(&mut o, &e0, "replay");
    assert!(matches!(
        o.open(&e1),
        Err(SealError::Replay {
            seq: 1,
            expected: 2,
            ..
        })
    ));
}

#[test]
fn reflected_envelope_rejected() {
    // The doctor's own d2p envelope sent back to the doctor, whose opener
    // receives p2d.
    let (mut doctor_sealer, _) = pair(D2P, 3);
    let mut doctor_opener = Opener::new(&key(), CONS, P2D);
    let env = doctor_sealer
        .seal(b"{\"kind\":\"chat\",\"text\":\"hi\"}")
        .unwrap();
    rejects(&mut doctor_opener, &env, "integrity");
    // And the patient's p2d envelope fed to the patient's d2p opener.
    let mut patient_sealer = Sealer::new(&key(), CONS, P2D, [4; 16]);
    let mut patient_opener = Opener::new(&key(), CONS, D2P);
    let env = patient_sealer.seal(b"x").unwrap();
    rejects(&mut patient_opener, &env, "integrity");
    assert_eq!(D2P.opposite(), P2D);
    assert_eq!((D2P.as_str(), P2D.as_str()), ("d2p", "p2d"));
}

#[test]
fn reordered_envelopes_rejected() {
    let (mut s, mut o) = pair(D2P, 5);
    let envs: Vec<_> = (0..3).map(|i| s.seal(&[i]).unwrap()).collect();
    o.open(&envs[0]).unwrap();
    assert!(matches!(
        o.open(&envs[2]),
        Err(SealError::OutOfOrder {
            seq: 2,
            expected: 1,
            ..
        })
    ));
    rejects(&mut o, &envs[2], "out_of_order");
    // In order, they still open: the rejection changed nothing.
    assert_eq!(o.open(&envs[1]).unwrap(), [1]);
    assert_eq!(o.open(&envs[2]).unwrap(), [2]);
}

#[test]
fn dropped_envelope_makes_a_gap_that_is_rejected() {
    let (mut s, mut o) = pair(D2P, 6);
    o.open(&s.seal(b"0").unwrap()).unwrap();
    let _dropped = s.seal(b"1").unwrap();
    let e2 = s.seal(b"2").unwrap();
    rejects(&mut o, &e2, "out_of_order");
}

#[test]
fn injected_envelope_with_large_seq_rejected() {
    let (mut s, mut o) = pair(D2P, 7);
    let e0 = s.seal(b"0").unwrap();
    o.open(&e0).unwrap();
    let injected = SealedEnvelope {
        seq: (1 << 53) - 1,
        ..e0.clone()
    };
    rejects(&mut o, &injected, "out_of_order");
    let beyond = SealedEnvelope { seq: 1 << 53, ..e0 };
    rejects(&mut o, &beyond, "malformed");
}

#[test]
fn reused_epoch_rejected() {
    let (mut s, mut o) = pair(D2P, 8);
    let old: Vec<_> = (0..3).map(|i| s.seal(&[i]).unwrap()).collect();
    o.open(&old[0]).unwrap();
    o.open(&old[1]).unwrap();
    s.rekey([9; 16]);
    o.open(&s.seal(b"new").unwrap()).unwrap();
    // Neither the continuation nor the start of the old epoch comes back.
    rejects(&mut o, &old[2], "reused_epoch");
    rejects(&mut o, &old[0], "reused_epoch");
    // A sender that (wrongly) restarts the same epoch is refused too.
    let mut restarted = Sealer::new(&key(), CONS, D2P, [8; 16]);
    rejects(&mut o, &restarted.seal(b"again").unwrap(), "reused_epoch");
}

#[test]
fn new_epoch_must_start_at_zero() {
    let (mut s, mut o) = pair(D2P, 10);
    let _e0 = s.seal(b"0").unwrap();
    let e1 = s.seal(b"1").unwrap();
    assert!(matches!(
        o.open(&e1),
        Err(SealError::EpochNotAtZero { seq: 1, .. })
    ));
    rejects(&mut o, &e1, "epoch_not_at_zero");
    assert_eq!(o.current_epoch(), None);
    // Also when switching away from an established epoch.
    let (mut s2, _) = pair(D2P, 11);
    o.open(&s2.seal(b"a").unwrap()).unwrap();
    let mut s3 = Sealer::new(&key(), CONS, D2P, [12; 16]);
    let _ = s3.seal(b"x").unwrap();
    rejects(&mut o, &s3.seal(b"y").unwrap(), "epoch_not_at_zero");
    // The never-accepted epoch 12 is not "seen": starting it at 0 works.
    let mut s3b = Sealer::new(&key(), CONS, D2P, [12; 16]);
    o.open(&s3b.seal(b"z").unwrap()).unwrap();
}

#[test]
fn wrong_consultation_rejected() {
    let mut s = Sealer::new(&key(), "other-consultation", D2P, [13; 16]);
    let mut o = Opener::new(&key(), CONS, D2P);
    rejects(&mut o, &s.seal(b"x").unwrap(), "integrity");
}

#[test]
fn wrong_link_key_rejected() {
    let mut s = Sealer::new(&LinkKey::from_bytes([1; 32]), CONS, D2P, [14; 16]);
    let mut o = Opener::new(&key(), CONS, D2P);
    rejects(&mut o, &s.seal(b"x").unwrap(), "integrity");
}

#[test]
fn epoch_or_seq_relabelled_rejected() {
    let (mut s, mut o) = pair(D2P, 15);
    let e0 = s.seal(b"0").unwrap();
    // Same ciphertext, claimed under another (fresh) epoch.
    let relabelled = SealedEnvelope {
        epoch: URL_SAFE_NO_PAD.encode([16u8; 16]),
        ..e0.clone()
    };
    rejects(&mut o, &relabelled, "integrity");
    o.open(&e0).unwrap();
    // The only acceptable seq is now 1: seq 2's ciphertext claimed as seq 1.
    let _e1 = s.seal(b"1").unwrap();
    let e2 = s.seal(b"2").unwrap();
    rejects(&mut o, &SealedEnvelope { seq: 1, ..e2 }, "integrity");
}

#[test]
fn malformed_and_oversized_envelopes_rejected() {
    let (mut s, mut o) = pair(D2P, 17);
    let e0 = s.seal(b"0").unwrap();
    for bad in [
        SealedEnvelope {
            epoch: "short".into(),
            ..e0.clone()
        },
        SealedEnvelope {
            ct: "AAAA".into(),
            ..e0.clone()
        },
        SealedEnvelope {
            ct: format!("{}=", e0.ct),
            ..e0.clone()
        },
    ] {
        rejects(&mut o, &bad, "malformed");
    }
    let huge = SealedEnvelope {
        ct: "A".repeat((MAX_PLAINTEXT_BYTES + 16) * 4 / 3 + 8),
        ..e0.clone()
    };
    rejects(&mut o, &huge, "too_large");
    o.open(&e0).unwrap();
}

#[test]
fn receiver_restart_needs_no_old_state() {
    // A receiver that restarted (new Opener) accepts the sender's fresh epoch
    // started on peer_joined.
    let (mut s, mut o) = pair(P2D, 18);
    for i in 0..3u8 {
        o.open(&s.seal(&[i]).unwrap()).unwrap();
    }
    let mut restarted = Opener::new(&key(), CONS, P2D);
    rejects(&mut restarted, &s.seal(b"3").unwrap(), "epoch_not_at_zero");
    s.rekey([19; 16]);
    assert_eq!(
        restarted.open(&s.seal(b"fresh").unwrap()).unwrap(),
        b"fresh"
    );
}
