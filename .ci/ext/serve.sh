#!/usr/bin/env bash
# sieve-serve interop and load checks (called by .ci/run from the repo root, after the Rust
# tests; the bounded parser fuzz run is tests/fuzz.rs, run there by `--ignored`).
#  1. tritonclient (HTTP + gRPC, from PyPI) against `sieve serve`: health, metadata, infer
#     with JSON and binary tensors; outputs vs the onnxruntime reference and `sieve infer`.
#  2. Our client (sieve client infer: REST binary, REST JSON, gRPC) against a KServe
#     ModelServer hosting the same ONNX through onnxruntime; outputs vs the reference.
#  3. Load: 64 concurrent clients, LeNet-5 and MobileNet v2, sieve with and without dynamic
#     batching and the KServe peer, LOAD_SECS each (default 10 in CI; docs use 30); zero
#     errors required; a table of throughput and p50/p99 with ratios to the peer.
# Loopback only. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$(pwd)"
SHARED="${SIEVE_SHARED:-$ROOT/../shared}"
LOAD_SECS="${LOAD_SECS:-10}"
CONC="${LOAD_CONCURRENCY:-64}"
VENV="$ROOT/.venv-serve"
OUT="$ROOT/bench/out"
mkdir -p "$OUT"
LENET="$ROOT/fixtures/lenet5"
MOBILENET="$SHARED/models/mobilenet_v2_1.0_224"
[ -f "$MOBILENET/model.onnx" ] || { echo "missing $MOBILENET/model.onnx (set SIEVE_SHARED)" >&2; exit 1; }

PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

echo "--- python venv ($VENV)"
if [ ! -x "$VENV/bin/python" ]; then python3 -m venv "$VENV"; fi
"$VENV/bin/pip" install -q --disable-pip-version-check "tritonclient[http,grpc]" kserve onnxruntime numpy
PY="$VENV/bin/python"

echo "--- build (release)"
if [ "${SERVE_SKIP_BUILD:-0}" != 1 ]; then # dev shortcut when the binaries are fresh
  cargo build -q --release -p sieve-serve --examples
  cargo build -q --release -p sieve-cli
fi
CLI="$ROOT/target/release/examples/sieve_serve_cli"
LOADGEN="$ROOT/target/release/examples/loadgen"
SIEVE="$ROOT/target/release/sieve"

wait_ready() { # url name
  for _ in $(seq 1 300); do
    if curl -sf "$1/v2/health/ready" > /dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  echo "$2 did not become ready at $1" >&2; exit 1
}

start_sieve() { # max_batch
  "$CLI" serve --model "lenet5=$LENET/model.onnx" --model "mobilenet=$MOBILENET/model.onnx" \
    --bind 127.0.0.1:18000 --grpc-bind 127.0.0.1:18001 --max-batch "$1" --max-delay-ms 2 --queue 256 \
    > "$OUT/serve-sieve.log" 2>&1 &
  SIEVE_PID=$!; PIDS+=("$SIEVE_PID")
  wait_ready http://127.0.0.1:18000 "sieve serve"
}
stop_sieve() {
  kill -TERM "$SIEVE_PID"; wait "$SIEVE_PID" || { echo "sieve serve exited non-zero" >&2; exit 1; }
  grep -q "stopped" "$OUT/serve-sieve.log" || { echo "sieve serve did not shut down gracefully" >&2; exit 1; }
}

echo "--- 1. tritonclient -> sieve serve"
start_sieve 8
"$SIEVE" infer --model "$LENET/model.onnx" --input "$LENET/reference/input_uint8.npy" --output "$OUT/lenet5-sieve-infer.npy" > /dev/null
"$PY" crates/sieve-serve/scripts/triton_interop.py --http 127.0.0.1:18000 --grpc 127.0.0.1:18001 \
  --model lenet5 --input "$LENET/reference/input_uint8.npy" --reference "$LENET/reference/output.npy" \
  --sieve-output "$OUT/lenet5-sieve-infer.npy" --batch 8
"$PY" crates/sieve-serve/scripts/triton_interop.py --http 127.0.0.1:18000 --grpc 127.0.0.1:18001 \
  --model mobilenet --input "$MOBILENET/reference/input_uint8.npy" --reference "$MOBILENET/reference/output.npy" --batch 2

echo "--- 2. sieve client -> KServe ModelServer (onnxruntime)"
"$PY" crates/sieve-serve/scripts/kserve_peer.py --model "lenet5=$LENET/model.onnx" \
  --model "mobilenet=$MOBILENET/model.onnx" --http_port 18080 --grpc_port 18081 > "$OUT/serve-kserve.log" 2>&1 &
PEER_PID=$!; PIDS+=("$PEER_PID")
wait_ready http://127.0.0.1:18080 "KServe peer"
"$PY" - "$CLI" "$LENET" <<'PYEOF'
import subprocess, sys, tempfile, os
import numpy as np
cli, lenet = sys.argv[1], sys.argv[2]
ref = np.load(f"{lenet}/reference/output.npy")
passed = failed = 0
for url, proto in (("http://127.0.0.1:18080", "rest"), ("http://127.0.0.1:18080", "rest-json"), ("http://127.0.0.1:18081", "grpc")):
    out = os.path.join(tempfile.mkdtemp(), "y.npy")
    r = subprocess.run([cli, "client", "infer", "--url", url, "--model", "lenet5", "--protocol", proto,
                        "--input", f"{lenet}/reference/input_uint8.npy", "--output", out], capture_output=True, text=True)
    print(r.stdout.strip().splitlines()[0] if r.stdout else "", r.stderr.strip())
    ok = r.returncode == 0 and np.abs(np.load(out) - ref).max() < 1e-5
    print(("ok  " if ok else "FAIL"), f"sieve client --protocol {proto} -> KServe")
    passed += ok; failed += not ok
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PYEOF

echo "--- 3. load: $CONC clients x $LOAD_SECS s per run"
RESULTS="$OUT/serve-load.jsonl"; : > "$RESULTS"
load() { # label url model input protocol
  "$LOADGEN" --label "$1" --url "$2" --model "$3" --input "$4" --protocol "$5" --concurrency "$CONC" --secs "$LOAD_SECS" | tee -a "$RESULTS"
}
for m in lenet5 mobilenet; do
  if [ "$m" = lenet5 ]; then IN="$LENET/reference/input_uint8.npy"; else IN="$MOBILENET/reference/input_uint8.npy"; fi
  load "sieve batching" http://127.0.0.1:18000 "$m" "$IN" rest
  load "kserve+onnxruntime" http://127.0.0.1:18080 "$m" "$IN" rest
done
kill -TERM "$PEER_PID"; wait "$PEER_PID" 2>/dev/null || true
stop_sieve
start_sieve 1
load "sieve no batching" http://127.0.0.1:18000 lenet5 "$LENET/reference/input_uint8.npy" rest
load "sieve no batching" http://127.0.0.1:18000 mobilenet "$MOBILENET/reference/input_uint8.npy" rest
stop_sieve
"$PY" - "$RESULTS" <<'PYEOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("| model | server | req/s | p50 ms | p99 ms | req/s vs peer | p99 vs peer |")
print("|---|---|---|---|---|---|---|")
for m in ("lenet5", "mobilenet"):
    peer = next(r for r in rows if r["model"] == m and r["label"].startswith("kserve"))
    for r in (x for x in rows if x["model"] == m):
        print(f"| {m} | {r['label']} | {r['throughput_rps']:.1f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
              f"{r['throughput_rps'] / peer['throughput_rps']:.2f} | {r['p99_ms'] / peer['p99_ms']:.2f} |")
errors = sum(r["errors"] for r in rows)
print(f"load: {len(rows)} runs, {errors} errors")
sys.exit(1 if errors else 0)
PYEOF
echo "serve.sh: all interop and load checks passed"
