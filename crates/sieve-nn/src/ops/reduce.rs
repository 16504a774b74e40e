//! Reductions: `ReduceMean`, `ReduceSum`, `ReduceMax`, `ReduceMin`,
//! `ReduceSumSquare`.
//!
//! Spec: <https://onnx.ai/onnx/operators/onnx__ReduceMean.html> (same pattern for
//! the others). Opsets 1..=22. `axes` is an attribute before the opset where it
//! became an input (13 for ReduceSum, 18 for the others) and an optional input
//! after; `keepdims` (default 1); `noop_with_empty_axes` (default 0). Reducing an
//! empty set gives 0 for sums/means-of-nothing-as-sum, -inf/+inf for max/min.

use crate::op::{norm_axis, want_f32, Attrs, Dim, Fact, InputFacts, Inputs, NodeSpec, Op, Scratch};
use crate::{DType, NnError, Tensor};
use std::any::Any;

/// Which reduction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceKind {
    /// Mean.
    Mean,
    /// Sum.
    Sum,
    /// Maximum.
    Max,
    /// Minimum.
    Min,
    /// Sum of squares.
    SumSquare,
}

/// A reduction over some axes.
#[derive(Clone, Debug)]
pub struct Reduce {
    /// Which reduction.
    pub kind: ReduceKind,
    attr_axes: Option<Vec<i64>>,
    keepdims: bool,
    noop_empty: bool,
}

impl Reduce {
    /// Builds from a node.
    pub fn from_spec(spec: &NodeSpec) -> Result<Box<dyn Op>, NnError> {
        let (kind, input_from) = match spec.op_type.as_str() {
            "ReduceMean" => (ReduceKind::Mean, 18),
            "ReduceSum" => (ReduceKind::Sum, 13),
            "ReduceMax" => (ReduceKind::Max, 18),
            "ReduceMin" => (ReduceKind::Min, 18),
            "ReduceSumSquare" => (ReduceKind::SumSquare, 18),
            _ => {
                return Err(NnError::UnsupportedOp {
                    node: spec.name.clone(),
                    op: spec.op_type.clone(),
                })
            }
        };
        let mut a = Attrs::new(spec);
        let attr_axes = if spec.opset < input_from {
            a.ints("axes")?
        } else {
            None
        };
        let keepdims = a.int("keepdims", 1)? != 0;
        let noop_empty = if spec.opset >= input_from {
            a.int("noop_with_empty_axes", 0)? != 0
        } else {
            false
        };
        a.finish()?;
        Ok(Box::new(Reduce {
            kind,
            attr_axes,
            keepdims,
            noop_empty,
        }))
    }

    /// Reduced axes (sorted, unique) for `rank`, given the optional axes input;
    /// `None` means "no-op" (empty axes with `noop_with_empty_axes`).
    fn axes(&self, rank: usize, input: Option<&Tensor>) -> Result<Option<Vec<usize>>, NnError> {
        let given: Option<Vec<i64>> = match (&self.attr_axes, input) {
            (Some(a), _) => Some(a.clone()),
            (None, Some(t)) => Some(t.i64s()?.to_vec()),
            (None, None) => None,
        };
        let mut ax: Vec<usize> = match given {
            Some(g) if !g.is_empty() => g
                .iter()
                .map(|&a| norm_axis(a, rank))
                .collect::<Result<_, _>>()?,
            _ if self.noop_empty => return Ok(None),
            _ => (0..rank).collect(),
        };
        ax.sort_unstable();
        ax.dedup();
        Ok(Some(ax))
    }

    fn out_dims<T: Clone>(&self, dims: &[T], axes: &[usize], one: T) -> Vec<T> {
        let mut out = vec![];
        for (i, d) in dims.iter().enumerate() {
            if axes.contains(&i) {
                if self.keepdims {
                    out.push(one.clone());
                }
            } else {
                out.push(d.clone());
            }
        }
        out
    }
}

impl Op for Reduce {
    fn name(&self) -> &'static str {
        match self.kind {
            ReduceKind::Mean => "ReduceMean",
            ReduceKind::Sum => "ReduceSum",
            ReduceKind::Max => "ReduceMax",
            ReduceKind::Min => "ReduceMin",
            ReduceKind::SumSquare => "ReduceSumSquare",
        }
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn infer(&self, inputs: &InputFacts<'_>) -> Result<Vec<Fact>, NnError> {
        let x = inputs.get(0)?;
        want_f32(x, "input")?;
        if self.attr_axes.is_none() && inputs.opt(1).is_some() && inputs.konst(1).is_none() {
            // Axes known only at run time: only the rank may be known.
            let n_axes = inputs.get(1)?.shape.first().and_then(|d| d.fixed());
            let r = x.shape.len();
            let rank = match (self.keepdims, n_axes) {
                (true, _) => r,
                (false, Some(0)) if self.noop_empty => r,
                (false, Some(0)) => 0,
                (false, Some(k)) => r.saturating_sub(k),
                (false, None) => r,
            };
            return Ok(vec![Fact::new(DType::F32, vec![Dim::unknown(); rank])]);
        }
        let out = match self.axes(x.shape.len(), inputs.konst(1))? {
            None => x.shape.clone(),
            Some(ax) => self.out_dims(&x.shape, &ax, Dim::Fixed(1)),
        };
        Ok(vec![Fact::new(DType::F32, out)])
    }
    fn eval(&self, inputs: &Inputs<'_>, _s: &mut Scratch) -> Result<Vec<Tensor>, NnError> {
        let x = inputs.get(0)?;
        let xs = x.shape();
        let xd = x.f32s()?;
        let Some(axes) = self.axes(xs.len(), inputs.opt(1))? else {
            return Ok(vec![x.clone()]);
        };
        let r = xs.len();
        // Output (keepdims) shape and strides of the output for every input dim.
        let kshape: Vec<usize> = (0..r)
            .map(|i| if axes.contains(&i) { 1 } else { xs[i] })
            .collect();
        let n_out: usize = kshape.iter().product();
        let count: usize = axes.iter().map(|&a| xs[a]).product();
        let init = match self.kind {
            ReduceKind::Max => f32::NEG_INFINITY,
            ReduceKind::Min => f32::INFINITY,
            _ => 0.0,
        };
        let mut acc = vec![init; n_out];
        let mut ostr = vec![0usize; r];
        let mut s = 1;
        for i in (0..r).rev() {
            ostr[i] = if axes.contains(&i) { 0 } else { s };
            s *= kshape[i];
        }
        let mut ctr = vec![0usize; r];
        let mut off = 0usize;
        let kind = self.kind;
        for &v in xd {
            let a = &mut acc[off];
            match kind {
                ReduceKind::Mean | ReduceKind::Sum => *a += v,
                ReduceKind::SumSquare => *a += v * v,
                ReduceKind::Max => *a = if v.is_nan() || v > *a { v } else { *a },
                ReduceKind::Min => *a = if v.is_nan() || v < *a { v } else { *a },
            }
            let mut d = r;
            while d > 0 {
                d -= 1;
                ctr[d] += 1;
                off += ostr[d];
                if ctr[d] < xs[d] {
                    break;
                }
                off -= ostr[d] * ctr[d];
                ctr[d] = 0;
            }
        }
        if kind == ReduceKind::Mean && count > 0 {
            let c = count as f32;
            acc.iter_mut().for_each(|v| *v /= c);
        }
        let out = self.out_dims(xs, &axes, 1);
        Ok(vec![Tensor::from_f32(out, acc)?])
    }
}
