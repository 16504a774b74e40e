//! sieve-nn: tensors, graph IR, operators, load-time passes and the executor.
//!
//! No protobuf and no I/O here: front ends (sieve-onnx) build a [`Graph`] from a
//! model file and turn it into a [`Model`] with [`Model::new`]. The per-layer hooks
//! used by speculative-CNN design live on [`Model`]: [`Model::run_with`] with
//! [`RunOptions`] (read, transform and feed intermediate values) and
//! [`Model::layers`] / [`Model::with_weights`] (inspect and replace weights).
#![warn(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::needless_range_loop))]

pub mod buffers;
mod error;
pub mod graph;
pub mod kernels;
mod model;
pub mod op;
pub mod ops;
pub mod passes;
pub(crate) mod team;
mod tensor;
mod weights;

pub use error::NnError;
pub use graph::{Graph, ValueId};
pub use model::{IoInfo, Layer, Model, RunOptions, RunResult, TransformFn, VisitFn};
pub use op::{Dim, Fact, Op};
pub use tensor::{DType, Tensor};
pub use weights::{decode_buffer_bytes, PackedWeights, WeightSource, WeightView, Weights};

/// Most kernel threads [`set_threads`] accepts.
pub const MAX_THREADS: usize = 1024;

/// Configures the global rayon pool used by the kernels to `n` threads (0 = one per
/// core). Must be called before the first model runs; the pool can be configured
/// only once per process, so a second call (or a call after the pool was started
/// implicitly) returns [`NnError::Threads`] and leaves the pool unchanged. More than
/// [`MAX_THREADS`] is refused (a mistyped count would otherwise start that many threads).
pub fn set_threads(n: usize) -> Result<(), NnError> {
    if n > MAX_THREADS {
        return Err(NnError::Threads(format!(
            "{n} threads asked for; at most {MAX_THREADS} (this machine has {} cores; 0 = one per core)",
            std::thread::available_parallelism().map_or(1, |c| c.get())
        )));
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global()
        .map_err(|e| NnError::Threads(e.to_string()))
}
