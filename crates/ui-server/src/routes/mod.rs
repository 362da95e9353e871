//! The few dynamic routes; everything else is a static file.

mod client_config;
mod health;
mod metrics;

pub use client_config::{ClientConfig, client_config};
pub use health::health;
pub use metrics::metrics;
