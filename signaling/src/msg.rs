//! Wire messages of the signalling protocol, version 1 (`docs/PROTOCOL.md`,
//! "Messages").
//!
//! Every message is a JSON object with `"v":1` and a `"type"`; its fields are
//! flat (a sealed envelope's `epoch`, `seq`, `ct` sit at the top level).
//!
//! Decoding is hand-written over a parsed JSON object so that every failure
//! maps to a precise [`DecodeError`] and, through [`DecodeError::code`], to
//! the protocol's [`ErrorCode`]. The checks run in the order the protocol
//! gives them: size first ([`MAX_FRAME_BYTES`], before any parsing), then
//! JSON syntax, then `v`, then `type`, then the fields of that type (missing,
//! mistyped, unknown or duplicated fields are all `bad_request`). Decoding
//! never panics, whatever the input.
//!
//! Encoding writes `v` and `type` first, then the fields in the order of
//! `PROTOCOL.md`; optional fields that are `None` are left out.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The protocol version carried in every message's `"v"`.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest accepted WebSocket text frame, in bytes (64 KiB). Larger frames are
/// refused with `too_large` before they are parsed.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// Largest plaintext a sealed envelope may carry, in bytes (48 KiB).
pub const MAX_PLAINTEXT_BYTES: usize = 48 * 1024;

/// Size of a sealed envelope's epoch, in bytes.
pub const EPOCH_BYTES: usize = 16;

/// Size of the AES-GCM tag at the end of every `ct`, in bytes.
pub const TAG_BYTES: usize = 16;

/// Exclusive upper bound of `seq` (2^53, so that it is exact in JavaScript).
pub const SEQ_LIMIT: u64 = 1 << 53;

/// Longest excerpt of peer-provided text (unknown type or field names) kept in
/// a [`DecodeError`].
const EXCERPT_CHARS: usize = 32;

// ---------------------------------------------------------------------------
// Small enums
// ---------------------------------------------------------------------------

/// The kind of path a peer's media takes, as it reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaPath {
    /// Host, server-reflexive or peer-reflexive candidates on both sides.
    Direct,
    /// Through a TURN relay.
    Relay,
}

impl MediaPath {
    /// Every path.
    pub const ALL: [MediaPath; 2] = [MediaPath::Direct, MediaPath::Relay];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaPath::Direct => "direct",
            MediaPath::Relay => "relay",
        }
    }
}

impl FromStr for MediaPath {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_name(MediaPath::ALL, MediaPath::as_str, "media path", s)
    }
}

/// A seat's role in a consultation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The consultation's doctor.
    Doctor,
    /// The patient holding the join link.
    Patient,
}

impl Role {
    /// Both roles.
    pub const ALL: [Role; 2] = [Role::Doctor, Role::Patient];

    /// The wire name: `"doctor"` or `"patient"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Doctor => "doctor",
            Role::Patient => "patient",
        }
    }

    /// The other seat.
    pub fn other(self) -> Role {
        match self {
            Role::Doctor => Role::Patient,
            Role::Patient => Role::Doctor,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_name(Role::ALL, Role::as_str, "role", s)
    }
}

/// The state of a consultation (`PROTOCOL.md`, "Consultation states").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Nobody in the patient seat.
    Created,
    /// A patient sits in the waiting room.
    Waiting,
    /// The doctor admitted the patient; sealed messages flow between the seats.
    Admitted,
    /// Both seats reported their DTLS transport connected.
    InCall,
    /// The doctor ended the consultation (terminal).
    Ended,
    /// The consultation's lifetime is over (terminal).
    Expired,
}

impl State {
    /// Every state.
    pub const ALL: [State; 6] = [
        State::Created,
        State::Waiting,
        State::Admitted,
        State::InCall,
        State::Ended,
        State::Expired,
    ];

    /// The wire name, e.g. `"in_call"`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Created => "created",
            State::Waiting => "waiting",
            State::Admitted => "admitted",
            State::InCall => "in_call",
            State::Ended => "ended",
            State::Expired => "expired",
        }
    }

    /// `true` for [`State::Ended`] and [`State::Expired`]: nothing can join
    /// and the state never changes again.
    pub fn is_terminal(self) -> bool {
        matches!(self, State::Ended | State::Expired)
    }

    /// `true` once the doctor admitted the patient (and not terminal).
    pub fn is_admitted(self) -> bool {
        matches!(self, State::Admitted | State::InCall)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for State {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_name(State::ALL, State::as_str, "state", s)
    }
}

/// Why a consultation ended (`ended` message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// The doctor sent `end`.
    DoctorEnded,
    /// The consultation's lifetime is over.
    Expired,
}

impl EndReason {
    /// Both reasons.
    pub const ALL: [EndReason; 2] = [EndReason::DoctorEnded, EndReason::Expired];

    /// The wire name: `"doctor_ended"` or `"expired"`.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::DoctorEnded => "doctor_ended",
            EndReason::Expired => "expired",
        }
    }
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EndReason {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_name(EndReason::ALL, EndReason::as_str, "end reason", s)
    }
}

/// Error codes of the `error` message (`PROTOCOL.md`, "Error codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Malformed JSON, unknown type, bad field.
    BadRequest,
    /// `v` is not 1.
    UnsupportedVersion,
    /// Frame over [`MAX_FRAME_BYTES`].
    TooLarge,
    /// Unknown, expired, used or malformed join token (one uniform answer).
    BadToken,
    /// Doctor session invalid or consultation not theirs (uniform too).
    Forbidden,
    /// The seat is held by a live connection and no valid `resume` was given.
    SeatTaken,
    /// Message not allowed in the current state or for this role.
    Unexpected,
    /// Sent to an old connection replaced by a reconnect of the same seat.
    Replaced,
    /// No message for the idle timeout.
    IdleTimeout,
    /// Too many messages.
    RateLimited,
}

impl ErrorCode {
    /// Every code, in the order of `PROTOCOL.md`.
    pub const ALL: [ErrorCode; 10] = [
        ErrorCode::BadRequest,
        ErrorCode::UnsupportedVersion,
        ErrorCode::TooLarge,
        ErrorCode::BadToken,
        ErrorCode::Forbidden,
        ErrorCode::SeatTaken,
        ErrorCode::Unexpected,
        ErrorCode::Replaced,
        ErrorCode::IdleTimeout,
        ErrorCode::RateLimited,
    ];

    /// The wire name, e.g. `"seat_taken"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::BadToken => "bad_token",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::SeatTaken => "seat_taken",
            ErrorCode::Unexpected => "unexpected",
            ErrorCode::Replaced => "replaced",
            ErrorCode::IdleTimeout => "idle_timeout",
            ErrorCode::RateLimited => "rate_limited",
        }
    }

    /// Whether the node closes the connection after sending this error.
    /// Only [`ErrorCode::Unexpected`] is not fatal.
    pub fn is_fatal(self) -> bool {
        !matches!(self, ErrorCode::Unexpected)
    }

    /// A short, uniform English message for clients. It never carries the
    /// cause (that goes to the log).
    pub fn default_message(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "malformed message",
            ErrorCode::UnsupportedVersion => "unsupported protocol version",
            ErrorCode::TooLarge => "message too large",
            ErrorCode::BadToken => "this link is not valid",
            ErrorCode::Forbidden => "not allowed",
            ErrorCode::SeatTaken => "someone else is already connected with this link",
            ErrorCode::Unexpected => "message not allowed now",
            ErrorCode::Replaced => "connection replaced by a newer one",
            ErrorCode::IdleTimeout => "connection idle for too long",
            ErrorCode::RateLimited => "too many messages",
        }
    }

    /// The `error` message for this code with its default message.
    pub fn to_server_msg(self) -> ServerMsg {
        ServerMsg::Error {
            code: self,
            message: self.default_message().to_owned(),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ErrorCode {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_name(ErrorCode::ALL, ErrorCode::as_str, "error code", s)
    }
}

/// The value among `all` whose wire `name` is `s`, or an [`UnknownName`] for
/// `what`.
fn parse_name<T: Copy, const N: usize>(
    all: [T; N],
    name: fn(T) -> &'static str,
    what: &'static str,
    s: &str,
) -> Result<T, UnknownName> {
    all.into_iter()
        .find(|v| name(*v) == s)
        .ok_or_else(|| UnknownName::new(what, s))
}

/// A string that names none of the values of a wire enum ([`MediaPath`],
/// [`Role`], [`State`], [`EndReason`], [`ErrorCode`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{got}`")]
#[non_exhaustive]
pub struct UnknownName {
    /// Which enum was being parsed.
    pub what: &'static str,
    /// A sanitised excerpt of the offending string.
    pub got: String,
}

impl UnknownName {
    fn new(what: &'static str, got: &str) -> Self {
        UnknownName {
            what,
            got: excerpt(got),
        }
    }
}

// ---------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------

/// A sealed envelope as it travels on the wire (`PROTOCOL.md`, "Sealed
/// envelope"). The node relays it verbatim; only the peers can open it (see
/// [`crate::seal`]).
///
/// The fields keep their wire form (base64url without padding). A decoded
/// envelope is validated: `epoch` decodes to exactly 16 bytes, `ct` to at
/// least 16 bytes (the tag), and `seq < 2^53`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SealedEnvelope {
    /// The sender's epoch, base64url of 16 bytes.
    pub epoch: String,
    /// Sequence number within the epoch, from 0.
    pub seq: u64,
    /// Ciphertext and 16-byte tag, base64url.
    pub ct: String,
}

impl SealedEnvelope {
    /// The epoch's bytes, if `epoch` is canonical base64url of 16 bytes.
    pub fn epoch_bytes(&self) -> Option<[u8; EPOCH_BYTES]> {
        let bytes = URL_SAFE_NO_PAD.decode(self.epoch.as_bytes()).ok()?;
        bytes.try_into().ok()
    }

    /// The ciphertext's bytes, if `ct` is canonical base64url of at least 16
    /// bytes.
    pub fn ct_bytes(&self) -> Option<Vec<u8>> {
        let bytes = URL_SAFE_NO_PAD.decode(self.ct.as_bytes()).ok()?;
        (bytes.len() >= TAG_BYTES).then_some(bytes)
    }

    /// Checks the rules a decoded envelope satisfies; names the bad field.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.epoch_bytes().is_none() {
            return Err("epoch");
        }
        if self.seq >= SEQ_LIMIT {
            return Err("seq");
        }
        // Check the ct length arithmetically first: no need to allocate to
        // learn that it is too short.
        if self.ct.len() < 22 || self.ct_bytes().is_none() {
            return Err("ct");
        }
        Ok(())
    }
}

/// The first message of a connection.
#[derive(Clone, PartialEq, Eq)]
pub enum Hello {
    /// A patient joining with the token of their link.
    Patient {
        /// The join token from the link, base64url (the runtime decodes and
        /// checks it; a malformed token is `bad_token`, not `bad_request`).
        token: String,
        /// The resume secret of an earlier connection, if any.
        resume: Option<String>,
    },
    /// The doctor joining their consultation.
    Doctor {
        /// The consultation id.
        consultation: String,
        /// The doctor's session secret.
        session: String,
    },
}

impl Hello {
    /// The role this hello asks for.
    pub fn role(&self) -> Role {
        match self {
            Hello::Patient { .. } => Role::Patient,
            Hello::Doctor { .. } => Role::Doctor,
        }
    }
}

impl fmt::Debug for Hello {
    /// Secrets are redacted: tokens, resume secrets and sessions never reach a
    /// log through `Debug`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hello::Patient { resume, .. } => f
                .debug_struct("Patient")
                .field("token", &Redacted)
                .field("resume", &resume.as_ref().map(|_| Redacted))
                .finish(),
            Hello::Doctor { consultation, .. } => f
                .debug_struct("Doctor")
                .field("consultation", consultation)
                .field("session", &Redacted)
                .finish(),
        }
    }
}

/// A message from a client (doctor or patient) to the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMsg {
    /// `hello`: the first message.
    Hello(Hello),
    /// `sealed`: an envelope for the other seat.
    Sealed(SealedEnvelope),
    /// `admit` (doctor): let the waiting patient in.
    Admit,
    /// `connected`: this side's DTLS transport is connected, with the kind of
    /// path its media takes when known (aggregate metrics only).
    Connected {
        /// `direct` or `relay`.
        path: Option<MediaPath>,
    },
    /// `end` (doctor): end the consultation for both.
    End,
    /// `leave` (patient): free the patient seat.
    Leave,
    /// `ping`: keep-alive.
    Ping,
}

impl ClientMsg {
    /// The wire `type`.
    pub fn type_name(&self) -> &'static str {
        match self {
            ClientMsg::Hello(_) => "hello",
            ClientMsg::Sealed(_) => "sealed",
            ClientMsg::Admit => "admit",
            ClientMsg::Connected { .. } => "connected",
            ClientMsg::End => "end",
            ClientMsg::Leave => "leave",
            ClientMsg::Ping => "ping",
        }
    }
}

/// A STUN/TURN server offered to the peers (`RTCIceServer`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IceServer {
    /// `stun:` / `turn:` / `turns:` URLs.
    pub urls: Vec<String>,
    /// TURN username, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN credential, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

impl fmt::Debug for IceServer {
    /// The credential is redacted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IceServer")
            .field("urls", &self.urls)
            .field("username", &self.username)
            .field("credential", &self.credential.as_ref().map(|_| Redacted))
            .finish()
    }
}

/// A message from the node to a client.
#[derive(Clone, PartialEq, Eq)]
pub enum ServerMsg {
    /// `welcome`: the connection holds a seat.
    Welcome {
        /// The seat taken.
        role: Role,
        /// The consultation id.
        consultation: String,
        /// The consultation's state after joining.
        state: State,
        /// Whether the other seat has a live connection.
        peer_present: bool,
        /// The resume secret (patient only).
        resume: Option<String>,
        /// STUN/TURN servers (empty when the node offers none).
        ice_servers: Vec<IceServer>,
    },
    /// `patient_waiting` (doctor): a patient sits in the waiting room.
    PatientWaiting,
    /// `admitted` (both): the doctor admitted the patient. Carries the
    /// seat's STUN/TURN servers: a patient gets relay credentials only once
    /// admitted.
    Admitted {
        /// STUN/TURN servers (empty when the node offers none).
        ice_servers: Vec<IceServer>,
    },
    /// `peer_joined`: the other seat (re)connected after admission.
    PeerJoined,
    /// `peer_left`: the other seat's connection went away.
    PeerLeft,
    /// `sealed`: an envelope relayed verbatim from the other seat.
    Sealed(SealedEnvelope),
    /// `ended`: the consultation is over; the node closes the socket.
    Ended {
        /// Why.
        reason: EndReason,
    },
    /// `error`: see [`ErrorCode`]; fatal codes are followed by a close.
    Error {
        /// The code.
        code: ErrorCode,
        /// A short human-readable message.
        message: String,
    },
    /// `pong`: the answer to `ping`.
    Pong,
}

impl ServerMsg {
    /// The wire `type`.
    pub fn type_name(&self) -> &'static str {
        match self {
            ServerMsg::Welcome { .. } => "welcome",
            ServerMsg::PatientWaiting => "patient_waiting",
            ServerMsg::Admitted { .. } => "admitted",
            ServerMsg::PeerJoined => "peer_joined",
            ServerMsg::PeerLeft => "peer_left",
            ServerMsg::Sealed(_) => "sealed",
            ServerMsg::Ended { .. } => "ended",
            ServerMsg::Error { .. } => "error",
            ServerMsg::Pong => "pong",
        }
    }
}

impl fmt::Debug for ServerMsg {
    /// The resume secret and TURN credentials are redacted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerMsg::Welcome {
                role,
                consultation,
                state,
                peer_present,
                resume,
                ice_servers,
            } => f
                .debug_struct("Welcome")
                .field("role", role)
                .field("consultation", consultation)
                .field("state", state)
                .field("peer_present", peer_present)
                .field("resume", &resume.as_ref().map(|_| Redacted))
                .field("ice_servers", ice_servers)
                .finish(),
            ServerMsg::PatientWaiting => f.write_str("PatientWaiting"),
            ServerMsg::Admitted { ice_servers } => f
                .debug_struct("Admitted")
                .field("ice_servers", ice_servers)
                .finish(),
            ServerMsg::PeerJoined => f.write_str("PeerJoined"),
            ServerMsg::PeerLeft => f.write_str("PeerLeft"),
            ServerMsg::Sealed(env) => f.debug_tuple("Sealed").field(env).finish(),
            ServerMsg::Ended { reason } => f.debug_struct("Ended").field("reason", reason).finish(),
            ServerMsg::Error { code, message } => f
                .debug_struct("Error")
                .field("code", code)
                .field("message", message)
                .finish(),
            ServerMsg::Pong => f.write_str("Pong"),
        }
    }
}

/// Prints `***` in place of a secret.
struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Why a frame could not be decoded. [`DecodeError::code`] gives the error
/// code to answer with; every variant is fatal for the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The frame is larger than [`MAX_FRAME_BYTES`]; it was not parsed.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Size of the frame in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The frame is not valid JSON.
    #[error("invalid JSON at line {line}, column {column}")]
    Json {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
    },
    /// The frame is JSON but not an object.
    #[error("message is not a JSON object")]
    NotAnObject,
    /// The same key appears twice in the message object.
    #[error("duplicate field `{field}`")]
    DuplicateField {
        /// Sanitised excerpt of the key.
        field: String,
    },
    /// `v` is an integer other than [`PROTOCOL_VERSION`].
    #[error("unsupported protocol version {got}")]
    UnsupportedVersion {
        /// The version the peer sent.
        got: u64,
    },
    /// `type` names no message of this direction.
    #[error("unknown message type `{got}`")]
    UnknownType {
        /// Sanitised excerpt of the type.
        got: String,
    },
    /// A required field is absent (or `null`).
    #[error("`{msg_type}` message lacks field `{field}`")]
    MissingField {
        /// The message type (`"message"` for `v` and `type` themselves).
        msg_type: &'static str,
        /// The field.
        field: &'static str,
    },
    /// A field has the wrong JSON type or an invalid value.
    #[error("`{msg_type}` message has an invalid `{field}`: expected {expected}")]
    InvalidField {
        /// The message type (`"message"` for `v` and `type` themselves).
        msg_type: &'static str,
        /// The field.
        field: &'static str,
        /// What the field must be.
        expected: &'static str,
    },
    /// The message has a field its type does not define.
    #[error("`{msg_type}` message has unknown field `{field}`")]
    UnknownField {
        /// The message type.
        msg_type: &'static str,
        /// Sanitised excerpt of the field name.
        field: String,
    },
}

impl DecodeError {
    /// The error code to answer with: `too_large`, `unsupported_version` or
    /// `bad_request`.
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::TooLarge { .. } => ErrorCode::TooLarge,
            DecodeError::UnsupportedVersion { .. } => ErrorCode::UnsupportedVersion,
            _ => ErrorCode::BadRequest,
        }
    }
}

/// Keeps at most [`EXCERPT_CHARS`] printable ASCII characters of peer text;
/// anything else becomes `?`, so the excerpt is safe to log.
fn excerpt(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(EXCERPT_CHARS)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    if s.chars().nth(EXCERPT_CHARS).is_some() {
        out.push('…');
    }
    out
}

// ---------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------

/// Decodes a frame sent by a client. Never panics.
pub fn decode_client(frame: &str) -> Result<ClientMsg, DecodeError> {
    let (ty, mut f) = open_frame(frame)?;
    let msg = match ty.as_str() {
        "hello" => {
            f.ty = "hello";
            let role = f.req_str("role")?;
            match role.as_str() {
                "patient" => ClientMsg::Hello(Hello::Patient {
                    token: f.req_str("token")?,
                    resume: f.opt_str("resume")?,
                }),
                "doctor" => ClientMsg::Hello(Hello::Doctor {
                    consultation: f.req_str("consultation")?,
                    session: f.req_str("session")?,
                }),
                _ => return Err(f.invalid("role", "\"patient\" or \"doctor\"")),
            }
        }
        "sealed" => {
            f.ty = "sealed";
            ClientMsg::Sealed(f.envelope()?)
        }
        "admit" => ClientMsg::Admit,
        "connected" => {
            f.ty = "connected";
            let path = f
                .opt_str("path")?
                .map(|p| p.parse::<MediaPath>())
                .transpose()
                .map_err(|_| f.invalid("path", "\"direct\" or \"relay\""))?;
            ClientMsg::Connected { path }
        }
        "end" => ClientMsg::End,
        "leave" => ClientMsg::Leave,
        "ping" => ClientMsg::Ping,
        other => {
            return Err(DecodeError::UnknownType {
                got: excerpt(other),
            });
        }
    };
    f.ty = msg.type_name();
    f.finish()?;
    Ok(msg)
}

/// Decodes a frame sent by the node. Never panics.
pub fn decode_server(frame: &str) -> Result<ServerMsg, DecodeError> {
    let (ty, mut f) = open_frame(frame)?;
    let msg = match ty.as_str() {
        "welcome" => {
            f.ty = "welcome";
            let role = f.req_str("role")?;
            let role = role
                .parse::<Role>()
                .map_err(|_| f.invalid("role", "\"patient\" or \"doctor\""))?;
            let consultation = f.req_str("consultation")?;
            let state = f.req_str("state")?;
            let state = state
                .parse::<State>()
                .map_err(|_| f.invalid("state", "a consultation state"))?;
            let peer_present = f.req_bool("peer_present")?;
            let resume = f.opt_str("resume")?;
            let ice_servers = f.ice_servers()?;
            ServerMsg::Welcome {
                role,
                consultation,
                state,
                peer_present,
                resume,
                ice_servers,
            }
        }
        "patient_waiting" => ServerMsg::PatientWaiting,
        "admitted" => {
            f.ty = "admitted";
            let ice_servers = f.ice_servers()?;
            ServerMsg::Admitted { ice_servers }
        }
        "peer_joined" => ServerMsg::PeerJoined,
        "peer_left" => ServerMsg::PeerLeft,
        "sealed" => {
            f.ty = "sealed";
            ServerMsg::Sealed(f.envelope()?)
        }
        "ended" => {
            f.ty = "ended";
            let reason = f.req_str("reason")?;
            let reason = reason
                .parse::<EndReason>()
                .map_err(|_| f.invalid("reason", "\"doctor_ended\" or \"expired\""))?;
            ServerMsg::Ended { reason }
        }
        "error" => {
            f.ty = "error";
            let code = f.req_str("code")?;
            let code = code
                .parse::<ErrorCode>()
                .map_err(|_| f.invalid("code", "an error code"))?;
            let message = f.req_str("message")?;
            ServerMsg::Error { code, message }
        }
        "pong" => ServerMsg::Pong,
        other => {
            return Err(DecodeError::UnknownType {
                got: excerpt(other),
            });
        }
    };
    f.ty = msg.type_name();
    f.finish()?;
    Ok(msg)
}

/// Size check, JSON parse, `v` and `type`. Returns the type and the remaining
/// fields.
fn open_frame(frame: &str) -> Result<(String, Fields), DecodeError> {
    if frame.len() > MAX_FRAME_BYTES {
        return Err(DecodeError::TooLarge {
            len: frame.len(),
            max: MAX_FRAME_BYTES,
        });
    }
    if !frame
        .trim_start_matches([' ', '\t', '\n', '\r'])
        .starts_with('{')
    {
        return Err(DecodeError::NotAnObject);
    }
    let raw: RawObject = serde_json::from_str(frame).map_err(|e| DecodeError::Json {
        line: e.line(),
        column: e.column(),
    })?;
    let map = match raw {
        RawObject::Object(map) => map,
        RawObject::Duplicate(field) => return Err(DecodeError::DuplicateField { field }),
        RawObject::NotAnObject => return Err(DecodeError::NotAnObject),
    };
    let mut f = Fields { ty: "message", map };
    match f.map.remove("v") {
        None | Some(Value::Null) => return Err(f.missing("v")),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(v) if v == u64::from(PROTOCOL_VERSION) => {}
            Some(got) => return Err(DecodeError::UnsupportedVersion { got }),
            None => return Err(f.invalid("v", "the integer 1")),
        },
        Some(_) => return Err(f.invalid("v", "the integer 1")),
    }
    let ty = f.req_str("type")?;
    Ok((ty, f))
}

/// A message's fields, consumed one by one; leftovers are unknown fields.
struct Fields {
    ty: &'static str,
    map: BTreeMap<String, Value>,
}

impl Fields {
    fn missing(&self, field: &'static str) -> DecodeError {
        DecodeError::MissingField {
            msg_type: self.ty,
            field,
        }
    }

    fn invalid(&self, field: &'static str, expected: &'static str) -> DecodeError {
        DecodeError::InvalidField {
            msg_type: self.ty,
            field,
            expected,
        }
    }

    /// A field that may be absent; `null` counts as absent.
    fn take(&mut self, field: &'static str) -> Option<Value> {
        match self.map.remove(field) {
            Some(Value::Null) | None => None,
            Some(v) => Some(v),
        }
    }

    fn req_str(&mut self, field: &'static str) -> Result<String, DecodeError> {
        self.opt_str(field)?.ok_or_else(|| self.missing(field))
    }

    fn opt_str(&mut self, field: &'static str) -> Result<Option<String>, DecodeError> {
        match self.take(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.invalid(field, "a string")),
        }
    }

    fn req_bool(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        match self.take(field) {
            None => Err(self.missing(field)),
            Some(Value::Bool(b)) => Ok(b),
            Some(_) => Err(self.invalid(field, "a boolean")),
        }
    }

    fn envelope(&mut self) -> Result<SealedEnvelope, DecodeError> {
        let epoch = self.req_str("epoch")?;
        let seq = match self.take("seq") {
            None => return Err(self.missing("seq")),
            Some(Value::Number(n)) => n
                .as_u64()
                .filter(|s| *s < SEQ_LIMIT)
                .ok_or_else(|| self.invalid("seq", "an integer 0 <= seq < 2^53"))?,
            Some(_) => return Err(self.invalid("seq", "an integer 0 <= seq < 2^53")),
        };
        let ct = self.req_str("ct")?;
        let env = SealedEnvelope { epoch, seq, ct };
        match env.validate() {
            Ok(()) => Ok(env),
            Err("epoch") => Err(self.invalid("epoch", "base64url of 16 bytes")),
            Err("seq") => Err(self.invalid("seq", "an integer 0 <= seq < 2^53")),
            Err(_) => Err(self.invalid("ct", "base64url of at least 16 bytes")),
        }
    }

    fn ice_servers(&mut self) -> Result<Vec<IceServer>, DecodeError> {
        const EXPECTED: &str =
            "a list of {\"urls\":[strings],\"username\"?:string,\"credential\"?:string}";
        let list = match self.take("ice_servers") {
            None => return Err(self.missing("ice_servers")),
            Some(Value::Array(list)) => list,
            Some(_) => return Err(self.invalid("ice_servers", EXPECTED)),
        };
        list.into_iter()
            .map(serde_json::from_value::<IceServer>)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| self.invalid("ice_servers", EXPECTED))
    }

    fn finish(self) -> Result<(), DecodeError> {
        match self.map.into_keys().next() {
            None => Ok(()),
            Some(field) => Err(DecodeError::UnknownField {
                msg_type: self.ty,
                field: excerpt(&field),
            }),
        }
    }
}

/// The top-level JSON value of a frame: an object whose keys are checked for
/// duplicates (which `serde_json::Value` would silently collapse).
enum RawObject {
    Object(BTreeMap<String, Value>),
    Duplicate(String),
    NotAnObject,
}

impl<'de> Deserialize<'de> for RawObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;

        impl<'de> Visitor<'de> for V {
            type Value = RawObject;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawObject, A::Error> {
                let mut out = BTreeMap::new();
                while let Some(key) = map.next_key::<String>()? {
                    if out.contains_key(&key) {
                        // Consume the rest so the parser can finish the
                        // object, then report the duplicate.
                        map.next_value::<IgnoredAny>()?;
                        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                        return Ok(RawObject::Duplicate(excerpt(&key)));
                    }
                    let value = map.next_value::<Value>()?;
                    out.insert(key, value);
                }
                Ok(RawObject::Object(out))
            }

            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<RawObject, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(RawObject::NotAnObject)
            }

            fn visit_bool<E: de::Error>(self, _: bool) -> Result<RawObject, E> {
                Ok(RawObject::NotAnObject)
            }

            fn visit_i64<E: de::Error>(self, _: i64) -> Result<RawObject, E> {
                Ok(RawObject::NotAnObject)
            }

            fn visit_u64<E: de::Error>(self, _: u64) -> Result<RawObject, E> {
                Ok(RawObject::NotAnObject)
            }

            fn visit_f64<E: de::Error>(self, _: f64) -> Result<RawObject, E> {
                Ok(RawObject::NotAnObject)
            }

            fn visit_str<E: de::Error>(self, _: &str) -> Result<RawObject, E> {
                Ok(RawObject::NotAnObject)
            }

            fn visit_unit<E: de::Error>(self) -> Result<RawObject, E> {
                Ok(RawObject::NotAnObject)
            }
        }

        d.deserialize_any(V)
    }
}

// ---------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------

/// A JSON object that keeps its keys in insertion order.
struct Obj<'a>(Vec<(&'static str, Entry<'a>)>);

/// A value in an [`Obj`].
enum Entry<'a> {
    Json(Value),
    /// Serialised through the derived `Serialize`, which keeps field order.
    IceServers(&'a [IceServer]),
}

impl Serialize for Entry<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Entry::Json(v) => v.serialize(s),
            Entry::IceServers(list) => list.serialize(s),
        }
    }
}

impl<'a> Obj<'a> {
    fn new(ty: &'static str) -> Obj<'a> {
        Obj(vec![
            ("v", Entry::Json(Value::from(PROTOCOL_VERSION))),
            ("type", Entry::Json(Value::from(ty))),
        ])
    }

    fn field(mut self, key: &'static str, value: impl Into<Value>) -> Obj<'a> {
        self.0.push((key, Entry::Json(value.into())));
        self
    }

    fn opt(self, key: &'static str, value: Option<&String>) -> Obj<'a> {
        match value {
            Some(v) => self.field(key, v.as_str()),
            None => self,
        }
    }

    fn envelope(self, env: &SealedEnvelope) -> Obj<'a> {
        self.field("epoch", env.epoch.as_str())
            .field("seq", env.seq)
            .field("ct", env.ct.as_str())
    }

    fn ice_servers(mut self, list: &'a [IceServer]) -> Obj<'a> {
        self.0.push(("ice_servers", Entry::IceServers(list)));
        self
    }

    fn finish(self) -> String {
        serde_json::to_string(&self).expect("a JSON object with string keys always serialises")
    }
}

impl Serialize for Obj<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// Encodes a client message as a JSON text frame.
pub fn encode_client(msg: &ClientMsg) -> String {
    let obj = Obj::new(msg.type_name());
    match msg {
        ClientMsg::Hello(Hello::Patient { token, resume }) => obj
            .field("role", Role::Patient.as_str())
            .field("token", token.as_str())
            .opt("resume", resume.as_ref()),
        ClientMsg::Hello(Hello::Doctor {
            consultation,
            session,
        }) => obj
            .field("role", Role::Doctor.as_str())
            .field("consultation", consultation.as_str())
            .field("session", session.as_str()),
        ClientMsg::Sealed(env) => obj.envelope(env),
        ClientMsg::Connected { path } => match path {
            Some(p) => obj.field("path", p.as_str()),
            None => obj,
        },
        ClientMsg::Admit | ClientMsg::End | ClientMsg::Leave | ClientMsg::Ping => obj,
    }
    .finish()
}

/// Encodes a server message as a JSON text frame.
pub fn encode_server(msg: &ServerMsg) -> String {
    let obj = Obj::new(msg.type_name());
    match msg {
        ServerMsg::Welcome {
            role,
            consultation,
            state,
            peer_present,
            resume,
            ice_servers,
        } => obj
            .field("role", role.as_str())
            .field("consultation", consultation.as_str())
            .field("state", state.as_str())
            .field("peer_present", *peer_present)
            .opt("resume", resume.as_ref())
            .ice_servers(ice_servers),
        ServerMsg::Admitted { ice_servers } => obj.ice_servers(ice_servers),
        ServerMsg::Sealed(env) => obj.envelope(env),
        ServerMsg::Ended { reason } => obj.field("reason", reason.as_str()),
        ServerMsg::Error { code, message } => obj
            .field("code", code.as_str())
            .field("message", message.as_str()),
        ServerMsg::PatientWaiting
        | ServerMsg::PeerJoined
        | ServerMsg::PeerLeft
        | ServerMsg::Pong => obj,
    }
    .finish()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const EPOCH: &str = "AAECAwQFBgcICQoLDA0ODw"; // 16 bytes
    const CT16: &str = "AAAAAAAAAAAAAAAAAAAAAA"; // 16 bytes

    fn env() -> SealedEnvelope {
        SealedEnvelope {
            epoch: EPOCH.to_owned(),
            seq: 7,
            ct: CT16.to_owned(),
        }
    }

    #[test]
    fn encodes_flat_with_v_and_type_first() {
        assert_eq!(
            encode_client(&ClientMsg::Sealed(env())),
            format!(r#"{{"v":1,"type":"sealed","epoch":"{EPOCH}","seq":7,"ct":"{CT16}"}}"#)
        );
        assert_eq!(
            encode_client(&ClientMsg::Hello(Hello::Patient {
                token: "t".into(),
                resume: None
            })),
            r#"{"v":1,"type":"hello","role":"patient","token":"t"}"#
        );
        assert_eq!(encode_server(&ServerMsg::Pong), r#"{"v":1,"type":"pong"}"#);
        assert_eq!(
            encode_server(&ServerMsg::Ended {
                reason: EndReason::DoctorEnded
            }),
            r#"{"v":1,"type":"ended","reason":"doctor_ended"}"#
        );
    }

    #[test]
    fn welcome_round_trips_and_skips_none() {
        let msg = ServerMsg::Welcome {
            role: Role::Patient,
            consultation: "c".into(),
            state: State::InCall,
            peer_present: true,
            resume: Some("r".into()),
            ice_servers: vec![
                IceServer {
                    urls: vec!["stun:example.org".into()],
                    username: None,
                    credential: None,
                },
                IceServer {
                    urls: vec!["turn:example.org".into(), "turns:example.org".into()],
                    username: Some("u".into()),
                    credential: Some("c".into()),
                },
            ],
        };
        let s = encode_server(&msg);
        assert_eq!(
            s,
            r#"{"v":1,"type":"welcome","role":"patient","consultation":"c","state":"in_call","peer_present":true,"resume":"r","ice_servers":[{"urls":["stun:example.org"]},{"urls":["turn:example.org","turns:example.org"],"username":"u","credential":"c"}]}"#
        );
        assert_eq!(decode_server(&s).unwrap(), msg);
    }

    #[test]
    fn all_client_messages_round_trip() {
        let msgs = [
            ClientMsg::Hello(Hello::Patient {
                token: "tok".into(),
                resume: Some("res".into()),
            }),
            ClientMsg::Hello(Hello::Patient {
                token: "tok".into(),
                resume: None,
            }),
            ClientMsg::Hello(Hello::Doctor {
                consultation: "c".into(),
                session: "s".into(),
            }),
            ClientMsg::Sealed(env()),
            ClientMsg::Admit,
            ClientMsg::Connected { path: None },
            ClientMsg::Connected {
                path: Some(MediaPath::Relay),
            },
            ClientMsg::End,
            ClientMsg::Leave,
            ClientMsg::Ping,
        ];
        for m in msgs {
            assert_eq!(decode_client(&encode_client(&m)).unwrap(), m);
        }
    }

    #[test]
    fn all_server_messages_round_trip() {
        let mut msgs = vec![
            ServerMsg::PatientWaiting,
            ServerMsg::Admitted {
                ice_servers: vec![],
            },
            ServerMsg::PeerJoined,
            ServerMsg::PeerLeft,
            ServerMsg::Sealed(env()),
            ServerMsg::Ended {
                reason: EndReason::Expired,
            },
            ServerMsg::Pong,
        ];
        msgs.extend(ErrorCode::ALL.map(ErrorCode::to_server_msg));
        for m in msgs {
            assert_eq!(decode_server(&encode_server(&m)).unwrap(), m);
        }
    }

    fn client_err(s: &str) -> DecodeError {
        decode_client(s).unwrap_err()
    }

    #[test]
    fn oversized_frame_is_too_large_without_parsing() {
        let big = "x".repeat(MAX_FRAME_BYTES + 1);
        assert_eq!(client_err(&big).code(), ErrorCode::TooLarge);
        // Exactly at the limit is parsed (and here fails as JSON).
        let at = "x".repeat(MAX_FRAME_BYTES);
        assert_eq!(client_err(&at).code(), ErrorCode::BadRequest);
    }

    #[test]
    fn version_checks() {
        assert_eq!(
            client_err(r#"{"v":2,"type":"ping"}"#),
            DecodeError::UnsupportedVersion { got: 2 }
        );
        // Version is checked before the type.
        assert_eq!(
            client_err(r#"{"type":"nonsense","v":0}"#).code(),
            ErrorCode::UnsupportedVersion
        );
        for s in [
            r#"{"type":"ping"}"#,
            r#"{"v":null,"type":"ping"}"#,
            r#"{"v":"1","type":"ping"}"#,
            r#"{"v":1.5,"type":"ping"}"#,
            r#"{"v":-1,"type":"ping"}"#,
        ] {
            assert_eq!(client_err(s).code(), ErrorCode::BadRequest, "{s}");
        }
        assert_eq!(
            decode_client(r#"{"v":1,"type":"ping"}"#).unwrap(),
            ClientMsg::Ping
        );
    }

    #[test]
    fn bad_requests() {
        let cases = [
            "",
            "null",
            "[]",
            "\"x\"",
            "{",
            r#"{"v":1}"#,
            r#"{"v":1,"type":7}"#,
            r#"{"v":1,"type":"pong"}"#, // server type from a client
            r#"{"v":1,"type":"ping","extra":1}"#,
            r#"{"v":1,"type":"ping","type":"ping"}"#,
            r#"{"v":1,"type":"ping"} x"#,
            r#"{"v":1,"type":"hello","role":"nurse","token":"t"}"#,
            r#"{"v":1,"type":"hello","role":"patient"}"#,
            r#"{"v":1,"type":"hello","role":"patient","token":5}"#,
            r#"{"v":1,"type":"hello","role":"patient","token":"t","session":"s"}"#,
            r#"{"v":1,"type":"hello","role":"doctor","consultation":"c"}"#,
            r#"{"v":1,"type":"sealed","epoch":"AAECAwQFBgcICQoLDA0O","seq":0,"ct":"AAAAAAAAAAAAAAAAAAAAAA"}"#,
            r#"{"v":1,"type":"sealed","epoch":"AAECAwQFBgcICQoLDA0ODw==","seq":0,"ct":"AAAAAAAAAAAAAAAAAAAAAA"}"#,
            r#"{"v":1,"type":"sealed","epoch":"AAECAwQFBgcICQoLDA0ODw","seq":0,"ct":"AAAAAAAAAAAAAAAAAAAA"}"#,
            r#"{"v":1,"type":"sealed","epoch":"AAECAwQFBgcICQoLDA0ODw","seq":0,"ct":"AAAAAAAAAAAAAAAAAAAA+/"}"#,
            r#"{"v":1,"type":"sealed","epoch":"AAECAwQFBgcICQoLDA0ODw","seq":-1,"ct":"AAAAAAAAAAAAAAAAAAAAAA"}"#,
            r#"{"v":1,"type":"sealed","epoch":"AAECAwQFBgcICQoLDA0ODw","seq":1.0,"ct":"AAAAAAAAAAAAAAAAAAAAAA"}"#,
            r#"{"v":1,"type":"sealed","epoch":"AAECAwQFBgcICQoLDA0ODw","seq":9007199254740992,"ct":"AAAAAAAAAAAAAAAAAAAAAA"}"#,
            r#"{"v":1,"type":"sealed","epoch":"AAECAwQFBgcICQoLDA0ODw","ct":"AAAAAAAAAAAAAAAAAAAAAA"}"#,
        ];
        for s in cases {
            assert_eq!(client_err(s).code(), ErrorCode::BadRequest, "{s}");
        }
        // The largest allowed seq is accepted.
        let ok = r#"{"v":1,"type":"sealed","epoch":"AAECAwQFBgcICQoLDA0ODw","seq":9007199254740991,"ct":"AAAAAAAAAAAAAAAAAAAAAA"}"#;
        assert!(decode_client(ok).is_ok());
    }

    #[test]
    fn errors_carry_context() {
        assert_eq!(
            client_err(r#"{"v":1,"type":"ping","type":"ping"}"#),
            DecodeError::DuplicateField {
                field: "type".into()
            }
        );
        assert_eq!(
            client_err(r#"{"v":1,"type":"hello","role":"patient"}"#),
            DecodeError::MissingField {
                msg_type: "hello",
                field: "token"
            }
        );
        assert_eq!(
            client_err(r#"{"v":1,"type":"admit","x\n":1}"#),
            DecodeError::UnknownField {
                msg_type: "admit",
                field: "x?".into()
            }
        );
        assert!(matches!(
            client_err(r#"{"v":1,"type":"frobnicate"}"#),
            DecodeError::UnknownType { got } if got == "frobnicate"
        ));
    }

    #[test]
    fn null_optional_resume_is_absent() {
        assert_eq!(
            decode_client(r#"{"v":1,"type":"hello","role":"patient","token":"t","resume":null}"#)
                .unwrap(),
            ClientMsg::Hello(Hello::Patient {
                token: "t".into(),
                resume: None
            })
        );
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        let deep = format!(
            r#"{{"v":1,"type":"ping","x":{}{}}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        assert_eq!(client_err(&deep).code(), ErrorCode::BadRequest);
    }

    #[test]
    fn debug_redacts_secrets() {
        let hello = ClientMsg::Hello(Hello::Patient {
            token: "SECRET-TOKEN".into(),
            resume: Some("SECRET-RESUME".into()),
        });
        let doc = Hello::Doctor {
            consultation: "c".into(),
            session: "SECRET-SESSION".into(),
        };
        let welcome = ServerMsg::Welcome {
            role: Role::Patient,
            consultation: "c".into(),
            state: State::Waiting,
            peer_present: false,
            resume: Some("SECRET-RESUME".into()),
            ice_servers: vec![IceServer {
                urls: vec![],
                username: Some("u".into()),
                credential: Some("SECRET-CRED".into()),
            }],
        };
        let all = format!("{hello:?} {doc:?} {welcome:?}");
        assert!(!all.contains("SECRET"), "{all}");
        assert!(all.contains("***"));
    }

    #[test]
    fn enum_names() {
        for code in ErrorCode::ALL {
            assert_eq!(code.as_str().parse::<ErrorCode>().unwrap(), code);
            assert_eq!(
                serde_json::to_string(&code).unwrap(),
                format!("\"{}\"", code.as_str())
            );
            assert!(!code.default_message().is_empty());
            assert_eq!(code.is_fatal(), code != ErrorCode::Unexpected);
        }
        for st in [
            State::Created,
            State::Waiting,
            State::Admitted,
            State::InCall,
            State::Ended,
            State::Expired,
        ] {
            assert_eq!(st.as_str().parse::<State>().unwrap(), st);
            assert_eq!(
                serde_json::to_string(&st).unwrap(),
                format!("\"{}\"", st.as_str())
            );
            assert_eq!(
                st.is_terminal(),
                matches!(st, State::Ended | State::Expired)
            );
        }
        assert_eq!(serde_json::to_string(&Role::Doctor).unwrap(), "\"doctor\"");
        assert!("Doctor".parse::<Role>().is_err());
    }
}
