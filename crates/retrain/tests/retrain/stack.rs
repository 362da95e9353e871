//! The running system around a [`Pipeline`]: the real `model-server` and `backend` binaries on
//! free loopback ports, the real `pipeline-orchestrator` (which runs the real stage binaries next
//! to it), and a client that keeps classifying through the backend while the pipeline runs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use doodle_core::image::encode_base64;
use serde_json::Value;

use crate::helpers::{Pipeline, text};

/// A binary of this workspace, beside the test executable's folder (`target/debug/deps/..`).
/// The loop tests run other packages' binaries, which cargo does not point tests at; a
/// workspace test run (`make test`, `cargo nextest run --workspace`) builds them all.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().and_then(Path::parent).unwrap().join(name);
    assert!(
        bin.is_file(),
        "{} is missing: build the workspace's binaries first (`cargo build --bins`; \
         `cargo nextest run --workspace` and make test do)",
        bin.display()
    );
    bin
}

/// The project's DVC (scripts/setup-mlflow.sh installs it; `make test` runs that first).
pub fn dvc() -> PathBuf {
    let dvc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/dvc");
    assert!(
        dvc.is_file(),
        "{} is missing: run scripts/setup-mlflow.sh (make test does)",
        dvc.display()
    );
    dvc
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A service binary running on the pipeline's config; killed and reaped when dropped.
#[derive(Debug)]
pub struct Service {
    child: Child,
    pub url: String,
    out: PathBuf,
}

impl Service {
    async fn start(
        p: &Pipeline,
        bin: &str,
        env: &[(&str, String)],
        url: String,
        ready: &str,
    ) -> Self {
        let out = p.dir.path().join(format!("{bin}.out"));
        let file = std::fs::File::create(&out).unwrap();
        let child = Command::new(workspace_bin(bin))
            .env("DOODLE_CONFIG", &p.config)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(p.dir.path())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        let mut service = Self { child, url, out };
        service.wait_ready(ready).await;
        service
    }

    async fn wait_ready(&mut self, path: &str) {
        let client = client();
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "{} exited ({status}) before it was ready:\n{}",
                    self.url,
                    self.output()
                );
            }
            let res = client.get(format!("{}{path}", self.url)).send().await;
            if res.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("{} not ready within 120 s:\n{}", self.url, self.output());
    }

    /// What the service printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The model server following the pipeline's registry (polled every second) and the backend
/// in front of it, saving into the pipeline's image folder.
#[derive(Debug)]
pub struct Stack {
    pub model_server: Service,
    pub backend: Service,
}

/// One answer of `/invocations/`: its status, the `x-model-version` and the top-1 label.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub version: Option<String>,
    pub label: Option<String>,
}

impl Stack {
    pub async fn start(p: &Pipeline) -> Self {
        let port = free_port();
        let model_server = Service::start(
            p,
            "model-server",
            &[
                ("DOODLE_MODEL_SERVER__HOST", "127.0.0.1".into()),
                ("DOODLE_MODEL_SERVER__PORT", port.to_string()),
                ("DOODLE_MODEL_SERVER__POLL_INTERVAL_SECS", "1".into()),
            ],
            format!("http://127.0.0.1:{port}"),
            "/health",
        )
        .await;
        let port = free_port();
        let backend = Service::start(
            p,
            "backend",
            &[
                ("DOODLE_BACKEND__HOST", "127.0.0.1".into()),
                ("DOODLE_BACKEND__PORT", port.to_string()),
                (
                    "DOODLE_BACKEND__MODEL_SERVER_URL",
                    format!("{}/invocations/", model_server.url),
                ),
            ],
            format!("http://127.0.0.1:{port}"),
            "/ready",
        )
        .await;
        Self {
            model_server,
            backend,
        }
    }

    /// Save every drawing of `rows` (n × 784 bytes) as `category` through `/save-image/`.
    pub async fn save(&self, category: &str, rows: &[u8]) {
        let client = client();
        for pixels in rows.chunks_exact(784) {
            let body = serde_json::json!({"image": encode_base64(pixels), "category": category});
            let res = client
                .post(format!("{}/save-image/", self.backend.url))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
        }
    }

    /// Classify one drawing through the backend.
    pub async fn classify(&self, pixels: &[u8]) -> Answer {
        classify(&client(), &self.backend.url, pixels).await
    }

    /// The top-1 labels of every drawing of `rows`; panics on any answer but 200.
    pub async fn labels(&self, rows: &[u8]) -> Vec<String> {
        let client = client();
        let mut labels = Vec::new();
        for pixels in rows.chunks_exact(784) {
            let answer = classify(&client, &self.backend.url, pixels).await;
            assert_eq!(answer.status, 200, "{answer:?}");
            labels.push(answer.label.unwrap());
        }
        labels
    }

    /// Keep classifying `pixels` until [`Traffic::stop`].
    pub fn traffic(&self, pixels: &[u8]) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, url, pixels) = (stop.clone(), self.backend.url.clone(), pixels.to_vec());
        let task = tokio::spawn(async move {
            let client = client();
            let mut answers = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                answers.push(classify(&client, &url, &pixels).await);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            answers
        });
        Traffic { stop, task }
    }

    /// Wait until the backend's answers come from `version`.
    pub async fn wait_for_version(&self, version: &str, within: Duration, pixels: &[u8]) {
        let deadline = Instant::now() + within;
        loop {
            let answer = self.classify(pixels).await;
            if answer.version.as_deref() == Some(version) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "still {answer:?} after {within:?}; model server:\n{}",
                self.model_server.output()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

async fn classify(client: &reqwest::Client, backend: &str, pixels: &[u8]) -> Answer {
    let res = client
        .post(format!("{backend}/invocations/"))
        .json(&serde_json::json!({"inputs": encode_base64(pixels)}))
        .send()
        .await;
    let Ok(res) = res else {
        return Answer {
            status: 0,
            version: None,
            label: None,
        };
    };
    let status = res.status().as_u16();
    let version = res
        .headers()
        .get("x-model-version")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: Value = res.json().await.unwrap_or(Value::Null);
    let label = body["predictions"][0]["label"].as_str().map(str::to_owned);
    Answer {
        status,
        version,
        label,
    }
}

/// Requests sent one after another through the backend; every answer kept in order.
#[derive(Debug)]
pub struct Traffic {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<Answer>>,
}

impl Traffic {
    pub async fn stop(self) -> Vec<Answer> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap()
    }
}

/// `pipeline-orchestrator --once` on the pipeline, with the project's DVC.
pub async fn orchestrate(p: &Pipeline) -> (Output, String) {
    let out = tokio::process::Command::new(workspace_bin("pipeline-orchestrator"))
        .arg("--once")
        .env("DOODLE_CONFIG", &p.config)
        .env("DOODLE_PIPELINE__DVC_COMMAND", dvc())
        .env("RUST_LOG", "info")
        .current_dir(p.dir.path())
        .output()
        .await
        .unwrap();
    let text = text(&out);
    (out, text)
}
