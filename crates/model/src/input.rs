//! The one input convention, shared by training, evaluation and serving:
//! 784 `u8`, row-major, 0 = background, 255 = ink (Quick, Draw!'s numpy-bitmap convention).

use tch::{Kind, Tensor};

use crate::{IMAGE_PIXELS, IMAGE_SIDE};

/// Turn `n` drawings of 784 bytes each (concatenated) into an `n × 1 × 28 × 28` float
/// tensor scaled to 0.0 ..= 1.0.
///
/// # Panics
/// If `pixels.len()` is not a multiple of 784: callers validate sizes at their edge.
pub fn to_tensor(pixels: &[u8]) -> Tensor {
    assert_eq!(
        pixels.len() % IMAGE_PIXELS,
        0,
        "input is not a whole number of 784-byte drawings. This is a bug."
    );
    let n = (pixels.len() / IMAGE_PIXELS) as i64;
    Tensor::from_slice(pixels)
        .view([n, 1, IMAGE_SIDE, IMAGE_SIDE])
        .to_kind(Kind::Float)
        / 255.0
}
