//! Media sources and codecs: the synthetic test pattern and tone, VP8
//! (libvpx via `telenode-vpx`) and Opus (libopus via `opus`), RTP frame
//! reassembly, and the send/receive tasks of a [`Peer`](super::Peer).
//!
//! Heavy codec calls (VP8 encode and decode) run on tokio's blocking pool;
//! Opus is cheap enough to run inline.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::media::Sample;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use telenode_vpx::{EncoderConfig, Vp8Decoder, Vp8Encoder};
use tokio::time::MissedTickBehavior;
use tracing::{debug, info, warn};
use webrtc::media_stream::Track;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::rtp_transceiver::RtpSender;

use super::camera::Camera;
use super::congestion::{RateController, fraction_lost};
use super::jitter::{JitterBuffer, Playout};
use super::keyframe::is_keyframe_request;
use super::sound::{Microphone, Speaker};
use super::stats::bump;
use super::tap::{MediaTap, VideoFrame, black_i420, solid_i420};
use super::{AudioOutput, AudioSource, DeviceKind, PeerEvent, Shared, VideoSource, lock};

/// Opus sample rate.
pub const AUDIO_RATE: u32 = 48_000;
/// Samples in one 20 ms Opus frame at 48 kHz.
pub const AUDIO_FRAME: usize = 960;
pub(super) const AUDIO_FRAME_DURATION: Duration = Duration::from_millis(20);
/// Largest Opus frame (120 ms), stereo, for the decoder's output buffer.
const OPUS_MAX_SAMPLES: usize = 5760 * 2;

// ---------------------------------------------------------------------------
// Synthetic video

/// 5x7 bitmaps of the digits 0-9; bit 4 is the leftmost column.
const DIGITS: [[u8; 7]; 10] = [
    [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
    [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
    [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
    [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
    [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
    [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
    [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
    [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
    [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
    [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
];
/// Digits shown by the frame counter.
const COUNTER_DIGITS: usize = 6;
/// Luma steps of the moving ramp (video range 16..=235).
const RAMP_STEPS: usize = 220;

/// A moving test pattern in packed I420: a diagonal luma ramp that scrolls,
/// a bouncing white square, colour bands that shift every second, and a
/// frame counter drawn in large digits in the top-left corner.
#[derive(Debug, Clone)]
pub struct TestPattern {
    width: usize,
    height: usize,
    /// Luma ramp, `width + RAMP_STEPS` long, so every row is one copy.
    ramp: Vec<u8>,
    frame: Vec<u8>,
}

impl TestPattern {
    /// A pattern of `width` x `height` (both even).
    pub fn new(width: u32, height: u32) -> Self {
        let (width, height) = (width as usize, height as usize);
        let ramp = (0..width + RAMP_STEPS)
            .map(|i| (16 + i % RAMP_STEPS) as u8)
            .collect();
        Self {
            width,
            height,
            ramp,
            frame: vec![0; width * height + 2 * (width / 2) * (height / 2)],
        }
    }

    /// Scale of one font pixel, in pixels.
    pub fn digit_scale(&self) -> usize {
        (self.height / 60).max(2)
    }

    /// The counter's box in luma pixels: `(width, height)` from the origin.
    pub fn counter_box(&self) -> (usize, usize) {
        let s = self.digit_scale();
        (
            (COUNTER_DIGITS * 6 + 1).min(self.width / s.max(1)) * s,
            (9 * s).min(self.height),
        )
    }

    /// Renders frame `index` and returns it as packed I420.
    pub fn render(&mut self, index: u64) -> &[u8] {
        let (w, h) = (self.width, self.height);
        let (cw, ch) = (w / 2, h / 2);
        let (luma, chroma) = self.frame.split_at_mut(w * h);
        let (u_plane, v_plane) = chroma.split_at_mut(cw * ch);

        // Scrolling diagonal ramp: each row is a window into `ramp`.
        let shift = (index as usize * 4) % RAMP_STEPS;
        for (y, row) in luma.chunks_exact_mut(w).enumerate() {
            let start = (y / 2 + shift) % RAMP_STEPS;
            row.copy_from_slice(&self.ramp[start..start + w]);
        }

        // A white square bouncing left and right across the middle.
        let side = (h / 8).max(4).min(w).min(h);
        let travel = w.saturating_sub(side).max(1);
        let period = 2 * travel;
        let phase = (index as usize * 6) % period;
        let x0 = if phase < travel {
            phase
        } else {
            period - phase
        };
        let y0 = (h - side) / 2;
        for row in luma.chunks_exact_mut(w).skip(y0).take(side) {
            row[x0..x0 + side].fill(235);
        }

        // Eight colour bands, shifting by one band each second (at 30 fps).
        let bands: [(u8, u8); 8] = [
            (128, 128),
            (44, 142),
            (156, 44),
            (72, 58),
            (184, 198),
            (212, 114),
            (100, 212),
            (128, 128),
        ];
        let turn = (index / 30) as usize;
        let band_of = |x: usize| (x * bands.len() / cw.max(1) + turn) % bands.len();
        if let Some((u_row0, _)) = u_plane.split_at_mut_checked(cw)
            && let Some((v_row0, _)) = v_plane.split_at_mut_checked(cw)
        {
            for x in 0..cw {
                let (u, v) = bands[band_of(x)];
                u_row0[x] = u;
                v_row0[x] = v;
            }
        }
        for plane in [&mut *u_plane, &mut *v_plane] {
            let (first, rest) = plane.split_at_mut(cw);
            for row in rest.chunks_exact_mut(cw) {
                row.copy_from_slice(first);
            }
        }

        self.draw_counter(index);
        &self.frame
    }

    /// Draws `index` (last six digits) white on black, chroma neutral.
    fn draw_counter(&mut self, index: u64) {
        let (w, h) = (self.width, self.height);
        let s = self.digit_scale();
        let (box_w, box_h) = self.counter_box();
        let (luma, chroma) = self.frame.split_at_mut(w * h);
        for row in luma.chunks_exact_mut(w).take(box_h) {
            row[..box_w].fill(16);
        }
        let (cw, ch) = (w / 2, h / 2);
        for plane in chroma.chunks_exact_mut(cw * ch) {
            for row in plane.chunks_exact_mut(cw).take(box_h.div_ceil(2)) {
                row[..box_w.div_ceil(2).min(cw)].fill(128);
            }
        }

        let mut n = index;
        let mut digits = [0usize; COUNTER_DIGITS];
        for d in digits.iter_mut().rev() {
            *d = (n % 10) as usize;
            n /= 10;
        }
        for (pos, &digit) in digits.iter().enumerate() {
            let x_base = (1 + pos * 6) * s;
            for (fy, bits) in DIGITS[digit].iter().enumerate() {
                for fx in 0..5 {
                    if bits & (0x10 >> fx) == 0 {
                        continue;
                    }
                    let x0 = x_base + fx * s;
                    let y0 = (1 + fy) * s;
                    if x0 + s > box_w || y0 + s > box_h {
                        continue;
                    }
                    for row in luma.chunks_exact_mut(w).skip(y0).take(s) {
                        row[x0..x0 + s].fill(235);
                    }
                }
            }
        }
    }
}

/// The video bitrate never goes below this when the network is congested
/// (a usable picture at low resolution).
pub const MIN_VIDEO_KBPS: u32 = 100;

/// Bitrate for a resolution and frame rate: 600 kbit/s at 640x480@30,
/// proportional to pixels per second, within 100..=2000.
pub fn video_bitrate_kbps(width: u32, height: u32, fps: u32) -> u32 {
    let pixels_per_s = u64::from(width) * u64::from(height) * u64::from(fps);
    let kbps = 600 * pixels_per_s / (640 * 480 * 30);
    kbps.clamp(100, 2000) as u32
}

// ---------------------------------------------------------------------------
// Synthetic audio

/// A sine tone generator, 48 kHz mono.
#[derive(Debug, Clone)]
pub struct Tone {
    phase: f64,
    step: f64,
}

impl Tone {
    /// A tone of `hz` hertz.
    pub fn new(hz: f32) -> Self {
        Self {
            phase: 0.0,
            step: std::f64::consts::TAU * f64::from(hz) / f64::from(AUDIO_RATE),
        }
    }

    /// The next 20 ms of samples.
    pub fn next_frame(&mut self) -> [i16; AUDIO_FRAME] {
        let mut out = [0i16; AUDIO_FRAME];
        for sample in &mut out {
            *sample = (self.phase.sin() * 0.25 * f64::from(i16::MAX)) as i16;
            self.phase = (self.phase + self.step) % std::f64::consts::TAU;
        }
        out
    }
}

/// Loss the Opus encoder plans its in-band FEC for, percent, until the
/// receiver reports what it sees.
const OPUS_EXPECTED_LOSS_PCT: i32 = 10;

/// The loss the Opus encoder plans its FEC for, from a reported loss
/// fraction: what was seen, at least 5 % (a little protection costs
/// little), at most 50 %.
pub fn opus_fec_loss_pct(fraction_lost: f64) -> u32 {
    ((fraction_lost * 100.0).round() as u32).clamp(5, 50)
}

/// A mono Opus encoder for 20 ms frames at 48 kHz, with in-band forward
/// error correction: each packet also carries a coarse copy of the previous
/// frame, so a receiver that lost one packet rebuilds it from the next.
pub fn opus_encoder() -> anyhow::Result<opus::Encoder> {
    let mut encoder =
        opus::Encoder::new(AUDIO_RATE, opus::Channels::Mono, opus::Application::Voip)?;
    encoder.set_bitrate(opus::Bitrate::Bits(32_000))?;
    encoder.set_inband_fec(true)?;
    encoder.set_packet_loss_perc(OPUS_EXPECTED_LOSS_PCT)?;
    // Discontinuous transmission: silence (a muted or quiet microphone)
    // costs a packet every 400 ms instead of fifty a second.
    encoder.set_dtx(true)?;
    Ok(encoder)
}

/// Longest Opus packet that is a DTX frame (just the TOC byte, maybe one
/// more): "nothing to hear until the next packet". WebRTC sends the first
/// one of a silent spell and then nothing (`WebRtcOpus_Encode`; NetEq's
/// `IsDtxPacket` uses the same length), and so do we.
pub(super) const OPUS_DTX_MAX_LEN: usize = 2;
/// At most this many frames in a row are left out (Opus sends a
/// comfort-noise update every 400 ms = 20 frames anyway).
const MAX_DTX_RUN: u16 = 25;

/// A stereo Opus decoder (mono streams decode fine into stereo).
pub fn opus_decoder() -> anyhow::Result<opus::Decoder> {
    Ok(opus::Decoder::new(AUDIO_RATE, opus::Channels::Stereo)?)
}

// ---------------------------------------------------------------------------
// VP8 reassembly

/// Packets one frame may span before we give up on it.
const MAX_PACKETS_PER_FRAME: usize = 512;

#[derive(Debug)]
struct Fragment {
    seq: u16,
    marker: bool,
    payload: Bytes,
}

/// Puts VP8 frames back together from RTP packets (RFC 7741).
///
/// A frame is complete when its packets run without a gap from a partition
/// start (`S=1`, `PID=0`) to the marker bit. A frame that cannot complete
/// is dropped; the decoder then waits for a keyframe, which the receive task
/// asks for with a PLI.
#[derive(Debug)]
pub struct Vp8Assembler {
    timestamp: Option<u32>,
    /// The frame with `timestamp` has been handed out already.
    done: bool,
    fragments: Vec<Fragment>,
    need_keyframe: bool,
    /// Something was lost or held back while waiting for a keyframe: worth a
    /// PLI (the first keyframe is on its way anyway, so not asked for).
    starved: bool,
    dropped: u64,
}

impl Default for Vp8Assembler {
    fn default() -> Self {
        Self {
            timestamp: None,
            done: false,
            fragments: Vec::new(),
            need_keyframe: true,
            starved: false,
            dropped: 0,
        }
    }
}

/// `a` is before `b` in RTP timestamp order (modulo wrap-around).
fn ts_before(a: u32, b: u32) -> bool {
    let diff = b.wrapping_sub(a);
    diff != 0 && diff < 0x8000_0000
}

impl Vp8Assembler {
    /// Whether to ask the sender for a keyframe (send a PLI): frames were
    /// lost or held back and no keyframe has come since.
    pub fn wants_keyframe(&self) -> bool {
        self.need_keyframe && self.starved
    }

    /// Marks the decoder as broken: drop frames until the next keyframe.
    pub fn request_keyframe(&mut self) {
        self.need_keyframe = true;
        self.starved = true;
    }

    fn drop_frame(&mut self) {
        self.fragments.clear();
        self.dropped += 1;
        self.request_keyframe();
    }

    /// Frames given up on.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Adds one packet; returns a complete, decodable VP8 frame if this
    /// packet finished one.
    pub fn push(
        &mut self,
        seq: u16,
        timestamp: u32,
        marker: bool,
        payload: Bytes,
    ) -> Option<Vec<u8>> {
        if payload.is_empty() {
            return None; // padding
        }
        match self.timestamp {
            Some(ts) if ts == timestamp => {
                if self.done {
                    return None; // duplicate or retransmission of a finished frame
                }
            }
            Some(ts) if ts_before(timestamp, ts) => return None, // late
            _ => {
                if !self.done && !self.fragments.is_empty() {
                    self.drop_frame();
                }
                self.fragments.clear();
                self.timestamp = Some(timestamp);
                self.done = false;
            }
        }
        if self.fragments.iter().any(|f| f.seq == seq) {
            return None;
        }
        if self.fragments.len() >= MAX_PACKETS_PER_FRAME {
            self.drop_frame();
            self.done = true;
            return None;
        }
        self.fragments.push(Fragment {
            seq,
            marker,
            payload,
        });
        self.try_complete()
    }

    fn try_complete(&mut self) -> Option<Vec<u8>> {
        let end = self.fragments.iter().find(|f| f.marker)?.seq;
        // Order by distance back from the marker packet.
        self.fragments
            .sort_by_key(|f| std::cmp::Reverse(end.wrapping_sub(f.seq)));
        let n = self.fragments.len();
        let contiguous = self
            .fragments
            .iter()
            .enumerate()
            .all(|(i, f)| usize::from(end.wrapping_sub(f.seq)) == n - 1 - i);
        let first = self.fragments.first()?;
        let starts_frame = first.payload.len() > 1 && {
            let b = first.payload[0];
            b & 0x10 != 0 && b & 0x07 == 0
        };
        if !contiguous || !starts_frame {
            return None; // wait for the missing packets
        }

        let mut frame = Vec::with_capacity(self.fragments.iter().map(|f| f.payload.len()).sum());
        for fragment in &self.fragments {
            match vp8_descriptor_len(&fragment.payload) {
                Some(skip) => frame.extend_from_slice(&fragment.payload[skip..]),
                None => {
                    self.drop_frame();
                    self.done = true;
                    return None;
                }
            }
        }
        self.fragments.clear();
        self.done = true;

        // VP8 frame tag: bit 0 of the first byte is 0 for a keyframe.
        let keyframe = frame.first().is_some_and(|b| b & 0x01 == 0);
        if self.need_keyframe && !keyframe {
            self.starved = true;
            return None;
        }
        if keyframe {
            self.need_keyframe = false;
            self.starved = false;
        }
        Some(frame)
    }
}

/// Length of the VP8 payload descriptor (RFC 7741 §4.2) at the start of an
/// RTP payload, if a non-empty VP8 fragment follows it.
///
/// Our own parser rather than `rtc`'s `Vp8Packet`, which rejects payloads
/// shorter than 4 bytes — a valid 1-byte last fragment would lose the frame.
fn vp8_descriptor_len(payload: &[u8]) -> Option<usize> {
    let first = *payload.first()?;
    let mut len = 1;
    if first & 0x80 != 0 {
        // X: extension byte with the I, L, T, K flags.
        let ext = *payload.get(len)?;
        len += 1;
        if ext & 0x80 != 0 {
            // I: picture ID, 15 bits when its M bit is set.
            let picture_id = *payload.get(len)?;
            len += if picture_id & 0x80 != 0 { 2 } else { 1 };
        }
        if ext & 0x40 != 0 {
            len += 1; // L: TL0PICIDX
        }
        if ext & 0x30 != 0 {
            len += 1; // T or K: TID/Y/KEYIDX
        }
    }
    (len < payload.len()).then_some(len)
}

/// Decodes one frame; returns how many pictures came out and the size of the
/// last one.
pub fn decode_vp8(
    decoder: &mut Vp8Decoder,
    frame: &[u8],
) -> anyhow::Result<(u64, Option<(u32, u32)>)> {
    decode_vp8_tapped(decoder, frame, None)
}

/// [`decode_vp8`], also copying the last picture into `tap` if given.
pub fn decode_vp8_tapped(
    decoder: &mut Vp8Decoder,
    frame: &[u8],
    tap: Option<&MediaTap>,
) -> anyhow::Result<(u64, Option<(u32, u32)>)> {
    let mut pictures = decoder.decode(frame)?;
    let mut count = 0;
    let mut last = None;
    while let Some(picture) = pictures.next_frame() {
        count += 1;
        let (width, height) = (picture.width(), picture.height());
        last = Some(match tap {
            Some(_) => (width, height, picture.to_i420()),
            None => (width, height, Vec::new()),
        });
    }
    let size = last.as_ref().map(|(w, h, _)| (*w, *h));
    if let (Some(tap), Some((width, height, i420))) = (tap, last) {
        tap.put_remote(VideoFrame {
            width,
            height,
            i420,
        });
    }
    Ok((count, size))
}

// ---------------------------------------------------------------------------
// Tasks

/// Where a local track's samples go.
pub(super) struct SendTarget {
    track: Arc<TrackLocalStaticSample>,
    ssrc: u32,
    payload_type: u8,
}

impl SendTarget {
    /// Resolves the SSRC and the negotiated payload type (valid once the
    /// connection is up).
    pub(super) async fn resolve(
        track: Arc<TrackLocalStaticSample>,
        sender: &dyn RtpSender,
    ) -> anyhow::Result<Self> {
        let ssrc = *track
            .ssrcs()
            .await
            .first()
            .ok_or_else(|| anyhow::anyhow!("local track has no SSRC"))?;
        let payload_type = sender
            .get_parameters()
            .await?
            .rtp_parameters
            .codecs
            .first()
            .map(|c| c.payload_type)
            .ok_or_else(|| anyhow::anyhow!("no codec negotiated for the sender"))?;
        Ok(Self {
            track,
            ssrc,
            payload_type,
        })
    }

    async fn write(&self, data: Bytes, duration: Duration) -> bool {
        self.write_after_gap(data, duration, 0).await
    }

    /// Writes a sample that follows `skipped` samples of the same duration
    /// left out on purpose (Opus DTX): its timestamp moves past them, its
    /// sequence number does not (vendor/webrtc counts skipped samples
    /// marked as padding that way; see vendor/PATCHES.md).
    async fn write_after_gap(&self, data: Bytes, duration: Duration, skipped: u16) -> bool {
        let sample = Sample {
            data,
            duration,
            prev_dropped_packets: skipped,
            prev_padding_packets: skipped,
            ..Sample::new(Instant::now())
        };
        match self
            .track
            .sample_writer(self.ssrc, self.payload_type)
            .write_sample(&sample)
            .await
        {
            Ok(()) => true,
            Err(err) => {
                debug!(error = %err, "sample not written");
                false
            }
        }
    }
}

/// What went wrong with a device and what the peer does instead, as one
/// sentence for the doctor: "no microphone found — the other side hears
/// silence".
fn device_problem(err: &anyhow::Error, instead: &str) -> String {
    let what = format!("{err:#}");
    format!("{} — {instead}", what.trim_end_matches(['.', ' ']))
}

/// How long a microphone may deliver nothing before the call goes on
/// with silence and says so (a working one delivers every 10–20 ms once
/// started; a sound server may take a second or two to start).
const MICROPHONE_SILENT_LIMIT: Duration = Duration::from_secs(5);
/// How long the sender waits for the microphone before it looks for a
/// device switch again.
const MICROPHONE_POLL: Duration = Duration::from_millis(250);

/// Where the audio to send comes from.
enum AudioInput {
    Tone(Tone),
    Microphone {
        mic: Microphone,
        /// When the last frame came (or the device opened).
        heard: Instant,
    },
    /// No microphone (or it failed): silence, which DTX makes nearly free.
    Silence,
}

impl AudioInput {
    /// Opens what `source` asks for; a microphone that cannot be opened
    /// becomes silence, and the peer says so.
    async fn open(source: AudioSource, shared: &Shared) -> AudioInput {
        match source {
            AudioSource::Tone { hz } => {
                info!(hz, "sending audio");
                shared.device(DeviceKind::Microphone, true, format!("test tone ({hz} Hz)"));
                AudioInput::Tone(Tone::new(hz))
            }
            AudioSource::Microphone { device } => {
                let opened =
                    tokio::task::spawn_blocking(move || Microphone::open(device.as_deref())).await;
                match opened {
                    Ok(Ok(mic)) => {
                        shared.device(DeviceKind::Microphone, true, mic.describe().to_owned());
                        AudioInput::Microphone {
                            mic,
                            heard: Instant::now(),
                        }
                    }
                    Ok(Err(err)) => {
                        warn!(error = %format!("{err:#}"), "no microphone; sending silence");
                        shared.device(
                            DeviceKind::Microphone,
                            false,
                            device_problem(&err, "the other side hears silence"),
                        );
                        AudioInput::Silence
                    }
                    Err(err) => {
                        warn!(error = %err, "microphone task failed; sending silence");
                        AudioInput::Silence
                    }
                }
            }
            // Chosen during the call (a peer starts none without a track).
            AudioSource::None => {
                shared.device(
                    DeviceKind::Microphone,
                    false,
                    "no microphone chosen — the other side hears silence".to_owned(),
                );
                AudioInput::Silence
            }
        }
    }

    /// The next 20 ms: a microphone paces itself; tone and silence follow
    /// `tick`.
    async fn next_frame(
        &mut self,
        tick: &mut tokio::time::Interval,
        shared: &Shared,
    ) -> Option<[i16; AUDIO_FRAME]> {
        if let AudioInput::Microphone { mic, heard } = self {
            // Waits in short steps, so that a device switch is seen soon
            // even while the microphone delivers nothing.
            match tokio::time::timeout(MICROPHONE_POLL, mic.next_frame()).await {
                Ok(Some(frame)) => {
                    *heard = Instant::now();
                    return Some(frame);
                }
                // Starting up (a sound server can take a second or two) or
                // a hiccup: nothing to send yet.
                Err(_) if mic.failure().is_none() && heard.elapsed() < MICROPHONE_SILENT_LIMIT => {
                    return None;
                }
                Ok(None) | Err(_) => {}
            }
            let why = mic
                .failure()
                .unwrap_or_else(|| "it delivers nothing".to_owned());
            warn!(error = %why, "microphone stopped; sending silence");
            shared.device(
                DeviceKind::Microphone,
                false,
                format!("the microphone stopped ({why}) — the other side hears silence"),
            );
            *self = AudioInput::Silence;
            tick.reset();
        }
        tick.tick().await;
        Some(match self {
            AudioInput::Tone(tone) => tone.next_frame(),
            _ => [0; AUDIO_FRAME],
        })
    }
}

/// Encodes 20 ms Opus frames from `source` and sends them. With DTX the
/// encoder marks silent stretches with tiny packets that are not sent:
/// the next real packet's timestamp skips the gap while its sequence
/// number follows on, so the receiver tells a pause from a loss.
pub(super) async fn send_audio(target: SendTarget, source: AudioSource, shared: Arc<Shared>) {
    let mut encoder = match opus_encoder() {
        Ok(e) => e,
        Err(err) => {
            warn!(error = %err, "Opus encoder unavailable; not sending audio");
            return;
        }
    };
    // A peer restarted during the call starts with what was switched to.
    let mut microphone_seen = 0;
    let source = shared
        .tap
        .as_ref()
        .and_then(|t| t.microphone_switch(&mut microphone_seen))
        .unwrap_or(source);
    let mut input = AudioInput::open(source, &shared).await;
    let mut packet = vec![0u8; 1500];
    let mut tick = tokio::time::interval(AUDIO_FRAME_DURATION);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // The receiver's reports on the audio stream: the loss they state sets
    // how much in-band FEC the encoder spends. Reading them also keeps the
    // track's event queue from filling up.
    let loss_pct = Arc::new(AtomicU32::new(OPUS_EXPECTED_LOSS_PCT as u32));
    let _watcher = {
        let loss_pct = Arc::clone(&loss_pct);
        watch_rtcp(&target.track, move |packets| {
            if let Some(loss) = packets
                .iter()
                .filter_map(|p| fraction_lost(p.as_ref()))
                .reduce(f64::max)
            {
                loss_pct.store(opus_fec_loss_pct(loss), Ordering::Relaxed);
            }
        })
    };
    let mut planned = OPUS_EXPECTED_LOSS_PCT as u32;
    // Frames left out by DTX since the last packet sent, and whether the
    // last packet sent was a DTX frame.
    let mut skipped: u16 = 0;
    let mut in_dtx = false;
    loop {
        if let Some(source) = shared
            .tap
            .as_ref()
            .and_then(|t| t.microphone_switch(&mut microphone_seen))
        {
            input = AudioInput::open(source, &shared).await;
            tick.reset();
        }
        let Some(mut pcm) = input.next_frame(&mut tick, &shared).await else {
            continue;
        };
        let wanted = loss_pct.load(Ordering::Relaxed);
        if wanted != planned
            && encoder
                .set_packet_loss_perc(i32::try_from(wanted).unwrap_or(OPUS_EXPECTED_LOSS_PCT))
                .is_ok()
        {
            planned = wanted;
        }
        if shared.tap.as_ref().is_some_and(MediaTap::audio_muted) {
            pcm.fill(0);
        }
        let len = match encoder.encode(&pcm, &mut packet) {
            Ok(len) => len,
            Err(err) => {
                warn!(error = %err, "Opus encode failed");
                continue;
            }
        };
        // 1–2 bytes: a DTX frame (nothing to hear). The first of a run is
        // sent, so the receiver knows that silence follows rather than
        // loss; the rest are left out. Opus itself sends a comfort-noise
        // update every 400 ms.
        if len <= OPUS_DTX_MAX_LEN {
            if in_dtx && skipped < MAX_DTX_RUN {
                skipped += 1;
                bump(&shared.counters.audio_frames_dtx);
                continue;
            }
            in_dtx = true;
        } else {
            in_dtx = false;
        }
        if target
            .write_after_gap(
                Bytes::copy_from_slice(&packet[..len]),
                AUDIO_FRAME_DURATION,
                std::mem::take(&mut skipped),
            )
            .await
        {
            bump(&shared.counters.audio_packets_sent);
        }
    }
}

/// An open camera that is closed on the blocking pool when dropped:
/// closing waits for its capture thread, which must not stall a runtime
/// worker (the send task may be aborted anywhere).
struct OpenCamera(Option<Camera>);

impl Drop for OpenCamera {
    fn drop(&mut self) {
        if let Some(camera) = self.0.take() {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn_blocking(move || drop(camera))),
                Err(_) => drop(camera),
            }
        }
    }
}

/// Where the pictures to send come from.
enum VideoInput {
    Pattern(TestPattern),
    Camera {
        camera: OpenCamera,
        /// The newest picture (the camera may deliver slower than we send).
        last: Vec<u8>,
    },
    /// No camera (or it failed): a still picture.
    Placeholder(Arc<[u8]>),
}

impl VideoInput {
    /// Opens what `source` asks for, at the call's `size` (the source's own
    /// size is ignored: the encoder keeps one); a camera that cannot be
    /// opened becomes the `still` picture, and the peer says so.
    async fn open(
        source: VideoSource,
        (width, height, fps): (u32, u32, u32),
        still: &Arc<[u8]>,
        shared: &Shared,
    ) -> VideoInput {
        match source {
            VideoSource::Camera { device, .. } => {
                let opened = tokio::task::spawn_blocking(move || {
                    Camera::open(device.as_deref(), width, height, fps)
                })
                .await;
                match opened {
                    Ok(Ok(camera)) => {
                        shared.device(DeviceKind::Camera, true, camera.describe());
                        VideoInput::Camera {
                            camera: OpenCamera(Some(camera)),
                            last: still.to_vec(),
                        }
                    }
                    Ok(Err(err)) => {
                        warn!(error = %format!("{err:#}"), "no camera; sending a still picture");
                        shared.device(
                            DeviceKind::Camera,
                            false,
                            device_problem(&err, "the other side sees a still picture"),
                        );
                        VideoInput::Placeholder(Arc::clone(still))
                    }
                    Err(_) => VideoInput::Placeholder(Arc::clone(still)),
                }
            }
            VideoSource::Synthetic { .. } => {
                shared.device(DeviceKind::Camera, true, "test picture".to_owned());
                VideoInput::Pattern(TestPattern::new(width, height))
            }
            // Chosen during the call (a peer starts none without a track):
            // the still picture goes on.
            VideoSource::None => {
                shared.device(
                    DeviceKind::Camera,
                    false,
                    "no camera chosen — the other side sees a still picture".to_owned(),
                );
                VideoInput::Placeholder(Arc::clone(still))
            }
        }
    }

    /// The picture for frame `index` (blocking work: runs on the blocking
    /// pool with the encoder).
    fn picture(&mut self, index: u64) -> &[u8] {
        match self {
            VideoInput::Pattern(pattern) => pattern.render(index),
            VideoInput::Camera { camera, last } => {
                if let Some(frame) = camera.0.as_ref().and_then(Camera::latest) {
                    *last = frame;
                }
                last
            }
            VideoInput::Placeholder(still) => still,
        }
    }

    /// Why the camera stopped, once it did.
    fn camera_failure(&self) -> Option<String> {
        match self {
            VideoInput::Camera { camera, .. } => camera.0.as_ref().and_then(Camera::failure),
            _ => None,
        }
    }
}

/// The still picture sent without a camera: a calm blue-grey, so the far
/// side sees that the picture is there but the camera is not.
pub fn placeholder_i420(width: u32, height: u32) -> Vec<u8> {
    solid_i420(width, height, (90, 140, 118))
}

/// Seconds between two unrequested keyframes.
const PERIODIC_KEYFRAME_SECS: u32 = 10;

/// Shortest gap between two keyframes forced by requests.
const KEYFRAME_GAP: Duration = Duration::from_millis(300);
/// The same on a congested path (target below half the configured
/// bitrate): a keyframe costs several seconds' worth of frames there, and
/// answering every request would keep the path congested.
const KEYFRAME_GAP_CONGESTED: Duration = Duration::from_millis(2000);

/// Hands the RTCP that reaches a local track to `on_packets` until the
/// returned guard is dropped (with the sender that holds it).
fn watch_rtcp(
    track: &Arc<TrackLocalStaticSample>,
    mut on_packets: impl FnMut(&[Box<dyn rtc::rtcp::Packet>]) + Send + 'static,
) -> AbortOnDrop {
    let track = Arc::clone(track);
    AbortOnDrop(tokio::spawn(async move {
        loop {
            match track.poll().await {
                Some(TrackLocalEvent::OnRtcpPacket(packets)) => on_packets(&packets),
                Some(_) => {}
                // Not bound (yet, or during a renegotiation): look again later.
                None => tokio::time::sleep(Duration::from_secs(1)).await,
            }
        }
    }))
}

/// Aborts a task when dropped (the sender's RTCP watcher dies with it).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Takes pictures from `source` (camera, test pattern, placeholder),
/// encodes and sends them, paced by the wall clock.
pub(super) async fn send_video(target: SendTarget, source: VideoSource, shared: Arc<Shared>) {
    let Some((width, height, fps)) = source.params() else {
        return;
    };
    let bitrate = video_bitrate_kbps(width, height, fps);
    let config = EncoderConfig {
        // Receivers ask for keyframes (PLI/FIR) when they need one; the
        // periodic ones are only a fallback.
        keyframe_interval: fps * PERIODIC_KEYFRAME_SECS,
        ..EncoderConfig::realtime(width, height, fps, bitrate)
    };
    let encoder = match Vp8Encoder::new(config) {
        Ok(e) => e,
        Err(err) => {
            warn!(error = %err, "VP8 encoder unavailable; not sending video");
            return;
        }
    };
    let size = (width, height, fps);
    // Without a camera: a still picture, made once.
    let still: Arc<[u8]> = placeholder_i420(width, height).into();
    // A peer restarted during the call starts with what was switched to.
    let mut camera_seen = 0;
    let source = match shared
        .tap
        .as_ref()
        .and_then(|t| t.camera_switch(&mut camera_seen))
    {
        Some(VideoSource::None) | None => source,
        Some(chosen) => chosen,
    };
    let input = VideoInput::open(source, size, &still, &shared).await;
    let mut state = Some((encoder, input));

    // Keyframe requests (PLI/FIR) and the receiver's reports arrive as
    // events on the local track; the reports steer the bitrate.
    let keyframe_wanted = Arc::new(AtomicBool::new(false));
    shared
        .counters
        .video_target_kbps
        .store(u64::from(bitrate), Ordering::Relaxed);
    let _watcher = {
        let wanted = Arc::clone(&keyframe_wanted);
        let shared = Arc::clone(&shared);
        let mut rate = RateController::new(MIN_VIDEO_KBPS.min(bitrate), bitrate);
        watch_rtcp(&target.track, move |packets| {
            if packets.iter().any(|p| is_keyframe_request(p.as_ref())) {
                debug!("keyframe requested");
                wanted.store(true, Ordering::Relaxed);
            }
            for p in packets {
                rate.on_rtcp(p.as_ref());
            }
            let target = u64::from(rate.target_kbps());
            let was = shared
                .counters
                .video_target_kbps
                .swap(target, Ordering::Relaxed);
            if was != target {
                debug!(kbps = target, "video bitrate target");
            }
        })
    };
    let mut last_forced: Option<Instant> = None;

    let frame_duration = Duration::from_secs(1) / fps;
    let mut tick = tokio::time::interval(frame_duration);
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    info!(width, height, fps, bitrate_kbps = bitrate, "sending video");
    let mut index: u64 = 0;
    // Camera off: black pictures keep the stream (and the far side's
    // layout) alive.
    let black: Arc<[u8]> = black_i420(width, height).into();
    loop {
        tick.tick().await;
        let Some((mut encoder, mut input)) = state.take() else {
            return;
        };
        if let Some(choice) = shared
            .tap
            .as_ref()
            .and_then(|t| t.camera_switch(&mut camera_seen))
        {
            // The encoder keeps its size and rate; only the pictures change
            // (a camera closes itself on the blocking pool: `OpenCamera`).
            input = VideoInput::open(choice, size, &still, &shared).await;
        }
        if let Some(why) = input.camera_failure() {
            warn!(error = %why, "camera stopped; sending a still picture");
            shared.device(
                DeviceKind::Camera,
                false,
                format!("the camera stopped ({why}) — the other side sees a still picture"),
            );
            input = VideoInput::Placeholder(Arc::clone(&still));
        }
        let pts = index as i64;
        // Honour a keyframe request, but not more than every KEYFRAME_GAP.
        let gap = if encoder.config().bitrate_kbps * 2 < bitrate {
            KEYFRAME_GAP_CONGESTED
        } else {
            KEYFRAME_GAP
        };
        let force = keyframe_wanted.load(Ordering::Relaxed)
            && last_forced.is_none_or(|t| t.elapsed() >= gap);
        if force {
            keyframe_wanted.store(false, Ordering::Relaxed);
            last_forced = Some(Instant::now());
        }
        let tap = shared.tap.clone();
        let black = Arc::clone(&black);
        let target_kbps = u32::try_from(shared.counters.video_target_kbps.load(Ordering::Relaxed))
            .unwrap_or(bitrate);
        let joined = tokio::task::spawn_blocking(move || {
            // libvpx work, like the encode: on the blocking pool.
            if target_kbps > 0
                && target_kbps != encoder.config().bitrate_kbps
                && let Err(err) = encoder.set_bitrate(target_kbps)
            {
                warn!(error = %err, "VP8 bitrate not changed");
            }
            let result = match &tap {
                Some(tap) if tap.video_muted() => encoder.encode(&black, pts, force),
                Some(tap) => {
                    let picture = input.picture(index);
                    tap.put_local(VideoFrame {
                        width,
                        height,
                        i420: picture.to_vec(),
                    });
                    encoder.encode(picture, pts, force)
                }
                None => encoder.encode(input.picture(index), pts, force),
            };
            (encoder, input, result)
        })
        .await;
        let (encoder, input, result) = match joined {
            Ok(parts) => parts,
            Err(err) => {
                warn!(error = %err, "VP8 encode task failed; not sending video");
                return;
            }
        };
        state = Some((encoder, input));
        index += 1;
        match result {
            Ok(frames) => {
                for frame in frames {
                    let keyframe = frame.keyframe;
                    let size = frame.data.len() as u64;
                    if target.write(Bytes::from(frame.data), frame_duration).await {
                        bump(&shared.counters.video_frames_sent);
                        shared
                            .counters
                            .video_bytes_sent
                            .fetch_add(size, Ordering::Relaxed);
                        if keyframe {
                            bump(&shared.counters.video_keyframes_sent);
                        }
                    }
                }
            }
            Err(err) => warn!(error = %err, "VP8 encode failed"),
        }
    }
}

/// Receives Opus into a jitter buffer; [`play_audio`] takes it out in
/// order and on time.
pub(super) async fn receive_audio(track: Arc<dyn TrackRemote>, shared: Arc<Shared>) {
    let jitter = Arc::new(std::sync::Mutex::new(JitterBuffer::new()));
    // Packets are buffered only once the playout runs (a speaker may take a
    // moment to open): a backlog would only add delay.
    let playing = Arc::new(AtomicBool::new(false));
    // The playout ends with the track (or the peer).
    let _playout = AbortOnDrop(tokio::spawn(play_audio(
        Arc::clone(&jitter),
        Arc::clone(&playing),
        shared.audio_output.clone(),
        Arc::clone(&shared),
    )));
    while let Some(event) = track.poll().await {
        match event {
            TrackRemoteEvent::OnRtpPacket(packet) => {
                bump(&shared.counters.audio_packets_received);
                if packet.payload.is_empty() || !playing.load(Ordering::Acquire) {
                    continue;
                }
                lock(&jitter).push(
                    Instant::now(),
                    packet.header.sequence_number,
                    packet.header.timestamp,
                    packet.payload,
                );
            }
            TrackRemoteEvent::OnEnded => break,
            _ => {}
        }
    }
    debug!("audio track ended");
}

/// How far ahead of the speaker the playout keeps decoded audio: enough to
/// ride out a late wake-up of this task, little enough not to be heard.
const SPEAKER_LEAD: Duration = Duration::from_millis(60);
/// Most frames the playout takes out per wake-up (10 ms apart).
const MAX_POPS_PER_POLL: usize = 8;
/// How often the playout looks at the speaker's queue.
const PLAYOUT_POLL: Duration = Duration::from_millis(10);

/// Opens the speaker `output` names and says how that went; `None` plays
/// nothing (said only when the doctor `chose` it during the call).
async fn open_speaker(output: AudioOutput, chose: bool, shared: &Shared) -> Option<Speaker> {
    let AudioOutput::Speaker { device } = output else {
        if chose {
            shared.device(
                DeviceKind::Speaker,
                false,
                "no speaker chosen — the other side cannot be heard".to_owned(),
            );
        }
        return None;
    };
    let opened = tokio::task::spawn_blocking(move || Speaker::open(device.as_deref())).await;
    match opened {
        Ok(Ok(speaker)) => {
            shared.device(DeviceKind::Speaker, true, speaker.describe().to_owned());
            Some(speaker)
        }
        Ok(Err(err)) => {
            warn!(error = %format!("{err:#}"), "no speaker; audio is not played");
            shared.device(
                DeviceKind::Speaker,
                false,
                device_problem(&err, "the other side cannot be heard"),
            );
            None
        }
        Err(_) => None,
    }
}

/// Takes 20 ms at a time out of the jitter buffer, decodes it (or rebuilds
/// it from FEC, or conceals it) and plays it. With a speaker its clock
/// sets the pace (the queue is kept at [`SPEAKER_LEAD`]); without one the
/// wall clock does.
async fn play_audio(
    jitter: Arc<std::sync::Mutex<JitterBuffer>>,
    playing: Arc<AtomicBool>,
    output: AudioOutput,
    shared: Arc<Shared>,
) {
    let mut decoder = match opus_decoder() {
        Ok(d) => d,
        Err(err) => {
            warn!(error = %err, "Opus decoder unavailable; ignoring audio");
            return;
        }
    };
    // A peer restarted during the call starts with what was switched to.
    let mut speaker_seen = 0;
    let output = shared
        .tap
        .as_ref()
        .and_then(|t| t.speaker_switch(&mut speaker_seen))
        .unwrap_or(output);
    let mut speaker = open_speaker(output, false, &shared).await;
    let mut pcm = vec![0i16; OPUS_MAX_SAMPLES];
    let mut mono = [0i16; AUDIO_FRAME];
    let mut tick = tokio::time::interval(PLAYOUT_POLL);
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut next_due = Instant::now();
    playing.store(true, Ordering::Release);
    loop {
        tick.tick().await;
        if let Some(output) = shared
            .tap
            .as_ref()
            .and_then(|t| t.speaker_switch(&mut speaker_seen))
        {
            speaker = open_speaker(output, true, &shared).await;
            next_due = Instant::now();
        }
        if let Some(why) = speaker.as_ref().and_then(Speaker::failure) {
            warn!(error = %why, "speaker stopped");
            shared.device(
                DeviceKind::Speaker,
                false,
                format!("the speaker stopped ({why}) — the other side cannot be heard"),
            );
            speaker = None;
            next_due = Instant::now();
        }
        // At most a few frames per wake-up: a speaker whose queue does not
        // grow (a broken device) must not keep this task from yielding.
        for _ in 0..MAX_POPS_PER_POLL {
            let now = Instant::now();
            let due = match &speaker {
                Some(s) => s.queued() < SPEAKER_LEAD,
                None => now >= next_due,
            };
            if !due {
                break;
            }
            // Far behind the wall clock (a stalled runtime): catch up by
            // skipping, not by a burst.
            next_due = if now.duration_since(next_due) > Duration::from_millis(200) {
                now + AUDIO_FRAME_DURATION
            } else {
                next_due + AUDIO_FRAME_DURATION
            };
            let decision = lock(&jitter).pop(now);
            let frame = &mut pcm[..2 * AUDIO_FRAME];
            let decoded = match decision {
                Playout::Packet(payload) => decoder
                    .decode(&payload, &mut pcm, false)
                    .inspect(|&n| {
                        if n > 0 {
                            bump(&shared.counters.audio_frames_decoded);
                        }
                    })
                    .map_err(|err| debug!(error = %err, "Opus packet not decoded"))
                    .ok(),
                // FEC needs the lost frame's length: one 20 ms frame, stereo out.
                Playout::Fec(next) => decoder
                    .decode(&next, frame, true)
                    .inspect(|_| bump(&shared.counters.audio_frames_recovered))
                    .ok(),
                Playout::Conceal => decoder
                    .decode(&[], frame, false)
                    .inspect(|_| bump(&shared.counters.audio_frames_concealed))
                    .ok(),
                Playout::Silence => None,
            };
            match decoded {
                // Left channel of the stereo output; the sender is mono.
                Some(n) if n >= AUDIO_FRAME => {
                    for (out, pair) in mono.iter_mut().zip(pcm.chunks_exact(2)) {
                        *out = pair[0];
                    }
                }
                _ => mono.fill(0),
            }
            if let Some(speaker) = &speaker {
                speaker.play(&mono);
            }
        }
        let delay = lock(&jitter).target_delay();
        shared.counters.audio_jitter_delay_ms.store(
            u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }
}

/// Minimum spacing of our keyframe requests.
const PLI_INTERVAL: Duration = Duration::from_millis(500);

/// Receives VP8, reassembles frames and decodes them with libvpx.
pub(super) async fn receive_video(track: Arc<dyn TrackRemote>, shared: Arc<Shared>) {
    let mut decoder = match Vp8Decoder::new() {
        Ok(d) => Some(d),
        Err(err) => {
            warn!(error = %err, "VP8 decoder unavailable; ignoring video");
            return;
        }
    };
    let mut assembler = Vp8Assembler::default();
    let mut last_pli: Option<Instant> = None;
    while let Some(event) = track.poll().await {
        let packet = match event {
            TrackRemoteEvent::OnRtpPacket(packet) => packet,
            TrackRemoteEvent::OnEnded => break,
            _ => continue,
        };
        let media_ssrc = packet.header.ssrc;
        let frame = assembler.push(
            packet.header.sequence_number,
            packet.header.timestamp,
            packet.header.marker,
            packet.payload,
        );
        if let Some(frame) = frame {
            let Some(mut dec) = decoder.take() else {
                return;
            };
            let tap = shared.tap.clone();
            let joined = tokio::task::spawn_blocking(move || {
                let result = decode_vp8_tapped(&mut dec, &frame, tap.as_ref());
                (dec, result)
            })
            .await;
            let Ok((dec, result)) = joined else {
                warn!("VP8 decode task failed; ignoring video");
                return;
            };
            decoder = Some(dec);
            match result {
                Ok((count, size)) => {
                    shared
                        .counters
                        .video_frames_decoded
                        .fetch_add(count, Ordering::Relaxed);
                    if let Some((width, height)) = size
                        && !shared.first_video.swap(true, Ordering::AcqRel)
                    {
                        info!(width, height, "first video frame decoded");
                        shared.emit(PeerEvent::FirstVideoFrame { width, height });
                    }
                }
                Err(err) => {
                    debug!(error = %err, "VP8 frame not decoded");
                    assembler.request_keyframe();
                }
            }
        }
        let asked = shared.keyframe_asked.load(Ordering::Relaxed);
        if (asked || assembler.wants_keyframe())
            && last_pli.is_none_or(|t| t.elapsed() >= PLI_INTERVAL)
        {
            last_pli = Some(Instant::now());
            shared.keyframe_asked.store(false, Ordering::Relaxed);
            let pli = PictureLossIndication {
                sender_ssrc: 0,
                media_ssrc,
            };
            if let Err(err) = track.write_rtcp(vec![Box::new(pli)]).await {
                debug!(error = %err, "PLI not sent");
            }
        }
    }
    debug!(dropped = assembler.dropped(), "video track ended");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(frame: &[u8], width: usize, (w, h): (usize, usize)) -> Vec<u8> {
        frame
            .chunks_exact(width)
            .take(h)
            .flat_map(|row| row[..w].to_vec())
            .collect()
    }

    #[test]
    fn pattern_counter_changes_pixels_and_frames_differ() {
        let mut pattern = TestPattern::new(640, 480);
        let boxed = pattern.counter_box();
        let f7 = pattern.render(7).to_vec();
        let f8 = pattern.render(8).to_vec();
        let f8_again = pattern.render(8).to_vec();
        assert_eq!(f7.len(), 640 * 480 * 3 / 2);
        assert_ne!(f7, f8, "consecutive frames differ");
        assert_eq!(f8, f8_again, "rendering is deterministic");
        let (c7, c8) = (region(&f7, 640, boxed), region(&f8, 640, boxed));
        assert_ne!(c7, c8, "the counter changes between frames 7 and 8");
        // "000008" lights more pixels than "000007".
        let lit = |c: &[u8]| c.iter().filter(|&&p| p == 235).count();
        assert!(lit(&c8) > lit(&c7));
        // The counter does not depend on the scrolling background.
        let mut other = TestPattern::new(640, 480);
        let again = region(other.render(8), 640, boxed);
        assert_eq!(again, c8);
    }

    #[test]
    fn pattern_fits_small_frames() {
        let mut pattern = TestPattern::new(16, 16);
        for i in 0..100 {
            assert_eq!(pattern.render(i).len(), 16 * 16 * 3 / 2);
        }
    }

    #[test]
    fn vp8_round_trip_of_the_pattern() {
        let (w, h) = (320, 240);
        let mut encoder = Vp8Encoder::new(EncoderConfig::realtime(
            w,
            h,
            30,
            video_bitrate_kbps(w, h, 30),
        ))
        .expect("encoder");
        let mut decoder = Vp8Decoder::new().expect("decoder");
        let mut pattern = TestPattern::new(w, h);
        let mut decoded = 0;
        for i in 0..40u64 {
            for frame in encoder
                .encode(pattern.render(i), i as i64, false)
                .expect("encode")
            {
                let (count, size) = decode_vp8(&mut decoder, &frame.data).expect("decode");
                decoded += count;
                assert_eq!(size, Some((w, h)));
            }
        }
        assert_eq!(decoded, 40);
    }

    /// Power of `samples` at `hz` (Goertzel), normalised by length.
    fn power_at(samples: &[f32], hz: f32) -> f32 {
        let w = std::f32::consts::TAU * hz / AUDIO_RATE as f32;
        let coeff = 2.0 * w.cos();
        let (mut s1, mut s2) = (0.0f32, 0.0f32);
        for &x in samples {
            let s0 = x + coeff * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        (s1 * s1 + s2 * s2 - coeff * s1 * s2) / samples.len() as f32
    }

    #[test]
    fn a_lost_opus_packet_is_rebuilt_from_the_next_ones_fec() {
        /// The 440 Hz tone until frame 20, 1000 Hz from there; packet 20 is
        /// lost and rebuilt from packet 21: (power at 1000 Hz, at 440 Hz).
        fn rebuilt(mut encoder: opus::Encoder) -> (f32, f32) {
            let (mut low, mut high) = (Tone::new(440.0), Tone::new(1000.0));
            let packets: Vec<Vec<u8>> = (0..30)
                .map(|i| {
                    let pcm = if i < 20 {
                        low.next_frame()
                    } else {
                        high.next_frame()
                    };
                    let mut packet = [0u8; 1500];
                    let len = encoder.encode(&pcm, &mut packet).expect("encode");
                    packet[..len].to_vec()
                })
                .collect();
            let mut decoder = opus_decoder().expect("decoder");
            let mut pcm = vec![0i16; OPUS_MAX_SAMPLES];
            for p in &packets[..20] {
                decoder.decode(p, &mut pcm, false).expect("decode");
            }
            // FEC decoding needs the lost frame's length (stereo output).
            let n = decoder
                .decode(&packets[21], &mut pcm[..2 * AUDIO_FRAME], true)
                .expect("FEC decode");
            assert_eq!(n, AUDIO_FRAME);
            let frame: Vec<f32> = pcm[..2 * n]
                .iter()
                .step_by(2)
                .map(|&s| f32::from(s))
                .collect();
            (power_at(&frame, 1000.0), power_at(&frame, 440.0))
        }
        // With FEC the lost frame's own content (1000 Hz) comes back.
        let (new, old) = rebuilt(opus_encoder().expect("encoder"));
        assert!(new > 4.0 * old, "FEC: {new} at 1000 Hz vs {old} at 440 Hz");
        // Without it, only concealment: an echo of the frames before.
        let mut plain =
            opus::Encoder::new(AUDIO_RATE, opus::Channels::Mono, opus::Application::Voip)
                .expect("encoder");
        plain
            .set_bitrate(opus::Bitrate::Bits(32_000))
            .expect("bitrate");
        let (new, old) = rebuilt(plain);
        assert!(new < old, "no FEC: {new} at 1000 Hz vs {old} at 440 Hz");
    }

    #[test]
    fn fec_is_planned_for_the_reported_loss_within_bounds() {
        assert_eq!(opus_fec_loss_pct(0.0), 5);
        assert_eq!(opus_fec_loss_pct(0.12), 12);
        assert_eq!(opus_fec_loss_pct(0.9), 50);
    }

    #[test]
    fn opus_tone_round_trip_keeps_the_frequency() {
        let mut encoder = opus_encoder().expect("encoder");
        let mut decoder = opus_decoder().expect("decoder");
        let mut tone = Tone::new(440.0);
        let mut packet = [0u8; 1500];
        let mut pcm = vec![0i16; OPUS_MAX_SAMPLES];
        let mut left = Vec::new();
        for _ in 0..50 {
            let len = encoder
                .encode(&tone.next_frame(), &mut packet)
                .expect("encode");
            let n = decoder
                .decode(&packet[..len], &mut pcm, false)
                .expect("decode");
            assert_eq!(n, AUDIO_FRAME);
            left.extend(pcm[..2 * n].iter().step_by(2).map(|&s| f32::from(s)));
        }
        // Skip the codec's start-up.
        let steady = &left[AUDIO_FRAME * 5..];
        let at_tone = power_at(steady, 440.0);
        let elsewhere = power_at(steady, 1000.0).max(power_at(steady, 200.0));
        assert!(at_tone > 100.0 * elsewhere, "{at_tone} vs {elsewhere}");
    }

    fn vp8_payload(start: bool, body: &[u8]) -> Bytes {
        let mut p = vec![if start { 0x10 } else { 0x00 }];
        p.extend_from_slice(body);
        Bytes::from(p)
    }

    #[test]
    fn assembler_joins_reordered_packets_and_drops_gaps() {
        let mut a = Vp8Assembler::default();
        // Keyframe (tag bit 0 = 0) in three packets, delivered out of order.
        assert!(
            a.push(11, 1000, false, vp8_payload(false, &[2, 2]))
                .is_none()
        );
        assert!(
            a.push(12, 1000, true, vp8_payload(false, &[3, 3]))
                .is_none()
        );
        let frame = a.push(10, 1000, false, vp8_payload(true, &[0, 1, 1]));
        assert_eq!(frame, Some(vec![0, 1, 1, 2, 2, 3, 3]));
        assert!(!a.wants_keyframe());
        // A duplicate of the finished frame is ignored.
        assert!(
            a.push(12, 1000, true, vp8_payload(false, &[3, 3]))
                .is_none()
        );
        // Next frame loses its middle packet: dropped when the next begins.
        assert!(
            a.push(13, 4000, false, vp8_payload(true, &[1, 9, 9]))
                .is_none()
        );
        assert!(
            a.push(15, 4000, true, vp8_payload(false, &[9, 9]))
                .is_none()
        );
        assert!(
            a.push(16, 7000, true, vp8_payload(true, &[1, 5, 5]))
                .is_none()
        );
        assert!(
            a.wants_keyframe(),
            "an inter frame after a loss is held back"
        );
        assert_eq!(a.dropped(), 1);
        // Late packet of an old frame is ignored; a keyframe resumes.
        assert!(
            a.push(14, 4000, false, vp8_payload(false, &[9, 9]))
                .is_none()
        );
        assert!(
            a.push(17, 10000, true, vp8_payload(true, &[0, 7, 7]))
                .is_some()
        );
        assert!(!a.wants_keyframe());
    }

    #[test]
    fn descriptor_lengths_follow_rfc_7741() {
        assert_eq!(vp8_descriptor_len(&[0x10, 0xAA]), Some(1));
        // X, I with a 15-bit picture ID, L, T.
        assert_eq!(
            vp8_descriptor_len(&[0x90, 0xE0, 0x81, 0x02, 0x03, 0x40, 0xAA]),
            Some(6)
        );
        // X, I with a 7-bit picture ID.
        assert_eq!(vp8_descriptor_len(&[0x90, 0x80, 0x05, 0xAA]), Some(3));
        // Nothing after the descriptor, or a truncated descriptor.
        assert_eq!(vp8_descriptor_len(&[0x10]), None);
        assert_eq!(vp8_descriptor_len(&[0x90, 0x80]), None);
        assert_eq!(vp8_descriptor_len(&[]), None);
    }

    #[test]
    fn assembler_survives_garbage() {
        let mut a = Vp8Assembler::default();
        for seq in 0..200u16 {
            let junk = Bytes::from(vec![0xff; usize::from(seq % 5)]);
            let _ = a.push(seq, u32::from(seq / 3), seq % 2 == 0, junk);
        }
    }

    #[test]
    fn bitrate_scales_with_resolution() {
        assert_eq!(video_bitrate_kbps(640, 480, 30), 600);
        assert_eq!(video_bitrate_kbps(320, 240, 15), 100);
        assert_eq!(video_bitrate_kbps(1920, 1080, 30), 2000);
    }
}
