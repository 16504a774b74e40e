#!/bin/bash
# usage: run.sh MODEL PACKAGE VALSPEC TESTSPEC [extra calibrate args...]
set -u
M=$1; P=$2; VAL=$3; TEST=$4; shift 4
S=/work/shared
B=/work/runs/detector/sieve3
D=/work/runs/detector
N=${NAME:-$M}
cp "$P" $D/pkgs/$N.sieve
echo "start $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)" > $D/$N.log
/usr/bin/time -f "calibrate %e s real %U s user" $B calibrate --package $D/pkgs/$N.sieve --val $VAL --model $S/models/$M/model.onnx \
   --plots $D/plots-val/$N --json "$@" > $D/$N.cal.json 2>> $D/$N.log || { echo FAIL >> $D/$N.log; exit 1; }
/usr/bin/time -f "speculate %e s real %U s user" $B speculate --package $D/pkgs/$N.sieve --dataset $TEST --model $S/models/$M/model.onnx \
   --plots $D/plots-test/$N --json ${SPEC_ARGS:-} > $D/$N.spec.json 2>> $D/$N.log || { echo FAIL >> $D/$N.log; exit 1; }
echo "end $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)" >> $D/$N.log
