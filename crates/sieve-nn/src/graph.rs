//! The graph IR: values (name + fact), nodes (an [`Op`] with input and output
//! value ids) and the graph's inputs and outputs. Front ends (sieve-onnx) build a
//! [`Graph`]; [`crate::Model::new`] validates and optimises it.

use crate::op::{Fact, Op};
use crate::{NnError, Tensor};
use std::collections::HashMap;
use std::sync::Arc;

/// Index of a value (tensor) in a graph or model. Stable across the load-time
/// passes: a value keeps its id from the graph to the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId(pub usize);

/// A value: its name and what is known about it (declared dtype/shape, or the
/// constant itself).
#[derive(Clone, Debug)]
pub struct Value {
    /// Name in the source model.
    pub name: String,
    /// Declared or inferred fact (`None` until inferred for node outputs).
    pub fact: Option<Fact>,
}

/// A node: an op applied to input values, producing output values.
#[derive(Clone, Debug)]
pub struct Node {
    /// Node name in the source model (unique).
    pub name: String,
    /// The op.
    pub op: Arc<dyn Op>,
    /// Input value ids; `None` for an absent optional input.
    pub inputs: Vec<Option<ValueId>>,
    /// Output value ids.
    pub outputs: Vec<ValueId>,
    /// Names of source nodes merged into this one by the passes (e.g. a folded
    /// BatchNormalization and a fused Relu), in order.
    pub fused: Vec<String>,
}

/// A dataflow graph under construction.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    /// All values, indexed by [`ValueId`].
    pub values: Vec<Value>,
    /// Nodes (any order; sorted by [`crate::Model::new`]).
    pub nodes: Vec<Node>,
    /// Graph inputs (runtime-fed values), in order.
    pub inputs: Vec<ValueId>,
    /// Graph outputs, in order.
    pub outputs: Vec<ValueId>,
    by_name: HashMap<String, ValueId>,
}

impl Graph {
    /// An empty graph.
    pub fn new() -> Graph {
        Graph::default()
    }

    /// Adds a value named `name`; fails if the name already exists.
    pub fn add_value(&mut self, name: &str, fact: Option<Fact>) -> Result<ValueId, NnError> {
        if self.by_name.contains_key(name) {
            return Err(NnError::Graph(format!("value '{name}' is defined twice")));
        }
        let id = ValueId(self.values.len());
        self.values.push(Value {
            name: name.to_string(),
            fact,
        });
        self.by_name.insert(name.to_string(), id);
        Ok(id)
    }

    /// Adds a constant (initializer) value.
    pub fn add_const(&mut self, name: &str, t: Tensor) -> Result<ValueId, NnError> {
        let f = Fact::of_tensor(&t);
        self.add_value(name, Some(f))
    }

    /// Looks a value up by name.
    pub fn value_id(&self, name: &str) -> Option<ValueId> {
        self.by_name.get(name).copied()
    }

    /// Adds a node. Output values must already exist (see [`Graph::add_value`]).
    pub fn add_node(
        &mut self,
        name: &str,
        op: Arc<dyn Op>,
        inputs: Vec<Option<ValueId>>,
        outputs: Vec<ValueId>,
    ) -> Result<(), NnError> {
        for v in inputs.iter().flatten().chain(outputs.iter()) {
            if v.0 >= self.values.len() {
                return Err(NnError::Graph(format!(
                    "node '{name}' refers to unknown value #{}",
                    v.0
                )));
            }
        }
        self.nodes.push(Node {
            name: name.to_string(),
            op,
            inputs,
            outputs,
            fused: vec![],
        });
        Ok(())
    }

    /// The constant value of `id`, if known.
    pub fn konst(&self, id: ValueId) -> Option<&Tensor> {
        self.values.get(id.0)?.fact.as_ref()?.konst.as_ref()
    }

    /// Number of uses of every value (node inputs plus graph outputs).
    pub fn use_counts(&self) -> Vec<usize> {
        let mut c = vec![0; self.values.len()];
        for n in &self.nodes {
            for v in n.inputs.iter().flatten() {
                c[v.0] += 1;
            }
        }
        for v in &self.outputs {
            c[v.0] += 1;
        }
        c
    }
}
