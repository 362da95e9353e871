use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use doodle_backend::Application;
use doodle_core::config::BackendSettings;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const PREDICTIONS: &str = r#"{"predictions": [[0.1, 0.7, 0.2]]}"#;
pub const CATEGORIES: [&str; 3] = ["apple", "banana", "cat"];

/// A running backend with its own image folder.
#[derive(Debug)]
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    /// `IMG_DATA_LOCATION`; it does not exist until the first save.
    pub img_root: PathBuf,
    /// Holds `img_root`; also a place "outside" it for escape checks.
    pub dir: TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The backend in front of `model_server_url`, with short timeouts for the fault tests.
pub async fn spawn_app(model_server_url: &str) -> TestApp {
    spawn_app_with(model_server_url, |_| {}).await
}

pub async fn spawn_app_with(
    model_server_url: &str,
    tweak: impl FnOnce(&mut BackendSettings),
) -> TestApp {
    doodle_core::telemetry::init_for_tests();
    let dir = tempfile::tempdir().unwrap();
    let img_root = dir.path().join("img");
    let mut settings = BackendSettings {
        port: 0,
        img_data_location: img_root.clone(),
        model_server_url: model_server_url.to_owned(),
        connect_timeout_ms: 500,
        request_timeout_ms: 2_000,
        ..BackendSettings::default()
    };
    tweak(&mut settings);
    let app = Application::build(settings).await.unwrap();
    let address = format!("http://127.0.0.1:{}", app.port());
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = rx.await;
    }));
    TestApp {
        address,
        client: client(),
        img_root,
        dir,
        shutdown: Some(tx),
        server: Some(server),
    }
}

impl TestApp {
    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.post_raw(path, "application/json", body.to_string())
            .await
    }

    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.address))
            .header(header::CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .unwrap()
    }

    pub async fn metrics(&self) -> Scrape {
        let text = self.get("/metrics").await.text().await.unwrap();
        Scrape::parse(&text)
    }

    /// Signal shutdown; the handle resolves once in-flight requests are answered.
    pub fn begin_stop(&mut self) -> JoinHandle<std::io::Result<()>> {
        let _ = self.shutdown.take().unwrap().send(());
        self.server.take().unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// `{"detail": ...}` of an error answer, checking the shape on the way.
pub async fn detail(response: reqwest::Response) -> String {
    let body: Value = response.json().await.expect("error bodies are JSON");
    let object = body.as_object().expect("error bodies are objects");
    assert_eq!(object.len(), 1, "only `detail`: {body}");
    object["detail"]
        .as_str()
        .expect("detail is a string")
        .to_owned()
}

/// 784 bytes that differ with `seed`.
pub fn drawing(seed: u32) -> Vec<u8> {
    (0..784u32)
        .map(|i| (i.wrapping_mul(31).wrapping_add(seed.wrapping_mul(97)) % 256) as u8)
        .collect()
}

pub fn b64(bytes: &[u8]) -> String {
    doodle_core::image::encode_base64(bytes)
}

/// Every file under `dir`, recursively (symlinks are listed, not followed).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            out.extend(files_under(&entry.path()));
        } else {
            out.push(entry.path());
        }
    }
    out
}

/// A port where nothing listens: connections are refused.
pub async fn dead_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}/invocations/")
}

/// How the fake model server answers `/invocations`.
#[derive(Debug, Clone)]
pub enum Fault {
    /// 200 with [`PREDICTIONS`].
    None,
    /// 200 with one labelled prediction, the real model server's shape.
    Label(&'static str),
    /// Sleep, then answer like `None`.
    Slow(Duration),
    /// This status, body and content type.
    Answer(u16, &'static str, &'static str),
}

/// What the fake model server received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub request_id: Option<String>,
    pub body: Bytes,
}

#[derive(Debug, Clone)]
struct FakeState {
    fault: Fault,
    received: Arc<Mutex<Vec<Received>>>,
}

/// A tiny axum model server that answers as told.
#[derive(Debug)]
pub struct FakeModelServer {
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl FakeModelServer {
    pub async fn start(fault: Fault) -> Self {
        let received = Arc::new(Mutex::new(Vec::new()));
        let state = FakeState {
            fault,
            received: received.clone(),
        };
        let app = Router::new()
            .route("/invocations", any(fake_invocations))
            .route("/invocations/", any(fake_invocations))
            .route("/model", get(fake_model))
            .route("/health", get(|| async { "\n" }))
            .with_state(state);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            url: format!("http://127.0.0.1:{port}/invocations/"),
            received,
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

async fn fake_invocations(
    State(state): State<FakeState>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.received.lock().unwrap().push(Received {
        path: uri.path().to_owned(),
        request_id: headers
            .get("x-request-id")
            .map(|v| v.to_str().unwrap().to_owned()),
        body,
    });
    match state.fault {
        Fault::None => json_answer(200, PREDICTIONS),
        Fault::Label(label) => json_answer(
            200,
            &json!({"predictions": [{"label": label, "score": 0.9, "top_k": [{"label": label, "score": 0.9}]}]})
                .to_string(),
        ),
        Fault::Slow(delay) => {
            tokio::time::sleep(delay).await;
            json_answer(200, PREDICTIONS)
        }
        Fault::Answer(status, body, content_type) => (
            StatusCode::from_u16(status).unwrap(),
            [(header::CONTENT_TYPE, content_type)],
            body,
        )
            .into_response(),
    }
}

async fn fake_model() -> Response {
    json_answer(
        200,
        &json!({"name": "doodle-classifier", "version": "3", "categories": CATEGORIES, "architecture": "resnet18"})
            .to_string(),
    )
}

fn json_answer(status: u16, body: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [(header::CONTENT_TYPE, "application/json")],
        body.to_owned(),
    )
        .into_response()
}

/// A "server" that answers every connection with bytes that are not HTTP.
pub async fn garbage_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let _ = socket.write_all(b"\x00\x01garbage, not HTTP\r\n\r\n").await;
                let _ = socket.shutdown().await;
            });
        }
    });
    format!("http://127.0.0.1:{port}/invocations/")
}

/// A parsed Prometheus text exposition: `# TYPE` lines and samples with their labels.
#[derive(Debug, Default)]
pub struct Scrape {
    pub types: Vec<(String, String)>,
    pub samples: Vec<Sample>,
}

#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Scrape {
    pub fn parse(text: &str) -> Self {
        let mut scrape = Self::default();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
                scrape.types.push((name.to_owned(), kind.to_owned()));
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("sample value");
            let value: f64 = value.parse().expect("numeric sample value");
            let (name, labels) = match series.split_once('{') {
                None => (series.to_owned(), Vec::new()),
                Some((name, rest)) => {
                    let inner = rest.strip_suffix('}').expect("closing brace");
                    let labels = inner
                        .split("\",")
                        .filter(|p| !p.is_empty())
                        .map(|pair| {
                            let (k, v) = pair.split_once("=\"").expect("label=\"value\"");
                            (k.to_owned(), v.trim_end_matches('"').to_owned())
                        })
                        .collect();
                    (name.to_owned(), labels)
                }
            };
            scrape.samples.push(Sample {
                name,
                labels,
                value,
            });
        }
        scrape
    }

    pub fn kind(&self, name: &str) -> Option<&str> {
        self.types
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, k)| k.as_str())
    }

    /// The value of the one sample with this name and exactly these labels (any order).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| {
                s.name == name
                    && s.labels.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
            })
            .map(|s| s.value)
    }
}
