//! The package metadata (`__metadata__["sieve"]` of the safetensors container),
//! also the JSON summary of a design run. Field order is fixed and maps are
//! `BTreeMap`s, so the serialisation is deterministic.

use crate::Variant;
use serde::{Deserialize, Serialize};
use sieve_float::Format;
use std::collections::BTreeMap;

/// Everything a package records besides the tensors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// Name and version of the tool that wrote the package (`sieve-design 0.1.0`).
    pub tool: String,
    /// Where the model and the data came from.
    pub provenance: Provenance,
    /// The search settings.
    pub settings: SearchSettings,
    /// The original model on the validation set.
    pub baseline: Accuracy,
    /// Every searched tensor (weights and activations), by id.
    pub tensors: Vec<TensorInfo>,
    /// The speculative variants (exact, accurate, approximate).
    pub variants: Vec<VariantInfo>,
    /// Search statistics.
    pub search: SearchStats,
    /// Free-form sections added after the design (e.g. the misspeculation
    /// detector's thresholds per variant and target, key `detector`); see
    /// [`crate::Package::update_metadata`].
    #[serde(default)]
    pub calibration: BTreeMap<String, serde_json::Value>,
    /// What the model's first output holds (from the model card next to the
    /// source ONNX at design time); `None` when there was no card (packages
    /// written before this field existed also load as `None`).
    #[serde(default)]
    pub output: Option<OutputContract>,
}

/// The output contract of the model, as its card states it: consumers (the
/// accuracy command, the misspeculation detector) read the class scores with it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputContract {
    /// `"probabilities"` (softmax output, rows sum to 1) or `"logits"`
    /// (unnormalised scores); `"other"` for anything else the card names.
    pub kind: String,
    /// Length of the output vector, including any background class.
    pub num_classes: usize,
    /// Outputs before label 0 (1 when output 0 is "background": class = argmax - 1).
    pub background_offset: usize,
}

impl OutputContract {
    /// The contract of a model card's `[output]` section.
    pub fn from_card(card: &sieve_data::ModelCard) -> OutputContract {
        let kind = match card.output.kind {
            sieve_data::OutputKind::Probabilities => "probabilities",
            sieve_data::OutputKind::Logits => "logits",
            sieve_data::OutputKind::Other => "other",
        };
        OutputContract {
            kind: kind.to_string(),
            num_classes: card.output.num_classes,
            background_offset: card.output.background_offset,
        }
    }
}

/// Provenance of a package.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// sha256 of the source ONNX bytes.
    pub model_sha256: String,
    /// Size of the source ONNX file in bytes.
    pub model_bytes: u64,
    /// The dataset spec as given (`mnist:DIR`, ...).
    pub dataset: String,
    /// The split searched on (`validation` or `test`).
    pub split: String,
    /// [`sieve_data::Dataset::fingerprint_prefix`] of the images used.
    pub dataset_fingerprint: String,
    /// Number of validation images used.
    pub images: usize,
    /// Absolute path of the source ONNX given to the design run, if known
    /// ([`crate::Package::original_model`] loads it, checking `model_sha256`).
    #[serde(default)]
    pub source_path: Option<String>,
}

/// The settings that determine the search result (their hash keys the journal).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchSettings {
    /// Largest mantissa width tried (the paper: 6).
    pub m_max: u8,
    /// The `m` sweep stops once normalised accuracy falls below this (0.998).
    pub sweep_floor: f64,
    /// Normalised accuracy the accurate variant needs per tensor (1.0).
    pub accurate_threshold: f64,
    /// Normalised accuracy the approximate variant needs per tensor (0.999).
    pub approximate_threshold: f64,
    /// A variant whose combined normalised accuracy is below its threshold minus
    /// this is repaired by widening tensors (DESIGN §3 step 3).
    pub recovery_slack: f64,
    /// Stop the `e` sweep of a tensor when even `m = m_max` falls below the floor.
    pub stop_e_sweep: bool,
    /// Extra exponent widths tried above `e_max` for **weight** tensors (0 = the
    /// paper; activations always start at `e_max`). `e_max` keeps 99.5% of the
    /// values; weights from per-channel int8 quantised models have whole channels
    /// in that last 0.5% (flushing them loses accuracy), so they need one more
    /// exponent bit.
    #[serde(default)]
    pub e_headroom: u8,
    /// Images per evaluation batch (results may depend on it through kernel tiling).
    pub batch: usize,
    /// Skip a sweep point whose width exceeds the fewest bits of a point of the
    /// same tensor already meeting the accurate threshold: it can be chosen
    /// neither by the accurate nor by the approximate variant (only the exact
    /// variant, which picks the most accurate explored point, sees fewer points).
    /// A skipped point does not stop the `m` sweep. `false` = the paper's sweep.
    #[serde(default)]
    pub skip_dominated: bool,
    /// How recovery ranks the tensors to widen: by the chosen point's own loss of
    /// correct answers (the paper's wording, `accuracy`), or by its disagreement
    /// with the original model's top-1 on the validation images (`fidelity`: a
    /// finer signal when one image is a large share of the threshold).
    #[serde(default)]
    pub recovery_rank: RecoveryRank,
    /// Recovery widens activation tensors before weight tensors (activations do
    /// not count towards the stored weight bits).
    #[serde(default)]
    pub widen_activations_first: bool,
    /// Most recovery steps (widenings) per variant. `None`: no limit when
    /// [`SearchSettings::recovery_doubling`] is on (the doubling reaches every tensor
    /// at `f32` within O(log n) evaluations, so recovery always ends at a combination
    /// that meets the goal), else twice the number of tensors.
    #[serde(default)]
    pub max_recovery_steps: Option<usize>,
    /// Each recovery step that still falls short widens twice as many tensors as
    /// the previous one (1, 2, 4, ..., each chosen by the ranking), so recovery
    /// needs O(log n) whole-network evaluations instead of O(n); `false` = one
    /// tensor per step.
    #[serde(default)]
    pub recovery_doubling: bool,
    /// Per-output-channel power-of-two weight scales ([`crate::scales`]): each weight
    /// tensor with at least two channels of different magnitude stores one `i8`
    /// shift per channel and is fitted on the shifted values. `false` (and absent in
    /// older packages) = the paper's per-tensor format.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub channel_scales: bool,
    /// After recovery, the accurate and the approximate variant each take another
    /// variant's combination if that one meets their own goal (threshold minus the
    /// recovery slack) on the validation images with no more weight bits and no more
    /// activation bits, and fewer of either (Pareto dominance; the fewest weight bits
    /// among several). Recovery paths differ per variant, so the exact variant can end
    /// cheaper than the accurate one (NIN: 7.61 vs 8.30 weight bits, both at the
    /// accurate goal). Recorded in the variant's `recovered` list. `false` (and absent
    /// in older packages) = each variant keeps its own combination (the paper).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adopt_dominating: bool,
    /// Beyond the paper: the exact and the accurate variant are also recovered until
    /// their top-1 equals the original's on at least this share of the validation
    /// images (e.g. 0.97). Equal accuracy alone can be met by gains cancelling losses
    /// on the validation images (MobileNet v2, 1,000 images: 846 = 846 correct with
    /// 79 answers changed, 0.69 points lost on test); agreement measures the change
    /// itself. Also required of a combination the accurate variant adopts. `None` (and
    /// absent in older packages) = accuracy only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_agreement: Option<f64>,
    /// Evaluate the validation images fragile first: those the original model gets
    /// wrong, then the rest by the original's top-1 margin, smallest first
    /// ([`crate::eval::Evaluator::fragile_first`]), so that an evaluation that falls
    /// short stops after fewer images. Scores count the same images either way; only
    /// which images share a batch changes (kernels whose blocking spans a batch's images
    /// round differently). `false` (and absent in older packages) = dataset order.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fragile_first: bool,
}

/// The ranking recovery uses to pick the next tensor to widen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecoveryRank {
    /// Fewest correct answers of the chosen point on its own first (ties: fewer bits).
    #[default]
    Accuracy,
    /// Most disagreements with the original's top-1 of the chosen point on its own
    /// first (ties: fewest correct, then fewer bits).
    Fidelity,
}

/// Top-1 on the validation images.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    /// Correct top-1 predictions.
    pub correct: u64,
    /// Images evaluated.
    pub images: u64,
    /// `correct / images`.
    pub top1: f64,
}

/// Weight tensor of a layer or the layer's materialised output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TensorKind {
    /// The layer's weight tensor (after any folded BatchNormalization).
    Weight,
    /// The layer's materialised output (after a fused activation).
    Activation,
}

/// One searched tensor and its explored points.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TensorInfo {
    /// Index in [`Meta::tensors`].
    pub id: usize,
    /// Weight or activation.
    pub kind: TensorKind,
    /// Index of the compute layer in [`sieve_nn::Model::layers`].
    pub layer: usize,
    /// Layer (node) name in the source model.
    pub layer_name: String,
    /// Weight initializer name (weights) or value name (activations).
    pub name: String,
    /// Elements: the whole weight tensor, or per image for activations.
    pub elements: u64,
    /// Whether formats carry a sign bit (activations that are non-negative by
    /// construction, e.g. after a fused Relu, use unsigned formats).
    pub signed: bool,
    /// The histogram's `e_max` (smallest `e` covering 99.5%).
    pub e_max: u8,
    /// Exponent histogram: `(exponent, count)` for non-zero bins, ascending.
    pub histogram: Vec<(i32, u64)>,
    /// Zero values in the histogram.
    pub zeros: u64,
    /// Every evaluated point, in search order.
    pub points: Vec<Point>,
    /// Weight tensors with per-channel scales ([`SearchSettings::channel_scales`]):
    /// the number of channels (axis 0), each with one stored `i8` shift next to the
    /// codes (package tensor `<weights key>.shifts`). The histogram, `e_max` and
    /// every point are then those of the shifted values. `None`: no scales.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_scales: Option<u64>,
}

/// An explored CNN: one tensor in one format, everything else full precision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// The format.
    pub format: Format,
    /// Bits per value.
    pub bits: u32,
    /// Coverage of the format's exponent window.
    pub coverage: f64,
    /// Correct top-1 predictions on the validation images.
    pub correct: u64,
    /// `correct / baseline correct`.
    pub normalised: f64,
    /// Validation images whose top-1 output equals the original's (`None` in
    /// packages written before it was recorded).
    #[serde(default)]
    pub agree: Option<u64>,
    /// The evaluation stopped once the point could no longer reach the sweep floor
    /// (nor a variant's threshold): it is below them, and `correct`, `normalised` and
    /// `agree` are not known (0, 0, `None`). Absent (`false`) in packages written
    /// before the search stopped early and with `--full-scores`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stopped: bool,
}

/// One speculative variant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VariantInfo {
    /// Which variant.
    pub variant: Variant,
    /// Per tensor id: the format, or `None` for full precision (f32).
    pub formats: Vec<Option<Format>>,
    /// Per tensor id: for weights stored packed, the package tensor holding them.
    pub weight_keys: Vec<Option<String>>,
    /// Average bits per weight (weighted by element count; f32 counts 32; the
    /// per-channel shifts of a scaled tensor add 8 bits per channel to its total).
    pub avg_weight_bits: f64,
    /// Average bits per activation value (weighted by elements per image).
    pub avg_activation_bits: f64,
    /// Bytes of this variant's packed weights (codes, per-channel shifts, f32 tensors).
    pub weight_bytes: u64,
    /// The combination on the validation images.
    pub accuracy: Accuracy,
    /// `accuracy.correct / baseline.correct`.
    pub normalised: f64,
    /// Validation images whose top-1 output equals the original's (`None` in
    /// packages written before it was recorded).
    #[serde(default)]
    pub agree: Option<u64>,
    /// Tensors widened by the recovery step, in order (`name: old -> new`).
    pub recovered: Vec<String>,
}

impl VariantInfo {
    /// Share of the validation images whose top-1 equals the original's (`None` in
    /// packages written before agreement was recorded).
    pub fn agreement(&self) -> Option<f64> {
        match self.agree {
            Some(a) if self.accuracy.images > 0 => Some(a as f64 / self.accuracy.images as f64),
            _ => None,
        }
    }

    /// [`VariantInfo::agreement`] as a percentage for tables (`-` when unknown).
    pub fn agreement_text(&self) -> String {
        self.agreement()
            .map_or("-".to_string(), |a| format!("{:.1}%", 100.0 * a))
    }
}

/// Search statistics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchStats {
    /// Explored points (one tensor reformatted) over all tensors.
    pub points: usize,
    /// Whole-network evaluations of combinations (variants and recovery steps).
    pub combinations: usize,
}

impl Meta {
    /// The info of `variant`, if stored.
    pub fn variant(&self, variant: Variant) -> Option<&VariantInfo> {
        self.variants.iter().find(|v| v.variant == variant)
    }
}
