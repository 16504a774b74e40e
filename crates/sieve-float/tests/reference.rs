//! encode / decode / quantize (scalar and slice) against the f64 reference of
//! `common`, on random and edge inputs, for a spread of formats.

#![allow(clippy::unwrap_used)]

mod common;

use common::{edge_values, random_values, sample_formats, Rng, Spec, Table};
use sieve_float::{decode, decode_slice, encode, encode_slice, quantize, quantize_slice, Format};

fn check_all(f: Format, xs: &[f32]) {
    let s = Spec::of(f);
    let mut codes = vec![0; xs.len()];
    encode_slice(f, xs, &mut codes).unwrap();
    let mut dec = vec![0.0; xs.len()];
    decode_slice(f, &codes, &mut dec).unwrap();
    let mut q = xs.to_vec();
    quantize_slice(f, &mut q);
    for (i, &x) in xs.iter().enumerate() {
        let (rc, rv) = s.reference(x);
        let ctx = || {
            format!(
                "{f} x={x:e} ({:#010x}) ref code {rc:#x} value {rv:e}",
                x.to_bits()
            )
        };
        assert_eq!(encode(f, x), rc, "encode {}", ctx());
        assert_eq!(codes[i], rc, "encode_slice {}", ctx());
        assert_eq!(decode(f, rc).to_bits(), rv.to_bits(), "decode {}", ctx());
        assert_eq!(dec[i].to_bits(), rv.to_bits(), "decode_slice {}", ctx());
        assert_eq!(quantize(f, x).to_bits(), rv.to_bits(), "quantize {}", ctx());
        assert_eq!(q[i].to_bits(), rv.to_bits(), "quantize_slice {}", ctx());
    }
}

#[test]
fn edge_values_match_reference() {
    let mut rng = Rng(1);
    let formats = sample_formats();
    assert!(formats.len() > 300, "{}", formats.len());
    for f in formats {
        let xs = edge_values(f, &mut rng);
        check_all(f, &xs);
    }
}

#[test]
fn random_values_match_reference() {
    let mut rng = Rng(2);
    for f in sample_formats() {
        let xs = random_values(f, &mut rng, 600);
        check_all(f, &xs);
    }
}

#[test]
fn special_inputs() {
    for f in sample_formats() {
        let max = f.max();
        assert_eq!(quantize(f, f32::INFINITY), max, "{f}");
        assert_eq!(quantize(f, f32::MAX), max, "{f}");
        assert_eq!(encode(f, f32::NAN), 0, "{f}");
        assert_eq!(quantize(f, -f32::NAN).to_bits(), 0, "{f}");
        assert_eq!(quantize(f, f.min() / 2.0), f.min(), "{f}");
        assert_eq!(quantize(f, (f.min() / 2.0).next_down()), 0.0, "{f}");
        if f.signed() {
            assert_eq!(quantize(f, f32::NEG_INFINITY), -max, "{f}");
            assert_eq!(quantize(f, -0.0).to_bits(), (-0.0f32).to_bits(), "{f}");
            assert_eq!(
                decode(f, encode(f, -0.0)).to_bits(),
                (-0.0f32).to_bits(),
                "{f}"
            );
        } else {
            assert_eq!(quantize(f, f32::NEG_INFINITY).to_bits(), 0, "{f}");
            assert_eq!(quantize(f, -0.0).to_bits(), 0, "{f}");
            assert_eq!(encode(f, -1.0), 0, "{f}");
        }
    }
}

/// The two references agree with each other (guards the reference itself).
#[test]
fn references_agree() {
    let mut rng = Rng(3);
    for f in sample_formats()
        .into_iter()
        .filter(|f| f.exp_bits() + f.man_bits() <= 12)
    {
        let s = Spec::of(f);
        let t = Table::new(s);
        for x in random_values(f, &mut rng, 300)
            .into_iter()
            .chain(edge_values(f, &mut rng))
        {
            let ax = (x as f64).abs();
            assert_eq!(s.magnitude(ax), t.magnitude(ax), "{f} {x:e}");
        }
    }
}

/// Hand-checked values: e4m3 bias 7 (the common FP8 E4M3 grid without
/// specials) and a sign-less m = 0 format with even bias.
#[test]
fn hand_checked() {
    let f: Format = "s1e4m3b7".parse().unwrap();
    let cases = [
        (0.3f32, 0.3125f32),
        (-0.3, -0.3125),
        (100.0, 96.0),  // tie between 96 (M=4) and 104 (M=5): even M wins
        (108.0, 112.0), // tie between 104 (M=5) and 112 (M=6)
        (104.0, 104.0),
        (300.0, 288.0),
        (1000.0, 480.0),
        (0.0078125, 0.015625), // Min/2 -> Min
        (0.0078, 0.0),
    ];
    for (x, y) in cases {
        assert_eq!(quantize(f, x), y, "{x}");
    }
    let u: Format = "u0e2m0b0".parse().unwrap(); // values 0, 2, 4, 8
    let expect = [
        (1.0, 2.0),
        (0.99, 0.0),
        (3.0, 4.0),
        (6.0, 4.0),
        (7.0, 8.0),
        (100.0, 8.0),
    ];
    for (x, y) in expect {
        assert_eq!(quantize(u, x), y, "{x}");
    }
}
