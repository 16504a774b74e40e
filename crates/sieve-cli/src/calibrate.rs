//! `sieve calibrate`: the misspeculation detector's calibration (paper §III-C).
//! Runs the original and every speculative variant of a package once over the
//! validation split, chooses per variant and target the smallest confidence
//! threshold that keeps `target x` the original's accuracy, and stores the
//! result in the package (section `detector`).

use crate::plain_progress::{self, PlainProgress};
use anyhow::{bail, Context, Result};
use sieve_data::{Dataset, DatasetSpec, ModelCard, Split};
use sieve_design::{Package, Variant};
use sieve_nn::Tensor;
use sieve_runtime::calibration::{DetectorSection, RULE, SECTION_VERSION};
use sieve_runtime::plots::{self, PlotInfo};
use sieve_runtime::record::{record, records, Recorded};
use sieve_runtime::{RuntimeError, Scores, VariantCalibration};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Arguments of `sieve calibrate`.
#[derive(clap::Args)]
pub struct Args {
    /// The speculative model package (.sieve); the result is stored in it.
    #[arg(long)]
    package: PathBuf,
    /// Validation data: `mnist:DIR` | `cifar10:FILE_OR_DIR` | `images:DIR:LABELS`.
    #[arg(long)]
    val: String,
    /// Which split of `--val` to calibrate on.
    #[arg(long, default_value = "validation")]
    split: String,
    /// The original ONNX model (default: the path recorded in the package); its
    /// sha256 must match the package's source model.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Target quality as a fraction of the original's accuracy, repeatable
    /// (normal mode uses 1.0, power-saving the smallest).
    #[arg(long = "target", default_values_t = [1.0, 0.99])]
    targets: Vec<f64>,
    /// Margin: every threshold must also replay at least this share (0..=1) of
    /// the validation's correctable inputs (speculative wrong, original right).
    /// 0 is the paper's rule (net accuracy only); see docs/DETECTOR.md.
    #[arg(long, default_value_t = 0.0)]
    catch_share: f64,
    /// Use only the first N items of the split.
    #[arg(long)]
    limit: Option<usize>,
    /// Write Fig. 3, Fig. 4 and the accuracy-vs-replay curve per variant (SVG + PNG) here.
    #[arg(long)]
    plots: Option<PathBuf>,
    /// Images per inference batch.
    #[arg(long, default_value_t = 50)]
    batch: usize,
    /// Worker threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Print one JSON object (the stored section) on stdout.
    #[arg(long)]
    json: bool,
    #[arg(long, default_value_t = 30.0, help = crate::plain_progress::PROGRESS_SECS_HELP)]
    progress_secs: f64,
}

/// How to read the outputs: the package's recorded output contract, else the
/// model card next to `--model` or next to the recorded source ONNX.
pub fn resolve_scores(pkg: &Package, model: Option<&Path>) -> Result<Scores> {
    if let Some(c) = &pkg.meta().output {
        return Ok(Scores::from_contract(c)?);
    }
    let recorded = pkg.meta().provenance.source_path.as_deref().map(Path::new);
    for p in [model, recorded].into_iter().flatten() {
        if let Some(card) = ModelCard::find_next_to(p)? {
            return Ok(Scores::from_card(&card)?);
        }
    }
    bail!("the package records no output contract and no model card (model.toml) was found next to the original model; pass --model with its card beside it")
}

/// Loads the package, the original model and the output contract; sets threads.
pub fn open_all(
    package: &Path,
    model: Option<&Path>,
    threads: usize,
) -> Result<(Package, sieve_nn::Model, Scores)> {
    if threads > 0 {
        sieve_nn::set_threads(threads).context("setting the thread count")?;
    }
    let pkg =
        Package::open(package).with_context(|| format!("loading package {}", package.display()))?;
    let original = pkg.original_model(model)?;
    let scores = resolve_scores(&pkg, model)?;
    Ok((pkg, original, scores))
}

/// Opens `spec`'s `split` for the model's input geometry, limited to `limit` items.
pub fn open_dataset(
    spec: &str,
    split: &str,
    limit: Option<usize>,
    model: &sieve_nn::Model,
) -> Result<Box<dyn Dataset>> {
    let split: Split = split.parse()?;
    let input = sieve_design::eval::input_spec(model)?;
    let ds_spec = DatasetSpec::parse(spec)?;
    let mut ds = sieve_data::open(&ds_spec, split, input)
        .with_context(|| format!("opening dataset {spec}"))?;
    if let Some(n) = limit {
        ds = sieve_data::limit(ds, n);
    }
    if ds.is_empty() {
        bail!("dataset {spec} ({split:?} split) has no items");
    }
    Ok(ds)
}

/// Runs the original and each variant once over `ds`: (original, per variant).
/// `(label, progress_secs)`: the command, and its `--progress-secs` (plain progress
/// lines when stderr is not a terminal).
pub fn record_all(
    pkg: &Package,
    original: &sieve_nn::Model,
    variants: &[Variant],
    ds: &dyn Dataset,
    batch: usize,
    scores: &Scores,
    (label, progress_secs): (&'static str, f64),
) -> Result<(Recorded, Vec<Recorded>)> {
    if batch == 0 {
        bail!("--batch must be at least 1");
    }
    crate::common::check_batch_fits(original, batch.min(ds.len()), "--batch")?;
    let n = ds.len() as u64;
    let total = n * (1 + variants.len() as u64);
    // Lines for logs (`label`: the command); the bar draws only on a terminal.
    let plain = PlainProgress::for_stderr(label, "runs", false, progress_secs)?;
    let bar = plain_progress::bar(
        &plain,
        total,
        "{msg:12} {bar:40} {pos}/{len} runs  {per_sec}  eta {eta}",
    );
    let done = AtomicU64::new(0);
    // The bar (hidden or not) keeps what runs as its message.
    let tick = |k: u64| {
        bar.inc(k);
        let d = done.fetch_add(k, Ordering::Relaxed) + k;
        if let Some(p) = &plain {
            p.update(d, total, &bar.message());
        }
    };
    bar.set_message("original");
    let run_orig = |t: Tensor| -> Result<Vec<Tensor>, RuntimeError> { Ok(original.run(vec![t])?) };
    let orig = record("original", &run_orig, ds, batch, scores, &tick)?;
    let mut out = vec![];
    for &v in variants {
        bar.set_message(v.name());
        let m = pkg.model(v)?;
        let run = |t: Tensor| -> Result<Vec<Tensor>, RuntimeError> { Ok(m.run(vec![t])?) };
        out.push(record(v.name(), &run, ds, batch, scores, &tick)?);
    }
    bar.finish_and_clear();
    if let Some(p) = &plain {
        p.finish(true);
    }
    Ok((orig, out))
}

/// A dataset spec with its paths cut to their last component (plot subtitles).
pub fn short_spec(spec: &str) -> String {
    spec.split(':')
        .map(|p| {
            Path::new(p)
                .file_name()
                .map_or(p.to_string(), |f| f.to_string_lossy().into_owned())
        })
        .collect::<Vec<_>>()
        .join(":")
}

/// The file stem of the package (model name in plots).
pub fn model_name(package: &Path) -> String {
    package
        .file_stem()
        .map_or("model".into(), |s| s.to_string_lossy().into_owned())
}

/// Run `sieve calibrate`.
pub fn run(args: Args) -> Result<()> {
    if args.targets.is_empty() {
        bail!("give at least one --target");
    }
    for &t in &args.targets {
        if !(t > 0.0 && t <= 1.0) {
            return Err(RuntimeError::Target(t).into());
        }
    }
    if !(0.0..=1.0).contains(&args.catch_share) {
        bail!(
            "--catch-share {} is outside [0, 1]: it is the share of the correctable inputs to replay",
            args.catch_share
        );
    }
    let (mut pkg, original, scores) = open_all(&args.package, args.model.as_deref(), args.threads)?;
    let ds = open_dataset(&args.val, &args.split, args.limit, &original)?;
    if let Some(dir) = &args.plots {
        crate::design_cmd::prepare_output_dir(dir, "--plots")?;
    }
    let variants: Vec<Variant> = pkg.meta().variants.iter().map(|v| v.variant).collect();
    let (orig, runs) = record_all(
        &pkg,
        &original,
        &variants,
        ds.as_ref(),
        args.batch,
        &scores,
        ("calibrate", args.progress_secs),
    )?;
    let original_correct = orig
        .predictions
        .iter()
        .zip(&orig.labels)
        .filter(|(p, &l)| scores.is_correct(**p, l))
        .count() as u64;
    let images = orig.labels.len() as u64;
    let name = model_name(&args.package);
    let data = format!(
        "{} [{}], {} images",
        short_spec(&args.val),
        args.split,
        images
    );
    let mut vars = BTreeMap::new();
    let mut recorded = Vec::new();
    for (v, run) in variants.iter().zip(&runs) {
        let recs = records(run, &orig, &scores)?;
        let vc = VariantCalibration::calibrate(&recs, &args.targets, args.catch_share)?;
        recorded.push((*v, recs, vc.choices.clone()));
        vars.insert(v.name().to_string(), vc);
    }
    let section = DetectorSection {
        version: SECTION_VERSION,
        rule: RULE.into(),
        scores,
        dataset: args.val.clone(),
        split: args.split.clone(),
        images,
        original_correct,
        original_top1: original_correct as f64 / images.max(1) as f64,
        modes: DetectorSection::mode_targets(&args.targets),
        variants: vars,
    };
    section.store(&mut pkg)?;
    // Package::write goes through a temporary file and a rename.
    pkg.write(&args.package)
        .with_context(|| format!("writing {}", args.package.display()))?;
    // Plots last: a failure there must not lose the calibration, which is stored now.
    if let Some(dir) = &args.plots {
        for (v, recs, choices) in &recorded {
            let info = PlotInfo {
                model: &name,
                variant: v.name(),
                data: &data,
                choices,
            };
            plots::write_all(dir, recs, &info).with_context(|| {
                format!(
                    "the calibration is stored in {}, but writing its plots to {} failed",
                    args.package.display(),
                    dir.display()
                )
            })?;
        }
    }
    if args.json {
        println!("{}", serde_json::to_string(&section)?);
        return Ok(());
    }
    println!(
        "{}: calibrated on {data}; original top-1 {:.2}%{}",
        args.package.display(),
        100.0 * section.original_top1,
        if args.catch_share > 0.0 {
            format!(
                "; thresholds also catch >= {:.0}% of the correctable inputs",
                100.0 * args.catch_share
            )
        } else {
            String::new()
        }
    );
    println!(
        "variant      top-1   correctable uncorrectable  target  threshold   P_r     final top-1"
    );
    for (v, vc) in &section.variants {
        for c in &vc.choices {
            println!(
                "{v:<12} {:>6.2}%  {:>10} {:>13}  {:>6}  {:>9}  {:>6.2}%  {:>6.2}%",
                100.0 * vc.top1,
                vc.correctable,
                vc.uncorrectable,
                c.target,
                if c.threshold.is_finite() {
                    format!("{:.5}", c.threshold)
                } else {
                    "inf".into()
                },
                100.0 * c.replay_rate,
                100.0 * c.final_top1
            );
        }
    }
    if let Some(dir) = &args.plots {
        println!("plots: {}", dir.display());
    }
    Ok(())
}
