//! The metadata store: doctor accounts, their login sessions, consultations
//! and the audit log of security events.
//!
//! Callers use the [`Store`] trait; [`SqliteStore`] is the embedded default (one
//! file in the data directory, WAL). What may be stored is fixed by the privacy
//! contract in DESIGN.md: no patient identity, no SDP, no addresses; join tokens
//! and session tokens only as hashes. Every stored value that names or
//! describes a person, an account or a consultation is sealed ([`crypto`]);
//! lookups go through keyed hashes; nothing outlives the retention period.

pub mod crypto;
pub mod keyfile;
mod sqlite;

pub use crypto::{AuditFault, MasterKey};
pub use sqlite::{AuditReport, DB_FILE, SqliteStore, db_path};

use serde::{Deserialize, Serialize};
use telenode_signaling::msg::State;

/// Seconds since the Unix epoch; the store keeps wall-clock times only.
pub type UnixTime = i64;

/// Row id of a doctor account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DoctorId(pub i64);

/// A doctor account as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Doctor {
    pub id: DoctorId,
    pub login: String,
    pub display_name: String,
    /// PHC string (argon2id).
    pub password_hash: String,
    pub disabled: bool,
    /// The enrolled second factor; `None` for an account that has none yet
    /// (it cannot sign in until `telenode admin doctor reset`).
    pub second_factor: Option<SecondFactor>,
}

/// A doctor's second factor as stored (sealed with the rest of the record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecondFactor {
    /// The TOTP secret (RFC 6238).
    pub totp_secret: Vec<u8>,
    /// The last TOTP time step accepted: a code is good once.
    pub totp_last_step: u64,
    /// Hashes of the unused recovery codes.
    pub recovery_hashes: Vec<[u8; 32]>,
}

/// A live doctor session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    pub doctor: DoctorId,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
}

/// A consultation as stored: the node knows nothing about the patient.
#[derive(Debug, Clone, PartialEq)]
pub struct Consultation {
    /// Random, base64url, made by the node.
    pub id: String,
    pub doctor: DoctorId,
    /// `token_hash` of the join token (PROTOCOL.md), never the token.
    pub token_hash: [u8; 32],
    pub state: State,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
}

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("a doctor with this login already exists")]
    DuplicateLogin,
    #[error("a consultation with this token already exists")]
    DuplicateToken,
    #[error("no such {what}")]
    NotFound { what: &'static str },
    #[error("database schema version {found} is newer than this binary supports ({supported})")]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("stored value is corrupt: {what}")]
    Corrupt { what: &'static str },
    /// A sealed value failed authentication: altered, moved between rows, or
    /// sealed under another key. Only the read that met it fails.
    #[error("integrity error in {table}.{column}: the stored value was altered or moved")]
    Integrity {
        table: &'static str,
        column: &'static str,
    },
    #[error(
        "master key {found} does not open this database (it was sealed with master key \
         {expected}); check master_key_file / TELENODE_MASTER_KEY_FILE"
    )]
    WrongMasterKey { expected: String, found: String },
    #[error(
        "master key file {} is missing but the database already exists; restore the key \
         (set master_key_file / TELENODE_MASTER_KEY_FILE) - a new key cannot open old data",
        path.display()
    )]
    MasterKeyMissing { path: std::path::PathBuf },
    #[error("master key file {}: {reason}", path.display())]
    KeyFile {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("audit log: {0}")]
    Audit(#[from] AuditFault),
    #[error("backup target {} already exists", path.display())]
    BackupExists { path: std::path::PathBuf },
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("data directory: {0}")]
    Io(#[from] std::io::Error),
}

/// A security event in the audit log. It names accounts and consultations
/// only by their internal ids and never carries patient data, attempted
/// logins or addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum AuditEvent {
    DoctorAdded {
        doctor: DoctorId,
    },
    DoctorDisabled {
        doctor: DoctorId,
    },
    DoctorEnabled {
        doctor: DoctorId,
    },
    /// New second factor (and maybe password); sessions ended.
    DoctorCredentialsSet {
        doctor: DoctorId,
    },
    /// A recovery code was used to sign in.
    RecoveryCodeUsed {
        doctor: DoctorId,
    },
    Login {
        doctor: DoctorId,
    },
    /// A failed login, naming the account if the login exists; the login
    /// name that was tried is not kept (it may be a mistyped password).
    LoginFailed {
        doctor: Option<DoctorId>,
    },
    ConsultationCreated {
        consultation: String,
        doctor: DoctorId,
    },
    ConsultationAdmitted {
        consultation: String,
    },
    /// The consultation reached a terminal state (`ended` or `expired`).
    ConsultationClosed {
        consultation: String,
        state: State,
    },
    KeyRotated {
        old_key: String,
        new_key: String,
    },
    Purged {
        consultations: u64,
        sessions: u64,
        audit_entries: u64,
    },
}

/// One entry of the audit log as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: UnixTime,
    pub event: AuditEvent,
}

/// What a purge removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeReport {
    pub consultations: u64,
    pub sessions: u64,
    pub audit_entries: u64,
    /// Rows that failed authentication and could not be judged; kept.
    pub unreadable: u64,
}

impl PurgeReport {
    pub fn removed_anything(&self) -> bool {
        self.consultations + self.sessions + self.audit_entries > 0
    }
}

/// Seconds in a day, for retention arithmetic.
pub const DAY_SECS: i64 = 24 * 3600;

/// Everything the node keeps. Implementations must be safe to share between
/// tasks; every method is short (no network round trips in the embedded store).
pub trait Store: Send + Sync + 'static {
    fn add_doctor(
        &self,
        login: &str,
        display_name: &str,
        password_hash: &str,
        now: UnixTime,
    ) -> Result<DoctorId, StoreError>;
    /// The account with this login, looked up by keyed hash.
    fn doctor_by_login(&self, login: &str) -> Result<Option<Doctor>, StoreError>;
    fn doctor(&self, id: DoctorId) -> Result<Option<Doctor>, StoreError>;
    fn list_doctors(&self) -> Result<Vec<Doctor>, StoreError>;
    /// Disables (or re-enables) an account; disabling ends its sessions.
    fn set_doctor_disabled(
        &self,
        login: &str,
        disabled: bool,
        now: UnixTime,
    ) -> Result<(), StoreError>;

    /// Replaces an account's second factor and, when given, its password;
    /// ends every session of the account (`admin doctor add` enrols with
    /// it, `admin doctor reset` renews both).
    fn set_credentials(
        &self,
        doctor: DoctorId,
        password_hash: Option<&str>,
        factor: &SecondFactor,
        now: UnixTime,
    ) -> Result<(), StoreError>;
    /// Records that TOTP step `step` was used; false if it (or a later one)
    /// already was, so a code cannot be replayed.
    fn consume_totp_step(&self, doctor: DoctorId, step: u64) -> Result<bool, StoreError>;
    /// Uses up the recovery code with this hash (audited in the same
    /// transaction); false if there is none.
    fn consume_recovery_code(
        &self,
        doctor: DoctorId,
        hash: &[u8; 32],
        now: UnixTime,
    ) -> Result<bool, StoreError>;

    fn add_session(
        &self,
        token_hash: &[u8; 32],
        doctor: DoctorId,
        now: UnixTime,
        expires_at: UnixTime,
    ) -> Result<(), StoreError>;
    /// A session for a sign-in, audited as a login in the same transaction.
    fn start_session(
        &self,
        token_hash: &[u8; 32],
        doctor: DoctorId,
        now: UnixTime,
        expires_at: UnixTime,
    ) -> Result<(), StoreError>;
    /// A live session: not expired, not idle for more than `idle_secs`, of
    /// an enabled account. Finding it counts as use (idle time restarts);
    /// an expired or idle one is deleted.
    fn session(
        &self,
        token_hash: &[u8; 32],
        now: UnixTime,
        idle_secs: i64,
    ) -> Result<Option<Session>, StoreError>;
    /// Replaces the session `presented` by `fresh` (same doctor, until
    /// `expires_at`); `presented` ends at `presented_until` at the latest.
    /// One transaction.
    fn rotate_session(
        &self,
        presented: &[u8; 32],
        fresh: &[u8; 32],
        now: UnixTime,
        expires_at: UnixTime,
        presented_until: UnixTime,
    ) -> Result<(), StoreError>;
    fn delete_session(&self, token_hash: &[u8; 32]) -> Result<(), StoreError>;

    /// Stores a new consultation (and audits its creation at `c.created_at`).
    fn add_consultation(&self, c: &Consultation) -> Result<(), StoreError>;
    fn consultation(&self, id: &str) -> Result<Option<Consultation>, StoreError>;
    fn consultation_by_token(
        &self,
        token_hash: &[u8; 32],
    ) -> Result<Option<Consultation>, StoreError>;
    fn consultations_of(&self, doctor: DoctorId) -> Result<Vec<Consultation>, StoreError>;
    /// Records a state change at `now`; admission and the terminal states are
    /// audited, and a terminal state starts the retention period.
    fn set_consultation_state(
        &self,
        id: &str,
        state: State,
        now: UnixTime,
    ) -> Result<(), StoreError>;

    /// Appends a security event to the audit log.
    fn record(&self, event: &AuditEvent, now: UnixTime) -> Result<(), StoreError>;

    /// Deletes what is past retention at `now`: consultations that ended or
    /// expired more than `retention_secs` ago, expired sessions, and audit
    /// entries older than `retention_secs`; then makes sure the deleted
    /// bytes are gone from the files.
    fn purge(&self, now: UnixTime, retention_secs: i64) -> Result<PurgeReport, StoreError>;
}
