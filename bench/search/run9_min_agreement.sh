#!/bin/bash
# Session 9: --min-agreement on the two MobileNets (docs/SPECULATIVE.md "Session 9").
# MobileNet v2: each level re-uses a copy of a finished 1,000-image journal (JOURNAL;
# session 9 used session 8's, /work/runs/s8/mnv2_1000/mnv2_1000.sieve.journal), so only
# the combinations are new. MobileNet v1 0.25/128: one fresh search, then each level from
# its journal. Every package is scored on the test split (1,300 images).
# Usage: B=target/release/sieve-design OUTDIR=... JOURNAL=... bench/search/run9_min_agreement.sh
set -eu
S=${SIEVE_SHARED:-/work/shared}; B=$(realpath "${B:-target/release/sieve-design}")
OUTDIR=${OUTDIR:-/work/runs/s9/min_agreement}; mkdir -p "$OUTDIR"; cd "$OUTDIR"
v2=$S/models/mobilenet_v2_1.0_224/model.onnx; v1=$S/models/mobilenet_v1_0.25_128/model.onnx
run() { # name model journal-source agreement
  [ -n "$3" ] && cp "$3" "$1.sieve.journal"
  /usr/bin/time -f "%e s real %U s user" $B design --model "$2" --val images:$S/data/imagenet --e-headroom 1 \
    --cache-mb 8000 --max-recovery 100000 ${4:+--min-agreement $4} --out "$1.sieve" --json > "$1_design.json" 2> "$1_design.err"
  $B eval --package "$1.sieve" --model "$2" --dataset images:$S/data/imagenet --split test --json > "$1_test.json"
  $B inspect "$1.sieve" | sed -n 7,11p
}
if [ -n "${JOURNAL:-}" ]; then
  for a in 0.95 0.96 0.97; do run mnv2_$a "$v2" "$JOURNAL" $a; done
fi
run mv1 "$v1" "" ""
for a in 0.95 0.97; do run mv1_$a "$v1" mv1.sieve.journal $a; done
