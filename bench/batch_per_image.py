#!/usr/bin/env python3
"""Time per image at several batch sizes, sieve and onnxruntime alternated round by round
(a noisy machine's drift hits every configuration alike): does a batch make each image
cheaper or dearer? Prints, per engine and batch size, the median over rounds of each
round's median ms per image, and the ratio to batch 1.

Usage: .venv/bin/python bench/batch_per_image.py MODEL.onnx [--batches 1,4,8,16]
       [--threads 2] [--rounds 5] [--seconds 1.5] [--sieve target/release/sieve]
"""
import argparse
import statistics as st
import time

import numpy as np
import onnxruntime as ort

from thread_scaling import sieve_ms


def ort_ms(sess, name, x, seconds):
    for _ in range(2):
        sess.run(None, {name: x})
    ts, t0 = [], time.perf_counter()
    while time.perf_counter() - t0 < seconds or len(ts) < 3:
        t = time.perf_counter()
        sess.run(None, {name: x})
        ts.append(time.perf_counter() - t)
    return st.median(ts) * 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--batches", default="1,4,8,16")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=1.5)
    ap.add_argument("--sieve", default="target/release/sieve")
    a = ap.parse_args()
    batches = [int(b) for b in a.batches.split(",")]
    o = ort.SessionOptions()
    o.intra_op_num_threads = a.threads
    o.inter_op_num_threads = 1
    sess = ort.InferenceSession(a.model, o, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    rng = np.random.RandomState(0)
    xs = {b: (rng.rand(*([b] + list(inp.shape[1:]))) * 255).astype(np.float32) for b in batches}
    per = {(e, b): [] for e in ("sieve", "onnxruntime") for b in batches}
    for r in range(a.rounds):
        for b in batches:
            per[("sieve", b)].append(sieve_ms(a.sieve, a.model, a.threads, a.seconds, batch=b) / b)
            per[("onnxruntime", b)].append(ort_ms(sess, inp.name, xs[b], a.seconds) / b)
    print(f"{a.model}, {a.threads} threads, {a.rounds} rounds, ms per image (median of rounds):")
    print("| engine | " + " | ".join(f"batch {b}" for b in batches) + " |")
    print("|---|" + "---|" * len(batches))
    for e in ("sieve", "onnxruntime"):
        base = st.median(per[(e, batches[0])])
        cells = [f"{st.median(per[(e, b)]):.3f} ({st.median(per[(e, b)]) / base:.2f}x)" for b in batches]
        print(f"| {e} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
