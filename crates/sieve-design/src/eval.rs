//! Evaluating networks on the validation images with the prefix cache.
//!
//! The validation images are held in memory as batches. A [`Cut`] holds, per
//! batch, the values a run needs from before a layer ([`Model::live_values`]);
//! evaluating a reformatted tensor of layer `k` feeds the cut taken right before
//! (weights) or right after (activations) layer `k` and re-runs only what
//! follows. Cuts are kept only while they fit the memory budget; otherwise the
//! run starts from the last cut that did fit (at worst the model input).
//!
//! Sub-batches ([`Evaluator::enable_sub_batches`]): the convolutional part of a run
//! (up to the first compute layer that is not a `Conv`) goes through the network a few
//! images at a time, which keeps a layer's input and output in the caches (MobileNet
//! v2, one thread: 4 images at a time ~15% faster than 50); the values where the
//! convolutions end are then joined into the whole batch for the rest. Results are
//! unchanged only if every value up to there is the same, bit for bit, whatever the
//! batch (fully-connected kernels are not, nor MobileNet v2's 1x1 logits convolution
//! for some sub-batch sizes: their blocking spans the images), so the evaluator checks
//! that for the sizes it will use and stays on whole batches if not.

use crate::runner::quantize_tensor;
use crate::DesignError;
use rayon::prelude::*;
use sieve_float::{ExpHistogram, Format};
use sieve_nn::{Model, NnError, RunOptions, Tensor, ValueId};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
    /// Per batch, its pieces (one: the whole batch; several: its sub-batches in
    /// order, see [`Evaluator::enable_sub_batches`]), each one tensor per id.
    pub data: Vec<Vec<Vec<Tensor>>>,
}

impl Cut {
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.data
            .iter()
            .flatten()
            .flatten()
            .map(|t| t.len() * 4)
            .sum()
    }
}

/// The whole batch from its pieces (joined along axis 0 if there are several).
fn whole(pieces: &[Vec<Tensor>]) -> Result<Vec<Tensor>, DesignError> {
    match pieces {
        [one] => Ok(one.clone()),
        _ => join_images(pieces),
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

/// The least score an evaluation has to reach to matter: with one, an evaluation stops
/// as soon as it can no longer reach it ([`Evaluator::score_until`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Need {
    /// Correct answers.
    pub correct: u64,
    /// Answers equal to the original model's (0: no requirement).
    pub agree: u64,
}

impl Need {
    /// Whether `score` reaches this.
    pub fn met_by(&self, score: Score) -> bool {
        score.correct >= self.correct && score.agree >= self.agree
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
    sub: Option<SubBatches>,
}

/// Where and how runs are split into sub-batches (see the module docs).
#[derive(Clone, Debug)]
struct SubBatches {
    /// Images per sub-batch.
    size: usize,
    /// The join: right before this layer (the first compute layer that is not a `Conv`,
    /// or the number of layers: the whole run is split).
    join: usize,
    /// The values live at the join ([`Model::live_values`]; the model outputs when the
    /// whole run is split).
    ids: Vec<ValueId>,
}

/// Cut positions in run order: `None` (the inputs) first, then `(layer, after)`.
fn position(at: Option<(usize, bool)>) -> (usize, usize) {
    match at {
        None => (0, 0),
        Some((l, a)) => (1 + 2 * l + usize::from(a), 1),
    }
}

/// The `n`-image slice `[start, start + n)` of a batch tensor (images along axis 0).
fn slice_images(t: &Tensor, start: usize, n: usize) -> Result<Tensor, DesignError> {
    let d = t.f32s()?;
    let images = t.shape().first().copied().unwrap_or(0);
    if images == 0 || d.len() % images != 0 || start + n > images {
        return Err(DesignError::Model(format!(
            "cannot take images {start}..{} of a value of shape {:?}",
            start + n,
            t.shape()
        )));
    }
    let per = d.len() / images;
    let mut shape = t.shape().to_vec();
    shape[0] = n;
    Ok(Tensor::from_f32(
        shape,
        d[start * per..(start + n) * per].to_vec(),
    )?)
}

/// A batch's values (one tensor per id, images along axis 0) in sub-batches of `size`.
fn split_images(vals: &[Tensor], size: usize) -> Result<Vec<Vec<Tensor>>, DesignError> {
    let images = vals
        .first()
        .and_then(|t| t.shape().first().copied())
        .unwrap_or(0);
    let mut out = vec![];
    for start in (0..images).step_by(size.max(1)) {
        let k = size.max(1).min(images - start);
        out.push(
            vals.iter()
                .map(|t| slice_images(t, start, k))
                .collect::<Result<Vec<_>, _>>()?,
        );
    }
    Ok(out)
}

/// Joins per-sub-batch values (each a list, one tensor per value) along axis 0.
fn join_images(parts: &[Vec<Tensor>]) -> Result<Vec<Tensor>, DesignError> {
    let Some(first) = parts.first() else {
        return Ok(vec![]);
    };
    let mut out = vec![];
    for (v, f) in first.iter().enumerate() {
        let mut shape = f.shape().to_vec();
        let mut data =
            Vec::with_capacity(parts.iter().filter_map(|p| p.get(v)).map(Tensor::len).sum());
        let mut images = 0;
        for p in parts {
            let t = p
                .get(v)
                .ok_or_else(|| DesignError::Model("sub-batch lost a value".into()))?;
            if t.shape().get(1..) != shape.get(1..) {
                return Err(DesignError::Model(format!(
                    "sub-batch values of shapes {:?} and {:?} do not join",
                    shape,
                    t.shape()
                )));
            }
            images += t.shape().first().copied().unwrap_or(0);
            data.extend_from_slice(t.f32s()?);
        }
        if let Some(n) = shape.first_mut() {
            *n = images;
        }
        out.push(Tensor::from_f32(shape, data)?);
    }
    Ok(out)
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
        let (data, labels): (Vec<Vec<Vec<Tensor>>>, Vec<Vec<i64>>) =
            batches.into_iter().map(|(t, l)| (vec![vec![t]], l)).unzip();
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
            sub: None,
        })
    }

    /// Splits the convolutional part of later runs into sub-batches of `size` images
    /// (see the module docs) if that gives the same values, bit for bit, as whole
    /// batches: checked for every layer output up to the join and the values at the
    /// join, on the first batch of every batch length in use (each
    /// length splits into its own sub-batch sizes). Returns whether sub-batches are on.
    /// `size` 0, a first batch of at most `size` images, or values without the batch
    /// along axis 0: off.
    pub fn enable_sub_batches(&mut self, model: &Model, size: usize) -> Result<bool, DesignError> {
        self.sub = None;
        let n = self.labels.first().map_or(0, Vec::len);
        if size == 0 || n <= size {
            return Ok(false);
        }
        let layers = model.layers();
        let join = layers
            .iter()
            .position(|l| l.op != "Conv")
            .unwrap_or(layers.len());
        if join == 0 {
            return Ok(false);
        }
        let ids = if join < layers.len() {
            model.live_values(join, false)?
        } else {
            model.output_ids().to_vec()
        };
        let keep: Vec<ValueId> = layers[..join].iter().map(|l| l.output).collect();
        let run = |vals: Vec<Tensor>| -> Result<Vec<Tensor>, DesignError> {
            let feeds = self.inputs.ids.iter().copied().zip(vals).collect();
            let opts = RunOptions {
                targets: Some(ids.clone()),
                keep: keep.clone(),
                ..Default::default()
            };
            let r = model.run_with(feeds, &opts)?;
            Ok(r.outputs.into_iter().chain(r.kept).collect())
        };
        // Every batch length in use (normally the batch size and a shorter last batch)
        // splits into its own sub-batch sizes: check the first batch of each length.
        let mut checked: Vec<usize> = vec![];
        let mut same = true;
        for (b, pieces) in self.inputs.data.iter().enumerate() {
            let n = self.labels[b].len();
            if n <= size || checked.contains(&n) {
                continue;
            }
            checked.push(n);
            let vals = whole(pieces)?;
            let all = run(vals.clone())?;
            if all
                .iter()
                .any(|t| t.shape().first() != Some(&n) || t.as_f32().is_none())
            {
                same = false;
                break;
            }
            let mut parts = vec![];
            for v in split_images(&vals, size)? {
                parts.push(run(v)?);
            }
            let split = join_images(&parts)?;
            same = all.len() == split.len()
                && all.iter().zip(&split).all(|(a, b)| {
                    a.shape() == b.shape()
                        && a.f32s().ok().zip(b.f32s().ok()).is_some_and(|(x, y)| {
                            x.iter()
                                .map(|v| v.to_bits())
                                .eq(y.iter().map(|v| v.to_bits()))
                        })
                });
            if !same {
                break;
            }
        }
        if same {
            self.sub = Some(SubBatches { size, join, ids });
            // Keep the images in sub-batches: runs then feed them without a copy.
            for b in &mut self.inputs.data {
                if let [one] = b.as_slice() {
                    *b = split_images(one, size)?;
                }
            }
            if self.base.at.is_none() {
                self.base = self.inputs.clone();
            }
        }
        Ok(same)
    }

    /// Whether runs are split into sub-batches ([`Evaluator::enable_sub_batches`]).
    pub fn sub_batches(&self) -> bool {
        self.sub.is_some()
    }

    /// Runs `model` on one batch (its pieces) fed at `ids` (cut position `from`) up to
    /// `targets` (`None`: the model outputs; with their position), quantising a fed
    /// value (`replace`) and applying `transform` to computed values: in sub-batches up
    /// to the join when that lies after `from`, else whole. Returns the result's pieces:
    /// the sub-batches when `targets` lie at or before the join, else one (the batch).
    #[allow(clippy::too_many_arguments)]
    fn run_batch(
        &self,
        model: &Model,
        from: Option<(usize, bool)>,
        ids: &[ValueId],
        pieces: &[Vec<Tensor>],
        replace: Option<(ValueId, Format)>,
        transform: Option<Transform<'_>>,
        targets: Option<(&[ValueId], (usize, bool))>,
    ) -> Result<Vec<Vec<Tensor>>, DesignError> {
        let run = |vals: Vec<Tensor>, targets: Option<Vec<ValueId>>| {
            let mut feeds: Vec<(ValueId, Tensor)> = ids.iter().copied().zip(vals).collect();
            if let Some((id, fmt)) = replace {
                for (v, t) in &mut feeds {
                    if *v == id {
                        quantize_tensor(fmt, t);
                    }
                }
            }
            let opts = RunOptions {
                targets,
                transform,
                ..Default::default()
            };
            Ok::<_, DesignError>(model.run_with(feeds, &opts)?.outputs)
        };
        let sub = self.sub.as_ref().filter(|s| {
            position(from) < position(Some((s.join, false)))
                && pieces.iter().flatten().all(|t| t.as_f32().is_some())
        });
        let Some(sub) = sub else {
            return Ok(vec![run(whole(pieces)?, targets.map(|(t, _)| t.to_vec()))?]);
        };
        // Up to the join, or to the targets if they come first.
        let (first_targets, done) = match targets {
            Some((t, to)) if position(Some(to)) <= position(Some((sub.join, false))) => {
                (t.to_vec(), true)
            }
            _ => (sub.ids.clone(), sub.join == model.layers().len()),
        };
        let split = match pieces {
            [one] => split_images(one, sub.size)?,
            _ => pieces.to_vec(),
        };
        let mut parts = vec![];
        for vals in split {
            parts.push(run(vals, Some(first_targets.clone()))?);
        }
        if done && targets.is_some() {
            return Ok(parts);
        }
        let joined = join_images(&parts)?;
        if done {
            return Ok(vec![joined]);
        }
        let feeds = sub.ids.iter().copied().zip(joined).collect();
        let opts = RunOptions {
            targets: targets.map(|(t, _)| t.to_vec()),
            transform,
            ..Default::default()
        };
        Ok(vec![model.run_with(feeds, &opts)?.outputs])
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
                let outputs =
                    self.run_batch(model, cut.at, &cut.ids, vals, replace, transform, None)?;
                let out = outputs
                    .first()
                    .and_then(|p| p.first())
                    .ok_or_else(|| DesignError::Model("no output".into()))?;
                self.count(out, b)
            })
            .collect();
        counts.into_iter().sum()
    }

    /// [`Evaluator::score`], stopping as soon as the score can no longer reach `need`
    /// (more images wrong, or disagreeing with the original, than `need` allows): `None`
    /// then, and whenever the whole score falls short, so the outcome does not depend on
    /// when the stop came (threads, batch order); `Some(score)` iff it reaches `need`.
    /// Without a need: the whole score.
    pub fn score_until(
        &self,
        model: &Model,
        cut: &Cut,
        replace: Option<(ValueId, Format)>,
        transform: Option<Transform<'_>>,
        need: Option<Need>,
    ) -> Result<Option<Score>, DesignError> {
        let Some(need) = need else {
            return self.score(model, cut, replace, transform).map(Some);
        };
        let images = self.images() as u64;
        // Most images that may be wrong / disagree and still reach `need`.
        let (Some(wrong_max), Some(differ_max)) = (
            images.checked_sub(need.correct),
            images.checked_sub(need.agree),
        ) else {
            return Ok(None);
        };
        let wrong = AtomicU64::new(0);
        let differ = AtomicU64::new(0);
        let stop = AtomicBool::new(false);
        let counts: Vec<Result<Option<Score>, DesignError>> = cut
            .data
            .par_iter()
            .enumerate()
            .map(|(b, vals)| {
                if stop.load(Ordering::Relaxed) {
                    return Ok(None);
                }
                let outputs =
                    self.run_batch(model, cut.at, &cut.ids, vals, replace, transform, None)?;
                let out = outputs
                    .first()
                    .and_then(|p| p.first())
                    .ok_or_else(|| DesignError::Model("no output".into()))?;
                let sc = self.count(out, b)?;
                let n = self.labels[b].len() as u64;
                let w = wrong.fetch_add(n - sc.correct.min(n), Ordering::Relaxed) + n
                    - sc.correct.min(n);
                let d =
                    differ.fetch_add(n - sc.agree.min(n), Ordering::Relaxed) + n - sc.agree.min(n);
                if w > wrong_max || d > differ_max {
                    stop.store(true, Ordering::Relaxed);
                }
                Ok(Some(sc))
            })
            .collect();
        let mut total = Score::default();
        for c in counts {
            match c? {
                Some(sc) => total = [total, sc].into_iter().sum(),
                None => return Ok(None),
            }
        }
        Ok(Some(total).filter(|sc| need.met_by(*sc)))
    }

    /// [`Evaluator::score_until`] from the model inputs.
    pub fn score_from_inputs_until(
        &self,
        model: &Model,
        transform: Option<Transform<'_>>,
        need: Option<Need>,
    ) -> Result<Option<Score>, DesignError> {
        self.score_until(model, &self.inputs, None, transform, need)
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
                let feeds = self.inputs.ids.iter().copied().zip(whole(vals)?).collect();
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
        let run = |vals: &Vec<Vec<Tensor>>| -> Result<Vec<Vec<Tensor>>, DesignError> {
            self.run_batch(
                model,
                self.base.at,
                &self.base.ids,
                vals,
                None,
                None,
                Some((&ids, (layer, after))),
            )
        };
        let Some(first) = self.base.data.first() else {
            return Ok(Some(Cut {
                at: Some((layer, after)),
                ids,
                data: vec![],
            }));
        };
        let d0 = run(first)?;
        let per: usize = d0.iter().flatten().map(|t| t.len() * 4).sum();
        if per.saturating_mul(self.base.data.len()) > self.budget {
            return Ok(None);
        }
        let rest: Vec<Result<Vec<Vec<Tensor>>, DesignError>> =
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
