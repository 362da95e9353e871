//! One error type for the whole server, mapped to MLflow's error body and status table
//! (`../shared/docs/protocols.md` §1.6).

use std::sync::Arc;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ServeError {
    /// The request is wrong; the message says what and where (`inputs[3]: ...`).
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("request body is larger than the limit of {0} bytes")]
    PayloadTooLarge(usize),
    #[error("the inference queue is full; retry later")]
    QueueFull,
    #[error("no model is loaded yet")]
    NoModel,
    #[error("the request was not answered within {0} ms")]
    DeadlineExceeded(u64),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ServeError {
    pub fn status(&self) -> StatusCode {
        match self {
            ServeError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ServeError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ServeError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ServeError::QueueFull => StatusCode::TOO_MANY_REQUESTS,
            ServeError::NoModel => StatusCode::SERVICE_UNAVAILABLE,
            ServeError::DeadlineExceeded(_) => StatusCode::GATEWAY_TIMEOUT,
            ServeError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// MLflow's `error_code` for the status (its `ERROR_CODE_TO_HTTP_STATUS`, inverted).
    pub fn error_code(&self) -> &'static str {
        match self {
            ServeError::BadRequest(_)
            | ServeError::UnsupportedMediaType(_)
            | ServeError::PayloadTooLarge(_) => "BAD_REQUEST",
            ServeError::QueueFull => "RESOURCE_EXHAUSTED",
            ServeError::NoModel => "TEMPORARILY_UNAVAILABLE",
            ServeError::DeadlineExceeded(_) => "DEADLINE_EXCEEDED",
            ServeError::Internal(_) => "INTERNAL_ERROR",
        }
    }

    /// Label for `doodle_inference_rejected_total{reason}` and the logs.
    pub fn reason(&self) -> &'static str {
        match self {
            ServeError::BadRequest(_) => "bad_request",
            ServeError::UnsupportedMediaType(_) => "unsupported_media_type",
            ServeError::PayloadTooLarge(_) => "payload_too_large",
            ServeError::QueueFull => "queue_full",
            ServeError::NoModel => "no_model",
            ServeError::DeadlineExceeded(_) => "deadline",
            ServeError::Internal(_) => "internal",
        }
    }
}

/// Put into the response's extensions so the logging middleware logs each error once.
#[derive(Debug, Clone)]
pub struct LoggedError(pub Arc<ServeError>);

impl IntoResponse for ServeError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            // Details of internal errors stay in the log.
            ServeError::Internal(_) => "internal error; see the server log".to_owned(),
            other => other.to_string(),
        };
        let body = json!({ "error_code": self.error_code(), "message": message });
        let mut response = (status, Json(body)).into_response();
        response
            .extensions_mut()
            .insert(LoggedError(Arc::new(self)));
        response
    }
}
