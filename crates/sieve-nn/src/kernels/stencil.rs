//! Shared machinery for per-plane sliding-window kernels (depthwise convolution, max
//! and average pooling): the input plane is copied once into a padded, phase-split
//! buffer so that every window tap becomes a constant offset from the flat output index.
//!
//! Layout: padded coordinate `(y, x)` (with `y = iy + pad_top`, `x = ix + pad_left`)
//! lives in phase `(y % sh, x % sw)` at `(y / sh) * P + x / sw` within that phase's
//! `R x P` block. Output `(oy, ox)` is computed at flat index `j = oy * P + ox`, and tap
//! `(ky, kx)` reads `phase_base + j + (ky*dh / sh) * P + kx*dw / sw`. Columns
//! `ow..P` of each flat output row are junk and dropped when compacting; the buffer has
//! slack at the end so that the junk and the last partial vector block stay in bounds.

/// Geometry of one plane of a sliding-window kernel.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stencil {
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub dh: usize,
    pub dw: usize,
    pub pad_top: usize,
    pub pad_left: usize,
    pub h: usize,
    pub w: usize,
    pub oh: usize,
    pub ow: usize,
}

/// Vector block width of the flat loops; buffers are padded to a multiple of it.
pub(crate) const BLOCK: usize = 16;

impl Stencil {
    /// Rows per phase block.
    fn rows(&self) -> usize {
        // Covers the input, both pads, and the ceil-mode overhang of pooling.
        let need = (self.oh - 1) * self.sh + (self.kh - 1) * self.dh + 1;
        need.max(self.pad_top + self.h).div_ceil(self.sh)
    }

    /// Columns per phase row (`P`), also the pitch of the flat output.
    pub fn pitch(&self) -> usize {
        let need = (self.ow - 1) * self.sw + (self.kw - 1) * self.dw + 1;
        need.max(self.pad_left + self.w).div_ceil(self.sw)
    }

    /// Flat output length, rounded up to whole blocks.
    pub fn flat_len(&self) -> usize {
        (self.oh * self.pitch()).div_ceil(BLOCK) * BLOCK
    }

    /// Length of the phase buffer including slack.
    pub fn buf_len(&self) -> usize {
        self.sh * self.sw * self.rows() * self.pitch() + self.pitch() + 2 * BLOCK
    }

    /// Offsets of every tap, in `(ky, kx)` row-major order, from the flat output index.
    pub fn taps(&self, out: &mut Vec<usize>) {
        let (r, p) = (self.rows(), self.pitch());
        out.clear();
        for ky in 0..self.kh {
            let (rq, rp) = ((ky * self.dh) / self.sh, (ky * self.dh) % self.sh);
            for kx in 0..self.kw {
                let (cq, cp) = ((kx * self.dw) / self.sw, (kx * self.dw) % self.sw);
                out.push((rp * self.sw + cp) * r * p + rq * p + cq);
            }
        }
    }

    /// Resets `buf` to the padded layout with every element (padding, slack) set to
    /// `pad`. Needed once per geometry: [`Stencil::fill`] only writes the interior.
    pub fn prepare(&self, pad: f32, buf: &mut Vec<f32>) {
        buf.clear();
        buf.resize(self.buf_len(), pad);
    }

    /// Writes the input plane `src` (`[h, w]`) into the interior of a buffer set up by
    /// [`Stencil::prepare`] for this geometry.
    pub fn fill(&self, src: &[f32], buf: &mut [f32]) {
        let (r, p) = (self.rows(), self.pitch());
        for iy in 0..self.h {
            let y = iy + self.pad_top;
            let row = &src[iy * self.w..(iy + 1) * self.w];
            let (rq, rp) = (y / self.sh, y % self.sh);
            if self.sw == 1 {
                let start = rp * r * p + rq * p + self.pad_left;
                buf[start..start + self.w].copy_from_slice(row);
                continue;
            }
            if self.sw == 2 {
                // Input column 2i goes to phase pl%2 at i + pl/2, column 2i+1 to phase
                // (pl+1)%2 at i + (pl+1)/2: one deinterleaving pass.
                let pl = self.pad_left;
                let a = ((rp * 2 + pl % 2) * r + rq) * p + pl / 2;
                let b = ((rp * 2 + (pl + 1) % 2) * r + rq) * p + pl.div_ceil(2);
                deinterleave2(row, buf, a, b);
                continue;
            }
            for cp in 0..self.sw {
                // First padded column >= pad_left in phase cp, and its input column.
                let x0 = self.pad_left + (cp + self.sw - self.pad_left % self.sw) % self.sw;
                let ix0 = x0 - self.pad_left;
                if ix0 >= self.w {
                    continue;
                }
                let count = (self.w - ix0).div_ceil(self.sw);
                let start = ((rp * self.sw + cp) * r + rq) * p + x0 / self.sw;
                let dst = &mut buf[start..start + count];
                for (d, &v) in dst.iter_mut().zip(row[ix0..].iter().step_by(self.sw)) {
                    *d = v;
                }
            }
        }
    }

    /// Copies the valid columns of the flat result into `dst` (`[oh, ow]`).
    pub fn compact(&self, flat: &[f32], dst: &mut [f32]) {
        let p = self.pitch();
        for (oy, row) in dst.chunks_exact_mut(self.ow).enumerate() {
            row.copy_from_slice(&flat[oy * p..oy * p + self.ow]);
        }
    }
}

/// Writes `row[2i]` to `buf[a + i]` and `row[2i + 1]` to `buf[b + i]` (`a != b` are
/// in different phase blocks, so the two destinations do not overlap).
fn deinterleave2(row: &[f32], buf: &mut [f32], a: usize, b: usize) {
    let pairs = row.len() / 2;
    let odd = row.len() % 2;
    // `a` takes the even columns (pairs + odd of them), `b` the odd ones (pairs).
    let (na, nb) = (pairs + odd, pairs);
    let (da, db) = if a < b {
        let (lo, hi) = buf.split_at_mut(b);
        (&mut lo[a..a + na], &mut hi[..nb])
    } else {
        let (lo, hi) = buf.split_at_mut(a);
        (&mut hi[..na], &mut lo[b..b + nb])
    };
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if matches!(super::simd::level(), super::simd::Level::Avx512) {
        // SAFETY: AVX-512F checked; the slices are `pairs (+ 1)` and `pairs` long.
        done = unsafe { deinterleave2_avx512(row, da, db) };
    }
    for ((x, y), pr) in da[done..]
        .iter_mut()
        .zip(db[done..].iter_mut())
        .zip(row[2 * done..].chunks_exact(2))
    {
        *x = pr[0];
        *y = pr[1];
    }
    if odd == 1 {
        da[pairs] = row[row.len() - 1];
    }
}

/// The first `16 * i` pairs of [`deinterleave2`] (as many whole blocks of 32 input
/// floats as `row`, `da` and `db` hold) in vectors: two loads, two permutes and two
/// stores per 32 floats — the scalar loop does not vectorise, and the stencil copy of
/// a stride-2 layer's input cost a quarter of MobileNet v2's first layer (docs/KERNELS.md
/// "Session 20"). Returns the pairs done.
///
/// # Safety
/// AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn deinterleave2_avx512(row: &[f32], da: &mut [f32], db: &mut [f32]) -> usize {
    use std::arch::x86_64::*;
    let blocks = (row.len() / 32).min(da.len() / 16).min(db.len() / 16);
    let even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    let odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    for i in 0..blocks {
        // SAFETY: floats 32i..32i+32 of `row` and 16i..16i+16 of `da` and `db` are in
        // bounds (`blocks` above).
        unsafe {
            let lo = _mm512_loadu_ps(row.as_ptr().add(32 * i));
            let hi = _mm512_loadu_ps(row.as_ptr().add(32 * i + 16));
            _mm512_storeu_ps(
                da.as_mut_ptr().add(16 * i),
                _mm512_permutex2var_ps(lo, even, hi),
            );
            _mm512_storeu_ps(
                db.as_mut_ptr().add(16 * i),
                _mm512_permutex2var_ps(lo, odd, hi),
            );
        }
    }
    16 * blocks
}

/// Per-thread buffers of the stencil kernels: phase-split input, flat output, tap
/// offsets. Kept in a thread-local so that repeated calls do not allocate.
#[derive(Default)]
pub(crate) struct Bufs {
    pub input: Vec<f32>,
    pub flat: Vec<f32>,
    pub taps: Vec<usize>,
}

thread_local! {
    static BUFS: std::cell::RefCell<Bufs> = std::cell::RefCell::new(Bufs::default());
}

/// Runs `f` with this thread's buffers, prepared for `st` (input set to `pad`, flat
/// output sized, taps computed).
pub(crate) fn with_bufs<R>(st: &Stencil, pad: f32, f: impl FnOnce(&mut Bufs) -> R) -> R {
    BUFS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut b) => {
            prepare_bufs(st, pad, &mut b);
            f(&mut b)
        }
        // Re-entrant use on one thread (not done by these kernels): private buffers.
        Err(_) => {
            let mut b = Bufs::default();
            prepare_bufs(st, pad, &mut b);
            f(&mut b)
        }
    })
}

fn prepare_bufs(st: &Stencil, pad: f32, b: &mut Bufs) {
    st.taps(&mut b.taps);
    st.prepare(pad, &mut b.input);
    b.flat.clear();
    b.flat.resize(st.flat_len(), 0.0);
}

#[cfg(test)]
mod tests {
    use super::deinterleave2;

    /// Every row length up to three vector blocks and both orders of the two phase
    /// targets: the (vectorised where AVX-512) split equals the element-by-element one,
    /// and nothing outside the two targets is written.
    #[test]
    fn deinterleave2_matches_the_definition() {
        for len in 0..100usize {
            let row: Vec<f32> = (0..len).map(|i| i as f32 + 0.5).collect();
            let (na, nb) = (len.div_ceil(2), len / 2);
            for a_first in [true, false] {
                let (a, b) = if a_first {
                    (3, 3 + na + 5)
                } else {
                    (nb + 7, 2)
                };
                let mut buf = vec![-1.0f32; a.max(b) + na.max(nb) + 9];
                deinterleave2(&row, &mut buf, a, b);
                let mut want = vec![-1.0f32; buf.len()];
                for (i, &v) in row.iter().enumerate() {
                    want[if i % 2 == 0 { a + i / 2 } else { b + i / 2 }] = v;
                }
                assert_eq!(buf, want, "len {len}, a {a}, b {b}");
            }
        }
    }
}
