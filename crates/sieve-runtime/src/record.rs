//! Running a network over a dataset once and keeping, per input, the predicted
//! output and the confidence ([`Prediction`]) — everything the detector's
//! calibration and the offline speculation need, so no model runs twice.

use crate::detector::Record;
use crate::{Prediction, RuntimeError, Scores};
use rayon::prelude::*;
use sieve_data::Dataset;
use sieve_nn::Tensor;

/// A network as a function from an NCHW batch to its outputs (the first is read).
pub type RunFn<'a> = &'a (dyn Fn(Tensor) -> Result<Vec<Tensor>, RuntimeError> + Sync);

/// One network's predictions over a dataset, in dataset order.
#[derive(Clone, Debug, PartialEq)]
pub struct Recorded {
    /// Which network (`original`, `accurate`, ...), for messages.
    pub name: String,
    /// Per input.
    pub predictions: Vec<Prediction>,
    /// The dataset labels, per input.
    pub labels: Vec<i64>,
}

/// Runs `run` over every item of `dataset` in batches of `batch` (batches in
/// parallel on the rayon pool), reading each output row with `scores`.
/// `progress(n)` is called after each batch of `n` items. Labels are checked
/// against the model's classes before a batch runs (a label outside them is
/// [`RuntimeError::Label`]); an output that does not have one row of
/// `scores.num_classes` values per item is [`RuntimeError::Output`].
pub fn record(
    name: &str,
    run: RunFn<'_>,
    dataset: &dyn Dataset,
    batch: usize,
    scores: &Scores,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Recorded, RuntimeError> {
    let n = dataset.len();
    if n == 0 {
        return Err(RuntimeError::Empty(format!(
            "dataset {} has no items",
            dataset.describe()
        )));
    }
    let b = batch.max(1);
    let ranges: Vec<(usize, usize)> = (0..n).step_by(b).map(|s| (s, (s + b).min(n))).collect();
    type Part = Result<(Vec<Prediction>, Vec<i64>), RuntimeError>;
    let parts: Vec<Part> = ranges
        .par_iter()
        .map(|&(s, e)| {
            let data = dataset.read_range(s, e)?;
            for (i, &l) in data.labels.iter().enumerate() {
                scores.check_label(s + i, l)?;
            }
            let k = data.labels.len();
            let outs = run(Tensor::from_f32(data.shape.to_vec(), data.data)?)?;
            let out = outs.first().ok_or_else(|| RuntimeError::Output {
                model: name.to_string(),
                msg: "no output".into(),
            })?;
            let vals = out.f32s()?;
            if vals.len() != k * scores.num_classes {
                return Err(RuntimeError::Output {
                    model: name.to_string(),
                    msg: format!(
                        "shape {:?} for a batch of {k}; the output contract says {} classes",
                        out.shape(),
                        scores.num_classes
                    ),
                });
            }
            let preds = vals
                .chunks_exact(scores.num_classes)
                .map(|row| scores.predict(row))
                .collect::<Result<Vec<_>, _>>()?;
            progress(k as u64);
            Ok((preds, data.labels))
        })
        .collect();
    let mut predictions = Vec::with_capacity(n);
    let mut labels = Vec::with_capacity(n);
    for p in parts {
        let (a, b) = p?;
        predictions.extend(a);
        labels.extend(b);
    }
    Ok(Recorded {
        name: name.to_string(),
        predictions,
        labels,
    })
}

/// Per input, the speculative confidence and whether the speculative and the
/// original answers are right. Both runs must cover the same inputs (same
/// length and labels).
pub fn records(
    speculative: &Recorded,
    original: &Recorded,
    scores: &Scores,
) -> Result<Vec<Record>, RuntimeError> {
    if speculative.labels != original.labels {
        return Err(RuntimeError::Mismatch(format!(
            "{} covers {} inputs, {} covers {} (or their labels differ)",
            speculative.name,
            speculative.labels.len(),
            original.name,
            original.labels.len()
        )));
    }
    Ok(speculative
        .predictions
        .iter()
        .zip(&original.predictions)
        .zip(&speculative.labels)
        .map(|((s, o), &l)| Record {
            confidence: s.confidence,
            speculative_correct: scores.is_correct(*s, l),
            original_correct: scores.is_correct(*o, l),
        })
        .collect())
}
