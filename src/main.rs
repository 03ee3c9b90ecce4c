//! The `impactd` command line. Only this file uses anyhow; it prints the cause chain and maps
//! failures to the exit codes documented in the README.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use impactd::config::{RawConfig, default_model_path};
use impactd::envelope::EnvelopeMode;
use impactd::events::{EnvelopeCsv, Fanout, JsonLines, Sink};
use impactd::model::{BackendKind, ModelSpec};
use impactd::replay::{self, Input, ReplayError, ReplayOptions};

/// impactd: hears with its eyes. A model predicts from video the loudness the visible motion
/// should make; the microphone's loudness is compared with it. Predicted and heard together is an
/// impact; heard but not seen is an unseen_sound; seen but not heard is a silent_impact. Events
/// are JSON Lines on stdout, logs on stderr (RUST_LOG=debug for more).
#[derive(Parser)]
#[command(name = "impactd", version, about, long_about = None, after_help = "Exit codes: 0 ok, 1 runtime failure, 2 bad usage or config, 3 bad or unreadable media, 4 bad model.\nStart with `impactd replay` (no arguments): it replays a built-in scene.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Replay recorded media (or the built-in scene) through the pipeline and print events.
    #[command(
        after_help = "Examples:\n  impactd replay                                  the built-in scene (no media needed)\n  impactd replay clip.mp4 --envelopes env.csv     events on stdout, both envelopes per frame\n  impactd replay clip.y4m --audio mic.wav         video and audio from separate files\n  ffmpeg -i in.mkv -f yuv4mpegpipe - | impactd replay - --audio in.mkv\n\nEvents are JSON Lines (README, \"Events\"); logs go to stderr (RUST_LOG=debug for more)."
    )]
    Replay(ReplayArgs),
    /// Run replay over the clips of a manifest and print the quality metrics of DESIGN.md.
    Eval(EvalArgs),
    /// Check a config file: exit 0 if it is valid, else print the file, key and reason.
    CheckConfig {
        /// The TOML file (see impactd.example.toml for every key).
        config: PathBuf,
    },
    /// Measure: replay as fast as possible, report throughput, stage costs, memory and model latency.
    Bench(BenchArgs),
    /// Run live: camera (or a Y4M pipe) and microphone, events out, until SIGTERM or SIGINT.
    #[command(
        after_help = "Examples:\n  impactd run --config /etc/impactd/impactd.toml\n  gst-launch-1.0 -q nvarguscamerasrc ! nvvidconv ! video/x-raw,format=I420,width=640,height=480,framerate=15/1 ! y4menc ! fdsink | impactd run --video - --audio-device default\n\nREADME, \"Run it live\", has the pipelines and the systemd unit."
    )]
    Run(RunArgs),
    /// Load a model with its sidecar, check its shapes, and describe it.
    ModelInfo {
        /// The ONNX file; its sidecar NAME.toml must sit beside it.
        model: PathBuf,
    },
    /// Generate synthetic scenes (Y4M + WAV + JSON labels) and a manifest for `impactd eval`.
    #[command(
        after_help = "Example:\n  impactd synth --out scenes --count 1000 --width 64 --height 64\n\nScene i uses seed S+i: the same seed gives the same bytes, whatever --count and --jobs.\nThe label format is in the README (\"Synthetic scenes\")."
    )]
    Synth(SynthArgs),
    /// Play generated scenes through the pipeline in real time: events on stdout, the truth on stderr.
    #[command(
        after_help = "Example:\n  impactd demo --scenes 3 --save demo-scenes   also keep the scenes to watch (Y4M + WAV + JSON)"
    )]
    Demo(DemoArgs),
}

/// Model, config and envelope mode: shared by `replay`, `bench` and `eval`.
#[derive(Args)]
struct ModelArgs {
    /// The ONNX model (sidecar .toml beside it); default: config, then the built-in default (models/impact-s1.onnx).
    #[arg(long, value_name = "ONNX")]
    model: Option<PathBuf>,
    /// Config file (TOML); see impactd.example.toml.
    #[arg(long, value_name = "TOML")]
    config: Option<PathBuf>,
    /// Audio envelope mode (default: the mode the model was trained on).
    #[arg(long, value_name = "seed|frame-mean")]
    envelope: Option<EnvelopeMode>,
}

/// What to replay and with what: shared by `replay` and `bench`.
#[derive(Args)]
struct PipelineArgs {
    /// Media file: .y4m and .wav are read natively, anything else (mp4, mkv, webm, mov) through
    /// ffmpeg; `-` reads Y4M from stdin. Omit it to replay the built-in synthetic scene.
    media: Option<PathBuf>,
    /// Take the audio from this file (any container) instead of MEDIA's own track.
    #[arg(long, value_name = "FILE")]
    audio: Option<PathBuf>,
    #[command(flatten)]
    model: ModelArgs,
    /// Frames between model windows (1..=48), overriding the config.
    #[arg(long)]
    hop: Option<usize>,
    /// Inference backend, overriding the config ("ort" needs a build with `--features ort`).
    #[arg(long, value_name = "tract|ort")]
    backend: Option<BackendKind>,
}

#[derive(Args)]
struct ReplayArgs {
    #[command(flatten)]
    pipeline: PipelineArgs,
    /// Where events go: a file path, or `-` for stdout (default: config, then stdout).
    #[arg(long, value_name = "PATH|-")]
    events: Option<String>,
    /// Also write both envelopes, one CSV row per 12-fps frame.
    #[arg(long, value_name = "CSV")]
    envelopes: Option<PathBuf>,
    /// Pace the replay like a live stream instead of running as fast as possible.
    #[arg(long)]
    realtime: bool,
    /// Print a summary of counters and stage timings on stderr at the end.
    #[arg(long)]
    stats: bool,
    #[command(flatten)]
    streams: StreamArgs,
}

/// The event streams (README, "Events out"), overriding `[http]`, `[mqtt]`, `[evidence]`.
#[derive(Args)]
struct StreamArgs {
    /// Serve SSE /events, /metrics, /healthz, /status on this address (port 0: any free port).
    #[arg(long, value_name = "ADDR:PORT")]
    http: Option<String>,
    /// Publish events to this MQTT broker (mqtt://HOST[:PORT] or mqtts://...).
    #[arg(long, value_name = "URL")]
    mqtt: Option<String>,
    /// Write evidence PNGs (envelopes and video frame per event) into this directory.
    #[arg(long, value_name = "DIR")]
    evidence: Option<PathBuf>,
    /// Keep the HTTP server and MQTT connection up this long after the stream ends.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    linger: Option<std::time::Duration>,
}

impl StreamArgs {
    fn apply(&self, cfg: &mut RawConfig) {
        if let Some(a) = &self.http {
            cfg.http.enabled = true;
            cfg.http.bind = a.clone();
        }
        if let Some(u) = &self.mqtt {
            cfg.mqtt.url = u.clone();
        }
        if let Some(d) = &self.evidence {
            cfg.evidence.dir = d.clone();
        }
    }
}

/// `impactd run`: the config file and what the command line overrides in it.
#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Video source, overriding `video.device`: /dev/videoN, `-` (Y4M on stdin), a .y4m file
    /// (paced, looped) or `scene`.
    #[arg(long, value_name = "DEV|-|FILE|scene")]
    video: Option<String>,
    /// Audio source, overriding `audio.device`: `default`, an ALSA device, `wav:PATH` or `scene`.
    #[arg(long, value_name = "NAME|wav:PATH|scene")]
    audio_device: Option<String>,
    /// Where events go: a file path, or `-` for stdout (default: config, then stdout).
    #[arg(long, value_name = "PATH|-")]
    events: Option<String>,
    /// Also write both envelopes, one CSV row per 12-fps frame (as replay does).
    #[arg(long, value_name = "CSV")]
    envelopes: Option<PathBuf>,
    /// Frames between model windows (1..=48), overriding the config.
    #[arg(long)]
    hop: Option<usize>,
    /// Inference backend, overriding the config.
    #[arg(long, value_name = "tract|ort")]
    backend: Option<BackendKind>,
    #[command(flatten)]
    streams: StreamArgs,
}

#[derive(Args)]
struct BenchArgs {
    #[command(flatten)]
    pipeline: PipelineArgs,
    /// Play the built-in scene this many times back to back (219 = one hour) to watch memory.
    #[arg(long, default_value_t = 1)]
    loops: u32,
    /// Media seconds between resident-memory samples.
    #[arg(long, default_value_t = 60.0)]
    memory_every: f64,
    /// Also time the model alone over this many windows (0: skip).
    #[arg(long, default_value_t = 200)]
    windows: usize,
    /// Time the model on tract and on ONNX Runtime (same model, same window, alternating) and
    /// print both and their ratio; needs a build with `--features ort`.
    #[arg(long)]
    compare_backends: bool,
}

#[derive(Args)]
struct EvalArgs {
    /// Manifest (TOML) listing clips and their hit times; see eval/README.md.
    manifest: PathBuf,
    #[command(flatten)]
    model: ModelArgs,
    /// Write the metrics as JSON to this file (`-` for stdout, replacing the table).
    #[arg(long, value_name = "PATH|-")]
    json: Option<String>,
}

/// mimalloc instead of the system allocator: glibc's malloc serves the large per-frame and
/// per-window buffers with fresh mmap'd pages, and their page faults cost more than the model
/// itself (BENCHMARKS.md, "Speed": 125x -> 220x real time on Y4M, one core).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit codes (README, "Exit codes").
#[derive(Debug, Clone, Copy)]
enum Exit {
    Runtime = 1,
    Usage = 2,
    Media = 3,
    Model = 4,
}

struct Failure {
    code: Exit,
    error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure {
            code: Exit::Runtime,
            error: e.into(),
        }
    }
}

fn fail(code: Exit, error: impl Into<anyhow::Error>) -> Failure {
    Failure {
        code,
        error: error.into(),
    }
}

fn main() -> ExitCode {
    impactd::service::init_logging();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Replay(a) => cmd_replay(a),
        Command::Eval(a) => cmd_eval(a),
        Command::Bench(a) => cmd_bench(a),
        Command::CheckConfig { config } => cmd_check_config(&config),
        Command::ModelInfo { model } => cmd_model_info(&model),
        Command::Run(a) => cmd_run(a),
        Command::Synth(a) => cmd_synth(a),
        Command::Demo(a) => cmd_demo(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            // The cause chain, leaving out a cause whose text its error already shows (errors
            // that print their `#[source]` themselves). Not eprintln!: it panics if stderr is
            // closed.
            let mut message = f.error.to_string();
            for cause in f.error.chain().skip(1) {
                let cause = cause.to_string();
                if !message.contains(&cause) {
                    message = format!("{message}: {cause}");
                }
            }
            let _ = writeln!(io::stderr(), "impactd: error: {message}");
            ExitCode::from(f.code as u8)
        }
    }
}

fn load_config(path: Option<&Path>) -> Result<RawConfig, Failure> {
    let cfg = match path {
        Some(p) => RawConfig::load(p).map_err(|e| fail(Exit::Usage, e))?,
        None => RawConfig::default(),
    };
    // Process-wide, like ONNX Runtime itself: read when the first "ort" model loads.
    impactd::model::set_ort_dylib(&cfg.model.ort_dylib);
    impactd::model::set_ort_providers(cfg.model.ort_providers());
    Ok(cfg)
}

fn replay_failure(e: ReplayError) -> Failure {
    fail(replay_failure_code(&e), e)
}

fn model_path(cli: Option<PathBuf>, cfg: &RawConfig) -> PathBuf {
    cli.or_else(|| (!cfg.model.path.as_os_str().is_empty()).then(|| cfg.model.path.clone()))
        .unwrap_or_else(default_model_path)
}

/// Reads the config, applies the command line over it, checks it, and builds the replay.
/// `events` overrides `events.path`; `loops` plays the built-in scene several times.
fn pipeline_options(
    p: PipelineArgs,
    events: Option<&str>,
    loops: u32,
    realtime: bool,
) -> Result<(RawConfig, ReplayOptions), Failure> {
    let mut cfg = load_config(p.model.config.as_deref())?;
    if let Some(h) = p.hop {
        cfg.model.hop = Some(h);
    }
    if let Some(b) = p.backend {
        cfg.model.backend = b;
    }
    if let Some(e) = events {
        cfg.events.path = e.to_string();
    }
    cfg.check()
        .map_err(|e| fail(Exit::Usage, anyhow::anyhow!("{e}")))?;
    let input = match p.media {
        Some(media) => Input::Files {
            media,
            audio: p.audio,
        },
        None => {
            if p.audio.is_some() {
                return Err(fail(
                    Exit::Usage,
                    anyhow::anyhow!("--audio needs a MEDIA file for the video"),
                ));
            }
            log::info!("no MEDIA given: replaying the built-in synthetic scene");
            Input::BuiltIn { loops }
        }
    };
    let opts = ReplayOptions {
        input,
        model: model_path(p.model.model, &cfg),
        backend: cfg.model.backend,
        hop: cfg.model.hop,
        envelope_mode: p.model.envelope.or(cfg.envelope.mode),
        detector: cfg.detector.clone(),
        realtime,
    };
    Ok((cfg, opts))
}

fn cmd_replay(a: ReplayArgs) -> Result<(), Failure> {
    let (mut cfg, opts) = pipeline_options(a.pipeline, a.events.as_deref(), 1, a.realtime)?;
    a.streams.apply(&mut cfg);
    cfg.check()
        .map_err(|e| fail(Exit::Usage, anyhow::anyhow!("{e}")))?;
    let health = std::sync::Arc::new(impactd::health::Health::new());
    let mut streams = build_streams(
        &cfg,
        &health,
        &opts.model,
        opts.backend,
        "replay",
        !a.realtime,
    )?;
    let mut events = open_events(&cfg)?;
    let mut csv = open_envelopes(a.envelopes.as_deref())?;
    let mut sinks: Vec<&mut dyn Sink> = vec![events.as_mut()];
    if let Some(c) = csv.as_mut() {
        sinks.push(c);
    }
    if !streams.is_empty() {
        sinks.push(&mut streams);
    }
    let mut fan = Fanout(sinks);
    let result = replay::replay_with_health(&opts, &mut fan, &health);
    drop(fan);
    streams.shutdown(a.streams.linger.unwrap_or_default());
    let report = result.map_err(replay_failure)?;
    let s = &report.stats;
    log::info!(
        "done: {} frames ({:.1} s), {} windows, events: {} impact, {} unseen_sound, {} silent_impact; {:.0}x real time",
        s.frames,
        report.media_seconds,
        s.windows,
        s.events_impact,
        s.events_unseen_sound,
        s.events_silent_impact,
        report.media_seconds / report.wall.as_secs_f64().max(1e-9)
    );
    if a.stats {
        eprintln!("{report:#?}");
    }
    Ok(())
}

fn cmd_eval(a: EvalArgs) -> Result<(), Failure> {
    let cfg = load_config(a.model.config.as_deref())?;
    let model = model_path(a.model.model, &cfg);
    impactd::eval::run::run_cli(
        &a.manifest,
        &model,
        &cfg,
        a.model.envelope,
        a.json.as_deref(),
    )
    .map_err(|e| {
        let code = match &e {
            impactd::eval::run::EvalError::Replay { source, .. } => replay_failure_code(source),
            impactd::eval::run::EvalError::Manifest { .. } => Exit::Usage,
            impactd::eval::run::EvalError::Write { .. } => Exit::Runtime,
        };
        fail(code, e)
    })
}

fn replay_failure_code(e: &ReplayError) -> Exit {
    match e {
        ReplayError::StdinNeedsAudio => Exit::Usage,
        ReplayError::Source(_) | ReplayError::NoFrames(_) => Exit::Media,
        ReplayError::Model(_) | ReplayError::Engine(impactd::engine::EngineError::Model(_)) => {
            Exit::Model
        }
        _ => Exit::Runtime,
    }
}

fn cmd_bench(a: BenchArgs) -> Result<(), Failure> {
    let (_, opts) = pipeline_options(a.pipeline, None, a.loops, false)?;
    let report = impactd::bench::replay_bench(&opts, a.memory_every).map_err(replay_failure)?;
    let mut latency = Vec::new();
    if a.windows > 0 {
        latency.push(
            impactd::bench::model_latency(&opts.model, opts.backend, a.windows)
                .map_err(replay_failure)?,
        );
        // The other backend in the same run, where this build has it (a failure is reported,
        // not fatal: the requested backend's numbers stand).
        if cfg!(feature = "ort") {
            let other = match opts.backend {
                BackendKind::Tract => BackendKind::Ort,
                BackendKind::Ort => BackendKind::Tract,
            };
            match impactd::bench::model_latency(&opts.model, other, a.windows) {
                Ok(l) => latency.push(l),
                Err(e) => log::warn!("bench: the {other:?} backend could not be timed: {e}"),
            }
        }
    }
    print!("{}", impactd::bench::format(&report, &latency));
    if a.compare_backends {
        let c = impactd::bench::compare_backends(&opts.model, a.windows.max(1))
            .map_err(replay_failure)?;
        print!("{}", impactd::bench::format_comparison(&c));
    }
    Ok(())
}

/// The JSON Lines events output of `replay` and `run`: stdout, or the size-rotated file.
fn open_events(cfg: &RawConfig) -> Result<Box<dyn Sink>, Failure> {
    if cfg.events.path == "-" {
        return Ok(Box::new(JsonLines::new(io::stdout().lock())));
    }
    let f = impactd::rotate::RotatingFile::open(
        Path::new(&cfg.events.path),
        cfg.events.max_bytes,
        cfg.events.keep,
    )
    .with_context(|| format!("opening the events file {}", cfg.events.path))
    .map_err(|e| fail(Exit::Usage, e))?;
    Ok(Box::new(JsonLines::new(f)))
}

/// `--envelopes FILE.csv` of `replay` and `run`.
fn open_envelopes(path: Option<&Path>) -> Result<Option<EnvelopeCsv<BufWriter<File>>>, Failure> {
    let Some(p) = path else { return Ok(None) };
    let f = File::create(p)
        .with_context(|| format!("creating the envelopes file {}", p.display()))
        .map_err(|e| fail(Exit::Usage, e))?;
    Ok(Some(EnvelopeCsv::new(BufWriter::new(f))?))
}

/// The HTTP, MQTT and evidence sinks the config asks for (`sinks::build`), for `replay` and `run`.
fn build_streams(
    cfg: &RawConfig,
    health: &std::sync::Arc<impactd::health::Health>,
    model: &Path,
    backend: BackendKind,
    mode: &str,
    lossless: bool,
) -> Result<impactd::sinks::Streams, Failure> {
    impactd::sinks::build(
        cfg,
        health.clone(),
        impactd::sinks::RunInfo {
            model: model.display().to_string(),
            backend: format!("{backend:?}").to_lowercase(),
            mode: mode.into(),
            lossless,
        },
    )
    .map_err(|e| {
        let code = match e {
            impactd::sinks::SinkError::Thread(_) => Exit::Runtime,
            _ => Exit::Usage,
        };
        fail(code, e)
    })
}

fn cmd_check_config(path: &Path) -> Result<(), Failure> {
    let cfg = RawConfig::load(path).map_err(|e| fail(Exit::Usage, e))?;
    if !cfg.model.path.as_os_str().is_empty() {
        ModelSpec::load(&cfg.model.path).map_err(|e| {
            fail(
                Exit::Usage,
                anyhow::anyhow!("{}: model.path: {e}", path.display()),
            )
        })?;
    }
    println!("{}: ok", path.display());
    Ok(())
}

fn cmd_model_info(path: &Path) -> Result<(), Failure> {
    let (pred, spec) =
        replay::load_model(path, BackendKind::Tract).map_err(|e| fail(Exit::Model, e))?;
    println!("model:    {}", spec.onnx_path.display());
    println!("sidecar:  {}", spec.sidecar_path.display());
    println!("summary:  {}", spec.summary());
    match (&spec.sidecar.encoder, spec.encoder_path()) {
        (Some(e), Some(path)) => {
            println!("encoder:  {} (per frame)", path.display());
            println!(
                "input:    {:?} {:?} -> {:?} [1, {}]; head input {:?} [1, {}, {}]",
                spec.sidecar.input.name,
                spec.frame_shape(),
                e.output,
                e.features,
                e.head_input,
                spec.frames(),
                e.features
            );
        }
        _ => println!(
            "input:    {:?} {:?}",
            spec.sidecar.input.name,
            spec.input_shape()
        ),
    }
    println!(
        "output:   {:?} {:?}",
        spec.sidecar.output.envelope,
        spec.envelope_shape()
    );
    if let Some(shape) = spec.class_shape() {
        println!(
            "classes:  {:?} {:?} -> {}",
            spec.sidecar.output.class_logits,
            shape,
            spec.sidecar.output.classes.join(", ")
        );
    }
    if !spec.sidecar.model.description.is_empty() {
        println!("about:    {}", spec.sidecar.model.description);
    }
    println!(
        "frames:   {} per window at {} fps",
        pred.frames(),
        spec.sidecar.model.fps
    );
    println!("shapes:   checked against the ONNX graph (tract): ok");
    Ok(())
}

fn cmd_run(a: RunArgs) -> Result<(), Failure> {
    use impactd::live::{self, LiveError, RunOptions};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let mut cfg = load_config(a.model.config.as_deref())?;
    if let Some(v) = a.video {
        cfg.video.device = v;
    }
    if let Some(d) = a.audio_device {
        cfg.audio.device = d;
    }
    if let Some(e) = a.events {
        cfg.events.path = e;
    }
    if let Some(h) = a.hop {
        cfg.model.hop = Some(h);
    }
    if let Some(b) = a.backend {
        cfg.model.backend = b;
    }
    a.streams.apply(&mut cfg);
    cfg.check()
        .map_err(|e| fail(Exit::Usage, anyhow::anyhow!("{e}")))?;
    let mut events = open_events(&cfg)?;
    let opts = RunOptions {
        model: model_path(a.model.model, &cfg),
        backend: cfg.model.backend,
        hop: cfg.model.hop,
        envelope_mode: a.model.envelope.or(cfg.envelope.mode),
        detector: cfg.detector.clone(),
        video: cfg.video.clone(),
        audio: cfg.audio.clone(),
        service: cfg.service.clone(),
    };
    let health = Arc::new(impactd::health::Health::new());
    // HTTP (SSE, /metrics, /healthz, /status), MQTT and evidence: each behind its own bounded
    // queue, never lossless here (nothing may hold up live capture).
    let mut streams = build_streams(&cfg, &health, &opts.model, opts.backend, "run", false)?;
    let stop = Arc::new(AtomicBool::new(false));
    impactd::service::install_signals(&stop)?;
    let watchdog = impactd::service::spawn_watchdog(
        Arc::clone(&health),
        std::time::Duration::from_secs_f64(cfg.service.stall_s),
        Arc::clone(&stop),
    )?;
    let mut csv = open_envelopes(a.envelopes.as_deref())?;
    let mut sinks: Vec<&mut dyn Sink> = vec![events.as_mut()];
    if let Some(c) = csv.as_mut() {
        sinks.push(c);
    }
    if !streams.is_empty() {
        sinks.push(&mut streams);
    }
    let mut fan = Fanout(sinks);
    let result = live::run(
        &opts,
        Arc::clone(&health),
        Arc::clone(&stop),
        &mut impactd::service::Notifier,
        &mut fan,
    );
    drop(fan);
    streams.shutdown(a.streams.linger.unwrap_or_default());
    stop.store(true, Ordering::Relaxed);
    let _ = watchdog.join();
    let report = result.map_err(|e| {
        let code = match &e {
            LiveError::Model(_) | LiveError::Engine(impactd::engine::EngineError::Model(_)) => {
                Exit::Model
            }
            _ => Exit::Runtime,
        };
        fail(code, e)
    })?;
    let s = &report.stats;
    log::info!(
        "stopped after {:.1} s: {} frames ({} filled while the camera was away), {} windows, events: {} impact, {} unseen_sound, {} silent_impact; video dropped {}, audio overruns {}, reconnects {} video / {} audio",
        health.uptime().as_secs_f64(),
        s.frames,
        report.filled_frames,
        s.windows,
        s.events_impact,
        s.events_unseen_sound,
        s.events_silent_impact,
        health.video.dropped.load(Ordering::Relaxed),
        health.audio.overruns.load(Ordering::Relaxed),
        health.video.reconnects.load(Ordering::Relaxed),
        health.audio.reconnects.load(Ordering::Relaxed),
    );
    Ok(())
}

#[derive(Args)]
struct SynthArgs {
    /// Folder for scene-NNNNNN.{y4m,wav,json} and manifest.toml (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Number of scenes.
    #[arg(long)]
    count: usize,
    /// Seed of the first scene; scene i uses seed + i.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Video frame rate of the Y4M files.
    #[arg(long, default_value_t = 12.0)]
    fps: f64,
    #[arg(long, default_value_t = 160)]
    width: u32,
    #[arg(long, default_value_t = 120)]
    height: u32,
    /// Scene length (s).
    #[arg(long, default_value_t = 8.0)]
    duration: f64,
    /// Worker threads.
    #[arg(long, default_value_t = 2)]
    jobs: usize,
    /// Only these scenario kinds (comma-separated), e.g. drop_onto,stick_hit.
    #[arg(long, value_delimiter = ',')]
    kinds: Vec<String>,
}

fn synth_failure(e: impactd::synth::SynthError) -> Failure {
    use impactd::synth::SynthError;
    let code = match &e {
        SynthError::BadArg { .. } | SynthError::OutDir { .. } => Exit::Usage,
        SynthError::Write { .. } => Exit::Runtime,
    };
    fail(code, e)
}

fn cmd_synth(a: SynthArgs) -> Result<(), Failure> {
    let opts = impactd::synth::writer::RunOptions {
        out: a.out,
        count: a.count,
        seed: a.seed,
        jobs: a.jobs,
        scene: impactd::synth::SynthOptions {
            fps: a.fps,
            width: a.width,
            height: a.height,
            duration: a.duration,
            kinds: a.kinds,
        },
    };
    let r = impactd::synth::writer::run(&opts).map_err(synth_failure)?;
    log::info!(
        "wrote {} scenes ({} impacts) to {} in {:.2} s: {:.1} scenes/s",
        r.scenes,
        r.impacts,
        opts.out.display(),
        r.seconds,
        r.scenes as f64 / r.seconds.max(1e-9)
    );
    Ok(())
}

#[derive(Args)]
struct DemoArgs {
    /// Number of scenes to play.
    #[arg(long, default_value_t = 3)]
    scenes: usize,
    /// Also write the scenes (Y4M + WAV + JSON) to this folder.
    #[arg(long, value_name = "DIR")]
    save: Option<PathBuf>,
    /// Seed of the first scene (default: from the clock; printed so a run can be repeated).
    #[arg(long)]
    seed: Option<u64>,
    /// Scene length (s).
    #[arg(long, default_value_t = 8.0)]
    duration: f64,
    /// Video frame rate of the generated scenes.
    #[arg(long, default_value_t = 30.0)]
    fps: f64,
    #[command(flatten)]
    model: ModelArgs,
}

fn cmd_demo(a: DemoArgs) -> Result<(), Failure> {
    use impactd::synth::demo::{self, DemoError};
    let cfg = load_config(a.model.config.as_deref())?;
    cfg.check()
        .map_err(|e| fail(Exit::Usage, anyhow::anyhow!("{e}")))?;
    let seed = a.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() % 1_000_000)
    });
    log::info!(
        "demo: {} scenes from seed {seed} (repeat with --seed {seed})",
        a.scenes
    );
    let opts = demo::DemoOptions {
        scenes: a.scenes,
        seed,
        save: a.save,
        scene: impactd::synth::SynthOptions {
            fps: a.fps,
            duration: a.duration,
            ..Default::default()
        },
        replay: ReplayOptions {
            input: Input::BuiltIn { loops: 1 },
            model: model_path(a.model.model, &cfg),
            backend: cfg.model.backend,
            hop: cfg.model.hop,
            envelope_mode: a.model.envelope.or(cfg.envelope.mode),
            detector: cfg.detector.clone(),
            realtime: true,
        },
    };
    let mut out = io::stdout().lock();
    let mut err = io::stderr();
    demo::run(&opts, &mut out, &mut err).map_err(|e| match e {
        DemoError::Synth(e) => synth_failure(e),
        DemoError::Replay(e) => replay_failure(e),
        e @ DemoError::Io(_) => fail(Exit::Runtime, e),
    })?;
    Ok(())
}
