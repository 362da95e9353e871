//! The one error type of the orchestrator: what stops it from running a run at all. A stage
//! that fails is not an error here; it is recorded on the run.

use std::path::PathBuf;

use doodle_runs::RunsError;

use crate::lockfile::LockError;

/// Why the orchestrator could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum OrchestratorError {
    /// The run database refused or could not be reached.
    #[error(transparent)]
    Database(#[from] RunsError),
    /// The run lock file could not be used.
    #[error("the run lock: {0}")]
    Lock(#[from] LockError),
    /// The state folder (for the run lock) could not be created.
    #[error("cannot create the state folder {path}: {source}")]
    StateDir {
        /// `pipeline.state_dir`.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The signal handlers could not be installed.
    #[error("cannot listen for {signal}: {source}")]
    Signals {
        /// `SIGTERM` or `SIGINT`.
        signal: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// `pipeline.schedule_every` is not a duration (validated at load, so not expected).
    #[error("`pipeline.schedule_every`: {0}")]
    Schedule(String),
}
