//! Choosing formats from the explored points: the per-tensor selection of each
//! variant (DESIGN §3 step 3) and the recovery rules (which tensor to widen, to
//! which point).

use crate::meta::{Point, RecoveryRank, SearchSettings, TensorInfo};
use crate::search::meets;
use crate::Variant;

/// Per tensor: index of the selected point for `variant`.
pub(crate) fn select(
    points: &[Point],
    base: u64,
    variant: Variant,
    s: &SearchSettings,
) -> Option<usize> {
    let exact = points
        .iter()
        .enumerate()
        .max_by(|(ia, a), (ib, b)| {
            a.correct
                .cmp(&b.correct)
                .then(b.bits.cmp(&a.bits))
                .then(ib.cmp(ia))
        })
        .map(|(i, _)| i);
    let t = match variant {
        Variant::Accurate => s.accurate_threshold,
        Variant::Approximate => s.approximate_threshold,
        _ => return exact,
    };
    points
        .iter()
        .enumerate()
        .filter(|(_, p)| meets(p.correct, base, t))
        .min_by(|(ia, a), (ib, b)| {
            a.bits
                .cmp(&b.bits)
                .then(b.correct.cmp(&a.correct))
                .then(ia.cmp(ib))
        })
        .map(|(i, _)| i)
        .or(exact)
}

/// The next explored point of a tensor with more bits than `current` (fewest
/// bits, ties: most accurate, then first); `None` = widen to `f32`.
pub(crate) fn widen(t: &TensorInfo, current: Option<usize>) -> Option<usize> {
    let cur_bits = current.map_or(u32::MAX, |p| t.points[p].bits);
    t.points
        .iter()
        .enumerate()
        .filter(|(_, p)| p.bits > cur_bits)
        .min_by(|(ia, a), (ib, b)| {
            a.bits
                .cmp(&b.bits)
                .then(b.correct.cmp(&a.correct))
                .then(ia.cmp(ib))
        })
        .map(|(i, _)| i)
}

/// The points [`widen`] chooses between: those with the fewest bits more than
/// `current`'s.
pub(crate) fn widen_candidates(t: &TensorInfo, current: Option<usize>) -> Vec<usize> {
    let cur_bits = current.map_or(u32::MAX, |p| t.points[p].bits);
    let next = t
        .points
        .iter()
        .map(|p| p.bits)
        .filter(|&b| b > cur_bits)
        .min();
    (0..t.points.len())
        .filter(|&i| Some(t.points[i].bits) == next)
        .collect()
}

/// The tensor recovery widens next among `widenable`: by `rank` of its chosen
/// point measured on its own (see [`RecoveryRank`]); ties go to the first tensor.
pub(crate) fn worst_tensor(
    tensors: &[TensorInfo],
    choice: &[Option<usize>],
    widenable: &[usize],
    rank: RecoveryRank,
    images: u64,
) -> Option<usize> {
    // Smaller key = widened first.
    let key = |i: usize| -> (u64, u64, u32) {
        let Some(p) = choice[i].map(|p| &tensors[i].points[p]) else {
            return (u64::MAX, u64::MAX, u32::MAX);
        };
        match rank {
            RecoveryRank::Accuracy => (p.correct, 0, p.bits),
            RecoveryRank::Fidelity => {
                // Most disagreements first; a point without the figure counts as
                // disagreeing on every image it gets wrong.
                let agree = p.agree.unwrap_or(p.correct);
                (agree.min(images), p.correct, p.bits)
            }
        }
    };
    widenable
        .iter()
        .copied()
        .min_by(|&a, &b| key(a).cmp(&key(b)).then(a.cmp(&b)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::TensorKind;
    use sieve_float::Format;

    fn tensor(kind: TensorKind, points: Vec<(u32, u64, u64)>) -> TensorInfo {
        TensorInfo {
            id: 0,
            kind,
            layer: 0,
            layer_name: "l".into(),
            name: "t".into(),
            elements: 1,
            signed: true,
            e_max: 3,
            histogram: vec![],
            zeros: 0,
            channel_scales: None,
            points: points
                .into_iter()
                .map(|(m, correct, agree)| {
                    let f = Format::new(true, 3, m as u8, 4).unwrap();
                    Point {
                        format: f,
                        bits: f.width(),
                        coverage: 1.0,
                        correct,
                        normalised: correct as f64 / 100.0,
                        agree: Some(agree),
                        stopped: false,
                    }
                })
                .collect(),
        }
    }

    #[test]
    fn widening_goes_to_the_next_wider_point_then_f32() {
        let t = tensor(
            TensorKind::Weight,
            vec![(6, 99, 99), (4, 97, 95), (5, 99, 98)],
        );
        let (m6, m4, m5) = (0, 1, 2);
        assert_eq!(widen(&t, Some(m4)), Some(m5));
        assert_eq!(widen(&t, Some(m5)), Some(m6));
        assert_eq!(widen(&t, Some(m6)), None, "widest explored point -> f32");
    }

    #[test]
    fn recovery_ranking() {
        // Tensor 0 lost 2 images on its own but flipped only 2 predictions; tensor 1
        // gained 3 images by luck while flipping 15 (e.g. ties in coarse logits).
        let ts = vec![
            tensor(TensorKind::Weight, vec![(3, 98, 98)]),
            tensor(TensorKind::Activation, vec![(2, 103, 85)]),
            tensor(TensorKind::Weight, vec![(4, 99, 90)]),
        ];
        let choice = vec![Some(0), Some(0), Some(0)];
        let all = [0, 1, 2];
        assert_eq!(
            worst_tensor(&ts, &choice, &all, RecoveryRank::Accuracy, 100),
            Some(0)
        );
        assert_eq!(
            worst_tensor(&ts, &choice, &all, RecoveryRank::Fidelity, 100),
            Some(1)
        );
        // Without tensor 1, fidelity picks the weight with 10 flips over the one with 2.
        assert_eq!(
            worst_tensor(&ts, &choice, &[0, 2], RecoveryRank::Fidelity, 100),
            Some(2)
        );
        // A tensor already at full precision (no chosen point) is widened last.
        let choice = vec![Some(0), None, Some(0)];
        assert_eq!(
            worst_tensor(&ts, &choice, &[1, 0], RecoveryRank::Fidelity, 100),
            Some(0)
        );
        assert_eq!(
            worst_tensor(&ts, &choice, &[], RecoveryRank::Fidelity, 100),
            None
        );
    }

    #[test]
    fn selection_rules() {
        let f = |m: u8| Format::new(true, 3, m, 4).unwrap();
        let p = |m: u8, correct: u64| Point {
            format: f(m),
            bits: f(m).width(),
            coverage: 1.0,
            correct,
            normalised: correct as f64 / 1000.0,
            agree: None,
            stopped: false,
        };
        let pts = vec![p(6, 1001), p(5, 1000), p(4, 999), p(3, 990)];
        let s = SearchSettings::paper(8);
        assert_eq!(select(&pts, 1000, Variant::Exact, &s), Some(0));
        assert_eq!(select(&pts, 1000, Variant::Accurate, &s), Some(1));
        assert_eq!(select(&pts, 1000, Variant::Approximate, &s), Some(2));
        let low = vec![p(6, 990), p(5, 995)];
        assert_eq!(
            select(&low, 1000, Variant::Accurate, &s),
            Some(1),
            "falls back to the most accurate"
        );
        assert_eq!(select(&[], 1000, Variant::Accurate, &s), None);
    }
}
