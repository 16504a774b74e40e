//! The detector's calibration as stored in a `.sieve` package: metadata
//! section [`SECTION`] (`meta.calibration.detector`), written by
//! `sieve calibrate` with [`sieve_design::Package::update_metadata`].
//!
//! Per speculative variant and target quality: the threshold (a number, or the
//! string `"inf"` for "replay everything"), the replay rate `P_r` and the
//! final accuracy on the calibration inputs, with the counts behind them.
//! `modes` maps a [`Mode`] to the target it uses.

use crate::detector::{Choice, Detector, Outcome, Record, Tally};
use crate::{RuntimeError, Scores};
use serde::{Deserialize, Serialize};
use sieve_design::{Package, Variant};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Name of the package metadata section.
pub const SECTION: &str = "detector";
/// Version of the section layout this build writes and reads.
pub const SECTION_VERSION: u32 = 1;

/// The runtime's user modes (paper §III-B).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mode {
    /// Speculate; replay below the threshold of the normal target (1.0: the
    /// original's accuracy).
    Normal,
    /// Speculate; replay below the threshold of the relaxed target (e.g. 0.99).
    PowerSaving,
    /// Everything to the cloud (the original answers every input).
    MissionCritical,
    /// Nothing leaves the device (no replay).
    Private,
}

impl Mode {
    /// Every mode, in display order.
    pub const ALL: [Mode; 4] = [
        Mode::Normal,
        Mode::PowerSaving,
        Mode::MissionCritical,
        Mode::Private,
    ];

    /// Kebab-case name (`normal`, `power-saving`, `mission-critical`, `private`).
    pub fn name(self) -> &'static str {
        match self {
            Mode::Normal => "normal",
            Mode::PowerSaving => "power-saving",
            Mode::MissionCritical => "mission-critical",
            Mode::Private => "private",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Mode {
    type Err = RuntimeError;

    /// Parses a mode name (case-insensitive; `_` and `-` alike).
    fn from_str(s: &str) -> Result<Mode, RuntimeError> {
        let k = s.to_ascii_lowercase().replace('_', "-");
        Mode::ALL
            .into_iter()
            .find(|m| m.name() == k)
            .ok_or_else(|| {
                RuntimeError::Calibration(format!(
                    "unknown mode {s:?} (expected normal, power-saving, mission-critical or private)"
                ))
            })
    }
}

/// Serde for thresholds: a JSON number, or `"inf"` for `+inf`.
mod threshold_serde {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &f64, s: S) -> Result<S::Ok, S::Error> {
        if t.is_finite() {
            s.serialize_f64(*t)
        } else {
            s.serialize_str("inf")
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Num(f64),
        Text(String),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        match Repr::deserialize(d)? {
            Repr::Num(v) if v.is_finite() => Ok(v),
            Repr::Text(t) if t == "inf" => Ok(f64::INFINITY),
            _ => Err(serde::de::Error::custom(
                "threshold must be a finite number or \"inf\"",
            )),
        }
    }
}

/// The threshold chosen for one target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetChoice {
    /// Final accuracy must reach `target` times the original's.
    pub target: f64,
    /// Replay iff confidence < threshold (`0`: never; `"inf"`: always).
    #[serde(with = "threshold_serde")]
    pub threshold: f64,
    /// The paper's `P_r`: fraction of calibration inputs replayed.
    pub replay_rate: f64,
    /// Final top-1 on the calibration inputs.
    pub final_top1: f64,
    /// The counts.
    pub tally: Tally,
    /// Share of the calibration's correctable inputs the threshold had to catch
    /// (`sieve calibrate --catch-share`; 0 = the paper's rule; absent in
    /// sections written before it existed).
    #[serde(default)]
    pub catch_share: f64,
}

impl TargetChoice {
    /// From a search result.
    pub fn from_choice(c: &Choice) -> TargetChoice {
        TargetChoice {
            target: c.target,
            threshold: c.detector.threshold,
            replay_rate: c.tally.replay_rate(),
            final_top1: c.tally.final_top1(),
            tally: c.tally,
            catch_share: c.catch_share,
        }
    }

    /// The detector with this threshold.
    pub fn detector(&self) -> Detector {
        Detector {
            threshold: self.threshold,
        }
    }
}

/// One variant's calibration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VariantCalibration {
    /// The variant's top-1 on the calibration inputs, alone.
    pub top1: f64,
    /// Inputs the variant gets right.
    pub correct: u64,
    /// Inputs wrong on the variant, right on the original.
    pub correctable: u64,
    /// Inputs wrong on both.
    pub uncorrectable: u64,
    /// Per target, in the order given.
    pub choices: Vec<TargetChoice>,
}

impl VariantCalibration {
    /// Classifies `records` and searches a threshold for each target, each
    /// also catching at least `catch_share` of the correctable inputs (0: the
    /// plain rule; see [`crate::choose_threshold_with`]).
    pub fn calibrate(
        records: &[Record],
        targets: &[f64],
        catch_share: f64,
    ) -> Result<Self, RuntimeError> {
        let count = |o: Outcome| records.iter().filter(|r| r.outcome() == o).count() as u64;
        let choices = targets
            .iter()
            .map(|&t| {
                crate::choose_threshold_with(records, t, catch_share)
                    .map(|c| TargetChoice::from_choice(&c))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let correct = count(Outcome::Correct);
        Ok(VariantCalibration {
            top1: correct as f64 / records.len().max(1) as f64,
            correct,
            correctable: count(Outcome::Correctable),
            uncorrectable: count(Outcome::Uncorrectable),
            choices,
        })
    }

    /// The choice for `target` (equal within 1e-12).
    pub fn choice(&self, target: f64) -> Option<&TargetChoice> {
        self.choices
            .iter()
            .find(|c| (c.target - target).abs() <= 1e-12)
    }
}

/// The whole `detector` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DetectorSection {
    /// [`SECTION_VERSION`].
    pub version: u32,
    /// The rule in words (for people reading `inspect --json`).
    pub rule: String,
    /// How the outputs were read.
    pub scores: Scores,
    /// The calibration dataset spec.
    pub dataset: String,
    /// Its split.
    pub split: String,
    /// Calibration inputs.
    pub images: u64,
    /// The original's correct answers on them.
    pub original_correct: u64,
    /// The original's top-1 on them (`A0`).
    pub original_top1: f64,
    /// Mode name -> target it uses (`normal`, `power-saving`).
    pub modes: BTreeMap<String, f64>,
    /// Variant name -> calibration.
    pub variants: BTreeMap<String, VariantCalibration>,
}

/// The rule text stored in the section.
pub const RULE: &str = "replay an input iff its speculative confidence (largest softmax probability) < threshold; threshold \"inf\" replays everything, 0 nothing";

impl DetectorSection {
    /// Mode targets for a list of calibrated targets: `normal` = 1.0 when
    /// calibrated, else the largest; `power-saving` = the smallest (the same
    /// as normal when only one target was calibrated).
    pub fn mode_targets(targets: &[f64]) -> BTreeMap<String, f64> {
        let mut m = BTreeMap::new();
        let max = targets.iter().copied().fold(f64::NAN, f64::max);
        let min = targets.iter().copied().fold(f64::NAN, f64::min);
        let normal = if targets.contains(&1.0) { 1.0 } else { max };
        if normal.is_finite() {
            m.insert(Mode::Normal.name().to_string(), normal);
        }
        if min.is_finite() {
            m.insert(Mode::PowerSaving.name().to_string(), min);
        }
        m
    }

    /// The detector of `variant` in `mode`: mission-critical replays
    /// everything, private nothing; normal and power-saving use the threshold
    /// calibrated for the mode's target.
    pub fn detector(&self, variant: Variant, mode: Mode) -> Result<Detector, RuntimeError> {
        match mode {
            Mode::MissionCritical => {
                return Ok(Detector {
                    threshold: f64::INFINITY,
                })
            }
            Mode::Private => return Ok(Detector { threshold: 0.0 }),
            _ => {}
        }
        let target = *self.modes.get(mode.name()).ok_or_else(|| {
            RuntimeError::Calibration(format!("no target calibrated for mode {mode}"))
        })?;
        let v = self.variants.get(variant.name()).ok_or_else(|| {
            RuntimeError::Calibration(format!("variant {variant} was not calibrated"))
        })?;
        v.choice(target).map(TargetChoice::detector).ok_or_else(|| {
            RuntimeError::Calibration(format!(
                "variant {variant} has no threshold for target {target} (mode {mode})"
            ))
        })
    }

    /// The section stored in `pkg`, if any.
    pub fn from_package(pkg: &Package) -> Result<Option<DetectorSection>, RuntimeError> {
        let Some(v) = pkg.meta().calibration.get(SECTION) else {
            return Ok(None);
        };
        let version = v.get("version").and_then(|x| x.as_u64());
        if version != Some(u64::from(SECTION_VERSION)) {
            return Err(RuntimeError::Calibration(format!(
                "section version {version:?}; this build reads {SECTION_VERSION}"
            )));
        }
        serde_json::from_value(v.clone())
            .map(Some)
            .map_err(|e| RuntimeError::Calibration(format!("malformed section: {e}")))
    }

    /// Stores the section in `pkg` (call [`Package::write`] to save it).
    pub fn store(&self, pkg: &mut Package) -> Result<(), RuntimeError> {
        let v = serde_json::to_value(self)
            .map_err(|e| RuntimeError::Calibration(format!("serialising: {e}")))?;
        pkg.update_metadata(SECTION, v);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detector::Record;
    use crate::ScoreKind;

    fn section() -> DetectorSection {
        let rs: Vec<Record> = (0..10)
            .map(|i| Record {
                confidence: i as f32 / 10.0,
                speculative_correct: i >= 2,
                original_correct: i != 5,
            })
            .collect();
        let targets = [1.0, 0.9];
        let vc = VariantCalibration::calibrate(&rs, &targets, 0.0).unwrap();
        DetectorSection {
            version: SECTION_VERSION,
            rule: RULE.into(),
            scores: Scores::new(ScoreKind::Probabilities, 10, 0).unwrap(),
            dataset: "mnist:x".into(),
            split: "validation".into(),
            images: 10,
            original_correct: 9,
            original_top1: 0.9,
            modes: DetectorSection::mode_targets(&targets),
            variants: BTreeMap::from([
                ("accurate".to_string(), vc),
                (
                    "exact".to_string(),
                    VariantCalibration::calibrate(
                        &[Record {
                            confidence: 0.3,
                            speculative_correct: false,
                            original_correct: true,
                        }],
                        &targets,
                        0.5,
                    )
                    .unwrap(),
                ),
            ]),
        }
    }

    #[test]
    fn section_round_trips_through_json_with_infinite_thresholds() {
        let s = section();
        assert_eq!(s.variants["exact"].choices[0].threshold, f64::INFINITY);
        let text = serde_json::to_string(&s).unwrap();
        assert!(text.contains("\"threshold\":\"inf\""), "{text}");
        let back: DetectorSection = serde_json::from_str(&text).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn modes_pick_their_targets() {
        let s = section();
        let a = s.variants["accurate"].clone();
        assert_eq!((a.correct, a.correctable, a.uncorrectable), (8, 2, 0));
        let normal = s.detector(Variant::Accurate, Mode::Normal).unwrap();
        let saving = s.detector(Variant::Accurate, Mode::PowerSaving).unwrap();
        assert!(saving.threshold <= normal.threshold);
        assert_eq!(normal.threshold, a.choice(1.0).unwrap().threshold);
        assert_eq!(
            s.detector(Variant::Accurate, Mode::Private)
                .unwrap()
                .threshold,
            0.0
        );
        assert!(s
            .detector(Variant::Approximate, Mode::Normal)
            .unwrap_err()
            .to_string()
            .contains("approximate"));
        assert_eq!("power_saving".parse::<Mode>().unwrap(), Mode::PowerSaving);
        assert!("fast".parse::<Mode>().is_err());
    }
}
