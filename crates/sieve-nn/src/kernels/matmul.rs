//! Fast GEMM: the `gemm` crate (run-time dispatched AVX-512/AVX2 micro-kernels) for
//! general shapes, and a streaming matrix-vector path for `m == 1` or `n == 1`
//! (fully-connected layers at batch 1 are memory-bound: stream the weights once,
//! split across the rayon pool).

use super::reference::gemm_checks;
use super::{simd, KernelError};

/// Below this many multiply-adds a GEMM runs on the calling thread only.
const PAR_MIN_MACS: usize = 1 << 20;
/// Below this many weight elements a matrix-vector product runs on the calling thread.
const GEMV_PAR_MIN: usize = 1 << 16;

/// Strided view of a row-major or transposed matrix operand.
#[derive(Clone, Copy)]
pub(crate) struct MatRef<'a> {
    pub data: &'a [f32],
    /// Distance between consecutive rows.
    pub rs: usize,
    /// Distance between consecutive columns.
    pub cs: usize,
}

/// `c[m x n] (row stride ldc) = alpha * a * b + (if accumulate { c } else { 0 })`.
///
/// Panics (internal invariant, never user-controlled: callers derive every size from
/// checked lengths) if an operand is too short for its strides.
/// `parallel` allows the gemm crate to use the rayon pool.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    m: usize,
    n: usize,
    k: usize,
    a: MatRef<'_>,
    b: MatRef<'_>,
    c: &mut [f32],
    ldc: usize,
    alpha: f32,
    accumulate: bool,
    parallel: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!((m - 1) * ldc + n <= c.len() && ldc >= n);
    // SAFETY: the assert guarantees every element of the m x n destination with row
    // stride ldc lies in `c`, which is exclusively borrowed.
    unsafe {
        matmul_raw(
            m,
            n,
            k,
            a,
            b,
            c.as_mut_ptr(),
            ldc,
            alpha,
            accumulate,
            parallel,
        )
    }
}

/// Like [`matmul`] with a raw destination pointer.
///
/// # Safety
/// `c` must be valid for reads and writes of the `m x n` elements at offsets
/// `i * ldc + j` (`i < m`, `j < n`), with no other access to them during the call.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn matmul_raw(
    m: usize,
    n: usize,
    k: usize,
    a: MatRef<'_>,
    b: MatRef<'_>,
    c: *mut f32,
    ldc: usize,
    alpha: f32,
    accumulate: bool,
    parallel: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                // SAFETY: row i of the destination is valid (function contract).
                unsafe { std::slice::from_raw_parts_mut(c.add(i * ldc), n).fill(0.0) };
            }
        }
        return;
    }
    let last = |r: MatRef<'_>, rows: usize, cols: usize| (rows - 1) * r.rs + (cols - 1) * r.cs;
    assert!(last(a, m, k) < a.data.len() && last(b, k, n) < b.data.len());
    let par = if parallel && m.saturating_mul(n).saturating_mul(k) >= PAR_MIN_MACS {
        ::gemm::Parallelism::Rayon(0)
    } else {
        ::gemm::Parallelism::None
    };
    // SAFETY: the assert guarantees that the largest offset reached through each input
    // operand's strides lies inside its slice; the destination is valid and unaliased by
    // the function contract. The gemm crate computes
    // dst := alpha_dst * dst + beta * lhs * rhs, reading dst only when `read_dst`.
    unsafe {
        ::gemm::gemm(
            m,
            n,
            k,
            c,
            1,
            ldc as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0,
            alpha,
            false,
            false,
            false,
            par,
        );
    }
}

/// `y[j] = alpha * dot(mat[j*k .. (j+1)*k], x) + beta * y[j]` for `j < y.len()`.
pub(crate) fn gemv_rows(mat: &[f32], x: &[f32], k: usize, alpha: f32, beta: f32, y: &mut [f32]) {
    let body = |j0: usize, ys: &mut [f32]| {
        let finish = |yv: &mut f32, d: f32| {
            *yv = if beta == 0.0 {
                alpha * d
            } else {
                alpha * d + beta * *yv
            }
        };
        let mut quads = ys.chunks_exact_mut(4);
        let mut j = j0;
        for q in &mut quads {
            let row = |r: usize| &mat[(j + r) * k..(j + r + 1) * k];
            let d = simd::dot4([row(0), row(1), row(2), row(3)], x);
            for (yv, dv) in q.iter_mut().zip(d) {
                finish(yv, dv);
            }
            j += 4;
        }
        for yv in quads.into_remainder() {
            finish(yv, simd::dot(&mat[j * k..(j + 1) * k], x));
            j += 1;
        }
    };
    if mat.len() < GEMV_PAR_MIN || rayon::current_num_threads() == 1 {
        body(0, y);
        return;
    }
    let chunk = y
        .len()
        .div_ceil(rayon::current_num_threads() * 4)
        .next_multiple_of(4);
    crate::team::par_chunks_mut(y, chunk, rayon::current_num_threads(), |ci, ys| {
        body(ci * chunk, ys)
    });
}

/// `y = alpha * sum_p x[p] * mat[p*n .. (p+1)*n] + beta * y` with `n = y.len()`.
fn gemv_cols(mat: &[f32], x: &[f32], n: usize, alpha: f32, beta: f32, y: &mut [f32]) {
    // Column blocks small enough to keep the accumulator in L1 while streaming rows.
    const BLOCK: usize = 1024;
    let body = |j0: usize, ys: &mut [f32]| {
        let mut acc = [0.0f32; BLOCK];
        let acc = &mut acc[..ys.len()];
        let len = ys.len();
        let row = |p: usize| &mat[p * n + j0..p * n + j0 + len];
        let mut quads = x.chunks_exact(4);
        let mut p = 0;
        for q in &mut quads {
            simd::axpy4(
                [q[0], q[1], q[2], q[3]],
                [row(p), row(p + 1), row(p + 2), row(p + 3)],
                acc,
            );
            p += 4;
        }
        for &xv in quads.remainder() {
            simd::axpy(xv, row(p), acc);
            p += 1;
        }
        for (yv, &a) in ys.iter_mut().zip(acc.iter()) {
            *yv = if beta == 0.0 {
                alpha * a
            } else {
                alpha * a + beta * *yv
            };
        }
    };
    if mat.len() < GEMV_PAR_MIN || rayon::current_num_threads() == 1 {
        for (ci, ys) in y.chunks_mut(BLOCK).enumerate() {
            body(ci * BLOCK, ys);
        }
        return;
    }
    crate::team::par_chunks_mut(y, BLOCK, rayon::current_num_threads(), |ci, ys| {
        body(ci * BLOCK, ys)
    });
}

/// Fast path behind [`super::gemm`]; same contract.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm(
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
    if m == 0 || n == 0 {
        return Ok(());
    }
    if m == 1 {
        // op(A) is a contiguous k-vector whether or not it is transposed.
        if trans_b {
            gemv_rows(b, a, k, alpha, beta, c);
        } else {
            gemv_cols(b, a, n, alpha, beta, c);
        }
        return Ok(());
    }
    if n == 1 {
        if trans_a {
            gemv_cols(a, b, m, alpha, beta, c);
        } else {
            gemv_rows(a, b, k, alpha, beta, c);
        }
        return Ok(());
    }
    if beta != 0.0 && beta != 1.0 {
        c.iter_mut().for_each(|v| *v *= beta);
    }
    let am = if trans_a {
        MatRef {
            data: a,
            rs: 1,
            cs: m,
        }
    } else {
        MatRef {
            data: a,
            rs: k,
            cs: 1,
        }
    };
    let bm = if trans_b {
        MatRef {
            data: b,
            rs: 1,
            cs: k,
        }
    } else {
        MatRef {
            data: b,
            rs: n,
            cs: 1,
        }
    };
    matmul(m, n, k, am, bm, c, n, alpha, beta != 0.0, true);
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::reference;
    use super::*;
    use proptest::prelude::*;

    fn data(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| (((i as u32).wrapping_mul(2654435761) ^ seed) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    }

    fn close(a: &[f32], b: &[f32], k: usize) {
        assert_eq!(a.len(), b.len());
        let tol = 1e-5 * (k as f32 + 1.0);
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= tol * (1.0 + y.abs()), "at {i}: {x} vs {y}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn gemm_matches_reference(
            m in 0usize..40, n in 0usize..40, k in 0usize..70,
            ta: bool, tb: bool, beta_sel in 0usize..3, alpha in -2.0f32..2.0,
        ) {
            let beta = [0.0f32, 1.0, -0.5][beta_sel];
            let a = data(m * k, 1);
            let b = data(k * n, 2);
            let mut c_fast = data(m * n, 3);
            if beta == 0.0 { c_fast.iter_mut().for_each(|v| *v = f32::NAN); }
            let mut c_ref = c_fast.clone();
            gemm(m, n, k, &a, ta, &b, tb, alpha, beta, &mut c_fast).unwrap();
            reference::gemm(m, n, k, &a, ta, &b, tb, alpha, beta, &mut c_ref).unwrap();
            close(&c_fast, &c_ref, k);
        }
    }

    #[test]
    fn gemv_parallel_paths_match_reference() {
        // Big enough to take the parallel matrix-vector branches.
        let (n, k) = (300, 700);
        for (m2, tb) in [(1usize, true), (1, false)] {
            let a = data(m2 * k, 5);
            let b = data(k * n, 6);
            let mut c1 = data(n, 7);
            let mut c2 = c1.clone();
            gemm(m2, n, k, &a, false, &b, tb, 1.5, 0.5, &mut c1).unwrap();
            reference::gemm(m2, n, k, &a, false, &b, tb, 1.5, 0.5, &mut c2).unwrap();
            close(&c1, &c2, k);
        }
        // n == 1 branches.
        for ta in [false, true] {
            let a = data(n * k, 8);
            let b = data(k, 9);
            let mut c1 = vec![0.0; n];
            let mut c2 = c1.clone();
            gemm(n, 1, k, &a, ta, &b, false, 1.0, 0.0, &mut c1).unwrap();
            reference::gemm(n, 1, k, &a, ta, &b, false, 1.0, 0.0, &mut c2).unwrap();
            close(&c1, &c2, k);
        }
    }

    #[test]
    fn bad_lengths_are_errors() {
        let mut c = vec![0.0; 4];
        let e = gemm(
            2, 2, 3, &[0.0; 5], false, &[0.0; 6], false, 1.0, 0.0, &mut c,
        )
        .unwrap_err();
        assert_eq!(
            e,
            KernelError::BadLength {
                op: "gemm",
                operand: "a",
                expected: 6,
                actual: 5
            }
        );
    }
}
