//! An exclusive lock on a file (`flock`), with a note in the file saying who holds it.
//!
//! The kernel releases an `flock` when its holder dies, however it dies, so the lock itself is
//! never stale. The note ([`Holder`], JSON) is what makes a dead holder visible: it is written
//! after the lock is taken and cleared when the lock is released cleanly, so a free lock whose
//! file still names a holder was left by a process that stopped without releasing it
//! ([`FileLock::previous_holder`]). The file itself is never removed (removing a locked file
//! would let a second process lock a new file of the same name).
//!
//! The orchestrator's run lock and the data stages' data lock both use this.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::FlockOperation;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// How often [`FileLock::acquire`] tries again while the lock is held.
const POLL: Duration = Duration::from_millis(100);

/// Who holds (or held) a lock: written into the lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The holder's host name.
    pub host: String,
    /// The holder's process id.
    pub pid: u32,
    /// When it took the lock (RFC 3339, UTC).
    pub since: String,
    /// The pipeline run it works for, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<i64>,
    /// What holds it (`pipeline-orchestrator`, `stage3-convert`, ...).
    #[serde(default)]
    pub what: String,
}

impl Holder {
    /// This process, now.
    pub fn this_process(what: &str, run_id: Option<i64>) -> Self {
        Self {
            host: host_name(),
            pid: std::process::id(),
            since: now_rfc3339(),
            run_id,
            what: what.to_string(),
        }
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = if self.what.is_empty() {
            "process"
        } else {
            &self.what
        };
        write!(
            f,
            "{what} pid {} on host {} since {}",
            self.pid, self.host, self.since
        )?;
        if let Some(run) = self.run_id {
            write!(f, " (run {run})")?;
        }
        Ok(())
    }
}

/// Why a lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The lock file could not be opened, locked, read or written.
    #[error("lock file {path}: {source}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// [`FileLock::acquire`] gave up.
    #[error("lock file {path} is still held after {waited:?}{}", held_by(.holder))]
    Timeout {
        /// The lock file.
        path: PathBuf,
        /// How long it waited.
        waited: Duration,
        /// Who held it, when the file said.
        holder: Option<Box<Holder>>,
    },
}

fn held_by(holder: &Option<Box<Holder>>) -> String {
    holder
        .as_ref()
        .map(|h| format!(" by {h}"))
        .unwrap_or_default()
}

/// An exclusive `flock` on a file, released when dropped (the holder note is cleared first).
#[derive(Debug)]
pub struct FileLock {
    file: File,
    path: PathBuf,
    previous: Option<Holder>,
}

impl FileLock {
    /// Take the lock if it is free: `Ok(None)` when another process holds it (see
    /// [`read_holder`] for who). Creates the file (not its folder) when absent.
    pub fn try_acquire(path: &Path) -> Result<Option<FileLock>, LockError> {
        let io_err = |source| LockError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io_err)?;
        match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => return Ok(None),
            Err(errno) => return Err(io_err(errno.into())),
        }
        let previous = read_note(&mut file).map_err(io_err)?;
        Ok(Some(FileLock {
            file,
            path: path.to_path_buf(),
            previous,
        }))
    }

    /// Take the lock, waiting up to `timeout` for it (tried every 100 ms).
    pub fn acquire(path: &Path, timeout: Duration) -> Result<FileLock, LockError> {
        let started = Instant::now();
        loop {
            if let Some(lock) = Self::try_acquire(path)? {
                return Ok(lock);
            }
            let waited = started.elapsed();
            if waited >= timeout {
                return Err(LockError::Timeout {
                    path: path.to_path_buf(),
                    waited,
                    holder: read_holder(path).map(Box::new),
                });
            }
            std::thread::sleep(POLL.min(timeout - waited));
        }
    }

    /// The holder named in the file when the lock was taken: `Some` means that process
    /// stopped without releasing the lock.
    pub fn previous_holder(&self) -> Option<&Holder> {
        self.previous.as_ref()
    }

    /// Write `holder` into the file (replacing what was there; synced).
    pub fn write_holder(&mut self, holder: &Holder) -> Result<(), LockError> {
        let json = serde_json::to_vec(holder).expect("a Holder always serializes");
        self.replace_content(&json)
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Clear the holder note and release the lock.
    pub fn release(mut self) -> Result<(), LockError> {
        self.replace_content(b"")
        // Dropping `self` closes the file, which releases the lock.
    }

    fn replace_content(&mut self, content: &[u8]) -> Result<(), LockError> {
        let write = |file: &mut File| -> io::Result<()> {
            file.set_len(0)?;
            file.rewind()?;
            file.write_all(content)?;
            file.sync_data()
        };
        write(&mut self.file).map_err(|source| LockError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // Best effort: a note left behind only makes the next holder report a takeover.
        let _ = self.file.set_len(0);
    }
}

/// Who the lock file at `path` names as its holder (`None`: no file, empty, or unreadable).
pub fn read_holder(path: &Path) -> Option<Holder> {
    let mut file = File::open(path).ok()?;
    read_note(&mut file).ok().flatten()
}

fn read_note(file: &mut File) -> io::Result<Option<Holder>> {
    let mut text = String::new();
    file.rewind()?;
    file.read_to_string(&mut text)?;
    Ok(serde_json::from_str(text.trim()).ok())
}

fn now_rfc3339() -> String {
    let now = OffsetDateTime::now_utc();
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| now.to_string())
}

/// This machine's host name (`/proc/sys/kernel/hostname`, else `$HOSTNAME`, else `localhost`).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|n| !n.is_empty()))
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_is_refused_and_names_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let mut lock = FileLock::try_acquire(&path).unwrap().unwrap();
        assert_eq!(lock.previous_holder(), None);
        let me = Holder::this_process("test", Some(7));
        lock.write_holder(&me).unwrap();
        // flock is per open file: a second open in this process is refused like another process.
        assert!(FileLock::try_acquire(&path).unwrap().is_none());
        assert_eq!(read_holder(&path), Some(me.clone()));
        let err = FileLock::acquire(&path, Duration::from_millis(250)).unwrap_err();
        assert!(err.to_string().contains("(run 7)"), "{err}");
        lock.release().unwrap();
        let again = FileLock::try_acquire(&path).unwrap().unwrap();
        assert_eq!(
            again.previous_holder(),
            None,
            "a clean release leaves no note"
        );
    }

    #[test]
    fn a_note_left_behind_is_reported_as_the_previous_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let dead = Holder::this_process("old", None);
        std::fs::write(&path, serde_json::to_vec(&dead).unwrap()).unwrap();
        let lock = FileLock::acquire(&path, Duration::from_secs(1)).unwrap();
        assert_eq!(lock.previous_holder(), Some(&dead));
    }
}
