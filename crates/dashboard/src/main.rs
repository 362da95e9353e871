//! `dashboard`: read the configuration, start logging to `dashboard_backend.log`, serve until
//! SIGTERM or Ctrl-C.

use doodle_core::{ErrorChain, Settings};
use doodle_dashboard::{Application, DashboardConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    let _telemetry = doodle_core::telemetry::init("dashboard_backend.log", &settings.telemetry)?;
    let result = async {
        let app = Application::build(DashboardConfig::from_settings(&settings)).await?;
        app.run_until_stopped(doodle_core::shutdown::signal())
            .await?;
        anyhow::Ok(())
    }
    .await;
    match &result {
        Ok(()) => tracing::info!("dashboard stopped"),
        Err(err) => tracing::error!("dashboard failed: {}", ErrorChain(err.as_ref())),
    }
    result
}
