use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::startup::AppState;

/// What the page needs to know at run time: `GET /config.json`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ClientConfig {
    /// The backend as the browser reaches it, without a trailing slash.
    pub backend_url: String,
    /// The category rule in words, shown next to the "it's a ___" field.
    pub category_rule: &'static str,
    /// The longest category name the backend accepts.
    pub category_max_len: usize,
}

impl ClientConfig {
    pub fn new(backend_url: &str) -> Self {
        Self {
            backend_url: backend_url.trim_end_matches('/').to_owned(),
            category_rule: doodle_core::category::RULE,
            category_max_len: doodle_core::category::MAX_LEN,
        }
    }
}

/// `GET /config.json`. Never cached: a changed configuration takes effect on the next page load.
pub async fn client_config(State(state): State<AppState>) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        state.client_config_json.clone(),
    )
        .into_response()
}
