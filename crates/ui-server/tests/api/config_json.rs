use axum::http::StatusCode;
use serde_json::Value;

use crate::helpers::spawn_app;

#[tokio::test]
async fn config_json_tells_the_page_the_backend_url_without_trailing_slash() {
    let app = spawn_app();
    let res = app.get("/config.json").await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.header("content-type"), "application/json");
    assert_eq!(res.header("cache-control"), "no-store");
    let body: Value = serde_json::from_slice(&res.body).unwrap();
    assert_eq!(body["backend_url"], "http://backend.test:8000");
    assert_eq!(body["category_rule"], doodle_core::category::RULE);
    assert_eq!(body["category_max_len"], 64);
}

#[tokio::test]
async fn health_answers_ok() {
    let app = spawn_app();
    let res = app.get("/health").await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.text(), r#"{"status":"ok"}"#);
}

#[tokio::test]
async fn metrics_count_static_and_api_requests_by_route_template() {
    let app = spawn_app();
    app.get("/js/main.js").await;
    app.get("/nope.js").await;
    app.get("/config.json").await;
    let res = app.get("/metrics").await;
    assert_eq!(res.status, StatusCode::OK);
    let text = res.text();
    for line in [
        r#"doodle_http_requests_total{method="GET",route="/{*path}",status="200"} 1"#,
        r#"doodle_http_requests_total{method="GET",route="/{*path}",status="404"} 1"#,
        r#"doodle_http_requests_total{method="GET",route="/config.json",status="200"} 1"#,
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
    assert!(!text.contains("main.js"), "raw paths must not be labels");
}
