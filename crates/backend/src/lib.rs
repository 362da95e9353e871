//! The backend (:8000): the design's API in front of the model server.
//!
//! - `POST /invocations/` (and `/invocations`): an MLflow scoring body, checked, then forwarded
//!   unchanged to the model server, whose status and JSON come back unchanged.
//! - `POST /save-image/` (and `/save-image`): a labelled drawing saved as a 28×28 PNG.
//! - `GET /categories`, `GET /health`, `GET /ready`, `GET /metrics`.
//!
//! Every labelled save is also live feedback on the model (see [`feedback`]).
//!
//! Every error is `{"detail": "..."}` (see [`error`]), counted in `api_errors_total` and logged
//! once by the [`edge`], which also gives each request its id, its metrics and its log line.

pub mod edge;
pub mod error;
mod extract;
pub mod feedback;
pub mod metrics;
mod routes;
pub mod startup;
pub mod storage;
pub mod upstream;

pub use startup::{AppState, Application, StartupError, router};
