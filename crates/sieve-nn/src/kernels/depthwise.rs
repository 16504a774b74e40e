//! Depthwise (and channel-multiplier) convolution: `c_in / groups == 1`, so every output
//! channel reads one input plane. MobileNet's 3x3 stride 1/2 layers are the target.
//!
//! Per output row, the valid taps are listed once; the columns where every tap is inside
//! the input are computed in register blocks of 16/8/4 outputs (vectorised over the
//! width, bias and activation fused), the borders tap by tap. Horizontal strides > 1 are
//! handled by splitting each input plane into `stride` column phases first, so every tap
//! reads contiguous memory. The body is compiled for AVX-512, AVX2+FMA and portable
//! targets and chosen at run time.

use rayon::prelude::*;

use super::conv::valid_range;
use super::simd::{self, Level};
use super::{Activation, Conv2dGeom, KernelError};

/// One tap of an output row: input offset relative to `ox`, weight, valid `ox` range.
#[derive(Clone, Copy)]
struct Tap {
    off: isize,
    w: f32,
    lo: usize,
    hi: usize,
}

struct Shape<'a> {
    g: &'a Conv2dGeom,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    act: Activation,
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
    let shape = Shape {
        g,
        h,
        w,
        oh,
        ow,
        act,
    };
    let ohw = oh * ow;
    let planes = n * g.c_out;
    let khw = g.kh * g.kw;
    let run = |p0: usize, dst: &mut [f32], buf: &mut Vec<f32>, taps: &mut Vec<Tap>| {
        for (i, plane_out) in dst.chunks_exact_mut(ohw).enumerate() {
            let p = p0 + i;
            let (b, co) = (p / g.c_out, p % g.c_out);
            let ci = co / g.c_out_per_group();
            let src = &input[(b * g.c_in + ci) * h * w..][..h * w];
            let wts = &weights[co * khw..(co + 1) * khw];
            let bv = bias.map_or(0.0, |bs| bs[co]);
            plane(&shape, src, wts, bv, plane_out, buf, taps);
        }
    };
    if threads <= 1 || planes < 2 {
        run(0, out, &mut Vec::new(), &mut Vec::new());
        return Ok(());
    }
    let per = planes.div_ceil(threads * 4).max(1);
    out.par_chunks_mut(per * ohw).enumerate().for_each_init(
        || (Vec::new(), Vec::new()),
        |(buf, taps), (ci, dst)| run(ci * per, dst, buf, taps),
    );
    Ok(())
}

fn plane(
    s: &Shape<'_>,
    src: &[f32],
    wts: &[f32],
    bias: f32,
    dst: &mut [f32],
    buf: &mut Vec<f32>,
    taps: &mut Vec<Tap>,
) {
    match simd::level() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `level()` returned Avx512 only after detecting avx512f.
        Level::Avx512 => unsafe { plane_avx512(s, src, wts, bias, dst, buf, taps) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `level()` returned Avx2 only after detecting avx2 and fma.
        Level::Avx2 => unsafe { plane_avx2(s, src, wts, bias, dst, buf, taps) },
        _ => plane_body(s, src, wts, bias, dst, buf, taps),
    }
}

/// # Safety
/// Requires avx512f.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn plane_avx512(
    s: &Shape<'_>,
    src: &[f32],
    wts: &[f32],
    bias: f32,
    dst: &mut [f32],
    buf: &mut Vec<f32>,
    taps: &mut Vec<Tap>,
) {
    plane_body(s, src, wts, bias, dst, buf, taps)
}

/// # Safety
/// Requires avx2 and fma.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn plane_avx2(
    s: &Shape<'_>,
    src: &[f32],
    wts: &[f32],
    bias: f32,
    dst: &mut [f32],
    buf: &mut Vec<f32>,
    taps: &mut Vec<Tap>,
) {
    plane_body(s, src, wts, bias, dst, buf, taps)
}

/// Computes one output plane `dst` (`[oh, ow]`) from one input plane `src` (`[h, w]`).
#[inline(always)]
fn plane_body(
    s: &Shape<'_>,
    src: &[f32],
    wts: &[f32],
    bias: f32,
    dst: &mut [f32],
    buf: &mut Vec<f32>,
    taps: &mut Vec<Tap>,
) {
    let g = s.g;
    let (h, w, ow) = (s.h, s.w, s.ow);
    let sw = g.stride_w;
    // Phase-split layout [sw][h][pw]: element (iy, x) lives at phase x % sw, column x / sw.
    let pw = w.div_ceil(sw);
    let data: &[f32] = if sw == 1 {
        src
    } else {
        buf.clear();
        buf.resize(sw * h * pw, 0.0);
        for ph in 0..sw {
            for iy in 0..h {
                let row = &src[iy * w..(iy + 1) * w];
                let d = &mut buf[(ph * h + iy) * pw..(ph * h + iy + 1) * pw];
                for (dv, sv) in d.iter_mut().zip(row.iter().skip(ph).step_by(sw)) {
                    *dv = *sv;
                }
            }
        }
        buf
    };
    // Per-kx column data: phase, base column, valid ox range.
    let mut lo_all = 0usize;
    let mut hi_all = ow;
    for kx in 0..g.kw {
        let d = (kx * g.dil_w) as isize - g.pad_left as isize;
        let (lo, hi) = valid_range(d, sw, w, ow);
        lo_all = lo_all.max(lo);
        hi_all = hi_all.min(hi);
    }
    let hi_all = hi_all.max(lo_all);
    for oy in 0..s.oh {
        taps.clear();
        for ky in 0..g.kh {
            let iy = (oy * g.stride_h + ky * g.dil_h) as isize - g.pad_top as isize;
            if iy < 0 || iy >= h as isize {
                continue;
            }
            for kx in 0..g.kw {
                let d = (kx * g.dil_w) as isize - g.pad_left as isize;
                let (lo, hi) = valid_range(d, sw, w, ow);
                let ph = d.rem_euclid(sw as isize);
                let base = d.div_euclid(sw as isize);
                let off = ((ph * h as isize) + iy) * pw as isize + base;
                taps.push(Tap {
                    off,
                    w: wts[ky * g.kw + kx],
                    lo,
                    hi,
                });
            }
        }
        let row = &mut dst[oy * ow..(oy + 1) * ow];
        // Borders (and everything, when no column sees all taps): tap by tap.
        let scalar = |ox: usize| {
            let mut acc = bias;
            for t in taps.iter() {
                if ox >= t.lo && ox < t.hi {
                    acc += t.w * data[(ox as isize + t.off) as usize];
                }
            }
            s.act.apply(acc)
        };
        for ox in (0..lo_all).chain(hi_all..ow) {
            row[ox] = scalar(ox);
        }
        let mut ox = lo_all;
        ox = blocks::<16>(data, taps, bias, s.act, row, ox, hi_all);
        ox = blocks::<8>(data, taps, bias, s.act, row, ox, hi_all);
        ox = blocks::<4>(data, taps, bias, s.act, row, ox, hi_all);
        for x in ox..hi_all {
            row[x] = scalar(x);
        }
    }
}

/// Interior columns `ox..hi` (every tap valid) in blocks of `L`; returns the first
/// column not done.
#[inline(always)]
fn blocks<const L: usize>(
    data: &[f32],
    taps: &[Tap],
    bias: f32,
    act: Activation,
    row: &mut [f32],
    mut ox: usize,
    hi: usize,
) -> usize {
    while ox + L <= hi {
        let mut acc = [bias; L];
        for t in taps {
            let x = &data[(ox as isize + t.off) as usize..][..L];
            for l in 0..L {
                acc[l] += t.w * x[l];
            }
        }
        let out = &mut row[ox..ox + L];
        for l in 0..L {
            out[l] = act.apply(acc[l]);
        }
        ox += L;
    }
    ox
}
