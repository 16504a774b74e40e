//! Decode throughput per code width, next to a plain copy of the same f32
//! output, plus encode/quantize throughput. Throughput is bytes of f32
//! produced (4 per element). Also the exponent histogram of a ReLU-like
//! activation (half zeros), value by value against `add_slice`.
//!
//! `cargo bench -p sieve-float --bench decode -- --quick`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sieve_float::{
    decode_slice, encode_slice, pack, quantize_slice, Decoder, ExpHistogram, Format,
};

const N: usize = 1 << 20;

/// A representative format of each width (signed where the width allows).
fn format_of_width(w: u32) -> Format {
    let spec = match w {
        1 => "u0e1m0b0",
        2 => "s1e1m0b0",
        3 => "s1e2m0b1",
        4 => "s1e2m1b1",
        5 => "s1e3m1b3",
        6 => "s1e3m2b3",
        8 => "s1e4m3b7",
        10 => "s1e5m4b15",
        12 => "s1e5m6b15",
        16 => "s1e5m10b15",
        24 => "s1e7m16b63",
        _ => "s1e4m3b7",
    };
    spec.parse().expect("valid format")
}

fn inputs() -> Vec<f32> {
    let mut s = 0x1234_5678u32;
    (0..N)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s as f32 / u32::MAX as f32 - 0.5) * 8.0
        })
        .collect()
}

fn bench_decode(c: &mut Criterion) {
    let xs = inputs();
    let mut g = c.benchmark_group("decode_packed");
    g.throughput(Throughput::Bytes((N * 4) as u64));
    let mut out = vec![0f32; N];
    g.bench_function("memcpy_f32", |b| {
        b.iter(|| out.copy_from_slice(black_box(&xs)));
    });
    for w in [1u32, 2, 3, 4, 5, 6, 8, 10, 12, 16, 24] {
        let f = format_of_width(w);
        assert_eq!(f.width(), w);
        let mut codes = vec![0u32; N];
        encode_slice(f, &xs, &mut codes).expect("lengths");
        let bytes = pack(w, &codes).expect("width");
        let d = Decoder::new(f);
        g.bench_with_input(BenchmarkId::new("width", w), &bytes, |b, bytes| {
            b.iter(|| {
                d.decode_packed(black_box(bytes), N, &mut out)
                    .expect("sizes")
            });
        });
    }
    g.finish();
}

fn bench_codec(c: &mut Criterion) {
    let xs = inputs();
    let f: Format = "s1e4m3b7".parse().expect("valid format");
    let mut g = c.benchmark_group("codec_s1e4m3b7");
    g.throughput(Throughput::Bytes((N * 4) as u64));
    let mut buf = xs.clone();
    g.bench_function("quantize_slice", |b| {
        b.iter(|| {
            buf.copy_from_slice(&xs);
            quantize_slice(f, black_box(&mut buf));
        });
    });
    g.bench_function("memcpy_f32", |b| {
        b.iter(|| buf.copy_from_slice(black_box(&xs)));
    });
    let mut codes = vec![0u32; N];
    g.bench_function("encode_slice", |b| {
        b.iter(|| encode_slice(f, black_box(&xs), &mut codes).expect("lengths"));
    });
    g.bench_function("decode_slice_unpacked", |b| {
        b.iter(|| decode_slice(f, black_box(&codes), &mut buf).expect("lengths"));
    });
    g.finish();
}

fn bench_histogram(c: &mut Criterion) {
    // After a ReLU: the negative half of `inputs` becomes zeros, in no order.
    let xs: Vec<f32> = inputs().into_iter().map(|x| x.max(0.0)).collect();
    let mut g = c.benchmark_group("exp_histogram_relu");
    g.throughput(Throughput::Bytes((N * 4) as u64));
    g.bench_function("add_each", |b| {
        b.iter(|| {
            let mut h = ExpHistogram::new();
            for &x in black_box(&xs) {
                h.add(x);
            }
            h
        });
    });
    g.bench_function("add_slice", |b| {
        b.iter(|| ExpHistogram::from_slice(black_box(&xs)));
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = bench_decode, bench_codec, bench_histogram
}
criterion_main!(benches);
