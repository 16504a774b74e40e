//! `sieve accuracy`: top-1 / top-5 accuracy of a model on a dataset split.

use crate::common::{check_batch_fits, image_input_chw, load_runner_with_contract, ranked_classes};
use crate::plain_progress::{self, PlainProgress};
use anyhow::{bail, Context, Result};
use sieve_data::{DatasetSpec, InputSpec, ModelCard, Split};
use sieve_nn::Tensor;
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `sieve accuracy`.
#[derive(clap::Args)]
pub struct Args {
    /// The model (.onnx) or speculative package (.sieve). For an .onnx, its card
    /// `model.toml`, if next to it, gives the background offset; a package carries the
    /// output contract recorded at design time.
    #[arg(long)]
    model: PathBuf,
    /// `mnist:DIR` | `cifar10:FILE_OR_DIR` | `images:DIR:LABELS`.
    #[arg(long)]
    dataset: String,
    /// Which split: `test` or `validation` (see shared/data/README.md).
    #[arg(long, default_value = "test")]
    split: String,
    /// Evaluate only the first N items.
    #[arg(long)]
    limit: Option<usize>,
    /// Images per inference batch.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// For a .sieve package: exact | accurate (default) | approximate | original (the
    /// source ONNX at the path the package records, verified by its sha256).
    #[arg(long)]
    variant: Option<String>,
    /// Worker threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
    #[arg(long, default_value_t = 30.0, help = crate::plain_progress::PROGRESS_SECS_HELP)]
    progress_secs: f64,
}

/// Run `sieve accuracy`.
pub fn run(args: Args) -> Result<()> {
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let split: Split = args.split.parse()?;
    let spec = DatasetSpec::parse(&args.dataset)?;
    let (model, contract) =
        load_runner_with_contract(&args.model, args.variant.as_deref(), args.threads)?;
    // The card's reference figures apply to the ONNX it sits next to (not to a package's variants).
    let is_package = args.model.extension().is_some_and(|e| e == "sieve");
    let card = if is_package && args.variant.as_deref() != Some("original") {
        None
    } else if is_package {
        model_card_of_package(&args.model)?
    } else {
        ModelCard::find_next_to(&args.model)?
    };
    let offset = contract.as_ref().map_or(0, |c| c.background_offset);
    let chw = image_input_chw(model.model())?;
    let [channels, h, w] = chw;
    let mut dataset = sieve_data::open(&spec, split, InputSpec { channels, h, w })
        .with_context(|| format!("opening dataset {}", args.dataset))?;
    if let Some(n) = args.limit {
        dataset = sieve_data::limit(dataset, n);
    }
    let total = dataset.len();
    check_batch_fits(model.model(), args.batch.min(total), "--batch")?;
    // Lines for logs; the bar draws only on a terminal.
    let plain = PlainProgress::for_stderr("accuracy", "images", false, args.progress_secs)?;
    let bar = plain_progress::bar(
        &plain,
        total as u64,
        "{bar:40} {pos}/{len} images  {per_sec}  eta {eta}",
    );
    let (mut count, mut top1, mut top5) = (0usize, 0usize, 0usize);
    let start = Instant::now();
    for batch in sieve_data::batches(dataset.as_ref(), args.batch) {
        let batch = batch?;
        let n = batch.labels.len();
        let input = Tensor::from_f32(batch.shape.to_vec(), batch.data)?;
        let outputs = model.run(vec![input])?;
        let Some(out) = outputs.first() else {
            bail!("the model produced no output");
        };
        let probs = out
            .as_f32()
            .context("the model's first output is not float32")?;
        if n == 0 || probs.len() % n != 0 {
            bail!("output shape {:?} does not fit a batch of {n}", out.shape());
        }
        let classes = probs.len() / n;
        for (row, &label) in probs.chunks_exact(classes).zip(&batch.labels) {
            let ranked = ranked_classes(row, offset, 5);
            let label = usize::try_from(label).ok();
            if label.is_some() && ranked.first() == Some(&label) {
                top1 += 1;
            }
            if label.is_some() && ranked.contains(&label) {
                top5 += 1;
            }
        }
        count += n;
        bar.inc(n as u64);
        if let Some(p) = &plain {
            p.update(count as u64, total as u64, "");
        }
    }
    bar.finish_and_clear();
    if let Some(p) = &plain {
        p.finish(true);
    }
    if count == 0 {
        bail!("the dataset split is empty");
    }
    let secs = start.elapsed().as_secs_f64();
    let (t1, t5) = (top1 as f64 / count as f64, top5 as f64 / count as f64);
    // The card's figure only applies when the whole split was evaluated.
    let card_top1 = card
        .as_ref()
        .and_then(|c| c.accuracy.as_ref())
        .and_then(|a| match split {
            Split::Test => a.test_top1.zip(a.test_images),
            Split::Validation => a.validation_top1.zip(a.validation_images),
        })
        .and_then(|(top1, n)| (n == count as u64).then_some(top1));
    if args.json {
        let out = serde_json::json!({
            "model": args.model.display().to_string(),
            "dataset": args.dataset,
            "split": args.split,
            "count": count,
            "top1": t1,
            "top5": t5,
            "card_top1": card_top1,
            "seconds": secs,
            "images_per_s": count as f64 / secs,
        });
        println!("{out}");
    } else {
        println!(
            "{}: {} images ({} split), top-1 {:.2}%, top-5 {:.2}%  [{:.1} s, {:.0} images/s]",
            args.model.display(),
            count,
            args.split,
            100.0 * t1,
            100.0 * t5,
            secs,
            count as f64 / secs
        );
        if let Some(c) = card_top1 {
            println!("model card top-1 for this split: {:.2}%", 100.0 * c);
        }
    }
    Ok(())
}

/// The card next to the source ONNX a package records, if any.
fn model_card_of_package(path: &std::path::Path) -> Result<Option<ModelCard>> {
    let pkg = sieve_design::Package::open(path)?;
    Ok(match &pkg.meta().provenance.source_path {
        Some(src) => ModelCard::find_next_to(std::path::Path::new(src))?,
        None => None,
    })
}
