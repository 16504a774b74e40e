//! Criterion benchmarks of the CPU kernels on shapes from real CNNs, plus the machine's
//! floors: peak GEMM GFLOP/s (big square GEMM) and memory bandwidth (stream-sum of an
//! array larger than the last-level cache).
//!
//! Throughput is reported as "elem/s" = FLOP/s (2 per multiply-add) for compute kernels
//! and as bytes/s of weights streamed for the batch-1 FC layers.
//! Run: `cargo bench -p sieve-nn --bench kernels` (filter with e.g. `-- conv/`).
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sieve_nn::kernels::{self, Activation, Conv2dGeom, Pool2dGeom};

fn data(len: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect()
}

#[allow(clippy::too_many_arguments)]
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

fn conv(c: &mut Criterion) {
    // (name, geometry, batch, h = w)
    let cases = [
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
    let mut group = c.benchmark_group("conv");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for (name, g, n, hw) in cases {
        let (oh, ow) = g.out_hw(hw, hw).expect("valid bench geometry");
        let input = data(n * g.c_in * hw * hw);
        let weights = data(g.weight_len().expect("weights"));
        let bias = data(g.c_out);
        let mut out = vec![0.0; n * g.c_out * oh * ow];
        let mut scratch = Vec::new();
        let macs = (n * g.c_out * oh * ow * g.c_in_per_group() * g.kh * g.kw) as u64;
        group.throughput(Throughput::Elements(2 * macs));
        group.bench_function(name, |b| {
            b.iter(|| {
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
            })
        });
    }
    group.finish();
}

fn gemm(c: &mut Criterion) {
    let mut group = c.benchmark_group("gemm");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    // AlexNet fc6: [m x 9216] x [9216 x 4096]^T, weights stored [4096 x 9216] (ONNX transB=1).
    let (k, n) = (9216, 4096);
    let w = data(n * k);
    for m in [1usize, 64] {
        let a = data(m * k);
        let mut out = vec![0.0; m * n];
        if m == 1 {
            group.throughput(Throughput::Bytes((n * k * 4) as u64));
            for tb in [true, false] {
                let id =
                    BenchmarkId::new("fc6_weights_streamed", format!("1x9216x4096_transb_{tb}"));
                group.bench_function(id, |b| {
                    b.iter(|| {
                        kernels::gemm(1, n, k, &a, false, &w, tb, 1.0, 0.0, &mut out)
                            .expect("gemm");
                        black_box(&out);
                    })
                });
            }
        } else {
            group.throughput(Throughput::Elements((2 * m * n * k) as u64));
            group.bench_function("fc6_64x9216x4096", |b| {
                b.iter(|| {
                    kernels::gemm(m, n, k, &a, false, &w, true, 1.0, 0.0, &mut out).expect("gemm");
                    black_box(&out);
                })
            });
        }
    }
    group.finish();
}

fn pools(c: &mut Criterion) {
    let mut group = c.benchmark_group("pool");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
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
    let (ch, hw) = (64, 112);
    let input = data(ch * hw * hw);
    let (oh, ow) = p.out_hw(hw, hw).expect("pool geometry");
    let mut out = vec![0.0; ch * oh * ow];
    group.throughput(Throughput::Bytes((input.len() * 4) as u64));
    group.bench_function("resnet_maxpool3x3s2_64_112", |b| {
        b.iter(|| {
            kernels::max_pool2d(&p, &input, 1, ch, hw, hw, &mut out).expect("pool");
            black_box(&out);
        })
    });
    group.bench_function("avgpool3x3s2_64_112", |b| {
        b.iter(|| {
            kernels::avg_pool2d(&p, &input, 1, ch, hw, hw, &mut out).expect("pool");
            black_box(&out);
        })
    });
    let (lc, lhw) = (96, 55);
    let linput = data(lc * lhw * lhw);
    let mut lout = vec![0.0; linput.len()];
    group.throughput(Throughput::Bytes((linput.len() * 4) as u64));
    group.bench_function("alexnet_lrn5_96_55", |b| {
        b.iter(|| {
            kernels::lrn(&linput, 1, lc, lhw, lhw, 5, 1e-4, 0.75, 1.0, &mut lout).expect("lrn");
            black_box(&lout);
        })
    });
    group.finish();
}

/// Sum with 16 independent lanes so that the loop vectorises and is memory-bound.
fn lane_sum(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; 16];
    for ch in x.chunks_exact(16) {
        for l in 0..16 {
            acc[l] += ch[l];
        }
    }
    acc.iter().sum()
}

fn floors(c: &mut Criterion) {
    let mut group = c.benchmark_group("floor");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    let s = 2048;
    let a = data(s * s);
    let b2 = data(s * s);
    let mut out = vec![0.0; s * s];
    group.throughput(Throughput::Elements((2 * s * s * s) as u64));
    group.bench_function("peak_gemm_2048", |b| {
        b.iter(|| {
            kernels::gemm(s, s, s, &a, false, &b2, false, 1.0, 0.0, &mut out).expect("gemm");
            black_box(&out);
        })
    });
    drop((a, b2, out));
    // 1 GiB: larger than the 300 MiB L3 of the development machine.
    let big = data(1 << 28);
    group.throughput(Throughput::Bytes((big.len() * 4) as u64));
    group.bench_function("stream_sum_1GiB_2threads", |b| {
        b.iter(|| {
            use rayon::prelude::*;
            let s: f32 = big.par_chunks(1 << 16).map(lane_sum).sum();
            black_box(s)
        })
    });
    group.finish();
}

criterion_group!(benches, conv, gemm, pools, floors);
criterion_main!(benches);
