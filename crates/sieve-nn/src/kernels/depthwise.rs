//! Depthwise (and channel-multiplier) convolution: `c_in / groups == 1`, so every output
//! channel reads one input plane. MobileNet's 3x3 stride 1/2 layers are the target.
//!
//! Each input plane is copied into a padded, phase-split buffer ([`Stencil`]), so every
//! tap is a constant offset and the whole plane is computed as one flat loop in register
//! blocks of 16 outputs (bias fused), then compacted with the activation. The body is
//! compiled for AVX-512, AVX2+FMA and portable targets and chosen once at run time.

use rayon::prelude::*;

use super::stencil::{with_bufs, Bufs, Stencil};
use super::stencil_simd::conv_flat;
use super::{Activation, Conv2dGeom, KernelError};

/// Fast path for `g.c_in_per_group() == 1`; sizes already checked by the caller.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv(
    g: &Conv2dGeom,
    input: &[f32],
    n: usize,
    h: usize,
    w: usize,
    weights: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    out: &mut [f32],
    oh: usize,
    ow: usize,
    threads: usize,
) -> Result<(), KernelError> {
    let st = Stencil {
        kh: g.kh,
        kw: g.kw,
        sh: g.stride_h,
        sw: g.stride_w,
        dh: g.dil_h,
        dw: g.dil_w,
        pad_top: g.pad_top,
        pad_left: g.pad_left,
        h,
        w,
        oh,
        ow,
    };
    let ohw = oh * ow;
    let planes = n * g.c_out;
    let khw = g.kh * g.kw;
    let run = |p0: usize, dst: &mut [f32]| {
        with_bufs(&st, 0.0, |bufs: &mut Bufs| {
            let mut prev_src = usize::MAX;
            for (i, plane_out) in dst.chunks_exact_mut(ohw).enumerate() {
                let p = p0 + i;
                let (b, co) = (p / g.c_out, p % g.c_out);
                let ci = co / g.c_out_per_group();
                let src_idx = b * g.c_in + ci;
                // With a channel multiplier, consecutive planes share their input plane.
                if src_idx != prev_src {
                    st.fill(&input[src_idx * h * w..][..h * w], &mut bufs.input);
                    prev_src = src_idx;
                }
                let wts = &weights[co * khw..(co + 1) * khw];
                let bv = bias.map_or(0.0, |bs| bs[co]);
                conv_flat(&bufs.input, &bufs.taps, wts, bv, act, &mut bufs.flat);
                st.compact(&bufs.flat, plane_out);
            }
        })
    };
    if threads <= 1 || planes < 2 {
        run(0, out);
        return Ok(());
    }
    let per = planes.div_ceil(threads * 4).max(1);
    out.par_chunks_mut(per * ohw)
        .enumerate()
        .for_each(|(ci, dst)| run(ci * per, dst));
    Ok(())
}
