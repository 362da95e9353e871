//! `pipeline_runs`: the state of every pipeline run, in SQLite (the embedded default) or
//! PostgreSQL (docker-compose), through one API used by the orchestrator and the dashboard.
//!
//! The table is the design's (`run_id`, `start_time`, `stage_X_status`, `stage_X_start`,
//! `stage_X_end` for X = 1…7) plus what a person wants to know about a run: why a stage failed
//! (`stage_X_message`), what triggered it, how many new drawings it saw, the data version it
//! produced, the model version it registered and whether the gate promoted it, and which
//! orchestrator (host, pid) ran it. Migrations live in the repository's top-level
//! `migrations/sqlite` and `migrations/postgres`.

use std::fmt;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

mod codec;
mod sql;
mod store;
#[cfg(feature = "test-support")]
pub mod test_support;

pub use store::RunStore;

/// Number of stages in a run.
pub const STAGES: usize = 7;

/// The stages' short names, in order (stage 1 = `scan`).
pub const STAGE_NAMES: [&str; STAGES] = [
    "scan", "merge", "convert", "version", "retrain", "register", "clean",
];

/// A run's id (`pipeline_runs.run_id`).
pub type RunId = i64;

/// What can go wrong with the run database.
#[derive(Debug, thiserror::Error)]
pub enum RunsError {
    /// The URL is neither `sqlite:` nor `postgres:` / `postgresql:`.
    #[error("database URL `{0}` is neither sqlite: nor postgres:")]
    UnsupportedUrl(String),
    /// The database could not be reached (refused, timed out, TLS, pool closed): retry later.
    #[error("the run database is unreachable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// A migration failed (the database answered).
    #[error("migrating the run database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("run {0} does not exist")]
    NoSuchRun(RunId),
    #[error("stage {0} does not exist (stages are 1-7)")]
    NoSuchStage(usize),
    /// A stage range whose start is after its end.
    #[error("stage range {start}..={end} is empty")]
    EmptyRange { start: usize, end: usize },
    #[error("status `{0}` is not a final status")]
    NotFinal(StageStatus),
    /// Any other database error (the database answered, but with an error).
    #[error("run database: {0}")]
    Query(#[source] sqlx::Error),
}

impl RunsError {
    /// True when the database could not be reached (a client should retry later).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// A stage's status, stored as the design's strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageStatus {
    Waiting,
    Running,
    Complete,
    Failed,
    NotTriggered,
}

impl StageStatus {
    /// Every status, in the order a stage usually goes through them.
    pub const ALL: [StageStatus; 5] = [
        Self::Waiting,
        Self::Running,
        Self::Complete,
        Self::Failed,
        Self::NotTriggered,
    ];

    /// The stored string: `waiting`, `running`, `complete`, `failed`, `not_triggered`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Running => "running",
            Self::Complete => "complete",
            Self::Failed => "failed",
            Self::NotTriggered => "not_triggered",
        }
    }

    /// Complete, failed or not triggered: nothing will change it any more.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Complete | Self::Failed | Self::NotTriggered)
    }
}

impl fmt::Display for StageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StageStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not a stage status"))
    }
}

/// One stage of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageState {
    pub status: StageStatus,
    #[serde(with = "time::serde::rfc3339::option")]
    pub start: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub end: Option<OffsetDateTime>,
    /// Why it failed (or was not triggered), in words.
    pub message: Option<String>,
}

/// One row of `pipeline_runs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub run_id: RunId,
    #[serde(with = "time::serde::rfc3339")]
    pub start_time: OffsetDateTime,
    /// Set when the run ended (every stage final).
    #[serde(with = "time::serde::rfc3339::option")]
    pub end_time: Option<OffsetDateTime>,
    /// `schedule`, `once`, `manual`, ... (what started it).
    pub trigger: String,
    /// The orchestrator that ran it.
    pub host: String,
    pub pid: i64,
    /// Stage 1 … 7 (index 0 is stage 1).
    pub stages: [StageState; STAGES],
    #[serde(flatten)]
    pub output: RunOutput,
}

impl Run {
    /// Stage `n` (1-based).
    pub fn stage(&self, n: usize) -> &StageState {
        &self.stages[n - 1]
    }
}

impl Run {
    /// What became of the run, from its stages' statuses (see [`RunOutcome`]).
    pub fn outcome(&self) -> RunOutcome {
        let any = |status: StageStatus| self.stages.iter().any(|s| s.status == status);
        if any(StageStatus::Waiting) || any(StageStatus::Running) {
            RunOutcome::Running
        } else if any(StageStatus::Failed) {
            RunOutcome::Failed
        } else if any(StageStatus::NotTriggered) {
            RunOutcome::NotTriggered
        } else {
            RunOutcome::Complete
        }
    }
}

/// What became of a run: the first that applies of a stage still open (`running`), a stage
/// failed (`failed`), a stage not triggered (`not_triggered`: stage 1 found too few new
/// drawings), else `complete`. The same rule is written in SQL for [`RunStore::stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    Running,
    Complete,
    Failed,
    NotTriggered,
}

impl RunOutcome {
    pub const ALL: [RunOutcome; 4] = [
        Self::Running,
        Self::Complete,
        Self::Failed,
        Self::NotTriggered,
    ];

    /// `running`, `complete`, `failed`, `not_triggered`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Complete => "complete",
            Self::Failed => "failed",
            Self::NotTriggered => "not_triggered",
        }
    }
}

impl fmt::Display for RunOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunOutcome {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not a run outcome"))
    }
}

/// Totals over every run, for the dashboard's `/metrics` ([`RunStore::stats`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunStats {
    /// How many runs have each outcome (outcomes with no run are absent).
    pub outcomes: Vec<(RunOutcome, i64)>,
    /// Per stage (index 0 is stage 1): how many finished (complete or failed, with a start and
    /// an end) ...
    pub stages_finished: [i64; STAGES],
    /// ... and their durations added up, in seconds.
    pub stage_seconds: [f64; STAGES],
}

/// Where the orchestrator writes stage `stage`'s output for run `run`:
/// `<log_dir>/runs/<run_id>/stage<N>.log`. The one definition, used by the orchestrator to
/// write and by the dashboard to read: the path is made of two numbers only, so nothing a
/// client sends can name another file.
pub fn stage_log_path(log_dir: &Path, run: RunId, stage: usize) -> PathBuf {
    log_dir
        .join("runs")
        .join(run.to_string())
        .join(format!("stage{stage}.log"))
}

/// What a run produced; `None` = not known (yet). [`RunStore::record`] sets only the `Some`s.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunOutput {
    pub new_images: Option<i64>,
    /// The data repository's git commit after stage 4.
    pub data_commit: Option<String>,
    /// DVC's hash of the data folder after stage 4.
    pub data_hash: Option<String>,
    /// The model version registered by stage 6.
    pub model_version: Option<String>,
    /// Whether the gate promoted it.
    pub promoted: Option<bool>,
    /// The gate's report (JSON text), stored with the run.
    pub gate_report: Option<String>,
}

/// Who starts a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRun {
    pub trigger: String,
    pub host: String,
    pub pid: u32,
}

/// Checks a 1-based stage number.
pub fn check_stage(n: usize) -> Result<(), RunsError> {
    if (1..=STAGES).contains(&n) {
        Ok(())
    } else {
        Err(RunsError::NoSuchStage(n))
    }
}

/// The stages `range` as a checked range (both ends 1..=7, start ≤ end).
pub fn check_range(range: &RangeInclusive<usize>) -> Result<(), RunsError> {
    let (start, end) = (*range.start(), *range.end());
    check_stage(start)?;
    check_stage(end)?;
    if start > end {
        return Err(RunsError::EmptyRange { start, end });
    }
    Ok(())
}
