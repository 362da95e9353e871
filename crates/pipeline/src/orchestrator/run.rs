//! One run: the run lock, a row in `pipeline_runs`, then the stages in order.

use std::path::{Path, PathBuf};
use std::time::Duration;

use doodle_runs::{NewRun, RunId, RunOutput, STAGE_NAMES, STAGES, StageStatus};
use time::OffsetDateTime;

use super::child::{self, Ending, Finished, Launch};
use super::output::{StageLog, millis};
use super::stop::StopSignal;
use super::{LOCK_FILE, Orchestrator, OrchestratorError, STAGE_ENV, command};
use crate::lockfile::{self, FileLock, Holder};
use crate::protocol::{RUN_ID_ENV, StageOutput};

/// What the lock file says holds it.
const WHAT: &str = "pipeline-orchestrator";

/// What started a run (`pipeline_runs.trigger`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// `--once`.
    Once,
    /// `--every`.
    Schedule,
}

impl Trigger {
    /// `once` or `schedule`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Once => "once",
            Self::Schedule => "schedule",
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEnd {
    /// Every stage complete.
    Complete(RunId),
    /// Stage 1 found too few new images: stages 2–7 not triggered.
    NotTriggered(RunId),
    /// Stage `stage` failed; it and every later stage are `failed`.
    Failed {
        /// The run.
        run: RunId,
        /// The stage that failed.
        stage: usize,
    },
    /// A stop signal ended it (`run` is `None` when it came before the run was created).
    Stopped {
        /// The run it stopped.
        run: Option<RunId>,
        /// The signal.
        signal: StopSignal,
    },
    /// Another orchestrator holds the run lock (who, when its file says so); nothing was run.
    Locked(Option<Holder>),
}

impl std::fmt::Display for RunEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Complete(_) => f.write_str("complete"),
            Self::NotTriggered(_) => f.write_str("not triggered"),
            Self::Failed { stage, .. } => write!(f, "failed at stage {stage}"),
            Self::Stopped { signal, .. } => write!(f, "stopped by {}", signal.name()),
            Self::Locked(_) => f.write_str("refused: the run lock is held"),
        }
    }
}

/// What one stage came to.
#[derive(Debug)]
enum Verdict {
    Complete,
    Failed(String),
    Stopped(StopSignal),
}

/// What to do after a stage.
#[derive(Debug)]
enum Next {
    Continue,
    End(RunEnd),
}

impl Orchestrator {
    /// One run, start to end; the run lock is held throughout.
    pub async fn run(&self, trigger: Trigger) -> Result<RunEnd, OrchestratorError> {
        if let Some(signal) = self.stop.requested() {
            return Ok(RunEnd::Stopped { run: None, signal });
        }
        let Some(mut lock) = self.take_lock()? else {
            return Ok(RunEnd::Locked(self.report_holder()));
        };
        lock.write_holder(&Holder::this_process(WHAT, None))?;
        self.abandon_left_over(&lock).await?;
        let run = self.store.create_run(&new_run(trigger)).await?;
        lock.write_holder(&Holder::this_process(WHAT, Some(run)))?;
        tracing::info!(run, trigger = trigger.as_str(), "run {run} started");
        let end = self.stages(run).await?;
        self.store.finish_run(run).await?;
        tracing::info!(run, outcome = %end, "run {run} finished: {end}");
        lock.release()?;
        Ok(end)
    }

    fn lock_path(&self) -> PathBuf {
        self.pipeline.state_dir.join(LOCK_FILE)
    }

    fn take_lock(&self) -> Result<Option<FileLock>, OrchestratorError> {
        let dir = &self.pipeline.state_dir;
        std::fs::create_dir_all(dir).map_err(|source| OrchestratorError::StateDir {
            path: dir.clone(),
            source,
        })?;
        Ok(FileLock::try_acquire(&self.lock_path())?)
    }

    /// The lock is held: say by whom, in the log and on stderr.
    fn report_holder(&self) -> Option<Holder> {
        let path = self.lock_path();
        let holder = lockfile::read_holder(&path);
        let who = holder.as_ref().map_or_else(
            || "a process that has not said who it is".into(),
            Holder::to_string,
        );
        tracing::warn!(
            lock = %path.display(),
            holder_pid = holder.as_ref().map(|h| h.pid),
            holder_host = holder.as_ref().map(|h| h.host.as_str()),
            holder_since = holder.as_ref().map(|h| h.since.as_str()),
            holder_run = holder.as_ref().and_then(|h| h.run_id),
            "the run lock is held by {who}; not starting a run"
        );
        eprintln!(
            "pipeline-orchestrator: another orchestrator holds the run lock {}: {who}",
            path.display()
        );
        holder
    }

    /// Runs left `running`/`waiting` can only be a dead orchestrator's now that we hold the lock.
    async fn abandon_left_over(&self, lock: &FileLock) -> Result<(), OrchestratorError> {
        let reason = match lock.previous_holder() {
            Some(dead) => {
                tracing::warn!(
                    pid = dead.pid,
                    host = %dead.host,
                    since = %dead.since,
                    run = dead.run_id,
                    "taking over the run lock left by pid {} on host {}",
                    dead.pid,
                    dead.host
                );
                format!(
                    "orchestrator pid {} on host {} stopped without finishing the run",
                    dead.pid, dead.host
                )
            }
            None => "the orchestrator running it stopped without finishing the run".into(),
        };
        for run in self.store.abandon_unfinished(&reason).await? {
            tracing::warn!(run, reason = %reason, "marked run {run} failed");
        }
        Ok(())
    }

    async fn stages(&self, run: RunId) -> Result<RunEnd, OrchestratorError> {
        for stage in 1..=STAGES {
            if let Next::End(end) = self.stage(run, stage).await? {
                return Ok(end);
            }
        }
        Ok(RunEnd::Complete(run))
    }

    async fn stage(&self, run: RunId, stage: usize) -> Result<Next, OrchestratorError> {
        if let Some(signal) = self.stop.requested() {
            let message = format!("stopped by {} before it started", signal.name());
            self.store
                .set_stage(run, stage, StageStatus::Failed, Some(&message))
                .await?;
            return Ok(Next::End(RunEnd::Stopped {
                run: Some(run),
                signal,
            }));
        }
        self.store
            .set_stage(run, stage, StageStatus::Running, None)
            .await?;
        let (verdict, output) = self.execute(run, stage).await;
        if let Some(output) = &output {
            self.store.record(run, &run_output(output)).await?;
        }
        self.conclude(run, stage, verdict, output).await
    }

    /// Start the stage's process and watch it to its end; never an error (a stage that cannot
    /// be run has failed).
    async fn execute(&self, run: RunId, stage: usize) -> (Verdict, Option<StageOutput>) {
        let argv = &self.pipeline.stage_commands[stage - 1];
        let path_var = std::env::var_os("PATH");
        let program = match command::resolve(&argv[0], self.exe_dir.as_deref(), path_var.as_deref())
        {
            Ok(program) => program,
            Err(message) => return (not_started(run, stage, message), None),
        };
        let log_path = self.stage_log(run, stage);
        let log = match StageLog::open(&log_path) {
            Ok(log) => log,
            Err(err) => {
                let message = format!("cannot open its log {}: {err}", log_path.display());
                return (not_started(run, stage, message), None);
            }
        };
        let timeout_secs = self.pipeline.stage_timeout_secs[stage - 1];
        let env = [
            (RUN_ID_ENV, run.to_string()),
            (STAGE_ENV, stage.to_string()),
        ];
        let launch = Launch {
            program: &program,
            args: &argv[1..],
            env: &env,
            timeout: Duration::from_secs(timeout_secs),
            run,
            stage,
        };
        log_started(&launch, &log_path);
        let start = OffsetDateTime::now_utc();
        let mut stop = self.stop.clone();
        match child::run(&launch, log, &mut stop).await {
            Ok(finished) => {
                let verdict = judge(&finished, timeout_secs);
                log_finished(&launch, start, &finished, &verdict);
                let output = finished.output.result.and_then(Result::ok);
                (verdict, output)
            }
            Err(err) => (not_started(run, stage, err.to_string()), None),
        }
    }

    fn stage_log(&self, run: RunId, stage: usize) -> PathBuf {
        doodle_runs::stage_log_path(&self.log_dir, run, stage)
    }

    /// Store the verdict; stage 1 also decides whether the rest of the run is triggered.
    async fn conclude(
        &self,
        run: RunId,
        stage: usize,
        verdict: Verdict,
        output: Option<StageOutput>,
    ) -> Result<Next, OrchestratorError> {
        let (status, message, next) = match verdict {
            Verdict::Complete if stage == 1 => return self.threshold(run, output).await,
            Verdict::Complete => (StageStatus::Complete, None, Next::Continue),
            Verdict::Failed(message) => {
                let end = RunEnd::Failed { run, stage };
                (StageStatus::Failed, Some(message), Next::End(end))
            }
            Verdict::Stopped(signal) => {
                let end = RunEnd::Stopped {
                    run: Some(run),
                    signal,
                };
                let message = format!("stopped by {}", signal.name());
                (StageStatus::Failed, Some(message), Next::End(end))
            }
        };
        self.store
            .set_stage(run, stage, status, message.as_deref())
            .await?;
        Ok(next)
    }

    /// Stage 1 succeeded: its `new_images` against `pipeline.file_threshold`.
    async fn threshold(
        &self,
        run: RunId,
        output: Option<StageOutput>,
    ) -> Result<Next, OrchestratorError> {
        let Some(count) = output.and_then(|out| out.new_images) else {
            let message = "its result line has no `new_images` (the number of new drawings)";
            tracing::warn!(run, stage = 1, "stage 1 failed: {message}");
            self.store
                .set_stage(run, 1, StageStatus::Failed, Some(message))
                .await?;
            return Ok(Next::End(RunEnd::Failed { run, stage: 1 }));
        };
        self.store
            .set_stage(run, 1, StageStatus::Complete, None)
            .await?;
        let threshold = self.pipeline.file_threshold;
        if count >= threshold {
            return Ok(Next::Continue);
        }
        let message = format!("{count} new images, below the threshold of {threshold}");
        tracing::info!(
            run,
            new_images = count,
            threshold,
            "{message}: stages 2-7 not triggered"
        );
        self.store
            .mark_not_triggered(run, 2..=STAGES, &message)
            .await?;
        Ok(Next::End(RunEnd::NotTriggered(run)))
    }
}

fn new_run(trigger: Trigger) -> NewRun {
    NewRun {
        trigger: trigger.as_str().into(),
        host: lockfile::host_name(),
        pid: std::process::id(),
    }
}

/// The fields of a stage's result that `pipeline_runs` keeps.
fn run_output(output: &StageOutput) -> RunOutput {
    RunOutput {
        new_images: output
            .new_images
            .map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
        data_commit: output.data_commit.clone(),
        data_hash: output.data_hash.clone(),
        model_version: output.model_version.clone(),
        promoted: output.promoted,
        gate_report: output.gate_report.as_ref().map(|report| report.to_string()),
    }
}

/// The outcome is the exit status; the output says why, and a bad `result:` line fails it.
fn judge(finished: &Finished, timeout_secs: u64) -> Verdict {
    let out = &finished.output;
    match finished.ending {
        Ending::TimedOut => Verdict::Failed(format!(
            "timed out after {timeout_secs} s; process group killed"
        )),
        Ending::Stopped(signal) => Verdict::Stopped(signal),
        Ending::Exited if !finished.status.success() => Verdict::Failed(
            out.failure
                .clone()
                .unwrap_or_else(|| child::describe(finished.status)),
        ),
        Ending::Exited => match &out.result {
            Some(Err(err)) => Verdict::Failed(format!("its result line is unreadable: {err}")),
            _ => Verdict::Complete,
        },
    }
}

/// A stage that could not be started has failed; say why in the log.
fn not_started(run: RunId, stage: usize, message: String) -> Verdict {
    tracing::error!(
        run,
        stage,
        name = STAGE_NAMES[stage - 1],
        "stage {stage} failed: {message}"
    );
    Verdict::Failed(message)
}

fn log_started(launch: &Launch<'_>, log: &Path) {
    let stage = launch.stage;
    tracing::info!(
        run = launch.run,
        stage,
        name = STAGE_NAMES[stage - 1],
        program = %launch.program.display(),
        args = ?launch.args,
        timeout_s = launch.timeout.as_secs(),
        log = %log.display(),
        "stage {stage} started"
    );
}

/// The stage's line in the orchestrator's log: times, exit status, first-line latency and
/// its last lines.
fn log_finished(
    launch: &Launch<'_>,
    start: OffsetDateTime,
    finished: &Finished,
    verdict: &Verdict,
) {
    let end = OffsetDateTime::now_utc();
    let out = &finished.output;
    let (status, reason) = match verdict {
        Verdict::Complete => ("complete", None),
        Verdict::Failed(message) => ("failed", Some(message.clone())),
        Verdict::Stopped(signal) => ("failed", Some(format!("stopped by {}", signal.name()))),
    };
    let stage = launch.stage;
    tracing::info!(
        run = launch.run,
        stage,
        name = STAGE_NAMES[stage - 1],
        status,
        exit = %child::describe(finished.status),
        start = %rfc3339(start),
        end = %rfc3339(end),
        duration_ms = millis((end - start).unsigned_abs()),
        spawn_ms = millis(finished.spawn_time),
        first_line_ms = %out.first_line.map_or_else(|| "none".into(), |d| millis(d).to_string()),
        lines = out.lines,
        reason = reason.as_deref(),
        last_lines = ?out.last_lines,
        "stage {stage} {status}"
    );
    if let Some(reason) = reason {
        tracing::warn!(run = launch.run, stage, "stage {stage} failed: {reason}");
    }
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| at.to_string())
}
