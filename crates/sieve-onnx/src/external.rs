//! Initializers stored outside the model bytes (ONNX external data), resolved by
//! the caller: a `.sieve` package keeps the compressed layers' weights in its own
//! container and marks them in the graph as external data with a `location`.

use crate::{load_proto_with, proto, OnnxError};
use prost::Message;
use sieve_nn::{Model, Tensor};

/// Supplies the tensor of an initializer, or `None` to convert it as usual.
pub type Resolver<'a> = &'a dyn Fn(&proto::TensorProto) -> Option<Tensor>;

/// The `location` key of an initializer's external data, if it has one.
pub fn external_location(t: &proto::TensorProto) -> Option<&str> {
    t.external_data
        .iter()
        .find(|e| e.key() == "location")
        .map(|e| e.value())
}

/// Loads a model whose external-data initializers are resolved by `resolve`,
/// called with the `location` and the declared dims of each one. Initializers
/// with external data that `resolve` does not supply fail with
/// [`OnnxError::ExternalData`] naming the tensor.
pub fn load_bytes_with_external(
    bytes: &[u8],
    resolve: &dyn Fn(&str, &[i64]) -> Option<Tensor>,
) -> Result<Model, OnnxError> {
    let m = proto::ModelProto::decode(bytes).map_err(|e| OnnxError::Decode(e.to_string()))?;
    let ext = |t: &proto::TensorProto| external_location(t).and_then(|loc| resolve(loc, &t.dims));
    load_proto_with(&m, &ext)
}
