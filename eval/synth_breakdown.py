#!/usr/bin/env python3
"""Where a model loses visual AP on synthetic scenes: its hits and its peaks, by what the label says.

Visual AP (DESIGN.md) ranks every local maximum of the predicted envelope against the hits (the
impacts both visible and audible). This script replays each scene of an `impactd synth` manifest
once (`impactd replay --envelopes`) and reads the label beside it, then says

- for the hits: how many have a predicted peak within the tolerance (0.125 s) at all, and of
  what height, by scenario kind, with how many of the missed ones have another visible impact
  within 0.25 s (bounces and clusters that one peak must stand for);
- for the peaks at or above a height: what lies within the tolerance: a hit, a visible impact
  that cannot be heard (a dead or muted microphone, a masked bounce), an impact out of sight,
  or nothing, and for the last how far the nearest impact is.

Usage (from the repository root):
    python3 eval/synth_breakdown.py --manifest SCENES/manifest.toml [--bin target/release/impactd]
        [--out /tmp/impactd-breakdown] [--height 0.5] MODEL.onnx
"""

import argparse
import collections
import json
import os
import pathlib
import sys
import tomllib

import numpy as np

sys.dont_write_bytecode = True  # no __pycache__ in eval/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ceiling import envelopes  # noqa: E402
from make_proxy_hits import local_maxima  # noqa: E402

TOL = 0.125
FPS = 12.0


def what_is_near(impacts, t):
    near = [i for i in impacts if abs(i["t"] - t) <= TOL]
    if any(i["visible"] and i["audible"] for i in near):
        return "hit"
    if any(i["visible"] for i in near):
        return "visible, not audible"
    return "out of sight" if near else "nothing"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default="target/release/impactd")
    ap.add_argument("--manifest", required=True, type=pathlib.Path,
                    help="a manifest written by `impactd synth` (labels beside the media)")
    ap.add_argument("--out", type=pathlib.Path, default=pathlib.Path("/tmp/impactd-breakdown"))
    ap.add_argument("--height", type=float, default=0.5, help="peaks at or above this are broken down")
    ap.add_argument("model")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    hits, peaks = [], []  # per hit: (kind, best peak height or 0, crowded); per peak: (height, what, gap)
    for e in tomllib.loads(a.manifest.read_text())["clip"]:
        media = (a.manifest.parent / e["media"]).resolve()
        label = media.with_suffix(".json")
        if not label.exists():
            sys.exit(f"{label}: no label beside {media}: synth_breakdown.py needs an `impactd synth` manifest")
        audio = str((a.manifest.parent / e["audio"]).resolve()) if "audio" in e else None
        csv = a.out / f"{e.get('name', media.stem).replace('/', '_')}.{pathlib.Path(a.model).stem}.csv"
        pred = envelopes(a.bin, a.model, str(media), audio, csv)[0]
        impacts = json.loads(label.read_text())["impacts"]
        pk = [(k / FPS, float(pred[k])) for k in local_maxima(pred)]
        for i in impacts:
            if not (i["visible"] and i["audible"]):
                continue
            best = max((h for t, h in pk if abs(t - i["t"]) <= TOL), default=0.0)
            crowded = any(j is not i and j["visible"] and abs(j["t"] - i["t"]) <= 0.25 for j in impacts)
            hits.append((i["scenario"], best, crowded))
        for t, h in pk:
            if h >= a.height:
                what = what_is_near(impacts, t)
                gap = min((abs(i["t"] - t) for i in impacts), default=None) if what == "nothing" else None
                peaks.append((h, what, gap))

    best = np.array([b for _, b, _ in hits])
    print(f"{a.manifest}, {pathlib.Path(a.model).name}: {len(hits)} visible and audible impacts "
          f"(before merging those closer than a frame)\n")
    print(f"| scenario | impacts | a peak within {TOL} s | a peak >= {a.height} | mean best peak |")
    print("|---|---|---|---|---|")
    by = collections.defaultdict(list)
    for kind, b, _ in hits:
        by[kind].append(b)
    for kind in sorted(by):
        v = np.array(by[kind])
        print(f"| {kind} | {len(v)} | {np.mean(v > 0):.2f} | {np.mean(v >= a.height):.2f} | {v.mean():.2f} |")
    print(f"| all | {len(best)} | {np.mean(best > 0):.2f} | {np.mean(best >= a.height):.2f} | {best.mean():.2f} |")
    missed = [c for _, b, c in hits if b == 0]
    if missed:
        print(f"\n{len(missed)} impacts have no peak within {TOL} s; {np.mean(missed):.0%} of them have another "
              "visible impact within 0.25 s.")
    print(f"\nPeaks >= {a.height}: {len(peaks)}\n")
    print("| within the tolerance | peaks | share |")
    print("|---|---|---|")
    counts = collections.Counter(w for _, w, _ in peaks)
    for w in ("hit", "visible, not audible", "out of sight", "nothing"):
        print(f"| {w} | {counts[w]} | {counts[w] / max(1, len(peaks)):.2f} |")
    gaps = np.array([g if g is not None else np.inf for _, w, g in peaks if w == "nothing"])
    if len(gaps):
        print(f"\nOf the {len(gaps)} peaks near nothing, the nearest impact is within 0.5 s for "
              f"{np.mean(gaps <= 0.5):.0%} (a peak in the wrong frame) and over 1 s away, or none, for "
              f"{np.mean(gaps > 1.0):.0%}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
