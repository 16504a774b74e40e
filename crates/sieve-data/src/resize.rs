//! Image preprocessing for ImageNet-style models: antialiased bilinear resize
//! of the shorter side to `S`, centre crop `S x S`, HWC -> CHW.
//!
//! Two resamplers:
//! - The default, [`Resampler::Pillow`], is a line-by-line port of Pillow's
//!   `libImaging/Resample.c` for 8-bit images with the `BILINEAR` filter —
//!   double-precision coefficients normalised to sum 1, converted to 22-bit
//!   fixed point, horizontal pass then vertical pass, each rounded to u8.
//!   It follows `PIL.Image.resize(size, Image.BILINEAR)` step for step
//!   (checked against hand-worked values; no Pillow was available to diff
//!   against directly — see docs/DATA.md for the end-to-end residual).
//! - The alternative, [`Resampler::FastImageResize`], is `fast_image_resize`'s
//!   `Convolution(Bilinear)`, the same convolution (it derives from
//!   Pillow-SIMD) but with 16-bit coefficients, so results can differ from
//!   Pillow by one level on some pixels (tested below).
//!
//! The target size follows the reference pipeline
//! (`shared/tools/fold_models.py::load_image`): for `W <= H`,
//! `(S, max(S, round(H*S/W)))`, else `(max(S, round(W*S/H)), S)`, with
//! Python's round-half-to-even; no resize when the size is unchanged; crop
//! offsets `floor((W'-S)/2)`, `floor((H'-S)/2)`.

use crate::DataError;

/// Which bilinear resampler to use (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Resampler {
    /// Exact port of Pillow's `Image.BILINEAR` (default).
    #[default]
    Pillow,
    /// `fast_image_resize` `Convolution(Bilinear)`: SIMD, within 1 level of Pillow.
    FastImageResize,
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Per output pixel: first input index, tap count; plus `ksize` taps each.
struct Coeffs {
    bounds: Vec<(usize, usize)>,
    ksize: usize,
    k: Vec<i32>,
}

fn bilinear_filter(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

/// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for the full box `[0, in_size)`.
fn precompute(in_size: usize, out_size: usize) -> Coeffs {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filterscale; // bilinear support 1.0 * filterscale
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut k = vec![0i32; out_size * ksize];
    let mut pre = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        // C `(int)` truncates toward zero.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let n = xmax.saturating_sub(xmin);
        let mut ww = 0.0;
        for (x, p) in pre.iter_mut().enumerate().take(n) {
            let w = bilinear_filter((x as f64 + xmin as f64 - center + 0.5) * ss);
            *p = w;
            ww += w;
        }
        let row = &mut k[xx * ksize..xx * ksize + ksize];
        for x in 0..n {
            let v = if ww != 0.0 { pre[x] / ww } else { pre[x] };
            let f = v * f64::from(1u32 << PRECISION_BITS);
            row[x] = if v < 0.0 {
                (-0.5 + f) as i32
            } else {
                (0.5 + f) as i32
            };
        }
        bounds.push((xmin, n));
    }
    Coeffs { bounds, ksize, k }
}

fn clip8(v: i32) -> u8 {
    if v >= (1i32 << PRECISION_BITS << 8) {
        255
    } else if v <= 0 {
        0
    } else {
        (v >> PRECISION_BITS) as u8
    }
}

/// Resizes an interleaved 8-bit image (`h x w x c`, row-major) to `nh x nw`
/// exactly as Pillow's `Image.resize((nw, nh), Image.BILINEAR)` does.
///
/// Errors when `src.len() != w*h*c` or a size is zero.
pub fn resize_bilinear_pillow(
    src: &[u8],
    w: usize,
    h: usize,
    c: usize,
    nw: usize,
    nh: usize,
) -> Result<Vec<u8>, DataError> {
    check_sizes(src, w, h, c, nw, nh)?;
    let horiz = if nw != w {
        let co = precompute(w, nw);
        let mut out = vec![0u8; h * nw * c];
        for (srow, drow) in src.chunks_exact(w * c).zip(out.chunks_exact_mut(nw * c)) {
            horizontal_row(srow, drow, &co, c);
        }
        out
    } else {
        src.to_vec()
    };
    if nh == h {
        return Ok(horiz);
    }
    let co = precompute(h, nh);
    let row_len = nw * c;
    let mut out = vec![0u8; nh * row_len];
    let mut acc = vec![0i32; row_len];
    for (yy, (&(ymin, n), drow)) in co
        .bounds
        .iter()
        .zip(out.chunks_exact_mut(row_len))
        .enumerate()
    {
        let k = &co.k[yy * co.ksize..yy * co.ksize + n];
        acc.fill(HALF);
        for (y, &kv) in k.iter().enumerate() {
            let srow = &horiz[(y + ymin) * row_len..(y + ymin + 1) * row_len];
            for (a, &v) in acc.iter_mut().zip(srow) {
                *a += i32::from(v) * kv;
            }
        }
        for (d, &a) in drow.iter_mut().zip(&acc) {
            *d = clip8(a);
        }
    }
    Ok(out)
}

/// Rounding offset of Pillow's fixed-point accumulators.
const HALF: i32 = 1 << (PRECISION_BITS - 1);

/// One row of Pillow's horizontal pass. Accumulating in `i32` as Pillow does
/// cannot overflow here: bilinear taps are non-negative and sum to about
/// 2^22, so 255 * sum + 2^21 < 2^31.
fn horizontal_row(srow: &[u8], drow: &mut [u8], co: &Coeffs, c: usize) {
    for (xx, &(xmin, n)) in co.bounds.iter().enumerate() {
        let k = &co.k[xx * co.ksize..xx * co.ksize + n];
        let px = &srow[xmin * c..(xmin + n) * c];
        let out = &mut drow[xx * c..(xx + 1) * c];
        if c == 3 {
            let (mut s0, mut s1, mut s2) = (HALF, HALF, HALF);
            for (p, &kv) in px.chunks_exact(3).zip(k) {
                s0 += i32::from(p[0]) * kv;
                s1 += i32::from(p[1]) * kv;
                s2 += i32::from(p[2]) * kv;
            }
            out[0] = clip8(s0);
            out[1] = clip8(s1);
            out[2] = clip8(s2);
        } else {
            for (ch, o) in out.iter_mut().enumerate() {
                let mut ss = HALF;
                for (p, &kv) in px.chunks_exact(c).zip(k) {
                    ss += i32::from(p[ch]) * kv;
                }
                *o = clip8(ss);
            }
        }
    }
}

fn check_sizes(
    src: &[u8],
    w: usize,
    h: usize,
    c: usize,
    nw: usize,
    nh: usize,
) -> Result<(), DataError> {
    if w == 0 || h == 0 || c == 0 || nw == 0 || nh == 0 {
        return Err(DataError::InvalidArgument(format!(
            "resize {w}x{h}x{c} -> {nw}x{nh}: sizes must be positive"
        )));
    }
    if w.checked_mul(h).and_then(|x| x.checked_mul(c)) != Some(src.len()) {
        return Err(DataError::InvalidArgument(format!(
            "resize: buffer of {} bytes is not {w}x{h}x{c}",
            src.len()
        )));
    }
    Ok(())
}

/// Resizes an interleaved 8-bit image with `fast_image_resize`
/// (`Convolution(Bilinear)`); `c` must be 1, 3 or 4.
pub fn resize_bilinear_fast(
    src: &[u8],
    w: usize,
    h: usize,
    c: usize,
    nw: usize,
    nh: usize,
) -> Result<Vec<u8>, DataError> {
    use fast_image_resize as fr;
    check_sizes(src, w, h, c, nw, nh)?;
    let pt = match c {
        1 => fr::PixelType::U8,
        3 => fr::PixelType::U8x3,
        4 => fr::PixelType::U8x4,
        _ => {
            return Err(DataError::InvalidArgument(format!(
                "fast_image_resize: {c} channels not supported"
            )))
        }
    };
    let dim = |v: usize| {
        u32::try_from(v)
            .map_err(|_| DataError::InvalidArgument(format!("image dimension {v} too large")))
    };
    let src_img = fr::images::Image::from_vec_u8(dim(w)?, dim(h)?, src.to_vec(), pt)
        .map_err(|e| DataError::InvalidArgument(format!("fast_image_resize: {e}")))?;
    let mut dst = fr::images::Image::new(dim(nw)?, dim(nh)?, pt);
    let opts = fr::ResizeOptions::new()
        .resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::Bilinear))
        .use_alpha(false);
    fr::Resizer::new()
        .resize(&src_img, &mut dst, &opts)
        .map_err(|e| DataError::InvalidArgument(format!("fast_image_resize: {e}")))?;
    Ok(dst.into_vec())
}

/// The size `(W', H')` an image of `w x h` is resized to so that its shorter
/// side is `s` (Python `round`, half to even; never below `s`).
pub fn shorter_side_size(w: usize, h: usize, s: usize) -> (usize, usize) {
    let scaled = |long: usize, short: usize| {
        let v = (long as f64 * s as f64 / short as f64).round_ties_even();
        (v as usize).max(s)
    };
    if w <= h {
        (s, scaled(h, w))
    } else {
        (scaled(w, h), s)
    }
}

/// Full preprocessing of an interleaved RGB (or any `c`-channel) 8-bit image:
/// resize the shorter side to `s` with `resampler`, centre-crop `s x s`, and
/// return the pixels in CHW order (`c * s * s` bytes).
pub fn resize_crop_chw(
    src: &[u8],
    w: usize,
    h: usize,
    c: usize,
    s: usize,
    resampler: Resampler,
) -> Result<Vec<u8>, DataError> {
    check_sizes(src, w, h, c, s, s)?;
    let (nw, nh) = shorter_side_size(w, h, s);
    let resized = if (nw, nh) == (w, h) {
        src.to_vec()
    } else {
        match resampler {
            Resampler::Pillow => resize_bilinear_pillow(src, w, h, c, nw, nh)?,
            Resampler::FastImageResize => resize_bilinear_fast(src, w, h, c, nw, nh)?,
        }
    };
    let (left, top) = ((nw - s) / 2, (nh - s) / 2);
    let mut out = vec![0u8; c * s * s];
    for y in 0..s {
        let row = &resized[((top + y) * nw + left) * c..((top + y) * nw + left + s) * c];
        for (x, px) in row.chunks_exact(c).enumerate() {
            for (ch, &v) in px.iter().enumerate() {
                out[ch * s * s + y * s + x] = v;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downscale_1d_known_values() {
        // 4 -> 2: taps [3/7, 3/7, 1/7] and [1/7, 3/7, 3/7] (worked out by hand from Resample.c).
        let src = [0u8, 70, 140, 210];
        let out = resize_bilinear_pillow(&src, 4, 1, 1, 2, 1).unwrap();
        assert_eq!(out, vec![50, 160]);
        // Same along the vertical axis.
        let out = resize_bilinear_pillow(&src, 1, 4, 1, 1, 2).unwrap();
        assert_eq!(out, vec![50, 160]);
    }

    #[test]
    fn upscale_1d_known_values() {
        // 2 -> 4: centers 0.25, 0.75, 1.25, 1.75, support 1. Taps (normalised):
        // [1] on x=0; [0.75, 0.25]; [0.25, 0.75]; [1] on x=1 (edges clamp).
        let out = resize_bilinear_pillow(&[0, 100], 2, 1, 1, 4, 1).unwrap();
        assert_eq!(out, vec![0, 25, 75, 100]);
    }

    #[test]
    fn constant_image_stays_constant() {
        let src = vec![77u8; 31 * 17 * 3];
        for (nw, nh) in [(5, 9), (31, 17), (64, 40), (1, 1)] {
            let out = resize_bilinear_pillow(&src, 31, 17, 3, nw, nh).unwrap();
            assert!(out.iter().all(|&v| v == 77), "{nw}x{nh}");
        }
    }

    #[test]
    fn rejects_bad_buffers() {
        assert!(resize_bilinear_pillow(&[0; 5], 2, 2, 1, 1, 1).is_err());
        assert!(resize_bilinear_pillow(&[], 0, 0, 1, 1, 1).is_err());
        assert!(resize_bilinear_fast(&[0; 8], 2, 2, 2, 1, 1).is_err());
    }

    #[test]
    fn target_size_matches_python_rounding() {
        assert_eq!(shorter_side_size(227, 227, 224), (224, 224));
        assert_eq!(shorter_side_size(500, 375, 224), (299, 224)); // 298.67
        assert_eq!(shorter_side_size(256, 341, 224), (224, 298)); // 298.375
                                                                  // 3 * 224 / 2 = 336 exactly; 5 * 128 / 2 = 320; half-to-even: 2.5 -> 2.
        assert_eq!(shorter_side_size(2, 3, 224), (224, 336));
        assert_eq!(shorter_side_size(4, 5, 2), (2, 2)); // 2.5 -> 2
        assert_eq!(shorter_side_size(4, 7, 2), (2, 4)); // 3.5 -> 4
    }

    #[test]
    fn crop_offsets_and_chw_layout() {
        // 4 x 2 image, s = 2: no resize needed for height 2; width 4 -> (4, 2) keeps 4.
        // Pixel value encodes (x, y, c).
        let (w, h, c) = (4usize, 2usize, 3usize);
        let mut src = vec![0u8; w * h * c];
        for y in 0..h {
            for x in 0..w {
                for ch in 0..c {
                    src[(y * w + x) * c + ch] = (100 * ch + 10 * y + x) as u8;
                }
            }
        }
        let out = resize_crop_chw(&src, w, h, c, 2, Resampler::Pillow).unwrap();
        // left = (4 - 2) / 2 = 1.
        assert_eq!(
            out,
            vec![1, 2, 11, 12, 101, 102, 111, 112, 201, 202, 211, 212]
        );
    }

    fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (s >> 56) as u8
            })
            .collect()
    }

    /// The obviously-correct form of Resample.c: i64 accumulators, per-pixel indexing.
    fn reference(src: &[u8], w: usize, h: usize, c: usize, nw: usize, nh: usize) -> Vec<u8> {
        let pass =
            |src: &[u8], lines: usize, len: usize, stride: usize, step: usize, out_len: usize| {
                let co = precompute(len, out_len);
                let mut out = vec![0u8; lines * out_len * c];
                for l in 0..lines {
                    for (o, &(min, n)) in co.bounds.iter().enumerate() {
                        for ch in 0..c {
                            let mut ss = 1i64 << (PRECISION_BITS - 1);
                            for t in 0..n {
                                let v = src[l * stride + (min + t) * step + ch];
                                ss += i64::from(v) * i64::from(co.k[o * co.ksize + t]);
                            }
                            let v = if ss >= 1i64 << 30 {
                                255
                            } else if ss <= 0 {
                                0
                            } else {
                                (ss >> 22) as u8
                            };
                            out[(l * out_len + o) * c + ch] = v;
                        }
                    }
                }
                out
            };
        let hz = if nw != w {
            pass(src, h, w, w * c, c, nw)
        } else {
            src.to_vec()
        };
        if nh == h {
            return hz;
        }
        // Vertical pass on the transposed problem: lines are columns.
        let mut t = vec![0u8; hz.len()];
        for y in 0..h {
            for x in 0..nw {
                for ch in 0..c {
                    t[(x * h + y) * c + ch] = hz[(y * nw + x) * c + ch];
                }
            }
        }
        let v = pass(&t, nw, h, h * c, c, nh);
        let mut out = vec![0u8; nw * nh * c];
        for x in 0..nw {
            for y in 0..nh {
                for ch in 0..c {
                    out[(y * nw + x) * c + ch] = v[(x * nh + y) * c + ch];
                }
            }
        }
        out
    }

    #[test]
    fn matches_plain_reference_on_awkward_shapes() {
        let shapes = [
            (1, 1, 1, 1, 1),
            (1, 1, 3, 5, 2),
            (7, 1, 3, 2, 1),
            (1, 9, 4, 1, 4),
            (63, 17, 3, 31, 64),
            (227, 227, 3, 224, 224),
            (50, 40, 1, 13, 97),
            (33, 65, 4, 33, 20),
        ];
        for &(w, h, c, nw, nh) in &shapes {
            let src = pseudo_random(w * h * c, (w * 31 + h) as u64);
            let got = resize_bilinear_pillow(&src, w, h, c, nw, nh).unwrap();
            assert_eq!(
                got,
                reference(&src, w, h, c, nw, nh),
                "{w}x{h}x{c} -> {nw}x{nh}"
            );
        }
    }

    #[test]
    fn fast_image_resize_within_one_level_of_pillow() {
        for &(w, h, nw, nh) in &[
            (227, 227, 224, 224),
            (300, 256, 262, 224),
            (97, 61, 128, 80),
            (40, 30, 13, 7),
        ] {
            let src = pseudo_random(w * h * 3, (w * h) as u64);
            let a = resize_bilinear_pillow(&src, w, h, 3, nw, nh).unwrap();
            let b = resize_bilinear_fast(&src, w, h, 3, nw, nh).unwrap();
            let max = a.iter().zip(&b).map(|(x, y)| x.abs_diff(*y)).max().unwrap();
            assert!(max <= 1, "{w}x{h} -> {nw}x{nh}: max diff {max}");
        }
    }
}
