use std::time::Duration;

use base64::Engine;
use doodle_model_server::test_support::TestModelServer;
use serde_json::Value;

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// A few real drawings from the shared Quick, Draw! data (cat.npy rows), as 784-byte arrays.
pub fn drawings(n: usize) -> Vec<Vec<u8>> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/quickdraw/train/cat.npy"
    );
    let data = doodle_model::data::read_npy(std::path::Path::new(path))
        .expect("the shared Quick, Draw! data");
    data.chunks(784).take(n).map(<[u8]>::to_vec).collect()
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub async fn post_json(server: &TestModelServer, body: &Value) -> reqwest::Response {
    client().post(&server.url).json(body).send().await.unwrap()
}

pub async fn get(server: &TestModelServer, path: &str) -> reqwest::Response {
    client()
        .get(format!("{}{path}", server.base_url))
        .send()
        .await
        .unwrap()
}

pub async fn metrics(server: &TestModelServer) -> String {
    get(server, "/metrics").await.text().await.unwrap()
}

/// Wait until `/health` answers `status`.
pub async fn wait_health(server: &TestModelServer, status: u16) {
    for _ in 0..200 {
        if get(server, "/health").await.status().as_u16() == status {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("/health never answered {status}");
}
