//! Synthetic speculative variants (packed FC + conv weights) against their reference
//! path (weights decoded to f32): identical outputs, bit for bit, at batch 1 and 3.

#![allow(clippy::unwrap_used)]

use sieve_design::synth::{synthetic_model, SynthAssignment};
use sieve_design::Variant;
use sieve_nn::Tensor;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn input(batch: usize, seed: u32) -> Tensor {
    let n = batch * 28 * 28;
    let v = (0..n)
        .map(|i| ((i as u32 ^ seed).wrapping_mul(2654435761) >> 8) as f32 / 16777216.0)
        .collect();
    Tensor::from_f32(vec![batch, 1, 28, 28], v).unwrap()
}

#[test]
fn packed_variant_equals_reference_path() {
    let path = root().join("fixtures/lenet5/model.onnx");
    for spec in ["fc=e4m3,conv=e4m3", "fc=e3m1,conv=e5m2", "fc=e6m9"] {
        let a: SynthAssignment = spec.parse().unwrap();
        let f = |l: &sieve_nn::Layer| a.for_layer(l);
        let packed = synthetic_model(
            sieve_onnx::load_file(&path).unwrap(),
            &f,
            Variant::Approximate,
            false,
        )
        .unwrap();
        let reference = synthetic_model(
            sieve_onnx::load_file(&path).unwrap(),
            &f,
            Variant::Approximate,
            true,
        )
        .unwrap();
        let original = sieve_onnx::load_file(&path).unwrap();
        // The stripped-graph builder gives the very same model.
        let bytes = std::fs::read(&path).unwrap();
        let stripped =
            sieve_design::synth::synthetic_model_from_onnx(&bytes, &f, Variant::Approximate, false)
                .unwrap();
        assert_eq!(stripped.weight_bytes(), packed.weight_bytes());
        // Packed weights really are smaller (all layers assigned except conv for fc-only).
        assert!(packed.weight_bytes() < reference.weight_bytes(), "{spec}");
        for batch in [1, 3] {
            let x = input(batch, batch as u32);
            let p = packed.run(vec![x.clone()]).unwrap();
            let r = reference.run(vec![x.clone()]).unwrap();
            let s = stripped.run(vec![x.clone()]).unwrap();
            assert_eq!(s[0].f32s().unwrap(), p[0].f32s().unwrap());
            let o = original.run(vec![x]).unwrap();
            let (p, r, o) = (
                p[0].f32s().unwrap(),
                r[0].f32s().unwrap(),
                o[0].f32s().unwrap(),
            );
            let pb: Vec<u32> = p.iter().map(|v| v.to_bits()).collect();
            let rb: Vec<u32> = r.iter().map(|v| v.to_bits()).collect();
            assert_eq!(pb, rb, "{spec} batch {batch}");
            // Quantised weights move the logits, but not wildly (sanity of the fit).
            let scale = o.iter().fold(0.0f32, |m, v| m.max(v.abs())) + 1e-3;
            let dev = p
                .iter()
                .zip(o)
                .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(dev < scale, "{spec}: deviation {dev} vs scale {scale}");
        }
    }
}
