//! sieve-design: the speculative CNN design of the SIEVE paper (§IV; DESIGN §3-4).
//!
//! - [`search`]: the design-space search without retraining: exponent histograms
//!   of every weight tensor and every materialised activation, the per-tensor
//!   `e`/`m` sweeps, and the exact / accurate / approximate combinations with the
//!   recovery step. Resumable (journal) and deterministic.
//! - [`Package`]: the `.sieve` file (safetensors container): the graph without the
//!   compressed layers' f32 weights, each weight tensor bit-packed in its format,
//!   activation formats, the three variants, validation figures, provenance and a
//!   sha256 checksum verified on load.
//! - [`SpeculativeModel`]: a runnable variant (weights kept bit-packed, activations
//!   reformatted at every layer output).
//! - [`report`]: the human report (per-tensor histogram, window, explored points,
//!   Fig. 6-style plots as SVG and PNG).
//!
//! Biases stay `f32` (as in the paper, only weight tensors and activations are
//! reformatted). Computation is `f32` throughout: reformatting is quantisation
//! (encode + decode) of the stored values.
#![warn(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod error;
pub mod eval;
pub mod meta;
mod package;
pub mod report;
mod runner;
pub mod scales;
pub mod search;
mod select;
pub mod synth;

pub use error::DesignError;
pub use meta::{Meta, OutputContract, Point, Provenance, TensorInfo, TensorKind, VariantInfo};
pub use package::{Package, FORMAT_VERSION, MIN_FORMAT_VERSION};
pub use runner::{PackedWeights, SpeculativeModel};
pub use search::{design, DesignOutcome, Progress, Settings};

use std::fmt;
use std::str::FromStr;

/// Which network to run from a package.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    /// Per tensor the most accurate explored format.
    Exact,
    /// Per tensor the fewest-bits format with normalised accuracy >= 100%.
    Accurate,
    /// Per tensor the fewest-bits format with normalised accuracy >= 99.9%.
    Approximate,
    /// The source model in f32 (not stored in the package: run the ONNX file).
    Original,
}

impl Variant {
    /// The three speculative variants, in the order they are searched and stored.
    pub const SPECULATIVE: [Variant; 3] = [Variant::Exact, Variant::Accurate, Variant::Approximate];

    /// Lower-case name (`exact`, `accurate`, `approximate`, `original`).
    pub fn name(self) -> &'static str {
        match self {
            Variant::Exact => "exact",
            Variant::Accurate => "accurate",
            Variant::Approximate => "approximate",
            Variant::Original => "original",
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Variant {
    type Err = DesignError;

    /// Parses `exact`, `accurate`, `approximate` or `original` (case-insensitive).
    fn from_str(s: &str) -> Result<Self, DesignError> {
        match s.to_ascii_lowercase().as_str() {
            "exact" => Ok(Variant::Exact),
            "accurate" => Ok(Variant::Accurate),
            "approximate" | "approx" => Ok(Variant::Approximate),
            "original" => Ok(Variant::Original),
            _ => Err(DesignError::Invalid(format!(
                "unknown variant {s:?} (expected exact, accurate, approximate or original)"
            ))),
        }
    }
}

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(bytes))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
