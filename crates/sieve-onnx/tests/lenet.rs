//! Core tests on the LeNet-5 fixture (no shared data needed): reference outputs,
//! model introspection and the per-layer hooks.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::*;
use sieve_nn::{Dim, Model, RunOptions, Tensor, Weights};

fn lenet() -> Model {
    sieve_onnx::load_file(workspace().join("fixtures/lenet5/model.onnx")).unwrap()
}

fn inputs(n: usize) -> (Tensor, Vec<f32>) {
    let (xs, x, ys, y) = reference(&workspace().join("fixtures/lenet5/reference"));
    let per: usize = xs[1..].iter().product();
    let k = ys[1];
    let mut s = xs.clone();
    s[0] = n;
    (
        Tensor::from_f32(s, x[..n * per].to_vec()).unwrap(),
        y[..n * k].to_vec(),
    )
}

#[test]
fn lenet_matches_onnxruntime_at_batch_32_and_1() {
    let m = lenet();
    let (xs, x, _, y) = reference(&workspace().join("fixtures/lenet5/reference"));
    for batch in [32, 1] {
        let out = run_batched(&m, &xs, &x, batch);
        let d = max_abs_diff(&out, &y);
        assert!(d < 1e-4, "batch {batch}: max abs diff {d}");
    }
}

#[test]
fn io_info_and_layers() {
    let m = lenet();
    assert_eq!(m.inputs().len(), 1);
    assert_eq!(m.inputs()[0].shape[0], Dim::Symbolic("N".into()));
    assert_eq!(
        &m.inputs()[0].shape[1..],
        &[Dim::Fixed(1), Dim::Fixed(28), Dim::Fixed(28)]
    );
    assert_eq!(m.outputs()[0].shape[1], Dim::Fixed(10));
    let layers = m.layers();
    let ops: Vec<&str> = layers.iter().map(|l| l.op).collect();
    assert_eq!(ops, ["Conv", "Conv", "Gemm", "Gemm"], "{layers:#?}");
    assert_eq!(layers[0].weight_shape, vec![20, 1, 5, 5]);
    assert!(!layers[0].weight_name.is_empty());
    // ip1 has its Relu fused: the materialised output is the post-Relu value.
    assert!(!layers[2].fused.is_empty(), "{:?}", layers[2]);
}

#[test]
fn kept_values_and_run_from_intermediate_equal_full_run() {
    let m = lenet();
    let (x, _) = inputs(4);
    let full = m.run(vec![x.clone()]).unwrap();
    for l in m.layers() {
        let r = m
            .run_with(
                vec![(m.input_ids()[0], x.clone())],
                &RunOptions {
                    keep: vec![l.output],
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(r.outputs[0], full[0]);
        let act = r.kept[0].clone();
        // Feeding the layer's output re-runs only what follows and gives the same result.
        let visited = std::sync::Mutex::new(vec![]);
        let visit = |v: sieve_nn::ValueId, _: &Tensor| visited.lock().unwrap().push(v);
        let r2 = m
            .run_with(
                vec![(l.output, act)],
                &RunOptions {
                    visit: Some(&visit),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(r2.outputs[0], full[0], "from {}", l.name);
        let visited = visited.into_inner().unwrap();
        assert!(!visited.contains(&l.output), "layer {} re-ran", l.name);
        assert!(!visited.contains(&l.input) || l.input == m.input_ids()[0]);
    }
}

#[test]
fn transform_hook_identity_and_zeroing() {
    let m = lenet();
    let (x, _) = inputs(2);
    let full = m.run(vec![x.clone()]).unwrap();
    let feeds = vec![(m.input_ids()[0], x)];
    let id = |_: sieve_nn::ValueId, _: &mut Tensor| Ok(());
    let r = m
        .run_with(
            feeds.clone(),
            &RunOptions {
                transform: Some(&id),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(r.outputs[0], full[0]);
    // Zeroing the first layer's output makes every image look the same.
    let target = m.layers()[0].output;
    let zero = move |v: sieve_nn::ValueId, t: &mut Tensor| {
        if v == target {
            t.as_f32_mut().unwrap().iter_mut().for_each(|x| *x = 0.0);
        }
        Ok(())
    };
    let r = m
        .run_with(
            feeds,
            &RunOptions {
                transform: Some(&zero),
                ..Default::default()
            },
        )
        .unwrap();
    let o = r.outputs[0].as_f32().unwrap();
    assert_ne!(r.outputs[0], full[0]);
    assert!(max_abs_diff(&o[..10], &o[10..]) < 1e-6);
}

#[test]
fn replacing_weights_changes_output_as_expected() {
    let m = lenet();
    let (x, _) = inputs(2);
    let full = m.run(vec![x.clone()]).unwrap();
    let last = m.layers().len() - 1;
    let w = m.weights(last).unwrap().to_tensor().unwrap();
    // Same weights: same output.
    let same = m.with_weights(last, Weights::Dense(w.clone())).unwrap();
    assert_eq!(same.run(vec![x.clone()]).unwrap()[0], full[0]);
    // Zero weights in the classifier: logits = bias only, so every image gets the
    // same probabilities.
    let zeros = Tensor::zeros_f32(w.shape().to_vec());
    let z = m.with_weights(last, Weights::Dense(zeros)).unwrap();
    let out = z.run(vec![x.clone()]).unwrap();
    let o = out[0].as_f32().unwrap();
    assert!(max_abs_diff(&o[..10], &o[10..]) < 1e-7);
    assert_ne!(out[0], full[0]);
    // The original model is untouched.
    assert_eq!(m.run(vec![x]).unwrap()[0], full[0]);
    // Wrong shape is rejected.
    assert!(m
        .with_weights(last, Weights::Dense(Tensor::zeros_f32(vec![3])))
        .is_err());
}

#[derive(Debug)]
struct Scaled {
    base: Vec<f32>,
    shape: Vec<usize>,
}

impl sieve_nn::WeightSource for Scaled {
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn decode_into(&self, out: &mut [f32]) -> Result<(), sieve_nn::NnError> {
        out.iter_mut()
            .zip(&self.base)
            .for_each(|(o, b)| *o = 2.0 * b);
        Ok(())
    }
    fn stored_bytes(&self) -> usize {
        self.base.len() * 4
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

#[test]
fn encoded_weights_decode_per_run() {
    let m = lenet();
    let (x, _) = inputs(2);
    let w = m.weights(0).unwrap().to_tensor().unwrap();
    let doubled: Vec<f32> = w.as_f32().unwrap().iter().map(|v| v * 2.0).collect();
    let dense = m
        .with_weights(
            0,
            Weights::Dense(Tensor::from_f32(w.shape().to_vec(), doubled).unwrap()),
        )
        .unwrap();
    let enc = m
        .with_weights(
            0,
            Weights::Encoded(std::sync::Arc::new(Scaled {
                base: w.as_f32().unwrap().to_vec(),
                shape: w.shape().to_vec(),
            })),
        )
        .unwrap();
    let a = dense.run(vec![x.clone()]).unwrap();
    let b = enc.run(vec![x]).unwrap();
    assert_eq!(a[0], b[0]);
}

#[test]
fn concurrent_runs_agree() {
    let m = std::sync::Arc::new(lenet());
    let (x, y) = inputs(3);
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let m = m.clone();
            let x = x.clone();
            std::thread::spawn(move || m.run(vec![x]).unwrap())
        })
        .collect();
    for h in handles {
        let out = h.join().unwrap();
        assert!(max_abs_diff(out[0].as_f32().unwrap(), &y) < 1e-4);
    }
}
