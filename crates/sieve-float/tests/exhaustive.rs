//! Exhaustive check over all 2^32 f32 bit patterns (NaNs: only that they
//! encode to 0) against an independent sorted-table reference.
//!
//! Run in release: `cargo test -p sieve-float --release -- --ignored`.
//! Each format takes a few seconds per core.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Spec, Table};
use rayon::prelude::*;
use sieve_float::{decode_slice, encode_slice, quantize_slice, Format};

const INF: u32 = 0x7f80_0000;
const CHUNK: u32 = 1 << 16;

/// Mismatches in one chunk of magnitudes `[start, start + CHUNK)` (both signs).
#[derive(Default)]
struct Buffers {
    xs: Vec<f32>,
    codes: Vec<u32>,
    dec: Vec<f32>,
    q: Vec<f32>,
}

fn check_chunk(f: Format, t: &Table, start: u32, b: &mut Buffers) -> (u64, Option<String>) {
    let s = &t.spec;
    let end = start.saturating_add(CHUNK).min(INF + 1);
    let n = (end - start) as usize;
    let Buffers { xs, codes, dec, q } = b;
    xs.clear();
    xs.extend((start..end).map(f32::from_bits));
    xs.extend((start..end).map(|a| f32::from_bits(a | 0x8000_0000)));
    codes.resize(xs.len(), 0);
    encode_slice(f, xs, codes).expect("lengths");
    dec.resize(xs.len(), 0.0);
    decode_slice(f, codes, dec).expect("lengths");
    q.clear();
    q.extend_from_slice(xs);
    quantize_slice(f, q);

    let mut bad = 0u64;
    let mut first = None;
    // The walk needs a start at or below the answer: binary search once.
    let ax0 = f32::from_bits(start) as f64;
    let mut cur = if ax0 < s.min() {
        s.min_mag()
    } else {
        (t.values.partition_point(|&v| v <= ax0) - 1) as u64
    };
    for i in 0..n {
        let a = start + i as u32;
        let ax = f32::from_bits(a) as f64;
        let mag = t.magnitude_walk(ax, &mut cur);
        for (neg, j) in [(false, i), (true, n + i)] {
            let (rc, rv) = if neg && !s.signed {
                (0, 0.0f32)
            } else {
                (s.code(neg, mag), t.f32_of(neg, mag))
            };
            if codes[j] != rc || dec[j].to_bits() != rv.to_bits() || q[j].to_bits() != rv.to_bits()
            {
                bad += 1;
                if first.is_none() {
                    first = Some(format!(
                        "{f} x={:e} ({:#010x}): code {:#x} (ref {rc:#x}), decode {:e}, quantize {:e}, ref {rv:e}",
                        xs[j],
                        xs[j].to_bits(),
                        codes[j],
                        dec[j],
                        q[j]
                    ));
                }
            }
        }
    }
    (bad, first)
}

fn exhaustive(spec: &str) {
    let f: Format = spec.parse().expect("format");
    let t = Table::new(Spec::of(f));
    let chunks: Vec<u32> = (0..=INF).step_by(CHUNK as usize).collect();
    let (bad, first) = chunks
        .par_iter()
        .map_init(Buffers::default, |b, &c| check_chunk(f, &t, c, b))
        .reduce(|| (0, None), |(a, fa), (b, fb)| (a + b, fa.or(fb)));
    assert_eq!(
        bad,
        0,
        "{bad} mismatches, first: {}",
        first.unwrap_or_default()
    );
    // NaNs: every pattern above +-inf encodes to 0 (sampled densely).
    let nans: Vec<f32> = (INF + 1..=u32::MAX >> 1)
        .step_by(4099)
        .flat_map(|a| [f32::from_bits(a), f32::from_bits(a | 0x8000_0000)])
        .collect();
    let mut codes = vec![1u32; nans.len()];
    encode_slice(f, &nans, &mut codes).expect("lengths");
    assert!(codes.iter().all(|&c| c == 0), "{f}: NaN must encode to 0");
}

#[test]
#[ignore = "exhaustive: run in release"]
fn exhaustive_s1e4m3b7() {
    exhaustive("s1e4m3b7");
}

#[test]
#[ignore = "exhaustive: run in release"]
fn exhaustive_s1e5m10b15() {
    exhaustive("s1e5m10b15");
}

#[test]
#[ignore = "exhaustive: run in release"]
fn exhaustive_u0e3m2b3() {
    exhaustive("u0e3m2b3");
}

#[test]
#[ignore = "exhaustive: run in release"]
fn exhaustive_u0e3m2b4() {
    exhaustive("u0e3m2b4");
}

/// m = 0 with a bias of the other parity than 127: ties judged on E.
#[test]
#[ignore = "exhaustive: run in release"]
fn exhaustive_s1e3m0b2() {
    exhaustive("s1e3m0b2");
}

/// Min = 2^-126 (Min/2 is an f32 subnormal) and, for bias 0, Max next to
/// f32::MAX with rounding towards infinity.
#[test]
#[ignore = "exhaustive: run in release"]
fn exhaustive_f32_range_edges() {
    exhaustive("s1e7m2b127");
    exhaustive("u0e7m4b0");
}
