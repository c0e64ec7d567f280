//! The desktop client's settings (node URL, login, devices) in the
//! platform's config directory, and the session token in the OS keyring
//! (the Secret Service on Linux desktops, the macOS Keychain, the Windows
//! Credential Manager) or, where there is none, in a file only the user can
//! read.
//!
//! Linux: `$XDG_CONFIG_HOME/telenode/` (usually `~/.config/telenode/`);
//! macOS: `~/Library/Application Support/org.telenode.telenode/`; Windows:
//! `%APPDATA%\telenode\telenode\config\`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// What the client remembers between starts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The node's base URL.
    #[serde(default)]
    pub node: String,
    /// The doctor's login.
    #[serde(default)]
    pub login: String,
    /// Camera: a device path, `none`, or empty for the first camera.
    #[serde(default)]
    pub camera: String,
    /// Microphone: a device id or name, `none`, or empty for the default.
    #[serde(default)]
    pub microphone: String,
    /// Speaker: a device id or name, `none`, or empty for the default.
    #[serde(default)]
    pub speaker: String,
}

/// Where the settings and the session token live.
#[derive(Debug, Clone)]
pub struct SettingsStore {
    dir: PathBuf,
    /// Try the OS keyring for the session token first.
    keyring: bool,
}

/// Where a session token was put.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPlace {
    /// The OS keyring.
    Keyring,
    /// The 0600 session file (no keyring, or it refused).
    File,
}

/// The keyring's service name for telenode's entries.
const KEYRING_SERVICE: &str = "telenode";

const SETTINGS_FILE: &str = "doctor.toml";
const SESSION_FILE: &str = "session";

impl SettingsStore {
    /// The platform's config directory for telenode.
    pub fn platform() -> anyhow::Result<SettingsStore> {
        let dirs = directories::ProjectDirs::from("org", "telenode", "telenode")
            .context("no home directory to keep the settings in")?;
        Ok(SettingsStore::with_keyring(dirs.config_dir()))
    }

    /// Settings in `dir`, the token in a file only (tests).
    pub fn at(dir: &Path) -> SettingsStore {
        SettingsStore {
            dir: dir.to_owned(),
            keyring: false,
        }
    }

    /// Settings in `dir`, the token in the OS keyring where there is one.
    pub fn with_keyring(dir: &Path) -> SettingsStore {
        SettingsStore {
            dir: dir.to_owned(),
            keyring: true,
        }
    }

    /// This store's keyring entry: one per settings directory, so two
    /// configurations (or tests) never share a token. The name is not
    /// secret.
    fn keyring_entry(&self) -> Option<keyring::Entry> {
        if !self.keyring {
            return None;
        }
        let user = format!("session {}", self.dir.display());
        keyring::Entry::new(KEYRING_SERVICE, &user)
            .inspect_err(|e| tracing::debug!(error = %e, "no keyring entry"))
            .ok()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The saved settings; defaults when there are none. A file that does not
    /// parse is an error naming it.
    pub fn load(&self) -> anyhow::Result<Settings> {
        let path = self.dir.join(SETTINGS_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                toml::from_str(&text).with_context(|| format!("reading {}", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Settings::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    pub fn save(&self, s: &Settings) -> anyhow::Result<()> {
        self.create_dir()?;
        let text = toml::to_string(s).context("encoding the settings")?;
        write_private(&self.dir.join(SETTINGS_FILE), text.as_bytes())
    }

    /// The saved session token, if any: from the keyring, else the file.
    pub fn session(&self) -> Option<String> {
        if let Some(entry) = self.keyring_entry() {
            match entry.get_password() {
                Ok(t) if !t.trim().is_empty() => return Some(t.trim().to_owned()),
                Ok(_) | Err(keyring::Error::NoEntry) => {}
                Err(e) => tracing::debug!(error = %e, "keyring not readable"),
            }
        }
        let t = std::fs::read_to_string(self.dir.join(SESSION_FILE)).ok()?;
        let t = t.trim();
        (!t.is_empty()).then(|| t.to_owned())
    }

    /// Keeps the session token in the OS keyring, or where there is none
    /// (a desktop without a Secret Service, a locked keyring) in a file
    /// readable by this user only (0600). Returns where it went.
    pub fn save_session(&self, token: &str) -> anyhow::Result<TokenPlace> {
        if let Some(entry) = self.keyring_entry() {
            match entry.set_password(token) {
                Ok(()) => {
                    // An older token on disk must not outlive this one.
                    self.remove_session_file()?;
                    return Ok(TokenPlace::Keyring);
                }
                Err(e) => {
                    tracing::info!(error = %e, "no OS keyring; the session goes to a 0600 file");
                }
            }
        }
        self.create_dir()?;
        write_private(&self.dir.join(SESSION_FILE), token.as_bytes())?;
        Ok(TokenPlace::File)
    }

    /// Deletes the session token wherever it is kept.
    pub fn forget_session(&self) -> anyhow::Result<()> {
        if let Some(entry) = self.keyring_entry() {
            match entry.delete_credential() {
                Ok(()) | Err(keyring::Error::NoEntry) => {}
                Err(e) => tracing::debug!(error = %e, "keyring not reachable"),
            }
        }
        self.remove_session_file()
    }

    fn remove_session_file(&self) -> anyhow::Result<()> {
        match std::fs::remove_file(self.dir.join(SESSION_FILE)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).context("removing the session file")
            }
            _ => Ok(()),
        }
    }

    fn create_dir(&self) -> anyhow::Result<()> {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            b.mode(0o700);
        }
        b.create(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))
    }
}

/// Writes a file created with mode 0600 (on Unix) through a temporary file
/// and a rename, so a crash never leaves half a token.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn settings_round_trip_and_default() {
        let dir = tempfile::tempdir().unwrap();
        let store = SettingsStore::at(&dir.path().join("telenode"));
        assert_eq!(store.load().unwrap(), Settings::default());
        let s = Settings {
            node: "https://telenode.example.org".into(),
            login: "dr-lind".into(),
            camera: "/dev/video2".into(),
            microphone: "none".into(),
            speaker: String::new(),
        };
        store.save(&s).unwrap();
        assert_eq!(store.load().unwrap(), s);
        // A file from before the device choices still loads.
        std::fs::write(
            store.dir().join(SETTINGS_FILE),
            "node = \"https://n\"\nlogin = \"dr\"\n",
        )
        .unwrap();
        assert_eq!(store.load().unwrap().camera, "");
        std::fs::write(store.dir().join(SETTINGS_FILE), "nodes = 1").unwrap();
        let e = store.load().unwrap_err();
        assert!(format!("{e:#}").contains("doctor.toml"));
    }

    #[test]
    fn session_token_is_private_and_can_be_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let store = SettingsStore::at(&dir.path().join("telenode"));
        assert_eq!(store.session(), None);
        store.save_session("tok-1").unwrap();
        store.save_session("tok-2").unwrap();
        assert_eq!(store.session().as_deref(), Some("tok-2"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(store.dir().join(SESSION_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
            let dmode = std::fs::metadata(store.dir()).unwrap().permissions().mode();
            assert_eq!(dmode & 0o777, 0o700);
        }
        store.forget_session().unwrap();
        store.forget_session().unwrap();
        assert_eq!(store.session(), None);
    }
}
