//! `impactd run`: the live pipeline. The same [`Engine`], [`GridResampler`] and sinks as replay;
//! only the clock (CLOCK_MONOTONIC, from [`Health::now_ns`]) and the sources differ.
//!
//! Threads:
//! - **video**: opens the camera or pipe, stamps frames, and hands them over a bounded queue
//!   (4 frames) with a drop-oldest policy: when processing falls behind the oldest frame is
//!   dropped and counted (`Health.video.dropped`). On an error, a stall past `video.timeout_s`
//!   (cameras) or the end of a file it reconnects with exponential backoff and jitter.
//! - **audio** (the pump): opens the microphone ([`crate::capture::mic`]); every 10 ms drains
//!   its capture ring, dates the samples, aligns them on the run's clock
//!   ([`crate::capture::audio::Aligner`]) and sends blocks to processing. While the microphone
//!   is away it sends silence for the elapsed time, so video keeps being analysed; it reopens
//!   the device with backoff and jitter.
//! - **processing** (the caller's): puts frames on the 12-fps grid, runs the engine, writes
//!   events. While the camera is away it repeats the last picture on the grid (a still picture
//!   carries no motion), so the audio keeps being analysed; frames that arrive later than what
//!   was filled are dropped by the grid (counted).
//!
//! On a stop request (SIGTERM/SIGINT in `main`) processing drains what is queued, finishes the
//! engine (the last window, the pending frames) and flushes the sinks.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, SystemTime};

use crossbeam_channel::{Receiver, Sender, bounded, never, select};

use crate::capture::audio::{Aligner, Resampler};
use crate::capture::mic::{self, MicSpec};
use crate::capture::video::{self as camera, CamSpec};
use crate::config::{AudioConfig, ServiceConfig, VideoConfig};
use crate::detector::DetectorConfig;
use crate::engine::{Engine, EngineConfig, EngineError, Stats};
use crate::envelope::EnvelopeMode;
use crate::events::Sink;
use crate::health::Health;
use crate::media::{Image, PixelFormat, VideoFrame, grid_time_ns};
use crate::model::{BackendKind, ModelError};
use crate::preprocess::source_format;
use crate::sources::grid::{GridFrame, GridResampler};

/// Camera frames queued between capture and processing (drop oldest beyond).
pub const VIDEO_QUEUE: usize = 4;
/// 10-ms audio blocks queued between the pump and processing (~2.5 s).
pub const AUDIO_QUEUE: usize = 256;
/// The camera counts as away once the grid is this far behind the clock; the grid is then
/// filled with the last picture.
pub const VIDEO_FILL_LAG_NS: i64 = 500_000_000;
/// Before the camera's first frame the lag is longer: a slow camera start (or model load on a
/// small board) should not put grey frames before the first picture.
pub const VIDEO_FIRST_FILL_LAG_NS: i64 = 3_000_000_000;
/// The microphone counts as away once no samples came for this long; silence is sent for the
/// elapsed time.
pub const AUDIO_FILL_LAG_NS: i64 = 500_000_000;

/// Everything `impactd run` needs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub model: PathBuf,
    pub backend: BackendKind,
    /// Frames between windows; None: the model's default.
    pub hop: Option<usize>,
    /// None: the model's own mode.
    pub envelope_mode: Option<EnvelopeMode>,
    pub detector: DetectorConfig,
    pub video: VideoConfig,
    pub audio: AudioConfig,
    pub service: ServiceConfig,
}

/// Live failures that end a run. Source faults do not: sources reconnect.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("cannot start the {0} thread: {1}")]
    Thread(&'static str, std::io::Error),
}

/// Lifecycle notifications for the service manager ([`crate::service`]).
pub trait Hooks {
    /// The model is loaded and each source has been opened once (or failed once and is being
    /// retried): the daemon is up.
    fn ready(&mut self) {}
    /// A stop was requested; in-flight work is being drained.
    fn stopping(&mut self) {}
}

/// No notifications.
pub struct NoHooks;
impl Hooks for NoHooks {}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub stats: Stats,
    /// Grid frames filled with the last picture while the camera was away.
    pub filled_frames: u64,
    /// Camera frames the grid dropped (late after a fill, or out of order).
    pub late_frames: u64,
}

/// Exponential backoff with jitter, capped.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
    seed: u64,
}

impl Backoff {
    /// Starts at `min`, doubles to `max`.
    pub fn new(min: Duration, max: Duration) -> Backoff {
        let seed = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1;
        Backoff {
            min,
            max,
            next: min,
            seed,
        }
    }

    /// The next delay: the current step plus up to 25 % jitter; the step then doubles.
    pub fn next_delay(&mut self) -> Duration {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let jitter = (self.seed % 1000) as f64 / 1000.0 * 0.25;
        let d = self.next.mul_f64(1.0 + jitter);
        self.next = (self.next * 2).min(self.max);
        d
    }

    /// A success: start again from `min`.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

/// Sleeps up to `d`, in short steps, returning early on stop; `tick` runs every step.
fn sleep_checking(d: Duration, stop: &AtomicBool, mut tick: impl FnMut()) {
    let step = Duration::from_millis(10);
    let mut left = d;
    while !left.is_zero() && !stop.load(Ordering::Relaxed) {
        let s = left.min(step);
        thread::sleep(s);
        left -= s;
        tick();
    }
}

/// Runs the live pipeline until `stop` is set, writing events to `sink`.
pub fn run(
    opts: &RunOptions,
    health: Arc<Health>,
    stop: Arc<AtomicBool>,
    hooks: &mut dyn Hooks,
    sink: &mut dyn Sink,
) -> Result<RunReport, LiveError> {
    let (predictor, spec) = crate::replay::load_model(&opts.model, opts.backend)?;
    let mode = opts
        .envelope_mode
        .unwrap_or(spec.sidecar.model.envelope_mode);
    log::info!("model: {}", spec.summary());
    let format = source_format(spec.sidecar.input.colour);

    let (vtx, vrx) = bounded::<VideoFrame>(VIDEO_QUEUE);
    let (atx, arx) = bounded::<Vec<f32>>(AUDIO_QUEUE);
    let video_tried = Arc::new(AtomicBool::new(false));
    let audio_tried = Arc::new(AtomicBool::new(false));
    {
        let (spec, h, stop, tried, drop_rx) = (
            CamSpec::parse(&opts.video.device),
            Arc::clone(&health),
            Arc::clone(&stop),
            Arc::clone(&video_tried),
            vrx.clone(),
        );
        let (cfg, svc) = (opts.video.clone(), opts.service.clone());
        thread::Builder::new()
            .name("video".into())
            .spawn(move || video_thread(spec, format, cfg, svc, h, vtx, drop_rx, stop, tried))
            .map_err(|e| LiveError::Thread("video", e))?;
    }
    let audio_handle = {
        let (spec, h, stop, tried) = (
            MicSpec::parse(&opts.audio.device),
            Arc::clone(&health),
            Arc::clone(&stop),
            Arc::clone(&audio_tried),
        );
        let (cfg, svc) = (opts.audio.clone(), opts.service.clone());
        thread::Builder::new()
            .name("audio".into())
            .spawn(move || audio_thread(spec, cfg, svc, h, atx, stop, tried))
            .map_err(|e| LiveError::Thread("audio", e))?
    };
    let both_tried = || video_tried.load(Ordering::Relaxed) && audio_tried.load(Ordering::Relaxed);
    while !both_tried() && !stop.load(Ordering::Relaxed) {
        thread::sleep(Duration::from_millis(5));
    }
    hooks.ready();

    let cfg = EngineConfig {
        hop: opts.hop,
        envelope_mode: mode,
        detector: opts.detector.clone(),
        // Run time 0 is when `health` was created.
        wall_origin: SystemTime::now() - health.uptime(),
    };
    let mut p = Processing {
        engine: Engine::new(cfg, predictor),
        grid: GridResampler::new(0),
        out: Vec::new(),
        last: None,
        blank: Image::filled(opts.video.width, opts.video.height, format, 128),
        rate: opts.audio.rate,
        health: Arc::clone(&health),
        filled: 0,
        seen_video: false,
    };
    let mut vrx = Some(vrx);
    let mut arx = Some(arx);
    while !stop.load(Ordering::Relaxed) {
        let vr = vrx.clone().unwrap_or_else(never);
        let ar = arx.clone().unwrap_or_else(never);
        select! {
            recv(vr) -> f => match f {
                Ok(f) => p.video(f, sink)?,
                Err(_) => vrx = None,
            },
            recv(ar) -> b => match b {
                Ok(b) => p.audio(&b, sink)?,
                Err(_) => arx = None,
            },
            default(Duration::from_millis(20)) => {}
        }
        if vrx.as_ref().is_none_or(|r| r.is_empty()) {
            p.fill(sink)?;
        }
    }
    hooks.stopping();
    log::info!("stopping: draining what is queued");
    // The pump hands over what its ring still holds before it ends (within ~10 ms).
    let t0 = std::time::Instant::now();
    while !audio_handle.is_finished() && t0.elapsed() < Duration::from_millis(300) {
        if let Some(r) = &arx {
            while let Ok(b) = r.try_recv() {
                p.audio(&b, sink)?;
            }
        }
        thread::sleep(Duration::from_millis(2));
    }
    // Drain what is already queued, then finish the stream.
    if let Some(r) = &arx {
        while let Ok(b) = r.try_recv() {
            p.audio(&b, sink)?;
        }
    }
    if let Some(r) = &vrx {
        while let Ok(f) = r.try_recv() {
            p.video(f, sink)?;
        }
    }
    p.grid.finish(&mut p.out);
    p.flush_grid(sink)?;
    p.engine.finish(sink)?;
    p.publish();
    Ok(RunReport {
        stats: p.engine.stats().clone(),
        filled_frames: p.filled,
        late_frames: p.grid.dropped_non_monotonic(),
    })
}

struct Processing {
    engine: Engine,
    grid: GridResampler,
    out: Vec<GridFrame>,
    last: Option<Arc<Image>>,
    blank: Image,
    rate: u32,
    health: Arc<Health>,
    filled: u64,
    /// A camera frame has arrived since the start.
    seen_video: bool,
}

impl Processing {
    fn video(&mut self, f: VideoFrame, sink: &mut dyn Sink) -> Result<(), EngineError> {
        self.seen_video = true;
        self.grid.push(f, &mut self.out);
        self.flush_grid(sink)
    }

    fn audio(&mut self, b: &[f32], sink: &mut dyn Sink) -> Result<(), EngineError> {
        sink.audio(self.rate, b).map_err(EngineError::Sink)?;
        self.engine.push_audio(self.rate, b, sink)?;
        self.publish();
        Ok(())
    }

    fn flush_grid(&mut self, sink: &mut dyn Sink) -> Result<(), EngineError> {
        for g in std::mem::take(&mut self.out) {
            if g.index != self.engine.next_frame_index() {
                continue; // cannot happen: the grid emits consecutive indices
            }
            sink.image(g.index, &g.image).map_err(EngineError::Sink)?;
            let before = (self.engine.stats().windows, self.engine.stats().time_model);
            self.engine.push_frame(g.index, &g.image, sink)?;
            self.health.observe_windows(before, self.engine.stats());
            self.health.frame_processed();
            self.last = Some(g.image);
        }
        self.publish();
        Ok(())
    }

    /// The camera is away: repeat the last picture on the grid up to the clock (less the lag).
    fn fill(&mut self, sink: &mut dyn Sink) -> Result<(), EngineError> {
        let now = self.health.now_ns() as i64;
        loop {
            let k = self.grid.next_index();
            let t = grid_time_ns(k);
            let lag = if self.seen_video {
                VIDEO_FILL_LAG_NS
            } else {
                VIDEO_FIRST_FILL_LAG_NS
            };
            if t + lag > now {
                return Ok(());
            }
            if self.filled == 0 || k == 0 {
                log::warn!(
                    "no video for grid frame {k} ({:.2} s): repeating the last picture until frames come again",
                    t as f64 / 1e9
                );
            }
            let image = match &self.last {
                Some(i) => (**i).clone(),
                None => self.blank.clone(),
            };
            self.filled += 1;
            self.grid
                .push(VideoFrame { pts_ns: t, image }, &mut self.out);
            self.flush_grid(sink)?;
        }
    }

    /// Engine counters into the shared health record.
    fn publish(&self) {
        self.health.set_engine_counters(self.engine.stats());
    }
}

/// Sends `item`, dropping the oldest queued one (counted) when the queue is full.
fn send_drop_oldest<T>(tx: &Sender<T>, rx: &Receiver<T>, mut item: T, health: &Health) -> bool {
    loop {
        match tx.try_send(item) {
            Ok(()) => return true,
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => return false,
            Err(crossbeam_channel::TrySendError::Full(back)) => {
                item = back;
                if rx.try_recv().is_ok() {
                    health.video.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn video_thread(
    spec: CamSpec,
    format: PixelFormat,
    cfg: VideoConfig,
    svc: ServiceConfig,
    health: Arc<Health>,
    tx: Sender<VideoFrame>,
    drop_rx: Receiver<VideoFrame>,
    stop: Arc<AtomicBool>,
    tried: Arc<AtomicBool>,
) {
    let mut backoff = Backoff::new(
        Duration::from_secs_f64(svc.backoff_min_s),
        Duration::from_secs_f64(svc.backoff_max_s),
    );
    let mut last_error = String::new();
    let mut attempt = 0u32;
    loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let start = (attempt == 0).then_some(0);
        attempt += 1;
        match camera::open(&spec, &cfg, format, &health, start) {
            Ok(mut src) => {
                tried.store(true, Ordering::Relaxed);
                log::info!("video: {}", src.description());
                health.video.set_online(true);
                last_error.clear();
                let mut delivered_any = false;
                loop {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    match src.next_frame() {
                        Ok(Some(f)) => {
                            if !delivered_any {
                                delivered_any = true;
                                backoff.reset();
                            }
                            health.video.delivered(1, health.now_ns());
                            if !send_drop_oldest(&tx, &drop_rx, f, &health) {
                                return;
                            }
                        }
                        Ok(None) => {
                            log::warn!("video: the stream ended");
                            break;
                        }
                        Err(e) => {
                            health.video.errors.fetch_add(1, Ordering::Relaxed);
                            log::error!("video: {e}");
                            break;
                        }
                    }
                }
                health.video.set_online(false);
                if !src.reopenable() {
                    log::error!(
                        "video: standard input cannot be reopened: video stays offline (audio goes on)"
                    );
                    return;
                }
            }
            Err(e) => {
                tried.store(true, Ordering::Relaxed);
                health.video.errors.fetch_add(1, Ordering::Relaxed);
                let msg = e.to_string();
                if msg != last_error {
                    log::error!("video: {msg}; retrying with backoff");
                    last_error = msg;
                }
            }
        }
        sleep_checking(backoff.next_delay(), &stop, || {});
        health.video.reconnects.fetch_add(1, Ordering::Relaxed);
    }
}

fn audio_thread(
    spec: MicSpec,
    cfg: AudioConfig,
    svc: ServiceConfig,
    health: Arc<Health>,
    tx: Sender<Vec<f32>>,
    stop: Arc<AtomicBool>,
    tried: Arc<AtomicBool>,
) {
    let rate = cfg.rate;
    let mut aligner = Aligner::new(rate);
    let mut backoff = Backoff::new(
        Duration::from_secs_f64(svc.backoff_min_s),
        Duration::from_secs_f64(svc.backoff_max_s),
    );
    let stall_ns = (svc.stall_s * 1e9) as i64;
    let mut last_error = String::new();
    let mut attempt = 0u32;
    let mut buf = Vec::new();
    let mut resampled = Vec::new();
    let h = Arc::clone(&health);
    let mut emit = move |x: &[f32]| {
        if tx
            .send_timeout(x.to_vec(), Duration::from_millis(200))
            .is_err()
        {
            h.audio.dropped.fetch_add(x.len() as u64, Ordering::Relaxed);
        }
    };
    loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let start = (attempt == 0).then_some(0);
        attempt += 1;
        match mic::open(&spec, rate, cfg.ring_ms, &health, start) {
            Ok(mut m) => {
                tried.store(true, Ordering::Relaxed);
                log::info!("audio: {}", m.description);
                health.audio.set_online(true);
                last_error.clear();
                aligner.restart();
                let mut resampler = (m.reader.rate() != rate).then(|| {
                    log::info!("audio: resampling {} Hz to {rate} Hz", m.reader.rate());
                    Resampler::new(m.reader.rate(), rate)
                });
                let mut last_data = health.now_ns() as i64;
                let opened_ns = last_data;
                loop {
                    if stop.load(Ordering::Relaxed) {
                        if let Some(pts) = m.reader.read(&mut buf) {
                            aligner.push(pts, &buf, &mut emit);
                        }
                        let secs = (health.now_ns() as i64 - opened_ns) as f64 / 1e9;
                        log::info!(
                            "audio: {} samples in {secs:.2} s ({:.0} Hz measured); alignment inserted {} and dropped {} samples in all",
                            m.reader.captured(),
                            m.reader.captured() as f64 / secs.max(1e-3),
                            aligner.inserted,
                            aligner.dropped
                        );
                        return;
                    }
                    thread::sleep(Duration::from_millis(10));
                    let now = health.now_ns() as i64;
                    if m.reader.failed() {
                        health.audio.errors.fetch_add(1, Ordering::Relaxed);
                        log::error!("audio: the device reported an error; reopening it");
                        break;
                    }
                    match m.reader.read(&mut buf) {
                        Some(pts) => {
                            last_data = now;
                            health.audio.delivered(buf.len() as u64, now as u64);
                            let peak = buf.iter().fold(0f32, |a, &v| a.max(v.abs()));
                            health.audio.set_level_dbfs(20.0 * peak.max(1e-10).log10());
                            let block = match &mut resampler {
                                Some(r) => {
                                    resampled.clear();
                                    r.process(&buf, &mut resampled);
                                    &resampled
                                }
                                None => &buf,
                            };
                            aligner.push(pts, block, &mut emit);
                        }
                        None => {
                            if now - last_data > stall_ns {
                                health.audio.errors.fetch_add(1, Ordering::Relaxed);
                                log::error!(
                                    "audio: no samples for {:.1} s; reopening the device",
                                    (now - last_data) as f64 / 1e9
                                );
                                break;
                            }
                            if now - last_data > AUDIO_FILL_LAG_NS {
                                aligner.fill_to(now - AUDIO_FILL_LAG_NS, &mut emit);
                            }
                        }
                    }
                    if now - last_data < AUDIO_FILL_LAG_NS {
                        backoff.reset();
                    }
                }
                health.audio.set_online(false);
            }
            Err(e) => {
                tried.store(true, Ordering::Relaxed);
                health.audio.errors.fetch_add(1, Ordering::Relaxed);
                let msg = e.to_string();
                if msg != last_error {
                    log::error!("audio: {msg}; retrying with backoff");
                    last_error = msg;
                }
            }
        }
        // While away: silence for the elapsed time, so the video keeps being analysed.
        sleep_checking(backoff.next_delay(), &stop, || {
            let now = health.now_ns() as i64;
            aligner.fill_to(now - AUDIO_FILL_LAG_NS, &mut emit);
        });
        health.audio.reconnects.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_with_bounded_jitter() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        let d: Vec<f64> = (0..8).map(|_| b.next_delay().as_secs_f64()).collect();
        for (i, want) in [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0].iter().enumerate() {
            assert!(
                d[i] >= *want && d[i] <= want * 1.25,
                "{i}: {} vs {want}",
                d[i]
            );
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(125));
    }

    #[test]
    fn a_full_queue_drops_its_oldest_item_and_counts_it() {
        let h = Health::new();
        let (tx, rx) = bounded(2);
        for i in 0..5 {
            assert!(send_drop_oldest(&tx, &rx, i, &h));
        }
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), [3, 4]);
        assert_eq!(h.video.dropped.load(Ordering::Relaxed), 3);
    }
}
