//! The edge: the one middleware around every route.
//!
//! For each request it
//! - accepts the client's `x-request-id` or creates one, puts it on the request (the handlers
//!   forward it to the model server) and on the response;
//! - counts the request in the shared HTTP metrics, and every error answer in
//!   `api_errors_total{endpoint,error_type}` (from the [`ErrorReport`] the error left);
//! - writes one log line: the access line for a success, the error with its cause chain
//!   otherwise (so an error is logged once), both with the request id and the latency.
//!
//! One middleware instead of a request-id layer, a trace span, a metrics layer and an error
//! reporter: the relay's own cost is what its overhead in front of the model server is made of.

use std::fmt;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use doodle_core::metrics::route_label;

use crate::error::ErrorReport;
use crate::metrics::BackendMetrics;
use crate::upstream::REQUEST_ID;

/// The request's id, as accepted or created at the edge; handlers read it from the request's
/// extensions (`Extension<RequestId>`).
#[derive(Debug, Clone)]
pub struct RequestId(pub HeaderValue);

impl RequestId {
    /// For the log: the id as text (`-` for one that is not visible ASCII).
    pub fn as_str(&self) -> &str {
        self.0.to_str().unwrap_or("-")
    }
}

/// A latency for the log: `0.412ms`.
struct Millis(Duration);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3}ms", self.0.as_secs_f64() * 1e3)
    }
}

/// The id a client sent, or a new UUID.
fn request_id(req: &Request) -> HeaderValue {
    match req.headers().get(REQUEST_ID) {
        Some(id) => id.clone(),
        None => {
            let mut text = uuid::Uuid::encode_buffer();
            let text = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
            HeaderValue::from_str(text).expect("a UUID is a valid header value")
        }
    }
}

/// The `endpoint` label of `api_errors_total`: the route template, with the design's trailing
/// slash for the two routes that answer with and without it, so both spellings count as one.
pub fn endpoint_label(route: &str) -> &str {
    match route {
        "/invocations" => "/invocations/",
        "/save-image" => "/save-image/",
        path => path,
    }
}

/// Middleware: request id, metrics, error accounting and the one log line per request.
pub async fn edge(State(metrics): State<BackendMetrics>, mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let id = request_id(&req);
    req.headers_mut().insert(REQUEST_ID, id.clone());
    let id = RequestId(id);
    req.extensions_mut().insert(id.clone());
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
    let request_id = id.as_str();
    if status.is_client_error() || status.is_server_error() {
        let endpoint = endpoint_label(&route);
        let (error_type, message) = match response.extensions().get::<ErrorReport>() {
            Some(report) => (report.error_type, report.message.as_str()),
            None => ("http_error", status.canonical_reason().unwrap_or("error")),
        };
        metrics.api_error(endpoint, error_type);
        let status = status.as_u16();
        if status >= 500 {
            tracing::error!(%method, %endpoint, status, %error_type, %latency, %request_id, "{message}");
        } else {
            tracing::warn!(%method, %endpoint, status, %error_type, %latency, %request_id, "{message}");
        }
    } else {
        let status = status.as_u16();
        tracing::info!(%method, %route, status, %latency, %request_id, "answered");
    }
    response.headers_mut().insert(REQUEST_ID, id.0);
    response
}
