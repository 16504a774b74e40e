//! Image folders: JPEG/PNG files plus a labels file (`filename label` per line).
//!
//! Items are decoded lazily, one batch at a time, in parallel (rayon), then
//! converted to RGB, resized so the shorter side is `S`, centre-cropped
//! `S x S` and laid out CHW (see [`crate::resize`]). Nothing but the file
//! list is held in memory.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::resize::{resize_crop_chw, Resampler};
use crate::util::hex;
use crate::{Batch, DataError, Dataset};

/// One labelled image file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageEntry {
    /// Path of the image file.
    pub path: PathBuf,
    /// Class index (0-based, as in the labels file).
    pub label: i64,
}

/// Parses a labels file: one `filename label` per line (whitespace
/// separated; blank lines and lines starting with `#` ignored). File names
/// are resolved relative to `dir`. `file` is for errors only.
pub fn parse_labels(text: &str, dir: &Path, file: &Path) -> Result<Vec<ImageEntry>, DataError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let mut parts = t.split_whitespace();
        let (Some(name), Some(label), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(DataError::format(
                file,
                format!("line {}: expected `filename label`, got {t:?}", i + 1),
            ));
        };
        let label: i64 = label.parse().map_err(|_| {
            DataError::format(
                file,
                format!("line {}: label {label:?} is not an integer", i + 1),
            )
        })?;
        if label < 0 {
            return Err(DataError::format(
                file,
                format!("line {}: negative label {label}", i + 1),
            ));
        }
        out.push(ImageEntry {
            path: dir.join(name),
            label,
        });
    }
    if out.is_empty() {
        return Err(DataError::format(file, "labels file lists no images"));
    }
    Ok(out)
}

/// Decodes an image file (JPEG or PNG) and converts it to 8-bit RGB.
/// Returns `(width, height, HWC pixels)`.
pub fn decode_rgb(path: &Path) -> Result<(usize, usize, Vec<u8>), DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    decode_rgb_bytes(&bytes, path)
}

/// Decodes image bytes (JPEG or PNG) to 8-bit RGB; `path` is for errors only.
pub fn decode_rgb_bytes(bytes: &[u8], path: &Path) -> Result<(usize, usize, Vec<u8>), DataError> {
    let img = image::load_from_memory(bytes).map_err(|e| DataError::Image {
        file: path.to_path_buf(),
        msg: e.to_string(),
    })?;
    let rgb = img.to_rgb8();
    let (w, h) = rgb.dimensions();
    Ok((w as usize, h as usize, rgb.into_raw()))
}

/// Decodes, resizes (shorter side `size`), centre-crops and lays out one
/// image file as CHW RGB bytes (`3 * size * size`).
pub fn load_image_chw(
    path: &Path,
    size: usize,
    resampler: Resampler,
) -> Result<Vec<u8>, DataError> {
    let (w, h, rgb) = decode_rgb(path)?;
    resize_crop_chw(&rgb, w, h, 3, size, resampler).map_err(|e| DataError::Image {
        file: path.to_path_buf(),
        msg: e.to_string(),
    })
}

/// A labelled image folder, decoded batch by batch.
#[derive(Debug, Clone)]
pub struct ImageFolder {
    name: String,
    entries: Vec<ImageEntry>,
    size: usize,
    resampler: Resampler,
}

impl ImageFolder {
    /// Opens the folder `dir` with labels file `labels`, producing
    /// `3 x size x size` items. Reads only the labels file; missing images
    /// are reported when their batch is read.
    pub fn open(dir: &Path, labels: &Path, size: usize) -> Result<Self, DataError> {
        if size == 0 {
            return Err(DataError::InvalidArgument(
                "image size must be positive".into(),
            ));
        }
        if !dir.is_dir() {
            return Err(DataError::io(
                dir,
                std::io::Error::new(std::io::ErrorKind::NotFound, "image folder not found"),
            ));
        }
        let text = std::fs::read_to_string(labels).map_err(|e| DataError::io(labels, e))?;
        let entries = parse_labels(&text, dir, labels)?;
        Ok(ImageFolder {
            name: format!("images:{}:{}", dir.display(), labels.display()),
            entries,
            size,
            resampler: Resampler::default(),
        })
    }

    /// Uses `resampler` instead of the default [`Resampler::Pillow`].
    pub fn with_resampler(mut self, resampler: Resampler) -> Self {
        self.resampler = resampler;
        self
    }

    /// The labelled files, in labels-file order.
    pub fn entries(&self) -> &[ImageEntry] {
        &self.entries
    }

    /// Reads items `start..end` as CHW u8 (`(end-start) * 3 * S * S` bytes), decoding in parallel.
    pub fn read_range_u8(&self, start: usize, end: usize) -> Result<Vec<u8>, DataError> {
        let (start, end) = crate::check_range(start, end, self.entries.len())?;
        let items: Vec<Vec<u8>> = self.entries[start..end]
            .par_iter()
            .map(|e| load_image_chw(&e.path, self.size, self.resampler))
            .collect::<Result<_, _>>()?;
        Ok(items.concat())
    }
}

impl Dataset for ImageFolder {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn item_shape(&self) -> [usize; 3] {
        [3, self.size, self.size]
    }

    fn read_range(&self, start: usize, end: usize) -> Result<Batch, DataError> {
        let (start, end) = crate::check_range(start, end, self.entries.len())?;
        let bytes = self.read_range_u8(start, end)?;
        Ok(Batch {
            data: bytes.iter().map(|&b| f32::from(b)).collect(),
            shape: [end - start, 3, self.size, self.size],
            labels: self.entries[start..end].iter().map(|e| e.label).collect(),
            start,
        })
    }

    /// sha256 over, per item in order: the file name, the label and the
    /// file's bytes; plus the target size and resampler.
    fn fingerprint_prefix(&self, end: usize) -> Result<String, DataError> {
        let end = end.min(self.len());
        let mut h = Sha256::new();
        h.update(format!(
            "sieve-data/images/v1 {end}x3x{s}x{s} {:?}\n",
            self.resampler,
            s = self.size
        ));
        for e in &self.entries[..end] {
            let bytes = std::fs::read(&e.path).map_err(|err| DataError::io(&e.path, err))?;
            let name = e
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            h.update(format!("{name} {} {}\n", e.label, bytes.len()));
            h.update(&bytes);
        }
        Ok(hex(&h.finalize()))
    }
}
