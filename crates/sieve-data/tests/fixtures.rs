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
