#!/bin/bash
# Session 7 (issue 4): the detector on a package designed in session 7 (bench/search/run7.sh).
# As run3.sh: for catch share 0 and 0.5, copy the package, calibrate on the whole validation
# split (MNIST: the 10k listed training images, CIFAR-10: data_batch_1, ImageNet: sample1000),
# then speculate on the whole test split (MNIST t10k, CIFAR-10 test_batch, ImageNet val1300).
# Usage: bash bench/detector/run7.sh MODEL DATASPEC
# e.g.   bash bench/detector/run7.sh nin_cifar10 cifar10:/work/shared/data/cifar10
# Outputs in R/detector/: pkgs/MODEL_csF.sieve (calibrated copies), MODEL_csF.cal.json,
# MODEL_csF.spec.json, plots-val/MODEL_csF/, plots-test/MODEL_csF/, MODEL.time, MODEL.uptime,
# logs/MODEL_csF.{cal,spec}.err
set -euo pipefail
S=${S:-/work/shared}; R=${R:-/work/runs/s7}; BIN=${BIN:-$R/bin/sieve}
M=$1; D=$2
O=$R/detector; mkdir -p $O/pkgs $O/plots-val $O/plots-test $O/logs
cd $O
: > $M.time
echo "start $(date -u +%FT%TZ) $(uptime)" > $M.uptime
for cs in 0 0.5; do
  N=${M}_cs$cs; P=pkgs/$N.sieve
  cp $R/packages/$M.sieve $P
  /usr/bin/time -a -o $M.time -f "$N calibrate: %e s real %U s user %S s sys %M KB maxrss" \
    nice -n 19 $BIN calibrate --package $P --val $D --split validation \
    --model $S/models/$M/model.onnx --catch-share $cs --plots plots-val/$N --json \
    > $N.cal.json 2> logs/$N.cal.err
  echo "$N calibrated $(date -u +%FT%TZ) $(uptime)" >> $M.uptime
  /usr/bin/time -a -o $M.time -f "$N speculate: %e s real %U s user %S s sys %M KB maxrss" \
    nice -n 19 $BIN speculate --package $P --dataset $D --split test \
    --model $S/models/$M/model.onnx --plots plots-test/$N --json \
    > $N.spec.json 2> logs/$N.spec.err
  echo "$N speculated $(date -u +%FT%TZ) $(uptime)" >> $M.uptime
done
