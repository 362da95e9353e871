//! `pipeline-orchestrator`: read the configuration, log to `pipeline_orchestrator.log`, run the
//! pipeline once (`--once`, the default) or on a schedule (`--every [DURATION]`); or only check
//! that a run could start (`--check`, no log file).

use std::process::ExitCode;

use clap::Parser;
use doodle_core::Settings;
use doodle_pipeline::orchestrator::{self, Cli, Exit};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("pipeline-orchestrator: {err}");
            return Exit::Error.into();
        }
    };
    if cli.check {
        return match orchestrator::check(&settings).await {
            Ok(lines) => {
                lines.iter().for_each(|line| println!("ok: {line}"));
                Exit::Success.into()
            }
            Err(message) => {
                eprintln!("pipeline-orchestrator --check: {message}");
                Exit::Error.into()
            }
        };
    }
    let _telemetry =
        match doodle_core::telemetry::init("pipeline_orchestrator.log", &settings.telemetry) {
            Ok(guard) => guard,
            Err(err) => {
                eprintln!("pipeline-orchestrator: {err}");
                return Exit::Error.into();
            }
        };
    let exit = orchestrator::run(&cli, &settings).await;
    tracing::info!(code = exit.code(), "pipeline-orchestrator exits");
    exit.into()
}
