#!/usr/bin/env python3
"""Build, check and verify impactd's untrained baseline model, motion-baseline.onnx.

Usage (from the repository root, Python >= 3.11):

    pip install -r models/requirements-baseline.txt
    python models/make_baseline.py              # write models/motion-baseline.{onnx,toml}, verify
    python models/make_baseline.py --no-verify  # build only: needs onnx + numpy, not onnxruntime
    python models/make_baseline.py --check      # write nothing; exit 1 if the files on disk differ

The output is deterministic: no timestamps, no random names, fixed producer_name/version, so
running the script twice gives byte-identical files (the script also builds the model twice and
compares the bytes).

The model (no training; an ONNX graph of plain ops, opset 13, IR version 8):

    input  frames    float32 [1, 1, 48, 64, 64]   NCTHW, gray in [0, 1] (pixel / 255)
    output envelope  float32 [1, 48]              in [0, 1]

    d[t]  = |x[:, :, t] - x[:, :, t-1]|                   t = 1..47  -> [1, 1, 47, 64, 64]
    e[t]  = mean of d[t] over C, H, W                      -> [1, 47]
            (taken over W, then over C and H: the same mean, less float32 rounding)
    e     = [0, e[1], ..., e[47]]                          frame 0 has no predecessor -> [1, 48]
    y     = clip(e / (max_t e[t] + c), 0, 1)               c = 0.01

e[t] is the mean absolute grey-level change between frames t-1 and t, i.e. the motion energy
arriving at frame t. Dividing by the window maximum makes the envelope scale-free like the
min-max-scaled audio envelope, and the floor c (0.01 = 2.55 grey levels of mean absolute
difference) keeps sensor noise of a static scene from being blown up to 1: a window whose largest
change is m gets at most m / (m + c), so a flat noise floor with m << c stays near 0, while
real motion with m >> c peaks near 1. A perfectly static window gives exactly 0 everywhere.
Mathematically e <= max e < max e + c, so y is already in [0, 1); the Clip only guards the
contract.

Graph ops: Slice, Sub, Abs, ReduceMean, Concat, ReduceMax, Add, Div, Clip.

make_fixtures.py (tests/fixtures/models/) imports this file to build the test models, so the
helpers here take the frame count, frame size and names as parameters.
"""

from __future__ import annotations

import argparse
import hashlib
import pathlib
import sys
import tomllib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13
IR_VERSION = 8
PRODUCER_NAME = "impactd-models"
PRODUCER_VERSION = "1"

FRAMES = 48
FPS = 12
FLOOR = 0.01  # c in y = e / (max e + c)

BASELINE_NAME = "motion-baseline"
BASELINE_VERSION = "1"
BASELINE_SIZE = 64
BASELINE_DESCRIPTION = (
    "Untrained baseline: mean absolute frame difference (motion energy) divided by its "
    "window maximum plus 0.01. Reacts to any motion, not only to impacts; no class head."
)

HERE = pathlib.Path(__file__).resolve().parent


# --------------------------------------------------------------------------------------------
# Graph building
# --------------------------------------------------------------------------------------------

def _i64(name: str, values) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(values, dtype=np.int64), name)


def _f32(name: str, values) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(values, dtype=np.float32), name)


def motion_envelope_nodes(x: str, frames: int, out: str, prefix: str = "motion/",
                          floor: float = FLOOR):
    """Nodes and initializers computing the motion envelope [1, frames] of x [1, C, frames, H, W].

    Returns (nodes, initializers). All intermediate names start with `prefix`.
    """
    p = prefix
    inits = [
        _i64(p + "later_start", [1]),
        _i64(p + "later_end", [frames]),
        _i64(p + "earlier_start", [0]),
        _i64(p + "earlier_end", [frames - 1]),
        _i64(p + "time_axis", [2]),
        _f32(p + "frame0", np.zeros((1, 1))),
        _f32(p + "floor", [floor]),
        _f32(p + "zero", 0.0),
        _f32(p + "one", 1.0),
    ]
    nodes = [
        helper.make_node("Slice", [x, p + "later_start", p + "later_end", p + "time_axis"],
                         [p + "later"], name=p + "slice_later"),
        helper.make_node("Slice", [x, p + "earlier_start", p + "earlier_end", p + "time_axis"],
                         [p + "earlier"], name=p + "slice_earlier"),
        helper.make_node("Sub", [p + "later", p + "earlier"], [p + "diff"], name=p + "diff"),
        helper.make_node("Abs", [p + "diff"], [p + "absdiff"], name=p + "absdiff"),
        # mean over W, then over C and H: the same mean as over (C, H, W) at once, but each
        # float32 sum has only W (or C*H) terms, which keeps the rounding error near 1e-7
        helper.make_node("ReduceMean", [p + "absdiff"], [p + "row_energy"],
                         name=p + "row_energy", axes=[4], keepdims=0),
        helper.make_node("ReduceMean", [p + "row_energy"], [p + "energy"], name=p + "energy",
                         axes=[1, 3], keepdims=0),
        helper.make_node("Concat", [p + "frame0", p + "energy"], [p + "energy_full"],
                         name=p + "prepend_frame0", axis=1),
        helper.make_node("ReduceMax", [p + "energy_full"], [p + "peak"], name=p + "peak",
                         axes=[1], keepdims=1),
        helper.make_node("Add", [p + "peak", p + "floor"], [p + "denominator"],
                         name=p + "add_floor"),
        helper.make_node("Div", [p + "energy_full", p + "denominator"], [p + "ratio"],
                         name=p + "normalise"),
        helper.make_node("Clip", [p + "ratio", p + "zero", p + "one"], [out], name=p + "clip"),
    ]
    return nodes, inits


def frames_input(frames: int, height: int, width: int, name: str = "frames", channels: int = 1):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT,
                                         [1, channels, frames, height, width])


def f32_output(name: str, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


def make_model(graph_name: str, nodes, inits, inputs, outputs, doc: str) -> onnx.ModelProto:
    """Wrap a graph in a ModelProto with fixed opset, IR version and producer, then check it."""
    graph = helper.make_graph(nodes, graph_name, inputs, outputs, initializer=inits,
                              doc_string=doc)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name=PRODUCER_NAME, producer_version=PRODUCER_VERSION,
                              doc_string=doc)
    model.ir_version = IR_VERSION
    model.model_version = 1
    # full_check runs strict shape inference: it fails if the declared output shapes disagree
    # with what the graph computes.
    onnx.checker.check_model(model, full_check=True)
    return model


def build_motion_model(name: str, frames: int = FRAMES, height: int = BASELINE_SIZE,
                       width: int = BASELINE_SIZE, doc: str | None = None) -> onnx.ModelProto:
    """The baseline graph: frames [1, 1, frames, height, width] -> envelope [1, frames]."""
    nodes, inits = motion_envelope_nodes("frames", frames, "envelope")
    doc = doc or (f"{name}: motion-energy envelope, y = clip(e / (max(e) + {FLOOR}), 0, 1), "
                  "e = mean |frame[t] - frame[t-1]| (0 for frame 0). Built by "
                  "models/make_baseline.py.")
    return make_model(name, nodes, inits, [frames_input(frames, height, width)],
                      [f32_output("envelope", [1, frames])], doc)


def serialize(model: onnx.ModelProto) -> bytes:
    return model.SerializeToString(deterministic=True)


# --------------------------------------------------------------------------------------------
# Sidecar
# --------------------------------------------------------------------------------------------

def _toml_str(s: str) -> str:
    if any(c in s for c in '"\\\n\r\t') or not s.isascii():
        raise ValueError(f"keep sidecar strings plain ASCII without quotes/escapes: {s!r}")
    return f'"{s}"'


def _toml_list(items) -> str:
    return "[" + ", ".join(_toml_str(i) if isinstance(i, str) else repr(float(i))
                           for i in items) + "]"


def sidecar_text(*, onnx_file: str, name: str, version: str, description: str,
                 width: int, height: int, frames: int = FRAMES, fps: int = FPS,
                 form: str = "clip", envelope_mode: str = "frame-mean",
                 input_name: str = "frames", layout: str = "NCTHW", colour: str = "gray",
                 scale: float = 255.0, mean=(0.0,), std=(1.0,), envelope: str = "envelope",
                 class_logits: str = "", classes=()) -> str:
    """The sidecar NAME.toml in the fixed shape of DESIGN.md's model contract."""
    def line(kv: str, comment: str | None = None) -> str:
        return kv if comment is None else f"{kv:<30} # {comment}"

    lines = [
        f"# Sidecar of {onnx_file}: what impactd must do to feed it "
        "(DESIGN.md, \"The model contract\").",
        "[model]",
        line(f"name = {_toml_str(name)}"),
        line(f"version = {_toml_str(version)}"),
        line(f"form = {_toml_str(form)}",
             '"clip": one graph, window in, envelope out ("streaming": encoder + head, later)'),
        line(f"frames = {frames}", "frames per window"),
        line(f"fps = {fps}", "frame rate of the window"),
        line(f"envelope_mode = {_toml_str(envelope_mode)}",
             'audio envelope mode of the training target: "seed" | "frame-mean"'),
        line(f"description = {_toml_str(description)}"),
        "",
        "[input]",
        line(f"name = {_toml_str(input_name)}", "ONNX input name"),
        line(f"layout = {_toml_str(layout)}", "NCTHW | NTCHW | NTHWC, batch N = 1"),
        line(f"width = {width}"),
        line(f"height = {height}"),
        line(f"colour = {_toml_str(colour)}", '"rgb" | "gray" | "gray-diff"'),
        line(f"scale = {float(scale)!r}", "pixel value / scale, then (x - mean[c]) / std[c]"),
        line(f"mean = {_toml_list(mean)}", "one per channel (1 for gray, 3 for rgb)"),
        line(f"std = {_toml_list(std)}"),
        "",
        "[output]",
        line(f"envelope = {_toml_str(envelope)}",
             "name of the [1, 48] output, values in [0, 1]"),
        line(f"class_logits = {_toml_str(class_logits)}",
             'name of the optional [1, N] class-logit output; "" = none'),
        line(f"classes = {_toml_list(classes)}",
             'names of the class logits, e.g. ["hit", "collision", "drop"]'),
    ]
    text = "\n".join(lines) + "\n"
    tomllib.loads(text)  # must parse
    return text


def _dims(vi) -> list:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
            for d in vi.type.tensor_type.shape.dim]


def contract_mismatches(sidecar: dict, model: onnx.ModelProto) -> list[str]:
    """A Python mirror of the load-time check of DESIGN.md: sidecar vs ONNX shapes.

    Returns one message per mismatch, each naming both the sidecar's and the graph's value.
    Covers the clip form with layout NCTHW (all this script and the fixtures produce).
    """
    problems = []
    m, i, o = sidecar["model"], sidecar["input"], sidecar["output"]
    channels = 3 if i["colour"] == "rgb" else 1
    assert i["layout"] == "NCTHW", "this mirror only knows NCTHW"
    want_in = [1, channels, m["frames"], i["height"], i["width"]]
    labels = ["N", "C", "T (frames)", "H (height)", "W (width)"]
    inputs = {vi.name: vi for vi in model.graph.input}
    inputs = {k: v for k, v in inputs.items()
              if k not in {init.name for init in model.graph.initializer}}
    outputs = {vi.name: vi for vi in model.graph.output}
    if i["name"] not in inputs:
        problems.append(f"input: sidecar names '{i['name']}', graph has {sorted(inputs)}")
    else:
        got = _dims(inputs[i["name"]])
        if len(got) != 5:
            problems.append(f"input '{i['name']}': sidecar wants rank 5, graph has {got}")
        else:
            for lab, w, g in zip(labels, want_in, got):
                if w != g:
                    problems.append(f"input '{i['name']}' {lab}: sidecar {w}, graph {g}")
    wanted_out = {o["envelope"]: [1, m["frames"]]}
    if o["class_logits"]:
        wanted_out[o["class_logits"]] = [1, len(o["classes"])]
    for name, want in wanted_out.items():
        if name not in outputs:
            problems.append(f"output: sidecar names '{name}', graph has {sorted(outputs)}")
        elif _dims(outputs[name]) != want:
            problems.append(f"output '{name}': sidecar {want}, graph {_dims(outputs[name])}")
    return problems


# --------------------------------------------------------------------------------------------
# Reference maths and inputs for verification
# --------------------------------------------------------------------------------------------

def reference_envelope(x: np.ndarray, floor: float = FLOOR) -> np.ndarray:
    """numpy (float64) version of the graph: x [1, C, T, H, W] -> [1, T]."""
    x = np.asarray(x, dtype=np.float64)
    d = np.abs(x[:, :, 1:] - x[:, :, :-1])
    e = d.mean(axis=(1, 3, 4))
    e = np.concatenate([np.zeros((x.shape[0], 1)), e], axis=1)
    y = e / (e.max(axis=1, keepdims=True) + floor)
    return np.clip(y, 0.0, 1.0)


def falling_square(frames: int, size: int, start: int, stop: int, side: int | None = None,
                   background: float = 0.1) -> np.ndarray:
    """A bright square on a dark background that falls from rest with constant acceleration
    on frames start+1 .. stop (it moves 1, 3, 5, ... pixels per frame) and then stops dead, as
    if it hit the floor: the motion energy is zero outside start+1 .. stop and largest at
    frame `stop`, the impact."""
    side = side or size // 4
    if 2 + (stop - start) ** 2 + side > size:
        raise ValueError("the square would fall out of the frame")
    x = np.full((1, 1, frames, size, size), background, dtype=np.float32)
    left = (size - side) // 2
    for t in range(frames):
        top = 2 + min(max(t - start, 0), stop - start) ** 2
        x[0, 0, t, top:top + side, left:left + side] = 1.0
    return x


def noisy_static(frames: int, size: int, sigma_grey: float, seed: int) -> np.ndarray:
    """A static mid-grey scene with 8-bit camera noise of sigma_grey grey levels."""
    rng = np.random.default_rng(seed)
    base = rng.integers(40, 200, size=(size, size)).astype(np.float64)
    noisy = base + rng.normal(0.0, sigma_grey, size=(frames, size, size))
    pix = np.clip(np.rint(noisy), 0, 255)
    return (pix / 255.0).astype(np.float32).reshape(1, 1, frames, size, size)


def ort_session(path: pathlib.Path):
    import onnxruntime as ort  # only needed to verify
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def run_envelope(sess, x: np.ndarray) -> np.ndarray:
    return sess.run(["envelope"], {"frames": x})[0]


# --------------------------------------------------------------------------------------------
# Baseline: build, write, verify
# --------------------------------------------------------------------------------------------

def baseline_files() -> dict[str, bytes]:
    a = serialize(build_motion_model(BASELINE_NAME))
    b = serialize(build_motion_model(BASELINE_NAME))
    if a != b:
        raise SystemExit("non-deterministic build: two builds differ")
    toml = sidecar_text(onnx_file=f"{BASELINE_NAME}.onnx", name=BASELINE_NAME,
                        version=BASELINE_VERSION, description=BASELINE_DESCRIPTION,
                        width=BASELINE_SIZE, height=BASELINE_SIZE)
    return {f"{BASELINE_NAME}.onnx": a, f"{BASELINE_NAME}.toml": toml.encode()}


def verify_baseline(out_dir: pathlib.Path) -> None:
    onnx_path = out_dir / f"{BASELINE_NAME}.onnx"
    model = onnx.load(str(onnx_path))
    onnx.checker.check_model(model, full_check=True)
    sidecar = tomllib.loads((out_dir / f"{BASELINE_NAME}.toml").read_text())
    mism = contract_mismatches(sidecar, model)
    assert not mism, mism
    ops = sorted({n.op_type for n in model.graph.node})
    print(f"  onnx.checker (full_check): ok; opset {model.opset_import[0].version}, "
          f"IR {model.ir_version}; ops: {', '.join(ops)}")
    print("  sidecar vs graph shapes: ok (input [1, 1, 48, 64, 64], output envelope [1, 48])")

    sess = ort_session(onnx_path)
    (inp,), outs = sess.get_inputs(), sess.get_outputs()
    print(f"  onnxruntime: input {inp.name} {inp.shape}, outputs "
          f"{[(o.name, o.shape) for o in outs]}")
    S, T = BASELINE_SIZE, FRAMES

    # (a) onnxruntime == numpy reference on random inputs
    rng = np.random.default_rng(20240613)
    worst = 0.0
    cases = [rng.random((1, 1, T, S, S), dtype=np.float32) for _ in range(8)]
    # sparse motion: mostly static with a few changed frames, so the envelope is peaky
    for _ in range(4):
        x = np.repeat(rng.random((1, 1, 1, S, S), dtype=np.float32), T, axis=2)
        for t in rng.choice(np.arange(1, T), size=5, replace=False):
            x[0, 0, t:] = np.clip(x[0, 0, t:] + rng.normal(0, 0.05 * rng.random(),
                                                           size=(S, S)), 0, 1)
        cases.append(x.astype(np.float32))
    cases.append(rng.random((1, 1, T, S, S), dtype=np.float32) * 0.002)  # tiny motion < floor
    for x in cases:
        y = run_envelope(sess, x)
        assert y.shape == (1, T) and y.dtype == np.float32, (y.shape, y.dtype)
        assert np.all((y >= 0) & (y <= 1)), "envelope outside [0, 1]"
        worst = max(worst, float(np.max(np.abs(y.astype(np.float64) - reference_envelope(x)))))
    assert worst < 1e-6, worst
    print(f"  (a) onnxruntime vs numpy reference, {len(cases)} random windows: "
          f"max |diff| = {worst:.2e} (< 1e-6) ok")

    # (b) static input -> all zeros
    for label, x in [("uniform grey 0.5", np.full((1, 1, T, S, S), 0.5, np.float32)),
                     ("random still image", np.repeat(rng.random((1, 1, 1, S, S),
                                                                 dtype=np.float32), T, axis=2))]:
        y = run_envelope(sess, x)
        assert np.all(y == 0.0), y
        print(f"  (b) static input ({label}): all 48 values == 0 ok")

    # (b) a bright square falling and stopping -> peak where the motion is, at the stop
    x = falling_square(T, S, start=20, stop=26)
    y = run_envelope(sess, x)[0]
    moving = np.arange(21, 27)
    assert int(np.argmax(y)) == 26, (np.argmax(y), y)
    assert np.all(np.diff(y[moving]) > 0) and y[26] > 0.8, y[moving]
    assert np.all(np.delete(y, moving) == 0.0), y
    print(f"  (b) 16x16 square falling on frames 21..26 (1, 3, .. 11 px/frame), then still: "
          f"argmax = {int(np.argmax(y))}, frames 21..26 = {[round(float(v), 3) for v in y[moving]]}, "
          "0 elsewhere ok")

    # noise behaviour (informative; asserts only the clear cases)
    for sigma in (0.5, 1.0, 2.0, 3.0):
        y = run_envelope(sess, noisy_static(T, S, sigma, seed=int(sigma * 10)))[0]
        print(f"      static scene, camera noise sigma {sigma} grey levels: envelope max "
              f"{y.max():.3f}, min over frames 1..47 {y[1:].min():.3f}")
        if sigma <= 1.0:
            assert y.max() < 0.4, y.max()
    xn = np.clip(falling_square(T, S, 20, 26) + (noisy_static(T, S, 1.0, 7) - 0.5), 0, 1)
    y = run_envelope(sess, xn.astype(np.float32))[0]
    assert int(np.argmax(y)) == 26
    print(f"      falling square + noise sigma 1 grey level: peak {y.max():.3f} at frame "
          f"{int(np.argmax(y))}, median elsewhere {np.median(np.delete(y, moving)):.3f}")


def sync_files(files: dict[str, bytes], out: pathlib.Path, check: bool, no_verify: bool) -> int | None:
    """Writes `files` into `out` (or, with `check`, only compares them), then makes sure
    onnxruntime is there for the verification. Returns an exit status to stop with, or None
    to go on verifying. Shared with tests/fixtures/models/make_fixtures.py."""
    if check:
        stale = [n for n, b in files.items()
                 if not (out / n).is_file() or (out / n).read_bytes() != b]
        for n in files:
            print(f"{n}: {'DIFFERS' if n in stale else 'up to date'}")
        return 1 if stale else 0

    out.mkdir(parents=True, exist_ok=True)
    for n, b in files.items():
        p = out / n
        state = "unchanged" if p.is_file() and p.read_bytes() == b else "written"
        p.write_bytes(b)
        print(f"{n:<20} {len(b):>5} bytes  sha256 {hashlib.sha256(b).hexdigest()[:16]}  ({state})")

    if no_verify:
        print("verification skipped (--no-verify)")
        return 0
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        print("onnxruntime is not installed: install it (models/requirements-baseline.txt) "
              "or pass --no-verify", file=sys.stderr)
        return 2
    return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=pathlib.Path, default=HERE,
                    help="output directory (default: the directory of this script)")
    ap.add_argument("--no-verify", action="store_true",
                    help="build and check only; skip the onnxruntime verification")
    ap.add_argument("--check", action="store_true",
                    help="write nothing; exit 1 if the files in --out differ from a fresh build")
    args = ap.parse_args(argv)

    status = sync_files(baseline_files(), args.out, args.check, args.no_verify)
    if status is not None:
        return status
    import onnxruntime
    print(f"verifying with onnxruntime {onnxruntime.__version__}:")
    verify_baseline(args.out)
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
