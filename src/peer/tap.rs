//! A small window into a running peer's media for a user interface: the
//! latest decoded remote picture, the latest local (camera) picture, the
//! mute switches of what we send, and device switches during a call.
//!
//! Optional and cheap when absent: a peer without a [`MediaTap`] copies no
//! frames. With one, each decoded or sent picture is copied once into a
//! latest-frame slot; a slow reader only ever sees the newest picture.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::{AudioOutput, AudioSource, VideoSource};

/// One picture in packed I420 (Y plane, then U, then V; chroma halved in
/// both directions, rounded up).
#[derive(Clone, PartialEq, Eq)]
pub struct VideoFrame {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Packed I420 bytes.
    pub i420: Vec<u8>,
}

impl fmt::Debug for VideoFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VideoFrame")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("bytes", &self.i420.len())
            .finish()
    }
}

impl VideoFrame {
    /// The expected length of a packed I420 picture of this size.
    pub fn i420_len(width: u32, height: u32) -> usize {
        let (w, h) = (width as usize, height as usize);
        w * h + 2 * w.div_ceil(2) * h.div_ceil(2)
    }

    /// Converts to RGBA (BT.601, limited range), 4 bytes per pixel. A frame
    /// whose buffer is shorter than its size says yields black pixels where
    /// data is missing instead of panicking.
    pub fn to_rgba(&self) -> Vec<u8> {
        i420_to_rgba(self.width, self.height, &self.i420)
    }
}

/// BT.601 limited-range I420 → RGBA. Missing bytes read as black.
pub fn i420_to_rgba(width: u32, height: u32, i420: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    i420_to_rgba_into(width, height, i420, &mut out);
    out
}

/// [`i420_to_rgba`] into `out` (resized to `width * height * 4` bytes), so
/// that a caller converting picture after picture reuses one buffer.
pub fn i420_to_rgba_into(width: u32, height: u32, i420: &[u8], out: &mut Vec<u8>) {
    let (w, h) = (width as usize, height as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let need = VideoFrame::i420_len(width, height);
    let padded;
    let data = if i420.len() >= need {
        i420
    } else {
        let mut p = black_i420(width, height);
        p[..i420.len()].copy_from_slice(i420);
        padded = p;
        &padded[..]
    };
    let (luma, chroma) = data.split_at(w * h);
    let (u_plane, v_plane) = chroma.split_at(cw * ch);
    // Every byte is written below.
    out.resize(w * h * 4, 0);
    if w == 0 {
        return;
    }
    for (y, out_row) in out.chunks_exact_mut(w * 4).enumerate() {
        let y_row = &luma[y * w..(y + 1) * w];
        let u_row = &u_plane[(y / 2) * cw..(y / 2 + 1) * cw];
        let v_row = &v_plane[(y / 2) * cw..(y / 2 + 1) * cw];
        for (x, px) in out_row.chunks_exact_mut(4).enumerate() {
            let c = 298 * (i32::from(y_row[x]) - 16);
            let u = i32::from(u_row[x / 2]) - 128;
            let v = i32::from(v_row[x / 2]) - 128;
            px[0] = clamp8(c + 409 * v);
            px[1] = clamp8(c - 100 * u - 208 * v);
            px[2] = clamp8(c + 516 * u);
            px[3] = 255;
        }
    }
}

fn clamp8(n: i32) -> u8 {
    ((n + 128) >> 8).clamp(0, 255) as u8
}

#[derive(Default)]
struct Slot {
    frame: Mutex<Option<Arc<VideoFrame>>>,
    /// Pictures put into the slot so far.
    count: AtomicU64,
}

impl Slot {
    fn put(&self, frame: VideoFrame) {
        *super::lock(&self.frame) = Some(Arc::new(frame));
        self.count.fetch_add(1, Ordering::Release);
    }

    fn latest(&self) -> Option<(u64, Arc<VideoFrame>)> {
        let count = self.count.load(Ordering::Acquire);
        let frame = super::lock(&self.frame).clone()?;
        Some((count, frame))
    }
}

/// A device chosen during a call, numbered so each media task sees every
/// change once.
struct Switch<T> {
    choice: Mutex<(u64, Option<T>)>,
}

impl<T> Default for Switch<T> {
    fn default() -> Self {
        Self {
            choice: Mutex::new((0, None)),
        }
    }
}

impl<T: Clone> Switch<T> {
    fn set(&self, choice: T) {
        let mut c = super::lock(&self.choice);
        *c = (c.0 + 1, Some(choice));
    }

    /// The choice, if it changed since `seen` (which is updated).
    fn newer(&self, seen: &mut u64) -> Option<T> {
        let c = super::lock(&self.choice);
        if c.0 == *seen {
            return None;
        }
        *seen = c.0;
        c.1.clone()
    }
}

#[derive(Default)]
struct Inner {
    remote: Slot,
    local: Slot,
    audio_muted: AtomicBool,
    video_muted: AtomicBool,
    microphone: Switch<AudioSource>,
    speaker: Switch<AudioOutput>,
    camera: Switch<VideoSource>,
}

/// Shared between a user interface and the peer(s) of one call; clones share
/// the same slots and switches, and it outlives a peer that is restarted.
#[derive(Clone, Default)]
pub struct MediaTap {
    inner: Arc<Inner>,
}

impl fmt::Debug for MediaTap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MediaTap")
            .field(
                "remote_frames",
                &self.inner.remote.count.load(Ordering::Relaxed),
            )
            .field(
                "local_frames",
                &self.inner.local.count.load(Ordering::Relaxed),
            )
            .field("audio_muted", &self.audio_muted())
            .field("video_muted", &self.video_muted())
            .finish()
    }
}

impl PartialEq for MediaTap {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl MediaTap {
    /// A new, empty tap.
    pub fn new() -> MediaTap {
        MediaTap::default()
    }

    /// The newest decoded remote picture and how many came before it
    /// (a number that grows with every new picture).
    pub fn latest_remote(&self) -> Option<(u64, Arc<VideoFrame>)> {
        self.inner.remote.latest()
    }

    /// The newest picture we sent (the self view).
    pub fn latest_local(&self) -> Option<(u64, Arc<VideoFrame>)> {
        self.inner.local.latest()
    }

    /// Stores a decoded remote picture (called by the peer).
    pub fn put_remote(&self, frame: VideoFrame) {
        self.inner.remote.put(frame);
    }

    /// Stores a sent picture (called by the peer).
    pub fn put_local(&self, frame: VideoFrame) {
        self.inner.local.put(frame);
    }

    /// Sends silence instead of the microphone (the stream keeps flowing).
    pub fn set_audio_muted(&self, muted: bool) {
        self.inner.audio_muted.store(muted, Ordering::Relaxed);
    }

    /// Whether audio is muted.
    pub fn audio_muted(&self) -> bool {
        self.inner.audio_muted.load(Ordering::Relaxed)
    }

    /// Sends black pictures instead of the camera (like a browser's
    /// `track.enabled = false`).
    pub fn set_video_muted(&self, muted: bool) {
        self.inner.video_muted.store(muted, Ordering::Relaxed);
    }

    /// Whether the camera is off.
    pub fn video_muted(&self) -> bool {
        self.inner.video_muted.load(Ordering::Relaxed)
    }

    /// Sends from this microphone from now on (`None` sends silence); a
    /// peer restarted later in the call uses it too.
    pub fn switch_microphone(&self, source: AudioSource) {
        self.inner.microphone.set(source);
    }

    /// Plays on this speaker from now on.
    pub fn switch_speaker(&self, output: AudioOutput) {
        self.inner.speaker.set(output);
    }

    /// Sends from this camera from now on, at the size and rate the call
    /// already sends (the source's own are ignored; `None` sends the
    /// still placeholder picture).
    pub fn switch_camera(&self, source: VideoSource) {
        self.inner.camera.set(source);
    }

    /// The microphone chosen since `seen` (called by the peer).
    pub fn microphone_switch(&self, seen: &mut u64) -> Option<AudioSource> {
        self.inner.microphone.newer(seen)
    }

    /// The speaker chosen since `seen` (called by the peer).
    pub fn speaker_switch(&self, seen: &mut u64) -> Option<AudioOutput> {
        self.inner.speaker.newer(seen)
    }

    /// The camera chosen since `seen` (called by the peer).
    pub fn camera_switch(&self, seen: &mut u64) -> Option<VideoSource> {
        self.inner.camera.newer(seen)
    }
}

/// A black I420 picture of `width` x `height`.
pub fn black_i420(width: u32, height: u32) -> Vec<u8> {
    solid_i420(width, height, (16, 128, 128))
}

/// A uniform I420 picture of `width` x `height` in the colour `(y, u, v)`.
pub fn solid_i420(width: u32, height: u32, (y, u, v): (u8, u8, u8)) -> Vec<u8> {
    let luma = width as usize * height as usize;
    let chroma = (VideoFrame::i420_len(width, height) - luma) / 2;
    let mut frame = vec![y; luma];
    frame.extend(std::iter::repeat_n(u, chroma));
    frame.extend(std::iter::repeat_n(v, chroma));
    frame
}

#[cfg(test)]
mod tests {

    #[test]
    fn device_switches_are_seen_once_by_each_task() {
        let tap = MediaTap::new();
        let (mut a, mut b) = (0, 0);
        assert_eq!(tap.microphone_switch(&mut a), None);
        tap.switch_microphone(AudioSource::Microphone { device: None });
        tap.switch_microphone(AudioSource::None);
        // Only the newest choice counts, once per reader.
        assert_eq!(tap.microphone_switch(&mut a), Some(AudioSource::None));
        assert_eq!(tap.microphone_switch(&mut a), None);
        assert_eq!(tap.microphone_switch(&mut b), Some(AudioSource::None));
        // A task that starts later (a restarted peer) still gets it.
        let mut late = 0;
        assert_eq!(
            tap.clone().microphone_switch(&mut late),
            Some(AudioSource::None)
        );
        // The kinds are separate.
        assert_eq!(tap.camera_switch(&mut 0), None);
        tap.switch_speaker(AudioOutput::Speaker { device: None });
        assert_eq!(
            tap.speaker_switch(&mut 0),
            Some(AudioOutput::Speaker { device: None })
        );
    }

    use super::*;

    #[test]
    fn grey_and_colours_convert() {
        // 2x2: luma 16 (black), 235 (white), 126 (mid grey), 81 (red-ish luma)
        let frame = VideoFrame {
            width: 2,
            height: 2,
            i420: vec![16, 235, 126, 126, 128, 128],
        };
        let rgba = frame.to_rgba();
        assert_eq!(&rgba[0..4], &[0, 0, 0, 255]);
        assert_eq!(&rgba[4..8], &[255, 255, 255, 255]);
        assert!((126..=129).contains(&rgba[8]) && rgba[8] == rgba[9] && rgba[9] == rgba[10]);
        // Pure red in BT.601 limited range: Y=81, U=90, V=240.
        let red = i420_to_rgba(2, 2, &[81, 81, 81, 81, 90, 240]);
        assert!(red[0] > 250 && red[1] < 5 && red[2] < 5, "{:?}", &red[..4]);
    }

    #[test]
    fn conversion_into_a_reused_buffer_matches() {
        let big = black_i420(4, 4);
        let small = vec![81, 81, 81, 81, 90, 240];
        let mut out = Vec::new();
        i420_to_rgba_into(4, 4, &big, &mut out);
        assert_eq!(out, i420_to_rgba(4, 4, &big));
        i420_to_rgba_into(2, 2, &small, &mut out);
        assert_eq!(out, i420_to_rgba(2, 2, &small));
    }

    #[test]
    fn short_buffers_and_odd_sizes_do_not_panic() {
        assert_eq!(i420_to_rgba(3, 3, &[]).len(), 36);
        assert_eq!(VideoFrame::i420_len(3, 3), 9 + 2 * 4);
        assert_eq!(black_i420(3, 3).len(), 17);
        assert_eq!(&i420_to_rgba(3, 3, &black_i420(3, 3))[..4], &[0, 0, 0, 255]);
    }

    #[test]
    fn slots_keep_the_newest_and_count() {
        let tap = MediaTap::new();
        assert!(tap.latest_remote().is_none());
        for i in 0..3u8 {
            tap.put_remote(VideoFrame {
                width: 2,
                height: 2,
                i420: vec![i; 6],
            });
        }
        let (n, f) = tap.latest_remote().expect("a frame");
        assert_eq!(n, 3);
        assert_eq!(f.i420[0], 2);
        let clone = tap.clone();
        clone.set_audio_muted(true);
        assert!(tap.audio_muted() && !tap.video_muted());
        assert_eq!(tap, clone);
        assert_ne!(tap, MediaTap::new());
    }
}
