//! Helpers shared by the subcommands: loading a model, reading its input geometry,
//! scoring outputs.

use anyhow::{bail, Context, Result};
use sieve_data::ModelCard;
use sieve_design::{OutputContract, Package, SpeculativeModel, Variant};
use sieve_nn::{Dim, Model, Tensor};
use std::path::Path;

/// A runnable network: an ONNX model, or one variant of a speculative model package.
pub enum Runner {
    /// The original CNN, from an ONNX file.
    Onnx(Model),
    /// A speculative variant (weights bit-packed, activations reformatted).
    Speculative(SpeculativeModel),
}

impl Runner {
    /// The underlying graph (for input/output facts).
    pub fn model(&self) -> &Model {
        match self {
            Runner::Onnx(m) => m,
            Runner::Speculative(s) => s.model(),
        }
    }

    /// Run one batch.
    pub fn run(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>> {
        Ok(match self {
            Runner::Onnx(m) => m.run(inputs)?,
            Runner::Speculative(s) => s.run(inputs)?,
        })
    }
}

/// Load an `.onnx` model, or the `variant` of a `.sieve` package (`accurate` when not given).
pub fn load_runner(path: &Path, variant: Option<&str>, threads: usize) -> Result<Runner> {
    load_runner_with_contract(path, variant, threads).map(|(r, _)| r)
}

/// Like [`load_runner`], plus the model's output contract: for an `.onnx`, from its card
/// (`model.toml` next to it); for a `.sieve` package, the contract recorded at design time
/// (for packages written before it was recorded: the card next to the recorded source
/// ONNX path, if any). `--variant original` on a package runs the source ONNX, found at the
/// path the package records and verified against its sha256.
pub fn load_runner_with_contract(
    path: &Path,
    variant: Option<&str>,
    threads: usize,
) -> Result<(Runner, Option<OutputContract>)> {
    let is_package = path.extension().is_some_and(|e| e == "sieve");
    if !is_package {
        if let Some(v) = variant {
            if v != "original" {
                bail!(
                    "--variant {v} needs a speculative model package (.sieve), not {}",
                    path.display()
                );
            }
        }
        let card = ModelCard::find_next_to(path)?;
        let model = load_model(path, threads)?;
        return Ok((
            Runner::Onnx(model),
            card.as_ref().map(OutputContract::from_card),
        ));
    }
    if threads > 0 {
        sieve_nn::set_threads(threads).context("setting the thread count")?;
    }
    let variant: Variant = variant.unwrap_or("accurate").parse()?;
    let pkg = Package::open(path).with_context(|| format!("loading package {}", path.display()))?;
    let contract = match &pkg.meta().output {
        Some(c) => Some(c.clone()),
        None => match &pkg.meta().provenance.source_path {
            Some(src) => ModelCard::find_next_to(Path::new(src))
                .ok()
                .flatten()
                .as_ref()
                .map(OutputContract::from_card),
            None => None,
        },
    };
    let runner = if variant == Variant::Original {
        Runner::Onnx(pkg.original_model(None).with_context(|| {
            format!(
                "the original model of {} (or run the source ONNX itself: --model SOURCE.onnx)",
                path.display()
            )
        })?)
    } else {
        Runner::Speculative(pkg.model(variant)?)
    };
    Ok((runner, contract))
}

/// Configure the worker threads (0 = all cores) and load an ONNX model.
pub fn load_model(path: &Path, threads: usize) -> Result<Model> {
    if threads > 0 {
        sieve_nn::set_threads(threads).context("setting the thread count")?;
    }
    sieve_onnx::load_file(path).with_context(|| format!("loading model {}", path.display()))
}

/// The model's single image input as (channels, height, width); the batch dimension may be symbolic.
pub fn image_input_chw(model: &Model) -> Result<[usize; 3]> {
    let Some(input) = model.inputs().first() else {
        bail!("the model has no inputs");
    };
    if model.inputs().len() != 1 {
        bail!(
            "the model has {} inputs; expected one image input",
            model.inputs().len()
        );
    }
    let dims: Vec<Option<usize>> = input
        .shape
        .iter()
        .map(|d| match d {
            Dim::Fixed(n) => Some(*n),
            Dim::Symbolic(_) => None,
        })
        .collect();
    match dims.as_slice() {
        [_, Some(c), Some(h), Some(w)] => Ok([*c, *h, *w]),
        _ => bail!(
            "input '{}' has shape {:?}; expected N x C x H x W with fixed C, H, W",
            input.name,
            input.shape
        ),
    }
}

/// Refuses a batch whose activations would not fit in this machine's available memory
/// (Linux `MemAvailable`; no check where it cannot be read), instead of the allocator
/// aborting the process part-way. The estimate is per image the input plus three times
/// the model's largest tensor (a layer's input and output and the kernels' scratch),
/// times the batch; `what` names the option in the message.
pub fn check_batch_fits(model: &Model, batch: usize, what: &str) -> Result<()> {
    let Some(available) = mem_available_bytes() else {
        return Ok(());
    };
    let need = batch_bytes(model, batch);
    if need > available {
        bail!(
            "{what} {batch} needs about {:.1} GiB for its activations, more than the {:.1} GiB \
             of memory available; use a smaller batch",
            need as f64 / GIB,
            available as f64 / GIB
        );
    }
    Ok(())
}

const GIB: f64 = (1u64 << 30) as f64;

/// Estimated bytes of a batch's activations (see [`check_batch_fits`]); saturating.
fn batch_bytes(model: &Model, batch: usize) -> u128 {
    let per_image = |id: sieve_nn::ValueId| -> u128 {
        model.value_fact(id).map_or(0, |(_, dims)| {
            dims.iter()
                .skip(1)
                .map(|d| d.fixed().unwrap_or(1) as u128)
                .product::<u128>()
                * 4
        })
    };
    let input = model
        .input_ids()
        .iter()
        .map(|&id| per_image(id))
        .sum::<u128>();
    let largest = (0..)
        .map(sieve_nn::ValueId)
        .take_while(|&id| model.value_name(id).is_some())
        .map(per_image)
        .max()
        .unwrap_or(0);
    (input + 3 * largest) * batch as u128
}

/// `MemAvailable` of /proc/meminfo in bytes, if readable.
fn mem_available_bytes() -> Option<u128> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u128 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Class predicted for one output row, honouring a background offset: with `offset = 1`
/// output 0 is "background" and maps to `None` (always counted wrong).
pub fn ranked_classes(row: &[f32], offset: usize, k: usize) -> Vec<Option<usize>> {
    let mut idx: Vec<usize> = (0..row.len()).collect();
    // NaN-safe descending order; ties keep the lower index first (argmax semantics).
    idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
    idx.into_iter()
        .take(k)
        .map(|i| i.checked_sub(offset))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranked_classes_handles_offset_and_ties() {
        let row = [0.1, 0.5, 0.5, 0.2];
        assert_eq!(ranked_classes(&row, 0, 2), vec![Some(1), Some(2)]);
        assert_eq!(ranked_classes(&row, 1, 3), vec![Some(0), Some(1), Some(2)]);
        let bg = [0.9, 0.05, 0.05];
        assert_eq!(ranked_classes(&bg, 1, 1), vec![None]);
    }
}
