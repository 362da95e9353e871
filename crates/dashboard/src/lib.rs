//! The pipeline dashboard (:8001): the design's `pipeline_runs` API and the page that shows it.
//!
//! - `GET /pipeline_runs` (`?limit=&offset=`): runs newest first, the design's field names plus
//!   durations, failure messages and what each run produced ([`view`]); a `Link` header pages.
//! - `GET /pipeline_runs/{id}`: one run, with the gate's report and its stage logs.
//! - `GET /pipeline_runs/{id}/stages/{n}/log`: the end of that stage's log ([`logs`]).
//! - `GET /health`, `GET /ready`, `GET /metrics` (HTTP and pipeline metrics, [`metrics`]).
//! - `GET /`: the page ([`page`]), refreshing itself every 5 s.
//!
//! The database is reached lazily ([`db`]): the service starts without it, answers 503 while it
//! is down and serves again when it is back. Every error is `{"detail", "error_type"}`
//! ([`error`]), counted and logged once by the [`edge`], which logs every request with its row
//! count.

pub mod config;
pub mod db;
pub mod edge;
pub mod error;
pub mod logs;
pub mod metrics;
pub mod page;
mod routes;
pub mod startup;
pub mod view;

pub use config::DashboardConfig;
pub use startup::{AppState, Application, StartupError, router};
