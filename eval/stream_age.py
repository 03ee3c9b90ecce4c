#!/usr/bin/env python3
"""How a model's answer to a hit depends on how long the stream has been running.

A causal model carries the frames it has seen. This script replays every clip with hits of
the manifests (`impactd replay MEDIA --model M --envelopes CSV`), takes the predicted peak
within one 12-fps frame of each hit, and groups the hits by their time since the stream
started. Per model and group it prints the number of hits, the mean and median peak, and the
share of hits whose peak reaches `--threshold` (default 0.5, the default
`detector.visual_threshold`: a hit under it cannot become an impact event).

With `--restart S`, each clip is also replayed from S seconds in (ffmpeg cuts it into a
temporary file), and the hits after S are compared: the same frames, seen by a model that
has run for S seconds less. A model whose peaks are higher after the restart loses hits to
its own history, not to what the frames show.

Usage (from the repository root):
    python3 eval/stream_age.py [--bin target/release/impactd] --manifest eval/real-clips.toml
        [--manifest eval/pool-holdout.toml] [--bins 0,2,4] [--restart 2] MODEL.onnx...
"""

import argparse
import bisect
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import tomllib

sys.dont_write_bytecode = True  # no __pycache__ in eval/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ceiling import envelopes  # noqa: E402
from make_proxy_hits import float_list  # noqa: E402

FPS = 12.0


def peak_at(pred: list[float], t: float) -> float | None:
    """The largest predicted value within one frame of time t (s), None past the end."""
    k = round(t * FPS)
    if k >= len(pred):
        return None
    return max(pred[max(0, k - 1):k + 2])


def summary(peaks: list[float], threshold: float) -> str:
    if not peaks:
        return "0 | - | - | -"
    above = sum(p >= threshold for p in peaks)
    return (f"{len(peaks)} | {statistics.fmean(peaks):.2f} | {statistics.median(peaks):.2f} | "
            f"{above} ({100 * above / len(peaks):.0f} %)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default="target/release/impactd")
    ap.add_argument("--manifest", action="append", type=pathlib.Path, required=True)
    ap.add_argument("--bins", type=float_list, default="0,2,4",
                    help="group edges in seconds since the stream started")
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--restart", type=float, help="also replay each clip from this many seconds in")
    ap.add_argument("models", nargs="+", type=pathlib.Path)
    a = ap.parse_args()
    edges = a.bins
    if edges != sorted(edges):
        ap.error(f"--bins {','.join(f'{e:g}' for e in edges)}: expected increasing numbers")
    clips = []
    for m in a.manifest:
        if not m.is_file():
            ap.error(f"manifest {m}: no such file")
        for c in tomllib.loads(m.read_text())["clip"]:
            if c.get("hits"):
                clips.append((c.get("name", pathlib.Path(c["media"]).stem), m.parent / c["media"], c["hits"]))
    labels = [f"{lo:g}-{hi:g} s" for lo, hi in zip(edges, edges[1:])] + [f"{edges[-1]:g} s and later"]

    def group(t: float) -> int | None:
        """Index of the last edge at or before t; None before the first."""
        i = bisect.bisect_right(edges, t) - 1
        return i if i >= 0 else None

    print(f"{len(clips)} clips with hits; peak = largest predicted value within one frame of a hit; "
          f"threshold {a.threshold:g}\n")
    print("| model | hits at | hits | mean peak | median peak | peaks >= threshold |")
    print("|---|---|---|---|---|---|")
    restarts = {}
    with tempfile.TemporaryDirectory(prefix="impactd-age-") as tmp:
        tmp = pathlib.Path(tmp)
        cut = {}
        if a.restart is not None:
            for name, media, _ in clips:
                out = tmp / f"{name}-from-{a.restart:g}.mkv"
                r = subprocess.run(["ffmpeg", "-v", "error", "-y", "-ss", str(a.restart), "-i", media,
                                    "-c:v", "ffv1", "-c:a", "pcm_s16le", out], capture_output=True, text=True)
                if r.returncode != 0:
                    sys.exit(f"ffmpeg could not cut {media} at {a.restart} s: {r.stderr.strip()[-400:]}")
                cut[name] = out
        for model in a.models:
            groups = [[] for _ in edges]
            late_full, late_cut = [], []
            for name, media, hits in clips:
                pred = envelopes(a.bin, model, media, None, tmp / "env.csv")[0]
                for t in hits:
                    p, g = peak_at(pred, t), group(t)
                    if p is not None and g is not None:
                        groups[g].append(p)
                if name in cut:
                    pc = envelopes(a.bin, model, cut[name], None, tmp / "env.csv")[0]
                    for t in hits:
                        if t >= a.restart + 1 / FPS:
                            p, q = peak_at(pred, t), peak_at(pc, t - a.restart)
                            if p is not None and q is not None:
                                late_full.append(p)
                                late_cut.append(q)
            for label, peaks in zip(labels, groups):
                print(f"| {model.stem} | {label} | {summary(peaks, a.threshold)} |", flush=True)
            if a.restart is not None:
                restarts[model.stem] = (late_full, late_cut)
    if restarts:
        print(f"\nThe hits after {a.restart:g} s, replayed from the start and from {a.restart:g} s in:\n")
        print("| model | replayed from | hits | mean peak | median peak | peaks >= threshold |")
        print("|---|---|---|---|---|---|")
        for name, (full, cutp) in restarts.items():
            print(f"| {name} | 0 s | {summary(full, a.threshold)} |")
            print(f"| {name} | {a.restart:g} s | {summary(cutp, a.threshold)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
