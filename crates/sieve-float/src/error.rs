//! The crate's error type.

use thiserror::Error;

/// Everything that can go wrong in `sieve-float`.
///
/// Each variant carries the format, width, length or index involved so that a
/// caller can report it without extra context.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FloatError {
    /// A `(signed, e, m, bias)` combination that is not a valid [`crate::Format`].
    #[error("invalid format {spec}: {reason}")]
    InvalidFormat {
        /// The rejected format, spelled like `s1e4m3b7`.
        spec: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A format string that does not parse.
    #[error("cannot parse format {input:?}: {reason}")]
    Parse {
        /// The text that was given.
        input: String,
        /// What was wrong with it.
        reason: &'static str,
    },
    /// A packing width outside `1..=32`.
    #[error("invalid code width {width} (must be 1..=32)")]
    InvalidWidth {
        /// The rejected width in bits.
        width: u32,
    },
    /// A packed byte stream shorter than the elements requested from it.
    #[error("packed input too short: {count} codes of {width} bits from element {start} need {needed} bytes, got {got}")]
    ShortInput {
        /// Code width in bits.
        width: u32,
        /// First element requested.
        start: usize,
        /// Number of elements requested.
        count: usize,
        /// Bytes required.
        needed: usize,
        /// Bytes available.
        got: usize,
    },
    /// A packed byte stream whose length does not match its element count.
    #[error("packed tensor of {len} codes in format {format} needs {expected} bytes, got {got}")]
    PackedLength {
        /// The format, spelled like `s1e4m3b7`.
        format: String,
        /// Number of elements.
        len: usize,
        /// Bytes the elements need.
        expected: usize,
        /// Bytes given.
        got: usize,
    },
    /// Two slices that must have the same length do not.
    #[error("length mismatch in {what}: expected {expected}, got {got}")]
    LengthMismatch {
        /// Which call / argument.
        what: &'static str,
        /// Required length.
        expected: usize,
        /// Given length.
        got: usize,
    },
    /// A NaN given to a checked encoder (`try_encode`, `PackedTensor::encode_from`).
    #[error("cannot encode NaN at index {index} in format {format}")]
    NaN {
        /// The format, spelled like `s1e4m3b7`.
        format: String,
        /// Position of the NaN in its slice (0 for a scalar).
        index: usize,
    },
    /// A requested exponent width for which no valid bias exists.
    #[error("no window of {exp_bits} exponent bits fits the f32 normal range")]
    NoWindow {
        /// The exponent width asked for.
        exp_bits: u8,
    },
}
