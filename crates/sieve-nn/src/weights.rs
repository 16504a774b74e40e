//! Weight operands of compute layers (Conv, Gemm, MatMul), dense today and
//! pluggable compressed forms later.

use crate::{NnError, Tensor};
use std::any::Any;
use std::fmt::Debug;
use std::sync::Arc;

/// A weight tensor stored in some compact form that can be decoded to `f32`.
///
/// Contract: `shape()` is the logical shape of the decoded tensor (same layout as
/// the dense weights it replaces, e.g. OIHW for Conv) and `decode_into` writes
/// exactly `shape().iter().product()` values, row-major, into `out` (which has that
/// length). Decoding must be deterministic and thread-safe.
pub trait WeightSource: Send + Sync + Debug {
    /// Logical shape of the decoded weights.
    fn shape(&self) -> &[usize];
    /// Decodes all weights into `out` (`out.len()` equals the element count).
    fn decode_into(&self, out: &mut [f32]) -> Result<(), NnError>;
    /// Bytes the stored form occupies (for memory reports).
    fn stored_bytes(&self) -> usize;
    /// For downcasting by kernels that can consume the stored form directly.
    fn as_any(&self) -> &dyn Any;
}

/// The weight operand of a compute layer.
#[derive(Clone, Debug)]
pub enum Weights {
    /// Plain `f32` tensor (shared, never copied by the executor).
    Dense(Tensor),
    /// A compressed form decoded per run into the node's scratch.
    Encoded(Arc<dyn WeightSource>),
}

impl Weights {
    /// Dense weights from a tensor; fails if the tensor is not `f32`.
    pub fn dense(t: Tensor) -> Result<Weights, NnError> {
        t.f32s()?;
        Ok(Weights::Dense(t))
    }

    /// Logical shape.
    pub fn shape(&self) -> &[usize] {
        match self {
            Weights::Dense(t) => t.shape(),
            Weights::Encoded(s) => s.shape(),
        }
    }

    /// Number of weights.
    pub fn len(&self) -> usize {
        self.shape().iter().product()
    }

    /// True if there is no weight.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The dense data, if dense.
    pub fn as_dense(&self) -> Option<&[f32]> {
        match self {
            Weights::Dense(t) => t.as_f32(),
            Weights::Encoded(_) => None,
        }
    }

    /// Bytes held in memory by this operand.
    pub fn stored_bytes(&self) -> usize {
        match self {
            Weights::Dense(t) => t.len() * 4,
            Weights::Encoded(s) => s.stored_bytes(),
        }
    }

    /// The weights as an `f32` slice: the dense data directly, or the encoded form
    /// decoded into `scratch` (resized as needed).
    pub fn view<'a>(&'a self, scratch: &'a mut Vec<f32>) -> Result<&'a [f32], NnError> {
        match self {
            Weights::Dense(t) => t.f32s(),
            Weights::Encoded(s) => {
                let n = self.len();
                scratch.clear();
                scratch.resize(n, 0.0);
                s.decode_into(scratch)?;
                Ok(scratch.as_slice())
            }
        }
    }

    /// The weights as a dense tensor (decoding if needed).
    pub fn to_tensor(&self) -> Result<Tensor, NnError> {
        match self {
            Weights::Dense(t) => Ok(t.clone()),
            Weights::Encoded(s) => {
                let mut v = vec![0.0; self.len()];
                s.decode_into(&mut v)?;
                Tensor::from_f32(s.shape().to_vec(), v)
            }
        }
    }
}
