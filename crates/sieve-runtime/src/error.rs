//! The crate's error type.

use sieve_data::DataError;
use sieve_design::DesignError;
use sieve_nn::NnError;

/// Errors of the detector's calibration and offline speculation. Each names the
/// input, label, variant, target or file involved.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// Calibration or evaluation was given no inputs.
    #[error("no inputs: {0}")]
    Empty(String),
    /// A target quality outside `(0, 1]`.
    #[error("target {0} is outside (0, 1]: the target is a fraction of the original's accuracy")]
    Target(f64),
    /// A dataset label that is not one of the model's classes.
    #[error("label {label} of item {item} is not one of the model's {classes} classes (0..={max}); is the dataset the one the model was trained for?", max = .classes.saturating_sub(1))]
    Label {
        /// Index of the item in the dataset.
        item: usize,
        /// The label found.
        label: i64,
        /// Classes the model predicts (outputs minus background).
        classes: usize,
    },
    /// A model output that does not fit the output contract or the batch.
    #[error("output of {model}: {msg}")]
    Output {
        /// Which network (`original`, `accurate`, ...).
        model: String,
        /// What is wrong.
        msg: String,
    },
    /// The output contract is missing or cannot give a confidence.
    #[error("output contract: {0}")]
    Contract(String),
    /// The package's `detector` section is missing or does not hold what was asked.
    #[error("detector calibration: {0}")]
    Calibration(String),
    /// Recorded runs that do not belong together (different lengths or labels).
    #[error("recorded runs do not match: {0}")]
    Mismatch(String),
    /// A file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// From the package or a speculative variant.
    #[error(transparent)]
    Design(#[from] DesignError),
    /// From a dataset reader.
    #[error(transparent)]
    Data(#[from] DataError),
    /// From the engine.
    #[error(transparent)]
    Nn(#[from] NnError),
}

impl RuntimeError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> RuntimeError {
        RuntimeError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
