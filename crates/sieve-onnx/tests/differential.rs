//! Differential test (extended): every model in `shared/models/` against its
//! onnxruntime reference outputs, at batch 32 and batch 1, to 1e-4 absolute.
//!
//! `cargo test -p sieve-onnx --release --test differential -- --ignored --nocapture`
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::*;

const MODELS: &[&str] = &[
    "lenet5",
    "cifar10_quick",
    "nin_cifar10",
    "mobilenet_v1_0.25_128",
    "mobilenet_v2_1.0_224",
];

#[test]
#[ignore = "extended: needs ../shared"]
fn shared_models_match_onnxruntime() {
    let root = shared().join("models");
    let mut worst = vec![];
    for name in MODELS {
        let dir = root.join(name);
        let model =
            sieve_onnx::load_file(dir.join("model.onnx")).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (xs, x, ys, y) = reference(&dir.join("reference"));
        assert_eq!(xs[0], 32);
        for batch in [32, 1] {
            let out = run_batched(&model, &xs, &x, batch);
            assert_eq!(out.len(), ys.iter().product::<usize>());
            let d = max_abs_diff(&out, &y);
            println!("{name} batch {batch}: max abs diff {d:.3e}");
            worst.push((name, batch, d));
        }
    }
    for (name, batch, d) in worst {
        assert!(d <= 1e-4, "{name} at batch {batch}: max abs diff {d}");
    }
}
