//! The SIEVE custom floating-point codec (DESIGN §2, paper §IV-A).
//!
//! - [`Format`]: `(signed, e, m, bias)`, spelled `s1e4m3b7` / `u0e3m2b3`.
//! - [`encode`] / [`decode`] / [`quantize`] and their slice versions: `f32`
//!   <-> code, round-to-nearest-even on the code, saturation at `Max`,
//!   flush below `Min/2`.
//! - [`pack()`] / [`unpack`]: codes of width 1..=32, LSB-first bit stream.
//! - [`Decoder`], [`decode_packed`], [`decode_packed_range`], [`PackedTensor`]:
//!   fast table / bit-arithmetic decoding of packed streams.
//! - [`ExpHistogram`], [`fit`]: choosing a format for a tensor.
//!
//! No I/O. See `docs/CODEC.md` for the rules and the benchmark figures.
//!
//! ```
//! use sieve_float::{quantize, ExpHistogram, Format, PackedTensor, fit};
//!
//! let f: Format = "s1e4m3b7".parse()?;
//! assert_eq!(quantize(f, 1.0625), 1.0); // tie -> even mantissa
//! assert_eq!(quantize(f, 1e6), f.max()); // saturates at Max = 480
//!
//! let weights = [0.02f32, -0.013, 0.0071, 0.05];
//! let hist = ExpHistogram::from_slice(&weights);
//! let g = fit(&hist, 3, true)?; // e_max exponent bits, best bias
//! let packed = PackedTensor::encode_from(g, &weights)?;
//! let mut back = [0f32; 4];
//! packed.decode_into(&mut back)?;
//! assert_eq!(back[0], quantize(g, 0.02));
//! # Ok::<(), sieve_float::FloatError>(())
//! ```
#![warn(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod codec;
mod decoder;
mod error;
mod fit;
mod format;
mod pack;
mod packed;

pub use codec::{
    decode, decode_slice, encode, encode_slice, find_nan, quantize, quantize_slice, try_encode,
};
pub use decoder::{decode_packed, decode_packed_range, Decoder, TABLE_MAX_WIDTH};
pub use error::FloatError;
pub use fit::{
    exponent_of, fit, is_non_negative, ExpHistogram, Window, E_MAX_COVERAGE, HIST_MAX_EXP,
    HIST_MIN_EXP, MAX_FIT_EXP_BITS, MIN_CANDIDATE_COVERAGE,
};
pub use format::{Format, F32_MAX_EXP, F32_MIN_EXP};
pub use pack::{pack, packed_len, unpack, unpack_range};
pub use packed::PackedTensor;
