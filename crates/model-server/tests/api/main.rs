//! Black-box tests of the model server over HTTP: a real server on port 0 serving a real
//! (small, untrained) tch model from a temporary local registry.

mod errors;
mod helpers;
mod scoring;
mod swap;
