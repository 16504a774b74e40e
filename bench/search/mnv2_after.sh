#!/bin/bash
R=/work/runs/search; S=/work/shared; n=mobilenet_v2_1.0_224
while kill -0 26550 2>/dev/null; do sleep 5; done
uptime >> $R/$n.uptime
[ -f $R/$n.sieve ] || exit 1
cp $R/$n.sieve /work/runs/packages/.$n.sieve.tmp && mv /work/runs/packages/.$n.sieve.tmp /work/runs/packages/$n.sieve
$R/bin/sd3 eval --package $R/$n.sieve --model $S/models/$n/model.onnx --dataset images:$S/data/imagenet --split test --limit 500 --json > $R/$n.test.json 2>> $R/$n.eval.err
uptime >> $R/$n.uptime
