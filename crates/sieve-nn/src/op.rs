//! The operator abstraction: shape facts, attributes, the [`Op`] trait and the
//! per-node scratch.

use crate::{DType, NnError, Tensor, Weights};
use std::any::Any;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;

/// One dimension of a value's shape as known before running.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Dim {
    /// Known size.
    Fixed(usize),
    /// Size known only at run time (e.g. the batch `N`); the name identifies equal dims.
    Symbolic(String),
}

impl Dim {
    /// The size if fixed.
    pub fn fixed(&self) -> Option<usize> {
        match self {
            Dim::Fixed(n) => Some(*n),
            Dim::Symbolic(_) => None,
        }
    }

    /// A dim that is unknown and unrelated to any other (named `?`).
    pub fn unknown() -> Dim {
        Dim::Symbolic("?".to_string())
    }
}

impl std::fmt::Display for Dim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dim::Fixed(n) => write!(f, "{n}"),
            Dim::Symbolic(s) => f.write_str(s),
        }
    }
}

/// Formats a symbolic shape as `[N,3,32,32]`.
pub fn fmt_dims(dims: &[Dim]) -> String {
    let parts: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(","))
}

/// What is known about a value before running: dtype, shape and, for constants,
/// the value itself.
#[derive(Clone, Debug, PartialEq)]
pub struct Fact {
    /// Element type.
    pub dtype: DType,
    /// Shape, possibly with symbolic dims.
    pub shape: Vec<Dim>,
    /// The value, if it is known at load time.
    pub konst: Option<Tensor>,
}

impl Fact {
    /// A non-constant fact.
    pub fn new(dtype: DType, shape: Vec<Dim>) -> Fact {
        Fact {
            dtype,
            shape,
            konst: None,
        }
    }

    /// The fact of a known tensor.
    pub fn of_tensor(t: &Tensor) -> Fact {
        Fact {
            dtype: t.dtype(),
            shape: t.shape().iter().map(|&d| Dim::Fixed(d)).collect(),
            konst: Some(t.clone()),
        }
    }

    /// The shape if every dim is fixed.
    pub fn fixed_shape(&self) -> Option<Vec<usize>> {
        self.shape.iter().map(|d| d.fixed()).collect()
    }
}

/// An attribute value as given in the model file.
#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue {
    /// `INT`.
    Int(i64),
    /// `FLOAT`.
    Float(f32),
    /// `INTS`.
    Ints(Vec<i64>),
    /// `FLOATS`.
    Floats(Vec<f32>),
    /// `STRING` (lossy UTF-8).
    String(String),
    /// `STRINGS`.
    Strings(Vec<String>),
    /// `TENSOR`.
    Tensor(Tensor),
}

/// A node as described by the model file, handed to an op constructor.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// Node name (unique; the loader invents one for unnamed nodes).
    pub name: String,
    /// Op type, e.g. `Conv`.
    pub op_type: String,
    /// Opset version of the default domain the model imports.
    pub opset: i64,
    /// Attributes by name.
    pub attrs: BTreeMap<String, AttrValue>,
    /// Number of inputs (including empty optional ones).
    pub num_inputs: usize,
    /// Number of outputs.
    pub num_outputs: usize,
}

/// Reads a node's attributes and remembers which were read, so that unknown
/// attributes can be rejected by [`Attrs::finish`].
pub struct Attrs<'a> {
    spec: &'a NodeSpec,
    used: Vec<&'a str>,
}

impl<'a> Attrs<'a> {
    /// Starts reading `spec`'s attributes.
    pub fn new(spec: &'a NodeSpec) -> Self {
        Attrs { spec, used: vec![] }
    }

    /// The node being read.
    pub fn spec(&self) -> &NodeSpec {
        self.spec
    }

    fn get(&mut self, name: &str) -> Option<&'a AttrValue> {
        let (k, v) = self.spec.attrs.get_key_value(name)?;
        self.used.push(k.as_str());
        Some(v)
    }

    fn err(&self, attr: &str, msg: impl Into<String>) -> NnError {
        NnError::attr(attr, msg).with_node(&self.spec.name, &self.spec.op_type)
    }

    /// An `INT` attribute, or `default` if absent.
    pub fn int(&mut self, name: &str, default: i64) -> Result<i64, NnError> {
        match self.get(name) {
            None => Ok(default),
            Some(AttrValue::Int(v)) => Ok(*v),
            Some(other) => Err(self.err(name, format!("expected an int, got {other:?}"))),
        }
    }

    /// An optional `INT` attribute.
    pub fn int_opt(&mut self, name: &str) -> Result<Option<i64>, NnError> {
        match self.get(name) {
            None => Ok(None),
            Some(AttrValue::Int(v)) => Ok(Some(*v)),
            Some(other) => Err(self.err(name, format!("expected an int, got {other:?}"))),
        }
    }

    /// A `FLOAT` attribute, or `default` if absent.
    pub fn float(&mut self, name: &str, default: f32) -> Result<f32, NnError> {
        match self.get(name) {
            None => Ok(default),
            Some(AttrValue::Float(v)) => Ok(*v),
            Some(AttrValue::Int(v)) => Ok(*v as f32),
            Some(other) => Err(self.err(name, format!("expected a float, got {other:?}"))),
        }
    }

    /// An optional `FLOAT` attribute.
    pub fn float_opt(&mut self, name: &str) -> Result<Option<f32>, NnError> {
        match self.get(name) {
            None => Ok(None),
            Some(AttrValue::Float(v)) => Ok(Some(*v)),
            Some(other) => Err(self.err(name, format!("expected a float, got {other:?}"))),
        }
    }

    /// An optional `INTS` attribute.
    pub fn ints(&mut self, name: &str) -> Result<Option<Vec<i64>>, NnError> {
        match self.get(name) {
            None => Ok(None),
            Some(AttrValue::Ints(v)) => Ok(Some(v.clone())),
            Some(other) => Err(self.err(name, format!("expected ints, got {other:?}"))),
        }
    }

    /// An optional `FLOATS` attribute.
    pub fn floats(&mut self, name: &str) -> Result<Option<Vec<f32>>, NnError> {
        match self.get(name) {
            None => Ok(None),
            Some(AttrValue::Floats(v)) => Ok(Some(v.clone())),
            Some(other) => Err(self.err(name, format!("expected floats, got {other:?}"))),
        }
    }

    /// An optional `STRING` attribute.
    pub fn string(&mut self, name: &str) -> Result<Option<String>, NnError> {
        match self.get(name) {
            None => Ok(None),
            Some(AttrValue::String(v)) => Ok(Some(v.clone())),
            Some(other) => Err(self.err(name, format!("expected a string, got {other:?}"))),
        }
    }

    /// An optional `TENSOR` attribute.
    pub fn tensor(&mut self, name: &str) -> Result<Option<Tensor>, NnError> {
        match self.get(name) {
            None => Ok(None),
            Some(AttrValue::Tensor(v)) => Ok(Some(v.clone())),
            Some(other) => Err(self.err(name, format!("expected a tensor, got {other:?}"))),
        }
    }

    /// An error about attribute `attr` of this node.
    pub fn bad(&self, attr: &str, msg: impl Into<String>) -> NnError {
        self.err(attr, msg)
    }

    /// Fails naming the first attribute that was never read (i.e. unsupported).
    pub fn finish(self) -> Result<(), NnError> {
        for k in self.spec.attrs.keys() {
            if !self.used.contains(&k.as_str()) {
                return Err(self.err(k, "unsupported attribute"));
            }
        }
        Ok(())
    }
}

/// Reusable per-node working memory (e.g. im2col buffers, decoded weights). One
/// scratch per node per concurrent run; buffers keep their capacity between runs.
#[derive(Debug, Default)]
pub struct Scratch {
    /// General-purpose buffer (kernels' scratch).
    pub buf: Vec<f32>,
    /// Second buffer (decoded compressed weights).
    pub weights: Vec<f32>,
}

/// The inputs of one node at run time; optional inputs absent in the model are `None`.
pub struct Inputs<'a> {
    items: &'a [Option<&'a Tensor>],
}

impl<'a> Inputs<'a> {
    /// Wraps a slice of optional tensors.
    pub fn new(items: &'a [Option<&'a Tensor>]) -> Self {
        Inputs { items }
    }

    /// Number of input slots (present or not).
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True if there is no input slot.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Input `i`, which must be present.
    pub fn get(&self, i: usize) -> Result<&'a Tensor, NnError> {
        self.opt(i)
            .ok_or_else(|| NnError::op(format!("missing required input #{i}")))
    }

    /// Input `i` if present.
    pub fn opt(&self, i: usize) -> Option<&'a Tensor> {
        self.items.get(i).copied().flatten()
    }

    /// All present inputs, in order.
    pub fn present(&self) -> impl Iterator<Item = &'a Tensor> + '_ {
        self.items.iter().filter_map(|t| *t)
    }
}

/// The facts of one node's inputs at load time; absent optional inputs are `None`.
pub struct InputFacts<'a> {
    items: &'a [Option<&'a Fact>],
}

impl<'a> InputFacts<'a> {
    /// Wraps a slice of optional facts.
    pub fn new(items: &'a [Option<&'a Fact>]) -> Self {
        InputFacts { items }
    }

    /// Number of input slots.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True if there is no input slot.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Fact of input `i`, which must be present.
    pub fn get(&self, i: usize) -> Result<&'a Fact, NnError> {
        self.opt(i)
            .ok_or_else(|| NnError::op(format!("missing required input #{i}")))
    }

    /// Fact of input `i` if present.
    pub fn opt(&self, i: usize) -> Option<&'a Fact> {
        self.items.get(i).copied().flatten()
    }

    /// Constant value of input `i`, if present and known at load time.
    pub fn konst(&self, i: usize) -> Option<&'a Tensor> {
        self.opt(i).and_then(|f| f.konst.as_ref())
    }
}

/// An operator: a type implementing one ONNX op (or a fused form of it).
///
/// Contract: `infer` is called once at load time with what is known about the
/// inputs and must return one [`Fact`] per output (it may set `konst` when the
/// output is known without running, e.g. `Shape` of a fixed shape); `eval` is
/// called for every run, must not keep state between calls except in `scratch`,
/// and returns one tensor per output. Errors need not name the node: callers
/// attach it with [`NnError::with_node`].
pub trait Op: Send + Sync + Debug + 'static {
    /// The ONNX op type this op implements (e.g. `"Conv"`).
    fn name(&self) -> &'static str;

    /// Output facts from input facts.
    fn infer(&self, inputs: &InputFacts<'_>) -> Result<Vec<Fact>, NnError>;

    /// Computes the outputs.
    fn eval(&self, inputs: &Inputs<'_>, scratch: &mut Scratch) -> Result<Vec<Tensor>, NnError>;

    /// For downcasting by graph passes and hooks.
    fn as_any(&self) -> &dyn Any;

    /// The weight operand this op holds, if it is a compute layer with bound weights.
    fn weights(&self) -> Option<&Weights> {
        None
    }

    /// A copy of this op with its weights replaced; `None` if the op has no weights.
    /// The new weights must have the same shape as the old ones.
    fn with_weights(&self, _weights: Weights) -> Option<Result<Arc<dyn Op>, NnError>> {
        None
    }
}

/// Requires a fact to be `f32`.
pub(crate) fn want_f32(f: &Fact, what: &str) -> Result<(), NnError> {
    if f.dtype != DType::F32 {
        return Err(NnError::op(format!("{what} must be f32, got {}", f.dtype)));
    }
    Ok(())
}

/// Normalises a possibly negative axis against `rank`.
pub(crate) fn norm_axis(axis: i64, rank: usize) -> Result<usize, NnError> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r {
        return Err(NnError::op(format!(
            "axis {axis} out of range for rank {rank}"
        )));
    }
    Ok(a as usize)
}
