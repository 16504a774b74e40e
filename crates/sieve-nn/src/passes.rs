//! Load-time passes over a [`Graph`]: topological sort, Identity/Dropout removal,
//! shape inference with constant folding, weight binding, BatchNormalization
//! folding, activation fusion and dead-node elimination.

use crate::graph::{Graph, Node, ValueId};
use crate::kernels::Activation;
use crate::op::{Fact, InputFacts, Inputs, Op, Scratch};
use crate::ops::conv::Conv;
use crate::ops::elementwise::{BinaryKind, Clip, Elementwise, Unary, UnaryKind};
use crate::ops::matmul::{Gemm, MatMul};
use crate::ops::norm::BatchNorm;
use crate::ops::pool::Pool;
use crate::ops::shape::Identity;
use crate::{NnError, Tensor, Weights};
use std::collections::HashMap;
use std::sync::Arc;

/// Orders nodes so that every input is produced before use; fails naming the node
/// whose input is never produced (or that sits on a cycle).
pub fn topo_sort(g: &mut Graph) -> Result<(), NnError> {
    let mut producer: HashMap<ValueId, usize> = HashMap::new();
    for (i, n) in g.nodes.iter().enumerate() {
        for &o in &n.outputs {
            if producer.insert(o, i).is_some() {
                return Err(NnError::Graph(format!(
                    "value '{}' is produced by more than one node (second: '{}')",
                    g.values[o.0].name, n.name
                )));
            }
            if g.inputs.contains(&o) || g.konst(o).is_some() {
                return Err(NnError::Graph(format!(
                    "node '{}' overwrites input or constant '{}'",
                    n.name, g.values[o.0].name
                )));
            }
        }
    }
    let available = |v: ValueId, g: &Graph| g.inputs.contains(&v) || g.konst(v).is_some();
    for n in &g.nodes {
        for &v in n.inputs.iter().flatten() {
            if !producer.contains_key(&v) && !available(v, g) {
                return Err(NnError::Graph(format!(
                    "node '{}' (op {}): input '{}' is not defined",
                    n.name,
                    n.op.name(),
                    g.values[v.0].name
                )));
            }
        }
    }
    for &v in &g.outputs {
        if !producer.contains_key(&v) && !available(v, g) {
            return Err(NnError::Graph(format!(
                "graph output '{}' is not produced",
                g.values[v.0].name
            )));
        }
    }
    // Kahn's algorithm, keeping the original order among ready nodes.
    let n = g.nodes.len();
    let mut indeg = vec![0usize; n];
    let mut users: Vec<Vec<usize>> = vec![vec![]; n];
    for (i, node) in g.nodes.iter().enumerate() {
        for v in node.inputs.iter().flatten() {
            if let Some(&p) = producer.get(v) {
                indeg[i] += 1;
                users[p].push(i);
            }
        }
    }
    let mut ready: std::collections::BTreeSet<usize> = (0..n).filter(|&i| indeg[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &u in &users[i] {
            indeg[u] -= 1;
            if indeg[u] == 0 {
                ready.insert(u);
            }
        }
    }
    if order.len() != n {
        let stuck = (0..n)
            .find(|&i| indeg[i] > 0)
            .map(|i| g.nodes[i].name.clone())
            .unwrap_or_default();
        return Err(NnError::Graph(format!(
            "the graph has a cycle through node '{stuck}'"
        )));
    }
    let mut old: Vec<Option<Node>> = std::mem::take(&mut g.nodes).into_iter().map(Some).collect();
    g.nodes = order.into_iter().filter_map(|i| old[i].take()).collect();
    Ok(())
}

fn replace_uses(g: &mut Graph, from: ValueId, to: ValueId) {
    for n in &mut g.nodes {
        for v in n.inputs.iter_mut().flatten() {
            if *v == from {
                *v = to;
            }
        }
    }
}

/// Removes Identity and Dropout nodes (rewiring their consumers) unless their
/// output is a graph output. Returns aliases: removed value name -> surviving id.
pub fn remove_identities(g: &mut Graph) -> Vec<(String, ValueId)> {
    let mut aliases = vec![];
    let mut i = 0;
    while i < g.nodes.len() {
        let n = &g.nodes[i];
        let is_id = n.op.as_any().downcast_ref::<Identity>().is_some();
        if is_id && n.outputs.len() == 1 && !g.outputs.contains(&n.outputs[0]) {
            if let Some(Some(src)) = n.inputs.first().copied() {
                let out = n.outputs[0];
                aliases.push((g.values[out.0].name.clone(), src));
                replace_uses(g, out, src);
                g.nodes.remove(i);
                continue;
            }
        }
        i += 1;
    }
    aliases
}

/// Infers every value's fact and folds nodes whose inputs are all constant (and
/// nodes whose outputs inference proves constant, e.g. `Shape` of a fixed shape).
pub fn infer_and_fold(g: &mut Graph) -> Result<(), NnError> {
    for &v in &g.inputs {
        let val = &g.values[v.0];
        if val.fact.is_none() {
            return Err(NnError::Graph(format!(
                "graph input '{}' has no declared type and shape",
                val.name
            )));
        }
    }
    let mut keep = Vec::with_capacity(g.nodes.len());
    for node in std::mem::take(&mut g.nodes) {
        let facts: Vec<Option<&Fact>> = node
            .inputs
            .iter()
            .map(|v| v.and_then(|v| g.values[v.0].fact.as_ref()))
            .collect();
        for (k, v) in node.inputs.iter().enumerate() {
            if let (Some(v), None) = (v, facts[k]) {
                return Err(NnError::Graph(format!(
                    "node '{}' (op {}): input '{}' has no known type",
                    node.name,
                    node.op.name(),
                    g.values[v.0].name
                )));
            }
        }
        let all_const = facts.iter().flatten().all(|f| f.konst.is_some());
        let ctx = |e: NnError| e.with_node(&node.name, node.op.name());
        let out_facts: Vec<Fact> = if all_const {
            let ts: Vec<Option<&Tensor>> = facts
                .iter()
                .map(|f| f.and_then(|f| f.konst.as_ref()))
                .collect();
            let outs = node
                .op
                .eval(&Inputs::new(&ts), &mut Scratch::default())
                .map_err(ctx)?;
            outs.iter().map(Fact::of_tensor).collect()
        } else {
            node.op.infer(&InputFacts::new(&facts)).map_err(ctx)?
        };
        if out_facts.len() < node.outputs.len() {
            return Err(NnError::Op {
                node: node.name.clone(),
                op: node.op.name().to_string(),
                msg: format!(
                    "produces {} outputs, {} requested",
                    out_facts.len(),
                    node.outputs.len()
                ),
            });
        }
        let folded = out_facts
            .iter()
            .take(node.outputs.len())
            .all(|f| f.konst.is_some());
        for (&o, f) in node.outputs.iter().zip(out_facts) {
            g.values[o.0].fact = Some(f);
        }
        if !folded {
            keep.push(node);
        }
    }
    g.nodes = keep;
    Ok(())
}

/// Moves constant weight (and bias) operands of Conv, Gemm and 2-D MatMul into
/// the op as [`Weights`].
pub fn bind_weights(g: &mut Graph) -> Result<(), NnError> {
    for i in 0..g.nodes.len() {
        let n = &g.nodes[i];
        let kin = |k: usize| {
            n.inputs
                .get(k)
                .copied()
                .flatten()
                .and_then(|v| g.konst(v).cloned())
        };
        let absent = |k: usize| n.inputs.get(k).copied().flatten().is_none();
        let any = n.op.as_any();
        let new: Option<Arc<dyn Op>> = if let Some(c) = any.downcast_ref::<Conv>() {
            match (c.weights.is_none(), kin(1), kin(2), absent(2)) {
                (true, Some(w), b, no_b) if b.is_some() || no_b => {
                    Some(Arc::new(c.bound(Weights::dense(w)?, b)))
                }
                _ => None,
            }
        } else if let Some(c) = any.downcast_ref::<Gemm>() {
            match (c.weights.is_none(), kin(1), kin(2), absent(2)) {
                (true, Some(w), b, no_b) if b.is_some() || no_b => {
                    Some(Arc::new(c.bound(Weights::dense(w)?, b)))
                }
                _ => None,
            }
        } else if let Some(c) = any.downcast_ref::<MatMul>() {
            match (c.weights.is_none(), kin(1)) {
                (true, Some(w)) if w.rank() == 2 => Some(Arc::new(MatMul {
                    weights: Some(Weights::dense(w)?),
                })),
                _ => None,
            }
        } else {
            None
        };
        if let Some(op) = new {
            let n = &mut g.nodes[i];
            n.op = op;
            n.inputs.truncate(1);
        }
    }
    Ok(())
}

fn alias_outputs(
    g: &Graph,
    producer: usize,
    absorbed: &Node,
    aliases: &mut Vec<(String, ValueId)>,
) {
    for (old, new) in g.nodes[producer].outputs.iter().zip(&absorbed.outputs) {
        aliases.push((g.values[old.0].name.clone(), *new));
    }
}

fn producer_index(g: &Graph, v: ValueId) -> Option<usize> {
    g.nodes.iter().position(|n| n.outputs.contains(&v))
}

/// Folds a BatchNormalization into the Conv or Gemm producing its input when that
/// producer has bound dense weights, no fused activation and no other consumer.
/// Aliases (replaced value name -> surviving id) are appended to `aliases`.
pub fn fold_batchnorm(g: &mut Graph, aliases: &mut Vec<(String, ValueId)>) -> Result<(), NnError> {
    let mut i = 0;
    while i < g.nodes.len() {
        let folded = try_fold_bn(g, i, aliases)?;
        if !folded {
            i += 1;
        }
    }
    Ok(())
}

fn try_fold_bn(
    g: &mut Graph,
    i: usize,
    aliases: &mut Vec<(String, ValueId)>,
) -> Result<bool, NnError> {
    let n = &g.nodes[i];
    let Some(bn) = n.op.as_any().downcast_ref::<BatchNorm>() else {
        return Ok(false);
    };
    let params: Option<Vec<Tensor>> = (1..5)
        .map(|k| {
            n.inputs
                .get(k)
                .copied()
                .flatten()
                .and_then(|v| g.konst(v).cloned())
        })
        .collect();
    let (Some(params), Some(Some(x))) = (params, n.inputs.first().copied()) else {
        return Ok(false);
    };
    let Some(p) = producer_index(g, x) else {
        return Ok(false);
    };
    if g.use_counts()[x.0] != 1 {
        return Ok(false);
    }
    let (ka, kb) = bn
        .coefficients(&params[0], &params[1], &params[2], &params[3])
        .map_err(|e| e.with_node(&n.name, "BatchNormalization"))?;
    let c = ka.len();
    let pop = &g.nodes[p].op;
    let new: Option<Arc<dyn Op>> = if let Some(conv) = pop.as_any().downcast_ref::<Conv>() {
        match (&conv.weights, conv.act) {
            (Some(Weights::Dense(w)), Activation::None) if w.shape().first() == Some(&c) => {
                let mut wd = w.f32s()?.to_vec();
                let per = wd.len() / c.max(1);
                for (o, chunk) in wd.chunks_mut(per.max(1)).enumerate() {
                    chunk.iter_mut().for_each(|v| *v *= ka[o]);
                }
                let bias: Vec<f32> = match &conv.bias {
                    Some(b) => b
                        .f32s()?
                        .iter()
                        .enumerate()
                        .map(|(o, &v)| v * ka[o] + kb[o])
                        .collect(),
                    None => kb.clone(),
                };
                let w2 = Tensor::from_f32(w.shape().to_vec(), wd)?;
                Some(Arc::new(conv.bound(
                    Weights::Dense(w2),
                    Some(Tensor::from_f32(vec![c], bias)?),
                )))
            }
            _ => None,
        }
    } else if let Some(gm) = pop.as_any().downcast_ref::<Gemm>() {
        match (&gm.weights, gm.act) {
            (Some(Weights::Dense(w)), Activation::None)
                if w.rank() == 2 && (gm.beta == 1.0 || gm.bias.is_none()) =>
            {
                let s = w.shape();
                let ncols = if gm.trans_b { s[0] } else { s[1] };
                let bias_ok = gm.bias.as_ref().is_none_or(|b| b.len() == ncols);
                if ncols != c || !bias_ok {
                    None
                } else {
                    let mut wd = w.f32s()?.to_vec();
                    if gm.trans_b {
                        let k = s[1];
                        for (o, row) in wd.chunks_mut(k.max(1)).enumerate() {
                            row.iter_mut().for_each(|v| *v *= ka[o]);
                        }
                    } else {
                        for row in wd.chunks_mut(c.max(1)) {
                            row.iter_mut().zip(&ka).for_each(|(v, a)| *v *= a);
                        }
                    }
                    let bias: Vec<f32> = match &gm.bias {
                        Some(b) => b
                            .f32s()?
                            .iter()
                            .enumerate()
                            .map(|(o, &v)| v * ka[o] + kb[o])
                            .collect(),
                        None => kb.clone(),
                    };
                    let mut g2 = gm.bound(
                        Weights::Dense(Tensor::from_f32(s.to_vec(), wd)?),
                        Some(Tensor::from_f32(vec![c], bias)?),
                    );
                    g2.beta = 1.0;
                    Some(Arc::new(g2))
                }
            }
            _ => None,
        }
    } else {
        None
    };
    let Some(op) = new else {
        return Ok(false);
    };
    let bn_node = g.nodes.remove(i);
    let p = if p > i { p - 1 } else { p };
    alias_outputs(g, p, &bn_node, aliases);
    let prod = &mut g.nodes[p];
    prod.op = op;
    prod.outputs = bn_node.outputs.clone();
    prod.fused.push(bn_node.name);
    Ok(true)
}

/// Fuses a Relu or a Clip with constant bounds into the Conv, Gemm, pooling or binary
/// `f32` Add producing its input when that producer has no other consumer and no
/// activation yet.
/// Aliases (replaced value name -> surviving id) are appended to `aliases`.
pub fn fuse_activations(
    g: &mut Graph,
    aliases: &mut Vec<(String, ValueId)>,
) -> Result<(), NnError> {
    let mut i = 0;
    while i < g.nodes.len() {
        let n = &g.nodes[i];
        let any = n.op.as_any();
        let act = if any
            .downcast_ref::<Unary>()
            .is_some_and(|u| u.kind == UnaryKind::Relu)
        {
            Some(Activation::Relu)
        } else if let Some(c) = any.downcast_ref::<Clip>() {
            let k = |j: usize| n.inputs.get(j).copied().flatten().map(|v| g.konst(v));
            match (k(1), k(2)) {
                (Some(None), _) | (_, Some(None)) => None,
                (lo, hi) => c
                    .bounds(lo.flatten(), hi.flatten())
                    .ok()
                    .map(|(min, max)| Activation::Clip { min, max }),
            }
        } else {
            None
        };
        let (Some(act), Some(Some(x))) = (act, n.inputs.first().copied()) else {
            i += 1;
            continue;
        };
        let Some(p) = producer_index(g, x) else {
            i += 1;
            continue;
        };
        if g.use_counts()[x.0] != 1 {
            i += 1;
            continue;
        }
        let pop = g.nodes[p].op.as_any();
        let new: Option<Arc<dyn Op>> = if let Some(c) = pop.downcast_ref::<Conv>() {
            (c.act == Activation::None).then(|| Arc::new(Conv { act, ..c.clone() }) as Arc<dyn Op>)
        } else if let Some(c) = pop.downcast_ref::<Gemm>() {
            (c.act == Activation::None).then(|| Arc::new(Gemm { act, ..c.clone() }) as Arc<dyn Op>)
        } else if let Some(e) = pop.downcast_ref::<Elementwise>() {
            // A binary Add of f32 tensors (ResNet's residual Add -> Relu): one pass.
            let f32_out = g.values[x.0]
                .fact
                .as_ref()
                .is_some_and(|f| f.dtype == crate::DType::F32);
            (e.kind == BinaryKind::Add
                && e.act == Activation::None
                && g.nodes[p].inputs.len() == 2
                && f32_out)
                .then(|| Arc::new(e.with_activation(act)) as Arc<dyn Op>)
        } else if let Some(pl) = pop.downcast_ref::<Pool>() {
            // Pool -> Relu/Clip (e.g. cifar10_quick): applied to the pooled values.
            pl.with_activation(act)
                .map(|pl| Arc::new(pl) as Arc<dyn Op>)
        } else {
            None
        };
        let Some(op) = new else {
            i += 1;
            continue;
        };
        let act_node = g.nodes.remove(i);
        let p = if p > i { p - 1 } else { p };
        alias_outputs(g, p, &act_node, aliases);
        let prod = &mut g.nodes[p];
        prod.op = op;
        prod.outputs = act_node.outputs.clone();
        prod.fused.push(act_node.name);
    }
    Ok(())
}

/// Removes nodes none of whose outputs is used by a graph output.
pub fn eliminate_dead(g: &mut Graph) {
    let mut live = vec![false; g.values.len()];
    for v in &g.outputs {
        live[v.0] = true;
    }
    let mut keep = vec![false; g.nodes.len()];
    for i in (0..g.nodes.len()).rev() {
        if g.nodes[i].outputs.iter().any(|o| live[o.0]) {
            keep[i] = true;
            for v in g.nodes[i].inputs.iter().flatten() {
                live[v.0] = true;
            }
        }
    }
    let mut k = keep.into_iter();
    g.nodes.retain(|_| k.next().unwrap_or(false));
}

#[cfg(test)]
mod tests {
    use crate::op::{AttrValue, NodeSpec};
    use crate::ops::Registry;
    use crate::{DType, Dim, Fact, Graph, Model, Tensor};
    use std::collections::BTreeMap;

    fn spec(name: &str, op: &str, attrs: Vec<(&str, AttrValue)>, n_in: usize) -> NodeSpec {
        NodeSpec {
            name: name.into(),
            op_type: op.into(),
            opset: 13,
            attrs: attrs
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect::<BTreeMap<_, _>>(),
            num_inputs: n_in,
            num_outputs: 1,
        }
    }

    fn vals(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1664525).wrapping_add(1013904223);
                ((s >> 8) as f32 / (1u32 << 24) as f32) - 0.5
            })
            .collect()
    }

    /// Adds the graph input "x" of shape `[N, c, h, w]` (N symbolic).
    fn bits(t: &Tensor) -> Vec<u32> {
        t.f32s().unwrap().iter().map(|v| v.to_bits()).collect()
    }

    /// A run of `model` on `x` with a visit hook (hooks see every value, so nothing is
    /// fused): its outputs and the number of values the hook saw.
    fn run_hooked(model: &Model, x: &Tensor) -> (Vec<Tensor>, usize) {
        let seen = std::sync::atomic::AtomicUsize::new(0);
        let visit = |_: crate::ValueId, _: &Tensor| {
            seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        };
        let opts = crate::RunOptions {
            visit: Some(&visit),
            ..Default::default()
        };
        let x_id = model.input_ids()[0];
        let r = model.run_with(vec![(x_id, x.clone())], &opts).unwrap();
        (r.outputs, seen.load(std::sync::atomic::Ordering::Relaxed))
    }

    fn nchw_input(g: &mut Graph, [c, h, w]: [usize; 3]) -> crate::ValueId {
        let dims = vec![
            Dim::Symbolic("N".into()),
            Dim::Fixed(c),
            Dim::Fixed(h),
            Dim::Fixed(w),
        ];
        let x = g.add_value("x", Some(Fact::new(DType::F32, dims))).unwrap();
        g.inputs.push(x);
        x
    }

    /// x -> Conv(w, b) -> BN -> Relu -> y; if `expose`, the conv output is also a graph
    /// output, which blocks folding and fusion.
    fn conv_bn_relu(expose: bool) -> Model {
        let r = Registry::standard();
        let mut g = Graph::new();
        let x = nchw_input(&mut g, [3, 6, 6]);
        let w = g
            .add_const(
                "w",
                Tensor::from_f32(vec![4, 3, 3, 3], vals(108, 1)).unwrap(),
            )
            .unwrap();
        let b = g
            .add_const("b", Tensor::from_f32(vec![4], vals(4, 2)).unwrap())
            .unwrap();
        let sc = g
            .add_const(
                "scale",
                Tensor::from_f32(vec![4], vec![0.5, 1.5, -1.0, 2.0]).unwrap(),
            )
            .unwrap();
        let bb = g
            .add_const("bias", Tensor::from_f32(vec![4], vals(4, 3)).unwrap())
            .unwrap();
        let mean = g
            .add_const("mean", Tensor::from_f32(vec![4], vals(4, 4)).unwrap())
            .unwrap();
        let var = g
            .add_const(
                "var",
                Tensor::from_f32(vec![4], vec![0.9, 1.1, 0.5, 2.0]).unwrap(),
            )
            .unwrap();
        let c = g.add_value("c", None).unwrap();
        let bn = g.add_value("bn_out", None).unwrap();
        let y = g.add_value("y", None).unwrap();
        let pads = AttrValue::Ints(vec![1, 1, 1, 1]);
        g.add_node(
            "conv1",
            r.build(&spec("conv1", "Conv", vec![("pads", pads)], 3))
                .unwrap(),
            vec![Some(x), Some(w), Some(b)],
            vec![c],
        )
        .unwrap();
        g.add_node(
            "bn1",
            r.build(&spec("bn1", "BatchNormalization", vec![], 5))
                .unwrap(),
            vec![Some(c), Some(sc), Some(bb), Some(mean), Some(var)],
            vec![bn],
        )
        .unwrap();
        g.add_node(
            "relu1",
            r.build(&spec("relu1", "Relu", vec![], 1)).unwrap(),
            vec![Some(bn)],
            vec![y],
        )
        .unwrap();
        g.outputs.push(y);
        if expose {
            g.outputs.push(c);
            g.outputs.push(bn);
        }
        Model::new(g).unwrap()
    }

    /// x -> Conv 1x1 (8 -> 64, Relu) -> Conv 3x3 depthwise (stride 2) -> y on 128x128
    /// maps: a pair the executor runs as one fused kernel (the 64 x 128 x 128
    /// intermediate is over `fused::MIN_MID_FLOATS`). With `expose`, the intermediate is
    /// also a graph output (never fused). With 8 input channels the unfused 1x1 layer
    /// takes the packed GEMM, as the fused kernel does, so results are equal bit for bit
    /// (with 4 it would take the direct kernel, whose sums round differently: 1 ulp).
    fn expand_depthwise(expose: bool) -> Model {
        expand_depthwise_project(expose, None)
    }

    /// [`expand_depthwise`], then with `project = Some(expose_dw)` a 1x1 convolution
    /// (64 -> 12, no activation) reading the depthwise output `y` into `z`, the only model
    /// output unless `expose_dw` also makes `y` one (the three layers fuse only without).
    fn expand_depthwise_project(expose: bool, project: Option<bool>) -> Model {
        let r = Registry::standard();
        let mut g = Graph::new();
        let x = nchw_input(&mut g, [8, 128, 128]);
        let w1 = g
            .add_const(
                "w1",
                Tensor::from_f32(vec![64, 8, 1, 1], vals(512, 1)).unwrap(),
            )
            .unwrap();
        let b1 = g
            .add_const("b1", Tensor::from_f32(vec![64], vals(64, 2)).unwrap())
            .unwrap();
        let w2 = g
            .add_const(
                "w2",
                Tensor::from_f32(vec![64, 1, 3, 3], vals(576, 3)).unwrap(),
            )
            .unwrap();
        let b2 = g
            .add_const("b2", Tensor::from_f32(vec![64], vals(64, 4)).unwrap())
            .unwrap();
        let (c, m, y) = (
            g.add_value("c", None).unwrap(),
            g.add_value("mid", None).unwrap(),
            g.add_value("y", None).unwrap(),
        );
        g.add_node(
            "expand",
            r.build(&spec("expand", "Conv", vec![], 3)).unwrap(),
            vec![Some(x), Some(w1), Some(b1)],
            vec![c],
        )
        .unwrap();
        g.add_node(
            "relu",
            r.build(&spec("relu", "Relu", vec![], 1)).unwrap(),
            vec![Some(c)],
            vec![m],
        )
        .unwrap();
        let dw_attrs = vec![
            ("group", AttrValue::Int(64)),
            ("strides", AttrValue::Ints(vec![2, 2])),
            ("pads", AttrValue::Ints(vec![0, 0, 1, 1])),
        ];
        g.add_node(
            "dw",
            r.build(&spec("dw", "Conv", dw_attrs, 3)).unwrap(),
            vec![Some(m), Some(w2), Some(b2)],
            vec![y],
        )
        .unwrap();
        match project {
            None => g.outputs.push(y),
            Some(expose_dw) => {
                let w3 = g
                    .add_const(
                        "w3",
                        Tensor::from_f32(vec![12, 64, 1, 1], vals(768, 5)).unwrap(),
                    )
                    .unwrap();
                let b3 = g
                    .add_const("b3", Tensor::from_f32(vec![12], vals(12, 6)).unwrap())
                    .unwrap();
                let z = g.add_value("z", None).unwrap();
                g.add_node(
                    "project",
                    r.build(&spec("project", "Conv", vec![], 3)).unwrap(),
                    vec![Some(y), Some(w3), Some(b3)],
                    vec![z],
                )
                .unwrap();
                g.outputs.push(z);
                if expose_dw {
                    g.outputs.push(y);
                }
            }
        }
        if expose {
            g.outputs.push(m);
        }
        Model::new(g).unwrap()
    }

    /// Expand + depthwise + project run as one fused kernel give the outputs of the
    /// layers run one by one (a hooked run fuses nothing), bit for bit, and so does the
    /// model that keeps the depthwise output (where only the pair fuses).
    #[test]
    fn expand_depthwise_project_runs_fused_with_unfused_results() {
        let model = expand_depthwise_project(false, Some(false));
        let pair_only = expand_depthwise_project(false, Some(true));
        assert_eq!(model.node_count(), 3, "{:?}", model.node_summary());
        // The shapes take the fused kernel wherever it exists (AVX-512).
        let g1 = crate::kernels::Conv2dGeom {
            c_in: 8,
            c_out: 64,
            kh: 1,
            kw: 1,
            stride_h: 1,
            stride_w: 1,
            dil_h: 1,
            dil_w: 1,
            pad_top: 0,
            pad_left: 0,
            pad_bottom: 0,
            pad_right: 0,
            groups: 1,
        };
        let g2 = crate::kernels::Conv2dGeom {
            c_in: 64,
            c_out: 64,
            kh: 3,
            kw: 3,
            stride_h: 2,
            stride_w: 2,
            pad_bottom: 1,
            pad_right: 1,
            groups: 64,
            ..g1
        };
        let g3 = crate::kernels::Conv2dGeom {
            c_out: 12,
            c_in: 64,
            ..g1
        };
        if crate::kernels::conv1x1_depthwise_fuses(&g1, &g2, 128, 128) {
            assert!(crate::kernels::conv1x1_depthwise_project_fuses(&g2, &g3));
        }
        let x = Tensor::from_f32(vec![1, 8, 128, 128], vals(8 * 128 * 128, 9)).unwrap();
        let plain = model.run(vec![x.clone()]).unwrap();
        let (hooked, seen) = run_hooked(&model, &x);
        assert_eq!(seen, 3);
        let other = pair_only.run(vec![x]).unwrap();
        assert_eq!(plain[0].shape(), &[1, 12, 64, 64]);
        assert_eq!(bits(&plain[0]), bits(&hooked[0]));
        assert_eq!(bits(&plain[0]), bits(&other[0]));
        assert_eq!(other[1].shape(), &[1, 64, 64, 64]);
    }

    /// The fused expand + depthwise path gives the outputs of the two layers run one by
    /// one: a plain run (fused where the CPU has the kernel) equals a run with a visit
    /// hook (hooks see every value, so nothing is fused) and the model whose
    /// intermediate is an output, bit for bit; keeping the intermediate also works.
    #[test]
    fn expand_depthwise_pair_runs_fused_with_unfused_results() {
        let model = expand_depthwise(false);
        let exposed = expand_depthwise(true);
        assert_eq!(model.node_count(), 2, "{:?}", model.node_summary());
        let x = Tensor::from_f32(vec![1, 8, 128, 128], vals(8 * 128 * 128, 9)).unwrap();
        let plain = model.run(vec![x.clone()]).unwrap();
        let (hooked, seen) = run_hooked(&model, &x);
        assert_eq!(seen, 2);
        let x_id = model.input_ids()[0];
        let other = exposed.run(vec![x.clone()]).unwrap();
        assert_eq!(plain[0].shape(), &[1, 64, 64, 64]);
        assert_eq!(bits(&plain[0]), bits(&hooked[0]));
        assert_eq!(bits(&plain[0]), bits(&other[0]));
        let mid = model.value_id("mid").unwrap();
        let kept = model
            .run_with(
                vec![(x_id, x)],
                &crate::RunOptions {
                    keep: vec![mid],
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(bits(&kept.outputs[0]), bits(&plain[0]));
        assert_eq!(bits(&kept.kept[0]), bits(&other[1]));
    }

    #[test]
    fn batchnorm_folds_and_relu_fuses_into_conv() {
        let fused = conv_bn_relu(false);
        let plain = conv_bn_relu(true);
        assert_eq!(fused.node_count(), 1, "{:?}", fused.node_summary());
        assert_eq!(plain.node_count(), 3, "{:?}", plain.node_summary());
        let l = &fused.layers()[0];
        assert_eq!(l.name, "conv1");
        assert_eq!(l.fused, vec!["bn1".to_string(), "relu1".to_string()]);
        assert_eq!(fused.value_id("c"), Some(l.output));
        assert_eq!(fused.value_id("y"), Some(l.output));
        let x = Tensor::from_f32(vec![2, 3, 6, 6], vals(216, 9)).unwrap();
        let a = fused.run(vec![x.clone()]).unwrap();
        let b = plain.run(vec![x]).unwrap();
        assert_eq!(a[0].shape(), &[2, 4, 6, 6]);
        let (a, b) = (a[0].as_f32().unwrap(), b[0].as_f32().unwrap());
        let d = a
            .iter()
            .zip(b)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0f32, f32::max);
        assert!(d < 1e-5, "max diff {d}");
        assert!(a.iter().all(|&v| v >= 0.0));
        assert!(a.iter().any(|&v| v > 0.0));
    }

    /// x -> MaxPool 2x2 -> Relu -> y; if `expose`, the pool output is a graph output too.
    fn pool_relu(expose: bool) -> Model {
        let r = Registry::standard();
        let mut g = Graph::new();
        let x = g
            .add_value(
                "x",
                Some(Fact::new(
                    DType::F32,
                    vec![Dim::Fixed(1), Dim::Fixed(2), Dim::Fixed(4), Dim::Fixed(4)],
                )),
            )
            .unwrap();
        g.inputs.push(x);
        let p = g.add_value("p", None).unwrap();
        let y = g.add_value("y", None).unwrap();
        let k = AttrValue::Ints(vec![2, 2]);
        let st = AttrValue::Ints(vec![2, 2]);
        g.add_node(
            "pool",
            r.build(&spec(
                "pool",
                "MaxPool",
                vec![("kernel_shape", k), ("strides", st)],
                1,
            ))
            .unwrap(),
            vec![Some(x)],
            vec![p],
        )
        .unwrap();
        g.add_node(
            "relu",
            r.build(&spec("relu", "Relu", vec![], 1)).unwrap(),
            vec![Some(p)],
            vec![y],
        )
        .unwrap();
        g.outputs.push(y);
        if expose {
            g.outputs.push(p);
        }
        Model::new(g).unwrap()
    }

    #[test]
    fn relu_fuses_into_pool() {
        let fused = pool_relu(false);
        let plain = pool_relu(true);
        assert_eq!(fused.node_count(), 1, "{:?}", fused.node_summary());
        assert_eq!(plain.node_count(), 2, "{:?}", plain.node_summary());
        assert_eq!(fused.value_id("y"), fused.value_id("p"));
        let shifted = vals(32, 5).iter().map(|v| v - 0.35).collect();
        let x = Tensor::from_f32(vec![1, 2, 4, 4], shifted).unwrap();
        let a = fused.run(vec![x.clone()]).unwrap();
        let b = plain.run(vec![x]).unwrap();
        assert_eq!(a[0].shape(), &[1, 2, 2, 2]);
        assert_eq!(a[0].as_f32().unwrap(), b[0].as_f32().unwrap());
        let a = a[0].as_f32().unwrap();
        assert!(a.iter().all(|&v| v >= 0.0));
        assert!(a.iter().any(|&v| v > 0.0));
        assert!(b[1].as_f32().unwrap().iter().any(|&v| v < 0.0));
    }

    /// Add(x, r) -> Relu, or -> Clip(0, 6) with `clip`, on `[1, c, 16, 16]` inputs; if
    /// `expose`, the sum is a graph output too (nothing fuses).
    fn add_act(clip: bool, c: usize, expose: bool) -> Model {
        let r = Registry::standard();
        let mut g = Graph::new();
        let dims = vec![Dim::Fixed(1), Dim::Fixed(c), Dim::Fixed(16), Dim::Fixed(16)];
        let x = g
            .add_value("x", Some(Fact::new(DType::F32, dims.clone())))
            .unwrap();
        let res = g.add_value("r", Some(Fact::new(DType::F32, dims))).unwrap();
        g.inputs.extend([x, res]);
        let sum = g.add_value("sum", None).unwrap();
        let y = g.add_value("y", None).unwrap();
        g.add_node(
            "add",
            r.build(&spec("add", "Add", vec![], 2)).unwrap(),
            vec![Some(x), Some(res)],
            vec![sum],
        )
        .unwrap();
        let (act, ins) = if clip {
            let lo = g.add_const("lo", Tensor::scalar_f32(0.0)).unwrap();
            let hi = g.add_const("hi", Tensor::scalar_f32(6.0)).unwrap();
            (
                spec("act", "Clip", vec![], 3),
                vec![Some(sum), Some(lo), Some(hi)],
            )
        } else {
            (spec("act", "Relu", vec![], 1), vec![Some(sum)])
        };
        g.add_node("act", r.build(&act).unwrap(), ins, vec![y])
            .unwrap();
        g.outputs.push(y);
        if expose {
            g.outputs.push(sum);
        }
        Model::new(g).unwrap()
    }

    /// A residual Add followed by Relu or Clip runs as one node, bit for bit the two
    /// nodes' results (sums overflowing to infinities included), on the serial path
    /// (512 values) and the parallel one (40,960).
    #[test]
    fn relu_and_clip_fuse_into_add() {
        for clip in [false, true] {
            for c in [2, 160] {
                let fused = add_act(clip, c, false);
                let plain = add_act(clip, c, true);
                assert_eq!(fused.node_count(), 1, "{:?}", fused.node_summary());
                assert_eq!(plain.node_count(), 2, "{:?}", plain.node_summary());
                assert_eq!(fused.layers().len(), 0);
                let n = c * 256;
                // Inputs are finite (the model checks); sums overflow to +-inf.
                let mut xv: Vec<f32> = vals(n, 3).iter().map(|v| v * 20.0).collect();
                let mut rv = vals(n, 4);
                (xv[2], rv[2], xv[3], rv[3]) = (f32::MAX, f32::MAX, -f32::MAX, -f32::MAX);
                let x = Tensor::from_f32(vec![1, c, 16, 16], xv).unwrap();
                let r = Tensor::from_f32(vec![1, c, 16, 16], rv).unwrap();
                let a = fused.run(vec![x.clone(), r.clone()]).unwrap();
                let b = plain.run(vec![x, r]).unwrap();
                assert_eq!(bits(&a[0]), bits(&b[0]), "clip {clip} c {c}");
                let a = a[0].as_f32().unwrap();
                let hi = if clip { 6.0 } else { f32::INFINITY };
                assert!(
                    a.iter().all(|&v| (0.0..=hi).contains(&v)),
                    "clip {clip} c {c}"
                );
                assert!(b[1].as_f32().unwrap().iter().any(|&v| v < 0.0));
                assert!(a.iter().any(|&v| v > 0.0 && v < 6.0));
            }
        }
    }

    /// Shape -> Gather -> Unsqueeze -> Concat -> Reshape, as PyTorch exports flatten.
    fn flatten_chain(batch: Dim) -> Model {
        let r = Registry::standard();
        let mut g = Graph::new();
        let x = g
            .add_value(
                "x",
                Some(Fact::new(
                    DType::F32,
                    vec![batch, Dim::Fixed(3), Dim::Fixed(4), Dim::Fixed(4)],
                )),
            )
            .unwrap();
        g.inputs.push(x);
        let idx = g
            .add_const("idx", Tensor::from_i64(vec![], vec![0]).unwrap())
            .unwrap();
        let axes = g
            .add_const("axes", Tensor::from_i64(vec![1], vec![0]).unwrap())
            .unwrap();
        let rest = g
            .add_const("rest", Tensor::from_i64(vec![1], vec![48]).unwrap())
            .unwrap();
        let names = ["s", "n", "nu", "shape", "y"];
        let ids: Vec<_> = names
            .iter()
            .map(|n| g.add_value(n, None).unwrap())
            .collect();
        let mut add =
            |name: &str, op: &str, attrs: Vec<(&str, AttrValue)>, ins: Vec<crate::ValueId>, out| {
                let op = r.build(&spec(name, op, attrs, ins.len())).unwrap();
                g.add_node(name, op, ins.into_iter().map(Some).collect(), vec![out])
                    .unwrap();
            };
        add("shape", "Shape", vec![], vec![x], ids[0]);
        add("gather", "Gather", vec![], vec![ids[0], idx], ids[1]);
        add("unsq", "Unsqueeze", vec![], vec![ids[1], axes], ids[2]);
        add(
            "concat",
            "Concat",
            vec![("axis", AttrValue::Int(0))],
            vec![ids[2], rest],
            ids[3],
        );
        add("reshape", "Reshape", vec![], vec![x, ids[3]], ids[4]);
        g.outputs.push(ids[4]);
        Model::new(g).unwrap()
    }

    #[test]
    fn shape_chains_fold_to_constants() {
        let m = flatten_chain(Dim::Fixed(2));
        assert_eq!(m.node_summary(), vec![("reshape", "Reshape")]);
        assert_eq!(m.outputs()[0].shape, vec![Dim::Fixed(2), Dim::Fixed(48)]);
        let x = Tensor::from_f32(vec![2, 3, 4, 4], vals(96, 5)).unwrap();
        let y = m.run(vec![x.clone()]).unwrap();
        assert_eq!(y[0].shape(), &[2, 48]);
        assert_eq!(y[0].as_f32(), x.as_f32());
        // With a symbolic batch the chain runs at run time and still works.
        let m = flatten_chain(Dim::Symbolic("N".into()));
        assert!(m.node_count() > 1);
        let x = Tensor::from_f32(vec![5, 3, 4, 4], vals(240, 6)).unwrap();
        assert_eq!(m.run(vec![x]).unwrap()[0].shape(), &[5, 48]);
    }

    #[test]
    fn shape_errors_name_the_node() {
        let r = Registry::standard();
        let mut g = Graph::new();
        let x = g
            .add_value(
                "x",
                Some(Fact::new(DType::F32, vec![Dim::Fixed(2), Dim::Fixed(3)])),
            )
            .unwrap();
        let b = g
            .add_const("b", Tensor::from_f32(vec![4], vec![0.0; 4]).unwrap())
            .unwrap();
        let y = g.add_value("y", None).unwrap();
        g.inputs.push(x);
        g.add_node(
            "add9",
            r.build(&spec("add9", "Add", vec![], 2)).unwrap(),
            vec![Some(x), Some(b)],
            vec![y],
        )
        .unwrap();
        g.outputs.push(y);
        let e = Model::new(g).unwrap_err().to_string();
        assert!(e.contains("add9") && e.contains("broadcast"), "{e}");
    }

    #[test]
    fn set_threads_works_at_most_once() {
        let _ = crate::set_threads(2);
        assert!(crate::set_threads(2).is_err());
    }
}
