#!/usr/bin/env python3
"""Seconds and evaluations of a MobileNet v2 search by stage, from `sieve design --json` files
(docs/SPECULATIVE.md "Session 11", "Session 12" and "Sessions 13-15").

Usage: bench/search/stage_seconds.py NAME=design.json...
Stages by compute layer: 0-3 (112x112), 4-9 (56x56), 10-18 (28x28), 19-36 (14x14), 37-52 (7x7
and the logits); then the run's totals (`timing`)."""
import json
import sys

STAGES = [("0-3", 0, 3), ("4-9", 4, 9), ("10-18", 10, 18), ("19-36", 19, 36), ("37-52", 37, 52)]


def main():
    runs = [a.split("=", 1) for a in sys.argv[1:]]
    if not runs:
        sys.exit(__doc__)
    print("| layers | " + " | ".join(f"{n}: evals, s (s/eval)" for n, _ in runs) + " |")
    print("|---" * (len(runs) + 1) + "|")
    data = [json.load(open(p)) for _, p in runs]
    for name, lo, hi in STAGES:
        cells = []
        for d in data:
            ls = d["timing"]["layers"][lo:hi + 1]
            ev = sum(l["weight_evals"] + l["activation_evals"] for l in ls)
            sec = sum(l["weight"] + l["activation"] for l in ls)
            cells.append(f"{ev}, {sec:,.0f} ({sec / max(ev, 1):.2f})")
        print(f"| {name} | " + " | ".join(cells) + " |")
    keys = ["baseline", "reorder", "sub_batch_check", "cache", "weight_points",
            "activation_points", "combinations", "total"]
    print()
    print("| run | " + " | ".join(keys) + " | evaluations | stopped points | images run |")
    print("|---" * (len(keys) + 4) + "|")
    for (n, _), d in zip(runs, data):
        t = d["timing"]
        # `reorder` and `images_run` exist from session 15 on.
        images = f"{t['images_run']:,}" if "images_run" in t else "-"
        print(f"| {n} | " + " | ".join(f"{t.get(k, 0):,.1f}" for k in keys)
              + f" | {t['new_evaluations']} | {t.get('stopped_points', 0)}"
              + f" | {images} |")


main()
