//! Normalisation: `BatchNormalization` (inference) and `LRN`.
//!
//! Specs: <https://onnx.ai/onnx/operators/onnx__BatchNormalization.html> (opsets
//! 6..=22, attribute `epsilon`; `momentum` is read and ignored; `training_mode=1`
//! and the training outputs are rejected; `spatial` of opset < 9 must be 1),
//! <https://onnx.ai/onnx/operators/onnx__LRN.html> (opsets 1..=22; `size`,
//! `alpha`, `beta`, `bias`).

use crate::kernels;
use crate::op::{want_f32, Attrs, Fact, InputFacts, Inputs, NodeSpec, Op, Scratch};
use crate::{DType, NnError, Tensor};
use std::any::Any;

/// `BatchNormalization` in inference mode: `y = (x - mean) / sqrt(var + eps) * scale + b`
/// per channel (axis 1).
#[derive(Clone, Debug)]
pub struct BatchNorm {
    /// `epsilon`.
    pub epsilon: f32,
}

impl BatchNorm {
    /// Builds from a node.
    pub fn from_spec(spec: &NodeSpec) -> Result<Box<dyn Op>, NnError> {
        let mut a = Attrs::new(spec);
        let epsilon = a.float("epsilon", 1e-5)?;
        a.float("momentum", 0.9)?;
        if a.int("training_mode", 0)? != 0 {
            return Err(a.bad(
                "training_mode",
                "training mode is unsupported (inference only)",
            ));
        }
        if spec.opset < 9 && a.int("spatial", 1)? != 1 {
            return Err(a.bad("spatial", "only spatial=1 is supported"));
        }
        if spec.opset < 7 {
            a.int("is_test", 1)?;
            a.ints("consumed_inputs")?;
        }
        a.finish()?;
        if spec.num_outputs > 1 {
            return Err(
                NnError::op("training outputs (running mean/var) are unsupported")
                    .with_node(&spec.name, &spec.op_type),
            );
        }
        Ok(Box::new(BatchNorm { epsilon }))
    }

    /// Per-channel `(a, b)` such that `y = a * x + b`, from the scale, bias, mean and
    /// variance tensors (each `[C]`).
    pub fn coefficients(
        &self,
        scale: &Tensor,
        bias: &Tensor,
        mean: &Tensor,
        var: &Tensor,
    ) -> Result<(Vec<f32>, Vec<f32>), NnError> {
        let (s, b, m, v) = (scale.f32s()?, bias.f32s()?, mean.f32s()?, var.f32s()?);
        let c = s.len();
        if b.len() != c || m.len() != c || v.len() != c {
            return Err(NnError::op(format!(
                "scale {:?}, bias {:?}, mean {:?}, var {:?} must all have the same length",
                scale.shape(),
                bias.shape(),
                mean.shape(),
                var.shape()
            )));
        }
        let mut ka = Vec::with_capacity(c);
        let mut kb = Vec::with_capacity(c);
        for i in 0..c {
            let a = s[i] / (v[i] + self.epsilon).sqrt();
            ka.push(a);
            kb.push(b[i] - m[i] * a);
        }
        Ok((ka, kb))
    }
}

impl Op for BatchNorm {
    fn name(&self) -> &'static str {
        "BatchNormalization"
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn infer(&self, inputs: &InputFacts<'_>) -> Result<Vec<Fact>, NnError> {
        let x = inputs.get(0)?;
        want_f32(x, "X")?;
        if x.shape.len() < 2 {
            return Err(NnError::op(format!(
                "X {} must have a channel axis",
                crate::op::fmt_dims(&x.shape)
            )));
        }
        for i in 1..5 {
            inputs.get(i)?;
        }
        Ok(vec![Fact::new(DType::F32, x.shape.clone())])
    }
    fn eval(&self, inputs: &Inputs<'_>, _s: &mut Scratch) -> Result<Vec<Tensor>, NnError> {
        let x = inputs.get(0)?;
        let (ka, kb) = self.coefficients(
            inputs.get(1)?,
            inputs.get(2)?,
            inputs.get(3)?,
            inputs.get(4)?,
        )?;
        let xs = x.shape();
        if xs.len() < 2 || xs[1] != ka.len() {
            return Err(NnError::op(format!(
                "X {xs:?} does not have {} channels",
                ka.len()
            )));
        }
        let c = xs[1];
        let inner: usize = xs[2..].iter().product();
        let mut out = x.f32s()?.to_vec();
        for (i, chunk) in out.chunks_mut(inner.max(1)).enumerate() {
            let ch = i % c;
            let (a, b) = (ka[ch], kb[ch]);
            chunk.iter_mut().for_each(|v| *v = a * *v + b);
        }
        Ok(vec![Tensor::from_f32(xs.to_vec(), out)?])
    }
}

/// `LRN` across channels.
#[derive(Clone, Debug)]
pub struct Lrn {
    size: usize,
    alpha: f32,
    beta: f32,
    bias: f32,
}

impl Lrn {
    /// Builds from a node.
    pub fn from_spec(spec: &NodeSpec) -> Result<Box<dyn Op>, NnError> {
        let mut a = Attrs::new(spec);
        let size = a
            .int_opt("size")?
            .ok_or_else(|| a.bad("size", "required attribute missing"))?;
        if size < 1 {
            return Err(a.bad("size", format!("must be >= 1, got {size}")));
        }
        let alpha = a.float("alpha", 1e-4)?;
        let beta = a.float("beta", 0.75)?;
        let bias = a.float("bias", 1.0)?;
        a.finish()?;
        Ok(Box::new(Lrn {
            size: size as usize,
            alpha,
            beta,
            bias,
        }))
    }
}

impl Op for Lrn {
    fn name(&self) -> &'static str {
        "LRN"
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn infer(&self, inputs: &InputFacts<'_>) -> Result<Vec<Fact>, NnError> {
        let x = inputs.get(0)?;
        want_f32(x, "X")?;
        if x.shape.len() < 3 {
            return Err(NnError::op(format!(
                "X {} must be NCHW",
                crate::op::fmt_dims(&x.shape)
            )));
        }
        Ok(vec![Fact::new(DType::F32, x.shape.clone())])
    }
    fn eval(&self, inputs: &Inputs<'_>, _s: &mut Scratch) -> Result<Vec<Tensor>, NnError> {
        let x = inputs.get(0)?;
        let xs = x.shape();
        if xs.len() < 3 {
            return Err(NnError::op(format!("X {xs:?} must be NCHW")));
        }
        let (n, c) = (xs[0], xs[1]);
        let (h, w) = if xs.len() == 3 {
            (1, xs[2])
        } else {
            (xs[2], xs[3..].iter().product())
        };
        let mut out = vec![0.0f32; x.len()];
        kernels::lrn(
            x.f32s()?,
            n,
            c,
            h,
            w,
            self.size,
            self.alpha,
            self.beta,
            self.bias,
            &mut out,
        )
        .map_err(|e| NnError::op(format!("X {xs:?}: {e}")))?;
        Ok(vec![Tensor::from_f32(xs.to_vec(), out)?])
    }
}
