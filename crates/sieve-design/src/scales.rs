//! Per-output-channel power-of-two weight scales (an extension of the paper's
//! per-tensor format; setting [`crate::meta::SearchSettings::channel_scales`]).
//!
//! A weight tensor of shape `[c_out, ...]` gets one integer shift `s_c` per output
//! channel (slice along axis 0). The channel's values are stored as
//! `encode(w * 2^-s_c)` in the tensor's single custom-float format and decoded as
//! `decode(code) * 2^s_c` — exact in `f32`, because every stored shift lies in
//! [`sieve_nn::kernels::packed::shift_range`] of the format (the product stays a
//! normal, finite `f32`). The shifts align each channel's largest exponent with the
//! tensor's largest (`s_c = max_exp(channel) - max_exp(tensor) <= 0`), so the
//! exponent histogram the format is fitted to is that of the *shifted* values: for
//! weights from per-channel int8 models it spans ~8 octaves instead of the channel
//! scales' spread on top of that.
//!
//! The quantised value of a weight is therefore defined as
//! `decode(encode(f32(w * 2^-s))) * 2^s` with `s` = the channel's shift clamped into
//! the format's shift range, `f32(.)` = round to nearest of the exact product,
//! clamped to the finite range. [`quantize_scaled`] computes it through the very
//! decoder the packed model uses, so search, reference path and packed execution
//! agree bit for bit.

use crate::DesignError;
use sieve_float::{exponent_of, Format, PackedTensor};
use sieve_nn::kernels::packed::shift_range;
use sieve_nn::{PackedWeights, WeightSource};

/// The channel shifts of a weight tensor with `rows` output channels (axis 0), before
/// clamping to a format: `max_exp(channel) - max_exp(tensor)` (0 for an all-zero
/// channel). `None` when there is nothing to scale: fewer than 2 channels, a length
/// `rows` does not divide, no non-zero value, or all shifts 0.
pub fn channel_shifts(w: &[f32], rows: usize) -> Option<Vec<i32>> {
    if rows < 2 || w.is_empty() || !w.len().is_multiple_of(rows) {
        return None;
    }
    let cols = w.len() / rows;
    let maxes: Vec<Option<i32>> = w
        .chunks_exact(cols)
        .map(|row| row.iter().filter_map(|&x| exponent_of(x)).max())
        .collect();
    let top = maxes.iter().flatten().copied().max()?;
    let shifts: Vec<i32> = maxes.iter().map(|m| m.map_or(0, |e| e - top)).collect();
    shifts.iter().any(|&s| s != 0).then_some(shifts)
}

/// The stored shifts for format `f`: each channel shift clamped into
/// [`shift_range`]`(f)`.
pub fn shifts_for(base: &[i32], f: Format) -> Vec<i8> {
    let r = shift_range(f);
    base.iter()
        .map(|&s| s.clamp(*r.start(), *r.end()) as i8)
        .collect()
}

/// `w * 2^-s` per channel, rounded once to `f32` (exact unless it leaves the normal
/// range), clamped to the finite range. `shifts.len()` channels must divide `w`.
pub fn scaled_values(w: &[f32], shifts: &[i32]) -> Vec<f32> {
    let cols = w.len().checked_div(shifts.len()).unwrap_or(0).max(1);
    w.iter()
        .enumerate()
        .map(|(i, &x)| {
            let s = shifts.get(i / cols).copied().unwrap_or(0);
            let y = (f64::from(x) * 2f64.powi(-s)) as f32;
            if y.is_finite() {
                y
            } else {
                y.clamp(-f32::MAX, f32::MAX)
            }
        })
        .collect()
}

/// The values the exponent histogram of a scaled tensor is built from (the shifts
/// as they would be stored for a format with a wide shift range).
pub fn histogram_values(w: &[f32], base: &[i32]) -> Vec<f32> {
    let clamped: Vec<i32> = base
        .iter()
        .map(|&s| s.clamp(i32::from(i8::MIN), i32::from(i8::MAX)))
        .collect();
    scaled_values(w, &clamped)
}

/// Encodes a tensor with channel scales in format `f`: the packed codes of the
/// scaled values and the stored shifts.
pub fn encode_scaled(
    f: Format,
    w: &[f32],
    base: &[i32],
    name: &str,
) -> Result<(PackedTensor, Vec<i8>), DesignError> {
    let shifts = shifts_for(base, f);
    let wide: Vec<i32> = shifts.iter().map(|&s| i32::from(s)).collect();
    let p = PackedTensor::encode_from(f, &scaled_values(w, &wide)).map_err(|source| {
        DesignError::Float {
            tensor: name.to_string(),
            source,
        }
    })?;
    Ok((p, shifts))
}

/// The quantised values of a channel-scaled tensor of `shape` (axis 0 = channels):
/// encoded as [`encode_scaled`], decoded by [`PackedWeights`] exactly as a packed
/// variant decodes them.
pub fn quantize_scaled(
    f: Format,
    w: &[f32],
    shape: &[usize],
    base: &[i32],
    name: &str,
) -> Result<Vec<f32>, DesignError> {
    let (p, shifts) = encode_scaled(f, w, base, name)?;
    let pw = PackedWeights::with_shifts(shape.to_vec(), p, shifts)?;
    let mut out = vec![0.0; w.len()];
    pw.decode_into(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sieve_float::{quantize, ExpHistogram};

    /// A per-channel int8-like tensor: 16 channels of 64 values `q * 2^-c` with
    /// integer `|q| <= 127`, channel scales spread over 16 octaves.
    fn int8_like() -> (Vec<f32>, usize) {
        let rows = 16;
        let mut w = vec![];
        for c in 0..rows {
            for i in 0..64u32 {
                let h = (i ^ (c as u32 * 7919)).wrapping_mul(2654435761) >> 8;
                let q = (h % 255) as i32 - 127;
                w.push(q as f32 * 2f32.powi(-(c as i32)) / 128.0);
            }
        }
        (w, rows)
    }

    #[test]
    fn shifts_align_channel_maxima_and_need_fewer_exponent_bits() {
        let (w, rows) = int8_like();
        let base = channel_shifts(&w, rows).unwrap();
        assert_eq!(base.len(), rows);
        assert_eq!(base[0], 0);
        // Channel c is 2^-c times channel 0's scale.
        for (c, &s) in base.iter().enumerate() {
            assert!((s + c as i32).abs() <= 1, "channel {c}: shift {s}");
        }
        let raw = ExpHistogram::from_slice(&w);
        let shifted = ExpHistogram::from_slice(&histogram_values(&w, &base));
        // Per tensor the window must span ~16 + 8 octaves; aligned ~8.
        assert!(raw.e_max() >= 5, "raw e_max {}", raw.e_max());
        assert!(shifted.e_max() <= 4, "shifted e_max {}", shifted.e_max());
        assert!(shifted.e_max() + 1 < raw.e_max());
        // With the shifted fit at its e_max and m = 6, every channel keeps its values
        // to 7 significant bits (no channel flushed), unlike the raw fit at that e.
        let win = shifted.best_window(shifted.e_max()).unwrap();
        let f = Format::new(true, win.exp_bits, 6, win.bias).unwrap();
        let q = quantize_scaled(f, &w, &[rows, 64], &base, "t").unwrap();
        let mut flushed = 0;
        for (&x, &y) in w.iter().zip(&q) {
            if x != 0.0 && y == 0.0 {
                flushed += 1;
            }
            assert!((x - y).abs() <= x.abs() / 64.0 + 1e-30, "{x} -> {y}");
        }
        assert_eq!(flushed, 0);
        let raw_win = raw.best_window(shifted.e_max()).unwrap();
        let g = Format::new(true, raw_win.exp_bits, 6, raw_win.bias).unwrap();
        // The per-tensor format at the same e loses whole channels (flushed or
        // saturated values).
        let raw_lost = w
            .iter()
            .filter(|&&x| (x - quantize(g, x)).abs() > x.abs() / 64.0)
            .count();
        assert!(raw_lost > 128, "raw format lost only {raw_lost}");
    }

    #[test]
    fn quantized_values_are_decoded_codes_times_the_shift() {
        let (w, rows) = int8_like();
        let base = channel_shifts(&w, rows).unwrap();
        let f: Format = "s1e3m4b2".parse().unwrap();
        let q = quantize_scaled(f, &w, &[rows, 64], &base, "t").unwrap();
        for (i, (&x, &y)) in w.iter().zip(&q).enumerate() {
            let s = base[i / 64];
            let expect = quantize(f, x * 2f32.powi(-s)) * 2f32.powi(s);
            assert_eq!(y.to_bits(), expect.to_bits(), "element {i}");
        }
    }

    #[test]
    fn shifts_are_clamped_to_the_format() {
        // Bias 127: values down to 2^-126, so shifts below 0 are not allowed.
        let f: Format = "s1e3m2b127".parse().unwrap();
        assert_eq!(shifts_for(&[-5, 0, 3], f), vec![0, 0, 3]);
        let g: Format = "s1e7m2b0".parse().unwrap();
        // Max exponent 127: no positive shift.
        assert_eq!(shifts_for(&[-5, 0, 3], g), vec![-5, 0, 0]);
        // A channel too small to shift up fully gets the most negative allowed shift;
        // the product is still exact and normal.
        let w = [1e-38f32, 1e-38, 1.0, 0.5];
        let base = channel_shifts(&w, 2).unwrap();
        assert_eq!(base, vec![-127, 0]);
        let h: Format = "s1e3m2b10".parse().unwrap();
        assert_eq!(shifts_for(&base, h), vec![-117, 0]);
        let q = quantize_scaled(h, &w, &[2, 2], &base, "t").unwrap();
        // 1e-38 * 2^117 rounds up to Min = 2^-9; times 2^-117 = 2^-126.
        assert_eq!(q[0], f32::MIN_POSITIVE);
        // Channel 1 (shift 0) is the plain format (which saturates at Max = 0.21875).
        assert_eq!(&q[2..], &[quantize(h, 1.0), quantize(h, 0.5)]);
    }

    #[test]
    fn nothing_to_scale_gives_none() {
        assert_eq!(channel_shifts(&[1.0, 2.0], 1), None);
        assert_eq!(channel_shifts(&[1.0, 1.5, 1.0, 1.25], 2), None);
        assert_eq!(channel_shifts(&[0.0; 4], 2), None);
        assert_eq!(channel_shifts(&[1.0; 5], 2), None);
        assert_eq!(
            channel_shifts(&[1.0, 1.0, 0.0, 0.0, 0.25, 0.25], 3),
            Some(vec![0, 0, -2])
        );
    }
}
