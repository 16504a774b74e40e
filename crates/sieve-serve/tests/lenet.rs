//! The real engine behind the server: LeNet-5 (fixtures/) over REST binary, REST JSON and
//! gRPC, compared with the onnxruntime reference outputs shipped with the fixture.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use sieve_serve::client::{Client, ClientConfig, Protocol};
use sieve_serve::{InferTensor, ModelSource, ServeConfig, Server};
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/lenet5"
    ))
}

#[tokio::test]
async fn lenet5_matches_reference_over_every_protocol() {
    let dir = fixtures();
    let input = sieve_data::npy::read_npy(dir.join("reference/input_uint8.npy")).unwrap();
    let reference = sieve_data::npy::read_npy(dir.join("reference/output.npy")).unwrap();
    let n = 8;
    let per = input.len() / input.shape[0];
    let x: Vec<f32> = input.to_f32_vec()[..n * per].to_vec();
    let want: Vec<f32> = reference.to_f32_vec()[..n * 10].to_vec();
    let mut shape = input.shape.clone();
    shape[0] = n;
    let tensor = InferTensor::from_f32("input", shape, &x).unwrap();

    let config = ServeConfig {
        models: vec![ModelSource {
            name: "lenet5".into(),
            path: dir.join("model.onnx"),
        }],
        ..common::test_config()
    };
    let server = Server::bind(config).await.unwrap();
    let rest = format!("http://{}", server.rest_addr().unwrap());
    let grpc = format!("http://{}", server.grpc_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(server.run(async {
        let _ = rx.await;
    }));
    let meta = Client::new(&rest, ClientConfig::default())
        .unwrap()
        .model_metadata("lenet5")
        .await
        .unwrap();
    assert_eq!(meta.inputs[0].shape, vec![-1, 1, 28, 28]);
    for (url, protocol) in [
        (&rest, Protocol::Rest),
        (&rest, Protocol::RestJson),
        (&grpc, Protocol::Grpc),
    ] {
        let c = Client::new(
            url,
            ClientConfig {
                protocol,
                ..Default::default()
            },
        )
        .unwrap();
        let r = c
            .infer("lenet5", std::slice::from_ref(&tensor))
            .await
            .unwrap();
        assert_eq!(r.outputs[0].shape, vec![n, 10]);
        let got = r.outputs[0].to_f32().unwrap();
        let max_diff = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(max_diff < 1e-4, "{protocol:?}: max |diff| {max_diff}");
    }
    let _ = tx.send(());
    handle.await.unwrap().unwrap();
}
