//! Fully-connected kernels that read bit-packed weights directly (DESIGN §4): the
//! packed codes of a [`PackedTensor`] are decoded in registers (batch 1) or one small
//! panel at a time (batch > 1), so the whole `f32` matrix never exists.
//!
//! Decoding mirrors the paper's decompressor with SIMD bit arithmetic (no table):
//! widen the codes to 32-bit lanes (`vpmovzx` for widths 8 and 16, a byte permute
//! plus a per-lane shift for the other widths up to 16), then
//! `bits = sign | (E != 0 ? (mag << (23 - m)) + ((127 - bias) << 23) : 0)` — the exact
//! mapping of `sieve_float::decode` (no subnormals, no inf/NaN; `E = 0` is ±0).
//! AVX-512 (F+BW+VL+VBMI) and AVX2+FMA versions are chosen at run time, once
//! ([`level`]); the portable version decodes one code at a time.
//!
//! **Numerics.** Dense `f32` weights ([`FcWeights::Dense`]) go through the very same
//! loops as packed ones (only the load differs), so for weights equal to the decoded
//! values both give bit-identical outputs on a given machine. That is what keeps a
//! speculative variant (packed) equal, bit for bit, to its reference path (decoded
//! `f32`). Against the generic [`super::gemm`] the results differ only by summation
//! order.

use rayon::prelude::*;
use sieve_float::{Format, PackedTensor};
use std::sync::OnceLock;

use super::matmul::{matmul, MatRef};
use super::{check_len, checked_product, simd, KernelError};

#[cfg(target_arch = "x86_64")]
#[path = "packed_x86.rs"]
mod x86;

/// Below this many weight elements a batch-1 product runs on the calling thread.
const PAR_MIN: usize = 1 << 16;
/// Column block of the `x * W` (untransposed) batch-1 kernel, in floats (fits L1).
const COL_BLOCK: usize = 1024;
/// Target size, in floats, of one decoded weight panel at batch > 1 (4 MiB: big enough
/// that re-packing the activations per panel costs little, small next to a large
/// FC matrix).
const PANEL_FLOATS: usize = 1 << 20;

/// Instruction-set level of the packed kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackedLevel {
    /// AVX-512 F, BW, VL and VBMI (16 codes per step).
    Avx512,
    /// AVX2 and FMA (8 codes per step).
    Avx2,
    /// Portable code.
    Scalar,
}

/// The level the packed kernels use, detected once per process. It follows
/// [`simd::level`] (so `SIEVE_NO_AVX512` caps it at AVX2) and additionally needs
/// AVX-512 BW, VL and VBMI for the AVX-512 path.
pub fn level() -> PackedLevel {
    static LEVEL: OnceLock<PackedLevel> = OnceLock::new();
    *LEVEL.get_or_init(detect)
}

#[cfg(target_arch = "x86_64")]
fn detect() -> PackedLevel {
    match simd::level() {
        simd::Level::Avx512
            if is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vl")
                && is_x86_feature_detected!("avx512vbmi") =>
        {
            PackedLevel::Avx512
        }
        simd::Level::Avx512 | simd::Level::Avx2 => PackedLevel::Avx2,
        simd::Level::Scalar => PackedLevel::Scalar,
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> PackedLevel {
    PackedLevel::Scalar
}

/// The weight operand of a fully-connected layer: plain `f32` or bit-packed codes.
#[derive(Debug, Clone, Copy)]
pub enum FcWeights<'a> {
    /// Row-major `f32` values.
    Dense(&'a [f32]),
    /// Bit-packed codes (row-major element order), decoded inside the kernel.
    Packed(&'a PackedTensor),
    /// Bit-packed codes with one power-of-two scale per stored row of `W` (`[n, k]`
    /// rows with `trans_b`, `[k, n]` rows otherwise): element value
    /// `decode(code) * 2^shifts[row]`, applied to the decoded value in registers (an
    /// exponent addend), so the kernel sees exactly the values of the dense
    /// reference. Shifts are checked ([`check_shifts`]).
    Scaled(&'a PackedTensor, &'a [i8]),
}

impl FcWeights<'_> {
    /// Number of weight elements.
    pub fn len(&self) -> usize {
        match self {
            FcWeights::Dense(d) => d.len(),
            FcWeights::Packed(p) | FcWeights::Scaled(p, _) => p.len(),
        }
    }

    /// True if there are no weights.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Per-format constants of the decoder (`sieve_float`'s code -> value mapping).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Consts {
    width: u32,
    /// `23 - m`.
    man_shift: u32,
    /// Magnitude bits of a code once shifted by `man_shift`.
    mag_mask: u32,
    /// The exponent field `E` of a code (zero code when `code & exp_mask == 0`).
    exp_mask: u32,
    /// `(127 - bias) << 23`.
    adj: u32,
    /// Moves the code's sign bit (bit `e + m`) to bit 31.
    sign_shift: u32,
}

impl Consts {
    pub(crate) fn new(f: Format) -> Consts {
        let (e, m) = (u32::from(f.exp_bits()), u32::from(f.man_bits()));
        // Format::new guarantees 1 <= e <= 7, m <= 23 and bias <= 127.
        Consts {
            width: f.width(),
            man_shift: 23 - m,
            mag_mask: ((1u32 << (e + m)) - 1) << (23 - m),
            exp_mask: ((1u32 << e) - 1) << m,
            adj: ((127 - f.bias()) as u32) << 23,
            sign_shift: 31 - (e + m),
        }
    }

    #[inline(always)]
    pub(crate) fn decode(&self, code: u32) -> f32 {
        let mag = (code << self.man_shift) & self.mag_mask;
        let v = if code & self.exp_mask != 0 {
            mag.wrapping_add(self.adj)
        } else {
            0
        };
        f32::from_bits(v | ((code << self.sign_shift) & 0x8000_0000))
    }

    /// [`Consts::decode`] times `2^s` where `add = s << 23` (wrapping): the exponent
    /// addend is applied to non-zero codes only (exact for shifts that passed
    /// [`check_shifts`]: the result stays a normal finite `f32`).
    #[inline(always)]
    pub(crate) fn decode_add(&self, code: u32, add: u32) -> f32 {
        let mag = (code << self.man_shift) & self.mag_mask;
        let v = if code & self.exp_mask != 0 {
            mag.wrapping_add(self.adj).wrapping_add(add)
        } else {
            0
        };
        f32::from_bits(v | ((code << self.sign_shift) & 0x8000_0000))
    }
}

/// The per-row shifts `s` valid for format `f`: every non-zero decoded value times
/// `2^s` stays a normal, finite `f32` (`bias - 127 <= s <= 128 + bias - 2^e`,
/// within `i8`). Multiplying by such a power of two is exact.
pub fn shift_range(f: Format) -> std::ops::RangeInclusive<i32> {
    let lo = (f.bias() - 127).max(i32::from(i8::MIN));
    let hi = (128 + f.bias() - (1i32 << f.exp_bits())).min(i32::from(i8::MAX));
    lo..=hi
}

/// Checks per-row shifts for a packed tensor of `rows` stored rows: one shift per
/// row, `rows` dividing the element count, every shift in [`shift_range`].
pub fn check_shifts(p: &PackedTensor, rows: usize, shifts: &[i8]) -> Result<(), KernelError> {
    let bad = |reason: String| KernelError::BadGeometry {
        op: "scaled weights",
        reason,
    };
    if shifts.len() != rows {
        return Err(bad(format!("{} row shifts for {rows} rows", shifts.len())));
    }
    if rows == 0 || !p.len().is_multiple_of(rows) {
        return Err(bad(format!(
            "{rows} rows do not divide {} weights",
            p.len()
        )));
    }
    let range = shift_range(p.format());
    if let Some((row, s)) = shifts
        .iter()
        .enumerate()
        .find(|(_, &s)| !range.contains(&i32::from(s)))
    {
        return Err(bad(format!(
            "row {row} has shift {s}, outside {}..={} for format {}",
            range.start(),
            range.end(),
            p.format()
        )));
    }
    Ok(())
}

/// Code of element `idx` of a stream of `width`-bit codes (zero past the end).
#[inline(always)]
fn extract(bytes: &[u8], width: u32, idx: usize) -> u32 {
    let bit = idx * width as usize;
    let mut word = 0u64;
    for (i, &b) in bytes
        .get(bit / 8..)
        .unwrap_or(&[])
        .iter()
        .take(5)
        .enumerate()
    {
        word |= u64::from(b) << (8 * i);
    }
    ((word >> (bit % 8)) & ((1u64 << width) - 1)) as u32
}

/// Where a kernel reads weight values from. The SIMD loads take an element index that
/// is a multiple of 8 (a packed group starts on a byte boundary) with all loaded
/// elements inside the tensor.
pub(crate) trait Src: Sync {
    /// Value of element `idx`.
    fn get(&self, idx: usize) -> f32;
    /// Writes elements `start .. start + out.len()` into `out`.
    fn fill(&self, start: usize, out: &mut [f32]);
    /// Dense data, if the source is plain `f32` (panels then need no copy).
    fn dense(&self) -> Option<&[f32]>;
    /// Elements `start .. start + len`: borrowed from dense data, else decoded into
    /// `buf` (grown as needed).
    fn panel<'b>(&'b self, start: usize, len: usize, buf: &'b mut Vec<f32>) -> &'b [f32] {
        match self.dense() {
            Some(d) => &d[start..start + len],
            None => {
                buf.resize(len, 0.0);
                self.fill(start, &mut buf[..len]);
                &buf[..len]
            }
        }
    }
    /// The addend to the `f32` bit pattern of a non-zero decoded value of stored row
    /// `row` (`shift << 23`, wrapping): the row's power-of-two scale. Always 0 for dense
    /// weights and for packed weights without per-row scales.
    #[inline(always)]
    fn row_add(&self, _row: usize) -> u32 {
        0
    }
    /// 16 values from element `idx`; `add` is [`Src::row_add`] of the row holding them
    /// (ignored by dense sources).
    ///
    /// # Safety
    /// AVX-512 (F, BW, VL, VBMI) available; `idx % 8 == 0`; `idx + 16 <= len`; the 16
    /// elements lie in one stored row when the source has per-row scales.
    #[cfg(target_arch = "x86_64")]
    unsafe fn v16(&self, idx: usize, add: u32) -> std::arch::x86_64::__m512;
    /// 8 values from element `idx` (`add` as for [`Src::v16`]).
    ///
    /// # Safety
    /// AVX2 and FMA available; `idx % 8 == 0`; `idx + 8 <= len`; one stored row as for
    /// [`Src::v16`].
    #[cfg(target_arch = "x86_64")]
    unsafe fn v8(&self, idx: usize, add: u32) -> std::arch::x86_64::__m256;
    /// 64 values from element `idx` as four vectors in the "lane-block" order of the
    /// byte-unpacking decoder: vector `q`, lane `4j + r` holds element `idx + 16j + 4q + r`.
    ///
    /// # Safety
    /// As [`Src::v16`], with `idx + 64 <= len`.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn v64(&self, idx: usize, add: u32) -> [std::arch::x86_64::__m512; 4] {
        // SAFETY: forwarded contract (four in-bounds 16-element loads).
        unsafe {
            x86::transpose4([
                self.v16(idx, add),
                self.v16(idx + 16, add),
                self.v16(idx + 32, add),
                self.v16(idx + 48, add),
            ])
        }
    }
    /// The 64-element blocks `0 .. body64` of four rows starting at elements
    /// `b + r * k` (`k`: the distance between the four rows, a multiple of the row
    /// length) dotted with `x`, added to `acc[r]` (`adds` as for [`Src::v16`]), in
    /// the block order of [`Src::v64`] — the one order every source shares. `xt` is
    /// `x` with each 64-element block already in that order (see `x86::transpose_x`).
    ///
    /// # Safety
    /// AVX-512 (F, BW, VL, VBMI) and FMA available; `xt` valid for `body64` reads;
    /// `b` and `k` multiples of 8; `body64` a multiple of 64; every row's elements
    /// `b + r * k .. + body64` inside the tensor, in one stored row.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn dot4_64(
        &self,
        b: usize,
        k: usize,
        xt: *const f32,
        body64: usize,
        adds: [u32; 4],
        acc: &mut [std::arch::x86_64::__m512; 4],
    ) {
        // SAFETY: forwarded contract.
        unsafe { x86::dot4_64_generic(self, b, k, xt, body64, adds, acc) }
    }
}

/// Plain `f32` weights.
pub(crate) struct DenseSrc<'a>(pub &'a [f32]);

impl Src for DenseSrc<'_> {
    #[inline(always)]
    fn get(&self, idx: usize) -> f32 {
        self.0[idx]
    }
    fn fill(&self, start: usize, out: &mut [f32]) {
        out.copy_from_slice(&self.0[start..start + out.len()]);
    }
    fn dense(&self) -> Option<&[f32]> {
        Some(self.0)
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn v16(&self, idx: usize, _add: u32) -> std::arch::x86_64::__m512 {
        debug_assert!(idx + 16 <= self.0.len());
        // SAFETY: the caller guarantees idx + 16 <= len and AVX-512F.
        unsafe { std::arch::x86_64::_mm512_loadu_ps(self.0.as_ptr().add(idx)) }
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn v8(&self, idx: usize, _add: u32) -> std::arch::x86_64::__m256 {
        debug_assert!(idx + 8 <= self.0.len());
        // SAFETY: the caller guarantees idx + 8 <= len and AVX.
        unsafe { std::arch::x86_64::_mm256_loadu_ps(self.0.as_ptr().add(idx)) }
    }
}

/// How a packed source widens its codes (chosen from the width).
pub(crate) const MODE_W8: u8 = 0;
/// Width 16: zero-extend 16-bit words.
pub(crate) const MODE_W16: u8 = 1;
/// Other widths up to 16: byte permute + per-lane shift.
pub(crate) const MODE_GEN: u8 = 2;
/// Widths 17..=31: one code at a time.
pub(crate) const MODE_WIDE: u8 = 3;

/// Bit-packed weights, widened and decoded with SIMD per `MODE`.
pub(crate) struct PackedSrc<'a, const MODE: u8> {
    pub(crate) bytes: &'a [u8],
    pub(crate) c: Consts,
    /// Byte permutation (AVX-512: 16 lanes x 4 bytes from a `2w`-byte group pair;
    /// AVX2: 8 lanes x 4 bytes from a `w`-byte group, same in both 128-bit halves).
    pub(crate) perm512: [u8; 64],
    pub(crate) perm256: [u8; 32],
    /// Right shift per lane (`i * w % 8`).
    pub(crate) shifts: [u32; 16],
    /// Signed 8-bit formats: the high and low byte of the decoded `f32` (whose low 16
    /// bits are zero since `m <= 7`) for each 7-bit magnitude code.
    pub(crate) lut: Option<([u8; 128], [u8; 128])>,
    /// Per stored row, the power-of-two scale `2^shift` of its decoded values (empty:
    /// none). Validated by [`check_shifts`].
    pub(crate) row_shifts: &'a [i8],
    /// Elements per stored row (`len / shifts.len()`; 0 without shifts).
    pub(crate) row_len: usize,
}

impl<'a, const MODE: u8> PackedSrc<'a, MODE> {
    /// `row_shifts` must have passed [`check_shifts`] for `p` (empty: no scales).
    fn new(p: &'a PackedTensor, row_shifts: &'a [i8]) -> PackedSrc<'a, MODE> {
        let c = Consts::new(p.format());
        let w = c.width as usize;
        let mut perm512 = [0u8; 64];
        let mut perm256 = [0x80u8; 32];
        let mut shifts = [0u32; 16];
        for lane in 0..16 {
            let first = lane * w / 8;
            shifts[lane] = (lane * w % 8) as u32;
            for b in 0..4 {
                perm512[lane * 4 + b] = ((first + b) & 63) as u8;
                if lane < 8 && first + b < 16 {
                    perm256[lane * 4 + b] = (first + b) as u8;
                }
            }
        }
        let f = p.format();
        let lut = (MODE == MODE_W8 && f.signed()).then(|| {
            let mut hi = [0u8; 128];
            let mut lo = [0u8; 128];
            for code in 0..128u32 {
                let b = c.decode(code).to_bits();
                hi[code as usize] = (b >> 24) as u8;
                lo[code as usize] = (b >> 16) as u8;
            }
            (hi, lo)
        });
        PackedSrc {
            bytes: p.bytes(),
            c,
            perm512,
            perm256,
            shifts,
            lut,
            row_len: p.len().checked_div(row_shifts.len()).unwrap_or(0),
            row_shifts,
        }
    }

    /// Writes elements `start .. start + out.len()`, all in rows with addend `add`.
    fn fill_add(&self, start: usize, out: &mut [f32], add: u32) {
        match level() {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: level() returned Avx512 only after detecting F, BW, VL and VBMI;
            // the caller keeps the range inside one stored row when there are scales.
            PackedLevel::Avx512 => unsafe { x86::fill_512(self, start, out, add) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: level() returned Avx2 only after detecting AVX2 and FMA.
            PackedLevel::Avx2 => unsafe { x86::fill_256(self, start, out, add) },
            _ => out
                .iter_mut()
                .enumerate()
                .for_each(|(i, o)| *o = self.get(start + i)),
        }
    }
}

impl<const MODE: u8> Src for PackedSrc<'_, MODE> {
    #[inline(always)]
    fn get(&self, idx: usize) -> f32 {
        let code = extract(self.bytes, self.c.width, idx);
        if self.row_shifts.is_empty() {
            self.c.decode(code)
        } else {
            self.c.decode_add(
                code,
                self.row_add(idx.checked_div(self.row_len).unwrap_or(0)),
            )
        }
    }
    #[inline(always)]
    fn row_add(&self, row: usize) -> u32 {
        self.row_shifts
            .get(row)
            .map_or(0, |&s| (i32::from(s) << 23) as u32)
    }
    fn fill(&self, start: usize, out: &mut [f32]) {
        if self.row_shifts.is_empty() || self.row_len == 0 {
            self.fill_add(start, out, 0);
            return;
        }
        // One stored row (one scale) at a time.
        let mut i = 0;
        while i < out.len() {
            let idx = start + i;
            let row = idx / self.row_len;
            let end = ((row + 1) * self.row_len - start).min(out.len());
            self.fill_add(idx, &mut out[i..end], self.row_add(row));
            i = end;
        }
    }
    fn dense(&self) -> Option<&[f32]> {
        None
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn v16(&self, idx: usize, add: u32) -> std::arch::x86_64::__m512 {
        // SAFETY: forwarded contract.
        unsafe { x86::packed_v16(self, idx, add) }
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn v8(&self, idx: usize, add: u32) -> std::arch::x86_64::__m256 {
        // SAFETY: forwarded contract.
        unsafe { x86::packed_v8(self, idx, add) }
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn v64(&self, idx: usize, add: u32) -> [std::arch::x86_64::__m512; 4] {
        // SAFETY: forwarded contract.
        unsafe { x86::packed_v64(self, idx, add) }
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn dot4_64(
        &self,
        b: usize,
        k: usize,
        xt: *const f32,
        body64: usize,
        adds: [u32; 4],
        acc: &mut [std::arch::x86_64::__m512; 4],
    ) {
        // SAFETY: forwarded contract. The specialised loop takes signed 8-bit codes
        // (byte tables) without row scales (`adds` all 0).
        unsafe {
            match (MODE, self.lut.as_ref()) {
                (MODE_W8, Some(lut)) if adds == [0; 4] => {
                    x86::dot4_64_w8(self.bytes, lut, b, k, xt, body64, acc)
                }
                _ => x86::dot4_64_generic(self, b, k, xt, body64, adds, acc),
            }
        }
    }
}

/// `y = alpha * acc + beta * y` (beta == 0 ignores the old `y`, even NaN).
#[inline(always)]
fn finish(y: &mut f32, acc: f32, alpha: f32, beta: f32) {
    *y = if beta == 0.0 {
        alpha * acc
    } else {
        alpha * acc + beta * *y
    };
}

/// Portable dot product of row `row` (`k` elements from `row * k`) with `x`, in the
/// block structure shared by all levels: unaligned head, 8-lane body, tail.
fn dot_row_scalar<S: Src>(s: &S, k: usize, x: &[f32], row: usize) -> f32 {
    let base = row * k;
    let head = ((8 - base % 8) % 8).min(k);
    let mut h = 0.0f32;
    for (i, &xv) in x[..head].iter().enumerate() {
        h += s.get(base + i) * xv;
    }
    let mut acc = [0.0f32; 8];
    let mut i = head;
    while i + 8 <= k {
        for (l, a) in acc.iter_mut().enumerate() {
            *a += s.get(base + i + l) * x[i + l];
        }
        i += 8;
    }
    let mut t = 0.0f32;
    for (ii, &xv) in x[i..k].iter().enumerate() {
        t += s.get(base + i + ii) * xv;
    }
    (h + acc.iter().sum::<f32>()) + t
}

/// `y[j] = alpha * dot(W[j0 + j, :], x) + beta * y[j]`, W `[.., k]` row-major.
fn dot_rows<S: Src>(s: &S, k: usize, x: &[f32], j0: usize, y: &mut [f32], alpha: f32, beta: f32) {
    match level() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: level() returned Avx512 only after detecting F, BW, VL and VBMI; the
        // callers checked that W holds (j0 + y.len()) * k elements and x holds k.
        PackedLevel::Avx512 => unsafe { x86::dot_rows_512(s, k, x, j0, y, alpha, beta) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above, for AVX2 and FMA.
        PackedLevel::Avx2 => unsafe { x86::dot_rows_256(s, k, x, j0, y, alpha, beta) },
        _ => {
            for (j, yv) in y.iter_mut().enumerate() {
                finish(yv, dot_row_scalar(s, k, x, j0 + j), alpha, beta);
            }
        }
    }
}

/// Batch 1, `W` `[n, k]`: rows split across the rayon pool.
fn gemv_rows<S: Src>(s: &S, n: usize, k: usize, x: &[f32], alpha: f32, beta: f32, y: &mut [f32]) {
    let threads = rayon::current_num_threads();
    if n * k < PAR_MIN || threads == 1 {
        dot_rows(s, k, x, 0, y, alpha, beta);
        return;
    }
    let chunk = n.div_ceil(threads * 4).next_multiple_of(4);
    crate::team::par_chunks_mut(y, chunk, threads, |ci, ys| {
        dot_rows(s, k, x, ci * chunk, ys, alpha, beta)
    });
}

/// Batch 1, `W` `[k, n]`: `y = alpha * sum_p x[p] * W[p, :] + beta * y`, column blocks
/// split across the pool; each row block is decoded into an L1 buffer first.
fn gemv_cols<S: Src>(s: &S, n: usize, k: usize, x: &[f32], alpha: f32, beta: f32, y: &mut [f32]) {
    let body = |j0: usize, ys: &mut [f32]| {
        let len = ys.len();
        let mut acc = [0.0f32; COL_BLOCK];
        let mut buf = [0.0f32; COL_BLOCK];
        let acc = &mut acc[..len];
        for (p, &xp) in x.iter().enumerate() {
            let start = p * n + j0;
            let row: &[f32] = match s.dense() {
                Some(d) => &d[start..start + len],
                None => {
                    s.fill(start, &mut buf[..len]);
                    &buf[..len]
                }
            };
            simd::axpy(xp, row, acc);
        }
        for (yv, &a) in ys.iter_mut().zip(acc.iter()) {
            finish(yv, a, alpha, beta);
        }
    };
    if n * k < PAR_MIN || rayon::current_num_threads() == 1 {
        for (ci, ys) in y.chunks_mut(COL_BLOCK).enumerate() {
            body(ci * COL_BLOCK, ys);
        }
        return;
    }
    crate::team::par_chunks_mut(y, COL_BLOCK, rayon::current_num_threads(), |ci, ys| {
        body(ci * COL_BLOCK, ys)
    });
}

/// Batch > 1: `W` is cut into panels (rows of `W` `[n, k]` = output columns, or rows of
/// `W` `[k, n]` = a slice of the inner dimension), each decoded into a small buffer
/// (dense weights are used in place) and multiplied with the GEMM. Panel boundaries
/// depend only on the shapes, so dense and packed weights give identical results.
#[allow(clippy::too_many_arguments)]
fn gemm_panels<S: Src>(
    s: &S,
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    trans_b: bool,
    alpha: f32,
    beta: f32,
    c: &mut [f32],
) {
    if beta != 0.0 && beta != 1.0 {
        c.iter_mut().for_each(|v| *v *= beta);
    }
    let am = MatRef {
        data: a,
        rs: k,
        cs: 1,
    };
    if trans_b {
        // Panels of output columns, in parallel; each worker owns its panel buffer.
        // Every panel re-packs `a` inside the GEMM: wider panels for bigger batches.
        let min_cols = if m >= 16 { 256 } else { 64 };
        let p = (PANEL_FLOATS / k.max(1))
            .clamp(min_cols, n.max(min_cols))
            .next_multiple_of(8);
        let panels: Vec<usize> = (0..n).step_by(p).collect();
        let out = OutPtr(c.as_mut_ptr());
        let run = |j0: usize, buf: &mut Vec<f32>| {
            let cols = p.min(n - j0);
            let w = s.panel(j0 * k, cols * k, buf);
            let bm = MatRef {
                data: w,
                rs: 1,
                cs: k,
            };
            // SAFETY: columns j0 .. j0 + cols of every row of `c` (m x n, row stride n)
            // belong to this panel only; `c` outlives the parallel loop.
            unsafe {
                super::matmul::matmul_raw(
                    m,
                    cols,
                    k,
                    am,
                    bm,
                    out.at(j0),
                    n,
                    alpha,
                    beta != 0.0,
                    false,
                )
            };
        };
        panels
            .par_iter()
            .for_each_init(Vec::new, |buf, &j0| run(j0, buf));
    } else {
        // Panels of the inner dimension, accumulated in order; the GEMM splits each.
        let p = (PANEL_FLOATS / n.max(1)).clamp(64, k.max(64));
        let mut buf = Vec::new();
        for p0 in (0..k).step_by(p) {
            let rows = p.min(k - p0);
            let w = s.panel(p0 * n, rows * n, &mut buf);
            let a_sub = MatRef {
                data: &a[p0..],
                rs: k,
                cs: 1,
            };
            let bm = MatRef {
                data: w,
                rs: n,
                cs: 1,
            };
            matmul(
                m,
                n,
                rows,
                a_sub,
                bm,
                c,
                n,
                alpha,
                p0 > 0 || beta != 0.0,
                true,
            );
        }
    }
}

/// Raw output pointer shared by panel workers writing disjoint columns.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
impl OutPtr {
    /// The pointer `j` elements further (a method, so closures capture the `Sync` wrapper).
    fn at(self, j: usize) -> *mut f32 {
        self.0.wrapping_add(j)
    }
}

// SAFETY: only used for disjoint column ranges of one `&mut [f32]` that outlives the
// parallel section (see `gemm_panels`).
unsafe impl Send for OutPtr {}
// SAFETY: as above.
unsafe impl Sync for OutPtr {}

#[allow(clippy::too_many_arguments)]
fn fc_src<S: Src>(
    s: &S,
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    trans_b: bool,
    alpha: f32,
    beta: f32,
    c: &mut [f32],
) {
    if m == 1 {
        if trans_b {
            gemv_rows(s, n, k, a, alpha, beta, c);
        } else {
            gemv_cols(s, n, k, a, alpha, beta, c);
        }
    } else {
        gemm_panels(s, m, n, k, a, trans_b, alpha, beta, c);
    }
}

/// Fully-connected product with a constant weight operand:
/// `c[m x n] = alpha * a[m x k] * op(W) + beta * c`, where `op(W) = W^T` for `W`
/// `[n, k]` (`trans_b`, ONNX `Gemm` with `transB = 1`) and `W` `[k, n]` otherwise.
/// `beta == 0` ignores `c`'s old contents (even NaN).
///
/// Batch 1 streams the weights once (packed codes decoded in registers), rows or
/// column blocks split across the rayon pool; batch > 1 decodes one panel of weights
/// at a time into a small per-thread buffer and runs the GEMM on it. Dense and packed
/// weights with equal values give bit-identical results (see the module docs).
#[allow(clippy::too_many_arguments)]
pub fn fc(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    w: FcWeights<'_>,
    trans_b: bool,
    alpha: f32,
    beta: f32,
    c: &mut [f32],
) -> Result<(), KernelError> {
    const OP: &str = "fc";
    check_len(OP, "a", checked_product(OP, "a", &[m, k])?, a.len())?;
    check_len(
        OP,
        "weights",
        checked_product(OP, "weights", &[k, n])?,
        w.len(),
    )?;
    check_len(OP, "c", checked_product(OP, "c", &[m, n])?, c.len())?;
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        c.iter_mut().for_each(|v| finish(v, 0.0, alpha, beta));
        return Ok(());
    }
    match w {
        FcWeights::Dense(d) => fc_src(&DenseSrc(d), m, n, k, a, trans_b, alpha, beta, c),
        FcWeights::Packed(p) | FcWeights::Scaled(p, _) => {
            let shifts: &[i8] = match w {
                FcWeights::Scaled(_, s) => {
                    check_shifts(p, if trans_b { n } else { k }, s)?;
                    s
                }
                _ => &[],
            };
            let args = (m, n, k, a, trans_b, alpha, beta);
            match packed_mode(p.format()) {
                MODE_W8 => fc_packed::<MODE_W8>(p, shifts, args, c),
                MODE_W16 => fc_packed::<MODE_W16>(p, shifts, args, c),
                MODE_GEN => fc_packed::<MODE_GEN>(p, shifts, args, c),
                _ => fc_packed::<MODE_WIDE>(p, shifts, args, c),
            }
        }
    }
    Ok(())
}

type FcArgs<'a> = (usize, usize, usize, &'a [f32], bool, f32, f32);

fn fc_packed<const MODE: u8>(p: &PackedTensor, shifts: &[i8], args: FcArgs<'_>, c: &mut [f32]) {
    let (m, n, k, a, trans_b, alpha, beta) = args;
    let s = PackedSrc::<MODE>::new(p, shifts);
    fc_src(&s, m, n, k, a, trans_b, alpha, beta, c);
}

fn packed_mode(f: Format) -> u8 {
    match f.width() {
        8 => MODE_W8,
        16 => MODE_W16,
        w if w < 16 => MODE_GEN,
        _ => MODE_WIDE,
    }
}

/// Decodes a whole packed tensor into `out` (`out.len() == p.len()`), with the SIMD
/// decoder of this module, split across the rayon pool for large tensors. Values are
/// exactly `sieve_float::decode` of each code.
pub fn decode_into(p: &PackedTensor, out: &mut [f32]) -> Result<(), KernelError> {
    decode_rows(p, &[], out)
}

/// [`decode_into`] with one power-of-two scale per stored row: element `i` of row
/// `r` (`rows = shifts.len()` equal rows) is `decode(code_i) * 2^shifts[r]`, exact.
/// The shifts are checked with [`check_shifts`].
pub fn decode_scaled_into(
    p: &PackedTensor,
    shifts: &[i8],
    out: &mut [f32],
) -> Result<(), KernelError> {
    check_shifts(p, shifts.len(), shifts)?;
    decode_rows(p, shifts, out)
}

fn decode_rows(p: &PackedTensor, shifts: &[i8], out: &mut [f32]) -> Result<(), KernelError> {
    check_len("decode", "out", p.len(), out.len())?;
    match packed_mode(p.format()) {
        MODE_W8 => decode_par(&PackedSrc::<MODE_W8>::new(p, shifts), out),
        MODE_W16 => decode_par(&PackedSrc::<MODE_W16>::new(p, shifts), out),
        MODE_GEN => decode_par(&PackedSrc::<MODE_GEN>::new(p, shifts), out),
        _ => decode_par(&PackedSrc::<MODE_WIDE>::new(p, shifts), out),
    }
    Ok(())
}

/// A packed tensor (with optional per-row scales, checked once) that decodes any
/// element range on demand, with the SIMD decoder of this module. Convolutions use it
/// to decode their weights panel by panel straight into the GEMM or Winograd packing,
/// so no decoded copy of the whole layer passes through memory. Values are exactly
/// those of [`decode_into`] / [`decode_scaled_into`].
pub struct RangeDecoder<'a> {
    inner: RangeInner<'a>,
    len: usize,
}

enum RangeInner<'a> {
    W8(PackedSrc<'a, MODE_W8>),
    W16(PackedSrc<'a, MODE_W16>),
    Gen(PackedSrc<'a, MODE_GEN>),
    Wide(PackedSrc<'a, MODE_WIDE>),
}

impl std::fmt::Debug for RangeDecoder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RangeDecoder")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl<'a> RangeDecoder<'a> {
    /// Decoder of `p`, with one power-of-two scale per stored row if `shifts` is not
    /// empty (checked with [`check_shifts`]).
    pub fn new(p: &'a PackedTensor, shifts: &'a [i8]) -> Result<RangeDecoder<'a>, KernelError> {
        if !shifts.is_empty() {
            check_shifts(p, shifts.len(), shifts)?;
        }
        let inner = match packed_mode(p.format()) {
            MODE_W8 => RangeInner::W8(PackedSrc::new(p, shifts)),
            MODE_W16 => RangeInner::W16(PackedSrc::new(p, shifts)),
            MODE_GEN => RangeInner::Gen(PackedSrc::new(p, shifts)),
            _ => RangeInner::Wide(PackedSrc::new(p, shifts)),
        };
        Ok(RangeDecoder {
            inner,
            len: p.len(),
        })
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if there is no element.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Writes elements `start .. start + out.len()` into `out` (on the calling thread).
    /// Positions past the end of the tensor are set to NaN (callers size their ranges
    /// from the checked shape, so this only guards memory safety).
    pub fn fill(&self, start: usize, out: &mut [f32]) {
        let n = out.len().min(self.len.saturating_sub(start));
        let (head, tail) = out.split_at_mut(n);
        match &self.inner {
            RangeInner::W8(s) => s.fill(start, head),
            RangeInner::W16(s) => s.fill(start, head),
            RangeInner::Gen(s) => s.fill(start, head),
            RangeInner::Wide(s) => s.fill(start, head),
        }
        tail.fill(f32::NAN);
    }

    /// Decodes the whole tensor into `out` (`out.len() == self.len()`, else an error),
    /// split across the run's workers for large tensors.
    pub fn decode_all(&self, out: &mut [f32]) -> Result<(), KernelError> {
        check_len("decode", "out", self.len, out.len())?;
        match &self.inner {
            RangeInner::W8(s) => decode_par(s, out),
            RangeInner::W16(s) => decode_par(s, out),
            RangeInner::Gen(s) => decode_par(s, out),
            RangeInner::Wide(s) => decode_par(s, out),
        }
        Ok(())
    }
}

fn decode_par<S: Src>(s: &S, out: &mut [f32]) {
    const CHUNK: usize = 1 << 16;
    if out.len() <= CHUNK || rayon::current_num_threads() == 1 {
        s.fill(0, out);
        return;
    }
    crate::team::par_chunks_mut(out, CHUNK, rayon::current_num_threads(), |i, o| {
        s.fill(i * CHUNK, o)
    });
}

#[cfg(test)]
#[path = "packed_tests.rs"]
mod tests;
