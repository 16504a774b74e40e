//! Malformed inputs (core tests, no shared data): every case must be a clear
//! one-line error, never a panic.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::workspace;
use prost::Message;
use sieve_nn::Tensor;
use sieve_onnx::proto::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto, type_proto,
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};

fn value(name: &str, elem: DataType, dims: &[i64]) -> ValueInfoProto {
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(elem as i32),
                shape: Some(TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|&d| tensor_shape_proto::Dimension {
                            value: Some(tensor_shape_proto::dimension::Value::DimValue(d)),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn node(
    name: &str,
    op: &str,
    inputs: &[&str],
    outputs: &[&str],
    attrs: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        name: Some(name.into()),
        op_type: Some(op.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute: attrs,
        ..Default::default()
    }
}

fn attr_s(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::String as i32),
        s: Some(v.as_bytes().to_vec()),
        ..Default::default()
    }
}

fn attr_i(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(v),
        ..Default::default()
    }
}

fn weights(name: &str, dims: &[i64]) -> TensorProto {
    let n: i64 = dims.iter().product();
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(DataType::Float as i32),
        float_data: (0..n).map(|i| i as f32 * 0.01).collect(),
        ..Default::default()
    }
}

fn model(
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    input: ValueInfoProto,
    output: &str,
    opset: i64,
) -> Vec<u8> {
    ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(opset),
        }],
        graph: Some(GraphProto {
            name: Some("g".into()),
            node: nodes,
            initializer: inits,
            input: vec![input],
            output: vec![value(output, DataType::Float, &[])],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

fn conv_model(attrs: Vec<AttributeProto>) -> Vec<u8> {
    model(
        vec![node("conv7", "Conv", &["x", "w"], &["y"], attrs)],
        vec![weights("w", &[2, 1, 3, 3])],
        value("x", DataType::Float, &[1, 1, 5, 5]),
        "y",
        13,
    )
}

fn load_err(bytes: &[u8]) -> String {
    let e = sieve_onnx::load_bytes(bytes)
        .expect_err("must fail")
        .to_string();
    assert!(!e.contains('\n'), "multi-line error: {e}");
    e
}

#[test]
fn valid_tiny_model_loads_and_runs() {
    let m = sieve_onnx::load_bytes(&conv_model(vec![])).unwrap();
    let y = m
        .run(vec![
            Tensor::from_f32(vec![1, 1, 5, 5], vec![1.0; 25]).unwrap()
        ])
        .unwrap();
    assert_eq!(y[0].shape(), &[1, 2, 3, 3]);
    // Channel 0 of the weights is 0.00..0.08: sum = 0.36.
    assert!((y[0].as_f32().unwrap()[0] - 0.36).abs() < 1e-5);
}

#[test]
fn truncated_and_garbage_bytes() {
    let bytes = std::fs::read(workspace().join("fixtures/lenet5/model.onnx")).unwrap();
    for cut in [1, 7, 100, bytes.len() / 2, bytes.len() - 1] {
        let e = load_err(&bytes[..cut]);
        assert!(!e.is_empty());
    }
    let e = load_err(&bytes[..bytes.len() / 2]);
    assert!(e.starts_with("not a valid ONNX model"), "{e}");
    assert!(load_err(b"").starts_with("not a valid ONNX model"));
    let e = load_err(b"\xff\xff\xff\xffthis is not protobuf at all");
    assert!(e.starts_with("not a valid ONNX model"), "{e}");
    let e = load_err(b"GIF89a garbage garbage garbage");
    assert!(e.contains("ONNX"), "{e}");
}

#[test]
fn unsupported_operator_is_named() {
    let b = model(
        vec![node("hm", "Hardmax", &["x"], &["y"], vec![])],
        vec![],
        value("x", DataType::Float, &[1, 4]),
        "y",
        13,
    );
    assert_eq!(load_err(&b), "node 'hm' (op Hardmax): unsupported operator");
    let e = sieve_onnx::load_file(workspace().join("fixtures/bad/unsupported_op.onnx"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("Hardmax") && e.contains("unsupported operator"),
        "{e}"
    );
}

#[test]
fn bad_attributes_are_named() {
    let e = load_err(&conv_model(vec![attr_s("auto_pad", "BOGUS")]));
    assert!(
        e.contains("conv7") && e.contains("auto_pad") && e.contains("BOGUS"),
        "{e}"
    );
    let e = load_err(&conv_model(vec![attr_i("frobnicate", 1)]));
    assert!(
        e.contains("conv7") && e.contains("frobnicate") && e.contains("unsupported attribute"),
        "{e}"
    );
    let e = load_err(&conv_model(vec![attr_i("group", 0)]));
    assert!(e.contains("group"), "{e}");
    let e = sieve_onnx::load_file(workspace().join("fixtures/bad/bad_attribute.onnx"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("auto_pad"), "{e}");
}

#[test]
fn wrong_opset_missing_input_bad_dtype_external_data() {
    let b = model(
        vec![node("r", "Relu", &["x"], &["y"], vec![])],
        vec![],
        value("x", DataType::Float, &[1]),
        "y",
        99,
    );
    assert!(load_err(&b).contains("opset 99"));
    let b = model(
        vec![node("r", "Add", &["x", "nowhere"], &["y"], vec![])],
        vec![],
        value("x", DataType::Float, &[1]),
        "y",
        13,
    );
    let e = load_err(&b);
    assert!(e.contains("'r'") && e.contains("nowhere"), "{e}");
    let b = model(
        vec![node("r", "Relu", &["x"], &["y"], vec![])],
        vec![],
        value("x", DataType::Int8, &[1]),
        "y",
        13,
    );
    let e = load_err(&b);
    assert!(e.contains("INT8") && e.contains("'x'"), "{e}");
    let mut w = weights("w", &[2, 1, 3, 3]);
    w.float_data.clear();
    w.data_location = Some(sieve_onnx::proto::tensor_proto::DataLocation::External as i32);
    let b = model(
        vec![node("conv7", "Conv", &["x", "w"], &["y"], vec![])],
        vec![w],
        value("x", DataType::Float, &[1, 1, 5, 5]),
        "y",
        13,
    );
    assert!(load_err(&b).contains("external data"));
    // Weight count that does not match the dims.
    let mut w = weights("w", &[2, 1, 3, 3]);
    w.float_data.pop();
    let b = model(
        vec![node("conv7", "Conv", &["x", "w"], &["y"], vec![])],
        vec![w],
        value("x", DataType::Float, &[1, 1, 5, 5]),
        "y",
        13,
    );
    assert!(load_err(&b).contains("'w'"));
    // Shape error found at load time names the node.
    let b = model(
        vec![node("conv7", "Conv", &["x", "w"], &["y"], vec![])],
        vec![weights("w", &[2, 3, 3, 3])],
        value("x", DataType::Float, &[1, 1, 5, 5]),
        "y",
        13,
    );
    let e = load_err(&b);
    assert!(e.contains("conv7") && e.contains("channels"), "{e}");
}

#[test]
fn wrong_inputs_at_run_time() {
    let m = sieve_onnx::load_file(workspace().join("fixtures/lenet5/model.onnx")).unwrap();
    let name = m.inputs()[0].name.clone();
    let e = m
        .run(vec![Tensor::from_f32(
            vec![1, 1, 28, 27],
            vec![0.0; 28 * 27],
        )
        .unwrap()])
        .unwrap_err()
        .to_string();
    assert!(e.contains(&name) && e.contains("27"), "{e}");
    let e = m
        .run(vec![
            Tensor::from_f32(vec![1, 28, 28], vec![0.0; 28 * 28]).unwrap()
        ])
        .unwrap_err()
        .to_string();
    assert!(e.contains("shape"), "{e}");
    let e = m.run(vec![]).unwrap_err().to_string();
    assert!(e.contains("expected 1 inputs, got 0"), "{e}");
    let e = m
        .run(vec![
            Tensor::from_i64(vec![1, 1, 28, 28], vec![0; 784]).unwrap()
        ])
        .unwrap_err()
        .to_string();
    assert!(e.contains("dtype"), "{e}");
    let mut v = vec![0.0f32; 2 * 784];
    v[900] = f32::NAN;
    v[1000] = f32::INFINITY;
    let e = m
        .run(vec![Tensor::from_f32(vec![2, 1, 28, 28], v).unwrap()])
        .unwrap_err();
    match &e {
        sieve_nn::NnError::NonFinite { input, index, .. } => {
            assert_eq!(input, &name);
            assert_eq!(*index, 900);
        }
        other => panic!("unexpected error {other}"),
    }
    assert!(e.to_string().contains("index 900"));
}
