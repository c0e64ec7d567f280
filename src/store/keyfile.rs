//! The master key file: created once with mode 0600, refused when others can
//! read it, replaced atomically on rotation.

use std::path::{Path, PathBuf};

use super::StoreError;
use super::crypto::MasterKey;

/// File name of the master key inside the data directory when
/// `master_key_file` is not set.
pub const DEFAULT_KEY_FILE: &str = "master.key";

/// Where the master key lives when nothing else is configured.
pub fn default_key_file(data_dir: &Path) -> PathBuf {
    data_dir.join(DEFAULT_KEY_FILE)
}

/// The file a rotation writes first; renamed over the key file once the
/// database uses it.
pub fn pending_path(path: &Path) -> PathBuf {
    crate::secret_file::pending_path(path)
}

/// Reads a key file; `Ok(None)` if it does not exist.
pub fn load(path: &Path) -> Result<Option<MasterKey>, StoreError> {
    let key_err = |reason: String| StoreError::KeyFile {
        path: path.to_owned(),
        reason,
    };
    let Some(bytes) = crate::secret_file::read_private(path, "rotate the key").map_err(key_err)?
    else {
        return Ok(None);
    };
    let text = String::from_utf8(bytes).map_err(|e| key_err(e.to_string()))?;
    MasterKey::from_file_text(&text)
        .map(Some)
        .map_err(|e| key_err(e.to_string()))
}

pub fn create(path: &Path, key: &MasterKey) -> Result<(), StoreError> {
    write(path, key, true)
}

/// Writes `key` to [`pending_path`] (replacing an old pending file).
pub fn write_pending(path: &Path, key: &MasterKey) -> Result<PathBuf, StoreError> {
    let pending = pending_path(path);
    write(&pending, key, false)?;
    Ok(pending)
}

/// Moves the pending key over the key file, atomically.
pub fn commit_pending(path: &Path) -> Result<(), StoreError> {
    let pending = pending_path(path);
    std::fs::rename(&pending, path).map_err(|e| StoreError::KeyFile {
        path: path.to_owned(),
        reason: format!("renaming {}: {e}", pending.display()),
    })?;
    crate::secret_file::sync_parent(path);
    Ok(())
}

fn write(path: &Path, key: &MasterKey, create_new: bool) -> Result<(), StoreError> {
    crate::secret_file::write_private(path, &key.to_file_text(), create_new).map_err(|e| {
        StoreError::KeyFile {
            path: path.to_owned(),
            reason: e.to_string(),
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn created_private_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let key = MasterKey::from_bytes([3; 32]);
        create(&path, &key).unwrap();
        assert_eq!(load(&path).unwrap().unwrap().id(), key.id());
        assert!(create(&path, &key).is_err(), "never overwritten");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        assert!(load(&dir.path().join("absent")).unwrap().is_none());
    }

    #[cfg(unix)]
    #[test]
    fn readable_by_others_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        create(&path, &MasterKey::from_bytes([3; 32])).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains("0644") && err.contains("chmod 600"), "{err}");
    }
}
