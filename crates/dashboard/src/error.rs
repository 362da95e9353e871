//! The one place where failures become HTTP answers.
//!
//! Every handler returns `Result<_, ApiError>`. [`ApiError`]'s `IntoResponse` picks the status
//! and writes `{"detail": "...", "error_type": "..."}` (`detail` as the design's FastAPI app
//! wrote it); it has no side effects. It leaves an [`ErrorReport`] in the response extensions,
//! and the [`edge`](crate::edge) counts it in `api_errors_total{endpoint,error_type}` and logs
//! it once with its cause chain. 5xx details stay in the log.

use std::io;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use doodle_core::ErrorChain;
use doodle_runs::{RunId, RunsError};
use serde_json::json;

/// How long a client should wait before retrying while the database is down.
pub const RETRY_AFTER_SECS: u32 = 5;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The id is not a run id, or no run has it. The id itself is not repeated: it may be
    /// anything a client sent.
    #[error("no such run")]
    UnknownRun,
    #[error("no such stage: stages are 1-7")]
    UnknownStage,
    #[error("run {run} has no log for stage {stage}")]
    NoLog { run: RunId, stage: usize },
    #[error("query parameter `{name}` must be {expected}")]
    InvalidQuery {
        name: &'static str,
        expected: &'static str,
    },
    #[error("the run database is unreachable")]
    Unavailable(#[source] RunsError),
    #[error("the run database failed")]
    Database(#[source] RunsError),
    #[error("reading the stage log")]
    LogRead(#[source] io::Error),
    #[error("Not Found")]
    NotFound,
    #[error("Method Not Allowed")]
    MethodNotAllowed,
}

impl From<RunsError> for ApiError {
    fn from(err: RunsError) -> Self {
        if err.is_unavailable() {
            Self::Unavailable(err)
        } else {
            Self::Database(err)
        }
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::UnknownRun | Self::UnknownStage | Self::NoLog { .. } | Self::NotFound => {
                StatusCode::NOT_FOUND
            }
            Self::InvalidQuery { .. } => StatusCode::BAD_REQUEST,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Database(_) | Self::LogRead(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    /// The `error_type` label of `api_errors_total` and the body's `error_type`: a short,
    /// bounded set of names.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::UnknownRun => "unknown_run",
            Self::UnknownStage => "unknown_stage",
            Self::NoLog { .. } => "no_log",
            Self::InvalidQuery { .. } => "invalid_query",
            Self::Unavailable(_) => "database_unavailable",
            Self::Database(_) => "database",
            Self::LogRead(_) => "log_read",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
        }
    }

    /// What the client reads: 4xx say what is wrong; 5xx say what failed, without internals.
    fn detail(&self) -> String {
        match self {
            Self::Unavailable(_) => {
                format!("The run database is unreachable; retry in {RETRY_AFTER_SECS} s")
            }
            Self::Database(_) => "The run database answered with an error".to_owned(),
            Self::LogRead(_) => "Could not read the stage log".to_owned(),
            other => other.to_string(),
        }
    }
}

/// Left in a response's extensions by every error answer, for the [`edge`](crate::edge).
#[derive(Debug, Clone)]
pub struct ErrorReport {
    pub error_type: &'static str,
    /// The full cause chain, for the log only.
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "detail": self.detail(), "error_type": self.error_type() });
        let mut response = (self.status(), Json(body)).into_response();
        if matches!(self, Self::Unavailable(_)) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        response.extensions_mut().insert(ErrorReport {
            error_type: self.error_type(),
            message: ErrorChain(&self).to_string(),
        });
        response
    }
}
