//! Dataset readers and preprocessing for sieve.
//!
//! - [`npy`]: NumPy `.npy` read/write (reference tensors for differential tests).
//!
//! All datasets produce float32 NCHW batches of raw 0..255 pixel values, the
//! input contract of every model in `shared/models` (normalisation is folded
//! into the graphs).
#![warn(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod error;
pub mod npy;

pub use error::DataError;
pub use npy::{read_npy, read_npy_bytes, write_npy, write_npy_f32, NpyArray, NpyData};
