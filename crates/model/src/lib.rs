//! The doodle classifier: a tch ResNet for 28×28 grayscale drawings.
//!
//! This is the only crate (with those that serve or train models) that links libtorch.

pub mod input;

/// Number of pixels in one drawing: 28 × 28, row-major.
pub const IMAGE_SIDE: i64 = 28;
pub const IMAGE_PIXELS: usize = 784;
