//! The end-to-end sealed envelope (`PROTOCOL.md`, "Sealed envelope").
//!
//! ```text
//! label  = "telenode/v1|" + consultation_id + "|" + dir + "|" + epoch_b64u
//! key    = HKDF-SHA256(salt = "telenode/v1/seal", ikm = link_key, info = label, L = 32)
//! nonce  = 0x00000000 ‖ u64_be(seq)
//! aad    = label
//! ct     = AES-256-GCM(key, nonce, aad, plaintext)
//! ```
//!
//! A [`Sealer`] seals one direction for one epoch; an [`Opener`] opens one
//! direction and enforces the receiving rules: within the current epoch `seq`
//! must be exactly `last + 1`; a new epoch must start at `seq == 0` and never
//! have been seen before; anything else, and any AEAD failure, is rejected.
//! A rejected envelope leaves the opener unchanged. The caller decides what a
//! rejection means; the protocol says: fail closed (hang up).
//!
//! No randomness is drawn here: the caller passes epochs and keys in.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use aes_gcm::aead::{Aead, KeyInit, Payload as AeadPayload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hkdf::Hkdf;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use crate::msg::{EPOCH_BYTES, MAX_PLAINTEXT_BYTES, SEQ_LIMIT, SealedEnvelope, TAG_BYTES};

/// HKDF salt of the envelope key.
pub const SEAL_SALT: &[u8] = b"telenode/v1/seal";

/// Prefix of every envelope label.
pub const LABEL_PREFIX: &str = "telenode/v1|";

/// Size of a link key in bytes.
pub const LINK_KEY_BYTES: usize = 32;

/// Longest `ct` (base64url characters) an opener accepts: a full plaintext
/// plus the tag.
const MAX_CT_B64_CHARS: usize = (MAX_PLAINTEXT_BYTES + TAG_BYTES).div_ceil(3) * 4;

/// The 32-byte link key from the patient link's fragment. Never leaves the two
/// peers. `Debug` prints `LinkKey(***)`; the bytes are zeroed on drop.
#[derive(Clone)]
pub struct LinkKey([u8; LINK_KEY_BYTES]);

impl LinkKey {
    /// Wraps 32 (random) bytes.
    pub fn from_bytes(bytes: [u8; LINK_KEY_BYTES]) -> LinkKey {
        LinkKey(bytes)
    }

    /// Parses base64url without padding of exactly 32 bytes.
    pub fn from_b64u(s: &str) -> Result<LinkKey, SealError> {
        let bad = || SealError::BadKey {
            encoded_len: s.len(),
        };
        let bytes = Zeroizing::new(URL_SAFE_NO_PAD.decode(s.as_bytes()).map_err(|_| bad())?);
        let arr: [u8; LINK_KEY_BYTES] = bytes.as_slice().try_into().map_err(|_| bad())?;
        Ok(LinkKey(arr))
    }

    /// base64url without padding, as in the link's fragment.
    pub fn to_b64u(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; LINK_KEY_BYTES] {
        &self.0
    }
}

impl fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LinkKey(***)")
    }
}

impl Drop for LinkKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// The direction of an envelope; each direction has its own key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// `d2p`: doctor → patient.
    DoctorToPatient,
    /// `p2d`: patient → doctor.
    PatientToDoctor,
}

impl Direction {
    /// The label form: `"d2p"` or `"p2d"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::DoctorToPatient => "d2p",
            Direction::PatientToDoctor => "p2d",
        }
    }

    /// The reverse direction.
    pub fn opposite(self) -> Direction {
        match self {
            Direction::DoctorToPatient => Direction::PatientToDoctor,
            Direction::PatientToDoctor => Direction::DoctorToPatient,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Direction {
    type Err = SealError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "d2p" => Ok(Direction::DoctorToPatient),
            "p2d" => Ok(Direction::PatientToDoctor),
            _ => Err(SealError::Malformed { field: "dir" }),
        }
    }
}

/// Why sealing or opening failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// A field of the envelope is not in its wire form (bad base64url, epoch
    /// not 16 bytes, ct shorter than the tag, seq ≥ 2^53).
    #[error("malformed envelope: bad `{field}`")]
    Malformed {
        /// The offending field.
        field: &'static str,
    },
    /// The plaintext (sealing) or ciphertext (opening) exceeds the limit.
    #[error("{len} bytes exceed the limit of {max} bytes")]
    TooLarge {
        /// Size found (plaintext bytes, or ct base64url characters).
        len: usize,
        /// The limit in the same unit.
        max: usize,
    },
    /// Same epoch, `seq` at or below the last accepted one.
    #[error("replayed envelope: epoch {epoch}, seq {seq}, expected {expected}")]
    Replay {
        /// The epoch (base64url).
        epoch: String,
        /// The seq received.
        seq: u64,
        /// The only seq that would have been accepted.
        expected: u64,
    },
    /// Same epoch, `seq` beyond `last + 1` (a gap, or reordering).
    #[error("out-of-order envelope: epoch {epoch}, seq {seq}, expected {expected}")]
    OutOfOrder {
        /// The epoch (base64url).
        epoch: String,
        /// The seq received.
        seq: u64,
        /// The only seq that would have been accepted.
        expected: u64,
    },
    /// A new epoch that does not start at `seq == 0`.
    #[error("new epoch {epoch} starts at seq {seq}, not 0")]
    EpochNotAtZero {
        /// The epoch (base64url).
        epoch: String,
        /// The seq received.
        seq: u64,
    },
    /// An epoch seen before that is no longer current.
    #[error("epoch {epoch} was used before")]
    ReusedEpoch {
        /// The epoch (base64url).
        epoch: String,
    },
    /// AEAD authentication failed: wrong key, direction, consultation,
    /// epoch or seq, or altered ciphertext.
    #[error("envelope failed authentication: epoch {epoch}, seq {seq}")]
    Integrity {
        /// The epoch (base64url).
        epoch: String,
        /// The seq received.
        seq: u64,
    },
    /// A link key that is not base64url of 32 bytes.
    #[error("link key is not base64url of 32 bytes (got {encoded_len} characters)")]
    BadKey {
        /// Length of the string given.
        encoded_len: usize,
    },
    /// The sealer used every `seq` below 2^53; start a new epoch.
    #[error("sequence numbers of epoch {epoch} are exhausted")]
    SeqExhausted {
        /// The epoch (base64url).
        epoch: String,
    },
    /// The opened plaintext is not a valid [`Payload`].
    #[error("invalid payload JSON at line {line}, column {column}")]
    BadPayload {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
}

impl SealError {
    /// A stable snake_case name of the variant, as used in the shared test
    /// vectors (`tests/vectors/README.md`).
    pub fn kind(&self) -> &'static str {
        match self {
            SealError::Malformed { .. } => "malformed",
            SealError::TooLarge { .. } => "too_large",
            SealError::Replay { .. } => "replay",
            SealError::OutOfOrder { .. } => "out_of_order",
            SealError::EpochNotAtZero { .. } => "epoch_not_at_zero",
            SealError::ReusedEpoch { .. } => "reused_epoch",
            SealError::Integrity { .. } => "integrity",
            SealError::BadKey { .. } => "bad_key",
            SealError::SeqExhausted { .. } => "seq_exhausted",
            SealError::BadPayload { .. } => "bad_payload",
        }
    }
}

/// The envelope label, also the AEAD's associated data and the HKDF info:
/// `"telenode/v1|" + consultation + "|" + dir + "|" + epoch_b64u`.
pub fn label(consultation: &str, dir: Direction, epoch_b64u: &str) -> String {
    format!("{LABEL_PREFIX}{consultation}|{}|{epoch_b64u}", dir.as_str())
}

/// The envelope key for `label`: HKDF-SHA256 with salt `"telenode/v1/seal"`,
/// the link key as input keying material and the label as info, 32 bytes.
pub fn derive_key(link_key: &LinkKey, label: &str) -> Zeroizing<[u8; 32]> {
    let mut okm = Zeroizing::new([0u8; 32]);
    hkdf_expand(
        SEAL_SALT,
        link_key.as_bytes(),
        label.as_bytes(),
        okm.as_mut(),
    )
    .expect("32 bytes is a valid HKDF-SHA256 output length");
    okm
}

/// HKDF-SHA256 (RFC 5869) extract-and-expand to `len` bytes, `None` if `len`
/// exceeds 255 × 32. Exposed for the RFC 5869 test vectors.
#[doc(hidden)]
pub fn hkdf_sha256(salt: &[u8], ikm: &[u8], info: &[u8], len: usize) -> Option<Vec<u8>> {
    let mut okm = vec![0u8; len];
    hkdf_expand(salt, ikm, info, &mut okm)?;
    Some(okm)
}

/// HKDF-SHA256 extract-and-expand into `okm`, `None` if it is longer than
/// 255 × 32 bytes. The one HKDF call of [`derive_key`] and [`hkdf_sha256`].
fn hkdf_expand(salt: &[u8], ikm: &[u8], info: &[u8], okm: &mut [u8]) -> Option<()> {
    Hkdf::<Sha256>::new(Some(salt), ikm).expand(info, okm).ok()
}

/// The AES-GCM nonce: four zero bytes, then `seq` big-endian.
pub fn nonce(seq: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&seq.to_be_bytes());
    n
}

fn cipher_for(link_key: &LinkKey, label: &str) -> Aes256Gcm {
    let key = derive_key(link_key, label);
    Aes256Gcm::new(key.as_ref().into())
}

/// Seals envelopes for one direction, from one epoch.
///
/// A sender makes a new epoch (16 fresh random bytes; see [`Sealer::rekey`])
/// on every new WebSocket connection and whenever the node reports
/// `peer_joined`.
pub struct Sealer {
    link_key: LinkKey,
    consultation: String,
    dir: Direction,
    epoch_b64u: String,
    label: String,
    cipher: Aes256Gcm,
    next_seq: u64,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("dir", &self.dir)
            .field("epoch", &self.epoch_b64u)
            .field("next_seq", &self.next_seq)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// A sealer for `dir` in `consultation` starting at `seq == 0` of
    /// `epoch` (16 random bytes from the caller).
    pub fn new(
        link_key: &LinkKey,
        consultation: &str,
        dir: Direction,
        epoch: [u8; EPOCH_BYTES],
    ) -> Sealer {
        let epoch_b64u = URL_SAFE_NO_PAD.encode(epoch);
        let label = label(consultation, dir, &epoch_b64u);
        let cipher = cipher_for(link_key, &label);
        Sealer {
            link_key: link_key.clone(),
            consultation: consultation.to_owned(),
            dir,
            epoch_b64u,
            label,
            cipher,
            next_seq: 0,
        }
    }

    /// Starts a new epoch (16 fresh random bytes from the caller) at
    /// `seq == 0`. The caller must never reuse an epoch: receivers reject it.
    pub fn rekey(&mut self, epoch: [u8; EPOCH_BYTES]) {
        *self = Sealer::new(&self.link_key, &self.consultation, self.dir, epoch);
    }

    /// Seals `plaintext` (at most [`MAX_PLAINTEXT_BYTES`]) as the next
    /// envelope of the epoch.
    pub fn seal(&mut self, plaintext: &[u8]) -> Result<SealedEnvelope, SealError> {
        if plaintext.len() > MAX_PLAINTEXT_BYTES {
            return Err(SealError::TooLarge {
                len: plaintext.len(),
                max: MAX_PLAINTEXT_BYTES,
            });
        }
        let seq = self.next_seq;
        if seq >= SEQ_LIMIT {
            return Err(SealError::SeqExhausted {
                epoch: self.epoch_b64u.clone(),
            });
        }
        let ct = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce(seq)),
                AeadPayload {
                    msg: plaintext,
                    aad: self.label.as_bytes(),
                },
            )
            // AES-GCM encryption fails only for plaintexts near 64 GiB.
            .map_err(|_| SealError::TooLarge {
                len: plaintext.len(),
                max: MAX_PLAINTEXT_BYTES,
            })?;
        self.next_seq = seq + 1;
        Ok(SealedEnvelope {
            epoch: self.epoch_b64u.clone(),
            seq,
            ct: URL_SAFE_NO_PAD.encode(ct),
        })
    }

    /// Seals a [`Payload`] as JSON.
    pub fn seal_payload(&mut self, payload: &Payload) -> Result<SealedEnvelope, SealError> {
        self.seal(payload.to_json().as_bytes())
    }

    /// The current epoch, base64url.
    pub fn epoch(&self) -> &str {
        &self.epoch_b64u
    }

    /// The `seq` the next envelope will carry.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The direction sealed.
    pub fn direction(&self) -> Direction {
        self.dir
    }
}

/// The epoch currently accepted by an [`Opener`].
struct Current {
    epoch: [u8; EPOCH_BYTES],
    epoch_b64u: String,
    last_seq: u64,
    cipher: Aes256Gcm,
}

/// Opens the envelopes of one direction and enforces the receiving rules.
pub struct Opener {
    link_key: LinkKey,
    consultation: String,
    dir: Direction,
    current: Option<Current>,
    seen: HashSet<[u8; EPOCH_BYTES]>,
}

impl fmt::Debug for Opener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opener")
            .field("dir", &self.dir)
            .field("current_epoch", &self.current_epoch())
            .field("last_seq", &self.last_seq())
            .field("epochs_seen", &self.seen.len())
            .finish_non_exhaustive()
    }
}

impl Opener {
    /// An opener for the envelopes this side RECEIVES in direction `dir`
    /// (the doctor opens `p2d`, the patient opens `d2p`).
    pub fn new(link_key: &LinkKey, consultation: &str, dir: Direction) -> Opener {
        Opener {
            link_key: link_key.clone(),
            consultation: consultation.to_owned(),
            dir,
            current: None,
            seen: HashSet::new(),
        }
    }

    /// Checks and opens `env`. On any error the opener is left exactly as it
    /// was; the protocol asks the caller to fail closed.
    pub fn open(&mut self, env: &SealedEnvelope) -> Result<Vec<u8>, SealError> {
        let epoch = env
            .epoch_bytes()
            .ok_or(SealError::Malformed { field: "epoch" })?;
        if env.seq >= SEQ_LIMIT {
            return Err(SealError::Malformed { field: "seq" });
        }
        if env.ct.len() > MAX_CT_B64_CHARS {
            return Err(SealError::TooLarge {
                len: env.ct.len(),
                max: MAX_CT_B64_CHARS,
            });
        }
        let ct = env.ct_bytes().ok_or(SealError::Malformed { field: "ct" })?;

        let aad = label(&self.consultation, self.dir, &env.epoch);
        let decrypt = |cipher: &Aes256Gcm| {
            cipher
                .decrypt(
                    Nonce::from_slice(&nonce(env.seq)),
                    AeadPayload {
                        msg: &ct,
                        aad: aad.as_bytes(),
                    },
                )
                .map_err(|_| SealError::Integrity {
                    epoch: env.epoch.clone(),
                    seq: env.seq,
                })
        };
        match self.current.as_mut().filter(|c| c.epoch == epoch) {
            Some(cur) => {
                let expected = cur.last_seq + 1;
                if env.seq < expected {
                    return Err(SealError::Replay {
                        epoch: env.epoch.clone(),
                        seq: env.seq,
                        expected,
                    });
                }
                if env.seq > expected {
                    return Err(SealError::OutOfOrder {
                        epoch: env.epoch.clone(),
                        seq: env.seq,
                        expected,
                    });
                }
                let plaintext = decrypt(&cur.cipher)?;
                cur.last_seq = env.seq;
                Ok(plaintext)
            }
            None => {
                if self.seen.contains(&epoch) {
                    return Err(SealError::ReusedEpoch {
                        epoch: env.epoch.clone(),
                    });
                }
                if env.seq != 0 {
                    return Err(SealError::EpochNotAtZero {
                        epoch: env.epoch.clone(),
                        seq: env.seq,
                    });
                }
                // A new epoch needs its own key; it is kept only if the
                // envelope opens.
                let cipher = cipher_for(&self.link_key, &aad);
                let plaintext = decrypt(&cipher)?;
                self.seen.insert(epoch);
                self.current = Some(Current {
                    epoch,
                    epoch_b64u: env.epoch.clone(),
                    last_seq: 0,
                    cipher,
                });
                Ok(plaintext)
            }
        }
    }

    /// Opens `env` and parses the plaintext as a [`Payload`]. The envelope
    /// counts as accepted (the opener advances) even if the payload is bad.
    pub fn open_payload(&mut self, env: &SealedEnvelope) -> Result<Payload, SealError> {
        let plaintext = self.open(env)?;
        Payload::from_json(plaintext)
    }

    /// The direction opened.
    pub fn direction(&self) -> Direction {
        self.dir
    }

    /// The current epoch (base64url), once an envelope was accepted.
    pub fn current_epoch(&self) -> Option<&str> {
        self.current.as_ref().map(|c| c.epoch_b64u.as_str())
    }

    /// The last accepted `seq` of the current epoch.
    pub fn last_seq(&self) -> Option<u64> {
        self.current.as_ref().map(|c| c.last_seq)
    }
}

/// The plaintext of a sealed envelope: UTF-8 JSON tagged by `"kind"`.
///
/// Unknown kinds decode as [`Payload::Unknown`] and are to be ignored
/// (forward compatibility); unknown fields of known kinds are ignored too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Payload {
    /// Patient → doctor while waiting (the knock).
    Hello {
        /// Display name the patient typed, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// Doctor → patient: the SDP offer.
    Offer {
        /// The SDP.
        sdp: String,
    },
    /// Patient → doctor: the SDP answer.
    Answer {
        /// The SDP.
        sdp: String,
    },
    /// A trickled ICE candidate.
    Candidate {
        /// The `candidate:` attribute.
        candidate: String,
        /// The media stream identification tag.
        #[serde(rename = "sdpMid", default, skip_serializing_if = "Option::is_none")]
        sdp_mid: Option<String>,
        /// The index of the m-line.
        #[serde(
            rename = "sdpMLineIndex",
            default,
            skip_serializing_if = "Option::is_none"
        )]
        sdp_mline_index: Option<u16>,
    },
    /// No more candidates.
    EndOfCandidates,
    /// A chat message.
    Chat {
        /// The text.
        text: String,
    },
    /// The sender hangs up.
    Bye {
        /// Why, e.g. `"hangup"`.
        reason: String,
    },
    /// Any kind this version does not know; ignore it.
    #[serde(other)]
    Unknown,
}

impl Payload {
    /// The JSON plaintext.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a payload always serialises to JSON")
    }

    /// Parses a JSON plaintext (`&str`, `String`, `&[u8]`, `Vec<u8>`, …).
    pub fn from_json(json: impl AsRef<[u8]>) -> Result<Payload, SealError> {
        serde_json::from_slice(json.as_ref()).map_err(|e| SealError::BadPayload {
            line: e.line(),
            column: e.column(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const CONS: &str = "AAAAAAAAAAAAAAAAAAAAAA";

    fn key() -> LinkKey {
        LinkKey::from_bytes([7; 32])
    }

    /// An RFC 5869 appendix A test case (HKDF-SHA256): (ikm, salt, info, okm)
    /// in hex. The same cases are in `tests/vectors/vectors.json`.
    type HkdfCase = (&'static str, &'static str, &'static str, &'static str);

    /// RFC 5869 A.1: basic test case with SHA-256.
    const RFC5869_A1: HkdfCase = (
        "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
        "000102030405060708090a0b0c",
        "f0f1f2f3f4f5f6f7f8f9",
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
    );

    /// RFC 5869 A.2: test with SHA-256 and longer inputs/outputs.
    const RFC5869_A2: HkdfCase = (
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\
         202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f\
         404142434445464748494a4b4c4d4e4f",
        "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f\
         808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f\
         a0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
        "b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecf\
         d0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeef\
         f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
        "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c\
         59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71\
         cc30c58179ec3e87c14c01d5c1f3434f1d87",
    );

    /// RFC 5869 A.3: test with SHA-256 and zero-length salt/info.
    const RFC5869_A3: HkdfCase = (
        "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
        "",
        "",
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
    );

    fn unhex(h: &str) -> Vec<u8> {
        (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn hkdf_sha256_rfc5869_appendix_a() {
        for (ikm, salt, info, okm) in [RFC5869_A1, RFC5869_A2, RFC5869_A3] {
            let okm = unhex(okm);
            let got = hkdf_sha256(&unhex(salt), &unhex(ikm), &unhex(info), okm.len()).unwrap();
            assert_eq!(got, okm);
        }
        assert_eq!(hkdf_sha256(b"", b"", b"", 255 * 32 + 1), None);
    }

    #[test]
    fn link_key_b64u_round_trip_and_debug() {
        let k = key();
        let s = k.to_b64u();
        assert_eq!(LinkKey::from_b64u(&s).unwrap().as_bytes(), k.as_bytes());
        assert_eq!(format!("{k:?}"), "LinkKey(***)");
        assert_eq!(
            LinkKey::from_b64u("AAAA").unwrap_err(),
            SealError::BadKey { encoded_len: 4 }
        );
        assert!(LinkKey::from_b64u(&format!("{s}=")).is_err());
        assert!(LinkKey::from_b64u("!!!").is_err());
    }

    #[test]
    fn label_and_nonce_layout() {
        assert_eq!(
            label("cid", Direction::PatientToDoctor, "EP"),
            "telenode/v1|cid|p2d|EP"
        );
        assert_eq!(nonce(0x0102), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2]);
    }

    #[test]
    fn seal_then_open_in_order() {
        let mut s = Sealer::new(&key(), CONS, Direction::DoctorToPatient, [1; 16]);
        let mut o = Opener::new(&key(), CONS, Direction::DoctorToPatient);
        for i in 0..5u8 {
            let env = s.seal(&[i; 3]).unwrap();
            assert_eq!(env.seq, u64::from(i));
            assert_eq!(o.open(&env).unwrap(), vec![i; 3]);
        }
        assert_eq!(o.last_seq(), Some(4));
    }

    #[test]
    fn plaintext_limit() {
        let mut s = Sealer::new(&key(), CONS, Direction::DoctorToPatient, [1; 16]);
        let mut o = Opener::new(&key(), CONS, Direction::DoctorToPatient);
        let env = s.seal(&vec![b'a'; MAX_PLAINTEXT_BYTES]).unwrap();
        assert!(env.ct.len() <= MAX_CT_B64_CHARS);
        assert_eq!(o.open(&env).unwrap().len(), MAX_PLAINTEXT_BYTES);
        assert_eq!(
            s.seal(&vec![b'a'; MAX_PLAINTEXT_BYTES + 1])
                .unwrap_err()
                .kind(),
            "too_large"
        );
        assert_eq!(s.next_seq(), 1, "a refused seal does not use a seq");
    }

    #[test]
    fn payload_json_forms() {
        let c = Payload::Candidate {
            candidate: "candidate:1".into(),
            sdp_mid: Some("0".into()),
            sdp_mline_index: Some(0),
        };
        assert_eq!(
            c.to_json(),
            r#"{"kind":"candidate","candidate":"candidate:1","sdpMid":"0","sdpMLineIndex":0}"#
        );
        assert_eq!(Payload::from_json(c.to_json()).unwrap(), c);
        assert_eq!(
            Payload::EndOfCandidates.to_json(),
            r#"{"kind":"end_of_candidates"}"#
        );
        assert_eq!(
            Payload::from_json(r#"{"kind":"hello"}"#).unwrap(),
            Payload::Hello { name: None }
        );
        assert_eq!(
            Payload::from_json(r#"{"kind":"video_paused","x":1}"#).unwrap(),
            Payload::Unknown
        );
        assert_eq!(
            Payload::from_json(
                r#"{"kind":"candidate","candidate":"c","sdpMid":null,"sdpMLineIndex":null,"usernameFragment":"u"}"#
            )
            .unwrap(),
            Payload::Candidate {
                candidate: "c".into(),
                sdp_mid: None,
                sdp_mline_index: None
            }
        );
        assert_eq!(
            Payload::from_json(b"{\"kind\":\"offer\"}")
                .unwrap_err()
                .kind(),
            "bad_payload"
        );
        assert!(Payload::from_json(b"\xff").is_err());
    }

    #[test]
    fn rekey_starts_at_zero() {
        let mut s = Sealer::new(&key(), CONS, Direction::PatientToDoctor, [1; 16]);
        let mut o = Opener::new(&key(), CONS, Direction::PatientToDoctor);
        o.open(&s.seal(b"a").unwrap()).unwrap();
        o.open(&s.seal(b"b").unwrap()).unwrap();
        s.rekey([2; 16]);
        let env = s.seal(b"c").unwrap();
        assert_eq!(env.seq, 0);
        assert_eq!(o.open(&env).unwrap(), b"c");
        assert_eq!(o.current_epoch(), Some(s.epoch()));
    }
}
