use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::startup::AppState;

/// Prometheus text: HTTP metrics, `api_errors_total` and the pipeline's own (read now).
pub async fn metrics(State(state): State<AppState>) -> Response {
    let text = state.metrics.scrape(&state.runs).await;
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}
