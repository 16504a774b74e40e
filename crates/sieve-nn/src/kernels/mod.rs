//! CPU kernels: convolution, pooling, LRN, GEMM and activations on plain `f32` slices.
//!
//! Every kernel takes its tensors as flat row-major slices (NCHW for images, OIHW for
//! convolution weights) plus the dimensions, checks every length at entry and returns a
//! [`KernelError`] naming the operand and the numbers involved instead of indexing out of
//! bounds. The im2col buffers of [`conv2d`] live in the caller-owned `scratch`, which
//! grows to the largest layer and is then reused; depthwise convolution and pooling
//! reuse per-thread buffers; the `gemm` crate manages its own packing memory.
//!
//! The plain, obviously-correct versions live in [`reference`]; the public entry points
//! here dispatch to faster variants (GEMM-based convolution, a depthwise kernel, a
//! matrix-vector path) that are tested against the reference with proptest.
//! CPU features (AVX2/FMA, AVX-512) are detected at run time, once ([`simd::level`]);
//! parallel paths use the global rayon pool, so the thread count is whatever the caller
//! configured there. Problems below about a million multiply-adds stay on the calling
//! thread. `docs/KERNELS.md` has the design notes and measured throughput.

mod conv;
pub use conv::{buffer_bytes as conv_buffer_bytes, ConvPack, ConvWeights};
mod depthwise;
mod direct;
#[cfg(target_arch = "x86_64")]
mod fused;
mod matmul;
pub mod packed;
#[cfg(target_arch = "x86_64")]
mod pixmajor;
mod pool;
pub mod reference;
#[cfg(target_arch = "x86_64")]
mod sgemm;
pub mod simd;
mod stencil;
mod stencil_simd;
#[cfg(target_arch = "x86_64")]
mod stride2;
#[cfg(target_arch = "x86_64")]
mod winograd;

use thiserror::Error;

/// Errors reported by the kernels; each names the operand and the sizes involved.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KernelError {
    /// A slice does not have the length its dimensions require.
    #[error("{op}: `{operand}` has {actual} elements, expected {expected}")]
    BadLength {
        /// Kernel name, e.g. `conv2d`.
        op: &'static str,
        /// Operand name, e.g. `weights`.
        operand: &'static str,
        /// Length implied by the dimensions.
        expected: usize,
        /// Length of the slice passed in.
        actual: usize,
    },
    /// The geometry is invalid (zero stride, groups not dividing channels, ...).
    #[error("{op}: invalid geometry: {reason}")]
    BadGeometry {
        /// Kernel name.
        op: &'static str,
        /// What is wrong, with the numbers involved.
        reason: String,
    },
    /// The (dilated) window is larger than the padded input, so there is no output.
    #[error(
        "{op}: window extent {extent} exceeds padded input size {padded} (input {input}) along {axis}"
    )]
    WindowTooLarge {
        /// Kernel name.
        op: &'static str,
        /// `"height"` or `"width"`.
        axis: &'static str,
        /// `dilation * (kernel - 1) + 1`.
        extent: usize,
        /// Input size along the axis.
        input: usize,
        /// Input size plus both pads.
        padded: usize,
    },
    /// A size computation overflowed `usize`.
    #[error("{op}: size overflow computing `{what}`")]
    Overflow {
        /// Kernel name.
        op: &'static str,
        /// The quantity being computed.
        what: &'static str,
    },
}

/// Element-wise activation fused into a kernel's epilogue.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    /// Identity.
    None,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, min), max)` (ONNX `Clip`, e.g. ReLU6 with `min = 0, max = 6`).
    Clip {
        /// Lower bound.
        min: f32,
        /// Upper bound.
        max: f32,
    },
}

impl Activation {
    /// Applies the activation to one value. `Relu` and `Clip` map NaN to the lower
    /// bound's side exactly like `f32::max` does (NaN in, bound out).
    #[inline(always)]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::None => x,
            Activation::Relu => x.max(0.0),
            Activation::Clip { min, max } => x.max(min).min(max),
        }
    }
}

/// Applies `act` in place to every element of `data`.
pub fn apply_activation(act: Activation, data: &mut [f32]) {
    match act {
        Activation::None => {}
        Activation::Relu => data.iter_mut().for_each(|x| *x = x.max(0.0)),
        Activation::Clip { min, max } => data.iter_mut().for_each(|x| *x = x.max(min).min(max)),
    }
}

/// Geometry of a 2-D convolution (ONNX `Conv` attributes, explicit pads).
///
/// Input is NCHW `[n, c_in, h, w]`, weights OIHW `[c_out, c_in / groups, kh, kw]`,
/// output NCHW `[n, c_out, oh, ow]` with `oh = (h + pad_top + pad_bottom - dil_h*(kh-1) - 1) / stride_h + 1`
/// (and likewise for the width).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Conv2dGeom {
    /// Input channels (all groups).
    pub c_in: usize,
    /// Output channels (all groups).
    pub c_out: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Vertical stride (>= 1).
    pub stride_h: usize,
    /// Horizontal stride (>= 1).
    pub stride_w: usize,
    /// Vertical dilation (>= 1).
    pub dil_h: usize,
    /// Horizontal dilation (>= 1).
    pub dil_w: usize,
    /// Zero rows added above.
    pub pad_top: usize,
    /// Zero columns added on the left.
    pub pad_left: usize,
    /// Zero rows added below.
    pub pad_bottom: usize,
    /// Zero columns added on the right.
    pub pad_right: usize,
    /// Number of groups (>= 1, divides `c_in` and `c_out`); `groups == c_in == c_out` is depthwise.
    pub groups: usize,
}

impl Conv2dGeom {
    /// Checks strides, dilations, kernel sizes (>= 1) and that `groups` (>= 1) divides
    /// both `c_in` and `c_out`.
    pub fn validate(&self) -> Result<(), KernelError> {
        let bad = |reason: String| {
            Err(KernelError::BadGeometry {
                op: "conv2d",
                reason,
            })
        };
        if self.stride_h == 0 || self.stride_w == 0 {
            return bad(format!(
                "strides must be >= 1, got {}x{}",
                self.stride_h, self.stride_w
            ));
        }
        if self.dil_h == 0 || self.dil_w == 0 {
            return bad(format!(
                "dilations must be >= 1, got {}x{}",
                self.dil_h, self.dil_w
            ));
        }
        if self.kh == 0 || self.kw == 0 {
            return bad(format!(
                "kernel must be at least 1x1, got {}x{}",
                self.kh, self.kw
            ));
        }
        if self.groups == 0
            || !self.c_in.is_multiple_of(self.groups)
            || !self.c_out.is_multiple_of(self.groups)
        {
            return bad(format!(
                "groups {} must be >= 1 and divide c_in {} and c_out {}",
                self.groups, self.c_in, self.c_out
            ));
        }
        Ok(())
    }

    /// Output `(oh, ow)` for an `h x w` input. Validates the geometry and fails if the
    /// dilated kernel does not fit in the padded input.
    pub fn out_hw(&self, h: usize, w: usize) -> Result<(usize, usize), KernelError> {
        self.validate()?;
        let oh = conv_out_dim(
            "conv2d",
            "height",
            h,
            self.kh,
            self.stride_h,
            self.dil_h,
            self.pad_top,
            self.pad_bottom,
        )?;
        let ow = conv_out_dim(
            "conv2d",
            "width",
            w,
            self.kw,
            self.stride_w,
            self.dil_w,
            self.pad_left,
            self.pad_right,
        )?;
        Ok((oh, ow))
    }

    /// A 1x1 stride-1 unpadded convolution: each output pixel reads only the same input
    /// pixel, so the input planes are the GEMM operand as they are.
    pub fn is_pointwise(&self) -> bool {
        self.kh == 1
            && self.kw == 1
            && self.stride_h == 1
            && self.stride_w == 1
            && self.pad_top + self.pad_left + self.pad_bottom + self.pad_right == 0
    }

    /// Input channels per group.
    pub fn c_in_per_group(&self) -> usize {
        self.c_in / self.groups.max(1)
    }

    /// Output channels per group.
    pub fn c_out_per_group(&self) -> usize {
        self.c_out / self.groups.max(1)
    }

    /// Number of weight elements, `c_out * (c_in / groups) * kh * kw`.
    pub fn weight_len(&self) -> Result<usize, KernelError> {
        checked_product(
            "conv2d",
            "weights",
            &[self.c_out, self.c_in_per_group(), self.kh, self.kw],
        )
    }
}

/// Geometry of a 2-D pooling window (ONNX `MaxPool` / `AveragePool` attributes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pool2dGeom {
    /// Window height (>= 1).
    pub kh: usize,
    /// Window width (>= 1).
    pub kw: usize,
    /// Vertical stride (>= 1).
    pub stride_h: usize,
    /// Horizontal stride (>= 1).
    pub stride_w: usize,
    /// Vertical dilation (>= 1).
    pub dil_h: usize,
    /// Horizontal dilation (>= 1).
    pub dil_w: usize,
    /// Padding rows above.
    pub pad_top: usize,
    /// Padding columns on the left.
    pub pad_left: usize,
    /// Padding rows below.
    pub pad_bottom: usize,
    /// Padding columns on the right.
    pub pad_right: usize,
    /// ONNX `ceil_mode`: round the output size up; the last window must still start
    /// inside the input or the left/top padding.
    pub ceil_mode: bool,
    /// ONNX `count_include_pad` (average pooling only): explicit pads count in the
    /// divisor; the extra overhang created by `ceil_mode` never does.
    pub count_include_pad: bool,
}

impl Pool2dGeom {
    /// Checks that window, strides and dilations are >= 1.
    pub fn validate(&self) -> Result<(), KernelError> {
        if self.kh == 0 || self.kw == 0 || self.stride_h == 0 || self.stride_w == 0 {
            return Err(KernelError::BadGeometry {
                op: "pool2d",
                reason: format!(
                    "window {}x{} and strides {}x{} must be >= 1",
                    self.kh, self.kw, self.stride_h, self.stride_w
                ),
            });
        }
        if self.dil_h == 0 || self.dil_w == 0 {
            return Err(KernelError::BadGeometry {
                op: "pool2d",
                reason: format!("dilations must be >= 1, got {}x{}", self.dil_h, self.dil_w),
            });
        }
        Ok(())
    }

    /// Output `(oh, ow)` under the ONNX rules, including `ceil_mode`.
    pub fn out_hw(&self, h: usize, w: usize) -> Result<(usize, usize), KernelError> {
        self.validate()?;
        let oh = pool_out_dim(
            "height",
            h,
            self.kh,
            self.stride_h,
            self.dil_h,
            self.pad_top,
            self.pad_bottom,
            self.ceil_mode,
        )?;
        let ow = pool_out_dim(
            "width",
            w,
            self.kw,
            self.stride_w,
            self.dil_w,
            self.pad_left,
            self.pad_right,
            self.ceil_mode,
        )?;
        Ok((oh, ow))
    }
}

#[allow(clippy::too_many_arguments)]
fn conv_out_dim(
    op: &'static str,
    axis: &'static str,
    input: usize,
    k: usize,
    stride: usize,
    dil: usize,
    pad_a: usize,
    pad_b: usize,
) -> Result<usize, KernelError> {
    let extent = dil
        .checked_mul(k - 1)
        .and_then(|e| e.checked_add(1))
        .ok_or(KernelError::Overflow {
            op,
            what: "window extent",
        })?;
    let padded = input
        .checked_add(pad_a)
        .and_then(|p| p.checked_add(pad_b))
        .ok_or(KernelError::Overflow {
            op,
            what: "padded size",
        })?;
    if extent > padded {
        return Err(KernelError::WindowTooLarge {
            op,
            axis,
            extent,
            input,
            padded,
        });
    }
    Ok((padded - extent) / stride + 1)
}

#[allow(clippy::too_many_arguments)]
fn pool_out_dim(
    axis: &'static str,
    input: usize,
    k: usize,
    stride: usize,
    dil: usize,
    pad_a: usize,
    pad_b: usize,
    ceil_mode: bool,
) -> Result<usize, KernelError> {
    let floor = conv_out_dim("pool2d", axis, input, k, stride, dil, pad_a, pad_b)?;
    if !ceil_mode {
        return Ok(floor);
    }
    let extent = dil * (k - 1) + 1;
    let span = input + pad_a + pad_b - extent;
    let mut out = span.div_ceil(stride) + 1;
    // The last window must start inside the input or the leading padding.
    if (out - 1) * stride >= input + pad_a {
        out -= 1;
    }
    Ok(out.max(floor))
}

/// Product of `dims`, or an overflow error naming `what`.
pub(crate) fn checked_product(
    op: &'static str,
    what: &'static str,
    dims: &[usize],
) -> Result<usize, KernelError> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or(KernelError::Overflow { op, what })
}

/// Fails with [`KernelError::BadLength`] unless `actual == expected`.
pub(crate) fn check_len(
    op: &'static str,
    operand: &'static str,
    expected: usize,
    actual: usize,
) -> Result<(), KernelError> {
    if expected == actual {
        Ok(())
    } else {
        Err(KernelError::BadLength {
            op,
            operand,
            expected,
            actual,
        })
    }
}

/// 2-D convolution with optional bias and a fused activation.
///
/// * `input`: NCHW `[n, g.c_in, h, w]`;
/// * `weights`: OIHW `[g.c_out, g.c_in / g.groups, g.kh, g.kw]`;
/// * `bias`: `[g.c_out]` if present;
/// * `out`: NCHW `[n, g.c_out, oh, ow]` with `(oh, ow) = g.out_hw(h, w)`; fully overwritten.
///
/// `scratch` is a caller-owned buffer reused across calls (im2col columns); its contents
/// on entry are ignored and on exit unspecified. Weights are taken at run time, so a
/// caller may decode compressed weights into a buffer right before; the GEMM path then
/// packs them per call. A caller with fixed weights passes a [`ConvPack`] it keeps, and
/// the packed copy is built on the first run that needs it and reused after.
#[allow(clippy::too_many_arguments)]
pub fn conv2d(
    g: &Conv2dGeom,
    input: &[f32],
    n: usize,
    h: usize,
    w: usize,
    weights: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    out: &mut [f32],
    scratch: &mut Vec<f32>,
    pack: Option<&ConvPack>,
) -> Result<(), KernelError> {
    conv2d_weights(
        g,
        input,
        n,
        h,
        w,
        ConvWeights::F32(weights),
        bias,
        act,
        out,
        scratch,
        pack,
    )
}

/// [`conv2d`] with weights given as [`ConvWeights`]: bit-packed weights
/// ([`ConvWeights::Packed`]) are decoded panel by panel straight into the packed GEMM or
/// Winograd layout where those kernels run (no decoded copy of the whole layer), and
/// into a per-thread buffer on the other paths. Results are bit-identical to decoding
/// all weights first and calling [`conv2d`] without a [`ConvPack`].
#[allow(clippy::too_many_arguments)]
pub fn conv2d_weights(
    g: &Conv2dGeom,
    input: &[f32],
    n: usize,
    h: usize,
    w: usize,
    weights: ConvWeights<'_>,
    bias: Option<&[f32]>,
    act: Activation,
    out: &mut [f32],
    scratch: &mut Vec<f32>,
    pack: Option<&ConvPack>,
) -> Result<(), KernelError> {
    conv::conv2d(g, input, n, h, w, weights, bias, act, out, scratch, pack)
}

/// True if [`conv1x1_depthwise`] runs the fused kernel for this pair on `h x w` maps
/// (callers check it before preparing an output).
pub fn conv1x1_depthwise_fuses(expand: &Conv2dGeom, dw: &Conv2dGeom, h: usize, w: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        let on = *ENABLED.get_or_init(|| std::env::var("SIEVE_FUSE").map_or(true, |v| v != "0"));
        // `SIEVE_FUSE_MIN_MID=<floats>` moves the size threshold (for A/B measurements).
        static MIN_MID: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        let min_mid = *MIN_MID.get_or_init(|| {
            std::env::var("SIEVE_FUSE_MIN_MID")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(fused::MIN_MID_FLOATS)
        });
        on && fused::applies(expand, dw, h, w, min_mid)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (expand, dw, h, w);
        false
    }
}

/// One convolution layer's operands as the fused kernels take them: geometry, dense
/// OIHW weights, bias and fused activation.
#[derive(Clone, Copy, Debug)]
pub struct ConvLayer<'a> {
    /// Geometry.
    pub geom: &'a Conv2dGeom,
    /// Weights, OIHW.
    pub weights: &'a [f32],
    /// Bias `[c_out]`, if any.
    pub bias: Option<&'a [f32]>,
    /// Fused activation.
    pub act: Activation,
}

/// True if a 1x1 "project" convolution `project` can join a pair for which
/// [`conv1x1_depthwise_fuses`] holds ([`conv1x1_depthwise`] with a project layer).
pub fn conv1x1_depthwise_project_fuses(dw: &Conv2dGeom, project: &Conv2dGeom) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        let on =
            *ENABLED.get_or_init(|| std::env::var("SIEVE_FUSE_PROJECT").map_or(true, |v| v != "0"));
        on && fused::project_applies(project, dw.c_out)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (dw, project);
        false
    }
}

/// Fused pair: a dense 1x1 stride-1 convolution `expand` (packed-weight cache `pack1`)
/// followed by the 3x3 depthwise convolution `dw` that reads its output, on `n` images
/// of `expand.geom.c_in x h x w`, into `out` (`n x dw.geom.c_out x oh x ow`), without
/// materialising the intermediate tensor (`fused.rs`: bands of rows that stay in L2).
/// With `project` (a 1x1 convolution reading `dw`'s output, with its packed-weight
/// cache; checked with [`conv1x1_depthwise_project_fuses`]) the three layers run as one
/// and `out` is `n x project.geom.c_out x oh x ow`. Returns `Ok(false)` and leaves `out`
/// alone when the pair does not take the fused kernel (other shapes, an intermediate
/// tensor small enough to stay in cache anyway, no AVX-512, or `SIEVE_FUSE=0`); the
/// caller then runs the layers separately. The output equals the unfused one.
pub fn conv1x1_depthwise(
    expand: ConvLayer<'_>,
    pack1: &ConvPack,
    dw: ConvLayer<'_>,
    project: Option<(ConvLayer<'_>, &ConvPack)>,
    input: &[f32],
    (n, h, w): (usize, usize, usize),
    out: &mut [f32],
) -> Result<bool, KernelError> {
    #[cfg(target_arch = "x86_64")]
    {
        if !conv1x1_depthwise_fuses(expand.geom, dw.geom, h, w)
            || project
                .as_ref()
                .is_some_and(|(p, _)| !conv1x1_depthwise_project_fuses(dw.geom, p.geom))
        {
            return Ok(false);
        }
        let threads = rayon::current_num_threads();
        fused::expand_dw(expand, pack1, dw, project, input, (n, h, w), out, threads)?;
        Ok(true)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (expand, pack1, dw, project, input, n, h, w, out);
        Ok(false)
    }
}

/// Max pooling over NCHW `input` `[n, c, h, w]` into `out` `[n, c, oh, ow]`
/// (`(oh, ow) = g.out_hw(h, w)`). Padding never wins: only input elements are compared.
/// A window holding no input element (possible only with pads >= window or large
/// dilations) yields `f32::NEG_INFINITY`. NaN inputs propagate.
#[allow(clippy::too_many_arguments)]
pub fn max_pool2d(
    g: &Pool2dGeom,
    input: &[f32],
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    out: &mut [f32],
) -> Result<(), KernelError> {
    pool::max_pool2d(g, input, n, c, h, w, out)
}

/// Average pooling over NCHW `input` `[n, c, h, w]` into `out` `[n, c, oh, ow]`.
/// The divisor counts the window taps that fall inside the input, plus (when
/// `g.count_include_pad`) those in the explicit padding; taps in the `ceil_mode`
/// overhang are never counted. A window with a zero divisor yields 0.
#[allow(clippy::too_many_arguments)]
pub fn avg_pool2d(
    g: &Pool2dGeom,
    input: &[f32],
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    out: &mut [f32],
) -> Result<(), KernelError> {
    pool::avg_pool2d(g, input, n, c, h, w, out)
}

/// Global average pooling: `out[i] = mean(input[i*hw .. (i+1)*hw])` for `i < n*c`.
/// `input` has `n*c*hw` elements, `out` `n*c`. `hw == 0` is an error.
pub fn global_avg_pool(
    input: &[f32],
    n: usize,
    c: usize,
    hw: usize,
    out: &mut [f32],
) -> Result<(), KernelError> {
    pool::global_pool(false, input, n, c, hw, out)
}

/// Global max pooling: `out[i] = max(input[i*hw .. (i+1)*hw])`; NaN propagates.
/// `input` has `n*c*hw` elements, `out` `n*c`. `hw == 0` is an error.
pub fn global_max_pool(
    input: &[f32],
    n: usize,
    c: usize,
    hw: usize,
    out: &mut [f32],
) -> Result<(), KernelError> {
    pool::global_pool(true, input, n, c, hw, out)
}

/// Local response normalisation across channels (ONNX `LRN`):
/// `out = x / (bias + alpha / size * sum_{c'} x[c']^2) ^ beta` where `c'` runs over
/// `[c - floor((size-1)/2), c + ceil((size-1)/2)]` clipped to the channels.
/// `input` and `out` are NCHW `[n, c, h, w]`; `size` must be >= 1.
#[allow(clippy::too_many_arguments)]
pub fn lrn(
    input: &[f32],
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    size: usize,
    alpha: f32,
    beta: f32,
    bias: f32,
    out: &mut [f32],
) -> Result<(), KernelError> {
    pool::lrn(input, n, c, h, w, size, alpha, beta, bias, out)
}

/// General matrix multiply, row-major: `C[m x n] = alpha * op(A) * op(B) + beta * C`.
///
/// * `a`: `op(A)` is `[m x k]`; stored `[m x k]`, or `[k x m]` when `trans_a`;
/// * `b`: `op(B)` is `[k x n]`; stored `[k x n]`, or `[n x k]` when `trans_b`;
/// * `c`: `[m x n]`. When `beta == 0` the previous contents of `c` are ignored (even NaN),
///   as in BLAS.
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    trans_a: bool,
    b: &[f32],
    trans_b: bool,
    alpha: f32,
    beta: f32,
    c: &mut [f32],
) -> Result<(), KernelError> {
    matmul::gemm(m, n, k, a, trans_a, b, trans_b, alpha, beta, c)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
