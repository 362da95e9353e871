//! Helpers shared by the integration tests (included with `mod common;`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The shared Quick, Draw! subset, relative to the repository root (`../shared/data/quickdraw`).
pub fn quickdraw() -> PathBuf {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/quickdraw"
    ))
    .to_path_buf()
}

/// `n` synthetic drawings whose bytes encode `seed` and the row number.
pub fn drawings(n: usize, seed: u8) -> Vec<u8> {
    (0..n * 784)
        .map(|i| {
            ((i / 784) as u8)
                .wrapping_mul(31)
                .wrapping_add(seed)
                .wrapping_add((i % 784) as u8)
        })
        .collect()
}

pub fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}
