#!/usr/bin/env python3
"""impact-s1: data, network, training, ONNX export and int8 quantisation.

Used by make_model.py (the one command that makes the shipped model); the pieces are here so
that each can be read and tested on its own.

The network (streaming form of DESIGN.md):
- encoder, once per frame: gray-diff frame [1, 1, 60, 80] -> a 4x4 stride-4 "patchify"
  convolution (16 channels) -> two 3x3 stride-2 convolutions without padding (32, 32) (ReLU
  after each) -> flatten (32 x 3 x 4) -> linear -> ReLU -> 32 features. The stem and the
  missing padding follow /tmp/tract-notes.md (branch arm): a 3x3 convolution on the 1-channel
  input is tract's worst matmul shape, and each padded convolution costs tract a Pad op;
- head, once per window: features [1, 48, 32] -> 1-D convolutions over time (a kernel-3
  input convolution, then four causal residual blocks with dilations 1, 2, 4, 8: 32 frames of
  context) -> envelope [1, 48] (sigmoid) and class logits [1, 48, 3] (hit, collision, drop).
  The input convolution sees `lookahead` (0 or 1) frames after the frame it answers for. With
  0 (causal: the default and the shipped model) the engine takes a frame's value from the
  window that ends on it. With 1 (make_model.py `--lookahead 1`, sidecar `lookahead_frames =
  1`) a frame's value also uses the next frame, which shows what happened after the frame's
  own image was taken (frame k's audio interval is [(k - 0.5) / 12, (k + 0.5) / 12), its image
  is taken at k / 12: an impact in the second half is not in it yet), and the engine takes it
  from the window that ends one frame later: 83 ms more event latency.

Those are the defaults (the shipped model). make_model.py's `--width W` multiplies every layer's
channels (ImpactNet's `width`), and `--input 160x120` (set_input_size) feeds the network a finer
frame through a stem of kernel and stride 8 (stem_size); both were measured and did not ship
(models/train/README.md, "A wider network, a finer input").
"""

from __future__ import annotations

import json
import math
import pathlib
import re
import subprocess

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

T = 48
FPS = 12
IN_W, IN_H = 80, 60  # the model's input size; set_input_size changes it for a whole run
FEATURES = 32
CLASSES = ["hit", "collision", "drop"]
DIFF_STD = 0.1  # gray-diff (in [−1, 1]) is divided by this (sidecar input.std)
TARGET_FLOOR = 0.002  # window max of the impact-stem envelope below this: a silent window
MIN_PEAK = 0.8  # each visible impact's target peak is raised to at least this


# ------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------

def read_y4m_luma(path: pathlib.Path) -> tuple[np.ndarray, tuple[int, int]]:
    """All frames' Y planes [N, H, W] uint8 and the frame rate as the header's fraction
    (numerator, denominator)."""
    raw = path.read_bytes()
    nl = raw.index(b"\n")
    header = raw[:nl].decode().split()
    w = h = 0
    fps = (0, 1)
    chroma = "420"
    for tok in header[1:]:
        if tok[0] == "W":
            w = int(tok[1:])
        elif tok[0] == "H":
            h = int(tok[1:])
        elif tok[0] == "F":
            a, b = tok[1:].split(":")
            fps = (int(a), int(b))
        elif tok[0] == "C":
            chroma = tok[1:]
    if chroma.startswith("mono"):
        csize = 0
    elif chroma.startswith("444"):
        csize = 2 * w * h
    elif chroma.startswith("422"):
        csize = 2 * ((w + 1) // 2) * h
    else:
        csize = 2 * ((w + 1) // 2) * ((h + 1) // 2)
    frames = []
    pos = nl + 1
    while pos < len(raw):
        fl = raw.index(b"\n", pos)
        pos = fl + 1
        frames.append(np.frombuffer(raw, np.uint8, w * h, pos).reshape(h, w))
        pos += w * h + csize
    return np.stack(frames), fps


def set_input_size(size: str) -> None:
    """The model's input size for this run, "WxH": 80x60 (the shipped model) or a multiple of
    it, e.g. 160x120, the synthetic scenes' own size. The encoder's stem grows with it
    (stem_size), so the rest of the network sees the same 15x20 grid. Set it before loading
    scenes (load_scene scales them to it) and before making the network."""
    global IN_W, IN_H
    try:
        w, h = (int(v) for v in size.split("x"))
    except ValueError:
        raise ValueError(f"input size {size!r}: expected WxH, e.g. 160x120") from None
    if w % 80 or h % 60 or w // 80 != h // 60 or w < 80:
        raise ValueError(f"input size {w}x{h}: must be 80x60 or a multiple of it (160x120, ...)")
    IN_W, IN_H = w, h


def stem_size() -> int:
    """Kernel and stride of the encoder's patchify stem: 4 at 80x60, 8 at 160x120, ..."""
    return 4 * (IN_W // 80)


def box_resize(frames: np.ndarray, w: int | None = None, h: int | None = None) -> np.ndarray:
    """Area-average downscale [N, H, W] -> [N, h, w] (default: the input size; integer factors
    exact, as the daemon's box filter); other sizes via a separable area-weight matrix."""
    w, h = w or IN_W, h or IN_H
    n, sh, sw = frames.shape
    if sh % h == 0 and sw % w == 0:
        fy, fx = sh // h, sw // w
        x = frames.reshape(n, h, fy, w, fx).astype(np.float32).mean(axis=(2, 4))
        return np.floor(x + 0.5).astype(np.uint8)

    def weights(src, dst):
        m = np.zeros((dst, src), np.float32)
        scale = src / dst
        for i in range(dst):
            a, b = i * scale, (i + 1) * scale
            for j in range(int(a), min(src, int(math.ceil(b)))):
                m[i, j] = min(b, j + 1) - max(a, j)
            m[i] /= m[i].sum()
        return m

    my, mx = weights(sh, h), weights(sw, w)
    x = my @ frames.astype(np.float32) @ mx.T  # [h, H] @ [N, H, W] @ [W, w]
    return np.clip(np.floor(x + 0.5), 0, 255).astype(np.uint8)


def gray_diff(frames: np.ndarray) -> np.ndarray:
    """uint8 [N, h, w] -> float16 gray-diff / DIFF_STD, frame 0 = 0 (as the daemon's preprocess)."""
    x = frames.astype(np.float32) / 255.0
    d = np.zeros_like(x)
    d[1:] = x[1:] - x[:-1]
    return (d / DIFF_STD).astype(np.float16)


def half_diff(grid: np.ndarray, before: np.ndarray) -> np.ndarray:
    """uint8 [N, h, w] grid frames and the camera frame before each -> float16 (grid - before)
    / 255 / DIFF_STD: experiments/input_context.py's `halfdiff` channel (nothing the daemon makes)."""
    return ((grid.astype(np.float32) - before.astype(np.float32)) / 255 / DIFF_STD).astype(np.float16)


def visible_frames(label: dict) -> list[tuple[int, int]]:
    """(grid frame, class index) of each visible impact."""
    out = []
    for imp in label.get("impacts", []):
        if imp.get("visible", True):
            out.append((int(math.floor(imp["t"] * FPS + 0.5)), CLASSES.index(imp["class"])))
    return out


def load_scene(json_path: pathlib.Path) -> dict:
    """One synthetic scene: gray-diff frames at 12 fps and model size, the clean target envelope
    (impacts stem, frame-mean) and the visible impacts."""
    label = json.loads(json_path.read_text())
    y4m = json_path.with_suffix(".y4m")
    luma, (a, b) = read_y4m_luma(y4m)
    # frame i of a Y4M stream at a/b fps is at i * b / a s, as the daemon's Y4M reader times it
    small = box_resize(luma[grid_by_pts(np.arange(len(luma)), b, a)])
    env = np.asarray(label["envelope"]["impacts"]["frame-mean"], np.float32)
    n = min(len(small), len(env))
    return {"x": gray_diff(small[:n]), "env": np.maximum(env[:n], 0), "impacts": visible_frames(label),
            "name": json_path.stem}


def window_target(env: np.ndarray, impacts: list[tuple[int, int]], start: int, pad: int,
                  scale_floor: float = 0.0) -> tuple:
    """The training target of the window of T frames that starts at scene frame `start` (after
    `pad` padded frames): the impact stem's envelope scaled by its window maximum (ignoring the
    first two frames, which may hold the tail of an impact before the window), every visible
    impact's peak raised to at least MIN_PEAK; class index per frame (-1: no class).
    `scale_floor` (real clips: a share of the clip's loudest frame) keeps a quiet window's
    background noise from being scaled up to a full-height target."""
    real = T - pad
    e = env[start:start + real]
    tgt = np.zeros(T, np.float32)
    cls = np.full(T, -1, np.int64)
    m = float(e[2:].max()) if real > 2 else float(e.max(initial=0))
    m = max(m, scale_floor)
    if m >= TARGET_FLOOR:
        tgt[pad:] = np.clip(e / m, 0, 1)
    for k, c in impacts:
        j = k - start + pad
        if pad <= j < T:
            lo, hi = max(pad, j - 1), min(T, j + 4)
            local = tgt[lo:hi]
            peak = float(local.max(initial=0))
            if peak < MIN_PEAK:
                if peak > 0.05:
                    tgt[lo:hi] = np.clip(local * (MIN_PEAK / peak), 0, 1)
                else:
                    bump = np.array([0.3, MIN_PEAK, 0.4, 0.15, 0.05], np.float32)
                    b0 = j - 1
                    for i, v in enumerate(bump):
                        if pad <= b0 + i < T:
                            tgt[b0 + i] = max(tgt[b0 + i], v)
            for jj in (j - 1, j, j + 1):
                if pad <= jj < T:
                    cls[jj] = c
    return tgt, cls


# ------------------------------------------------------------------------------------------
# Network
# ------------------------------------------------------------------------------------------

def features_of(width: int) -> int:
    """The encoder's feature count at width multiplier `width` (1: the shipped model's 32)."""
    return FEATURES * width


def fast_stem_ok(stem: nn.Conv2d) -> bool:
    """Whether the stem may run as patchify(): in training, not in an ONNX export (which must
    see the convolution) and not under quantisation-aware fine-tuning (whose hooks and weight
    parametrisation are on the convolution module)."""
    from torch.nn.utils import parametrize
    return not (torch.onnx.is_in_onnx_export() or parametrize.is_parametrized(stem)
                or stem._forward_hooks or stem._forward_pre_hooks)


def patchify(x: torch.Tensor, stem: nn.Conv2d) -> torch.Tensor:
    """The stem convolution (kernel = stride = k, no padding) as one matrix product over the
    k x k patches: the same arithmetic, 4x faster in training than oneDNN's kernel-8 stride-8
    convolution on this machine (0.12 s against 0.48 s forward and backward over a batch's 576
    frames at 160x120). Only used above kernel 4, so the shipped 80x60 network trains exactly
    as it always has (its weights reproduce to the digit)."""
    k = stem.kernel_size[0]
    n, c, h, w = x.shape
    p = x.reshape(n, c, h // k, k, w // k, k).permute(0, 2, 4, 1, 3, 5).reshape(n, h // k, w // k, c * k * k)
    y = p @ stem.weight.reshape(stem.out_channels, -1).t() + stem.bias
    return y.permute(0, 3, 1, 2)


class Encoder(nn.Module):
    """One gray-diff frame [N, 1, IN_H, IN_W] -> features [N, 32 * width]. `width` multiplies
    every layer's channels (1: 16, 32, 32 -> 32 features, the shipped model); the stem's
    kernel and stride follow the input size (stem_size)."""

    def __init__(self, width: int = 1):
        super().__init__()
        c1, c2, out = 16 * width, 32 * width, features_of(width)
        self.features = out
        k = stem_size()
        self.convs = nn.ModuleList([
            nn.Conv2d(1, c1, k, k), nn.Conv2d(c1, c2, 3, 2), nn.Conv2d(c2, c2, 3, 2)])
        self.fc = nn.Linear(c2 * 3 * 4, out)
        # the linear layer's input and output: fake-quantised during quantisation-aware
        # fine-tuning (enable_qat), identities otherwise (no weights, nothing in the ONNX)
        self.fc_in, self.fc_out = nn.Identity(), nn.Identity()
        # each convolution's activation (after its ReLU): fake-quantised by enable_qat(fold=True),
        # identities otherwise
        self.act_q = nn.ModuleList([nn.Identity() for _ in self.convs])

    def act(self, i: int, x: torch.Tensor) -> torch.Tensor:
        return self.act_q[i](F.relu(x))

    def forward(self, x):
        first = 0
        if self.convs[0].kernel_size[0] > 4 and fast_stem_ok(self.convs[0]):
            x, first = self.act(0, patchify(x, self.convs[0])), 1
        for i in range(first, len(self.convs)):
            x = self.act(i, self.convs[i](x))
        # x @ W^T + b rather than nn.Linear's call: ONNX MatMul + Add, which both int8 formats
        # quantise to standard ops (QOperator would turn a Gemm into com.microsoft's QGemm,
        # which tract does not run)
        return F.relu(self.fc_out(self.fc_in(x.flatten(1)) @ self.fc.weight.t()) + self.fc.bias)


class Head(nn.Module):
    """Features [N, T, features] -> envelope [N, T], class logits [N, T, 3]."""

    def __init__(self, ch: int = 48, lookahead: int = 0, features: int = FEATURES):
        super().__init__()
        if lookahead not in (0, 1):
            raise ValueError(f"lookahead {lookahead}: the engine supports 0 or 1 frames")
        self.lookahead = lookahead
        # kernel 3 over frames t - 2 + lookahead .. t + lookahead (padded in forward: the
        # window's last `lookahead` positions see zeros for the frames not there yet)
        self.inp = nn.Conv1d(features, ch, 3)
        self.dil = [1, 2, 4, 8]
        self.blocks = nn.ModuleList([nn.Conv1d(ch, ch, 3, dilation=d) for d in self.dil])
        self.env = nn.Conv1d(ch, 1, 1)
        self.cls = nn.Conv1d(ch, len(CLASSES), 1)

    def forward(self, f):
        h = F.relu(self.inp(F.pad(f.transpose(1, 2), (2 - self.lookahead, self.lookahead))))
        for d, conv in zip(self.dil, self.blocks):
            h = h + F.relu(conv(F.pad(h, (2 * d, 0))))
        env = torch.sigmoid(self.env(h)).flatten(1)
        return env, self.cls(h).transpose(1, 2)


class ImpactNet(nn.Module):
    """Encoder and head; `width` multiplies the channels of both (1: the shipped model)."""

    def __init__(self, lookahead: int = 0, width: int = 1):
        super().__init__()
        self.width = width
        self.encoder = Encoder(width)
        self.head = Head(ch=48 * width, lookahead=lookahead, features=self.encoder.features)


class ClipForm(nn.Module):
    """The same network as one clip graph: frames [1, 1, T, 60, 80] (NCTHW) -> outputs."""

    def __init__(self, net: ImpactNet):
        super().__init__()
        self.net = net

    def forward(self, frames):
        x = frames.reshape(T, 1, IN_H, IN_W)
        f = self.net.encoder(x).reshape(1, T, self.net.encoder.features)
        return self.net.head(f)


class EnsembleEncoder(nn.Module):
    """The member networks' encoders side by side: one frame -> their features concatenated,
    [N, sum of the members' features]."""

    def __init__(self, encoders: list[Encoder]):
        super().__init__()
        self.members = nn.ModuleList(encoders)
        self.split = [e.features for e in encoders]
        self.features = sum(self.split)

    def forward(self, x):
        return torch.cat([e(x) for e in self.members], 1)


class EnsembleHead(nn.Module):
    """The members' heads, each on its own slice of the concatenated features; the envelope is
    the mean of theirs (values stay in [0, 1]), the class logits the mean of theirs."""

    def __init__(self, heads: list[Head], split: list[int]):
        super().__init__()
        if len({h.lookahead for h in heads}) != 1:
            raise ValueError("ensemble members differ in look-ahead")
        self.members = nn.ModuleList(heads)
        self.split = split
        self.lookahead = heads[0].lookahead

    def forward(self, f):
        outs = [h(p) for h, p in zip(self.members, f.split(self.split, dim=2))]
        env = torch.stack([o[0] for o in outs]).mean(0)
        return env, torch.stack([o[1] for o in outs]).mean(0)


class Ensemble(nn.Module):
    """Several trained ImpactNets (other seeds of one setting) as one network of the same
    streaming contract: the encoder returns every member's features, the head averages the
    members' outputs. Exported, quantised and run by the daemon as any ImpactNet is; it costs
    the members' sum. Averaging draws is the usual answer to a result that moves more between
    seeds than between settings (models/train/README.md, "An ensemble of seeds")."""

    def __init__(self, nets: list[ImpactNet]):
        super().__init__()
        self.width = nets[0].width
        self.encoder = EnsembleEncoder([n.encoder for n in nets])
        self.head = EnsembleHead([n.head for n in nets], self.encoder.split)


def params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# ------------------------------------------------------------------------------------------
# Training
# ------------------------------------------------------------------------------------------

def random_crop(rng, x: np.ndarray, crop: float) -> np.ndarray:
    """One scene's frames [n, h, w], cropped to a random 1 - crop .. 1 of each side (one
    region for all frames) and scaled back to h x w, bilinear. Gray-diff frames can be cropped
    as they are: cropping and scaling are linear, so they commute with the frame difference."""
    h, w = x.shape[1], x.shape[2]
    f = rng.uniform(1 - crop, 1)
    ch, cw = max(2, round(h * f)), max(2, round(w * f))
    y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    part = torch.from_numpy(np.ascontiguousarray(x[:, None, y0:y0 + ch, x0:x0 + cw]))
    return F.interpolate(part, size=(h, w), mode="bilinear", align_corners=False)[:, 0].numpy()


def batch_windows(rng, scenes: list[dict], per_scene: int = 3, augment: bool = False,
                  crop: float = 0.0):
    """Frames of the chosen scenes and, per window, (scene slot, start, pad, target, classes).
    `crop` (with `augment`): zoom each scene in by a random crop (random_crop)."""
    xs, wins = [], []
    for slot, s in enumerate(scenes):
        x = s["x"].astype(np.float32)
        if augment:
            # mirror images, and contrast / exposure from dim to harsh: real cameras differ
            # from the renderer in both, and the real clips are few
            if rng.random() < 0.5:
                x = x[:, :, ::-1]
            x = x * np.float32(math.exp(rng.uniform(-0.5, 0.4)))
            if crop > 0:
                # the network memorises the few real clips it trains on (models/train/README.md,
                # "Random crops"): a new framing of each clip at each draw
                x = random_crop(rng, x, crop)
        xs.append(torch.from_numpy(np.ascontiguousarray(x)))
        wins += scene_windows(rng, s, slot, per_scene)
    return xs, wins


def scene_windows(rng, s: dict, slot: int, per_scene: int) -> list[tuple]:
    """`per_scene` windows of one scene, (slot, start, pad, target, classes): the first one
    half the time at the scene's start behind 1 .. T - 9 padded frames (a stream's first
    seconds), the others anywhere in it. A scene with `starts` (loud_starts) draws its windows
    from those starts only, unpadded."""
    n, wins = len(s["x"]), []
    for w in range(per_scene):
        if "starts" in s:
            pad, start = 0, int(rng.choice(s["starts"]))
        elif w == 0 and rng.random() < 0.5:
            pad = int(rng.integers(1, T - 8))
            start = 0
        else:
            pad = 0
            start = int(rng.integers(0, max(1, n - T + 1)))
        tgt, cls = window_target(s["env"], s["impacts"], start, pad, s.get("scale_floor", 0.0))
        wins.append((slot, start, pad, tgt, cls))
    return wins


# The detector's defaults for an audio peak (src/detector.rs, DetectorConfig): louder than
# -50 dBFS of the smoothed |signal|, and 1.5 times the median of the 12 frames before it.
AUDIO_FLOOR = 10 ** (-50 / 20)
AUDIO_RATIO = 1.5
AUDIO_BACK = 12


def audio_peaks(heard: np.ndarray) -> np.ndarray:
    """The frames of a frame-mean envelope where the detector could see an audio peak: a local
    maximum above AUDIO_FLOOR and AUDIO_RATIO times the median of the AUDIO_BACK frames before it
    (the attack test is left out: the frame-mean grid cannot time a 20-ms rise). It is looser
    than the detector's own rule, which eval/audio_peaks_sweep.py re-implements exactly (a strict
    rise, the upper median): of the 33 real-pool clips without impacts, one gets 63
    loud windows here and 44 by that rule. The results of "Negatives only where the audio is
    loud" were measured with this one; a next try of the flag should call that function."""
    out = []
    for j in range(1, len(heard) - 1):
        v = heard[j]
        if v < AUDIO_FLOOR or v < heard[j - 1] or v < heard[j + 1]:
            continue
        back = heard[max(0, j - AUDIO_BACK):j]
        if v >= AUDIO_RATIO * float(np.median(back)):
            out.append(j)
    return np.asarray(out, np.int64)


def loud_starts(heard: np.ndarray) -> np.ndarray:
    """Starts of the T-frame windows of a clip that hold an audio peak (audio_peaks) after their
    first two frames: where the detector could call a false impact, if the network saw one.
    Training negatives only there was meant to teach "this is no impact" where it matters
    without "real footage is quiet"; over two paired runs it doubled the held-out false calls
    and cost the real clips with hits (models/train/README.md, "Negatives only where the audio
    is loud"), so make_model.py leaves it off by default."""
    peaks = audio_peaks(heard)
    n = len(heard) - T + 1
    return np.asarray([s for s in range(max(0, n)) if ((peaks >= s + 2) & (peaks < s + T)).any()], np.int64)


def run_windows(net: ImpactNet, xs: list[torch.Tensor], wins):
    feats = [net.encoder(x[:, None]) for x in xs]  # per scene [n, F]
    ws = []
    for slot, start, pad, _, _ in wins:
        f = feats[slot][start:start + T - pad]
        if pad:
            f = torch.cat([f[:1].expand(pad, -1), f])
        ws.append(f)
    # oneDNN's 1-D convolutions are ~10x slower than PyTorch's own here (measured: 0.9 s vs
    # 0.09 s per head step on 2 threads); the encoder's 2-D ones are faster with it.
    with torch.backends.mkldnn.flags(enabled=False):
        return net.head(torch.stack(ws))


def loss_of(env, logits, wins, class_weight: float = 0.3, lookahead: int = 0):
    tgt = torch.from_numpy(np.stack([w[3] for w in wins]))
    cls = torch.from_numpy(np.stack([w[4] for w in wins]))
    mask = torch.ones_like(tgt)
    for i, w in enumerate(wins):
        mask[i, : w[2]] = 0  # padded positions make no prediction
        mask[i, w[2]: w[2] + 2] *= 0.3  # the first two real frames may hold an earlier tail
    if lookahead:
        # the last frames answer without the frame after them (zeros): the engine uses them
        # only at a stream's end, so they are trained, with less weight
        mask[:, T - lookahead:] *= 0.3
    weight = mask * (1 + 4 * tgt)  # peaks are rare: weigh them up
    env_loss = (F.binary_cross_entropy(env.clamp(1e-6, 1 - 1e-6), tgt, reduction="none") * weight).sum() / weight.sum()
    sel = cls >= 0
    if sel.any():
        cls_loss = F.cross_entropy(logits[sel], cls[sel])
    else:
        cls_loss = torch.zeros(())
    return env_loss + class_weight * cls_loss, float(env_loss), float(cls_loss)


WARMUP_STEPS = 500


def train(net: ImpactNet, train_scenes: list[dict], val_scenes: list[dict], steps: int,
          seed: int = 0, scenes_per_step: int = 6, lr: float = 3e-3, log=print,
          poll=lambda: None, crop: float = 0.0) -> dict:
    """Trains for `steps` optimiser steps; `poll` is called every 20 steps (the caller's
    background work). The learning rate follows the step count, not the clock (a linear warm-up
    over WARMUP_STEPS, then a cosine down to 5 %), and every random draw comes from `seed`: the
    same data, seed, step count and thread count give the same weights however busy the machine
    is (the caller seeds the initial weights)."""
    import time
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    t0 = time.time()
    step = 0
    hist = []
    while step < steps:
        elapsed = time.time() - t0
        frac = step / steps
        # without the warm-up, one seeded start sat at the loss of a constant output for over
        # 1300 steps (models/train/README.md, run C)
        warm = min(1.0, (step + 1) / WARMUP_STEPS)
        for g in opt.param_groups:
            g["lr"] = lr * warm * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))
        idx = rng.choice(len(train_scenes), scenes_per_step, replace=False)
        xs, wins = batch_windows(rng, [train_scenes[i] for i in idx], augment=True, crop=crop)
        net.train()
        env, logits = run_windows(net, xs, wins)
        loss, le, lc = loss_of(env, logits, wins, lookahead=net.head.lookahead)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        hist.append((le, lc))
        if step % 20 == 0:
            poll()
        if step % 100 == 0:
            a = np.mean(hist[-100:], axis=0)
            msg = f"step {step} ({elapsed / 60:.1f} min): env loss {a[0]:.4f}, class loss {a[1]:.4f}"
            if val_scenes and step % 500 == 0:
                msg += f"; val {validate(net, val_scenes)}"
            log(msg)
    return {"steps": step, "minutes": (time.time() - t0) / 60}


@torch.no_grad()
def validate(net: ImpactNet, scenes: list[dict]) -> str:
    net.eval()
    rng = np.random.default_rng(123)
    rs, acc, n = [], 0, 0
    for i in range(0, len(scenes), 16):
        xs, wins = batch_windows(rng, scenes[i:i + 16], per_scene=1)
        env, logits = run_windows(net, xs, wins)
        for j, w in enumerate(wins):
            p, t = env[j].numpy()[w[2]:], w[3][w[2]:]
            if t.std() > 1e-6 and p.std() > 1e-6:
                rs.append(float(np.corrcoef(p, t)[0, 1]))
            sel = w[4] >= 0
            acc += int((logits[j].argmax(-1).numpy()[sel] == w[4][sel]).sum())
            n += int(sel.sum())
    return f"window r {np.mean(rs):.3f}, frame class acc {acc / max(1, n):.3f}"


# ------------------------------------------------------------------------------------------
# Quantisation-aware fine-tuning
# ------------------------------------------------------------------------------------------

class FakeQuant(nn.Module):
    """An activation as onnxruntime's static int8 quantisation will carry it (QUInt8, one scale
    and zero point per tensor, a range that always holds 0), rounded in the forward pass and
    passed straight through in the backward pass. The range is the first batch's min/max, then
    a moving average of the batches' while training, fixed in eval mode."""

    def __init__(self, momentum: float = 0.01):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("lo", torch.tensor(float("nan")))
        self.register_buffer("hi", torch.tensor(float("nan")))

    def forward(self, x):
        fresh = bool(torch.isnan(self.lo))
        if self.training or fresh:
            lo, hi = x.detach().min().clamp(max=0), x.detach().max().clamp(min=0)
            if fresh:
                self.lo.copy_(lo)
                self.hi.copy_(hi)
            else:
                self.lo.lerp_(lo, self.momentum)
                self.hi.lerp_(hi, self.momentum)
        scale = max(float(self.hi - self.lo) / 255, 1e-8)
        zero = min(255, max(0, round(-float(self.lo) / scale)))
        return torch.fake_quantize_per_tensor_affine(x, scale, zero, 0, 255)


class FakeQuantWeight(nn.Module):
    """A weight as quantise() stores it: QInt8, symmetric, one scale per tensor (max |w| / 127)."""

    def forward(self, w):
        scale = max(float(w.detach().abs().max()) / 127, 1e-8)
        return torch.fake_quantize_per_tensor_affine(w, scale, 0, -127, 127)


def enable_qat(net: ImpactNet, fold: bool = False) -> list:
    """Fake-quantises what quantise() will quantise: every convolution's input, weight and
    output, and the encoder's matrix product. Returns the hook handles for disable_qat.

    With `fold` (quantise(..., fold=True)), the encoder's convolutions are fake-quantised
    after their ReLU instead, once, as the folded int8 graph carries them: over [0, max]."""
    from torch.nn.utils import parametrize
    # with fold: the encoder convolutions whose output, and whose input, is already
    # fake-quantised after a ReLU (Encoder.act_q)
    handles, post_out, post_in = [], set(), set()
    if fold:
        for enc in encoders_of(net):
            enc.act_q = nn.ModuleList([FakeQuant() for _ in enc.convs])
            post_out |= {id(c) for c in enc.convs}
            post_in |= {id(c) for c in enc.convs[1:]}
    for m in net.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d)):
            if id(m) not in post_in:
                m.qat_in = FakeQuant()
                handles.append(m.register_forward_pre_hook(lambda mod, args: (mod.qat_in(args[0]),)))
            if id(m) not in post_out:
                m.qat_out = FakeQuant()
                handles.append(m.register_forward_hook(lambda mod, args, out: mod.qat_out(out)))
            parametrize.register_parametrization(m, "weight", FakeQuantWeight())
    for enc in encoders_of(net):
        enc.fc_in, enc.fc_out = FakeQuant(), FakeQuant()
        parametrize.register_parametrization(enc.fc, "weight", FakeQuantWeight())
    return handles


def encoders_of(net) -> list[Encoder]:
    """The Encoder modules of an ImpactNet (one) or an Ensemble (one per member)."""
    return list(net.encoder.members) if isinstance(net.encoder, EnsembleEncoder) else [net.encoder]


def heads_of(net) -> list[Head]:
    """The Head modules of an ImpactNet (one) or an Ensemble (one per member)."""
    return list(net.head.members) if isinstance(net.head, EnsembleHead) else [net.head]


def disable_qat(net: ImpactNet, handles: list) -> None:
    """Back to the plain float network (its latent float weights), as export() wants it."""
    from torch.nn.utils import parametrize
    for h in handles:
        h.remove()
    for m in net.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)) and parametrize.is_parametrized(m):
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=False)
        for k in ("qat_in", "qat_out"):
            if hasattr(m, k):
                delattr(m, k)
    for enc in encoders_of(net):
        enc.fc_in, enc.fc_out = nn.Identity(), nn.Identity()
        enc.act_q = nn.ModuleList([nn.Identity() for _ in enc.convs])


def qat_finetune(net: ImpactNet, train_scenes: list[dict], val_scenes: list[dict], steps: int,
                 seed: int, lr: float, log=print, fold: bool = False, crop: float = 0.0) -> dict:
    """Fine-tunes the trained float network for `steps` with int8 rounding in its forward pass,
    so that the int8 model quantise() makes from it loses less against it. The result is again
    a float network (the int8 model is made from it as from any other), with the same seeded
    schedule as train()."""
    handles = enable_qat(net, fold)
    try:
        log(f"quantisation-aware fine-tuning: {steps} steps at lr {lr:g}")
        info = train(net, train_scenes, val_scenes, steps, seed=seed, lr=lr, log=log, crop=crop)
    finally:
        disable_qat(net, handles)
    return info


# ------------------------------------------------------------------------------------------
# Class head: logit adjustment
# ------------------------------------------------------------------------------------------

def class_prior(labels: list[dict]) -> np.ndarray:
    """Share of each class among the visible impacts of these scene labels (JSON dicts)."""
    counts = np.zeros(len(CLASSES))
    for lab in labels:
        for _, c in visible_frames(lab):
            counts[c] += 1
    if counts.min() == 0:
        raise ValueError(f"class_prior: no training impact of class "
                         f"{CLASSES[int(counts.argmin())]!r}; counts {counts.tolist()}")
    return counts / counts.sum()


@torch.no_grad()
def adjust_class_logits(net: ImpactNet, prior: np.ndarray, tau: float) -> None:
    """Post-hoc logit adjustment (Menon et al., "Long-tail learning via logit adjustment",
    ICLR 2021): subtracts tau * log(prior) from the class head's bias, so that the head's argmax
    approximates the classifier that is right equally often on every class instead of the one
    that follows the training scenes' class mix (about 7 % hit, 42 % collision, 50 % drop: a
    plain argmax almost never says `hit`). The envelope is untouched; tau = 0 changes nothing."""
    for h in heads_of(net):  # an ensemble's mean logits move by the same amount
        h.cls.bias -= torch.from_numpy(tau * np.log(prior)).to(h.cls.bias.dtype)


@torch.no_grad()
def class_recall(net: ImpactNet, scenes: list[dict]) -> dict:
    """Per-class recall, accuracy and balanced accuracy (mean recall) of the class head on the
    visible impacts of these scenes, the whole scene run through the causal network at once
    (each frame sees the frames before it, as in the daemon)."""
    net.eval()
    pred, true = [], []
    for s in scenes:
        x = torch.from_numpy(s["x"].astype(np.float32))[:, None]
        with torch.backends.mkldnn.flags(enabled=False):
            _, logits = net.head(net.encoder(x)[None])
        for k, c in s["impacts"]:
            if k < logits.shape[1]:
                pred.append(int(logits[0, k].argmax()))
                true.append(c)
    pred, true = np.array(pred), np.array(true)
    recall = {name: float((pred[true == i] == i).mean()) if (true == i).any() else None
              for i, name in enumerate(CLASSES)}
    known = [v for v in recall.values() if v is not None]
    return {"impacts": len(true), "accuracy": float((pred == true).mean()) if len(true) else None,
            "balanced": float(np.mean(known)) if known else None, "recall": recall}


# ------------------------------------------------------------------------------------------
# Export and quantisation
# ------------------------------------------------------------------------------------------

def export(net: ImpactNet, out_dir: pathlib.Path, name: str) -> dict[str, pathlib.Path]:
    """Float ONNX files: NAME-encoder.onnx, NAME.onnx (head), NAME-clip.onnx (clip form)."""
    net.eval()
    paths = {"encoder": out_dir / f"{name}-encoder.onnx", "head": out_dir / f"{name}.onnx",
             "clip": out_dir / f"{name}-clip.onnx"}
    kw = dict(opset_version=17, dynamo=False, do_constant_folding=True)
    torch.onnx.export(net.encoder, (torch.zeros(1, 1, IN_H, IN_W),), str(paths["encoder"]),
                      input_names=["frame"], output_names=["features"], **kw)
    torch.onnx.export(net.head, (torch.zeros(1, T, net.encoder.features),), str(paths["head"]),
                      input_names=["features"], output_names=["envelope", "class_logits"], **kw)
    torch.onnx.export(ClipForm(net), (torch.zeros(1, 1, T, IN_H, IN_W),), str(paths["clip"]),
                      input_names=["frames"], output_names=["envelope", "class_logits"], **kw)
    return paths


def load_onnx_weights(net: ImpactNet, head: pathlib.Path, encoder: pathlib.Path) -> None:
    """Loads a float streaming pair that export() wrote (NAME.onnx: the head, NAME-encoder.onnx)
    back into `net`, which must have its shape (make_model.py --float-model: re-quantise a
    finished float model). Raises ValueError naming the file and the tensor that does not fit
    (an int8 file, an ensemble, another width)."""
    import onnx
    from onnx import numpy_helper
    got = {}
    for prefix, path in (("encoder.", encoder), ("head.", head)):
        for init in onnx.load(str(path)).graph.initializer:
            w = torch.from_numpy(numpy_helper.to_array(init).copy())
            name = init.name
            if prefix == "encoder." and name.startswith("onnx::MatMul"):
                # the linear layer's weight, exported as the right operand of x @ W^T
                name, w = "fc.weight", w.t().contiguous()
            got[prefix + name] = (path, w)
    want = net.state_dict()
    for k, v in want.items():
        path = encoder if k.startswith("encoder.") else head
        if k not in got:
            raise ValueError(f"{path}: no float tensor {k.split('.', 1)[1]} (not a float "
                             f"impact-s1-shaped {'encoder' if path == encoder else 'head'})")
        if got[k][1].shape != v.shape:
            raise ValueError(f"{path}: {k.split('.', 1)[1]} is {list(got[k][1].shape)}, this "
                             f"network's is {list(v.shape)}")
    extra = sorted(set(got) - set(want))
    if extra:
        path, _ = got[extra[0]]
        raise ValueError(f"{path}: tensor {extra[0].split('.', 1)[1]} is not in this network")
    net.load_state_dict({k: w for k, (_, w) in got.items()})


class _Reader:
    """onnxruntime CalibrationDataReader over a list of input dicts."""

    def __init__(self, items):
        self.items = iter(items)

    def get_next(self):
        return next(self.items, None)


def calibration_inputs(net: ImpactNet, scenes: list[dict], windows: int = 64, seed: int = 5):
    """Encoder inputs (single frames) and head inputs (feature windows) from held-out scenes."""
    rng = np.random.default_rng(seed)
    enc_in, head_in = [], []
    net.eval()
    with torch.no_grad():
        for s in scenes:
            x = torch.from_numpy(s["x"].astype(np.float32))[:, None]
            f = net.encoder(x).numpy()
            for k in rng.choice(len(x), 4, replace=False):
                enc_in.append({"frame": x[k:k + 1].numpy()})
            start = int(rng.integers(0, max(1, len(f) - T + 1)))
            if len(f) >= T:
                head_in.append({"features": f[None, start:start + T]})
            if len(head_in) >= windows:
                break
    return enc_in, head_in


def quantise(src: pathlib.Path, dst: pathlib.Path, inputs: list[dict], fmt: str,
             percentile: float | None = None, fold: bool = False) -> None:
    """int8 weights and activations for Conv/MatMul/Gemm, static calibration, QDQ or QOperator.
    Activation ranges are the calibration data's min and max, or with `percentile` (e.g. 99.99)
    that percentile's range (ORT's histogram calibrator): the encoder's activations are
    heavy-tailed (the stem's output: 99th percentile 0.6, maximum 13, on the calibration
    frames), so min/max leaves most activations a handful of the 256 levels
    (models/train/README.md, "An ensemble of seeds").

    With `fold` (make_model.py's default, and the shipped int8 files since 2026-12-06), a ReLU
    after a quantised convolution is folded into it: the convolution's int8 output covers the
    ReLU's range, [0, max], and goes straight to the next one. Without it, the output covers its
    own range, negative part included, and is dequantised, passed through the ReLU and
    quantised again."""
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process
    pre = dst.with_suffix(".pre.onnx")
    # no ORT graph optimisation first: it fuses MatMul + Add into Gemm, which QOperator turns
    # into com.microsoft QGemm (tract cannot run it)
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=True, skip_optimization=True)
    quantize_static(str(pre), str(dst), _Reader(inputs),
                    quant_format=QuantFormat.QDQ if fmt == "qdq" else QuantFormat.QOperator,
                    op_types_to_quantize=["Conv", "MatMul", "Gemm"] + (["Relu"] if fold else []),
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    per_channel=False,
                    calibrate_method=(CalibrationMethod.Percentile if percentile else
                                      CalibrationMethod.MinMax),
                    extra_options={"CalibPercentile": percentile} if percentile else {})
    pre.unlink()


# ------------------------------------------------------------------------------------------
# Real clips (self-supervised: their own audio)
# ------------------------------------------------------------------------------------------

SHOWINFO = re.compile(r"\bn:\s*\d+\s+pts:\s*(-?\d+)\s.*?\bs:(\d+)x(\d+)")
TIME_BASE = re.compile(r"config in time_base:\s*(\d+)/(\d+)")


def grid_by_pts(pts: np.ndarray, num: int, den: int, max_s: float | None = None) -> np.ndarray:
    """Indices of the frames (integer timestamps `pts`, increasing, in units of num/den s) that
    fill the 12-fps grid, by the rule of src/sources/grid.rs: grid point k at k / 12 s shows the
    frame whose timestamp is nearest (an exact tie: the earlier one), and the grid runs to the
    last frame's time plus half the last frame interval (1/12 s with one frame). Exact integer
    arithmetic, in units of 1 / (12 den) s, so ties are ties (at 15 and 30 fps many are)."""
    p = np.asarray(pts, np.int64) * (12 * num)  # frame times
    n = len(p)
    half = (p[-1] - p[-2]) if n > 1 else den  # twice the half interval (1/12 s is den units)
    last = 2 * p[-1] + half  # twice the end time
    k = np.arange(last // (2 * den) + 1, dtype=np.int64)
    if max_s is not None:
        k = k[k < max_s * FPS]
    t = k * den  # grid times
    j = np.searchsorted(p, t, side="left")  # first frame at or after t
    prev = np.clip(j - 1, 0, n - 1)
    nxt = np.clip(j, 0, n - 1)
    earlier = (j > 0) & ((j == n) | (t - p[prev] <= p[nxt] - t))
    return np.where(earlier, prev, nxt)


def decode_real(path: pathlib.Path, max_s: float = 15.0, before: bool = False) -> dict:
    """A real clip as the daemon sees it: the 12-fps grid filled from the decoded frames'
    timestamps (src/sources/grid.rs: nearest frame, ties the earlier), each frame's luma plane as
    stored (ffmpeg `extractplanes=y`, as src/sources/ffmpeg.rs: no range expansion), box-filtered
    to the model size and gray-diffed as src/preprocess.rs; and the frame-mean envelope of the
    first audio channel. Only the first `max_s` seconds. With `before`, also `half`: each grid
    frame minus the decoded frame before it (half_diff)."""
    import fakescenes as fs
    vid = subprocess.run(["ffmpeg", "-nostdin", "-v", "info", "-t", str(max_s), "-i", str(path),
                          "-map", "0:v:0", "-fps_mode", "passthrough",
                          "-vf", "showinfo,extractplanes=y,format=gray",
                          "-f", "rawvideo", "-"], capture_output=True, check=True)
    stderr = vid.stderr.decode(errors="replace")
    info = [m.groups() for m in SHOWINFO.finditer(stderr)]
    base = TIME_BASE.search(stderr)
    if not info or not base:
        raise ValueError(f"{path}: ffmpeg decoded no video frames")
    w, h = int(info[0][1]), int(info[0][2])
    frames = np.frombuffer(vid.stdout, np.uint8)
    if frames.size != len(info) * w * h:
        raise ValueError(f"{path}: {frames.size} bytes of pixels for {len(info)} frames of {w}x{h}")
    frames = frames.reshape(len(info), h, w)
    pts = np.array([int(i[0]) for i in info], np.int64)
    keep = np.concatenate([[True], np.diff(pts) > 0])  # as the daemon: a frame not after the last is dropped
    frames, pts = frames[keep], pts[keep]
    idx = grid_by_pts(pts, int(base.group(1)), int(base.group(2)), max_s)

    def resized(ix):
        return np.concatenate([box_resize(frames[ix[i:i + 32]]) for i in range(0, len(ix), 32)])

    grid = resized(idx)
    aud = subprocess.run(["ffmpeg", "-v", "error", "-t", str(max_s), "-i", str(path), "-af",
                          "pan=mono|c0=c0", "-ar", str(fs.RATE), "-f", "f32le", "-"],
                         capture_output=True, check=True).stdout
    a = np.frombuffer(aud, np.float32)
    env = np.asarray(fs.envelopes(a, len(grid))["frame-mean"], np.float32) if len(a) else np.zeros(len(grid), np.float32)
    floor = 0.25 * float(env.max(initial=0))
    out = {"x": gray_diff(grid), "env": env, "impacts": [], "name": path.stem, "scale_floor": floor}
    if before:
        out["half"] = half_diff(grid, resized(np.maximum(idx - 1, 0)))
    return out


class ProbeEncoder(nn.Module):
    """A model that only reports what it is fed: one feature per frame, the mean |gray-diff| (in
    luma / 255). With `ProbeHead` it lets the daemon show, through `impactd replay
    --envelopes`, the frames it feeds a model, to compare with what training reads
    (make_model.py, `decoding_check`)."""

    def forward(self, x):
        return (x.abs() * DIFF_STD).mean(dim=(2, 3))  # [1, 1, H, W] -> [1, 1]


class ProbeHead(nn.Module):
    def forward(self, f):
        return f[:, :, 0] * 1.0  # [1, T, 1] -> [1, T]: each frame's value as its envelope


def export_probe(out_dir: pathlib.Path) -> pathlib.Path:
    """probe-encoder.onnx and probe.onnx (the head) in `out_dir`; returns the head's path (the
    sidecar is make_model.py's)."""
    kw = dict(opset_version=17, dynamo=False)
    torch.onnx.export(ProbeEncoder(), (torch.zeros(1, 1, IN_H, IN_W),),
                      str(out_dir / "probe-encoder.onnx"), input_names=["frame"],
                      output_names=["features"], **kw)
    torch.onnx.export(ProbeHead(), (torch.zeros(1, T, 1),), str(out_dir / "probe.onnx"),
                      input_names=["features"], output_names=["envelope"], **kw)
    return out_dir / "probe.onnx"


def mean_abs_diff(x: np.ndarray) -> np.ndarray:
    """Per frame, what `ProbeEncoder` computes from training data (`gray_diff` output)."""
    return (np.abs(x.astype(np.float32)) * DIFF_STD).mean(axis=(1, 2))
