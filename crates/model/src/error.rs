//! The crate's one error type. Every variant that concerns a file names it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A data file that exists but is not usable drawings (wrong dtype, shape, truncated, not an image).
    #[error("{}: {message}", path.display())]
    BadData { path: PathBuf, message: String },
    /// A checkpoint directory whose weights and metadata do not belong together.
    #[error("checkpoint {}: {message}", path.display())]
    Checkpoint { path: PathBuf, message: String },
    /// Input that the caller should have validated (empty batch, partial drawing).
    #[error("invalid input: {0}")]
    Input(String),
    /// Options that make no sense (no categories, batch size 0, ...).
    #[error("invalid options: {0}")]
    Options(String),
    #[error("download of {url} failed: {message}")]
    Download { url: String, message: String },
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

impl ModelError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ModelError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn bad_data(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        ModelError::BadData {
            path: path.into(),
            message: message.into(),
        }
    }

    pub(crate) fn checkpoint(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        ModelError::Checkpoint {
            path: path.into(),
            message: message.into(),
        }
    }
}
