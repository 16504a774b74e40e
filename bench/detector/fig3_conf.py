#!/usr/bin/env python3
"""Reads the confidences of the wrong speculative outputs back from a Fig. 3 SVG written by
`sieve calibrate/speculate --plots` (blue circles = correctable, red crosses = uncorrectable;
y axis: confidence 0 at y=390, 1 at y=50, coordinates with one decimal, so +-0.0003).

    python3 bench/detector/fig3_conf.py FIG3.svg [T ...]

prints the count, quartiles and deciles of each class and, for every threshold T given, how
many of each class lie below T (would be replayed) and at or above it (kept on the device).
Diagnostic only (session 7, docs/DETECTOR.md): the JSON has the tallies at the chosen
thresholds; this gives the distribution in between.
"""
import re
import sys


def read(path):
    svg = open(path).read()
    y0, y1 = 390.0, 50.0
    corr = [(y0 - float(cy)) / (y0 - y1)
            for cy in re.findall(r'<circle cx="[0-9.]+" cy="([0-9.]+)" r="3" fill="none" '
                                 r'stroke="#285ac8"/>', svg)]
    unc = [(y0 - (float(ya) + 3.0)) / (y0 - y1)
           for ya in re.findall(r'<path d="M[0-9.]+ ([0-9.]+)L[0-9.]+ [0-9.]+M[0-9.]+ [0-9.]+'
                                r'L[0-9.]+ [0-9.]+" stroke="#d22828"/>', svg)]
    # the legend's markers sit below the plot area (y > 390): not data
    return [c for c in corr if c >= -0.001], [c for c in unc if c >= -0.001]


def q(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


def main():
    path = sys.argv[1]
    ts = [float(t) for t in sys.argv[2:]]
    corr, unc = read(path)
    for name, xs in (("correctable", corr), ("uncorrectable", unc)):
        qs = " ".join(f"{q(xs, p):.3f}" for p in (0.1, 0.25, 0.5, 0.75, 0.9))
        print(f"{name}: {len(xs)}; p10 p25 p50 p75 p90 = {qs}")
        for t in ts:
            below = sum(1 for x in xs if x < t)
            print(f"  t={t:.4f}: {below} below (replayed), {len(xs) - below} at/above (kept)")


if __name__ == "__main__":
    main()
