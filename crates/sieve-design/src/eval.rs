//! Evaluating networks on the validation images with the prefix cache.
//!
//! The validation images are held in memory as batches. A [`Cut`] holds, per
//! batch, the values a run needs from before a layer ([`Model::live_values`]);
//! evaluating a reformatted tensor of layer `k` feeds the cut taken right before
//! (weights) or right after (activations) layer `k` and re-runs only what
//! follows. Cuts are kept only while they fit the memory budget; otherwise the
//! run starts from the last cut that did fit (at worst the model input).

use crate::runner::quantize_tensor;
use crate::DesignError;
use rayon::prelude::*;
use sieve_float::{ExpHistogram, Format};
use sieve_nn::{Model, NnError, RunOptions, Tensor, ValueId};
use std::sync::Mutex;

/// A callback applied to each computed value (e.g. to reformat one activation).
pub type Transform<'a> = &'a (dyn Fn(ValueId, &mut Tensor) -> Result<(), NnError> + Sync);

/// Cached values at a point of the network, for every batch.
#[derive(Clone, Debug)]
pub struct Cut {
    /// `(layer, after)` of the cut; `None` for the model inputs.
    pub at: Option<(usize, bool)>,
    /// The values held.
    pub ids: Vec<ValueId>,
    /// Per batch, one tensor per id.
    pub data: Vec<Vec<Tensor>>,
}

impl Cut {
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.data.iter().flatten().map(|t| t.len() * 4).sum()
    }
}

/// The result of evaluating a network on the validation images.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Score {
    /// Correct top-1 answers.
    pub correct: u64,
    /// Images whose top-1 output index equals the original model's (all of them
    /// before [`Evaluator::baseline`] has run).
    pub agree: u64,
}

impl std::iter::Sum for Score {
    fn sum<I: Iterator<Item = Score>>(iter: I) -> Score {
        iter.fold(Score::default(), |a, b| Score {
            correct: a.correct + b.correct,
            agree: a.agree + b.agree,
        })
    }
}

/// Runs networks over the validation batches and counts correct top-1 answers
/// and agreement with the original model's top-1.
pub struct Evaluator {
    labels: Vec<Vec<i64>>,
    /// Per batch, the original model's top-1 output index of each image.
    original: Vec<Vec<usize>>,
    inputs: Cut,
    base: Cut,
    offset: usize,
    budget: usize,
}

/// Index of the largest value (first on ties; NaN sorts as by `total_cmp`).
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if v.total_cmp(&row[best]).is_gt() {
            best = i;
        }
    }
    best
}

impl Evaluator {
    /// `batches`: (NCHW input, labels). `offset`: background classes before the
    /// first label (output `i` is class `i - offset`). `budget`: bytes the prefix
    /// cache may hold.
    pub fn new(
        model: &Model,
        batches: Vec<(Tensor, Vec<i64>)>,
        offset: usize,
        budget: usize,
    ) -> Result<Evaluator, DesignError> {
        let ids = model.input_ids().to_vec();
        if ids.len() != 1 {
            return Err(DesignError::Model(format!(
                "{} inputs; the search needs one image input",
                ids.len()
            )));
        }
        let (data, labels): (Vec<Vec<Tensor>>, Vec<Vec<i64>>) =
            batches.into_iter().map(|(t, l)| (vec![t], l)).unzip();
        let inputs = Cut {
            at: None,
            ids,
            data,
        };
        Ok(Evaluator {
            original: vec![],
            labels,
            base: inputs.clone(),
            inputs,
            offset,
            budget,
        })
    }

    /// Number of images.
    pub fn images(&self) -> usize {
        self.labels.iter().map(Vec::len).sum()
    }

    /// The cut runs currently start from.
    pub fn base(&self) -> &Cut {
        &self.base
    }

    fn predictions(out: &Tensor, n: usize) -> Result<Vec<usize>, DesignError> {
        let d = out.f32s()?;
        if n == 0 || d.len() % n != 0 {
            return Err(DesignError::Model(format!(
                "output shape {:?} does not fit a batch of {n}",
                out.shape()
            )));
        }
        Ok(d.chunks_exact(d.len() / n).map(argmax).collect())
    }

    fn count(&self, out: &Tensor, batch: usize) -> Result<Score, DesignError> {
        let labels = &self.labels[batch];
        let pred = Self::predictions(out, labels.len())?;
        let correct = pred
            .iter()
            .zip(labels)
            .filter(|(&p, &l)| {
                p.checked_sub(self.offset)
                    .and_then(|p| i64::try_from(p).ok())
                    == Some(l)
            })
            .count() as u64;
        let agree = match self.original.get(batch) {
            Some(o) => pred.iter().zip(o).filter(|(a, b)| a == b).count() as u64,
            None => pred.len() as u64,
        };
        Ok(Score { correct, agree })
    }

    /// Correct answers of `model` run from `cut`, with `replace` (a fed value
    /// quantised to a format) and `transform` (applied to computed values).
    pub fn score(
        &self,
        model: &Model,
        cut: &Cut,
        replace: Option<(ValueId, Format)>,
        transform: Option<Transform<'_>>,
    ) -> Result<Score, DesignError> {
        let counts: Vec<Result<Score, DesignError>> = cut
            .data
            .par_iter()
            .enumerate()
            .map(|(b, vals)| {
                let mut feeds: Vec<(ValueId, Tensor)> =
                    cut.ids.iter().copied().zip(vals.iter().cloned()).collect();
                if let Some((id, fmt)) = replace {
                    for (v, t) in &mut feeds {
                        if *v == id {
                            quantize_tensor(fmt, t);
                        }
                    }
                }
                let opts = RunOptions {
                    transform,
                    ..Default::default()
                };
                let r = model.run_with(feeds, &opts)?;
                let out = r
                    .outputs
                    .first()
                    .ok_or_else(|| DesignError::Model("no output".into()))?;
                self.count(out, b)
            })
            .collect();
        counts.into_iter().sum()
    }

    /// Correct answers of `model` from the model inputs.
    pub fn score_from_inputs(
        &self,
        model: &Model,
        transform: Option<Transform<'_>>,
    ) -> Result<Score, DesignError> {
        self.score(model, &self.inputs, None, transform)
    }

    /// Runs the original model once: correct answers, the exponent histogram of
    /// each value in `ids`, and each one's element count per image. Records the
    /// original's top-1 per image, against which later scores count agreement.
    pub fn baseline(
        &mut self,
        model: &Model,
        ids: &[ValueId],
    ) -> Result<(u64, Vec<ExpHistogram>, Vec<u64>), DesignError> {
        let hists: Mutex<Vec<ExpHistogram>> = Mutex::new(vec![ExpHistogram::new(); ids.len()]);
        let sizes: Mutex<Vec<u64>> = Mutex::new(vec![0; ids.len()]);
        let visit = |id: ValueId, t: &Tensor| {
            if let (Some(i), Some(d)) = (ids.iter().position(|&v| v == id), t.as_f32()) {
                let h = ExpHistogram::from_slice(d);
                if let Ok(mut hs) = hists.lock() {
                    hs[i].merge(&h);
                }
                if let (Ok(mut s), Some(&n)) = (sizes.lock(), t.shape().first()) {
                    s[i] = (d.len() / n.max(1)) as u64;
                }
            }
        };
        let counts: Vec<Result<(Score, Vec<usize>), DesignError>> = self
            .inputs
            .data
            .par_iter()
            .enumerate()
            .map(|(b, vals)| {
                let feeds = self
                    .inputs
                    .ids
                    .iter()
                    .copied()
                    .zip(vals.iter().cloned())
                    .collect();
                let opts = RunOptions {
                    visit: Some(&visit),
                    ..Default::default()
                };
                let r = model.run_with(feeds, &opts)?;
                let out = r
                    .outputs
                    .first()
                    .ok_or_else(|| DesignError::Model("no output".into()))?;
                Ok((
                    self.count(out, b)?,
                    Self::predictions(out, self.labels[b].len())?,
                ))
            })
            .collect();
        let mut correct = 0;
        let mut original = vec![];
        for c in counts {
            let (s, p) = c?;
            correct += s.correct;
            original.push(p);
        }
        self.original = original;
        let hists = hists
            .into_inner()
            .map_err(|_| DesignError::Model("histogram lock poisoned".into()))?;
        let sizes = sizes
            .into_inner()
            .map_err(|_| DesignError::Model("size lock poisoned".into()))?;
        Ok((correct, hists, sizes))
    }

    /// The cut at `(layer, after)` computed from the current base, or `None` if it
    /// would exceed the memory budget.
    pub fn cut(
        &self,
        model: &Model,
        layer: usize,
        after: bool,
    ) -> Result<Option<Cut>, DesignError> {
        let ids = model.live_values(layer, after)?;
        let run = |vals: &Vec<Tensor>| -> Result<Vec<Tensor>, DesignError> {
            let feeds = self
                .base
                .ids
                .iter()
                .copied()
                .zip(vals.iter().cloned())
                .collect();
            let opts = RunOptions {
                targets: Some(ids.clone()),
                ..Default::default()
            };
            Ok(model.run_with(feeds, &opts)?.outputs)
        };
        let Some(first) = self.base.data.first() else {
            return Ok(Some(Cut {
                at: Some((layer, after)),
                ids,
                data: vec![],
            }));
        };
        let d0 = run(first)?;
        let per: usize = d0.iter().map(|t| t.len() * 4).sum();
        if per.saturating_mul(self.base.data.len()) > self.budget {
            return Ok(None);
        }
        let rest: Vec<Result<Vec<Tensor>, DesignError>> =
            self.base.data[1..].par_iter().map(run).collect();
        let mut data = vec![d0];
        for r in rest {
            data.push(r?);
        }
        Ok(Some(Cut {
            at: Some((layer, after)),
            ids,
            data,
        }))
    }

    /// Moves the base to right before `layer` if that cut fits the budget
    /// (otherwise keeps the current base). Returns whether it moved.
    pub fn advance(&mut self, model: &Model, layer: usize) -> Result<bool, DesignError> {
        if self.base.at == Some((layer, false)) {
            return Ok(true);
        }
        match self.cut(model, layer, false)? {
            Some(c) => {
                self.base = c;
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

/// Top-1 of a runnable network on a dataset split: `run` maps an NCHW batch to
/// the model outputs (the first is scored). `offset`: background classes.
pub fn top1(
    run: &(dyn Fn(Tensor) -> Result<Vec<Tensor>, DesignError> + Sync),
    input: sieve_data::InputSpec,
    dataset: &str,
    split: sieve_data::Split,
    limit: Option<usize>,
    batch: usize,
    offset: usize,
) -> Result<crate::meta::Accuracy, DesignError> {
    let spec = sieve_data::DatasetSpec::parse(dataset)?;
    let mut ds = sieve_data::open(&spec, split, input)?;
    if let Some(n) = limit {
        ds = sieve_data::limit(ds, n);
    }
    let n = ds.len();
    let ranges: Vec<(usize, usize)> = (0..n)
        .step_by(batch.max(1))
        .map(|s| (s, (s + batch.max(1)).min(n)))
        .collect();
    let counts: Vec<Result<u64, DesignError>> = ranges
        .par_iter()
        .map(|&(s, e)| {
            let b = ds.read_range(s, e)?;
            let out = run(Tensor::from_f32(b.shape.to_vec(), b.data)?)?;
            let out = out
                .first()
                .ok_or_else(|| DesignError::Model("no output".into()))?;
            let d = out.f32s()?;
            let k = b.labels.len();
            if k == 0 || d.len() % k != 0 {
                return Err(DesignError::Model(format!(
                    "output shape {:?} does not fit a batch of {k}",
                    out.shape()
                )));
            }
            Ok(d.chunks_exact(d.len() / k)
                .zip(&b.labels)
                .filter(|(row, &l)| {
                    argmax(row)
                        .checked_sub(offset)
                        .and_then(|p| i64::try_from(p).ok())
                        == Some(l)
                })
                .count() as u64)
        })
        .collect();
    let correct = counts.into_iter().sum::<Result<u64, _>>()?;
    Ok(crate::meta::Accuracy {
        correct,
        images: n as u64,
        top1: if n == 0 {
            0.0
        } else {
            correct as f64 / n as f64
        },
    })
}

/// The `[C, H, W]` of a model's single image input.
pub fn input_spec(model: &Model) -> Result<sieve_data::InputSpec, DesignError> {
    let input = model
        .inputs()
        .first()
        .ok_or_else(|| DesignError::Model("no inputs".into()))?;
    match input.shape.as_slice() {
        [_, sieve_nn::Dim::Fixed(c), sieve_nn::Dim::Fixed(h), sieve_nn::Dim::Fixed(w)] => {
            Ok(sieve_data::InputSpec {
                channels: *c,
                h: *h,
                w: *w,
            })
        }
        s => Err(DesignError::Model(format!(
            "input '{}' has shape {s:?}; expected N x C x H x W",
            input.name
        ))),
    }
}
