//! Reads the real numpy-written reference files committed under `fixtures/`.
#![allow(clippy::unwrap_used)]

use sieve_data::{read_npy, NpyData};

fn fixtures() -> std::path::PathBuf {
    std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures")).to_path_buf()
}

#[test]
fn reads_lenet5_reference_arrays() {
    let dir = fixtures().join("lenet5/reference");
    let inp = read_npy(dir.join("input_uint8.npy")).unwrap();
    assert_eq!(inp.shape, vec![32, 1, 28, 28]);
    assert!(matches!(inp.data, NpyData::U8(_)));
    let px = inp.to_f32_vec();
    assert!(px.contains(&255.0) && px.contains(&0.0));
    let labels = read_npy(dir.join("labels.npy")).unwrap();
    assert_eq!(labels.shape, vec![32]);
    // MNIST t10k starts 7, 2, 1, 0, 4.
    assert_eq!(&labels.to_i64_vec()[..5], &[7, 2, 1, 0, 4]);
    let out = read_npy(dir.join("output.npy")).unwrap();
    assert_eq!(out.shape, vec![32, 10]);
    let o = out.to_f32_vec();
    let row0: f32 = o[..10].iter().sum();
    assert!((row0 - 1.0).abs() < 1e-4, "softmax row sums to {row0}");
}

#[test]
fn fixture_mnist_matches_lenet5_reference_and_card() {
    use sieve_data::{open, Dataset, DatasetSpec, ModelCard, Split};
    let card = ModelCard::find_next_to(&fixtures().join("lenet5/model.onnx"))
        .unwrap()
        .unwrap();
    assert_eq!(card.name, "lenet5");
    let target = card.input_spec().unwrap();
    let spec = DatasetSpec::Mnist {
        dir: fixtures().join("mnist"),
    };
    let ds = open(&spec, Split::Test, target).unwrap();
    assert_eq!(ds.len(), 1000);
    let b = ds.read_range(0, 32).unwrap();
    let reference = read_npy(card.resolve("reference/input_uint8.npy")).unwrap();
    assert_eq!(reference.shape, b.shape.to_vec());
    assert_eq!(reference.to_f32_vec(), b.data);
    let labels = read_npy(card.resolve("reference/labels.npy")).unwrap();
    assert_eq!(labels.to_i64_vec(), b.labels);
    // The repo fixture has no training files: validation is a clear error.
    let e = open(&spec, Split::Validation, target).err().unwrap();
    assert!(e.to_string().contains("validation"), "{e}");
    // Class names resolve through the fixtures/ fallback.
    let names = card.class_names().unwrap();
    assert_eq!(names.len(), 10);
    assert_eq!(names[7], "7");
}
