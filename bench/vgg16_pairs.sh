#!/bin/bash
# VGG-16 (gen_arch_models.py, random weights) with 8-bit conv weights against its f32
# original, alternated in one process (speculative_bench pair), RUNS processes per binary:
# docs/COMPRESSED.md sessions 8-11. Needs bench/out/arch/vgg16.onnx (bench/speculative.sh
# makes it). Prints one line per process: the binary's name and the pair's JSON.
#   BINS="A B"    speculative_bench binaries, alternated process by process (default: this tree's)
#   WRAP=CMD      prefix for each process (session 11: WRAP="setarch x86_64 -R")
#   PROFILE_DIR=D per-node profiles (SIEVE_PROFILE=1) to D/<run>-<bin>.{txt,json};
#                 bench/vgg16_profile_modes.py D compares slow- and normal-mode processes
#   RAYON_NUM_THREADS=1 for one thread (session 11: unimodal ratios)
set -eu
cd "$(dirname "$0")/.."
[ -n "${SKIP_BUILD:-}" ] || cargo build --release -p sieve-design --example speculative_bench
BINS=${BINS:-target/release/examples/speculative_bench}
[ -z "${PROFILE_DIR:-}" ] || mkdir -p "$PROFILE_DIR"
for i in $(seq 1 "${RUNS:-3}"); do
  for bin in $BINS; do
    name=$(basename "$bin")
    args=(pair --onnx bench/out/arch/vgg16.onnx --synth conv=e4m3 --rounds "${ROUNDS:-20}")
    if [ -n "${PROFILE_DIR:-}" ]; then
      # shellcheck disable=SC2086
      SIEVE_PROFILE=1 ${WRAP:-} "$bin" "${args[@]}" > "$PROFILE_DIR/$i-$name.json" 2> "$PROFILE_DIR/$i-$name.txt"
      echo "$name $(tail -1 "$PROFILE_DIR/$i-$name.json")"
    else
      # shellcheck disable=SC2086
      echo "$name $(${WRAP:-} "$bin" "${args[@]}" 2>/dev/null | tail -1)"
    fi
  done
done
