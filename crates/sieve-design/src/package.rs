//! The `.sieve` package: a safetensors file.
//!
//! - tensor `graph.onnx` (U8): the source ONNX model with the initializers of the
//!   stored layers' weights turned into external data (`location = sieve:<name>`),
//!   so the file carries no f32 copy of them;
//! - tensors `w<layer>/<format>` (U8): a layer's weights bit-packed in that format
//!   ([`sieve_float::PackedTensor`] bytes), or `w<layer>/f32` (raw little-endian
//!   f32) for a tensor a variant keeps at full precision; variants share tensors;
//! - with per-channel scales (format version 2): `w<layer>/<format>/cs` (U8) the
//!   codes of the shifted values and `w<layer>/<format>/cs.shifts` (U8) one `i8`
//!   shift per output channel (two's complement), see [`crate::scales`]; the
//!   tensor's [`crate::TensorInfo::channel_scales`] gives the channel count;
//! - `__metadata__["sieve"]`: `{"version":N,"sha256":"<hex>","meta":{...}}` where
//!   `meta` is [`Meta`] and `sha256` covers the exact `meta` text and every tensor
//!   (name, length, bytes, in name order). Verified on load.

use crate::meta::{Meta, TensorKind};
use crate::runner::{weights_from_packed, SpeculativeModel};
use crate::search::DesignOutcome;
use crate::{hex, DesignError, Variant};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use sieve_float::PackedTensor;
use sieve_nn::{Tensor, Weights};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// The newest package format version this build reads and writes: 2 = version 1
/// plus per-channel weight scales. A package without scales is written as version 1
/// (readable by older builds); one with scales as version 2, which older builds
/// reject with a version error instead of running the codes without their scales.
pub const FORMAT_VERSION: u32 = 2;
/// The oldest package format version this build reads.
pub const MIN_FORMAT_VERSION: u32 = 1;
const GRAPH: &str = "graph.onnx";

/// A speculative model package in memory.
#[derive(Clone, Debug)]
pub struct Package {
    meta: Meta,
    graph: Vec<u8>,
    weights: BTreeMap<String, Vec<u8>>,
    label: String,
}

#[derive(serde::Deserialize)]
struct Envelope<'a> {
    sha256: String,
    #[serde(borrow)]
    meta: &'a RawValue,
}

#[derive(serde::Deserialize)]
struct VersionOnly {
    version: u32,
}

fn checksum(meta_json: &str, graph: &[u8], weights: &BTreeMap<String, Vec<u8>>) -> String {
    let mut all: Vec<(&str, &[u8])> = weights
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    all.push((GRAPH, graph));
    all.sort_by(|a, b| a.0.cmp(b.0));
    let mut h = Sha256::new();
    h.update(meta_json.as_bytes());
    for (name, data) in all {
        h.update(name.as_bytes());
        h.update([0u8]);
        h.update((data.len() as u64).to_le_bytes());
        h.update(data);
    }
    hex(&h.finalize())
}

impl Package {
    /// The package of a design run.
    pub fn from_outcome(o: DesignOutcome) -> Package {
        Package {
            meta: o.meta,
            graph: o.graph,
            weights: o.weights,
            label: "<new package>".into(),
        }
    }

    /// The format version this package is written as: [`FORMAT_VERSION`] if a weight
    /// tensor has per-channel scales, else 1 (readable by builds before scales).
    pub fn format_version(&self) -> u32 {
        if self.meta.tensors.iter().any(|t| t.channel_scales.is_some()) {
            FORMAT_VERSION
        } else {
            MIN_FORMAT_VERSION
        }
    }

    /// The metadata.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// The stored graph (ONNX bytes with external-data weights).
    pub fn graph_bytes(&self) -> &[u8] {
        &self.graph
    }

    /// The stored weight tensors: key -> bytes.
    pub fn weight_tensors(&self) -> &BTreeMap<String, Vec<u8>> {
        &self.weights
    }

    /// Serialises the package (deterministic: the same contents give the same bytes).
    pub fn to_bytes(&self) -> Result<Vec<u8>, DesignError> {
        let meta_json = serde_json::to_string(&self.meta)
            .map_err(|e| DesignError::Invalid(format!("metadata: {e}")))?;
        let sum = checksum(&meta_json, &self.graph, &self.weights);
        let version = self.format_version();
        let envelope =
            format!("{{\"version\":{version},\"sha256\":\"{sum}\",\"meta\":{meta_json}}}");
        let mut views: Vec<(String, TensorView<'_>)> = vec![];
        let err =
            |e: safetensors::SafeTensorError| DesignError::Invalid(format!("safetensors: {e}"));
        views.push((
            GRAPH.to_string(),
            TensorView::new(Dtype::U8, vec![self.graph.len()], &self.graph).map_err(err)?,
        ));
        for (k, v) in &self.weights {
            views.push((
                k.clone(),
                TensorView::new(Dtype::U8, vec![v.len()], v).map_err(err)?,
            ));
        }
        let info = HashMap::from([("sieve".to_string(), envelope)]);
        safetensors::serialize(views, Some(info)).map_err(err)
    }

    /// The temporary file [`Package::write`] writes before renaming it to `path`.
    pub fn temp_path(path: &Path) -> std::path::PathBuf {
        path.with_extension("sieve.tmp")
    }

    /// Writes the package to `path` (through a temporary file and a rename, so a
    /// crash never leaves a half-written package under that name).
    pub fn write(&self, path: &Path) -> Result<(), DesignError> {
        let bytes = self.to_bytes()?;
        let tmp = Self::temp_path(path);
        std::fs::write(&tmp, &bytes).map_err(|e| DesignError::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| DesignError::io(path, e))
    }

    /// Reads and verifies a package file (see [`Package::from_bytes`]).
    pub fn open(path: &Path) -> Result<Package, DesignError> {
        let bytes = std::fs::read(path).map_err(|e| DesignError::io(path, e))?;
        Package::from_bytes(&bytes, &path.display().to_string())
    }

    /// Parses and verifies a package: the safetensors structure, the format
    /// version, the checksum, the metadata and that every tensor the variants
    /// name is present. `label` names the source in errors.
    pub fn from_bytes(bytes: &[u8], label: &str) -> Result<Package, DesignError> {
        let corrupt = |msg: String| DesignError::Corrupt {
            path: label.to_string(),
            msg,
        };
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| corrupt(format!("{e} (truncated or not a safetensors file)")))?;
        let (_, md) = SafeTensors::read_metadata(bytes).map_err(|e| corrupt(e.to_string()))?;
        let env_text = md
            .metadata()
            .as_ref()
            .and_then(|m| m.get("sieve"))
            .ok_or_else(|| corrupt("no `sieve` entry in the safetensors metadata".into()))?;
        let version = serde_json::from_str::<VersionOnly>(env_text)
            .map_err(|e| corrupt(format!("metadata envelope: {e}")))?
            .version;
        if !(MIN_FORMAT_VERSION..=FORMAT_VERSION).contains(&version) {
            return Err(DesignError::Version {
                path: label.to_string(),
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let env: Envelope<'_> = serde_json::from_str(env_text)
            .map_err(|e| corrupt(format!("metadata envelope: {e}")))?;
        let mut graph = None;
        let mut weights = BTreeMap::new();
        for (name, view) in st.tensors() {
            if view.dtype() != Dtype::U8 {
                return Err(corrupt(format!(
                    "tensor '{name}' has dtype {:?}, expected U8",
                    view.dtype()
                )));
            }
            if name == GRAPH {
                graph = Some(view.data().to_vec());
            } else {
                weights.insert(name, view.data().to_vec());
            }
        }
        let graph = graph.ok_or_else(|| corrupt(format!("no '{GRAPH}' tensor")))?;
        let computed = checksum(env.meta.get(), &graph, &weights);
        if computed != env.sha256 {
            return Err(DesignError::Checksum {
                path: label.to_string(),
                stored: env.sha256,
                computed,
            });
        }
        let meta: Meta =
            serde_json::from_str(env.meta.get()).map_err(|e| corrupt(format!("metadata: {e}")))?;
        for v in &meta.variants {
            if v.formats.len() != meta.tensors.len() || v.weight_keys.len() != meta.tensors.len() {
                return Err(corrupt(format!(
                    "variant {} does not list every tensor",
                    v.variant
                )));
            }
            for k in v.weight_keys.iter().flatten() {
                if !weights.contains_key(k) {
                    return Err(corrupt(format!(
                        "variant {} needs tensor '{k}', which is missing",
                        v.variant
                    )));
                }
            }
            for (ti, t) in meta.tensors.iter().enumerate() {
                if let (Some(ch), Some(fmt), Some(key)) =
                    (t.channel_scales, v.formats[ti], &v.weight_keys[ti])
                {
                    check_shift_tensor(&weights, key, ch, fmt).map_err(&corrupt)?;
                }
            }
        }
        Ok(Package {
            meta,
            graph,
            weights,
            label: label.to_string(),
        })
    }

    /// Sets (or replaces) the metadata section `name` of [`Meta::calibration`]
    /// (e.g. `detector`: per variant and target, the misspeculation thresholds).
    /// Call [`Package::write`] to store it; the checksum is recomputed.
    pub fn update_metadata(&mut self, name: &str, value: serde_json::Value) {
        self.meta.calibration.insert(name.to_string(), value);
    }

    /// Whether `onnx_bytes` is the source model this package was designed from.
    pub fn is_source(&self, onnx_bytes: &[u8]) -> bool {
        crate::sha256_hex(onnx_bytes) == self.meta.provenance.model_sha256
    }

    /// The original (f32) model this package was designed from: the ONNX file at
    /// `explicit` if given, else at the recorded [`crate::Provenance::source_path`].
    /// Its sha256 must equal the provenance's `model_sha256`; otherwise (or when
    /// no path is known, or the file cannot be read) [`DesignError::Source`]
    /// names the path.
    pub fn original_model(&self, explicit: Option<&Path>) -> Result<sieve_nn::Model, DesignError> {
        let path: std::path::PathBuf = match explicit {
            Some(p) => p.to_path_buf(),
            None => match &self.meta.provenance.source_path {
                Some(p) => p.into(),
                None => {
                    return Err(DesignError::Source {
                        path: "<none>".into(),
                        msg: format!(
                        "{} does not record the source ONNX path; pass the .onnx file explicitly",
                        self.label
                    ),
                    })
                }
            },
        };
        let shown = path.display().to_string();
        let bytes = std::fs::read(&path).map_err(|e| DesignError::Source {
            path: shown.clone(),
            msg: format!("cannot read it ({e}); pass the source .onnx explicitly"),
        })?;
        let found = crate::sha256_hex(&bytes);
        if found != self.meta.provenance.model_sha256 {
            return Err(DesignError::Source {
                path: shown,
                msg: format!(
                    "sha256 {found} differs from the package's source model {} ({}): not the model {} was designed from",
                    self.meta.provenance.model_sha256, self.meta.provenance.model_bytes, self.label
                ),
            });
        }
        Ok(sieve_onnx::load_bytes(&bytes)?)
    }

    /// A runnable variant with its weights kept bit-packed in memory.
    /// [`Variant::Original`] is not stored ([`DesignError::NoVariant`]).
    pub fn model(&self, variant: Variant) -> Result<SpeculativeModel, DesignError> {
        self.build(variant, false)
    }

    /// The reference path of a variant: every stored weight decoded to dense
    /// `f32` at load, activations quantised by the transform hook.
    pub fn reference_model(&self, variant: Variant) -> Result<SpeculativeModel, DesignError> {
        self.build(variant, true)
    }

    fn build(&self, variant: Variant, dense: bool) -> Result<SpeculativeModel, DesignError> {
        let corrupt = |msg: String| DesignError::Corrupt {
            path: self.label.clone(),
            msg,
        };
        let v = self
            .meta
            .variant(variant)
            .ok_or_else(|| DesignError::NoVariant(variant.to_string()))?;
        // Stripped weights are placeholders until the packed ones replace them. Their
        // shapes come from the file: one larger than the largest tensor the metadata
        // records (or negative, or overflowing) is damage, reported instead of allocated.
        let largest = self
            .meta
            .tensors
            .iter()
            .map(|t| t.elements)
            .max()
            .unwrap_or(0);
        let bad_shape = std::cell::RefCell::new(None);
        let resolve = |loc: &str, dims: &[i64]| -> Option<Tensor> {
            let name = loc.strip_prefix("sieve:")?;
            // `None` for a negative dimension or an overflowing product.
            let n = dims
                .iter()
                .try_fold(1u64, |a, &d| a.checked_mul(u64::try_from(d).ok()?));
            let shape = dims.iter().map(|&d| usize::try_from(d).ok()).collect();
            match (shape, n) {
                (Some(shape), Some(n)) if n <= largest => Some(Tensor::zeros_f32(shape)),
                _ => {
                    bad_shape.borrow_mut().get_or_insert_with(|| {
                        format!(
                            "weight '{name}' has shape {dims:?} in the graph, which no stored \
                             tensor has (the largest holds {largest} elements)"
                        )
                    });
                    Some(Tensor::zeros_f32(vec![0]))
                }
            }
        };
        let loaded = sieve_onnx::load_bytes_with_external(&self.graph, &resolve);
        if let Some(msg) = bad_shape.into_inner() {
            return Err(corrupt(msg));
        }
        let mut model = loaded?;
        let nl = model.layers().len();
        let mut acts = vec![];
        let mut set = vec![false; nl];
        for (ti, t) in self.meta.tensors.iter().enumerate() {
            if t.layer >= nl {
                return Err(corrupt(format!(
                    "tensor '{}' refers to layer {} of {nl}",
                    t.name, t.layer
                )));
            }
            match t.kind {
                TensorKind::Activation => {
                    if let Some(fmt) = v.formats[ti] {
                        acts.push((model.layers()[t.layer].output, fmt));
                    }
                }
                TensorKind::Weight => {
                    let Some(key) = &v.weight_keys[ti] else {
                        continue;
                    };
                    let bytes = self
                        .weights
                        .get(key)
                        .ok_or_else(|| corrupt(format!("missing tensor '{key}'")))?;
                    let shape = model.weights(t.layer)?.shape().to_vec();
                    let n: usize = shape.iter().product();
                    let w = match v.formats[ti] {
                        Some(fmt) => {
                            let p = PackedTensor::from_parts(fmt, n, bytes.clone())
                                .map_err(|e| corrupt(format!("tensor '{key}': {e}")))?;
                            let shifts = match t.channel_scales {
                                Some(ch) => {
                                    let s = check_shift_tensor(&self.weights, key, ch, fmt)
                                        .map_err(&corrupt)?;
                                    if shape.first().map(|&c| c as u64) != Some(ch) {
                                        return Err(corrupt(format!(
                                            "tensor '{key}': {ch} channel shifts for weights of shape {shape:?}"
                                        )));
                                    }
                                    Some(s)
                                }
                                None => None,
                            };
                            weights_from_packed(shape, p, shifts, dense)
                                .map_err(|e| corrupt(format!("tensor '{key}': {e}")))?
                        }
                        None => {
                            if bytes.len() != n * 4 {
                                return Err(corrupt(format!(
                                    "tensor '{key}': {} bytes for {n} f32 values",
                                    bytes.len()
                                )));
                            }
                            let d: Vec<f32> = bytes
                                .chunks_exact(4)
                                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                                .collect();
                            Weights::Dense(Tensor::from_f32(shape, d)?)
                        }
                    };
                    model.set_weights(t.layer, w)?;
                    set[t.layer] = true;
                }
            }
        }
        if let Some((l, _)) = model.layers().iter().zip(&set).find(|(_, &s)| !s) {
            return Err(corrupt(format!(
                "layer '{}' has no stored weights for variant {variant}",
                l.name
            )));
        }
        Ok(SpeculativeModel::new(model, acts, variant))
    }
}

/// The shifts stored for the scaled codes under `key`: present, `channels` long, every
/// shift valid for `fmt` (the decoded values times `2^shift` stay normal and finite).
fn check_shift_tensor(
    weights: &BTreeMap<String, Vec<u8>>,
    key: &str,
    channels: u64,
    fmt: sieve_float::Format,
) -> Result<Vec<i8>, String> {
    let sk = crate::search::shifts_key(key);
    let data = weights.get(&sk).ok_or_else(|| {
        format!("tensor '{key}' has per-channel scales but its shift tensor '{sk}' is missing")
    })?;
    if data.len() as u64 != channels {
        return Err(format!(
            "shift tensor '{sk}' has {} bytes, expected one per channel ({channels})",
            data.len()
        ));
    }
    let range = sieve_nn::kernels::packed::shift_range(fmt);
    let shifts: Vec<i8> = data.iter().map(|&b| b as i8).collect();
    if let Some((c, s)) = shifts
        .iter()
        .enumerate()
        .find(|(_, &s)| !range.contains(&i32::from(s)))
    {
        return Err(format!(
            "shift tensor '{sk}': channel {c} has shift {s}, outside {}..={} for format {fmt}",
            range.start(),
            range.end()
        ));
    }
    Ok(shifts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::OutputContract;

    /// A package as written before `output` and `provenance.source_path` existed.
    const OLD_META: &str = r#"{"tool":"sieve-design 0.1.0","provenance":{"model_sha256":"00",
        "model_bytes":2,"dataset":"mnist:x","split":"validation","dataset_fingerprint":"f",
        "images":10},"settings":{"m_max":6,"sweep_floor":0.998,"accurate_threshold":1.0,
        "approximate_threshold":0.999,"recovery_slack":0.002,"stop_e_sweep":true,"batch":8},
        "baseline":{"correct":9,"images":10,"top1":0.9},"tensors":[],"variants":[],
        "search":{"points":0,"combinations":0}}"#;

    fn old_package() -> Package {
        Package {
            meta: serde_json::from_str(OLD_META).unwrap(),
            graph: vec![1, 2, 3],
            weights: BTreeMap::new(),
            label: "<test>".into(),
        }
    }

    fn fixture_onnx() -> std::path::PathBuf {
        std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/lenet5/model.onnx"
        ))
    }

    #[test]
    fn old_package_without_contract_fields_loads() {
        let p = old_package();
        assert!(!p.to_bytes().unwrap().is_empty());
        let back = Package::from_bytes(&p.to_bytes().unwrap(), "old").unwrap();
        assert_eq!(back.meta().output, None);
        assert_eq!(back.meta().provenance.source_path, None);
        // No recorded path and none given: a clear error, not a panic.
        let e = back.original_model(None).unwrap_err();
        assert!(matches!(e, DesignError::Source { .. }), "{e}");
        assert!(e.to_string().contains("explicitly"), "{e}");
    }

    #[test]
    fn contract_fields_round_trip() {
        let mut p = old_package();
        p.meta.output = Some(OutputContract {
            kind: "probabilities".into(),
            num_classes: 1001,
            background_offset: 1,
        });
        p.meta.provenance.source_path = Some("/abs/model.onnx".into());
        let bytes = p.to_bytes().unwrap();
        let back = Package::from_bytes(&bytes, "new").unwrap();
        assert_eq!(back.meta(), p.meta());
        assert_eq!(back.meta().output.as_ref().unwrap().background_offset, 1);
        assert_eq!(back.to_bytes().unwrap(), bytes);
    }

    #[test]
    fn original_model_checks_the_hash() {
        let onnx = fixture_onnx();
        let bytes = std::fs::read(&onnx).unwrap();
        let mut p = old_package();
        // Wrong hash: the error names the path and says it is not the source.
        p.meta.provenance.source_path = Some(onnx.display().to_string());
        let e = p.original_model(None).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, DesignError::Source { .. }), "{msg}");
        assert!(
            msg.contains("model.onnx") && msg.contains("differs"),
            "{msg}"
        );
        // Right hash: the recorded path loads, and an explicit path wins over it.
        p.meta.provenance.model_sha256 = crate::sha256_hex(&bytes);
        let m = p.original_model(None).unwrap();
        assert!(!m.layers().is_empty());
        p.meta.provenance.source_path = Some("/nonexistent/model.onnx".into());
        let e = p.original_model(None).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/model.onnx"), "{e}");
        assert!(p.original_model(Some(&onnx)).is_ok());
    }
}

#[cfg(test)]
#[allow(clippy::panic)]
mod scale_tests {
    use super::*;
    use crate::meta::SearchSettings;
    use crate::search::Settings;

    fn root() -> std::path::PathBuf {
        std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
    }

    /// LeNet-5 fixture, 16 images, the paper's search plus channel scales.
    fn scaled() -> Package {
        static P: std::sync::OnceLock<Package> = std::sync::OnceLock::new();
        P.get_or_init(|| {
            let bytes = std::fs::read(root().join("fixtures/lenet5/model.onnx")).unwrap();
            let settings = Settings {
                dataset: format!("mnist:{}", root().join("fixtures/mnist").display()),
                split: sieve_data::Split::Test,
                limit: Some(16),
                background_offset: 0,
                cache_bytes: 1 << 28,
                search: SearchSettings {
                    channel_scales: true,
                    ..SearchSettings::paper(16)
                },
                journal: None,
                max_evals: None,
                output: None,
                source_path: None,
                sub_batch: crate::search::DEFAULT_SUB_BATCH,
                sub_batch_bytes: crate::search::DEFAULT_SUB_BATCH_BYTES,
                reuse_identical: true,
                stop_early: true,
            };
            Package::from_outcome(crate::design(&bytes, &settings, &|_| {}).unwrap())
        })
        .clone()
    }

    fn corrupt_msg(p: &Package) -> String {
        let bytes = p.to_bytes().unwrap();
        match Package::from_bytes(&bytes, "bad.sieve") {
            Err(e @ DesignError::Corrupt { .. }) => e.to_string(),
            Err(e) => panic!("expected Corrupt, got {e}"),
            Ok(_) => panic!("corrupted shifts accepted"),
        }
    }

    #[test]
    fn a_graph_placeholder_larger_than_any_stored_tensor_is_rejected() {
        use prost::Message;
        let good = scaled();
        assert!(good.model(Variant::Exact).is_ok());
        for dims in [vec![1i64 << 40, 1 << 40], vec![i64::MAX, 3], vec![-5, 2]] {
            let mut m = sieve_onnx::proto::ModelProto::decode(&good.graph[..]).unwrap();
            let g = m.graph.as_mut().unwrap();
            let init = g
                .initializer
                .iter_mut()
                .find(|t| sieve_onnx::external_location(t).is_some())
                .expect("a stripped weight");
            init.dims = dims.clone();
            let mut p = good.clone();
            p.graph = m.encode_to_vec();
            // The checksum is recomputed: only the shape check can catch it.
            let loaded = Package::from_bytes(&p.to_bytes().unwrap(), "bad.sieve").unwrap();
            match loaded.model(Variant::Exact) {
                Err(e @ DesignError::Corrupt { .. }) => {
                    let msg = e.to_string();
                    assert!(
                        msg.contains("which no stored tensor has"),
                        "{dims:?}: {msg}"
                    );
                }
                Err(e) => panic!("{dims:?}: expected Corrupt, got {e}"),
                Ok(_) => panic!("{dims:?}: accepted"),
            }
        }
    }

    #[test]
    fn corrupted_shift_tensors_are_rejected() {
        let good = scaled();
        assert!(Package::from_bytes(&good.to_bytes().unwrap(), "ok").is_ok());
        let key = good
            .weights
            .keys()
            .find(|k| k.ends_with(".shifts"))
            .expect("a shift tensor")
            .clone();
        // Wrong length (checksum recomputed: only the shift check can catch it).
        let mut p = good.clone();
        p.weights.get_mut(&key).unwrap().pop();
        let msg = corrupt_msg(&p);
        assert!(
            msg.contains(&key) && msg.contains("one per channel"),
            "{msg}"
        );
        let mut p = good.clone();
        p.weights.get_mut(&key).unwrap().push(0);
        assert!(corrupt_msg(&p).contains("one per channel"));
        // Out-of-range shifts for the tensor's format.
        let fmt: sieve_float::Format = key.split('/').nth(1).unwrap().parse().unwrap();
        let range = sieve_nn::kernels::packed::shift_range(fmt);
        let bad: Vec<i8> = [i8::MIN, i8::MAX, (range.start() - 1).max(-128) as i8]
            .into_iter()
            .filter(|&s| !range.contains(&i32::from(s)))
            .collect();
        assert!(!bad.is_empty(), "{fmt}: every i8 shift is valid");
        for bad in bad {
            let mut p = good.clone();
            p.weights.get_mut(&key).unwrap()[0] = bad as u8;
            let msg = corrupt_msg(&p);
            assert!(msg.contains("outside") && msg.contains(&key), "{msg}");
        }
        // Missing shift tensor.
        let mut p = good.clone();
        p.weights.remove(&key);
        let msg = corrupt_msg(&p);
        assert!(msg.contains("missing") && msg.contains(".shifts"), "{msg}");
        // Metadata claiming another channel count than the weights' shape: caught
        // when the variant is built, as an error.
        let mut p = good.clone();
        let ti = p
            .meta
            .tensors
            .iter()
            .position(|t| t.channel_scales.is_some())
            .unwrap();
        let ch = p.meta.tensors[ti].channel_scales.unwrap();
        p.meta.tensors[ti].channel_scales = Some(ch + 1);
        for k in p.weights.keys().cloned().collect::<Vec<_>>() {
            if k.ends_with(".shifts") && k.starts_with(&format!("w{}/", p.meta.tensors[ti].layer)) {
                p.weights.get_mut(&k).unwrap().push(0);
            }
        }
        let q = Package::from_bytes(&p.to_bytes().unwrap(), "bad.sieve").unwrap();
        let e = q.model(Variant::Accurate).unwrap_err().to_string();
        assert!(e.contains("channel shifts"), "{e}");
    }

    #[test]
    fn old_version_one_packages_still_load() {
        let good = scaled();
        let mut p = good.clone();
        // No scales anywhere: written as version 1, as before the extension.
        for t in &mut p.meta.tensors {
            t.channel_scales = None;
        }
        p.meta.settings.channel_scales = false;
        assert_eq!(p.format_version(), 1);
        let text = String::from_utf8_lossy(&p.to_bytes().unwrap()).to_string();
        assert!(text.contains("{\\\"version\\\":1,"));
        assert!(!text.contains("channel_scales"));
        assert!(Package::from_bytes(&p.to_bytes().unwrap(), "v1").is_ok());
    }
}
