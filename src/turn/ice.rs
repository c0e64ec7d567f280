//! What the node tells peers about STUN/TURN: the secret shared with the
//! relay (embedded or an external coturn) and fresh TURN REST credentials
//! minted from it for each authenticated signalling seat.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use rand::RngCore;
use telenode_signaling::creds::{self, TURN_OPAQUE_BYTES};
use telenode_signaling::msg::IceServer;

/// The TURN REST secret: the bytes of the secret file (surrounding
/// whitespace trimmed), exactly as coturn's `static-auth-secret` uses them.
#[derive(Clone)]
pub struct TurnSecret(Vec<u8>);

impl std::fmt::Debug for TurnSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TurnSecret(***)")
    }
}

impl TurnSecret {
    /// The secret's bytes (the HMAC key).
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// The secret file cannot be used; the message names the key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// Reading, creating or checking the file failed.
    #[error("turn_secret_file: {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Shortest secret accepted from a file (the node writes 43 characters).
pub const MIN_SECRET_LEN: usize = 16;

/// Reads the secret file, creating it (mode 0600, 32 random bytes as
/// base64url) when it does not exist. Refuses a file that other users can
/// access, or a secret shorter than [`MIN_SECRET_LEN`].
pub fn load_or_create_secret(path: &Path) -> Result<TurnSecret, SecretError> {
    let err = |reason: String| SecretError::File {
        path: path.to_owned(),
        reason,
    };
    let read = || crate::secret_file::read_private(path, "replace the secret").map_err(err);
    let text = match read()? {
        Some(text) => text,
        None => {
            create(path).map_err(|e| err(format!("creating: {e}")))?;
            tracing::info!("created a new TURN secret file");
            read()?.ok_or_else(|| err("vanished after creation".into()))?
        }
    };
    let secret = text.trim_ascii().to_vec();
    if secret.len() < MIN_SECRET_LEN {
        return Err(err(format!(
            "the secret must be at least {MIN_SECRET_LEN} characters"
        )));
    }
    Ok(TurnSecret(secret))
}

fn create(path: &Path) -> std::io::Result<()> {
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    crate::secret_file::write_private(path, &format!("{}\n", crate::auth::b64u(&raw)), true)
}

/// Longest credential lifetime handed out, whatever the consultation says.
pub const MAX_CREDENTIAL_SECS: u64 = 24 * 3600;

/// Mints the `ice_servers` of a `welcome`: STUN URLs without credentials,
/// TURN URLs with a fresh REST credential.
#[derive(Debug, Clone)]
pub struct IceProvider {
    secret: TurnSecret,
    stun: Vec<String>,
    turn: Vec<String>,
}

impl IceProvider {
    /// A provider handing out `urls` (`stun:`, `turn:`, `turns:`).
    pub fn new(secret: TurnSecret, urls: &[String]) -> Self {
        let (stun, turn) = urls.iter().cloned().partition(|u| u.starts_with("stun:"));
        IceProvider { secret, stun, turn }
    }

    /// The URLs of the embedded relay reached at `addr` (UDP and TCP on
    /// one port) and, with `tls`, over TLS at that name and port.
    pub fn embedded_urls(addr: SocketAddr, tls: Option<(String, u16)>) -> Vec<String> {
        let mut urls = vec![
            format!("stun:{addr}"),
            format!("turn:{addr}?transport=udp"),
            format!("turn:{addr}?transport=tcp"),
        ];
        if let Some((name, port)) = tls {
            urls.push(format!("turns:{name}:{port}?transport=tcp"));
        }
        urls
    }

    /// ICE servers for one seat: a credential valid until `expires_unix`
    /// (the consultation's end), at most [`MAX_CREDENTIAL_SECS`] from
    /// `now_unix`. Nothing when the consultation is already over. The
    /// username's id is random: it names nobody and links to nothing.
    pub fn servers(&self, now_unix: u64, expires_unix: u64) -> Vec<IceServer> {
        let expires = expires_unix.min(now_unix.saturating_add(MAX_CREDENTIAL_SECS));
        if expires <= now_unix {
            return Vec::new();
        }
        let mut out = Vec::with_capacity(2);
        if !self.stun.is_empty() {
            out.push(IceServer {
                urls: self.stun.clone(),
                username: None,
                credential: None,
            });
        }
        if !self.turn.is_empty() {
            let mut opaque = [0u8; TURN_OPAQUE_BYTES];
            rand::rng().fill_bytes(&mut opaque);
            let c = creds::mint_turn_credential(self.secret.bytes(), expires, &opaque);
            out.push(IceServer {
                urls: self.turn.clone(),
                username: Some(c.username),
                credential: Some(c.password),
            });
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn secret_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/turn.secret");
        let a = load_or_create_secret(&path).unwrap();
        let b = load_or_create_secret(&path).unwrap();
        assert_eq!(a.bytes(), b.bytes());
        assert_eq!(a.bytes().len(), 43);
        assert!(!format!("{a:?}").contains(std::str::from_utf8(a.bytes()).unwrap()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }

    #[cfg(unix)]
    #[test]
    fn readable_secret_file_is_refused_naming_the_key() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("turn.secret");
        std::fs::write(&path, "a shared secret of some length\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = load_or_create_secret(&path).unwrap_err().to_string();
        assert!(err.starts_with("turn_secret_file:"), "{err}");
        assert!(err.contains("0640"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let s = load_or_create_secret(&path).unwrap();
        assert_eq!(s.bytes(), b"a shared secret of some length");
    }

    #[test]
    fn short_secret_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("turn.secret");
        std::fs::write(&path, "short\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        assert!(load_or_create_secret(&path).is_err());
    }

    #[test]
    fn minted_servers_verify_and_are_bounded_by_the_consultation() {
        let secret = TurnSecret(b"0123456789abcdef0123".to_vec());
        let p = IceProvider::new(
            secret.clone(),
            &IceProvider::embedded_urls(
                "192.0.2.1:3478".parse().unwrap(),
                Some(("turn.example.org".to_owned(), 5349)),
            ),
        );
        let list = p.servers(1_000, 5_000);
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].urls, ["stun:192.0.2.1:3478"]);
        assert!(list[0].username.is_none());
        assert_eq!(
            list[1].urls,
            [
                "turn:192.0.2.1:3478?transport=udp",
                "turn:192.0.2.1:3478?transport=tcp",
                "turns:turn.example.org:5349?transport=tcp"
            ]
        );
        let user = list[1].username.clone().unwrap();
        let pass = list[1].credential.clone().unwrap();
        assert_eq!(
            creds::verify_turn_credential(secret.bytes(), &user, &pass, 4_999),
            Ok(5_000)
        );
        assert!(creds::verify_turn_credential(secret.bytes(), &user, &pass, 5_000).is_err());
        // The id is random: two seats of one consultation get unrelated names.
        let again = p.servers(1_000, 5_000);
        assert_ne!(again[1].username, list[1].username);
        // Capped at a day; nothing for a consultation that is over.
        let far = p.servers(1_000, u64::MAX);
        assert!(far[1].username.as_deref().unwrap().starts_with("87400:"));
        assert!(p.servers(5_000, 5_000).is_empty());
    }
}
