//! The `.sieve` package: a safetensors file.
//!
//! - tensor `graph.onnx` (U8): the source ONNX model with the initializers of the
//!   stored layers' weights turned into external data (`location = sieve:<name>`),
//!   so the file carries no f32 copy of them;
//! - tensors `w<layer>/<format>` (U8): a layer's weights bit-packed in that format
//!   ([`sieve_float::PackedTensor`] bytes), or `w<layer>/f32` (raw little-endian
//!   f32) for a tensor a variant keeps at full precision; variants share tensors;
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

/// The package format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;
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
        let envelope =
            format!("{{\"version\":{FORMAT_VERSION},\"sha256\":\"{sum}\",\"meta\":{meta_json}}}");
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

    /// Writes the package to `path` (through a temporary file and a rename, so a
    /// crash never leaves a half-written package under that name).
    pub fn write(&self, path: &Path) -> Result<(), DesignError> {
        let bytes = self.to_bytes()?;
        let tmp = path.with_extension("sieve.tmp");
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
        if version != FORMAT_VERSION {
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
        // Stripped weights are placeholders until the packed ones replace them.
        let resolve = |loc: &str, dims: &[i64]| -> Option<Tensor> {
            loc.strip_prefix("sieve:")?;
            let shape: Option<Vec<usize>> = dims.iter().map(|&d| usize::try_from(d).ok()).collect();
            Some(Tensor::zeros_f32(shape?))
        };
        let mut model = sieve_onnx::load_bytes_with_external(&self.graph, &resolve)?;
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
                            weights_from_packed(shape, p, dense)?
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
