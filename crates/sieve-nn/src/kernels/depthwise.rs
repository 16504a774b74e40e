//! Depthwise (and channel-multiplier) convolution: `c_in / groups == 1`, so every output
//! channel reads one input plane. MobileNet's 3x3 stride 1/2 layers are the target.
//!
//! * AVX-512, square 3x3 or 5x5 kernels, stride 1 or 2, no dilation (MobileNets): the
//!   plane is read in place ([`x86`]). Each output row is computed in vectors of 16
//!   outputs; a tap's 16 inputs are one unaligned load from the input row (stride 2: two
//!   loads and an even-lane permute), masked where the window hangs over the left or
//!   right edge, so padding costs nothing and no copy of the plane is made. Input rows
//!   above or below the plane are skipped. The masks depend only on the column block
//!   and the tap column, so they are computed once per call.
//! * Otherwise each input plane is copied into a padded, phase-split buffer
//!   ([`Stencil`]), so every tap is a constant offset and the whole plane is computed as
//!   one flat loop in register blocks of 16 outputs (bias fused), then compacted with the
//!   activation. The body is compiled for AVX-512, AVX2+FMA and portable targets and
//!   chosen once at run time.

use super::pool::split_planes;
use super::stencil::{with_bufs, Bufs, Stencil};
use super::stencil_simd::conv_flat;
use super::{Activation, Conv2dGeom, KernelError};

/// Plane chunks per row band of the band split (items = bands x chunks).
const BAND_PLANE_CHUNKS: usize = 8;
/// The band split needs this many output rows per thread. A call per (plane, band)
/// costs tens of nanoseconds of setup, as much as a whole 14x14 plane on two threads:
/// with 4-row bands the 14x14 and 7x7 layers of MobileNet v2 ran 2-3x slower, with
/// 7-row bands the 28x28 ones 2x (docs/KERNELS.md "Session 19").
pub(super) const BAND_MIN_ROWS: usize = 16;

/// Output rows per thread from which the band split applies: [`BAND_MIN_ROWS`], or the
/// value of `SIEVE_DW_BANDS` (`0`: never; for A/B measurements).
fn band_min_rows() -> usize {
    static V: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *V.get_or_init(|| match std::env::var("SIEVE_DW_BANDS") {
        Ok(v) => v.parse().unwrap_or(BAND_MIN_ROWS),
        Err(_) => BAND_MIN_ROWS,
    })
}

/// Fast path for `g.c_in_per_group() == 1`; sizes already checked by the caller.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv(
    g: &Conv2dGeom,
    input: &[f32],
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
    let khw = g.kh * g.kw;
    #[cfg(target_arch = "x86_64")]
    if let Some(direct) = x86::Direct::new(&st) {
        // Output rows `rows` of output plane `p` (all of it: `0..oh`) into `o`.
        let plane_rows = |p: usize, rows: std::ops::Range<usize>, o: &mut [f32]| {
            let (b, co) = (p / g.c_out, p % g.c_out);
            let src_idx = b * g.c_in + co / g.c_out_per_group();
            direct.plane_rows(
                &input[src_idx * h * w..][..h * w],
                &weights[co * khw..(co + 1) * khw],
                bias.map_or(0.0, |bs| bs[co]),
                act,
                o,
                rows,
            );
        };
        let planes = out.len().checked_div(ohw).unwrap_or(0);
        let min_rows = band_min_rows();
        if threads > 1 && planes > 0 && min_rows > 0 && oh >= min_rows * threads {
            // Row bands across all planes, numbered top band first and taken from both
            // ends (`Ends`): the calling thread computes the top rows of every plane, the
            // helper the bottom ones — the rows their cores' 1x1 layers before and after
            // produce and consume (docs/KERNELS.md "Session 19").
            let bh = oh.div_ceil(threads);
            let bands = oh.div_ceil(bh);
            let per = planes.div_ceil(BAND_PLANE_CHUNKS).max(1);
            let chunks = planes.div_ceil(per);
            let items = bands * chunks;
            let ends = crate::team::Ends::new(items);
            let dst = super::conv::OutPtr(out.as_mut_ptr());
            crate::team::for_workers(threads.min(items), &|slot| {
                while let Some(item) = ends.take(slot) {
                    let (band, chunk) = (item / chunks, item % chunks);
                    let rows = band * bh..((band + 1) * bh).min(oh);
                    for p in chunk * per..((chunk + 1) * per).min(planes) {
                        // SAFETY: rows `rows` of plane `p` are `rows.len() * ow` floats
                        // inside `out` (`planes * ohw` long), written by this item only
                        // (the counter hands each (band, chunk) out once); `out` outlives
                        // the section.
                        let o = unsafe {
                            std::slice::from_raw_parts_mut(
                                dst.at(p * ohw + rows.start * ow),
                                rows.len() * ow,
                            )
                        };
                        plane_rows(p, rows.clone(), o);
                    }
                }
            });
            return Ok(());
        }
        let run = |p0: usize, dst: &mut [f32]| {
            for (i, plane_out) in dst.chunks_exact_mut(ohw).enumerate() {
                plane_rows(p0 + i, 0..oh, plane_out);
            }
        };
        split_planes(out, ohw, threads, run);
        return Ok(());
    }
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
    split_planes(out, ohw, threads, run);
    Ok(())
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use super::super::simd::{self, Level};
    use super::super::stencil::Stencil;
    use super::Activation;
    use std::arch::x86_64::*;

    /// The in-place AVX-512 path for one geometry: kernel size `K`, stride `S`, and the
    /// load masks of every (column block, tap column, half) — see the module docs.
    pub(crate) struct Direct {
        k: usize,
        s: usize,
        h: usize,
        w: usize,
        oh: usize,
        ow: usize,
        pad_top: usize,
        pad_left: usize,
        /// `masks[xb * 10 + kx * s + half]` (`k * s <= 10`): lanes `i` whose input
        /// column `xb * 16 * s + 16 * half + kx - pad_left + i` is inside `0..w`.
        masks: Vec<u16>,
        /// A zero input row (`w` floats), read for rows above and below the plane.
        zeros: Vec<f32>,
        /// The same filled with `-inf`, for max pooling.
        neg: Vec<f32>,
    }

    /// Lanes `i < 16` with `0 <= b + i < w`.
    pub(crate) fn lane_mask(b: isize, w: isize) -> u16 {
        let lo = (-b).clamp(0, 16);
        let hi = (w - b).clamp(0, 16);
        if hi <= lo {
            0
        } else {
            (((1u32 << hi) - 1) & !((1u32 << lo) - 1)) as u16
        }
    }

    impl Direct {
        /// The direct path for `st`, if it applies (AVX-512, square 2x2/3x3/5x5 window,
        /// stride 1 or 2 both ways, no dilation).
        pub(crate) fn new(st: &Stencil) -> Option<Direct> {
            let k = st.kh;
            let s = st.sh;
            let ok = matches!(simd::level(), Level::Avx512)
                && st.kw == k
                && matches!(k, 2 | 3 | 5)
                && st.sw == s
                && (s == 1 || s == 2)
                && st.dh == 1
                && st.dw == 1
                && st.h > 0
                && st.w > 0
                && st.oh > 0
                && st.ow > 0
                && isize::try_from(st.w * s + 64).is_ok();
            if !ok {
                return None;
            }
            let blocks = st.ow.div_ceil(16);
            let mut masks = vec![0; blocks * 10];
            for xb in 0..blocks {
                for kx in 0..k {
                    for half in 0..s {
                        let b = (xb * 16 * s + 16 * half + kx) as isize - st.pad_left as isize;
                        masks[xb * 10 + kx * s + half] = lane_mask(b, st.w as isize);
                    }
                }
            }
            Some(Direct {
                k,
                s,
                h: st.h,
                w: st.w,
                oh: st.oh,
                ow: st.ow,
                pad_top: st.pad_top,
                pad_left: st.pad_left,
                masks,
                zeros: vec![0.0; st.w],
                neg: vec![f32::NEG_INFINITY; st.w],
            })
        }

        /// One plane: `out[oy][ox] = act(bias + sum w[ky][kx] * in[oy*s+ky-pt][ox*s+kx-pl])`
        /// with out-of-plane inputs as zero.
        ///
        /// # Panics
        /// If a slice does not match the geometry (a caller bug).
        pub(crate) fn plane(
            &self,
            src: &[f32],
            wts: &[f32],
            bias: f32,
            act: Activation,
            out: &mut [f32],
        ) {
            self.plane_rows(src, wts, bias, act, out, 0..self.oh);
        }

        /// Output rows `rows` of one plane (as [`Direct::plane`], bit for bit): `out`
        /// holds just those rows, `rows.len() * ow` floats.
        ///
        /// # Panics
        /// If a slice or the row range does not match the geometry (a caller bug).
        pub(crate) fn plane_rows(
            &self,
            src: &[f32],
            wts: &[f32],
            bias: f32,
            act: Activation,
            out: &mut [f32],
            rows: std::ops::Range<usize>,
        ) {
            assert!(
                src.len() >= self.h * self.w
                    && wts.len() >= self.k * self.k
                    && rows.start <= rows.end
                    && rows.end <= self.oh
                    && out.len() >= rows.len() * self.ow,
                "depthwise: operands do not match the geometry"
            );
            // SAFETY: AVX-512F was checked in `new`; the bounds above are what the
            // kernels rely on (their loads are masked to `0..w` of rows `0..h`, their
            // stores to `0..ow` of the rows in `rows`, `out` starting at `rows.start`).
            unsafe { self.dispatch::<false>(src, wts, bias, act, out, rows) }
        }

        /// One plane of max pooling over the window (out-of-plane inputs are `-inf`;
        /// a NaN anywhere in a window gives NaN, like the portable kernel).
        ///
        /// # Panics
        /// If a slice does not match the geometry (a caller bug).
        pub(crate) fn max_plane(&self, src: &[f32], out: &mut [f32]) {
            assert!(
                src.len() >= self.h * self.w && out.len() >= self.oh * self.ow,
                "max pool: operands do not match the geometry"
            );
            // SAFETY: as in `plane_rows` over all rows (the weights are not read when
            // pooling).
            unsafe { self.dispatch::<true>(src, &[], 0.0, Activation::None, out, 0..self.oh) }
        }

        /// # Safety
        /// AVX-512F; operands as checked by [`Direct::plane`] / [`Direct::max_plane`].
        unsafe fn dispatch<const MAX: bool>(
            &self,
            src: &[f32],
            wts: &[f32],
            bias: f32,
            act: Activation,
            out: &mut [f32],
            rows: std::ops::Range<usize>,
        ) {
            // SAFETY: forwarded.
            unsafe {
                match (self.k, self.s) {
                    (2, 1) => self.run::<2, 1, MAX>(src, wts, bias, act, out, rows),
                    (2, 2) => self.run::<2, 2, MAX>(src, wts, bias, act, out, rows),
                    (3, 1) => self.run::<3, 1, MAX>(src, wts, bias, act, out, rows),
                    (3, 2) => self.run::<3, 2, MAX>(src, wts, bias, act, out, rows),
                    (5, 1) => self.run::<5, 1, MAX>(src, wts, bias, act, out, rows),
                    _ => self.run::<5, 2, MAX>(src, wts, bias, act, out, rows),
                }
            }
        }

        /// # Safety
        /// AVX-512F; operands as checked by [`Direct::plane_rows`] (`out` starts at output
        /// row `rows.start`).
        #[target_feature(enable = "avx512f")]
        unsafe fn run<const K: usize, const S: usize, const MAX: bool>(
            &self,
            src: &[f32],
            wts: &[f32],
            bias: f32,
            act: Activation,
            out: &mut [f32],
            out_rows: std::ops::Range<usize>,
        ) {
            let (kind, lo, hi) = match act {
                Activation::None => (0u8, 0.0, 0.0),
                Activation::Relu => (1, 0.0, 0.0),
                Activation::Clip { min, max } => (2, min, max),
            };
            let (lo, hi) = (_mm512_set1_ps(lo), _mm512_set1_ps(hi));
            let bv = _mm512_set1_ps(bias);
            let mut wv = [[_mm512_setzero_ps(); K]; K];
            if !MAX {
                for (ky, row) in wv.iter_mut().enumerate() {
                    for (kx, v) in row.iter_mut().enumerate() {
                        *v = _mm512_set1_ps(wts[ky * K + kx]);
                    }
                }
            }
            // Value of inputs outside the plane: 0 for the convolution, -inf for max.
            let (padv, pad_row) = if MAX {
                (_mm512_set1_ps(f32::NEG_INFINITY), self.neg.as_ptr())
            } else {
                (_mm512_setzero_ps(), self.zeros.as_ptr())
            };
            // Even lanes of the 32 floats `a ++ b`.
            let even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
            let (sp, op) = (src.as_ptr(), out.as_mut_ptr());
            // `out` starts at this output row.
            let row0 = out_rows.start;
            let (w, pl) = (self.w as isize, self.pad_left as isize);
            // `R` output rows at a time (column block by column block): each input row
            // is loaded once per tap column and feeds every output row whose window
            // covers it — for 3x3 stride 1 and R = 4, 4.5 loads per output vector
            // instead of 9 — and the R accumulator chains run side by side. Per output
            // row the taps are added in the same order as with R = 1 (`ky` ascending,
            // `kx` inner; even and odd `ky` into two accumulators), so the results are
            // bit-identical whatever R is.
            macro_rules! row_group {
                ($r:literal, $oy0:expr) => {{
                    const R: usize = $r;
                    let ni = (R - 1) * S + K;
                    let oy0: usize = $oy0;
                    let iy0 = (oy0 * S) as isize - self.pad_top as isize;
                    // Rows above or below the plane read the padding row (same masks
                    // apply: it is `w` long).
                    let mut rows = [pad_row; 16];
                    for (i, r) in rows.iter_mut().enumerate().take(ni) {
                        let iy = iy0 + i as isize;
                        if iy >= 0 && iy < self.h as isize {
                            *r = sp.wrapping_offset(iy * w);
                        }
                    }
                    let mut x0 = 0;
                    let mut xb = 0;
                    while x0 < self.ow {
                        let n = (self.ow - x0).min(16);
                        let m: &[u16; 10] = match self.masks[xb * 10..].first_chunk() {
                            Some(m) => m,
                            None => unreachable!("one mask row per column block"),
                        };
                        let (mut acc0, mut acc1) = if MAX {
                            ([padv; R], [padv; R])
                        } else {
                            ([bv; R], [_mm512_setzero_ps(); R])
                        };
                        // Max pooling: lanes that saw a NaN (`max_ps` would drop it).
                        let mut nan: [__mmask16; R] = [0; R];
                        // `K`, `S` and `R` are constants: the loops unroll, so the
                        // accumulators stay in registers.
                        for (i, &irow) in rows.iter().enumerate().take(ni) {
                            for kx in 0..K {
                                let b = (x0 * S + kx) as isize - pl;
                                // SAFETY: lanes outside the mask (inputs outside `0..w`
                                // of this row, which is inside the plane) are not read.
                                let v = unsafe {
                                    if S == 1 {
                                        _mm512_mask_loadu_ps(padv, m[kx], irow.wrapping_offset(b))
                                    } else {
                                        let a = _mm512_mask_loadu_ps(
                                            padv,
                                            m[kx * 2],
                                            irow.wrapping_offset(b),
                                        );
                                        let c = _mm512_mask_loadu_ps(
                                            padv,
                                            m[kx * 2 + 1],
                                            irow.wrapping_offset(b + 16),
                                        );
                                        _mm512_permutex2var_ps(a, even, c)
                                    }
                                };
                                for r in 0..R {
                                    if i < r * S || i - r * S >= K {
                                        continue;
                                    }
                                    let ky = i - r * S;
                                    if MAX {
                                        nan[r] |= _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
                                        if ky % 2 == 0 {
                                            acc0[r] = _mm512_max_ps(v, acc0[r]);
                                        } else {
                                            acc1[r] = _mm512_max_ps(v, acc1[r]);
                                        }
                                    } else if ky % 2 == 0 {
                                        acc0[r] = _mm512_fmadd_ps(v, wv[ky][kx], acc0[r]);
                                    } else {
                                        acc1[r] = _mm512_fmadd_ps(v, wv[ky][kx], acc1[r]);
                                    }
                                }
                            }
                        }
                        let omask = if n == 16 { 0xFFFF } else { (1u16 << n) - 1 };
                        for r in 0..R {
                            let v = if MAX {
                                let v = _mm512_max_ps(acc0[r], acc1[r]);
                                _mm512_mask_mov_ps(v, nan[r], _mm512_set1_ps(f32::NAN))
                            } else {
                                _mm512_add_ps(acc0[r], acc1[r])
                            };
                            let v = match kind {
                                0 => v,
                                1 => _mm512_max_ps(v, lo),
                                _ => _mm512_min_ps(_mm512_max_ps(v, lo), hi),
                            };
                            let orow = op.wrapping_add((oy0 + r - row0) * self.ow);
                            // SAFETY: lanes `< n` are outputs `x0..x0 + n` of row
                            // `oy0 + r` in `out_rows`, at `oy0 + r - row0` in `out`.
                            unsafe { _mm512_mask_storeu_ps(orow.wrapping_add(x0), omask, v) };
                        }
                        x0 += 16;
                        xb += 1;
                    }
                }};
            }
            // Groups of four rows for the 3x3 convolution (MobileNets' depthwise layers;
            // 5x5 would need 25 weight registers, pooling keeps one row at a time), the
            // last 1-3 rows as one group. Measured on one thread (docs/KERNELS.md
            // "Depthwise row groups"): four rows beat two and eight at every MobileNet v2
            // shape, stride 1 and 2.
            let mut oy = out_rows.start;
            if K == 3 && !MAX {
                while oy + 4 <= out_rows.end {
                    row_group!(4, oy);
                    oy += 4;
                }
                match out_rows.end - oy {
                    3 => row_group!(3, oy),
                    2 => row_group!(2, oy),
                    1 => row_group!(1, oy),
                    _ => {}
                }
                oy = out_rows.end;
            }
            while oy < out_rows.end {
                row_group!(1, oy);
                oy += 1;
            }
        }
    }
}
