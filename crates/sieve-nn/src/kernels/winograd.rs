//! Winograd F(2x2, 3x3) convolution for dense 3x3 stride-1 layers (AVX-512 CPUs).
//!
//! Each 2x2 block of output pixels ("tile") is computed from the 4x4 input patch
//! around it as `Y = Aᵀ [ U ⊙ V ] A`, with `U = G g Gᵀ` the transformed 3x3 kernel and
//! `V = Bᵀ d B` the transformed patch (Lavin & Gray, "Fast algorithms for convolutional
//! neural networks", 2016). Summed over input channels, the element-wise product is 16
//! matrix products, one per position `ξ` of the 4x4 transform:
//! `M[ξ] (c_out x tiles) = U[ξ] (c_out x c_in) · V[ξ] (c_in x tiles)`: per tile and
//! (input, output) channel pair 16 multiply-adds instead of 4 x 9 = 36, 2.25x fewer.
//!
//! * The 16 products run on the packed GEMM ([`sgemm`]): `U[ξ]` is packed once per
//!   layer (kept in the layer's [`ConvPack`](super::ConvPack)), `V[ξ]` is read in place
//!   with a row stride.
//! * Work is cut in blocks of whole tile rows (and, when there are too few of them for
//!   the workers, in blocks of output channels); a block's `V` and `M` stay in the
//!   worker's L2 share: input transform, 16 GEMMs and output transform run back to back.
//! * The input transform reads each input row split into even and odd columns, so that
//!   every term is a contiguous (vectorised) slice over the tiles of a tile row; the
//!   output transform adds the bias, applies the activation and interleaves the two
//!   columns of each tile back into the output row.
//!
//! Rounding differs from the direct sum (the transforms add and halve), by a few ulps of
//! the largest terms — inside the tolerances of the kernel tests and of the onnxruntime
//! differential checks. Maps under [`MIN_TILES`] tiles stay on the direct GEMM: there the
//! 16 transformed weight matrices (16/9 of the weights' bytes) are read for too few
//! columns.

use std::sync::atomic::{AtomicUsize, Ordering};

use std::arch::x86_64::*;

use super::conv::{for_panels, lock, worker_bufs, ConvWeights, OutPtr};
use super::sgemm;
use super::{Activation, Conv2dGeom};

/// Fewest tiles per image (2x2 output blocks) for the Winograd path by default. Per
/// tile the transformed weights are read for 20 multiply-adds saved per (input, output)
/// channel pair, 64 bytes: from 32 tiles that is ~10 MACs saved per byte of `U`, twice
/// this host's per-core FMA-to-memory balance. Measured (docs/KERNELS.md "Session 21",
/// Intel Xeon, 2 MiB L2, two threads): 256-channel 14x14 and 13x13 layers (49 tiles)
/// 1.5-1.6x faster than on the direct GEMM, 512-channel 7x7 ones (16 tiles) 0.8x (their
/// 16 MiB of `U` stream from memory). Session 5 (Zen 4, 1 MiB L2) had put the bar at 100.
pub(crate) const MIN_TILES: usize = 32;
/// Fewest input channels (the GEMMs' depth): 16 -> 64 at 55x55 (SqueezeNet's first
/// expand layers) only breaks even.
const MIN_C_IN: usize = 32;
/// Fewest output channels (two micro-kernel panels).
const MIN_C_OUT: usize = 16;
/// Target floats of a block's `V` and `M` (1.5 MiB: most of a 2 MiB L2 share).
const BLOCK_FLOATS: usize = 3 << 17;
/// Fewest tiles per block when the channels allow ([`BLOCK_FLOATS`] permitting fewer).
const MIN_BLOCK_TILES: usize = 96;

/// True if the layer has the shape this kernel handles (dense 3x3, stride 1, no
/// dilation), is big enough to gain (at least `min_tiles` tiles per image) and the CPU
/// runs the packed GEMM.
pub(crate) fn applies(g: &Conv2dGeom, oh: usize, ow: usize, min_tiles: usize) -> bool {
    g.groups == 1
        && g.kh == 3
        && g.kw == 3
        && g.stride_h == 1
        && g.stride_w == 1
        && g.dil_h == 1
        && g.dil_w == 1
        && g.c_in >= MIN_C_IN
        && g.c_out >= MIN_C_OUT
        && oh.div_ceil(2) * ow.div_ceil(2) >= min_tiles.max(1)
        && sgemm::available()
}

/// Transforms OIHW 3x3 `weights` (`c_out x c_in`) to `U[ξ] = G g Gᵀ` and writes each
/// `U[ξ]` packed for [`sgemm`] (`[ξ][panel][c_in][MR]`) into `out` (resized). One pass
/// over the weights, writing the packed layout directly, one [`sgemm::MR`]-row panel
/// at a time: compressed weights are decoded per panel into a small per-worker buffer
/// and transformed on every run (so a variant stays bit-identical to its
/// decode-everything reference), which must stay cheap next to the convolution.
/// Large layers share their panels among all workers.
pub(crate) fn pack_weights<'o>(
    c_out: usize,
    c_in: usize,
    weights: ConvWeights<'_>,
    out: &'o mut Vec<f32>,
) -> &'o [f32] {
    const MR: usize = sgemm::MR;
    let per = sgemm::packed_a_len(c_out, c_in);
    // Every element is written below (padding rows as zeros): zero-fill only growth,
    // and keep a longer buffer's length (a reused buffer is not zeroed again per run).
    if out.len() < 16 * per {
        out.resize(16 * per, 0.0);
    }
    let rows = c_out.min(weights.len() / (9 * c_in).max(1));
    let panels = rows.div_ceil(MR);
    if panels == 0 || c_in == 0 {
        return &out[..16 * per];
    }
    let workers = if rows * c_in >= PAR_MIN_PAIRS {
        rayon::current_num_threads().min(panels)
    } else {
        1
    };
    let dst = OutPtr(out.as_mut_ptr());
    let simd = is_x86_feature_detected!("avx512f");
    for_panels(panels, workers, &|panel, buf| {
        let nr = MR.min(rows - panel * MR);
        let g = weights.rows(panel * MR * c_in * 9, nr * c_in * 9, buf);
        let at = panel * MR * c_in;
        if simd {
            let mut taps = super::conv::taps_buf();
            // SAFETY: AVX-512F checked above; as below for the writes.
            unsafe { pack_panel_512(c_in, nr, g, per, at, dst, &mut taps.0) };
        } else {
            // SAFETY: this panel's slices of the 16 matrices are written by this item
            // only; `out` (16 * per floats) outlives the section.
            unsafe { pack_panel(c_in, nr, g, per, at, dst) };
        }
    });
    &out[..16 * per]
}

/// Fewest (output, input) channel pairs for [`pack_weights`] on two workers.
const PAR_MIN_PAIRS: usize = 1 << 14;

/// [`pack_panel`] with AVX-512: 16 lanes = 2 input channels x 8 panel rows, so every
/// `U[ξ]` result is one contiguous 16-float store (the packed layout is `[ci][MR]`).
/// The panel is first put in tap-major order `[ci][tap][row]` in `taps` by the GEMM's
/// weight packer ([`sgemm::pack_a`], 8x8 transposes; rows past `nr` zero), so that the
/// taps of two input channels load as two contiguous 8-float halves (gathers from the
/// row-major weights cost two thirds of the transform on Zen 4). Same operations in the
/// same order as [`pack_panel`], so the results are identical.
///
/// # Safety
/// AVX-512F available; `w.len() >= nr * c_in * 9`; `dst` as for [`pack_panel`].
#[target_feature(enable = "avx512f")]
unsafe fn pack_panel_512(
    c_in: usize,
    nr: usize,
    w: &[f32],
    per: usize,
    at: usize,
    dst: OutPtr,
    taps: &mut Vec<f32>,
) {
    const MR: usize = sgemm::MR;
    const _: () = assert!(MR == 8);
    let k9 = c_in * 9;
    if taps.len() < MR * k9 {
        taps.resize(MR * k9, 0.0);
    }
    sgemm::pack_a(w, nr, k9, k9, taps);
    let tp = taps.as_ptr();
    let half = _mm512_set1_ps(0.5);
    let zero = _mm512_setzero_ps();
    let mut ci = 0;
    while ci < c_in {
        let pair = ci + 1 < c_in;
        // g[k]: tap k of the 16 kernels (lanes 0..8: channel ci's rows, 8..16: ci + 1's).
        let mut g = [zero; 9];
        for (k, gk) in g.iter_mut().enumerate() {
            // SAFETY: `taps` holds MR * k9 floats; (ci * 9 + k) * MR + 8 <= MR * k9, and
            // for ci + 1 < c_in likewise.
            unsafe {
                let lo = _mm256_loadu_ps(tp.add((ci * 9 + k) * MR));
                let hi = if pair {
                    _mm256_loadu_ps(tp.add(((ci + 1) * 9 + k) * MR))
                } else {
                    _mm256_setzero_ps()
                };
                *gk = _mm512_castpd_ps(_mm512_insertf64x4::<1>(
                    _mm512_castps_pd(_mm512_castps256_ps512(lo)),
                    _mm256_castps_pd(hi),
                ));
            }
        }
        // t = G g (4x3), then u = t Gᵀ (4x4), as in `pack_panel`.
        let mut t = [[zero; 3]; 4];
        for c in 0..3 {
            let (g0, g1, g2) = (g[c], g[3 + c], g[6 + c]);
            t[0][c] = g0;
            t[1][c] = _mm512_mul_ps(half, _mm512_add_ps(_mm512_add_ps(g0, g1), g2));
            t[2][c] = _mm512_mul_ps(half, _mm512_add_ps(_mm512_sub_ps(g0, g1), g2));
            t[3][c] = g2;
        }
        let at = at + ci * MR;
        for (i, ti) in t.iter().enumerate() {
            let (r0, r1, r2) = (ti[0], ti[1], ti[2]);
            let u = [
                r0,
                _mm512_mul_ps(half, _mm512_add_ps(_mm512_add_ps(r0, r1), r2)),
                _mm512_mul_ps(half, _mm512_add_ps(_mm512_sub_ps(r0, r1), r2)),
                r2,
            ];
            for (j, &uj) in u.iter().enumerate() {
                let p = dst.at((i * 4 + j) * per + at);
                // SAFETY: the panel's rows for input channels ci (and ci + 1 if it
                // exists) lie in matrix 4i + j; exclusive per the caller.
                unsafe {
                    if ci + 1 < c_in {
                        _mm512_storeu_ps(p, uj);
                    } else {
                        _mm512_mask_storeu_ps(p, 0xff, uj);
                    }
                }
            }
        }
        ci += 2;
    }
}

/// Transforms one panel: `w` holds the `nr <= MR` output channels' `c_in x 3 x 3`
/// weights; writes `U[ξ]`'s panel (`c_in x MR`, rows past `nr` zero) at float `at` of
/// every matrix `ξ` (`per` floats apart) from `dst`.
///
/// # Safety
/// `dst` is valid for `16 * per` floats and no other thread writes this panel's ranges.
unsafe fn pack_panel(c_in: usize, nr: usize, w: &[f32], per: usize, at: usize, dst: OutPtr) {
    const MR: usize = sgemm::MR;
    for ci in 0..c_in {
        // g[k][r]: tap k of the kernel (co = panel * MR + r, ci); rows past `nr` stay
        // zero. Then t = G g (4x3) and u = t Gᵀ (4x4) lane-wise over r;
        // G = [1 0 0; ½ ½ ½; ½ -½ ½; 0 0 1].
        let mut g = [[0.0f32; MR]; 9];
        for r in 0..nr {
            let wr = &w[(r * c_in + ci) * 9..][..9];
            for k in 0..9 {
                g[k][r] = wr[k];
            }
        }
        let mut t = [[[0.0f32; MR]; 3]; 4];
        for c in 0..3 {
            for r in 0..MR {
                let (g0, g1, g2) = (g[c][r], g[3 + c][r], g[6 + c][r]);
                t[0][c][r] = g0;
                t[1][c][r] = 0.5 * (g0 + g1 + g2);
                t[2][c][r] = 0.5 * (g0 - g1 + g2);
                t[3][c][r] = g2;
            }
        }
        let at = at + ci * MR;
        for (i, ti) in t.iter().enumerate() {
            let mut u = [[0.0f32; MR]; 4];
            for r in 0..MR {
                let (r0, r1, r2) = (ti[0][r], ti[1][r], ti[2][r]);
                u[0][r] = r0;
                u[1][r] = 0.5 * (r0 + r1 + r2);
                u[2][r] = 0.5 * (r0 - r1 + r2);
                u[3][r] = r2;
            }
            for (j, uj) in u.iter().enumerate() {
                // SAFETY: (4i + j) * per + at + MR <= 16 * per (the panel lies in one
                // matrix); exclusive per the caller.
                unsafe {
                    std::ptr::copy_nonoverlapping(uj.as_ptr(), dst.at((i * 4 + j) * per + at), MR)
                };
            }
        }
    }
}

/// How one convolution is cut into work items.
struct Plan {
    /// Tiles per tile row.
    tw: usize,
    /// Tile rows per image.
    th: usize,
    /// Tile rows per block.
    rows: usize,
    /// Blocks per image.
    blocks: usize,
    /// Output-channel blocks.
    co_blocks: usize,
    /// Output channels per block (whole [`sgemm::MR`] panels).
    co_per: usize,
}

impl Plan {
    fn new(g: &Conv2dGeom, n: usize, oh: usize, ow: usize, threads: usize) -> Plan {
        let (tw, th) = (ow.div_ceil(2), oh.div_ceil(2));
        // At least MIN_BLOCK_TILES per block even when V and M outgrow L2 (many
        // channels): each GEMM still reuses its V[ξ] slice across all output channels,
        // while short blocks would re-read the 16 weight matrices once per block.
        let max_tiles = (BLOCK_FLOATS / (16 * (g.c_in + g.c_out))).max(MIN_BLOCK_TILES);
        let max_rows = (max_tiles / tw).clamp(1, th);
        // Block height: from half to 1.25x the budget's, the one whose slowest worker
        // finishes first (ties: taller, i.e. wider GEMMs). 28 tile rows on 2 workers
        // with a budget of 6: 4 blocks of 7, not 5 of 6 (the slower worker doing 18).
        let cost = |rows: usize| (n * th.div_ceil(rows)).div_ceil(threads) * rows;
        let rows = (max_rows.div_ceil(2)..=(max_rows + max_rows / 4).min(th))
            .rev()
            .min_by_key(|&r| cost(r))
            .unwrap_or(max_rows);
        let blocks = th.div_ceil(rows);
        // Output-channel blocks until the items share evenly among the workers: an
        // item's share of the weights and its input transform are cheap next to its
        // GEMMs, while an odd item count leaves one worker idle at the end (56x56 maps
        // at batch 1: 5 blocks -> 10 items on 2 workers).
        let panels = g.c_out.div_ceil(sgemm::MR);
        let co_blocks = (1..=panels)
            .find(|&c| (n * blocks * c).is_multiple_of(threads) && n * blocks * c >= threads)
            .unwrap_or(1);
        let co_per = panels.div_ceil(co_blocks) * sgemm::MR;
        let co_blocks = g.c_out.div_ceil(co_per);
        Plan {
            tw,
            th,
            rows,
            blocks,
            co_blocks,
            co_per,
        }
    }

    /// Floats of one worker's buffer: `V` and `M` of a block.
    fn work_len(&self, g: &Conv2dGeom) -> usize {
        let nt = self.rows * self.tw;
        16 * (g.c_in + g.c_out) * nt
    }
}

/// Winograd F(2x2, 3x3) convolution; same contract as [`super::conv2d`] for the layers
/// [`applies`] accepts (lengths already checked by the caller). `packed` holds the
/// weights from [`pack_weights`]; `scratch` grows to the workers' buffers.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv(
    g: &Conv2dGeom,
    input: &[f32],
    n: usize,
    h: usize,
    w: usize,
    packed: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    out: &mut [f32],
    oh: usize,
    ow: usize,
    threads: usize,
    scratch: &mut Vec<f32>,
) {
    let plan = Plan::new(g, n, oh, ow, threads.max(1));
    let items = n * plan.blocks * plan.co_blocks;
    let workers = threads.clamp(1, items.max(1));
    let len = plan.work_len(g);
    if scratch.len() < workers * len {
        scratch.resize(workers * len, 0.0);
    }
    let ctx = Ctx {
        g,
        input,
        h,
        w,
        packed,
        bias,
        act,
        oh,
        ow,
        plan,
    };
    let out_ptr = OutPtr(out.as_mut_ptr());
    let bufs = worker_bufs(&mut scratch[..workers * len], workers, len);
    let next = AtomicUsize::new(0);
    crate::team::for_workers(workers, &|wi| {
        let mut buf = lock(&bufs[wi]);
        loop {
            let item = next.fetch_add(1, Ordering::Relaxed);
            if item >= items {
                break;
            }
            // SAFETY: AVX-512 (`applies`); items write disjoint output rows/channels of
            // `out`, which is exclusively borrowed for the whole call.
            unsafe { ctx.run_item(item, &mut buf, out_ptr) };
        }
    });
}

/// Everything an item needs, shared read-only by the workers.
struct Ctx<'a> {
    g: &'a Conv2dGeom,
    input: &'a [f32],
    h: usize,
    w: usize,
    packed: &'a [f32],
    bias: Option<&'a [f32]>,
    act: Activation,
    oh: usize,
    ow: usize,
    plan: Plan,
}

impl Ctx<'_> {
    /// Item = (image, tile-row block, output-channel block): input transform of the
    /// block's tiles for every input channel, the 16 GEMMs for the channel block, and
    /// the output transform into the output planes.
    ///
    /// # Safety
    /// The CPU has AVX-512F; `out` is the start of the `[n, c_out, oh, ow]` output and no
    /// other thread writes this item's output rows of these channels.
    #[target_feature(enable = "avx512f")]
    unsafe fn run_item(&self, item: usize, buf: &mut [f32], out: OutPtr) {
        let (g, p) = (self.g, &self.plan);
        let cb = item % p.co_blocks;
        let rest = item / p.co_blocks;
        let (b, blk) = (rest / p.blocks, rest % p.blocks);
        let ty0 = blk * p.rows;
        let ty1 = (ty0 + p.rows).min(p.th);
        let tw = p.tw;
        let nt = (ty1 - ty0) * tw;
        let co = cb * p.co_per..((cb + 1) * p.co_per).min(g.c_out);
        let (cin, cout) = (g.c_in, g.c_out);
        let (v, rest) = buf.split_at_mut(16 * cin * nt);
        let m = &mut rest[..16 * cout * nt];
        let hw = self.h * self.w;
        let img = &self.input[b * cin * hw..][..cin * hw];
        for ci in 0..cin {
            let plane = &img[ci * hw..][..hw];
            for ty in ty0..ty1 {
                // SAFETY: AVX-512 (caller); `v` holds the block's 16 * cin * nt floats.
                unsafe { self.input_tile_row(plane, ty, v, ci, cin, nt, (ty - ty0) * tw) };
            }
        }
        let per = sgemm::packed_a_len(cout, cin);
        for xi in 0..16 {
            let ap = &self.packed[xi * per..][..per];
            let vx = &v[xi * cin * nt..][..cin * nt];
            let mx = &mut m[xi * cout * nt..][..cout * nt];
            // SAFETY: AVX-512 (caller); `ap` packed for `cout x cin`; `vx` holds `cin`
            // rows of `nt`; `mx` holds `cout` rows of `nt`, exclusively borrowed.
            unsafe {
                sgemm::gemm(
                    cout,
                    co.clone(),
                    nt,
                    cin,
                    ap,
                    sgemm::BSrc::Strided { data: vx, ld: nt },
                    mx.as_mut_ptr(),
                    nt,
                    None,
                    Activation::None,
                )
            };
        }
        let ohw = self.oh * self.ow;
        let m: &[f32] = m;
        for c in co {
            let bias = self.bias.map_or(0.0, |bs| bs[c]);
            let plane = (b * cout + c) * ohw;
            for ty in ty0..ty1 {
                // SAFETY: AVX-512 (caller); output rows 2ty, 2ty+1 of channel c of image
                // b belong to this item (caller contract) and lie inside the output.
                unsafe {
                    self.output_tile_row(m, c, cout, nt, (ty - ty0) * tw, bias, out, plane, ty)
                };
            }
        }
    }

    /// Input transform of tile row `ty` of input channel `ci` (plane `plane`) into
    /// `v[ξ][ci][t0 + tx]` (row stride `nt` between channels, `cin * nt` between `ξ`).
    /// Sixteen tiles per step: each of the four input rows is read as even and odd
    /// columns (two masked loads and two permutes per column offset), zero outside the
    /// input (padding).
    ///
    /// # Safety
    /// The CPU has AVX-512F; `v` holds `16 * cin * nt` floats and `t0 + tw <= nt`.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn input_tile_row(
        &self,
        plane: &[f32],
        ty: usize,
        v: &mut [f32],
        ci: usize,
        cin: usize,
        nt: usize,
        t0: usize,
    ) {
        let g = self.g;
        let tw = self.plan.tw;
        let w = self.w as isize;
        let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        assert!(v.len() >= 16 * cin * nt && t0 + tw <= nt && ci < cin);
        let mut x0 = 0;
        while x0 < tw {
            let sm = head_mask(tw - x0);
            // h[r][j]: row transform (d B) of input row r of the tile patch.
            let mut h = [[_mm512_setzero_ps(); 4]; 4];
            for (r, hr) in h.iter_mut().enumerate() {
                let iy = (2 * ty + r).wrapping_sub(g.pad_top);
                if iy >= self.h {
                    continue;
                }
                let row = &plane[iy * self.w..][..self.w];
                // Columns 2x - pad_left + {0, 1, 2, 3} for the 16 tiles x0..x0 + 16.
                let c = 2 * x0 as isize - g.pad_left as isize;
                // SAFETY: masked-off lanes are not accessed (AVX-512 masked loads
                // suppress faults); the enabled lanes are columns inside `row`.
                let ld = |off: isize| unsafe {
                    _mm512_maskz_loadu_ps(range_mask(off, w), row.as_ptr().wrapping_offset(off))
                };
                let (a, b) = (ld(c), ld(c + 16));
                let (a2, b2) = (ld(c + 2), ld(c + 18));
                let d0 = _mm512_permutex2var_ps(a, even, b);
                let d1 = _mm512_permutex2var_ps(a, odd, b);
                let d2 = _mm512_permutex2var_ps(a2, even, b2);
                let d3 = _mm512_permutex2var_ps(a2, odd, b2);
                *hr = [
                    _mm512_sub_ps(d0, d2),
                    _mm512_add_ps(d1, d2),
                    _mm512_sub_ps(d2, d1),
                    _mm512_sub_ps(d1, d3),
                ];
            }
            // V = Bᵀ h, stored at v[ξ][ci][t0 + x0..] (j indexes h's columns).
            let base = ci * nt + t0 + x0;
            let step = cin * nt;
            #[allow(clippy::needless_range_loop)]
            for j in 0..4 {
                let vals = [
                    _mm512_sub_ps(h[0][j], h[2][j]),
                    _mm512_add_ps(h[1][j], h[2][j]),
                    _mm512_sub_ps(h[2][j], h[1][j]),
                    _mm512_sub_ps(h[1][j], h[3][j]),
                ];
                for (i, &val) in vals.iter().enumerate() {
                    // SAFETY: (4i + j) * step + base + lane < 16 * cin * nt for the
                    // enabled lanes (x0 + lane < tw, asserted sizes).
                    unsafe {
                        _mm512_mask_storeu_ps(
                            v.as_mut_ptr().add((4 * i + j) * step + base),
                            sm,
                            val,
                        )
                    };
                }
            }
            x0 += 16;
        }
    }

    /// Output transform of tile row `ty` of output channel `c`: reads the 16 products
    /// `m[ξ][c][t0 + tx]` (row stride `nt` between channels, `cout * nt` between `ξ`)
    /// and writes output rows `2ty` and `2ty + 1` (those inside the output) of the plane
    /// starting at `plane`, with bias and activation, the two columns of each tile
    /// interleaved back.
    ///
    /// # Safety
    /// The CPU has AVX-512F; those output rows are inside the output and owned by the
    /// caller; `m` holds `16 * cout * nt` floats and `t0 + tw <= nt`.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn output_tile_row(
        &self,
        m: &[f32],
        c: usize,
        cout: usize,
        nt: usize,
        t0: usize,
        bias: f32,
        out: OutPtr,
        plane: usize,
        ty: usize,
    ) {
        let tw = self.plan.tw;
        let ow = self.ow;
        let lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
        let hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
        let bv = _mm512_set1_ps(bias);
        assert!(m.len() >= 16 * cout * nt && t0 + tw <= nt && c < cout);
        let rows = (self.oh - 2 * ty).min(2);
        let mut x0 = 0;
        while x0 < tw {
            let lm = head_mask(tw - x0);
            let base = c * nt + t0 + x0;
            let step = cout * nt;
            // SAFETY: enabled lanes are inside `m` (asserted sizes, x0 + lane < tw).
            let ld =
                |xi: usize| unsafe { _mm512_maskz_loadu_ps(lm, m.as_ptr().add(xi * step + base)) };
            // s = Aᵀ M (rows k = 0, 1 per column j), then y = s A; Aᵀ = [1 1 1 0; 0 1 -1 -1].
            let mut s = [[_mm512_setzero_ps(); 4]; 2];
            #[allow(clippy::needless_range_loop)]
            for j in 0..4 {
                let (m0, m1, m2, m3) = (ld(j), ld(4 + j), ld(8 + j), ld(12 + j));
                s[0][j] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
                s[1][j] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
            }
            let o = 2 * x0;
            for (k, sk) in s.iter().enumerate().take(rows) {
                let y0 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(sk[0], sk[1]), sk[2]), bv);
                let y1 = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(sk[1], sk[2]), sk[3]), bv);
                let (y0, y1) = (sgemm::activate(y0, self.act), sgemm::activate(y1, self.act));
                let dst = plane + (2 * ty + k) * ow + o;
                // SAFETY: columns o.. below `ow` of output row 2ty + k (function
                // contract); masked lanes are not accessed.
                unsafe {
                    _mm512_mask_storeu_ps(
                        out.0.add(dst),
                        head_mask(ow - o),
                        _mm512_permutex2var_ps(y0, lo, y1),
                    );
                    if ow > o + 16 {
                        _mm512_mask_storeu_ps(
                            out.0.add(dst + 16),
                            head_mask(ow - o - 16),
                            _mm512_permutex2var_ps(y0, hi, y1),
                        );
                    }
                }
            }
            x0 += 16;
        }
    }
}

/// Mask of the lanes `j < 16` with `0 <= c + j < w`.
#[inline(always)]
fn range_mask(c: isize, w: isize) -> u16 {
    let lo = (-c).clamp(0, 16) as u32;
    let hi = (w - c).clamp(0, 16) as u32;
    if hi <= lo {
        return 0;
    }
    let upto = |k: u32| ((1u32 << k) - 1) as u16;
    upto(hi) & !upto(lo)
}

/// Mask of the first `left` lanes (all 16 when `left >= 16`).
#[inline(always)]
fn head_mask(left: usize) -> u16 {
    if left >= 16 {
        0xffff
    } else {
        (1u16 << left) - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The direct packed layout equals transforming first and packing with
    /// [`sgemm::pack_a`] (rows past `c_out` zero), and `G g Gᵀ` is the textbook one.
    #[test]
    fn pack_weights_matches_transform_then_pack() {
        // (130, 128): over PAR_MIN_PAIRS, two workers write half the matrices each.
        for (c_out, c_in) in [(1, 1), (8, 3), (13, 5), (16, 32), (130, 128)] {
            let w: Vec<f32> = (0..c_out * c_in * 9)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0)
                .collect();
            let mut got = Vec::new();
            pack_weights(c_out, c_in, ConvWeights::F32(&w), &mut got);
            // From bit-packed weights (decoded per panel): exactly the transform of
            // their decoded values.
            let f = sieve_float::Format::new(true, 5, 6, 15).unwrap();
            let p = sieve_float::PackedTensor::encode_from(f, &w).unwrap();
            let dec = super::super::packed::RangeDecoder::new(&p, &[]).unwrap();
            let mut from_packed = vec![f32::NAN; 3];
            let from_packed =
                pack_weights(c_out, c_in, ConvWeights::Packed(&dec), &mut from_packed);
            let mut from_decoded = Vec::new();
            pack_weights(
                c_out,
                c_in,
                ConvWeights::F32(&p.to_vec()),
                &mut from_decoded,
            );
            assert_eq!(
                from_packed,
                &from_decoded[..],
                "{c_out}x{c_in} packed source"
            );
            let gm = [
                [1.0, 0.0, 0.0],
                [0.5, 0.5, 0.5],
                [0.5, -0.5, 0.5],
                [0.0, 0.0, 1.0],
            ];
            let pairs = c_out * c_in;
            let mut u = vec![0.0f32; 16 * pairs];
            for p in 0..pairs {
                for i in 0..4 {
                    for j in 0..4 {
                        let mut acc = 0.0f64;
                        for a in 0..3 {
                            for b in 0..3 {
                                acc += gm[i][a] * w[p * 9 + a * 3 + b] as f64 * gm[j][b];
                            }
                        }
                        u[(i * 4 + j) * pairs + p] = acc as f32;
                    }
                }
            }
            let per = sgemm::packed_a_len(c_out, c_in);
            let mut want = vec![0.0f32; 16 * per];
            for xi in 0..16 {
                sgemm::pack_a(&u[xi * pairs..], c_out, c_in, c_in, &mut want[xi * per..]);
            }
            assert_eq!(got.len(), want.len());
            for (k, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                    "{c_out}x{c_in} [{k}]: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn simd_panel_transform_equals_scalar() {
        if !is_x86_feature_detected!("avx512f") {
            return;
        }
        // Full and partial panels, odd and even input channel counts (the last pair
        // then has one channel).
        for (nr, c_in) in [(8, 33), (8, 2), (3, 32), (5, 1), (1, 7), (7, 64)] {
            let w: Vec<f32> = (0..nr * c_in * 9)
                .map(|i| ((i * 53 % 211) as f32 - 105.0) / 13.0)
                .collect();
            let per = 8 * c_in + 5;
            let mut a = vec![f32::NAN; 16 * per];
            let mut b = vec![f32::NAN; 16 * per];
            // SAFETY: AVX-512F checked; `a`/`b` hold 16 * per floats and the panel (at 3)
            // fits; single-threaded.
            unsafe {
                pack_panel(c_in, nr, &w, per, 3, OutPtr(a.as_mut_ptr()));
                pack_panel_512(c_in, nr, &w, per, 3, OutPtr(b.as_mut_ptr()), &mut vec![]);
            }
            let same = a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(same, "nr {nr}, c_in {c_in}: SIMD transform differs");
            // Rows past nr are zero, and nothing outside the panel is touched.
            for m in 0..16 {
                assert!(b[m * per..m * per + 3].iter().all(|v| v.is_nan()));
                assert!(b[m * per + 3 + 8 * c_in..(m + 1) * per]
                    .iter()
                    .all(|v| v.is_nan()));
                for ci in 0..c_in {
                    for r in nr..8 {
                        assert_eq!(b[m * per + 3 + ci * 8 + r], 0.0);
                    }
                }
            }
        }
    }

    /// Cost of transforming a VGG-16 512 x 512 layer's weights (the per-run price for
    /// decoded weights); `cargo test --release -p sieve-nn -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn pack_weights_cost() {
        let w: Vec<f32> = (0..512 * 512 * 9)
            .map(|i| (i % 97) as f32 / 64.0 - 0.75)
            .collect();
        let f = sieve_float::Format::new(true, 4, 3, 7).unwrap();
        let p = sieve_float::PackedTensor::encode_from(f, &w).unwrap();
        let dec = super::super::packed::RangeDecoder::new(&p, &[]).unwrap();
        let (mut dense, mut packed, mut decoded) = (Vec::new(), Vec::new(), vec![0.0; w.len()]);
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let mut times = [(); 5].map(|_| Vec::new());
        for _ in 0..10 {
            let mut time = |i: usize, f: &mut dyn FnMut()| {
                let t = std::time::Instant::now();
                f();
                times[i].push(t.elapsed().as_secs_f64() * 1e3);
            };
            time(0, &mut || {
                one.install(|| pack_weights(512, 512, ConvWeights::F32(&w), &mut dense));
            });
            time(1, &mut || {
                pack_weights(512, 512, ConvWeights::F32(&w), &mut dense);
            });
            time(2, &mut || {
                pack_weights(512, 512, ConvWeights::Packed(&dec), &mut packed);
            });
            time(3, &mut || {
                dec.decode_all(&mut decoded).unwrap();
                pack_weights(512, 512, ConvWeights::F32(&decoded), &mut dense);
            });
            // The floor on one thread: writing the transformed weights' bytes.
            time(4, &mut || {
                one.install(|| dense.fill(0.5));
            });
        }
        let med = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let [a, b, c, d, e] = times.each_mut().map(med);
        eprintln!(
            "512x512 3x3 transform, medians of 10: f32 one thread {a:.2} ms, f32 all workers \
             {b:.2} ms, 8-bit decoded per panel {c:.2} ms, decode all then transform {d:.2} ms; \
             filling the {} MB output on one thread {e:.2} ms",
            dense.len() * 4 / 1_000_000
        );
        dec.decode_all(&mut decoded).unwrap();
        let mut want = Vec::new();
        pack_weights(512, 512, ConvWeights::F32(&decoded), &mut want);
        assert_eq!(packed, want);
    }
}
