//! Independent f64 reference of the DESIGN §2 rounding rules, shared by the
//! integration tests. It never calls the crate's encode/decode.
#![allow(dead_code)]

use sieve_float::Format;

/// A format's parameters as plain numbers.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    pub signed: bool,
    pub e: u32,
    pub m: u32,
    pub bias: i32,
}

impl Spec {
    pub fn of(f: Format) -> Spec {
        Spec {
            signed: f.signed(),
            e: u32::from(f.exp_bits()),
            m: u32::from(f.man_bits()),
            bias: f.bias(),
        }
    }

    /// Largest magnitude code `(2^e - 1) << m | (2^m - 1)`.
    pub fn max_mag(&self) -> u64 {
        (1u64 << (self.e + self.m)) - 1
    }

    /// Magnitude code of `Min`.
    pub fn min_mag(&self) -> u64 {
        1u64 << self.m
    }

    /// Value of a magnitude code, by the textbook formula in f64.
    pub fn value(&self, mag: u64) -> f64 {
        let big_e = (mag >> self.m) as i32;
        let man = mag & ((1u64 << self.m) - 1);
        if big_e == 0 {
            return 0.0;
        }
        2f64.powi(big_e - self.bias) * (1.0 + man as f64 / 2f64.powi(self.m as i32))
    }

    pub fn min(&self) -> f64 {
        2f64.powi(1 - self.bias)
    }

    /// Full code from sign and magnitude code.
    pub fn code(&self, negative: bool, mag: u64) -> u32 {
        let s = if self.signed && negative {
            1u64 << (self.e + self.m)
        } else {
            0
        };
        (s | mag) as u32
    }

    /// f32 value of a full result.
    pub fn f32_of(&self, negative: bool, mag: u64) -> f32 {
        let v = self.value(mag) as f32;
        if self.signed && negative {
            -v
        } else {
            v
        }
    }

    /// Choose between consecutive magnitude codes `c` and `c + 1` for `ax`
    /// (`value(c) <= ax <= value(c+1)`): nearest, ties to the even code.
    pub fn pick(&self, ax: f64, c: u64) -> u64 {
        pick_between(ax, c, self.value(c), self.value(c + 1))
    }

    /// The reference: `(code, value)` for `x`, straight from the rules.
    /// NaN -> code 0 / +0 (the crate's documented choice).
    pub fn reference(&self, x: f32) -> (u32, f32) {
        if x.is_nan() {
            return (0, 0.0);
        }
        let neg = x.is_sign_negative();
        if neg && !self.signed {
            return (0, 0.0);
        }
        let ax = (x as f64).abs();
        let mag = self.magnitude(ax);
        (self.code(neg, mag), self.f32_of(neg, mag))
    }

    /// Magnitude code for `|x|` (arithmetic search of the binade).
    pub fn magnitude(&self, ax: f64) -> u64 {
        let min = self.min();
        if ax < min / 2.0 {
            return 0;
        }
        if ax < min {
            return self.min_mag();
        }
        let max = self.value(self.max_mag());
        if ax >= max {
            return self.max_mag();
        }
        // Binade k = floor(log2 ax), corrected for log2 rounding.
        let mut k = ax.log2().floor() as i32;
        while 2f64.powi(k) > ax {
            k -= 1;
        }
        while 2f64.powi(k + 1) <= ax {
            k += 1;
        }
        let big_e = (k + self.bias) as u64;
        let t = (ax / 2f64.powi(k) - 1.0) * 2f64.powi(self.m as i32);
        let c = (big_e << self.m) | t.floor() as u64;
        self.pick(ax, c)
    }
}

/// Nearest of `lo = value(c)` and `hi = value(c + 1)`, ties to the even code.
pub fn pick_between(ax: f64, c: u64, lo: f64, hi: f64) -> u64 {
    let (d_lo, d_hi) = (ax - lo, hi - ax);
    if d_lo < d_hi || (d_lo == d_hi && c.is_multiple_of(2)) {
        c
    } else {
        c + 1
    }
}

/// Sorted table of all non-negative magnitudes of a narrow format, with
/// decision points, for fast exhaustive walks.
pub struct Table {
    pub spec: Spec,
    pub values: Vec<f64>,
    pub values32: Vec<f32>,
    min: f64,
}

impl Table {
    pub fn new(spec: Spec) -> Table {
        let values: Vec<f64> = (0..=spec.max_mag()).map(|c| spec.value(c)).collect();
        let values32 = values.iter().map(|&v| v as f32).collect();
        Table {
            spec,
            values,
            values32,
            min: spec.min(),
        }
    }

    /// f32 value of a full result (table lookup).
    pub fn f32_of(&self, negative: bool, mag: u64) -> f32 {
        let v = self.values32[mag as usize];
        if self.spec.signed && negative {
            -v
        } else {
            v
        }
    }

    /// Magnitude code for `ax` by binary search (`hint`-free).
    pub fn magnitude(&self, ax: f64) -> u64 {
        let s = &self.spec;
        let min = s.min();
        if ax < min / 2.0 {
            return 0;
        }
        if ax < min {
            return s.min_mag();
        }
        let i = self.values.partition_point(|&v| v <= ax) - 1;
        let i = i as u64;
        if i >= s.max_mag() {
            return s.max_mag();
        }
        s.pick(ax, i)
    }

    /// Walking version for increasing `ax`: `cur` is the last answer's
    /// lower candidate (start at `min_mag`).
    pub fn magnitude_walk(&self, ax: f64, cur: &mut u64) -> u64 {
        let s = &self.spec;
        let min = self.min;
        if ax < min / 2.0 {
            return 0;
        }
        if ax < min {
            return s.min_mag();
        }
        let max_mag = s.max_mag();
        while *cur < max_mag && self.values[(*cur + 1) as usize] <= ax {
            *cur += 1;
        }
        if *cur >= max_mag {
            return max_mag;
        }
        let c = *cur as usize;
        pick_between(ax, *cur, self.values[c], self.values[c + 1])
    }
}

/// Tiny deterministic PRNG (splitmix64).
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A spread of valid formats: every signedness, e in 1..=7, several m, and
/// biases at both ends of the valid range, IEEE-like, and of both parities.
pub fn sample_formats() -> Vec<Format> {
    let mut out = Vec::new();
    for signed in [true, false] {
        for e in 1u8..=7 {
            for m in [0u8, 1, 2, 3, 4, 7, 10, 22, 23] {
                let r = Format::bias_range(e);
                let ieee = (1i32 << (e - 1)) - 1;
                for bias in [
                    *r.start(),
                    *r.start() + 1,
                    ieee,
                    ieee + 1,
                    15,
                    20,
                    *r.end() - 1,
                    *r.end(),
                ] {
                    if let Ok(f) = Format::new(signed, e, m, bias) {
                        if !out.contains(&f) {
                            out.push(f);
                        }
                    }
                }
            }
        }
    }
    out
}

/// Edge inputs for a format: around Min/2, Min, Max, ties between
/// neighbouring codes, powers of two, f32 extremes and subnormals.
pub fn edge_values(f: Format, rng: &mut Rng) -> Vec<f32> {
    let s = Spec::of(f);
    let mut v: Vec<f32> = vec![
        0.0,
        f32::MIN_POSITIVE,
        f32::from_bits(1),
        f32::from_bits(0x0040_0000),
        f32::from_bits(0x007f_ffff),
        f32::MAX,
        f32::INFINITY,
        1.0,
        1e-30,
        1e30,
        f.min(),
        f.max(),
        f.min() / 2.0,
    ];
    let around = |x: f32, v: &mut Vec<f32>| {
        if x.is_finite() {
            v.extend([x, x.next_up(), x.next_down()]);
        }
    };
    around(f.min() / 2.0, &mut v);
    around(f.min(), &mut v);
    around(f.max(), &mut v);
    for k in (f.min_exp() - 3)..=(f.max_exp() + 3) {
        if (-149..=127).contains(&k) {
            around(2f32.powi(k), &mut v);
        }
    }
    // Midpoints between consecutive codes (exact f32 when m <= 22), incl. above Max.
    let mut mids = vec![(
        s.max_mag(),
        s.value(s.max_mag()) * (1.0 + 2f64.powi(-(s.m as i32) - 1)),
    )];
    for _ in 0..40 {
        let c = s.min_mag() + rng.below(s.max_mag() - s.min_mag() + 1);
        if c < s.max_mag() {
            mids.push((c, (s.value(c) + s.value(c + 1)) / 2.0));
        }
    }
    for c in [s.min_mag(), s.max_mag() - 1] {
        if c >= s.min_mag() && c < s.max_mag() {
            mids.push((c, (s.value(c) + s.value(c + 1)) / 2.0));
        }
    }
    for (_, mid) in mids {
        let x = mid as f32;
        if x as f64 == mid {
            around(x, &mut v);
        }
    }
    let neg: Vec<f32> = v.iter().map(|x| -x).collect();
    v.extend(neg);
    v
}

/// Random inputs: uniform bit patterns (non-NaN) and values spread over the
/// format's range +- 3 binades.
pub fn random_values(f: Format, rng: &mut Rng, n: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(n);
    while v.len() < n {
        if rng.below(4) == 0 {
            let x = f32::from_bits(rng.next_u64() as u32);
            if !x.is_nan() {
                v.push(x);
            }
        } else {
            let lo = (f.min_exp() - 3).max(-149) as f64;
            let hi = (f.max_exp() + 3).min(127) as f64;
            let k = lo + rng.unit() * (hi - lo + 1.0);
            let x = (2f64.powf(k) * if rng.below(2) == 0 { 1.0 } else { -1.0 }) as f32;
            if x.is_finite() {
                v.push(x);
            }
        }
    }
    v
}
