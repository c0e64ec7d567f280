//! Doctor credentials: argon2id password hashes, random session tokens, and
//! the small random/encoding helpers the runtime shares.

use std::sync::LazyLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Shortest password accepted for a doctor account.
pub const MIN_PASSWORD_LEN: usize = 12;

/// argon2id with 19 MiB, 2 passes, 1 lane (OWASP's baseline recommendation).
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A hash that no password matches, verified when a login is unknown so that
/// unknown and known logins cost the same time.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| hash_password("telenode-dummy-password").unwrap_or_default());

/// A password that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PasswordError {
    #[error("password must be at least {MIN_PASSWORD_LEN} characters")]
    TooShort,
    #[error("hashing failed: {0}")]
    Hash(String),
}

/// Checks the password policy and returns its argon2id PHC string.
pub fn new_password_hash(password: &str) -> Result<String, PasswordError> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(PasswordError::TooShort);
    }
    hash_password(password)
}

fn hash_password(password: &str) -> Result<String, PasswordError> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordError::Hash(e.to_string()))?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Verifies a password against a stored hash; `None` (unknown login) costs as
/// much as a real check and fails.
pub fn verify_password(stored: Option<&str>, password: &str) -> bool {
    let (hash, real) = match stored {
        Some(h) => (h, true),
        None => (DUMMY_HASH.as_str(), false),
    };
    let ok = PasswordHash::new(hash)
        .map(|parsed| {
            argon2()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false);
    ok && real
}

/// `n` random bytes from the operating system's generator.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::rng().fill_bytes(&mut b);
    b
}

/// base64url without padding.
pub fn b64u(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A fresh session token (256 bits, base64url) and the hash the store keeps.
pub fn new_session_token() -> (String, [u8; 32]) {
    let token = b64u(&random_bytes::<32>());
    let hash = session_hash(&token);
    (token, hash)
}

/// The stored form of a session token.
pub fn session_hash(token: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"telenode/v1/session|");
    h.update(token.as_bytes());
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_password_refused() {
        assert_eq!(new_password_hash("short"), Err(PasswordError::TooShort));
    }

    #[test]
    fn hash_verifies_and_rejects() {
        let h = new_password_hash("correct horse battery").expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password(Some(&h), "correct horse battery"));
        assert!(!verify_password(Some(&h), "correct horse batterz"));
        assert!(!verify_password(None, "correct horse battery"));
        assert!(!verify_password(Some("not a phc string"), "x"));
    }

    #[test]
    fn session_tokens_are_distinct_and_hashed() {
        let (a, ha) = new_session_token();
        let (b, hb) = new_session_token();
        assert_ne!(a, b);
        assert_ne!(ha, hb);
        assert_eq!(session_hash(&a), ha);
        assert_eq!(a.len(), 43);
    }
}
