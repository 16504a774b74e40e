#!/usr/bin/env python3
"""Per-node A/B of two environment settings on one binary (`sieve bench` with
SIEVE_PROFILE=1), alternated run by run; prints each node's median time under A and B
and the per-node difference, largest first.

Usage: bench/profile_ab.py MODEL THREADS RUNS "ENV_A" "ENV_B" [TOP]
  e.g. bench/profile_ab.py m.onnx 2 6 "SIEVE_ENDS=0 SIEVE_DW_BANDS=0" "" 25
Environment: SIEVE (binary, default target/release/sieve), SECS (default 1.5).
"""
import os
import re
import statistics as st
import subprocess
import sys

LINE = re.compile(r"^\s+([0-9.]+) us\s+[0-9.]+%\s+(\S+)\s+(.*)$")


def run(env_spec, model, threads):
    env = dict(os.environ, SIEVE_PROFILE="1")
    for kv in env_spec.split():
        k, v = kv.split("=", 1)
        env[k] = v
    sieve = os.environ.get("SIEVE", "target/release/sieve")
    p = subprocess.run([sieve, "bench", "--model", model, "--batch", "1", "--threads", threads,
                        "--min-seconds", os.environ.get("SECS", "1.5")],
                       env=env, capture_output=True, text=True)
    out = p.stdout + p.stderr
    total = re.search(r"([0-9.]+) us/run in nodes", out)
    if p.returncode != 0 or not total:
        sys.exit(f"sieve bench failed ({env_spec}): {out[-2000:]}")
    nodes = {}
    for line in out.splitlines():
        m = LINE.match(line)
        if m:
            us, op, rest = float(m.group(1)), m.group(2), m.group(3)
            shape = rest.rsplit(" ", 1)[-1]
            name = rest.rsplit(" ", 1)[0].split(";")[0][-60:]
            nodes[(op, name, shape)] = us
    return float(total.group(1)), nodes


def main():
    if len(sys.argv) < 6:
        sys.exit(__doc__)
    model, threads, runs, ea, eb = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
    top = int(sys.argv[6]) if len(sys.argv) > 6 else 25
    ta, tb, na, nb = [], [], [], []
    for i in range(runs):
        order = [(ea, ta, na), (eb, tb, nb)] if i % 2 == 0 else [(eb, tb, nb), (ea, ta, na)]
        for env, t, n in order:
            total, nodes = run(env, model, threads)
            t.append(total)
            n.append(nodes)
    print(f"in nodes, us/run: A [{ea}] median {st.median(ta):.1f} | B [{eb}] median {st.median(tb):.1f}")
    keys = set().union(*[set(n) for n in na + nb])
    rows = []
    for k in keys:
        a = [n[k] for n in na if k in n]
        b = [n[k] for n in nb if k in n]
        if a and b:
            rows.append((st.median(a) - st.median(b), st.median(a), st.median(b), k))
    rows.sort(key=lambda r: -abs(r[0]))
    print(f"{'A-B us':>8} {'A us':>8} {'B us':>8}  node")
    for d, a, b, (op, name, shape) in rows[:top]:
        print(f"{d:8.1f} {a:8.1f} {b:8.1f}  {op} {shape} {name}")


if __name__ == "__main__":
    main()
