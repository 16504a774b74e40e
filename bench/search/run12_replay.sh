#!/bin/bash
# Session 12: MobileNet v2's 1,000-image search replayed from session 11's journal (its points,
# all scored whole) with the recovery step limit lifted (`--max-recovery 100000`, what the
# default became), then the package scored on the test split; and the same journal replayed by
# the stopping-early binary (0 new evaluations expected, the same variants).
# B: a sieve-design binary; SIEVE: a sieve binary; J: session 11's journal.
S=${SIEVE_SHARED:-/work/shared}; B=$(realpath "${B:-target/release/sieve-design}")
SIEVE=$(realpath "${SIEVE:-target/release/sieve}")
J=${J:-/work/runs/s11/mnv2_1000/mnv2_1000.sieve.journal}; OUT=${OUT:-/work/runs/s12}
M=$S/models/mobilenet_v2_1.0_224/model.onnx
mkdir -p "$OUT/norecap" && cd "$OUT/norecap" || exit 1
cp "$J" mnv2_1000.sieve.journal
$B design --model $M --val images:$S/data/imagenet --cache-mb 8000 --max-recovery 100000 \
  --out mnv2_1000.sieve --json > design.json 2> design.err
for v in accurate exact original; do
  $SIEVE accuracy --model mnv2_1000.sieve --dataset images:$S/data/imagenet --split test --variant $v
done
mkdir -p "$OUT/replay" && cd "$OUT/replay" || exit 1
cp "$OUT/norecap/mnv2_1000.sieve.journal" .
$B design --model $M --val images:$S/data/imagenet --cache-mb 8000 --out mnv2_1000.sieve --json \
  > design.json 2> design.err
