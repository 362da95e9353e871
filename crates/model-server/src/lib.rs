//! The model server (:5002): MLflow's scoring protocol over the tch classifier.
//!
//! - [`startup`]: [`Application`] binds, loads the deployed model and serves.
//! - [`parse`]: the four MLflow request shapes and the image encodings → 784-byte drawings.
//! - [`worker`]: the bounded queue and the inference thread that owns the model and batches.
//! - [`swap`]: follows the registry's deployed alias and hot-swaps new versions.
//! - [`error`]: one error enum → MLflow's `{"error_code", "message"}` and status table.

pub mod error;
pub mod metrics;
pub mod parse;
pub mod routes;
pub mod startup;
pub mod swap;
pub mod test_support;
pub mod worker;

pub use startup::Application;

/// Response header naming the model version that computed the predictions.
pub const MODEL_VERSION_HEADER: &str = "x-model-version";
