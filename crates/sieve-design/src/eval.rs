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
//! convolutions end are then joined into the whole batch for the rest. The number of
//! images can differ by stage ([`stage_plan`]): fewer where maps are large (1 image
//! at MobileNet v2's 112x112 and 56x56), more where they are small and a layer's
//! weights are reused over more pixels (8 at 7x7); runs re-split their pieces where a
//! stage starts. Results are
//! unchanged only if every value up to there is the same, bit for bit, whatever the
//! batch (fully-connected kernels are not, nor MobileNet v2's 1x1 logits convolution
//! for some sub-batch sizes: their blocking spans the images), so the evaluator checks
//! that for the sizes it will use and stays on whole batches if not.

use crate::runner::quantize_tensor;
use crate::DesignError;
use rayon::prelude::*;
use sieve_float::{ExpHistogram, Format};
use sieve_nn::{Model, NnError, RunOptions, Tensor, ValueId, VisitFn};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
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
    /// Per batch, the original model's top-1 margin of each image (largest output minus
    /// the next; [`Evaluator::fragile_first`]).
    margins: Vec<Vec<f32>>,
    /// Images run by evaluations so far (stopped evaluations count what they ran).
    images_run: AtomicU64,
    inputs: Cut,
    base: Cut,
    offset: usize,
    budget: usize,
    sub: Option<SubBatches>,
}

/// Where and how runs are split into sub-batches (see the module docs).
#[derive(Clone, Debug)]
struct SubBatches {
    /// Stages in run order: (first layer, images per sub-batch); the first starts at
    /// layer 0 and the last ends at the join.
    stages: Vec<(usize, usize)>,
    /// Per stage, the values live at its end (the next stage's first layer; the last
    /// stage: `ids`).
    ends: Vec<Vec<ValueId>>,
    /// The join: right before this layer (the first compute layer that is not a `Conv`,
    /// or the number of layers: the whole run is split).
    join: usize,
    /// The values live at the join ([`Model::live_values`]; the model outputs when the
    /// whole run is split).
    ids: Vec<ValueId>,
}

/// A whole batch's inputs and the values kept from its run, by id.
type WholeRun = (Vec<Tensor>, Vec<(ValueId, Tensor)>);

/// The layer a run from cut position `at` starts with (`after` a layer: the next one).
fn first_layer(at: Option<(usize, bool)>) -> usize {
    match at {
        None => 0,
        Some((l, after)) => l + usize::from(after),
    }
}

/// Images along axis 0 of a piece (its first value).
fn piece_images(p: &[Tensor]) -> usize {
    p.first()
        .and_then(|t| t.shape().first().copied())
        .unwrap_or(0)
}

/// `pieces` (consecutive images) as sub-batches of `size` from the first image on:
/// as they are if they already are, else regrouped with one copy of each image.
fn resplit(pieces: Vec<Vec<Tensor>>, size: usize) -> Result<Vec<Vec<Tensor>>, DesignError> {
    let k = pieces.len();
    let counts: Vec<usize> = pieces.iter().map(|p| piece_images(p)).collect();
    let fits = counts.iter().enumerate().all(|(i, &n)| {
        if i + 1 < k {
            n == size
        } else {
            n > 0 && n <= size
        }
    });
    if fits {
        return Ok(pieces);
    }
    if let [one] = pieces.as_slice() {
        return split_images(one, size);
    }
    let images: usize = counts.iter().sum();
    let values = pieces.first().map_or(0, Vec::len);
    let mut out = vec![];
    // (piece, image within it) where the next sub-batch starts.
    let (mut p, mut at) = (0usize, 0usize);
    for start in (0..images).step_by(size.max(1)) {
        let n = size.max(1).min(images - start);
        let mut sub: Vec<(Vec<usize>, Vec<f32>)> = (0..values)
            .map(|v| {
                let t = &pieces[0][v];
                let per = t.len() / counts[0].max(1);
                let mut shape = t.shape().to_vec();
                if let Some(d) = shape.first_mut() {
                    *d = n;
                }
                (shape, Vec::with_capacity(n * per))
            })
            .collect();
        let mut left = n;
        while left > 0 {
            let piece = pieces
                .get(p)
                .ok_or_else(|| DesignError::Model("sub-batches lost images".into()))?;
            let take = left.min(counts[p] - at);
            for (v, (_, data)) in sub.iter_mut().enumerate() {
                let t = piece
                    .get(v)
                    .ok_or_else(|| DesignError::Model("sub-batch lost a value".into()))?;
                let d = t.f32s()?;
                let per = d.len() / counts[p].max(1);
                data.extend_from_slice(&d[at * per..(at + take) * per]);
            }
            left -= take;
            at += take;
            if at == counts[p] {
                p += 1;
                at = 0;
            }
        }
        out.push(
            sub.into_iter()
                .map(|(shape, data)| Tensor::from_f32(shape, data))
                .collect::<Result<Vec<_>, _>>()?,
        );
    }
    Ok(out)
}

/// Whether each of `got` (a sub-batch's values: `k` images each) equals images
/// `start..start + k` of the same value in `want` (the whole batch's), bit for bit.
fn same_images(got: &[Tensor], want: &[Tensor], start: usize) -> bool {
    got.len() == want.len()
        && got.iter().zip(want).all(|(g, w)| {
            let (gs, ws) = (g.shape(), w.shape());
            let (Some(&k), Some(&n)) = (gs.first(), ws.first()) else {
                return false;
            };
            let (Ok(x), Ok(y)) = (g.f32s(), w.f32s()) else {
                return false;
            };
            if gs.get(1..) != ws.get(1..) || start + k > n || n == 0 {
                return false;
            }
            let per = y.len() / n;
            x.len() == k * per
                && x.iter()
                    .map(|v| v.to_bits())
                    .eq(y[start * per..(start + k) * per]
                        .iter()
                        .map(|v| v.to_bits()))
        })
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

/// The largest value of `row` minus the next largest (0 with fewer than two values;
/// NaN if either is NaN).
fn margin(row: &[f32]) -> f32 {
    let (mut first, mut second) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
    for &v in row {
        if v.is_nan() {
            return f32::NAN;
        }
        if v > first {
            second = first;
            first = v;
        } else if v > second {
            second = v;
        }
    }
    if row.len() < 2 {
        0.0
    } else {
        first - second
    }
}

/// Sub-batch stages from each compute layer's (map shape, output bytes per image) and
/// the bytes per image of the values live right before each layer (`live`): runs of
/// consecutive layers with the same map shape, each with the largest power of two of
/// images (at least 1, at most `images`) whose largest output stays within
/// `stage_bytes`; neighbours with the same count merge. Each boundary then moves to the
/// first layer of the next stage where the live values are at most twice the fewest
/// bytes found there (runs re-split what is live at a boundary: after a block rather
/// than between a block's wide expansion and its depthwise layer). `(first layer,
/// images)` per stage. (MobileNet v2 at 2.5 MiB: 1 image from the first layer, 4 from
/// the first 28x28 block's start, 8 from the first 7x7 block's, the whole batch for
/// the 1x1 logits.)
pub fn stage_plan(
    layers: &[(Vec<usize>, usize)],
    live: &[usize],
    stage_bytes: usize,
    images: usize,
) -> Vec<(usize, usize)> {
    let mut runs: Vec<(usize, usize)> = vec![]; // (first layer, largest bytes)
    for (l, (shape, bytes)) in layers.iter().enumerate() {
        match runs.last_mut() {
            Some((first, max)) if layers[*first].0 == *shape => *max = (*max).max(*bytes),
            _ => runs.push((l, *bytes)),
        }
    }
    let mut plan: Vec<(usize, usize)> = vec![];
    for (first, max) in runs {
        let fit = (stage_bytes / max.max(1)).clamp(1, images.max(1));
        let k = if fit >= images {
            images
        } else {
            1 << fit.ilog2()
        };
        match plan.last() {
            Some(&(_, prev)) if prev == k => {}
            _ => plan.push((first, k)),
        }
    }
    for i in 1..plan.len() {
        let (b, end) = (plan[i].0, plan.get(i + 1).map_or(layers.len(), |s| s.0));
        let bytes = |l: usize| live.get(l).copied().unwrap_or(usize::MAX);
        let least = (b..end).map(bytes).min().unwrap_or(usize::MAX);
        if let Some(t) = (b..end).find(|&l| bytes(l) <= least.saturating_mul(2)) {
            plan[i].0 = t;
        }
    }
    plan
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
            margins: vec![],
            images_run: AtomicU64::new(0),
            labels,
            base: inputs.clone(),
            inputs,
            offset,
            budget,
            sub: None,
        })
    }

    /// Splits the convolutional part of later runs into sub-batches (see the module
    /// docs) if that gives the same values, bit for bit, as whole batches. With
    /// `stage_bytes` > 0, per stage of layers whose outputs have the same map size: as
    /// many images as keep the stage's largest output per sub-batch within
    /// `stage_bytes` (a power of two, at least 1; [`stage_plan`]); if that plan is not
    /// bit-identical (or `stage_bytes` is 0), `size` images throughout. Checked for
    /// every layer output up to the join and the values at the join, on the first
    /// batch of every batch length in use (each length splits into its own sub-batch
    /// sizes), each stage fed the whole batch's values. Returns the plan in use
    /// (`(first layer, images)` per stage; empty: whole batches). `size` 0, a first
    /// batch of at most `size` images, or values without the batch along axis 0: off.
    pub fn enable_sub_batches(
        &mut self,
        model: &Model,
        size: usize,
        stage_bytes: usize,
    ) -> Result<Vec<(usize, usize)>, DesignError> {
        self.sub = None;
        let n = self.labels.first().map_or(0, Vec::len);
        if size == 0 || n <= size {
            return Ok(vec![]);
        }
        let layers = model.layers();
        let join = layers
            .iter()
            .position(|l| l.op != "Conv")
            .unwrap_or(layers.len());
        if join == 0 {
            return Ok(vec![]);
        }
        let ids = if join < layers.len() {
            model.live_values(join, false)?
        } else {
            model.output_ids().to_vec()
        };
        // Every value a stage may start from or end with, and every layer output.
        let mut keep: Vec<ValueId> = layers[..join].iter().map(|l| l.output).collect();
        for l in 1..join {
            keep.extend(model.live_values(l, false)?);
        }
        keep.extend(ids.iter().copied());
        keep.retain(|v| !self.inputs.ids.contains(v));
        keep.sort_by_key(|v| v.0);
        keep.dedup();
        // The whole batch's values, per batch length in use (normally the batch size
        // and a shorter last batch: the first batch of each length).
        let mut refs: Vec<WholeRun> = vec![];
        let mut checked: Vec<usize> = vec![];
        for (b, pieces) in self.inputs.data.iter().enumerate() {
            let len = self.labels[b].len();
            if len <= 1 || checked.contains(&len) {
                continue;
            }
            checked.push(len);
            let vals = whole(pieces)?;
            let feeds = self.inputs.ids.iter().copied().zip(vals.clone()).collect();
            let opts = RunOptions {
                targets: Some(ids.clone()),
                keep: keep.clone(),
                ..Default::default()
            };
            let r = model.run_with(feeds, &opts)?;
            if r.kept
                .iter()
                .chain(&vals)
                .any(|t| t.shape().first() != Some(&len) || t.as_f32().is_none())
            {
                return Ok(vec![]);
            }
            refs.push((vals, keep.iter().copied().zip(r.kept).collect()));
        }
        let Some((_, first)) = refs.first() else {
            return Ok(vec![]);
        };
        let mut plans = vec![];
        if stage_bytes > 0 {
            let bytes: Vec<(Vec<usize>, usize)> = layers[..join]
                .iter()
                .map(|l| {
                    first
                        .iter()
                        .find(|(v, _)| *v == l.output)
                        .map(|(_, t)| (t.shape().get(2..).unwrap_or(&[]).to_vec(), t.len() * 4 / n))
                        .unwrap_or_default()
                })
                .collect();
            // Bytes per image live right before each layer (the inputs before layer 0).
            let live: Vec<usize> = (0..join)
                .map(|l| {
                    let ids = if l == 0 {
                        self.inputs.ids.clone()
                    } else {
                        model.live_values(l, false)?
                    };
                    Ok(ids
                        .iter()
                        .map(|v| match first.iter().find(|(id, _)| id == v) {
                            Some((_, t)) => t.len() * 4 / n,
                            None => refs[0].0.iter().map(|t| t.len() * 4 / n).sum(),
                        })
                        .sum())
                })
                .collect::<Result<_, DesignError>>()?;
            plans.push(stage_plan(&bytes, &live, stage_bytes, n));
        }
        plans.push(vec![(0, size)]);
        for plan in plans {
            let plan: Vec<(usize, usize)> = plan.into_iter().filter(|&(_, k)| k > 0).collect();
            if plan.iter().all(|&(_, k)| k >= n) {
                continue;
            }
            let mut ends = vec![];
            for (i, _) in plan.iter().enumerate() {
                ends.push(match plan.get(i + 1) {
                    Some(&(next, _)) => model.live_values(next, false)?,
                    None => ids.clone(),
                });
            }
            let sub = SubBatches {
                stages: plan.clone(),
                ends,
                join,
                ids: ids.clone(),
            };
            if refs
                .iter()
                .map(|(inputs, vals)| self.stages_match(model, &sub, inputs, vals))
                .collect::<Result<Vec<bool>, DesignError>>()?
                .into_iter()
                .all(|same| same)
            {
                self.sub = Some(sub);
                // Keep the images in the first stage's sub-batches: runs then feed them
                // without a copy.
                for b in &mut self.inputs.data {
                    let pieces = std::mem::take(b);
                    *b = resplit(pieces, plan[0].1)?;
                }
                if self.base.at.is_none() {
                    self.base = self.inputs.clone();
                }
                return Ok(plan);
            }
        }
        Ok(vec![])
    }

    /// Whether each stage of `sub`, fed the whole batch's values at its start in
    /// sub-batches, gives the whole batch's values at its end and every layer output
    /// in it, bit for bit.
    fn stages_match(
        &self,
        model: &Model,
        sub: &SubBatches,
        inputs: &[Tensor],
        vals: &[(ValueId, Tensor)],
    ) -> Result<bool, DesignError> {
        let find = |v: ValueId| {
            vals.iter()
                .find(|(id, _)| *id == v)
                .map(|(_, t)| t.clone())
                .ok_or_else(|| DesignError::Model(format!("value {} not kept", v.0)))
        };
        let layers = model.layers();
        for (i, &(start, size)) in sub.stages.iter().enumerate() {
            let end = sub.stages.get(i + 1).map_or(sub.join, |s| s.0);
            let (feed_ids, feed) = if start == 0 {
                (self.inputs.ids.clone(), inputs.to_vec())
            } else {
                let ids = model.live_values(start, false)?;
                let feed = ids
                    .iter()
                    .map(|&v| find(v))
                    .collect::<Result<Vec<_>, _>>()?;
                (ids, feed)
            };
            let outs: Vec<ValueId> = layers[start..end].iter().map(|l| l.output).collect();
            let want = sub.ends[i]
                .iter()
                .chain(&outs)
                .map(|&v| match self.inputs.ids.iter().position(|&x| x == v) {
                    Some(j) => inputs
                        .get(j)
                        .cloned()
                        .ok_or_else(|| DesignError::Model("input lost".into())),
                    None => find(v),
                })
                .collect::<Result<Vec<_>, _>>()?;
            // Each sub-batch against its images of the whole batch's values, as it
            // comes (no joined copy: at MobileNet v2's first stage that was 0.8 GB of
            // fresh memory per check, seconds of page faults on a VM).
            let mut done = 0;
            for piece in split_images(&feed, size)? {
                let opts = RunOptions {
                    targets: Some(sub.ends[i].clone()),
                    keep: outs.clone(),
                    ..Default::default()
                };
                let r = model.run_with(feed_ids.iter().copied().zip(piece).collect(), &opts)?;
                let got: Vec<Tensor> = r.outputs.into_iter().chain(r.kept).collect();
                if !same_images(&got, &want, done) {
                    return Ok(false);
                }
                done += got
                    .first()
                    .and_then(|t| t.shape().first().copied())
                    .unwrap_or(0);
            }
            // Every image of every value compared.
            if want.iter().any(|w| w.shape().first() != Some(&done)) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Whether runs are split into sub-batches ([`Evaluator::enable_sub_batches`]).
    pub fn sub_batches(&self) -> bool {
        self.sub.is_some()
    }

    /// Runs `model` on one batch (its pieces) fed at `ids` (cut position `from`) up to
    /// `targets` (`None`: the model outputs; with their position), quantising a fed
    /// value (`replace`) and applying `transform` to computed values: in sub-batches,
    /// stage by stage, up to the join when that lies after `from`, else whole. Returns
    /// the result's pieces: the sub-batches when `targets` lie at or before the join,
    /// else one (the batch).
    #[allow(clippy::too_many_arguments)]
    fn run_batch(
        &self,
        model: &Model,
        from: Option<(usize, bool)>,
        ids: &[ValueId],
        pieces: &[Vec<Tensor>],
        replace: Option<(ValueId, Format)>,
        transform: Option<Transform<'_>>,
        visit: Option<VisitFn<'_>>,
        targets: Option<(&[ValueId], (usize, bool))>,
    ) -> Result<Vec<Vec<Tensor>>, DesignError> {
        let run = |feed_ids: &[ValueId],
                   vals: Vec<Tensor>,
                   replace: Option<(ValueId, Format)>,
                   targets: Option<Vec<ValueId>>| {
            let mut feeds: Vec<(ValueId, Tensor)> = feed_ids.iter().copied().zip(vals).collect();
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
                visit,
                ..Default::default()
            };
            Ok::<_, DesignError>(model.run_with(feeds, &opts)?.outputs)
        };
        let sub = self.sub.as_ref().filter(|s| {
            position(from) < position(Some((s.join, false)))
                && pieces.iter().flatten().all(|t| t.as_f32().is_some())
        });
        let Some(sub) = sub else {
            return Ok(vec![run(
                ids,
                whole(pieces)?,
                replace,
                targets.map(|(t, _)| t.to_vec()),
            )?]);
        };
        let layer = first_layer(from);
        let first = sub
            .stages
            .iter()
            .rposition(|&(start, _)| start <= layer)
            .unwrap_or(0);
        let mut feed_ids = ids.to_vec();
        let mut pieces = pieces.to_vec();
        let mut replace = replace;
        for i in first..sub.stages.len() {
            let size = sub.stages[i].1;
            let end = sub.stages.get(i + 1).map_or(sub.join, |s| s.0);
            // This stage's end, or the targets if they come first.
            let (stage_targets, last) = match targets {
                Some((t, to)) if position(Some(to)) <= position(Some((end, false))) => {
                    (t.to_vec(), true)
                }
                _ => (sub.ends[i].clone(), false),
            };
            let mut parts = vec![];
            for vals in resplit(pieces, size)? {
                parts.push(run(&feed_ids, vals, replace, Some(stage_targets.clone()))?);
            }
            // The fed value was reformatted in the first stage's feeds.
            replace = None;
            if last {
                return Ok(parts);
            }
            pieces = parts;
            feed_ids.clone_from(&sub.ends[i]);
        }
        let joined = join_images(&pieces)?;
        if sub.join == model.layers().len() {
            return Ok(vec![joined]);
        }
        Ok(vec![run(
            &sub.ids,
            joined,
            None,
            targets.map(|(t, _)| t.to_vec()),
        )?])
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

    /// Whether output index `pred` is class `label`.
    fn is_correct(&self, pred: usize, label: i64) -> bool {
        pred.checked_sub(self.offset)
            .and_then(|p| i64::try_from(p).ok())
            == Some(label)
    }

    /// Images run by evaluations ([`Evaluator::score`], [`Evaluator::score_until`]) so
    /// far.
    pub fn images_run(&self) -> u64 {
        self.images_run.load(Ordering::Relaxed)
    }

    fn count(&self, out: &Tensor, batch: usize) -> Result<Score, DesignError> {
        let labels = &self.labels[batch];
        let pred = Self::predictions(out, labels.len())?;
        let correct = pred
            .iter()
            .zip(labels)
            .filter(|(&p, &l)| self.is_correct(p, l))
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
                let outputs = self.run_batch(
                    model, cut.at, &cut.ids, vals, replace, transform, None, None,
                )?;
                let out = outputs
                    .first()
                    .and_then(|p| p.first())
                    .ok_or_else(|| DesignError::Model("no output".into()))?;
                self.images_run
                    .fetch_add(self.labels[b].len() as u64, Ordering::Relaxed);
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
        // Batches are taken in order by whichever thread is free (not split in halves
        // as `par_iter` does), so that with the images ordered fragile first
        // ([`Evaluator::fragile_first`]) the batches most likely to decide a shortfall
        // run first on every thread.
        let next = AtomicUsize::new(0);
        let batches = cut.data.len();
        let workers = rayon::current_num_threads().clamp(1, batches.max(1));
        let done: Vec<Vec<(usize, Result<Score, DesignError>)>> = (0..workers)
            .into_par_iter()
            .map(|_| {
                let mut mine = vec![];
                while !stop.load(Ordering::Relaxed) {
                    let b = next.fetch_add(1, Ordering::Relaxed);
                    let Some(vals) = cut.data.get(b) else {
                        break;
                    };
                    let sc = self
                        .run_batch(
                            model, cut.at, &cut.ids, vals, replace, transform, None, None,
                        )
                        .and_then(|outputs| {
                            let out = outputs
                                .first()
                                .and_then(|p| p.first())
                                .ok_or_else(|| DesignError::Model("no output".into()))?;
                            self.count(out, b)
                        });
                    let n = self.labels[b].len() as u64;
                    self.images_run.fetch_add(n, Ordering::Relaxed);
                    match &sc {
                        Ok(sc) => {
                            let lost = n - sc.correct.min(n);
                            let w = wrong.fetch_add(lost, Ordering::Relaxed) + lost;
                            let changed = n - sc.agree.min(n);
                            let d = differ.fetch_add(changed, Ordering::Relaxed) + changed;
                            if w > wrong_max || d > differ_max {
                                stop.store(true, Ordering::Relaxed);
                            }
                        }
                        Err(_) => stop.store(true, Ordering::Relaxed),
                    }
                    mine.push((b, sc));
                }
                mine
            })
            .collect();
        let mut done: Vec<(usize, Result<Score, DesignError>)> =
            done.into_iter().flatten().collect();
        done.sort_by_key(|(b, _)| *b);
        let complete = done.len() == batches;
        let mut total = Score::default();
        for (_, sc) in done {
            total = [total, sc?].into_iter().sum();
        }
        if !complete {
            return Ok(None);
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
        let correct = self.original_pass(model, Some(&visit))?;
        let hists = hists
            .into_inner()
            .map_err(|_| DesignError::Model("histogram lock poisoned".into()))?;
        let sizes = sizes
            .into_inner()
            .map_err(|_| DesignError::Model("size lock poisoned".into()))?;
        Ok((correct, hists, sizes))
    }

    /// Runs the original model over every batch (in sub-batches when they are enabled,
    /// checked bit-identical to the whole batch: smaller maps, fewer fresh pages), with
    /// `visit` on each computed value; records each image's top-1 and margin and
    /// returns the correct answers.
    fn original_pass(
        &mut self,
        model: &Model,
        visit: Option<VisitFn<'_>>,
    ) -> Result<u64, DesignError> {
        // Per batch: its correct answers, and each image's top-1 and margin.
        type Pass = (u64, Vec<usize>, Vec<f32>);
        let counts: Vec<Result<Pass, DesignError>> = self
            .inputs
            .data
            .par_iter()
            .enumerate()
            .map(|(b, vals)| {
                let r =
                    self.run_batch(model, None, &self.inputs.ids, vals, None, None, visit, None)?;
                let out = r
                    .first()
                    .and_then(|o| o.first())
                    .ok_or_else(|| DesignError::Model("no output".into()))?;
                let labels = &self.labels[b];
                // Checks the output's shape against the batch.
                let pred = Self::predictions(out, labels.len())?;
                let d = out.f32s()?;
                let margins = d.chunks_exact(d.len() / labels.len()).map(margin).collect();
                let correct = pred
                    .iter()
                    .zip(labels)
                    .filter(|(&p, &l)| self.is_correct(p, l))
                    .count() as u64;
                Ok((correct, pred, margins))
            })
            .collect();
        let mut correct = 0;
        let (mut original, mut margins) = (vec![], vec![]);
        for c in counts {
            let (c, p, m) = c?;
            correct += c;
            original.push(p);
            margins.push(m);
        }
        self.original = original;
        self.margins = margins;
        Ok(correct)
    }

    /// Puts the validation images in the order that lets an evaluation which falls short
    /// of its need stop soonest ([`Evaluator::score_until`]): first the images the
    /// original model gets wrong (they most often stay wrong), then the others by the
    /// original's top-1 margin, smallest first (they are the first to change); ties in
    /// dataset order. Batches keep their sizes. Counts do not depend on the order, but
    /// kernels whose blocking spans the images of a batch (fully-connected layers) round
    /// differently with other neighbours, so the original is run again on the new
    /// batches for its correct answers (returned) and the top-1 that agreement is
    /// counted against. Call after [`Evaluator::baseline`], before any cut is taken.
    pub fn fragile_first(&mut self, model: &Model) -> Result<u64, DesignError> {
        if self.base.at.is_some() {
            return Err(DesignError::Model(
                "the images can only be reordered before the prefix cache is filled".into(),
            ));
        }
        if self.margins.len() != self.labels.len() || self.original.len() != self.labels.len() {
            return Err(DesignError::Model(
                "reordering the images needs the baseline first".into(),
            ));
        }
        // One piece per image, in dataset order, with its label and sort key.
        let mut images: Vec<Option<Vec<Tensor>>> = vec![];
        let mut labels = vec![];
        let mut keys: Vec<(bool, f32)> = vec![];
        for (b, pieces) in std::mem::take(&mut self.inputs.data)
            .into_iter()
            .enumerate()
        {
            let ones = resplit(pieces, 1)?;
            let (l, p, m) = (&self.labels[b], &self.original[b], &self.margins[b]);
            if ones.len() != l.len() || p.len() != l.len() || m.len() != l.len() {
                return Err(DesignError::Model(format!(
                    "batch {b}: {} images, {} labels, {} predictions",
                    ones.len(),
                    l.len(),
                    p.len()
                )));
            }
            for (j, one) in ones.into_iter().enumerate() {
                images.push(Some(one));
                labels.push(l[j]);
                keys.push((self.is_correct(p[j], l[j]), m[j]));
            }
        }
        let mut order: Vec<usize> = (0..images.len()).collect();
        order.sort_by(|&a, &b| {
            keys[a]
                .0
                .cmp(&keys[b].0)
                .then(keys[a].1.total_cmp(&keys[b].1))
                .then(a.cmp(&b))
        });
        let first = self
            .sub
            .as_ref()
            .and_then(|s| s.stages.first())
            .map(|s| s.1);
        let sizes: Vec<usize> = self.labels.iter().map(Vec::len).collect();
        let mut order = order.into_iter();
        let (mut data, mut new_labels) = (vec![], vec![]);
        for n in sizes {
            let idx: Vec<usize> = order.by_ref().take(n).collect();
            let mut ims = vec![];
            for &i in &idx {
                ims.push(
                    images
                        .get_mut(i)
                        .and_then(Option::take)
                        .ok_or_else(|| DesignError::Model("reordering lost an image".into()))?,
                );
            }
            new_labels.push(idx.iter().map(|&i| labels[i]).collect());
            data.push(match first {
                Some(size) => resplit(ims, size)?,
                None => vec![join_images(&ims)?],
            });
        }
        self.inputs.data = data;
        self.labels = new_labels;
        self.base = self.inputs.clone();
        self.original_pass(model, None)
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

    /// Makes `cut` the base runs start from (it must lie at or before where later runs
    /// start: the search moves forward).
    pub fn set_base(&mut self, cut: Cut) {
        self.base = cut;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sub_batch_is_compared_with_its_images_of_the_whole_batch() {
        let t = |shape: Vec<usize>, v: Vec<f32>| Tensor::from_f32(shape, v).unwrap();
        // Whole batch: 3 images of [2] and of [1].
        let whole = vec![
            t(vec![3, 2], vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]),
            t(vec![3, 1], vec![6.0, 7.0, 8.0]),
        ];
        let part = |start: usize, k: usize| {
            whole
                .iter()
                .map(|w| slice_images(w, start, k).unwrap())
                .collect::<Vec<_>>()
        };
        assert!(same_images(&part(0, 1), &whole, 0));
        assert!(same_images(&part(1, 2), &whole, 1));
        assert!(same_images(&whole, &whole, 0));
        // The right values at the wrong images, past the end, a value short.
        assert!(!same_images(&part(1, 2), &whole, 0));
        assert!(!same_images(&part(1, 2), &whole, 2));
        assert!(!same_images(&part(0, 1)[..1], &whole, 0));
        // One bit off (-0.0 against 0.0), another shape per image.
        let mut off = part(0, 1);
        off[0] = t(vec![1, 2], vec![-0.0, 1.0]);
        assert!(!same_images(&off, &whole, 0));
        let mut shape = part(0, 1);
        shape[0] = t(vec![1, 2, 1], vec![0.0, 1.0]);
        assert!(!same_images(&shape, &whole, 0));
    }

    #[test]
    fn stage_plan_follows_map_sizes() {
        // MobileNet v2's shapes: (map, bytes per image of the layer's output).
        let l = |hw: usize, c: usize| (vec![hw, hw], hw * hw * c * 4);
        let layers = vec![
            l(112, 32),
            l(112, 32),
            l(112, 16),
            l(112, 96),
            l(56, 96),
            l(56, 24),
            l(56, 144),
            l(28, 144),
            l(28, 32),
            l(28, 192),
            l(14, 192),
            l(14, 576),
            l(7, 576),
            l(7, 960),
            l(7, 1280),
            (vec![1, 1], 1008 * 4),
        ];
        // Live before each layer: the previous layer's output.
        let live: Vec<usize> = std::iter::once(224 * 224 * 3 * 4)
            .chain(layers.iter().map(|l| l.1))
            .take(layers.len())
            .collect();
        let plan = |b: usize| stage_plan(&layers, &live, b, 50);
        // 28x28 from layer 7 (a 144-channel output is live) moves to layer 9 (32 channels
        // live, the least in that stage); 7x7 from 12 (576) to 13 (less than twice the
        // least: 7x7x576 against 7x7x960 and 1280 later).
        assert_eq!(
            plan(crate::search::DEFAULT_SUB_BATCH_BYTES),
            vec![(0, 1), (9, 4), (13, 8), (15, 50)]
        );
        // Whole batches where everything fits; at least one image where nothing does.
        assert_eq!(plan(usize::MAX), vec![(0, 50)]);
        assert_eq!(plan(1), vec![(0, 1)]);
        assert_eq!(stage_plan(&[], &[], 1, 50), vec![]);
    }
}
