//! Media types shared by sources and the engine: decoded frames and audio blocks, each with its
//! timestamp.
//!
//! Timestamps are nanoseconds on one clock per stream: media time (from the stream's start) in
//! replay, CLOCK_MONOTONIC for live capture (see DESIGN.md, "Time").

/// Pixel layout of a decoded image. The engine works on 8-bit luma or packed RGB only; sources
/// convert whatever they read (Y4M 4:2:0/4:2:2/4:4:4, ffmpeg output, YUYV, MJPEG) into one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// One byte per pixel: the luma (Y) plane as stored (no range expansion).
    Gray8,
    /// Three bytes per pixel, R G B, full range (BT.601 conversion from YUV).
    Rgb8,
}

impl PixelFormat {
    pub fn bytes_per_pixel(self) -> usize {
        match self {
            PixelFormat::Gray8 => 1,
            PixelFormat::Rgb8 => 3,
        }
    }
}

/// A decoded picture, rows packed without padding.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub width: u32,
    pub height: u32,
    pub format: PixelFormat,
    pub data: Vec<u8>,
}

impl Image {
    pub fn new(width: u32, height: u32, format: PixelFormat, data: Vec<u8>) -> Image {
        debug_assert_eq!(
            data.len(),
            width as usize * height as usize * format.bytes_per_pixel()
        );
        Image {
            width,
            height,
            format,
            data,
        }
    }

    /// A uniformly filled image, mostly for tests and padding.
    pub fn filled(width: u32, height: u32, format: PixelFormat, value: u8) -> Image {
        let len = width as usize * height as usize * format.bytes_per_pixel();
        Image {
            width,
            height,
            format,
            data: vec![value; len],
        }
    }
}

/// One decoded video frame as a source delivers it.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoFrame {
    /// Presentation time in ns (media time in replay, CLOCK_MONOTONIC live).
    pub pts_ns: i64,
    pub image: Image,
}

/// A block of mono audio: the first channel of the source, as f32 in [-1, 1]
/// (integer PCM divided by 2^(bits-1), float as is).
#[derive(Debug, Clone, PartialEq)]
pub struct AudioBlock {
    /// Time of the first sample in ns (same clock as the video of the same run).
    pub pts_ns: i64,
    /// Sample rate in Hz.
    pub rate: u32,
    pub samples: Vec<f32>,
}

/// Nanoseconds per second.
pub const NS_PER_S: i64 = 1_000_000_000;

/// The frame rate of the analysis grid (DESIGN.md: frame k is at t = k / 12 s).
pub const GRID_FPS: u32 = 12;

/// Time of grid frame `k` in ns from the stream start.
pub fn grid_time_ns(k: u64) -> i64 {
    // k * 1e9 / 12, rounded to the nearest ns; exact for every k a run can reach.
    ((k as i128 * NS_PER_S as i128 * 2 + GRID_FPS as i128) / (2 * GRID_FPS as i128)) as i64
}
