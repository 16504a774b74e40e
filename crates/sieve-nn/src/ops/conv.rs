//! `Conv`: 1-D and 2-D convolution, grouped and depthwise, with an optional fused
//! activation (set by the fusion pass) and bound weights (set by the weight-binding
//! pass so that weights can be inspected and replaced through [`crate::Weights`]).
//!
//! Spec: <https://onnx.ai/onnx/operators/onnx__Conv.html>. Opsets 1..=22.
//! Attributes: `kernel_shape` (checked against W), `strides`, `dilations`, `pads`,
//! `auto_pad` (`NOTSET`, `SAME_UPPER`, `SAME_LOWER`, `VALID`), `group`. 3-D
//! convolution is rejected.

use crate::kernels::{self, Activation, Conv2dGeom};
use crate::op::{want_f32, Attrs, Dim, Fact, InputFacts, Inputs, NodeSpec, Op, Scratch};
use crate::{DType, NnError, Tensor, Weights};
use std::any::Any;
use std::sync::Arc;

/// ONNX `auto_pad`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoPad {
    /// Explicit `pads`.
    NotSet,
    /// Pad so that `out = ceil(in / stride)`, extra padding at the end.
    SameUpper,
    /// Same, extra padding at the start.
    SameLower,
    /// No padding.
    Valid,
}

impl AutoPad {
    /// Parses the attribute of `a`.
    pub fn read(a: &mut Attrs<'_>) -> Result<AutoPad, NnError> {
        match a.string("auto_pad")?.as_deref() {
            None | Some("NOTSET") => Ok(AutoPad::NotSet),
            Some("SAME_UPPER") => Ok(AutoPad::SameUpper),
            Some("SAME_LOWER") => Ok(AutoPad::SameLower),
            Some("VALID") => Ok(AutoPad::Valid),
            Some(o) => Err(a.bad("auto_pad", format!("unsupported value '{o}'"))),
        }
    }

    /// (begin, end) pads of one spatial axis for input size `input`, kernel `k`,
    /// `stride` and `dil`, given explicit `(begin, end)` for `NotSet`.
    pub fn pads(
        self,
        input: usize,
        k: usize,
        stride: usize,
        dil: usize,
        explicit: (usize, usize),
    ) -> (usize, usize) {
        match self {
            AutoPad::NotSet => explicit,
            AutoPad::Valid => (0, 0),
            AutoPad::SameUpper | AutoPad::SameLower => {
                let out = input.div_ceil(stride.max(1));
                let extent = dil * (k.max(1) - 1) + 1;
                let total = ((out.max(1) - 1) * stride + extent).saturating_sub(input);
                let small = total / 2;
                if self == AutoPad::SameUpper {
                    (small, total - small)
                } else {
                    (total - small, small)
                }
            }
        }
    }
}

/// Reads a per-spatial-axis list attribute (`strides`, `dilations`) with default 1.
pub(crate) fn spatial_list(
    a: &mut Attrs<'_>,
    name: &str,
    rank: usize,
) -> Result<Option<Vec<usize>>, NnError> {
    match a.ints(name)? {
        None => Ok(None),
        Some(v) => {
            if rank != 0 && v.len() != rank {
                return Err(a.bad(name, format!("expected {rank} values, got {v:?}")));
            }
            v.iter()
                .map(|&x| {
                    usize::try_from(x).map_err(|_| a.bad(name, format!("negative value in {v:?}")))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some)
        }
    }
}

/// Convolution attributes independent of the input size.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvAttrs {
    /// `kernel_shape` if given.
    pub kernel: Option<Vec<usize>>,
    /// Strides per spatial axis (empty = all 1).
    pub strides: Vec<usize>,
    /// Dilations per spatial axis (empty = all 1).
    pub dilations: Vec<usize>,
    /// Explicit pads `[b0, b1, e0, e1]` (empty = 0).
    pub pads: Vec<usize>,
    /// `auto_pad`.
    pub auto_pad: AutoPad,
    /// `group`.
    pub group: usize,
}

/// `Conv` with optional bound weights and fused activation.
#[derive(Clone, Debug)]
pub struct Conv {
    /// Attributes.
    pub attrs: ConvAttrs,
    /// Weights OIHW (or OIW), when bound at load time; else taken from input 1.
    pub weights: Option<Weights>,
    /// Bias `[O]`, when bound; else taken from input 2.
    pub bias: Option<Tensor>,
    /// Fused activation.
    pub act: Activation,
    /// The bound dense weights packed for the GEMM kernel, built on first use (shared by
    /// clones that keep the same weights; [`Conv::bound`] starts a new one).
    pub pack: Arc<kernels::ConvPack>,
}

impl Conv {
    /// Builds from a node.
    pub fn from_spec(spec: &NodeSpec) -> Result<Box<dyn Op>, NnError> {
        let mut a = Attrs::new(spec);
        let kernel = spatial_list(&mut a, "kernel_shape", 0)?;
        let strides = spatial_list(&mut a, "strides", 0)?.unwrap_or_default();
        let dilations = spatial_list(&mut a, "dilations", 0)?.unwrap_or_default();
        let pads = spatial_list(&mut a, "pads", 0)?.unwrap_or_default();
        let auto_pad = AutoPad::read(&mut a)?;
        let group = a.int("group", 1)?;
        if group < 1 {
            return Err(a.bad("group", format!("must be >= 1, got {group}")));
        }
        if let Some(k) = &kernel {
            if k.len() > 2 || k.is_empty() {
                return Err(a.bad(
                    "kernel_shape",
                    format!("only 1-D and 2-D convolution is supported, got {k:?}"),
                ));
            }
        }
        a.finish()?;
        Ok(Box::new(Conv {
            attrs: ConvAttrs {
                kernel,
                strides,
                dilations,
                pads,
                auto_pad,
                group: group as usize,
            },
            weights: None,
            bias: None,
            act: Activation::None,
            pack: Arc::default(),
        }))
    }

    /// Geometry for input `[n, c, (h,) w]` and weights of shape `wshape`; returns the
    /// kernel geometry, `(h, w)` and the output spatial shape (as in the input rank).
    fn geom(&self, x: &[usize], wshape: &[usize]) -> Result<(Conv2dGeom, usize, usize), NnError> {
        let sp = x
            .len()
            .checked_sub(2)
            .filter(|&s| s == 1 || s == 2)
            .ok_or_else(|| {
                NnError::op(format!(
                    "input {x:?} must be 3-D or 4-D (1-D or 2-D convolution)"
                ))
            })?;
        if wshape.len() != x.len() {
            return Err(NnError::op(format!(
                "weights {wshape:?} do not match input {x:?}"
            )));
        }
        if let Some(k) = &self.attrs.kernel {
            if k[..] != wshape[2..] {
                return Err(NnError::op(format!(
                    "kernel_shape {k:?} does not match weights {wshape:?}"
                )));
            }
        }
        let at = &self.attrs;
        let get = |v: &Vec<usize>, i: usize, d: usize| -> Result<usize, NnError> {
            if v.is_empty() {
                Ok(d)
            } else if v.len() == sp || (v.len() == 2 * sp && d == 0) {
                Ok(v[i])
            } else {
                Err(NnError::op(format!(
                    "attribute {v:?} does not match {sp} spatial dims"
                )))
            }
        };
        // Map 1-D to 2-D with h = 1.
        let (h, w, kh, kw) = if sp == 2 {
            (x[2], x[3], wshape[2], wshape[3])
        } else {
            (1, x[2], 1, wshape[2])
        };
        let axes: Vec<usize> = (0..sp).collect();
        let mut st = [1usize; 2];
        let mut dl = [1usize; 2];
        let mut pb = [0usize; 2];
        let mut pe = [0usize; 2];
        let inputs = if sp == 2 { [h, w] } else { [1, w] };
        let ks = if sp == 2 { [kh, kw] } else { [1, kw] };
        for &i in &axes {
            let j = if sp == 2 { i } else { 1 };
            st[j] = get(&at.strides, i, 1)?;
            dl[j] = get(&at.dilations, i, 1)?;
            let explicit = (get(&at.pads, i, 0)?, get(&at.pads, i + sp, 0)?);
            let (b, e) = at.auto_pad.pads(inputs[j], ks[j], st[j], dl[j], explicit);
            pb[j] = b;
            pe[j] = e;
        }
        let c_in = x[1];
        let g = Conv2dGeom {
            c_in,
            c_out: wshape[0],
            kh,
            kw,
            stride_h: st[0],
            stride_w: st[1],
            dil_h: dl[0],
            dil_w: dl[1],
            pad_top: pb[0],
            pad_left: pb[1],
            pad_bottom: pe[0],
            pad_right: pe[1],
            groups: at.group,
        };
        if wshape[1] * at.group != c_in {
            return Err(NnError::op(format!(
                "input {x:?} has {c_in} channels but weights {wshape:?} with group {} expect {}",
                at.group,
                wshape[1] * at.group
            )));
        }
        Ok((g, h, w))
    }

    /// A copy with bound weights and bias.
    pub fn bound(&self, weights: Weights, bias: Option<Tensor>) -> Conv {
        Conv {
            weights: Some(weights),
            bias,
            pack: Arc::default(),
            ..self.clone()
        }
    }

    /// This layer (a 1x1 "expand" convolution) and `dw`, the depthwise convolution that
    /// is the only reader of its output, run as one fused kernel on input `x`
    /// ([`kernels::conv1x1_depthwise`]), followed in the same kernel by `project` (a 1x1
    /// convolution, the only reader of `dw`'s output) if given and its shapes allow:
    /// `Some((output, project_fused))` — the output of `project` if `project_fused`, else
    /// of `dw` — or `None` when the pair does not take the fused kernel (weights not bound
    /// and dense, other shapes, ...), in which case the caller runs the layers as usual.
    pub fn eval_with_depthwise(
        &self,
        dw: &Conv,
        project: Option<&Conv>,
        x: &Tensor,
    ) -> Result<Option<(Tensor, bool)>, NnError> {
        let (Some(Weights::Dense(w1)), Some(Weights::Dense(w2))) = (&self.weights, &dw.weights)
        else {
            return Ok(None);
        };
        let xs = x.shape();
        if xs.len() != 4 || w1.shape().len() != 4 || w2.shape().len() != 4 {
            return Ok(None);
        }
        let (g1, h, w) = self.geom(xs, w1.shape())?;
        let mid = [xs[0], g1.c_out, h, w];
        let (g2, _, _) = dw.geom(&mid, w2.shape())?;
        let (oh, ow) = g2
            .out_hw(h, w)
            .map_err(|e| NnError::op(format!("input {mid:?}: {e}")))?;
        // Decided before taking an output buffer: a pair that does not fuse costs nothing.
        if !kernels::conv1x1_depthwise_fuses(&g1, &g2, h, w) {
            return Ok(None);
        }
        let n = xs[0];
        // The project layer joins when its weights are bound and dense and its shape fits.
        let dw_out = [n, g2.c_out, oh, ow];
        let project = match project {
            Some(p) => match &p.weights {
                Some(Weights::Dense(w3)) if w3.shape().len() == 4 => {
                    let (g3, _, _) = p.geom(&dw_out, w3.shape())?;
                    kernels::conv1x1_depthwise_project_fuses(&g2, &g3).then_some((p, w3, g3))
                }
                _ => None,
            },
            None => None,
        };
        let c_out = project.as_ref().map_or(g2.c_out, |(_, _, g3)| g3.c_out);
        let mut out = crate::buffers::take_overwrite(n * c_out * oh * ow);
        let b1 = self.bias.as_ref().map(|b| b.f32s()).transpose()?;
        let b2 = dw.bias.as_ref().map(|b| b.f32s()).transpose()?;
        let layer3 = match &project {
            Some((p, w3, g3)) => Some((
                kernels::ConvLayer {
                    geom: g3,
                    weights: w3.f32s()?,
                    bias: p.bias.as_ref().map(|b| b.f32s()).transpose()?,
                    act: p.act,
                },
                &*p.pack,
            )),
            None => None,
        };
        let done = kernels::conv1x1_depthwise(
            kernels::ConvLayer {
                geom: &g1,
                weights: w1.f32s()?,
                bias: b1,
                act: self.act,
            },
            &self.pack,
            kernels::ConvLayer {
                geom: &g2,
                weights: w2.f32s()?,
                bias: b2,
                act: dw.act,
            },
            layer3,
            x.f32s()?,
            (n, h, w),
            &mut out,
        )
        .map_err(|e| NnError::op(format!("input {xs:?}, fused with the depthwise layer: {e}")))?;
        if !done {
            crate::buffers::recycle(out);
            return Ok(None);
        }
        let fused3 = project.is_some();
        Ok(Some((
            Tensor::from_f32(vec![n, c_out, oh, ow], out)?,
            fused3,
        )))
    }

    fn wshape<'a>(&'a self, inputs_w: Option<&'a [usize]>) -> Result<&'a [usize], NnError> {
        match &self.weights {
            Some(w) => Ok(w.shape()),
            None => inputs_w.ok_or_else(|| NnError::op("missing weights input")),
        }
    }
}

impl Op for Conv {
    fn name(&self) -> &'static str {
        "Conv"
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
        let x = inputs.get(0)?;
        want_f32(x, "input")?;
        let wshape: Vec<usize> = match &self.weights {
            Some(w) => w.shape().to_vec(),
            None => inputs
                .get(1)?
                .fixed_shape()
                .ok_or_else(|| NnError::op("weights must have a fixed shape"))?,
        };
        if x.shape.len() != wshape.len() || !(3..=4).contains(&x.shape.len()) {
            return Err(NnError::op(format!(
                "input {} and weights {wshape:?} must both be 3-D or 4-D",
                crate::op::fmt_dims(&x.shape)
            )));
        }
        let mut out = vec![x.shape[0].clone(), Dim::Fixed(wshape[0])];
        match x.shape[1..]
            .iter()
            .map(|d| d.fixed())
            .collect::<Option<Vec<usize>>>()
        {
            Some(rest) => {
                let mut full = vec![1usize];
                full.extend(rest);
                let (g, h, w) = self.geom(&full, &wshape)?;
                let (oh, ow) = g.out_hw(h, w).map_err(|e| NnError::op(e.to_string()))?;
                if full.len() == 4 {
                    out.push(Dim::Fixed(oh));
                }
                out.push(Dim::Fixed(ow));
            }
            None => out.extend(std::iter::repeat_n(Dim::unknown(), x.shape.len() - 2)),
        }
        if let Some(b) = self.bias.as_ref().map(|b| b.len()).or_else(|| {
            inputs
                .opt(2)
                .and_then(|f| f.fixed_shape())
                .map(|s| s.iter().product())
        }) {
            if b != wshape[0] {
                return Err(NnError::op(format!(
                    "bias has {b} elements, expected {}",
                    wshape[0]
                )));
            }
        }
        Ok(vec![Fact::new(DType::F32, out)])
    }

    fn eval(&self, inputs: &Inputs<'_>, scratch: &mut Scratch) -> Result<Vec<Tensor>, NnError> {
        let x = inputs.get(0)?;
        let xs = x.shape();
        let wt = if self.weights.is_none() {
            Some(inputs.get(1)?)
        } else {
            None
        };
        let wshape = self.wshape(wt.map(|t| t.shape()))?.to_vec();
        let (g, h, w) = self.geom(xs, &wshape)?;
        let (oh, ow) = g
            .out_hw(h, w)
            .map_err(|e| NnError::op(format!("input {xs:?}: {e}")))?;
        let n = xs[0];
        // Every output element is written by the kernels (their tests start from NaN).
        let mut out = crate::buffers::take_overwrite(n * g.c_out * oh * ow);
        let bias_t = match &self.bias {
            Some(b) => Some(b),
            None if self.weights.is_none() => inputs.opt(2),
            None => None,
        };
        let bias = bias_t.map(|b| b.f32s()).transpose()?;
        let Scratch { buf, .. } = scratch;
        // Bit-packed weights decode inside the kernel (straight into its packed layout
        // where it packs); other encoded weights into the thread's shared buffer.
        let wview;
        let decoder;
        let wdata = match (&self.weights, wt) {
            (Some(wv), _) => match wv.range_decoder()? {
                Some(d) => {
                    decoder = d;
                    kernels::ConvWeights::Packed(&decoder)
                }
                None => {
                    wview = wv.decoded()?;
                    kernels::ConvWeights::F32(&wview)
                }
            },
            (None, Some(t)) => kernels::ConvWeights::F32(t.f32s()?),
            (None, None) => return Err(NnError::op("missing weights")),
        };
        // Only dense bound weights are the same on every run; decoded ones pack per call.
        let pack = match &self.weights {
            Some(Weights::Dense(_)) => Some(&*self.pack),
            _ => None,
        };
        kernels::conv2d_weights(
            &g,
            x.f32s()?,
            n,
            h,
            w,
            wdata,
            bias,
            self.act,
            &mut out,
            buf,
            pack,
        )
        .map_err(|e| NnError::op(format!("input {xs:?}, weights {wshape:?}: {e}")))?;
        let mut oshape = vec![n, g.c_out];
        if xs.len() == 4 {
            oshape.push(oh);
        }
        oshape.push(ow);
        Ok(vec![Tensor::from_f32(oshape, out)?])
    }
}
