//! Every container other than Y4M and WAV (mp4, mkv, webm, mov, ...; h264, vp9, aac, mp3, opus,
//! ...) is decoded by an `ffmpeg` subprocess; `ffprobe` finds the streams first.
//!
//! # Executables
//! `ffmpeg` and `ffprobe` are looked up on `PATH`. The environment variables
//! [`FFMPEG_ENV`] (`IMPACTD_FFMPEG`) and [`FFPROBE_ENV`] (`IMPACTD_FFPROBE`) name other
//! executables; they are read each time a file is opened ([`FfmpegTools::from_env`]).
//! [`FfmpegVideo::open_with`] and [`FfmpegAudio::open_with`] take the executables explicitly.
//! An executable that cannot be found gives [`SourceError::FfmpegMissing`].
//!
//! # Video: every frame, with its own timestamp
//! ffmpeg decodes the first video stream (cover art is skipped) and passes **every** frame through
//! (`-fps_mode passthrough`) as raw `gray` or `rgb24` on stdout. Each frame's presentation
//! timestamp comes from a second ffmpeg output in the same process: a `framecrc` listing, written
//! as `pipe:0` to a Unix socket that the child has as its file descriptor 0 (ffmpeg runs with
//! `-nostdin`, so fd 0 is free, and `std` cannot hand a child a descriptor under another number).
//! Both outputs get the same decoded frames in the same order; the listing is the first output,
//! flushed per frame, so each frame's line comes before its pixels.
//! Timestamps are in the input stream's own time base (`-enc_time_base -1`), converted to ns
//! with [`ticks_to_ns`], the same conversion the Y4M reader uses: a Y4M file read natively and
//! through ffmpeg gets identical timestamps.
//!
//! Placing frames on the 12-fps grid is left to [`super::grid::GridResampler`], as for every
//! other source. ffmpeg's own `fps=12` filter is **not** used: it does not pick the nearest frame.
//! It gives grid point k the *latest* frame whose time rounds to k (`round(12 t) <= k`, halves
//! rounding up), which for a 30-fps source is always the frame 1/30 s after the nearest one. The
//! test `ffmpeg_fps_filter_is_not_nearest` in `tests/sources.rs` pins this down.
//!
//! Frame size is read from the listing's header (`#dimensions`), so rotated phone videos (which
//! ffmpeg turns upright) get the right size. [`PixelFormat::Gray8`] is the luma plane as stored
//! (`extractplanes=y`, no range expansion, like the Y4M reader); [`PixelFormat::Rgb8`] is
//! ffmpeg's own YUV -> RGB conversion (`format=rgb24`), which may differ from the Y4M reader's by
//! a few levels.
//!
//! # Audio
//! The first audio stream, its first channel (`pan=mono|c0=c0`), at the stream's native rate, as
//! f32 in blocks of [`BLOCK_SAMPLES`]; `pts_ns = floor(sample_index * 1e9 / rate)`. The first
//! sample is taken to be at media time 0: ffmpeg already removes encoder priming where the
//! container says so (mp4 edit lists, Opus pre-skip). AAC output can be up to one AAC frame (1024
//! samples) longer than the source because the last frame's padding is kept.
//!
//! # Errors
//! No stream of the wanted kind: `NoTrack`. ffprobe refusing the file (garbage, an mp4 cut before
//! its index): `Corrupt` with its message. ffmpeg exiting with an error, a raw frame cut short, or
//! ffmpeg reporting any error while decoding (a truncated file still decodes up to the cut, with
//! "partial file" errors): `Corrupt` with the last lines of ffmpeg's stderr, returned after the
//! frames or samples that were decoded. stderr is drained by a thread into a bounded buffer, so
//! the pipe never fills. Dropping a source kills and reaps its ffmpeg process.

use super::grid::ticks_to_ns;
use super::{AudioInfo, AudioSource, SourceError, VideoInfo, VideoSource};
use crate::media::{AudioBlock, Image, NS_PER_S, PixelFormat, VideoFrame};
use serde::Deserialize;
use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

/// Environment variable naming the `ffmpeg` executable (default: `ffmpeg` on `PATH`).
pub const FFMPEG_ENV: &str = "IMPACTD_FFMPEG";
/// Environment variable naming the `ffprobe` executable (default: `ffprobe` on `PATH`).
pub const FFPROBE_ENV: &str = "IMPACTD_FFPROBE";
/// Samples in each audio block, except the last.
pub const BLOCK_SAMPLES: usize = 1024;

/// Lines of ffmpeg's stderr kept for error messages.
const STDERR_LINES: usize = 12;
/// Longest stderr line kept (bytes; longer lines are split).
const STDERR_LINE_BYTES: u64 = 1024;

/// The `ffmpeg` and `ffprobe` executables to run: names looked up on `PATH`, or paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FfmpegTools {
    /// The decoder, `ffmpeg`.
    pub ffmpeg: OsString,
    /// The stream prober, `ffprobe`.
    pub ffprobe: OsString,
}

impl Default for FfmpegTools {
    /// `ffmpeg` and `ffprobe`, looked up on `PATH`.
    fn default() -> FfmpegTools {
        FfmpegTools {
            ffmpeg: "ffmpeg".into(),
            ffprobe: "ffprobe".into(),
        }
    }
}

impl FfmpegTools {
    /// The executables named by [`FFMPEG_ENV`] and [`FFPROBE_ENV`] where set (and not empty),
    /// else the defaults.
    pub fn from_env() -> FfmpegTools {
        let var = |name: &str, default: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.into())
        };
        FfmpegTools {
            ffmpeg: var(FFMPEG_ENV, "ffmpeg"),
            ffprobe: var(FFPROBE_ENV, "ffprobe"),
        }
    }
}

/// `file:PATH`, so that ffmpeg neither reads a leading `-` as an option nor a `name:` prefix as a
/// protocol.
fn file_url(path: &Path) -> OsString {
    let mut url = OsString::from("file:");
    url.push(path.as_os_str());
    url
}

fn spawn_error(path: &Path, program: &std::ffi::OsStr, e: std::io::Error) -> SourceError {
    match e.kind() {
        std::io::ErrorKind::NotFound => SourceError::FfmpegMissing {
            path: path.into(),
            program: program.into(),
        },
        _ => SourceError::Io {
            path: path.into(),
            source: e,
        },
    }
}

fn corrupt(path: &Path, reason: impl Into<String>) -> SourceError {
    SourceError::Corrupt {
        path: path.into(),
        reason: reason.into(),
    }
}

/// One stream as `ffprobe -of json` describes it (only the fields asked for are present).
#[derive(Debug, Deserialize)]
struct ProbeStream {
    index: u32,
    codec_name: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    r_frame_rate: Option<String>,
    avg_frame_rate: Option<String>,
    sample_rate: Option<String>,
    channels: Option<u16>,
    #[serde(default)]
    disposition: Disposition,
}

#[derive(Debug, Default, Deserialize)]
struct Disposition {
    #[serde(default)]
    attached_pic: u8,
}

#[derive(Debug, Deserialize)]
struct Probe {
    #[serde(default)]
    streams: Vec<ProbeStream>,
}

/// Runs ffprobe on `path` for the streams of `kind` (`v` or `a`).
fn probe(
    tools: &FfmpegTools,
    path: &Path,
    kind: &str,
    entries: &str,
) -> Result<Vec<ProbeStream>, SourceError> {
    let output = Command::new(&tools.ffprobe)
        .args([
            "-v",
            "error",
            "-select_streams",
            kind,
            "-show_entries",
            entries,
            "-of",
            "json",
            "-i",
        ])
        .arg(file_url(path))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| spawn_error(path, &tools.ffprobe, e))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let message: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if !output.status.success() {
        let message = if message.is_empty() {
            format!("ffprobe exited with {}", output.status)
        } else {
            message.join(" | ")
        };
        return Err(corrupt(path, format!("ffprobe cannot read it: {message}")));
    }
    let probe: Probe = serde_json::from_slice(&output.stdout)
        .map_err(|e| corrupt(path, format!("unexpected ffprobe output ({e})")))?;
    Ok(probe.streams)
}

/// Parses an ffprobe rate such as `30000/1001`; `None` for `0/0` and the like.
fn parse_rate(rate: Option<&str>) -> Option<f64> {
    let (n, d) = rate?.split_once('/')?;
    let (n, d): (f64, f64) = (n.parse().ok()?, d.parse().ok()?);
    (n > 0.0 && d > 0.0).then(|| n / d)
}

/// `29.97`, `30`, `12.5`: a frame rate for humans.
fn fmt_fps(fps: f64) -> String {
    let s = format!("{fps:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Keeps the last [`STDERR_LINES`] lines of a child's stderr, read by a thread so the pipe never
/// fills.
struct StderrTail {
    lines: Arc<Mutex<(VecDeque<String>, usize)>>,
    thread: Option<JoinHandle<()>>,
}

impl StderrTail {
    fn spawn(stderr: ChildStderr) -> StderrTail {
        let lines = Arc::new(Mutex::new((VecDeque::new(), 0usize)));
        let sink = Arc::clone(&lines);
        let thread = std::thread::Builder::new()
            .name("ffmpeg-stderr".into())
            .spawn(move || {
                let mut reader = BufReader::new(stderr);
                let mut buf = Vec::new();
                loop {
                    buf.clear();
                    match (&mut reader)
                        .take(STDERR_LINE_BYTES)
                        .read_until(b'\n', &mut buf)
                    {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                    let line = String::from_utf8_lossy(&buf).trim().to_string();
                    if line.is_empty() {
                        continue;
                    }
                    let mut guard = sink.lock().unwrap_or_else(PoisonError::into_inner);
                    let (kept, total) = &mut *guard;
                    if kept.len() == STDERR_LINES {
                        kept.pop_front();
                    }
                    kept.push_back(line);
                    *total += 1;
                }
            })
            .ok();
        StderrTail { lines, thread }
    }

    /// Waits for the stream to end (the child has exited) and returns what it said, `None` if
    /// nothing.
    fn collect(&mut self) -> Option<String> {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let guard = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        let (kept, total) = &*guard;
        if kept.is_empty() {
            return None;
        }
        let mut text = Vec::from_iter(kept.iter().cloned()).join(" | ");
        if *total > kept.len() {
            text = format!("({} earlier lines not shown) {text}", total - kept.len());
        }
        Some(text)
    }
}

/// A running ffmpeg; killed and reaped on drop.
struct Process {
    child: Child,
    stderr: StderrTail,
}

impl Process {
    /// Spawns `cmd` with stdout and stderr piped (stdin as the caller set it).
    fn spawn(path: &Path, mut cmd: Command) -> Result<(Process, ChildStdout), SourceError> {
        let program = cmd.get_program().to_owned();
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| spawn_error(path, &program, e))?;
        // Close our copy of what was given as the child's stdin (the listing socket's other end)
        // now, so that the listing ends when ffmpeg does.
        drop(cmd);
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(corrupt(path, "ffmpeg started without its output pipes"));
        };
        Ok((
            Process {
                child,
                stderr: StderrTail::spawn(stderr),
            },
            stdout,
        ))
    }

    /// Waits for ffmpeg to exit; `Err(reason)` if it failed or reported any error.
    fn finish(&mut self) -> Result<(), String> {
        let status: Result<ExitStatus, _> = self.child.wait();
        let said = self.stderr.collect();
        match (status, said) {
            (Err(e), _) => Err(format!("could not wait for ffmpeg: {e}")),
            (Ok(s), Some(said)) if !s.success() => Err(format!("ffmpeg failed ({s}): {said}")),
            (Ok(s), None) if !s.success() => Err(format!("ffmpeg failed ({s})")),
            (Ok(_), Some(said)) => Err(format!("ffmpeg reported errors while decoding: {said}")),
            (Ok(_), None) => Ok(()),
        }
    }

    /// Kills ffmpeg after an error on our side and returns what it had said, if anything.
    fn abort(&mut self) -> Option<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr.collect()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Video decoded by ffmpeg: every frame, with its presentation timestamp (see the module docs).
pub struct FfmpegVideo {
    path: PathBuf,
    info: VideoInfo,
    process: Process,
    frames: ChildStdout,
    /// ffmpeg's per-frame `framecrc` listing.
    listing: BufReader<UnixStream>,
    line: String,
    /// Time base of the listed timestamps (seconds = ticks * num / den).
    time_base: (u64, u64),
    frame_bytes: usize,
    /// The first frame's timestamp, read while opening.
    pending_pts: Option<i64>,
    next_index: u64,
    finished: bool,
}

impl std::fmt::Debug for FfmpegVideo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FfmpegVideo")
            .field("path", &self.path)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// What the listing's header said.
#[derive(Debug, Default)]
struct ListingHeader {
    time_base: Option<(u64, u64)>,
    size: Option<(u32, u32)>,
}

impl ListingHeader {
    fn parse(&mut self, line: &str) {
        if let Some(tb) = line.strip_prefix("#tb 0:") {
            self.time_base = tb
                .trim()
                .split_once('/')
                .and_then(|(n, d)| Some((n.parse().ok()?, d.parse().ok()?)));
        } else if let Some(dims) = line.strip_prefix("#dimensions 0:") {
            self.size = dims
                .trim()
                .split_once('x')
                .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)));
        }
    }
}

/// The pts field of a `framecrc` line: `stream, dts, pts, duration, size, crc[, side data]`.
fn listing_pts(line: &str) -> Option<i64> {
    line.split(',').nth(2)?.trim().parse().ok()
}

impl FfmpegVideo {
    /// Opens the first video stream of `path` with the executables from [`FfmpegTools::from_env`].
    /// See [`Self::open_with`].
    pub fn open(path: &Path, format: PixelFormat) -> Result<FfmpegVideo, SourceError> {
        FfmpegVideo::open_with(path, format, &FfmpegTools::from_env())
    }

    /// Opens the first video stream of `path` (not cover art), starts ffmpeg and waits for the
    /// first decoded frame (which fixes the frame size).
    ///
    /// Errors: `FfmpegMissing` if an executable is not found; `NoTrack { what: "video" }`;
    /// `Corrupt` if ffprobe refuses the file or ffmpeg fails before the first frame (with their
    /// messages); `Io` for other failures to start a process.
    pub fn open_with(
        path: &Path,
        format: PixelFormat,
        tools: &FfmpegTools,
    ) -> Result<FfmpegVideo, SourceError> {
        let streams = probe(
            tools,
            path,
            "v",
            "stream=index,codec_name,width,height,r_frame_rate,avg_frame_rate:stream_disposition=attached_pic",
        )?;
        let Some(stream) = streams
            .into_iter()
            .find(|s| s.disposition.attached_pic == 0)
        else {
            return Err(SourceError::NoTrack {
                path: path.into(),
                what: "video",
            });
        };
        let fps = parse_rate(stream.avg_frame_rate.as_deref())
            .or_else(|| parse_rate(stream.r_frame_rate.as_deref()))
            .unwrap_or(0.0);
        let map = format!("0:{}", stream.index);
        let filter = match format {
            PixelFormat::Gray8 => "setpts=N,extractplanes=y,format=gray",
            PixelFormat::Rgb8 => "setpts=N,format=rgb24",
        };
        // A socket pair rather than `std::io::pipe` (Rust 1.87; the crate supports 1.85).
        let (listing_reader, listing_writer) = UnixStream::pair().map_err(|e| SourceError::Io {
            path: path.into(),
            source: e,
        })?;
        let mut cmd = Command::new(&tools.ffmpeg);
        cmd.args(["-nostdin", "-v", "error", "-i"])
            .arg(file_url(path));
        // Output 1: the timestamp listing, first so that each frame's line precedes its pixels.
        cmd.args([
            "-map",
            &map,
            "-fps_mode",
            "passthrough",
            "-enc_time_base",
            "-1",
            "-c:v",
            "wrapped_avframe",
        ]);
        cmd.args(["-flush_packets", "1", "-f", "framecrc", "pipe:0"]);
        // Output 2: the pixels. `setpts=N` keeps their (unused) timestamps strictly increasing,
        // which the rawvideo muxer insists on.
        cmd.args([
            "-map",
            &map,
            "-fps_mode",
            "passthrough",
            "-enc_time_base",
            "-1",
            "-vf",
            filter,
        ]);
        cmd.args([
            "-c:v",
            "rawvideo",
            "-flush_packets",
            "1",
            "-f",
            "rawvideo",
            "pipe:1",
        ]);
        cmd.stdin(Stdio::from(OwnedFd::from(listing_writer)));
        let (process, frames) = Process::spawn(path, cmd)?;

        let mut video = FfmpegVideo {
            path: path.into(),
            info: VideoInfo {
                width: 0,
                height: 0,
                fps,
                format,
                description: String::new(),
            },
            process,
            frames,
            listing: BufReader::new(listing_reader),
            line: String::new(),
            time_base: (1, 1),
            frame_bytes: 0,
            pending_pts: None,
            next_index: 0,
            finished: false,
        };
        let mut header = ListingHeader::default();
        video.pending_pts = video.read_listing(Some(&mut header))?;
        let (width, height) = header
            .size
            .unwrap_or((stream.width.unwrap_or(0), stream.height.unwrap_or(0)));
        if let Some(tb) = header.time_base.filter(|&(n, d)| n > 0 && d > 0) {
            video.time_base = tb;
        } else if video.pending_pts.is_some() {
            return Err(corrupt(
                path,
                "ffmpeg's frame listing has no valid time base",
            ));
        }
        if video.pending_pts.is_none() {
            // No frames at all: fail now if ffmpeg failed, else an empty stream.
            video.finished = true;
            video
                .process
                .finish()
                .map_err(|reason| corrupt(path, reason))?;
        }
        video.frame_bytes = width as usize * height as usize * format.bytes_per_pixel();
        let codec = stream.codec_name.as_deref().unwrap_or("unknown codec");
        video.info.width = width;
        video.info.height = height;
        video.info.description = format!(
            "ffmpeg {codec} {width}x{height} {} fps -> 12 fps grid by timestamp",
            fmt_fps(fps)
        );
        Ok(video)
    }

    /// The next timestamp from the listing (`None` at its end), passing header lines to `header`.
    fn read_listing(
        &mut self,
        mut header: Option<&mut ListingHeader>,
    ) -> Result<Option<i64>, SourceError> {
        loop {
            self.line.clear();
            let n = self
                .listing
                .read_line(&mut self.line)
                .map_err(|e| SourceError::Io {
                    path: self.path.clone(),
                    source: e,
                })?;
            if n == 0 {
                return Ok(None);
            }
            let line = self.line.trim();
            if line.is_empty() {
                continue;
            }
            if line.starts_with('#') {
                if let Some(h) = header.as_deref_mut() {
                    h.parse(line);
                }
                continue;
            }
            return match listing_pts(line) {
                Some(pts) => Ok(Some(pts)),
                None => {
                    let reason = format!("unexpected line in ffmpeg's frame listing: {line:?}");
                    self.finished = true;
                    let _ = self.process.abort();
                    Err(corrupt(&self.path, reason))
                }
            };
        }
    }

    /// Ends the stream: checks that no pixels are left over and that ffmpeg succeeded.
    fn end(&mut self) -> Result<Option<VideoFrame>, SourceError> {
        self.finished = true;
        let mut probe = [0u8; 1];
        let extra = read_full(&mut self.frames, &mut probe).map_err(|e| SourceError::Io {
            path: self.path.clone(),
            source: e,
        })?;
        if extra > 0 {
            let said = self
                .process
                .abort()
                .map(|s| format!(": {s}"))
                .unwrap_or_default();
            return Err(corrupt(
                &self.path,
                format!(
                    "ffmpeg sent pixels for more than the {} listed frames{said}",
                    self.next_index
                ),
            ));
        }
        let frames = self.next_index;
        self.process
            .finish()
            .map_err(|reason| corrupt(&self.path, format!("after {frames} frames: {reason}")))?;
        Ok(None)
    }
}

impl VideoSource for FfmpegVideo {
    fn info(&self) -> &VideoInfo {
        &self.info
    }

    /// The next decoded frame with its own timestamp, `Ok(None)` at the end. A frame cut short,
    /// a failed ffmpeg or errors it reported give `Corrupt` (after the frames decoded before);
    /// after an error the stream ends.
    fn next_frame(&mut self) -> Result<Option<VideoFrame>, SourceError> {
        if self.finished {
            return Ok(None);
        }
        let pts = match self.pending_pts.take() {
            Some(pts) => pts,
            None => match self.read_listing(None)? {
                Some(pts) => pts,
                None => return self.end(),
            },
        };
        let index = self.next_index;
        let mut data = vec![0u8; self.frame_bytes];
        let got = read_full(&mut self.frames, &mut data).map_err(|e| SourceError::Io {
            path: self.path.clone(),
            source: e,
        })?;
        if got < data.len() {
            self.finished = true;
            let said = match self.process.finish() {
                Err(reason) => format!("; {reason}"),
                Ok(()) => String::new(),
            };
            return Err(corrupt(
                &self.path,
                format!(
                    "frame {index} is cut short: ffmpeg sent {got} of {} bytes{said}",
                    data.len()
                ),
            ));
        }
        self.next_index += 1;
        let image = Image::new(self.info.width, self.info.height, self.info.format, data);
        Ok(Some(VideoFrame {
            pts_ns: ticks_to_ns(pts, self.time_base.0, self.time_base.1),
            image,
        }))
    }
}

/// Audio decoded by ffmpeg: the first channel of the first audio stream, at its native rate.
pub struct FfmpegAudio {
    path: PathBuf,
    info: AudioInfo,
    process: Process,
    pcm: ChildStdout,
    buf: Vec<u8>,
    samples_read: u64,
    finished: bool,
}

impl std::fmt::Debug for FfmpegAudio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FfmpegAudio")
            .field("path", &self.path)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl FfmpegAudio {
    /// Opens the first audio stream of `path` with the executables from
    /// [`FfmpegTools::from_env`]. See [`Self::open_with`].
    pub fn open(path: &Path) -> Result<FfmpegAudio, SourceError> {
        FfmpegAudio::open_with(path, &FfmpegTools::from_env())
    }

    /// Opens the first audio stream of `path` and starts ffmpeg decoding it.
    ///
    /// Errors: `FfmpegMissing` if an executable is not found; `NoTrack { what: "audio" }`;
    /// `Corrupt` if ffprobe refuses the file or reports no usable sample rate; `Io` for other
    /// failures to start a process. Decoding errors come from [`AudioSource::next_block`].
    pub fn open_with(path: &Path, tools: &FfmpegTools) -> Result<FfmpegAudio, SourceError> {
        let streams = probe(
            tools,
            path,
            "a",
            "stream=index,codec_name,sample_rate,channels",
        )?;
        let Some(stream) = streams.into_iter().next() else {
            return Err(SourceError::NoTrack {
                path: path.into(),
                what: "audio",
            });
        };
        let rate: u32 = match stream.sample_rate.as_deref().and_then(|r| r.parse().ok()) {
            Some(rate) if rate > 0 => rate,
            _ => {
                return Err(corrupt(
                    path,
                    format!(
                        "ffprobe reports no sample rate for audio stream {}",
                        stream.index
                    ),
                ));
            }
        };
        let channels = stream.channels.unwrap_or(1);
        let mut cmd = Command::new(&tools.ffmpeg);
        cmd.args(["-nostdin", "-v", "error", "-i"])
            .arg(file_url(path));
        cmd.args([
            "-map",
            &format!("0:{}", stream.index),
            "-af",
            "pan=mono|c0=c0",
            "-ar",
            &rate.to_string(),
        ]);
        cmd.args(["-c:a", "pcm_f32le", "-f", "f32le", "pipe:1"]);
        cmd.stdin(Stdio::null());
        let (process, pcm) = Process::spawn(path, cmd)?;
        let codec = stream.codec_name.as_deref().unwrap_or("unknown codec");
        let info = AudioInfo {
            rate,
            channels,
            description: format!("ffmpeg {codec} {rate} Hz {channels} ch (first channel used)"),
        };
        Ok(FfmpegAudio {
            path: path.into(),
            info,
            process,
            pcm,
            buf: vec![0; BLOCK_SAMPLES * 4],
            samples_read: 0,
            finished: false,
        })
    }
}

impl AudioSource for FfmpegAudio {
    fn info(&self) -> &AudioInfo {
        &self.info
    }

    /// The next block of up to [`BLOCK_SAMPLES`] samples, `Ok(None)` at the end. A failed ffmpeg
    /// or errors it reported give `Corrupt` after the samples decoded before; after an error the
    /// stream ends.
    fn next_block(&mut self) -> Result<Option<AudioBlock>, SourceError> {
        if self.finished {
            return Ok(None);
        }
        let got = read_full(&mut self.pcm, &mut self.buf).map_err(|e| SourceError::Io {
            path: self.path.clone(),
            source: e,
        })?;
        if got == 0 {
            self.finished = true;
            let samples = self.samples_read;
            self.process.finish().map_err(|reason| {
                corrupt(&self.path, format!("after {samples} samples: {reason}"))
            })?;
            return Ok(None);
        }
        if got % 4 != 0 {
            self.finished = true;
            let said = self
                .process
                .finish()
                .err()
                .map(|r| format!("; {r}"))
                .unwrap_or_default();
            return Err(corrupt(
                &self.path,
                format!("ffmpeg's audio output ends inside a sample{said}"),
            ));
        }
        let samples: Vec<f32> = self.buf[..got]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let pts_ns = (self.samples_read as i128 * NS_PER_S as i128 / self.info.rate as i128) as i64;
        self.samples_read += samples.len() as u64;
        Ok(Some(AudioBlock {
            pts_ns,
            rate: self.info.rate,
            samples,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn listing_lines_parse() {
        assert_eq!(
            listing_pts("0,          0,          0,     1001,      472, 0xe840174c"),
            Some(0)
        );
        assert_eq!(
            listing_pts("0,       9009,       9010,     1001,      472, 0x6f7c1738, S=1, 8, 0x1"),
            Some(9010)
        );
        assert_eq!(listing_pts("[h264 @ 0x1] error"), None);
        let mut h = ListingHeader::default();
        h.parse("#tb 0: 1001/30000");
        h.parse("#dimensions 0: 48x64");
        assert_eq!((h.time_base, h.size), (Some((1001, 30000)), Some((48, 64))));
    }

    #[test]
    fn rates_and_names() {
        assert_eq!(
            parse_rate(Some("30000/1001")).map(fmt_fps).as_deref(),
            Some("29.97")
        );
        assert_eq!(parse_rate(Some("0/0")), None);
        assert_eq!(fmt_fps(30.0), "30");
        assert_eq!(fmt_fps(12.5), "12.5");
        assert_eq!(file_url(Path::new("-x:y.mp4")), OsStr::new("file:-x:y.mp4"));
    }

    #[test]
    fn missing_executables_map_to_ffmpeg_missing() {
        let tools = FfmpegTools {
            ffmpeg: "/nonexistent/ffmpeg".into(),
            ffprobe: "/nonexistent/ffprobe".into(),
        };
        let path = Path::new("whatever.mp4");
        assert!(matches!(
            FfmpegVideo::open_with(path, PixelFormat::Gray8, &tools),
            Err(SourceError::FfmpegMissing { .. })
        ));
        assert!(matches!(
            FfmpegAudio::open_with(path, &tools),
            Err(SourceError::FfmpegMissing { .. })
        ));
    }
}
