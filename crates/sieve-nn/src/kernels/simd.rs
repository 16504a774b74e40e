//! Run-time CPU feature detection (cached once) and small vector primitives used by
//! the memory-bound kernels: dot products and `y += a * x`.
//!
//! Each primitive has an AVX-512, an AVX2+FMA and a portable version; the choice is made
//! once per process from `is_x86_feature_detected!` and cached.

use std::sync::OnceLock;

/// Instruction-set level the kernels dispatch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// AVX-512F.
    Avx512,
    /// AVX2 with FMA.
    Avx2,
    /// No usable SIMD extension detected (or not x86-64): portable code.
    Scalar,
}

/// Detected SIMD level, computed once per process. Setting the environment variable
/// `SIEVE_NO_AVX512` (to anything) before the first kernel call caps it at AVX2, for
/// comparisons.
pub fn level() -> Level {
    static LEVEL: OnceLock<Level> = OnceLock::new();
    *LEVEL.get_or_init(detect)
}

#[cfg(target_arch = "x86_64")]
fn detect() -> Level {
    if std::env::var_os("SIEVE_NO_AVX512").is_none() && is_x86_feature_detected!("avx512f") {
        Level::Avx512
    } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        Level::Avx2
    } else {
        Level::Scalar
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> Level {
    Level::Scalar
}

/// `sum_i x[i] * y[i]` over the common prefix of `x` and `y`.
pub fn dot(x: &[f32], y: &[f32]) -> f32 {
    let len = x.len().min(y.len());
    let (x, y) = (&x[..len], &y[..len]);
    match level() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `level()` returned Avx512 only after detecting avx512f.
        Level::Avx512 => unsafe { x86::dot_avx512(x, y) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `level()` returned Avx2 only after detecting avx2 and fma.
        Level::Avx2 => unsafe { x86::dot_avx2(x, y) },
        _ => dot_scalar(x, y),
    }
}

/// Four dot products sharing `x`: `out[r] = sum_i rows[r][i] * x[i]`, over the first
/// `x.len()` elements (every row must be at least that long, otherwise the common
/// prefix is used for all four). Streams four rows at once for memory-level parallelism.
pub fn dot4(rows: [&[f32]; 4], x: &[f32]) -> [f32; 4] {
    let len = rows.iter().map(|r| r.len()).fold(x.len(), usize::min);
    let rows = rows.map(|r| &r[..len]);
    let x = &x[..len];
    match level() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `level()` returned Avx512 only after detecting avx512f; all five
        // slices have length `len`.
        Level::Avx512 => unsafe { x86::dot4_avx512(rows, x) },
        _ => rows.map(|r| dot(r, x)),
    }
}

/// `y[i] += a[0]*rows[0][i] + a[1]*rows[1][i] + a[2]*rows[2][i] + a[3]*rows[3][i]`
/// over the common prefix of `y` and the rows: one pass over `y` for four rows.
pub fn axpy4(a: [f32; 4], rows: [&[f32]; 4], y: &mut [f32]) {
    let len = rows.iter().map(|r| r.len()).fold(y.len(), usize::min);
    let rows = rows.map(|r| &r[..len]);
    let y = &mut y[..len];
    match level() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `level()` returned Avx512 only after detecting avx512f; all slices
        // have length `len`.
        Level::Avx512 => unsafe { x86::axpy4_avx512(a, rows, y) },
        _ => {
            for r in 0..4 {
                axpy(a[r], rows[r], y);
            }
        }
    }
}

/// `y[i] += a * x[i]` over the common prefix of `x` and `y`.
pub fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    let len = x.len().min(y.len());
    let (x, y) = (&x[..len], &mut y[..len]);
    match level() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `level()` returned Avx512 only after detecting avx512f.
        Level::Avx512 => unsafe { x86::axpy_avx512(a, x, y) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `level()` returned Avx2 only after detecting avx2 and fma.
        Level::Avx2 => unsafe { x86::axpy_avx2(a, x, y) },
        _ => y.iter_mut().zip(x).for_each(|(yv, &xv)| *yv += a * xv),
    }
}

fn dot_scalar(x: &[f32], y: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut xc = x.chunks_exact(8);
    let mut yc = y.chunks_exact(8);
    for (xs, ys) in (&mut xc).zip(&mut yc) {
        for l in 0..8 {
            acc[l] += xs[l] * ys[l];
        }
    }
    let tail: f32 = xc
        .remainder()
        .iter()
        .zip(yc.remainder())
        .map(|(a, b)| a * b)
        .sum();
    acc.iter().sum::<f32>() + tail
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// # Safety
    /// Requires avx512f; `x.len() == y.len()`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn dot_avx512(x: &[f32], y: &[f32]) -> f32 {
        let n = x.len();
        let (xp, yp) = (x.as_ptr(), y.as_ptr());
        let mut a0 = _mm512_setzero_ps();
        let mut a1 = _mm512_setzero_ps();
        let mut a2 = _mm512_setzero_ps();
        let mut a3 = _mm512_setzero_ps();
        let mut i = 0;
        // SAFETY: every load reads 16 floats at offset i + 16*j with i + 64 <= n (or i + 16 <= n
        // in the second loop), inside both slices of length n.
        unsafe {
            while i + 64 <= n {
                a0 = _mm512_fmadd_ps(_mm512_loadu_ps(xp.add(i)), _mm512_loadu_ps(yp.add(i)), a0);
                a1 = _mm512_fmadd_ps(
                    _mm512_loadu_ps(xp.add(i + 16)),
                    _mm512_loadu_ps(yp.add(i + 16)),
                    a1,
                );
                a2 = _mm512_fmadd_ps(
                    _mm512_loadu_ps(xp.add(i + 32)),
                    _mm512_loadu_ps(yp.add(i + 32)),
                    a2,
                );
                a3 = _mm512_fmadd_ps(
                    _mm512_loadu_ps(xp.add(i + 48)),
                    _mm512_loadu_ps(yp.add(i + 48)),
                    a3,
                );
                i += 64;
            }
            while i + 16 <= n {
                a0 = _mm512_fmadd_ps(_mm512_loadu_ps(xp.add(i)), _mm512_loadu_ps(yp.add(i)), a0);
                i += 16;
            }
        }
        let acc = _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3));
        let mut s = _mm512_reduce_add_ps(acc);
        for j in i..n {
            s += x[j] * y[j];
        }
        s
    }

    /// # Safety
    /// Requires avx512f; every row has `x.len()` elements.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn dot4_avx512(rows: [&[f32]; 4], x: &[f32]) -> [f32; 4] {
        let n = x.len();
        let xp = x.as_ptr();
        let rp = rows.map(|r| r.as_ptr());
        let mut acc = [_mm512_setzero_ps(); 8];
        let mut i = 0;
        // SAFETY: every load reads 16 floats at i or i + 16 with i + 32 <= n (or i + 16 <= n
        // in the second loop), inside x and each row (length n).
        unsafe {
            while i + 32 <= n {
                let x0 = _mm512_loadu_ps(xp.add(i));
                let x1 = _mm512_loadu_ps(xp.add(i + 16));
                for r in 0..4 {
                    acc[r] = _mm512_fmadd_ps(_mm512_loadu_ps(rp[r].add(i)), x0, acc[r]);
                    acc[r + 4] =
                        _mm512_fmadd_ps(_mm512_loadu_ps(rp[r].add(i + 16)), x1, acc[r + 4]);
                }
                i += 32;
            }
            while i + 16 <= n {
                let x0 = _mm512_loadu_ps(xp.add(i));
                for r in 0..4 {
                    acc[r] = _mm512_fmadd_ps(_mm512_loadu_ps(rp[r].add(i)), x0, acc[r]);
                }
                i += 16;
            }
        }
        let mut out = [0.0f32; 4];
        for r in 0..4 {
            out[r] = _mm512_reduce_add_ps(_mm512_add_ps(acc[r], acc[r + 4]));
            for j in i..n {
                out[r] += rows[r][j] * x[j];
            }
        }
        out
    }

    /// # Safety
    /// Requires avx2 and fma; `x.len() == y.len()`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_avx2(x: &[f32], y: &[f32]) -> f32 {
        let n = x.len();
        let (xp, yp) = (x.as_ptr(), y.as_ptr());
        let mut a0 = _mm256_setzero_ps();
        let mut a1 = _mm256_setzero_ps();
        let mut a2 = _mm256_setzero_ps();
        let mut a3 = _mm256_setzero_ps();
        let mut i = 0;
        // SAFETY: loads stay below n as in `dot_avx512`, with 8-float vectors.
        unsafe {
            while i + 32 <= n {
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(xp.add(i)), _mm256_loadu_ps(yp.add(i)), a0);
                a1 = _mm256_fmadd_ps(
                    _mm256_loadu_ps(xp.add(i + 8)),
                    _mm256_loadu_ps(yp.add(i + 8)),
                    a1,
                );
                a2 = _mm256_fmadd_ps(
                    _mm256_loadu_ps(xp.add(i + 16)),
                    _mm256_loadu_ps(yp.add(i + 16)),
                    a2,
                );
                a3 = _mm256_fmadd_ps(
                    _mm256_loadu_ps(xp.add(i + 24)),
                    _mm256_loadu_ps(yp.add(i + 24)),
                    a3,
                );
                i += 32;
            }
            while i + 8 <= n {
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(xp.add(i)), _mm256_loadu_ps(yp.add(i)), a0);
                i += 8;
            }
        }
        let acc = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
        let hi = _mm256_extractf128_ps(acc, 1);
        let lo = _mm256_castps256_ps128(acc);
        let s4 = _mm_add_ps(hi, lo);
        let s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
        let s1 = _mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1));
        let mut s = _mm_cvtss_f32(s1);
        for j in i..n {
            s += x[j] * y[j];
        }
        s
    }

    /// # Safety
    /// Requires avx512f; `x.len() == y.len()`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn axpy_avx512(a: f32, x: &[f32], y: &mut [f32]) {
        let n = x.len();
        let av = _mm512_set1_ps(a);
        let (xp, yp) = (x.as_ptr(), y.as_mut_ptr());
        let mut i = 0;
        // SAFETY: each access covers [i, i + 16) with i + 16 <= n, inside both slices.
        unsafe {
            while i + 16 <= n {
                let r = _mm512_fmadd_ps(av, _mm512_loadu_ps(xp.add(i)), _mm512_loadu_ps(yp.add(i)));
                _mm512_storeu_ps(yp.add(i), r);
                i += 16;
            }
        }
        for j in i..n {
            y[j] += a * x[j];
        }
    }

    /// # Safety
    /// Requires avx512f; every row has `y.len()` elements.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn axpy4_avx512(a: [f32; 4], rows: [&[f32]; 4], y: &mut [f32]) {
        let n = y.len();
        let av = a.map(|v| _mm512_set1_ps(v));
        let rp = rows.map(|r| r.as_ptr());
        let yp = y.as_mut_ptr();
        let mut i = 0;
        // SAFETY: each access covers [i, i + 16) with i + 16 <= n, inside y and every row.
        unsafe {
            while i + 16 <= n {
                let mut acc = _mm512_loadu_ps(yp.add(i));
                for r in 0..4 {
                    acc = _mm512_fmadd_ps(av[r], _mm512_loadu_ps(rp[r].add(i)), acc);
                }
                _mm512_storeu_ps(yp.add(i), acc);
                i += 16;
            }
        }
        for j in i..n {
            for r in 0..4 {
                y[j] += a[r] * rows[r][j];
            }
        }
    }

    /// # Safety
    /// Requires avx2 and fma; `x.len() == y.len()`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn axpy_avx2(a: f32, x: &[f32], y: &mut [f32]) {
        let n = x.len();
        let av = _mm256_set1_ps(a);
        let (xp, yp) = (x.as_ptr(), y.as_mut_ptr());
        let mut i = 0;
        // SAFETY: each access covers [i, i + 8) with i + 8 <= n, inside both slices.
        unsafe {
            while i + 8 <= n {
                let r = _mm256_fmadd_ps(av, _mm256_loadu_ps(xp.add(i)), _mm256_loadu_ps(yp.add(i)));
                _mm256_storeu_ps(yp.add(i), r);
                i += 8;
            }
        }
        for j in i..n {
            y[j] += a * x[j];
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The AVX2 versions, which the dispatcher skips on AVX-512 machines.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_versions_match_scalar() {
        if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
            return;
        }
        for len in [0usize, 1, 7, 8, 9, 31, 32, 33, 100] {
            let x: Vec<f32> = (0..len).map(|i| (i as f32 * 0.37).sin()).collect();
            let y: Vec<f32> = (0..len).map(|i| (i as f32 * 0.11).cos()).collect();
            let want = dot_scalar(&x, &y);
            // SAFETY: avx2 and fma detected above; equal lengths.
            let got = unsafe { x86::dot_avx2(&x, &y) };
            assert!((got - want).abs() < 1e-4 * (1.0 + want.abs()), "len {len}");
            let mut z = y.clone();
            // SAFETY: as above.
            unsafe { x86::axpy_avx2(-0.5, &x, &mut z) };
            for i in 0..len {
                assert!((z[i] - (y[i] - 0.5 * x[i])).abs() < 1e-6, "len {len} i {i}");
            }
        }
    }

    #[test]
    fn dot_and_axpy_match_scalar_on_odd_lengths() {
        for len in [0usize, 1, 7, 15, 16, 17, 63, 64, 65, 130] {
            let x: Vec<f32> = (0..len).map(|i| (i as f32 * 0.37).sin()).collect();
            let y: Vec<f32> = (0..len).map(|i| (i as f32 * 0.11).cos()).collect();
            let want: f32 = x.iter().zip(&y).map(|(a, b)| a * b).sum();
            assert!(
                (dot(&x, &y) - want).abs() < 1e-4 * (1.0 + want.abs()),
                "len {len}"
            );
            let rows = [&x[..], &y[..], &x[..], &y[..]];
            let d4 = dot4(rows, &y);
            let wy: f32 = y.iter().map(|v| v * v).sum();
            assert!(
                (d4[0] - want).abs() < 1e-4 * (1.0 + want.abs()),
                "dot4 len {len}"
            );
            assert!(
                (d4[3] - wy).abs() < 1e-4 * (1.0 + wy.abs()),
                "dot4 len {len}"
            );
            let mut z4 = y.clone();
            axpy4(
                [0.5, -1.0, 2.0, 0.25],
                [&x[..], &y[..], &x[..], &x[..]],
                &mut z4,
            );
            for i in 0..len {
                let want4 = y[i] + 0.5 * x[i] - y[i] + 2.0 * x[i] + 0.25 * x[i];
                assert!((z4[i] - want4).abs() < 1e-5, "axpy4 len {len} i {i}");
            }
            let mut z = y.clone();
            axpy(0.5, &x, &mut z);
            for i in 0..len {
                assert!((z[i] - (y[i] + 0.5 * x[i])).abs() < 1e-6, "len {len} i {i}");
            }
        }
    }
}
