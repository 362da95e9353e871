//! HTTP routes.

mod health;
mod invocations;

pub use health::{health, model, ping, version};
pub use invocations::invocations;
