#!/usr/bin/env python3
"""Per-node two-thread scaling of one model in sieve: `sieve bench` with SIEVE_PROFILE=1 on one
and on two threads, alternated round by round; per node the median time over rounds on each,
and their ratio (docs/KERNELS.md "Session 20": which layers the second core does not speed up).

Usage: .venv/bin/python bench/node_scaling.py MODEL.onnx [ROUNDS] [TOP]
Environment: SIEVE (binary, default target/release/sieve), SECS (default 1.5).
"""
import os
import re
import statistics as st
import subprocess
import sys

LINE = re.compile(r"^\s+([0-9.]+) us\s+[0-9.]+%\s+(\S+)\s+(.*)$")


def profile_lines(model, threads, secs):
    """`sieve bench` (binary: $SIEVE) at batch 1 with SIEVE_PROFILE=1: per node of the profile,
    (microseconds per run, op, the rest of the line: output name and shape)."""
    env = dict(os.environ, SIEVE_PROFILE="1")
    p = subprocess.run([os.environ.get("SIEVE", "target/release/sieve"), "bench", "--model", model,
                        "--batch", "1", "--threads", str(threads), "--min-seconds", str(secs)],
                       env=env, capture_output=True, text=True, check=True)
    return [(float(m.group(1)), m.group(2), m.group(3))
            for m in map(LINE.match, (p.stdout + p.stderr).splitlines()) if m]


def run(threads, model):
    return {(op, rest[-60:]): us
            for us, op, rest in profile_lines(model, threads, os.environ.get("SECS", "1.5"))}


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    model = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 30
    runs = {1: [], 2: []}
    for _ in range(rounds):
        for t in (1, 2):
            runs[t].append(run(t, model))
    rows = []
    for k in runs[1][0]:
        v1 = st.median(d.get(k, 0.0) for d in runs[1])
        v2 = st.median(d.get(k, 0.0) for d in runs[2])
        rows.append((v1, v2, k))
    t1, t2 = sum(r[0] for r in rows), sum(r[1] for r in rows)
    print(f"total T1 {t1:.0f} T2 {t2:.0f} scaling {t1 / t2:.2f}")
    rows.sort(key=lambda r: -r[1])
    for v1, v2, (op, name) in rows[:top]:
        print(f"{v1:8.1f} {v2:8.1f} {v1 / max(v2, 1e-9):5.2f}x  {op} {name}")


if __name__ == "__main__":
    main()
