//! The orchestrator: runs stages 1…7 as child processes and records each run in
//! `pipeline_runs`.
//!
//! ```text
//! cli.rs      --once | --every [DURATION] | --check
//! check.rs    --check: the database answers and every stage's program is found
//! run.rs      one run: the run lock, a row in pipeline_runs, the stages in order, the threshold
//! child.rs    one stage process: its own process group, output piped, time limit, TERM → KILL
//! output.rs   its lines → <log_dir>/runs/<run_id>/stage<N>.log, the last 20, the protocol lines
//! command.rs  a stage's program: a path, or a name beside the orchestrator, then on PATH
//! stop.rs     SIGTERM / SIGINT, seen by whoever is waiting
//! ```
//!
//! A run: take the run lock (`<state_dir>/orchestrator.lock`; held → exit 3), mark runs left
//! unfinished by a dead orchestrator failed, create the run, then per stage: `running`, spawn,
//! wait, record its `result:` fields, then `complete` or `failed` (which fails every later
//! stage and halts the run). Stage 1's `new_images` below `pipeline.file_threshold` ends the
//! run with stages 2–7 `not_triggered`.
//!
//! The lock file names its holder (JSON: host, pid, since, run_id) while held and is emptied on
//! a clean release, so a free lock that still names someone was left by an orchestrator that
//! died: the next one logs "taking over the run lock left by pid X on host Y" and marks that
//! run failed with the reason. Limits: the lock only keeps apart orchestrators sharing a state
//! folder (two hosts with separate state folders and one PostgreSQL must not both run a
//! schedule), and a stage whose orchestrator was SIGKILLed is not killed by the next one (it
//! is in its own process group; the data stages' own lock keeps it from clashing).

mod check;
mod child;
mod cli;
mod command;
mod error;
mod output;
mod run;
mod stop;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use doodle_core::config::PipelineSettings;
use doodle_core::{ErrorChain, Settings};
use doodle_runs::RunStore;

pub use check::check;
pub use cli::{Cli, Mode};
pub use error::OrchestratorError;
pub use run::{RunEnd, Trigger};
pub use stop::{Stop, StopSignal};

/// Environment variable with the stage's number (1…7), set for every stage (beside
/// [`crate::protocol::RUN_ID_ENV`]).
pub const STAGE_ENV: &str = "DOODLE_STAGE";
/// The run lock's file name in `pipeline.state_dir`.
pub const LOCK_FILE: &str = "orchestrator.lock";

/// How the orchestrator ends; [`Exit::code`] is its exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: the run completed or was not triggered; a schedule stopped between runs.
    Success,
    /// 1: a stage failed and the run halted.
    RunFailed,
    /// 2: the orchestrator could not run (configuration, database, lock file).
    Error,
    /// 3: another orchestrator holds the run lock.
    Locked,
    /// 143 / 130: stopped by SIGTERM / SIGINT during a run.
    Stopped(StopSignal),
}

impl Exit {
    /// The process exit status.
    pub fn code(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::RunFailed => 1,
            Self::Error => 2,
            Self::Locked => 3,
            Self::Stopped(signal) => signal.exit_code(),
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit.code())
    }
}

/// Everything a run needs: the configuration, the run database and the stop signal.
#[derive(Debug)]
pub struct Orchestrator {
    pipeline: PipelineSettings,
    log_dir: PathBuf,
    store: RunStore,
    stop: Stop,
    exe_dir: Option<PathBuf>,
}

impl Orchestrator {
    /// Connect to the run database and migrate it ("initialize").
    pub async fn build(settings: &Settings, stop: Stop) -> Result<Self, OrchestratorError> {
        let store = RunStore::connect(&settings.database.url).await?;
        store.migrate().await?;
        let exe_dir = command::exe_dir();
        Ok(Self {
            pipeline: settings.pipeline.clone(),
            log_dir: settings.telemetry.log_dir.clone(),
            store,
            stop,
            exe_dir,
        })
    }

    /// `--once`: one run.
    pub async fn once(&self) -> Exit {
        match self.run(Trigger::Once).await {
            Ok(RunEnd::Complete(_) | RunEnd::NotTriggered(_)) => Exit::Success,
            Ok(RunEnd::Failed { .. }) => Exit::RunFailed,
            Ok(RunEnd::Locked(_)) => Exit::Locked,
            Ok(RunEnd::Stopped { signal, .. }) => Exit::Stopped(signal),
            Err(err) => failed(&err),
        }
    }

    /// `--every`: a run now, then one at each tick (`period` apart; ticks missed while a run
    /// went on are skipped). A failed or refused run does not stop the schedule; a stop
    /// signal does (at once between runs, exit 0).
    pub async fn every(&self, period: Duration) -> Exit {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut stop = self.stop.clone();
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                signal = stop.wait() => {
                    tracing::info!(signal = signal.name(), "stopped between scheduled runs");
                    return Exit::Success;
                }
            }
            match self.run(Trigger::Schedule).await {
                Ok(RunEnd::Stopped {
                    run: Some(_),
                    signal,
                }) => return Exit::Stopped(signal),
                Ok(_) => {}
                Err(err) => {
                    tracing::error!("scheduled run failed: {}", ErrorChain(&err));
                }
            }
            tracing::info!(
                every_s = period.as_secs(),
                "waiting for the next scheduled run"
            );
        }
    }
}

/// The whole program after configuration and logging: build, then run once or on a schedule.
pub async fn run(cli: &Cli, settings: &Settings) -> Exit {
    match start(cli, settings).await {
        Ok(Started::Ready(orchestrator, Mode::Once)) => orchestrator.once().await,
        Ok(Started::Ready(orchestrator, Mode::Every(period))) => orchestrator.every(period).await,
        Ok(Started::Stopped(signal)) => Exit::Stopped(signal),
        Err(err) => failed(&err),
    }
}

enum Started {
    Ready(Box<Orchestrator>, Mode),
    Stopped(StopSignal),
}

/// Signals first (a stop while the database is being reached ends the wait), then the rest.
async fn start(cli: &Cli, settings: &Settings) -> Result<Started, OrchestratorError> {
    let mode = cli.mode(&settings.pipeline)?;
    let mut stop = Stop::install()?;
    tokio::select! {
        built = Orchestrator::build(settings, stop.clone()) => {
            Ok(Started::Ready(Box::new(built?), mode))
        }
        signal = stop.wait() => Ok(Started::Stopped(signal)),
    }
}

/// Log the error (and say it on stderr, for a person at a terminal) → exit 2.
fn failed(err: &OrchestratorError) -> Exit {
    tracing::error!("pipeline-orchestrator cannot run: {}", ErrorChain(err));
    eprintln!("pipeline-orchestrator: {}", ErrorChain(err));
    Exit::Error
}
