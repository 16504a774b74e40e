#!/bin/bash
# The session-7 figures of docs/PERFORMANCE.md: three batch-1 compare runs of all eleven models and
# one batch-64 run of three; run on a quiet machine (bench/compare.sh sets up .venv and bench/out/arch).
cd "$(dirname "$0")/.."; mkdir -p bench/out
S=../shared/models; A=bench/out/arch
cargo build --release -p sieve-cli --bin sieve && cp target/release/sieve /tmp/sieve-s7
uptime > bench/out/perf_s7.log
for r in 0 1 2; do
  .venv/bin/python bench/compare.py $S/lenet5/model.onnx $S/cifar10_quick/model.onnx $S/nin_cifar10/model.onnx \
    $S/mobilenet_v1_0.25_128/model.onnx $S/mobilenet_v2_1.0_224/model.onnx $A/alexnet.onnx $A/squeezenet1_0.onnx \
    $A/nin_imagenet.onnx $A/googlenet.onnx $A/resnet18.onnx $A/vgg16.onnx --sieve /tmp/sieve-s7 \
    --rounds 5 --seconds 0.5 --big-models none --out docs/data/perf_s7_run$r.json >> bench/out/perf_s7.log 2>&1
  uptime >> bench/out/perf_s7.log
done
.venv/bin/python bench/compare.py $S/mobilenet_v2_1.0_224/model.onnx $A/squeezenet1_0.onnx $A/resnet18.onnx --sieve /tmp/sieve-s7 \
  --rounds 3 --seconds 0.5 --big-models squeezenet1_0,resnet18,mobilenet_v2_1.0_224 --out docs/data/perf_s7_b64.json >> bench/out/perf_s7.log 2>&1
uptime >> bench/out/perf_s7.log
echo DONE >> bench/out/perf_s7.log
