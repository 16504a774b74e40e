//! Runs a single-input model on an `.npy` input (f32 or integer, cast to f32) and
//! writes the first output as an f32 `.npy`, for ad-hoc comparisons with other
//! engines.
//!
//! `cargo run --release -p sieve-onnx --example run_npy -- MODEL.onnx IN.npy OUT.npy`
#![allow(clippy::unwrap_used, clippy::panic)]

use sieve_nn::Tensor;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        return Err("usage: run_npy MODEL.onnx IN.npy OUT.npy".into());
    }
    let model = sieve_onnx::load_file(&args[1])?;
    let x = sieve_data::npy::read_npy(&args[2])?;
    let t = Tensor::from_f32(x.shape.clone(), x.to_f32_vec())?;
    let y = model.run(vec![t])?;
    let out = y.first().ok_or("model has no output")?;
    sieve_data::npy::write_npy_f32(&args[3], out.shape(), out.f32s()?)?;
    println!("{}: {:?} -> {:?}", args[1], x.shape, out.shape());
    Ok(())
}
