//! Flat inner loops of the stencil kernels (see [`super::stencil`]), with explicit
//! AVX-512 and AVX2+FMA versions chosen at run time and a portable fallback.
//!
//! Contract shared by every function here (checked at entry, so the SIMD bodies may use
//! unchecked loads): `out.len()` is a multiple of [`BLOCK`] and, for every tap offset
//! `off`, `off + out.len() <= buf.len()`.

use super::simd::{self, Level};
use super::stencil::BLOCK;
use super::Activation;

/// Checks the shared contract; a violation is a bug in the stencil layout, not input.
fn check(buf: &[f32], taps: &[usize], out: &[f32]) {
    let max_off = taps.iter().copied().max().unwrap_or(0);
    assert!(
        out.len().is_multiple_of(BLOCK) && max_off + out.len() <= buf.len(),
        "stencil buffer too small"
    );
}

/// `out[j] = act(bias + sum_t wts[t] * buf[j + taps[t]])`.
pub(crate) fn conv_flat(
    buf: &[f32],
    taps: &[usize],
    wts: &[f32],
    bias: f32,
    act: Activation,
    out: &mut [f32],
) {
    check(buf, taps, out);
    let taps = &taps[..taps.len().min(wts.len())];
    match simd::level() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: avx512f detected; `check` established the buffer contract.
        Level::Avx512 => unsafe { x86::conv_avx512(buf, taps, wts, bias, act, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: avx2 and fma detected; `check` established the buffer contract.
        Level::Avx2 => unsafe { x86::conv_avx2(buf, taps, wts, bias, act, out) },
        _ => conv_portable(buf, taps, wts, bias, act, out),
    }
}

fn conv_portable(
    buf: &[f32],
    taps: &[usize],
    wts: &[f32],
    bias: f32,
    act: Activation,
    out: &mut [f32],
) {
    for (jb, o) in out.chunks_exact_mut(BLOCK).enumerate() {
        let j = jb * BLOCK;
        let mut acc = [bias; BLOCK];
        for (&off, &wv) in taps.iter().zip(wts) {
            let x = &buf[j + off..j + off + BLOCK];
            for l in 0..BLOCK {
                acc[l] += wv * x[l];
            }
        }
        for (d, a) in o.iter_mut().zip(acc) {
            *d = act.apply(a);
        }
    }
}

/// `out[j] = max_t buf[j + taps[t]]` (NaN-propagating) when `is_max`, else the sum.
pub(crate) fn pool_flat(is_max: bool, buf: &[f32], taps: &[usize], out: &mut [f32]) {
    check(buf, taps, out);
    match simd::level() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: avx512f detected; `check` established the buffer contract.
        Level::Avx512 => unsafe { x86::pool_avx512(is_max, buf, taps, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: avx2 detected; `check` established the buffer contract.
        Level::Avx2 => unsafe { x86::pool_avx2(is_max, buf, taps, out) },
        _ => pool_portable(is_max, buf, taps, out),
    }
}

fn pool_portable(is_max: bool, buf: &[f32], taps: &[usize], out: &mut [f32]) {
    for (jb, o) in out.chunks_exact_mut(BLOCK).enumerate() {
        let j = jb * BLOCK;
        let mut acc = [if is_max { f32::NEG_INFINITY } else { 0.0 }; BLOCK];
        for &off in taps {
            let x = &buf[j + off..j + off + BLOCK];
            for l in 0..BLOCK {
                acc[l] = if !is_max {
                    acc[l] + x[l]
                } else if x[l] > acc[l] || x[l].is_nan() {
                    x[l]
                } else {
                    acc[l]
                };
            }
        }
        o.copy_from_slice(&acc);
    }
}

/// Activation as `(kind, lo, hi)`: 0 none, 1 `max(x, lo)`, 2 `min(max(x, lo), hi)`.
/// `_mm*_max_ps(x, lo)` returns `lo` for NaN `x`, like `f32::max`.
fn act_params(act: Activation) -> (u8, f32, f32) {
    match act {
        Activation::None => (0, 0.0, 0.0),
        Activation::Relu => (1, 0.0, 0.0),
        Activation::Clip { min, max } => (2, min, max),
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::act_params;
    use crate::kernels::Activation;
    use std::arch::x86_64::*;

    /// # Safety
    /// Requires avx512f and the module's buffer contract.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn conv_avx512(
        buf: &[f32],
        taps: &[usize],
        wts: &[f32],
        bias: f32,
        act: Activation,
        out: &mut [f32],
    ) {
        let (kind, lo, hi) = act_params(act);
        let (lo, hi) = (_mm512_set1_ps(lo), _mm512_set1_ps(hi));
        let fin = |v: __m512| match kind {
            0 => v,
            1 => _mm512_max_ps(v, lo),
            _ => _mm512_min_ps(_mm512_max_ps(v, lo), hi),
        };
        let n = out.len();
        let (bp, op) = (buf.as_ptr(), out.as_mut_ptr());
        let b = _mm512_set1_ps(bias);
        let mut j = 0;
        // SAFETY (all loads/stores below): j + 64 <= n (or j + 16 <= n) and every tap
        // offset satisfies off + n <= buf.len() (module contract), so each 16-float access
        // at j + off + 16*u is inside `buf`, and at j + 16*u inside `out`.
        unsafe {
            while j + 64 <= n {
                let (mut a0, mut a1, mut a2, mut a3) = (b, b, b, b);
                for (&off, &wv) in taps.iter().zip(wts) {
                    let w = _mm512_set1_ps(wv);
                    let p = bp.add(j + off);
                    a0 = _mm512_fmadd_ps(w, _mm512_loadu_ps(p), a0);
                    a1 = _mm512_fmadd_ps(w, _mm512_loadu_ps(p.add(16)), a1);
                    a2 = _mm512_fmadd_ps(w, _mm512_loadu_ps(p.add(32)), a2);
                    a3 = _mm512_fmadd_ps(w, _mm512_loadu_ps(p.add(48)), a3);
                }
                _mm512_storeu_ps(op.add(j), fin(a0));
                _mm512_storeu_ps(op.add(j + 16), fin(a1));
                _mm512_storeu_ps(op.add(j + 32), fin(a2));
                _mm512_storeu_ps(op.add(j + 48), fin(a3));
                j += 64;
            }
            while j + 16 <= n {
                let mut a0 = b;
                for (&off, &wv) in taps.iter().zip(wts) {
                    a0 = _mm512_fmadd_ps(_mm512_set1_ps(wv), _mm512_loadu_ps(bp.add(j + off)), a0);
                }
                _mm512_storeu_ps(op.add(j), fin(a0));
                j += 16;
            }
        }
    }

    /// # Safety
    /// Requires avx2, fma and the module's buffer contract.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn conv_avx2(
        buf: &[f32],
        taps: &[usize],
        wts: &[f32],
        bias: f32,
        act: Activation,
        out: &mut [f32],
    ) {
        let (kind, lo, hi) = act_params(act);
        let (lo, hi) = (_mm256_set1_ps(lo), _mm256_set1_ps(hi));
        let fin = |v: __m256| match kind {
            0 => v,
            1 => _mm256_max_ps(v, lo),
            _ => _mm256_min_ps(_mm256_max_ps(v, lo), hi),
        };
        let n = out.len();
        let (bp, op) = (buf.as_ptr(), out.as_mut_ptr());
        let b = _mm256_set1_ps(bias);
        let mut j = 0;
        // SAFETY: as in `conv_avx512`, with 8-float accesses and j + 32 <= n (or j + 16 <= n,
        // n being a multiple of 16).
        unsafe {
            while j + 32 <= n {
                let (mut a0, mut a1, mut a2, mut a3) = (b, b, b, b);
                for (&off, &wv) in taps.iter().zip(wts) {
                    let w = _mm256_set1_ps(wv);
                    let p = bp.add(j + off);
                    a0 = _mm256_fmadd_ps(w, _mm256_loadu_ps(p), a0);
                    a1 = _mm256_fmadd_ps(w, _mm256_loadu_ps(p.add(8)), a1);
                    a2 = _mm256_fmadd_ps(w, _mm256_loadu_ps(p.add(16)), a2);
                    a3 = _mm256_fmadd_ps(w, _mm256_loadu_ps(p.add(24)), a3);
                }
                _mm256_storeu_ps(op.add(j), fin(a0));
                _mm256_storeu_ps(op.add(j + 8), fin(a1));
                _mm256_storeu_ps(op.add(j + 16), fin(a2));
                _mm256_storeu_ps(op.add(j + 24), fin(a3));
                j += 32;
            }
            while j + 16 <= n {
                let (mut a0, mut a1) = (b, b);
                for (&off, &wv) in taps.iter().zip(wts) {
                    let w = _mm256_set1_ps(wv);
                    let p = bp.add(j + off);
                    a0 = _mm256_fmadd_ps(w, _mm256_loadu_ps(p), a0);
                    a1 = _mm256_fmadd_ps(w, _mm256_loadu_ps(p.add(8)), a1);
                }
                _mm256_storeu_ps(op.add(j), fin(a0));
                _mm256_storeu_ps(op.add(j + 8), fin(a1));
                j += 16;
            }
        }
    }

    /// # Safety
    /// Requires avx512f and the module's buffer contract.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn pool_avx512(is_max: bool, buf: &[f32], taps: &[usize], out: &mut [f32]) {
        let n = out.len();
        let (bp, op) = (buf.as_ptr(), out.as_mut_ptr());
        let init = _mm512_set1_ps(if is_max { f32::NEG_INFINITY } else { 0.0 });
        let mut j = 0;
        // SAFETY: each 16-float access at j + off (j + 16 <= n) is inside `buf` and at j
        // inside `out` by the module contract.
        unsafe {
            while j + 16 <= n {
                let mut acc = init;
                if is_max {
                    // max_ps(v, acc) keeps a NaN accumulator; NaN taps are tracked apart.
                    let mut nan: __mmask16 = 0;
                    for &off in taps {
                        let v = _mm512_loadu_ps(bp.add(j + off));
                        nan |= _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
                        acc = _mm512_max_ps(v, acc);
                    }
                    acc = _mm512_mask_mov_ps(acc, nan, _mm512_set1_ps(f32::NAN));
                } else {
                    for &off in taps {
                        acc = _mm512_add_ps(acc, _mm512_loadu_ps(bp.add(j + off)));
                    }
                }
                _mm512_storeu_ps(op.add(j), acc);
                j += 16;
            }
        }
    }

    /// # Safety
    /// Requires avx2 and the module's buffer contract.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn pool_avx2(is_max: bool, buf: &[f32], taps: &[usize], out: &mut [f32]) {
        let n = out.len();
        let (bp, op) = (buf.as_ptr(), out.as_mut_ptr());
        let init = _mm256_set1_ps(if is_max { f32::NEG_INFINITY } else { 0.0 });
        let mut j = 0;
        // SAFETY: as in `pool_avx512`, with 8-float accesses (n is a multiple of 16).
        unsafe {
            while j + 8 <= n {
                let mut acc = init;
                if is_max {
                    let mut nan = _mm256_setzero_ps();
                    for &off in taps {
                        let v = _mm256_loadu_ps(bp.add(j + off));
                        nan = _mm256_or_ps(nan, _mm256_cmp_ps::<_CMP_UNORD_Q>(v, v));
                        acc = _mm256_max_ps(v, acc);
                    }
                    acc = _mm256_blendv_ps(acc, _mm256_set1_ps(f32::NAN), nan);
                } else {
                    for &off in taps {
                        acc = _mm256_add_ps(acc, _mm256_loadu_ps(bp.add(j + off)));
                    }
                }
                _mm256_storeu_ps(op.add(j), acc);
                j += 8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every SIMD level this CPU supports against the portable loops (the dispatcher
    /// only ever picks the best level, so the others are checked here directly).
    #[test]
    fn simd_levels_match_portable() {
        let buf: Vec<f32> = (0..700)
            .map(|i| ((i * 37) % 101) as f32 / 25.0 - 2.0)
            .collect();
        let mut buf_nan = buf.clone();
        buf_nan[40] = f32::NAN;
        let taps = [0usize, 1, 2, 30, 31, 32, 60, 61, 62];
        let wts = [0.5f32, -1.0, 0.25, 2.0, 1.0, -0.5, 0.125, 0.75, -2.0];
        let acts = [
            Activation::None,
            Activation::Relu,
            Activation::Clip {
                min: -1.0,
                max: 1.5,
            },
        ];
        for len in [16usize, 64, 96, 624] {
            for act in acts {
                let mut want = vec![0.0; len];
                conv_portable(&buf, &taps, &wts, 0.3, act, &mut want);
                for got in simd_conv(&buf, &taps, &wts, 0.3, act, len) {
                    for (g, w) in got.iter().zip(&want) {
                        assert!(
                            (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
                            "conv len {len}: {g} vs {w}"
                        );
                    }
                }
            }
            for is_max in [true, false] {
                let mut want = vec![0.0; len];
                pool_portable(is_max, &buf_nan, &taps, &mut want);
                for got in simd_pool(is_max, &buf_nan, &taps, len) {
                    for (g, w) in got.iter().zip(&want) {
                        let ok =
                            (g.is_nan() && w.is_nan()) || (g - w).abs() <= 1e-5 * (1.0 + w.abs());
                        assert!(ok, "pool max={is_max} len {len}: {g} vs {w}");
                    }
                }
            }
        }
    }

    fn simd_conv(
        buf: &[f32],
        taps: &[usize],
        wts: &[f32],
        bias: f32,
        act: Activation,
        len: usize,
    ) -> Vec<Vec<f32>> {
        let mut outs = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") {
                let mut o = vec![0.0; len];
                // SAFETY: avx512f detected; len + max tap (62) <= 700 = buf.len().
                unsafe { x86::conv_avx512(buf, taps, wts, bias, act, &mut o) };
                outs.push(o);
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                let mut o = vec![0.0; len];
                // SAFETY: avx2 and fma detected; sizes as above.
                unsafe { x86::conv_avx2(buf, taps, wts, bias, act, &mut o) };
                outs.push(o);
            }
        }
        let _ = (buf, taps, wts, bias, act, len);
        outs
    }

    fn simd_pool(is_max: bool, buf: &[f32], taps: &[usize], len: usize) -> Vec<Vec<f32>> {
        let mut outs = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") {
                let mut o = vec![0.0; len];
                // SAFETY: avx512f detected; len + max tap (62) <= 700 = buf.len().
                unsafe { x86::pool_avx512(is_max, buf, taps, &mut o) };
                outs.push(o);
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                let mut o = vec![0.0; len];
                // SAFETY: avx2 and fma detected; sizes as above.
                unsafe { x86::pool_avx2(is_max, buf, taps, &mut o) };
                outs.push(o);
            }
        }
        let _ = (is_max, buf, taps, len);
        outs
    }
}
