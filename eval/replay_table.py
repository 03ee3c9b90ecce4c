#!/usr/bin/env python3
"""Replay every clip of a manifest and tabulate what impactd reported.

For each clip: `impactd replay MEDIA --envelopes /tmp/NAME.csv --events /tmp/NAME.events.jsonl
--stats`, then one Markdown row: duration, source fps, events by kind, envelope r (Pearson of
predicted vs observed_raw over the CSV's frames), and how the audio-side events (impact +
unseen_sound) and the impacts line up with the manifest's hits (one-to-one greedy, 125 ms, as
`impactd eval`). The hits of eval/real-clips.toml are an audio proxy, not annotations.

Usage (from the repository root):
    python3 eval/replay_table.py [--bin target/release/impactd] [--manifest eval/real-clips.toml]
        [--out /tmp] [-- EXTRA REPLAY ARGS...]
"""

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tomllib

import numpy as np

sys.dont_write_bytecode = True  # no __pycache__ in eval/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_proxy_hits import greedy_match, pearson  # noqa: E402

TOL = 0.125


def probe_fps(media):
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "stream=avg_frame_rate", "-of", "csv=p=0", media],
                         check=True, capture_output=True, text=True).stdout.strip()
    num, _, den = out.partition("/")
    return float(num) / float(den or 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/impactd")
    ap.add_argument("--manifest", default="eval/real-clips.toml")
    ap.add_argument("--out", default="/tmp")
    ap.add_argument("extra", nargs="*", help="extra arguments for impactd replay (after --)")
    a = ap.parse_args()
    base = os.path.dirname(os.path.abspath(a.manifest))
    with open(a.manifest, "rb") as f:
        clips = tomllib.load(f)["clip"]
    print("| clip | duration s | fps | hits (proxy) | impact | unseen_sound | silent_impact "
          "| envelope r | audio events ~ hits (recall) | impacts ~ hits |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in clips:
        media = os.path.normpath(os.path.join(base, c["media"]))
        name = c.get("name") or os.path.splitext(os.path.basename(media))[0]
        csv_path = os.path.join(a.out, name + ".csv")
        ev_path = os.path.join(a.out, name + ".events.jsonl")
        if os.path.exists(ev_path):
            os.remove(ev_path)  # --events appends
        cmd = [a.bin, "replay", media, "--envelopes", csv_path, "--events", ev_path, "--stats"]
        cmd += a.extra
        if "audio" in c:
            cmd += ["--audio", os.path.normpath(os.path.join(base, c["audio"]))]
        err = subprocess.run(cmd, check=True, capture_output=True, text=True).stderr
        m = re.search(r"done: (\d+) frames \(([\d.]+) s\)", err)
        frames, dur = int(m.group(1)), float(m.group(2))
        with open(ev_path) as f:
            events = [json.loads(line) for line in f if line.strip()]
        kinds = {k: [e for e in events if e["kind"] == k]
                 for k in ("impact", "unseen_sound", "silent_impact")}
        with open(csv_path) as f:
            rows = list(csv.DictReader(f))
        pred = np.array([float(r["predicted"]) for r in rows])
        raw = np.array([float(r["observed_raw"]) for r in rows])
        r = pearson(pred, raw)
        r_text = "-" if r is None else f"{r:+.3f}"  # None: a constant envelope
        hits = c["hits"]
        audio_t = sorted(e["t"] for e in kinds["impact"] + kinds["unseen_sound"])
        imp_t = sorted(e["t"] for e in kinds["impact"])
        if hits:
            am = len(greedy_match(audio_t, hits, TOL))
            im = len(greedy_match(imp_t, hits, TOL))
            aud = f"{am}/{len(hits)} ({am / len(hits):.2f})"
            imp = f"{im}/{len(imp_t)} match"
        else:
            aud, imp = "- (negative)", f"{len(imp_t)} false"
        print(f"| {name} | {dur:.1f} | {probe_fps(media):.2f} | {len(hits)} "
              f"| {len(kinds['impact'])} | {len(kinds['unseen_sound'])} "
              f"| {len(kinds['silent_impact'])} | {r_text} | {aud} | {imp} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
