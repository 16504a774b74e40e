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
            let s = PackedSrc::<MODE_GEN>::new(&p, &[]);
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

/// Per-row shifts for `rows` rows of format `f`: a spread of values inside
/// [`shift_range`], with the extremes of the range on rows 0 and 1.
fn row_shifts(f: Format, rows: usize, seed: u32) -> Vec<i8> {
    let r = shift_range(f);
    (0..rows)
        .map(|i| {
            let s = match i {
                0 => *r.end(),
                1 => *r.start(),
                _ => {
                    let h = (i as u32 ^ seed).wrapping_mul(2654435761) >> 8;
                    (h % 41) as i32 - 20
                }
            };
            s.clamp(*r.start(), *r.end()) as i8
        })
        .collect()
}

/// Codes whose row `zero_row` is all zeros (±0).
fn packed_with_zero_row(f: Format, rows: usize, cols: usize, zero_row: usize) -> PackedTensor {
    let mut v = data(rows * cols, 9);
    for (i, x) in v.iter_mut().enumerate() {
        if i / cols.max(1) == zero_row {
            *x = if i % 2 == 0 { 0.0 } else { -0.0 };
        } else if i % 13 == 5 {
            *x = 0.0;
        }
    }
    PackedTensor::encode_from(f, &v).unwrap()
}

/// The scaled values computed independently: `decode(code) * 2^s` in f64, which must
/// be an exact f32.
fn scaled_reference(p: &PackedTensor, shifts: &[i8]) -> Vec<f32> {
    let rl = p.len() / shifts.len();
    p.to_vec()
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let y = f64::from(v) * 2f64.powi(i32::from(shifts[i / rl]));
            let out = y as f32;
            assert_eq!(f64::from(out), y, "not exact: {v} * 2^{}", shifts[i / rl]);
            assert!(out == 0.0 || out.is_normal(), "{out} not normal");
            out
        })
        .collect()
}

#[test]
fn shift_range_keeps_values_normal() {
    for f in [
        "s1e4m3b7",
        "s1e2m0b1",
        "u0e3m5b127",
        "s1e7m6b0",
        "s1e5m10b15",
    ] {
        let f: Format = f.parse().unwrap();
        let r = shift_range(f);
        assert!(r.start() <= r.end(), "{f}");
        // Max * 2^hi finite, Min * 2^lo normal; one step further is not.
        let (lo, hi) = (*r.start(), *r.end());
        assert!(
            (f64::from(f.max()) * 2f64.powi(hi)) < f64::from(f32::MAX),
            "{f}"
        );
        assert!((f64::from(f.min()) * 2f64.powi(lo)) >= f64::from(f32::MIN_POSITIVE));
        if hi < 127 {
            assert!(
                (f64::from(f.max()) * 2f64.powi(hi + 1)) > f64::from(f32::MAX),
                "{f}"
            );
        }
        if lo > -128 {
            assert!((f64::from(f.min()) * 2f64.powi(lo - 1)) < f64::from(f32::MIN_POSITIVE));
        }
    }
}

/// Scaled packed weights: decode equals `decode(code) * 2^shift` (independent f64
/// computation), and the FC kernel on them equals the dense kernel on those values bit
/// for bit — batch 1 and 3, both layouts, every decoder mode (incl. the signed 8-bit
/// table path), a row with the largest and one with the smallest valid shift, a row of
/// zeros, odd and multiple-of-8 `k`, one thread and the pool.
#[test]
fn scaled_packed_fc_equals_dense_bit_for_bit() {
    for (n, k) in [(37, 200), (301, 517), (9, 64), (5, 3)] {
        for f in [
            "s1e4m3b7",
            "u0e4m4b9",
            "s1e5m10b15",
            "s1e3m2b3",
            "s1e6m12b31",
            "s1e2m0b1",
            "s1e7m8b63",
        ] {
            let f: Format = f.parse().unwrap();
            for trans_b in [true, false] {
                let (rows, cols) = if trans_b { (n, k) } else { (k, n) };
                let p = packed_with_zero_row(f, rows, cols, 2.min(rows - 1));
                let shifts = row_shifts(f, rows, 5);
                let mut dense = vec![f32::NAN; p.len()];
                decode_scaled_into(&p, &shifts, &mut dense).unwrap();
                assert_eq!(bits(&dense), bits(&scaled_reference(&p, &shifts)), "{f}");
                // The shifts matter (the test could fail).
                if shifts.iter().any(|&s| s != 0) {
                    assert_ne!(bits(&dense), bits(&p.to_vec()), "{f}");
                }
                for m in [1, 3] {
                    let a = data(m * k, 4);
                    let mut c1 = vec![0.0; m * n];
                    let mut c2 = vec![0.0; m * n];
                    let w = FcWeights::Scaled(&p, &shifts);
                    fc(m, n, k, &a, w, trans_b, 1.0, 0.0, &mut c1).unwrap();
                    let d = FcWeights::Dense(&dense);
                    fc(m, n, k, &a, d, trans_b, 1.0, 0.0, &mut c2).unwrap();
                    assert_eq!(bits(&c1), bits(&c2), "{f} n={n} k={k} m={m} {trans_b}");
                    let one = rayon::ThreadPoolBuilder::new()
                        .num_threads(1)
                        .build()
                        .unwrap();
                    let mut c3 = vec![0.0; m * n];
                    one.install(|| fc(m, n, k, &a, w, trans_b, 1.0, 0.0, &mut c3).unwrap());
                    let mut c4 = vec![0.0; m * n];
                    one.install(|| fc(m, n, k, &a, d, trans_b, 1.0, 0.0, &mut c4).unwrap());
                    assert_eq!(bits(&c3), bits(&c4), "{f} one thread");
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn scaled_fc_equals_dense_random(
        width in 2u32..=16, signed: bool, es in 0u32..8, bs in 0i32..5,
        m in 1usize..4, n in 1usize..24, k in 1usize..70, trans_b: bool,
        beta_sel in 0usize..3, alpha in -2.0f32..2.0, seed: u32,
    ) {
        let f = format(width, signed, es, bs);
        let beta = [0.0f32, 1.0, -0.5][beta_sel];
        let rows = if trans_b { n } else { k };
        let p = packed(f, n * k, 7);
        let shifts = row_shifts(f, rows, seed);
        let mut dense = vec![0.0; p.len()];
        decode_scaled_into(&p, &shifts, &mut dense).unwrap();
        prop_assert_eq!(bits(&dense), bits(&scaled_reference(&p, &shifts)));
        let a = data(m * k, 1);
        let c0 = data(m * n, 2);
        let mut c_packed = c0.clone();
        let mut c_dense = c0.clone();
        fc(m, n, k, &a, FcWeights::Scaled(&p, &shifts), trans_b, alpha, beta, &mut c_packed).unwrap();
        fc(m, n, k, &a, FcWeights::Dense(&dense), trans_b, alpha, beta, &mut c_dense).unwrap();
        prop_assert_eq!(bits(&c_packed), bits(&c_dense));
    }
}

#[test]
fn bad_shifts_are_errors() {
    let f: Format = "s1e4m3b7".parse().unwrap();
    let p = PackedTensor::encode_from(f, &[1.0; 6]).unwrap();
    let mut c = vec![0.0; 2];
    let a = [1.0f32; 3];
    // Wrong count (2 rows of 3 with trans_b need 2 shifts).
    for shifts in [&[0i8][..], &[0, 0, 0][..], &[][..]] {
        let e = fc(
            1,
            2,
            3,
            &a,
            FcWeights::Scaled(&p, shifts),
            true,
            1.0,
            0.0,
            &mut c,
        );
        assert!(matches!(e, Err(KernelError::BadGeometry { .. })), "{e:?}");
    }
    // Out of range for the format: s1e4m3b7 allows -120 ..= 119.
    let r = shift_range(f);
    assert_eq!((*r.start(), *r.end()), (-120, 119));
    for bad in [120i8, -121, i8::MAX, i8::MIN] {
        let e = fc(
            1,
            2,
            3,
            &a,
            FcWeights::Scaled(&p, &[0, bad]),
            true,
            1.0,
            0.0,
            &mut c,
        )
        .unwrap_err();
        assert!(e.to_string().contains("outside"), "{e}");
        let mut out = vec![0.0; 6];
        assert!(decode_scaled_into(&p, &[bad, 0], &mut out).is_err());
    }
    // Rows not dividing the element count.
    let mut out = vec![0.0; 6];
    assert!(decode_scaled_into(&p, &[0, 0, 0, 0], &mut out).is_err());
    assert!(decode_scaled_into(&p, &[], &mut out).is_err());
    assert!(decode_scaled_into(&p, &[119, -120], &mut out).is_ok());
}

/// `Src::v64` gives every source's values in the one documented block order (vector
/// `q`, lane `4j + r` = element `idx + 16j + 4q + r`): dense weights, the
/// byte-table decoder of signed 8-bit codes (every code, both signs) and the generic
/// decoder. Sums are bit-identical across sources only because they agree on it.
#[test]
fn v64_block_order() {
    #[cfg(target_arch = "x86_64")]
    if level() == PackedLevel::Avx512 {
        let check = |name: &str,
                     s: &dyn Fn(usize) -> [std::arch::x86_64::__m512; 4],
                     want: &dyn Fn(usize) -> f32| {
            for blk in [0usize, 64, 192] {
                let v = s(blk);
                for (q, vq) in v.iter().enumerate() {
                    let mut lanes = [0f32; 16];
                    // SAFETY: AVX-512F detected; 16 floats.
                    unsafe { std::arch::x86_64::_mm512_storeu_ps(lanes.as_mut_ptr(), *vq) };
                    for (lane, &got) in lanes.iter().enumerate() {
                        let (j, r) = (lane / 4, lane % 4);
                        let i = blk + 16 * j + 4 * q + r;
                        assert_eq!(
                            got.to_bits(),
                            want(i).to_bits(),
                            "{name} block {blk} q {q} lane {lane}"
                        );
                    }
                }
            }
        };
        let dense: Vec<f32> = (0..256).map(|i| i as f32 - 100.5).collect();
        let ds = DenseSrc(&dense);
        // SAFETY (all three): AVX-512 F/BW/VL/VBMI detected; blocks of 64 inside 256.
        check("dense", &|i| unsafe { ds.v64(i, 0) }, &|i| dense[i]);
        let f: Format = "s1e4m3b7".parse().unwrap();
        let codes: Vec<u8> = (0..=255u8).collect();
        let p = PackedTensor::from_parts(f, 256, codes.clone()).unwrap();
        let lut = PackedSrc::<MODE_W8>::new(&p, &[]);
        assert!(lut.lut.is_some());
        check("8-bit tables", &|i| unsafe { lut.v64(i, 0) }, &|i| {
            sieve_float::decode(f, u32::from(codes[i]))
        });
        let g: Format = "s1e3m1b3".parse().unwrap();
        let pg = packed(g, 256, 9);
        let gen = PackedSrc::<MODE_GEN>::new(&pg, &[]);
        let vals = pg.to_vec();
        check("5-bit generic", &|i| unsafe { gen.v64(i, 0) }, &|i| vals[i]);
    }
}
