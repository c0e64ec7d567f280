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
    #[error(
        "password is too common (it or its core is on the list of common passwords, or it repeats a short pattern); choose another"
    )]
    Common,
    #[error("hashing failed: {0}")]
    Hash(String),
}

/// Checks the password policy and returns its argon2id PHC string.
pub fn new_password_hash(password: &str) -> Result<String, PasswordError> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(PasswordError::TooShort);
    }
    if is_common(password) {
        return Err(PasswordError::Common);
    }
    hash_password(password)
}

/// The shipped list of the 10,000 most common passwords.
static COMMON: LazyLock<std::collections::HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("../data/common-passwords.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect()
});

/// Whether a password is a common one: on the list (ignoring case), a listed
/// word with digits or symbols around it ("Password2024!"), or a short
/// pattern repeated ("abcabcabcabc", "passwordpassword").
pub fn is_common(password: &str) -> bool {
    let p = password.to_lowercase();
    let listed = |s: &str| COMMON.contains(s);
    if listed(&p) {
        return true;
    }
    let core = p.trim_matches(|c: char| !c.is_alphabetic());
    if core.chars().count() >= 4 && core.len() + 6 >= p.len() && listed(core) {
        return true;
    }
    let chars: Vec<char> = p.chars().collect();
    (1..=chars.len() / 2).any(|unit| {
        chars.len().is_multiple_of(unit)
            && chars.chunks(unit).all(|c| c == &chars[..unit])
            && (unit <= 4 || listed(&chars[..unit].iter().collect::<String>()))
    })
}

/// A fresh TOTP secret.
pub fn new_totp_secret() -> [u8; crate::totp::SECRET_BYTES] {
    random_bytes()
}

/// Number of recovery codes made at enrolment.
pub const RECOVERY_CODES: usize = 10;

/// Fresh one-time recovery codes (`xxxx-xxxx-xxxx`, 60 bits each) and the
/// hashes the store keeps instead.
pub fn new_recovery_codes() -> (Vec<String>, Vec<[u8; 32]>) {
    let codes: Vec<String> = (0..RECOVERY_CODES)
        .map(|_| {
            let raw = crate::totp::base32_encode(&random_bytes::<8>()).to_lowercase();
            format!("{}-{}-{}", &raw[..4], &raw[4..8], &raw[8..12])
        })
        .collect();
    let hashes = codes.iter().map(|c| recovery_hash(c)).collect();
    (codes, hashes)
}

/// The stored form of a recovery code (hyphens, spaces and case ignored).
/// The codes are random enough that a fast hash suffices.
pub fn recovery_hash(code: &str) -> [u8; 32] {
    let normal: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let mut h = Sha256::new();
    h.update(b"telenode/v1/recovery|");
    h.update(normal.as_bytes());
    h.finalize().into()
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
    fn common_passwords_refused() {
        for p in [
            "123qweasdzxc",
            "1QAZ2WSX3EDC",
            "password2024!",
            "!!Sunshine1234",
            "passwordpassword",
            "abcabcabcabc",
            "aaaaaaaaaaaaaaaa",
            "qwertyuiop123",
        ] {
            assert_eq!(new_password_hash(p), Err(PasswordError::Common), "{p}");
        }
        for p in [
            "correct horse battery",
            "Praxis-Sonnenweg-17",
            "password is a long sentence",
        ] {
            assert!(!is_common(p), "{p}");
        }
    }

    #[test]
    fn recovery_codes_are_distinct_and_hashed_loosely() {
        let (codes, hashes) = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let unique: std::collections::HashSet<_> = hashes.iter().collect();
        assert_eq!(unique.len(), RECOVERY_CODES);
        assert_eq!(codes[0].len(), 14);
        assert_eq!(recovery_hash(&codes[0]), hashes[0]);
        assert_eq!(
            recovery_hash(&codes[0].to_uppercase().replace('-', " ")),
            hashes[0]
        );
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
