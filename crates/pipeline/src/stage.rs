//! What every stage binary shares: configuration, its log file, the protocol's last lines, and
//! stopping when its orchestrator is gone.

use std::process::ExitCode;
use std::time::Duration;

use doodle_core::Settings;

use crate::protocol::{FAILURE_PREFIX, SUCCESS_LINE, StageOutput};

/// Run stage `number`'s `body` as a process: load the configuration, log to `stage<N>.log`,
/// print `result: …` + `success` (exit 0) or `failure: <reason>` (exit 1).
pub fn main(
    number: usize,
    body: impl FnOnce(&Settings) -> anyhow::Result<StageOutput>,
) -> ExitCode {
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(err) => {
            println!("{FAILURE_PREFIX}{err}");
            return ExitCode::from(2);
        }
    };
    let telemetry =
        match doodle_core::telemetry::init(&format!("stage{number}.log"), &settings.telemetry) {
            Ok(guard) => guard,
            Err(err) => {
                println!("{FAILURE_PREFIX}{err}");
                return ExitCode::from(2);
            }
        };
    exit_when_orphaned();
    let outcome = body(&settings);
    match &outcome {
        Ok(output) => tracing::info!(stage = number, result = %output.line(), "stage succeeded"),
        Err(err) => tracing::error!(stage = number, "stage failed: {err:#}"),
    }
    // Flush the log first, so the protocol's lines are the last ones on stdout.
    drop(telemetry);
    match outcome {
        Ok(output) => {
            println!("{}", output.line());
            println!("{SUCCESS_LINE}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            println!("{FAILURE_PREFIX}{err:#}");
            ExitCode::FAILURE
        }
    }
}

/// A stage whose orchestrator died (its parent changed) stops, instead of running on beside
/// the next orchestrator's stages. Stopping anywhere is safe: it is no different from a kill.
fn exit_when_orphaned() {
    let parent = std::os::unix::process::parent_id();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(250));
            if std::os::unix::process::parent_id() != parent {
                tracing::error!(
                    parent,
                    "the process that started this stage is gone; stopping"
                );
                println!(
                    "{FAILURE_PREFIX}the process that started this stage (pid {parent}) is gone"
                );
                std::process::exit(1);
            }
        }
    });
}
