//! sieve-onnx: ONNX model files to runnable [`sieve_nn::Model`]s.
//!
//! [`load_file`] / [`load_bytes`] parse the protobuf (generated code committed in
//! [`proto`], no `protoc` needed), check the opset, convert initializers and
//! attributes, build a [`sieve_nn::Graph`] through the op registry
//! ([`sieve_nn::ops::Registry`]) and run the load-time passes.
#![warn(missing_docs)]

pub mod convert;
pub mod external;
pub mod proto;

use prost::Message;
use sieve_nn::ops::Registry;
use sieve_nn::{Graph, Model, NnError};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

pub use convert::tensor_from_proto;
pub use external::{external_location, load_bytes_with_external};

/// Lowest and highest default-domain opset accepted.
pub const OPSET_RANGE: (i64, i64) = (1, 28);

/// Errors of loading an ONNX model. Each displays as one line naming the problem.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// The file could not be read.
    #[error("cannot read '{path}': {source}")]
    Io {
        /// Path given.
        path: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The bytes are not a protobuf ModelProto.
    #[error("not a valid ONNX model: {0}")]
    Decode(String),
    /// The model is structurally wrong (no graph, bad tensor sizes...).
    #[error("invalid ONNX model: {0}")]
    Invalid(String),
    /// The default-domain opset is missing or outside [`OPSET_RANGE`].
    #[error("unsupported opset: {0}")]
    Opset(String),
    /// A tensor or value uses an element type the engine does not support.
    #[error("{what}: unsupported data type {dtype}")]
    UnsupportedDType {
        /// Which tensor or value.
        what: String,
        /// ONNX type name.
        dtype: String,
    },
    /// A tensor stores its data in an external file.
    #[error("tensor '{0}': external data is not supported (embed the weights in the model file)")]
    ExternalData(String),
    /// An attribute could not be converted.
    #[error("node '{node}' (op {op}): attribute '{attr}': {msg}")]
    Attribute {
        /// Node name.
        node: String,
        /// Op type.
        op: String,
        /// Attribute name.
        attr: String,
        /// What is wrong.
        msg: String,
    },
    /// Graph building, an op, or a load-time pass failed.
    #[error(transparent)]
    Nn(#[from] NnError),
}

/// Loads an ONNX model file.
pub fn load_file(path: impl AsRef<Path>) -> Result<Model, OnnxError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| OnnxError::Io {
        path: path.display().to_string(),
        source,
    })?;
    load_bytes(&bytes)
}

/// Loads an ONNX model from its serialised bytes.
pub fn load_bytes(bytes: &[u8]) -> Result<Model, OnnxError> {
    let m = proto::ModelProto::decode(bytes).map_err(|e| OnnxError::Decode(e.to_string()))?;
    load_proto(&m)
}

/// The default-domain opset the model imports.
pub fn model_opset(m: &proto::ModelProto) -> Result<i64, OnnxError> {
    let v = m
        .opset_import
        .iter()
        .find(|o| o.domain().is_empty() || o.domain() == "ai.onnx")
        .map(|o| o.version())
        .ok_or_else(|| {
            OnnxError::Opset("the model imports no default-domain (ai.onnx) opset".into())
        })?;
    if v < OPSET_RANGE.0 || v > OPSET_RANGE.1 {
        return Err(OnnxError::Opset(format!(
            "opset {v} is outside the supported range {}..={}",
            OPSET_RANGE.0, OPSET_RANGE.1
        )));
    }
    Ok(v)
}

/// Builds a model from a decoded `ModelProto`.
pub fn load_proto(m: &proto::ModelProto) -> Result<Model, OnnxError> {
    load_proto_with(m, &|_| None)
}

/// [`load_proto`] where `external` may supply an initializer's tensor (e.g. one
/// stored as external data elsewhere); `None` converts the initializer as usual.
pub fn load_proto_with(
    m: &proto::ModelProto,
    external: external::Resolver<'_>,
) -> Result<Model, OnnxError> {
    if m.graph.is_none() && m.opset_import.is_empty() && m.ir_version.is_none() {
        return Err(OnnxError::Decode(
            "no graph, opset or IR version (empty or not an ONNX file)".into(),
        ));
    }
    let opset = model_opset(m)?;
    let gp = m
        .graph
        .as_ref()
        .ok_or_else(|| OnnxError::Invalid("the model has no graph".into()))?;
    let registry = Registry::standard();
    let mut g = Graph::new();
    for init in &gp.initializer {
        let t = match external(init) {
            Some(t) => t,
            None => tensor_from_proto(init)?,
        };
        g.add_const(init.name(), t)?;
    }
    for vi in &gp.input {
        if g.value_id(vi.name()).is_some() {
            continue; // an initializer also listed as input (IR < 4): a constant
        }
        let fact = convert::fact_from_value_info(vi)?;
        if fact.is_none() {
            return Err(OnnxError::Invalid(format!(
                "graph input '{}' has no tensor type and shape",
                vi.name()
            )));
        }
        let id = g.add_value(vi.name(), fact)?;
        g.inputs.push(id);
    }
    let mut weight_names = HashMap::new();
    let mut used_names = HashSet::new();
    for (idx, np) in gp.node.iter().enumerate() {
        let op_type = np.op_type().to_string();
        let mut name = if np.name().is_empty() {
            format!("{op_type}_{idx}")
        } else {
            np.name().to_string()
        };
        if !used_names.insert(name.clone()) {
            name = format!("{name}_{idx}");
            used_names.insert(name.clone());
        }
        let domain = np.domain();
        if !(domain.is_empty() || domain == "ai.onnx") {
            return Err(NnError::UnsupportedOp {
                node: name,
                op: format!("{domain}.{op_type}"),
            }
            .into());
        }
        if !registry.supports(&op_type) {
            return Err(NnError::UnsupportedOp {
                node: name,
                op: op_type,
            }
            .into());
        }
        let mut attrs = BTreeMap::new();
        for a in &np.attribute {
            attrs.insert(
                a.name().to_string(),
                convert::attr_from_proto(a, &name, &op_type)?,
            );
        }
        let spec = sieve_nn::op::NodeSpec {
            name: name.clone(),
            op_type: op_type.clone(),
            opset,
            attrs,
            num_inputs: np.input.len(),
            num_outputs: np.output.iter().filter(|o| !o.is_empty()).count(),
        };
        let op = registry.build(&spec)?;
        let mut inputs = Vec::with_capacity(np.input.len());
        for iname in &np.input {
            if iname.is_empty() {
                inputs.push(None);
                continue;
            }
            let id = g.value_id(iname).ok_or_else(|| {
                OnnxError::Invalid(format!(
                    "node '{name}' (op {op_type}): input '{iname}' is not defined"
                ))
            })?;
            inputs.push(Some(id));
        }
        if matches!(op_type.as_str(), "Conv" | "Gemm" | "MatMul") {
            if let Some(w) = np.input.get(1) {
                weight_names.insert(name.clone(), w.clone());
            }
        }
        // Trailing optional outputs left empty are dropped.
        let mut outputs = vec![];
        for oname in np.output.iter().filter(|o| !o.is_empty()) {
            outputs.push(g.add_value(oname, None)?);
        }
        g.add_node(&name, op, inputs, outputs)?;
    }
    for vo in &gp.output {
        let id = g.value_id(vo.name()).ok_or_else(|| {
            OnnxError::Invalid(format!(
                "graph output '{}' is not produced by any node",
                vo.name()
            ))
        })?;
        g.outputs.push(id);
    }
    let mut model = Model::new(g)?;
    model.set_weight_names(&weight_names);
    Ok(model)
}
