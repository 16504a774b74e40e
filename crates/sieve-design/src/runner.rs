//! Running a speculative variant: weights bit-packed in memory, activations
//! reformatted (encode + decode) at every compute layer's output.
//!
//! Fully-connected layers multiply straight from the packed codes
//! (`sieve_nn::kernels::packed::fc`); convolutions decode one layer at a time into a
//! per-thread buffer shared by all layers (`sieve_nn::Weights::decoded`). Peak memory
//! is therefore the packed weights, one layer's decoded weights per running thread
//! and the activations. See `docs/COMPRESSED.md`.

use crate::{DesignError, Variant};
use sieve_float::{quantize_slice, Format, PackedTensor};
use sieve_nn::{Model, NnError, RunOptions, Tensor, ValueId, Weights};
use std::sync::Arc;

/// A layer's weights kept bit-packed (moved to `sieve_nn`, where the packed kernels
/// consume it; re-exported here for existing users).
pub use sieve_nn::PackedWeights;

/// A runnable speculative CNN: a [`Model`] whose reformatted layers hold
/// [`PackedWeights`] (or, on the reference path, their decoded `f32` values) and
/// whose activation formats are applied to each compute layer's output.
///
/// Contract: the outputs equal, bit for bit, those of the reference path
/// (weights decoded to `f32`, activations quantised by the transform hook).
#[derive(Debug, Clone)]
pub struct SpeculativeModel {
    model: Model,
    activations: Vec<(ValueId, Format)>,
    variant: Variant,
}

impl SpeculativeModel {
    /// Assembles a variant from a model whose weights are already set and the
    /// activation formats (value id, format).
    pub fn new(
        model: Model,
        mut activations: Vec<(ValueId, Format)>,
        variant: Variant,
    ) -> SpeculativeModel {
        activations.sort_by_key(|(v, _)| v.0);
        SpeculativeModel {
            model,
            activations,
            variant,
        }
    }

    /// The underlying model (for its inputs/outputs and layers).
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Which variant this is.
    pub fn variant(&self) -> Variant {
        self.variant
    }

    /// The activation formats, by value id.
    pub fn activation_formats(&self) -> &[(ValueId, Format)] {
        &self.activations
    }

    /// Bytes the layers' weights occupy in memory (packed where reformatted).
    pub fn weight_bytes(&self) -> usize {
        (0..self.model.layers().len())
            .filter_map(|i| self.model.weights(i).ok())
            .map(|w| w.stored_bytes())
            .sum()
    }

    /// Runs like [`Model::run`], reformatting every compute layer's output.
    pub fn run(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, DesignError> {
        run_formatted(&self.model, &self.activations, inputs)
    }
}

/// Runs `model` from its inputs with the given activation formats (sorted by id).
pub(crate) fn run_formatted(
    model: &Model,
    activations: &[(ValueId, Format)],
    inputs: Vec<Tensor>,
) -> Result<Vec<Tensor>, DesignError> {
    let feeds: Vec<(ValueId, Tensor)> = model.input_ids().iter().copied().zip(inputs).collect();
    if feeds.len() != model.input_ids().len() {
        return Err(NnError::InputCount {
            expected: model.input_ids().len(),
            got: feeds.len(),
        }
        .into());
    }
    let transform = |id: ValueId, t: &mut Tensor| -> Result<(), NnError> {
        if let Ok(i) = activations.binary_search_by_key(&id.0, |(v, _)| v.0) {
            quantize_tensor(activations[i].1, t);
        }
        Ok(())
    };
    let opts = RunOptions {
        transform: Some(&transform),
        ..Default::default()
    };
    Ok(model.run_with(feeds, &opts)?.outputs)
}

/// Quantises an `f32` tensor in place (other dtypes are left alone).
pub(crate) fn quantize_tensor(fmt: Format, t: &mut Tensor) {
    if let Some(d) = t.as_f32_mut() {
        quantize_slice(fmt, d);
    }
}

/// Weights for layer `layer` from a packed tensor (with its per-channel shifts, if
/// any): packed in memory, or decoded to dense `f32` for the reference path.
pub(crate) fn weights_from_packed(
    shape: Vec<usize>,
    packed: PackedTensor,
    shifts: Option<Vec<i8>>,
    dense: bool,
) -> Result<Weights, DesignError> {
    let pw = match shifts {
        Some(s) => PackedWeights::with_shifts(shape, packed, s)?,
        None => PackedWeights::new(shape, packed)?,
    };
    if dense {
        let mut v = vec![0.0; pw.packed().len()];
        sieve_nn::WeightSource::decode_into(&pw, &mut v)?;
        Ok(Weights::Dense(Tensor::from_f32(
            sieve_nn::WeightSource::shape(&pw).to_vec(),
            v,
        )?))
    } else {
        Ok(Weights::Encoded(Arc::new(pw)))
    }
}
