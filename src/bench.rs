//! `impactd bench`: replay as fast as possible and report throughput, the cost of each stage,
//! resident memory over the run, and the model's latency per window.
//!
//! Numbers from here go into BENCHMARKS.md with the command that produced them; tests never
//! assert timings (shared machines are noisy).

use std::fmt::Write as _;
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::events::{Event, FrameRow, Sink};
use crate::model::BackendKind;
use crate::replay::{self, ReplayError, ReplayOptions, ReplayReport};

/// Resident memory samples along the run.
#[derive(Debug, Clone, Default)]
pub struct MemoryTrace {
    /// (media seconds, resident kB)
    pub samples: Vec<(f64, u64)>,
}

/// A sink that drops events and samples the process's resident memory every `every` frames.
struct Probe {
    every: u64,
    trace: MemoryTrace,
    events: u64,
}

impl Sink for Probe {
    fn event(&mut self, _event: &Event) -> io::Result<()> {
        self.events += 1;
        Ok(())
    }
    fn frame(&mut self, row: &FrameRow) -> io::Result<()> {
        if row.frame % self.every == 0 {
            if let Some(kb) = proc_status_kb("VmRSS") {
                self.trace.samples.push((row.t, kb));
            }
        }
        Ok(())
    }
}

/// A field of /proc/self/status in kB (Linux only; None elsewhere).
pub fn proc_status_kb(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    text.lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// The result of one benchmark replay.
#[derive(Debug, Clone)]
pub struct BenchReport {
    pub replay: ReplayReport,
    pub memory: MemoryTrace,
    /// Peak resident memory of the process (VmHWM), kB.
    pub peak_rss_kb: Option<u64>,
    pub events: u64,
}

/// Replays `opts` (forced to run flat out) and measures it. `memory_every_s`: media seconds
/// between memory samples.
pub fn replay_bench(opts: &ReplayOptions, memory_every_s: f64) -> Result<BenchReport, ReplayError> {
    let opts = ReplayOptions {
        realtime: false,
        ..opts.clone()
    };
    let every = ((memory_every_s * 12.0).round() as u64).max(1);
    let mut probe = Probe {
        every,
        trace: MemoryTrace::default(),
        events: 0,
    };
    let replay = replay::replay(&opts, &mut probe)?;
    Ok(BenchReport {
        replay,
        memory: probe.trace,
        peak_rss_kb: proc_status_kb("VmHWM"),
        events: probe.events,
    })
}

/// Latency of the model alone: `windows` windows of `frames` preprocessed still frames.
#[derive(Debug, Clone)]
pub struct ModelLatency {
    pub model: String,
    pub backend: &'static str,
    pub frames_per_window: usize,
    pub per_window: Vec<Duration>,
    /// Cost of adding one frame (`push_frame`: preprocessing, plus the encoder in the
    /// streaming form), one sample per frame.
    pub per_frame: Vec<Duration>,
}

impl ModelLatency {
    /// Percentile `p` (0..=1) of the per-window times.
    pub fn percentile(&self, p: f64) -> Duration {
        percentile(&self.per_window, p)
    }

    /// Percentile `p` (0..=1) of the per-frame (`push_frame`) times.
    pub fn frame_percentile(&self, p: f64) -> Duration {
        percentile(&self.per_frame, p)
    }
}

/// Loads the model on `backend` and fills one window with the built-in scene's first frames.
fn loaded_window(
    model: &Path,
    backend: BackendKind,
) -> Result<
    (
        Box<dyn crate::model::predictor::Predictor>,
        crate::model::ModelSpec,
    ),
    ReplayError,
> {
    let (mut pred, spec) = replay::load_model(model, backend)?;
    let scene = crate::sources::synthetic::Scene::default();
    let format = crate::preprocess::source_format(spec.sidecar.input.colour);
    for i in 0..pred.frames() as u64 {
        let img = scene.render_frame(i as f64 / 12.0, i, format);
        pred.push_frame(i, &img)?;
    }
    pred.predict()?; // warm-up
    Ok((pred, spec))
}

/// Times tract and ONNX Runtime on the same model and the same window, alternating window by
/// window so that load on a shared machine hits both alike. Needs the `ort` feature.
pub fn compare_backends(model: &Path, windows: usize) -> Result<BackendComparison, ReplayError> {
    let (mut tract, spec) = loaded_window(model, BackendKind::Tract)?;
    let (mut ort, _) = loaded_window(model, BackendKind::Ort)?;
    let n = windows.max(1);
    let (mut t, mut o) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        let t0 = Instant::now();
        tract.predict()?;
        t.push(t0.elapsed());
        let t0 = Instant::now();
        ort.predict()?;
        o.push(t0.elapsed());
    }
    let frames = tract.frames();
    let (a, b) = (tract.predict()?, ort.predict()?);
    let max_abs_diff = a
        .envelope
        .iter()
        .zip(&b.envelope)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    let latency = [
        ModelLatency {
            model: spec.summary(),
            backend: "tract",
            frames_per_window: frames,
            per_window: t,
            per_frame: Vec::new(),
        },
        ModelLatency {
            model: spec.summary(),
            backend: "ort",
            frames_per_window: frames,
            per_window: o,
            per_frame: Vec::new(),
        },
    ];
    Ok(BackendComparison {
        latency,
        max_abs_diff,
    })
}

/// [`compare_backends`]' result.
#[derive(Debug, Clone)]
pub struct BackendComparison {
    /// tract, then ort.
    pub latency: [ModelLatency; 2],
    /// The largest difference between the two backends' envelopes for the same window.
    pub max_abs_diff: f32,
}

/// The comparison as a table: per window, per frame, and the ratio tract / ort.
pub fn format_comparison(cmp: &BackendComparison) -> String {
    let c = &cmp.latency;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "tract vs ort on {} ({} windows each, alternating):",
        c[0].model,
        c[0].per_window.len()
    );
    let _ = writeln!(
        o,
        "backend  median ms/window  p95 ms/window  median ms/frame"
    );
    for l in c {
        let _ = writeln!(
            o,
            "{:<8} {:>16.3} {:>14.3} {:>16.4}",
            l.backend,
            ms(l.percentile(0.5)),
            ms(l.percentile(0.95)),
            ms(l.percentile(0.5)) / l.frames_per_window as f64
        );
    }
    let _ = writeln!(
        o,
        "ratio tract/ort (median): {:.2}",
        c[0].percentile(0.5).as_secs_f64() / c[1].percentile(0.5).as_secs_f64().max(1e-12)
    );
    let _ = writeln!(
        o,
        "envelopes of the same window differ by at most {:.2e}",
        cmp.max_abs_diff
    );
    o
}

fn percentile(v: &[Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    let mut v = v.to_vec();
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// Runs the model `windows` times on a window of the built-in scene's frames, and times each
/// frame's `push_frame` on `windows` more frames of the scene.
pub fn model_latency(
    model: &Path,
    backend: BackendKind,
    windows: usize,
) -> Result<ModelLatency, ReplayError> {
    let (mut pred, spec) = loaded_window(model, backend)?;
    let scene = crate::sources::synthetic::Scene::default();
    let format = crate::preprocess::source_format(spec.sidecar.input.colour);
    let frames = pred.frames();
    let mut per_window = Vec::with_capacity(windows);
    for _ in 0..windows.max(1) {
        let t0 = Instant::now();
        pred.predict()?;
        per_window.push(t0.elapsed());
    }
    let mut per_frame = Vec::with_capacity(windows);
    for i in frames as u64..(frames + windows.max(1)) as u64 {
        let img = scene.render_frame(i as f64 / 12.0, i, format);
        let t0 = Instant::now();
        pred.push_frame(i, &img)?;
        per_frame.push(t0.elapsed());
    }
    let name = match backend {
        BackendKind::Tract => "tract",
        BackendKind::Ort => "ort",
    };
    Ok(ModelLatency {
        model: spec.summary(),
        backend: name,
        frames_per_window: frames,
        per_window,
        per_frame,
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A human-readable report (also pasted into BENCHMARKS.md).
pub fn format(b: &BenchReport, lat: &[ModelLatency]) -> String {
    let r = &b.replay;
    let s = &r.stats;
    let wall = r.wall.as_secs_f64().max(1e-9);
    let mut o = String::new();
    let _ = writeln!(o, "video:    {}", r.video);
    let _ = writeln!(o, "audio:    {}", r.audio);
    let _ = writeln!(o, "model:    {}", r.model);
    let _ = writeln!(o, "envelope: {}", r.envelope_mode);
    let _ = writeln!(
        o,
        "replayed {:.1} s of media in {:.3} s: {:.0}x real time, {:.0} grid frames/s, {} windows, {} events",
        r.media_seconds,
        wall,
        r.media_seconds / wall,
        s.frames as f64 / wall,
        s.windows,
        b.events
    );
    let _ = writeln!(
        o,
        "stage (thread CPU time)  total ms   ms per grid frame   share of wall"
    );
    let per = |d: Duration| ms(d) / (s.frames.max(1) as f64);
    for (name, d, note) in [
        ("read+grid video", r.time_decode_video, ""),
        ("read audio", r.time_decode_audio, ""),
        ("envelope", s.time_envelope, ""),
        ("preprocess", s.time_preprocess, ""),
        ("model", s.time_model, ""),
        ("detector", s.time_detector, ""),
    ] {
        let _ = writeln!(
            o,
            "{name:<25}{:>9.1}   {:>17.4}   {:>12.1}%{note}",
            ms(d),
            per(d),
            100.0 * d.as_secs_f64() / wall
        );
    }
    let _ = writeln!(
        o,
        "(an ffmpeg subprocess's own decoding is not in these rows: time the whole command)"
    );
    if let Some(kb) = b.peak_rss_kb {
        let _ = writeln!(o, "peak resident memory: {:.1} MiB", kb as f64 / 1024.0);
    }
    if b.memory.samples.len() >= 2 {
        let first = b.memory.samples[b.memory.samples.len().min(2) - 1];
        let last = *b.memory.samples.last().expect("two samples");
        let max = b.memory.samples.iter().map(|s| s.1).max().unwrap_or(0);
        let _ = writeln!(
            o,
            "resident memory: {:.1} MiB at {:.0} s, {:.1} MiB at {:.0} s, max {:.1} MiB ({} samples)",
            first.1 as f64 / 1024.0,
            first.0,
            last.1 as f64 / 1024.0,
            last.0,
            max as f64 / 1024.0,
            b.memory.samples.len()
        );
    }
    for l in lat {
        let _ = writeln!(
            o,
            "model alone ({}, {} windows of {} frames): median {:.3} ms, p95 {:.3} ms per window; {:.4} ms per frame",
            l.backend,
            l.per_window.len(),
            l.frames_per_window,
            ms(l.percentile(0.5)),
            ms(l.percentile(0.95)),
            ms(l.percentile(0.5)) / l.frames_per_window as f64
        );
        let _ = writeln!(
            o,
            "  adding a frame ({}, {} frames: preprocess{}): median {:.3} ms, p95 {:.3} ms; a hop of {} frames costs median {:.3} ms",
            l.backend,
            l.per_frame.len(),
            if l.model.contains("Streaming") {
                " + encoder"
            } else {
                ""
            },
            ms(l.frame_percentile(0.5)),
            ms(l.frame_percentile(0.95)),
            6,
            6.0 * ms(l.frame_percentile(0.5)) + ms(l.percentile(0.5))
        );
    }
    o
}
