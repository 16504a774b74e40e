//! Core tests of the dataset readers on small synthetic files written by the tests.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};

use sieve_data::mnist::{parse_idx_images, parse_idx_labels};
use sieve_data::{
    batches, limit, open, DataError, Dataset, DatasetSpec, InputSpec, Resampler, Split,
};

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!(
            "sieve-data-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn idx_images(n: usize, rows: usize, cols: usize, f: impl Fn(usize) -> u8) -> Vec<u8> {
    let mut b = vec![0, 0, 8, 3];
    for d in [n, rows, cols] {
        b.extend_from_slice(&(d as u32).to_be_bytes());
    }
    b.extend((0..n * rows * cols).map(f));
    b
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 8, 1];
    b.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    b.extend_from_slice(labels);
    b
}

const MNIST: InputSpec = InputSpec {
    channels: 1,
    h: 4,
    w: 3,
};

/// Writes a tiny MNIST folder: 5 test images of 4x3, 8 train images, validation = [6, 1, 3].
fn write_mnist(dir: &Path, gzip: bool) {
    let put = |name: &str, bytes: Vec<u8>| {
        if gzip {
            std::fs::write(dir.join(format!("{name}.gz")), gz(&bytes)).unwrap();
        } else {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    };
    put(
        "t10k-images-idx3-ubyte",
        idx_images(5, 4, 3, |i| (i % 251) as u8),
    );
    put("t10k-labels-idx1-ubyte", idx_labels(&[7, 2, 1, 0, 4]));
    put(
        "train-images-idx3-ubyte",
        idx_images(8, 4, 3, |i| (i / 12) as u8 * 10),
    );
    put(
        "train-labels-idx1-ubyte",
        idx_labels(&[0, 1, 2, 3, 4, 5, 6, 7]),
    );
    std::fs::write(dir.join("validation_indices.txt"), "6\n1\n3\n").unwrap();
}

#[test]
fn mnist_plain_and_gz_read_the_same() {
    for gzip in [false, true] {
        let t = TempDir::new(if gzip { "mnist-gz" } else { "mnist-plain" });
        write_mnist(t.path(), gzip);
        let spec = DatasetSpec::parse(&format!("mnist:{}", t.path().display())).unwrap();
        let ds = open(&spec, Split::Test, MNIST).unwrap();
        assert_eq!(ds.len(), 5);
        assert_eq!(ds.item_shape(), [1, 4, 3]);
        let all: Vec<_> = batches(&*ds, 2).collect::<Result<_, _>>().unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[2].shape, [1, 1, 4, 3]);
        assert_eq!(all[1].start, 2);
        assert_eq!(all[0].labels, vec![7, 2]);
        assert_eq!(all[1].item(1).unwrap()[0], 36.0); // image 3 starts at byte 36
        assert_eq!(all[0].data[..3], [0.0, 1.0, 2.0]);

        let val = open(&spec, Split::Validation, MNIST).unwrap();
        assert_eq!(val.len(), 3);
        let b = val.read_range(0, 3).unwrap();
        assert_eq!(b.labels, vec![6, 1, 3]);
        assert!(b.item(0).unwrap().iter().all(|&v| v == 60.0));
        assert!(b.item(2).unwrap().iter().all(|&v| v == 30.0));
    }
}

#[test]
fn mnist_errors_are_clear() {
    let f = Path::new("x");
    // Wrong magic.
    let mut bad = idx_images(1, 2, 2, |_| 0);
    bad[3] = 1;
    let e = parse_idx_images(&bad, f).unwrap_err().to_string();
    assert!(e.contains("magic"), "{e}");
    assert!(parse_idx_labels(&idx_images(1, 2, 2, |_| 0), f).is_err());
    // Truncated body and header, and trailing bytes.
    let good = idx_images(3, 2, 2, |i| i as u8);
    for n in 0..good.len() {
        assert!(parse_idx_images(&good[..n], f).is_err(), "truncated at {n}");
    }
    let mut long = good.clone();
    long.push(9);
    assert!(parse_idx_images(&long, f).is_err());
    let lab = idx_labels(&[1, 2, 3]);
    for n in 0..lab.len() {
        assert!(parse_idx_labels(&lab[..n], f).is_err());
    }
    // Overflowing dimensions.
    let mut huge = vec![0, 0, 8, 3];
    for _ in 0..3 {
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
    }
    assert!(parse_idx_images(&huge, f).is_err());

    // A folder with only the test files: test works, validation errors clearly.
    let t = TempDir::new("mnist-testonly");
    write_mnist(t.path(), true);
    std::fs::remove_file(t.path().join("train-images-idx3-ubyte.gz")).unwrap();
    let spec = DatasetSpec::Mnist {
        dir: t.path().into(),
    };
    assert_eq!(open(&spec, Split::Test, MNIST).unwrap().len(), 5);
    let e = open(&spec, Split::Validation, MNIST).err().unwrap();
    assert!(matches!(e, DataError::MissingSplit { .. }), "{e}");
    assert!(e.to_string().contains("validation_indices"), "{e}");

    // Truncated gzip stream.
    let t2 = TempDir::new("mnist-badgz");
    write_mnist(t2.path(), true);
    let p = t2.path().join("t10k-images-idx3-ubyte.gz");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let spec2 = DatasetSpec::Mnist {
        dir: t2.path().into(),
    };
    assert!(open(&spec2, Split::Test, MNIST).is_err());

    // Index out of range in validation_indices.txt.
    std::fs::write(t2.path().join("validation_indices.txt"), "1\n8\n").unwrap();
    let e = open(&spec2, Split::Validation, MNIST)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("out of range"), "{e}");

    // Shape mismatch against the model.
    let e = open(
        &spec,
        Split::Test,
        InputSpec {
            channels: 1,
            h: 28,
            w: 28,
        },
    )
    .err()
    .unwrap();
    assert!(matches!(e, DataError::ShapeMismatch { .. }), "{e}");
}

fn cifar_records(n: usize) -> Vec<u8> {
    let mut b = Vec::new();
    for i in 0..n {
        b.push((i % 10) as u8);
        for c in 0..3 {
            b.extend(std::iter::repeat_n((i * 3 + c) as u8, 1024));
        }
    }
    b
}

const CIFAR: InputSpec = InputSpec {
    channels: 3,
    h: 32,
    w: 32,
};

#[test]
fn cifar_file_and_folder() {
    let t = TempDir::new("cifar");
    std::fs::write(t.path().join("test_batch.bin"), cifar_records(12)).unwrap();
    std::fs::write(t.path().join("data_batch_1.bin.gz"), gz(&cifar_records(4))).unwrap();

    let ds = open(
        &DatasetSpec::parse(&format!("cifar10:{}", t.path().display())).unwrap(),
        Split::Test,
        CIFAR,
    )
    .unwrap();
    assert_eq!(ds.len(), 12);
    let b = ds.read_range(10, 12).unwrap();
    assert_eq!(b.labels, vec![0, 1]);
    assert_eq!(b.shape, [2, 3, 32, 32]);
    // CHW: channel planes of item 11 hold 33, 34, 35.
    let item = b.item(1).unwrap();
    assert_eq!((item[0], item[1024], item[3071]), (33.0, 34.0, 35.0));

    let val = open(
        &DatasetSpec::Cifar10 {
            path: t.path().into(),
        },
        Split::Validation,
        CIFAR,
    )
    .unwrap();
    assert_eq!(val.len(), 4);
    // A file spec implies its split.
    let file = DatasetSpec::Cifar10 {
        path: t.path().join("data_batch_1.bin.gz"),
    };
    assert_eq!(open(&file, Split::Test, CIFAR).unwrap().len(), 4);

    // Bad sizes and labels.
    let mut bad = cifar_records(2);
    bad.pop();
    std::fs::write(t.path().join("short.bin"), &bad).unwrap();
    let e = open(
        &DatasetSpec::Cifar10 {
            path: t.path().join("short.bin"),
        },
        Split::Test,
        CIFAR,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("3073"), "{e}");
    let mut bad = cifar_records(2);
    bad[3073] = 10;
    std::fs::write(t.path().join("label.bin"), &bad).unwrap();
    let e = open(
        &DatasetSpec::Cifar10 {
            path: t.path().join("label.bin"),
        },
        Split::Test,
        CIFAR,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("record 1"), "{e}");
    // Missing split file in a folder.
    std::fs::remove_file(t.path().join("data_batch_1.bin.gz")).unwrap();
    let e = open(
        &DatasetSpec::Cifar10 {
            path: t.path().into(),
        },
        Split::Validation,
        CIFAR,
    )
    .err()
    .unwrap();
    assert!(matches!(e, DataError::MissingSplit { .. }), "{e}");
}

#[test]
fn limit_batches_and_fingerprint() {
    let t = TempDir::new("limit");
    std::fs::write(t.path().join("test_batch.bin"), cifar_records(7)).unwrap();
    std::fs::write(t.path().join("other.bin.gz"), gz(&cifar_records(5))).unwrap();
    let spec = DatasetSpec::Cifar10 {
        path: t.path().into(),
    };
    let ds = open(&spec, Split::Test, CIFAR).unwrap();
    let full = ds.fingerprint().unwrap();
    assert_eq!(full.len(), 64);
    let five = limit(ds, 5);
    assert_eq!(five.len(), 5);
    assert!(five.read_range(4, 6).is_err());
    let sizes: Vec<usize> = batches(&*five, 2).map(|b| b.unwrap().len()).collect();
    assert_eq!(sizes, vec![2, 2, 1]);
    // Same first five records, gzipped elsewhere: same fingerprint; different from all 7.
    let other = open(
        &DatasetSpec::Cifar10 {
            path: t.path().join("other.bin.gz"),
        },
        Split::Test,
        CIFAR,
    )
    .unwrap();
    assert_eq!(five.fingerprint().unwrap(), other.fingerprint().unwrap());
    assert_ne!(five.fingerprint().unwrap(), full);
    // Batch size 0 is one error, then the iterator ends.
    let mut it = batches(&*five, 0);
    assert!(it.next().unwrap().is_err());
    assert!(it.next().is_none());
}

#[test]
fn spec_parsing() {
    assert_eq!(
        DatasetSpec::parse("mnist:/a/b").unwrap(),
        DatasetSpec::Mnist { dir: "/a/b".into() }
    );
    assert_eq!(
        DatasetSpec::parse("images:/d:/l.txt").unwrap(),
        DatasetSpec::Images {
            dir: "/d".into(),
            labels: Some("/l.txt".into())
        }
    );
    assert_eq!(
        DatasetSpec::parse("images:/d").unwrap(),
        DatasetSpec::Images {
            dir: "/d".into(),
            labels: None
        }
    );
    for bad in ["", "mnist", "mnist:", "foo:/x", "images::l", "images:/d:"] {
        let e = DatasetSpec::parse(bad).unwrap_err();
        assert!(matches!(e, DataError::Spec { .. }), "{bad}: {e}");
    }
    let s = DatasetSpec::parse("cifar10:x/test_batch.bin.gz").unwrap();
    assert_eq!(s.to_string(), "cifar10:x/test_batch.bin.gz");
    assert_eq!("validation".parse::<Split>().unwrap(), Split::Validation);
    assert!("train".parse::<Split>().is_err());
}

/// Writes a 6x4 PNG (a horizontal ramp) and an 8x8 JPEG (flat grey) plus labels.
fn write_images(dir: &Path) -> PathBuf {
    let png = image::RgbImage::from_fn(6, 4, |x, y| image::Rgb([x as u8 * 40, y as u8 * 60, 200]));
    png.save(dir.join("a.png")).unwrap();
    let jpg = image::RgbImage::from_pixel(8, 8, image::Rgb([128, 128, 128]));
    jpg.save(dir.join("b.jpg")).unwrap();
    let grey = image::GrayImage::from_pixel(4, 6, image::Luma([77]));
    grey.save(dir.join("c.png")).unwrap();
    let labels = dir.join("labels.txt");
    std::fs::write(&labels, "a.png 3\n\nb.jpg 1\nc.png 0\n").unwrap();
    labels
}

#[test]
fn image_folder_decodes_resizes_and_crops() {
    let t = TempDir::new("images");
    let labels = write_images(t.path());
    let target = InputSpec {
        channels: 3,
        h: 4,
        w: 4,
    };
    let spec = DatasetSpec::parse(&format!(
        "images:{}:{}",
        t.path().display(),
        labels.display()
    ))
    .unwrap();
    let ds = open(&spec, Split::Test, target).unwrap();
    assert_eq!(ds.len(), 3);
    let b = ds.read_range(0, 3).unwrap();
    assert_eq!(b.labels, vec![3, 1, 0]);
    assert_eq!(b.shape, [3, 3, 4, 4]);
    // a.png: 6x4, shorter side already 4 -> no resize, crop x from 1: R = 40*(x+1).
    let a = b.item(0).unwrap();
    assert_eq!(&a[..4], &[40.0, 80.0, 120.0, 160.0]);
    assert_eq!(a[16 + 5], 60.0); // G plane, row 1
    assert!(a[32..].iter().all(|&v| v == 200.0));
    // b.jpg: flat grey survives JPEG + resize within a level.
    assert!(b.item(1).unwrap().iter().all(|&v| (v - 128.0).abs() <= 1.0));
    // c.png: greyscale converted to RGB, 4x6 -> crop rows 1..5.
    assert!(b.item(2).unwrap().iter().all(|&v| v == 77.0));
    // The fast resampler agrees on these.
    let fast = sieve_data::open_with(&spec, Split::Test, target, Resampler::FastImageResize)
        .unwrap()
        .read_range(0, 3)
        .unwrap();
    assert_eq!(fast.data[..48], b.data[..48]);

    // images:DIR finds DIR/labels.txt; rectangular or grey targets are refused.
    let plain = DatasetSpec::parse(&format!("images:{}", t.path().display())).unwrap();
    assert_eq!(open(&plain, Split::Validation, target).unwrap().len(), 3);
    let e = open(
        &plain,
        Split::Test,
        InputSpec {
            channels: 1,
            h: 4,
            w: 4,
        },
    )
    .err()
    .unwrap();
    assert!(matches!(e, DataError::ShapeMismatch { .. }), "{e}");
}

#[test]
fn image_folder_errors() {
    let t = TempDir::new("images-bad");
    let labels = write_images(t.path());
    let target = InputSpec {
        channels: 3,
        h: 4,
        w: 4,
    };
    // A missing file fails its batch, not the open.
    std::fs::write(&labels, "a.png 3\nmissing.png 1\n").unwrap();
    let spec = DatasetSpec::Images {
        dir: t.path().into(),
        labels: Some(labels.clone()),
    };
    let ds = open(&spec, Split::Test, target).unwrap();
    assert!(ds.read_range(0, 1).is_ok());
    assert!(ds.read_range(0, 2).is_err());
    // Garbage image bytes.
    std::fs::write(t.path().join("junk.jpg"), b"\xff\xd8\xff not really a jpeg").unwrap();
    std::fs::write(&labels, "junk.jpg 0\n").unwrap();
    let e = open(&spec, Split::Test, target)
        .unwrap()
        .read_range(0, 1)
        .unwrap_err();
    assert!(matches!(e, DataError::Image { .. }), "{e}");
    // Malformed labels.
    for bad in ["a.png\n", "a.png x\n", "a.png -1\n", "a.png 1 2\n", "\n"] {
        std::fs::write(&labels, bad).unwrap();
        assert!(open(&spec, Split::Test, target).is_err(), "{bad:?}");
    }
}
