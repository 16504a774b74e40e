//! Synthetic speculative variants: a model plus a per-layer format assignment, without
//! a design search. Used for benchmarks of compressed execution on untrained networks
//! (AlexNet, VGG-16 from `gen_arch_models.py`), where accuracy is meaningless but the
//! weight bytes and the kernels are real.
//!
//! Each assigned tensor gets a signed format with the requested exponent and mantissa
//! bits; its bias is fitted from the tensor's exponent histogram
//! ([`sieve_float::ExpHistogram::best_window`], the paper's rule). Activations keep
//! `f32` (no activation formats).

use crate::runner::weights_from_packed;
use crate::{DesignError, SpeculativeModel, Variant};
use prost::Message;
use sieve_float::{ExpHistogram, Format, PackedTensor};
use sieve_nn::{Layer, Model, Tensor};
use sieve_onnx::proto;
use std::collections::BTreeMap;
use std::str::FromStr;

/// Exponent and mantissa bits of a synthetic signed format (bias fitted per tensor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynthFormat {
    /// Exponent bits `e` (1..=7).
    pub exp_bits: u8,
    /// Mantissa bits `m` (0..=23).
    pub man_bits: u8,
}

impl SynthFormat {
    /// Total width with the sign bit.
    pub fn width(&self) -> u32 {
        1 + u32::from(self.exp_bits) + u32::from(self.man_bits)
    }
}

impl FromStr for SynthFormat {
    type Err = DesignError;
    /// Parses `e4m3` (sign bit implied).
    fn from_str(s: &str) -> Result<SynthFormat, DesignError> {
        let bad = || DesignError::Invalid(format!("format '{s}': expected e<E>m<M>, e.g. e4m3"));
        let rest = s.strip_prefix('e').ok_or_else(bad)?;
        let (e, m) = rest.split_once('m').ok_or_else(bad)?;
        let exp_bits: u8 = e.parse().map_err(|_| bad())?;
        let man_bits: u8 = m.parse().map_err(|_| bad())?;
        if !(1..=7).contains(&exp_bits) || man_bits > 23 {
            return Err(bad());
        }
        Ok(SynthFormat { exp_bits, man_bits })
    }
}

/// Per-layer format assignment by layer kind: fully-connected (`Gemm`, `MatMul`) and
/// convolution (`Conv`) weights; `None` keeps the layer in `f32`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SynthAssignment {
    /// Format of every fully-connected layer's weights.
    pub fc: Option<SynthFormat>,
    /// Format of every convolution's weights.
    pub conv: Option<SynthFormat>,
}

impl SynthAssignment {
    /// The format for `layer`, if any.
    pub fn for_layer(&self, layer: &Layer) -> Option<SynthFormat> {
        match layer.op {
            "Conv" => self.conv,
            _ => self.fc,
        }
    }
}

impl FromStr for SynthAssignment {
    type Err = DesignError;
    /// Parses `fc=e4m3,conv=e4m3` (either part optional; `f32` or `none` keeps f32).
    fn from_str(s: &str) -> Result<SynthAssignment, DesignError> {
        let mut a = SynthAssignment::default();
        for part in s.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| {
                DesignError::Invalid(format!("assignment '{part}': expected fc=.. or conv=.."))
            })?;
            let f = match v {
                "f32" | "none" => None,
                v => Some(v.parse()?),
            };
            match k {
                "fc" => a.fc = f,
                "conv" => a.conv = f,
                _ => {
                    return Err(DesignError::Invalid(format!(
                        "assignment '{part}': unknown layer kind '{k}' (fc, conv)"
                    )))
                }
            }
        }
        Ok(a)
    }
}

/// The fitted format of `values` for `f`: signed, `f`'s bits, bias from the best
/// exponent window of the histogram.
pub fn fit_format(values: &[f32], f: SynthFormat) -> Result<Format, DesignError> {
    let w = ExpHistogram::from_slice(values)
        .best_window(f.exp_bits)
        .map_err(|e| DesignError::Invalid(format!("fitting {f:?}: {e}")))?;
    Format::new(true, f.exp_bits, f.man_bits, w.bias)
        .map_err(|e| DesignError::Invalid(format!("format for {f:?}, bias {}: {e}", w.bias)))
}

/// Builds a speculative model from `model` (weights in `f32`) and an assignment:
/// every assigned layer's weights are fitted, encoded and kept packed — or, with
/// `dense`, decoded back to `f32` (the reference path, bit-identical outputs).
/// The `f32` originals are dropped as they are replaced.
pub fn synthetic_model(
    mut model: Model,
    assign: &dyn Fn(&Layer) -> Option<SynthFormat>,
    variant: Variant,
    dense: bool,
) -> Result<SpeculativeModel, DesignError> {
    for i in 0..model.layers().len() {
        let layer = &model.layers()[i];
        let Some(sf) = assign(layer) else { continue };
        let name = layer.name.clone();
        let w = model.weights(i)?;
        let shape = w.shape().to_vec();
        let values = w.to_tensor()?;
        let values = values.f32s()?;
        let fmt = fit_format(values, sf)?;
        let packed = PackedTensor::encode_from(fmt, values)
            .map_err(|e| DesignError::Invalid(format!("layer {name}: encoding {fmt}: {e}")))?;
        let w = weights_from_packed(shape, packed, None, dense)?;
        model.set_weights(i, w)?;
    }
    Ok(SpeculativeModel::new(model, Vec::new(), variant))
}

/// Like [`synthetic_model`] from ONNX bytes, without keeping any `f32` copy of the
/// assigned layers' weights: they are packed from a first load (BN-folded values, as
/// the engine runs them), then the graph is reloaded with those initializers turned
/// into external placeholders (lazily-zeroed, never touched) before the packed
/// weights replace them — the same way `Package::model` loads a variant. Only
/// initializers used by exactly one layer and nothing else are stripped; the others
/// stay in memory as in the source.
pub fn synthetic_model_from_onnx(
    onnx: &[u8],
    assign: &dyn Fn(&Layer) -> Option<SynthFormat>,
    variant: Variant,
    dense: bool,
) -> Result<SpeculativeModel, DesignError> {
    let (names, packed) = {
        let model = sieve_onnx::load_bytes(onnx)?;
        let mut packed: BTreeMap<usize, (Vec<usize>, PackedTensor)> = BTreeMap::new();
        for (i, layer) in model.layers().iter().enumerate() {
            let Some(sf) = assign(layer) else { continue };
            let w = model.weights(i)?;
            let shape = w.shape().to_vec();
            let t = w.to_tensor()?;
            let fmt = fit_format(t.f32s()?, sf)?;
            let p = PackedTensor::encode_from(fmt, t.f32s()?).map_err(|e| {
                DesignError::Invalid(format!("layer {}: encoding {fmt}: {e}", layer.name))
            })?;
            packed.insert(i, (shape, p));
        }
        let names: Vec<(String, String)> = model
            .layers()
            .iter()
            .map(|l| (l.name.clone(), l.weight_name.clone()))
            .collect();
        (names, packed)
    };
    let mut m = proto::ModelProto::decode(onnx)
        .map_err(|e| DesignError::Invalid(format!("decoding ONNX: {e}")))?;
    let mut uses: BTreeMap<String, usize> = BTreeMap::new();
    if let Some(g) = m.graph.as_ref() {
        for n in &g.node {
            for i in &n.input {
                *uses.entry(i.clone()).or_default() += 1;
            }
        }
    }
    let mut layer_uses: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, w) in &names {
        *layer_uses.entry(w.as_str()).or_default() += 1;
    }
    let strip: Vec<&str> = packed
        .keys()
        .map(|&i| names[i].1.as_str())
        .filter(|w| layer_uses.get(w) == Some(&1) && uses.get(*w) == Some(&1))
        .collect();
    if let Some(g) = m.graph.as_mut() {
        for init in &mut g.initializer {
            let name = init.name().to_string();
            if strip.contains(&name.as_str()) {
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
    let stripped = m.encode_to_vec();
    drop(m);
    let resolve = |loc: &str, dims: &[i64]| -> Option<Tensor> {
        loc.strip_prefix("sieve:")?;
        let shape: Option<Vec<usize>> = dims.iter().map(|&d| usize::try_from(d).ok()).collect();
        Some(Tensor::zeros_f32(shape?))
    };
    let mut model = sieve_onnx::load_bytes_with_external(&stripped, &resolve)?;
    drop(stripped);
    for (i, (shape, p)) in packed {
        let l = model.layers().get(i).ok_or_else(|| {
            DesignError::Invalid(format!("layer {i} missing after reloading the graph"))
        })?;
        if l.name != names[i].0 {
            return Err(DesignError::Invalid(format!(
                "layer {i} is '{}' after reloading, was '{}'",
                l.name, names[i].0
            )));
        }
        model.set_weights(i, weights_from_packed(shape, p, None, dense)?)?;
    }
    Ok(SpeculativeModel::new(model, Vec::new(), variant))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_assignments() {
        let a: SynthAssignment = "fc=e4m3,conv=e3m1".parse().unwrap();
        assert_eq!(a.fc.unwrap().width(), 8);
        assert_eq!(a.conv.unwrap().width(), 5);
        let b: SynthAssignment = "conv=f32".parse().unwrap();
        assert_eq!(b, SynthAssignment::default());
        assert!("fc=e9m3".parse::<SynthAssignment>().is_err());
        assert!("dense=e4m3".parse::<SynthAssignment>().is_err());
        assert!("fc=4m3".parse::<SynthAssignment>().is_err());
    }

    #[test]
    fn fitted_bias_covers_the_data() {
        let v: Vec<f32> = (1..1000).map(|i| i as f32 * 1e-4).collect();
        let f = fit_format(&v, "e4m3".parse().unwrap()).unwrap();
        // Largest value ~0.1 (exponent -4) must be below Max.
        assert!(f.max() >= 0.0999, "{f}");
        assert!(f.signed());
    }
}
