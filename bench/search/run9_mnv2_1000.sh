#!/bin/bash
# Session 9: MobileNet v2 searched on all 1,000 validation images, fresh (no journal), on an
# otherwise idle machine (issue 3's search-time criterion). B: a sieve-design binary (the
# run used one built at 53049d2; the package is byte-identical to session 8's).
S=${SIEVE_SHARED:-/work/shared}; B=${B:-target/release/sieve-design}
B=$(realpath "$B"); OUTDIR=${OUTDIR:-/work/runs/s9/mnv2_1000}
mkdir -p "$OUTDIR" && cd "$OUTDIR" || exit 1
uptime > uptime.txt; date >> uptime.txt
( while sleep 60; do echo "$(date +%T) $(grep -c . mnv2_1000.sieve.journal 2>/dev/null) lines | $(uptime)"; done ) > progress.log 2>&1 &
MON=$!
/usr/bin/time -f "%e s real %U s user %S s sys %M KB maxrss" $B design --model $S/models/mobilenet_v2_1.0_224/model.onnx --val images:$S/data/imagenet --e-headroom 1 --cache-mb 8000 --max-recovery 100000 --out mnv2_1000.sieve --report report --json > design.json 2> design.err
echo "design exit $?" >> uptime.txt; uptime >> uptime.txt; date >> uptime.txt
kill $MON
