//! The consultation state machine (`PROTOCOL.md`, "Consultation states"),
//! sans-IO in the manner of str0m and quinn-proto.
//!
//! One [`Room`] per live consultation, owned by one task. The runtime feeds
//! it [`Input`]s with the current time, drains [`Output`]s with
//! [`Room::poll_output`] after every call, and calls [`Room::handle_timeout`]
//! at [`Room::poll_timeout`]:
//!
//! ```text
//! loop {
//!     while let Some(out) = room.poll_output() { /* send, close, persist state */ }
//!     if room.is_finished() { break }
//!     select! {
//!         input = rx.recv() => room.handle_input(now, input)?,
//!         _ = sleep_until(room.poll_timeout()) => room.handle_timeout(now),
//!     }
//! }
//! ```
//!
//! Authentication happens before the room: the runtime checks the join token
//! (or the doctor's session and ownership) of a `hello` and only then feeds
//! [`Input::Join`]; refusals there (`bad_token`, `forbidden`) never reach the
//! room. The room decides seats and state: who holds which seat, admission,
//! relaying, idle and rate limits, lifetime.
//!
//! Peer mistakes never make [`Room::handle_input`] fail: they become an
//! [`Output::Send`] of an `error` (followed by [`Output::Close`] for fatal
//! codes). `Err` is kept for runtime misuse.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use crate::creds::ct_eq;
use crate::msg::{
    ClientMsg, EndReason, ErrorCode, IceServer, MediaPath, Role, SealedEnvelope, ServerMsg, State,
};

/// The runtime's handle for one WebSocket connection. The runtime must not
/// reuse an id for another connection of the same room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn#{}", self.0)
    }
}

/// Limits of a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomConfig {
    /// A connection that sends nothing for this long is closed with
    /// `idle_timeout` (default 60 s; clients ping every 20 s).
    pub idle_timeout: Duration,
    /// Most sealed messages (knocks) a waiting patient may send per
    /// connection (default 4); one more is `rate_limited`.
    pub max_knocks: u32,
    /// Sustained messages per second per connection (default 50; 0 is
    /// treated as 1).
    pub rate_per_sec: u32,
    /// Burst of messages per connection (default 200; 0 is treated as 1).
    pub rate_burst: u32,
}

impl Default for RoomConfig {
    fn default() -> Self {
        RoomConfig {
            idle_timeout: Duration::from_secs(60),
            max_knocks: 4,
            rate_per_sec: 50,
            rate_burst: 200,
        }
    }
}

/// The seat an authenticated connection asks for.
#[derive(Clone, PartialEq, Eq)]
pub enum Seat {
    /// The consultation's own doctor (session and ownership already checked).
    Doctor,
    /// A patient with a valid join token.
    Patient {
        /// The resume secret the patient presented, if any.
        resume: Option<String>,
    },
}

impl fmt::Debug for Seat {
    /// The resume secret is redacted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Seat::Doctor => f.write_str("Doctor"),
            Seat::Patient { resume } => f
                .debug_struct("Patient")
                .field("resume", &resume.as_ref().map(|_| "***"))
                .finish(),
        }
    }
}

/// What the runtime feeds a [`Room`].
#[derive(Clone, PartialEq, Eq)]
pub enum Input {
    /// An authenticated connection (its `hello` was accepted) asks for a seat.
    Join {
        /// The connection.
        conn: ConnId,
        /// The seat asked for.
        seat: Seat,
        /// A fresh random resume secret (base64url of 32 bytes) made by the
        /// runtime; used if the patient seat needs a new one.
        fresh_resume: String,
        /// STUN/TURN servers for this connection's `welcome`.
        ice_servers: Vec<IceServer>,
    },
    /// A decoded message from a connection that joined.
    Message {
        /// The connection.
        conn: ConnId,
        /// The message.
        msg: ClientMsg,
    },
    /// The connection's socket closed (or the runtime gave up on it). Closing
    /// a connection the room does not know is a no-op.
    Closed {
        /// The connection.
        conn: ConnId,
    },
}

impl fmt::Debug for Input {
    /// The fresh resume secret is redacted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Input::Join {
                conn,
                seat,
                ice_servers,
                ..
            } => f
                .debug_struct("Join")
                .field("conn", conn)
                .field("seat", seat)
                .field("fresh_resume", &"***")
                .field("ice_servers", ice_servers)
                .finish(),
            Input::Message { conn, msg } => f
                .debug_struct("Message")
                .field("conn", conn)
                .field("msg", msg)
                .finish(),
            Input::Closed { conn } => f.debug_struct("Closed").field("conn", conn).finish(),
        }
    }
}

/// What a [`Room`] asks the runtime to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send `msg` on `conn`.
    Send {
        /// The connection.
        conn: ConnId,
        /// The message.
        msg: ServerMsg,
    },
    /// Close `conn` (after sending what was queued before). The room has
    /// already forgotten it; a later [`Input::Closed`] for it is a no-op.
    Close {
        /// The connection.
        conn: ConnId,
    },
    /// The consultation's state changed; persist it.
    StateChanged(State),
}

/// Runtime misuse of a [`Room`]. Peer mistakes are never errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RoomError {
    /// A message for a connection that never joined or that the room already
    /// closed (a message racing its connection's close; safe to ignore).
    #[error("{conn} is not a connection of this room")]
    UnknownConnection {
        /// The connection.
        conn: ConnId,
    },
    /// A join for a connection that already holds a seat here.
    #[error("{conn} already joined this room")]
    DuplicateConnection {
        /// The connection.
        conn: ConnId,
    },
}

/// Per-connection state.
#[derive(Debug)]
struct Conn {
    role: Role,
    /// Time of the join or of the last message (idle timeout).
    last_input: Instant,
    /// GCRA theoretical arrival time (rate limit).
    tat: Instant,
    /// Sealed messages sent while waiting.
    knocks: u32,
    /// Sent `connected` (its DTLS transport is up).
    connected: bool,
    /// This seat's STUN/TURN servers; a patient receives them only once
    /// admitted.
    ice_servers: Vec<IceServer>,
    /// The media path the seat reported with `connected`.
    path: Option<MediaPath>,
}

impl Conn {
    fn new(role: Role, now: Instant, ice_servers: Vec<IceServer>) -> Conn {
        Conn {
            role,
            last_input: now,
            tat: now,
            knocks: 0,
            connected: false,
            ice_servers,
            path: None,
        }
    }

    /// Token bucket as GCRA: `rate` per second sustained, `burst` at once.
    fn allow(&mut self, now: Instant, rate: u32, burst: u32) -> bool {
        let interval = Duration::from_secs(1) / rate.max(1);
        let tolerance = interval.saturating_mul(burst.max(1) - 1);
        let tat = self.tat.max(now);
        if tat.saturating_duration_since(now) > tolerance {
            return false;
        }
        self.tat = tat.checked_add(interval).unwrap_or(tat);
        true
    }
}

/// One consultation: two seats, its state, and the relay between the seats.
pub struct Room {
    consultation: String,
    state: State,
    expires_at: Instant,
    config: RoomConfig,
    conns: BTreeMap<ConnId, Conn>,
    doctor: Option<ConnId>,
    patient: Option<ConnId>,
    /// The patient seat's resume secret (memory only).
    resume: Option<Zeroizing<String>>,
    /// The latest knock of the waiting patient, for a doctor who joins later.
    knock: Option<SealedEnvelope>,
    out: VecDeque<Output>,
}

impl fmt::Debug for Room {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Room")
            .field("consultation", &self.consultation)
            .field("state", &self.state)
            .field("expires_at", &self.expires_at)
            .field("doctor", &self.doctor)
            .field("patient", &self.patient)
            .field("has_resume", &self.resume.is_some())
            .field("has_knock", &self.knock.is_some())
            .field("pending_outputs", &self.out.len())
            .finish_non_exhaustive()
    }
}

impl Room {
    /// A room for `consultation` in `state` as loaded from the store, living
    /// until `expires_at`.
    ///
    /// Nobody is connected to a new room, so a stored `waiting` is turned
    /// back into `created` (with an [`Output::StateChanged`]). `admitted` and
    /// `in_call` are kept: the doctor's admission survives, but the patient's
    /// resume secret (memory only) does not, so a returning patient waits
    /// again.
    pub fn new(
        consultation: String,
        state: State,
        expires_at: Instant,
        config: RoomConfig,
    ) -> Room {
        let mut room = Room {
            consultation,
            state,
            expires_at,
            config,
            conns: BTreeMap::new(),
            doctor: None,
            patient: None,
            resume: None,
            knock: None,
            out: VecDeque::new(),
        };
        if state == State::Waiting {
            room.set_state(State::Created);
        }
        room
    }

    /// The consultation id.
    pub fn consultation(&self) -> &str {
        &self.consultation
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The path of the call's media as the seats reported it: `Relay` if
    /// either side goes through a relay, `Direct` if both report direct,
    /// `None` when unknown.
    pub fn media_path(&self) -> Option<MediaPath> {
        let paths: Vec<Option<MediaPath>> = [self.doctor, self.patient]
            .into_iter()
            .map(|id| id.and_then(|id| self.conns.get(&id)).and_then(|c| c.path))
            .collect();
        if paths.contains(&Some(MediaPath::Relay)) {
            Some(MediaPath::Relay)
        } else if paths.iter().all(|p| *p == Some(MediaPath::Direct)) {
            Some(MediaPath::Direct)
        } else {
            None
        }
    }

    /// When the consultation's lifetime ends.
    pub fn expires_at(&self) -> Instant {
        self.expires_at
    }

    /// `true` in a terminal state with no connection left: once its outputs
    /// are drained, the runtime may drop the room.
    pub fn is_finished(&self) -> bool {
        self.state.is_terminal() && self.conns.is_empty()
    }

    /// The connections holding a seat.
    pub fn connections(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.conns.keys().copied()
    }

    /// The seat `conn` holds, if any.
    pub fn seat_of(&self, conn: ConnId) -> Option<Role> {
        self.conns.get(&conn).map(|c| c.role)
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`Room::handle_timeout`] must be called next: the end of the
    /// lifetime or the earliest idle deadline. `None` when terminal.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state.is_terminal() {
            return None;
        }
        self.conns
            .values()
            .filter_map(|c| c.last_input.checked_add(self.config.idle_timeout))
            .chain(std::iter::once(self.expires_at))
            .min()
    }

    /// Fires what is due at `now`: the lifetime (`ended{expired}` to both,
    /// close, state `expired`) and idle connections (`idle_timeout`, close).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.check_expiry(now);
        let idle: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                c.last_input
                    .checked_add(self.config.idle_timeout)
                    .is_some_and(|deadline| deadline <= now)
            })
            .map(|(id, _)| *id)
            .collect();
        for conn in idle {
            self.fail(conn, ErrorCode::IdleTimeout);
        }
    }

    /// Feeds one input at `now`. The lifetime is checked first, so nothing
    /// joins or passes after `expires_at` even if a timeout was missed.
    pub fn handle_input(&mut self, now: Instant, input: Input) -> Result<(), RoomError> {
        self.check_expiry(now);
        match input {
            Input::Join {
                conn,
                seat,
                fresh_resume,
                ice_servers,
            } => self.join(now, conn, seat, fresh_resume, ice_servers),
            Input::Message { conn, msg } => self.message(now, conn, msg),
            Input::Closed { conn } => {
                self.release(conn);
                Ok(())
            }
        }
    }

    // --- joins -------------------------------------------------------------

    fn join(
        &mut self,
        now: Instant,
        conn: ConnId,
        seat: Seat,
        fresh_resume: String,
        ice_servers: Vec<IceServer>,
    ) -> Result<(), RoomError> {
        if self.conns.contains_key(&conn) {
            return Err(RoomError::DuplicateConnection { conn });
        }
        if self.state.is_terminal() {
            match seat {
                Seat::Doctor => {
                    let reason = match self.state {
                        State::Expired => EndReason::Expired,
                        _ => EndReason::DoctorEnded,
                    };
                    self.send(conn, ServerMsg::Ended { reason });
                }
                // The token of an ended or expired consultation is refused
                // like any other bad token.
                Seat::Patient { .. } => self.send(conn, ErrorCode::BadToken.to_server_msg()),
            }
            self.out.push_back(Output::Close { conn });
            return Ok(());
        }
        match seat {
            Seat::Doctor => self.join_doctor(now, conn, ice_servers),
            Seat::Patient { resume } => {
                self.join_patient(now, conn, resume, fresh_resume, ice_servers)
            }
        }
        Ok(())
    }

    fn join_doctor(&mut self, now: Instant, conn: ConnId, ice_servers: Vec<IceServer>) {
        if let Some(old) = self.doctor {
            self.kick(old, ErrorCode::Replaced);
        }
        self.conns
            .insert(conn, Conn::new(Role::Doctor, now, ice_servers.clone()));
        self.doctor = Some(conn);
        self.welcome(conn, Role::Doctor, None, ice_servers);
        if self.state == State::Waiting {
            self.send(conn, ServerMsg::PatientWaiting);
            if let Some(knock) = self.knock.clone() {
                self.send(conn, ServerMsg::Sealed(knock));
            }
        }
        if self.state.is_admitted() {
            self.notify(Role::Patient, ServerMsg::PeerJoined);
        }
    }

    fn join_patient(
        &mut self,
        now: Instant,
        conn: ConnId,
        resume: Option<String>,
        fresh_resume: String,
        ice_servers: Vec<IceServer>,
    ) {
        let resume_ok = match (&resume, &self.resume) {
            (Some(given), Some(secret)) => ct_eq(given.as_bytes(), secret.as_bytes()),
            _ => false,
        };
        if let Some(old) = self.patient {
            // The seat is held by a live connection: only its resume secret
            // takes it over, keeping the state (and admission).
            if !resume_ok {
                self.refuse(conn, ErrorCode::SeatTaken);
                return;
            }
            self.kick(old, ErrorCode::Replaced);
            self.seat_patient(now, conn, ice_servers);
            if self.state.is_admitted() {
                self.notify(Role::Doctor, ServerMsg::PeerJoined);
            }
            return;
        }
        if self.state.is_admitted() && resume_ok {
            // Back on the same device after a drop: admission is kept.
            self.seat_patient(now, conn, ice_servers);
            self.notify(Role::Doctor, ServerMsg::PeerJoined);
            return;
        }
        // A free seat without a valid resume: a new patient session, which
        // waits to be admitted (again).
        self.resume = Some(Zeroizing::new(fresh_resume));
        self.knock = None;
        for c in self.conns.values_mut() {
            c.connected = false;
        }
        self.set_state(State::Waiting);
        self.seat_patient(now, conn, ice_servers);
        self.notify(Role::Doctor, ServerMsg::PatientWaiting);
    }

    fn seat_patient(&mut self, now: Instant, conn: ConnId, ice_servers: Vec<IceServer>) {
        // Relay credentials only for an admitted patient; a waiting one gets
        // them with `admitted`.
        let now_servers = if self.state.is_admitted() {
            ice_servers.clone()
        } else {
            Vec::new()
        };
        self.conns
            .insert(conn, Conn::new(Role::Patient, now, ice_servers));
        self.patient = Some(conn);
        let resume = self.resume.as_ref().map(|r| r.to_string());
        self.welcome(conn, Role::Patient, resume, now_servers);
    }

    fn welcome(
        &mut self,
        conn: ConnId,
        role: Role,
        resume: Option<String>,
        ice_servers: Vec<IceServer>,
    ) {
        let peer_present = self.seat(role.other()).is_some();
        self.send(
            conn,
            ServerMsg::Welcome {
                role,
                consultation: self.consultation.clone(),
                state: self.state,
                peer_present,
                resume,
                ice_servers,
            },
        );
    }

    // --- messages ----------------------------------------------------------

    fn message(&mut self, now: Instant, conn: ConnId, msg: ClientMsg) -> Result<(), RoomError> {
        let (rate, burst) = (self.config.rate_per_sec, self.config.rate_burst);
        let Some(c) = self.conns.get_mut(&conn) else {
            return Err(RoomError::UnknownConnection { conn });
        };
        c.last_input = now;
        if !c.allow(now, rate, burst) {
            self.fail(conn, ErrorCode::RateLimited);
            return Ok(());
        }
        let role = c.role;
        match msg {
            ClientMsg::Ping => self.send(conn, ServerMsg::Pong),
            ClientMsg::Sealed(env) => self.sealed(conn, role, env),
            ClientMsg::Admit if role == Role::Doctor && self.state == State::Waiting => {
                self.knock = None;
                self.set_state(State::Admitted);
                for seat in [self.doctor, self.patient].into_iter().flatten() {
                    let ice_servers = self
                        .conns
                        .get(&seat)
                        .map(|c| c.ice_servers.clone())
                        .unwrap_or_default();
                    self.send(seat, ServerMsg::Admitted { ice_servers });
                }
            }
            ClientMsg::Connected { path } if self.state.is_admitted() => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.connected = true;
                    c.path = path;
                }
                let connected = |id: Option<ConnId>| {
                    id.and_then(|id| self.conns.get(&id))
                        .is_some_and(|c| c.connected)
                };
                if self.state == State::Admitted
                    && connected(self.doctor)
                    && connected(self.patient)
                {
                    self.set_state(State::InCall);
                }
            }
            ClientMsg::End if role == Role::Doctor => self.end(EndReason::DoctorEnded),
            ClientMsg::Leave if role == Role::Patient => {
                // A deliberate leave gives up the resume secret: coming back
                // means waiting for admission again.
                self.resume = None;
                self.out.push_back(Output::Close { conn });
                self.release(conn);
            }
            ClientMsg::Hello(_)
            | ClientMsg::Admit
            | ClientMsg::Connected { .. }
            | ClientMsg::End
            | ClientMsg::Leave => self.send(conn, ErrorCode::Unexpected.to_server_msg()),
        }
        Ok(())
    }

    fn sealed(&mut self, conn: ConnId, role: Role, env: SealedEnvelope) {
        match (role, self.state) {
            (Role::Patient, State::Waiting) => {
                let max = self.config.max_knocks;
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                if c.knocks >= max {
                    self.fail(conn, ErrorCode::RateLimited);
                    return;
                }
                c.knocks += 1;
                self.notify(Role::Doctor, ServerMsg::Sealed(env.clone()));
                self.knock = Some(env);
            }
            // Not queued: the sender starts a fresh epoch when the other seat
            // (re)joins.
            (_, State::Admitted | State::InCall) => {
                self.notify(role.other(), ServerMsg::Sealed(env));
            }
            _ => self.send(conn, ErrorCode::Unexpected.to_server_msg()),
        }
    }

    // --- helpers -----------------------------------------------------------

    fn send(&mut self, conn: ConnId, msg: ServerMsg) {
        self.out.push_back(Output::Send { conn, msg });
    }

    /// The connection holding the `role` seat, if any.
    fn seat(&self, role: Role) -> Option<ConnId> {
        match role {
            Role::Doctor => self.doctor,
            Role::Patient => self.patient,
        }
    }

    /// Sends `msg` to the `role` seat if someone holds it.
    fn notify(&mut self, role: Role, msg: ServerMsg) {
        if let Some(conn) = self.seat(role) {
            self.send(conn, msg);
        }
    }

    fn set_state(&mut self, state: State) {
        if self.state != state {
            self.state = state;
            self.out.push_back(Output::StateChanged(state));
        }
    }

    /// Forgets `conn` and frees its seat pointer; returns its role.
    fn remove(&mut self, conn: ConnId) -> Option<Role> {
        let c = self.conns.remove(&conn)?;
        if self.doctor == Some(conn) {
            self.doctor = None;
        }
        if self.patient == Some(conn) {
            self.patient = None;
        }
        Some(c.role)
    }

    /// Forgets `conn`; if it held a seat, the seat is vacated.
    fn release(&mut self, conn: ConnId) {
        if let Some(role) = self.remove(conn) {
            self.vacated(role);
        }
    }

    /// Sends the fatal error `code` to `conn` and closes it.
    fn refuse(&mut self, conn: ConnId, code: ErrorCode) {
        self.send(conn, code.to_server_msg());
        self.out.push_back(Output::Close { conn });
    }

    /// Refuses `conn` and forgets it; its seat stays taken by whoever
    /// replaces it (no `peer_left`).
    fn kick(&mut self, conn: ConnId, code: ErrorCode) {
        self.refuse(conn, code);
        self.remove(conn);
    }

    /// Refuses `conn` and frees its seat.
    fn fail(&mut self, conn: ConnId, code: ErrorCode) {
        self.refuse(conn, code);
        self.release(conn);
    }

    /// The seat `role` just became free.
    fn vacated(&mut self, role: Role) {
        match role {
            Role::Patient if self.state == State::Waiting => {
                self.knock = None;
                self.set_state(State::Created);
            }
            _ if self.state.is_admitted() => self.notify(role.other(), ServerMsg::PeerLeft),
            _ => {}
        }
    }

    fn check_expiry(&mut self, now: Instant) {
        if !self.state.is_terminal() && now >= self.expires_at {
            self.end(EndReason::Expired);
        }
    }

    /// `ended{reason}` to everyone, close everyone, terminal state.
    fn end(&mut self, reason: EndReason) {
        // The state change comes first, so a runtime that records it before
        // delivering the rest has the end stored before anyone hears of it.
        self.set_state(match reason {
            EndReason::DoctorEnded => State::Ended,
            EndReason::Expired => State::Expired,
        });
        let conns: Vec<ConnId> = self.conns.keys().copied().collect();
        for conn in conns {
            self.send(conn, ServerMsg::Ended { reason });
            self.out.push_back(Output::Close { conn });
        }
        self.conns.clear();
        self.doctor = None;
        self.patient = None;
        self.resume = None;
        self.knock = None;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn gcra_allows_burst_then_rate() {
        let t0 = Instant::now();
        let mut c = Conn::new(Role::Doctor, t0, Vec::new());
        for _ in 0..3 {
            assert!(c.allow(t0, 10, 3));
        }
        assert!(!c.allow(t0, 10, 3));
        // 100 ms later exactly one more is allowed.
        let t1 = t0 + Duration::from_millis(100);
        assert!(c.allow(t1, 10, 3));
        assert!(!c.allow(t1, 10, 3));
        // Zero config values do not divide by zero.
        let mut z = Conn::new(Role::Doctor, t0, Vec::new());
        assert!(z.allow(t0, 0, 0));
        assert!(!z.allow(t0, 0, 0));
    }

    #[test]
    fn stored_waiting_becomes_created() {
        let mut r = Room::new(
            "c".into(),
            State::Waiting,
            Instant::now() + Duration::from_secs(60),
            RoomConfig::default(),
        );
        assert_eq!(r.state(), State::Created);
        assert_eq!(r.poll_output(), Some(Output::StateChanged(State::Created)));
        assert_eq!(r.poll_output(), None);
    }

    #[test]
    fn debug_hides_secrets() {
        let input = Input::Join {
            conn: ConnId(1),
            seat: Seat::Patient {
                resume: Some("SECRET".into()),
            },
            fresh_resume: "SECRET".into(),
            ice_servers: vec![],
        };
        assert!(!format!("{input:?}").contains("SECRET"));
    }
}
