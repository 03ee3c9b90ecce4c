//! The engine: grid frames and audio in, envelopes and events out. Replay and live capture feed
//! the same engine; only the sources and the clock differ.
//!
//! Flow per grid frame: the [`Predictor`] stores it; every `hop` frames it predicts the window
//! that ends there. Frame k takes its predicted value from the first window that reaches
//! k + lookahead (the model's sidecar: 1 by default, 0 for a causal model), or from the last
//! window at the end of the stream. Audio goes through the [`EnvelopeStream`]. A frame is
//! *final* once its prediction is assigned and the audio envelope covers its window; final frames
//! go, in order and each once, to the [`Detector`] with their attack (how suddenly the sound
//! arrived, [`Refiner::attack`], measured on the samples), and its decisions become numbered
//! [`Event`]s with a time refined from the samples. The first frame still waiting for its audio is
//! shown to the detector early ([`Detector::peek`]) when its prediction alone decides something.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::cputime::CpuInstant;

use crate::detector::{Detection, Detector, DetectorConfig, FrameValues, Kind};
use crate::envelope::{EnvFrame, EnvelopeMode, EnvelopeStream, MinMax};
use crate::events::{Event, FrameRow, Sink, round};
use crate::media::{GRID_FPS, Image};
use crate::model::ModelError;
use crate::model::predictor::{Predictor, WindowOutput};

/// How many bad windows in a row make a model unusable (a fatal error rather than a recovery).
pub const MAX_BAD_WINDOWS_IN_A_ROW: u32 = 3;

/// Engine settings, from the config file and the command line.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Frames between window predictions (1..=frames); None: the predictor's default hop.
    pub hop: Option<usize>,
    pub envelope_mode: EnvelopeMode,
    pub detector: DetectorConfig,
    /// Wall-clock time of media time 0, for the events' `ts`.
    pub wall_origin: SystemTime,
}

/// Engine failures. `Model` ends a run; `Sink` means the output is gone (e.g. a closed pipe).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("writing events: {0}")]
    Sink(#[from] std::io::Error),
    #[error("audio sample rate changed from {from} Hz to {to} Hz mid-stream")]
    RateChanged { from: u32, to: u32 },
}

/// Counters of one run.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub frames: u64,
    pub windows: u64,
    pub bad_windows: u64,
    pub audio_samples: u64,
    pub events_impact: u64,
    pub events_unseen_sound: u64,
    pub events_silent_impact: u64,
    /// Events whose time could not be refined (audio no longer held).
    pub unrefined: u64,
    /// Frames past the end of the audio (observed taken as silence).
    pub frames_without_audio: u64,
    pub time_envelope: Duration,
    /// Preprocessing (resize, colour, normalisation) of each grid frame.
    pub time_preprocess: Duration,
    /// Window assembly and inference.
    pub time_model: Duration,
    pub time_detector: Duration,
}

/// What the audio says about one grid frame.
#[derive(Debug, Clone, Copy)]
struct Heard {
    raw: f32,
    /// [`Refiner::attack`] of the frame.
    attack: f32,
}

struct Win {
    out: WindowOutput,
    classes: Option<Arc<Vec<f32>>>,
}

#[derive(Debug, Clone)]
struct Pending {
    index: u64,
    predicted: f32,
    /// The window's class probabilities and where this frame's start in them (0 for one set
    /// per window; `(k - start) * classes` for per-frame class logits).
    classes: Option<Arc<Vec<f32>>>,
    class_offset: usize,
    win_start: u64,
    win_end: u64,
}

/// The processing core.
pub struct Engine {
    cfg: EngineConfig,
    /// Frames between windows: the config's, else the predictor's default.
    hop: u64,
    predictor: Box<dyn Predictor>,
    class_names: Vec<String>,
    detector: Detector,
    envelope: Option<EnvelopeStream>,
    audio_done: bool,
    /// Raw envelope values and attacks, `raw[0]` is frame `raw_base`.
    raw: VecDeque<Heard>,
    /// Envelope frames whose attack waits for the end of its window's audio.
    unheard: VecDeque<EnvFrame>,
    raw_base: u64,
    /// Frames with an assigned prediction, waiting for audio.
    pending: VecDeque<Pending>,
    /// The first frame without an assigned prediction.
    assigned_upto: u64,
    last_frame: Option<u64>,
    /// The newest window and the one before it (a frame the newest does not cover, possible
    /// when hop = frames, takes the previous one).
    last_window: Option<Win>,
    prev_window: Option<Win>,
    bad_in_a_row: u32,
    refiner: Refiner,
    next_id: u64,
    /// Class of the most recent finalised frames, looked up by visual frame.
    recent: VecDeque<Pending>,
    stats: Stats,
    scratch_env: Vec<EnvFrame>,
    scratch_det: Vec<Detection>,
}

impl Engine {
    pub fn new(cfg: EngineConfig, predictor: Box<dyn Predictor>) -> Engine {
        let class_names = predictor.classes().to_vec();
        let detector = Detector::new(cfg.detector.clone());
        let hop = cfg.hop.unwrap_or_else(|| predictor.default_hop()).max(1) as u64;
        Engine {
            cfg,
            hop,
            predictor,
            class_names,
            detector,
            envelope: None,
            audio_done: false,
            raw: VecDeque::new(),
            unheard: VecDeque::new(),
            raw_base: 0,
            pending: VecDeque::new(),
            assigned_upto: 0,
            last_frame: None,
            last_window: None,
            prev_window: None,
            bad_in_a_row: 0,
            refiner: Refiner::default(),
            next_id: 1,
            recent: VecDeque::new(),
            stats: Stats::default(),
            scratch_env: Vec::new(),
            scratch_det: Vec::new(),
        }
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Frames between window predictions.
    pub fn hop(&self) -> usize {
        self.hop as usize
    }

    /// Frames the model sees per window.
    pub fn window_frames(&self) -> usize {
        self.predictor.frames()
    }

    /// The next grid frame index the engine expects.
    pub fn next_frame_index(&self) -> u64 {
        self.last_frame.map_or(0, |f| f + 1)
    }

    /// Media time (s) up to which audio has been pushed.
    pub fn audio_time(&self) -> f64 {
        self.envelope
            .as_ref()
            .map_or(0.0, |e| e.samples_seen() as f64 / e.rate() as f64)
    }

    /// Adds grid frame `index` (consecutive from 0).
    pub fn push_frame(
        &mut self,
        index: u64,
        image: &Image,
        sink: &mut dyn Sink,
    ) -> Result<(), EngineError> {
        let t0 = CpuInstant::now();
        self.predictor.push_frame(index, image)?;
        self.last_frame = Some(index);
        self.stats.frames += 1;
        let t1 = CpuInstant::now();
        self.stats.time_preprocess += t1 - t0;
        if (index + 1) % self.hop == 0 {
            self.run_window(false)?;
            self.stats.time_model += t1.elapsed();
        }
        self.finalize(sink)
    }

    /// Adds audio (first channel, [-1, 1]) at `rate` Hz, continuing the previous block.
    pub fn push_audio(
        &mut self,
        rate: u32,
        samples: &[f32],
        sink: &mut dyn Sink,
    ) -> Result<(), EngineError> {
        let t0 = CpuInstant::now();
        let env = match &mut self.envelope {
            Some(e) if e.rate() != rate => {
                return Err(EngineError::RateChanged {
                    from: e.rate(),
                    to: rate,
                });
            }
            Some(e) => e,
            None => {
                self.refiner = Refiner::new(rate);
                self.envelope
                    .insert(EnvelopeStream::new(self.cfg.envelope_mode, rate))
            }
        };
        // In blocks of at most half a second, so the refiner still holds the start of every
        // frame's attack window when the frame's envelope is done, however large `samples` is.
        for block in samples.chunks((rate as usize / 2).max(1)) {
            self.refiner.push(block);
            self.scratch_env.clear();
            env.push(block, &mut self.scratch_env);
            self.unheard.extend(self.scratch_env.iter().copied());
            settle_attacks(&mut self.unheard, &mut self.raw, &mut self.refiner, false);
        }
        self.stats.audio_samples += samples.len() as u64;
        self.stats.time_envelope += t0.elapsed();
        self.finalize(sink)
    }

    /// No more audio will come.
    pub fn finish_audio(&mut self, sink: &mut dyn Sink) -> Result<(), EngineError> {
        if let Some(env) = &mut self.envelope {
            self.scratch_env.clear();
            env.finish(&mut self.scratch_env);
            self.unheard.extend(self.scratch_env.iter().copied());
            settle_attacks(&mut self.unheard, &mut self.raw, &mut self.refiner, true);
        }
        self.audio_done = true;
        self.finalize(sink)
    }

    /// No more video will come: the last window is predicted and every frame assigned.
    pub fn finish_video(&mut self, sink: &mut dyn Sink) -> Result<(), EngineError> {
        if let Some(last) = self.last_frame {
            if self.last_window.as_ref().is_none_or(|w| w.out.end != last) {
                self.run_window(true)?;
            }
            if self.assigned_upto <= last {
                self.assign(last + 1);
            }
        }
        self.finalize(sink)
    }

    /// Ends the stream: everything in flight is decided and written.
    pub fn finish(&mut self, sink: &mut dyn Sink) -> Result<(), EngineError> {
        self.finish_video(sink)?;
        self.finish_audio(sink)?;
        self.finalize(sink)?;
        let t0 = CpuInstant::now();
        self.scratch_det.clear();
        self.detector.finish(&mut self.scratch_det);
        self.stats.time_detector += t0.elapsed();
        self.emit(sink)?;
        sink.flush()?;
        Ok(())
    }

    fn run_window(&mut self, last: bool) -> Result<(), EngineError> {
        let out = match self.predictor.predict() {
            Ok(w) => {
                self.stats.windows += 1;
                self.bad_in_a_row = 0;
                w
            }
            Err(ModelError::BadOutput { output, reason }) => {
                self.stats.bad_windows += 1;
                self.bad_in_a_row += 1;
                if self.bad_in_a_row >= MAX_BAD_WINDOWS_IN_A_ROW {
                    return Err(ModelError::BadOutput {
                        output,
                        reason: format!(
                            "{reason} ({} windows in a row; the model is unusable)",
                            self.bad_in_a_row
                        ),
                    }
                    .into());
                }
                log::warn!(
                    "model output {output:?} is invalid ({reason}); window skipped, its frames predicted 0"
                );
                let end = self.last_frame.unwrap_or(0);
                let start = end.saturating_sub(self.predictor.frames() as u64 - 1);
                WindowOutput {
                    start,
                    end,
                    envelope: vec![0.0; (end - start + 1) as usize],
                    classes: None,
                }
            }
            Err(e) => return Err(e.into()),
        };
        let end = out.end;
        let classes = out.classes.clone().map(Arc::new);
        self.prev_window = self.last_window.replace(Win { out, classes });
        // A model that looks one frame ahead: frames up to end - 1 take this window and `end`
        // waits for the next one. A causal model (lookahead 0): `end` is final here too.
        let lookahead = self.predictor.lookahead().min(1) as u64;
        self.assign(if last { end + 1 } else { end + 1 - lookahead });
        Ok(())
    }

    /// Assigns predictions to frames `assigned_upto..upto`: from the newest window, or from the
    /// one before for a frame the newest does not cover.
    fn assign(&mut self, upto: u64) {
        while self.assigned_upto < upto {
            let k = self.assigned_upto;
            let Some(w) = [&self.last_window, &self.prev_window]
                .into_iter()
                .flatten()
                .find(|w| w.out.start <= k && k <= w.out.end)
            else {
                return; // no window yet covers k
            };
            let n = self.class_names.len();
            let class_offset = match &w.classes {
                Some(c) if n > 0 && c.len() == w.out.envelope.len() * n && c.len() > n => {
                    (k - w.out.start) as usize * n
                }
                _ => 0,
            };
            self.pending.push_back(Pending {
                index: k,
                predicted: w.out.envelope[(k - w.out.start) as usize],
                classes: w.classes.clone(),
                class_offset,
                win_start: w.out.start,
                win_end: w.out.end,
            });
            self.assigned_upto += 1;
        }
    }

    fn raw_at(&self, k: u64) -> Option<f32> {
        self.heard_at(k).map(|h| h.raw)
    }

    fn heard_at(&self, k: u64) -> Option<Heard> {
        k.checked_sub(self.raw_base)
            .and_then(|i| self.raw.get(i as usize))
            .copied()
    }

    /// Moves every final frame to the detector, in order.
    fn finalize(&mut self, sink: &mut dyn Sink) -> Result<(), EngineError> {
        while let Some(p) = self.pending.front() {
            let have_audio = self.raw_base + self.raw.len() as u64 > p.win_end;
            if !(have_audio || self.audio_done) {
                break;
            }
            let p = self.pending.pop_front().expect("front exists");
            // Observed, scaled over the predicting window (frames without audio count as silence).
            let scale =
                MinMax::of((p.win_start..=p.win_end).map(|k| self.raw_at(k).unwrap_or(0.0)));
            let heard = match self.heard_at(p.index) {
                Some(h) => h,
                None => {
                    self.stats.frames_without_audio += 1;
                    if self.stats.frames_without_audio == 1 {
                        if self.stats.audio_samples == 0 {
                            log::warn!(
                                "the audio has no samples: every frame counts as silent (no sound can be heard)"
                            );
                        } else {
                            log::warn!(
                                "the audio ends before the video, at {:.2} s: frames from {} ({:.2} s) on count as silent",
                                self.audio_time(),
                                p.index,
                                p.index as f64 / GRID_FPS as f64
                            );
                        }
                    }
                    Heard {
                        raw: 0.0,
                        attack: 1.0,
                    }
                }
            };
            let raw = heard.raw;
            let values = FrameValues {
                index: p.index,
                predicted: p.predicted,
                observed: scale.apply(raw),
                observed_raw: raw,
                attack: heard.attack,
            };
            sink.frame(&FrameRow {
                frame: p.index,
                t: p.index as f64 / GRID_FPS as f64,
                predicted: values.predicted,
                observed: values.observed,
                observed_raw: values.observed_raw,
            })?;
            let t0 = CpuInstant::now();
            self.scratch_det.clear();
            self.detector.push(values, &mut self.scratch_det);
            self.stats.time_detector += t0.elapsed();
            self.recent.push_back(p);
            while self.recent.len() > 16 {
                self.recent.pop_front();
            }
            self.emit(sink)?;
            self.trim_raw();
        }
        // The next frame's prediction is final but its audio is not in yet: enough for the
        // detector to judge the newest frame's visual side (Detector::peek).
        if let Some(p) = self.pending.front() {
            let t0 = CpuInstant::now();
            self.scratch_det.clear();
            self.detector
                .peek(p.index, p.predicted, &mut self.scratch_det);
            self.stats.time_detector += t0.elapsed();
            self.emit(sink)?;
        }
        Ok(())
    }

    /// Drops raw envelope values no pending frame needs.
    fn trim_raw(&mut self) {
        let keep_from = self
            .pending
            .front()
            .map_or(self.assigned_upto, |p| p.win_start)
            .min(
                self.assigned_upto
                    .saturating_sub(self.predictor.frames() as u64),
            );
        // The detector keeps its own history; the engine only needs window ranges.
        while self.raw_base < keep_from && !self.raw.is_empty() {
            self.raw.pop_front();
            self.raw_base += 1;
        }
    }

    fn emit(&mut self, sink: &mut dyn Sink) -> Result<(), EngineError> {
        let dets = std::mem::take(&mut self.scratch_det);
        for d in &dets {
            let (t, refined) = match d.audio_frame {
                Some(a) => match self.refiner.onset(a) {
                    Some(t) => (t, true),
                    None => (a as f64 / GRID_FPS as f64, false),
                },
                None => (d.frame as f64 / GRID_FPS as f64, true),
            };
            if !refined {
                self.stats.unrefined += 1;
            }
            let (class, class_confidence) = match (d.kind, d.visual_frame) {
                (Kind::Impact, Some(v)) => self.class_of(v),
                _ => (None, None),
            };
            match d.kind {
                Kind::Impact => self.stats.events_impact += 1,
                Kind::UnseenSound => self.stats.events_unseen_sound += 1,
                Kind::SilentImpact => self.stats.events_silent_impact += 1,
            }
            let ts = self.cfg.wall_origin + Duration::from_secs_f64(t.max(0.0));
            let event = Event {
                id: self.next_id,
                kind: d.kind,
                t: round(t, 4),
                frame: d.frame,
                confidence: round(d.confidence as f64, 3) as f32,
                predicted: round(d.predicted as f64, 4) as f32,
                observed: round(d.observed as f64, 4) as f32,
                ts: humantime::format_rfc3339_millis(ts).to_string(),
                class,
                class_confidence,
                visual_frame: d.visual_frame,
                audio_frame: d.audio_frame,
                observed_raw: d.observed_raw,
                attack: d.attack.map(|a| round(a as f64, 3) as f32),
            };
            self.next_id += 1;
            sink.event(&event)?;
        }
        self.scratch_det = dets;
        self.scratch_det.clear();
        Ok(())
    }

    fn class_of(&self, frame: u64) -> (Option<String>, Option<f32>) {
        let Some(p) = self.recent.iter().find(|p| p.index == frame) else {
            return (None, None);
        };
        let Some(probs) = &p.classes else {
            return (None, None);
        };
        let n = self.class_names.len();
        let Some(probs) = probs.get(p.class_offset..p.class_offset + n) else {
            return (None, None);
        };
        let (i, c) = probs
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .expect("non-empty classes");
        (
            self.class_names.get(i).cloned(),
            Some(round(*c as f64, 3) as f32),
        )
    }
}

/// Moves envelope frames to `raw` once the refiner holds the audio of their attack windows (all
/// of them when `done`: the windows at the end are cut where the audio ends). The order is kept.
fn settle_attacks(
    unheard: &mut VecDeque<EnvFrame>,
    raw: &mut VecDeque<Heard>,
    refiner: &mut Refiner,
    done: bool,
) {
    while let Some(f) = unheard.front() {
        let Some(attack) = refiner.attack(f.index, done) else {
            break;
        };
        raw.push_back(Heard { raw: f.raw, attack });
        unheard.pop_front();
    }
}

/// Works on the last 4 s of raw samples: refines an audio peak's time below the frame interval
/// (the onset of the loudest burst in the frame, from a 1-ms envelope) and measures each frame's
/// attack.
#[derive(Debug, Default)]
pub struct Refiner {
    rate: u32,
    /// |x| of the most recent samples; `ring[0]` is sample `base`.
    ring: VecDeque<f32>,
    base: u64,
    capacity: usize,
    /// Sums of |x| for [`Refiner::attack`], reused.
    prefix: Vec<f64>,
}

/// [`Refiner::attack`]: the loudness `e(t)` is the mean |x| over this long before `t` ...
const ATTACK_MEAN_S: f64 = 0.010;
/// ... its rises are measured over this step ...
const ATTACK_STEP_S: f64 = 0.020;
/// ... and the rise to a peak starts at the quietest `e` this long before it.
const ATTACK_LOOKBACK_S: f64 = 0.150;

impl Refiner {
    /// Keeps the last 4 s of audio: enough for the detector's decision delay at any hop.
    pub fn new(rate: u32) -> Refiner {
        Refiner {
            rate,
            ring: VecDeque::new(),
            base: 0,
            capacity: rate as usize * 4,
            prefix: Vec::new(),
        }
    }

    /// First and one-past-last sample of grid frame `frame`'s attack window: from the previous
    /// frame's centre to the end of the frame's own interval, `[(k - 1) / 12, (k + 0.5) / 12)`,
    /// the span [`Refiner::onset`] searches.
    fn attack_span(&self, frame: u64) -> (u64, u64) {
        let r = self.rate as u64;
        let fps = GRID_FPS as u64;
        let lo = (frame.saturating_sub(1) * r).div_ceil(fps);
        let hi = ((2 * frame + 1) * r).div_ceil(2 * fps);
        (lo, hi)
    }

    /// How suddenly the sound at grid frame `frame` arrived, from 0 to 1: the share of its rise
    /// that came within one 20-ms step. On a 1-ms grid, `e(t)` is the mean |x| over the 10 ms
    /// before `t`; the peak `P` is the largest `e` in the frame's attack window, the base `B` the
    /// smallest `e` in the 150 ms before the peak, and the attack is the largest
    /// `e(t) - e(t - 20 ms)` between the base and the peak over `P - B`. A strike jumps (near 1),
    /// also out of noise or over the ringing of an earlier strike; a voice, a bark or an engine
    /// swells over tens of milliseconds (a third to a half). It is 1 where nothing rises (silence,
    /// the first 30 ms of a stream), so that the test never rejects what it did not measure.
    ///
    /// None while the end of the window has not arrived; with `done`, the window is cut where
    /// the audio ends. The value depends only on the samples, not on how they were pushed, as
    /// long as the 180 ms before the window are still held (the engine pushes in blocks of at
    /// most 0.5 s, and 4 s are held).
    pub fn attack(&mut self, frame: u64, done: bool) -> Option<f32> {
        if self.rate == 0 {
            return Some(1.0);
        }
        let end_held = self.base + self.ring.len() as u64;
        let (lo, mut hi) = self.attack_span(frame);
        if hi > end_held {
            if !done {
                return None;
            }
            hi = end_held;
        }
        let r = self.rate as f64;
        let w = ((ATTACK_MEAN_S * r).round() as u64).max(1);
        let d = ((ATTACK_STEP_S * r).round() as u64).max(1);
        let look = (ATTACK_LOOKBACK_S * r).round() as u64;
        let tick = ((r / 1000.0).round() as u64).max(1);
        // e(t) reads samples [t - w, t); the earliest instant is the peak's look-back from the
        // window's start, and its rise reads e(t - d).
        let first_t = lo.saturating_sub(look).max(d + w);
        if first_t >= hi || first_t - d - w < self.base {
            return Some(1.0);
        }
        let s0 = first_t - d - w;
        // Instants t_i = first_t + i * tick before hi; e(t) = (P(t) - P(t - w)) / w with P(t)
        // the sum of |x| over [s0, t), accumulated in sample order. Only the four values of P
        // that instant i reads are kept (at t_i, t_i - w, t_i - d, t_i - d - w): a few
        // kilobytes, where P at every sample would be a hundred.
        let n = (hi - first_t).div_ceil(tick) as usize;
        self.prefix.clear();
        self.prefix.resize(4 * n, 0.0);
        // where each of the four is read next, and for which instant
        let mut next_at = [first_t, first_t - w, first_t - d, first_t - d - w];
        let mut next_i = [0usize; 4];
        let mut acc = 0.0f64;
        let held = (s0 - self.base) as usize..(hi - self.base) as usize;
        for (pos, v) in (s0..).zip(self.ring.range(held)) {
            for k in 0..4 {
                if next_at[k] == pos && next_i[k] < n {
                    self.prefix[k * n + next_i[k]] = acc;
                    next_i[k] += 1;
                    next_at[k] += tick;
                }
            }
            acc += *v as f64;
        }
        let p = |k: usize, i: usize| self.prefix[k * n + i];
        // e(t_i), and its rise over the step: e(t_i) - e(t_i - d)
        let e = |i: usize| (p(0, i) - p(1, i)) / w as f64;
        let rise = |i: usize| e(i) - (p(2, i) - p(3, i)) / w as f64;
        let lo_i = (lo.max(first_t) - first_t).div_ceil(tick) as usize;
        let Some(peak_i) = (lo_i..n).max_by(|&a, &b| e(a).total_cmp(&e(b))) else {
            return Some(1.0);
        };
        let back_i = peak_i.saturating_sub((look / tick) as usize);
        let base_i = (back_i..=peak_i)
            .min_by(|&a, &b| e(a).total_cmp(&e(b)))
            .expect("non-empty range");
        let total = e(peak_i) - e(base_i);
        if total <= 0.0 {
            return Some(1.0);
        }
        let jump = (base_i..=peak_i).map(rise).fold(0.0f64, f64::max);
        Some((jump / total).clamp(0.0, 1.0) as f32)
    }

    pub fn push(&mut self, samples: &[f32]) {
        self.ring.extend(samples.iter().map(|s| s.abs()));
        if self.ring.len() > self.capacity {
            let drop = self.ring.len() - self.capacity;
            self.ring.drain(..drop);
            self.base += drop as u64;
        }
    }

    /// The onset time (s) of the burst behind the audio peak at `frame`, or None when those
    /// samples are no longer held.
    pub fn onset(&self, frame: u64) -> Option<f64> {
        if self.rate == 0 {
            return None;
        }
        let r = self.rate as f64;
        let fps = GRID_FPS as f64;
        // Search the frame's interval and half a frame before it (a knock late in the previous
        // interval can peak the envelope in this frame).
        let lo = (((frame as f64 - 1.0) / fps) * r).max(0.0) as u64;
        let hi = (((frame as f64 + 0.5) / fps) * r) as u64;
        let end_held = self.base + self.ring.len() as u64;
        if lo < self.base || lo >= end_held {
            return None;
        }
        let hi = hi.min(end_held);
        // 1-ms moving average of |x|.
        let w = ((r / 1000.0) as usize).max(1);
        let start = (lo - self.base) as usize;
        let stop = (hi - self.base) as usize;
        if stop <= start + w {
            return None;
        }
        let mut fine = Vec::with_capacity(stop - start);
        let mut acc = 0.0f64;
        for i in start..stop {
            acc += self.ring[i] as f64;
            if i >= start + w {
                acc -= self.ring[i - w] as f64;
            }
            fine.push(acc / w as f64);
        }
        let (peak_i, &peak) = fine
            .iter()
            .enumerate()
            .skip(w)
            .max_by(|a, b| a.1.total_cmp(b.1))?;
        // Background: the quietest 1-ms level in the 60 ms before the peak.
        let look = ((0.06 * r) as usize).min(peak_i);
        let background = fine[peak_i - look..=peak_i]
            .iter()
            .cloned()
            .fold(f64::INFINITY, f64::min);
        let threshold = background + 0.3 * (peak - background);
        let mut onset = peak_i;
        while onset > 0 && fine[onset - 1] >= threshold {
            onset -= 1;
        }
        // fine[i] averages the w samples ending at i: after a step at sample s it crosses 30 % of
        // the step at i = s + 0.3 w - 1, so the onset is that crossing moved back.
        let onset_sample =
            (lo as usize + onset + 1).saturating_sub((0.3 * w as f64).round() as usize);
        Some(onset_sample as f64 / r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refiner_finds_a_click_onset_to_the_millisecond() {
        let rate = 44_100u32;
        let mut x = vec![0.001f32; rate as usize * 2];
        let click = (1.2345 * rate as f64) as usize;
        for (i, v) in x[click..click + 2000].iter_mut().enumerate() {
            *v = 0.8 * (-(i as f32) / 400.0).exp() * if i % 2 == 0 { 1.0 } else { -1.0 };
        }
        let mut r = Refiner::new(rate);
        r.push(&x);
        // the click's frame (1.2345 s * 12 = 14.8 -> frame 15 in frame-mean intervals)
        let t = r.onset(15).unwrap();
        assert!((t - 1.2345).abs() < 0.001, "{t}");
        // frame 14's search window also reaches it
        assert!(
            r.onset(14)
                .is_none_or(|t| (t - 1.2345).abs() < 0.001 || t < 1.2)
        );
    }

    /// A predictor that counts its windows; every frame predicts 0.5.
    struct Fake {
        lookahead: usize,
        default_hop: usize,
        last: Option<u64>,
        windows: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl Predictor for Fake {
        fn frames(&self) -> usize {
            48
        }
        fn lookahead(&self) -> usize {
            self.lookahead
        }
        fn default_hop(&self) -> usize {
            self.default_hop
        }
        fn push_frame(&mut self, index: u64, _image: &Image) -> Result<(), ModelError> {
            self.last = Some(index);
            Ok(())
        }
        fn predict(&mut self) -> Result<WindowOutput, ModelError> {
            self.windows
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let end = self.last.unwrap_or(0);
            let start = end.saturating_sub(47);
            Ok(WindowOutput {
                start,
                end,
                envelope: vec![0.5; (end - start + 1) as usize],
                classes: None,
            })
        }
        fn classes(&self) -> &[String] {
            &[]
        }
    }

    #[derive(Default)]
    struct Rows(Vec<u64>);

    impl Sink for Rows {
        fn event(&mut self, _event: &Event) -> std::io::Result<()> {
            Ok(())
        }
        fn frame(&mut self, row: &FrameRow) -> std::io::Result<()> {
            self.0.push(row.frame);
            Ok(())
        }
    }

    /// Frames final after pushing 10 frames with audio well ahead of them, and windows run.
    fn final_frames(lookahead: usize, hop: Option<usize>, default_hop: usize) -> (Vec<u64>, usize) {
        let windows = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let fake = Fake {
            lookahead,
            default_hop,
            last: None,
            windows: Arc::clone(&windows),
        };
        let cfg = EngineConfig {
            hop,
            envelope_mode: EnvelopeMode::FrameMean,
            detector: DetectorConfig::default(),
            wall_origin: SystemTime::UNIX_EPOCH,
        };
        let mut engine = Engine::new(cfg, Box::new(fake));
        let mut rows = Rows::default();
        // 2 s of audio: every frame's audio is there before its picture
        engine
            .push_audio(8000, &vec![0.0; 16_000], &mut rows)
            .unwrap();
        let image = Image::filled(8, 8, crate::media::PixelFormat::Gray8, 0);
        for k in 0..10 {
            engine.push_frame(k, &image, &mut rows).unwrap();
        }
        (rows.0, windows.load(std::sync::atomic::Ordering::Relaxed))
    }

    #[test]
    fn a_causal_model_makes_the_newest_frame_final_at_once() {
        let (rows, windows) = final_frames(0, Some(1), 6);
        assert_eq!(rows, (0..10).collect::<Vec<_>>());
        assert_eq!(windows, 10);
    }

    #[test]
    fn a_model_that_looks_ahead_keeps_the_newest_frame_for_the_next_window() {
        let (rows, _) = final_frames(1, Some(1), 6);
        assert_eq!(rows, (0..9).collect::<Vec<_>>());
        // hop 5: the window at frame 9 finalises 5..=8; 9 waits
        let (rows, windows) = final_frames(1, Some(5), 6);
        assert_eq!(rows, (0..9).collect::<Vec<_>>());
        assert_eq!(windows, 2);
    }

    #[test]
    fn an_unset_hop_is_the_predictors_default() {
        let (_, windows) = final_frames(0, None, 1);
        assert_eq!(windows, 10, "streaming default: a window per frame");
        let (rows, windows) = final_frames(0, None, 6);
        assert_eq!(windows, 1, "clip default: a window every 6 frames");
        assert_eq!(rows, (0..6).collect::<Vec<_>>());
    }

    /// 5 s at `rate` (more than the refiner holds): quiet noise (mean |x| 0.0005), a click at 1.3 s, and a tone that swells
    /// by 60 dB over 0.4 s from 2.0 s (from below the noise to 0.3; 3 dB per 20 ms).
    fn click_and_swell(rate: usize) -> Vec<f32> {
        let mut seed = 12345u32;
        let mut x: Vec<f32> = (0..5 * rate)
            .map(|_| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (seed >> 8) as f32 / (1u32 << 24) as f32 * 0.002 - 0.001
            })
            .collect();
        let click = (1.3 * rate as f64) as usize;
        for i in 0..rate / 10 {
            let decay = (-(i as f32) / (rate as f32 / 80.0)).exp();
            x[click + i] += 0.5 * decay * if i % 2 == 0 { 1.0 } else { -1.0 };
        }
        let swell = 2 * rate;
        for i in 0..rate / 2 {
            let db = (i as f32 / (0.4 * rate as f32)).min(1.0) * 60.0 - 60.0;
            let gain = 0.3 * 10f32.powf(db / 20.0);
            x[swell + i] +=
                gain * (i as f32 * 2.0 * std::f32::consts::PI * 440.0 / rate as f32).sin();
        }
        x
    }

    /// The engine's attack per frame when `x` is pushed in blocks of `block` samples.
    fn attacks(x: &[f32], rate: u32, block: usize) -> Vec<f32> {
        let fake = Fake {
            lookahead: 1,
            default_hop: 6,
            last: None,
            windows: Arc::default(),
        };
        let cfg = EngineConfig {
            hop: None,
            envelope_mode: EnvelopeMode::FrameMean,
            detector: DetectorConfig::default(),
            wall_origin: SystemTime::UNIX_EPOCH,
        };
        let mut engine = Engine::new(cfg, Box::new(fake));
        let mut rows = Rows::default();
        for b in x.chunks(block) {
            engine.push_audio(rate, b, &mut rows).unwrap();
        }
        engine.finish_audio(&mut rows).unwrap();
        // no video: nothing is final, so every frame's values are still held
        assert_eq!(engine.raw_base, 0);
        engine.raw.iter().map(|h| h.attack).collect()
    }

    #[test]
    fn a_click_has_a_sharp_attack_and_a_swell_a_soft_one_however_the_audio_is_pushed() {
        let x = click_and_swell(16_000);
        let whole = attacks(&x, 16_000, x.len());
        assert_eq!(
            whole.len(),
            61,
            "5 s at 12 fps: frames 0 to 60, whose interval starts in it"
        );
        // in one push, 5 s would have pushed the first second out of the refiner
        for block in [37, 1000, 8000, 20_000] {
            assert_eq!(attacks(&x, 16_000, block), whole, "blocks of {block}");
        }
        // the click (1.3 s, frame 15.6) is in frame 16's interval: all of its rise at once
        assert!(whole[16] > 0.95, "{whole:?}");
        // the swell, once above the noise (frames 26 to 29, 2.17 s on): a third of its rise
        // in any 20 ms
        let swell = &whole[26..30];
        assert!(swell.iter().all(|&a| (0.2..0.45).contains(&a)), "{swell:?}");
        assert!(whole.iter().all(|a| (0.0..=1.0).contains(a)), "{whole:?}");
    }

    /// The attack of frame `k` by its definition, over the whole signal: P at every sample.
    fn attack_by_definition(x: &[f32], rate: u32, k: u64) -> f32 {
        let r = rate as u64;
        let (lo, hi) = (
            ((k.max(1) - 1) * r).div_ceil(12),
            ((2 * k + 1) * r).div_ceil(24),
        );
        let hi = hi.min(x.len() as u64);
        let (w, d, look, tick) = (r / 100, r / 50, r * 150 / 1000, r / 1000);
        let first_t = lo.saturating_sub(look).max(d + w);
        let s0 = first_t - d - w;
        let mut p = vec![0.0f64];
        for v in &x[s0 as usize..hi as usize] {
            p.push(p.last().unwrap() + v.abs() as f64);
        }
        let e = |t: u64| (p[(t - s0) as usize] - p[(t - w - s0) as usize]) / w as f64;
        let ts: Vec<u64> = (first_t..hi).step_by(tick as usize).collect();
        let peak = ts
            .iter()
            .filter(|&&t| t >= lo)
            .copied()
            .max_by(|&a, &b| e(a).total_cmp(&e(b)))
            .unwrap();
        let base = ts
            .iter()
            .filter(|&&t| t + look / tick * tick >= peak && t <= peak)
            .copied()
            .min_by(|&a, &b| e(a).total_cmp(&e(b)))
            .unwrap();
        let jump = ts
            .iter()
            .filter(|&&t| t >= base && t <= peak)
            .map(|&t| e(t) - e(t - d))
            .fold(0.0f64, f64::max);
        let total = e(peak) - e(base);
        if total <= 0.0 {
            1.0
        } else {
            (jump / total).clamp(0.0, 1.0) as f32
        }
    }

    #[test]
    fn the_refiner_measures_the_attack_as_defined() {
        // 44.1 kHz: the 10-ms mean and the 20-ms step are not whole numbers of 1-ms ticks
        for rate in [16_000u32, 44_100] {
            let x = click_and_swell(rate as usize);
            let engine = attacks(&x, rate, 1000);
            // from frame 1 (frame 0's window starts before the 30 ms that e needs) to the
            // last frame whose window the signal holds
            for k in 1..60 {
                assert_eq!(
                    engine[k as usize],
                    attack_by_definition(&x, rate, k),
                    "{rate} Hz, frame {k}"
                );
            }
        }
    }

    #[test]
    fn refiner_forgets_old_audio() {
        let mut r = Refiner::new(1000);
        r.push(&vec![0.1; 10_000]);
        assert!(r.onset(1).is_none());
    }
}
