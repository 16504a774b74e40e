#!/usr/bin/env bash
# Spatial work split on two threads (team::Ends, the depthwise row bands): the calling
# thread takes every layer's top rows, the helper the bottom ones, so that a tensor stays
# in the L2 of the core that wrote it. Same binary, alternated round by round
# (bench/ab.py): A = SIEVE_ENDS=0 SIEVE_DW_BANDS=0 (items from the front, depthwise by
# planes: the split before session 19), B = default. A/B > 1 means the spatial split is
# faster. docs/KERNELS.md "Session 19".
# Usage: bench/ends_ab.sh ROUNDS MODEL.onnx...
#   e.g. bench/ends_ab.sh 12 ../shared/models/mobilenet_v2_1.0_224/model.onnx
# Env: THREADS (default "2"), SECS per measurement (default 0.4), BATCH (default 1).
# Needs: cargo build --release -p sieve-onnx --examples, and .venv (bench/requirements.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
R=$1; shift
for m in "$@"; do
  for t in ${THREADS:-2}; do
    printf '%s threads=%s: ' "$m" "$t"
    SECS=${SECS:-0.4} .venv/bin/python bench/ab.py "$m" "$t" "$R" "SIEVE_ENDS=0 SIEVE_DW_BANDS=0" "" | tail -1
  done
done
