#!/usr/bin/env python3
"""Candidate model architectures for profiling tract against ONNX Runtime (random weights).

Writes ONNX files of the shapes a trained impactd model is likely to take (DESIGN.md, "The model
contract": a per-frame 2-D CNN encoder on 64x64 gray frames and a temporal head over [1, 48, F]),
plus int8 versions from onnxruntime.quantization, into OUT (default target/profile-models/).
Only numpy, onnx and onnxruntime are needed (no torch). `bench/profile-models.sh` times them.

    python3 bench/make_profile_models.py [OUT]

Each file name says what it is; `shapes.txt` lists each model's input shape for the profiler.
"""

import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
rng = np.random.default_rng(7)


class G:
    """A tiny graph builder: nodes, initialisers, unique names."""

    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def name(self, p):
        self.n += 1
        return f"{p}{self.n}"

    def const(self, arr, p="w"):
        nm = self.name(p)
        self.inits.append(numpy_helper.from_array(np.asarray(arr), nm))
        return nm

    def op(self, kind, inputs, p=None, **attrs):
        out = self.name(p or kind.lower())
        self.nodes.append(helper.make_node(kind, inputs, [out], **attrs))
        return out

    def conv(self, x, cin, cout, k, stride=1, pad=None, group=1, dil=1, dims=2, relu=True):
        ks = [k] * dims if isinstance(k, int) else list(k)
        fan = cin // group * int(np.prod(ks))
        w = self.const((rng.standard_normal([cout, cin // group] + ks) / np.sqrt(fan)).astype(np.float32))
        b = self.const((rng.standard_normal(cout) * 0.01).astype(np.float32), "b")
        pads = pad if pad is not None else [((kk - 1) * dil) // 2 for kk in ks] * 2
        y = self.op("Conv", [x, w, b], kernel_shape=ks, strides=[stride] * dims if isinstance(stride, int) else stride,
                    pads=pads, group=group, dilations=[dil] * dims)
        return self.op("Relu", [y]) if relu else y

    def gemm(self, x, fin, fout):
        w = self.const((rng.standard_normal([fin, fout]) / np.sqrt(fin)).astype(np.float32))
        b = self.const(np.zeros(fout, np.float32), "b")
        return self.op("Gemm", [x, w, b])

    def model(self, inp, in_shape, out, out_shape, out_name="envelope"):
        self.nodes.append(helper.make_node("Identity", [out], [out_name]))
        g = helper.make_graph(
            self.nodes, "g",
            [helper.make_tensor_value_info(inp, TensorProto.FLOAT, in_shape)],
            [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, out_shape)],
            self.inits,
        )
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)])
        m.ir_version = 8
        onnx.checker.check_model(m)
        return m


def encoder(g, x, kind, F=32):
    """[N,1,64,64] -> [N,F]."""
    if kind == "s2":        # four stride-2 3x3 convs 16-32-32-64, global average pool
        x = g.conv(x, 1, 16, 3, 2)
        x = g.conv(x, 16, 32, 3, 2)
        x = g.conv(x, 32, 32, 3, 2)
        x = g.conv(x, 32, 64, 3, 2)
        c = 64
    elif kind == "pool":    # stride-1 convs + 2x2 max pools: 4x the conv work at each level
        for cin, cout in [(1, 16), (16, 32), (32, 32), (32, 64)]:
            x = g.conv(x, cin, cout, 3, 1)
            x = g.op("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
        c = 64
    elif kind == "dw":      # stem conv, then depthwise-separable blocks (MobileNet style)
        x = g.conv(x, 1, 16, 3, 2)
        for cin, cout in [(16, 32), (32, 64), (64, 64)]:
            x = g.conv(x, cin, cin, 3, 2, group=cin)
            x = g.conv(x, cin, cout, 1, 1)
        c = 64
    elif kind == "patch4":  # a 4x4 stride-4 "patchify" stem (K = 16 instead of 9), then s2 convs
        x = g.conv(x, 1, 32, 4, 4, pad=[0, 0, 0, 0])
        x = g.conv(x, 32, 32, 3, 2)
        x = g.conv(x, 32, 64, 3, 2)
        c = 64
    elif kind == "s2valid":  # s2 without padding (pads = 0): no Pad ops before the convs
        x = g.conv(x, 1, 16, 3, 2, pad=[0, 0, 0, 0])
        x = g.conv(x, 16, 32, 3, 2, pad=[0, 0, 0, 0])
        x = g.conv(x, 32, 32, 3, 2, pad=[0, 0, 0, 0])
        x = g.conv(x, 32, 64, 3, 2, pad=[0, 0, 0, 0])
        c = 64
    elif kind == "s2bn":    # s2 with BatchNormalization after each conv (as torch exports it untrained-folded)
        for cin, cout in [(1, 16), (16, 32), (32, 32), (32, 64)]:
            y = g.conv(x, cin, cout, 3, 2, relu=False)
            s = g.const(np.ones(cout, np.float32)), g.const(np.zeros(cout, np.float32))
            m = g.const(np.zeros(cout, np.float32)), g.const(np.ones(cout, np.float32))
            y = g.op("BatchNormalization", [y, s[0], s[1], m[0], m[1]])
            x = g.op("Relu", [y])
        c = 64
    else:
        raise ValueError(kind)
    x = g.op("GlobalAveragePool", [x])
    x = g.op("Flatten", [x], axis=1)
    return g.gemm(x, c, F)


def head(g, x, kind, F=32, T=48):
    """[1,F,T] (channels first) -> [1,T]."""
    if kind == "tcn":       # causal dilated 1-D convs (left padding only), 1x1 to one channel
        for d in [1, 2, 4, 8]:
            x = g.conv(x, F, F, 3, 1, pad=[2 * d, 0], dil=d, dims=1)
        x = g.conv(x, F, 1, 1, 1, pad=[0, 0], dims=1, relu=False)
    elif kind in ("gru", "lstm"):
        H = 32
        seq = g.op("Transpose", [x], perm=[2, 0, 1])                     # [T,1,F]
        gates = 3 if kind == "gru" else 4
        W = g.const((rng.standard_normal([1, gates * H, F]) / np.sqrt(F)).astype(np.float32))
        R = g.const((rng.standard_normal([1, gates * H, H]) / np.sqrt(H)).astype(np.float32))
        B = g.const(np.zeros([1, 2 * gates * H], np.float32))
        y = g.name("y")
        g.nodes.append(helper.make_node(kind.upper(), [seq, W, R, B], [y], hidden_size=H))  # [T,1,1,H]
        y = g.op("Reshape", [y, g.const(np.array([T, H], np.int64), "s")])
        w = g.const((rng.standard_normal([H, 1]) / np.sqrt(H)).astype(np.float32))
        x = g.op("MatMul", [y, w])                                        # [T,1]
    else:
        raise ValueError(kind)
    x = g.op("Sigmoid", [x])
    return g.op("Reshape", [x, g.const(np.array([1, T], np.int64), "s")])


def clip_model(enc, hd, F=32, T=48):
    """The clip form: [1,1,48,64,64] (NCTHW, gray) -> encoder on 48 frames -> head -> [1,48]."""
    g = G()
    x = g.op("Reshape", ["frames", g.const(np.array([T, 1, 64, 64], np.int64), "s")])
    f = encoder(g, x, enc, F)                                             # [T,F]
    f = g.op("Transpose", [f], perm=[1, 0])
    f = g.op("Reshape", [f, g.const(np.array([1, F, T], np.int64), "s")])
    y = head(g, f, hd, F, T)
    return g.model("frames", [1, 1, T, 64, 64], y, [1, T])


def encoder_model(enc, N, F=32):
    g = G()
    y = encoder(g, "frames", enc, F)
    return g.model("frames", [N, 1, 64, 64], y, [N, F], "features")


def head_model(hd, F=32, T=48):
    g = G()
    y = head(g, "features", hd, F, T)
    return g.model("features", [1, F, T], y, [1, T])


def conv3d_model(T=48):
    """The seed's form: 3-D convolutions over the whole window (stride 2 in space, 1 in time)."""
    g = G()
    x = g.conv("frames", 1, 8, [3, 3, 3], [1, 2, 2], dims=3)
    x = g.conv(x, 8, 16, [3, 3, 3], [1, 2, 2], dims=3)
    x = g.conv(x, 16, 32, [3, 3, 3], [1, 2, 2], dims=3)
    x = g.op("ReduceMean", [x], axes=[3, 4], keepdims=0)                 # [1,32,T]
    x = g.conv(x, 32, 1, 1, 1, pad=[0, 0], dims=1, relu=False)
    x = g.op("Sigmoid", [x])
    x = g.op("Reshape", [x, g.const(np.array([1, T], np.int64), "s")])
    return g.model("frames", [1, 1, T, 64, 64], x, [1, T])


def quantise(src, dst_dir, stem, shape):
    """int8 versions: static QDQ and QOperator (calibrated on random frames), dynamic."""
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_dynamic, quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.left = [{"frames": rng.random(shape, dtype=np.float32)} for _ in range(4)]

        def get_next(self):
            return self.left.pop() if self.left else None

    out = {}
    for fmt, tag in [(QuantFormat.QDQ, "qdq"), (QuantFormat.QOperator, "qop")]:
        p = os.path.join(dst_dir, f"{stem}.int8-{tag}.onnx")
        quantize_static(src, p, Reader(), quant_format=fmt, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8)
        out[p] = shape
    p = os.path.join(dst_dir, f"{stem}.int8-dynamic.onnx")
    quantize_dynamic(src, p, weight_type=QuantType.QUInt8)
    out[p] = shape
    return out


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "target/profile-models"
    os.makedirs(out, exist_ok=True)
    shapes = {}

    def save(m, stem, shape):
        p = os.path.join(out, stem + ".onnx")
        onnx.save(m, p)
        shapes[p] = shape
        return p

    clip = [1, 1, 48, 64, 64]
    for enc in ["s2", "pool", "dw", "s2bn", "patch4", "s2valid"]:
        save(encoder_model(enc, 1), f"enc-{enc}.n1", [1, 1, 64, 64])
        save(encoder_model(enc, 48), f"enc-{enc}.n48", [48, 1, 64, 64])
    for hd in ["tcn", "gru", "lstm"]:
        save(head_model(hd), f"head-{hd}", [1, 32, 48])
    for enc, hd in [("s2", "tcn"), ("s2", "gru"), ("dw", "tcn"), ("patch4", "tcn")]:
        p = save(clip_model(enc, hd), f"clip-{enc}-{hd}", clip)
    save(conv3d_model(), "clip-conv3d", clip)
    # int8: the per-frame encoder (what a streaming model runs per frame) and a whole clip model.
    shapes.update(quantise(os.path.join(out, "enc-s2.n1.onnx"), out, "enc-s2.n1", [1, 1, 64, 64]))
    shapes.update(quantise(os.path.join(out, "clip-s2-tcn.onnx"), out, "clip-s2-tcn", clip))
    with open(os.path.join(out, "shapes.txt"), "w") as f:
        for p, s in shapes.items():
            f.write(f"{p} {','.join(map(str, s))}\n")
    print(f"{len(shapes)} models in {out}")


if __name__ == "__main__":
    main()
