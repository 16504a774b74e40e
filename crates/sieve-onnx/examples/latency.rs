//! Batch-1 (or batch-N) latency of one ONNX model on the sieve engine.
//!
//! `cargo run --release -p sieve-onnx --example latency -- MODEL.onnx [BATCH] [SECONDS] [THREADS]`
//!
//! Prints the median, min and mean wall time of `Model::run` over at least
//! SECONDS (default 3) after two warm-up runs. The input is a deterministic
//! pseudo-random pattern in 0..255 (the shared models take raw pixels).
#![allow(clippy::unwrap_used, clippy::panic)]

use sieve_nn::{Dim, Tensor};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .ok_or("usage: latency MODEL.onnx [BATCH] [SECONDS] [THREADS]")?;
    let batch: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(1);
    let secs: f64 = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(3.0);
    if let Some(t) = args.get(4) {
        sieve_nn::set_threads(t.parse()?)?;
    }
    let t0 = Instant::now();
    let model = sieve_onnx::load_file(path)?;
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let info = &model.inputs()[0];
    let shape: Vec<usize> = info
        .shape
        .iter()
        .enumerate()
        .map(|(i, d)| match d {
            Dim::Fixed(n) => *n,
            Dim::Symbolic(_) if i == 0 => batch,
            Dim::Symbolic(_) => 1,
        })
        .collect();
    let n: usize = shape.iter().product();
    let mut s = 12345u32;
    let data: Vec<f32> = (0..n)
        .map(|_| {
            s = s.wrapping_mul(1103515245).wrapping_add(12345);
            ((s >> 16) % 256) as f32
        })
        .collect();
    let x = Tensor::from_f32(shape.clone(), data)?;
    for _ in 0..2 {
        model.run(vec![x.clone()])?;
    }
    let mut times = vec![];
    let start = Instant::now();
    while times.len() < 5 || start.elapsed().as_secs_f64() < secs {
        let t = Instant::now();
        model.run(vec![x.clone()])?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    println!(
        "{path}: input {shape:?}, {} nodes, {} layers, load {load_ms:.1} ms; run median {:.3} ms, min {:.3} ms, mean {:.3} ms ({} runs)",
        model.node_count(),
        model.layers().len(),
        times[times.len() / 2],
        times[0],
        mean,
        times.len()
    );
    Ok(())
}
