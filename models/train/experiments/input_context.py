#!/usr/bin/env python3
"""Does the per-frame encoder need more than one gray-diff frame? (models/train/README.md,
"What holds the synthetic numbers")

Trains the shipped network's shape on synthetic scenes only, with one of four inputs to the
encoder's stem, and prints train.validate()'s window r on a held-out part every 500 steps:
- `diff`: the shipped input, one gray-diff frame [1, 60, 80];
- `diff2`: this frame's gray-diff and the previous one's [2, 60, 80] (a second frame of
  motion, so the encoder can see a change of motion, not only motion);
- `luma`: this frame's gray-diff and its luma, (luma / 255 - 0.5) / 0.25, [2, 60, 80] (the
  scene itself: where the floor, the table, the wall are);
- `halfdiff`: this frame's gray-diff and the difference between its picture and the camera
  frame before it [2, 60, 80]: on scenes rendered at 24 fps (`impactd synth --fps 24`), the
  motion of the last 1/24 s beside that of the last 1/12 s, a picture between two 12-fps
  frames. `diff` on the same scenes is its control.
Everything else is train.py's (target, augmentation, optimiser, schedule); the contrast
augmentation scales every channel, and luma also gets a random offset.
No real clips, no fine-tuning, no export: a pilot, so compare its variants with each other.

`prepare` turns rendered scenes into a cache (per scene the 12-fps grid's frames and the camera
frame before each, at 80x60, uint8) that `train` reads, so 24-fps renders (16 GB for 3000
scenes) can be made, cached and deleted a chunk at a time (`--delete-media`).

    python models/train/experiments/input_context.py prepare --synth W/synth/train --cache C
    python models/train/experiments/input_context.py train --cache C --variant diff2 --seed 0
"""

import argparse
import json
import math
import pathlib
import sys
import time

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import train as tr  # noqa: E402


def prepare(path: pathlib.Path, cache: pathlib.Path) -> None:
    """One rendered scene -> CACHE/NAME.npz: `grid` (the 12-fps grid's frames, 80x60 uint8, as
    train.load_scene makes them), `before` (the camera frame before each grid frame: at 12 fps
    the previous grid frame, for the first frame itself), the target envelope and the impacts."""
    label = json.loads(path.read_text())
    luma, (a, b) = tr.read_y4m_luma(path.with_suffix(".y4m"))
    g = tr.grid_by_pts(np.arange(len(luma)), b, a)
    env = np.asarray(label["envelope"]["impacts"]["frame-mean"], np.float32)
    n = min(len(g), len(env))
    g = g[:n]
    np.savez(cache / f"{path.stem}.npz", grid=tr.box_resize(luma[g]),
             before=tr.box_resize(luma[np.maximum(g - 1, 0)]), env=np.maximum(env[:n], 0),
             impacts=np.array(tr.visible_frames(label), np.int64).reshape(-1, 2))


def load(path: pathlib.Path, variant: str) -> dict:
    z = np.load(path)
    small = z["grid"]
    d = tr.gray_diff(small).astype(np.float32)
    if variant == "diff":
        x = d[:, None]
    elif variant == "diff2":
        prev = np.zeros_like(d)
        prev[1:] = d[:-1]
        x = np.stack([d, prev], 1)
    elif variant == "luma":
        x = np.stack([d, (small.astype(np.float32) / 255 - 0.5) / 0.25], 1)
    else:
        x = np.stack([d, tr.half_diff(small, z["before"]).astype(np.float32)], 1)
    return {"x": x.astype(np.float16), "env": z["env"],
            "impacts": [tuple(map(int, r)) for r in z["impacts"]], "name": path.stem}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=["prepare", "train", "evaluate"])
    ap.add_argument("--synth", type=pathlib.Path, help="prepare: a folder of rendered scenes")
    ap.add_argument("--cache", type=pathlib.Path, required=True)
    ap.add_argument("--delete-media", action="store_true",
                    help="prepare: delete each scene's .y4m and .wav once cached")
    ap.add_argument("--variant", choices=["diff", "diff2", "luma", "halfdiff"], default="diff")
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--count", type=int, default=3000, help="training scenes (the first N by name)")
    ap.add_argument("--save", type=pathlib.Path, help="train: write the trained state_dict here; "
                    "evaluate: the state_dict to score")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    variant, channels = a.variant, 1 if a.variant == "diff" else 2

    if a.command == "prepare":
        if a.synth is None:
            ap.error("prepare needs --synth")
        a.cache.mkdir(parents=True, exist_ok=True)
        for p in sorted(a.synth.glob("scene-*.json")):
            prepare(p, a.cache)
            if a.delete_media:
                for ext in (".y4m", ".wav"):
                    p.with_suffix(ext).unlink(missing_ok=True)
        return 0
    paths = sorted(a.cache.rglob("*.npz"))[: a.count]  # one folder, or one per chunk
    t0 = time.time()
    scenes = [load(p, variant) for p in paths]
    print(f"{len(scenes)} scenes loaded in {time.time() - t0:.0f} s", flush=True)
    order = np.random.default_rng(0).permutation(len(scenes))
    n_val = min(150, len(scenes) // 5)
    val = [scenes[i] for i in order[:n_val]]
    train = [scenes[i] for i in order[n_val:]]

    def batch_windows(rng, batch, per_scene=3, augment=False, crop=0.0):
        xs, wins = [], []
        for slot, s in enumerate(batch):
            x = s["x"].astype(np.float32)
            if augment:
                if rng.random() < 0.5:
                    x = x[..., ::-1]
                gain = np.float32(math.exp(rng.uniform(-0.5, 0.4)))
                x = x * gain
                if variant == "luma":
                    x[:, 1] += np.float32(rng.uniform(-0.5, 0.5))
            xs.append(torch.from_numpy(np.ascontiguousarray(x)))
            wins += tr.scene_windows(rng, s, slot, per_scene)
        return xs, wins

    def run_windows(net, xs, wins):
        feats = [net.encoder(x) for x in xs]
        ws = []
        for slot, start, pad, _, _ in wins:
            f = feats[slot][start:start + tr.T - pad]
            if pad:
                f = torch.cat([f[:1].expand(pad, -1), f])
            ws.append(f)
        with torch.backends.mkldnn.flags(enabled=False):
            return net.head(torch.stack(ws))

    # train() and validate() call these through the module
    tr.batch_windows, tr.run_windows = batch_windows, run_windows
    if a.command == "evaluate":
        net = tr.ImpactNet()
        net.encoder.convs[0] = nn.Conv2d(channels, 16, 4, 4)
        net.load_state_dict(torch.load(a.save))
        print(f"{variant} {a.save}: {dense_r(net, val)}")
        return 0
    torch.manual_seed(a.seed)
    net = tr.ImpactNet()
    # a fresh encoder after the head, its stem replaced: the draws of the runs in the README
    net.encoder = tr.Encoder(1)
    net.encoder.convs[0] = nn.Conv2d(channels, 16, 4, 4)
    print(f"{variant}: {tr.params(net)} parameters", flush=True)
    info = tr.train(net, train, val, a.steps, seed=a.seed)
    print(f"final {variant} seed {a.seed}: {tr.validate(net, val)} ({info['minutes']:.1f} min)")
    if a.save:
        torch.save(net.state_dict(), a.save)
    return 0


@torch.no_grad()
def dense_r(net, scenes, stride: int = 8) -> str:
    """Mean window r over every window of the validation scenes that starts on a multiple of
    `stride` (no padding), each run as train.validate() runs its one window per scene: steadier
    than validate()'s one draw per scene."""
    net.eval()
    rs = []
    for s in scenes:
        x = torch.from_numpy(s["x"].astype(np.float32))
        wins = []
        for start in range(0, len(x) - tr.T + 1, stride):
            tgt, cls = tr.window_target(s["env"], s["impacts"], start, 0)
            wins.append((0, start, 0, tgt, cls))
        env, _ = tr.run_windows(net, [x], wins)
        for j, w in enumerate(wins):
            p, t = env[j].numpy(), w[3]
            if t.std() > 1e-6 and p.std() > 1e-6:
                rs.append(float(np.corrcoef(p, t)[0, 1]))
    return f"dense window r {np.mean(rs):.3f} over {len(rs)} windows"


if __name__ == "__main__":
    sys.exit(main())
