//! Drawing: the eframe/egui window over a [`State`]. Every decision is in
//! `state.rs`; this file turns the state into widgets, clicks into
//! [`UserAction`]s and [`Command`]s into requests for the runtime.

use std::io::Write;
use std::time::{Duration, Instant};

use eframe::egui::emath::GuiRounding as _;
use eframe::egui::{
    self, Align, Align2, Color32, FontId, Layout, Pos2, Rect, RichText, Sense, TextureHandle,
    TextureOptions, Vec2,
};
use tokio::sync::mpsc;

use super::bridge::Request;
use super::script::{Next, Script};
use super::state::{self, Command, NetEvent, Quality, Screen, State, UserAction};
use crate::client::AgentEvent;
use crate::peer::tap::i420_to_rgba_into;
use crate::peer::{DeviceKind, MediaTap, VideoFrame};

/// Automation output (`TELENODE_GUI_EVENTS`): one JSON object per line on
/// standard output.
#[derive(Debug, Default)]
pub(crate) struct EventsOut {
    pub enabled: bool,
}

impl EventsOut {
    fn emit(&self, v: serde_json::Value) {
        if self.enabled {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{v}");
            let _ = out.flush();
        }
    }
}

/// A video texture fed from a tap slot.
#[derive(Default)]
struct VideoTexture {
    texture: Option<TextureHandle>,
    seen: u64,
    size: [usize; 2],
    uploaded: u64,
    last_upload: Option<Instant>,
    /// The last picture in RGBA, reused from picture to picture.
    rgba: Vec<u8>,
}

impl VideoTexture {
    /// Uploads `latest` if it is newer than what is shown and at least
    /// `min_gap` passed since the last upload.
    fn update(
        &mut self,
        ctx: &egui::Context,
        name: &str,
        latest: Option<(u64, std::sync::Arc<VideoFrame>)>,
        min_gap: Duration,
    ) {
        let Some((seq, frame)) = latest else { return };
        if seq == self.seen || self.last_upload.is_some_and(|t| t.elapsed() < min_gap) {
            return;
        }
        self.seen = seq;
        self.last_upload = Some(Instant::now());
        let size = [frame.width as usize, frame.height as usize];
        i420_to_rgba_into(frame.width, frame.height, &frame.i420, &mut self.rgba);
        // egui takes the pixels by value: one copy per picture stays.
        let image = egui::ColorImage::from_rgba_unmultiplied(size, &self.rgba);
        match &mut self.texture {
            Some(t) => t.set(image, TextureOptions::LINEAR),
            None => self.texture = Some(ctx.load_texture(name, image, TextureOptions::LINEAR)),
        }
        self.size = size;
        self.uploaded += 1;
    }

    fn reset(&mut self) {
        *self = VideoTexture::default();
    }
}

/// The choices the device picker offers: (value as settings keep it,
/// words for the doctor).
struct DeviceLists {
    cameras: Vec<(String, String)>,
    microphones: Vec<(String, String)>,
    speakers: Vec<(String, String)>,
}

impl DeviceLists {
    fn defaults_only() -> DeviceLists {
        let entry = |v: &str, t: &str| vec![(v.to_owned(), t.to_owned())];
        DeviceLists {
            cameras: entry("", "The first camera"),
            microphones: entry("", "The system's default"),
            speakers: entry("", "The system's default"),
        }
    }

    fn scan() -> DeviceLists {
        use crate::peer::{camera, sound};
        let entry = |v: &str, t: &str| (v.to_owned(), t.to_owned());
        let mut cameras = vec![entry("", "The first camera")];
        cameras.extend(
            camera::cameras()
                .into_iter()
                .map(|c| (c.path.clone(), format!("{} ({})", c.name, c.path))),
        );
        cameras.extend([entry("pattern", "Test picture"), entry("none", "No video")]);
        let sound = |list: Vec<sound::SoundDevice>, test: Option<(&str, &str)>, none: &str| {
            let mut v = vec![entry("", "The system's default")];
            v.extend(list.into_iter().map(|d| (d.id, d.name)));
            v.extend(test.map(|(a, b)| entry(a, b)));
            v.push(entry("none", none));
            v
        };
        DeviceLists {
            cameras,
            microphones: sound(
                sound::microphones(),
                Some(("tone", "Test tone")),
                "No microphone",
            ),
            speakers: sound(sound::speakers(), None, "No sound"),
        }
    }
}

/// The device lists, found on a thread of their own: opening every camera
/// and sound device can take a second, which the window must not freeze
/// for (least of all during a call).
enum DeviceScan {
    NotYet,
    Running(std::sync::mpsc::Receiver<DeviceLists>),
    Done(DeviceLists),
}

impl DeviceScan {
    /// The lists once found; starts the scan on first use.
    fn lists(&mut self) -> Option<&DeviceLists> {
        if let DeviceScan::NotYet = self {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = tx.send(DeviceLists::scan());
            });
            *self = DeviceScan::Running(rx);
        }
        if let DeviceScan::Running(rx) = self {
            match rx.try_recv() {
                Ok(lists) => *self = DeviceScan::Done(lists),
                Err(std::sync::mpsc::TryRecvError::Empty) => return None,
                // The scan died: offer the defaults only.
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    *self = DeviceScan::Done(DeviceLists::defaults_only());
                }
            }
        }
        match self {
            DeviceScan::Done(lists) => Some(lists),
            _ => None,
        }
    }
}

pub(crate) struct DoctorApp {
    state: State,
    script: Option<Script>,
    out: EventsOut,
    net: std::sync::mpsc::Receiver<NetEvent>,
    bridge: mpsc::UnboundedSender<Request>,
    tap: Option<MediaTap>,
    remote: VideoTexture,
    local: VideoTexture,
    /// Where the remote video was drawn, in screen pixels.
    remote_rect_px: Option<[f32; 4]>,
    qr: Option<(String, usize, Vec<bool>)>,
    notice: Option<(String, Instant)>,
    shown_screen: Option<Screen>,
    /// Saved session to try first (consumed by `RestoreSession`).
    saved_session: Option<String>,
    pending: Vec<UserAction>,
    /// The devices found, for the picker (scanned when it first opens).
    device_lists: DeviceScan,
    /// Where the arrival chime plays (`Some(None)`: the default speaker);
    /// `None` when the doctor chose no speaker.
    chime: Option<Option<String>>,
}

impl DoctorApp {
    pub(crate) fn new(
        state: State,
        script: Option<Script>,
        out: EventsOut,
        net: std::sync::mpsc::Receiver<NetEvent>,
        bridge: mpsc::UnboundedSender<Request>,
        saved_session: Option<String>,
        chime: Option<Option<String>>,
    ) -> DoctorApp {
        DoctorApp {
            state,
            script,
            out,
            net,
            bridge,
            tap: None,
            remote: VideoTexture::default(),
            local: VideoTexture::default(),
            remote_rect_px: None,
            qr: None,
            notice: None,
            shown_screen: None,
            saved_session,
            pending: Vec::new(),
            device_lists: DeviceScan::NotYet,
            chime,
        }
    }

    fn request(&self, r: Request) {
        let _ = self.bridge.send(r);
    }

    /// Carries out what the state asked for.
    fn run_commands(&mut self, ctx: &egui::Context) {
        while let Some(c) = self.state.poll_command() {
            match c {
                Command::RestoreSession => match self.saved_session.take() {
                    Some(session) => self.request(Request::Restore {
                        node: self.state.form.node.clone(),
                        login: self.state.form.login.clone(),
                        session,
                    }),
                    None => self
                        .state
                        .handle_event(Instant::now(), NetEvent::SessionMissing),
                },
                Command::SignIn {
                    node,
                    login,
                    password,
                    code,
                } => self.request(Request::SignIn {
                    node,
                    login,
                    password,
                    code,
                }),
                Command::SignOut => self.request(Request::SignOut),
                Command::LoadConsultations => self.request(Request::List),
                Command::NewConsultation => {
                    let tap = MediaTap::new();
                    // No microphone support yet: silence is sent.
                    tap.set_audio_muted(self.state.no_microphone);
                    self.tap = Some(tap.clone());
                    self.remote.reset();
                    self.local.reset();
                    self.request(Request::NewConsultation { tap });
                }
                Command::Admit => self.request(Request::Admit),
                Command::HangUp => self.request(Request::HangUp),
                Command::SetAudioMuted(m) => {
                    if let Some(t) = &self.tap {
                        t.set_audio_muted(m || self.state.no_microphone);
                    }
                }
                Command::SetVideoMuted(m) => {
                    if let Some(t) = &self.tap {
                        t.set_video_muted(m);
                    }
                }
                Command::SaveDevices(choices) => {
                    self.chime = match crate::cli::DeviceChoice::parse(&choices.speaker) {
                        crate::cli::DeviceChoice::Default => Some(None),
                        crate::cli::DeviceChoice::Named(d) => Some(Some(d)),
                        _ => None,
                    };
                    self.request(Request::SetDevices(choices));
                }
                Command::SwitchDevice(kind, choice) => {
                    use crate::cli::DeviceChoice;
                    if let Some(tap) = &self.tap {
                        let choice = DeviceChoice::parse(&choice);
                        match kind {
                            DeviceKind::Microphone => tap.switch_microphone(choice.audio()),
                            DeviceKind::Speaker => tap.switch_speaker(choice.output()),
                            // The call keeps its size and rate.
                            DeviceKind::Camera => tap.switch_camera(choice.video(0, 0, 0)),
                        }
                    }
                }
                Command::EndConsultation(id) => self.request(Request::End(id)),
                Command::CopyToClipboard(text) => ctx.copy_text(text),
                Command::Notify(text) => {
                    self.notice = Some((text, Instant::now()));
                    if let Some(speaker) = &self.chime {
                        crate::peer::sound::play_chime(speaker.clone());
                    }
                    ctx.send_viewport_cmd(egui::ViewportCommand::RequestUserAttention(
                        egui::UserAttentionType::Informational,
                    ));
                }
            }
        }
    }

    fn automation_event(&self, ev: &NetEvent) {
        use serde_json::json;
        let v = match ev {
            NetEvent::SignedIn { .. } => json!({"event": "signed_in"}),
            NetEvent::SignInFailed(m) => json!({"event": "sign_in_failed", "message": m}),
            NetEvent::ConsultationCreated { url, .. } => json!({"event": "link", "url": url}),
            NetEvent::Failed(m) => json!({"event": "error", "message": m}),
            NetEvent::Agent(
                ev @ (AgentEvent::PatientWaiting
                | AgentEvent::Knock { .. }
                | AgentEvent::Admitted
                | AgentEvent::Connected { .. }
                | AgentEvent::Ended(_)),
            ) => ev.to_json(),
            NetEvent::Agent(ev @ AgentEvent::Stats(_)) => {
                let mut v = ev.to_json();
                // What the window did with the pictures: frames uploaded to
                // the remote video texture, and where it is on the screen.
                v["frames_shown"] = self.remote.uploaded.into();
                v["self_view_frames_shown"] = self.local.uploaded.into();
                v["remote_video_rect"] = json!(self.remote_rect_px);
                v
            }
            _ => return,
        };
        self.out.emit(v);
    }

    fn qr_for(&mut self, url: &str) -> Option<(usize, &[bool])> {
        if self.qr.as_ref().is_none_or(|(u, _, _)| u != url) {
            let (w, m) = super::qr_matrix(url)?;
            self.qr = Some((url.to_owned(), w, m));
        }
        self.qr.as_ref().map(|(_, w, m)| (*w, m.as_slice()))
    }
}

impl eframe::App for DoctorApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        let now = Instant::now();
        while let Ok(ev) = self.net.try_recv() {
            self.automation_event(&ev);
            self.state.handle_event(now, ev);
        }
        self.run_commands(&ctx);
        if let Some(script) = &mut self.script {
            match script.next(&self.state) {
                Some(Next::Action(a)) => self.state.handle_action(now, a),
                Some(Next::Quit) => ctx.send_viewport_cmd(egui::ViewportCommand::Close),
                None => {}
            }
        }
        self.run_commands(&ctx);
        if self.shown_screen != Some(self.state.screen) {
            self.shown_screen = Some(self.state.screen);
            self.out
                .emit(serde_json::json!({"event": "screen", "screen": self.state.screen.name()}));
        }
        if self.state.screen == Screen::Call
            && let Some(tap) = &self.tap
        {
            self.remote
                .update(&ctx, "remote-video", tap.latest_remote(), Duration::ZERO);
            self.local.update(
                &ctx,
                "self-view",
                tap.latest_local(),
                Duration::from_millis(66),
            );
        }

        self.draw(ui, now);

        for a in std::mem::take(&mut self.pending) {
            self.state.handle_action(now, a);
        }
        self.run_commands(&ctx);
        let every = match self.state.screen {
            Screen::Call => Duration::from_millis(30),
            _ => Duration::from_millis(250),
        };
        ctx.request_repaint_after(every);
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        // The bridge hangs up a running call when its channel closes.
        self.request(Request::HangUp);
    }
}

const RED: Color32 = Color32::from_rgb(0xc0, 0x39, 0x2b);
const GREEN: Color32 = Color32::from_rgb(0x1e, 0x8e, 0x3e);
const AMBER: Color32 = Color32::from_rgb(0xe6, 0xa1, 0x00);

impl DoctorApp {
    fn act(&mut self, a: UserAction) {
        self.pending.push(a);
    }

    /// A button that is greyed out unless the state allows its action.
    fn button(&mut self, ui: &mut egui::Ui, text: impl Into<egui::WidgetText>, a: UserAction) {
        let enabled = self.state.allows(&a);
        if ui.add_enabled(enabled, egui::Button::new(text)).clicked() {
            self.act(a);
        }
    }

    fn draw(&mut self, ui: &mut egui::Ui, now: Instant) {
        egui::Panel::top("status").show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.label(RichText::new("telenode").strong());
                ui.separator();
                match &self.state.signed_in_as {
                    Some(l) => ui.label(format!("Signed in as {l}")),
                    None => ui.label("Not signed in"),
                };
                if let Some((text, at)) = &self.notice
                    && now.duration_since(*at) < Duration::from_secs(20)
                    && self.state.screen == Screen::WaitingRoom
                {
                    ui.separator();
                    ui.label(RichText::new(text.clone()).color(AMBER).strong());
                }
            });
            if let Some(err) = self.state.error.clone() {
                ui.horizontal(|ui| {
                    ui.label(RichText::new(err).color(RED));
                    if ui.small_button("Dismiss").clicked() {
                        self.act(UserAction::DismissError);
                    }
                });
            }
        });
        egui::CentralPanel::default_margins().show(ui, |ui| match self.state.screen {
            Screen::SignIn => self.sign_in(ui),
            Screen::Consultations => self.consultations(ui),
            Screen::Link => self.link(ui),
            Screen::WaitingRoom => self.waiting_room(ui, now),
            Screen::Call => self.call(ui, now),
            Screen::Ended => self.ended(ui),
        });
    }

    fn sign_in(&mut self, ui: &mut egui::Ui) {
        ui.heading("Sign in");
        ui.add_space(8.0);
        egui::Grid::new("sign-in").num_columns(2).show(ui, |ui| {
            ui.label("Node address");
            ui.add(
                egui::TextEdit::singleline(&mut self.state.form.node)
                    .hint_text("https://telenode.example.org")
                    .desired_width(320.0),
            );
            ui.end_row();
            ui.label("Login");
            ui.add(egui::TextEdit::singleline(&mut self.state.form.login).desired_width(320.0));
            ui.end_row();
            ui.label("Password");
            ui.add(
                egui::TextEdit::singleline(&mut self.state.form.password)
                    .password(true)
                    .desired_width(320.0),
            );
            ui.end_row();
            ui.label("Code");
            let code = ui.add(
                egui::TextEdit::singleline(&mut self.state.form.code)
                    .hint_text("6 digits from your authenticator app, or a recovery code")
                    .desired_width(320.0),
            );
            if code.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter)) {
                self.act(UserAction::SignIn);
            }
            ui.end_row();
        });
        ui.add_space(8.0);
        ui.horizontal(|ui| {
            self.button(ui, "Sign in", UserAction::SignIn);
            if self.state.busy {
                ui.spinner();
            }
        });
    }

    fn consultations(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.heading("Today's consultations");
            ui.with_layout(Layout::right_to_left(Align::Center), |ui| {
                self.button(ui, "Sign out", UserAction::SignOut);
                self.button(ui, "Refresh", UserAction::Refresh);
            });
        });
        ui.add_space(8.0);
        self.button(
            ui,
            RichText::new("New consultation").size(18.0),
            UserAction::NewConsultation,
        );
        if self.state.busy {
            ui.spinner();
        }
        ui.add_space(8.0);
        self.device_picker(ui);
        ui.add_space(12.0);
        let now_unix = crate::server::unix_time();
        let rows: Vec<_> = state::todays(&self.state.consultations, now_unix)
            .into_iter()
            .cloned()
            .collect();
        if rows.is_empty() {
            ui.label("No consultations today yet.");
            return;
        }
        egui::ScrollArea::vertical().show(ui, |ui| {
            egui::Grid::new("consultations")
                .num_columns(4)
                .striped(true)
                .show(ui, |ui| {
                    for c in rows {
                        ui.label(format!(
                            "created {}",
                            state::relative(c.created_at, now_unix)
                        ));
                        ui.label(state::state_words(&c.state));
                        if state::is_live(&c) {
                            ui.label(format!(
                                "link expires {}",
                                state::relative(c.expires_at, now_unix)
                            ));
                            self.button(ui, "End", UserAction::EndConsultation(c.id.clone()));
                        } else {
                            ui.label("");
                            ui.label("");
                        }
                        ui.end_row();
                    }
                });
        });
    }

    /// Camera, microphone and speaker: for the next consultation, or at
    /// once during a call.
    fn device_picker(&mut self, ui: &mut egui::Ui) {
        let mut chosen = Vec::new();
        let in_call = self.state.screen == Screen::Call;
        egui::CollapsingHeader::new("Camera, microphone and speaker")
            .id_salt(if in_call { "devices-call" } else { "devices" })
            .show(ui, |ui| {
                let Some(lists) = self.device_lists.lists() else {
                    ui.horizontal(|ui| {
                        ui.spinner();
                        ui.label("Looking for devices…");
                    });
                    ui.ctx().request_repaint_after(Duration::from_millis(100));
                    return;
                };
                egui::Grid::new("device-grid")
                    .num_columns(2)
                    .show(ui, |ui| {
                        for (kind, label, options) in [
                            (DeviceKind::Camera, "Camera", &lists.cameras),
                            (DeviceKind::Microphone, "Microphone", &lists.microphones),
                            (DeviceKind::Speaker, "Speaker", &lists.speakers),
                        ] {
                            ui.label(label);
                            let current = self.state.devices.get(kind).to_owned();
                            let shown = options
                                .iter()
                                .find(|(v, _)| *v == current)
                                .map_or_else(|| current.clone(), |(_, t)| t.clone());
                            let mut pick = current.clone();
                            egui::ComboBox::from_id_salt(label)
                                .selected_text(shown)
                                .width(320.0)
                                .show_ui(ui, |ui| {
                                    for (value, text) in options {
                                        ui.selectable_value(&mut pick, value.clone(), text);
                                    }
                                });
                            if pick != current {
                                chosen.push(UserAction::ChooseDevice(kind, pick));
                            }
                            ui.end_row();
                        }
                    });
                ui.horizontal(|ui| {
                    if ui.button("Look for devices again").clicked() {
                        self.device_lists = DeviceScan::NotYet;
                    }
                    let when = if in_call {
                        "Changes apply at once, and to the next consultations."
                    } else {
                        "Changes apply from the next consultation."
                    };
                    ui.label(RichText::new(when).weak());
                });
            });
        for action in chosen {
            self.act(action);
        }
    }

    fn link_box(&mut self, ui: &mut egui::Ui, qr_size: f32) {
        let Some(url) = self.state.active.as_ref().map(|a| a.url.clone()) else {
            return;
        };
        let copied = self.state.active.as_ref().is_some_and(|a| a.link_copied);
        ui.label("Give this link to your patient (by e-mail, SMS or the QR code). It opens the consultation in their browser; no account, no install.");
        ui.horizontal(|ui| {
            let mut shown = url.clone();
            ui.add(
                egui::TextEdit::singleline(&mut shown)
                    .font(egui::TextStyle::Monospace)
                    .desired_width(ui.available_width() - 110.0),
            );
            let label = if copied { "Copied" } else { "Copy link" };
            self.button(ui, label, UserAction::CopyLink);
        });
        if let Some((w, modules)) = self.qr_for(&url) {
            // Whole pixels per module (crisp edges), and a quiet zone of
            // four modules on each side.
            let ppp = ui.ctx().pixels_per_point();
            let cell = ((qr_size * ppp / (w as f32 + 8.0)).floor().max(1.0)) / ppp;
            let side = cell * (w as f32 + 8.0);
            let (rect, _) = ui.allocate_exact_size(Vec2::splat(side), Sense::hover());
            let rect = Rect::from_min_size(rect.min.round_to_pixels(ppp), rect.size());
            let painter = ui.painter_at(rect);
            painter.rect_filled(rect, 4.0, Color32::WHITE);
            for (i, dark) in modules.iter().enumerate() {
                if *dark {
                    let (x, y) = ((i % w) as f32 + 4.0, (i / w) as f32 + 4.0);
                    let min = rect.min + Vec2::new(x * cell, y * cell);
                    painter.rect_filled(
                        Rect::from_min_size(min, Vec2::splat(cell)),
                        0.0,
                        Color32::BLACK,
                    );
                }
            }
        }
    }

    fn link(&mut self, ui: &mut egui::Ui) {
        ui.heading("New consultation");
        ui.add_space(8.0);
        self.link_box(ui, 220.0);
        ui.add_space(8.0);
        ui.horizontal(|ui| {
            ui.spinner();
            ui.label("Waiting for the patient to open the link…");
        });
        ui.add_space(8.0);
        self.button(ui, "Cancel consultation", UserAction::HangUp);
    }

    fn waiting_room(&mut self, ui: &mut egui::Ui, now: Instant) {
        let who = match self.state.patient_name() {
            Some(n) => format!("{n} is waiting"),
            None => "A patient is waiting (no name given)".to_owned(),
        };
        ui.heading(RichText::new(who).color(AMBER).size(24.0));
        if let Some(d) = self.state.waiting_for(now) {
            ui.label(format!("in the waiting room for {}", state::clock(d)));
        }
        ui.label("The name was typed by the person holding the link; check who it is when the call starts.");
        ui.add_space(12.0);
        ui.horizontal(|ui| {
            let admit = RichText::new("Admit").size(20.0).color(Color32::WHITE);
            let enabled = self.state.allows(&UserAction::Admit);
            if ui
                .add_enabled(enabled, egui::Button::new(admit).fill(GREEN))
                .clicked()
            {
                self.act(UserAction::Admit);
            }
            ui.add_space(12.0);
            self.button(ui, RichText::new("Decline").size(20.0), UserAction::Decline);
        });
        ui.add_space(16.0);
        ui.collapsing("Patient link", |ui| self.link_box(ui, 140.0));
    }

    fn call(&mut self, ui: &mut egui::Ui, now: Instant) {
        let Some(active) = self.state.active.clone() else {
            return;
        };
        let call = &active.call;
        let ind = state::indicator(call);
        // Status line: who, how long, connection in words, the SAS.
        ui.horizontal(|ui| {
            let who = self.state.patient_name().unwrap_or("Patient").to_owned();
            ui.label(RichText::new(who).strong().size(18.0));
            if let Some(t) = call.connected_at {
                ui.label(state::clock(now.saturating_duration_since(t)));
            }
            ui.separator();
            let colour = match ind.quality {
                Quality::Good => GREEN,
                Quality::Fair => AMBER,
                Quality::Poor => RED,
                Quality::Unknown => Color32::GRAY,
            };
            let (dot, _) = ui.allocate_exact_size(Vec2::splat(14.0), Sense::hover());
            ui.painter().circle_filled(dot.center(), 6.0, colour);
            ui.label(&ind.path);
            if !ind.delay.is_empty() {
                ui.label(format!("· {} · {}", ind.delay, ind.loss));
            }
        });
        ui.horizontal(|ui| match &call.sas {
            Some(sas) => {
                ui.label(RichText::new("Security code:").size(18.0));
                ui.label(
                    RichText::new(state::sas_for_reading(sas))
                        .monospace()
                        .size(22.0)
                        .strong(),
                );
                ui.label("Read it aloud: the patient's screen shows the same six digits. If they differ, hang up.");
            }
            None => {
                ui.spinner();
                ui.label("Connecting…");
            }
        });
        if call.sas_changed {
            ui.label(
                RichText::new(
                    "The connection was rebuilt with new keys: the security code changed. \
                     Read the new one aloud.",
                )
                .color(AMBER),
            );
        }
        if call.peer_left {
            ui.label(
                RichText::new("The patient's connection dropped; waiting for them to come back.")
                    .color(AMBER),
            );
        }
        if call.signalling_lost {
            ui.label(
                RichText::new(
                    "The link to the node dropped; the call goes on and telenode reconnects.",
                )
                .color(AMBER),
            );
        }
        self.device_picker(ui);
        for note in call.devices.iter().filter(|d| !d.working) {
            let what = match note.kind {
                DeviceKind::Camera => "Camera",
                DeviceKind::Microphone => "Microphone",
                DeviceKind::Speaker => "Speaker",
            };
            ui.label(RichText::new(format!("{what}: {}.", note.detail)).color(AMBER));
        }

        // Controls at the bottom, video in between.
        let controls_h = 52.0;
        let avail = ui.available_size();
        let video_size = Vec2::new(avail.x, (avail.y - controls_h).max(120.0));
        let (area, _) = ui.allocate_exact_size(video_size, Sense::hover());
        let painter = ui.painter_at(area);
        painter.rect_filled(area, 6.0, Color32::from_gray(20));
        match &self.remote.texture {
            Some(tex) => {
                let r = fit(area, self.remote.size);
                painter.image(
                    tex.id(),
                    r,
                    Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0)),
                    Color32::WHITE,
                );
                let ppp = ui.ctx().pixels_per_point();
                let origin = ui
                    .ctx()
                    .input(|i| i.viewport().inner_rect)
                    .map_or(Pos2::ZERO, |r| r.min);
                self.remote_rect_px = Some([
                    (origin.x + r.min.x) * ppp,
                    (origin.y + r.min.y) * ppp,
                    r.width() * ppp,
                    r.height() * ppp,
                ]);
            }
            None => {
                painter.text(
                    area.center(),
                    Align2::CENTER_CENTER,
                    "Waiting for the patient's video…",
                    FontId::proportional(18.0),
                    Color32::LIGHT_GRAY,
                );
            }
        }
        // Self view: bottom right corner of the video area.
        let sv = Vec2::new(area.width() * 0.2, area.width() * 0.15).min(Vec2::new(240.0, 180.0));
        let sv_rect = Rect::from_min_size(area.max - sv - Vec2::splat(12.0), sv);
        painter.rect_filled(sv_rect, 4.0, Color32::from_gray(45));
        let caption = if call.camera_off {
            "Camera off"
        } else if let Some(tex) = &self.local.texture {
            let r = fit(sv_rect, self.local.size);
            painter.image(
                tex.id(),
                r,
                Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0)),
                Color32::WHITE,
            );
            match call.device(DeviceKind::Camera) {
                Some(note) if note.working && note.detail == "test picture" => "Test picture",
                Some(note) if note.working => "You",
                Some(_) => "No camera: the patient sees this still picture",
                None => "Test picture",
            }
        } else {
            "No video"
        };
        let strip = Rect::from_min_max(Pos2::new(sv_rect.min.x, sv_rect.max.y - 18.0), sv_rect.max);
        painter.rect_filled(strip, 0.0, Color32::from_black_alpha(160));
        painter.text(
            sv_rect.center_bottom() - Vec2::new(0.0, 4.0),
            Align2::CENTER_BOTTOM,
            caption,
            FontId::proportional(11.0),
            Color32::WHITE,
        );

        ui.add_space(6.0);
        ui.horizontal(|ui| {
            let mute = if self.state.no_microphone {
                "No microphone (silence is sent)"
            } else if call.muted {
                "Unmute"
            } else {
                "Mute"
            };
            self.button(ui, RichText::new(mute).size(16.0), UserAction::ToggleMute);
            let cam = if call.camera_off {
                "Camera on"
            } else {
                "Camera off"
            };
            self.button(ui, RichText::new(cam).size(16.0), UserAction::ToggleCamera);
            ui.with_layout(Layout::right_to_left(Align::Center), |ui| {
                let hang = RichText::new("Hang up").size(16.0).color(Color32::WHITE);
                let enabled = self.state.allows(&UserAction::HangUp);
                if ui
                    .add_enabled(enabled, egui::Button::new(hang).fill(RED))
                    .clicked()
                {
                    self.act(UserAction::HangUp);
                }
            });
        });
    }

    fn ended(&mut self, ui: &mut egui::Ui) {
        ui.heading("Consultation ended");
        if let Some(e) = &self.state.ending {
            let colour = if e.clean {
                ui.visuals().text_color()
            } else {
                RED
            };
            ui.label(RichText::new(&e.words).color(colour).size(16.0));
        }
        ui.add_space(12.0);
        self.button(ui, "Back to consultations", UserAction::Done);
    }
}

/// The largest rectangle of aspect `size` centred in `area`.
fn fit(area: Rect, size: [usize; 2]) -> Rect {
    let (w, h) = (size[0].max(1) as f32, size[1].max(1) as f32);
    let scale = (area.width() / w).min(area.height() / h);
    Rect::from_center_size(area.center(), Vec2::new(w * scale, h * scale))
}
