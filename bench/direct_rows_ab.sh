#!/usr/bin/env bash
# The direct convolution kernel's junk-free modes (kernels/direct.rs: row-wise for output
# widths that are a multiple of 16, the narrow layout for 4- and 8-wide maps) against the
# flat stencil layout they replace, same binary, alternated round by round (bench/ab.py):
# A = SIEVE_CONV_DIRECT_ROWS=0 (flat), B = LEVEL (default 2: both modes; 1: row-wise only).
# A/B > 1 means the junk-free modes are faster. docs/PERFORMANCE.md "Session 18".
# Usage: bench/direct_rows_ab.sh ROUNDS MODEL.onnx...
#   e.g. .venv/bin/python bench/one_layer_models.py
#        bench/direct_rows_ab.sh 9 bench/out/layers/*/model.onnx ../shared/models/cifar10_quick/model.onnx
# Needs: cargo build --release -p sieve-onnx --examples, and .venv (bench/requirements.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
R=$1; shift
for m in "$@"; do
  for t in 1 2; do
    printf '%s threads=%s: ' "$m" "$t"
    SECS=${SECS:-0.3} .venv/bin/python bench/ab.py "$m" "$t" "$R" SIEVE_CONV_DIRECT_ROWS=0 SIEVE_CONV_DIRECT_ROWS=${LEVEL:-2} | tail -1
  done
done
