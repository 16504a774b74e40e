#!/usr/bin/env python3
"""Largest difference between sieve's and onnxruntime's outputs on one random input.

Usage: bench/engine_vs_ort.py MODEL.onnx... [-- ENV=VALUE ...]
Runs `target/release/sieve infer` on a random 0..255 input of each model's shape, once with
the default kernels and once with every `ENV=VALUE` given after `--` (e.g. SIEVE_WINOGRAD=0),
and prints the maximum absolute and relative difference from onnxruntime and whether the
top-1 classes agree. The figure behind docs/KERNELS.md's Winograd rounding note.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnxruntime as ort


def main():
    args = sys.argv[1:]
    models, extra = (args[: args.index("--")], args[args.index("--") + 1:]) if "--" in args else (args, [])
    if not models:
        sys.exit(__doc__)
    variants = [{}, dict(kv.split("=", 1) for kv in extra)] if extra else [{}]
    tmp = tempfile.mkdtemp()
    xp, yp = os.path.join(tmp, "x.npy"), os.path.join(tmp, "y.npy")
    for m in models:
        s = ort.InferenceSession(m, providers=["CPUExecutionProvider"])
        i = s.get_inputs()[0]
        shape = [d if isinstance(d, int) else 1 for d in i.shape]
        x = np.random.default_rng(1).uniform(0, 255, shape).astype(np.float32)
        np.save(xp, x)
        want = s.run(None, {i.name: x})[0]
        for env in variants:
            e = dict(os.environ, **env)
            subprocess.run(["target/release/sieve", "infer", "--model", m, "--input", xp, "--output", yp],
                           check=True, env=e, capture_output=True)
            y = np.load(yp)
            d = np.abs(y - want)
            print(f"{os.path.basename(m)} {env or 'default'}: max abs {d.max():.2e}, "
                  f"max rel {(d / (np.abs(want) + 1e-6)).max():.2e}, "
                  f"top-1 same {bool((y.argmax(-1) == want.argmax(-1)).all())}")


if __name__ == "__main__":
    main()
