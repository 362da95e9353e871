use serde_json::Value;

use crate::helpers::{CATEGORIES, FakeModelServer, Fault, dead_url, detail, spawn_app};

#[tokio::test]
async fn health_answers_even_when_the_model_server_is_down() {
    let app = spawn_app(&dead_url().await).await;
    let response = app.get("/health").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn ready_follows_the_model_servers_health() {
    let down = spawn_app(&dead_url().await).await;
    let response = down.get("/ready").await;
    assert_eq!(response.status(), 503);
    assert_eq!(
        detail(response).await,
        "Model server is not ready: Model server unavailable"
    );

    let upstream = FakeModelServer::start(Fault::None).await;
    let up = spawn_app(&upstream.url).await;
    let response = up.get("/ready").await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn categories_come_from_the_model_servers_model_in_order() {
    let upstream = FakeModelServer::start(Fault::None).await;
    let app = spawn_app(&upstream.url).await;
    let response = app.get("/categories").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["categories"], serde_json::json!(CATEGORIES));
    assert_eq!(body["name"], "doodle-classifier");
    assert_eq!(body["version"], "3");

    let down = spawn_app(&dead_url().await).await;
    assert_eq!(down.get("/categories").await.status(), 503);
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_like_fastapi() {
    let app = spawn_app(&dead_url().await).await;
    let response = app.get("/nowhere").await;
    assert_eq!(response.status(), 404);
    assert_eq!(detail(response).await, "Not Found");
    let response = app.get("/invocations/").await;
    assert_eq!(response.status(), 405);
    assert_eq!(detail(response).await, "Method Not Allowed");
}
