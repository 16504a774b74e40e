//! Single-precision GEMM for convolutions (AVX-512): `C = A * B`, with `A` the layer's
//! weights packed once per layer and `B` read in place — no im2col copy, no packing.
//!
//! * `A` (`m x k`, output channels x reduction) is stored in panels of [`MR`] rows,
//!   `[panel][k][MR]` (rows past `m` zero), so a micro-kernel step reads its [`MR`]
//!   broadcast weights from one contiguous 32-byte line. Packed once per layer
//!   ([`pack_a`]) and kept by the op.
//! * `B` (`k x n`, reduction x output pixels) is not im2col-copied ([`BSrc`]): a 1x1
//!   convolution's rows are the input planes (a row stride; for many rows of `A` and a
//!   stride that is a multiple of 256 floats — 16x16, 32x32, 64x64 maps — each `KC x NR`
//!   block is first copied contiguous, see [`pack_b`]); a `kh x kw` convolution's
//!   im2col row `(ci, ky, kx)` is the padded, phase-split input plane `ci` (see
//!   [`super::stencil`]) read from a constant tap offset (an offset table). Columns are
//!   taken in panels of up to [`NR`] ([`panels`]); the last vector of a panel is read
//!   and written under a lane mask, so nothing past `n` is touched.
//! * The micro-kernel keeps an `MR x w` block of `C` in `MR * w / 16` (up to 24) zmm
//!   accumulators; per `k` step it loads `w / 16` vectors of `B` and broadcasts `MR`
//!   weights (24 FMAs per 11 loads). `k` is cut in equal blocks of at most [`KC`], so
//!   that the `B` rows of a block stay in L1 while every `A` panel streams past them.
//! * The epilogue of the last `k` block adds the bias and applies the activation in
//!   registers (no separate pass over the output).
//!
//! Measured per layer on one thread with `examples/conv_single.rs` (docs/KERNELS.md):
//! 125-143 GFLOP/s. Other CPUs keep using the `gemm` crate (see [`super::conv`]).

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::Activation;

/// Rows of `C` (output channels) per micro-kernel block.
pub(crate) const MR: usize = 8;
/// Columns of `C` (output pixels) per micro-kernel block: three zmm vectors.
pub(crate) const NR: usize = 48;
/// Largest reduction block: `KC` rows of an `NR`-column panel of `B` are 30 KiB (L1 is
/// 48 KiB).
pub(crate) const KC: usize = 160;

/// True if the CPU runs this GEMM (AVX-512F, and not capped by `SIEVE_NO_AVX512`).
pub(crate) fn available() -> bool {
    super::direct::available()
}

/// Floats of `A` packed by [`pack_a`] for an `m x k` matrix.
pub(crate) fn packed_a_len(m: usize, k: usize) -> usize {
    m.div_ceil(MR) * MR * k
}

/// Packs the row-major `m x k` matrix `a` (row stride `lda`) into `out`
/// (`packed_a_len(m, k)` floats).
///
/// # Panics
/// If `a` or `out` is too short (a caller bug: sizes come from checked geometry).
pub(crate) fn pack_a(a: &[f32], m: usize, k: usize, lda: usize, out: &mut [f32]) {
    let out = &mut out[..packed_a_len(m, k)];
    if k == 0 {
        return;
    }
    let simd = is_x86_feature_detected!("avx");
    for (p, panel) in out.chunks_mut(MR * k).enumerate() {
        if simd && (p + 1) * MR <= m && a.len() >= (p * MR + MR - 1) * lda + k {
            // SAFETY: AVX checked; rows p * MR .. p * MR + 8 of `a` have k elements
            // (length checked above) and `panel` holds MR * k floats.
            unsafe { pack_panel8(&a[p * MR * lda..], k, lda, panel) };
            continue;
        }
        for r in 0..MR {
            let row = p * MR + r;
            if row < m {
                let src = &a[row * lda..row * lda + k];
                for (kk, &v) in src.iter().enumerate() {
                    panel[kk * MR + r] = v;
                }
            } else {
                for kk in 0..k {
                    panel[kk * MR + r] = 0.0;
                }
            }
        }
    }
}

/// One full panel of [`pack_a`]: `panel[kk * 8 + r] = a[r * lda + kk]` for 8 rows, eight
/// columns at a time by an in-register 8x8 transpose (a plain copy, so the result is
/// exactly the scalar loop's).
///
/// # Safety
/// AVX available; `a` holds 8 rows of `k` elements at stride `lda`; `panel.len() >= 8k`.
#[target_feature(enable = "avx")]
unsafe fn pack_panel8(a: &[f32], k: usize, lda: usize, panel: &mut [f32]) {
    debug_assert!(a.len() >= 7 * lda + k && panel.len() >= 8 * k);
    let src = a.as_ptr();
    let dst = panel.as_mut_ptr();
    let mut kk = 0;
    while kk + 8 <= k {
        // SAFETY: row r's elements kk .. kk + 8 exist (kk + 8 <= k); the 64 floats at
        // dst + 8 kk lie in the panel.
        unsafe {
            let r: [__m256; 8] = std::array::from_fn(|i| _mm256_loadu_ps(src.add(i * lda + kk)));
            let t0 = _mm256_unpacklo_ps(r[0], r[1]);
            let t1 = _mm256_unpackhi_ps(r[0], r[1]);
            let t2 = _mm256_unpacklo_ps(r[2], r[3]);
            let t3 = _mm256_unpackhi_ps(r[2], r[3]);
            let t4 = _mm256_unpacklo_ps(r[4], r[5]);
            let t5 = _mm256_unpackhi_ps(r[4], r[5]);
            let t6 = _mm256_unpacklo_ps(r[6], r[7]);
            let t7 = _mm256_unpackhi_ps(r[6], r[7]);
            let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
            let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
            let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
            let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
            let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
            let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
            let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
            let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
            let o = [
                _mm256_permute2f128_ps::<0x20>(u0, u4),
                _mm256_permute2f128_ps::<0x20>(u1, u5),
                _mm256_permute2f128_ps::<0x20>(u2, u6),
                _mm256_permute2f128_ps::<0x20>(u3, u7),
                _mm256_permute2f128_ps::<0x31>(u0, u4),
                _mm256_permute2f128_ps::<0x31>(u1, u5),
                _mm256_permute2f128_ps::<0x31>(u2, u6),
                _mm256_permute2f128_ps::<0x31>(u3, u7),
            ];
            for (j, oj) in o.iter().enumerate() {
                _mm256_storeu_ps(dst.add((kk + j) * 8), *oj);
            }
        }
        kk += 8;
    }
    for kk in kk..k {
        for r in 0..8 {
            panel[kk * 8 + r] = a[r * lda + kk];
        }
    }
}

/// Column panels of an `n`-column `B`: `(first column, width)`, widths of 48, 32 or 16
/// (multiples of 16 covering `n`). Three-vector panels where possible; a last single
/// vector (a third as efficient: one load per 8 FMAs) is avoided by ending on two
/// two-vector panels instead (e.g. 56 columns: 32 + 32, not 48 + 16).
fn panels(n: usize) -> impl Iterator<Item = (usize, usize)> {
    let nv = n.div_ceil(16);
    let (mut full, rest) = (nv / (NR / 16), nv % (NR / 16));
    let tail: &[usize] = match (rest, full) {
        (1, 1..) => {
            full -= 1;
            &[2, 2]
        }
        (1, _) => &[1],
        (2, _) => &[2],
        _ => &[],
    };
    let widths = std::iter::repeat_n(NR / 16, full).chain(tail.iter().copied());
    widths.scan(0usize, |j0, v| {
        let start = *j0;
        *j0 += v * 16;
        Some((start, v * 16))
    })
}

/// The `B` operand of [`gemm`].
#[derive(Clone, Copy)]
pub(crate) enum BSrc<'a> {
    /// Row-major `k x n` with row stride `ld >= n`, read in place (no packing): for
    /// 1x1 convolutions, whose `B` rows are the input planes. Pays off when `m` is small
    /// (each packed element would be used by few micro-kernel calls).
    Strided {
        /// `(k - 1) * ld + n` floats at least.
        data: &'a [f32],
        /// Row stride.
        ld: usize,
    },
    /// Row `kk` is `data[offs[kk]..offs[kk] + n]`, read in place: the im2col rows of a
    /// convolution, each a tap offset into the padded input planes (no im2col copy).
    Indirect {
        /// Every `offs[kk] + n` floats at least.
        data: &'a [f32],
        /// Start of each of the `k` rows.
        offs: &'a [usize],
    },
}

/// `C[r][j] = act(bias[r] + sum_kk A[r][kk] * B[kk][j])` for rows `r` in `rows`
/// (a range of whole [`MR`] panels of `A`, clipped to `m`) and `j < n`; `C` has row
/// stride `ldc`.
///
/// # Safety
/// The CPU must support AVX-512F ([`available`]). `ap` must be packed by [`pack_a`] for
/// `m x k`, `bp` as its variant says, `bias` (if any) must hold `m` values, and `c`
/// must be valid for reads and writes of rows `rows` x columns `0..n` at stride `ldc`,
/// with no concurrent access to them.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn gemm(
    m: usize,
    rows: std::ops::Range<usize>,
    n: usize,
    k: usize,
    ap: &[f32],
    bp: BSrc<'_>,
    c: *mut f32,
    ldc: usize,
    bias: Option<&[f32]>,
    act: Activation,
) {
    assert!(ap.len() >= packed_a_len(m, k));
    // Row kk of B, columns from j0: `base + kk * ld + j0`, or `base + offs[kk] + j0`.
    let (bdata, ld, offs) = match bp {
        BSrc::Strided { data, ld } => {
            assert!(ld >= n && (k == 0 || n == 0 || data.len() >= (k - 1) * ld + n));
            (data, ld, None)
        }
        BSrc::Indirect { data, offs } => {
            assert!(offs.len() >= k && offs[..k].iter().all(|&o| o + n <= data.len()));
            (data, 1, Some(offs))
        }
    };
    assert!(
        (rows.is_empty() || rows.start.is_multiple_of(MR))
            && rows.end <= m
            && bias.is_none_or(|b| b.len() >= m)
    );
    if k == 0 {
        for r in rows {
            let b = bias.map_or(0.0, |b| b[r]);
            for j in 0..n {
                // SAFETY: row r, column j is in the destination (function contract).
                unsafe { *c.add(r * ldc + j) = act.apply(b) };
            }
        }
        return;
    }
    let zero = [0.0f32; MR];
    let mut bpanel = if offs.is_none() && pack_b(ld, rows.len()) {
        Some(BPanel([0.0; KC * NR]))
    } else {
        None
    };
    // Equal reduction blocks of at most KC (k = 147: one block of 147, not 128 + 19).
    let kblock = k.div_ceil(k.div_ceil(KC));
    let mut pc = 0;
    while pc < k {
        let kc = kblock.min(k - pc);
        let epi = if pc + kc == k { Some(act) } else { None };
        for (j0, w) in panels(n) {
            let cols = (n - j0).min(w);
            // SAFETY (all pointer arithmetic below): the micro-panel offsets stay inside
            // `bdata`/`ap` (asserted lengths and offsets; strided/indirect rows are only
            // read under the column mask); the C block rows r0..r0+nr, columns
            // j0..j0+cols are in the destination (function contract).
            let (b, ldb, o) = match (offs, bpanel.as_mut()) {
                (Some(offs), _) => (unsafe { bdata.as_ptr().add(j0) }, 0, unsafe {
                    offs.as_ptr().add(pc)
                }),
                (None, Some(bp)) => {
                    // The block's `kc x cols` panel of B, rows `w` apart, contiguous.
                    let src = &bdata[pc * ld + j0..];
                    for kk in 0..kc {
                        bp.0[kk * w..kk * w + cols].copy_from_slice(&src[kk * ld..kk * ld + cols]);
                    }
                    (bp.0.as_ptr(), w, std::ptr::null())
                }
                (None, None) => (
                    unsafe { bdata.as_ptr().add(pc * ld + j0) },
                    ld,
                    std::ptr::null(),
                ),
            };
            let mut r0 = rows.start;
            while r0 < rows.end {
                let blk = Block {
                    kc,
                    a: unsafe { ap.as_ptr().add(r0 * k + pc * MR) },
                    b,
                    ldb,
                    offs: o,
                    c: unsafe { c.add(r0 * ldc + j0) },
                    ldc,
                    nr: MR.min(rows.end - r0),
                    cols,
                    first: pc == 0,
                    epi,
                    // Read only for rows < nr.
                    bias: bias.map_or(zero.as_ptr(), |bb| unsafe { bb.as_ptr().add(r0) }),
                };
                unsafe {
                    match (w, offs.is_some()) {
                        (48, false) => kernel3::<false>(&blk),
                        (32, false) => kernel2::<false>(&blk),
                        (_, false) => kernel1::<false>(&blk),
                        (48, true) => kernel3::<true>(&blk),
                        (32, true) => kernel2::<true>(&blk),
                        (_, true) => kernel1::<true>(&blk),
                    }
                }
                r0 += MR;
            }
        }
        pc += kc;
    }
}

/// One `KC x NR` block of `B` copied contiguous (cache-line aligned).
#[repr(C, align(64))]
struct BPanel([f32; KC * NR]);

/// Whether a strided `B` (row stride `ld` floats) is copied block by block into a
/// contiguous panel before the `rows` of `A` run over it. Rows a multiple of 1 KiB apart
/// fall into the same few L1 sets (and, from 4 KiB, each on its own page), so a block
/// read in place misses L1 on every pass of an `A` panel; the copy costs one pass over
/// the block and pays off when many panels follow (session 16, one thread: 192 -> 160 1x1
/// at 32x32 0.936x, 160 -> 96 0.91x, 192 -> 192 at 16x16 0.943x; with 24-64 rows of `A`
/// the copy loses up to 25%, with many rows at other strides it gains nothing).
/// Same operations in the same order: the results are identical either way.
/// `SIEVE_PACK_B=0` never copies, `=1` copies whenever more than one panel of `A` runs
/// (for measurements).
fn pack_b(ld: usize, rows: usize) -> bool {
    static MODE: std::sync::OnceLock<u8> = std::sync::OnceLock::new();
    let mode = *MODE.get_or_init(|| match std::env::var("SIEVE_PACK_B").as_deref() {
        Ok("0") => 0,
        Ok("1") => 1,
        _ => 2,
    });
    match mode {
        0 => false,
        1 => rows > MR,
        _ => rows >= 12 * MR && ld.is_multiple_of(256),
    }
}

/// Applies the activation to one vector (NaN handling as [`Activation::apply`]:
/// `max_ps` returns its second operand when either is NaN).
#[target_feature(enable = "avx512f")]
#[inline]
pub(crate) fn activate(x: __m512, act: Activation) -> __m512 {
    match act {
        Activation::None => x,
        Activation::Relu => _mm512_max_ps(x, _mm512_setzero_ps()),
        Activation::Clip { min, max } => {
            _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(min)), _mm512_set1_ps(max))
        }
    }
}

/// One micro-kernel call: an `MR x (NV * 16)` block of `C` over `kc` reduction steps.
struct Block {
    kc: usize,
    /// `kc` steps of [`MR`] packed weights.
    a: *const f32,
    /// `kc` rows of `B`, `ldb` apart (or, indirect, at `b + offs[kk]`); columns
    /// `>= cols` are never read.
    b: *const f32,
    ldb: usize,
    /// Indirect row offsets (`kc` of them), for `kernel*::<true>`.
    offs: *const usize,
    c: *mut f32,
    ldc: usize,
    /// Rows of `C` to store (`<= MR`).
    nr: usize,
    /// Columns of `C` to store (`<= NV * 16`).
    cols: usize,
    /// Overwrite `C` (else accumulate into it).
    first: bool,
    /// Last reduction block: add `bias` ([`MR`] values) and apply the activation.
    epi: Option<Activation>,
    bias: *const f32,
}

/// Mask of the valid lanes of vector `v` of a block with `cols` columns.
#[inline(always)]
fn lane_mask(cols: usize, v: usize) -> __mmask16 {
    let left = cols.saturating_sub(v * 16);
    if left >= 16 {
        0xffff
    } else {
        (1u16 << left) - 1
    }
}

/// `acc[r][v] += a[r] * bv[v]` for one row `r` and every vector `v` (literal indices).
macro_rules! fma_row {
    ($acc:ident, $bv:ident, $a:ident, $r:literal, [$($v:literal),*]) => {{
        let av = _mm512_set1_ps(*$a.add($r));
        $( $acc[$r][$v] = _mm512_fmadd_ps(av, $bv[$v], $acc[$r][$v]); )*
    }};
}

/// Stores row `r` of the block (accumulating, adding the bias, activating as asked).
macro_rules! store_row {
    ($acc:ident, $blk:ident, $mask:ident, $r:literal, [$($v:literal),*]) => {{
        if $r < $blk.nr {
            let bias_v = _mm512_set1_ps(*$blk.bias.add($r));
            $(
                let m = $mask($v);
                let p = $blk.c.add($r * $blk.ldc + $v * 16);
                let mut x = $acc[$r][$v];
                if !$blk.first {
                    x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(m, p));
                }
                if let Some(act) = $blk.epi {
                    x = activate(_mm512_add_ps(x, bias_v), act);
                }
                _mm512_mask_storeu_ps(p, m, x);
            )*
        }
    }};
}

/// Defines a micro-kernel for blocks of `MR x (NV * 16)`. Written out with literal
/// indices so that all `MR * NV` accumulators stay in registers (with loops over the
/// accumulator array, LLVM kept a copy in memory and stored it on every step).
macro_rules! micro_kernel {
    ($name:ident, $nv:literal, [$($v:literal),*]) => {
        /// Runs one [`Block`] of `MR x (NV * 16)`. Stores rows `< nr` and columns `< cols`
        /// only.
        /// `IND`: rows of `B` at `b + offs[kk]` instead of `ldb` apart.
        #[target_feature(enable = "avx512f")]
        #[inline]
        unsafe fn $name<const IND: bool>(blk: &Block) {
            // SAFETY (whole body): the caller (`gemm`) guarantees `kc` steps of MR floats
            // at `a`, `kc` rows of `cols` readable floats at `b` (`ldb` apart), MR bias
            // values, and the destination block.
            unsafe {
                // Only the last vector can be partial (`cols > (NV - 1) * 16`).
                let last = lane_mask(blk.cols, $nv - 1);
                let mask = |v: usize| if v + 1 == $nv { last } else { 0xffff };
                let mut acc = [[_mm512_setzero_ps(); $nv]; MR];
                let (mut a, mut b, mut o) = (blk.a, blk.b, blk.offs);
                for _ in 0..blk.kc {
                    let row = if IND { blk.b.add(*o) } else { b };
                    let bv = [$( _mm512_maskz_loadu_ps(mask($v), row.add($v * 16)) ),*];
                    fma_row!(acc, bv, a, 0, [$($v),*]);
                    fma_row!(acc, bv, a, 1, [$($v),*]);
                    fma_row!(acc, bv, a, 2, [$($v),*]);
                    fma_row!(acc, bv, a, 3, [$($v),*]);
                    fma_row!(acc, bv, a, 4, [$($v),*]);
                    fma_row!(acc, bv, a, 5, [$($v),*]);
                    fma_row!(acc, bv, a, 6, [$($v),*]);
                    fma_row!(acc, bv, a, 7, [$($v),*]);
                    a = a.add(MR);
                    if IND {
                        o = o.add(1);
                    } else {
                        b = b.add(blk.ldb);
                    }
                }
                store_row!(acc, blk, mask, 0, [$($v),*]);
                store_row!(acc, blk, mask, 1, [$($v),*]);
                store_row!(acc, blk, mask, 2, [$($v),*]);
                store_row!(acc, blk, mask, 3, [$($v),*]);
                store_row!(acc, blk, mask, 4, [$($v),*]);
                store_row!(acc, blk, mask, 5, [$($v),*]);
                store_row!(acc, blk, mask, 6, [$($v),*]);
                store_row!(acc, blk, mask, 7, [$($v),*]);
            }
        }
    };
}

const _: () = assert!(
    MR == 8,
    "the micro-kernels below are written out for MR = 8"
);
micro_kernel!(kernel3, 3, [0, 1, 2]);
micro_kernel!(kernel2, 2, [0, 1]);
micro_kernel!(kernel1, 1, [0]);

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], bias: &[f32]) -> Vec<f32> {
        let mut c = vec![0.0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0f64;
                for kk in 0..k {
                    s += a[i * k + kk] as f64 * b[kk * n + j] as f64;
                }
                c[i * n + j] = (s + bias[i] as f64) as f32;
            }
        }
        c
    }

    #[test]
    fn pack_a_lays_out_panels() {
        // Full and partial panels, widths around the 8-column transpose, row strides
        // longer than k.
        for (m, k, lda) in [
            (8, 8, 8),
            (16, 19, 21),
            (13, 7, 7),
            (9, 64, 70),
            (3, 1, 1),
            (24, 33, 33),
        ] {
            let a: Vec<f32> = (0..m * lda).map(|i| i as f32 + 0.5).collect();
            let mut out = vec![f32::NAN; packed_a_len(m, k)];
            pack_a(&a, m, k, lda, &mut out);
            for (i, v) in out.iter().enumerate() {
                let (p, kk, r) = (i / (MR * k), i % (MR * k) / MR, i % MR);
                let row = p * MR + r;
                let want = if row < m { a[row * lda + kk] } else { 0.0 };
                assert_eq!(v.to_bits(), want.to_bits(), "m {m} k {k} lda {lda}: [{i}]");
            }
        }
    }

    #[test]
    fn matches_reference_on_awkward_shapes() {
        if !available() {
            return;
        }
        let mut s = 7u32;
        let mut rnd = || {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        for &(m, n, k) in &[
            (1, 1, 1),
            (8, 48, 128),
            (9, 49, 129),
            (7, 17, 300),
            (24, 100, 5),
            (3, 33, 0),
            (64, 96, 257),
        ] {
            let a: Vec<f32> = (0..m * k).map(|_| rnd()).collect();
            let b: Vec<f32> = (0..k * n).map(|_| rnd()).collect();
            let bias: Vec<f32> = (0..m).map(|_| rnd()).collect();
            let mut ap = vec![f32::NAN; packed_a_len(m, k)];
            pack_a(&a, m, k, k, &mut ap);
            let ldc = n + 3;
            // B also in place with a row stride (the tail of the last row is the end of
            // the slice: a read past it would fault or show up as NaN).
            let ldb = n + 5;
            let mut strided = vec![f32::NAN; k.saturating_sub(1) * ldb + n];
            for kk in 0..k {
                strided[kk * ldb..kk * ldb + n].copy_from_slice(&b[kk * n..(kk + 1) * n]);
            }
            // And indirect: rows in reverse order at irregular offsets, NaN in between.
            let offs: Vec<usize> = (0..k).map(|kk| (k - 1 - kk) * (n + 9) + kk % 3).collect();
            let mut scattered = vec![f32::NAN; k * (n + 9)];
            for kk in 0..k {
                scattered[offs[kk]..offs[kk] + n].copy_from_slice(&b[kk * n..(kk + 1) * n]);
            }
            for src in [
                BSrc::Strided {
                    data: &strided,
                    ld: ldb,
                },
                BSrc::Indirect {
                    data: &scattered,
                    offs: &offs,
                },
            ] {
                let mut c = vec![f32::NAN; m * ldc];
                // Two row ranges, as two workers would split them.
                let split = (m / 2).div_ceil(MR) * MR;
                for rows in [0..split.min(m), split.min(m)..m] {
                    // SAFETY: AVX-512 checked; operands packed for these sizes; c holds m rows.
                    unsafe {
                        gemm(
                            m,
                            rows,
                            n,
                            k,
                            &ap,
                            src,
                            c.as_mut_ptr(),
                            ldc,
                            Some(&bias),
                            Activation::None,
                        )
                    };
                }
                let want = reference(m, n, k, &a, &b, &bias);
                for i in 0..m {
                    for j in 0..ldc {
                        let got = c[i * ldc + j];
                        if j < n {
                            let w = want[i * n + j];
                            assert!(
                                (got - w).abs() <= 1e-4 * (1.0 + w.abs()) * (k as f32).sqrt(),
                                "m{m} n{n} k{k} at ({i},{j}): {got} vs {w}"
                            );
                        } else {
                            assert!(got.is_nan(), "column {j} past n={n} was written");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_copied_b_block_gives_identical_results() {
        if !available() {
            return;
        }
        // Default rule: a 256-float stride with 12 or more panels of A is copied.
        if std::env::var_os("SIEVE_PACK_B").is_none() {
            assert!(pack_b(256, 12 * MR) && pack_b(1024, 160));
            assert!(!pack_b(256, 11 * MR) && !pack_b(250, 160) && !pack_b(784, 160));
        }
        // Two reduction blocks (k > KC), a partial last panel of columns, m not a
        // multiple of MR; the copied run (all rows in one call) against two calls of
        // fewer rows each (read in place), bit for bit, and against the reference.
        let (m, n, k, ld) = (100, 71, KC + 37, 256);
        let mut s = 11u32;
        let mut rnd = || {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        let a: Vec<f32> = (0..m * k).map(|_| rnd()).collect();
        let bias: Vec<f32> = (0..m).map(|_| rnd()).collect();
        // NaN past column n of every row: a copy that read them would spread NaN.
        let mut b = vec![f32::NAN; (k - 1) * ld + n];
        let mut dense = vec![0.0f32; k * n];
        for kk in 0..k {
            for j in 0..n {
                let v = rnd();
                b[kk * ld + j] = v;
                dense[kk * n + j] = v;
            }
        }
        let mut ap = vec![0.0; packed_a_len(m, k)];
        pack_a(&a, m, k, k, &mut ap);
        let run = |splits: &[(usize, usize)]| {
            let mut c = vec![f32::NAN; m * n];
            for &(r0, r1) in splits {
                // SAFETY: AVX-512 checked; operands packed for these sizes; c holds m rows.
                unsafe {
                    gemm(
                        m,
                        r0..r1,
                        n,
                        k,
                        &ap,
                        BSrc::Strided { data: &b, ld },
                        c.as_mut_ptr(),
                        n,
                        Some(&bias),
                        Activation::Relu,
                    )
                };
            }
            c
        };
        let copied = run(&[(0, m)]);
        let in_place = run(&[(0, 48), (48, m)]);
        assert!(copied
            .iter()
            .zip(&in_place)
            .all(|(x, y)| x.to_bits() == y.to_bits()));
        let want = reference(m, n, k, &a, &dense, &bias);
        for (i, (&got, &w)) in copied.iter().zip(&want).enumerate() {
            let w = w.max(0.0);
            assert!(
                (got - w).abs() <= 1e-4 * (1.0 + w.abs()) * (k as f32).sqrt(),
                "[{i}]"
            );
        }
    }

    #[test]
    fn panels_cover_columns_without_single_vector_tails() {
        for n in 1..400 {
            let ps: Vec<_> = panels(n).collect();
            let mut j = 0;
            for &(j0, w) in &ps {
                assert_eq!(j0, j, "n={n}: {ps:?}");
                assert!(matches!(w, 16 | 32 | 48), "n={n}: {ps:?}");
                j += w;
            }
            assert_eq!(j, n.div_ceil(16) * 16, "n={n}: {ps:?}");
            if n > 16 {
                assert!(ps.iter().all(|&(_, w)| w > 16), "n={n}: {ps:?}");
            }
        }
    }

    #[test]
    fn epilogue_applies_activation_once_after_all_k_blocks() {
        if !available() {
            return;
        }
        // k = 2 * KC + 1: the sum crosses zero between blocks; a per-block ReLU would clip
        // the partial sums.
        let (m, n, k) = (MR, 16, 2 * KC + 1);
        let a = vec![1.0f32; m * k];
        let b: Vec<f32> = (0..k * n)
            .map(|i| if i / n < KC { -1.0 } else { 1.0 })
            .collect();
        let mut ap = vec![0.0; packed_a_len(m, k)];
        pack_a(&a, m, k, k, &mut ap);
        let mut c = vec![0.0f32; m * n];
        for (act, want) in [
            (Activation::Relu, 1.0),
            (Activation::Clip { min: 0.0, max: 0.5 }, 0.5),
            (Activation::None, 1.0),
        ] {
            // SAFETY: AVX-512 checked; operands packed for these sizes.
            unsafe {
                gemm(
                    m,
                    0..m,
                    n,
                    k,
                    &ap,
                    BSrc::Strided { data: &b, ld: n },
                    c.as_mut_ptr(),
                    n,
                    None,
                    act,
                )
            };
            assert!(c.iter().all(|&v| v == want), "{act:?}: {:?}", &c[..4]);
        }
    }
}
