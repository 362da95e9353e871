use doodle_core::{ErrorChain, Settings};
use doodle_model_server::Application;

fn main() -> std::process::ExitCode {
    passive_openmp();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("building the tokio runtime")
        .block_on(serve())
}

/// libtorch's OpenMP threads spin while they wait for work by default. On a small machine
/// that is shared with the HTTP threads (and anything else), a descheduled peer turns every
/// barrier into a long spin: measured here, a loaded 2-core VM ran batch-32 forward passes
/// 13× slower with spinning than with sleeping threads (docs/benchmarks.md, "Model server").
/// libgomp reads `OMP_WAIT_POLICY` when it is loaded, before `main`, so unless the operator
/// chose a policy we start ourselves again with `passive`.
fn passive_openmp() {
    #[cfg(unix)]
    if std::env::var_os("OMP_WAIT_POLICY").is_none() {
        use std::os::unix::process::CommandExt;
        if let Ok(exe) = std::env::current_exe() {
            let err = std::process::Command::new(exe)
                .args(std::env::args_os().skip(1))
                .env("OMP_WAIT_POLICY", "passive")
                .exec();
            // Only reached when exec failed: carry on with the default policy.
            eprintln!("model-server: could not restart with OMP_WAIT_POLICY=passive: {err}");
        }
    }
}

async fn serve() -> std::process::ExitCode {
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
