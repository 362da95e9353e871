//! Wiring: the one way to start the backend, shared by `main` and the tests.

use std::future::Future;
use std::io;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::routing::{get, post};
use axum::{Extension, Router, middleware};
use doodle_core::config::BackendSettings;
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::edge::edge;
use crate::extract::BodyLimit;
use crate::feedback::RecentPredictions;
use crate::metrics::BackendMetrics;
use crate::routes;
use crate::storage::ImageStore;
use crate::upstream::{ClientError, MODEL_VERSION, ModelServerClient, REQUEST_ID};

/// What every handler shares; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub model_server: ModelServerClient,
    pub store: ImageStore,
    pub metrics: BackendMetrics,
    /// The predictions relayed lately, for live feedback on saves.
    pub recent: RecentPredictions,
}

impl AppState {
    pub fn new(settings: &BackendSettings) -> Result<Self, StartupError> {
        Ok(Self {
            model_server: ModelServerClient::new(settings)?,
            store: ImageStore::new(&settings.img_data_location),
            metrics: BackendMetrics::new(),
            recent: RecentPredictions::default(),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot listen on {addr}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("`backend.cors_origins`: `{0}` is not a valid origin")]
    CorsOrigin(String),
}

/// The routes and layers, given the state. Tests may call it directly.
pub fn router(state: AppState, settings: &BackendSettings) -> Result<Router, StartupError> {
    let origins = settings
        .cors_origins
        .iter()
        .map(|o| {
            HeaderValue::from_str(o.trim_end_matches('/'))
                .map_err(|_| StartupError::CorsOrigin(o.clone()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let request_id = HeaderName::from_static(REQUEST_ID);
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::CONTENT_TYPE, request_id.clone()])
        .expose_headers([request_id, HeaderName::from_static(MODEL_VERSION)])
        .max_age(Duration::from_secs(600));

    let limit = settings.body_limit_bytes;
    Ok(Router::new()
        .route("/invocations/", post(routes::invocations))
        .route("/invocations", post(routes::invocations))
        .route("/save-image/", post(routes::save_image))
        .route("/save-image", post(routes::save_image))
        .route("/categories", get(routes::categories))
        .route("/health", get(routes::health))
        .route("/ready", get(routes::ready))
        .route("/metrics", get(routes::metrics))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(Extension(BodyLimit(limit)))
        .layer(cors)
        // Outermost: the request id, the metrics and the log line cover every answer,
        // CORS preflights included.
        .layer(middleware::from_fn_with_state(state.metrics.clone(), edge))
        .with_state(state))
}

/// A bound listener plus the app; `run_until_stopped` serves it.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    port: u16,
    router: Router,
}

impl Application {
    /// Bind `settings.addr()` (port 0 picks a free port) and wire the app.
    pub async fn build(settings: BackendSettings) -> Result<Self, StartupError> {
        let addr = settings.addr();
        let bind_error = |source| StartupError::Bind { addr, source };
        let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
        let port = listener.local_addr().map_err(bind_error)?.port();
        let state = AppState::new(&settings)?;
        let router = router(state, &settings)?;
        tracing::info!(
            port,
            model_server = %settings.model_server_url,
            img_data_location = %settings.img_data_location.display(),
            "backend ready"
        );
        Ok(Self {
            listener,
            port,
            router,
        })
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serve until `shutdown` resolves, then stop accepting and finish in-flight requests.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> io::Result<()> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
    }
}
