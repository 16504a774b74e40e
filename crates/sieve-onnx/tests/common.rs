//! Shared helpers for the integration tests.
#![allow(clippy::unwrap_used, clippy::panic)]
#![allow(dead_code)]

use sieve_nn::Tensor;
use std::path::PathBuf;

/// The workspace root.
pub fn workspace() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The shared folder (`SIEVE_SHARED` or `<workspace>/../shared`); panics (fails the
/// test) if it does not exist.
pub fn shared() -> PathBuf {
    let p = std::env::var_os("SIEVE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("../shared"));
    assert!(
        p.is_dir(),
        "shared folder {} is missing (set SIEVE_SHARED)",
        p.display()
    );
    p
}

/// Reads `input_uint8.npy` as f32 `[N, C, H, W]` and `output.npy` as f32 `[N, K]`.
pub fn reference(dir: &std::path::Path) -> (Vec<usize>, Vec<f32>, Vec<usize>, Vec<f32>) {
    let x = sieve_data::npy::read_npy(dir.join("input_uint8.npy")).unwrap();
    let y = sieve_data::npy::read_npy(dir.join("output.npy")).unwrap();
    (
        x.shape.clone(),
        x.to_f32_vec(),
        y.shape.clone(),
        y.to_f32_vec(),
    )
}

/// Max absolute difference.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Runs `model` on `x` in batches of `batch`, returning the concatenated first output.
pub fn run_batched(model: &sieve_nn::Model, xshape: &[usize], x: &[f32], batch: usize) -> Vec<f32> {
    let n = xshape[0];
    let per: usize = xshape[1..].iter().product();
    let mut out = vec![];
    let mut i = 0;
    while i < n {
        let b = batch.min(n - i);
        let mut shape = xshape.to_vec();
        shape[0] = b;
        let t = Tensor::from_f32(shape, x[i * per..(i + b) * per].to_vec()).unwrap();
        let y = model.run(vec![t]).unwrap();
        out.extend(y[0].as_f32().unwrap());
        i += b;
    }
    out
}
