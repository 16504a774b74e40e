//! Per-model counters and histograms, rendered in the Prometheus text exposition format
//! (written by hand: a handful of atomics needs no metrics framework).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
];
const BATCH_BUCKETS: [f64; 8] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

/// A Prometheus histogram with fixed buckets; lock-free.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    /// Sum of observations in millionths of the unit.
    sum_micro: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_micro: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Record one observation.
    pub fn observe(&self, v: f64) {
        if let Some(i) = self.bounds.iter().position(|&b| v <= b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_micro
            .fetch_add((v.max(0.0) * 1e6) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Number of observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, model: &str) {
        let mut cumulative = 0;
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            cumulative += c.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{model=\"{model}\",le=\"{b}\"}} {cumulative}"
            );
        }
        let count = self.count();
        let _ = writeln!(
            out,
            "{name}_bucket{{model=\"{model}\",le=\"+Inf\"}} {count}"
        );
        let sum = self.sum_micro.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{model=\"{model}\"}} {sum}");
        let _ = writeln!(out, "{name}_count{{model=\"{model}\"}} {count}");
    }
}

/// The metrics of one served model.
#[derive(Debug)]
pub struct ModelMetrics {
    /// Inference requests received.
    pub requests: AtomicU64,
    /// Inference requests answered with an error.
    pub failures: AtomicU64,
    /// Requests refused because the queue was full.
    pub rejected: AtomicU64,
    /// Requests waiting in the queue now.
    pub queue_depth: AtomicI64,
    /// Requests per executed batch.
    pub batch_size: Histogram,
    /// End-to-end request latency in the handler, seconds.
    pub request_seconds: Histogram,
    /// Time from enqueue to the start of execution, seconds.
    pub queue_seconds: Histogram,
    /// Model execution time per batch, seconds.
    pub compute_seconds: Histogram,
}

impl Default for ModelMetrics {
    fn default() -> Self {
        ModelMetrics {
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            queue_depth: AtomicI64::new(0),
            batch_size: Histogram::new(&BATCH_BUCKETS),
            request_seconds: Histogram::new(&LATENCY_BUCKETS),
            queue_seconds: Histogram::new(&LATENCY_BUCKETS),
            compute_seconds: Histogram::new(&LATENCY_BUCKETS),
        }
    }
}

impl ModelMetrics {
    /// Record the outcome of one request that took `elapsed`.
    pub fn record(&self, ok: bool, elapsed: Duration) {
        if !ok {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        self.request_seconds.observe(elapsed.as_secs_f64());
    }
}

/// Reads one value of a model's metrics.
type Getter<T> = fn(&ModelMetrics) -> T;
/// Picks one histogram of a model's metrics.
type HistGetter = fn(&ModelMetrics) -> &Histogram;

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Render the metrics of all models (name, metrics) in Prometheus text format 0.0.4.
pub fn render<'a>(models: impl IntoIterator<Item = (&'a str, &'a ModelMetrics)> + Clone) -> String {
    let mut out = String::new();
    let counters: [(&str, &str, Getter<i64>); 4] = [
        (
            "sieve_requests_total",
            "Inference requests received.",
            |m| m.requests.load(Ordering::Relaxed) as i64,
        ),
        (
            "sieve_request_failures_total",
            "Inference requests answered with an error.",
            |m| m.failures.load(Ordering::Relaxed) as i64,
        ),
        (
            "sieve_requests_rejected_total",
            "Requests refused because the queue was full.",
            |m| m.rejected.load(Ordering::Relaxed) as i64,
        ),
        (
            "sieve_queue_depth",
            "Requests waiting in the model's queue.",
            |m| m.queue_depth.load(Ordering::Relaxed),
        ),
    ];
    for (name, help, get) in counters {
        let kind = if name.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        };
        family(&mut out, name, kind, help);
        for (model, m) in models.clone() {
            let _ = writeln!(out, "{name}{{model=\"{model}\"}} {}", get(m));
        }
    }
    let hists: [(&str, &str, HistGetter); 4] = [
        (
            "sieve_batch_size",
            "Requests merged into one model execution.",
            |m| &m.batch_size,
        ),
        (
            "sieve_request_duration_seconds",
            "End-to-end inference request latency.",
            |m| &m.request_seconds,
        ),
        (
            "sieve_queue_duration_seconds",
            "Time a request waited before its batch ran.",
            |m| &m.queue_seconds,
        ),
        (
            "sieve_compute_duration_seconds",
            "Model execution time per batch.",
            |m| &m.compute_seconds,
        ),
    ];
    for (name, help, get) in hists {
        family(&mut out, name, "histogram", help);
        for (model, m) in models.clone() {
            get(m).render(&mut out, name, model);
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_cumulative_buckets() {
        let m = ModelMetrics::default();
        m.requests.fetch_add(3, Ordering::Relaxed);
        m.batch_size.observe(1.0);
        m.batch_size.observe(3.0);
        m.batch_size.observe(1000.0);
        let text = render([("lenet", &m)]);
        assert!(
            text.contains("sieve_requests_total{model=\"lenet\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("sieve_batch_size_bucket{model=\"lenet\",le=\"1\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("sieve_batch_size_bucket{model=\"lenet\",le=\"4\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("sieve_batch_size_bucket{model=\"lenet\",le=\"+Inf\"} 3"),
            "{text}"
        );
        assert!(text.contains("# TYPE sieve_queue_depth gauge"), "{text}");
    }
}
