//! The embedded SQLite store: one file, WAL, `synchronous = FULL`,
//! `secure_delete`, every sensitive value sealed ([`super::crypto`]).
//!
//! Tables (schema version 2); nothing in them is readable without the data key:
//!
//! | table | plaintext columns | sealed |
//! |---|---|---|
//! | `meta` | store id, id of the master key that wraps the data key | the data key (wrapped), the audit chain's start and head |
//! | `doctors` | row id, keyed hash of the login | login, display name, password hash, disabled |
//! | `sessions` | keyed hash of the session-token hash, keyed hash of the doctor | doctor, expiry |
//! | `consultations` | keyed hashes of the id, of the token hash and of the doctor | id, doctor, token hash, state, created, expires, closed |
//! | `audit` | sequence number, chain MAC | time and event |
//!
//! Each write that is audited appends its audit entry in the same
//! transaction. Every write transaction is `BEGIN IMMEDIATE`, so the node and
//! `telenode admin` can write at the same time.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use telenode_signaling::msg::State;

use super::crypto::{
    self, ChainPoint, ChainVerifier, CryptoError, DataKey, Loc, MasterKey, NONCE_BYTES, Sealer,
};
use super::keyfile;
use super::{
    AuditEntry, AuditEvent, Consultation, Doctor, DoctorId, PurgeReport, SecondFactor, Session,
    Store, StoreError, UnixTime,
};

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "telenode.db";

/// Schema version this binary writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 2;

/// Version 1: plaintext tables of the first release; a database in this
/// version is converted to version 2 and vacuumed, so the plaintext is gone.
#[cfg(test)]
const SCHEMA_V1: &str = r#"
CREATE TABLE doctors (
    id            INTEGER PRIMARY KEY,
    login         TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL
);
CREATE TABLE sessions (
    token_hash BLOB PRIMARY KEY,
    doctor_id  INTEGER NOT NULL REFERENCES doctors(id) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL
);
CREATE TABLE consultations (
    id         TEXT PRIMARY KEY,
    doctor_id  INTEGER NOT NULL REFERENCES doctors(id),
    token_hash BLOB NOT NULL UNIQUE,
    state      TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX consultations_doctor ON consultations(doctor_id);
"#;

const SCHEMA_V2: &str = r#"
CREATE TABLE meta (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    store_id BLOB NOT NULL,
    key_id   BLOB NOT NULL,
    data_key BLOB NOT NULL,
    audit    BLOB NOT NULL
);
CREATE TABLE doctors (
    id        INTEGER PRIMARY KEY,
    login_key BLOB NOT NULL UNIQUE,
    record    BLOB NOT NULL
);
CREATE TABLE sessions (
    key        BLOB PRIMARY KEY,
    doctor_key BLOB NOT NULL,
    record     BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX sessions_doctor ON sessions(doctor_key);
CREATE TABLE consultations (
    key        BLOB PRIMARY KEY,
    token_key  BLOB NOT NULL UNIQUE,
    doctor_key BLOB NOT NULL,
    record     BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX consultations_doctor ON consultations(doctor_key);
CREATE TABLE audit (
    seq   INTEGER PRIMARY KEY,
    entry BLOB NOT NULL,
    mac   BLOB NOT NULL
);
"#;

// Domains of the keyed hashes.
const IDX_LOGIN: &str = "doctors.login";
const IDX_SESSION: &str = "sessions.token_hash";
const IDX_CONSULTATION: &str = "consultations.id";
const IDX_TOKEN: &str = "consultations.token_hash";
const IDX_DOCTOR: &str = "doctor";

/// SQLite-backed [`Store`]. Safe to open from several processes at once
/// (`telenode admin` while the node runs): SQLite's own locking plus a busy
/// timeout serialise writers.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
    sealer: Sealer,
    data_key: DataKey,
    store_id: Vec<u8>,
}

/// Result of `telenode admin audit verify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReport {
    /// Entries checked.
    pub entries: u64,
    /// First sequence number still kept (older ones were purged).
    pub first_seq: i64,
    /// Sequence number and MAC of the last entry: write them down somewhere
    /// else to detect a later rollback of the whole file.
    pub head_seq: i64,
    pub head_mac: String,
}

#[derive(Serialize, Deserialize)]
struct DoctorRec {
    login: String,
    display_name: String,
    password_hash: String,
    disabled: bool,
    /// Absent in records written before second factors existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    factor: Option<FactorRec>,
}

#[derive(Serialize, Deserialize)]
struct FactorRec {
    /// base64url TOTP secret.
    totp: String,
    totp_last_step: u64,
    /// base64url hashes of the unused recovery codes.
    recovery: Vec<String>,
}

impl DoctorRec {
    fn of(d: &Doctor) -> DoctorRec {
        DoctorRec {
            login: d.login.clone(),
            display_name: d.display_name.clone(),
            password_hash: d.password_hash.clone(),
            disabled: d.disabled,
            factor: d.second_factor.as_ref().map(|f| FactorRec {
                totp: b64(&f.totp_secret),
                totp_last_step: f.totp_last_step,
                recovery: f.recovery_hashes.iter().map(|h| b64(h)).collect(),
            }),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct SessionRec {
    doctor: DoctorId,
    expires_at: UnixTime,
    #[serde(default)]
    created_at: UnixTime,
    #[serde(default)]
    last_used: UnixTime,
}

/// A session's last use is written at most this often (seconds; a quarter
/// of the idle timeout if that is shorter).
const SESSION_TOUCH_SECS: i64 = 30;

#[derive(Serialize, Deserialize)]
struct ConsultationRec {
    id: String,
    doctor: DoctorId,
    token_hash: String,
    state: State,
    created_at: UnixTime,
    expires_at: UnixTime,
    /// When it reached a terminal state; retention counts from here.
    closed_at: Option<UnixTime>,
}

#[derive(Serialize, Deserialize)]
struct AuditState {
    /// The entry before the first one kept (purged entries end here).
    start_seq: i64,
    start_mac: String,
    /// The last entry appended.
    head_seq: i64,
    head_mac: String,
}

#[derive(Serialize, Deserialize)]
struct EntryRec {
    at: UnixTime,
    event: AuditEvent,
}

fn nonce() -> [u8; NONCE_BYTES] {
    rand::random()
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64<const N: usize>(s: &str, what: &'static str) -> Result<[u8; N], StoreError> {
    URL_SAFE_NO_PAD
        .decode(s)
        .ok()
        .and_then(|v| <[u8; N]>::try_from(v.as_slice()).ok())
        .ok_or(StoreError::Corrupt { what })
}

fn unb64_vec(s: &str, what: &'static str) -> Result<Vec<u8>, StoreError> {
    URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| StoreError::Corrupt { what })
}

fn seal_json<T: Serialize>(sealer: &Sealer, loc: Loc<'_>, value: &T) -> Vec<u8> {
    let json = serde_json::to_vec(value).expect("store records always serialise");
    sealer.seal(loc, nonce(), &json)
}

fn open_json<T: DeserializeOwned>(
    sealer: &Sealer,
    loc: Loc<'_>,
    sealed: &[u8],
) -> Result<T, StoreError> {
    let json = sealer
        .open(loc, sealed)
        .map_err(|_| StoreError::Integrity {
            table: loc.table,
            column: loc.column,
        })?;
    serde_json::from_slice(&json).map_err(|_| StoreError::Corrupt { what: loc.table })
}

fn same(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

fn doctor_loc(id: &[u8; 8]) -> Loc<'_> {
    Loc {
        table: "doctors",
        column: "record",
        row: id,
    }
}

fn session_loc(key: &[u8]) -> Loc<'_> {
    Loc {
        table: "sessions",
        column: "record",
        row: key,
    }
}

fn consultation_loc(key: &[u8]) -> Loc<'_> {
    Loc {
        table: "consultations",
        column: "record",
        row: key,
    }
}

fn audit_loc(seq: &[u8; 8]) -> Loc<'_> {
    Loc {
        table: "audit",
        column: "entry",
        row: seq,
    }
}

const META_AUDIT: Loc<'static> = Loc {
    table: "meta",
    column: "audit",
    row: b"1",
};

impl SqliteStore {
    /// Opens (creating if needed) the database in `data_dir` with the master
    /// key in `key_file`. The key file is created (mode 0600) only together
    /// with a new database; a database that exists without its key is an
    /// error, as is a key that does not open it (nothing is written then).
    pub fn open(data_dir: &Path, key_file: &Path) -> Result<SqliteStore, StoreError> {
        let conn = connect(data_dir)?;
        let version = user_version(&conn)?;
        let master = match keyfile::load(key_file)? {
            Some(k) => k,
            None if version < SCHEMA_VERSION => {
                let k = MasterKey::from_bytes(rand::random());
                keyfile::create(key_file, &k)?;
                k
            }
            None => {
                return Err(StoreError::MasterKeyMissing {
                    path: key_file.to_owned(),
                });
            }
        };
        match Self::init(conn, &master) {
            // A rotation that stopped between the database and the key file:
            // the database already uses the pending key; finish the rename.
            Err(StoreError::WrongMasterKey { .. }) if keyfile::pending_path(key_file).exists() => {
                let pending = keyfile::load(&keyfile::pending_path(key_file))?.ok_or(
                    StoreError::MasterKeyMissing {
                        path: key_file.to_owned(),
                    },
                )?;
                let store = Self::init(connect(data_dir)?, &pending)?;
                keyfile::commit_pending(key_file)?;
                tracing::info!("finished an interrupted master key rotation");
                Ok(store)
            }
            r => r,
        }
    }

    /// Opens the database in `data_dir` with a master key in memory.
    pub fn open_with_key(data_dir: &Path, master: &MasterKey) -> Result<SqliteStore, StoreError> {
        Self::init(connect(data_dir)?, master)
    }

    /// A store that seals nothing, for the store bench's baseline only (the
    /// `bench-plaintext` feature exists only for benches).
    #[cfg(feature = "bench-plaintext")]
    pub fn open_plaintext_for_bench(data_dir: &Path) -> Result<SqliteStore, StoreError> {
        let mut conn = connect(data_dir)?;
        let sealer = Sealer::plaintext_for_bench();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(SCHEMA_V2)?;
        tx.execute(
            "INSERT INTO meta (id, store_id, key_id, data_key, audit) VALUES (1, x'', x'', x'', x'')",
            [],
        )?;
        write_audit_state(&tx, &sealer, ChainPoint::GENESIS, ChainPoint::GENESIS)?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        tx.commit()?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            sealer,
            data_key: DataKey::from_bytes([0; 32]),
            store_id: Vec::new(),
        })
    }

    fn init(mut conn: Connection, master: &MasterKey) -> Result<SqliteStore, StoreError> {
        let version = user_version(&conn)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        if version == SCHEMA_VERSION {
            // Read only: a wrong key leaves the files exactly as they were.
            return Self::unlock(conn, master);
        }
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Another process may have created the schema while we waited.
        let version = user_version(&tx)?;
        if version == SCHEMA_VERSION {
            drop(tx);
            return Self::unlock(conn, master);
        }
        if version == 1 {
            tx.execute_batch(
                "ALTER TABLE consultations RENAME TO v1_consultations;
                 ALTER TABLE sessions RENAME TO v1_sessions;
                 ALTER TABLE doctors RENAME TO v1_doctors;
                 DROP INDEX consultations_doctor;",
            )?;
        }
        tx.execute_batch(SCHEMA_V2)?;
        let data_key = DataKey::from_bytes(rand::random());
        let store_id: [u8; 16] = rand::random();
        let sealer = Sealer::new(&data_key);
        tx.execute(
            "INSERT INTO meta (id, store_id, key_id, data_key, audit) VALUES (1, ?1, ?2, ?3, x'')",
            params![
                &store_id[..],
                &master.id()[..],
                crypto::wrap(master, &data_key, &store_id, nonce())
            ],
        )?;
        write_audit_state(&tx, &sealer, ChainPoint::GENESIS, ChainPoint::GENESIS)?;
        if version == 1 {
            convert_v1(&tx, &sealer)?;
        }
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        tx.commit()?;
        if version == 1 {
            // The plaintext of version 1 must not linger in free pages or the WAL.
            scrub(&conn)?;
        }
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            sealer,
            data_key,
            store_id: store_id.to_vec(),
        })
    }

    fn unlock(conn: Connection, master: &MasterKey) -> Result<SqliteStore, StoreError> {
        let (store_id, key_id, wrapped): (Vec<u8>, Vec<u8>, Vec<u8>) = conn.query_row(
            "SELECT store_id, key_id, data_key FROM meta WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let data_key = crypto::unwrap(master, &wrapped, &store_id).map_err(|e| match e {
            CryptoError::WrongKey => StoreError::WrongMasterKey {
                expected: crypto::hex(&key_id),
                found: master.id_hex(),
            },
            _ => StoreError::Corrupt {
                what: "wrapped data key",
            },
        })?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            sealer: Sealer::new(&data_key),
            data_key,
            store_id,
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (each
        // transaction is atomic), so a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction and commits if it succeeds.
    fn write<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// Id of the master key that wraps the data key now (public, hex).
    pub fn master_key_id(&self) -> Result<String, StoreError> {
        let id: Vec<u8> =
            self.conn()
                .query_row("SELECT key_id FROM meta WHERE id = 1", [], |r| r.get(0))?;
        Ok(crypto::hex(&id))
    }

    /// Re-wraps the data key under `new` (`telenode admin keys rotate`). The
    /// data key itself does not change, so a running node goes on working;
    /// afterwards only `new` opens the database.
    pub fn rotate_master_key(&self, new: &MasterKey, now: UnixTime) -> Result<(), StoreError> {
        let wrapped = crypto::wrap(new, &self.data_key, &self.store_id, nonce());
        self.write(|tx| {
            let old: Vec<u8> =
                tx.query_row("SELECT key_id FROM meta WHERE id = 1", [], |r| r.get(0))?;
            tx.execute(
                "UPDATE meta SET key_id = ?1, data_key = ?2 WHERE id = 1",
                params![&new.id()[..], wrapped],
            )?;
            let event = AuditEvent::KeyRotated {
                old_key: crypto::hex(&old),
                new_key: new.id_hex(),
            };
            append_audit(tx, &self.sealer, &event, now)
        })?;
        // The old wrapping must not survive in the WAL or a free page.
        scrub(&self.conn())
    }

    /// Checks the audit chain from its start to its authenticated head.
    pub fn verify_audit(&self) -> Result<AuditReport, StoreError> {
        let conn = self.conn();
        let (start, head) = read_audit_state(&conn, &self.sealer)?;
        let mut verifier = ChainVerifier::new(&self.sealer, start);
        let mut stmt = conn.prepare("SELECT seq, entry, mac FROM audit ORDER BY seq")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let (seq, entry, mac): (i64, Vec<u8>, Vec<u8>) = (r.get(0)?, r.get(1)?, r.get(2)?);
            if seq <= start.seq {
                // Older than the purge point yet still here: not ours.
                return Err(crypto::AuditFault::Altered { seq }.into());
            }
            verifier.push(seq, &entry, &mac)?;
            open_json::<EntryRec>(&self.sealer, audit_loc(&seq.to_be_bytes()), &entry)
                .map_err(|_| crypto::AuditFault::Altered { seq })?;
        }
        let entries = verifier.finish(head)?;
        Ok(AuditReport {
            entries,
            first_seq: start.seq + 1,
            head_seq: head.seq,
            head_mac: crypto::hex(&head.mac),
        })
    }

    /// Every audit entry still kept, oldest first.
    pub fn audit_entries(&self) -> Result<Vec<AuditEntry>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT seq, entry FROM audit ORDER BY seq")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, entry) = row?;
            let rec: EntryRec = open_json(&self.sealer, audit_loc(&seq.to_be_bytes()), &entry)?;
            out.push(AuditEntry {
                seq,
                at: rec.at,
                event: rec.event,
            });
        }
        Ok(out)
    }

    /// Writes a consistent, compacted copy of the database to `path` (which
    /// must not exist), still sealed: it opens only with the master key that
    /// is current now, and it never contains the key.
    pub fn backup_to(&self, path: &Path) -> Result<(), StoreError> {
        if path.exists() {
            return Err(StoreError::BackupExists {
                path: path.to_owned(),
            });
        }
        let target = path.to_str().ok_or(StoreError::Corrupt {
            what: "backup path is not UTF-8",
        })?;
        self.conn().execute("VACUUM INTO ?1", [target])?;
        let f = std::fs::File::open(path)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        f.sync_all()?;
        Ok(())
    }

    fn doctor_row(&self, id: i64, login_key: &[u8], record: &[u8]) -> Result<Doctor, StoreError> {
        let rec: DoctorRec = open_json(&self.sealer, doctor_loc(&id.to_be_bytes()), record)?;
        if !same(
            login_key,
            &self.sealer.index(IDX_LOGIN, rec.login.as_bytes()),
        ) {
            return Err(StoreError::Integrity {
                table: "doctors",
                column: "login_key",
            });
        }
        let second_factor = match rec.factor {
            Some(f) => Some(SecondFactor {
                totp_secret: unb64_vec(&f.totp, "TOTP secret")?,
                totp_last_step: f.totp_last_step,
                recovery_hashes: f
                    .recovery
                    .iter()
                    .map(|h| unb64(h, "recovery code hash"))
                    .collect::<Result<_, _>>()?,
            }),
            None => None,
        };
        Ok(Doctor {
            id: DoctorId(id),
            login: rec.login,
            display_name: rec.display_name,
            password_hash: rec.password_hash,
            disabled: rec.disabled,
            second_factor,
        })
    }

    fn query_doctor(
        &self,
        where_clause: &str,
        param: &dyn rusqlite::ToSql,
    ) -> Result<Option<Doctor>, StoreError> {
        self.query_doctor_in(&self.conn(), where_clause, param)
    }

    /// [`Self::query_doctor`] on a given connection (a write transaction
    /// reads the record it is about to rewrite).
    fn query_doctor_in(
        &self,
        conn: &Connection,
        where_clause: &str,
        param: &dyn rusqlite::ToSql,
    ) -> Result<Option<Doctor>, StoreError> {
        let row = conn
            .query_row(
                &format!("SELECT id, login_key, record FROM doctors WHERE {where_clause}"),
                [param],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, Vec<u8>>(2)?,
                    ))
                },
            )
            .optional()?;
        row.map(|(id, key, rec)| self.doctor_row(id, &key, &rec))
            .transpose()
    }

    /// Rewrites an account's sealed record.
    fn put_doctor(&self, tx: &rusqlite::Transaction<'_>, d: &Doctor) -> Result<(), StoreError> {
        tx.execute(
            "UPDATE doctors SET record = ?2 WHERE id = ?1",
            params![
                d.id.0,
                seal_json(
                    &self.sealer,
                    doctor_loc(&d.id.0.to_be_bytes()),
                    &DoctorRec::of(d)
                )
            ],
        )?;
        Ok(())
    }

    /// Read-modify-write of an account's second factor in one transaction;
    /// `change` says whether it changed anything (and so the answer).
    fn update_factor(
        &self,
        doctor: DoctorId,
        change: impl FnOnce(&mut SecondFactor) -> bool,
        audit: Option<(&AuditEvent, UnixTime)>,
    ) -> Result<bool, StoreError> {
        self.write(|tx| {
            let Some(mut d) = self.query_doctor_in(tx, "id = ?1", &doctor.0)? else {
                return Ok(false);
            };
            let Some(factor) = d.second_factor.as_mut() else {
                return Ok(false);
            };
            if !change(factor) {
                return Ok(false);
            }
            self.put_doctor(tx, &d)?;
            if let Some((event, now)) = audit {
                append_audit(tx, &self.sealer, event, now)?;
            }
            Ok(true)
        })
    }

    fn session_rec(&self, conn: &Connection, key: &[u8]) -> Result<Option<SessionRec>, StoreError> {
        let row: Option<(Vec<u8>, Vec<u8>)> = conn
            .query_row(
                "SELECT doctor_key, record FROM sessions WHERE key = ?1",
                [key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((doctor_key, record)) = row else {
            return Ok(None);
        };
        let rec: SessionRec = open_json(&self.sealer, session_loc(key), &record)?;
        if !same(&doctor_key, &self.doctor_key(rec.doctor)) {
            return Err(StoreError::Integrity {
                table: "sessions",
                column: "doctor_key",
            });
        }
        Ok(Some(rec))
    }

    fn put_session(
        &self,
        conn: &Connection,
        key: &[u8],
        rec: &SessionRec,
    ) -> Result<(), StoreError> {
        conn.execute(
            "UPDATE sessions SET record = ?2 WHERE key = ?1",
            params![key, seal_json(&self.sealer, session_loc(key), rec)],
        )?;
        Ok(())
    }

    fn insert_session(
        &self,
        conn: &Connection,
        token_hash: &[u8; 32],
        doctor: DoctorId,
        now: UnixTime,
        expires_at: UnixTime,
    ) -> Result<(), StoreError> {
        let key = self.sealer.index(IDX_SESSION, token_hash);
        let rec = SessionRec {
            doctor,
            expires_at,
            created_at: now,
            last_used: now,
        };
        conn.execute(
            "INSERT INTO sessions (key, doctor_key, record) VALUES (?1, ?2, ?3)",
            params![
                key,
                self.doctor_key(doctor),
                seal_json(&self.sealer, session_loc(&key), &rec)
            ],
        )?;
        Ok(())
    }

    fn consultation_row(
        &self,
        key: &[u8],
        token_key: &[u8],
        doctor_key: &[u8],
        record: &[u8],
    ) -> Result<Consultation, StoreError> {
        let rec: ConsultationRec = open_json(&self.sealer, consultation_loc(key), record)?;
        let token_hash: [u8; 32] = unb64(&rec.token_hash, "consultation token hash")?;
        let bad = |column| StoreError::Integrity {
            table: "consultations",
            column,
        };
        if !same(token_key, &self.sealer.index(IDX_TOKEN, &token_hash)) {
            return Err(bad("token_key"));
        }
        if !same(
            doctor_key,
            &self.sealer.index(IDX_DOCTOR, &rec.doctor.0.to_be_bytes()),
        ) {
            return Err(bad("doctor_key"));
        }
        if !same(key, &self.sealer.index(IDX_CONSULTATION, rec.id.as_bytes())) {
            return Err(bad("key"));
        }
        Ok(Consultation {
            id: rec.id,
            doctor: rec.doctor,
            token_hash,
            state: rec.state,
            created_at: rec.created_at,
            expires_at: rec.expires_at,
        })
    }

    /// Looks a join token up with the same work whether it exists or not:
    /// one walk of the token index to the first row at or after the key (the
    /// row itself on a hit, its neighbour on a miss), one unsealing of that
    /// row, then the comparison. An unknown token is therefore not answered
    /// faster than a known one, and the timing does not tell which tokens
    /// exist (tests/enumeration.rs measures it).
    fn token_row_constant_work(&self, index: &[u8]) -> Result<Option<Consultation>, StoreError> {
        let row = |sql: &str| {
            self.conn()
                .query_row(sql, [index], |r| {
                    Ok((
                        r.get::<_, Vec<u8>>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, Vec<u8>>(2)?,
                        r.get::<_, Vec<u8>>(3)?,
                    ))
                })
                .optional()
        };
        let found = match row(
            "SELECT key, token_key, doctor_key, record FROM consultations \
             WHERE token_key >= ?1 ORDER BY token_key LIMIT 1",
        )? {
            Some(r) => Some(r),
            // Past the last key (rare): the row before it does the work.
            None => row(
                "SELECT key, token_key, doctor_key, record FROM consultations \
                 WHERE token_key < ?1 ORDER BY token_key DESC LIMIT 1",
            )?,
        };
        let Some((k, t, d, rec)) = found else {
            return Ok(None);
        };
        let opened = std::hint::black_box(self.consultation_row(&k, &t, &d, &rec));
        if same(&t, index) {
            opened.map(Some)
        } else {
            // A neighbour that fails to open is not this lookup's business.
            Ok(None)
        }
    }

    fn query_consultation(
        &self,
        column: &str,
        value: &[u8],
    ) -> Result<Option<Consultation>, StoreError> {
        let row = self
            .conn()
            .query_row(
                &format!(
                    "SELECT key, token_key, doctor_key, record FROM consultations WHERE {column} = ?1"
                ),
                [value],
                |r| {
                    Ok((
                        r.get::<_, Vec<u8>>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, Vec<u8>>(2)?,
                        r.get::<_, Vec<u8>>(3)?,
                    ))
                },
            )
            .optional()?;
        row.map(|(k, t, d, rec)| self.consultation_row(&k, &t, &d, &rec))
            .transpose()
    }

    fn doctor_key(&self, doctor: DoctorId) -> Vec<u8> {
        self.sealer.index(IDX_DOCTOR, &doctor.0.to_be_bytes())
    }
}

fn connect(data_dir: &Path) -> Result<Connection, StoreError> {
    std::fs::create_dir_all(data_dir)?;
    restrict_dir(data_dir)?;
    let conn = Connection::open(data_dir.join(DB_FILE))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "secure_delete", "ON")?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(conn)
}

fn user_version(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.pragma_query_value(None, "user_version", |r| r.get(0))?)
}

#[cfg(unix)]
fn restrict_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

#[cfg(not(unix))]
fn restrict_dir(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Rewrites the file without free pages (`VACUUM`) and empties the WAL
/// (`wal_checkpoint(TRUNCATE)`), so deleted values are gone from the bytes on
/// disk, not only from queries. `secure_delete` already zeroes freed cells.
fn scrub(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch("VACUUM")?;
    for _ in 0..50 {
        let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
        if busy == 0 {
            return Ok(());
        }
        // A reader in another connection holds an old snapshot; let it finish.
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    tracing::warn!("the WAL could not be truncated after a purge; it will be on the next one");
    Ok(())
}

fn read_audit_state(
    conn: &Connection,
    sealer: &Sealer,
) -> Result<(ChainPoint, ChainPoint), StoreError> {
    let sealed: Vec<u8> =
        conn.query_row("SELECT audit FROM meta WHERE id = 1", [], |r| r.get(0))?;
    let s: AuditState = open_json(sealer, META_AUDIT, &sealed)?;
    Ok((
        ChainPoint {
            seq: s.start_seq,
            mac: unb64(&s.start_mac, "audit start")?,
        },
        ChainPoint {
            seq: s.head_seq,
            mac: unb64(&s.head_mac, "audit head")?,
        },
    ))
}

fn write_audit_state(
    conn: &Connection,
    sealer: &Sealer,
    start: ChainPoint,
    head: ChainPoint,
) -> Result<(), StoreError> {
    let state = AuditState {
        start_seq: start.seq,
        start_mac: b64(&start.mac),
        head_seq: head.seq,
        head_mac: b64(&head.mac),
    };
    conn.execute(
        "UPDATE meta SET audit = ?1 WHERE id = 1",
        [seal_json(sealer, META_AUDIT, &state)],
    )?;
    Ok(())
}

/// Appends an audit entry; call inside a write transaction.
fn append_audit(
    conn: &Connection,
    sealer: &Sealer,
    event: &AuditEvent,
    now: UnixTime,
) -> Result<(), StoreError> {
    let (start, head) = read_audit_state(conn, sealer)?;
    let seq = head.seq + 1;
    let entry = seal_json(
        sealer,
        audit_loc(&seq.to_be_bytes()),
        &EntryRec {
            at: now,
            event: event.clone(),
        },
    );
    let mac = sealer.chain_mac(&head.mac, seq, &entry);
    conn.execute(
        "INSERT INTO audit (seq, entry, mac) VALUES (?1, ?2, ?3)",
        params![seq, entry, &mac[..]],
    )?;
    write_audit_state(conn, sealer, start, ChainPoint { seq, mac })
}

/// Seals the rows of a version-1 database into the version-2 tables. Login
/// sessions are not carried over (doctors log in again).
fn convert_v1(tx: &Connection, sealer: &Sealer) -> Result<(), StoreError> {
    let doctors: Vec<(i64, String, String, String, bool)> = {
        let mut stmt =
            tx.prepare("SELECT id, login, display_name, password_hash, disabled FROM v1_doctors")?;
        stmt.query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get::<_, i64>(4)? != 0,
            ))
        })?
        .collect::<Result<_, _>>()?
    };
    for (id, login, display_name, password_hash, disabled) in doctors {
        let login_key = sealer.index(IDX_LOGIN, login.as_bytes());
        let rec = DoctorRec {
            login,
            display_name,
            password_hash,
            disabled,
            factor: None,
        };
        tx.execute(
            "INSERT INTO doctors (id, login_key, record) VALUES (?1, ?2, ?3)",
            params![
                id,
                login_key,
                seal_json(sealer, doctor_loc(&id.to_be_bytes()), &rec)
            ],
        )?;
    }
    let consultations: Vec<(String, i64, Vec<u8>, String, i64, i64)> = {
        let mut stmt = tx.prepare(
            "SELECT id, doctor_id, token_hash, state, created_at, expires_at FROM v1_consultations",
        )?;
        stmt.query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })?
        .collect::<Result<_, _>>()?
    };
    for (id, doctor, token_hash, state, created_at, expires_at) in consultations {
        let token_hash =
            <[u8; 32]>::try_from(token_hash.as_slice()).map_err(|_| StoreError::Corrupt {
                what: "consultation token hash",
            })?;
        let state = state.parse::<State>().map_err(|_| StoreError::Corrupt {
            what: "consultation state",
        })?;
        insert_consultation(
            tx,
            sealer,
            &Consultation {
                id,
                doctor: DoctorId(doctor),
                token_hash,
                state,
                created_at,
                expires_at,
            },
            state.is_terminal().then_some(expires_at.min(created_at)),
        )?;
    }
    tx.execute_batch(
        "DROP TABLE v1_sessions; DROP TABLE v1_consultations; DROP TABLE v1_doctors;",
    )?;
    Ok(())
}

fn insert_consultation(
    tx: &Connection,
    sealer: &Sealer,
    c: &Consultation,
    closed_at: Option<UnixTime>,
) -> Result<(), StoreError> {
    let key = sealer.index(IDX_CONSULTATION, c.id.as_bytes());
    let rec = ConsultationRec {
        id: c.id.clone(),
        doctor: c.doctor,
        token_hash: b64(&c.token_hash),
        state: c.state,
        created_at: c.created_at,
        expires_at: c.expires_at,
        closed_at,
    };
    tx.execute(
        "INSERT INTO consultations (key, token_key, doctor_key, record) VALUES (?1, ?2, ?3, ?4)",
        params![
            key,
            sealer.index(IDX_TOKEN, &c.token_hash),
            sealer.index(IDX_DOCTOR, &c.doctor.0.to_be_bytes()),
            seal_json(sealer, consultation_loc(&key), &rec)
        ],
    )
    .map_err(|e| unique_or(e, StoreError::DuplicateToken))?;
    Ok(())
}

/// `duplicate` for a unique-key violation, the SQLite error otherwise.
fn unique_or(e: rusqlite::Error, duplicate: StoreError) -> StoreError {
    let unique = matches!(
        &e,
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    );
    if unique { duplicate } else { e.into() }
}

/// Reads every row of a query whose columns are all blobs.
fn blobs<const N: usize>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<[Vec<u8>; N]>, StoreError> {
    let mut stmt = conn.prepare(sql)?;
    let mut rows = stmt.query(params)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let mut row: [Vec<u8>; N] = std::array::from_fn(|_| Vec::new());
        for (i, slot) in row.iter_mut().enumerate() {
            *slot = r.get(i)?;
        }
        out.push(row);
    }
    Ok(out)
}

impl Store for SqliteStore {
    fn add_doctor(
        &self,
        login: &str,
        display_name: &str,
        password_hash: &str,
        now: UnixTime,
    ) -> Result<DoctorId, StoreError> {
        self.write(|tx| {
            let id: i64 =
                tx.query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM doctors", [], |r| {
                    r.get(0)
                })?;
            let rec = DoctorRec {
                login: login.to_owned(),
                display_name: display_name.to_owned(),
                password_hash: password_hash.to_owned(),
                disabled: false,
                factor: None,
            };
            tx.execute(
                "INSERT INTO doctors (id, login_key, record) VALUES (?1, ?2, ?3)",
                params![
                    id,
                    self.sealer.index(IDX_LOGIN, login.as_bytes()),
                    seal_json(&self.sealer, doctor_loc(&id.to_be_bytes()), &rec)
                ],
            )
            .map_err(|e| unique_or(e, StoreError::DuplicateLogin))?;
            let doctor = DoctorId(id);
            append_audit(tx, &self.sealer, &AuditEvent::DoctorAdded { doctor }, now)?;
            Ok(doctor)
        })
    }

    fn doctor_by_login(&self, login: &str) -> Result<Option<Doctor>, StoreError> {
        self.query_doctor(
            "login_key = ?1",
            &self.sealer.index(IDX_LOGIN, login.as_bytes()),
        )
    }

    fn doctor(&self, id: DoctorId) -> Result<Option<Doctor>, StoreError> {
        self.query_doctor("id = ?1", &id.0)
    }

    fn list_doctors(&self) -> Result<Vec<Doctor>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT id, login_key, record FROM doctors")?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut out = Vec::new();
        for (id, key, rec) in rows {
            match self.doctor_row(id, &key, &rec) {
                Ok(d) => out.push(d),
                Err(e) => tracing::error!(error = %e, doctor = id, "unreadable account skipped"),
            }
        }
        out.sort_by(|a, b| a.login.cmp(&b.login));
        Ok(out)
    }

    fn set_doctor_disabled(
        &self,
        login: &str,
        disabled: bool,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        let login_key = self.sealer.index(IDX_LOGIN, login.as_bytes());
        self.write(|tx| {
            let doctor = self
                .query_doctor_in(tx, "login_key = ?1", &login_key)?
                .ok_or(StoreError::NotFound { what: "doctor" })?;
            let id = doctor.id;
            self.put_doctor(
                tx,
                &Doctor {
                    disabled,
                    ..doctor.clone()
                },
            )?;
            let event = if disabled {
                tx.execute(
                    "DELETE FROM sessions WHERE doctor_key = ?1",
                    [self.doctor_key(id)],
                )?;
                AuditEvent::DoctorDisabled { doctor: id }
            } else {
                AuditEvent::DoctorEnabled { doctor: id }
            };
            append_audit(tx, &self.sealer, &event, now)
        })
    }

    fn set_credentials(
        &self,
        doctor: DoctorId,
        password_hash: Option<&str>,
        factor: &SecondFactor,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            let current = self
                .query_doctor_in(tx, "id = ?1", &doctor.0)?
                .ok_or(StoreError::NotFound { what: "doctor" })?;
            self.put_doctor(
                tx,
                &Doctor {
                    password_hash: password_hash
                        .map_or(current.password_hash.clone(), str::to_owned),
                    second_factor: Some(factor.clone()),
                    ..current
                },
            )?;
            tx.execute(
                "DELETE FROM sessions WHERE doctor_key = ?1",
                [self.doctor_key(doctor)],
            )?;
            append_audit(
                tx,
                &self.sealer,
                &AuditEvent::DoctorCredentialsSet { doctor },
                now,
            )
        })
    }

    fn consume_totp_step(&self, doctor: DoctorId, step: u64) -> Result<bool, StoreError> {
        self.update_factor(
            doctor,
            |f| {
                if step <= f.totp_last_step {
                    return false;
                }
                f.totp_last_step = step;
                true
            },
            None,
        )
    }

    fn consume_recovery_code(
        &self,
        doctor: DoctorId,
        hash: &[u8; 32],
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.update_factor(
            doctor,
            |f| {
                let before = f.recovery_hashes.len();
                f.recovery_hashes.retain(|h| !bool::from(h.ct_eq(hash)));
                f.recovery_hashes.len() < before
            },
            Some((&AuditEvent::RecoveryCodeUsed { doctor }, now)),
        )
    }

    fn add_session(
        &self,
        token_hash: &[u8; 32],
        doctor: DoctorId,
        now: UnixTime,
        expires_at: UnixTime,
    ) -> Result<(), StoreError> {
        self.insert_session(&self.conn(), token_hash, doctor, now, expires_at)
    }

    fn start_session(
        &self,
        token_hash: &[u8; 32],
        doctor: DoctorId,
        now: UnixTime,
        expires_at: UnixTime,
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            self.insert_session(tx, token_hash, doctor, now, expires_at)?;
            append_audit(tx, &self.sealer, &AuditEvent::Login { doctor }, now)
        })
    }

    fn session(
        &self,
        token_hash: &[u8; 32],
        now: UnixTime,
        idle_secs: i64,
    ) -> Result<Option<Session>, StoreError> {
        let key = self.sealer.index(IDX_SESSION, token_hash);
        let Some(rec) = self.session_rec(&self.conn(), &key)? else {
            return Ok(None);
        };
        let idle_since = rec.last_used.max(rec.created_at);
        if rec.expires_at <= now || now.saturating_sub(idle_since) > idle_secs {
            self.delete_session(token_hash)?;
            return Ok(None);
        }
        if self.doctor(rec.doctor)?.is_none_or(|d| d.disabled) {
            return Ok(None);
        }
        if now - rec.last_used >= SESSION_TOUCH_SECS.min(idle_secs / 4) {
            // Read again inside the write: a concurrent rotation may have
            // shortened it meanwhile.
            self.write(|tx| {
                if let Some(mut rec) = self.session_rec(tx, &key)? {
                    rec.last_used = rec.last_used.max(now);
                    self.put_session(tx, &key, &rec)?;
                }
                Ok(())
            })?;
        }
        Ok(Some(Session {
            doctor: rec.doctor,
            created_at: rec.created_at,
            expires_at: rec.expires_at,
        }))
    }

    fn rotate_session(
        &self,
        presented: &[u8; 32],
        fresh: &[u8; 32],
        now: UnixTime,
        expires_at: UnixTime,
        presented_until: UnixTime,
    ) -> Result<(), StoreError> {
        let key = self.sealer.index(IDX_SESSION, presented);
        self.write(|tx| {
            let mut rec = self
                .session_rec(tx, &key)?
                .ok_or(StoreError::NotFound { what: "session" })?;
            self.insert_session(tx, fresh, rec.doctor, now, expires_at)?;
            if rec.expires_at > presented_until {
                rec.expires_at = presented_until;
                self.put_session(tx, &key, &rec)?;
            }
            Ok(())
        })
    }

    fn delete_session(&self, token_hash: &[u8; 32]) -> Result<(), StoreError> {
        self.conn().execute(
            "DELETE FROM sessions WHERE key = ?1",
            [self.sealer.index(IDX_SESSION, token_hash)],
        )?;
        Ok(())
    }

    fn add_consultation(&self, c: &Consultation) -> Result<(), StoreError> {
        self.write(|tx| {
            insert_consultation(tx, &self.sealer, c, None)?;
            let event = AuditEvent::ConsultationCreated {
                consultation: c.id.clone(),
                doctor: c.doctor,
            };
            append_audit(tx, &self.sealer, &event, c.created_at)
        })
    }

    fn consultation(&self, id: &str) -> Result<Option<Consultation>, StoreError> {
        self.query_consultation("key", &self.sealer.index(IDX_CONSULTATION, id.as_bytes()))
    }

    fn consultation_by_token(
        &self,
        token_hash: &[u8; 32],
    ) -> Result<Option<Consultation>, StoreError> {
        let index = self.sealer.index(IDX_TOKEN, token_hash);
        let c = self.token_row_constant_work(&index)?;
        // The sealed record must agree with the lookup (no swapped index).
        Ok(c.filter(|c| same(&c.token_hash, token_hash)))
    }

    fn consultations_of(&self, doctor: DoctorId) -> Result<Vec<Consultation>, StoreError> {
        let rows = blobs::<4>(
            &self.conn(),
            "SELECT key, token_key, doctor_key, record FROM consultations WHERE doctor_key = ?1",
            [self.doctor_key(doctor)],
        )?;
        let mut out = Vec::new();
        for [k, t, d, rec] in rows {
            match self.consultation_row(&k, &t, &d, &rec) {
                Ok(c) if c.doctor == doctor => out.push(c),
                Ok(_) => {}
                // One damaged row must not hide the doctor's other consultations.
                Err(e) => tracing::error!(error = %e, "unreadable consultation skipped"),
            }
        }
        out.sort_by_key(|c| std::cmp::Reverse(c.created_at));
        Ok(out)
    }

    fn set_consultation_state(
        &self,
        id: &str,
        state: State,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        let key = self.sealer.index(IDX_CONSULTATION, id.as_bytes());
        self.write(|tx| {
            let record: Option<Vec<u8>> = tx
                .query_row(
                    "SELECT record FROM consultations WHERE key = ?1",
                    [&key],
                    |r| r.get(0),
                )
                .optional()?;
            let record = record.ok_or(StoreError::NotFound {
                what: "consultation",
            })?;
            let mut rec: ConsultationRec =
                open_json(&self.sealer, consultation_loc(&key), &record)?;
            if rec.state == state {
                return Ok(());
            }
            rec.state = state;
            if state.is_terminal() && rec.closed_at.is_none() {
                rec.closed_at = Some(now);
            }
            tx.execute(
                "UPDATE consultations SET record = ?2 WHERE key = ?1",
                params![key, seal_json(&self.sealer, consultation_loc(&key), &rec)],
            )?;
            let consultation = rec.id.clone();
            let event = match state {
                State::Admitted => Some(AuditEvent::ConsultationAdmitted { consultation }),
                s if s.is_terminal() => Some(AuditEvent::ConsultationClosed {
                    consultation,
                    state: s,
                }),
                _ => None,
            };
            match event {
                Some(e) => append_audit(tx, &self.sealer, &e, now),
                None => Ok(()),
            }
        })
    }

    fn record(&self, event: &AuditEvent, now: UnixTime) -> Result<(), StoreError> {
        self.write(|tx| append_audit(tx, &self.sealer, event, now))
    }

    fn purge(&self, now: UnixTime, retention_secs: i64) -> Result<PurgeReport, StoreError> {
        let cutoff = now - retention_secs;
        let report = self.write(|tx| {
            let mut report = PurgeReport::default();
            for [key, record] in blobs::<2>(tx, "SELECT key, record FROM consultations", [])? {
                let Ok(rec) =
                    open_json::<ConsultationRec>(&self.sealer, consultation_loc(&key), &record)
                else {
                    report.unreadable += 1;
                    continue;
                };
                let closed = rec
                    .closed_at
                    .or((rec.expires_at <= now).then_some(rec.expires_at));
                if closed.is_some_and(|t| t <= cutoff) {
                    tx.execute("DELETE FROM consultations WHERE key = ?1", [&key])?;
                    report.consultations += 1;
                }
            }
            for [key, record] in blobs::<2>(tx, "SELECT key, record FROM sessions", [])? {
                let Ok(rec) = open_json::<SessionRec>(&self.sealer, session_loc(&key), &record)
                else {
                    report.unreadable += 1;
                    continue;
                };
                if rec.expires_at <= now {
                    tx.execute("DELETE FROM sessions WHERE key = ?1", [&key])?;
                    report.sessions += 1;
                }
            }
            // The audit log loses its oldest entries, as a prefix, so that the
            // rest still verifies from the new start point.
            let (mut start, head) = read_audit_state(tx, &self.sealer)?;
            let entries = {
                let mut stmt = tx.prepare("SELECT seq, entry, mac FROM audit ORDER BY seq")?;
                stmt.query_map([], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, Vec<u8>>(2)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?
            };
            for (seq, entry, mac) in entries {
                let old =
                    open_json::<EntryRec>(&self.sealer, audit_loc(&seq.to_be_bytes()), &entry)
                        .is_ok_and(|e| e.at <= cutoff);
                let Ok(mac) = <[u8; 32]>::try_from(mac.as_slice()) else {
                    break;
                };
                if !old || seq != start.seq + 1 {
                    break;
                }
                tx.execute("DELETE FROM audit WHERE seq = ?1", [seq])?;
                start = ChainPoint { seq, mac };
                report.audit_entries += 1;
            }
            if report.audit_entries > 0 {
                write_audit_state(tx, &self.sealer, start, head)?;
            }
            if report.removed_anything() {
                let event = AuditEvent::Purged {
                    consultations: report.consultations,
                    sessions: report.sessions,
                    audit_entries: report.audit_entries,
                };
                append_audit(tx, &self.sealer, &event, now)?;
            }
            Ok(report)
        })?;
        if report.removed_anything() {
            scrub(&self.conn())?;
        }
        Ok(report)
    }
}

/// The path of the database in `data_dir`.
pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join(DB_FILE)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn key() -> MasterKey {
        MasterKey::from_bytes([42; 32])
    }

    fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open_with_key(dir.path(), &key()).expect("open");
        (dir, store)
    }

    fn consultation(id: &str, doctor: DoctorId, token: u8) -> Consultation {
        Consultation {
            id: id.into(),
            doctor,
            token_hash: [token; 32],
            state: State::Created,
            created_at: 100,
            expires_at: 200,
        }
    }

    fn raw(dir: &Path) -> Connection {
        Connection::open(db_path(dir)).unwrap()
    }

    #[test]
    fn doctors_and_duplicate_login() {
        let (_d, s) = store();
        let id = s
            .add_doctor("alice", "Dr. A", "$argon2id$x", 1)
            .expect("add");
        assert_eq!(
            s.doctor_by_login("alice").expect("q").expect("found").id,
            id
        );
        assert!(matches!(
            s.add_doctor("alice", "Other", "h", 2),
            Err(StoreError::DuplicateLogin)
        ));
        assert_eq!(s.list_doctors().expect("list").len(), 1);
        assert!(s.doctor_by_login("Alice").expect("q").is_none());
    }

    #[test]
    fn sessions_expire_idle_out_and_die_with_disable() {
        let (_d, s) = store();
        let id = s.add_doctor("bob", "Dr. B", "h", 1).expect("add");
        let live = |s: &SqliteStore, t: &[u8; 32], now| {
            s.session(t, now, 100).expect("q").map(|x| x.doctor)
        };
        s.add_session(&[1; 32], id, 0, 50).expect("session");
        assert_eq!(live(&s, &[1; 32], 10), Some(id));
        assert_eq!(live(&s, &[1; 32], 50), None, "expired");
        assert_eq!(live(&s, &[1; 32], 10), None, "and deleted");

        // Idle: each use restarts the clock (written every 30 s at most).
        s.add_session(&[4; 32], id, 0, 10_000).expect("session");
        assert_eq!(live(&s, &[4; 32], 90), Some(id));
        assert_eq!(live(&s, &[4; 32], 180), Some(id), "used at 90: not idle");
        assert_eq!(live(&s, &[4; 32], 281), None, "idle for 101 s");
        assert_eq!(live(&s, &[4; 32], 200), None, "and deleted");

        // Shortened after rotation; the fresh one lives on.
        s.add_session(&[5; 32], id, 0, 10_000).expect("session");
        s.rotate_session(&[5; 32], &[6; 32], 10, 10_000, 60)
            .expect("rotate");
        assert_eq!(live(&s, &[5; 32], 59), Some(id));
        assert_eq!(live(&s, &[5; 32], 60), None);
        assert_eq!(live(&s, &[6; 32], 60), Some(id));

        s.add_session(&[2; 32], id, 0, 500).expect("session");
        s.set_doctor_disabled("bob", true, 2).expect("disable");
        assert_eq!(live(&s, &[2; 32], 10), None);
        s.set_doctor_disabled("bob", false, 3).expect("enable");
        assert!(!s.doctor(id).unwrap().unwrap().disabled);
    }

    #[test]
    fn second_factor_is_sealed_single_use_and_reset_ends_sessions() {
        let (_d, s) = store();
        let id = s.add_doctor("cat", "Dr. C", "h1", 1).expect("add");
        assert!(s.doctor(id).unwrap().unwrap().second_factor.is_none());
        assert!(
            !s.consume_totp_step(id, 5).unwrap(),
            "no factor, nothing to use"
        );
        let factor = SecondFactor {
            totp_secret: vec![7; 20],
            totp_last_step: 0,
            recovery_hashes: vec![[1; 32], [2; 32]],
        };
        s.add_session(&[9; 32], id, 0, 500).expect("session");
        s.set_credentials(id, None, &factor, 2).expect("enrol");
        assert_eq!(
            s.session(&[9; 32], 3, 100).unwrap(),
            None,
            "enrolment ends sessions"
        );
        let d = s.doctor(id).unwrap().unwrap();
        assert_eq!(d.second_factor.as_ref(), Some(&factor));
        assert_eq!(d.password_hash, "h1", "password kept");

        assert!(s.consume_totp_step(id, 10).unwrap());
        assert!(!s.consume_totp_step(id, 10).unwrap(), "same step twice");
        assert!(!s.consume_totp_step(id, 9).unwrap(), "an older step");
        assert!(s.consume_totp_step(id, 11).unwrap());

        assert!(s.consume_recovery_code(id, &[2; 32], 3).unwrap());
        assert!(
            !s.consume_recovery_code(id, &[2; 32], 3).unwrap(),
            "used up"
        );
        assert!(
            !s.consume_recovery_code(id, &[3; 32], 3).unwrap(),
            "never issued"
        );
        assert_eq!(
            s.doctor(id)
                .unwrap()
                .unwrap()
                .second_factor
                .unwrap()
                .recovery_hashes,
            vec![[1; 32]]
        );

        s.add_session(&[8; 32], id, 0, 500).expect("session");
        let fresh = SecondFactor {
            totp_secret: vec![8; 20],
            totp_last_step: 0,
            recovery_hashes: vec![],
        };
        s.set_credentials(id, Some("h2"), &fresh, 4).expect("reset");
        assert_eq!(
            s.session(&[8; 32], 5, 100).unwrap(),
            None,
            "reset ends sessions"
        );
        let d = s.doctor(id).unwrap().unwrap();
        assert_eq!(d.password_hash, "h2");
        assert_eq!(d.second_factor, Some(fresh));
    }

    #[test]
    fn consultations_round_trip_and_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let s = SqliteStore::open_with_key(dir.path(), &key()).expect("open");
            let id = s.add_doctor("c", "Dr. C", "h", 1).expect("add");
            s.add_consultation(&consultation("k1", id, 7)).expect("add");
            assert!(matches!(
                s.add_consultation(&consultation("k2", id, 7)),
                Err(StoreError::DuplicateToken)
            ));
            s.set_consultation_state("k1", State::Waiting, 101)
                .expect("state");
        }
        let s = SqliteStore::open_with_key(dir.path(), &key()).expect("reopen");
        let c = s
            .consultation_by_token(&[7; 32])
            .expect("q")
            .expect("found");
        assert_eq!(c.id, "k1");
        assert_eq!(c.state, State::Waiting);
        assert_eq!(s.consultations_of(c.doctor).expect("list").len(), 1);
        assert!(matches!(
            s.set_consultation_state("nope", State::Ended, 102),
            Err(StoreError::NotFound { .. })
        ));
    }

    #[test]
    fn flipped_byte_fails_only_that_read() {
        let (dir, s) = store();
        let doc = s.add_doctor("d", "Dr. D", "h", 1).unwrap();
        s.add_consultation(&consultation("one", doc, 1)).unwrap();
        s.add_consultation(&consultation("two", doc, 2)).unwrap();
        let key = s.sealer.index(IDX_CONSULTATION, b"one");
        let db = raw(dir.path());
        let mut rec: Vec<u8> = db
            .query_row(
                "SELECT record FROM consultations WHERE key = ?1",
                [&key],
                |r| r.get(0),
            )
            .unwrap();
        rec[20] ^= 0x04;
        db.execute(
            "UPDATE consultations SET record = ?2 WHERE key = ?1",
            params![key, rec],
        )
        .unwrap();
        assert!(matches!(
            s.consultation("one"),
            Err(StoreError::Integrity {
                table: "consultations",
                column: "record"
            })
        ));
        assert!(matches!(
            s.consultation_by_token(&[1; 32]),
            Err(StoreError::Integrity { .. })
        ));
        assert_eq!(s.consultation("two").unwrap().unwrap().id, "two");
        let list = s.consultations_of(doc).unwrap();
        assert_eq!(
            list.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
            ["two"]
        );
        assert!(s.doctor(doc).unwrap().is_some());
        s.add_consultation(&consultation("three", doc, 3)).unwrap();
        assert_eq!(s.verify_audit().unwrap().entries, 4);
    }

    #[test]
    fn swapped_rows_are_detected() {
        let (dir, s) = store();
        let a = s.add_doctor("a", "Dr. A", "ha", 1).unwrap();
        let b = s.add_doctor("b", "Dr. B", "hb", 1).unwrap();
        s.add_consultation(&consultation("ca", a, 1)).unwrap();
        s.add_consultation(&consultation("cb", b, 2)).unwrap();
        let db = raw(dir.path());
        // Swap the sealed records of the two doctors.
        let rec = |id: i64| -> Vec<u8> {
            db.query_row("SELECT record FROM doctors WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap()
        };
        let (ra, rb) = (rec(a.0), rec(b.0));
        db.execute(
            "UPDATE doctors SET record = ?2 WHERE id = ?1",
            params![a.0, rb],
        )
        .unwrap();
        db.execute(
            "UPDATE doctors SET record = ?2 WHERE id = ?1",
            params![b.0, ra],
        )
        .unwrap();
        assert!(matches!(s.doctor(a), Err(StoreError::Integrity { .. })));
        assert!(matches!(
            s.doctor_by_login("b"),
            Err(StoreError::Integrity { .. })
        ));
        // Swap the token index between the two consultations: the patient
        // link of one must not open the other.
        let ka = s.sealer.index(IDX_CONSULTATION, b"ca");
        let kb = s.sealer.index(IDX_CONSULTATION, b"cb");
        let ta = s.sealer.index(IDX_TOKEN, &[1; 32]);
        let tb = s.sealer.index(IDX_TOKEN, &[2; 32]);
        db.execute(
            "UPDATE consultations SET token_key = x'00' WHERE key = ?1",
            [&ka],
        )
        .unwrap();
        db.execute(
            "UPDATE consultations SET token_key = ?2 WHERE key = ?1",
            params![kb, ta],
        )
        .unwrap();
        db.execute(
            "UPDATE consultations SET token_key = ?2 WHERE key = ?1",
            params![ka, tb],
        )
        .unwrap();
        assert!(matches!(
            s.consultation_by_token(&[1; 32]),
            Err(StoreError::Integrity { .. })
        ));
        // And the doctor index: b's consultation listed under a is refused.
        db.execute(
            "UPDATE consultations SET doctor_key = ?2 WHERE key = ?1",
            params![kb, s.doctor_key(a)],
        )
        .unwrap();
        assert!(s.consultations_of(a).unwrap().iter().all(|c| c.doctor == a));
    }

    #[test]
    fn wrong_master_key_is_refused_without_writing() {
        let dir = tempfile::tempdir().unwrap();
        drop(SqliteStore::open_with_key(dir.path(), &key()).unwrap());
        let before = std::fs::read(db_path(dir.path())).unwrap();
        let err =
            SqliteStore::open_with_key(dir.path(), &MasterKey::from_bytes([1; 32])).unwrap_err();
        assert!(matches!(err, StoreError::WrongMasterKey { .. }), "{err}");
        assert!(err.to_string().contains("master_key_file"), "{err}");
        assert_eq!(std::fs::read(db_path(dir.path())).unwrap(), before);
    }

    #[test]
    fn version_1_plaintext_is_sealed_and_scrubbed() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = connect(dir.path()).unwrap();
            db.execute_batch(SCHEMA_V1).unwrap();
            db.execute(
                "INSERT INTO doctors (id, login, display_name, password_hash, created_at) \
                 VALUES (1, 'plainlogin', 'Dr. Plainname', '$argon2id$plainhash', 0)",
                [],
            )
            .unwrap();
            db.execute(
                "INSERT INTO consultations VALUES ('plainconsult', 1, ?1, 'created', 10, 20)",
                [&[9u8; 32][..]],
            )
            .unwrap();
            db.pragma_update(None, "user_version", 1).unwrap();
        }
        let s = SqliteStore::open_with_key(dir.path(), &key()).unwrap();
        let d = s.doctor_by_login("plainlogin").unwrap().unwrap();
        assert_eq!(d.display_name, "Dr. Plainname");
        let c = s.consultation_by_token(&[9; 32]).unwrap().unwrap();
        assert_eq!((c.id.as_str(), c.doctor), ("plainconsult", d.id));
        drop(s);
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            for needle in [
                &b"plainlogin"[..],
                b"Plainname",
                b"plainhash",
                b"plainconsult",
            ] {
                assert!(!bytes.windows(needle.len()).any(|w| w == needle));
            }
        }
    }

    #[test]
    fn audit_records_the_flow_without_patient_data() {
        let (_d, s) = store();
        let doc = s.add_doctor("e", "Dr. E", "h", 1).unwrap();
        s.record(&AuditEvent::Login { doctor: doc }, 2).unwrap();
        s.record(&AuditEvent::LoginFailed { doctor: None }, 3)
            .unwrap();
        s.add_consultation(&consultation("c1", doc, 1)).unwrap();
        s.set_consultation_state("c1", State::Waiting, 110).unwrap();
        s.set_consultation_state("c1", State::Admitted, 111)
            .unwrap();
        s.set_consultation_state("c1", State::Ended, 120).unwrap();
        s.set_consultation_state("c1", State::Ended, 121).unwrap();
        let events: Vec<_> = s
            .audit_entries()
            .unwrap()
            .into_iter()
            .map(|e| (e.at, e.event))
            .collect();
        assert_eq!(
            events,
            [
                (1, AuditEvent::DoctorAdded { doctor: doc }),
                (2, AuditEvent::Login { doctor: doc }),
                (3, AuditEvent::LoginFailed { doctor: None }),
                (
                    100,
                    AuditEvent::ConsultationCreated {
                        consultation: "c1".into(),
                        doctor: doc
                    }
                ),
                (
                    111,
                    AuditEvent::ConsultationAdmitted {
                        consultation: "c1".into()
                    }
                ),
                (
                    120,
                    AuditEvent::ConsultationClosed {
                        consultation: "c1".into(),
                        state: State::Ended
                    }
                ),
            ]
        );
        assert_eq!(s.verify_audit().unwrap().entries, 6);
    }
}
