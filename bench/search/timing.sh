#!/bin/bash
# fresh LeNet-5 searches (no journal), default vs --paper, for the time breakdown
for i in 1 2; do
for mode in default paper; do
  X=""; [ $mode = paper ] && X="--paper"
  uptime >> lenet_time.log
  /usr/bin/time -f "$mode %e s real %U s user %M KB maxrss" ./bin/sd3 design --model /work/shared/models/lenet5/model.onnx --val mnist:/work/shared/data/mnist --out /work/runs/search/lt_$mode.sieve --no-journal --json $X > lt_$mode.$i.json 2>> lenet_time.log
done; done
uptime >> lenet_time.log
