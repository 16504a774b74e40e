//! The REST wire format of the Open Inference Protocol: JSON tensors and the binary tensor
//! data extension (`Inference-Header-Content-Length`, `binary_data_size`, `binary_data`),
//! both directions (the server parses requests and encodes responses; the client the
//! reverse). Pure functions over bytes, so they can be fuzzed.

use crate::error::{Result, ServeError};
use crate::tensor::{shape_from_i64, DataType, InferTensor};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::time::Duration;

/// Header carrying the length of the JSON part of a binary-extension body.
pub const HEADER_LEN: &str = "inference-header-content-length";

/// An output the client asked for.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestedOutput {
    /// Output name.
    pub name: String,
    /// `parameters.binary_data`: return this output as binary (`None`: request default).
    pub binary: Option<bool>,
}

/// A decoded inference request.
#[derive(Clone, Debug, PartialEq)]
pub struct InferRequest {
    /// The request id, echoed in the response.
    pub id: Option<String>,
    /// Input tensors, in request order.
    pub inputs: Vec<InferTensor>,
    /// Requested outputs; empty means all.
    pub outputs: Vec<RequestedOutput>,
    /// Request parameter `binary_data_output`: default for outputs not listed or without
    /// their own `binary_data`.
    pub binary_output_default: bool,
    /// Request parameter `timeout` (microseconds, as Triton), if given.
    pub timeout: Option<Duration>,
}

/// A decoded inference response.
#[derive(Clone, Debug, PartialEq)]
pub struct InferResponse {
    /// Model that answered.
    pub model_name: String,
    /// Model version, if reported.
    pub model_version: Option<String>,
    /// Echoed request id.
    pub id: Option<String>,
    /// Output tensors.
    pub outputs: Vec<InferTensor>,
}

#[derive(Deserialize)]
struct JsonRequest {
    id: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    parameters: Map<String, Value>,
    inputs: Vec<JsonTensorIn>,
    #[serde(default)]
    outputs: Vec<JsonOutputReq>,
}

#[derive(Deserialize)]
struct JsonTensorIn {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    parameters: Map<String, Value>,
    data: Option<Value>,
}

#[derive(Deserialize)]
struct JsonOutputReq {
    name: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    parameters: Map<String, Value>,
}

#[derive(Deserialize)]
struct JsonResponse {
    model_name: String,
    model_version: Option<String>,
    id: Option<String>,
    outputs: Vec<JsonTensorIn>,
}

/// `"parameters": null` (sent by KServe) means no parameters.
fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Map<String, Value>, D::Error> {
    Ok(Option::<Map<String, Value>>::deserialize(d)?.unwrap_or_default())
}

/// Split a body into its JSON part and binary part using the optional
/// `Inference-Header-Content-Length` value.
fn split_body<'a>(body: &'a Bytes, header_len: Option<&str>) -> Result<(&'a [u8], Bytes)> {
    match header_len {
        None => Ok((&body[..], Bytes::new())),
        Some(v) => {
            let n: usize = v.trim().parse().map_err(|_| {
                ServeError::invalid(format!(
                    "Inference-Header-Content-Length '{v}' is not a non-negative integer"
                ))
            })?;
            if n > body.len() {
                return Err(ServeError::invalid(format!(
                    "Inference-Header-Content-Length is {n} but the body has only {} bytes",
                    body.len()
                )));
            }
            Ok((&body[..n], body.slice(n..)))
        }
    }
}

fn bool_param(params: &Map<String, Value>, key: &str, what: &str) -> Result<Option<bool>> {
    match params.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(ServeError::invalid(format!(
            "{what}: parameter '{key}' must be a boolean, got {other}"
        ))),
    }
}

/// Decode tensors (request inputs or response outputs) whose data is either JSON `data` or a
/// slice of `binary` given by `parameters.binary_data_size`, consumed in order.
fn decode_tensors(list: Vec<JsonTensorIn>, binary: &Bytes, what: &str) -> Result<Vec<InferTensor>> {
    let mut offset = 0usize;
    let mut out = Vec::with_capacity(list.len());
    for t in list {
        let dt = DataType::from_name(&t.datatype).ok_or_else(|| {
            ServeError::invalid(format!(
                "{what} '{}': unknown datatype '{}'",
                t.name, t.datatype
            ))
        })?;
        let shape = shape_from_i64(&t.name, &t.shape)?;
        let size = match t.parameters.get("binary_data_size") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_u64().ok_or_else(|| {
                ServeError::invalid(format!(
                    "{what} '{}': binary_data_size must be a non-negative integer, got {v}",
                    t.name
                ))
            })?),
        };
        let tensor = match (size, &t.data) {
            (Some(_), Some(_)) => {
                return Err(ServeError::invalid(format!(
                    "{what} '{}' has both 'data' and binary_data_size",
                    t.name
                )))
            }
            (None, None) => {
                return Err(ServeError::invalid(format!(
                    "{what} '{}' has neither 'data' nor binary_data_size",
                    t.name
                )))
            }
            (Some(size), None) => {
                let end = usize::try_from(size)
                    .ok()
                    .and_then(|s| offset.checked_add(s))
                    .filter(|&e| e <= binary.len())
                    .ok_or_else(|| {
                        ServeError::invalid(format!(
                            "{what} '{}': binary_data_size {size} at offset {offset} runs past the \
                             {} bytes of binary data",
                            t.name,
                            binary.len()
                        ))
                    })?;
                let data = binary.slice(offset..end);
                offset = end;
                InferTensor::from_raw(t.name, dt, shape, data)?
            }
            (None, Some(data)) => InferTensor::from_json(t.name, dt, shape, data)?,
        };
        out.push(tensor);
    }
    if offset != binary.len() {
        return Err(ServeError::invalid(format!(
            "{} bytes of binary data follow the JSON header but binary_data_size accounts for {offset}",
            binary.len()
        )));
    }
    Ok(out)
}

/// Parse an inference request body. `header_len` is the value of the
/// `Inference-Header-Content-Length` header, if present (binary extension).
pub fn parse_infer_request(body: &Bytes, header_len: Option<&str>) -> Result<InferRequest> {
    let (json, binary) = split_body(body, header_len)?;
    let req: JsonRequest = serde_json::from_slice(json)
        .map_err(|e| ServeError::invalid(format!("request JSON: {e}")))?;
    let binary_output_default =
        bool_param(&req.parameters, "binary_data_output", "request")?.unwrap_or(false);
    let timeout = match req.parameters.get("timeout") {
        None | Some(Value::Null) => None,
        Some(v) => Some(Duration::from_micros(v.as_u64().ok_or_else(|| {
            ServeError::invalid(format!(
                "request: parameter 'timeout' must be microseconds, got {v}"
            ))
        })?)),
    };
    let inputs = decode_tensors(req.inputs, &binary, "input")?;
    let outputs = req
        .outputs
        .into_iter()
        .map(|o| {
            let binary = bool_param(
                &o.parameters,
                "binary_data",
                &format!("output '{}'", o.name),
            )?;
            Ok(RequestedOutput {
                name: o.name,
                binary,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(InferRequest {
        id: req.id,
        inputs,
        outputs,
        binary_output_default,
        timeout,
    })
}

/// Parse an inference response body (client side).
pub fn parse_infer_response(body: &Bytes, header_len: Option<&str>) -> Result<InferResponse> {
    let (json, binary) = split_body(body, header_len)?;
    let resp: JsonResponse = serde_json::from_slice(json)
        .map_err(|e| ServeError::invalid(format!("response JSON: {e}")))?;
    let outputs = decode_tensors(resp.outputs, &binary, "output")?;
    Ok(InferResponse {
        model_name: resp.model_name,
        model_version: resp.model_version,
        id: resp.id,
        outputs,
    })
}

#[derive(Serialize)]
struct JsonTensorOut<'a> {
    name: &'a str,
    datatype: &'static str,
    shape: &'a [usize],
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Vec<Value>>,
}

/// Encode tensors as a JSON list plus binary tail: tensors with `binary(i)` true go to the
/// tail with `parameters.binary_data_size`, the others inline as JSON `data`.
fn encode_tensors<'a>(
    tensors: &'a [InferTensor],
    binary: impl Fn(usize) -> bool,
    tail: &mut Vec<u8>,
) -> Vec<JsonTensorOut<'a>> {
    tensors
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let is_binary = binary(i);
            if is_binary {
                tail.extend_from_slice(&t.data);
            }
            JsonTensorOut {
                name: &t.name,
                datatype: t.datatype.name(),
                shape: &t.shape,
                parameters: is_binary
                    .then(|| serde_json::json!({ "binary_data_size": t.data.len() })),
                data: (!is_binary).then(|| t.to_json_values()),
            }
        })
        .collect()
}

/// Join a JSON header and binary tail; the second value is the header length to send as
/// `Inference-Header-Content-Length` (`None` when there is no binary tail).
fn join(json: Vec<u8>, tail: Vec<u8>) -> (Vec<u8>, Option<usize>) {
    if tail.is_empty() {
        return (json, None);
    }
    let n = json.len();
    let mut body = json;
    body.extend_from_slice(&tail);
    (body, Some(n))
}

/// Encode an inference response (server side); `binary(i)` chooses the binary extension for
/// output `i`. Returns the body and the `Inference-Header-Content-Length` value if any.
pub fn encode_infer_response(
    resp: &InferResponse,
    binary: impl Fn(usize) -> bool,
) -> (Vec<u8>, Option<usize>) {
    let mut tail = Vec::new();
    let outputs = encode_tensors(&resp.outputs, binary, &mut tail);
    let mut obj = serde_json::json!({ "model_name": resp.model_name, "outputs": outputs });
    if let Some(v) = &resp.model_version {
        obj["model_version"] = Value::from(v.as_str());
    }
    if let Some(id) = &resp.id {
        obj["id"] = Value::from(id.as_str());
    }
    join(obj.to_string().into_bytes(), tail)
}

/// Encode an inference request (client side). With `binary`, inputs travel in the binary
/// extension and outputs are asked for as binary; otherwise all JSON.
pub fn encode_infer_request(
    id: Option<&str>,
    inputs: &[InferTensor],
    outputs: &[&str],
    binary: bool,
) -> (Vec<u8>, Option<usize>) {
    let mut tail = Vec::new();
    let ins = encode_tensors(inputs, |_| binary, &mut tail);
    let outs: Vec<Value> = outputs
        .iter()
        .map(|name| serde_json::json!({ "name": name, "parameters": { "binary_data": binary } }))
        .collect();
    let mut obj = serde_json::json!({ "inputs": ins });
    if !outs.is_empty() {
        obj["outputs"] = Value::Array(outs);
    }
    if binary {
        obj["parameters"] = serde_json::json!({ "binary_data_output": true });
    }
    if let Some(id) = id {
        obj["id"] = Value::from(id);
    }
    join(obj.to_string().into_bytes(), tail)
}

/// The `{"error": "..."}` body of every failed REST call.
pub fn error_body(message: &str) -> Vec<u8> {
    serde_json::json!({ "error": message })
        .to_string()
        .into_bytes()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn body(s: &str) -> Bytes {
        Bytes::from(s.to_string())
    }

    #[test]
    fn json_request() {
        let r = parse_infer_request(
            &body(
                r#"{"id":"7","inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[1,2]}],
                      "outputs":[{"name":"y","parameters":{"binary_data":true}}]}"#,
            ),
            None,
        )
        .unwrap();
        assert_eq!(r.id.as_deref(), Some("7"));
        assert_eq!(r.inputs[0].to_f32().unwrap(), vec![1.0, 2.0]);
        assert_eq!(
            r.outputs,
            vec![RequestedOutput {
                name: "y".into(),
                binary: Some(true)
            }]
        );
    }

    #[test]
    fn binary_request_round_trip() {
        let a = InferTensor::from_f32("a", vec![2], &[1.5, -2.0]).unwrap();
        let b =
            InferTensor::from_json("b", DataType::I64, vec![1], &serde_json::json!([9])).unwrap();
        let (raw, hl) = encode_infer_request(Some("q"), &[a.clone(), b.clone()], &["y"], true);
        let hl = hl.unwrap().to_string();
        let r = parse_infer_request(&Bytes::from(raw), Some(&hl)).unwrap();
        assert_eq!(r.inputs, vec![a, b]);
        assert!(r.binary_output_default);
    }

    #[test]
    fn binary_size_mismatch_is_an_error() {
        let json = r#"{"inputs":[{"name":"a","shape":[2],"datatype":"FP32","parameters":{"binary_data_size":8}}]}"#;
        let mut raw = json.as_bytes().to_vec();
        raw.extend_from_slice(&[0u8; 4]);
        let e = parse_infer_request(&Bytes::from(raw.clone()), Some(&json.len().to_string()))
            .unwrap_err();
        assert!(e.to_string().contains("runs past"), "{e}");
        raw.extend_from_slice(&[0u8; 8]);
        let e = parse_infer_request(&Bytes::from(raw), Some(&json.len().to_string())).unwrap_err();
        assert!(e.to_string().contains("accounts for"), "{e}");
        let e = parse_infer_request(&body(json), Some("9999")).unwrap_err();
        assert!(e.to_string().contains("only"), "{e}");
        let e = parse_infer_request(&body(json), Some("x")).unwrap_err();
        assert!(e.to_string().contains("not a non-negative integer"), "{e}");
    }

    #[test]
    fn malformed_requests() {
        for (b, needle) in [
            ("{", "request JSON"),
            (
                r#"{"inputs":[{"name":"a","shape":[1],"datatype":"FLOAT","data":[1]}]}"#,
                "unknown datatype",
            ),
            (
                r#"{"inputs":[{"name":"a","shape":[-1],"datatype":"FP32","data":[1]}]}"#,
                "negative",
            ),
            (
                r#"{"inputs":[{"name":"a","shape":[2],"datatype":"FP32","data":[1]}]}"#,
                "needs 2",
            ),
            (
                r#"{"inputs":[{"name":"a","shape":[1],"datatype":"FP32"}]}"#,
                "neither",
            ),
            (
                r#"{"inputs":[{"name":"a","shape":[1],"datatype":"FP32","data":["x"]}]}"#,
                "not a valid",
            ),
        ] {
            let e = parse_infer_request(&body(b), None).unwrap_err();
            assert!(e.to_string().contains(needle), "{b}: {e}");
            assert_eq!(e.http_status(), 400);
        }
    }

    #[test]
    fn null_parameters_are_accepted() {
        let b = body(
            r#"{"model_name":"m","id":"1","parameters":null,"outputs":[{"name":"y","shape":[1],"datatype":"FP32","parameters":null,"data":[0.5]}]}"#,
        );
        let r = parse_infer_response(&b, None).unwrap();
        assert_eq!(r.outputs[0].to_f32().unwrap(), vec![0.5]);
    }

    #[test]
    fn response_mixed_json_and_binary() {
        let y = InferTensor::from_f32("y", vec![1, 3], &[0.25, 0.5, 0.25]).unwrap();
        let s = InferTensor::from_f32("s", vec![1], &[1.0]).unwrap();
        let resp = InferResponse {
            model_name: "m".into(),
            model_version: Some("1".into()),
            id: None,
            outputs: vec![y, s],
        };
        let (raw, hl) = encode_infer_response(&resp, |i| i == 0);
        let hl = hl.unwrap().to_string();
        let back = parse_infer_response(&Bytes::from(raw), Some(&hl)).unwrap();
        assert_eq!(back, resp);
        let (raw, hl) = encode_infer_response(&resp, |_| false);
        assert!(hl.is_none());
        assert_eq!(parse_infer_response(&Bytes::from(raw), None).unwrap(), resp);
    }
}
