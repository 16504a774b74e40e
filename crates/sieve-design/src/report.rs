//! The human report of a design run (`--report DIR`): `report.md` (per tensor the
//! histogram, the windows chosen by each variant and every explored point),
//! `report.json` (the full metadata) and, per tensor, a plot of the exponent
//! histogram with the accurate variant's window (like the paper's Fig. 6) as
//! `plots/<id>_<name>.svg` and `.png` (no fonts needed: the PNG has no text).

use crate::meta::{Meta, TensorInfo, TensorKind};
use crate::{DesignError, Variant};
use sieve_float::Format;
use std::fmt::Write as _;
use std::path::Path;

const W: u32 = 640;
const H: u32 = 320;
const MARGIN: u32 = 40;

fn safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(60)
        .collect()
}

struct Geometry {
    lo: i32,
    hi: i32,
    max: u64,
}

impl Geometry {
    fn new(t: &TensorInfo, window: Option<Format>) -> Geometry {
        let mut lo = t.histogram.first().map_or(-8, |h| h.0);
        let mut hi = t.histogram.last().map_or(0, |h| h.0);
        if let Some(f) = window {
            lo = lo.min(f.min_exp());
            hi = hi.max(f.max_exp());
        }
        let max = t.histogram.iter().map(|h| h.1).max().unwrap_or(1).max(1);
        Geometry {
            lo: lo - 1,
            hi: hi + 1,
            max,
        }
    }
    fn bin_w(&self) -> f64 {
        f64::from(W - 2 * MARGIN) / f64::from((self.hi - self.lo + 1).max(1))
    }
    fn x(&self, e: i32) -> f64 {
        f64::from(MARGIN) + f64::from(e - self.lo) * self.bin_w()
    }
    fn bar_h(&self, c: u64) -> f64 {
        f64::from(H - 2 * MARGIN) * c as f64 / self.max as f64
    }
}

/// The SVG plot of a tensor's exponent histogram with `window` shaded.
pub fn histogram_svg(t: &TensorInfo, window: Option<Format>) -> String {
    let g = Geometry::new(t, window);
    let base = f64::from(H - MARGIN);
    let mut s = format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
    if let Some(f) = window {
        let (x0, x1) = (g.x(f.min_exp()), g.x(f.max_exp() + 1));
        let _ = writeln!(
            s,
            "<rect x=\"{x0:.1}\" y=\"{MARGIN}\" width=\"{:.1}\" height=\"{}\" fill=\"#ffe0a0\"/>",
            x1 - x0,
            H - 2 * MARGIN
        );
        let _ = writeln!(
            s,
            "<text x=\"{x0:.1}\" y=\"{}\">window {f} ({} bits)</text>",
            MARGIN - 6,
            f.width()
        );
    }
    for &(e, c) in &t.histogram {
        let h = g.bar_h(c);
        let _ = writeln!(s, "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"#3060c0\"><title>2^{e}: {c}</title></rect>", g.x(e) + 1.0, base - h, (g.bin_w() - 2.0).max(1.0));
    }
    let _ = writeln!(
        s,
        "<line x1=\"{MARGIN}\" y1=\"{base}\" x2=\"{}\" y2=\"{base}\" stroke=\"black\"/>",
        W - MARGIN
    );
    let step = ((g.hi - g.lo) / 12).max(1);
    let mut e = g.lo;
    while e <= g.hi {
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{e}</text>",
            g.x(e) + g.bin_w() / 2.0,
            base + 14.0
        );
        e += step;
    }
    let kind = if t.kind == TensorKind::Weight {
        "weights"
    } else {
        "activations"
    };
    let _ = writeln!(s, "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">exponent floor(log2|x|) of {kind} of {} ({})</text>", W / 2, H - 8, xml(&t.layer_name), xml(&t.name));
    s.push_str("</svg>\n");
    s
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The same plot as an RGB PNG (bars and window only, no text).
pub fn histogram_png(t: &TensorInfo, window: Option<Format>) -> Result<Vec<u8>, DesignError> {
    let g = Geometry::new(t, window);
    let mut img = image::RgbImage::from_pixel(W, H, image::Rgb([255, 255, 255]));
    let mut fill = |x0: f64, y0: f64, x1: f64, y1: f64, c: [u8; 3]| {
        let clamp = |v: f64, m: u32| (v.max(0.0) as u32).min(m);
        for y in clamp(y0, H)..clamp(y1, H) {
            for x in clamp(x0, W)..clamp(x1, W) {
                img.put_pixel(x, y, image::Rgb(c));
            }
        }
    };
    let base = f64::from(H - MARGIN);
    if let Some(f) = window {
        fill(
            g.x(f.min_exp()),
            f64::from(MARGIN),
            g.x(f.max_exp() + 1),
            base,
            [255, 224, 160],
        );
    }
    for &(e, c) in &t.histogram {
        let h = g.bar_h(c);
        fill(
            g.x(e) + 1.0,
            base - h,
            g.x(e) + g.bin_w() - 1.0,
            base,
            [48, 96, 192],
        );
    }
    fill(
        f64::from(MARGIN),
        base,
        f64::from(W - MARGIN),
        base + 1.0,
        [0, 0, 0],
    );
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .map_err(|e| DesignError::Invalid(format!("PNG encoding: {e}")))?;
    Ok(out.into_inner())
}

fn fmt_opt(f: Option<Format>) -> String {
    f.map_or("f32".to_string(), |f| format!("{f} ({} b)", f.width()))
}

/// The markdown report.
pub fn markdown(meta: &Meta) -> String {
    let mut s = String::new();
    let p = &meta.provenance;
    let _ = writeln!(s, "# sieve design report\n");
    let _ = writeln!(s, "- model sha256 `{}` ({} bytes)\n- data `{}` split {} ({} images, fingerprint `{}`)\n- tool {}\n- baseline top-1 {:.2}% ({}/{})\n- explored points {}, combinations evaluated {}\n",
        p.model_sha256, p.model_bytes, p.dataset, p.split, p.images, p.dataset_fingerprint, meta.tool,
        100.0 * meta.baseline.top1, meta.baseline.correct, meta.baseline.images, meta.search.points, meta.search.combinations);
    let _ = writeln!(s, "## Variants\n\n| variant | avg weight bits | avg activation bits | weight bytes | val top-1 | normalised | agreement | recovery |\n|---|---|---|---|---|---|---|---|");
    for v in &meta.variants {
        let _ = writeln!(
            s,
            "| {} | {:.2} | {:.2} | {} | {:.2}% | {:.4} | {} | {} |",
            v.variant,
            v.avg_weight_bits,
            v.avg_activation_bits,
            v.weight_bytes,
            100.0 * v.accuracy.top1,
            v.normalised,
            v.agreement_text(),
            if v.recovered.is_empty() {
                "-".to_string()
            } else {
                v.recovered.join("; ")
            }
        );
    }
    let _ = writeln!(s, "\n## Tensors\n");
    for t in &meta.tensors {
        let kind = if t.kind == TensorKind::Weight {
            "weights"
        } else {
            "activation"
        };
        let _ = writeln!(s, "### {} — {} {} `{}`\n", t.id, t.layer_name, kind, t.name);
        let _ = writeln!(
            s,
            "{} values{}, {}{}, e_max {}, zeros {}. ![histogram](plots/{}.svg)\n",
            t.elements,
            if t.kind == TensorKind::Activation {
                " per image"
            } else {
                ""
            },
            if t.signed {
                "signed"
            } else {
                "unsigned (non-negative by construction)"
            },
            match t.channel_scales {
                Some(c) => format!(
                    ", per-channel power-of-two scales on {c} channels (histogram, e_max and \
                     points of the shifted values; +8 bits per channel)"
                ),
                None => String::new(),
            },
            t.e_max,
            t.zeros,
            plot_name(t)
        );
        let hist: Vec<String> = t
            .histogram
            .iter()
            .map(|(e, c)| format!("2^{e}:{c}"))
            .collect();
        let _ = writeln!(s, "histogram: {}\n", hist.join(" "));
        let chosen: Vec<String> = meta
            .variants
            .iter()
            .map(|v| {
                format!(
                    "{} {}",
                    v.variant,
                    fmt_opt(v.formats.get(t.id).copied().flatten())
                )
            })
            .collect();
        let _ = writeln!(s, "chosen: {}\n", chosen.join(", "));
        let _ = writeln!(
            s,
            "| format | bits | coverage | correct | normalised |\n|---|---|---|---|---|"
        );
        for pt in &t.points {
            if pt.stopped {
                let _ = writeln!(
                    s,
                    "| {} | {} | {:.4} | stopped | below the floor |",
                    pt.format, pt.bits, pt.coverage
                );
            } else {
                let _ = writeln!(
                    s,
                    "| {} | {} | {:.4} | {} | {:.4} |",
                    pt.format, pt.bits, pt.coverage, pt.correct, pt.normalised
                );
            }
        }
        s.push('\n');
    }
    s
}

fn plot_name(t: &TensorInfo) -> String {
    format!("{:03}_{}", t.id, safe(&t.name))
}

/// Writes `report.md`, `report.json` and the plots into `dir` (created if needed).
pub fn write_report(meta: &Meta, dir: &Path) -> Result<(), DesignError> {
    let plots = dir.join("plots");
    std::fs::create_dir_all(&plots).map_err(|e| DesignError::io(&plots, e))?;
    let write = |p: &Path, b: &[u8]| std::fs::write(p, b).map_err(|e| DesignError::io(p, e));
    write(&dir.join("report.md"), markdown(meta).as_bytes())?;
    let json = serde_json::to_vec_pretty(meta).map_err(|e| DesignError::Invalid(e.to_string()))?;
    write(&dir.join("report.json"), &json)?;
    for t in &meta.tensors {
        let window = meta
            .variant(Variant::Accurate)
            .and_then(|v| v.formats.get(t.id).copied().flatten());
        let name = plot_name(t);
        write(
            &plots.join(format!("{name}.svg")),
            histogram_svg(t, window).as_bytes(),
        )?;
        write(
            &plots.join(format!("{name}.png")),
            &histogram_png(t, window)?,
        )?;
    }
    Ok(())
}
