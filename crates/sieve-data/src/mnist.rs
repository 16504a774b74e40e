//! MNIST in the idx format (plain or gzipped files).
//!
//! Format: <http://yann.lecun.com/exdb/mnist/> — big-endian; images
//! `0x00000803, n, rows, cols` then `n*rows*cols` bytes; labels `0x00000801, n`
//! then `n` bytes.
//!
//! Splits: test = `t10k-*`; validation = the training images at the 0-based
//! indices listed in `validation_indices.txt` (one per line).

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::util::{find_plain_or_gz, hex, read_maybe_gz};
use crate::{Batch, DataError, Dataset, Split};

/// Images of one idx3 file: `n` images of `rows x cols` bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct IdxImages {
    /// Number of images.
    pub n: usize,
    /// Rows per image.
    pub rows: usize,
    /// Columns per image.
    pub cols: usize,
    /// `n * rows * cols` pixel bytes, image-major, row-major.
    pub pixels: Vec<u8>,
}

fn be32(b: &[u8], at: usize) -> Option<usize> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]) as usize)
}

/// Parses an idx3 (unsigned byte, 3-d) image file's bytes. `file` is for errors only.
///
/// Errors on a wrong magic, a truncated file or trailing bytes.
pub fn parse_idx_images(bytes: &[u8], file: &Path) -> Result<IdxImages, DataError> {
    let magic = be32(bytes, 0).ok_or_else(|| DataError::format(file, "truncated idx header"))?;
    if magic != 0x0803 {
        return Err(DataError::format(
            file,
            format!("wrong idx magic 0x{magic:08x}, expected 0x00000803 (ubyte images, 3 dims)"),
        ));
    }
    let (n, rows, cols) = match (be32(bytes, 4), be32(bytes, 8), be32(bytes, 12)) {
        (Some(n), Some(r), Some(c)) => (n, r, c),
        _ => return Err(DataError::format(file, "truncated idx header")),
    };
    let need = n
        .checked_mul(rows)
        .and_then(|x| x.checked_mul(cols))
        .ok_or_else(|| DataError::format(file, "idx dimensions overflow"))?;
    let body = &bytes[16..];
    if body.len() != need {
        return Err(DataError::format(
            file,
            format!(
                "idx body has {} bytes, header says {n} x {rows} x {cols} = {need}{}",
                body.len(),
                if body.len() < need {
                    " (truncated)"
                } else {
                    ""
                }
            ),
        ));
    }
    Ok(IdxImages {
        n,
        rows,
        cols,
        pixels: body.to_vec(),
    })
}

/// Parses an idx1 (unsigned byte, 1-d) label file's bytes.
///
/// Errors on a wrong magic, a truncated file or trailing bytes.
pub fn parse_idx_labels(bytes: &[u8], file: &Path) -> Result<Vec<u8>, DataError> {
    let magic = be32(bytes, 0).ok_or_else(|| DataError::format(file, "truncated idx header"))?;
    if magic != 0x0801 {
        return Err(DataError::format(
            file,
            format!("wrong idx magic 0x{magic:08x}, expected 0x00000801 (ubyte labels, 1 dim)"),
        ));
    }
    let n = be32(bytes, 4).ok_or_else(|| DataError::format(file, "truncated idx header"))?;
    let body = &bytes[8..];
    if body.len() != n {
        return Err(DataError::format(
            file,
            format!("idx label body has {} bytes, header says {n}", body.len()),
        ));
    }
    Ok(body.to_vec())
}

fn load_pair(dir: &Path, prefix: &str) -> Result<(IdxImages, Vec<u8>, [PathBuf; 2]), DataError> {
    let img_name = format!("{prefix}-images-idx3-ubyte");
    let lab_name = format!("{prefix}-labels-idx1-ubyte");
    let img_path = find_plain_or_gz(dir, &img_name).ok_or_else(|| {
        DataError::io(
            &dir.join(&img_name),
            std::io::Error::new(std::io::ErrorKind::NotFound, "not found (nor .gz)"),
        )
    })?;
    let lab_path = find_plain_or_gz(dir, &lab_name).ok_or_else(|| {
        DataError::io(
            &dir.join(&lab_name),
            std::io::Error::new(std::io::ErrorKind::NotFound, "not found (nor .gz)"),
        )
    })?;
    let images = parse_idx_images(&read_maybe_gz(&img_path)?, &img_path)?;
    let labels = parse_idx_labels(&read_maybe_gz(&lab_path)?, &lab_path)?;
    if labels.len() != images.n {
        return Err(DataError::format(
            &lab_path,
            format!(
                "{} labels but {} has {} images",
                labels.len(),
                img_path.display(),
                images.n
            ),
        ));
    }
    Ok((images, labels, [img_path, lab_path]))
}

/// Parses `validation_indices.txt`: one 0-based index per line, each `< limit`.
pub fn parse_index_list(text: &str, limit: usize, file: &Path) -> Result<Vec<usize>, DataError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        let v: usize = t
            .parse()
            .map_err(|_| DataError::format(file, format!("line {}: not an index: {t:?}", i + 1)))?;
        if v >= limit {
            return Err(DataError::format(
                file,
                format!(
                    "line {}: index {v} out of range (dataset has {limit})",
                    i + 1
                ),
            ));
        }
        out.push(v);
    }
    Ok(out)
}

/// An MNIST split held in memory (`n x 1 x rows x cols` bytes + labels).
#[derive(Debug, Clone)]
pub struct Mnist {
    name: String,
    rows: usize,
    cols: usize,
    pixels: Vec<u8>,
    labels: Vec<u8>,
}

impl Mnist {
    /// Opens `split` of the MNIST folder `dir` (see the module docs).
    ///
    /// Errors when the split's files are missing or malformed; the validation
    /// split needs `train-*` and `validation_indices.txt`.
    pub fn open(dir: &Path, split: Split) -> Result<Self, DataError> {
        let name = format!("mnist:{} ({split})", dir.display());
        match split {
            Split::Test => {
                let (images, labels, _) = load_pair(dir, "t10k")?;
                Ok(Mnist {
                    name,
                    rows: images.rows,
                    cols: images.cols,
                    pixels: images.pixels,
                    labels,
                })
            }
            Split::Validation => {
                let idx_path = dir.join("validation_indices.txt");
                let has_train = find_plain_or_gz(dir, "train-images-idx3-ubyte").is_some()
                    && find_plain_or_gz(dir, "train-labels-idx1-ubyte").is_some();
                if !has_train || !idx_path.is_file() {
                    return Err(DataError::MissingSplit {
                        dataset: format!("mnist:{}", dir.display()),
                        split: split.to_string(),
                        msg: "needs train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz] \
                              and validation_indices.txt in that folder"
                            .into(),
                    });
                }
                let (images, labels, _) = load_pair(dir, "train")?;
                let text =
                    std::fs::read_to_string(&idx_path).map_err(|e| DataError::io(&idx_path, e))?;
                let idx = parse_index_list(&text, images.n, &idx_path)?;
                let per = images.rows * images.cols;
                let mut pixels = Vec::with_capacity(idx.len() * per);
                let mut sel_labels = Vec::with_capacity(idx.len());
                for &i in &idx {
                    pixels.extend_from_slice(&images.pixels[i * per..(i + 1) * per]);
                    sel_labels.push(labels[i]);
                }
                Ok(Mnist {
                    name,
                    rows: images.rows,
                    cols: images.cols,
                    pixels,
                    labels: sel_labels,
                })
            }
        }
    }
}

impl Dataset for Mnist {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn len(&self) -> usize {
        self.labels.len()
    }

    fn item_shape(&self) -> [usize; 3] {
        [1, self.rows, self.cols]
    }

    fn read_range(&self, start: usize, end: usize) -> Result<Batch, DataError> {
        let (start, end) = crate::check_range(start, end, self.len())?;
        let per = self.rows * self.cols;
        Ok(Batch {
            data: self.pixels[start * per..end * per]
                .iter()
                .map(|&b| f32::from(b))
                .collect(),
            shape: [end - start, 1, self.rows, self.cols],
            labels: self.labels[start..end]
                .iter()
                .map(|&l| i64::from(l))
                .collect(),
            start,
        })
    }

    fn fingerprint_prefix(&self, end: usize) -> Result<String, DataError> {
        let end = end.min(self.len());
        let per = self.rows * self.cols;
        let mut h = Sha256::new();
        h.update(format!(
            "sieve-data/mnist/v1 {end}x1x{}x{}\n",
            self.rows, self.cols
        ));
        h.update(&self.pixels[..end * per]);
        h.update(&self.labels[..end]);
        Ok(hex(&h.finalize()))
    }
}
