//! Prometheus metrics: one registry per service, and an HTTP layer that counts
//! every request and its latency by route template, method and status.
//!
//! ```ignore
//! let metrics = Metrics::new();
//! let app = Router::new()
//!     .route("/metrics", get(metrics_endpoint))
//!     .layer(axum::middleware::from_fn_with_state(metrics.http().clone(), doodle_core::metrics::track_http));
//! ```

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

/// Route label for requests that matched no route: keeps label values bounded.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Latency buckets for HTTP handlers, 1 ms … 10 s.
pub const HTTP_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A service's registry plus the shared HTTP metrics registered in it.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    http: HttpMetrics,
}

/// The per-request metrics the [`track_http`] middleware updates.
#[derive(Clone, Debug)]
pub struct HttpMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
    in_flight: IntGauge,
}

impl Metrics {
    /// A fresh registry (not the process-global one, so tests stay independent).
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "doodle_http_requests_total",
                "HTTP requests answered, by route template, method and status code.",
            ),
            &["route", "method", "status"],
        )
        .expect("valid metric definition. This is a bug.");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "doodle_http_request_duration_seconds",
                "Time from request to response headers, by route template and method.",
            )
            .buckets(HTTP_BUCKETS.to_vec()),
            &["route", "method"],
        )
        .expect("valid metric definition. This is a bug.");
        let in_flight = IntGauge::new(
            "doodle_http_requests_in_flight",
            "HTTP requests being handled right now.",
        )
        .expect("valid metric definition. This is a bug.");
        let http = HttpMetrics {
            requests,
            duration,
            in_flight,
        };
        let metrics = Self { registry, http };
        metrics.register(Box::new(metrics.http.requests.clone()));
        metrics.register(Box::new(metrics.http.duration.clone()));
        metrics.register(Box::new(metrics.http.in_flight.clone()));
        metrics
    }

    /// Register a service-specific collector. Names are fixed at compile time, so a
    /// clash is a programming error.
    pub fn register(&self, collector: Box<dyn prometheus::core::Collector>) {
        self.registry
            .register(collector)
            .expect("metric registered twice. This is a bug.");
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn http(&self) -> &HttpMetrics {
        &self.http
    }

    /// The Prometheus text exposition of everything registered.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("encoding metrics into a Vec cannot fail. This is a bug.");
        String::from_utf8(buf).expect("the text encoder writes UTF-8. This is a bug.")
    }

    /// `GET /metrics` as a response.
    pub fn response(&self) -> Response {
        (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            )],
            self.render(),
        )
            .into_response()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpMetrics {
    /// One request more in flight, until the guard is dropped.
    pub fn start(&self) -> InFlight {
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }

    /// Count an answered request and its latency. `route` is the route template, or
    /// [`UNMATCHED_ROUTE`]: raw paths would make the label set unbounded.
    pub fn record(&self, route: &str, method: &str, status: StatusCode, elapsed: Duration) {
        self.requests
            .with_label_values(&[route, method, status.as_str()])
            .inc();
        self.duration
            .with_label_values(&[route, method])
            .observe(elapsed.as_secs_f64());
    }
}

/// A request in flight; dropping it (answered, or cancelled by the client) counts it out.
#[derive(Debug)]
#[must_use = "the request counts as in flight only while this guard lives"]
pub struct InFlight(IntGauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The route label of a request: its route template, or [`UNMATCHED_ROUTE`].
pub fn route_label(req: &Request) -> &str {
    req.extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED_ROUTE, MatchedPath::as_str)
}

/// Middleware: count and time every request by route template, method and status.
pub async fn track_http(State(metrics): State<HttpMetrics>, req: Request, next: Next) -> Response {
    let route = route_label(&req).to_owned();
    let method = req.method().clone();
    let _in_flight = metrics.start();
    let start = Instant::now();
    let response = next.run(req).await;
    metrics.record(&route, method.as_str(), response.status(), start.elapsed());
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    fn app(metrics: &Metrics) -> Router {
        let m = metrics.clone();
        Router::new()
            .route("/items/{id}", get(|| async { "ok" }))
            .route("/metrics", get(move || async move { m.response() }))
            .layer(axum::middleware::from_fn_with_state(
                metrics.http().clone(),
                track_http,
            ))
    }

    async fn get_status(app: &Router, uri: &str) -> StatusCode {
        app.clone()
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap()
            .status()
    }

    #[tokio::test]
    async fn requests_are_counted_by_route_template_not_raw_path() {
        let metrics = Metrics::new();
        let app = app(&metrics);
        assert_eq!(get_status(&app, "/items/1").await, StatusCode::OK);
        assert_eq!(get_status(&app, "/items/2").await, StatusCode::OK);
        assert_eq!(
            get_status(&app, "/nope/../etc").await,
            StatusCode::NOT_FOUND
        );

        let text = metrics.render();
        assert!(
            text.contains(
                r#"doodle_http_requests_total{method="GET",route="/items/{id}",status="200"} 2"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"doodle_http_requests_total{method="GET",route="unmatched",status="404"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"doodle_http_request_duration_seconds_count{method="GET",route="/items/{id}"} 2"#
            ),
            "{text}"
        );
        assert!(
            !text.contains("/items/1"),
            "raw paths must not become labels"
        );
    }

    #[tokio::test]
    async fn metrics_endpoint_serves_prometheus_text() {
        let metrics = Metrics::new();
        let app = app(&metrics);
        assert_eq!(get_status(&app, "/items/7").await, StatusCode::OK);
        let response = app
            .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(
            text.contains("# TYPE doodle_http_request_duration_seconds histogram"),
            "{text}"
        );
        assert!(
            text.contains("doodle_http_requests_in_flight 1"),
            "the scrape itself is in flight: {text}"
        );
    }

    #[tokio::test]
    async fn a_request_the_client_gave_up_on_is_not_left_in_flight() {
        let metrics = Metrics::new();
        let app = Router::new()
            .route("/never", get(std::future::pending::<&'static str>))
            .layer(axum::middleware::from_fn_with_state(
                metrics.http().clone(),
                track_http,
            ));
        let request = app.oneshot(Request::get("/never").body(Body::empty()).unwrap());
        let gave_up = tokio::time::timeout(Duration::from_millis(20), request).await;
        assert!(gave_up.is_err(), "the handler never answers");
        let text = metrics.render();
        assert!(text.contains("doodle_http_requests_in_flight 0"), "{text}");
    }

    #[test]
    fn each_service_gets_its_own_registry() {
        let a = Metrics::new();
        let b = Metrics::new();
        a.http()
            .requests
            .with_label_values(&["/x", "GET", "200"])
            .inc();
        assert!(a.render().contains("route=\"/x\""));
        assert!(!b.render().contains("route=\"/x\""));
    }
}
