//! The embedded SQLite store: one file, WAL, `synchronous = FULL`.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, Row, params};
use telenode_signaling::msg::State;

use super::{Consultation, Doctor, DoctorId, Store, StoreError, UnixTime};

const DB_FILE: &str = "telenode.db";

/// Schema migrations, applied in order; `user_version` records how many ran.
const MIGRATIONS: &[&str] = &[r#"
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
"#];

/// SQLite-backed [`Store`]. Safe to open from several processes at once
/// (`telenode admin` while the node runs): SQLite's own locking plus a busy
/// timeout serialise writers.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database in `data_dir`, migrating it.
    pub fn open(data_dir: &Path) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(data_dir)?;
        restrict_dir(data_dir)?;
        let conn = Connection::open(data_dir.join(DB_FILE))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "secure_delete", "ON")?;
        migrate(&conn)?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (each
        // statement is atomic), so a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
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

fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let supported = MIGRATIONS.len() as i64;
    if version > supported {
        return Err(StoreError::SchemaTooNew {
            found: version,
            supported,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

fn doctor_from_row(r: &Row<'_>) -> rusqlite::Result<Doctor> {
    Ok(Doctor {
        id: DoctorId(r.get(0)?),
        login: r.get(1)?,
        display_name: r.get(2)?,
        password_hash: r.get(3)?,
        disabled: r.get::<_, i64>(4)? != 0,
    })
}

const DOCTOR_COLS: &str = "id, login, display_name, password_hash, disabled";
const CONSULTATION_COLS: &str = "id, doctor_id, token_hash, state, created_at, expires_at";

fn consultation_from_row(r: &Row<'_>) -> rusqlite::Result<Result<Consultation, StoreError>> {
    let hash: Vec<u8> = r.get(2)?;
    let state: String = r.get(3)?;
    let Ok(token_hash) = <[u8; 32]>::try_from(hash.as_slice()) else {
        return Ok(Err(StoreError::Corrupt {
            what: "consultation token hash",
        }));
    };
    let Ok(state) = state.parse::<State>() else {
        return Ok(Err(StoreError::Corrupt {
            what: "consultation state",
        }));
    };
    Ok(Ok(Consultation {
        id: r.get(0)?,
        doctor: DoctorId(r.get(1)?),
        token_hash,
        state,
        created_at: r.get(4)?,
        expires_at: r.get(5)?,
    }))
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    )
}

impl Store for SqliteStore {
    fn add_doctor(
        &self,
        login: &str,
        display_name: &str,
        password_hash: &str,
        now: UnixTime,
    ) -> Result<DoctorId, StoreError> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO doctors (login, display_name, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![login, display_name, password_hash, now],
        )
        .map_err(|e| if is_unique_violation(&e) { StoreError::DuplicateLogin } else { e.into() })?;
        Ok(DoctorId(conn.last_insert_rowid()))
    }

    fn doctor_by_login(&self, login: &str) -> Result<Option<Doctor>, StoreError> {
        let sql = format!("SELECT {DOCTOR_COLS} FROM doctors WHERE login = ?1");
        Ok(self
            .conn()
            .query_row(&sql, [login], doctor_from_row)
            .optional()?)
    }

    fn doctor(&self, id: DoctorId) -> Result<Option<Doctor>, StoreError> {
        let sql = format!("SELECT {DOCTOR_COLS} FROM doctors WHERE id = ?1");
        Ok(self
            .conn()
            .query_row(&sql, [id.0], doctor_from_row)
            .optional()?)
    }

    fn list_doctors(&self) -> Result<Vec<Doctor>, StoreError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare(&format!("SELECT {DOCTOR_COLS} FROM doctors ORDER BY login"))?;
        let rows = stmt.query_map([], doctor_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn set_doctor_disabled(&self, login: &str, disabled: bool) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let n = tx.execute(
            "UPDATE doctors SET disabled = ?2 WHERE login = ?1",
            params![login, disabled as i64],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound { what: "doctor" });
        }
        if disabled {
            tx.execute(
                "DELETE FROM sessions WHERE doctor_id = (SELECT id FROM doctors WHERE login = ?1)",
                [login],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn add_session(
        &self,
        token_hash: &[u8; 32],
        doctor: DoctorId,
        expires_at: UnixTime,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO sessions (token_hash, doctor_id, expires_at) VALUES (?1, ?2, ?3)",
            params![&token_hash[..], doctor.0, expires_at],
        )?;
        Ok(())
    }

    fn session_doctor(
        &self,
        token_hash: &[u8; 32],
        now: UnixTime,
    ) -> Result<Option<DoctorId>, StoreError> {
        let conn = self.conn();
        conn.execute("DELETE FROM sessions WHERE expires_at <= ?1", [now])?;
        Ok(conn
            .query_row(
                "SELECT s.doctor_id FROM sessions s JOIN doctors d ON d.id = s.doctor_id \
                 WHERE s.token_hash = ?1 AND d.disabled = 0",
                [&token_hash[..]],
                |r| r.get(0).map(DoctorId),
            )
            .optional()?)
    }

    fn delete_session(&self, token_hash: &[u8; 32]) -> Result<(), StoreError> {
        self.conn().execute(
            "DELETE FROM sessions WHERE token_hash = ?1",
            [&token_hash[..]],
        )?;
        Ok(())
    }

    fn add_consultation(&self, c: &Consultation) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT INTO consultations (id, doctor_id, token_hash, state, created_at, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    c.id,
                    c.doctor.0,
                    &c.token_hash[..],
                    c.state.as_str(),
                    c.created_at,
                    c.expires_at
                ],
            )
            .map_err(|e| if is_unique_violation(&e) { StoreError::DuplicateToken } else { e.into() })?;
        Ok(())
    }

    fn consultation(&self, id: &str) -> Result<Option<Consultation>, StoreError> {
        let sql = format!("SELECT {CONSULTATION_COLS} FROM consultations WHERE id = ?1");
        self.conn()
            .query_row(&sql, [id], consultation_from_row)
            .optional()?
            .transpose()
    }

    fn consultation_by_token(
        &self,
        token_hash: &[u8; 32],
    ) -> Result<Option<Consultation>, StoreError> {
        let sql = format!("SELECT {CONSULTATION_COLS} FROM consultations WHERE token_hash = ?1");
        self.conn()
            .query_row(&sql, [&token_hash[..]], consultation_from_row)
            .optional()?
            .transpose()
    }

    fn consultations_of(&self, doctor: DoctorId) -> Result<Vec<Consultation>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {CONSULTATION_COLS} FROM consultations WHERE doctor_id = ?1 ORDER BY created_at DESC"
        ))?;
        let rows = stmt.query_map([doctor.0], consultation_from_row)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row??);
        }
        Ok(out)
    }

    fn set_consultation_state(&self, id: &str, state: State) -> Result<(), StoreError> {
        let n = self.conn().execute(
            "UPDATE consultations SET state = ?2 WHERE id = ?1",
            params![id, state.as_str()],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound {
                what: "consultation",
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path()).expect("open");
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
    }

    #[test]
    fn sessions_expire_and_die_with_disable() {
        let (_d, s) = store();
        let id = s.add_doctor("bob", "Dr. B", "h", 1).expect("add");
        s.add_session(&[1; 32], id, 50).expect("session");
        assert_eq!(s.session_doctor(&[1; 32], 10).expect("q"), Some(id));
        assert_eq!(s.session_doctor(&[1; 32], 50).expect("q"), None, "expired");
        s.add_session(&[2; 32], id, 500).expect("session");
        s.set_doctor_disabled("bob", true).expect("disable");
        assert_eq!(s.session_doctor(&[2; 32], 10).expect("q"), None);
    }

    #[test]
    fn consultations_round_trip_and_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let s = SqliteStore::open(dir.path()).expect("open");
            let id = s.add_doctor("c", "Dr. C", "h", 1).expect("add");
            s.add_consultation(&consultation("k1", id, 7)).expect("add");
            assert!(matches!(
                s.add_consultation(&consultation("k2", id, 7)),
                Err(StoreError::DuplicateToken)
            ));
            s.set_consultation_state("k1", State::Waiting)
                .expect("state");
        }
        let s = SqliteStore::open(dir.path()).expect("reopen");
        let c = s
            .consultation_by_token(&[7; 32])
            .expect("q")
            .expect("found");
        assert_eq!(c.id, "k1");
        assert_eq!(c.state, State::Waiting);
        assert_eq!(s.consultations_of(c.doctor).expect("list").len(), 1);
        assert!(matches!(
            s.set_consultation_state("nope", State::Ended),
            Err(StoreError::NotFound { .. })
        ));
    }
}
