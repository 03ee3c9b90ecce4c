#!/usr/bin/env python3
"""The one command that makes impact-s1: data, training, evaluation, ONNX, int8, sidecars, card.

From the repository root, with the pinned requirements in a venv (models/train/README.md):

    python models/train/make_model.py --work /tmp/impact-s1

1. builds `impactd` (release, with the `ort` feature for the side-by-side timings);
2. generates synthetic scenes (`impactd synth` when this build has it, else
   models/train/fakescenes.py): training (12 fps), calibration (held out, for int8) and a test
   set of >= 500 scenes at mixed camera rates (12, 15, 25, 30 fps), separate seeds;
3. reads ../shared/data/real-pool (when present): clips without visible impacts are split into
   training hard negatives and a validation half never trained on; clips with visible impacts
   whose subjects are not in eval/real-clips.toml train on their own audio's envelope; every
   real clip is read as the daemon reads it (train.decode_real), and a probe model replayed
   through impactd checks that, frame by frame, on those clips and on five synthetic scenes
   (`decoding_check`: the run stops naming the clip and frame where they differ);
4. trains on CPU (--threads, 2) for --steps (the learning rate follows the steps, not the clock, and
   the initial weights and every draw are seeded: a rerun gives the same weights); with
   --members N (1), N networks instead, seeds --seed .. --seed + N - 1, each in its own process
   with one torch thread (`--train-only`), joined into one network that averages their outputs
   (train.Ensemble); with --qat-steps, then fine-tunes the network with int8 rounding in the
   forward pass (train.qat_finetune); with --float-model, none of this: a finished float model
   is loaded as it is (train.load_onnx_weights), to be re-quantised and re-evaluated;
5. exports the float ONNX (streaming: encoder + head; and a clip-form copy for the equivalence
   check), quantises both graphs to int8 (QDQ and QOperator, calibrated on the held-out scenes,
   each ReLU folded into the convolution before it; with --encoder-percentile, the encoder's
   activation ranges at that percentile),
   times them in tract and onnxruntime with `impactd bench`, keeps the faster int8 format that
   loses at most --int8-limit (0.02) envelope r against float;
6. evaluates float, int8 and the motion baseline through the daemon (`impactd eval`) on the
   synthetic test set, eval/real-clips.toml and eval/pool-holdout.toml (and both together, with
   a paired bootstrap over clips: eval/ceiling.py), scores the synthetic test set's labels as a
   perfect visual model would predict them (eval/ceiling.py: the ceiling the targets are read
   against), counts impact calls per minute on the held-out real-pool clips without impacts,
   measures class accuracy on the synthetic test set;
7. writes models/impact-s1{,-encoder}.onnx (int8), models/impact-s1-float{,-encoder}.onnx,
   their sidecars, and the model card models/impact-s1.md with every number (into --out).

When neither int8 format is within the limit (one draw in three before the ReLU folding, none
of three since: models/train/README.md),
--out is left as it was, so the daemon's default model and the card beside it keep describing
one network; the run's float model, sidecar and card go to WORK/no-int8/, and the command exits
with status 2 and says so.
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import math
import os
import pathlib
import shutil
import subprocess
import sys
import time
import zlib

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import card  # noqa: E402
import train as tr  # noqa: E402

NAME = "impact-s1"
VERSION = "1"
SHARED = ROOT.parent / "shared" / "data"
EVAL_REAL = ROOT / "eval" / "real-clips.toml"
# the real-pool clips real_pool() never trains on, as a manifest (eval/make_proxy_hits.py
# --pool-manifest writes it with the same two rules)
EVAL_POOL = ROOT / "eval" / "pool-holdout.toml"
BASELINE = ROOT / "models" / "motion-baseline.onnx"
# subjects of eval/real-clips.toml: real-pool clips about these are never trained on
EVAL_SUBJECTS = ["drum", "hammer", "dog", "cough", "tennis"]
TEST_FPS = [12.0, 15.0, 25.0, 30.0]

LOG: list[str] = []


def log(msg: str) -> None:
    line = f"[{time.strftime('%H:%M:%S')}] {msg}"
    print(line, flush=True)
    LOG.append(line)


def sh(cmd, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("check", True)
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    r = subprocess.run([str(c) for c in cmd], **kw)
    return r


# ------------------------------------------------------------------------------------------
# 1-2. impactd and data
# ------------------------------------------------------------------------------------------

def build_impactd() -> pathlib.Path:
    log("building impactd (release, --features ort)")
    sh(["cargo", "build", "--release", "--features", "ort", "--bin", "impactd"], cwd=ROOT,
       capture_output=False)
    return ROOT / "target" / "release" / "impactd"


def has_synth(impactd: pathlib.Path) -> bool:
    return subprocess.run([impactd, "synth", "--help"], capture_output=True).returncode == 0


def generate(impactd, use_synth: bool, out: pathlib.Path, count: int, seed: int, fps: float,
             background: bool = False):
    """Generates `count` scenes into `out` (nothing if they are there); with `background`,
    returns the running process instead of waiting."""
    if (out / "manifest.toml").is_file() and len(list(out.glob("*.json"))) >= count:
        log(f"{out}: {count} scenes already there")
        return None
    out.mkdir(parents=True, exist_ok=True)
    if use_synth:
        cmd = [impactd, "synth", "--out", out, "--count", count, "--seed", seed, "--fps", fps,
               "--width", 160, "--height", 120, "--duration", 8, "--jobs", 2]
    else:
        cmd = [sys.executable, HERE / "fakescenes.py", "--out", out, "--count", count, "--seed",
               seed, "--fps", fps, "--jobs", 2]
    log(" ".join(str(c) for c in cmd))
    if background:
        return subprocess.Popen([str(c) for c in cmd], stdout=subprocess.DEVNULL,
                                stderr=open(out.parent / f"{out.name}.log", "w"))
    sh(cmd, capture_output=False)
    return None


def load_dir(d: pathlib.Path, limit: int | None = None) -> list[dict]:
    from concurrent.futures import ProcessPoolExecutor
    paths = sorted(d.glob("*.json"))[:limit]
    with ProcessPoolExecutor(2) as ex:
        return list(ex.map(tr.load_scene, paths, chunksize=16))


def combine_manifests(parts: list[pathlib.Path], out: pathlib.Path, per: int) -> None:
    lines = ["# the synthetic test set: " + ", ".join(p.name for p in parts) + "\n"]
    import tomllib
    for p in parts:
        m = tomllib.loads((p / "manifest.toml").read_text())
        for c in m["clip"][:per]:
            lines.append(f'[[clip]]\nname = "{p.name}/{c["name"]}"\n'
                         f'media = "{p.name}/{c["media"]}"\n'
                         + (f'audio = "{p.name}/{c["audio"]}"\n' if c.get("audio") else "")
                         + f"hits = [{', '.join(f'{h:.4f}' for h in c['hits'])}]\n")
    out.write_text("\n".join(lines))


# ------------------------------------------------------------------------------------------
# 3. real-pool
# ------------------------------------------------------------------------------------------

def real_pool(neg_fold: int = 0) -> dict[str, list[pathlib.Path]]:
    """{'train_neg', 'val_neg', 'train_pos'}: real-pool clips by role (empty without the data).

    The clips without impacts fall in three folds by the crc32 of their name; fold `neg_fold`
    is held out (0, the shipped models' split: the negatives of eval/pool-holdout.toml), the
    other two are trained on. Other folds are for cross-validating the false-call rate
    (models/train/README.md, "The false-call rate, cross-validated")."""
    roles = {"train_neg": [], "val_neg": [], "train_pos": []}
    man = SHARED / "real-pool" / "manifest.csv"
    if not man.is_file():
        log(f"no {man}: training on synthetic scenes only")
        return roles
    with open(man) as f:
        for row in csv.DictReader(f):
            path = SHARED / "real-pool" / row["file"]
            text = (row["file"] + " " + row["description"]).lower()
            if not path.is_file():
                continue
            if row["impacts_visible"] == "no":
                # a stable split by name: every third clip is validation, never trained on
                fold = zlib.crc32(row["file"].encode()) % 3
                key = "val_neg" if fold == neg_fold else "train_neg"
                roles[key].append(path)
            elif row["impacts_visible"] == "yes" and not any(s in text for s in EVAL_SUBJECTS):
                roles["train_pos"].append(path)
    return roles


def load_real(paths: list[pathlib.Path], negative: bool) -> list[dict]:
    out = []
    for p in paths:
        try:
            s = tr.decode_real(p)
        except (subprocess.CalledProcessError, ValueError) as e:
            why = (f"ffmpeg failed: {e.stderr[-200:]!r}" if isinstance(e, subprocess.CalledProcessError)
                   else str(e))
            log(f"{p.name}: skipped, {why}")
            continue
        s["path"] = p
        s["heard"] = s["env"]  # the clip's own sound, for decoding_check (negatives train on 0)
        if len(s["x"]) < tr.T:
            continue
        if negative:
            s["env"] = np.zeros_like(s["env"])  # nothing visible is hit: predict nothing
        out.append(s)
    return out


PROBE_SIDECAR = f"""# A probe, not a model: it reports the mean |gray-diff| of each frame the daemon feeds it
# (train.ProbeEncoder), so make_model.py can compare the daemon's input with train.decode_real.
[model]
name = "probe"
version = "1"
form = "streaming"
frames = {tr.T}
fps = {tr.FPS}
lookahead_frames = 0
envelope_mode = "frame-mean"
description = "make_model.py decoding check"

[input]
name = "frame"
layout = "NCTHW"
width = {{w}}
height = {{h}}
colour = "gray-diff"
scale = 255.0
mean = [0.0]
std = [{tr.DIFF_STD}]

[output]
envelope = "envelope"

[encoder]
file = "probe-encoder.onnx"
output = "features"
features = 1
head_input = "features"
"""

# The largest |difference| in mean |gray-diff| per frame that `decoding_check` accepts: the
# daemon's box filter (fast_image_resize) and train.box_resize round differently where the
# scale factor is not an integer; a frame picked from the wrong time, or luma in another
# range, differs by far more (README.md, "Real clips decoded as the daemon decodes them").
DECODING_TOLERANCE = 2e-3
# The most the real clips' audio envelope may differ from the daemon's observed_raw, as a share
# of the clip's peak: training resamples to 44.1 kHz where the daemon keeps the clip's rate
# (measured: at most 0.2 %).
AUDIO_TOLERANCE = 0.01


def decoding_check(impactd, reals: list[dict], work: pathlib.Path) -> float:
    """Replays every real clip training reads through the daemon with a probe model and compares
    what the daemon feeds a model, frame by frame, with what train.decode_real made of the clip
    (the mean |gray-diff| of each 12-fps frame; the daemon's predicted column shows it with 6
    decimals), and the clip's audio envelope with the daemon's observed_raw. Exits naming the
    clip (and frame) where they differ by more than DECODING_TOLERANCE (AUDIO_TOLERANCE):
    training on frames or sound the daemon would not see is a silent train/serve mismatch.
    Returns the largest frame difference."""
    d = work / "decoding-check"
    d.mkdir(exist_ok=True)
    tr.export_probe(d)
    (d / "probe.toml").write_text(PROBE_SIDECAR.format(w=tr.IN_W, h=tr.IN_H))
    worst = 0.0
    for s in reals:
        csv_path = d / f"{s['name']}.csv"
        audio = ["--audio", s["audio"]] if "audio" in s else []
        sh([impactd, "replay", "--model", d / "probe.onnx", s["path"], *audio, "--envelopes",
            csv_path, "--events", os.devnull], env=dict(os.environ, RUST_LOG="error"))
        rows = np.loadtxt(csv_path, delimiter=",", skiprows=1, ndmin=2)
        daemon = rows[:, 2]  # predicted: the probe's value of each frame the daemon fed it
        ours = tr.mean_abs_diff(s["x"])
        if len(daemon) < len(ours):
            sys.exit(f"decoding check: {s['path']}: the daemon made {len(daemon)} 12-fps frames, "
                     f"train.decode_real {len(ours)}")
        diff = np.abs(daemon[: len(ours)] - ours)
        k = int(diff.argmax())
        if diff[k] > DECODING_TOLERANCE:
            sys.exit(f"decoding check: {s['path']}: frame {k}: the daemon feeds a mean |gray-diff| "
                     f"of {daemon[k]:.6f}, train.decode_real {ours[k]:.6f} (tolerance "
                     f"{DECODING_TOLERANCE}): training would not see what the daemon sees")
        worst = max(worst, float(diff[k]))
        if "heard" not in s:
            continue  # a synthetic scene: its target is the label's clean impacts stem
        # and the audio: the clip's frame-mean envelope against the daemon's observed_raw
        raw = rows[: len(ours), 4]
        heard = s["heard"][: len(raw)]
        off = float(np.abs(heard - raw).max()) / max(float(raw.max()), 1e-9)
        if off > AUDIO_TOLERANCE:
            sys.exit(f"decoding check: {s['path']}: the audio envelope train.decode_real makes "
                     f"differs from the daemon's observed_raw by {off:.1%} of its peak "
                     f"(tolerance {AUDIO_TOLERANCE:.0%})")
    return worst


# ------------------------------------------------------------------------------------------
# 5. files
# ------------------------------------------------------------------------------------------

def sidecar(name: str, encoder_file: str, description: str, net: tr.ImpactNet) -> str:
    """The sidecar TOML of NAME.onnx, the head of `net` (its look-ahead and feature count)."""
    lookahead, feat = net.head.lookahead, net.encoder.features
    return f"""# Sidecar of {name}.onnx: what impactd must do to feed it (DESIGN.md, "The model contract").
# Form "streaming": the encoder ([encoder] file) runs once per 12-fps frame on the preprocessed
# frame ([input]: one gray-diff frame [1, 1, {tr.IN_H}, {tr.IN_W}]) and returns [1, {feat}] features; this
# file's graph (the head) runs once per window on the last {tr.T} of them, [1, {tr.T}, {feat}].
# Made by models/train/make_model.py (models/{NAME}.md).
[model]
name = "{name}"
version = "{VERSION}"
form = "streaming"             # per-frame encoder + temporal head
frames = {tr.T}                    # frames per window
fps = {tr.FPS}                       # frame rate of the window
lookahead_frames = {lookahead}           # {"a frame's value also uses the next frame" if lookahead else "causal head: a frame's value needs no later frame"}
envelope_mode = "frame-mean"   # audio envelope mode of the training target
description = "{description}"

[input]
name = "frame"                 # the encoder's input
layout = "NCTHW"               # one frame: [1, C, H, W]
width = {tr.IN_W}
height = {tr.IN_H}
colour = "gray-diff"           # luma minus the previous frame's (0 for the first)
scale = 255.0                  # pixel value / scale, then (x - mean[c]) / std[c]
mean = [0.0]
std = [{tr.DIFF_STD}]

[output]
envelope = "envelope"          # the head's [1, {tr.T}] output, values in [0, 1]
class_logits = "class_logits"  # the head's [1, {tr.T}, 3] output: class logits per frame
classes = ["hit", "collision", "drop"]
class_per_frame = true         # an impact takes the logits of its own frame

[encoder]                      # the per-frame graph of form "streaming"
file = "{encoder_file}"
output = "features"            # its [1, {feat}] output
features = {feat}
head_input = "features"        # the head's (this ONNX) [1, {tr.T}, {feat}] input
"""


def write_model(dst_dir: pathlib.Path, name: str, head: pathlib.Path, encoder: pathlib.Path,
                description: str, net: tr.ImpactNet) -> pathlib.Path:
    dst_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(head, dst_dir / f"{name}.onnx")
    shutil.copyfile(encoder, dst_dir / f"{name}-encoder.onnx")
    (dst_dir / f"{name}.toml").write_text(sidecar(name, f"{name}-encoder.onnx", description, net))
    return dst_dir / f"{name}.onnx"


def clip_sidecar(name: str, net: tr.ImpactNet) -> str:
    s = sidecar(name, "unused", "clip-form export of the float network, for the equivalence check",
                net)
    s = s.replace('form = "streaming"', 'form = "clip"').replace('name = "frame"', 'name = "frames"')
    return s[: s.index("\n[encoder]") + 1]


# ------------------------------------------------------------------------------------------
# 6. evaluation through the daemon
# ------------------------------------------------------------------------------------------

def ort_dylib() -> str:
    import onnxruntime
    libs = glob.glob(os.path.join(os.path.dirname(onnxruntime.__file__), "capi", "libonnxruntime.so*"))
    return libs[0] if libs else ""


def bench(impactd, model: pathlib.Path) -> dict:
    env = dict(os.environ, ORT_DYLIB_PATH=ort_dylib(), RUST_LOG="warn")
    r = sh([impactd, "bench", "--model", model, "--windows", 300], env=env, check=False)
    if r.returncode != 0:
        err = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"exit {r.returncode}"
        log(f"bench {model}: failed: {err}")
        return {"text": "", "error": err}
    out = {"text": r.stdout}
    for line in r.stdout.splitlines():
        line = line.strip()
        if line.startswith("model alone ("):
            be = line.split("(")[1].split(",")[0]
            med = float(line.split("median ")[1].split(" ms")[0])
            out[f"{be}_window_ms"] = med
        elif line.startswith("adding a frame ("):
            be = line.split("(")[1].split(",")[0]
            out[f"{be}_frame_ms"] = float(line.split("median ")[1].split(" ms")[0])
            out[f"{be}_hop_ms"] = float(line.split("costs median ")[1].split(" ms")[0])
    return out


def evaluate(impactd, manifest: pathlib.Path, model: pathlib.Path, out_json: pathlib.Path) -> dict:
    sh([impactd, "eval", manifest, "--model", model, "--json", out_json],
       env=dict(os.environ, RUST_LOG="error"))
    return json.loads(out_json.read_text())


def replay_events(impactd, model, media, audio=None) -> list[dict]:
    cmd = [impactd, "replay", "--model", model, media]
    if audio:
        cmd += ["--audio", audio]
    r = sh(cmd, env=dict(os.environ, RUST_LOG="error"), check=False)
    if r.returncode != 0:
        log(f"replay {media} failed ({r.returncode}): {r.stderr[-300:]}")
        return []
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


def class_accuracy(impactd, model, test_dirs: list[pathlib.Path], per_dir: int = 10**9) -> dict:
    """Impact events of the synthetic test set matched (0.125 s) to labelled impacts: how often
    their class is the label's."""
    right = total = 0
    confusion = {c: {d: 0 for d in tr.CLASSES} for c in tr.CLASSES}
    for d in test_dirs:
        for lab_path in sorted(d.glob("*.json"))[:per_dir]:
            lab = json.loads(lab_path.read_text())
            ev = [e for e in replay_events(impactd, model, lab_path.with_suffix(".y4m"),
                                           lab_path.with_suffix(".wav")) if e["kind"] == "impact"]
            used = set()
            for imp in lab["impacts"]:
                best = None
                for i, e in enumerate(ev):
                    if i not in used and abs(e["t"] - imp["t"]) <= 0.125 and "class" in e:
                        if best is None or abs(e["t"] - imp["t"]) < abs(ev[best]["t"] - imp["t"]):
                            best = i
                if best is not None:
                    used.add(best)
                    total += 1
                    right += ev[best]["class"] == imp["class"]
                    confusion[imp["class"]][ev[best]["class"]] += 1
    return {"accuracy": right / total if total else None, "matched": total, "confusion": confusion,
            "scenes": sum(min(per_dir, len(list(d.glob("*.json")))) for d in test_dirs)}


def float_model_files(path: pathlib.Path) -> dict:
    """--float-model: the head, its encoder (the sidecar's [encoder] file) and the network's shape
    (look-ahead, width, input size) from the sidecar beside PATH."""
    import tomllib
    side = path.with_suffix(".toml")
    try:
        sc = tomllib.loads(side.read_text())
        enc = path.parent / sc["encoder"]["file"]
        feats, inp = int(sc["encoder"]["features"]), sc["input"]
        info = {"steps": 0, "minutes": 0.0, "lookahead": int(sc["model"].get("lookahead_frames", 0)),
                "width": feats // tr.FEATURES, "input": f"{inp['width']}x{inp['height']}"}
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as e:
        raise SystemExit(f"--float-model {path}: its sidecar {side} does not describe a streaming "
                         f"model with an encoder ({type(e).__name__}: {e})")
    if sc["model"].get("form") != "streaming" or feats % tr.FEATURES:
        raise SystemExit(f"--float-model {path}: {side} is not a streaming model of this "
                         f"pipeline (form {sc['model'].get('form')!r}, {feats} features)")
    for f in (path, enc):
        if not f.is_file():
            raise SystemExit(f"--float-model {path}: {f} does not exist")
    return {"head": path, "encoder": enc, "info": info}


def train_info(work: pathlib.Path) -> dict:
    """A finished run's train-info.json (steps, minutes, lookahead, width, input); runs from
    before those options existed were causal, of width 1 and at 80x60, which is what a missing
    key reads as."""
    info = json.loads((work / "train-info.json").read_text())
    info.setdefault("lookahead", 0)
    info.setdefault("width", 1)
    info.setdefault("input", "80x60")
    return info


def read_members(dirs: list[pathlib.Path]) -> list[dict]:
    """The summaries of finished runs (full or --train-only) to average, each with its folder as
    "work"; their networks must have one shape."""
    members = []
    for d in dirs:
        try:
            members.append(dict(json.loads((d / "summary.json").read_text()), work=d))
        except (OSError, ValueError) as e:
            raise SystemExit(f"--ensemble {d}: not a finished run's work folder ({e})")
        if not (d / f"{NAME}.pt").is_file():
            raise SystemExit(f"--ensemble {d}: no {NAME}.pt")
    for k in ("lookahead", "width", "input"):
        vals = {m.get(k, {"lookahead": 0, "width": 1, "input": "80x60"}[k]) for m in members}
        if len(vals) > 1:
            raise SystemExit(f"--ensemble: the runs differ in {k} ({sorted(map(str, vals))})")
    return members


def train_members(a, impactd: pathlib.Path, data: pathlib.Path) -> list[pathlib.Path]:
    """--members: trains each member (seed a.seed + i) with `--train-only` in its own process and
    folder WORK/member<i> (its scenes: a link to this run's), a.jobs at a time, one torch thread
    each (torch's second thread gains little on these small layers; three one-thread processes
    on 2 cores made 12000 steps each in 14-17 minutes). Members are not fine-tuned: the
    quantisation-aware fine-tuning runs once, on the ensemble. A member whose folder already
    holds a finished --train-only run of the same arguments is kept."""
    dirs = [a.work / f"member{i}" for i in range(a.members)]
    cmds = []
    for i, d in enumerate(dirs):
        args = ["--seed", a.seed + i, "--steps", a.steps, "--train-count", a.train_count,
                "--generator", a.generator, "--qat-steps", 0,
                "--lookahead", a.lookahead, "--width", a.width, "--input", a.input, "--lr", a.lr,
                "--real-share", a.real_share, "--threads", 1, "--members", 1] + (["--no-real"] if a.no_real else [])
        # only when on: a member folder made before --crop existed still matches its arguments
        args += ["--crop", a.crop] if a.crop else []
        args += ["--no-real-positives"] if a.no_real_positives else []
        args += ["--loud-negatives"] if a.loud_negatives else []
        cmds.append([str(x) for x in args])
    pending, running = list(range(len(dirs))), {}
    while pending or running:
        while pending and len(running) < a.jobs:
            i = pending.pop(0)
            d = dirs[i]
            d.mkdir(parents=True, exist_ok=True)
            if not (d / data.name).exists():
                (d / data.name).symlink_to(data.resolve())
            done = d / "summary.json"
            if done.is_file() and json.loads(done.read_text()).get("member_args") == cmds[i]:
                log(f"member {i}: {d} already trained with these arguments, kept")
                continue
            log(f"member {i}: training in {d} (log: {d / 'stdout.txt'})")
            out = open(d / "stdout.txt", "w")
            running[i] = (subprocess.Popen(
                [sys.executable, __file__, "--work", str(d), "--impactd", str(impactd),
                 "--train-only", *cmds[i]], stdout=out, stderr=subprocess.STDOUT), out)
        for i, (p, out) in list(running.items()):
            if p.poll() is None:
                continue
            del running[i]
            out.close()
            if p.returncode != 0:
                for q, _ in running.values():
                    q.kill()
                tail = (dirs[i] / "stdout.txt").read_text()[-600:]
                raise SystemExit(f"member {i} ({dirs[i]}) failed, exit {p.returncode}:\n{tail}")
            log(f"member {i}: done")
        time.sleep(2)
    return dirs


def validation_split(n: int, seed: int) -> tuple[np.ndarray, int]:
    """The seeded split of the n training scenes (sorted by name): a permutation whose first
    n_val entries are the validation scenes, never trained on, and the rest the training ones.
    class_tau.py rebuilds the split of a finished run with it."""
    return np.random.default_rng(seed).permutation(n), max(16, n // 20)


def heldout_negatives(roles: dict) -> list[pathlib.Path]:
    """Every held-out clip without visible impacts: the real-pool ones training never sees and
    the negative clips of eval/real-clips.toml (no hits: barking, coughing)."""
    import tomllib
    out = list(roles["val_neg"])
    if EVAL_REAL.is_file():
        for c in tomllib.loads(EVAL_REAL.read_text())["clip"]:
            media = (EVAL_REAL.parent / c["media"]).resolve()
            if not c.get("hits") and media.is_file():
                out.append(media)
    return out


def negatives_per_minute(impactd, model, clips: list[pathlib.Path]) -> dict:
    per = {}
    for c in clips:
        ev = replay_events(impactd, model, c)
        dur = float(sh(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of",
                        "csv=p=0", c]).stdout.strip() or 0)
        n = sum(e["kind"] == "impact" for e in ev)
        per[c.name] = (n, dur)
    total_n = sum(n for n, _ in per.values())
    total_min = sum(d for _, d in per.values()) / 60
    return {"impacts": total_n, "minutes": total_min,
            "per_minute": total_n / total_min if total_min else None, "clips": per}


def real_classes(impactd, model) -> dict:
    import tomllib
    m = tomllib.loads(EVAL_REAL.read_text())
    out = {}
    for c in m["clip"]:
        media = (EVAL_REAL.parent / c["media"]).resolve()
        if not media.is_file():
            continue
        ev = [e for e in replay_events(impactd, model, media) if e["kind"] == "impact"]
        counts = {k: sum(e.get("class") == k for e in ev) for k in tr.CLASSES}
        out[c["name"]] = counts
    return out


def equivalence(impactd, stream_model, clip_model, media, audio, work) -> float:
    rows = []
    for m in (stream_model, clip_model):
        path = work / f"equiv-{m.stem}.csv"
        sh([impactd, "replay", "--model", m, media, "--audio", audio, "--envelopes", path],
           env=dict(os.environ, RUST_LOG="error"))
        rows.append(np.loadtxt(path, delimiter=",", skiprows=1)[:, 2])
    return float(np.abs(rows[0] - rows[1]).max())


# ------------------------------------------------------------------------------------------
# main
# ------------------------------------------------------------------------------------------

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=pathlib.Path, default=pathlib.Path("/tmp/impact-s1"),
                    help="where data, checkpoints and intermediate files go (not committed)")
    ap.add_argument("--steps", type=int, default=12000,
                    help="training steps (20 to 25 min on 2 cores; the schedule follows the "
                         "steps, so a rerun on the same data gives the same weights)")
    ap.add_argument("--train-count", type=int, default=3000)
    ap.add_argument("--test-count", type=int, default=520, help="test scenes, split over 4 rates")
    ap.add_argument("--generator", choices=["auto", "impactd", "fake"], default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--impactd", type=pathlib.Path, help="use this binary instead of building")
    ap.add_argument("--reuse-weights", action="store_true",
                    help="load WORK/impact-s1.pt instead of training (re-export and re-evaluate)")
    ap.add_argument("--ensemble", type=pathlib.Path, nargs="+", metavar="WORK",
                    help="instead of training, average the networks of these finished runs' work "
                         "folders (their WORK/impact-s1.pt, the weights before any fine-tuning; "
                         "other --seed values of one setting) into one model (train.Ensemble), "
                         "fine-tune it (--qat-steps), export, quantise and evaluate it as any run "
                         "(models/train/README.md, \"An ensemble of seeds\")")
    ap.add_argument("--members", type=int, default=1,
                    help="train this many networks, seeds --seed .. --seed + N - 1, each in its own "
                         "process with one torch thread (--jobs at a time), and ship their average "
                         "(train.Ensemble), as --ensemble does with finished runs")
    ap.add_argument("--jobs", type=int,
                    help="member processes at a time (--members; default: all of them, about "
                         "3 GB of memory each)")
    ap.add_argument("--train-only", action="store_true",
                    help="stop after training and fine-tuning: the weights, train-info.json and a "
                         "short summary.json in --work, for --ensemble (what --members runs per member)")
    ap.add_argument("--float-model", type=pathlib.Path, metavar="ONNX",
                    help="instead of training, re-quantise and re-evaluate a finished float model "
                         "(a streaming pair this command wrote, e.g. models/impact-s1-float.onnx: "
                         "its sidecar names the encoder) as it is: no fine-tuning, no class "
                         "adjustment (it has both); the int8 files, sidecars and card of today's "
                         "pipeline (models/train/README.md, \"One quantisation per activation\")")
    ap.add_argument("--init-weights", type=pathlib.Path,
                    help="start training from these weights (a continued run)")
    ap.add_argument("--qat-steps", type=int, default=1500,
                    help="quantisation-aware fine-tuning steps after training (train.qat_finetune)")
    ap.add_argument("--qat-lr", type=float, default=3e-4, help="its peak learning rate")
    ap.add_argument("--class-tau", type=float, default=1.0,
                    help="logit adjustment of the class head after training: subtract TAU * "
                         "log(class share of the training impacts) from its bias "
                         "(train.adjust_class_logits; 0: off)")
    ap.add_argument("--lookahead", type=int, choices=[0, 1], default=0,
                    help="frames after a frame its value may use (train.Head; sidecar "
                    "lookahead_frames): 0 is causal (the shipped model), 1 also sees the next "
                    "image (models/train/README.md, \"One frame of look-ahead\")")
    ap.add_argument("--width", type=int, default=1,
                    help="channel multiplier of the encoder and head (train.ImpactNet): 1 is the "
                    "shipped model (32 features), 2 doubles every layer (models/train/README.md, "
                    "\"A wider network, a finer input\")")
    ap.add_argument("--input", default="80x60",
                    help="the model's input size WxH: 80x60 (the shipped model) or a multiple, "
                    "e.g. 160x120, the synthetic scenes' own size (train.set_input_size; "
                    "models/train/README.md, \"A wider network, a finer input\")")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--encoder-percentile", type=float, default=0,
                    help="calibrate the int8 encoder's activation ranges at this percentile of the "
                         "calibration data (e.g. 99.99) instead of its min/max (0, the shipped "
                         "model); the head keeps min/max (train.quantise; models/train/README.md, "
                         "\"An ensemble of seeds\")")
    ap.add_argument("--fold-activations", action=argparse.BooleanOptionalAction, default=True,
                    help="int8: fold each ReLU into the convolution before it, one quantisation "
                         "per activation instead of two, and fine-tune (--qat-steps) the encoder "
                         "that way (train.quantise; models/train/README.md, \"One quantisation per "
                         "activation\"); --no-fold-activations: two, as the models before 2026-12-06 were made")
    ap.add_argument("--int8-limit", type=float, default=0.02,
                    help="most envelope r the int8 model may lose against float (the issue's 0.02)")
    ap.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (cosine schedule)")
    ap.add_argument("--real-share", type=float, default=0.1,
                    help="share of training samples drawn from real-pool clips (0.25 until "
                         "2026-12-07, and for the shipped network; models/train/README.md, "
                         "\"A smaller real share, over six pairs\")")
    ap.add_argument("--crop", type=float, default=0.0,
                    help="augmentation: train on a random crop of each scene and real clip, 1 - "
                         "CROP .. 1 of each side, scaled back to the input size (train.random_crop; "
                         "0: off, the shipped model; models/train/README.md, \"Random crops\")")
    ap.add_argument("--class-scenes", type=int, default=1000,
                    help="test scenes replayed for the class accuracy (at most)")
    ap.add_argument("--no-real", action="store_true", help="skip ../shared/data (a quick check)")
    ap.add_argument("--no-real-positives", action="store_true",
                    help="train on the real-pool clips without impacts only (hard negatives), not "
                         "on the 13 with impacts (models/train/README.md, \"Real clips in "
                         "training\")")
    ap.add_argument("--loud-negatives", action="store_true",
                    help="train on the real clips without impacts only in windows that hold an "
                         "audio peak (train.loud_starts), where the detector could call a false "
                         "impact; off by default (models/train/README.md, \"Negatives only where "
                         "the audio is loud\")")
    ap.add_argument("--neg-fold", type=int, default=0, choices=(0, 1, 2),
                    help="which third of the real-pool clips without impacts is held out (0: the "
                         "shipped split, eval/pool-holdout.toml's; 1 or 2 cross-validate the "
                         "false-call rate, and then the eval/pool-holdout.toml numbers include "
                         "trained-on clips)")
    ap.add_argument("--out", type=pathlib.Path, default=ROOT / "models",
                    help="where the shipped files and the card go")
    args_in = [str(x) for x in (argv if argv is not None else sys.argv[1:])]
    a = ap.parse_args(args_in)
    if sum(map(bool, (a.reuse_weights, a.ensemble, a.float_model))) > 1:
        raise SystemExit("--reuse-weights, --ensemble and --float-model: choose one")
    if a.float_model and (a.members > 1 or a.init_weights or a.train_only):
        raise SystemExit("--float-model evaluates a finished model: not with --members, "
                         "--init-weights or --train-only")
    float_pair = float_model_files(a.float_model) if a.float_model else None
    if float_pair:
        # the model is final: its fine-tuning and class adjustment are in its weights
        a.qat_steps, a.class_tau = 0, 0.0
        info = float_pair["info"]
        a.lookahead, a.width, a.input = info["lookahead"], info["width"], info["input"]
    if not 0 <= a.crop < 1:
        raise SystemExit(f"--crop {a.crop:g}: the share of each side a crop may cut, from 0 (off) "
                         "up to but not including 1")
    a.jobs = a.jobs or a.members
    if a.members < 1 or a.jobs < 1:
        raise SystemExit("--members and --jobs are at least 1")
    if a.members > 1 and (a.ensemble or a.reuse_weights or a.init_weights or a.train_only):
        raise SystemExit("--members trains its own networks: not with --ensemble, --reuse-weights, "
                         "--init-weights or --train-only")
    members = read_members(a.ensemble) if a.ensemble else []
    if a.reuse_weights or a.ensemble:  # the trained network's shape, before any scene is loaded at a size
        info = train_info(a.work) if a.reuse_weights else train_info(a.ensemble[0])
        a.lookahead, a.width, a.input = info["lookahead"], info["width"], info["input"]
    if a.width < 1:
        raise SystemExit(f"--width {a.width}: the channel multiplier is at least 1")
    try:
        tr.set_input_size(a.input)
    except ValueError as e:
        raise SystemExit(f"--input: {e}")
    float_net = None
    if float_pair:  # a file that does not fit (an int8 one, another shape) fails now, not after the scenes load
        float_net = tr.ImpactNet(lookahead=a.lookahead, width=a.width)
        try:
            tr.load_onnx_weights(float_net, float_pair["head"], float_pair["encoder"])
        except ValueError as e:
            raise SystemExit(f"--float-model: {e}")
    try:  # eval/ceiling.py (step 6) needs it; find out now, not after the training
        import scipy.ndimage  # noqa: F401
    except ImportError as e:
        raise SystemExit(f"{e}: eval/ceiling.py needs scipy "
                         "(pip install -r models/train/requirements.txt)")
    torch.set_num_threads(a.threads)
    work = a.work
    work.mkdir(parents=True, exist_ok=True)
    t_start = time.time()

    impactd = a.impactd or build_impactd()
    use_synth = a.generator == "impactd" or (a.generator == "auto" and has_synth(impactd))
    gen_name = "impactd synth" if use_synth else "models/train/fakescenes.py"
    log(f"scene generator: {gen_name}")
    data = work / ("synth" if use_synth else "fake")
    generate(impactd, use_synth, data / "train", a.train_count, 1000, 12.0)
    generate(impactd, use_synth, data / "calib", 200, 500000, 12.0)
    # the test set is generated one rate after another in the background, while training runs
    per = math.ceil(a.test_count / len(TEST_FPS))
    test_dirs = [data / "test" / f"fps{int(fps)}" for fps in TEST_FPS]
    test_jobs = iter([(d, per, 900000 + 10000 * i, fps) for i, (d, fps) in
                      enumerate(zip(test_dirs, TEST_FPS))] if not a.train_only else [])

    def next_test_job():
        for d, n, seed, fps in test_jobs:
            proc = generate(impactd, use_synth, d, n, seed, fps, background=True)
            if proc is not None:
                return proc
        return None

    if a.members > 1:
        # the test set first, so that the members' training has the cores to itself
        for d, n, seed, fps in test_jobs:
            generate(impactd, use_synth, d, n, seed, fps)
        a.ensemble = train_members(a, impactd, data)
        members = read_members(a.ensemble)
    test_proc = next_test_job()

    log("loading scenes")
    # --reuse-weights without fine-tuning needs no training data: only the validation part and
    # calibration (--qat-steps fine-tunes on the training data)
    train_paths = sorted((data / "train").glob("*.json"))[: a.train_count]
    light = (a.reuse_weights or a.ensemble or a.float_model) and not a.qat_steps
    order, n_val = validation_split(len(train_paths), a.seed)
    if light:
        keep = set(order[:n_val].tolist())
    train_scenes = (load_dir(data / "train", a.train_count) if not light else
                    [tr.load_scene(p) if i in keep else None for i, p in enumerate(train_paths)])
    val_scenes = [train_scenes[i] for i in order[:n_val]]
    train_scenes = [train_scenes[i] for i in order[n_val:]]
    calib_scenes = load_dir(data / "calib")
    roles = real_pool(a.neg_fold) if not a.no_real else {"train_neg": [], "val_neg": [], "train_pos": []}
    if a.no_real_positives:
        roles["train_pos"] = []
    real_neg = load_real(roles["train_neg"], negative=True) if not light else []
    if a.loud_negatives and real_neg:
        for s in real_neg:
            s["starts"] = tr.loud_starts(s["heard"])
        quiet = [s["name"] for s in real_neg if not len(s["starts"])]
        real_neg = [s for s in real_neg if len(s["starts"])]
        log(f"--loud-negatives: {sum(len(s['starts']) for s in real_neg)} windows with an audio "
            f"peak in {len(real_neg)} negatives; {len(quiet)} without one left out {quiet}")
    real_pos = load_real(roles["train_pos"], negative=False) if not light else []
    if a.float_model:
        # what today's pipeline trains on (the card's data section describes it)
        train_count, real_neg_n, real_pos_n = (len(order) - n_val, len(roles["train_neg"]),
                                               len(roles["train_pos"]))
    elif a.reuse_weights or a.ensemble:
        info0 = json.loads(((a.ensemble[0] if a.ensemble else work) / "summary-counts.json").read_text())
        train_count, real_neg_n, real_pos_n = info0["train"], info0["real_neg"], info0["real_pos"]
    else:
        train_count, real_neg_n, real_pos_n = len(train_scenes), len(real_neg), len(real_pos)
        (work / "summary-counts.json").write_text(json.dumps(
            {"train": train_count, "real_neg": real_neg_n, "real_pos": real_pos_n}))
    log(f"{train_count} training scenes, {len(val_scenes)} validation scenes, "
        f"{real_neg_n} real negatives and {real_pos_n} real positives to train on, "
        f"{len(roles['val_neg'])} real negatives held out")
    # real clips are about --real-share of what the network sees: repeat them to that share
    # (augmented on the fly: mirrored, contrast; train.batch_windows)
    mix = list(train_scenes)
    reals = real_neg + real_pos
    if not light:
        # five synthetic training scenes (train.load_scene) and every real clip (decode_real)
        probe = [dict(x=sc["x"], name=sc["name"], path=data / "train" / f"{sc['name']}.y4m",
                      audio=data / "train" / f"{sc['name']}.wav") for sc in train_scenes[:5]]
        worst = decoding_check(impactd, probe + reals, work)
        log(f"decoding check: on 5 synthetic scenes and {len(reals)} real clips, training reads "
            f"what the daemon feeds a model (largest difference in a frame's mean |gray-diff|: "
            f"{worst:.1e})")
    if reals:
        share = a.real_share / (1 - a.real_share)
        mix += reals * max(1, round(share * len(train_scenes) / len(reals)))

    torch.manual_seed(a.seed)  # the initial weights too: a rerun gives the same network
    net = tr.ImpactNet(lookahead=a.lookahead, width=a.width)
    log(f"network: encoder {tr.params(net.encoder)} parameters, head {tr.params(net.head)}, "
        f"lookahead {a.lookahead}, width {a.width}, crop {a.crop:g}")
    if a.reuse_weights:
        net.load_state_dict(torch.load(work / f"{NAME}.pt"))
    elif a.float_model:
        net = float_net
        log(f"float model {a.float_model} loaded as it is (no training, fine-tuning or class "
            "adjustment in this run)")
    elif a.ensemble:
        nets = []
        for m in members:
            n = tr.ImpactNet(lookahead=a.lookahead, width=a.width)
            # the trained weights before any fine-tuning: --qat-steps fine-tunes the ensemble
            n.load_state_dict(torch.load(m["work"] / f"{NAME}.pt"))
            nets.append(n)
        net = tr.Ensemble(nets)
        info = {"steps": sum(m["train"]["steps"] for m in members),
                "minutes": sum(m["train"]["minutes"] for m in members),
                "lookahead": a.lookahead, "width": a.width, "input": a.input,
                "members": [{"work": str(m["work"]), "seed": m.get("seed"), "train": m["train"],
                             "int8_loss": m.get("int8_loss", {})} for m in members]}
        log(f"ensemble of {len(nets)} runs: " + ", ".join(
            f"{m['work']} (seed {m.get('seed')})" for m in members)
            + "; the validation scenes below were training scenes of some members")
    else:
        def poll():
            nonlocal test_proc
            while test_proc is not None and test_proc.poll() is not None:
                if test_proc.returncode != 0:
                    raise SystemExit(f"test scene generation failed: {test_proc.args}")
                test_proc = next_test_job()
        prior = {"steps": 0, "minutes": 0.0}
        if a.init_weights:
            net.load_state_dict(torch.load(a.init_weights))
            prior = train_info(a.init_weights.parent)
            for k in ("lookahead", "width", "input"):
                if prior[k] != getattr(a, k):
                    raise SystemExit(f"{a.init_weights}: trained with {k} {prior[k]}, "
                                     f"not --{k} {getattr(a, k)}")
            log(f"continuing from {a.init_weights} ({prior['steps']} steps)")
        info = tr.train(net, mix, val_scenes, a.steps, seed=a.seed + prior["steps"], log=log,
                        poll=poll, lr=a.lr, crop=a.crop)
        info = {"steps": info["steps"] + prior["steps"],
                "minutes": info["minutes"] + prior["minutes"], "lookahead": a.lookahead,
                "width": a.width, "input": a.input, "crop": a.crop}
        (work / "train-info.json").write_text(json.dumps(info))
    log(f"trained {info['steps']} steps in {info['minutes']:.1f} min; validation: "
        f"{tr.validate(net, val_scenes)}")
    if not a.ensemble:
        torch.save(net.state_dict(), work / f"{NAME}.pt")
    if a.qat_steps:
        # the int8 model of some draws loses more than 0.02 r (models/train/README.md): a short
        # fine-tuning with int8 rounding in the forward pass; the float model shipped beside the
        # int8 one is this fine-tuned network, so the two are compared like for like
        qinfo = tr.qat_finetune(net, mix, val_scenes, a.qat_steps, seed=a.seed + 1_000_003,
                                lr=a.qat_lr, log=log, fold=a.fold_activations, crop=a.crop)
        info = dict(info, qat_steps=qinfo["steps"], qat_minutes=qinfo["minutes"], qat_lr=a.qat_lr)
        log(f"fine-tuned {qinfo['steps']} steps in {qinfo['minutes']:.1f} min; validation: "
            f"{tr.validate(net, val_scenes)}")
        torch.save(net.state_dict(), work / f"{NAME}-qat.pt")
    if a.train_only:
        (work / "summary.json").write_text(json.dumps(
            {"train": info, "seed": a.seed, "lookahead": a.lookahead, "width": a.width,
             "input": a.input, "threads": a.threads, "train_only": True,
             # what train_members() passed after --train-only: a rerun with the same keeps it
             "member_args": args_in[args_in.index("--train-only") + 1:],
             "command": " ".join(sys.argv)}, indent=1, default=str))
        (work / "log.txt").write_text("\n".join(LOG))
        log(f"done (--train-only): {work / (NAME + '.pt')}")
        return 0
    # the class head learns the training scenes' class mix (few hits): logit adjustment makes its
    # argmax right about equally often on every class (train.adjust_class_logits)
    prior = tr.class_prior([json.loads(train_paths[i].read_text()) for i in order[n_val:]])
    before = tr.class_recall(net, val_scenes)
    tr.adjust_class_logits(net, prior, a.class_tau)
    after = tr.class_recall(net, val_scenes)
    class_adjust = {"tau": a.class_tau, "prior": dict(zip(tr.CLASSES, prior.tolist())),
                    "validation_before": before, "validation_after": after}
    log(f"class logit adjustment: {json.dumps(class_adjust)}")
    while test_proc is not None:
        test_proc.wait()
        if test_proc.returncode != 0:
            raise SystemExit(f"test scene generation failed: {test_proc.args}")
        test_proc = next_test_job()
    test_manifest = data / "test" / "manifest.toml"
    combine_manifests(test_dirs, test_manifest, per)

    # 5. export and quantise
    exp = work / "export"
    exp.mkdir(exist_ok=True)
    paths = tr.export(net, exp, NAME)
    enc_in, head_in = tr.calibration_inputs(net, calib_scenes)
    models = {}
    models["float"] = write_model(work / "float", f"{NAME}-float", paths["head"], paths["encoder"],
                                  "float32 reference of impact-s1", net)
    for fmt in ("qdq", "qop"):
        qd = exp / fmt
        qd.mkdir(exist_ok=True)
        tr.quantise(paths["encoder"], qd / "encoder.onnx", enc_in, fmt,
                    percentile=a.encoder_percentile or None, fold=a.fold_activations)
        tr.quantise(paths["head"], qd / "head.onnx", head_in, fmt, fold=a.fold_activations)
        models[fmt] = write_model(work / fmt, NAME, qd / "head.onnx", qd / "encoder.onnx",
                                  f"int8 ({fmt})", net)
    shutil.copyfile(paths["clip"], work / "float" / f"{NAME}-clip.onnx")
    (work / "float" / f"{NAME}-clip.toml").write_text(clip_sidecar(f"{NAME}-clip", net))
    first = sorted(test_dirs[0].glob("*.json"))[0]
    eq = equivalence(impactd, models["float"], work / "float" / f"{NAME}-clip.onnx",
                     first.with_suffix(".y4m"), first.with_suffix(".wav"), work)
    log(f"streaming vs clip export through the daemon: max |predicted diff| {eq:.2e}")

    timings = {k: bench(impactd, m) for k, m in models.items()}
    timings["baseline"] = bench(impactd, BASELINE)
    for k, v in timings.items():
        log(f"bench {k}: " + ", ".join(f"{kk} {vv}" for kk, vv in v.items() if kk != "text"))

    # 6. evaluate: float, baseline, then the int8 formats fastest first (in tract, per hop of
    # 6 frames + 1 window) until one is within 0.02 envelope r of float
    res = {}

    def run_eval(k, m):
        res[k] = {"synthetic": evaluate(impactd, test_manifest, m, work / f"eval-syn-{k}.json")["overall"]}
        if EVAL_REAL.is_file() and SHARED.is_dir() and not a.no_real:
            res[k]["real"] = evaluate(impactd, EVAL_REAL, m, work / f"eval-real-{k}.json")
            if EVAL_POOL.is_file():
                res[k]["pool"] = evaluate(impactd, EVAL_POOL, m, work / f"eval-pool-{k}.json")
        res[k]["negatives"] = negatives_per_minute(impactd, m, heldout_negatives(roles))
        log(f"{k}: synthetic {json.dumps(res[k]['synthetic'])}")

    from concurrent.futures import ThreadPoolExecutor
    runnable = [f for f in ("qdq", "qop") if "error" not in timings[f]]
    runnable.sort(key=lambda f: timings[f].get("tract_hop_ms", 1e9))
    # float, baseline and the fastest int8 side by side (each eval is one process at a time)
    first = [("float", models["float"]), ("baseline", BASELINE)] + [(f, models[f]) for f in runnable[:1]]
    with ThreadPoolExecutor(len(first)) as ex:
        list(ex.map(lambda km: run_eval(*km), first))
    r_float = res["float"]["synthetic"]["envelope_r"]
    ok, loss, best = {}, {}, None
    for f in runnable:
        if f not in res:
            run_eval(f, models[f])
        loss[f] = r_float - res[f]["synthetic"]["envelope_r"]
        ok[f] = loss[f] <= a.int8_limit
        if ok[f]:
            best = f
            break
    log(f"int8 within {a.int8_limit} r of float: {ok}; chosen: {best}")
    shipped = best or "float"
    classes = class_accuracy(impactd, models[shipped], test_dirs,
                             per_dir=math.ceil(a.class_scenes / len(test_dirs)))
    log(f"class accuracy ({shipped}): {classes}")
    real_cls = real_classes(impactd, models[shipped]) if SHARED.is_dir() and not a.no_real else {}
    # what a perfect visual model would score on the synthetic test set: the labels' clean sound
    # of the visible impacts, scored as a prediction (eval/ceiling.py); the targets are read
    # against it
    r = sh([sys.executable, ROOT / "eval" / "ceiling.py", "--bin", impactd, "--manifest",
            test_manifest, "--out", work / "ceiling-syn", BASELINE, models[shipped]], check=False)
    log(f"synthetic ceiling (eval/ceiling.py): {r.stdout or r.stderr[-300:]}")
    syn_ceiling = r.stdout.strip() if r.returncode == 0 else ""
    heldout = ""
    if EVAL_REAL.is_file() and EVAL_POOL.is_file() and SHARED.is_dir() and not a.no_real:
        # all held-out real clips together, with a paired bootstrap over clips against the baseline
        # (and the clips with hits alone: the baseline's false peaks on the negatives weigh in
        # the pooled AP of all clips)
        for extra, title in (([], ""), (["--hits-only"], "The clips with hits alone (`--hits-only`):\n\n")):
            r = sh([sys.executable, ROOT / "eval" / "ceiling.py", "--bin", impactd, "--bootstrap", "2000",
                    "--manifest", EVAL_REAL, "--manifest", EVAL_POOL, "--out", work / "ceiling", *extra,
                    BASELINE, *dict.fromkeys([models["float"], models[shipped]])], check=False)
            log(f"held-out real clips (eval/ceiling.py {' '.join(extra)}): {r.stdout or r.stderr[-300:]}")
            if r.returncode == 0:
                heldout += title + r.stdout.strip() + "\n\n"

    # 7. ship: into --out only with an int8 model, so that the daemon's default (OUT/impact-s1.onnx)
    # and the card beside it never describe two networks; else the float model and card go to
    # WORK/no-int8/ and --out stays as it was
    dest = a.out if best else work / "no-int8"
    dest.mkdir(parents=True, exist_ok=True)
    if best:
        write_model(dest, NAME, work / best / f"{NAME}.onnx", work / best / f"{NAME}-encoder.onnx",
                    f"Trained impact model (models/{NAME}.md): gray-diff frames -> per-frame CNN "
                    f"encoder -> temporal convolution head -> 48-frame envelope and per-frame "
                    f"hit/collision/drop logits. int8 ({card.INT8_FORMATS[best]}).", net)
    write_model(dest, f"{NAME}-float", work / "float" / f"{NAME}-float.onnx",
                work / "float" / f"{NAME}-float-encoder.onnx",
                f"float32 reference of {NAME} (models/{NAME}.md).", net)
    summary = {"generator": gen_name, "train": info, "params": {"encoder": tr.params(net.encoder),
               "head": tr.params(net.head)}, "equivalence": eq, "timings": {
               k: {kk: vv for kk, vv in v.items() if kk != "text"} for k, v in timings.items()},
               "bench_text": {k: v["text"] for k, v in timings.items()},
               "results": res, "int8_ok": ok, "int8_format": best, "classes": classes,
               "real_classes": real_cls, "class_adjust": class_adjust, "heldout_text": heldout,
               "synthetic_ceiling_text": syn_ceiling, "roles": {k: [p.name for p in v] for k, v in roles.items()},
               "neg_fold": a.neg_fold,
               "counts": {"train": train_count, "val": len(val_scenes), "calib": len(calib_scenes),
                          "test": per * len(test_dirs),
                          "real_neg": real_neg_n, "real_pos": real_pos_n},
               "sizes": {p.name: p.stat().st_size for p in dest.glob(f"{NAME}*.onnx")},
               "minutes_total": (time.time() - t_start) / 60, "real_share": a.real_share,
               "seed": a.seed, "threads": a.threads, "jobs": a.jobs, "int8_limit": a.int8_limit,
               "encoder_percentile": a.encoder_percentile,
               "fold_activations": a.fold_activations,
               "float_model": str(a.float_model) if a.float_model else None,
               "int8_loss": loss,
               "lookahead": a.lookahead, "width": a.width, "input": a.input,
               "command": " ".join(sys.argv)}
    (work / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    (dest / f"{NAME}.md").write_text(card.render(summary))
    if not best:
        log(f"error: no int8 model within {a.int8_limit} envelope r of the float model (lost: "
            f"{card.int8_losses(summary)}); "
            f"{a.out} is left as it was; this run's float model and card are in {dest}. "
            "Another --seed, or more --qat-steps, draws another network.")
    (work / "log.txt").write_text("\n".join(LOG))
    log(f"done in {(time.time() - t_start) / 60:.1f} min: {dest / (NAME + '.md')}")
    return 0 if best else 2


if __name__ == "__main__":
    sys.exit(main())
