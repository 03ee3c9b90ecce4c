#!/usr/bin/env python3
"""The input pilots' networks (input_context.py --save) and finished float models on the real
clips: envelope r at frame lags against each clip's own sound (models/train/README.md, "What
holds the synthetic numbers").

Each clip is read as make_model.py reads its real training clips (train.decode_real: the
daemon's 12-fps grid, and for `halfdiff` the decoded frame before each grid frame), each network
runs once over the whole clip (its causal head over every frame, not the daemon's 48-frame
windows), and r is taken against the clip's frame-mean envelope, not the daemon's
`observed_raw`: compare the rows of one table with each other, not with eval/envelope_lag.py's.
A positive lag means the prediction comes late.

    python models/train/experiments/pilots_on_real.py --manifest eval/real-clips.toml \\
        --manifest eval/pool-holdout.toml --pilot diff:net.pt --pilot halfdiff:h.pt \\
        --onnx models/impact-s1-float.onnx
"""

import argparse
import pathlib
import sys
import tomllib

import numpy as np
import torch
import torch.nn as nn

HERE = pathlib.Path(__file__).resolve()
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE.parents[3] / "eval"))
sys.dont_write_bytecode = True
import train as tr  # noqa: E402
from envelope_lag import lagged  # noqa: E402

LAGS = range(-1, 3)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--manifest", action="append", required=True)
    ap.add_argument("--pilot", action="append", default=[], help="VARIANT:CHECKPOINT")
    ap.add_argument("--onnx", action="append", default=[],
                    help="a float streaming model (its encoder beside it, as its sidecar names it)")
    a = ap.parse_args()
    nets = {}
    for spec in a.pilot:
        variant, path = spec.split(":", 1)
        net = tr.ImpactNet()
        net.encoder.convs[0] = nn.Conv2d(1 if variant == "diff" else 2, 16, 4, 4)
        net.load_state_dict(torch.load(path))
        nets[f"{variant} {path}"] = (variant, net.eval())
    for path in map(pathlib.Path, a.onnx):
        sidecar = tomllib.loads(path.with_suffix(".toml").read_text())
        net = tr.ImpactNet()
        tr.load_onnx_weights(net, path, path.parent / sidecar["encoder"]["file"])
        nets[str(path)] = ("diff", net.eval())
    clips = []
    for man in map(pathlib.Path, a.manifest):
        for c in tomllib.loads(man.read_text())["clip"]:
            clips.append((c.get("name", c["media"]), (man.parent / c["media"]).resolve(), bool(c["hits"])))
    rs = {k: {lag: [] for lag in LAGS} for k in nets}
    with_hits = {k: [] for k in nets}
    for name, media, hits in clips:
        s = tr.decode_real(media, before=True)
        for k, (variant, net) in nets.items():
            x = s["x"].astype(np.float32)[:, None]
            if variant == "halfdiff":
                x = np.concatenate([x, s["half"].astype(np.float32)[:, None]], 1)
            with torch.no_grad(), torch.backends.mkldnn.flags(enabled=False):
                env = net.head(net.encoder(torch.from_numpy(x))[None])[0][0].numpy()
            for lag in LAGS:
                r = lagged(env, s["env"], lag)
                rs[k][lag].append(np.nan if r is None else r)
            if hits:
                with_hits[k].append(rs[k][0][-1])
    print(f"{len(clips)} clips, {sum(h for *_, h in clips)} with hits: mean per-clip r\n")
    print("| network | " + " | ".join(f"lag {lag:+d}" for lag in LAGS) + " | clips with hits, lag 0 |")
    print("|---|" + "---|" * (len(LAGS) + 1))
    for k in nets:
        print(f"| {k} | " + " | ".join(f"{np.nanmean(rs[k][lag]):.3f}" for lag in LAGS)
              + f" | {np.nanmean(with_hits[k]):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
