//! Sealing for the metadata store, pure: no I/O, no clock, no randomness
//! (nonces and fresh keys are passed in by the caller).
//!
//! Key hierarchy:
//!
//! ```text
//! master key (key file, outside the database)
//!   └─ KEK = HKDF-SHA256(master, "telenode/v1/store/kek")
//!        └─ wraps the data key (AES-256-GCM, AAD = store id)   → table `meta`
//! data key (random, 256 bits, only ever stored wrapped)
//!   ├─ seal key  = HKDF(data, "telenode/v1/store/seal")   AES-256-GCM of every sensitive value
//!   ├─ index key = HKDF(data, "telenode/v1/store/index")  HMAC-SHA256 for equality lookups
//!   └─ audit key = HKDF(data, "telenode/v1/store/audit")  HMAC-SHA256 chain over the audit log
//! ```
//!
//! A sealed value is `version (1) ‖ nonce (12) ‖ AES-256-GCM(padded plaintext)`
//! with the associated data `"telenode/v1/store|" ‖ table ‖ "|" ‖ column ‖ "|" ‖
//! len(row) ‖ row`, so a value moved to another table, column or row no
//! longer opens. Plaintexts are padded to a multiple of [`PAD_TO`] bytes
//! (ISO/IEC 7816-4) so that lengths say little about names.
//!
//! This lives beside the store rather than in `telenode-signaling`: it is the
//! node's private storage format, not part of the protocol the browser shares.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

/// Format version of sealed values and wrapped keys.
pub const VERSION: u8 = 1;
/// Nonce length of AES-GCM.
pub const NONCE_BYTES: usize = 12;
/// Plaintexts are padded to a multiple of this many bytes before sealing.
pub const PAD_TO: usize = 32;
/// First word of a master key file.
pub const KEY_FILE_TAG: &str = "telenode-master-key-v1";

type HmacSha256 = Hmac<Sha256>;

/// What went wrong opening sealed data or keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// Authentication failed: the value was altered, moved to another
    /// table/column/row, or sealed under another key.
    #[error("sealed value failed authentication")]
    Integrity,
    #[error("sealed value has unknown format version {0}")]
    Version(u8),
    /// The master key does not unwrap this store's data key.
    #[error("the master key does not open this store")]
    WrongKey,
    #[error("malformed master key: {0}")]
    MalformedKey(&'static str),
}

/// The master key: wraps the data key; never stored in the database.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl Drop for MasterKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({}, ***)", self.id_hex())
    }
}

impl MasterKey {
    pub fn from_bytes(bytes: [u8; 32]) -> MasterKey {
        MasterKey(bytes)
    }

    /// A public, non-secret identifier: which key wraps a store.
    pub fn id(&self) -> [u8; 8] {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.0).expect("any key size");
        mac.update(b"telenode/v1/store/key-id");
        let full = mac.finalize().into_bytes();
        let mut id = [0; 8];
        id.copy_from_slice(&full[..8]);
        id
    }

    pub fn id_hex(&self) -> String {
        hex(&self.id())
    }

    /// The key file's text: `telenode-master-key-v1 <base64url>\n`.
    pub fn to_file_text(&self) -> String {
        format!("{KEY_FILE_TAG} {}\n", URL_SAFE_NO_PAD.encode(self.0))
    }

    /// Parses what [`MasterKey::to_file_text`] wrote.
    pub fn from_file_text(text: &str) -> Result<MasterKey, CryptoError> {
        let rest = text
            .trim()
            .strip_prefix(KEY_FILE_TAG)
            .ok_or(CryptoError::MalformedKey(
                "missing the telenode-master-key-v1 tag",
            ))?;
        let mut raw = URL_SAFE_NO_PAD
            .decode(rest.trim().as_bytes())
            .map_err(|_| CryptoError::MalformedKey("not base64url"))?;
        let key = <[u8; 32]>::try_from(raw.as_slice())
            .map_err(|_| CryptoError::MalformedKey("not 32 bytes"));
        raw.zeroize();
        key.map(MasterKey)
    }

    fn kek(&self) -> Aes256Gcm {
        Aes256Gcm::new(&derive(&self.0, b"telenode/v1/store/kek").into())
    }
}

/// The data key: seals every value; stored only wrapped by a master key.
#[derive(Clone, PartialEq, Eq)]
pub struct DataKey([u8; 32]);

impl Drop for DataKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(***)")
    }
}

impl DataKey {
    pub fn from_bytes(bytes: [u8; 32]) -> DataKey {
        DataKey(bytes)
    }
}

fn derive(ikm: &[u8; 32], info: &[u8]) -> [u8; 32] {
    let mut okm = [0u8; 32];
    Hkdf::<Sha256>::new(None, ikm)
        .expand(info, &mut okm)
        .expect("32 bytes is a valid HKDF-SHA256 length");
    okm
}

fn wrap_aad(store_id: &[u8]) -> Vec<u8> {
    [b"telenode/v1/store/wrap|".as_slice(), store_id].concat()
}

/// Wraps `data` under `master` for the store `store_id`.
pub fn wrap(
    master: &MasterKey,
    data: &DataKey,
    store_id: &[u8],
    nonce: [u8; NONCE_BYTES],
) -> Vec<u8> {
    let aad = wrap_aad(store_id);
    let ct = master
        .kek()
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: &data.0,
                aad: &aad,
            },
        )
        .expect("AES-GCM encryption of 32 bytes cannot fail");
    [&[VERSION][..], &nonce, &ct].concat()
}

/// Unwraps a data key; [`CryptoError::WrongKey`] if `master` is not the key
/// that wrapped it (or the wrapped key was altered).
pub fn unwrap(master: &MasterKey, wrapped: &[u8], store_id: &[u8]) -> Result<DataKey, CryptoError> {
    let (version, nonce, ct) = split(wrapped).ok_or(CryptoError::WrongKey)?;
    if version != VERSION {
        return Err(CryptoError::Version(version));
    }
    let aad = wrap_aad(store_id);
    let mut pt = master
        .kek()
        .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
        .map_err(|_| CryptoError::WrongKey)?;
    let key = <[u8; 32]>::try_from(pt.as_slice()).map_err(|_| CryptoError::WrongKey);
    pt.zeroize();
    key.map(DataKey)
}

fn split(sealed: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&version, rest) = sealed.split_first()?;
    (rest.len() >= NONCE_BYTES + 16).then(|| {
        let (nonce, ct) = rest.split_at(NONCE_BYTES);
        (version, nonce, ct)
    })
}

/// Where a sealed value lives; bound into its associated data.
#[derive(Debug, Clone, Copy)]
pub struct Loc<'a> {
    pub table: &'static str,
    pub column: &'static str,
    pub row: &'a [u8],
}

impl Loc<'_> {
    fn aad(&self) -> Vec<u8> {
        let mut aad =
            Vec::with_capacity(32 + self.table.len() + self.column.len() + self.row.len());
        aad.extend_from_slice(b"telenode/v1/store|");
        aad.extend_from_slice(self.table.as_bytes());
        aad.push(b'|');
        aad.extend_from_slice(self.column.as_bytes());
        aad.push(b'|');
        aad.extend_from_slice(&(self.row.len() as u32).to_be_bytes());
        aad.extend_from_slice(self.row);
        aad
    }
}

/// Everything derived from the data key, ready to use.
pub struct Sealer {
    mode: Mode,
}

enum Mode {
    Keyed(Box<Keys>),
    /// No cryptography at all, for the store bench's baseline only.
    #[cfg(feature = "bench-plaintext")]
    Plaintext,
}

struct Keys {
    aead: Aes256Gcm,
    index: HmacSha256,
    audit: HmacSha256,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(***)")
    }
}

impl Sealer {
    pub fn new(data: &DataKey) -> Sealer {
        let mut seal = derive(&data.0, b"telenode/v1/store/seal");
        let mut index = derive(&data.0, b"telenode/v1/store/index");
        let mut audit = derive(&data.0, b"telenode/v1/store/audit");
        let sealer = Sealer {
            mode: Mode::Keyed(Box::new(Keys {
                aead: Aes256Gcm::new(&seal.into()),
                index: <HmacSha256 as Mac>::new_from_slice(&index).expect("any key size"),
                audit: <HmacSha256 as Mac>::new_from_slice(&audit).expect("any key size"),
            })),
        };
        seal.zeroize();
        index.zeroize();
        audit.zeroize();
        sealer
    }

    /// A sealer that does nothing: values are stored as they are, lookups
    /// use the plaintext. Exists only with the `bench-plaintext` feature, which
    /// only the store bench enables, to measure what sealing costs.
    #[cfg(feature = "bench-plaintext")]
    pub fn plaintext_for_bench() -> Sealer {
        Sealer {
            mode: Mode::Plaintext,
        }
    }

    /// Seals `plaintext` for `loc` with a fresh random `nonce` (never reuse one).
    pub fn seal(&self, loc: Loc<'_>, nonce: [u8; NONCE_BYTES], plaintext: &[u8]) -> Vec<u8> {
        match &self.mode {
            Mode::Keyed(k) => {
                let mut padded = pad(plaintext);
                let ct = k
                    .aead
                    .encrypt(
                        Nonce::from_slice(&nonce),
                        Payload {
                            msg: &padded,
                            aad: &loc.aad(),
                        },
                    )
                    .expect("AES-GCM encryption of a small value cannot fail");
                padded.zeroize();
                let mut out = Vec::with_capacity(1 + NONCE_BYTES + ct.len());
                out.push(VERSION);
                out.extend_from_slice(&nonce);
                out.extend_from_slice(&ct);
                out
            }
            #[cfg(feature = "bench-plaintext")]
            Mode::Plaintext => plaintext.to_vec(),
        }
    }

    /// Opens a value sealed for `loc`.
    pub fn open(&self, loc: Loc<'_>, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        match &self.mode {
            Mode::Keyed(k) => {
                let (version, nonce, ct) = split(sealed).ok_or(CryptoError::Integrity)?;
                if version != VERSION {
                    return Err(CryptoError::Version(version));
                }
                let padded = k
                    .aead
                    .decrypt(
                        Nonce::from_slice(nonce),
                        Payload {
                            msg: ct,
                            aad: &loc.aad(),
                        },
                    )
                    .map_err(|_| CryptoError::Integrity)?;
                unpad(padded).ok_or(CryptoError::Integrity)
            }
            #[cfg(feature = "bench-plaintext")]
            Mode::Plaintext => Ok(sealed.to_vec()),
        }
    }

    /// The keyed hash used for an equality lookup: HMAC-SHA256 over the
    /// domain (table and column) and the value. Without the data key it
    /// cannot be computed, so a copied database cannot be searched for a
    /// known login or token.
    pub fn index(&self, domain: &'static str, value: &[u8]) -> Vec<u8> {
        match &self.mode {
            Mode::Keyed(k) => {
                let mut mac = k.index.clone();
                mac.update(domain.as_bytes());
                mac.update(b"|");
                mac.update(value);
                mac.finalize().into_bytes().to_vec()
            }
            #[cfg(feature = "bench-plaintext")]
            Mode::Plaintext => [domain.as_bytes(), b"|", value].concat(),
        }
    }

    /// The MAC of audit entry `seq`, chained to the previous entry's MAC.
    pub fn chain_mac(&self, prev: &[u8; 32], seq: i64, sealed: &[u8]) -> [u8; 32] {
        match &self.mode {
            Mode::Keyed(k) => {
                let mut mac = k.audit.clone();
                mac.update(b"telenode/v1/audit|");
                mac.update(prev);
                mac.update(&seq.to_be_bytes());
                mac.update(sealed);
                mac.finalize().into_bytes().into()
            }
            #[cfg(feature = "bench-plaintext")]
            Mode::Plaintext => [0; 32],
        }
    }
}

fn pad(plaintext: &[u8]) -> Vec<u8> {
    let len = (plaintext.len() / PAD_TO + 1) * PAD_TO;
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(plaintext);
    out.push(0x80);
    out.resize(len, 0);
    out
}

fn unpad(mut padded: Vec<u8>) -> Option<Vec<u8>> {
    let end = padded.iter().rposition(|&b| b != 0)?;
    if padded[end] != 0x80 {
        return None;
    }
    padded.truncate(end);
    Some(padded)
}

/// Where the audit chain starts: the first sequence number still present and
/// the MAC of the entry before it (all zeros for a log never purged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainPoint {
    pub seq: i64,
    pub mac: [u8; 32],
}

impl ChainPoint {
    pub const GENESIS: ChainPoint = ChainPoint {
        seq: 0,
        mac: [0; 32],
    };
}

/// Why the audit chain does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuditFault {
    #[error("entry {seq} is missing (deleted)")]
    Missing { seq: i64 },
    #[error("entry {seq} was altered")]
    Altered { seq: i64 },
    #[error("the log ends at entry {found} but its authenticated head says {expected}")]
    Truncated { expected: i64, found: i64 },
}

/// Walks the audit chain entry by entry (feed in ascending `seq`).
#[derive(Debug)]
pub struct ChainVerifier<'a> {
    sealer: &'a Sealer,
    last: ChainPoint,
    checked: u64,
}

impl<'a> ChainVerifier<'a> {
    /// Starts after `anchor` (the point before the first entry kept).
    pub fn new(sealer: &'a Sealer, anchor: ChainPoint) -> ChainVerifier<'a> {
        ChainVerifier {
            sealer,
            last: anchor,
            checked: 0,
        }
    }

    /// Checks the next stored entry.
    pub fn push(&mut self, seq: i64, sealed: &[u8], mac: &[u8]) -> Result<(), AuditFault> {
        let expected_seq = self.last.seq + 1;
        if seq != expected_seq {
            return Err(AuditFault::Missing { seq: expected_seq });
        }
        let computed = self.sealer.chain_mac(&self.last.mac, seq, sealed);
        if !bool::from(computed.ct_eq(mac)) {
            return Err(AuditFault::Altered { seq });
        }
        self.last = ChainPoint { seq, mac: computed };
        self.checked += 1;
        Ok(())
    }

    /// Compares the end of the walk with the authenticated head; returns how
    /// many entries were checked.
    pub fn finish(self, head: ChainPoint) -> Result<u64, AuditFault> {
        if self.last.seq < head.seq {
            return Err(AuditFault::Truncated {
                expected: head.seq,
                found: self.last.seq,
            });
        }
        if self.last != head {
            return Err(AuditFault::Altered { seq: self.last.seq });
        }
        Ok(self.checked)
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const LOC: Loc<'static> = Loc {
        table: "doctors",
        column: "record",
        row: &[0, 0, 0, 1],
    };

    fn sealer() -> Sealer {
        Sealer::new(&DataKey::from_bytes([7; 32]))
    }

    #[test]
    fn seal_round_trips_and_hides_the_plaintext() {
        let s = sealer();
        let sealed = s.seal(LOC, [1; 12], b"Dr. Lind");
        assert_eq!(sealed.len(), 1 + 12 + 32 + 16, "padded to 32 bytes");
        assert!(!sealed.windows(8).any(|w| w == b"Dr. Lind"));
        assert_eq!(s.open(LOC, &sealed).unwrap(), b"Dr. Lind");
        // Exactly a multiple of PAD_TO still gets a padding block.
        let full = s.seal(LOC, [2; 12], &[0x80; 32]);
        assert_eq!(s.open(LOC, &full).unwrap(), [0x80; 32]);
        assert_eq!(s.open(LOC, &s.seal(LOC, [3; 12], b"")).unwrap(), b"");
    }

    #[test]
    fn flipped_bit_anywhere_is_an_integrity_error() {
        let s = sealer();
        let sealed = s.seal(LOC, [1; 12], b"value");
        for i in 1..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert_eq!(s.open(LOC, &bad), Err(CryptoError::Integrity), "byte {i}");
        }
        let mut bad = sealed.clone();
        bad[0] = 9;
        assert_eq!(s.open(LOC, &bad), Err(CryptoError::Version(9)));
        assert_eq!(s.open(LOC, &sealed[..20]), Err(CryptoError::Integrity));
    }

    #[test]
    fn value_bound_to_table_column_and_row() {
        let s = sealer();
        let sealed = s.seal(LOC, [1; 12], b"value");
        for other in [
            Loc {
                table: "sessions",
                ..LOC
            },
            Loc {
                column: "login",
                ..LOC
            },
            Loc {
                row: &[0, 0, 0, 2],
                ..LOC
            },
        ] {
            assert_eq!(
                s.open(other, &sealed),
                Err(CryptoError::Integrity),
                "{other:?}"
            );
        }
        let other_key = Sealer::new(&DataKey::from_bytes([8; 32]));
        assert_eq!(other_key.open(LOC, &sealed), Err(CryptoError::Integrity));
    }

    #[test]
    fn index_is_keyed_and_domain_separated() {
        let s = sealer();
        let a = s.index("doctors.login", b"alice");
        assert_eq!(a, s.index("doctors.login", b"alice"));
        assert_ne!(a, s.index("sessions.token", b"alice"));
        assert_ne!(
            a,
            Sealer::new(&DataKey::from_bytes([8; 32])).index("doctors.login", b"alice")
        );
        assert_eq!(a.len(), 32);
    }

    #[test]
    fn wrap_unwrap_and_wrong_master_key() {
        let m1 = MasterKey::from_bytes([1; 32]);
        let m2 = MasterKey::from_bytes([2; 32]);
        let dk = DataKey::from_bytes([9; 32]);
        let w = wrap(&m1, &dk, b"store-a", [5; 12]);
        assert_eq!(unwrap(&m1, &w, b"store-a").unwrap(), dk);
        assert_eq!(unwrap(&m2, &w, b"store-a"), Err(CryptoError::WrongKey));
        assert_eq!(unwrap(&m1, &w, b"store-b"), Err(CryptoError::WrongKey));
        assert_ne!(m1.id(), m2.id());
    }

    #[test]
    fn key_file_text_round_trips_and_rejects_junk() {
        let m = MasterKey::from_bytes([0xab; 32]);
        let text = m.to_file_text();
        assert!(text.starts_with("telenode-master-key-v1 "));
        assert_eq!(MasterKey::from_file_text(&text).unwrap().0, m.0);
        assert!(matches!(
            MasterKey::from_file_text("hello"),
            Err(CryptoError::MalformedKey(_))
        ));
        assert!(matches!(
            MasterKey::from_file_text("telenode-master-key-v1 AAAA"),
            Err(CryptoError::MalformedKey(_))
        ));
        assert!(!format!("{m:?}").contains("ab"), "Debug hides the key");
    }

    fn chain(s: &Sealer, n: i64) -> Vec<(i64, Vec<u8>, [u8; 32])> {
        let mut prev = [0; 32];
        (1..=n)
            .map(|seq| {
                let sealed = vec![seq as u8; 40];
                let mac = s.chain_mac(&prev, seq, &sealed);
                prev = mac;
                (seq, sealed, mac)
            })
            .collect()
    }

    fn verify(
        s: &Sealer,
        anchor: ChainPoint,
        entries: &[(i64, Vec<u8>, [u8; 32])],
        head: ChainPoint,
    ) -> Result<u64, AuditFault> {
        let mut v = ChainVerifier::new(s, anchor);
        for (seq, sealed, mac) in entries {
            v.push(*seq, sealed, mac)?;
        }
        v.finish(head)
    }

    #[test]
    fn audit_chain_detects_deletion_alteration_and_truncation() {
        let s = sealer();
        let entries = chain(&s, 5);
        let head = ChainPoint {
            seq: 5,
            mac: entries[4].2,
        };
        assert_eq!(verify(&s, ChainPoint::GENESIS, &entries, head), Ok(5));

        let mut deleted = entries.clone();
        deleted.remove(2);
        assert_eq!(
            verify(&s, ChainPoint::GENESIS, &deleted, head),
            Err(AuditFault::Missing { seq: 3 })
        );

        let mut altered = entries.clone();
        altered[1].1[0] ^= 1;
        assert_eq!(
            verify(&s, ChainPoint::GENESIS, &altered, head),
            Err(AuditFault::Altered { seq: 2 })
        );

        assert_eq!(
            verify(&s, ChainPoint::GENESIS, &entries[..4], head),
            Err(AuditFault::Truncated {
                expected: 5,
                found: 4
            })
        );

        // A purged prefix verifies from its anchor, but not from genesis.
        let anchor = ChainPoint {
            seq: 2,
            mac: entries[1].2,
        };
        assert_eq!(verify(&s, anchor, &entries[2..], head), Ok(3));
        assert_eq!(
            verify(&s, ChainPoint::GENESIS, &entries[2..], head),
            Err(AuditFault::Missing { seq: 1 })
        );
    }
}
