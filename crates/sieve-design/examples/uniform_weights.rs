//! Diagnosis tool: top-1 and agreement with the original when *every* weight
//! tensor is stored in one kind of format (activations stay f32).
//!
//! `cargo run --release -p sieve-design --example uniform_weights -- MODEL.onnx DATASET SPLIT OFFSET LIMIT CONFIG...`
//! where CONFIG is `E:M` (E exponent bits, `max` = each tensor's e_max, `max+1`),
//! or `w8` (8 bits: e = e_max, m = 7 - e); a `/cs` suffix (`3:4/cs`) adds per-channel
//! power-of-two scales (`sieve_design::scales`; `e_max` then of the shifted values; the
//! shifts count 8 bits per channel).
use anyhow::{Context, Result};
use sieve_design::eval::Evaluator;
use sieve_design::scales;
use sieve_float::{quantize_slice, ExpHistogram, Format};
use sieve_nn::{Tensor, Weights};

fn main() -> Result<()> {
    let a: Vec<String> = std::env::args().collect();
    let [_, model, dataset, split, offset, limit, configs @ ..] = a.as_slice() else {
        anyhow::bail!("usage: MODEL DATASET SPLIT OFFSET LIMIT CONFIG...");
    };
    let model = sieve_onnx::load_file(std::path::Path::new(model))?;
    let spec = sieve_design::eval::input_spec(&model)?;
    let mut ds = sieve_data::open(
        &sieve_data::DatasetSpec::parse(dataset)?,
        split.parse()?,
        spec,
    )?;
    let limit: usize = limit.parse()?;
    if limit > 0 {
        ds = sieve_data::limit(ds, limit);
    }
    let mut batches = vec![];
    for b in sieve_data::batches(ds.as_ref(), 50) {
        let b = b?;
        batches.push((Tensor::from_f32(b.shape.to_vec(), b.data)?, b.labels));
    }
    let mut ev = Evaluator::new(&model, batches, offset.parse()?, 0)?;
    let (base, _, _) = ev.baseline(&model, &[])?;
    println!("original correct {base} of {}", ev.images());
    for c0 in configs {
        // `CONFIG@last`: only the last layer; `CONFIG@rest`: all but the last.
        let (c, only) = c0.split_once('@').unwrap_or((c0.as_str(), ""));
        let (c, cs) = match c.strip_suffix("/cs") {
            Some(c) => (c, true),
            None => (c, false),
        };
        let last = model.layers().len() - 1;
        let mut m2 = model.clone();
        let (mut bits, mut n) = (0f64, 0f64);
        for k in 0..model.layers().len() {
            if (only == "last" && k != last) || (only == "rest" && k == last) {
                continue;
            }
            let w = model.weights(k)?.to_tensor()?;
            let rows = w.shape().first().copied().unwrap_or(1);
            let base = if cs {
                scales::channel_shifts(w.f32s()?, rows)
            } else {
                None
            };
            let h = match &base {
                Some(b) => ExpHistogram::from_slice(&scales::histogram_values(w.f32s()?, b)),
                None => ExpHistogram::from_slice(w.f32s()?),
            };
            let (e, m) = match c.split_once(':') {
                Some((e, m)) => {
                    let e = match e {
                        "max" => h.e_max(),
                        "max+1" => h.e_max() + 1,
                        "max+2" => h.e_max() + 2,
                        "max+3" => h.e_max() + 3,
                        e => e.parse().context("E")?,
                    };
                    (e, m.parse::<u8>().context("M")?)
                }
                None => (h.e_max(), 7u8.saturating_sub(h.e_max())),
            };
            let win = h.best_window(e)?;
            let f = Format::new(true, e, m, win.bias)?;
            let v = match &base {
                Some(b) => {
                    bits += 8.0 * b.len() as f64;
                    scales::quantize_scaled(f, w.f32s()?, w.shape(), b, "w")?
                }
                None => {
                    let mut v = w.f32s()?.to_vec();
                    quantize_slice(f, &mut v);
                    v
                }
            };
            bits += f64::from(f.width()) * v.len() as f64;
            n += v.len() as f64;
            m2.set_weights(k, Weights::Dense(Tensor::from_f32(w.shape().to_vec(), v)?))?;
        }
        let s = ev.score_from_inputs(&m2, None)?;
        println!(
            "{c0}: avg weight bits {:.2}, correct {} ({:+}), agree {}",
            bits / n,
            s.correct,
            s.correct as i64 - base as i64,
            s.agree
        );
    }
    Ok(())
}
