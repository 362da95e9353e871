//! A real model server for other crates' tests: in-process, on port 0, serving a small
//! untrained model from a temporary local registry. (Untrained weights give arbitrary
//! labels, but every protocol path is the real one.)

use std::collections::BTreeMap;
use std::path::PathBuf;

use doodle_core::Settings;
use doodle_core::config::Architecture;
use doodle_registry::LocalRegistry;
use tokio::sync::oneshot;

use crate::Application;

/// The categories of the test model.
pub const TEST_CATEGORIES: [&str; 3] = ["cat", "house", "rainbow"];

/// A running test server. Dropping it stops the server and removes its files.
#[derive(Debug)]
pub struct TestModelServer {
    /// The scoring URL as the backend's `model_server_url`: `http://127.0.0.1:<port>/invocations/`.
    pub url: String,
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    pub port: u16,
    pub categories: Vec<String>,
    /// Root of the local registry it follows (register + alias to hot-swap).
    pub registry_dir: PathBuf,
    pub model_name: String,
    stop: Option<oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for TestModelServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Register a freshly initialised model (`seed` picks the weights) as a new version and
/// point the deployed alias at it. Returns the version number.
pub fn deploy_untrained(
    registry_dir: &std::path::Path,
    model_name: &str,
    categories: &[String],
    seed: i64,
) -> anyhow::Result<u64> {
    let scratch = tempfile::tempdir()?;
    let checkpoint = scratch.path().join("checkpoint");
    doodle_model::save_untrained(&checkpoint, Architecture::Resnet18, categories, seed)?;
    let registry = LocalRegistry::new(registry_dir, model_name)?;
    let version = registry.register(&checkpoint, BTreeMap::new())?;
    registry.set_alias("champion", version.version)?;
    Ok(version.version)
}

/// Start a model server with a deployed untrained ResNet18 over [`TEST_CATEGORIES`].
pub async fn spawn() -> TestModelServer {
    spawn_with(|_| {}, true).await
}

/// Start a model server; `configure` adjusts the settings (port 0 and a temporary registry
/// are already set); `deploy` chooses whether a model is deployed before start.
pub async fn spawn_with(configure: impl FnOnce(&mut Settings), deploy: bool) -> TestModelServer {
    doodle_core::telemetry::init_for_tests();
    let dir = tempfile::tempdir().expect("creating a temporary folder");
    let registry_dir = dir.path().join("registry");
    let categories: Vec<String> = TEST_CATEGORIES.iter().map(|s| (*s).to_owned()).collect();
    let mut settings = Settings::default();
    settings.model_server.port = 0;
    settings.model_server.poll_interval_secs = 1;
    settings.model.threads = 1;
    settings.registry.local_dir = registry_dir.clone();
    configure(&mut settings);
    let model_name = settings.registry.model_name.clone();
    if deploy {
        let (dir, name, cats) = (registry_dir.clone(), model_name.clone(), categories.clone());
        tokio::task::spawn_blocking(move || deploy_untrained(&dir, &name, &cats, 1))
            .await
            .expect("deploy task")
            .expect("deploying the test model");
    }
    let app = Application::build(settings)
        .await
        .expect("building the model server");
    let port = app.port();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    TestModelServer {
        url: format!("http://127.0.0.1:{port}/invocations/"),
        base_url: format!("http://127.0.0.1:{port}"),
        port,
        categories,
        registry_dir,
        model_name,
        stop: Some(stop),
        _dir: dir,
    }
}
