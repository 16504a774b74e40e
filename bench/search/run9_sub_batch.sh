#!/bin/bash
# Session 9: MobileNet v2 --limit 100 search, fresh, --sub-batch $1 (same binary), timed.
S=/work/shared; B=/work/runs/s9/bin/sieve-design-head; D=sb$1_$2
mkdir -p $D && cd $D && rm -f *.journal
/usr/bin/time -f "%e s real %U s user %S s sys %M KB maxrss" $B design --model $S/models/mobilenet_v2_1.0_224/model.onnx --val images:$S/data/imagenet --limit 100 --e-headroom 1 --cache-mb 8000 --max-recovery 100000 --sub-batch $1 --out mnv2_100.sieve --json > design.json 2> design.err
tail -1 design.err
