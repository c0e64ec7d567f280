//! The doctor client keeps its session token in the OS keyring where there
//! is one: a real Secret Service (gnome-keyring on a private D-Bus session
//! bus) holds it and no token file is written; without a keyring the token
//! falls back to the 0600 file.
//!
//! The test re-runs itself under `dbus-run-session` with a fresh
//! gnome-keyring, so neither the developer's keyring nor the environment
//! of other tests is touched.

use std::path::Path;
use std::process::Command;

use telenode::doctor::settings::{SettingsStore, TokenPlace};

const CHILD: &str = "TELENODE_KEYRING_TEST_CHILD";

/// What `secret-tool` (libsecret, independent of our code) finds for the
/// store's entry.
fn lookup(dir: &Path) -> Option<String> {
    let out = Command::new("secret-tool")
        .args(["lookup", "service", "telenode", "username"])
        .arg(format!("session {}", dir.display()))
        .output()
        .expect("secret-tool runs (scripts/test-all installs libsecret-tools)");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
}

#[test]
fn the_session_token_lives_in_the_keyring_and_nowhere_on_disk() {
    if std::env::var_os(CHILD).is_none() {
        // Re-run this test on a private session bus with an unlocked
        // gnome-keyring whose files live in a temporary home.
        let home = tempfile::tempdir().expect("tempdir");
        let status = Command::new("dbus-run-session")
            .args([
                "--",
                "sh",
                "-c",
                "printf test | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1 \
                 && exec \"$0\" \"$@\"",
            ])
            .arg(std::env::current_exe().expect("test binary"))
            .args([
                "the_session_token_lives_in_the_keyring_and_nowhere_on_disk",
                "--exact",
                "--nocapture",
            ])
            .env(CHILD, "1")
            .env("HOME", home.path())
            .env("XDG_DATA_HOME", home.path().join("data"))
            .env("XDG_RUNTIME_DIR", home.path())
            .status()
            .expect("dbus-run-session runs (scripts/test-all installs dbus and gnome-keyring)");
        assert!(status.success(), "the run with a keyring failed: {status}");
        return;
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("telenode");
    let store = SettingsStore::with_keyring(&config);
    assert_eq!(store.session(), None);
    assert_eq!(
        store.save_session("tok-1").expect("saved"),
        TokenPlace::Keyring
    );
    assert_eq!(lookup(&config).as_deref(), Some("tok-1"));
    assert!(
        !config.join("session").exists(),
        "no token file beside the keyring"
    );
    // Rotation replaces it; a fresh store (the next start) finds it.
    store.save_session("tok-2").expect("saved");
    assert_eq!(
        SettingsStore::with_keyring(&config).session().as_deref(),
        Some("tok-2")
    );
    // A token file from before the keyring is removed when the keyring
    // takes over.
    let file_only = SettingsStore::at(&config);
    assert_eq!(
        file_only.save_session("old").expect("saved"),
        TokenPlace::File
    );
    store.save_session("tok-3").expect("saved");
    assert!(!config.join("session").exists());
    // Signing out deletes it from the keyring.
    store.forget_session().expect("forgotten");
    assert_eq!(lookup(&config), None);
    assert_eq!(store.session(), None);
    // Every file the client wrote holds no token.
    for entry in walk(dir.path()) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("tok-"), "{} holds a token", entry.display());
    }
}

#[test]
fn without_a_keyring_the_token_goes_to_a_private_file() {
    if std::env::var_os(CHILD).is_none() {
        // Re-run with a session bus address that leads nowhere: no Secret
        // Service, whatever the machine running the tests has.
        let home = tempfile::tempdir().expect("tempdir");
        let status = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "without_a_keyring_the_token_goes_to_a_private_file",
                "--exact",
                "--nocapture",
            ])
            .env(CHILD, "1")
            .env("HOME", home.path())
            .env("XDG_RUNTIME_DIR", home.path())
            .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")
            .status()
            .expect("test binary runs");
        assert!(
            status.success(),
            "the run without a keyring failed: {status}"
        );
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("telenode");
    let store = SettingsStore::with_keyring(&config);
    assert_eq!(
        store.save_session("tok-f").expect("saved"),
        TokenPlace::File
    );
    assert_eq!(store.session().as_deref(), Some("tok-f"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(config.join("session"))
            .expect("file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    store.forget_session().expect("forgotten");
    assert!(!config.join("session").exists());
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
