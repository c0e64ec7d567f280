//! Native WebRTC peer: the doctor's side of a consultation.
//!
//! A [`Peer`] wraps one `webrtc` 0.21 peer connection with one audio and one
//! video transceiver. It sends a synthetic VP8 test pattern and an Opus tone
//! (see [`media`]), really decodes what it receives (libvpx, libopus), and
//! reports what happens as [`PeerEvent`]s. SDP and candidates are handed to
//! the caller as strings: moving them (sealed) is the signalling layer's job.
//!
//! Privacy: SDP, candidates and addresses are never logged above `debug`.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use telenode::peer::{Peer, PeerEvent, PeerOptions};
//! let (offerer, mut offerer_events) = Peer::start(PeerOptions::default()).await?;
//! let (answerer, mut answerer_events) = Peer::start(PeerOptions::default()).await?;
//! let offer = offerer.create_offer(false).await?;
//! let answer = answerer.apply_offer(&offer).await?;
//! offerer.apply_answer(&answer).await?;
//! // Forward every PeerEvent::LocalCandidate of one side to the other's
//! // add_remote_candidate, and wait for PeerEvent::Connected.
//! # Ok(()) }
//! ```

pub mod camera;
pub mod congestion;
pub mod jitter;
mod keyframe;
pub mod media;
pub mod sound;
pub mod stats;
pub mod tap;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8};
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters,
    RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use tokio::sync::{Mutex, mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceCandidateInit, RTCIceCandidateType, RTCIceConnectionState,
    RTCIceGatheringState, RTCIceServer, RTCIceTransportPolicy, RTCPeerConnectionIceEvent,
    RTCPeerConnectionState, RTCSessionDescription, Registry, StatsSelector,
};
use webrtc::rtp_transceiver::RtpSender;

pub use stats::MediaStats;
pub use tap::{MediaTap, VideoFrame};

use stats::Counters;

/// RTP payload type we offer for Opus (Chrome's choice too).
const OPUS_PT: u8 = 111;
/// RTP payload type we offer for VP8 (Chrome's choice too).
const VP8_PT: u8 = 96;

/// A STUN or TURN server, as in `RTCIceServer`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IceServerConfig {
    /// `stun:` / `turn:` URLs. The native TURN client is UDP only: `turns:` and
    /// `?transport=tcp` URLs are skipped by `webrtc` 0.21.
    pub urls: Vec<String>,
    /// TURN username.
    pub username: Option<String>,
    /// TURN password.
    pub credential: Option<String>,
}

/// The type of an ICE candidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CandidateKind {
    /// An address of a local interface.
    Host,
    /// Our address as a STUN server saw it.
    Srflx,
    /// An address learnt from the peer's connectivity checks.
    Prflx,
    /// An address on a TURN server.
    Relay,
}

impl CandidateKind {
    fn from_rtc(typ: RTCIceCandidateType) -> Option<Self> {
        match typ {
            RTCIceCandidateType::Host => Some(Self::Host),
            RTCIceCandidateType::Srflx => Some(Self::Srflx),
            RTCIceCandidateType::Prflx => Some(Self::Prflx),
            RTCIceCandidateType::Relay => Some(Self::Relay),
            _ => None,
        }
    }
}

impl fmt::Display for CandidateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Host => "host",
            Self::Srflx => "srflx",
            Self::Prflx => "prflx",
            Self::Relay => "relay",
        })
    }
}

/// How often a missing packet is asked for again (NACK) before the receiver
/// gives up on it.
const NACK_TRIES: u16 = 3;

/// The `webrtc` crate's default interceptors (NACK, RTCP reports, receive
/// side transport-wide congestion feedback, simulcast header extensions),
/// except that a missing packet is NACKed at most [`NACK_TRIES`] times. The
/// default asks again every 100 ms for as long as the packet is in the
/// window: on a congested path the retransmissions then take the bandwidth
/// (a relay test saw 50 000 packets dropped against 7 500 relayed).
fn interceptors(media_engine: &mut MediaEngine) -> anyhow::Result<Registry> {
    use rtc::interceptor::{NackGeneratorBuilder, NackResponderBuilder};
    use rtc::peer_connection::configuration::interceptor_registry::{
        Slot, configure_rtcp_reports, configure_simulcast_extension_headers,
        configure_twcc_receiver_only,
    };
    for parameter in ["", "pli"] {
        media_engine.register_feedback(
            RTCPFeedback {
                typ: "nack".to_owned(),
                parameter: parameter.to_owned(),
            },
            RtpCodecKind::Video,
        );
    }
    let registry = Registry::new()
        .with(Slot::NackResponder, NackResponderBuilder::new().build())
        .with(
            Slot::NackGenerator,
            NackGeneratorBuilder::new()
                .with_max_nacks_per_packet(NACK_TRIES)
                .build(),
        );
    configure_simulcast_extension_headers(media_engine)?;
    let registry = configure_twcc_receiver_only(registry, media_engine)?;
    Ok(configure_rtcp_reports(registry))
}

/// How long ICE waits for a better pair before it settles for a relay.
pub const RELAY_ACCEPTANCE_WAIT: Duration = Duration::from_millis(500);

/// ICE reports a path without answers as disconnected after this long.
pub const ICE_DISCONNECTED: Duration = Duration::from_secs(3);
/// And as failed this long after that.
pub const ICE_FAILED_AFTER_DISCONNECTED: Duration = Duration::from_secs(7);

/// A trickled ICE candidate, shaped like the browser's `RTCIceCandidateInit`.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CandidateInit {
    /// The `candidate:...` attribute; empty means end of candidates.
    pub candidate: String,
    /// The `mid` of the m-section it belongs to.
    pub sdp_mid: Option<String>,
    /// The index of the m-section it belongs to.
    pub sdp_mline_index: Option<u16>,
}

impl fmt::Debug for CandidateInit {
    // Candidates carry addresses: keep them out of `{:?}` output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CandidateInit")
            .field("candidate", &"<redacted>")
            .field("sdp_mid", &self.sdp_mid)
            .field("sdp_mline_index", &self.sdp_mline_index)
            .finish()
    }
}

/// What this peer sends as video.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VideoSource {
    /// A moving test pattern with a frame counter, VP8-encoded by libvpx.
    Synthetic {
        /// Width in pixels (even, 16..=1920).
        width: u32,
        /// Height in pixels (even, 16..=1080).
        height: u32,
        /// Frames per second (1..=30).
        fps: u32,
    },
    /// A camera (V4L2 on Linux), scaled to the given size. Without one the
    /// peer sends a still placeholder picture and says so with a
    /// [`PeerEvent::Device`].
    Camera {
        /// Device path (`/dev/video0`); `None` is the first camera.
        device: Option<String>,
        /// Width in pixels (even, 16..=1920).
        width: u32,
        /// Height in pixels (even, 16..=1080).
        height: u32,
        /// Frames per second (1..=30).
        fps: u32,
    },
    /// Send no video (the video transceiver is receive-only).
    None,
}

impl VideoSource {
    /// Size and rate of what is sent, if anything is.
    pub fn params(&self) -> Option<(u32, u32, u32)> {
        match *self {
            VideoSource::Synthetic { width, height, fps }
            | VideoSource::Camera {
                width, height, fps, ..
            } => Some((width, height, fps)),
            VideoSource::None => None,
        }
    }
}

/// What this peer sends as audio.
#[derive(Clone, Debug, PartialEq)]
pub enum AudioSource {
    /// A sine tone, 48 kHz mono, in 20 ms Opus frames.
    Tone {
        /// Frequency in hertz.
        hz: f32,
    },
    /// A microphone: a [`sound::SoundDevice`]'s id or name, or the
    /// system's default. Without one the peer sends silence and says so
    /// with a [`PeerEvent::Device`].
    Microphone {
        /// The device; `None` is the default microphone.
        device: Option<String>,
    },
    /// Send no audio (the audio transceiver is receive-only).
    None,
}

/// Where received audio goes once the jitter buffer has ordered it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum AudioOutput {
    /// Decoded and counted, not played (automation, tests, benches).
    #[default]
    None,
    /// A speaker: a [`sound::SoundDevice`]'s id or name, or the system's
    /// default. Without one the audio is decoded and dropped, and a
    /// [`PeerEvent::Device`] says so.
    Speaker {
        /// The device; `None` is the default speaker.
        device: Option<String>,
    },
}

/// A device a peer uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    /// The microphone.
    Microphone,
    /// The speaker.
    Speaker,
    /// The camera.
    Camera,
}

/// How to build a [`Peer`].
#[derive(Clone, Debug, PartialEq)]
pub struct PeerOptions {
    /// STUN/TURN servers.
    pub ice_servers: Vec<IceServerConfig>,
    /// Bind UDP on this address only (`127.0.0.1` in loopback tests); `None`
    /// binds every non-loopback IPv4 interface.
    pub bind_ip: Option<IpAddr>,
    /// Video to send.
    pub video: VideoSource,
    /// Audio to send.
    pub audio: AudioSource,
    /// Where received audio is played.
    pub audio_output: AudioOutput,
    /// Use relay candidates only (`iceTransportPolicy: "relay"`).
    pub force_relay: bool,
    /// Latest decoded and sent pictures and the mute switches, for a user
    /// interface; `None` copies no frames.
    pub tap: Option<MediaTap>,
}

impl Default for PeerOptions {
    fn default() -> Self {
        Self {
            ice_servers: Vec::new(),
            bind_ip: None,
            video: VideoSource::Synthetic {
                width: 640,
                height: 480,
                fps: 30,
            },
            audio: AudioSource::Tone { hz: 440.0 },
            audio_output: AudioOutput::None,
            force_relay: false,
            tap: None,
        }
    }
}

/// Something that happened to a [`Peer`].
#[derive(Clone, Debug, PartialEq)]
pub enum PeerEvent {
    /// A local candidate to send to the other side.
    LocalCandidate(CandidateInit),
    /// All local candidates have been gathered.
    GatheringComplete,
    /// ICE and DTLS are up; the types of the selected candidate pair.
    Connected {
        /// Our side of the pair.
        local: CandidateKind,
        /// The other side of the pair.
        remote: CandidateKind,
    },
    /// Connectivity was lost (it may come back, or an ICE restart may help).
    Disconnected,
    /// The connection failed for good.
    Failed {
        /// What failed, without addresses.
        reason: String,
    },
    /// The first remote video frame was decoded.
    FirstVideoFrame {
        /// Frame width.
        width: u32,
        /// Frame height.
        height: u32,
    },
    /// A device opened, or could not be opened, or stopped working.
    Device {
        /// Which one.
        kind: DeviceKind,
        /// Whether it is in use now.
        working: bool,
        /// The device's name and format when working; otherwise what went
        /// wrong and what the peer does instead (silence, a still image).
        detail: String,
    },
}

/// Locks `m`, also after a panic elsewhere held it: the data behind the
/// media locks (queues, counters, device state) stays usable.
fn lock<T>(m: &StdMutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// State shared by the `Peer` handle, its event handler and its tasks.
struct Shared {
    counters: Counters,
    events: mpsc::UnboundedSender<PeerEvent>,
    /// `mid` of our first m-section, stamped on outgoing candidates.
    local_mid: StdMutex<Option<String>>,
    first_video: AtomicBool,
    media_started: AtomicBool,
    /// `Peer::request_keyframe` was called; the video receiver sends a PLI.
    keyframe_asked: AtomicBool,
    shutdown: watch::Sender<bool>,
    tasks: StdMutex<Vec<JoinHandle<()>>>,
    /// See [`PeerOptions::tap`].
    tap: Option<MediaTap>,
    /// See [`PeerOptions::audio_output`].
    audio_output: AudioOutput,
}

impl Shared {
    fn emit(&self, event: PeerEvent) {
        // The receiver may be gone (caller stopped listening): not an error.
        let _ = self.events.send(event);
    }

    /// Reports a device's state (see [`PeerEvent::Device`]).
    fn device(&self, kind: DeviceKind, working: bool, detail: String) {
        self.emit(PeerEvent::Device {
            kind,
            working,
            detail,
        });
    }

    fn spawn<F>(&self, fut: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let mut shutdown = self.shutdown.subscribe();
        let handle = tokio::spawn(async move {
            tokio::select! {
                () = fut => {}
                _ = shutdown.wait_for(|stop| *stop) => {}
            }
        });
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.retain(|t| !t.is_finished());
            tasks.push(handle);
        }
    }
}

/// Events from the `webrtc` driver, forwarded to our control task. Handler
/// callbacks run on the driver itself, so they only forward.
enum DriverEvent {
    Candidate(Box<RTCPeerConnectionIceEvent>),
    GatheringComplete,
    IceState(RTCIceConnectionState),
    State(RTCPeerConnectionState),
    Track(Arc<dyn TrackRemote>),
}

struct Handler {
    tx: mpsc::UnboundedSender<DriverEvent>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        let _ = self.tx.send(DriverEvent::Candidate(Box::new(event)));
    }

    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.tx.send(DriverEvent::GatheringComplete);
        }
    }

    async fn on_ice_connection_state_change(&self, state: RTCIceConnectionState) {
        let _ = self.tx.send(DriverEvent::IceState(state));
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.tx.send(DriverEvent::State(state));
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let _ = self.tx.send(DriverEvent::Track(track));
    }
}

/// Remote candidates that arrived before the remote description.
#[derive(Default)]
struct Signalling {
    remote_description_set: bool,
    pending: Vec<CandidateInit>,
}

/// Local media to start once connected.
struct LocalMedia {
    video: Option<(Arc<TrackLocalStaticSample>, Arc<dyn RtpSender>, VideoSource)>,
    audio: Option<(Arc<TrackLocalStaticSample>, Arc<dyn RtpSender>, AudioSource)>,
}

/// One native WebRTC peer connection with Opus and VP8 media.
pub struct Peer {
    pc: Arc<dyn PeerConnection>,
    shared: Arc<Shared>,
    signalling: Mutex<Signalling>,
    closed: AtomicBool,
}

impl fmt::Debug for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Peer")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

fn validate(opts: &PeerOptions) -> anyhow::Result<()> {
    if let Some((width, height, fps)) = opts.video.params() {
        anyhow::ensure!(
            (16..=1920).contains(&width) && width % 2 == 0,
            "video width must be even and in 16..=1920, got {width}"
        );
        anyhow::ensure!(
            (16..=1080).contains(&height) && height % 2 == 0,
            "video height must be even and in 16..=1080, got {height}"
        );
        anyhow::ensure!(
            (1..=30).contains(&fps),
            "video fps must be in 1..=30, got {fps}"
        );
    }
    if let AudioSource::Tone { hz } = opts.audio {
        anyhow::ensure!(
            hz.is_finite() && hz > 0.0 && hz < 20_000.0,
            "tone frequency must be in (0, 20000) Hz"
        );
    }
    anyhow::ensure!(
        !opts.force_relay || !opts.ice_servers.is_empty(),
        "force_relay needs at least one TURN server"
    );
    Ok(())
}

fn opus_codec() -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: MIME_TYPE_OPUS.to_owned(),
            clock_rate: 48_000,
            channels: 2,
            sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
            rtcp_feedback: vec![],
        },
        payload_type: OPUS_PT,
    }
}

fn vp8_codec() -> RTCRtpCodecParameters {
    let fb = |typ: &str, parameter: &str| RTCPFeedback {
        typ: typ.to_owned(),
        parameter: parameter.to_owned(),
    };
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: MIME_TYPE_VP8.to_owned(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: String::new(),
            rtcp_feedback: vec![fb("ccm", "fir"), fb("nack", ""), fb("nack", "pli")],
        },
        payload_type: VP8_PT,
    }
}

fn local_track(
    kind: RtpCodecKind,
    codec: &RTCRtpCodecParameters,
) -> anyhow::Result<TrackLocalStaticSample> {
    // Unique ids: webrtc 0.21 routes inbound RTCP by track id, looking at
    // remote tracks first, so a remote track with the same id as ours (two
    // telenode peers) would swallow the keyframe requests meant for us.
    let stream_id = format!("telenode-{:08x}", rand::random::<u32>());
    let track_id = format!("telenode-{kind}-{:08x}", rand::random::<u32>());
    let track = MediaStreamTrack::new(
        stream_id,
        track_id.clone(),
        track_id,
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(rand::random::<u32>()),
                ..Default::default()
            },
            active: true,
            codec: codec.rtp_codec.clone(),
            ..Default::default()
        }],
    );
    TrackLocalStaticSample::new(Instant::now(), track).context("creating a local track")
}

/// The first `a=mid:` of an SDP, for stamping trickled candidates.
fn first_mid(sdp: &str) -> Option<String> {
    sdp.lines()
        .find_map(|l| l.trim_end().strip_prefix("a=mid:"))
        .map(str::to_owned)
}

impl Peer {
    /// Builds the peer connection, binds its sockets and adds the local
    /// tracks. Media starts flowing once the connection is up.
    pub async fn start(
        opts: PeerOptions,
    ) -> anyhow::Result<(Peer, mpsc::UnboundedReceiver<PeerEvent>)> {
        validate(&opts)?;

        let mut media_engine = MediaEngine::default();
        media_engine
            .register_codec(opus_codec(), RtpCodecKind::Audio)
            .context("registering Opus")?;
        media_engine
            .register_codec(vp8_codec(), RtpCodecKind::Video)
            .context("registering VP8")?;
        let registry = interceptors(&mut media_engine)
            .context("registering interceptors")?
            .with(
                keyframe::KeyframeRequestForwarder::slot(),
                keyframe::KeyframeRequestForwarder::default(),
            );

        let ice_servers = opts
            .ice_servers
            .iter()
            .map(|s| RTCIceServer {
                urls: s.urls.clone(),
                username: s.username.clone().unwrap_or_default(),
                credential: s.credential.clone().unwrap_or_default(),
            })
            .collect();
        let mut config = RTCConfigurationBuilder::new().with_ice_servers(ice_servers);
        if opts.force_relay {
            config = config.with_ice_transport_policy(RTCIceTransportPolicy::Relay);
        }

        // A concrete address is bound as is (loopback included); the
        // wildcard expands to every interface but skips loopback and
        // link-local (webrtc 0.21 `driver.rs`, `expand_wildcard`).
        let bind = SocketAddr::new(opts.bind_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)), 0);

        let (driver_tx, driver_rx) = mpsc::unbounded_channel();
        // A path without answers for 3 s is "disconnected" (the agent starts
        // an ICE restart), 7 s later "failed" (it starts a fresh peer, which
        // binds the interfaces anew); consent checks every second notice
        // it quickly.
        let mut settings = webrtc::peer_connection::SettingEngineBuilder::new().with_ice_timeouts(
            Some(ICE_DISCONNECTED),
            Some(ICE_FAILED_AFTER_DISCONNECTED),
            Some(Duration::from_secs(1)),
        );
        // ICE waits before nominating a relay pair, to give better pairs a
        // chance: 2 s by default, which every relayed call (and every
        // recovery of one) pays. Direct pairs on a usable network answer
        // within a few hundred milliseconds; with relay candidates only
        // there are none to wait for.
        settings = settings.with_relay_acceptance_min_wait(Some(if opts.force_relay {
            Duration::ZERO
        } else {
            RELAY_ACCEPTANCE_WAIT
        }));
        // A peer-reflexive remote is usually the other side's host candidate
        // seen in its first check, before the candidate itself came through
        // the node; webrtc waits 1 s before accepting such a pair, which every
        // call through the node paid.
        settings = settings.with_prflx_acceptance_min_wait(Some(Duration::ZERO));
        let builder = PeerConnectionBuilder::new().with_setting_engine(settings.build());
        let pc = builder
            .with_configuration(config.build())
            .with_media_engine(media_engine)
            .with_interceptor_registry(registry)
            .with_handler(Arc::new(Handler { tx: driver_tx }))
            .with_udp_addrs(vec![bind])
            .build()
            .await
            .context("building the peer connection")?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);

        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (shutdown, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            counters: Counters::default(),
            events: events_tx,
            local_mid: StdMutex::new(None),
            first_video: AtomicBool::new(false),
            media_started: AtomicBool::new(false),
            keyframe_asked: AtomicBool::new(false),
            shutdown,
            tasks: StdMutex::new(Vec::new()),
            tap: opts.tap.clone(),
            audio_output: opts.audio_output.clone(),
        });

        let mut local = LocalMedia {
            video: None,
            audio: None,
        };
        // Audio first, like browsers: m-line 0 is audio, 1 is video.
        match &opts.audio {
            source @ (AudioSource::Tone { .. } | AudioSource::Microphone { .. }) => {
                let track = Arc::new(local_track(RtpCodecKind::Audio, &opus_codec())?);
                let sender = pc
                    .add_track(Arc::clone(&track) as Arc<dyn TrackLocal>)
                    .await
                    .context("adding the audio track")?;
                local.audio = Some((track, sender, source.clone()));
            }
            AudioSource::None => {
                pc.add_transceiver_from_kind(RtpCodecKind::Audio, Some(recvonly()))
                    .await
                    .context("adding the audio transceiver")?;
            }
        }
        match opts.video {
            VideoSource::Synthetic { .. } | VideoSource::Camera { .. } => {
                let track = Arc::new(local_track(RtpCodecKind::Video, &vp8_codec())?);
                let sender = pc
                    .add_track(Arc::clone(&track) as Arc<dyn TrackLocal>)
                    .await
                    .context("adding the video track")?;
                local.video = Some((track, sender, opts.video.clone()));
            }
            VideoSource::None => {
                pc.add_transceiver_from_kind(RtpCodecKind::Video, Some(recvonly()))
                    .await
                    .context("adding the video transceiver")?;
            }
        }

        tokio::spawn(control_loop(
            Arc::clone(&pc),
            Arc::clone(&shared),
            driver_rx,
            local,
        ));
        let stats_pc = Arc::clone(&pc);
        let stats_shared = Arc::clone(&shared);
        shared.spawn(stats::poll_loop(stats_pc, stats_shared));

        info!(bind_loopback = bind.ip().is_loopback(), "peer started");
        Ok((
            Peer {
                pc,
                shared,
                signalling: Mutex::new(Signalling::default()),
                closed: AtomicBool::new(false),
            },
            events_rx,
        ))
    }

    async fn set_local(&self, desc: RTCSessionDescription) -> anyhow::Result<String> {
        let sdp = desc.sdp.clone();
        // Stored before applying: candidates can be reported as soon as the
        // description is set.
        if let Ok(mut mid) = self.shared.local_mid.lock() {
            *mid = first_mid(&sdp);
        }
        self.pc
            .set_local_description(desc)
            .await
            .context("setting the local description")?;
        debug!(sdp = %sdp, "local description set");
        Ok(sdp)
    }

    async fn set_remote(&self, desc: RTCSessionDescription) -> anyhow::Result<()> {
        debug!(sdp = %desc.sdp, "applying remote description");
        let mut signalling = self.signalling.lock().await;
        self.pc
            .set_remote_description(desc)
            .await
            .context("setting the remote description")?;
        signalling.remote_description_set = true;
        for candidate in std::mem::take(&mut signalling.pending) {
            if let Err(err) = self.add_candidate_now(candidate).await {
                warn!(error = %err, "queued remote candidate rejected");
            }
        }
        Ok(())
    }

    /// Creates an offer, sets it as the local description and returns its SDP.
    /// `ice_restart` asks for fresh ICE credentials (and a re-gathering).
    pub async fn create_offer(&self, ice_restart: bool) -> anyhow::Result<String> {
        let options = rtc::peer_connection::configuration::RTCOfferOptions { ice_restart };
        let offer = self
            .pc
            .create_offer(Some(options))
            .await
            .context("creating an offer")?;
        self.set_local(offer).await
    }

    /// Applies the remote answer to our offer.
    pub async fn apply_answer(&self, sdp: &str) -> anyhow::Result<()> {
        let answer = RTCSessionDescription::answer(sdp.to_owned()).context("parsing the answer")?;
        self.set_remote(answer).await
    }

    /// Applies a remote offer and returns our answer (already set locally).
    pub async fn apply_offer(&self, sdp: &str) -> anyhow::Result<String> {
        let offer = RTCSessionDescription::offer(sdp.to_owned()).context("parsing the offer")?;
        self.set_remote(offer).await?;
        let answer = self
            .pc
            .create_answer(None)
            .await
            .context("creating an answer")?;
        self.set_local(answer).await
    }

    /// Adds a trickled remote candidate; queued until the remote description
    /// is set. An empty candidate (end of candidates) is accepted and ignored.
    pub async fn add_remote_candidate(&self, c: CandidateInit) -> anyhow::Result<()> {
        if c.candidate.trim().is_empty() {
            return Ok(());
        }
        let mut signalling = self.signalling.lock().await;
        if !signalling.remote_description_set {
            signalling.pending.push(c);
            return Ok(());
        }
        drop(signalling);
        self.add_candidate_now(c).await
    }

    async fn add_candidate_now(&self, c: CandidateInit) -> anyhow::Result<()> {
        debug!(candidate = %c.candidate, "adding remote candidate");
        self.pc
            .add_ice_candidate(RTCIceCandidateInit {
                candidate: c.candidate,
                sdp_mid: c.sdp_mid,
                sdp_mline_index: c.sdp_mline_index,
                username_fragment: None,
                url: None,
            })
            .await
            .map_err(|e| anyhow!("remote candidate rejected: {e}"))
    }

    /// Media counters; cheap (atomics only).
    pub fn stats(&self) -> MediaStats {
        self.shared.counters.snapshot()
    }

    /// Asks the remote video sender for a keyframe (RTCP PLI), e.g. after
    /// the picture was corrupted. Sent with the next received video packet.
    pub fn request_keyframe(&self) {
        self.shared.keyframe_asked.store(true, Ordering::Relaxed);
    }

    /// The `a=fingerprint` values (`"sha-256 AB:CD:..."`) of the local and
    /// remote descriptions, for the short authentication string. DTLS itself
    /// fails closed if the remote certificate does not match the remote one.
    pub async fn fingerprints(&self) -> (Option<String>, Option<String>) {
        let local = self
            .pc
            .local_description()
            .await
            .and_then(|d| fingerprint(&d.sdp));
        let remote = self
            .pc
            .remote_description()
            .await
            .and_then(|d| fingerprint(&d.sdp));
        (local, remote)
    }

    /// Stops the media tasks and closes the connection. Idempotent.
    pub async fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let _ = self.shared.shutdown.send(true);
        let tasks = self
            .shared
            .tasks
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default();
        for task in tasks {
            task.abort();
        }
        if let Err(err) = self.pc.close().await {
            warn!(error = %err, "closing the peer connection");
        }
        info!("peer closed");
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        // Dropped without `close()`: stop our tasks, and close the connection
        // in the background (a dropped `webrtc` connection on the shared
        // runtime would otherwise keep its driver and sockets alive).
        let _ = self.shared.shutdown.send(true);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let pc = Arc::clone(&self.pc);
            runtime.spawn(async move {
                let _ = pc.close().await;
            });
        }
    }
}

fn recvonly() -> RTCRtpTransceiverInit {
    RTCRtpTransceiverInit {
        direction: RTCRtpTransceiverDirection::Recvonly,
        streams: vec![],
        send_encodings: vec![],
    }
}

/// The first `a=fingerprint:` value of an SDP.
fn fingerprint(sdp: &str) -> Option<String> {
    sdp.lines()
        .find_map(|l| l.trim_end().strip_prefix("a=fingerprint:"))
        .map(str::to_owned)
}

/// Handles driver events: candidates, states, remote tracks; starts media.
async fn control_loop(
    pc: Arc<dyn PeerConnection>,
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<DriverEvent>,
    mut local: LocalMedia,
) {
    let mut shutdown = shared.shutdown.subscribe();
    let mut ice_state = RTCIceConnectionState::New;
    loop {
        let event = tokio::select! {
            ev = rx.recv() => match ev { Some(ev) => ev, None => break },
            _ = shutdown.wait_for(|s| *s) => break,
        };
        match event {
            DriverEvent::Candidate(ev) => match ev.candidate.to_json() {
                Ok(init) => {
                    debug!(candidate = %init.candidate, "local candidate");
                    let mid = shared.local_mid.lock().ok().and_then(|m| m.clone());
                    shared.emit(PeerEvent::LocalCandidate(CandidateInit {
                        candidate: init.candidate,
                        sdp_mid: mid,
                        sdp_mline_index: Some(0),
                    }));
                }
                Err(err) => warn!(error = %err, "could not serialise a local candidate"),
            },
            DriverEvent::GatheringComplete => {
                info!("candidate gathering complete");
                shared.emit(PeerEvent::GatheringComplete);
            }
            DriverEvent::IceState(state) => {
                info!(%state, "ICE connection state");
                ice_state = state;
            }
            DriverEvent::State(state) => {
                info!(%state, "peer connection state");
                match state {
                    RTCPeerConnectionState::Connected => {
                        let (local_kind, remote_kind) = selected_pair(pc.as_ref()).await;
                        info!(local = %local_kind, remote = %remote_kind, "connected");
                        shared.emit(PeerEvent::Connected {
                            local: local_kind,
                            remote: remote_kind,
                        });
                        if !shared.media_started.swap(true, Ordering::AcqRel) {
                            start_local_media(&shared, &mut local).await;
                        }
                    }
                    RTCPeerConnectionState::Disconnected => shared.emit(PeerEvent::Disconnected),
                    RTCPeerConnectionState::Failed => shared.emit(PeerEvent::Failed {
                        reason: format!("peer connection failed (ICE state: {ice_state})"),
                    }),
                    _ => {}
                }
            }
            DriverEvent::Track(track) => {
                let kind = track.kind().await;
                info!(%kind, "remote track");
                match kind {
                    RtpCodecKind::Audio => {
                        shared.spawn(media::receive_audio(track, Arc::clone(&shared)));
                    }
                    RtpCodecKind::Video => {
                        shared.spawn(media::receive_video(track, Arc::clone(&shared)));
                    }
                    _ => {}
                }
            }
        }
    }
    debug!("control loop ended");
}

async fn start_local_media(shared: &Arc<Shared>, local: &mut LocalMedia) {
    if let Some((track, sender, source)) = local.audio.take() {
        match media::SendTarget::resolve(track, sender.as_ref()).await {
            Ok(target) => shared.spawn(media::send_audio(target, source, Arc::clone(shared))),
            Err(err) => warn!(error = %err, "audio not sent"),
        }
    }
    if let Some((track, sender, source)) = local.video.take()
        && source.params().is_some()
    {
        match media::SendTarget::resolve(track, sender.as_ref()).await {
            Ok(target) => shared.spawn(media::send_video(target, source, Arc::clone(shared))),
            Err(err) => warn!(error = %err, "video not sent"),
        }
    }
}

/// Candidate types of the selected pair: from the ICE transport (walked from
/// a sender or receiver), else from the stats report.
async fn selected_pair(pc: &dyn PeerConnection) -> (CandidateKind, CandidateKind) {
    for attempt in 0..20 {
        let mut transports = Vec::new();
        for sender in pc.get_senders().await {
            if let Ok(Some(t)) = sender.transport().await {
                transports.push(t);
            }
        }
        for receiver in pc.get_receivers().await {
            if let Ok(Some(t)) = receiver.transport().await {
                transports.push(t);
            }
        }
        for dtls in transports {
            if let Ok(Some(pair)) = dtls.ice_transport().get_selected_candidate_pair().await
                && let (Some(l), Some(r)) = (
                    CandidateKind::from_rtc(pair.local().typ),
                    CandidateKind::from_rtc(pair.remote().typ),
                )
            {
                return (l, r);
            }
        }
        let report = pc.get_stats(Instant::now(), StatsSelector::None).await;
        if let Some(kinds) = stats::selected_pair_kinds(&report) {
            return kinds;
        }
        debug!(attempt, "selected candidate pair not known yet");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    warn!("selected candidate pair unknown; reporting host/host");
    (CandidateKind::Host, CandidateKind::Host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidate_kind_displays_like_the_browser() {
        let shown: Vec<String> = [
            CandidateKind::Host,
            CandidateKind::Srflx,
            CandidateKind::Prflx,
            CandidateKind::Relay,
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(shown, ["host", "srflx", "prflx", "relay"]);
    }

    #[test]
    fn candidate_debug_hides_the_address() {
        let c = CandidateInit {
            candidate: "candidate:1 1 udp 2130706431 192.0.2.7 5000 typ host".to_owned(),
            sdp_mid: Some("0".to_owned()),
            sdp_mline_index: Some(0),
        };
        assert!(!format!("{c:?}").contains("192.0.2.7"));
    }

    #[test]
    fn first_mid_and_fingerprint_are_read_from_sdp() {
        let sdp = "v=0\r\na=fingerprint:sha-256 AB:CD\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\n";
        assert_eq!(first_mid(sdp).as_deref(), Some("0"));
        assert_eq!(fingerprint(sdp).as_deref(), Some("sha-256 AB:CD"));
    }

    #[test]
    fn options_are_validated() {
        let odd = PeerOptions {
            video: VideoSource::Synthetic {
                width: 641,
                height: 480,
                fps: 30,
            },
            ..PeerOptions::default()
        };
        assert!(validate(&odd).is_err());
        let relay_without_server = PeerOptions {
            force_relay: true,
            ..PeerOptions::default()
        };
        assert!(validate(&relay_without_server).is_err());
        assert!(validate(&PeerOptions::default()).is_ok());
    }
}
