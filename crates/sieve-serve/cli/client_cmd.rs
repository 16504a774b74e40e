//! `sieve client infer` / `sieve client status`: talk to an Open Inference Protocol server
//! (ours, Triton, KServe, ...). `Args` + `run` are `infer`; `StatusArgs` + `run_status` are
//! `status`.

use anyhow::{bail, Context, Result};
use sieve_data::npy::{self, NpyData};
use sieve_serve::client::{BlockingClient, ClientConfig, Protocol};
use sieve_serve::InferTensor;
use std::path::PathBuf;
use std::time::Duration;

/// Connection options shared by the client subcommands.
#[derive(clap::Args, Debug)]
pub struct Conn {
    /// Server URL: http://HOST:PORT (the gRPC port with --protocol grpc).
    #[arg(long)]
    url: String,
    /// rest (binary tensors, JSON fallback), rest-json, or grpc.
    #[arg(long, default_value = "rest")]
    protocol: String,
    /// Time limit of one attempt, milliseconds.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// Retries after a connection failure, timeout or overload answer.
    #[arg(long, default_value_t = 2)]
    retries: u32,
    /// Bearer token.
    #[arg(long)]
    token: Option<String>,
}

impl Conn {
    fn client(&self) -> Result<BlockingClient> {
        let protocol: Protocol = self.protocol.parse()?;
        let config = ClientConfig {
            protocol,
            timeout: Duration::from_millis(self.timeout_ms),
            retries: self.retries,
            token: self.token.clone(),
            ..ClientConfig::default()
        };
        Ok(BlockingClient::new(&self.url, config)?)
    }
}

/// Arguments of `sieve client infer`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    conn: Conn,
    /// Model name on the server.
    #[arg(long)]
    model: String,
    /// Input batch (.npy, uint8 or float32), fed as FP32 to the model's first input.
    #[arg(long)]
    input: PathBuf,
    /// Input tensor name; default: the first input in the model's metadata, or "input" if the
    /// server reports none.
    #[arg(long)]
    input_name: Option<String>,
    /// Write the first output here (.npy, float32).
    #[arg(long)]
    output: Option<PathBuf>,
}

/// Arguments of `sieve client status`.
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    conn: Conn,
    /// Model whose metadata to print.
    #[arg(long)]
    model: Option<String>,
}

/// Run `sieve client status`: liveness, readiness, and a model's metadata. Fails (exit
/// code 1) when the server is not live or not ready, so that scripts and health checks
/// can rely on the exit code.
pub fn run_status(a: StatusArgs) -> Result<()> {
    let c = a.conn.client()?;
    let (live, ready) = (c.live()?, c.ready()?);
    println!("live: {live}");
    println!("ready: {ready}");
    if !(live && ready) {
        bail!(
            "{}: the server is not {}",
            a.conn.url,
            if live { "ready" } else { "live" }
        );
    }
    if let Some(m) = a.model {
        let meta = c.model_metadata(&m)?;
        println!(
            "model {m} (platform '{}', versions {:?})",
            meta.platform, meta.versions
        );
        for t in &meta.inputs {
            println!("  input  {} {} {:?}", t.name, t.datatype, t.shape);
        }
        for t in &meta.outputs {
            println!("  output {} {} {:?}", t.name, t.datatype, t.shape);
        }
    }
    Ok(())
}

/// Run `sieve client infer`.
pub fn run(a: Args) -> Result<()> {
    let c = a.conn.client()?;
    let arr = npy::read_npy(&a.input).with_context(|| format!("reading {}", a.input.display()))?;
    let values: Vec<f32> = match &arr.data {
        NpyData::U8(_) | NpyData::F32(_) => arr.to_f32_vec(),
        other => bail!(
            "input {}: dtype {} not supported; use uint8 or float32",
            a.input.display(),
            other.descr()
        ),
    };
    let name = match a.input_name {
        Some(n) => n,
        None => {
            let meta = c.model_metadata(&a.model)?;
            meta.inputs
                .first()
                .map_or_else(|| "input".to_string(), |i| i.name.clone())
        }
    };
    let tensor = InferTensor::from_f32(name, arr.shape.clone(), &values)?;
    let r = c.infer(&a.model, &[tensor])?;
    println!(
        "rtt_ms {:.3} total_ms {:.3} attempts {} protocol {:?}",
        r.rtt.as_secs_f64() * 1e3,
        r.total.as_secs_f64() * 1e3,
        r.attempts,
        r.protocol
    );
    for t in &r.outputs {
        println!("output {} {} {:?}", t.name, t.datatype, t.shape);
    }
    if let Some(first) = r.outputs.first() {
        let v = first.to_f32()?;
        let rows = first.shape.first().copied().unwrap_or(1).max(1);
        let per = v.len() / rows;
        if per > 0 {
            let argmax: Vec<usize> = v
                .chunks(per)
                .map(|row| {
                    row.iter()
                        .enumerate()
                        .fold(
                            (0, f32::NEG_INFINITY),
                            |b, (i, &x)| if x > b.1 { (i, x) } else { b },
                        )
                        .0
                })
                .collect();
            println!("argmax {argmax:?}");
        }
        if let Some(path) = &a.output {
            npy::write_npy_f32(path, &first.shape, &v)
                .with_context(|| format!("writing {}", path.display()))?;
            println!("wrote {}", path.display());
        }
    }
    Ok(())
}
