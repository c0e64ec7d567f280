//! Files that hold secrets (the master key, the TURN secret): written
//! readable by the owner only, and refused when other users can read them.

use std::io::Write;
use std::path::Path;

/// Refuses a file that group or others may read. `advice` says what to do
/// about a secret that may have leaked ("rotate the key", …).
#[cfg(unix)]
pub fn check_private(meta: &std::fs::Metadata, advice: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "mode {mode:04o} lets other users read it; chmod 600 it (and {advice} if it may \
             have been read)"
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
pub fn check_private(_meta: &std::fs::Metadata, _advice: &str) -> Result<(), String> {
    Ok(())
}

/// Writes `text` to `path` with mode 0600 (creating its directory), synced
/// to disk with its directory entry. With `create_new`, an existing file is
/// an error instead of being replaced.
pub fn write_private(path: &Path, text: &str, create_new: bool) -> std::io::Result<()> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(parent) = parent {
        std::fs::create_dir_all(parent)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if create_new {
        options.create_new(true);
    } else {
        options.create(true).truncate(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path)?;
    #[cfg(unix)]
    {
        // An existing file keeps its mode when truncated: set it again.
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    sync_parent(path);
    Ok(())
}

/// Reads a secret file; `Ok(None)` if it does not exist. Refused (saying
/// `advice`) when group or others may read it; the mode is checked on the
/// opened file, so it is the file that is read.
pub fn read_private(path: &Path, advice: &str) -> Result<Option<Vec<u8>>, String> {
    use std::io::Read;
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    check_private(&file.metadata().map_err(|e| e.to_string())?, advice)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    Ok(Some(bytes))
}

/// `path` with `.new` appended: where a replacement is written before it
/// is renamed over `path`.
pub fn pending_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".new");
    path.with_file_name(name)
}

/// Replaces `path` atomically with a private (0600) file holding `text`:
/// written to [`pending_path`], synced, renamed over `path`.
pub fn replace_private(path: &Path, text: &str) -> std::io::Result<()> {
    let pending = pending_path(path);
    write_private(&pending, text, false)?;
    std::fs::rename(&pending, path)?;
    sync_parent(path);
    Ok(())
}

/// Flushes the directory entry of `path` (after a create or a rename).
pub fn sync_parent(path: &Path) {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
        && let Ok(dir) = std::fs::File::open(parent)
    {
        let _ = dir.sync_all();
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn written_private_and_others_readable_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/secret");
        write_private(&path, "s3cret\n", true).expect("write");
        let meta = std::fs::metadata(&path).expect("meta");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        check_private(&meta, "replace it").expect("private");
        assert!(
            write_private(&path, "again", true).is_err(),
            "create_new keeps it"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = check_private(&std::fs::metadata(&path).expect("meta"), "replace it")
            .expect_err("refused");
        assert!(err.contains("0644") && err.contains("replace it"), "{err}");
        write_private(&path, "new", false).expect("replace");
        let meta = std::fs::metadata(&path).expect("meta");
        assert_eq!(
            meta.permissions().mode() & 0o777,
            0o600,
            "replacing makes it private again"
        );
    }
}
