//! The retraining pipeline: the orchestrator and the data stages.
//!
//! Each stage is its own binary (`src/bin/stageN-*.rs`, thin) over a module here; the
//! orchestrator (`pipeline-orchestrator`) runs stages 1…7 as child processes and records each
//! one in `pipeline_runs` (crate `doodle-runs`). Stages 5 and 6 (retrain, register) link
//! libtorch and live in their own crate.
//!
//! Data layout (`[pipeline]` in `config.toml`):
//! ```text
//! <backend.img_data_location>/<category>/<uuid>.png   drawings saved by the backend (stage 1 counts, 3 converts, 7 cleans)
//! <data_repo>/                                         git + DVC repository (stage 4)
//!     <data_folder>/old/<category>.npy                 every user drawing of earlier runs (stage 2 merges into it)
//!     <data_folder>/new/<category>.npy                 drawings converted since (stage 3 appends)
//! <state_dir>/                                         locks and the journals of stages 2 and 3
//! <quarantine_dir>/<category>/<file>                   PNGs stage 3 could not read
//! ```
//! The base training data (`model.data_dir`) is never written: training reads it beside `old/`
//! and `new/`.

pub mod data;
pub mod fsx;
pub mod images;
pub mod journal;
pub mod lockfile;
pub mod npy;
pub mod orchestrator;
pub mod protocol;
pub mod stage;
pub mod stages;
