#!/usr/bin/env python3
"""How much of the validation window r is timing? (models/train/README.md, "What holds the
synthetic numbers")

On the validation windows train.validate() scores (the same scenes, the same draws), the window
r of three predictions that know the label:
- `timing`: a fixed bump (train.window_target's, peak 1) on the frame of every visible impact:
  knows when each impact is, nothing about how loud;
- `timing, +-1 frame`: the same with each bump moved by -1, 0 or +1 frame at random;
- `clean sound`: the visible impacts' own envelope, unscaled (what the target is made from);
and, with --checkpoint (input_context.py --save, variant diff), the network's own; then, over
whole validation scenes, where the network's highest value within two frames of each isolated
visible impact (no other impact within three frames) lies, beside where the label's own
envelope peaks.

    python models/train/experiments/timing_oracle.py --synth W/synth [--checkpoint net.pt]
"""

import argparse
import collections
import math
import pathlib
import sys

import numpy as np
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import train as tr  # noqa: E402

BUMP = np.array([0.3, 1.0, 0.4, 0.15, 0.05], np.float32)


def bumps(impacts, start: int, pad: int, jitter=None) -> np.ndarray:
    out = np.zeros(tr.T, np.float32)
    for k, _ in impacts:
        j = k - start + pad - 1 + (int(jitter.integers(-1, 2)) if jitter is not None else 0)
        for q, v in enumerate(BUMP):
            if pad <= j + q < tr.T:
                out[j + q] = max(out[j + q], v)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--synth", type=pathlib.Path, required=True)
    ap.add_argument("--count", type=int, default=3000)
    ap.add_argument("--checkpoint", type=pathlib.Path)
    a = ap.parse_args()
    paths = sorted((a.synth / "train").glob("*.json"))[: a.count]
    order = np.random.default_rng(0).permutation(len(paths))  # input_context.py's split
    val = [tr.load_scene(paths[i]) for i in order[: min(150, len(paths) // 5)]]
    net = None
    if a.checkpoint:
        net = tr.ImpactNet()
        net.load_state_dict(torch.load(a.checkpoint))
        net.eval()
    rng, jitter = np.random.default_rng(123), np.random.default_rng(7)
    rs = {"timing": [], "timing, +-1 frame": [], "clean sound": [], "network": []}
    for i in range(0, len(val), 16):  # as train.validate() draws its windows
        batch = val[i:i + 16]
        xs, wins = tr.batch_windows(rng, batch, per_scene=1)
        env = None
        if net is not None:
            with torch.no_grad():
                env, _ = tr.run_windows(net, xs, wins)
        for j, (slot, start, pad, tgt, _) in enumerate(wins):
            s, t = batch[slot], tgt[pad:]
            if t.std() <= 1e-6:
                continue
            clean = np.zeros(tr.T, np.float32)
            seg = s["env"][start:start + tr.T - pad]
            clean[pad:pad + len(seg)] = seg
            preds = {"timing": bumps(s["impacts"], start, pad),
                     "timing, +-1 frame": bumps(s["impacts"], start, pad, jitter),
                     "clean sound": clean}
            if env is not None:
                preds["network"] = env[j].numpy()
            for k, p in preds.items():
                p = p[pad:]
                rs[k].append(float(np.corrcoef(p, t)[0, 1]) if p.std() > 1e-6 else 0.0)
    print("| prediction | mean window r | windows |\n|---|---|---|")
    for k, v in rs.items():
        if v:
            print(f"| {k} | {np.mean(v):.3f} | {len(v)} |")
    if net is not None:
        offsets(net, [paths[i] for i in order[: len(val)]])
    return 0


@torch.no_grad()
def offsets(net, paths) -> None:
    """Frame offsets (-2..+2) of the network's and the label's highest value around each
    isolated visible impact, the network run once over each whole scene."""
    import json
    net_at, label_at, total = collections.Counter(), collections.Counter(), 0
    for p in paths:
        s = tr.load_scene(p)
        label = json.loads(p.read_text())
        with torch.backends.mkldnn.flags(enabled=False):
            env, _ = net.head(net.encoder(torch.from_numpy(s["x"].astype(np.float32))[:, None])[None])
        env = env[0].numpy()
        every = [int(math.floor(i["t"] * tr.FPS + 0.5)) for i in label["impacts"]]
        for k, _ in s["impacts"]:
            if k < 2 or k + 3 > len(env):
                continue
            total += 1
            if sum(abs(q - k) <= 3 for q in every) > 1:
                continue
            net_at[int(env[k - 2:k + 3].argmax()) - 2] += 1
            label_at[int(s["env"][k - 2:k + 3].argmax()) - 2] += 1
    n = sum(net_at.values())
    print(f"\n{n} of {total} visible impacts are isolated; where the highest value within two "
          "frames lies:\n| offset (frames) | network | label |\n|---|---|---|")
    for o in range(-2, 3):
        print(f"| {o:+d} | {net_at[o]} | {label_at[o]} |")


if __name__ == "__main__":
    sys.exit(main())
