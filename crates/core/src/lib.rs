//! Shared plumbing for the doodle services.
//!
//! Nothing here knows about tch, databases or any one service's API: it is the
//! configuration loader, the tracing setup, the HTTP metrics layer and the
//! shutdown signal that every binary in the workspace starts with.

pub mod category;
pub mod config;
pub mod error;
pub mod image;
pub mod metrics;
pub mod shutdown;
pub mod telemetry;

pub use config::{ConfigError, Settings};
pub use error::ErrorChain;
