#!/usr/bin/env python3
"""Summarises bench/pack_b_ab.sh output: per column, medians of each mode and the median
of the paired (same round) new/old ratios. Usage: bench/pack_b_ab.py FILE..."""
import statistics as st
import sys

for f in sys.argv[1:]:
    rows = [l.split() for l in open(f) if l.strip()]
    old = [list(map(float, r[1:])) for r in rows if r[0] == "0"]
    new = [list(map(float, r[1:])) for r in rows if r[0] != "0"]
    n = min(len(old), len(new))
    for c in range(len(old[0])):
        a, b = [o[c] for o in old[:n]], [x[c] for x in new[:n]]
        ratios = [y / x for x, y in zip(a, b)]
        print(f"{f} col {c}: {n} rounds, median old {st.median(a):.3f} new {st.median(b):.3f}, "
              f"paired new/old {st.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f})")
