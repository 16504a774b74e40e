#!/bin/bash
# usage: run.sh MODEL PACKAGE VALSPEC TESTSPEC [extra calibrate args...]
set -u
M=$1; P=$2; VAL=$3; TEST=$4; shift 4
S=/work/shared
B=/work/runs/detector/sieve2
D=/work/runs/detector
cp "$P" $D/pkgs/$M.sieve
echo "start $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)" > $D/$M.log
/usr/bin/time -f "calibrate %e s real %U s user" $B calibrate --package $D/pkgs/$M.sieve --val $VAL --model $S/models/$M/model.onnx \
   --plots $D/plots-val/$M --json "$@" > $D/$M.cal.json 2>> $D/$M.log || { echo FAIL >> $D/$M.log; exit 1; }
/usr/bin/time -f "speculate %e s real %U s user" $B speculate --package $D/pkgs/$M.sieve --dataset $TEST --model $S/models/$M/model.onnx \
   --plots $D/plots-test/$M --json ${SPEC_ARGS:-} > $D/$M.spec.json 2>> $D/$M.log || { echo FAIL >> $D/$M.log; exit 1; }
echo "end $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)" >> $D/$M.log
