//! Where models live.
//!
//! A *model version* is a checkpoint directory (whatever files the model crate writes:
//! `model.safetensors` + `metadata.json`) plus registry bookkeeping (version number, tags,
//! creation time). An *alias* (default `champion`) names the deployed version; the model
//! server follows it, the pipeline's register stage moves it.
//!
//! [`LocalRegistry`] keeps everything in a directory on this machine (the embedded default).
//! Every update is atomic: a version appears complete or not at all, and an alias always
//! names a whole version. [`MlflowRegistry`] keeps versions on an MLflow tracking server.
//! [`Registry`] is either one, as `[registry]` in config.toml chooses; the pipeline and the
//! `doodle-registry` CLI use it.
//!
//! Both registries keep an **alias history**: every move of an alias is an [`AliasEvent`]
//! (which version, which before, when, by whom, why), and a rollback moves the alias back to
//! the previous champion, walking back one champion per rollback ([`history`] has the rule).

pub mod history;
pub mod local;
pub mod mlflow;
pub mod registry;
#[cfg(feature = "test-support")]
pub mod test_support;

pub use history::AliasEvent;
pub use local::{LocalRegistry, ModelVersion};
pub use mlflow::{MLFLOW_EXPERIMENT, MlflowClient, MlflowError, MlflowRegistry, RunRecord};
pub use registry::Registry;

/// What can go wrong in either registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: invalid registry record: {source}")]
    Corrupt {
        path: std::path::PathBuf,
        source: serde_json::Error,
    },
    #[error("model {model:?} has no version {version}")]
    NoSuchVersion { model: String, version: u64 },
    #[error("{0}")]
    Invalid(String),
    /// The MLflow server (or the way to it) failed.
    #[error(transparent)]
    Mlflow(#[from] MlflowError),
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// A model the server can load: the version number and where its checkpoint files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployed {
    pub version: String,
    pub dir: std::path::PathBuf,
}
