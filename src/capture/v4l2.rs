//! V4L2 camera I/O through the `v4l` crate: a thin layer that fills the format list from the
//! ioctls (`VIDIOC_ENUM_FMT`, `ENUM_FRAMESIZES`, `ENUM_FRAMEINTERVALS`), lets
//! [`negotiate`](super::formats::negotiate) choose, sets it (`S_FMT`, `S_PARM`), and streams
//! mmap buffers with the stream timeout. Frames are stamped from the driver's timestamp when it
//! is on CLOCK_MONOTONIC (`V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC`, what UVC and most drivers give),
//! else on arrival; then decoded by [`super::decode`].
//!
//! Not tested on a device (none exists where this was written): the negotiation and decoding
//! it relies on are tested against real cameras' format lists and frames (tests/camera.rs).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use v4l::buffer::{Flags, Type};
use v4l::frameinterval::FrameIntervalEnum;
use v4l::framesize::FrameSizeEnum;
use v4l::io::mmap::Stream;
use v4l::io::traits::CaptureStream;
use v4l::video::Capture;

use super::decode::{decode_mjpeg, decode_yuyv};
use super::formats::{
    CameraFormat, FourCc, FpsRange, Fraction, FrameSize, Request, SizeRange, negotiate,
};
use super::video::LiveVideo;
use crate::config::VideoConfig;
use crate::health::Health;
use crate::media::{PixelFormat, VideoFrame};
use crate::sources::SourceError;

fn io_err(path: &Path, source: io::Error) -> SourceError {
    if source.kind() == io::ErrorKind::NotFound {
        SourceError::NotFound { path: path.into() }
    } else {
        SourceError::Io {
            path: path.into(),
            source,
        }
    }
}

/// A V4L2 fraction of seconds per frame as frames per second.
fn rate(interval: v4l::Fraction) -> Option<Fraction> {
    Fraction::new(interval.denominator, interval.numerator)
}

/// The camera's formats, as [`negotiate`] takes them.
pub fn list_formats(dev: &v4l::Device) -> io::Result<Vec<CameraFormat>> {
    let mut out = Vec::new();
    for desc in dev.enum_formats()? {
        let fourcc = FourCc::from_bytes(desc.fourcc.repr);
        let sizes = dev.enum_framesizes(desc.fourcc).unwrap_or_default();
        for fs in sizes {
            let (width, height, size_range) = match fs.size {
                FrameSizeEnum::Discrete(d) => (d.width, d.height, None),
                FrameSizeEnum::Stepwise(s) => (
                    s.max_width,
                    s.max_height,
                    Some(SizeRange {
                        min: FrameSize::new(s.min_width, s.min_height),
                        max: FrameSize::new(s.max_width, s.max_height),
                        step: FrameSize::new(s.step_width, s.step_height),
                    }),
                ),
            };
            let mut fps = Vec::new();
            let mut fps_range = None;
            for fi in dev
                .enum_frameintervals(desc.fourcc, width, height)
                .unwrap_or_default()
            {
                match fi.interval {
                    FrameIntervalEnum::Discrete(f) => fps.extend(rate(f)),
                    // The shortest interval is the highest rate.
                    FrameIntervalEnum::Stepwise(s) => {
                        if let (Some(min), Some(max)) = (rate(s.max), rate(s.min)) {
                            fps_range = Some(FpsRange { min, max });
                        }
                    }
                }
            }
            out.push(CameraFormat {
                fourcc,
                description: desc.description.clone(),
                width,
                height,
                fps,
                fps_range,
                size_range,
            });
        }
    }
    Ok(out)
}

/// An open, streaming V4L2 camera.
pub struct V4l2Camera {
    stream: Option<Stream<'static>>,
    path: PathBuf,
    width: u32,
    height: u32,
    fourcc: FourCc,
    format: PixelFormat,
    health: Arc<Health>,
    /// CLOCK_MONOTONIC (ns) at run time 0.
    mono_origin_ns: i64,
    description: String,
    decode_errors: u64,
}

fn monotonic_ns() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as i64 * 1_000_000_000 + ts.tv_nsec as i64
}

impl V4l2Camera {
    /// Opens `path`, negotiates MJPEG or YUYV per `cfg` (logging the choice; an impossible
    /// request fails with the formats the camera offers) and starts streaming with
    /// `cfg.timeout_s` as the stream timeout.
    pub fn open(
        path: &Path,
        cfg: &VideoConfig,
        format: PixelFormat,
        health: &Arc<Health>,
    ) -> Result<V4l2Camera, SourceError> {
        let dev = v4l::Device::with_path(path).map_err(|e| io_err(path, e))?;
        let available = list_formats(&dev).map_err(|e| io_err(path, e))?;
        let mut req = Request::new(cfg.width, cfg.height, Fraction::from_int(cfg.fps));
        req.prefer = cfg
            .formats
            .iter()
            .filter_map(|f| FourCc::parse(f))
            .collect();
        let choice = negotiate(&available, &req).map_err(|e| SourceError::Unsupported {
            path: path.into(),
            reason: e.to_string(),
        })?;
        log::info!("{}: {choice}", path.display());
        let fourcc = v4l::FourCC::new(&choice.fourcc.to_bytes());
        let set = dev
            .set_format(&v4l::Format::new(choice.width, choice.height, fourcc))
            .map_err(|e| io_err(path, e))?;
        if set.fourcc != fourcc || set.width != choice.width || set.height != choice.height {
            return Err(SourceError::Unsupported {
                path: path.into(),
                reason: format!(
                    "asked for {} {}x{}, the driver set {} {}x{}",
                    choice.fourcc,
                    choice.width,
                    choice.height,
                    FourCc::from_bytes(set.fourcc.repr),
                    set.width,
                    set.height
                ),
            });
        }
        // The rate is a request: a driver may keep its own (logged by the grid's timestamps).
        let interval = v4l::Fraction::new(choice.fps.den(), choice.fps.num());
        if let Err(e) = dev.set_params(&v4l::video::capture::Parameters::new(interval)) {
            log::warn!("{}: cannot set {} fps: {e}", path.display(), choice.fps);
        }
        let mut stream =
            Stream::with_buffers(&dev, Type::VideoCapture, 4).map_err(|e| io_err(path, e))?;
        stream.set_timeout(Duration::from_secs_f64(cfg.timeout_s));
        Ok(V4l2Camera {
            stream: Some(stream),
            path: path.into(),
            width: choice.width,
            height: choice.height,
            fourcc: choice.fourcc,
            format,
            health: Arc::clone(health),
            mono_origin_ns: monotonic_ns() - health.now_ns() as i64,
            description: format!("{} {}", path.display(), choice.summary),
            decode_errors: 0,
        })
    }
}

impl LiveVideo for V4l2Camera {
    fn next_frame(&mut self) -> Result<Option<VideoFrame>, SourceError> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(None);
        };
        loop {
            let (buf, meta) = stream.next().map_err(|e| SourceError::Io {
                path: self.path.clone(),
                source: e,
            })?;
            let arrival = self.health.now_ns() as i64;
            let used = (meta.bytesused as usize).min(buf.len());
            let bytes = &buf[..used];
            let decoded = match self.fourcc {
                FourCc::Yuyv => {
                    let need = self.width as usize * self.height as usize * 2;
                    decode_yuyv(
                        &bytes[..need.min(bytes.len())],
                        self.width,
                        self.height,
                        self.format,
                    )
                }
                _ => decode_mjpeg(bytes, self.width, self.height, self.format),
            };
            let image = match decoded {
                Ok(i) => i,
                Err(e) => {
                    // A damaged frame (USB bandwidth, a glitch): counted, skipped.
                    self.health
                        .video
                        .errors
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if self.decode_errors.is_power_of_two() || self.decode_errors == 0 {
                        log::warn!(
                            "{}: frame {} skipped: {e} ({} so far)",
                            self.path.display(),
                            meta.sequence,
                            self.decode_errors + 1
                        );
                    }
                    self.decode_errors += 1;
                    continue;
                }
            };
            let driver_ns =
                meta.timestamp.sec as i64 * 1_000_000_000 + meta.timestamp.usec as i64 * 1_000;
            let monotonic = meta.flags & Flags::TIMESTAMP_MASK == Flags::TIMESTAMP_MONOTONIC;
            let pts = driver_ns - self.mono_origin_ns;
            // The driver's capture time when it is monotonic and plausible, else arrival.
            let pts_ns = if monotonic && driver_ns > 0 && (arrival - pts).abs() < 1_000_000_000 {
                pts
            } else {
                arrival
            };
            return Ok(Some(VideoFrame { pts_ns, image }));
        }
    }

    fn description(&self) -> String {
        self.description.clone()
    }

    fn reopenable(&self) -> bool {
        true
    }
}

impl Drop for V4l2Camera {
    fn drop(&mut self) {
        // v4l's Stream panics in drop when STREAMOFF fails for a reason other than ENODEV:
        // a camera that misbehaves must not take the video thread (and its reconnects) down.
        if let Some(s) = self.stream.take() {
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(s))).is_err() {
                log::warn!("{}: stopping the stream failed", self.path.display());
            }
        }
    }
}
