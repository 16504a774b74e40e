//! [`Format`]: a custom floating-point representation `(signed, e, m, bias)`.

use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;

use crate::FloatError;

/// Smallest unbiased exponent of a normal `f32`.
pub const F32_MIN_EXP: i32 = -126;
/// Largest unbiased exponent of a normal `f32`.
pub const F32_MAX_EXP: i32 = 127;

/// A custom floating-point format: an optional sign bit, `e` exponent bits,
/// `m` mantissa bits and an exponent `bias` (DESIGN §2, paper §IV-A).
///
/// A code is `[sign][E][M]` (most significant first), `width() = signed + e + m`
/// bits. `E = 0` is zero; `E in 1..=2^e-1` is the normal number
/// `(-1)^s * 2^(E - bias) * (1 + M / 2^m)`. There is no infinity, NaN or
/// subnormal.
///
/// Invariant (checked by [`Format::new`]): every non-zero value is a normal
/// `f32`, i.e. `1 - bias >= -126` and `2^e - 1 - bias <= 127`. Consequently
/// `e = 8` (255 binades) has no valid bias — an `f32` has only 254 normal
/// binades — and the widest usable exponent is `e = 7`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Format {
    signed: bool,
    exp_bits: u8,
    man_bits: u8,
    bias: i32,
}

impl Format {
    /// Largest exponent width accepted by the type (see the invariant above:
    /// no bias makes `e = 8` valid).
    pub const MAX_EXP_BITS: u8 = 8;
    /// Largest mantissa width (that of `f32`).
    pub const MAX_MAN_BITS: u8 = 23;

    /// Builds a format, checking `exp_bits in 1..=8`, `man_bits in 0..=23` and
    /// that the exponent range `[1 - bias, 2^e - 1 - bias]` lies inside the
    /// `f32` normal range `[-126, 127]`.
    pub fn new(signed: bool, exp_bits: u8, man_bits: u8, bias: i32) -> Result<Format, FloatError> {
        let spec = || spell(signed, exp_bits, man_bits, bias);
        let invalid = |reason: String| FloatError::InvalidFormat {
            spec: spec(),
            reason,
        };
        if !(1..=Self::MAX_EXP_BITS).contains(&exp_bits) {
            return Err(invalid(format!(
                "exponent bits {exp_bits} not in 1..={}",
                Self::MAX_EXP_BITS
            )));
        }
        if man_bits > Self::MAX_MAN_BITS {
            return Err(invalid(format!(
                "mantissa bits {man_bits} not in 0..={}",
                Self::MAX_MAN_BITS
            )));
        }
        let range = Self::bias_range(exp_bits);
        if !range.contains(&bias) {
            return Err(invalid(format!(
                "bias {bias} puts exponents [{}, {}] outside the f32 normal range [{F32_MIN_EXP}, {F32_MAX_EXP}] (valid biases for e={exp_bits}: {}..={})",
                1i64 - i64::from(bias),
                (1i64 << exp_bits) - 1 - i64::from(bias),
                range.start(),
                range.end()
            )));
        }
        Ok(Format {
            signed,
            exp_bits,
            man_bits,
            bias,
        })
    }

    /// The biases valid for `exp_bits` exponent bits: `2^e - 128 ..= 127`.
    /// Empty (start > end) for `e >= 8`.
    pub fn bias_range(exp_bits: u8) -> RangeInclusive<i32> {
        let top = (1i32 << exp_bits.min(30)) - 1;
        (top - F32_MAX_EXP)..=(1 - F32_MIN_EXP)
    }

    /// Whether codes carry a sign bit.
    pub fn signed(&self) -> bool {
        self.signed
    }

    /// Number of exponent bits `e` (1..=7 for any constructed format).
    pub fn exp_bits(&self) -> u8 {
        self.exp_bits
    }

    /// Number of mantissa bits `m` (0..=23).
    pub fn man_bits(&self) -> u8 {
        self.man_bits
    }

    /// The exponent bias: value exponent = `E - bias`.
    pub fn bias(&self) -> i32 {
        self.bias
    }

    /// Code width in bits: `signed + e + m` (1..=31).
    pub fn width(&self) -> u32 {
        u32::from(self.signed) + u32::from(self.exp_bits) + u32::from(self.man_bits)
    }

    /// Unbiased exponent of the smallest non-zero magnitude: `1 - bias`.
    pub fn min_exp(&self) -> i32 {
        1 - self.bias
    }

    /// Unbiased exponent of the largest magnitude: `2^e - 1 - bias`.
    pub fn max_exp(&self) -> i32 {
        (1i32 << self.exp_bits) - 1 - self.bias
    }

    /// Smallest non-zero magnitude, `Min = 2^(1 - bias)` (a normal `f32`).
    pub fn min(&self) -> f32 {
        f32::from_bits(self.min_bits())
    }

    /// Largest magnitude, `Max = 2^(2^e - 1 - bias) * (2 - 2^-m)`.
    pub fn max(&self) -> f32 {
        f32::from_bits(self.max_bits())
    }

    /// `f32` bit pattern of [`Format::min`].
    pub(crate) fn min_bits(&self) -> u32 {
        ((self.min_exp() + 127) as u32) << 23
    }

    /// `f32` bit pattern of [`Format::max`].
    pub(crate) fn max_bits(&self) -> u32 {
        let man = ((1u32 << self.man_bits) - 1) << (23 - u32::from(self.man_bits));
        (((self.max_exp() + 127) as u32) << 23) | man
    }

    /// Number of distinct codes, `2^width`.
    pub fn code_count(&self) -> u64 {
        1u64 << self.width()
    }
}

fn spell(signed: bool, e: u8, m: u8, bias: i32) -> String {
    let (s, n) = if signed { ('s', 1) } else { ('u', 0) };
    format!("{s}{n}e{e}m{m}b{bias}")
}

impl fmt::Display for Format {
    /// Spells the format as `s1e4m3b7` (signed) or `u0e3m2b3` (unsigned).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&spell(self.signed, self.exp_bits, self.man_bits, self.bias))
    }
}

impl FromStr for Format {
    type Err = FloatError;

    /// Parses the [`Display`](fmt::Display) spelling: `s1e<e>m<m>b<bias>` or
    /// `u0e<e>m<m>b<bias>`, bias possibly negative; then validates as
    /// [`Format::new`].
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason| FloatError::Parse {
            input: input.to_string(),
            reason,
        };
        let (signed, rest) = if let Some(r) = input.strip_prefix("s1e") {
            (true, r)
        } else if let Some(r) = input.strip_prefix("u0e") {
            (false, r)
        } else {
            return Err(err("must start with \"s1e\" or \"u0e\""));
        };
        let (e, rest) = rest.split_once('m').ok_or_else(|| err("missing 'm'"))?;
        let (m, b) = rest.split_once('b').ok_or_else(|| err("missing 'b'"))?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
        let b_digits = b.strip_prefix('-').unwrap_or(b);
        if !digits(e) || !digits(m) || !digits(b_digits) {
            return Err(err("fields must be decimal integers"));
        }
        let e: u8 = e.parse().map_err(|_| err("exponent bits out of range"))?;
        let m: u8 = m.parse().map_err(|_| err("mantissa bits out of range"))?;
        let b: i32 = b.parse().map_err(|_| err("bias out of range"))?;
        Format::new(signed, e, m, b)
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Format {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Format {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_max_and_width() {
        let f = Format::new(true, 4, 3, 7).unwrap();
        assert_eq!(f.width(), 8);
        assert_eq!(f.min(), 2f32.powi(-6));
        assert_eq!(f.max(), 2f32.powi(8) * 1.875);
        let u = Format::new(false, 3, 0, 3).unwrap();
        assert_eq!(u.width(), 3);
        assert_eq!(u.min(), 0.25);
        assert_eq!(u.max(), 16.0);
        let wide = Format::new(true, 7, 23, 0).unwrap();
        assert_eq!(wide.max(), f32::MAX);
        assert_eq!(wide.min(), 2.0);
        let low = Format::new(true, 7, 23, 127).unwrap();
        assert_eq!(low.min(), f32::MIN_POSITIVE);
    }

    #[test]
    fn validation() {
        assert!(Format::new(true, 0, 3, 0).is_err());
        assert!(Format::new(true, 9, 3, 0).is_err());
        assert!(Format::new(true, 4, 24, 7).is_err());
        assert!(Format::new(true, 8, 3, 127).is_err());
        assert!(Format::new(true, 8, 3, 128).is_err());
        assert!(Format::new(true, 7, 3, 128).is_err());
        assert!(Format::new(true, 7, 3, 0).is_ok());
        assert!(Format::new(true, 7, 3, -1).is_err());
        assert!(Format::new(true, 1, 0, 127).is_ok());
        assert!(Format::new(true, 1, 0, -126).is_ok());
        assert!(Format::new(true, 1, 0, -127).is_err());
        assert!(Format::bias_range(8).is_empty());
        assert_eq!(Format::bias_range(4), -112..=127);
    }

    #[test]
    fn display_and_parse() {
        let f = Format::new(true, 4, 3, 7).unwrap();
        assert_eq!(f.to_string(), "s1e4m3b7");
        let u = Format::new(false, 3, 2, 3).unwrap();
        assert_eq!(u.to_string(), "u0e3m2b3");
        let n = Format::new(true, 2, 0, -5).unwrap();
        assert_eq!(n.to_string(), "s1e2m0b-5");
        for x in [f, u, n] {
            assert_eq!(x.to_string().parse::<Format>().unwrap(), x);
        }
        for bad in [
            "",
            "s1e4m3",
            "s0e4m3b7",
            "x1e4m3b7",
            "s1e4m3b",
            "s1e+4m3b7",
            "s1e4m3b7x",
            "s1e300m3b7",
            "s1e8m3b7",
        ] {
            assert!(bad.parse::<Format>().is_err(), "{bad}");
        }
    }
}
