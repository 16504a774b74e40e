//! Direct convolution for small layers: no im2col and no GEMM call.
//!
//! The input planes of one (image, group) unit are in the padded, phase-split layout of
//! [`super::stencil::Stencil`] (or, for 1x1 stride-1 unpadded convolutions, are the
//! input planes themselves), so every tap is a constant offset from the flat output
//! index `oy * P + ox`. A register block of [`ROWS`] output channels x up to [`VECS`]
//! vectors of 16 flat outputs accumulates, for every input channel and tap, one vector
//! load per output vector times one broadcast weight per output channel (24 FMAs per 10
//! loads), with the bias as the initial value and the activation applied before the
//! store. Weights are read in place (`[c_out, c_in/groups, kh, kw]`): each of the
//! [`ROWS`] rows is a sequential stream, so nothing is packed and compressed weights
//! decoded per run need no extra copy.
//!
//! When the output width is a multiple of 16, [`Block::rows`] makes the kernel skip the
//! `P - ow` junk columns of each flat row: output `j = oy * ow + ox` (stored densely,
//! straight into the output plane) reads input `oy * P + ox`, and every vector of 16
//! outputs is still one contiguous run of the input. On small maps that drops 1.125x
//! (32 wide, 5x5) or 1.25x (16 wide, 5x5) executed work to none. (Widths of 8 mod 16
//! would need two half loads per vector; measured slower than the junk columns on
//! 8x8 3x3 and 24x24 layers, docs/PERFORMANCE.md "Session 18", so they stay flat.)
//!
//! Narrow maps (stride 1, output width = input width = 4 or 8, so that 16 divides by the
//! width) use the [`Narrow`] layout instead: input rows stored back to back without
//! horizontal padding, one vector spans 16 / width output rows, and each tap's load is
//! masked ([`Block::masks`]) to zero the lanes whose input column falls in the padding.
//! No junk at all, where the stencil's pitch costs 1.25x (3x3 on 8x8) to 2x (5x5 on 4x4).
//!
//! AVX-512 only ([`available`]); other CPUs use the GEMM path of [`super::conv`].

use super::simd::{self, Level};
use super::Activation;

/// Output channels per register block.
pub(crate) const ROWS: usize = 6;
/// Vectors of 16 outputs per register block.
pub(crate) const VECS: usize = 4;

/// True if the CPU runs the direct kernel (AVX-512F).
pub(crate) fn available() -> bool {
    matches!(simd::level(), Level::Avx512)
}

/// One block of work for [`run`].
pub(crate) struct Block<'a> {
    /// `cig` input planes of `plane_len` floats each.
    pub planes: &'a [f32],
    /// Floats per input plane.
    pub plane_len: usize,
    /// Input channels (per group).
    pub cig: usize,
    /// Tap offsets from the flat output index, `(ky, kx)` row-major.
    pub taps: &'a [usize],
    /// Weights of the block's output channels: `rows` rows of `cig * taps.len()`.
    pub weights: &'a [f32],
    /// Bias per output channel of the block (`rows` values).
    pub bias: &'a [f32],
    /// First output index.
    pub j0: usize,
    /// Outputs to compute from `j0`.
    pub len: usize,
    /// Fused activation.
    pub act: Activation,
    /// `None`: output `j` reads the planes at `j` (flat layout, junk columns included).
    /// `Some(Rows { ow, pitch })`: output `j` reads them at `(j / ow) * pitch + j % ow`.
    pub rows: Option<Rows>,
    /// Per tap, the lanes of every vector that read the input (the others read zero):
    /// the [`Narrow`] layout. Needs `rows == None` and `j0` a multiple of 16.
    pub masks: Option<&'a [u16]>,
}

/// Input layout of the narrow-map mode (see the module documentation): per input
/// channel, `pad_left` zeros, then rows `-pad_top ..` of the input, `w` floats each
/// (padding rows zero). Output `j = oy * w + ox` reads tap `(ky, kx)` at `j + ky * dh * w
/// + kx * dw`, with lanes whose column `ox + kx * dw - pad_left` is outside `0..w` masked.
#[derive(Debug, Clone)]
pub(crate) struct Narrow {
    w: usize,
    h: usize,
    pad_top: usize,
    pad_left: usize,
    /// Floats per input channel.
    pub plane_len: usize,
    /// Tap offsets, `(ky, kx)` row-major.
    pub taps: Vec<usize>,
    /// Lane masks per tap.
    pub masks: Vec<u16>,
}

impl Narrow {
    /// The layout for a convolution of an `h x w` input, or `None` if it does not apply:
    /// stride 1, output width equal to the input width, and that width 4 or 8.
    pub fn new(
        (kh, kw): (usize, usize),
        (sh, sw): (usize, usize),
        (dh, dw): (usize, usize),
        (pad_top, pad_left): (usize, usize),
        (h, w): (usize, usize),
        (oh, ow): (usize, usize),
    ) -> Option<Narrow> {
        if sh != 1 || sw != 1 || ow != w || !(w == 4 || w == 8) || kh * kw <= 1 || oh == 0 {
            return None;
        }
        let rows = (oh + (kh - 1) * dh).max(pad_top + h);
        let plane_len = pad_left + rows * w + (kw - 1) * dw;
        let mut taps = Vec::with_capacity(kh * kw);
        let mut masks = Vec::with_capacity(kh * kw);
        for ky in 0..kh {
            for kx in 0..kw {
                taps.push(ky * dh * w + kx * dw);
                let mut m = 0u16;
                for lane in 0..16 {
                    let x = (lane % w + kx * dw) as isize - pad_left as isize;
                    if (0..w as isize).contains(&x) {
                        m |= 1 << lane;
                    }
                }
                masks.push(m);
            }
        }
        Some(Narrow {
            w,
            h,
            pad_top,
            pad_left,
            plane_len,
            taps,
            masks,
        })
    }

    /// Writes the `[h, w]` input plane `src` into `buf` (`plane_len` floats), padding
    /// included.
    pub fn fill(&self, src: &[f32], buf: &mut [f32]) {
        let start = self.pad_left + self.pad_top * self.w;
        let n = self.h * self.w;
        buf[..start].fill(0.0);
        buf[start..start + n].copy_from_slice(&src[..n]);
        buf[start + n..self.plane_len].fill(0.0);
    }
}

/// Dense output rows over a pitched input (see the module documentation).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rows {
    /// Output row width, a positive multiple of 16.
    pub ow: usize,
    /// Input row pitch, at least `ow`.
    pub pitch: usize,
}

impl Block<'_> {
    /// Input index (before the tap offset) of output `j`.
    fn input_index(&self, j: usize) -> usize {
        match self.rows {
            None => j,
            Some(r) => (j / r.ow) * r.pitch + j % r.ow,
        }
    }
}

/// Computes, for `r < rows` and `j < len`,
/// `dst[r * ld + j] = act(bias[r] + sum_{ci, t} weights[r][ci * taps + t] *
/// planes[ci * plane_len + taps[t] + i(j0 + j)])`, where `rows = bias.len() <= ROWS` and
/// `i` is [`Block::rows`]' input index (the identity without it); with [`Block::masks`],
/// a term whose tap mask excludes lane `(j0 + j) % 16` reads zero instead of the plane.
///
/// The destination is a raw pointer because callers' output rows interleave with other
/// threads' (each thread owns its `[j0, j0 + len)` column range of every row).
///
/// # Panics
/// If an input operand is too short for the geometry (a bug in the caller's layout,
/// never input data): every plane read must stay inside its plane.
///
/// # Safety
/// `dst + r * ld + j` for `r < rows`, `j < len` must be valid for writes and not
/// accessed by anyone else during the call.
pub(crate) unsafe fn run_raw(b: &Block<'_>, dst: *mut f32, ld: usize) {
    let rows = b.bias.len();
    let kdim = b.cig * b.taps.len();
    let max_off = b.taps.iter().copied().max().unwrap_or(0);
    // The last output read is the largest input index (the input index grows with `j`).
    let last_in = if b.len == 0 {
        0
    } else {
        b.input_index(b.j0 + b.len - 1) + 1
    };
    assert!(
        available()
            && (1..=ROWS).contains(&rows)
            && b.weights.len() >= rows * kdim
            && (b.cig == 0 || (b.planes.len() >= b.cig * b.plane_len))
            && max_off + last_in <= b.plane_len
            && b.rows.is_none_or(|r| {
                r.ow > 0 && r.ow.is_multiple_of(16) && r.pitch >= r.ow && b.j0.is_multiple_of(16)
            })
            && b.masks.is_none_or(|m| {
                m.len() == b.taps.len() && b.rows.is_none() && b.j0.is_multiple_of(16)
            }),
        "direct conv: operands do not match the geometry"
    );
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX-512F is available and the bounds above hold: every load reads
    // `planes[ci * plane_len + off + i(j0 + j)]` with `off + i(j0 + j) < plane_len`
    // (masked beyond `len`); every store writes `dst + r * ld + j` with `j < len`
    // (caller).
    unsafe {
        x86::run(b, rows, kdim, dst, ld)
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (dst, ld, kdim);
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Activation, Block, VECS};
    use std::arch::x86_64::*;

    /// Dispatches every (addressing, rows, vectors) block shape to a monomorphised body.
    ///
    /// # Safety
    /// AVX-512F, and the bounds checked by [`super::run_raw`].
    pub unsafe fn run(b: &Block<'_>, rows: usize, kdim: usize, dst: *mut f32, ld: usize) {
        let (kind, lo, hi) = match b.act {
            Activation::None => (0u8, 0.0, 0.0),
            Activation::Relu => (1, 0.0, 0.0),
            Activation::Clip { min, max } => (2, min, max),
        };
        let chunk = 16 * VECS;
        let mut j = 0;
        // SAFETY (whole loop): pointer offsets stay inside the operands (caller bounds).
        while j < b.len {
            let n = (b.len - j).min(chunk);
            let vecs = n.div_ceil(16);
            let rem = n - (vecs - 1) * 16;
            let mask: __mmask16 = if rem == 16 { 0xFFFF } else { (1u16 << rem) - 1 };
            // Each vector starts a contiguous input run: in rows mode `j0` and the row
            // width are multiples of 16, so no vector crosses an output row.
            let mut ins = [0usize; VECS];
            for (v, i) in ins.iter_mut().enumerate().take(vecs) {
                *i = b.input_index(b.j0 + j + 16 * v);
            }
            let a = Args {
                planes: b.planes.as_ptr(),
                plane_len: b.plane_len,
                cig: b.cig,
                taps: b.taps,
                masks: b.masks.unwrap_or(&[]),
                w: b.weights.as_ptr(),
                kdim,
                bias: b.bias.as_ptr(),
                ins,
                dst: dst.wrapping_add(j),
                ld,
                mask,
                kind,
                lo,
                hi,
            };
            // Tap masks come with the flat layout. Otherwise, one run of `16 * vecs`
            // inputs (the flat layout, rows of 64 or more) lets the loads take constant
            // displacements from one base, which the 4-vector body needs to keep its 28
            // vector and the address registers apart.
            let mode = if b.masks.is_some() {
                MASKED
            } else if (0..vecs).all(|v| ins[v] == ins[0] + 16 * v) {
                CONTIG
            } else {
                OFFSETS
            };
            // SAFETY: forwarded from the caller (the same bounds).
            unsafe {
                match mode {
                    CONTIG => by_rows::<CONTIG>(&a, rows, vecs),
                    OFFSETS => by_rows::<OFFSETS>(&a, rows, vecs),
                    _ => by_rows::<MASKED>(&a, rows, vecs),
                }
            }
            j += n;
        }
    }

    /// Addressing of a register block's loads: each vector at its own `ins[v]`.
    const OFFSETS: u8 = 0;
    /// `ins[v] == ins[0] + 16 * v`: constant displacements from one base.
    const CONTIG: u8 = 1;
    /// As [`CONTIG`], every load masked by its tap's lane mask.
    const MASKED: u8 = 2;

    /// Raw operands of one register block.
    struct Args<'a> {
        /// Input plane 0.
        planes: *const f32,
        plane_len: usize,
        cig: usize,
        taps: &'a [usize],
        /// Lane mask per tap ([`MASKED`] only).
        masks: &'a [u16],
        w: *const f32,
        kdim: usize,
        bias: *const f32,
        /// Input index of each vector's first lane (before the tap offset).
        ins: [usize; VECS],
        /// Output row 0 at the block's first output.
        dst: *mut f32,
        ld: usize,
        /// Lanes of the last vector that are real outputs.
        mask: __mmask16,
        kind: u8,
        lo: f32,
        hi: f32,
    }

    /// # Safety
    /// As [`run`].
    #[inline(always)]
    unsafe fn by_rows<const K: u8>(a: &Args<'_>, rows: usize, vecs: usize) {
        // SAFETY: forwarded.
        unsafe {
            match rows {
                1 => by_vecs::<1, K>(a, vecs),
                2 => by_vecs::<2, K>(a, vecs),
                3 => by_vecs::<3, K>(a, vecs),
                4 => by_vecs::<4, K>(a, vecs),
                5 => by_vecs::<5, K>(a, vecs),
                _ => by_vecs::<6, K>(a, vecs),
            }
        }
    }

    /// # Safety
    /// As [`run`].
    #[inline(always)]
    unsafe fn by_vecs<const R: usize, const K: u8>(a: &Args<'_>, vecs: usize) {
        // SAFETY: forwarded.
        unsafe {
            match vecs {
                1 => block::<R, 1, K>(a),
                2 => block::<R, 2, K>(a),
                3 => block::<R, 3, K>(a),
                _ => block::<R, 4, K>(a),
            }
        }
    }

    /// `R` output channels x `V` vectors; the last vector is masked. `K`: the addressing
    /// ([`OFFSETS`], [`CONTIG`], [`MASKED`]; the caller guarantees what they assume).
    ///
    /// # Safety
    /// AVX-512F; reads `planes + ci * plane_len + off + ins[v] + [0, 16)` (masked to the
    /// real outputs in the last vector) and writes `dst + r * ld + [0, 16 V)` (masked).
    #[target_feature(enable = "avx512f")]
    unsafe fn block<const R: usize, const V: usize, const K: u8>(a: &Args<'_>) {
        // SAFETY: every pointer access below stays in the ranges stated above.
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); V]; R];
            for (r, row) in acc.iter_mut().enumerate() {
                let b = _mm512_set1_ps(*a.bias.add(r));
                for v in row.iter_mut() {
                    *v = b;
                }
            }
            // Offsets of each vector from `planes`: constants unless `OFFSETS` (the first
            // vector's offset folded into the base pointer).
            let contig = K != OFFSETS;
            let first = if contig { a.ins[0] } else { 0 };
            let planes = a.planes.add(first);
            let mut ins = [0usize; V];
            for (v, i) in ins.iter_mut().enumerate() {
                *i = if contig { 16 * v } else { a.ins[v] };
            }
            let ntaps = a.taps.len();
            for ci in 0..a.cig {
                let plane = planes.add(ci * a.plane_len);
                let wc = a.w.add(ci * ntaps);
                for (t, &off) in a.taps.iter().enumerate() {
                    // Lanes of a masked load outside its mask read nothing and are zero.
                    let p = plane.wrapping_add(off);
                    let mut x = [_mm512_setzero_ps(); V];
                    let tm: __mmask16 = if K == MASKED {
                        *a.masks.get_unchecked(t)
                    } else {
                        0xFFFF
                    };
                    for (v, xv) in x.iter_mut().enumerate() {
                        *xv = if K == MASKED {
                            let m = if v + 1 == V { tm & a.mask } else { tm };
                            _mm512_maskz_loadu_ps(m, p.wrapping_add(ins[v]))
                        } else if v + 1 == V {
                            _mm512_maskz_loadu_ps(a.mask, p.add(ins[v]))
                        } else {
                            _mm512_loadu_ps(p.add(ins[v]))
                        };
                    }
                    for (r, row) in acc.iter_mut().enumerate() {
                        let wv = _mm512_set1_ps(*wc.add(r * a.kdim + t));
                        for (v, acc_v) in row.iter_mut().enumerate() {
                            *acc_v = _mm512_fmadd_ps(wv, x[v], *acc_v);
                        }
                    }
                }
            }
            let (lo, hi) = (_mm512_set1_ps(a.lo), _mm512_set1_ps(a.hi));
            for (r, row) in acc.iter().enumerate() {
                let d = a.dst.add(r * a.ld);
                for (v, &val) in row.iter().enumerate() {
                    // `max_ps(x, lo)` returns `lo` for NaN `x`, like `f32::max`.
                    let val = match a.kind {
                        0 => val,
                        1 => _mm512_max_ps(val, lo),
                        _ => _mm512_min_ps(_mm512_max_ps(val, lo), hi),
                    };
                    if v + 1 == V {
                        _mm512_mask_storeu_ps(d.add(16 * v), a.mask, val);
                    } else {
                        _mm512_storeu_ps(d.add(16 * v), val);
                    }
                }
            }
        }
    }
}
