//! `sieve serve`: serve models over the Open Inference Protocol (REST + gRPC) until SIGINT or
//! SIGTERM, then finish in-flight requests and exit.

use anyhow::{bail, Context, Result};
use sieve_serve::{BatchConfig, Limits, ModelSource, ServeConfig, TlsPaths};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Arguments of `sieve serve`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A model to serve, as NAME=PATH (.onnx). Repeat for several models.
    #[arg(long = "model", value_name = "NAME=PATH", required = true)]
    models: Vec<String>,
    /// REST listen address (loopback by default; port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8000")]
    bind: SocketAddr,
    /// gRPC listen address.
    #[arg(long, default_value = "127.0.0.1:8001")]
    grpc_bind: SocketAddr,
    /// Do not serve gRPC.
    #[arg(long)]
    no_grpc: bool,
    /// Dynamic batching: most images merged into one model run (1 disables batching).
    #[arg(long, default_value_t = 8)]
    max_batch: usize,
    /// Dynamic batching: longest wait for more requests to join a batch, milliseconds.
    #[arg(long, default_value_t = 2)]
    max_delay_ms: u64,
    /// Requests that may wait per model; more are refused with 503 / RESOURCE_EXHAUSTED.
    #[arg(long, default_value_t = 256)]
    queue: usize,
    /// Worker threads executing batches, per model.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Engine threads per model run (0 = all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Default per-request deadline, milliseconds.
    #[arg(long, default_value_t = 30_000)]
    timeout_ms: u64,
    /// Largest request body / gRPC message, MiB.
    #[arg(long, default_value_t = 64)]
    max_body_mib: usize,
    /// Require `Authorization: Bearer TOKEN` on every call except health checks.
    #[arg(long)]
    token: Option<String>,
    /// TLS certificate chain (PEM); needs --tls-key.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM); needs --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Allow a non-loopback bind without TLS and a token.
    #[arg(long)]
    allow_insecure_public: bool,
}

fn parse_model(spec: &str) -> Result<ModelSource> {
    let Some((name, path)) = spec.split_once('=') else {
        bail!("--model '{spec}': expected NAME=PATH");
    };
    if name.is_empty() || name.contains('/') {
        bail!("--model '{spec}': the name must be non-empty and contain no '/'");
    }
    Ok(ModelSource {
        name: name.to_string(),
        path: PathBuf::from(path),
    })
}

/// The server configuration these arguments describe.
pub fn config(args: &Args) -> Result<ServeConfig> {
    let models = args
        .models
        .iter()
        .map(|m| parse_model(m))
        .collect::<Result<Vec<_>>>()?;
    Ok(ServeConfig {
        models,
        rest_bind: Some(args.bind),
        grpc_bind: (!args.no_grpc).then_some(args.grpc_bind),
        batch: BatchConfig {
            max_batch: args.max_batch,
            max_delay: Duration::from_millis(args.max_delay_ms),
            queue_capacity: args.queue,
            workers: args.workers,
        },
        limits: Limits {
            max_body_bytes: args.max_body_mib << 20,
            request_timeout: Duration::from_millis(args.timeout_ms),
            ..Limits::default()
        },
        auth_token: args.token.clone(),
        tls: match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(TlsPaths {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        },
        allow_insecure_public: args.allow_insecure_public,
    })
}

/// Run `sieve serve`.
pub fn run(args: Args) -> Result<()> {
    if args.threads > 0 {
        sieve_nn::set_threads(args.threads).context("setting the engine thread count")?;
    }
    let config = config(&args)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(sieve_serve::serve(config, sieve_serve::shutdown_signal()))?;
    eprintln!("sieve-serve: stopped");
    Ok(())
}
