use axum::Json;
use serde_json::{Value, json};

/// `GET /health`: the process is up. (The page's files were checked at start-up.)
pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}
