#!/bin/bash
cd /work/runs/search
uptime > mnv2_bisect.uptime
/usr/bin/time -f "%e s real %U s user %M KB maxrss" ./bin/sd4 design --model /work/shared/models/mobilenet_v2_1.0_224/model.onnx --val images:/work/shared/data/imagenet --limit 100 --e-headroom 1 --cache-mb 5000 --max-recovery 100000 --out mnv2_bisect.sieve --json > mnv2_bisect.json 2> mnv2_bisect.err || exit 1
uptime >> mnv2_bisect.uptime
./bin/sd4 eval --package mnv2_bisect.sieve --model /work/shared/models/mobilenet_v2_1.0_224/model.onnx --dataset images:/work/shared/data/imagenet --split test --limit 500 --json > mnv2_bisect.test.json 2>> mnv2_bisect.err
uptime >> mnv2_bisect.uptime
