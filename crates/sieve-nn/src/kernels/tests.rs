//! Fast kernels against the reference ones, on awkward shapes.

use proptest::prelude::*;

use super::*;

fn data(len: usize, seed: u32) -> Vec<f32> {
    (0..len)
        .map(|i| {
            (((i as u32).wrapping_mul(2654435761) ^ seed.wrapping_mul(40503)) % 2001) as f32
                / 1000.0
                - 1.0
        })
        .collect()
}

fn assert_close(fast: &[f32], want: &[f32], terms: usize) {
    assert_eq!(fast.len(), want.len());
    let tol = 2e-6 * (terms as f32 + 1.0);
    for (i, (x, y)) in fast.iter().zip(want).enumerate() {
        let ok = (x - y).abs() <= tol * (1.0 + y.abs()) || (x.is_nan() && y.is_nan()) || x == y;
        assert!(ok, "element {i}: fast {x} vs reference {y}");
    }
}

/// Runs fast and reference conv2d on the same data and compares (including errors).
fn check_conv(g: Conv2dGeom, n: usize, h: usize, w: usize, with_bias: bool, act: Activation) {
    let input = data(n * g.c_in * h * w, 1);
    let weights = data(g.weight_len().unwrap(), 2);
    let bias = data(g.c_out, 3);
    let bias = with_bias.then_some(&bias[..]);
    let out_len = match g.out_hw(h, w) {
        Ok((oh, ow)) => n * g.c_out * oh * ow,
        Err(e) => {
            let mut out = vec![0.0; 1];
            let fast = conv2d(
                &g,
                &input,
                n,
                h,
                w,
                &weights,
                bias,
                act,
                &mut out,
                &mut Vec::new(),
                None,
            );
            assert_eq!(fast.unwrap_err(), e);
            return;
        }
    };
    let mut want = vec![0.0; out_len];
    reference::conv2d(&g, &input, n, h, w, &weights, bias, act, &mut want).unwrap();
    let mut fast = vec![f32::NAN; out_len];
    let mut scratch = vec![f32::NAN; 3];
    conv2d(
        &g,
        &input,
        n,
        h,
        w,
        &weights,
        bias,
        act,
        &mut fast,
        &mut scratch,
        None,
    )
    .unwrap();
    assert_close(&fast, &want, g.c_in_per_group() * g.kh * g.kw);
    // Every convolution path: the gemm crate, the packed GEMM (per-call packing, and a
    // kept pack used twice), and the direct kernel wherever it applies.
    let pack = conv::ConvPack::new();
    // Winograd (min tiles 1) where the layer is dense 3x3 stride 1, else the others.
    let wpack = conv::ConvPack::new();
    // Pixel-major 1x1 (any map size) where the layer is a dense 1x1 stride-1 one.
    let ppack = conv::ConvPack::new();
    for (direct_max, packed_gemm, wmin, pmax, pack) in [
        (0, false, usize::MAX, 0, None),
        (0, true, usize::MAX, 0, None),
        (0, true, usize::MAX, 0, Some(&pack)),
        (0, true, usize::MAX, 0, Some(&pack)),
        (usize::MAX, false, usize::MAX, 0, None),
        (0, true, 1, 0, None),
        (0, true, 1, 0, Some(&wpack)),
        (0, true, 1, 0, Some(&wpack)),
        (0, true, usize::MAX, usize::MAX, None),
        (0, true, usize::MAX, usize::MAX, Some(&ppack)),
        (0, true, usize::MAX, usize::MAX, Some(&ppack)),
    ] {
        let paths = conv::Paths {
            direct_max,
            packed_gemm,
            winograd_min_tiles: wmin,
            pixmajor_max_hw: pmax,
            stride2: false,
            pack,
        };
        let mut run = |weights: conv::ConvWeights<'_>, paths: conv::Paths<'_>| {
            conv_with_paths(
                &g,
                &input,
                (n, h, w),
                weights,
                bias,
                act,
                &mut scratch,
                paths,
            )
        };
        let fast = run(conv::ConvWeights::F32(&weights), paths);
        assert_close(&fast, &want, g.c_in_per_group() * g.kh * g.kw);
        // Kept packed weights give exactly the outputs of weights packed per call (a
        // compressed variant and its decoded reference take these two roads).
        if pack.is_some() {
            let per_call = run(
                conv::ConvWeights::F32(&weights),
                conv::Paths {
                    pack: None,
                    ..paths
                },
            );
            assert!(
                bits(&per_call) == bits(&fast),
                "{g:?} n={n} {h}x{w}: weights packed per call differ from kept ones"
            );
        }
        // Bit-packed weights (decoded inside the kernel, per panel where it packs) give
        // exactly the outputs of their decoded values on the same path.
        // With and without per-output-channel power-of-two scales.
        let f = sieve_float::Format::new(true, 4, 3, 7).unwrap();
        let p = sieve_float::PackedTensor::encode_from(f, &weights).unwrap();
        let shifts: Vec<i8> = (0..g.c_out).map(|c| (c % 3) as i8 - 1).collect();
        for shifts in [&[][..], &shifts[..]] {
            if pack.is_some() || (g.c_out == 0 && !shifts.is_empty()) {
                continue;
            }
            let dec = packed::RangeDecoder::new(&p, shifts).unwrap();
            let mut decoded = vec![0.0; p.len()];
            if shifts.is_empty() {
                packed::decode_into(&p, &mut decoded).unwrap();
            } else {
                packed::decode_scaled_into(&p, shifts, &mut decoded).unwrap();
            }
            let from_decoded = run(conv::ConvWeights::F32(&decoded), paths);
            let from_packed = run(conv::ConvWeights::Packed(&dec), paths);
            assert!(
                bits(&from_packed) == bits(&from_decoded),
                "{g:?} n={n} {h}x{w} shifts {}: packed weights differ from their decoded \
                 values",
                shifts.len()
            );
        }
    }
}

/// `conv::conv2d_with` on the given paths into a NaN-filled output of the right size
/// (`nhw` = batch, input height, width), unwrapped.
#[allow(clippy::too_many_arguments)]
fn conv_with_paths(
    g: &Conv2dGeom,
    input: &[f32],
    (n, h, w): (usize, usize, usize),
    weights: conv::ConvWeights<'_>,
    bias: Option<&[f32]>,
    act: Activation,
    scratch: &mut Vec<f32>,
    paths: conv::Paths<'_>,
) -> Vec<f32> {
    let (oh, ow) = g.out_hw(h, w).unwrap();
    let mut out = vec![f32::NAN; n * g.c_out * oh * ow];
    conv::conv2d_with(
        g, input, n, h, w, weights, bias, act, &mut out, scratch, paths,
    )
    .unwrap();
    out
}

fn geom(
    c_in: usize,
    c_out: usize,
    k: usize,
    stride: usize,
    pad: usize,
    groups: usize,
) -> Conv2dGeom {
    Conv2dGeom {
        c_in,
        c_out,
        kh: k,
        kw: k,
        stride_h: stride,
        stride_w: stride,
        dil_h: 1,
        dil_w: 1,
        pad_top: pad,
        pad_left: pad,
        pad_bottom: pad,
        pad_right: pad,
        groups,
    }
}

fn act_strategy() -> impl Strategy<Value = Activation> {
    prop_oneof![
        Just(Activation::None),
        Just(Activation::Relu),
        Just(Activation::Clip {
            min: -0.25,
            max: 0.5
        })
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn conv2d_matches_reference(
        n in 0usize..3, groups in 1usize..4, depthwise: bool, cig in 1usize..4, cog in 1usize..4,
        kh in 1usize..5, kw in 1usize..5, sh in 1usize..4, sw in 1usize..4, dh in 1usize..3, dw in 1usize..3,
        pt in 0usize..3, pl in 0usize..3, pb in 0usize..3, pr in 0usize..3,
        h in 1usize..13, w in 1usize..20, with_bias: bool, act in act_strategy(),
    ) {
        let cig = if depthwise { 1 } else { cig };
        let g = Conv2dGeom {
            c_in: cig * groups, c_out: cog * groups, kh, kw, stride_h: sh, stride_w: sw,
            dil_h: dh, dil_w: dw, pad_top: pt, pad_left: pl, pad_bottom: pb, pad_right: pr, groups,
        };
        check_conv(g, n, h, w, with_bias, act);
    }

    #[test]
    fn pointwise_matches_reference(
        n in 0usize..3, groups in 1usize..3, cig in 1usize..9, cog in 1usize..9,
        h in 1usize..9, w in 1usize..9, act in act_strategy(),
    ) {
        check_conv(geom(cig * groups, cog * groups, 1, 1, 0, groups), n, h, w, true, act);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Shapes the pixel-major 1x1 kernel takes (c_out >= 16): partial channel panels
    /// (16..110 channels: one, two or three vectors in the last panel), partial pixel
    /// tiles, batches, every activation.
    #[test]
    fn pixel_major_pointwise_matches_reference(
        n in 0usize..3, c_in in 1usize..70, c_out in 16usize..110,
        h in 1usize..12, w in 1usize..12, with_bias: bool, act in act_strategy(),
    ) {
        check_conv(geom(c_in, c_out, 1, 1, 0, 1), n, h, w, with_bias, act);
    }
}

/// MobileNet v2's 1x1 layers on 7x7 and 14x14 maps (pixel-major, on all workers; panels
/// split by pixels when there are few of them), and a batch.
#[test]
fn pixel_major_model_shapes() {
    let relu6 = Activation::Clip { min: 0.0, max: 6.0 };
    check_conv(geom(320, 1280, 1, 1, 0, 1), 1, 7, 7, true, relu6);
    check_conv(geom(960, 160, 1, 1, 0, 1), 1, 7, 7, true, Activation::None);
    check_conv(geom(96, 576, 1, 1, 0, 1), 2, 14, 14, true, relu6);
}

#[test]
fn conv2d_large_shapes_take_parallel_paths() {
    // Batch 1, tiled im2col split over threads.
    check_conv(geom(16, 24, 3, 1, 1, 1), 1, 37, 41, true, Activation::Relu);
    // Batch 1, many row tiles handed out by the atomic counter; strided + dilated.
    check_conv(geom(8, 8, 3, 1, 1, 1), 1, 100, 100, true, Activation::Relu);
    let mut g = geom(6, 10, 5, 3, 2, 2);
    g.dil_w = 2;
    g.pad_left = 3;
    check_conv(g, 1, 150, 151, true, Activation::None);
    // A single output row (FC layer as a convolution): the GEMM itself is parallel.
    check_conv(geom(256, 256, 5, 1, 0, 1), 1, 5, 5, true, Activation::Relu);
    // Batch 1, few items: the GEMM itself is parallel.
    check_conv(geom(64, 128, 3, 1, 1, 1), 1, 9, 9, true, Activation::None);
    // Batch > 1, parallel over images; strided, asymmetric.
    let mut g = geom(8, 16, 5, 2, 2, 2);
    g.pad_right = 0;
    check_conv(g, 5, 33, 31, false, Activation::Clip { min: 0.0, max: 6.0 });
    // Pointwise, direct GEMM on the input planes: whole images per worker, and row
    // tiles shared out at batch 1.
    check_conv(geom(32, 64, 1, 1, 0, 1), 5, 20, 21, true, Activation::Relu);
    check_conv(geom(4, 64, 1, 1, 0, 1), 1, 130, 130, true, Activation::None);
    // Pointwise, direct GEMM on the input planes.
    check_conv(geom(32, 64, 1, 1, 0, 1), 1, 40, 40, true, Activation::Relu);
    // Pointwise on a 1x1 map (a classifier head): matrix-vector product at batch 1
    // (also grouped), GEMM at batch 3; large enough for the parallel matrix-vector path.
    check_conv(
        geom(1280, 1001, 1, 1, 0, 1),
        1,
        1,
        1,
        true,
        Activation::None,
    );
    check_conv(geom(64, 36, 1, 1, 0, 4), 1, 1, 1, true, Activation::Relu);
    check_conv(geom(64, 36, 1, 1, 0, 1), 3, 1, 1, false, Activation::Relu);
    // Packed GEMM edge shapes: 8 < c_out < 16 (one partial row panel), an output width
    // with a 16-column tail (56 = 32 + 32), many k blocks (k = 2304).
    check_conv(geom(256, 12, 3, 1, 1, 1), 1, 7, 8, true, Activation::Relu);
    check_conv(geom(16, 40, 3, 1, 1, 1), 1, 56, 56, true, Activation::None);
    check_conv(geom(32, 64, 1, 1, 0, 1), 3, 20, 21, false, Activation::None);
    // Depthwise 3x3 stride 1 and 2 (MobileNet), parallel over planes.
    check_conv(
        geom(64, 64, 3, 1, 1, 64),
        1,
        40,
        40,
        true,
        Activation::Clip { min: 0.0, max: 6.0 },
    );
    check_conv(geom(64, 64, 3, 2, 1, 64), 2, 41, 40, true, Activation::Relu);
    // Channel multiplier 2 (groups == c_in, c_out == 2 * c_in).
    check_conv(geom(32, 64, 3, 1, 1, 32), 1, 40, 40, true, Activation::None);
}

#[test]
fn conv2d_rejects_bad_lengths() {
    let g = geom(2, 3, 3, 1, 1, 1);
    let mut out = vec![0.0; 3 * 16];
    let e = conv2d(
        &g,
        &[0.0; 31],
        1,
        4,
        4,
        &[0.0; 54],
        None,
        Activation::None,
        &mut out,
        &mut Vec::new(),
        None,
    );
    assert_eq!(
        e.unwrap_err(),
        KernelError::BadLength {
            op: "conv2d",
            operand: "input",
            expected: 32,
            actual: 31
        }
    );
    let e = conv2d(
        &g,
        &[0.0; 32],
        1,
        4,
        4,
        &[0.0; 54],
        Some(&[0.0; 2]),
        Activation::None,
        &mut out,
        &mut Vec::new(),
        None,
    );
    assert_eq!(
        e.unwrap_err(),
        KernelError::BadLength {
            op: "conv2d",
            operand: "bias",
            expected: 3,
            actual: 2
        }
    );
    let bad = Conv2dGeom { groups: 2, ..g };
    assert!(matches!(
        bad.validate(),
        Err(KernelError::BadGeometry { .. })
    ));
    let big = geom(1, 1, 7, 1, 0, 1);
    assert!(matches!(
        big.out_hw(5, 9),
        Err(KernelError::WindowTooLarge {
            axis: "height",
            extent: 7,
            ..
        })
    ));
}

#[test]
fn out_hw_follows_onnx() {
    // AlexNet conv1: 224 -> 55 with 11x11 stride 4 pad 2.
    assert_eq!(geom(3, 96, 11, 4, 2, 1).out_hw(224, 224).unwrap(), (55, 55));
    let p = Pool2dGeom {
        kh: 3,
        kw: 3,
        stride_h: 2,
        stride_w: 2,
        dil_h: 1,
        dil_w: 1,
        pad_top: 0,
        pad_left: 0,
        pad_bottom: 0,
        pad_right: 0,
        ceil_mode: true,
        count_include_pad: false,
    };
    // GoogLeNet / SqueezeNet ceil-mode pools: 112 -> 56, 55 -> 27, 56 -> 28 (floor would give 27).
    assert_eq!(p.out_hw(112, 55).unwrap(), (56, 27));
    assert_eq!(p.out_hw(56, 56).unwrap(), (28, 28));
    assert_eq!(
        Pool2dGeom {
            ceil_mode: false,
            ..p
        }
        .out_hw(56, 56)
        .unwrap(),
        (27, 27)
    );
    // The last window must start inside input or left padding: 5 with k2 s2 p1 -> ceil gives 4,
    // but window 3 starts at 6-1 = 5 >= 5, so 3.
    let q = Pool2dGeom {
        kh: 2,
        kw: 2,
        pad_top: 1,
        pad_left: 1,
        ..p
    };
    assert_eq!(q.out_hw(5, 4).unwrap(), (3, 3));
}

fn check_pool(g: Pool2dGeom, n: usize, c: usize, h: usize, w: usize, seed: u32) {
    let mut input = data(n * c * h * w, seed);
    if input.len() > 7 && seed.is_multiple_of(3) {
        input[7] = f32::NAN;
    }
    let (oh, ow) = match g.out_hw(h, w) {
        Ok(v) => v,
        Err(e) => {
            let mut out = vec![0.0; 1];
            assert_eq!(max_pool2d(&g, &input, n, c, h, w, &mut out).unwrap_err(), e);
            assert_eq!(avg_pool2d(&g, &input, n, c, h, w, &mut out).unwrap_err(), e);
            return;
        }
    };
    let len = n * c * oh * ow;
    for is_max in [true, false] {
        let mut fast = vec![f32::NAN; len];
        let mut want = vec![0.0; len];
        if is_max {
            max_pool2d(&g, &input, n, c, h, w, &mut fast).unwrap();
            reference::max_pool2d(&g, &input, n, c, h, w, &mut want).unwrap();
        } else {
            avg_pool2d(&g, &input, n, c, h, w, &mut fast).unwrap();
            reference::avg_pool2d(&g, &input, n, c, h, w, &mut want).unwrap();
        }
        assert_close(&fast, &want, g.kh * g.kw);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn pools_match_reference(
        n in 0usize..3, c in 1usize..4, kh in 1usize..4, kw in 1usize..5, sh in 1usize..4, sw in 1usize..4,
        dh in 1usize..3, dw in 1usize..3, pt in 0usize..3, pl in 0usize..3, pb in 0usize..3, pr in 0usize..3,
        h in 1usize..12, w in 1usize..14, ceil_mode: bool, count_include_pad: bool, seed in 0u32..6,
    ) {
        let g = Pool2dGeom {
            kh, kw, stride_h: sh, stride_w: sw, dil_h: dh, dil_w: dw,
            pad_top: pt, pad_left: pl, pad_bottom: pb, pad_right: pr, ceil_mode, count_include_pad,
        };
        check_pool(g, n, c, h, w, seed);
    }

    #[test]
    fn global_pools_and_lrn_match_reference(
        n in 0usize..3, c in 1usize..9, h in 1usize..7, w in 1usize..9, size in 1usize..7,
        alpha in 0.0f32..0.01, beta_sel in 0usize..4, bias in 0.5f32..3.0,
    ) {
        let input = data(n * c * h * w, 11);
        let mut fast = vec![f32::NAN; n * c];
        let mut want = vec![0.0; n * c];
        global_avg_pool(&input, n, c, h * w, &mut fast).unwrap();
        reference::global_avg_pool(&input, n, c, h * w, &mut want).unwrap();
        assert_close(&fast, &want, h * w);
        global_max_pool(&input, n, c, h * w, &mut fast).unwrap();
        reference::global_max_pool(&input, n, c, h * w, &mut want).unwrap();
        assert_close(&fast, &want, 1);
        let beta = [0.75f32, 0.5, 1.0, 0.6][beta_sel];
        let mut fast = vec![f32::NAN; input.len()];
        let mut want = vec![0.0; input.len()];
        lrn(&input, n, c, h, w, size, alpha * 100.0, beta, bias, &mut fast).unwrap();
        reference::lrn(&input, n, c, h, w, size, alpha * 100.0, beta, bias, &mut want).unwrap();
        assert_close(&fast, &want, size);
    }
}

#[test]
fn pools_and_lrn_large_shapes_take_parallel_paths() {
    let p = Pool2dGeom {
        kh: 3,
        kw: 3,
        stride_h: 2,
        stride_w: 2,
        dil_h: 1,
        dil_w: 1,
        pad_top: 1,
        pad_left: 1,
        pad_bottom: 1,
        pad_right: 1,
        ceil_mode: false,
        count_include_pad: false,
    };
    check_pool(p, 2, 16, 56, 57, 1);
    check_pool(
        Pool2dGeom {
            ceil_mode: true,
            count_include_pad: true,
            pad_bottom: 0,
            ..p
        },
        1,
        32,
        55,
        55,
        3,
    );
    let (n, c, h, w) = (2, 24, 27, 27);
    let input = data(n * c * h * w, 4);
    let mut fast = vec![f32::NAN; input.len()];
    let mut want = vec![0.0; input.len()];
    lrn(&input, n, c, h, w, 5, 1e-4, 0.75, 1.0, &mut fast).unwrap();
    reference::lrn(&input, n, c, h, w, 5, 1e-4, 0.75, 1.0, &mut want).unwrap();
    assert_close(&fast, &want, 5);
    let mut g1 = vec![0.0; n * c * 3];
    let mut g2 = g1.clone();
    let big = data(n * c * 3 * 2000, 5);
    global_avg_pool(&big, n, c * 3, 2000, &mut g1).unwrap();
    reference::global_avg_pool(&big, n, c * 3, 2000, &mut g2).unwrap();
    assert_close(&g1, &g2, 2000);
}

#[test]
fn pools_reject_bad_sizes() {
    let p = Pool2dGeom {
        kh: 2,
        kw: 2,
        stride_h: 2,
        stride_w: 2,
        dil_h: 1,
        dil_w: 1,
        pad_top: 0,
        pad_left: 0,
        pad_bottom: 0,
        pad_right: 0,
        ceil_mode: false,
        count_include_pad: false,
    };
    let mut out = vec![0.0; 4];
    let e = max_pool2d(&p, &[0.0; 15], 1, 1, 4, 4, &mut out).unwrap_err();
    assert_eq!(
        e,
        KernelError::BadLength {
            op: "max_pool2d",
            operand: "input",
            expected: 16,
            actual: 15
        }
    );
    assert!(global_avg_pool(&[], 1, 1, 0, &mut out[..1]).is_err());
    assert!(lrn(&[0.0; 4], 1, 4, 1, 1, 0, 1.0, 0.75, 1.0, &mut out).is_err());
    let bad = Pool2dGeom { stride_h: 0, ..p };
    assert!(matches!(
        bad.out_hw(4, 4),
        Err(KernelError::BadGeometry { .. })
    ));
}

/// Every small stencil geometry (stride, pads, kernel, width) on a single channel, so
/// that edge layouts of the phase-split buffer are covered deterministically rather
/// than by the random sample above (CI once hit `sw = 2`, `pl = 1`, odd `w` there).
#[test]
fn conv2d_small_geometries_exhaustive() {
    for sw in 1..4 {
        for sh in 1..4 {
            for kw in 1..4 {
                for pl in 0..3 {
                    for pr in 0..3 {
                        for w in 1..8 {
                            let g = Conv2dGeom {
                                c_in: 1,
                                c_out: 1,
                                kh: 2,
                                kw,
                                stride_h: sh,
                                stride_w: sw,
                                dil_h: 1,
                                dil_w: 1,
                                pad_top: 0,
                                pad_left: pl,
                                pad_bottom: 1,
                                pad_right: pr,
                                groups: 1,
                            };
                            check_conv(g, 1, 2, w, false, Activation::None);
                        }
                    }
                }
            }
        }
    }
}

/// The direct kernel's row-wise mode (output widths that are a multiple of 16 read from
/// the pitched stencil layout, stored straight into the output planes): stride 1 and 2,
/// dilation, asymmetric pads, groups, output channels that do not fill the register
/// block, register chunks that cross output rows (16, 32, 48 wide) and chunks that do
/// not (64, 80 wide), next to flat-layout widths (24, 28); and its narrow-map layout
/// (4 and 8 wide, masked taps): odd row counts, 1xk and kx1 kernels, dilation, asymmetric
/// pads, groups. On 1-3 threads (so on one to six row tiles per channel block, cut at
/// different rows). `conv::tests` checks that these geometries do take those modes.
#[test]
fn direct_rows_geometries_match_reference() {
    // (c_in, c_out, k, stride, pad, groups, h, w)
    let cases = [
        (32, 32, 5, 1, 2, 1, 16, 16),
        (3, 32, 5, 1, 2, 1, 32, 32),
        (32, 64, 5, 1, 2, 1, 8, 8),
        (16, 7, 3, 1, 1, 1, 48, 48),
        (8, 13, 3, 1, 1, 1, 20, 64),
        (4, 5, 3, 1, 1, 1, 9, 80),
        (12, 12, 3, 2, 1, 2, 33, 32),
        (6, 6, 3, 1, 1, 1, 24, 24),
        (6, 6, 5, 1, 0, 1, 32, 32),
        (10, 11, 7, 1, 3, 1, 17, 16),
        // Narrow maps.
        (16, 13, 3, 1, 1, 1, 8, 8),
        (6, 6, 3, 1, 1, 1, 9, 8),
        (8, 7, 5, 1, 2, 1, 4, 4),
        (8, 64, 3, 1, 1, 1, 4, 4),
        (12, 12, 3, 1, 1, 2, 7, 8),
        (48, 64, 3, 1, 1, 1, 8, 8),
    ];
    for threads in 1..=3 {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            for &(ci, co, k, s, p, gr, h, w) in &cases {
                check_conv(geom(ci, co, k, s, p, gr), 1, h, w, true, Activation::Relu);
                check_conv(geom(ci, co, k, s, p, gr), 2, h, w, false, Activation::None);
            }
            // Dilated with asymmetric pads: 16 wide out of a 20-wide input.
            let mut g = geom(8, 9, 3, 1, 1, 1);
            g.dil_w = 2;
            g.dil_h = 2;
            g.pad_left = 0;
            g.pad_right = 0;
            g.pad_bottom = 3;
            check_conv(
                g,
                1,
                18,
                20,
                true,
                Activation::Clip {
                    min: -0.5,
                    max: 0.5,
                },
            );
            // Narrow: dilated (pad 2 keeps the width), asymmetric horizontal pads, 1x3
            // and 3x1 windows, a 2-row output.
            let mut g = geom(8, 9, 3, 1, 2, 1);
            g.dil_w = 2;
            g.dil_h = 2;
            check_conv(g, 1, 8, 8, true, Activation::Relu);
            let mut g = geom(5, 6, 3, 1, 1, 1);
            g.pad_left = 2;
            g.pad_right = 0;
            check_conv(g, 2, 6, 8, true, Activation::None);
            let mut g = geom(5, 6, 3, 1, 1, 1);
            g.pad_left = 0;
            g.pad_right = 2;
            check_conv(g, 1, 6, 4, false, Activation::Relu);
            let mut g = geom(4, 8, 1, 1, 0, 1);
            (g.kw, g.pad_left, g.pad_right) = (3, 1, 1);
            check_conv(g, 1, 5, 8, true, Activation::None);
            let mut g = geom(4, 8, 1, 1, 0, 1);
            (g.kh, g.pad_top, g.pad_bottom) = (3, 1, 1);
            check_conv(g, 1, 5, 8, true, Activation::None);
            let mut g = geom(4, 8, 3, 1, 1, 1);
            g.pad_top = 0;
            g.pad_bottom = 0;
            check_conv(g, 1, 4, 8, true, Activation::None);
        });
    }
}

/// Windows that cover the whole plane (no pads) take the global-pool shortcut: same
/// results as the reference, NaN propagation included (seed 0 and 3 plant a NaN).
#[test]
fn whole_plane_pools_match_reference() {
    for h in 1..9 {
        for w in 1..9 {
            for stride in 1..3 {
                for ceil_mode in [false, true] {
                    for seed in 0..4 {
                        let g = Pool2dGeom {
                            kh: h,
                            kw: w,
                            stride_h: stride,
                            stride_w: stride,
                            dil_h: 1,
                            dil_w: 1,
                            pad_top: 0,
                            pad_left: 0,
                            pad_bottom: 0,
                            pad_right: 0,
                            ceil_mode,
                            count_include_pad: seed % 2 == 0,
                        };
                        check_pool(g, 2, 3, h, w, seed);
                    }
                }
            }
        }
    }
}

/// The in-place depthwise kernel (2x2, 3x3 and 5x5, stride 1 and 2): every pad combination up
/// to the kernel size, planes narrower than a vector, exactly one and several vectors
/// wide with and without a tail, a channel multiplier of 2, all three activations.
#[test]
fn depthwise_direct_geometries_match_reference() {
    let acts = [
        Activation::None,
        Activation::Relu,
        Activation::Clip {
            min: -0.25,
            max: 0.5,
        },
    ];
    let mut case = 0usize;
    for k in [2usize, 3, 5] {
        for s in [1usize, 2] {
            for (pt, pl, pb, pr) in [
                (0, 0, 0, 0),
                (1, 1, 1, 1),
                (0, 0, 1, 1),
                (2, 2, 2, 2),
                (k, 1, 0, k),
            ] {
                for (h, w) in [(5, 5), (7, 7), (6, 16), (9, 17), (8, 33), (5, 40), (3, 64)] {
                    for mult in [1usize, 2] {
                        let mut g = geom(3, 3 * mult, k, s, 0, 3);
                        (g.pad_top, g.pad_left, g.pad_bottom, g.pad_right) = (pt, pl, pb, pr);
                        if g.out_hw(h, w).is_err() {
                            continue;
                        }
                        check_conv(g, 2, h, w, case.is_multiple_of(2), acts[case % 3]);
                        case += 1;
                    }
                }
            }
        }
    }
    assert!(case > 200, "{case} cases");
}

/// Depthwise layers big enough to run in parallel take the row-band split (bands of all
/// planes, from both ends of the item list): on 2 and 3 threads the outputs equal the
/// one-thread ones bit for bit, and the reference within tolerance — odd heights that
/// leave a short last band, stride 2, a channel multiplier, 5x5, a batch of 2.
#[test]
fn depthwise_band_split_matches_one_thread() {
    // (channels, multiplier, k, stride, pad, h, w, n)
    let cases = [
        (32, 1, 3, 1, 1, 50, 40, 1),
        (16, 1, 3, 2, 1, 101, 57, 1),
        (8, 2, 3, 1, 1, 49, 31, 1),
        (12, 1, 5, 1, 2, 50, 20, 2),
        (4, 1, 3, 1, 1, 64, 100, 1),
    ];
    for &(c, mult, k, s, p, h, w, n) in &cases {
        let g = geom(c, c * mult, k, s, p, c);
        let (oh, ow) = g.out_hw(h, w).unwrap();
        let out_len = n * c * mult * oh * ow;
        // Every case takes the band split on 2 and 3 threads.
        assert!(
            out_len * k * k >= conv::DW_PAR_MIN_MACS,
            "case too small to split"
        );
        assert!(
            oh >= 3 * depthwise::BAND_MIN_ROWS,
            "case too short for bands"
        );
        let input = data(n * c * h * w, 5);
        let weights = data(g.weight_len().unwrap(), 6);
        let bias = data(c * mult, 7);
        let act = Activation::Clip {
            min: -0.5,
            max: 1.0,
        };
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut out = vec![f32::NAN; out_len];
            pool.install(|| {
                conv2d(
                    &g,
                    &input,
                    n,
                    h,
                    w,
                    &weights,
                    Some(&bias),
                    act,
                    &mut out,
                    &mut Vec::new(),
                    None,
                )
                .unwrap()
            });
            out
        };
        let one = run(1);
        let mut want = vec![0.0; out_len];
        reference::conv2d(&g, &input, n, h, w, &weights, Some(&bias), act, &mut want).unwrap();
        assert_close(&one, &want, k * k);
        for threads in [2, 3] {
            let many = run(threads);
            let same = one
                .iter()
                .zip(&many)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(
                same,
                "{threads} threads differ from one: case {c} {k}x{k}/{s} {h}x{w}"
            );
        }
    }
}

/// Max and average pooling through the in-place kernel (2x2, 3x3, 5x5 windows, stride 1
/// and 2): pads below the window size, ceil mode, both `count_include_pad` settings,
/// planes narrower than a vector and several vectors wide with tails; seeds 0 and 3 plant
/// a NaN, which must come out as NaN.
#[test]
fn pool_direct_geometries_match_reference() {
    let mut case = 0usize;
    for k in [2usize, 3, 5] {
        for s in [1usize, 2] {
            for p in 0..k.min(3) {
                for ceil_mode in [false, true] {
                    for (h, w) in [
                        (5, 5),
                        (7, 7),
                        (6, 16),
                        (9, 17),
                        (8, 33),
                        (4, 40),
                        (111, 111),
                    ] {
                        let g = Pool2dGeom {
                            kh: k,
                            kw: k,
                            stride_h: s,
                            stride_w: s,
                            dil_h: 1,
                            dil_w: 1,
                            pad_top: p,
                            pad_left: p,
                            pad_bottom: p,
                            pad_right: p,
                            ceil_mode,
                            count_include_pad: case.is_multiple_of(2),
                        };
                        check_pool(g, 2, 2, h, w, (case % 4) as u32);
                        case += 1;
                    }
                }
            }
        }
    }
    assert!(case > 150, "{case} cases");
}

/// The Winograd F(2x2, 3x3) kernel against the reference on every pad combination up to
/// 2 (asymmetric too), odd and even sizes (partial tiles), rows longer than one and two
/// vectors of tiles, channel counts off the micro-kernel's multiples, batches, and every
/// activation — forced on (one tile suffices) and checked to be the path taken.
#[test]
fn winograd_geometries_match_reference() {
    let acts = [
        Activation::None,
        Activation::Relu,
        Activation::Clip {
            min: -0.5,
            max: 0.5,
        },
    ];
    let mut case = 0;
    for (pt, pl, pb, pr) in [
        (1, 1, 1, 1),
        (0, 0, 0, 0),
        (2, 2, 2, 2),
        (0, 1, 2, 1),
        (2, 0, 1, 2),
        (1, 2, 0, 0),
    ] {
        for (h, w) in [
            (3, 3),
            (4, 5),
            (7, 6),
            (9, 9),
            (5, 17),
            (6, 35),
            (4, 49),
            (11, 70),
        ] {
            for (c_in, c_out, n) in [(32, 16, 1), (35, 21, 2), (33, 40, 1)] {
                let g = Conv2dGeom {
                    pad_top: pt,
                    pad_left: pl,
                    pad_bottom: pb,
                    pad_right: pr,
                    ..geom(c_in, c_out, 3, 1, 0, 1)
                };
                let Ok((oh, ow)) = g.out_hw(h, w) else {
                    continue;
                };
                if !winograd::applies(&g, oh, ow, 1) {
                    // Without AVX-512 the kernel does not exist; nothing to check.
                    assert!(!direct::available());
                    return;
                }
                let act = acts[case % acts.len()];
                let with_bias = case % 2 == 0;
                case += 1;
                let input = data(n * c_in * h * w, case as u32);
                let weights = data(g.weight_len().unwrap(), 7);
                let bias = data(c_out, 9);
                let bias = with_bias.then_some(&bias[..]);
                let mut want = vec![0.0; n * c_out * oh * ow];
                reference::conv2d(&g, &input, n, h, w, &weights, bias, act, &mut want).unwrap();
                let pack = conv::ConvPack::new();
                for pack in [None, Some(&pack), Some(&pack)] {
                    let paths = conv::Paths {
                        direct_max: 0,
                        packed_gemm: true,
                        winograd_min_tiles: 1,
                        pixmajor_max_hw: 0,
                        stride2: false,
                        pack,
                    };
                    let fast = conv_with_paths(
                        &g,
                        &input,
                        (n, h, w),
                        conv::ConvWeights::F32(&weights),
                        bias,
                        act,
                        &mut Vec::new(),
                        paths,
                    );
                    assert_close(&fast, &want, c_in * 9);
                }
            }
        }
    }
    assert!(case > 80, "{case} cases");
}

/// A model-sized Winograd layer (ResNet-18's 64-channel 56x56 stage) by default, on all
/// workers, plus a batch: the block and output-channel splits.
#[test]
fn winograd_large_shapes_take_parallel_paths() {
    check_conv(geom(64, 64, 3, 1, 1, 1), 1, 56, 56, true, Activation::Relu);
    check_conv(geom(32, 48, 3, 1, 1, 1), 3, 30, 29, false, Activation::None);
    // Few tiles, many channels: output-channel blocks.
    check_conv(
        geom(128, 256, 3, 1, 1, 1),
        1,
        20,
        20,
        true,
        Activation::None,
    );
    // Few tiles (16, and 1), 256 inputs: two output-channel items of 80 on two workers.
    check_conv(geom(256, 160, 3, 1, 1, 1), 1, 8, 8, true, Activation::Relu);
    check_conv(geom(256, 160, 3, 1, 1, 1), 1, 2, 2, true, Activation::None);
}

/// The fused expand (1x1) + depthwise (3x3) kernel: equal bit for bit to the two layers
/// run separately on the packed GEMM and the in-place depthwise kernel, and close to the
/// reference; strides 1 and 2, symmetric, asymmetric (TensorFlow SAME at stride 2) and
/// wide pads, several bands per image (and one-row bands), batches, every activation.
#[cfg(target_arch = "x86_64")]
#[test]
fn fused_expand_depthwise_matches_unfused() {
    let relu6 = Activation::Clip { min: 0.0, max: 6.0 };
    let mut cases = 0;
    for (c_in, c_mid, h, w, s, pads, n, acts) in [
        (16, 96, 70, 64, 2, (0, 0, 1, 1), 1, (relu6, relu6)),
        (
            4,
            64,
            128,
            128,
            2,
            (0, 0, 1, 1),
            1,
            (Activation::Relu, Activation::None),
        ),
        (
            24,
            64,
            61,
            50,
            1,
            (1, 1, 1, 1),
            2,
            (Activation::Relu, Activation::None),
        ),
        (8, 48, 33, 47, 2, (1, 1, 1, 1), 1, (Activation::None, relu6)),
        (5, 32, 20, 21, 1, (2, 2, 2, 2), 1, (relu6, Activation::Relu)),
        // c_mid * w over a third of a band: one output row per band.
        (4, 160, 9, 400, 1, (1, 0, 1, 2), 1, (relu6, relu6)),
        (
            4,
            160,
            9,
            400,
            2,
            (0, 1, 1, 0),
            2,
            (Activation::None, Activation::None),
        ),
    ] {
        let g1 = geom(c_in, c_mid, 1, 1, 0, 1);
        let mut g2 = geom(c_mid, c_mid, 3, s, 0, c_mid);
        (g2.pad_top, g2.pad_left, g2.pad_bottom, g2.pad_right) = pads;
        if !fused::applies(&g1, &g2, h, w, 0) {
            // Without AVX-512 the kernel does not exist; nothing to check.
            assert!(!direct::available());
            return;
        }
        let (oh, ow) = g2.out_hw(h, w).unwrap();
        let input = data(n * c_in * h * w, 11);
        let (w1, b1) = (data(c_mid * c_in, 12), data(c_mid, 13));
        let (w2, b2) = (data(c_mid * 9, 14), data(c_mid, 15));
        // Unfused, on the same kernels (packed GEMM without the pixel-major or direct
        // paths, in-place depthwise).
        let paths = conv::Paths {
            direct_max: 0,
            packed_gemm: true,
            winograd_min_tiles: usize::MAX,
            pixmajor_max_hw: 0,
            stride2: false,
            pack: None,
        };
        let mid = conv_with_paths(
            &g1,
            &input,
            (n, h, w),
            conv::ConvWeights::F32(&w1),
            Some(&b1),
            acts.0,
            &mut Vec::new(),
            paths,
        );
        let unfused = conv_with_paths(
            &g2,
            &mid,
            (n, h, w),
            conv::ConvWeights::F32(&w2),
            Some(&b2),
            acts.1,
            &mut Vec::new(),
            paths,
        );
        let mut want_mid = vec![0.0; mid.len()];
        reference::conv2d(&g1, &input, n, h, w, &w1, Some(&b1), acts.0, &mut want_mid).unwrap();
        let mut want = vec![0.0; unfused.len()];
        reference::conv2d(&g2, &want_mid, n, h, w, &w2, Some(&b2), acts.1, &mut want).unwrap();
        // The project layer (1x1, c_mid -> c3, no activation as in MobileNet v2, or
        // Relu), unfused on the packed GEMM too.
        let c3 = 8 + c_mid % 21;
        let act3 = if s == 1 {
            Activation::None
        } else {
            Activation::Relu
        };
        let g3 = geom(c_mid, c3, 1, 1, 0, 1);
        let (w3, b3) = (data(c3 * c_mid, 16), data(c3, 17));
        let unfused3 = conv_with_paths(
            &g3,
            &unfused,
            (n, oh, ow),
            conv::ConvWeights::F32(&w3),
            Some(&b3),
            act3,
            &mut Vec::new(),
            paths,
        );
        let mut want3 = vec![0.0; unfused3.len()];
        reference::conv2d(&g3, &want, n, oh, ow, &w3, Some(&b3), act3, &mut want3).unwrap();
        let (pack, pack3) = (conv::ConvPack::new(), conv::ConvPack::new());
        for threads in [1, rayon::current_num_threads()] {
            for with_project in [false, true] {
                let c_out = if with_project { c3 } else { c_mid };
                let mut out = vec![f32::NAN; n * c_out * oh * ow];
                let project = with_project.then_some((
                    ConvLayer {
                        geom: &g3,
                        weights: &w3,
                        bias: Some(&b3),
                        act: act3,
                    },
                    &pack3,
                ));
                fused::expand_dw(
                    ConvLayer {
                        geom: &g1,
                        weights: &w1,
                        bias: Some(&b1),
                        act: acts.0,
                    },
                    &pack,
                    ConvLayer {
                        geom: &g2,
                        weights: &w2,
                        bias: Some(&b2),
                        act: acts.1,
                    },
                    project,
                    &input,
                    (n, h, w),
                    &mut out,
                    threads,
                )
                .unwrap();
                let (same, close) = if with_project {
                    (&unfused3, &want3)
                } else {
                    (&unfused, &want)
                };
                assert!(
                    out.iter()
                        .zip(same)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{c_in}->{c_mid} {h}x{w} s{s} {pads:?} project {with_project}: \
                     fused differs from unfused"
                );
                let tol = c_in + 9 * 8 + if with_project { 8 * c_mid } else { 0 };
                assert_close(&out, close, tol);
            }
        }
        cases += 1;
    }
    assert_eq!(cases, 7);
    // Bad lengths are errors, not panics: a short input, short project weights.
    let g1 = geom(4, 32, 1, 1, 0, 1);
    let g2 = geom(32, 32, 3, 1, 1, 32);
    let g3 = geom(32, 8, 1, 1, 0, 1);
    let (w1, w2) = (data(4 * 32, 1), data(32 * 9, 2));
    let (good_x, short_x) = (data(4 * 8 * 8, 3), data(4 * 8 * 8 - 1, 3));
    let short_w3 = data(8 * 32 - 1, 4);
    let pack3 = conv::ConvPack::new();
    for (input, project, c_out, operand) in [
        (&short_x, None, 32, "input"),
        (&good_x, Some(&short_w3), 8, "project weights"),
    ] {
        let layer = |geom, weights| ConvLayer {
            geom,
            weights,
            bias: None,
            act: Activation::None,
        };
        let mut out = vec![0.0; c_out * 8 * 8];
        let e = fused::expand_dw(
            layer(&g1, &w1),
            &conv::ConvPack::new(),
            layer(&g2, &w2),
            project.map(|w3: &Vec<f32>| (layer(&g3, w3), &pack3)),
            input,
            (1, 8, 8),
            &mut out,
            1,
        );
        assert!(
            matches!(e, Err(KernelError::BadLength { operand: o, .. }) if o == operand),
            "{e:?}"
        );
    }
}

/// The in-place stride-2 kernel (`stride2.rs`) against the reference convolution: every
/// input channel count it takes, channel counts around its 8- and 16-channel blocks,
/// maps narrower than a vector and wider than three, odd and even sizes, the MobileNets'
/// TF "SAME" pads and symmetric ones, batches of two, each activation; through the
/// public `conv2d`, which must pick the kernel for these shapes with more than one input
/// channel (checked where it exists) — and on one and two threads.
#[cfg(target_arch = "x86_64")]
#[test]
fn stride2_first_layer_kernel_matches_reference() {
    let relu6 = Activation::Clip { min: 0.0, max: 6.0 };
    let mut cases = 0;
    for (c_in, c_out, h, w, pads, n, act) in [
        (3, 32, 224, 224, (0, 0, 1, 1), 1, relu6),
        (3, 8, 128, 128, (0, 0, 1, 1), 2, relu6),
        (1, 1, 5, 7, (1, 1, 1, 1), 1, Activation::None),
        (2, 13, 17, 33, (1, 1, 1, 1), 2, Activation::Relu),
        (4, 40, 50, 49, (0, 1, 2, 0), 1, Activation::None),
        (3, 24, 9, 70, (1, 0, 0, 2), 1, relu6),
        (3, 17, 3, 3, (0, 0, 0, 0), 1, Activation::Relu),
    ] {
        let mut g = geom(c_in, c_out, 3, 2, 0, 1);
        (g.pad_top, g.pad_left, g.pad_bottom, g.pad_right) = pads;
        if !stride2::applies(&g, h, w) {
            assert!(
                !direct::available(),
                "{g:?} should take the stride-2 kernel"
            );
            return;
        }
        let (oh, ow) = g.out_hw(h, w).unwrap();
        let input = data(n * c_in * h * w, 21);
        let weights = data(c_out * c_in * 9, 22);
        let bias = data(c_out, 23);
        let mut want = vec![0.0; n * c_out * oh * ow];
        reference::conv2d(&g, &input, n, h, w, &weights, Some(&bias), act, &mut want).unwrap();
        let mut one = vec![];
        for threads in [1, 2] {
            let mut out = vec![f32::NAN; want.len()];
            stride2::conv(
                &g,
                &input,
                (n, h, w),
                &weights,
                Some(&bias),
                act,
                &mut out,
                (oh, ow),
                threads,
            );
            assert_close(&out, &want, c_in * 9);
            if threads == 1 {
                one = out;
            } else {
                assert_eq!(bits(&out), bits(&one), "two threads differ from one");
            }
        }
        // The public entry point takes the same kernel (same bits); one input channel
        // per group is the depthwise path's, which reads its plane in place too.
        if c_in == 1 {
            cases += 1;
            continue;
        }
        let mut fast = vec![f32::NAN; want.len()];
        conv2d(
            &g,
            &input,
            n,
            h,
            w,
            &weights,
            Some(&bias),
            act,
            &mut fast,
            &mut Vec::new(),
            None,
        )
        .unwrap();
        assert_eq!(
            bits(&fast),
            bits(&one),
            "{g:?}: conv2d did not take the kernel"
        );
        cases += 1;
    }
    assert_eq!(cases, 7);
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}
