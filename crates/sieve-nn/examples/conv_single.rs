//! One convolution layer on one thread (`THREADS=n` for more), best of 30 runs: the figure docs/KERNELS.md quotes
//! for the convolution GEMM. Run once per path, e.g.
//! `SIEVE_CONV_PACKED=1 target/release/examples/conv_single` and
//! `SIEVE_CONV_PACKED=0 target/release/examples/conv_single` (the `gemm` crate path);
//! `COLD=1` evicts the layer's data from the caches before each run (what a layer meets
//! inside a model, docs/KERNELS.md "Session 10"); `ROTATE=in` / `ROTATE=out` cycles through
//! `ROTATE_N` (32) input / output buffers, so that only that operand comes from memory;
//! `SIEVE_WINOGRAD=0` keeps dense 3x3 stride-1 layers off the Winograd kernel
//! (`SIEVE_WINOGRAD_MIN_TILES=1` forces it on wherever it applies).
//!
//! Shapes (c_in, c_out, k, stride, pad, h=w): ResNet-18's 64->64 3x3 at 56x56, SqueezeNet's
//! 512->1000 1x1 at 13x13 and 3->96 7x7/2 at 227x227, a 512->512 3x3 at 7x7. Other shapes
//! as arguments `c_in,c_out,k,stride,pad,hw[,groups]`, e.g. MobileNet v2's depthwise
//! `96,96,3,2,1,112,96`.
#![allow(clippy::unwrap_used)]

use sieve_nn::kernels::{self, Activation, Conv2dGeom};

fn main() {
    let threads = std::env::var("THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(1);
    sieve_nn::set_threads(threads).unwrap();
    let mut shapes: Vec<[usize; 7]> = std::env::args()
        .skip(1)
        .map(|a| {
            let v: Vec<usize> = a.split(',').map(|x| x.parse().unwrap()).collect();
            [
                v[0],
                v[1],
                v[2],
                v[3],
                v[4],
                v[5],
                v.get(6).copied().unwrap_or(1),
            ]
        })
        .collect();
    if shapes.is_empty() {
        shapes = vec![
            [64, 64, 3, 1, 1, 56, 1],
            [512, 1000, 1, 1, 0, 13, 1],
            [3, 96, 7, 2, 0, 227, 1],
            [512, 512, 3, 1, 1, 7, 1],
        ];
    }
    for &[ci, co, k, s, p, hw, groups] in &shapes {
        let g = Conv2dGeom {
            c_in: ci,
            c_out: co,
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
            groups,
        };
        let (oh, ow) = g.out_hw(hw, hw).unwrap();
        let input: Vec<f32> = (0..ci * hw * hw)
            .map(|i| (i % 251) as f32 / 251.0)
            .collect();
        let weights: Vec<f32> = (0..co * (ci / groups) * k * k)
            .map(|i| (i % 17) as f32 * 1e-3)
            .collect();
        let bias = vec![0.1f32; co];
        let mut out = vec![0.0f32; co * oh * ow];
        let mut scratch = Vec::new();
        let pack = kernels::ConvPack::new();
        let mut best = f64::MAX;
        let mut times = vec![];
        // COLD=1: write 64 MiB of other data before each run, so that the layer's input,
        // weights and output start out of the caches (as inside a model, where the
        // previous layers' tensors went through them since this layer last ran).
        let cold = std::env::var("COLD").is_ok_and(|v| v == "1");
        // ROTATE=out|in: cycle through ROTATE_N (32) output (or input) buffers, so that only that
        // operand starts out of the caches.
        let rotate = std::env::var("ROTATE").unwrap_or_default();
        let nrot = std::env::var("ROTATE_N")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(32);
        let mut outs = vec![vec![0.0f32; co * oh * ow]; if rotate == "out" { nrot } else { 0 }];
        let ins = vec![input.clone(); if rotate == "in" { nrot } else { 0 }];
        let mut junk = if cold { vec![0u8; 64 << 20] } else { vec![] };
        for run in 0..30 {
            if cold {
                junk.iter_mut().for_each(|b| *b = b.wrapping_add(run as u8));
                std::hint::black_box(&junk);
            }
            let t = std::time::Instant::now();
            let nouts = outs.len();
            let out = match nouts {
                0 => &mut out,
                n => &mut outs[run % n],
            };
            let input = ins.get(run % ins.len().max(1)).unwrap_or(&input);
            kernels::conv2d(
                &g,
                input,
                1,
                hw,
                hw,
                &weights,
                Some(&bias),
                Activation::Relu,
                out,
                &mut scratch,
                Some(&pack),
            )
            .unwrap();
            times.push(t.elapsed().as_secs_f64());
            best = best.min(t.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        let macs = (co * oh * ow * (ci / groups) * k * k) as f64;
        println!(
            "c_in {ci} c_out {co} k {k} stride {s} {hw}x{hw} groups {groups}: {:.3} ms, {:.1} GFLOP/s (median {:.3} ms)",
            best * 1e3,
            2.0 * macs / best / 1e9,
            median * 1e3
        );
    }
}
