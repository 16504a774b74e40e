//! `sieve inspect`: what a `.sieve` package holds.

use anyhow::Result;
use sieve_design::{Package, TensorKind};
use std::path::PathBuf;

/// Arguments of `sieve inspect`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The package (.sieve).
    pub package: PathBuf,
    /// Print the metadata as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Runs `sieve inspect`.
pub fn run(args: Args) -> Result<()> {
    let pkg = Package::open(&args.package)?;
    let file_bytes = std::fs::metadata(&args.package)
        .map(|m| m.len())
        .unwrap_or(0);
    let meta = pkg.meta();
    if args.json {
        let out = serde_json::json!({
            "package": args.package.display().to_string(), "file_bytes": file_bytes,
            "format_version": pkg.format_version(), "graph_bytes": pkg.graph_bytes().len(),
            "meta": meta,
        });
        println!("{out}");
        return Ok(());
    }
    let p = &meta.provenance;
    println!(
        "{} ({} bytes, format v{}, checksum ok)",
        args.package.display(),
        file_bytes,
        pkg.format_version()
    );
    println!(
        "  tool {}; source model sha256 {} ({} bytes)",
        meta.tool, p.model_sha256, p.model_bytes
    );
    println!(
        "  data {} [{}], {} images, fingerprint {}",
        p.dataset, p.split, p.images, p.dataset_fingerprint
    );
    println!(
        "  baseline val top-1 {:.2}%; {} points explored",
        100.0 * meta.baseline.top1,
        meta.search.points
    );
    let scaled = meta
        .tensors
        .iter()
        .filter(|t| t.channel_scales.is_some())
        .count();
    if scaled > 0 {
        println!(
            "  per-channel weight scales on {scaled} weight tensors (formats marked '/cs'; one i8 shift per channel, counted in w bits and bytes)"
        );
    }
    println!(
        "  graph {} bytes; {} packed weight tensors",
        pkg.graph_bytes().len(),
        pkg.weight_tensors().len()
    );
    println!("\nvariant      w bits  a bits  weight bytes  val top-1  normalised  agree");
    for v in &meta.variants {
        println!(
            "{:<12} {:>6.2}  {:>6.2}  {:>12}  {:>8.2}%  {:>10.4}  {:>6}",
            v.variant.to_string(),
            v.avg_weight_bits,
            v.avg_activation_bits,
            v.weight_bytes,
            100.0 * v.accuracy.top1,
            v.normalised,
            v.agreement_text()
        );
    }
    println!(
        "\nlayer / tensor                          kind     elements   {}",
        meta.variants
            .iter()
            .map(|v| format!("{:<16}", v.variant.to_string()))
            .collect::<String>()
    );
    for t in &meta.tensors {
        let kind = if t.kind == TensorKind::Weight {
            "weight"
        } else {
            "act"
        };
        let fmts: String = meta
            .variants
            .iter()
            .map(|v| {
                format!(
                    "{:<16}",
                    v.formats
                        .get(t.id)
                        .copied()
                        .flatten()
                        .map_or("f32".to_string(), |f| {
                            let cs = if t.channel_scales.is_some() {
                                "/cs"
                            } else {
                                ""
                            };
                            format!("{f}{cs}:{}", f.width())
                        })
                )
            })
            .collect();
        let label: String = format!("{}:{}", t.layer_name, t.name)
            .chars()
            .take(38)
            .collect();
        println!("{label:<39} {kind:<7} {:>9}   {fmts}", t.elements);
    }
    if !meta.calibration.is_empty() {
        println!(
            "\ncalibration sections: {}",
            meta.calibration
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}
