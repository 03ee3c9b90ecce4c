#!/usr/bin/env python3
"""What `detector.visual_threshold` trades: hits found against false impacts, per model.

An impact event needs a visual peak at least `detector.visual_threshold` high (default 0.5) and
a sound within a frame of it. This script runs `impactd eval` over the manifests once per model
and threshold (a config file with only that key) and prints, per row:

- on the clips with hits: impact events matched to a hit (tp), not matched (fp), and the
  share of hits found (event recall);
- on the negative clips (`hits = []`: sounds, nothing hit): impact events per minute, every one
  a false alarm, with the clips' total length (ffprobe).

Visual AP and envelope r do not depend on the threshold (they rank the predicted envelope);
`impactd eval` prints them. Choose the threshold on your own footage where you can: the numbers
here come from the held-out clips of the manifests, so reading the best row off them and quoting
that row as a result would tune on the test set.

`--key` sweeps another `[detector]` key instead (its values in `--thresholds`), and `--set
KEY=VALUE` fixes others, e.g. `--key audio_attack --thresholds 0,0.6,0.75 --set visual_threshold=0.55`.

Usage (from the repository root):
    python3 eval/threshold_sweep.py [--bin target/release/impactd] --manifest eval/real-clips.toml
        --manifest eval/pool-holdout.toml [--thresholds 0.3,0.4,0.5,0.6] MODEL.onnx...
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import tomllib

sys.dont_write_bytecode = True  # no __pycache__ in eval/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_proxy_hits import duration, float_list  # noqa: E402


def negatives(manifest: pathlib.Path) -> dict[str, float]:
    """Name -> length (s) of the manifest's clips without hits."""
    out = {}
    for c in tomllib.loads(manifest.read_text())["clip"]:
        if not c.get("hits"):
            media = manifest.parent / c["media"]
            out[c.get("name", pathlib.Path(c["media"]).stem)] = duration(media)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default="target/release/impactd")
    ap.add_argument("--manifest", action="append", type=pathlib.Path, required=True)
    ap.add_argument("--thresholds", type=float_list, default="0.3,0.4,0.5,0.6",
                    help="comma-separated values of the swept key (detector.visual_threshold)")
    ap.add_argument("--key", default="visual_threshold",
                    help="the [detector] key swept (default visual_threshold)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="another [detector] key, fixed for every row (repeatable)")
    ap.add_argument("models", nargs="+", type=pathlib.Path)
    a = ap.parse_args()
    for m in a.manifest:
        if not m.is_file():
            ap.error(f"manifest {m}: no such file")
    neg = {m: negatives(m) for m in a.manifest}
    neg_min = sum(sum(v.values()) for v in neg.values()) / 60
    print(f"{sum(len(v) for v in neg.values())} negative clips, {neg_min:.2f} min; "
          f"manifests: {', '.join(str(m) for m in a.manifest)}\n")
    fixed = []
    for kv in a.set:
        k, sep, v = kv.partition("=")
        if not sep or not k.strip() or not v.strip():
            ap.error(f"--set {kv!r}: expected KEY=VALUE, e.g. visual_threshold=0.55")
        fixed.append(f"{k.strip()} = {v.strip()}\n")
    if fixed:
        print("fixed: " + ", ".join(f.strip() for f in fixed) + "\n")
    print(f"| model | {a.key} | impacts matched / false (clips with hits) | event recall "
          "| false impacts per minute (negatives) |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="impactd-threshold-") as tmp:
        tmp = pathlib.Path(tmp)
        for model in a.models:
            for t in a.thresholds:
                cfg = tmp / f"t{t}.toml"
                cfg.write_text(f"[detector]\n{a.key} = {t}\n" + "".join(fixed))
                tp = fp = fn = nfp = 0
                for m in a.manifest:
                    out = tmp / "eval.json"
                    r = subprocess.run([a.bin, "eval", "--model", model, "--config", cfg, m, "--json", out],
                                       capture_output=True, text=True, env=dict(os.environ, RUST_LOG="error"))
                    if r.returncode != 0:
                        sys.exit(f"impactd eval --model {model} {m} failed: {r.stderr.strip()[-400:]}")
                    for c in json.loads(out.read_text())["clips"]:
                        e = c["event"]
                        if c["name"] in neg[m]:
                            nfp += e["fp"]
                        else:
                            tp, fp, fn = tp + e["tp"], fp + e["fp"], fn + e["fn"]
                rec = tp / (tp + fn) if tp + fn else float("nan")
                print(f"| {model.stem} | {t:g} | {tp} / {fp} | {rec:.2f} | "
                      f"{nfp / neg_min if neg_min else float('nan'):.1f} ({nfp}) |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
