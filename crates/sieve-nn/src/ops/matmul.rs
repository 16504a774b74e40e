//! `Gemm` and `MatMul`, with bound weights (constant B operand) and a fused
//! activation for Gemm.
//!
//! Specs: <https://onnx.ai/onnx/operators/onnx__Gemm.html> (opsets 7..=22;
//! attributes `alpha`, `beta`, `transA`, `transB`; C broadcast to `[M, N]`),
//! <https://onnx.ai/onnx/operators/onnx__MatMul.html> (opsets 1..=22; numpy
//! semantics: 1-D operands promoted, batch dims broadcast).

use super::elementwise::{broadcast_map, broadcast_shape};
use crate::kernels::packed::{self, FcWeights};
use crate::kernels::{self, Activation};
use crate::op::{want_f32, Attrs, Dim, Fact, InputFacts, Inputs, NodeSpec, Op, Scratch};
use crate::{DType, NnError, Tensor, Weights};
use std::any::Any;
use std::sync::Arc;

/// `Gemm`: `Y = act(alpha * A' * B' + beta * C)`.
#[derive(Clone, Debug)]
pub struct Gemm {
    /// `alpha`.
    pub alpha: f32,
    /// `beta`.
    pub beta: f32,
    /// `transA`.
    pub trans_a: bool,
    /// `transB`.
    pub trans_b: bool,
    /// B when bound at load time (stored as in the model: `[K, N]` or `[N, K]` if `trans_b`).
    pub weights: Option<Weights>,
    /// C when bound at load time (already multiplied by nothing; `beta` still applies).
    pub bias: Option<Tensor>,
    /// Fused activation.
    pub act: Activation,
}

impl Gemm {
    /// Builds from a node.
    pub fn from_spec(spec: &NodeSpec) -> Result<Box<dyn Op>, NnError> {
        let mut a = Attrs::new(spec);
        let alpha = a.float("alpha", 1.0)?;
        let beta = a.float("beta", 1.0)?;
        let trans_a = a.int("transA", 0)? != 0;
        let trans_b = a.int("transB", 0)? != 0;
        if spec.opset < 7 {
            a.int("broadcast", 0)?;
        }
        a.finish()?;
        Ok(Box::new(Gemm {
            alpha,
            beta,
            trans_a,
            trans_b,
            weights: None,
            bias: None,
            act: Activation::None,
        }))
    }

    /// A copy with bound B (and C).
    pub fn bound(&self, weights: Weights, bias: Option<Tensor>) -> Gemm {
        Gemm {
            weights: Some(weights),
            bias,
            ..self.clone()
        }
    }

    fn dims(&self, a: &[usize], b: &[usize]) -> Result<(usize, usize, usize), NnError> {
        if a.len() != 2 || b.len() != 2 {
            return Err(NnError::op(format!("A {a:?} and B {b:?} must be 2-D")));
        }
        let (m, k) = if self.trans_a {
            (a[1], a[0])
        } else {
            (a[0], a[1])
        };
        let (k2, n) = if self.trans_b {
            (b[1], b[0])
        } else {
            (b[0], b[1])
        };
        if k != k2 {
            return Err(NnError::op(format!(
                "A {a:?} (transA={}) and B {b:?} (transB={}) have different inner dims",
                self.trans_a, self.trans_b
            )));
        }
        Ok((m, n, k))
    }
}

impl Op for Gemm {
    fn name(&self) -> &'static str {
        "Gemm"
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn weights(&self) -> Option<&Weights> {
        self.weights.as_ref()
    }
    fn with_weights(&self, weights: Weights) -> Option<Result<Arc<dyn Op>, NnError>> {
        let old = self.weights.as_ref()?;
        if old.shape() != weights.shape() {
            return Some(Err(NnError::op(format!(
                "new weights {:?} do not match {:?}",
                weights.shape(),
                old.shape()
            ))));
        }
        Some(Ok(Arc::new(self.bound(weights, self.bias.clone()))))
    }
    fn infer(&self, inputs: &InputFacts<'_>) -> Result<Vec<Fact>, NnError> {
        let a = inputs.get(0)?;
        want_f32(a, "A")?;
        let bshape: Vec<Dim> = match &self.weights {
            Some(w) => w.shape().iter().map(|&d| Dim::Fixed(d)).collect(),
            None => inputs.get(1)?.shape.clone(),
        };
        if a.shape.len() != 2 || bshape.len() != 2 {
            return Err(NnError::op(format!(
                "A {} and B {} must be 2-D",
                crate::op::fmt_dims(&a.shape),
                crate::op::fmt_dims(&bshape)
            )));
        }
        let m = if self.trans_a {
            &a.shape[1]
        } else {
            &a.shape[0]
        };
        let n = if self.trans_b { &bshape[0] } else { &bshape[1] };
        let ka = if self.trans_a {
            &a.shape[0]
        } else {
            &a.shape[1]
        };
        let kb = if self.trans_b { &bshape[1] } else { &bshape[0] };
        if let (Dim::Fixed(x), Dim::Fixed(y)) = (ka, kb) {
            if x != y {
                return Err(NnError::op(format!(
                    "A {} and B {} have different inner dims",
                    crate::op::fmt_dims(&a.shape),
                    crate::op::fmt_dims(&bshape)
                )));
            }
        }
        Ok(vec![Fact::new(DType::F32, vec![m.clone(), n.clone()])])
    }
    fn eval(&self, inputs: &Inputs<'_>, _scratch: &mut Scratch) -> Result<Vec<Tensor>, NnError> {
        let a = inputs.get(0)?;
        let (bt, ct) = match &self.weights {
            Some(_) => (None, self.bias.as_ref()),
            None => (Some(inputs.get(1)?), inputs.opt(2)),
        };
        let bshape = match (&self.weights, bt) {
            (Some(w), _) => w.shape().to_vec(),
            (None, Some(t)) => t.shape().to_vec(),
            (None, None) => return Err(NnError::op("missing B")),
        };
        let (m, n, k) = self.dims(a.shape(), &bshape)?;
        let mut out = vec![0.0f32; m * n];
        let mut beta = 0.0;
        if let Some(c) = ct {
            if self.beta != 0.0 {
                let cd = c.f32s()?;
                let s = broadcast_shape(c.shape(), &[m, n])?;
                if s != [m, n] {
                    return Err(NnError::op(format!(
                        "C {:?} does not broadcast to [{m}, {n}]",
                        c.shape()
                    )));
                }
                if c.len() == n && (c.rank() == 1 || c.shape()[0] == 1) {
                    for row in out.chunks_mut(n.max(1)) {
                        row.copy_from_slice(cd);
                    }
                } else {
                    let zero = [0.0f32];
                    out = broadcast_map(cd, c.shape(), &zero, &[], &[m, n], |x, _| {
                        Ok::<f32, NnError>(x)
                    })?;
                }
                beta = self.beta;
            }
        }
        let ad = a.f32s()?;
        let err =
            |e: kernels::KernelError| NnError::op(format!("A {:?}, B {bshape:?}: {e}", a.shape()));
        match (&self.weights, bt) {
            // Constant weights, the fully-connected case: the packed-aware kernel (dense
            // and packed weights take the same loops, so a variant and its decoded
            // reference agree bit for bit).
            (Some(w), _) if !self.trans_a => {
                let view;
                let fw = match w.fc_operand() {
                    Some(fw) => fw,
                    None => {
                        view = w.decoded()?;
                        FcWeights::Dense(&view)
                    }
                };
                packed::fc(m, n, k, ad, fw, self.trans_b, self.alpha, beta, &mut out)
                    .map_err(err)?;
            }
            (Some(w), _) => {
                let view = w.decoded()?;
                kernels::gemm(
                    m,
                    n,
                    k,
                    ad,
                    true,
                    &view,
                    self.trans_b,
                    self.alpha,
                    beta,
                    &mut out,
                )
                .map_err(err)?;
            }
            (None, Some(t)) => {
                kernels::gemm(
                    m,
                    n,
                    k,
                    ad,
                    self.trans_a,
                    t.f32s()?,
                    self.trans_b,
                    self.alpha,
                    beta,
                    &mut out,
                )
                .map_err(err)?;
            }
            (None, None) => return Err(NnError::op("missing B")),
        }
        kernels::apply_activation(self.act, &mut out);
        Ok(vec![Tensor::from_f32(vec![m, n], out)?])
    }
}

/// `MatMul` (numpy semantics), with B optionally bound.
#[derive(Clone, Debug)]
pub struct MatMul {
    /// B when bound at load time (2-D `[K, N]`).
    pub weights: Option<Weights>,
}

impl MatMul {
    /// Builds from a node.
    pub fn from_spec(spec: &NodeSpec) -> Result<Box<dyn Op>, NnError> {
        Attrs::new(spec).finish()?;
        Ok(Box::new(MatMul { weights: None }))
    }
}

#[allow(clippy::type_complexity)]
fn matmul_shapes(
    a: &[usize],
    b: &[usize],
) -> Result<(Vec<usize>, usize, usize, usize, Vec<usize>), NnError> {
    if a.is_empty() || b.is_empty() {
        return Err(NnError::op(format!("MatMul of scalars {a:?} x {b:?}")));
    }
    let a2: Vec<usize> = if a.len() == 1 {
        vec![1, a[0]]
    } else {
        a.to_vec()
    };
    let b2: Vec<usize> = if b.len() == 1 {
        vec![b[0], 1]
    } else {
        b.to_vec()
    };
    let (m, k) = (a2[a2.len() - 2], a2[a2.len() - 1]);
    let (k2, n) = (b2[b2.len() - 2], b2[b2.len() - 1]);
    if k != k2 {
        return Err(NnError::op(format!(
            "MatMul inner dims differ: {a:?} x {b:?}"
        )));
    }
    let batch = broadcast_shape(&a2[..a2.len() - 2], &b2[..b2.len() - 2])?;
    let mut out = batch.clone();
    if a.len() > 1 {
        out.push(m);
    }
    if b.len() > 1 {
        out.push(n);
    }
    Ok((batch, m, n, k, out))
}

impl Op for MatMul {
    fn name(&self) -> &'static str {
        "MatMul"
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn weights(&self) -> Option<&Weights> {
        self.weights.as_ref()
    }
    fn with_weights(&self, weights: Weights) -> Option<Result<Arc<dyn Op>, NnError>> {
        let old = self.weights.as_ref()?;
        if old.shape() != weights.shape() {
            return Some(Err(NnError::op(format!(
                "new weights {:?} do not match {:?}",
                weights.shape(),
                old.shape()
            ))));
        }
        Some(Ok(Arc::new(MatMul {
            weights: Some(weights),
        })))
    }
    fn infer(&self, inputs: &InputFacts<'_>) -> Result<Vec<Fact>, NnError> {
        let a = inputs.get(0)?;
        want_f32(a, "A")?;
        let b: Vec<Dim> = match &self.weights {
            Some(w) => w.shape().iter().map(|&d| Dim::Fixed(d)).collect(),
            None => inputs.get(1)?.shape.clone(),
        };
        if a.shape.is_empty() || b.is_empty() {
            return Err(NnError::op("MatMul of scalars"));
        }
        let fa = a.fixed_shape();
        let fb: Option<Vec<usize>> = b.iter().map(|d| d.fixed()).collect();
        if let (Some(fa), Some(fb)) = (&fa, &fb) {
            let (_, _, _, _, out) = matmul_shapes(fa, fb)?;
            return Ok(vec![Fact::new(
                DType::F32,
                out.into_iter().map(Dim::Fixed).collect(),
            )]);
        }
        // Common symbolic case: A [..., K] x B [K, N].
        if b.len() == 2 && a.shape.len() >= 2 {
            if let (Some(k), Dim::Fixed(k2)) = (a.shape[a.shape.len() - 1].fixed(), &b[0]) {
                if k != *k2 {
                    return Err(NnError::op(format!(
                        "MatMul inner dims differ: {} x {}",
                        crate::op::fmt_dims(&a.shape),
                        crate::op::fmt_dims(&b)
                    )));
                }
            }
            let mut out = a.shape[..a.shape.len() - 1].to_vec();
            out.push(b[1].clone());
            return Ok(vec![Fact::new(DType::F32, out)]);
        }
        let r = a.shape.len().max(b.len());
        Ok(vec![Fact::new(DType::F32, vec![Dim::unknown(); r])])
    }
    fn eval(&self, inputs: &Inputs<'_>, _scratch: &mut Scratch) -> Result<Vec<Tensor>, NnError> {
        let a = inputs.get(0)?;
        let bt = if self.weights.is_none() {
            Some(inputs.get(1)?)
        } else {
            None
        };
        let bshape = match (&self.weights, bt) {
            (Some(w), _) => w.shape().to_vec(),
            (None, Some(t)) => t.shape().to_vec(),
            (None, None) => return Err(NnError::op("missing B")),
        };
        let (batch, m, n, k, out_shape) = matmul_shapes(a.shape(), &bshape)?;
        let ad = a.f32s()?;
        let err =
            |e: kernels::KernelError| NnError::op(format!("{:?} x {bshape:?}: {e}", a.shape()));
        // Fast path: B is 2-D (or 1-D): fold A's batch dims into M.
        if bshape.len() <= 2 {
            let rows = ad
                .len()
                .checked_div(k)
                .unwrap_or(batch.iter().product::<usize>() * m);
            let mut out = vec![0.0f32; rows * n];
            match (&self.weights, bt) {
                (Some(w), _) => {
                    let view;
                    let fw = match w.fc_operand() {
                        Some(fw) => fw,
                        None => {
                            view = w.decoded()?;
                            FcWeights::Dense(&view)
                        }
                    };
                    packed::fc(rows, n, k, ad, fw, false, 1.0, 0.0, &mut out).map_err(err)?;
                }
                (None, Some(t)) => {
                    kernels::gemm(rows, n, k, ad, false, t.f32s()?, false, 1.0, 0.0, &mut out)
                        .map_err(err)?;
                }
                (None, None) => return Err(NnError::op("missing B")),
            }
            return Ok(vec![Tensor::from_f32(out_shape, out)?]);
        }
        let view;
        let bdata: &[f32] = match (&self.weights, bt) {
            (Some(w), _) => {
                view = w.decoded()?;
                &view
            }
            (None, Some(t)) => t.f32s()?,
            (None, None) => return Err(NnError::op("missing B")),
        };
        let nb: usize = batch.iter().product();
        let a_b: Vec<usize> = if a.rank() >= 2 {
            a.shape()[..a.rank() - 2].to_vec()
        } else {
            vec![]
        };
        let b_b: Vec<usize> = bshape[..bshape.len() - 2].to_vec();
        let ia: Vec<usize> = (0..a_b.iter().product::<usize>()).collect();
        let ib: Vec<usize> = (0..b_b.iter().product::<usize>()).collect();
        // Flat batch index of A and B for every output batch element.
        let pa = broadcast_map(&ia, &a_b, &[0usize], &[], &batch, |x, _| {
            Ok::<usize, NnError>(x)
        })?;
        let pb = broadcast_map(&ib, &b_b, &[0usize], &[], &batch, |x, _| {
            Ok::<usize, NnError>(x)
        })?;
        let pairs: Vec<(usize, usize)> = pa.into_iter().zip(pb).collect();
        let mut out = vec![0.0f32; nb * m * n];
        for (i, (xa, xb)) in pairs.into_iter().enumerate() {
            kernels::gemm(
                m,
                n,
                k,
                &ad[xa * m * k..(xa + 1) * m * k],
                false,
                &bdata[xb * k * n..(xb + 1) * k * n],
                false,
                1.0,
                0.0,
                &mut out[i * m * n..(i + 1) * m * n],
            )
            .map_err(err)?;
        }
        Ok(vec![Tensor::from_f32(out_shape, out)?])
    }
}
