//! The inference worker: a bounded queue in front of one OS thread that owns the model.
//!
//! Handlers [`Batcher::submit`] a [`Job`] (one request's drawings) and await its answer on a
//! oneshot channel. The worker takes whatever is queued, up to `max_batch_size` images
//! (optionally waiting `max_wait` for more), drops jobs whose client went away or whose
//! deadline passed, runs one forward pass and answers every job. A new model arrives over a
//! second channel and is swapped in between two batches, so no job is lost or stalled.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use doodle_core::ErrorChain;
use doodle_model::Classifier;
use tokio::sync::oneshot;

use crate::error::ServeError;
use crate::metrics::ServerMetrics;

/// What is known about the model being served.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub name: String,
    pub version: String,
    pub categories: Arc<[String]>,
    pub architecture: String,
    pub val_accuracy: Option<f64>,
    pub val_top3: Option<f64>,
    pub created_at: String,
    pub loaded_at: String,
    /// Whether each drawing is answered together with its mirror image.
    pub mirror_tta: bool,
    /// Slices each forward pass is split into (1: one pass).
    pub slices: usize,
}

/// A loaded, warmed-up model ready to be swapped in.
pub struct LoadedModel {
    pub classifier: Classifier,
    pub info: Arc<ModelInfo>,
}

impl std::fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModel")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// One request's drawings.
#[derive(Debug)]
pub struct Job {
    pub pixels: Vec<u8>,
    pub count: usize,
    pub enqueued: Instant,
    pub deadline: Instant,
    pub reply: oneshot::Sender<Result<JobOutput, ServeError>>,
}

/// Probabilities for one job, with the model that computed them.
#[derive(Debug)]
pub struct JobOutput {
    /// `count × categories` probabilities, row-major.
    pub probabilities: Vec<f32>,
    pub model: Arc<ModelInfo>,
}

#[derive(Debug, Clone, Copy)]
pub struct BatchConfig {
    pub max_batch_size: usize,
    pub max_wait: Duration,
    /// The wait when the previous forward pass served more than one request (if longer).
    pub wait_under_load: Duration,
    pub queue_capacity: usize,
    pub threads: usize,
}

/// The handle handlers use; cheap to clone.
#[derive(Debug, Clone)]
pub struct Batcher {
    jobs: SyncSender<Job>,
    swaps: SyncSender<LoadedModel>,
    current: Arc<RwLock<Option<Arc<ModelInfo>>>>,
    metrics: ServerMetrics,
}

impl Batcher {
    /// Start the worker thread.
    pub fn start(config: BatchConfig, metrics: ServerMetrics) -> Self {
        let (jobs, job_rx) = mpsc::sync_channel(config.queue_capacity);
        let (swaps, swap_rx) = mpsc::sync_channel(1);
        let current = Arc::new(RwLock::new(None));
        let worker = Worker {
            config,
            jobs: job_rx,
            swaps: swap_rx,
            current: current.clone(),
            metrics: metrics.clone(),
            model: None,
            last_batch_jobs: 0,
        };
        std::thread::Builder::new()
            .name("inference".into())
            .spawn(move || worker.run())
            .expect("spawning the inference thread. This is a bug.");
        Self {
            jobs,
            swaps,
            current,
            metrics,
        }
    }

    /// The model being served, once one is loaded and has run a forward pass.
    pub fn current(&self) -> Option<Arc<ModelInfo>> {
        self.current
            .read()
            .expect("model info lock poisoned. This is a bug.")
            .clone()
    }

    /// Queue a job, or refuse at once when no model is loaded or the queue is full.
    pub fn submit(&self, job: Job) -> Result<(), ServeError> {
        if self.current().is_none() {
            return Err(ServeError::NoModel);
        }
        match self.jobs.try_send(job) {
            Ok(()) => {
                self.metrics.queue_size.inc();
                Ok(())
            }
            Err(TrySendError::Full(_)) => Err(ServeError::QueueFull),
            Err(TrySendError::Disconnected(_)) => Err(ServeError::Internal(
                "the inference thread has stopped".into(),
            )),
        }
    }

    /// Hand a loaded model to the worker; it is swapped in before the next batch.
    /// Blocks while a previous swap is still pending (call from a blocking context).
    pub fn swap(&self, model: LoadedModel) -> Result<(), ServeError> {
        self.swaps
            .send(model)
            .map_err(|_| ServeError::Internal("the inference thread has stopped".into()))
    }
}

struct Worker {
    config: BatchConfig,
    jobs: Receiver<Job>,
    swaps: Receiver<LoadedModel>,
    current: Arc<RwLock<Option<Arc<ModelInfo>>>>,
    metrics: ServerMetrics,
    model: Option<LoadedModel>,
    /// Requests the previous forward pass served: more than one means clients are concurrent.
    last_batch_jobs: usize,
}

/// How often an idle worker looks for a model to swap in.
const IDLE_POLL: Duration = Duration::from_millis(50);

impl Worker {
    fn run(mut self) {
        if self.config.threads > 0 {
            tch::set_num_threads(self.config.threads as i32);
        }
        let _guard = tch::no_grad_guard();
        loop {
            self.install_pending_swap();
            let first = match self.jobs.recv_timeout(IDLE_POLL) {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            self.metrics.queue_size.dec();
            let batch = self.collect(first);
            self.run_batch(batch);
        }
        tracing::debug!("inference thread stopping: every handle is gone");
    }

    fn install_pending_swap(&mut self) {
        // Only the newest pending model matters.
        let mut newest = None;
        while let Ok(model) = self.swaps.try_recv() {
            newest = Some(model);
        }
        if let Some(model) = newest {
            let info = model.info.clone();
            if let Some(old) = &self.model {
                let _ = self
                    .metrics
                    .model_info
                    .remove_label_values(&[&old.info.name, &old.info.version]);
            }
            self.metrics
                .model_info
                .with_label_values(&[&info.name, &info.version])
                .set(1);
            self.metrics.swaps.inc();
            self.model = Some(model);
            *self
                .current
                .write()
                .expect("model info lock poisoned. This is a bug.") = Some(info.clone());
            tracing::info!(name = %info.name, version = %info.version, "model swapped in");
        }
    }

    /// Take queued jobs until the batch is full, the queue is empty and the wait is over:
    /// `max_wait`, or `wait_under_load` when the previous pass served several requests.
    fn collect(&mut self, first: Job) -> Vec<Job> {
        let mut images = first.count;
        let mut batch = vec![first];
        let wait = if self.last_batch_jobs > 1 {
            self.config.max_wait.max(self.config.wait_under_load)
        } else {
            self.config.max_wait
        };
        let wait_until = Instant::now() + wait;
        while images < self.config.max_batch_size {
            let next = match self.jobs.try_recv() {
                Ok(job) => Some(job),
                Err(TryRecvError::Disconnected) => None,
                Err(TryRecvError::Empty) => {
                    let now = Instant::now();
                    if now >= wait_until {
                        None
                    } else {
                        self.jobs.recv_timeout(wait_until - now).ok()
                    }
                }
            };
            let Some(job) = next else { break };
            self.metrics.queue_size.dec();
            images += job.count;
            batch.push(job);
        }
        self.last_batch_jobs = batch.len();
        batch
    }

    fn run_batch(&mut self, batch: Vec<Job>) {
        let now = Instant::now();
        let mut live = Vec::with_capacity(batch.len());
        for job in batch {
            if job.reply.is_closed() {
                self.metrics
                    .rejected
                    .with_label_values(&["client_gone"])
                    .inc();
            } else if now >= job.deadline {
                // Counted apart from the handler's "deadline" (the 504 it answered).
                self.metrics.rejected.with_label_values(&["expired"]).inc();
                // The handler has timed out already; answer anyway in case it has not.
                let _ = job.reply.send(Err(ServeError::DeadlineExceeded(0)));
            } else {
                self.metrics
                    .queue_seconds
                    .observe((now - job.enqueued).as_secs_f64());
                live.push(job);
            }
        }
        if live.is_empty() {
            return;
        }
        let Some(model) = &self.model else {
            for job in live {
                let _ = job.reply.send(Err(ServeError::NoModel));
            }
            return;
        };

        let mut pixels = Vec::with_capacity(live.iter().map(|j| j.pixels.len()).sum());
        for job in &live {
            pixels.extend_from_slice(&job.pixels);
        }
        let total: usize = live.iter().map(|j| j.count).sum();
        let classes = model.info.categories.len();
        let mut probabilities = Vec::with_capacity(total * classes);
        let start = Instant::now();
        let mut failure = None;
        for chunk in pixels.chunks(self.config.max_batch_size * doodle_core::image::PIXELS) {
            match model.classifier.predict_proba(chunk) {
                Ok(p) => {
                    self.metrics
                        .batch_size
                        .observe((chunk.len() / doodle_core::image::PIXELS) as f64);
                    probabilities.extend(p);
                }
                Err(err) => {
                    failure = Some(err);
                    break;
                }
            }
        }
        self.metrics
            .compute_seconds
            .observe(start.elapsed().as_secs_f64());

        if let Some(err) = failure {
            tracing::error!(error = %ErrorChain(&err), "forward pass failed");
            for job in live {
                let _ = job.reply.send(Err(ServeError::Internal(format!(
                    "forward pass failed: {err}"
                ))));
            }
            return;
        }
        let mut offset = 0;
        for job in live {
            let len = job.count * classes;
            let output = JobOutput {
                probabilities: probabilities[offset..offset + len].to_vec(),
                model: model.info.clone(),
            };
            offset += len;
            let _ = job.reply.send(Ok(output));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(max_wait_ms: u64, wait_under_load_ms: u64) -> (SyncSender<Job>, Worker) {
        let (jobs, job_rx) = mpsc::sync_channel(64);
        let (_swaps, swap_rx) = mpsc::sync_channel(1);
        let worker = Worker {
            config: BatchConfig {
                max_batch_size: 64,
                max_wait: Duration::from_millis(max_wait_ms),
                wait_under_load: Duration::from_millis(wait_under_load_ms),
                queue_capacity: 64,
                threads: 1,
            },
            jobs: job_rx,
            swaps: swap_rx,
            current: Arc::new(RwLock::new(None)),
            metrics: ServerMetrics::register(&doodle_core::metrics::Metrics::new()),
            model: None,
            last_batch_jobs: 0,
        };
        (jobs, worker)
    }

    fn job() -> Job {
        let (reply, _) = oneshot::channel();
        let now = Instant::now();
        Job {
            pixels: vec![0; 784],
            count: 1,
            enqueued: now,
            deadline: now + Duration::from_secs(60),
            reply,
        }
    }

    /// Send a job after `after` from another thread.
    fn later(jobs: &SyncSender<Job>, after: Duration) -> std::thread::JoinHandle<()> {
        let jobs = jobs.clone();
        std::thread::spawn(move || {
            std::thread::sleep(after);
            jobs.send(job()).unwrap();
        })
    }

    #[test]
    fn a_lone_client_never_waits_for_company() {
        let (jobs, mut w) = worker(0, 10_000);
        let straggler = later(&jobs, Duration::from_millis(300));
        let started = Instant::now();
        assert_eq!(w.collect(job()).len(), 1);
        assert!(started.elapsed() < Duration::from_millis(300));
        straggler.join().unwrap();
    }

    #[test]
    fn after_a_pass_of_several_requests_the_next_waits_for_more() {
        let (jobs, mut w) = worker(0, 1_000);
        jobs.send(job()).unwrap();
        // Both were queued: one pass of two, no waiting (the previous pass had none before it).
        assert_eq!(w.collect(job()).len(), 2);
        // Under load now: a request arriving 100 ms later joins the next pass.
        let straggler = later(&jobs, Duration::from_millis(100));
        let batch = w.collect(job());
        straggler.join().unwrap();
        assert_eq!(batch.len(), 2);
        // That pass held two, so the wait still applies; it ends when the batch is full.
        w.config.max_batch_size = 3;
        jobs.send(job()).unwrap();
        jobs.send(job()).unwrap();
        let started = Instant::now();
        assert_eq!(w.collect(job()).len(), 3);
        assert!(started.elapsed() < Duration::from_millis(500));
    }

    #[test]
    fn with_no_wait_under_load_a_busy_worker_takes_only_what_is_queued() {
        let (jobs, mut w) = worker(0, 0);
        jobs.send(job()).unwrap();
        assert_eq!(w.collect(job()).len(), 2);
        let straggler = later(&jobs, Duration::from_millis(300));
        assert_eq!(w.collect(job()).len(), 1);
        straggler.join().unwrap();
    }
}
