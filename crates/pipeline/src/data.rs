//! Where the pipeline's data lives (from `[pipeline]` and `backend.img_data_location`), and
//! the data lock every stage that writes the data holds.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use doodle_core::Settings;

use crate::fsx;
use crate::journal::{Journal, Recovery};
use crate::lockfile::{FileLock, Holder};

/// How long a stage waits for another stage's data lock. The orchestrator's stage timeout
/// (`pipeline.stage_timeout_secs`) is the real bound; this one ends a stage run by hand.
const DATA_LOCK_WAIT: Duration = Duration::from_secs(3600);

/// The pipeline's folders.
#[derive(Debug, Clone)]
pub struct DataDirs {
    /// Drawings saved by the backend, `<category>/<uuid>.png`.
    pub images: PathBuf,
    /// The git + DVC repository.
    pub repo: PathBuf,
    /// `<repo>/<data_folder>`, the folder DVC tracks.
    pub data: PathBuf,
    /// `<data>/old`: user drawings of earlier runs, `<category>.npy`.
    pub old: PathBuf,
    /// `<data>/new`: drawings converted since the last merge.
    pub new: PathBuf,
    pub state: PathBuf,
    pub quarantine: PathBuf,
}

impl DataDirs {
    pub fn new(settings: &Settings) -> Self {
        let p = &settings.pipeline;
        let data = p.data_repo.join(&p.data_folder);
        Self {
            images: settings.backend.img_data_location.clone(),
            repo: p.data_repo.clone(),
            old: data.join("old"),
            new: data.join("new"),
            data,
            state: p.state_dir.clone(),
            quarantine: p.quarantine_dir.clone(),
        }
    }

    /// Take the data lock (waiting for a stage that still holds it), then finish or undo what a
    /// stopped stage left: its journal's commits and its temp files.
    pub fn lock(&self) -> io::Result<DataLock> {
        fsx::create_dir_durable(&self.state)?;
        fsx::create_dir_durable(&self.old)?;
        fsx::create_dir_durable(&self.new)?;
        let path = self.state.join("data.lock");
        let mut lock = match FileLock::try_acquire(&path).map_err(io::Error::other)? {
            Some(lock) => lock,
            None => {
                let holder = crate::lockfile::read_holder(&path);
                tracing::info!(holder = ?holder, "another stage holds the data lock; waiting for it");
                FileLock::acquire(&path, DATA_LOCK_WAIT).map_err(io::Error::other)?
            }
        };
        if let Some(previous) = lock.previous_holder() {
            tracing::warn!(%previous, "the last holder of the data lock stopped without releasing it");
        }
        let what = std::env::current_exe()
            .ok()
            .and_then(|e| e.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "stage".into());
        lock.write_holder(&Holder::this_process(&what, run_id()))
            .map_err(io::Error::other)?;
        let journal = Journal::open(&self.state)?;
        let recovered = journal.recover()?;
        let swept = fsx::sweep_temp_files(&self.old)? + fsx::sweep_temp_files(&self.new)?;
        if swept > 0 {
            tracing::warn!(files = swept, "removed temp files a stopped stage left");
        }
        Ok(DataLock {
            _lock: lock,
            journal,
            recovered,
        })
    }
}

/// Held while a stage writes the data; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct DataLock {
    _lock: FileLock,
    pub journal: Journal,
    /// What recovery found when the lock was taken.
    pub recovered: Recovery,
}

/// The run this stage belongs to, when an orchestrator started it.
fn run_id() -> Option<i64> {
    std::env::var(crate::protocol::RUN_ID_ENV)
        .ok()?
        .parse()
        .ok()
}
