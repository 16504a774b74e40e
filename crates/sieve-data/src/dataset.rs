//! The [`Dataset`] trait, batches and the common types.

use std::fmt;

use crate::DataError;

/// Which part of a dataset to read (see `shared/data/README.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// The split accuracy is reported on (MNIST t10k, CIFAR `test_batch`, ImageNet `val1300`).
    Test,
    /// The calibration split (the paper's "validation set": MNIST
    /// `validation_indices.txt` of train, CIFAR `data_batch_1`, ImageNet `sample1000`).
    Validation,
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Split::Test => "test",
            Split::Validation => "validation",
        })
    }
}

impl std::str::FromStr for Split {
    type Err = DataError;

    /// Accepts `test` and `validation` (also `val`, `calibration`), case-insensitive.
    fn from_str(s: &str) -> Result<Self, DataError> {
        match s.to_ascii_lowercase().as_str() {
            "test" => Ok(Split::Test),
            "validation" | "val" | "calibration" => Ok(Split::Validation),
            _ => Err(DataError::InvalidArgument(format!(
                "unknown split {s:?} (expected `test` or `validation`)"
            ))),
        }
    }
}

/// The image shape a model expects for one item (`C x H x W`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InputSpec {
    /// Channels (1 grey, 3 RGB).
    pub channels: usize,
    /// Height in pixels.
    pub h: usize,
    /// Width in pixels.
    pub w: usize,
}

impl InputSpec {
    /// `[channels, h, w]`.
    pub fn chw(&self) -> [usize; 3] {
        [self.channels, self.h, self.w]
    }
}

/// A batch of items: `data` is float32 NCHW raw pixel values in 0..=255.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// `shape.iter().product()` values, NCHW.
    pub data: Vec<f32>,
    /// `[N, C, H, W]`.
    pub shape: [usize; 4],
    /// `N` class labels (0-based, as stored in the dataset).
    pub labels: Vec<i64>,
    /// Index of the first item in the dataset.
    pub start: usize,
}

impl Batch {
    /// Number of items (`shape[0]`).
    pub fn len(&self) -> usize {
        self.shape[0]
    }

    /// True for an empty batch.
    pub fn is_empty(&self) -> bool {
        self.shape[0] == 0
    }

    /// The pixels of item `i` (`C*H*W` values), or `None` when out of range.
    pub fn item(&self, i: usize) -> Option<&[f32]> {
        let per = self.shape[1] * self.shape[2] * self.shape[3];
        self.data.get(i * per..(i + 1) * per)
    }
}

/// A finite, indexable sequence of labelled images.
///
/// Implementations keep at most the raw dataset bytes in memory (MNIST, CIFAR)
/// or only a file list (image folders); pixels are produced per batch.
pub trait Dataset: Send + Sync {
    /// A human-readable description (kind, path, split).
    fn describe(&self) -> String;

    /// Number of items.
    fn len(&self) -> usize;

    /// True when there are no items.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Shape of one item, `[C, H, W]`.
    fn item_shape(&self) -> [usize; 3];

    /// Items `start..end` as one batch. Errors when `start > end` or
    /// `end > len()`, or when an item cannot be read/decoded.
    fn read_range(&self, start: usize, end: usize) -> Result<Batch, DataError>;

    /// sha256 (lowercase hex) identifying the first `n` items (all when
    /// `n >= len()`): computed over the items' source bytes in order plus
    /// the preprocessing parameters — see each implementation. Independent
    /// of the folder path and of gzip compression.
    fn fingerprint_prefix(&self, n: usize) -> Result<String, DataError>;

    /// [`Dataset::fingerprint_prefix`] over all items: the dataset's provenance hash.
    fn fingerprint(&self) -> Result<String, DataError> {
        self.fingerprint_prefix(self.len())
    }

    /// Iterates over consecutive batches of `batch_size` items (the last may
    /// be shorter). A `batch_size` of 0 yields a single error.
    fn batches(&self, batch_size: usize) -> Batches<'_, Self>
    where
        Self: Sized,
    {
        Batches {
            ds: self,
            batch_size,
            next: 0,
            failed: false,
        }
    }
}

/// Iterates over consecutive batches of `batch_size` items (the last may be
/// shorter); works on `dyn Dataset` too. A `batch_size` of 0 yields a single error.
pub fn batches<D: Dataset + ?Sized>(ds: &D, batch_size: usize) -> Batches<'_, D> {
    Batches {
        ds,
        batch_size,
        next: 0,
        failed: false,
    }
}

/// Iterator returned by [`Dataset::batches`] and [`batches`].
#[derive(Debug)]
pub struct Batches<'a, D: ?Sized> {
    ds: &'a D,
    batch_size: usize,
    next: usize,
    failed: bool,
}

impl<D: Dataset + ?Sized> Iterator for Batches<'_, D> {
    type Item = Result<Batch, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if self.batch_size == 0 {
            self.failed = true;
            return Some(Err(DataError::InvalidArgument(
                "batch size must be at least 1".into(),
            )));
        }
        let len = self.ds.len();
        if self.next >= len {
            return None;
        }
        let end = (self.next + self.batch_size).min(len);
        let r = self.ds.read_range(self.next, end);
        self.next = end;
        Some(r)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.failed || self.batch_size == 0 {
            return (0, Some(usize::from(!self.failed)));
        }
        let left = self.ds.len().saturating_sub(self.next);
        let n = left.div_ceil(self.batch_size);
        (n, Some(n))
    }
}

impl<T: Dataset + ?Sized> Dataset for Box<T> {
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn len(&self) -> usize {
        (**self).len()
    }
    fn item_shape(&self) -> [usize; 3] {
        (**self).item_shape()
    }
    fn read_range(&self, start: usize, end: usize) -> Result<Batch, DataError> {
        (**self).read_range(start, end)
    }
    fn fingerprint_prefix(&self, n: usize) -> Result<String, DataError> {
        (**self).fingerprint_prefix(n)
    }
}

/// The first `n` items of another dataset (see [`limit`]).
pub struct Limited {
    inner: Box<dyn Dataset>,
    n: usize,
}

impl Dataset for Limited {
    fn describe(&self) -> String {
        format!("{} (first {})", self.inner.describe(), self.len())
    }
    fn len(&self) -> usize {
        self.n.min(self.inner.len())
    }
    fn item_shape(&self) -> [usize; 3] {
        self.inner.item_shape()
    }
    fn read_range(&self, start: usize, end: usize) -> Result<Batch, DataError> {
        let (start, end) = check_range(start, end, self.len())?;
        self.inner.read_range(start, end)
    }
    fn fingerprint_prefix(&self, n: usize) -> Result<String, DataError> {
        self.inner.fingerprint_prefix(n.min(self.len()))
    }
}

/// Keeps only the first `n` items of `dataset` (all of them when `n >= len`).
/// The fingerprint is that of the items kept.
pub fn limit(dataset: Box<dyn Dataset>, n: usize) -> Box<dyn Dataset> {
    Box::new(Limited { inner: dataset, n })
}

/// Validates a `start..end` item range against `len`.
pub(crate) fn check_range(
    start: usize,
    end: usize,
    len: usize,
) -> Result<(usize, usize), DataError> {
    if start > end || end > len {
        return Err(DataError::InvalidArgument(format!(
            "item range {start}..{end} is outside 0..{len}"
        )));
    }
    Ok((start, end))
}
