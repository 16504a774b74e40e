//! 3x3 stride-2 convolution with few input channels (the first layer of the MobileNets:
//! RGB in, 3 -> 8 or 32 channels) on AVX-512, with the input planes read in place.
//!
//! The general path copies every input plane into the padded, phase-split stencil
//! layout first; for these layers that copy (three 224x224 planes: ~0.6 MB written,
//! memory-bound) was a fifth of the layer, and it is not shared well between two
//! threads (three planes). Here each output row's 16-pixel column block builds its 27
//! `B` vectors (input channel x kernel row x kernel column) straight from the input
//! rows — two masked loads and one even/odd permute per vector (kernel columns 0 and 1
//! share a pair of loads) — and feeds each to a block of 8 or 16 output channels held
//! in registers (weights broadcast from a small repacked copy). Padding costs nothing:
//! lanes outside the row are masked to zero, rows outside the plane are skipped. Work is
//! split by output rows, the calling thread from the top (`team::Ends`).
//!
//! Each output is `bias + sum` over (input channel, kernel row, kernel column) in that
//! order, one fused multiply-add per term, like the packed GEMM; the kernel tests
//! compare it with the reference convolution.

use super::depthwise::x86::lane_mask;
use super::{Activation, Conv2dGeom};
use std::arch::x86_64::*;

/// Most input channels (27 `B` vectors for 3 channels; more would rather use the GEMM).
const MAX_C_IN: usize = 4;

/// True if the layer has the shape this kernel handles: dense 3x3, stride 2 both ways,
/// no dilation, at most [`MAX_C_IN`] input channels, pads of at most 1 before and 2
/// after, and AVX-512. `SIEVE_STRIDE2=0` turns the kernel off (for A/B measurements).
pub(crate) fn applies(g: &Conv2dGeom, h: usize, w: usize) -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let on = *ENABLED.get_or_init(|| std::env::var("SIEVE_STRIDE2").map_or(true, |v| v != "0"));
    on && g.groups == 1
        && (1..=MAX_C_IN).contains(&g.c_in)
        && g.c_out > 0
        && (g.kh, g.kw) == (3, 3)
        && (g.stride_h, g.stride_w) == (2, 2)
        && (g.dil_h, g.dil_w) == (1, 1)
        && g.pad_top <= 1
        && g.pad_left <= 1
        && g.pad_bottom <= 2
        && g.pad_right <= 2
        && h > 0
        && w > 0
        && isize::try_from(w + 64).is_ok()
        && super::direct::available()
}

/// `out = act(conv(input) + bias)` for `n` images of `g.c_in x h x w` into
/// `n x g.c_out x oh x ow`, where the caller checked [`applies`] and the slice lengths.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv(
    g: &Conv2dGeom,
    input: &[f32],
    (n, h, w): (usize, usize, usize),
    weights: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    out: &mut [f32],
    (oh, ow): (usize, usize),
    threads: usize,
) {
    let (ci, co) = (g.c_in, g.c_out);
    assert!(
        applies(g, h, w)
            && input.len() >= n * ci * h * w
            && weights.len() >= co * ci * 9
            && bias.is_none_or(|b| b.len() >= co)
            && out.len() >= n * co * oh * ow,
        "stride-2 conv: operands do not match the geometry"
    );
    // Weights as [ci][ky][kx][channel], channels padded to a multiple of 8 with zeros.
    let cp = co.next_multiple_of(8);
    let mut wp = vec![0.0f32; ci * 9 * cp];
    for o in 0..co {
        for t in 0..ci * 9 {
            wp[t * cp + o] = weights[o * ci * 9 + t];
        }
    }
    let mut bp = vec![0.0f32; cp];
    if let Some(b) = bias {
        bp[..co].copy_from_slice(&b[..co]);
    }
    let items = n * oh;
    let ends = crate::team::Ends::new(items);
    let dst = super::conv::OutPtr(out.as_mut_ptr());
    let k = Kernel {
        c_in: ci,
        c_out: co,
        cp,
        h,
        w,
        oh,
        ow,
        pad_top: g.pad_top,
        pad_left: g.pad_left,
        wp: &wp,
        bp: &bp,
        act,
    };
    crate::team::for_workers(threads.clamp(1, items.max(1)), &|slot| {
        while let Some(item) = ends.take(slot) {
            let (img, oy) = (item / oh, item % oh);
            let x = &input[img * ci * h * w..(img + 1) * ci * h * w];
            // SAFETY: AVX-512F (checked by `applies`); `x` is one image's planes;
            // output row oy of every channel of image img is inside `out`, written by
            // this item only (the counter hands each row out once); `out` outlives
            // the section.
            unsafe { k.row(x, dst.at(img * co * oh * ow), oy) };
        }
    });
}

/// One layer's operands, shared by the workers.
struct Kernel<'a> {
    c_in: usize,
    c_out: usize,
    /// Channels padded to a multiple of 8 (the row length of `wp`).
    cp: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    pad_top: usize,
    pad_left: usize,
    /// Weights `[ci][ky][kx][cp]`.
    wp: &'a [f32],
    /// Bias, `cp` values.
    bp: &'a [f32],
    act: Activation,
}

impl Kernel<'_> {
    /// Output row `oy` of every channel of one image (`x`: its input planes; `out`: the
    /// start of its output planes).
    ///
    /// # Safety
    /// AVX-512F; `x` holds `c_in * h * w` floats; `out` is valid for writes of row `oy`
    /// of `c_out` planes of `oh * ow` floats.
    #[target_feature(enable = "avx512f")]
    unsafe fn row(&self, x: &[f32], out: *mut f32, oy: usize) {
        let mut cb = 0;
        while cb < self.c_out {
            // SAFETY: forwarded; channels cb.. are inside `cp`.
            unsafe {
                if self.cp - cb >= 16 {
                    self.block::<16>(x, out, oy, cb);
                    cb += 16;
                } else {
                    self.block::<8>(x, out, oy, cb);
                    cb += 8;
                }
            }
        }
    }

    /// Channels `cb..cb + CB` (those below `c_out` stored) of output row `oy`.
    ///
    /// # Safety
    /// As [`Kernel::row`], and `cb + CB <= cp`.
    #[target_feature(enable = "avx512f")]
    unsafe fn block<const CB: usize>(&self, x: &[f32], out: *mut f32, oy: usize, cb: usize) {
        let (kind, lo, hi) = match self.act {
            Activation::None => (0u8, 0.0, 0.0),
            Activation::Relu => (1, 0.0, 0.0),
            Activation::Clip { min, max } => (2, min, max),
        };
        let (lo, hi) = (_mm512_set1_ps(lo), _mm512_set1_ps(hi));
        let even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
        let odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
        let (h, w) = (self.h as isize, self.w as isize);
        let wp = self.wp.as_ptr();
        let mut x0 = 0;
        while x0 < self.ow {
            let nv = (self.ow - x0).min(16);
            let mut acc = [_mm512_setzero_ps(); CB];
            for (c, a) in acc.iter_mut().enumerate() {
                *a = _mm512_set1_ps(self.bp[cb + c]);
            }
            // Input column of kernel column 0 for lane 0.
            let base = (2 * x0) as isize - self.pad_left as isize;
            let m = [
                lane_mask(base, w),
                lane_mask(base + 16, w),
                lane_mask(base + 2, w),
                lane_mask(base + 18, w),
            ];
            for ci in 0..self.c_in {
                for ky in 0..3 {
                    let iy = (2 * oy + ky) as isize - self.pad_top as isize;
                    if iy < 0 || iy >= h {
                        continue;
                    }
                    let rp = x.as_ptr().wrapping_offset((ci as isize * h + iy) * w);
                    let z = _mm512_setzero_ps();
                    // SAFETY: every load is masked to the lanes whose column lies in
                    // 0..w of row iy, which is inside `x`.
                    let v = unsafe {
                        let a = _mm512_mask_loadu_ps(z, m[0], rp.wrapping_offset(base));
                        let b = _mm512_mask_loadu_ps(z, m[1], rp.wrapping_offset(base + 16));
                        let c = _mm512_mask_loadu_ps(z, m[2], rp.wrapping_offset(base + 2));
                        let d = _mm512_mask_loadu_ps(z, m[3], rp.wrapping_offset(base + 18));
                        [
                            _mm512_permutex2var_ps(a, even, b),
                            _mm512_permutex2var_ps(a, odd, b),
                            _mm512_permutex2var_ps(c, even, d),
                        ]
                    };
                    for (kx, &vk) in v.iter().enumerate() {
                        let t = (ci * 3 + ky) * 3 + kx;
                        // SAFETY: row t of `wp` has `cp >= cb + CB` floats.
                        let wr = unsafe { wp.add(t * self.cp + cb) };
                        for (c, a) in acc.iter_mut().enumerate() {
                            // SAFETY: see above.
                            let wv = unsafe { _mm512_set1_ps(*wr.add(c)) };
                            *a = _mm512_fmadd_ps(vk, wv, *a);
                        }
                    }
                }
            }
            let omask = if nv == 16 { 0xFFFF } else { (1u16 << nv) - 1 };
            for (c, &a) in acc.iter().enumerate() {
                let o = cb + c;
                if o >= self.c_out {
                    break;
                }
                let v = match kind {
                    0 => a,
                    1 => _mm512_max_ps(a, lo),
                    _ => _mm512_min_ps(_mm512_max_ps(a, lo), hi),
                };
                // SAFETY: lanes < nv are columns x0..x0 + nv of row oy of plane o.
                unsafe {
                    _mm512_mask_storeu_ps(out.add((o * self.oh + oy) * self.ow + x0), omask, v)
                };
            }
            x0 += 16;
        }
    }
}
