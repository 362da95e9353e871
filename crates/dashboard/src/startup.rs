//! Wiring: the one way to start the dashboard, shared by `main` and the tests.

use std::future::Future;
use std::io;
use std::sync::Arc;

use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::routing::get;
use axum::{Router, middleware};
use doodle_runs::RunsError;
use tokio::net::TcpListener;

use crate::config::DashboardConfig;
use crate::db::Runs;
use crate::edge::edge;
use crate::metrics::DashboardMetrics;
use crate::{page, routes};

/// What every handler shares; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub runs: Arc<Runs>,
    pub config: Arc<DashboardConfig>,
    pub metrics: DashboardMetrics,
}

impl AppState {
    pub fn new(config: DashboardConfig) -> Result<Self, StartupError> {
        Ok(Self {
            runs: Arc::new(Runs::new(&config.database_url, config.db_timeout())?),
            config: Arc::new(config),
            metrics: DashboardMetrics::new(),
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
    #[error("`database.url`")]
    Database(#[from] RunsError),
}

/// The routes and layers, given the state. Tests may call it directly.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(page::index))
        .route("/index.html", get(page::index))
        .route("/app.js", get(page::app_js))
        .route("/style.css", get(page::style_css))
        .route("/pipeline_runs", get(routes::list_runs))
        .route("/pipeline_runs/{id}", get(routes::get_run))
        .route("/pipeline_runs/{id}/stages/{n}/log", get(routes::stage_log))
        .route("/health", get(routes::health))
        .route("/ready", get(routes::ready))
        .route("/metrics", get(routes::metrics))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(middleware::map_response(nosniff))
        // Outermost: the request id, the metrics and the log line cover every answer.
        .layer(middleware::from_fn_with_state(state.metrics.clone(), edge))
        .with_state(state)
}

/// Every answer's type is the one it says (a stage log is text, never HTML).
async fn nosniff(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// A bound listener plus the app; `run_until_stopped` serves it.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    port: u16,
    router: Router,
}

impl Application {
    /// Bind `config.addr()` (port 0 picks a free port) and wire the app. The database is not
    /// reached here: the dashboard starts without it ([`crate::db`]).
    pub async fn build(config: DashboardConfig) -> Result<Self, StartupError> {
        let addr = config.addr();
        let bind_error = |source| StartupError::Bind { addr, source };
        let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
        let port = listener.local_addr().map_err(bind_error)?.port();
        tracing::info!(
            port,
            database = %redact(&config.database_url),
            log_dir = %config.log_dir.display(),
            "dashboard ready"
        );
        let state = AppState::new(config)?;
        Ok(Self {
            listener,
            port,
            router: router(state),
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

/// A database URL for the log: the password (if any) replaced by `***`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_do_not_reach_the_log() {
        assert_eq!(
            redact("postgres://u:secret@db:5432/runs"),
            "postgres://u:***@db:5432/runs"
        );
        assert_eq!(
            redact("postgres://postgres@127.0.0.1/test"),
            "postgres://postgres@127.0.0.1/test"
        );
        assert_eq!(
            redact("sqlite://doodle.db?mode=rwc"),
            "sqlite://doodle.db?mode=rwc"
        );
    }
}
