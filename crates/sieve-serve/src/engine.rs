//! Loading model files into backends: ONNX through the sieve engine.
//!
//! Extension point: `.sieve` speculative-model packages (issue 3) will be served by loading
//! the package's original (exact) model here; until that format exists they are refused with
//! a clear error.

use crate::backend::InferenceBackend;
use crate::error::{Result, ServeError};
use std::path::Path;
use std::sync::Arc;

/// Load the model file at `path` to serve as `name`, choosing the loader by extension.
pub fn load_model(name: &str, path: &Path) -> Result<Arc<dyn InferenceBackend>> {
    let err = |message: String| ServeError::ModelLoad {
        name: name.to_string(),
        path: path.display().to_string(),
        message,
    };
    match path.extension().and_then(|e| e.to_str()) {
        Some("onnx") => Err(err("the ONNX engine is not wired in yet".into())),
        Some("sieve") => Err(err(
            ".sieve packages are not supported yet; serve the package's original .onnx".into(),
        )),
        _ => Err(err("unknown model format; expected a .onnx file".into())),
    }
}
