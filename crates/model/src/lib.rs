//! The doodle classifier: a tch ResNet for 28×28 grayscale drawings.
//!
//! - [`input`]: the one input convention (784 bytes → float tensor), used everywhere.
//! - [`net`]: the network (tch's ResNet18/50, stock stem, input repeated to 3 channels).
//! - [`checkpoint`]: [`Classifier`] and [`Metadata`]: `model.safetensors` + `metadata.json`.
//! - [`fused`]: an inference-only copy with BatchNorm folded into the convolutions (serving).
//! - [`data`]: Quick, Draw! `.npy`, `.npz` bundles and PNG folders → [`Dataset`].
//! - [`train`]: training, fine-tuning and evaluation as library functions; the
//!   `doodle-model` binary is a thin CLI over them.
//! - [`download`]: the first N drawings of each category from the public `numpy_bitmap` files.
//!
//! This is the only crate that links libtorch.

pub mod bench;
pub mod checkpoint;
pub mod data;
pub mod download;
mod error;
pub mod evaluate;
pub mod fused;
pub mod input;
pub mod net;
pub mod plot;
mod rng;
pub mod train;

pub use checkpoint::{Classifier, Metadata, Predictor, save_untrained};
pub use data::Dataset;
pub use error::ModelError;
pub use evaluate::Evaluation;
pub use train::{
    DatasetFineTuneOptions, EpochEnd, FineTuneOptions, TrainOptions, TrainReport, fine_tune,
    fine_tune_dataset, train,
};

/// Side of one drawing in pixels.
pub const IMAGE_SIDE: i64 = 28;
/// Number of pixels in one drawing: 28 × 28, row-major.
pub const IMAGE_PIXELS: usize = 784;

/// The default model's categories (those of `../shared/data/quickdraw/categories.txt`), used
/// when no categories file is configured.
pub const DEFAULT_CATEGORIES: [&str; 15] = [
    "airplane",
    "alarm_clock",
    "apple",
    "banana",
    "bicycle",
    "bird",
    "book",
    "cat",
    "diamond",
    "dog",
    "eye",
    "fish",
    "flower",
    "house",
    "rainbow",
];
