//! Dataset readers and preprocessing for sieve.
//!
//! - [`npy`]: NumPy `.npy` read/write (reference tensors for differential tests).
//! - [`ModelCard`]: the `model.toml` beside each model (input/output contract, labels).
//! - Datasets ([`DatasetSpec`], [`open`], [`Dataset`]): MNIST idx, CIFAR-10
//!   binary batches and labelled image folders, streamed as [`Batch`]es.
//! - [`resize`]: Pillow-exact antialiased bilinear resize + centre crop.
//!
//! All datasets produce float32 NCHW batches of raw 0..255 pixel values, the
//! input contract of every model in `shared/models` (normalisation is folded
//! into the graphs).
#![warn(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod card;
pub mod cifar;
mod dataset;
mod error;
pub mod images;
pub mod mnist;
pub mod npy;
pub mod resize;
mod spec;
mod util;

pub use card::{
    parse_class_names, CardAccuracy, CardDataset, CardInput, CardOutput, CardReference, Dim,
    ModelCard, Number, OutputKind,
};
pub(crate) use dataset::check_range;
pub use dataset::{batches, limit, Batch, Batches, Dataset, InputSpec, Limited, Split};
pub use error::DataError;
pub use npy::{read_npy, read_npy_bytes, write_npy, write_npy_f32, NpyArray, NpyData};
pub use resize::Resampler;
pub use spec::{open, open_with, resolve_images, DatasetSpec};
