use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::startup::AppState;

/// Liveness: the process answers. Says whether the database does too, but is 200 either way
/// (the dashboard is alive and will serve again once the database is back).
pub async fn health(State(state): State<AppState>) -> Json<Value> {
    let database = match ping(&state).await {
        Ok(()) => "up",
        Err(_) => "down",
    };
    Json(json!({ "status": "ok", "database": database }))
}

/// Readiness: the database answers (else 503).
pub async fn ready(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    ping(&state).await?;
    Ok(Json(json!({ "status": "ready" })))
}

async fn ping(state: &AppState) -> Result<(), ApiError> {
    state.runs.store().await?.ping().await?;
    Ok(())
}
