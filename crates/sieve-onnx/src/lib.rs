//! sieve-onnx (placeholder, being written).
