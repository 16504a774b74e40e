//! The crate's error type.

use sieve_data::DataError;
use sieve_float::FloatError;
use sieve_nn::NnError;
use sieve_onnx::OnnxError;

/// Errors of the design search, the package and running a variant. Each names the
/// file, layer, tensor or field involved.
#[derive(Debug, thiserror::Error)]
pub enum DesignError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The package file is not a valid `.sieve` package (truncated, not
    /// safetensors, missing or malformed metadata or tensors).
    #[error("{path}: not a valid .sieve package: {msg}")]
    Corrupt {
        /// The file (or `<bytes>`).
        path: String,
        /// What is wrong.
        msg: String,
    },
    /// The package's checksum does not match its contents.
    #[error(
        "{path}: checksum mismatch (stored {stored}, computed {computed}): the file is corrupted"
    )]
    Checksum {
        /// The file (or `<bytes>`).
        path: String,
        /// Checksum in the metadata.
        stored: String,
        /// Checksum of the contents.
        computed: String,
    },
    /// The package was written by an incompatible format version.
    #[error("{path}: package format version {found} is not supported (this build reads versions 1 to {supported})")]
    Version {
        /// The file (or `<bytes>`).
        path: String,
        /// Version in the file.
        found: u32,
        /// Version this build reads and writes.
        supported: u32,
    },
    /// The requested variant is not stored in the package.
    #[error("variant '{0}' is not in the package{hint}", hint = if .0 == "original" { " (the original f32 weights are not stored: run the source ONNX model)" } else { "" })]
    NoVariant(String),
    /// The original ONNX model of a package cannot be used: no path is known,
    /// or the file at the path is not the one the package was designed from.
    #[error("original model {path}: {msg}")]
    Source {
        /// The ONNX path tried (or `<none>`).
        path: String,
        /// What is wrong (missing, hash mismatch).
        msg: String,
    },
    /// A bad argument or setting.
    #[error("{0}")]
    Invalid(String),
    /// The model does not fit the search (no image input, no layers, ...).
    #[error("model: {0}")]
    Model(String),
    /// The search stopped after the requested number of evaluations (`--max-evals`);
    /// re-running with the same arguments resumes it.
    #[error("stopped after {0} new evaluations (re-run with the same arguments to resume)")]
    Interrupted(usize),
    /// The journal of a previous run is unreadable.
    #[error("journal {path}: {msg}")]
    Journal {
        /// The journal file.
        path: String,
        /// What is wrong.
        msg: String,
    },
    /// Engine error (names the node/op/layer).
    #[error(transparent)]
    Nn(#[from] NnError),
    /// ONNX loading error.
    #[error(transparent)]
    Onnx(#[from] OnnxError),
    /// Dataset error.
    #[error(transparent)]
    Data(#[from] DataError),
    /// Codec error for a tensor.
    #[error("tensor '{tensor}': {source}")]
    Float {
        /// The tensor.
        tensor: String,
        /// Underlying error.
        source: FloatError,
    },
}

impl DesignError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> DesignError {
        DesignError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
