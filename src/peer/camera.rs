//! The doctor's camera: V4L2 capture on Linux, delivered as packed I420 of
//! the size the VP8 encoder was set up for.
//!
//! Two halves, like the rest of telenode:
//!
//! - pure functions, private to this module, that carry the tests: the
//!   pixel conversions (`yuyv_to_i420`, `nv12_to_i420`, `mjpeg_to_i420`,
//!   `i420_full_to_video_range`), cropping and scaling (`fit_crop`,
//!   `fit_i420`) and the choice of a capture mode (`choose_mode`,
//!   `pick_rate`);
//! - a thin device layer: [`cameras`] lists devices, [`Camera::open`]
//!   negotiates a mode and starts a capture thread, [`Camera::latest`] hands
//!   over the newest converted frame.
//!
//! *Packed I420* here means the Y plane (`width × height` bytes), then U,
//! then V (`width/2 × height/2` bytes each), without padding, in BT.601
//! video range (Y 16..=235, U and V 16..=240): what libvpx takes. Width and
//! height are even.
//!
//! The capture thread converts each frame as it arrives and keeps only the
//! newest one: an encoder slower than the camera skips frames instead of
//! queueing latency.

use std::fmt;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use tracing::{debug, info, warn};
use v4l::buffer::{Flags as BufferFlags, Type as BufferType};
use v4l::capability::Flags as CapabilityFlags;
use v4l::format::{Colorspace, Format, FourCC, Quantization};
use v4l::fraction::Fraction;
use v4l::frameinterval::FrameIntervalEnum;
use v4l::framesize::FrameSizeEnum;
use v4l::io::traits::CaptureStream;
use v4l::prelude::{Device, MmapStream};
use v4l::video::Capture;
use v4l::video::capture::Parameters;
use zune_jpeg::JpegDecoder;
use zune_jpeg::errors::DecodeErrors;
use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;

/// Largest frame side accepted anywhere here. It bounds allocations (a
/// corrupt JPEG header can claim 65 535 × 65 535 pixels) and keeps all size
/// arithmetic far from overflow; 4K cameras (3840 × 2160) still fit.
pub(super) const MAX_SIDE: u32 = 4096;

/// Why a frame could not be converted.
#[derive(Debug, thiserror::Error)]
pub(super) enum ConvertError {
    /// I420 needs even sides (chroma is subsampled 2 × 2), and sides are
    /// bounded by [`MAX_SIDE`].
    #[error("frame size {width}x{height} is not usable (sides even, 2..={MAX_SIDE})")]
    BadSize {
        /// Width asked for.
        width: u32,
        /// Height asked for.
        height: u32,
    },
    /// A row stride shorter than the row itself.
    #[error("row stride {stride} is shorter than a row of {row} bytes")]
    BadStride {
        /// The stride given.
        stride: usize,
        /// Bytes in one row of pixels.
        row: usize,
    },
    /// The buffer ends before the frame does.
    #[error("frame truncated: {needed} bytes needed, {got} given")]
    Truncated {
        /// Bytes the frame needs.
        needed: usize,
        /// Bytes the buffer has.
        got: usize,
    },
    /// No end-of-image marker after the scan: the camera (or USB) lost the
    /// end of the frame.
    #[error("JPEG truncated: no end-of-image marker after the scan")]
    JpegTruncated,
    /// The JPEG decoder refused the data.
    #[error("JPEG cannot be decoded: {0}")]
    Jpeg(#[from] DecodeErrors),
    /// The decoder produced a colour space this module does not convert.
    #[error("JPEG decoded to {got:?}, which is not converted here")]
    JpegColorSpace {
        /// What the decoder produced.
        got: ColorSpace,
    },
}

/// Bytes of a packed I420 frame of `width × height` (even sides).
pub(super) fn i420_len(width: u32, height: u32) -> usize {
    let (w, h) = (width as usize, height as usize);
    w * h + 2 * (w / 2) * (h / 2)
}

/// Checks an I420 frame size and returns it as `usize`s.
fn check_size(width: u32, height: u32) -> Result<(usize, usize), ConvertError> {
    let ok = |side: u32| side != 0 && side.is_multiple_of(2) && side <= MAX_SIDE;
    if ok(width) && ok(height) {
        Ok((width as usize, height as usize))
    } else {
        Err(ConvertError::BadSize { width, height })
    }
}

fn check_stride(stride: usize, row: usize) -> Result<(), ConvertError> {
    if stride < row {
        return Err(ConvertError::BadStride { stride, row });
    }
    Ok(())
}

/// Bytes from the start of the first of `rows` rows to the end of the
/// last, saturating: a stride too large for memory reads as "truncated".
fn span(rows: usize, stride: usize, row: usize) -> usize {
    stride
        .saturating_mul(rows.saturating_sub(1))
        .saturating_add(row)
}

fn check_len(src: &[u8], needed: usize) -> Result<(), ConvertError> {
    if src.len() < needed {
        return Err(ConvertError::Truncated {
            needed,
            got: src.len(),
        });
    }
    Ok(())
}

/// Rounded mean of two samples.
fn avg2(a: u8, b: u8) -> u8 {
    (u16::from(a) + u16::from(b)).div_ceil(2) as u8
}

/// Splits a packed I420 buffer of exactly `i420_len` bytes into Y, U, V.
fn split_planes(frame: &mut [u8], w: usize, h: usize) -> (&mut [u8], &mut [u8], &mut [u8]) {
    let (y, chroma) = frame.split_at_mut(w * h);
    let (u, v) = chroma.split_at_mut((w / 2) * (h / 2));
    (y, u, v)
}

/// Converts one YUYV (YUY2, 4:2:2) frame to packed I420.
///
/// `stride` is the device's `bytesperline` (at least `2 × width`); the last
/// row need not be padded. Chroma of each pair of rows is averaged, which is
/// the 4:2:2 → 4:2:0 step: taking one row only would halve the vertical
/// chroma resolution *and* shift it by half a row. Values pass through
/// unchanged, so a video-range camera gives video-range I420 (see
/// [`i420_full_to_video_range`] for the others).
pub(super) fn yuyv_to_i420(
    src: &[u8],
    width: u32,
    height: u32,
    stride: usize,
) -> Result<Vec<u8>, ConvertError> {
    let (w, h) = check_size(width, height)?;
    let row = 2 * w;
    check_stride(stride, row)?;
    check_len(src, span(h, stride, row))?;
    let mut out = vec![0; i420_len(width, height)];
    let (y_plane, u_plane, v_plane) = split_planes(&mut out, w, h);
    for cy in 0..h / 2 {
        let top = &src[2 * cy * stride..][..row];
        let bottom = &src[(2 * cy + 1) * stride..][..row];
        for (line, y_row) in [top, bottom]
            .into_iter()
            .zip(y_plane[2 * cy * w..][..2 * w].chunks_exact_mut(w))
        {
            for (pair, y) in line.chunks_exact(2).zip(y_row) {
                *y = pair[0];
            }
        }
        let u_row = &mut u_plane[cy * (w / 2)..][..w / 2];
        let v_row = &mut v_plane[cy * (w / 2)..][..w / 2];
        for (((t, b), u), v) in top
            .chunks_exact(4)
            .zip(bottom.chunks_exact(4))
            .zip(u_row)
            .zip(v_row)
        {
            *u = avg2(t[1], b[1]);
            *v = avg2(t[3], b[3]);
        }
    }
    Ok(out)
}

/// Converts one single-planar NV12 frame (Y plane, then interleaved U/V at
/// half resolution) to packed I420.
///
/// As V4L2 lays it out, the UV plane starts right after `y_stride × height`
/// bytes; `uv_stride` is its row stride (the same `bytesperline` on every
/// driver seen so far, but kept apart so a caller with a multi-planar
/// source can pass both). NV12 is 4:2:0 already: this only de-interleaves.
pub(super) fn nv12_to_i420(
    src: &[u8],
    width: u32,
    height: u32,
    y_stride: usize,
    uv_stride: usize,
) -> Result<Vec<u8>, ConvertError> {
    let (w, h) = check_size(width, height)?;
    check_stride(y_stride, w)?;
    check_stride(uv_stride, w)?;
    let uv_start = y_stride.saturating_mul(h);
    check_len(src, uv_start.saturating_add(span(h / 2, uv_stride, w)))?;
    let mut out = vec![0; i420_len(width, height)];
    let (y_plane, u_plane, v_plane) = split_planes(&mut out, w, h);
    for (row, y_row) in y_plane.chunks_exact_mut(w).enumerate() {
        y_row.copy_from_slice(&src[row * y_stride..][..w]);
    }
    for (row, (u_row, v_row)) in u_plane
        .chunks_exact_mut(w / 2)
        .zip(v_plane.chunks_exact_mut(w / 2))
        .enumerate()
    {
        let uv = &src[uv_start + row * uv_stride..][..w];
        for ((pair, u), v) in uv.chunks_exact(2).zip(u_row).zip(v_row) {
            *u = pair[0];
            *v = pair[1];
        }
    }
    Ok(out)
}

/// Builds a full range → video range table: `out = (v × scale + bias) / 255`.
const fn range_table(scale: u32, bias: u32) -> [u8; 256] {
    let mut table = [0; 256];
    let mut v = 0;
    while v < 256 {
        table[v] = ((v as u32 * scale + bias) / 255) as u8;
        v += 1;
    }
    table
}

/// Luma, 0..=255 → 16..=235, rounded: `16 + v × 219 / 255`.
const Y_TO_VIDEO: [u8; 256] = range_table(219, 16 * 255 + 127);
/// Chroma, 0..=255 → 16..=240 around 128, rounded:
/// `128 + (v − 128) × 224 / 255 = (v × 224 + 128 × 31) / 255`.
const C_TO_VIDEO: [u8; 256] = range_table(224, 128 * 31 + 127);

/// Compresses a packed I420 frame from full range (0..=255) to video range
/// in place. For cameras that say their raw YUV is full range
/// ([`raw_is_full_range`]): sent as is, blacks would be crushed and whites
/// clipped by every decoder, which assumes video range for VP8.
pub(super) fn i420_full_to_video_range(frame: &mut [u8], width: u32, height: u32) {
    let luma = (width as usize * height as usize).min(frame.len());
    let (y, chroma) = frame.split_at_mut(luma);
    y.iter_mut().for_each(|v| *v = Y_TO_VIDEO[usize::from(*v)]);
    chroma
        .iter_mut()
        .for_each(|v| *v = C_TO_VIDEO[usize::from(*v)]);
}

/// Whether a raw YUV format the driver reports is full range. V4L2's rule
/// for `V4L2_QUANTIZATION_DEFAULT`: YUV is limited (video) range unless the
/// colorspace is JPEG.
pub(super) fn raw_is_full_range(colorspace: Colorspace, quantization: Quantization) -> bool {
    match quantization {
        Quantization::FullRange => true,
        Quantization::LimitedRange => false,
        Quantization::Default => matches!(colorspace, Colorspace::JPEG),
    }
}

/// Whether a JPEG still has its end-of-image marker after the start of its
/// first scan. In the entropy-coded data `FF` is always followed by `00` or
/// a restart marker, so `FF D9` there is the real end. Cameras that lose
/// the end of a frame on USB deliver exactly that kind of truncated frame,
/// and the tolerant decoder would otherwise paint its missing part grey.
fn has_end_after_scan(jpeg: &[u8]) -> bool {
    let Some(scan) = jpeg.windows(2).position(|m| m == [0xFF, 0xDA]) else {
        return false;
    };
    jpeg[scan..].windows(2).rev().any(|m| m == [0xFF, 0xD9])
}

/// Decoder options: tolerant like browsers (webcam MJPEG is often slightly
/// off the standard, e.g. without Huffman tables), but bounded in size.
fn jpeg_options(out: ColorSpace) -> DecoderOptions {
    DecoderOptions::default()
        .set_max_width(MAX_SIDE as usize)
        .set_max_height(MAX_SIDE as usize)
        .jpeg_set_out_colorspace(out)
}

/// Decodes one MJPEG frame (a JPEG image) to packed I420 in video range and
/// returns `(width, height, frame)`.
///
/// YCbCr JPEGs (every camera) are decoded to YCbCr, not RGB: that skips a
/// colour conversion each way and keeps the camera's own chroma. JFIF YCbCr
/// is full range, so it is compressed to video range. Greyscale JPEGs get
/// neutral chroma; anything else (Adobe RGB, CMYK) goes through RGB and
/// BT.601. An odd last column or row is dropped, since I420 needs even
/// sides. Garbage and truncated frames are errors, never panics.
pub(super) fn mjpeg_to_i420(jpeg: &[u8]) -> Result<(u32, u32, Vec<u8>), ConvertError> {
    if !has_end_after_scan(jpeg) {
        // Headers first, so that garbage reports the decoder's reason.
        JpegDecoder::new_with_options(ZCursor::new(jpeg), jpeg_options(ColorSpace::RGB))
            .decode_headers()?;
        return Err(ConvertError::JpegTruncated);
    }
    let mut probe =
        JpegDecoder::new_with_options(ZCursor::new(jpeg), jpeg_options(ColorSpace::RGB));
    probe.decode_headers()?;
    let out = match probe.input_colorspace() {
        Some(ColorSpace::YCbCr) => ColorSpace::YCbCr,
        Some(ColorSpace::Luma) => ColorSpace::Luma,
        _ => ColorSpace::RGB,
    };
    let mut decoder = JpegDecoder::new_with_options(ZCursor::new(jpeg), jpeg_options(out));
    let pixels = decoder.decode()?;
    let (width, height) = decoder.dimensions().unwrap_or((0, 0));
    let got = decoder.output_colorspace().unwrap_or(ColorSpace::Unknown);
    let components = match got {
        ColorSpace::YCbCr | ColorSpace::RGB => 3,
        ColorSpace::Luma => 1,
        got => return Err(ConvertError::JpegColorSpace { got }),
    };
    let (ew, eh) = ((width & !1) as u32, (height & !1) as u32);
    let (w, h) = check_size(ew, eh)?;
    let line = width * components;
    check_len(&pixels, line * height)?;
    let mut out = vec![0; i420_len(ew, eh)];
    let (y_plane, u_plane, v_plane) = split_planes(&mut out, w, h);
    for cy in 0..h / 2 {
        let top = &pixels[2 * cy * line..][..w * components];
        let bottom = &pixels[(2 * cy + 1) * line..][..w * components];
        for (src, y_row) in [top, bottom]
            .into_iter()
            .zip(y_plane[2 * cy * w..][..2 * w].chunks_exact_mut(w))
        {
            let pixels = src.chunks_exact(components).zip(y_row);
            match got {
                ColorSpace::RGB => pixels.for_each(|(p, y)| *y = rgb_to_y(p[0], p[1], p[2])),
                _ => pixels.for_each(|(p, y)| *y = Y_TO_VIDEO[usize::from(p[0])]),
            }
        }
        let u_row = &mut u_plane[cy * (w / 2)..][..w / 2];
        let v_row = &mut v_plane[cy * (w / 2)..][..w / 2];
        if got == ColorSpace::Luma {
            u_row.fill(128);
            v_row.fill(128);
            continue;
        }
        let quads = top
            .chunks_exact(2 * components)
            .zip(bottom.chunks_exact(2 * components));
        for ((t, b), (u, v)) in quads.zip(u_row.iter_mut().zip(v_row.iter_mut())) {
            // Mean of component `c` over the 2 × 2 block.
            let mean = |c: usize| {
                let n = components;
                let sum =
                    u16::from(t[c]) + u16::from(t[c + n]) + u16::from(b[c]) + u16::from(b[c + n]);
                ((sum + 2) / 4) as u8
            };
            (*u, *v) = match got {
                ColorSpace::RGB => rgb_to_uv(mean(0), mean(1), mean(2)),
                _ => (
                    C_TO_VIDEO[usize::from(mean(1))],
                    C_TO_VIDEO[usize::from(mean(2))],
                ),
            };
        }
    }
    Ok((ew, eh, out))
}

/// BT.601 video-range luma of an sRGB pixel (8-bit fixed point, as in
/// Microsoft's and libyuv's reference code).
fn rgb_to_y(r: u8, g: u8, b: u8) -> u8 {
    let (r, g, b) = (i32::from(r), i32::from(g), i32::from(b));
    (((66 * r + 129 * g + 25 * b + 128) >> 8) + 16) as u8
}

/// BT.601 video-range chroma (U, V) of an sRGB pixel.
fn rgb_to_uv(r: u8, g: u8, b: u8) -> (u8, u8) {
    let (r, g, b) = (i32::from(r), i32::from(g), i32::from(b));
    let u = ((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128;
    let v = ((112 * r - 94 * g - 18 * b + 128) >> 8) + 128;
    (u.clamp(0, 255) as u8, v.clamp(0, 255) as u8)
}

/// A region of a frame, in luma pixels; all four values even so that the
/// chroma planes crop at whole samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Crop {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

/// The largest centred region of a `sw × sh` frame with the aspect ratio of
/// `dw × dh`. Scaling a 4:3 camera straight to 16:9 stretches faces
/// sideways; cutting a band off the top and bottom only loses background.
pub(super) fn fit_crop(sw: u32, sh: u32, dw: u32, dh: u32) -> Crop {
    let (sw64, sh64, dw64, dh64) = (
        u64::from(sw),
        u64::from(sh),
        u64::from(dw.max(1)),
        u64::from(dh.max(1)),
    );
    // Rounded to the nearest even value, at least 2, at most `limit`.
    let even = |num: u64, den: u64, limit: u32| {
        let v = ((num + den) / (2 * den) * 2) as u32;
        v.clamp(2.min(limit), limit & !1)
    };
    let (width, height) = if sw64 * dh64 > dw64 * sh64 {
        (even(sh64 * dw64, dh64, sw), sh & !1)
    } else {
        (sw & !1, even(sw64 * dh64, dw64, sh))
    };
    Crop {
        x: (sw.saturating_sub(width) / 2) & !1,
        y: (sh.saturating_sub(height) / 2) & !1,
        width,
        height,
    }
}

/// A read-only view of one image plane.
#[derive(Clone, Copy)]
struct Plane<'a> {
    data: &'a [u8],
    stride: usize,
    width: usize,
    height: usize,
}

impl Plane<'_> {
    fn row(&self, y: usize) -> &[u8] {
        &self.data[y * self.stride..][..self.width]
    }
}

/// The three planes of the `crop` region of a packed I420 frame of
/// `w × h`, whose length the caller has checked.
fn crop_planes(src: &[u8], w: usize, h: usize, crop: Crop) -> [Plane<'_>; 3] {
    let (cx, cy) = (crop.x as usize, crop.y as usize);
    let (cw, ch) = (crop.width as usize, crop.height as usize);
    let chroma = (w / 2) * (h / 2);
    let u_start = w * h;
    let v_start = u_start + chroma;
    let chroma_offset = (cy / 2) * (w / 2) + cx / 2;
    [
        Plane {
            data: &src[cy * w + cx..u_start],
            stride: w,
            width: cw,
            height: ch,
        },
        Plane {
            data: &src[u_start + chroma_offset..v_start],
            stride: w / 2,
            width: cw / 2,
            height: ch / 2,
        },
        Plane {
            data: &src[v_start + chroma_offset..v_start + chroma],
            stride: w / 2,
            width: cw / 2,
            height: ch / 2,
        },
    ]
}

/// Halves a plane by averaging 2 × 2 (or 2 × 1, 1 × 2) blocks; an odd last
/// column or row is dropped.
fn halve(p: Plane<'_>, in_x: bool, in_y: bool) -> (Vec<u8>, usize, usize) {
    let w = if in_x { p.width / 2 } else { p.width };
    let h = if in_y { p.height / 2 } else { p.height };
    let mut out = Vec::with_capacity(w * h);
    for y in 0..h {
        let (r0, r1) = if in_y {
            (p.row(2 * y), p.row(2 * y + 1))
        } else {
            (p.row(y), p.row(y))
        };
        for x in 0..w {
            let (a, b) = if in_x { (2 * x, 2 * x + 1) } else { (x, x) };
            let sum = u16::from(r0[a]) + u16::from(r0[b]) + u16::from(r1[a]) + u16::from(r1[b]);
            out.push(((sum + 2) / 4) as u8);
        }
    }
    (out, w, h)
}

/// For each destination sample: the two source samples around it and the
/// weight (0..256) of the second one. Sample centres are aligned, so a
/// plane scaled to its own size comes back unchanged.
fn taps(src: usize, dst: usize) -> Vec<(usize, usize, u32)> {
    let (s, d) = (src as u64, dst as u64);
    (0..d)
        .map(|i| {
            // Source position × 256 of destination sample i: (i + ½)·s/d − ½.
            let pos = ((2 * i + 1) * s * 256 / (2 * d)).saturating_sub(128);
            let first = ((pos >> 8) as usize).min(src - 1);
            let second = (first + 1).min(src - 1);
            (first, second, (pos & 255) as u32)
        })
        .collect()
}

/// Bilinear scaling of one plane into `dst` (`dw × dh`, packed).
fn bilinear(p: Plane<'_>, dst: &mut [u8], dw: usize, dh: usize) {
    let columns = taps(p.width, dw);
    // Rows first into 8.8 fixed point, then columns: two multiplications
    // per sample in each pass.
    let mut mixed = vec![0u16; p.width];
    for ((top, bottom, wy), out) in taps(p.height, dh).into_iter().zip(dst.chunks_exact_mut(dw)) {
        let wy = wy as u16;
        for ((m, &a), &b) in mixed.iter_mut().zip(p.row(top)).zip(p.row(bottom)) {
            *m = u16::from(a) * (256 - wy) + u16::from(b) * wy;
        }
        for (o, &(left, right, wx)) in out.iter_mut().zip(&columns) {
            let v = u32::from(mixed[left]) * (256 - wx) + u32::from(mixed[right]) * wx;
            *o = ((v + 32_768) >> 16) as u8;
        }
    }
}

/// Scales one plane to `dw × dh` into `dst`. Halves it with a box filter
/// while it is at least twice too large, then finishes bilinearly: bilinear
/// alone looks at two source samples per output sample, and skipping the
/// rest aliases (moiré on a striped shirt).
fn scale_plane(src: Plane<'_>, dst: &mut [u8], dw: usize, dh: usize) {
    let mut halved: Option<(Vec<u8>, usize, usize)> = None;
    loop {
        let current = match &halved {
            Some((data, w, h)) => Plane {
                data,
                stride: *w,
                width: *w,
                height: *h,
            },
            None => src,
        };
        let (in_x, in_y) = (current.width >= 2 * dw, current.height >= 2 * dh);
        if !in_x && !in_y {
            if (current.width, current.height) == (dw, dh) {
                for (y, out) in dst.chunks_exact_mut(dw).enumerate() {
                    out.copy_from_slice(current.row(y));
                }
            } else {
                bilinear(current, dst, dw, dh);
            }
            return;
        }
        halved = Some(halve(current, in_x, in_y));
    }
}

/// Scales the `crop` region of a checked I420 frame to `dw × dh`.
fn scale_region(src: &[u8], sw: usize, sh: usize, crop: Crop, dw: u32, dh: u32) -> Vec<u8> {
    let (w, h) = (dw as usize, dh as usize);
    let mut out = vec![0; i420_len(dw, dh)];
    let (y_plane, u_plane, v_plane) = split_planes(&mut out, w, h);
    let [y_src, u_src, v_src] = crop_planes(src, sw, sh, crop);
    scale_plane(y_src, y_plane, w, h);
    scale_plane(u_src, u_plane, w / 2, h / 2);
    scale_plane(v_src, v_plane, w / 2, h / 2);
    out
}

/// Scales a packed I420 frame from `sw × sh` to `dw × dh` (each plane on
/// its own, box-filtered then bilinear), stretching if the aspect ratios
/// differ; see [`fit_i420`] to crop instead.
#[cfg(test)]
fn scale_i420(src: &[u8], sw: u32, sh: u32, dw: u32, dh: u32) -> Result<Vec<u8>, ConvertError> {
    let (w, h) = check_size(sw, sh)?;
    check_size(dw, dh)?;
    check_len(src, i420_len(sw, sh))?;
    let whole = Crop {
        x: 0,
        y: 0,
        width: sw,
        height: sh,
    };
    Ok(scale_region(src, w, h, whole, dw, dh))
}

/// Crops a packed I420 frame to the aspect ratio of `dw × dh` ([`fit_crop`])
/// and scales it to exactly that size.
pub(super) fn fit_i420(
    src: &[u8],
    sw: u32,
    sh: u32,
    dw: u32,
    dh: u32,
) -> Result<Vec<u8>, ConvertError> {
    let (w, h) = check_size(sw, sh)?;
    check_size(dw, dh)?;
    check_len(src, i420_len(sw, sh))?;
    Ok(scale_region(src, w, h, fit_crop(sw, sh, dw, dh), dw, dh))
}

/// A pixel format this module converts. The order is the preference when
/// two modes are otherwise equal: raw formats cost a copy per frame, MJPEG a
/// JPEG decode; YUYV is the one every UVC camera has, so its path is the
/// most exercised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum PixelFormat {
    /// Packed 4:2:2, `Y0 U Y1 V`.
    Yuyv,
    /// Planar Y, interleaved UV, 4:2:0.
    Nv12,
    /// Motion JPEG: each frame is a JPEG image.
    Mjpeg,
}

impl PixelFormat {
    /// The format a V4L2 fourcc names, if converted here. `JPEG` is the
    /// fourcc some drivers use for what UVC calls `MJPG`.
    pub(crate) fn from_fourcc(fourcc: [u8; 4]) -> Option<Self> {
        match &fourcc {
            b"YUYV" => Some(Self::Yuyv),
            b"NV12" => Some(Self::Nv12),
            b"MJPG" | b"JPEG" => Some(Self::Mjpeg),
            _ => None,
        }
    }
}

/// One way a device can capture: format, size and the frame rate we would
/// ask for at that size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Mode {
    /// The format.
    pub format: PixelFormat,
    /// The device's fourcc for it (`MJPG` or `JPEG` for MJPEG).
    pub fourcc: [u8; 4],
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frames per second ([`pick_rate`] of what the device offers).
    pub fps: u32,
}

/// The frame rate to ask for, given the rates a device offers at one size
/// as `(lowest, highest)` frames per second (a discrete rate `r` is
/// `(r, r)`): the wanted rate if offered (29.97 counts as 30), else the
/// slowest rate above it (the capture thread keeps only the newest frame
/// anyway), else the fastest there is. Nothing offered (drivers without
/// `VIDIOC_ENUM_FRAMEINTERVALS`): the wanted rate, the driver adjusts it.
pub(super) fn pick_rate(offered: &[(f64, f64)], want: u32) -> u32 {
    let w = f64::from(want);
    if offered.is_empty()
        || offered
            .iter()
            .any(|&(lo, hi)| lo - 0.5 <= w && w <= hi + 0.5)
    {
        return want;
    }
    let above = offered
        .iter()
        .map(|&(lo, _)| lo)
        .filter(|&lo| lo > w)
        .min_by(f64::total_cmp);
    let fastest = offered.iter().map(|&(_, hi)| hi).max_by(f64::total_cmp);
    above
        .or(fastest)
        .map_or(want, |r| r.round().max(1.0) as u32)
}

/// The size to ask for on one side of a stepwise (or continuous) frame-size
/// range: `want` clamped to `min..=max` and rounded up to a step.
pub(super) fn step_to(want: u32, min: u32, max: u32, step: u32) -> u32 {
    if max <= min {
        return min;
    }
    let step = step.max(1);
    let k = (want.clamp(min, max) - min).div_ceil(step);
    let v = min.saturating_add(k.saturating_mul(step));
    if v > max { v - step } else { v }
}

/// How far a mode's rate falls short, smaller is better: 0 for at least
/// two thirds of the wanted rate (20 of 30 fps still looks smooth), else the
/// frames per second missing. A threshold rather than the plain shortfall,
/// so that 720p at 25 fps beats 320 × 240 at 30 for a 1080p call.
fn rate_shortfall(fps: u32, want: u32) -> u32 {
    if u64::from(fps) * 3 >= u64::from(want) * 2 {
        0
    } else {
        want - fps
    }
}

/// How well a mode's size fits, smaller is better: first sizes covering the
/// wanted one (nothing is upscaled), smallest first, as long as they are at
/// most 4 × its area; then the ones that do not cover it, largest first;
/// last the huge ones (decoding 4K MJPEG to send 640 × 360 wastes a core).
fn size_cost(mode: &Mode, width: u32, height: u32) -> (u8, u64) {
    let area = u64::from(mode.width) * u64::from(mode.height);
    let wanted = u64::from(width) * u64::from(height);
    if mode.width < width || mode.height < height {
        (1, u64::MAX - area)
    } else if area <= 4 * wanted {
        (0, area)
    } else {
        (2, area)
    }
}

/// The mode closest to `width × height @ fps`. In order: a rate that looks
/// smooth (a fluid picture matters more than a sharp one in a
/// consultation), then the size (first sizes covering the wanted one,
/// smallest first, up to 4 × its area; then the ones that do not cover it,
/// largest first; last the huge ones), then the full wanted rate, then the
/// format ([`PixelFormat`] order), then the higher rate. Modes with sizes
/// I420 cannot hold are skipped.
pub(super) fn choose_mode(offers: &[Mode], width: u32, height: u32, fps: u32) -> Option<Mode> {
    offers
        .iter()
        .filter(|m| check_size(m.width, m.height).is_ok())
        .min_by_key(|m| {
            (
                rate_shortfall(m.fps, fps),
                size_cost(m, width, height),
                m.fps < fps,
                m.format,
                std::cmp::Reverse(m.fps),
            )
        })
        .copied()
}

/// What turns one captured buffer into the frame [`Camera::latest`] gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pipeline {
    format: PixelFormat,
    /// What the device delivers (MJPEG frames carry their own size).
    width: u32,
    height: u32,
    /// `bytesperline` for the raw formats.
    stride: usize,
    /// Raw YUV that the driver says is full range.
    full_range: bool,
    out_width: u32,
    out_height: u32,
}

impl Pipeline {
    fn run(&self, frame: &[u8]) -> Result<Vec<u8>, ConvertError> {
        let (w, h, mut i420) = match self.format {
            PixelFormat::Yuyv => (
                self.width,
                self.height,
                yuyv_to_i420(frame, self.width, self.height, self.stride)?,
            ),
            PixelFormat::Nv12 => (
                self.width,
                self.height,
                nv12_to_i420(frame, self.width, self.height, self.stride, self.stride)?,
            ),
            PixelFormat::Mjpeg => mjpeg_to_i420(frame)?,
        };
        if self.full_range && self.format != PixelFormat::Mjpeg {
            i420_full_to_video_range(&mut i420, w, h);
        }
        if (w, h) == (self.out_width, self.out_height) {
            return Ok(i420);
        }
        fit_i420(&i420, w, h, self.out_width, self.out_height)
    }
}

/// One V4L2 capture device the user can choose.
#[derive(Debug, Clone, PartialEq)]
pub struct CameraInfo {
    /// Device node, e.g. `/dev/video0`.
    pub path: String,
    /// The driver's card name, e.g. `HD Pro Webcam C920`.
    pub name: String,
}

/// The number of a `videoN` device node name.
fn video_index(file_name: &str) -> Option<u32> {
    let digits = file_name.strip_prefix("video")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Whether a node captures video we can stream: UVC cameras also create a
/// metadata node (`META_CAPTURE` only) that must not be offered.
fn is_capture(caps: CapabilityFlags) -> bool {
    caps.contains(CapabilityFlags::VIDEO_CAPTURE) && caps.contains(CapabilityFlags::STREAMING)
}

/// Runs a `v4l` call, turning a panic into an error. `v4l` 0.14 unwraps
/// what drivers return (the card name must be UTF-8, which a name cut at 32
/// bytes in the middle of a character is not; enum values must be known):
/// a quirky camera must not take the doctor's client down.
fn guarded<T>(call: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    catch_unwind(AssertUnwindSafe(call)).unwrap_or_else(|_| {
        Err(io::Error::other(
            "the v4l crate panicked on the driver's answer",
        ))
    })
}

/// Lists capture-capable devices (`VIDEO_CAPTURE`, metadata nodes skipped),
/// in device-number order (`video2` before `video10`); empty when none or
/// when `/dev` cannot be read. Nodes we may not open are skipped.
pub fn cameras() -> Vec<CameraInfo> {
    let Ok(entries) = std::fs::read_dir("/dev") else {
        return Vec::new();
    };
    let mut found: Vec<(u32, CameraInfo)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let index = video_index(entry.file_name().to_str()?)?;
            let path = entry.path().to_str()?.to_owned();
            let caps = match Device::with_path(&path).and_then(|d| guarded(|| d.query_caps())) {
                Ok(caps) => caps,
                Err(err) => {
                    debug!(%path, error = %err, "camera node skipped");
                    return None;
                }
            };
            is_capture(caps.capabilities).then_some((
                index,
                CameraInfo {
                    path,
                    name: caps.card,
                },
            ))
        })
        .collect();
    found.sort_by_key(|(index, _)| *index);
    found.into_iter().map(|(_, info)| info).collect()
}

/// Frames per second of a frame interval (seconds per frame).
fn rate_of(interval: Fraction) -> Option<f64> {
    (interval.numerator > 0 && interval.denominator > 0)
        .then(|| f64::from(interval.denominator) / f64::from(interval.numerator))
}

/// Every mode the device offers in a format we convert.
fn offered_modes(device: &Device, width: u32, height: u32, fps: u32) -> io::Result<Vec<Mode>> {
    let mut modes = Vec::new();
    for description in device.enum_formats()? {
        let fourcc = description.fourcc;
        let Some(format) = PixelFormat::from_fourcc(fourcc.repr) else {
            continue;
        };
        let sizes: Vec<(u32, u32)> = match device.enum_framesizes(fourcc) {
            Ok(sizes) if !sizes.is_empty() => sizes
                .into_iter()
                .map(|s| match s.size {
                    FrameSizeEnum::Discrete(d) => (d.width, d.height),
                    FrameSizeEnum::Stepwise(s) => (
                        step_to(width, s.min_width, s.max_width, s.step_width),
                        step_to(height, s.min_height, s.max_height, s.step_height),
                    ),
                })
                .collect(),
            // No VIDIOC_ENUM_FRAMESIZES: ask for the wanted size, S_FMT adjusts it.
            _ => vec![(width, height)],
        };
        for (w, h) in sizes {
            let rates: Vec<(f64, f64)> = device
                .enum_frameintervals(fourcc, w, h)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|i| match i.interval {
                    FrameIntervalEnum::Discrete(f) => rate_of(f).map(|r| (r, r)),
                    FrameIntervalEnum::Stepwise(s) => Some((rate_of(s.max)?, rate_of(s.min)?)),
                })
                .collect();
            modes.push(Mode {
                format,
                fourcc: fourcc.repr,
                width: w,
                height: h,
                fps: pick_rate(&rates, fps),
            });
        }
    }
    Ok(modes)
}

/// How long the capture thread waits for a frame before it looks at the
/// stop flag again: bounds how long dropping a [`Camera`] takes.
const POLL: Duration = Duration::from_millis(50);
/// How long `Drop` waits for the capture thread before leaving it behind
/// (a driver stuck in an ioctl must not freeze the user interface).
const STOP_WAIT: Duration = Duration::from_millis(500);
/// Capture buffers: enough for the driver to fill one while we convert
/// another, few enough to keep latency at a frame or two.
const BUFFERS: u32 = 4;
/// Consecutive unusable frames (corrupt JPEG, error flag) after which the
/// capture gives up and says why, about three seconds at 30 fps.
const MAX_BAD_FRAMES: u32 = 90;

/// State shared by a [`Camera`] and its capture thread.
#[derive(Debug, Default)]
struct Shared {
    stop: AtomicBool,
    slot: Mutex<Slot>,
}

#[derive(Debug, Default)]
struct Slot {
    /// The newest converted frame not taken yet.
    frame: Option<Vec<u8>>,
    /// Why the capture thread stopped.
    failure: Option<String>,
}

impl Shared {
    fn slot(&self) -> std::sync::MutexGuard<'_, Slot> {
        super::lock(&self.slot)
    }
}

/// The capture thread's resources. Fields drop in order: the stream first
/// (stream off, buffers unmapped), then the device (closed), so the camera
/// is free for another `open` once the thread has finished.
struct CaptureThread {
    stream: MmapStream<'static>,
    _device: Device,
    pipeline: Pipeline,
    shared: Arc<Shared>,
    path: String,
}

/// Errors of a dequeue after which the same buffers can be waited on again.
fn is_transient(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

impl CaptureThread {
    fn run(mut self) {
        if let Err(reason) = self.capture() {
            warn!(%reason, "camera capture stopped");
            self.shared.slot().failure = Some(reason);
        }
        debug!(path = %self.path, "camera capture ended");
    }

    fn capture(&mut self) -> Result<(), String> {
        // `v4l`'s `next()` re-queues the previous buffer before waiting. After
        // a timeout that buffer is still queued and a second `next()` fails
        // with EINVAL, so after a timeout we dequeue by hand first.
        let mut stalled = false;
        let mut bad = 0;
        while !self.shared.stop.load(Ordering::Acquire) {
            if stalled {
                match CaptureStream::dequeue(&mut self.stream) {
                    Ok(_) => stalled = false,
                    Err(err) if is_transient(&err) => {}
                    Err(err) => return Err(format!("{}: capture failed: {err}", self.path)),
                }
                continue;
            }
            let (buffer, meta) = match CaptureStream::next(&mut self.stream) {
                Ok(frame) => frame,
                Err(err) if is_transient(&err) => {
                    stalled = true;
                    continue;
                }
                Err(err) => return Err(format!("{}: capture failed: {err}", self.path)),
            };
            let used = match meta.bytesused as usize {
                0 => buffer.len(),
                n => n.min(buffer.len()),
            };
            let converted = if meta.flags.contains(BufferFlags::ERROR) {
                Err("the driver flagged the frame as corrupt".to_owned())
            } else {
                self.pipeline
                    .run(&buffer[..used])
                    .map_err(|err| err.to_string())
            };
            match converted {
                Ok(frame) => {
                    bad = 0;
                    // The frame it replaces (if nobody took it) is freed
                    // after the lock is released, not under it.
                    let stale = self.shared.slot().frame.replace(frame);
                    drop(stale);
                }
                Err(reason) => {
                    bad += 1;
                    debug!(%reason, bad, "camera frame dropped");
                    if bad >= MAX_BAD_FRAMES {
                        return Err(format!(
                            "{}: {bad} frames in a row unusable: {reason}",
                            self.path
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// An open camera streaming on its own thread. Dropping it stops the thread
/// and closes the device.
pub struct Camera {
    shared: Arc<Shared>,
    description: String,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for Camera {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Camera")
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

impl Camera {
    /// Opens `path` (or the first of [`cameras`] when `None`), negotiates
    /// the mode closest to `width × height @ fps` (`choose_mode`) and
    /// starts a capture thread (memory-mapped streaming). Frames come out
    /// as exactly `width × height` I420, cropped to that aspect ratio.
    ///
    /// Errors name the device and what failed: `no camera found`,
    /// `/dev/video3: cannot open: …`, `/dev/video0 offers none of YUYV,
    /// NV12, MJPEG`, `/dev/video0: cannot set MJPG 1280x720: Device or
    /// resource busy` (another program has the camera).
    pub fn open(path: Option<&str>, width: u32, height: u32, fps: u32) -> anyhow::Result<Camera> {
        check_size(width, height).map_err(|err| anyhow!("camera output: {err}"))?;
        if !(1..=120).contains(&fps) {
            bail!("camera rate {fps} fps is not usable (1..=120)");
        }
        let path = match path {
            Some(path) => path.to_owned(),
            None => match cameras().into_iter().next() {
                Some(first) => first.path,
                None => bail!("no camera found"),
            },
        };
        let device =
            Device::with_path(&path).map_err(|err| anyhow!("{path}: cannot open: {err}"))?;
        let caps = guarded(|| device.query_caps())
            .map_err(|err| anyhow!("{path}: not a V4L2 device: {err}"))?;
        if !is_capture(caps.capabilities) {
            bail!(
                "{path} ({}) is not a streaming video capture device",
                caps.card
            );
        }
        let offers = guarded(|| offered_modes(&device, width, height, fps))
            .map_err(|err| anyhow!("{path}: cannot list formats: {err}"))?;
        let Some(mode) = choose_mode(&offers, width, height, fps) else {
            bail!("{path} offers none of YUYV, NV12, MJPEG");
        };
        let fourcc = FourCC::new(&mode.fourcc);
        let format = guarded(|| device.set_format(&Format::new(mode.width, mode.height, fourcc)))
            .map_err(|err| {
            anyhow!(
                "{path}: cannot set {fourcc} {}x{}: {err}",
                mode.width,
                mode.height
            )
        })?;
        let Some(delivered) = PixelFormat::from_fourcc(format.fourcc.repr) else {
            bail!(
                "{path} switched to {} when asked for {fourcc}",
                format.fourcc
            );
        };
        if delivered != PixelFormat::Mjpeg {
            check_size(format.width, format.height)
                .map_err(|err| anyhow!("{path} delivers {}: {err}", format.fourcc))?;
        }
        // Best effort: some drivers have no S_PARM and run at their own rate.
        let rate = match guarded(|| device.set_params(&Parameters::with_fps(mode.fps))) {
            Ok(params) => rate_of(params.interval).map_or(mode.fps, |r| r.round() as u32),
            Err(err) => {
                debug!(%path, error = %err, "frame rate not set");
                mode.fps
            }
        };
        let default_stride = match delivered {
            PixelFormat::Yuyv => 2 * format.width,
            _ => format.width,
        };
        let pipeline = Pipeline {
            format: delivered,
            width: format.width,
            height: format.height,
            stride: format.stride.max(default_stride) as usize,
            full_range: raw_is_full_range(format.colorspace, format.quantization),
            out_width: width,
            out_height: height,
        };
        let mut stream = MmapStream::with_buffers(&device, BufferType::VideoCapture, BUFFERS)
            .map_err(|err| anyhow!("{path}: cannot map capture buffers: {err}"))?;
        stream.set_timeout(POLL);

        let description = format!(
            "{path} ({}): {} {}x{} @ {rate} fps{}",
            caps.card,
            format.fourcc,
            format.width,
            format.height,
            if pipeline.full_range {
                ", full range"
            } else {
                ""
            },
        );
        info!(camera = %description, width, height, "camera opened");
        let shared = Arc::new(Shared::default());
        let capture = CaptureThread {
            stream,
            _device: device,
            pipeline,
            shared: Arc::clone(&shared),
            path: path.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("camera".to_owned())
            .spawn(move || capture.run())
            .map_err(|err| anyhow!("{path}: cannot start the capture thread: {err}"))?;
        Ok(Camera {
            shared,
            description,
            thread: Some(thread),
        })
    }

    /// The newest frame, converted and scaled to exactly the `width ×
    /// height` given to [`open`](Self::open), or `None` if no frame arrived
    /// since the last call. Never blocks: the capture thread holds the lock
    /// only to swap a pointer.
    pub fn latest(&self) -> Option<Vec<u8>> {
        self.shared.slot().frame.take()
    }

    /// What the device delivers, for logs and the user interface, e.g.
    /// `/dev/video0 (HD Pro Webcam C920): MJPG 1280x720 @ 30 fps`.
    pub fn describe(&self) -> String {
        self.description.clone()
    }

    /// Why the capture thread stopped (camera unplugged, frames unusable),
    /// or `None` while it runs.
    pub fn failure(&self) -> Option<String> {
        self.shared.slot().failure.clone()
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        let Some(thread) = self.thread.take() else {
            return;
        };
        // The thread looks at the flag at least every `POLL`. A driver stuck
        // in an ioctl (device gone mid-call) must not hang the caller: after
        // `STOP_WAIT` the thread is left to finish on its own.
        let start = Instant::now();
        while !thread.is_finished() {
            if start.elapsed() > STOP_WAIT {
                warn!(camera = %self.description, "capture thread did not stop; leaving it");
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = thread.join();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// 64 × 16: red, green, blue and grey (128) bars, 16 pixels each, made by
    /// ImageMagick 6.9 (libjpeg-turbo 2.1.5):
    /// `convert -size 16x16 xc:'rgb(255,0,0)' xc:'rgb(0,255,0)'
    /// xc:'rgb(0,0,255)' xc:'rgb(128,128,128)' +append -strip -quality 100
    /// -sampling-factor 2x1 bars_422.jpg` (4:2:2, like UVC cameras).
    const BARS_422: &[u8] = include_bytes!("testdata/bars_422.jpg");
    /// 33 × 17 uniform grey 200, greyscale JPEG (one component):
    /// `convert -size 33x17 xc:'rgb(200,200,200)' -type Grayscale -strip
    /// -quality 95 gray_33x17.jpg`.
    const GRAY_33X17: &[u8] = include_bytes!("testdata/gray_33x17.jpg");

    /// The bars of `BARS_422`, left to right.
    const BARS: [(u8, u8, u8); 4] = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (128, 128, 128)];

    /// BT.601 video range in floating point: the reference the integer code
    /// is held to.
    fn bt601(r: u8, g: u8, b: u8) -> (u8, u8, u8) {
        let (r, g, b) = (f64::from(r), f64::from(g), f64::from(b));
        let y = 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0;
        let u = 128.0 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255.0;
        let v = 128.0 + (112.0 * r - 93.786 * g - 18.214 * b) / 255.0;
        (y.round() as u8, u.round() as u8, v.round() as u8)
    }

    /// Y, U, V of pixel (x, y) of a packed I420 frame.
    fn yuv_at(frame: &[u8], w: usize, h: usize, x: usize, y: usize) -> (u8, u8, u8) {
        let chroma = (w / 2) * (h / 2);
        let c = (y / 2) * (w / 2) + x / 2;
        (
            frame[y * w + x],
            frame[w * h + c],
            frame[w * h + chroma + c],
        )
    }

    fn assert_close(got: (u8, u8, u8), want: (u8, u8, u8), tolerance: u8, what: &str) {
        let close = |a: u8, b: u8| a.abs_diff(b) <= tolerance;
        assert!(
            close(got.0, want.0) && close(got.1, want.1) && close(got.2, want.2),
            "{what}: got {got:?}, want {want:?} ±{tolerance}"
        );
    }

    /// A YUYV frame of vertical bars (one YUV triple each), with `pad`
    /// garbage bytes at the end of each row.
    fn yuyv_bars(w: usize, h: usize, bars: &[(u8, u8, u8)], pad: usize) -> Vec<u8> {
        let stride = 2 * w + pad;
        let mut frame = vec![0xEE; stride * h];
        for y in 0..h {
            for x in (0..w).step_by(2) {
                let (yy, u, v) = bars[x * bars.len() / w];
                frame[y * stride + 2 * x..][..4].copy_from_slice(&[yy, u, yy, v]);
            }
        }
        frame
    }

    #[test]
    fn yuyv_colour_bars_survive() {
        let bars: Vec<_> = BARS.iter().map(|&(r, g, b)| bt601(r, g, b)).collect();
        for pad in [0, 24] {
            let src = yuyv_bars(64, 8, &bars, pad);
            let i420 = yuyv_to_i420(&src, 64, 8, 128 + pad).unwrap();
            assert_eq!(i420.len(), i420_len(64, 8));
            for (i, &want) in bars.iter().enumerate() {
                for (x, y) in [(i * 16, 0), (i * 16 + 7, 3), (i * 16 + 15, 7)] {
                    assert_close(yuv_at(&i420, 64, 8, x, y), want, 2, "yuyv bar");
                }
            }
            assert!(!i420.contains(&0xEE), "row padding leaked into the frame");
        }
    }

    #[test]
    fn yuyv_chroma_of_two_rows_is_averaged() {
        // Row 0 has U 100, V 200; row 1 has U 103, V 50.
        let src = [16, 100, 16, 200, 235, 103, 235, 50];
        let i420 = yuyv_to_i420(&src, 2, 2, 4).unwrap();
        assert_eq!(i420, [16, 16, 235, 235, 102, 125]);
    }

    #[test]
    fn yuyv_bad_input_is_an_error() {
        let src = yuyv_bars(8, 4, &[(16, 128, 128)], 0);
        assert!(matches!(
            yuyv_to_i420(&src[..src.len() - 1], 8, 4, 16),
            Err(ConvertError::Truncated {
                needed: 64,
                got: 63
            })
        ));
        assert!(matches!(
            yuyv_to_i420(&src, 7, 4, 16),
            Err(ConvertError::BadSize { .. })
        ));
        assert!(matches!(
            yuyv_to_i420(&src, 8, 3, 16),
            Err(ConvertError::BadSize { .. })
        ));
        assert!(matches!(
            yuyv_to_i420(&src, 0, 4, 16),
            Err(ConvertError::BadSize { .. })
        ));
        assert!(matches!(
            yuyv_to_i420(&src, 8, 4, 15),
            Err(ConvertError::BadStride { .. })
        ));
        assert!(yuyv_to_i420(&[], 8, 4, 16).is_err());
        // A stride that does not fit makes the frame too short, not a panic.
        assert!(yuyv_to_i420(&src, 8, 4, usize::MAX / 8).is_err());
        assert!(yuyv_to_i420(&src, 8, 4, usize::MAX).is_err());
        for len in 0..src.len() {
            assert!(yuyv_to_i420(&src[..len], 8, 4, 16).is_err());
        }
    }

    /// An NV12 frame of vertical bars with padded rows.
    fn nv12_bars(w: usize, h: usize, bars: &[(u8, u8, u8)], stride: usize) -> Vec<u8> {
        let mut frame = vec![0xEE; stride * h + stride * (h / 2)];
        for y in 0..h {
            for x in 0..w {
                frame[y * stride + x] = bars[x * bars.len() / w].0;
            }
        }
        for cy in 0..h / 2 {
            for cx in 0..w / 2 {
                let (_, u, v) = bars[2 * cx * bars.len() / w];
                frame[stride * h + cy * stride + 2 * cx..][..2].copy_from_slice(&[u, v]);
            }
        }
        frame
    }

    #[test]
    fn nv12_colour_bars_survive() {
        let bars: Vec<_> = BARS.iter().map(|&(r, g, b)| bt601(r, g, b)).collect();
        for stride in [32, 48] {
            let src = nv12_bars(32, 6, &bars, stride);
            let i420 = nv12_to_i420(&src, 32, 6, stride, stride).unwrap();
            for (i, &want) in bars.iter().enumerate() {
                for (x, y) in [(i * 8, 0), (i * 8 + 7, 5)] {
                    assert_close(yuv_at(&i420, 32, 6, x, y), want, 0, "nv12 bar");
                }
            }
            assert!(!i420.contains(&0xEE), "row padding leaked into the frame");
        }
    }

    #[test]
    fn nv12_bad_input_is_an_error() {
        let src = nv12_bars(8, 4, &[(16, 128, 128)], 8);
        assert!(nv12_to_i420(&src, 8, 4, 8, 8).is_ok());
        for len in 0..src.len() {
            assert!(
                nv12_to_i420(&src[..len], 8, 4, 8, 8).is_err(),
                "{len} bytes"
            );
        }
        assert!(matches!(
            nv12_to_i420(&src, 8, 4, 7, 8),
            Err(ConvertError::BadStride { .. })
        ));
        assert!(matches!(
            nv12_to_i420(&src, 8, 4, 8, 6),
            Err(ConvertError::BadStride { .. })
        ));
        assert!(matches!(
            nv12_to_i420(&src, 9, 4, 9, 9),
            Err(ConvertError::BadSize { .. })
        ));
        assert!(nv12_to_i420(&src, 8, 4, usize::MAX, 8).is_err());
        assert!(nv12_to_i420(&src, 8, 4, 8, usize::MAX).is_err());
    }

    #[test]
    fn mjpeg_colour_bars_survive() {
        let (w, h, i420) = mjpeg_to_i420(BARS_422).unwrap();
        assert_eq!((w, h), (64, 16));
        assert_eq!(i420.len(), i420_len(64, 16));
        for (i, &(r, g, b)) in BARS.iter().enumerate() {
            // Bar centres: JPEG is lossy at the edges between bars.
            for (x, y) in [(i * 16 + 6, 4), (i * 16 + 9, 11)] {
                assert_close(yuv_at(&i420, 64, 16, x, y), bt601(r, g, b), 2, "jpeg bar");
            }
        }
    }

    #[test]
    fn mjpeg_greyscale_with_odd_size_is_cropped_to_even() {
        let (w, h, i420) = mjpeg_to_i420(GRAY_33X17).unwrap();
        assert_eq!((w, h), (32, 16));
        assert_eq!(i420.len(), i420_len(32, 16));
        for (x, y) in [(0, 0), (31, 15), (17, 8)] {
            assert_close(yuv_at(&i420, 32, 16, x, y), bt601(200, 200, 200), 1, "grey");
        }
    }

    #[test]
    fn mjpeg_garbage_and_truncation_are_errors() {
        assert!(mjpeg_to_i420(&[]).is_err());
        assert!(mjpeg_to_i420(&[0xFF, 0xD8]).is_err());
        assert!(mjpeg_to_i420(&[0xFF, 0xD8, 0xFF, 0xD9]).is_err());
        assert!(mjpeg_to_i420(b"not a jpeg at all, just text").is_err());
        let noise: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        assert!(mjpeg_to_i420(&noise).is_err());
        for len in 0..BARS_422.len() - 1 {
            assert!(
                mjpeg_to_i420(&BARS_422[..len]).is_err(),
                "{len} bytes decoded"
            );
        }
        assert!(matches!(
            mjpeg_to_i420(&BARS_422[..BARS_422.len() - 2]),
            Err(ConvertError::JpegTruncated)
        ));
    }

    #[test]
    fn mjpeg_corrupt_bytes_never_panic() {
        // Every byte of the test image set to a few values in turn: the
        // decoder may accept or refuse the result, but must not panic.
        for jpeg in [BARS_422, GRAY_33X17] {
            for at in 0..jpeg.len() {
                for value in [0x00, 0x01, 0x7F, 0xFF, jpeg[at] ^ 0x10] {
                    let mut bad = jpeg.to_vec();
                    bad[at] = value;
                    if let Ok((w, h, i420)) = mjpeg_to_i420(&bad) {
                        assert_eq!(i420.len(), i420_len(w, h));
                    }
                }
            }
        }
    }

    /// A packed I420 frame with Y rising left to right, U rising top to
    /// bottom and V constant.
    fn gradient(w: usize, h: usize) -> Vec<u8> {
        let mut frame = vec![0; w * h + 2 * (w / 2) * (h / 2)];
        let (y, u, v) = split_planes(&mut frame, w, h);
        for row in y.chunks_exact_mut(w) {
            for (x, p) in row.iter_mut().enumerate() {
                *p = (16 + x * 219 / (w - 1)) as u8;
            }
        }
        for (r, row) in u.chunks_exact_mut(w / 2).enumerate() {
            row.fill((16 + r * 224 / (h / 2 - 1).max(1)) as u8);
        }
        v.fill(77);
        frame
    }

    fn monotone(values: impl IntoIterator<Item = u8>) -> bool {
        let values: Vec<u8> = values.into_iter().collect();
        values.windows(2).all(|p| p[0] <= p[1])
    }

    #[test]
    fn scaling_keeps_gradients_monotone_and_sizes_right() {
        let sizes = [
            ((1280, 720), (640, 360)),
            ((1280, 720), (1280, 720)),
            ((320, 240), (1280, 720)),
            ((640, 480), (352, 288)),
            ((1920, 1080), (320, 180)),
            ((64, 48), (62, 46)),
            ((2, 2), (16, 16)),
        ];
        for ((sw, sh), (dw, dh)) in sizes {
            let src = gradient(sw, sh);
            let out = scale_i420(&src, sw as u32, sh as u32, dw as u32, dh as u32).unwrap();
            assert_eq!(
                out.len(),
                i420_len(dw as u32, dh as u32),
                "{sw}x{sh} → {dw}x{dh}"
            );
            let what = format!("{sw}x{sh} → {dw}x{dh}");
            for row in [0, dh / 2, dh - 1] {
                assert!(
                    monotone(out[row * dw..][..dw].iter().copied()),
                    "Y row {row}, {what}"
                );
            }
            let u = &out[dw * dh..][..(dw / 2) * (dh / 2)];
            assert!(
                monotone(u.iter().step_by(dw / 2).copied()),
                "U column, {what}"
            );
            assert!(
                u.chunks_exact(dw / 2)
                    .all(|row| row.iter().all(|&p| p == row[0])),
                "U rows, {what}"
            );
            assert!(
                out[dw * dh + (dw / 2) * (dh / 2)..]
                    .iter()
                    .all(|&v| v == 77),
                "V, {what}"
            );
            // The ends of the ramp stay near the ends: a downscale averages
            // about `sw / dw` source samples into the first one.
            let slack = 219 * (sw / dw + 1) / (sw - 1) + 2;
            assert!(
                usize::from(out[0]) <= 16 + slack,
                "left end {}, {what}",
                out[0]
            );
            assert!(
                usize::from(out[dw - 1]) + slack >= 235,
                "right end {}, {what}",
                out[dw - 1]
            );
        }
    }

    #[test]
    fn scaling_to_the_same_size_is_the_identity() {
        let src = gradient(64, 48);
        assert_eq!(scale_i420(&src, 64, 48, 64, 48).unwrap(), src);
    }

    #[test]
    fn uniform_colour_stays_exact_in_every_plane() {
        let (y, u, v) = bt601(255, 0, 0);
        for ((sw, sh), (dw, dh)) in [
            ((640, 480), (320, 180)),
            ((176, 144), (1280, 720)),
            ((100, 60), (30, 18)),
        ] {
            let mut src = vec![y; sw * sh];
            src.resize(sw * sh + (sw / 2) * (sh / 2), u);
            src.resize(i420_len(sw as u32, sh as u32), v);
            for scaled in [
                scale_i420(&src, sw as u32, sh as u32, dw as u32, dh as u32).unwrap(),
                fit_i420(&src, sw as u32, sh as u32, dw as u32, dh as u32).unwrap(),
            ] {
                let (luma, chroma) = scaled.split_at(dw * dh);
                let (cu, cv) = chroma.split_at((dw / 2) * (dh / 2));
                assert!(luma.iter().all(|&p| p == y));
                assert!(cu.iter().all(|&p| p == u));
                assert!(cv.iter().all(|&p| p == v));
            }
        }
    }

    #[test]
    fn scaling_rejects_bad_sizes_and_short_frames() {
        let src = gradient(64, 48);
        assert!(matches!(
            scale_i420(&src, 64, 48, 63, 48),
            Err(ConvertError::BadSize { .. })
        ));
        assert!(matches!(
            scale_i420(&src, 64, 47, 32, 24),
            Err(ConvertError::BadSize { .. })
        ));
        assert!(matches!(
            scale_i420(&src, 64, 48, 0, 0),
            Err(ConvertError::BadSize { .. })
        ));
        assert!(matches!(
            scale_i420(&src, 64, 48, 8192, 8192),
            Err(ConvertError::BadSize { .. })
        ));
        assert!(matches!(
            scale_i420(&src[..src.len() - 1], 64, 48, 32, 24),
            Err(ConvertError::Truncated { .. })
        ));
        assert!(fit_i420(&src[..100], 64, 48, 32, 24).is_err());
    }

    #[test]
    fn scaling_cost_at_720p() {
        // Printed, not asserted: debug builds and shared CI machines vary.
        let src = gradient(1280, 720);
        for (dw, dh) in [(1280, 720), (640, 360), (960, 540), (320, 180)] {
            let start = Instant::now();
            let runs = 5;
            for _ in 0..runs {
                std::hint::black_box(scale_i420(&src, 1280, 720, dw, dh).unwrap());
            }
            println!(
                "scale 1280x720 → {dw}x{dh}: {:?} per frame",
                start.elapsed() / runs
            );
        }
        let yuyv = yuyv_bars(1280, 720, &[(16, 128, 128), (235, 16, 240)], 0);
        let start = Instant::now();
        std::hint::black_box(yuyv_to_i420(&yuyv, 1280, 720, 2560).unwrap());
        println!("yuyv 1280x720 → i420: {:?}", start.elapsed());
    }

    #[test]
    fn crop_keeps_the_target_aspect_ratio_centred() {
        let crop = |sw, sh, dw, dh| {
            let c = fit_crop(sw, sh, dw, dh);
            (c.x, c.y, c.width, c.height)
        };
        assert_eq!(crop(1280, 960, 1280, 720), (0, 120, 1280, 720));
        assert_eq!(crop(640, 480, 1280, 720), (0, 60, 640, 360));
        assert_eq!(crop(1920, 1080, 640, 480), (240, 0, 1440, 1080));
        assert_eq!(crop(640, 480, 320, 240), (0, 0, 640, 480));
        // 176 × 144 (11:9) to 16:9: 176 × 99 rounds to 176 × 100, y even.
        assert_eq!(crop(176, 144, 1280, 720), (0, 22, 176, 100));
        for (sw, sh, dw, dh) in [
            (2, 2, 1280, 2),
            (2, 4096, 4096, 2),
            (4096, 2, 2, 4096),
            (34, 18, 1280, 720),
        ] {
            let c = fit_crop(sw, sh, dw, dh);
            assert!(c.width >= 2 && c.height >= 2, "{c:?}");
            assert!(c.x + c.width <= sw && c.y + c.height <= sh, "{c:?}");
            assert!(
                [c.x, c.y, c.width, c.height].iter().all(|v| v % 2 == 0),
                "{c:?}"
            );
        }
    }

    #[test]
    fn fit_cuts_the_letterbox_off() {
        // A 4:3 frame whose top and bottom eighths are black and the middle
        // grey: cropped to 16:9, only grey is left.
        let (w, h) = (640, 480);
        let mut src = gradient(w, h);
        for (row, line) in src[..w * h].chunks_exact_mut(w).enumerate() {
            line.fill(if (60..420).contains(&row) { 180 } else { 16 });
        }
        let out = fit_i420(&src, 640, 480, 320, 180).unwrap();
        assert!(out[..320 * 180].iter().all(|&p| p == 180));
        let stretched = scale_i420(&src, 640, 480, 320, 180).unwrap();
        assert_eq!(stretched[0], 16);
    }

    #[test]
    fn integer_rgb_conversion_matches_bt601() {
        let colours = [
            (0, 0, 0),
            (255, 255, 255),
            (255, 0, 0),
            (0, 255, 0),
            (0, 0, 255),
            (128, 128, 128),
            (255, 255, 0),
            (12, 200, 99),
        ];
        for (r, g, b) in colours {
            let (u, v) = rgb_to_uv(r, g, b);
            assert_close((rgb_to_y(r, g, b), u, v), bt601(r, g, b), 1, "rgb");
        }
    }

    #[test]
    fn full_range_is_compressed_to_video_range() {
        let mut frame = vec![0, 255, 128, 64, 0, 255];
        i420_full_to_video_range(&mut frame, 2, 2);
        assert_eq!(frame, [16, 235, 126, 71, 16, 240]);
        assert_eq!(C_TO_VIDEO[128], 128);
        assert!(monotone(Y_TO_VIDEO) && monotone(C_TO_VIDEO));
        assert!(raw_is_full_range(Colorspace::JPEG, Quantization::Default));
        assert!(raw_is_full_range(Colorspace::SRGB, Quantization::FullRange));
        assert!(!raw_is_full_range(Colorspace::SRGB, Quantization::Default));
        assert!(!raw_is_full_range(
            Colorspace::JPEG,
            Quantization::LimitedRange
        ));
    }

    fn mode(format: PixelFormat, width: u32, height: u32, fps: u32) -> Mode {
        let fourcc = match format {
            PixelFormat::Yuyv => *b"YUYV",
            PixelFormat::Nv12 => *b"NV12",
            PixelFormat::Mjpeg => *b"MJPG",
        };
        Mode {
            format,
            fourcc,
            width,
            height,
            fps,
        }
    }

    /// A typical USB 2 webcam: raw formats are slow at large sizes.
    fn webcam() -> Vec<Mode> {
        use PixelFormat::{Mjpeg, Yuyv};
        vec![
            mode(Yuyv, 640, 480, 30),
            mode(Yuyv, 1280, 720, 10),
            mode(Yuyv, 1920, 1080, 5),
            mode(Yuyv, 320, 240, 30),
            mode(Mjpeg, 640, 480, 30),
            mode(Mjpeg, 1280, 720, 30),
            mode(Mjpeg, 1920, 1080, 30),
            mode(Mjpeg, 320, 240, 30),
        ]
    }

    #[test]
    fn mode_choice_prefers_yuyv_when_equal() {
        let chosen = choose_mode(&webcam(), 640, 480, 30).unwrap();
        assert_eq!(chosen, mode(PixelFormat::Yuyv, 640, 480, 30));
        let nv12 = [
            mode(PixelFormat::Mjpeg, 640, 480, 30),
            mode(PixelFormat::Nv12, 640, 480, 30),
        ];
        assert_eq!(
            choose_mode(&nv12, 640, 480, 30).unwrap().format,
            PixelFormat::Nv12
        );
    }

    #[test]
    fn mode_choice_takes_mjpeg_when_raw_is_too_slow() {
        let chosen = choose_mode(&webcam(), 1280, 720, 30).unwrap();
        assert_eq!(chosen, mode(PixelFormat::Mjpeg, 1280, 720, 30));
        // Asked for 10 fps, the raw mode is fine.
        let chosen = choose_mode(&webcam(), 1280, 720, 10).unwrap();
        assert_eq!(chosen, mode(PixelFormat::Yuyv, 1280, 720, 10));
    }

    #[test]
    fn mode_choice_covers_the_size_without_going_huge() {
        use PixelFormat::Yuyv;
        // Smallest size that covers 960 × 540 at the rate.
        let chosen = choose_mode(&webcam(), 960, 540, 30).unwrap();
        assert_eq!((chosen.width, chosen.height), (1280, 720));
        // Nothing covers: the largest that does not.
        let small = [mode(Yuyv, 320, 240, 30), mode(Yuyv, 640, 480, 30)];
        assert_eq!(choose_mode(&small, 1280, 720, 30).unwrap().width, 640);
        // 4K for a 320 × 180 call: taken when it is all there is, but a
        // size that covers within 4 × the area wins, and so does one that
        // does not cover at all.
        let huge = [
            mode(Yuyv, 3840, 2160, 30),
            mode(Yuyv, 640, 360, 30),
            mode(Yuyv, 160, 120, 30),
        ];
        assert_eq!(choose_mode(&huge, 320, 180, 30).unwrap().width, 640);
        assert_eq!(choose_mode(&huge[..1], 320, 180, 30).unwrap().width, 3840);
        assert_eq!(
            choose_mode(&[huge[0], huge[2]], 320, 180, 30)
                .unwrap()
                .width,
            160
        );
        // A smooth 720p at 25 fps beats a sharp 1080p at 15, and a small
        // 320 × 240 at the full 30 does not beat it either.
        let rates = [
            mode(Yuyv, 1920, 1080, 15),
            mode(Yuyv, 1280, 720, 25),
            mode(Yuyv, 320, 240, 30),
        ];
        assert_eq!(choose_mode(&rates, 1920, 1080, 30).unwrap().width, 1280);
        // Equal sizes: the full rate first, then the format.
        let full = [
            mode(Yuyv, 1280, 720, 25),
            mode(PixelFormat::Mjpeg, 1280, 720, 30),
        ];
        assert_eq!(choose_mode(&full, 1280, 720, 30).unwrap().fps, 30);
        // All too slow: the fastest, whatever its size.
        let slow = [mode(Yuyv, 1920, 1080, 5), mode(Yuyv, 640, 480, 15)];
        assert_eq!(choose_mode(&slow, 1280, 720, 30).unwrap().fps, 15);
    }

    #[test]
    fn mode_choice_skips_sizes_i420_cannot_hold() {
        use PixelFormat::Mjpeg;
        assert_eq!(choose_mode(&[], 640, 480, 30), None);
        let odd = [
            mode(Mjpeg, 641, 481, 30),
            mode(Mjpeg, 0, 0, 30),
            mode(Mjpeg, 8192, 4320, 30),
        ];
        assert_eq!(choose_mode(&odd, 640, 480, 30), None);
    }

    #[test]
    fn rates_and_steps_are_picked_sensibly() {
        assert_eq!(pick_rate(&[], 30), 30);
        assert_eq!(pick_rate(&[(29.97, 29.97), (15.0, 15.0)], 30), 30);
        assert_eq!(pick_rate(&[(60.0, 60.0), (15.0, 15.0)], 30), 60);
        assert_eq!(pick_rate(&[(5.0, 5.0), (10.0, 10.0)], 30), 10);
        assert_eq!(pick_rate(&[(1.0, 60.0)], 24), 24);
        assert_eq!(step_to(1280, 16, 1920, 8), 1280);
        assert_eq!(step_to(1283, 16, 1920, 8), 1288);
        assert_eq!(step_to(5000, 16, 1920, 8), 1920);
        assert_eq!(step_to(5000, 16, 1917, 8), 1912);
        assert_eq!(step_to(2, 16, 1920, 8), 16);
        assert_eq!(step_to(640, 640, 640, 0), 640);
        assert_eq!(step_to(700, 0, 1000, 0), 700);
        assert!(matches!(
            PixelFormat::from_fourcc(*b"JPEG"),
            Some(PixelFormat::Mjpeg)
        ));
        assert_eq!(PixelFormat::from_fourcc(*b"H264"), None);
    }

    #[test]
    fn pipeline_turns_a_full_range_yuyv_4_3_frame_into_16_9() {
        // Full-range bars: the frame comes out in video range, cropped and
        // halved, with the bar colours intact at their centres.
        let bars = [(0, 128, 128), (255, 128, 128), (128, 0, 255)];
        let src = yuyv_bars(96, 72, &bars, 0);
        let pipeline = Pipeline {
            format: PixelFormat::Yuyv,
            width: 96,
            height: 72,
            stride: 192,
            full_range: true,
            out_width: 48,
            out_height: 28,
        };
        let out = pipeline.run(&src).unwrap();
        assert_eq!(out.len(), i420_len(48, 28));
        assert_close(yuv_at(&out, 48, 28, 8, 14), (16, 128, 128), 1, "black");
        assert_close(yuv_at(&out, 48, 28, 24, 14), (235, 128, 128), 1, "white");
        assert_close(yuv_at(&out, 48, 28, 40, 14), (126, 16, 240), 1, "purple");
        assert!(pipeline.run(&src[..src.len() - 2]).is_err());
    }

    #[test]
    fn pipeline_passes_mjpeg_of_the_right_size_through() {
        let pipeline = Pipeline {
            format: PixelFormat::Mjpeg,
            width: 64,
            height: 16,
            stride: 0,
            full_range: true,
            out_width: 64,
            out_height: 16,
        };
        assert_eq!(
            pipeline.run(BARS_422).unwrap(),
            mjpeg_to_i420(BARS_422).unwrap().2
        );
        let smaller = Pipeline {
            out_width: 32,
            out_height: 8,
            ..pipeline
        };
        let out = smaller.run(BARS_422).unwrap();
        assert_close(
            yuv_at(&out, 32, 8, 20, 4),
            bt601(0, 0, 255),
            2,
            "blue, halved",
        );
    }

    #[test]
    fn device_names_are_numbered() {
        assert_eq!(video_index("video0"), Some(0));
        assert_eq!(video_index("video12"), Some(12));
        assert_eq!(video_index("video"), None);
        assert_eq!(video_index("video0p1"), None);
        assert_eq!(video_index("vbi0"), None);
        assert!(is_capture(
            CapabilityFlags::VIDEO_CAPTURE | CapabilityFlags::STREAMING
        ));
        assert!(!is_capture(
            CapabilityFlags::META_CAPTURE | CapabilityFlags::STREAMING
        ));
        assert!(!is_capture(
            CapabilityFlags::VIDEO_CAPTURE | CapabilityFlags::READ_WRITE
        ));
    }

    fn has_video_nodes() -> bool {
        std::fs::read_dir("/dev")
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .any(|e| e.file_name().to_str().and_then(video_index).is_some())
            })
            .unwrap_or(false)
    }

    #[test]
    fn without_cameras_the_list_is_empty_and_open_says_so() {
        let list = cameras();
        if has_video_nodes() {
            // A machine with cameras: the list is well formed.
            let indices: Vec<_> = list
                .iter()
                .map(|c| video_index(c.path.trim_start_matches("/dev/")).unwrap())
                .collect();
            assert!(indices.windows(2).all(|p| p[0] < p[1]), "{list:?}");
            return;
        }
        assert_eq!(list, []);
        let err = Camera::open(None, 640, 480, 30).unwrap_err();
        assert_eq!(err.to_string(), "no camera found");
    }

    #[test]
    fn open_errors_name_the_device() {
        let err = Camera::open(Some("/dev/nonexistent"), 640, 480, 30)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("/dev/nonexistent: cannot open: "), "{err}");
        // A node that opens but is no V4L2 device.
        let err = Camera::open(Some("/dev/null"), 640, 480, 30)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("/dev/null: not a V4L2 device: "), "{err}");
        let err = Camera::open(Some("/dev/null"), 641, 480, 30)
            .unwrap_err()
            .to_string();
        assert!(err.contains("641x480"), "{err}");
        let err = Camera::open(Some("/dev/null"), 640, 480, 0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("0 fps"), "{err}");
    }

    #[test]
    fn camera_can_be_shared_between_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<Camera>();
    }
}
