//! The page's files, served by the same binary (the browser tests are in tests/e2e).

use crate::helpers::*;

#[tokio::test]
async fn the_page_and_its_files_are_served_with_their_types() {
    let app = spawn_app(Kind::Sqlite).await;
    for (path, content_type, needle) in [
        ("/", "text/html; charset=utf-8", "<table id=\"runs\">"),
        ("/index.html", "text/html; charset=utf-8", "Stage 7"),
        (
            "/app.js",
            "text/javascript; charset=utf-8",
            "/pipeline_runs?limit=",
        ),
        ("/style.css", "text/css; charset=utf-8", "--failed"),
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()["content-type"], content_type, "{path}");
        assert!(
            response.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("script-src 'self'"),
            "{path}"
        );
        assert!(response.text().await.unwrap().contains(needle), "{path}");
    }
}

#[tokio::test]
async fn unknown_paths_and_methods_are_json() {
    let app = spawn_app(Kind::Sqlite).await;
    let (status, body) = app.get_json("/nope").await;
    assert_eq!((status, body["detail"].as_str()), (404, Some("Not Found")));
    let response = app
        .client
        .post(format!("{}/pipeline_runs", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error_type"], "method_not_allowed");
}

#[tokio::test]
async fn health_says_whether_the_database_answers() {
    let app = spawn_app(Kind::Sqlite).await;
    let (status, body) = app.get_json("/health").await;
    assert_eq!(status, 200);
    assert_eq!(body, serde_json::json!({"status": "ok", "database": "up"}));
    let (status, body) = app.get_json("/ready").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ready")));
}
