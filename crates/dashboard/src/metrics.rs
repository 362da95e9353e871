//! `/metrics`: the shared HTTP metrics, `api_errors_total`, and the pipeline's own, read from
//! `pipeline_runs` at each scrape so Prometheus can alert on a failed pipeline without reading
//! the database itself.
//!
//! | metric | type | meaning |
//! |---|---|---|
//! | `doodle_pipeline_runs_total{outcome}` | counter | finished runs by outcome: `complete`, `failed`, `not_triggered` |
//! | `doodle_pipeline_runs_in_progress` | gauge | runs with a stage still waiting or running |
//! | `doodle_pipeline_last_run_id` | gauge | the newest run's id |
//! | `doodle_pipeline_last_run_start_time_seconds` | gauge | its start, Unix time |
//! | `doodle_pipeline_last_run_outcome{outcome}` | gauge | 1 for its outcome, 0 for the other three (`running` too) |
//! | `doodle_pipeline_last_run_stage_duration_seconds{stage,name}` | gauge | its stages' durations (stages that have one) |
//! | `doodle_pipeline_stage_duration_seconds_total{stage,name}` | counter | durations of every finished (complete or failed) stage, added up |
//! | `doodle_pipeline_stages_finished_total{stage,name}` | counter | how many there were (mean = rate of the first / rate of this) |
//! | `doodle_pipeline_database_up` | gauge | 1 when the last scrape read the database; 0 keeps the values of the last one that did |
//!
//! The counters come from the table (they only grow as runs are added); each scrape sets them
//! afresh, under a lock so two scrapes never see each other's half-written values.

use std::sync::Arc;

use doodle_core::metrics::Metrics;
use doodle_runs::{RunOutcome, RunStats, STAGE_NAMES, STAGES};
use prometheus::{CounterVec, Gauge, GaugeVec, IntCounterVec, IntGauge, IntGaugeVec, Opts};
use tokio::sync::Mutex;

use crate::db::Runs;
use crate::view::duration_s;

const BUG: &str = "valid metric definition. This is a bug.";

#[derive(Clone, Debug)]
pub struct DashboardMetrics {
    pub core: Metrics,
    api_errors: IntCounterVec,
    pipeline: Arc<PipelineMetrics>,
}

#[derive(Debug)]
struct PipelineMetrics {
    runs_total: IntCounterVec,
    runs_in_progress: IntGauge,
    last_run_id: IntGauge,
    last_run_start: Gauge,
    last_run_outcome: IntGaugeVec,
    last_run_stage_duration: GaugeVec,
    stage_seconds_total: CounterVec,
    stages_finished_total: IntCounterVec,
    database_up: IntGauge,
    /// Held while the values are rewritten and rendered.
    scrape: Mutex<()>,
}

fn stage_labels(n: usize) -> [String; 2] {
    [n.to_string(), STAGE_NAMES[n - 1].to_owned()]
}

impl DashboardMetrics {
    pub fn new() -> Self {
        let core = Metrics::new();
        let api_errors = IntCounterVec::new(
            Opts::new(
                "api_errors_total",
                "Error answers (4xx and 5xx), by endpoint and error type.",
            ),
            &["endpoint", "error_type"],
        )
        .expect(BUG);
        let stage = &["stage", "name"];
        let pipeline = PipelineMetrics {
            runs_total: IntCounterVec::new(
                Opts::new(
                    "doodle_pipeline_runs_total",
                    "Finished pipeline runs, by outcome (complete, failed, not_triggered).",
                ),
                &["outcome"],
            )
            .expect(BUG),
            runs_in_progress: IntGauge::new(
                "doodle_pipeline_runs_in_progress",
                "Pipeline runs with a stage still waiting or running.",
            )
            .expect(BUG),
            last_run_id: IntGauge::new("doodle_pipeline_last_run_id", "The newest run's id.")
                .expect(BUG),
            last_run_start: Gauge::new(
                "doodle_pipeline_last_run_start_time_seconds",
                "The newest run's start, in seconds since the Unix epoch.",
            )
            .expect(BUG),
            last_run_outcome: IntGaugeVec::new(
                Opts::new(
                    "doodle_pipeline_last_run_outcome",
                    "1 for the newest run's outcome (running, complete, failed, not_triggered), 0 for the others.",
                ),
                &["outcome"],
            )
            .expect(BUG),
            last_run_stage_duration: GaugeVec::new(
                Opts::new(
                    "doodle_pipeline_last_run_stage_duration_seconds",
                    "The newest run's stage durations (stages with a start and an end).",
                ),
                stage,
            )
            .expect(BUG),
            stage_seconds_total: CounterVec::new(
                Opts::new(
                    "doodle_pipeline_stage_duration_seconds_total",
                    "Durations of every finished (complete or failed) stage, added up.",
                ),
                stage,
            )
            .expect(BUG),
            stages_finished_total: IntCounterVec::new(
                Opts::new(
                    "doodle_pipeline_stages_finished_total",
                    "Finished (complete or failed) stages with a duration.",
                ),
                stage,
            )
            .expect(BUG),
            database_up: IntGauge::new(
                "doodle_pipeline_database_up",
                "1 when the last scrape could read pipeline_runs, else 0.",
            )
            .expect(BUG),
            scrape: Mutex::new(()),
        };
        core.register(Box::new(api_errors.clone()));
        core.register(Box::new(pipeline.runs_total.clone()));
        core.register(Box::new(pipeline.runs_in_progress.clone()));
        core.register(Box::new(pipeline.last_run_id.clone()));
        core.register(Box::new(pipeline.last_run_start.clone()));
        core.register(Box::new(pipeline.last_run_outcome.clone()));
        core.register(Box::new(pipeline.last_run_stage_duration.clone()));
        core.register(Box::new(pipeline.stage_seconds_total.clone()));
        core.register(Box::new(pipeline.stages_finished_total.clone()));
        core.register(Box::new(pipeline.database_up.clone()));
        Self {
            core,
            api_errors,
            pipeline: Arc::new(pipeline),
        }
    }

    pub fn api_error(&self, endpoint: &str, error_type: &str) {
        self.api_errors
            .with_label_values(&[endpoint, error_type])
            .inc();
    }

    /// Read the pipeline's numbers from the database, then render everything. When the
    /// database cannot be read, `doodle_pipeline_database_up` is 0 and the pipeline values are
    /// the last ones read; the scrape itself still succeeds.
    pub async fn scrape(&self, runs: &Runs) -> String {
        let p = &self.pipeline;
        let _one_at_a_time = p.scrape.lock().await;
        let read = async {
            let store = runs.store().await?;
            let stats = store.stats().await?;
            let last = store.list_summaries(1, 0).await?.pop();
            Ok::<_, doodle_runs::RunsError>((stats, last))
        }
        .await;
        match read {
            Ok((stats, last)) => {
                p.set_stats(&stats);
                p.set_last(last.as_ref());
                p.database_up.set(1);
            }
            Err(err) => {
                tracing::warn!(
                    "metrics: cannot read pipeline_runs: {}",
                    doodle_core::ErrorChain(&err)
                );
                p.database_up.set(0);
            }
        }
        self.core.render()
    }
}

impl PipelineMetrics {
    fn set_stats(&self, stats: &RunStats) {
        self.runs_total.reset();
        self.runs_in_progress.set(0);
        for outcome in [
            RunOutcome::Complete,
            RunOutcome::Failed,
            RunOutcome::NotTriggered,
        ] {
            // Every outcome is exported, 0 included, so an alert's `increase()` has a series.
            self.runs_total.with_label_values(&[outcome.as_str()]);
        }
        for &(outcome, runs) in &stats.outcomes {
            match outcome {
                RunOutcome::Running => self.runs_in_progress.set(runs),
                done => self
                    .runs_total
                    .with_label_values(&[done.as_str()])
                    .inc_by(u64::try_from(runs).unwrap_or(0)),
            }
        }
        self.stage_seconds_total.reset();
        self.stages_finished_total.reset();
        for n in 1..=STAGES {
            let labels = stage_labels(n);
            self.stage_seconds_total
                .with_label_values(&labels)
                .inc_by(stats.stage_seconds[n - 1].max(0.0));
            self.stages_finished_total
                .with_label_values(&labels)
                .inc_by(u64::try_from(stats.stages_finished[n - 1]).unwrap_or(0));
        }
    }

    fn set_last(&self, last: Option<&doodle_runs::Run>) {
        self.last_run_outcome.reset();
        self.last_run_stage_duration.reset();
        let Some(run) = last else {
            self.last_run_id.set(0);
            self.last_run_start.set(0.0);
            return;
        };
        self.last_run_id.set(run.run_id);
        self.last_run_start
            .set(run.start_time.unix_timestamp_nanos() as f64 / 1e9);
        let outcome = run.outcome();
        for o in RunOutcome::ALL {
            self.last_run_outcome
                .with_label_values(&[o.as_str()])
                .set(i64::from(o == outcome));
        }
        for (i, stage) in run.stages.iter().enumerate() {
            if let Some(seconds) = duration_s(stage.start, stage.end) {
                self.last_run_stage_duration
                    .with_label_values(&stage_labels(i + 1))
                    .set(seconds);
            }
        }
    }
}

impl Default for DashboardMetrics {
    fn default() -> Self {
        Self::new()
    }
}
