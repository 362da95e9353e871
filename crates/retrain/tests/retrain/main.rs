//! Stages 5 and 6 as real binaries over real folders, a real local registry and a real
//! `mlflow server`, and the whole loop through the running model server and backend
//! (the_loop.rs), with a small resnet18 trained once and cached under
//! `target/retrain-test-model/` (see `helpers::base_model`).

mod evalset;
mod helpers;
mod mlflow;
mod stack;
mod stages;
mod the_loop;
