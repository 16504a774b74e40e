#!/bin/bash
# MobileNet v1 catch-share sweep quoted in docs/DETECTOR.md (session 3, diagnostic only),
# as run from /work/runs/detector3 with a copied release `sieve-bin`.
set -e
S=/work/shared; M=mobilenet_v1_0.25_128
VAL=images:$S/data/imagenet/sample1000:$S/data/imagenet/sample1000_labels.txt
TEST=images:$S/data/imagenet/val1300:$S/data/imagenet/val1300_labels.txt
for cs in 0.5 0.6 0.65 0.7 0.75 0.9; do
  cp /work/runs/packages/$M.sieve ${M}_cs$cs.sieve
  ./sieve-bin calibrate --package ${M}_cs$cs.sieve --val $VAL --model $S/models/$M/model.onnx --catch-share $cs --target 1.0 > /dev/null
  echo "cs=$cs"; ./sieve-bin speculate --package ${M}_cs$cs.sieve --dataset $TEST --model $S/models/$M/model.onnx | grep normal
done
