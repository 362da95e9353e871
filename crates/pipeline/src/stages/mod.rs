//! The data stages, one module each; `src/bin/stageN-*.rs` are their thin binaries.

pub mod clean;
pub mod convert;
pub mod merge;
pub mod scan;
pub mod version;
