#!/usr/bin/env bash
# Whole-model latency/throughput: sieve vs onnxruntime vs tract, same machine, same run.
# Usage: bench/compare.sh [extra args for compare.py]   (writes bench/out/compare.{json,md})
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED="${SIEVE_SHARED:-$(pwd)/../shared}"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q -r bench/requirements.txt
cargo build --release -p sieve-cli
mkdir -p bench/out/arch
[ -f bench/out/arch/vgg16.onnx ] || .venv/bin/python "$SHARED/tools/gen_arch_models.py" bench/out/arch
models=()
for m in lenet5 cifar10_quick nin_cifar10 mobilenet_v1_0.25_128 mobilenet_v2_1.0_224; do
  models+=("$SHARED/models/$m/model.onnx")
done
for m in alexnet squeezenet1_0 nin_imagenet googlenet resnet18 vgg16; do
  models+=("bench/out/arch/$m.onnx")
done
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/compare.py "${models[@]}" "$@" | tee bench/out/compare.md
