//! Replay: recorded media through the engine, as fast as it can go or paced like a live stream.
//!
//! Threads: one decodes video and puts it on the 12-fps grid, one decodes audio; each hands its
//! output to the processing thread (the caller's) over a bounded channel. Replay is lossless:
//! full channels make the decoders wait (backpressure) instead of dropping, so a replay is a
//! pure function of its inputs. The processing thread keeps the audio about half a second ahead
//! of the video, so memory stays flat however long the file.

use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, bounded};

use crate::cputime::CpuInstant;
use crate::engine::{Engine, EngineConfig, EngineError, Stats};
use crate::envelope::EnvelopeMode;
use crate::events::Sink;
use crate::health::Health;
use crate::media::{AudioBlock, GRID_FPS, PixelFormat};
use crate::model::predictor::{self, Predictor};
use crate::model::{ModelError, ModelSpec};
use crate::preprocess::source_format;
use crate::sources::grid::{GridFrame, GridResampler};
use crate::sources::synthetic::Scene;
use crate::sources::{self, AudioSource, SourceError, VideoSource};

/// What to replay.
#[derive(Debug, Clone)]
pub enum Input {
    /// A media file (video, and audio unless `audio` names another file). `-` is Y4M on stdin
    /// (then `audio` is required).
    Files {
        media: PathBuf,
        audio: Option<PathBuf>,
    },
    /// The built-in synthetic scene, played `loops` times back to back (1 normally; more for
    /// endurance runs).
    BuiltIn { loops: u32 },
    /// Media held in memory (`impactd demo`): Y4M bytes and mono samples at `rate`.
    Memory {
        name: String,
        y4m: std::sync::Arc<[u8]>,
        audio: std::sync::Arc<[f32]>,
        rate: u32,
    },
}

/// Replay failures, by where they happened.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("{0}: no video frames")]
    NoFrames(PathBuf),
    #[error("reading Y4M from stdin (`-`) needs --audio FILE for the sound")]
    StdinNeedsAudio,
    #[error("a decoding thread failed: {0}")]
    Thread(String),
}

/// Options of one replay.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    pub input: Input,
    pub model: PathBuf,
    pub backend: crate::model::BackendKind,
    /// Frames between windows; None: the model's default.
    pub hop: Option<usize>,
    /// None: the model's own mode.
    pub envelope_mode: Option<EnvelopeMode>,
    pub detector: crate::detector::DetectorConfig,
    /// Pace frames at real time.
    pub realtime: bool,
}

/// What a replay did.
#[derive(Debug, Clone)]
pub struct ReplayReport {
    pub stats: Stats,
    pub model: String,
    pub envelope_mode: EnvelopeMode,
    pub video: String,
    pub audio: String,
    /// Wall time spent inside the decoders (both threads).
    pub time_decode_video: Duration,
    pub time_decode_audio: Duration,
    pub wall: Duration,
    /// Media duration processed (s).
    pub media_seconds: f64,
}

enum Msg<T> {
    Item(T),
    Err(SourceError),
}

/// Loads a model, resolving its envelope mode against an explicit choice.
pub fn load_model(
    path: &Path,
    backend: crate::model::BackendKind,
) -> Result<(Box<dyn Predictor>, ModelSpec), ModelError> {
    let spec = ModelSpec::load(path)?;
    let backend = crate::model::backend(backend)?;
    let pred = predictor::load(path, backend.as_ref())?;
    Ok((pred, spec))
}

/// Runs one replay, writing to `sink`.
pub fn replay(opts: &ReplayOptions, sink: &mut dyn Sink) -> Result<ReplayReport, ReplayError> {
    replay_with_health(opts, sink, &Health::new())
}

/// [`replay`], filling `health` as it goes (sources online while they deliver, delivered counts,
/// audio level, frames, windows, inference latency, events by kind), for the HTTP and MQTT sinks.
pub fn replay_with_health(
    opts: &ReplayOptions,
    sink: &mut dyn Sink,
    health: &Health,
) -> Result<ReplayReport, ReplayError> {
    let (predictor, spec) = load_model(&opts.model, opts.backend)?;
    let mode = opts
        .envelope_mode
        .unwrap_or(spec.sidecar.model.envelope_mode);
    if mode != spec.sidecar.model.envelope_mode {
        log::warn!(
            "envelope mode {mode} differs from the one {} was trained on ({}): predicted and observed may not agree",
            spec.name(),
            spec.sidecar.model.envelope_mode
        );
    }
    let format = source_format(spec.sidecar.input.colour);
    let (video, audio, video_name) = open_input(&opts.input, format)?;
    let video_desc = video.info().description.clone();
    let audio_desc = audio.info().description.clone();
    log::info!("video: {video_desc}");
    log::info!("audio: {audio_desc}");
    log::info!("model: {}", spec.summary());

    let (vtx, vrx) = bounded::<Msg<GridFrame>>(16);
    let (atx, arx) = bounded::<Msg<AudioBlock>>(64);
    let vthread = thread::Builder::new()
        .name("video".into())
        .spawn(move || video_loop(video, vtx))
        .map_err(|e| ReplayError::Thread(e.to_string()))?;
    let athread = thread::Builder::new()
        .name("audio".into())
        .spawn(move || audio_loop(audio, atx))
        .map_err(|e| ReplayError::Thread(e.to_string()))?;

    let cfg = EngineConfig {
        hop: opts.hop,
        envelope_mode: mode,
        detector: opts.detector.clone(),
        wall_origin: SystemTime::now(),
    };
    let mut engine = Engine::new(cfg, predictor);
    log::debug!("a window every {} frame(s)", engine.hop());
    let started = Instant::now();
    health.video.set_online(true);
    health.audio.set_online(true);
    let result = drive(
        &mut engine,
        &vrx,
        &arx,
        sink,
        opts.realtime,
        started,
        health,
    );
    health.video.set_online(false);
    health.audio.set_online(false);
    // Unblock and join the decoders whatever happened.
    drop(vrx);
    drop(arx);
    let tv = vthread
        .join()
        .map_err(|_| ReplayError::Thread("video thread panicked".into()))?;
    let ta = athread
        .join()
        .map_err(|_| ReplayError::Thread("audio thread panicked".into()))?;
    result?;
    if engine.stats().frames == 0 {
        return Err(ReplayError::NoFrames(video_name));
    }
    Ok(ReplayReport {
        stats: engine.stats().clone(),
        model: spec.summary(),
        envelope_mode: mode,
        video: video_desc,
        audio: audio_desc,
        time_decode_video: tv,
        time_decode_audio: ta,
        wall: started.elapsed(),
        media_seconds: engine.stats().frames as f64 / GRID_FPS as f64,
    })
}

type Opened = (Box<dyn VideoSource>, Box<dyn AudioSource>, PathBuf);

fn open_input(input: &Input, format: PixelFormat) -> Result<Opened, ReplayError> {
    match input {
        Input::BuiltIn { loops } => {
            let scene = Scene::default();
            Ok((
                Box::new(scene.video_looped(format, (*loops).max(1))),
                Box::new(scene.audio_looped((*loops).max(1))),
                PathBuf::from("(built-in scene)"),
            ))
        }
        Input::Memory {
            name,
            y4m,
            audio,
            rate,
        } => Ok((
            Box::new(sources::y4m::Y4mSource::from_reader(
                name.as_str(),
                std::io::Cursor::new(y4m.clone()),
                format,
            )?),
            Box::new(sources::memory::MemoryAudio::new(
                name,
                audio.clone(),
                *rate,
            )),
            PathBuf::from(name),
        )),
        Input::Files { media, audio } => {
            if media.as_os_str() == "-" && audio.is_none() {
                return Err(ReplayError::StdinNeedsAudio);
            }
            // Open audio first: a file without sound fails fast, before video decoding starts.
            let a = sources::open_audio(audio.as_deref().unwrap_or(media))?;
            let v = sources::open_video(media, format)?;
            Ok((v, a, media.clone()))
        }
    }
}

fn video_loop(
    mut src: Box<dyn VideoSource>,
    tx: crossbeam_channel::Sender<Msg<GridFrame>>,
) -> Duration {
    let mut grid = GridResampler::new(0);
    let mut out = Vec::new();
    let mut spent = Duration::ZERO;
    loop {
        let t0 = CpuInstant::now();
        let done = match src.next_frame() {
            Ok(Some(frame)) => {
                grid.push(frame, &mut out);
                false
            }
            Ok(None) => {
                grid.finish(&mut out);
                true
            }
            Err(e) => {
                spent += t0.elapsed();
                let _ = tx.send(Msg::Err(e));
                return spent;
            }
        };
        spent += t0.elapsed();
        for f in out.drain(..) {
            if tx.send(Msg::Item(f)).is_err() {
                return spent; // the processing side is gone
            }
        }
        if done {
            return spent;
        }
    }
}

fn audio_loop(
    mut src: Box<dyn AudioSource>,
    tx: crossbeam_channel::Sender<Msg<AudioBlock>>,
) -> Duration {
    let mut spent = Duration::ZERO;
    loop {
        let t0 = CpuInstant::now();
        let next = src.next_block();
        spent += t0.elapsed();
        match next {
            Ok(Some(b)) => {
                if tx.send(Msg::Item(b)).is_err() {
                    return spent;
                }
            }
            Ok(None) => return spent,
            Err(e) => {
                let _ = tx.send(Msg::Err(e));
                return spent;
            }
        }
    }
}

/// Audio is kept this far ahead of the video (s).
const AUDIO_LEAD_S: f64 = 0.5;

fn drive(
    engine: &mut Engine,
    vrx: &Receiver<Msg<GridFrame>>,
    arx: &Receiver<Msg<AudioBlock>>,
    sink: &mut dyn Sink,
    realtime: bool,
    started: Instant,
    health: &Health,
) -> Result<(), ReplayError> {
    let mut audio_open = true;
    let mut pump_audio =
        |engine: &mut Engine, until: f64, sink: &mut dyn Sink| -> Result<(), ReplayError> {
            while audio_open && engine.audio_time() < until {
                match arx.recv() {
                    Ok(Msg::Item(b)) => {
                        health
                            .audio
                            .delivered(b.samples.len() as u64, health.now_ns());
                        health.audio.set_level_dbfs(level_dbfs(&b.samples));
                        sink.audio(b.rate, &b.samples).map_err(EngineError::Sink)?;
                        engine.push_audio(b.rate, &b.samples, sink)?;
                        stats_to_health(engine.stats(), health);
                    }
                    Ok(Msg::Err(e)) => return Err(e.into()),
                    Err(_) => {
                        audio_open = false;
                        engine.finish_audio(sink)?;
                    }
                }
            }
            Ok(())
        };
    loop {
        match vrx.recv() {
            Ok(Msg::Item(f)) => {
                let t = f.index as f64 / GRID_FPS as f64;
                if realtime {
                    let due = Duration::from_secs_f64(t);
                    if let Some(wait) = due.checked_sub(started.elapsed()) {
                        thread::sleep(wait);
                    }
                }
                pump_audio(engine, t + AUDIO_LEAD_S, sink)?;
                if f.index != engine.next_frame_index() {
                    return Err(ReplayError::Thread(format!(
                        "grid frame {} out of order",
                        f.index
                    )));
                }
                health.video.delivered(1, health.now_ns());
                sink.image(f.index, &f.image).map_err(EngineError::Sink)?;
                let before = (engine.stats().windows, engine.stats().time_model);
                engine.push_frame(f.index, &f.image, sink)?;
                health.observe_windows(before, engine.stats());
                stats_to_health(engine.stats(), health);
            }
            Ok(Msg::Err(e)) => return Err(e.into()),
            Err(_) => break,
        }
    }
    engine.finish_video(sink)?;
    pump_audio(engine, f64::INFINITY, sink)?;
    engine.finish(sink)?;
    stats_to_health(engine.stats(), health);
    Ok(())
}

/// Copies the engine's counters into `health` (the engine finishes frames in batches).
fn stats_to_health(s: &Stats, health: &Health) {
    use std::sync::atomic::Ordering::Relaxed;
    let before = health.frames_processed.load(Relaxed);
    for _ in before..s.frames {
        health.frame_processed();
    }
    health.set_engine_counters(s);
}

/// RMS level of a block in dBFS (-120 for silence).
pub fn level_dbfs(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return -120.0;
    }
    let ms = samples.iter().map(|&x| x * x).sum::<f32>() / samples.len() as f32;
    (10.0 * ms.max(1e-12).log10()).max(-120.0)
}
