//! AVX-512 and AVX2 bodies of the packed kernels (see `packed.rs`).

use std::arch::x86_64::*;

use super::{finish, PackedSrc, Src, MODE_GEN, MODE_W16, MODE_W8};

/// Widens 16 codes starting at element `idx` (`idx % 8 == 0`) to 32-bit lanes.
///
/// # Safety
/// AVX-512 F, BW, VL, VBMI; elements `idx .. idx + 16` lie in the stream, i.e.
/// `idx / 8 * w + 2 * w <= bytes.len()`.
#[inline(always)]
unsafe fn codes16<const MODE: u8>(s: &PackedSrc<'_, MODE>, idx: usize) -> __m512i {
    let w = s.c.width as usize;
    let off = idx / 8 * w;
    debug_assert!(off + 2 * w <= s.bytes.len());
    // SAFETY: by the contract the 2w bytes from `off` are inside `bytes`; the masked
    // load touches only those bytes (masked-out bytes never fault).
    unsafe {
        let p = s.bytes.as_ptr().add(off);
        match MODE {
            MODE_W8 => _mm512_cvtepu8_epi32(_mm_loadu_si128(p.cast())),
            MODE_W16 => _mm512_cvtepu16_epi32(_mm256_loadu_si256(p.cast())),
            _ => {
                let mask: __mmask64 = (1u64 << (2 * w)) - 1;
                let raw = _mm512_maskz_loadu_epi8(mask, p.cast());
                let perm = _mm512_loadu_si512(s.perm512.as_ptr().cast());
                let bytes = _mm512_permutexvar_epi8(perm, raw);
                let shifts = _mm512_loadu_si512(s.shifts.as_ptr().cast());
                let wmask = _mm512_set1_epi32(((1u64 << w) - 1) as i32);
                _mm512_and_si512(_mm512_srlv_epi32(bytes, shifts), wmask)
            }
        }
    }
}

/// Decodes 16 widened codes (the bit arithmetic of `Consts::decode_add`; `add` is the
/// row's exponent addend, 0 without scales).
#[inline(always)]
unsafe fn decode16<const MODE: u8>(s: &PackedSrc<'_, MODE>, c: __m512i, add: u32) -> __m512 {
    let k = &s.c;
    let adj = k.adj.wrapping_add(add);
    // SAFETY: the caller runs with AVX-512F enabled.
    unsafe {
        let mag = _mm512_and_si512(
            _mm512_sllv_epi32(c, _mm512_set1_epi32(k.man_shift as i32)),
            _mm512_set1_epi32(k.mag_mask as i32),
        );
        let nz = _mm512_test_epi32_mask(c, _mm512_set1_epi32(k.exp_mask as i32));
        let v = _mm512_maskz_add_epi32(nz, mag, _mm512_set1_epi32(adj as i32));
        let sign = _mm512_sllv_epi32(c, _mm512_set1_epi32(k.sign_shift as i32));
        // v | (sign & 0x8000_0000)
        let r = _mm512_ternarylogic_epi32::<0xF8>(v, sign, _mm512_set1_epi32(i32::MIN));
        _mm512_castsi512_ps(r)
    }
}

/// 16 decoded values from element `idx` (contract of `Src::v16`).
#[inline(always)]
pub(super) unsafe fn packed_v16<const MODE: u8>(
    s: &PackedSrc<'_, MODE>,
    idx: usize,
    add: u32,
) -> __m512 {
    if MODE > MODE_GEN {
        // `get` applies the row's scale itself.
        let mut tmp = [0f32; 16];
        for (i, t) in tmp.iter_mut().enumerate() {
            *t = s.get(idx + i);
        }
        // SAFETY: `tmp` holds 16 floats; AVX-512F by contract.
        return unsafe { _mm512_loadu_ps(tmp.as_ptr()) };
    }
    // SAFETY: forwarded contract.
    unsafe { decode16(s, codes16(s, idx), add) }
}

/// 4x4 transpose of 128-bit chunks: lane block `j` of output `q` is chunk `q` of
/// input `j` (the order of [`Src::v64`]).
#[inline(always)]
pub(super) unsafe fn transpose4(l: [__m512; 4]) -> [__m512; 4] {
    // SAFETY: the caller runs with AVX-512F enabled.
    unsafe {
        let t0 = _mm512_shuffle_f32x4::<0x44>(l[0], l[1]);
        let t1 = _mm512_shuffle_f32x4::<0xEE>(l[0], l[1]);
        let t2 = _mm512_shuffle_f32x4::<0x44>(l[2], l[3]);
        let t3 = _mm512_shuffle_f32x4::<0xEE>(l[2], l[3]);
        [
            _mm512_shuffle_f32x4::<0x88>(t0, t2),
            _mm512_shuffle_f32x4::<0xDD>(t0, t2),
            _mm512_shuffle_f32x4::<0x88>(t1, t3),
            _mm512_shuffle_f32x4::<0xDD>(t1, t3),
        ]
    }
}

/// 64 decoded values from element `idx` (contract of `Src::v64`). Signed 8-bit formats
/// look the two high bytes of each `f32` up in 128-entry byte tables (`vpermi2b`) and
/// interleave them; other formats transpose four 16-value decodes.
#[inline(always)]
pub(super) unsafe fn packed_v64<const MODE: u8>(
    s: &PackedSrc<'_, MODE>,
    idx: usize,
    add: u32,
) -> [__m512; 4] {
    if let (MODE_W8, Some((hi, lo))) = (MODE, s.lut.as_ref()) {
        // SAFETY: 64 codes of one byte each from `idx` lie in `bytes` (contract); the
        // tables hold 128 bytes each; AVX-512 BW/VBMI by contract.
        unsafe {
            let codes = _mm512_loadu_si512(s.bytes.as_ptr().add(idx).cast());
            let mut out = lut64(codes, &tables(hi, lo), _mm512_set1_epi8(i8::MIN));
            if add != 0 {
                // The row's scale: add to the exponent of the non-zero values only.
                let mag = _mm512_set1_epi32(i32::MAX);
                let addv = _mm512_set1_epi32(add as i32);
                for v in &mut out {
                    let vi = _mm512_castps_si512(*v);
                    let nz = _mm512_test_epi32_mask(vi, mag);
                    *v = _mm512_castsi512_ps(_mm512_mask_add_epi32(vi, nz, vi, addv));
                }
            }
            return out;
        }
    }
    // SAFETY: forwarded contract.
    unsafe {
        transpose4([
            packed_v16(s, idx, add),
            packed_v16(s, idx + 16, add),
            packed_v16(s, idx + 32, add),
            packed_v16(s, idx + 48, add),
        ])
    }
}

/// 8 decoded values from element `idx` (contract of `Src::v8`).
#[inline(always)]
pub(super) unsafe fn packed_v8<const MODE: u8>(
    s: &PackedSrc<'_, MODE>,
    idx: usize,
    add: u32,
) -> __m256 {
    let k = &s.c;
    let adj = k.adj.wrapping_add(add);
    let w = k.width as usize;
    let off = idx / 8 * w;
    // SAFETY: AVX2 by contract; every load below reads inside `bytes` (the w bytes of
    // the group from `off` exist by contract; 16-byte loads are used only when 16
    // bytes remain, otherwise the group is copied to a local buffer).
    unsafe {
        let p = s.bytes.as_ptr().add(off);
        let c = match MODE {
            MODE_W8 => _mm256_cvtepu8_epi32(_mm_loadl_epi64(p.cast())),
            MODE_W16 => _mm256_cvtepu16_epi32(_mm_loadu_si128(p.cast())),
            MODE_GEN => {
                let raw = if off + 16 <= s.bytes.len() {
                    _mm_loadu_si128(p.cast())
                } else {
                    let mut tmp = [0u8; 16];
                    tmp[..w].copy_from_slice(&s.bytes[off..off + w]);
                    _mm_loadu_si128(tmp.as_ptr().cast())
                };
                let both = _mm256_broadcastsi128_si256(raw);
                let perm = _mm256_loadu_si256(s.perm256.as_ptr().cast());
                let bytes = _mm256_shuffle_epi8(both, perm);
                let shifts = _mm256_loadu_si256(s.shifts.as_ptr().cast());
                let wmask = _mm256_set1_epi32(((1u64 << w) - 1) as i32);
                _mm256_and_si256(_mm256_srlv_epi32(bytes, shifts), wmask)
            }
            _ => {
                // `get` applies the row's scale itself.
                let mut tmp = [0f32; 8];
                for (i, t) in tmp.iter_mut().enumerate() {
                    *t = s.get(idx + i);
                }
                return _mm256_loadu_ps(tmp.as_ptr());
            }
        };
        let mag = _mm256_and_si256(
            _mm256_sllv_epi32(c, _mm256_set1_epi32(k.man_shift as i32)),
            _mm256_set1_epi32(k.mag_mask as i32),
        );
        let zero = _mm256_cmpeq_epi32(
            _mm256_and_si256(c, _mm256_set1_epi32(k.exp_mask as i32)),
            _mm256_setzero_si256(),
        );
        let v = _mm256_andnot_si256(zero, _mm256_add_epi32(mag, _mm256_set1_epi32(adj as i32)));
        let sign = _mm256_and_si256(
            _mm256_sllv_epi32(c, _mm256_set1_epi32(k.sign_shift as i32)),
            _mm256_set1_epi32(i32::MIN),
        );
        _mm256_castsi256_ps(_mm256_or_si256(v, sign))
    }
}

/// Writes elements `start .. start + out.len()` of `s` into `out`; `add` is the
/// exponent addend of the row holding them (see [`Src::row_add`]).
///
/// # Safety
/// AVX-512 F, BW, VL, VBMI available; the elements exist in `s` and lie in one stored
/// row when `s` has per-row scales.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi")]
pub(super) unsafe fn fill_512<S: Src>(s: &S, start: usize, out: &mut [f32], add: u32) {
    let n = out.len();
    let head = ((8 - start % 8) % 8).min(n);
    for (i, o) in out[..head].iter_mut().enumerate() {
        *o = s.get(start + i);
    }
    let mut i = head;
    while i + 16 <= n {
        // SAFETY: start + i is a multiple of 8 and start + i + 16 <= start + n, inside
        // the source; out[i .. i + 16] exists.
        unsafe { _mm512_storeu_ps(out.as_mut_ptr().add(i), s.v16(start + i, add)) };
        i += 16;
    }
    for (ii, o) in out[i..].iter_mut().enumerate() {
        *o = s.get(start + i + ii);
    }
}

/// AVX2 version of [`fill_512`].
///
/// # Safety
/// AVX2 and FMA available; the elements exist in `s`.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn fill_256<S: Src>(s: &S, start: usize, out: &mut [f32], add: u32) {
    let n = out.len();
    let head = ((8 - start % 8) % 8).min(n);
    for (i, o) in out[..head].iter_mut().enumerate() {
        *o = s.get(start + i);
    }
    let mut i = head;
    while i + 8 <= n {
        // SAFETY: as in fill_512, 8 elements.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(i), s.v8(start + i, add)) };
        i += 8;
    }
    for (ii, o) in out[i..].iter_mut().enumerate() {
        *o = s.get(start + i + ii);
    }
}

/// Fixed-order horizontal sum (lane 0 first).
#[inline(always)]
fn hsum<const L: usize>(lanes: [f32; L]) -> f32 {
    lanes.iter().sum()
}

/// Scalar sum of `W[base + i] * x[i]` for `i` in `from..to`.
#[inline(always)]
fn scalar_part<S: Src>(s: &S, base: usize, x: &[f32], from: usize, to: usize) -> f32 {
    let mut t = 0.0f32;
    for (i, &xv) in x[from..to].iter().enumerate() {
        t += s.get(base + from + i) * xv;
    }
    t
}

/// 64 values of `x` in the order of [`Src::v64`].
///
/// # Safety
/// AVX-512F; `p` valid for 64 reads.
#[inline(always)]
unsafe fn x64(p: *const f32) -> [__m512; 4] {
    // SAFETY: by the contract.
    unsafe {
        transpose4([
            _mm512_loadu_ps(p),
            _mm512_loadu_ps(p.add(16)),
            _mm512_loadu_ps(p.add(32)),
            _mm512_loadu_ps(p.add(48)),
        ])
    }
}

/// Four vectors of a block of `x` already in [`Src::v64`] order (see [`transpose_x`]).
///
/// # Safety
/// AVX-512F; `p` valid for 64 reads.
#[inline(always)]
unsafe fn xt4(p: *const f32) -> [__m512; 4] {
    // SAFETY: by the contract.
    unsafe {
        [
            _mm512_loadu_ps(p),
            _mm512_loadu_ps(p.add(16)),
            _mm512_loadu_ps(p.add(32)),
            _mm512_loadu_ps(p.add(48)),
        ]
    }
}

/// The first `body64` elements of `x` (a multiple of 64) with each 64-element block
/// in [`Src::v64`] order: what [`x64`] gives, computed once per product instead of
/// once per four rows.
///
/// # Safety
/// AVX-512F; `body64 <= x.len()`, a multiple of 64.
#[inline(always)]
unsafe fn transpose_x(x: &[f32], body64: usize) -> Vec<__m512> {
    // Vectors, not floats: 64-byte aligned, so no load of the kernel splits a line.
    let mut xt = Vec::with_capacity(body64 / 16);
    for i in (0..body64).step_by(64) {
        // SAFETY: i + 64 <= body64 <= x.len() = contract.
        xt.extend(unsafe { x64(x.as_ptr().add(i)) });
    }
    xt
}

/// Rows `j0 .. j0 + y.len()` of `W` `[.., k]` dotted with `x` (16 lanes; 64-element
/// blocks in the order of [`Src::v64`], so dense and packed sources sum alike).
///
/// # Safety
/// AVX-512 F, BW, VL, VBMI available; `W` holds `(j0 + y.len()) * k` elements and `x`
/// holds `k`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi,fma")]
pub(super) unsafe fn dot_rows_512<S: Src>(
    s: &S,
    k: usize,
    x: &[f32],
    j0: usize,
    y: &mut [f32],
    alpha: f32,
    beta: f32,
) {
    let x = &x[..k];
    let xp = x.as_ptr();
    let mut j = 0;
    if k.is_multiple_of(8) {
        // Every row starts on a group boundary: four rows share each load of x.
        let body64 = k / 64 * 64;
        let body = k / 16 * 16;
        // SAFETY: AVX-512F (contract); body64 <= k = x.len().
        let xt = if y.len() >= 4 {
            unsafe { transpose_x(x, body64) }
        } else {
            Vec::new()
        };
        // Four rows at a time, a quarter of the rows apart: rows g, g + q, g + 2q, g + 3q.
        // Each of the four then moves through memory as one long stream (row g + 1
        // follows row g), instead of four short ones restarting at every row end (the
        // prefetchers' look-ahead is lost at each restart: rows of 4 KiB at 8 bits).
        // Each row's sum is computed exactly as before.
        let q = y.len() / 4;
        let rs = q * k;
        for g in 0..q {
            let b = (j0 + g) * k;
            let adds: [u32; 4] = std::array::from_fn(|r| s.row_add(j0 + g + r * q));
            let mut acc = [_mm512_setzero_ps(); 4];
            // SAFETY: body64 <= k, so x[.. body64] exists and every row's elements
            // b + r*rs .. + body64 lie inside W (contract: the rows j0 + g + r*q exist);
            // b and rs are multiples of 8.
            unsafe { s.dot4_64(b, rs, xt.as_ptr().cast(), body64, adds, &mut acc) };
            let mut i = body64;
            while i < body {
                // SAFETY: as above with 16 elements.
                unsafe {
                    let xv = _mm512_loadu_ps(xp.add(i));
                    for (r, a) in acc.iter_mut().enumerate() {
                        *a = _mm512_fmadd_ps(s.v16(b + r * rs + i, adds[r]), xv, *a);
                    }
                }
                i += 16;
            }
            for (r, a) in acc.iter().enumerate() {
                let mut lanes = [0f32; 16];
                // SAFETY: `lanes` holds 16 floats.
                unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), *a) };
                let t = scalar_part(s, b + r * rs, x, body, k);
                finish(&mut y[g + r * q], (0.0 + hsum(lanes)) + t, alpha, beta);
            }
        }
        j = 4 * q;
    }
    while j < y.len() {
        let b = (j0 + j) * k;
        let head = ((8 - b % 8) % 8).min(k);
        let h = scalar_part(s, b, x, 0, head);
        let add = s.row_add(j0 + j);
        let mut acc = _mm512_setzero_ps();
        let mut i = head;
        while i + 64 <= k {
            // SAFETY: as above; b + i is a multiple of 8.
            unsafe {
                let xv = x64(xp.add(i));
                let wv = s.v64(b + i, add);
                for q in 0..4 {
                    acc = _mm512_fmadd_ps(wv[q], xv[q], acc);
                }
            }
            i += 64;
        }
        while i + 16 <= k {
            // SAFETY: as above; b + i is a multiple of 8.
            unsafe { acc = _mm512_fmadd_ps(s.v16(b + i, add), _mm512_loadu_ps(xp.add(i)), acc) };
            i += 16;
        }
        let mut lanes = [0f32; 16];
        // SAFETY: `lanes` holds 16 floats.
        unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), acc) };
        let t = scalar_part(s, b, x, i, k);
        finish(&mut y[j], (h + hsum(lanes)) + t, alpha, beta);
        j += 1;
    }
}

/// AVX2 version of [`dot_rows_512`] (8 lanes).
///
/// # Safety
/// AVX2 and FMA available; `W` holds `(j0 + y.len()) * k` elements and `x` holds `k`.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn dot_rows_256<S: Src>(
    s: &S,
    k: usize,
    x: &[f32],
    j0: usize,
    y: &mut [f32],
    alpha: f32,
    beta: f32,
) {
    let x = &x[..k];
    let xp = x.as_ptr();
    let mut j = 0;
    if k.is_multiple_of(8) {
        while j + 4 <= y.len() {
            let b = (j0 + j) * k;
            let adds: [u32; 4] = std::array::from_fn(|r| s.row_add(j0 + j + r));
            let mut acc = [_mm256_setzero_ps(); 4];
            let mut i = 0;
            while i < k {
                // SAFETY: i + 8 <= k (k % 8 == 0); rows' elements inside W; aligned groups.
                unsafe {
                    let xv = _mm256_loadu_ps(xp.add(i));
                    for (r, a) in acc.iter_mut().enumerate() {
                        *a = _mm256_fmadd_ps(s.v8(b + r * k + i, adds[r]), xv, *a);
                    }
                }
                i += 8;
            }
            for (r, a) in acc.iter().enumerate() {
                let mut lanes = [0f32; 8];
                // SAFETY: `lanes` holds 8 floats.
                unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), *a) };
                finish(&mut y[j + r], (0.0 + hsum(lanes)) + 0.0, alpha, beta);
            }
            j += 4;
        }
    }
    while j < y.len() {
        let b = (j0 + j) * k;
        let head = ((8 - b % 8) % 8).min(k);
        let h = scalar_part(s, b, x, 0, head);
        let add = s.row_add(j0 + j);
        let mut acc = _mm256_setzero_ps();
        let mut i = head;
        while i + 8 <= k {
            // SAFETY: as above.
            unsafe { acc = _mm256_fmadd_ps(s.v8(b + i, add), _mm256_loadu_ps(xp.add(i)), acc) };
            i += 8;
        }
        let mut lanes = [0f32; 8];
        // SAFETY: `lanes` holds 8 floats.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), acc) };
        let t = scalar_part(s, b, x, i, k);
        finish(&mut y[j], (h + hsum(lanes)) + t, alpha, beta);
        j += 1;
    }
}

/// The 64-element blocks of four rows (`b + r * k`, `r < 4`; `k` the distance between
/// them, a multiple of the row length) dotted with `x`, added to
/// `acc[r]` in the order every source shares: per block, the four lane-block vectors
/// in turn.
///
/// # Safety
/// AVX-512 F, BW, VL, VBMI; `xt` (`x` in block order, see [`transpose_x`]) valid for
/// `body64` reads; the rows' elements
/// `b + r * k .. + body64` inside the source, `b` and `k` multiples of 8, `body64` a
/// multiple of 64.
#[inline(always)]
pub(super) unsafe fn dot4_64_generic<S: Src + ?Sized>(
    s: &S,
    b: usize,
    k: usize,
    xt: *const f32,
    body64: usize,
    adds: [u32; 4],
    acc: &mut [__m512; 4],
) {
    let mut i = 0;
    while i < body64 {
        // SAFETY: i + 64 <= body64 (contract).
        unsafe {
            let xv = xt4(xt.add(i));
            for (r, a) in acc.iter_mut().enumerate() {
                let wv = s.v64(b + r * k + i, adds[r]);
                for q in 0..4 {
                    *a = _mm512_fmadd_ps(wv[q], xv[q], *a);
                }
            }
        }
        i += 64;
    }
}

/// The two 128-byte tables of the signed 8-bit decoder (high and low byte of each
/// value's upper half) as the four registers [`lut64`] takes.
#[inline(always)]
unsafe fn tables(hi: &[u8; 128], lo: &[u8; 128]) -> [__m512i; 4] {
    // SAFETY: the caller runs with AVX-512F enabled; each table holds 128 bytes.
    unsafe {
        [
            _mm512_loadu_si512(hi.as_ptr().cast()),
            _mm512_loadu_si512(hi.as_ptr().add(64).cast()),
            _mm512_loadu_si512(lo.as_ptr().cast()),
            _mm512_loadu_si512(lo.as_ptr().add(64).cast()),
        ]
    }
}

/// One row's 64 codes through the byte tables (see [`packed_v64`]), with the tables
/// and constants in registers.
#[inline(always)]
unsafe fn lut64(codes: __m512i, t: &[__m512i; 4], sign: __m512i) -> [__m512; 4] {
    // SAFETY: the caller runs with AVX-512 F/BW/VBMI enabled.
    unsafe {
        let th = _mm512_permutex2var_epi8(t[0], codes, t[1]);
        let th = _mm512_ternarylogic_epi32::<0xF8>(th, codes, sign);
        let tl = _mm512_permutex2var_epi8(t[2], codes, t[3]);
        let w0 = _mm512_unpacklo_epi8(tl, th);
        let w1 = _mm512_unpackhi_epi8(tl, th);
        let z = _mm512_setzero_si512();
        [
            _mm512_castsi512_ps(_mm512_unpacklo_epi16(z, w0)),
            _mm512_castsi512_ps(_mm512_unpackhi_epi16(z, w0)),
            _mm512_castsi512_ps(_mm512_unpacklo_epi16(z, w1)),
            _mm512_castsi512_ps(_mm512_unpackhi_epi16(z, w1)),
        ]
    }
}

/// Bytes ahead of the current block that the 8-bit loop prefetches in each row (16
/// blocks: enough to keep DRAM busy while the decoder works; measured 1.2x on
/// AlexNet fc6 on a Zen 4 host, docs/COMPRESSED.md).
const PREFETCH: usize = 1024;

/// [`dot4_64_generic`] for signed 8-bit codes through the byte tables without row
/// scales: tables and accumulators held in registers, each row prefetched
/// [`PREFETCH`] bytes ahead (same operations in the same order, so the same sums).
///
/// # Safety
/// As [`dot4_64_generic`], with `bytes` the source's 8-bit codes.
#[inline(always)]
pub(super) unsafe fn dot4_64_w8(
    bytes: &[u8],
    (hi, lo): &([u8; 128], [u8; 128]),
    b: usize,
    k: usize,
    xt: *const f32,
    body64: usize,
    acc: &mut [__m512; 4],
) {
    debug_assert!(b + 3 * k + body64 <= bytes.len());
    // SAFETY: contract: the four rows' codes b + r*k .. + body64 lie in `bytes` and
    // `xt` holds body64 floats; the tables hold 128 bytes each; prefetches of
    // addresses past the end are hints that never fault (wrapping arithmetic).
    unsafe {
        let p = bytes.as_ptr().add(b);
        let t = tables(hi, lo);
        let sign = _mm512_set1_epi8(i8::MIN);
        let [mut a0, mut a1, mut a2, mut a3] = *acc;
        let mut i = 0;
        while i < body64 {
            let xv = xt4(xt.add(i));
            let mut rows = [[_mm512_setzero_ps(); 4]; 4];
            for (r, row) in rows.iter_mut().enumerate() {
                // The caller's four rows are a quarter of its rows apart (`k`), so past
                // a row's end the look-ahead runs on into the next row of its stream.
                _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(r * k + i + PREFETCH).cast());
                *row = lut64(_mm512_loadu_si512(p.add(r * k + i).cast()), &t, sign);
            }
            for q in 0..4 {
                a0 = _mm512_fmadd_ps(rows[0][q], xv[q], a0);
            }
            for q in 0..4 {
                a1 = _mm512_fmadd_ps(rows[1][q], xv[q], a1);
            }
            for q in 0..4 {
                a2 = _mm512_fmadd_ps(rows[2][q], xv[q], a2);
            }
            for q in 0..4 {
                a3 = _mm512_fmadd_ps(rows[3][q], xv[q], a3);
            }
            i += 64;
        }
        *acc = [a0, a1, a2, a3];
    }
}
