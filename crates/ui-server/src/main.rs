//! `ui-server`: serves the drawing page on :9080. All the wiring is in [`doodle_ui_server::startup`].

use anyhow::Context;
use doodle_core::{Settings, shutdown, telemetry};
use doodle_ui_server::startup::Application;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load().context("loading the configuration")?;
    let _guard =
        telemetry::init("ui_server.log", &settings.telemetry).context("starting the logger")?;
    let app = Application::build(&settings.ui)
        .await
        .context("starting ui-server")?;
    app.run_until_stopped(shutdown::signal()).await?;
    Ok(())
}
