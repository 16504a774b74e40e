#!/bin/bash
# Issue 4 runs with the catch-share margin (session 3). Usage: bash run.sh MODEL VAL TEST [LIMIT]
set -e
S=/work/shared; M=$1; VAL=$2; TEST=$3; LIM=${4:+--limit $4}
for cs in 0 0.5; do
  P=${M}_cs$cs.sieve
  cp /work/runs/packages/$M.sieve $P
  ./sieve-bin calibrate --package $P --val $VAL --model $S/models/$M/model.onnx --catch-share $cs $LIM --plots plots-val/${M}_cs$cs --json > ${M}_cs$cs.cal.json
  ./sieve-bin speculate --package $P --dataset $TEST --model $S/models/$M/model.onnx $LIM --plots plots-test/${M}_cs$cs --json > ${M}_cs$cs.spec.json
done
