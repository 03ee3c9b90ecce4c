//! Decoding one captured V4L2 buffer into an [`Image`].
//!
//! - [`decode_mjpeg`]: an MJPEG frame through `zune-jpeg` (strict mode, so a truncated frame is
//!   an error rather than a half-grey picture). Many UVC cameras send baseline JPEGs without the
//!   Huffman tables (DHT segment): MJPEG as in AVI uses the fixed tables of the JPEG standard,
//!   Annex K.3. A decoder fills them in only when the frame carries an `AVI1` APP0 marker, which
//!   many cameras leave out, so [`decode_mjpeg`] inserts the standard DHT segment itself
//!   whenever none comes before the first scan ([`with_huffman_tables`] does only that, to
//!   save frames as ordinary JPEG files). The decoder also takes an EOI met in the middle of
//!   the scan as the end and greys the rest, so a frame with restart markers is checked for
//!   missing ones (data dropped from its middle). The device layer must still drop buffers the
//!   driver flags `V4L2_BUF_FLAG_ERROR`: a frame without restart markers that lost data in the
//!   middle cannot be told from a whole one here.
//! - [`decode_yuyv`]: packed YUV 4:2:2 (`Y0 U Y1 V` per two pixels): `Gray8` is the Y samples
//!   as they are (no range expansion, like the Y4M source), `Rgb8` the BT.601 limited-range
//!   conversion to full-range RGB.
//!
//! Buffers come from a camera, so nothing here trusts them: wrong sizes, truncated or corrupt
//! frames are typed errors ([`DecodeError`]) naming what is wrong, never panics.

use crate::media::{Image, PixelFormat};
use std::borrow::Cow;
use zune_jpeg::JpegDecoder;
use zune_jpeg::errors::DecodeErrors;
use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;

/// Why a buffer could not be decoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// The expected frame size itself is unusable.
    #[error("bad frame size {width}x{height}: {reason}")]
    BadDimensions {
        /// Expected width.
        width: u32,
        /// Expected height.
        height: u32,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A raw buffer whose length does not match the frame size.
    #[error(
        "{format} {width}x{height} needs {expected} bytes ({bytes_per_pixel} per pixel), the buffer has {actual}"
    )]
    WrongBufferSize {
        /// The buffer's pixel format (`YUYV`).
        format: &'static str,
        /// Expected width.
        width: u32,
        /// Expected height.
        height: u32,
        /// Bytes per pixel of the format.
        bytes_per_pixel: usize,
        /// Bytes a whole frame takes.
        expected: usize,
        /// Bytes the buffer has.
        actual: usize,
    },
    /// An empty MJPEG buffer (a camera that delivered nothing).
    #[error("MJPEG frame is empty")]
    Empty,
    /// The buffer does not start like a JPEG.
    #[error(
        "MJPEG frame does not start with a JPEG start-of-image marker (FF D8): first bytes {first:02X?}"
    )]
    NotJpeg {
        /// Up to the first 8 bytes of the buffer.
        first: Vec<u8>,
    },
    /// The frame ends early (a frame cut short on the USB bus, or a short read).
    #[error("MJPEG frame is truncated ({len} bytes): {reason}")]
    Truncated {
        /// Length of the buffer.
        len: usize,
        /// What is missing.
        reason: String,
    },
    /// The JPEG data is malformed.
    #[error("MJPEG frame is corrupt: {0}")]
    Corrupt(String),
    /// The JPEG uses something the decoder does not support (arithmetic coding, 12-bit, ...).
    #[error("MJPEG frame uses an unsupported JPEG feature: {0}")]
    Unsupported(String),
    /// The JPEG is not the negotiated size.
    #[error(
        "MJPEG frame is {actual_width}x{actual_height}, expected the negotiated {width}x{height}"
    )]
    SizeMismatch {
        /// Expected width.
        width: u32,
        /// Expected height.
        height: u32,
        /// The frame's width.
        actual_width: u32,
        /// The frame's height.
        actual_height: u32,
    },
}

/// Checks a frame size: positive and small enough that a frame's bytes fit in memory math.
fn check_dimensions(width: u32, height: u32) -> Result<(), DecodeError> {
    if width == 0 || height == 0 {
        return Err(DecodeError::BadDimensions {
            width,
            height,
            reason: "width and height must be positive",
        });
    }
    if width > 16384 || height > 16384 {
        return Err(DecodeError::BadDimensions {
            width,
            height,
            reason: "larger than 16384 pixels in a dimension",
        });
    }
    Ok(())
}

/// Decodes a packed YUYV 4:2:2 buffer of exactly `width * height * 2` bytes (`width` even).
///
/// `Gray8` copies the Y samples as they are. `Rgb8` converts with BT.601 limited range (Y in
/// 16..235, Cb/Cr in 16..240, as UVC cameras send them) to full-range RGB, each pixel pair
/// sharing its U and V, rounded to nearest and clamped:
///
/// ```text
/// R = 1.164383 (Y-16)                   + 1.596027 (V-128)
/// G = 1.164383 (Y-16) - 0.391762 (U-128) - 0.812968 (V-128)
/// B = 1.164383 (Y-16) + 2.017232 (U-128)
/// ```
pub fn decode_yuyv(
    bytes: &[u8],
    width: u32,
    height: u32,
    format: PixelFormat,
) -> Result<Image, DecodeError> {
    check_dimensions(width, height)?;
    if width % 2 != 0 {
        return Err(DecodeError::BadDimensions {
            width,
            height,
            reason: "YUYV needs an even width (two pixels share U and V)",
        });
    }
    let pixels = width as usize * height as usize;
    let expected = pixels * 2;
    if bytes.len() != expected {
        return Err(DecodeError::WrongBufferSize {
            format: "YUYV",
            width,
            height,
            bytes_per_pixel: 2,
            expected,
            actual: bytes.len(),
        });
    }
    let data = match format {
        PixelFormat::Gray8 => bytes.iter().step_by(2).copied().collect(),
        PixelFormat::Rgb8 => yuyv_to_rgb(bytes),
    };
    Ok(Image::new(width, height, format, data))
}

/// BT.601 limited range -> full-range RGB coefficients, in 16.16 fixed point.
const K_Y: i32 = 76309; // 1.164383 * 65536
const K_RV: i32 = 104597; // 1.596027 * 65536
const K_GU: i32 = 25675; // 0.391762 * 65536
const K_GV: i32 = 53279; // 0.812968 * 65536
const K_BU: i32 = 132201; // 2.017232 * 65536

#[inline]
fn clamp_u8(v: i32) -> u8 {
    // (v + 1/2) >> 16, clamped to 0..=255
    ((v + 32768) >> 16).clamp(0, 255) as u8
}

/// Packed YUYV (length already checked, a multiple of 4) to RGB.
fn yuyv_to_rgb(bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; bytes.len() / 2 * 3];
    for (src, dst) in bytes.chunks_exact(4).zip(out.chunks_exact_mut(6)) {
        let u = src[1] as i32 - 128;
        let v = src[3] as i32 - 128;
        let r_off = K_RV * v;
        let g_off = -K_GU * u - K_GV * v;
        let b_off = K_BU * u;
        for (k, y) in [src[0], src[2]].into_iter().enumerate() {
            let y = K_Y * (y as i32 - 16);
            dst[3 * k] = clamp_u8(y + r_off);
            dst[3 * k + 1] = clamp_u8(y + g_off);
            dst[3 * k + 2] = clamp_u8(y + b_off);
        }
    }
    out
}

/// The standard Huffman tables of JPEG Annex K.3 (K.3.3: luminance DC and AC, chrominance DC
/// and AC), as one DHT segment: what MJPEG frames without a DHT segment are coded with.
fn standard_dht_segment() -> Vec<u8> {
    const DC_LUMA_BITS: [u8; 16] = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
    const DC_CHROMA_BITS: [u8; 16] = [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0];
    const DC_VALUES: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
    const AC_LUMA_BITS: [u8; 16] = [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d];
    const AC_LUMA_VALUES: [u8; 162] = [
        0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61,
        0x07, 0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52,
        0xd1, 0xf0, 0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0a, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x25,
        0x26, 0x27, 0x28, 0x29, 0x2a, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45,
        0x46, 0x47, 0x48, 0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64,
        0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x83,
        0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99,
        0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6,
        0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3,
        0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8,
        0xe9, 0xea, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa,
    ];
    const AC_CHROMA_BITS: [u8; 16] = [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77];
    const AC_CHROMA_VALUES: [u8; 162] = [
        0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61,
        0x71, 0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xa1, 0xb1, 0xc1, 0x09, 0x23, 0x33,
        0x52, 0xf0, 0x15, 0x62, 0x72, 0xd1, 0x0a, 0x16, 0x24, 0x34, 0xe1, 0x25, 0xf1, 0x17, 0x18,
        0x19, 0x1a, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44,
        0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63,
        0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a,
        0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97,
        0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4,
        0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca,
        0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7,
        0xe8, 0xe9, 0xea, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa,
    ];
    // (class << 4 | table id, code counts per length, values)
    let tables: [(u8, &[u8; 16], &[u8]); 4] = [
        (0x00, &DC_LUMA_BITS, &DC_VALUES),
        (0x10, &AC_LUMA_BITS, &AC_LUMA_VALUES),
        (0x01, &DC_CHROMA_BITS, &DC_VALUES),
        (0x11, &AC_CHROMA_BITS, &AC_CHROMA_VALUES),
    ];
    let body: usize = tables.iter().map(|(_, b, v)| 1 + b.len() + v.len()).sum();
    let len = body + 2; // the length field counts itself: 418
    let mut seg = Vec::with_capacity(2 + len);
    seg.extend_from_slice(&[0xFF, 0xC4, (len >> 8) as u8, len as u8]);
    for (tc_th, bits, values) in tables {
        seg.push(tc_th);
        seg.extend_from_slice(bits);
        seg.extend_from_slice(values);
    }
    seg
}

/// What the marker walk before the first scan found.
struct JpegLayout {
    /// Offset of the SOS marker (FF DA).
    sos: usize,
    /// Offset of the entropy-coded data after the SOS header.
    scan_data: usize,
    /// Whether a DHT segment came before it.
    has_dht: bool,
    /// The frame header's size (SOF), if one was seen.
    size: Option<(u32, u32)>,
    /// The SOF marker (0xC0 baseline, 0xC1 extended, 0xC2 progressive, ...), 0 if none.
    sof: u8,
    /// The frame's components: (id, horizontal, vertical sampling factor).
    components: Vec<(u8, u8, u8)>,
    /// The component ids of the first scan.
    scan_components: Vec<u8>,
    /// MCUs between restart markers (DRI), 0 without.
    restart_interval: u16,
}

/// Walks the marker segments from SOI to the first SOS, checking each fits in the buffer.
fn scan_markers(b: &[u8]) -> Result<JpegLayout, DecodeError> {
    let truncated = |reason: &str| DecodeError::Truncated {
        len: b.len(),
        reason: reason.to_string(),
    };
    let mut i = 2; // after SOI
    let mut has_dht = false;
    let mut size = None;
    let mut sof = 0u8;
    let mut components = Vec::new();
    let mut restart_interval = 0u16;
    loop {
        // Markers may be preceded by any number of 0xFF fill bytes.
        if i >= b.len() {
            return Err(truncated(
                "it ends before the image data (no start-of-scan marker)",
            ));
        }
        if b[i] != 0xFF {
            return Err(DecodeError::Corrupt(format!(
                "expected a marker at byte {i}, found {:#04X}",
                b[i]
            )));
        }
        while i < b.len() && b[i] == 0xFF {
            i += 1;
        }
        let Some(&marker) = b.get(i) else {
            return Err(truncated("it ends inside a marker"));
        };
        let at = i - 1;
        i += 1;
        match marker {
            // Standalone markers: TEM, RSTn.
            0x01 | 0xD0..=0xD7 => continue,
            0xD8 => {
                return Err(DecodeError::Corrupt(format!(
                    "a second start-of-image at byte {at}"
                )));
            }
            0xD9 => {
                return Err(DecodeError::Corrupt(format!(
                    "end-of-image at byte {at} before any image data"
                )));
            }
            0x00 => {
                return Err(DecodeError::Corrupt(format!(
                    "invalid marker FF 00 at byte {at}"
                )));
            }
            _ => {}
        }
        if i + 2 > b.len() {
            return Err(truncated("it ends inside a segment length"));
        }
        let seg_len = u16::from_be_bytes([b[i], b[i + 1]]) as usize;
        if seg_len < 2 {
            return Err(DecodeError::Corrupt(format!(
                "segment {marker:#04X} at byte {at} has length {seg_len}"
            )));
        }
        if i + seg_len > b.len() {
            return Err(truncated(&format!(
                "segment FF {marker:02X} at byte {at} needs {seg_len} bytes, {} remain",
                b.len() - i
            )));
        }
        let body = &b[i + 2..i + seg_len];
        match marker {
            0xDA => {
                let n = body.first().copied().unwrap_or(0) as usize;
                let scan_components = body
                    .get(1..1 + 2 * n)
                    .map(|c| c.iter().step_by(2).copied().collect())
                    .unwrap_or_default();
                return Ok(JpegLayout {
                    sos: at,
                    scan_data: i + seg_len,
                    has_dht,
                    size,
                    sof,
                    components,
                    scan_components,
                    restart_interval,
                });
            }
            0xC4 => has_dht = true,
            0xDD if body.len() >= 2 => restart_interval = u16::from_be_bytes([body[0], body[1]]),
            // SOF0..SOF15 except DHT (C4), JPG (C8), DAC (CC).
            0xC0..=0xCF if marker != 0xC8 && marker != 0xCC => {
                if body.len() < 5 {
                    return Err(DecodeError::Corrupt(format!(
                        "frame header at byte {at} is {} bytes long",
                        body.len()
                    )));
                }
                let h = u16::from_be_bytes([body[1], body[2]]) as u32;
                let w = u16::from_be_bytes([body[3], body[4]]) as u32;
                size = Some((w, h));
                sof = marker;
                let n = body.get(5).copied().unwrap_or(0) as usize;
                components = body
                    .get(6..6 + 3 * n)
                    .map(|c| {
                        c.chunks_exact(3)
                            .map(|c| (c[0], c[1] >> 4, c[1] & 0x0F))
                            .collect()
                    })
                    .unwrap_or_default();
            }
            _ => {}
        }
        i += seg_len;
    }
}

/// For a single-scan baseline frame with a restart interval: checks the scan holds as many
/// restart markers as its MCUs need. The decoder takes an EOI in the middle of the scan as the
/// end and fills the rest, so a frame that lost data in the middle (dropped USB packets) but
/// still ends with EOI would decode "fine"; the restart markers show it. Frames without a
/// restart interval, or with several scans, are left to the decoder.
fn check_restarts(bytes: &[u8], layout: &JpegLayout, end: usize) -> Result<(), DecodeError> {
    let ri = layout.restart_interval as u64;
    if ri == 0 || !matches!(layout.sof, 0xC0 | 0xC1) || layout.scan_data + 2 > end {
        return Ok(());
    }
    let data = &bytes[layout.scan_data..end - 2];
    let mut found = 0u64;
    let mut k = 0;
    while k + 1 < data.len() {
        if data[k] == 0xFF {
            match data[k + 1] {
                0xD0..=0xD7 => found += 1,
                0x00 => {}
                // A fill byte: the marker (if any) starts at the next 0xFF.
                0xFF => {
                    k += 1;
                    continue;
                }
                // Another scan or a stray marker: not the simple case checked here.
                _ => return Ok(()),
            }
            k += 2;
        } else {
            k += 1;
        }
    }
    let (Some((w, h)), false) = (layout.size, layout.components.is_empty()) else {
        return Ok(());
    };
    let hmax = layout.components.iter().map(|c| c.1).max().unwrap_or(0) as u64;
    let vmax = layout.components.iter().map(|c| c.2).max().unwrap_or(0) as u64;
    if hmax == 0 || vmax == 0 || layout.components.iter().any(|c| c.1 == 0 || c.2 == 0) {
        return Ok(());
    }
    let (w, h) = (w as u64, h as u64);
    let mcus = match layout.scan_components.as_slice() {
        [] => return Ok(()),
        [id] => {
            // A non-interleaved scan: one MCU per 8x8 block of that component.
            let Some(c) = layout.components.iter().find(|c| c.0 == *id) else {
                return Ok(());
            };
            let cw = (w * c.1 as u64).div_ceil(hmax);
            let ch = (h * c.2 as u64).div_ceil(vmax);
            cw.div_ceil(8) * ch.div_ceil(8)
        }
        _ => w.div_ceil(8 * hmax) * h.div_ceil(8 * vmax),
    };
    let expected = mcus.div_ceil(ri).saturating_sub(1);
    if found < expected {
        return Err(DecodeError::Truncated {
            len: bytes.len(),
            reason: format!(
                "{found} of its {expected} restart markers: data is missing from the middle of the frame"
            ),
        });
    }
    if found > expected {
        return Err(DecodeError::Corrupt(format!(
            "{found} restart markers where {mcus} MCUs at an interval of {ri} need {expected}"
        )));
    }
    Ok(())
}

/// Maps a zune-jpeg error onto ours.
fn map_zune_error(len: usize, e: DecodeErrors) -> DecodeError {
    // zune-jpeg's messages quote their text ("\"Bad Huffman Code ...\""): unquote.
    let text = format!("{e:?}").trim_matches('"').to_string();
    match e {
        DecodeErrors::ExhaustedData | DecodeErrors::IoErrors(_) => {
            DecodeError::Truncated { len, reason: text }
        }
        DecodeErrors::FormatStatic(s) if s.contains("Premature end") => {
            DecodeError::Truncated { len, reason: text }
        }
        DecodeErrors::Unsupported(_) => DecodeError::Unsupported(text),
        _ => DecodeError::Corrupt(text),
    }
}

/// Checks the framing of an MJPEG buffer: it starts with SOI (FF D8), its marker segments up
/// to the first scan fit in it, and it ends with EOI (FF D9; zero padding after it is allowed,
/// as some cameras pad their buffers). Returns the layout and the length without the padding.
fn check_framing(bytes: &[u8]) -> Result<(JpegLayout, usize), DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    if bytes.len() < 2 || bytes[0] != 0xFF || bytes[1] != 0xD8 {
        return Err(DecodeError::NotJpeg {
            first: bytes.iter().take(8).copied().collect(),
        });
    }
    let layout = scan_markers(bytes)?;
    let end = bytes.len() - bytes.iter().rev().take_while(|&&b| b == 0).count();
    if end < layout.sos + 4 || bytes[end - 2..end] != [0xFF, 0xD9] {
        return Err(DecodeError::Truncated {
            len: bytes.len(),
            reason: "it does not end with the end-of-image marker (FF D9)".to_string(),
        });
    }
    Ok((layout, end))
}

/// The frame up to `end`, with the standard DHT segment inserted before the scan if it has none.
fn patch_tables<'a>(bytes: &'a [u8], layout: &JpegLayout, end: usize) -> Cow<'a, [u8]> {
    if layout.has_dht {
        return Cow::Borrowed(&bytes[..end]);
    }
    let dht = standard_dht_segment();
    let mut v = Vec::with_capacity(end + dht.len());
    v.extend_from_slice(&bytes[..layout.sos]);
    v.extend_from_slice(&dht);
    v.extend_from_slice(&bytes[layout.sos..end]);
    Cow::Owned(v)
}

/// An MJPEG frame as a self-contained JPEG file: unchanged (borrowed, without any zero padding
/// after EOI) when it has Huffman tables, else a copy with the standard tables of JPEG Annex
/// K.3 inserted before the scan, which any JPEG decoder or viewer reads. Useful to save camera
/// frames; [`decode_mjpeg`] does the same before decoding. Fails like [`decode_mjpeg`] on a
/// buffer that is not a whole JPEG.
pub fn with_huffman_tables(bytes: &[u8]) -> Result<Cow<'_, [u8]>, DecodeError> {
    let (layout, end) = check_framing(bytes)?;
    Ok(patch_tables(bytes, &layout, end))
}

/// Decodes one MJPEG frame that should be `width` x `height` into `format`.
///
/// Checks before decoding: the buffer starts with SOI (FF D8), its marker segments up to the
/// first scan fit in it, it ends with EOI (FF D9; zero padding after it is allowed, as some
/// cameras pad their buffers), the frame header's size is the expected one, and, when the
/// frame uses restart markers, none is missing (data lost from the middle of a frame that
/// still ends with EOI). When no DHT segment precedes the scan, the standard tables are
/// inserted (see the module docs). `Gray8`
/// is the JPEG's luma channel as coded (full range); `Rgb8` the decoder's JFIF conversion.
pub fn decode_mjpeg(
    bytes: &[u8],
    width: u32,
    height: u32,
    format: PixelFormat,
) -> Result<Image, DecodeError> {
    check_dimensions(width, height)?;
    let (layout, end) = check_framing(bytes)?;
    if let Some((w, h)) = layout.size.filter(|&s| s != (width, height)) {
        return Err(DecodeError::SizeMismatch {
            width,
            height,
            actual_width: w,
            actual_height: h,
        });
    }
    check_restarts(bytes, &layout, end)?;
    let jpeg = patch_tables(bytes, &layout, end);
    let jpeg: &[u8] = &jpeg;

    let out_cs = match format {
        PixelFormat::Gray8 => ColorSpace::Luma,
        PixelFormat::Rgb8 => ColorSpace::RGB,
    };
    let options = DecoderOptions::default()
        .set_strict_mode(true)
        .set_max_width(width as usize)
        .set_max_height(height as usize)
        .jpeg_set_out_colorspace(out_cs);
    // The decoder is fuzzed and returns errors for bad input; a panic on some frame it was never
    // fuzzed with must still not take the daemon down, so it becomes an error too.
    let result = std::panic::catch_unwind(|| {
        let mut dec = JpegDecoder::new_with_options(ZCursor::new(jpeg), options);
        let pixels = dec.decode()?;
        Ok::<_, DecodeErrors>((pixels, dec.dimensions()))
    });
    let (pixels, dims) = match result {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Err(map_zune_error(bytes.len(), e)),
        Err(_) => {
            return Err(DecodeError::Corrupt(
                "the JPEG decoder failed on this frame (internal panic)".to_string(),
            ));
        }
    };
    if let Some((w, h)) =
        dims.filter(|&(w, h)| (w as u64, h as u64) != (width as u64, height as u64))
    {
        return Err(DecodeError::SizeMismatch {
            width,
            height,
            actual_width: u32::try_from(w).unwrap_or(u32::MAX),
            actual_height: u32::try_from(h).unwrap_or(u32::MAX),
        });
    }
    let expected = width as usize * height as usize * format.bytes_per_pixel();
    if pixels.len() != expected {
        return Err(DecodeError::Corrupt(format!(
            "decoded {} bytes, expected {expected} for {width}x{height} {format:?}",
            pixels.len()
        )));
    }
    Ok(Image::new(width, height, format, pixels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dht_segment_is_well_formed() {
        let seg = standard_dht_segment();
        assert_eq!(&seg[..2], &[0xFF, 0xC4]);
        let len = u16::from_be_bytes([seg[2], seg[3]]) as usize;
        assert_eq!(len, 418);
        assert_eq!(seg.len(), len + 2);
        // Each table's code counts add up to its number of values.
        let mut i = 4;
        while i < seg.len() {
            let n: usize = seg[i + 1..i + 17].iter().map(|&c| c as usize).sum();
            i += 17 + n;
        }
        assert_eq!(i, seg.len());
    }

    #[test]
    fn yuyv_gray_and_rgb_of_known_values() {
        // Two pixel pairs: black and white (limited range), then grey with a red tint.
        let buf = [16, 128, 235, 128, 126, 100, 130, 200];
        let g = decode_yuyv(&buf, 4, 1, PixelFormat::Gray8).expect("decodes");
        assert_eq!(g.data, vec![16, 235, 126, 130]);
        let c = decode_yuyv(&buf, 4, 1, PixelFormat::Rgb8).expect("decodes");
        assert_eq!(&c.data[..6], &[0, 0, 0, 255, 255, 255]);
        // Y=126 U=100 V=200: R = 1.164383*110 + 1.596027*72 = 243.1
        assert_eq!(c.data[6], 243);
    }

    #[test]
    fn yuyv_rejects_bad_sizes() {
        let e = decode_yuyv(&[0; 10], 4, 1, PixelFormat::Gray8).expect_err("too long");
        assert!(matches!(
            e,
            DecodeError::WrongBufferSize {
                expected: 8,
                actual: 10,
                ..
            }
        ));
        assert!(e.to_string().contains("needs 8 bytes"), "{e}");
        let e = decode_yuyv(&[0; 6], 3, 1, PixelFormat::Gray8).expect_err("odd width");
        assert!(e.to_string().contains("even width"), "{e}");
        let e = decode_yuyv(&[], 0, 0, PixelFormat::Rgb8).expect_err("zero");
        assert!(matches!(e, DecodeError::BadDimensions { .. }));
    }

    #[test]
    fn mjpeg_rejects_non_jpeg_and_empty() {
        assert_eq!(
            decode_mjpeg(&[], 8, 8, PixelFormat::Gray8),
            Err(DecodeError::Empty)
        );
        assert!(matches!(
            decode_mjpeg(b"GIF89a....", 8, 8, PixelFormat::Gray8),
            Err(DecodeError::NotJpeg { .. })
        ));
        assert!(matches!(
            decode_mjpeg(&[0xFF, 0xD8], 8, 8, PixelFormat::Gray8),
            Err(DecodeError::Truncated { .. })
        ));
        assert!(matches!(
            decode_mjpeg(&[0xFF, 0xD8, 0xFF, 0xD9], 8, 8, PixelFormat::Gray8),
            Err(DecodeError::Corrupt(_))
        ));
        assert!(matches!(
            decode_mjpeg(
                &[0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 1, 2],
                8,
                8,
                PixelFormat::Gray8
            ),
            Err(DecodeError::Truncated { .. })
        ));
    }
}
