//! Where candidates live between stage 5 and stage 6.
//!
//! ```text
//! <state_dir>/candidates/
//!     run-<id>/ or manual-<UTC time>/   a checkpoint (model.safetensors, metadata.json) plus
//!                                       metrics.json, train_log.csv, train_report.json,
//!                                       validation/, and gate_report.json once judged
//!     latest                            the newest candidate's folder name
//!     .tmp-<name>/                      a candidate being trained (renamed when whole)
//! ```
//! Stage 6 finds the candidate of its own run (`DOODLE_RUN_ID`), else the one `--candidate`
//! names, else `latest`; it removes the folder once the candidate is registered (the registry
//! has its own copy).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use doodle_core::Settings;
use doodle_pipeline::fsx;

/// Per-epoch metrics (loss, top-1, top-3, per category) beside the checkpoint.
pub const METRICS_FILE: &str = "metrics.json";
/// The gate's report, written into the candidate before it is registered.
pub const GATE_REPORT_FILE: &str = "gate_report.json";
/// The newest candidate's folder name.
const LATEST_FILE: &str = "latest";
const TEMP_PREFIX: &str = ".tmp-";

/// `<state_dir>/candidates`.
pub fn root(settings: &Settings) -> PathBuf {
    settings.pipeline.state_dir.join("candidates")
}

/// A candidate's folder name: its pipeline run's, else the time.
pub fn name_for(run: Option<i64>) -> String {
    match run {
        Some(run) => format!("run-{run}"),
        None => {
            let format =
                time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
            let now = time::OffsetDateTime::now_utc();
            format!("manual-{}", now.format(format).unwrap_or_default())
        }
    }
}

/// A candidate being written: training fills `dir()`, [`Staging::commit`] renames it into place.
#[derive(Debug)]
pub struct Staging {
    temp: PathBuf,
    target: PathBuf,
}

impl Staging {
    /// Stage the candidate `name` under `root`, removing what an interrupted stage 5 left there
    /// (the orchestrator's run lock means no other stage 5 is writing).
    pub fn new(root: &Path, name: &str) -> anyhow::Result<Self> {
        fsx::create_dir_durable(root).with_context(|| format!("creating {}", root.display()))?;
        sweep(root)?;
        Ok(Self {
            temp: root.join(format!("{TEMP_PREFIX}{name}")),
            target: root.join(name),
        })
    }

    /// The folder training writes into.
    pub fn dir(&self) -> &Path {
        &self.temp
    }

    /// Rename the finished candidate into place (replacing an older one of the same name) and
    /// point `latest` at it.
    pub fn commit(self) -> anyhow::Result<PathBuf> {
        let root = fsx::parent(&self.target).to_path_buf();
        if self.target.exists() {
            let aside = root.join(format!("{TEMP_PREFIX}replaced-{}", std::process::id()));
            fsx::rename_durable(&self.target, &aside)?;
            std::fs::remove_dir_all(&aside)
                .with_context(|| format!("removing {}", aside.display()))?;
        }
        fsx::rename_durable(&self.temp, &self.target).with_context(|| {
            format!(
                "renaming {} to {}",
                self.temp.display(),
                self.target.display()
            )
        })?;
        let name = self.target.file_name().expect("a candidate has a name");
        fsx::write_atomic(&root.join(LATEST_FILE), name.as_encoded_bytes())?;
        Ok(self.target)
    }
}

/// Remove leftover `.tmp-*` folders.
fn sweep(root: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(root).with_context(|| format!("listing {}", root.display()))? {
        let entry = entry?;
        let leftover = entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX);
        if leftover && entry.file_type()?.is_dir() {
            tracing::warn!(folder = %entry.path().display(), "removing a candidate an interrupted stage 5 left");
            std::fs::remove_dir_all(entry.path())?;
        }
    }
    Ok(())
}

/// The candidate stage 6 judges: `explicit`, else its run's, else the newest.
pub fn resolve(
    settings: &Settings,
    explicit: Option<&Path>,
    run: Option<i64>,
) -> anyhow::Result<PathBuf> {
    if let Some(dir) = explicit {
        return Ok(dir.to_path_buf());
    }
    let root = root(settings);
    if let Some(run) = run {
        let dir = root.join(name_for(Some(run)));
        if !dir.is_dir() {
            bail!(
                "run {run} has no candidate: {} is missing (stage 5 writes it)",
                dir.display()
            );
        }
        return Ok(dir);
    }
    let latest = root.join(LATEST_FILE);
    let name = std::fs::read_to_string(&latest).with_context(|| {
        format!(
            "no candidate to judge: {} is missing (run stage 5, or name one with --candidate)",
            latest.display()
        )
    })?;
    Ok(root.join(name.trim()))
}
