//! Fast pooling, global pooling and LRN: row-wise loops that vectorise over the output
//! width, parallel over `(n, c)` planes (or pixels for LRN) when the problem is large.

use super::reference::lrn_checks;
use super::stencil::{with_bufs, Stencil};
use super::stencil_simd::pool_flat;
use super::{check_len, checked_product, KernelError, Pool2dGeom};

/// Below this many input elements a pooling kernel runs on the calling thread.
const PAR_MIN_ELEMS: usize = 1 << 16;

/// Runs `f(first_plane, out_chunk)` over chunks of whole output planes of
/// `out_plane_len` elements, in parallel when `work` is large enough.
fn for_plane_chunks(
    out: &mut [f32],
    out_plane_len: usize,
    work: usize,
    f: impl Fn(usize, &mut [f32]) + Sync,
) {
    let threads = if work < PAR_MIN_ELEMS {
        1
    } else {
        rayon::current_num_threads()
    };
    split_planes(out, out_plane_len, threads, f);
}

/// Runs `f(first_plane, out_chunk)` over chunks of whole planes of `plane_len` elements,
/// about four chunks per thread shared out by the run team (all of `out` at once when
/// `threads <= 1`).
pub(super) fn split_planes(
    out: &mut [f32],
    plane_len: usize,
    threads: usize,
    f: impl Fn(usize, &mut [f32]) + Sync,
) {
    if plane_len == 0 {
        return;
    }
    let planes = out.len() / plane_len;
    if threads <= 1 || planes < 2 {
        f(0, out);
        return;
    }
    let per = planes.div_ceil(threads * 4).max(1);
    crate::team::par_chunks_mut(out, per * plane_len, threads, |ci, chunk| {
        f(ci * per, chunk)
    });
}

/// Runs `f(plane_index, out_plane)` for every output plane (see [`for_plane_chunks`]).
fn for_planes(
    out: &mut [f32],
    out_plane_len: usize,
    work: usize,
    f: impl Fn(usize, &mut [f32]) + Sync,
) {
    for_plane_chunks(out, out_plane_len, work, |p0, chunk| {
        for (i, o) in chunk.chunks_exact_mut(out_plane_len).enumerate() {
            f(p0 + i, o);
        }
    });
}

/// Divisor contribution of each output index along one axis: the taps inside the input,
/// plus (with `include_pad`) those in the explicit pads; never the ceil-mode overhang.
#[allow(clippy::too_many_arguments)]
fn counts(
    input: usize,
    out: usize,
    k: usize,
    stride: usize,
    dil: usize,
    pad_a: usize,
    pad_b: usize,
    include_pad: bool,
) -> Vec<usize> {
    (0..out)
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
        .collect()
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
    if out.is_empty() {
        return Ok(());
    }
    // A window that is exactly the whole plane (e.g. MobileNet's final 7x7 AveragePool)
    // is a global pool: one vectorised reduction per plane instead of the stencil set-up.
    let no_pad = g.pad_top == 0 && g.pad_left == 0 && g.pad_bottom == 0 && g.pad_right == 0;
    if (oh, ow) == (1, 1) && (g.kh, g.kw) == (h, w) && (g.dil_h, g.dil_w) == (1, 1) && no_pad {
        return global_pool(is_max, input, n, c, h * w, out);
    }
    let inc = g.count_include_pad;
    let cy = counts(
        h,
        oh,
        g.kh,
        g.stride_h,
        g.dil_h,
        g.pad_top,
        g.pad_bottom,
        inc,
    );
    let cx = counts(
        w,
        ow,
        g.kw,
        g.stride_w,
        g.dil_w,
        g.pad_left,
        g.pad_right,
        inc,
    );
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
    #[cfg(target_arch = "x86_64")]
    {
        // Square 2x2/3x3/5x5 windows, stride 1 or 2: read in place (see
        // `depthwise::x86::Direct`), no copy of the plane. Average pooling sums the window
        // as a depthwise convolution with unit weights (out-of-plane inputs are zero),
        // then divides by the same counts as the stencil path below.
        if let Some(direct) = super::depthwise::x86::Direct::new(&st) {
            let ones = vec![1.0f32; g.kh * g.kw];
            for_plane_chunks(out, ohw, input.len(), |p0, chunk| {
                for (i, o) in chunk.chunks_exact_mut(ohw).enumerate() {
                    let p = p0 + i;
                    let src = &input[p * h * w..(p + 1) * h * w];
                    if is_max {
                        direct.max_plane(src, o);
                    } else {
                        direct.plane(src, &ones, 0.0, super::Activation::None, o);
                        divide_by_counts(o, ow, &cy, &cx);
                    }
                }
            });
            return Ok(());
        }
    }
    let pad = if is_max { f32::NEG_INFINITY } else { 0.0 };
    for_plane_chunks(out, ohw, input.len(), |p0, chunk| {
        with_bufs(&st, pad, |bufs| {
            for (i, o) in chunk.chunks_exact_mut(ohw).enumerate() {
                let p = p0 + i;
                st.fill(&input[p * h * w..(p + 1) * h * w], &mut bufs.input);
                pool_flat(is_max, &bufs.input, &bufs.taps, &mut bufs.flat);
                st.compact(&bufs.flat, o);
                if !is_max {
                    divide_by_counts(o, ow, &cy, &cx);
                }
            }
        })
    });
    Ok(())
}

/// Average pooling's division of one output plane (`ow` wide) by the window counts
/// `cy[oy] * cx[ox]` (0 counts give 0).
fn divide_by_counts(o: &mut [f32], ow: usize, cy: &[usize], cx: &[usize]) {
    for (oy, row) in o.chunks_exact_mut(ow).enumerate() {
        for (v, &c) in row.iter_mut().zip(cx) {
            let cnt = cy[oy] * c;
            *v = if cnt == 0 { 0.0 } else { *v / cnt as f32 };
        }
    }
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
        // One loop per exponent kind, so that each vectorises without a branch inside.
        if beta == 0.75 {
            scale_plane::<0>(o, xs, bias, scale, beta);
        } else if beta == 0.5 {
            scale_plane::<1>(o, xs, bias, scale, beta);
        } else if beta == 1.0 {
            scale_plane::<2>(o, xs, bias, scale, beta);
        } else {
            scale_plane::<3>(o, xs, bias, scale, beta);
        }
    });
    Ok(())
}

/// `o[i] = xs[i] * (bias + scale * o[i]) ^ -beta`; `KIND` 0, 1, 2 select the exact
/// cheap forms for beta = 0.75 (AlexNet), 0.5 and 1, 3 the general `powf`.
#[inline(always)]
fn scale_plane<const KIND: u8>(o: &mut [f32], xs: &[f32], bias: f32, scale: f32, beta: f32) {
    for (s, &x) in o.iter_mut().zip(xs) {
        let t = bias + scale * *s;
        let inv = match KIND {
            0 => {
                let r = t.sqrt();
                1.0 / (r * r.sqrt())
            }
            1 => 1.0 / t.sqrt(),
            2 => 1.0 / t,
            _ => t.powf(-beta),
        };
        *s = x * inv;
    }
}
