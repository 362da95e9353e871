//! `backend`: read the configuration, start logging to `app.log`, serve until SIGTERM or Ctrl-C.

use doodle_backend::Application;
use doodle_core::{ErrorChain, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    let _telemetry = doodle_core::telemetry::init("app.log", &settings.telemetry)?;
    let result = async {
        let app = Application::build(settings.backend).await?;
        app.run_until_stopped(doodle_core::shutdown::signal())
            .await?;
        anyhow::Ok(())
    }
    .await;
    match &result {
        Ok(()) => tracing::info!("backend stopped"),
        Err(err) => tracing::error!("backend failed: {}", ErrorChain(err.as_ref())),
    }
    result
}
