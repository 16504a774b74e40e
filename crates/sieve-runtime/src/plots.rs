//! The detector's plots, each as SVG and PNG (the PNG carries the same text,
//! drawn with an 8x8 bitmap font, so both are readable on their own):
//!
//! - [`fig3`]: the paper's Fig. 3 — confidence of the wrong speculative
//!   outputs, correctable (circles) vs uncorrectable (crosses), by input
//!   index, with the threshold lines;
//! - [`fig4`]: the paper's Fig. 4 — every input's confidence sorted from low
//!   to high, coloured by class, with the threshold and the replayed fraction;
//! - [`replay_curve`]: final accuracy vs replay rate over every threshold,
//!   with the original's accuracy, the targets and the chosen points.

use crate::calibration::TargetChoice;
use crate::detector::{CurvePoint, Outcome, Record};
use crate::RuntimeError;
use std::fmt::Write as _;
use std::path::Path;

const W: f64 = 760.0;
const H: f64 = 520.0;
/// Plot area: left, top, right, bottom.
const AREA: (f64, f64, f64, f64) = (70.0, 50.0, 730.0, 390.0);

type Rgb = [u8; 3];
const BLACK: Rgb = [0, 0, 0];
const GREY: Rgb = [150, 150, 150];
const BLUE: Rgb = [40, 90, 200];
const RED: Rgb = [210, 40, 40];
const GREEN: Rgb = [40, 150, 70];
const ORANGE: Rgb = [230, 130, 0];
const PURPLE: Rgb = [130, 60, 170];

#[derive(Clone, Copy, PartialEq)]
enum Anchor {
    Start,
    Middle,
    End,
}

enum Op {
    Line(f64, f64, f64, f64, Rgb, bool),
    Circle(f64, f64, f64, Rgb),
    Cross(f64, f64, f64, Rgb),
    Dot(f64, f64, Rgb),
    Text(f64, f64, String, u32, Anchor, bool),
}

/// A figure recorded as drawing operations, rendered to SVG and PNG.
struct Canvas {
    ops: Vec<Op>,
}

fn css(c: Rgb) -> String {
    format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2])
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl Canvas {
    fn new() -> Canvas {
        Canvas { ops: vec![] }
    }
    fn line(&mut self, x0: f64, y0: f64, x1: f64, y1: f64, c: Rgb, dashed: bool) {
        self.ops.push(Op::Line(x0, y0, x1, y1, c, dashed));
    }
    fn text(&mut self, x: f64, y: f64, s: &str, scale: u32, a: Anchor) {
        self.ops
            .push(Op::Text(x, y, s.to_string(), scale, a, false));
    }
    fn vtext(&mut self, x: f64, y: f64, s: &str) {
        self.ops
            .push(Op::Text(x, y, s.to_string(), 1, Anchor::Middle, true));
    }

    #[allow(clippy::too_many_arguments)]
    /// Axes with ticks: `xs`/`ys` map data to pixels; tick values given.
    fn axes(
        &mut self,
        m: &Map,
        xt: &[f64],
        yt: &[f64],
        xlabel: &str,
        ylabel: &str,
        xfmt: &dyn Fn(f64) -> String,
        yfmt: &dyn Fn(f64) -> String,
    ) {
        let (l, t, r, b) = AREA;
        self.line(l, b, r, b, BLACK, false);
        self.line(l, t, l, b, BLACK, false);
        for &v in xt {
            let x = m.x(v);
            self.line(x, b, x, b + 4.0, BLACK, false);
            self.text(x, b + 16.0, &xfmt(v), 1, Anchor::Middle);
        }
        for &v in yt {
            let y = m.y(v);
            self.line(l - 4.0, y, l, y, BLACK, false);
            self.line(l, y, r, y, [230, 230, 230], false);
            self.text(l - 6.0, y + 4.0, &yfmt(v), 1, Anchor::End);
        }
        self.text((l + r) / 2.0, b + 36.0, xlabel, 1, Anchor::Middle);
        self.vtext(16.0, (t + b) / 2.0, ylabel);
    }

    /// One legend row per item, below the x axis label.
    fn legend(&mut self, items: &[(Rgb, &str, char)]) {
        let x = AREA.0;
        for (i, (c, label, mark)) in items.iter().enumerate() {
            let y = AREA.3 + 46.0 + 14.0 * i as f64;
            match mark {
                'o' => self.ops.push(Op::Circle(x + 7.0, y, 3.5, *c)),
                'x' => self.ops.push(Op::Cross(x + 7.0, y, 3.5, *c)),
                '-' => self.line(x, y, x + 14.0, y, *c, true),
                _ => self.line(x, y, x + 14.0, y, *c, false),
            }
            self.ops.push(Op::Text(
                x + 20.0,
                y + 4.0,
                label.to_string(),
                1,
                Anchor::Start,
                false,
            ));
        }
    }

    fn svg(&self) -> String {
        let mut s = format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" font-family=\"monospace\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
        for op in &self.ops {
            let _ = match op {
                Op::Line(x0, y0, x1, y1, c, d) => writeln!(s, "<line x1=\"{x0:.1}\" y1=\"{y0:.1}\" x2=\"{x1:.1}\" y2=\"{y1:.1}\" stroke=\"{}\"{}/>", css(*c), if *d { " stroke-dasharray=\"6 4\"" } else { "" }),
                Op::Circle(x, y, r, c) => writeln!(s, "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{r}\" fill=\"none\" stroke=\"{}\"/>", css(*c)),
                Op::Cross(x, y, r, c) => writeln!(s, "<path d=\"M{:.1} {:.1}L{:.1} {:.1}M{:.1} {:.1}L{:.1} {:.1}\" stroke=\"{}\"/>", x - r, y - r, x + r, y + r, x - r, y + r, x + r, y - r, css(*c)),
                Op::Dot(x, y, c) => writeln!(s, "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"1.5\" height=\"1.5\" fill=\"{}\"/>", x - 0.75, y - 0.75, css(*c)),
                Op::Text(x, y, t, scale, a, vertical) => {
                    let anchor = match a { Anchor::Start => "start", Anchor::Middle => "middle", Anchor::End => "end" };
                    let rot = if *vertical { format!(" transform=\"rotate(-90 {x:.1} {y:.1})\"") } else { String::new() };
                    writeln!(s, "<text x=\"{x:.1}\" y=\"{y:.1}\" font-size=\"{}\" text-anchor=\"{anchor}\"{rot}>{}</text>", 10 * scale + 1, xml(t))
                }
            };
        }
        s.push_str("</svg>\n");
        s
    }

    fn png(&self) -> Result<Vec<u8>, RuntimeError> {
        let (w, h) = (W as u32, H as u32);
        let mut img = image::RgbImage::from_pixel(w, h, image::Rgb([255, 255, 255]));
        let mut put = |x: i64, y: i64, c: Rgb| {
            if x >= 0 && y >= 0 && (x as u32) < w && (y as u32) < h {
                img.put_pixel(x as u32, y as u32, image::Rgb(c));
            }
        };
        for op in &self.ops {
            match op {
                Op::Line(x0, y0, x1, y1, c, d) => {
                    let n = ((x1 - x0).abs().max((y1 - y0).abs()).ceil() as i64).max(1);
                    for i in 0..=n {
                        if *d && (i % 10) >= 6 {
                            continue;
                        }
                        let f = i as f64 / n as f64;
                        put(
                            (x0 + f * (x1 - x0)).round() as i64,
                            (y0 + f * (y1 - y0)).round() as i64,
                            *c,
                        );
                    }
                }
                Op::Circle(x, y, r, c) => {
                    for i in 0..32 {
                        let a = f64::from(i) * std::f64::consts::TAU / 32.0;
                        put(
                            (x + r * a.cos()).round() as i64,
                            (y + r * a.sin()).round() as i64,
                            *c,
                        );
                    }
                }
                Op::Cross(x, y, r, c) => {
                    let k = r.round() as i64;
                    for i in -k..=k {
                        put(x.round() as i64 + i, y.round() as i64 + i, *c);
                        put(x.round() as i64 + i, y.round() as i64 - i, *c);
                    }
                }
                Op::Dot(x, y, c) => {
                    put(x.round() as i64, y.round() as i64, *c);
                    put(x.round() as i64 + 1, y.round() as i64, *c);
                }
                Op::Text(x, y, t, scale, a, vertical) => {
                    let s = i64::from(*scale);
                    let len = t.chars().count() as i64 * 8 * s;
                    let shift = match a {
                        Anchor::Start => 0,
                        Anchor::Middle => len / 2,
                        Anchor::End => len,
                    };
                    for (k, ch) in t.chars().enumerate() {
                        let glyph = font8x8::legacy::BASIC_LEGACY
                            .get(ch as usize)
                            .copied()
                            .unwrap_or([0; 8]);
                        for (row, bits) in glyph.iter().enumerate() {
                            for col in 0..8 {
                                if bits >> col & 1 == 0 {
                                    continue;
                                }
                                for dy in 0..s {
                                    for dx in 0..s {
                                        let u = k as i64 * 8 * s + col * s + dx - shift;
                                        let v = row as i64 * s + dy - 8 * s + 2;
                                        if *vertical {
                                            put(x.round() as i64 + v, y.round() as i64 - u, BLACK);
                                        } else {
                                            put(x.round() as i64 + u, y.round() as i64 + v, BLACK);
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png)
            .map_err(|e| RuntimeError::Calibration(format!("PNG encoding: {e}")))?;
        Ok(out.into_inner())
    }
}

/// Data -> pixel mapping of the plot area.
struct Map {
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
}

impl Map {
    fn x(&self, v: f64) -> f64 {
        AREA.0 + (AREA.2 - AREA.0) * (v - self.x0) / (self.x1 - self.x0).max(1e-12)
    }
    fn y(&self, v: f64) -> f64 {
        AREA.3 - (AREA.3 - AREA.1) * (v - self.y0) / (self.y1 - self.y0).max(1e-12)
    }
}

fn ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    (0..=n)
        .map(|i| lo + (hi - lo) * i as f64 / n as f64)
        .collect()
}

/// A threshold as text (`inf` for replay-everything).
fn tstr(t: f64) -> String {
    if t.is_finite() {
        format!("{t:.4}")
    } else {
        "inf".into()
    }
}

/// What every plot of one (model, variant) shows in its title and legend.
pub struct PlotInfo<'a> {
    /// Model name.
    pub model: &'a str,
    /// Variant name.
    pub variant: &'a str,
    /// Dataset and split, e.g. `mnist validation, 10000 images`.
    pub data: &'a str,
    /// The chosen thresholds, per target.
    pub choices: &'a [TargetChoice],
}

fn threshold_lines(
    c: &mut Canvas,
    m: &Map,
    choices: &[TargetChoice],
    legend: &mut Vec<(Rgb, String, char)>,
) {
    for (i, ch) in choices.iter().enumerate() {
        let col = if i == 0 { ORANGE } else { PURPLE };
        let y = if ch.threshold.is_finite() {
            m.y(ch.threshold.min(m.y1))
        } else {
            m.y(m.y1)
        };
        c.line(AREA.0, y, AREA.2, y, col, true);
        legend.push((
            col,
            format!(
                "t={} (target {}, P_r {:.2}%)",
                tstr(ch.threshold),
                ch.target,
                100.0 * ch.replay_rate
            ),
            '-',
        ));
    }
}

/// The paper's Fig. 3: confidence of the wrong speculative outputs by input index.
pub fn fig3(records: &[Record], info: &PlotInfo<'_>) -> Figure {
    let mut c = Canvas::new();
    let n = records.len().max(1) as f64;
    let m = Map {
        x0: 0.0,
        x1: n,
        y0: 0.0,
        y1: 1.0,
    };
    c.text(
        W / 2.0,
        22.0,
        &format!(
            "Fig.3 {} {}: confidence of wrong outputs",
            info.model, info.variant
        ),
        1,
        Anchor::Middle,
    );
    c.text(W / 2.0, 36.0, info.data, 1, Anchor::Middle);
    let xt = ticks(0.0, n, 5);
    c.axes(
        &m,
        &xt,
        &ticks(0.0, 1.0, 5),
        "input index in the dataset",
        "speculative confidence",
        &|v| format!("{v:.0}"),
        &|v| format!("{v:.2}"),
    );
    let t0 = info.choices.first().map_or(0.0, |ch| ch.threshold);
    let (mut cc, mut cb, mut uc, mut ub) = (0, 0, 0, 0);
    for (i, r) in records.iter().enumerate() {
        let (x, y) = (m.x(i as f64), m.y(f64::from(r.confidence)));
        let below = f64::from(r.confidence) < t0;
        match r.outcome() {
            Outcome::Correctable => {
                cc += 1;
                cb += usize::from(below);
                c.ops.push(Op::Circle(x, y, 3.0, BLUE));
            }
            Outcome::Uncorrectable => {
                uc += 1;
                ub += usize::from(below);
                c.ops.push(Op::Cross(x, y, 3.0, RED));
            }
            Outcome::Correct => {}
        }
    }
    let mut legend = vec![
        (
            BLUE,
            format!("correctable (spec wrong, orig right): {cc}, {cb} below t"),
            'o',
        ),
        (
            RED,
            format!("uncorrectable (both wrong): {uc}, {ub} below t"),
            'x',
        ),
    ];
    threshold_lines(&mut c, &m, info.choices, &mut legend);
    let items: Vec<(Rgb, &str, char)> = legend
        .iter()
        .map(|(a, b, k)| (*a, b.as_str(), *k))
        .collect();
    c.legend(&items);
    Figure(c)
}

/// The paper's Fig. 4: all inputs sorted by confidence, with the threshold.
pub fn fig4(records: &[Record], info: &PlotInfo<'_>) -> Figure {
    let mut c = Canvas::new();
    let mut sorted: Vec<&Record> = records.iter().collect();
    sorted.sort_by(|a, b| a.confidence.total_cmp(&b.confidence));
    let n = sorted.len().max(1) as f64;
    let m = Map {
        x0: 0.0,
        x1: 1.0,
        y0: 0.0,
        y1: 1.0,
    };
    c.text(
        W / 2.0,
        22.0,
        &format!(
            "Fig.4 {} {}: all inputs sorted by confidence",
            info.model, info.variant
        ),
        1,
        Anchor::Middle,
    );
    c.text(W / 2.0, 36.0, info.data, 1, Anchor::Middle);
    c.axes(
        &m,
        &ticks(0.0, 1.0, 5),
        &ticks(0.0, 1.0, 5),
        "fraction of inputs, sorted from low to high confidence",
        "speculative confidence",
        &|v| format!("{:.0}%", 100.0 * v),
        &|v| format!("{v:.2}"),
    );
    // The sorted confidences as a line (at most ~600 segments), then the
    // wrong outputs on it: uncorrectable as red dots, correctable as circles.
    let step = (sorted.len() / 600).max(1);
    let mut prev: Option<(f64, f64)> = None;
    for (i, r) in sorted.iter().enumerate() {
        if i % step != 0 && i + 1 != sorted.len() {
            continue;
        }
        let xy = (m.x(i as f64 / n), m.y(f64::from(r.confidence)));
        if let Some(q) = prev {
            c.line(q.0, q.1, xy.0, xy.1, GREEN, false);
        }
        prev = Some(xy);
    }
    for (i, r) in sorted.iter().enumerate() {
        let (x, y) = (m.x(i as f64 / n), m.y(f64::from(r.confidence)));
        if r.outcome() == Outcome::Uncorrectable {
            c.ops.push(Op::Dot(x, y + 3.0, RED));
        }
    }
    for (i, r) in sorted.iter().enumerate() {
        let (x, y) = (m.x(i as f64 / n), m.y(f64::from(r.confidence)));
        if r.outcome() == Outcome::Correctable {
            c.ops.push(Op::Circle(x, y, 2.5, BLUE));
        }
    }
    let count = |o: Outcome| records.iter().filter(|r| r.outcome() == o).count();
    let mut legend = vec![
        (
            GREEN,
            format!(
                "confidence of every input, sorted ({} correct)",
                count(Outcome::Correct)
            ),
            '_',
        ),
        (
            BLUE,
            format!("correctable ({})", count(Outcome::Correctable)),
            'o',
        ),
        (
            RED,
            format!(
                "uncorrectable ({}), dots just below the line",
                count(Outcome::Uncorrectable)
            ),
            'x',
        ),
    ];
    threshold_lines(&mut c, &m, info.choices, &mut legend);
    for (i, ch) in info.choices.iter().enumerate() {
        let col = if i == 0 { ORANGE } else { PURPLE };
        let x = m.x(ch.replay_rate);
        c.line(x, AREA.1, x, AREA.3, col, true);
        c.text(
            x + 4.0,
            AREA.1 + 12.0 + 12.0 * i as f64,
            &format!("{:.2}% replayed", 100.0 * ch.replay_rate),
            1,
            Anchor::Start,
        );
    }
    let items: Vec<(Rgb, &str, char)> = legend
        .iter()
        .map(|(a, b, k)| (*a, b.as_str(), *k))
        .collect();
    c.legend(&items);
    Figure(c)
}

/// Final accuracy vs replay rate over every threshold, with the chosen points.
pub fn replay_curve(
    points: &[CurvePoint],
    images: u64,
    original_correct: u64,
    info: &PlotInfo<'_>,
) -> Figure {
    let mut c = Canvas::new();
    let n = images.max(1) as f64;
    let a0 = original_correct as f64 / n;
    let max_rate = info
        .choices
        .iter()
        .map(|ch| ch.replay_rate)
        .fold(0.0, f64::max);
    let x1 = (2.5 * max_rate).clamp(0.05, 1.0);
    let accs: Vec<f64> = points.iter().map(|p| p.final_correct as f64 / n).collect();
    let lo = points
        .first()
        .map_or(a0, |p| p.final_correct as f64 / n)
        .min(a0);
    let hi = accs.iter().copied().fold(a0, f64::max);
    let pad = ((hi - lo) * 0.1).max(0.002);
    let m = Map {
        x0: 0.0,
        x1,
        y0: lo - pad,
        y1: hi + pad,
    };
    c.text(
        W / 2.0,
        22.0,
        &format!(
            "{} {}: final top-1 vs replay rate (x axis cut at {:.0}%)",
            info.model,
            info.variant,
            100.0 * x1
        ),
        1,
        Anchor::Middle,
    );
    c.text(W / 2.0, 36.0, info.data, 1, Anchor::Middle);
    c.axes(
        &m,
        &ticks(0.0, x1, 5),
        &ticks(m.y0, m.y1, 5),
        "replay rate P_r (fraction of inputs replayed on the original)",
        "final top-1",
        &|v| format!("{:.1}%", 100.0 * v),
        &|v| format!("{:.2}%", 100.0 * v),
    );
    let mut prev: Option<(f64, f64)> = None;
    for p in points {
        let r = p.replayed as f64 / n;
        if r > x1 {
            break;
        }
        let xy = (m.x(r), m.y(p.final_correct as f64 / n));
        match prev {
            // Sub-pixel steps add nothing but file size.
            Some(q) if (q.0 - xy.0).abs() < 0.5 && (q.1 - xy.1).abs() < 0.5 => continue,
            Some(q) => c.line(q.0, q.1, xy.0, xy.1, BLUE, false),
            None => {}
        }
        prev = Some(xy);
    }
    c.line(AREA.0, m.y(a0), AREA.2, m.y(a0), GREY, true);
    let mut legend = vec![
        (BLUE, "final top-1 for every threshold".to_string(), '_'),
        (GREY, format!("original top-1 A0 = {:.2}%", 100.0 * a0), '-'),
    ];
    for (i, ch) in info.choices.iter().enumerate() {
        let col = if i == 0 { ORANGE } else { PURPLE };
        let (x, y) = (m.x(ch.replay_rate), m.y(ch.final_top1));
        c.ops.push(Op::Circle(x, y, 5.0, col));
        c.line(
            AREA.0,
            m.y(ch.target * a0),
            AREA.2,
            m.y(ch.target * a0),
            col,
            true,
        );
        legend.push((
            col,
            format!(
                "target {} x A0: t={}, P_r {:.2}%, top-1 {:.2}%",
                ch.target,
                tstr(ch.threshold),
                100.0 * ch.replay_rate,
                100.0 * ch.final_top1
            ),
            'o',
        ));
    }
    let items: Vec<(Rgb, &str, char)> = legend
        .iter()
        .map(|(a, b, k)| (*a, b.as_str(), *k))
        .collect();
    c.legend(&items);
    Figure(c)
}

/// A finished figure.
pub struct Figure(Canvas);

impl Figure {
    /// The SVG text.
    pub fn svg(&self) -> String {
        self.0.svg()
    }

    /// The PNG bytes (RGB).
    pub fn png(&self) -> Result<Vec<u8>, RuntimeError> {
        self.0.png()
    }

    /// Writes `<stem>.svg` and `<stem>.png` into `dir` (created if needed).
    pub fn write(&self, dir: &Path, stem: &str) -> Result<(), RuntimeError> {
        std::fs::create_dir_all(dir).map_err(|e| RuntimeError::io(dir, e))?;
        let svg = dir.join(format!("{stem}.svg"));
        std::fs::write(&svg, self.svg()).map_err(|e| RuntimeError::io(&svg, e))?;
        let png = dir.join(format!("{stem}.png"));
        std::fs::write(&png, self.png()?).map_err(|e| RuntimeError::io(&png, e))
    }
}

/// Writes the three plots of one variant into `dir`:
/// `<model>_<variant>_fig3`, `_fig4` and `_curve` (`.svg` and `.png`).
pub fn write_all(dir: &Path, records: &[Record], info: &PlotInfo<'_>) -> Result<(), RuntimeError> {
    let points = crate::curve(records)?;
    let orig = records.iter().filter(|r| r.original_correct).count() as u64;
    let stem = format!("{}_{}", info.model, info.variant);
    fig3(records, info).write(dir, &format!("{stem}_fig3"))?;
    fig4(records, info).write(dir, &format!("{stem}_fig4"))?;
    replay_curve(&points, records.len() as u64, orig, info).write(dir, &format!("{stem}_curve"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plots_render_to_svg_and_png() {
        let rs: Vec<Record> = (0..200)
            .map(|i| Record {
                confidence: (i as f32 / 200.0).max(0.1),
                speculative_correct: i > 20,
                original_correct: i % 7 != 0,
            })
            .collect();
        let ch = crate::choose_threshold(&rs, 1.0).unwrap();
        let choices = [TargetChoice::from_choice(&ch)];
        let info = PlotInfo {
            model: "m",
            variant: "accurate",
            data: "synthetic",
            choices: &choices,
        };
        let svg = fig3(&rs, &info).svg();
        assert!(
            svg.contains("correctable")
                && svg.contains("<circle")
                && svg.contains("stroke-dasharray")
        );
        let png = fig4(&rs, &info).png().unwrap();
        let img = image::load_from_memory(&png).unwrap();
        assert_eq!((img.width(), img.height()), (W as u32, H as u32));
        // Text is drawn into the PNG: the title row has dark pixels.
        let rgb = img.to_rgb8();
        assert!((0..W as u32).any(|x| rgb.get_pixel(x, 20).0 == [0, 0, 0]));
        let pts = crate::curve(&rs).unwrap();
        assert!(replay_curve(&pts, 200, 171, &info)
            .svg()
            .contains("final top-1"));
    }
}
