//! Measures how far sieve-data's ImageNet preprocessing is from the Pillow
//! reference tensors (`shared/models/mobilenet_*/reference/input_uint8.npy`,
//! the first 32 val1300 images), for both resamplers, and times a full pass
//! over the val1300 split.
//!
//! ```text
//! cargo run -p sieve-data --release --example pillow_residual -- [SHARED] [RAW_DIR]
//! ```
//!
//! `SHARED` defaults to `$SIEVE_SHARED` or `<workspace>/../shared`. With
//! `RAW_DIR` (files `<name>.rgb` written by `tools/djpeg_raw.c`, i.e. decoded
//! by libjpeg-turbo as Pillow does) it also reports the residual of the
//! resize alone and of the JPEG decoder alone.

use std::path::{Path, PathBuf};
use std::time::Instant;

use sieve_data::images::decode_rgb;
use sieve_data::resize::{resize_crop_chw, Resampler};
use sieve_data::{open_with, Dataset, DatasetSpec, InputSpec, NpyData, Split};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

#[derive(Default)]
struct Stats {
    max: u8,
    sum: u64,
    differing: u64,
    n: u64,
}

impl Stats {
    fn add(&mut self, a: &[u8], b: &[u8]) {
        for (x, y) in a.iter().zip(b) {
            let d = x.abs_diff(*y);
            self.max = self.max.max(d);
            self.sum += u64::from(d);
            self.differing += u64::from(d > 0);
            self.n += 1;
        }
    }
    fn line(&self) -> String {
        format!(
            "max abs diff {}, mean abs diff {:.4}, differing values {:.2}%",
            self.max,
            self.sum as f64 / self.n.max(1) as f64,
            100.0 * self.differing as f64 / self.n.max(1) as f64
        )
    }
}

fn read_raw(path: &Path) -> Res<(usize, usize, Vec<u8>)> {
    let raw = std::fs::read(path)?;
    let nl = raw.iter().position(|&b| b == b'\n').ok_or("no header")?;
    let hdr = std::str::from_utf8(&raw[..nl])?;
    let (w, h) = hdr.split_once(' ').ok_or("bad header")?;
    Ok((w.parse()?, h.parse()?, raw[nl + 1..].to_vec()))
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let shared = args
        .get(1)
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("SIEVE_SHARED").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")));
    let raw_dir = args.get(2).map(PathBuf::from);
    let labels = std::fs::read_to_string(shared.join("data/imagenet/val1300_labels.txt"))?;
    let names: Vec<&str> = labels
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .take(32)
        .collect();
    let val = shared.join("data/imagenet/val1300");
    for (model, s) in [
        ("mobilenet_v2_1.0_224", 224usize),
        ("mobilenet_v1_0.25_128", 128),
    ] {
        let r = sieve_data::read_npy(
            shared
                .join("models")
                .join(model)
                .join("reference/input_uint8.npy"),
        )?;
        let NpyData::U8(reference) = r.data else {
            return Err("reference is not uint8".into());
        };
        let per = 3 * s * s;
        for res in [Resampler::Pillow, Resampler::FastImageResize] {
            let (mut full, mut resize_only, mut decoder) =
                (Stats::default(), Stats::default(), Stats::default());
            for (i, name) in names.iter().enumerate() {
                let want = &reference[i * per..(i + 1) * per];
                let (w, h, rgb) = decode_rgb(&val.join(name))?;
                full.add(&resize_crop_chw(&rgb, w, h, 3, s, res)?, want);
                if let Some(dir) = &raw_dir {
                    let (lw, lh, lj) = read_raw(&dir.join(format!("{name}.rgb")))?;
                    resize_only.add(&resize_crop_chw(&lj, lw, lh, 3, s, res)?, want);
                    decoder.add(&rgb, &lj);
                }
            }
            println!(
                "{model} {res:?}: image crate decode + resize vs Pillow: {}",
                full.line()
            );
            if raw_dir.is_some() {
                println!(
                    "{model} {res:?}: libjpeg decode + resize vs Pillow: {}",
                    resize_only.line()
                );
                println!(
                    "{model}: image crate vs libjpeg decode (227x227x3): {}",
                    decoder.line()
                );
            }
        }
    }
    // Throughput of a full pass (decode in parallel per batch).
    let spec = DatasetSpec::Images {
        dir: shared.join("data/imagenet"),
        labels: None,
    };
    for s in [224usize, 128] {
        let target = InputSpec {
            channels: 3,
            h: s,
            w: s,
        };
        for split in [Split::Test, Split::Validation] {
            let ds = open_with(&spec, split, target, Resampler::Pillow)?;
            let t = Instant::now();
            let mut n = 0;
            for b in ds.batches(64) {
                n += b?.len();
            }
            let secs = t.elapsed().as_secs_f64();
            println!(
                "{split} split at {s}x{s}: {n} images in {secs:.2} s ({:.0} images/s, {} rayon threads)",
                n as f64 / secs,
                rayon::current_num_threads()
            );
        }
    }
    Ok(())
}
