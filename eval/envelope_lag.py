#!/usr/bin/env python3
"""Is a model's envelope early or late against what is heard? Envelope r at frame lags.

DESIGN.md's envelope r compares the predicted envelope with `observed_raw` frame by frame. A
model whose peaks come a frame after the sound loses most of its r on sharp sounds while its
visual AP (0.125 s tolerance) hardly moves. This script replays each clip once per model
(`impactd replay --envelopes`, as eval/ceiling.py does) and prints the mean per-clip r of
`predicted[k + lag]` against `observed_raw[k]` for lags -3..3 frames: a positive best lag means
the prediction comes late. On a manifest of `impactd synth` scenes it also scores against the
label's clean sound of the visible impacts (`envelope.impacts.frame-mean`).

Usage (from the repository root):
    python3 eval/envelope_lag.py [--bin target/release/impactd] [--manifest eval/real-clips.toml]...
        [--out /tmp/impactd-lag] [--limit N] MODEL.onnx...
"""

import argparse
import json
import os
import pathlib
import sys
import tomllib

import numpy as np

sys.dont_write_bytecode = True  # no __pycache__ in eval/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ceiling import envelopes  # noqa: E402
from make_proxy_hits import pearson  # noqa: E402

LAGS = range(-3, 4)


def lagged(pred: np.ndarray, ref: np.ndarray, lag: int) -> float | None:
    """r of pred[k + lag] against ref[k] over the frames both have."""
    n = min(len(pred), len(ref))
    pred, ref = pred[:n], ref[:n]
    if lag >= 0:
        return pearson(pred[lag:], ref[: n - lag])
    return pearson(pred[:lag], ref[-lag:])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default="target/release/impactd")
    ap.add_argument("--manifest", action="append",
                    help="a manifest (repeat to pool several); default eval/real-clips.toml")
    ap.add_argument("--out", type=pathlib.Path, default=pathlib.Path("/tmp/impactd-lag"))
    ap.add_argument("--limit", type=int, default=0, help="the first N clips of each manifest (0: all)")
    ap.add_argument("models", nargs="+")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    rows = {}
    for man in map(pathlib.Path, a.manifest or ["eval/real-clips.toml"]):
        clips = tomllib.loads(man.read_text())["clip"]
        for e in clips[: a.limit or None]:
            media = (man.parent / e["media"]).resolve()
            audio = str((man.parent / e["audio"]).resolve()) if "audio" in e else None
            name = e.get("name", media.stem).replace("/", "_")
            label = media.with_suffix(".json")
            stem = (np.asarray(json.loads(label.read_text())["envelope"]["impacts"]["frame-mean"])
                    if label.exists() else None)
            for m in a.models:
                csv = a.out / f"{man.stem}.{name}.{pathlib.Path(m).stem}.csv"
                pred, _, raw = envelopes(a.bin, m, str(media), audio, csv)
                for against, ref in (("heard", raw), ("label", stem)):
                    if ref is None:
                        continue
                    for lag in LAGS:
                        r = lagged(pred, ref, lag)
                        if r is not None:
                            rows.setdefault((pathlib.Path(m).stem, against), {}).setdefault(lag, []).append(r)
    print("| model | against | " + " | ".join(f"lag {lag:+d}" for lag in LAGS) + " | best lag |")
    print("|---|---|" + "---|" * len(LAGS) + "---|")
    for (model, against), by_lag in rows.items():
        means = {lag: float(np.mean(v)) for lag, v in by_lag.items()}
        best = max(means, key=means.get)
        print(f"| {model} | {against} | " + " | ".join(f"{means[lag]:.3f}" for lag in LAGS)
              + f" | {best:+d} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
