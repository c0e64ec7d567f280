//! Join tokens, TURN credentials and constant-time comparison
//! (`PROTOCOL.md`, "Identifiers and secrets").
//!
//! The node never stores a raw join token, only
//! `token_hash = SHA-256("telenode/v1/token|" ‖ raw token bytes)`, and
//! compares secrets in constant time.
//!
//! TURN credentials follow the TURN REST API convention that coturn calls
//! `use-auth-secret`: username `"<expiry unix seconds>:<opaque id>"`,
//! password `base64(HMAC-SHA1(secret, username))`. The same secret therefore
//! works with the embedded relay and with an external coturn. The opaque id
//! is random and names nobody.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha1::Sha1;
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

/// Size of the random opaque id in a minted TURN username, in bytes.
pub const TURN_OPAQUE_BYTES: usize = 12;

/// Longest TURN username accepted (RFC 8489 allows 513 bytes; ours are
/// about 30).
pub const TURN_USERNAME_MAX: usize = 128;

/// A TURN REST credential: what goes into an ICE server entry.
#[derive(Clone, PartialEq, Eq)]
pub struct TurnCredential {
    /// `"<expiry>:<opaque id>"`.
    pub username: String,
    /// `base64(HMAC-SHA1(secret, username))`.
    pub password: String,
    /// Unix seconds after which the relay refuses the credential.
    pub expires_unix: u64,
}

impl fmt::Debug for TurnCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TurnCredential")
            .field("username", &self.username)
            .field("password", &"***")
            .field("expires_unix", &self.expires_unix)
            .finish()
    }
}

/// Why a TURN credential is refused. The relay answers every one of them
/// with `401 Unauthorized`; the variant is for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TurnCredError {
    /// The username is not `"<expiry>:<id>"` with a decimal expiry.
    #[error("malformed TURN username")]
    Malformed,
    /// The expiry has passed.
    #[error("TURN credential expired at {expired_at}")]
    Expired {
        /// The expiry the username carried (unix seconds).
        expired_at: u64,
    },
    /// The password is not the one the secret gives for this username
    /// (a forged or foreign credential).
    #[error("TURN password does not match")]
    BadPassword,
}

/// `base64(HMAC-SHA1(secret, username))`, the TURN REST password.
pub fn turn_password(secret: &[u8], username: &str) -> String {
    STANDARD.encode(turn_password_mac(secret, username))
}

fn turn_password_mac(secret: &[u8], username: &str) -> [u8; 20] {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(username.as_bytes());
    mac.finalize().into_bytes().into()
}

/// Mints a credential valid until `expires_unix`; `opaque` must be fresh
/// random bytes (passed in: this crate has no RNG).
pub fn mint_turn_credential(
    secret: &[u8],
    expires_unix: u64,
    opaque: &[u8; TURN_OPAQUE_BYTES],
) -> TurnCredential {
    let username = format!("{expires_unix}:{}", URL_SAFE_NO_PAD.encode(opaque));
    let password = turn_password(secret, &username);
    TurnCredential {
        username,
        password,
        expires_unix,
    }
}

/// Parses the expiry out of a TURN REST username (`"<expiry>:<id>"`,
/// 1–20 decimal digits before the first `:`), without checking it.
pub fn turn_username_expiry(username: &str) -> Result<u64, TurnCredError> {
    if username.len() > TURN_USERNAME_MAX || username.chars().any(char::is_control) {
        return Err(TurnCredError::Malformed);
    }
    let (digits, _id) = username.split_once(':').ok_or(TurnCredError::Malformed)?;
    if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TurnCredError::Malformed);
    }
    digits.parse().map_err(|_| TurnCredError::Malformed)
}

/// Checks a TURN REST username's form and expiry at `now_unix`; gives the
/// password the relay must expect for it (the relay then checks the
/// request's MESSAGE-INTEGRITY with the key derived from that password,
/// which is where a forged username fails).
pub fn turn_expected_password(
    secret: &[u8],
    username: &str,
    now_unix: u64,
) -> Result<String, TurnCredError> {
    let expiry = turn_username_expiry(username)?;
    if now_unix >= expiry {
        return Err(TurnCredError::Expired { expired_at: expiry });
    }
    Ok(turn_password(secret, username))
}

/// Verifies a username/password pair (constant-time comparison); gives the
/// expiry on success.
pub fn verify_turn_credential(
    secret: &[u8],
    username: &str,
    password: &str,
    now_unix: u64,
) -> Result<u64, TurnCredError> {
    let expected = turn_expected_password(secret, username, now_unix)?;
    if ct_eq(expected.as_bytes(), password.as_bytes()) {
        turn_username_expiry(username)
    } else {
        Err(TurnCredError::BadPassword)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"north-wind-secret";
    const TURN_PASSWORD_REFERENCE: &str = "r/l6ttQtMIfbS2lfULS0mDRRNUg=";

    /// Cross-checked with Python:
    /// `base64.b64encode(hmac.new(b"north-wind-secret", b"1700000000:alice", "sha1").digest())`.
    #[test]
    fn turn_password_matches_reference() {
        assert_eq!(
            turn_password(SECRET, "1700000000:alice"),
            TURN_PASSWORD_REFERENCE
        );
    }

    #[test]
    fn minted_turn_credential_verifies_until_expiry() {
        let c = mint_turn_credential(SECRET, 1_000, &[7; TURN_OPAQUE_BYTES]);
        assert_eq!(c.username, "1000:BwcHBwcHBwcHBwcH");
        assert_eq!(
            verify_turn_credential(SECRET, &c.username, &c.password, 999),
            Ok(1_000)
        );
        assert!(!format!("{c:?}").contains(&c.password));
    }

    #[test]
    fn expired_turn_credential_refused() {
        let c = mint_turn_credential(SECRET, 1_000, &[7; TURN_OPAQUE_BYTES]);
        for now in [1_000, 1_001, u64::MAX] {
            assert_eq!(
                verify_turn_credential(SECRET, &c.username, &c.password, now),
                Err(TurnCredError::Expired { expired_at: 1_000 })
            );
        }
    }

    #[test]
    fn forged_turn_credential_refused() {
        let c = mint_turn_credential(SECRET, 1_000, &[7; TURN_OPAQUE_BYTES]);
        // Wrong secret.
        let forged = mint_turn_credential(b"guessed", 1_000, &[7; TURN_OPAQUE_BYTES]);
        assert_eq!(
            verify_turn_credential(SECRET, &forged.username, &forged.password, 0),
            Err(TurnCredError::BadPassword)
        );
        // Expiry extended by the holder: the password no longer matches.
        let extended = c.username.replacen("1000", "9000", 1);
        assert_eq!(
            verify_turn_credential(SECRET, &extended, &c.password, 0),
            Err(TurnCredError::BadPassword)
        );
        assert_eq!(
            verify_turn_credential(SECRET, &c.username, "", 0),
            Err(TurnCredError::BadPassword)
        );
    }

    #[test]
    fn malformed_turn_usernames_refused() {
        for u in [
            "",
            "alice",
            ":alice",
            "12a:alice",
            "-5:alice",
            "+5:alice",
            " 5:alice",
            "123456789012345678901:x",
            "99999999999999999999:x",
            "5:a\nb",
        ] {
            assert_eq!(
                turn_username_expiry(u),
                Err(TurnCredError::Malformed),
                "{u:?}"
            );
        }
        assert_eq!(
            turn_username_expiry(&format!("5:{}", "x".repeat(TURN_USERNAME_MAX))),
            Err(TurnCredError::Malformed)
        );
        assert_eq!(turn_username_expiry("5:"), Ok(5));
        assert_eq!(turn_username_expiry("18446744073709551615:x"), Ok(u64::MAX));
    }

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
