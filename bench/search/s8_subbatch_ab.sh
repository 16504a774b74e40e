#!/bin/bash
# Session 8: sub-batches on/off, same binary, same work: the first 150 evaluations of the
# --limit 100 MobileNet v2 search (layers 0-6: the costliest), reuse off in both, no journal.
S=/work/shared; B=/work/runs/s8/bin/sieve-design-after2
cd /work/runs/s8/ab
for round in 1 2; do
for sub in 0 4; do
  echo "round $round sub $sub start: $(uptime)" >> log.txt
  /usr/bin/time -f "sub $sub: %e s real %U s user %S s sys %M KB maxrss" nice -n 10 $B design --model $S/models/mobilenet_v2_1.0_224/model.onnx --val images:$S/data/imagenet --limit 100 --e-headroom 1 --cache-mb 8000 --max-recovery 100000 --out ab.sieve --no-journal --no-reuse --sub-batch $sub --max-evals 150 >> log.txt 2>&1
  echo "end: $(uptime)" >> log.txt
done
done
