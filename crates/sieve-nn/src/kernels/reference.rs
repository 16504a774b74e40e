//! Plain, obviously-correct reference kernels.
//!
//! Same contracts as the public kernels in [`super`]; the fast paths are tested
//! against these. They are slow (direct loops, no blocking, single thread) and meant
//! for tests and for checking new fast paths, not for inference.

use super::{check_len, checked_product, Activation, Conv2dGeom, KernelError, Pool2dGeom};

/// Reference for [`super::conv2d`]: direct 7-deep loop.
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
) -> Result<(), KernelError> {
    const OP: &str = "conv2d";
    let (oh, ow) = g.out_hw(h, w)?;
    check_len(
        OP,
        "input",
        checked_product(OP, "input", &[n, g.c_in, h, w])?,
        input.len(),
    )?;
    check_len(OP, "weights", g.weight_len()?, weights.len())?;
    if let Some(b) = bias {
        check_len(OP, "bias", g.c_out, b.len())?;
    }
    check_len(
        OP,
        "out",
        checked_product(OP, "out", &[n, g.c_out, oh, ow])?,
        out.len(),
    )?;
    let cig = g.c_in_per_group();
    let cog = g.c_out_per_group();
    for b in 0..n {
        for co in 0..g.c_out {
            let grp = co / cog.max(1);
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = bias.map_or(0.0, |bs| bs[co]);
                    for ci in 0..cig {
                        let cin = grp * cig + ci;
                        for ky in 0..g.kh {
                            let iy = (oy * g.stride_h + ky * g.dil_h) as isize - g.pad_top as isize;
                            if iy < 0 || iy >= h as isize {
                                continue;
                            }
                            for kx in 0..g.kw {
                                let ix =
                                    (ox * g.stride_w + kx * g.dil_w) as isize - g.pad_left as isize;
                                if ix < 0 || ix >= w as isize {
                                    continue;
                                }
                                let xv =
                                    input[((b * g.c_in + cin) * h + iy as usize) * w + ix as usize];
                                let wv = weights[((co * cig + ci) * g.kh + ky) * g.kw + kx];
                                acc += xv * wv;
                            }
                        }
                    }
                    out[((b * g.c_out + co) * oh + oy) * ow + ox] = act.apply(acc);
                }
            }
        }
    }
    Ok(())
}

/// Calls `f(iy, ix, inside_input, inside_explicit_pads)` for every tap of the window
/// whose output position is `(oy, ox)`.
fn for_each_tap(
    g: &Pool2dGeom,
    h: usize,
    w: usize,
    oy: usize,
    ox: usize,
    mut f: impl FnMut(usize, usize, bool, bool),
) {
    for ky in 0..g.kh {
        let py = oy * g.stride_h + ky * g.dil_h; // coordinate in the padded input
        let row_in = py >= g.pad_top && py < g.pad_top + h;
        let row_pad = py < g.pad_top + h + g.pad_bottom;
        for kx in 0..g.kw {
            let px = ox * g.stride_w + kx * g.dil_w;
            let col_in = px >= g.pad_left && px < g.pad_left + w;
            let col_pad = px < g.pad_left + w + g.pad_right;
            let inside = row_in && col_in;
            let (iy, ix) = if inside {
                (py - g.pad_top, px - g.pad_left)
            } else {
                (0, 0)
            };
            f(iy, ix, inside, row_pad && col_pad);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn pool_checks(
    op: &'static str,
    g: &Pool2dGeom,
    input: &[f32],
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    out: &[f32],
) -> Result<(usize, usize), KernelError> {
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
    Ok((oh, ow))
}

/// Reference for [`super::max_pool2d`].
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
    let (oh, ow) = pool_checks("max_pool2d", g, input, n, c, h, w, out)?;
    for p in 0..n * c {
        let plane = &input[p * h * w..(p + 1) * h * w];
        for oy in 0..oh {
            for ox in 0..ow {
                let mut m = f32::NEG_INFINITY;
                for_each_tap(g, h, w, oy, ox, |iy, ix, inside, _| {
                    if inside {
                        let v = plane[iy * w + ix];
                        if v > m || v.is_nan() {
                            m = v;
                        }
                    }
                });
                out[(p * oh + oy) * ow + ox] = m;
            }
        }
    }
    Ok(())
}

/// Reference for [`super::avg_pool2d`].
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
    let (oh, ow) = pool_checks("avg_pool2d", g, input, n, c, h, w, out)?;
    for p in 0..n * c {
        let plane = &input[p * h * w..(p + 1) * h * w];
        for oy in 0..oh {
            for ox in 0..ow {
                let mut sum = 0.0f32;
                let mut count = 0usize;
                for_each_tap(g, h, w, oy, ox, |iy, ix, inside, in_pads| {
                    if inside {
                        sum += plane[iy * w + ix];
                        count += 1;
                    } else if in_pads && g.count_include_pad {
                        count += 1;
                    }
                });
                out[(p * oh + oy) * ow + ox] = if count == 0 { 0.0 } else { sum / count as f32 };
            }
        }
    }
    Ok(())
}

fn global_checks(
    op: &'static str,
    input: &[f32],
    n: usize,
    c: usize,
    hw: usize,
    out: &[f32],
) -> Result<(), KernelError> {
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
    check_len(op, "out", checked_product(op, "out", &[n, c])?, out.len())
}

/// Reference for [`super::global_avg_pool`].
pub fn global_avg_pool(
    input: &[f32],
    n: usize,
    c: usize,
    hw: usize,
    out: &mut [f32],
) -> Result<(), KernelError> {
    global_checks("global_avg_pool", input, n, c, hw, out)?;
    for (o, plane) in out.iter_mut().zip(input.chunks_exact(hw)) {
        *o = plane.iter().sum::<f32>() / hw as f32;
    }
    Ok(())
}

/// Reference for [`super::global_max_pool`].
pub fn global_max_pool(
    input: &[f32],
    n: usize,
    c: usize,
    hw: usize,
    out: &mut [f32],
) -> Result<(), KernelError> {
    global_checks("global_max_pool", input, n, c, hw, out)?;
    for (o, plane) in out.iter_mut().zip(input.chunks_exact(hw)) {
        *o = plane.iter().fold(
            f32::NEG_INFINITY,
            |m, &v| if v > m || v.is_nan() { v } else { m },
        );
    }
    Ok(())
}

/// Checks the LRN arguments shared by the reference and fast paths.
pub(crate) fn lrn_checks(
    input: &[f32],
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    size: usize,
    out: &[f32],
) -> Result<(), KernelError> {
    const OP: &str = "lrn";
    if size == 0 {
        return Err(KernelError::BadGeometry {
            op: OP,
            reason: "size must be >= 1".into(),
        });
    }
    let len = checked_product(OP, "input", &[n, c, h, w])?;
    check_len(OP, "input", len, input.len())?;
    check_len(OP, "out", len, out.len())
}

/// Reference for [`super::lrn`].
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
    lrn_checks(input, n, c, h, w, size, out)?;
    let hw = h * w;
    let before = (size - 1) / 2;
    let after = size - 1 - before;
    for b in 0..n {
        for ch in 0..c {
            let lo = ch.saturating_sub(before);
            let hi = (ch + after).min(c - 1);
            for i in 0..hw {
                let mut sq = 0.0f32;
                for cc in lo..=hi {
                    let v = input[(b * c + cc) * hw + i];
                    sq += v * v;
                }
                let idx = (b * c + ch) * hw + i;
                out[idx] = input[idx] / (bias + alpha / size as f32 * sq).powf(beta);
            }
        }
    }
    Ok(())
}

/// Checks the GEMM operand lengths shared by the reference and fast paths.
pub(crate) fn gemm_checks(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    b: &[f32],
    c: &[f32],
) -> Result<(), KernelError> {
    const OP: &str = "gemm";
    check_len(OP, "a", checked_product(OP, "a", &[m, k])?, a.len())?;
    check_len(OP, "b", checked_product(OP, "b", &[k, n])?, b.len())?;
    check_len(OP, "c", checked_product(OP, "c", &[m, n])?, c.len())
}

/// Reference for [`super::gemm`]: triple loop with `f32` accumulation.
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
    gemm_checks(m, n, k, a, b, c)?;
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0.0f32;
            for p in 0..k {
                let av = if trans_a { a[p * m + i] } else { a[i * k + p] };
                let bv = if trans_b { b[j * k + p] } else { b[p * n + j] };
                acc += av * bv;
            }
            let prev = if beta == 0.0 {
                0.0
            } else {
                beta * c[i * n + j]
            };
            c[i * n + j] = alpha * acc + prev;
        }
    }
    Ok(())
}
