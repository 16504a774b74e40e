#!/bin/bash
# Session 11: MobileNet v2 searched on all 1,000 validation images, fresh (no journal), on an
# otherwise idle machine, with the search's own defaults (the sweep: e from e_max,
# no exponent headroom; `--cache-mb` only sets how much of the prefix cache is kept, the
# results do not depend on it). EXTRA adds options (e.g. EXTRA="--e-headroom 1
# --max-recovery 100000" is session 9's run, run9_mnv2_1000.sh). B: a sieve-design binary.
S=${SIEVE_SHARED:-/work/shared}; B=${B:-target/release/sieve-design}
B=$(realpath "$B"); OUTDIR=${OUTDIR:-/work/runs/s11/mnv2_1000}
mkdir -p "$OUTDIR" && cd "$OUTDIR" || exit 1
uptime > uptime.txt; date >> uptime.txt
( while sleep 60; do echo "$(date +%T) $(grep -c . mnv2_1000.sieve.journal 2>/dev/null) lines | $(uptime)"; done ) > progress.log 2>&1 &
MON=$!
# shellcheck disable=SC2086
/usr/bin/time -f "%e s real %U s user %S s sys %M KB maxrss" $B design --model $S/models/mobilenet_v2_1.0_224/model.onnx --val images:$S/data/imagenet --cache-mb 8000 ${EXTRA:-} --out mnv2_1000.sieve --report report --json > design.json 2> design.err
echo "design exit $?" >> uptime.txt; uptime >> uptime.txt; date >> uptime.txt
kill $MON
