//! Dynamic batching: a bounded queue per model and worker threads that merge requests
//! arriving together into one model execution (max batch size, max queueing delay — the
//! scheme of Triton's dynamic batcher), off the async runtime.

use crate::backend::InferenceBackend;
use crate::error::{Result, ServeError};
use crate::metrics::ModelMetrics;
use crate::tensor::InferTensor;
use bytes::{Bytes, BytesMut};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Batching and queueing settings of one model.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchConfig {
    /// Most rows (first-dimension entries) merged into one execution; 1 disables batching.
    pub max_batch: usize,
    /// Longest time the first request of a batch waits for others.
    pub max_delay: Duration,
    /// Requests that may wait in the queue; more are refused (HTTP 503 / `RESOURCE_EXHAUSTED`).
    pub queue_capacity: usize,
    /// Worker threads executing batches for this model.
    pub workers: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_batch: 8,
            max_delay: Duration::from_millis(2),
            queue_capacity: 256,
            workers: 1,
        }
    }
}

type Reply = oneshot::Sender<Result<Vec<InferTensor>>>;

struct Job {
    inputs: Vec<InferTensor>,
    deadline: Instant,
    timeout: Duration,
    enqueued: Instant,
    reply: Reply,
}

impl Job {
    fn rows(&self) -> usize {
        self.inputs
            .first()
            .and_then(|t| t.shape.first().copied())
            .unwrap_or(1)
    }

    /// Same trailing dimensions on every input: the two can share a batch.
    fn compatible(&self, other: &Job) -> bool {
        self.inputs.len() == other.inputs.len()
            && self
                .inputs
                .iter()
                .zip(&other.inputs)
                .all(|(a, b)| a.shape.len() == b.shape.len() && a.shape[1..] == b.shape[1..])
    }
}

struct Shared {
    model: String,
    backend: Arc<dyn InferenceBackend>,
    metrics: Arc<ModelMetrics>,
    config: BatchConfig,
    batchable: bool,
    /// Receiver plus one request taken from it that did not fit the previous batch.
    queue: Mutex<(Receiver<Job>, Option<Job>)>,
}

/// The queue and workers of one model. Dropping it (or [`Batcher::close`]) lets the workers
/// finish what is queued and exit.
pub struct Batcher {
    shared: Arc<Shared>,
    tx: Mutex<Option<SyncSender<Job>>>,
    workers: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Batcher {
    /// Start the worker threads of `model`.
    pub fn start(
        model: String,
        backend: Arc<dyn InferenceBackend>,
        metrics: Arc<ModelMetrics>,
        config: BatchConfig,
    ) -> Result<Batcher> {
        if config.queue_capacity == 0 || config.workers == 0 || config.max_batch == 0 {
            return Err(ServeError::Config(format!(
                "model '{model}': queue capacity, workers and max batch must be at least 1"
            )));
        }
        let (tx, rx) = mpsc::sync_channel(config.queue_capacity);
        let batchable = backend.metadata().batchable();
        let shared = Arc::new(Shared {
            model: model.clone(),
            backend,
            metrics,
            config: config.clone(),
            batchable,
            queue: Mutex::new((rx, None)),
        });
        let mut workers = Vec::new();
        for i in 0..config.workers {
            let s = shared.clone();
            let handle = std::thread::Builder::new()
                .name(format!("sieve-{model}-{i}"))
                .spawn(move || worker(&s))
                .map_err(|e| ServeError::Io {
                    context: format!("starting worker thread for model '{model}'"),
                    source: e,
                })?;
            workers.push(handle);
        }
        Ok(Batcher {
            shared,
            tx: Mutex::new(Some(tx)),
            workers: Mutex::new(workers),
        })
    }

    /// Queue a validated request; the receiver yields its outputs. Fails at once with
    /// [`ServeError::QueueFull`] when the queue is full and [`ServeError::ShuttingDown`] after
    /// [`Batcher::close`]. A request still queued when `timeout` has passed is answered with
    /// [`ServeError::DeadlineExceeded`] without running.
    pub fn submit(
        &self,
        inputs: Vec<InferTensor>,
        timeout: Duration,
    ) -> Result<oneshot::Receiver<Result<Vec<InferTensor>>>> {
        let (reply, rx) = oneshot::channel();
        let now = Instant::now();
        let job = Job {
            inputs,
            deadline: now + timeout,
            timeout,
            enqueued: now,
            reply,
        };
        let guard = self.tx.lock().map_err(|_| ServeError::ShuttingDown)?;
        let Some(tx) = guard.as_ref() else {
            return Err(ServeError::ShuttingDown);
        };
        let m = &self.shared.metrics;
        m.queue_depth.fetch_add(1, Ordering::Relaxed);
        match tx.try_send(job) {
            Ok(()) => Ok(rx),
            Err(e) => {
                m.queue_depth.fetch_sub(1, Ordering::Relaxed);
                match e {
                    TrySendError::Full(_) => {
                        m.rejected.fetch_add(1, Ordering::Relaxed);
                        Err(ServeError::QueueFull {
                            model: self.shared.model.clone(),
                            capacity: self.shared.config.queue_capacity,
                        })
                    }
                    TrySendError::Disconnected(_) => Err(ServeError::ShuttingDown),
                }
            }
        }
    }

    /// Refuse new requests; the workers finish the queued ones, then exit. Blocks until they
    /// have (call it from a blocking context).
    pub fn close(&self) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        let handles = match self.workers.lock() {
            Ok(mut w) => std::mem::take(&mut *w),
            Err(_) => return,
        };
        for h in handles {
            let _ = h.join();
        }
    }
}

impl Drop for Batcher {
    fn drop(&mut self) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
    }
}

fn worker(s: &Shared) {
    while let Some(jobs) = next_batch(s) {
        run_batch(s, jobs);
    }
}

/// Take the next batch: one request, plus whatever compatible requests arrive within
/// `max_delay` up to `max_batch` rows. `None` when the queue is closed and empty.
fn next_batch(s: &Shared) -> Option<Vec<Job>> {
    let mut guard = s.queue.lock().ok()?;
    let (rx, pending) = &mut *guard;
    let first = match pending.take() {
        Some(j) => j,
        None => rx.recv().ok()?,
    };
    let mut rows = first.rows();
    let mut jobs = vec![first];
    if s.batchable && s.config.max_batch > 1 {
        let until = Instant::now() + s.config.max_delay;
        while rows < s.config.max_batch {
            let wait = until.saturating_duration_since(Instant::now());
            let next = if wait.is_zero() {
                rx.try_recv().ok()
            } else {
                rx.recv_timeout(wait).ok()
            };
            let Some(job) = next else {
                break;
            };
            if jobs[0].compatible(&job) && rows + job.rows() <= s.config.max_batch {
                rows += job.rows();
                jobs.push(job);
            } else {
                *pending = Some(job);
                break;
            }
        }
    }
    s.metrics
        .queue_depth
        .fetch_sub(jobs.len() as i64, Ordering::Relaxed);
    Some(jobs)
}

fn run_batch(s: &Shared, jobs: Vec<Job>) {
    let now = Instant::now();
    let mut live = Vec::with_capacity(jobs.len());
    for job in jobs {
        if job.reply.is_closed() {
            continue; // the client went away: do not spend compute on it
        }
        if now > job.deadline {
            let err = ServeError::DeadlineExceeded {
                model: s.model.clone(),
                after: job.timeout,
            };
            let _ = job.reply.send(Err(err));
            continue;
        }
        s.metrics
            .queue_seconds
            .observe((now - job.enqueued).as_secs_f64());
        live.push(job);
    }
    if live.is_empty() {
        return;
    }
    s.metrics.batch_size.observe(live.len() as f64);
    let start = Instant::now();
    if live.len() == 1 {
        let job = live.remove(0);
        let result = execute(s, job.inputs);
        s.metrics
            .compute_seconds
            .observe(start.elapsed().as_secs_f64());
        let _ = job.reply.send(result);
        return;
    }
    let rows: Vec<usize> = live.iter().map(Job::rows).collect();
    let mut inputs_per_job = Vec::with_capacity(live.len());
    let mut replies = Vec::with_capacity(live.len());
    for job in live {
        inputs_per_job.push(job.inputs);
        replies.push(job.reply);
    }
    let merged = concat(&inputs_per_job);
    let result = execute(s, merged).and_then(|outs| split(&s.model, outs, &rows));
    s.metrics
        .compute_seconds
        .observe(start.elapsed().as_secs_f64());
    match result {
        Ok(per_job) => {
            for (reply, outs) in replies.into_iter().zip(per_job) {
                let _ = reply.send(Ok(outs));
            }
        }
        Err(e) => {
            let msg = e.to_string();
            for reply in replies {
                let _ = reply.send(Err(ServeError::Backend {
                    model: s.model.clone(),
                    message: msg.clone(),
                }));
            }
        }
    }
}

/// Run the backend, turning an error or a panic into [`ServeError::Backend`].
fn execute(s: &Shared, inputs: Vec<InferTensor>) -> Result<Vec<InferTensor>> {
    let backend = &s.backend;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| backend.infer(inputs)));
    match outcome {
        Ok(Ok(outs)) => Ok(outs),
        Ok(Err(message)) => Err(ServeError::Backend {
            model: s.model.clone(),
            message,
        }),
        Err(_) => Err(ServeError::Backend {
            model: s.model.clone(),
            message: "the engine panicked while running the model".into(),
        }),
    }
}

/// Concatenate the requests' inputs along the first dimension (shapes already checked
/// compatible, datatypes validated against the model).
fn concat(per_job: &[Vec<InferTensor>]) -> Vec<InferTensor> {
    let n_inputs = per_job[0].len();
    (0..n_inputs)
        .map(|i| {
            let first = &per_job[0][i];
            let total_rows: usize = per_job.iter().map(|j| j[i].shape[0]).sum();
            let total_bytes: usize = per_job.iter().map(|j| j[i].data.len()).sum();
            let mut data = BytesMut::with_capacity(total_bytes);
            for j in per_job {
                data.extend_from_slice(&j[i].data);
            }
            let mut shape = first.shape.clone();
            shape[0] = total_rows;
            InferTensor {
                name: first.name.clone(),
                datatype: first.datatype,
                shape,
                data: data.freeze(),
            }
        })
        .collect()
}

/// Split batched outputs back into per-request outputs by their row counts.
fn split(model: &str, outs: Vec<InferTensor>, rows: &[usize]) -> Result<Vec<Vec<InferTensor>>> {
    let total: usize = rows.iter().sum();
    let mut per_job: Vec<Vec<InferTensor>> = rows.iter().map(|_| Vec::new()).collect();
    for out in outs {
        let row_bytes = match (out.shape.first(), out.datatype.size()) {
            (Some(&n), Some(_)) if n == total && total > 0 => out.data.len() / total,
            _ => {
                return Err(ServeError::Backend {
                    model: model.to_string(),
                    message: format!(
                        "output '{}' of shape {:?} cannot be split into {total} batched rows",
                        out.name, out.shape
                    ),
                })
            }
        };
        let mut offset = 0;
        for (r, dest) in rows.iter().zip(per_job.iter_mut()) {
            let len = r * row_bytes;
            let data: Bytes = out.data.slice(offset..offset + len);
            offset += len;
            let mut shape = out.shape.clone();
            shape[0] = *r;
            dest.push(InferTensor {
                name: out.name.clone(),
                datatype: out.datatype,
                shape,
                data,
            });
        }
    }
    Ok(per_job)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::backend::tests::Doubler;

    fn start(delay_ms: u64, cfg: BatchConfig) -> (Arc<Doubler>, Batcher, Arc<ModelMetrics>) {
        let d = Arc::new(Doubler::new(delay_ms));
        let m = Arc::new(ModelMetrics::default());
        let b = Batcher::start("d".into(), d.clone(), m.clone(), cfg).unwrap();
        (d, b, m)
    }

    fn x(rows: usize, base: f32) -> Vec<InferTensor> {
        let v: Vec<f32> = (0..rows * 4).map(|i| base + i as f32).collect();
        vec![InferTensor::from_f32("x", vec![rows, 4], &v).unwrap()]
    }

    #[test]
    fn merges_concurrent_requests_and_splits_results() {
        let cfg = BatchConfig {
            max_batch: 16,
            max_delay: Duration::from_millis(200),
            ..Default::default()
        };
        let (d, b, m) = start(0, cfg);
        let rxs: Vec<_> = (0..3)
            .map(|i| {
                b.submit(x(i + 1, 100.0 * i as f32), Duration::from_secs(5))
                    .unwrap()
            })
            .collect();
        for (i, rx) in rxs.into_iter().enumerate() {
            let outs = rx.blocking_recv().unwrap().unwrap();
            assert_eq!(outs[0].shape, vec![i + 1, 4]);
            let want: Vec<f32> = (0..(i + 1) * 4)
                .map(|k| 2.0 * (100.0 * i as f32 + k as f32))
                .collect();
            assert_eq!(outs[0].to_f32().unwrap(), want);
            assert_eq!(outs[1].shape, vec![i + 1, 1]);
        }
        assert_eq!(
            d.calls.load(Ordering::SeqCst),
            1,
            "three requests should run as one batch"
        );
        assert_eq!(m.batch_size.count(), 1);
        b.close();
    }

    #[test]
    fn full_queue_is_refused_not_buffered() {
        let cfg = BatchConfig {
            max_batch: 1,
            queue_capacity: 2,
            ..Default::default()
        };
        let (_d, b, m) = start(300, cfg);
        let mut ok = Vec::new();
        let mut full = 0;
        for _ in 0..6 {
            match b.submit(x(1, 0.0), Duration::from_secs(10)) {
                Ok(rx) => ok.push(rx),
                Err(ServeError::QueueFull { .. }) => full += 1,
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert!(full >= 3, "only {full} refused");
        assert!(m.rejected.load(Ordering::Relaxed) >= 3);
        for rx in ok {
            assert!(rx.blocking_recv().unwrap().is_ok());
        }
        b.close();
    }

    #[test]
    fn expired_requests_do_not_run_and_close_drains() {
        let cfg = BatchConfig {
            max_batch: 1,
            ..Default::default()
        };
        let (d, b, _m) = start(200, cfg);
        let first = b.submit(x(1, 0.0), Duration::from_secs(5)).unwrap();
        let late = b.submit(x(1, 0.0), Duration::from_millis(10)).unwrap();
        b.close();
        assert!(first.blocking_recv().unwrap().is_ok());
        let err = late.blocking_recv().unwrap().unwrap_err();
        assert!(matches!(err, ServeError::DeadlineExceeded { .. }), "{err}");
        assert_eq!(d.calls.load(Ordering::SeqCst), 1);
        assert!(matches!(
            b.submit(x(1, 0.0), Duration::from_secs(1)),
            Err(ServeError::ShuttingDown)
        ));
    }
}
