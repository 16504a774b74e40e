//! 1x1 stride-1 convolutions on small maps, computed pixel-major (AVX-512 CPUs).
//!
//! The packed GEMM ([`sgemm`]) vectorises along output pixels: a 7x7 map (49 pixels)
//! fills 49 of the 64 lanes of its vectors, and its `B` rows start at unaligned offsets
//! `kk * 49`. Here the roles swap: vectors run along **output channels** — the weights
//! are packed once per layer as `[panel][kk][48]` (48 channels, three vectors, per
//! panel; lanes past `c_out` are zero) — and the input pixels are broadcast scalars,
//! [`ROWS`] pixels per micro-tile. Every lane does useful work whatever the map size,
//! and the whole reduction runs in registers (no `C` reloads between reduction blocks).
//! A micro-tile ends by adding the bias and applying the activation, then writes its
//! `48 x ROWS` block back to NCHW through a small stack buffer (a transposed copy).
//!
//! Work is shared out as (image, channel panel, pixel block) items; pixel blocks split a
//! panel only when there are too few panels for the workers.

use std::arch::x86_64::*;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::conv::OutPtr;
use super::sgemm::activate;
use super::{Activation, Conv2dGeom};

/// Output channels per weight panel (three zmm vectors).
pub(crate) const NW: usize = 48;
/// Pixels per micro-tile (broadcast rows): `ROWS x 3` accumulators.
pub(crate) const ROWS: usize = 8;
/// Largest map (pixels per image) sent here by default.
pub(crate) const MAX_HW: usize = 256;

/// True if the layer is a dense 1x1 stride-1 unpadded convolution with at least 16
/// output channels, the CPU has AVX-512, and either `max_hw == usize::MAX` (always, for
/// tests) or the map has at most `max_hw` pixels **and** the packed GEMM would leave at
/// least a tenth of its vector lanes idle on it (`h * w` rounded up to 16: 7x7 maps use
/// 49 of 64 lanes there). Measured per layer on one thread (docs/KERNELS.md
/// "Pixel-major 1x1"): MobileNet v2's 7x7 layers run 1.2-1.25x faster here, at this
/// CPU's FMA peak; on maps whose pixel count fills the GEMM's vectors (8x8, 16x16,
/// 28x28) or nearly (14x14: 196 of 208 lanes) the packed GEMM is as fast or faster.
pub(crate) fn applies(g: &Conv2dGeom, h: usize, w: usize, max_hw: usize) -> bool {
    let hw = h * w;
    let idle = hw.div_ceil(16) * 16 - hw;
    g.groups == 1
        && g.is_pointwise()
        && (max_hw == usize::MAX || (hw <= max_hw && 10 * idle >= hw.div_ceil(16) * 16))
        && g.c_out >= 16
        && g.c_in >= 1
        && super::sgemm::available()
}

/// Floats of the packed weights of a `c_out x c_in` layer.
pub(crate) fn packed_len(c_out: usize, c_in: usize) -> usize {
    c_out.div_ceil(NW) * NW * c_in
}

/// Packs the OIHW weights (`c_out x c_in`, 1x1) into `out` (resized):
/// `out[q * NW * c_in + kk * NW + c] = w[(q * NW + c) * c_in + kk]`, zero past `c_out`.
pub(crate) fn pack_weights(c_out: usize, c_in: usize, w: &[f32], out: &mut Vec<f32>) {
    let len = packed_len(c_out, c_in);
    out.clear();
    out.resize(len, 0.0);
    for (q, panel) in out.chunks_exact_mut(NW * c_in).enumerate() {
        let co0 = q * NW;
        for c in 0..NW.min(c_out - co0) {
            let row = &w[(co0 + c) * c_in..(co0 + c + 1) * c_in];
            for (kk, &v) in row.iter().enumerate() {
                panel[kk * NW + c] = v;
            }
        }
    }
}

/// The convolution of `n` images (`c_in x hw` each) into `out` (`c_out x hw` each),
/// with `packed` from [`pack_weights`], on up to `threads` workers.
///
/// # Panics
/// If a slice is shorter than the dimensions say, or the CPU lacks AVX-512 (callers
/// check [`applies`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv(
    c_in: usize,
    c_out: usize,
    hw: usize,
    n: usize,
    input: &[f32],
    packed: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    out: &mut [f32],
    threads: usize,
) {
    assert!(
        super::sgemm::available()
            && input.len() >= n * c_in * hw
            && out.len() >= n * c_out * hw
            && packed.len() >= packed_len(c_out, c_in)
            && bias.is_none_or(|b| b.len() >= c_out)
    );
    if n == 0 || hw == 0 || c_out == 0 {
        return;
    }
    let panels = c_out.div_ceil(NW);
    let tiles = hw.div_ceil(ROWS);
    let threads = threads.max(1);
    // Enough items for about four per worker, splitting panels by pixels if needed.
    let pblocks = (4 * threads).div_ceil(n * panels).clamp(1, tiles);
    let items = n * panels * pblocks;
    let workers = threads.min(items);
    let next = AtomicUsize::new(0);
    let out_ptr = OutPtr(out.as_mut_ptr());
    crate::team::for_workers(workers, &|_| loop {
        let item = next.fetch_add(1, Ordering::Relaxed);
        if item >= items {
            break;
        }
        let (img, rest) = (item / (panels * pblocks), item % (panels * pblocks));
        let (q, pb) = (rest / pblocks, rest % pblocks);
        let co0 = q * NW;
        let cols = NW.min(c_out - co0);
        let mut b = [0.0f32; NW];
        if let Some(bias) = bias {
            b[..cols].copy_from_slice(&bias[co0..co0 + cols]);
        }
        let p_start = (pb * tiles / pblocks) * ROWS;
        let p_end = (((pb + 1) * tiles / pblocks) * ROWS).min(hw);
        let x = &input[img * c_in * hw..(img + 1) * c_in * hw];
        let wp = &packed[q * NW * c_in..(q + 1) * NW * c_in];
        // SAFETY: AVX-512 is present (asserted); `x` holds `c_in` planes of `hw`, `wp`
        // one panel of `c_in x NW`; the destination block (channels co0..co0+cols,
        // pixels p_start..p_end of image img) is inside `out` and written by this
        // item only (items are handed out once by the counter).
        unsafe {
            panel(
                c_in,
                hw,
                x,
                wp,
                &b,
                act,
                cols,
                out_ptr.at(img * c_out * hw + co0 * hw),
                p_start..p_end,
            )
        };
    });
}

/// One weight panel (`cols <= NW` channels) over pixels `pixels` of one image; `o`
/// points at the panel's first output channel plane.
///
/// # Safety
/// AVX-512F; `o` valid for writes of `cols` planes of `hw` floats (pixels `pixels`).
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
unsafe fn panel(
    k: usize,
    hw: usize,
    x: &[f32],
    wp: &[f32],
    bias: &[f32; NW],
    act: Activation,
    cols: usize,
    o: *mut f32,
    pixels: std::ops::Range<usize>,
) {
    assert!(x.len() >= k * hw && wp.len() >= k * NW && pixels.end <= hw && cols <= NW);
    let nv = cols.div_ceil(16);
    let mut buf = [0.0f32; ROWS * NW];
    let mut p0 = pixels.start;
    while p0 < pixels.end {
        let r = ROWS.min(pixels.end - p0);
        let (xp, w, bp, dst) = (
            // SAFETY: p0 < hw, so the pointer is inside the first plane.
            unsafe { x.as_ptr().add(p0) },
            wp.as_ptr(),
            bias.as_ptr(),
            buf.as_mut_ptr(),
        );
        macro_rules! go {
            ($r:literal) => {
                // SAFETY: `r` rows of pixels from p0 exist in each of the `k` planes of
                // `x` (stride `hw`); `wp` holds `k` rows of NW; `buf` holds ROWS x NW.
                unsafe {
                    match nv {
                        3 => tile3::<$r>(k, hw, xp, w, bp, act, dst),
                        2 => tile2::<$r>(k, hw, xp, w, bp, act, dst),
                        _ => tile1::<$r>(k, hw, xp, w, bp, act, dst),
                    }
                }
            };
        }
        match r {
            8 => go!(8),
            7 => go!(7),
            6 => go!(6),
            5 => go!(5),
            4 => go!(4),
            3 => go!(3),
            2 => go!(2),
            _ => go!(1),
        }
        // Transposed copy of the tile: channel c, pixels p0..p0 + r.
        for c in 0..cols {
            // SAFETY: channel c < cols, pixels p0..p0 + r inside `pixels` (contract).
            let d = unsafe { o.add(c * hw + p0) };
            for (i, row) in buf.chunks_exact(NW).take(r).enumerate() {
                // SAFETY: as above.
                unsafe { *d.add(i) = row[c] };
            }
        }
        p0 += r;
    }
}

/// `acc[r][v] += x[r] * w[v]` for pixel row `r` (if the tile has it) and every vector.
macro_rules! pm_fma {
    ($acc:ident, $wv:ident, $x:ident, $rows:ident, $r:literal, [$($v:literal),*]) => {
        if $rows > $r {
            let xv = _mm512_set1_ps(*$x.add($r));
            $( $acc[$r][$v] = _mm512_fmadd_ps(xv, $wv[$v], $acc[$r][$v]); )*
        }
    };
}

/// Row `r` of the tile (bias added, activated) into the stack buffer.
macro_rules! pm_store {
    ($acc:ident, $bv:ident, $act:ident, $buf:ident, $rows:ident, $r:literal, [$($v:literal),*]) => {
        if $rows > $r {
            $( _mm512_storeu_ps(
                $buf.add($r * NW + $v * 16),
                activate(_mm512_add_ps($acc[$r][$v], $bv[$v]), $act),
            ); )*
        }
    };
}

/// Defines the micro-kernel for `R` pixels x `NV` vectors of channels (literal indices,
/// so that the accumulators stay in registers; see [`super::sgemm`]).
macro_rules! pm_tile {
    ($name:ident, [$($v:literal),*]) => {
        /// `buf[r * NW + c] = act(bias[c] + sum_kk x[kk * hw + r] * w[kk * NW + c])`
        /// for `r < R` and the tile's vectors of channels.
        ///
        /// # Safety
        /// AVX-512F; `x` readable at `kk * hw + r` for `kk < k`, `r < R`; `w` at
        /// `k * NW` floats; `bias` NW floats; `buf` writable for `ROWS * NW` floats.
        #[target_feature(enable = "avx512f")]
        #[inline]
        unsafe fn $name<const R: usize>(
            k: usize,
            hw: usize,
            x: *const f32,
            w: *const f32,
            bias: *const f32,
            act: Activation,
            buf: *mut f32,
        ) {
            // SAFETY (whole body): the function contract.
            unsafe {
                let mut acc = [[$( { let _ = $v; _mm512_setzero_ps() } ),*]; ROWS];
                let (mut xp, mut wp) = (x, w);
                for _ in 0..k {
                    let wv = [$( _mm512_loadu_ps(wp.add($v * 16)) ),*];
                    pm_fma!(acc, wv, xp, R, 0, [$($v),*]);
                    pm_fma!(acc, wv, xp, R, 1, [$($v),*]);
                    pm_fma!(acc, wv, xp, R, 2, [$($v),*]);
                    pm_fma!(acc, wv, xp, R, 3, [$($v),*]);
                    pm_fma!(acc, wv, xp, R, 4, [$($v),*]);
                    pm_fma!(acc, wv, xp, R, 5, [$($v),*]);
                    pm_fma!(acc, wv, xp, R, 6, [$($v),*]);
                    pm_fma!(acc, wv, xp, R, 7, [$($v),*]);
                    xp = xp.add(hw);
                    wp = wp.add(NW);
                }
                let bv = [$( _mm512_loadu_ps(bias.add($v * 16)) ),*];
                pm_store!(acc, bv, act, buf, R, 0, [$($v),*]);
                pm_store!(acc, bv, act, buf, R, 1, [$($v),*]);
                pm_store!(acc, bv, act, buf, R, 2, [$($v),*]);
                pm_store!(acc, bv, act, buf, R, 3, [$($v),*]);
                pm_store!(acc, bv, act, buf, R, 4, [$($v),*]);
                pm_store!(acc, bv, act, buf, R, 5, [$($v),*]);
                pm_store!(acc, bv, act, buf, R, 6, [$($v),*]);
                pm_store!(acc, bv, act, buf, R, 7, [$($v),*]);
            }
        }
    };
}

pm_tile!(tile1, [0]);
pm_tile!(tile2, [0, 1]);
pm_tile!(tile3, [0, 1, 2]);

const _: () = assert!(ROWS == 8 && NW == 48);

#[cfg(test)]
mod tests {
    use super::*;

    /// Packing puts channel c of panel q at lane c of every reduction row, zero past
    /// `c_out`.
    #[test]
    fn pack_weights_layout() {
        let (c_out, c_in) = (50, 3);
        let w: Vec<f32> = (0..c_out * c_in).map(|i| i as f32 + 1.0).collect();
        let mut p = Vec::new();
        pack_weights(c_out, c_in, &w, &mut p);
        assert_eq!(p.len(), 2 * NW * c_in);
        for q in 0..2 {
            for kk in 0..c_in {
                for c in 0..NW {
                    let co = q * NW + c;
                    let want = if co < c_out { w[co * c_in + kk] } else { 0.0 };
                    assert_eq!(p[q * NW * c_in + kk * NW + c], want, "q {q} kk {kk} c {c}");
                }
            }
        }
    }
}
