#!/usr/bin/env python3
"""Paired A/B latency comparison on a noisy machine.

Alternates two configurations of `examples/latency` (two binaries and/or two environment
settings) round by round, A-B then B-A, and reports the median of each and the median of the
per-round ratios A/B, which cancels slow drifts of the machine's speed.

Usage: bench/ab.py MODEL THREADS ROUNDS "ENV_A" "ENV_B" [BIN_A BIN_B]
  e.g. bench/ab.py m.onnx 2 10 X=1 X=2 /tmp/latency-before target/release/examples/latency
       bench/ab.py m.onnx 2 10 SIEVE_CONV_PAR_MIN_MACS=1048576 SIEVE_CONV_PAR_MIN_MACS=200000
Environment: BATCH (default 1), SECS per measurement (default 0.4).
"""
import os
import re
import statistics as st
import subprocess
import sys


def run(env_spec, binary, model, threads):
    env = dict(os.environ)
    for kv in env_spec.split():
        if "=" in kv:
            k, v = kv.split("=", 1)
            env[k] = v
    p = subprocess.run([binary, model, os.environ.get("BATCH", "1"), os.environ.get("SECS", "0.4"), threads],
                       env=env, capture_output=True, text=True)
    m = re.search(r"run median ([0-9.]+) ms", p.stdout + p.stderr)
    if not m:
        sys.exit(f"no timing from {binary} ({env_spec}): exit {p.returncode}\n{p.stderr[-2000:]}")
    return float(m.group(1))


def main():
    if len(sys.argv) < 6:
        sys.exit(__doc__)
    model, threads, rounds, ea, eb = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
    default = "target/release/examples/latency"
    ba, bb = (sys.argv[6], sys.argv[7]) if len(sys.argv) > 7 else (default, default)
    a, b = [], []
    for i in range(rounds):
        if i % 2 == 0:
            a.append(run(ea, ba, model, threads)); b.append(run(eb, bb, model, threads))
        else:
            b.append(run(eb, bb, model, threads)); a.append(run(ea, ba, model, threads))
    ratios = [x / y for x, y in zip(a, b)]
    print(f"A {ea} {ba}: median {st.median(a):.3f} ms | B {eb} {bb}: median {st.median(b):.3f} ms | "
          f"paired A/B median {st.median(ratios):.3f} (A faster in {sum(r < 1 for r in ratios)}/{rounds})")


if __name__ == "__main__":
    main()
