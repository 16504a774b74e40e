//! Model cards: the `model.toml` beside each model in `shared/models`.
//!
//! Only `name`, `[input].shape` and `[output].num_classes` are required;
//! every other field is optional and unknown fields are ignored, so cards
//! may grow without breaking readers.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{DataError, InputSpec};

/// One dimension of a shape in a card: a number or a symbol such as `"N"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Dim {
    /// A fixed size.
    Fixed(usize),
    /// A symbolic size (the batch, `"N"`).
    Symbol(String),
}

/// An integer or float field value.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Number {
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
}

impl Number {
    /// The value as `f64`.
    pub fn as_f64(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Float(f) => f,
        }
    }
}

/// `[input]`: what the model takes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CardInput {
    /// Graph input name.
    #[serde(default)]
    pub name: Option<String>,
    /// `["N", C, H, W]`.
    pub shape: Vec<Dim>,
    /// Element type, e.g. `"float32"`.
    #[serde(default)]
    pub dtype: Option<String>,
    /// Layout, e.g. `"NCHW"`.
    #[serde(default)]
    pub layout: Option<String>,
    /// `"grey"` or `"RGB"`.
    #[serde(default)]
    pub channels: Option<String>,
    /// Value range of the pixels fed, e.g. `[0, 255]`.
    #[serde(default)]
    pub pixel_range: Option<[Number; 2]>,
    /// Free-text resize/crop rule.
    #[serde(default)]
    pub resize_crop: Option<String>,
    /// Free-text description of the preprocessing folded into the graph.
    #[serde(default)]
    pub preprocessing_folded: Option<String>,
}

/// What the output vector holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OutputKind {
    /// Softmax probabilities (sum 1).
    #[default]
    Probabilities,
    /// Unnormalised scores.
    Logits,
    /// Anything else.
    #[serde(other)]
    Other,
}

/// `[output]`: what the model returns.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CardOutput {
    /// Graph output name.
    #[serde(default)]
    pub name: Option<String>,
    /// `["N", num_classes]`.
    #[serde(default)]
    pub shape: Option<Vec<Dim>>,
    /// Probabilities or logits.
    #[serde(default)]
    pub kind: OutputKind,
    /// Length of the output vector (including a background class).
    pub num_classes: usize,
    /// 1 when output 0 is "background" (class = argmax - 1), else 0.
    #[serde(default)]
    pub background_offset: usize,
    /// Class names file, relative to the `shared/` root.
    #[serde(default)]
    pub label_file: Option<String>,
    /// Free-text rule mapping argmax to class.
    #[serde(default)]
    pub label_rule: Option<String>,
}

/// `[dataset]`: which data the model is evaluated on.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CardDataset {
    /// `"MNIST"`, `"CIFAR-10"`, `"ImageNet (ILSVRC2012)"`.
    pub name: String,
    /// Free-text test split description.
    #[serde(default)]
    pub test_split: Option<String>,
    /// Free-text validation split description.
    #[serde(default)]
    pub validation_split: Option<String>,
}

/// `[accuracy]`: measured top-1 accuracies (fractions, 0..1).
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
pub struct CardAccuracy {
    /// Top-1 on the test split.
    #[serde(default)]
    pub test_top1: Option<f64>,
    /// Number of test images.
    #[serde(default)]
    pub test_images: Option<u64>,
    /// Top-1 on the validation split.
    #[serde(default)]
    pub validation_top1: Option<f64>,
    /// Number of validation images.
    #[serde(default)]
    pub validation_images: Option<u64>,
    /// Top-1 the paper's Table I reports for this row, when there is one.
    #[serde(default)]
    pub paper_table1_top1: Option<f64>,
}

/// `[reference]`: differential-test tensors, relative to the card's folder.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CardReference {
    /// Input tensor (`.npy`, uint8 NCHW).
    #[serde(default)]
    pub inputs: Option<String>,
    /// Expected outputs (`.npy`, float32).
    #[serde(default)]
    pub outputs: Option<String>,
    /// True labels (`.npy`, int64).
    #[serde(default)]
    pub labels: Option<String>,
}

/// A parsed `model.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ModelCard {
    /// Model name, e.g. `"lenet5"`.
    pub name: String,
    /// Name used in the paper.
    #[serde(default)]
    pub paper_name: Option<String>,
    /// Model file name relative to the card (`"model.onnx"`).
    #[serde(default)]
    pub file: Option<String>,
    /// sha256 of the model file.
    #[serde(default)]
    pub sha256: Option<String>,
    /// Float weight parameters.
    #[serde(default)]
    pub params: Option<u64>,
    /// Multiply-accumulates per image.
    #[serde(default)]
    pub macs: Option<u64>,
    /// Input contract.
    pub input: CardInput,
    /// Output contract.
    pub output: CardOutput,
    /// Dataset.
    #[serde(default)]
    pub dataset: Option<CardDataset>,
    /// Measured accuracies.
    #[serde(default)]
    pub accuracy: Option<CardAccuracy>,
    /// Reference tensors.
    #[serde(default)]
    pub reference: Option<CardReference>,
    /// Where the card was read from (empty when parsed from a string).
    #[serde(skip)]
    pub path: PathBuf,
}

fn card_err(file: &Path, msg: impl Into<String>) -> DataError {
    DataError::ModelCard {
        file: file.to_path_buf(),
        msg: msg.into(),
    }
}

impl ModelCard {
    /// Parses card text; `path` is recorded and used for errors and for
    /// resolving relative files.
    pub fn parse(text: &str, path: &Path) -> Result<Self, DataError> {
        let mut card: ModelCard =
            toml::from_str(text).map_err(|e| card_err(path, e.to_string()))?;
        card.path = path.to_path_buf();
        card.input_spec()?;
        Ok(card)
    }

    /// Reads and parses the card at `path`.
    pub fn load(path: &Path) -> Result<Self, DataError> {
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        Self::parse(&text, path)
    }

    /// The `model.toml` beside `model_path` (or inside it, when it is a
    /// folder). `Ok(None)` when there is none; an error when it exists but
    /// does not parse.
    pub fn find_next_to(model_path: &Path) -> Result<Option<Self>, DataError> {
        let dir = if model_path.is_dir() {
            model_path.to_path_buf()
        } else {
            match model_path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            }
        };
        let card = dir.join("model.toml");
        if card.is_file() {
            Self::load(&card).map(Some)
        } else {
            Ok(None)
        }
    }

    /// The folder holding the card.
    pub fn dir(&self) -> PathBuf {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    /// `[input].shape` as `C x H x W` (the leading batch dimension is skipped).
    ///
    /// Errors unless the shape has 4 entries with numeric C, H and W.
    pub fn input_spec(&self) -> Result<InputSpec, DataError> {
        match self.input.shape.as_slice() {
            [_, Dim::Fixed(c), Dim::Fixed(h), Dim::Fixed(w)] => Ok(InputSpec {
                channels: *c,
                h: *h,
                w: *w,
            }),
            other => Err(card_err(
                &self.path,
                format!("[input].shape must be [N, C, H, W] with numeric C, H, W; got {other:?}"),
            )),
        }
    }

    /// Maps an output index (argmax) to a class index: `idx - background_offset`,
    /// `None` for the background output (counted wrong) or an index past the output.
    pub fn class_of_output(&self, idx: usize) -> Option<usize> {
        if idx >= self.output.num_classes {
            return None;
        }
        idx.checked_sub(self.output.background_offset)
    }

    /// A file named in the card relative to its folder.
    pub fn resolve(&self, rel: &str) -> PathBuf {
        self.dir().join(rel)
    }

    /// Candidate locations of the label file, in the order tried: the
    /// card's `../../` (the `shared/` root), `$SIEVE_SHARED`, the card's
    /// `../` with a leading `data/` dropped (the repo's `fixtures/` layout),
    /// and the card's own folder.
    pub fn label_file_candidates(&self) -> Vec<PathBuf> {
        let Some(rel) = self.output.label_file.as_deref() else {
            return Vec::new();
        };
        let dir = self.dir();
        let mut c = vec![dir.join("../..").join(rel)];
        if let Some(shared) = std::env::var_os("SIEVE_SHARED") {
            c.push(PathBuf::from(shared).join(rel));
        }
        c.push(
            dir.join("..")
                .join(rel.strip_prefix("data/").unwrap_or(rel)),
        );
        if let Some(name) = Path::new(rel).file_name() {
            c.push(dir.join(name));
        }
        c
    }

    /// Loads the class names (one per class, without the background output).
    ///
    /// Errors when the card names no label file or none of the
    /// [`label_file_candidates`](Self::label_file_candidates) exists.
    pub fn class_names(&self) -> Result<Vec<String>, DataError> {
        let candidates = self.label_file_candidates();
        let Some(found) = candidates.iter().find(|p| p.is_file()) else {
            return Err(card_err(
                &self.path,
                format!(
                    "label file {:?} not found (tried {:?})",
                    self.output.label_file, candidates
                ),
            ));
        };
        let text = std::fs::read_to_string(found).map_err(|e| DataError::io(found, e))?;
        Ok(parse_class_names(&text))
    }

    /// [`class_names`](Self::class_names), or `"0"`, `"1"`, ... when the file is unavailable.
    pub fn class_names_or_indices(&self) -> Vec<String> {
        self.class_names().unwrap_or_else(|_| {
            (0..self.output.num_classes
                - self.output.background_offset.min(self.output.num_classes))
                .map(|i| i.to_string())
                .collect()
        })
    }
}

/// Parses a class-names file: one class per non-empty line; a leading
/// WordNet id (`n01440764 tench, Tinca tinca`) is dropped.
pub fn parse_class_names(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| match l.split_once(' ') {
            Some((id, rest))
                if id.len() == 9
                    && id.starts_with('n')
                    && id[1..].bytes().all(|b| b.is_ascii_digit()) =>
            {
                rest.trim().to_string()
            }
            _ => l.to_string(),
        })
        .collect()
}
