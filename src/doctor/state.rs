//! What the doctor's window shows and what it asks for: a pure state
//! machine, fed with the doctor's actions and the network's events, drained
//! of [`Command`]s. No I/O, no clock (time is passed in), no drawing: the
//! window (`app.rs`) draws a [`State`] and the runtime bridge (`bridge.rs`)
//! carries out the commands.
//!
//! Screens: sign-in → consultations → patient link (new consultation) →
//! waiting room (a patient waits) → call → ended → consultations.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::client::{AgentEvent, ConsultationInfo, EndCause};
use crate::peer::{DeviceKind, MediaStats};

/// Which screen the window shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    SignIn,
    Consultations,
    /// A new consultation: the patient link, copy, QR code; nobody waits yet.
    Link,
    /// A patient waits: their name, admit / decline.
    WaitingRoom,
    Call,
    Ended,
}

impl Screen {
    /// A stable name for automation output.
    pub fn name(self) -> &'static str {
        match self {
            Screen::SignIn => "sign_in",
            Screen::Consultations => "consultations",
            Screen::Link => "link",
            Screen::WaitingRoom => "waiting_room",
            Screen::Call => "call",
            Screen::Ended => "ended",
        }
    }
}

/// The sign-in form, edited in place by the window.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SignInForm {
    pub node: String,
    pub login: String,
    pub password: String,
    /// The authenticator app's current code, or a recovery code.
    pub code: String,
    /// Automation: the runtime computes the code from `TELENODE_TOTP_SECRET`.
    pub code_from_secret: bool,
}

impl std::fmt::Debug for SignInForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignInForm")
            .field("node", &self.node)
            .field("login", &self.login)
            .field("password", &"***")
            .field("code", &"***")
            .finish()
    }
}

/// What the doctor does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserAction {
    SignIn,
    SignOut,
    Refresh,
    NewConsultation,
    CopyLink,
    Admit,
    Decline,
    ToggleMute,
    ToggleCamera,
    HangUp,
    /// Leave the "ended" screen.
    Done,
    /// Use this camera, microphone or speaker (a device id, `default`,
    /// `none`, or the test pattern or tone): at once in a call, and from
    /// the next consultation on.
    ChooseDevice(DeviceKind, String),
    /// End a consultation from the list (its link stops working).
    EndConsultation(String),
    DismissError,
}

/// What the runtime reports.
#[derive(Debug, Clone)]
pub enum NetEvent {
    SignedIn {
        node: String,
        login: String,
    },
    /// No saved session, or it is no longer valid.
    SessionMissing,
    SignInFailed(String),
    Consultations(Vec<ConsultationInfo>),
    /// The consultation exists and the call agent holds the doctor's seat.
    ConsultationCreated {
        id: String,
        url: String,
    },
    Agent(AgentEvent),
    /// An operation failed; shown as a dismissible error.
    Failed(String),
}

/// What the window asks the runtime (or itself) to do.
#[derive(Clone, PartialEq, Eq)]
pub enum Command {
    RestoreSession,
    SignIn {
        node: String,
        login: String,
        password: String,
        /// Empty when the runtime computes it (`code_from_secret`).
        code: String,
    },
    SignOut,
    LoadConsultations,
    NewConsultation,
    Admit,
    /// Hang up; before admission this declines the patient and ends the
    /// consultation.
    HangUp,
    SetAudioMuted(bool),
    SetVideoMuted(bool),
    /// Keep the device choices and use them for the next consultation.
    SaveDevices(DeviceChoices),
    /// Switch the running call to this device.
    SwitchDevice(DeviceKind, String),
    EndConsultation(String),
    CopyToClipboard(String),
    /// A patient arrived: draw attention (sound, window hint).
    Notify(String),
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::SignIn { node, login, .. } => f
                .debug_struct("SignIn")
                .field("node", node)
                .field("login", login)
                .field("password", &"***")
                .finish(),
            Command::CopyToClipboard(_) => f.write_str("CopyToClipboard(<link>)"),
            Command::RestoreSession => f.write_str("RestoreSession"),
            Command::SignOut => f.write_str("SignOut"),
            Command::LoadConsultations => f.write_str("LoadConsultations"),
            Command::NewConsultation => f.write_str("NewConsultation"),
            Command::Admit => f.write_str("Admit"),
            Command::HangUp => f.write_str("HangUp"),
            Command::SetAudioMuted(m) => write!(f, "SetAudioMuted({m})"),
            Command::SetVideoMuted(m) => write!(f, "SetVideoMuted({m})"),
            Command::EndConsultation(id) => write!(f, "EndConsultation({id})"),
            Command::SaveDevices(d) => write!(f, "SaveDevices({d:?})"),
            Command::SwitchDevice(k, d) => write!(f, "SwitchDevice({k:?}, {d:?})"),
            Command::Notify(_) => f.write_str("Notify"),
        }
    }
}

/// The patient, as far as the doctor knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Patient {
    Absent,
    Waiting {
        since: Instant,
        /// The name they typed (arrives sealed; may be absent).
        name: Option<String>,
    },
    /// Admit was pressed; waiting for the node to confirm.
    Admitting {
        name: Option<String>,
    },
    Admitted {
        name: Option<String>,
    },
}

impl Patient {
    fn name(&self) -> Option<&str> {
        match self {
            Patient::Absent => None,
            Patient::Waiting { name, .. }
            | Patient::Admitting { name }
            | Patient::Admitted { name } => name.as_deref(),
        }
    }
}

/// The running call's view.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallView {
    pub connected_at: Option<Instant>,
    /// Six digits, for reading aloud.
    pub sas: Option<String>,
    pub local_candidate: Option<String>,
    pub remote_candidate: Option<String>,
    pub stats: Option<MediaStats>,
    /// Packets lost during the last stats interval.
    pub lost_last_interval: Option<u64>,
    pub remote_video_size: Option<(u32, u32)>,
    pub muted: bool,
    pub camera_off: bool,
    /// The patient's connection went away (they may come back).
    pub peer_left: bool,
    /// The link to the node dropped; media continues, reconnecting.
    pub signalling_lost: bool,
    /// The media path stopped answering; telenode is restoring it.
    pub media_interrupted: bool,
    /// The connection was rebuilt with new keys: the security code shown
    /// now differs from the one read aloud before.
    pub sas_changed: bool,
    /// The latest word on each device the call uses.
    pub devices: Vec<DeviceNote>,
}

/// What the call said about one of its devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceNote {
    pub kind: DeviceKind,
    pub working: bool,
    /// The device's name when working, else what is wrong and what is sent
    /// instead.
    pub detail: String,
}

impl CallView {
    /// The latest note on `kind`, if the call said anything about it.
    pub fn device(&self, kind: DeviceKind) -> Option<&DeviceNote> {
        self.devices.iter().find(|d| d.kind == kind)
    }
}

/// The devices the doctor chose (as `--camera` etc. take them; empty is
/// the system's default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceChoices {
    pub camera: String,
    pub microphone: String,
    pub speaker: String,
}

impl DeviceChoices {
    fn slot(&mut self, kind: DeviceKind) -> &mut String {
        match kind {
            DeviceKind::Camera => &mut self.camera,
            DeviceKind::Microphone => &mut self.microphone,
            DeviceKind::Speaker => &mut self.speaker,
        }
    }

    /// The choice for `kind`.
    pub fn get(&self, kind: DeviceKind) -> &str {
        match kind {
            DeviceKind::Camera => &self.camera,
            DeviceKind::Microphone => &self.microphone,
            DeviceKind::Speaker => &self.speaker,
        }
    }
}

/// The consultation in progress.
#[derive(Debug, Clone, PartialEq)]
pub struct Active {
    pub id: String,
    pub url: String,
    pub patient: Patient,
    pub call: CallView,
    pub link_copied: bool,
    pub declined: bool,
}

/// How the last consultation ended, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ending {
    pub reason: String,
    pub words: String,
    pub clean: bool,
}

/// Everything the window shows.
#[derive(Debug)]
pub struct State {
    pub screen: Screen,
    pub form: SignInForm,
    /// Waiting for the runtime (sign-in, creating a consultation).
    pub busy: bool,
    pub signed_in_as: Option<String>,
    pub consultations: Vec<ConsultationInfo>,
    pub active: Option<Active>,
    pub ending: Option<Ending>,
    pub error: Option<String>,
    /// No microphone: silence is sent and the mute switch is fixed.
    pub no_microphone: bool,
    /// The devices chosen for the next consultation.
    pub devices: DeviceChoices,
    commands: VecDeque<Command>,
}

impl State {
    /// A window at start. With a saved session it tries that first.
    pub fn new(form: SignInForm, saved_session: bool, no_microphone: bool) -> State {
        let mut s = State {
            screen: Screen::SignIn,
            form,
            busy: false,
            signed_in_as: None,
            consultations: Vec::new(),
            active: None,
            ending: None,
            error: None,
            no_microphone,
            devices: DeviceChoices::default(),
            commands: VecDeque::new(),
        };
        if saved_session {
            s.busy = true;
            s.commands.push_back(Command::RestoreSession);
        }
        s
    }

    /// The next command for the runtime or the window.
    pub fn poll_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }

    fn push(&mut self, c: Command) {
        self.commands.push_back(c);
    }

    /// Whether `action` makes sense now (the window greys out the rest).
    pub fn allows(&self, action: &UserAction) -> bool {
        let call = self.active.as_ref();
        match action {
            UserAction::SignIn => self.screen == Screen::SignIn && !self.busy,
            UserAction::SignOut | UserAction::Refresh | UserAction::EndConsultation(_) => {
                self.screen == Screen::Consultations && !self.busy
            }
            UserAction::NewConsultation => {
                self.screen == Screen::Consultations && !self.busy && self.active.is_none()
            }
            UserAction::CopyLink => call.is_some(),
            UserAction::Admit | UserAction::Decline => {
                self.screen == Screen::WaitingRoom
                    && call.is_some_and(|a| matches!(a.patient, Patient::Waiting { .. }))
            }
            UserAction::ToggleMute => self.screen == Screen::Call && !self.no_microphone,
            UserAction::ToggleCamera => self.screen == Screen::Call,
            UserAction::HangUp => {
                matches!(
                    self.screen,
                    Screen::Link | Screen::WaitingRoom | Screen::Call
                ) && call.is_some()
            }
            UserAction::Done => self.screen == Screen::Ended,
            // Between consultations, or switched at once in a call; not
            // while a consultation is being set up.
            UserAction::ChooseDevice(..) => {
                (self.screen == Screen::Consultations && self.active.is_none())
                    || self.screen == Screen::Call
            }
            UserAction::DismissError => self.error.is_some(),
        }
    }

    /// The doctor did something. Actions that make no sense now are ignored.
    pub fn handle_action(&mut self, _now: Instant, action: UserAction) {
        if !self.allows(&action) {
            return;
        }
        match action {
            UserAction::SignIn => {
                let node = self.form.node.trim().trim_end_matches('/').to_owned();
                let login = self.form.login.trim().to_owned();
                if !(node.starts_with("https://") || node.starts_with("http://")) {
                    self.error = Some(
                        "The node address must start with https:// (for example \
                         https://telenode.example.org)."
                            .into(),
                    );
                    return;
                }
                if login.is_empty() || self.form.password.is_empty() {
                    self.error = Some("Enter your login and your password.".into());
                    return;
                }
                if self.form.code.trim().is_empty() && !self.form.code_from_secret {
                    self.error = Some(
                        "Enter the 6-digit code from your authenticator app (or a recovery code)."
                            .into(),
                    );
                    return;
                }
                self.error = None;
                self.busy = true;
                let password = std::mem::take(&mut self.form.password);
                let code = std::mem::take(&mut self.form.code).trim().to_owned();
                self.form.node = node.clone();
                self.form.login = login.clone();
                self.push(Command::SignIn {
                    node,
                    login,
                    password,
                    code,
                });
            }
            UserAction::SignOut => {
                self.push(Command::SignOut);
                self.signed_in_as = None;
                self.consultations.clear();
                self.screen = Screen::SignIn;
            }
            UserAction::Refresh => self.push(Command::LoadConsultations),
            UserAction::NewConsultation => {
                self.busy = true;
                self.error = None;
                self.ending = None;
                self.push(Command::NewConsultation);
            }
            UserAction::CopyLink => {
                if let Some(a) = self.active.as_mut() {
                    a.link_copied = true;
                    let url = a.url.clone();
                    self.push(Command::CopyToClipboard(url));
                }
            }
            UserAction::Admit => {
                if let Some(a) = self.active.as_mut() {
                    a.patient = Patient::Admitting {
                        name: a.patient.name().map(str::to_owned),
                    };
                    self.push(Command::Admit);
                }
            }
            UserAction::Decline => {
                if let Some(a) = self.active.as_mut() {
                    a.declined = true;
                    self.push(Command::HangUp);
                }
            }
            UserAction::ToggleMute => {
                if let Some(a) = self.active.as_mut() {
                    a.call.muted = !a.call.muted;
                    let m = a.call.muted;
                    self.push(Command::SetAudioMuted(m));
                }
            }
            UserAction::ToggleCamera => {
                if let Some(a) = self.active.as_mut() {
                    a.call.camera_off = !a.call.camera_off;
                    let off = a.call.camera_off;
                    self.push(Command::SetVideoMuted(off));
                }
            }
            UserAction::HangUp => self.push(Command::HangUp),
            UserAction::ChooseDevice(kind, choice) => {
                let slot = self.devices.slot(kind);
                if *slot != choice {
                    slot.clone_from(&choice);
                    let all = self.devices.clone();
                    self.push(Command::SaveDevices(all));
                    if self.screen == Screen::Call {
                        self.push(Command::SwitchDevice(kind, choice));
                    }
                }
            }
            UserAction::Done => {
                self.active = None;
                self.screen = Screen::Consultations;
                self.push(Command::LoadConsultations);
            }
            UserAction::EndConsultation(id) => self.push(Command::EndConsultation(id)),
            UserAction::DismissError => self.error = None,
        }
    }

    /// The runtime reported something.
    pub fn handle_event(&mut self, now: Instant, event: NetEvent) {
        match event {
            NetEvent::SignedIn { node, login } => {
                self.busy = false;
                self.error = None;
                self.form.node = node;
                self.form.login = login.clone();
                self.form.password.clear();
                self.form.code.clear();
                self.signed_in_as = Some(login);
                self.screen = Screen::Consultations;
                self.push(Command::LoadConsultations);
            }
            NetEvent::SessionMissing => {
                self.busy = false;
                self.signed_in_as = None;
                self.screen = Screen::SignIn;
            }
            NetEvent::SignInFailed(message) => {
                self.busy = false;
                self.error = Some(message);
                self.screen = Screen::SignIn;
            }
            NetEvent::Consultations(list) => {
                let mut list = list;
                list.sort_by_key(|c| std::cmp::Reverse(c.created_at));
                self.consultations = list;
            }
            NetEvent::ConsultationCreated { id, url } => {
                self.busy = false;
                self.active = Some(Active {
                    id,
                    url,
                    patient: Patient::Absent,
                    call: CallView::default(),
                    link_copied: false,
                    declined: false,
                });
                self.screen = Screen::Link;
            }
            NetEvent::Failed(message) => {
                self.busy = false;
                self.error = Some(message);
            }
            NetEvent::Agent(ev) => self.on_agent(now, ev),
        }
    }

    fn on_agent(&mut self, now: Instant, ev: AgentEvent) {
        if let AgentEvent::Ended(cause) = &ev {
            let declined = self.active.as_ref().is_some_and(|a| a.declined);
            self.ending = Some(Ending {
                reason: cause.reason().to_owned(),
                words: if declined {
                    "You declined the patient. The link no longer works.".into()
                } else {
                    end_words(cause)
                },
                clean: cause.is_clean(),
            });
            self.busy = false;
            self.screen = Screen::Ended;
            return;
        }
        let Some(a) = self.active.as_mut() else {
            return;
        };
        match ev {
            AgentEvent::PatientWaiting => {
                if !matches!(a.patient, Patient::Waiting { .. }) {
                    a.patient = Patient::Waiting {
                        since: now,
                        name: a.patient.name().map(str::to_owned),
                    };
                }
                self.screen = Screen::WaitingRoom;
                let who = a.patient.name().unwrap_or("A patient").to_owned();
                self.push(Command::Notify(format!("{who} is waiting")));
            }
            AgentEvent::Knock { name } => {
                let name = name.filter(|n| !n.trim().is_empty());
                match &mut a.patient {
                    Patient::Waiting { name: n, .. }
                    | Patient::Admitting { name: n }
                    | Patient::Admitted { name: n } => *n = name,
                    Patient::Absent => {
                        a.patient = Patient::Waiting { since: now, name };
                        self.screen = Screen::WaitingRoom;
                    }
                }
            }
            AgentEvent::Admitted => {
                a.patient = Patient::Admitted {
                    name: a.patient.name().map(str::to_owned),
                };
                self.screen = Screen::Call;
            }
            AgentEvent::Connected {
                local_candidate,
                remote_candidate,
                sas,
            } => {
                let call = &mut a.call;
                call.connected_at.get_or_insert(now);
                if call.sas.as_ref().is_some_and(|old| *old != sas) {
                    call.sas_changed = true;
                }
                call.sas = Some(sas);
                call.local_candidate = Some(local_candidate);
                call.remote_candidate = Some(remote_candidate);
                call.peer_left = false;
                call.media_interrupted = false;
                self.screen = Screen::Call;
            }
            AgentEvent::FirstVideoFrame { width, height } => {
                a.call.remote_video_size = Some((width, height));
            }
            AgentEvent::Stats(s) => {
                let call = &mut a.call;
                call.lost_last_interval = call
                    .stats
                    .map(|prev| s.packets_lost.saturating_sub(prev.packets_lost));
                call.stats = Some(s);
            }
            AgentEvent::PeerLeft => {
                if matches!(a.patient, Patient::Waiting { .. }) {
                    a.patient = Patient::Absent;
                    self.screen = Screen::Link;
                } else {
                    a.call.peer_left = true;
                }
            }
            AgentEvent::Device {
                kind,
                working,
                detail,
            } => {
                if kind == DeviceKind::Microphone {
                    // Without a microphone the mute switch means nothing.
                    self.no_microphone = !working;
                }
                a.call.devices.retain(|d| d.kind != kind);
                a.call.devices.push(DeviceNote {
                    kind,
                    working,
                    detail,
                });
            }
            AgentEvent::SignallingLost => a.call.signalling_lost = true,
            AgentEvent::MediaInterrupted => a.call.media_interrupted = true,
            AgentEvent::Joined { .. } => a.call.signalling_lost = false,
            _ => {}
        }
    }

    /// The patient's name for display.
    pub fn patient_name(&self) -> Option<&str> {
        self.active.as_ref().and_then(|a| a.patient.name())
    }

    /// How long the patient has been waiting.
    pub fn waiting_for(&self, now: Instant) -> Option<Duration> {
        match self.active.as_ref()?.patient {
            Patient::Waiting { since, .. } => Some(now.saturating_duration_since(since)),
            _ => None,
        }
    }
}

fn end_words(cause: &EndCause) -> String {
    match cause {
        EndCause::Completed => "You ended the consultation.".into(),
        EndCause::PeerHungUp => "The patient hung up.".into(),
        EndCause::DoctorEnded => "The consultation was ended.".into(),
        EndCause::Expired => "The consultation's link expired.".into(),
        EndCause::IntegrityError(_) => "The call was stopped because the signalling could not \
             be verified (it may have been tampered with). Nothing was shown to anyone else."
            .into(),
        EndCause::Refused(code) => format!("The node refused the connection ({code})."),
        EndCause::SetupTimeout => "The video connection could not be established in time. \
             A firewall may block it; ask the clinic's administrator about the relay."
            .into(),
        EndCause::MediaFailed(_) => "The video connection failed.".into(),
        EndCause::ConnectionLost => "The connection to the node was lost.".into(),
        #[allow(unreachable_patterns)]
        other => other.reason().to_owned(),
    }
}

/// How good the connection is, in one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quality {
    Good,
    Fair,
    Poor,
    /// Not connected (yet, or any more).
    Unknown,
}

/// The connection indicator, in plain words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Indicator {
    pub quality: Quality,
    /// "Direct connection" / "Relayed through the clinic's server".
    pub path: String,
    /// "Delay 24 ms".
    pub delay: String,
    /// "No loss" / "Slight loss" / "Heavy loss".
    pub loss: String,
    /// True when the media goes through a TURN relay.
    pub relayed: bool,
}

/// The indicator for `call`.
pub fn indicator(call: &CallView) -> Indicator {
    let (Some(local), Some(remote)) = (&call.local_candidate, &call.remote_candidate) else {
        return Indicator {
            quality: Quality::Unknown,
            path: "Connecting…".into(),
            delay: String::new(),
            loss: String::new(),
            relayed: false,
        };
    };
    if call.media_interrupted {
        return Indicator {
            quality: Quality::Poor,
            path: "Connection interrupted, reconnecting…".into(),
            delay: String::new(),
            loss: String::new(),
            relayed: false,
        };
    }
    let relayed = local == "relay" || remote == "relay";
    let path = if relayed {
        "Relayed through the clinic's server (still end-to-end encrypted)"
    } else {
        "Direct connection (peer to peer)"
    };
    let rtt = call.stats.and_then(|s| s.rtt_ms);
    let delay = match rtt {
        Some(ms) => format!("Delay {} ms", ms.round() as u64),
        None => "Delay not measured yet".into(),
    };
    let lost = call.lost_last_interval.unwrap_or(0);
    let loss = match lost {
        0 => "No loss",
        1..=4 => "Slight loss",
        _ => "Heavy loss",
    }
    .to_owned();
    let quality = if call.peer_left {
        Quality::Poor
    } else {
        match (rtt.unwrap_or(0.0), lost) {
            (ms, 0) if ms < 200.0 => Quality::Good,
            (ms, 0..=4) if ms < 400.0 => Quality::Fair,
            _ => Quality::Poor,
        }
    };
    Indicator {
        quality,
        path: path.into(),
        delay,
        loss,
        relayed,
    }
}

/// `123456` → `123 456`, for reading aloud.
pub fn sas_for_reading(sas: &str) -> String {
    if sas.len() == 6 && sas.is_ascii() {
        format!("{} {}", &sas[..3], &sas[3..])
    } else {
        sas.to_owned()
    }
}

/// `mm:ss` (or `h:mm:ss`).
pub fn clock(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{:02}:{:02}", s / 60, s % 60)
    }
}

/// "5 min ago", "in 3 h".
pub fn relative(then: i64, now: i64) -> String {
    let d = then - now;
    let a = d.unsigned_abs();
    let amount = if a < 60 {
        return if d <= 0 {
            "just now".into()
        } else {
            "in under a minute".into()
        };
    } else if a < 3600 {
        format!("{} min", a / 60)
    } else if a < 86_400 {
        format!("{} h", a / 3600)
    } else {
        format!("{} d", a / 86_400)
    };
    if d < 0 {
        format!("{amount} ago")
    } else {
        format!("in {amount}")
    }
}

/// Whether a consultation can still be joined (not ended, not expired).
pub fn is_live(c: &ConsultationInfo) -> bool {
    !matches!(c.state.as_str(), "ended" | "expired")
}

/// Today's consultations: those created in the last 24 hours or still live,
/// newest first.
pub fn todays(list: &[ConsultationInfo], now_unix: i64) -> Vec<&ConsultationInfo> {
    let mut v: Vec<&ConsultationInfo> = list
        .iter()
        .filter(|c| is_live(c) || now_unix - c.created_at < 86_400)
        .collect();
    v.sort_by_key(|c| std::cmp::Reverse(c.created_at));
    v
}

/// Plain words for a consultation state.
pub fn state_words(state: &str) -> &str {
    match state {
        "created" => "link not used yet",
        "waiting" => "patient waiting",
        "admitted" => "patient admitted",
        "in_call" => "in call",
        "ended" => "ended",
        "expired" => "expired",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn form() -> SignInForm {
        SignInForm {
            node: "http://127.0.0.1:8080/".into(),
            login: "dr-lind".into(),
            password: "secret password".into(),
            code: " 123 456 ".into(),
            code_from_secret: false,
        }
    }

    fn drain(s: &mut State) -> Vec<Command> {
        std::iter::from_fn(|| s.poll_command()).collect()
    }

    /// A state just signed in (its first command, loading the list, still
    /// queued).
    fn signed_in() -> (State, Instant) {
        let t = Instant::now();
        let mut s = State::new(form(), false, false);
        s.handle_event(
            t,
            NetEvent::SignedIn {
                node: "https://n".into(),
                login: "dr".into(),
            },
        );
        (s, t)
    }

    /// A state in the waiting room with a patient named `name`.
    fn waiting(name: Option<&str>) -> (State, Instant) {
        let t0 = Instant::now();
        let mut s = State::new(form(), false, false);
        s.handle_action(t0, UserAction::SignIn);
        s.handle_event(
            t0,
            NetEvent::SignedIn {
                node: "http://127.0.0.1:8080".into(),
                login: "dr-lind".into(),
            },
        );
        s.handle_action(t0, UserAction::NewConsultation);
        s.handle_event(
            t0,
            NetEvent::ConsultationCreated {
                id: "c1".into(),
                url: "http://127.0.0.1:8080/c/tok#key".into(),
            },
        );
        s.handle_event(t0, NetEvent::Agent(AgentEvent::PatientWaiting));
        s.handle_event(
            t0,
            NetEvent::Agent(AgentEvent::Knock {
                name: name.map(str::to_owned),
            }),
        );
        drain(&mut s);
        (s, t0)
    }

    #[test]
    fn sign_in_needs_a_code_unless_automation_computes_it() {
        let t = Instant::now();
        let mut f = form();
        f.code.clear();
        let mut s = State::new(f.clone(), false, false);
        s.handle_action(t, UserAction::SignIn);
        assert!(drain(&mut s).is_empty());
        assert!(s.error.as_deref().is_some_and(|e| e.contains("code")));
        f.code_from_secret = true;
        let mut s = State::new(f, false, false);
        s.handle_action(t, UserAction::SignIn);
        assert!(matches!(&drain(&mut s)[..], [Command::SignIn { code, .. }] if code.is_empty()));
    }

    #[test]
    fn sign_in_sends_credentials_once_and_forgets_the_password() {
        let t = Instant::now();
        let mut s = State::new(form(), false, false);
        assert_eq!(s.screen, Screen::SignIn);
        s.handle_action(t, UserAction::SignIn);
        let cmds = drain(&mut s);
        assert_eq!(
            cmds,
            [Command::SignIn {
                node: "http://127.0.0.1:8080".into(),
                login: "dr-lind".into(),
                password: "secret password".into(),
                code: "123 456".into(),
            }]
        );
        assert!(s.form.password.is_empty() && s.form.code.is_empty() && s.busy);
        // A second press while busy does nothing.
        s.handle_action(t, UserAction::SignIn);
        assert!(drain(&mut s).is_empty());
        // The password never shows in debug output.
        assert!(!format!("{cmds:?}").contains("secret"));
        s.handle_event(t, NetEvent::SignInFailed("wrong password".into()));
        assert_eq!(s.error.as_deref(), Some("wrong password"));
        assert!(!s.busy);
    }

    #[test]
    fn sign_in_checks_the_form() {
        let t = Instant::now();
        let mut s = State::new(
            SignInForm {
                node: "telenode.example.org".into(),
                ..form()
            },
            false,
            false,
        );
        s.handle_action(t, UserAction::SignIn);
        assert!(drain(&mut s).is_empty());
        assert!(s.error.as_deref().unwrap().contains("https://"));
        s.form.node = "https://telenode.example.org".into();
        s.form.password.clear();
        s.handle_action(t, UserAction::SignIn);
        assert!(drain(&mut s).is_empty());
        assert!(s.error.is_some());
    }

    #[test]
    fn saved_session_is_tried_first_and_may_be_missing() {
        let t = Instant::now();
        let mut s = State::new(form(), true, false);
        assert_eq!(drain(&mut s), [Command::RestoreSession]);
        assert!(s.busy);
        s.handle_event(t, NetEvent::SessionMissing);
        assert_eq!(s.screen, Screen::SignIn);
        assert!(!s.busy);
    }

    #[test]
    fn signed_in_lists_consultations() {
        let (mut s, t) = signed_in();
        assert_eq!(s.screen, Screen::Consultations);
        assert_eq!(drain(&mut s), [Command::LoadConsultations]);
        let c = |id: &str, created_at| ConsultationInfo {
            id: id.into(),
            state: "created".into(),
            created_at,
            expires_at: created_at + 100,
        };
        s.handle_event(t, NetEvent::Consultations(vec![c("old", 1), c("new", 2)]));
        assert_eq!(s.consultations[0].id, "new");
        s.handle_action(t, UserAction::EndConsultation("old".into()));
        assert_eq!(drain(&mut s), [Command::EndConsultation("old".into())]);
        s.handle_action(t, UserAction::SignOut);
        assert_eq!(drain(&mut s), [Command::SignOut]);
        assert_eq!(s.screen, Screen::SignIn);
    }

    #[test]
    fn new_consultation_shows_the_link_and_copies_it() {
        let t = Instant::now();
        let (mut s, _) = waiting(None);
        // Back to the link screen: the patient left the waiting room.
        s.handle_event(t, NetEvent::Agent(AgentEvent::PeerLeft));
        assert_eq!(s.screen, Screen::Link);
        s.handle_action(t, UserAction::CopyLink);
        assert_eq!(
            drain(&mut s),
            [Command::CopyToClipboard(
                "http://127.0.0.1:8080/c/tok#key".into()
            )]
        );
        assert!(s.active.as_ref().unwrap().link_copied);
        // Admit is not possible with nobody waiting.
        assert!(!s.allows(&UserAction::Admit));
        s.handle_action(t, UserAction::Admit);
        assert!(drain(&mut s).is_empty());
    }

    #[test]
    fn waiting_patient_is_announced_with_the_typed_name() {
        let t0 = Instant::now();
        let mut s = State::new(form(), false, false);
        s.handle_event(
            t0,
            NetEvent::ConsultationCreated {
                id: "c".into(),
                url: "u".into(),
            },
        );
        s.handle_event(t0, NetEvent::Agent(AgentEvent::PatientWaiting));
        assert_eq!(s.screen, Screen::WaitingRoom);
        assert_eq!(
            drain(&mut s),
            [Command::Notify("A patient is waiting".into())]
        );
        s.handle_event(
            t0,
            NetEvent::Agent(AgentEvent::Knock {
                name: Some("Erika M.".into()),
            }),
        );
        assert_eq!(s.patient_name(), Some("Erika M."));
        let later = t0 + Duration::from_secs(90);
        assert_eq!(s.waiting_for(later), Some(Duration::from_secs(90)));
        // A knock with a blank name shows no name.
        s.handle_event(
            t0,
            NetEvent::Agent(AgentEvent::Knock {
                name: Some("  ".into()),
            }),
        );
        assert_eq!(s.patient_name(), None);
    }

    #[test]
    fn admit_then_call_controls() {
        let (mut s, t) = waiting(Some("Erika M."));
        assert!(s.allows(&UserAction::Admit));
        s.handle_action(t, UserAction::Admit);
        assert_eq!(drain(&mut s), [Command::Admit]);
        // A second admit press is ignored while the node confirms.
        s.handle_action(t, UserAction::Admit);
        assert!(drain(&mut s).is_empty());
        s.handle_event(t, NetEvent::Agent(AgentEvent::Admitted));
        assert_eq!(s.screen, Screen::Call);
        assert_eq!(s.patient_name(), Some("Erika M."));
        s.handle_event(
            t,
            NetEvent::Agent(AgentEvent::Connected {
                local_candidate: "host".into(),
                remote_candidate: "srflx".into(),
                sas: "123456".into(),
            }),
        );
        let call = &s.active.as_ref().unwrap().call;
        assert_eq!(sas_for_reading(call.sas.as_deref().unwrap()), "123 456");
        s.handle_action(t, UserAction::ToggleMute);
        s.handle_action(t, UserAction::ToggleCamera);
        s.handle_action(t, UserAction::ToggleMute);
        assert_eq!(
            drain(&mut s),
            [
                Command::SetAudioMuted(true),
                Command::SetVideoMuted(true),
                Command::SetAudioMuted(false)
            ]
        );
        s.handle_action(t, UserAction::HangUp);
        assert_eq!(drain(&mut s), [Command::HangUp]);
        s.handle_event(t, NetEvent::Agent(AgentEvent::Ended(EndCause::Completed)));
        assert_eq!(s.screen, Screen::Ended);
        let ending = s.ending.clone().unwrap();
        assert!(ending.clean);
        assert_eq!(ending.reason, "completed");
        s.handle_action(t, UserAction::Done);
        assert_eq!(s.screen, Screen::Consultations);
        assert!(s.active.is_none());
        assert_eq!(drain(&mut s), [Command::LoadConsultations]);
    }

    #[test]
    fn decline_ends_the_consultation() {
        let (mut s, t) = waiting(Some("Someone"));
        s.handle_action(t, UserAction::Decline);
        assert_eq!(drain(&mut s), [Command::HangUp]);
        s.handle_event(t, NetEvent::Agent(AgentEvent::Ended(EndCause::Completed)));
        assert!(s.ending.unwrap().words.contains("declined"));
    }

    /// A state in a call (consultation created, patient admitted).
    fn in_call(no_microphone: bool) -> (State, Instant) {
        let t = Instant::now();
        let mut s = State::new(form(), false, no_microphone);
        s.handle_event(
            t,
            NetEvent::ConsultationCreated {
                id: "c".into(),
                url: "u".into(),
            },
        );
        s.handle_event(t, NetEvent::Agent(AgentEvent::Admitted));
        (s, t)
    }

    #[test]
    fn no_microphone_fixes_the_mute_switch() {
        let (s, _) = in_call(true);
        assert!(!s.allows(&UserAction::ToggleMute));
        assert!(s.allows(&UserAction::ToggleCamera));
    }

    #[test]
    fn device_notes_show_and_a_missing_microphone_fixes_the_mute_switch() {
        let (mut s, t) = in_call(false);
        assert!(s.allows(&UserAction::ToggleMute));
        let device = |kind, working, detail: &str| {
            NetEvent::Agent(AgentEvent::Device {
                kind,
                working,
                detail: detail.into(),
            })
        };
        s.handle_event(t, device(DeviceKind::Camera, true, "Webcam (YUYV 640x480)"));
        s.handle_event(
            t,
            device(
                DeviceKind::Microphone,
                false,
                "no microphone found; silence",
            ),
        );
        assert!(!s.allows(&UserAction::ToggleMute), "nothing to mute");
        let call = &s.active.as_ref().unwrap().call;
        assert!(call.device(DeviceKind::Camera).unwrap().working);
        assert!(!call.device(DeviceKind::Microphone).unwrap().working);
        assert_eq!(call.device(DeviceKind::Speaker), None);
        // A later word replaces the earlier one (a fresh peer found it).
        s.handle_event(t, device(DeviceKind::Microphone, true, "Headset"));
        assert!(s.allows(&UserAction::ToggleMute));
        let call = &s.active.as_ref().unwrap().call;
        assert_eq!(call.devices.len(), 2);
        assert_eq!(
            call.device(DeviceKind::Microphone).unwrap().detail,
            "Headset"
        );
    }

    #[test]
    fn device_choices_are_kept_and_switch_a_running_call() {
        let (mut s, t) = signed_in();
        drain(&mut s);
        let choose = |kind, v: &str| UserAction::ChooseDevice(kind, v.into());
        assert!(s.allows(&choose(DeviceKind::Speaker, "none")));
        s.handle_action(t, choose(DeviceKind::Speaker, "none"));
        s.handle_action(t, choose(DeviceKind::Camera, "/dev/video2"));
        // Choosing what is already chosen saves nothing.
        s.handle_action(t, choose(DeviceKind::Camera, "/dev/video2"));
        let want = DeviceChoices {
            camera: "/dev/video2".into(),
            microphone: String::new(),
            speaker: "none".into(),
        };
        let saved = drain(&mut s);
        assert_eq!(saved.len(), 2);
        assert_eq!(saved.last(), Some(&Command::SaveDevices(want.clone())));
        assert_eq!(s.devices, want);
        // Not while a consultation is being set up or running.
        s.handle_event(
            t,
            NetEvent::ConsultationCreated {
                id: "c".into(),
                url: "u".into(),
            },
        );
        assert!(!s.allows(&choose(DeviceKind::Microphone, "tone")));
        s.handle_action(t, choose(DeviceKind::Microphone, "tone"));
        assert_eq!(s.devices, want);
        drain(&mut s);
        // In the call a choice switches the running call too.
        s.handle_event(t, NetEvent::Agent(AgentEvent::Admitted));
        assert_eq!(s.screen, Screen::Call);
        s.handle_action(t, choose(DeviceKind::Microphone, "tone"));
        let cmds = drain(&mut s);
        assert!(
            cmds.contains(&Command::SwitchDevice(
                DeviceKind::Microphone,
                "tone".into()
            )),
            "{cmds:?}"
        );
        assert_eq!(s.devices.microphone, "tone");
    }

    #[test]
    fn failures_end_with_plain_words() {
        let (mut s, t) = waiting(None);
        s.handle_event(
            t,
            NetEvent::Agent(AgentEvent::Ended(EndCause::IntegrityError("x".into()))),
        );
        let e = s.ending.unwrap();
        assert!(!e.clean && e.words.contains("tampered"));
    }

    #[test]
    fn indicator_in_plain_words() {
        let mut call = CallView::default();
        assert_eq!(indicator(&call).quality, Quality::Unknown);
        call.local_candidate = Some("host".into());
        call.remote_candidate = Some("host".into());
        let stats = |rtt, lost| MediaStats {
            rtt_ms: rtt,
            packets_lost: lost,
            ..MediaStats::default()
        };
        call.stats = Some(stats(Some(23.4), 0));
        let i = indicator(&call);
        assert_eq!(i.quality, Quality::Good);
        assert!(i.path.starts_with("Direct"));
        assert_eq!(i.delay, "Delay 23 ms");
        assert_eq!(i.loss, "No loss");
        call.remote_candidate = Some("relay".into());
        call.lost_last_interval = Some(3);
        let i = indicator(&call);
        assert!(i.relayed && i.path.starts_with("Relayed"));
        assert_eq!((i.quality, i.loss.as_str()), (Quality::Fair, "Slight loss"));
        call.lost_last_interval = Some(50);
        assert_eq!(indicator(&call).quality, Quality::Poor);
        call.media_interrupted = true;
        let i = indicator(&call);
        assert_eq!(i.quality, Quality::Poor);
        assert!(i.path.contains("reconnecting"), "{}", i.path);
    }

    #[test]
    fn an_interrupted_path_shows_until_the_media_is_back() {
        let (mut s, t) = waiting(None);
        let connected = || {
            NetEvent::Agent(AgentEvent::Connected {
                local_candidate: "host".into(),
                remote_candidate: "host".into(),
                sas: "123456".into(),
            })
        };
        s.handle_event(t, connected());
        s.handle_event(t, NetEvent::Agent(AgentEvent::MediaInterrupted));
        let call = &s.active.as_ref().unwrap().call;
        assert!(call.media_interrupted);
        assert_eq!(indicator(call).quality, Quality::Poor);
        s.handle_event(t, connected());
        assert!(!s.active.as_ref().unwrap().call.media_interrupted);
        assert!(!s.active.as_ref().unwrap().call.sas_changed, "same code");
        // Rebuilt with new keys: a new code, and the window says so.
        s.handle_event(
            t,
            NetEvent::Agent(AgentEvent::Connected {
                local_candidate: "host".into(),
                remote_candidate: "host".into(),
                sas: "654321".into(),
            }),
        );
        let call = &s.active.as_ref().unwrap().call;
        assert!(call.sas_changed);
        assert_eq!(call.sas.as_deref(), Some("654321"));
    }

    #[test]
    fn loss_is_counted_per_interval() {
        let (mut s, t) = waiting(None);
        for lost in [10, 10, 13] {
            s.handle_event(
                t,
                NetEvent::Agent(AgentEvent::Stats(MediaStats {
                    packets_lost: lost,
                    ..MediaStats::default()
                })),
            );
        }
        assert_eq!(s.active.unwrap().call.lost_last_interval, Some(3));
    }

    #[test]
    fn words_for_times_and_lists() {
        assert_eq!(clock(Duration::from_secs(75)), "01:15");
        assert_eq!(clock(Duration::from_secs(3725)), "1:02:05");
        assert_eq!(relative(1000 - 300, 1000), "5 min ago");
        assert_eq!(relative(1000 + 7200, 1000), "in 2 h");
        assert_eq!(relative(1000, 1000), "just now");
        let c = |id: &str, state: &str, created_at| ConsultationInfo {
            id: id.into(),
            state: state.into(),
            created_at,
            expires_at: 0,
        };
        let now = 200_000;
        let list = [
            c("yesterday-ended", "ended", now - 90_000),
            c("yesterday-live", "created", now - 90_000),
            c("today", "ended", now - 100),
        ];
        let ids: Vec<&str> = todays(&list, now).iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["today", "yesterday-live"]);
        assert_eq!(state_words("waiting"), "patient waiting");
    }
}
