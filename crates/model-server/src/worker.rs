//! The inference workers: a bounded queue in front of OS threads that own handles to the model.
//!
//! Handlers [`Batcher::submit`] a [`Job`] (one request's drawings) and await its answer on a
//! oneshot channel. A worker takes whatever is queued, up to `max_batch_size` images
//! (optionally waiting `max_wait` for more), drops jobs whose client went away or whose
//! deadline passed, runs one forward pass and answers every job.
//!
//! With several workers (`split_batches`, one per libtorch thread), each is single-threaded and
//! takes its own batches from the shared queue, so under load every core runs a whole pass and
//! no thread waits for a partner that was descheduled. A worker that finds the others idle
//! splits its pass across their cores instead ([`doodle_model::Predictor`]), so a lone request
//! is not slower for it.
//!
//! A new model arrives over a channel per worker and is swapped in between two batches, so no
//! job is lost or stalled.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use doodle_core::ErrorChain;
use doodle_model::{Classifier, ModelError, Predictor};
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
    /// Slices a forward pass is split into at most (1: one pass).
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
    /// libtorch threads of each worker (0: libtorch's default).
    pub threads: usize,
    /// Worker threads taking batches from the queue side by side (at least one).
    pub workers: usize,
}

/// The handle handlers use; cheap to clone.
#[derive(Debug, Clone)]
pub struct Batcher {
    jobs: SyncSender<Job>,
    /// One per worker.
    swaps: Vec<SyncSender<Installed>>,
    current: Arc<RwLock<Option<Arc<ModelInfo>>>>,
    metrics: ServerMetrics,
}

impl Batcher {
    /// Start the worker threads.
    pub fn start(config: BatchConfig, metrics: ServerMetrics) -> Self {
        let (jobs, job_rx) = mpsc::sync_channel(config.queue_capacity);
        let queue = Arc::new(Queue {
            jobs: Mutex::new(job_rx),
            idle: AtomicUsize::new(0),
            workers: config.workers.max(1),
        });
        let current = Arc::new(RwLock::new(None));
        let swaps = (0..queue.workers)
            .map(|index| {
                let (swaps, swap_rx) = mpsc::sync_channel(1);
                let worker = Worker {
                    config,
                    queue: queue.clone(),
                    swaps: swap_rx,
                    current: current.clone(),
                    metrics: metrics.clone(),
                    model: None,
                    last_batch_jobs: 0,
                    last_batch_images: 0,
                };
                std::thread::Builder::new()
                    .name(format!("inference-{index}"))
                    .spawn(move || worker.run())
                    .expect("spawning an inference thread. This is a bug.");
                swaps
            })
            .collect();
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

    /// Worker threads taking batches side by side.
    pub fn workers(&self) -> usize {
        self.swaps.len()
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

    /// Hand a loaded model to every worker; each swaps it in before its next batch. With
    /// several workers each gets its own handle to the folded weights (the model must be
    /// folded), and the classifier's unfolded network is freed.
    /// Blocks while a previous swap is still pending (call from a blocking context).
    pub fn swap(&self, model: LoadedModel) -> Result<(), ServeError> {
        let LoadedModel { classifier, info } = model;
        let engines = if self.workers() == 1 {
            vec![Engine::Classifier(Box::new(classifier))]
        } else {
            (0..self.workers())
                .map(|_| classifier.predictor().map(Engine::Predictor))
                .collect::<Result<_, ModelError>>()
                .map_err(|err| {
                    ServeError::Internal(format!("cannot share the model between workers: {err}"))
                })?
        };
        for (swaps, engine) in self.swaps.iter().zip(engines) {
            swaps
                .send(Installed {
                    engine,
                    info: info.clone(),
                })
                .map_err(|_| ServeError::Internal("an inference thread has stopped".into()))?;
        }
        Ok(())
    }
}

/// What the workers share: the job queue, and how many of them are waiting on it.
#[derive(Debug)]
struct Queue {
    /// Held by the worker that is taking a batch, so batches form one at a time.
    jobs: Mutex<Receiver<Job>>,
    idle: AtomicUsize,
    workers: usize,
}

/// What one worker predicts with.
enum Engine {
    /// The loaded classifier itself (a single worker).
    Classifier(Box<Classifier>),
    /// A handle to the folded weights (one of several workers).
    Predictor(Predictor),
}

impl Engine {
    fn predict_proba(&self, pixels: &[u8], split: bool) -> Result<Vec<f32>, ModelError> {
        match self {
            // A single worker is always alone: it splits as the classifier was folded to.
            Self::Classifier(classifier) => classifier.predict_proba(pixels),
            Self::Predictor(p) => p.predict_proba(pixels, if split { p.slices() } else { 1 }),
        }
    }
}

/// A model as one worker serves it.
struct Installed {
    engine: Engine,
    info: Arc<ModelInfo>,
}

struct Worker {
    config: BatchConfig,
    queue: Arc<Queue>,
    swaps: Receiver<Installed>,
    current: Arc<RwLock<Option<Arc<ModelInfo>>>>,
    metrics: ServerMetrics,
    model: Option<Installed>,
    /// Requests the previous forward pass served: more than one means clients are concurrent.
    last_batch_jobs: usize,
    /// Images the previous forward pass computed: under load, what the next one waits for.
    last_batch_images: usize,
}

/// How often an idle worker looks for a model to swap in.
const IDLE_POLL: Duration = Duration::from_millis(50);
/// How long a worker without a model waits for its handle once another worker has announced one.
const FIRST_MODEL_WAIT: Duration = Duration::from_secs(5);

impl Worker {
    fn run(mut self) {
        if self.config.threads > 0 {
            tch::set_num_threads(self.config.threads as i32);
        }
        let _guard = tch::no_grad_guard();
        let queue = self.queue.clone();
        loop {
            queue.idle.fetch_add(1, Ordering::SeqCst);
            let batch = {
                let jobs = queue
                    .jobs
                    .lock()
                    .expect("job queue lock poisoned. This is a bug.");
                let first = jobs.recv_timeout(IDLE_POLL);
                queue.idle.fetch_sub(1, Ordering::SeqCst);
                match first {
                    Ok(job) => {
                        self.metrics.queue_size.dec();
                        self.collect(&jobs, job)
                    }
                    Err(RecvTimeoutError::Timeout) => {
                        drop(jobs);
                        self.install_pending_swap();
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            };
            // A model that arrived while this worker waited for the batch serves it.
            self.install_pending_swap();
            // Split the pass across the other workers' cores only while they wait for work.
            let alone = queue.idle.load(Ordering::SeqCst) + 1 >= queue.workers;
            self.run_batch(batch, alone);
        }
        tracing::debug!("inference thread stopping: every handle is gone");
    }

    /// Whether a model has been announced (by any worker).
    fn announced(&self) -> bool {
        self.current
            .read()
            .expect("model info lock poisoned. This is a bug.")
            .is_some()
    }

    fn install_pending_swap(&mut self) {
        // Only the newest pending model matters.
        let mut newest = None;
        while let Ok(model) = self.swaps.try_recv() {
            newest = Some(model);
        }
        if newest.is_none() && self.model.is_none() && self.announced() {
            // Another worker announced the first model, so this worker's handle is on its way
            // (`Batcher::swap` sends to every worker): wait for it rather than answer "no model".
            newest = self.swaps.recv_timeout(FIRST_MODEL_WAIT).ok();
        }
        let Some(model) = newest else { return };
        let info = model.info.clone();
        self.model = Some(model);
        let mut current = self
            .current
            .write()
            .expect("model info lock poisoned. This is a bug.");
        // The first worker to take a new model announces it.
        if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, &info)) {
            return;
        }
        if let Some(old) = current.as_ref() {
            let _ = self
                .metrics
                .model_info
                .remove_label_values(&[&old.name, &old.version]);
        }
        self.metrics
            .model_info
            .with_label_values(&[&info.name, &info.version])
            .set(1);
        self.metrics.swaps.inc();
        *current = Some(info.clone());
        tracing::info!(name = %info.name, version = %info.version, "model swapped in");
    }

    /// Take queued jobs until the batch is full or the queue is empty and the wait is over.
    /// The wait is `max_wait`; under load — the previous pass served several requests — it is
    /// up to `wait_under_load` while the batch is smaller than that pass was: the clients it
    /// answered are sending their next requests, and a full pass computes faster per image
    /// than two fragments. Once as many have come, nothing more is waited for.
    fn collect(&mut self, jobs: &Receiver<Job>, first: Job) -> Vec<Job> {
        let mut images = first.count;
        let mut batch = vec![first];
        let start = Instant::now();
        let patient_until = start + self.config.max_wait;
        let loaded_until = start + self.config.max_wait.max(self.config.wait_under_load);
        let expected = if self.last_batch_jobs > 1 {
            self.last_batch_images
        } else {
            0
        };
        while images < self.config.max_batch_size {
            let next = match jobs.try_recv() {
                Ok(job) => Some(job),
                Err(TryRecvError::Disconnected) => None,
                Err(TryRecvError::Empty) => {
                    let until = if images < expected {
                        loaded_until
                    } else {
                        patient_until
                    };
                    let now = Instant::now();
                    if now >= until {
                        None
                    } else {
                        jobs.recv_timeout(until - now).ok()
                    }
                }
            };
            let Some(job) = next else { break };
            self.metrics.queue_size.dec();
            images += job.count;
            batch.push(job);
        }
        self.last_batch_jobs = batch.len();
        self.last_batch_images = images;
        batch
    }

    fn run_batch(&mut self, batch: Vec<Job>, alone: bool) {
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
            match model.engine.predict_proba(chunk, alone) {
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
                workers: 1,
            },
            queue: Arc::new(Queue {
                jobs: Mutex::new(job_rx),
                idle: AtomicUsize::new(0),
                workers: 1,
            }),
            swaps: swap_rx,
            current: Arc::new(RwLock::new(None)),
            metrics: ServerMetrics::register(&doodle_core::metrics::Metrics::new()),
            model: None,
            last_batch_jobs: 0,
            last_batch_images: 0,
        };
        (jobs, worker)
    }

    /// What the worker batches with `first` (holding the queue, as `run` does).
    fn take(w: &mut Worker, first: Job) -> Vec<Job> {
        let queue = w.queue.clone();
        let jobs = queue.jobs.lock().unwrap();
        w.collect(&jobs, first)
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

    /// The size of the batch `take` forms while one more job would come only `after` from now,
    /// checking that it did not wait for that job.
    fn take_without_waiting(w: &mut Worker, jobs: &SyncSender<Job>, after: Duration) -> usize {
        let straggler = later(jobs, after);
        let started = Instant::now();
        let size = take(w, job()).len();
        assert!(
            started.elapsed() < after,
            "the batch waited for the straggler"
        );
        straggler.join().unwrap();
        size
    }

    #[test]
    fn a_lone_client_never_waits_for_company() {
        let (jobs, mut w) = worker(0, 10_000);
        assert_eq!(
            take_without_waiting(&mut w, &jobs, Duration::from_millis(300)),
            1
        );
    }

    #[test]
    fn after_a_pass_of_several_requests_the_next_waits_for_more() {
        let (jobs, mut w) = worker(0, 1_000);
        jobs.send(job()).unwrap();
        // Both were queued: one pass of two, no waiting (the previous pass had none before it).
        assert_eq!(take(&mut w, job()).len(), 2);
        // Under load now: a request arriving 100 ms later joins the next pass.
        let straggler = later(&jobs, Duration::from_millis(100));
        let batch = take(&mut w, job());
        straggler.join().unwrap();
        assert_eq!(batch.len(), 2);
        // That pass held two, so the wait still applies; it ends when the batch is full.
        w.config.max_batch_size = 3;
        jobs.send(job()).unwrap();
        jobs.send(job()).unwrap();
        let started = Instant::now();
        assert_eq!(take(&mut w, job()).len(), 3);
        assert!(started.elapsed() < Duration::from_millis(500));
    }

    #[test]
    fn under_load_a_pass_waits_only_until_it_is_as_large_as_the_previous_one() {
        let (jobs, mut w) = worker(0, 10_000);
        jobs.send(job()).unwrap();
        jobs.send(job()).unwrap();
        assert_eq!(take(&mut w, job()).len(), 3);
        // Three came last time: two are queued, the third comes 100 ms later and is waited for.
        jobs.send(job()).unwrap();
        let third = later(&jobs, Duration::from_millis(100));
        let batch = take(&mut w, job());
        third.join().unwrap();
        assert_eq!(batch.len(), 3);
        // Three are queued now and a fourth would come in 300 ms: the pass does not wait for it.
        jobs.send(job()).unwrap();
        jobs.send(job()).unwrap();
        assert_eq!(
            take_without_waiting(&mut w, &jobs, Duration::from_millis(300)),
            3
        );
    }

    #[test]
    fn a_worker_without_a_model_waits_for_its_handle_once_another_announced_one() {
        let (_jobs, mut w) = worker(0, 0);
        let (swaps, swap_rx) = mpsc::sync_channel(1);
        w.swaps = swap_rx;
        // Nothing announced: nothing to wait for.
        let started = Instant::now();
        w.install_pending_swap();
        assert!(w.model.is_none() && started.elapsed() < Duration::from_millis(500));
        // Another worker announced version 1; this worker's handle comes 200 ms later.
        let cats = vec!["a".to_owned(), "b".to_owned()];
        let classifier =
            Classifier::new_untrained(doodle_core::config::Architecture::Resnet18, &cats).unwrap();
        let info = Arc::new(ModelInfo {
            name: "m".into(),
            version: "1".into(),
            categories: cats.into(),
            architecture: "resnet18".into(),
            val_accuracy: None,
            val_top3: None,
            created_at: String::new(),
            loaded_at: String::new(),
            mirror_tta: false,
            slices: 1,
        });
        *w.current.write().unwrap() = Some(info.clone());
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            let engine = Engine::Classifier(Box::new(classifier));
            swaps.send(Installed { engine, info }).unwrap();
        });
        w.install_pending_swap();
        sender.join().unwrap();
        let installed = w.model.as_ref().expect("the worker waited for its handle");
        assert_eq!(installed.info.version, "1");
    }

    #[test]
    fn with_no_wait_under_load_a_busy_worker_takes_only_what_is_queued() {
        let (jobs, mut w) = worker(0, 0);
        jobs.send(job()).unwrap();
        assert_eq!(take(&mut w, job()).len(), 2);
        let straggler = later(&jobs, Duration::from_millis(300));
        assert_eq!(take(&mut w, job()).len(), 1);
        straggler.join().unwrap();
    }
}
