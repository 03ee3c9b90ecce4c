#!/usr/bin/env python3
"""Median latency of each model in shapes.txt under ONNX Runtime (CPU, one thread), for the
tract comparison in bench/profile-models.sh.   python3 bench/ort_times.py SHAPES.txt [RUNS]"""
import sys
import time

import numpy as np
import onnxruntime as ort

runs = int(sys.argv[2]) if len(sys.argv) > 2 else 200
for line in open(sys.argv[1]):
    path, shape = line.split()
    shape = [int(d) for d in shape.split(",")]
    o = ort.SessionOptions()
    o.intra_op_num_threads = 1
    o.inter_op_num_threads = 1
    o.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    s = ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])
    x = {s.get_inputs()[0].name: np.random.default_rng(1).random(shape, dtype=np.float32)}
    for _ in range(10):
        s.run(None, x)
    t = []
    for _ in range(runs):
        t0 = time.perf_counter()
        s.run(None, x)
        t.append(time.perf_counter() - t0)
    t.sort()
    print(f"{path} ort median {t[runs // 2] * 1e3:.3f} ms")
