//! `sieve infer`: run a model on a .npy batch and write the raw outputs as .npy.

use crate::common::{check_batch_fits, load_runner};
use anyhow::{bail, Context, Result};
use sieve_data::npy::{self, NpyData};
use sieve_nn::Tensor;
use std::path::PathBuf;

/// Arguments of `sieve infer`.
#[derive(clap::Args)]
pub struct Args {
    /// The model (.onnx).
    #[arg(long)]
    model: PathBuf,
    /// Input batch: .npy, uint8 or float32, N x C x H x W.
    #[arg(long)]
    input: PathBuf,
    /// Where to write the first output (.npy, float32). Further outputs go to `<stem>.<name>.npy`.
    #[arg(long)]
    output: PathBuf,
    /// For a .sieve package: exact | accurate (default) | approximate.
    #[arg(long)]
    variant: Option<String>,
    /// Worker threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Print a machine-readable summary on stdout.
    #[arg(long)]
    json: bool,
}

/// Run `sieve infer`.
pub fn run(args: Args) -> Result<()> {
    let model = load_runner(&args.model, args.variant.as_deref(), args.threads)?;
    let arr = npy::read_npy(&args.input)
        .with_context(|| format!("reading input {}", args.input.display()))?;
    let data: Vec<f32> = match arr.data {
        NpyData::U8(v) => v.into_iter().map(f32::from).collect(),
        NpyData::F32(v) => v,
        other => bail!(
            "input {}: dtype {} not supported; use uint8 or float32",
            args.input.display(),
            other.descr()
        ),
    };
    if let Some(&n) = arr.shape.first() {
        check_batch_fits(model.model(), n, "an input batch of")?;
    }
    let input = Tensor::from_f32(arr.shape.clone(), data)
        .with_context(|| format!("input {}", args.input.display()))?;
    let start = std::time::Instant::now();
    let outputs = model.run(vec![input])?;
    let elapsed = start.elapsed();
    let mut written = Vec::new();
    for (i, (out, info)) in outputs.iter().zip(model.model().outputs()).enumerate() {
        let path = if i == 0 {
            args.output.clone()
        } else {
            let stem = args
                .output
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy();
            args.output
                .with_file_name(format!("{stem}.{}.npy", info.name))
        };
        let values = out
            .as_f32()
            .with_context(|| format!("output '{}' is not float32", info.name))?;
        npy::write_npy_f32(&path, out.shape(), values)
            .with_context(|| format!("writing {}", path.display()))?;
        written.push(serde_json::json!({
            "name": info.name, "shape": out.shape(), "path": path.display().to_string()
        }));
    }
    if args.json {
        let summary = serde_json::json!({
            "model": args.model.display().to_string(),
            "input_shape": arr.shape,
            "outputs": written,
            "elapsed_ms": elapsed.as_secs_f64() * 1e3,
        });
        println!("{summary}");
    } else {
        for w in &written {
            println!("wrote {} {} to {}", w["name"], w["shape"], w["path"]);
        }
    }
    Ok(())
}
