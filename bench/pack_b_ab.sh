#!/usr/bin/env bash
# A/B of the strided-B block copy in the convolution GEMM (sgemm::pack_b), one binary:
# SIEVE_PACK_B=0 (never copy) against the default rule, alternated.
#   bench/pack_b_ab.sh layers N SHAPE...     # conv_single, one thread; lines "mode best_ms..."
#   bench/pack_b_ab.sh model N THREADS M.onnx  # sieve bench; lines "mode median_ms"
# Summarise with bench/pack_b_ab.py FILE (medians and paired new/old ratios).
# Layer runs compare 0 with 1 (copy whenever more than one A panel runs), model runs 0
# with the default rule (mode 2).
set -euo pipefail
cd "$(dirname "$0")/.."
what=$1 n=$2; shift 2
case $what in
  layers)
    cargo build --release -q -p sieve-nn --example conv_single
    for _ in $(seq 1 "$n"); do for m in 0 1; do
      echo "$m $(SIEVE_PACK_B=$m target/release/examples/conv_single "$@" | awk '{printf "%s ", $12}')"
    done; done ;;
  model)
    threads=$1 model=$2
    cargo build --release -q -p sieve-cli
    for _ in $(seq 1 "$n"); do for m in 0 2; do
      ms=$(SIEVE_PACK_B=$m target/release/sieve bench --model "$model" --threads "$threads" --min-seconds 2 --json |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["median_ms"])')
      echo "$m $ms"
    done; done ;;
  *) echo "usage: $0 layers|model ..." >&2; exit 2 ;;
esac
