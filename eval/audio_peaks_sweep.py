#!/usr/bin/env python3
"""Offline re-run of impactd's audio peak rule on the real clips, for threshold suggestions.

Re-implements the audio half of src/detector.rs (ARCHITECTURE.md "Peaks"): frame k > 0 is an
audio peak when observed_raw[k] > observed_raw[k-1], >= observed_raw[k+1], >= the floor
(audio_floor_dbfs) and >= audio_ratio x the median of the prominence_frames (12) frames before it
(upper median for an even count, as the Rust code). It reads the `observed_raw` column of the CSVs
that eval/replay_table.py wrote (/tmp/NAME.csv), so it first checks that at the defaults it gives
exactly impactd's audio-event count (impact + unseen_sound) per clip.

It then scores each setting against the audio-proxy hits of eval/real-clips.toml (one-to-one
greedy, 125 ms): recall of the hits, and "extra" audio peaks that match no proxy hit. On the
negative clips (dog, cough) every audio peak is a correct unseen_sound or a false impact, so
they are reported as counts only.

A second envelope is tried, which DESIGN.md does not define: `frame-max`, the maximum of the
same Gaussian-smoothed |x| (sigma 200 samples at 44.1 kHz) over the frame's interval instead of
its mean, computed here from the clip's first audio channel. It keeps a short knock's height
instead of diluting it over 83 ms.

Usage (from the repository root, after eval/replay_table.py):
    python3 eval/audio_peaks_sweep.py [--manifest eval/real-clips.toml] [--csv-dir /tmp]
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import tomllib

import numpy as np
from scipy.ndimage import gaussian_filter1d

sys.dont_write_bytecode = True  # no __pycache__ in eval/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_proxy_hits import greedy_match  # noqa: E402

TOL = 0.125


def audio_peaks(raw, floor_dbfs=-50.0, ratio=2.0, back=12):
    floor = 10 ** (floor_dbfs / 20)
    out = []
    for k in range(1, len(raw)):
        right = raw[k + 1] if k + 1 < len(raw) else -np.inf
        if raw[k] > raw[k - 1] and raw[k] >= right and raw[k] >= floor:
            hist = np.sort(raw[max(0, k - back):k])
            bg = hist[len(hist) // 2] if len(hist) else 0.0
            if raw[k] >= ratio * bg:
                out.append(k)
    return out


def first_channel(media, rate=44100):
    cmd = ["ffmpeg", "-v", "error", "-nostdin", "-i", media, "-map", "0:a:0",
           "-af", "pan=mono|c0=c0", "-f", "f32le", "-ar", str(rate), "-"]
    raw = subprocess.run(cmd, check=True, stdout=subprocess.PIPE).stdout
    return np.frombuffer(raw, dtype="<f4").astype(np.float64)


def frame_env(x, n_frames, how, rate=44100):
    s = gaussian_filter1d(np.abs(x), 200 * rate / 44100, mode="reflect", truncate=4.0)
    out = np.zeros(n_frames)
    for k in range(n_frames):
        lo = max(0, int(np.floor((k - 0.5) / 12 * rate + 0.5)))
        hi = min(len(s), int(np.floor((k + 0.5) / 12 * rate + 0.5)))
        if hi > lo:
            out[k] = s[lo:hi].max() if how == "max" else s[lo:hi].mean()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--manifest", default="eval/real-clips.toml")
    ap.add_argument("--csv-dir", default="/tmp")
    a = ap.parse_args()
    base = os.path.dirname(os.path.abspath(a.manifest))
    with open(a.manifest, "rb") as f:
        clips = tomllib.load(f)["clip"]
    data = []
    print("check: clip, impactd audio events (impact + unseen_sound), this re-run at the defaults")
    for c in clips:
        name = c["name"]
        with open(os.path.join(a.csv_dir, name + ".csv")) as f:
            raw = np.array([float(r["observed_raw"]) for r in csv.DictReader(f)])
        with open(os.path.join(a.csv_dir, name + ".events.jsonl")) as f:
            ev = [json.loads(line) for line in f if line.strip()]
        n_audio = sum(e["kind"] != "silent_impact" for e in ev)
        sim = audio_peaks(raw)
        print(f"  {name}: {n_audio} {len(sim)}{'' if n_audio == len(sim) else '  MISMATCH'}")
        media = os.path.normpath(os.path.join(base, c["media"]))
        x = first_channel(media)
        data.append((name, c["hits"], {"frame-mean (impactd)": raw,
                                       "frame-max": frame_env(x, len(raw), "max")}))
    print()
    print("| envelope | audio_floor_dbfs | audio_ratio | proxy hits found (positives) "
          "| extra peaks (positives) | peaks on negatives (dog, cough) |")
    print("|---|---:|---:|---:|---:|---:|")
    for env in ("frame-mean (impactd)", "frame-max"):
        for floor, ratio in ((-50, 2.0), (-60, 2.0), (-50, 3.0), (-50, 1.5), (-50, 1.3),
                             (-50, 1.2)):
            found = total = extra = neg = 0
            for name, hits, envs in data:
                pk = audio_peaks(envs[env], floor, ratio)
                t = [k / 12 for k in pk]
                if not hits:
                    neg += len(pk)
                    continue
                m = len(greedy_match(t, hits, TOL))
                found += m
                total += len(hits)
                extra += len(pk) - m
            print(f"| {env} | {floor} | {ratio} | {found}/{total} ({found / total:.2f}) "
                  f"| {extra} | {neg} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
