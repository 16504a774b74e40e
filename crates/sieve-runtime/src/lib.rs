//! sieve-runtime: the edge side of SIEVE (paper §III; DESIGN §5-6).
//!
//! Done so far: the **misspeculation detector** (paper §III-C, DESIGN §5).
//!
//! - [`scores`]: reading a model's output rows under its output contract
//!   (probabilities or logits, background offset): predicted class and
//!   confidence (the largest softmax probability).
//! - [`detector`]: per-input [`detector::Record`]s (confidence, speculative and
//!   original right or wrong), the three classes *correct* / *correctable* /
//!   *uncorrectable*, the O(n log n) threshold search, the accuracy-vs-replay
//!   curve and the runtime [`detector::Detector`] (replay iff `confidence < t`).
//! - [`calibration`]: the `detector` section stored in a `.sieve` package
//!   (thresholds and replay rates per variant and target; modes).
//! - [`record`]: running a network over a dataset once, keeping per input the
//!   predicted class and the confidence.
//! - [`offline`]: speculative + detector + original replay on recorded outputs
//!   (final accuracy, replay rate, speculation success, caught / missed errors).
//! - [`plots`]: the paper's Fig. 3, Fig. 4 and the accuracy-vs-replay curve as
//!   SVG and PNG.
//!
//! Cost models, the CNN selector and the edge loop come with the next issue.
#![warn(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod calibration;
pub mod detector;
mod error;
pub mod offline;
pub mod plots;
pub mod record;
pub mod scores;

pub use calibration::{DetectorSection, Mode, TargetChoice, VariantCalibration};
pub use detector::{
    choose_threshold, choose_threshold_with, curve, Choice, CurvePoint, Detector, Outcome, Record,
};
pub use error::RuntimeError;
pub use offline::{speculate, SpeculationResult};
pub use scores::{Prediction, ScoreKind, Scores};
