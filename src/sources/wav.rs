//! WAV audio, read natively with `hound`.
//!
//! Integer PCM of 8, 16, 24 or 32 bits and 32-bit float, any rate and channel count (also
//! `WAVE_FORMAT_EXTENSIBLE`). Only the **first channel** is delivered, as f32: integer samples
//! divided by 2^(bits-1) (int16 / 32768 exactly as the seed does; 8-bit WAV stores unsigned bytes,
//! which `hound` already centres, so 0x80 is 0.0), float samples as they are.
//!
//! Blocks hold [`BLOCK_FRAMES`] samples (the last one fewer); a block's `pts_ns` is
//! `floor(first_sample_index * 1e9 / rate)`, exact in 128-bit integers.
//!
//! A data chunk shorter than its header says (a truncated file) delivers the samples that are
//! there and then a `Corrupt` error; never a silent end.

use super::{AudioInfo, AudioSource, SourceError};
use crate::media::{AudioBlock, NS_PER_S};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Samples (per channel) in each delivered block, except the last.
pub const BLOCK_FRAMES: usize = 1024;

/// A reader that remembers whether it ran into the end of the file, so that `hound`'s read
/// errors can be told apart: the end of a truncated file versus a real I/O failure.
struct EofFlag<R> {
    inner: R,
    hit_eof: Arc<AtomicBool>,
}

impl<R: Read> Read for EofFlag<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.hit_eof.store(true, Ordering::Relaxed);
        }
        Ok(n)
    }
}

/// A WAV file delivering its first channel as f32 blocks.
pub struct WavSource {
    path: PathBuf,
    reader: hound::WavReader<EofFlag<BufReader<File>>>,
    hit_eof: Arc<AtomicBool>,
    info: AudioInfo,
    channels: usize,
    /// `1 / 2^(bits-1)` for integer PCM, `None` for float.
    int_scale: Option<f32>,
    /// Sample frames delivered so far (the next block's first index).
    frames_read: u64,
    /// Sample frames the header announces.
    frames_total: u64,
    /// An error met while filling the last block, reported by the next call.
    pending_error: Option<SourceError>,
    finished: bool,
}

impl std::fmt::Debug for WavSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WavSource")
            .field("path", &self.path)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl WavSource {
    /// Opens a WAV file and reads its header.
    ///
    /// Errors: `NotFound` / `Io` if it cannot be opened; `Corrupt` if it is not a valid WAV file
    /// (the reason says what `hound` found wrong); `Unsupported` for encodings other than integer
    /// PCM (8/16/24/32 bits) and 32-bit float.
    pub fn open(path: &Path) -> Result<WavSource, SourceError> {
        let file = File::open(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => SourceError::NotFound { path: path.into() },
            _ => SourceError::Io {
                path: path.into(),
                source: e,
            },
        })?;
        let hit_eof = Arc::new(AtomicBool::new(false));
        let flagged = EofFlag {
            inner: BufReader::new(file),
            hit_eof: Arc::clone(&hit_eof),
        };
        let reader = hound::WavReader::new(flagged)
            .map_err(|e| header_error(path, e, hit_eof.load(Ordering::Relaxed)))?;
        let spec = reader.spec();
        let int_scale = match (spec.sample_format, spec.bits_per_sample) {
            (hound::SampleFormat::Int, bits @ (8 | 16 | 24 | 32)) => {
                Some(1.0 / (1u64 << (bits - 1)) as f32)
            }
            (hound::SampleFormat::Float, 32) => None,
            (format, bits) => {
                return Err(SourceError::Unsupported {
                    path: path.into(),
                    reason: format!(
                        "{bits}-bit {} WAV is not supported (only 8/16/24/32-bit integer PCM and 32-bit float)",
                        if format == hound::SampleFormat::Float {
                            "float"
                        } else {
                            "integer"
                        }
                    ),
                });
            }
        };
        if spec.channels == 0 || spec.sample_rate == 0 {
            return Err(SourceError::Corrupt {
                path: path.into(),
                reason: format!(
                    "WAV header declares {} channels at {} Hz",
                    spec.channels, spec.sample_rate
                ),
            });
        }
        let kind = if int_scale.is_some() { "int" } else { "float" };
        let info = AudioInfo {
            rate: spec.sample_rate,
            channels: spec.channels,
            description: format!(
                "wav {}-bit {kind} {} Hz {} ch (first channel used)",
                spec.bits_per_sample, spec.sample_rate, spec.channels
            ),
        };
        Ok(WavSource {
            path: path.into(),
            frames_total: reader.duration() as u64,
            reader,
            hit_eof,
            info,
            channels: spec.channels as usize,
            int_scale,
            frames_read: 0,
            pending_error: None,
            finished: false,
        })
    }

    /// Reads up to [`BLOCK_FRAMES`] first-channel samples into `samples`. On a read error, keeps
    /// what was read and returns the error.
    fn fill(&mut self, samples: &mut Vec<f32>) -> Result<(), hound::Error> {
        let left = (self.frames_total - self.frames_read).min(BLOCK_FRAMES as u64) as usize;
        let wanted = left * self.channels;
        let channels = self.channels;
        match self.int_scale {
            Some(scale) => {
                for (i, s) in self.reader.samples::<i32>().take(wanted).enumerate() {
                    let s = s?;
                    if i % channels == 0 {
                        samples.push(s as f32 * scale);
                    }
                }
            }
            None => {
                for (i, s) in self.reader.samples::<f32>().take(wanted).enumerate() {
                    let s = s?;
                    if i % channels == 0 {
                        samples.push(s);
                    }
                }
            }
        }
        Ok(())
    }
}

/// Maps a `hound` error met while reading the header (`at_eof`: the file had ended).
fn header_error(path: &Path, e: hound::Error, at_eof: bool) -> SourceError {
    let path = path.to_path_buf();
    match e {
        hound::Error::FormatError(what) => SourceError::Corrupt { path, reason: format!("not a valid WAV file: {what}") },
        hound::Error::Unsupported => SourceError::Unsupported {
            path,
            reason: "this WAV encoding is not supported (only 8/16/24/32-bit integer PCM and 32-bit float)".into(),
        },
        hound::Error::IoError(_) if at_eof => {
            SourceError::Corrupt { path, reason: "the file ends inside the WAV header".into() }
        }
        hound::Error::IoError(source) => SourceError::Io { path, source },
        other => SourceError::Corrupt { path, reason: format!("invalid WAV header: {other}") },
    }
}

impl AudioSource for WavSource {
    fn info(&self) -> &AudioInfo {
        &self.info
    }

    /// The next block of up to [`BLOCK_FRAMES`] samples; `Ok(None)` at the end (right away for a
    /// WAV with no samples). A truncated data chunk yields its complete samples, then `Corrupt`
    /// naming how many of the announced samples were there; after an error the stream ends.
    fn next_block(&mut self) -> Result<Option<AudioBlock>, SourceError> {
        if let Some(e) = self.pending_error.take() {
            self.finished = true;
            return Err(e);
        }
        if self.finished || self.frames_read >= self.frames_total {
            self.finished = true;
            return Ok(None);
        }
        let mut samples = Vec::with_capacity(BLOCK_FRAMES);
        let result = self.fill(&mut samples);
        let pts_ns = (self.frames_read as i128 * NS_PER_S as i128 / self.info.rate as i128) as i64;
        self.frames_read += samples.len() as u64;
        if let Err(e) = result {
            let error = match e {
                hound::Error::IoError(source) if !self.hit_eof.load(Ordering::Relaxed) => {
                    SourceError::Io {
                        path: self.path.clone(),
                        source,
                    }
                }
                hound::Error::IoError(_) => SourceError::Corrupt {
                    path: self.path.clone(),
                    reason: format!(
                        "the data chunk is shorter than its header says: the file ends after {} of {} samples",
                        self.frames_read, self.frames_total
                    ),
                },
                other => SourceError::Corrupt {
                    path: self.path.clone(),
                    reason: format!("bad sample after {} samples: {other}", self.frames_read),
                },
            };
            if samples.is_empty() {
                self.finished = true;
                return Err(error);
            }
            self.pending_error = Some(error);
        }
        Ok(Some(AudioBlock {
            pts_ns,
            rate: self.info.rate,
            samples,
        }))
    }
}
