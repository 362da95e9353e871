//! The edge: the one middleware around every route.
//!
//! For each request it accepts the client's `x-request-id` or creates one (and returns it),
//! counts the request in the shared HTTP metrics and every error answer in
//! `api_errors_total{endpoint,error_type}`, and writes one log line to
//! `dashboard_backend.log`: the access line with the number of rows answered ([`Rows`]), or the
//! error with its cause chain (so an error is logged once).

use std::fmt;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use doodle_core::metrics::route_label;

use crate::error::ErrorReport;
use crate::metrics::DashboardMetrics;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// How many rows (runs, or log lines) an answer holds; handlers put it in the response's
/// extensions for the log line.
#[derive(Debug, Clone, Copy)]
pub struct Rows(pub usize);

/// A latency for the log: `0.412ms`.
struct Millis(Duration);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3}ms", self.0.as_secs_f64() * 1e3)
    }
}

fn request_id(req: &Request) -> HeaderValue {
    match req.headers().get(&REQUEST_ID) {
        Some(id) => id.clone(),
        None => {
            let mut text = uuid::Uuid::encode_buffer();
            let text = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
            HeaderValue::from_str(text).expect("a UUID is a valid header value. This is a bug.")
        }
    }
}

/// Middleware: request id, metrics, error accounting and the one log line per request.
pub async fn edge(State(metrics): State<DashboardMetrics>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let id = request_id(&req);
    let route = route_label(&req).to_owned();
    let method = req.method().clone();
    let http = metrics.core.http();
    let in_flight = http.start();

    let mut response = next.run(req).await;

    let elapsed = start.elapsed();
    drop(in_flight);
    let status = response.status();
    http.record(&route, method.as_str(), status, elapsed);
    let latency = Millis(elapsed);
    let request_id = id.to_str().unwrap_or("-");
    if status.is_client_error() || status.is_server_error() {
        let (error_type, message) = match response.extensions().get::<ErrorReport>() {
            Some(report) => (report.error_type, report.message.as_str()),
            None => ("http_error", status.canonical_reason().unwrap_or("error")),
        };
        metrics.api_error(&route, error_type);
        let status = status.as_u16();
        if status >= 500 {
            tracing::error!(%method, %route, status, %error_type, %latency, %request_id, "{message}");
        } else {
            tracing::warn!(%method, %route, status, %error_type, %latency, %request_id, "{message}");
        }
    } else {
        let status = status.as_u16();
        match response.extensions().get::<Rows>() {
            Some(Rows(rows)) => {
                tracing::info!(%method, %route, status, rows, %latency, %request_id, "answered");
            }
            None => tracing::info!(%method, %route, status, %latency, %request_id, "answered"),
        }
    }
    response.headers_mut().insert(REQUEST_ID, id);
    response
}
