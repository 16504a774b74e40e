//! Diagnosis tool: the sub-batch plan the search would use on a model
//! ([`sieve_design::eval::stage_plan`]) and what it costs per evaluation against `SIZE`
//! images throughout, measured side by side: ROUNDS evaluations of the network from
//! right before compute layer FROM (0: the whole network) on LIMIT validation images
//! in batches of 50, the two evaluators alternating (A B, B A, ...) on both cores.
//!
//! `cargo run --release -p sieve-design --example sub_batch_plan -- MODEL.onnx DATASET LIMIT SIZE BYTES FROM ROUNDS`
use anyhow::{ensure, Result};
use sieve_design::eval::Evaluator;
use sieve_nn::Tensor;
use std::time::Instant;

fn main() -> Result<()> {
    let a: Vec<String> = std::env::args().collect();
    let [_, model, dataset, limit, size, bytes, from, rounds] = a.as_slice() else {
        anyhow::bail!("usage: MODEL DATASET LIMIT SIZE BYTES FROM ROUNDS");
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
    let (size, bytes, from): (usize, usize, usize) = (size.parse()?, bytes.parse()?, from.parse()?);
    let mut evs = vec![];
    for (name, b) in [("by stage", bytes), ("uniform", 0)] {
        let mut ev = Evaluator::new(&model, batches.clone(), 0, usize::MAX)?;
        let t = Instant::now();
        let plan = ev.enable_sub_batches(&model, size, b)?;
        println!(
            "{name}: plan {plan:?} (first layer, images), check {:.1} s",
            t.elapsed().as_secs_f64()
        );
        ensure!(
            ev.advance(&model, from)?,
            "cut before layer {from} does not fit"
        );
        evs.push(ev);
    }
    let mut times = [vec![], vec![]];
    let mut ratios = vec![];
    for r in 0..rounds.parse::<usize>()? {
        let order = if r % 2 == 0 { [0, 1] } else { [1, 0] };
        let mut t = [0.0; 2];
        let mut scores = [None, None];
        for i in order {
            let s = Instant::now();
            scores[i] = Some(evs[i].score(&model, evs[i].base(), None, None)?);
            t[i] = s.elapsed().as_secs_f64();
            times[i].push(t[i]);
        }
        ensure!(scores[0] == scores[1], "scores differ: {scores:?}");
        ratios.push(t[0] / t[1]);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "from layer {from}: by stage {:.3} s, uniform {:.3} s (medians), by stage / uniform paired {:.3}",
        median(&mut times[0]),
        median(&mut times[1]),
        median(&mut ratios)
    );
    Ok(())
}
