//! The metadata store: doctor accounts, their login sessions and consultations.
//!
//! Callers use the [`Store`] trait; [`SqliteStore`] is the embedded default (one
//! file in the data directory, WAL). What may be stored is fixed by the privacy
//! contract in DESIGN.md: no patient identity, no SDP, no addresses; join tokens
//! and session tokens only as hashes.

mod sqlite;

pub use sqlite::SqliteStore;

use telenode_signaling::msg::State;

/// Seconds since the Unix epoch; the store keeps wall-clock times only.
pub type UnixTime = i64;

/// Row id of a doctor account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("data directory: {0}")]
    Io(#[from] std::io::Error),
}

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
    fn doctor_by_login(&self, login: &str) -> Result<Option<Doctor>, StoreError>;
    fn doctor(&self, id: DoctorId) -> Result<Option<Doctor>, StoreError>;
    fn list_doctors(&self) -> Result<Vec<Doctor>, StoreError>;
    /// Disables (or re-enables) an account; disabling ends its sessions.
    fn set_doctor_disabled(&self, login: &str, disabled: bool) -> Result<(), StoreError>;

    fn add_session(
        &self,
        token_hash: &[u8; 32],
        doctor: DoctorId,
        expires_at: UnixTime,
    ) -> Result<(), StoreError>;
    /// The doctor a live session belongs to; expired sessions are not found.
    fn session_doctor(
        &self,
        token_hash: &[u8; 32],
        now: UnixTime,
    ) -> Result<Option<DoctorId>, StoreError>;
    fn delete_session(&self, token_hash: &[u8; 32]) -> Result<(), StoreError>;

    fn add_consultation(&self, c: &Consultation) -> Result<(), StoreError>;
    fn consultation(&self, id: &str) -> Result<Option<Consultation>, StoreError>;
    fn consultation_by_token(
        &self,
        token_hash: &[u8; 32],
    ) -> Result<Option<Consultation>, StoreError>;
    fn consultations_of(&self, doctor: DoctorId) -> Result<Vec<Consultation>, StoreError>;
    fn set_consultation_state(&self, id: &str, state: State) -> Result<(), StoreError>;
}
