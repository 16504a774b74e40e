//! The crate's error type.

use std::path::{Path, PathBuf};

/// Everything that can go wrong reading data, model cards or `.npy` files.
///
/// Each variant names the file (when there is one) and what was wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A `.npy` file is malformed or uses an unsupported feature.
    #[error("npy{}: {msg}", file.as_ref().map(|f| format!(" {}", f.display())).unwrap_or_default())]
    Npy {
        /// The file, when the bytes came from one.
        file: Option<PathBuf>,
        /// What is wrong.
        msg: String,
    },
    /// A dataset file (idx, CIFAR record file, labels list, image) is malformed.
    #[error("{}: {msg}", file.display())]
    Format {
        /// The file involved.
        file: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// A dataset spec string (`mnist:DIR`, `cifar10:FILE`, `images:DIR:LABELS`) is invalid.
    #[error("invalid dataset spec {spec:?}: {msg}")]
    Spec {
        /// The spec as given.
        spec: String,
        /// What is wrong.
        msg: String,
    },
    /// The dataset does not provide the requested split.
    #[error("dataset {dataset} has no {split} split: {msg}")]
    MissingSplit {
        /// The dataset (spec or folder).
        dataset: String,
        /// The split requested.
        split: String,
        /// What is missing.
        msg: String,
    },
    /// The dataset's images do not have the shape the model expects.
    #[error("dataset {dataset} yields items of shape {found:?} (C, H, W) but the model expects {expected:?}")]
    ShapeMismatch {
        /// The dataset.
        dataset: String,
        /// Item shape the model expects (C, H, W).
        expected: [usize; 3],
        /// Item shape the dataset produces (C, H, W).
        found: [usize; 3],
    },
    /// A model card (`model.toml`) is missing a field or malformed.
    #[error("model card {}: {msg}", file.display())]
    ModelCard {
        /// The card file.
        file: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// An image could not be decoded or resized.
    #[error("image {}: {msg}", file.display())]
    Image {
        /// The image file.
        file: PathBuf,
        /// What went wrong.
        msg: String,
    },
    /// A caller-supplied argument is invalid (e.g. batch size 0).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl DataError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// A format error in `file`.
    pub fn format(file: &Path, msg: impl Into<String>) -> Self {
        DataError::Format {
            file: file.to_path_buf(),
            msg: msg.into(),
        }
    }

    /// Attaches `path` to an [`DataError::Npy`] error that has no file yet.
    pub(crate) fn with_file(self, path: &Path) -> Self {
        match self {
            DataError::Npy { file: None, msg } => DataError::Npy {
                file: Some(path.to_path_buf()),
                msg,
            },
            other => other,
        }
    }
}
