//! Operator implementations, one file per op family, and the registry mapping
//! ONNX op types to constructors.

pub mod conv;
pub mod elementwise;
pub mod matmul;
pub mod norm;
pub mod pool;
pub mod reduce;
pub mod shape;
pub mod softmax;

use crate::op::{NodeSpec, Op};
use crate::NnError;
use std::collections::HashMap;
use std::sync::Arc;

/// Builds an op from a node description; fails on unsupported attributes.
pub type Constructor = fn(&NodeSpec) -> Result<Box<dyn Op>, NnError>;

/// Maps op types of the default ONNX domain to constructors.
#[derive(Clone)]
pub struct Registry {
    map: HashMap<&'static str, Constructor>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names = self.names();
        names.sort_unstable();
        f.debug_struct("Registry").field("ops", &names).finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn empty() -> Registry {
        Registry {
            map: HashMap::new(),
        }
    }

    /// Every operator this crate implements.
    pub fn standard() -> Registry {
        let mut r = Registry::empty();
        let entries: &[(&'static str, Constructor)] = &[
            ("Conv", conv::Conv::from_spec),
            ("MaxPool", pool::Pool::from_spec),
            ("AveragePool", pool::Pool::from_spec),
            ("GlobalAveragePool", pool::GlobalPool::from_spec),
            ("GlobalMaxPool", pool::GlobalPool::from_spec),
            ("LRN", norm::Lrn::from_spec),
            ("BatchNormalization", norm::BatchNorm::from_spec),
            ("Gemm", matmul::Gemm::from_spec),
            ("MatMul", matmul::MatMul::from_spec),
            ("Relu", elementwise::Unary::from_spec),
            ("LeakyRelu", elementwise::Unary::from_spec),
            ("Sigmoid", elementwise::Unary::from_spec),
            ("HardSigmoid", elementwise::Unary::from_spec),
            ("HardSwish", elementwise::Unary::from_spec),
            ("Tanh", elementwise::Unary::from_spec),
            ("Exp", elementwise::Unary::from_spec),
            ("Sqrt", elementwise::Unary::from_spec),
            ("Log", elementwise::Unary::from_spec),
            ("Neg", elementwise::Unary::from_spec),
            ("Abs", elementwise::Unary::from_spec),
            ("Clip", elementwise::Clip::from_spec),
            ("Cast", elementwise::Cast::from_spec),
            ("CastLike", elementwise::Cast::from_spec),
            ("PRelu", elementwise::Elementwise::from_spec),
            ("Add", elementwise::Elementwise::from_spec),
            ("Sub", elementwise::Elementwise::from_spec),
            ("Mul", elementwise::Elementwise::from_spec),
            ("Div", elementwise::Elementwise::from_spec),
            ("Max", elementwise::Elementwise::from_spec),
            ("Min", elementwise::Elementwise::from_spec),
            ("Sum", elementwise::Elementwise::from_spec),
            ("Mean", elementwise::Elementwise::from_spec),
            ("Softmax", softmax::Softmax::from_spec),
            ("LogSoftmax", softmax::Softmax::from_spec),
            ("ReduceMean", reduce::Reduce::from_spec),
            ("ReduceSum", reduce::Reduce::from_spec),
            ("ReduceMax", reduce::Reduce::from_spec),
            ("ReduceMin", reduce::Reduce::from_spec),
            ("ReduceSumSquare", reduce::Reduce::from_spec),
            ("Concat", shape::Concat::from_spec),
            ("Flatten", shape::Flatten::from_spec),
            ("Reshape", shape::Reshape::from_spec),
            ("Transpose", shape::Transpose::from_spec),
            ("Squeeze", shape::Squeeze::from_spec),
            ("Unsqueeze", shape::Squeeze::from_spec),
            ("Pad", shape::Pad::from_spec),
            ("Dropout", shape::Identity::from_spec),
            ("Identity", shape::Identity::from_spec),
            ("Constant", shape::Constant::from_spec),
            ("Shape", shape::Shape::from_spec),
            ("Gather", shape::Gather::from_spec),
            ("ConstantOfShape", shape::ConstantOfShape::from_spec),
            ("Expand", shape::Expand::from_spec),
        ];
        for (name, ctor) in entries {
            r.register(name, *ctor);
        }
        r
    }

    /// Adds or replaces the constructor for `op_type`.
    pub fn register(&mut self, op_type: &'static str, ctor: Constructor) {
        self.map.insert(op_type, ctor);
    }

    /// Supported op types (unordered).
    pub fn names(&self) -> Vec<&'static str> {
        self.map.keys().copied().collect()
    }

    /// True if `op_type` has a constructor.
    pub fn supports(&self, op_type: &str) -> bool {
        self.map.contains_key(op_type)
    }

    /// Builds the op for `spec`; errors name the node and op.
    pub fn build(&self, spec: &NodeSpec) -> Result<Arc<dyn Op>, NnError> {
        let ctor = self
            .map
            .get(spec.op_type.as_str())
            .ok_or_else(|| NnError::UnsupportedOp {
                node: spec.name.clone(),
                op: spec.op_type.clone(),
            })?;
        ctor(spec)
            .map(Arc::from)
            .map_err(|e| e.with_node(&spec.name, &spec.op_type))
    }
}
