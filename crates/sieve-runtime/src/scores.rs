//! Reading a model's output rows: predicted class and confidence.
//!
//! The confidence of an output row is the largest softmax probability, i.e. the
//! probability of the predicted output. For a model whose output already is a
//! softmax (`probabilities`) it is the row's maximum as the model produced it
//! (`f32`, no renormalisation); for `logits` the softmax is applied first
//! (computed in `f64`, rounded to `f32`). A row with a NaN maximum, or whose
//! confidence is not a finite number, gets confidence 0 (always replayed).

use crate::RuntimeError;
use sieve_data::{ModelCard, OutputKind};
use sieve_design::OutputContract;

/// What the model's output vector holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScoreKind {
    /// Softmax probabilities (each row sums to 1).
    Probabilities,
    /// Unnormalised scores: softmax is applied before taking the confidence.
    Logits,
}

/// The output contract: how to read one output row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Scores {
    /// Probabilities or logits.
    pub kind: ScoreKind,
    /// Length of an output row (including any background output).
    pub num_classes: usize,
    /// Outputs before label 0 (1 when output 0 is "background", which is
    /// never a dataset label and so always counts wrong).
    pub background_offset: usize,
}

/// The reading of one output row.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Prediction {
    /// Index of the largest output (first on ties).
    pub index: u32,
    /// The largest softmax probability, in `[0, 1]`.
    pub confidence: f32,
}

fn kind_from(name: &str) -> Result<ScoreKind, RuntimeError> {
    match name {
        "probabilities" => Ok(ScoreKind::Probabilities),
        "logits" => Ok(ScoreKind::Logits),
        other => Err(RuntimeError::Contract(format!(
            "output kind {other:?}: the detector needs probabilities or logits"
        ))),
    }
}

impl Scores {
    /// The contract a package records (design time model card).
    pub fn from_contract(c: &OutputContract) -> Result<Scores, RuntimeError> {
        Scores::new(kind_from(&c.kind)?, c.num_classes, c.background_offset)
    }

    /// The contract of a model card's `[output]` section.
    pub fn from_card(card: &ModelCard) -> Result<Scores, RuntimeError> {
        let kind = match card.output.kind {
            OutputKind::Probabilities => ScoreKind::Probabilities,
            OutputKind::Logits => ScoreKind::Logits,
            OutputKind::Other => kind_from("other")?,
        };
        Scores::new(kind, card.output.num_classes, card.output.background_offset)
    }

    /// A contract; fails unless at least one class remains after the offset.
    pub fn new(
        kind: ScoreKind,
        num_classes: usize,
        background_offset: usize,
    ) -> Result<Scores, RuntimeError> {
        if num_classes <= background_offset {
            return Err(RuntimeError::Contract(format!(
                "{num_classes} outputs with background offset {background_offset} leave no class"
            )));
        }
        Ok(Scores {
            kind,
            num_classes,
            background_offset,
        })
    }

    /// Dataset classes the model predicts (`num_classes - background_offset`).
    pub fn classes(&self) -> usize {
        self.num_classes - self.background_offset
    }

    /// Checks that `label` (of dataset item `item`) is one of the model's classes.
    pub fn check_label(&self, item: usize, label: i64) -> Result<(), RuntimeError> {
        match usize::try_from(label) {
            Ok(l) if l < self.classes() => Ok(()),
            _ => Err(RuntimeError::Label {
                item,
                label,
                classes: self.classes(),
            }),
        }
    }

    /// Whether `p` names `label` (a background prediction never does).
    pub fn is_correct(&self, p: Prediction, label: i64) -> bool {
        (p.index as usize)
            .checked_sub(self.background_offset)
            .and_then(|c| i64::try_from(c).ok())
            == Some(label)
    }

    /// Predicted output and confidence of one row. The row must have
    /// `num_classes` values.
    pub fn predict(&self, row: &[f32]) -> Result<Prediction, RuntimeError> {
        if row.len() != self.num_classes {
            return Err(RuntimeError::Contract(format!(
                "an output row has {} values, the contract says {} classes",
                row.len(),
                self.num_classes
            )));
        }
        let mut best = 0;
        for (i, v) in row.iter().enumerate() {
            if v.total_cmp(&row[best]).is_gt() {
                best = i;
            }
        }
        let max = row[best];
        let confidence = match self.kind {
            ScoreKind::Probabilities => max,
            ScoreKind::Logits => {
                let m = f64::from(max);
                let sum: f64 = row.iter().map(|&x| (f64::from(x) - m).exp()).sum();
                (1.0 / sum) as f32
            }
        };
        let confidence = if confidence.is_finite() {
            confidence.clamp(0.0, 1.0)
        } else {
            0.0
        };
        Ok(Prediction {
            index: best as u32,
            confidence,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probabilities_take_the_row_maximum() {
        let s = Scores::new(ScoreKind::Probabilities, 4, 0).unwrap();
        let p = s.predict(&[0.1, 0.6, 0.2, 0.1]).unwrap();
        assert_eq!(p.index, 1);
        assert_eq!(p.confidence, 0.6);
        assert!(s.is_correct(p, 1));
        assert!(!s.is_correct(p, 0));
    }

    #[test]
    fn logits_get_a_softmax_first() {
        let s = Scores::new(ScoreKind::Logits, 3, 0).unwrap();
        let p = s.predict(&[2.0, 0.0, 0.0]).unwrap();
        let want = (2f64.exp() / (2f64.exp() + 2.0)) as f32;
        assert_eq!(p.index, 0);
        assert!((p.confidence - want).abs() < 1e-7, "{}", p.confidence);
        // Shift invariance and huge logits do not overflow.
        let q = s.predict(&[1002.0, 1000.0, 1000.0]).unwrap();
        assert!((q.confidence - want).abs() < 1e-6);
        // Ties keep the first index; equal logits give 1/n.
        let t = s.predict(&[1.0, 1.0, 1.0]).unwrap();
        assert_eq!(t.index, 0);
        assert!((t.confidence - 1.0 / 3.0).abs() < 1e-7);
    }

    #[test]
    fn background_is_never_correct_and_nan_has_no_confidence() {
        let s = Scores::new(ScoreKind::Probabilities, 3, 1).unwrap();
        let p = s.predict(&[0.8, 0.1, 0.1]).unwrap();
        assert_eq!(p.index, 0);
        assert!(!s.is_correct(p, 0));
        let q = s.predict(&[0.1, 0.1, 0.8]).unwrap();
        assert!(s.is_correct(q, 1));
        let n = s.predict(&[f32::NAN, 0.1, 0.2]).unwrap();
        assert_eq!(n.confidence, 0.0);
    }

    #[test]
    fn labels_outside_the_classes_and_bad_rows_are_errors() {
        let s = Scores::new(ScoreKind::Probabilities, 11, 1).unwrap();
        assert!(s.check_label(0, 9).is_ok());
        let e = s.check_label(7, 10).unwrap_err().to_string();
        assert!(
            e.contains("label 10 of item 7") && e.contains("10 classes"),
            "{e}"
        );
        assert!(s.check_label(0, -1).is_err());
        assert!(s.predict(&[0.5; 10]).is_err());
        assert!(Scores::new(ScoreKind::Logits, 1, 1).is_err());
    }
}
