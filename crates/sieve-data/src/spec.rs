//! Dataset spec strings and [`open`].
//!
//! | spec | meaning |
//! |---|---|
//! | `mnist:DIR` | idx files in `DIR` (plain or `.gz`); test = `t10k-*`, validation = `train-*` at `DIR/validation_indices.txt` |
//! | `cifar10:FILE` | one CIFAR-10 binary batch file (plain or `.gz`); the split is implied by the file |
//! | `cifar10:DIR` | test -> `DIR/test_batch.bin[.gz]`, validation -> `DIR/data_batch_1.bin[.gz]` |
//! | `images:DIR:LABELS` | image folder + labels file (`filename label` per line); the split is implied |
//! | `images:DIR` | `DIR/val1300` + `DIR/val1300_labels.txt` for test and `DIR/sample1000` + `DIR/sample1000_labels.txt` for validation (the shared ImageNet layout); or `DIR/labels.txt` for both |

use std::path::{Path, PathBuf};

use crate::cifar::Cifar10;
use crate::images::ImageFolder;
use crate::mnist::Mnist;
use crate::resize::Resampler;
use crate::{DataError, Dataset, InputSpec, Split};

/// A parsed dataset spec (see the module docs for the syntax).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatasetSpec {
    /// `mnist:DIR`.
    Mnist {
        /// Folder with the idx files.
        dir: PathBuf,
    },
    /// `cifar10:FILE` or `cifar10:DIR`.
    Cifar10 {
        /// A batch file, or a folder holding `test_batch.bin[.gz]` / `data_batch_1.bin[.gz]`.
        path: PathBuf,
    },
    /// `images:DIR[:LABELS]`.
    Images {
        /// The image folder.
        dir: PathBuf,
        /// The labels file; `None` picks one from the split (see the module docs).
        labels: Option<PathBuf>,
    },
}

impl DatasetSpec {
    /// Parses `mnist:DIR`, `cifar10:PATH`, `images:DIR` or `images:DIR:LABELS`.
    ///
    /// For `images:`, a `:` in the rest splits DIR from LABELS at the last `:`.
    /// Errors on an unknown kind or an empty path.
    pub fn parse(s: &str) -> Result<Self, DataError> {
        let err = |msg: &str| DataError::Spec {
            spec: s.to_string(),
            msg: msg.to_string(),
        };
        let (kind, rest) = s
            .split_once(':')
            .ok_or_else(|| err("expected KIND:PATH with KIND one of mnist, cifar10, images"))?;
        if rest.is_empty() {
            return Err(err("empty path"));
        }
        match kind.to_ascii_lowercase().as_str() {
            "mnist" => Ok(DatasetSpec::Mnist { dir: rest.into() }),
            "cifar10" | "cifar" | "cifar-10" => Ok(DatasetSpec::Cifar10 { path: rest.into() }),
            "images" | "imagenet" => match rest.rsplit_once(':') {
                Some((dir, labels)) => {
                    if dir.is_empty() || labels.is_empty() {
                        return Err(err("expected images:DIR:LABELS with both parts non-empty"));
                    }
                    Ok(DatasetSpec::Images {
                        dir: dir.into(),
                        labels: Some(labels.into()),
                    })
                }
                None => Ok(DatasetSpec::Images {
                    dir: rest.into(),
                    labels: None,
                }),
            },
            other => Err(err(&format!(
                "unknown dataset kind {other:?} (expected mnist, cifar10 or images)"
            ))),
        }
    }

    /// The spec for the dataset a model card names (`[dataset].name`:
    /// MNIST, CIFAR-10 or ImageNet) inside the shared data folder `data_dir`
    /// (e.g. `shared/data`). `None` when the card names another dataset.
    pub fn for_card(card: &crate::ModelCard, data_dir: &Path) -> Option<Self> {
        let name = card.dataset.as_ref()?.name.to_ascii_lowercase();
        if name.starts_with("mnist") {
            Some(DatasetSpec::Mnist {
                dir: data_dir.join("mnist"),
            })
        } else if name.starts_with("cifar-10") || name.starts_with("cifar10") {
            Some(DatasetSpec::Cifar10 {
                path: data_dir.join("cifar10"),
            })
        } else if name.starts_with("imagenet") {
            Some(DatasetSpec::Images {
                dir: data_dir.join("imagenet"),
                labels: None,
            })
        } else {
            None
        }
    }
}

impl std::fmt::Display for DatasetSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatasetSpec::Mnist { dir } => write!(f, "mnist:{}", dir.display()),
            DatasetSpec::Cifar10 { path } => write!(f, "cifar10:{}", path.display()),
            DatasetSpec::Images { dir, labels: None } => write!(f, "images:{}", dir.display()),
            DatasetSpec::Images {
                dir,
                labels: Some(l),
            } => write!(f, "images:{}:{}", dir.display(), l.display()),
        }
    }
}

impl std::str::FromStr for DatasetSpec {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Self, DataError> {
        DatasetSpec::parse(s)
    }
}

/// Resolves the image folder and labels file of an `images:` spec for `split`.
pub fn resolve_images(
    dir: &Path,
    labels: Option<&Path>,
    split: Split,
) -> Result<(PathBuf, PathBuf), DataError> {
    if let Some(l) = labels {
        return Ok((dir.to_path_buf(), l.to_path_buf()));
    }
    let sub = match split {
        Split::Test => "val1300",
        Split::Validation => "sample1000",
    };
    let sub_dir = dir.join(sub);
    let sub_labels = dir.join(format!("{sub}_labels.txt"));
    if sub_dir.is_dir() && sub_labels.is_file() {
        return Ok((sub_dir, sub_labels));
    }
    // `images:shared/data/imagenet/val1300` with the labels beside the folder.
    if let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) {
        let beside = parent.join(format!("{}_labels.txt", name.to_string_lossy()));
        if beside.is_file() {
            return Ok((dir.to_path_buf(), beside));
        }
    }
    let plain = dir.join("labels.txt");
    if plain.is_file() {
        return Ok((dir.to_path_buf(), plain));
    }
    Err(DataError::MissingSplit {
        dataset: format!("images:{}", dir.display()),
        split: split.to_string(),
        msg: format!("no {sub}/ + {sub}_labels.txt nor labels.txt there; use images:DIR:LABELS"),
    })
}

/// Opens `split` of `spec`, checking that items have the shape `target`
/// expects (images are resized/cropped to `target`, which must be square).
///
/// Errors: missing/malformed files, a split the dataset lacks
/// ([`DataError::MissingSplit`]), or [`DataError::ShapeMismatch`].
pub fn open(
    spec: &DatasetSpec,
    split: Split,
    target: InputSpec,
) -> Result<Box<dyn Dataset>, DataError> {
    open_with(spec, split, target, Resampler::default())
}

/// [`open`] with a choice of resampler for image folders.
pub fn open_with(
    spec: &DatasetSpec,
    split: Split,
    target: InputSpec,
    resampler: Resampler,
) -> Result<Box<dyn Dataset>, DataError> {
    let ds: Box<dyn Dataset> = match spec {
        DatasetSpec::Mnist { dir } => Box::new(Mnist::open(dir, split)?),
        DatasetSpec::Cifar10 { path } => {
            let file = Cifar10::resolve(path, split)?;
            Box::new(Cifar10::open_file(&file)?)
        }
        DatasetSpec::Images { dir, labels } => {
            if target.channels != 3 || target.h != target.w {
                return Err(DataError::ShapeMismatch {
                    dataset: spec.to_string(),
                    expected: target.chw(),
                    found: [3, target.h, target.h],
                });
            }
            let (dir, labels) = resolve_images(dir, labels.as_deref(), split)?;
            Box::new(ImageFolder::open(&dir, &labels, target.h)?.with_resampler(resampler))
        }
    };
    if ds.item_shape() != target.chw() {
        return Err(DataError::ShapeMismatch {
            dataset: ds.describe(),
            expected: target.chw(),
            found: ds.item_shape(),
        });
    }
    Ok(ds)
}
