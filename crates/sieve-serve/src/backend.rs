//! What the server serves: the [`InferenceBackend`] trait, model metadata, and input
//! validation against it.

use crate::error::{Result, ServeError};
use crate::tensor::{DataType, InferTensor};

/// Metadata of one input or output tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorSpec {
    /// Tensor name.
    pub name: String,
    /// Element type.
    pub datatype: DataType,
    /// Dimensions; `-1` is a dimension of any size (a symbolic ONNX dimension).
    pub shape: Vec<i64>,
}

/// Metadata of a model, as the protocol's model-metadata endpoint reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelMetadata {
    /// Platform string (e.g. `"onnx_sieve"`).
    pub platform: String,
    /// Versions served (the protocol's `versions`); requests naming another version are
    /// rejected. Empty means "any version string is accepted".
    pub versions: Vec<String>,
    /// Inputs, in the order [`InferenceBackend::infer`] takes them.
    pub inputs: Vec<TensorSpec>,
    /// Outputs, in the order [`InferenceBackend::infer`] returns them.
    pub outputs: Vec<TensorSpec>,
    /// If true, floating-point inputs holding NaN or an infinity are rejected with 400.
    pub finite_inputs_only: bool,
}

impl ModelMetadata {
    /// True if every input and output has a variable first dimension, so requests can be
    /// concatenated along it (dynamic batching) and results split back.
    pub fn batchable(&self) -> bool {
        self.inputs
            .iter()
            .chain(&self.outputs)
            .all(|t| t.shape.first() == Some(&-1))
    }
}

/// A model the server can run. Implementations must be thread-safe: the server calls
/// [`InferenceBackend::infer`] from its worker threads, never from the async runtime.
///
/// Extension point: the engine's ONNX models implement it (see `engine`); a `.sieve`
/// package's original model would be one more implementation.
pub trait InferenceBackend: Send + Sync + 'static {
    /// The model's metadata; must not change while the model is served.
    fn metadata(&self) -> &ModelMetadata;

    /// Run the model. `inputs` are validated against [`InferenceBackend::metadata`] and given
    /// in its input order; the result must hold the outputs in metadata order. With dynamic
    /// batching, the first dimension is the sum of the merged requests' first dimensions.
    /// Errors are reported to the client as HTTP 500 / gRPC `INTERNAL`, with the message.
    fn infer(&self, inputs: Vec<InferTensor>) -> std::result::Result<Vec<InferTensor>, String>;
}

/// Check request inputs against a model's metadata and put them in metadata order.
///
/// Rejects (with a message naming model and tensor): a missing, unknown or repeated input,
/// a datatype other than the model's, a rank or fixed dimension that differs, more than
/// `max_elements` elements, and non-finite values if the model forbids them.
pub fn validate_inputs(
    model: &str,
    meta: &ModelMetadata,
    inputs: Vec<InferTensor>,
    max_elements: usize,
) -> Result<Vec<InferTensor>> {
    let mut slots: Vec<Option<InferTensor>> = vec![None; meta.inputs.len()];
    for t in inputs {
        let Some(i) = meta.inputs.iter().position(|s| s.name == t.name) else {
            let expected: Vec<&str> = meta.inputs.iter().map(|s| s.name.as_str()).collect();
            return Err(ServeError::invalid(format!(
                "model '{model}' has no input '{}' (inputs: {expected:?})",
                t.name
            )));
        };
        if slots[i].is_some() {
            return Err(ServeError::invalid(format!(
                "model '{model}': input '{}' given twice",
                t.name
            )));
        }
        let spec = &meta.inputs[i];
        if t.datatype != spec.datatype {
            return Err(ServeError::invalid(format!(
                "model '{model}': input '{}' has datatype {}, the model expects {}",
                t.name, t.datatype, spec.datatype
            )));
        }
        let shape_ok = t.shape.len() == spec.shape.len()
            && t.shape
                .iter()
                .zip(&spec.shape)
                .all(|(&d, &s)| s < 0 || d as i64 == s);
        if !shape_ok {
            return Err(ServeError::invalid(format!(
                "model '{model}': input '{}' has shape {:?}, the model expects {:?} (-1 = any)",
                t.name, t.shape, spec.shape
            )));
        }
        if t.element_count() > max_elements {
            return Err(ServeError::TooLarge {
                what: format!("input '{}' ({} elements)", t.name, t.element_count()),
                size: t.data.len() as u64,
                limit: (max_elements * t.datatype.size().unwrap_or(1)) as u64,
            });
        }
        if meta.finite_inputs_only {
            t.check_finite()?;
        }
        slots[i] = Some(t);
    }
    slots
        .into_iter()
        .zip(&meta.inputs)
        .map(|(t, s)| {
            t.ok_or_else(|| {
                ServeError::invalid(format!("model '{model}': input '{}' is missing", s.name))
            })
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
pub(crate) mod tests {
    use super::*;

    /// A backend for tests: one FP32 input `x` of shape [-1, 4], output `y = 2x` and `s` = row
    /// sums, with an optional delay per call.
    pub struct Doubler {
        pub meta: ModelMetadata,
        pub delay: std::time::Duration,
        pub calls: std::sync::atomic::AtomicUsize,
    }

    impl Doubler {
        pub fn new(delay_ms: u64) -> Doubler {
            Doubler {
                meta: ModelMetadata {
                    platform: "test".into(),
                    versions: vec!["1".into()],
                    inputs: vec![TensorSpec {
                        name: "x".into(),
                        datatype: DataType::F32,
                        shape: vec![-1, 4],
                    }],
                    outputs: vec![
                        TensorSpec {
                            name: "y".into(),
                            datatype: DataType::F32,
                            shape: vec![-1, 4],
                        },
                        TensorSpec {
                            name: "s".into(),
                            datatype: DataType::F32,
                            shape: vec![-1, 1],
                        },
                    ],
                    finite_inputs_only: true,
                },
                delay: std::time::Duration::from_millis(delay_ms),
                calls: Default::default(),
            }
        }
    }

    impl InferenceBackend for Doubler {
        fn metadata(&self) -> &ModelMetadata {
            &self.meta
        }
        fn infer(&self, inputs: Vec<InferTensor>) -> std::result::Result<Vec<InferTensor>, String> {
            self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            std::thread::sleep(self.delay);
            let x = inputs[0].to_f32().map_err(|e| e.to_string())?;
            let n = inputs[0].shape[0];
            let y: Vec<f32> = x.iter().map(|v| v * 2.0).collect();
            let s: Vec<f32> = x.chunks(4).map(|r| r.iter().sum()).collect();
            Ok(vec![
                InferTensor::from_f32("y", vec![n, 4], &y).map_err(|e| e.to_string())?,
                InferTensor::from_f32("s", vec![n, 1], &s).map_err(|e| e.to_string())?,
            ])
        }
    }

    #[test]
    fn validation() {
        let d = Doubler::new(0);
        let ok = InferTensor::from_f32("x", vec![2, 4], &[0.0; 8]).unwrap();
        assert_eq!(
            validate_inputs("m", &d.meta, vec![ok.clone()], 100)
                .unwrap()
                .len(),
            1
        );
        let e = validate_inputs("m", &d.meta, vec![], 100).unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
        let e = validate_inputs("m", &d.meta, vec![ok.clone(), ok.clone()], 100).unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
        let bad_shape = InferTensor::from_f32("x", vec![2, 2, 2], &[0.0; 8]).unwrap();
        let e = validate_inputs("m", &d.meta, vec![bad_shape], 100).unwrap_err();
        assert!(e.to_string().contains("shape"), "{e}");
        let e = validate_inputs("m", &d.meta, vec![ok], 4).unwrap_err();
        assert_eq!(e.http_status(), 400);
        let nan = InferTensor::from_f32("x", vec![1, 4], &[0.0, f32::NAN, 0.0, 0.0]).unwrap();
        assert!(validate_inputs("m", &d.meta, vec![nan], 100).is_err());
        let wrong =
            InferTensor::from_raw("x", DataType::F64, vec![1, 4], vec![0u8; 32].into()).unwrap();
        let e = validate_inputs("m", &d.meta, vec![wrong], 100).unwrap_err();
        assert!(e.to_string().contains("FP64"), "{e}");
        assert!(d.meta.batchable());
    }
}
