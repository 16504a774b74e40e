//! Best-of-N latency of each kernel case, printed in the same format as
//! `benches/ort_ops.py` (name, microseconds) so that the two can be run back to back
//! and compared as ratios on a shared machine, where criterion's long runs drift.
//!
//! Run: `cargo bench -p sieve-nn --bench kernel_times [-- filter]`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use sieve_nn::kernels::{self, Activation, Conv2dGeom, Pool2dGeom};

fn data(len: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect()
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

/// Best time of at least 5 runs within about 2 seconds, after 3 warm-up runs.
fn best_of(mut f: impl FnMut()) -> Duration {
    for _ in 0..3 {
        f();
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut best = Duration::MAX;
    let mut runs = 0;
    while runs < 5 || (Instant::now() < deadline && runs < 200) {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed());
        runs += 1;
    }
    best
}

fn main() {
    // `cargo bench` passes `--bench`; the first other argument is a name filter.
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .unwrap_or_default();
    let report = |name: &str, d: Duration| println!("{name:40} {:10.1} us", d.as_secs_f64() * 1e6);
    let convs = [
        ("lenet_conv1_5x5_1to6_b1", geom(1, 6, 5, 1, 0, 1), 1, 28),
        ("lenet_conv1_5x5_1to6_b64", geom(1, 6, 5, 1, 0, 1), 64, 28),
        (
            "cifar_quick_conv2_5x5_32to32_16_b64",
            geom(32, 32, 5, 1, 2, 1),
            64,
            16,
        ),
        (
            "alexnet_conv1_11x11s4_3to96_224",
            geom(3, 96, 11, 4, 2, 1),
            1,
            224,
        ),
        (
            "alexnet_conv2_5x5_g2_96to256_27",
            geom(96, 256, 5, 1, 2, 2),
            1,
            27,
        ),
        ("vgg_3x3_64to64_224", geom(64, 64, 3, 1, 1, 1), 1, 224),
        ("resnet_3x3_64to64_56", geom(64, 64, 3, 1, 1, 1), 1, 56),
        ("resnet_3x3_256to256_14", geom(256, 256, 3, 1, 1, 1), 1, 14),
        ("resnet_3x3_64to64_56_b16", geom(64, 64, 3, 1, 1, 1), 16, 56),
        ("pointwise_1x1_32to64_112", geom(32, 64, 1, 1, 0, 1), 1, 112),
        ("mobilenet_dw3x3_32_112", geom(32, 32, 3, 1, 1, 32), 1, 112),
        (
            "mobilenet_dw3x3s2_64_112",
            geom(64, 64, 3, 2, 1, 64),
            1,
            112,
        ),
        (
            "mobilenetv2_dw3x3_576_14",
            geom(576, 576, 3, 1, 1, 576),
            1,
            14,
        ),
    ];
    for (name, g, n, hw) in convs {
        if !name.contains(&filter) {
            continue;
        }
        let (oh, ow) = g.out_hw(hw, hw).expect("valid geometry");
        let input = data(n * g.c_in * hw * hw);
        let weights = data(g.weight_len().expect("weights"));
        let bias = data(g.c_out);
        let mut out = vec![0.0; n * g.c_out * oh * ow];
        let mut scratch = Vec::new();
        report(
            name,
            best_of(|| {
                kernels::conv2d(
                    &g,
                    &input,
                    n,
                    hw,
                    hw,
                    &weights,
                    Some(&bias),
                    Activation::Relu,
                    &mut out,
                    &mut scratch,
                    None,
                )
                .expect("conv");
                black_box(&out);
            }),
        );
    }
    let (k, n) = (9216, 4096);
    if "fc6_1x9216x4096 fc6_64x9216x4096".contains(&filter) || filter.is_empty() {
        let w = data(n * k);
        for m in [1usize, 64] {
            let name = format!("fc6_{m}x9216x4096");
            if !name.contains(&filter) {
                continue;
            }
            let a = data(m * k);
            let mut out = vec![0.0; m * n];
            report(
                &name,
                best_of(|| {
                    kernels::gemm(m, n, k, &a, false, &w, true, 1.0, 0.0, &mut out).expect("gemm");
                    black_box(&out);
                }),
            );
        }
    }
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
    let input = data(64 * 112 * 112);
    let mut out = vec![0.0; 64 * 56 * 56];
    for (name, is_max) in [
        ("resnet_maxpool3x3s2_64_112", true),
        ("avgpool3x3s2_64_112", false),
    ] {
        if name.contains(&filter) {
            report(
                name,
                best_of(|| {
                    let r = if is_max {
                        kernels::max_pool2d(&p, &input, 1, 64, 112, 112, &mut out)
                    } else {
                        kernels::avg_pool2d(&p, &input, 1, 64, 112, 112, &mut out)
                    };
                    r.expect("pool");
                    black_box(&out);
                }),
            );
        }
    }
    if "alexnet_lrn5_96_55".contains(&filter) {
        let li = data(96 * 55 * 55);
        let mut lo = vec![0.0; li.len()];
        report(
            "alexnet_lrn5_96_55",
            best_of(|| {
                kernels::lrn(&li, 1, 96, 55, 55, 5, 1e-4, 0.75, 1.0, &mut lo).expect("lrn");
                black_box(&lo);
            }),
        );
    }
}
