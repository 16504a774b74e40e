//! Diagnosis tool: the search's fixed costs on a model, phase by phase, as `sieve design`
//! pays them before and between its evaluations (`--json` timing `baseline`,
//! `sub_batch_check`, `cache`): the original run with every activation's exponent
//! histogram (in the sub-batches of the plan, made first as in the search), the
//! sub-batch plan and its bit-identity check, and the walk of the prefix
//! cache over every layer (the cut before it, from the cut after the previous one). On
//! LIMIT validation images in batches of 50; ROUNDS times, medians. OFFSET: the model's
//! background classes (1 for the shared MobileNets), for the original's top-1 count.
//!
//! `cargo run --release -p sieve-design --example search_overheads -- MODEL.onnx DATASET LIMIT OFFSET ROUNDS`
use anyhow::Result;
use sieve_design::eval::Evaluator;
use sieve_design::search::{DEFAULT_SUB_BATCH, DEFAULT_SUB_BATCH_BYTES};
use sieve_nn::Tensor;
use std::time::Instant;

fn main() -> Result<()> {
    let a: Vec<String> = std::env::args().collect();
    let [_, model, dataset, limit, offset, rounds] = a.as_slice() else {
        anyhow::bail!("usage: MODEL DATASET LIMIT OFFSET ROUNDS");
    };
    let model = sieve_onnx::load_file(std::path::Path::new(model))?;
    let spec = sieve_design::eval::input_spec(&model)?;
    let ds = sieve_data::limit(
        sieve_data::open(
            &sieve_data::DatasetSpec::parse(dataset)?,
            sieve_data::Split::Validation,
            spec,
        )?,
        limit.parse()?,
    );
    let mut batches = vec![];
    for b in sieve_data::batches(ds.as_ref(), 50) {
        let b = b?;
        batches.push((Tensor::from_f32(b.shape.to_vec(), b.data)?, b.labels));
    }
    let layers = model.layers().to_vec();
    let ids: Vec<_> = layers.iter().map(|l| l.output).collect();
    let mut times: [Vec<f64>; 3] = Default::default();
    for _ in 0..rounds.parse::<usize>()? {
        let mut ev = Evaluator::new(&model, batches.clone(), offset.parse()?, 8000 << 20)?;
        let t = Instant::now();
        let plan = ev.enable_sub_batches(&model, DEFAULT_SUB_BATCH, DEFAULT_SUB_BATCH_BYTES)?;
        times[1].push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let (correct, _, _) = ev.baseline(&model, &ids)?;
        times[0].push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let mut prev = None;
        for k in 0..layers.len() {
            if let Some(c) = prev.take() {
                ev.set_base(c);
            }
            ev.advance(&model, k)?;
            prev = ev.cut(&model, k, true)?;
        }
        times[2].push(t.elapsed().as_secs_f64());
        println!(
            "original top-1 {correct}, plan {plan:?}: baseline {:.2} s, sub-batch check {:.2} s, cache walk {:.2} s",
            times[0].last().unwrap_or(&0.0),
            times[1].last().unwrap_or(&0.0),
            times[2].last().unwrap_or(&0.0)
        );
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let [b, c, w] = &mut times;
    println!(
        "medians: baseline {:.2} s, sub-batch check {:.2} s, cache walk {:.2} s",
        median(b),
        median(c),
        median(w)
    );
    Ok(())
}
