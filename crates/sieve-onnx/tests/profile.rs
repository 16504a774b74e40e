//! The per-node profile (`SIEVE_PROFILE`), in a test binary of its own: the variable is
//! read from the process environment, which the other tests must not see changed.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::*;
use sieve_nn::Tensor;

/// `SIEVE_PROFILE=warm` runs every node once untimed before its timed run: the outputs
/// stay those of a plain model bit for bit, and the report counts only the timed runs.
#[test]
fn warm_profile_times_each_node_once_and_changes_no_output() {
    let path = workspace().join("fixtures/lenet5/model.onnx");
    let (xs, x, _, _) = reference(&workspace().join("fixtures/lenet5/reference"));
    let per: usize = xs[1..].iter().product();
    let mut shape = xs.clone();
    shape[0] = 4;
    let input = Tensor::from_f32(shape, x[..4 * per].to_vec()).unwrap();

    let plain = sieve_onnx::load_file(&path).unwrap();
    assert!(
        plain.profile_report().is_none(),
        "profiling is off by default"
    );
    let want = plain.run(vec![input.clone()]).unwrap();

    std::env::set_var("SIEVE_PROFILE", "warm");
    let warm = sieve_onnx::load_file(&path).unwrap();
    for _ in 0..2 {
        let got = warm.run(vec![input.clone()]).unwrap();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            let (g, w) = (g.f32s().unwrap(), w.f32s().unwrap());
            assert!(g.iter().zip(w).all(|(a, b)| a.to_bits() == b.to_bits()));
        }
    }
    let report = warm.profile_report().unwrap();
    assert!(report.starts_with("sieve profile: 2 runs,"), "{report}");
    assert!(report.contains("Conv"), "{report}");
}
