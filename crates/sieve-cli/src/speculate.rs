//! `sieve speculate`: offline speculative inference with the misspeculation
//! detector and replay on the original, on a (test) split: per variant and
//! mode, final top-1, replay rate, speculation success and the correctable
//! errors caught and missed. Each model runs once; every row is derived from
//! the recorded outputs.

use crate::calibrate::{model_name, open_all, open_dataset, record_all, short_spec};
use anyhow::{bail, Result};
use sieve_design::Variant;
use sieve_runtime::calibration::{DetectorSection, TargetChoice};
use sieve_runtime::plots::{self, PlotInfo};
use sieve_runtime::record::records;
use sieve_runtime::{speculate, Mode};
use std::path::PathBuf;

/// Arguments of `sieve speculate`.
#[derive(clap::Args)]
pub struct Args {
    /// The calibrated speculative model package (.sieve).
    #[arg(long)]
    package: PathBuf,
    /// Data: `mnist:DIR` | `cifar10:FILE_OR_DIR` | `images:DIR:LABELS`.
    #[arg(long)]
    dataset: String,
    /// Which split (report on `test`, not on the calibration split).
    #[arg(long, default_value = "test")]
    split: String,
    /// The original ONNX model (default: the path recorded in the package).
    #[arg(long)]
    model: Option<PathBuf>,
    /// `all` or a comma-separated list of exact, accurate, approximate.
    #[arg(long, default_value = "all")]
    variant: String,
    /// `all` (normal and power-saving) or a comma-separated list of normal,
    /// power-saving, mission-critical, private.
    #[arg(long, default_value = "all")]
    mode: String,
    /// Use only the first N items of the split.
    #[arg(long)]
    limit: Option<usize>,
    /// Write Fig. 3, Fig. 4 and the replay curve on this split, per variant (SVG + PNG).
    #[arg(long)]
    plots: Option<PathBuf>,
    /// Images per inference batch.
    #[arg(long, default_value_t = 50)]
    batch: usize,
    /// Worker threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
    #[arg(long, default_value_t = 30.0, help = crate::plain_progress::PROGRESS_SECS_HELP)]
    progress_secs: f64,
}

fn parse_list<T>(s: &str, all: &[T]) -> Result<Vec<T>>
where
    T: std::str::FromStr + Copy,
    anyhow::Error: From<T::Err>,
{
    if s == "all" {
        return Ok(all.to_vec());
    }
    s.split(',').map(|x| Ok(x.trim().parse::<T>()?)).collect()
}

/// Run `sieve speculate`.
pub fn run(args: Args) -> Result<()> {
    let (pkg, original, _) = open_all(&args.package, args.model.as_deref(), args.threads)?;
    let Some(section) = DetectorSection::from_package(&pkg)? else {
        bail!(
            "{} has no detector calibration: run `sieve calibrate --package {} --val ...` first",
            args.package.display(),
            args.package.display()
        );
    };
    let scores = section.scores;
    let variants: Vec<Variant> = parse_list(&args.variant, &Variant::SPECULATIVE)?;
    if variants.contains(&Variant::Original) {
        bail!("--variant original: the original is always run (it answers replayed inputs)");
    }
    let modes: Vec<Mode> = parse_list(&args.mode, &[Mode::Normal, Mode::PowerSaving])?;
    let ds = open_dataset(&args.dataset, &args.split, args.limit, &original)?;
    if let Some(dir) = &args.plots {
        crate::design_cmd::prepare_output_dir(dir, "--plots")?;
    }
    let (orig, runs) = record_all(
        &pkg,
        &original,
        &variants,
        ds.as_ref(),
        args.batch,
        &scores,
        ("speculate", args.progress_secs),
    )?;
    let name = model_name(&args.package);
    let images = orig.labels.len();
    let data = format!(
        "{} [{}], {} images",
        short_spec(&args.dataset),
        args.split,
        images
    );
    let mut rows = vec![];
    let mut oracles = serde_json::Map::new();
    for (v, run) in variants.iter().zip(&runs) {
        let recs = records(run, &orig, &scores)?;
        // Diagnostic: the smallest threshold that would have kept this split's
        // final top-1 within 0.1 point of the original's (fitted on this split).
        let orig_correct = recs.iter().filter(|r| r.original_correct).count() as f64;
        if orig_correct > 0.0 {
            let t = ((orig_correct - 0.001 * recs.len() as f64) / orig_correct).clamp(1e-9, 1.0);
            let o = sieve_runtime::choose_threshold(&recs, t)?;
            oracles.insert(
                v.name().to_string(),
                serde_json::json!({
                    "threshold": if o.detector.threshold.is_finite() { serde_json::json!(o.detector.threshold) } else { serde_json::json!("inf") },
                    "replay_rate": o.tally.replay_rate(), "final_top1": o.tally.final_top1(),
                }),
            );
        }
        let mut choices = vec![];
        for &m in &modes {
            let det = section.detector(*v, m)?;
            let r = speculate(&recs, det);
            let target = section.modes.get(m.name()).copied();
            let val_rate = target.and_then(|t| {
                section
                    .variants
                    .get(v.name())
                    .and_then(|c| c.choice(t))
                    .map(|c| c.replay_rate)
            });
            if let (Some(t), Mode::Normal | Mode::PowerSaving) = (target, m) {
                choices.push(TargetChoice {
                    target: t,
                    threshold: det.threshold,
                    replay_rate: r.replay_rate,
                    final_top1: r.final_top1,
                    tally: r.tally,
                    catch_share: section
                        .variants
                        .get(v.name())
                        .and_then(|c| c.choice(t))
                        .map_or(0.0, |c| c.catch_share),
                });
            }
            rows.push((*v, m, target, val_rate, r));
        }
        if let Some(dir) = &args.plots {
            let info = PlotInfo {
                model: &name,
                variant: v.name(),
                data: &data,
                choices: &choices,
            };
            plots::write_all(dir, &recs, &info)?;
        }
    }
    if args.json {
        let list: Vec<serde_json::Value> = rows
            .iter()
            .map(|(v, m, t, vr, r)| {
                serde_json::json!({
                    "variant": v.name(), "mode": m.name(), "target": t,
                    "threshold": if r.threshold.is_finite() { serde_json::json!(r.threshold) } else { serde_json::json!("inf") },
                    "val_replay_rate": vr,
                    "final_top1": r.final_top1, "original_top1": r.original_top1,
                    "speculative_top1": r.speculative_top1, "replay_rate": r.replay_rate,
                    "success_rate": r.success_rate, "images": r.images,
                    "correctable_caught": r.tally.correctable_caught,
                    "correctable_missed": r.tally.correctable_missed,
                    "tally": r.tally,
                })
            })
            .collect();
        let out = serde_json::json!({
            "package": args.package.display().to_string(), "dataset": args.dataset,
            "split": args.split, "images": images, "rows": list,
            "oracle_within_0_1pt": oracles,
        });
        println!("{out}");
        return Ok(());
    }
    println!("{}: {data}", args.package.display());
    println!("variant      mode          threshold  val P_r  replay  success  final top-1  orig top-1  spec top-1  correctable caught/missed");
    for (v, m, _, vr, r) in &rows {
        println!(
            "{:<12} {:<13} {:>9}  {:>7}  {:>5.2}%  {:>6.2}%  {:>10.2}%  {:>9.2}%  {:>9.2}%  {}/{}",
            v.name(),
            m.name(),
            if r.threshold.is_finite() {
                format!("{:.5}", r.threshold)
            } else {
                "inf".into()
            },
            vr.map_or("-".into(), |x| format!("{:.2}%", 100.0 * x)),
            100.0 * r.replay_rate,
            100.0 * r.success_rate,
            100.0 * r.final_top1,
            100.0 * r.original_top1,
            100.0 * r.speculative_top1,
            r.tally.correctable_caught,
            r.tally.correctable_missed
        );
    }
    Ok(())
}
