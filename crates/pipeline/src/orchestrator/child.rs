//! One stage as a child process: started in its own process group with its output piped, and
//! watched until it exits, runs past its time limit or the orchestrator is asked to stop. In
//! the last two cases the whole group gets SIGTERM, then SIGKILL after a grace period, so the
//! stage's own children die with it.

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

use super::output::{self, Collected, Lines, StageLog};
use super::stop::{Stop, StopSignal};

/// Between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(2);
/// How long output may still arrive once the stage's process group is gone.
const DRAIN: Duration = Duration::from_secs(5);

/// What to start.
#[derive(Debug)]
pub(crate) struct Launch<'a> {
    pub program: &'a Path,
    pub args: &'a [String],
    pub env: &'a [(&'static str, String)],
    pub timeout: Duration,
    pub run: i64,
    pub stage: usize,
}

/// Why the stage's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// On its own.
    Exited,
    /// Killed: it ran past its time limit.
    TimedOut,
    /// Killed: the orchestrator received this signal.
    Stopped(StopSignal),
}

/// A stage process that has ended.
#[derive(Debug)]
pub(crate) struct Finished {
    pub ending: Ending,
    pub status: ExitStatus,
    pub output: Collected,
    /// How long `spawn` itself took.
    pub spawn_time: Duration,
}

/// Why a stage process could not be run.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ChildError {
    #[error("cannot start `{program}`: {source}")]
    Spawn { program: String, source: io::Error },
    #[error("lost track of its process: {0}")]
    Wait(io::Error),
}

/// Start the stage, watch it to its end and collect its output into `log`.
pub(crate) async fn run(
    launch: &Launch<'_>,
    log: StageLog,
    stop: &mut Stop,
) -> Result<Finished, ChildError> {
    let started = Instant::now();
    let mut child = spawn(launch)?;
    let spawn_time = started.elapsed();
    let mut group = Group::of(&child);
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let (stdout, stderr) = (stdout.expect("piped"), stderr.expect("piped"));
    let (cancel, cancelled) = oneshot::channel();
    let lines = Lines::new(log, started, launch.run, launch.stage);
    let mut reader = tokio::spawn(output::collect(stdout, stderr, lines, cancelled));

    let (ending, status) = watch(&mut child, &group, launch.timeout, stop).await?;
    group.kill_leftovers(launch.stage);
    let output = match tokio::time::timeout(DRAIN, &mut reader).await {
        Ok(joined) => joined,
        Err(_) => {
            tracing::warn!(
                stage = launch.stage,
                "output still open {DRAIN:?} after the stage ended; no longer read"
            );
            let _ = cancel.send(());
            reader.await
        }
    };
    let output = output.expect("the output reader does not panic");
    Ok(Finished {
        ending,
        status,
        output,
        spawn_time,
    })
}

fn spawn(launch: &Launch<'_>) -> Result<Child, ChildError> {
    Command::new(launch.program)
        .args(launch.args)
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| ChildError::Spawn {
            program: launch.program.display().to_string(),
            source,
        })
}

/// Wait for the child to exit, or kill its group on timeout or stop.
async fn watch(
    child: &mut Child,
    group: &Group,
    timeout: Duration,
    stop: &mut Stop,
) -> Result<(Ending, ExitStatus), ChildError> {
    let ending = tokio::select! {
        status = child.wait() => return Ok((Ending::Exited, status.map_err(ChildError::Wait)?)),
        () = tokio::time::sleep(timeout) => Ending::TimedOut,
        signal = stop.wait() => Ending::Stopped(signal),
    };
    let status = terminate(child, group).await.map_err(ChildError::Wait)?;
    Ok((ending, status))
}

/// SIGTERM to the group; SIGKILL to whatever is left of it after [`GRACE`].
async fn terminate(child: &mut Child, group: &Group) -> io::Result<ExitStatus> {
    let deadline = tokio::time::Instant::now() + GRACE;
    group.signal(Signal::TERM);
    let status = match tokio::time::timeout_at(deadline, child.wait()).await {
        Ok(status) => Some(status?),
        Err(_) => None,
    };
    while group.alive() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    group.signal(Signal::KILL);
    match status {
        Some(status) => Ok(status),
        None => child.wait().await,
    }
}

/// The stage's process group (its id is the stage's pid); SIGKILLed when dropped before
/// [`Group::kill_leftovers`] (the orchestrator's future was dropped mid-stage).
#[derive(Debug)]
struct Group {
    id: Option<Pid>,
}

impl Group {
    fn of(child: &Child) -> Self {
        let id = child
            .id()
            .and_then(|pid| i32::try_from(pid).ok())
            .and_then(Pid::from_raw);
        Self { id }
    }

    fn signal(&self, signal: Signal) {
        if let Some(id) = self.id {
            let _ = rustix::process::kill_process_group(id, signal);
        }
    }

    /// True while any process (a zombie too) is in the group.
    fn alive(&self) -> bool {
        self.id
            .is_some_and(|id| rustix::process::test_kill_process_group(id).is_ok())
    }

    /// The stage ended: nothing it started may outlive it (or hold its output open).
    /// Disarms the guard.
    fn kill_leftovers(&mut self, stage: usize) {
        if let Some(id) = self.id.take()
            && rustix::process::kill_process_group(id, Signal::KILL).is_ok()
        {
            tracing::debug!(
                stage,
                "sent SIGKILL to what was left of the stage's process group"
            );
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.signal(Signal::KILL);
    }
}

/// "exited with status 1", "killed by signal 9 (SIGKILL)".
pub(crate) fn describe(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exited with status {code}");
    }
    match status.signal() {
        Some(signal) => match signal_name(signal) {
            Some(name) => format!("killed by signal {signal} ({name})"),
            None => format!("killed by signal {signal}"),
        },
        None => format!("ended with {status}"),
    }
}

fn signal_name(signal: i32) -> Option<&'static str> {
    Some(match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_statuses_read_as_words() {
        assert_eq!(
            describe(ExitStatus::from_raw(3 << 8)),
            "exited with status 3"
        );
        assert_eq!(
            describe(ExitStatus::from_raw(9)),
            "killed by signal 9 (SIGKILL)"
        );
        assert_eq!(describe(ExitStatus::from_raw(40)), "killed by signal 40");
    }
}
