//! Helpers for the in-process server tests: a test backend, a server on port 0 with a
//! shutdown trigger, and a raw HTTP/1.1 client for malformed requests.
#![allow(dead_code)]

use sieve_serve::{
    BatchConfig, DataType, InferTensor, InferenceBackend, ModelMetadata, ServeConfig, Server,
    TensorSpec,
};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

/// `x: FP32 [-1, 4]` -> `y = 2x` `[-1, 4]`, `s` = row sums `[-1, 1]`; sleeps `delay` per call.
pub struct Doubler {
    pub meta: ModelMetadata,
    pub delay: Duration,
    pub calls: AtomicUsize,
}

impl Doubler {
    pub fn new(delay_ms: u64) -> Arc<Doubler> {
        Arc::new(Doubler {
            meta: ModelMetadata {
                platform: "test".into(),
                versions: vec!["1".into()],
                inputs: vec![TensorSpec {
                    name: "x".into(),
                    datatype: DataType::F32,
                    shape: vec![-1, 4],
                }],
                outputs: vec![
                    TensorSpec {
                        name: "y".into(),
                        datatype: DataType::F32,
                        shape: vec![-1, 4],
                    },
                    TensorSpec {
                        name: "s".into(),
                        datatype: DataType::F32,
                        shape: vec![-1, 1],
                    },
                ],
                finite_inputs_only: true,
            },
            delay: Duration::from_millis(delay_ms),
            calls: AtomicUsize::new(0),
        })
    }
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl InferenceBackend for Doubler {
    fn metadata(&self) -> &ModelMetadata {
        &self.meta
    }
    fn infer(&self, inputs: Vec<InferTensor>) -> Result<Vec<InferTensor>, String> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(self.delay);
        let x = inputs[0].to_f32().map_err(|e| e.to_string())?;
        let n = inputs[0].shape[0];
        let y: Vec<f32> = x.iter().map(|v| v * 2.0).collect();
        let s: Vec<f32> = x.chunks(4).map(|r| r.iter().sum()).collect();
        Ok(vec![
            InferTensor::from_f32("y", vec![n, 4], &y).map_err(|e| e.to_string())?,
            InferTensor::from_f32("s", vec![n, 1], &s).map_err(|e| e.to_string())?,
        ])
    }
}

pub fn x(rows: usize) -> InferTensor {
    let v: Vec<f32> = (0..rows * 4).map(|i| i as f32 * 0.5).collect();
    InferTensor::from_f32("x", vec![rows, 4], &v).unwrap()
}

/// A running in-process server; `stop()` triggers the shutdown future and waits for `run`.
pub struct Running {
    pub rest: SocketAddr,
    pub grpc: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<sieve_serve::Result<()>>>,
}

impl Running {
    pub fn rest_url(&self) -> String {
        format!("http://{}", self.rest)
    }
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc)
    }
    pub fn trigger_stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
    pub async fn stop(mut self) {
        self.trigger_stop();
        if let Some(h) = self.handle.take() {
            h.await.unwrap().unwrap();
        }
    }
}

pub fn test_config() -> ServeConfig {
    ServeConfig {
        rest_bind: Some("127.0.0.1:0".parse().unwrap()),
        grpc_bind: Some("127.0.0.1:0".parse().unwrap()),
        batch: BatchConfig {
            max_batch: 8,
            max_delay: Duration::from_millis(5),
            queue_capacity: 64,
            workers: 1,
        },
        ..Default::default()
    }
}

pub async fn start_with(config: ServeConfig, backend: Arc<dyn InferenceBackend>) -> Running {
    let server = Server::bind_backends(config, vec![("dbl".into(), backend)])
        .await
        .unwrap();
    let rest = server.rest_addr().unwrap();
    let grpc = server.grpc_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(server.run(async {
        let _ = rx.await;
    }));
    Running {
        rest,
        grpc,
        stop: Some(tx),
        handle: Some(handle),
    }
}

pub async fn start(backend: Arc<dyn InferenceBackend>) -> Running {
    start_with(test_config(), backend).await
}

/// Send raw bytes, read until the server closes; returns (status, headers+body text).
pub async fn raw_http(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// POST `body` to `path` with optional extra headers, `Connection: close`.
pub async fn post(addr: SocketAddr, path: &str, extra: &str, body: &[u8]) -> (u16, String) {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n{extra}\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    raw_http(addr, &req).await
}

pub async fn get(addr: SocketAddr, path: &str, extra: &str) -> (u16, String) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n");
    raw_http(addr, req.as_bytes()).await
}

/// The JSON body of a raw response.
pub fn json_body(text: &str) -> serde_json::Value {
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    serde_json::from_str(body).unwrap_or(serde_json::Value::Null)
}
