//! sieve-serve: the cloud side of SIEVE. An Open Inference Protocol (KServe v2) server —
//! REST with JSON tensors and the binary tensor data extension, gRPC
//! `inference.GRPCInferenceService`, Prometheus metrics, dynamic batching — and the client
//! the edge runtime uses to reach it or any other compliant server (Triton, KServe,
//! MLServer, OpenVINO Model Server).
//!
//! Server: build a [`ServeConfig`], then [`serve`] (or [`Server::bind`] + [`Server::run`]
//! to learn the bound addresses first). Client: [`client::Client`] (async) and
//! [`client::BlockingClient`].
#![warn(missing_docs)]

pub mod backend;
pub mod batcher;
pub mod client;
pub mod codec;
pub mod engine;
pub mod error;
pub mod grpc_conv;
pub mod metrics;
pub mod server;
pub mod tensor;

/// Code generated from `proto/open_inference_grpc.proto` by `scripts/gen_proto.sh`.
#[allow(missing_docs, clippy::all, clippy::unwrap_used, clippy::panic)]
pub mod grpc {
    include!("grpc/inference.rs");
}

pub use backend::{InferenceBackend, ModelMetadata, TensorSpec};
pub use batcher::BatchConfig;
pub use error::{Result, ServeError};
pub use server::{serve, shutdown_signal, Limits, ModelSource, ServeConfig, Server, TlsPaths};
pub use tensor::{DataType, InferTensor};
