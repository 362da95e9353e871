use axum::extract::State;
use axum::response::Response;

use crate::startup::AppState;

/// Prometheus text: the design's five metrics and the shared HTTP ones.
pub async fn metrics(State(state): State<AppState>) -> Response {
    state.metrics.core.response()
}
