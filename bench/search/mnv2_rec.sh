#!/bin/bash
cd /work/runs/search; n=mobilenet_v2_1.0_224
uptime > $n.uptime2
/usr/bin/time -f "%e s real %U s user %M KB maxrss" ./bin/sd3 design --model /work/shared/models/$n/model.onnx --val images:/work/shared/data/imagenet --limit 100 --e-headroom 1 --cache-mb 5000 --max-recovery 100000 --out $n.sieve --report ${n}_report --json > $n.json 2> $n.err || exit 1
uptime >> $n.uptime2
cp $n.sieve /work/runs/packages/.$n.sieve.tmp && mv /work/runs/packages/.$n.sieve.tmp /work/runs/packages/$n.sieve
./bin/sd3 eval --package $n.sieve --model /work/shared/models/$n/model.onnx --dataset images:/work/shared/data/imagenet --split test --limit 500 --json > $n.test.json 2>> $n.eval.err
uptime >> $n.uptime2
