//! The command line: `--once` (the default) or `--every [DURATION]`.

use std::time::Duration;

use clap::Parser;
use doodle_core::config::{PipelineSettings, parse_duration};

use super::OrchestratorError;

/// Runs the retraining pipeline's seven stages as child processes and records each run in
/// `pipeline_runs`. Configuration: `config.toml` (`DOODLE_CONFIG`) and `DOODLE_*` variables.
///
/// Exit status: 0 the run completed (or was not triggered, or a schedule was stopped between
/// runs), 1 a stage failed, 2 the orchestrator could not run (configuration, database, lock
/// file), 3 another orchestrator holds the run lock, 130/143 stopped by SIGINT/SIGTERM
/// during a run.
#[derive(Debug, Parser)]
#[command(name = "pipeline-orchestrator", version)]
pub struct Cli {
    /// Run the pipeline once, then exit (the default).
    #[arg(long, conflicts_with = "every")]
    pub once: bool,

    /// Run now, then every DURATION (`90s`, `30m`, `1h`, `2d`) until SIGTERM or Ctrl-C;
    /// without a value, `pipeline.schedule_every`.
    #[arg(long, value_name = "DURATION", num_args = 0..=1, value_parser = parse_duration)]
    pub every: Option<Option<Duration>>,

    /// Check that a run could start (the database answers, every stage's program is found),
    /// print what was checked, and exit: 0 yes, 2 no. Writes no log file (a HEALTHCHECK).
    #[arg(long, conflicts_with_all = ["once", "every"])]
    pub check: bool,
}

/// One run, or runs on a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `--once`.
    Once,
    /// `--every`: a run now, then one at every tick.
    Every(Duration),
}

impl Cli {
    /// The mode, with `--every`'s default from the configuration.
    pub fn mode(&self, pipeline: &PipelineSettings) -> Result<Mode, OrchestratorError> {
        match self.every {
            None => Ok(Mode::Once),
            Some(Some(period)) => Ok(Mode::Every(period)),
            Some(None) => parse_duration(&pipeline.schedule_every)
                .map(Mode::Every)
                .map_err(OrchestratorError::Schedule),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(args: &[&str]) -> Result<Mode, String> {
        let cli = Cli::try_parse_from(args).map_err(|e| e.to_string())?;
        cli.mode(&PipelineSettings::default())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn once_is_the_default_and_every_takes_an_optional_duration() {
        assert_eq!(mode(&["o"]), Ok(Mode::Once));
        assert_eq!(mode(&["o", "--once"]), Ok(Mode::Once));
        assert_eq!(
            mode(&["o", "--every", "30m"]),
            Ok(Mode::Every(Duration::from_secs(1800)))
        );
        assert_eq!(
            mode(&["o", "--every"]),
            Ok(Mode::Every(Duration::from_secs(3600)))
        );
        assert!(mode(&["o", "--every", "soon"]).is_err());
        assert!(mode(&["o", "--once", "--every", "1s"]).is_err());
        assert!(mode(&["o", "--check", "--every"]).is_err());
        assert!(Cli::try_parse_from(["o", "--check"]).unwrap().check);
    }
}
