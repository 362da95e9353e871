//! Building and running the server: the one way to start it, for `main` and for tests.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use doodle_core::Settings;
use doodle_core::metrics::{Metrics, track_http};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::error::LoggedError;
use crate::metrics::ServerMetrics;
use crate::routes;
use crate::swap::{Follower, ModelSource, ServeOptions};
use crate::worker::{BatchConfig, Batcher};

/// Shared by every handler; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub batcher: Batcher,
    pub metrics: ServerMetrics,
    pub registry: Metrics,
    pub body_limit: usize,
    pub max_images_per_request: usize,
    pub deadline_ms: u64,
}

#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    router: Router,
    follower: Option<JoinHandle<()>>,
}

impl Application {
    /// Bind the port, start the inference worker, load the deployed model (if any) and
    /// start following the registry.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let ms = &settings.model_server;
        let serve = ServeOptions::from_settings(&settings);
        let registry = Metrics::new();
        let metrics = ServerMetrics::register(&registry);
        let batcher = Batcher::start(
            BatchConfig {
                max_batch_size: ms.max_batch_size,
                max_wait: Duration::from_millis(ms.max_wait_ms),
                wait_under_load: Duration::from_millis(ms.wait_under_load_ms),
                queue_capacity: ms.queue_capacity,
                threads: serve.predicting_threads(settings.model.threads),
                workers: serve.workers,
            },
            metrics.clone(),
        );
        let source = ModelSource::from_settings(&settings)?;
        let mut follower = Follower::new(source, batcher.clone(), metrics.clone(), serve);
        follower.check().await;
        let follower = (ms.poll_interval_secs > 0)
            .then(|| tokio::spawn(follower.run(Duration::from_secs(ms.poll_interval_secs))));

        let state = AppState {
            batcher,
            metrics,
            registry,
            body_limit: ms.body_limit_bytes,
            max_images_per_request: ms.max_images_per_request,
            deadline_ms: ms.deadline_ms,
        };
        let listener = TcpListener::bind(ms.addr())
            .await
            .map_err(|err| anyhow::anyhow!("cannot listen on {}: {err}", ms.addr()))?;
        tracing::info!(addr = %listener.local_addr()?, "model server listening");
        Ok(Self {
            listener,
            router: router(state),
            follower,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address. This is a bug.")
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// Serve until Ctrl-C or SIGTERM; in-flight requests finish.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(doodle_core::shutdown::signal()).await
    }

    /// Serve until `shutdown` resolves; in-flight requests finish.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let result = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await;
        if let Some(follower) = self.follower {
            follower.abort();
        }
        Ok(result?)
    }
}

/// The routes and layers, from the state: the seam for socket-free tests.
pub fn router(state: AppState) -> Router {
    let body_limit = state.body_limit;
    let http = state.registry.http().clone();
    Router::new()
        .route("/invocations", post(routes::invocations))
        .route("/invocations/", post(routes::invocations))
        .route("/ping", get(routes::ping))
        .route("/health", get(routes::health))
        .route("/version", get(routes::version))
        .route("/model", get(routes::model))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
        .layer(middleware::from_fn(log_errors))
        .layer(middleware::from_fn_with_state(http, track_http))
        .layer(
            TraceLayer::new_for_http()
                // log_errors logs failures once, with their cause; not again here.
                .on_failure(())
                .make_span_with(|req: &Request| {
                let request_id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                tracing::info_span!("request", method = %req.method(), uri = %req.uri().path(), request_id)
            }),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

async fn metrics(State(state): State<AppState>) -> Response {
    state.registry.response()
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"error_code": "ENDPOINT_NOT_FOUND", "message": "no such endpoint"})),
    )
        .into_response()
}

/// Log each error response once, inside the request's span.
async fn log_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    if let Some(LoggedError(err)) = response.extensions().get::<LoggedError>() {
        if response.status().is_server_error() {
            tracing::error!(status = %response.status(), error = %err, "request failed");
        } else {
            tracing::warn!(status = %response.status(), error = %err, "request refused");
        }
    }
    response
}
