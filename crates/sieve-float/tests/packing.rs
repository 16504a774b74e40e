//! Bit packing round trips and the fast decoders against the scalar path.

#![allow(clippy::unwrap_used)]

mod common;

use common::Rng;
use sieve_float::{
    decode, decode_packed, decode_packed_range, pack, packed_len, unpack, unpack_range, Decoder,
    FloatError, Format, PackedTensor, TABLE_MAX_WIDTH,
};

const LENGTHS: [usize; 6] = [0, 1, 7, 8, 63, 1000];

fn random_codes(rng: &mut Rng, width: u32, n: usize) -> Vec<u32> {
    let mask = if width == 32 {
        u32::MAX
    } else {
        (1 << width) - 1
    };
    (0..n).map(|_| rng.next_u64() as u32 & mask).collect()
}

#[test]
fn pack_unpack_round_trip_every_width() {
    let mut rng = Rng(10);
    for width in 1..=32u32 {
        for n in LENGTHS {
            let codes = random_codes(&mut rng, width, n);
            let bytes = pack(width, &codes).unwrap();
            assert_eq!(
                bytes.len(),
                (n * width as usize).div_ceil(8),
                "w={width} n={n}"
            );
            assert_eq!(Some(bytes.len()), packed_len(width, n));
            assert_eq!(unpack(width, &bytes, n).unwrap(), codes, "w={width} n={n}");
            // Padding bits of the last byte are zero.
            let used = n * width as usize % 8;
            if used != 0 {
                assert_eq!(bytes[bytes.len() - 1] >> used, 0, "w={width} n={n}");
            }
            // One byte short fails, and names the sizes.
            if !bytes.is_empty() {
                let err = unpack(width, &bytes[..bytes.len() - 1], n).unwrap_err();
                assert!(
                    matches!(err, FloatError::ShortInput { got, .. } if got == bytes.len() - 1)
                );
            }
            // Any sub-range.
            if n > 3 {
                let start = n / 3;
                let mut part = vec![0; n - start - 1];
                unpack_range(width, &bytes, start, &mut part).unwrap();
                assert_eq!(part, codes[start..n - 1]);
            }
        }
    }
}

#[test]
fn pack_ignores_high_bits_and_matches_bit_order() {
    // Element i occupies stream bits i*w.., stream bit k = bit k%8 of byte k/8.
    let codes = [0b101u32, 0b011, 0b110 | 0xf0];
    let bytes = pack(3, &codes).unwrap();
    let mut bits = Vec::new();
    for b in &bytes {
        for k in 0..8 {
            bits.push((b >> k) & 1);
        }
    }
    assert_eq!(&bits[..9], &[1, 0, 1, 1, 1, 0, 0, 1, 1]);
    assert!(bits[9..].iter().all(|&b| b == 0));
}

/// Every format of width <= 12, biases at both ends and both parities.
fn narrow_formats() -> Vec<Format> {
    let mut out = Vec::new();
    for signed in [false, true] {
        for e in 1u8..=7 {
            for m in 0u8..=11 {
                let r = Format::bias_range(e);
                for bias in [*r.start(), *r.start() + 1, (1 << (e - 1)) - 1, 64, *r.end()] {
                    if let Ok(f) = Format::new(signed, e, m, bias) {
                        if f.width() <= TABLE_MAX_WIDTH && !out.contains(&f) {
                            out.push(f);
                        }
                    }
                }
            }
        }
    }
    out
}

#[test]
fn table_equals_arithmetic_for_every_code() {
    let formats = narrow_formats();
    assert!(formats.len() > 200);
    for f in formats {
        let d = Decoder::new(f);
        for code in 0..(1u32 << f.width()) {
            let t = d.decode_table(code).unwrap();
            assert_eq!(t.to_bits(), decode(f, code).to_bits(), "{f} code {code:#x}");
            assert_eq!(d.decode(code).to_bits(), t.to_bits());
        }
    }
    let wide: Format = "s1e5m10b15".parse().unwrap();
    assert!(Decoder::new(wide).decode_table(0).is_none());
}

/// Formats of every width 1..=31 (one or two per width).
fn formats_per_width() -> Vec<Format> {
    let mut out = Vec::new();
    for w in 1u32..=31 {
        for (signed, e) in [(false, 1u8), (true, 3), (false, 5), (true, 7)] {
            let Some(m) = w.checked_sub(u32::from(signed) + u32::from(e)) else {
                continue;
            };
            if m > 23 {
                continue;
            }
            let bias = (1 << (e - 1)) + 3 - 1;
            if let Ok(f) = Format::new(signed, e, m as u8, bias.min(127)) {
                out.push(f);
            }
        }
    }
    out
}

#[test]
fn decode_packed_matches_unpack_then_decode() {
    let mut rng = Rng(11);
    let formats = formats_per_width();
    for w in 1..=31 {
        assert!(
            formats.iter().any(|f| f.width() == w),
            "no format of width {w}"
        );
    }
    for f in formats {
        let w = f.width();
        let d = Decoder::new(f);
        for n in [0usize, 1, 7, 8, 9, 63, 64, 1000] {
            let codes = random_codes(&mut rng, w, n);
            let bytes = pack(w, &codes).unwrap();
            let want: Vec<u32> = codes.iter().map(|&c| decode(f, c).to_bits()).collect();
            let mut out = vec![f32::NAN; n + 2];
            decode_packed(f, &bytes, n, &mut out).unwrap();
            let got: Vec<u32> = out[..n].iter().map(|x| x.to_bits()).collect();
            assert_eq!(got, want, "{f} n={n}");
            assert!(out[n].is_nan(), "wrote past n");
            // Ranges at every alignment, via the free function and a held decoder.
            for start in [0, 1, 3, 7, 8, 13] {
                if start > n {
                    continue;
                }
                for len in [0, 1, 5, 8, 17, n - start] {
                    if start + len > n {
                        continue;
                    }
                    let mut a = vec![0f32; len];
                    let mut b = vec![0f32; len];
                    decode_packed_range(f, &bytes, start, &mut a).unwrap();
                    d.decode_packed_range(&bytes, start, &mut b).unwrap();
                    let a: Vec<u32> = a.iter().map(|x| x.to_bits()).collect();
                    let b: Vec<u32> = b.iter().map(|x| x.to_bits()).collect();
                    assert_eq!(a, want[start..start + len], "{f} start={start} len={len}");
                    assert_eq!(a, b);
                }
            }
            // Errors: short input, short output.
            if n > 0 {
                let mut out = vec![0f32; n];
                assert!(d
                    .decode_packed(&bytes[..bytes.len() - 1], n, &mut out)
                    .is_err());
                assert!(d.decode_packed(&bytes, n, &mut out[..n - 1]).is_err());
                assert!(d.decode_packed_range(&bytes, 8, &mut out).is_err());
            }
        }
    }
}

#[test]
fn packed_tensor_round_trip() {
    let mut rng = Rng(12);
    for f in ["s1e4m3b7", "u0e3m2b4", "s1e5m10b15", "s1e2m0b1", "u0e1m0b0"] {
        let f: Format = f.parse().unwrap();
        let xs: Vec<f32> = (0..777).map(|_| (rng.unit() as f32 - 0.3) * 20.0).collect();
        let t = PackedTensor::encode_from(f, &xs).unwrap();
        assert_eq!(t.bytes().len(), packed_len(f.width(), xs.len()).unwrap());
        let mut out = vec![0f32; xs.len()];
        t.decode_into(&mut out).unwrap();
        for (x, y) in xs.iter().zip(&out) {
            assert_eq!(
                sieve_float::quantize(f, *x).to_bits(),
                y.to_bits(),
                "{f} {x}"
            );
        }
    }
}
