//! [`PackedTensor`]: a flat tensor stored as bit-packed codes of one format.

use crate::codec::{find_nan, Consts};
use crate::decoder::Decoder;
use crate::pack::{pack, packed_len};
use crate::{FloatError, Format};

/// `len` values in `format`, bit-packed LSB-first into `bytes`
/// (exactly `ceil(len * width / 8)` bytes; see [`crate::pack()`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedTensor {
    format: Format,
    len: usize,
    bytes: Vec<u8>,
}

impl PackedTensor {
    /// Encodes `values` (rounding as [`crate::encode`]) and packs them.
    /// Errors with [`FloatError::NaN`] naming the first NaN's index; infinities
    /// saturate to `±Max`.
    pub fn encode_from(format: Format, values: &[f32]) -> Result<PackedTensor, FloatError> {
        if let Some(index) = find_nan(values) {
            return Err(FloatError::NaN {
                format: format.to_string(),
                index,
            });
        }
        let c = Consts::new(format);
        let codes: Vec<u32> = values.iter().map(|v| c.encode_bits(v.to_bits())).collect();
        let bytes = pack(format.width(), &codes)?;
        Ok(PackedTensor {
            format,
            len: values.len(),
            bytes,
        })
    }

    /// Reassembles a tensor from stored parts (e.g. read from a model
    /// package). Errors with [`FloatError::PackedLength`] unless `bytes` has
    /// exactly `ceil(len * width / 8)` bytes.
    pub fn from_parts(
        format: Format,
        len: usize,
        bytes: Vec<u8>,
    ) -> Result<PackedTensor, FloatError> {
        let expected = packed_len(format.width(), len).unwrap_or(usize::MAX);
        if bytes.len() != expected {
            return Err(FloatError::PackedLength {
                format: format.to_string(),
                len,
                expected,
                got: bytes.len(),
            });
        }
        Ok(PackedTensor { format, len, bytes })
    }

    /// The storage format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The packed bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Consumes the tensor, returning `(format, len, bytes)`.
    pub fn into_parts(self) -> (Format, usize, Vec<u8>) {
        (self.format, self.len, self.bytes)
    }

    /// A [`Decoder`] for this tensor's format.
    pub fn decoder(&self) -> Decoder {
        Decoder::new(self.format)
    }

    /// Decodes every element into `out`. Errors with
    /// [`FloatError::LengthMismatch`] unless `out.len() == self.len()`.
    pub fn decode_into(&self, out: &mut [f32]) -> Result<(), FloatError> {
        if out.len() != self.len {
            return Err(FloatError::LengthMismatch {
                what: "PackedTensor::decode_into output",
                expected: self.len,
                got: out.len(),
            });
        }
        self.decoder().decode_packed_range(&self.bytes, 0, out)
    }

    /// Decodes elements `start .. start + out.len()` with a caller-held
    /// decoder (built for this tensor's format; a decoder of another format
    /// decodes the bits as that format).
    pub fn decode_range(
        &self,
        decoder: &Decoder,
        start: usize,
        out: &mut [f32],
    ) -> Result<(), FloatError> {
        let end = start.saturating_add(out.len());
        if end > self.len {
            return Err(FloatError::LengthMismatch {
                what: "PackedTensor::decode_range end",
                expected: self.len,
                got: end,
            });
        }
        decoder.decode_packed_range(&self.bytes, start, out)
    }

    /// Decodes every element into a new vector.
    pub fn to_vec(&self) -> Vec<f32> {
        let mut out = vec![0.0; self.len];
        // Lengths match by construction.
        let _ = self.decode_into(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let fmt: Format = "s1e3m2b4".parse().unwrap();
        let xs = [0.5f32, -1.25, 3.0, 0.0, -0.0, 100.0, 1e-9];
        let t = PackedTensor::encode_from(fmt, &xs).unwrap();
        assert_eq!(t.len(), 7);
        assert_eq!(t.bytes().len(), 6);
        let back = t.to_vec();
        for (x, y) in xs.iter().zip(&back) {
            assert_eq!(crate::quantize(fmt, *x).to_bits(), y.to_bits());
        }
        let mut two = [0f32; 2];
        t.decode_range(&t.decoder(), 1, &mut two).unwrap();
        assert_eq!(two, [back[1], back[2]]);
        assert!(t.decode_range(&t.decoder(), 6, &mut two).is_err());
        assert!(t.decode_into(&mut two).is_err());
        assert!(matches!(
            PackedTensor::encode_from(fmt, &[1.0, f32::NAN]),
            Err(FloatError::NaN { index: 1, .. })
        ));
        let (f, n, b) = t.clone().into_parts();
        assert_eq!(PackedTensor::from_parts(f, n, b.clone()).unwrap(), t);
        assert!(PackedTensor::from_parts(f, n + 3, b).is_err());
    }
}
