//! The encrypted metadata store through its public API, its files and the
//! `telenode` binary: retention with a fake clock, key rotation under load,
//! audit verification, wrong keys, backup and restore.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rusqlite::{Connection, params};
use telenode::store::{
    AuditEvent, Consultation, DAY_SECS, DoctorId, MasterKey, SqliteStore, Store, StoreError,
    db_path, keyfile,
};
use telenode_signaling::msg::State;

const BIN: &str = env!("CARGO_BIN_EXE_telenode");

/// Every file under `dir`, path → bytes.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Which files under `dir` contain `needle`.
fn found_in(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    files(dir)
        .into_iter()
        .filter(|(_, b)| contains(b, needle))
        .map(|(p, _)| p)
        .collect()
}

fn consultation(id: &str, doctor: DoctorId, token: u8, created_at: i64) -> Consultation {
    Consultation {
        id: id.into(),
        doctor,
        token_hash: [token; 32],
        state: State::Created,
        created_at,
        expires_at: created_at + 4 * 3600,
    }
}

fn raw(dir: &Path) -> Connection {
    Connection::open(db_path(dir)).unwrap()
}

fn blobs(db: &Connection, sql: &str) -> Vec<Vec<u8>> {
    let mut stmt = db.prepare(sql).unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

const T0: i64 = 1_750_000_000;

#[test]
fn retention_purge_removes_rows_and_audit_payloads_from_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let key = MasterKey::from_bytes([5; 32]);
    let s = SqliteStore::open_with_key(dir.path(), &key).unwrap();
    let doc = s
        .add_doctor("dr-retain", "Dr. Retain", "h", T0 - 100)
        .unwrap();
    s.add_session(&[3; 32], doc, T0, T0 + 3600).unwrap();
    s.add_consultation(&consultation("old-one", doc, 1, T0))
        .unwrap();
    s.set_consultation_state("old-one", State::Admitted, T0 + 60)
        .unwrap();
    s.set_consultation_state("old-one", State::Ended, T0 + 600)
        .unwrap();

    // Everything stored so far is past retention at the purge below.
    let db = raw(dir.path());
    let mut gone = blobs(&db, "SELECT record FROM consultations");
    gone.extend(blobs(&db, "SELECT key FROM consultations"));
    gone.extend(blobs(&db, "SELECT token_key FROM consultations"));
    gone.extend(blobs(&db, "SELECT record FROM sessions"));
    gone.extend(blobs(&db, "SELECT entry FROM audit"));
    assert_eq!(
        gone.len(),
        3 + 1 + 4,
        "3 consultation columns, 1 session, 4 audit entries"
    );

    s.add_consultation(&consultation("young", doc, 2, T0 + 10 * DAY_SECS))
        .unwrap();
    let kept = blobs(&db, "SELECT record FROM consultations")
        .into_iter()
        .find(|b| !gone.contains(b))
        .unwrap();
    drop(db);

    // Day 14 after the end (+1 s): the old consultation and every audit entry
    // of its time go; the young one (expired on day 10) stays until day 24.
    let now = T0 + 600 + 14 * DAY_SECS;
    let report = s.purge(now, 14 * DAY_SECS).unwrap();
    assert_eq!(
        (report.consultations, report.sessions, report.audit_entries),
        (1, 1, 4)
    );
    assert!(s.consultation("old-one").unwrap().is_none());
    assert!(s.consultation_by_token(&[1; 32]).unwrap().is_none());
    assert_eq!(s.consultation("young").unwrap().unwrap().id, "young");
    let audit = s.verify_audit().unwrap();
    assert_eq!((audit.first_seq, audit.entries), (5, 2), "{audit:?}");
    let events: Vec<_> = s
        .audit_entries()
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert!(matches!(events[0], AuditEvent::ConsultationCreated { .. }));
    assert_eq!(
        events[1],
        AuditEvent::Purged {
            consultations: 1,
            sessions: 1,
            audit_entries: 4
        }
    );
    // A second purge at the same time finds nothing more.
    assert!(!s.purge(now, 14 * DAY_SECS).unwrap().removed_anything());

    // Gone from the bytes, not only from queries: database, WAL, everything.
    for (i, blob) in gone.iter().enumerate() {
        let hits = found_in(dir.path(), blob);
        assert!(hits.is_empty(), "purged value {i} still in {hits:?}");
    }
    assert!(
        !found_in(dir.path(), &kept).is_empty(),
        "the scan must find what was kept"
    );
    drop(s);
    for (i, blob) in gone.iter().enumerate() {
        assert!(
            found_in(dir.path(), blob).is_empty(),
            "value {i} after close"
        );
    }

    // Day 24 after the young one expired: it goes too.
    let later = T0 + 10 * DAY_SECS + 4 * 3600 + 14 * DAY_SECS;
    let s = SqliteStore::open_with_key(dir.path(), &key).unwrap();
    assert_eq!(s.purge(later - 1, 14 * DAY_SECS).unwrap().consultations, 0);
    assert_eq!(s.purge(later, 14 * DAY_SECS).unwrap().consultations, 1);
    assert!(s.consultation("young").unwrap().is_none());
    s.verify_audit().unwrap();
}

#[test]
fn retention_above_90_days_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["admin", "--data-dir"])
        .arg(dir.path())
        .args(["purge", "--retention-days", "91"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("retention_days: 91 is out of range 1..=90"),
        "{err}"
    );

    let cfg = dir.path().join("node.toml");
    std::fs::write(&cfg, "retention_days = 120\n").unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--check-config", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("retention_days: 120"), "{err}");
}

#[test]
fn key_rotation_under_load_keeps_every_record_and_retires_the_old_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key_file = keyfile::default_key_file(&data);
    let node = Arc::new(SqliteStore::open(&data, &key_file).unwrap());
    let first_key = keyfile::load(&key_file).unwrap().unwrap();
    let doc = node.add_doctor("dr-rotate", "Dr. Rotate", "h", T0).unwrap();
    let wrapped_before: Vec<u8> = raw(&data)
        .query_row("SELECT data_key FROM meta", [], |r| r.get(0))
        .unwrap();

    // The "node": two threads writing and reading without pause.
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2u8)
        .map(|w| {
            let (node, stop) = (node.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0u32;
                while !stop.load(Ordering::Relaxed) || n < 20 {
                    let id = format!("w{w}-{n}");
                    let mut token = [0u8; 32];
                    token[0] = w;
                    token[1..5].copy_from_slice(&n.to_be_bytes());
                    let c = Consultation {
                        token_hash: token,
                        ..consultation(&id, doc, 0, T0 + i64::from(n))
                    };
                    node.add_consultation(&c).unwrap();
                    assert_eq!(node.consultation_by_token(&token).unwrap().unwrap().id, id);
                    node.set_consultation_state(&id, State::Ended, T0 + 1)
                        .unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();

    // The "admin": another handle on the same files, as `telenode admin keys
    // rotate` would be, rotating three times while the writers run.
    let admin = SqliteStore::open(&data, &key_file).unwrap();
    let mut old_keys = vec![first_key];
    for _ in 0..3 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let new = MasterKey::from_bytes(rand::random());
        keyfile::write_pending(&key_file, &new).unwrap();
        admin.rotate_master_key(&new, T0 + 2).unwrap();
        keyfile::commit_pending(&key_file).unwrap();
        assert_eq!(admin.master_key_id().unwrap(), new.id_hex());
        old_keys.push(new);
    }
    let current = old_keys.pop().unwrap();
    stop.store(true, Ordering::Relaxed);
    let written: u32 = writers.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(written >= 40);
    // The running handles never noticed.
    assert_eq!(node.consultations_of(doc).unwrap().len(), written as usize);
    drop(node);
    drop(admin);

    // Every record opens with the new key from the key file...
    let s = SqliteStore::open(&data, &key_file).unwrap();
    assert_eq!(s.master_key_id().unwrap(), current.id_hex());
    let all = s.consultations_of(doc).unwrap();
    assert_eq!(all.len(), written as usize);
    for c in &all {
        assert_eq!(
            s.consultation_by_token(&c.token_hash).unwrap().unwrap().id,
            c.id
        );
        assert_eq!(c.state, State::Ended);
    }
    let rotations = s
        .audit_entries()
        .unwrap()
        .into_iter()
        .filter(|e| matches!(e.event, AuditEvent::KeyRotated { .. }))
        .count();
    assert_eq!(rotations, 3);
    s.verify_audit().unwrap();
    drop(s);
    // ...and no old key opens anything; the old wrapping is gone from the files.
    for old in &old_keys {
        let err = SqliteStore::open_with_key(&data, old).unwrap_err();
        assert!(matches!(err, StoreError::WrongMasterKey { .. }), "{err}");
    }
    assert!(found_in(&data, &wrapped_before).is_empty());
}

#[test]
fn interrupted_rotation_is_finished_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("keys/master.key");
    let s = SqliteStore::open(dir.path(), &key_file).unwrap();
    s.add_doctor("dr-x", "Dr. X", "h", T0).unwrap();
    let new = MasterKey::from_bytes([9; 32]);
    keyfile::write_pending(&key_file, &new).unwrap();
    s.rotate_master_key(&new, T0).unwrap();
    drop(s); // crash before the rename
    let s = SqliteStore::open(dir.path(), &key_file).unwrap();
    assert!(s.doctor_by_login("dr-x").unwrap().is_some());
    assert_eq!(keyfile::load(&key_file).unwrap().unwrap().id(), new.id());
    assert!(!keyfile::pending_path(&key_file).exists());
}

fn admin(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN)
        .arg("admin")
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("TELENODE_MASTER_KEY_FILE")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn audited_store(dir: &Path) {
    let key_file = keyfile::default_key_file(dir);
    let s = SqliteStore::open(dir, &key_file).unwrap();
    let doc = s.add_doctor("dr-audit", "Dr. Audit", "h", T0).unwrap();
    for i in 0..4 {
        s.record(&AuditEvent::Login { doctor: doc }, T0 + i)
            .unwrap();
    }
}

#[test]
fn audit_verify_detects_a_deleted_and_an_altered_entry() {
    let deleted = tempfile::tempdir().unwrap();
    audited_store(deleted.path());
    let (ok, out) = admin(deleted.path(), &["audit", "verify"]);
    assert!(ok, "{out}");
    assert!(out.contains("audit log ok: 5 entries (1..=5)"), "{out}");
    raw(deleted.path())
        .execute("DELETE FROM audit WHERE seq = 3", [])
        .unwrap();
    let (ok, out) = admin(deleted.path(), &["audit", "verify"]);
    assert!(!ok);
    assert!(
        out.contains("FAILED: audit log: entry 3 is missing (deleted)"),
        "{out}"
    );

    let altered = tempfile::tempdir().unwrap();
    audited_store(altered.path());
    let db = raw(altered.path());
    let mut entry: Vec<u8> = db
        .query_row("SELECT entry FROM audit WHERE seq = 4", [], |r| r.get(0))
        .unwrap();
    entry[30] ^= 0x20;
    db.execute("UPDATE audit SET entry = ?1 WHERE seq = 4", params![entry])
        .unwrap();
    drop(db);
    let (ok, out) = admin(altered.path(), &["audit", "verify"]);
    assert!(!ok);
    assert!(out.contains("entry 4 was altered"), "{out}");

    // Cutting the newest entry off is seen too (the head is sealed).
    let cut = tempfile::tempdir().unwrap();
    audited_store(cut.path());
    raw(cut.path())
        .execute("DELETE FROM audit WHERE seq = 5", [])
        .unwrap();
    let (ok, out) = admin(cut.path(), &["audit", "verify"]);
    assert!(!ok);
    assert!(out.contains("ends at entry 4"), "{out}");
}

#[test]
fn wrong_master_key_stops_the_start_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    {
        let s = SqliteStore::open(&data, &keyfile::default_key_file(&data)).unwrap();
        s.add_doctor("dr-key", "Dr. Key", "h", T0).unwrap();
    }
    let wrong = dir.path().join("wrong.key");
    keyfile::create(&wrong, &MasterKey::from_bytes([0xee; 32])).unwrap();
    let before = files(dir.path());

    let serve = |key: &Path| {
        Command::new(BIN)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ])
            .arg("--data-dir")
            .arg(&data)
            .env("TELENODE_MASTER_KEY_FILE", key)
            .output()
            .unwrap()
    };
    let out = serve(&wrong);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does not open this database") && err.contains("master_key_file"),
        "{err}"
    );
    assert_eq!(files(dir.path()), before, "nothing written");

    // A missing key for an existing database is not silently replaced.
    let out = serve(&dir.path().join("absent.key"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is missing but the database already exists"),
        "{err}"
    );
    assert_eq!(files(dir.path()), before, "nothing written");

    // A key file others can read is refused.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = keyfile::default_key_file(&data);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
        let out = serve(&key);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("chmod 600"), "{err}");
    }
}

#[test]
fn backup_is_sealed_consistent_and_restores() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    audited_store(&data);
    {
        let s = SqliteStore::open(&data, &keyfile::default_key_file(&data)).unwrap();
        let doc = s.doctor_by_login("dr-audit").unwrap().unwrap().id;
        s.add_consultation(&consultation("backed-up", doc, 7, T0))
            .unwrap();
    }
    let backup = dir.path().join("backup/telenode-backup.db");
    std::fs::create_dir_all(backup.parent().unwrap()).unwrap();
    let (ok, out) = admin(&data, &["backup", backup.to_str().unwrap()]);
    assert!(ok, "{out}");
    let (ok, out) = admin(&data, &["backup", backup.to_str().unwrap()]);
    assert!(!ok && out.contains("already exists"), "{out}");
    let bytes = std::fs::read(&backup).unwrap();
    for needle in [&b"dr-audit"[..], b"Dr. Audit", b"backed-up", &[7; 32]] {
        assert!(!contains(&bytes, needle));
    }
    let key = std::fs::read(keyfile::default_key_file(&data)).unwrap();
    assert!(
        !contains(&bytes, &key[23..50]),
        "the key is not in the backup"
    );

    // Restore (README "Backup and restore"): the backup file becomes
    // telenode.db of an empty data directory; the master key comes along
    // separately.
    let restored = dir.path().join("restored");
    std::fs::create_dir_all(&restored).unwrap();
    std::fs::copy(&backup, db_path(&restored)).unwrap();
    let without_key = SqliteStore::open(&restored, &keyfile::default_key_file(&restored));
    assert!(matches!(
        without_key,
        Err(StoreError::MasterKeyMissing { .. })
    ));
    let s = SqliteStore::open(&restored, &keyfile::default_key_file(&data)).unwrap();
    assert!(s.doctor_by_login("dr-audit").unwrap().is_some());
    assert_eq!(
        s.consultation_by_token(&[7; 32]).unwrap().unwrap().id,
        "backed-up"
    );
    assert_eq!(s.verify_audit().unwrap().entries, 6);
}
