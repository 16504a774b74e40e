//! Fitting a [`Format`] to data from its exponent histogram (DESIGN §2,
//! paper §IV-A).
//!
//! A window `[lo, hi]` of unbiased exponents maps to `bias = 1 - lo` and
//! `e = ceil(log2(hi - lo + 2))`; with `e` bits a window holds `2^e - 1`
//! exponents. Windows are confined to the `f32` normal range `[-126, 127]`
//! (see [`Format`]'s invariant), so `e <= 7`.

use crate::format::{F32_MAX_EXP, F32_MIN_EXP};
use crate::{FloatError, Format};

/// Smallest `floor(log2|x|)` of a non-zero finite `f32` (subnormal `2^-149`).
pub const HIST_MIN_EXP: i32 = -149;
/// Largest `floor(log2|x|)` of a finite `f32`.
pub const HIST_MAX_EXP: i32 = 127;
const BINS: usize = (HIST_MAX_EXP - HIST_MIN_EXP + 1) as usize;

/// Coverage `e_max` must reach (outliers beyond it are dropped).
pub const E_MAX_COVERAGE: f64 = 0.995;
/// Coverage under which the candidate sweep stops.
pub const MIN_CANDIDATE_COVERAGE: f64 = 0.5;
/// Largest exponent width with a valid window (`2^7 - 1 = 127` binades).
pub const MAX_FIT_EXP_BITS: u8 = 7;

/// Histogram of the exponents `floor(log2|x|)` of the non-zero finite values
/// of a tensor, plus counts of zeros, negatives and non-finite values.
///
/// Exact: the exponent is read from the `f32` bits (subnormals by their
/// leading one). Mergeable, so per-batch histograms can be summed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpHistogram {
    counts: [u64; BINS],
    zeros: u64,
    negatives: u64,
    non_finite: u64,
}

impl Default for ExpHistogram {
    fn default() -> Self {
        ExpHistogram::new()
    }
}

/// A window of exponents and how much of a histogram it covers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// Exponent bits `e`; the window holds `2^e - 1` exponents.
    pub exp_bits: u8,
    /// Lowest exponent in the window (`Min = 2^lo`).
    pub lo: i32,
    /// Highest exponent in the window.
    pub hi: i32,
    /// `1 - lo`.
    pub bias: i32,
    /// Fraction of non-zero finite values with exponent in `[lo, hi]`
    /// (1.0 when there are none).
    pub coverage: f64,
}

/// `floor(log2|x|)` of a non-zero finite value; `None` for zero, infinities and NaN.
pub fn exponent_of(x: f32) -> Option<i32> {
    let a = x.to_bits() & 0x7fff_ffff;
    if a == 0 || a >= 0x7f80_0000 {
        None
    } else {
        Some(bin_of(a) as i32 + HIST_MIN_EXP)
    }
}

/// Bin index of a non-zero finite absolute pattern.
#[inline(always)]
fn bin_of(a: u32) -> usize {
    if a >= 0x0080_0000 {
        ((a >> 23) + 22) as usize
    } else {
        (31 - a.leading_zeros()) as usize
    }
}

impl ExpHistogram {
    /// An empty histogram.
    pub fn new() -> ExpHistogram {
        ExpHistogram {
            counts: [0; BINS],
            zeros: 0,
            negatives: 0,
            non_finite: 0,
        }
    }

    /// Histogram of `xs`.
    pub fn from_slice(xs: &[f32]) -> ExpHistogram {
        let mut h = ExpHistogram::new();
        h.add_slice(xs);
        h
    }

    /// Counts one value: zeros (±0) in [`zeros`](Self::zeros), infinities and
    /// NaN in [`non_finite`](Self::non_finite), others in their exponent bin;
    /// values `< 0` (including `-inf`) also in [`negatives`](Self::negatives).
    #[inline]
    pub fn add(&mut self, x: f32) {
        let bits = x.to_bits();
        let a = bits & 0x7fff_ffff;
        if a == 0 {
            self.zeros += 1;
            return;
        }
        if a > 0x7f80_0000 {
            self.non_finite += 1;
            return;
        }
        self.negatives += u64::from(bits >> 31);
        if a == 0x7f80_0000 {
            self.non_finite += 1;
        } else if let Some(c) = self.counts.get_mut(bin_of(a)) {
            *c += 1;
        }
    }

    /// Counts every value of `xs`, as [`add`](Self::add).
    ///
    /// In blocks: first every value's counter slot, without branches (activations
    /// after ReLU are half zeros, which a branch would mispredict) and in a loop the
    /// compiler vectorises, then the increments, into four sets of counters in turn
    /// so that consecutive equal exponents do not wait on each other.
    pub fn add_slice(&mut self, xs: &[f32]) {
        // Slots: the exponent bins, then non-finite (biased exponent 255: infinities
        // and NaN), then zeros.
        const NON_FINITE: usize = BINS;
        const ZERO: u32 = BINS as u32 + 1;
        const BLOCK: usize = 256;
        let mut lanes = [[0u64; BINS + 2]; 4];
        let mut neg = 0u64;
        let mut slots = [0u32; BLOCK];
        for block in xs.chunks(BLOCK) {
            for (slot, &x) in slots.iter_mut().zip(block) {
                let bits = x.to_bits();
                let a = bits & 0x7fff_ffff;
                let e = a >> 23;
                // A subnormal's exponent from its leading one: `a` converts to f32
                // exactly (a < 2^23), and that float's exponent is floor(log2 a).
                let sub = ((a as i32 as f32).to_bits() >> 23).wrapping_sub(127);
                let i = if e != 0 { e + 22 } else { sub };
                *slot = if a == 0 { ZERO } else { i };
                // Sign set, non-zero and not NaN (-inf counts).
                neg += u64::from((bits >> 31) & u32::from(a.wrapping_sub(1) < 0x7f80_0000));
            }
            let slots = &slots[..block.len()];
            let mut quads = slots.chunks_exact(4);
            for q in &mut quads {
                for (lane, &i) in lanes.iter_mut().zip(q) {
                    if let Some(c) = lane.get_mut(i as usize) {
                        *c += 1;
                    }
                }
            }
            for &i in quads.remainder() {
                if let Some(c) = lanes[0].get_mut(i as usize) {
                    *c += 1;
                }
            }
        }
        let count = |i: usize| lanes.iter().map(|l| l[i]).sum::<u64>();
        for (i, c) in self.counts.iter_mut().enumerate() {
            *c += count(i);
        }
        self.negatives += neg;
        self.non_finite += count(NON_FINITE);
        self.zeros += count(ZERO as usize);
    }

    /// Adds the counts of `other` to `self`.
    pub fn merge(&mut self, other: &ExpHistogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.zeros += other.zeros;
        self.negatives += other.negatives;
        self.non_finite += other.non_finite;
    }

    /// Number of values with exponent `exp` (0 outside `[-149, 127]`).
    pub fn count(&self, exp: i32) -> u64 {
        usize::try_from(exp - HIST_MIN_EXP)
            .ok()
            .and_then(|i| self.counts.get(i))
            .copied()
            .unwrap_or(0)
    }

    /// Number of zeros (`+0.0` and `-0.0`).
    pub fn zeros(&self) -> u64 {
        self.zeros
    }

    /// Number of values `< 0`.
    pub fn negatives(&self) -> u64 {
        self.negatives
    }

    /// Number of infinities and NaNs (not in any exponent bin).
    pub fn non_finite(&self) -> u64 {
        self.non_finite
    }

    /// Number of non-zero finite values (the sum of all exponent bins).
    pub fn non_zero(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Whether no value `< 0` and no NaN was seen: an unsigned format loses
    /// nothing on such data.
    pub fn is_non_negative(&self) -> bool {
        self.negatives == 0 && self.non_finite == 0
    }

    /// Smallest and largest exponents seen, `None` if no non-zero finite value.
    pub fn exp_range(&self) -> Option<(i32, i32)> {
        let lo = self.counts.iter().position(|&c| c > 0)?;
        let hi = self.counts.iter().rposition(|&c| c > 0)?;
        Some((lo as i32 + HIST_MIN_EXP, hi as i32 + HIST_MIN_EXP))
    }

    fn covered(&self, lo: i32, hi: i32) -> u64 {
        let lo = lo.max(HIST_MIN_EXP);
        let hi = hi.min(HIST_MAX_EXP);
        if lo > hi {
            return 0;
        }
        let (a, b) = ((lo - HIST_MIN_EXP) as usize, (hi - HIST_MIN_EXP) as usize);
        self.counts[a..=b].iter().sum()
    }

    /// Fraction of non-zero finite values whose exponent is in `[lo, hi]`;
    /// 1.0 when there are no such values.
    pub fn coverage(&self, lo: i32, hi: i32) -> f64 {
        let total = self.non_zero();
        if total == 0 {
            return 1.0;
        }
        self.covered(lo, hi) as f64 / total as f64
    }

    /// The window of `2^e - 1` exponents inside `[-126, 127]` with the
    /// highest coverage; ties go to the highest `lo` (keep large magnitudes,
    /// flush small ones; with full coverage this is the paper's
    /// `bias = 1 - min exponent`). If nothing can be covered (all values are
    /// `f32` subnormals), the lowest window `lo = -126`. With no non-zero data, the IEEE-like
    /// window centred on 0 (`bias = 2^(e-1) - 1`). Errors with
    /// [`FloatError::NoWindow`] unless `1 <= e <= 7`.
    pub fn best_window(&self, exp_bits: u8) -> Result<Window, FloatError> {
        if !(1..=MAX_FIT_EXP_BITS).contains(&exp_bits) {
            return Err(FloatError::NoWindow { exp_bits });
        }
        let n = (1i32 << exp_bits) - 1;
        let total = self.non_zero();
        let window = |lo: i32, covered: u64| Window {
            exp_bits,
            lo,
            hi: lo + n - 1,
            bias: 1 - lo,
            coverage: if total == 0 {
                1.0
            } else {
                covered as f64 / total as f64
            },
        };
        if total == 0 {
            let bias = (1i32 << (exp_bits - 1)) - 1;
            return Ok(window(1 - bias, 0));
        }
        let mut best_lo = F32_MIN_EXP;
        let mut best = 0u64;
        for lo in F32_MIN_EXP..=(F32_MAX_EXP - n + 1) {
            let c = self.covered(lo, lo + n - 1);
            // `best > 0`: data that is all f32-subnormal keeps the lowest window.
            if c > best || (c == best && best > 0) {
                best = c;
                best_lo = lo;
            }
        }
        Ok(window(best_lo, best))
    }

    /// The smallest `e` (1..=7) whose best window covers at least 99.5% of
    /// the non-zero values; 7 if none does.
    pub fn e_max(&self) -> u8 {
        (1..=MAX_FIT_EXP_BITS)
            .find(|&e| {
                self.best_window(e)
                    .map(|w| w.coverage >= E_MAX_COVERAGE)
                    .unwrap_or(false)
            })
            .unwrap_or(MAX_FIT_EXP_BITS)
    }

    /// The exponent widths the design search tries, with their best windows:
    /// `e_max` first (always included), then `e_max - 1` down to 2, stopping
    /// before the first whose coverage is below 50%.
    pub fn candidate_exponents(&self) -> Vec<Window> {
        let e_max = self.e_max();
        let mut out = Vec::new();
        for e in (1..=e_max).rev() {
            if e < 2 && e != e_max {
                break;
            }
            let Ok(w) = self.best_window(e) else { break };
            if e != e_max && w.coverage < MIN_CANDIDATE_COVERAGE {
                break;
            }
            out.push(w);
        }
        out
    }
}

/// The format with `e_max` exponent bits and its best bias, for the given
/// mantissa width and signedness. Errors if `man_bits > 23`.
pub fn fit(hist: &ExpHistogram, man_bits: u8, signed: bool) -> Result<Format, FloatError> {
    let w = hist.best_window(hist.e_max())?;
    Format::new(signed, w.exp_bits, man_bits, w.bias)
}

/// Whether every value is `>= 0` (`-0.0` counts as non-negative) and none is
/// NaN: such a tensor can use an unsigned format without loss.
pub fn is_non_negative(xs: &[f32]) -> bool {
    xs.iter().all(|&x| x >= 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponents_from_bits() {
        assert_eq!(exponent_of(1.0), Some(0));
        assert_eq!(exponent_of(-3.0), Some(1));
        assert_eq!(exponent_of(0.75), Some(-1));
        assert_eq!(exponent_of(f32::MAX), Some(127));
        assert_eq!(exponent_of(f32::MIN_POSITIVE), Some(-126));
        assert_eq!(exponent_of(f32::from_bits(1)), Some(-149));
        assert_eq!(exponent_of(f32::from_bits(0x0040_0000)), Some(-127));
        assert_eq!(exponent_of(f32::from_bits(0x003f_ffff)), Some(-128));
        assert_eq!(exponent_of(0.0), None);
        assert_eq!(exponent_of(f32::INFINITY), None);
        assert_eq!(exponent_of(f32::NAN), None);
    }

    #[test]
    fn slices_count_as_value_by_value() {
        // Every sign and biased exponent, with mantissas that reach every subnormal
        // leading-one position (0, 1, 2^k, 2^k - 1, all ones) and a pseudo-random one,
        // in slices of every length mod 4 (the four counter lanes and the remainder).
        let mut pats = vec![];
        let mut r = 0x2545_f491_u32;
        for sign in [0u32, 1] {
            for exp in 0u32..256 {
                let mut mants = vec![0u32, 1, 0x7f_ffff];
                for k in 0..23 {
                    mants.push(1 << k);
                    mants.push((1 << k) - 1);
                }
                r ^= r << 13;
                r ^= r >> 17;
                r ^= r << 5;
                mants.push(r & 0x7f_ffff);
                for m in mants {
                    pats.push(f32::from_bits(sign << 31 | exp << 23 | m));
                }
            }
        }
        for len in [0, 1, 2, 3, 4, 5, 7, 8, 13] {
            for start in (0..pats.len().saturating_sub(len)).step_by(977) {
                let xs = &pats[start..start + len];
                let mut one = ExpHistogram::new();
                for &x in xs {
                    one.add(x);
                }
                assert_eq!(ExpHistogram::from_slice(xs), one, "{xs:?}");
            }
        }
        let mut one = ExpHistogram::new();
        for &x in &pats {
            one.add(x);
        }
        let all = ExpHistogram::from_slice(&pats);
        assert_eq!(all, one);
        // 2 signs x 256 exponents: the all-ones exponent is non-finite, zero mantissa
        // with zero exponent is a zero (0 and 2^0 - 1 in each sign's mantissa list).
        assert_eq!(all.non_finite(), 2 * 50);
        assert_eq!(all.zeros(), 2 * 2);
    }

    #[test]
    fn counts_and_merge() {
        let mut h =
            ExpHistogram::from_slice(&[1.0, 1.5, -2.0, 0.0, -0.0, f32::NAN, f32::NEG_INFINITY]);
        assert_eq!(h.count(0), 2);
        assert_eq!(h.count(1), 1);
        assert_eq!(h.zeros(), 2);
        assert_eq!(h.negatives(), 2);
        assert_eq!(h.non_finite(), 2);
        assert_eq!(h.non_zero(), 3);
        assert_eq!(h.exp_range(), Some((0, 1)));
        let g = ExpHistogram::from_slice(&[0.25, f32::from_bits(3)]);
        h.merge(&g);
        assert_eq!(h.count(-2), 1);
        assert_eq!(h.count(-148), 1);
        assert_eq!(h.non_zero(), 5);
        assert!((h.coverage(-2, 0) - 0.6).abs() < 1e-12);
        assert!(!h.is_non_negative());
        assert!(ExpHistogram::from_slice(&[0.0, 3.0]).is_non_negative());
    }

    /// The paper's AlexNet FC8 example: exponents -5..-14 (plus rare outliers
    /// down to -32) -> bias 15, e = 4.
    #[test]
    fn fc8_example() {
        let mut h = ExpHistogram::new();
        for e in -14..=-5 {
            for _ in 0..1000 {
                h.add(2f32.powi(e) * 1.3);
            }
        }
        for _ in 0..10 {
            h.add(-0.07); // exponent -4
        }
        for e in -32..=-25 {
            h.add(-(2f32.powi(e)));
        }
        assert_eq!(h.e_max(), 4);
        let w = h.best_window(4).unwrap();
        assert_eq!((w.lo, w.hi, w.bias), (-14, 0, 15));
        assert!(w.coverage > 0.998 && w.coverage < 1.0);
        let f = fit(&h, 3, true).unwrap();
        assert_eq!(f.to_string(), "s1e4m3b15");
        let c = h.candidate_exponents();
        let es: Vec<u8> = c.iter().map(|w| w.exp_bits).collect();
        // e=3 (7 exponents) covers 7/10 of the bulk, e=2 (3 exponents) 3/10 < 50%.
        assert_eq!(es, vec![4, 3]);
        assert_eq!((c[1].lo, c[1].hi), (-11, -5));
        assert!((c[1].coverage - 7000.0 / 10018.0).abs() < 1e-12);
    }

    #[test]
    fn windows_and_edge_cases() {
        let empty = ExpHistogram::new();
        assert_eq!(empty.e_max(), 1);
        assert_eq!(empty.best_window(4).unwrap().bias, 7);
        assert_eq!(empty.candidate_exponents().len(), 1);
        assert!(empty.best_window(8).is_err());
        assert!(empty.best_window(0).is_err());
        // One binade: e = 1 suffices.
        let one = ExpHistogram::from_slice(&[1.0, 1.5, 1.75]);
        assert_eq!(one.e_max(), 1);
        assert_eq!(fit(&one, 2, false).unwrap().to_string(), "u0e1m2b1");
        // Tiny f32 subnormals cannot be covered; the window stays in range.
        let tiny = ExpHistogram::from_slice(&[f32::from_bits(5), 1e-40]);
        let w = tiny.best_window(2).unwrap();
        assert_eq!(w.lo, -126);
        assert_eq!(w.coverage, 0.0);
        assert_eq!(tiny.e_max(), 7);
        // Huge values: window pinned at the top.
        let huge = ExpHistogram::from_slice(&[f32::MAX, 1e38]);
        let w = huge.best_window(3).unwrap();
        assert_eq!((w.lo, w.hi), (121, 127));
        assert!(Format::new(true, 3, 0, w.bias).is_ok());
        // Sweep stops below 50%.
        let spread: Vec<f32> = (-20..20).map(|e| 2f32.powi(e)).collect();
        let h = ExpHistogram::from_slice(&spread);
        assert_eq!(h.e_max(), 6);
        let es: Vec<u8> = h.candidate_exponents().iter().map(|w| w.exp_bits).collect();
        assert_eq!(es, vec![6, 5]); // e=4: 15/40 < 50%
        assert!(is_non_negative(&[0.0, -0.0, 1.0]));
        assert!(!is_non_negative(&[0.0, -1e-30]));
        assert!(!is_non_negative(&[f32::NAN]));
    }
}
