#!/usr/bin/env bash
# Compressed execution: batch-1 latency and peak RSS of the original model in sieve, its
# packed variants and onnxruntime f32 — one fresh process per configuration, all
# configurations interleaved round by round — plus per-layer FC timing f32 vs 8/5-bit.
# Usage: bench/speculative.sh [models...]   (default: all; ROUNDS=3, FC_ROUNDS=25, PAIR_ROUNDS=20, SKIP_BUILD=1)
# Writes bench/out/speculative.jsonl and bench/out/speculative.md. docs/COMPRESSED.md.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED="${SIEVE_SHARED:-$(pwd)/../shared}"
PKGS="${SIEVE_PACKAGES:-/work/runs/packages}"
ROUNDS="${ROUNDS:-3}"
FC_ROUNDS="${FC_ROUNDS:-25}"
[ -x .venv/bin/python ] || { python3 -m venv .venv && .venv/bin/pip install -q -r bench/requirements.txt; }
[ -n "${SKIP_BUILD:-}" ] || cargo build --release -p sieve-design --example speculative_bench
B=target/release/examples/speculative_bench
mkdir -p bench/out/arch
[ -f bench/out/arch/vgg16.onnx ] || .venv/bin/python "$SHARED/tools/gen_arch_models.py" bench/out/arch
OUT=bench/out/speculative.jsonl
: > "$OUT"
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(alexnet vgg16 lenet5 cifar10_quick nin_cifar10 mobilenet_v1_0.25_128 mobilenet_v2_1.0_224)

onnx_of() { if [ -f "bench/out/arch/$1.onnx" ]; then echo "bench/out/arch/$1.onnx"; else echo "$SHARED/models/$1/model.onnx"; fi; }
runs_of() { case "$1" in vgg16) echo 6;; alexnet) echo 20;; mobilenet_v2*|nin_*) echo 30;; *) echo 100;; esac; }
# One configuration per line: "sieve <args...>" or "ort".
configs_of() {
  local m=$1
  echo "sieve"
  case "$m" in
    alexnet) echo "sieve --synth fc=e4m3"; echo "sieve --synth fc=e3m1"; echo "sieve --synth fc=e4m3,conv=e4m3";;
    vgg16) echo "sieve --synth conv=e4m3"; echo "sieve --synth fc=e4m3"; echo "sieve --synth fc=e4m3,conv=e4m3";;
    *) if [ -f "$PKGS/$m.sieve" ]; then
         for v in exact accurate approximate; do echo "pkg --variant $v"; done
       else echo "sieve --synth fc=e4m3,conv=e4m3"; fi;;
  esac
  echo "ort"
}

emit() { echo "{\"model\":\"$1\",\"round\":$2,\"result\":$3}" >> "$OUT"; echo "$1 r$2: $3" >&2; }
echo "{\"model\":\"_machine\",\"round\":0,\"result\":{\"mode\":\"load\",\"uptime\":\"$(uptime)\"}}" >> "$OUT"

$B fc --rounds "$FC_ROUNDS" | while read -r line; do emit fc 0 "$line"; done
for r in $(seq 1 "$ROUNDS"); do
  for m in "${models[@]}"; do
    onnx=$(onnx_of "$m"); runs=$(runs_of "$m")
    while read -r kind args; do
      case "$kind" in
        sieve) res=$($B model --onnx "$onnx" $args --runs "$runs" --warmup 2);;
        pkg) res=$($B model --package "$PKGS/$m.sieve" $args --runs "$runs" --warmup 2);;
        ort) res=$(.venv/bin/python bench/speculative_ort.py "$onnx" "$runs" 2);;
      esac
      emit "$m" "$r" "$res"
    done < <(configs_of "$m")
  done
done
# Synthetic variants against the original in one process, alternating (robust to the
# host's slow speed changes): the figure behind the "not more than 5% slower" criterion.
for m in "${models[@]}"; do
  case "$m" in alexnet|vgg16) ;; *) continue;; esac
  onnx=$(onnx_of "$m")
  while read -r kind args; do
    [ "$kind" = sieve ] && [ -n "$args" ] || continue
    res=$($B pair --onnx "$onnx" $args --rounds "${PAIR_ROUNDS:-20}")
    emit pair 0 "${res%\}},\"onnx\":\"$m\"}"
  done < <(configs_of "$m")
done
echo "{\"model\":\"_machine\",\"round\":99,\"result\":{\"mode\":\"load\",\"uptime\":\"$(uptime)\"}}" >> "$OUT"
.venv/bin/python bench/speculative_report.py "$OUT" | tee bench/out/speculative.md
