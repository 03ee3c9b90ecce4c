#!/usr/bin/env python3
"""Fallback synthetic scenes in the label contract of `impactd synth` (version 1).

`impactd synth` (branch `synth`) is the project's scene generator; this is a small numpy
stand-in with the same output layout, used when the impactd binary has no `synth` command yet
and to test the training pipeline end to end. Per scene it writes NAME.y4m (4:2:0, gray scene:
U = V = 128), NAME.wav (44.1 kHz mono int16) and NAME.json (the label), and a manifest.toml that
`impactd eval` reads (hits = visible and audible impacts).

What a scene shows (160x120, a textured wall and a floor): 0-3 impacts of three classes,
- drop: a block falls from the top onto the floor,
- hit: a stick swings down onto a block resting on the floor, then lifts,
- collision: two blocks slide into each other (or a ball flies into the wall),
each with a knock (three damped partials, loudness from the speed); some are silent (soft
objects) and some sounds have no visible cause (clicks, babble, hum, music). Distractors move
without touching anything (a drifting block, a waving blob, a lighting change), so motion alone
is not an impact.

Usage: python fakescenes.py --out DIR --count N [--seed S] [--fps F] [--jobs J]
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys
from concurrent.futures import ProcessPoolExecutor

import numpy as np

W, H = 160, 120
RATE = 44100
FLOOR_Y = 100
G = 700.0  # px / s^2
CLASSES = ["hit", "collision", "drop"]
MATERIALS = {  # partial frequencies (Hz), decay (s)
    "wood": ([420, 910, 1730], 0.05),
    "metal": ([1240, 2710, 4350], 0.25),
    "plastic": ([650, 1480, 2900], 0.04),
    "stone": ([300, 760, 1900], 0.03),
    "glass": ([1800, 3900, 6100], 0.12),
}


# ------------------------------------------------------------------------------------------
# envelope (DESIGN.md): |x|, Gaussian sigma 200 (reflect, truncate 4), frame-mean or seed
# ------------------------------------------------------------------------------------------

def smooth(a: np.ndarray) -> np.ndarray:
    sigma = 200.0 * RATE / 44100
    r = int(4.0 * sigma + 0.5)
    x = np.arange(-r, r + 1)
    k = np.exp(-(x * x) / (2 * sigma * sigma))
    k /= k.sum()
    padded = np.concatenate([a[:r][::-1], a, a[-r:][::-1]])
    n = len(padded) + len(k) - 1
    nfft = 1 << (n - 1).bit_length()
    out = np.fft.irfft(np.fft.rfft(padded, nfft) * np.fft.rfft(k, nfft), nfft)[:n]
    return out[2 * r: 2 * r + len(a)]


def envelopes(x: np.ndarray, frames: int) -> dict:
    s = smooth(np.abs(x).astype(np.float64))
    seed, mean = [], []
    for k in range(frames):
        i = min(int(math.floor(k * RATE / 12 + 0.5)), len(s) - 1)
        seed.append(float(s[i]))
        a = max(0, math.ceil((k - 0.5) * RATE / 12))
        b = min(len(s), math.ceil((k + 0.5) * RATE / 12))
        mean.append(float(s[a:b].mean()) if b > a else 0.0)
    return {"seed": [round(max(v, 0.0), 7) for v in seed], "frame-mean": [round(max(v, 0.0), 7) for v in mean]}


# ------------------------------------------------------------------------------------------
# sounds
# ------------------------------------------------------------------------------------------

def knock(rng, material: str, peak: float) -> np.ndarray:
    freqs, decay = MATERIALS[material]
    n = int(RATE * min(0.8, decay * 6 + 0.05))
    t = np.arange(n) / RATE
    y = np.zeros(n)
    for i, f in enumerate(freqs):
        f = f * rng.uniform(0.9, 1.1)
        y += (0.6 ** i) * np.sin(2 * np.pi * f * t + rng.uniform(0, 6.28)) * np.exp(-t / (decay / (1 + 0.5 * i)))
    y += rng.normal(0, 0.3, n) * np.exp(-t / 0.008)  # contact noise
    y[: int(0.0015 * RATE)] *= np.linspace(0, 1, int(0.0015 * RATE))
    return y / (np.abs(y).max() + 1e-9) * peak


def unseen(rng, kind: str, dur: float, peak: float) -> np.ndarray:
    n = int(RATE * dur)
    t = np.arange(n) / RATE
    if kind == "click":
        n = int(RATE * 0.03)
        t = t[:n]
        y = rng.normal(0, 1, n) * np.exp(-t / 0.004)
    elif kind == "babble":
        y = rng.normal(0, 1, n)
        y = np.convolve(y, np.ones(20) / 20, mode="same")
        y *= 0.5 + 0.5 * np.abs(np.sin(2 * np.pi * rng.uniform(3, 6) * t))
    elif kind == "hum":
        f = rng.choice([100.0, 120.0, 150.0])
        y = np.sin(2 * np.pi * f * t) + 0.3 * np.sin(4 * np.pi * f * t)
    else:  # music
        y = np.zeros(n)
        notes = rng.uniform(220, 880, 4)
        for i, f in enumerate(notes):
            seg = (t >= i * dur / 4) & (t < (i + 1) * dur / 4)
            y[seg] = np.sin(2 * np.pi * f * t[seg]) * np.exp(-(t[seg] - i * dur / 4) / 0.3)
    ramp = min(len(y) // 4, int(0.01 * RATE))
    if ramp > 1:
        y[:ramp] *= np.linspace(0, 1, ramp)
        y[-ramp:] *= np.linspace(1, 0, ramp)
    return y / (np.abs(y).max() + 1e-9) * peak


def mix_at(buf: np.ndarray, y: np.ndarray, t: float) -> None:
    i = int(round(t * RATE))
    if i >= len(buf):
        return
    j = min(len(buf), i + len(y))
    buf[i:j] += y[: j - i]


# ------------------------------------------------------------------------------------------
# pictures
# ------------------------------------------------------------------------------------------

def background(rng) -> np.ndarray:
    lo = rng.uniform(0, 1, (7, 9))
    img = np.kron(lo, np.ones((20, 20)))[:H, :W]
    for _ in range(2):
        img = (img + np.roll(img, 7, 0) + np.roll(img, 7, 1) + np.roll(img, -7, 0) + np.roll(img, -7, 1)) / 5
    base = rng.uniform(70, 170)
    img = base + (img - img.mean()) * rng.uniform(40, 110)
    img += rng.normal(0, rng.uniform(2, 8), (H, W))  # texture
    img[FLOOR_Y:] = img[FLOOR_Y:] * 0.6 + rng.uniform(20, 60)
    return img


def rect(img, x0, y0, x1, y1, shade):
    xa, xb = int(max(0, round(x0))), int(min(W, round(x1)))
    ya, yb = int(max(0, round(y0))), int(min(H, round(y1)))
    if xa < xb and ya < yb:
        img[ya:yb, xa:xb] = shade


def disc(img, cx, cy, r, shade):
    ya, yb = int(max(0, cy - r - 1)), int(min(H, cy + r + 2))
    xa, xb = int(max(0, cx - r - 1)), int(min(W, cx + r + 2))
    if ya >= yb or xa >= xb:
        return
    yy, xx = np.mgrid[ya:yb, xa:xb]
    m = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    img[ya:yb, xa:xb][m] = shade


def contrast(rng, bg):
    s = rng.uniform(0, 255)
    while abs(s - bg) < 50:
        s = rng.uniform(0, 255)
    return s


class Thing:
    """Something drawn at time t; impacts know their time."""

    def draw(self, img, t):
        raise NotImplementedError


class DropT(Thing):
    def __init__(self, rng, t_i, bg):
        self.s = rng.uniform(8, 20)
        self.x = rng.uniform(5, W - 5 - self.s)
        self.t_i = t_i
        self.y_land = FLOOR_Y - self.s
        h = rng.uniform(30, self.y_land + self.s)
        self.t0 = t_i - math.sqrt(2 * h / G)
        self.speed = G * (t_i - self.t0)
        self.y0 = self.y_land - h
        self.shade = contrast(rng, bg)
        self.bounce = rng.uniform(0, 0.25) * self.speed
        self.round = rng.random() < 0.4

    def y(self, t):
        if t < self.t0:
            return self.y0
        if t < self.t_i:
            return self.y0 + 0.5 * G * (t - self.t0) ** 2
        dt = t - self.t_i
        up = self.bounce * dt - 0.5 * G * dt * dt
        return self.y_land - max(0.0, up)

    def draw(self, img, t):
        y = self.y(t)
        if self.round:
            disc(img, self.x + self.s / 2, y + self.s / 2, self.s / 2, self.shade)
        else:
            rect(img, self.x, y, self.x + self.s, y + self.s, self.shade)


class HitT(Thing):
    def __init__(self, rng, t_i, bg):
        self.s = rng.uniform(10, 22)
        self.x = rng.uniform(10, W - 10 - self.s)
        self.t_i = t_i
        self.top = FLOOR_Y - self.s
        self.len = rng.uniform(30, 55)
        self.rise = rng.uniform(25, 60)  # how high the tip starts above the target
        self.dur = rng.uniform(0.15, 0.45)  # swing-down time
        self.lift = rng.uniform(0.2, 0.6)
        self.speed = 2 * self.rise / self.dur
        self.shade = contrast(rng, bg)
        self.stick = contrast(rng, bg)
        self.w = rng.uniform(3, 6)
        self.tx = self.x + self.s / 2 + rng.uniform(-3, 3)
        self.hold = rng.uniform(0.3, 1.2)

    def tip(self, t):
        a = self.t_i - self.dur
        if t < a - self.hold:
            return None
        if t < a:
            return self.top - self.rise
        if t < self.t_i:
            u = (t - a) / self.dur
            return self.top - self.rise * (1 - u * u)
        if t < self.t_i + self.lift:
            u = (t - self.t_i) / self.lift
            return self.top - self.rise * u
        if t < self.t_i + self.lift + 0.3:
            return self.top - self.rise
        return None

    def draw(self, img, t):
        rect(img, self.x, self.top, self.x + self.s, FLOOR_Y, self.shade)
        tip = self.tip(t)
        if tip is not None:
            rect(img, self.tx - self.w / 2, tip - self.len, self.tx + self.w / 2, tip, self.stick)


class CollideT(Thing):
    def __init__(self, rng, t_i, bg):
        self.t_i = t_i
        self.wall = rng.random() < 0.35
        self.s = rng.uniform(8, 16)
        self.v1 = rng.uniform(40, 160)
        self.v2 = 0.0 if self.wall else rng.uniform(0, 140)
        self.speed = self.v1 + self.v2
        self.meet = rng.uniform(50, W - 50)
        self.y = FLOOR_Y - self.s if rng.random() < 0.6 else rng.uniform(30, FLOOR_Y - 20)
        self.s1, self.s2 = contrast(rng, bg), contrast(rng, bg)
        self.e = rng.uniform(0.0, 0.5)
        self.right = rng.random() < 0.5
        if self.wall:
            self.meet = W - 12 if self.right else 12

    def x1(self, t):
        dt = t - self.t_i
        return self.meet - (self.v1 * -dt if dt < 0 else -self.e * self.v1 * dt)

    def draw(self, img, t):
        sgn = 1 if self.right else -1
        dt = t - self.t_i
        d1 = self.v1 * dt if dt < 0 else -self.e * self.v1 * dt
        x1 = self.meet + sgn * d1 - (self.s if sgn > 0 else 0)
        if self.wall:
            wx = W - 12 if self.right else 0
            rect(img, wx, 10, wx + 12, FLOOR_Y, self.s2)
            disc(img, x1 + self.s / 2, self.y + self.s / 2, self.s / 2, self.s1)
            return
        rect(img, x1, self.y, x1 + self.s, self.y + self.s, self.s1)
        d2 = -self.v2 * dt if dt < 0 else self.e * self.v2 * dt
        x2 = self.meet + sgn * d2 + (0 if sgn > 0 else -self.s)
        rect(img, x2, self.y, x2 + self.s, self.y + self.s, self.s2)


class Drifter(Thing):
    """Moves smoothly and touches nothing."""

    def __init__(self, rng, bg):
        self.s = rng.uniform(8, 24)
        self.cx, self.cy = rng.uniform(30, W - 30), rng.uniform(20, FLOOR_Y - 30)
        self.ax, self.ay = rng.uniform(5, 40), rng.uniform(0, 20)
        self.f = rng.uniform(0.2, 1.5)
        self.ph = rng.uniform(0, 6.28)
        self.shade = contrast(rng, bg)
        self.blob = rng.random() < 0.5

    def draw(self, img, t):
        x = self.cx + self.ax * math.sin(2 * math.pi * self.f * t + self.ph)
        y = self.cy + self.ay * math.sin(2 * math.pi * self.f * 1.3 * t + self.ph)
        if self.blob:
            disc(img, x, y, self.s / 2, self.shade)
        else:
            rect(img, x - self.s / 2, y - self.s / 2, x + self.s / 2, y + self.s / 2, self.shade)


def make_scene(seed: int, fps: float, duration: float) -> tuple[np.ndarray, np.ndarray, dict]:
    rng = np.random.default_rng(seed)
    frames = int(round(duration * fps))
    grid_frames = int(math.floor(duration * 12 + 1e-9))
    bg = background(rng)
    mean_bg = float(bg.mean())
    n_imp = rng.choice([0, 1, 2, 3], p=[0.15, 0.35, 0.3, 0.2])
    times = []
    for _ in range(50):
        if len(times) >= n_imp:
            break
        t = rng.uniform(0.9, duration - 0.6)
        if all(abs(t - u) > 1.0 for u in times):
            times.append(t)
    times.sort()
    things, impacts = [], []
    audio = np.zeros(int(RATE * duration))
    stem = np.zeros_like(audio)
    mic = rng.choice(["ok", "dead", "muted"], p=[0.9, 0.05, 0.05])
    for t_i in times:
        cls = CLASSES[rng.integers(3)]
        thing = {"drop": DropT, "hit": HitT, "collision": CollideT}[cls](rng, t_i, mean_bg)
        things.append(thing)
        material = list(MATERIALS)[rng.integers(len(MATERIALS))]
        audible = rng.random() > 0.1
        peak_dbfs = float(np.clip(-34 + 14 * math.log10(1 + thing.speed / 20) + rng.normal(0, 3), -40, -3))
        if audible:
            y = knock(rng, material, 10 ** (peak_dbfs / 20))
            mix_at(stem, y, t_i)
        impacts.append({"t": round(t_i, 4), "class": cls, "scenario": cls, "sound": "knock" if audible else "none",
                        "objects": [type(thing).__name__.lower()], "material": material,
                        "speed": round(thing.speed / 100, 3), "visible": True, "audible": bool(audible),
                        "peak_dbfs": round(peak_dbfs, 2)})
    for _ in range(rng.choice([0, 1, 2], p=[0.3, 0.45, 0.25])):
        things.append(Drifter(rng, mean_bg))
    unseen_list = []
    for _ in range(rng.choice([0, 1, 2], p=[0.45, 0.35, 0.2])):
        kind = ["click", "babble", "hum", "music"][rng.integers(4)]
        t = rng.uniform(0.3, duration - 1.0)
        dur = 0.03 if kind == "click" else rng.uniform(0.4, 2.0)
        peak = 10 ** (rng.uniform(-36, -8) / 20)
        mix_at(audio, unseen(rng, kind, dur, peak), t)
        unseen_list.append({"t": round(t, 4), "kind": kind, "duration": round(dur, 3)})
    audio += stem
    flicker = rng.random() < 0.2
    noise = rng.uniform(0.5, 4)
    video = np.empty((frames, H, W), np.uint8)
    for k in range(frames):
        t = k / fps
        img = bg.copy()
        for th in things:
            th.draw(img, t)
        if flicker:
            img = img * (1 + 0.08 * math.sin(2 * math.pi * 0.4 * t))
        img += rng.normal(0, noise, (H, W))
        video[k] = np.clip(img, 0, 255).astype(np.uint8)
    audio += rng.normal(0, 10 ** (-60 / 20) / 1.25, len(audio))
    if mic == "dead":
        audio = rng.normal(0, 1e-4, len(audio))
    elif mic == "muted":
        audio *= 0.0
    label = {
        "version": 1, "seed": int(seed), "fps": float(fps), "width": W, "height": H,
        "frames": frames, "duration_s": float(duration), "sample_rate": RATE, "mic": str(mic),
        "impacts": impacts, "unseen_sounds": unseen_list,
        "envelope": {"full": envelopes(audio, grid_frames), "impacts": envelopes(stem, grid_frames)},
        "generator": "models/train/fakescenes.py",
    }
    return video, audio, label


def write_y4m(path: pathlib.Path, video: np.ndarray, fps: float) -> None:
    num, den = (int(round(fps * 1000)), 1000)
    chroma = np.full((H // 2) * (W // 2) * 2, 128, np.uint8).tobytes()
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{W} H{H} F{num}:{den} Ip A1:1 C420jpeg\n".encode())
        for fr in video:
            f.write(b"FRAME\n")
            f.write(fr.tobytes())
            f.write(chroma)


def write_wav(path: pathlib.Path, audio: np.ndarray) -> None:
    import wave
    pcm = np.clip(np.round(audio * 32767), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())


def one(args) -> tuple[str, list]:
    out, seed, fps, duration = args
    name = f"scene-{seed:06d}"
    if (out / f"{name}.json").is_file():  # written last: the scene is complete (a resumed run)
        label = json.loads((out / f"{name}.json").read_text())
    else:
        video, audio, label = make_scene(seed, fps, duration)
        write_y4m(out / f"{name}.y4m", video, fps)
        write_wav(out / f"{name}.wav", audio)
        (out / f"{name}.json").write_text(json.dumps(label))
    hits = [i["t"] for i in label["impacts"] if i["visible"] and i["audible"] and label["mic"] == "ok"]
    return name, hits


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=pathlib.Path, required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--fps", type=float, default=12.0)
    ap.add_argument("--duration", type=float, default=8.0)
    ap.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    jobs = [(a.out, a.seed + i, a.fps, a.duration) for i in range(a.count)]
    with ProcessPoolExecutor(a.jobs) as ex:
        results = list(ex.map(one, jobs, chunksize=8))
    lines = ["# written by models/train/fakescenes.py; hits = visible and audible impacts\n"]
    for name, hits in results:
        lines.append(f'[[clip]]\nname = "{name}"\nmedia = "{name}.y4m"\naudio = "{name}.wav"\n'
                     f"hits = [{', '.join(f'{h:.4f}' for h in hits)}]\n")
    (a.out / "manifest.toml").write_text("\n".join(lines))
    print(f"{a.count} scenes in {a.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
