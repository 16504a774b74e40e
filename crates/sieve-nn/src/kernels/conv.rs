//! Fast 2-D convolution: GEMM-based (1x1 stride-1 convolutions use the input planes
//! directly; others im2col a tile of output rows at a time into the caller's scratch)
//! with a fused bias + activation epilogue, and a dedicated depthwise kernel.
//!
//! Work is split into items (image, group, tile of output rows). With enough items and
//! work they run in parallel, one contiguous range of items per rayon thread, each
//! with its own slice of the scratch buffer; otherwise items run in order and the GEMM
//! itself uses the rayon pool. Tiny problems (LeNet-5) stay on the calling thread.

use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;

use super::matmul::{matmul_raw, MatRef};
use super::{check_len, checked_product, depthwise, Activation, Conv2dGeom, KernelError};

/// Below this many multiply-adds the whole convolution runs on the calling thread.
const PAR_MIN_MACS: usize = 1 << 20;
/// Target size in floats of one im2col tile (half of a typical 1-2 MiB L2).
const TILE_FLOATS: usize = 1 << 19;

/// Checks every operand of a convolution and returns `(oh, ow)`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_checks(
    g: &Conv2dGeom,
    input: &[f32],
    n: usize,
    h: usize,
    w: usize,
    weights: &[f32],
    bias: Option<&[f32]>,
    out: &[f32],
) -> Result<(usize, usize), KernelError> {
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
    Ok((oh, ow))
}

/// Raw output pointer shared by the workers; each writes a disjoint set of elements.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: the pointer is only used to write disjoint regions of one `&mut [f32]` that
// outlives the parallel section (see `run_item`).
unsafe impl Send for OutPtr {}
// SAFETY: as above.
unsafe impl Sync for OutPtr {}

struct Plan<'a> {
    g: &'a Conv2dGeom,
    input: &'a [f32],
    h: usize,
    w: usize,
    weights: &'a [f32],
    bias: Option<&'a [f32]>,
    act: Activation,
    oh: usize,
    ow: usize,
    /// Reduction length `c_in/groups * kh * kw`.
    kdim: usize,
    /// Output rows per tile.
    tile_rows: usize,
    tiles: usize,
    /// True when the input planes are used as the GEMM operand directly.
    direct: bool,
}

impl Plan<'_> {
    fn items(&self, n: usize) -> usize {
        n * self.g.groups * self.tiles
    }

    /// Scratch floats per worker: the im2col tile plus one phase-split input row.
    fn tile_len(&self) -> usize {
        if self.direct {
            0
        } else {
            self.kdim * self.tile_rows * self.ow
                + self.g.stride_w * row_pitch(self.g, self.w, self.ow)
        }
    }

    /// Computes item `item` = (image, group, tile) into `out`.
    ///
    /// # Safety
    /// `out` must point to the start of the `[n, c_out, oh, ow]` output with the image of
    /// `item` in bounds, and no other thread may access this item's output elements
    /// (rows `co` of the group, columns of the tile) concurrently.
    unsafe fn run_item(&self, item: usize, out: OutPtr, col: &mut [f32], gemm_parallel: bool) {
        let g = self.g;
        let (cig, cog) = (g.c_in_per_group(), g.c_out_per_group());
        let tile = item % self.tiles;
        let gi = (item / self.tiles) % g.groups;
        let b = item / (self.tiles * g.groups);
        let ohw = self.oh * self.ow;
        let oy0 = tile * self.tile_rows;
        let oy1 = (oy0 + self.tile_rows).min(self.oh);
        let cols = (oy1 - oy0) * self.ow;
        let img = &self.input[(b * g.c_in + gi * cig) * self.h * self.w..][..cig * self.h * self.w];
        let rhs = if self.direct {
            // 1x1, stride 1, no padding: output pixel j reads input pixel j.
            MatRef {
                data: &img[oy0 * self.ow..],
                rs: self.h * self.w,
                cs: 1,
            }
        } else {
            let (col, row_buf) = col.split_at_mut(self.kdim * cols);
            im2col(g, img, self.h, self.w, self.ow, oy0, oy1, col, row_buf);
            MatRef {
                data: col,
                rs: cols,
                cs: 1,
            }
        };
        let lhs = MatRef {
            data: &self.weights[gi * cog * self.kdim..][..cog * self.kdim],
            rs: self.kdim,
            cs: 1,
        };
        let co0 = gi * cog;
        let base = (b * g.c_out + co0) * ohw + oy0 * self.ow;
        // SAFETY: rows co0..co0+cog of image b, columns [oy0*ow, oy1*ow) are inside the
        // output (caller contract) and owned by this item; each row segment is a distinct
        // contiguous range, so the short-lived slices below never overlap other threads'.
        unsafe {
            matmul_raw(
                cog,
                cols,
                self.kdim,
                lhs,
                rhs,
                out.0.add(base),
                ohw,
                1.0,
                false,
                gemm_parallel,
            );
            if self.bias.is_some() || self.act != Activation::None {
                for co in 0..cog {
                    let row = std::slice::from_raw_parts_mut(out.0.add(base + co * ohw), cols);
                    epilogue(row, self.bias.map_or(0.0, |bs| bs[co0 + co]), self.act);
                }
            }
        }
    }
}

/// `row[i] = act(row[i] + bias)`, one vectorisable loop per activation kind.
pub(crate) fn epilogue(row: &mut [f32], bias: f32, act: Activation) {
    match act {
        Activation::None => row.iter_mut().for_each(|v| *v += bias),
        Activation::Relu => row.iter_mut().for_each(|v| *v = (*v + bias).max(0.0)),
        Activation::Clip { min, max } => row
            .iter_mut()
            .for_each(|v| *v = (*v + bias).max(min).min(max)),
    }
}

/// Fast path behind [`super::conv2d`]; same contract.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv2d(
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
) -> Result<(), KernelError> {
    let (oh, ow) = conv_checks(g, input, n, h, w, weights, bias, out)?;
    if out.is_empty() {
        return Ok(());
    }
    let kdim = g.c_in_per_group() * g.kh * g.kw;
    let macs = out.len().saturating_mul(kdim);
    let threads = if macs >= PAR_MIN_MACS {
        rayon::current_num_threads()
    } else {
        1
    };
    if g.c_in_per_group() == 1 && g.kh * g.kw > 1 {
        return depthwise::conv(g, input, n, h, w, weights, bias, act, out, oh, ow, threads);
    }
    let direct = g.kh == 1
        && g.kw == 1
        && g.stride_h == 1
        && g.stride_w == 1
        && g.pad_top + g.pad_left + g.pad_bottom + g.pad_right == 0;
    // Tile so that the im2col block and the output block stay in L2 together.
    let target_cols = (TILE_FLOATS / (kdim + g.c_out_per_group())).max(1);
    let tile_rows = (target_cols / ow.max(1)).clamp(1, oh);
    let tiles = oh.div_ceil(tile_rows);
    let plan = Plan {
        g,
        input,
        h,
        w,
        weights,
        bias,
        act,
        oh,
        ow,
        kdim,
        tile_rows,
        tiles,
        direct,
    };
    let items = plan.items(n);
    let tile_len = plan.tile_len();
    let out_ptr = OutPtr(out.as_mut_ptr());
    // Parallel over items when there are enough to balance; otherwise the GEMM splits.
    let workers = if threads > 1 && items >= 2 * threads {
        threads
    } else {
        1
    };
    let need = workers * tile_len;
    if scratch.len() < need {
        scratch.resize(need, 0.0);
    }
    if workers == 1 {
        for item in 0..items {
            // SAFETY: items are run one at a time over the exclusively borrowed `out`.
            unsafe { plan.run_item(item, out_ptr, &mut scratch[..tile_len], threads > 1) };
        }
        return Ok(());
    }
    let next = AtomicUsize::new(0);
    let mut chunks: Vec<&mut [f32]> = if tile_len == 0 {
        (0..workers).map(|_| &mut [][..]).collect()
    } else {
        scratch[..need].chunks_mut(tile_len).collect()
    };
    chunks.par_iter_mut().for_each(|col| loop {
        let item = next.fetch_add(1, Ordering::Relaxed);
        if item >= items {
            break;
        }
        // SAFETY: the atomic counter hands each item to exactly one worker, and items
        // write disjoint output regions; `out` stays borrowed for the whole call.
        unsafe { plan.run_item(item, out_ptr, col, false) };
    });
    Ok(())
}

/// Writes the im2col matrix of output rows `oy0..oy1` for one group's input planes
/// `img` (`[cig, h, w]`): row `(ci*kh + ky)*kw + kx`, column `(oy-oy0)*ow + ox`.
/// `row_buf` (at least [`row_buf_len`] floats) holds one padded, phase-split input row.
#[allow(clippy::too_many_arguments)]
fn im2col(
    g: &Conv2dGeom,
    img: &[f32],
    h: usize,
    w: usize,
    ow: usize,
    oy0: usize,
    oy1: usize,
    col: &mut [f32],
    row_buf: &mut [f32],
) {
    let cols = (oy1 - oy0) * ow;
    let cig = g.c_in_per_group();
    let s = g.stride_w;
    // Padded row split into `s` phases of `pitch` columns: padded column x lives at
    // (x % s) * pitch + x / s, so tap kx of output ox is at a fixed offset + ox.
    let pitch = row_pitch(g, w, ow);
    let row_buf = &mut row_buf[..s * pitch];
    for ci in 0..cig {
        let plane = &img[ci * h * w..(ci + 1) * h * w];
        for ky in 0..g.kh {
            let r0 = (ci * g.kh + ky) * g.kw;
            for oy in oy0..oy1 {
                let c0 = (oy - oy0) * ow;
                let iy = (oy * g.stride_h + ky * g.dil_h) as isize - g.pad_top as isize;
                if iy < 0 || iy >= h as isize {
                    for kx in 0..g.kw {
                        col[(r0 + kx) * cols + c0..][..ow].fill(0.0);
                    }
                    continue;
                }
                let src = &plane[iy as usize * w..(iy as usize + 1) * w];
                if s == 1 {
                    for kx in 0..g.kw {
                        let dx = (kx * g.dil_w) as isize - g.pad_left as isize;
                        let (lo, hi) = valid_range(dx, 1, w, ow);
                        let dst = &mut col[(r0 + kx) * cols + c0..][..ow];
                        dst[..lo].fill(0.0);
                        dst[hi..].fill(0.0);
                        if lo < hi {
                            let start = (lo as isize + dx) as usize;
                            dst[lo..hi].copy_from_slice(&src[start..start + (hi - lo)]);
                        }
                    }
                    continue;
                }
                row_buf.fill(0.0);
                for ph in 0..s {
                    let x0 = g.pad_left + (ph + s - g.pad_left % s) % s;
                    let ix0 = x0 - g.pad_left;
                    if ix0 >= w {
                        continue;
                    }
                    let dst = &mut row_buf[ph * pitch + x0 / s..(ph + 1) * pitch];
                    for (d, v) in dst.iter_mut().zip(src[ix0..].iter().step_by(s)) {
                        *d = *v;
                    }
                }
                for kx in 0..g.kw {
                    let x = kx * g.dil_w;
                    let start = (x % s) * pitch + x / s;
                    col[(r0 + kx) * cols + c0..][..ow].copy_from_slice(&row_buf[start..start + ow]);
                }
            }
        }
    }
}

/// Columns per phase of the padded, phase-split input row used by strided im2col.
fn row_pitch(g: &Conv2dGeom, w: usize, ow: usize) -> usize {
    let need = (ow - 1) * g.stride_w + (g.kw - 1) * g.dil_w + 1;
    need.max(g.pad_left + w).div_ceil(g.stride_w)
}

/// Range `[lo, hi)` of output columns `ox < ow` whose input column `ox*stride + d` is
/// inside `[0, w)` (empty ranges have `lo >= hi`).
pub(crate) fn valid_range(d: isize, stride: usize, w: usize, ow: usize) -> (usize, usize) {
    let s = stride as isize;
    // smallest ox with ox*s + d >= 0
    let lo = if d >= 0 { 0 } else { ((-d) + s - 1) / s };
    // smallest ox with ox*s + d >= w
    let end = w as isize - d;
    let hi = if end <= 0 { 0 } else { (end + s - 1) / s };
    let lo = (lo as usize).min(ow);
    let hi = (hi as usize).min(ow);
    (lo, hi.max(lo))
}
