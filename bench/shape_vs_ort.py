#!/usr/bin/env python3
"""Where a model's time goes in sieve and in onnxruntime, per (op, output shape): both
engines' own per-node profiles at batch 1, rounds alternated, medians over rounds
(docs/PERFORMANCE.md "Session 21": ResNet-18's 256-channel 14x14 convolutions).

Usage: .venv/bin/python bench/shape_vs_ort.py MODEL.onnx THREADS ROUNDS
Environment: SIEVE (binary, default target/release/sieve), ORT_RUNS (profiled onnxruntime
runs per round, default 60).
Nodes are grouped by op and output shape because onnxruntime renames the nodes it
rewrites (NCHWc layouts, fused Conv+Add+Relu); a fused node counts under its op and
shape in each engine (sieve: the last node of a fused group; onnxruntime: `Conv` for
its fused convolutions). onnxruntime's NCHWc nodes report channel counts rounded up to
its block size (LeNet-5's 50 as 64), so such groups only match for channel counts that
are multiples of 16. Profiling adds a few microseconds per node to both.
"""
import collections
import os
import re
import statistics as st
import sys

from node_scaling import profile_lines
from ort_profile import profiled_events


def ort_round(path, threads):
    events = profiled_events(path, threads, int(os.environ.get("ORT_RUNS", "60")), "/tmp/shape_vs_ort")
    durs, key = collections.defaultdict(list), {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            durs[e["name"]].append(e["dur"])
            shapes = e["args"].get("output_type_shape") or [{}]
            dims = next(iter(shapes[0].values()), [])
            key[e["name"]] = e["args"].get("op_name", "?") + " " + "x".join(map(str, dims[1:]))
    groups = collections.defaultdict(float)
    for name, d in durs.items():
        groups[key[name]] += st.median(d)
    return groups


SHAPE = re.compile(r"\[N,?([0-9,]*)\]$")


def sieve_round(path, threads):
    groups = collections.defaultdict(float)
    for us, op, rest in profile_lines(path, threads, 2):
        m = SHAPE.search(rest.strip())
        if m:
            groups[op + " " + m.group(1).replace(",", "x")] += us
    return groups


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    path, threads, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    s_runs, o_runs = [], []
    for _ in range(rounds):
        s_runs.append(sieve_round(path, threads))
        o_runs.append(ort_round(path, threads))
    keys = set().union(*s_runs, *o_runs)
    rows = [(st.median(r.get(k, 0.0) for r in s_runs), st.median(r.get(k, 0.0) for r in o_runs), k)
            for k in keys]
    rows.sort(key=lambda r: -(r[0] - r[1]))
    ts, to = sum(r[0] for r in rows), sum(r[1] for r in rows)
    print(f"in nodes, us per run: sieve {ts:.0f}, onnxruntime {to:.0f}, ratio {ts / to:.2f}")
    print(f"{'sieve':>9} {'ort':>9} {'diff':>9}  op output")
    for s, o, k in rows:
        print(f"{s:9.1f} {o:9.1f} {s - o:+9.1f}  {k}")


if __name__ == "__main__":
    main()
