//! Conversion of protobuf tensors, attributes and value types to sieve-nn types.

use crate::proto::{self, attribute_proto::AttributeType, tensor_proto::DataType};
use crate::OnnxError;
use sieve_nn::op::AttrValue;
use sieve_nn::{DType, Dim, Fact, Tensor};

/// Name of an ONNX `TensorProto.DataType` code for error messages.
pub fn dtype_name(code: i32) -> String {
    DataType::try_from(code)
        .map(|d| d.as_str_name().to_string())
        .unwrap_or_else(|_| format!("#{code}"))
}

/// The sieve-nn dtype for an ONNX element type (`FLOAT` -> f32; `INT64`, `INT32`
/// -> i64); `None` if unsupported.
pub fn map_dtype(code: i32) -> Option<DType> {
    match DataType::try_from(code).ok()? {
        DataType::Float => Some(DType::F32),
        DataType::Int64 | DataType::Int32 => Some(DType::I64),
        _ => None,
    }
}

fn le_chunks<const N: usize>(raw: &[u8], what: &str) -> Result<Vec<[u8; N]>, OnnxError> {
    if !raw.len().is_multiple_of(N) {
        return Err(OnnxError::Invalid(format!(
            "tensor '{what}': raw_data has {} bytes, not a multiple of {N}",
            raw.len()
        )));
    }
    Ok(raw
        .chunks_exact(N)
        .map(|c| {
            let mut a = [0u8; N];
            a.copy_from_slice(c);
            a
        })
        .collect())
}

/// Converts a `TensorProto` (typed fields or `raw_data`, little-endian) to a
/// [`Tensor`]. Supports FLOAT, INT64, INT32 (widened to i64); external data and
/// other types are rejected with an error naming the tensor.
pub fn tensor_from_proto(t: &proto::TensorProto) -> Result<Tensor, OnnxError> {
    let name = t.name();
    if t.data_location == Some(proto::tensor_proto::DataLocation::External as i32)
        || !t.external_data.is_empty()
    {
        return Err(OnnxError::ExternalData(name.to_string()));
    }
    let shape: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| {
            usize::try_from(d)
                .map_err(|_| OnnxError::Invalid(format!("tensor '{name}': negative dim {d}")))
        })
        .collect::<Result<_, _>>()?;
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| OnnxError::Invalid(format!("tensor '{name}': shape {shape:?} overflows")))?;
    let code = t.data_type();
    let raw = t.raw_data.as_deref();
    let check = |len: usize| -> Result<(), OnnxError> {
        if len != n {
            return Err(OnnxError::Invalid(format!(
                "tensor '{name}': {len} values for shape {shape:?} ({n} expected)"
            )));
        }
        Ok(())
    };
    let tensor = match DataType::try_from(code) {
        Ok(DataType::Float) => {
            let v: Vec<f32> = match raw {
                Some(r) => le_chunks::<4>(r, name)?
                    .into_iter()
                    .map(f32::from_le_bytes)
                    .collect(),
                None => t.float_data.clone(),
            };
            check(v.len())?;
            Tensor::from_f32(shape, v)?
        }
        Ok(DataType::Int64) => {
            let v: Vec<i64> = match raw {
                Some(r) => le_chunks::<8>(r, name)?
                    .into_iter()
                    .map(i64::from_le_bytes)
                    .collect(),
                None => t.int64_data.clone(),
            };
            check(v.len())?;
            Tensor::from_i64(shape, v)?
        }
        Ok(DataType::Int32) => {
            let v: Vec<i64> = match raw {
                Some(r) => le_chunks::<4>(r, name)?
                    .into_iter()
                    .map(|b| i32::from_le_bytes(b) as i64)
                    .collect(),
                None => t.int32_data.iter().map(|&x| x as i64).collect(),
            };
            check(v.len())?;
            Tensor::from_i64(shape, v)?
        }
        _ => {
            return Err(OnnxError::UnsupportedDType {
                what: format!("tensor '{name}'"),
                dtype: dtype_name(code),
            })
        }
    };
    Ok(tensor)
}

/// Converts an attribute; graphs, sparse tensors and type protos are rejected.
pub fn attr_from_proto(
    a: &proto::AttributeProto,
    node: &str,
    op: &str,
) -> Result<AttrValue, OnnxError> {
    let bad = |msg: String| OnnxError::Attribute {
        node: node.to_string(),
        op: op.to_string(),
        attr: a.name().to_string(),
        msg,
    };
    // Old files may leave `type` unset; infer it from the populated field.
    let ty = match a.r#type {
        Some(_) => a.r#type(),
        None if a.f.is_some() => AttributeType::Float,
        None if a.i.is_some() => AttributeType::Int,
        None if a.s.is_some() => AttributeType::String,
        None if a.t.is_some() => AttributeType::Tensor,
        None if !a.floats.is_empty() => AttributeType::Floats,
        None if !a.ints.is_empty() => AttributeType::Ints,
        None if !a.strings.is_empty() => AttributeType::Strings,
        None => AttributeType::Undefined,
    };
    Ok(match ty {
        AttributeType::Float => AttrValue::Float(a.f()),
        AttributeType::Int => AttrValue::Int(a.i()),
        AttributeType::String => AttrValue::String(String::from_utf8_lossy(a.s()).into_owned()),
        AttributeType::Tensor => {
            let t =
                a.t.as_ref()
                    .ok_or_else(|| bad("tensor attribute without a tensor".into()))?;
            AttrValue::Tensor(tensor_from_proto(t).map_err(|e| bad(e.to_string()))?)
        }
        AttributeType::Floats => AttrValue::Floats(a.floats.clone()),
        AttributeType::Ints => AttrValue::Ints(a.ints.clone()),
        AttributeType::Strings => AttrValue::Strings(
            a.strings
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect(),
        ),
        other => {
            return Err(bad(format!(
                "unsupported attribute type {}",
                other.as_str_name()
            )))
        }
    })
}

/// The fact declared by a graph input/output `ValueInfoProto`; `Ok(None)` if it
/// declares no tensor type.
pub fn fact_from_value_info(v: &proto::ValueInfoProto) -> Result<Option<Fact>, OnnxError> {
    use proto::type_proto::Value;
    let Some(Value::TensorType(tt)) = v.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        return Ok(None);
    };
    let code = tt.elem_type();
    let dtype = map_dtype(code).ok_or_else(|| OnnxError::UnsupportedDType {
        what: format!("value '{}'", v.name()),
        dtype: dtype_name(code),
    })?;
    let Some(shape) = tt.shape.as_ref() else {
        return Ok(None);
    };
    let mut dims = Vec::with_capacity(shape.dim.len());
    for (i, d) in shape.dim.iter().enumerate() {
        use proto::tensor_shape_proto::dimension::Value as DV;
        dims.push(match &d.value {
            Some(DV::DimValue(n)) if *n >= 0 => Dim::Fixed(*n as usize),
            Some(DV::DimParam(s)) if !s.is_empty() => Dim::Symbolic(s.clone()),
            _ => Dim::Symbolic(format!("{}_d{i}", v.name())),
        });
    }
    Ok(Some(Fact::new(dtype, dims)))
}
