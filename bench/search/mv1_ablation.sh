#!/bin/bash
cd /work/runs/search
uptime > mv1_ablation.log
/usr/bin/time -f "nohead %e s real %U s user" ./bin/sd3 design --model /work/shared/models/mobilenet_v1_0.25_128/model.onnx --val images:/work/shared/data/imagenet --out mv1_nohead.sieve --json > mv1_nohead.json 2>> mv1_ablation.log
uptime >> mv1_ablation.log
./bin/sd3 eval --package mv1_nohead.sieve --model /work/shared/models/mobilenet_v1_0.25_128/model.onnx --dataset images:/work/shared/data/imagenet --split test --json > mv1_nohead.test.json 2>> mv1_ablation.log
/usr/bin/time -f "paper_head %e s real %U s user" ./bin/sd3 design --model /work/shared/models/mobilenet_v1_0.25_128/model.onnx --val images:/work/shared/data/imagenet --out mv1_paper_head.sieve --paper --e-headroom 1 --json > mv1_paper_head.json 2>> mv1_ablation.log
uptime >> mv1_ablation.log
./bin/sd3 eval --package mv1_paper_head.sieve --model /work/shared/models/mobilenet_v1_0.25_128/model.onnx --dataset images:/work/shared/data/imagenet --split test --json > mv1_paper_head.test.json 2>> mv1_ablation.log
uptime >> mv1_ablation.log
