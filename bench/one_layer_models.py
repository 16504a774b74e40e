#!/usr/bin/env python3
"""One-layer ONNX models of cifar10_quick's three 5x5 convolutions and of other small-map
convolutions (Conv + Relu, random weights) for per-layer timing next to onnxruntime and
between kernel settings (docs/PERFORMANCE.md "Session 17", "Session 18"):
bench/out/layers/<name>/model.onnx. Then, e.g.:
  .venv/bin/python bench/thread_scaling.py target/release/sieve bench/out/layers/*/model.onnx
"""
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

LAYERS = {  # name: (c_in, c_out, kernel, pad, map side[, stride]); pad: int or ONNX pads list
    "c10q_conv1_3x32_32x32": (3, 32, 5, 2, 32),
    "c10q_conv2_32x32_16x16": (32, 32, 5, 2, 16),
    "c10q_conv3_32x64_8x8": (32, 64, 5, 2, 8),
    # Session 18: widths that are a multiple of 8 but not of 16, and a 3x3 at 8x8 like
    # nin_cifar10's last block.
    "k3_192x192_8x8": (192, 192, 3, 1, 8),
    "k5_32x32_24x24": (32, 32, 5, 2, 24),
    "k3_32x32_24x24": (32, 32, 3, 1, 24),
    # Session 19: MobileNet v2's project layers on 28x28 and 14x14 maps (two-thread scaling).
    "k1_192x32_28x28": (192, 32, 1, 0, 28),
    "k1_576x96_14x14": (576, 96, 1, 0, 14),
    "k1_144x24_56x56": (144, 24, 1, 0, 56),
    # Session 20: the MobileNets' first layers (3x3 stride 2 on RGB, TF "SAME" pads).
    "s2_3x32_224x224": (3, 32, 3, [0, 0, 1, 1], 224, 2),
    "s2_3x8_128x128": (3, 8, 3, [0, 0, 1, 1], 128, 2),
    # Session 21: MobileNet v2's 7x7 expand / project / last 1x1 layers.
    "k1_160x960_7x7": (160, 960, 1, 0, 7),
    "k1_960x160_7x7": (960, 160, 1, 0, 7),
    "k1_320x1280_7x7": (320, 1280, 1, 0, 7),
    "k1_96x576_14x14": (96, 576, 1, 0, 14),
    # ResNet-18's 3x3 layers on 14x14 and 7x7 maps.
    "k3_256x256_14x14": (256, 256, 3, 1, 14),
    "k3_512x512_7x7": (512, 512, 3, 1, 7),
    "k3_128x128_28x28": (128, 128, 3, 1, 28),
    # SqueezeNet's and AlexNet's 3x3 layers on 13x13 maps.
    "k3_64x256_13x13": (64, 256, 3, 1, 13),
    "k3_384x256_13x13": (384, 256, 3, 1, 13),
    # ResNet-18's (and GoogLeNet's) first layer: 7x7 stride 2 on RGB.
    "s2_3x64_k7_224x224": (3, 64, 7, 3, 224, 2),
}

rng = np.random.default_rng(0)
for name, (ci, co, k, p, hw, *rest) in LAYERS.items():
    s = rest[0] if rest else 1
    pads = p if isinstance(p, list) else [p] * 4
    oh = (hw + pads[0] + pads[2] - k) // s + 1
    w = numpy_helper.from_array((rng.standard_normal((co, ci, k, k)) * 0.1).astype(np.float32), "W")
    b = numpy_helper.from_array(np.zeros(co, np.float32), "B")
    nodes = [helper.make_node("Conv", ["x", "W", "B"], ["y"], kernel_shape=[k, k], pads=pads,
                              strides=[s, s]),
             helper.make_node("Relu", ["y"], ["z"])]
    g = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, ci, hw, hw])],
                          [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, co, oh, oh])], [w, b])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    out = Path(__file__).parent / "out" / "layers" / name / "model.onnx"
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(m, out)
    print(out)
