//! Happy paths against the real model server (in-process, port 0, a small untrained model).

use doodle_model_server::test_support::{TestModelServer, spawn};
use serde_json::{Value, json};

use crate::helpers::{TestApp, b64, drawing, spawn_app};

async fn backend_and_model_server() -> (TestApp, TestModelServer) {
    let model_server = spawn().await;
    let app = spawn_app(&model_server.url).await;
    (app, model_server)
}

#[tokio::test]
async fn real_model_server_predicts_a_drawing_through_the_backend() {
    let (app, model_server) = backend_and_model_server().await;
    for path in ["/invocations/", "/invocations"] {
        let response = app
            .post_json(path, &json!({ "inputs": b64(&drawing(3)) }))
            .await;
        assert_eq!(response.status(), 200, "{path}");
        assert!(response.headers().contains_key("x-model-version"));
        let body: Value = response.json().await.unwrap();
        let predictions = body["predictions"].as_array().expect("predictions");
        assert_eq!(predictions.len(), 1);
        let label = predictions[0]["label"].as_str().unwrap();
        assert!(
            model_server.categories.iter().any(|c| c == label),
            "{label}"
        );
    }
}

#[tokio::test]
async fn real_model_server_answers_are_identical_direct_and_through_the_backend() {
    let (app, model_server) = backend_and_model_server().await;
    let body = json!({ "inputs": [b64(&drawing(4)), b64(&drawing(5))] });
    let direct = app
        .client
        .post(&model_server.url)
        .json(&body)
        .send()
        .await
        .unwrap();
    let direct_status = direct.status();
    let direct_body = direct.text().await.unwrap();
    let through = app.post_json("/invocations/", &body).await;
    assert_eq!(through.status(), direct_status);
    assert_eq!(through.text().await.unwrap(), direct_body);
}

#[tokio::test]
async fn real_model_server_errors_pass_through_unchanged() {
    let (app, model_server) = backend_and_model_server().await;
    let body = json!({ "dataframe_split": [] });
    let direct = app
        .client
        .post(&model_server.url)
        .json(&body)
        .send()
        .await
        .unwrap();
    let direct_status = direct.status();
    assert!(direct_status.is_client_error(), "{direct_status}");
    let direct_body: Value = direct.json().await.unwrap();
    let through = app.post_json("/invocations/", &body).await;
    assert_eq!(through.status(), direct_status);
    let through_body: Value = through.json().await.unwrap();
    assert_eq!(through_body, direct_body);
    assert!(through_body["error_code"].is_string(), "{through_body}");
}

#[tokio::test]
async fn real_model_server_categories_and_readiness() {
    let (app, model_server) = backend_and_model_server().await;
    let response = app.get("/categories").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["categories"], json!(model_server.categories));
    assert_eq!(app.get("/ready").await.status(), 200);
}

#[tokio::test]
async fn real_model_server_predictions_are_matched_by_saves_as_live_feedback() {
    let (app, model_server) = backend_and_model_server().await;
    let image = b64(&drawing(6));
    let response = app
        .post_json("/invocations/", &json!({ "inputs": image }))
        .await;
    let body: Value = response.json().await.unwrap();
    let top1 = body["predictions"][0]["label"].as_str().unwrap().to_owned();
    let other = model_server
        .categories
        .iter()
        .find(|c| **c != top1)
        .unwrap()
        .clone();
    let saved = app
        .post_json("/save-image/", &json!({ "image": image, "category": top1 }))
        .await;
    assert_eq!(saved.status(), 200);
    let second = b64(&drawing(7));
    let response = app
        .post_json("/invocations/", &json!({ "inputs": second }))
        .await;
    let body: Value = response.json().await.unwrap();
    let second_top1 = body["predictions"][0]["label"].as_str().unwrap();
    let disagreeing = if second_top1 == top1 {
        other
    } else {
        top1.clone()
    };
    app.post_json(
        "/save-image/",
        &json!({ "image": second, "category": disagreeing }),
    )
    .await;

    let m = app.metrics().await;
    let count = |category: &str, agreed| {
        m.value(
            "doodle_live_feedback_total",
            &[("category", category), ("agreed", agreed)],
        )
    };
    assert_eq!(count(&top1, "true"), Some(1.0));
    // A category the model has not predicted yet is `other`; one it has keeps its name.
    let expected = if disagreeing == top1 {
        top1.as_str()
    } else {
        "other"
    };
    assert_eq!(count(expected, "false"), Some(1.0));
}
