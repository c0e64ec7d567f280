//! Join tokens and constant-time comparison (`PROTOCOL.md`, "Identifiers and
//! secrets").
//!
//! The node never stores a raw join token, only
//! `token_hash = SHA-256("telenode/v1/token|" ‖ raw token bytes)`, and
//! compares secrets in constant time.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Domain-separation prefix of [`token_hash`].
pub const TOKEN_HASH_PREFIX: &[u8] = b"telenode/v1/token|";

/// Size of a raw join token in bytes.
pub const TOKEN_BYTES: usize = 32;

/// `SHA-256("telenode/v1/token|" ‖ raw_token)`: what the node stores and
/// looks up.
pub fn token_hash(raw_token: &[u8; TOKEN_BYTES]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(TOKEN_HASH_PREFIX);
    h.update(raw_token);
    h.finalize().into()
}

/// Decodes a join token from its link form: base64url without padding of
/// exactly 32 bytes. `None` for anything else (the node answers `bad_token`,
/// the same as for an unknown token).
pub fn decode_token(s: &str) -> Option<[u8; TOKEN_BYTES]> {
    // 32 bytes are 43 characters; reject other lengths before decoding.
    if s.len() != 43 {
        return None;
    }
    URL_SAFE_NO_PAD.decode(s.as_bytes()).ok()?.try_into().ok()
}

/// Encodes a raw join token for the link (base64url without padding).
pub fn encode_token(raw_token: &[u8; TOKEN_BYTES]) -> String {
    URL_SAFE_NO_PAD.encode(raw_token)
}

/// Compares two byte strings in constant time (for equal lengths; the length
/// itself is not secret). `false` when the lengths differ.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trip() {
        let raw = [0xfb; 32];
        let s = encode_token(&raw);
        assert_eq!(s.len(), 43);
        assert_eq!(decode_token(&s), Some(raw));
        assert_eq!(decode_token(&format!("{s}=")), None);
        assert_eq!(decode_token(&s[..42]), None);
        assert_eq!(decode_token(&s.replace('_', "/")), None);
        assert_eq!(decode_token(""), None);
        // 43 characters whose last one carries non-zero padding bits.
        let mut bad = s.clone();
        bad.pop();
        bad.push('9');
        assert_eq!(decode_token(&bad), None);
    }

    #[test]
    fn token_hash_is_domain_separated() {
        let raw = [0u8; 32];
        let plain: [u8; 32] = Sha256::digest(raw).into();
        assert_ne!(token_hash(&raw), plain);
        assert_ne!(token_hash(&raw), token_hash(&[1u8; 32]));
    }

    #[test]
    fn constant_time_eq() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(ct_eq(b"", b""));
    }
}
