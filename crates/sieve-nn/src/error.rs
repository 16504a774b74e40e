//! The crate's error type.

/// Everything that can go wrong while building or running a model.
///
/// Errors raised inside an operator carry the node name and op type once the
/// executor or a graph pass has attached them (see [`NnError::with_node`]).
#[derive(Debug, thiserror::Error)]
pub enum NnError {
    /// A tensor's data length does not match the product of its shape.
    #[error("tensor data length {len} does not match shape {shape:?} ({expected} elements)")]
    Length {
        /// Requested shape.
        shape: Vec<usize>,
        /// Number of elements the shape implies.
        expected: usize,
        /// Number of elements given.
        len: usize,
    },
    /// A tensor has the wrong element type.
    #[error("expected a {expected} tensor, got {got}")]
    DType {
        /// Expected dtype name.
        expected: &'static str,
        /// Actual dtype name.
        got: &'static str,
    },
    /// An operator failed (bad shapes, bad values, kernel failure).
    #[error("node '{node}' (op {op}): {msg}")]
    Op {
        /// Node name (empty until attached).
        node: String,
        /// ONNX op type (empty until attached).
        op: String,
        /// What went wrong, with the shapes involved.
        msg: String,
    },
    /// An attribute is missing, malformed or has an unsupported value.
    #[error("node '{node}' (op {op}): attribute '{attr}': {msg}")]
    Attribute {
        /// Node name.
        node: String,
        /// ONNX op type.
        op: String,
        /// Attribute name.
        attr: String,
        /// What is wrong with it.
        msg: String,
    },
    /// The operator type is not supported by this engine.
    #[error("node '{node}' (op {op}): unsupported operator")]
    UnsupportedOp {
        /// Node name.
        node: String,
        /// ONNX op type.
        op: String,
    },
    /// The graph is malformed (missing value, cycle, duplicate producer...).
    #[error("invalid graph: {0}")]
    Graph(String),
    /// A model input (or fed intermediate value) is not acceptable.
    #[error("input '{input}': {msg}")]
    Input {
        /// Name of the input value.
        input: String,
        /// What is wrong (count, dtype, shape), with the shapes involved.
        msg: String,
    },
    /// A model input contains NaN or an infinity.
    #[error("input '{input}': non-finite value {value} at flat index {index}")]
    NonFinite {
        /// Name of the input value.
        input: String,
        /// Flat (row-major) index of the first non-finite element.
        index: usize,
        /// The offending value.
        value: f32,
    },
    /// Wrong number of inputs given to [`crate::Model::run`].
    #[error("expected {expected} inputs, got {got}")]
    InputCount {
        /// Number the model declares.
        expected: usize,
        /// Number given.
        got: usize,
    },
    /// A layer index or name passed to the hook API does not exist or does not fit.
    #[error("layer '{layer}': {msg}")]
    Layer {
        /// Layer name or index.
        layer: String,
        /// What is wrong.
        msg: String,
    },
    /// The global thread pool could not be configured.
    #[error("thread pool: {0}")]
    Threads(String),
}

impl NnError {
    /// An operator error without node context (attached later by [`NnError::with_node`]).
    pub fn op(msg: impl Into<String>) -> Self {
        NnError::Op {
            node: String::new(),
            op: String::new(),
            msg: msg.into(),
        }
    }

    /// An attribute error without node context.
    pub fn attr(attr: &str, msg: impl Into<String>) -> Self {
        NnError::Attribute {
            node: String::new(),
            op: String::new(),
            attr: attr.to_string(),
            msg: msg.into(),
        }
    }

    /// Fills in the node name and op type of an [`NnError::Op`], [`NnError::Attribute`]
    /// or [`NnError::UnsupportedOp`] error if they are still empty; other errors are
    /// returned unchanged.
    pub fn with_node(self, node_name: &str, op_type: &str) -> Self {
        match self {
            NnError::Op { node, op, msg } => NnError::Op {
                node: if node.is_empty() {
                    node_name.to_string()
                } else {
                    node
                },
                op: if op.is_empty() {
                    op_type.to_string()
                } else {
                    op
                },
                msg,
            },
            NnError::Attribute {
                node,
                op,
                attr,
                msg,
            } => NnError::Attribute {
                node: if node.is_empty() {
                    node_name.to_string()
                } else {
                    node
                },
                op: if op.is_empty() {
                    op_type.to_string()
                } else {
                    op
                },
                attr,
                msg,
            },
            NnError::UnsupportedOp { node, op } => NnError::UnsupportedOp {
                node: if node.is_empty() {
                    node_name.to_string()
                } else {
                    node
                },
                op: if op.is_empty() {
                    op_type.to_string()
                } else {
                    op
                },
            },
            NnError::DType { expected, got } => NnError::Op {
                node: node_name.to_string(),
                op: op_type.to_string(),
                msg: format!("expected a {expected} tensor, got {got}"),
            },
            NnError::Length { .. } => NnError::Op {
                node: node_name.to_string(),
                op: op_type.to_string(),
                msg: self.to_string(),
            },
            other => other,
        }
    }
}
