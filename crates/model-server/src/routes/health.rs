use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::ServeError;
use crate::startup::AppState;

/// `GET /ping` and `GET /health`: 200 once a model is loaded and has run a forward pass.
pub async fn ping(State(state): State<AppState>) -> Response {
    match state.batcher.current() {
        Some(_) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            "\n",
        )
            .into_response(),
        None => not_ready(),
    }
}

/// 503 in MLflow's shape, without marking it for the error log: having no model yet is a
/// state that probes ask about every few seconds, not a failure.
fn not_ready() -> Response {
    let err = ServeError::NoModel;
    (
        err.status(),
        Json(json!({ "error_code": err.error_code(), "message": err.to_string() })),
    )
        .into_response()
}

pub async fn health(state: State<AppState>) -> Response {
    ping(state).await
}

/// `GET /version`: the server's version as a bare string, as MLflow answers.
pub async fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// `GET /model`: what is being served.
pub async fn model(State(state): State<AppState>) -> Response {
    match state.batcher.current() {
        Some(info) => Json(json!({
            "name": info.name,
            "version": info.version,
            "categories": &*info.categories,
            "architecture": info.architecture,
            "metrics": { "val_accuracy": info.val_accuracy, "val_top3": info.val_top3 },
            "created_at": info.created_at,
            "loaded_at": info.loaded_at,
            "mirror_tta": info.mirror_tta,
            "forward_slices": info.slices,
            "inference_workers": state.batcher.workers(),
        }))
        .into_response(),
        None => ServeError::NoModel.into_response(),
    }
}
