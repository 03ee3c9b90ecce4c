//! Quality metrics of DESIGN.md, "Measuring quality".
//!
//! All functions are pure. Conventions shared by every function here:
//! - Times are seconds (`f64`) from the clip's start; frame `k` of an envelope sampled at `fps`
//!   is at `k / fps` s (12 fps in this project).
//! - A prediction and a truth time *match* when `|dt| <= tol + MATCH_EPS_S`; the tiny
//!   [`MATCH_EPS_S`] keeps a pair that sits exactly on the tolerance (0.275 - 0.15 is
//!   0.12500000000000003 in `f64`) from being dropped by rounding. A NaN time never matches.
//! - Matching is one-to-one: an annotated hit confirms at most one prediction and vice versa.
//! - "Undefined" numbers are `None` (serialised as `null`, shown as `-` in tables), never NaN.

use serde::{Deserialize, Serialize};

/// Matching tolerance between a predicted time and an annotated hit, in seconds.
pub const HIT_TOLERANCE_S: f64 = 0.125;

/// Slack added to every tolerance comparison, in seconds, so that pairs exactly `tol` apart
/// still match despite floating-point rounding. Far below any meaningful timing difference.
pub const MATCH_EPS_S: f64 = 1e-9;

/// Envelope height at or above which a local maximum of the predicted envelope counts as a
/// predicted hit for the seed score (the seed's hand-scoring rule).
pub const SEED_PEAK_THRESHOLD: f32 = 0.5;

/// True when `a` and `b` (seconds) are within `tol` of each other (plus [`MATCH_EPS_S`]).
fn within(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol + MATCH_EPS_S
}

/// Indices of the local maxima ("peaks") of an envelope, in increasing order.
///
/// - `values`: one value per frame (any unit; only the order of values matters).
/// - A run of equal values `values[s..=e]` (length 1 for an ordinary sample) is a peak when the
///   value just before it is strictly lower (or there is none: the run starts the slice) **and**
///   the value just after it is strictly lower (or there is none: the run ends the slice), and
///   the run has at least one neighbour. The peak is reported at the run's first index `s`.
///   So a single sample is a peak when it is strictly greater than its left neighbour and at
///   least its right neighbour, provided a plateau it starts does eventually fall (a rising
///   staircase `0, 1, 1, 2` has its only peak at the `2`); the first and last frames are peaks
///   when they are greater than their single neighbour.
/// - Edge cases: an empty slice, a single value, or a constant slice have no peaks. A NaN is
///   never a peak and, being incomparable, never counts as "lower" next to another value.
pub fn local_maxima(values: &[f32]) -> Vec<usize> {
    let n = values.len();
    let mut peaks = Vec::new();
    let mut s = 0;
    while s < n {
        let v = values[s];
        // Extent of the run of values equal to `v` (a NaN run has length 1: NaN != NaN).
        let mut e = s;
        while e + 1 < n && values[e + 1] == v {
            e += 1;
        }
        let left_lower = s == 0 || values[s - 1] < v;
        let right_lower = e + 1 == n || values[e + 1] < v;
        let has_neighbour = s > 0 || e + 1 < n;
        if !v.is_nan() && left_lower && right_lower && has_neighbour {
            peaks.push(s);
        }
        s = e + 1;
    }
    peaks
}

/// One-to-one greedy matching of predicted times to true times.
///
/// - `predicted`, `truth`: times in seconds, in any order; `tol`: tolerance in seconds.
/// - Repeatedly takes the globally closest pair `(p, t)` whose members are both still unmatched
///   and that satisfies `|predicted[p] - truth[t]| <= tol` (plus [`MATCH_EPS_S`]). Ties in
///   distance go to the earlier prediction index, then to the earlier truth index.
/// - Returns the matched `(prediction index, truth index)` pairs, sorted by prediction index.
/// - Edge cases: either side empty, or a negative or NaN `tol`, gives no pairs; NaN times never
///   match. Cost is O(P·T·log(P·T)), fine for per-clip use.
pub fn greedy_match(predicted: &[f64], truth: &[f64], tol: f64) -> Vec<(usize, usize)> {
    let mut candidates: Vec<(f64, usize, usize)> = Vec::new();
    for (p, &tp) in predicted.iter().enumerate() {
        for (t, &tt) in truth.iter().enumerate() {
            if within(tp, tt, tol) {
                candidates.push(((tp - tt).abs(), p, t));
            }
        }
    }
    candidates.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut pred_used = vec![false; predicted.len()];
    let mut truth_used = vec![false; truth.len()];
    let mut pairs = Vec::new();
    for (_, p, t) in candidates {
        if !pred_used[p] && !truth_used[t] {
            pred_used[p] = true;
            truth_used[t] = true;
            pairs.push((p, t));
        }
    }
    pairs.sort_unstable();
    pairs
}

/// Precision, recall and F1 with the counts behind them.
///
/// Empty-case convention (one rule covers all cases): a ratio whose denominator is zero is
/// vacuously 1 — precision is 1 when nothing was predicted (no false alarm was made), recall is
/// 1 when there was nothing to find (nothing was missed). F1 is `2·tp / (2·tp + fp + fn)`, the
/// harmonic mean of the two, and 1 when all three counts are 0. Hence:
///
/// | case | precision | recall | F1 |
/// |---|---|---|---|
/// | no truth, no predictions | 1 | 1 | 1 |
/// | no truth, some predictions | 0 | 1 | 0 |
/// | some truth, no predictions | 1 | 0 | 0 |
///
/// So a quiet clip with false alarms scores F1 = 0, as does a clip whose hits were all missed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Prf {
    /// Matched predictions (true positives).
    pub tp: usize,
    /// Unmatched predictions (false positives).
    pub fp: usize,
    /// Unmatched truths (false negatives).
    #[serde(rename = "fn")]
    pub fn_: usize,
    /// `tp / (tp + fp)`, 1 when nothing was predicted.
    pub precision: f64,
    /// `tp / (tp + fn)`, 1 when there was nothing to find.
    pub recall: f64,
    /// `2·tp / (2·tp + fp + fn)`, 1 when all counts are 0.
    pub f1: f64,
}

impl Prf {
    /// Builds the ratios from counts, with the empty-case convention documented on [`Prf`].
    /// Used to pool clips: sum the counts, then call this.
    pub fn from_counts(tp: usize, fp: usize, fn_: usize) -> Prf {
        let ratio = |num: usize, den: usize| {
            if den == 0 {
                1.0
            } else {
                num as f64 / den as f64
            }
        };
        Prf {
            tp,
            fp,
            fn_,
            precision: ratio(tp, tp + fp),
            recall: ratio(tp, tp + fn_),
            f1: ratio(2 * tp, 2 * tp + fp + fn_),
        }
    }
}

/// Precision / recall / F1 of `predicted` times against `truth` times (seconds), matched one to
/// one by [`greedy_match`] within `tol` seconds. `tp + fp == predicted.len()` and
/// `tp + fn == truth.len()`. Empty cases: see [`Prf`].
pub fn prf(predicted: &[f64], truth: &[f64], tol: f64) -> Prf {
    let tp = greedy_match(predicted, truth, tol).len();
    Prf::from_counts(tp, predicted.len() - tp, truth.len() - tp)
}

/// Absolute timing errors `|predicted - truth|`, in seconds, of the pairs [`greedy_match`]
/// matches within `tol`, in increasing prediction index. Empty when nothing matches.
pub fn timing_errors(predicted: &[f64], truth: &[f64], tol: f64) -> Vec<f64> {
    greedy_match(predicted, truth, tol)
        .into_iter()
        .map(|(p, t)| (predicted[p] - truth[t]).abs())
        .collect()
}

/// Median of `xs`: the middle value, or the mean of the two middle values for an even count.
/// NaN values are ignored; `None` when no non-NaN value is left (including an empty slice).
pub fn median(xs: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    })
}

/// One clip's scored detections and annotated hits, for [`average_precision`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScoredClip {
    /// Detected peaks as `(time in seconds, score)`; a higher score means more confident.
    pub peaks: Vec<(f64, f64)>,
    /// Annotated hit times in seconds.
    pub hits: Vec<f64>,
}

/// Non-interpolated average precision of peaks pooled over clips ("visual AP").
///
/// - All peaks of all clips are ranked by score, highest first; equal scores are ordered by clip
///   index, then by time (earlier first). A NaN score ranks after every number.
/// - Walking down the ranking, a peak is a true positive when its **own** clip has a hit not yet
///   matched within `tol` seconds; it then takes the nearest such hit (ties: the earlier hit in
///   the clip's `hits` order). Otherwise it is a false positive.
/// - AP = (sum over true positives of the precision at their rank) / (total number of hits).
///   Hits never matched count in the denominator, so missing hits lowers AP.
/// - Returns `None` when there are no hits at all (AP is undefined); with hits but no peaks it
///   is `Some(0.0)`. The result is in [0, 1].
pub fn average_precision(clips: &[ScoredClip], tol: f64) -> Option<f64> {
    let total_hits: usize = clips.iter().map(|c| c.hits.len()).sum();
    if total_hits == 0 {
        return None;
    }
    // (clip, time, score), ranked.
    let mut ranked: Vec<(usize, f64, f64)> = clips
        .iter()
        .enumerate()
        .flat_map(|(ci, c)| c.peaks.iter().map(move |&(t, s)| (ci, t, s)))
        .collect();
    let key = |s: f64| if s.is_nan() { f64::NEG_INFINITY } else { s };
    ranked.sort_by(|a, b| {
        key(b.2)
            .total_cmp(&key(a.2))
            .then(a.0.cmp(&b.0))
            .then(a.1.total_cmp(&b.1))
    });
    let mut used: Vec<Vec<bool>> = clips.iter().map(|c| vec![false; c.hits.len()]).collect();
    let mut tp = 0usize;
    let mut sum_precision = 0.0;
    for (rank, &(ci, t, _)) in ranked.iter().enumerate() {
        let nearest = clips[ci]
            .hits
            .iter()
            .enumerate()
            .filter(|&(hi, &h)| !used[ci][hi] && within(t, h, tol))
            .min_by(|a, b| {
                (t - a.1)
                    .abs()
                    .total_cmp(&(t - b.1).abs())
                    .then(a.0.cmp(&b.0))
            });
        if let Some((hi, _)) = nearest {
            used[ci][hi] = true;
            tp += 1;
            sum_precision += tp as f64 / (rank + 1) as f64;
        }
    }
    Some(sum_precision / total_hits as f64)
}

/// Pearson correlation coefficient of `a` and `b`, in [-1, 1].
///
/// `None` when the lengths differ, when there are fewer than 2 values, when either side is
/// constant (zero variance: the correlation is undefined), or when a value is not finite. In
/// [`summarize`] such a clip is skipped from the mean envelope r and counted in
/// [`Overall::envelope_r_skipped`].
pub fn pearson(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.len() != b.len() || a.len() < 2 {
        return None;
    }
    if a.iter().chain(b).any(|x| !x.is_finite()) {
        return None;
    }
    // Constancy is tested exactly: a computed mean of equal values may differ from them by an
    // ulp, which would otherwise leave a spurious tiny variance.
    if a.iter().all(|&x| x == a[0]) || b.iter().all(|&x| x == b[0]) {
        return None;
    }
    let n = a.len() as f64;
    let ma = a.iter().sum::<f64>() / n;
    let mb = b.iter().sum::<f64>() / n;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (dx, dy) = (x - ma, y - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    let den = saa.sqrt() * sbb.sqrt();
    if den <= 0.0 || !den.is_finite() {
        return None;
    }
    Some((sab / den).clamp(-1.0, 1.0))
}

/// The seed's per-clip score from the visual F1 (see [`visual_f1`]): +1 when `F1 >= 2/3`,
/// -1 when `F1 < 1/3`, 0 in between. A NaN F1 scores -1.
pub fn seed_score(visual_f1: f64) -> i32 {
    if visual_f1 >= 2.0 / 3.0 {
        1
    } else if visual_f1 >= 1.0 / 3.0 {
        0
    } else {
        -1
    }
}

/// Times in seconds of the local maxima of `env` (see [`local_maxima`]) whose value is at least
/// `min_value`, frame `k` being at `k / fps`.
fn peak_times(env: &[f32], fps: f64, min_value: f32) -> Vec<f64> {
    local_maxima(env)
        .into_iter()
        .filter(|&k| env[k] >= min_value)
        .map(|k| k as f64 / fps)
        .collect()
}

/// All local maxima of `env` as `(time in seconds, height)`, for [`average_precision`].
fn scored_peaks(env: &[f32], fps: f64) -> Vec<(f64, f64)> {
    local_maxima(env)
        .into_iter()
        .map(|k| (k as f64 / fps, f64::from(env[k])))
        .collect()
}

/// Visual F1 of a predicted envelope, the input of [`seed_score`].
///
/// - `predicted_env`: the predicted envelope, one value in [0, 1] per frame; `fps`: its frame
///   rate (frame `k` at `k / fps` s; must be positive and finite, otherwise no peak can match);
///   `hits`: annotated hit times in seconds; `tol`: tolerance in seconds.
/// - The predicted hits are the local maxima ([`local_maxima`]) whose value is
///   `>= SEED_PEAK_THRESHOLD` (0.5); they are scored against `hits` with [`prf`].
/// - Empty cases follow [`Prf`]: no hits and no peaks >= 0.5 gives F1 = 1.
pub fn visual_f1(predicted_env: &[f32], fps: f64, hits: &[f64], tol: f64) -> Prf {
    prf(
        &peak_times(predicted_env, fps, SEED_PEAK_THRESHOLD),
        hits,
        tol,
    )
}

/// Share of `audio_hits` (seconds) confirmed by an `impact` event at `impact_times` (seconds)
/// within `tol`, matched one to one (two hits cannot share one event). In [0, 1];
/// `None` when there are no audio hits.
pub fn confirmed_share(impact_times: &[f64], audio_hits: &[f64], tol: f64) -> Option<f64> {
    if audio_hits.is_empty() {
        return None;
    }
    Some(greedy_match(impact_times, audio_hits, tol).len() as f64 / audio_hits.len() as f64)
}

/// Arithmetic mean, `None` for an empty slice.
fn mean(xs: &[f64]) -> Option<f64> {
    (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}

/// AV discrimination: mean of the `genuine` confirmed shares minus mean of the `mismatched`
/// ones (each a [`confirmed_share`], one per clip). In [-1, 1]; about 0 for an audio-only
/// detector. The two lists are averaged separately, so they need not have the same length, but
/// [`summarize`] passes only clips that have both. `None` when either list is empty.
pub fn av_discrimination(genuine: &[f64], mismatched: &[f64]) -> Option<f64> {
    Some(mean(genuine)? - mean(mismatched)?)
}

/// One annotated clip to evaluate, as [`summarize`] takes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClipInput {
    /// Name shown in the table (e.g. the file stem).
    pub name: String,
    /// Frame rate of `predicted` and `observed_raw` (12 in this project); frame `k` is at
    /// `k / fps` s.
    pub fps: f64,
    /// Predicted envelope, one value in [0, 1] per frame.
    pub predicted: Vec<f32>,
    /// Observed envelope before min-max scaling (`observed_raw` of the envelopes CSV), same
    /// length as `predicted`.
    pub observed_raw: Vec<f32>,
    /// Annotated hit times, seconds.
    pub hits: Vec<f64>,
    /// Times of the `impact` events reported on the genuine clip, seconds.
    pub impact_times: Vec<f64>,
    /// Times of the `impact` events reported when this clip's audio (whose hits are `hits`) is
    /// paired with another clip's video; `None` when that run was not made.
    pub mismatched_impact_times: Option<Vec<f64>>,
}

/// The numbers of one clip. Undefined values are `None`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClipMetrics {
    /// The clip's name.
    pub name: String,
    /// Number of annotated hits.
    pub hits: usize,
    /// Visual AP of this clip alone; `None` without hits.
    pub visual_ap: Option<f64>,
    /// Pearson r of predicted vs observed_raw; `None` when undefined (see [`pearson`]).
    pub envelope_r: Option<f64>,
    /// Visual F1 of predicted peaks >= 0.5 against the hits (see [`visual_f1`]).
    pub visual: Prf,
    /// [`seed_score`] of `visual.f1`: +1, 0 or -1.
    pub seed_score: i32,
    /// `impact` events against the hits.
    pub event: Prf,
    /// Median |t_event - t_hit| of the matched events, seconds; `None` when none matched.
    pub timing_median_s: Option<f64>,
    /// Share of hits confirmed on the genuine clip; `None` without hits.
    pub confirmed_genuine: Option<f64>,
    /// Share of hits confirmed with mismatched video; `None` without hits or without that run.
    pub confirmed_mismatched: Option<f64>,
    /// `confirmed_genuine - confirmed_mismatched` when both are defined.
    pub av_discrimination: Option<f64>,
}

/// The aggregate numbers over all clips.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Overall {
    /// Number of clips.
    pub clips: usize,
    /// Total number of annotated hits.
    pub hits: usize,
    /// Visual AP with peaks pooled over all clips; `None` when no clip has hits.
    pub visual_ap: Option<f64>,
    /// Mean envelope r over the clips where it is defined; `None` when it is defined nowhere.
    pub envelope_r: Option<f64>,
    /// Clips left out of `envelope_r` because their r is undefined.
    pub envelope_r_skipped: usize,
    /// Visual P/R/F1 (peaks >= 0.5) from the tp / fp / fn summed over clips.
    pub visual: Prf,
    /// Mean seed score over all clips, in [-1, 1]; `None` without clips.
    pub seed_score: Option<f64>,
    /// Event precision / recall / F1 from the tp / fp / fn summed over clips.
    pub event: Prf,
    /// Median |t_event - t_hit| over all matched pairs of all clips, seconds.
    pub timing_median_s: Option<f64>,
    /// Mean genuine confirmed share over the clips that have both shares.
    pub confirmed_genuine: Option<f64>,
    /// Mean mismatched confirmed share over the same clips.
    pub confirmed_mismatched: Option<f64>,
    /// `confirmed_genuine - confirmed_mismatched` (see [`av_discrimination`]).
    pub av_discrimination: Option<f64>,
    /// Number of clips that have both shares (those used for the three fields above).
    pub av_clips: usize,
}

/// Per-clip and overall metrics, as [`summarize`] computes them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// One entry per input clip, in input order.
    pub clips: Vec<ClipMetrics>,
    /// Aggregates over all clips.
    pub overall: Overall,
}

/// Computes every metric of DESIGN.md "Measuring quality" with the standard tolerance
/// [`HIT_TOLERANCE_S`]. See [`summarize_with_tol`].
pub fn summarize(clips: &[ClipInput]) -> Summary {
    summarize_with_tol(clips, HIT_TOLERANCE_S)
}

/// Computes per-clip and overall metrics with matching tolerance `tol` seconds.
///
/// Overall: visual AP pooled over clips ([`average_precision`] over all clips' peaks); mean
/// envelope r over the clips where it is defined (the others counted in `envelope_r_skipped`);
/// visual P/R/F1 from summed counts; mean seed score over all clips; event P/R/F1 from summed
/// counts; median timing over all matched event/hit pairs; AV discrimination from the clips
/// that have both a genuine and a mismatched share. An empty `clips` gives `None` / vacuous
/// values throughout.
pub fn summarize_with_tol(clips: &[ClipInput], tol: f64) -> Summary {
    let mut per_clip = Vec::with_capacity(clips.len());
    let mut scored = Vec::with_capacity(clips.len());
    let mut all_errors = Vec::new();
    let (mut tp, mut fp, mut fn_) = (0, 0, 0);
    let (mut vtp, mut vfp, mut vfn) = (0, 0, 0);
    let (mut genuine, mut mismatched) = (Vec::new(), Vec::new());
    let mut rs = Vec::new();
    for c in clips {
        let sc = ScoredClip {
            peaks: scored_peaks(&c.predicted, c.fps),
            hits: c.hits.clone(),
        };
        let visual_ap = average_precision(std::slice::from_ref(&sc), tol);
        scored.push(sc);
        let pred: Vec<f64> = c.predicted.iter().map(|&x| f64::from(x)).collect();
        let obs: Vec<f64> = c.observed_raw.iter().map(|&x| f64::from(x)).collect();
        let envelope_r = pearson(&pred, &obs);
        rs.extend(envelope_r);
        let visual = visual_f1(&c.predicted, c.fps, &c.hits, tol);
        (vtp, vfp, vfn) = (vtp + visual.tp, vfp + visual.fp, vfn + visual.fn_);
        let event = prf(&c.impact_times, &c.hits, tol);
        (tp, fp, fn_) = (tp + event.tp, fp + event.fp, fn_ + event.fn_);
        let errors = timing_errors(&c.impact_times, &c.hits, tol);
        let timing_median_s = median(&errors);
        all_errors.extend(errors);
        let confirmed_genuine = confirmed_share(&c.impact_times, &c.hits, tol);
        let confirmed_mismatched = c
            .mismatched_impact_times
            .as_deref()
            .and_then(|m| confirmed_share(m, &c.hits, tol));
        let av = match (confirmed_genuine, confirmed_mismatched) {
            (Some(g), Some(m)) => {
                genuine.push(g);
                mismatched.push(m);
                Some(g - m)
            }
            _ => None,
        };
        per_clip.push(ClipMetrics {
            name: c.name.clone(),
            hits: c.hits.len(),
            visual_ap,
            envelope_r,
            visual,
            seed_score: seed_score(visual.f1),
            event,
            timing_median_s,
            confirmed_genuine,
            confirmed_mismatched,
            av_discrimination: av,
        });
    }
    let seeds: Vec<f64> = per_clip.iter().map(|m| f64::from(m.seed_score)).collect();
    let overall = Overall {
        clips: clips.len(),
        hits: clips.iter().map(|c| c.hits.len()).sum(),
        visual_ap: average_precision(&scored, tol),
        envelope_r: mean(&rs),
        envelope_r_skipped: clips.len() - rs.len(),
        visual: Prf::from_counts(vtp, vfp, vfn),
        seed_score: mean(&seeds),
        event: Prf::from_counts(tp, fp, fn_),
        timing_median_s: median(&all_errors),
        confirmed_genuine: mean(&genuine),
        confirmed_mismatched: mean(&mismatched),
        av_discrimination: av_discrimination(&genuine, &mismatched),
        av_clips: genuine.len(),
    };
    Summary {
        clips: per_clip,
        overall,
    }
}

/// A number with 3 decimals, or `-` when undefined.
fn fmt3(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_string(), |v| format!("{v:.3}"))
}

/// Plain-text table of a [`Summary`]: a header, one row per clip and an `overall` row.
///
/// Columns: clip, hits, vis_ap, env_r, vis_f1 (overall: pooled), seed, ev_p, ev_r, ev_f1,
/// timing_ms (median, in milliseconds), conf_gen, conf_mis, av_disc. Numbers have 3 decimals
/// (the per-clip seed score is a signed integer; the overall one a 3-decimal mean); undefined
/// values are `-`. The clip column is left-aligned, the others right-aligned, columns separated
/// by two spaces; every line ends with a newline and has no trailing spaces.
pub fn format_table(summary: &Summary) -> String {
    const HEADER: [&str; 13] = [
        "clip",
        "hits",
        "vis_ap",
        "env_r",
        "vis_f1",
        "seed",
        "ev_p",
        "ev_r",
        "ev_f1",
        "timing_ms",
        "conf_gen",
        "conf_mis",
        "av_disc",
    ];
    let ms = |s: Option<f64>| s.map(|v| v * 1000.0);
    let mut rows: Vec<Vec<String>> = vec![HEADER.iter().map(|h| h.to_string()).collect()];
    for c in &summary.clips {
        rows.push(vec![
            c.name.clone(),
            c.hits.to_string(),
            fmt3(c.visual_ap),
            fmt3(c.envelope_r),
            fmt3(Some(c.visual.f1)),
            format!("{:+}", c.seed_score),
            fmt3(Some(c.event.precision)),
            fmt3(Some(c.event.recall)),
            fmt3(Some(c.event.f1)),
            fmt3(ms(c.timing_median_s)),
            fmt3(c.confirmed_genuine),
            fmt3(c.confirmed_mismatched),
            fmt3(c.av_discrimination),
        ]);
    }
    let o = &summary.overall;
    rows.push(vec![
        "overall".to_string(),
        o.hits.to_string(),
        fmt3(o.visual_ap),
        fmt3(o.envelope_r),
        fmt3(Some(o.visual.f1)),
        fmt3(o.seed_score),
        fmt3(Some(o.event.precision)),
        fmt3(Some(o.event.recall)),
        fmt3(Some(o.event.f1)),
        fmt3(ms(o.timing_median_s)),
        fmt3(o.confirmed_genuine),
        fmt3(o.confirmed_mismatched),
        fmt3(o.av_discrimination),
    ]);
    let widths: Vec<usize> = (0..HEADER.len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (cell, &w))| {
                if i == 0 {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TOL: f64 = HIT_TOLERANCE_S;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    fn assert_close(a: f64, b: f64) {
        assert!(close(a, b), "{a} != {b}");
    }

    fn assert_some_close(a: Option<f64>, b: f64) {
        match a {
            Some(a) => assert_close(a, b),
            None => panic!("None != {b}"),
        }
    }

    // ---------------------------------------------------------------- local_maxima

    #[test]
    fn local_maxima_hand_example() {
        // 1: 1 > 0 and 1 >= 0.5; 3: plateau 2,2 after 0.5 and before 1 (first index);
        // 6: last value 3 > its single neighbour 1.
        assert_eq!(
            local_maxima(&[0.0, 1.0, 0.5, 2.0, 2.0, 1.0, 3.0]),
            vec![1, 3, 6]
        );
    }

    #[test]
    fn local_maxima_first_frame_is_a_peak_when_greater_than_its_neighbour() {
        assert_eq!(local_maxima(&[2.0, 1.0, 0.0]), vec![0]);
        assert_eq!(local_maxima(&[1.0, 2.0]), vec![1]);
    }

    #[test]
    fn local_maxima_plateaus() {
        // A plateau gives its first index, at the start, middle or end of the slice.
        assert_eq!(local_maxima(&[1.0, 1.0, 0.0]), vec![0]);
        assert_eq!(local_maxima(&[0.0, 1.0, 1.0, 1.0, 0.0]), vec![1]);
        assert_eq!(local_maxima(&[0.0, 1.0, 1.0]), vec![1]);
        // A plateau followed by a rise is a step, not a peak.
        assert_eq!(local_maxima(&[0.0, 1.0, 1.0, 2.0, 0.0]), vec![3]);
    }

    #[test]
    fn local_maxima_empty_single_constant() {
        assert!(local_maxima(&[]).is_empty());
        assert!(local_maxima(&[0.7]).is_empty());
        assert!(local_maxima(&[0.3, 0.3, 0.3]).is_empty());
        // Monotone: only the last frame.
        assert_eq!(local_maxima(&[0.0, 0.1, 0.2]), vec![2]);
        assert_eq!(local_maxima(&[0.2, 0.1, 0.0]), vec![0]);
    }

    #[test]
    fn local_maxima_nan_is_never_a_peak_nor_lower() {
        // 0: NaN is not a peak; 1: left neighbour NaN is not "lower", so 1.0 is no peak;
        // 3: 2.0 > 0.0 and > 1.0.
        assert_eq!(local_maxima(&[f32::NAN, 1.0, 0.0, 2.0, 1.0]), vec![3]);
    }

    // ---------------------------------------------------------------- greedy_match

    #[test]
    fn greedy_match_takes_the_globally_closest_pair() {
        // (1, 0) is 0.02 apart, (0, 0) 0.08: the closer pair wins even though pred 0 comes first.
        assert_eq!(greedy_match(&[1.0, 1.1], &[1.08], TOL), vec![(1, 0)]);
    }

    #[test]
    fn greedy_match_distance_tie_goes_to_earlier_prediction() {
        // |0.0 - 0.05| == |0.1 - 0.05| == 0.05 exactly. Pred 0 takes truth 0, then pred 1 takes
        // truth 1 (0.06). Giving the tie to pred 1 would leave pred 0 with nothing (0.16 > tol).
        assert_eq!(
            greedy_match(&[0.0, 0.1], &[0.05, 0.16], TOL),
            vec![(0, 0), (1, 1)]
        );
    }

    #[test]
    fn greedy_match_tolerance_boundary() {
        // Exactly tol apart matches, also when rounding makes the difference
        // |0.275 - 0.15| = 0.12500000000000003 in f64.
        assert_eq!(greedy_match(&[1.125], &[1.0], TOL), vec![(0, 0)]);
        assert!((0.275f64 - 0.15).abs() > TOL);
        assert_eq!(greedy_match(&[0.275], &[0.15], TOL), vec![(0, 0)]);
        assert!(greedy_match(&[1.126], &[1.0], TOL).is_empty());
        assert!(greedy_match(&[0.874], &[1.0], TOL).is_empty());
    }

    #[test]
    fn greedy_match_result_sorted_by_prediction_and_unsorted_inputs() {
        // Inputs in any order; pairs come back sorted by prediction index.
        assert_eq!(
            greedy_match(&[3.0, 1.0, 2.0], &[1.01, 2.02, 2.99], TOL),
            vec![(0, 2), (1, 0), (2, 1)]
        );
    }

    #[test]
    fn greedy_match_edge_cases() {
        assert!(greedy_match(&[], &[1.0], TOL).is_empty());
        assert!(greedy_match(&[1.0], &[], TOL).is_empty());
        assert!(greedy_match(&[1.0], &[1.0], -0.1).is_empty());
        assert!(greedy_match(&[1.0], &[1.0], f64::NAN).is_empty());
        assert!(greedy_match(&[f64::NAN], &[1.0], TOL).is_empty());
        // Duplicate times still match one to one.
        assert_eq!(greedy_match(&[1.0, 1.0], &[1.0], TOL).len(), 1);
        assert_eq!(
            greedy_match(&[1.0, 1.0], &[1.0, 1.0], TOL),
            vec![(0, 0), (1, 1)]
        );
    }

    // ---------------------------------------------------------------- prf, timing, median

    #[test]
    fn prf_hand_example() {
        // Matches: 1.0-1.1 (0.1), 3.05-3.0 (0.05). 2.0 and 5.0 unmatched, 4.0 missed.
        // tp 2, fp 2, fn 1: P = 2/4, R = 2/3, F1 = 2*2 / (2*2 + 2 + 1) = 4/7.
        let r = prf(&[1.0, 2.0, 3.05, 5.0], &[1.1, 3.0, 4.0], TOL);
        assert_eq!((r.tp, r.fp, r.fn_), (2, 2, 1));
        assert_close(r.precision, 0.5);
        assert_close(r.recall, 2.0 / 3.0);
        assert_close(r.f1, 4.0 / 7.0);
    }

    #[test]
    fn prf_empty_cases() {
        let both = prf(&[], &[], TOL);
        assert_eq!(
            both,
            Prf {
                tp: 0,
                fp: 0,
                fn_: 0,
                precision: 1.0,
                recall: 1.0,
                f1: 1.0
            }
        );
        let false_alarms = prf(&[1.0, 2.0], &[], TOL);
        assert_eq!(
            false_alarms,
            Prf {
                tp: 0,
                fp: 2,
                fn_: 0,
                precision: 0.0,
                recall: 1.0,
                f1: 0.0
            }
        );
        let all_missed = prf(&[], &[1.0], TOL);
        assert_eq!(
            all_missed,
            Prf {
                tp: 0,
                fp: 0,
                fn_: 1,
                precision: 1.0,
                recall: 0.0,
                f1: 0.0
            }
        );
    }

    #[test]
    fn prf_from_counts_f1_is_the_harmonic_mean() {
        // P = 3/4, R = 3/5: 2PR/(P+R) = (9/10)/(27/20) = 2/3 = 2*3/(6+1+2).
        let r = Prf::from_counts(3, 1, 2);
        assert_close(r.precision, 0.75);
        assert_close(r.recall, 0.6);
        assert_close(r.f1, 2.0 / 3.0);
    }

    #[test]
    fn timing_errors_hand_example() {
        let e = timing_errors(&[1.0, 2.0, 3.05, 5.0], &[1.1, 3.0, 4.0], TOL);
        assert_eq!(e.len(), 2);
        assert_close(e[0], 0.1);
        assert_close(e[1], 0.05);
        assert!(timing_errors(&[1.0], &[2.0], TOL).is_empty());
    }

    #[test]
    fn median_cases() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[7.0]), Some(7.0));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[f64::NAN, 1.0]), Some(1.0));
        assert_eq!(median(&[f64::NAN]), None);
    }

    // ---------------------------------------------------------------- average_precision

    #[test]
    fn ap_hand_example() {
        // Ranking by score: 1.02 (0.9) TP -> hit 1.0, precision 1/1;
        // 5.0 (0.8) FP; 2.05 (0.7) TP -> hit 2.0, precision 2/3;
        // 1.05 (0.6) FP (hit 1.0 already taken, 2.0 is 0.95 away); hit 3.0 never found.
        // AP = (1 + 2/3) / 3 hits = 5/9.
        let clip = ScoredClip {
            peaks: vec![(1.05, 0.6), (5.0, 0.8), (1.02, 0.9), (2.05, 0.7)],
            hits: vec![1.0, 2.0, 3.0],
        };
        assert_some_close(average_precision(&[clip], TOL), 5.0 / 9.0);
    }

    #[test]
    fn ap_matches_only_within_the_peaks_own_clip() {
        // Clip 1's peak (score 0.9) ranks first but clip 1 has no hit: FP. Clip 0's peak is a TP
        // at rank 2: precision 1/2. AP = (1/2) / 1 hit = 0.5 (it would be 1 across clips).
        let clips = [
            ScoredClip {
                peaks: vec![(1.0, 0.5)],
                hits: vec![1.0],
            },
            ScoredClip {
                peaks: vec![(1.0, 0.9)],
                hits: vec![],
            },
        ];
        assert_some_close(average_precision(&clips, TOL), 0.5);
    }

    #[test]
    fn ap_score_ties_ranked_by_clip_then_time() {
        // Equal scores: clip 0's peak (FP: its hit is at 3.0) ranks before clip 1's (TP):
        // precision 1/2 at the TP; 2 hits in all. AP = (1/2) / 2 = 0.25 (0.5 the other way).
        let clips = [
            ScoredClip {
                peaks: vec![(1.0, 0.5)],
                hits: vec![3.0],
            },
            ScoredClip {
                peaks: vec![(1.0, 0.5)],
                hits: vec![1.0],
            },
        ];
        assert_some_close(average_precision(&clips, TOL), 0.25);
        // Same clip, same score: the earlier time (TP at 1.0) ranks first: precision 1/1,
        // 2 hits: AP = 1/2 (1/4 if 2.0, a FP, came first).
        let clip = ScoredClip {
            peaks: vec![(2.0, 0.5), (1.0, 0.5)],
            hits: vec![1.0, 5.0],
        };
        assert_some_close(average_precision(&[clip], TOL), 0.5);
    }

    #[test]
    fn ap_takes_the_nearest_unmatched_hit() {
        // Peak 1.08 takes hit 1.1 (0.02 away, not 1.0 at 0.08); peak 0.95 then takes hit 1.0.
        // Both TP: AP = (1/1 + 2/2) / 2 = 1. Taking the first hit in range would leave 0.95
        // 0.15 from 1.1: AP = 1/2.
        let clip = ScoredClip {
            peaks: vec![(1.08, 0.9), (0.95, 0.8)],
            hits: vec![1.0, 1.1],
        };
        assert_some_close(average_precision(&[clip], TOL), 1.0);
    }

    #[test]
    fn ap_nan_score_ranks_last() {
        // 5.0 (0.1) FP at rank 1, then the NaN-scored TP at rank 2: AP = (1/2) / 1 = 0.5.
        let clip = ScoredClip {
            peaks: vec![(1.0, f64::NAN), (5.0, 0.1)],
            hits: vec![1.0],
        };
        assert_some_close(average_precision(&[clip], TOL), 0.5);
    }

    #[test]
    fn ap_edge_cases() {
        assert_eq!(average_precision(&[], TOL), None);
        let no_hits = ScoredClip {
            peaks: vec![(1.0, 0.9)],
            hits: vec![],
        };
        assert_eq!(average_precision(&[no_hits], TOL), None);
        let no_peaks = ScoredClip {
            peaks: vec![],
            hits: vec![1.0],
        };
        assert_eq!(average_precision(&[no_peaks], TOL), Some(0.0));
    }

    // ---------------------------------------------------------------- pearson

    #[test]
    fn pearson_hand_example() {
        // a = 1,2,3 (mean 2, deviations -1,0,1); b = 2,4,7 (mean 13/3, deviations -7/3,-1/3,8/3).
        // Sab = 7/3 + 0 + 8/3 = 5; Saa = 2; Sbb = (49 + 1 + 64)/9 = 114/9.
        // r = 5 / sqrt(2 * 114/9) = 0.99339...
        let r = pearson(&[1.0, 2.0, 3.0], &[2.0, 4.0, 7.0]).unwrap();
        assert_close(r, 5.0 / (2.0f64 * 114.0 / 9.0).sqrt());
        assert!((r - 0.993399).abs() < 1e-6);
        assert_some_close(pearson(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]), -1.0);
        // Uncorrelated: deviations (-1, 0, 1) and (1, -2, 1) are orthogonal.
        assert_some_close(pearson(&[1.0, 2.0, 3.0], &[1.0, 0.0, 1.0]), 0.0);
    }

    #[test]
    fn pearson_undefined_cases() {
        assert_eq!(pearson(&[1.0, 2.0], &[1.0, 2.0, 3.0]), None);
        assert_eq!(pearson(&[1.0], &[1.0]), None);
        assert_eq!(pearson(&[], &[]), None);
        assert_eq!(pearson(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), None);
        assert_eq!(pearson(&[1.0, 2.0, 3.0], &[0.0, 0.0, 0.0]), None);
        // Constant 0.1: its computed mean is off by an ulp; must still be "zero variance".
        assert_eq!(pearson(&[0.1, 0.1, 0.1], &[1.0, 2.0, 4.0]), None);
        assert_eq!(pearson(&[1.0, f64::NAN, 3.0], &[1.0, 2.0, 3.0]), None);
        assert_eq!(pearson(&[1.0, f64::INFINITY, 3.0], &[1.0, 2.0, 3.0]), None);
    }

    // ---------------------------------------------------------------- seed score, visual F1

    #[test]
    fn seed_score_thresholds() {
        assert_eq!(seed_score(1.0), 1);
        assert_eq!(seed_score(2.0 / 3.0), 1);
        // F1 from counts hits 2/3 exactly: tp 1, fp 1, fn 0 -> 2/3.
        assert_eq!(seed_score(Prf::from_counts(1, 1, 0).f1), 1);
        assert_eq!(seed_score(0.66), 0);
        assert_eq!(seed_score(0.5), 0);
        assert_eq!(seed_score(1.0 / 3.0), 0);
        // tp 1, fp 3, fn 1 -> 2/6 = 1/3 exactly: 0, not -1.
        assert_eq!(seed_score(Prf::from_counts(1, 3, 1).f1), 0);
        assert_eq!(seed_score(0.333), -1);
        assert_eq!(seed_score(0.0), -1);
        assert_eq!(seed_score(f64::NAN), -1);
    }

    #[test]
    fn visual_f1_hand_example() {
        // Local maxima: 1 (0.6), 3 (0.4), 5 (plateau 0.9). At >= 0.5: frames 1 and 5, at
        // 1/12 = 0.083 s and 5/12 = 0.417 s. Hits 0.1 and 0.25: 0.083 matches 0.1; 0.417 is
        // 0.167 from 0.25: FP; 0.25 missed (frame 3 at 0.25 s is below 0.5).
        // tp 1, fp 1, fn 1: F1 = 2 / 4 = 0.5.
        let env = [0.1, 0.6, 0.2, 0.4, 0.3, 0.9, 0.9, 0.1];
        let r = visual_f1(&env, 12.0, &[0.1, 0.25], TOL);
        assert_eq!((r.tp, r.fp, r.fn_), (1, 1, 1));
        assert_close(r.f1, 0.5);
        assert_eq!(seed_score(r.f1), 0);
        // Threshold is inclusive: a peak of exactly 0.5 counts.
        let r = visual_f1(&[0.0, 0.5, 0.0], 12.0, &[1.0 / 12.0], TOL);
        assert_eq!((r.tp, r.fp, r.fn_), (1, 0, 0));
    }

    #[test]
    fn visual_f1_empty_cases() {
        // No hits, no peaks >= 0.5: vacuous F1 = 1, seed +1.
        let r = visual_f1(&[0.1, 0.4, 0.1], 12.0, &[], TOL);
        assert_eq!(r.f1, 1.0);
        assert_eq!(seed_score(r.f1), 1);
        // No hits but a confident peak: F1 = 0, seed -1.
        let r = visual_f1(&[0.1, 0.9, 0.1], 12.0, &[], TOL);
        assert_eq!(r.f1, 0.0);
        assert_eq!(seed_score(r.f1), -1);
        // Empty envelope with hits: everything missed.
        let r = visual_f1(&[], 12.0, &[1.0], TOL);
        assert_eq!((r.tp, r.fp, r.fn_), (0, 0, 1));
    }

    // ---------------------------------------------------------------- AV discrimination

    #[test]
    fn confirmed_share_cases() {
        // Hit 1.02 is confirmed (by 1.0 or 1.05), hit 3.0 is not: 1/2.
        assert_eq!(confirmed_share(&[1.0, 1.05], &[1.02, 3.0], TOL), Some(0.5));
        // One to one: one event cannot confirm two hits.
        assert_eq!(confirmed_share(&[1.0], &[1.0, 1.05], TOL), Some(0.5));
        assert_eq!(confirmed_share(&[1.0, 2.0], &[1.0, 2.1], TOL), Some(1.0));
        assert_eq!(confirmed_share(&[], &[1.0], TOL), Some(0.0));
        assert_eq!(confirmed_share(&[1.0], &[], TOL), None);
    }

    #[test]
    fn av_discrimination_cases() {
        // mean(1, 0.5) - mean(0.25) = 0.75 - 0.25.
        assert_eq!(av_discrimination(&[1.0, 0.5], &[0.25]), Some(0.5));
        // An audio-only detector confirms the same share either way.
        assert_eq!(av_discrimination(&[0.8, 0.6], &[0.6, 0.8]), Some(0.0));
        assert_eq!(av_discrimination(&[0.2], &[0.9]), Some(0.2 - 0.9));
        assert_eq!(av_discrimination(&[], &[0.5]), None);
        assert_eq!(av_discrimination(&[0.5], &[]), None);
    }

    // ---------------------------------------------------------------- summarize, table

    /// Two clips whose every number is worked out by hand in `summarize_hand_example`.
    fn two_clips() -> Vec<ClipInput> {
        let pred_a = vec![
            0.0f32, 0.8, 0.1, 0.0, 0.6, 0.2, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
        ];
        let obs_a = pred_a.iter().map(|&x| 1.0 - x).collect();
        vec![
            ClipInput {
                name: "a".into(),
                fps: 12.0,
                predicted: pred_a,
                observed_raw: obs_a,
                hits: vec![0.08, 0.7],
                impact_times: vec![0.09, 0.69, 2.0],
                mismatched_impact_times: Some(vec![0.7]),
            },
            ClipInput {
                name: "clip-b".into(),
                fps: 12.0,
                predicted: vec![0.3; 6],
                observed_raw: vec![0.0, 1.0, 0.0, 0.0, 0.0, 0.0],
                hits: vec![0.2],
                impact_times: vec![0.25],
                mismatched_impact_times: None,
            },
        ]
    }

    #[test]
    fn summarize_hand_example() {
        let s = summarize(&two_clips());
        let (a, b, o) = (&s.clips[0], &s.clips[1], &s.overall);

        // Clip a. Peaks: frame 1 (0.8, t = 0.083) and frame 4 (0.6, t = 0.333).
        // AP: 0.083 takes hit 0.08 (precision 1/1); 0.333 is a FP; hit 0.7 missed: AP = 1/2.
        assert_some_close(a.visual_ap, 0.5);
        // observed_raw = 1 - predicted: r = -1.
        assert!((a.envelope_r.unwrap() + 1.0).abs() < 1e-6);
        // Both peaks >= 0.5: tp 1, fp 1, fn 1 -> F1 0.5 -> seed 0.
        assert_eq!((a.visual.tp, a.visual.fp, a.visual.fn_), (1, 1, 1));
        assert_eq!(a.seed_score, 0);
        // Events 0.09 -> 0.08, 0.69 -> 0.7, 2.0 spare: tp 2, fp 1, fn 0; F1 = 4/5.
        assert_eq!((a.event.tp, a.event.fp, a.event.fn_), (2, 1, 0));
        assert_close(a.event.f1, 0.8);
        assert_some_close(a.timing_median_s, 0.01);
        // Genuine: both hits confirmed; mismatched: 0.7 only -> 1/2; difference 1/2.
        assert_eq!(a.confirmed_genuine, Some(1.0));
        assert_eq!(a.confirmed_mismatched, Some(0.5));
        assert_eq!(a.av_discrimination, Some(0.5));

        // Clip b: constant prediction, no peaks: AP 0 with one hit; r undefined; visual
        // tp 0 fp 0 fn 1 -> F1 0 -> seed -1; event 0.25 -> 0.2 matched (0.05).
        assert_eq!(b.visual_ap, Some(0.0));
        assert_eq!(b.envelope_r, None);
        assert_eq!(b.seed_score, -1);
        assert_eq!((b.event.tp, b.event.fp, b.event.fn_), (1, 0, 0));
        assert_some_close(b.timing_median_s, 0.05);
        assert_eq!(b.confirmed_genuine, Some(1.0));
        assert_eq!(b.confirmed_mismatched, None);
        assert_eq!(b.av_discrimination, None);

        // Overall. Pooled AP: a's peaks only; TP at rank 1, 3 hits in all: AP = 1/3.
        assert_eq!((o.clips, o.hits), (2, 3));
        assert_some_close(o.visual_ap, 1.0 / 3.0);
        // r: only clip a counts; clip b skipped.
        assert!((o.envelope_r.unwrap() + 1.0).abs() < 1e-6);
        assert_eq!(o.envelope_r_skipped, 1);
        // Visual pooled: tp 1, fp 1, fn 2 -> F1 = 2 / 5.
        assert_eq!((o.visual.tp, o.visual.fp, o.visual.fn_), (1, 1, 2));
        assert_close(o.visual.f1, 0.4);
        // Seed: (0 + -1) / 2.
        assert_eq!(o.seed_score, Some(-0.5));
        // Events pooled: tp 3, fp 1, fn 0: P 3/4, R 1, F1 6/7.
        assert_eq!((o.event.tp, o.event.fp, o.event.fn_), (3, 1, 0));
        assert_close(o.event.precision, 0.75);
        assert_close(o.event.recall, 1.0);
        assert_close(o.event.f1, 6.0 / 7.0);
        // Timing: median of 0.01, 0.01, 0.05.
        assert_some_close(o.timing_median_s, 0.01);
        // AV: only clip a has both shares.
        assert_eq!(o.av_clips, 1);
        assert_eq!(o.confirmed_genuine, Some(1.0));
        assert_eq!(o.confirmed_mismatched, Some(0.5));
        assert_eq!(o.av_discrimination, Some(0.5));
    }

    #[test]
    fn summarize_empty() {
        let s = summarize(&[]);
        assert!(s.clips.is_empty());
        let o = &s.overall;
        assert_eq!(
            (o.clips, o.hits, o.envelope_r_skipped, o.av_clips),
            (0, 0, 0, 0)
        );
        assert_eq!(o.visual_ap, None);
        assert_eq!(o.envelope_r, None);
        assert_eq!(o.seed_score, None);
        assert_eq!(o.timing_median_s, None);
        assert_eq!(o.av_discrimination, None);
        assert_eq!(o.event, Prf::from_counts(0, 0, 0));
    }

    #[test]
    fn summary_serialises_with_fn_key_and_nulls() {
        let v = serde_json::to_value(summarize(&two_clips())).unwrap();
        assert_eq!(v["overall"]["event"]["fn"], 0);
        assert_eq!(v["overall"]["event"]["tp"], 3);
        assert!(v["clips"][1]["envelope_r"].is_null());
        assert_eq!(v["clips"][1]["name"], "clip-b");
    }

    #[test]
    fn format_table_hand_example() {
        // Values as in summarize_hand_example; timing 0.01 s = 10 ms, 0.05 s = 50 ms.
        let expected = "\
clip     hits  vis_ap   env_r  vis_f1    seed   ev_p   ev_r  ev_f1  timing_ms  conf_gen  conf_mis  av_disc
a           2   0.500  -1.000   0.500      +0  0.667  1.000  0.800     10.000     1.000     0.500    0.500
clip-b      1   0.000       -   0.000      -1  1.000  1.000  1.000     50.000     1.000         -        -
overall     3   0.333  -1.000   0.400  -0.500  0.750  1.000  0.857     10.000     1.000     0.500    0.500
";
        assert_eq!(format_table(&summarize(&two_clips())), expected);
    }

    #[test]
    fn format_table_columns_are_aligned() {
        let mut clips = two_clips();
        clips[0].name = "a-much-longer-clip-name".into();
        let table = format_table(&summarize(&clips));
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[3].starts_with("overall "));
        // Right-aligned last column: every line has the same length.
        assert!(lines.iter().all(|l| l.len() == lines[0].len()), "{table}");
        // The second column starts at the same offset on every line.
        let col = lines[0].find("hits").unwrap();
        assert!(lines.iter().all(|l| l.as_bytes()[col - 1] == b' '));
        assert!(lines.iter().all(|l| !l.ends_with(' ')));
    }

    // ---------------------------------------------------------------- properties

    fn times() -> impl Strategy<Value = Vec<f64>> {
        prop::collection::vec(0.0f64..10.0, 0..15)
    }

    fn scored_clip() -> impl Strategy<Value = ScoredClip> {
        // Integer scores make ties frequent and keep monotone maps exact.
        (
            prop::collection::vec((0.0f64..10.0, 0u8..20), 0..12),
            times(),
        )
            .prop_map(|(peaks, hits)| ScoredClip {
                peaks: peaks.into_iter().map(|(t, s)| (t, f64::from(s))).collect(),
                hits,
            })
    }

    fn non_constant() -> impl Strategy<Value = Vec<f64>> {
        prop::collection::vec(-100.0f64..100.0, 2..30)
            .prop_filter("non-constant", |v| v.iter().any(|&x| x != v[0]))
    }

    proptest! {
        #[test]
        fn prop_ap_in_unit_interval(clips in prop::collection::vec(scored_clip(), 0..5),
                                    tol in 0.0f64..1.0) {
            if let Some(ap) = average_precision(&clips, tol) {
                prop_assert!((0.0..=1.0).contains(&ap), "{ap}");
            } else {
                prop_assert!(clips.iter().all(|c| c.hits.is_empty()));
            }
        }

        #[test]
        fn prop_ap_invariant_under_monotone_scores(clips in prop::collection::vec(scored_clip(), 1..4)) {
            let mapped: Vec<ScoredClip> = clips.iter().map(|c| ScoredClip {
                peaks: c.peaks.iter().map(|&(t, s)| (t, 2.0 * s + 1.0)).collect(),
                hits: c.hits.clone(),
            }).collect();
            prop_assert_eq!(average_precision(&clips, TOL), average_precision(&mapped, TOL));
        }

        #[test]
        fn prop_perfect_predictions_score_one(hits in times(),
                                              scores in prop::collection::vec(0.0f64..1.0, 15)) {
            let clip = ScoredClip {
                peaks: hits.iter().zip(&scores).map(|(&t, &s)| (t, s)).collect(),
                hits: hits.clone(),
            };
            if hits.is_empty() {
                prop_assert_eq!(average_precision(&[clip], TOL), None);
            } else {
                prop_assert_eq!(average_precision(&[clip], TOL), Some(1.0));
            }
            let reversed: Vec<f64> = hits.iter().rev().copied().collect();
            let r = prf(&reversed, &hits, TOL);
            prop_assert_eq!((r.precision, r.recall, r.f1), (1.0, 1.0, 1.0));
        }

        #[test]
        fn prop_greedy_match_is_one_to_one_within_tol_and_maximal(
            pred in times(), truth in times(), tol in 0.0f64..1.0) {
            let pairs = greedy_match(&pred, &truth, tol);
            let mut ps: Vec<usize> = pairs.iter().map(|p| p.0).collect();
            let mut ts: Vec<usize> = pairs.iter().map(|p| p.1).collect();
            ps.dedup();
            ts.sort_unstable();
            ts.dedup();
            prop_assert_eq!(ps.len(), pairs.len());
            prop_assert_eq!(ts.len(), pairs.len());
            for &(p, t) in &pairs {
                prop_assert!((pred[p] - truth[t]).abs() <= tol + MATCH_EPS_S);
            }
            // Maximal: no unmatched prediction is within tol of an unmatched truth.
            for (p, &x) in pred.iter().enumerate() {
                for (t, &y) in truth.iter().enumerate() {
                    if !ps.contains(&p) && !ts.contains(&t) {
                        prop_assert!((x - y).abs() > tol + MATCH_EPS_S);
                    }
                }
            }
            // The globally closest pair in range is always taken.
            let closest = pred.iter().enumerate()
                .flat_map(|(p, &x)| truth.iter().enumerate().map(move |(t, &y)| ((x - y).abs(), p, t)))
                .filter(|&(d, _, _)| d <= tol + MATCH_EPS_S)
                .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
            if let Some((_, p, t)) = closest {
                prop_assert!(pairs.contains(&(p, t)));
            }
        }

        #[test]
        fn prop_prf_counts_add_up(pred in times(), truth in times(), tol in 0.0f64..1.0) {
            let r = prf(&pred, &truth, tol);
            prop_assert_eq!(r.tp + r.fp, pred.len());
            prop_assert_eq!(r.tp + r.fn_, truth.len());
            for x in [r.precision, r.recall, r.f1] {
                prop_assert!((0.0..=1.0).contains(&x));
            }
            prop_assert_eq!(timing_errors(&pred, &truth, tol).len(), r.tp);
        }

        #[test]
        fn prop_pearson_self_and_negation(a in non_constant()) {
            let neg: Vec<f64> = a.iter().map(|x| -x).collect();
            let affine: Vec<f64> = a.iter().map(|x| 3.0 * x + 7.0).collect();
            prop_assert!(close(pearson(&a, &a).unwrap(), 1.0));
            prop_assert!(close(pearson(&a, &neg).unwrap(), -1.0));
            prop_assert!(close(pearson(&a, &affine).unwrap(), 1.0));
        }

        #[test]
        fn prop_pearson_bounded_and_symmetric(a in non_constant(), b in non_constant()) {
            let n = a.len().min(b.len());
            match (pearson(&a[..n], &b[..n]), pearson(&b[..n], &a[..n])) {
                (Some(x), Some(y)) => {
                    prop_assert!((-1.0..=1.0).contains(&x));
                    prop_assert!(close(x, y));
                }
                (x, y) => prop_assert_eq!(x, y),
            }
        }

        #[test]
        fn prop_local_maxima_distinct_values_match_strict_rule(
            v in (1usize..20).prop_flat_map(|n| Just((0..n).collect::<Vec<usize>>()).prop_shuffle())) {
            let v: Vec<f32> = v.into_iter().map(|x| x as f32).collect();
            let n = v.len();
            let strict: Vec<usize> = (0..n)
                .filter(|&i| n > 1 && (i == 0 || v[i] > v[i - 1]) && (i + 1 == n || v[i] > v[i + 1]))
                .collect();
            prop_assert_eq!(local_maxima(&v), strict);
        }

        #[test]
        fn prop_local_maxima_with_plateaus(v in prop::collection::vec(0u8..4, 0..25)) {
            let v: Vec<f32> = v.into_iter().map(f32::from).collect();
            let peaks = local_maxima(&v);
            let constant = v.iter().all(|&x| x == v[0]);
            if constant {
                prop_assert!(peaks.is_empty());
            } else {
                // The first index of the global maximum is always a peak.
                let max = v.iter().copied().fold(f32::MIN, f32::max);
                let first = v.iter().position(|&x| x == max).unwrap();
                prop_assert!(peaks.contains(&first));
            }
            for &i in &peaks {
                prop_assert!(i == 0 || v[i - 1] < v[i]);
            }
            // Between two consecutive peaks lies a strictly lower value.
            for w in peaks.windows(2) {
                let valley = v[w[0]..=w[1]].iter().copied().fold(f32::MAX, f32::min);
                prop_assert!(valley < v[w[0]] && valley < v[w[1]]);
            }
        }

        #[test]
        fn prop_median_between_min_and_max(xs in prop::collection::vec(-10.0f64..10.0, 1..20)) {
            let m = median(&xs).unwrap();
            let lo = xs.iter().copied().fold(f64::MAX, f64::min);
            let hi = xs.iter().copied().fold(f64::MIN, f64::max);
            prop_assert!(lo <= m && m <= hi);
            let below = xs.iter().filter(|&&x| x < m).count();
            let above = xs.iter().filter(|&&x| x > m).count();
            prop_assert!(below <= xs.len() / 2 && above <= xs.len() / 2);
        }

        #[test]
        fn prop_confirmed_share_in_unit_interval(impacts in times(), hits in times()) {
            match confirmed_share(&impacts, &hits, TOL) {
                Some(s) => prop_assert!((0.0..=1.0).contains(&s)),
                None => prop_assert!(hits.is_empty()),
            }
        }
    }
}
