use doodle_core::{ErrorChain, Settings};
use doodle_model_server::Application;

fn main() -> std::process::ExitCode {
    short_openmp_spin();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("building the tokio runtime")
        .block_on(serve())
}

/// libtorch's OpenMP threads spin while they wait for work; libgomp's default spin (300 000
/// rounds) is long. On a small machine shared with the HTTP threads (and anything else), a
/// descheduled peer turns every barrier into a long spin: a loaded 2-core VM ran batch-32 forward
/// passes 13× slower than with sleeping threads. Sleeping at once (`OMP_WAIT_POLICY=passive`)
/// avoids that but pays a wake-up at each of ResNet50's ~160 parallel regions: on an idle VM
/// batch 1 took 13.4 ms instead of 9.3 ms. A short spin (10 000 rounds, tens of microseconds)
/// keeps the idle speed and, with two CPU hogs beside it, matched passive (docs/benchmarks.md,
/// "Model server"). libgomp reads these variables when it is loaded, before `main`, so unless
/// the operator chose a policy or a spin count we start ourselves again with the short spin.
fn short_openmp_spin() {
    #[cfg(unix)]
    if std::env::var_os("OMP_WAIT_POLICY").is_none() && std::env::var_os("GOMP_SPINCOUNT").is_none()
    {
        use std::os::unix::process::CommandExt;
        if let Ok(exe) = std::env::current_exe() {
            let err = std::process::Command::new(exe)
                .args(std::env::args_os().skip(1))
                .env("GOMP_SPINCOUNT", OPENMP_SPIN_COUNT)
                .exec();
            // Only reached when exec failed: carry on with the default policy.
            eprintln!(
                "model-server: could not restart with GOMP_SPINCOUNT={OPENMP_SPIN_COUNT}: {err}"
            );
        }
    }
}

/// Rounds an idle OpenMP thread spins before it sleeps (libgomp's `GOMP_SPINCOUNT`).
const OPENMP_SPIN_COUNT: &str = "10000";

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
