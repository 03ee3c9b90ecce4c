//! Opening a live video source: Y4M on stdin (any pipeline: GStreamer, ffmpeg), a file or the
//! built-in scene played at its own pace, or a V4L2 camera. Frames come out stamped on the run's
//! monotonic clock ([`Health::now_ns`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::health::Health;
use crate::media::{PixelFormat, VideoFrame};
use crate::sources::{self, SourceError, VideoSource};

/// Where the frames come from (`[video] device`).
#[derive(Debug, Clone, PartialEq)]
pub enum CamSpec {
    /// `-`: Y4M on standard input, stamped when each frame has been read.
    Stdin,
    /// A V4L2 device node (`/dev/videoN`).
    Device(PathBuf),
    /// A media file played at its own pace, looped.
    File(PathBuf),
    /// The built-in synthetic scene, looped.
    Scene,
}

impl CamSpec {
    /// Parses `[video] device`.
    pub fn parse(s: &str) -> CamSpec {
        match s {
            "-" => CamSpec::Stdin,
            "scene" => CamSpec::Scene,
            _ if s.starts_with("/dev/") => CamSpec::Device(PathBuf::from(s)),
            _ => CamSpec::File(PathBuf::from(s)),
        }
    }
}

/// A live video source: frames stamped on the run's clock.
pub trait LiveVideo: Send {
    /// The next frame; `Ok(None)` when the source ended.
    fn next_frame(&mut self) -> Result<Option<VideoFrame>, SourceError>;
    /// One line for the log.
    fn description(&self) -> String;
    /// Whether opening it again after it ended or failed can help (stdin cannot be reopened).
    fn reopenable(&self) -> bool;
}

/// Opens `spec`, delivering frames in `format`. A file or the scene plays its media time 0 at
/// run time `start_ns`, or now when `None` (see [`crate::capture::mic::open`]).
pub fn open(
    spec: &CamSpec,
    cfg: &crate::config::VideoConfig,
    format: PixelFormat,
    health: &Arc<Health>,
    start_ns: Option<i64>,
) -> Result<Box<dyn LiveVideo>, SourceError> {
    match spec {
        CamSpec::Stdin => Ok(Box::new(Arrival {
            src: sources::open_video(std::path::Path::new("-"), format)?,
            health: Arc::clone(health),
        })),
        CamSpec::File(path) => {
            let path = path.clone();
            Paced::open(
                Box::new(move || sources::open_video(&path, format)),
                health,
                start_ns,
            )
        }
        CamSpec::Scene => Paced::open(
            Box::new(move || {
                Ok(
                    Box::new(crate::sources::synthetic::Scene::default().video(format))
                        as Box<dyn VideoSource>,
                )
            }),
            health,
            start_ns,
        ),
        CamSpec::Device(path) => Ok(Box::new(super::v4l2::V4l2Camera::open(
            path, cfg, format, health,
        )?)),
    }
}

/// A stream read as it arrives (a pipe): each frame is stamped when it has been read.
struct Arrival {
    src: Box<dyn VideoSource>,
    health: Arc<Health>,
}

impl LiveVideo for Arrival {
    fn next_frame(&mut self) -> Result<Option<VideoFrame>, SourceError> {
        Ok(self.src.next_frame()?.map(|mut f| {
            f.pts_ns = self.health.now_ns() as i64;
            f
        }))
    }
    fn description(&self) -> String {
        format!(
            "{} (stdin, stamped on arrival)",
            self.src.info().description
        )
    }
    fn reopenable(&self) -> bool {
        false
    }
}

type Reopen = Box<dyn FnMut() -> Result<Box<dyn VideoSource>, SourceError> + Send>;

/// A recorded source played at its own pace and looped, stamped with the time it is due.
struct Paced {
    reopen: Reopen,
    src: Box<dyn VideoSource>,
    health: Arc<Health>,
    /// Run time (ns) of media time 0 of the current loop.
    base: Option<i64>,
    last_due: i64,
    interval: i64,
}

impl Paced {
    fn open(
        mut reopen: Reopen,
        health: &Arc<Health>,
        start_ns: Option<i64>,
    ) -> Result<Box<dyn LiveVideo>, SourceError> {
        let src = reopen()?;
        let interval = (1e9 / src.info().fps.max(1.0)) as i64;
        Ok(Box::new(Paced {
            reopen,
            src,
            health: Arc::clone(health),
            base: start_ns,
            last_due: 0,
            interval,
        }))
    }
}

impl LiveVideo for Paced {
    fn next_frame(&mut self) -> Result<Option<VideoFrame>, SourceError> {
        let mut frame = match self.src.next_frame()? {
            Some(f) => f,
            None => {
                self.src = (self.reopen)()?;
                self.base = Some(self.last_due + self.interval);
                match self.src.next_frame()? {
                    Some(f) => {
                        self.base = Some(self.last_due + self.interval - f.pts_ns);
                        f
                    }
                    None => return Ok(None),
                }
            }
        };
        let base = *self
            .base
            .get_or_insert_with(|| self.health.now_ns() as i64 - frame.pts_ns);
        let due = base + frame.pts_ns;
        let now = self.health.now_ns() as i64;
        if due > now {
            std::thread::sleep(Duration::from_nanos((due - now) as u64));
        }
        self.last_due = due;
        frame.pts_ns = due;
        Ok(Some(frame))
    }
    fn description(&self) -> String {
        format!(
            "{} (paced in real time, looped)",
            self.src.info().description
        )
    }
    fn reopenable(&self) -> bool {
        true
    }
}
