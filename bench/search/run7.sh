#!/bin/bash
# Session 7: design one shared model's package with the current code, then score every variant
# on the test split (full split, no limit). Usage:
#   bash bench/search/run7.sh MODEL DATASPEC [extra design args...]
# e.g. bash bench/search/run7.sh lenet5 mnist:/work/shared/data/mnist
# Writes R/packages/MODEL.sieve (+ .journal), MODEL.design.json, MODEL_report/, MODEL.test.json,
# MODEL.time (/usr/bin/time), MODEL.uptime (before/after each step), MODEL.err (stderr).
# The design searches the validation split (--val-split default: MNIST the 10k listed training
# images, CIFAR-10 data_batch_1, ImageNet sample1000); eval scores --split test.
set -euo pipefail
S=${S:-/work/shared}; R=${R:-/work/runs/s7}; BIN=${BIN:-$R/bin/sieve-design}
M=$1; D=$2; shift 2
O=$R/packages; mkdir -p $O
cd $O
echo "design start $(date -u +%FT%TZ) $(uptime)" > $M.uptime
/usr/bin/time -o $M.time -f "design: %e s real %U s user %S s sys %M KB maxrss" \
  nice -n 19 $BIN design --model $S/models/$M/model.onnx --val $D --out $M.sieve \
  --report ${M}_report --json "$@" > $M.design.json 2> $M.err
echo "design end   $(date -u +%FT%TZ) $(uptime)" >> $M.uptime
/usr/bin/time -a -o $M.time -f "eval: %e s real %U s user %S s sys %M KB maxrss" \
  nice -n 19 $BIN eval --package $M.sieve --model $S/models/$M/model.onnx --dataset $D \
  --split test --json > $M.test.json 2>> $M.err
echo "eval end     $(date -u +%FT%TZ) $(uptime)" >> $M.uptime
