#!/usr/bin/env python3
"""Batch-1 latency on one and on two threads, sieve next to onnxruntime, rounds interleaved
(docs/PERFORMANCE.md "Session 17"): how much each engine gains from the second core.

Usage: .venv/bin/python bench/thread_scaling.py SIEVE_BINARY MODEL.onnx... [--rounds 5] [--seconds 1]
Per model and thread count: the median over rounds of each round's median latency (sieve:
`sieve bench --json`, its own median; onnxruntime: an InferenceSession with
intra_op_num_threads = threads, timed here), and the scaling t(1 thread) / t(2 threads).
"""
import argparse, json, subprocess, time

import numpy as np
import onnx
import onnxruntime as ort


def med(xs):
    return float(np.median(xs))


def ort_ms(path, threads, seconds):
    o = ort.SessionOptions()
    o.intra_op_num_threads = threads
    s = ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])
    i = s.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in i.shape]
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    for _ in range(20):
        s.run(None, {i.name: x})
    times, start = [], time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 20:
        t = time.perf_counter()
        s.run(None, {i.name: x})
        times.append((time.perf_counter() - t) * 1e3)
    return med(times)


def sieve_ms(binary, path, threads, seconds, batch=1):
    out = subprocess.run(
        [binary, "bench", "--model", path, "--batch", str(batch), "--threads", str(threads),
         "--min-seconds", str(seconds), "--json"],
        check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["median_ms"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("sieve")
    ap.add_argument("models", nargs="+")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=1.0)
    a = ap.parse_args()
    rows = []
    for m in a.models:
        onnx.load(m, load_external_data=False)  # fail early on a bad path
        t = {(e, n): [] for e in ("sieve", "ort") for n in (1, 2)}
        for _ in range(a.rounds):
            for n in (1, 2):
                t[("sieve", n)].append(sieve_ms(a.sieve, m, n, a.seconds))
                t[("ort", n)].append(ort_ms(m, n, a.seconds))
        r = {k: med(v) for k, v in t.items()}
        rows.append({
            "model": m,
            "sieve_1": r[("sieve", 1)], "sieve_2": r[("sieve", 2)],
            "ort_1": r[("ort", 1)], "ort_2": r[("ort", 2)],
            "sieve_scaling": r[("sieve", 1)] / r[("sieve", 2)],
            "ort_scaling": r[("ort", 1)] / r[("ort", 2)],
            "raw": {f"{e}_{n}": v for (e, n), v in t.items()},
        })
    print("| model | sieve 1 / 2 threads (ms) | scaling | onnxruntime 1 / 2 threads (ms) | scaling | sieve / ort, 2 threads |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model'].split('/')[-2]} | {r['sieve_1']:.3f} / {r['sieve_2']:.3f} | {r['sieve_scaling']:.2f}x"
              f" | {r['ort_1']:.3f} / {r['ort_2']:.3f} | {r['ort_scaling']:.2f}x | {r['sieve_2'] / r['ort_2']:.2f}x |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
