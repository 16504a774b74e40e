//! Depthwise (and channel-multiplier) convolution: `c_in / groups == 1`, so every output
//! channel reads one input plane. MobileNet's 3x3 stride 1/2 layers are the target.
//!
//! Each input plane is copied into a padded, phase-split buffer ([`Stencil`]), so every
//! tap is a constant offset and the whole plane is computed as one flat loop in register
//! blocks of 16 outputs (bias fused), then compacted with the activation. The body is
//! compiled for AVX-512, AVX2+FMA and portable targets and chosen once at run time.

use rayon::prelude::*;

use super::simd::{self, Level};
use super::stencil::{Stencil, BLOCK};
use super::{Activation, Conv2dGeom, KernelError};

/// Per-thread buffers: phase-split input, flat output, tap offsets.
#[derive(Default)]
struct Bufs {
    input: Vec<f32>,
    flat: Vec<f32>,
    taps: Vec<usize>,
}

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
    let level = simd::level();
    let run = |p0: usize, dst: &mut [f32], bufs: &mut Bufs| {
        st.taps(&mut bufs.taps);
        bufs.flat.resize(st.flat_len(), 0.0);
        let mut prev_src = usize::MAX;
        for (i, plane_out) in dst.chunks_exact_mut(ohw).enumerate() {
            let p = p0 + i;
            let (b, co) = (p / g.c_out, p % g.c_out);
            let ci = co / g.c_out_per_group();
            let src_idx = b * g.c_in + ci;
            // With a channel multiplier, consecutive planes share their input plane.
            if src_idx != prev_src {
                st.fill(&input[src_idx * h * w..][..h * w], 0.0, &mut bufs.input);
                prev_src = src_idx;
            }
            let wts = &weights[co * khw..(co + 1) * khw];
            let bv = bias.map_or(0.0, |bs| bs[co]);
            flat(level, &bufs.input, &bufs.taps, wts, bv, &mut bufs.flat);
            st.compact(&bufs.flat, plane_out, |v, _, _| act.apply(v));
        }
    };
    if threads <= 1 || planes < 2 {
        run(0, out, &mut Bufs::default());
        return Ok(());
    }
    let per = planes.div_ceil(threads * 4).max(1);
    out.par_chunks_mut(per * ohw)
        .enumerate()
        .for_each_init(Bufs::default, |bufs, (ci, dst)| run(ci * per, dst, bufs));
    Ok(())
}

fn flat(level: Level, buf: &[f32], taps: &[usize], wts: &[f32], bias: f32, out: &mut [f32]) {
    match level {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `level` is Avx512 only after avx512f was detected.
        Level::Avx512 => unsafe { flat_avx512(buf, taps, wts, bias, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `level` is Avx2 only after avx2 and fma were detected.
        Level::Avx2 => unsafe { flat_avx2(buf, taps, wts, bias, out) },
        _ => flat_body::<false>(buf, taps, wts, bias, out),
    }
}

/// # Safety
/// Requires avx512f.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn flat_avx512(buf: &[f32], taps: &[usize], wts: &[f32], bias: f32, out: &mut [f32]) {
    flat_body::<true>(buf, taps, wts, bias, out)
}

/// # Safety
/// Requires avx2 and fma.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn flat_avx2(buf: &[f32], taps: &[usize], wts: &[f32], bias: f32, out: &mut [f32]) {
    flat_body::<true>(buf, taps, wts, bias, out)
}

/// `out[j] = bias + sum_t wts[t] * buf[j + taps[t]]` for every `j < out.len()` (a
/// multiple of [`BLOCK`]). `FMA` selects fused multiply-adds (only where the target
/// feature makes them single instructions).
#[inline(always)]
fn flat_body<const FMA: bool>(
    buf: &[f32],
    taps: &[usize],
    wts: &[f32],
    bias: f32,
    out: &mut [f32],
) {
    for (jb, o) in out.chunks_exact_mut(BLOCK).enumerate() {
        let j = jb * BLOCK;
        let mut acc = [bias; BLOCK];
        for (&off, &wv) in taps.iter().zip(wts) {
            let x = &buf[j + off..j + off + BLOCK];
            for l in 0..BLOCK {
                acc[l] = if FMA {
                    x[l].mul_add(wv, acc[l])
                } else {
                    acc[l] + wv * x[l]
                };
            }
        }
        o.copy_from_slice(&acc);
    }
}
