use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{
    FakeModelServer, Fault, PREDICTIONS, b64, dead_url, detail, drawing, garbage_server, spawn_app,
    spawn_app_with,
};

fn designs_body() -> Value {
    json!({ "inputs": b64(&drawing(1)) })
}

#[tokio::test]
async fn invocations_forwards_the_body_unchanged_and_returns_the_answer_unchanged() {
    let upstream = FakeModelServer::start(Fault::None).await;
    let app = spawn_app(&upstream.url).await;
    // Unusual spacing and key order: the bytes must arrive exactly as sent.
    let body = format!(
        r#"{{ "params": {{"top_k": 3}},   "inputs": "{}" }}"#,
        b64(&drawing(1))
    );

    let response = app
        .post_raw("/invocations/", "application/json", body.clone())
        .await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.text().await.unwrap(), PREDICTIONS);
    let received = upstream.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].path, "/invocations/");
    assert_eq!(received[0].body, body.as_bytes());
}

#[tokio::test]
async fn invocations_answers_with_and_without_the_trailing_slash_without_redirecting() {
    let upstream = FakeModelServer::start(Fault::None).await;
    let app = spawn_app(&upstream.url).await;
    for path in ["/invocations/", "/invocations"] {
        let response = app.post_json(path, &designs_body()).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.text().await.unwrap(), PREDICTIONS);
    }
}

#[tokio::test]
async fn invocations_forwards_and_returns_the_clients_request_id() {
    let upstream = FakeModelServer::start(Fault::None).await;
    let app = spawn_app(&upstream.url).await;
    let response = app
        .client
        .post(format!("{}/invocations/", app.address))
        .header("x-request-id", "client-id-42")
        .json(&designs_body())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "client-id-42");
    assert_eq!(
        upstream.received()[0].request_id.as_deref(),
        Some("client-id-42")
    );
}

#[tokio::test]
async fn invocations_creates_a_request_id_when_the_client_sends_none() {
    let upstream = FakeModelServer::start(Fault::None).await;
    let app = spawn_app(&upstream.url).await;
    let response = app.post_json("/invocations/", &designs_body()).await;
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    assert_eq!(
        upstream.received()[0].request_id.as_deref(),
        Some(id.as_str())
    );
}

#[tokio::test]
async fn invocations_passes_other_mlflow_shapes_to_the_model_server() {
    let upstream = FakeModelServer::start(Fault::None).await;
    let app = spawn_app(&upstream.url).await;
    for body in [
        json!({ "instances": [[0.0, 0.5]] }),
        json!({ "inputs": [[[0.0]]] }),
        json!({ "dataframe_split": { "columns": ["image"], "data": [["x"]] } }),
        json!({ "dataframe_records": [{ "image": "x" }] }),
    ] {
        let response = app.post_json("/invocations/", &body).await;
        assert_eq!(response.status(), 200, "{body}");
    }
    assert_eq!(upstream.received().len(), 4);
}

#[tokio::test]
async fn invocations_returns_503_quickly_when_the_model_server_is_down() {
    let app = spawn_app(&dead_url().await).await;
    let start = Instant::now();
    let response = app.post_json("/invocations/", &designs_body()).await;
    assert_eq!(response.status(), 503);
    assert_eq!(detail(response).await, "Model server unavailable");
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn invocations_returns_504_when_the_model_server_is_slower_than_the_timeout() {
    let upstream = FakeModelServer::start(Fault::Slow(Duration::from_secs(5))).await;
    let app = spawn_app_with(&upstream.url, |s| s.request_timeout_ms = 300).await;
    let start = Instant::now();
    let response = app.post_json("/invocations/", &designs_body()).await;
    let elapsed = start.elapsed();
    assert_eq!(response.status(), 504);
    assert_eq!(
        detail(response).await,
        "Model server did not answer within 300 ms"
    );
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(2),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn invocations_passes_the_model_servers_json_errors_through() {
    for (status, body) in [
        (
            400,
            r#"{"error_code": "BAD_REQUEST", "message": "expected 784 bytes"}"#,
        ),
        (
            429,
            r#"{"error_code": "RESOURCE_EXHAUSTED", "message": "queue full"}"#,
        ),
        (
            500,
            r#"{"error_code": "INTERNAL_ERROR", "message": "boom"}"#,
        ),
        (
            503,
            r#"{"error_code": "TEMPORARILY_UNAVAILABLE", "message": "loading"}"#,
        ),
    ] {
        let upstream =
            FakeModelServer::start(Fault::Answer(status, body, "application/json")).await;
        let app = spawn_app(&upstream.url).await;
        let response = app.post_json("/invocations/", &designs_body()).await;
        assert_eq!(response.status(), status);
        assert_eq!(response.text().await.unwrap(), body);
    }
}

#[tokio::test]
async fn invocations_keeps_a_4xx_status_but_wraps_a_body_that_is_not_json() {
    let upstream = FakeModelServer::start(Fault::Answer(
        415,
        "This predictor only supports the following content types",
        "text/plain",
    ))
    .await;
    let app = spawn_app(&upstream.url).await;
    let response = app.post_json("/invocations/", &designs_body()).await;
    assert_eq!(response.status(), 415);
    assert_eq!(
        detail(response).await,
        "Model server refused the request: This predictor only supports the following content types"
    );
}

#[tokio::test]
async fn invocations_returns_502_when_the_model_server_sends_garbage() {
    let not_json_200 =
        FakeModelServer::start(Fault::Answer(200, "<html>oops</html>", "text/html")).await;
    let text_504 = FakeModelServer::start(Fault::Answer(
        504,
        "Request processing time exceeded limit",
        "application/json",
    ))
    .await;
    for url in [
        not_json_200.url.clone(),
        text_504.url.clone(),
        garbage_server().await,
    ] {
        let app = spawn_app(&url).await;
        let response = app.post_json("/invocations/", &designs_body()).await;
        assert_eq!(response.status(), 502, "{url}");
        assert_eq!(
            detail(response).await,
            "Model server sent an invalid response"
        );
    }
}

#[tokio::test]
async fn invocations_checks_the_designs_drawing_without_calling_the_model_server() {
    let upstream = FakeModelServer::start(Fault::None).await;
    let app = spawn_app(&upstream.url).await;

    let response = app
        .post_json("/invocations/", &json!({ "inputs": "not*base64!" }))
        .await;
    assert_eq!(response.status(), 400);
    assert_eq!(detail(response).await, "Invalid base64 encoding");

    let response = app
        .post_json("/invocations/", &json!({ "inputs": b64(&[0; 783]) }))
        .await;
    assert_eq!(response.status(), 400);
    assert_eq!(
        detail(response).await,
        "Image must be 28x28 pixels (784 values)"
    );

    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn invocations_refuses_bodies_that_are_not_one_mlflow_input_with_422() {
    let upstream = FakeModelServer::start(Fault::None).await;
    let app = spawn_app(&upstream.url).await;

    let response = app.post_json("/invocations/", &json!({ "foo": 1 })).await;
    assert_eq!(response.status(), 422);
    assert_eq!(detail(response).await, "field `inputs` is required");

    let response = app
        .post_json("/invocations/", &json!({ "inputs": [], "instances": [] }))
        .await;
    assert_eq!(response.status(), 422);
    assert!(detail(response).await.contains("got `inputs`, `instances`"));

    let response = app.post_json("/invocations/", &json!([1, 2])).await;
    assert_eq!(response.status(), 422);
    assert_eq!(
        detail(response).await,
        "request body must be a JSON object, got an array"
    );

    let response = app
        .post_raw("/invocations/", "application/json", "not-json")
        .await;
    assert_eq!(response.status(), 422);
    assert!(
        detail(response)
            .await
            .starts_with("request body is not valid JSON")
    );

    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn invocations_refuses_other_content_types_with_415() {
    let upstream = FakeModelServer::start(Fault::None).await;
    let app = spawn_app(&upstream.url).await;
    let response = app
        .post_raw("/invocations/", "text/plain", designs_body().to_string())
        .await;
    assert_eq!(response.status(), 415);
    assert_eq!(
        detail(response).await,
        "Content-Type must be application/json, got `text/plain`"
    );
    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn invocations_refuses_bodies_over_the_limit_with_413() {
    let upstream = FakeModelServer::start(Fault::None).await;
    let app = spawn_app_with(&upstream.url, |s| s.body_limit_bytes = 4096).await;
    let big = json!({ "inputs": [vec![0.5f32; 2000]] }).to_string();
    assert!(big.len() > 4096);
    let response = app.post_raw("/invocations/", "application/json", big).await;
    assert_eq!(response.status(), 413);
    assert_eq!(
        detail(response).await,
        "request body is larger than 4096 bytes"
    );
    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn cors_allows_the_configured_origins_only() {
    let upstream = FakeModelServer::start(Fault::None).await;
    let app = spawn_app(&upstream.url).await;
    let preflight = |origin: &'static str| {
        app.client
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/invocations/", app.address),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let allowed = preflight("http://localhost:9080").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "http://localhost:9080"
    );
    let refused = preflight("http://evil.example").await.unwrap();
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}
