//! The misspeculation detector (paper §III-C, DESIGN §5).
//!
//! **Rule.** An input whose speculative confidence `c` (the largest softmax
//! probability, see [`crate::scores`]) is **strictly below** the threshold `t`
//! is replayed on the original CNN and takes the original's answer; an input
//! with `c >= t` keeps the speculative answer (it is answered on the device).
//! So `t = 0` replays nothing (confidences are in `[0, 1]`), and `t = +inf`
//! replays everything (also any input whose confidence is exactly 1.0).
//!
//! **Classes** of a validation input: *correct* (the speculative answer is
//! right), *correctable* (speculative wrong, original right), *uncorrectable*
//! (both wrong).
//!
//! **Threshold search.** With `A0` the original's accuracy and `A(t)` the final
//! accuracy when inputs below `t` are replayed, [`choose_threshold`] returns
//! the smallest `t` with `A(t) >= target * A0`. Sorting the confidences
//! (`O(n log n)`) and walking them once with running sums gives `A` for every
//! distinct way to split the inputs into a replayed low part and a kept high
//! part: inputs with equal confidence are always on the same side (ties), and
//! the split that replays every confidence up to and including `v` is reached
//! by any `t` in `(v, v']` (`v'` the next larger confidence). The smallest such
//! `t` is the next `f32` above `v`, which is what is stored (so the threshold
//! is a value a confidence can take, and `c < t` holds exactly for `c <= v`).
//! Splitting after the largest confidence means "replay everything": `+inf`.
//! With `target <= 1` a threshold always exists (replaying everything gives
//! `A0`); the comparison is made on integer counts, `final_correct >= target *
//! original_correct - 1e-9`.
//!
//! **Catch share (margin).** [`choose_threshold_with`] adds a second condition:
//! the replayed inputs must include at least `catch_share` of the calibration
//! set's correctable inputs (`ceil(catch_share * correctable - 1e-9)` of them).
//! `A(t) >= target * A0` only counts net correct answers, so on a small or
//! unrepresentative validation set a variant that happens to match the original
//! there gets `t = 0` and replays nothing, while it loses on other data; asking
//! for a share of the correctable errors (the paper's "distribution of
//! correctable errors", Fig. 3) is a margin that does not depend on that luck.
//! The result is the smallest split meeting both; `catch_share = 0` is the plain
//! rule. Replaying everything catches every correctable input, so it still
//! always exists.

use crate::RuntimeError;

/// The class of a validation input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// The speculative answer is right.
    Correct,
    /// The speculative answer is wrong, the original's right: replay fixes it.
    Correctable,
    /// Both are wrong: replay cannot fix it.
    Uncorrectable,
}

impl Outcome {
    /// Lower-case name (`correct`, `correctable`, `uncorrectable`).
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Correct => "correct",
            Outcome::Correctable => "correctable",
            Outcome::Uncorrectable => "uncorrectable",
        }
    }
}

/// What is recorded per input: the speculative confidence and whether the
/// speculative and the original answers are right.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Record {
    /// The speculative variant's confidence, in `[0, 1]`.
    pub confidence: f32,
    /// The speculative answer is right.
    pub speculative_correct: bool,
    /// The original's answer is right.
    pub original_correct: bool,
}

impl Record {
    /// The input's class.
    pub fn outcome(&self) -> Outcome {
        match (self.speculative_correct, self.original_correct) {
            (true, _) => Outcome::Correct,
            (false, true) => Outcome::Correctable,
            (false, false) => Outcome::Uncorrectable,
        }
    }
}

/// The runtime detector: one threshold.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Detector {
    /// Replay iff the confidence is below this (`0` = never, `+inf` = always).
    pub threshold: f64,
}

impl Detector {
    /// Whether an answer with this confidence must be replayed: `c < threshold`
    /// (a NaN confidence is always replayed).
    pub fn replay(&self, confidence: f32) -> bool {
        // NaN is incomparable: it replays.
        f64::from(confidence)
            .partial_cmp(&self.threshold)
            .is_none_or(|o| o == std::cmp::Ordering::Less)
    }
}

/// The smallest `f32` above `v` (`v` finite, non-negative).
fn next_up(v: f32) -> f32 {
    if v == 0.0 {
        return f32::from_bits(1);
    }
    f32::from_bits(v.to_bits() + 1)
}

/// One way to split the sorted validation inputs: the `replayed` least
/// confident ones take the original's answer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CurvePoint {
    /// The smallest threshold giving this split (`0`, the next `f32` above a
    /// confidence, or `+inf`).
    pub threshold: f64,
    /// Inputs replayed.
    pub replayed: u64,
    /// Correct final answers.
    pub final_correct: u64,
    /// Correctable inputs among the replayed ones (caught).
    pub caught: u64,
}

fn validate(records: &[Record]) -> Result<(), RuntimeError> {
    if records.is_empty() {
        return Err(RuntimeError::Empty(
            "the detector needs at least one calibration input".into(),
        ));
    }
    if let Some((i, r)) = records
        .iter()
        .enumerate()
        .find(|(_, r)| !(0.0..=1.0).contains(&r.confidence))
    {
        return Err(RuntimeError::Mismatch(format!(
            "input {i} has confidence {} outside [0, 1]",
            r.confidence
        )));
    }
    Ok(())
}

/// Every distinct split, fewest replays first: `A(t)` and `R(t)` for each
/// candidate threshold. The first point replays nothing (`t = 0`), the last
/// everything (`t = +inf`). `O(n log n)`. Errors on an empty set or a
/// confidence outside `[0, 1]`.
pub fn curve(records: &[Record]) -> Result<Vec<CurvePoint>, RuntimeError> {
    validate(records)?;
    let mut sorted: Vec<&Record> = records.iter().collect();
    sorted.sort_by(|a, b| a.confidence.total_cmp(&b.confidence));
    let mut correct = records.iter().filter(|r| r.speculative_correct).count() as u64;
    let mut caught = 0u64;
    let mut points = vec![CurvePoint {
        threshold: 0.0,
        replayed: 0,
        final_correct: correct,
        caught,
    }];
    let mut i = 0;
    while i < sorted.len() {
        let v = sorted[i].confidence;
        while i < sorted.len() && sorted[i].confidence == v {
            let r = sorted[i];
            correct = correct + u64::from(r.original_correct) - u64::from(r.speculative_correct);
            caught += u64::from(r.outcome() == Outcome::Correctable);
            i += 1;
        }
        let threshold = if i == sorted.len() {
            f64::INFINITY
        } else {
            f64::from(next_up(v))
        };
        points.push(CurvePoint {
            threshold,
            replayed: i as u64,
            final_correct: correct,
            caught,
        });
    }
    Ok(points)
}

/// Counts of applying a threshold to a set of inputs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Tally {
    /// Inputs.
    pub images: u64,
    /// Inputs replayed (`c < t`).
    pub replayed: u64,
    /// Correct final answers (replayed: the original's, else the speculative one).
    pub final_correct: u64,
    /// The original right.
    pub original_correct: u64,
    /// The speculative variant right.
    pub speculative_correct: u64,
    /// Correctable inputs replayed (caught).
    pub correctable_caught: u64,
    /// Correctable inputs not replayed (missed: a wrong answer kept).
    pub correctable_missed: u64,
    /// Uncorrectable inputs replayed (a replay that cannot help).
    pub uncorrectable_replayed: u64,
    /// Uncorrectable inputs not replayed.
    pub uncorrectable_kept: u64,
    /// Inputs the speculative variant got right but that were replayed.
    pub correct_replayed: u64,
    /// Of those, the original got wrong (replay made the answer wrong).
    pub correct_replayed_broken: u64,
}

impl Tally {
    /// Applies `detector` to `records` by direct counting (`O(n)`).
    pub fn of(records: &[Record], detector: Detector) -> Tally {
        let mut t = Tally::default();
        for r in records {
            let rep = detector.replay(r.confidence);
            t.images += 1;
            t.original_correct += u64::from(r.original_correct);
            t.speculative_correct += u64::from(r.speculative_correct);
            t.replayed += u64::from(rep);
            t.final_correct += u64::from(if rep {
                r.original_correct
            } else {
                r.speculative_correct
            });
            match (r.outcome(), rep) {
                (Outcome::Correctable, true) => t.correctable_caught += 1,
                (Outcome::Correctable, false) => t.correctable_missed += 1,
                (Outcome::Uncorrectable, true) => t.uncorrectable_replayed += 1,
                (Outcome::Uncorrectable, false) => t.uncorrectable_kept += 1,
                (Outcome::Correct, true) => {
                    t.correct_replayed += 1;
                    t.correct_replayed_broken += u64::from(!r.original_correct);
                }
                (Outcome::Correct, false) => {}
            }
        }
        t
    }

    fn frac(a: u64, n: u64) -> f64 {
        if n == 0 {
            0.0
        } else {
            a as f64 / n as f64
        }
    }

    /// `replayed / images` (the paper's `P_r`).
    pub fn replay_rate(&self) -> f64 {
        Tally::frac(self.replayed, self.images)
    }

    /// Fraction answered on the device (`1 - P_r`): the speculation success rate.
    pub fn success_rate(&self) -> f64 {
        Tally::frac(self.images - self.replayed, self.images)
    }

    /// Final top-1.
    pub fn final_top1(&self) -> f64 {
        Tally::frac(self.final_correct, self.images)
    }

    /// The original's top-1.
    pub fn original_top1(&self) -> f64 {
        Tally::frac(self.original_correct, self.images)
    }

    /// The speculative variant's top-1 alone (no replay).
    pub fn speculative_top1(&self) -> f64 {
        Tally::frac(self.speculative_correct, self.images)
    }
}

/// The threshold chosen for one target quality.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Choice {
    /// The target: final accuracy must reach `target * A0`.
    pub target: f64,
    /// The detector.
    pub detector: Detector,
    /// The threshold applied to the calibration inputs.
    pub tally: Tally,
    /// Share of the calibration set's correctable inputs the threshold had to
    /// catch (0: the plain rule).
    pub catch_share: f64,
}

/// The smallest threshold whose final accuracy on `records` reaches `target`
/// times the original's (see the module doc for ties and the extremes).
/// Errors: empty set, a confidence outside `[0, 1]`, a target outside `(0, 1]`.
pub fn choose_threshold(records: &[Record], target: f64) -> Result<Choice, RuntimeError> {
    choose_threshold_with(records, target, 0.0)
}

/// [`choose_threshold`] with a catch share: the smallest threshold that also
/// replays at least `catch_share` of the correctable inputs (module doc).
/// Errors as [`choose_threshold`], and a catch share outside `[0, 1]`.
pub fn choose_threshold_with(
    records: &[Record],
    target: f64,
    catch_share: f64,
) -> Result<Choice, RuntimeError> {
    if !(target > 0.0 && target <= 1.0) {
        return Err(RuntimeError::Target(target));
    }
    if !(0.0..=1.0).contains(&catch_share) {
        return Err(RuntimeError::Calibration(format!(
            "catch share {catch_share} is outside [0, 1]: it is the fraction of the correctable inputs to replay"
        )));
    }
    let points = curve(records)?;
    let need = target * records.iter().filter(|r| r.original_correct).count() as f64 - 1e-9;
    let correctable = points.last().map_or(0, |p| p.caught);
    let need_caught = (catch_share * correctable as f64 - 1e-9).ceil().max(0.0) as u64;
    // Replaying everything reaches A0 >= target * A0 and catches every
    // correctable input, so the search succeeds.
    let p = points
        .iter()
        .find(|p| p.final_correct as f64 >= need && p.caught >= need_caught)
        .or(points.last())
        .ok_or_else(|| RuntimeError::Empty("no split".into()))?;
    let detector = Detector {
        threshold: p.threshold,
    };
    Ok(Choice {
        target,
        detector,
        tally: Tally::of(records, detector),
        catch_share,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rec(c: f32, s: bool, o: bool) -> Record {
        Record {
            confidence: c,
            speculative_correct: s,
            original_correct: o,
        }
    }

    /// Brute force: every candidate threshold, counted directly. Replaying
    /// everything is `+inf` by definition (not the next f32 above the maximum).
    fn brute(records: &[Record], target: f64) -> f64 {
        brute_share(records, target, 0.0)
    }

    /// Brute force with a catch share: the smallest candidate threshold meeting
    /// the target and catching `ceil(share * correctable)` correctable inputs.
    fn brute_share(records: &[Record], target: f64, share: f64) -> f64 {
        let max = records.iter().map(|r| r.confidence).fold(0f32, f32::max);
        let mut cands: Vec<f64> = records
            .iter()
            .filter(|r| r.confidence < max)
            .map(|r| f64::from(next_up(r.confidence)))
            .collect();
        cands.push(0.0);
        cands.push(f64::INFINITY);
        cands.sort_by(f64::total_cmp);
        let a0 = records.iter().filter(|r| r.original_correct).count() as f64;
        let correctable = records
            .iter()
            .filter(|r| r.outcome() == Outcome::Correctable)
            .count() as f64;
        for t in cands {
            let tally = Tally::of(records, Detector { threshold: t });
            if tally.final_correct as f64 >= target * a0 - 1e-9
                && tally.correctable_caught as f64 >= share * correctable - 1e-9
            {
                return t;
            }
        }
        unreachable!("replaying everything catches every correctable input")
    }

    fn records() -> impl Strategy<Value = Vec<Record>> {
        // Few distinct confidences so that ties are common.
        prop::collection::vec(
            (0u8..12, any::<bool>(), any::<bool>()).prop_map(|(k, s, o)| {
                let c = if k == 11 { 1.0 } else { f32::from(k) / 11.0 };
                rec(c, s, o)
            }),
            1..60,
        )
    }

    proptest! {
        #[test]
        fn search_equals_brute_force(rs in records(), t in prop::sample::select(vec![1.0, 0.999, 0.99, 0.95, 0.8, 0.5])) {
            let c = choose_threshold(&rs, t).unwrap();
            prop_assert_eq!(c.detector.threshold, brute(&rs, t));
            let a0 = rs.iter().filter(|r| r.original_correct).count() as f64;
            prop_assert!(c.tally.final_correct as f64 >= t * a0 - 1e-9);
            // Every smaller threshold that is a confidence misses the target.
            for r in &rs {
                let th = f64::from(r.confidence);
                if th < c.detector.threshold {
                    let tl = Tally::of(&rs, Detector { threshold: th });
                    prop_assert!((tl.final_correct as f64) < t * a0 - 1e-9, "t={th}");
                }
            }
        }

        #[test]
        fn catch_share_search_equals_brute_force(
            rs in records(),
            t in prop::sample::select(vec![1.0, 0.99, 0.8]),
            share in prop::sample::select(vec![0.0, 0.1, 0.5, 0.75, 1.0]),
        ) {
            let c = choose_threshold_with(&rs, t, share).unwrap();
            prop_assert_eq!(c.detector.threshold, brute_share(&rs, t, share));
            let plain = choose_threshold(&rs, t).unwrap();
            // A margin never lowers the threshold; share 0 is the plain rule.
            prop_assert!(c.detector.threshold >= plain.detector.threshold);
            if share == 0.0 {
                prop_assert_eq!(c.detector.threshold, plain.detector.threshold);
            }
        }

        #[test]
        fn curve_matches_direct_counts(rs in records()) {
            let pts = curve(&rs).unwrap();
            prop_assert_eq!(pts.first().unwrap().replayed, 0);
            prop_assert_eq!(pts.last().unwrap().replayed, rs.len() as u64);
            for p in &pts {
                let tl = Tally::of(&rs, Detector { threshold: p.threshold });
                prop_assert_eq!(tl.replayed, p.replayed);
                prop_assert_eq!(tl.final_correct, p.final_correct);
                prop_assert_eq!(tl.correctable_caught, p.caught);
            }
        }
    }

    #[test]
    fn catch_share_replays_correctable_errors_the_net_rule_skips() {
        // The variant is wrong on two inputs the original gets right (0.1, 0.3)
        // and right on two the original gets wrong (0.2, 0.4): net equal, so the
        // plain rule replays nothing; half the correctable ones need t > 0.1,
        // all of them t > 0.3 — and then A(t) must still reach A0.
        let rs = vec![
            rec(0.1, false, true),
            rec(0.2, true, false),
            rec(0.3, false, true),
            rec(0.4, true, false),
            rec(0.9, true, true),
        ];
        assert_eq!(choose_threshold(&rs, 1.0).unwrap().detector.threshold, 0.0);
        let half = choose_threshold_with(&rs, 1.0, 0.5).unwrap();
        assert_eq!(half.detector.threshold, f64::from(next_up(0.1)));
        assert_eq!(half.tally.correctable_caught, 1);
        assert_eq!(half.catch_share, 0.5);
        let all = choose_threshold_with(&rs, 1.0, 1.0).unwrap();
        assert_eq!(all.detector.threshold, f64::from(next_up(0.3)));
        assert_eq!(all.tally.correctable_caught, 2);
        for bad in [-0.1, 1.5, f64::NAN] {
            let e = choose_threshold_with(&rs, 1.0, bad)
                .unwrap_err()
                .to_string();
            assert!(e.contains("catch share"), "{e}");
        }
    }

    #[test]
    fn all_correct_replays_nothing() {
        let rs: Vec<Record> = (0..10)
            .map(|i| rec(i as f32 / 10.0, true, i % 2 == 0))
            .collect();
        let c = choose_threshold(&rs, 1.0).unwrap();
        assert_eq!(c.detector.threshold, 0.0);
        assert_eq!(c.tally.replayed, 0);
        assert_eq!(c.tally.final_correct, 10);
    }

    #[test]
    fn all_wrong_replays_every_correctable_input() {
        // Speculative always wrong, original always right: everything is replayed.
        let rs: Vec<Record> = (0..5).map(|i| rec(0.2 * i as f32, false, true)).collect();
        let c = choose_threshold(&rs, 1.0).unwrap();
        assert_eq!(c.detector.threshold, f64::INFINITY);
        assert_eq!(c.tally.replay_rate(), 1.0);
        assert!(Detector {
            threshold: f64::INFINITY
        }
        .replay(1.0));
        // Both always wrong: A0 = 0, nothing needs replaying.
        let rs: Vec<Record> = (0..5).map(|i| rec(0.2 * i as f32, false, false)).collect();
        let c = choose_threshold(&rs, 1.0).unwrap();
        assert_eq!(c.detector.threshold, 0.0);
    }

    #[test]
    fn ties_are_replayed_together() {
        // Two inputs at 0.5: one correctable, one correct. Replaying the
        // correctable one forces replaying the other too.
        let rs = vec![
            rec(0.5, false, true),
            rec(0.5, true, true),
            rec(0.9, true, true),
        ];
        let c = choose_threshold(&rs, 1.0).unwrap();
        assert_eq!(c.detector.threshold, f64::from(next_up(0.5)));
        assert_eq!(c.tally.replayed, 2);
        assert!(Detector {
            threshold: c.detector.threshold
        }
        .replay(0.5));
        assert!(!Detector {
            threshold: c.detector.threshold
        }
        .replay(0.5000001));
    }

    #[test]
    fn single_input_and_relaxed_targets() {
        let one = [rec(0.7, false, true)];
        assert_eq!(
            choose_threshold(&one, 1.0).unwrap().detector.threshold,
            f64::INFINITY
        );
        // 0 of 1 correct misses even 50% of A0 = 1.
        assert_eq!(
            choose_threshold(&one, 0.5).unwrap().detector.threshold,
            f64::INFINITY
        );
        let ok = [rec(0.7, true, false)];
        assert_eq!(choose_threshold(&ok, 1.0).unwrap().detector.threshold, 0.0);
        // 100 inputs, 2 correctable at the bottom: 0.99 tolerates one miss.
        let mut rs: Vec<Record> = (0..98)
            .map(|i| rec(0.5 + i as f32 / 200.0, true, true))
            .collect();
        rs.push(rec(0.1, false, true));
        rs.push(rec(0.2, false, true));
        let strict = choose_threshold(&rs, 1.0).unwrap();
        let relaxed = choose_threshold(&rs, 0.99).unwrap();
        assert_eq!(strict.tally.replayed, 2);
        assert_eq!(relaxed.tally.replayed, 1);
        assert_eq!(relaxed.detector.threshold, f64::from(next_up(0.1)));
    }

    #[test]
    fn empty_sets_and_bad_targets_are_errors() {
        assert!(matches!(
            choose_threshold(&[], 1.0),
            Err(RuntimeError::Empty(_))
        ));
        let rs = [rec(0.5, true, true)];
        for t in [0.0, -1.0, 1.01, f64::NAN] {
            assert!(
                matches!(choose_threshold(&rs, t), Err(RuntimeError::Target(_))),
                "{t}"
            );
        }
        assert!(choose_threshold(&[rec(1.5, true, true)], 1.0).is_err());
        assert!(choose_threshold(&[rec(f32::NAN, true, true)], 1.0).is_err());
    }

    #[test]
    fn nan_confidence_is_replayed_at_run_time() {
        assert!(Detector { threshold: 0.0 }.replay(f32::NAN));
        assert!(!Detector { threshold: 0.0 }.replay(0.0));
    }
}
