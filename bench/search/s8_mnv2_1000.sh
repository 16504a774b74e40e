#!/bin/bash
# Session 8: MobileNet v2 searched on all 1,000 validation images (issue 3's search-time criterion), fresh.
S=/work/shared; B=/work/runs/s8/bin/sieve-design-after2
cd /work/runs/s8/mnv2_1000
uptime > uptime.txt
( while sleep 60; do echo "$(date +%T) $(grep -c . mnv2_1000.sieve.journal 2>/dev/null) lines $(tail -1 mnv2_1000.sieve.journal 2>/dev/null) | $(uptime)"; done ) > progress.log 2>&1 &
MON=$!
/usr/bin/time -f "%e s real %U s user %S s sys %M KB maxrss" nice -n 10 $B design --model $S/models/mobilenet_v2_1.0_224/model.onnx --val images:$S/data/imagenet --e-headroom 1 --cache-mb 8000 --max-recovery 100000 --out mnv2_1000.sieve --report report --json > design.json 2> design.err
echo "design exit $?" >> uptime.txt; uptime >> uptime.txt
kill $MON
