//! Progress as plain lines on stderr, for logs. indicatif draws nothing when stderr is
//! not a terminal, so a long run under `nohup`, in CI or with `2> log` would be silent
//! until it ends; commands print these lines there instead of the bar. Shared by
//! `sieve-design` and `sieve` (`design`, `accuracy`, `calibrate`) through `#[path]`.

use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Help text of the `--progress-secs` option of every command that has one.
pub const PROGRESS_SECS_HELP: &str = "When stderr is not a terminal (a log file, a pipe, CI), \
print a plain progress line at most every this many seconds instead of the progress bar \
(0 = at every step)";

/// Plain progress lines: every phase (`total` 0), the first counted update, the last one
/// (`done >= total`) and otherwise at most one per `every`.
pub struct PlainProgress {
    /// The command, first on every line.
    label: &'static str,
    /// What `done` and `total` count.
    unit: &'static str,
    /// Whether `total` is an upper bound (the estimate is then an upper one).
    upper: bool,
    every: Duration,
    start: Instant,
    /// When the last line was printed and whether it named a phase (`None` before the
    /// first).
    last: Mutex<Option<(Instant, bool)>>,
}

impl PlainProgress {
    /// Lines for `label` counting `unit`, at most one per `secs` seconds, if stderr is
    /// not a terminal (`None` when it is: the caller's bar draws there). Refuses a
    /// negative or non-finite `secs`, naming `--progress-secs`.
    pub fn for_stderr(
        label: &'static str,
        unit: &'static str,
        upper: bool,
        secs: f64,
    ) -> Result<Option<Self>> {
        if !(secs >= 0.0 && secs.is_finite()) {
            bail!("--progress-secs must be a finite number >= 0, got {secs}");
        }
        Ok((!std::io::stderr().is_terminal()).then(|| Self {
            label,
            unit,
            upper,
            every: Duration::from_secs_f64(secs),
            start: Instant::now(),
            last: Mutex::new(None),
        }))
    }

    /// Prints a line if one is due. `total` 0: nothing is counted yet; `what` names a
    /// phase, and every phase gets its line.
    pub fn update(&self, done: u64, total: u64, what: &str) {
        let now = Instant::now();
        let mut last = match self.last.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if !due(*last, now, self.every, done, total) {
            return;
        }
        *last = Some((now, total == 0));
        eprintln!(
            "{}",
            self.line(now.duration_since(self.start), done, total, what)
        );
    }

    /// The closing line.
    pub fn finish(&self, ok: bool) {
        let how = if ok { "finished" } else { "stopped" };
        eprintln!(
            "{} {how} after {}",
            self.label,
            hms(self.start.elapsed().as_secs_f64())
        );
    }

    /// One line: elapsed time, `done` of `total` units, and an estimate of the time
    /// left from the rate so far.
    fn line(&self, elapsed: Duration, done: u64, total: u64, what: &str) -> String {
        if total == 0 {
            return format!(
                "{} {}: {}",
                self.label,
                hms(elapsed.as_secs_f64()),
                shorten(what, 100)
            );
        }
        let pct = 100.0 * done as f64 / total as f64;
        let eta = if done > 0 && total > done {
            let left = elapsed.as_secs_f64() * (total - done) as f64 / done as f64;
            let bound = if self.upper { "<= " } else { "" };
            format!(", eta {bound}{}", hms(left))
        } else {
            String::new()
        };
        let what = if what.is_empty() {
            String::new()
        } else {
            format!(": {}", shorten(what, 100))
        };
        format!(
            "{} {} {done}/{total} {} ({pct:.1}%){eta}{what}",
            self.label,
            hms(elapsed.as_secs_f64()),
            self.unit
        )
    }
}

/// The terminal's progress bar of `len` steps drawn with `template`, or a hidden one
/// (it still keeps its position and message) when `plain` lines go to stderr instead.
pub fn bar(plain: &Option<PlainProgress>, len: u64, template: &str) -> ProgressBar {
    let bar = if plain.is_some() {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(len)
    };
    bar.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Whether a line is due: every phase (`total` 0), the first line and the first counted
/// one after a phase, the last one (`done >= total`), else one per `every` since `last`
/// (when the last line was printed, and whether it named a phase).
fn due(
    last: Option<(Instant, bool)>,
    now: Instant,
    every: Duration,
    done: u64,
    total: u64,
) -> bool {
    match last {
        None | Some((_, true)) => true,
        Some(_) if total == 0 => true,
        Some((t, false)) => done >= total || now.duration_since(t) >= every,
    }
}

/// `s` itself if it has at most `max` characters, else its start and its end (where a
/// tensor's format is) around `...`: ONNX names from converters run to 200 characters.
fn shorten(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_string();
    }
    let tail = max / 2;
    let head = max.saturating_sub(tail + 3);
    let start: String = s.chars().take(head).collect();
    let end: String = s.chars().skip(n - tail).collect();
    format!("{start}...{end}")
}

/// `h:mm:ss`.
fn hms(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(label: &'static str, unit: &'static str, upper: bool) -> PlainProgress {
        PlainProgress {
            label,
            unit,
            upper,
            every: Duration::ZERO,
            start: Instant::now(),
            last: Mutex::new(None),
        }
    }

    #[test]
    fn plain_lines_give_elapsed_count_and_eta() {
        let p = progress("design", "evaluations", true);
        let l = p.line(Duration::from_secs(125), 10, 40, "conv1 s1e3m2");
        assert_eq!(
            l,
            "design 0:02:05 10/40 evaluations (25.0%), eta <= 0:06:15: conv1 s1e3m2"
        );
        // No estimate before the first step or after the last.
        assert_eq!(
            p.line(Duration::from_secs(3), 0, 40, "baseline"),
            "design 0:00:03 0/40 evaluations (0.0%): baseline"
        );
        assert_eq!(
            p.line(Duration::from_secs(3725), 40, 40, "done"),
            "design 1:02:05 40/40 evaluations (100.0%): done"
        );
        assert_eq!(hms(-1.0), "0:00:00");
        // Nothing counted yet: the phase alone.
        assert_eq!(
            p.line(Duration::from_secs(7), 0, 0, "baseline"),
            "design 0:00:07: baseline"
        );
        // An exact total: a plain estimate; nothing to say: no colon.
        let a = progress("accuracy", "images", false);
        assert_eq!(
            a.line(Duration::from_secs(10), 250, 1000, ""),
            "accuracy 0:00:10 250/1000 images (25.0%), eta 0:00:30"
        );
        // Long names keep their start and their end (the format), on char boundaries.
        let long = format!("{}é{} s1e4m3", "a".repeat(60), "b".repeat(150));
        let s = shorten(&long, 100);
        assert_eq!(s.chars().count(), 100);
        assert!(s.starts_with(&"a".repeat(47)) && s.ends_with("bbb s1e4m3"));
        assert!(s.contains("..."));
        assert_eq!(shorten("conv1 s1e3m2", 100), "conv1 s1e3m2");
        let l = p.line(Duration::from_secs(1), 1, 2, &long);
        assert!(l.ends_with("bbb s1e4m3") && l.len() < 160, "{l}");
    }

    #[test]
    fn phases_and_the_first_count_always_print() {
        let (t0, every) = (Instant::now(), Duration::from_secs(30));
        let soon = t0 + Duration::from_secs(1);
        // Nothing printed yet; a phase after a counted line; a count after a phase.
        assert!(due(None, t0, every, 0, 10));
        assert!(due(Some((t0, false)), soon, every, 0, 0));
        assert!(due(Some((t0, true)), soon, every, 0, 10));
        // Counted lines: not within `every`, unless the last one.
        assert!(!due(Some((t0, false)), soon, every, 3, 10));
        assert!(due(Some((t0, false)), soon, every, 10, 10));
        assert!(due(Some((t0, false)), t0 + every, every, 3, 10));
    }

    #[test]
    fn plain_lines_hide_the_bar() {
        let b = bar(&Some(progress("x", "y", false)), 7, "{pos}/{len}");
        assert!(b.is_hidden());
        b.set_message("variant");
        assert_eq!(b.message(), "variant");
        // No plain lines: the bar of `len` steps (hidden or not depends on the terminal).
        assert_eq!(bar(&None, 7, "{pos}/{len}").length(), Some(7));
        // A template indicatif refuses falls back to the default bar.
        assert_eq!(bar(&None, 3, "{bad").length(), Some(3));
    }

    #[test]
    fn bad_intervals_are_refused() {
        for bad in [-1.0, f64::NAN, f64::INFINITY] {
            let e = PlainProgress::for_stderr("x", "y", false, bad).err();
            assert!(
                e.is_some_and(|e| e.to_string().contains("--progress-secs")),
                "{bad}"
            );
        }
        assert!(PlainProgress::for_stderr("x", "y", false, 0.0).is_ok());
    }
}
