//! `sieve-design eval`: top-1 of every variant of a package (and of the source
//! model) on a dataset split, for the accuracy tables.

use anyhow::{Context, Result};
use sieve_data::{ModelCard, Split};
use sieve_design::{eval, Package, Variant};
use std::path::PathBuf;

/// Arguments of `sieve-design eval`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The package (.sieve).
    #[arg(long)]
    pub package: PathBuf,
    /// The source model, to also score the original (checked against the package's hash).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Dataset spec.
    #[arg(long)]
    pub dataset: String,
    /// Split.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Only the first N images.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Images per batch.
    #[arg(long, default_value_t = 50)]
    pub batch: usize,
    /// JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Runs `sieve-design eval`.
pub fn run(args: Args) -> Result<()> {
    let pkg = Package::open(&args.package)?;
    let split: Split = args.split.parse()?;
    // The package's output contract; a card next to `--model` overrides it.
    let mut offset = pkg
        .meta()
        .output
        .as_ref()
        .map_or(0, |c| c.background_offset);
    let mut rows = vec![];
    let mut original = None;
    if let Some(m) = &args.model {
        let bytes = std::fs::read(m).with_context(|| format!("reading {}", m.display()))?;
        anyhow::ensure!(
            pkg.is_source(&bytes),
            "{} is not the source model of {}",
            m.display(),
            args.package.display()
        );
        if let Some(c) = ModelCard::find_next_to(m)? {
            offset = c.output.background_offset;
        }
        original = Some(sieve_onnx::load_bytes(&bytes)?);
    }
    if let Some(model) = &original {
        let spec = eval::input_spec(model)?;
        let run = |t| Ok(model.run(vec![t])?);
        rows.push((
            Variant::Original,
            eval::top1(
                &run,
                spec,
                &args.dataset,
                split,
                args.limit,
                args.batch,
                offset,
            )?,
        ));
    }
    for v in Variant::SPECULATIVE {
        let sm = pkg.model(v)?;
        let spec = eval::input_spec(sm.model())?;
        let run = |t| sm.run(vec![t]);
        rows.push((
            v,
            eval::top1(
                &run,
                spec,
                &args.dataset,
                split,
                args.limit,
                args.batch,
                offset,
            )?,
        ));
    }
    if args.json {
        let out: Vec<_> = rows.iter().map(|(v, a)| serde_json::json!({"variant": v, "correct": a.correct, "images": a.images, "top1": a.top1})).collect();
        println!(
            "{}",
            serde_json::json!({"package": args.package.display().to_string(), "split": args.split, "results": out})
        );
    } else {
        for (v, a) in rows {
            println!(
                "{:<12} {:>8.2}%  ({}/{})",
                v.to_string(),
                100.0 * a.top1,
                a.correct,
                a.images
            );
        }
    }
    Ok(())
}
