//! Stage 5's experiment tracking: with `registry.kind = "mlflow"`, the training run's
//! parameters and per-epoch metrics (loss, top-1, top-3, per category) go to an MLflow run in
//! the `doodle` experiment, as the design's retrain script logged them. The local metrics file
//! (`metrics.json`) is written whatever the registry.
//!
//! Tracking is a record, not the work: a metric that cannot be sent is logged as a warning and
//! training goes on. Each call uses a fresh client: between epochs the runtime is not polled,
//! so a pooled connection would sit idle past the server's keep-alive (uvicorn: 5 s) and fail
//! the next request.

use std::collections::BTreeMap;

use anyhow::Context;
use doodle_core::Settings;
use doodle_core::config::RegistryKind;
use doodle_model::EpochEnd;
use doodle_registry::mlflow::{Metric, Param, Tag};
use doodle_registry::{MLFLOW_EXPERIMENT, MlflowClient};
use tokio::runtime::Runtime;

/// Where a training run's parameters and metrics go (nowhere, or an MLflow run).
#[derive(Debug)]
pub struct Tracker<'a> {
    rt: &'a Runtime,
    /// The tracking server's URI and the run's id.
    mlflow: Option<(String, String)>,
}

impl<'a> Tracker<'a> {
    /// An MLflow run named `run_name` with `params` when the registry is MLflow; else nothing.
    pub fn start(
        rt: &'a Runtime,
        settings: &Settings,
        run_name: &str,
        params: &BTreeMap<String, String>,
    ) -> anyhow::Result<Tracker<'a>> {
        if settings.registry.kind != RegistryKind::Mlflow {
            return Ok(Self { rt, mlflow: None });
        }
        let uri = settings.registry.mlflow_tracking_uri.clone();
        let client = MlflowClient::new(&uri)?;
        let run_id = rt
            .block_on(async {
                let experiment = client.experiment_id(MLFLOW_EXPERIMENT).await?;
                let tags = [Tag {
                    key: "mlflow.source.name".into(),
                    value: "stage5-retrain".into(),
                }];
                let run = client.create_run(&experiment, run_name, &tags).await?;
                let params: Vec<Param> = params
                    .iter()
                    .map(|(k, v)| Param {
                        key: k.clone(),
                        value: v.clone(),
                    })
                    .collect();
                client
                    .log_batch(&run.info.run_id, &params, &[], &[])
                    .await?;
                anyhow::Ok(run.info.run_id)
            })
            .context("starting the MLflow training run")?;
        tracing::info!(run_id, "training tracked in MLflow");
        Ok(Self {
            rt,
            mlflow: Some((uri, run_id)),
        })
    }

    /// The MLflow run's id, when there is one.
    pub fn run_id(&self) -> Option<&str> {
        self.mlflow.as_ref().map(|(_, id)| id.as_str())
    }

    /// One epoch's metrics, at step = epoch.
    pub fn epoch(&self, end: &EpochEnd<'_>) {
        let Some((uri, run_id)) = &self.mlflow else {
            return;
        };
        let metrics = epoch_metrics(end);
        let sent = self.rt.block_on(async {
            let client = MlflowClient::new(uri)?;
            client.log_batch(run_id, &[], &metrics, &[]).await
        });
        if let Err(err) = sent {
            tracing::warn!("could not send epoch {} to MLflow: {err}", end.log.epoch);
        }
    }

    /// Mark the run FINISHED or FAILED (best effort).
    pub fn finish(&self, ok: bool) {
        let Some((uri, run_id)) = &self.mlflow else {
            return;
        };
        let status = if ok { "FINISHED" } else { "FAILED" };
        let sent = self.rt.block_on(async {
            let client = MlflowClient::new(uri)?;
            client.finish_run(run_id, status).await
        });
        if let Err(err) = sent {
            tracing::warn!("could not mark the MLflow run {run_id} {status}: {err}");
        }
    }
}

/// Loss, accuracy, speed and per-category validation top-1/top-3 of one epoch.
fn epoch_metrics(end: &EpochEnd<'_>) -> Vec<Metric> {
    let step = end.log.epoch as i64;
    let timestamp = time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64 / 1_000_000;
    let metric = |key: String, value: f64| Metric {
        key,
        value,
        timestamp,
        step,
    };
    let log = end.log;
    let mut metrics = vec![
        metric("train_loss".into(), log.train_loss),
        metric("train_accuracy".into(), log.train_accuracy),
        metric("val_top1".into(), log.val_accuracy),
        metric("val_top3".into(), log.val_top3),
        metric("learning_rate".into(), log.lr),
        metric("images_per_second".into(), log.images_per_second),
        metric("epoch_seconds".into(), log.seconds),
    ];
    for class in &end.validation.per_class {
        metrics.push(metric(format!("val_top1/{}", class.category), class.top1));
        metrics.push(metric(format!("val_top3/{}", class.category), class.top3));
    }
    metrics
}
