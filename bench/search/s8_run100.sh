#!/bin/bash
# Session 8: MobileNet v2 --limit 100 search with a given binary ($1), fresh (no journal), timed.
S=/work/shared; B=$1
uptime > uptime.txt
/usr/bin/time -f "%e s real %U s user %S s sys %M KB maxrss" nice -n 10 $B design --model $S/models/mobilenet_v2_1.0_224/model.onnx --val images:$S/data/imagenet --limit 100 --e-headroom 1 --cache-mb 8000 --max-recovery 100000 --out mnv2_100.sieve --report report --json > design.json 2> design.err
echo "design exit $?" >> uptime.txt; uptime >> uptime.txt
