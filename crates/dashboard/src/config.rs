//! What the dashboard reads from the one configuration: its own table, the run database, and
//! the folder the orchestrator writes the stage logs under.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use doodle_core::Settings;
use doodle_core::config::DashboardSettings;

#[derive(Debug, Clone)]
pub struct DashboardConfig {
    pub dashboard: DashboardSettings,
    /// `database.url`: the same `pipeline_runs` the orchestrator writes.
    pub database_url: String,
    /// `telemetry.log_dir`: the orchestrator writes `runs/<run_id>/stage<N>.log` under it
    /// (the same setting, so the two agree without a second key).
    pub log_dir: PathBuf,
}

impl DashboardConfig {
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            dashboard: settings.dashboard.clone(),
            database_url: settings.database.url.clone(),
            log_dir: settings.telemetry.log_dir.clone(),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.dashboard.addr()
    }

    pub fn db_timeout(&self) -> Duration {
        Duration::from_millis(self.dashboard.db_timeout_ms)
    }
}
