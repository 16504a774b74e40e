//! Offline speculation: the speculative variant answers every input, the
//! detector replays the low-confidence ones on the original, and the final
//! answer is the original's for a replayed input, the speculative one
//! otherwise. Computed from recorded runs ([`crate::record`]), so every
//! (variant, mode) combination costs no extra inference.

use crate::detector::{Detector, Record, Tally};
use serde::Serialize;

/// The outcome of speculation with one detector on a set of inputs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct SpeculationResult {
    /// The threshold used (`+inf` shows as `null` in JSON: replay everything).
    pub threshold: f64,
    /// Inputs.
    pub images: u64,
    /// Final top-1 (speculation + replay).
    pub final_top1: f64,
    /// The original's top-1 on the same inputs.
    pub original_top1: f64,
    /// The speculative variant's top-1 alone.
    pub speculative_top1: f64,
    /// Fraction replayed (`P_r`).
    pub replay_rate: f64,
    /// Fraction answered on the device (`1 - P_r`): the paper's speculation success.
    pub success_rate: f64,
    /// All counts.
    pub tally: Tally,
}

/// Applies `detector` to `records`.
pub fn speculate(records: &[Record], detector: Detector) -> SpeculationResult {
    let tally = Tally::of(records, detector);
    SpeculationResult {
        threshold: detector.threshold,
        images: tally.images,
        final_top1: tally.final_top1(),
        original_top1: tally.original_top1(),
        speculative_top1: tally.speculative_top1(),
        replay_rate: tally.replay_rate(),
        success_rate: tally.success_rate(),
        tally,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replayed_inputs_take_the_original_answer() {
        let rs = [
            Record {
                confidence: 0.2,
                speculative_correct: false,
                original_correct: true,
            },
            Record {
                confidence: 0.4,
                speculative_correct: false,
                original_correct: true,
            },
            Record {
                confidence: 0.9,
                speculative_correct: true,
                original_correct: false,
            },
        ];
        let r = speculate(&rs, Detector { threshold: 0.3 });
        assert_eq!(r.tally.replayed, 1);
        assert_eq!(r.tally.correctable_caught, 1);
        assert_eq!(r.tally.correctable_missed, 1);
        assert_eq!(r.tally.final_correct, 2);
        assert!((r.success_rate - 2.0 / 3.0).abs() < 1e-12);
        assert!((r.original_top1 - 2.0 / 3.0).abs() < 1e-12);
        let all = speculate(
            &rs,
            Detector {
                threshold: f64::INFINITY,
            },
        );
        assert_eq!(all.final_top1, all.original_top1);
        assert_eq!(all.success_rate, 0.0);
        let none = speculate(&rs, Detector { threshold: 0.0 });
        assert_eq!(none.final_top1, none.speculative_top1);
    }
}
