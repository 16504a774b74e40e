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
    fn buf_len(&self) -> usize {
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

    /// Fills `buf` with the padded, phase-split copy of `src` (`[h, w]`); padding and
    /// slack take `pad`.
    pub fn fill(&self, src: &[f32], pad: f32, buf: &mut Vec<f32>) {
        let (r, p) = (self.rows(), self.pitch());
        buf.clear();
        buf.resize(self.buf_len(), pad);
        for iy in 0..self.h {
            let y = iy + self.pad_top;
            let row = &src[iy * self.w..(iy + 1) * self.w];
            let (rq, rp) = (y / self.sh, y % self.sh);
            if self.sw == 1 {
                let start = rp * r * p + rq * p + self.pad_left;
                buf[start..start + self.w].copy_from_slice(row);
                continue;
            }
            for (ix, &v) in row.iter().enumerate() {
                let x = ix + self.pad_left;
                buf[((rp * self.sw + x % self.sw) * r + rq) * p + x / self.sw] = v;
            }
        }
    }

    /// Copies the valid columns of the flat result into `dst` (`[oh, ow]`), mapping each
    /// value through `f(value, oy, ox)`.
    #[inline(always)]
    pub fn compact(&self, flat: &[f32], dst: &mut [f32], f: impl Fn(f32, usize, usize) -> f32) {
        let p = self.pitch();
        for (oy, row) in dst.chunks_exact_mut(self.ow).enumerate() {
            for (ox, (d, &v)) in row
                .iter_mut()
                .zip(&flat[oy * p..oy * p + self.ow])
                .enumerate()
            {
                *d = f(v, oy, ox);
            }
        }
    }
}
