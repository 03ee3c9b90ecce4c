//! The detector: peaks on both envelopes, matched within a tolerance, into the three event kinds.
//!
//! Frames arrive in order, each once, with its final predicted value and its observed values.
//! A frame's peak status is decided when the next frame arrives (one frame of lookahead). Then:
//! - an audio peak with an unmatched visual peak within `tolerance_frames` already known becomes
//!   an **impact** at once; otherwise it waits until no visual peak can still come within the
//!   tolerance, and becomes an **unseen_sound**;
//! - a visual peak likewise becomes an impact with an audio peak within tolerance, or, when none
//!   comes and it is tall enough (`silent_threshold`), a **silent_impact**.
//!
//! A matched pair whose sound arrived gradually (its attack, [`FrameValues::attack`], below
//! `audio_attack`: a bark or a syllable on a moving head, not a strike) is reported as an
//! unseen_sound instead, and its visual peak, having been heard, as nothing.
//!
//! Every frame is seen once, so every peak is reported once whatever the model's hop: the
//! exactly-once rule of DESIGN.md holds by construction. Matching is one-to-one and greedy in time.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Detector thresholds (config table `[detector]`). Every default is documented in
/// `impactd.example.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectorConfig {
    /// Audio and visual peaks at most this many 12-fps frames apart are one impact.
    pub tolerance_frames: u32,
    /// A visual peak needs a predicted value at least this high (0..1).
    pub visual_threshold: f32,
    /// ... and must rise at least this much above the lowest predicted value in the
    /// `prominence_frames` frames before it.
    pub visual_prominence: f32,
    /// How far back (frames) the visual prominence and audio background look.
    pub prominence_frames: u32,
    /// A visual peak with no sound is reported as silent_impact only from this height (0..1).
    pub silent_threshold: f32,
    /// An audio peak must be louder than this (dBFS of the smoothed |signal|).
    pub audio_floor_dbfs: f32,
    /// ... and at least this many times the background (the median of the `prominence_frames`
    /// frames before it).
    pub audio_ratio: f32,
    /// An audio peak makes an impact only when its frame's attack ([`FrameValues::attack`]: the
    /// share of the sound's rise that came within 20 ms) reaches this; a sound that arrived more
    /// gradually, with a visual peak within tolerance, is reported as unseen_sound and the visual
    /// peak as nothing. Barks, cries and speech on a moving head swell over tens of
    /// milliseconds; a strike jumps. 0 turns the test off.
    pub audio_attack: f32,
    /// Report sounds with no visible cause.
    pub report_unseen_sound: bool,
    /// Report visible impacts that made no sound.
    pub report_silent_impact: bool,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            tolerance_frames: 1,
            visual_threshold: 0.5,
            visual_prominence: 0.2,
            prominence_frames: 12,
            silent_threshold: 0.8,
            audio_floor_dbfs: -50.0,
            audio_ratio: 1.5,
            audio_attack: DEFAULT_AUDIO_ATTACK,
            report_unseen_sound: true,
            report_silent_impact: true,
        }
    }
}

impl DetectorConfig {
    /// Checks ranges; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        let unit = |name: &str, v: f32| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(format!("detector.{name} = {v} must be in [0, 1]"))
            }
        };
        unit("visual_threshold", self.visual_threshold)?;
        unit("visual_prominence", self.visual_prominence)?;
        unit("silent_threshold", self.silent_threshold)?;
        if self.tolerance_frames > 12 {
            return Err(format!(
                "detector.tolerance_frames = {} is more than a second (12 frames)",
                self.tolerance_frames
            ));
        }
        if self.prominence_frames == 0 || self.prominence_frames > 120 {
            return Err(format!(
                "detector.prominence_frames = {} must be in 1..=120",
                self.prominence_frames
            ));
        }
        if !(self.audio_floor_dbfs.is_finite()
            && self.audio_floor_dbfs < 0.0
            && self.audio_floor_dbfs >= -140.0)
        {
            return Err(format!(
                "detector.audio_floor_dbfs = {} must be in [-140, 0)",
                self.audio_floor_dbfs
            ));
        }
        if !(self.audio_ratio.is_finite() && self.audio_ratio >= 1.0) {
            return Err(format!(
                "detector.audio_ratio = {} must be at least 1",
                self.audio_ratio
            ));
        }
        if !(0.0..=1.0).contains(&self.audio_attack) {
            return Err(format!(
                "detector.audio_attack = {} must be in [0, 1] (a share of the sound's rise; 0: off)",
                self.audio_attack
            ));
        }
        Ok(())
    }
}

/// The default `audio_attack`: 60 % of an impact's sound's rise must come within 20 ms. The
/// smallest value on the grid 0.5, 0.6, 0.67, 0.75 at which the training recipe, cross-validated
/// on real footage without impacts, stays under 5 false impacts per minute at the top of its
/// 95 % interval: 2.9 (1.7-4.6) instead of 5.8, with every one of 93 real hits still found; on the
/// synthetic test set it costs 0.005 event F1 (models/train/README.md, "The attack test").
pub const DEFAULT_AUDIO_ATTACK: f32 = 0.6;

/// One grid frame as the detector sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameValues {
    pub index: u64,
    /// Predicted envelope value (0..1), final.
    pub predicted: f32,
    /// Observed envelope, min-max scaled over the predicting window (0..1).
    pub observed: f32,
    /// Observed smoothed |signal| before scaling.
    pub observed_raw: f32,
    /// How suddenly the sound peaking in this frame arrived, 0..1: the share of its rise that
    /// came within one 20-ms step (the engine's `Refiner::attack`). 1 where nothing rises.
    pub attack: f32,
}

/// The three event kinds of DESIGN.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Impact,
    UnseenSound,
    SilentImpact,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Impact => "impact",
            Kind::UnseenSound => "unseen_sound",
            Kind::SilentImpact => "silent_impact",
        }
    }
}

/// A decision of the detector, before timing refinement and numbering.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub kind: Kind,
    /// The event's frame: the audio peak's for impact and unseen_sound, the visual peak's for
    /// silent_impact.
    pub frame: u64,
    /// The visual peak matched (impact, silent_impact).
    pub visual_frame: Option<u64>,
    /// The audio peak matched (impact, unseen_sound).
    pub audio_frame: Option<u64>,
    /// Predicted value at the visual peak (or at `frame` without one).
    pub predicted: f32,
    /// Observed (scaled) value at the audio peak (or at `frame` without one).
    pub observed: f32,
    pub observed_raw: f32,
    /// The audio peak's attack (impact, unseen_sound).
    pub attack: Option<f32>,
    pub confidence: f32,
}

#[derive(Debug, Clone, Copy)]
struct Peak {
    frame: u64,
    /// Visual: predicted height. Audio: strength 1 - background / peak.
    strength: f32,
    values: FrameValues,
}

/// The streaming detector.
pub struct Detector {
    cfg: DetectorConfig,
    floor: f32,
    /// Recent frames, newest last; enough for the prominence look-back plus one.
    history: VecDeque<FrameValues>,
    audio_pending: VecDeque<Peak>,
    visual_pending: VecDeque<Peak>,
    /// Visual peaks already known and unmatched, kept for audio peaks arriving within tolerance.
    scratch: Vec<f32>,
    finished: bool,
    /// The newest frame, when it was judged early by [`Detector::peek`], and the prediction of
    /// the frame after it that was used.
    judged_early: Option<(u64, f32)>,
}

impl Detector {
    pub fn new(cfg: DetectorConfig) -> Detector {
        let floor = 10f32.powf(cfg.audio_floor_dbfs / 20.0);
        Detector {
            cfg,
            floor,
            history: VecDeque::new(),
            audio_pending: VecDeque::new(),
            visual_pending: VecDeque::new(),
            scratch: Vec::new(),
            finished: false,
            judged_early: None,
        }
    }

    pub fn config(&self) -> &DetectorConfig {
        &self.cfg
    }

    /// Adds the next frame; appends the decisions it allows.
    pub fn push(&mut self, f: FrameValues, out: &mut Vec<Detection>) {
        debug_assert!(
            self.history.back().is_none_or(|b| b.index + 1 == f.index),
            "frames must be consecutive"
        );
        self.history.push_back(f);
        let keep = self.cfg.prominence_frames as usize + 3;
        while self.history.len() > keep {
            self.history.pop_front();
        }
        // The frame before the newest can now be judged (unless peek already did).
        let early = self.judged_early.take().filter(|(k, _)| *k + 1 == f.index);
        if let Some((_, predicted)) = early {
            debug_assert_eq!(predicted, f.predicted, "a peeked prediction is final");
        } else if self.history.len() >= 2 {
            let c = self.history.len() - 2;
            self.judge(c, Some(f), out);
        }
        let latest = f.index.saturating_sub(1);
        self.expire(latest, out);
    }

    /// The next frame's final prediction, known before its audio (the model runs on video,
    /// which is ahead of the audio envelope): when the newest frame cannot be an audio peak
    /// whatever the next frame's sound (it is not above its left neighbour, the floor or the
    /// background), its visual side is all that is left to judge, and the next frame's
    /// prediction decides it. It is judged now, and the decisions it allows are appended: the
    /// same decisions as [`Detector::push`] of that frame would make, one frame of audio
    /// sooner (an impact whose visual peak trails its sound by a frame). Repeated or
    /// out-of-order calls are ignored.
    pub fn peek(&mut self, index: u64, predicted: f32, out: &mut Vec<Detection>) {
        let Some(&newest) = self.history.back() else {
            return;
        };
        if self.finished
            || newest.index + 1 != index
            || self.judged_early.is_some_and(|(k, _)| k == newest.index)
        {
            return;
        }
        let c = self.history.len() - 1;
        if c > 0 && newest.index > 0 && self.audio_peak(c, f32::NEG_INFINITY).is_some() {
            return; // an audio peak if the next frame is quieter: wait for its sound
        }
        let next = FrameValues {
            index,
            predicted,
            observed: 0.0,
            // not an audio peak whatever comes next (checked above)
            observed_raw: f32::INFINITY,
            attack: 1.0,
        };
        self.judge(c, Some(next), out);
        self.judged_early = Some((newest.index, predicted));
        self.expire(newest.index, out);
    }

    /// Ends the stream: the last frame is judged with nothing after it, all pending peaks resolved.
    pub fn finish(&mut self, out: &mut Vec<Detection>) {
        if self.finished {
            return;
        }
        self.finished = true;
        let early = self.judged_early.map(|(k, _)| k);
        let newest = self.history.back().map(|n| n.index);
        if newest.is_some() && newest != early {
            let c = self.history.len() - 1;
            self.judge(c, None, out);
        }
        self.expire(u64::MAX - 64, out);
    }

    /// Peak tests for history[c]; `next` is the frame after it (None at the end).
    fn judge(&mut self, c: usize, next: Option<FrameValues>, out: &mut Vec<Detection>) {
        let cur = self.history[c];
        if cur.index == 0 || c == 0 {
            return; // no left neighbour: a frame 0 peak cannot be told from a stream that starts mid-sound
        }
        let prev = self.history[c - 1];
        let back = c.saturating_sub(self.cfg.prominence_frames as usize);
        let right_raw = next.map_or(f32::NEG_INFINITY, |n| n.observed_raw);
        let audio = self.audio_peak(c, right_raw);
        let right_p = next.map_or(f32::NEG_INFINITY, |n| n.predicted);
        let visual = if cur.predicted > prev.predicted
            && cur.predicted >= right_p
            && cur.predicted >= self.cfg.visual_threshold
        {
            let low = self
                .history
                .range(back..c)
                .map(|h| h.predicted)
                .fold(f32::INFINITY, f32::min);
            (cur.predicted - low >= self.cfg.visual_prominence).then_some(Peak {
                frame: cur.index,
                strength: cur.predicted,
                values: cur,
            })
        } else {
            None
        };
        let tol = self.cfg.tolerance_frames as u64;
        match (audio, visual) {
            (Some(a), Some(v)) => self.pair(a, v, out),
            (Some(a), None) => match take_nearest(&mut self.visual_pending, a.frame, tol) {
                Some(v) => self.pair(a, v, out),
                None => self.audio_pending.push_back(a),
            },
            (None, Some(v)) => match take_nearest(&mut self.audio_pending, v.frame, tol) {
                Some(a) => self.pair(a, v, out),
                None => self.visual_pending.push_back(v),
            },
            (None, None) => {}
        }
    }

    /// Audio peak test for history[c] (c > 0) against its right neighbour's `observed_raw`: a
    /// local maximum, above the floor and `audio_ratio` times the background (the median of
    /// the `prominence_frames` frames before it).
    fn audio_peak(&mut self, c: usize, right_raw: f32) -> Option<Peak> {
        let cur = self.history[c];
        let prev = self.history[c - 1];
        if !(cur.observed_raw > prev.observed_raw
            && cur.observed_raw >= right_raw
            && cur.observed_raw >= self.floor)
        {
            return None;
        }
        let back = c.saturating_sub(self.cfg.prominence_frames as usize);
        self.scratch.clear();
        self.scratch
            .extend(self.history.range(back..c).map(|h| h.observed_raw));
        let background = median(&mut self.scratch);
        (cur.observed_raw >= self.cfg.audio_ratio * background).then(|| Peak {
            frame: cur.index,
            strength: (1.0 - background / cur.observed_raw).clamp(0.0, 1.0),
            values: cur,
        })
    }

    /// Resolves pending peaks that no future peak can match, `latest` being the newest judged
    /// frame: a peak at `p` can only match one at most `tol` frames away, so once `p + tol` is
    /// judged it is decided (no frame more of waiting).
    fn expire(&mut self, latest: u64, out: &mut Vec<Detection>) {
        let tol = self.cfg.tolerance_frames as u64;
        // Emit in frame order across both queues.
        loop {
            let a = self
                .audio_pending
                .front()
                .filter(|p| p.frame + tol <= latest || latest == u64::MAX - 64)
                .copied();
            let v = self
                .visual_pending
                .front()
                .filter(|p| p.frame + tol <= latest || latest == u64::MAX - 64)
                .copied();
            match (a, v) {
                (Some(a), Some(v)) if v.frame < a.frame => {
                    self.visual_pending.pop_front();
                    self.silent(v, out);
                }
                (Some(a), _) => {
                    self.audio_pending.pop_front();
                    self.unseen(a, out);
                }
                (None, Some(v)) => {
                    self.visual_pending.pop_front();
                    self.silent(v, out);
                }
                (None, None) => break,
            }
        }
    }

    fn unseen(&self, a: Peak, out: &mut Vec<Detection>) {
        if self.cfg.report_unseen_sound {
            out.push(Detection {
                kind: Kind::UnseenSound,
                frame: a.frame,
                visual_frame: None,
                audio_frame: Some(a.frame),
                predicted: a.values.predicted,
                observed: a.values.observed,
                observed_raw: a.values.observed_raw,
                attack: Some(a.values.attack),
                confidence: (a.strength * (1.0 - a.values.predicted)).clamp(0.0, 1.0),
            });
        }
    }

    /// An audio and a visual peak within tolerance: an impact, or, when the sound arrived more
    /// gradually than `audio_attack`, an unseen_sound (the visual peak was heard, so it is no
    /// silent_impact either).
    fn pair(&self, a: Peak, v: Peak, out: &mut Vec<Detection>) {
        if a.values.attack >= self.cfg.audio_attack {
            out.push(self.impact(a, v));
        } else {
            self.unseen(a, out);
        }
    }

    fn silent(&self, v: Peak, out: &mut Vec<Detection>) {
        if self.cfg.report_silent_impact && v.strength >= self.cfg.silent_threshold {
            out.push(Detection {
                kind: Kind::SilentImpact,
                frame: v.frame,
                visual_frame: Some(v.frame),
                audio_frame: None,
                predicted: v.values.predicted,
                observed: v.values.observed,
                observed_raw: v.values.observed_raw,
                attack: None,
                confidence: (v.strength * (1.0 - v.values.observed)).clamp(0.0, 1.0),
            });
        }
    }

    fn impact(&self, a: Peak, v: Peak) -> Detection {
        Detection {
            kind: Kind::Impact,
            frame: a.frame,
            visual_frame: Some(v.frame),
            audio_frame: Some(a.frame),
            predicted: v.values.predicted,
            observed: a.values.observed,
            observed_raw: a.values.observed_raw,
            attack: Some(a.values.attack),
            confidence: (v.strength * a.strength).sqrt().clamp(0.0, 1.0),
        }
    }
}

/// Removes and returns the pending peak nearest to `frame` (all pending peaks are at or before
/// it) within `tol` frames; ties go to the stronger peak.
fn take_nearest(pending: &mut VecDeque<Peak>, frame: u64, tol: u64) -> Option<Peak> {
    let best = pending
        .iter()
        .enumerate()
        .filter(|(_, p)| frame - p.frame <= tol)
        .min_by(|(_, x), (_, y)| {
            (frame - x.frame)
                .cmp(&(frame - y.frame))
                .then(y.strength.total_cmp(&x.strength))
        })
        .map(|(i, _)| i)?;
    pending.remove(best)
}

/// Median of a small slice (reorders it); 0 for an empty one.
fn median(xs: &mut [f32]) -> f32 {
    if xs.is_empty() {
        return 0.0;
    }
    let mid = xs.len() / 2;
    let (_, m, _) = xs.select_nth_unstable_by(mid, f32::total_cmp);
    *m
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Frames from predicted and raw tracks. The attack stands in as the share of the rise
    /// from the quietest of the three frames before that came in the last frame (the engine
    /// measures it on the samples).
    fn frames(pred: &[f32], raw: &[f32]) -> Vec<FrameValues> {
        pred.iter()
            .zip(raw)
            .enumerate()
            .map(|(i, (&p, &r))| FrameValues {
                index: i as u64,
                predicted: p,
                observed: r * 10.0,
                observed_raw: r,
                attack: {
                    let base = raw[i.saturating_sub(3)..=i]
                        .iter()
                        .cloned()
                        .fold(r, f32::min);
                    if i > 0 && r > raw[i - 1] && r > base {
                        (r - raw[i - 1]) / (r - base)
                    } else {
                        1.0
                    }
                },
            })
            .collect()
    }

    fn run(cfg: DetectorConfig, fs: &[FrameValues]) -> Vec<Detection> {
        let mut d = Detector::new(cfg);
        let mut out = vec![];
        for f in fs {
            d.push(*f, &mut out);
        }
        d.finish(&mut out);
        out
    }

    fn track(len: usize, peaks: &[(usize, f32)], base: f32) -> Vec<f32> {
        let mut v = vec![base; len];
        for &(i, h) in peaks {
            v[i] = h;
        }
        v
    }

    #[test]
    fn matched_peaks_make_one_impact_each() {
        let pred = track(40, &[(10, 0.9), (25, 0.8)], 0.05);
        let raw = track(40, &[(11, 0.1), (25, 0.2)], 0.001);
        let ev = run(DetectorConfig::default(), &frames(&pred, &raw));
        let kinds: Vec<(Kind, u64)> = ev.iter().map(|e| (e.kind, e.frame)).collect();
        assert_eq!(kinds, vec![(Kind::Impact, 11), (Kind::Impact, 25)]);
        assert_eq!(ev[0].visual_frame, Some(10));
        assert!(ev[0].confidence > 0.9, "{}", ev[0].confidence);
    }

    #[test]
    fn unmatched_peaks_become_unseen_and_silent() {
        let pred = track(40, &[(5, 0.95), (30, 0.6)], 0.05);
        let raw = track(40, &[(15, 0.1)], 0.001);
        let ev = run(DetectorConfig::default(), &frames(&pred, &raw));
        let kinds: Vec<(Kind, u64)> = ev.iter().map(|e| (e.kind, e.frame)).collect();
        // frame 30's visual peak (0.6) is below the silent threshold (0.8): not reported
        assert_eq!(
            kinds,
            vec![(Kind::SilentImpact, 5), (Kind::UnseenSound, 15)]
        );
    }

    #[test]
    fn outside_tolerance_is_not_matched() {
        let pred = track(30, &[(10, 0.9)], 0.0);
        let raw = track(30, &[(12, 0.1)], 0.001);
        let ev = run(DetectorConfig::default(), &frames(&pred, &raw));
        assert_eq!(
            ev.iter().map(|e| e.kind).collect::<Vec<_>>(),
            vec![Kind::SilentImpact, Kind::UnseenSound]
        );
        let ev = run(
            DetectorConfig {
                tolerance_frames: 2,
                ..Default::default()
            },
            &frames(&pred, &raw),
        );
        assert_eq!(
            ev.iter().map(|e| e.kind).collect::<Vec<_>>(),
            vec![Kind::Impact]
        );
    }

    #[test]
    fn a_sound_that_swells_is_an_unseen_sound_under_the_attack_test() {
        // frame 10: seen (0.9, tall enough for a silent impact) and heard, but its sound swells
        // over three frames (attack 0.03 / 0.099 = 0.30); frame 25: seen and struck (attack 1)
        let pred = track(40, &[(10, 0.9), (25, 0.9)], 0.05);
        let raw = track(
            40,
            &[(8, 0.04), (9, 0.07), (10, 0.1), (11, 0.06), (25, 0.1)],
            0.001,
        );
        let fs = frames(&pred, &raw);
        let kinds = |cfg| {
            run(cfg, &fs)
                .iter()
                .map(|e| (e.kind, e.frame))
                .collect::<Vec<_>>()
        };
        let attack = |a| DetectorConfig {
            audio_attack: a,
            ..Default::default()
        };
        // off: both are impacts
        assert_eq!(
            kinds(attack(0.0)),
            vec![(Kind::Impact, 10), (Kind::Impact, 25)]
        );
        // at 0.5 the swell is a sound without a visible impact, and its visual peak was heard,
        // so it is no silent_impact either
        assert_eq!(
            kinds(attack(0.5)),
            vec![(Kind::UnseenSound, 10), (Kind::Impact, 25)]
        );
        assert_eq!(
            kinds(attack(0.25)),
            vec![(Kind::Impact, 10), (Kind::Impact, 25)]
        );
        // the events carry the attack that decided them
        let ev = run(attack(0.5), &fs);
        assert!((ev[0].attack.unwrap() - 0.30).abs() < 0.01, "{ev:?}");
        assert_eq!(ev[1].attack, Some(1.0));
        let quiet = DetectorConfig {
            report_unseen_sound: false,
            ..attack(0.5)
        };
        assert_eq!(kinds(quiet), vec![(Kind::Impact, 25)]);
    }

    #[test]
    fn quiet_sounds_and_steady_noise_are_not_peaks() {
        // below -50 dBFS
        let raw = track(30, &[(12, 0.002)], 0.0001);
        assert!(run(DetectorConfig::default(), &frames(&[0.0; 30], &raw)).is_empty());
        // a loud but steady hum with a 1.2x bump: under the 1.5x background ratio
        let raw = track(30, &[(12, 0.12)], 0.1);
        assert!(run(DetectorConfig::default(), &frames(&[0.0; 30], &raw)).is_empty());
    }

    #[test]
    fn silence_and_stillness_give_nothing() {
        assert!(
            run(
                DetectorConfig::default(),
                &frames(&vec![0.0; 100], &vec![0.0; 100])
            )
            .is_empty()
        );
    }

    #[test]
    fn peak_on_last_frame_is_judged_at_finish() {
        let pred = track(10, &[(9, 0.9)], 0.0);
        let raw = track(10, &[(9, 0.1)], 0.001);
        let ev = run(DetectorConfig::default(), &frames(&pred, &raw));
        assert_eq!(ev.len(), 1);
        assert_eq!((ev[0].kind, ev[0].frame), (Kind::Impact, 9));
    }

    /// A 30-frame track with one visual peak (0.9) and one audio peak (0.1) on a quiet floor,
    /// pushed into a default detector up to frame `upto`: (detector, decisions so far, frames).
    fn pushed_upto(
        visual: usize,
        audio: usize,
        upto: usize,
    ) -> (Detector, Vec<Detection>, Vec<FrameValues>) {
        let fs = frames(
            &track(30, &[(visual, 0.9)], 0.0),
            &track(30, &[(audio, 0.1)], 0.001),
        );
        let mut d = Detector::new(DetectorConfig::default());
        let mut out = vec![];
        for f in &fs[..=upto] {
            d.push(*f, &mut out);
        }
        (d, out, fs)
    }

    #[test]
    fn impact_is_reported_without_waiting_when_both_peaks_are_known() {
        // visual at 10, audio at 11: the impact comes out when frame 12 arrives
        let (_, out, _) = pushed_upto(10, 11, 12);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].kind, Kind::Impact);
    }

    #[test]
    fn a_lone_peak_is_decided_once_the_tolerance_is_judged() {
        // audio at 10, nothing seen: with tolerance 1 only a visual peak at 11 could still
        // match; frame 11 is judged when 12 arrives, so unseen_sound comes out then, not later
        let pred = track(30, &[], 0.0);
        let raw = track(30, &[(10, 0.1)], 0.001);
        let fs = frames(&pred, &raw);
        let mut d = Detector::new(DetectorConfig::default());
        let mut out = vec![];
        for f in &fs[..=11] {
            d.push(*f, &mut out);
        }
        assert!(
            out.is_empty(),
            "a visual peak at 11 could still match: {out:?}"
        );
        d.push(fs[12], &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].kind, out[0].frame), (Kind::UnseenSound, 10));
    }

    #[test]
    fn config_validation_names_the_key() {
        let e = DetectorConfig {
            visual_threshold: 1.5,
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert!(e.contains("detector.visual_threshold"), "{e}");
        let e = DetectorConfig {
            audio_ratio: 0.5,
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert!(e.contains("detector.audio_ratio"), "{e}");
        for bad in [-0.1, 1.5, f32::NAN] {
            let e = DetectorConfig {
                audio_attack: bad,
                ..Default::default()
            }
            .validate()
            .unwrap_err();
            assert!(e.contains("detector.audio_attack"), "{e}");
        }
        DetectorConfig::default().validate().unwrap();
    }

    proptest! {
        /// Every audio peak is reported exactly once (impact or unseen_sound), every visual peak
        /// at most once, and events come out in frame order within each kind.
        #[test]
        fn each_peak_reported_once(
            pred in prop::collection::vec(0.0f32..1.0, 2..200),
            raw_seed in prop::collection::vec(0.0f32..0.2, 2..200),
            attack in prop_oneof![Just(0.0f32), 0.0f32..=1.0],
        ) {
            let n = pred.len().min(raw_seed.len());
            let fs = frames(&pred[..n], &raw_seed[..n]);
            let cfg = DetectorConfig { audio_attack: attack, ..DetectorConfig::default() };
            let ev = run(cfg, &fs);
            let mut audio: Vec<u64> = ev.iter().filter_map(|e| e.audio_frame).collect();
            let mut visual: Vec<u64> = ev.iter().filter_map(|e| e.visual_frame).collect();
            let (la, lv) = (audio.len(), visual.len());
            audio.sort(); audio.dedup();
            visual.sort(); visual.dedup();
            prop_assert_eq!(audio.len(), la);
            prop_assert_eq!(visual.len(), lv);
            for e in &ev {
                if let (Some(a), Some(v)) = (e.audio_frame, e.visual_frame) {
                    prop_assert!(a.abs_diff(v) <= 1);
                }
                prop_assert!((0.0..=1.0).contains(&e.confidence));
            }
        }

        /// Peeking at the next frame's prediction (as the engine does while that frame's audio
        /// is not in yet) changes when decisions come out, never which: the same detections
        /// in the same order, at any pattern of peeks, with spiky tracks so that many peaks
        /// and near-misses occur.
        #[test]
        fn peeking_changes_nothing_but_timing(
            pred in prop::collection::vec(prop_oneof![Just(0.0f32), Just(0.9f32), 0.0f32..1.0], 3..120),
            raw in prop::collection::vec(prop_oneof![Just(0.001f32), Just(0.1f32), 0.0f32..0.2], 3..120),
            peeks in prop::collection::vec(0u8..3, 120),
            tolerance in 0u32..3,
            attack in prop_oneof![Just(0.0f32), 0.0f32..=1.0],
        ) {
            let n = pred.len().min(raw.len());
            let fs = frames(&pred[..n], &raw[..n]);
            let cfg = DetectorConfig {
                tolerance_frames: tolerance,
                audio_attack: attack,
                ..DetectorConfig::default()
            };
            let plain = run(cfg.clone(), &fs);
            let mut d = Detector::new(cfg);
            let mut out = vec![];
            for (i, f) in fs.iter().enumerate() {
                d.push(*f, &mut out);
                if let Some(next) = fs.get(i + 1) {
                    for _ in 0..peeks[i] {
                        d.peek(next.index, next.predicted, &mut out);
                    }
                }
            }
            d.finish(&mut out);
            prop_assert_eq!(plain, out);
        }
    }

    #[test]
    fn peeking_reports_an_impact_whose_picture_trails_its_sound_a_frame_sooner() {
        // audio peak at 10, visual peak at 11: frame 12's prediction decides it, before its audio
        let (mut d, mut out, fs) = pushed_upto(11, 10, 11);
        assert!(out.is_empty());
        d.peek(12, fs[12].predicted, &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(
            (out[0].kind, out[0].audio_frame, out[0].visual_frame),
            (Kind::Impact, Some(10), Some(11))
        );
        d.push(fs[12], &mut out);
        d.peek(12, fs[12].predicted, &mut out); // late and repeated peeks are ignored
        d.finish(&mut out);
        assert_eq!(out.len(), 1, "reported once: {out:?}");
    }

    #[test]
    fn a_frame_that_may_still_be_an_audio_peak_waits_for_its_sound() {
        // frame 11 rises in sound: whether it is an audio peak depends on frame 12's sound
        let (mut d, mut out, fs) = pushed_upto(11, 11, 11);
        d.peek(12, fs[12].predicted, &mut out);
        assert!(out.is_empty(), "{out:?}");
        d.push(fs[12], &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].kind, Kind::Impact);
    }
}
