//! Pooling: `MaxPool`, `AveragePool` (1-D and 2-D), `GlobalAveragePool`,
//! `GlobalMaxPool`.
//!
//! Specs: <https://onnx.ai/onnx/operators/onnx__MaxPool.html>,
//! <https://onnx.ai/onnx/operators/onnx__AveragePool.html>,
//! <https://onnx.ai/onnx/operators/onnx__GlobalAveragePool.html>,
//! <https://onnx.ai/onnx/operators/onnx__GlobalMaxPool.html>. Opsets 1..=22.
//! Attributes: `kernel_shape`, `strides`, `pads`, `auto_pad`, `ceil_mode`,
//! `dilations`, `count_include_pad` (AveragePool), `storage_order` (0 only).
//! MaxPool's optional `Indices` output and 3-D pooling are rejected.

use super::conv::{spatial_list, AutoPad};
use crate::kernels::{self, Activation, Pool2dGeom};
use crate::op::{want_f32, Attrs, Dim, Fact, InputFacts, Inputs, NodeSpec, Op, Scratch};
use crate::{DType, NnError, Tensor};
use std::any::Any;

/// `MaxPool` / `AveragePool`.
#[derive(Clone, Debug)]
pub struct Pool {
    /// True for MaxPool.
    pub max: bool,
    kernel: Vec<usize>,
    strides: Vec<usize>,
    dilations: Vec<usize>,
    pads: Vec<usize>,
    auto_pad: AutoPad,
    ceil_mode: bool,
    count_include_pad: bool,
    /// Activation applied to the pooled values (fused by the activation pass).
    act: Activation,
}

impl Pool {
    /// Builds from a node.
    pub fn from_spec(spec: &NodeSpec) -> Result<Box<dyn Op>, NnError> {
        let mut a = Attrs::new(spec);
        let max = spec.op_type == "MaxPool";
        let kernel = spatial_list(&mut a, "kernel_shape", 0)?
            .ok_or_else(|| a.bad("kernel_shape", "required attribute missing"))?;
        if kernel.is_empty() || kernel.len() > 2 {
            return Err(a.bad(
                "kernel_shape",
                format!("only 1-D and 2-D pooling is supported, got {kernel:?}"),
            ));
        }
        let sp = kernel.len();
        let strides = spatial_list(&mut a, "strides", sp)?.unwrap_or_else(|| vec![1; sp]);
        let dilations = spatial_list(&mut a, "dilations", sp)?.unwrap_or_else(|| vec![1; sp]);
        let pads = spatial_list(&mut a, "pads", 2 * sp)?.unwrap_or_else(|| vec![0; 2 * sp]);
        let auto_pad = AutoPad::read(&mut a)?;
        let ceil_mode = a.int("ceil_mode", 0)? != 0;
        let count_include_pad = if max {
            false
        } else {
            a.int("count_include_pad", 0)? != 0
        };
        if max {
            let so = a.int("storage_order", 0)?;
            if so != 0 {
                return Err(a.bad("storage_order", format!("unsupported value {so}")));
            }
            if spec.num_outputs > 1 {
                return Err(NnError::op("the Indices output is unsupported")
                    .with_node(&spec.name, &spec.op_type));
            }
        }
        a.finish()?;
        Ok(Box::new(Pool {
            act: Activation::None,
            max,
            kernel,
            strides,
            dilations,
            pads,
            auto_pad,
            ceil_mode,
            count_include_pad,
        }))
    }

    fn geom(&self, x: &[usize]) -> Result<(Pool2dGeom, usize, usize), NnError> {
        let sp = self.kernel.len();
        if x.len() != sp + 2 {
            return Err(NnError::op(format!(
                "input {x:?} does not have {sp} spatial dims"
            )));
        }
        let (h, w) = if sp == 2 { (x[2], x[3]) } else { (1, x[2]) };
        let idx = |i: usize| if sp == 2 { i } else { 1 };
        let mut k = [1usize; 2];
        let mut st = [1usize; 2];
        let mut dl = [1usize; 2];
        let mut pb = [0usize; 2];
        let mut pe = [0usize; 2];
        let ins = [h, w];
        for i in 0..sp {
            let j = idx(i);
            k[j] = self.kernel[i];
            st[j] = self.strides[i];
            dl[j] = self.dilations[i];
            let (b, e) = self.auto_pad.pads(
                ins[j],
                k[j],
                st[j],
                dl[j],
                (self.pads[i], self.pads[i + sp]),
            );
            pb[j] = b;
            pe[j] = e;
        }
        let g = Pool2dGeom {
            kh: k[0],
            kw: k[1],
            stride_h: st[0],
            stride_w: st[1],
            dil_h: dl[0],
            dil_w: dl[1],
            pad_top: pb[0],
            pad_left: pb[1],
            pad_bottom: pe[0],
            pad_right: pe[1],
            ceil_mode: self.ceil_mode,
            count_include_pad: self.count_include_pad,
        };
        Ok((g, h, w))
    }
}

impl Pool {
    /// A copy that applies `act` to its output (a following Relu/Clip fused in), or
    /// `None` if this pool already has an activation.
    pub fn with_activation(&self, act: Activation) -> Option<Pool> {
        (self.act == Activation::None).then(|| Pool {
            act,
            ..self.clone()
        })
    }
}

impl Op for Pool {
    fn name(&self) -> &'static str {
        if self.max {
            "MaxPool"
        } else {
            "AveragePool"
        }
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn infer(&self, inputs: &InputFacts<'_>) -> Result<Vec<Fact>, NnError> {
        let x = inputs.get(0)?;
        want_f32(x, "input")?;
        let sp = self.kernel.len();
        if x.shape.len() != sp + 2 {
            return Err(NnError::op(format!(
                "input {} does not have {sp} spatial dims",
                crate::op::fmt_dims(&x.shape)
            )));
        }
        let mut out = x.shape[..2].to_vec();
        match x.shape[2..]
            .iter()
            .map(|d| d.fixed())
            .collect::<Option<Vec<usize>>>()
        {
            Some(rest) => {
                let mut full = vec![1, 1];
                full.extend(rest);
                let (g, h, w) = self.geom(&full)?;
                let (oh, ow) = g.out_hw(h, w).map_err(|e| NnError::op(e.to_string()))?;
                if sp == 2 {
                    out.push(Dim::Fixed(oh));
                }
                out.push(Dim::Fixed(ow));
            }
            None => out.extend(std::iter::repeat_n(Dim::unknown(), sp)),
        }
        Ok(vec![Fact::new(DType::F32, out)])
    }
    fn eval(&self, inputs: &Inputs<'_>, _s: &mut Scratch) -> Result<Vec<Tensor>, NnError> {
        let x = inputs.get(0)?;
        let xs = x.shape();
        let (g, h, w) = self.geom(xs)?;
        let (oh, ow) = g
            .out_hw(h, w)
            .map_err(|e| NnError::op(format!("input {xs:?}: {e}")))?;
        let (n, c) = (xs[0], xs[1]);
        // Every output element is written by the kernels (their tests start from NaN).
        let mut out = crate::buffers::take_overwrite(n * c * oh * ow);
        let r = if self.max {
            kernels::max_pool2d(&g, x.f32s()?, n, c, h, w, &mut out)
        } else {
            kernels::avg_pool2d(&g, x.f32s()?, n, c, h, w, &mut out)
        };
        r.map_err(|e| NnError::op(format!("input {xs:?}: {e}")))?;
        if self.act != Activation::None {
            kernels::apply_activation(self.act, &mut out);
        }
        let mut os = vec![n, c];
        if self.kernel.len() == 2 {
            os.push(oh);
        }
        os.push(ow);
        Ok(vec![Tensor::from_f32(os, out)?])
    }
}

/// `GlobalAveragePool` / `GlobalMaxPool` over all spatial dims (any count >= 1).
#[derive(Clone, Debug)]
pub struct GlobalPool {
    /// True for GlobalMaxPool.
    pub max: bool,
}

impl GlobalPool {
    /// Builds from a node.
    pub fn from_spec(spec: &NodeSpec) -> Result<Box<dyn Op>, NnError> {
        Attrs::new(spec).finish()?;
        Ok(Box::new(GlobalPool {
            max: spec.op_type == "GlobalMaxPool",
        }))
    }
}

impl Op for GlobalPool {
    fn name(&self) -> &'static str {
        if self.max {
            "GlobalMaxPool"
        } else {
            "GlobalAveragePool"
        }
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn infer(&self, inputs: &InputFacts<'_>) -> Result<Vec<Fact>, NnError> {
        let x = inputs.get(0)?;
        want_f32(x, "input")?;
        if x.shape.len() < 3 {
            return Err(NnError::op(format!(
                "input {} must have spatial dims",
                crate::op::fmt_dims(&x.shape)
            )));
        }
        let mut out = x.shape[..2].to_vec();
        out.extend(std::iter::repeat_n(Dim::Fixed(1), x.shape.len() - 2));
        Ok(vec![Fact::new(DType::F32, out)])
    }
    fn eval(&self, inputs: &Inputs<'_>, _s: &mut Scratch) -> Result<Vec<Tensor>, NnError> {
        let x = inputs.get(0)?;
        let xs = x.shape();
        if xs.len() < 3 {
            return Err(NnError::op(format!("input {xs:?} must have spatial dims")));
        }
        let (n, c) = (xs[0], xs[1]);
        let hw: usize = xs[2..].iter().product();
        let mut out = vec![0.0f32; n * c];
        let r = if self.max {
            kernels::global_max_pool(x.f32s()?, n, c, hw, &mut out)
        } else {
            kernels::global_avg_pool(x.f32s()?, n, c, hw, &mut out)
        };
        r.map_err(|e| NnError::op(format!("input {xs:?}: {e}")))?;
        let mut os = vec![n, c];
        os.extend(std::iter::repeat_n(1, xs.len() - 2));
        Ok(vec![Tensor::from_f32(os, out)?])
    }
}
