//! Scalar and slice encode / decode / quantize by `f32` bit manipulation.
//!
//! Encoding mirrors the paper's compressor engine: round the `f32` mantissa to
//! `m` bits (nearest, ties to the even *code*), let a carry ripple into the
//! exponent, then compare against the `Min/2`, `Min` and `Max` constants.
//! Decoding mirrors the decompressor: sign shift, adjusted bias, exponent
//! mask/shift, mantissa shift, building the `f32` bit pattern directly.
//! No `f64`, no `powf`; every function here is branch-free per element so
//! the slice loops vectorise.

use crate::{FloatError, Format};

/// Per-format constants of the compressor and decompressor engines
/// (the paper's "constant calculator").
///
/// The hot functions work on the absolute `f32` pattern `a <= 0x7fff_ffff`
/// as `i32` (so SIMD can use signed compares) and use one shift by a
/// loop-invariant amount at most, so the slice loops vectorise.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Consts {
    /// `i32::MIN` bit for signed formats, 0 otherwise.
    sign_keep: i32,
    /// Whether negative inputs become +0 (unsigned formats).
    unsigned: bool,
    /// Sign bit of a code (0 for unsigned formats).
    code_sign: u32,
    /// `23 - m`: how far the code mantissa sits from the `f32` mantissa.
    man_shift: u32,
    /// Added before truncation: `2^(shift-1) - 1` (0 when `m = 23`).
    round_bias: i32,
    /// The `f32` bit that becomes the code's lowest bit (0 when `m = 23`).
    tie_bit: i32,
    /// `tie_bit` when `m = 0` and `bias` and 127 differ in parity (the `f32`
    /// exponent LSB is then the opposite of the code's `E` LSB), else 0.
    tie_flip: i32,
    /// Keeps the `f32` bits that survive rounding.
    keep_mask: i32,
    /// `f32` bits of `Min`, `Min/2` and `Max`.
    min_bits: i32,
    half_min_bits: i32,
    max_bits: i32,
    /// `(bias - 127) << 23`: turns an `f32` exponent field into `E`.
    enc_adj: i32,
    /// `(127 - bias) << 23`: turns `E` into an `f32` exponent field.
    dec_adj: u32,
    /// Magnitude code of `Min` (`1 << m`): smaller magnitudes have `E = 0`.
    min_code: u32,
    /// `2^(e+m) - 1`: the magnitude bits of a code.
    mag_mask: u32,
}

impl Consts {
    pub(crate) fn new(f: Format) -> Consts {
        let m = u32::from(f.man_bits());
        let e = u32::from(f.exp_bits());
        let shift = 23 - m;
        let min_bits = f.min_bits() as i32;
        let tie_bit = if shift > 0 { 1i32 << shift } else { 0 };
        let flip = m == 0 && (f.bias() - 127) & 1 != 0;
        Consts {
            sign_keep: if f.signed() { i32::MIN } else { 0 },
            unsigned: !f.signed(),
            code_sign: if f.signed() { 1 << (e + m) } else { 0 },
            man_shift: shift,
            round_bias: if shift > 0 { (1 << (shift - 1)) - 1 } else { 0 },
            tie_bit,
            tie_flip: if flip { tie_bit } else { 0 },
            keep_mask: !((1i32 << shift) - 1),
            min_bits,
            half_min_bits: (f32::from_bits(min_bits as u32) * 0.5).to_bits() as i32,
            max_bits: f.max_bits() as i32,
            enc_adj: (f.bias() - 127) << 23,
            dec_adj: ((127 - f.bias()) << 23) as u32,
            min_code: 1 << m,
            mag_mask: (1 << (e + m)) - 1,
        }
    }

    /// Quantized absolute `f32` pattern and the all-ones/zero mask of
    /// results that must be +0 (NaN, negative input to an unsigned format).
    #[inline(always)]
    fn quantize_abs(&self, bits: u32) -> (i32, i32) {
        let bits = bits as i32;
        let a = bits & i32::MAX;
        // Mantissa rounding: nearest, ties to the even code; may carry into
        // the exponent field. Wraps (harmlessly) only for NaN.
        let odd = ((a ^ self.tie_flip) & self.tie_bit != 0) as i32;
        let r = a.wrapping_add(self.round_bias).wrapping_add(odd) & self.keep_mask;
        let mag = if r > self.max_bits { self.max_bits } else { r };
        let small = if a >= self.half_min_bits {
            self.min_bits
        } else {
            0
        };
        let mag = if a < self.min_bits { small } else { mag };
        let nan = a > 0x7f80_0000;
        let neg_unsigned = self.unsigned && bits < 0;
        let zero = if nan || neg_unsigned { 0 } else { -1 };
        (mag, zero)
    }

    #[inline(always)]
    pub(crate) fn quantize_bits(&self, bits: u32) -> u32 {
        let (mag, keep) = self.quantize_abs(bits);
        (((bits as i32 & self.sign_keep) | mag) & keep) as u32
    }

    #[inline(always)]
    pub(crate) fn encode_bits(&self, bits: u32) -> u32 {
        let (mag, keep) = self.quantize_abs(bits);
        let code = (mag.wrapping_add(self.enc_adj) as u32) >> self.man_shift;
        let code = if mag == 0 { 0 } else { code };
        let sign = if (bits as i32) < 0 { self.code_sign } else { 0 };
        (sign | code) & keep as u32
    }

    #[inline(always)]
    pub(crate) fn decode_bits(&self, code: u32) -> u32 {
        let mag = code & self.mag_mask;
        let normal = (mag << self.man_shift).wrapping_add(self.dec_adj);
        let normal = if mag < self.min_code { 0 } else { normal };
        let sign = if code & self.code_sign != 0 {
            0x8000_0000
        } else {
            0
        };
        sign | normal
    }

    #[inline(always)]
    pub(crate) fn decode(&self, code: u32) -> f32 {
        f32::from_bits(self.decode_bits(code))
    }
}

/// Encodes `x` into a code of `fmt.width()` bits (in the low bits of the result).
///
/// Rounding (DESIGN §2): the mantissa is rounded to `m` bits, nearest, ties to
/// the candidate whose code has a 0 lowest bit (mantissa LSB, or `E`'s LSB when
/// `m = 0`); a carry increments the exponent. `|x| >= Max` after rounding
/// saturates to `Max` (infinities included); `Min/2 <= |x| < Min` gives `Min`;
/// `|x| < Min/2` gives zero. In a signed format the sign is always kept, so
/// `-0.0` and tiny negatives give `-0`. An unsigned format stores `max(x, 0)`
/// (negatives give `+0`). NaN encodes as `+0` (code 0); use [`try_encode`] to
/// reject it instead.
#[inline]
pub fn encode(fmt: Format, x: f32) -> u32 {
    Consts::new(fmt).encode_bits(x.to_bits())
}

/// Like [`encode`] but returns [`FloatError::NaN`] for a NaN input.
/// Infinities saturate to `±Max` as in [`encode`].
pub fn try_encode(fmt: Format, x: f32) -> Result<u32, FloatError> {
    if x.is_nan() {
        return Err(FloatError::NaN {
            format: fmt.to_string(),
            index: 0,
        });
    }
    Ok(encode(fmt, x))
}

/// Decodes the low `fmt.width()` bits of `code` (higher bits are ignored).
/// `E = 0` decodes to `±0` whatever the mantissa bits; every other code to the
/// exact normal `f32` `(-1)^s * 2^(E - bias) * (1 + M / 2^m)`.
#[inline]
pub fn decode(fmt: Format, code: u32) -> f32 {
    Consts::new(fmt).decode(code)
}

/// `decode(fmt, encode(fmt, x))`, computed without forming the code: the value
/// of the representable number nearest to `x` under the rules of [`encode`].
#[inline]
pub fn quantize(fmt: Format, x: f32) -> f32 {
    f32::from_bits(Consts::new(fmt).quantize_bits(x.to_bits()))
}

/// Encodes `src` into `dst` element-wise, as [`encode`].
/// Errors with [`FloatError::LengthMismatch`] if the lengths differ.
pub fn encode_slice(fmt: Format, src: &[f32], dst: &mut [u32]) -> Result<(), FloatError> {
    check_len("encode_slice", src.len(), dst.len())?;
    let c = Consts::new(fmt);
    for (d, s) in dst.iter_mut().zip(src) {
        *d = c.encode_bits(s.to_bits());
    }
    Ok(())
}

/// Decodes `src` into `dst` element-wise, as [`decode`].
/// Errors with [`FloatError::LengthMismatch`] if the lengths differ.
pub fn decode_slice(fmt: Format, src: &[u32], dst: &mut [f32]) -> Result<(), FloatError> {
    check_len("decode_slice", src.len(), dst.len())?;
    let c = Consts::new(fmt);
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = c.decode(s);
    }
    Ok(())
}

/// Replaces every element of `xs` by [`quantize`] of it, in place. This is the
/// activation reformatting done at every layer output during speculation.
pub fn quantize_slice(fmt: Format, xs: &mut [f32]) {
    let c = Consts::new(fmt);
    for x in xs.iter_mut() {
        *x = f32::from_bits(c.quantize_bits(x.to_bits()));
    }
}

/// Index of the first NaN in `xs`, if any.
pub fn find_nan(xs: &[f32]) -> Option<usize> {
    xs.iter().position(|x| x.is_nan())
}

fn check_len(what: &'static str, expected: usize, got: usize) -> Result<(), FloatError> {
    if expected == got {
        Ok(())
    } else {
        Err(FloatError::LengthMismatch {
            what,
            expected,
            got,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(s: &str) -> Format {
        s.parse().unwrap()
    }

    #[test]
    fn e4m3_basics() {
        let fmt = f("s1e4m3b7");
        assert_eq!(encode(fmt, 1.0), 7 << 3);
        assert_eq!(decode(fmt, 7 << 3), 1.0);
        assert_eq!(quantize(fmt, 1.0625), 1.0); // tie between 1.0 (M=0) and 1.125 (M=1)
        assert_eq!(quantize(fmt, 1.1875), 1.25); // tie between 1.125 (M=1) and 1.25 (M=2)
        assert_eq!(quantize(fmt, 1.99), 2.0); // carry into the exponent
        assert_eq!(quantize(fmt, 1e9), 480.0);
        assert_eq!(quantize(fmt, f32::NEG_INFINITY), -480.0);
        assert_eq!(quantize(fmt, 2f32.powi(-7)), 2f32.powi(-6)); // Min/2 -> Min
        assert_eq!(quantize(fmt, 0.99 * 2f32.powi(-7)), 0.0);
        assert!(quantize(fmt, -1e-30).is_sign_negative());
        assert_eq!(quantize(fmt, -1e-30), 0.0);
        assert_eq!(encode(fmt, -0.0), 1 << 7);
        assert_eq!(encode(fmt, f32::NAN), 0);
        assert!(try_encode(fmt, f32::NAN).is_err());
        assert_eq!(try_encode(fmt, 3.0), Ok(encode(fmt, 3.0)));
    }

    #[test]
    fn m0_tie_uses_code_parity() {
        // m = 0: values are powers of two; 3 * 2^k is the tie between 2^(k+1)
        // and 2^(k+2). Bias 7 (odd, same parity as 127) and bias 6 (even).
        let odd = f("u0e3m0b3"); // E = k + 3
                                 // 3.0 between 2 (E=4, even) and 4 (E=5): -> 2.
        assert_eq!(quantize(odd, 3.0), 2.0);
        // 6.0 between 4 (E=5) and 8 (E=6, even): -> 8.
        assert_eq!(quantize(odd, 6.0), 8.0);
        let even = f("u0e3m0b2"); // E = k + 2
                                  // 3.0 between 2 (E=3) and 4 (E=4, even) -> 4.
        assert_eq!(quantize(even, 3.0), 4.0);
        assert_eq!(quantize(even, 6.0), 4.0);
    }

    #[test]
    fn unsigned_clamps_negatives() {
        let u = f("u0e3m2b3");
        assert_eq!(encode(u, -5.0), 0);
        assert_eq!(quantize(u, -5.0).to_bits(), 0);
        assert_eq!(quantize(u, -0.0).to_bits(), 0);
        assert_eq!(quantize(u, 1e9), u.max());
    }

    #[test]
    fn slices_match_scalar() {
        let fmt = f("s1e5m2b20");
        let xs: Vec<f32> = (0..1000).map(|i| (i as f32 - 500.0) * 0.37e-3).collect();
        let mut codes = vec![0; xs.len()];
        encode_slice(fmt, &xs, &mut codes).unwrap();
        let mut back = vec![0.0; xs.len()];
        decode_slice(fmt, &codes, &mut back).unwrap();
        let mut q = xs.clone();
        quantize_slice(fmt, &mut q);
        for i in 0..xs.len() {
            assert_eq!(codes[i], encode(fmt, xs[i]));
            assert_eq!(back[i].to_bits(), q[i].to_bits());
        }
        assert!(encode_slice(fmt, &xs, &mut codes[1..]).is_err());
    }
}
