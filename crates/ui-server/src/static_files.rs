//! The page's files: `ServeDir` over `ui.static_dir`, plus the headers a browser needs to cache
//! them correctly and to run them safely.
//!
//! Cache policy. The page has no build step, so its file names carry no content hash: HTML,
//! JavaScript modules and CSS are sent with `Cache-Control: no-cache` (the browser keeps them but
//! revalidates each use with `If-Modified-Since`, answered by a cheap 304), so a new version of
//! the page is never mixed with stale modules. Images and fonts rarely change and may be kept for a
//! day. Misses are `no-store`.

use std::convert::Infallible;
use std::path::Path;

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower::service_fn;
use tower::util::ServiceFn;
use tower_http::services::ServeDir;
use tower_http::set_status::SetStatus;

/// `Cache-Control` for revalidated files (HTML, scripts, styles).
pub const REVALIDATE: &str = "no-cache";
/// `Cache-Control` for images and fonts.
pub const LONG_LIVED: &str = "public, max-age=86400";
/// `Cache-Control` for anything that is not a file we serve.
pub const NO_STORE: &str = "no-store";

/// `ServeDir` over the page's folder; `/` serves `index.html`; misses are a plain 404.
pub fn serve_dir(dir: &Path) -> ServeDir<SetStatus<ServiceFn<NotFoundFn>>> {
    ServeDir::new(dir)
        .append_index_html_on_directories(true)
        .not_found_service(service_fn(not_found as NotFoundFn))
}

/// The 404 handler's type, spelled out so [`serve_dir`] can name its return type.
pub type NotFoundFn = fn(Request) -> std::future::Ready<Result<Response, Infallible>>;

fn not_found(_req: Request) -> std::future::Ready<Result<Response, Infallible>> {
    std::future::ready(Ok((StatusCode::NOT_FOUND, "not found\n").into_response()))
}

/// The `Cache-Control` value for a successful response to `path`.
pub fn cache_control_for(path: &str) -> &'static str {
    let last = path.rsplit('/').next().unwrap_or_default();
    let ext = last
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase());
    match ext.as_deref() {
        // `/` and other folders serve index.html.
        None => REVALIDATE,
        Some("html" | "js" | "mjs" | "css" | "json" | "webmanifest" | "txt" | "map") => REVALIDATE,
        Some(_) => LONG_LIVED,
    }
}

/// Middleware for the static routes: `Cache-Control` by file type, no-store for misses.
pub async fn cache_headers(req: Request, next: Next) -> Response {
    let policy = cache_control_for(req.uri().path());
    let mut response = next.run(req).await;
    let status = response.status();
    let value = if status.is_success() || status == StatusCode::NOT_MODIFIED {
        policy
    } else {
        NO_STORE
    };
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(value));
    response
}

/// The Content-Security-Policy of the page: its own files, plus requests to the backend's origin.
pub fn content_security_policy(backend_origin: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
         connect-src 'self' {backend_origin}; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'; object-src 'none'"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_scripts_and_styles_are_revalidated_and_images_kept() {
        for path in [
            "/",
            "/index.html",
            "/js/main.js",
            "/css/style.css",
            "/x/",
            "/A.JS",
        ] {
            assert_eq!(cache_control_for(path), REVALIDATE, "{path}");
        }
        for path in ["/favicon.svg", "/img/logo.png", "/fonts/a.woff2"] {
            assert_eq!(cache_control_for(path), LONG_LIVED, "{path}");
        }
    }

    #[test]
    fn csp_allows_the_backend_origin_only_for_requests() {
        let csp = content_security_policy("http://localhost:8000");
        assert!(
            csp.contains("connect-src 'self' http://localhost:8000;"),
            "{csp}"
        );
        assert!(csp.contains("script-src 'self';"), "{csp}");
    }
}
