//! The version of the users' data a candidate is trained on: the data repository's git commit
//! and DVC's hash of the data folder, as stage 4 left them (read, never made here).

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};
use doodle_core::Settings;
use serde::{Deserialize, Serialize};

/// Key under a checkpoint's `training` metadata where the data version is recorded.
pub const DATA_VERSION_KEY: &str = "data_version";

/// A git commit of the data repository and the `.dir` md5 of its `<data_folder>.dvc`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataVersion {
    pub commit: String,
    pub dvc_hash: String,
}

impl DataVersion {
    /// Read the version stage 4 committed (`git rev-parse HEAD`, `<data_folder>.dvc`).
    pub fn read(settings: &Settings) -> anyhow::Result<DataVersion> {
        let p = &settings.pipeline;
        let repo = &p.data_repo;
        let dvc_file = repo.join(format!("{}.dvc", p.data_folder));
        if !dvc_file.is_file() {
            bail!(
                "the data is not versioned: {} is missing (stage 4, stage4-version, makes it)",
                dvc_file.display()
            );
        }
        Ok(DataVersion {
            commit: head_commit(&p.git_command, repo)?,
            dvc_hash: doodle_pipeline::stages::version::dvc_hash(&dvc_file)?,
        })
    }

    /// The version a checkpoint's metadata records, if any.
    pub fn recorded(meta: &doodle_model::Metadata) -> Option<DataVersion> {
        let value = meta.training.get(DATA_VERSION_KEY)?;
        serde_json::from_value(value.clone()).ok()
    }
}

fn head_commit(git: &str, repo: &Path) -> anyhow::Result<String> {
    let out = Command::new(git)
        .args(["rev-parse", "HEAD"])
        .current_dir(repo)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .with_context(|| format!("running `{git} rev-parse HEAD` in {}", repo.display()))?;
    if !out.status.success() {
        bail!(
            "`{git} rev-parse HEAD` in {} failed ({}): {}",
            repo.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}
