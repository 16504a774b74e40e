//! Shape and data-movement operators.
//!
//! Specs: <https://onnx.ai/onnx/operators/onnx__Reshape.html>, `Flatten`,
//! `Transpose`, `Squeeze`, `Unsqueeze`, `Concat`, `Shape`, `Gather`,
//! `ConstantOfShape`, `Expand`, `Pad`, `Identity`, `Dropout`, `Constant` (same URL
//! pattern).
//!
//! Supported: Reshape 5..=22 (`allowzero`); Flatten 1..=22 (`axis`); Transpose
//! (`perm`); Squeeze/Unsqueeze with `axes` as attribute (opset < 13) or input
//! (13+); Concat (`axis`); Shape (`start`, `end`); Gather (`axis`, negative
//! indices); ConstantOfShape (`value`); Expand; Pad with mode `constant` only
//! (`pads`/`value` attributes before opset 11, inputs `pads`, `constant_value`,
//! `axes` after; negative pads crop); Identity; Dropout in inference mode (the
//! `mask` output is unsupported); Constant (`value`, `value_float(s)`,
//! `value_int(s)`). All work on f32 and i64 data.

use crate::op::{norm_axis, Attrs, Dim, Fact, InputFacts, Inputs, NodeSpec, Op, Scratch};
use crate::{DType, NnError, Tensor};
use std::any::Any;

macro_rules! op_boilerplate {
    ($name:expr) => {
        fn name(&self) -> &'static str {
            $name
        }
        fn as_any(&self) -> &dyn Any {
            self
        }
    };
}

/// Concat outputs of at least this many floats are copied by all workers.
const PAR_CONCAT_MIN: usize = 1 << 16;
/// Output floats per work item of a parallel Concat.
const PAR_CONCAT_CHUNK: usize = 1 << 14;
/// Product of symbolic dims: fixed if all are fixed, the single symbolic dim if the
/// others multiply to 1, else unknown.
pub fn prod_dims(dims: &[Dim]) -> Dim {
    let mut fixed = 1usize;
    let mut sym: Vec<&Dim> = vec![];
    for d in dims {
        match d {
            Dim::Fixed(n) => fixed *= n,
            s => sym.push(s),
        }
    }
    match (sym.len(), fixed) {
        (0, f) => Dim::Fixed(f),
        (1, 1) => sym[0].clone(),
        _ => Dim::unknown(),
    }
}

/// Builds a tensor of the same dtype as `like` from gathered flat indices.
fn gather_flat(
    like: &Tensor,
    shape: Vec<usize>,
    idx: impl Iterator<Item = usize>,
) -> Result<Tensor, NnError> {
    match like.dtype() {
        DType::F32 => {
            let d = like.f32s()?;
            Tensor::from_f32(shape, idx.map(|i| d[i]).collect())
        }
        DType::I64 => {
            let d = like.i64s()?;
            Tensor::from_i64(shape, idx.map(|i| d[i]).collect())
        }
    }
}

fn i64_list(t: &Tensor, what: &str) -> Result<Vec<i64>, NnError> {
    t.as_i64()
        .map(|v| v.to_vec())
        .ok_or_else(|| NnError::op(format!("{what} must be an i64 tensor, got {}", t.dtype())))
}

/// `Reshape`.
#[derive(Debug, Clone)]
pub struct Reshape {
    allowzero: bool,
}

impl Reshape {
    /// Builds from a node.
    pub fn from_spec(spec: &NodeSpec) -> Result<Box<dyn Op>, NnError> {
        let mut a = Attrs::new(spec);
        let allowzero = a.int("allowzero", 0)? != 0;
        a.finish()?;
        if spec.opset < 5 {
            return Err(
                NnError::op("Reshape before opset 5 (shape attribute) is unsupported")
                    .with_node(&spec.name, &spec.op_type),
            );
        }
        Ok(Box::new(Reshape { allowzero }))
    }

    /// Resolves the requested shape against the input shape (concrete).
    pub fn resolve(&self, input: &[usize], req: &[i64]) -> Result<Vec<usize>, NnError> {
        let total: usize = input.iter().product();
        let mut out = Vec::with_capacity(req.len());
        let mut neg = None;
        for (i, &r) in req.iter().enumerate() {
            if r == 0 && !self.allowzero {
                let d = *input.get(i).ok_or_else(|| {
                    NnError::op(format!(
                        "shape {req:?}: 0 at {i} beyond input rank {}",
                        input.len()
                    ))
                })?;
                out.push(d);
            } else if r == -1 {
                if neg.replace(i).is_some() {
                    return Err(NnError::op(format!("shape {req:?} has more than one -1")));
                }
                out.push(1);
            } else if r < 0 {
                return Err(NnError::op(format!("shape {req:?} has invalid dim {r}")));
            } else {
                out.push(r as usize);
            }
        }
        let known: usize = out.iter().product();
        if let Some(i) = neg {
            if known == 0 || !total.is_multiple_of(known) {
                return Err(NnError::op(format!("cannot reshape {input:?} to {req:?}")));
            }
            out[i] = total / known;
        } else if known != total {
            return Err(NnError::op(format!(
                "cannot reshape {input:?} ({total} elements) to {req:?}"
            )));
        }
        Ok(out)
    }
}

impl Op for Reshape {
    op_boilerplate!("Reshape");
    fn infer(&self, inputs: &InputFacts<'_>) -> Result<Vec<Fact>, NnError> {
        let x = inputs.get(0)?;
        let s = inputs.get(1)?;
        let Some(req) = inputs.konst(1) else {
            let r = s.shape.first().and_then(|d| d.fixed()).unwrap_or(0);
            return Ok(vec![Fact::new(x.dtype, vec![Dim::unknown(); r])]);
        };
        let req = i64_list(req, "shape")?;
        if let Some(fx) = x.fixed_shape() {
            let out = self.resolve(&fx, &req)?;
            return Ok(vec![Fact::new(
                x.dtype,
                out.into_iter().map(Dim::Fixed).collect(),
            )]);
        }
        // Symbolic: copy dims for 0, cancel equal symbolic dims to resolve -1.
        let mut out: Vec<Dim> = vec![];
        let mut neg = None;
        for (i, &r) in req.iter().enumerate() {
            if r == 0 && !self.allowzero {
                out.push(x.shape.get(i).cloned().unwrap_or_else(Dim::unknown));
            } else if r == -1 {
                neg = Some(i);
                out.push(Dim::Fixed(1));
            } else {
                out.push(Dim::Fixed(r.max(0) as usize));
            }
        }
        if let Some(i) = neg {
            let mut rest: Vec<Dim> = x.shape.clone();
            let mut fixed_out = 1usize;
            for (j, d) in out.iter().enumerate() {
                if j == i {
                    continue;
                }
                match d {
                    Dim::Fixed(n) => fixed_out *= n,
                    s => {
                        if let Some(p) = rest.iter().position(|r| r == s) {
                            rest.remove(p);
                        }
                    }
                }
            }
            let rest_fixed: usize = rest.iter().filter_map(|d| d.fixed()).product();
            let syms: Vec<&Dim> = rest.iter().filter(|d| d.fixed().is_none()).collect();
            out[i] = if syms.is_empty() && fixed_out > 0 && rest_fixed.is_multiple_of(fixed_out) {
                Dim::Fixed(rest_fixed / fixed_out)
            } else if syms.len() == 1 && fixed_out == rest_fixed {
                syms[0].clone()
            } else {
                Dim::unknown()
            };
        }
        Ok(vec![Fact::new(x.dtype, out)])
    }
    fn eval(&self, inputs: &Inputs<'_>, _s: &mut Scratch) -> Result<Vec<Tensor>, NnError> {
        let x = inputs.get(0)?;
        let req = i64_list(inputs.get(1)?, "shape")?;
        let out = self.resolve(x.shape(), &req)?;
        Ok(vec![x.reshaped(out)?])
    }
}

/// `Flatten`.
#[derive(Debug, Clone)]
pub struct Flatten {
    axis: i64,
}

impl Flatten {
    /// Builds from a node.
    pub fn from_spec(spec: &NodeSpec) -> Result<Box<dyn Op>, NnError> {
        let mut a = Attrs::new(spec);
        let axis = a.int("axis", 1)?;
        a.finish()?;
        Ok(Box::new(Flatten { axis }))
    }
    fn split(&self, rank: usize) -> Result<usize, NnError> {
        let a = if self.axis < 0 {
            self.axis + rank as i64
        } else {
            self.axis
        };
        if a < 0 || a > rank as i64 {
            return Err(NnError::op(format!(
                "axis {} out of range for rank {rank}",
                self.axis
            )));
        }
        Ok(a as usize)
    }
}

impl Op for Flatten {
    op_boilerplate!("Flatten");
    fn infer(&self, inputs: &InputFacts<'_>) -> Result<Vec<Fact>, NnError> {
        let x = inputs.get(0)?;
        let a = self.split(x.shape.len())?;
        Ok(vec![Fact::new(
            x.dtype,
            vec![prod_dims(&x.shape[..a]), prod_dims(&x.shape[a..])],
        )])
    }
    fn eval(&self, inputs: &Inputs<'_>, _s: &mut Scratch) -> Result<Vec<Tensor>, NnError> {
        let x = inputs.get(0)?;
        let a = self.split(x.rank())?;
        let outer = x.shape()[..a].iter().product();
        let inner = x.shape()[a..].iter().product();
        Ok(vec![x.reshaped(vec![outer, inner])?])
    }
}

/// `Transpose`.
#[derive(Debug, Clone)]
pub struct Transpose {
    perm: Option<Vec<i64>>,
}

impl Transpose {
    /// Builds from a node.
    pub fn from_spec(spec: &NodeSpec) -> Result<Box<dyn Op>, NnError> {
        let mut a = Attrs::new(spec);
        let perm = a.ints("perm")?;
        a.finish()?;
        Ok(Box::new(Transpose { perm }))
    }
    fn perm(&self, rank: usize) -> Result<Vec<usize>, NnError> {
        let p: Vec<usize> = match &self.perm {
            None => (0..rank).rev().collect(),
            Some(p) => p
                .iter()
                .map(|&a| norm_axis(a, rank))
                .collect::<Result<_, _>>()?,
        };
        let mut seen = vec![false; rank];
        if p.len() != rank {
            return Err(NnError::op(format!(
                "perm {:?} does not match rank {rank}",
                self.perm
            )));
        }
        for &i in &p {
            if std::mem::replace(&mut seen[i], true) {
                return Err(NnError::op(format!(
                    "perm {:?} is not a permutation",
                    self.perm
                )));
            }
        }
        Ok(p)
    }
}

/// Transposes row-major `x` of `shape` by `perm` (output dim i = input dim perm[i]).
pub fn transpose_index(shape: &[usize], perm: &[usize]) -> (Vec<usize>, Vec<usize>) {
    let r = shape.len();
    let mut in_strides = vec![1usize; r];
    for i in (0..r.saturating_sub(1)).rev() {
        in_strides[i] = in_strides[i + 1] * shape[i + 1];
    }
    let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let n: usize = shape.iter().product();
    let mut idx = Vec::with_capacity(n);
    if n == 0 {
        return (out_shape, idx);
    }
    let st: Vec<usize> = perm.iter().map(|&p| in_strides[p]).collect();
    let mut counter = vec![0usize; r];
    let mut off = 0usize;
    for _ in 0..n {
        idx.push(off);
        let mut d = r;
        while d > 0 {
            d -= 1;
            counter[d] += 1;
            off += st[d];
            if counter[d] < out_shape[d] {
                break;
            }
            off -= st[d] * counter[d];
            counter[d] = 0;
        }
    }
    (out_shape, idx)
}

impl Op for Transpose {
    op_boilerplate!("Transpose");
    fn infer(&self, inputs: &InputFacts<'_>) -> Result<Vec<Fact>, NnError> {
        let x = inputs.get(0)?;
        let p = self.perm(x.shape.len())?;
        Ok(vec![Fact::new(
            x.dtype,
            p.iter().map(|&i| x.shape[i].clone()).collect(),
        )])
    }
    fn eval(&self, inputs: &Inputs<'_>, _s: &mut Scratch) -> Result<Vec<Tensor>, NnError> {
        let x = inputs.get(0)?;
        let p = self.perm(x.rank())?;
        // A permutation that only moves size-1 dims is a reshape.
        let moved: Vec<usize> = p.iter().copied().filter(|&i| x.shape()[i] != 1).collect();
        if moved.windows(2).all(|w| w[0] < w[1]) {
            let out: Vec<usize> = p.iter().map(|&i| x.shape()[i]).collect();
            return Ok(vec![x.reshaped(out)?]);
        }
        let (out_shape, idx) = transpose_index(x.shape(), &p);
        Ok(vec![gather_flat(x, out_shape, idx.into_iter())?])
    }
}

/// `Squeeze` and `Unsqueeze`.
#[derive(Debug, Clone)]
pub struct Squeeze {
    unsqueeze: bool,
    attr_axes: Option<Vec<i64>>,
}

impl Squeeze {
    /// Builds from a node (`op_type` is `Squeeze` or `Unsqueeze`).
    pub fn from_spec(spec: &NodeSpec) -> Result<Box<dyn Op>, NnError> {
        let mut a = Attrs::new(spec);
        let attr_axes = if spec.opset < 13 {
            a.ints("axes")?
        } else {
            None
        };
        a.finish()?;
        Ok(Box::new(Squeeze {
            unsqueeze: spec.op_type == "Unsqueeze",
            attr_axes,
        }))
    }
    fn axes(&self, input: Option<&Tensor>) -> Result<Option<Vec<i64>>, NnError> {
        if let Some(a) = &self.attr_axes {
            return Ok(Some(a.clone()));
        }
        input.map(|t| i64_list(t, "axes")).transpose()
    }
    fn out_dims(&self, dims: &[Dim], axes: Option<Vec<i64>>) -> Result<Vec<Dim>, NnError> {
        if self.unsqueeze {
            let axes = axes.ok_or_else(|| NnError::op("Unsqueeze needs axes"))?;
            let r = dims.len() + axes.len();
            let mut ax: Vec<usize> = axes
                .iter()
                .map(|&a| norm_axis(a, r))
                .collect::<Result<_, _>>()?;
            ax.sort_unstable();
            if ax.windows(2).any(|w| w[0] == w[1]) {
                return Err(NnError::op(format!("repeated axes {axes:?}")));
            }
            let mut out = Vec::with_capacity(r);
            let mut src = dims.iter();
            for i in 0..r {
                if ax.binary_search(&i).is_ok() {
                    out.push(Dim::Fixed(1));
                } else if let Some(d) = src.next() {
                    out.push(d.clone());
                }
            }
            Ok(out)
        } else {
            let r = dims.len();
            let ax: Vec<usize> = match axes {
                Some(a) => a
                    .iter()
                    .map(|&a| norm_axis(a, r))
                    .collect::<Result<_, _>>()?,
                None => (0..r).filter(|&i| dims[i] == Dim::Fixed(1)).collect(),
            };
            for &a in &ax {
                if let Dim::Fixed(n) = dims[a] {
                    if n != 1 {
                        return Err(NnError::op(format!("cannot squeeze axis {a} of size {n}")));
                    }
                }
            }
            Ok((0..r)
                .filter(|i| !ax.contains(i))
                .map(|i| dims[i].clone())
                .collect())
        }
    }
}

impl Op for Squeeze {
    fn name(&self) -> &'static str {
        if self.unsqueeze {
            "Unsqueeze"
        } else {
            "Squeeze"
        }
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn infer(&self, inputs: &InputFacts<'_>) -> Result<Vec<Fact>, NnError> {
        let x = inputs.get(0)?;
        if self.attr_axes.is_none() && inputs.opt(1).is_some() && inputs.konst(1).is_none() {
            // Axes known only at run time: the rank follows from their count.
            let k = inputs
                .get(1)?
                .shape
                .first()
                .and_then(|d| d.fixed())
                .unwrap_or(0);
            let r = x.shape.len();
            let rank = if self.unsqueeze {
                r + k
            } else {
                r.saturating_sub(k)
            };
            return Ok(vec![Fact::new(x.dtype, vec![Dim::unknown(); rank])]);
        }
        let axes = self.axes(inputs.konst(1))?;
        Ok(vec![Fact::new(x.dtype, self.out_dims(&x.shape, axes)?)])
    }
    fn eval(&self, inputs: &Inputs<'_>, _s: &mut Scratch) -> Result<Vec<Tensor>, NnError> {
        let x = inputs.get(0)?;
        let axes = self.axes(inputs.opt(1))?;
        let dims: Vec<Dim> = x.shape().iter().map(|&d| Dim::Fixed(d)).collect();
        let out: Vec<usize> = self
            .out_dims(&dims, axes)?
            .iter()
            .map(|d| d.fixed().unwrap_or(1))
            .collect();
        Ok(vec![x.reshaped(out)?])
    }
}

/// `Concat`.
#[derive(Debug, Clone)]
pub struct Concat {
    axis: i64,
}

impl Concat {
    /// Builds from a node.
    pub fn from_spec(spec: &NodeSpec) -> Result<Box<dyn Op>, NnError> {
        let mut a = Attrs::new(spec);
        let axis = a
            .int_opt("axis")?
            .ok_or_else(|| a.bad("axis", "required attribute missing"))?;
        a.finish()?;
        Ok(Box::new(Concat { axis }))
    }
}

impl Op for Concat {
    op_boilerplate!("Concat");
    fn infer(&self, inputs: &InputFacts<'_>) -> Result<Vec<Fact>, NnError> {
        let first = inputs.get(0)?;
        let r = first.shape.len();
        let ax = norm_axis(self.axis, r)?;
        let mut out = first.shape.clone();
        let mut total = Some(0usize);
        for i in 0..inputs.len() {
            let f = inputs.get(i)?;
            if f.shape.len() != r || f.dtype != first.dtype {
                return Err(NnError::op(format!(
                    "input #{i} {} {} does not match input #0 {} {}",
                    f.dtype,
                    crate::op::fmt_dims(&f.shape),
                    first.dtype,
                    crate::op::fmt_dims(&first.shape)
                )));
            }
            total = match (total, f.shape[ax].fixed()) {
                (Some(t), Some(n)) => Some(t + n),
                _ => None,
            };
        }
        out[ax] = total.map(Dim::Fixed).unwrap_or_else(Dim::unknown);
        Ok(vec![Fact::new(first.dtype, out)])
    }
    fn eval(&self, inputs: &Inputs<'_>, _s: &mut Scratch) -> Result<Vec<Tensor>, NnError> {
        let first = inputs.get(0)?;
        let r = first.rank();
        let ax = norm_axis(self.axis, r)?;
        let xs: Vec<&Tensor> = inputs.present().collect();
        let mut out_shape = first.shape().to_vec();
        out_shape[ax] = 0;
        for x in &xs {
            let s = x.shape();
            if s.len() != r
                || x.dtype() != first.dtype()
                || (0..r).any(|d| d != ax && s[d] != first.shape()[d])
            {
                return Err(NnError::op(format!(
                    "cannot concatenate {:?} with {:?} on axis {ax}",
                    first.shape(),
                    s
                )));
            }
            out_shape[ax] += s[ax];
        }
        let outer: usize = first.shape()[..ax].iter().product();
        let inner: usize = first.shape()[ax + 1..].iter().product();
        macro_rules! cat {
            ($get:ident, $mk:ident, $alloc:expr) => {{
                let mut out = $alloc(out_shape.iter().product());
                for o in 0..outer {
                    for x in &xs {
                        let chunk = x.shape()[ax] * inner;
                        out.extend_from_slice(&x.$get()?[o * chunk..(o + 1) * chunk]);
                    }
                }
                Tensor::$mk(out_shape, out)?
            }};
        }
        let total: usize = out_shape.iter().product();
        let threads = rayon::current_num_threads();
        let t = match first.dtype() {
            DType::F32 if threads > 1 && total >= PAR_CONCAT_MIN => {
                // Large outputs (SqueezeNet's fire modules: up to 1.5 MB per Concat) are
                // copied by all workers, each filling whole output chunks from the
                // inputs that land there.
                let srcs = xs.iter().map(|x| x.f32s()).collect::<Result<Vec<_>, _>>()?;
                let chunks: Vec<usize> = xs.iter().map(|x| x.shape()[ax] * inner).collect();
                let period: usize = chunks.iter().sum();
                let mut out = crate::buffers::take_overwrite(total);
                crate::team::par_chunks_mut(&mut out, PAR_CONCAT_CHUNK, threads, |i, dst| {
                    let mut p = i * PAR_CONCAT_CHUNK;
                    let mut done = 0;
                    while done < dst.len() {
                        let (o, mut r) = (p / period, p % period);
                        let mut k = 0;
                        while r >= chunks[k] {
                            r -= chunks[k];
                            k += 1;
                        }
                        let n = (chunks[k] - r).min(dst.len() - done);
                        let from = o * chunks[k] + r;
                        dst[done..done + n].copy_from_slice(&srcs[k][from..from + n]);
                        done += n;
                        p += n;
                    }
                });
                Tensor::from_f32(out_shape, out)?
            }
            DType::F32 => cat!(f32s, from_f32, crate::buffers::take_empty),
            DType::I64 => cat!(i64s, from_i64, Vec::with_capacity),
        };
        Ok(vec![t])
    }
}

/// `Shape`.
#[derive(Debug, Clone)]
pub struct Shape {
    start: i64,
    end: Option<i64>,
}

impl Shape {
    /// Builds from a node.
    pub fn from_spec(spec: &NodeSpec) -> Result<Box<dyn Op>, NnError> {
        let mut a = Attrs::new(spec);
        let start = a.int("start", 0)?;
        let end = a.int_opt("end")?;
        a.finish()?;
        Ok(Box::new(Shape { start, end }))
    }
    fn range(&self, r: usize) -> (usize, usize) {
        let clamp = |v: i64| -> usize {
            let v = if v < 0 { v + r as i64 } else { v };
            v.clamp(0, r as i64) as usize
        };
        let s = clamp(self.start);
        let e = clamp(self.end.unwrap_or(r as i64));
        (s, e.max(s))
    }
}

impl Op for Shape {
    op_boilerplate!("Shape");
    fn infer(&self, inputs: &InputFacts<'_>) -> Result<Vec<Fact>, NnError> {
        let x = inputs.get(0)?;
        let (s, e) = self.range(x.shape.len());
        let dims = &x.shape[s..e];
        let known: Option<Vec<i64>> = dims.iter().map(|d| d.fixed().map(|n| n as i64)).collect();
        Ok(vec![match known {
            Some(v) => Fact::of_tensor(&Tensor::from_i64(vec![v.len()], v)?),
            None => Fact::new(DType::I64, vec![Dim::Fixed(e - s)]),
        }])
    }
    fn eval(&self, inputs: &Inputs<'_>, _s: &mut Scratch) -> Result<Vec<Tensor>, NnError> {
        let x = inputs.get(0)?;
        let (s, e) = self.range(x.rank());
        let v: Vec<i64> = x.shape()[s..e].iter().map(|&d| d as i64).collect();
        Ok(vec![Tensor::from_i64(vec![v.len()], v)?])
    }
}

/// `Gather`.
#[derive(Debug, Clone)]
pub struct Gather {
    axis: i64,
}

impl Gather {
    /// Builds from a node.
    pub fn from_spec(spec: &NodeSpec) -> Result<Box<dyn Op>, NnError> {
        let mut a = Attrs::new(spec);
        let axis = a.int("axis", 0)?;
        a.finish()?;
        Ok(Box::new(Gather { axis }))
    }
}

impl Op for Gather {
    op_boilerplate!("Gather");
    fn infer(&self, inputs: &InputFacts<'_>) -> Result<Vec<Fact>, NnError> {
        let x = inputs.get(0)?;
        let i = inputs.get(1)?;
        if i.dtype != DType::I64 {
            return Err(NnError::op("indices must be integers"));
        }
        let ax = norm_axis(self.axis, x.shape.len())?;
        let mut out = x.shape[..ax].to_vec();
        out.extend(i.shape.iter().cloned());
        out.extend(x.shape[ax + 1..].iter().cloned());
        Ok(vec![Fact::new(x.dtype, out)])
    }
    fn eval(&self, inputs: &Inputs<'_>, _s: &mut Scratch) -> Result<Vec<Tensor>, NnError> {
        let x = inputs.get(0)?;
        let it = inputs.get(1)?;
        let ind = it.i64s()?;
        let ax = norm_axis(self.axis, x.rank())?;
        let n = x.shape()[ax] as i64;
        let outer: usize = x.shape()[..ax].iter().product();
        let inner: usize = x.shape()[ax + 1..].iter().product();
        let mut idx = Vec::with_capacity(outer * ind.len() * inner);
        let mut fixed = Vec::with_capacity(ind.len());
        for &k in ind {
            let k2 = if k < 0 { k + n } else { k };
            if k2 < 0 || k2 >= n {
                return Err(NnError::op(format!(
                    "index {k} out of range for axis of size {n}"
                )));
            }
            fixed.push(k2 as usize);
        }
        for o in 0..outer {
            for &k in &fixed {
                let base = (o * n as usize + k) * inner;
                idx.extend(base..base + inner);
            }
        }
        let mut out = x.shape()[..ax].to_vec();
        out.extend_from_slice(it.shape());
        out.extend_from_slice(&x.shape()[ax + 1..]);
        Ok(vec![gather_flat(x, out, idx.into_iter())?])
    }
}

/// `ConstantOfShape`.
#[derive(Debug, Clone)]
pub struct ConstantOfShape {
    value: Tensor,
}

impl ConstantOfShape {
    /// Builds from a node.
    pub fn from_spec(spec: &NodeSpec) -> Result<Box<dyn Op>, NnError> {
        let mut a = Attrs::new(spec);
        let value = a
            .tensor("value")?
            .unwrap_or_else(|| Tensor::scalar_f32(0.0));
        if value.len() != 1 {
            return Err(a.bad("value", "must hold exactly one element"));
        }
        a.finish()?;
        Ok(Box::new(ConstantOfShape { value }))
    }
}

impl Op for ConstantOfShape {
    op_boilerplate!("ConstantOfShape");
    fn infer(&self, inputs: &InputFacts<'_>) -> Result<Vec<Fact>, NnError> {
        let s = inputs.get(0)?;
        let r = s.shape.first().and_then(|d| d.fixed()).unwrap_or(0);
        Ok(vec![Fact::new(self.value.dtype(), vec![Dim::unknown(); r])])
    }
    fn eval(&self, inputs: &Inputs<'_>, _s: &mut Scratch) -> Result<Vec<Tensor>, NnError> {
        let shape: Vec<usize> = i64_list(inputs.get(0)?, "shape")?
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| NnError::op(format!("negative dim {d}"))))
            .collect::<Result<_, _>>()?;
        let n = shape.iter().product();
        let t = match self.value.dtype() {
            DType::F32 => Tensor::from_f32(shape, vec![self.value.f32s()?[0]; n])?,
            DType::I64 => Tensor::from_i64(shape, vec![self.value.i64s()?[0]; n])?,
        };
        Ok(vec![t])
    }
}

/// `Expand`.
#[derive(Debug, Clone)]
pub struct Expand;

impl Expand {
    /// Builds from a node.
    pub fn from_spec(spec: &NodeSpec) -> Result<Box<dyn Op>, NnError> {
        Attrs::new(spec).finish()?;
        Ok(Box::new(Expand))
    }
}

impl Op for Expand {
    op_boilerplate!("Expand");
    fn infer(&self, inputs: &InputFacts<'_>) -> Result<Vec<Fact>, NnError> {
        let x = inputs.get(0)?;
        let s = inputs.get(1)?;
        match inputs.konst(1) {
            Some(t) => {
                let dims: Vec<Dim> = i64_list(t, "shape")?
                    .iter()
                    .map(|&d| Dim::Fixed(d.max(0) as usize))
                    .collect();
                Ok(vec![Fact::new(
                    x.dtype,
                    super::elementwise::broadcast_dims(&x.shape, &dims)?,
                )])
            }
            None => {
                let r = s
                    .shape
                    .first()
                    .and_then(|d| d.fixed())
                    .unwrap_or(0)
                    .max(x.shape.len());
                Ok(vec![Fact::new(x.dtype, vec![Dim::unknown(); r])])
            }
        }
    }
    fn eval(&self, inputs: &Inputs<'_>, _s: &mut Scratch) -> Result<Vec<Tensor>, NnError> {
        let x = inputs.get(0)?;
        let req: Vec<usize> = i64_list(inputs.get(1)?, "shape")?
            .iter()
            .map(|&d| d.max(0) as usize)
            .collect();
        let out = super::elementwise::broadcast_shape(x.shape(), &req)?;
        let idx: Vec<usize> = (0..x.len()).collect();
        let map =
            super::elementwise::broadcast_map(&idx, x.shape(), &[0usize], &[], &out, |i, _| {
                Ok::<usize, NnError>(i)
            })?;
        Ok(vec![gather_flat(x, out, map.into_iter())?])
    }
}

/// `Pad` (constant mode).
#[derive(Debug, Clone)]
pub struct Pad {
    attr: Option<(Vec<i64>, f32)>,
}

impl Pad {
    /// Builds from a node.
    pub fn from_spec(spec: &NodeSpec) -> Result<Box<dyn Op>, NnError> {
        let mut a = Attrs::new(spec);
        let mode = a.string("mode")?.unwrap_or_else(|| "constant".into());
        if mode != "constant" {
            return Err(a.bad(
                "mode",
                format!("unsupported value '{mode}' (only 'constant')"),
            ));
        }
        let attr = if spec.opset < 11 {
            let pads = a
                .ints("pads")?
                .ok_or_else(|| a.bad("pads", "required attribute missing"))?;
            Some((pads, a.float("value", 0.0)?))
        } else {
            None
        };
        a.finish()?;
        Ok(Box::new(Pad { attr }))
    }

    fn pads(&self, rank: usize, inputs: &Inputs<'_>) -> Result<(Vec<i64>, f32), NnError> {
        let (pads, value, axes) = match &self.attr {
            Some((p, v)) => (p.clone(), *v, None),
            None => {
                let p = i64_list(inputs.get(1)?, "pads")?;
                let v = match inputs.opt(2) {
                    Some(t) if !t.is_empty() => match t.dtype() {
                        DType::F32 => t.f32s()?[0],
                        DType::I64 => t.i64s()?[0] as f32,
                    },
                    _ => 0.0,
                };
                let axes = inputs.opt(3).map(|t| i64_list(t, "axes")).transpose()?;
                (p, v, axes)
            }
        };
        let axes: Vec<usize> = match axes {
            Some(a) => a
                .iter()
                .map(|&x| norm_axis(x, rank))
                .collect::<Result<_, _>>()?,
            None => (0..rank).collect(),
        };
        if pads.len() != 2 * axes.len() {
            return Err(NnError::op(format!(
                "pads {pads:?} do not match {} axes",
                axes.len()
            )));
        }
        let mut full = vec![0i64; 2 * rank];
        for (k, &ax) in axes.iter().enumerate() {
            full[ax] = pads[k];
            full[ax + rank] = pads[k + axes.len()];
        }
        Ok((full, value))
    }
}

impl Op for Pad {
    op_boilerplate!("Pad");
    fn infer(&self, inputs: &InputFacts<'_>) -> Result<Vec<Fact>, NnError> {
        let x = inputs.get(0)?;
        let r = x.shape.len();
        let known = match &self.attr {
            Some((p, _)) if p.len() == 2 * r => Some(p.clone()),
            _ if inputs.len() <= 3 || inputs.opt(3).is_none() => {
                inputs.konst(1).and_then(|t| t.as_i64().map(|v| v.to_vec()))
            }
            _ => None,
        };
        let out = match known {
            Some(p) if p.len() == 2 * r => x
                .shape
                .iter()
                .enumerate()
                .map(|(i, d)| match d {
                    Dim::Fixed(n) => Dim::Fixed((*n as i64 + p[i] + p[i + r]).max(0) as usize),
                    s => s.clone(),
                })
                .collect(),
            _ => vec![Dim::unknown(); r],
        };
        Ok(vec![Fact::new(x.dtype, out)])
    }
    fn eval(&self, inputs: &Inputs<'_>, _s: &mut Scratch) -> Result<Vec<Tensor>, NnError> {
        let x = inputs.get(0)?;
        let r = x.rank();
        let (p, value) = self.pads(r, inputs)?;
        let ish = x.shape();
        let mut osh = Vec::with_capacity(r);
        for i in 0..r {
            let d = ish[i] as i64 + p[i] + p[i + r];
            if d < 0 {
                return Err(NnError::op(format!(
                    "pads {p:?} give a negative dim for input {ish:?}"
                )));
            }
            osh.push(d as usize);
        }
        let n: usize = osh.iter().product();
        let mut istr = vec![1usize; r];
        for i in (0..r.saturating_sub(1)).rev() {
            istr[i] = istr[i + 1] * ish[i + 1];
        }
        // For each output element: source flat index or None (padding).
        let mut src: Vec<Option<usize>> = Vec::with_capacity(n);
        let mut ctr = vec![0usize; r];
        for _ in 0..n {
            let mut off = 0usize;
            let mut inside = true;
            for d in 0..r {
                let c = ctr[d] as i64 - p[d];
                if c < 0 || c >= ish[d] as i64 {
                    inside = false;
                    break;
                }
                off += c as usize * istr[d];
            }
            src.push(inside.then_some(off));
            let mut d = r;
            while d > 0 {
                d -= 1;
                ctr[d] += 1;
                if ctr[d] < osh[d] {
                    break;
                }
                ctr[d] = 0;
            }
        }
        let t = match x.dtype() {
            DType::F32 => {
                let xd = x.f32s()?;
                Tensor::from_f32(
                    osh,
                    src.iter().map(|s| s.map_or(value, |i| xd[i])).collect(),
                )?
            }
            DType::I64 => {
                let xd = x.i64s()?;
                Tensor::from_i64(
                    osh,
                    src.iter()
                        .map(|s| s.map_or(value as i64, |i| xd[i]))
                        .collect(),
                )?
            }
        };
        Ok(vec![t])
    }
}

/// `Identity` (and `Dropout` in inference mode): passes its input through.
#[derive(Debug, Clone)]
pub struct Identity {
    name: &'static str,
}

impl Identity {
    /// Builds `Identity` or `Dropout` from a node. Dropout's `mask` output is rejected.
    pub fn from_spec(spec: &NodeSpec) -> Result<Box<dyn Op>, NnError> {
        let mut a = Attrs::new(spec);
        let name = if spec.op_type == "Dropout" {
            a.float("ratio", 0.5)?;
            a.int("seed", 0)?;
            a.int("is_test", 1)?;
            if spec.num_outputs > 1 {
                return Err(
                    NnError::op("the mask output is unsupported (inference only)")
                        .with_node(&spec.name, &spec.op_type),
                );
            }
            "Dropout"
        } else {
            "Identity"
        };
        a.finish()?;
        Ok(Box::new(Identity { name }))
    }
}

impl Op for Identity {
    fn name(&self) -> &'static str {
        self.name
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn infer(&self, inputs: &InputFacts<'_>) -> Result<Vec<Fact>, NnError> {
        if let Some(t) = inputs.konst(2) {
            if t.as_i64()
                .is_some_and(|v| v.first().is_some_and(|&b| b != 0))
            {
                return Err(NnError::op("training_mode=true is unsupported"));
            }
        }
        let x = inputs.get(0)?;
        Ok(vec![Fact::new(x.dtype, x.shape.clone())])
    }
    fn eval(&self, inputs: &Inputs<'_>, _s: &mut Scratch) -> Result<Vec<Tensor>, NnError> {
        Ok(vec![inputs.get(0)?.clone()])
    }
}

/// `Constant`.
#[derive(Debug, Clone)]
pub struct Constant {
    value: Tensor,
}

impl Constant {
    /// Builds from a node.
    pub fn from_spec(spec: &NodeSpec) -> Result<Box<dyn Op>, NnError> {
        let mut a = Attrs::new(spec);
        let mut found = vec![];
        if let Some(t) = a.tensor("value")? {
            found.push(t);
        }
        if let Some(v) = a.float_opt("value_float")? {
            found.push(Tensor::scalar_f32(v));
        }
        if let Some(v) = a.int_opt("value_int")? {
            found.push(Tensor::from_i64(vec![], vec![v])?);
        }
        if let Some(v) = a.ints("value_ints")? {
            found.push(Tensor::from_i64(vec![v.len()], v)?);
        }
        if let Some(v) = a.floats("value_floats")? {
            found.push(Tensor::from_f32(vec![v.len()], v)?);
        }
        a.finish()?;
        if found.len() != 1 {
            return Err(
                NnError::op("exactly one supported value attribute is required")
                    .with_node(&spec.name, &spec.op_type),
            );
        }
        let value = found.remove(0);
        Ok(Box::new(Constant { value }))
    }
}

impl Op for Constant {
    op_boilerplate!("Constant");
    fn infer(&self, _inputs: &InputFacts<'_>) -> Result<Vec<Fact>, NnError> {
        Ok(vec![Fact::of_tensor(&self.value)])
    }
    fn eval(&self, _inputs: &Inputs<'_>, _s: &mut Scratch) -> Result<Vec<Tensor>, NnError> {
        Ok(vec![self.value.clone()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Large Concats take the parallel copy: same result as the sequential one and as a
    /// naive per-element definition, on every axis, with uneven inputs and chunk edges
    /// falling inside inputs.
    #[test]
    fn parallel_concat_matches_naive_on_every_axis() {
        for ax in 0..4usize {
            let mut parts = Vec::new();
            for i in 0..3usize {
                // Inputs differ in size along `ax` only (8, 11, 14).
                let mut sh = [5usize, 12, 41, 53];
                sh[ax] = 8 + 3 * i;
                let n: usize = sh.iter().product();
                let data: Vec<f32> = (0..n).map(|v| (v * 31 + i * 7) as f32).collect();
                parts.push(Tensor::from_f32(sh.to_vec(), data).unwrap());
            }
            let ins: Vec<Option<&Tensor>> = parts.iter().map(Some).collect();
            let op = Concat { axis: ax as i64 };
            let run = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                pool.install(|| {
                    crate::team::with_team(|| {
                        op.eval(&Inputs::new(&ins), &mut Scratch::default())
                            .unwrap()
                    })
                })
            };
            let par = run(2);
            let seq = run(1);
            assert_eq!(par[0].shape(), seq[0].shape());
            let out = par[0].f32s().unwrap();
            assert!(out.len() >= PAR_CONCAT_MIN);
            assert_eq!(out, seq[0].f32s().unwrap());
            // Naive: walk the output index and find the source element.
            let osh = par[0].shape().to_vec();
            let mut idx = [0usize; 4];
            for (flat, &v) in out.iter().enumerate() {
                let mut r = flat;
                for d in (0..4).rev() {
                    idx[d] = r % osh[d];
                    r /= osh[d];
                }
                let mut a = idx[ax];
                let mut k = 0;
                while a >= parts[k].shape()[ax] {
                    a -= parts[k].shape()[ax];
                    k += 1;
                }
                let psh = parts[k].shape();
                let mut j = idx;
                j[ax] = a;
                let off = ((j[0] * psh[1] + j[1]) * psh[2] + j[2]) * psh[3] + j[3];
                assert_eq!(v, parts[k].f32s().unwrap()[off], "axis {ax} index {idx:?}");
            }
        }
    }
}
