//! proptest: quantize is monotone and idempotent, encode/decode round-trip
//! codes, for arbitrary valid formats and non-NaN inputs.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use sieve_float::{decode, encode, quantize, Decoder, Format};

fn any_format() -> impl Strategy<Value = Format> {
    (any::<bool>(), 1u8..=7, 0u8..=23, any::<u8>()).prop_map(|(signed, e, m, pick)| {
        let r = Format::bias_range(e);
        let span = (r.end() - r.start() + 1) as u32;
        let bias = r.start() + (u32::from(pick) * 7919 % span) as i32;
        Format::new(signed, e, m, bias).expect("bias within its range")
    })
}

fn any_value() -> impl Strategy<Value = f32> {
    prop_oneof![
        any::<u32>().prop_map(f32::from_bits),
        (-30f32..30f32).prop_map(|k| k.exp2()),
        -1000f32..1000f32,
        Just(f32::INFINITY),
        Just(f32::NEG_INFINITY),
        Just(0.0f32),
        Just(-0.0f32),
    ]
    .prop_filter("not NaN", |x| !x.is_nan())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn monotone(f in any_format(), x in any_value(), y in any_value()) {
        let (lo, hi) = if x <= y { (x, y) } else { (y, x) };
        prop_assert!(quantize(f, lo) <= quantize(f, hi), "{} q({}) > q({})", f, lo, hi);
    }

    #[test]
    fn idempotent(f in any_format(), x in any_value()) {
        let q = quantize(f, x);
        prop_assert_eq!(quantize(f, q).to_bits(), q.to_bits());
        prop_assert_eq!(decode(f, encode(f, x)).to_bits(), q.to_bits());
    }

    #[test]
    fn codes_round_trip(f in any_format(), raw in any::<u32>()) {
        let code = raw & ((1u64 << f.width()) - 1) as u32;
        let x = decode(f, code);
        let exp_field = (code >> f.man_bits()) & ((1 << f.exp_bits()) - 1);
        // E = 0 with a non-zero mantissa is not canonical: it decodes to +-0.
        let canonical = if exp_field == 0 { code & (1 << (f.exp_bits() + f.man_bits())) } else { code };
        prop_assert_eq!(encode(f, x), canonical);
        prop_assert!(x.abs() <= f.max());
        prop_assert!(x == 0.0 || x.abs() >= f.min());
    }

    #[test]
    fn decoder_matches_scalar(f in any_format(), raw in any::<u32>()) {
        let d = Decoder::new(f);
        prop_assert_eq!(d.decode(raw).to_bits(), decode(f, raw).to_bits());
    }
}
