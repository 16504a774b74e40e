//! Bounded closed-loop load generator for Open Inference Protocol servers (ours or a peer):
//! C concurrent clients each send single-image requests back to back for D seconds, on
//! loopback only. Prints one JSON line: requests, errors, throughput, p50/p99 latency.
//! Exits non-zero if any request failed.
//!
//! `cargo run --release -p sieve-serve --example loadgen -- --url http://127.0.0.1:8000
//!  --model lenet5 --input fixtures/lenet5/reference/input_uint8.npy --concurrency 64 --secs 30`

use anyhow::{bail, Context, Result};
use clap::Parser;
use sieve_serve::client::{Client, ClientConfig, Protocol};
use sieve_serve::InferTensor;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// Server URL (loopback).
    #[arg(long)]
    url: String,
    /// Model name.
    #[arg(long)]
    model: String,
    /// .npy batch; its first image is sent in every request.
    #[arg(long)]
    input: std::path::PathBuf,
    /// rest, rest-json or grpc.
    #[arg(long, default_value = "rest")]
    protocol: String,
    /// Concurrent clients.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Duration, seconds.
    #[arg(long, default_value_t = 30)]
    secs: u64,
    /// Label printed with the result.
    #[arg(long, default_value = "")]
    label: String,
}

fn main() -> Result<()> {
    let a = Args::parse();
    let host = a
        .url
        .trim_start_matches("http://")
        .split(':')
        .next()
        .unwrap_or_default()
        .to_string();
    if !(host == "localhost" || host.starts_with("127.") || host == "[::1]") {
        bail!("load tests target loopback only, not '{host}'");
    }
    let arr = sieve_data::npy::read_npy(&a.input)
        .with_context(|| format!("reading {}", a.input.display()))?;
    let per = arr.len() / arr.shape[0].max(1);
    let x: Vec<f32> = arr.to_f32_vec()[..per].to_vec();
    let mut shape = arr.shape.clone();
    shape[0] = 1;
    let protocol: Protocol = a.protocol.parse()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let config = ClientConfig { protocol, timeout: Duration::from_secs(60), retries: 0, ..Default::default() };
        let client = Arc::new(Client::new(&a.url, config)?);
        let meta = client.model_metadata(&a.model).await?;
        let name = meta.inputs.first().map_or_else(|| "input".to_string(), |i| i.name.clone());
        let input = InferTensor::from_f32(name, shape, &x)?;
        // Warm-up (and binary/JSON negotiation) outside the measurement.
        client.infer(&a.model, std::slice::from_ref(&input)).await?;
        let until = Instant::now() + Duration::from_secs(a.secs);
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..a.concurrency {
            let c = client.clone();
            let input = input.clone();
            let model = a.model.clone();
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut errors = Vec::new();
                while Instant::now() < until {
                    let t = Instant::now();
                    match c.infer(&model, std::slice::from_ref(&input)).await {
                        Ok(_) => lat.push(t.elapsed()),
                        Err(e) => errors.push(e.to_string()),
                    }
                }
                (lat, errors)
            }));
        }
        let mut lat = Vec::new();
        let mut errors = Vec::new();
        for t in tasks {
            let (l, e) = t.await?;
            lat.extend(l);
            errors.extend(e);
        }
        let elapsed = start.elapsed().as_secs_f64();
        lat.sort();
        let pct = |p: f64| -> f64 {
            if lat.is_empty() {
                return f64::NAN;
            }
            let i = ((lat.len() as f64 - 1.0) * p).round() as usize;
            lat[i].as_secs_f64() * 1e3
        };
        let out = serde_json::json!({
            "label": a.label, "model": a.model, "protocol": a.protocol, "concurrency": a.concurrency,
            "secs": a.secs, "requests": lat.len(), "errors": errors.len(),
            "throughput_rps": lat.len() as f64 / elapsed, "p50_ms": pct(0.5), "p99_ms": pct(0.99),
            "first_error": errors.first(),
        });
        println!("{out}");
        if !errors.is_empty() {
            bail!("{} of {} requests failed; first: {}", errors.len(), errors.len() + lat.len(), errors[0]);
        }
        Ok(())
    })
}
