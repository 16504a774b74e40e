#!/usr/bin/env bash
# A binary from before a change against the current one, alternated round by round
# (bench/ab.py, `examples/latency`, batch 1): A = BASE, B = target/release/examples/latency.
# A/B > 1 means the current binary is faster.
# Usage: bench/base_ab.sh BASE_LATENCY ROUNDS MODEL.onnx...
#   e.g. git stash; cargo build --release -p sieve-onnx --examples
#        cp target/release/examples/latency /tmp/latency_base; git stash pop
#        cargo build --release -p sieve-onnx --examples
#        bench/base_ab.sh /tmp/latency_base 12 ../shared/models/*/model.onnx
# Env: THREADS (default "2 1"), SECS per measurement (default 0.4).
# Needs: .venv (bench/requirements.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
base=$1; R=$2; shift 2
date -u
for m in "$@"; do
  for t in ${THREADS:-2 1}; do
    name=$(basename "$m" .onnx); [ "$name" != model ] || name=$(basename "$(dirname "$m")")
    printf '%s threads=%s: ' "$name" "$t"
    SECS=${SECS:-0.4} .venv/bin/python bench/ab.py "$m" "$t" "$R" "" "" "$base" target/release/examples/latency | tail -1
  done
done
date -u
