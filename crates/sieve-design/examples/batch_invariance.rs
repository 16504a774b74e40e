//! Diagnosis tool: checks that a model's per-image results do not depend on the batch
//! they run in (every compute layer's output, bit for bit), for the search's sub-batching.
//!
//! `cargo run --release -p sieve-design --example batch_invariance -- MODEL.onnx DATASET LIMIT SIZE...`
use anyhow::{Context, Result};
use sieve_nn::{RunOptions, Tensor};

fn main() -> Result<()> {
    let a: Vec<String> = std::env::args().collect();
    let [_, model, dataset, limit, sizes @ ..] = a.as_slice() else {
        anyhow::bail!("usage: MODEL DATASET LIMIT SIZE...");
    };
    let model = sieve_onnx::load_file(std::path::Path::new(model))?;
    let spec = sieve_design::eval::input_spec(&model)?;
    let ds = sieve_data::open(
        &sieve_data::DatasetSpec::parse(dataset)?,
        sieve_data::Split::Validation,
        spec,
    )?;
    let n: usize = limit.parse()?;
    let b = ds.read_range(0, n)?;
    let per = b.data.len() / n;
    let keep: Vec<_> = model.layers().iter().map(|l| l.output).collect();
    let run = |s: usize, e: usize| -> Result<Vec<Vec<f32>>> {
        let mut shape = b.shape.to_vec();
        shape[0] = e - s;
        let t = Tensor::from_f32(shape, b.data[s * per..e * per].to_vec())?;
        let opts = RunOptions {
            keep: keep.clone(),
            ..Default::default()
        };
        let r = model.run_with(vec![(model.input_ids()[0], t)], &opts)?;
        r.outputs
            .iter()
            .chain(&r.kept)
            .map(|t| Ok(t.f32s()?.to_vec()))
            .collect()
    };
    let whole = run(0, n)?;
    for s in sizes {
        let s: usize = s.parse().context("size")?;
        let mut parts: Vec<Vec<f32>> = vec![vec![]; whole.len()];
        for start in (0..n).step_by(s) {
            for (p, v) in parts.iter_mut().zip(run(start, (start + s).min(n))?) {
                p.extend(v);
            }
        }
        let diff: Vec<usize> = whole
            .iter()
            .zip(&parts)
            .enumerate()
            .filter(|(_, (w, p))| {
                w.len() != p.len()
                    || w.iter()
                        .zip(p.iter())
                        .any(|(x, y)| x.to_bits() != y.to_bits())
            })
            .map(|(i, _)| i)
            .collect();
        println!(
            "sub-batch {s}: {} of {} values differ: {diff:?}",
            diff.len(),
            whole.len()
        );
    }
    Ok(())
}
