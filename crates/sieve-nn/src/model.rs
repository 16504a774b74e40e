//! [`Model`]: a validated, optimised, runnable graph, with the per-layer hooks
//! (read intermediate values, run from intermediate values, transform layer
//! outputs, replace layer weights).

use crate::graph::{Graph, ValueId};
use crate::op::{fmt_dims, Dim, Fact, Op, Scratch};
use crate::{passes, DType, NnError, Tensor, Weights};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Name, dtype and shape of a model input or output.
#[derive(Clone, Debug, PartialEq)]
pub struct IoInfo {
    /// Value name.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Shape; symbolic dims (e.g. the batch `N`) accept any size.
    pub shape: Vec<Dim>,
}

/// A compute layer (Conv, Gemm or MatMul with constant weights) as seen by the
/// hooks: names refer to the source model.
#[derive(Clone, Debug)]
pub struct Layer {
    /// Source node name (e.g. `conv1`).
    pub name: String,
    /// Op type (`Conv`, `Gemm`, `MatMul`).
    pub op: &'static str,
    /// Name of the weight initializer in the source model.
    pub weight_name: String,
    /// Shape of the weights (OIHW for Conv; as stored for Gemm/MatMul). When a
    /// BatchNormalization was folded in, these are the folded weights.
    pub weight_shape: Vec<usize>,
    /// The value the layer reads.
    pub input: ValueId,
    /// The value the layer materialises: its output after any fused
    /// BatchNormalization and activation (e.g. the post-Relu tensor).
    pub output: ValueId,
    /// Source nodes merged into this layer (folded BN, fused Relu/Clip), in order.
    pub fused: Vec<String>,
    node: usize,
}

#[derive(Clone, Debug)]
struct ExecNode {
    name: String,
    op: Arc<dyn Op>,
    inputs: Vec<Option<ValueId>>,
    outputs: Vec<ValueId>,
}

/// A transform hook: called with each node output, may modify it in place.
pub type TransformFn<'a> = &'a (dyn Fn(ValueId, &mut Tensor) -> Result<(), NnError> + Sync);

/// A visitor hook: called with each node output (read-only).
pub type VisitFn<'a> = &'a (dyn Fn(ValueId, &Tensor) + Sync);

/// What [`Model::run_with`] should do besides computing the requested values.
#[derive(Default)]
pub struct RunOptions<'a> {
    /// Values to compute and return; `None` means the model outputs.
    pub targets: Option<Vec<ValueId>>,
    /// Extra values to return (e.g. intermediate activations), in this order.
    pub keep: Vec<ValueId>,
    /// Called on every node output right after it is computed, before anyone
    /// reads it; may modify it in place (e.g. reformat activations). Not called
    /// on fed values or constants.
    pub transform: Option<TransformFn<'a>>,
    /// Called on every node output after `transform` (read-only visitor).
    pub visit: Option<VisitFn<'a>>,
}

/// Result of [`Model::run_with`].
#[derive(Clone, Debug)]
pub struct RunResult {
    /// Values of `targets` (or the model outputs), in order.
    pub outputs: Vec<Tensor>,
    /// Values of `keep`, in order.
    pub kept: Vec<Tensor>,
}

/// A validated, optimised model. `Send + Sync`: [`Model::run`] may be called from
/// several threads at once (each run takes its own scratch from a pool).
pub struct Model {
    names: Vec<String>,
    facts: Vec<Option<Fact>>,
    consts: Vec<Option<Tensor>>,
    nodes: Vec<ExecNode>,
    producer: Vec<Option<usize>>,
    input_ids: Vec<ValueId>,
    output_ids: Vec<ValueId>,
    inputs: Vec<IoInfo>,
    outputs: Vec<IoInfo>,
    by_name: HashMap<String, ValueId>,
    layers: Vec<Layer>,
    /// Values to drop after each node in a plain run.
    frees: Vec<Vec<ValueId>>,
    /// `fuse_next[i]`: node `i` is a `Conv` whose only output is read only by node
    /// `i + 1`, also a `Conv` (as its data input): a candidate for a fused kernel
    /// ([`crate::ops::conv::Conv::eval_with_depthwise`]) when a run needs the intermediate
    /// value for nothing else.
    fuse_next: Vec<bool>,
    pool: Mutex<Vec<Vec<Scratch>>>,
    /// Per-node `(nanoseconds, calls)` when profiling is on (`SIEVE_PROFILE`).
    profile: Option<Mutex<Vec<(u64, u64)>>>,
    /// `SIEVE_PROFILE=warm`: every node runs once untimed right before its timed run,
    /// so the profile shows each node with its data in the caches (set against the
    /// plain profile: what memory traffic between nodes costs; docs/KERNELS.md
    /// "Session 10"). The outputs are those of the timed run.
    profile_warm: bool,
}

/// What the `SIEVE_PROFILE` environment variable asks for: `None` (off), or per-node
/// timing, warm (`Some(true)`) or not.
fn profiling_requested() -> Option<bool> {
    std::env::var_os("SIEVE_PROFILE")
        .filter(|v| !v.is_empty() && v != "0")
        .map(|v| v == "warm")
}

impl Clone for Model {
    fn clone(&self) -> Self {
        Model {
            names: self.names.clone(),
            facts: self.facts.clone(),
            consts: self.consts.clone(),
            nodes: self.nodes.clone(),
            producer: self.producer.clone(),
            input_ids: self.input_ids.clone(),
            output_ids: self.output_ids.clone(),
            inputs: self.inputs.clone(),
            outputs: self.outputs.clone(),
            by_name: self.by_name.clone(),
            layers: self.layers.clone(),
            frees: self.frees.clone(),
            fuse_next: self.fuse_next.clone(),
            pool: Mutex::new(vec![]),
            profile: self
                .profile
                .as_ref()
                .map(|_| Mutex::new(vec![(0, 0); self.nodes.len()])),
            profile_warm: self.profile_warm,
        }
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        if let Some(report) = self.profile_report() {
            eprint!("{report}");
        }
    }
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs)
            .field("nodes", &self.nodes.len())
            .field("layers", &self.layers.len())
            .finish()
    }
}

fn io_info(g: &Graph, v: ValueId) -> Result<IoInfo, NnError> {
    let val = &g.values[v.0];
    let f = val
        .fact
        .as_ref()
        .ok_or_else(|| NnError::Graph(format!("value '{}' has no type", val.name)))?;
    Ok(IoInfo {
        name: val.name.clone(),
        dtype: f.dtype,
        shape: f.shape.clone(),
    })
}

impl Model {
    /// Validates and optimises `graph`: topological sort, Identity/Dropout removal,
    /// shape inference with constant folding, weight binding, BatchNormalization
    /// folding, Relu/Clip fusion, dead-node elimination. Errors name the node.
    pub fn new(mut graph: Graph) -> Result<Model, NnError> {
        passes::topo_sort(&mut graph)?;
        let mut aliases = passes::remove_identities(&mut graph);
        passes::infer_and_fold(&mut graph)?;
        passes::bind_weights(&mut graph)?;
        passes::fold_batchnorm(&mut graph, &mut aliases)?;
        passes::fuse_activations(&mut graph, &mut aliases)?;
        passes::eliminate_dead(&mut graph);
        Model::from_optimised(graph, aliases)
    }

    fn from_optimised(g: Graph, aliases: Vec<(String, ValueId)>) -> Result<Model, NnError> {
        let nv = g.values.len();
        let names: Vec<String> = g.values.iter().map(|v| v.name.clone()).collect();
        let mut by_name: HashMap<String, ValueId> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), ValueId(i)))
            .collect();
        let alias_map: HashMap<String, ValueId> = aliases.iter().cloned().collect();
        for (name, mut id) in aliases {
            let mut hops = 0;
            while let Some(&next) = alias_map.get(&names[id.0]) {
                if next == id || hops > nv {
                    break;
                }
                id = next;
                hops += 1;
            }
            by_name.insert(name, id);
        }
        let consts: Vec<Option<Tensor>> = g
            .values
            .iter()
            .map(|v| v.fact.as_ref().and_then(|f| f.konst.clone()))
            .collect();
        let facts: Vec<Option<Fact>> = g
            .values
            .iter()
            .map(|v| v.fact.as_ref().map(|f| Fact::new(f.dtype, f.shape.clone())))
            .collect();
        let inputs = g
            .inputs
            .iter()
            .map(|&v| io_info(&g, v))
            .collect::<Result<Vec<_>, _>>()?;
        let outputs = g
            .outputs
            .iter()
            .map(|&v| io_info(&g, v))
            .collect::<Result<Vec<_>, _>>()?;
        let nodes: Vec<ExecNode> = g
            .nodes
            .iter()
            .map(|n| ExecNode {
                name: n.name.clone(),
                op: n.op.clone(),
                inputs: n.inputs.clone(),
                outputs: n.outputs.clone(),
            })
            .collect();
        let mut producer = vec![None; nv];
        for (i, n) in nodes.iter().enumerate() {
            for o in &n.outputs {
                producer[o.0] = Some(i);
            }
        }
        let mut layers = vec![];
        for (i, n) in g.nodes.iter().enumerate() {
            if let (Some(w), Some(Some(x))) = (n.op.weights(), n.inputs.first().copied()) {
                layers.push(Layer {
                    name: n.name.clone(),
                    op: n.op.name(),
                    weight_name: String::new(),
                    weight_shape: w.shape().to_vec(),
                    input: x,
                    output: n.outputs[0],
                    fused: n.fused.clone(),
                    node: i,
                });
            }
        }
        let mut m = Model {
            names,
            facts,
            consts,
            nodes,
            producer,
            input_ids: g.inputs.clone(),
            output_ids: g.outputs.clone(),
            inputs,
            outputs,
            by_name,
            layers,
            frees: vec![],
            fuse_next: vec![],
            pool: Mutex::new(vec![]),
            profile: None,
            profile_warm: false,
        };
        let mut uses = vec![0usize; nv];
        for n in &m.nodes {
            for v in n.inputs.iter().flatten() {
                uses[v.0] += 1;
            }
        }
        m.fuse_next = (0..m.nodes.len())
            .map(|i| {
                let (a, Some(b)) = (&m.nodes[i], m.nodes.get(i + 1)) else {
                    return false;
                };
                a.op.name() == "Conv"
                    && b.op.name() == "Conv"
                    && a.outputs.len() == 1
                    && uses[a.outputs[0].0] == 1
                    && b.inputs.first() == Some(&Some(a.outputs[0]))
                    && !m.output_ids.contains(&a.outputs[0])
            })
            .collect();
        if let Some(warm) = profiling_requested() {
            m.profile = Some(Mutex::new(vec![(0, 0); m.nodes.len()]));
            m.profile_warm = warm;
        }
        let all: Vec<bool> = vec![true; m.nodes.len()];
        m.frees = m.free_plan(&all, &m.output_ids);
        Ok(m)
    }

    /// Records the source names of the layers' weight initializers (front ends call
    /// this with the node name -> initializer name map of the source model).
    pub fn set_weight_names(&mut self, names: &HashMap<String, String>) {
        for l in &mut self.layers {
            if let Some(n) = names.get(&l.name) {
                l.weight_name = n.clone();
            }
        }
    }

    /// The model inputs, in the order [`Model::run`] expects them.
    pub fn inputs(&self) -> &[IoInfo] {
        &self.inputs
    }

    /// The model outputs, in the order [`Model::run`] returns them.
    pub fn outputs(&self) -> &[IoInfo] {
        &self.outputs
    }

    /// Ids of the model inputs.
    pub fn input_ids(&self) -> &[ValueId] {
        &self.input_ids
    }

    /// Ids of the model outputs.
    pub fn output_ids(&self) -> &[ValueId] {
        &self.output_ids
    }

    /// The id of a value by its source name. Names of values removed by the passes
    /// resolve to the value that replaced them: an Identity's output to its input,
    /// a Conv/Gemm output to the layer's materialised (post-BN, post-activation)
    /// output.
    pub fn value_id(&self, name: &str) -> Option<ValueId> {
        self.by_name.get(name).copied()
    }

    /// The source name of a value (`None` if the id is out of range).
    pub fn value_name(&self, id: ValueId) -> Option<&str> {
        self.names.get(id.0).map(|s| s.as_str())
    }

    /// Inferred dtype and shape of a value, if known.
    pub fn value_fact(&self, id: ValueId) -> Option<(DType, &[Dim])> {
        self.facts
            .get(id.0)?
            .as_ref()
            .map(|f| (f.dtype, f.shape.as_slice()))
    }

    /// The compute layers (Conv, Gemm, MatMul with constant weights) in execution order.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// Index of the layer named `name` (source node name, or the name of a node fused
    /// into it).
    pub fn layer_index(&self, name: &str) -> Option<usize> {
        self.layers
            .iter()
            .position(|l| l.name == name || l.fused.iter().any(|f| f == name))
    }

    /// The weights of layer `layer`.
    pub fn weights(&self, layer: usize) -> Result<&Weights, NnError> {
        let l = self.layer(layer)?;
        self.nodes[l.node]
            .op
            .weights()
            .ok_or_else(|| NnError::Layer {
                layer: l.name.clone(),
                msg: "has no weights".into(),
            })
    }

    fn layer(&self, layer: usize) -> Result<&Layer, NnError> {
        self.layers.get(layer).ok_or_else(|| NnError::Layer {
            layer: format!("#{layer}"),
            msg: format!("no such layer ({} layers)", self.layers.len()),
        })
    }

    /// Replaces layer `layer`'s weights in place. The new weights must have the
    /// same shape.
    pub fn set_weights(&mut self, layer: usize, weights: Weights) -> Result<(), NnError> {
        let l = self.layer(layer)?;
        let (node, lname) = (l.node, l.name.clone());
        let op = self.nodes[node]
            .op
            .with_weights(weights)
            .ok_or_else(|| NnError::Layer {
                layer: lname.clone(),
                msg: "has no weights".into(),
            })?
            .map_err(|e| NnError::Layer {
                layer: lname,
                msg: e.to_string(),
            })?;
        self.nodes[node].op = op;
        Ok(())
    }

    /// A copy of this model (sharing all other weights) with layer `layer`'s weights
    /// replaced.
    pub fn with_weights(&self, layer: usize, weights: Weights) -> Result<Model, NnError> {
        let mut m = self.clone();
        m.set_weights(layer, weights)?;
        Ok(m)
    }

    /// Runs the model. Inputs must match [`Model::inputs`] in count, dtype and shape
    /// (fixed dims exactly, symbolic dims any size) and be finite; returns one
    /// tensor per output.
    pub fn run(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, NnError> {
        if inputs.len() != self.input_ids.len() {
            return Err(NnError::InputCount {
                expected: self.input_ids.len(),
                got: inputs.len(),
            });
        }
        let mut slots: Vec<Option<Tensor>> = vec![None; self.names.len()];
        for (t, &id) in inputs.into_iter().zip(&self.input_ids) {
            self.check_feed(id, &t, true)?;
            slots[id.0] = Some(t);
        }
        let all = (0..self.nodes.len()).collect::<Vec<_>>();
        self.execute(&mut slots, &all, &self.frees, None, None)?;
        self.output_ids
            .iter()
            .map(|&v| self.take_value(&mut slots, v))
            .collect()
    }

    /// Runs with hooks: `feeds` gives values for any set of value ids (model inputs
    /// or intermediate values: nodes upstream of fed values are skipped, so feeding
    /// the cached output of an unchanged prefix re-runs only what follows), and
    /// `opts` chooses the values to compute, the values to keep and the
    /// transform/visit callbacks. Only nodes needed for the targets and kept values
    /// run. Fails if a needed value is neither fed nor computable.
    pub fn run_with(
        &self,
        feeds: Vec<(ValueId, Tensor)>,
        opts: &RunOptions<'_>,
    ) -> Result<RunResult, NnError> {
        let nv = self.names.len();
        let mut slots: Vec<Option<Tensor>> = vec![None; nv];
        let mut fed = vec![false; nv];
        for (id, t) in feeds {
            if id.0 >= nv {
                return Err(NnError::Graph(format!(
                    "fed value #{} does not exist",
                    id.0
                )));
            }
            self.check_feed(id, &t, self.input_ids.contains(&id))?;
            fed[id.0] = true;
            slots[id.0] = Some(t);
        }
        let targets: Vec<ValueId> = opts
            .targets
            .clone()
            .unwrap_or_else(|| self.output_ids.clone());
        let mut wanted: Vec<ValueId> = targets.clone();
        wanted.extend(opts.keep.iter().copied());
        // Backward pass: which nodes must run.
        let mut need_val = vec![false; nv];
        for v in &wanted {
            if v.0 >= nv {
                return Err(NnError::Graph(format!(
                    "requested value #{} does not exist",
                    v.0
                )));
            }
            need_val[v.0] = true;
        }
        let mut run_node = vec![false; self.nodes.len()];
        for i in (0..self.nodes.len()).rev() {
            let n = &self.nodes[i];
            if n.outputs.iter().any(|o| need_val[o.0] && !fed[o.0]) {
                run_node[i] = true;
                for v in n.inputs.iter().flatten() {
                    need_val[v.0] = true;
                }
            }
        }
        for (v, &needed) in need_val.iter().enumerate() {
            let produced = self.producer[v].is_some_and(|p| run_node[p]);
            if needed && !fed[v] && !produced && self.consts[v].is_none() {
                return Err(NnError::Input {
                    input: self.names[v].clone(),
                    msg: "is needed but neither fed nor computable from the fed values".into(),
                });
            }
        }
        let order: Vec<usize> = (0..self.nodes.len()).filter(|&i| run_node[i]).collect();
        let frees = self.free_plan(&run_node, &wanted);
        self.execute(&mut slots, &order, &frees, opts.transform, opts.visit)?;
        let mut kept = Vec::with_capacity(opts.keep.len());
        for &v in &opts.keep {
            kept.push(self.peek_value(&slots, v)?);
        }
        let outputs = targets
            .iter()
            .map(|&v| self.peek_value(&slots, v))
            .collect::<Result<_, _>>()?;
        Ok(RunResult { outputs, kept })
    }

    fn check_feed(&self, id: ValueId, t: &Tensor, is_input: bool) -> Result<(), NnError> {
        let name = &self.names[id.0];
        if let Some(f) = &self.facts[id.0] {
            if f.dtype != t.dtype() {
                return Err(NnError::Input {
                    input: name.clone(),
                    msg: format!("expected dtype {}, got {}", f.dtype, t.dtype()),
                });
            }
            let ok = f.shape.len() == t.rank()
                && f.shape
                    .iter()
                    .zip(t.shape())
                    .all(|(d, &s)| d.fixed().is_none_or(|n| n == s));
            if !ok {
                return Err(NnError::Input {
                    input: name.clone(),
                    msg: format!("expected shape {}, got {:?}", fmt_dims(&f.shape), t.shape()),
                });
            }
        }
        if is_input {
            if let Some((index, value)) = t.first_non_finite() {
                return Err(NnError::NonFinite {
                    input: name.clone(),
                    index,
                    value,
                });
            }
        }
        Ok(())
    }

    /// For each node, the values whose last use (among running nodes) it is.
    fn free_plan(&self, run_node: &[bool], keep: &[ValueId]) -> Vec<Vec<ValueId>> {
        let nv = self.names.len();
        let mut last = vec![usize::MAX; nv];
        for (i, n) in self.nodes.iter().enumerate() {
            if run_node[i] {
                for v in n.inputs.iter().flatten() {
                    last[v.0] = i;
                }
            }
        }
        for v in keep {
            if v.0 < nv {
                last[v.0] = usize::MAX;
            }
        }
        let mut frees = vec![vec![]; self.nodes.len()];
        for (v, &l) in last.iter().enumerate() {
            if l != usize::MAX {
                frees[l].push(ValueId(v));
            }
        }
        frees
    }

    fn execute(
        &self,
        slots: &mut [Option<Tensor>],
        order: &[usize],
        frees: &[Vec<ValueId>],
        transform: Option<TransformFn<'_>>,
        visit: Option<VisitFn<'_>>,
    ) -> Result<(), NnError> {
        let mut scratch = self
            .pool
            .lock()
            .ok()
            .and_then(|mut p| p.pop())
            .unwrap_or_default();
        scratch.resize_with(self.nodes.len(), Scratch::default);
        // The layers run on this thread; a rayon worker spins beside the run and takes
        // part in its parallel sections (crate::team).
        let res = crate::team::with_team(|| {
            self.execute_inner(slots, order, frees, transform, visit, &mut scratch)
        });
        if let Ok(mut p) = self.pool.lock() {
            p.push(scratch);
        }
        res
    }

    fn execute_inner(
        &self,
        slots: &mut [Option<Tensor>],
        order: &[usize],
        frees: &[Vec<ValueId>],
        transform: Option<TransformFn<'_>>,
        visit: Option<VisitFn<'_>>,
        scratch: &mut [Scratch],
    ) -> Result<(), NnError> {
        let mut k = 0;
        while k < order.len() {
            let i = order[k];
            k += 1;
            let n = &self.nodes[i];
            // A fusable pair (see `fuse_next`) whose intermediate value nothing else in
            // this run wants: no hooks, and it is freed right after its reader; and a third
            // node on the same terms (the pair's output read only by it).
            let fusable = |j: usize, at: usize| {
                self.fuse_next[j]
                    && order.get(at) == Some(&(j + 1))
                    && frees[j + 1].contains(&self.nodes[j].outputs[0])
            };
            if transform.is_none() && visit.is_none() && fusable(i, k) {
                let third = fusable(i + 1, k + 1);
                if let Some((out, fused3)) = self.run_fused(i, third, slots)? {
                    let last = i + 1 + usize::from(fused3);
                    slots[self.nodes[last].outputs[0].0] = Some(out);
                    for v in (i..=last).flat_map(|j| &frees[j]) {
                        if let Some(buf) = slots[v.0].take().and_then(Tensor::into_unique_f32) {
                            crate::buffers::recycle(buf);
                        }
                    }
                    k = k + 1 + usize::from(fused3);
                    continue;
                }
            }
            let outs = {
                let mut ins: Vec<Option<&Tensor>> = Vec::with_capacity(n.inputs.len());
                let s: &[Option<Tensor>] = slots;
                for v in &n.inputs {
                    ins.push(match v {
                        None => None,
                        Some(v) => Some(s[v.0].as_ref().or(self.consts[v.0].as_ref()).ok_or_else(
                            || NnError::Op {
                                node: n.name.clone(),
                                op: n.op.name().to_string(),
                                msg: format!("input '{}' is not available", self.names[v.0]),
                            },
                        )?),
                    });
                }
                if self.profile_warm {
                    // Diagnostic: an untimed run first, so that the timed one finds its
                    // input, weights and (recycled) output buffer in the caches.
                    if let Ok(outs) = n.op.eval(&crate::op::Inputs::new(&ins), &mut scratch[i]) {
                        for t in outs {
                            if let Some(b) = t.into_unique_f32() {
                                crate::buffers::recycle(b);
                            }
                        }
                    }
                }
                let t0 = self.profile.as_ref().map(|_| std::time::Instant::now());
                let r =
                    n.op.eval(&crate::op::Inputs::new(&ins), &mut scratch[i])
                        .map_err(|e| e.with_node(&n.name, n.op.name()));
                if let (Some(t0), Some(Ok(mut p))) = (t0, self.profile.as_ref().map(|p| p.lock())) {
                    p[i].0 += t0.elapsed().as_nanos() as u64;
                    p[i].1 += 1;
                }
                r?
            };
            for (mut t, &o) in outs.into_iter().zip(&n.outputs) {
                if let Some(f) = transform {
                    f(o, &mut t).map_err(|e| e.with_node(&n.name, n.op.name()))?;
                }
                if let Some(f) = visit {
                    f(o, &t);
                }
                slots[o.0] = Some(t);
            }
            for v in &frees[i] {
                // Unshared data goes back to the output-buffer pool (crate::buffers).
                if let Some(buf) = slots[v.0].take().and_then(Tensor::into_unique_f32) {
                    crate::buffers::recycle(buf);
                }
            }
        }
        Ok(())
    }

    /// Runs nodes `i` and `i + 1` (a `fuse_next` pair), and with `third` node `i + 2`
    /// too, as one fused kernel if their ops and shapes allow: the output of the last
    /// node run and whether that is node `i + 2`, or `None` (nothing run).
    fn run_fused(
        &self,
        i: usize,
        third: bool,
        slots: &[Option<Tensor>],
    ) -> Result<Option<(Tensor, bool)>, NnError> {
        let conv = |j: usize| {
            self.nodes
                .get(j)
                .and_then(|n| n.op.as_any().downcast_ref::<crate::ops::conv::Conv>())
        };
        let (Some(ca), Some(cb)) = (conv(i), conv(i + 1)) else {
            return Ok(None);
        };
        let cc = if third { conv(i + 2) } else { None };
        let Some(Some(x)) = self.nodes[i].inputs.first() else {
            return Ok(None);
        };
        let Some(x) = slots[x.0].as_ref().or(self.consts[x.0].as_ref()) else {
            return Ok(None);
        };
        let t0 = self.profile.as_ref().map(|_| std::time::Instant::now());
        let r = ca.eval_with_depthwise(cb, cc, x).map_err(|e| {
            let b = &self.nodes[i + 1];
            e.with_node(&b.name, b.op.name())
        })?;
        if let (Some(t0), Some(Ok(mut p)), Some((_, fused3))) =
            (t0, self.profile.as_ref().map(|p| p.lock()), r.as_ref())
        {
            // Reported on the last node (the others show their calls, no time).
            let last = i + 1 + usize::from(*fused3);
            p[last].0 += t0.elapsed().as_nanos() as u64;
            for q in &mut p[i..=last] {
                q.1 += 1;
            }
        }
        Ok(r)
    }

    fn take_value(&self, slots: &mut [Option<Tensor>], v: ValueId) -> Result<Tensor, NnError> {
        match slots[v.0].take().or_else(|| self.consts[v.0].clone()) {
            Some(t) => Ok(t),
            None => Err(NnError::Graph(format!(
                "value '{}' was not computed",
                self.names[v.0]
            ))),
        }
    }

    fn peek_value(&self, slots: &[Option<Tensor>], v: ValueId) -> Result<Tensor, NnError> {
        match slots[v.0].clone().or_else(|| self.consts[v.0].clone()) {
            Some(t) => Ok(t),
            None => Err(NnError::Graph(format!(
                "value '{}' was not computed",
                self.names[v.0]
            ))),
        }
    }

    /// The values a run starting at layer `layer`'s node (`after = false`) or right
    /// after it (`after = true`) needs from before that point: model inputs and
    /// values produced earlier that a later node reads or that are model outputs
    /// (constants excluded), sorted by id. Feeding them to [`Model::run_with`]
    /// re-runs only the rest of the network (the cut for caching a prefix).
    pub fn live_values(&self, layer: usize, after: bool) -> Result<Vec<ValueId>, NnError> {
        let start = self.layer(layer)?.node + usize::from(after);
        let before = |v: &ValueId| match self.producer[v.0] {
            Some(p) => p < start,
            None => self.consts[v.0].is_none(),
        };
        let mut live: Vec<ValueId> = self.nodes[start..]
            .iter()
            .flat_map(|n| n.inputs.iter().flatten())
            .chain(&self.output_ids)
            .filter(|v| before(v))
            .copied()
            .collect();
        live.sort_by_key(|v| v.0);
        live.dedup();
        Ok(live)
    }

    /// The per-node time profile, if profiling was requested by setting the
    /// `SIEVE_PROFILE` environment variable (to anything but `0`) before the model was
    /// built: one line per node (mean microseconds per call, share of the total, calls,
    /// op, output shape), slowest first, plus totals per op type. `None` when
    /// profiling is off or nothing ran. With profiling on, the report is also printed
    /// to stderr when the model is dropped.
    pub fn profile_report(&self) -> Option<String> {
        use std::fmt::Write as _;
        let p = self.profile.as_ref()?.lock().ok()?.clone();
        let total: u64 = p.iter().map(|x| x.0).sum();
        let runs = p.iter().map(|x| x.1).max().unwrap_or(0);
        if total == 0 || runs == 0 {
            return None;
        }
        let mut rows: Vec<usize> = (0..p.len()).filter(|&i| p[i].1 > 0).collect();
        rows.sort_by_key(|&i| std::cmp::Reverse(p[i].0));
        let mut s = String::new();
        let per_run = total as f64 / runs as f64 / 1e3;
        let _ = writeln!(
            s,
            "sieve profile: {runs} runs, {per_run:.1} us/run in nodes"
        );
        let mut by_op: Vec<(&str, u64, usize)> = vec![];
        for &i in &rows {
            let n = &self.nodes[i];
            match by_op.iter_mut().find(|e| e.0 == n.op.name()) {
                Some(e) => {
                    e.1 += p[i].0;
                    e.2 += 1;
                }
                None => by_op.push((n.op.name(), p[i].0, 1)),
            }
        }
        by_op.sort_by_key(|e| std::cmp::Reverse(e.1));
        for (op, t, count) in by_op {
            let _ = writeln!(
                s,
                "  op {op:<20} {:>9.1} us/run {:>5.1}%  ({count} nodes)",
                t as f64 / runs as f64 / 1e3,
                100.0 * t as f64 / total as f64
            );
        }
        for &i in &rows {
            let n = &self.nodes[i];
            let shape = n
                .outputs
                .first()
                .and_then(|o| self.facts[o.0].as_ref())
                .map(|f| fmt_dims(&f.shape))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "  {:>9.1} us {:>5.1}%  {:<12} {:<32} {shape}",
                p[i].0 as f64 / p[i].1 as f64 / 1e3,
                100.0 * p[i].0 as f64 / total as f64,
                n.op.name(),
                n.name
            );
        }
        Some(s)
    }

    /// Number of nodes executed by a plain run (after all passes).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// `(node name, op type)` of every executed node, in order.
    pub fn node_summary(&self) -> Vec<(&str, &'static str)> {
        self.nodes
            .iter()
            .map(|n| (n.name.as_str(), n.op.name()))
            .collect()
    }
}
