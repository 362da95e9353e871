use axum::extract::State;
use axum::response::Response;

use crate::startup::AppState;

/// `GET /metrics`: Prometheus text.
pub async fn metrics(State(state): State<AppState>) -> Response {
    state.metrics.response()
}
