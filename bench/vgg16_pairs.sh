#!/bin/bash
# VGG-16 (gen_arch_models.py, random weights) with 8-bit conv weights against its f32
# original, alternated in one process (speculative_bench pair), RUNS times:
# docs/COMPRESSED.md sessions 8-9. Needs bench/out/arch/vgg16.onnx (bench/speculative.sh makes it).
set -eu
cd "$(dirname "$0")/.."
[ -n "${SKIP_BUILD:-}" ] || cargo build --release -p sieve-design --example speculative_bench
for i in $(seq 1 "${RUNS:-3}"); do
  target/release/examples/speculative_bench pair --onnx bench/out/arch/vgg16.onnx --synth conv=e4m3 --rounds "${ROUNDS:-20}" 2>/dev/null | tail -1
done
