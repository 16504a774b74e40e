#!/usr/bin/env python3
"""Single-op onnxruntime latencies for the shapes in benches/kernels.rs.

Builds one-node ONNX models in memory and prints the best-of-N latency (microseconds)
per case, with onnxruntime's default (all) graph optimisations and 2 intra-op threads,
so that the numbers can be put next to `cargo bench -p sieve-nn --bench kernels` (or the
`kernel_times` example) as ratios measured in one run.

Usage: python3 -m venv /tmp/venv-k && /tmp/venv-k/bin/pip install onnxruntime onnx numpy
       /tmp/venv-k/bin/python crates/sieve-nn/benches/ort_ops.py [filter]
       /tmp/venv-k/bin/python crates/sieve-nn/benches/ort_ops.py --compare BIN [filter]
With --compare, BIN (the built `kernel_times` bench executable, see docs/KERNELS.md) is run
for each case in turn with onnxruntime, twice, and the best times and the ratio
sieve/onnxruntime are printed: interleaving keeps both sides under the same machine load.
"""
import subprocess
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper


def conv_case(name, cin, cout, k, stride, pad, groups, n, hw):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((cout, cin // groups, k, k)).astype(np.float32) * 0.1
    b = rng.standard_normal(cout).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["y0"], kernel_shape=[k, k], strides=[stride] * 2,
                         pads=[pad] * 4, group=groups),
        helper.make_node("Relu", ["y0"], ["y"]),
    ]
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")]
    return name, nodes, inits, (n, cin, hw, hw)


def gemm_case(name, m, k, n):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((n, k)).astype(np.float32) * 0.01
    nodes = [helper.make_node("Gemm", ["x", "w"], ["y"], transB=1)]
    return name, nodes, [numpy_helper.from_array(w, "w")], (m, k)


def pool_case(name, op, c, hw):
    nodes = [helper.make_node(op, ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])]
    return name, nodes, [], (1, c, hw, hw)


CASES = [
    conv_case("lenet_conv1_5x5_1to6_b1", 1, 6, 5, 1, 0, 1, 1, 28),
    conv_case("lenet_conv1_5x5_1to6_b64", 1, 6, 5, 1, 0, 1, 64, 28),
    conv_case("cifar_quick_conv2_5x5_32to32_16_b64", 32, 32, 5, 1, 2, 1, 64, 16),
    conv_case("alexnet_conv1_11x11s4_3to96_224", 3, 96, 11, 4, 2, 1, 1, 224),
    conv_case("alexnet_conv2_5x5_g2_96to256_27", 96, 256, 5, 1, 2, 2, 1, 27),
    conv_case("vgg_3x3_64to64_224", 64, 64, 3, 1, 1, 1, 1, 224),
    conv_case("resnet_3x3_64to64_56", 64, 64, 3, 1, 1, 1, 1, 56),
    conv_case("resnet_3x3_256to256_14", 256, 256, 3, 1, 1, 1, 1, 14),
    conv_case("resnet_3x3_64to64_56_b16", 64, 64, 3, 1, 1, 1, 16, 56),
    conv_case("pointwise_1x1_32to64_112", 32, 64, 1, 1, 0, 1, 1, 112),
    conv_case("mobilenet_dw3x3_32_112", 32, 32, 3, 1, 1, 32, 1, 112),
    conv_case("mobilenet_dw3x3s2_64_112", 64, 64, 3, 2, 1, 64, 1, 112),
    conv_case("mobilenetv2_dw3x3_576_14", 576, 576, 3, 1, 1, 576, 1, 14),
    gemm_case("fc6_1x9216x4096", 1, 9216, 4096),
    gemm_case("fc6_64x9216x4096", 64, 9216, 4096),
    pool_case("resnet_maxpool3x3s2_64_112", "MaxPool", 64, 112),
    pool_case("avgpool3x3s2_64_112", "AveragePool", 64, 112),
    ("alexnet_lrn5_96_55", [helper.make_node("LRN", ["x"], ["y"], size=5, alpha=1e-4, beta=0.75, bias=1.0)],
     [], (1, 96, 55, 55)),
]


def ort_time(sess_opts, name, nodes, inits, shape):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, name, [x], [y], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    sess = ort.InferenceSession(model.SerializeToString(), sess_opts, providers=["CPUExecutionProvider"])
    feed = {"x": np.random.default_rng(1).standard_normal(shape).astype(np.float32)}
    for _ in range(3):
        sess.run(None, feed)
    best = float("inf")
    deadline = time.perf_counter() + 2.0
    runs = 0
    while runs < 5 or (time.perf_counter() < deadline and runs < 200):
        t = time.perf_counter()
        sess.run(None, feed)
        best = min(best, time.perf_counter() - t)
        runs += 1
    return best * 1e6


def sieve_time(binary, name):
    out = subprocess.run([binary, "--bench", name], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0] == name:
            return float(parts[1])
    raise RuntimeError(f"{name} not reported by {binary}")


def main():
    args = sys.argv[1:]
    binary = None
    if args and args[0] == "--compare":
        binary, args = args[1], args[2:]
    filt = args[0] if args else ""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if binary:
        print(f"{'case':40} {'sieve us':>10} {'ort us':>10} {'ratio':>6}")
    for name, nodes, inits, shape in CASES:
        if filt not in name:
            continue
        if not binary:
            print(f"{name:40} {ort_time(opts, name, nodes, inits, shape):10.1f} us")
            continue
        ours, theirs = float("inf"), float("inf")
        for _ in range(2):
            ours = min(ours, sieve_time(binary, name))
            theirs = min(theirs, ort_time(opts, name, nodes, inits, shape))
        print(f"{name:40} {ours:10.1f} {theirs:10.1f} {ours / theirs:6.2f}", flush=True)


if __name__ == "__main__":
    main()
