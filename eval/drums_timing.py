#!/usr/bin/env python3
"""The audio side alone against human annotations: impactd's event times vs annotated onsets.

For each MDB Drums stem (../shared/data/drums/NAME.wav + NAME.onsets.txt) and the madmom sample
(../shared/data/onsets/sample.wav + sample.onsets):
  1. a still grey Y4M video of the audio's duration is made in a temporary folder
     (`ffmpeg -f lavfi -i color=gray:s=64x48:r=12 -t DUR -f yuv4mpegpipe STILL.y4m`);
  2. `impactd replay STILL.y4m --audio NAME.wav --events EVENTS.jsonl` runs; nothing moves, so
     every audio peak comes out as an `unseen_sound` event;
  3. the event times `t` are matched to the annotated onsets (one-to-one greedy, closest pair
     first, 50 ms) for precision / recall / F1, and the matched pairs give |t_event - t_onset|
     (median, 90th percentile) and the signed error t_event - t_onset.

Annotated onsets closer than 30 ms (kick + hi-hat struck together) are merged into one: one sound.
At 12 fps the detector reports at most one event per 83 ms frame (and needs a rise from the frame
before), so dense hi-hat patterns cannot all be found: recall is also given against the onsets at
least 150 ms after the previous onset ("isolated"). The frame-time column scores the events' frame
times (frame / 12 s, the frame's centre) instead of the refined `t`, to show what the refinement
(src/engine.rs Refiner::onset) adds.

Usage (from the repository root):
    python3 eval/drums_timing.py [--bin target/release/impactd] [--tol 0.05] [--config TOML]
        [--keep DIR]
"""

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.dont_write_bytecode = True  # no __pycache__ in eval/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_proxy_hits import DATA, duration, greedy_match, load_annotations, prf  # noqa: E402

ISOLATED_S = 0.150


def sets():
    out = []
    for wav in sorted(glob.glob(os.path.join(DATA, "drums", "*.wav"))):
        name = os.path.basename(wav)[:-4]
        out.append((name, wav, os.path.join(DATA, "drums", name + ".onsets.txt")))
    out.append(("madmom-sample", os.path.join(DATA, "onsets", "sample.wav"),
                os.path.join(DATA, "onsets", "sample.onsets")))
    return out


def run(binary, wav, work, name, config=None):
    still = os.path.join(work, name + ".still.y4m")
    events = os.path.join(work, name + ".events.jsonl")
    dur = duration(wav)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-nostdin", "-f", "lavfi", "-i",
                    "color=gray:s=64x48:r=12", "-t", f"{dur:.3f}", "-f", "yuv4mpegpipe", still],
                   check=True)
    if os.path.exists(events):
        os.remove(events)  # --events appends
    cmd = [binary, "replay", still, "--audio", wav, "--events", events]
    if config:
        cmd += ["--config", config]
    subprocess.run(cmd, check=True, capture_output=True)
    with open(events) as f:
        return [json.loads(line) for line in f if line.strip()], dur


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/impactd")
    ap.add_argument("--tol", type=float, default=0.05)
    ap.add_argument("--config", help="impactd config file (e.g. other detector thresholds)")
    ap.add_argument("--keep", help="keep the still videos and events in this folder")
    a = ap.parse_args()
    work = a.keep or tempfile.mkdtemp(prefix="impactd-drums-")
    os.makedirs(work, exist_ok=True)
    tol = a.tol
    print(f"tolerance {tol * 1000:.0f} ms, one-to-one greedy; annotated onsets within 30 ms merged")
    print()
    print("| set | s | onsets | events | kinds | TP | precision | recall | F1 "
          "| recall, isolated (>=150 ms) | median abs err ms | p90 abs err ms "
          "| F1 / median abs err with frame times |")
    print("|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    pooled = dict(tp=0, n_ev=0, n_on=0, iso_tp=0, iso_n=0, ftp=0)
    all_abs, all_signed, all_fabs = [], [], []
    per_set_signed = {}
    for name, wav, ann in sets():
        onsets = load_annotations(ann)
        events, dur = run(a.bin, wav, work, name, a.config)
        kinds = {}
        for e in events:
            kinds[e["kind"]] = kinds.get(e["kind"], 0) + 1
        t = np.array([e["t"] for e in events])
        tf = np.array([e["frame"] / 12.0 for e in events])
        pairs = greedy_match(list(t), list(onsets), tol)
        signed = np.array([t[i] - onsets[j] for i, j in pairs])
        iso = np.array([j == 0 or onsets[j] - onsets[j - 1] >= ISOLATED_S
                        for j in range(len(onsets))])
        iso_tp = sum(iso[j] for _, j in pairs)
        fpairs = greedy_match(list(tf), list(onsets), tol)
        fabs = np.array([abs(tf[i] - onsets[j]) for i, j in fpairs])
        p, r, f = prf(len(pairs), len(t), len(onsets))
        _, _, ff = prf(len(fpairs), len(tf), len(onsets))
        kinds_s = ", ".join(f"{v} {k}" for k, v in sorted(kinds.items()))
        med = np.median(np.abs(signed)) * 1000 if len(signed) else float("nan")
        p90 = np.percentile(np.abs(signed), 90) * 1000 if len(signed) else float("nan")
        fmed = np.median(fabs) * 1000 if len(fabs) else float("nan")
        print(f"| {name} | {dur:.1f} | {len(onsets)} | {len(t)} | {kinds_s} | {len(pairs)} "
              f"| {p:.3f} | {r:.3f} | {f:.3f} | {iso_tp}/{iso.sum()} ({iso_tp / iso.sum():.3f}) "
              f"| {med:.1f} | {p90:.1f} | {ff:.3f} / {fmed:.1f} |")
        pooled["tp"] += len(pairs)
        pooled["n_ev"] += len(t)
        pooled["n_on"] += len(onsets)
        pooled["iso_tp"] += iso_tp
        pooled["iso_n"] += int(iso.sum())
        pooled["ftp"] += len(fpairs)
        all_abs += list(np.abs(signed))
        all_signed += list(signed)
        all_fabs += list(fabs)
        per_set_signed[name] = signed
    p, r, f = prf(pooled["tp"], pooled["n_ev"], pooled["n_on"])
    _, _, ff = prf(pooled["ftp"], pooled["n_ev"], pooled["n_on"])
    print(f"| **pooled** | | {pooled['n_on']} | {pooled['n_ev']} | | {pooled['tp']} | {p:.3f} "
          f"| {r:.3f} | **{f:.3f}** | {pooled['iso_tp']}/{pooled['iso_n']} "
          f"({pooled['iso_tp'] / pooled['iso_n']:.3f}) | {np.median(all_abs) * 1000:.1f} "
          f"| {np.percentile(all_abs, 90) * 1000:.1f} "
          f"| {ff:.3f} / {np.median(all_fabs) * 1000:.1f} |")
    print()
    print("signed error t_event - t_onset of matched pairs, ms "
          "(negative: the event is earlier than the annotation)")
    print("| set | n | p10 | p25 | median | p75 | p90 | mean | share early (< 0) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    per_set_signed["**pooled**"] = np.array(all_signed)
    for name, s in per_set_signed.items():
        if not len(s):
            continue
        q = np.percentile(s * 1000, [10, 25, 50, 75, 90])
        print(f"| {name} | {len(s)} | " + " | ".join(f"{v:+.1f}" for v in q)
              + f" | {np.mean(s) * 1000:+.1f} | {np.mean(s < 0):.2f} |")
    if not a.keep:
        for fpath in glob.glob(os.path.join(work, "*")):
            os.remove(fpath)
        os.rmdir(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
