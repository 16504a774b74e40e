#!/usr/bin/env bash
# Regenerate src/grpc/inference.rs from proto/open_inference_grpc.proto with a pure-Rust
# toolchain (protox + tonic-prost-build; no system protoc). Run from anywhere.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
crate="$(dirname "$here")"
out="$(mktemp -d)"
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/tmp/sieve-protogen-target}" \
  cargo run -q --manifest-path "$here/protogen/Cargo.toml" -- "$crate/proto/open_inference_grpc.proto" "$out"
cp "$out/inference.rs" "$crate/src/grpc/inference.rs"
echo "wrote $crate/src/grpc/inference.rs"
