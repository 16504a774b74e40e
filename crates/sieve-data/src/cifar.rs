//! CIFAR-10 "binary version" batch files (plain or gzipped).
//!
//! Format: <https://www.cs.toronto.edu/~kriz/cifar.html> — records of 3073
//! bytes: 1 label byte (0-9), then the 1024 R, 1024 G and 1024 B bytes of a
//! 32x32 image, each plane row-major. The records are therefore already CHW.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::util::{find_plain_or_gz, hex, read_maybe_gz};
use crate::{Batch, DataError, Dataset, Split};

/// Bytes per record: label + 3 x 32 x 32.
pub const RECORD_BYTES: usize = 1 + 3 * 32 * 32;

/// A CIFAR-10 batch file held in memory.
#[derive(Debug, Clone)]
pub struct Cifar10 {
    name: String,
    records: Vec<u8>,
}

/// Maps a split to the file name inside a CIFAR-10 folder (without `.gz`).
pub fn split_file_name(split: Split) -> &'static str {
    match split {
        Split::Test => "test_batch.bin",
        Split::Validation => "data_batch_1.bin",
    }
}

impl Cifar10 {
    /// Parses the bytes of a batch file (already gunzipped). `file` is for errors only.
    ///
    /// Errors when the length is not a multiple of 3073 or a label is above 9.
    pub fn from_bytes(records: Vec<u8>, file: &Path) -> Result<Self, DataError> {
        if records.is_empty() || !records.len().is_multiple_of(RECORD_BYTES) {
            return Err(DataError::format(
                file,
                format!(
                    "{} bytes is not a whole number of {RECORD_BYTES}-byte CIFAR-10 records",
                    records.len()
                ),
            ));
        }
        if let Some((i, rec)) = records
            .chunks_exact(RECORD_BYTES)
            .enumerate()
            .find(|(_, r)| r[0] > 9)
        {
            return Err(DataError::format(
                file,
                format!("record {i}: label {} is not in 0..=9", rec[0]),
            ));
        }
        Ok(Cifar10 {
            name: format!("cifar10:{}", file.display()),
            records,
        })
    }

    /// Opens a batch file (plain or `.gz`).
    pub fn open_file(file: &Path) -> Result<Self, DataError> {
        Self::from_bytes(read_maybe_gz(file)?, file)
    }

    /// Resolves `path` for `split`: a file is used as is (the split is implied
    /// by the file); a folder maps test -> `test_batch.bin[.gz]`, validation ->
    /// `data_batch_1.bin[.gz]`.
    pub fn resolve(path: &Path, split: Split) -> Result<PathBuf, DataError> {
        if path.is_dir() {
            let name = split_file_name(split);
            find_plain_or_gz(path, name).ok_or_else(|| DataError::MissingSplit {
                dataset: format!("cifar10:{}", path.display()),
                split: split.to_string(),
                msg: format!("no {name} or {name}.gz in that folder"),
            })
        } else {
            Ok(path.to_path_buf())
        }
    }
}

impl Dataset for Cifar10 {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn len(&self) -> usize {
        self.records.len() / RECORD_BYTES
    }

    fn item_shape(&self) -> [usize; 3] {
        [3, 32, 32]
    }

    fn read_range(&self, start: usize, end: usize) -> Result<Batch, DataError> {
        let (start, end) = crate::check_range(start, end, self.len())?;
        let recs = &self.records[start * RECORD_BYTES..end * RECORD_BYTES];
        let mut data = Vec::with_capacity((end - start) * (RECORD_BYTES - 1));
        let mut labels = Vec::with_capacity(end - start);
        for r in recs.chunks_exact(RECORD_BYTES) {
            labels.push(i64::from(r[0]));
            data.extend(r[1..].iter().map(|&b| f32::from(b)));
        }
        Ok(Batch {
            data,
            shape: [end - start, 3, 32, 32],
            labels,
            start,
        })
    }

    fn fingerprint_prefix(&self, end: usize) -> Result<String, DataError> {
        let end = end.min(self.len());
        let mut h = Sha256::new();
        h.update(format!("sieve-data/cifar10/v1 {end}x3x32x32\n"));
        h.update(&self.records[..end * RECORD_BYTES]);
        Ok(hex(&h.finalize()))
    }
}
