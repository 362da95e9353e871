use serde_json::json;

use crate::helpers::{FakeModelServer, Fault, b64, dead_url, drawing, spawn_app};

#[tokio::test]
async fn metrics_expose_the_designs_five_names_with_their_labels_after_traffic() {
    let upstream = FakeModelServer::start(Fault::None).await;
    let app = spawn_app(&upstream.url).await;
    let good = json!({ "inputs": b64(&drawing(1)) });
    app.post_json("/invocations/", &good).await;
    app.post_json("/invocations", &good).await;
    app.post_json("/invocations/", &json!({ "inputs": "!!" }))
        .await;
    app.post_json(
        "/save-image/",
        &json!({ "image": b64(&drawing(2)), "category": "cat" }),
    )
    .await;
    app.post_json("/save-image", &json!({ "image": "!!", "category": "cat" }))
        .await;
    app.post_json(
        "/save-image/",
        &json!({ "image": b64(&[1; 10]), "category": "cat" }),
    )
    .await;
    app.post_json(
        "/save-image/",
        &json!({ "image": b64(&drawing(2)), "category": ".." }),
    )
    .await;

    let m = app.metrics().await;

    assert_eq!(m.kind("model_prediction_requests_total"), Some("counter"));
    assert_eq!(
        m.kind("model_prediction_latency_seconds"),
        Some("histogram")
    );
    assert_eq!(m.kind("save_image_requests_total"), Some("counter"));
    assert_eq!(m.kind("save_image_latency_seconds"), Some("histogram"));
    assert_eq!(m.kind("api_errors_total"), Some("counter"));
    assert_eq!(m.value("model_prediction_requests_total", &[]), Some(3.0));
    assert_eq!(
        m.value("model_prediction_latency_seconds_count", &[]),
        Some(3.0)
    );
    assert_eq!(m.value("save_image_requests_total", &[]), Some(4.0));
    assert_eq!(m.value("save_image_latency_seconds_count", &[]), Some(4.0));
    let errors = |endpoint, error_type| {
        m.value(
            "api_errors_total",
            &[("endpoint", endpoint), ("error_type", error_type)],
        )
    };
    assert_eq!(errors("/invocations/", "invalid_base64"), Some(1.0));
    assert_eq!(
        errors("/save-image/", "invalid_base64"),
        Some(1.0),
        "both spellings count as one endpoint"
    );
    assert_eq!(errors("/save-image/", "invalid_size"), Some(1.0));
    assert_eq!(errors("/save-image/", "invalid_category"), Some(1.0));
    let total_errors: f64 = m
        .samples
        .iter()
        .filter(|s| s.name == "api_errors_total")
        .map(|s| s.value)
        .sum();
    assert_eq!(total_errors, 4.0, "each error counted once");
    assert_eq!(
        m.value(
            "doodle_http_requests_total",
            &[
                ("route", "/invocations/"),
                ("method", "POST"),
                ("status", "200")
            ]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn metrics_count_model_server_failures_and_passed_through_errors() {
    let app = spawn_app(&dead_url().await).await;
    app.post_json("/invocations/", &json!({ "inputs": b64(&drawing(1)) }))
        .await;
    app.get("/nowhere").await;
    let m = app.metrics().await;
    assert_eq!(
        m.value(
            "api_errors_total",
            &[
                ("endpoint", "/invocations/"),
                ("error_type", "model_server_unavailable")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.value(
            "api_errors_total",
            &[("endpoint", "unmatched"), ("error_type", "not_found")]
        ),
        Some(1.0)
    );

    let upstream = FakeModelServer::start(Fault::Answer(
        400,
        r#"{"error_code": "BAD_REQUEST", "message": "no"}"#,
        "application/json",
    ))
    .await;
    let app = spawn_app(&upstream.url).await;
    app.post_json("/invocations/", &json!({ "instances": [] }))
        .await;
    let m = app.metrics().await;
    assert_eq!(
        m.value(
            "api_errors_total",
            &[
                ("endpoint", "/invocations/"),
                ("error_type", "model_server_client_error")
            ]
        ),
        Some(1.0)
    );
}
