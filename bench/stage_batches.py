#!/usr/bin/env python3
"""MobileNet v2 per stage and batch size: microseconds per image in the nodes of each stage
(`SIEVE_PROFILE=1 sieve bench --threads 1`), docs/SPECULATIVE.md "Session 11".

Usage: bench/stage_batches.py MODEL.onnx [BATCH...]   (default batches 1 2 4 8 16 50)
Environment: SIEVE (default target/release/sieve), SECS (default 6).
Stages by the node's own block in the name: the first conv and blocks 0-3 (112x112 and
56x56 maps), 4-6 (28x28), 7-13 (14x14), 14-16 and the head (7x7)."""
import os
import re
import subprocess
import sys

NODE = re.compile(r"\s+([\d.]+) us\s+[\d.]+%\s+(\S+)\s+(\S+)")
STAGES = ["big maps", "28x28", "14x14", "7x7"]


def stage(name):
    # The first block named is the node's own (fused names list other blocks after it).
    m = re.search(r"MobilenetV2/(Conv_1|Conv|Logits|Predictions|expanded_conv(?:_(\d+))?)/", name)
    if not m or m.group(1) == "Conv":
        return "big maps"  # pre-processing, the first Conv
    if m.group(1) in ("Conv_1", "Logits", "Predictions"):
        return "7x7"
    k = int(m.group(2) or 0)
    return "big maps" if k <= 3 else "28x28" if k <= 6 else "14x14" if k <= 13 else "7x7"


def main():
    model = sys.argv[1]
    batches = [int(b) for b in sys.argv[2:]] or [1, 2, 4, 8, 16, 50]
    sieve = os.environ.get("SIEVE", "target/release/sieve")
    env = dict(os.environ, SIEVE_PROFILE="1")
    print("| batch | " + " | ".join(STAGES) + " | whole |")
    print("|---" * (len(STAGES) + 2) + "|")
    for b in batches:
        p = subprocess.run([sieve, "bench", "--model", model, "--batch", str(b), "--threads", "1",
                            "--min-seconds", os.environ.get("SECS", "6")],
                           env=env, capture_output=True, text=True, check=True)
        per = {s: 0.0 for s in STAGES}
        for line in (p.stdout + p.stderr).splitlines():
            m = NODE.match(line)
            if m:
                per[stage(m.group(3))] += float(m.group(1)) / b
        cells = " | ".join(f"{per[s]:,.0f}" for s in STAGES)
        print(f"| {b} | {cells} | {sum(per.values()):,.0f} |")


main()
