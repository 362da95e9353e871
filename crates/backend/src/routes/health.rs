use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::startup::AppState;

/// Liveness: the process answers.
pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Readiness: the model server answers its `/health`.
pub async fn ready(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    state
        .model_server
        .health()
        .await
        .map_err(ApiError::NotReady)?;
    Ok(Json(json!({ "status": "ready" })))
}
