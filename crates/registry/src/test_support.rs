//! A real `mlflow server` on loopback for tests (feature `test-support`): SQLite store, the
//! artifact proxy, one worker, from the project venv (`scripts/setup-mlflow.sh`). Shared by
//! this crate's tests and the pipeline's retrain tests.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running server; stopped with its whole process group when dropped.
#[derive(Debug)]
pub struct MlflowServer {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// Holds its store, artifacts and `mlflow.log`.
    pub dir: tempfile::TempDir,
}

impl Drop for MlflowServer {
    fn drop(&mut self) {
        // mlflow server runs workers (uvicorn, huey consumers) as children in its process
        // group: ask the group to stop, then make sure every one of them is gone.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && !matches!(self.child.try_wait(), Ok(Some(_))) {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}

/// The pinned `mlflow` of the project venv; panics saying how to install it when missing.
pub fn mlflow_bin() -> PathBuf {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/mlflow");
    assert!(
        bin.exists(),
        "{} is missing: run scripts/setup-mlflow.sh (make test does)",
        bin.display()
    );
    bin
}

/// Start a server on a free port and wait (up to 180 s) until `/health` answers.
pub async fn start_mlflow() -> MlflowServer {
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = std::fs::File::create(dir.path().join("mlflow.log")).unwrap();
    let child = Command::new(mlflow_bin())
        .args([
            "server",
            "--backend-store-uri",
            &format!("sqlite:///{}/mlflow.db", dir.path().display()),
            "--artifacts-destination",
            &dir.path().join("artifacts").display().to_string(),
            "--serve-artifacts",
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--workers",
            "1",
        ])
        .env("MLFLOW_DISABLE_TELEMETRY", "true")
        .env("DO_NOT_TRACK", "true")
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .process_group(0)
        .spawn()
        .expect("starting mlflow server");
    let server = MlflowServer {
        child,
        url: format!("http://127.0.0.1:{port}"),
        dir,
    };
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if let Ok(r) = http.get(format!("{}/health", server.url)).send().await
            && r.status().is_success()
        {
            return server;
        }
        assert!(
            Instant::now() < deadline,
            "mlflow server did not start; its log:\n{}",
            std::fs::read_to_string(server.dir.path().join("mlflow.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
