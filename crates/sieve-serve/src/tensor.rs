//! Protocol tensors: the Open Inference Protocol datatypes and a tensor held as raw
//! little-endian bytes, the representation shared by the binary extension, gRPC
//! `raw_*_contents` and the batcher.

use crate::error::{Result, ServeError};
use bytes::Bytes;
use serde_json::Value;

/// An Open Inference Protocol tensor datatype.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DataType {
    /// `BOOL`, one byte per element (0 or 1).
    Bool,
    /// `UINT8`.
    U8,
    /// `UINT16`.
    U16,
    /// `UINT32`.
    U32,
    /// `UINT64`.
    U64,
    /// `INT8`.
    I8,
    /// `INT16`.
    I16,
    /// `INT32`.
    I32,
    /// `INT64`.
    I64,
    /// `FP16` (IEEE half).
    F16,
    /// `BF16` (bfloat16).
    BF16,
    /// `FP32`.
    F32,
    /// `FP64`.
    F64,
    /// `BYTES`: variable-length byte strings; raw form is a 4-byte little-endian length
    /// before each element.
    Bytes,
}

impl DataType {
    /// Every datatype, in protocol order.
    pub const ALL: [DataType; 14] = [
        DataType::Bool,
        DataType::U8,
        DataType::U16,
        DataType::U32,
        DataType::U64,
        DataType::I8,
        DataType::I16,
        DataType::I32,
        DataType::I64,
        DataType::F16,
        DataType::BF16,
        DataType::F32,
        DataType::F64,
        DataType::Bytes,
    ];

    /// The protocol name (`"FP32"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DataType::Bool => "BOOL",
            DataType::U8 => "UINT8",
            DataType::U16 => "UINT16",
            DataType::U32 => "UINT32",
            DataType::U64 => "UINT64",
            DataType::I8 => "INT8",
            DataType::I16 => "INT16",
            DataType::I32 => "INT32",
            DataType::I64 => "INT64",
            DataType::F16 => "FP16",
            DataType::BF16 => "BF16",
            DataType::F32 => "FP32",
            DataType::F64 => "FP64",
            DataType::Bytes => "BYTES",
        }
    }

    /// Parse a protocol name; `None` if it is not one.
    pub fn from_name(name: &str) -> Option<DataType> {
        DataType::ALL.into_iter().find(|d| d.name() == name)
    }

    /// Bytes per element, `None` for `BYTES`.
    pub fn size(self) -> Option<usize> {
        Some(match self {
            DataType::Bool | DataType::U8 | DataType::I8 => 1,
            DataType::U16 | DataType::I16 | DataType::F16 | DataType::BF16 => 2,
            DataType::U32 | DataType::I32 | DataType::F32 => 4,
            DataType::U64 | DataType::I64 | DataType::F64 => 8,
            DataType::Bytes => return None,
        })
    }
}

impl std::fmt::Display for DataType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A named tensor as raw bytes: row-major, little-endian, no padding; for `BYTES` each element
/// is a 4-byte little-endian length followed by its bytes.
///
/// Invariant (checked by every constructor): `data` holds exactly `shape.iter().product()`
/// elements of `datatype`.
#[derive(Clone, Debug, PartialEq)]
pub struct InferTensor {
    /// Tensor name (the model's input or output name).
    pub name: String,
    /// Element type.
    pub datatype: DataType,
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Raw contents.
    pub data: Bytes,
}

/// Product of `shape`, or an error naming the tensor if it overflows.
pub fn element_count(name: &str, shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| {
            ServeError::invalid(format!(
                "tensor '{name}': shape {shape:?} has too many elements"
            ))
        })
}

/// Convert protocol dimensions (`i64`) to sizes, rejecting negative ones.
pub fn shape_from_i64(name: &str, dims: &[i64]) -> Result<Vec<usize>> {
    dims.iter()
        .map(|&d| {
            usize::try_from(d).map_err(|_| {
                ServeError::invalid(format!(
                    "tensor '{name}': shape {dims:?} has a negative dimension"
                ))
            })
        })
        .collect()
}

impl InferTensor {
    /// A tensor from raw bytes, checking that their length matches shape and datatype.
    pub fn from_raw(
        name: impl Into<String>,
        datatype: DataType,
        shape: Vec<usize>,
        data: Bytes,
    ) -> Result<InferTensor> {
        let name = name.into();
        let count = element_count(&name, &shape)?;
        match datatype.size() {
            Some(size) => {
                let expected = count.checked_mul(size).ok_or_else(|| {
                    ServeError::invalid(format!("tensor '{name}': shape {shape:?} is too large"))
                })?;
                if data.len() != expected {
                    return Err(ServeError::invalid(format!(
                        "tensor '{name}': {} bytes of data, but shape {shape:?} of {datatype} needs {expected}",
                        data.len()
                    )));
                }
            }
            None => {
                let found = count_bytes_elements(&name, &data)?;
                if found != count {
                    return Err(ServeError::invalid(format!(
                        "tensor '{name}': {found} BYTES elements, but shape {shape:?} needs {count}"
                    )));
                }
            }
        }
        Ok(InferTensor {
            name,
            datatype,
            shape,
            data,
        })
    }

    /// An `FP32` tensor from values; errors if `values.len()` does not match `shape`.
    pub fn from_f32(name: impl Into<String>, shape: Vec<usize>, values: &[f32]) -> Result<Self> {
        let mut raw = Vec::with_capacity(values.len() * 4);
        for v in values {
            raw.extend_from_slice(&v.to_le_bytes());
        }
        InferTensor::from_raw(name, DataType::F32, shape, Bytes::from(raw))
    }

    /// Number of elements.
    pub fn element_count(&self) -> usize {
        self.shape.iter().product()
    }

    /// The values of an `FP32` tensor; an error naming the tensor for other datatypes.
    pub fn to_f32(&self) -> Result<Vec<f32>> {
        if self.datatype != DataType::F32 {
            return Err(ServeError::invalid(format!(
                "tensor '{}' is {}, expected FP32",
                self.name, self.datatype
            )));
        }
        Ok(self
            .data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    /// Error if a floating-point tensor holds NaN or an infinity (other datatypes always pass).
    pub fn check_finite(&self) -> Result<()> {
        let bad = match self.datatype {
            DataType::F32 => self
                .data
                .chunks_exact(4)
                .position(|c| !f32::from_le_bytes([c[0], c[1], c[2], c[3]]).is_finite()),
            DataType::F64 => self.data.chunks_exact(8).position(|c| {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                !f64::from_le_bytes(b).is_finite()
            }),
            DataType::F16 => self
                .data
                .chunks_exact(2)
                .position(|c| !half::f16::from_le_bytes([c[0], c[1]]).is_finite()),
            DataType::BF16 => self
                .data
                .chunks_exact(2)
                .position(|c| !half::bf16::from_le_bytes([c[0], c[1]]).is_finite()),
            _ => None,
        };
        match bad {
            Some(i) => Err(ServeError::invalid(format!(
                "tensor '{}': element {i} is NaN or infinite; this model accepts finite values only",
                self.name
            ))),
            None => Ok(()),
        }
    }

    /// The values as JSON numbers (booleans for `BOOL`, strings for `BYTES`, lossy UTF-8),
    /// flattened row-major, as the REST JSON encoding wants them.
    pub fn to_json_values(&self) -> Vec<Value> {
        let d = &self.data;
        macro_rules! nums {
            ($t:ty, $n:expr) => {
                d.chunks_exact($n)
                    .map(|c| {
                        let mut b = [0u8; $n];
                        b.copy_from_slice(c);
                        Value::from(<$t>::from_le_bytes(b))
                    })
                    .collect()
            };
        }
        match self.datatype {
            DataType::Bool => d.iter().map(|&b| Value::Bool(b != 0)).collect(),
            DataType::U8 => nums!(u8, 1),
            DataType::U16 => nums!(u16, 2),
            DataType::U32 => nums!(u32, 4),
            DataType::U64 => nums!(u64, 8),
            DataType::I8 => nums!(i8, 1),
            DataType::I16 => nums!(i16, 2),
            DataType::I32 => nums!(i32, 4),
            DataType::I64 => nums!(i64, 8),
            DataType::F32 => nums!(f32, 4),
            DataType::F64 => nums!(f64, 8),
            DataType::F16 => d
                .chunks_exact(2)
                .map(|c| Value::from(half::f16::from_le_bytes([c[0], c[1]]).to_f32()))
                .collect(),
            DataType::BF16 => d
                .chunks_exact(2)
                .map(|c| Value::from(half::bf16::from_le_bytes([c[0], c[1]]).to_f32()))
                .collect(),
            DataType::Bytes => split_bytes_elements(d)
                .into_iter()
                .map(|e| Value::String(String::from_utf8_lossy(e).into_owned()))
                .collect(),
        }
    }

    /// A tensor from JSON `data` (flat or nested arrays), checking every value against the
    /// datatype's range and the element count against `shape`.
    pub fn from_json(
        name: impl Into<String>,
        datatype: DataType,
        shape: Vec<usize>,
        data: &Value,
    ) -> Result<InferTensor> {
        let name = name.into();
        let count = element_count(&name, &shape)?;
        let mut flat = Vec::new();
        flatten(&name, data, &mut flat, 0)?;
        if flat.len() != count {
            return Err(ServeError::invalid(format!(
                "tensor '{name}': {} values in 'data', but shape {shape:?} needs {count}",
                flat.len()
            )));
        }
        let mut raw: Vec<u8> = Vec::with_capacity(count * datatype.size().unwrap_or(8));
        for (i, v) in flat.iter().enumerate() {
            encode_json_value(&name, datatype, i, v, &mut raw)?;
        }
        InferTensor::from_raw(name, datatype, shape, Bytes::from(raw))
    }
}

fn flatten<'a>(name: &str, v: &'a Value, out: &mut Vec<&'a Value>, depth: usize) -> Result<()> {
    if depth > 32 {
        return Err(ServeError::invalid(format!(
            "tensor '{name}': 'data' is nested too deeply"
        )));
    }
    match v {
        Value::Array(items) => {
            for item in items {
                flatten(name, item, out, depth + 1)?;
            }
            Ok(())
        }
        Value::Object(_) => Err(ServeError::invalid(format!(
            "tensor '{name}': 'data' must hold arrays of values, found an object"
        ))),
        other => {
            out.push(other);
            Ok(())
        }
    }
}

fn encode_json_value(
    name: &str,
    dt: DataType,
    index: usize,
    v: &Value,
    raw: &mut Vec<u8>,
) -> Result<()> {
    let bad = || {
        ServeError::invalid(format!(
            "tensor '{name}': element {index} ({v}) is not a valid {dt} value"
        ))
    };
    macro_rules! int {
        ($t:ty) => {{
            let x = if let Some(i) = v.as_i64() {
                <$t>::try_from(i).map_err(|_| bad())?
            } else if let Some(u) = v.as_u64() {
                <$t>::try_from(u).map_err(|_| bad())?
            } else {
                return Err(bad());
            };
            raw.extend_from_slice(&x.to_le_bytes());
        }};
    }
    // JSON has no NaN: servers (Triton, KServe) accept the strings below for it.
    let float = || -> Result<f64> {
        match v {
            Value::Number(n) => n.as_f64().ok_or_else(bad),
            Value::String(s) => match s.as_str() {
                "NaN" | "nan" => Ok(f64::NAN),
                "Infinity" | "inf" => Ok(f64::INFINITY),
                "-Infinity" | "-inf" => Ok(f64::NEG_INFINITY),
                _ => Err(bad()),
            },
            _ => Err(bad()),
        }
    };
    match dt {
        DataType::Bool => match v {
            Value::Bool(b) => raw.push(u8::from(*b)),
            _ => return Err(bad()),
        },
        DataType::U8 => int!(u8),
        DataType::U16 => int!(u16),
        DataType::U32 => int!(u32),
        DataType::U64 => int!(u64),
        DataType::I8 => int!(i8),
        DataType::I16 => int!(i16),
        DataType::I32 => int!(i32),
        DataType::I64 => int!(i64),
        DataType::F16 => raw.extend_from_slice(&half::f16::from_f64(float()?).to_le_bytes()),
        DataType::BF16 => raw.extend_from_slice(&half::bf16::from_f64(float()?).to_le_bytes()),
        DataType::F32 => raw.extend_from_slice(&(float()? as f32).to_le_bytes()),
        DataType::F64 => raw.extend_from_slice(&float()?.to_le_bytes()),
        DataType::Bytes => match v {
            Value::String(s) => {
                let len = u32::try_from(s.len()).map_err(|_| bad())?;
                raw.extend_from_slice(&len.to_le_bytes());
                raw.extend_from_slice(s.as_bytes());
            }
            _ => return Err(bad()),
        },
    }
    Ok(())
}

/// Count the elements of a raw `BYTES` buffer, checking every length prefix.
fn count_bytes_elements(name: &str, data: &[u8]) -> Result<usize> {
    let mut pos = 0usize;
    let mut n = 0usize;
    while pos < data.len() {
        let Some(prefix) = data.get(pos..pos + 4) else {
            return Err(ServeError::invalid(format!(
                "tensor '{name}': BYTES data ends inside a length prefix at byte {pos}"
            )));
        };
        let len = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        pos = pos
            .checked_add(4 + len)
            .filter(|&end| end <= data.len())
            .ok_or_else(|| {
                ServeError::invalid(format!(
                    "tensor '{name}': BYTES element {n} of {len} bytes runs past the end of the data"
                ))
            })?;
        n += 1;
    }
    Ok(n)
}

/// Split a raw `BYTES` buffer already validated by [`count_bytes_elements`].
fn split_bytes_elements(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while let Some(prefix) = data.get(pos..pos + 4) {
        let len = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        let Some(elem) = data.get(pos + 4..pos + 4 + len) else {
            break;
        };
        out.push(elem);
        pos += 4 + len;
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_round_trip() {
        for dt in DataType::ALL {
            assert_eq!(DataType::from_name(dt.name()), Some(dt));
        }
        assert_eq!(DataType::from_name("FLOAT"), None);
    }

    #[test]
    fn json_nested_and_flat_agree() {
        let a = InferTensor::from_json("x", DataType::F32, vec![2, 2], &json!([[1, 2.5], [3, -4]]))
            .unwrap();
        let b = InferTensor::from_json("x", DataType::F32, vec![2, 2], &json!([1, 2.5, 3, -4]))
            .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_f32().unwrap(), vec![1.0, 2.5, 3.0, -4.0]);
    }

    #[test]
    fn json_rejects_bad_values() {
        let err = InferTensor::from_json("x", DataType::U8, vec![2], &json!([1, 256])).unwrap_err();
        assert!(err.to_string().contains("element 1"), "{err}");
        let err = InferTensor::from_json("x", DataType::F32, vec![3], &json!([1, 2])).unwrap_err();
        assert!(err.to_string().contains("needs 3"), "{err}");
        assert!(InferTensor::from_json("x", DataType::Bool, vec![1], &json!([1])).is_err());
        assert!(InferTensor::from_json("x", DataType::F32, vec![1], &json!([{"a": 1}])).is_err());
    }

    #[test]
    fn raw_length_checked() {
        assert!(
            InferTensor::from_raw("x", DataType::F32, vec![2], Bytes::from(vec![0u8; 7])).is_err()
        );
        assert!(
            InferTensor::from_raw("x", DataType::F32, vec![2], Bytes::from(vec![0u8; 8])).is_ok()
        );
        assert!(
            InferTensor::from_raw("x", DataType::F32, vec![usize::MAX, 4], Bytes::new()).is_err()
        );
    }

    #[test]
    fn bytes_elements() {
        let t = InferTensor::from_json("s", DataType::Bytes, vec![2], &json!(["ab", ""])).unwrap();
        assert_eq!(&t.data[..], &[2, 0, 0, 0, b'a', b'b', 0, 0, 0, 0]);
        assert_eq!(t.to_json_values(), vec![json!("ab"), json!("")]);
        let bad = Bytes::from_static(&[5, 0, 0, 0, b'a']);
        assert!(InferTensor::from_raw("s", DataType::Bytes, vec![1], bad).is_err());
    }

    #[test]
    fn finite_check() {
        let t = InferTensor::from_f32("x", vec![3], &[1.0, f32::NAN, 2.0]).unwrap();
        let err = t.check_finite().unwrap_err();
        assert!(err.to_string().contains("element 1"), "{err}");
        let t = InferTensor::from_json("x", DataType::F32, vec![1], &json!(["NaN"])).unwrap();
        assert!(t.check_finite().is_err());
        assert!(InferTensor::from_f32("x", vec![1], &[1.0])
            .unwrap()
            .check_finite()
            .is_ok());
    }
}
