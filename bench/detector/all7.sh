#!/bin/bash
# Session 7 driver: one heavy job at a time, in this order; each model's detector runs as soon
# as its package exists. Run from anywhere: bash bench/detector/all7.sh [MODEL...]
# (no argument: all five). Log: R/logs/all7.log
set -euo pipefail
H=$(cd "$(dirname "$0")/../.." && pwd)
S=${S:-/work/shared}; R=${R:-/work/runs/s7}; export S R
mkdir -p $R/logs
declare -A DATA=( [lenet5]=mnist:$S/data/mnist [cifar10_quick]=cifar10:$S/data/cifar10
  [mobilenet_v1_0.25_128]=images:$S/data/imagenet [nin_cifar10]=cifar10:$S/data/cifar10
  [mobilenet_v2_1.0_224]=images:$S/data/imagenet )
# the settings of the team packages as docs/SPECULATIVE.md records them
declare -A ARGS=( [lenet5]="" [cifar10_quick]="" [mobilenet_v1_0.25_128]="--e-headroom 1"
  [nin_cifar10]="--limit 2000 --max-recovery 100000"
  [mobilenet_v2_1.0_224]="--limit 100 --e-headroom 1 --cache-mb 5000 --max-recovery 100000" )
MODELS=${*:-lenet5 cifar10_quick mobilenet_v1_0.25_128 nin_cifar10 mobilenet_v2_1.0_224}
for M in $MODELS; do
  echo "$(date -u +%FT%TZ) $M design+eval: ${ARGS[$M]}" >> $R/logs/all7.log
  bash $H/bench/search/run7.sh $M ${DATA[$M]} ${ARGS[$M]}
  echo "$(date -u +%FT%TZ) $M detector" >> $R/logs/all7.log
  bash $H/bench/detector/run7.sh $M ${DATA[$M]}
  echo "$(date -u +%FT%TZ) $M done" >> $R/logs/all7.log
done
