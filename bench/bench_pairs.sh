#!/bin/bash
# Two `sieve` binaries alternated on one model configuration (`sieve bench`, median ms per
# run), so that both see the same machine state: docs/SPECULATIVE.md session 9 (buffer-pool
# experiment). Usage: bench/bench_pairs.sh BASE_SIEVE NEW_SIEVE MODEL.onnx BATCH THREADS [ROUNDS]
set -eu
base=$1; new=$2; model=$3; batch=$4; threads=$5; rounds=${6:-3}
for r in $(seq 1 "$rounds"); do
  for tag in base new; do
    bin=$base; [ "$tag" = new ] && bin=$new
    ms=$("$bin" bench --model "$model" --batch "$batch" --threads "$threads" --json --min-seconds 3 2>/dev/null |
      python3 -c "import json,sys; print(round(json.load(sys.stdin)['median_ms'], 3))")
    echo "$(basename "$model") b$batch t$threads r$r $tag $ms"
  done
done
