//! The page: `static/` (HTML, CSS and a script, no build step) compiled into the binary.
//!
//! Embedded rather than served from a configured folder (as the UI's `ui-server` does): the
//! page is three small files that only make sense with this API version, so shipping them
//! inside the binary keeps them in step with it, and `dashboard` works from any working
//! directory (`make run`, a container) with no path to configure or get wrong. Editing the page
//! means rebuilding the binary (seconds).

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

pub const INDEX_HTML: &str = include_str!("../static/index.html");
pub const APP_JS: &str = include_str!("../static/app.js");
pub const STYLE_CSS: &str = include_str!("../static/style.css");

/// Only this origin's script, styles and API; no inline script, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            // Always ask: a new binary's page must not meet an old cached script.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            ),
        ],
        body,
    )
        .into_response()
}

pub async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

pub async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

pub async fn style_css() -> Response {
    asset("text/css; charset=utf-8", STYLE_CSS)
}
