//! Stage 2, merge: the drawings converted by the last run (`new/<c>.npy`) join the user data
//! of earlier runs (`old/<c>.npy`).
//!
//! Absent from `old/` → the file is moved there (one rename). Present → one file with the old
//! rows then the new rows is staged beside it and committed through the journal, which removes
//! the new file once the old one holds its rows. Files are streamed: memory is one buffer.

use std::path::{Path, PathBuf};

use anyhow::Context;
use doodle_core::Settings;
use doodle_core::category::Category;

use crate::data::DataDirs;
use crate::fsx;
use crate::journal::{Entry, Journal};
use crate::npy::{self, NpyFile, Part};
use crate::protocol::StageOutput;

pub fn run(settings: &Settings) -> anyhow::Result<StageOutput> {
    let dirs = DataDirs::new(settings);
    let lock = dirs.lock().context("taking the data lock")?;
    let (mut moved, mut stacked, mut rows) = (0, 0, 0);
    for (category, new) in new_files(&dirs.new)? {
        let old = dirs.old.join(format!("{category}.npy"));
        let added = NpyFile::open(&new)?.rows();
        if fsx::rename_new(&new, &old).with_context(|| format!("moving {}", new.display()))? {
            moved += 1;
        } else {
            stack(&lock.journal, &old, &new)?;
            stacked += 1;
        }
        tracing::info!(
            category = category.as_str(),
            rows = added,
            "merged into the old data"
        );
        rows += added;
    }
    Ok(StageOutput {
        summary: Some(format!(
            "{rows} drawings merged: {moved} categories moved, {stacked} stacked"
        )),
        ..StageOutput::default()
    })
}

/// `old` + `new` → `old`, through the journal.
fn stack(journal: &Journal, old: &Path, new: &Path) -> anyhow::Result<()> {
    let parts = vec![
        Part::File(NpyFile::open(old)?),
        Part::File(NpyFile::open(new)?),
    ];
    let staged = npy::write_stacked(old, parts)?;
    journal
        .commit(&Entry {
            tmp: staged.tmp,
            target: old.to_path_buf(),
            sha256: staged.sha256,
            consumed: vec![new.to_path_buf()],
        })
        .with_context(|| format!("committing {}", old.display()))
}

/// `new/<category>.npy` files, sorted; anything else there is skipped with a log line.
fn new_files(dir: &Path) -> anyhow::Result<Vec<(Category, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        let category = name
            .strip_suffix(".npy")
            .and_then(|c| Category::parse(c).ok());
        match category {
            Some(c) if entry.file_type()?.is_file() => out.push((c, path)),
            _ => tracing::warn!(path = %path.display(), "skipping: not a <category>.npy file"),
        }
    }
    out.sort();
    Ok(out)
}
