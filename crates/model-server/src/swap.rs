//! Following the registry: load the deployed version at start, then poll for a new one,
//! load it in the background (with a real forward pass), and hand it to the worker.
//! A version that fails to load is logged once and counted; the old one keeps serving.

use std::sync::Arc;
use std::time::Duration;

use doodle_core::ErrorChain;
use doodle_core::config::{RegistryKind, Settings};
use doodle_model::Classifier;
use doodle_registry::{Deployed, LocalRegistry, MlflowClient, MlflowRegistry};

use crate::metrics::ServerMetrics;
use crate::worker::{Batcher, LoadedModel, ModelInfo};

/// Where deployed models come from: the local registry (default) or an MLflow server.
#[derive(Debug, Clone)]
pub enum ModelSource {
    Local {
        registry: LocalRegistry,
        alias: String,
    },
    Mlflow {
        registry: MlflowRegistry,
        alias: String,
    },
}

/// The MLflow experiment our runs are recorded in.
pub const MLFLOW_EXPERIMENT: &str = "doodle";

impl ModelSource {
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let r = &settings.registry;
        Ok(match r.kind {
            RegistryKind::Local => Self::Local {
                registry: LocalRegistry::new(&r.local_dir, &r.model_name)?,
                alias: r.alias.clone(),
            },
            RegistryKind::Mlflow => Self::Mlflow {
                registry: MlflowRegistry {
                    client: MlflowClient::new(&r.mlflow_tracking_uri)?,
                    model_name: r.model_name.clone(),
                    experiment: MLFLOW_EXPERIMENT.into(),
                    // Downloaded versions are cached next to the local registry.
                    cache_dir: r.local_dir.join(".mlflow-cache"),
                },
                alias: r.alias.clone(),
            },
        })
    }

    pub fn name(&self) -> &str {
        match self {
            Self::Local { registry, .. } => registry.name(),
            Self::Mlflow { registry, .. } => &registry.model_name,
        }
    }

    /// The deployed version as a local checkpoint folder (MLflow versions are downloaded).
    pub async fn deployed(&self) -> anyhow::Result<Option<Deployed>> {
        match self {
            Self::Local { registry, alias } => {
                let (registry, alias) = (registry.clone(), alias.clone());
                Ok(tokio::task::spawn_blocking(move || registry.deployed(&alias)).await??)
            }
            Self::Mlflow { registry, alias } => Ok(registry.deployed(alias).await?),
        }
    }
}

/// How a loaded version is served (from `[model_server]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeOptions {
    /// Serve from the BatchNorm-folded copy (`fold_batchnorm`).
    pub fold_batchnorm: bool,
    /// Inference workers, each single-threaded when there are several, and the slices a lone
    /// worker splits its pass into (1: one worker, no slices; `split_batches`).
    pub workers: usize,
    /// Keep the checkpoint's mirrored test-time augmentation (`mirror_tta`).
    pub mirror_tta: bool,
}

impl ServeOptions {
    pub fn from_settings(settings: &doodle_core::Settings) -> Self {
        let ms = &settings.model_server;
        Self {
            fold_batchnorm: ms.fold_batchnorm,
            workers: if ms.fold_batchnorm && ms.split_batches {
                doodle_core::config::resolve_threads(settings.model.threads)
            } else {
                1
            },
            mirror_tta: ms.mirror_tta,
        }
    }

    /// libtorch threads for each worker (0: libtorch's default): one when there are several,
    /// so they do not compete for cores; else `configured`.
    pub fn predicting_threads(&self, configured: usize) -> usize {
        if self.workers > 1 { 1 } else { configured }
    }
}

/// Load a checkpoint and prove it works with one forward pass. With `fold_batchnorm`, the
/// network is served from its BatchNorm-folded copy, after checking on the warm-up drawings that
/// the copy answers what the network does. Without `mirror_tta`, a checkpoint validated with
/// mirrored test-time augmentation is answered from the drawing alone.
pub fn load(name: &str, deployed: &Deployed, opts: ServeOptions) -> anyhow::Result<LoadedModel> {
    let mut classifier = Classifier::load(&deployed.dir)?;
    if !opts.mirror_tta {
        classifier.metadata_mut().tta_hflip = false;
    }
    // A blank drawing and a busy one.
    let warm_up: Vec<u8> = (0..2 * doodle_core::image::PIXELS)
        .map(|i| {
            if i < doodle_core::image::PIXELS {
                0
            } else {
                (i * 37 % 256) as u8
            }
        })
        .collect();
    let probabilities = classifier.predict_proba(&warm_up)?;
    anyhow::ensure!(
        probabilities.len() == 2 * classifier.categories().len()
            && probabilities.iter().all(|p| p.is_finite()),
        "warm-up forward pass gave {} values for {} categories",
        probabilities.len(),
        classifier.categories().len()
    );
    if opts.fold_batchnorm {
        classifier.fuse_split(opts.workers)?;
        let folded = classifier.predict_proba(&warm_up)?;
        let worst = probabilities
            .iter()
            .zip(&folded)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        anyhow::ensure!(
            worst < 1e-3,
            "the BatchNorm-folded network differs from the checkpoint's by {worst} in a probability"
        );
    }
    let meta = classifier.metadata();
    let info = ModelInfo {
        name: name.to_owned(),
        version: deployed.version.clone(),
        categories: classifier.categories().to_vec().into(),
        architecture: meta.architecture.clone(),
        val_accuracy: meta.val_accuracy,
        val_top3: meta.val_top3,
        created_at: meta.created_at.clone(),
        loaded_at: doodle_model::checkpoint::now_rfc3339(),
        mirror_tta: meta.tta_hflip,
        slices: classifier.forward_slices(),
    };
    Ok(LoadedModel {
        classifier,
        info: Arc::new(info),
    })
}

/// Follows the deployed alias.
#[derive(Debug)]
pub struct Follower {
    source: ModelSource,
    batcher: Batcher,
    metrics: ServerMetrics,
    /// The last version that failed, so it is not retried (and logged) every poll.
    failed: Option<String>,
    /// How each version is served.
    serve: ServeOptions,
}

impl Follower {
    pub fn new(
        source: ModelSource,
        batcher: Batcher,
        metrics: ServerMetrics,
        serve: ServeOptions,
    ) -> Self {
        Self {
            source,
            batcher,
            metrics,
            failed: None,
            serve,
        }
    }

    /// Check once; load and swap in a new deployed version if there is one.
    /// Returns the version now being served, if any.
    pub async fn check(&mut self) -> Option<String> {
        let current = self.batcher.current().map(|m| m.version.clone());
        let deployed = match self.source.deployed().await {
            Ok(deployed) => deployed,
            Err(err) => {
                tracing::error!(error = %ErrorChain(err.as_ref()), "cannot read the registry");
                return current;
            }
        };
        let Some(deployed) = deployed else {
            if current.is_none() {
                tracing::warn!(
                    model = self.source.name(),
                    "no deployed model version yet; /health answers 503 until one is deployed (make model)"
                );
            }
            return current;
        };
        if current.as_deref() == Some(deployed.version.as_str())
            || self.failed.as_deref() == Some(deployed.version.as_str())
        {
            return current;
        }
        let name = self.source.name().to_owned();
        let batcher = self.batcher.clone();
        let version = deployed.version.clone();
        let serve = self.serve;
        tracing::info!(%version, dir = %deployed.dir.display(), "loading model version");
        let loaded = tokio::task::spawn_blocking(move || {
            let model = load(&name, &deployed, serve)?;
            batcher
                .swap(model)
                .map_err(|e| anyhow::anyhow!("handing the model to the worker: {e}"))
        })
        .await;
        match loaded {
            Ok(Ok(())) => {
                self.failed = None;
                // The worker installs it before its next batch (within its idle poll).
                for _ in 0..100 {
                    if self.batcher.current().map(|m| m.version.clone()) == Some(version.clone()) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Some(version)
            }
            Ok(Err(err)) => {
                self.metrics.load_failures.inc();
                tracing::error!(%version, error = %ErrorChain(err.as_ref()), "model version failed to load; keeping the current one");
                self.failed = Some(version);
                current
            }
            Err(err) => {
                self.metrics.load_failures.inc();
                tracing::error!(%version, error = %err, "model loading panicked; keeping the current one");
                self.failed = Some(version);
                current
            }
        }
    }

    /// Poll forever (until the task is dropped).
    pub async fn run(mut self, interval: Duration) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            self.check().await;
        }
    }
}
