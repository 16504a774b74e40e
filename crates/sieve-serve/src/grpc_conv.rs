//! Conversions between protocol tensors and the gRPC messages (typed `contents` or
//! `raw_*_contents`), shared by the gRPC server and client.

use crate::error::{Result, ServeError};
use crate::grpc::InferTensorContents;
use crate::tensor::{element_count, DataType, InferTensor};
use bytes::Bytes;
use std::time::Duration;

/// Raw little-endian bytes from typed gRPC contents for `dt`. Errors name the tensor (wrong
/// contents field, value out of range, FP16/BF16 not given raw).
pub fn contents_to_raw(name: &str, dt: DataType, c: &InferTensorContents) -> Result<Bytes> {
    let range = |i: usize| {
        ServeError::invalid(format!(
            "tensor '{name}': element {i} is out of range for {dt}"
        ))
    };
    let mut raw = Vec::new();
    macro_rules! narrow {
        ($src:expr, $t:ty) => {
            for (i, v) in $src.iter().enumerate() {
                let x = <$t>::try_from(*v).map_err(|_| range(i))?;
                raw.extend_from_slice(&x.to_le_bytes());
            }
        };
    }
    match dt {
        DataType::Bool => raw.extend(c.bool_contents.iter().map(|&b| u8::from(b))),
        DataType::I8 => narrow!(c.int_contents, i8),
        DataType::I16 => narrow!(c.int_contents, i16),
        DataType::I32 => narrow!(c.int_contents, i32),
        DataType::I64 => narrow!(c.int64_contents, i64),
        DataType::U8 => narrow!(c.uint_contents, u8),
        DataType::U16 => narrow!(c.uint_contents, u16),
        DataType::U32 => narrow!(c.uint_contents, u32),
        DataType::U64 => narrow!(c.uint64_contents, u64),
        DataType::F32 => c
            .fp32_contents
            .iter()
            .for_each(|v| raw.extend_from_slice(&v.to_le_bytes())),
        DataType::F64 => c
            .fp64_contents
            .iter()
            .for_each(|v| raw.extend_from_slice(&v.to_le_bytes())),
        DataType::Bytes => {
            for (i, b) in c.bytes_contents.iter().enumerate() {
                let len = u32::try_from(b.len()).map_err(|_| range(i))?;
                raw.extend_from_slice(&len.to_le_bytes());
                raw.extend_from_slice(b);
            }
        }
        DataType::F16 | DataType::BF16 => {
            return Err(ServeError::invalid(format!(
                "tensor '{name}': {dt} data must be sent in raw contents"
            )))
        }
    }
    Ok(Bytes::from(raw))
}

/// Build a tensor from a gRPC tensor description, taking its data from `raw` if given, else
/// from typed `contents`.
pub fn tensor_from_grpc(
    name: &str,
    datatype: &str,
    shape: &[i64],
    contents: Option<&InferTensorContents>,
    raw: Option<&[u8]>,
) -> Result<InferTensor> {
    let dt = DataType::from_name(datatype).ok_or_else(|| {
        ServeError::invalid(format!("tensor '{name}': unknown datatype '{datatype}'"))
    })?;
    let shape = crate::tensor::shape_from_i64(name, shape)?;
    let data = match (raw, contents) {
        (Some(r), _) => Bytes::copy_from_slice(r),
        (None, Some(c)) => contents_to_raw(name, dt, c)?,
        (None, None) => {
            // A zero-element tensor legitimately has no contents.
            if element_count(name, &shape)? == 0 {
                Bytes::new()
            } else {
                return Err(ServeError::invalid(format!(
                    "tensor '{name}' has no contents"
                )));
            }
        }
    };
    InferTensor::from_raw(name, dt, shape, data)
}

/// Parse a `grpc-timeout` header value (`<digits><unit>`, unit one of H M S m u n).
pub fn parse_grpc_timeout(v: &str) -> Option<Duration> {
    if v.len() < 2 || v.len() > 9 {
        return None;
    }
    let (digits, unit) = v.split_at(v.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn typed_contents_to_tensor() {
        let c = InferTensorContents {
            fp32_contents: vec![1.0, 2.0],
            ..Default::default()
        };
        let t = tensor_from_grpc("x", "FP32", &[2], Some(&c), None).unwrap();
        assert_eq!(t.to_f32().unwrap(), vec![1.0, 2.0]);
        let c = InferTensorContents {
            uint_contents: vec![300],
            ..Default::default()
        };
        assert!(tensor_from_grpc("x", "UINT8", &[1], Some(&c), None).is_err());
        assert!(tensor_from_grpc("x", "FP32", &[3], None, Some(&[0u8; 8])).is_err());
        assert!(tensor_from_grpc("x", "FP32", &[1], None, None).is_err());
    }

    #[test]
    fn grpc_timeout() {
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("3S"), Some(Duration::from_secs(3)));
        assert_eq!(parse_grpc_timeout("3x"), None);
        assert_eq!(parse_grpc_timeout("m"), None);
    }
}
