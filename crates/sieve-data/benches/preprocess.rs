//! ImageNet preprocessing cost per image: the Pillow-port bilinear resize vs
//! `fast_image_resize`, on the two shapes the shared data produces (227x227
//! val1300 images -> 224, and a 341x256 sample1000-like image -> 298x224),
//! plus JPEG decoding of a 227x227 image.
//!
//! `cargo bench -p sieve-data --bench preprocess -- --quick`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sieve_data::images::decode_rgb_bytes;
use sieve_data::resize::{resize_crop_chw, Resampler};

fn image(w: usize, h: usize) -> Vec<u8> {
    // Smooth gradients plus a little texture, like a photo.
    (0..w * h * 3)
        .map(|i| {
            let (p, c) = (i / 3, i % 3);
            let (x, y) = (p % w, p / w);
            ((x * 255 / w + y * 97 / h + c * 40 + (x * y) % 7) % 256) as u8
        })
        .collect()
}

fn bench_resize(c: &mut Criterion) {
    let mut g = c.benchmark_group("resize_crop_chw");
    for &(w, h, s) in &[
        (227usize, 227usize, 224usize),
        (341, 256, 224),
        (227, 227, 128),
    ] {
        let src = image(w, h);
        g.throughput(Throughput::Elements(1));
        for res in [Resampler::Pillow, Resampler::FastImageResize] {
            g.bench_with_input(
                BenchmarkId::new(format!("{res:?}"), format!("{w}x{h}->{s}")),
                &src,
                |b, src| b.iter(|| resize_crop_chw(black_box(src), w, h, 3, s, res)),
            );
        }
    }
    g.finish();
}

fn bench_decode(c: &mut Criterion) {
    let (w, h) = (227u32, 227u32);
    let img = image::RgbImage::from_raw(w, h, image(w as usize, h as usize));
    let mut jpeg = Vec::new();
    if let Some(img) = img {
        let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90);
        if img.write_with_encoder(enc).is_err() {
            return;
        }
    }
    let path = std::path::Path::new("bench.jpg");
    c.bench_function("decode_rgb jpeg 227x227", |b| {
        b.iter(|| decode_rgb_bytes(black_box(&jpeg), path))
    });
}

criterion_group!(benches, bench_resize, bench_decode);
criterion_main!(benches);
