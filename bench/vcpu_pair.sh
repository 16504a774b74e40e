#!/usr/bin/env bash
# Do the two vCPUs slow each other down? One single-threaded model run (examples/latency,
# batch 1, one thread) alone on CPU 0 and on CPU 1, then two at once, one pinned to each
# (docs/PERFORMANCE.md "Session 17"). Prints each process's median.
#   bench/vcpu_pair.sh MODEL.onnx [SECONDS=3] [ROUNDS=3]
# Needs: cargo build --release -p sieve-onnx --example latency
set -euo pipefail
cd "$(dirname "$0")/.."
M=$1; SEC=${2:-3}; R=${3:-3}
B=target/release/examples/latency
med() { grep -o "run median [0-9.]* ms" | grep -o "[0-9.]*"; }
for _ in $(seq "$R"); do
  a0=$(taskset -c 0 "$B" "$M" 1 "$SEC" 1 2>&1 | med)
  a1=$(taskset -c 1 "$B" "$M" 1 "$SEC" 1 2>&1 | med)
  t0=$(mktemp); t1=$(mktemp)
  taskset -c 0 "$B" "$M" 1 "$SEC" 1 > "$t0" 2>&1 &
  taskset -c 1 "$B" "$M" 1 "$SEC" 1 > "$t1" 2>&1
  wait
  echo "alone cpu0 $a0 ms cpu1 $a1 ms; together cpu0 $(med < "$t0") ms cpu1 $(med < "$t1") ms"
  rm -f "$t0" "$t1"
done
