//! Live accuracy: a labelled save of bytes the backend relayed a prediction for is counted in
//! `doodle_live_feedback_total{category,agreed}`; other saves in
//! `doodle_live_feedback_unmatched_total{category}`.

use serde_json::json;

use crate::helpers::{FakeModelServer, Fault, Scrape, TestApp, b64, drawing, spawn_app};

async fn predict(app: &TestApp, seed: u32) {
    let response = app
        .post_json("/invocations/", &json!({ "inputs": b64(&drawing(seed)) }))
        .await;
    assert_eq!(response.status(), 200);
}

async fn save(app: &TestApp, seed: u32, category: &str) {
    let response = app
        .post_json(
            "/save-image/",
            &json!({ "image": b64(&drawing(seed)), "category": category }),
        )
        .await;
    assert_eq!(response.status(), 200);
}

fn feedback(m: &Scrape, category: &str, agreed: &str) -> Option<f64> {
    m.value(
        "doodle_live_feedback_total",
        &[("category", category), ("agreed", agreed)],
    )
}

fn unmatched(m: &Scrape, category: &str) -> Option<f64> {
    m.value(
        "doodle_live_feedback_unmatched_total",
        &[("category", category)],
    )
}

#[tokio::test]
async fn a_save_of_predicted_bytes_counts_whether_the_top1_agreed() {
    let upstream = FakeModelServer::start(Fault::Label("house")).await;
    let app = spawn_app(&upstream.url).await;
    predict(&app, 1).await;
    predict(&app, 2).await;
    save(&app, 1, "house").await;
    save(&app, 2, "house").await;
    predict(&app, 3).await;
    // The model answers "house" for everything; "cat" was never predicted, so it is `other`.
    save(&app, 3, "cat").await;

    let m = app.metrics().await;
    assert_eq!(m.kind("doodle_live_feedback_total"), Some("counter"));
    assert_eq!(feedback(&m, "house", "true"), Some(2.0));
    assert_eq!(feedback(&m, "other", "false"), Some(1.0));
    assert_eq!(feedback(&m, "house", "false"), None);
    assert_eq!(unmatched(&m, "house"), None);
}

#[tokio::test]
async fn unknown_bytes_and_a_second_save_are_counted_as_unmatched() {
    let upstream = FakeModelServer::start(Fault::Label("house")).await;
    let app = spawn_app(&upstream.url).await;
    predict(&app, 8).await;
    save(&app, 7, "house").await;
    save(&app, 8, "house").await;
    save(&app, 8, "house").await;

    let m = app.metrics().await;
    assert_eq!(feedback(&m, "house", "true"), Some(1.0));
    assert_eq!(
        unmatched(&m, "house"),
        Some(2.0),
        "never predicted, and the same prediction saved again"
    );
}

#[tokio::test]
async fn answers_without_one_labelled_prediction_are_not_remembered() {
    // The fake's default answer is bare probabilities: nothing to agree with.
    let upstream = FakeModelServer::start(Fault::None).await;
    let app = spawn_app(&upstream.url).await;
    predict(&app, 1).await;
    save(&app, 1, "house").await;
    let m = app.metrics().await;
    assert_eq!(unmatched(&m, "other"), Some(1.0));
    assert!(
        !m.samples
            .iter()
            .any(|s| s.name == "doodle_live_feedback_total"),
        "no feedback without a prediction"
    );
}

#[tokio::test]
async fn a_refused_prediction_is_not_remembered() {
    let upstream = FakeModelServer::start(Fault::Answer(
        429,
        r#"{"error_code":"RESOURCE_EXHAUSTED","message":"queue full"}"#,
        "application/json",
    ))
    .await;
    let app = spawn_app(&upstream.url).await;
    let response = app
        .post_json("/invocations/", &json!({ "inputs": b64(&drawing(1)) }))
        .await;
    assert_eq!(response.status(), 429);
    save(&app, 1, "house").await;
    let m = app.metrics().await;
    assert_eq!(unmatched(&m, "other"), Some(1.0));
}
