//! Compressed-execution benchmark (driven by `bench/speculative.sh`; docs/COMPRESSED.md).
//!
//! Two modes, one JSON object per line on stdout:
//!
//! * `model`: one configuration per process (so the peak RSS is its own): load a model
//!   (`--onnx` alone = the original in f32; `--synth fc=e4m3,conv=e4m3` = synthetic
//!   packed formats; `--package P --variant V` = a designed variant; `--dense` = the
//!   reference path with the packed values decoded to f32), reset the peak-RSS counter
//!   (`/proc/self/clear_refs`), run batch 1 `--warmup` + `--runs` times, report the
//!   median latency, the resident memory after loading and the peak during the runs.
//! * `pair`: the original and a `--synth` variant loaded in one process and run
//!   alternately `--rounds` times; medians and the median per-round speedup
//!   (original / variant), which cancels the host's slow speed changes.
//! * `fc`: per-layer batch-1 timing of the fully-connected shapes of AlexNet and
//!   VGG-16 with f32 weights (the engine's FC kernel and the generic GEMV), 8-bit and
//!   5-bit packed weights, interleaved round by round; plus the measured memory read
//!   bandwidth and each case's floor (weight bytes / bandwidth).
//!
//! ```text
//! speculative_bench model --onnx vgg16.onnx --synth conv=e4m3 --runs 10
//! speculative_bench fc --rounds 15 [--batch 64] [--layer alexnet]
//! ```

use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use sieve_design::synth::{synthetic_model_from_onnx, SynthAssignment};
use sieve_design::{Package, SpeculativeModel, Variant};
use sieve_float::PackedTensor;
use sieve_nn::kernels::packed::{self, FcWeights};
use sieve_nn::{kernels, Tensor};
use std::path::PathBuf;
use std::time::Instant;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn num(args: &[String], name: &str, default: usize) -> Result<usize> {
    match arg(args, name) {
        Some(v) => v.parse().with_context(|| format!("{name} {v}")),
        None => Ok(default),
    }
}

/// `VmRSS` / `VmHWM` of this process in KiB.
fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

extern "C" {
    fn malloc_trim(pad: usize) -> i32;
}

/// Returns freed heap memory to the OS (the f32 originals dropped while packing), then
/// resets the peak-RSS counter.
fn settle_memory() {
    // SAFETY: glibc's malloc_trim only releases free heap pages; no pointer is passed.
    unsafe { malloc_trim(0) };
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn input_for(m: &SpeculativeModel) -> Result<Tensor> {
    let info = m.model().inputs().first().context("model has no input")?;
    let mut shape: Vec<usize> = info.shape.iter().map(|d| d.fixed().unwrap_or(1)).collect();
    if let Some(b) = shape.first_mut() {
        *b = 1;
    }
    let n: usize = shape.iter().product();
    let mut state: u32 = 0x9E37_79B9;
    let data = (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state % 256) as f32 / 255.0
        })
        .collect();
    Ok(Tensor::from_f32(shape, data)?)
}

fn model_mode(args: &[String]) -> Result<()> {
    let runs = num(args, "--runs", 10)?;
    let warmup = num(args, "--warmup", 2)?;
    let dense = args.iter().any(|a| a == "--dense");
    let t0 = Instant::now();
    let (label, m) = if let Some(p) = arg(args, "--package") {
        let v: Variant = arg(args, "--variant")
            .unwrap_or_else(|| "accurate".into())
            .parse()?;
        let pkg = Package::open(&PathBuf::from(&p))?;
        let m = if dense {
            pkg.reference_model(v)?
        } else {
            pkg.model(v)?
        };
        (
            format!("{} {}", v.name(), if dense { "dense" } else { "packed" }),
            m,
        )
    } else {
        let onnx = arg(args, "--onnx").context("--onnx or --package required")?;
        match arg(args, "--synth") {
            Some(spec) => {
                let a: SynthAssignment = spec.parse()?;
                let f = |l: &sieve_nn::Layer| a.for_layer(l);
                let bytes = std::fs::read(&onnx).with_context(|| onnx.clone())?;
                let m = synthetic_model_from_onnx(&bytes, &f, Variant::Approximate, dense)?;
                (format!("{spec}{}", if dense { " dense" } else { "" }), m)
            }
            None => {
                let model = sieve_onnx::load_file(&onnx)?;
                (
                    "original f32".into(),
                    SpeculativeModel::new(model, vec![], Variant::Original),
                )
            }
        }
    };
    let load_s = t0.elapsed().as_secs_f64();
    let x = input_for(&m)?;
    settle_memory();
    let rss_loaded = status_kb("VmRSS:");
    for _ in 0..warmup {
        m.run(vec![x.clone()])?;
    }
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        m.run(vec![x.clone()])?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let min = times.iter().copied().fold(f64::INFINITY, f64::min);
    let out = serde_json::json!({
        "mode": "model",
        "config": label,
        "weight_bytes": m.weight_bytes(),
        "load_s": load_s,
        "rss_loaded_kb": rss_loaded,
        "peak_run_kb": status_kb("VmHWM:"),
        "median_ms": median(&mut times),
        "min_ms": min,
        "runs": runs,
        "decode_buffer_bytes": sieve_nn::decode_buffer_bytes(),
        "conv_buffer_bytes": sieve_nn::kernels::conv_buffer_bytes(),
    });
    println!("{out}");
    Ok(())
}

fn weights(len: usize, seed: u32) -> Vec<f32> {
    let mut s = seed | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            ((s >> 8) as f32 / 16777216.0 - 0.5) * 0.02
        })
        .collect()
}

/// Parallel read bandwidth (bytes/s) over a buffer much larger than the caches.
fn read_bandwidth(buf: &[f32]) -> f64 {
    let t = Instant::now();
    let s: f32 = buf
        .par_chunks(1 << 16)
        .map(|c| kernels::simd::dot(c, c))
        .sum();
    std::hint::black_box(s);
    buf.len() as f64 * 4.0 / t.elapsed().as_secs_f64()
}

fn fc_mode(args: &[String]) -> Result<()> {
    let rounds = num(args, "--rounds", 15)?;
    let m = num(args, "--batch", 1)?;
    let layers = [
        ("alexnet fc6", 4096usize, 9216usize),
        ("alexnet fc7", 4096, 4096),
        ("alexnet fc8", 1000, 4096),
        ("vgg16 fc6", 4096, 25088),
        ("vgg16 fc7", 4096, 4096),
        ("vgg16 fc8", 1000, 4096),
        // Small enough for L2 (512 KiB at 8 bits): the decoders' speed without DRAM.
        ("in-cache 256x2048", 256, 2048),
    ];
    let fmts = ["s1e4m3", "s1e3m1"];
    let only = arg(args, "--layer");
    // --cold: before every timed product, write a buffer of 3x the last-level cache
    // (96 MiB), so the weights come from DRAM as they do inside a model run (whose
    // weights do not fit in the caches), not from L3 left warm by the previous round.
    let cold = args.iter().any(|a| a == "--cold");
    let mut flush = if cold {
        vec![0u8; 96 << 20]
    } else {
        Vec::new()
    };
    let bw_buf = weights(1 << 27, 99);
    let mut bws = Vec::new();
    for _ in 0..5 {
        bws.push(read_bandwidth(&bw_buf));
    }
    drop(bw_buf);
    let bw = median(&mut bws);
    println!(
        "{}",
        serde_json::json!({"mode": "bandwidth", "read_bytes_per_s": bw})
    );
    for (name, n, k) in layers {
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        let w = weights(n * k, n as u32 ^ k as u32);
        let mut packs = Vec::new();
        for f in fmts {
            let sf: sieve_design::synth::SynthFormat = f[2..].parse()?;
            let fmt = sieve_design::synth::fit_format(&w, sf)?;
            packs.push(PackedTensor::encode_from(fmt, &w)?);
        }
        let x = weights(m * k, 7);
        let mut y = vec![0.0f32; m * n];
        // 0: f32 FC kernel, 1: f32 generic GEMV (kernels::gemm), 2..: packed.
        let mut times = vec![Vec::new(); 2 + packs.len()];
        for _ in 0..rounds {
            for (ci, t) in times.iter_mut().enumerate() {
                if cold {
                    flush
                        .par_chunks_mut(1 << 16)
                        .for_each(|c| c.iter_mut().for_each(|b| *b = b.wrapping_add(1)));
                    std::hint::black_box(&flush);
                }
                let s = Instant::now();
                match ci {
                    0 => packed::fc(m, n, k, &x, FcWeights::Dense(&w), true, 1.0, 0.0, &mut y)?,
                    1 => kernels::gemm(m, n, k, &x, false, &w, true, 1.0, 0.0, &mut y)?,
                    _ => packed::fc(
                        m,
                        n,
                        k,
                        &x,
                        FcWeights::Packed(&packs[ci - 2]),
                        true,
                        1.0,
                        0.0,
                        &mut y,
                    )?,
                }
                t.push(s.elapsed().as_secs_f64() * 1e3);
            }
        }
        let med: Vec<f64> = times.iter_mut().map(|t| median(t)).collect();
        let bytes: Vec<usize> = std::iter::once(n * k * 4)
            .chain(std::iter::once(n * k * 4))
            .chain(packs.iter().map(|p| p.bytes().len()))
            .collect();
        // Address of the weights modulo 64 (a cache line): unaligned rows make every
        // 64-byte load of the 8-bit kernel touch two lines.
        let aligns: Vec<usize> = [w.as_ptr() as usize % 64; 2]
            .into_iter()
            .chain(packs.iter().map(|p| p.bytes().as_ptr() as usize % 64))
            .collect();
        let labels: Vec<String> = ["f32 (fc kernel)".to_string(), "f32 (kernels::gemm)".into()]
            .into_iter()
            .chain(
                packs
                    .iter()
                    .map(|p| format!("{} ({} bit)", p.format(), p.format().width())),
            )
            .collect();
        for i in 0..med.len() {
            println!(
                "{}",
                serde_json::json!({
                    "mode": "fc", "layer": name, "batch": m, "n": n, "k": k, "config": labels[i], "cold": cold,
                    "weight_bytes": bytes[i], "median_ms": med[i], "align64": aligns[i],
                    "floor_ms": bytes[i] as f64 / bw * 1e3,
                    "speedup_vs_f32": med[0] / med[i],
                })
            );
        }
    }
    Ok(())
}

/// Original f32 model and a synthetic packed variant in one process, run alternately
/// (A B, then B A, ...), so that both see the same machine state: per-process and
/// minute-scale speed changes of a shared host cancel in the per-round ratio.
fn pair_mode(args: &[String]) -> Result<()> {
    let rounds = num(args, "--rounds", 20)?;
    let onnx = arg(args, "--onnx").context("--onnx required")?;
    let spec = arg(args, "--synth").context("--synth required")?;
    let bytes = std::fs::read(&onnx).with_context(|| onnx.clone())?;
    let original =
        SpeculativeModel::new(sieve_onnx::load_bytes(&bytes)?, vec![], Variant::Original);
    let a: SynthAssignment = spec.parse()?;
    let f = |l: &sieve_nn::Layer| a.for_layer(l);
    let variant = synthetic_model_from_onnx(&bytes, &f, Variant::Approximate, false)?;
    let x = input_for(&original)?;
    for m in [&original, &variant, &original, &variant] {
        m.run(vec![x.clone()])?;
    }
    let (mut ta, mut tb, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..rounds.max(1) {
        let time = |m: &SpeculativeModel| -> Result<f64> {
            let t = Instant::now();
            m.run(vec![x.clone()])?;
            Ok(t.elapsed().as_secs_f64() * 1e3)
        };
        let (a, b) = if r % 2 == 0 {
            let a = time(&original)?;
            (a, time(&variant)?)
        } else {
            let b = time(&variant)?;
            (time(&original)?, b)
        };
        ta.push(a);
        tb.push(b);
        ratio.push(a / b);
    }
    let out = serde_json::json!({
        "mode": "pair",
        "config": spec,
        "rounds": rounds,
        "original_median_ms": median(&mut ta),
        "variant_median_ms": median(&mut tb),
        "speedup_median": median(&mut ratio),
        "speedup_p10": ratio[ratio.len() / 10],
        "speedup_p90": ratio[ratio.len() * 9 / 10],
    });
    println!("{out}");
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("model") => model_mode(&args[1..]),
        Some("fc") => fc_mode(&args[1..]),
        Some("pair") => pair_mode(&args[1..]),
        _ => bail!("usage: speculative_bench model --onnx M.onnx [--synth fc=e4m3,conv=e4m3 | --package P --variant V] [--dense] [--runs N] [--warmup N]\n       speculative_bench fc [--rounds N] [--layer NAME] [--batch M] [--cold]\n       speculative_bench pair --onnx M.onnx --synth SPEC [--rounds N]"),
    }
}
