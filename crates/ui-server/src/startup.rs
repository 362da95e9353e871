//! Building and running the UI server: the only way to start it, shared by `main` and the tests.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderName, HeaderValue, header};
use axum::routing::get;
use doodle_core::config::UiSettings;
use doodle_core::metrics::{Metrics, track_http};
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::compression::CompressionLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::error::StartupError;
use crate::routes::{self, ClientConfig};
use crate::static_files;

/// Shared by every handler; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// `/config.json`, serialised once.
    pub client_config_json: Bytes,
    pub metrics: Metrics,
    /// The page's Content-Security-Policy (allows requests to the backend's origin).
    pub csp: HeaderValue,
    pub static_dir: Arc<Path>,
}

impl AppState {
    /// Check the settings and prepare what the handlers share.
    pub fn new(settings: &UiSettings) -> Result<Self, StartupError> {
        let index = settings.static_dir.join("index.html");
        if !index.is_file() {
            return Err(StartupError::NoIndexHtml(settings.static_dir.clone()));
        }
        let backend = url::Url::parse(&settings.backend_url)
            .map_err(|err| err.to_string())
            .and_then(|url| match url.scheme() {
                "http" | "https" if url.host().is_some() => Ok(url),
                _ => Err("not an http(s) URL".to_owned()),
            })
            .map_err(|message| StartupError::BackendUrl {
                url: settings.backend_url.clone(),
                message,
            })?;
        let origin = backend.origin().ascii_serialization();
        let csp = HeaderValue::from_str(&static_files::content_security_policy(&origin))
            .expect("an ASCII origin makes a valid header value. This is a bug.");
        let config = ClientConfig::new(&settings.backend_url);
        let client_config_json = Bytes::from(
            serde_json::to_vec(&config).expect("ClientConfig serialises. This is a bug."),
        );
        Ok(Self {
            client_config_json,
            metrics: Metrics::new(),
            csp,
            static_dir: Arc::from(settings.static_dir.as_path()),
        })
    }
}

/// The whole app: dynamic routes, the page's files, metrics, compression and tracing.
pub fn router(state: AppState) -> Router {
    let files = Router::new()
        .route_service("/", static_files::serve_dir(&state.static_dir))
        .route_service("/{*path}", static_files::serve_dir(&state.static_dir))
        .layer(
            ServiceBuilder::new()
                .layer(axum::middleware::from_fn(static_files::cache_headers))
                .layer(SetResponseHeaderLayer::overriding(
                    header::CONTENT_SECURITY_POLICY,
                    state.csp.clone(),
                )),
        );
    Router::new()
        .route("/config.json", get(routes::client_config))
        .route("/health", get(routes::health))
        .route("/metrics", get(routes::metrics))
        .merge(files)
        .layer(
            ServiceBuilder::new()
                .layer(TraceLayer::new_for_http())
                .layer(axum::middleware::from_fn_with_state(
                    state.metrics.http().clone(),
                    track_http,
                ))
                .layer(SetResponseHeaderLayer::overriding(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ))
                .layer(SetResponseHeaderLayer::overriding(
                    HeaderName::from_static("referrer-policy"),
                    HeaderValue::from_static("no-referrer"),
                ))
                .layer(CompressionLayer::new()),
        )
        .with_state(state)
}

/// A bound, ready-to-run UI server.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    router: Router,
}

impl Application {
    /// Check the settings, bind `ui.host:ui.port` (port 0 picks a free one) and build the router.
    pub async fn build(settings: &UiSettings) -> Result<Self, StartupError> {
        let state = AppState::new(settings)?;
        let addr = settings.addr();
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartupError::Bind { addr, source })?;
        tracing::info!(
            static_dir = %settings.static_dir.display(),
            backend_url = %settings.backend_url,
            "serving the page"
        );
        Ok(Self {
            listener,
            router: router(state),
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address. This is a bug.")
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// Serve until `shutdown` resolves, then finish the requests in flight.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let addr = self.local_addr();
        tracing::info!("ui-server listening on http://{addr}");
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await?;
        tracing::info!("ui-server stopped");
        Ok(())
    }
}
