//! `Softmax` and `LogSoftmax`.
//!
//! Specs: <https://onnx.ai/onnx/operators/onnx__Softmax.html>,
//! <https://onnx.ai/onnx/operators/onnx__LogSoftmax.html>. Opsets 1..=22.
//! Attribute `axis`: before opset 13 the input is coerced to 2-D at `axis`
//! (default 1) and normalised over the flattened trailing block; from 13 the
//! normalisation runs along the single axis (default -1). Numerically stable
//! (max subtracted first).

use crate::op::{norm_axis, want_f32, Attrs, Fact, InputFacts, Inputs, NodeSpec, Op, Scratch};
use crate::{DType, NnError, Tensor};
use std::any::Any;

/// `Softmax` / `LogSoftmax`.
#[derive(Clone, Debug)]
pub struct Softmax {
    /// True for LogSoftmax.
    pub log: bool,
    axis: i64,
    legacy: bool,
}

impl Softmax {
    /// Builds from a node.
    pub fn from_spec(spec: &NodeSpec) -> Result<Box<dyn Op>, NnError> {
        let mut a = Attrs::new(spec);
        let legacy = spec.opset < 13;
        let axis = a.int("axis", if legacy { 1 } else { -1 })?;
        a.finish()?;
        Ok(Box::new(Softmax {
            log: spec.op_type == "LogSoftmax",
            axis,
            legacy,
        }))
    }

    /// A modern (opset 13) softmax along `axis`.
    pub fn along(axis: i64) -> Softmax {
        Softmax {
            log: false,
            axis,
            legacy: false,
        }
    }
}

/// Softmax of each `len`-long run of `v` whose elements are `stride` apart.
fn softmax_strided(v: &mut [f32], outer: usize, len: usize, inner: usize, log: bool) {
    for o in 0..outer {
        for i in 0..inner {
            let base = o * len * inner + i;
            let mut mx = f32::NEG_INFINITY;
            for k in 0..len {
                mx = mx.max(v[base + k * inner]);
            }
            let mut sum = 0.0f32;
            for k in 0..len {
                let e = (v[base + k * inner] - mx).exp();
                if !log {
                    v[base + k * inner] = e;
                }
                sum += e;
            }
            if log {
                let ls = sum.ln();
                for k in 0..len {
                    v[base + k * inner] = v[base + k * inner] - mx - ls;
                }
            } else {
                let inv = 1.0 / sum;
                for k in 0..len {
                    v[base + k * inner] *= inv;
                }
            }
        }
    }
}

impl Op for Softmax {
    fn name(&self) -> &'static str {
        if self.log {
            "LogSoftmax"
        } else {
            "Softmax"
        }
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn infer(&self, inputs: &InputFacts<'_>) -> Result<Vec<Fact>, NnError> {
        let x = inputs.get(0)?;
        want_f32(x, "input")?;
        norm_axis(self.axis, x.shape.len())?;
        Ok(vec![Fact::new(DType::F32, x.shape.clone())])
    }
    fn eval(&self, inputs: &Inputs<'_>, _s: &mut Scratch) -> Result<Vec<Tensor>, NnError> {
        let x = inputs.get(0)?;
        let xs = x.shape();
        let ax = norm_axis(self.axis, xs.len())?;
        let (outer, len, inner) = if self.legacy {
            (xs[..ax].iter().product(), xs[ax..].iter().product(), 1)
        } else {
            (
                xs[..ax].iter().product(),
                xs[ax],
                xs[ax + 1..].iter().product(),
            )
        };
        let mut v = x.f32s()?.to_vec();
        softmax_strided(&mut v, outer, len, inner, self.log);
        Ok(vec![Tensor::from_f32(xs.to_vec(), v)?])
    }
}
