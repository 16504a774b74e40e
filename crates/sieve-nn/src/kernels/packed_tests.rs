use super::super::reference;
use super::*;
use proptest::prelude::*;

fn data(len: usize, seed: u32) -> Vec<f32> {
    (0..len)
        .map(|i| {
            let h = (i as u32 ^ seed.wrapping_mul(0x9e37_79b9)).wrapping_mul(2654435761);
            ((h >> 8) % 2001) as f32 / 1000.0 - 1.0
        })
        .collect()
}

/// A format of the given width (>= 2) built from three seeds.
fn format(width: u32, signed: bool, e_seed: u32, b_seed: i32) -> Format {
    let s = u32::from(signed);
    let rest = width - s;
    let e = (1 + e_seed % rest.min(7)).min(7);
    let m = (rest - e).min(23);
    let range = Format::bias_range(e as u8);
    let span = range.end() - range.start() + 1;
    // Keep most values representable: biases near the IEEE-like one.
    let ieee = (1i32 << (e - 1)) - 1;
    let bias = (ieee + b_seed.rem_euclid(5) - 2).clamp(*range.start(), *range.end());
    let _ = span;
    Format::new(signed, e as u8, m as u8, bias).unwrap()
}

fn packed(f: Format, len: usize, seed: u32) -> PackedTensor {
    let mut v = data(len, seed);
    // Some exact zeros and negative zeros.
    for (i, x) in v.iter_mut().enumerate() {
        if i % 13 == 5 {
            *x = 0.0;
        } else if i % 17 == 3 {
            *x = -0.0;
        }
    }
    PackedTensor::encode_from(f, &v).unwrap()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn consts_decode_matches_codec(width in 2u32..=24, signed: bool, es in 0u32..8, bs in 0i32..5) {
        let f = format(width, signed, es, bs);
        let c = Consts::new(f);
        let count = 1u32 << f.width().min(14);
        for code in 0..count {
            prop_assert_eq!(c.decode(code).to_bits(), sieve_float::decode(f, code).to_bits(), "{} code {}", f, code);
        }
    }

    #[test]
    fn decode_into_matches_codec(width in 2u32..=18, signed: bool, es in 0u32..8, bs in 0i32..5,
                                  len in 0usize..300) {
        let f = format(width, signed, es, bs);
        let p = packed(f, len, 3);
        let mut out = vec![f32::NAN; len];
        decode_into(&p, &mut out).unwrap();
        prop_assert_eq!(bits(&out), bits(&p.to_vec()));
        // Ranges starting anywhere (unaligned heads).
        if len > 3 {
            let s = PackedSrc::<MODE_GEN>::new(&p);
            if f.width() < 16 && f.width() != 8 {
                let mut part = vec![0.0; len - 3];
                s.fill(3, &mut part);
                prop_assert_eq!(bits(&part), bits(&p.to_vec()[3..]));
            }
        }
    }

    #[test]
    fn packed_fc_equals_dense_fc(
        width in 2u32..=16, signed: bool, es in 0u32..8, bs in 0i32..5,
        m in 1usize..4, n in 0usize..24, k in 0usize..70, trans_b: bool,
        beta_sel in 0usize..3, alpha in -2.0f32..2.0,
    ) {
        let f = format(width, signed, es, bs);
        let beta = [0.0f32, 1.0, -0.5][beta_sel];
        let p = packed(f, n * k, 7);
        let dense = p.to_vec();
        let a = data(m * k, 1);
        let c0 = data(m * n, 2);
        let mut c_packed = c0.clone();
        let mut c_dense = c0.clone();
        fc(m, n, k, &a, FcWeights::Packed(&p), trans_b, alpha, beta, &mut c_packed).unwrap();
        fc(m, n, k, &a, FcWeights::Dense(&dense), trans_b, alpha, beta, &mut c_dense).unwrap();
        prop_assert_eq!(bits(&c_packed), bits(&c_dense));
        // And both agree with the plain reference GEMM up to summation order.
        let mut c_ref = c0.clone();
        reference::gemm(m, n, k, &a, false, &dense, trans_b, alpha, beta, &mut c_ref).unwrap();
        let mag: f32 = a.iter().map(|v| v.abs()).fold(0.0, f32::max)
            * dense.iter().map(|v| v.abs()).fold(0.0, f32::max) * k as f32 * alpha.abs();
        for (x, y) in c_packed.iter().zip(&c_ref) {
            prop_assert!((x - y).abs() <= 1e-5 * (mag + 1.0) + 1e-6 * y.abs(), "{} vs {}", x, y);
        }
    }
}

/// Large enough for the parallel paths, odd `k` (rows not byte-aligned) and `k` a
/// multiple of 8 (four-row blocks, 64-element blocks), every decoder mode, batch 1 and
/// 3; also one pool thread vs the default pool.
#[test]
fn parallel_odd_shapes_all_modes() {
    for (n, k) in [(301, 517), (37, 200)] {
        odd_shapes(n, k);
    }
}

fn odd_shapes(n: usize, k: usize) {
    for f in [
        "s1e4m3b7",
        "u0e4m4b9",
        "s1e5m10b15",
        "s1e3m2b3",
        "s1e6m12b31",
        "s1e2m0b1",
    ] {
        let f: Format = f.parse().unwrap();
        let p = packed(f, n * k, 11);
        let dense = p.to_vec();
        for (m, trans_b) in [(1, true), (1, false), (3, true), (3, false)] {
            let a = data(m * k, 4);
            let mut c1 = vec![0.0; m * n];
            let mut c2 = vec![0.0; m * n];
            fc(
                m,
                n,
                k,
                &a,
                FcWeights::Packed(&p),
                trans_b,
                1.0,
                0.0,
                &mut c1,
            )
            .unwrap();
            fc(
                m,
                n,
                k,
                &a,
                FcWeights::Dense(&dense),
                trans_b,
                1.0,
                0.0,
                &mut c2,
            )
            .unwrap();
            assert_eq!(bits(&c1), bits(&c2), "{f} m={m} trans_b={trans_b}");
            let one = rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .build()
                .unwrap();
            let mut c3 = vec![0.0; m * n];
            one.install(|| {
                fc(
                    m,
                    n,
                    k,
                    &a,
                    FcWeights::Packed(&p),
                    trans_b,
                    1.0,
                    0.0,
                    &mut c3,
                )
                .unwrap()
            });
            if m == 1 {
                // Batch 1: each output's summation does not depend on the split.
                assert_eq!(bits(&c1), bits(&c3), "{f} threads, trans_b={trans_b}");
            }
            let mut c_ref = vec![0.0; m * n];
            reference::gemm(m, n, k, &a, false, &dense, trans_b, 1.0, 0.0, &mut c_ref).unwrap();
            for (x, y) in c1.iter().zip(&c_ref) {
                assert!((x - y).abs() <= 1e-3 * (1.0 + y.abs()), "{f}: {x} vs {y}");
            }
        }
    }
}

#[test]
fn bad_lengths_are_errors() {
    let p = PackedTensor::encode_from("s1e4m3b7".parse().unwrap(), &[1.0; 6]).unwrap();
    let mut c = vec![0.0; 2];
    let e = fc(
        1,
        2,
        4,
        &[0.0; 4],
        FcWeights::Packed(&p),
        true,
        1.0,
        0.0,
        &mut c,
    )
    .unwrap_err();
    assert_eq!(
        e,
        KernelError::BadLength {
            op: "fc",
            operand: "weights",
            expected: 8,
            actual: 6
        }
    );
    let mut out = vec![0.0; 5];
    assert!(decode_into(&p, &mut out).is_err());
}

#[test]
fn zero_codes_keep_their_sign() {
    let f: Format = "s1e3m2b3".parse().unwrap();
    let p = PackedTensor::encode_from(f, &[0.0, -0.0, 1.0, -1.0, 1e-9, -1e-9, 0.0, 0.0]).unwrap();
    let mut out = vec![9.0; 8];
    decode_into(&p, &mut out).unwrap();
    assert_eq!(bits(&out), bits(&p.to_vec()));
    assert_eq!(out[1].to_bits(), 0x8000_0000);
    assert_eq!(out[5].to_bits(), 0x8000_0000);
}

/// Batch > 1 with several weight panels (both layouts): packed == dense bit for bit,
/// close to the reference GEMM.
#[test]
fn several_panels() {
    let (m, n, k) = (2, 700, 2000);
    let f: Format = "s1e4m3b7".parse().unwrap();
    let p = packed(f, n * k, 5);
    let dense = p.to_vec();
    let a = data(m * k, 6);
    for trans_b in [true, false] {
        let mut c1 = vec![0.0; m * n];
        let mut c2 = vec![0.0; m * n];
        fc(
            m,
            n,
            k,
            &a,
            FcWeights::Packed(&p),
            trans_b,
            1.0,
            0.0,
            &mut c1,
        )
        .unwrap();
        fc(
            m,
            n,
            k,
            &a,
            FcWeights::Dense(&dense),
            trans_b,
            1.0,
            0.0,
            &mut c2,
        )
        .unwrap();
        assert_eq!(bits(&c1), bits(&c2), "trans_b={trans_b}");
        let mut c_ref = vec![0.0; m * n];
        reference::gemm(m, n, k, &a, false, &dense, trans_b, 1.0, 0.0, &mut c_ref).unwrap();
        for (x, y) in c1.iter().zip(&c_ref) {
            assert!((x - y).abs() <= 1e-3 * (1.0 + y.abs()), "{x} vs {y}");
        }
    }
}
