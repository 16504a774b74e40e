//! ONNX protobuf types, generated once by prost from the vendored `onnx.proto`
//! (onnx 1.23.2, Apache-2.0, copied from the `onnx` PyPI package's
//! `onnx/onnx.proto`). Regenerate with
//! `cargo run -p sieve-onnx --example gen_proto --features codegen`.
#![allow(missing_docs, clippy::all, clippy::pedantic)]

include!("onnx.rs");
