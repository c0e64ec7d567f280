//! A small, safe VP8 encoder and decoder over the system libvpx.
//!
//! telenode's only `unsafe` lives here, behind a safe API: the FFI comes from
//! `env-libvpx-sys`, which binds the libvpx found by pkg-config (Debian 12:
//! 1.12). Why not an existing wrapper: `vpx-rs` 0.1–0.2.1 needs libvpx ≥ 1.13
//! (`VP9E_SET_QUANTIZER_ONE_PASS`), `media-codec-vpx` needs ≥ 1.15.2 and only
//! decodes, `vpx-encode` only encodes, `vpx` 0.3 needs a nightly compiler and
//! `libvpx` 0.1 is VP9-only.
//!
//! Every libvpx context is boxed so its address never changes after
//! initialisation, and decoded frames borrow the decoder, so a frame cannot be
//! read after the next `decode` call has recycled its buffer.

use std::ffi::{CStr, c_int, c_long, c_uint, c_ulong};
use std::mem::MaybeUninit;
use std::ptr;

use vpx_sys::{
    vp8e_enc_control_id, vpx_codec_ctx_t, vpx_codec_cx_pkt_kind, vpx_codec_err_t, vpx_image_t,
    vpx_img_fmt, vpx_kf_mode, vpx_rc_mode,
};

/// What went wrong inside libvpx, or with the arguments given to it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A libvpx call returned an error code.
    #[error("libvpx {call} failed: {message}")]
    Codec {
        /// The libvpx function that failed.
        call: &'static str,
        /// libvpx's own description of the error.
        message: String,
    },
    /// The encoder configuration cannot be used.
    #[error("invalid encoder configuration: {0}")]
    InvalidConfig(&'static str),
    /// The raw frame handed to the encoder does not match its size.
    #[error("I420 buffer holds {got} bytes, {width}x{height} needs {need}")]
    BadFrame {
        /// Bytes given.
        got: usize,
        /// Bytes needed.
        need: usize,
        /// Configured width.
        width: u32,
        /// Configured height.
        height: u32,
    },
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;

fn check(call: &'static str, ctx: *mut vpx_codec_ctx_t, code: vpx_codec_err_t) -> Result<()> {
    if code == vpx_codec_err_t::VPX_CODEC_OK {
        return Ok(());
    }
    // SAFETY: `vpx_codec_err_to_string` returns a static NUL-terminated string
    // for any code; `vpx_codec_error_detail` returns NULL or a string owned by
    // the context, which is alive here. Both are copied before returning.
    let message = unsafe {
        let base = CStr::from_ptr(vpx_sys::vpx_codec_err_to_string(code))
            .to_string_lossy()
            .into_owned();
        let detail = if ctx.is_null() {
            ptr::null()
        } else {
            vpx_sys::vpx_codec_error_detail(ctx)
        };
        if detail.is_null() {
            base
        } else {
            format!("{base}: {}", CStr::from_ptr(detail).to_string_lossy())
        }
    };
    Err(Error::Codec { call, message })
}

/// Settings of the realtime VP8 encoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncoderConfig {
    /// Frame width in pixels (even).
    pub width: u32,
    /// Frame height in pixels (even).
    pub height: u32,
    /// Nominal frame rate; frame durations are `1/fps`.
    pub fps: u32,
    /// Target bitrate in kbit/s (constant bitrate mode).
    pub bitrate_kbps: u32,
    /// libvpx speed, `-16..=16`; negative values fix the speed (libwebrtc uses -6).
    pub cpu_used: i32,
    /// Encoder threads.
    pub threads: u32,
    /// Longest distance between two keyframes, in frames.
    pub keyframe_interval: u32,
    /// libvpx drops a frame rather than overshoot when its rate buffer
    /// falls below this percentage (0: never drops). This is what lets the
    /// output follow a bitrate the content cannot reach at the coarsest
    /// quantiser.
    pub frame_drop_threshold: u32,
}

impl EncoderConfig {
    /// Realtime settings modelled on libwebrtc's: CBR, no lag, error resilient.
    pub fn realtime(width: u32, height: u32, fps: u32, bitrate_kbps: u32) -> Self {
        Self {
            width,
            height,
            fps,
            bitrate_kbps,
            cpu_used: -6,
            threads: 1,
            keyframe_interval: fps.saturating_mul(3).max(1),
            frame_drop_threshold: 30,
        }
    }
}

/// One compressed VP8 frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedFrame {
    /// The VP8 bitstream of the frame.
    pub data: Vec<u8>,
    /// Whether this is a keyframe.
    pub keyframe: bool,
    /// Presentation timestamp, in frames.
    pub pts: i64,
}

/// A realtime VP8 encoder taking packed I420 frames.
pub struct Vp8Encoder {
    ctx: Box<vpx_codec_ctx_t>,
    /// The libvpx configuration in use (changed by `set_bitrate`).
    cfg: Box<vpx_sys::vpx_codec_enc_cfg_t>,
    config: EncoderConfig,
}

// SAFETY: a libvpx encoder context is plain heap state with no thread
// affinity; `&mut self` on every call serialises access.
unsafe impl Send for Vp8Encoder {}

impl std::fmt::Debug for Vp8Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vp8Encoder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Vp8Encoder {
    /// Creates an encoder.
    pub fn new(config: EncoderConfig) -> Result<Self> {
        if config.width == 0
            || config.height == 0
            || !config.width.is_multiple_of(2)
            || !config.height.is_multiple_of(2)
        {
            return Err(Error::InvalidConfig(
                "width and height must be even and non-zero",
            ));
        }
        if config.width > 4096 || config.height > 4096 {
            return Err(Error::InvalidConfig(
                "width and height must be at most 4096",
            ));
        }
        if config.fps == 0 || config.fps > 120 {
            return Err(Error::InvalidConfig("fps must be in 1..=120"));
        }
        if config.bitrate_kbps == 0 {
            return Err(Error::InvalidConfig("bitrate must be positive"));
        }
        if !(-16..=16).contains(&config.cpu_used) {
            return Err(Error::InvalidConfig("cpu_used must be in -16..=16"));
        }
        // SAFETY: `vpx_codec_vp8_cx` returns a pointer to a static interface.
        // The configuration struct is plain data that
        // `vpx_codec_enc_config_default` fills in completely; the context is
        // boxed (stable address) and initialised by `vpx_codec_enc_init_ver`
        // before any other use. On failure libvpx leaves nothing to free.
        unsafe {
            let iface = vpx_sys::vpx_codec_vp8_cx();
            let mut cfg = MaybeUninit::<vpx_sys::vpx_codec_enc_cfg_t>::zeroed().assume_init();
            check(
                "vpx_codec_enc_config_default",
                ptr::null_mut(),
                vpx_sys::vpx_codec_enc_config_default(iface, &mut cfg, 0),
            )?;
            cfg.g_w = config.width;
            cfg.g_h = config.height;
            cfg.g_timebase.num = 1;
            cfg.g_timebase.den = config.fps as c_int;
            cfg.g_threads = config.threads.max(1);
            cfg.g_lag_in_frames = 0;
            cfg.g_error_resilient = vpx_sys::VPX_ERROR_RESILIENT_DEFAULT;
            cfg.rc_end_usage = vpx_rc_mode::VPX_CBR;
            cfg.rc_target_bitrate = config.bitrate_kbps;
            cfg.rc_dropframe_thresh = config.frame_drop_threshold.min(100);
            cfg.rc_resize_allowed = 0;
            cfg.rc_min_quantizer = 2;
            cfg.rc_max_quantizer = 56;
            cfg.rc_undershoot_pct = 100;
            cfg.rc_overshoot_pct = 15;
            cfg.rc_buf_initial_sz = 500;
            cfg.rc_buf_optimal_sz = 600;
            cfg.rc_buf_sz = 1000;
            cfg.kf_mode = vpx_kf_mode::VPX_KF_AUTO;
            cfg.kf_min_dist = 0;
            cfg.kf_max_dist = config.keyframe_interval.max(1);

            // libvpx keeps a pointer to the configuration (`ctx->config.enc`),
            // so it lives on the heap, beside the context, for as long.
            let cfg = Box::new(cfg);
            let mut ctx = Box::new(MaybeUninit::<vpx_codec_ctx_t>::zeroed().assume_init());
            check(
                "vpx_codec_enc_init_ver",
                ptr::null_mut(),
                vpx_sys::vpx_codec_enc_init_ver(
                    &mut *ctx,
                    iface,
                    &*cfg,
                    0,
                    vpx_sys::VPX_ENCODER_ABI_VERSION as c_int,
                ),
            )?;
            // From here on `encoder`'s Drop destroys the context on error.
            let mut encoder = Self { ctx, cfg, config };
            let ctx_ptr: *mut vpx_codec_ctx_t = &mut *encoder.ctx;
            let controls = [
                (vp8e_enc_control_id::VP8E_SET_CPUUSED, config.cpu_used),
                (vp8e_enc_control_id::VP8E_SET_NOISE_SENSITIVITY, 0),
                (vp8e_enc_control_id::VP8E_SET_STATIC_THRESHOLD, 1),
                (vp8e_enc_control_id::VP8E_SET_TOKEN_PARTITIONS, 0),
                (vp8e_enc_control_id::VP8E_SET_MAX_INTRA_BITRATE_PCT, 300),
            ];
            for (id, value) in controls {
                check(
                    "vpx_codec_control",
                    ctx_ptr,
                    vpx_sys::vpx_codec_control_(ctx_ptr, id as c_int, value as c_int),
                )?;
            }
            Ok(encoder)
        }
    }

    /// The configuration in use (the bitrate as last set).
    pub fn config(&self) -> &EncoderConfig {
        &self.config
    }

    /// Changes the target bitrate from the next frame on (for a sender that
    /// follows the network's capacity).
    pub fn set_bitrate(&mut self, kbps: u32) -> Result<()> {
        if kbps == 0 {
            return Err(Error::InvalidConfig("bitrate must be positive"));
        }
        self.cfg.rc_target_bitrate = kbps;
        let ctx: *mut vpx_codec_ctx_t = &mut *self.ctx;
        // SAFETY: the context was initialised in `new` with this same boxed
        // configuration (libvpx keeps the pointer, which stays valid as long
        // as `self`); only the bitrate changed.
        unsafe {
            check(
                "vpx_codec_enc_config_set",
                ctx,
                vpx_sys::vpx_codec_enc_config_set(ctx, &*self.cfg),
            )?;
        }
        self.config.bitrate_kbps = kbps;
        Ok(())
    }

    /// Encodes one packed I420 frame (`Y` then `U` then `V`, no padding).
    /// Returns the compressed frames libvpx produced (normally exactly one).
    pub fn encode(
        &mut self,
        i420: &[u8],
        pts: i64,
        force_keyframe: bool,
    ) -> Result<Vec<EncodedFrame>> {
        let (w, h) = (self.config.width as usize, self.config.height as usize);
        let need = w * h + 2 * (w / 2) * (h / 2);
        if i420.len() < need {
            return Err(Error::BadFrame {
                got: i420.len(),
                need,
                width: self.config.width,
                height: self.config.height,
            });
        }
        let flags: c_long = if force_keyframe {
            vpx_sys::VPX_EFLAG_FORCE_KF as c_long
        } else {
            0
        };
        let ctx: *mut vpx_codec_ctx_t = &mut *self.ctx;
        let mut out = Vec::new();
        // SAFETY: `vpx_img_wrap` only records pointers into `i420`, which was
        // checked to hold a whole frame and outlives the `vpx_codec_encode`
        // call; the encoder reads the image and never writes it (the `*mut`
        // is an artefact of the C signature). Packets returned by
        // `vpx_codec_get_cx_data` stay valid until the next encode call on
        // this context; each frame's bytes are copied out before that.
        unsafe {
            let mut image = MaybeUninit::<vpx_image_t>::zeroed().assume_init();
            let wrapped = vpx_sys::vpx_img_wrap(
                &mut image,
                vpx_img_fmt::VPX_IMG_FMT_I420,
                w as c_uint,
                h as c_uint,
                1,
                i420.as_ptr() as *mut u8,
            );
            if wrapped.is_null() {
                return Err(Error::Codec {
                    call: "vpx_img_wrap",
                    message: "could not wrap the frame".to_owned(),
                });
            }
            check(
                "vpx_codec_encode",
                ctx,
                vpx_sys::vpx_codec_encode(
                    ctx,
                    &image,
                    pts,
                    1,
                    flags,
                    vpx_sys::VPX_DL_REALTIME as c_ulong,
                ),
            )?;
            let mut iter: vpx_sys::vpx_codec_iter_t = ptr::null();
            loop {
                let pkt = vpx_sys::vpx_codec_get_cx_data(ctx, &mut iter);
                let Some(pkt) = pkt.as_ref() else { break };
                if pkt.kind != vpx_codec_cx_pkt_kind::VPX_CODEC_CX_FRAME_PKT {
                    continue;
                }
                let frame = &pkt.data.frame;
                if frame.buf.is_null() {
                    continue;
                }
                let Ok(len) = usize::try_from(frame.sz) else {
                    continue;
                };
                let data = std::slice::from_raw_parts(frame.buf as *const u8, len).to_vec();
                out.push(EncodedFrame {
                    data,
                    keyframe: frame.flags & vpx_sys::VPX_FRAME_IS_KEY != 0,
                    pts: frame.pts,
                });
            }
        }
        Ok(out)
    }
}

impl Drop for Vp8Encoder {
    fn drop(&mut self) {
        // SAFETY: the context was initialised in `new` and is destroyed once.
        unsafe {
            vpx_sys::vpx_codec_destroy(&mut *self.ctx);
        }
    }
}

/// A VP8 decoder.
pub struct Vp8Decoder {
    ctx: Box<vpx_codec_ctx_t>,
}

// SAFETY: as for the encoder: heap state without thread affinity, accessed
// through `&mut self` only.
unsafe impl Send for Vp8Decoder {}

impl std::fmt::Debug for Vp8Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vp8Decoder").finish_non_exhaustive()
    }
}

impl Vp8Decoder {
    /// Creates a single-threaded decoder.
    pub fn new() -> Result<Self> {
        // SAFETY: as in `Vp8Encoder::new`: static interface, plain-data
        // config, boxed context initialised before use.
        unsafe {
            let iface = vpx_sys::vpx_codec_vp8_dx();
            let cfg = vpx_sys::vpx_codec_dec_cfg_t {
                threads: 1,
                w: 0,
                h: 0,
            };
            let mut ctx = Box::new(MaybeUninit::<vpx_codec_ctx_t>::zeroed().assume_init());
            check(
                "vpx_codec_dec_init_ver",
                ptr::null_mut(),
                vpx_sys::vpx_codec_dec_init_ver(
                    &mut *ctx,
                    iface,
                    &cfg,
                    0,
                    vpx_sys::VPX_DECODER_ABI_VERSION as c_int,
                ),
            )?;
            Ok(Self { ctx })
        }
    }

    /// Decodes one compressed frame and returns the pictures it produced
    /// (zero or one for VP8). They borrow the decoder: read them before the
    /// next call.
    pub fn decode(&mut self, data: &[u8]) -> Result<DecodedFrames<'_>> {
        let len = c_uint::try_from(data.len()).map_err(|_| Error::Codec {
            call: "vpx_codec_decode",
            message: "frame larger than 4 GiB".to_owned(),
        })?;
        let ctx: *mut vpx_codec_ctx_t = &mut *self.ctx;
        // SAFETY: libvpx reads `len` bytes from `data` during the call and
        // keeps no reference to it afterwards.
        unsafe {
            check(
                "vpx_codec_decode",
                ctx,
                vpx_sys::vpx_codec_decode(ctx, data.as_ptr(), len, ptr::null_mut(), 0),
            )?;
        }
        Ok(DecodedFrames {
            decoder: self,
            iter: ptr::null(),
        })
    }
}

impl Drop for Vp8Decoder {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, destroyed once.
        unsafe {
            vpx_sys::vpx_codec_destroy(&mut *self.ctx);
        }
    }
}

/// Pictures produced by one [`Vp8Decoder::decode`] call.
pub struct DecodedFrames<'a> {
    decoder: &'a mut Vp8Decoder,
    iter: vpx_sys::vpx_codec_iter_t,
}

impl std::fmt::Debug for DecodedFrames<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecodedFrames").finish_non_exhaustive()
    }
}

impl DecodedFrames<'_> {
    /// The next decoded picture, if any. Borrowing `self` mutably ties the
    /// picture's lifetime to this iterator, and so to the decoder.
    pub fn next_frame(&mut self) -> Option<Frame<'_>> {
        let ctx: *mut vpx_codec_ctx_t = &mut *self.decoder.ctx;
        // SAFETY: the returned image is owned by the decoder and stays valid
        // until the next `vpx_codec_decode` on it, which cannot happen while
        // the returned `Frame` borrows `self` (and through it the decoder).
        let img = unsafe { vpx_sys::vpx_codec_get_frame(ctx, &mut self.iter).as_ref()? };
        // Only 8-bit 4:2:0 is meaningful for VP8; skip anything else.
        if img.fmt != vpx_img_fmt::VPX_IMG_FMT_I420 && img.fmt != vpx_img_fmt::VPX_IMG_FMT_YV12 {
            return None;
        }
        Some(Frame { img })
    }
}

/// A decoded 8-bit 4:2:0 picture.
pub struct Frame<'a> {
    img: &'a vpx_image_t,
}

impl std::fmt::Debug for Frame<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frame")
            .field("width", &self.width())
            .field("height", &self.height())
            .finish()
    }
}

/// Which plane of a picture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plane {
    /// Luma.
    Y,
    /// Blue-difference chroma.
    U,
    /// Red-difference chroma.
    V,
}

impl Frame<'_> {
    /// Displayed width in pixels.
    pub fn width(&self) -> u32 {
        self.img.d_w
    }

    /// Displayed height in pixels.
    pub fn height(&self) -> u32 {
        self.img.d_h
    }

    fn plane_geometry(&self, plane: Plane) -> (usize, usize, usize, usize) {
        let (w, h) = (self.img.d_w as usize, self.img.d_h as usize);
        let swap = self.img.fmt == vpx_img_fmt::VPX_IMG_FMT_YV12;
        let index = match (plane, swap) {
            (Plane::Y, _) => 0,
            (Plane::U, false) | (Plane::V, true) => 1,
            (Plane::V, false) | (Plane::U, true) => 2,
        };
        let (pw, ph) = if index == 0 {
            (w, h)
        } else {
            (w.div_ceil(2), h.div_ceil(2))
        };
        let stride = usize::try_from(self.img.stride[index]).unwrap_or(0);
        (index, pw, ph, stride)
    }

    /// One row of a plane (`row` < plane height), or `None` if out of range.
    pub fn row(&self, plane: Plane, row: usize) -> Option<&[u8]> {
        let (index, pw, ph, stride) = self.plane_geometry(plane);
        if row >= ph || stride < pw || self.img.planes[index].is_null() {
            return None;
        }
        // SAFETY: libvpx guarantees each plane holds at least `ph` rows of
        // `stride` bytes with `stride >= pw`; the slice covers `pw` bytes of
        // row `row < ph`, and lives no longer than the borrow of the image.
        unsafe {
            Some(std::slice::from_raw_parts(
                self.img.planes[index].add(row * stride),
                pw,
            ))
        }
    }

    /// Copies the picture out as packed I420 (`Y`, `U`, `V`, no padding).
    pub fn to_i420(&self) -> Vec<u8> {
        let (w, h) = (self.img.d_w as usize, self.img.d_h as usize);
        let mut out = Vec::with_capacity(w * h + 2 * w.div_ceil(2) * h.div_ceil(2));
        for plane in [Plane::Y, Plane::U, Plane::V] {
            let (_, _, ph, _) = self.plane_geometry(plane);
            for row in 0..ph {
                if let Some(bytes) = self.row(plane, row) {
                    out.extend_from_slice(bytes);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(width: u32, height: u32, shift: u32) -> Vec<u8> {
        let (w, h) = (width as usize, height as usize);
        let mut buf = vec![128u8; w * h + 2 * (w / 2) * (h / 2)];
        for y in 0..h {
            for x in 0..w {
                buf[y * w + x] = ((x + y + shift as usize) % 256) as u8;
            }
        }
        buf
    }

    #[test]
    fn vp8_round_trip_keeps_dimensions() {
        let config = EncoderConfig::realtime(320, 240, 30, 300);
        let mut encoder = Vp8Encoder::new(config).expect("encoder");
        let mut decoder = Vp8Decoder::new().expect("decoder");
        let mut decoded = 0;
        for i in 0..30 {
            let frames = encoder
                .encode(&gradient(320, 240, i * 3), i64::from(i), false)
                .expect("encode");
            for frame in frames {
                if i == 0 {
                    assert!(frame.keyframe, "the first frame is a keyframe");
                }
                let mut pictures = decoder.decode(&frame.data).expect("decode");
                while let Some(picture) = pictures.next_frame() {
                    assert_eq!((picture.width(), picture.height()), (320, 240));
                    assert_eq!(picture.to_i420().len(), 320 * 240 * 3 / 2);
                    decoded += 1;
                }
            }
        }
        assert_eq!(decoded, 30);
    }

    #[test]
    fn forced_keyframe_is_a_keyframe() {
        let mut encoder =
            Vp8Encoder::new(EncoderConfig::realtime(64, 48, 30, 100)).expect("encoder");
        for i in 0..5 {
            let _ = encoder.encode(&gradient(64, 48, i), i64::from(i), false);
        }
        let frames = encoder
            .encode(&gradient(64, 48, 9), 5, true)
            .expect("encode");
        assert!(frames.iter().all(|f| f.keyframe) && !frames.is_empty());
    }

    /// Bytes the encoder produces for `frames` moving frames from `start`.
    fn bytes_for(encoder: &mut Vp8Encoder, start: u32, frames: u32) -> usize {
        (start..start + frames)
            .flat_map(|i| {
                encoder
                    .encode(&noise(320, 240, i), i64::from(i), false)
                    .expect("encode")
            })
            .map(|f| f.data.len())
            .sum()
    }

    /// A moving gradient with fresh grain in every frame: what a camera
    /// sends, more or less; its size follows the encoder's bitrate.
    fn noise(width: u32, height: u32, seed: u32) -> Vec<u8> {
        let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        gradient(width, height, seed * 3)
            .into_iter()
            .map(|v| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                v.wrapping_add((x >> 28) as u8)
            })
            .collect()
    }

    #[test]
    fn a_lower_bitrate_takes_effect_on_the_running_encoder() {
        let mut encoder =
            Vp8Encoder::new(EncoderConfig::realtime(320, 240, 30, 1500)).expect("encoder");
        let _ = bytes_for(&mut encoder, 0, 30);
        let high = bytes_for(&mut encoder, 30, 60);
        encoder.set_bitrate(150).expect("set bitrate");
        assert_eq!(encoder.config().bitrate_kbps, 150);
        let _ = bytes_for(&mut encoder, 90, 30);
        let low = bytes_for(&mut encoder, 120, 60);
        // Far less than before, and what an encoder made for 150 kbit/s
        // produces (libvpx's quantiser limit keeps both above 150 kbit/s
        // with this much grain).
        let mut fresh =
            Vp8Encoder::new(EncoderConfig::realtime(320, 240, 30, 150)).expect("encoder");
        let _ = bytes_for(&mut fresh, 90, 30);
        let reference = bytes_for(&mut fresh, 120, 60);
        assert!(low * 2 < high, "{high} bytes, then {low} bytes");
        assert!(
            low.abs_diff(reference) * 4 < reference,
            "{low} bytes after the change, {reference} from a 150 kbit/s encoder"
        );
        assert!(encoder.set_bitrate(0).is_err());
    }

    #[test]
    fn garbage_input_is_an_error_not_a_crash() {
        let mut decoder = Vp8Decoder::new().expect("decoder");
        assert!(decoder.decode(&[0xff; 7]).is_err());
        let mut encoder =
            Vp8Encoder::new(EncoderConfig::realtime(64, 48, 30, 100)).expect("encoder");
        assert!(matches!(
            encoder.encode(&[0; 10], 0, false),
            Err(Error::BadFrame { .. })
        ));
        assert!(Vp8Encoder::new(EncoderConfig::realtime(63, 48, 30, 100)).is_err());
    }
}
