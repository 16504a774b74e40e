#!/usr/bin/env python3
"""onnxruntime f32 side of bench/speculative.sh: batch-1 latency and peak RSS of one
model in this (fresh) process. Prints one JSON line like speculative_bench."""
import json, sys, time
import numpy as np
import onnxruntime as ort


def status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def main():
    path, runs, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.inter_op_num_threads = 1
    t0 = time.perf_counter()
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    load_s = time.perf_counter() - t0
    inp = sess.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    shape[0] = 1
    rng = np.random.default_rng(0)
    x = rng.random(shape, dtype=np.float32)
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    rss_loaded = status_kb("VmRSS:")
    for _ in range(warmup):
        sess.run(None, {inp.name: x})
    times = []
    for _ in range(max(runs, 1)):
        t = time.perf_counter()
        sess.run(None, {inp.name: x})
        times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    print(json.dumps({
        "mode": "model", "config": "onnxruntime f32 (ORT %s)" % ort.__version__,
        "weight_bytes": None, "load_s": load_s, "rss_loaded_kb": rss_loaded,
        "peak_run_kb": status_kb("VmHWM:"), "median_ms": times[len(times) // 2],
        "min_ms": times[0], "runs": runs,
    }))


if __name__ == "__main__":
    main()
