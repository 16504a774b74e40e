//! `sieve design`: the speculative CNN design search; writes a `.sieve` package.

use crate::plain_progress::{self, PlainProgress};
use anyhow::{bail, Context, Result};
use sieve_data::{ModelCard, Split};
use sieve_design::meta::SearchSettings;
use sieve_design::search::Settings;
use sieve_design::{report, Package};
use std::path::PathBuf;

/// Arguments of `sieve design`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The source model (.onnx). Its card `model.toml`, if next to it, gives the background offset.
    #[arg(long)]
    pub model: PathBuf,
    /// Validation data: `mnist:DIR` | `cifar10:FILE_OR_DIR` | `images:DIR[:LABELS]`.
    #[arg(long)]
    pub val: String,
    /// Which split of `--val` to search on.
    #[arg(long, default_value = "validation")]
    pub val_split: String,
    /// Use only the first N images.
    #[arg(long)]
    pub limit: Option<usize>,
    /// The package to write (.sieve). A journal `<out>.journal` next to it lets an
    /// interrupted run resume.
    #[arg(long)]
    pub out: PathBuf,
    /// Write a human report (markdown, JSON, SVG/PNG plots) into this folder.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Images per evaluation batch.
    #[arg(long, default_value_t = 50)]
    pub batch: usize,
    /// Worker threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Memory the prefix-activation cache may use, in MiB.
    #[arg(long, default_value_t = 4096)]
    pub cache_mb: usize,
    /// Also try this many exponent widths above e_max (0 = the paper's sweep).
    #[arg(long, default_value_t = 0)]
    pub e_headroom: u8,
    /// The paper's search exactly: every sweep point (no skipping of points that
    /// cannot be chosen by accurate/approximate) and recovery ranked by each tensor's
    /// own accuracy loss over all tensors; per-tensor weight formats (no channel scales);
    /// every variant keeps its own combination.
    #[arg(long)]
    pub paper: bool,
    /// Per-tensor weight formats only (no per-output-channel power-of-two scales;
    /// `--paper` implies it).
    #[arg(long)]
    pub no_channel_scales: bool,
    /// Each variant keeps its own combination: the accurate and approximate variants do
    /// not adopt another variant's combination that meets their goal with fewer bits
    /// (`--paper` implies it).
    #[arg(long)]
    pub no_adopt_dominating: bool,
    /// The m sweep stops under this normalised accuracy (the paper: 0.998). With a
    /// small validation set one image can be more than 0.2% of it.
    #[arg(long)]
    pub sweep_floor: Option<f64>,
    /// Most recovery steps (widenings) per variant (default: no limit with the
    /// default doubling recovery, which needs O(log n) evaluations; twice the number
    /// of tensors with `--paper`, one widening per evaluation).
    #[arg(long)]
    pub max_recovery: Option<usize>,
    /// Beyond the paper: recover the exact and accurate variants until their top-1
    /// equals the original's on at least this share of the validation images (e.g.
    /// 0.97), not only until their accuracy does. Equal accuracy can hide changed
    /// answers that cancel out on the validation images and not on unseen ones.
    #[arg(long)]
    pub min_agreement: Option<f64>,
    /// Run the convolutional part of each evaluation this many images at a time (0 =
    /// whole batches). Speed only: used only where the values are bit-identical to
    /// whole batches (checked on the first batch), so the package is the same.
    #[arg(long, default_value_t = sieve_design::search::DEFAULT_SUB_BATCH)]
    pub sub_batch: usize,
    /// Per stage of layers with the same map size, as many images per sub-batch as keep
    /// the stage's largest layer output within this many bytes (a power of two; 0 =
    /// `--sub-batch` images throughout). Speed only, and used only where bit-identical
    /// to whole batches; otherwise `--sub-batch` applies.
    #[arg(long, default_value_t = sieve_design::search::DEFAULT_SUB_BATCH_BYTES)]
    pub sub_batch_bytes: usize,
    /// Evaluate every point and combination, even one whose network is identical to
    /// one already evaluated (a weight point quantising to the same tensor as another
    /// point of its tensor). Speed only: the package is the same either way.
    #[arg(long)]
    pub no_reuse: bool,
    /// Evaluate every point on all validation images. By default a point's evaluation
    /// stops once it can no longer reach the sweep floor (the package then records it
    /// as stopped, without figures) and a combination's once it cannot meet its goal;
    /// the formats and variants are the same either way.
    #[arg(long)]
    pub full_scores: bool,
    /// Evaluate the validation images in the dataset's order. By default they run
    /// fragile first (those the original gets wrong, then by its top-1 margin, smallest
    /// first), so that an evaluation that falls short stops after fewer images; scores
    /// count the same images either way, but fully-connected kernels round differently
    /// with other images in a batch (`--paper` implies this option).
    #[arg(long)]
    pub dataset_order: bool,
    /// Do not keep a journal (no resume).
    #[arg(long)]
    pub no_journal: bool,
    /// Stop after N new evaluations (testing resume).
    #[arg(long, hide = true)]
    pub max_evals: Option<usize>,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
    #[arg(long, default_value_t = 30.0, help = crate::plain_progress::PROGRESS_SECS_HELP)]
    pub progress_secs: f64,
}

/// Runs `sieve design`.
pub fn run(args: Args) -> Result<()> {
    // Lines for logs; the bar draws only on a terminal.
    let plain = PlainProgress::for_stderr("design", "evaluations", true, args.progress_secs)?;
    if args.threads > 0 {
        sieve_nn::set_threads(args.threads).context("setting the thread count")?;
    }
    let split: Split = args.val_split.parse()?;
    let bytes =
        std::fs::read(&args.model).with_context(|| format!("reading {}", args.model.display()))?;
    let card = ModelCard::find_next_to(&args.model)?;
    // The package is written at the end, through `<out>.tmp`: a folder that does not
    // exist or cannot be written fails now, not after the search; so does the report's.
    try_write(&Package::temp_path(&args.out))
        .with_context(|| format!("--out {}: cannot write there", args.out.display()))?;
    if let Some(dir) = &args.report {
        prepare_output_dir(dir, "--report")?;
    }
    let journal = (!args.no_journal).then(|| {
        let mut p = args.out.clone().into_os_string();
        p.push(".journal");
        PathBuf::from(p)
    });
    let mut search = SearchSettings {
        e_headroom: args.e_headroom,
        max_recovery_steps: args.max_recovery,
        ..if args.paper {
            SearchSettings::paper(args.batch)
        } else {
            SearchSettings::default_with_batch(args.batch)
        }
    };
    if args.no_channel_scales {
        search.channel_scales = false;
    }
    if args.no_adopt_dominating {
        search.adopt_dominating = false;
    }
    if args.dataset_order {
        search.fragile_first = false;
    }
    if let Some(f) = args.sweep_floor {
        if !(0.0..=1.0).contains(&f) {
            bail!("--sweep-floor must be in [0, 1], got {f}");
        }
        search.sweep_floor = f;
    }
    if let Some(a) = args.min_agreement {
        if !(0.0..=1.0).contains(&a) {
            bail!("--min-agreement must be in [0, 1], got {a}");
        }
        search.min_agreement = Some(a);
    }
    let settings = Settings {
        dataset: args.val.clone(),
        split,
        limit: args.limit,
        background_offset: card.as_ref().map_or(0, |c| c.output.background_offset),
        cache_bytes: args.cache_mb << 20,
        search,
        journal,
        max_evals: args.max_evals,
        output: card.as_ref().map(sieve_design::OutputContract::from_card),
        source_path: std::fs::canonicalize(&args.model)
            .ok()
            .map(|p| p.display().to_string()),
        sub_batch: args.sub_batch,
        sub_batch_bytes: args.sub_batch_bytes,
        reuse_identical: !args.no_reuse,
        stop_early: !args.full_scores,
    };
    let bar = plain_progress::bar(
        &plain,
        1,
        "{bar:30} {pos}/{len} evals  {elapsed_precise} eta {eta}  {msg}",
    );
    let progress = |e: &sieve_design::search::ProgressEvent| {
        if let Some(p) = &plain {
            p.update(e.done as u64, e.total as u64, &e.what);
        }
        // `total` 0: a phase before the count is known (its name only).
        if e.total > 0 {
            bar.set_length(e.total as u64);
            bar.set_position(e.done as u64);
        }
        bar.set_message(e.what.clone());
    };
    let outcome = sieve_design::design(&bytes, &settings, &progress);
    bar.finish_and_clear();
    if let Some(p) = &plain {
        p.finish(outcome.is_ok());
    }
    let outcome = outcome.with_context(|| format!("designing {}", args.model.display()))?;
    let timing = outcome.timing.clone();
    let pkg = Package::from_outcome(outcome);
    pkg.write(&args.out)
        .with_context(|| format!("writing {}", args.out.display()))?;
    let pkg_bytes = std::fs::metadata(&args.out).map(|m| m.len()).unwrap_or(0);
    if let Some(dir) = &args.report {
        report::write_report(pkg.meta(), dir).with_context(|| {
            format!(
                "the package is written to {}, but writing the report to {} failed",
                args.out.display(),
                dir.display()
            )
        })?;
    }
    let meta = pkg.meta();
    if meta.variants.is_empty() {
        bail!("no variant was produced");
    }
    if args.json {
        let variants: Vec<_> = meta
            .variants
            .iter()
            .map(|v| {
                serde_json::json!({
                    "variant": v.variant, "avg_weight_bits": v.avg_weight_bits,
                    "avg_activation_bits": v.avg_activation_bits, "weight_bytes": v.weight_bytes,
                    "val_top1": v.accuracy.top1, "normalised": v.normalised, "val_agree": v.agree,
                    "recovered": v.recovered,
                })
            })
            .collect();
        let out = serde_json::json!({
            "model": args.model.display().to_string(), "package": args.out.display().to_string(),
            "onnx_bytes": bytes.len(), "package_bytes": pkg_bytes, "images": meta.provenance.images,
            "baseline_top1": meta.baseline.top1, "points": meta.search.points,
            "combinations": meta.search.combinations, "variants": variants, "timing": timing,
        });
        println!("{out}");
    } else {
        println!(
            "{}: {} images, baseline top-1 {:.2}%, {} points explored, {} combinations, {:.1} s",
            args.model.display(),
            meta.provenance.images,
            100.0 * meta.baseline.top1,
            meta.search.points,
            meta.search.combinations,
            timing.total
        );
        println!("variant      w bits  a bits  weight bytes  val top-1  normalised  agree");
        for v in &meta.variants {
            println!(
                "{:<12} {:>6.2}  {:>6.2}  {:>12}  {:>8.2}%  {:>10.4}  {:>6}{}",
                v.variant.to_string(),
                v.avg_weight_bits,
                v.avg_activation_bits,
                v.weight_bytes,
                100.0 * v.accuracy.top1,
                v.normalised,
                v.agreement_text(),
                recovery_note(&v.recovered)
            );
        }
        println!(
            "package {} ({} bytes; ONNX {} bytes)",
            args.out.display(),
            pkg_bytes,
            bytes.len()
        );
    }
    Ok(())
}

/// Creates an output directory (`what` names the option) and checks that files can be
/// written there, before a long run whose results would otherwise meet the bad path
/// only at the end. (Shared with `calibrate` and `speculate`.)
pub fn prepare_output_dir(dir: &std::path::Path, what: &str) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("{what} {}: cannot create the directory", dir.display()))?;
    try_write(&dir.join(".sieve-write-check"))
        .with_context(|| format!("{what} {}: cannot write files there", dir.display()))
}

/// Creates `file` empty and removes it again: can it be written?
fn try_write(file: &std::path::Path) -> std::io::Result<()> {
    std::fs::write(file, b"")?;
    // Best effort: the file is empty and harmless if it stays.
    let _ = std::fs::remove_file(file);
    Ok(())
}

/// Most recovery widenings the human summary names; `--json` lists them all.
const RECOVERY_SHOWN: usize = 3;

/// The summary's note on a variant's recovery widenings: none, or the count and the
/// first few (a recovery can take hundreds, one line each in `--json`).
fn recovery_note(recovered: &[String]) -> String {
    match recovered.len() {
        0 => String::new(),
        n if n <= RECOVERY_SHOWN => format!("  (recovered: {})", recovered.join("; ")),
        n => format!(
            "  (recovered by {n} widenings: {}; ... {} more in --json)",
            recovered[..RECOVERY_SHOWN].join("; "),
            n - RECOVERY_SHOWN
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::recovery_note;

    #[test]
    fn a_long_recovery_is_summarised() {
        let steps: Vec<String> = (0..29).map(|i| format!("t{i}: a -> b")).collect();
        assert_eq!(recovery_note(&[]), "");
        assert_eq!(
            recovery_note(&steps[..2]),
            "  (recovered: t0: a -> b; t1: a -> b)"
        );
        assert_eq!(
            recovery_note(&steps),
            "  (recovered by 29 widenings: t0: a -> b; t1: a -> b; t2: a -> b; ... 26 more in --json)"
        );
    }
}
