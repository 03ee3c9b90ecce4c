#!/usr/bin/env python3
"""Audio-proxy hit times for clips that have no human annotation.

An onset detector that is deliberately *different* from impactd's own (which picks peaks of a
Gaussian-smoothed |x| envelope on the 12-fps grid and refines them with a 1-ms envelope): here a
log-magnitude spectral flux (SuperFlux-style: a maximum filter across frequency before the
difference), 1024-sample (23 ms) Hann frames at a ~5 ms hop, an adaptive threshold (above both
the moving median plus a fraction of the clip's flux range, and 3x the moving median), a -50 dBFS
loudness gate and a 100 ms minimum gap between onsets.

It is a proxy, not ground truth: it reports every percussive sound, whether or not an impact is
seen. Its accuracy against human annotations is printed by `--check` (see eval/README.md).

Usage (from the repository root):
    python3 eval/make_proxy_hits.py --check                     # F1 on the annotated sets
    python3 eval/make_proxy_hits.py --manifest > eval/real-clips.toml
    python3 eval/make_proxy_hits.py --pool-manifest > eval/pool-holdout.toml
    python3 eval/make_proxy_hits.py FILE...                     # print onset times per file

Needs numpy, scipy and ffmpeg on PATH. Data is read from ../shared/data (never copied).
"""

import argparse
import glob
import os
import subprocess
import sys

import numpy as np
from scipy.ndimage import maximum_filter1d, median_filter

RATE = 44100
N_FFT = 1024
HOP = 220  # 4.99 ms at 44.1 kHz
LAG = 2  # frames between the spectra compared (~10 ms)
MAX_BINS = 3  # maximum filter across frequency (SuperFlux vibrato suppression)
LOG_GAMMA = 100.0  # log(1 + gamma * |X|) compression
MED_S = 0.10  # moving-median half window, seconds
DELTA = 0.05  # threshold above the moving median, as a fraction of the clip's flux p99 - median
RATIO = 3.0  # ... and at least this many times the moving median (rejects noise in real rooms)
PEAK_S = 0.03  # an onset is the maximum of the flux within +-30 ms
MIN_GAP_S = 0.10  # at most one onset per 100 ms (the louder one wins)
MIN_DBFS = -50.0  # ignore frames whose RMS is below this (silence, noise floor)
OFFSET_S = 0.0  # constant added to onset times; none needed (median signed error -3.5 ms, --check)

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "data"))
NEGATIVES = {
    "dog-barking": "barks: loud sounds, nothing is hit",
    "person-coughing": "coughs: loud sounds, nothing is hit",
}

# What the spectrogram, the picture and the numbers show where the proxy is doubtful (checked by
# eye on `ffmpeg -lavfi showspectrumpic` images and a frame strip; see eval/README.md).
NOTES = {
    "drumstick-bag": [
        "8 strikes are clear (0.09 ... 5.53); 1.861, 4.141, 4.295 and 4.924 are faint",
        "sounds at -44 to -50 dBFS, 35-40 dB below the strikes (stick or bag settling).",
    ],
    "drumstick-metal": [
        "1.776 sits in the ring of the 1.671 strike (a rattle?); 4.894 is a real second",
        "strike (bounce) 230 ms after 4.664.",
    ],
    "drum-kit-1": [
        "dense, heavily compressed drumming (22 kHz mono source): the 3x-median rule keeps",
        "only 3 onsets; without it (--ratio 0) there are 69. The hits here are unreliable.",
    ],
    "tennis-rally": [
        "one player practising, background noise; the loudest onsets (0.254, 4.031,",
        "5.622, 7.403, 8.790) stand far above it, weaker ones may be bounces or footsteps.",
    ],
    "hammer-anvil": [
        "4 strikes are clear in the spectrogram (0.544 1.033 2.300 3.248); 3.956 is weak.",
    ],
}


def load_audio(path):
    """First audio stream, downmixed to mono, resampled to 44.1 kHz, float32 in [-1, 1]."""
    cmd = ["ffmpeg", "-v", "error", "-nostdin", "-i", path, "-map", "0:a:0", "-ac", "1",
           "-f", "f32le", "-ar", str(RATE), "-"]
    raw = subprocess.run(cmd, check=True, stdout=subprocess.PIPE).stdout
    return np.frombuffer(raw, dtype="<f4").astype(np.float64)


def onset_function(x):
    """Spectral flux per frame; frame i is centred on sample i * HOP. Returns (flux, rms_dbfs)."""
    pad = np.concatenate([np.zeros(N_FFT // 2), x, np.zeros(N_FFT // 2)])
    n = 1 + (len(pad) - N_FFT) // HOP
    idx = np.arange(N_FFT)[None, :] + HOP * np.arange(n)[:, None]
    frames = pad[idx]
    rms = np.sqrt(np.mean(frames[:, N_FFT // 4: 3 * N_FFT // 4] ** 2, axis=1)) + 1e-12
    spec = np.abs(np.fft.rfft(frames * np.hanning(N_FFT)[None, :], axis=1))
    logspec = np.log1p(LOG_GAMMA * spec)
    ref = maximum_filter1d(logspec, size=MAX_BINS, axis=1)
    flux = np.zeros(n)
    diff = logspec[LAG:] - ref[:-LAG]
    flux[LAG:] = np.maximum(diff, 0.0).sum(axis=1)
    return flux, 20 * np.log10(rms)


def pick_onsets(flux, rms_dbfs, delta=DELTA, ratio=RATIO, min_gap_s=MIN_GAP_S, min_dbfs=MIN_DBFS):
    """Adaptive-threshold peak picking; returns onset times in seconds."""
    fps = RATE / HOP
    med = median_filter(flux, size=2 * int(round(MED_S * fps)) + 1, mode="nearest")
    spread = np.percentile(flux, 99) - np.median(flux)
    thr = np.maximum(med + delta * max(spread, 1e-9), ratio * med)
    local = maximum_filter1d(flux, size=2 * int(round(PEAK_S * fps)) + 1, mode="nearest")
    # the frame's loudness: the loudest of the next 30 ms (the sound that the flux announces)
    k = int(round(0.03 * fps))
    centred = maximum_filter1d(rms_dbfs, size=2 * k + 1, mode="nearest")
    loud = np.concatenate([centred[k:], np.full(k, centred[-1])])
    cand = np.flatnonzero((flux >= local) & (flux > thr) & (flux > 0) & (loud > min_dbfs))
    # minimum gap: strongest first, drop anything within min_gap_s of one already kept
    gap = int(round(min_gap_s * fps))
    kept = []
    for i in sorted(cand, key=lambda i: -flux[i]):
        if all(abs(i - k) >= gap for k in kept):
            kept.append(i)
    return np.array(sorted(kept), dtype=float) * HOP / RATE + OFFSET_S


def detect(path, **kw):
    x = load_audio(path)
    flux, rms = onset_function(x)
    return pick_onsets(flux, rms, **kw), len(x) / RATE


# --- small helpers the eval scripts share ---

def duration(path):
    """A media file's length in seconds (ffprobe)."""
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of",
                          "csv=p=0", path], check=True, capture_output=True, text=True).stdout
    return float(out.strip())


def float_list(text):
    """argparse type: numbers separated by commas ("0.3,0.5")."""
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected numbers separated by commas") from None


# --- matching (the same rule as impactd's eval: one-to-one, globally closest pair first) ---

def greedy_match(pred, truth, tol):
    cand = [(abs(p - t), i, j) for i, p in enumerate(pred) for j, t in enumerate(truth)
            if abs(p - t) <= tol + 1e-9]
    cand.sort()
    used_p, used_t, pairs = set(), set(), []
    for _, i, j in cand:
        if i not in used_p and j not in used_t:
            used_p.add(i)
            used_t.add(j)
            pairs.append((i, j))
    return sorted(pairs)


def prf(tp, n_pred, n_truth):
    p = tp / n_pred if n_pred else 1.0
    r = tp / n_truth if n_truth else 1.0
    denom = n_pred + n_truth
    f = 2 * tp / denom if denom else 1.0
    return p, r, f


def local_maxima(v):
    """Indices of the local maxima of `v` (src/eval/metrics.rs `local_maxima`): a plateau counts
    once, at its first index; an end counts when its one neighbour is lower."""
    n, out, s = len(v), [], 0
    while s < n:
        e = s
        while e + 1 < n and v[e + 1] == v[s]:
            e += 1
        if (s == 0 or v[s - 1] < v[s]) and (e + 1 == n or v[e + 1] < v[s]) and (s > 0 or e + 1 < n):
            out.append(s)
        s = e + 1
    return out


def pooled_ap(clips, fps=12.0, tol=0.125):
    """Visual AP of DESIGN.md (src/eval/metrics.rs `average_precision`): every local maximum of
    each clip's envelope, scored by its height and ranked over all clips, is a true positive when
    its own clip has an unmatched hit within `tol` (it takes the nearest). `clips`: (envelope,
    hit times) pairs. None when there are no hits."""
    total = sum(len(h) for _, h in clips)
    if total == 0:
        return None
    ranked = sorted((-float(env[k]), ci, k / fps) for ci, (env, _) in enumerate(clips)
                    for k in local_maxima(env))
    used = [[False] * len(h) for _, h in clips]
    tp, acc = 0, 0.0
    for rank, (_, ci, t) in enumerate(ranked):
        hits = clips[ci][1]
        free = [hi for hi, h in enumerate(hits) if not used[ci][hi] and abs(t - h) <= tol + 1e-9]
        if free:
            used[ci][min(free, key=lambda hi: abs(t - hits[hi]))] = True
            tp += 1
            acc += tp / (rank + 1)
    return acc / total


def pearson(a, b):
    """Pearson r of two series (cut to the shorter); None when either is constant."""
    n = min(len(a), len(b))
    a, b = np.asarray(a[:n], np.float64), np.asarray(b[:n], np.float64)
    if n < 2 or a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def merge_close(times, within=0.03):
    """Annotated onsets closer than `within` (e.g. kick + hi-hat struck together) are one sound."""
    out = []
    for t in sorted(times):
        if not out or t - out[-1] > within:
            out.append(t)
    return np.array(out)


def load_annotations(path):
    times = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            times.append(float(line.split()[0]))
    return merge_close(times)


def annotated_sets():
    """(name, audio, onsets) for the MDB drum stems and the madmom sample."""
    sets = []
    for wav in sorted(glob.glob(os.path.join(DATA, "drums", "*.wav"))):
        name = os.path.basename(wav)[:-4]
        sets.append((name, wav, os.path.join(DATA, "drums", name + ".onsets.txt")))
    sets.append(("madmom-sample", os.path.join(DATA, "onsets", "sample.wav"),
                 os.path.join(DATA, "onsets", "sample.onsets")))
    return sets


def check(tol=0.05, **kw):
    print(f"# proxy onset detector vs human annotations, tolerance {tol * 1000:.0f} ms, "
          f"one-to-one greedy; annotations within 30 ms merged")
    print("| set | onsets | detected | TP | precision | recall | F1 | median signed err ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    tot = [0, 0, 0]
    all_err = []
    for name, wav, ann in annotated_sets():
        truth = load_annotations(ann)
        pred, _ = detect(wav, **kw)
        pairs = greedy_match(pred, truth, tol)
        err = [pred[i] - truth[j] for i, j in pairs]
        all_err += err
        p, r, f = prf(len(pairs), len(pred), len(truth))
        tot[0] += len(pairs)
        tot[1] += len(pred)
        tot[2] += len(truth)
        print(f"| {name} | {len(truth)} | {len(pred)} | {len(pairs)} | {p:.3f} | {r:.3f} | {f:.3f} "
              f"| {1000 * np.median(err):+.1f} |")
    p, r, f = prf(*tot)
    print(f"| **pooled** | {tot[2]} | {tot[1]} | {tot[0]} | {p:.3f} | {r:.3f} | **{f:.3f}** "
          f"| {1000 * np.median(all_err):+.1f} |")
    return f


HEADER = [
    "hits = onsets of the clip's own audio found by a spectral-flux onset detector that is",
    "independent of impactd's detector (eval/make_proxy_hits.py; F1 against human",
    "annotations in eval/README.md). Every percussive sound becomes a 'hit', seen or not.",
    "Media paths are relative to this file: ../../shared/data is /work/shared/data, read in",
    "place and not part of the project.",
]


def write_manifest(title, command, clips):
    """Prints a manifest; `clips` holds (name, media relative to eval/, negative reason or None)."""
    for line in title.split("\n"):
        print(f"# {line}")
    print("# Made by, from the repository root:")
    print(f"#     {command}")
    for line in HEADER:
        print("# " + line)
    for name, media, negative in clips:
        path = os.path.normpath(os.path.join(HERE, media))
        print()
        print("[[clip]]")
        print(f'name = "{name}"')
        print(f'media = "{media}"')
        print('hits_source = "audio-proxy"')
        pred, _ = detect(path)
        if negative is not None:
            head = f"# Negative clip ({negative}): no impact, so no hits. The proxy"
            if len(head) <= 96:
                print(head)
                print(f"# detector finds {len(pred)} onsets here; any impact event on it is a false alarm.")
            else:
                print(f"# Negative clip: {negative}.")
                print(f"# No impact, so no hits. The proxy detector finds {len(pred)} onsets here; any impact")
                print("# event on it is a false alarm.")
            print("hits = []")
            continue
        for line in NOTES.get(name, []):
            print("# " + line)
        body = ", ".join(f"{t:.3f}" for t in pred)
        lines, line = [], ""
        for tok in body.split(", "):
            piece = tok + ", "
            if len(line) + len(piece) > 92:
                lines.append(line.rstrip())
                line = ""
            line += piece
        lines.append(line.rstrip().rstrip(","))
        print("hits = [")
        for ln in lines:
            print("    " + ln)
        print("]")


def manifest():
    clips = sorted(glob.glob(os.path.join(DATA, "real-clips", "*.mp4")))
    write_manifest(
        "Real clips with audio-proxy hit times (NOT human annotations).",
        "python3 eval/make_proxy_hits.py --manifest > eval/real-clips.toml",
        [(n, f"../../shared/data/real-clips/{n}.mp4", NEGATIVES.get(n))
         for n in (os.path.basename(c)[:-4] for c in clips)],
    )


# The real-pool clips that models/train/make_model.py never trains on (its real_pool(); keep the
# two rules the same): clips with visible impacts about the evaluation's subjects, and the
# validation third of the clips without impacts (crc32 of the file name % 3 == 0).
EVAL_SUBJECTS = ["drum", "hammer", "dog", "cough", "tennis"]


def pool_holdout(neg_fold=0):
    """neg_fold: the third of the clips without impacts held out (make_model.py --neg-fold);
    0 is eval/pool-holdout.toml, 1 and 2 the same clips with impacts beside that fold's
    negatives (what a network trained with --neg-fold 1 or 2 never saw)."""
    import csv
    import zlib

    clips = []
    with open(os.path.join(DATA, "real-pool", "manifest.csv")) as f:
        for row in csv.DictReader(f):
            text = (row["file"] + " " + row["description"]).lower()
            media = f"../../shared/data/real-pool/{row['file']}"
            name = row["file"][:-4]
            if row["impacts_visible"] == "no" and zlib.crc32(row["file"].encode()) % 3 == neg_fold:
                clips.append((name, media, row["description"]))
            elif row["impacts_visible"] == "yes" and any(s in text for s in EVAL_SUBJECTS):
                clips.append((name, media, None))
    if neg_fold:
        title = (f"Held-out real-pool clips with audio-proxy hit times (NOT human annotations) of\n"
                 f"models/train/make_model.py --neg-fold {neg_fold}: eval/pool-holdout.toml's clips with\n"
                 f"impacts, and the clips without impacts of fold {neg_fold} instead of fold 0.")
        command = (f"python3 eval/make_proxy_hits.py --pool-manifest --neg-fold {neg_fold} "
                   f"> eval/pool-fold{neg_fold}.toml")
    else:
        title = ("Held-out real-pool clips with audio-proxy hit times (NOT human annotations): the ones\n"
                 "models/train/make_model.py never trains on (about the evaluation's subjects, or without\n"
                 "impacts and in its validation third).")
        command = "python3 eval/make_proxy_hits.py --pool-manifest > eval/pool-holdout.toml"
    write_manifest(title, command, sorted(clips))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="*")
    ap.add_argument("--check", action="store_true", help="F1 against the annotated sets")
    ap.add_argument("--manifest", action="store_true", help="write eval/real-clips.toml to stdout")
    ap.add_argument("--pool-manifest", action="store_true",
                    help="write eval/pool-holdout.toml (held-out real-pool clips) to stdout")
    ap.add_argument("--neg-fold", type=int, default=0, choices=(0, 1, 2),
                    help="with --pool-manifest: the clips without impacts of this fold "
                         "(make_model.py --neg-fold; 0: eval/pool-holdout.toml)")
    ap.add_argument("--delta", type=float, default=DELTA)
    ap.add_argument("--ratio", type=float, default=RATIO)
    ap.add_argument("--tol", type=float, default=0.05)
    a = ap.parse_args()
    if a.check:
        check(a.tol, delta=a.delta, ratio=a.ratio)
    if a.manifest:
        manifest()
    if a.pool_manifest:
        pool_holdout(a.neg_fold)
    for f in a.files:
        pred, dur = detect(f, delta=a.delta, ratio=a.ratio)
        print(f"{f}\t{dur:.3f} s\t{len(pred)} onsets\t" + " ".join(f"{t:.3f}" for t in pred))
    if not (a.check or a.manifest or a.pool_manifest or a.files):
        ap.print_help()
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
