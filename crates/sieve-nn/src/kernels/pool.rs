//! Fast pooling, global pooling and LRN: row-wise loops that vectorise over the output
//! width, parallel over `(n, c)` planes (or pixels for LRN) when the problem is large.

use rayon::prelude::*;

use super::conv::valid_range;
use super::reference::lrn_checks;
use super::{check_len, checked_product, KernelError, Pool2dGeom};

/// Below this many input elements a pooling kernel runs on the calling thread.
const PAR_MIN_ELEMS: usize = 1 << 16;

/// Runs `f(plane_index, out_plane)` over the `planes` output planes of `out_plane_len`
/// elements, in parallel when `work` is large enough.
fn for_planes(
    out: &mut [f32],
    out_plane_len: usize,
    work: usize,
    f: impl Fn(usize, &mut [f32]) + Sync,
) {
    if out_plane_len == 0 {
        return;
    }
    let threads = rayon::current_num_threads();
    if work < PAR_MIN_ELEMS || threads == 1 {
        out.chunks_exact_mut(out_plane_len)
            .enumerate()
            .for_each(|(p, o)| f(p, o));
        return;
    }
    let planes = out.len() / out_plane_len;
    let per = planes.div_ceil(threads * 4).max(1);
    out.par_chunks_mut(per * out_plane_len)
        .enumerate()
        .for_each(|(ci, chunk)| {
            for (i, o) in chunk.chunks_exact_mut(out_plane_len).enumerate() {
                f(ci * per + i, o);
            }
        });
}

/// Per-axis window data: for output index `o`, the taps `k` (with input coordinates)
/// that fall inside the input, and the tap count used by average pooling.
struct Axis {
    /// Valid output range per tap `k`: `(lo, hi, d)` with input index `o*stride + d`.
    taps: Vec<(usize, usize, isize)>,
    /// Divisor contribution per output index.
    count: Vec<usize>,
}

#[allow(clippy::too_many_arguments)]
fn axis(
    input: usize,
    out: usize,
    k: usize,
    stride: usize,
    dil: usize,
    pad_a: usize,
    pad_b: usize,
    include_pad: bool,
) -> Axis {
    let taps = (0..k)
        .map(|t| {
            let d = (t * dil) as isize - pad_a as isize;
            let (lo, hi) = valid_range(d, stride, input, out);
            (lo, hi, d)
        })
        .collect();
    let count = (0..out)
        .map(|o| {
            (0..k)
                .filter(|&t| {
                    let p = o * stride + t * dil; // coordinate in the padded input
                    if include_pad {
                        p < pad_a + input + pad_b
                    } else {
                        p >= pad_a && p < pad_a + input
                    }
                })
                .count()
        })
        .collect();
    Axis { taps, count }
}

#[allow(clippy::too_many_arguments)]
fn pool(
    op: &'static str,
    is_max: bool,
    g: &Pool2dGeom,
    input: &[f32],
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    out: &mut [f32],
) -> Result<(), KernelError> {
    let (oh, ow) = g.out_hw(h, w)?;
    check_len(
        op,
        "input",
        checked_product(op, "input", &[n, c, h, w])?,
        input.len(),
    )?;
    check_len(
        op,
        "out",
        checked_product(op, "out", &[n, c, oh, ow])?,
        out.len(),
    )?;
    let inc = g.count_include_pad;
    let ya = axis(
        h,
        oh,
        g.kh,
        g.stride_h,
        g.dil_h,
        g.pad_top,
        g.pad_bottom,
        inc,
    );
    let xa = axis(
        w,
        ow,
        g.kw,
        g.stride_w,
        g.dil_w,
        g.pad_left,
        g.pad_right,
        inc,
    );
    let sw = g.stride_w;
    for_planes(out, oh * ow, input.len(), |p, o| {
        let plane = &input[p * h * w..(p + 1) * h * w];
        for oy in 0..oh {
            let row = &mut o[oy * ow..(oy + 1) * ow];
            row.fill(if is_max { f32::NEG_INFINITY } else { 0.0 });
            for &(ylo, yhi, dy) in &ya.taps {
                if oy < ylo || oy >= yhi {
                    continue;
                }
                let iy = (oy as isize * g.stride_h as isize + dy) as usize;
                let src = &plane[iy * w..(iy + 1) * w];
                for &(lo, hi, dx) in &xa.taps {
                    if lo >= hi {
                        continue;
                    }
                    let start = (lo as isize * sw as isize + dx) as usize;
                    let dst = &mut row[lo..hi];
                    if sw == 1 {
                        let s = &src[start..start + (hi - lo)];
                        if is_max {
                            dst.iter_mut()
                                .zip(s)
                                .for_each(|(m, &v)| *m = max_nan(*m, v));
                        } else {
                            dst.iter_mut().zip(s).for_each(|(m, &v)| *m += v);
                        }
                    } else {
                        let s = src[start..].iter().step_by(sw);
                        if is_max {
                            dst.iter_mut()
                                .zip(s)
                                .for_each(|(m, &v)| *m = max_nan(*m, v));
                        } else {
                            dst.iter_mut().zip(s).for_each(|(m, &v)| *m += v);
                        }
                    }
                }
            }
            if !is_max {
                let cy = ya.count[oy];
                for (v, &cx) in row.iter_mut().zip(&xa.count) {
                    let cnt = cy * cx;
                    *v = if cnt == 0 { 0.0 } else { *v / cnt as f32 };
                }
            }
        }
    });
    Ok(())
}

/// `max` that propagates NaN from either side (the running value or the new one).
#[inline(always)]
fn max_nan(m: f32, v: f32) -> f32 {
    if v > m || v.is_nan() {
        v
    } else {
        m
    }
}

/// Fast path behind [`super::max_pool2d`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn max_pool2d(
    g: &Pool2dGeom,
    input: &[f32],
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    out: &mut [f32],
) -> Result<(), KernelError> {
    pool("max_pool2d", true, g, input, n, c, h, w, out)
}

/// Fast path behind [`super::avg_pool2d`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn avg_pool2d(
    g: &Pool2dGeom,
    input: &[f32],
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    out: &mut [f32],
) -> Result<(), KernelError> {
    pool("avg_pool2d", false, g, input, n, c, h, w, out)
}

/// Fast path behind [`super::global_avg_pool`] and [`super::global_max_pool`].
pub(crate) fn global_pool(
    is_max: bool,
    input: &[f32],
    n: usize,
    c: usize,
    hw: usize,
    out: &mut [f32],
) -> Result<(), KernelError> {
    let op = if is_max {
        "global_max_pool"
    } else {
        "global_avg_pool"
    };
    if hw == 0 {
        return Err(KernelError::BadGeometry {
            op,
            reason: "spatial size is 0".into(),
        });
    }
    check_len(
        op,
        "input",
        checked_product(op, "input", &[n, c, hw])?,
        input.len(),
    )?;
    check_len(op, "out", checked_product(op, "out", &[n, c])?, out.len())?;
    for_planes(out, 1, input.len(), |p, o| {
        let plane = &input[p * hw..(p + 1) * hw];
        o[0] = if is_max {
            plane.iter().fold(f32::NEG_INFINITY, |m, &v| max_nan(m, v))
        } else {
            let mut acc = [0.0f32; 16];
            let mut chunks = plane.chunks_exact(16);
            for ch in &mut chunks {
                for l in 0..16 {
                    acc[l] += ch[l];
                }
            }
            (acc.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()) / hw as f32
        };
    });
    Ok(())
}

/// Fast path behind [`super::lrn`]: per output plane, the window's squares are summed
/// into the output (in the reference's channel order) and then scaled in place;
/// parallel over planes.
#[allow(clippy::too_many_arguments)]
pub(crate) fn lrn(
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
    lrn_checks(input, n, c, h, w, size, out)?;
    let hw = h * w;
    let before = (size - 1) / 2;
    let after = size - 1 - before;
    let scale = alpha / size as f32;
    for_planes(out, hw, input.len().saturating_mul(size), |p, o| {
        let (b, ch) = (p / c, p % c);
        let lo = ch.saturating_sub(before);
        let hi = (ch + after).min(c - 1);
        o.fill(0.0);
        for cc in lo..=hi {
            let src = &input[(b * c + cc) * hw..(b * c + cc + 1) * hw];
            o.iter_mut().zip(src).for_each(|(s, &v)| *s += v * v);
        }
        let xs = &input[p * hw..(p + 1) * hw];
        o.iter_mut()
            .zip(xs)
            .for_each(|(s, &x)| *s = x * inv_pow(bias + scale * *s, beta));
    });
    Ok(())
}

/// `t ^ -beta`, with cheap exact forms for the common exponents (AlexNet uses 0.75).
#[inline(always)]
fn inv_pow(t: f32, beta: f32) -> f32 {
    if beta == 0.75 {
        let r = t.sqrt();
        1.0 / (r * r.sqrt())
    } else if beta == 0.5 {
        1.0 / t.sqrt()
    } else if beta == 1.0 {
        1.0 / t
    } else {
        t.powf(-beta)
    }
}
