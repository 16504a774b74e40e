#!/usr/bin/env python3
"""Per-node times of VGG-16's original and 8-bit-conv variant in the host's slow and normal
two-thread modes (docs/COMPRESSED.md "Session 11"), from `PROFILE_DIR=D bench/vgg16_pairs.sh`.

Usage: bench/vgg16_profile_modes.py D [SLOW_BELOW=0.94] [NORMAL_FROM=0.96]
A process is slow-mode when its pair ratio (original / variant, median of rounds) is under
SLOW_BELOW. The variant's profile is printed first by the process (it is dropped first)."""
import glob
import json
import re
import statistics as st
import sys


def profiles(path):
    """Per-node mean microseconds of each model profile in a stderr file, in order."""
    out = []
    for part in open(path).read().split("sieve profile:")[1:]:
        nodes = {}
        for line in part.splitlines():
            m = re.match(r"\s+([\d.]+) us\s+[\d.]+%\s+(\S+)\s+(\S+)", line)
            if m:
                nodes[m.group(3)[:40]] = float(m.group(1))
        out.append(nodes)
    return out


def main():
    d = sys.argv[1]
    slow_below = float(sys.argv[2]) if len(sys.argv) > 2 else 0.94
    normal_from = float(sys.argv[3]) if len(sys.argv) > 3 else 0.96
    runs = []
    for js in sorted(glob.glob(f"{d}/*.json")):
        ratio = json.loads(open(js).read().strip().splitlines()[-1])["speedup_median"]
        prof = profiles(js[:-5] + ".txt")
        if len(prof) == 2:
            runs.append((ratio, prof))
    print("ratios:", " ".join(f"{r:.3f}" for r, _ in sorted(runs, key=lambda x: x[0])))
    slow = [p for r, p in runs if r < slow_below]
    normal = [p for r, p in runs if r >= normal_from]
    print(f"{len(slow)} slow-mode, {len(normal)} normal-mode processes")
    if not runs:
        return
    first = runs[0][1][1]
    med = lambda group, model, k: st.median([p[model][k] for p in group if k in p[model]]) if group else float("nan")
    print(f"{'node':12s} {'var normal':>10s} {'var slow':>10s} {'orig normal':>11s} {'orig slow':>10s}")
    for k in sorted(first, key=lambda k: -first[k])[:16]:
        print(f"{k:12s} {med(normal, 0, k):10.0f} {med(slow, 0, k):10.0f} {med(normal, 1, k):11.0f} {med(slow, 1, k):10.0f}")


main()
