//! A 1x1 "expand" convolution fused with the 3x3 depthwise convolution that reads it,
//! and optionally with the 1x1 "project" convolution that reads the depthwise output
//! (MobileNet v2's inverted residual blocks), on AVX-512 CPUs.
//!
//! Unfused, the expanded tensor (`c_mid` planes, e.g. 96 x 112 x 112 = 4.8 MB) is
//! written to memory by the expand layer and read back by the depthwise one. Fused,
//! each band of depthwise output rows is computed from a band of expanded rows that only
//! lives in the worker's L2: the expand GEMM ([`sgemm`], weights packed once per layer,
//! input planes read in place at the band's rows) writes `c_mid` band planes, then the
//! in-place depthwise kernel ([`depthwise::x86::Direct`]) runs on them with the band's
//! own geometry (the rows above the band's first row are real rows of the band or the
//! layer's padding). Adjacent bands recompute the rows they share (one row at stride 2,
//! two at stride 1). With the project layer, the band's depthwise output rows go to a
//! second per-thread buffer instead of the output tensor, and the project GEMM reads
//! them there and writes the band's rows of every output plane: neither the expanded
//! nor the depthwise tensor (1.2-1.8 MB in MobileNet v2's 56x56 blocks) is written to
//! memory.
//!
//! Every output element is computed with the same operations in the same order as on
//! the unfused path when that path runs the same kernels (the packed GEMM reduces each
//! element over all of `k` in one block for `k <= 160`; the depthwise kernel is
//! bit-identical whatever its row grouping), so fused and unfused outputs are equal; the
//! kernel tests check it against the reference with a tolerance and bit for bit against
//! the unfused path.

use super::conv::{gemm_pack, OutPtr};
use super::depthwise::x86::Direct;
use super::sgemm::{self, BSrc};
use super::stencil::Stencil;
use super::{Conv2dGeom, ConvLayer, ConvPack, KernelError};

/// Smallest expanded tensor (floats per image) worth fusing: 1 MiB, where the unfused
/// pair writes it to memory and reads it back. Session 7 (Zen 4, one thread, docs/KERNELS.md
/// "Fused expand + depthwise") set 4 MiB: the 96 x 112 x 112 block gained, the 144 x 56 x 56
/// ones (1.8 MB) did not. Session 19 (Intel Xeon, 2 MiB L2 per core) fuses those too:
/// MobileNet v2 3.6% faster on two threads and 1.9-3.9% on one (paired, `SIEVE_FUSE_MIN_MID`),
/// the two 56x56 blocks 306 -> 202 and 185 -> 158 us; the 28x28 ones (150k floats) gained
/// nothing and the 14x14 ones (75-113k) lost 5% on two threads.
pub(crate) const MIN_MID_FLOATS: usize = 1 << 18;
/// Target floats of a band of expanded rows (512 KiB: half of a core's L2).
const BAND_FLOATS: usize = 1 << 17;

/// True if `g3` is a 1x1 "project" layer the fused kernel can append to the pair: dense,
/// pointwise (stride 1, unpadded), reading the depthwise layer's `c_mid` channels.
pub(crate) fn project_applies(g3: &Conv2dGeom, c_mid: usize) -> bool {
    g3.groups == 1 && g3.is_pointwise() && g3.c_in == c_mid && g3.c_out > 0
}

/// True if `g1` (the expand layer, on `h x w` maps) and `g2` (the depthwise layer
/// reading its output) have the shapes this kernel handles: `g1` dense 1x1 stride 1
/// unpadded; `g2` 3x3 depthwise (one input channel per output channel) with stride 1 or
/// 2 both ways, no dilation, pads of at most 2; an expanded tensor of at least
/// `min_mid` floats per image; and AVX-512.
pub(crate) fn applies(
    g1: &Conv2dGeom,
    g2: &Conv2dGeom,
    h: usize,
    w: usize,
    min_mid: usize,
) -> bool {
    let s = g2.stride_h;
    g1.groups == 1
        && g1.is_pointwise()
        && g2.c_in == g1.c_out
        && g2.groups == g2.c_in
        && g2.c_out == g2.c_in
        && g2.kh == 3
        && g2.kw == 3
        && (s == 1 || s == 2)
        && g2.stride_w == s
        && g2.dil_h == 1
        && g2.dil_w == 1
        && g2
            .pad_top
            .max(g2.pad_left)
            .max(g2.pad_bottom)
            .max(g2.pad_right)
            <= 2
        && h > 0
        && w > 0
        && g1.c_out.saturating_mul(h * w) >= min_mid
        && sgemm::available()
        && super::direct::available()
}

thread_local! {
    /// Per-thread band of expanded rows (reused across layers and runs).
    static BAND: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    /// Per-thread band of depthwise output rows, when a project layer follows.
    static DW_BAND: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's buffer from `cell` grown to at least `len` floats (a
/// fresh one if the cell is already borrowed).
fn with_buf<R>(
    cell: &'static std::thread::LocalKey<std::cell::RefCell<Vec<f32>>>,
    len: usize,
    f: impl FnOnce(&mut [f32]) -> R,
) -> R {
    cell.with(|c| {
        let mut guard = c.try_borrow_mut();
        let mut own = Vec::new();
        let buf: &mut Vec<f32> = match guard.as_deref_mut() {
            Ok(b) => b,
            Err(_) => &mut own,
        };
        if buf.len() < len {
            buf.resize(len, 0.0);
        }
        f(buf)
    })
}

/// `out = dw(expand(input))`, or `project(dw(expand(input)))` with `project` (each layer
/// with its bias and activation), for `n` images of `expand.geom.c_in x h x w`, where
/// the caller checked [`applies`] (and [`project_applies`]); `pack1` and the project's
/// [`ConvPack`] cache the 1x1 weights packed for the GEMM.
///
/// # Errors
/// A [`KernelError`] if a slice does not match the geometry.
#[allow(clippy::too_many_arguments)]
pub(crate) fn expand_dw(
    expand: ConvLayer<'_>,
    pack1: &ConvPack,
    dw: ConvLayer<'_>,
    project: Option<(ConvLayer<'_>, &ConvPack)>,
    input: &[f32],
    (n, h, w): (usize, usize, usize),
    out: &mut [f32],
    threads: usize,
) -> Result<(), KernelError> {
    let ConvLayer {
        geom: g1,
        weights: w1,
        bias: b1,
        act: act1,
    } = expand;
    let ConvLayer {
        geom: g2,
        weights: w2,
        bias: b2,
        act: act2,
    } = dw;
    let (c_in, c_mid) = (g1.c_in, g1.c_out);
    let (oh, ow) = g2.out_hw(h, w)?;
    super::check_len("fused conv", "expand weights", c_mid * c_in, w1.len())?;
    super::check_len("fused conv", "depthwise weights", c_mid * 9, w2.len())?;
    if let Some(b) = b1 {
        super::check_len("fused conv", "expand bias", c_mid, b.len())?;
    }
    if let Some(b) = b2 {
        super::check_len("fused conv", "depthwise bias", c_mid, b.len())?;
    }
    super::check_len("fused conv", "input", n * c_in * h * w, input.len())?;
    let c_out = match &project {
        Some((p, _)) => {
            super::check_len(
                "fused conv",
                "project weights",
                p.geom.c_out * c_mid,
                p.weights.len(),
            )?;
            if let Some(b) = p.bias {
                super::check_len("fused conv", "project bias", p.geom.c_out, b.len())?;
            }
            p.geom.c_out
        }
        None => c_mid,
    };
    super::check_len("fused conv", "output", n * c_out * oh * ow, out.len())?;
    assert!(
        applies(g1, g2, h, w, 0)
            && project
                .as_ref()
                .is_none_or(|(p, _)| project_applies(p.geom, c_mid)),
        "fused expand + depthwise: unsupported shapes"
    );
    if out.is_empty() {
        return Ok(());
    }
    let packed = gemm_pack(pack1, g1, w1);
    // The project layer with its weights packed for the GEMM.
    let project = project.map(|(p, pack)| (p, gemm_pack(pack, p.geom, p.weights)));
    let s = g2.stride_h;
    let pt = g2.pad_top as isize;
    // Band height in output rows: (bh - 1) * s + 3 expanded rows fit BAND_FLOATS.
    let max_rows = (BAND_FLOATS / (c_mid * w)).max(3);
    let bh = ((max_rows - 3) / s + 1).min(oh);
    let bands = oh.div_ceil(bh);
    let items = n * bands;
    let workers = threads.clamp(1, items);
    let band_len = c_mid * ((bh - 1) * s + 3).min(h) * w;
    let dw_len = if project.is_some() {
        c_mid * bh * ow
    } else {
        0
    };
    // Bands top to bottom, taken from both ends (`Ends`): the calling thread expands
    // the top rows, the helper the bottom ones, as in the layers around it.
    let ends = crate::team::Ends::new(items);
    let out_ptr = OutPtr(out.as_mut_ptr());
    // One (image, band) item, with this worker's band buffers.
    let run_item = |item: usize, buf: &mut [f32], dw_buf: &mut [f32]| {
        let (img, band) = (item / bands, item % bands);
        let oy0 = band * bh;
        let oy1 = (oy0 + bh).min(oh);
        // Expanded rows r0..r1 feed output rows oy0..oy1 (the rest is padding).
        let lo = (oy0 * s) as isize - pt;
        let r0 = lo.max(0) as usize;
        let r1 = (((oy1 - 1) * s) as isize - pt + 3).clamp(0, h as isize) as usize;
        let rows = r1.saturating_sub(r0);
        let x = &input[img * c_in * h * w..(img + 1) * c_in * h * w];
        let band_buf = &mut buf[..c_mid * rows * w];
        if rows > 0 {
            // SAFETY: AVX-512 (checked by `applies`); `packed` holds the c_mid x
            // c_in weights packed by `gemm_pack`; B rows are the c_in input planes
            // from row r0 (stride h * w, (c_in - 1) * h * w + rows * w floats from
            // r0 * w are inside `x`); C is the band buffer, c_mid rows of rows * w.
            unsafe {
                sgemm::gemm(
                    c_mid,
                    0..c_mid,
                    rows * w,
                    c_in,
                    packed,
                    BSrc::Strided {
                        data: &x[r0 * w..],
                        ld: h * w,
                    },
                    band_buf.as_mut_ptr(),
                    rows * w,
                    b1,
                    act1,
                )
            };
        }
        let st = Stencil {
            kh: 3,
            kw: 3,
            sh: s,
            sw: s,
            dh: 1,
            dw: 1,
            pad_top: (r0 as isize - lo) as usize,
            pad_left: g2.pad_left,
            h: rows,
            w,
            oh: oy1 - oy0,
            ow,
        };
        let direct = Direct::new(&st);
        let nb = (oy1 - oy0) * ow;
        for c in 0..c_mid {
            let dst = if project.is_some() {
                &mut dw_buf[c * nb..(c + 1) * nb]
            } else {
                // SAFETY: rows oy0..oy1 of plane c of image img are inside `out`,
                // written by this item only (the counter hands each (image, band)
                // out once); `out` outlives the section.
                unsafe {
                    std::slice::from_raw_parts_mut(
                        out_ptr.at(((img * c_mid + c) * oh + oy0) * ow),
                        nb,
                    )
                }
            };
            let bias = b2.map_or(0.0, |b| b[c]);
            match &direct {
                Some(d) => d.plane(
                    &band_buf[c * rows * w..(c + 1) * rows * w],
                    &w2[c * 9..(c + 1) * 9],
                    bias,
                    act2,
                    dst,
                ),
                // Every window of the band lies in the padding (not reachable
                // with pads <= 2, kept for safety): the bias alone.
                None => dst.fill(act2.apply(bias)),
            }
        }
        if let Some((p, packed3)) = &project {
            // SAFETY: AVX-512 (checked by `applies`); `packed3` holds the c_out x
            // c_mid project weights packed by `gemm_pack`; B is the band's
            // depthwise output, c_mid rows of nb floats; C is rows oy0..oy1 of the
            // c_out planes of image img (row stride oh * ow, the last row ending
            // inside `out`), written by this item only.
            unsafe {
                sgemm::gemm(
                    c_out,
                    0..c_out,
                    nb,
                    c_mid,
                    packed3,
                    BSrc::Strided {
                        data: &dw_buf[..c_mid * nb],
                        ld: nb,
                    },
                    out_ptr.at((img * c_out * oh + oy0) * ow),
                    oh * ow,
                    p.bias,
                    p.act,
                )
            };
        }
    };
    crate::team::for_workers(workers, &|slot| {
        with_buf(&BAND, band_len, |buf| {
            with_buf(&DW_BAND, dw_len, |dw_buf| {
                while let Some(item) = ends.take(slot) {
                    run_item(item, buf, dw_buf);
                }
            })
        })
    });
    Ok(())
}
