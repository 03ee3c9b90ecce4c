//! Sources: where frames and audio come from.
//!
//! Each source is a pull iterator over decoded media with timestamps. Files: Y4M (native, also `-`
//! for stdin) and WAV (native, `hound`); every other container through an `ffmpeg` subprocess.
//! [`grid::GridResampler`] then puts video of any frame rate on the 12-fps analysis grid by
//! timestamps (nearest frame).

pub mod ffmpeg;
pub mod grid;
pub mod memory;
pub mod synthetic;
pub mod wav;
pub mod y4m;

use crate::media::{AudioBlock, PixelFormat, VideoFrame};
use std::path::{Path, PathBuf};

/// What went wrong in a source. The kind tells the caller what to do next: a `NotFound` or
/// `Unsupported` will not get better by retrying; `Io` on a live device may.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: file not found")]
    NotFound { path: PathBuf },
    #[error("{path}: {reason}")]
    Unsupported { path: PathBuf, reason: String },
    #[error("{path}: corrupt or truncated media: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{path}: no {what} track")]
    NoTrack { path: PathBuf, what: &'static str },
    #[error(
        "ffmpeg is needed to read {path} (only .y4m video and .wav audio are read natively) but {program:?} was not found (looked up on PATH; IMPACTD_FFMPEG / IMPACTD_FFPROBE name other programs); install it (Debian/Ubuntu: apt-get install ffmpeg) or convert the file to Y4M + WAV"
    )]
    FfmpegMissing { path: PathBuf, program: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Static facts about a video source, known once it is open.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoInfo {
    pub width: u32,
    pub height: u32,
    /// Nominal frame rate (frames are still placed by their timestamps).
    pub fps: f64,
    pub format: PixelFormat,
    /// Human description for logs, e.g. "y4m 640x480 30000/1001 fps C420jpeg".
    pub description: String,
}

/// Static facts about an audio source.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioInfo {
    pub rate: u32,
    /// Channels in the source (only the first is used).
    pub channels: u16,
    pub description: String,
}

/// A stream of decoded video frames in presentation order.
pub trait VideoSource: Send {
    fn info(&self) -> &VideoInfo;
    /// The next frame, `Ok(None)` at the end of the stream.
    fn next_frame(&mut self) -> Result<Option<VideoFrame>, SourceError>;
}

/// A stream of decoded mono audio blocks in order, without gaps.
pub trait AudioSource: Send {
    fn info(&self) -> &AudioInfo;
    /// The next block, `Ok(None)` at the end of the stream.
    fn next_block(&mut self) -> Result<Option<AudioBlock>, SourceError>;
}

fn extension(path: &Path) -> String {
    path.extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// Opens a video file (or `-` for Y4M on stdin), delivering frames in `format`.
pub fn open_video(path: &Path, format: PixelFormat) -> Result<Box<dyn VideoSource>, SourceError> {
    if path.as_os_str() == "-" {
        return Ok(Box::new(y4m::Y4mSource::stdin(format)?));
    }
    check_readable(path)?;
    if extension(path) == "y4m" {
        Ok(Box::new(y4m::Y4mSource::open(path, format)?))
    } else {
        Ok(Box::new(ffmpeg::FfmpegVideo::open(path, format)?))
    }
}

/// Opens the audio of a file: WAV natively, anything else through ffmpeg.
pub fn open_audio(path: &Path) -> Result<Box<dyn AudioSource>, SourceError> {
    check_readable(path)?;
    if extension(path) == "wav" {
        Ok(Box::new(wav::WavSource::open(path)?))
    } else {
        Ok(Box::new(ffmpeg::FfmpegAudio::open(path)?))
    }
}

fn check_readable(path: &Path) -> Result<(), SourceError> {
    match std::fs::metadata(path) {
        Ok(m) if m.len() == 0 => Err(SourceError::Corrupt {
            path: path.into(),
            reason: "the file is empty".into(),
        }),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(SourceError::NotFound { path: path.into() })
        }
        Err(e) => Err(SourceError::Io {
            path: path.into(),
            source: e,
        }),
    }
}
