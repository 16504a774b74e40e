//! The design-space search (DESIGN §3, paper §IV-B), resumable through a journal.
//!
//! Tensors: per compute layer its weight tensor (biases stay `f32`) and its
//! materialised output. Per tensor, independently: for each candidate `e`
//! ([`ExpHistogram::candidate_exponents`]: `e_max` down to 2, stop under 50%
//! coverage, best bias per `e`) and `m` from `m_max` down to 0, evaluate the
//! network with only that tensor reformatted; the `m` sweep stops after the first
//! point under `sweep_floor` normalised accuracy. Then the exact / accurate /
//! approximate combinations, each re-evaluated as a whole, with recovery.

use crate::eval::{Evaluator, Need, Score};
use crate::meta::*;
use crate::runner::{quantize_tensor, weights_from_packed};
use crate::scales;
use crate::select::{select, widen, widen_candidates, worst_tensor};
use crate::{sha256_hex, DesignError, Variant};
use sieve_data::{DatasetSpec, InputSpec, Split};
use sieve_float::{quantize_slice, ExpHistogram, Format, PackedTensor};
use sieve_nn::{Dim, Model, NnError, Tensor, ValueId, Weights};
use sieve_onnx::proto;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

/// Everything a design run needs besides the model bytes.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Dataset spec (`mnist:DIR`, `cifar10:PATH`, `images:DIR[:LABELS]`).
    pub dataset: String,
    /// Split to search on (normally [`Split::Validation`]).
    pub split: Split,
    /// Use only the first N images.
    pub limit: Option<usize>,
    /// Background classes before label 0 in the output (model card).
    pub background_offset: usize,
    /// Bytes the prefix cache may hold.
    pub cache_bytes: usize,
    /// The settings that shape the result.
    pub search: SearchSettings,
    /// Journal file for resuming (`None`: no journal).
    pub journal: Option<PathBuf>,
    /// Stop with [`DesignError::Interrupted`] after this many new evaluations.
    pub max_evals: Option<usize>,
    /// The model's output contract (from its card), recorded in [`Meta::output`].
    pub output: Option<OutputContract>,
    /// Absolute path of the source ONNX, recorded in [`Provenance::source_path`].
    pub source_path: Option<String>,
    /// Execution only (the outcome is the same): images per sub-batch for the
    /// convolutional part of every run, when that is bit-identical to whole batches
    /// ([`Evaluator::enable_sub_batches`]); 0 = whole batches.
    pub sub_batch: usize,
    /// Execution only (the outcome is the same): per stage of layers with the same map
    /// size, as many images per sub-batch as keep the stage's largest layer output
    /// within this many bytes ([`crate::eval::stage_plan`]), where that is bit-identical;
    /// 0 = [`Settings::sub_batch`] images throughout.
    pub sub_batch_bytes: usize,
    /// Execution only (the outcome is the same): a weight point whose quantised tensor
    /// equals, bit for bit, an earlier point's of the same tensor takes that point's
    /// score, and a combination takes the score of an evaluated combination whose
    /// networks are identical (see [`Timing::reused_points`]).
    pub reuse_identical: bool,
    /// Stop an evaluation as soon as it can no longer matter: a point once it cannot
    /// reach the sweep floor or a variant's threshold (recorded as
    /// [`Point::stopped`](crate::Point::stopped) and evaluated whole later only if a
    /// choice needs its figures), a combination once it cannot meet its variant's
    /// goal. The formats and variants are the same; `false` (`--full-scores`) records
    /// every point's figures.
    pub stop_early: bool,
}

/// The default of [`Settings::sub_batch_bytes`] (MobileNet v2: 1 image per sub-batch
/// on 112x112 and 56x56 maps, 4 on 28x28 and 14x14, 8 on 7x7).
pub const DEFAULT_SUB_BATCH_BYTES: usize = 5 << 19;

/// The default of [`Settings::sub_batch`] (MobileNet v2 on one thread: 4 images at a
/// time ~15% faster than 50).
pub const DEFAULT_SUB_BATCH: usize = 4;

impl SearchSettings {
    /// The paper's settings with the given batch size.
    pub fn paper(batch: usize) -> SearchSettings {
        SearchSettings {
            m_max: 6,
            sweep_floor: 0.998,
            accurate_threshold: 1.0,
            approximate_threshold: 0.999,
            recovery_slack: 0.002,
            stop_e_sweep: true,
            e_headroom: 0,
            batch,
            skip_dominated: false,
            recovery_rank: RecoveryRank::Accuracy,
            widen_activations_first: false,
            max_recovery_steps: None,
            recovery_doubling: false,
            channel_scales: false,
            adopt_dominating: false,
            min_agreement: None,
            fragile_first: false,
        }
    }

    /// The defaults of `sieve design`: the paper's settings plus the faster sweep
    /// ([`SearchSettings::skip_dominated`]), fidelity-ranked recovery that
    /// widens activations first, at most `2 x tensors` steps, per-channel weight
    /// scales ([`SearchSettings::channel_scales`]), and variants that adopt a
    /// dominating combination ([`SearchSettings::adopt_dominating`]), with the images
    /// evaluated fragile first ([`SearchSettings::fragile_first`]).
    pub fn default_with_batch(batch: usize) -> SearchSettings {
        SearchSettings {
            fragile_first: true,
            skip_dominated: true,
            channel_scales: true,
            recovery_rank: RecoveryRank::Fidelity,
            widen_activations_first: true,
            recovery_doubling: true,
            adopt_dominating: true,
            ..SearchSettings::paper(batch)
        }
    }
}

/// A progress report: `done` of about `total` evaluations. Skipped points of a stopped
/// sweep count as done, so during the sweeps the total is an upper bound; a variant's
/// recovery evaluations (not known in advance) add one to `done` and `total` each, so
/// `total` only grows, and `done` never decreases and reaches `total` at the end.
/// Before the sweeps, while the count is not known yet, events with `total` 0 name the
/// phase (reading the images, the sub-batch check, the baseline, the image order).
#[derive(Clone, Debug)]
pub struct ProgressEvent {
    /// Evaluations done or skipped.
    pub done: usize,
    /// Upper bound of all evaluations.
    pub total: usize,
    /// What is being evaluated.
    pub what: String,
}

/// Progress callback.
pub type Progress<'a> = &'a (dyn Fn(&ProgressEvent) + Sync);

/// Where the time went, in seconds.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Timing {
    /// Loading the model and the validation images.
    pub load: f64,
    /// Baseline run with histograms.
    pub baseline: f64,
    /// Reordering the images fragile first and scoring the original again on the new
    /// batches ([`SearchSettings::fragile_first`]).
    pub reorder: f64,
    /// Images run by evaluations in this run (an evaluation that stops early counts the
    /// images it ran; [`Settings::stop_early`], [`SearchSettings::fragile_first`]).
    pub images_run: u64,
    /// Computing prefix-cache cuts.
    pub cache: f64,
    /// Weight-tensor points.
    pub weight_points: f64,
    /// Activation points.
    pub activation_points: f64,
    /// Variant combinations and recovery.
    pub combinations: f64,
    /// Everything.
    pub total: f64,
    /// Points evaluated in this run (the rest came from the journal).
    pub new_evaluations: usize,
    /// Sweep points not evaluated because their quantised weights equal an earlier
    /// point's of the same tensor ([`Settings::reuse_identical`]).
    pub reused_points: usize,
    /// Combinations not evaluated because an evaluated one has identical networks.
    pub reused_combinations: usize,
    /// Sweep points recorded as stopped below the floor ([`Settings::stop_early`]).
    pub stopped_points: usize,
    /// Stopped points evaluated whole later because a choice needed their figures.
    pub completed_points: usize,
    /// Whether runs were split into sub-batches ([`Settings::sub_batch`]).
    pub sub_batches: bool,
    /// The sub-batch stages in use: (first layer, images) each.
    pub sub_batch_plan: Vec<(usize, usize)>,
    /// Seconds spent checking that sub-batches give whole batches' values.
    pub sub_batch_check: f64,
    /// Per compute layer, in order: where the sweep time went.
    pub layers: Vec<LayerTiming>,
}

/// The sweep time of one compute layer, in seconds.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct LayerTiming {
    /// The layer's name.
    pub name: String,
    /// Computing its prefix-cache cuts.
    pub cache: f64,
    /// Its weight tensor's points.
    pub weight: f64,
    /// Weight points evaluated in this run.
    pub weight_evals: usize,
    /// Its output's points.
    pub activation: f64,
    /// Activation points evaluated in this run.
    pub activation_evals: usize,
}

/// The result of [`design`]: the package contents plus timing.
#[derive(Debug)]
pub struct DesignOutcome {
    /// The metadata.
    pub meta: Meta,
    /// The graph (source ONNX with the packed layers' weights as external data).
    pub graph: Vec<u8>,
    /// Packed weight tensors by package key.
    pub weights: BTreeMap<String, Vec<u8>>,
    /// Time breakdown.
    pub timing: Timing,
}

/// A journalled evaluation: its score, or that it fell short of a [`Need`] (it stopped
/// early, [`Evaluator::score_until`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Entry {
    Score(Score),
    Below(Need),
}

struct Journal {
    path: Option<PathBuf>,
    done: BTreeMap<String, Entry>,
    file: Option<std::fs::File>,
    new: usize,
    max: Option<usize>,
    /// Complete lines read back that were damaged (bad checksum, unreadable, or figures
    /// over the image count) and so dropped: their points are evaluated again.
    dropped: usize,
}

/// One journal line: `KEY CORRECT AGREE ~CHECK` or `KEY below CORRECT AGREE ~CHECK`
/// (keys have no spaces; `CHECK` is [`line_check`] of the text before it, so that a
/// damaged line is dropped instead of read as another figure). Lines without a check
/// (journals of earlier versions) are read as they are. Figures over `images` (the
/// validation images the figures count) are damage too.
fn parse_journal_line(line: &str, images: u64) -> Option<(String, Entry)> {
    let line = match line.rsplit_once(" ~") {
        Some((body, check)) => {
            if check != line_check(body) {
                return None;
            }
            body
        }
        None => line,
    };
    let mut parts = line.rsplitn(3, ' ');
    let (a, c, k) = (parts.next()?, parts.next()?, parts.next()?);
    let (correct, agree): (u64, u64) = (c.parse().ok()?, a.parse().ok()?);
    if correct > images || agree > images || k.is_empty() {
        return None;
    }
    Some(match k.strip_suffix(" below") {
        Some(k) => (k.to_string(), Entry::Below(Need { correct, agree })),
        None => (k.to_string(), Entry::Score(Score { correct, agree })),
    })
}

/// Eight hex digits of the 32-bit FNV-1a hash of a journal line's text.
fn line_check(body: &str) -> String {
    let h = body.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    format!("{h:08x}")
}

impl Journal {
    fn open(
        path: Option<PathBuf>,
        key: &str,
        max: Option<usize>,
        images: u64,
    ) -> Result<Journal, DesignError> {
        let mut done = BTreeMap::new();
        let mut dropped = 0;
        let Some(p) = path.clone() else {
            return Ok(Journal {
                path,
                done,
                file: None,
                new: 0,
                max,
                dropped,
            });
        };
        let mut fresh = true;
        // Bytes up to the end of the last whole line.
        let mut whole_len = None;
        match std::fs::read(&p) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                let mut lines = text.split('\n');
                if lines.next() == Some(format!("sieve-design journal {key}").as_str()) {
                    fresh = false;
                    // A torn last line (killed mid-write: no newline after it) is ignored.
                    if !text.ends_with('\n') {
                        whole_len =
                            Some(bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1));
                    }
                    let complete: Vec<&str> = lines.collect();
                    let n = complete.len().saturating_sub(1);
                    for line in &complete[..n] {
                        match parse_journal_line(line, images) {
                            // A later line wins (a full score after a stopped one).
                            Some((k, e)) => {
                                done.insert(k, e);
                            }
                            None => dropped += 1,
                        }
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(DesignError::io(&p, e)),
        }
        let file = if fresh {
            let mut f = std::fs::File::create(&p).map_err(|e| DesignError::io(&p, e))?;
            writeln!(f, "sieve-design journal {key}").map_err(|e| DesignError::io(&p, e))?;
            f
        } else {
            let f = std::fs::OpenOptions::new()
                .append(true)
                .open(&p)
                .map_err(|e| DesignError::io(&p, e))?;
            if let Some(n) = whole_len {
                // A run killed mid-line: drop the torn record so that the next one
                // stands alone (ending it instead would read it back as a record).
                f.set_len(n as u64).map_err(|e| DesignError::io(&p, e))?;
            }
            f
        };
        Ok(Journal {
            path,
            done,
            file: Some(file),
            new: 0,
            max,
            dropped,
        })
    }

    /// The outcome recorded under `key` as asked with `need` (`None`: the whole score):
    /// `Some(Some(score))` (reaches `need`), `Some(None)` (known to fall short of it),
    /// `None` (not known: evaluate).
    fn get(&self, key: &str, need: Option<Need>) -> Option<Option<Score>> {
        match (self.done.get(key)?, need) {
            (Entry::Score(sc), Some(n)) => Some(Some(*sc).filter(|sc| n.met_by(*sc))),
            (Entry::Score(sc), None) => Some(Some(*sc)),
            // Short of `b`, hence of any need at least as high.
            (Entry::Below(b), Some(n)) if n.correct >= b.correct && n.agree >= b.agree => {
                Some(None)
            }
            (Entry::Below(_), _) => None,
        }
    }

    /// Records an outcome (also one known without an evaluation: an identical
    /// network's). A score is never replaced; a stopped record is, by a score.
    fn record(&mut self, key: &str, v: Entry) -> Result<(), DesignError> {
        if matches!(self.done.get(key), Some(Entry::Score(_))) || self.done.get(key) == Some(&v) {
            return Ok(());
        }
        self.done.insert(key.to_string(), v);
        if let (Some(f), Some(p)) = (self.file.as_mut(), self.path.as_ref()) {
            let body = match v {
                Entry::Score(v) => format!("{key} {} {}", v.correct, v.agree),
                Entry::Below(n) => format!("{key} below {} {}", n.correct, n.agree),
            };
            writeln!(f, "{body} ~{}", line_check(&body))
                .and_then(|_| f.flush())
                .map_err(|e| DesignError::io(p, e))?;
        }
        Ok(())
    }

    /// Records the outcome of `eval` under `need` (see [`Journal::get`]) unless known.
    fn get_or(
        &mut self,
        key: &str,
        need: Option<Need>,
        eval: impl FnOnce() -> Result<Option<Score>, DesignError>,
    ) -> Result<Option<Score>, DesignError> {
        if let Some(v) = self.get(key, need) {
            return Ok(v);
        }
        if self.max.is_some_and(|m| self.new >= m) {
            return Err(DesignError::Interrupted(self.new));
        }
        let v = eval()?;
        self.new += 1;
        self.record(key, entry(v, need)?)?;
        Ok(v)
    }
}

/// The journal entry of an outcome asked with `need`.
fn entry(v: Option<Score>, need: Option<Need>) -> Result<Entry, DesignError> {
    match (v, need) {
        (Some(sc), _) => Ok(Entry::Score(sc)),
        (None, Some(n)) => Ok(Entry::Below(n)),
        (None, None) => Err(DesignError::Model(
            "an evaluation without a need stopped early".into(),
        )),
    }
}

/// The least `c` in `0..=max` with `ok(c)` (`ok` monotone), `u64::MAX` if none.
fn least(max: u64, ok: impl Fn(u64) -> bool) -> u64 {
    if !ok(max) {
        return u64::MAX;
    }
    let (mut lo, mut hi) = (0, max);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if ok(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    hi
}

/// The least score that meets normalised accuracy `t` (and agreement `share`) on
/// `images` validation images ([`meets`], [`agrees`]).
fn need_for(base: u64, images: usize, t: f64, share: Option<f64>) -> Need {
    let n = images as u64;
    Need {
        correct: least(n, |c| meets(c, base, t)),
        agree: least(n, |a| agrees(Some(a), images, share)),
    }
}

fn norm(correct: u64, base: u64) -> f64 {
    if base == 0 {
        1.0
    } else {
        correct as f64 / base as f64
    }
}

/// `correct / base >= t`, decided in integers for the usual thresholds.
pub(crate) fn meets(correct: u64, base: u64, t: f64) -> bool {
    (correct as f64) >= t * base as f64 - 1e-9
}

/// Whether `agree` of `images` answers equal the original's reaches `share`
/// ([`SearchSettings::min_agreement`]; `None`: no requirement; an unknown count never
/// meets one).
fn agrees(agree: Option<u64>, images: usize, share: Option<f64>) -> bool {
    share.is_none_or(|s| agree.is_some_and(|a| (a as f64) >= s * images as f64 - 1e-9))
}

/// A variant's goals for a combination on the validation images: normalised accuracy
/// (its threshold minus the recovery slack) and the share of answers that must equal
/// the original's ([`SearchSettings::min_agreement`], not asked of the approximate one).
fn goals(variant: Variant, s: &SearchSettings) -> (f64, Option<f64>) {
    match variant {
        Variant::Approximate => (s.approximate_threshold - s.recovery_slack, None),
        _ => (s.accurate_threshold - s.recovery_slack, s.min_agreement),
    }
}

/// Whether each layer's output is non-negative by construction: a fused Relu, or
/// a fused Clip whose lower bound is a constant >= 0.
fn non_negative_layers(model: &Model, onnx: &proto::ModelProto) -> Vec<bool> {
    let Some(g) = onnx.graph.as_ref() else {
        return vec![false; model.layers().len()];
    };
    let consts: BTreeMap<&str, &proto::TensorProto> =
        g.initializer.iter().map(|t| (t.name(), t)).collect();
    let clip_min_ok = |n: &proto::NodeProto| -> bool {
        if let Some(a) = n.attribute.iter().find(|a| a.name() == "min") {
            return a.f() >= 0.0;
        }
        let Some(name) = n.input.get(1).filter(|s| !s.is_empty()) else {
            return false;
        };
        consts
            .get(name.as_str())
            .and_then(|t| sieve_onnx::tensor_from_proto(t).ok())
            .and_then(|t| t.as_f32().and_then(|d| d.first().copied()))
            .is_some_and(|v| v >= 0.0)
    };
    // Node names as the loader assigns them (unnamed nodes: `<op>_<index>`).
    let named: Vec<(String, &proto::NodeProto)> = g
        .node
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let name = if n.name().is_empty() {
                format!("{}_{i}", n.op_type())
            } else {
                n.name().to_string()
            };
            (name, n)
        })
        .collect();
    model
        .layers()
        .iter()
        .map(|l| {
            l.fused.iter().any(|f| {
                named.iter().any(|(name, n)| {
                    name == f
                        && (n.op_type() == "Relu" || (n.op_type() == "Clip" && clip_min_ok(n)))
                })
            })
        })
        .collect()
}

/// The exponent widths to sweep: `e_max + headroom` down to `e_max + 1`, then the
/// paper's candidates (`e_max` down to 2, stopping under 50% coverage).
fn candidates(h: &ExpHistogram, headroom: u8) -> Vec<sieve_float::Window> {
    let mut out: Vec<sieve_float::Window> = (1..=headroom)
        .rev()
        .filter_map(|d| h.best_window(h.e_max().saturating_add(d)).ok())
        .collect();
    out.extend(h.candidate_exponents());
    out
}

/// Extra exponent widths for a tensor kind: [`SearchSettings::e_headroom`]
/// applies to weight tensors only.
fn headroom(s: &SearchSettings, kind: TensorKind) -> u8 {
    match kind {
        TensorKind::Weight => s.e_headroom,
        TensorKind::Activation => 0,
    }
}

fn histogram_pairs(h: &ExpHistogram) -> Vec<(i32, u64)> {
    match h.exp_range() {
        Some((lo, hi)) => (lo..=hi)
            .map(|e| (e, h.count(e)))
            .filter(|&(_, c)| c > 0)
            .collect(),
        None => vec![],
    }
}

fn image_chw(model: &Model) -> Result<[usize; 3], DesignError> {
    let input = model
        .inputs()
        .first()
        .ok_or_else(|| DesignError::Model("no inputs".into()))?;
    match input.shape.as_slice() {
        [_, Dim::Fixed(c), Dim::Fixed(h), Dim::Fixed(w)] => Ok([*c, *h, *w]),
        s => Err(DesignError::Model(format!(
            "input '{}' has shape {s:?}; expected N x C x H x W",
            input.name
        ))),
    }
}

/// Runs the whole search. `model_bytes`: the source ONNX. Deterministic: the
/// same bytes, data and settings give the same outcome, with or without a
/// journal from an interrupted run.
pub fn design(
    model_bytes: &[u8],
    settings: &Settings,
    progress: Progress<'_>,
) -> Result<DesignOutcome, DesignError> {
    let t_all = Instant::now();
    let mut timing = Timing::default();
    let s = &settings.search;
    if s.batch == 0 {
        return Err(DesignError::Invalid("batch size must be at least 1".into()));
    }
    let model = sieve_onnx::load_bytes(model_bytes)?;
    let onnx = <proto::ModelProto as prost::Message>::decode(model_bytes)
        .map_err(|e| DesignError::Model(e.to_string()))?;
    if model.layers().is_empty() {
        return Err(DesignError::Model(
            "no compute layers (Conv/Gemm/MatMul with constant weights)".into(),
        ));
    }
    let [channels, h, w] = image_chw(&model)?;
    let spec = DatasetSpec::parse(&settings.dataset)?;
    let mut ds = sieve_data::open(&spec, settings.split, InputSpec { channels, h, w })?;
    if let Some(n) = settings.limit {
        ds = sieve_data::limit(ds, n);
    }
    let images = ds.len();
    if images == 0 {
        return Err(DesignError::Invalid("the validation set is empty".into()));
    }
    // Before the count of evaluations is known: phase lines (`total` 0).
    let phase = |what: String| {
        progress(&ProgressEvent {
            done: 0,
            total: 0,
            what,
        })
    };
    phase(format!("reading {images} validation images"));
    let fingerprint = ds.fingerprint()?;
    let mut batches = vec![];
    for b in sieve_data::batches(ds.as_ref(), s.batch) {
        let b = b?;
        batches.push((Tensor::from_f32(b.shape.to_vec(), b.data)?, b.labels));
    }
    let provenance = Provenance {
        model_sha256: sha256_hex(model_bytes),
        model_bytes: model_bytes.len() as u64,
        dataset: settings.dataset.clone(),
        split: settings.split.to_string(),
        dataset_fingerprint: fingerprint,
        images,
        source_path: settings.source_path.clone(),
    };
    let key = sha256_hex(
        serde_json::to_string(&(
            &provenance.model_sha256,
            &provenance.dataset_fingerprint,
            images,
            &provenance.split,
            settings.background_offset,
            s.batch,
            // Other batches, other rounding: fragile first has journals of its own
            // (dataset order keeps the key of earlier versions).
            if s.fragile_first { "v2-fragile" } else { "v2" },
        ))
        .map_err(|e| DesignError::Invalid(e.to_string()))?
        .as_bytes(),
    );
    let mut journal = Journal::open(
        settings.journal.clone(),
        &key,
        settings.max_evals,
        images as u64,
    )?;
    if journal.dropped > 0 {
        phase(format!(
            "journal: {} damaged line(s) dropped; those points are evaluated again",
            journal.dropped
        ));
    }
    let mut ev = Evaluator::new(
        &model,
        batches,
        settings.background_offset,
        settings.cache_bytes,
    )?;
    timing.load = t_all.elapsed().as_secs_f64();

    // 1. Sub-batches (the baseline runs in them too), baseline and histograms.
    let t = Instant::now();
    phase("checking sub-batches against whole batches".into());
    timing.sub_batch_plan =
        ev.enable_sub_batches(&model, settings.sub_batch, settings.sub_batch_bytes)?;
    timing.sub_batches = !timing.sub_batch_plan.is_empty();
    timing.sub_batch_check = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let layers = model.layers().to_vec();
    let act_ids: Vec<ValueId> = layers.iter().map(|l| l.output).collect();
    phase(format!(
        "baseline: the original on {images} images, exponent histograms"
    ));
    let (mut base, act_hists, act_sizes) = ev.baseline(&model, &act_ids)?;
    let n_images = images as u64;
    timing.baseline = t.elapsed().as_secs_f64();
    if s.fragile_first {
        let t = Instant::now();
        phase("ordering the images fragile first".into());
        base = ev.fragile_first(&model)?;
        timing.reorder = t.elapsed().as_secs_f64();
    }
    let nonneg = non_negative_layers(&model, &onnx);
    let mut dense_weights: Vec<Tensor> = vec![];
    // Per layer: the weight tensor's channel shifts before clamping (channel scales).
    let mut wshifts: Vec<Option<Vec<i32>>> = vec![];
    let mut tensors: Vec<TensorInfo> = vec![];
    let mut hists: Vec<ExpHistogram> = vec![];
    for (k, l) in layers.iter().enumerate() {
        let wt = model.weights(k)?.to_tensor()?;
        let shifts = if s.channel_scales {
            let rows = wt.shape().first().copied().unwrap_or(1);
            scales::channel_shifts(wt.f32s()?, rows)
        } else {
            None
        };
        let wh = match &shifts {
            Some(b) => ExpHistogram::from_slice(&scales::histogram_values(wt.f32s()?, b)),
            None => ExpHistogram::from_slice(wt.f32s()?),
        };
        let channels = shifts.as_ref().map(|b| b.len() as u64);
        let an = model.value_name(l.output).unwrap_or_default().to_string();
        for (kind, hist, name, elements, signed, channel_scales) in [
            (
                TensorKind::Weight,
                wh,
                if l.weight_name.is_empty() {
                    format!("{}.weight", l.name)
                } else {
                    l.weight_name.clone()
                },
                wt.len() as u64,
                true,
                channels,
            ),
            (
                TensorKind::Activation,
                act_hists[k].clone(),
                an,
                act_sizes[k],
                !(nonneg[k] && act_hists[k].negatives() == 0),
                None,
            ),
        ] {
            tensors.push(TensorInfo {
                id: tensors.len(),
                kind,
                layer: k,
                layer_name: l.name.clone(),
                name,
                elements,
                signed,
                e_max: hist.e_max(),
                histogram: histogram_pairs(&hist),
                zeros: hist.zeros(),
                points: vec![],
                channel_scales,
            });
            hists.push(hist);
        }
        dense_weights.push(wt);
        wshifts.push(shifts);
    }
    // Per tensor and point: the first point with the identical quantised tensor (itself
    // unless a weight point repeats an earlier one).
    let mut canon: Vec<Vec<usize>> = vec![vec![]; tensors.len()];
    let m_steps = usize::from(s.m_max) + 1;
    let total = hists
        .iter()
        .zip(&tensors)
        .map(|(h, t)| candidates(h, headroom(s, t.kind)).len() * m_steps)
        .sum::<usize>()
        + 3;
    let mut done = 0usize;
    // A point matters only if it can reach the sweep floor or a variant's threshold.
    let point_need = settings.stop_early.then(|| Need {
        correct: [s.sweep_floor, s.accurate_threshold, s.approximate_threshold]
            .into_iter()
            .map(|t| need_for(base, images, t, None).correct)
            .min()
            .unwrap_or(0),
        agree: 0,
    });
    // Evaluations the combination phase adds to its planned three (recovery steps, their
    // bisection, stopped points completed for a choice): counted in `done` and `total`
    // alike as they happen, so the count moves while a variant recovers.
    let extra = std::cell::Cell::new(0usize);
    let report = |done: usize, what: String| {
        let x = extra.get();
        progress(&ProgressEvent {
            done: done + x,
            total: total + x,
            what,
        })
    };
    if !timing.sub_batch_plan.is_empty() {
        let plan: Vec<String> = timing
            .sub_batch_plan
            .iter()
            .map(|(l, k)| format!("{k} from layer {l}"))
            .collect();
        report(0, format!("sub-batches: {} images", plan.join(", ")));
    }

    // 2. Per-tensor sweeps, layer by layer (the prefix cache moves forward).
    // The cut right after the previous layer: the next base is computed from it (only
    // what lies between two layers runs) instead of re-running that layer.
    let mut prev_after = None;
    for (k, l) in layers.iter().enumerate() {
        let t = Instant::now();
        if let Some(cut) = prev_after.take() {
            ev.set_base(cut);
        }
        ev.advance(&model, k)?;
        let after = ev.cut(&model, k, true)?;
        let mut lt = LayerTiming {
            name: l.name.clone(),
            cache: t.elapsed().as_secs_f64(),
            ..Default::default()
        };
        timing.cache += lt.cache;
        for ti in [2 * k, 2 * k + 1] {
            let t = Instant::now();
            let evals0 = journal.new;
            let info = &tensors[ti];
            let (kind, signed) = (info.kind, info.signed);
            let windows = candidates(&hists[ti], headroom(s, kind));
            let mut points = vec![];
            // This tensor's distinct quantised weights so far: (values, (score, point)).
            let mut seen: Vec<(Vec<f32>, Seen)> = vec![];
            // Fewest bits of a point meeting the accurate threshold so far.
            let mut accurate_bits = u32::MAX;
            'e: for win in &windows {
                for m in (0..=s.m_max).rev() {
                    let fmt = Format::new(signed, win.exp_bits, m, win.bias).map_err(|source| {
                        DesignError::Float {
                            tensor: info.name.clone(),
                            source,
                        }
                    })?;
                    if s.skip_dominated && fmt.width() > accurate_bits {
                        done += 1;
                        continue;
                    }
                    let cs = kind == TensorKind::Weight && wshifts[k].is_some();
                    let jkey = point_key(kind, k, fmt, cs);
                    report(
                        done,
                        format!(
                            "{} {} {fmt}",
                            l.name,
                            if kind == TensorKind::Weight {
                                "weights"
                            } else {
                                "output"
                            }
                        ),
                    );
                    // A weight point's quantised tensor: an identical one of an earlier
                    // point of this tensor gives the identical network, hence its score.
                    let quantised = match kind {
                        TensorKind::Weight => Some(quantised_weights(
                            fmt,
                            &dense_weights[k],
                            wshifts[k].as_deref(),
                            &info.name,
                        )?),
                        TensorKind::Activation => None,
                    };
                    let twin = match (&quantised, journal.get(&jkey, point_need)) {
                        (Some(q), None) if settings.reuse_identical => {
                            seen.iter().position(|(v, _)| same_bits(v, q))
                        }
                        _ => None,
                    };
                    let outcome = if let Some(i) = twin {
                        let (outcome, p) = seen[i].1;
                        journal.record(&jkey, entry(outcome, point_need)?)?;
                        timing.reused_points += 1;
                        canon[ti].push(p);
                        outcome
                    } else {
                        let outcome =
                            journal.get_or(&jkey, point_need, || match (&quantised, kind) {
                                (Some(v), _) => {
                                    let dw = &dense_weights[k];
                                    let wt = Tensor::from_f32(dw.shape().to_vec(), v.clone())?;
                                    let m2 = model.with_weights(k, Weights::Dense(wt))?;
                                    ev.score_until(&m2, ev.base(), None, None, point_need)
                                }
                                (None, _) => match &after {
                                    Some(cut) => ev.score_until(
                                        &model,
                                        cut,
                                        Some((l.output, fmt)),
                                        None,
                                        point_need,
                                    ),
                                    None => {
                                        let tf = quantise_value(l.output, fmt);
                                        ev.score_until(
                                            &model,
                                            ev.base(),
                                            None,
                                            Some(&tf),
                                            point_need,
                                        )
                                    }
                                },
                            })?;
                        // Reuse only between points of this run or its journal, keyed
                        // by the tensor: the first of identical points is canonical.
                        let p = match &quantised {
                            Some(q) if settings.reuse_identical => {
                                match seen.iter().position(|(v, _)| same_bits(v, q)) {
                                    Some(i) => seen[i].1 .1,
                                    None => {
                                        seen.push((q.clone(), (outcome, points.len())));
                                        points.len()
                                    }
                                }
                            }
                            _ => points.len(),
                        };
                        canon[ti].push(p);
                        outcome
                    };
                    done += 1;
                    points.push(point(fmt, win.coverage, outcome, base));
                    timing.stopped_points += usize::from(outcome.is_none());
                    let reaches = |t: f64| outcome.is_some_and(|sc| meets(sc.correct, base, t));
                    if reaches(s.accurate_threshold) {
                        accurate_bits = accurate_bits.min(fmt.width());
                    }
                    if !reaches(s.sweep_floor) {
                        done += usize::from(m); // the skipped rest of this m sweep
                        if m == s.m_max && s.stop_e_sweep {
                            break 'e;
                        }
                        break;
                    }
                }
            }
            tensors[ti].points = points;
            let dt = t.elapsed().as_secs_f64();
            let evals = journal.new - evals0;
            match kind {
                TensorKind::Weight => {
                    timing.weight_points += dt;
                    (lt.weight, lt.weight_evals) = (dt, evals);
                }
                TensorKind::Activation => {
                    timing.activation_points += dt;
                    (lt.activation, lt.activation_evals) = (dt, evals);
                }
            }
        }
        timing.layers.push(lt);
        prev_after = after;
    }
    done = total - 3;

    // 3. Variants.
    let t = Instant::now();
    let mut variants = vec![];
    let mut combinations = 0usize;
    let mut reused_combinations = 0usize;
    // A stopped point's whole score, once a choice needs its figures; whether it took
    // an evaluation.
    let complete = |tensors: &mut [TensorInfo],
                    ti: usize,
                    p: usize,
                    journal: &mut Journal|
     -> Result<bool, DesignError> {
        let info = &tensors[ti];
        let Some(pt) = info.points.get(p).filter(|pt| pt.stopped) else {
            return Ok(false);
        };
        let (k, kind, fmt, coverage) = (info.layer, info.kind, pt.format, pt.coverage);
        let jkey = point_key(kind, k, fmt, info.channel_scales.is_some());
        let new = journal.new;
        let outcome = journal.get_or(&jkey, None, || match kind {
            TensorKind::Weight => {
                let dw = &dense_weights[k];
                let v = quantised_weights(fmt, dw, wshifts[k].as_deref(), &info.name)?;
                let m2 = model
                    .with_weights(k, Weights::Dense(Tensor::from_f32(dw.shape().to_vec(), v)?))?;
                ev.score_from_inputs_until(&m2, None, None)
            }
            TensorKind::Activation => {
                let tf = quantise_value(layers[k].output, fmt);
                ev.score_from_inputs_until(&model, Some(&tf), None)
            }
        })?;
        tensors[ti].points[p] = point(fmt, coverage, outcome, base);
        extra.set(extra.get() + 1);
        Ok(journal.new > new)
    };
    for variant in Variant::SPECULATIVE {
        let (goal, agreement) = goals(variant, s);
        let meets_goals =
            |sc: Score| meets(sc.correct, base, goal) && agrees(Some(sc.agree), images, agreement);
        let combo_need = settings
            .stop_early
            .then(|| need_for(base, images, goal, agreement));
        // A tensor whose points all stopped: its most accurate one (the fallback
        // choice) needs their figures.
        for ti in 0..tensors.len() {
            if tensors[ti].points.iter().all(|p| p.stopped) {
                for p in 0..tensors[ti].points.len() {
                    timing.completed_points +=
                        usize::from(complete(&mut tensors, ti, p, &mut journal)?);
                }
            }
        }
        let mut choice: Vec<Option<usize>> = tensors
            .iter()
            .map(|ti| select(&ti.points, base, variant, s))
            .collect();
        let mut recovered = vec![];
        let mut full: Vec<bool> = choice.iter().map(Option::is_none).collect();
        let mut widen_per_step = 1usize;
        // The state before the last recovery step and that step's widenings
        // `(tensor, choice, full)`, for the bisection back-off.
        let mut last_step: Option<(Vec<Option<usize>>, Vec<bool>, usize)> = None;
        let mut step_widenings: Vec<(usize, Option<usize>, bool)> = vec![];
        let mut evaluate = |tensors: &[TensorInfo],
                            choice: &[Option<usize>],
                            full: &[bool],
                            journal: &mut Journal,
                            need: Option<Need>,
                            step: Option<String>|
         -> Result<(Vec<Option<Format>>, Option<Score>), DesignError> {
            let formats: Vec<Option<Format>> = (0..tensors.len())
                .map(|i| {
                    if full[i] {
                        None
                    } else {
                        choice[i].map(|p| tensors[i].points[p].format)
                    }
                })
                .collect();
            // The variant's first evaluation is one of the planned three; a recovery
            // evaluation adds one to the count (done and total).
            match step {
                None => report(done, format!("{variant} variant")),
                Some(step) => {
                    extra.set(extra.get() + 1);
                    report(done, format!("{variant} variant, {step}"));
                }
            }
            let spelled: Vec<String> = formats
                .iter()
                .zip(tensors)
                .map(|(f, t)| match f {
                    None => "f32".to_string(),
                    Some(f) if t.channel_scales.is_some() => format!("{f}/cs"),
                    Some(f) => f.to_string(),
                })
                .collect();
            let vkey = format!("v:{}", sha256_hex(spelled.join(",").as_bytes()));
            // The same combination with every weight point replaced by its canonical
            // twin (identical quantised tensor): identical networks, identical scores.
            let twins: Vec<String> = (0..tensors.len())
                .map(|i| match (full[i], choice[i]) {
                    (false, Some(p)) => {
                        let c = canon[i].get(p).copied().unwrap_or(p);
                        let f = tensors[i].points[c].format;
                        match tensors[i].channel_scales {
                            Some(_) => format!("{f}/cs"),
                            None => f.to_string(),
                        }
                    }
                    _ => "f32".to_string(),
                })
                .collect();
            let ckey = format!("c:{}", sha256_hex(twins.join(",").as_bytes()));
            if settings.reuse_identical && journal.get(&vkey, need).is_none() {
                if let Some(sc) = journal.get(&ckey, need) {
                    journal.record(&vkey, entry(sc, need)?)?;
                    reused_combinations += 1;
                    combinations += 1;
                    return Ok((formats, sc));
                }
            }
            let score = journal.get_or(&vkey, need, || {
                let sm = build_reference(&model, &dense_weights, &wshifts, tensors, &formats)?;
                ev.score_from_inputs_until(
                    sm.0.as_ref().unwrap_or(&model),
                    Some(&|v: ValueId, t: &mut Tensor| {
                        if let Ok(i) = sm.1.binary_search_by_key(&v.0, |(id, _)| id.0) {
                            quantize_tensor(sm.1[i].1, t);
                        }
                        Ok(())
                    }),
                    need,
                )
            })?;
            if settings.reuse_identical {
                journal.record(&ckey, entry(score, need)?)?;
            }
            combinations += 1;
            Ok((formats, score))
        };
        let mut steps = 0usize;
        loop {
            let step = (steps > 0).then(|| {
                format!(
                    "recovery step {steps} ({} widening{})",
                    recovered.len(),
                    if recovered.len() == 1 { "" } else { "s" }
                )
            });
            steps += 1;
            let (mut formats, mut score) =
                evaluate(&tensors, &choice, &full, &mut journal, combo_need, step)?;
            // Bisection back-off: the last doubling step widened k > 1 tensors and
            // met the goal; keep the shortest prefix of that step that meets it.
            if score.is_some_and(meets_goals) && s.recovery_doubling && step_widenings.len() > 1 {
                if let Some((c0, f0, rec0)) = last_step.take() {
                    let apply = |j: usize| {
                        let (mut c, mut f) = (c0.clone(), f0.clone());
                        for &(i, ci, fi) in &step_widenings[..j] {
                            c[i] = ci;
                            f[i] = fi;
                        }
                        (c, f)
                    };
                    let (mut lo, mut hi) = (0usize, step_widenings.len());
                    while hi - lo > 1 {
                        let mid = lo + (hi - lo) / 2;
                        let (c, f) = apply(mid);
                        let step = format!(
                            "recovery back-off (keeping {mid} of the last step's {} widenings)",
                            step_widenings.len()
                        );
                        let (fm, sc) =
                            evaluate(&tensors, &c, &f, &mut journal, combo_need, Some(step))?;
                        if sc.is_some_and(meets_goals) {
                            hi = mid;
                            formats = fm;
                            score = sc;
                        } else {
                            lo = mid;
                        }
                    }
                    let (c, f) = apply(hi);
                    choice = c;
                    full = f;
                    recovered.truncate(rec0 + hi);
                }
            }
            let max_steps = s.max_recovery_steps.unwrap_or(if s.recovery_doubling {
                usize::MAX
            } else {
                2 * tensors.len()
            });
            let met = score.is_some_and(meets_goals);
            if met || full.iter().all(|&f| f) || recovered.len() >= max_steps {
                // Short of the goal (stopped early): the reported figures need the whole score.
                let score = match score {
                    Some(sc) => sc,
                    None => evaluate(
                        &tensors,
                        &choice,
                        &full,
                        &mut journal,
                        None,
                        Some("its whole score".into()),
                    )?
                    .1
                    .ok_or_else(|| DesignError::Model("a whole evaluation stopped".into()))?,
                };
                let info = variant_info(variant, &tensors, formats, score, base, images, recovered);
                variants.push(info);
                break;
            }
            let spell = |tensors: &[TensorInfo],
                         choice: &[Option<usize>],
                         full: &[bool],
                         i: usize| match (full[i], choice[i]) {
                (false, Some(p)) => tensors[i].points[p].format.to_string(),
                _ => "f32".to_string(),
            };
            last_step = Some((choice.clone(), full.clone(), recovered.len()));
            step_widenings.clear();
            for _ in 0..widen_per_step {
                let mut widenable: Vec<usize> = (0..tensors.len()).filter(|&i| !full[i]).collect();
                if s.widen_activations_first
                    && widenable
                        .iter()
                        .any(|&i| tensors[i].kind == TensorKind::Activation)
                {
                    widenable.retain(|&i| tensors[i].kind == TensorKind::Activation);
                }
                if recovered.len() >= max_steps {
                    break;
                }
                let Some(worst) =
                    worst_tensor(&tensors, &choice, &widenable, s.recovery_rank, n_images)
                else {
                    break;
                };
                let old = spell(&tensors, &choice, &full, worst);
                // The next wider points: if those of the fewest bits all stopped,
                // their figures decide between them (a point that did not stop beats
                // any that did).
                let next = widen_candidates(&tensors[worst], choice[worst]);
                if next.iter().all(|&p| tensors[worst].points[p].stopped) {
                    for p in next {
                        timing.completed_points +=
                            usize::from(complete(&mut tensors, worst, p, &mut journal)?);
                    }
                }
                match widen(&tensors[worst], choice[worst]) {
                    Some(p) => choice[worst] = Some(p),
                    None => full[worst] = true,
                }
                step_widenings.push((worst, choice[worst], full[worst]));
                let new = spell(&tensors, &choice, &full, worst);
                recovered.push(format!("{}: {old} -> {new}", tensors[worst].name));
            }
            if s.recovery_doubling {
                widen_per_step = widen_per_step.saturating_mul(2);
            }
        }
        done += 1;
    }
    if s.adopt_dominating {
        adopt_dominating(&mut variants, base, s);
    }
    timing.combinations = t.elapsed().as_secs_f64();
    report(total, "done".into());

    // 4. Package contents.
    let (graph, weights, variants) =
        package_contents(&model, &onnx, &dense_weights, &wshifts, &tensors, variants)?;
    let meta = Meta {
        tool: format!("sieve-design {}", env!("CARGO_PKG_VERSION")),
        provenance,
        settings: s.clone(),
        baseline: Accuracy {
            correct: base,
            images: images as u64,
            top1: norm(base, images as u64),
        },
        search: SearchStats {
            points: tensors.iter().map(|t| t.points.len()).sum(),
            combinations,
        },
        tensors,
        variants,
        calibration: BTreeMap::new(),
        output: settings.output.clone(),
    };
    timing.new_evaluations = journal.new;
    timing.images_run = ev.images_run();
    timing.reused_combinations = reused_combinations;
    timing.total = t_all.elapsed().as_secs_f64();
    Ok(DesignOutcome {
        meta,
        graph,
        weights,
        timing,
    })
}

type Reference = (Option<Model>, Vec<(ValueId, Format)>);

/// A weight point's outcome (`None`: stopped) and index, for later identical points.
type Seen = (Option<Score>, usize);

/// A point's journal key (channel-scaled weight points are other numerics: own key).
fn point_key(kind: TensorKind, layer: usize, fmt: Format, channel_scaled: bool) -> String {
    format!(
        "{}{layer}:{fmt}{}",
        if kind == TensorKind::Weight { "w" } else { "a" },
        if channel_scaled { "/cs" } else { "" }
    )
}

/// A layer's weights in `fmt` (with its channel shifts, if any).
fn quantised_weights(
    fmt: Format,
    dense: &Tensor,
    shifts: Option<&[i32]>,
    name: &str,
) -> Result<Vec<f32>, DesignError> {
    Ok(match shifts {
        Some(b) => scales::quantize_scaled(fmt, dense.f32s()?, dense.shape(), b, name)?,
        None => {
            let mut v = dense.f32s()?.to_vec();
            quantize_slice(fmt, &mut v);
            v
        }
    })
}

/// A run transform that reformats value `id` to `fmt`.
fn quantise_value(
    id: ValueId,
    fmt: Format,
) -> impl Fn(ValueId, &mut Tensor) -> Result<(), NnError> {
    move |v: ValueId, t: &mut Tensor| {
        if v == id {
            quantize_tensor(fmt, t);
        }
        Ok(())
    }
}

/// An explored point from its outcome (`None`: stopped below what matters).
fn point(format: Format, coverage: f64, outcome: Option<Score>, base: u64) -> Point {
    Point {
        format,
        bits: format.width(),
        coverage,
        correct: outcome.map_or(0, |sc| sc.correct),
        normalised: outcome.map_or(0.0, |sc| norm(sc.correct, base)),
        agree: outcome.map(|sc| sc.agree),
        stopped: outcome.is_none(),
    }
}

/// Equal bit for bit (`-0.0 != 0.0`, a NaN equals the same NaN).
fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// The reference path of a combination: the model with each reformatted weight
/// tensor encoded, packed and decoded back to `f32`, plus the activation formats.
fn build_reference(
    model: &Model,
    dense: &[Tensor],
    wshifts: &[Option<Vec<i32>>],
    tensors: &[TensorInfo],
    formats: &[Option<Format>],
) -> Result<Reference, DesignError> {
    let mut m = None;
    let mut acts = vec![];
    for (ti, fmt) in tensors.iter().zip(formats) {
        let Some(fmt) = *fmt else { continue };
        match ti.kind {
            TensorKind::Weight => {
                let w = &dense[ti.layer];
                let (p, shifts) = encode_weights(fmt, w, wshifts[ti.layer].as_deref(), &ti.name)?;
                let mm = m.get_or_insert_with(|| model.clone());
                mm.set_weights(
                    ti.layer,
                    weights_from_packed(w.shape().to_vec(), p, shifts, true)?,
                )?;
            }
            TensorKind::Activation => acts.push((model.layers()[ti.layer].output, fmt)),
        }
    }
    acts.sort_by_key(|(v, _)| v.0);
    Ok((m, acts))
}

/// The package tensor holding the per-channel shifts of the codes stored under `key`.
pub(crate) fn shifts_key(key: &str) -> String {
    format!("{key}.shifts")
}

/// A weight tensor encoded in `fmt`: plain codes, or with channel scales (codes of
/// the shifted values and the stored shifts) when the tensor has base shifts.
fn encode_weights(
    fmt: Format,
    w: &Tensor,
    base: Option<&[i32]>,
    name: &str,
) -> Result<(PackedTensor, Option<Vec<i8>>), DesignError> {
    match base {
        Some(b) => {
            let (p, s) = scales::encode_scaled(fmt, w.f32s()?, b, name)?;
            Ok((p, Some(s)))
        }
        None => {
            let p =
                PackedTensor::encode_from(fmt, w.f32s()?).map_err(|source| DesignError::Float {
                    tensor: name.to_string(),
                    source,
                })?;
            Ok((p, None))
        }
    }
}

/// [`SearchSettings::adopt_dominating`]: the accurate, then the approximate variant takes
/// the combination of the variant with the fewest average weight bits among those that
/// meet its goal on the validation images and have no more weight and no more activation
/// bits than it, with fewer of either.
fn adopt_dominating(variants: &mut [VariantInfo], base: u64, s: &SearchSettings) {
    for target in [Variant::Accurate, Variant::Approximate] {
        let (goal, agreement) = goals(target, s);
        let Some(ti) = variants.iter().position(|v| v.variant == target) else {
            continue;
        };
        let own = &variants[ti];
        let best = variants
            .iter()
            .enumerate()
            .filter(|&(i, v)| {
                i != ti
                    && meets(v.accuracy.correct, base, goal)
                    && agrees(v.agree, v.accuracy.images as usize, agreement)
                    && v.avg_weight_bits <= own.avg_weight_bits
                    && v.avg_activation_bits <= own.avg_activation_bits
                    && (v.avg_weight_bits < own.avg_weight_bits
                        || v.avg_activation_bits < own.avg_activation_bits)
            })
            .min_by(|a, b| a.1.avg_weight_bits.total_cmp(&b.1.avg_weight_bits))
            .map(|(i, _)| i);
        if let Some(bi) = best {
            let from = &variants[bi];
            let note = format!(
                "adopted the {} combination: {:.3} weight / {:.3} activation bits instead of \
                 {:.3} / {:.3}, {} of {} validation images correct (meets the {target} goal)",
                from.variant,
                from.avg_weight_bits,
                from.avg_activation_bits,
                own.avg_weight_bits,
                own.avg_activation_bits,
                from.accuracy.correct,
                from.accuracy.images,
            );
            let mut recovered = own.recovered.clone();
            recovered.push(note);
            variants[ti] = VariantInfo {
                variant: target,
                recovered,
                ..from.clone()
            };
        }
    }
}

fn variant_info(
    variant: Variant,
    tensors: &[TensorInfo],
    formats: Vec<Option<Format>>,
    score: Score,
    base: u64,
    images: usize,
    recovered: Vec<String>,
) -> VariantInfo {
    let avg = |kind: TensorKind| {
        let (mut bits, mut n) = (0f64, 0f64);
        for (t, f) in tensors.iter().zip(&formats) {
            if t.kind == kind {
                bits += t.elements as f64 * f.map_or(32.0, |f| f64::from(f.width()));
                n += t.elements as f64;
                // One i8 shift per channel is stored with scaled codes.
                if let (Some(_), Some(c)) = (f, t.channel_scales) {
                    bits += 8.0 * c as f64;
                }
            }
        }
        if n > 0.0 {
            bits / n
        } else {
            32.0
        }
    };
    VariantInfo {
        variant,
        avg_weight_bits: avg(TensorKind::Weight),
        avg_activation_bits: avg(TensorKind::Activation),
        weight_keys: vec![None; formats.len()],
        formats,
        weight_bytes: 0,
        accuracy: Accuracy {
            correct: score.correct,
            images: images as u64,
            top1: norm(score.correct, images as u64),
        },
        normalised: norm(score.correct, base),
        agree: Some(score.agree),
        recovered,
    }
}

type Contents = (Vec<u8>, BTreeMap<String, Vec<u8>>, Vec<VariantInfo>);

/// The stripped graph, the packed weights and the variants with their keys.
fn package_contents(
    model: &Model,
    onnx: &proto::ModelProto,
    dense: &[Tensor],
    wshifts: &[Option<Vec<i32>>],
    tensors: &[TensorInfo],
    mut variants: Vec<VariantInfo>,
) -> Result<Contents, DesignError> {
    let mut onnx = onnx.clone();
    let mut weights = BTreeMap::new();
    // Strip initializers read only as the weights of compute layers.
    let mut uses: BTreeMap<String, usize> = BTreeMap::new();
    if let Some(g) = onnx.graph.as_ref() {
        for n in &g.node {
            for i in &n.input {
                *uses.entry(i.clone()).or_default() += 1;
            }
        }
    }
    let mut layer_uses: BTreeMap<String, usize> = BTreeMap::new();
    for l in model.layers() {
        *layer_uses.entry(l.weight_name.clone()).or_default() += 1;
    }
    if let Some(g) = onnx.graph.as_mut() {
        for init in &mut g.initializer {
            let name = init.name().to_string();
            if layer_uses
                .get(&name)
                .is_some_and(|&n| uses.get(&name) == Some(&n))
            {
                init.raw_data = None;
                init.float_data.clear();
                init.data_location = Some(proto::tensor_proto::DataLocation::External as i32);
                init.external_data = vec![proto::StringStringEntryProto {
                    key: Some("location".into()),
                    value: Some(format!("sieve:{name}")),
                }];
            }
        }
    }
    let graph = prost::Message::encode_to_vec(&onnx);
    for v in &mut variants {
        let mut bytes = 0u64;
        for (ti, t) in tensors.iter().enumerate() {
            if t.kind != TensorKind::Weight {
                continue;
            }
            let (key, data) = match v.formats[ti] {
                Some(fmt) => {
                    let (p, shifts) =
                        encode_weights(fmt, &dense[t.layer], wshifts[t.layer].as_deref(), &t.name)?;
                    match shifts {
                        Some(sh) => {
                            let key = format!("w{}/{fmt}/cs", t.layer);
                            let data: Vec<u8> = sh.iter().map(|&s| s as u8).collect();
                            bytes += data.len() as u64;
                            weights.entry(shifts_key(&key)).or_insert(data);
                            (key, p.bytes().to_vec())
                        }
                        None => (format!("w{}/{fmt}", t.layer), p.bytes().to_vec()),
                    }
                }
                None => (
                    format!("w{}/f32", t.layer),
                    dense[t.layer]
                        .f32s()?
                        .iter()
                        .flat_map(|x| x.to_le_bytes())
                        .collect(),
                ),
            };
            bytes += data.len() as u64;
            v.weight_keys[ti] = Some(key.clone());
            weights.entry(key).or_insert(data);
        }
        v.weight_bytes = bytes;
    }
    Ok((graph, weights, variants))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(variant: Variant, wbits: f64, abits: f64, correct: u64) -> VariantInfo {
        VariantInfo {
            variant,
            formats: vec![],
            weight_keys: vec![],
            avg_weight_bits: wbits,
            avg_activation_bits: abits,
            weight_bytes: 0,
            accuracy: Accuracy {
                correct,
                images: 1000,
                top1: correct as f64 / 1000.0,
            },
            normalised: correct as f64 / 900.0,
            agree: None,
            recovered: vec![format!("{variant} own")],
        }
    }

    /// Accurate and approximate adopt a dominating combination that meets their goal
    /// (fewest weight bits among several); never one that misses the goal, has more
    /// bits of either kind, or only equals them.
    #[test]
    fn variants_adopt_dominating_combinations() {
        let s = SearchSettings::default_with_batch(8);
        // Baseline 900 correct: the accurate goal (1.0 - 0.002) needs 899 (898.2),
        // the approximate one (0.999 - 0.002) 898 (897.3).
        let run = |v: Vec<VariantInfo>| {
            let mut v = v;
            adopt_dominating(&mut v, 900, &s);
            v
        };
        // NIN's case: exact cheaper in both and at the accurate goal.
        let v = run(vec![
            info(Variant::Exact, 7.61, 6.33, 899),
            info(Variant::Accurate, 8.30, 32.0, 899),
            info(Variant::Approximate, 7.55, 32.0, 898),
        ]);
        assert_eq!(v[1].variant, Variant::Accurate);
        assert_eq!(
            (v[1].avg_weight_bits, v[1].avg_activation_bits),
            (7.61, 6.33)
        );
        assert_eq!(v[1].recovered.len(), 2);
        assert_eq!(v[1].recovered[0], "accurate own");
        assert!(
            v[1].recovered[1].starts_with("adopted the exact combination"),
            "{:?}",
            v[1].recovered
        );
        // Approximate (7.55 weight bits) is not dominated by exact (7.61).
        assert_eq!(v[2].avg_weight_bits, 7.55);
        assert_eq!(v[2].recovered.len(), 1);
        // Exact never changes.
        assert_eq!(v[0].recovered, vec!["exact own".to_string()]);
        // A cheaper combination under the goal is not adopted; the approximate goal is
        // lower, so there it is.
        let v = run(vec![
            info(Variant::Exact, 6.0, 6.0, 898),
            info(Variant::Accurate, 8.0, 8.0, 900),
            info(Variant::Approximate, 7.0, 8.0, 898),
        ]);
        assert_eq!(v[1].avg_weight_bits, 8.0);
        assert_eq!((v[2].avg_weight_bits, v[2].avg_activation_bits), (6.0, 6.0));
        // More activation bits, or equal bits: kept.
        let v = run(vec![
            info(Variant::Exact, 6.0, 9.0, 900),
            info(Variant::Accurate, 8.0, 8.0, 900),
            info(Variant::Approximate, 8.0, 8.0, 900),
        ]);
        assert_eq!(v[1].avg_weight_bits, 8.0);
        assert_eq!(v[2].recovered.len(), 1);
        // The fewest weight bits among several dominating ones.
        let v = run(vec![
            info(Variant::Exact, 7.0, 7.0, 900),
            info(Variant::Accurate, 9.0, 9.0, 900),
            info(Variant::Approximate, 6.5, 8.0, 899),
        ]);
        assert_eq!(v[1].avg_weight_bits, 6.5);
        assert!(v[1].recovered[1].starts_with("adopted the approximate"));
        // Off in the paper's settings.
        let mut v = vec![
            info(Variant::Exact, 7.61, 6.33, 899),
            info(Variant::Accurate, 8.30, 32.0, 899),
        ];
        let paper = SearchSettings::paper(8);
        assert!(!paper.adopt_dominating);
        if paper.adopt_dominating {
            adopt_dominating(&mut v, 900, &paper);
        }
        assert_eq!(v[1].avg_weight_bits, 8.30);
    }

    #[test]
    fn needs_are_the_least_scores_that_meet_the_goals() {
        // 846 of 1000 correct originally: 99.8% needs 845 (844.3 rounded up), 100% 846.
        let n = need_for(846, 1000, 0.998, None);
        assert_eq!(
            n,
            Need {
                correct: 845,
                agree: 0
            }
        );
        assert!(meets(845, 846, 0.998) && !meets(844, 846, 0.998));
        assert_eq!(need_for(846, 1000, 1.0, Some(0.97)).agree, 970);
        assert_eq!(
            need_for(846, 1000, 1.0, Some(1.0)),
            Need {
                correct: 846,
                agree: 1000
            }
        );
        // Unreachable goals (more than every image) and a NaN: never met.
        assert_eq!(need_for(846, 1000, 2.0, None).correct, u64::MAX);
        assert_eq!(need_for(846, 1000, f64::NAN, None).correct, u64::MAX);
        assert_eq!(need_for(0, 10, 0.998, None).correct, 0);
    }

    #[test]
    fn journal_lines_round_trip_and_torn_ones_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let need = Need {
            correct: 845,
            agree: 3,
        };
        {
            let mut j = Journal::open(Some(path.clone()), "k", None, 1000).unwrap();
            j.record(
                "w0:s1e3m6b5/cs",
                Entry::Score(Score {
                    correct: 849,
                    agree: 995,
                }),
            )
            .unwrap();
            j.record("a1:u0e4m2b9", Entry::Below(need)).unwrap();
            j.record("v:ab", Entry::Below(need)).unwrap();
            // A whole score replaces a stopped record; nothing replaces a score.
            j.record(
                "v:ab",
                Entry::Score(Score {
                    correct: 800,
                    agree: 900,
                }),
            )
            .unwrap();
            j.record("v:ab", Entry::Below(need)).unwrap();
        }
        // A line torn mid-number (no newline): ignored, not read as another figure.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"a2:u0e4m2b9 845 99")
            .unwrap();
        let j = Journal::open(Some(path.clone()), "k", None, 1000).unwrap();
        assert_eq!(j.done.len(), 3, "{:?}", j.done);
        let w = Score {
            correct: 849,
            agree: 995,
        };
        assert_eq!(j.get("w0:s1e3m6b5/cs", None), Some(Some(w)));
        assert_eq!(j.get("w0:s1e3m6b5/cs", Some(need)), Some(Some(w)));
        assert_eq!(
            j.get(
                "w0:s1e3m6b5/cs",
                Some(Need {
                    correct: 850,
                    agree: 0
                })
            ),
            Some(None)
        );
        // Stopped short of 845: short of any higher need, unknown for a lower one.
        assert_eq!(j.get("a1:u0e4m2b9", Some(need)), Some(None));
        assert_eq!(
            j.get(
                "a1:u0e4m2b9",
                Some(Need {
                    correct: 846,
                    agree: 3
                })
            ),
            Some(None)
        );
        assert_eq!(
            j.get(
                "a1:u0e4m2b9",
                Some(Need {
                    correct: 844,
                    agree: 3
                })
            ),
            None
        );
        assert_eq!(j.get("a1:u0e4m2b9", None), None);
        assert_eq!(
            j.get("v:ab", None),
            Some(Some(Score {
                correct: 800,
                agree: 900
            }))
        );
        assert_eq!(j.get("a2:u0e4m2b9", None), None);
        drop(j);
        // The torn record was dropped: a record after it stands alone.
        let mut j = Journal::open(Some(path.clone()), "k", None, 1000).unwrap();
        j.record("a3:u0e4m2b9", Entry::Score(w)).unwrap();
        drop(j);
        let j = Journal::open(Some(path), "k", None, 1000).unwrap();
        assert_eq!(j.get("a3:u0e4m2b9", None), Some(Some(w)));
        assert_eq!(j.get("a2:u0e4m2b9", None), None);
        assert_eq!(j.done.len(), 4);
    }

    #[test]
    fn damaged_journal_lines_are_dropped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let w = Score {
            correct: 849,
            agree: 995,
        };
        {
            let mut j = Journal::open(Some(path.clone()), "k", None, 1000).unwrap();
            j.record("w0:s1e3m6b5/cs", Entry::Score(w)).unwrap();
            j.record("w1:s1e3m6b5/cs", Entry::Score(w)).unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        // Every record carries its check.
        assert!(text.contains("w0:s1e3m6b5/cs 849 995 ~"), "{text}");
        // One digit of the second record changed (a damaged disk block, an edit).
        let damaged = text.replace("w1:s1e3m6b5/cs 849", "w1:s1e3m6b5/cs 949");
        assert_ne!(damaged, text);
        // A record without a check (an earlier version's journal) is still read; one
        // counting more images than there are, and garbage, are not.
        let extra = "a0:u0e4m2b9 800 900\na1:u0e4m2b9 1001 3\n\u{fffd}zz\n";
        std::fs::write(&path, format!("{damaged}{extra}")).unwrap();
        let j = Journal::open(Some(path.clone()), "k", None, 1000).unwrap();
        assert_eq!(j.dropped, 3, "{:?}", j.done);
        assert_eq!(j.get("w0:s1e3m6b5/cs", None), Some(Some(w)));
        assert_eq!(j.get("w1:s1e3m6b5/cs", None), None);
        assert_eq!(
            j.get("a0:u0e4m2b9", None),
            Some(Some(Score {
                correct: 800,
                agree: 900
            }))
        );
        assert_eq!(j.get("a1:u0e4m2b9", None), None);
    }

    #[test]
    fn headroom_adds_wider_exponents_first() {
        let xs: Vec<f32> = (1..=200).map(|i| i as f32 / 64.0).collect();
        let h = ExpHistogram::from_slice(&xs);
        let paper = candidates(&h, 0);
        assert_eq!(paper, h.candidate_exponents());
        let wide = candidates(&h, 2);
        assert_eq!(wide.len(), paper.len() + 2);
        assert_eq!(wide[0].exp_bits, h.e_max() + 2);
        assert_eq!(wide[1].exp_bits, h.e_max() + 1);
        assert_eq!(&wide[2..], &paper[..]);
    }
}
