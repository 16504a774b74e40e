//! Extended tests against the real datasets and reference tensors in `../shared`.
//! Run with `cargo test -p sieve-data --release -- --ignored`.
//! They FAIL when the shared folder is missing (set SIEVE_SHARED to relocate it).
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use sieve_data::{open, read_npy, Dataset, DatasetSpec, ModelCard, NpyData, Split};

fn shared() -> PathBuf {
    let p = std::env::var_os("SIEVE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).join("../shared")
        });
    assert!(
        p.join("data").is_dir() && p.join("models").is_dir(),
        "shared folder not found at {} (set SIEVE_SHARED)",
        p.display()
    );
    p
}

const MODELS: [&str; 5] = [
    "lenet5",
    "cifar10_quick",
    "nin_cifar10",
    "mobilenet_v2_1.0_224",
    "mobilenet_v1_0.25_128",
];

fn card(m: &str) -> ModelCard {
    ModelCard::load(&shared().join("models").join(m).join("model.toml")).unwrap()
}

#[test]
#[ignore = "extended: needs ../shared"]
fn every_split_opens_with_documented_counts() {
    let data = shared().join("data");
    let expect = [
        ("lenet5", 10_000, 10_000),
        ("cifar10_quick", 10_000, 10_000),
        ("mobilenet_v2_1.0_224", 1300, 1000),
    ];
    for (m, n_test, n_val) in expect {
        let c = card(m);
        let spec = DatasetSpec::for_card(&c, &data).unwrap();
        let target = c.input_spec().unwrap();
        for (split, n) in [(Split::Test, n_test), (Split::Validation, n_val)] {
            let ds = open(&spec, split, target).unwrap();
            assert_eq!(ds.len(), n, "{m} {split}");
            assert_eq!(ds.item_shape(), target.chw());
            // Labels of the first batch are in range.
            let b = ds.read_range(0, 8.min(n)).unwrap();
            let classes = (c.output.num_classes - c.output.background_offset) as i64;
            assert!(b.labels.iter().all(|&l| (0..classes).contains(&l)));
        }
    }
    // The MNIST validation split: 10,000 distinct training images, labels per class nonzero.
    let ds = open(
        &DatasetSpec::parse(&format!("mnist:{}", data.join("mnist").display())).unwrap(),
        Split::Validation,
        card("lenet5").input_spec().unwrap(),
    )
    .unwrap();
    let mut counts = [0usize; 10];
    for b in ds.batches(2500) {
        for l in b.unwrap().labels {
            counts[l as usize] += 1;
        }
    }
    assert_eq!(counts.iter().sum::<usize>(), 10_000);
    assert!(counts.iter().all(|&c| c > 800), "{counts:?}");
    // CIFAR data_batch_1 class counts documented in data/README.md.
    let ds = open(
        &DatasetSpec::parse(&format!("cifar10:{}", data.join("cifar10").display())).unwrap(),
        Split::Validation,
        card("cifar10_quick").input_spec().unwrap(),
    )
    .unwrap();
    let mut counts = [0usize; 10];
    for b in ds.batches(4096) {
        for l in b.unwrap().labels {
            counts[l as usize] += 1;
        }
    }
    assert_eq!(
        counts,
        [1005, 974, 1032, 1016, 999, 937, 1030, 1001, 1025, 981]
    );
}

#[test]
#[ignore = "extended: needs ../shared"]
fn first_32_test_items_match_reference_inputs() {
    let data = shared().join("data");
    for m in MODELS {
        let c = card(m);
        let target = c.input_spec().unwrap();
        let spec = DatasetSpec::for_card(&c, &data).unwrap();
        let ds = open(&spec, Split::Test, target).unwrap();
        let batch = ds.read_range(0, 32).unwrap();
        let reference = read_npy(c.resolve("reference/input_uint8.npy")).unwrap();
        let labels = read_npy(c.resolve("reference/labels.npy")).unwrap();
        assert!(matches!(reference.data, NpyData::U8(_)));
        assert_eq!(reference.shape, batch.shape.to_vec(), "{m}");
        assert_eq!(labels.to_i64_vec(), batch.labels, "{m} labels");
        let r = reference.to_f32_vec();
        let diffs: Vec<f32> = r
            .iter()
            .zip(&batch.data)
            .map(|(a, b)| (a - b).abs())
            .collect();
        let max = diffs.iter().cloned().fold(0.0, f32::max);
        let mean = diffs.iter().sum::<f32>() / diffs.len() as f32;
        let frac = diffs.iter().filter(|&&d| d > 0.0).count() as f64 / diffs.len() as f64;
        eprintln!(
            "{m}: max abs diff {max}, mean abs diff {mean:.4}, differing {:.4}%",
            frac * 100.0
        );
        if target.h <= 32 {
            assert_eq!(max, 0.0, "{m}: MNIST/CIFAR inputs must match byte for byte");
        } else {
            // Measured (image crate / zune-jpeg decoder vs Pillow / libjpeg-turbo): max 4, mean 0.26.
            assert!(mean < 0.3 && max <= 5.0, "{m}: mean {mean} max {max}");
        }
    }
}

#[test]
#[ignore = "extended: needs ../shared"]
fn fingerprints_are_stable_and_distinct() {
    let data = shared().join("data");
    let c = card("lenet5");
    let t = c.input_spec().unwrap();
    let spec = DatasetSpec::for_card(&c, &data).unwrap();
    let a = open(&spec, Split::Test, t).unwrap().fingerprint().unwrap();
    let b = open(&spec, Split::Test, t).unwrap().fingerprint().unwrap();
    let v = open(&spec, Split::Validation, t)
        .unwrap()
        .fingerprint()
        .unwrap();
    assert_eq!(a, b);
    assert_ne!(a, v);
    // The repo's fixture (first 1000 t10k images) hashes like the first 1000 shared ones.
    let fixture = DatasetSpec::parse(concat!(
        "mnist:",
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/mnist"
    ))
    .unwrap();
    let f = open(&fixture, Split::Test, t).unwrap();
    assert_eq!(f.len(), 1000);
    let full = open(&spec, Split::Test, t).unwrap();
    assert_eq!(
        f.fingerprint().unwrap(),
        full.fingerprint_prefix(1000).unwrap()
    );
}
