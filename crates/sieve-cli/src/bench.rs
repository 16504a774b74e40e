//! `sieve bench`: latency and throughput of one model at one batch size.

use crate::common::{check_batch_fits, image_input_chw, load_runner};
use anyhow::{bail, Result};
use sieve_nn::Tensor;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Arguments of `sieve bench`.
#[derive(clap::Args)]
pub struct Args {
    /// The model (.onnx).
    #[arg(long)]
    model: PathBuf,
    /// Batch size.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// For a .sieve package: exact | accurate (default) | approximate.
    #[arg(long)]
    variant: Option<String>,
    /// Worker threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Warm-up runs (not measured).
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Minimum measured runs.
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Keep measuring until at least this many seconds have passed.
    #[arg(long, default_value_t = 2.0)]
    min_seconds: f64,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

/// Deterministic pixel-like input (0..255) so runs are comparable.
fn synthetic_input(len: usize) -> Vec<f32> {
    let mut state: u32 = 0x9E37_79B9;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state % 256) as f32
        })
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Run `sieve bench`.
pub fn run(args: Args) -> Result<()> {
    if args.batch == 0 || args.runs == 0 {
        bail!("--batch and --runs must be at least 1");
    }
    let model = load_runner(&args.model, args.variant.as_deref(), args.threads)?;
    let [c, h, w] = image_input_chw(model.model())?;
    check_batch_fits(model.model(), args.batch, "--batch")?;
    let shape = vec![args.batch, c, h, w];
    let data = synthetic_input(shape.iter().product());
    let input = Tensor::from_f32(shape, data)?;
    for _ in 0..args.warmup {
        model.run(vec![input.clone()])?;
    }
    let mut times = Vec::new();
    let started = Instant::now();
    let min = Duration::from_secs_f64(args.min_seconds.max(0.0));
    while times.len() < args.runs || started.elapsed() < min {
        let t = Instant::now();
        model.run(vec![input.clone()])?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        if times.len() >= 100_000 {
            break;
        }
    }
    times.sort_by(f64::total_cmp);
    let median = percentile(&times, 0.5);
    let p90 = percentile(&times, 0.9);
    let throughput = args.batch as f64 * 1e3 / median;
    if args.json {
        let out = serde_json::json!({
            "model": args.model.display().to_string(),
            "batch": args.batch,
            "threads": rayon_threads(args.threads),
            "runs": times.len(),
            "median_ms": median,
            "p90_ms": p90,
            "min_ms": times[0],
            "throughput_per_s": throughput,
        });
        println!("{out}");
    } else {
        println!(
            "{} batch {}: median {:.3} ms, p90 {:.3} ms, min {:.3} ms over {} runs; {:.1} images/s",
            args.model.display(),
            args.batch,
            median,
            p90,
            times[0],
            times.len(),
            throughput
        );
    }
    Ok(())
}

fn rayon_threads(requested: usize) -> usize {
    if requested > 0 {
        requested
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}
