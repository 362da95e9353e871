//! The intent journal that makes stages 2 and 3 idempotent.
//!
//! A commit replaces one `.npy` (its target) with a staged temp file holding more rows, and then
//! removes the files whose rows it took in (PNGs for stage 3, `new/<c>.npy` for stage 2). A
//! process killed between "target replaced" and "inputs removed" would, on the next run, take
//! the same inputs in again. So each commit is written down first:
//!
//! 1. the entry `{tmp, target, sha256 of tmp, consumed}` is written (temp + fsync + rename);
//! 2. `tmp` is renamed over `target` (the commit point) and the folder fsynced;
//! 3. every consumed file is removed, their folders fsynced;
//! 4. the entry is removed.
//!
//! [`Journal::recover`], run under the data lock before any stage touches the data, finishes
//! or undoes what a crash left: if `target` has the entry's hash, step 2 happened and steps 3–4
//! are finished; otherwise step 2 did not happen, and the temp file and the entry are dropped
//! (the inputs are all still there, to be taken in by the next run). Either way every drawing
//! ends up exactly once in the data, or still waiting as its input file.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fsx;

/// One commit, as written down before it happens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The staged file that becomes `target`.
    pub tmp: PathBuf,
    pub target: PathBuf,
    /// SHA-256 of `tmp`: the target has it exactly when the commit point was passed.
    pub sha256: String,
    /// Files whose rows `tmp` holds; removed after the commit point.
    pub consumed: Vec<PathBuf>,
}

/// What [`Journal::recover`] found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Recovery {
    /// Commits that had passed their commit point and were finished.
    pub finished: usize,
    /// Commits that had not, and were undone.
    pub undone: usize,
}

/// The journal folder (`<state_dir>/journal`).
#[derive(Debug, Clone)]
pub struct Journal {
    dir: PathBuf,
}

impl Journal {
    pub fn open(state_dir: &Path) -> io::Result<Self> {
        let dir = state_dir.join("journal");
        fsx::create_dir_durable(&dir)?;
        Ok(Self { dir })
    }

    /// Steps 1–4 above.
    pub fn commit(&self, entry: &Entry) -> io::Result<()> {
        let record = self.write_entry(entry)?;
        fsx::rename_durable(&entry.tmp, &entry.target)?;
        finish(entry)?;
        self.drop_record(&record)
    }

    fn write_entry(&self, entry: &Entry) -> io::Result<PathBuf> {
        let record = self
            .dir
            .join(format!("{}.json", uuid::Uuid::now_v7().simple()));
        let json = serde_json::to_vec_pretty(entry).map_err(io::Error::other)?;
        fsx::write_atomic(&record, &json)?;
        Ok(record)
    }

    fn drop_record(&self, record: &Path) -> io::Result<()> {
        fsx::remove_if_present(record)?;
        fsx::sync_dir(&self.dir)
    }

    /// Finish or undo every commit a crash left (oldest first). Call under the data lock.
    pub fn recover(&self) -> io::Result<Recovery> {
        let mut records: Vec<PathBuf> = std::fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        records.sort();
        let mut found = Recovery::default();
        for record in records {
            let Some(entry) = read_entry(&record)? else {
                // A record whose own write was interrupted: its commit never started.
                self.drop_record(&record)?;
                continue;
            };
            if passed_commit_point(&entry)? {
                tracing::warn!(target = %entry.target.display(), consumed = entry.consumed.len(),
                    "finishing a commit a stopped stage left half done");
                finish(&entry)?;
                found.finished += 1;
            } else {
                tracing::warn!(target = %entry.target.display(),
                    "undoing a commit a stopped stage never made; its inputs are taken in again");
                fsx::remove_if_present(&entry.tmp)?;
                found.undone += 1;
            }
            self.drop_record(&record)?;
        }
        fsx::sweep_temp_files(&self.dir)?;
        Ok(found)
    }
}

fn read_entry(record: &Path) -> io::Result<Option<Entry>> {
    let bytes = std::fs::read(record)?;
    Ok(serde_json::from_slice(&bytes).ok())
}

fn passed_commit_point(entry: &Entry) -> io::Result<bool> {
    if entry.tmp.exists() {
        return Ok(false);
    }
    match fsx::sha256_file(&entry.target) {
        Ok(sha) => Ok(sha == entry.sha256),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Step 3: remove the consumed files (already gone is fine) and make it durable.
fn finish(entry: &Entry) -> io::Result<()> {
    let mut dirs: Vec<&Path> = Vec::new();
    for file in &entry.consumed {
        fsx::remove_if_present(file)?;
        let dir = fsx::parent(file);
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    for dir in dirs {
        fsx::sync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::npy::{self, NpyFile, Part};
    use doodle_core::image::PIXELS;

    /// A target with 2 rows, and 3 input files of 1 row each, staged into a 5-row file.
    fn setup(dir: &Path) -> (Journal, Entry) {
        let journal = Journal::open(&dir.join("state")).unwrap();
        let target = dir.join("t.npy");
        fsx::write_atomic(&target, &[npy::header(2), vec![1; 2 * PIXELS]].concat()).unwrap();
        let consumed: Vec<PathBuf> = (0..3).map(|i| dir.join(format!("in{i}"))).collect();
        for c in &consumed {
            std::fs::write(c, [7u8; PIXELS]).unwrap();
        }
        let rows = vec![7u8; 3 * PIXELS];
        let parts = vec![
            Part::File(NpyFile::open(&target).unwrap()),
            Part::Rows(&rows),
        ];
        let staged = npy::write_stacked(&target, parts).unwrap();
        let entry = Entry {
            tmp: staged.tmp,
            target,
            sha256: staged.sha256,
            consumed,
        };
        (journal, entry)
    }

    /// Rows in the target plus inputs still waiting: always 5, never 2+3+3.
    fn drawings_accounted_for(entry: &Entry) -> u64 {
        let rows = NpyFile::open(&entry.target).unwrap().rows();
        rows + entry.consumed.iter().filter(|c| c.exists()).count() as u64
    }

    #[test]
    fn a_crash_after_any_step_is_finished_or_undone_exactly_once() {
        // steps done before the "crash": 0 = nothing, 1 = entry written, 2 = renamed,
        // 3 = one input removed, 4 = all inputs removed (entry left).
        for steps in 0..=4 {
            let dir = tempfile::tempdir().unwrap();
            let (journal, entry) = setup(dir.path());
            if steps >= 1 {
                journal.write_entry(&entry).unwrap();
            }
            if steps >= 2 {
                fsx::rename_durable(&entry.tmp, &entry.target).unwrap();
            }
            if steps == 3 {
                std::fs::remove_file(&entry.consumed[0]).unwrap();
            }
            if steps >= 4 {
                finish(&entry).unwrap();
            }
            let found = journal.recover().unwrap();
            // A stage sweeps leftover temp files of its folders under the lock, too.
            fsx::sweep_temp_files(dir.path()).unwrap();
            assert_eq!(drawings_accounted_for(&entry), 5, "after {steps} steps");
            let expect = match steps {
                0 => Recovery::default(),
                1 => Recovery {
                    finished: 0,
                    undone: 1,
                },
                _ => Recovery {
                    finished: 1,
                    undone: 0,
                },
            };
            assert_eq!(found, expect, "after {steps} steps");
            let left: Vec<_> = std::fs::read_dir(dir.path().join("state/journal"))
                .unwrap()
                .collect();
            assert!(left.is_empty(), "journal emptied after {steps} steps");
        }
    }

    #[test]
    fn commit_replaces_the_target_and_removes_the_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, entry) = setup(dir.path());
        journal.commit(&entry).unwrap();
        assert_eq!(NpyFile::open(&entry.target).unwrap().rows(), 5);
        assert!(entry.consumed.iter().all(|c| !c.exists()));
        assert_eq!(journal.recover().unwrap(), Recovery::default());
    }

    #[test]
    fn a_torn_record_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, entry) = setup(dir.path());
        std::fs::write(dir.path().join("state/journal/0.json"), b"{\"tmp\": ").unwrap();
        assert_eq!(journal.recover().unwrap(), Recovery::default());
        assert_eq!(drawings_accounted_for(&entry), 2 + 3);
    }
}
