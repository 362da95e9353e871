use doodle_core::{ErrorChain, Settings};
use doodle_model_server::Application;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("model-server: {err}");
            return std::process::ExitCode::from(2);
        }
    };
    let _guard = match doodle_core::telemetry::init("model_server.log", &settings.telemetry) {
        Ok(guard) => guard,
        Err(err) => {
            eprintln!("model-server: {err}");
            return std::process::ExitCode::from(2);
        }
    };
    let result = async {
        let app = Application::build(settings).await?;
        app.run_until_stopped().await
    }
    .await;
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %ErrorChain(err.as_ref()), "model server stopped");
            std::process::ExitCode::FAILURE
        }
    }
}
