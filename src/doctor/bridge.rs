//! The runtime side of the window: one tokio task that owns the API client
//! and the call agent, carries out the window's requests and reports back
//! as [`NetEvent`]s. The window never blocks on the network.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::settings::{Settings, SettingsStore};
use super::state::NetEvent;
use crate::client::{AgentEvent, ApiClient, CallAgent, CallOptions, HttpError, Trust, recv_opt};
use crate::peer::{AudioOutput, AudioSource, MediaTap, VideoSource};

/// What the window asks of the runtime.
pub(crate) enum Request {
    Restore {
        node: String,
        login: String,
        session: String,
    },
    SignIn {
        node: String,
        login: String,
        password: String,
        code: String,
    },
    SignOut,
    List,
    NewConsultation {
        tap: MediaTap,
    },
    Admit,
    HangUp,
    End(String),
    /// Use these devices from the next consultation on, and keep them.
    SetDevices(crate::doctor::state::DeviceChoices),
}

/// Media settings of the doctor's calls.
#[derive(Debug, Clone)]
pub(crate) struct CallSetup {
    pub bind_ip: Option<IpAddr>,
    pub video: VideoSource,
    /// Size and rate of the video (`--video`), kept for a camera chosen
    /// later even when the call starts without video.
    pub video_size: (u32, u32, u32),
    pub audio: AudioSource,
    pub audio_output: AudioOutput,
    pub force_relay: bool,
    pub trust: Trust,
}

/// Where the bridge reports to: a channel the window drains, and a waker
/// that makes the window repaint (and so drain it).
pub(crate) struct Reporter {
    pub tx: std::sync::mpsc::Sender<NetEvent>,
    pub wake: Arc<dyn Fn() + Send + Sync>,
}

impl Reporter {
    fn send(&self, e: NetEvent) {
        let _ = self.tx.send(e);
        (self.wake)();
    }
}

struct Bridge {
    report: Reporter,
    settings: Option<SettingsStore>,
    setup: CallSetup,
    api: Option<ApiClient>,
    agent: Option<CallAgent>,
    agent_events: Option<mpsc::UnboundedReceiver<AgentEvent>>,
    /// The session token last handed to the settings store, so that the
    /// keyring (a D-Bus round trip, perhaps an unlock prompt) is only asked
    /// when the token changed.
    kept_session: Option<String>,
}

/// Runs until the window drops its sender; hangs up a running call then.
pub(crate) async fn run(
    mut requests: mpsc::UnboundedReceiver<Request>,
    report: Reporter,
    settings: Option<SettingsStore>,
    setup: CallSetup,
) {
    let mut b = Bridge {
        report,
        settings,
        setup,
        api: None,
        agent: None,
        agent_events: None,
        kept_session: None,
    };
    loop {
        tokio::select! {
            r = requests.recv() => match r {
                Some(r) => b.handle(r).await,
                None => break,
            },
            ev = recv_opt(&mut b.agent_events) => match ev {
                Some(ev) => {
                    let ended = matches!(ev, AgentEvent::Ended(_));
                    b.report.send(NetEvent::Agent(ev));
                    if ended {
                        b.agent_events = None;
                        if let Some(a) = b.agent.take() {
                            a.join().await;
                        }
                    }
                }
                None => b.agent_events = None,
            },
        }
    }
    if let Some(agent) = b.agent.take() {
        agent.hang_up();
        let _ = tokio::time::timeout(Duration::from_secs(3), agent.join()).await;
    }
}

impl Bridge {
    async fn handle(&mut self, r: Request) {
        self.handle_request(r).await;
        self.keep_rotated_session().await;
    }

    /// The node rotates a session past half its lifetime: keep the new
    /// token, so the next start of the window still finds a live one. The
    /// keyring is slow and may block: asked off the runtime's workers.
    async fn keep_rotated_session(&mut self) {
        let (Some(api), Some(s)) = (&self.api, &self.settings) else {
            return;
        };
        let current = api.session();
        if self.kept_session.as_deref() == Some(current.as_str()) {
            return;
        }
        let (store, token) = (s.clone(), current.clone());
        let saved = tokio::task::spawn_blocking(move || {
            if store.session().as_deref() == Some(token.as_str()) {
                return Ok(());
            }
            store.save_session(&token).map(drop)
        })
        .await;
        match saved {
            Ok(Ok(())) => self.kept_session = Some(current),
            Ok(Err(e)) => tracing::warn!(error = %format!("{e:#}"), "session not saved"),
            Err(e) => tracing::warn!(error = %e, "session not saved"),
        }
    }

    async fn handle_request(&mut self, r: Request) {
        match r {
            Request::Restore {
                node,
                login,
                session,
            } => {
                let api = match ApiClient::from_session(&self.setup.trust, &node, &session) {
                    Ok(a) => a,
                    Err(e) => return self.report.send(NetEvent::SignInFailed(format!("{e:#}"))),
                };
                match api.consultations().await {
                    Ok(list) => {
                        self.api = Some(api);
                        self.report.send(NetEvent::SignedIn { node, login });
                        self.report.send(NetEvent::Consultations(list));
                    }
                    Err(e) => {
                        let text = format!("{e:#}");
                        tracing::debug!(error = %text, "saved session not usable");
                        let refused = e
                            .downcast_ref::<HttpError>()
                            .is_some_and(|h| matches!(h.status.as_u16(), 401 | 403));
                        if refused {
                            self.forget_session().await;
                            self.report.send(NetEvent::SessionMissing);
                        } else {
                            self.report.send(NetEvent::SignInFailed(format!(
                                "Could not reach {node}: {text}"
                            )));
                        }
                    }
                }
            }
            Request::SignIn {
                node,
                login,
                password,
                code,
            } => match crate::client::sign_in(&self.setup.trust, &node, &login, &password, &code)
                .await
            {
                Ok(api) => {
                    // The session token is kept after this request (see
                    // keep_rotated_session), off the runtime's workers.
                    if let Some(s) = &self.settings {
                        let saved = s.load().and_then(|old| {
                            s.save(&Settings {
                                node: api.base().to_owned(),
                                login: login.clone(),
                                ..old
                            })
                        });
                        if let Err(e) = saved {
                            tracing::warn!(error = %format!("{e:#}"), "settings not saved");
                        }
                    }
                    let node = api.base().to_owned();
                    self.api = Some(api);
                    self.report.send(NetEvent::SignedIn { node, login });
                }
                Err(e) => self
                    .report
                    .send(NetEvent::SignInFailed(format!("Sign-in failed: {e:#}"))),
            },
            Request::SignOut => {
                if let Some(api) = self.api.take()
                    && let Err(e) = api.logout().await
                {
                    tracing::debug!(error = %format!("{e:#}"), "logout");
                }
                self.forget_session().await;
            }
            Request::List => {
                if let Some(api) = &self.api {
                    match api.consultations().await {
                        Ok(list) => self.report.send(NetEvent::Consultations(list)),
                        Err(e) => self.report.send(NetEvent::Failed(format!(
                            "Could not load the consultations: {e:#}"
                        ))),
                    }
                }
            }
            Request::NewConsultation { tap } => {
                if let Err(e) = self.new_consultation(tap).await {
                    self.report.send(NetEvent::Failed(format!(
                        "Could not start a consultation: {e:#}"
                    )));
                }
            }
            Request::Admit => {
                if let Some(a) = &self.agent {
                    a.admit();
                }
            }
            Request::HangUp => {
                if let Some(a) = &self.agent {
                    a.hang_up();
                }
            }
            Request::SetDevices(choices) => {
                use crate::cli::DeviceChoice;
                let (width, height, fps) = self.setup.video_size;
                self.setup.video = DeviceChoice::parse(&choices.camera).video(width, height, fps);
                self.setup.audio = DeviceChoice::parse(&choices.microphone).audio();
                self.setup.audio_output = DeviceChoice::parse(&choices.speaker).output();
                if let Some(s) = &self.settings {
                    let saved = s.load().and_then(|old| {
                        s.save(&Settings {
                            camera: choices.camera,
                            microphone: choices.microphone,
                            speaker: choices.speaker,
                            ..old
                        })
                    });
                    if let Err(e) = saved {
                        tracing::warn!(error = %format!("{e:#}"), "device choice not saved");
                    }
                }
            }
            Request::End(id) => {
                if let Some(api) = &self.api {
                    if let Err(e) = api.end(&id).await {
                        self.report.send(NetEvent::Failed(format!(
                            "Could not end the consultation: {e:#}"
                        )));
                    }
                    if let Ok(list) = api.consultations().await {
                        self.report.send(NetEvent::Consultations(list));
                    }
                }
            }
        }
    }

    async fn new_consultation(&mut self, tap: MediaTap) -> anyhow::Result<()> {
        anyhow::ensure!(self.agent.is_none(), "a consultation is already running");
        let api = self
            .api
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("not signed in"))?;
        let link = api.new_consultation(None).await?;
        let opts = CallOptions {
            bind_ip: self.setup.bind_ip,
            force_relay: self.setup.force_relay,
            media_tap: Some(tap),
            audio: self.setup.audio.clone(),
            audio_output: self.setup.audio_output.clone(),
            ..CallOptions::doctor(api, &link, self.setup.video.clone())
        };
        let (agent, events) = CallAgent::start(opts).await?;
        self.agent = Some(agent);
        self.agent_events = Some(events);
        self.report.send(NetEvent::ConsultationCreated {
            id: link.consultation.id,
            url: link.url,
        });
        Ok(())
    }

    /// Deletes the kept token (keyring or file), off the runtime's workers.
    async fn forget_session(&mut self) {
        self.kept_session = None;
        if let Some(s) = self.settings.clone() {
            match tokio::task::spawn_blocking(move || s.forget_session()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %format!("{e:#}"), "session not removed"),
                Err(e) => tracing::warn!(error = %e, "session not removed"),
            }
        }
    }
}
