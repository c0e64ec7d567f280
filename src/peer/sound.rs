//! Microphone and speaker through cpal (ALSA on Linux, which reaches
//! PulseAudio or PipeWire through their ALSA plugins on a desktop).
//!
//! cpal's streams are not `Send` on every platform, so each device lives on
//! a thread of its own that owns the stream and ends when its handle is
//! dropped. Between the device's callback and the call sit two small
//! queues: captured audio leaves as 20 ms mono frames at 48 kHz (what Opus
//! encodes), and the speaker drains a bounded ring that the playout task
//! tops up. Rate and channel conversion ([`Resampler`], [`to_mono`]) are
//! pure and tested without a device.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, SampleFormat, SizedSample, StreamConfig};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::lock;
use super::media::{AUDIO_FRAME, AUDIO_RATE};

/// One 20 ms mono frame at 48 kHz.
pub type AudioFrame = [i16; AUDIO_FRAME];

/// Captured frames waiting for the encoder; more means the encoder fell
/// behind, and the newest frames are dropped rather than adding delay.
const CAPTURE_QUEUE_FRAMES: usize = 10;

/// The most the speaker ring holds; beyond it the oldest audio goes.
const SPEAKER_RING_MAX: Duration = Duration::from_millis(500);

/// A microphone or speaker the user can choose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoundDevice {
    /// The backend's own name (an ALSA PCM such as `pulse` or
    /// `hw:CARD=PCH,DEV=0`): what settings store and `--microphone` takes.
    pub id: String,
    /// What the system calls it, for people.
    pub name: String,
}

/// The microphones the system offers.
pub fn microphones() -> Vec<SoundDevice> {
    list(true)
}

/// The speakers (outputs) the system offers.
pub fn speakers() -> Vec<SoundDevice> {
    list(false)
}

fn list(input: bool) -> Vec<SoundDevice> {
    let host = cpal::default_host();
    let devices = if input {
        host.input_devices().map(|d| d.collect::<Vec<_>>())
    } else {
        host.output_devices().map(|d| d.collect::<Vec<_>>())
    };
    let mut out: Vec<SoundDevice> = devices
        .unwrap_or_default()
        .into_iter()
        .filter_map(|d| describe_device(&d))
        .filter(|d| !is_alsa_plugin(&d.id))
        .collect();
    out.dedup_by(|a, b| a.id == b.id);
    out
}

/// ALSA lists its converter and bridge plugins beside the sound devices
/// ("Rate Converter Plugin Using Libav", "JACK", "Discard all samples"):
/// no use to a doctor choosing a microphone, so the list leaves them out
/// (they can still be named by id).
fn is_alsa_plugin(id: &str) -> bool {
    const PLUGINS: [&str; 13] = [
        "null",
        "lavrate",
        "samplerate",
        "speexrate",
        "speex",
        "jack",
        "oss",
        "upmix",
        "vdownmix",
        "a52",
        "usbstream",
        "dmix",
        "dsnoop",
    ];
    PLUGINS.contains(&id)
}

fn describe_device(device: &cpal::Device) -> Option<SoundDevice> {
    let id = device.id().ok()?.1;
    let name = device
        .description()
        .map(|d| d.name().to_owned())
        .unwrap_or_else(|_| id.clone());
    Some(SoundDevice { id, name })
}

/// The device `choice` names (its id or its name), or the system's default.
fn find_device(input: bool, choice: Option<&str>) -> anyhow::Result<cpal::Device> {
    let host = cpal::default_host();
    let what = if input { "microphone" } else { "speaker" };
    let Some(choice) = choice else {
        let default = if input {
            host.default_input_device()
        } else {
            host.default_output_device()
        };
        return default.with_context(|| format!("no {what} found"));
    };
    let devices = if input {
        host.input_devices()
    } else {
        host.output_devices()
    }
    .with_context(|| format!("the {what}s cannot be listed"))?;
    devices
        .into_iter()
        .find(|d| describe_device(d).is_some_and(|s| s.id == choice || s.name == choice))
        .with_context(|| format!("no {what} called {choice:?}"))
}

/// The stream settings to ask for: 48 kHz when the device takes it (no
/// resampling), else its default rate; its default channel count.
fn stream_config(
    device: &cpal::Device,
    input: bool,
) -> anyhow::Result<(StreamConfig, SampleFormat)> {
    let default = if input {
        device.default_input_config()
    } else {
        device.default_output_config()
    }
    .context("the device reports no usable format")?;
    let channels = default.channels();
    let format = default.sample_format();
    anyhow::ensure!(
        channels > 0 && default.sample_rate() > 0,
        "the device reports {channels} channels at {} Hz",
        default.sample_rate()
    );
    let takes_48k = if input {
        device
            .supported_input_configs()
            .map(|c| c.collect::<Vec<_>>())
    } else {
        device
            .supported_output_configs()
            .map(|c| c.collect::<Vec<_>>())
    }
    .unwrap_or_default()
    .iter()
    .any(|r| {
        r.channels() == channels
            && r.sample_format() == format
            && (r.min_sample_rate()..=r.max_sample_rate()).contains(&AUDIO_RATE)
    });
    let rate = if takes_48k {
        AUDIO_RATE
    } else {
        default.sample_rate()
    };
    // 10 ms periods: a backend's default can be a second or more (ALSA's
    // pulse plugin), which a conversation would hear as delay.
    let period = rate / 100;
    let buffer_size = match default.buffer_size() {
        cpal::SupportedBufferSize::Range { min, max } if (*min..=*max).contains(&period) => {
            cpal::BufferSize::Fixed(period)
        }
        _ => cpal::BufferSize::Default,
    };
    Ok((
        StreamConfig {
            channels,
            sample_rate: rate,
            buffer_size,
        },
        format,
    ))
}

// ---------------------------------------------------------------------------
// Pure conversions

/// Averages interleaved `channels` into one.
pub fn to_mono(interleaved: &[f32], channels: usize) -> impl Iterator<Item = f32> + '_ {
    let channels = channels.max(1);
    interleaved
        .chunks_exact(channels)
        .map(move |c| c.iter().sum::<f32>() / channels as f32)
}

/// Linear-interpolation resampler for a continuous mono stream, keeping
/// its position across chunks. Speech at 48 kHz loses nothing audible to
/// linear interpolation from the usual device rates (44.1/48/96 kHz).
#[derive(Debug, Clone)]
pub struct Resampler {
    /// Input samples per output sample.
    step: f64,
    /// Position of the next output sample, in input samples from `prev`.
    pos: f64,
    prev: f32,
}

impl Resampler {
    /// From `from_hz` to `to_hz`.
    pub fn new(from_hz: u32, to_hz: u32) -> Self {
        Self {
            step: f64::from(from_hz) / f64::from(to_hz.max(1)),
            pos: 0.0,
            prev: 0.0,
        }
    }

    /// Resamples `input`, appending to `out`.
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) {
        if (self.step - 1.0).abs() < f64::EPSILON {
            out.extend_from_slice(input);
            return;
        }
        // Sample i of the virtual stream [prev, input...] is at index i.
        let at = |i: usize, prev: f32| if i == 0 { prev } else { input[i - 1] };
        let len = input.len();
        while self.pos < len as f64 {
            let i = self.pos.floor() as usize;
            let frac = (self.pos - i as f64) as f32;
            let (a, b) = (at(i, self.prev), at(i + 1, self.prev));
            out.push(a + (b - a) * frac);
            self.pos += self.step;
        }
        self.pos -= len as f64;
        if let Some(&last) = input.last() {
            self.prev = last;
        }
    }
}

fn to_i16(sample: f32) -> i16 {
    (sample.clamp(-1.0, 1.0) * f32::from(i16::MAX)) as i16
}

// ---------------------------------------------------------------------------
// Microphone

/// An open microphone delivering 20 ms mono frames at 48 kHz.
pub struct Microphone {
    frames: mpsc::Receiver<AudioFrame>,
    description: String,
    device: DeviceThread,
}

impl Microphone {
    /// Opens `choice` (a [`SoundDevice`]'s id or name), or the default
    /// microphone when `None`.
    pub fn open(choice: Option<&str>) -> anyhow::Result<Microphone> {
        let (tx, rx) = mpsc::channel(CAPTURE_QUEUE_FRAMES);
        let (device, description) = DeviceThread::start(true, choice, move |ready| {
            let device = find_device(true, ready.choice.as_deref())?;
            let (config, format) = stream_config(&device, true)?;
            let capture = Capture::new(config.sample_rate, usize::from(config.channels), tx);
            let stream = match format {
                SampleFormat::I16 => input_stream::<i16>(&device, &config, capture, &ready.failed),
                SampleFormat::U16 => input_stream::<u16>(&device, &config, capture, &ready.failed),
                SampleFormat::I32 => input_stream::<i32>(&device, &config, capture, &ready.failed),
                SampleFormat::F32 => input_stream::<f32>(&device, &config, capture, &ready.failed),
                other => anyhow::bail!("sample format {other} is not supported"),
            }?;
            start(stream, &device, &config, "microphone")
        })?;
        info!(device = %description, "microphone open");
        Ok(Microphone {
            frames: rx,
            description,
            device,
        })
    }

    /// The next captured frame; `None` once the device failed or stopped.
    pub async fn next_frame(&mut self) -> Option<AudioFrame> {
        self.frames.recv().await
    }

    /// The device and the format it delivers.
    pub fn describe(&self) -> &str {
        &self.description
    }

    /// Why the device stopped, once it did (unplugged, taken away).
    pub fn failure(&self) -> Option<String> {
        self.device.failure()
    }
}

/// Turns the device's callbacks into 20 ms mono frames at 48 kHz.
struct Capture {
    channels: usize,
    resampler: Resampler,
    mono: Vec<f32>,
    resampled: Vec<f32>,
    pending: Vec<i16>,
    tx: mpsc::Sender<AudioFrame>,
}

impl Capture {
    fn new(rate: u32, channels: usize, tx: mpsc::Sender<AudioFrame>) -> Self {
        Self {
            channels,
            resampler: Resampler::new(rate, AUDIO_RATE),
            mono: Vec::new(),
            resampled: Vec::new(),
            pending: Vec::with_capacity(2 * AUDIO_FRAME),
            tx,
        }
    }

    fn push(&mut self, interleaved: &[f32]) {
        self.mono.clear();
        self.mono.extend(to_mono(interleaved, self.channels));
        self.resampled.clear();
        self.resampler.process(&self.mono, &mut self.resampled);
        self.pending
            .extend(self.resampled.iter().map(|&s| to_i16(s)));
        while self.pending.len() >= AUDIO_FRAME {
            let mut frame = [0i16; AUDIO_FRAME];
            frame.copy_from_slice(&self.pending[..AUDIO_FRAME]);
            self.pending.drain(..AUDIO_FRAME);
            // Full: the encoder fell behind; this frame is dropped.
            let _ = self.tx.try_send(frame);
        }
    }
}

fn input_stream<T>(
    device: &cpal::Device,
    config: &StreamConfig,
    mut capture: Capture,
    failed: &Arc<Mutex<Option<String>>>,
) -> anyhow::Result<cpal::Stream>
where
    T: SizedSample,
    f32: FromSample<T>,
{
    let failed = Arc::clone(failed);
    let mut scratch = Vec::new();
    device
        .build_input_stream(
            config,
            move |data: &[T], _: &cpal::InputCallbackInfo| {
                scratch.clear();
                scratch.extend(data.iter().map(|&s| s.to_sample::<f32>()));
                capture.push(&scratch);
            },
            on_stream_error("microphone", failed),
            None,
        )
        .context("the microphone cannot be opened")
}

/// A stream's error callback. A glitch (an under- or overrun on a busy
/// machine) is counted and the stream goes on; only a device that went
/// away or a stream the system invalidated counts as a failure, once.
fn on_stream_error(
    what: &'static str,
    failed: Arc<Mutex<Option<String>>>,
) -> impl FnMut(cpal::StreamError) + Send + 'static {
    let mut glitches: u64 = 0;
    move |err| match err {
        cpal::StreamError::BufferUnderrun => {
            glitches += 1;
            // The first, then every thousandth: a busy machine can glitch
            // often, and the log must not flood.
            if glitches % 1000 == 1 {
                debug!(device = what, glitches, "audio glitch");
            }
        }
        other => {
            let mut failed = lock(&failed);
            if failed.is_none() {
                warn!(device = what, error = %other, "audio device failed");
                *failed = Some(other.to_string());
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Speaker

/// An open speaker playing what [`Speaker::play`] queues.
pub struct Speaker {
    ring: Arc<Mutex<Ring>>,
    description: String,
    device: DeviceThread,
}

/// Device-rate, interleaved samples waiting for the speaker.
struct Ring {
    samples: VecDeque<f32>,
    rate: u32,
    channels: usize,
    resampler: Resampler,
    /// Samples the device wanted when the ring was empty.
    underruns: u64,
    /// Scratch for `play`, kept so the 20 ms path does not allocate.
    input: Vec<f32>,
    resampled: Vec<f32>,
}

impl Speaker {
    /// Opens `choice` (a [`SoundDevice`]'s id or name), or the default
    /// speaker when `None`.
    pub fn open(choice: Option<&str>) -> anyhow::Result<Speaker> {
        let ring = Arc::new(Mutex::new(Ring {
            samples: VecDeque::new(),
            rate: AUDIO_RATE,
            channels: 1,
            resampler: Resampler::new(AUDIO_RATE, AUDIO_RATE),
            underruns: 0,
            input: Vec::with_capacity(AUDIO_FRAME),
            resampled: Vec::with_capacity(4 * AUDIO_FRAME),
        }));
        let shared = Arc::clone(&ring);
        let (device, description) = DeviceThread::start(false, choice, move |ready| {
            let device = find_device(false, ready.choice.as_deref())?;
            let (config, format) = stream_config(&device, false)?;
            {
                let mut ring = lock(&shared);
                ring.rate = config.sample_rate;
                ring.channels = usize::from(config.channels);
                ring.resampler = Resampler::new(AUDIO_RATE, config.sample_rate);
            }
            let stream = match format {
                SampleFormat::I16 => output_stream::<i16>(&device, &config, &shared, &ready.failed),
                SampleFormat::U16 => output_stream::<u16>(&device, &config, &shared, &ready.failed),
                SampleFormat::I32 => output_stream::<i32>(&device, &config, &shared, &ready.failed),
                SampleFormat::F32 => output_stream::<f32>(&device, &config, &shared, &ready.failed),
                other => anyhow::bail!("sample format {other} is not supported"),
            }?;
            start(stream, &device, &config, "speaker")
        })?;
        info!(device = %description, "speaker open");
        Ok(Speaker {
            ring,
            description,
            device,
        })
    }

    /// Queues 48 kHz mono samples for playing.
    pub fn play(&self, mono: &[i16]) {
        let mut guard = lock(&self.ring);
        let ring = &mut *guard;
        ring.input.clear();
        ring.input
            .extend(mono.iter().map(|&s| f32::from(s) / 32768.0));
        ring.resampled.clear();
        ring.resampler.process(&ring.input, &mut ring.resampled);
        let channels = ring.channels;
        for &s in &ring.resampled {
            for _ in 0..channels {
                ring.samples.push_back(s);
            }
        }
        let max = (SPEAKER_RING_MAX.as_secs_f64() * f64::from(ring.rate)) as usize * channels;
        let excess = ring.samples.len().saturating_sub(max);
        ring.samples.drain(..excess);
    }

    /// Audio queued and not yet handed to the device.
    pub fn queued(&self) -> Duration {
        let ring = lock(&self.ring);
        let frames = ring.samples.len() / ring.channels.max(1);
        Duration::from_secs_f64(frames as f64 / f64::from(ring.rate.max(1)))
    }

    /// Samples the device asked for while nothing was queued.
    pub fn underruns(&self) -> u64 {
        lock(&self.ring).underruns
    }

    /// The device and the format it takes.
    pub fn describe(&self) -> &str {
        &self.description
    }

    /// Why the device stopped, once it did (unplugged, taken away).
    pub fn failure(&self) -> Option<String> {
        self.device.failure()
    }
}

impl std::fmt::Debug for Microphone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Microphone")
            .field("device", &self.description)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Speaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Speaker")
            .field("device", &self.description)
            .finish_non_exhaustive()
    }
}

fn output_stream<T>(
    device: &cpal::Device,
    config: &StreamConfig,
    ring: &Arc<Mutex<Ring>>,
    failed: &Arc<Mutex<Option<String>>>,
) -> anyhow::Result<cpal::Stream>
where
    T: SizedSample + FromSample<f32>,
{
    let ring = Arc::clone(ring);
    let failed = Arc::clone(failed);
    device
        .build_output_stream(
            config,
            move |data: &mut [T], _: &cpal::OutputCallbackInfo| {
                let mut ring = lock(&ring);
                for out in data.iter_mut() {
                    let s = match ring.samples.pop_front() {
                        Some(s) => s,
                        None => {
                            ring.underruns += 1;
                            0.0
                        }
                    };
                    *out = T::from_sample(s);
                }
            },
            on_stream_error("speaker", failed),
            None,
        )
        .context("the speaker cannot be opened")
}

/// A short two-note chime (for a patient arriving), 48 kHz mono.
pub fn chime() -> Vec<i16> {
    let note = |hz: f32, ms: usize| {
        let n = AUDIO_RATE as usize * ms / 1000;
        (0..n).map(move |i| {
            let t = i as f32 / AUDIO_RATE as f32;
            // Quick attack, exponential decay: a soft bell, not a beep.
            let envelope = (t * 200.0).min(1.0) * (-t * 6.0).exp();
            to_i16(0.3 * envelope * (std::f32::consts::TAU * hz * t).sin())
        })
    };
    note(880.0, 250).chain(note(660.0, 450)).collect()
}

/// Plays the chime on `choice` (or the default speaker) and returns at
/// once; without a speaker it logs why and does nothing.
pub fn play_chime(choice: Option<String>) {
    std::thread::spawn(move || match Speaker::open(choice.as_deref()) {
        Ok(speaker) => {
            let sound = chime();
            speaker.play(&sound);
            let length = Duration::from_secs_f64(sound.len() as f64 / f64::from(AUDIO_RATE));
            std::thread::sleep(length + Duration::from_millis(200));
        }
        Err(err) => info!(error = %format!("{err:#}"), "no arrival sound"),
    });
}

/// Starts `stream` and names the device and format, for logs and the
/// window.
fn start(
    stream: cpal::Stream,
    device: &cpal::Device,
    config: &StreamConfig,
    what: &str,
) -> anyhow::Result<Opened> {
    stream
        .play()
        .with_context(|| format!("the {what} does not start"))?;
    let name = describe_device(device).map_or_else(|| "?".to_owned(), |d| d.name);
    Ok((
        Box::new(stream),
        format!(
            "{name} ({} Hz, {} channel(s))",
            config.sample_rate, config.channels
        ),
    ))
}

// ---------------------------------------------------------------------------
// Device thread

/// What the device thread's opener gets.
struct Opening {
    choice: Option<String>,
    failed: Arc<Mutex<Option<String>>>,
}

/// A thread that owns a device's stream until dropped.
struct DeviceThread {
    stop: Option<std::sync::mpsc::Sender<()>>,
    failed: Arc<Mutex<Option<String>>>,
    stopped: Arc<AtomicBool>,
}

type Opened = (Box<dyn std::any::Any>, String);

impl DeviceThread {
    /// Runs `open` on a new thread and keeps what it returns alive there;
    /// returns once it succeeded (with its description) or failed.
    fn start(
        input: bool,
        choice: Option<&str>,
        open: impl FnOnce(Opening) -> anyhow::Result<Opened> + Send + 'static,
    ) -> anyhow::Result<(DeviceThread, String)> {
        let failed = Arc::new(Mutex::new(None));
        let stopped = Arc::new(AtomicBool::new(false));
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let opening = Opening {
            choice: choice.map(str::to_owned),
            failed: Arc::clone(&failed),
        };
        let done = Arc::clone(&stopped);
        std::thread::Builder::new()
            .name(if input { "microphone" } else { "speaker" }.to_owned())
            .spawn(move || {
                match open(opening) {
                    Ok((stream, description)) => {
                        let _ = ready_tx.send(Ok(description));
                        // Until the handle is dropped.
                        let _ = stop_rx.recv();
                        drop(stream);
                    }
                    Err(err) => {
                        let _ = ready_tx.send(Err(err));
                    }
                }
                done.store(true, Ordering::Release);
            })
            .context("no thread for the device")?;
        let description = ready_rx.recv().context("the device thread ended early")??;
        Ok((
            DeviceThread {
                stop: Some(stop_tx),
                failed,
                stopped,
            },
            description,
        ))
    }

    fn failure(&self) -> Option<String> {
        lock(&self.failed).clone().or_else(|| {
            self.stopped
                .load(Ordering::Acquire)
                .then(|| "stopped".to_owned())
        })
    }
}

impl Drop for DeviceThread {
    fn drop(&mut self) {
        // Closing the channel wakes the thread, which drops the stream.
        self.stop.take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(hz: f32, rate: u32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (std::f32::consts::TAU * hz * i as f32 / rate as f32).sin())
            .collect()
    }

    /// Zero crossings per second: a frequency estimate.
    fn crossings_per_second(samples: &[f32], rate: u32) -> f32 {
        let n = samples
            .windows(2)
            .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
            .count();
        n as f32 / 2.0 / (samples.len() as f32 / rate as f32)
    }

    #[test]
    fn resampling_keeps_the_pitch_and_the_length_across_chunks() {
        for (from, to) in [(44_100, 48_000), (48_000, 44_100), (96_000, 48_000)] {
            let input = tone(440.0, from, from as usize * 2);
            let mut r = Resampler::new(from, to);
            let mut out = Vec::new();
            // Uneven chunks, as device callbacks deliver them.
            for chunk in input.chunks(441) {
                r.process(chunk, &mut out);
            }
            let expected = to as usize * 2;
            assert!(
                out.len().abs_diff(expected) <= 2,
                "{from}->{to}: {} samples, wanted {expected}",
                out.len()
            );
            let hz = crossings_per_second(&out, to);
            assert!((hz - 440.0).abs() < 2.0, "{from}->{to}: {hz} Hz");
            // Continuous across chunk borders: no step larger than the
            // tone's own slope allows.
            let max_step = out
                .windows(2)
                .map(|w| (w[1] - w[0]).abs())
                .fold(0.0, f32::max);
            let slope = std::f32::consts::TAU * 440.0 / to as f32;
            assert!(max_step <= slope * 1.05, "{from}->{to}: jump {max_step}");
        }
    }

    #[test]
    fn same_rate_passes_through() {
        let mut r = Resampler::new(48_000, 48_000);
        let mut out = Vec::new();
        r.process(&[0.1, 0.2, 0.3], &mut out);
        assert_eq!(out, vec![0.1, 0.2, 0.3]);
    }

    #[test]
    fn downmix_averages_channels() {
        let mono: Vec<f32> = to_mono(&[1.0, 0.0, 0.5, 0.5, -1.0, -1.0], 2).collect();
        assert_eq!(mono, vec![0.5, 0.5, -1.0]);
        let same: Vec<f32> = to_mono(&[0.25, -0.25], 1).collect();
        assert_eq!(same, vec![0.25, -0.25]);
    }

    #[test]
    fn capture_cuts_44k_stereo_into_20ms_frames_and_drops_when_full() {
        let (tx, mut rx) = mpsc::channel(CAPTURE_QUEUE_FRAMES);
        let mut capture = Capture::new(44_100, 2, tx);
        // One second of stereo 44.1 kHz in 10 ms callbacks.
        let mono = tone(440.0, 44_100, 44_100);
        let stereo: Vec<f32> = mono.iter().flat_map(|&s| [s * 0.5, s * 0.5]).collect();
        for chunk in stereo.chunks(882) {
            capture.push(chunk);
        }
        // 50 frames were made; the queue kept the first ten.
        let mut got = Vec::new();
        while let Ok(frame) = rx.try_recv() {
            got.push(frame);
        }
        assert_eq!(got.len(), CAPTURE_QUEUE_FRAMES);
        let samples: Vec<f32> = got[1].iter().map(|&s| f32::from(s) / 32768.0).collect();
        let peak = samples.iter().fold(0.0f32, |m, s| m.max(s.abs()));
        assert!((peak - 0.5).abs() < 0.02, "peak {peak}");
    }

    #[test]
    fn alsa_plugins_are_not_offered_as_devices() {
        for plugin in ["null", "lavrate", "jack", "upmix"] {
            assert!(is_alsa_plugin(plugin), "{plugin}");
        }
        for device in [
            "default",
            "pulse",
            "pipewire",
            "hw:CARD=PCH,DEV=0",
            "sysdefault:CARD=USB",
        ] {
            assert!(!is_alsa_plugin(device), "{device}");
        }
    }

    #[test]
    fn the_chime_is_audible_and_short() {
        let c = chime();
        assert!(c.len() < AUDIO_RATE as usize);
        assert!(c.iter().any(|&s| s.unsigned_abs() > 5000));
    }

    #[test]
    fn a_missing_device_is_named() {
        let err = Microphone::open(Some("no such microphone")).expect_err("fails");
        assert!(
            format!("{err:#}").contains("no microphone called \"no such microphone\""),
            "{err:#}"
        );
        let err = Speaker::open(Some("no such speaker")).expect_err("fails");
        assert!(format!("{err:#}").contains("no speaker called"), "{err:#}");
    }
}
