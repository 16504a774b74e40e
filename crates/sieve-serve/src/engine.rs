//! Loading model files into backends: ONNX through the sieve engine (`sieve-onnx` +
//! `sieve-nn`).
//!
//! Extension point: `.sieve` speculative-model packages (issue 3) will be served by loading
//! the package's original (exact) model in [`load_model`] and wrapping it in
//! [`EngineBackend`]; until that format exists they are refused with a clear error.

use crate::backend::{InferenceBackend, ModelMetadata, TensorSpec};
use crate::error::{Result, ServeError};
use crate::tensor::{DataType, InferTensor};
use sieve_nn::{DType, Dim, IoInfo, Model, Tensor};
use std::path::Path;
use std::sync::Arc;

/// A sieve engine [`Model`] served over the protocol. Inputs must be finite (NaN and
/// infinities are rejected with 400).
pub struct EngineBackend {
    model: Model,
    meta: ModelMetadata,
}

fn dtype(d: DType) -> DataType {
    match d {
        DType::F32 => DataType::F32,
        DType::I64 => DataType::I64,
    }
}

fn spec(io: &IoInfo) -> TensorSpec {
    TensorSpec {
        name: io.name.clone(),
        datatype: dtype(io.dtype),
        shape: io
            .shape
            .iter()
            .map(|d| match d {
                Dim::Fixed(n) => *n as i64,
                Dim::Symbolic(_) => -1,
            })
            .collect(),
    }
}

impl EngineBackend {
    /// Wrap a loaded model.
    pub fn new(model: Model) -> EngineBackend {
        let meta = ModelMetadata {
            platform: "sieve_onnx".into(),
            versions: vec!["1".into()],
            inputs: model.inputs().iter().map(spec).collect(),
            outputs: model.outputs().iter().map(spec).collect(),
            finite_inputs_only: true,
        };
        EngineBackend { model, meta }
    }
}

impl InferenceBackend for EngineBackend {
    fn metadata(&self) -> &ModelMetadata {
        &self.meta
    }

    fn infer(&self, inputs: Vec<InferTensor>) -> std::result::Result<Vec<InferTensor>, String> {
        let mut feeds = Vec::with_capacity(inputs.len());
        for t in inputs {
            let tensor = match t.datatype {
                DataType::F32 => {
                    Tensor::from_f32(t.shape.clone(), t.to_f32().map_err(|e| e.to_string())?)
                }
                DataType::I64 => {
                    let v = t
                        .data
                        .chunks_exact(8)
                        .map(|c| {
                            let mut b = [0u8; 8];
                            b.copy_from_slice(c);
                            i64::from_le_bytes(b)
                        })
                        .collect();
                    Tensor::from_i64(t.shape.clone(), v)
                }
                other => {
                    return Err(format!(
                        "input '{}': datatype {other} is not supported by the engine",
                        t.name
                    ))
                }
            }
            .map_err(|e| format!("input '{}': {e}", t.name))?;
            feeds.push(tensor);
        }
        let outs = self.model.run(feeds).map_err(|e| e.to_string())?;
        outs.iter()
            .zip(&self.meta.outputs)
            .map(|(t, s)| {
                let r = if let Some(v) = t.as_f32() {
                    InferTensor::from_f32(s.name.clone(), t.shape().to_vec(), v)
                } else if let Some(v) = t.as_i64() {
                    let raw: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                    InferTensor::from_raw(
                        s.name.clone(),
                        DataType::I64,
                        t.shape().to_vec(),
                        raw.into(),
                    )
                } else {
                    return Err(format!(
                        "output '{}' has an unsupported element type",
                        s.name
                    ));
                };
                r.map_err(|e| e.to_string())
            })
            .collect()
    }
}

/// Load the model file at `path` to serve as `name`, choosing the loader by extension.
pub fn load_model(name: &str, path: &Path) -> Result<Arc<dyn InferenceBackend>> {
    let err = |message: String| ServeError::ModelLoad {
        name: name.to_string(),
        path: path.display().to_string(),
        message,
    };
    if let Err(e) = std::fs::metadata(path) {
        return Err(err(format!("cannot read the file: {e}")));
    }
    match path.extension().and_then(|e| e.to_str()) {
        Some("onnx") => {
            let model = sieve_onnx::load_file(path).map_err(|e| err(e.to_string()))?;
            Ok(Arc::new(EngineBackend::new(model)))
        }
        Some("sieve") => Err(err(
            ".sieve packages are not supported yet; serve the package's original .onnx".into(),
        )),
        _ => Err(err("unknown model format; expected a .onnx file".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::load_model;
    use std::path::Path;

    #[test]
    fn load_errors_name_the_model_and_what_is_wrong() {
        let msg = |p: &str| load_model("m", Path::new(p)).err().map(|e| e.to_string());
        let missing = msg("/nonexistent/model.bin").unwrap_or_default();
        assert!(
            missing.contains("'m'") && missing.contains("cannot read the file"),
            "{missing}"
        );
        let here = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        let other = msg(here).unwrap_or_default();
        assert!(other.contains("expected a .onnx file"), "{other}");
    }
}
