//! Checks the crate against the shared vectors in `tests/vectors/vectors.json`
//! (generated independently by `tests/vectors/generate.py`; format in
//! `tests/vectors/README.md`).

#![allow(clippy::unwrap_used)]

use aes_gcm::aead::{Aead, KeyInit, Payload as AeadPayload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use telenode_signaling::creds::{decode_token, token_hash};
use telenode_signaling::msg::{ClientMsg, SealedEnvelope, decode_client, encode_client};
use telenode_signaling::sas::{fingerprint_from_sdp, sas, sas_display};
use telenode_signaling::seal::{
    Direction, LinkKey, Opener, Sealer, derive_key, hkdf_sha256, label, nonce,
};

fn vectors() -> Value {
    let text = include_str!("vectors/vectors.json");
    serde_json::from_str(text).expect("vectors.json parses")
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str()
        .unwrap_or_else(|| panic!("field {k} is a string in {v}"))
}

fn n(v: &Value, k: &str) -> u64 {
    v[k].as_u64()
        .unwrap_or_else(|| panic!("field {k} is an integer in {v}"))
}

fn hex(h: &str) -> Vec<u8> {
    assert!(h.len().is_multiple_of(2), "odd hex {h}");
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).expect("hex"))
        .collect()
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn env(v: &Value) -> SealedEnvelope {
    SealedEnvelope {
        epoch: s(v, "epoch").to_owned(),
        seq: n(v, "seq"),
        ct: s(v, "ct").to_owned(),
    }
}

fn dir(v: &Value) -> Direction {
    s(v, "dir").parse().expect("dir")
}

fn key(v: &Value) -> LinkKey {
    LinkKey::from_b64u(s(v, "link_key")).expect("link key")
}

#[test]
fn vectors_are_not_empty() {
    let v = vectors();
    assert_eq!(v["format"], 1);
    for section in [
        "hkdf_sha256",
        "seal",
        "open_negative",
        "open_sequences",
        "token_hash",
        "fingerprint",
        "sas",
    ] {
        assert!(
            v[section].as_array().is_some_and(|a| !a.is_empty()),
            "section {section} missing or empty"
        );
    }
}

/// RFC 5869 appendix A.1–A.3.
#[test]
fn rfc5869_hkdf_sha256() {
    let v = vectors();
    let cases = v["hkdf_sha256"].as_array().unwrap();
    let names: Vec<&str> = cases.iter().map(|c| s(c, "name")).collect();
    for id in ["A.1", "A.2", "A.3"] {
        assert!(
            names.iter().any(|n| n.contains(id)),
            "RFC 5869 {id} present"
        );
    }
    for c in cases {
        let okm = hkdf_sha256(
            &hex(s(c, "salt")),
            &hex(s(c, "ikm")),
            &hex(s(c, "info")),
            n(c, "length") as usize,
        )
        .unwrap();
        assert_eq!(to_hex(&okm), s(c, "okm"), "{}", s(c, "name"));
    }
}

#[test]
fn seal_vectors() {
    let v = vectors();
    for c in v["seal"].as_array().unwrap() {
        let name = s(c, "name");
        let link_key = key(c);
        let consultation = s(c, "consultation");
        let d = dir(c);
        let epoch_b64u = s(c, "epoch");
        let seq = n(c, "seq");
        let plaintext = s(c, "plaintext").as_bytes();

        // Step by step: label, key, nonce, AEAD with the expected key.
        let lab = label(consultation, d, epoch_b64u);
        assert_eq!(lab, s(c, "label"), "label: {name}");
        let k = derive_key(&link_key, &lab);
        assert_eq!(to_hex(k.as_ref()), s(c, "key"), "key: {name}");
        assert_eq!(to_hex(&nonce(seq)), s(c, "nonce"), "nonce: {name}");
        let ct = URL_SAFE_NO_PAD.decode(s(c, "ct")).unwrap();
        let opened = Aes256Gcm::new(k.as_ref().into())
            .decrypt(
                Nonce::from_slice(&nonce(seq)),
                AeadPayload {
                    msg: &ct,
                    aad: lab.as_bytes(),
                },
            )
            .unwrap();
        assert_eq!(opened, plaintext, "raw AEAD: {name}");

        // Through the public Sealer / Opener.
        let epoch: [u8; 16] = URL_SAFE_NO_PAD
            .decode(epoch_b64u)
            .unwrap()
            .try_into()
            .unwrap();
        let mut sealer = Sealer::new(&link_key, consultation, d, epoch);
        let mut opener = Opener::new(&link_key, consultation, d);
        for i in 0..seq {
            let filler = sealer.seal(format!("filler {i}").as_bytes()).unwrap();
            opener.open(&filler).unwrap();
        }
        let sealed = sealer.seal(plaintext).unwrap();
        assert_eq!(sealed, env(c), "Sealer output: {name}");
        assert_eq!(opener.open(&env(c)).unwrap(), plaintext, "Opener: {name}");

        // Wire form.
        let msg = ClientMsg::Sealed(env(c));
        assert_eq!(encode_client(&msg), s(c, "frame"), "frame: {name}");
        assert_eq!(decode_client(s(c, "frame")).unwrap(), msg, "decode: {name}");
    }
}

#[test]
fn open_negative_vectors() {
    let v = vectors();
    for c in v["open_negative"].as_array().unwrap() {
        let name = s(c, "name");
        let mut opener = Opener::new(&key(c), s(c, "consultation"), dir(c));
        let err = opener
            .open(&env(&c["envelope"]))
            .expect_err(&format!("must be rejected: {name}"));
        assert_eq!(err.kind(), s(c, "error"), "{name}: {err}");
        assert_eq!(opener.current_epoch(), None, "unchanged: {name}");
    }
}

#[test]
fn open_sequence_vectors() {
    let v = vectors();
    for c in v["open_sequences"].as_array().unwrap() {
        let name = s(c, "name");
        let mut opener = Opener::new(&key(c), s(c, "consultation"), dir(c));
        for (i, step) in c["steps"].as_array().unwrap().iter().enumerate() {
            let before = (opener.current_epoch().map(str::to_owned), opener.last_seq());
            let got = opener.open(&env(step));
            match s(step, "expect") {
                "ok" => assert_eq!(
                    got.unwrap(),
                    s(step, "plaintext").as_bytes(),
                    "{name}, step {i}"
                ),
                expected => {
                    let err = got.expect_err(&format!("{name}, step {i} must fail"));
                    assert_eq!(err.kind(), expected, "{name}, step {i}: {err}");
                    let after = (opener.current_epoch().map(str::to_owned), opener.last_seq());
                    assert_eq!(before, after, "{name}, step {i}: state changed");
                }
            }
        }
    }
}

#[test]
fn token_hash_vectors() {
    let v = vectors();
    for c in v["token_hash"].as_array().unwrap() {
        let raw = decode_token(s(c, "token")).expect("token decodes");
        assert_eq!(
            to_hex(&token_hash(&raw)),
            s(c, "token_hash"),
            "{}",
            s(c, "name")
        );
    }
}

#[test]
fn fingerprint_vectors() {
    let v = vectors();
    for c in v["fingerprint"].as_array().unwrap() {
        assert_eq!(
            fingerprint_from_sdp(s(c, "sdp")).as_deref(),
            c["fingerprint"].as_str(),
            "{}",
            s(c, "name")
        );
    }
}

#[test]
fn sas_vectors() {
    let v = vectors();
    for c in v["sas"].as_array().unwrap() {
        let code = sas(s(c, "doctor_fp"), s(c, "patient_fp"));
        assert_eq!(code, s(c, "sas"), "{}", s(c, "name"));
        assert_eq!(sas_display(&code), s(c, "display"), "{}", s(c, "name"));
    }
}
