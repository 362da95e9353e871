//! One module per resource; each handler is thin and returns `Result<_, ApiError>`.

mod categories;
mod health;
mod invocations;
mod metrics;
mod save_image;

pub use categories::categories;
pub use health::{health, ready};
pub use invocations::invocations;
pub use metrics::metrics;
pub use save_image::save_image;

use crate::error::ApiError;

/// Unmatched paths: FastAPI's `{"detail": "Not Found"}`.
pub async fn not_found() -> ApiError {
    ApiError::NotFound
}

/// Known paths, wrong method: FastAPI's `{"detail": "Method Not Allowed"}`.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
