//! The one place where failures become HTTP answers.
//!
//! Every handler returns `Result<_, ApiError>`. [`ApiError`]'s `IntoResponse` picks the status
//! and writes the design's FastAPI body, `{"detail": "..."}`; it has no side effects. It leaves an
//! [`ErrorReport`] in the response extensions, and the [`edge`](crate::edge) counts it in
//! `api_errors_total{endpoint,error_type}` and logs it once, with its cause chain and the request
//! id. 5xx details stay in the log.

use std::io;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use doodle_core::ErrorChain;
use doodle_core::category::CategoryError;
use serde_json::json;

use crate::storage::StoreError;
use crate::upstream::UpstreamError;

/// The design's texts, kept word for word: clients match on them.
pub const INVALID_BASE64: &str = "Invalid base64 encoding";
pub const WRONG_SIZE: &str = "Image must be 28x28 pixels (784 values)";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{INVALID_BASE64}")]
    InvalidBase64,
    #[error("{WRONG_SIZE}: got {0} bytes")]
    WrongSize(usize),
    #[error(transparent)]
    InvalidCategory(#[from] CategoryError),
    #[error("Content-Type must be application/json, got `{0}`")]
    UnsupportedMediaType(String),
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("could not read the request body")]
    BodyRead(#[source] axum::Error),
    #[error("request body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("request body must be a JSON object, got {0}")]
    NotAnObject(&'static str),
    #[error("field `{0}` is required")]
    MissingField(&'static str),
    #[error("field `{field}` must be {expected}")]
    InvalidField {
        field: &'static str,
        expected: &'static str,
    },
    #[error(
        "the body must hold exactly one of the MLflow input fields `inputs`, `instances`, \
         `dataframe_split`, `dataframe_records`; got {0}"
    )]
    AmbiguousInput(String),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("saving the image")]
    Storage(#[from] StoreError),
    #[error("the model server is not ready")]
    NotReady(#[source] UpstreamError),
    #[error("Not Found")]
    NotFound,
    #[error("Method Not Allowed")]
    MethodNotAllowed,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidBase64 | Self::WrongSize(_) | Self::InvalidCategory(_) => {
                StatusCode::BAD_REQUEST
            }
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyRead(_) => StatusCode::BAD_REQUEST,
            Self::InvalidJson(_)
            | Self::NotAnObject(_)
            | Self::MissingField(_)
            | Self::InvalidField { .. }
            | Self::AmbiguousInput(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Upstream(err) => err.status(),
            Self::Storage(StoreError::UnsafeFolder { .. }) => StatusCode::FORBIDDEN,
            Self::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::NotReady(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    /// The `error_type` label of `api_errors_total`: a short, bounded set of names.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::InvalidBase64 => "invalid_base64",
            Self::WrongSize(_) => "invalid_size",
            Self::InvalidCategory(_) => "invalid_category",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::BodyRead(_) => "body_read",
            Self::InvalidJson(_) => "invalid_json",
            Self::NotAnObject(_) | Self::InvalidField { .. } | Self::AmbiguousInput(_) => {
                "invalid_field"
            }
            Self::MissingField(_) => "missing_field",
            Self::Upstream(err) => err.error_type(),
            Self::Storage(StoreError::UnsafeFolder { .. }) => "unsafe_folder",
            Self::Storage(_) => "storage",
            Self::NotReady(_) => "not_ready",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
        }
    }

    /// What the client reads. Client errors say exactly what is wrong; server errors say what
    /// failed without internals (those are in the log).
    fn detail(&self) -> String {
        match self {
            Self::WrongSize(_) => WRONG_SIZE.to_owned(),
            Self::BodyRead(_) => "Could not read the request body".to_owned(),
            Self::Upstream(err) => err.detail(),
            Self::NotReady(err) => format!("Model server is not ready: {}", err.detail()),
            Self::Storage(err) => match err {
                StoreError::UnsafeFolder { category } => format!(
                    "Refusing to save: the folder for category `{category}` is a symbolic link \
                     or not a folder"
                ),
                other => match other.io_kind() {
                    Some(io::ErrorKind::StorageFull) => {
                        "Could not save the image: no space left on the device".to_owned()
                    }
                    Some(io::ErrorKind::ReadOnlyFilesystem | io::ErrorKind::PermissionDenied) => {
                        "Could not save the image: the image folder is not writable".to_owned()
                    }
                    _ => "Could not save the image: storage error".to_owned(),
                },
            },
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
        let mut response =
            (self.status(), Json(json!({ "detail": self.detail() }))).into_response();
        response.extensions_mut().insert(ErrorReport {
            error_type: self.error_type(),
            message: ErrorChain(&self).to_string(),
        });
        response
    }
}
