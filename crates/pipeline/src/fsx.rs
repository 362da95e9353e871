//! Durable file operations: every file the pipeline writes goes to a hidden temp file in the
//! same folder, is fsynced, then renamed over its final name, and the folder is fsynced.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::{CWD, OFlags, RenameFlags};
use rustix::io::Errno;
use sha2::{Digest, Sha256};

/// Suffix of the pipeline's temp files; a crash can leave one, [`sweep_temp_files`] removes it.
pub const TEMP_SUFFIX: &str = ".tmp";

/// A file being written under a temp name in its final folder.
#[derive(Debug)]
pub struct TempFile {
    path: PathBuf,
    writer: HashingWriter<BufWriter<File>>,
}

impl TempFile {
    /// A new hidden temp file beside `final_path` (`.<name>.<uuid>.tmp`).
    pub fn beside(final_path: &Path) -> io::Result<Self> {
        let dir = parent(final_path);
        let name = final_path
            .file_name()
            .ok_or_else(|| io::Error::other("a file path has no file name"))?
            .to_string_lossy();
        let path = dir.join(format!(
            ".{name}.{}{TEMP_SUFFIX}",
            uuid::Uuid::new_v4().simple()
        ));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(OFlags::NOFOLLOW.bits() as i32)
            .open(&path)?;
        Ok(Self {
            path,
            writer: HashingWriter::new(BufWriter::with_capacity(1 << 20, file)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flush and fsync; returns the temp file's path and the SHA-256 of everything written.
    pub fn finish(self) -> io::Result<(PathBuf, String)> {
        let (writer, digest) = self.writer.finish();
        let file = writer
            .into_inner()
            .map_err(io::IntoInnerError::into_error)?;
        file.sync_all()?;
        Ok((self.path, digest))
    }
}

impl Write for TempFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

/// A writer that hashes what passes through it.
#[derive(Debug)]
pub struct HashingWriter<W> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hash: Sha256::new(),
        }
    }
    /// The inner writer and the hex SHA-256 of everything written.
    pub fn finish(self) -> (W, String) {
        (self.inner, hex(&self.hash.finalize()))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of a file's bytes (hex), streamed.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = HashingWriter::new(io::sink());
    io::copy(&mut file, &mut hasher)?;
    Ok(hasher.finish().1)
}

/// The folder holding `path` (`.` for a bare name).
pub fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// fsync a folder, so renames and removals in it are durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Rename `from` over `to` (same folder or file system) and make it durable.
pub fn rename_durable(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::rename(from, to)?;
    sync_dir(parent(to))?;
    if parent(from) != parent(to) {
        sync_dir(parent(from))?;
    }
    Ok(())
}

/// Rename `from` to `to` only if `to` does not exist (`RENAME_NOREPLACE`); durable.
/// `Ok(false)` when `to` exists.
pub fn rename_new(from: &Path, to: &Path) -> io::Result<bool> {
    match rustix::fs::renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Ok(()) => {}
        Err(Errno::EXIST) => return Ok(false),
        Err(Errno::INVAL | Errno::NOSYS) => match std::fs::hard_link(from, to) {
            Ok(()) => std::fs::remove_file(from)?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(e),
        },
        Err(e) => return Err(e.into()),
    }
    sync_dir(parent(to))?;
    if parent(from) != parent(to) {
        sync_dir(parent(from))?;
    }
    Ok(true)
}

/// Remove a file; one that is already gone is fine.
pub fn remove_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Remove the pipeline's leftover temp files (hidden, `.tmp`) in `dir`. Call only while holding
/// the data lock: then no writer is alive and every temp file is a crash's leftover.
pub fn sweep_temp_files(dir: &Path) -> io::Result<usize> {
    let mut removed = 0;
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.ends_with(TEMP_SUFFIX) && entry.file_type()?.is_file() {
            remove_if_present(&entry.path())?;
            removed += 1;
        }
    }
    if removed > 0 {
        sync_dir(dir)?;
    }
    Ok(removed)
}

/// Write `bytes` to `path` atomically (temp + fsync + rename + fsync the folder).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = TempFile::beside(path)?;
    let written = tmp.write_all(bytes).and_then(|()| tmp.finish());
    match written {
        Ok((tmp_path, _)) => rename_durable(&tmp_path, path),
        Err(e) => Err(e),
    }
}

/// Create `dir` (and parents) and make its entry durable.
pub fn create_dir_durable(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    sync_dir(parent(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_leaves_only_the_final_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.npy");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn temp_file_hash_is_the_files_hash_and_sweep_removes_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let mut tmp = TempFile::beside(&dir.path().join("x.npy")).unwrap();
        tmp.write_all(b"hello").unwrap();
        let (path, digest) = tmp.finish().unwrap();
        assert_eq!(sha256_file(&path).unwrap(), digest);
        assert_eq!(
            digest,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        std::fs::write(dir.path().join("keep.npy"), b"k").unwrap();
        assert_eq!(sweep_temp_files(dir.path()).unwrap(), 1);
        assert!(!path.exists());
        assert!(dir.path().join("keep.npy").exists());
    }

    #[test]
    fn rename_new_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, b"a").unwrap();
        std::fs::write(&b, b"b").unwrap();
        assert!(!rename_new(&a, &b).unwrap());
        assert_eq!(std::fs::read(&b).unwrap(), b"b");
        std::fs::remove_file(&b).unwrap();
        assert!(rename_new(&a, &b).unwrap());
        assert!(!a.exists());
    }
}
