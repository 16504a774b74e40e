#!/usr/bin/env python3
"""Per-run FC speed-ups of one build from bench/fc_ab.sh raw files.

Usage: bench/fc_runs.py FILE:BUILD [FILE:BUILD ...]
  FILE: a fc_ab.sh raw JSON-lines file; BUILD: base or new (the build to summarise).
For every run of that build: the 8-bit layer's time against the f32 FC kernel (what the
original model runs) and against the faster of the two f32 kernels; printed as median,
range and the number of runs at or above 3x (issue 3's criterion).
"""
import json
import statistics as st
import sys

runs, bws = {}, []
for arg in sys.argv[1:]:
    path, build = arg.rsplit(":", 1)
    for line in open(path):
        r = json.loads(line)
        if r["build"] != build:
            continue
        d = r["data"]
        if d.get("mode") == "bandwidth":
            bws.append(d["read_bytes_per_s"] / 1e9)
            continue
        runs.setdefault((path, r["run"]), {})[(d["layer"], d["config"])] = d["median_ms"]
print(f"{len(runs)} runs")
layers = sorted({layer for v in runs.values() for (layer, _) in v}, key=lambda x: (x.startswith("in-cache"), x))
for layer in layers:
    cfg8 = next(c for (l, c) in next(iter(runs.values())) if l == layer and "8 bit" in c)
    fc = [v[(layer, "f32 (fc kernel)")] / v[(layer, cfg8)] for v in runs.values()]
    best = [min(v[(layer, "f32 (fc kernel)")], v[(layer, "f32 (kernels::gemm)")]) / v[(layer, cfg8)] for v in runs.values()]
    ms = [v[(layer, cfg8)] for v in runs.values()]
    print(f"{layer:18s} 8-bit {st.median(ms):.3f} ms; vs f32 fc kernel: median x{st.median(fc):.2f} "
          f"[{min(fc):.2f}-{max(fc):.2f}], >=3x in {sum(x >= 3 for x in fc)}/{len(fc)}; vs the faster f32: "
          f"median x{st.median(best):.2f} [{min(best):.2f}-{max(best):.2f}], >=3x in {sum(x >= 3 for x in best)}/{len(best)}")
if bws:
    print(f"read bandwidth GB/s: median {st.median(bws):.1f}, range {min(bws):.1f}-{max(bws):.1f}")
