//! Fast 2-D convolution on top of GEMM, with a fused bias + activation epilogue.
//!
//! * 1x1 stride-1 unpadded convolutions multiply the weights by the input planes
//!   directly (no copy).
//! * Other convolutions copy each input plane once into the padded, phase-split layout
//!   of [`Stencil`]; every im2col row of a tile of output rows is then one contiguous
//!   copy (`oy * P + ox` flat indexing with `P - ow` junk columns per row, dropped by
//!   the epilogue that writes the real output).
//! * `c_in / groups == 1` (depthwise, channel multiplier) goes to [`depthwise`].
//! * Dense 3x3 stride-1 layers on large enough maps go to [`winograd`] (AVX-512).
//!
//! Parallelism: with many (image, group) units (batches), each rayon worker takes whole
//! units; otherwise all units are laid out first and their row tiles (cut to give each
//! worker about two) are shared out; single-row outputs let the GEMM itself split. Problems under [`PAR_MIN_MACS`] stay on the calling
//! thread.

use std::sync::atomic::{AtomicUsize, Ordering};

use std::sync::Mutex;

use super::matmul::{gemv_rows, matmul, matmul_raw, MatRef};
use super::packed::RangeDecoder;
#[cfg(target_arch = "x86_64")]
use super::pixmajor;
#[cfg(target_arch = "x86_64")]
use super::sgemm;
use super::stencil::Stencil;
#[cfg(target_arch = "x86_64")]
use super::stride2;
#[cfg(target_arch = "x86_64")]
use super::winograd;
use super::{check_len, checked_product, depthwise, direct, Activation, Conv2dGeom, KernelError};

/// Rows of the packed GEMM's micro-kernel (output channels per block).
#[cfg(target_arch = "x86_64")]
const PK_MR: usize = sgemm::MR;
#[cfg(not(target_arch = "x86_64"))]
const PK_MR: usize = 8;
/// Fewest output columns per packed-GEMM tile (four micro-kernel widths).
const PK_MIN_COLS: usize = 192;

/// Below this many multiply-adds the whole convolution runs on the calling thread.
/// Measured with paired runs: 200k for all convolutions made MobileNet v2 7% faster
/// but MobileNet v1 0.25/128 (whose 1x1 layers of ~0.5M MACs then went parallel) 8%
/// slower, so dense layers keep 1M and depthwise layers (per-plane work, no shared
/// operand) use [`DW_PAR_MIN_MACS`].
const PAR_MIN_MACS: usize = 1 << 20;
/// [`PAR_MIN_MACS`] for depthwise convolutions.
pub(super) const DW_PAR_MIN_MACS: usize = 200_000;

/// [`PAR_MIN_MACS`] (or [`DW_PAR_MIN_MACS`] when `depthwise`), or for both the value of
/// the `SIEVE_CONV_PAR_MIN_MACS` environment variable (a tuning knob for benchmarks),
/// read once.
fn par_min_macs(depthwise: bool) -> usize {
    static V: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    let env = *V.get_or_init(|| {
        std::env::var("SIEVE_CONV_PAR_MIN_MACS")
            .ok()
            .and_then(|s| s.parse().ok())
    });
    match (env, depthwise) {
        (Some(v), _) => v,
        (None, true) => DW_PAR_MIN_MACS,
        (None, false) => PAR_MIN_MACS,
    }
}
/// Smallest unit input (floats, stencil layout) whose copy is shared by the workers: a
/// smaller one is copied by the calling thread alone (a parallel section costs more).
const FILL_PAR_MIN_FLOATS: usize = 1 << 15;
/// Target size in floats of one tile's im2col block plus its output block (about half
/// of a 2 MiB L2).
const TILE_FLOATS: usize = 1 << 18;
/// Largest unit input (in floats, stencil layout) for the [`direct`] kernel: a quarter
/// of a 1 MiB L2 share, so that every register block re-reads its planes from L2.
const DIRECT_MAX_FLOATS: usize = 1 << 16;

/// Which junk-free modes of the [`direct`] kernel may run: `2` both (the default), `1`
/// the row-wise one only, `0` neither (the flat stencil layout everywhere). The
/// `SIEVE_CONV_DIRECT_ROWS` environment variable (read once) sets it, for benchmarks.
fn junk_free_level() -> u8 {
    static V: std::sync::OnceLock<u8> = std::sync::OnceLock::new();
    *V.get_or_init(|| {
        std::env::var("SIEVE_CONV_DIRECT_ROWS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(2)
    })
}

/// Whether the [`direct`] kernel skips the junk columns of a stencil-layout layer with
/// output width `ow` and input pitch `pitch` ([`direct::Rows`]).
fn rows_mode_applies(ow: usize, pitch: usize) -> bool {
    junk_free_level() >= 1 && pitch > ow && ow.is_multiple_of(16)
}

/// [`DIRECT_MAX_FLOATS`], or the `SIEVE_CONV_DIRECT_MAX` environment variable (a
/// tuning knob for benchmarks; `0` turns the direct kernel off), read once.
fn direct_max_floats() -> usize {
    static V: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *V.get_or_init(|| {
        std::env::var("SIEVE_CONV_DIRECT_MAX")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(DIRECT_MAX_FLOATS)
    })
}

/// Checks every operand of a convolution and returns `(oh, ow)`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_checks(
    g: &Conv2dGeom,
    input: &[f32],
    n: usize,
    h: usize,
    w: usize,
    weights_len: usize,
    bias: Option<&[f32]>,
    out: &[f32],
) -> Result<(usize, usize), KernelError> {
    const OP: &str = "conv2d";
    let (oh, ow) = g.out_hw(h, w)?;
    check_len(
        OP,
        "input",
        checked_product(OP, "input", &[n, g.c_in, h, w])?,
        input.len(),
    )?;
    check_len(OP, "weights", g.weight_len()?, weights_len)?;
    if let Some(b) = bias {
        check_len(OP, "bias", g.c_out, b.len())?;
    }
    check_len(
        OP,
        "out",
        checked_product(OP, "out", &[n, g.c_out, oh, ow])?,
        out.len(),
    )?;
    Ok((oh, ow))
}

/// Raw output pointer shared by the workers; each writes a disjoint set of elements.
#[derive(Clone, Copy)]
pub(super) struct OutPtr(pub(super) *mut f32);
// SAFETY: the pointer is only used to write disjoint regions of one `&mut [f32]` that
// outlives the parallel section (see the callers of `OutPtr`).
unsafe impl Send for OutPtr {}
// SAFETY: as above.
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// The pointer `i` floats further (a method, so that closures capture the `Sync`
    /// wrapper rather than the raw pointer field).
    pub(super) fn at(self, i: usize) -> *mut f32 {
        self.0.wrapping_add(i)
    }
}

/// `row[i] = act(src[i] + bias)`, one vectorisable loop per activation kind.
fn epilogue(dst: &mut [f32], src: &[f32], bias: f32, act: Activation) {
    let it = dst.iter_mut().zip(src);
    match act {
        Activation::None => it.for_each(|(d, &v)| *d = v + bias),
        Activation::Relu => it.for_each(|(d, &v)| *d = (v + bias).max(0.0)),
        Activation::Clip { min, max } => it.for_each(|(d, &v)| *d = (v + bias).max(min).min(max)),
    }
}

/// Fast path behind [`super::conv2d`]; same contract.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv2d(
    g: &Conv2dGeom,
    input: &[f32],
    n: usize,
    h: usize,
    w: usize,
    weights: ConvWeights<'_>,
    bias: Option<&[f32]>,
    act: Activation,
    out: &mut [f32],
    scratch: &mut Vec<f32>,
    pack: Option<&ConvPack>,
) -> Result<(), KernelError> {
    conv2d_with(
        g,
        input,
        n,
        h,
        w,
        weights,
        bias,
        act,
        out,
        scratch,
        Paths {
            direct_max: direct_max_floats(),
            packed_gemm: packed_gemm_enabled(),
            winograd_min_tiles: winograd_min_tiles(),
            pixmajor_max_hw: pixmajor_max_hw(),
            stride2: true,
            pack,
        },
    )
}

/// Which kernels [`conv2d_with`] may use (tests force each path).
#[derive(Clone, Copy)]
pub(crate) struct Paths<'a> {
    /// Largest unit input (floats) for the [`direct`] kernel: `0` = never,
    /// `usize::MAX` = whenever the CPU has it.
    pub direct_max: usize,
    /// Use the packed AVX-512 GEMM ([`sgemm`]) where the CPU has it, instead of the
    /// `gemm` crate.
    pub packed_gemm: bool,
    /// Fewest 2x2 output tiles per image for the Winograd F(2x2, 3x3) kernel on dense
    /// 3x3 stride-1 layers (with `packed_gemm`; `usize::MAX` = never).
    pub winograd_min_tiles: usize,
    /// Largest map (pixels) for the pixel-major 1x1 kernel ([`pixmajor`], with
    /// `packed_gemm`, where its lane rule says so): `0` = never, `usize::MAX` = every
    /// layer of its shape.
    pub pixmajor_max_hw: usize,
    /// Use the in-place kernel for 3x3 stride-2 layers with few input channels
    /// ([`stride2`]) where it applies.
    pub stride2: bool,
    /// The layer's cached packed weights, if the caller keeps them.
    pub pack: Option<&'a ConvPack>,
}

/// The packed GEMM is on unless `SIEVE_CONV_PACKED=0` (a benchmark knob), read once.
fn packed_gemm_enabled() -> bool {
    static V: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *V.get_or_init(|| std::env::var("SIEVE_CONV_PACKED").map_or(true, |v| v != "0"))
}

/// [`winograd::MIN_TILES`], or `SIEVE_WINOGRAD_MIN_TILES` (a tuning knob for
/// benchmarks), or never with `SIEVE_WINOGRAD=0`; read once.
fn winograd_min_tiles() -> usize {
    static V: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *V.get_or_init(|| {
        if std::env::var("SIEVE_WINOGRAD").is_ok_and(|v| v == "0") {
            return usize::MAX;
        }
        #[cfg(target_arch = "x86_64")]
        let default = winograd::MIN_TILES;
        #[cfg(not(target_arch = "x86_64"))]
        let default = usize::MAX;
        std::env::var("SIEVE_WINOGRAD_MIN_TILES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    })
}

/// [`pixmajor::MAX_HW`], or `SIEVE_PIXMAJOR_MAX_HW` (a tuning knob for benchmarks; `0`
/// turns the pixel-major 1x1 kernel off), read once.
fn pixmajor_max_hw() -> usize {
    static V: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *V.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        let default = pixmajor::MAX_HW;
        #[cfg(not(target_arch = "x86_64"))]
        let default = 0;
        std::env::var("SIEVE_PIXMAJOR_MAX_HW")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    })
}

/// True if the packed AVX-512 GEMM runs on this CPU.
fn sgemm_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        sgemm::available()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A convolution's weights packed for [`sgemm`] (per group, `[panel][k][MR]`; for the
/// Winograd kernel, the 16 transformed matrices; for the pixel-major 1x1 kernel,
/// `[panel][k][48]`), built on the first run that needs them and then kept (dense
/// weights only: the op owns one).
#[derive(Debug, Default)]
pub struct ConvPack {
    gemm: std::sync::OnceLock<Vec<f32>>,
    winograd: std::sync::OnceLock<Vec<f32>>,
    pixmajor: std::sync::OnceLock<Vec<f32>>,
}

impl ConvPack {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }
}

/// The weights of a convolution (OIHW) as the kernels receive them.
#[derive(Clone, Copy, Debug)]
pub enum ConvWeights<'a> {
    /// Plain `f32` values.
    F32(&'a [f32]),
    /// Bit-packed values: the packed GEMM and Winograd paths decode them panel by panel
    /// straight into their packed layout (no decoded copy of the layer); the other
    /// paths decode the whole tensor into a per-thread buffer first.
    Packed(&'a RangeDecoder<'a>),
}

impl<'a> ConvWeights<'a> {
    /// Number of weights.
    pub fn len(&self) -> usize {
        match self {
            ConvWeights::F32(w) => w.len(),
            ConvWeights::Packed(d) => d.len(),
        }
    }

    /// True if there is no weight.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Elements `start .. start + len` (in range: callers size them from the checked
    /// geometry): borrowed from `f32` weights, else decoded into `buf` (grown as
    /// needed).
    pub(super) fn rows<'b>(&'b self, start: usize, len: usize, buf: &'b mut Vec<f32>) -> &'b [f32] {
        match self {
            ConvWeights::F32(w) => &w[start..start + len],
            ConvWeights::Packed(d) => {
                if buf.len() < len {
                    buf.resize(len, 0.0);
                }
                d.fill(start, &mut buf[..len]);
                &buf[..len]
            }
        }
    }

    /// All weights as `f32`: borrowed, or decoded (on the run's workers) into `buf`.
    fn all<'b>(self, buf: &'b mut Vec<f32>) -> Result<&'b [f32], KernelError>
    where
        'a: 'b,
    {
        match self {
            ConvWeights::F32(w) => Ok(w),
            ConvWeights::Packed(d) => {
                let n = d.len();
                if buf.len() < n {
                    buf.resize(n, 0.0);
                }
                d.decode_all(&mut buf[..n])?;
                Ok(&buf[..n])
            }
        }
    }
}

/// Fewest weights for packing (and decoding) a layer's weights on all workers.
const PACK_PAR_MIN: usize = 1 << 16;

/// Packs every group's `cog x kdim` weight matrix for [`sgemm`] into `out` (resized),
/// one [`sgemm::MR`]-row panel at a time (packed weights are decoded per panel into a
/// small per-worker buffer); large layers on all workers.
fn pack_weights_into<'o>(
    g: &Conv2dGeom,
    weights: ConvWeights<'_>,
    out: &'o mut Vec<f32>,
) -> &'o [f32] {
    #[cfg(target_arch = "x86_64")]
    {
        let (cog, kdim) = (g.c_out_per_group(), g.c_in_per_group() * g.kh * g.kw);
        let per = sgemm::packed_a_len(cog, kdim);
        let total = per * g.groups;
        // Every element is written below (padding rows as zeros): zero-fill only growth,
        // and keep a longer buffer's length (a reused buffer is not zeroed again per run).
        if out.len() < total {
            out.resize(total, 0.0);
        }
        let panels = cog.div_ceil(PK_MR);
        let items = panels * g.groups;
        if items == 0 || kdim == 0 {
            return &out[..total];
        }
        let workers = if total >= PACK_PAR_MIN {
            rayon::current_num_threads().min(items)
        } else {
            1
        };
        let dst = OutPtr(out.as_mut_ptr());
        for_panels(items, workers, &|item, buf| {
            let (gi, p) = (item / panels, item % panels);
            let nr = PK_MR.min(cog - p * PK_MR);
            let rows = weights.rows((gi * cog + p * PK_MR) * kdim, nr * kdim, buf);
            // SAFETY: panel `p` of group `gi` is the `PK_MR * kdim` floats at this
            // offset, inside `out` (`per` per group), written by this item only; `out`
            // outlives the section.
            let panel = unsafe {
                std::slice::from_raw_parts_mut(dst.at(gi * per + p * PK_MR * kdim), PK_MR * kdim)
            };
            sgemm::pack_a(rows, nr, kdim, kdim, panel);
        });
        &out[..total]
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (g, weights);
        &out[..0]
    }
}

/// Runs `f(item, row_buf)` for every item `0..items` on `workers` workers, items
/// claimed a few at a time; `row_buf` is the worker's [`ROW_BUF`] (for one panel of
/// decoded weights). How the weight packers share their panels.
pub(super) fn for_panels(items: usize, workers: usize, f: &(dyn Fn(usize, &mut Vec<f32>) + Sync)) {
    let next = AtomicUsize::new(0);
    let step = items.div_ceil(8 * workers.max(1)).max(1);
    crate::team::for_workers(workers, &|_| {
        let mut buf = RowBuf::take();
        loop {
            let first = next.fetch_add(step, Ordering::Relaxed);
            if first >= items {
                break;
            }
            for item in first..(first + step).min(items) {
                f(item, &mut buf.0);
            }
        }
    });
}

/// The layer's dense weights packed for [`sgemm`], from its cache (packed on first use;
/// the same layout the unfused GEMM path keeps there).
#[cfg(target_arch = "x86_64")]
pub(super) fn gemm_pack<'p>(pack: &'p ConvPack, g: &Conv2dGeom, weights: &[f32]) -> &'p [f32] {
    pack.gemm
        .get_or_init(|| pack_weights(g, ConvWeights::F32(weights)))
}

/// Packs every group's weights into a new vector (for a [`ConvPack`]).
fn pack_weights(g: &Conv2dGeom, weights: ConvWeights<'_>) -> Vec<f32> {
    let mut v = Vec::new();
    pack_weights_into(g, weights, &mut v);
    v
}

thread_local! {
    /// Per-thread buffer for weights packed per call (decoded compressed weights, or
    /// weights given as a run-time input): reused across layers and runs, so that a
    /// compressed model does not allocate (and page-fault) a packed copy per layer.
    static PACK_BUF: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    /// Per-thread buffer for a whole layer's decoded weights, on the paths that read
    /// them unpacked (depthwise, matrix-vector, the direct kernel, non-AVX-512 CPUs).
    static DECODE_BUF: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    /// Per-thread buffer for one panel of decoded weights while packing.
    static ROW_BUF: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    /// Per-thread buffer for one panel's weights in tap-major order (the Winograd
    /// weight transform, `winograd::pack_panel_512`).
    static TAPS_BUF: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Bytes held by this thread's convolution weight buffers (packed per call, decoded
/// whole, decoded per panel, a panel in tap-major order), for memory reports.
pub fn buffer_bytes() -> usize {
    [&PACK_BUF, &DECODE_BUF, &ROW_BUF, &TAPS_BUF]
        .iter()
        .map(|k| k.with(|b| b.try_borrow().map_or(0, |v| v.capacity() * 4)))
        .sum()
}

/// A thread-local buffer taken for one call and handed back on drop (a nested call on
/// the same thread meanwhile gets an empty one).
pub(super) struct TlsBuf(
    pub(super) Vec<f32>,
    &'static std::thread::LocalKey<std::cell::RefCell<Vec<f32>>>,
);

impl TlsBuf {
    fn take(key: &'static std::thread::LocalKey<std::cell::RefCell<Vec<f32>>>) -> TlsBuf {
        let v = key.with(|b| {
            b.try_borrow_mut()
                .map(|mut v| std::mem::take(&mut *v))
                .unwrap_or_default()
        });
        TlsBuf(v, key)
    }
}

impl Drop for TlsBuf {
    fn drop(&mut self) {
        let v = std::mem::take(&mut self.0);
        self.1.with(|b| {
            if let Ok(mut slot) = b.try_borrow_mut() {
                if v.capacity() >= slot.capacity() {
                    *slot = v;
                }
            }
        });
    }
}

/// This thread's [`PACK_BUF`].
struct PackBuf;
impl PackBuf {
    fn take() -> TlsBuf {
        TlsBuf::take(&PACK_BUF)
    }
}

/// This thread's [`ROW_BUF`].
struct RowBuf;
impl RowBuf {
    fn take() -> TlsBuf {
        TlsBuf::take(&ROW_BUF)
    }
}

/// This thread's [`TAPS_BUF`].
#[cfg(target_arch = "x86_64")]
pub(super) fn taps_buf() -> TlsBuf {
    TlsBuf::take(&TAPS_BUF)
}

/// [`conv2d`] with an explicit choice of kernels ([`Paths`]); tests run every path.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv2d_with(
    g: &Conv2dGeom,
    input: &[f32],
    n: usize,
    h: usize,
    w: usize,
    weights: ConvWeights<'_>,
    bias: Option<&[f32]>,
    act: Activation,
    out: &mut [f32],
    scratch: &mut Vec<f32>,
    paths: Paths<'_>,
) -> Result<(), KernelError> {
    let (oh, ow) = conv_checks(g, input, n, h, w, weights.len(), bias, out)?;
    if out.is_empty() {
        return Ok(());
    }
    let kdim = g.c_in_per_group() * g.kh * g.kw;
    let macs = out.len().saturating_mul(kdim);
    let dw = g.c_in_per_group() == 1 && g.kh * g.kw > 1;
    let threads = if macs >= par_min_macs(dw) {
        rayon::current_num_threads()
    } else {
        1
    };
    // Declared first, so that views into them outlive every use below.
    let mut full = TlsBuf::take(&DECODE_BUF);
    let mut own_pack = PackBuf::take();
    if dw {
        let weights = weights.all(&mut full.0)?;
        return depthwise::conv(g, input, h, w, weights, bias, act, out, oh, ow, threads);
    }
    let direct = g.is_pointwise();
    if direct && n == 1 && h * w == 1 {
        // One pixel per image (a classifier as a 1x1 convolution on a 1x1 map): a
        // matrix-vector product per group, memory-bound on the weights.
        let (cig, cog) = (g.c_in_per_group(), g.c_out_per_group());
        let weights = weights.all(&mut full.0)?;
        for gi in 0..g.groups {
            let y = &mut out[gi * cog..(gi + 1) * cog];
            gemv_rows(
                &weights[gi * cog * cig..(gi + 1) * cog * cig],
                &input[gi * cig..(gi + 1) * cig],
                cig,
                1.0,
                0.0,
                y,
            );
            for (co, v) in y.iter_mut().enumerate() {
                *v = act.apply(*v + bias.map_or(0.0, |b| b[gi * cog + co]));
            }
        }
        return Ok(());
    }
    #[cfg(target_arch = "x86_64")]
    if paths.packed_gemm && pixmajor::applies(g, h, w, paths.pixmajor_max_hw) {
        let packed: &[f32] = match (paths.pack, weights) {
            (Some(cache), ConvWeights::F32(wf)) => cache.pixmajor.get_or_init(|| {
                let mut v = Vec::new();
                pixmajor::pack_weights(g.c_out, g.c_in, wf, &mut v);
                v
            }),
            _ => {
                let wf = weights.all(&mut full.0)?;
                pixmajor::pack_weights(g.c_out, g.c_in, wf, &mut own_pack.0);
                &own_pack.0
            }
        };
        pixmajor::conv(
            g.c_in,
            g.c_out,
            h * w,
            n,
            input,
            packed,
            bias,
            act,
            out,
            threads,
        );
        return Ok(());
    }
    #[cfg(target_arch = "x86_64")]
    if paths.packed_gemm && winograd::applies(g, oh, ow, paths.winograd_min_tiles) {
        let packed: &[f32] = match paths.pack {
            Some(cache) => cache.winograd.get_or_init(|| {
                let mut v = Vec::new();
                winograd::pack_weights(g.c_out, g.c_in, weights, &mut v);
                v
            }),
            None => winograd::pack_weights(g.c_out, g.c_in, weights, &mut own_pack.0),
        };
        winograd::conv(
            g, input, n, h, w, packed, bias, act, out, oh, ow, threads, scratch,
        );
        return Ok(());
    }
    #[cfg(target_arch = "x86_64")]
    if paths.stride2 && stride2::applies(g, h, w) {
        let weights = weights.all(&mut full.0)?;
        stride2::conv(
            g,
            input,
            (n, h, w),
            weights,
            bias,
            act,
            out,
            (oh, ow),
            threads,
        );
        return Ok(());
    }
    let units = n * g.groups;
    // With few units, cut rows finely enough that every worker gets about two tiles.
    let min_tiles = if threads > 1 && units < 2 * threads {
        (2 * threads).div_ceil(units)
    } else {
        1
    };
    let ctx = Ctx::new(
        g,
        input,
        h,
        w,
        weights,
        bias,
        act,
        oh,
        ow,
        direct,
        min_tiles,
        paths,
        &mut own_pack.0,
        &mut full.0,
    )?;
    let out_ptr = OutPtr(out.as_mut_ptr());
    let (unit_len, work_len) = (ctx.unit_len(), ctx.work_len());
    if threads > 1 && units >= 2 * threads {
        // Batches: each worker takes whole (image, group) units.
        let per_worker = unit_len + work_len;
        if scratch.len() < threads * per_worker {
            scratch.resize(threads * per_worker, 0.0);
        }
        let next = AtomicUsize::new(0);
        let chunks = worker_bufs(&mut scratch[..threads * per_worker], threads, per_worker);
        crate::team::for_workers(threads, &|wi| {
            let mut chunk = lock(&chunks[wi]);
            let (ubuf, work) = chunk.split_at_mut(unit_len);
            loop {
                let u = next.fetch_add(1, Ordering::Relaxed);
                if u >= units {
                    break;
                }
                ctx.fill_unit(u, ubuf, false);
                for t in 0..ctx.tiles {
                    // SAFETY: unit u is handled by this worker only; its tiles write
                    // disjoint output rows, and `out` is borrowed for the whole call.
                    unsafe { ctx.run_tile(u, t, ubuf, work, out_ptr, false) };
                }
            }
        });
        return Ok(());
    }
    // Few units: fill them all, then share out every (unit, tile) item; with too few
    // items for the workers, run them in order and let the GEMM split instead.
    let items = units * ctx.tiles;
    let workers = if threads > 1 && items >= threads {
        threads
    } else {
        1
    };
    let need = units * unit_len + workers * work_len;
    if scratch.len() < need {
        scratch.resize(need, 0.0);
    }
    let (ubufs, work) = scratch[..need].split_at_mut(units * unit_len);
    if unit_len > 0 {
        for (u, ubuf) in ubufs.chunks_mut(unit_len).enumerate() {
            ctx.fill_unit(u, ubuf, threads > 1 && unit_len >= FILL_PAR_MIN_FLOATS);
        }
    }
    let ubufs: &[f32] = ubufs;
    let ubuf = |u: usize| &ubufs[u * unit_len..(u + 1) * unit_len];
    if workers == 1 {
        for item in 0..items {
            let (u, t) = (item / ctx.tiles, item % ctx.tiles);
            // SAFETY: items run one at a time over the exclusively borrowed `out`.
            unsafe { ctx.run_tile(u, t, ubuf(u), work, out_ptr, threads > 1) };
        }
        return Ok(());
    }
    // The packed GEMM's items are (unit, row tile) in row order: taken from both ends,
    // the calling thread computes the top rows and the helper the bottom ones (`Ends`).
    // The direct kernel's are channel-block major: taken in order.
    let ends = if ctx.pk {
        crate::team::Ends::new(items)
    } else {
        crate::team::Ends::front(items)
    };
    let wbufs = worker_bufs(work, workers, work_len);
    crate::team::for_workers(workers, &|wi| {
        let mut wbuf = lock(&wbufs[wi]);
        while let Some(item) = ends.take(wi) {
            let (u, t) = (item / ctx.tiles, item % ctx.tiles);
            // SAFETY: the counter hands each item to one worker; items write disjoint
            // output rows; `out` is borrowed for the whole call.
            unsafe { ctx.run_tile(u, t, ubuf(u), &mut wbuf, out_ptr, false) };
        }
    });
    Ok(())
}

/// `count` disjoint slices of `len` floats from the front of `buf` (empty ones if
/// `len == 0`), one per worker slot of a [`crate::team::for_workers`] section (each
/// locked by its slot only, so the locks never contend).
pub(super) fn worker_bufs(buf: &mut [f32], count: usize, len: usize) -> Vec<Mutex<&mut [f32]>> {
    if len == 0 {
        return (0..count).map(|_| Mutex::new(&mut [][..])).collect();
    }
    buf[..count * len].chunks_mut(len).map(Mutex::new).collect()
}

/// Locks a worker buffer (a poisoned lock only means another slot panicked, which the
/// section reports anyway).
pub(super) fn lock<'a, 'b>(
    m: &'a Mutex<&'b mut [f32]>,
) -> std::sync::MutexGuard<'a, &'b mut [f32]> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Everything a tile needs, shared read-only by the workers.
struct Ctx<'a> {
    g: &'a Conv2dGeom,
    input: &'a [f32],
    h: usize,
    w: usize,
    weights: &'a [f32],
    bias: Option<&'a [f32]>,
    act: Activation,
    oh: usize,
    ow: usize,
    /// `c_in / groups * kh * kw`.
    kdim: usize,
    /// 1x1 stride-1 unpadded: the input planes are the GEMM operand.
    direct: bool,
    st: Stencil,
    /// Tap offsets in the stencil layout, `(ky, kx)` row-major.
    taps: Vec<usize>,
    /// Flat row pitch (`ow` when direct).
    pitch: usize,
    tile_rows: usize,
    tiles: usize,
    /// Use the [`direct`] kernel; tiles are then (row block, row range) pairs.
    dk: bool,
    /// Row ranges per row block when `dk`.
    ytiles: usize,
    /// With `dk` on the stencil layout: skip the junk columns and store whole output
    /// rows in place ([`direct::Rows`]).
    dk_rows: bool,
    /// With `dk`: the narrow-map layout instead of the stencil ([`direct::Narrow`]).
    narrow: Option<direct::Narrow>,
    /// Use the packed [`sgemm`]; tiles are then (row range, output-channel block) pairs.
    pk: bool,
    /// Weights packed for [`sgemm`] (all groups), when `pk`.
    packed: &'a [f32],
    /// Output-channel blocks per row range when `pk` (1 otherwise).
    mblocks: usize,
    /// Output channels per block when `pk` (a multiple of the micro-kernel rows).
    mrows: usize,
    /// Start of each im2col row (input channel, tap) in the unit buffer, from the flat
    /// output index, when `pk` and not `direct`.
    offs: Vec<usize>,
}

/// Tap list of a 1x1 stride-1 convolution read straight from the input planes.
const ONE_TAP: [usize; 1] = [0];
/// Bias of a layer without one, for the [`direct`] kernel.
const ZERO_BIAS: [f32; direct::ROWS] = [0.0; direct::ROWS];

impl<'a> Ctx<'a> {
    #[allow(clippy::too_many_arguments)]
    fn new(
        g: &'a Conv2dGeom,
        input: &'a [f32],
        h: usize,
        w: usize,
        wsrc: ConvWeights<'a>,
        bias: Option<&'a [f32]>,
        act: Activation,
        oh: usize,
        ow: usize,
        direct: bool,
        min_tiles: usize,
        paths: Paths<'a>,
        own_pack: &'a mut Vec<f32>,
        full: &'a mut Vec<f32>,
    ) -> Result<Self, KernelError> {
        let st = Stencil {
            kh: g.kh,
            kw: g.kw,
            sh: g.stride_h,
            sw: g.stride_w,
            dh: g.dil_h,
            dw: g.dil_w,
            pad_top: g.pad_top,
            pad_left: g.pad_left,
            h,
            w,
            oh,
            ow,
        };
        let mut taps = Vec::new();
        let pitch = if direct {
            ow
        } else {
            st.taps(&mut taps);
            st.pitch()
        };
        let kdim = g.c_in_per_group() * g.kh * g.kw;
        let per_col = if direct {
            g.c_out_per_group()
        } else {
            kdim + g.c_out_per_group()
        };
        let unit_floats = g.c_in_per_group() * if direct { h * w } else { st.buf_len() };
        // Fewer than one vector of flat outputs (e.g. a classifier as a 1x1 convolution
        // on a 1x1 map) would waste most lanes: the GEMM (matrix-vector) path is better.
        let dk = direct::available()
            && unit_floats <= paths.direct_max
            && g.c_out_per_group() > 0
            && oh * pitch >= 16;
        let dk_rows = dk && !direct && rows_mode_applies(ow, st.pitch());
        let narrow = if dk && !direct && !dk_rows && junk_free_level() >= 2 {
            direct::Narrow::new(
                (g.kh, g.kw),
                (g.stride_h, g.stride_w),
                (g.dil_h, g.dil_w),
                (g.pad_top, g.pad_left),
                (h, w),
                (oh, ow),
            )
        } else {
            None
        };
        let pk = !dk && paths.packed_gemm && sgemm_available() && g.c_out_per_group() > 0;
        let mut packed: &'a [f32] = &[];
        let mut offs = Vec::new();
        let (mut mblocks, mut mrows) = (1, g.c_out_per_group());
        let (tile_rows, tiles, ytiles) = if pk {
            packed = match paths.pack {
                Some(cache) => cache.gemm.get_or_init(|| pack_weights(g, wsrc)),
                None => pack_weights_into(g, wsrc, own_pack),
            };
            if !direct {
                let bl = st.buf_len();
                offs = (0..g.c_in_per_group())
                    .flat_map(|ci| taps.iter().map(move |&t| ci * bl + t))
                    .collect();
            }
            // The C tile plus the input rows it reads, per output column.
            let per_col = g.c_out_per_group() + g.c_in_per_group();
            // At least PK_MIN_COLS output columns per tile: fewer leave the micro-kernel
            // partly idle; split the output channels instead.
            let min_rows = PK_MIN_COLS.div_ceil(pitch).clamp(1, oh);
            let mut tile_rows = (TILE_FLOATS / (per_col * pitch).max(1))
                .min(oh.div_ceil(min_tiles))
                .max(min_rows)
                .clamp(1, oh);
            let mut ntiles = oh.div_ceil(tile_rows);
            if min_tiles > 1 && ntiles > min_tiles && ntiles % min_tiles != 0 {
                // Few units shared by the workers: a tile count that is a multiple of
                // `min_tiles` (a multiple of the thread count at batch 1) keeps them even
                // (SqueezeNet's conv1: 5 tiles on 2 threads = 3 + 2, now 8 = 4 + 4).
                let want = ntiles.next_multiple_of(min_tiles).min(oh);
                tile_rows = oh.div_ceil(want).max(1);
                ntiles = oh.div_ceil(tile_rows);
            }
            let panels = g.c_out_per_group().div_ceil(PK_MR);
            mblocks = min_tiles.div_ceil(ntiles).clamp(1, panels);
            mrows = panels.div_ceil(mblocks) * PK_MR;
            mblocks = g.c_out_per_group().div_ceil(mrows);
            (tile_rows, ntiles * mblocks, 1)
        } else if dk {
            let row_blocks = g.c_out_per_group().div_ceil(direct::ROWS);
            let mut tile_rows = oh.div_ceil(min_tiles.div_ceil(row_blocks).clamp(1, oh));
            if narrow.is_some() {
                // Tiles start on whole vectors (16 / ow rows), where the tap masks hold.
                tile_rows = tile_rows.next_multiple_of(16 / ow).min(oh);
            }
            let ytiles = oh.div_ceil(tile_rows);
            (tile_rows, row_blocks * ytiles, ytiles)
        } else {
            let tile_rows = (TILE_FLOATS / (per_col * pitch).max(1))
                .min(oh.div_ceil(min_tiles))
                .clamp(1, oh);
            (tile_rows, oh.div_ceil(tile_rows), 1)
        };
        // The packed GEMM reads only `packed`; the other paths read the plain values.
        let weights: &'a [f32] = match wsrc {
            ConvWeights::F32(w) => w,
            ConvWeights::Packed(_) if pk => &[],
            ConvWeights::Packed(_) => wsrc.all(full)?,
        };
        Ok(Ctx {
            g,
            input,
            h,
            w,
            weights,
            bias,
            act,
            oh,
            ow,
            kdim,
            direct,
            st,
            taps,
            pitch,
            tile_rows,
            tiles,
            dk,
            ytiles,
            dk_rows,
            narrow,
            pk,
            packed,
            mblocks,
            mrows,
            offs,
        })
    }

    /// Floats of the per-unit buffer: the group's input planes in stencil layout.
    fn unit_len(&self) -> usize {
        if self.direct {
            0
        } else {
            self.g.c_in_per_group() * self.plane_len()
        }
    }

    /// Floats per input plane in the unit buffer (narrow layout or stencil).
    fn plane_len(&self) -> usize {
        self.narrow
            .as_ref()
            .map_or_else(|| self.st.buf_len(), |n| n.plane_len)
    }

    /// Floats of the per-worker tile buffer: im2col block and GEMM output block.
    fn work_len(&self) -> usize {
        if self.pk {
            // 1x1 convolutions read the input in place and write the output directly;
            // the others need the tile's C block (all channels of the group).
            return if self.direct {
                0
            } else {
                self.g.c_out_per_group() * self.tile_rows * self.pitch
            };
        }
        if self.direct || self.dk_rows || self.narrow.is_some() {
            0
        } else if self.dk {
            direct::ROWS * self.tile_rows * self.pitch
        } else {
            (self.kdim + self.g.c_out_per_group()) * self.tile_rows * self.pitch
        }
    }

    /// Copies the input planes of unit `u` (image, group) into `ubuf` (stencil layout).
    fn fill_unit(&self, u: usize, ubuf: &mut [f32], parallel: bool) {
        if self.direct {
            return;
        }
        let g = self.g;
        let (b, gi) = (u / g.groups, u % g.groups);
        let cig = g.c_in_per_group();
        let hw = self.h * self.w;
        let bl = self.plane_len();
        let fill = |ci: usize, region: &mut [f32]| {
            let src = &self.input[(b * g.c_in + gi * cig + ci) * hw..][..hw];
            if let Some(n) = &self.narrow {
                n.fill(src, region);
            } else {
                region.fill(0.0);
                self.st.fill(src, region);
            }
        };
        let ubuf = &mut ubuf[..cig * bl];
        if parallel && cig > 1 {
            crate::team::par_chunks_mut(ubuf, bl, rayon::current_num_threads(), fill);
        } else {
            ubuf.chunks_mut(bl)
                .enumerate()
                .for_each(|(ci, r)| fill(ci, r));
        }
    }

    /// Computes output rows of tile `t` of unit `u` (image, group).
    ///
    /// # Safety
    /// `out` must be the start of the `[n, c_out, oh, ow]` output with unit `u` in
    /// bounds, and no other thread may touch this tile's output rows concurrently.
    unsafe fn run_tile(
        &self,
        u: usize,
        t: usize,
        ubuf: &[f32],
        work: &mut [f32],
        out: OutPtr,
        gemm_parallel: bool,
    ) {
        if self.dk {
            // SAFETY: forwarded from the caller.
            unsafe { self.run_direct(u, t, ubuf, work, out) };
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if self.pk {
            // SAFETY: forwarded from the caller.
            unsafe { self.run_packed(u, t, ubuf, work, out) };
            return;
        }
        let g = self.g;
        let (b, gi) = (u / g.groups, u % g.groups);
        let (cig, cog) = (g.c_in_per_group(), g.c_out_per_group());
        let ohw = self.oh * self.ow;
        let oy0 = t * self.tile_rows;
        let oy1 = (oy0 + self.tile_rows).min(self.oh);
        let lhs = MatRef {
            data: &self.weights[gi * cog * self.kdim..][..cog * self.kdim],
            rs: self.kdim,
            cs: 1,
        };
        let co0 = gi * cog;
        if self.direct {
            let hw = self.h * self.w;
            let img = &self.input[(b * g.c_in + gi * cig) * hw..][..cig * hw];
            let cols = (oy1 - oy0) * self.ow;
            let rhs = MatRef {
                data: &img[oy0 * self.ow..],
                rs: hw,
                cs: 1,
            };
            let base = (b * g.c_out + co0) * ohw + oy0 * self.ow;
            // SAFETY: rows co0..co0+cog of image b, columns [oy0*ow, oy1*ow), are inside
            // the output and owned by this tile (caller contract); each row segment is a
            // distinct range, so the short-lived slices never overlap other threads'.
            unsafe {
                matmul_raw(
                    cog,
                    cols,
                    self.kdim,
                    lhs,
                    rhs,
                    out.0.add(base),
                    ohw,
                    1.0,
                    false,
                    gemm_parallel,
                );
                if self.bias.is_some() || self.act != Activation::None {
                    for co in 0..cog {
                        let row = std::slice::from_raw_parts_mut(out.0.add(base + co * ohw), cols);
                        let bias = self.bias.map_or(0.0, |bs| bs[co0 + co]);
                        match self.act {
                            Activation::None => row.iter_mut().for_each(|v| *v += bias),
                            Activation::Relu => {
                                row.iter_mut().for_each(|v| *v = (*v + bias).max(0.0))
                            }
                            Activation::Clip { min, max } => row
                                .iter_mut()
                                .for_each(|v| *v = (*v + bias).max(min).min(max)),
                        }
                    }
                }
            }
            return;
        }
        let p = self.pitch;
        let colsf = (oy1 - oy0) * p;
        let khw = g.kh * g.kw;
        let bl = self.st.buf_len();
        let (col, tmp) = work.split_at_mut(self.kdim * self.tile_rows * p);
        let col = &mut col[..self.kdim * colsf];
        let tmp = &mut tmp[..cog * colsf];
        for ci in 0..cig {
            let plane = &ubuf[ci * bl..(ci + 1) * bl];
            for (ti, &off) in self.taps.iter().enumerate() {
                let start = off + oy0 * p;
                col[(ci * khw + ti) * colsf..][..colsf]
                    .copy_from_slice(&plane[start..start + colsf]);
            }
        }
        let rhs = MatRef {
            data: col,
            rs: colsf,
            cs: 1,
        };
        matmul(
            cog,
            colsf,
            self.kdim,
            lhs,
            rhs,
            tmp,
            colsf,
            1.0,
            false,
            gemm_parallel,
        );
        for co in 0..cog {
            let bias = self.bias.map_or(0.0, |bs| bs[co0 + co]);
            let plane_base = (b * g.c_out + co0 + co) * ohw;
            for oy in oy0..oy1 {
                let src = &tmp[co * colsf + (oy - oy0) * p..][..self.ow];
                // SAFETY: output row oy of channel co0+co of image b is inside the output
                // and owned by this tile (caller contract).
                let dst = unsafe {
                    std::slice::from_raw_parts_mut(out.0.add(plane_base + oy * self.ow), self.ow)
                };
                epilogue(dst, src, bias, self.act);
            }
        }
    }

    /// Tile `t` (row range, output-channel block) of unit `u` with [`sgemm`]: its `B` is
    /// read in place (1x1: the input rows by stride; otherwise the im2col rows as tap
    /// offsets into the unit's stencil buffer); bias and activation are applied by the
    /// GEMM's epilogue.
    ///
    /// # Safety
    /// As [`Ctx::run_tile`]; the CPU has AVX-512 (`pk` is only set then).
    #[cfg(target_arch = "x86_64")]
    unsafe fn run_packed(&self, u: usize, t: usize, ubuf: &[f32], work: &mut [f32], out: OutPtr) {
        let g = self.g;
        let (b, gi) = (u / g.groups, u % g.groups);
        let (cig, cog) = (g.c_in_per_group(), g.c_out_per_group());
        let (nt, mb) = (t / self.mblocks, t % self.mblocks);
        let oy0 = nt * self.tile_rows;
        let oy1 = (oy0 + self.tile_rows).min(self.oh);
        let rows = mb * self.mrows..((mb + 1) * self.mrows).min(cog);
        let per = sgemm::packed_a_len(cog, self.kdim);
        let ap = &self.packed[gi * per..(gi + 1) * per];
        let co0 = gi * cog;
        let bias = self.bias.map(|bs| &bs[co0..co0 + cog]);
        let ohw = self.oh * self.ow;
        let k = self.kdim;
        if self.direct {
            let hw = self.h * self.w;
            let img = &self.input[(b * g.c_in + gi * cig) * hw..][..cig * hw];
            let cols = (oy1 - oy0) * self.ow;
            // The input planes are B's rows: read in place, no packing.
            let bsrc = sgemm::BSrc::Strided {
                data: &img[oy0 * self.ow..],
                ld: hw,
            };
            let base = (b * g.c_out + co0) * ohw + oy0 * self.ow;
            // SAFETY: AVX-512 (caller); `ap` packed for these sizes, `img` holds `k`
            // planes of `hw`; rows `rows` of channels co0.. of image b, columns
            // [oy0*ow, oy1*ow) are inside the output and owned by this tile (caller
            // contract).
            unsafe {
                sgemm::gemm(
                    cog,
                    rows,
                    cols,
                    k,
                    ap,
                    bsrc,
                    out.0.add(base),
                    ohw,
                    bias,
                    self.act,
                )
            };
            return;
        }
        let p = self.pitch;
        let colsf = (oy1 - oy0) * p;
        let tmp = &mut work[..cog * colsf];
        // The im2col rows are read in place: row (ci, tap) starts at `offs[..]` from the
        // tile's first flat output.
        let bsrc = sgemm::BSrc::Indirect {
            data: &ubuf[oy0 * p..],
            offs: &self.offs,
        };
        // SAFETY: AVX-512 (caller); `ap` packed for these sizes; every im2col row of the
        // tile lies in `ubuf` (stencil slack); `tmp` holds `cog` rows of `colsf` floats,
        // exclusively borrowed.
        unsafe {
            sgemm::gemm(
                cog,
                rows.clone(),
                colsf,
                k,
                ap,
                bsrc,
                tmp.as_mut_ptr(),
                colsf,
                bias,
                self.act,
            )
        };
        // SAFETY: forwarded from the caller (these rows and channels belong to the tile).
        unsafe { self.copy_out(tmp, colsf, rows, (b * g.c_out + co0) * ohw, oy0, oy1, out) };
    }

    /// Copies output rows `oy0..oy1` of channels `chans` from a flat tile (channel `c`,
    /// row `oy` at `tile[c * ld + (oy - oy0) * pitch..][..ow]`) to the output planes
    /// (channel `c`'s plane at `base + c * oh * ow`), dropping the junk columns.
    ///
    /// # Safety
    /// Those output rows must be inside the output and owned by the calling tile.
    #[allow(clippy::too_many_arguments)]
    unsafe fn copy_out(
        &self,
        tile: &[f32],
        ld: usize,
        chans: std::ops::Range<usize>,
        base: usize,
        oy0: usize,
        oy1: usize,
        out: OutPtr,
    ) {
        let ohw = self.oh * self.ow;
        for c in chans {
            for oy in oy0..oy1 {
                let src = &tile[c * ld + (oy - oy0) * self.pitch..][..self.ow];
                // SAFETY: output row oy of plane `base / ohw + c` is inside the output and
                // owned by this tile (function contract).
                let dst = unsafe {
                    std::slice::from_raw_parts_mut(
                        out.0.add(base + c * ohw + oy * self.ow),
                        self.ow,
                    )
                };
                dst.copy_from_slice(src);
            }
        }
    }

    /// Tile `t` (row block, row range) of unit `u` with the [`direct`] kernel.
    ///
    /// # Safety
    /// As [`Ctx::run_tile`].
    unsafe fn run_direct(&self, u: usize, t: usize, ubuf: &[f32], work: &mut [f32], out: OutPtr) {
        let g = self.g;
        let (b, gi) = (u / g.groups, u % g.groups);
        let (cig, cog) = (g.c_in_per_group(), g.c_out_per_group());
        let (rb, yt) = (t / self.ytiles, t % self.ytiles);
        let oy0 = yt * self.tile_rows;
        let oy1 = (oy0 + self.tile_rows).min(self.oh);
        let r0 = rb * direct::ROWS;
        let rows = direct::ROWS.min(cog - r0);
        let co = gi * cog + r0;
        let ohw = self.oh * self.ow;
        let weights = &self.weights[co * self.kdim..][..rows * self.kdim];
        let bias = self
            .bias
            .map_or(&ZERO_BIAS[..rows], |bs| &bs[co..co + rows]);
        let p = self.pitch;
        let (planes, plane_len, taps): (&[f32], usize, &[usize]) = if self.direct {
            let hw = self.h * self.w;
            (
                &self.input[(b * g.c_in + gi * cig) * hw..][..cig * hw],
                hw,
                &ONE_TAP,
            )
        } else {
            let taps = self.narrow.as_ref().map_or(&self.taps[..], |n| &n.taps[..]);
            (ubuf, self.plane_len(), taps)
        };
        // In place: 1x1 convolutions (p == ow), the row-wise and the narrow modes store
        // output rows oy0..oy1 densely; the flat mode computes `p`-pitched rows into
        // `work`.
        let in_place = self.direct || self.dk_rows || self.narrow.is_some();
        let q = if in_place { self.ow } else { p };
        let blk = direct::Block {
            planes,
            plane_len,
            cig,
            taps,
            weights,
            bias,
            j0: oy0 * q,
            len: (oy1 - oy0) * q,
            act: self.act,
            rows: self.dk_rows.then_some(direct::Rows {
                ow: self.ow,
                pitch: p,
            }),
            masks: self.narrow.as_ref().map(|n| &n.masks[..]),
        };
        let base = (b * g.c_out + co) * ohw;
        if in_place {
            // SAFETY: rows co..co+rows of image b, columns [oy0*ow, oy1*ow), are inside
            // the output and owned by this tile (caller contract).
            unsafe { direct::run_raw(&blk, out.0.add(base + oy0 * self.ow), ohw) };
            return;
        }
        let len = blk.len;
        let tmp = &mut work[..rows * len];
        // SAFETY: `tmp` holds `rows * len` floats, exclusively borrowed.
        unsafe { direct::run_raw(&blk, tmp.as_mut_ptr(), len) };
        // SAFETY: forwarded from the caller (these rows and channels belong to the tile).
        unsafe { self.copy_out(tmp, len, 0..rows, base, oy0, oy1, out) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The direct kernel stores whole rows (no junk columns) exactly where the output
    /// width is a multiple of 16 and the stencil pitch is wider than the output, and uses
    /// the narrow layout exactly on stride-1 "same-width" 4- and 8-wide maps, on one tile
    /// and on several, whose rows start on whole vectors
    /// (`kernels::tests::direct_rows_geometries_match_reference` checks the numbers on
    /// the same geometries).
    #[test]
    fn direct_rows_mode_is_chosen_by_width() {
        if !direct::available() {
            return;
        }
        // (k, pad, stride, h, w, rows mode expected, narrow layout expected)
        for (k, pad, stride, h, w, want, narrow) in [
            (5, 2, 1, 16, 16, true, false),
            (5, 2, 1, 32, 32, true, false),
            (3, 1, 1, 20, 64, true, false),
            (3, 1, 2, 33, 32, true, false),
            (5, 2, 1, 8, 8, false, true),
            (3, 1, 1, 9, 8, false, true),
            (3, 1, 1, 4, 4, false, true),
            (3, 1, 1, 24, 24, false, false),
            (5, 2, 1, 28, 28, false, false),
            // Narrower output than input, stride 2: the stencil.
            (3, 0, 1, 10, 10, false, false),
            (3, 1, 2, 16, 16, false, false),
            // 1x1: read in place already (the pitch is the width).
            (1, 0, 1, 16, 16, false, false),
            (1, 0, 1, 8, 8, false, false),
        ] {
            let g = Conv2dGeom {
                c_in: 4,
                c_out: 8,
                kh: k,
                kw: k,
                stride_h: stride,
                stride_w: stride,
                pad_top: pad,
                pad_left: pad,
                pad_bottom: pad,
                pad_right: pad,
                dil_h: 1,
                dil_w: 1,
                groups: 1,
            };
            let (oh, ow) = g.out_hw(h, w).unwrap();
            let weights = vec![0.0; g.weight_len().unwrap()];
            let input = vec![0.0; g.c_in * h * w];
            for min_tiles in [1, 4] {
                let paths = Paths {
                    direct_max: usize::MAX,
                    packed_gemm: true,
                    winograd_min_tiles: usize::MAX,
                    pixmajor_max_hw: 0,
                    stride2: false,
                    pack: None,
                };
                let (mut own, mut full) = (Vec::new(), Vec::new());
                let ctx = Ctx::new(
                    &g,
                    &input,
                    h,
                    w,
                    ConvWeights::F32(&weights),
                    None,
                    Activation::None,
                    oh,
                    ow,
                    g.is_pointwise(),
                    min_tiles,
                    paths,
                    &mut own,
                    &mut full,
                )
                .unwrap();
                assert!(ctx.dk, "{k}x{k} on {h}x{w}: direct kernel expected");
                assert_eq!(ctx.dk_rows, want, "{k}x{k} stride {stride} on {h}x{w}");
                assert_eq!(
                    ctx.narrow.is_some(),
                    narrow,
                    "{k}x{k} stride {stride} on {h}x{w}"
                );
                // Several row tiles when asked for, unless one vector holds the map.
                let split = min_tiles > 1 && oh * ow > 16;
                assert_eq!(ctx.ytiles > 1, split, "{k}x{k} on {h}x{w}");
                if want || narrow {
                    assert_eq!(ctx.work_len(), 0);
                }
                if narrow {
                    let whole = ctx.ytiles == 1 || (ctx.tile_rows * ow).is_multiple_of(16);
                    assert!(whole, "{k}x{k} on {h}x{w}: tile rows {}", ctx.tile_rows);
                }
            }
        }
    }

    /// Cost of packing a VGG-16 512 x 512 3x3 layer's weights for the GEMM per run
    /// (what a packed variant pays on its 14x14 layers); `cargo test --release -p
    /// sieve-nn pack_gemm_cost -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn pack_gemm_cost() {
        let g = Conv2dGeom {
            c_in: 512,
            c_out: 512,
            kh: 3,
            kw: 3,
            stride_h: 1,
            stride_w: 1,
            pad_top: 1,
            pad_left: 1,
            pad_bottom: 1,
            pad_right: 1,
            dil_h: 1,
            dil_w: 1,
            groups: 1,
        };
        let w: Vec<f32> = (0..512 * 512 * 9)
            .map(|i| (i % 97) as f32 / 64.0 - 0.75)
            .collect();
        let f = sieve_float::Format::new(true, 4, 3, 7).unwrap();
        let p = sieve_float::PackedTensor::encode_from(f, &w).unwrap();
        let dec = RangeDecoder::new(&p, &[]).unwrap();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let (mut ta, mut tb, mut tf) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..10 {
            let t = std::time::Instant::now();
            pack_weights_into(&g, ConvWeights::F32(&w), &mut a);
            ta.push(t.elapsed().as_secs_f64() * 1e3);
            let t = std::time::Instant::now();
            pack_weights_into(&g, ConvWeights::Packed(&dec), &mut b);
            tb.push(t.elapsed().as_secs_f64() * 1e3);
            let t = std::time::Instant::now();
            crate::team::par_chunks_mut(&mut a, 1 << 16, rayon::current_num_threads(), |_, c| {
                c.fill(0.5)
            });
            tf.push(t.elapsed().as_secs_f64() * 1e3);
        }
        for v in [&mut ta, &mut tb, &mut tf] {
            v.sort_by(f64::total_cmp);
        }
        eprintln!(
            "512x512 3x3 GEMM pack, medians of 10 on all workers: f32 {:.2} ms, 8-bit decoded \
             per panel {:.2} ms; filling the {} MB output {:.2} ms",
            ta[5],
            tb[5],
            b.len() * 4 / 1_000_000,
            tf[5]
        );
        let mut want = Vec::new();
        pack_weights_into(&g, ConvWeights::F32(&p.to_vec()), &mut want);
        assert_eq!(b, want);
    }
}
