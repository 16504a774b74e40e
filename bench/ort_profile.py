#!/usr/bin/env python3
"""onnxruntime's own per-node profile of one model at batch 1, summed by output shape.

Usage: bench/ort_profile.py MODEL.onnx THREADS
Runs 50 inferences on a random 0..255 input with profiling on (CPU EP, sequential) and prints
the summed kernel time per run and the 25 largest (op, output shape) groups in microseconds;
compare with `SIEVE_PROFILE=1 target/release/examples/latency MODEL.onnx 1 2 THREADS`.
Profiling adds a few microseconds per node to onnxruntime's times.
"""
import collections
import json
import os
import sys

import numpy as np
import onnxruntime as ort


def profiled_events(path, threads, runs=50, prefix="/tmp/ort_profile"):
    """The profile events of `runs` batch-1 runs (CPU EP, sequential) on a random input."""
    o = ort.SessionOptions()
    o.intra_op_num_threads = threads
    o.inter_op_num_threads = 1
    o.enable_profiling = True
    o.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    o.profile_file_prefix = prefix
    s = ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])
    i = s.get_inputs()[0]
    x = (np.random.RandomState(0).rand(*([1] + list(i.shape[1:]))) * 255).astype(np.float32)
    for _ in range(runs):
        s.run(None, {i.name: x})
    prof = s.end_profiling()
    with open(prof) as f:
        events = json.load(f)
    os.remove(prof)
    return events


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    path, threads = sys.argv[1], int(sys.argv[2])
    events = profiled_events(path, threads)
    dur = collections.defaultdict(float)
    cnt = collections.Counter()
    key = {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            dur[e["name"]] += e["dur"]
            cnt[e["name"]] += 1
            a = e.get("args", {})
            key[e["name"]] = a.get("op_name", "") + " " + str(a.get("output_type_shape", ""))[:60]
    print("total %.1f us per run" % sum(dur[k] / cnt[k] for k in dur))
    groups = collections.defaultdict(float)
    for k in dur:
        groups[key[k]] += dur[k] / cnt[k]
    for k, v in sorted(groups.items(), key=lambda kv: -kv[1])[:25]:
        print("%8.1f %s" % (v, k))


if __name__ == "__main__":
    main()
