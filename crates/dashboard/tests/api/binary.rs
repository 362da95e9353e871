//! The `dashboard` binary itself: configuration from the environment, one line per request in
//! `dashboard_backend.log` with its row count, a clean stop on SIGTERM.

use std::process::{Command, Stdio};
use std::time::Duration;

use doodle_runs::RunStore;
use doodle_runs::test_support::sqlite_in;

use crate::helpers::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn the_binary_logs_each_request_with_its_rows_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let db_url = sqlite_in(dir.path());
    let store = RunStore::connect(&db_url).await.unwrap();
    store.migrate().await.unwrap();
    for _ in 0..3 {
        waiting_run(&store).await;
    }
    let logs = dir.path().join("logs");
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_dashboard"))
        .current_dir(dir.path())
        .env("DOODLE_DATABASE__URL", &db_url)
        .env("DOODLE_TELEMETRY__LOG_DIR", &logs)
        .env("DOODLE_DASHBOARD__PORT", port.to_string())
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    eventually(
        Duration::from_secs(20),
        "the binary answers /health",
        || async { client.get(format!("{base}/health")).send().await.is_ok() },
    )
    .await;
    let body: serde_json::Value = client
        .get(format!("{base}/pipeline_runs"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body.as_array().unwrap().len(), 3);
    let status = client
        .get(format!("{base}/pipeline_runs/77"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 404);

    let log = logs.join("dashboard_backend.log");
    eventually(
        Duration::from_secs(5),
        "both requests are logged",
        || async {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            text.contains("route=/pipeline_runs status=200 rows=3")
                && text.contains("route=/pipeline_runs/{id} status=404 error_type=unknown_run")
        },
    )
    .await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text.matches("route=/pipeline_runs status=200").count(),
        1,
        "each request logged once:\n{text}"
    );

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the dashboard did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "{exit}");
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("dashboard stopped")
    );
}
