//! The call agent: one task per call that owns the signalling socket, the
//! sealing state and the native peer.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use telenode_signaling::msg::{
    self, ClientMsg, EndReason, ErrorCode, Hello, IceServer, MediaPath, Role, ServerMsg,
};
use telenode_signaling::sas;
use telenode_signaling::seal::{Direction, LinkKey, Opener, Payload, Sealer};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::tungstenite::Message;

use super::{ApiClient, PatientLink, Trust, recv_opt};
use crate::auth::random_bytes;
use crate::peer::{
    AudioOutput, AudioSource, CandidateInit, CandidateKind, DeviceKind, IceServerConfig,
    MediaStats, MediaTap, Peer, PeerEvent, PeerOptions, VideoSource,
};

/// Which seat the agent takes, with its credentials.
#[derive(Debug, Clone)]
pub enum Seat {
    Doctor {
        consultation: String,
        /// Follows the API client's session rotations.
        session: crate::client::SessionHandle,
    },
    Patient {
        token: String,
        /// Shown to the doctor before admission; travels sealed.
        name: Option<String>,
    },
}

/// How to run a call.
#[derive(Debug)]
pub struct CallOptions {
    pub ws_url: String,
    pub seat: Seat,
    pub link_key: LinkKey,
    /// Doctor: admit the first patient who knocks.
    pub auto_admit: bool,
    /// Hang up this long after the media connected; `None` waits for the
    /// other side or a command.
    pub call_duration: Option<Duration>,
    /// Give up when the peers have not connected this long after admission.
    pub setup_timeout: Duration,
    pub bind_ip: Option<IpAddr>,
    pub video: VideoSource,
    pub audio: AudioSource,
    /// Where the patient's audio is played.
    pub audio_output: AudioOutput,
    /// Use relay candidates only (`iceTransportPolicy: "relay"`); needs the
    /// node to hand out TURN servers.
    pub force_relay: bool,
    /// Latest pictures and mute switches for a user interface (kept across
    /// peer restarts); `None` copies no frames.
    pub media_tap: Option<MediaTap>,
    /// The certificates trusted for a `wss://` node.
    pub trust: Trust,
}

impl CallOptions {
    /// The doctor's seat of `link`, signed in as `api`: the defaults of the
    /// doctor's calls (admission by hand, no time limit, 30 s to connect, a
    /// tone for audio, any media path, no tap). Change what differs with
    /// struct update syntax.
    pub fn doctor(api: &ApiClient, link: &PatientLink, video: VideoSource) -> CallOptions {
        CallOptions {
            ws_url: api.ws_url(),
            seat: Seat::Doctor {
                consultation: link.consultation.id.clone(),
                session: api.session_handle(),
            },
            link_key: link.link_key.clone(),
            auto_admit: false,
            call_duration: None,
            setup_timeout: Duration::from_secs(30),
            bind_ip: None,
            video,
            audio: AudioSource::Tone { hz: 440.0 },
            audio_output: AudioOutput::None,
            force_relay: false,
            media_tap: None,
            trust: api.trust().clone(),
        }
    }
}

/// Why a call ended, as the agent reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "reason", content = "detail")]
pub enum EndCause {
    /// This side hung up (after `call_duration` or a hang-up command).
    Completed,
    /// The doctor ended the consultation.
    DoctorEnded,
    /// The other side said goodbye.
    PeerHungUp,
    Expired,
    /// An envelope failed to open: the signalling was tampered with. The
    /// call is stopped (fail closed).
    IntegrityError(String),
    /// The node refused us.
    Refused(String),
    SetupTimeout,
    MediaFailed(String),
    ConnectionLost,
}

impl EndCause {
    /// Machine-readable reason.
    pub fn reason(&self) -> &str {
        match self {
            EndCause::Completed => "completed",
            EndCause::DoctorEnded => "doctor_ended",
            EndCause::PeerHungUp => "peer_hung_up",
            EndCause::Expired => "expired",
            EndCause::IntegrityError(_) => "integrity_error",
            EndCause::Refused(code) => code,
            EndCause::SetupTimeout => "setup_timeout",
            EndCause::MediaFailed(_) => "media_failed",
            EndCause::ConnectionLost => "connection_lost",
        }
    }

    /// Whether this is a normal end of a call.
    pub fn is_clean(&self) -> bool {
        matches!(
            self,
            EndCause::Completed | EndCause::DoctorEnded | EndCause::PeerHungUp
        )
    }
}

/// What the agent reports while a call runs.
#[derive(Debug, Clone)]
pub enum AgentEvent {
    Joined {
        consultation: String,
    },
    PatientWaiting,
    /// The patient's sealed greeting, with the name they typed if any.
    Knock {
        name: Option<String>,
    },
    Admitted,
    Connected {
        local_candidate: String,
        remote_candidate: String,
        sas: String,
    },
    FirstVideoFrame {
        width: u32,
        height: u32,
    },
    Stats(MediaStats),
    PeerLeft,
    /// A device opened, failed to open, or stopped (see
    /// [`PeerEvent::Device`](crate::peer::PeerEvent::Device)).
    Device {
        kind: DeviceKind,
        working: bool,
        detail: String,
    },
    /// The media path stopped answering (a network change or outage); the
    /// agent restarts ICE, and a fresh peer if that is not enough. A
    /// `Connected` follows when the media is back.
    MediaInterrupted,
    /// The signalling connection dropped during the call; the media goes on
    /// and the agent reconnects.
    SignallingLost,
    Ended(EndCause),
}

impl AgentEvent {
    /// The event as one automation line (`telenode doctor --headless`, the
    /// window's `TELENODE_GUI_EVENTS`).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            AgentEvent::Joined { .. } => json!({"event": "joined"}),
            AgentEvent::PatientWaiting => json!({"event": "patient_waiting"}),
            AgentEvent::Knock { name } => json!({"event": "knock", "name": name}),
            AgentEvent::Admitted => json!({"event": "admitted"}),
            AgentEvent::Connected {
                local_candidate,
                remote_candidate,
                sas,
            } => json!({
                "event": "connected",
                "local_candidate": local_candidate,
                "remote_candidate": remote_candidate,
                "sas": sas,
            }),
            AgentEvent::FirstVideoFrame { width, height } => {
                json!({"event": "first_video_frame", "width": width, "height": height})
            }
            AgentEvent::MediaInterrupted => json!({"event": "media_interrupted"}),
            AgentEvent::Stats(s) => {
                let mut v = serde_json::to_value(s).unwrap_or_else(|_| json!({}));
                v["event"] = "stats".into();
                v
            }
            AgentEvent::PeerLeft => json!({"event": "peer_left"}),
            AgentEvent::Device {
                kind,
                working,
                detail,
            } => json!({"event": "device", "device": kind, "working": working, "detail": detail}),
            AgentEvent::SignallingLost => json!({"event": "signalling_lost"}),
            AgentEvent::Ended(cause) => json!({"event": "ended", "reason": cause.reason()}),
        }
    }
}

/// Commands into a running agent.
#[derive(Debug)]
enum AgentCmd {
    Admit,
    HangUp,
}

/// A running call.
#[derive(Debug)]
pub struct CallAgent {
    cmds: mpsc::UnboundedSender<AgentCmd>,
    task: tokio::task::JoinHandle<()>,
}

impl CallAgent {
    /// Connects to the node and starts the call task.
    pub async fn start(
        opts: CallOptions,
    ) -> anyhow::Result<(CallAgent, mpsc::UnboundedReceiver<AgentEvent>)> {
        let ws = connect(&opts.ws_url, &opts.trust, CONNECT_TIMEOUT)
            .await
            .context("connecting to the node's signalling socket")?;
        let (events_tx, events) = mpsc::unbounded_channel();
        let (cmds, cmd_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut run = Run::new(opts, events_tx.clone());
            let cause = run.run(ws, cmd_rx).await;
            if let Some(peer) = run.peer.take() {
                peer.close().await;
            }
            let _ = events_tx.send(AgentEvent::Ended(cause));
        });
        Ok((CallAgent { cmds, task }, events))
    }

    /// Doctor: admit the waiting patient.
    pub fn admit(&self) {
        let _ = self.cmds.send(AgentCmd::Admit);
    }

    /// Hang up.
    pub fn hang_up(&self) {
        let _ = self.cmds.send(AgentCmd::HangUp);
    }

    /// Waits for the call task to finish.
    pub async fn join(self) {
        let _ = self.task.await;
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

type Socket = (
    futures_util::stream::SplitSink<Ws, Message>,
    futures_util::stream::SplitStream<Ws>,
);

/// Signalling is gone during a call: when to try again, when to give up.
#[derive(Debug)]
struct Reconnect {
    next_try: Instant,
    backoff: Duration,
    give_up_at: Instant,
}

/// How long a call runs on without signalling before the agent gives up.
const SIGNALLING_GRACE: Duration = Duration::from_secs(300);
/// How long the media may stay interrupted before the call ends.
const MEDIA_GRACE: Duration = Duration::from_secs(90);
/// A signalling socket silent this long after a probe is taken for dead.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// The first signalling connection that takes longer is abandoned.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A reconnection that takes longer is abandoned (and tried again): it
/// runs inside the call's loop, and a lost SYN is retried after 1 s.
const RECONNECT_TIMEOUT: Duration = Duration::from_secs(4);
/// After an answer, how long a restart gets to work before another.
const RESTART_PATIENCE: Duration = Duration::from_secs(10);
/// While the media is interrupted, the doctor offers a restart this often.
const RESTART_EVERY: Duration = Duration::from_secs(4);

/// The media path is down during a call.
#[derive(Debug)]
struct Recovery {
    since: Instant,
    /// Doctor: when to offer the next restart; `None` until the node is
    /// known to be reachable (a path that comes back by itself needs
    /// none, and a restart would only wait for signalling).
    next_offer: Option<Instant>,
    /// ICE failed: the next offer comes from a fresh peer.
    fresh_peer: bool,
    /// ICE failed since the last offer: offer now, whatever is pending.
    offer_now: bool,
}

impl Reconnect {
    fn new() -> Reconnect {
        let now = Instant::now();
        Reconnect {
            next_try: now + Duration::from_millis(250),
            backoff: Duration::from_millis(500),
            give_up_at: now + SIGNALLING_GRACE,
        }
    }

    fn failed(&mut self) {
        self.next_try = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(Duration::from_secs(1));
    }
}

struct Run {
    opts: CallOptions,
    events: mpsc::UnboundedSender<AgentEvent>,
    role: Role,
    consultation: Option<String>,
    sealer: Option<Sealer>,
    opener: Option<Opener>,
    ice_servers: Vec<IceServer>,
    peer: Option<Peer>,
    peer_events: Option<mpsc::UnboundedReceiver<PeerEvent>>,
    local_sdp: Option<String>,
    remote_sdp: Option<String>,
    connected_at: Option<Instant>,
    setup_deadline: Option<Instant>,
    admitted: bool,
    knocked: bool,
    outbox: Vec<ClientMsg>,
    /// The patient seat's resume secret, for reconnecting.
    resume: Option<String>,
    reconnect: Option<Reconnect>,
    recovery: Option<Recovery>,
    /// Doctor: when the offer still waiting for its answer was sent.
    offer_pending: Option<Instant>,
    /// Doctor: when the last offer was sent.
    last_offer: Option<Instant>,
    /// The node welcomed us on the current socket (offers sealed before
    /// that would belong to the old epoch).
    welcomed: bool,
    /// A probe of the signalling socket is out: silence until then means
    /// the socket is dead (a TCP connection stuck after an outage).
    probe_deadline: Option<Instant>,
}

/// What the loop does after handling one input.
enum Flow {
    Go,
    Stop(EndCause),
}

impl Run {
    fn new(opts: CallOptions, events: mpsc::UnboundedSender<AgentEvent>) -> Run {
        let role = match opts.seat {
            Seat::Doctor { .. } => Role::Doctor,
            Seat::Patient { .. } => Role::Patient,
        };
        Run {
            opts,
            events,
            role,
            consultation: None,
            sealer: None,
            opener: None,
            ice_servers: Vec::new(),
            peer: None,
            peer_events: None,
            local_sdp: None,
            remote_sdp: None,
            connected_at: None,
            setup_deadline: None,
            admitted: false,
            knocked: false,
            outbox: Vec::new(),
            resume: None,
            reconnect: None,
            recovery: None,
            offer_pending: None,
            last_offer: None,
            welcomed: false,
            probe_deadline: None,
        }
    }

    fn emit(&self, e: AgentEvent) {
        let _ = self.events.send(e);
    }

    fn send_dir(&self) -> Direction {
        match self.role {
            Role::Doctor => Direction::DoctorToPatient,
            Role::Patient => Direction::PatientToDoctor,
        }
    }

    /// A fresh sending epoch (new connection, or the other seat re-joined).
    fn new_epoch(&mut self) {
        if let Some(c) = &self.consultation {
            self.sealer = Some(Sealer::new(
                &self.opts.link_key,
                c,
                self.send_dir(),
                random_bytes::<16>(),
            ));
        }
    }

    /// Seals a payload into the outbox.
    fn seal(&mut self, p: &Payload) -> Result<(), EndCause> {
        let sealer = self
            .sealer
            .as_mut()
            .ok_or_else(|| EndCause::Refused("no_consultation".into()))?;
        let env = sealer
            .seal(p.to_json().as_bytes())
            .map_err(|e| EndCause::MediaFailed(format!("sealing: {e}")))?;
        self.outbox.push(ClientMsg::Sealed(env));
        Ok(())
    }

    /// Seals a payload into the outbox; a failure ends the call.
    fn seal_flow(&mut self, p: &Payload) -> Flow {
        match self.seal(p) {
            Ok(()) => Flow::Go,
            Err(c) => Flow::Stop(c),
        }
    }

    fn hello(&self) -> ClientMsg {
        ClientMsg::Hello(match &self.opts.seat {
            Seat::Doctor {
                consultation,
                session,
            } => Hello::Doctor {
                consultation: consultation.clone(),
                session: session.get(),
            },
            Seat::Patient { token, .. } => Hello::Patient {
                token: token.clone(),
                resume: self.resume.clone(),
            },
        })
    }

    /// The signalling socket went away. During a call the media is peer to
    /// peer and keeps flowing: reconnect in the background. Before that,
    /// there is nothing to keep.
    fn signalling_lost(&mut self, socket: &mut Option<Socket>) -> Flow {
        *socket = None;
        self.welcomed = false;
        self.probe_deadline = None;
        // Envelopes sealed for the old connection are useless on a new one
        // (the seat starts a new epoch); the media does not need them.
        self.outbox.clear();
        if self.admitted && self.peer.is_some() {
            tracing::info!("signalling lost during the call; media continues, reconnecting");
            self.emit(AgentEvent::SignallingLost);
            self.reconnect.get_or_insert(Reconnect::new());
            Flow::Go
        } else {
            Flow::Stop(EndCause::ConnectionLost)
        }
    }

    async fn run(&mut self, ws: Ws, mut cmds: mpsc::UnboundedReceiver<AgentCmd>) -> EndCause {
        let mut socket: Option<Socket> = Some(ws.split());
        self.outbox.push(self.hello());
        let mut ping = tokio::time::interval(Duration::from_secs(20));
        let mut stats = tokio::time::interval(Duration::from_secs(1));
        loop {
            if let Some((sink, _)) = socket.as_mut() {
                let mut failed = false;
                for m in self.outbox.drain(..) {
                    if sink
                        .send(Message::Text(msg::encode_client(&m).into()))
                        .await
                        .is_err()
                    {
                        failed = true;
                        break;
                    }
                }
                if failed && let Flow::Stop(cause) = self.signalling_lost(&mut socket) {
                    return cause;
                }
            }
            let hangup_at = match (self.connected_at, self.opts.call_duration) {
                (Some(t), Some(d)) => Some(t + d),
                _ => None,
            };
            let give_up_at = self.reconnect.as_ref().map(|r| r.give_up_at);
            let media_gone_at = self.recovery.as_ref().map(|r| r.since + MEDIA_GRACE);
            let deadline = [hangup_at, self.setup_deadline, give_up_at, media_gone_at]
                .into_iter()
                .flatten()
                .min();
            let restart_at = match (&self.recovery, self.role) {
                (Some(r), Role::Doctor) => r.next_offer,
                _ => None,
            };
            let retry_at = self.reconnect.as_ref().map(|r| r.next_try);
            let flow = tokio::select! {
                // Messages that already arrived are handled before any
                // timer: a goodbye waiting in the socket beats the deadline.
                biased;
                m = next_frame(&mut socket) => match m {
                    Some(Ok(Message::Text(t))) => match msg::decode_server(t.as_str()) {
                        Ok(m) => self.on_server(m).await,
                        Err(e) => Flow::Stop(EndCause::Refused(format!("bad message from node: {e}"))),
                    },
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => self.signalling_lost(&mut socket),
                    Some(Ok(_)) => Flow::Go,
                },
                () = sleep_opt(self.probe_deadline) => {
                    self.probe_deadline = None;
                    if socket.is_some() {
                        tracing::info!("signalling socket silent after a probe; reconnecting");
                        self.signalling_lost(&mut socket)
                    } else {
                        Flow::Go
                    }
                }
                () = sleep_opt(restart_at) => self.restart_media(socket.is_some()).await,
                () = sleep_opt(retry_at) => {
                    match connect(&self.opts.ws_url, &self.opts.trust, RECONNECT_TIMEOUT).await {
                        Ok(ws) => {
                            tracing::info!("signalling reconnected");
                            socket = Some(ws.split());
                            self.reconnect = None;
                            // Hello comes first on a new connection; what was
                            // queued meanwhile belonged to the old one.
                            self.outbox.clear();
                            self.outbox.push(self.hello());
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "reconnect failed");
                            if let Some(r) = self.reconnect.as_mut() { r.failed(); }
                        }
                    }
                    Flow::Go
                }
                ev = recv_opt(&mut self.peer_events) => self.on_peer(ev),
                c = cmds.recv() => match c {
                    Some(AgentCmd::Admit) => { self.outbox.push(ClientMsg::Admit); Flow::Go }
                    Some(AgentCmd::HangUp) | None => self.hang_up(),
                },
                _ = ping.tick() => {
                    if socket.is_some() { self.outbox.push(ClientMsg::Ping); }
                    Flow::Go
                }
                _ = stats.tick(), if self.connected_at.is_some() => {
                    if let Some(p) = &self.peer { self.emit(AgentEvent::Stats(p.stats())); }
                    Flow::Go
                }
                () = sleep_opt(deadline) => {
                    let now = Instant::now();
                    if hangup_at.is_some_and(|t| t <= now) {
                        self.hang_up()
                    } else if give_up_at.is_some_and(|t| t <= now) {
                        Flow::Stop(EndCause::ConnectionLost)
                    } else if media_gone_at.is_some_and(|t| t <= now) {
                        Flow::Stop(EndCause::MediaFailed("the media path did not come back".into()))
                    } else {
                        Flow::Stop(EndCause::SetupTimeout)
                    }
                }
            };
            if let Flow::Stop(cause) = flow {
                // Say goodbye (sealed to the peer, plainly to the node) as far as
                // the socket still takes it.
                if !matches!(cause, EndCause::ConnectionLost | EndCause::Refused(_)) {
                    let reason = cause.reason().to_owned();
                    let _ = self.seal(&Payload::Bye { reason });
                    match self.role {
                        Role::Doctor if cause == EndCause::Completed => {
                            self.outbox.push(ClientMsg::End)
                        }
                        Role::Patient => self.outbox.push(ClientMsg::Leave),
                        _ => {}
                    }
                }
                if let Some((mut sink, mut stream)) = socket.take() {
                    for m in self.outbox.drain(..) {
                        let _ = sink
                            .send(Message::Text(msg::encode_client(&m).into()))
                            .await;
                    }
                    let _ = sink.close().await;
                    // Wait for the node's close (reading what still arrives):
                    // a socket closed with unread data is reset, and a reset
                    // can discard the goodbye before the node has read it.
                    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
                        while let Some(Ok(_)) = stream.next().await {}
                    })
                    .await;
                }
                return cause;
            }
        }
    }

    fn hang_up(&mut self) -> Flow {
        Flow::Stop(EndCause::Completed)
    }

    async fn on_server(&mut self, m: ServerMsg) -> Flow {
        match m {
            ServerMsg::Welcome {
                consultation,
                ice_servers,
                resume,
                state,
                peer_present,
                ..
            } => {
                if let Seat::Doctor {
                    consultation: mine, ..
                } = &self.opts.seat
                    && *mine != consultation
                {
                    return Flow::Stop(EndCause::IntegrityError(
                        "node answered for another consultation".into(),
                    ));
                }
                self.welcomed = true;
                // A reconnect keeps the opener: epochs seen before stay refused.
                if self.opener.is_none() || self.consultation.as_deref() != Some(&consultation) {
                    self.opener = Some(Opener::new(
                        &self.opts.link_key,
                        &consultation,
                        self.send_dir().opposite(),
                    ));
                }
                self.consultation = Some(consultation.clone());
                self.ice_servers = ice_servers;
                if resume.is_some() {
                    self.resume = resume;
                }
                self.new_epoch();
                self.emit(AgentEvent::Joined { consultation });
                if let Seat::Patient { name, .. } = &self.opts.seat {
                    let p = Payload::Hello { name: name.clone() };
                    if let Err(c) = self.seal(&p) {
                        return Flow::Stop(c);
                    }
                }
                // The doctor came back to a call in progress: renegotiate over
                // the new signalling connection (the patient re-keys on
                // `peer_joined` and waits for this offer).
                if self.role == Role::Doctor
                    && state.is_admitted()
                    && peer_present
                    && self.peer.is_some()
                {
                    return self.start_call().await;
                }
                Flow::Go
            }
            ServerMsg::PatientWaiting => {
                self.emit(AgentEvent::PatientWaiting);
                if self.opts.auto_admit {
                    self.outbox.push(ClientMsg::Admit);
                }
                Flow::Go
            }
            ServerMsg::Admitted { ice_servers } => {
                if !ice_servers.is_empty() {
                    self.ice_servers = ice_servers;
                }
                // Anything sealed before admission may have been dropped by the
                // node; a fresh epoch keeps the sequence without gaps.
                self.new_epoch();
                self.admitted = true;
                self.emit(AgentEvent::Admitted);
                self.setup_deadline = Some(Instant::now() + self.opts.setup_timeout);
                if self.role == Role::Doctor {
                    return self.start_call().await;
                }
                Flow::Go
            }
            ServerMsg::PeerJoined => {
                self.new_epoch();
                if self.role == Role::Doctor && self.admitted {
                    // The patient came back (a reload or a new connection): start
                    // the media afresh.
                    return self.start_call().await;
                }
                Flow::Go
            }
            ServerMsg::PeerLeft => {
                self.emit(AgentEvent::PeerLeft);
                Flow::Go
            }
            ServerMsg::Sealed(env) => {
                let Some(opener) = self.opener.as_mut() else {
                    return Flow::Stop(EndCause::IntegrityError(
                        "sealed message before welcome".into(),
                    ));
                };
                let plain = match opener.open(&env) {
                    Ok(p) => p,
                    Err(e) => return Flow::Stop(EndCause::IntegrityError(e.to_string())),
                };
                match std::str::from_utf8(&plain)
                    .ok()
                    .and_then(|s| Payload::from_json(s).ok())
                {
                    Some(p) => self.on_payload(p).await,
                    None => Flow::Stop(EndCause::IntegrityError("unreadable payload".into())),
                }
            }
            ServerMsg::Ended { reason } => Flow::Stop(match reason {
                EndReason::DoctorEnded if self.role == Role::Doctor => EndCause::Completed,
                EndReason::DoctorEnded => EndCause::DoctorEnded,
                EndReason::Expired => EndCause::Expired,
                #[allow(unreachable_patterns)]
                _ => EndCause::DoctorEnded,
            }),
            ServerMsg::Error { code, .. } if code.is_fatal() => {
                Flow::Stop(EndCause::Refused(code.as_str().to_owned()))
            }
            ServerMsg::Error { code, .. } => {
                tracing::debug!(code = code.as_str(), "node rejected a message");
                if code == ErrorCode::Unexpected {
                    Flow::Go
                } else {
                    Flow::Stop(EndCause::Refused(code.as_str().to_owned()))
                }
            }
            ServerMsg::Pong => {
                // The answer to our probe (or a keep-alive): the socket is
                // alive. While the media is down, that means only the media
                // path broke: restart it now.
                self.probe_deadline = None;
                if let Some(r) = self.recovery.as_mut()
                    && r.next_offer.is_none()
                {
                    r.next_offer = Some(Instant::now());
                }
                Flow::Go
            }
            #[allow(unreachable_patterns)]
            _ => Flow::Go,
        }
    }

    async fn on_payload(&mut self, p: Payload) -> Flow {
        match p {
            Payload::Hello { name } if self.role == Role::Doctor => {
                self.knocked = true;
                self.emit(AgentEvent::Knock { name });
                Flow::Go
            }
            Payload::Offer { sdp } if self.role == Role::Patient => {
                let fresh = self
                    .remote_sdp
                    .as_deref()
                    .and_then(sas::fingerprint_from_sdp)
                    != sas::fingerprint_from_sdp(&sdp);
                if fresh || self.peer.is_none() {
                    if let Some(old) = self.peer.take() {
                        old.close().await;
                    }
                    if let Err(e) = self.start_peer().await {
                        return Flow::Stop(EndCause::MediaFailed(format!("{e:#}")));
                    }
                }
                let Some(peer) = &self.peer else {
                    return Flow::Go;
                };
                let answer = match peer.apply_offer(&sdp).await {
                    Ok(a) => a,
                    Err(e) => return Flow::Stop(EndCause::MediaFailed(format!("{e:#}"))),
                };
                self.remote_sdp = Some(sdp);
                self.local_sdp = Some(answer.clone());
                self.seal_flow(&Payload::Answer { sdp: answer })
            }
            Payload::Answer { sdp } if self.role == Role::Doctor => {
                let Some(peer) = &self.peer else {
                    return Flow::Go;
                };
                self.offer_pending = None;
                if let Err(e) = peer.apply_answer(&sdp).await {
                    // While restoring the media, an answer may come for an
                    // offer a newer one replaced: nothing to do with it.
                    if self.recovery.is_some() {
                        tracing::debug!(error = %format!("{e:#}"), "stale answer ignored");
                        return Flow::Go;
                    }
                    return Flow::Stop(EndCause::MediaFailed(format!("{e:#}")));
                }
                self.remote_sdp = Some(sdp);
                Flow::Go
            }
            Payload::Candidate {
                candidate,
                sdp_mid,
                sdp_mline_index,
            } => {
                if let Some(peer) = &self.peer {
                    let c = CandidateInit {
                        candidate,
                        sdp_mid,
                        sdp_mline_index,
                    };
                    if let Err(e) = peer.add_remote_candidate(c).await {
                        tracing::debug!(error = %e, "remote candidate refused");
                    }
                }
                Flow::Go
            }
            Payload::Bye { reason } if reason == "integrity_error" => Flow::Stop(
                EndCause::IntegrityError("the other side could not verify our signalling".into()),
            ),
            Payload::Bye { .. } => Flow::Stop(EndCause::PeerHungUp),
            _ => Flow::Go,
        }
    }

    async fn start_peer(&mut self) -> anyhow::Result<()> {
        let opts = PeerOptions {
            ice_servers: self
                .ice_servers
                .iter()
                .map(|s| IceServerConfig {
                    urls: s.urls.clone(),
                    username: s.username.clone(),
                    credential: s.credential.clone(),
                })
                .collect(),
            bind_ip: self.opts.bind_ip,
            video: self.opts.video.clone(),
            audio: self.opts.audio.clone(),
            audio_output: self.opts.audio_output.clone(),
            force_relay: self.opts.force_relay,
            tap: self.opts.media_tap.clone(),
        };
        let (peer, events) = Peer::start(opts).await?;
        self.peer = Some(peer);
        self.peer_events = Some(events);
        self.connected_at = None;
        Ok(())
    }

    /// Doctor: an offer to the patient. While the media is up this is an ICE
    /// restart on the running peer (the call survives a signalling reconnect
    /// or a patient who comes back on the same connection); otherwise a new
    /// peer.
    async fn start_call(&mut self) -> Flow {
        let fresh = self.recovery.as_ref().is_some_and(|r| r.fresh_peer);
        if self.connected_at.is_some() && self.peer.is_some() && !fresh {
            return self.send_offer(true).await;
        }
        self.restart_call().await
    }

    /// The media path is down: checks that signalling is alive, and (the
    /// doctor) offers an ICE restart, or a fresh peer once ICE has failed.
    fn media_down(&mut self, failed: bool) {
        let now = Instant::now();
        if self.recovery.is_none() {
            tracing::info!("media path interrupted; restarting ICE");
            self.emit(AgentEvent::MediaInterrupted);
        }
        let r = self.recovery.get_or_insert(Recovery {
            since: now,
            next_offer: None,
            fresh_peer: false,
            offer_now: false,
        });
        if failed {
            // New sockets, bound to the interfaces as they are now; and the
            // attempt in progress, if any, is over.
            r.fresh_peer = true;
            r.offer_now = true;
            r.next_offer = Some(now);
        }
        // Is the node still there? An answer means only the media path
        // broke: then restart it at once (see `on_server`). Without a
        // socket the reconnect loop is at work already.
        if self.reconnect.is_none() {
            self.outbox.push(ClientMsg::Ping);
            self.probe_deadline.get_or_insert(now + PROBE_TIMEOUT);
        }
    }

    /// Doctor, media down: the next restart offer (once signalling is up;
    /// a reconnect offers by itself on the node's welcome).
    async fn restart_media(&mut self, signalling_up: bool) -> Flow {
        let Some(r) = self.recovery.as_mut() else {
            return Flow::Go;
        };
        r.next_offer = Some(Instant::now() + RESTART_EVERY);
        // The last attempt still has time: its answer is due, or ICE is
        // working with it — unless ICE has failed since.
        let busy = match (self.offer_pending, self.last_offer) {
            (Some(sent), _) => sent.elapsed() < RESTART_EVERY,
            (None, Some(sent)) => sent.elapsed() < RESTART_PATIENCE,
            (None, None) => false,
        };
        if !signalling_up || !self.welcomed || !self.admitted || (busy && !r.offer_now) {
            return Flow::Go;
        }
        r.offer_now = false;
        let flow = self.start_call().await;
        if let Some(r) = self.recovery.as_mut() {
            r.next_offer = Some(Instant::now() + RESTART_EVERY);
        }
        flow
    }

    /// Doctor: a brand-new peer and offer.
    async fn restart_call(&mut self) -> Flow {
        if let Some(old) = self.peer.take() {
            old.close().await;
        }
        self.remote_sdp = None;
        if let Err(e) = self.start_peer().await {
            return Flow::Stop(EndCause::MediaFailed(format!("{e:#}")));
        }
        self.send_offer(false).await
    }

    /// Doctor: an offer from the running peer (an ICE restart if asked),
    /// kept for the SAS and sealed to the patient.
    async fn send_offer(&mut self, ice_restart: bool) -> Flow {
        let Some(peer) = &self.peer else {
            return Flow::Go;
        };
        let offer = match peer.create_offer(ice_restart).await {
            Ok(o) => o,
            Err(e) => return Flow::Stop(EndCause::MediaFailed(format!("{e:#}"))),
        };
        self.local_sdp = Some(offer.clone());
        self.offer_pending = Some(Instant::now());
        self.last_offer = self.offer_pending;
        self.seal_flow(&Payload::Offer { sdp: offer })
    }

    fn on_peer(&mut self, ev: Option<PeerEvent>) -> Flow {
        let Some(ev) = ev else {
            self.peer_events = None;
            return Flow::Go;
        };
        match ev {
            PeerEvent::LocalCandidate(c) => {
                let p = Payload::Candidate {
                    candidate: c.candidate,
                    sdp_mid: c.sdp_mid,
                    sdp_mline_index: c.sdp_mline_index,
                };
                return self.seal_flow(&p);
            }
            PeerEvent::GatheringComplete => return self.seal_flow(&Payload::EndOfCandidates),
            PeerEvent::Connected { local, remote } => {
                let fps = |sdp: &Option<String>| sdp.as_deref().and_then(sas::fingerprint_from_sdp);
                let (mine, theirs) = (fps(&self.local_sdp), fps(&self.remote_sdp));
                let (doctor_fp, patient_fp) = match self.role {
                    Role::Doctor => (mine, theirs),
                    Role::Patient => (theirs, mine),
                };
                let (Some(d), Some(p)) = (doctor_fp, patient_fp) else {
                    return Flow::Stop(EndCause::IntegrityError(
                        "no DTLS fingerprint in the session descriptions".into(),
                    ));
                };
                self.setup_deadline = None;
                if self.recovery.take().is_some() {
                    tracing::info!("media path restored");
                }
                if self.connected_at.is_none() {
                    self.connected_at = Some(Instant::now());
                    let path = if local == CandidateKind::Relay || remote == CandidateKind::Relay {
                        MediaPath::Relay
                    } else {
                        MediaPath::Direct
                    };
                    self.outbox.push(ClientMsg::Connected { path: Some(path) });
                }
                self.emit(AgentEvent::Connected {
                    local_candidate: local.to_string(),
                    remote_candidate: remote.to_string(),
                    sas: sas::sas(&d, &p),
                });
            }
            PeerEvent::FirstVideoFrame { width, height } => {
                self.emit(AgentEvent::FirstVideoFrame { width, height });
            }
            PeerEvent::Device {
                kind,
                working,
                detail,
            } => self.emit(AgentEvent::Device {
                kind,
                working,
                detail,
            }),
            PeerEvent::Disconnected if self.connected_at.is_some() => self.media_down(false),
            PeerEvent::Disconnected => {}
            // A call that ran recovers; one that never connected has failed.
            PeerEvent::Failed { .. } if self.connected_at.is_some() || self.recovery.is_some() => {
                self.media_down(true)
            }
            PeerEvent::Failed { reason } => return Flow::Stop(EndCause::MediaFailed(reason)),
            #[allow(unreachable_patterns)]
            _ => {}
        }
        Flow::Go
    }
}

/// How long a closing agent waits for the node to answer its close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Opens the signalling socket, without Nagle's delay: signalling messages
/// are small and each one matters now.
async fn connect(
    url: &str,
    trust: &Trust,
    within: Duration,
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let connecting =
        tokio_tungstenite::connect_async_tls_with_config(url, None, true, Some(trust.connector()));
    let (ws, _) = tokio::time::timeout(within, connecting)
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    Ok(ws)
}

async fn next_frame(
    socket: &mut Option<Socket>,
) -> Option<Result<Message, tokio_tungstenite::tungstenite::Error>> {
    match socket {
        Some((_, stream)) => stream.next().await,
        None => std::future::pending().await,
    }
}

async fn sleep_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => sleep_until(d).await,
        None => std::future::pending().await,
    }
}
